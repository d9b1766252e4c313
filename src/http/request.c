/*
 * HTTP request assembly and response writing on libwebsockets (the state machine itself is in
 * lifecycle.c).
 *
 * Flow: LWS_CALLBACK_HTTP (headers complete) -> bounded body in LWS_CALLBACK_HTTP_BODY ->
 * dispatch at BODY_COMPLETION (or at once without a body) -> a handler replies later ->
 * the head and the body go in one lws_write (HTTP/1.1: one send, the body already has room for the
 * head in front of it), then any rest of a large body in LWS_CALLBACK_HTTP_WRITEABLE; an HTTP/2
 * stream gets its HEADERS and DATA frames in separate writes.
 *
 * When the reply is written: a reply to an HTTP/1.1 connection goes on a list that is written at
 * the end of the loop turn (carillon_http_write_now; a check handle), outside every lws callback —
 * lws takes what the socket does not (its partial-send buffer, flushed before its next callback) and
 * lws_http_transaction_completed defers itself until that is out. Asking lws for a writable
 * callback instead costs two more changes of the socket's poll events per reply, and each change is
 * an epoll_ctl DEL then ADD in libuv's uv_poll_start (BENCHMARKS.md, issue 11 session 8). HTTP/2
 * streams wait for the writable callback as before.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libwebsockets.h>
#include <uv.h>

#include "carillon/config.h"
#include "carillon/http.h"
#include "carillon/log.h"
#include "carillon/util.h"
#include "http_internal.h"

#define WRITE_CHUNK 65536

struct http_pss {
	struct carillon_req *req;
	char peer[48];     /* the client's address, read once per transaction when the access log is on */
};

size_t carillon_http_pss_size(void) { return sizeof(struct http_pss); }


/*
 * Headers. lws 4.1 parses the ~90 header names it knows into token slots (a repeated one becomes
 * several fragments, joined here with ",", as HTTP allows for repeated fields) and keeps every
 * other header in a list it can only search by name (4.1 has no way to enumerate it; of a
 * repeated unknown header, lookups see the first, for the signature and the handler alike). So when the head is complete every known
 * header is copied here, plus the unknown ones the server reads or the signature covers
 * (SignedHeaders); anything else is fetched by name on demand, without a fixed limit. Header
 * lines counted this way beyond CARILLON_MAX_HEADERS are refused with 431. The signature and
 * the handlers read headers through the same lookup, so they always see the same values.
 */
#define MAX_HEADER_NAME 128

static void hdr_add(struct carillon_req *r, const char *name, size_t nlen, char *value)
{
	if (r->n_hdr == r->cap_hdr) {
		r->cap_hdr = r->cap_hdr ? r->cap_hdr * 2 : 16;
		r->hdr = carillon_xrealloc(r->hdr, sizeof(*r->hdr) * (size_t)r->cap_hdr);
	}
	r->hdr[r->n_hdr].name = carillon_xstrndup(name, nlen);
	r->hdr[r->n_hdr].value = value;
	r->n_hdr++;
}

static const char *hdr_find(const struct carillon_req *r, const char *name, size_t nlen)
{
	for (int i = 0; i < r->n_hdr; i++)
		if (!strncmp(r->hdr[i].name, name, nlen) && !r->hdr[i].name[nlen])
			return r->hdr[i].value;
	return NULL;
}

/* lws's header tokens ("host:" -> "host", 4), read once: finding a header's token was a walk over
 * every token with a strlen each, for every header looked up (3 % of the gateway's CPU). */
struct header_tok {
	const char *name; /* "host" (not terminated there: lws's "host:") or NULL: not a header token */
	size_t len;
	bool pseudo;      /* an HTTP/2 pseudo-header (":path"), never one of a request's headers */
};
static struct header_tok header_toks[WSI_TOKEN_COUNT];
static pthread_once_t header_toks_once = PTHREAD_ONCE_INIT;

static void header_toks_init(void)
{
	for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
		const char *s = (const char *)lws_token_to_string((enum lws_token_indexes)t);
		size_t n = s ? strlen(s) : 0;
		/* Header tokens are "name:"; methods and the URI arguments are not. */
		if (n >= 2 && s[n - 1] == ':')
			header_toks[t] = (struct header_tok){s, n - 1, s[0] == ':'};
	}
}

/* The lws token index of a header name ("host" -> WSI_TOKEN_HOST), or -1 when lws keeps a header
 * of that name in its list of unknown ones. */
