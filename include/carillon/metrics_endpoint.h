/*
 * The scrape endpoint: GET /metrics on CARILLON_METRICS_LISTEN (src/metrics_endpoint.c). A module
 * of its own, apart from the registry (metrics.h, which every module calls and which calls only
 * util): it reads the database (the log head), the listener's position and the pool's state at
 * scrape time, and only the server calls it.
 */
#ifndef CARILLON_METRICS_ENDPOINT_H
#define CARILLON_METRICS_ENDPOINT_H

#include <stddef.h>

#include <uv.h>

/* Serve GET /metrics on `listen_addr` (ip:port; "" or NULL = off) from `loop`: a small TCP server
 * of its own, HTTP/1.1, one request per connection. Binds at once (before the privilege drop);
 * -1 when the address cannot be used. */
/* port_offset: worker i of `serve --workers N` serves its own metrics on the port + i (each process
 * counts its own traffic; Prometheus scrapes every worker). */
int carillon_metrics_server_start(uv_loop_t *loop, const char *listen_addr, int port_offset);
void carillon_metrics_server_stop(void);

/* What the bytes a scrape connection sent so far ask for (exposed for the fuzzer, tests/fuzz). */
enum carillon_metrics_head {
	CARILLON_METRICS_HEAD_INCOMPLETE, /* no end of the head yet: read on */
	CARILLON_METRICS_HEAD_GET,        /* GET /metrics (any query) */
	CARILLON_METRICS_HEAD_HEAD,       /* HEAD /metrics */
	CARILLON_METRICS_HEAD_BAD,        /* 400: not METHOD SP TARGET SP HTTP/1.x, a NUL byte, a long line */
	CARILLON_METRICS_HEAD_NOT_FOUND,  /* 404: another path */
	CARILLON_METRICS_HEAD_METHOD,     /* 405: /metrics with another method */
	CARILLON_METRICS_HEAD_TOO_LARGE,  /* 431: `max` bytes without the end of the head */
};

/* Reads the `len` bytes at `buf` (not NUL-terminated; any bytes) as the start of a request head.
 * Only the end of the head is searched for and the request line split on spaces. */
enum carillon_metrics_head carillon_metrics_parse_head(const char *buf, size_t len, size_t max);

#endif
