/* The request object, private to the http layer (everyone else uses the accessors of http.h). */
#ifndef CARILLON_HTTP_INTERNAL_H
#define CARILLON_HTTP_INTERNAL_H

#include "carillon/http.h"
#include "carillon/util.h"

enum carillon_req_state { REQ_READING, REQ_DISPATCHED, REQ_REPLIED, REQ_HEADERS_SENT };

struct carillon_req {
	struct lws *wsi;                 /* NULL once the client is gone */
	enum carillon_req_state state;
	char id[37];
	int64_t t_ms;
	double t0;                       /* carillon_metrics_clock() at arrival, for the latency */
	const char *service, *operation; /* carillon_req_set_operation (static strings) */
	char peer[48];                   /* the client's address (request.c), "" when unknown */
	char method[8];
	char *path;                      /* percent-decoded by lws */
	struct carillon_kv *query;       /* decoded pairs */
	size_t n_query;
	char *raw_query;                 /* re-encoded, for SigV4 */
	/* Headers read from lws when the head is complete (see read_headers in request.c): lower-case
	 * name -> value, a repeated header joined with ",". Grows with lookups of other names. */
	struct carillon_kv *hdr;
	int n_hdr, cap_hdr;
	int n_header_lines;              /* header lines counted against CARILLON_MAX_HEADERS */
	size_t content_length;
	struct carillon_buf body;

	void *data;                      /* the dispatcher's, freed with data_free */
	void (*data_free)(void *data);

	int status;
	enum carillon_err_style err_style;
	const char *error_type;
	char *resp;                      /* LWS_PRE + CARILLON_RESP_HEAD_ROOM headroom, then the body */
	size_t resp_len, resp_off;
	bool close_after;
	/* CORS (cors.c): the Access-Control-Allow-Origin to send ("*", the request's Origin, or NULL:
	 * none), and for a preflight the allowed request headers to list. */
	char *cors_origin;
	char *cors_preflight_headers;    /* non-NULL: the answer is a preflight's */
	/* The list of replies written at the end of the loop turn (request.c). */
	struct carillon_req *ready_next, *ready_prev;
};

/* Room left before a response body for its head, so that head and body go out in one write. */
#define CARILLON_RESP_HEAD_ROOM 1024
/* The body of a reply inside r->resp. */
#define CARILLON_RESP_BODY(r) ((unsigned char *)(r)->resp + LWS_PRE + CARILLON_RESP_HEAD_ROOM)

/* The request state machine (lifecycle.c). */
struct carillon_req *carillon_http_req_new(struct lws *wsi, const char *method, const char *path);
void carillon_http_req_head(struct carillon_req *r, const char *content_length, bool chunked);
void carillon_http_req_body(struct carillon_req *r, const void *in, size_t len);
void carillon_http_req_body_complete(struct carillon_req *r);
void carillon_http_req_dispatch(struct carillon_req *r);
/* The client is gone: a dispatched request is orphaned (freed when answered), any other freed. */
void carillon_http_req_closed(struct carillon_req *r);
void carillon_http_req_free(struct carillon_req *r);
/* The reply is ready: carillon_http_write_now (the unit test records it instead). */
extern void (*carillon_http_want_write)(struct lws *wsi);
/* A reply is ready: an HTTP/1.1 connection's is written at the end of the loop turn, an HTTP/2
 * stream's in its writable callback (request.c). */
void carillon_http_write_now(struct lws *wsi);
/* The request is going: off that list. */
void carillon_http_write_cancel(struct carillon_req *r);
/* Requests alive (allocated, not freed). */
unsigned carillon_http_live(void);

/* CORS (cors.c). */
bool carillon_cors_enabled(void);
bool carillon_cors_any_origin(void);
const char *carillon_cors_allow_origin(const char *origin);
size_t carillon_cors_allow_headers(const char *requested, char *out, size_t size);

#endif