static int header_token(const char *lower_name, size_t n)
{
	pthread_once(&header_toks_once, header_toks_init);
	for (int t = 0; t < WSI_TOKEN_COUNT; t++)
		if (header_toks[t].name && header_toks[t].len == n && !memcmp(header_toks[t].name, lower_name, n))
			return t;
	return -1;
}

/* Value of a known header, and how many lines carried it. A repeated header is its lines' values,
 * each without surrounding blanks, joined with "," (what SigV4 signs for it); lws's own join keeps
 * the blanks that followed the colon of each later line. */
static char *known_header(struct lws *wsi, enum lws_token_indexes tok, int *lines)
{
	int len = lws_hdr_total_length(wsi, tok);
	if (len <= 0)
		return NULL;
	/* Most header values are short: their fragments are read into the stack, not a fresh block. */
	char stack_frag[512];
	char *frag = (size_t)len + 1 <= sizeof(stack_frag) ? stack_frag : carillon_xmalloc((size_t)len + 1);
	struct carillon_buf value = {0};
	int n;
	for (*lines = 0; (n = lws_hdr_copy_fragment(wsi, frag, len + 1, tok, *lines)) >= 0; (*lines)++) {
		const char *v = frag;
		size_t vn = (size_t)n;
		while (vn && (*v == ' ' || *v == '\t'))
			v++, vn--;
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		if (*lines)
			carillon_buf_append(&value, tok == WSI_TOKEN_HTTP_COOKIE ? "; " : ",", tok == WSI_TOKEN_HTTP_COOKIE ? 2 : 1);
		carillon_buf_append(&value, v, vn);
	}
	if (frag != stack_frag)
		free(frag);
	if (!value.data)
		return NULL;
	return value.data;
}

static char *unknown_header(struct lws *wsi, const char *name, size_t nlen)
{
	char key[MAX_HEADER_NAME + 2];
	if (!wsi || !nlen || nlen > MAX_HEADER_NAME)
		return NULL;
	memcpy(key, name, nlen);
	key[nlen] = ':';
	key[nlen + 1] = '\0';
	int len = lws_hdr_custom_length(wsi, key, (int)nlen + 1);
	if (len < 0)
		return NULL;
	char *value = carillon_xmalloc((size_t)len + 1);
	if (lws_hdr_custom_copy(wsi, value, len + 1, key, (int)nlen + 1) < 0) {
		free(value);
		return NULL;
	}
	return value;
}

/* One header straight from lws, known or not (malloc'd, NULL when absent). */
static char *lws_header(struct lws *wsi, const char *name)
{
	size_t n = strlen(name);
	int tok = header_token(name, n), lines;
	return tok >= 0 ? known_header(wsi, (enum lws_token_indexes)tok, &lines) : unknown_header(wsi, name, n);
}

/* Copy an unknown header into the request when present; counts as one line. */
static void read_unknown(struct carillon_req *r, struct lws *wsi, const char *name, size_t nlen)
{
	if (hdr_find(r, name, nlen) || header_token(name, nlen) >= 0)
		return;
	char *value = unknown_header(wsi, name, nlen);
	if (!value)
		return;
	hdr_add(r, name, nlen, value);
	r->n_header_lines++;
}

static bool is_header_name(const char *s, size_t n)
{
	if (!n || n > MAX_HEADER_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || (s[i] && strchr("-_.!#$%&'*+^`|~", s[i]))))
			return false;
	return true;
}

