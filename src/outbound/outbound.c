/*
 * Outbound HTTP on the event loop: libcurl's multi interface with its socket and timer callbacks
 * mapped onto uv_poll and uv_timer (the same loop lws and the database pool run on).
 *
 * A request becomes an easy handle at once (libcurl copies the URL; the header lines and the body
 * live in one allocation of ours, the request's), then waits in a FIFO until fewer than
 * max_in_flight transfers run. Finished transfers are collected after every curl_multi_socket_action
 * and their callbacks called there, outside any libcurl callback, so a callback may start new
 * requests; at most COMPLETIONS_PER_TURN and COMPLETIONS_BUDGET_NS of them per loop turn, the rest
 * on the next turn (an idle handle), so that a burst of answers does not hold the loop away from the
 * other connections for long. Likewise at most STARTS_PER_TURN waiting requests are handed to
 * libcurl per turn, and libcurl's "call me now" timeouts run from that idle handle, once per turn
 * (timerfn_cb).
 *
 * Easy handles are reused: a finished one is reset (curl_easy_reset keeps its buffers) and kept in
 * a small pool instead of being freed, so a steady stream of pushes allocates no handle per request.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "carillon/config.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/outbound.h"
#include "carillon/util.h"

struct ob_req {
	struct ob_req *next;           /* the wait queue, or the in-flight list */
	struct ob_req *prev;
	CURL *easy;
	struct curl_slist *headers;    /* nodes, lines and the request body: one block (`block`) */
	void *block;
	carillon_outbound_cb cb;
	void *arg;
	char *body;                    /* the response body, NUL-terminated */
	size_t body_len;
	bool too_large;
	char errbuf[CURL_ERROR_SIZE];  /* libcurl's detailed message (OpenSSL's alert, say) */
};

/* One watched socket. Freed in the uv_close callback: libuv may still reference the handle. */
struct ob_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct ob_sock *next, *prev;
};

/* Easy handles kept for reuse (each keeps some 20-60 KiB of libcurl buffers). */
#define EASY_POOL_MAX 64
/* Finished transfers whose callbacks run in one loop turn; the rest wait for the next turn. */
#define COMPLETIONS_PER_TURN 64
#define COMPLETIONS_BUDGET_NS 500000u
/* Transfers started per loop turn: libcurl starts every added transfer in its next timeout action
 * (request headers, HTTP/2 stream, body); 256 at once held the loop for up to 19 ms. */
#define STARTS_PER_TURN 32

static struct {
	bool running;
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t *timer;
	struct carillon_outbound_opts opts;
	X509_STORE *store;             /* trusted CAs: the system's and CARILLON_OUTBOUND_CA_FILE's */
	struct ob_req *q_head, *q_tail; /* waiting */
	size_t n_queued;
	struct ob_req *active;         /* running (doubly linked) */
	size_t n_active;
	struct ob_sock *socks;
	bool in_shutdown;
	CURL *pool[EASY_POOL_MAX];     /* reset handles ready for the next request */
	size_t n_pool;
	uv_idle_t *idle;               /* next loop turn: libcurl's due timeout, completions left */
	bool idle_on;
	bool timeout_due;              /* libcurl asked to be called "now" */
	bool backlog;                  /* completions left unread in libcurl's queue */
	bool pump_more;                /* requests wait for the next turn's starts */
	int started_this_turn;         /* transfers added since the idle handle last ran */
} ob;

static bool curl_global_done;

static void check_done(void);
static void idle_cb(uv_idle_t *h);
static void idle_update(void);
static bool curl_uses_openssl(void);
static void pump(void);

const char *carillon_outbound_error_name(enum carillon_outbound_error e)
{
	switch (e) {
	case CARILLON_OUTBOUND_OK: return "ok";
	case CARILLON_OUTBOUND_E_CONNECT: return "connect";
	case CARILLON_OUTBOUND_E_TIMEOUT: return "timeout";
	case CARILLON_OUTBOUND_E_TLS: return "tls";
	case CARILLON_OUTBOUND_E_PROTOCOL: return "protocol";
	case CARILLON_OUTBOUND_E_TOO_LARGE: return "too_large";
	case CARILLON_OUTBOUND_E_CANCELLED: return "cancelled";
	case CARILLON_OUTBOUND_E_INTERNAL: break;
	}
	return "internal";
}

