/*
 * The HTTP side of one API request. The http layer owns a request object from the moment the
 * headers arrive until the response is written; a handler never touches the socket: it answers
 * with carillon_reply_json()/carillon_reply_error(), and the http layer writes when writable.
 * If the client goes away while a handler waits on the database, the request is orphaned and
 * freed when the handler replies.
 */
#ifndef CARILLON_HTTP_H
#define CARILLON_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "carillon/auth.h"
#include "carillon/model.h"

/* One error currency: the AWS error shapes of both Chime services. */
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
};

struct carillon_req;

/* Accessors for handlers. */
const struct carillon_op *carillon_req_op(const struct carillon_req *r);
json_t *carillon_req_input(const struct carillon_req *r);        /* validated input (borrowed) */
const struct carillon_principal *carillon_req_principal(const struct carillon_req *r);
const char *carillon_req_id(const struct carillon_req *r);
int64_t carillon_req_time_ms(const struct carillon_req *r);       /* when the request arrived */

/* Answer with the operation's modeled status (status 0) or an explicit one; `body` is stolen
 * (NULL: empty body). */
void carillon_reply_json(struct carillon_req *r, int status, json_t *body);
void carillon_reply_error(struct carillon_req *r, enum carillon_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The lws protocol callback of the HTTP protocol (registered by server.c). */
int carillon_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
size_t carillon_http_pss_size(void);

/* Requests dispatched and not yet answered (for graceful shutdown). */
unsigned carillon_http_in_flight(void);

/* Carillon's own routes outside the AWS models: /healthz, /carillon/... Returns true when the
 * request was taken. */
bool carillon_api_extra_route(struct carillon_req *r, const char *method, const char *path);

/* The dispatcher: called once a request is complete (route, auth, validation, handler). */
void carillon_api_dispatch(struct carillon_req *r);

#endif