/* Read the headers of a complete head; false when there are more lines than allowed. */
static bool read_headers(struct carillon_req *r, struct lws *wsi)
{
	pthread_once(&header_toks_once, header_toks_init);
	for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
		const struct header_tok *h = &header_toks[t];
		if (!h->name || h->pseudo)
			continue;
		int lines;
		char *value = known_header(wsi, (enum lws_token_indexes)t, &lines);
		if (!value)
			continue;
		hdr_add(r, h->name, h->len, value);
		r->n_header_lines += lines;
	}
	/* The x-amz-* headers Carillon reads or the SDKs send (signed or not: the signed-header rule
	 * must see them). */
	static const char *const read_by_the_server[] = {"x-amz-date",         "x-amz-content-sha256",
							  "x-amz-security-token", "x-amz-chime-bearer",
							  "x-amz-user-agent",   "x-amz-target"};
	for (size_t i = 0; i < sizeof(read_by_the_server) / sizeof(read_by_the_server[0]); i++)
		read_unknown(r, wsi, read_by_the_server[i], strlen(read_by_the_server[i]));
	/* "...SignedHeaders=host;x-amz-date;...,": every header the signature covers. */
	const char *authz = hdr_find(r, "authorization", 13);
	const char *p = authz ? strstr(authz, "SignedHeaders=") : NULL;
	if (p) {
		p += 14;
		size_t total = strcspn(p, ", ");
		const char *end = p + total;
		for (long names = 0; p < end && names <= carillon_cfg.max_headers; names++) {
			size_t n = strcspn(p, ";, ");
			if (n > (size_t)(end - p))
				n = (size_t)(end - p);
			if (is_header_name(p, n))
				read_unknown(r, wsi, p, n);
			p += n + 1;
		}
	}
	return r->n_header_lines <= carillon_cfg.max_headers;
}

const char *carillon_req_header(void *ctx, const char *lower_name)
{
	struct carillon_req *r = ctx;
	size_t n = strlen(lower_name);
	const char *v = hdr_find(r, lower_name, n);
	/* Every known header was read with the head: only unknown ones are looked up later. */
	if (v || !r->wsi || header_token(lower_name, n) >= 0)
		return v;
	char *value = unknown_header(r->wsi, lower_name, n);
	if (!value)
		return NULL;
	hdr_add(r, lower_name, n, value);
	return value;
}

/* The header names of the request, for the SigV4 signed-header rule (carillon_sigv4_unsigned_header):
 * the headers read with the head (every one lws knows, the x-amz-* ones Carillon and the SDKs use,
 * every signed one) and any read since. lws 4.1 cannot list other names. Points into the request. */
size_t carillon_req_header_names(struct carillon_req *r, const char **names, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < r->n_hdr && n < max; i++)
		names[n++] = r->hdr[i].name;
	return n;
}

