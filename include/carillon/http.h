/*
 * The HTTP side of one request. The http layer owns a request object from the moment the headers
 * arrive until the response is written; once a request is complete (head and body) it hands it to
 * the dispatcher registered with carillon_http_set_dispatcher (the api module's, wired by main.c).
 * A handler never touches the socket: it reads the request through the accessors below and answers
 * with carillon_reply_json()/carillon_reply_error(); the http layer writes when writable. If the
 * client goes away while a handler waits on the database, the request is orphaned and freed when
 * the handler replies. The http layer knows nothing of models, credentials or operations.
 */
#ifndef CARILLON_HTTP_H
#define CARILLON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "carillon/util.h"

/* One error currency: the AWS errors of every service, named and shaped per request by its error
 * style (carillon_req_set_error_style). */
enum carillon_err {
	CARILLON_ERR_BAD_REQUEST,
	CARILLON_ERR_UNAUTHORIZED,
	CARILLON_ERR_FORBIDDEN,
	CARILLON_ERR_NOT_FOUND,
	CARILLON_ERR_CONFLICT,
	CARILLON_ERR_RESOURCE_LIMIT,
	CARILLON_ERR_THROTTLED,
	CARILLON_ERR_SERVICE_FAILURE,
	CARILLON_ERR_SERVICE_UNAVAILABLE,
	CARILLON_ERR_UNKNOWN_OPERATION,
	CARILLON_ERR_PAYLOAD_TOO_LARGE,
	CARILLON_ERR_HEADERS_TOO_LARGE,  /* 431: more header lines than CARILLON_MAX_HEADERS */
	CARILLON_ERR_NOT_IMPLEMENTED,    /* a modeled operation Carillon does not implement */
};

struct carillon_req;

/* How a request's errors are named and shaped: the Chime services' {"Code", "Message"} (the
 * default), or Pinpoint's {"Message", "RequestID"} with its own exception names (BadRequest,
 * Forbidden, NotFound, MethodNotAllowed, TooManyRequests, InternalServerError...). Both send
 * x-amzn-ErrorType. Set by the dispatcher once it knows the request's service. */
enum carillon_err_style {
	CARILLON_ERR_STYLE_CHIME,
	CARILLON_ERR_STYLE_PINPOINT,
};
void carillon_req_set_error_style(struct carillon_req *r, enum carillon_err_style style);

/* Called once per complete request; it must eventually reply (at once or from a callback). */
typedef void (*carillon_http_dispatch_fn)(struct carillon_req *r);
void carillon_http_set_dispatcher(carillon_http_dispatch_fn fn);
/* Replies to HTTP/1.1 connections are written at the end of each loop turn from start to stop
 * (before start and after stop, in lws's writable callbacks). */
struct uv_loop_s;
void carillon_http_writes_start(struct uv_loop_s *loop);
void carillon_http_writes_stop(void);

/* The request as received. */
const char *carillon_req_method(const struct carillon_req *r);        /* "GET", "POST", ... */
const char *carillon_req_path(const struct carillon_req *r);          /* percent-decoded */
const struct carillon_kv *carillon_req_query(const struct carillon_req *r, size_t *n); /* decoded pairs */
const char *carillon_req_raw_query(const struct carillon_req *r);     /* re-encoded (RFC 3986), for SigV4 */
const char *carillon_req_body(const struct carillon_req *r, size_t *len);
const char *carillon_req_id(const struct carillon_req *r);
int64_t carillon_req_time_ms(const struct carillon_req *r);           /* when the request arrived */

/* Header lookup usable as carillon_header_fn / carillon_sigv4_header_fn (ctx: the request): any
 * header of the request, whatever their number; NULL when absent. */
const char *carillon_req_header(void *ctx, const char *lower_name);

/* Fills `names` with up to `max` header names of the request (static storage); returns the count. */
size_t carillon_req_header_names(struct carillon_req *r, const char **names, size_t max);

/* The request path made safe to quote in a message or a log line: valid UTF-8 without control
 * characters, at most `size` - 1 bytes. */
const char *carillon_req_path_for_message(const struct carillon_req *r, char *buf, size_t size);

/* The access key id an Authorization header names (Credential=AKID/...), verified or not, for the
 * access log: at most out_len - 1 bytes up to the first '/', ',' or ' '; "" when there is none. */
void carillon_http_credential_akid(const char *authorization, char *out, size_t out_len);

/* What the request is, for its metrics and access line: the service and operation names of the
 * operation table (static strings, never request bytes). Unset: "none". */
void carillon_req_set_operation(struct carillon_req *r, const char *service, const char *operation);

/* The dispatcher's per-request state: freed with `free_fn` when the request is freed. */
void carillon_req_set_data(struct carillon_req *r, void *data, void (*free_fn)(void *data));
void *carillon_req_data(const struct carillon_req *r);

/* Answer with `status` (0: 200); `body` is stolen (NULL: empty body). */
void carillon_reply_json(struct carillon_req *r, int status, json_t *body);
/* Answer with `status` (0: 200) and `json`, a JSON document's text sent as it is (copied): for what
 * PostgreSQL already returns as the response body, which needs no decoding and encoding again. */
void carillon_reply_json_text(struct carillon_req *r, int status, const char *json, size_t len);
void carillon_reply_error(struct carillon_req *r, enum carillon_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The query of a request lws is parsing (a REST request or a websocket upgrade): its decoded
 * fragments ("name=value"), each a malloc'd string, in a malloc'd array (carillon_http_fragments_free).
 * Returns the count, or -1 (nothing to free) when there are more than `max_args` or one is longer
 * than `max_len` bytes: the caller refuses the request rather than drop or cut an argument. */
int carillon_http_query_fragments(struct lws *wsi, int max_args, int max_len, char ***frags);
void carillon_http_fragments_free(char **frags, int n);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (`in`: the Upgrade value): an h2c upgrade is declined, the
 * request served as HTTP/1.1; any other upgrade is left alone. */
void carillon_http_confirm_upgrade(void *upgrade_value);

/* The lws protocol callback of the HTTP protocol (registered by server.c). */
int carillon_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
size_t carillon_http_pss_size(void);

/* Requests dispatched and not yet answered (for graceful shutdown). */
unsigned carillon_http_in_flight(void);

#endif