bool carillon_outbound_error_transient(enum carillon_outbound_error e)
{
	return e == CARILLON_OUTBOUND_E_CONNECT || e == CARILLON_OUTBOUND_E_TIMEOUT ||
	       e == CARILLON_OUTBOUND_E_PROTOCOL;
}

static enum carillon_outbound_error classify(CURLcode rc, bool too_large, const char *detail)
{
	if (too_large)
		return CARILLON_OUTBOUND_E_TOO_LARGE;
	/* With TLS 1.3 the server judges the client certificate after the client's handshake is done:
	 * its refusal is an alert on the first read, which libcurl reports as a receive error. It is a
	 * TLS problem (a missing, unknown or revoked certificate), not a transient one. */
	if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) && strstr(detail, "alert"))
		return CARILLON_OUTBOUND_E_TLS;
	switch (rc) {
	case CURLE_OK:
		return CARILLON_OUTBOUND_OK;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return CARILLON_OUTBOUND_E_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return CARILLON_OUTBOUND_E_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
		return CARILLON_OUTBOUND_E_TLS;
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP3:
	case CURLE_QUIC_CONNECT_ERROR:
		return CARILLON_OUTBOUND_E_PROTOCOL;
	default:
		return CARILLON_OUTBOUND_E_INTERNAL;
	}
}

/* ------------------------------------------------------------------ loop glue */

static void sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static void sock_forget(struct ob_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		ob.socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct ob_sock *s = h->data;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	curl_multi_socket_action(ob.multi, s->fd, flags, &running);
	check_done();
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget a socket. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct ob_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(ob.multi, fd, NULL);
			sock_forget(s);
		}
		return 0;
	}
	if (!s) {
		s = carillon_xcalloc(1, sizeof(*s));
		if (uv_poll_init_socket(ob.loop, &s->poll, fd)) {
			free(s);
			return -1;     /* libcurl fails the transfer */
		}
		s->poll.data = s;
		s->fd = fd;
		s->next = ob.socks;
		if (ob.socks)
			ob.socks->prev = s;
		ob.socks = s;
		curl_multi_assign(ob.multi, fd, s);
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, poll_cb);
	return 0;
}

static void timer_cb(uv_timer_t *t)
{
	int running;
	curl_multi_socket_action(ob.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants to be called after timeout_ms (-1: never). Never act from
 * here (libcurl forbids re-entering). "Now" (0 ms) is run from the idle handle, once per loop turn
 * after the loop has polled: a 0 ms uv timer re-armed from its own callback runs again in the same
 * turn on libuv before 1.45 (Debian 12 has 1.44), so libcurl asking for "now" after every action
 * kept the loop in its timer phase for tens of milliseconds while thousands of transfers started. */
static int timerfn_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	(void)userp;
	if (timeout_ms == 0) {
		uv_timer_stop(ob.timer);
		ob.timeout_due = true;
		idle_update();
	} else if (timeout_ms < 0) {
		uv_timer_stop(ob.timer);
	} else {
		uv_timer_start(ob.timer, timer_cb, (uint64_t)timeout_ms, 0);
	}
	return 0;
}

/* ------------------------------------------------------------------ requests */

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
	struct ob_req *r = userp;
	size_t len = size * n;
	if (r->body_len + len > (size_t)ob.opts.max_response_bytes) {
		r->too_large = true;
		return 0;          /* CURLE_WRITE_ERROR ends the transfer */
	}
	r->body = carillon_xrealloc(r->body, r->body_len + len + 1);
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return len;
}

/* CURLOPT_SSL_CTX_FUNCTION (OpenSSL backend): every connection verifies against the one store
 * built at init. libcurl would otherwise parse the system CA bundle (~150 certificates, some
 * 30 ms) on the loop when it opens its first connection. */
static CURLcode ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *userp)
{
	SSL_CTX_set1_cert_store(ssl_ctx, ob.store);
	return CURLE_OK;
}

/* Back to the pool (reset: no option, header list or body of this request survives), or freed. */
static void easy_release(CURL *e)
{
	if (!e)
		return;
	if (ob.running && !ob.in_shutdown && ob.n_pool < EASY_POOL_MAX) {
		curl_easy_reset(e);
		ob.pool[ob.n_pool++] = e;
	} else {
		curl_easy_cleanup(e);
	}
}