static const char *method_of(struct lws *wsi)
{
	static const struct {
		enum lws_token_indexes tok;
		const char *name;
	} methods[] = {
		{WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},   {WSI_TOKEN_PUT_URI, "PUT"},
		{WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
		{WSI_TOKEN_HEAD_URI, "HEAD"},
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
			return methods[i].name;
	return NULL;
}

int carillon_http_query_fragments(struct lws *wsi, int max_args, int max_len, char ***frags)
{
	int n = 0;
	*frags = NULL;
	for (;; n++) {
		int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, n);
		/* 0 is both "no such fragment" and "an empty one": only the copy tells them apart */
		char probe[1];
		if (len <= 0 && lws_hdr_copy_fragment(wsi, probe, sizeof(probe), WSI_TOKEN_HTTP_URI_ARGS, n) < 0)
			break;
		if (n >= max_args || len > max_len) {
			carillon_http_fragments_free(*frags, n);
			*frags = NULL;
			return -1;
		}
		*frags = carillon_xrealloc(*frags, sizeof(**frags) * (size_t)(n + 1));
		(*frags)[n] = carillon_xmalloc((size_t)len + 1);
		if (lws_hdr_copy_fragment(wsi, (*frags)[n], len + 1, WSI_TOKEN_HTTP_URI_ARGS, n) < 0)
			(*frags)[n][0] = '\0';
	}
	return n;
}

void carillon_http_fragments_free(char **frags, int n)
{
	for (int i = 0; i < n; i++)
		free(frags[i]);
	free(frags);
}

/* Query pairs, decoded by lws, and the query re-encoded for the signature: no argument is dropped
 * or cut (more than CARILLON_MAX_QUERY_ARGS: refused). */
static bool read_query(struct carillon_req *r, struct lws *wsi)
{
	char **frags;
	int n = carillon_http_query_fragments(wsi, (int)carillon_cfg.max_query_args, INT32_MAX - 1, &frags);
	struct carillon_buf raw = {0};
	for (int i = 0; i < n; i++) {
		const char *value = carillon_query_fragment(frags[i], &raw);
		r->query = carillon_xrealloc(r->query, sizeof(*r->query) * (r->n_query + 1));
		r->query[r->n_query].name = carillon_xstrdup(frags[i]);
		r->query[r->n_query].value = carillon_xstrdup(value);
		r->n_query++;
	}
	if (n > 0)
		carillon_http_fragments_free(frags, n);
	r->raw_query = raw.data ? raw.data : carillon_xstrdup("");
	return n >= 0;
}

/*
 * CORS, before anything else is judged, so that every answer a page gets (errors included) carries
 * the headers its browser needs to let the page read it. A preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered here from those headers alone: never authenticated,
 * never dispatched. Returns true when the request was answered.
 */
static bool cors(struct carillon_req *r, struct lws *wsi, const char *method)
{
	if (!carillon_cors_enabled())
		return false;
	char *origin = lws_header(wsi, "origin");
	if (!origin)
		return false;
	const char *allow = carillon_cors_allow_origin(origin);
	if (allow)
		r->cors_origin = carillon_xstrdup(allow);
	char *want_method = method && !strcmp(method, "OPTIONS") ? lws_header(wsi, "access-control-request-method") : NULL;
	free(origin);
	if (!want_method)
		return false;
	free(want_method);
	/* A preflight has no body; one that announces some is not read: the connection closes after. */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
	    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
		r->close_after = true;
	if (!r->cors_origin) {
		carillon_reply_error(r, CARILLON_ERR_FORBIDDEN, "Origin not allowed (CARILLON_CORS_ORIGINS)");
		return true;
	}
	char *requested = lws_header(wsi, "access-control-request-headers");
	char allowed[2048];
	carillon_cors_allow_headers(requested, allowed, sizeof(allowed));
	free(requested);
	r->cors_preflight_headers = carillon_xstrdup(allowed);
	carillon_reply_json(r, 204, NULL);
	return true;
}

static int on_http(struct lws *wsi, struct http_pss *pss, const char *path)
{
	const char *method = method_of(wsi);
	struct carillon_req *r = carillon_http_req_new(wsi, method, path);
	pss->req = r;
	/* The peer is for the access log only. lws binds the protocol again after every HTTP/1.1
	 * transaction, which gives the connection a fresh (zeroed) pss: reading it unconditionally
	 * was a getpeername() per request. */
	if (carillon_log_enabled(CARILLON_LOG_INFO)) {
		if (!pss->peer[0])
			lws_get_peer_simple(wsi, pss->peer, sizeof(pss->peer));
		memcpy(r->peer, pss->peer, sizeof(r->peer));
	}
	if (cors(r, wsi, method))
		return 0;
	bool query_read = read_query(r, wsi);

	if (!method) {
		r->close_after = true;
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "Unsupported HTTP method");
		return 0;
	}
	if (!read_headers(r, wsi)) {
		r->close_after = true;
		carillon_reply_error(r, CARILLON_ERR_HEADERS_TOO_LARGE,
				     "Request Header Fields Too Large: more than %ld header lines", carillon_cfg.max_headers);
		return 0;
	}
	if (!query_read) {
		r->close_after = true;
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "More than %ld query arguments (CARILLON_MAX_QUERY_ARGS)",
				     carillon_cfg.max_query_args);
		return 0;
	}
	carillon_http_req_head(r, carillon_req_header(r, "content-length"),
			       lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0);
	return 0;
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
					   (int)strlen(value), p, end);
}

/* The CORS headers of an answer (nothing when the request had no allowed Origin). The response
 * headers a page's SDK reads are exposed: the request id and the error type of an error. */
static int add_cors_headers(struct lws *wsi, const struct carillon_req *r, unsigned char **p, unsigned char *end)
{
	if (!r->cors_origin)
		return 0;
	if (add_header(wsi, "access-control-allow-origin:", r->cors_origin, p, end) ||
	    (strcmp(r->cors_origin, "*") && add_header(wsi, "vary:", "Origin", p, end)))
		return -1;
	if (!r->cors_preflight_headers)
		return add_header(wsi, "access-control-expose-headers:",
				  "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date", p, end);
	return add_header(wsi, "access-control-allow-methods:", "GET, POST, PUT, DELETE", p, end) ||
	       (r->cors_preflight_headers[0] &&
		add_header(wsi, "access-control-allow-headers:", r->cors_preflight_headers, p, end)) ||
	       add_header(wsi, "access-control-max-age:", "600", p, end);
}

