/*
 * Outbound HTTP: requests to other services (APNs, FCM, Lambda, Kinesis, webhooks) made from the
 * process's event loop. libcurl's multi interface is driven by the libuv loop (uv_poll per socket,
 * one uv_timer), so nothing blocks the loop; DNS runs in libcurl's threaded resolver. HTTPS speaks
 * HTTP/2 when the server offers it (ALPN) and multiplexes: requests to one origin share one
 * connection.
 *
 * Bounded: at most max_in_flight transfers run at once, at most max_queued more wait (beyond that a
 * request is refused at once), each transfer has a timeout, and a response body above
 * max_response_bytes fails the request. Single-threaded: call everything from the loop's thread.
 */
#ifndef CARILLON_OUTBOUND_H
#define CARILLON_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

/* What went wrong, when no HTTP response came back. A response of any status (503 included) is
 * CARILLON_OUTBOUND_OK: the status is the caller's to judge. */
enum carillon_outbound_error {
	CARILLON_OUTBOUND_OK = 0,
	CARILLON_OUTBOUND_E_CONNECT,   /* name resolution failed, connection refused or unreachable */
	CARILLON_OUTBOUND_E_TIMEOUT,   /* the request's timeout passed (connecting or waiting) */
	CARILLON_OUTBOUND_E_TLS,       /* handshake failed, certificate not trusted or not matching */
	CARILLON_OUTBOUND_E_PROTOCOL,  /* connection reset, stream refused, malformed answer */
	CARILLON_OUTBOUND_E_TOO_LARGE, /* the response body exceeded max_response_bytes */
	CARILLON_OUTBOUND_E_CANCELLED, /* carillon_outbound_shutdown() while pending */
	CARILLON_OUTBOUND_E_INTERNAL,  /* anything else (libcurl out of memory, bad URL, ...) */
};

/* "connect", "timeout", "tls", "protocol", "too_large", "cancelled", "internal" ("ok"). */
const char *carillon_outbound_error_name(enum carillon_outbound_error e);

/* Transient errors worth retrying later (connect, timeout, protocol); TLS, too_large and internal
 * are configuration or peer problems a retry will not fix. */
bool carillon_outbound_error_transient(enum carillon_outbound_error e);

enum carillon_outbound_http {
	CARILLON_OUTBOUND_HTTP_AUTO = 0, /* https: HTTP/2 if offered (ALPN), else 1.1; http: HTTP/1.1 */
	CARILLON_OUTBOUND_HTTP2_PRIOR,   /* http:// with HTTP/2 prior knowledge (h2c) */
	CARILLON_OUTBOUND_HTTP1,         /* HTTP/1.1 only */
};

/* One request. Everything is copied by carillon_outbound_request(): the caller may free it when
 * that returns. */
struct carillon_outbound_req {
	const char *method;            /* "GET", "POST", ...; NULL: POST with a body, else GET */
	const char *url;               /* http:// or https:// only */
	const char *const *headers;    /* "Name: value" lines */
	size_t n_headers;
	const void *body;              /* may be NULL */
	size_t body_len;
	long timeout_ms;               /* whole transfer, from its start; 0: the module's default */
	enum carillon_outbound_http http;
	/* TLS client certificate (APNs certificate auth): PEM certificate (chain) and its unencrypted
	 * PEM private key, both or neither. libcurl reuses a connection only for the same pair. A
	 * server refusing the certificate under TLS 1.3 does so after the client's handshake: that is
	 * CARILLON_OUTBOUND_E_TLS when its alert is read, E_PROTOCOL when only the reset is seen. */
	const char *client_cert_pem;
	const char *client_key_pem;
};

struct carillon_outbound_resp {
	enum carillon_outbound_error error;
	const char *error_detail;      /* libcurl's message for an error, "" when OK */
	long status;                   /* HTTP status; 0 when error != OK */
	int http_version;              /* 2 or 1 (HTTP/1.x); 0 when none */
	const char *body;              /* NUL-terminated (not counted in body_len); valid during the callback */
	size_t body_len;
	double total_ms;               /* from the transfer's start to its end */
	void *internal_;               /* for carillon_outbound_header */
};

/* A response header's value (the last one of that name, case-insensitive), or NULL. Only during
 * the callback. */
const char *carillon_outbound_header(const struct carillon_outbound_resp *resp, const char *name);

/* The response's Retry-After in milliseconds (delay-seconds, surrounding blanks allowed, or an
 * HTTP date), capped at a day; 0 when absent or unreadable. Only during the callback. */
long carillon_outbound_retry_after_ms(const struct carillon_outbound_resp *resp);

/* Called exactly once per accepted request, from the loop, never from inside
 * carillon_outbound_request(). May make new requests. */
typedef void (*carillon_outbound_cb)(void *arg, const struct carillon_outbound_resp *resp);

struct carillon_outbound_opts {
	long max_in_flight;            /* transfers running at once */
	long max_queued;               /* accepted requests waiting for a slot */
	long default_timeout_ms;
	long connect_timeout_ms;       /* TCP + TLS handshake */
	long max_response_bytes;
	const char *ca_file;           /* extra trusted CA certificates (PEM), added to the system store; NULL/"" none */
};

/* The settings' values (CARILLON_OUTBOUND_*, config.h), for the server's call to init. */
void carillon_outbound_opts_from_config(struct carillon_outbound_opts *o);

/* Start the module on `loop`. Returns 0, or -1 (logged) when libcurl cannot start or the CA file
 * cannot be read. */
int carillon_outbound_init(uv_loop_t *loop, const struct carillon_outbound_opts *opts);

/* Accept a request: 0 (cb will be called exactly once), or -1 when the queue is full, the module is
 * not running or the request is malformed (cb is never called). */
int carillon_outbound_request(const struct carillon_outbound_req *req, carillon_outbound_cb cb, void *arg);

/* Requests running and waiting. */
size_t carillon_outbound_in_flight(void);
size_t carillon_outbound_queued(void);

/* Cancel every pending request (each callback gets CARILLON_OUTBOUND_E_CANCELLED), close the
 * connections and the loop handles (the loop must run once more for their close callbacks), and
 * free everything. carillon_outbound_init() may be called again afterwards. */
void carillon_outbound_shutdown(void);

#endif