static void req_free(struct ob_req *r)
{
	easy_release(r->easy);
	free(r->block);
	free(r->body);
	free(r);
}

static void active_unlink(struct ob_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		ob.active = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	ob.n_active--;
}

static void req_finish(struct ob_req *r, enum carillon_outbound_error err, const char *detail)
{
	struct carillon_outbound_resp resp = {
		.error = err,
		.error_detail = detail ? detail : "",
		.body = r->body ? r->body : "",
		.body_len = r->body_len,
		.internal_ = r->easy,
	};
	if (err == CARILLON_OUTBOUND_OK) {
		long version = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
		curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
		resp.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : version == CURL_HTTP_VERSION_3 ? 3 : 1;
	} else {
		resp.body = "";
		resp.body_len = 0;
	}
	curl_off_t total_us = 0;
	if (r->easy && curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
		resp.total_ms = (double)total_us / 1000.0;
	carillon_metrics_outbound(carillon_outbound_error_name(err));
	r->cb(r->arg, &resp);
	req_free(r);
}

/* The idle handle runs while libcurl's timeout is due, finished transfers are left unread, or
 * requests wait for the next turn's starts. */
static void idle_update(void)
{
	bool want = ob.multi && (ob.timeout_due || ob.backlog || ob.pump_more);
	if (!ob.idle || want == ob.idle_on)
		return;
	ob.idle_on = want;
	if (want)
		uv_idle_start(ob.idle, idle_cb);
	else
		uv_idle_stop(ob.idle);
}

static void idle_cb(uv_idle_t *h)
{
	(void)h;
	ob.started_this_turn = 0;
	if (ob.timeout_due && ob.multi) {
		int running;
		ob.timeout_due = false;
		curl_multi_socket_action(ob.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	check_done();
}

/* Collect finished transfers (at most COMPLETIONS_PER_TURN, and COMPLETIONS_BUDGET_NS of their
 * callbacks: the rest on the next loop turn), then start waiting ones. */
static void check_done(void)
{
	CURLMsg *m;
	int left = 0, done = 0;
	uint64_t t0 = uv_hrtime();
	/* ob.multi is NULL once a callback has shut the module down. */
	while (ob.multi && done < COMPLETIONS_PER_TURN && (done == 0 || uv_hrtime() - t0 < COMPLETIONS_BUDGET_NS) &&
	       (m = curl_multi_info_read(ob.multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		done++;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		struct ob_req *r = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(ob.multi, easy);
		active_unlink(r);
		const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
		req_finish(r, classify(rc, r->too_large, detail), detail);
	}
	/* More finished transfers than one turn's share: the rest after the loop has polled. */
	ob.backlog = ob.multi && left > 0;
	idle_update();
	pump();
}

/* A request waits and a slot is free. */
static bool can_start(void)
{
	return ob.running && !ob.in_shutdown && ob.q_head && ob.n_active < (size_t)ob.opts.max_in_flight;
}

static void pump(void)
{
	while (can_start() && ob.started_this_turn < STARTS_PER_TURN) {
		ob.started_this_turn++;
		struct ob_req *r = ob.q_head;
		ob.q_head = r->next;
		if (!ob.q_head)
			ob.q_tail = NULL;
		ob.n_queued--;
		r->next = ob.active;
		r->prev = NULL;
		if (ob.active)
			ob.active->prev = r;
		ob.active = r;
		ob.n_active++;
		CURLMcode mc = curl_multi_add_handle(ob.multi, r->easy);
		if (mc != CURLM_OK) {
			active_unlink(r);
			req_finish(r, CARILLON_OUTBOUND_E_INTERNAL, curl_multi_strerror(mc));
		}
	}
	/* This turn's starts used up with requests waiting for a free slot: the next ones next turn. */
	ob.pump_more = can_start();
	idle_update();
}

static bool header_line_ok(const char *h)
{
	const char *colon = strchr(h, ':');
	return colon && colon != h && !strpbrk(h, "\r\n");
}

static bool has_header(const struct carillon_outbound_req *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->n_headers; i++)
		if (!strncasecmp(req->headers[i], name, n) && req->headers[i][n] == ':')
			return true;
	return false;
}

/* A handle from the pool, else a new one. `body`: the request body in r's block (not copied). */
static CURL *easy_new(const struct carillon_outbound_req *req, struct ob_req *r, const char *body)
{
	CURL *e = ob.n_pool ? ob.pool[--ob.n_pool] : curl_easy_init();
	if (!e)
		return NULL;
	bool https = !strncasecmp(req->url, "https://", 8);
	long version = CURL_HTTP_VERSION_1_1;
	if (req->http == CARILLON_OUTBOUND_HTTP2_PRIOR)
		version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	else if (req->http == CARILLON_OUTBOUND_HTTP_AUTO && https)
		version = CURL_HTTP_VERSION_2TLS;
	long timeout = req->timeout_ms > 0 ? req->timeout_ms : ob.opts.default_timeout_ms;
	const char *method = req->method ? req->method : req->body ? "POST" : "GET";
	bool ok =
		curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version) == CURLE_OK &&
		/* Wait for the connection being set up rather than opening a second one to that origin.
		 * Not for h2c prior knowledge: libcurl 7.88 breaks the transfers that wait on such a
		 * connection (HTTP/2 framing error; curl's CLI with --http2-prior-knowledge -Z too), so
		 * those open their own connection until one is up, and multiplex on it afterwards. */
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, req->http == CARILLON_OUTBOUND_HTTP2_PRIOR ? 0L : 1L) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ob.opts.connect_timeout_ms) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_PRIVATE, r) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
		curl_easy_setopt(e, CURLOPT_USERAGENT, "carillon/" CARILLON_VERSION) == CURLE_OK;
	if (ok && req->body) {
		ok = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) == CURLE_OK;
	}
	if (ok && strcmp(method, req->body ? "POST" : "GET"))
		ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	if (ok && req->client_cert_pem) {
		struct curl_blob cert = {(void *)req->client_cert_pem, strlen(req->client_cert_pem), CURL_BLOB_COPY};
		struct curl_blob key = {(void *)req->client_key_pem, strlen(req->client_key_pem), CURL_BLOB_COPY};
		ok = curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM") == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM") == CURLE_OK;
	}
	if (ok && ob.store && https)
		ok = curl_easy_setopt(e, CURLOPT_CAINFO, NULL) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_CAPATH, NULL) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb) == CURLE_OK;
	if (!ok) {
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

/* The request's header list, its lines and its body in one allocation (r->block): one malloc per
 * request instead of two per header line. libcurl only reads the list; we free the block. Besides
 * the caller's lines: no headers of libcurl's own invention beyond Host, User-Agent, Content-Length
 * and Accept (no form Content-Type for a body the caller did not type, no Expect: 100-continue).
 * Returns the body's copy in the block (NULL when there is none), *ok false for a bad line. */
static const char *block_new(const struct carillon_outbound_req *req, struct ob_req *r, bool *ok)
{
	static const char *const off[] = {"Content-Type:", "Expect:"};
	const char *extra[2];
	size_t n_extra = 0, text = 0;
	*ok = true;
	for (size_t i = 0; i < req->n_headers; i++) {
		if (!header_line_ok(req->headers[i])) {
			*ok = false;
			return NULL;
		}
		text += strlen(req->headers[i]) + 1;
	}
	if (!has_header(req, "Content-Type"))
		extra[n_extra++] = off[0];
	if (!has_header(req, "Expect"))
		extra[n_extra++] = off[1];
	for (size_t i = 0; i < n_extra; i++)
		text += strlen(extra[i]) + 1;
	size_t n = req->n_headers + n_extra;
	size_t body_len = req->body ? req->body_len : 0;
	char *blk = carillon_xmalloc(n * sizeof(struct curl_slist) + text + body_len + 1);
	struct curl_slist *nodes = (struct curl_slist *)(void *)blk;
	char *p = blk + n * sizeof(struct curl_slist);
	for (size_t i = 0; i < n; i++) {
		const char *line = i < req->n_headers ? req->headers[i] : extra[i - req->n_headers];
		size_t len = strlen(line);
		memcpy(p, line, len + 1);
		nodes[i].data = p;
		nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
		p += len + 1;
	}
	if (body_len)
		memcpy(p, req->body, body_len);
	p[body_len] = '\0';
	r->block = blk;
	r->headers = n ? nodes : NULL;
	return req->body ? p : NULL;
}

int carillon_outbound_request(const struct carillon_outbound_req *req, carillon_outbound_cb cb, void *arg)
{
	if (!ob.running || ob.in_shutdown || !req || !req->url || !cb)
		return -1;
	if (strncasecmp(req->url, "https://", 8) && strncasecmp(req->url, "http://", 7))
		return -1;
	if (req->n_headers && !req->headers)
		return -1;
	if (!req->client_cert_pem != !req->client_key_pem)
		return -1;
	if (ob.n_queued >= (size_t)ob.opts.max_queued && ob.n_active >= (size_t)ob.opts.max_in_flight)
		return -1;
	struct ob_req *r = carillon_xcalloc(1, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	bool ok;
	const char *body = block_new(req, r, &ok);
	if (ok)
		r->easy = easy_new(req, r, body);
	if (!ok || !r->easy || curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK) {
		req_free(r);
		return -1;
	}
	if (ob.q_tail)
		ob.q_tail->next = r;
	else
		ob.q_head = r;
	ob.q_tail = r;
	ob.n_queued++;
	/* Adding the handle only arms libcurl's timer; the transfer (and any callback) starts on a
	 * later loop turn, never inside this call. */
	pump();
	return 0;
}

long carillon_outbound_retry_after_ms(const struct carillon_outbound_resp *resp)
{
	const char *v = carillon_outbound_header(resp, "retry-after");
	if (!v)
		return 0;
	while (*v == ' ' || *v == '\t')
		v++;
	char *end;
	long s = strtol(v, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	if (end != v && !*end && s >= 0)
		return s > 86400 ? 86400000L : s * 1000;
	time_t t = curl_getdate(v, NULL);
	int64_t d = t > 0 ? (int64_t)t * 1000 - carillon_now_ms() : 0;
	return d > 0 ? (long)(d > 86400000 ? 86400000 : d) : 0;
}

const char *carillon_outbound_header(const struct carillon_outbound_resp *resp, const char *name)
{
	struct curl_header *h;
	if (!resp || !resp->internal_ || resp->error != CARILLON_OUTBOUND_OK)
		return NULL;
	if (curl_easy_header(resp->internal_, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	/* several of one name: the last */
	size_t amount = h->amount;
	if (amount > 1 && curl_easy_header(resp->internal_, name, amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return h->value;
}

size_t carillon_outbound_in_flight(void) { return ob.n_active; }
size_t carillon_outbound_queued(void) { return ob.n_queued; }

/* ------------------------------------------------------------------ start and stop */

/* Add the PEM certificates of `path` to the store: 0, or -1 (logged) when it cannot be read or
 * holds none. */
static int ca_add_file(X509_STORE *store, const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	if (!bio) {
		log_err("CARILLON_OUTBOUND_CA_FILE %s cannot be read", path);
		ERR_clear_error();
		return -1;
	}
	int n = 0;
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		n += X509_STORE_add_cert(store, x) == 1;   /* the store takes its own reference */
		X509_free(x);
	}
	ERR_clear_error();  /* the end of the file reads as an error; so does a duplicate */
	BIO_free(bio);
	if (n == 0) {
		log_err("CARILLON_OUTBOUND_CA_FILE %s holds no PEM certificate", path);
		return -1;
	}
	return 0;
}

/* The system store (OpenSSL's default file, loaded now, and its hashed directory, read lazily)
 * plus the extra file. NULL when libcurl does not use OpenSSL: it then keeps its own defaults. */
static X509_STORE *store_build(const char *ca_file, int *rc)
{
	*rc = 0;
	if (!curl_uses_openssl()) {
		if (ca_file && *ca_file) {
			log_err("CARILLON_OUTBOUND_CA_FILE needs libcurl built with OpenSSL (this one: %s)",
				curl_version_info(CURLVERSION_NOW)->ssl_version);
			*rc = -1;
		}
		return NULL;
	}
	X509_STORE *store = X509_STORE_new();
	if (!store || X509_STORE_set_default_paths(store) != 1 ||
	    (ca_file && *ca_file && ca_add_file(store, ca_file))) {
		X509_STORE_free(store);
		ERR_clear_error();
		*rc = -1;
		return NULL;
	}
	ERR_clear_error();
	return store;
}

void carillon_outbound_opts_from_config(struct carillon_outbound_opts *o)
{
	o->max_in_flight = carillon_cfg.outbound_max_in_flight;
	o->max_queued = carillon_cfg.outbound_max_queued;
	o->default_timeout_ms = carillon_cfg.outbound_timeout_ms;
	o->connect_timeout_ms = carillon_cfg.outbound_connect_timeout_ms;
	o->max_response_bytes = carillon_cfg.outbound_max_response_bytes;
	o->ca_file = carillon_cfg.outbound_ca_file;
}

static bool curl_uses_openssl(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v->ssl_version && !strncmp(v->ssl_version, "OpenSSL", 7);
}

int carillon_outbound_init(uv_loop_t *loop, const struct carillon_outbound_opts *opts)
{
	if (ob.running)
		return 0;
	/* Once per process, before any other thread could use libcurl. */
	if (!curl_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_err("libcurl cannot start");
			return -1;
		}
		curl_global_done = true;
	}
	memset(&ob, 0, sizeof(ob));
	ob.opts = *opts;
	if (ob.opts.max_in_flight < 1)
		ob.opts.max_in_flight = 1;
	if (ob.opts.max_queued < 0)
		ob.opts.max_queued = 0;
	if (ob.opts.default_timeout_ms < 1)
		ob.opts.default_timeout_ms = 10000;
	if (ob.opts.connect_timeout_ms < 1)
		ob.opts.connect_timeout_ms = ob.opts.default_timeout_ms;
	if (ob.opts.max_response_bytes < 1)
		ob.opts.max_response_bytes = 65536;
	ob.opts.ca_file = NULL;   /* not kept: the certificates are */
	int rc;
	ob.store = store_build(opts->ca_file, &rc);
	if (rc)
		return -1;
	ob.multi = curl_multi_init();
	if (!ob.multi) {
		X509_STORE_free(ob.store);
		ob.store = NULL;
		return -1;
	}
	curl_multi_setopt(ob.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(ob.multi, CURLMOPT_TIMERFUNCTION, timerfn_cb);
	curl_multi_setopt(ob.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	/* libcurl's default of 100 streams per connection is kept: with all transfers on one connection
	 * (CURLMOPT_MAX_CONCURRENT_STREAMS raised to the in-flight bound) one socket's reads serialised
	 * every answer, and CPU per push went up by a quarter (docs/perf/push.md). */
	ob.loop = loop;
	ob.timer = carillon_xmalloc(sizeof(*ob.timer));
	uv_timer_init(loop, ob.timer);
	ob.idle = carillon_xmalloc(sizeof(*ob.idle));
	uv_idle_init(loop, ob.idle);
	ob.running = true;
	return 0;
}

static void timer_closed(uv_handle_t *h) { free(h); }

void carillon_outbound_shutdown(void)
{
	if (!ob.running || ob.in_shutdown)
		return;
	ob.in_shutdown = true;   /* callbacks below cannot start new requests */
	while (ob.active) {
		struct ob_req *r = ob.active;
		curl_multi_remove_handle(ob.multi, r->easy);
		active_unlink(r);
		req_finish(r, CARILLON_OUTBOUND_E_CANCELLED, "shutting down");
	}
	while (ob.q_head) {
		struct ob_req *r = ob.q_head;
		ob.q_head = r->next;
		ob.n_queued--;
		req_finish(r, CARILLON_OUTBOUND_E_CANCELLED, "shutting down");
	}
	ob.q_tail = NULL;
	/* Closes the cached connections; their sockets may be reported (CURL_POLL_REMOVE) meanwhile. */
	curl_multi_cleanup(ob.multi);
	ob.multi = NULL;
	while (ob.n_pool)
		curl_easy_cleanup(ob.pool[--ob.n_pool]);
	uv_idle_stop(ob.idle);
	uv_close((uv_handle_t *)ob.idle, timer_closed);
	ob.idle = NULL;
	ob.idle_on = ob.timeout_due = ob.backlog = ob.pump_more = false;
	while (ob.socks)
		sock_forget(ob.socks);
	uv_timer_stop(ob.timer);
	uv_close((uv_handle_t *)ob.timer, timer_closed);
	ob.timer = NULL;
	X509_STORE_free(ob.store);
	ob.store = NULL;
	ob.running = false;
	ob.in_shutdown = false;
}