/* The response head, built in `start` (LWS_PRE bytes of headroom before it); its length or -1. */
static int build_head(struct lws *wsi, struct carillon_req *r, unsigned char *start, unsigned char *end)
{
	unsigned char *p = start;
	if (lws_add_http_header_status(wsi, (unsigned)r->status, &p, end) ||
	    (r->status != 204 &&
	     lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)"application/json",
					  16, &p, end)) ||
	    add_cors_headers(wsi, r, &p, end) ||
	    (r->status != 204 && lws_add_http_header_content_length(wsi, r->resp_len, &p, end)) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-RequestId:", (const unsigned char *)r->id,
					(int)strlen(r->id), &p, end) ||
	    (r->error_type && lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-ErrorType:",
							  (const unsigned char *)r->error_type, (int)strlen(r->error_type),
							  &p, end)) ||
	    (r->close_after &&
	     lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end)) ||
	    lws_finalize_http_header(wsi, &p, end))
		return -1;
	return (int)(p - start);
}

/* Write up to WRITE_CHUNK more bytes of the body after resp_off, preceded by `head_len` bytes of
 * head already placed right before it; true when the body is done. */
static int write_body(struct lws *wsi, struct carillon_req *r, size_t head_len, bool *done)
{
	size_t left = r->resp_len - r->resp_off, n = left > WRITE_CHUNK ? WRITE_CHUNK : left;
	bool last = n == left;
	/* Writing in place: the LWS_PRE bytes before the data are scratch space for lws. */
	unsigned char *chunk = CARILLON_RESP_BODY(r) + r->resp_off - head_len;
	unsigned char save[LWS_PRE];
	memcpy(save, chunk - LWS_PRE, LWS_PRE);
	int w = lws_write(wsi, chunk, head_len + n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
	memcpy(chunk - LWS_PRE, save, LWS_PRE);
	if (w < (int)(head_len + n))
		return -1;
	r->resp_off += n;
	*done = last;
	return 0;
}

static int on_writeable(struct lws *wsi, struct http_pss *pss)
{
	struct carillon_req *r = pss->req;
	if (!r || r->state < REQ_REPLIED)
		return 0;
	bool done = false;
	if (r->state == REQ_REPLIED) {
		unsigned char hbuf[LWS_PRE + 4096], *start = hbuf + LWS_PRE;
		int head_len = build_head(wsi, r, start, hbuf + sizeof(hbuf) - 1);
		if (head_len < 0)
			return -1;
		r->state = REQ_HEADERS_SENT;
		/* HTTP/1.1 (the connection is its own network connection, not an HTTP/2 stream): the head
		 * goes right in front of the body and both leave in one send. */
		bool one_write = lws_get_network_wsi(wsi) == wsi && r->resp_len && head_len <= CARILLON_RESP_HEAD_ROOM &&
				 r->resp_len + (size_t)head_len <= WRITE_CHUNK; /* a longer body goes in chunks after its head */
		if (one_write) {
			memcpy(CARILLON_RESP_BODY(r) - head_len, start, (size_t)head_len);
			if (write_body(wsi, r, (size_t)head_len, &done))
				return -1;
		} else {
			if (lws_write(wsi, start, (size_t)head_len, LWS_WRITE_HTTP_HEADERS) != head_len)
				return -1;
			done = !r->resp_len;
		}
	} else if (write_body(wsi, r, 0, &done)) {
		return -1;
	}
	if (!done) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	bool close_after = r->close_after;
	carillon_http_req_free(r);
	pss->req = NULL;
	if (close_after || lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

/*
 * "Upgrade: h2c" on a cleartext connection (curl --http2 sends it): HTTP/2 is not served (see the
 * ALPN note in server.c: lws 4.1 would drop the x-amz-* headers), and lws 4.1 cannot be told to
 * decline an upgrade it knows, only to refuse the request or to perform it. So the Upgrade value
 * in lws's header table is blanked ("-2c") for the moment lws decides (it compares it right after
 * the LWS_CALLBACK_HTTP_CONFIRM_UPGRADE callback, which lws sends to the vhost's default protocol,
 * the session one): the request goes on as HTTP/1.1, which RFC 9110 lets a server do with any
 * Upgrade. The request's Upgrade header then reads "-2c": nothing reads it, and no client signs it
 * (lws keeps no pointer a later callback could safely restore it through).
 */
void carillon_http_confirm_upgrade(void *upgrade_value)
{
	char *up = upgrade_value;
	if (up && !strcasecmp(up, "h2c"))
		up[0] = '-';
}

/* The replies to write at the end of this loop turn: a list through the requests themselves
 * (carillon_http_req_free takes a request off it), written by a check handle, which libuv runs
 * after the turn's I/O callbacks — outside every lws callback and every caller of a reply. */
static struct carillon_req *ready_head, *ready_tail;
static uv_check_t ready_check;
/* Active while the list is not empty: libuv then polls without blocking, so a reply queued before
 * the poll phase (in a timer, an idle callback — lws serves buffered requests from one — or a
 * check) is written in this turn's check phase, not after the next I/O event or timer. */
static uv_idle_t ready_idle;
static bool ready_on;

static bool on_ready_list(const struct carillon_req *r) { return r == ready_head || r->ready_prev; }

static void ready_unlink(struct carillon_req *r)
{
	if (r->ready_prev)
		r->ready_prev->ready_next = r->ready_next;
	else
		ready_head = r->ready_next;
	if (r->ready_next)
		r->ready_next->ready_prev = r->ready_prev;
	else
		ready_tail = r->ready_prev;
	r->ready_next = r->ready_prev = NULL;
}

void carillon_http_write_cancel(struct carillon_req *r)
{
	if (on_ready_list(r))
		ready_unlink(r);
}

static struct http_pss *http_pss_of(struct lws *wsi);

static void ready_idle_cb(uv_idle_t *h) { (void)h; }

static void ready_flush(uv_check_t *h)
{
	(void)h;
	uv_idle_stop(&ready_idle);
	while (ready_head) {
		struct carillon_req *r = ready_head;
		ready_unlink(r);
		struct lws *wsi = r->wsi;
		struct http_pss *pss = http_pss_of(wsi);
		if (!pss || pss->req != r)
			continue; /* (cannot happen: a request leaves the list when it is freed or orphaned) */
		/* on_writeable's -1 is "close it" to lws in a callback; here it is closed at once (an
		 * asynchronous kill waits for lws's next timer, a second or more on an idle loop). The
		 * request is off the list and already freed or left to the close callback. */
		if (on_writeable(wsi, pss) < 0)
			lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
	}
}

/* The connection's per-session data, when it is bound to this protocol (else NULL). */
static struct http_pss *http_pss_of(struct lws *wsi)
{
	const struct lws_protocols *p = wsi ? lws_get_protocol(wsi) : NULL;
	return p && p->callback == carillon_http_callback ? lws_wsi_user(wsi) : NULL;
}

void carillon_http_write_now(struct lws *wsi)
{
	struct http_pss *pss = http_pss_of(wsi);
	struct carillon_req *r = pss ? pss->req : NULL;
	if (!ready_on || !r || lws_get_network_wsi(wsi) != wsi) {
		lws_callback_on_writable(wsi); /* HTTP/2 streams, and before start / after stop */
		return;
	}
	if (on_ready_list(r))
		return;
	if (!ready_head)
		uv_idle_start(&ready_idle, ready_idle_cb);
	r->ready_prev = ready_tail;
	if (ready_tail)
		ready_tail->ready_next = r;
	else
		ready_head = r;
	ready_tail = r;
}

void carillon_http_writes_start(uv_loop_t *loop)
{
	uv_check_init(loop, &ready_check);
	uv_check_start(&ready_check, ready_flush);
	uv_idle_init(loop, &ready_idle);
	ready_on = true;
}

static void ready_closed(uv_handle_t *h) { (void)h; }

void carillon_http_writes_stop(void)
{
	if (!ready_on)
		return;
	ready_on = false;
	uv_check_stop(&ready_check);
	uv_close((uv_handle_t *)&ready_check, ready_closed);
	uv_idle_stop(&ready_idle);
	uv_close((uv_handle_t *)&ready_idle, ready_closed);
	while (ready_head) { /* lws writes them, if their connections live on */
		struct carillon_req *r = ready_head;
		ready_unlink(r);
		if (r->wsi)
			lws_callback_on_writable(r->wsi);
	}
}

int carillon_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct http_pss *pss = user;
	/* lws may reject a request (bad escapes, oversized headers) before it allocates our pss. */
	if (!pss)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		carillon_http_req_closed(pss->req);
		pss->req = NULL;
		return on_http(wsi, pss, in);
	case LWS_CALLBACK_HTTP_BODY:
		carillon_http_req_body(pss->req, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		carillon_http_req_body_complete(pss->req);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_writeable(wsi, pss);
	case LWS_CALLBACK_CLOSED_HTTP:
		carillon_http_req_closed(pss->req);
		pss->req = NULL;
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
