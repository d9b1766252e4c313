/*
 * GET /metrics on its own address (CARILLON_METRICS_LISTEN), never on the public port.
 *
 * A tiny libuv TCP server on the process's loop rather than a second lws vhost: it shares nothing
 * with the public listener (no TLS settings, header pool, SigV4, dispatcher or connection limits
 * of the API), so no public request can ever reach it and a scraper cannot take anything from API
 * clients. It speaks just enough HTTP/1.1: one request per connection, answered and closed.
 *
 * Bounded: at most MAX_CLIENTS connections (more are closed at once), a request head of at most
 * MAX_HEAD bytes, and each connection lives at most CLIENT_DEADLINE_MS whatever it sends or fails
 * to read. The bytes received are only searched for the end of the head and the request line is
 * split on spaces: any input gets a 400, 404 or 405, never more.
 *
 * The log head (carillon.log_position()) is read per scrape, one query shared by the scrapes
 * waiting for it, for at most HEAD_WAIT_MS; then the last value known is used. It is never shown
 * below the listener's position (the listener has read it, so the log reaches at least that far),
 * so the lag is never negative.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/metrics_endpoint.h"
#include "carillon/realtime.h"
#include "carillon/util.h"

#define MAX_CLIENTS 16
#define MAX_HEAD 8192
#define CLIENT_DEADLINE_MS 10000
#define HEAD_WAIT_MS 1000

enum client_state { C_READING, C_WAITING, C_WRITING, C_CLOSING };

struct client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	enum client_state state;
	int open_handles;
	bool head_only;           /* HEAD /metrics */
	char buf[MAX_HEAD];
	size_t len;
	char *resp;
	struct client *prev, *next;
};

static struct {
	uv_loop_t *loop;
	uv_tcp_t server;
	bool running;
	struct client *clients;
	int n_clients;
	bool head_query;          /* a log_position query is in flight */
	int64_t log_head;
} ep = {.log_head = -1};

static void client_handle_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	if (--c->open_handles)
		return;
	free(c->resp);
	free(c);
}

static void client_close(struct client *c)
{
	if (c->state == C_CLOSING)
		return;
	c->state = C_CLOSING;
	if (c->prev)
		c->prev->next = c->next;
	else
		ep.clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ep.n_clients--;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, client_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, client_handle_closed);
}

static void deadline(uv_timer_t *t) { client_close(t->data); }

static void written(uv_write_t *w, int status)
{
	client_close(w->data);
}

static void respond(struct client *c, int status, const char *reason, const char *ctype, const char *body, size_t len)
{
	struct carillon_buf out = {0};
	carillon_buf_appendf(&out,
			     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
			     "Cache-Control: no-store\r\n\r\n",
			     status, reason, ctype, len);
	if (!c->head_only)
		carillon_buf_append(&out, body, len);
	c->resp = out.data;
	c->state = C_WRITING;
	uv_timer_start(&c->timer, deadline, CLIENT_DEADLINE_MS, 0); /* a client that does not read */
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_buf_t b = uv_buf_init(c->resp, (unsigned)out.len);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, written))
		client_close(c);
}

static void respond_text(struct client *c, int status, const char *reason, const char *text)
{
	respond(c, status, reason, "text/plain; charset=utf-8", text, strlen(text));
}

static void respond_metrics(struct client *c)
{
	struct carillon_metrics_sample s = {.log_head = ep.log_head, .listener_position = carillon_listener_position()};
	if (s.listener_position > s.log_head)
		s.log_head = s.listener_position;
	carillon_db_stats(&s.db_connections_up, &s.db_connections_busy, &s.db_queued);
	carillon_metrics_collect(&s);
	struct carillon_buf body = {0};
	carillon_metrics_render(&body);
	respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.data ? body.data : "", body.len);
	carillon_buf_free(&body);
}

/* Answer every scrape waiting for the log head. */
static void answer_waiting(void)
{
	for (struct client *c = ep.clients, *next; c; c = next) {
		next = c->next;
		if (c->state == C_WAITING)
			respond_metrics(c);
	}
}

