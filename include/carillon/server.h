/* The process: one libuv event loop running libwebsockets, the listener, signals, shutdown. */
#ifndef CARILLON_SERVER_H
#define CARILLON_SERVER_H

/* Serve until SIGTERM/SIGINT, then shut down gracefully. Returns the exit status. */
int carillon_server_run(const char *conninfo);

/* A listening socket on CARILLON_LISTEN (SO_REUSEPORT, non-blocking, close-on-exec), or -1. */
int carillon_server_listen_socket(void);
/* Serve on this already listening socket instead of opening one (a worker of the supervisor). */
/* Worker `index` of `serve --workers N`: serve the listening socket `fd` the supervisor opened. */
void carillon_server_use_listen_fd(int fd, int index);

#endif
