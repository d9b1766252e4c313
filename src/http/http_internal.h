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
	const char *error_type;
	char *resp;                      /* LWS_PRE headroom + body */
	size_t resp_len, resp_off;
	bool close_after;
};

#endif
