/* The process: one libuv event loop running libwebsockets, the listener, signals, shutdown. */
#ifndef CARILLON_SERVER_H
#define CARILLON_SERVER_H

/* Serve until SIGTERM/SIGINT, then shut down gracefully. Returns the exit status. */
int carillon_server_run(const char *conninfo);

#endif
