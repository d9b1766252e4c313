/*
 * The scrape endpoint: GET /metrics on CARILLON_METRICS_LISTEN (src/metrics_endpoint.c). A module
 * of its own, apart from the registry (metrics.h, which every module calls and which calls only
 * util): it reads the database (the log head), the listener's position and the pool's state at
 * scrape time, and only the server calls it.
 */
#ifndef CARILLON_METRICS_ENDPOINT_H
#define CARILLON_METRICS_ENDPOINT_H

#include <uv.h>

/* Serve GET /metrics on `listen_addr` (ip:port; "" or NULL = off) from `loop`: a small TCP server
 * of its own, HTTP/1.1, one request per connection. Binds at once (before the privilege drop);
 * -1 when the address cannot be used. */
/* port_offset: worker i of `serve --workers N` serves its own metrics on the port + i (each process
 * counts its own traffic; Prometheus scrapes every worker). */
int carillon_metrics_server_start(uv_loop_t *loop, const char *listen_addr, int port_offset);
void carillon_metrics_server_stop(void);

#endif