/* The outbox kinds the gauges know (a fixed set: a label value never comes from the database). */
static const char *const outbox_kinds[] = {"push", "flow"};

/* Depth and oldest age per kind from "kind|rows|age_seconds;..." (kinds without rows: 0). */
static void outbox_gauges(const char *text)
{
	for (size_t k = 0; k < sizeof(outbox_kinds) / sizeof(outbox_kinds[0]); k++) {
		long depth = 0;
		double age = 0;
		size_t n = strlen(outbox_kinds[k]);
		for (const char *p = text; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL)
			if (!strncmp(p, outbox_kinds[k], n) && p[n] == '|' && sscanf(p + n + 1, "%ld|%lf", &depth, &age) == 2)
				break;
		carillon_metrics_outbox(outbox_kinds[k], depth, age, NULL);
	}
}

static void head_read(void *arg, const struct carillon_db_result *r)
{
	ep.head_query = false;
	if (r->res && PQntuples(r->res) == 1) {
		ep.log_head = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
		outbox_gauges(PQgetvalue(r->res, 0, 1));
	}
	answer_waiting();
}

static void head_wait_over(uv_timer_t *t)
{
	struct client *c = t->data;
	if (c->state == C_WAITING)
		respond_metrics(c);
}

/* The log head, and the outboxes' depth and oldest age per kind ("kind|rows|seconds;..."). */
#define OUTBOX_HEAD_SQL                                                                                        \
	"select carillon.log_position(), coalesce((select string_agg(kind || '|' || n || '|' || age, ';')"     \
	" from (select kind, count(*) n, extract(epoch from now() - min(created_at))::float8 age"              \
	" from carillon.outbox group by kind) o), '')"

static void wait_for_head(struct client *c)
{
	c->state = C_WAITING;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (!ep.head_query) {
		/* Set before the call: a query that fails at once answers (head_read) from inside it. */
		ep.head_query = true;
		if (carillon_db_query(OUTBOX_HEAD_SQL, 0, NULL, head_read, NULL)) {
			ep.head_query = false;
			respond_metrics(c);
			return;
		}
	}
	if (c->state != C_WAITING) /* answered already, and its write deadline armed */
		return;
	uv_timer_stop(&c->timer);
	uv_timer_start(&c->timer, head_wait_over, HEAD_WAIT_MS, 0);
}

/* The request line of a complete head: METHOD SP TARGET SP HTTP/1.x */
static enum carillon_metrics_head request_line(const char *buf, size_t len)
{
	char line[256];
	size_t n = 0;
	while (n < len && buf[n] != '\r' && buf[n] != '\n')
		n++;
	if (n >= sizeof(line))
		return CARILLON_METRICS_HEAD_BAD;
	memcpy(line, buf, n);
	line[n] = '\0';
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7))
		return CARILLON_METRICS_HEAD_BAD;
	*sp1 = *sp2 = '\0';
	const char *method = line, *target = sp1 + 1;
	size_t path_len = strcspn(target, "?");
	if (path_len != 8 || strncmp(target, "/metrics", 8))
		return CARILLON_METRICS_HEAD_NOT_FOUND;
	if (!strcmp(method, "HEAD"))
		return CARILLON_METRICS_HEAD_HEAD;
	return strcmp(method, "GET") ? CARILLON_METRICS_HEAD_METHOD : CARILLON_METRICS_HEAD_GET;
}

enum carillon_metrics_head carillon_metrics_parse_head(const char *buf, size_t len, size_t max)
{
	/* The head ends with an empty line; a NUL byte in it is not HTTP. */
	if (memchr(buf, '\0', len))
		return CARILLON_METRICS_HEAD_BAD;
	if (memmem(buf, len, "\r\n\r\n", 4) || memmem(buf, len, "\n\n", 2))
		return request_line(buf, len);
	return len >= max ? CARILLON_METRICS_HEAD_TOO_LARGE : CARILLON_METRICS_HEAD_INCOMPLETE;
}

