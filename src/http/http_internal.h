/* The request object, private to the http layer and the dispatcher. */
#ifndef CARILLON_HTTP_INTERNAL_H
#define CARILLON_HTTP_INTERNAL_H

#include "carillon/auth.h"
#include "carillon/http.h"
#include "carillon/model.h"
#include "carillon/util.h"

enum carillon_req_state { REQ_READING, REQ_DISPATCHED, REQ_REPLIED, REQ_HEADERS_SENT };

struct carillon_req {
	struct lws *wsi;                 /* NULL once the client is gone */
	enum carillon_req_state state;
	char id[37];
	int64_t t_ms;
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

	struct carillon_route_match match;
	json_t *input;
	struct carillon_principal principal;
	void *handler_state;             /* owned by the handler while dispatched */

	int status;
	const char *error_type;
	char *resp;                      /* LWS_PRE headroom + body */
	size_t resp_len, resp_off;
	bool close_after;
};

/* Header lookup usable as carillon_header_fn / carillon_sigv4_header_fn: any header of the
 * request, whatever their number (no cache limit); NULL when absent. */
const char *carillon_req_header(void *ctx, const char *lower_name);

/* Fills `names` with up to `max` header names of the request (static storage); returns the count. */
size_t carillon_req_header_names(struct carillon_req *r, const char **names, size_t max);

/* The request path made safe to quote in a message or a log line: valid UTF-8 without control
 * characters, at most `size` - 1 bytes. */
const char *carillon_req_path_for_message(const struct carillon_req *r, char *buf, size_t size);

#endif