static void handle_head(struct client *c, enum carillon_metrics_head h)
{
	switch (h) {
	case CARILLON_METRICS_HEAD_INCOMPLETE:
		return;
	case CARILLON_METRICS_HEAD_GET:
	case CARILLON_METRICS_HEAD_HEAD:
		c->head_only = h == CARILLON_METRICS_HEAD_HEAD;
		wait_for_head(c);
		return;
	case CARILLON_METRICS_HEAD_NOT_FOUND:
		respond_text(c, 404, "Not Found", "only /metrics is served here\n");
		return;
	case CARILLON_METRICS_HEAD_METHOD:
		respond_text(c, 405, "Method Not Allowed", "GET /metrics\n");
		return;
	case CARILLON_METRICS_HEAD_TOO_LARGE:
		respond_text(c, 431, "Request Header Fields Too Large", "request head too large\n");
		return;
	case CARILLON_METRICS_HEAD_BAD:
	default:
		respond_text(c, 400, "Bad Request", "bad request\n");
		return;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct client *c = h->data;
	/* one byte short of the buffer: a head of sizeof(buf) - 1 bytes without its end is too large */
	*b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct client *c = s->data;
	if (c->state != C_READING)
		return;
	if (nread < 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)nread;
	handle_head(c, carillon_metrics_parse_head(c->buf, c->len, sizeof(c->buf) - 1));
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	struct client *c = carillon_xcalloc(1, sizeof(*c));
	uv_tcp_init(ep.loop, &c->tcp);
	c->tcp.data = c;
	c->open_handles = 1;
	if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
		uv_close((uv_handle_t *)&c->tcp, client_handle_closed);
		return;
	}
	if (ep.n_clients >= MAX_CLIENTS || !ep.running) {
		uv_close((uv_handle_t *)&c->tcp, client_handle_closed);
		return;
	}
	uv_timer_init(ep.loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	c->next = ep.clients;
	if (ep.clients)
		ep.clients->prev = c;
	ep.clients = c;
	ep.n_clients++;
	uv_timer_start(&c->timer, deadline, CLIENT_DEADLINE_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* The port of CARILLON_METRICS_LISTEN: a number (1-65535), then + port_offset; 0 when invalid. */
static int metrics_port(const char *text, int port_offset)
{
	char *end;
	long p = strtol(text, &end, 10);
	return *end || p < 1 || p + port_offset > 65535 ? 0 : (int)(p + port_offset);
}

int carillon_metrics_server_start(uv_loop_t *loop, const char *listen_addr, int port_offset)
{
	if (!listen_addr || !*listen_addr)
		return 0;
	char host[256], port_text[16];
	struct sockaddr_storage sa;
	int port = carillon_split_host_port(listen_addr, host, sizeof(host), port_text, sizeof(port_text))
			   ? 0
			   : metrics_port(port_text, port_offset);
	if (!port ||
	    (uv_ip4_addr(*host ? host : "0.0.0.0", port, (struct sockaddr_in *)&sa) &&
	     uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa))) {
		log_err("CARILLON_METRICS_LISTEN must be ip:port (e.g. 127.0.0.1:9464), not '%s'", listen_addr);
		return -1;
	}
	ep.loop = loop;
	uv_tcp_init(loop, &ep.server);
	int rc = uv_tcp_bind(&ep.server, (const struct sockaddr *)&sa, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&ep.server, 64, on_connection);
	if (rc) {
		log_err("cannot serve metrics on %s: %s", listen_addr, uv_strerror(rc));
		uv_close((uv_handle_t *)&ep.server, NULL);
		return -1;
	}
	ep.running = true;
	log_notice("metrics on http://%s/metrics", listen_addr);
	return 0;
}

void carillon_metrics_server_stop(void)
{
	if (!ep.running)
		return;
	ep.running = false;
	while (ep.clients)
		client_close(ep.clients);
	uv_close((uv_handle_t *)&ep.server, NULL);
}
