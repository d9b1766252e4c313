/*
 * The connection pool: non-blocking libpq connections driven by uv_poll on the event loop.
 *
 * Every connection runs in libpq's pipeline mode: up to CARILLON_DB_PIPELINE_DEPTH statements are in
 * flight on one connection, each followed by its own Sync, so each is its own implicit transaction
 * and one statement's error does not abort the next (the server skips only to the Sync). Results
 * come back in the order sent; a connection keeps its in-flight queries in a FIFO and answers the
 * head when its Sync arrives. A statement text is prepared once per connection (Parse with a name,
 * in the same pipeline segment as its first execution) and executed by name afterwards, so
 * PostgreSQL does not parse and plan the gateway's few fixed texts per request. A new connection
 * starts with an empty cache (prepared statements live in the server session).
 *
 * The write lanes (carillon_db_query_lane, the write batches): lane i's queries go to one connection
 * (conns[i], another one while it is down), in the order queued, pipelined like any other: the next
 * one waits at the server behind the one running and starts as soon as it commits, without a round
 * trip through the gateway, and two of one lane never run at the same time. Different lanes run at
 * once, on different connections (the batcher gives every channel one lane: docs/db-pipeline.md).
 * Other queries use a lane's connection only when no other has room.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/hmap.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Distinct statement texts prepared per connection; beyond, a text runs unnamed (parsed each time).
 * The gateway's texts are fixed (one per operation function and a few more), far fewer than this;
 * the bound keeps a caller that builds texts with values in them from growing the cache without end. */
#define STMT_CACHE_MAX 512

struct db_query {
	struct db_query *next;
	char *sql;
	int nparams;
	char **params;
	int *lengths, *formats;   /* binary parameters: their lengths, and 1 for each; NULL for text */
	carillon_db_cb cb;
	void *arg;
	/* in flight: its Parse precedes it in the same pipeline segment (statement stmt_name) */
	bool parse_sent;
	bool parse_seen;          /* the Parse's own result has come back */
	PGresult *parse_err;      /* the Parse failed: what the query answers */
	char stmt_name[16];
};

/* A statement text's entry in a connection's cache. */
struct db_stmt {
	char name[16];
	bool ready;               /* its Parse succeeded; until then other queries of the text run unnamed */
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct db_conn {
	PGconn *pg;
	enum conn_state state;
	uv_poll_t *poll;          /* reallocated when libpq's socket changes */
	int fd;
	int events;               /* what poll watches: uv_poll_start is skipped when that is unchanged */
	uv_timer_t retry;
	int backoff_ms;
	struct db_query *fl_head, *fl_tail; /* in flight, in the order sent */
	int n_flight;
	PGresult *last;           /* last result of the head query */
	bool listener;            /* the dedicated LISTEN connection: takes no queued queries */
	struct carillon_hmap stmts; /* statement text -> struct db_stmt */
	int n_stmts;
	unsigned next_stmt;
};

static uv_loop_t *db_loop;
static char *db_conninfo;
/* The connection parameters: the user's conninfo, with the quota settings added to `options`. */
static char **db_keys, **db_vals; /* NULL when libpq cannot parse the conninfo */
static struct db_conn *conns;
static int n_conns;          /* query connections, then (optionally) the listener at conns[n_conns] */
static struct db_conn *listen_conn;
/* The channels the listener connection LISTENs on: [0] from carillon_db_listen, more from
 * carillon_db_listen_also; each notification goes to its channel's callback. */
#define LISTEN_MAX 4
static struct {
	char *channel;
	carillon_db_notify_fn notify;
} listens[LISTEN_MAX];
static int n_listens;
static carillon_db_up_fn listen_up;
static struct db_query *q_head, *q_tail;
/* The write lanes (carillon_db_query_lane): each lane's queries go to one connection, in order. */
static struct db_query *oq_head[CARILLON_DB_LANES_MAX], *oq_tail[CARILLON_DB_LANES_MAX];
static int q_len;             /* every queue */
static bool shutting_down;

static void conn_start(struct db_conn *c);
static void listener_subscribe(struct db_conn *c);
static void conn_poll_cb(uv_poll_t *h, int status, int events);
static void pump(void);

/* A query and copies of its text and parameters in one allocation (one malloc per statement
 * instead of 3 + one per parameter). `lengths` NULL: text parameters (NUL-terminated); else every
 * parameter is binary, of lengths[i] bytes (carillon_db_query_lane_binary). */
static struct db_query *query_new(const char *sql, int nparams, const char *const *params, const int *lengths,
				  carillon_db_cb cb, void *arg)
{
	size_t sql_len = strlen(sql) + 1, size = sizeof(struct db_query) + (size_t)nparams * sizeof(char *) + sql_len;
	if (lengths)
		size += 2 * (size_t)nparams * sizeof(int);
	for (int i = 0; i < nparams; i++)
		if (params[i])
			size += lengths ? (size_t)lengths[i] : strlen(params[i]) + 1;
	struct db_query *q = carillon_xmalloc(size);
	memset(q, 0, sizeof(*q));
	q->params = (char **)(q + 1);
	char *p = (char *)(q->params + nparams);
	if (lengths) {
		q->lengths = (int *)p;
		q->formats = q->lengths + nparams;
		p = (char *)(q->formats + nparams);
	}
	q->sql = memcpy(p, sql, sql_len);
	p += sql_len;
	for (int i = 0; i < nparams; i++) {
		if (lengths) {
			q->lengths[i] = params[i] ? lengths[i] : 0;
			q->formats[i] = 1;
		}
		if (!params[i]) {
			q->params[i] = NULL;
			continue;
		}
		size_t n = lengths ? (size_t)lengths[i] : strlen(params[i]) + 1;
		q->params[i] = n ? memcpy(p, params[i], n) : p;
		p += n;
	}
	q->nparams = nparams;
	q->cb = cb;
	q->arg = arg;
	return q;
}

static void query_free(struct db_query *q) { free(q); }

static void query_finish(struct db_query *q, PGresult *res, const char *state, const char *msg)
{
	if (state)
		carillon_metrics_db_error(state);
	struct carillon_db_result r = {res, state, msg};
	q->cb(q->arg, &r);
	if (q->parse_err)
		PQclear(q->parse_err);
	query_free(q);
}

static void stmt_free(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

/* The server session is gone, and its prepared statements with it. */
static void conn_forget_stmts(struct db_conn *c)
{
	carillon_hmap_each(&c->stmts, stmt_free, NULL);
	carillon_hmap_free(&c->stmts);
	memset(&c->stmts, 0, sizeof(c->stmts));
	c->n_stmts = 0;
}

/* Drop one text's entry (its Parse failed, or its plan went stale): the next query prepares it anew
 * under a new name. */
static void conn_forget_stmt(struct db_conn *c, const char *sql, const char *name)
{
	struct db_stmt *st = carillon_hmap_get(&c->stmts, sql);
	if (!st || strcmp(st->name, name))
		return;
	free(carillon_hmap_del(&c->stmts, sql));
	c->n_stmts--;
}

static void poll_closed(uv_handle_t *h) { free(h); }

static void conn_unwatch(struct db_conn *c)
{
	if (c->poll) {
		uv_poll_stop(c->poll);
		uv_close((uv_handle_t *)c->poll, poll_closed);
		c->poll = NULL;
	}
	c->fd = -1;
	c->events = 0;
}

static void conn_watch(struct db_conn *c, int events)
{
	int fd = PQsocket(c->pg);
	if (c->poll && fd != c->fd)
		conn_unwatch(c);
	if (!c->poll) {
		c->poll = carillon_xmalloc(sizeof(*c->poll));
		if (uv_poll_init(db_loop, c->poll, fd)) {
			free(c->poll);
			c->poll = NULL;
			return;
		}
		c->poll->data = c;
		c->fd = fd;
		c->events = 0;
	}
	/* libuv's uv_poll_start stops the poll first (an epoll_ctl DEL at once, the ADD at the next
	 * poll), even when the events do not change: two system calls per query sent and per result
	 * read, for nothing. A poll that libuv stopped after an error is not active: started again. */
	if (events == c->events && uv_is_active((uv_handle_t *)c->poll))
		return;
	uv_poll_start(c->poll, events, conn_poll_cb);
	c->events = events;
}

static void retry_cb(uv_timer_t *t) { conn_start(t->data); }

/* The connection failed: fail its query, drop it, and try again after a backoff. */
static void conn_fail(struct db_conn *c, const char *why)
{
	if (c->state != CONN_DOWN)
		log_warn("database connection lost: %s", why);
	conn_unwatch(c);
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_DOWN;
	if (c->last)
		PQclear(c->last);
	c->last = NULL;
	conn_forget_stmts(c);
	/* Every query in flight on it gets the connection's error, once; the list is detached first
	 * because a callback may queue new queries (which go to other connections: this one is down). */
	struct db_query *q = c->fl_head;
	c->fl_head = c->fl_tail = NULL;
	c->n_flight = 0;
	while (q) {
		struct db_query *next = q->next;
		query_finish(q, NULL, "08000", "the database connection was lost");
		q = next;
	}
	if (shutting_down)
		return;
	carillon_metrics_db_reconnect();
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	uv_timer_start(&c->retry, retry_cb, (uint64_t)c->backoff_ms, 0);
}

static void conn_connect_step(struct db_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		conn_watch(c, UV_READABLE);
		break;
	case PGRES_POLLING_WRITING:
		conn_watch(c, UV_WRITABLE);
		break;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->pg, 1)) {
			conn_fail(c, "cannot make the connection non-blocking");
			return;
		}
		if (!PQenterPipelineMode(c->pg)) {
			conn_fail(c, "cannot enter pipeline mode");
			return;
		}
		c->state = CONN_IDLE;
		c->backoff_ms = 0;
		conn_watch(c, UV_READABLE);
		log_info("database connection up%s", c->listener ? " (listener)" : "");
		if (c->listener)
			listener_subscribe(c);
		else
			pump();
		break;
	default:
		conn_fail(c, PQerrorMessage(c->pg));
	}
}

static void conn_send(struct db_conn *c, struct db_query *q);

static void listener_subscribe_one(struct db_conn *c, int i);

/* One LISTEN after the other (a query at a time); on_up once all are in place. */
static void listener_subscribed(void *arg, const struct carillon_db_result *r)
{
	if (!r->res) {
		log_warn("LISTEN failed: %s", r->message);
		return;
	}
	int next = (int)(intptr_t)arg + 1;
	if (next < n_listens && listen_conn && listen_conn->pg) {
		listener_subscribe_one(listen_conn, next);
		return;
	}
	if (listen_up)
		listen_up();
}

static void listener_subscribe(struct db_conn *c) { listener_subscribe_one(c, 0); }

static void listener_subscribe_one(struct db_conn *c, int i)
{
	const char *channel = listens[i].channel;
	char *ident = PQescapeIdentifier(c->pg, channel, strlen(channel));
	struct carillon_buf sql = {0};
	carillon_buf_appendf(&sql, "LISTEN %s", ident ? ident : "\"carillon\"");
	PQfreemem(ident);
	struct db_query *q = query_new(sql.data, 0, NULL, NULL, listener_subscribed, (void *)(intptr_t)i);
	free(sql.data);
	conn_send(c, q);
}

static void conn_start(struct db_conn *c)
{
	if (shutting_down)
		return;
	if (db_keys)
		c->pg = PQconnectStartParams((const char *const *)db_keys, (const char *const *)db_vals, 0);
	else   /* an unusable conninfo: libpq reports why, as it always did */
		c->pg = PQconnectStart(db_conninfo);
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_fail(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
		return;
	}
	c->state = CONN_CONNECTING;
	conn_watch(c, UV_WRITABLE);
}

static void conn_flush(struct db_conn *c)
{
	int f = PQflush(c->pg);
	if (f < 0)
		conn_fail(c, PQerrorMessage(c->pg));
	else
		conn_watch(c, f ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* Send the query's Parse (first use of its text on this connection), its execution and a Sync. */
static int conn_send_pipelined(struct db_conn *c, struct db_query *q)
{
	const char *const *params = (const char *const *)q->params;
	struct db_stmt *st = c->listener ? NULL : carillon_hmap_get(&c->stmts, q->sql);
	if (!st && !c->listener && c->n_stmts < STMT_CACHE_MAX) {
		st = carillon_xcalloc(1, sizeof(*st));
		snprintf(st->name, sizeof(st->name), "c%u", c->next_stmt++);
		carillon_hmap_put(&c->stmts, q->sql, st);
		c->n_stmts++;
		memcpy(q->stmt_name, st->name, sizeof(q->stmt_name));
		if (!PQsendPrepare(c->pg, st->name, q->sql, q->nparams, NULL))
			return -1;
		q->parse_sent = true;
		if (!PQsendQueryPrepared(c->pg, st->name, q->nparams, params, q->lengths, q->formats, 0))
			return -1;
	} else if (st && st->ready) {
		memcpy(q->stmt_name, st->name, sizeof(q->stmt_name));
		if (!PQsendQueryPrepared(c->pg, st->name, q->nparams, params, q->lengths, q->formats, 0))
			return -1;
	} else if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, params, q->lengths, q->formats, 0)) {
		return -1; /* (its Parse is still in flight, the cache is full, or the listener's LISTEN) */
	}
	return PQpipelineSync(c->pg) ? 0 : -1;
}

static void conn_send(struct db_conn *c, struct db_query *q)
{
	q->next = NULL;
	if (c->fl_tail)
		c->fl_tail->next = q;
	else
		c->fl_head = q;
	c->fl_tail = q;
	c->n_flight++;
	c->state = CONN_BUSY;
	if (conn_send_pipelined(c, q)) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	conn_flush(c);
}

/* The head query's Sync has come back: take it off the FIFO and answer it. */
static void conn_answer_head(struct db_conn *c)
{
	struct db_query *q = c->fl_head;
	c->fl_head = q->next;
	if (!c->fl_head)
		c->fl_tail = NULL;
	if (--c->n_flight == 0)
		c->state = CONN_IDLE;
	PGresult *last = c->last;
	c->last = NULL;
	ExecStatusType st = last ? PQresultStatus(last) : PGRES_FATAL_ERROR;
	if (q->parse_err) {
		/* The text itself did not prepare: the query's answer is that error (its execution was
		 * skipped); the entry goes, so a later query tries again. */
		conn_forget_stmt(c, q->sql, q->stmt_name);
		const char *state = PQresultErrorField(q->parse_err, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(q->parse_err, PG_DIAG_MESSAGE_PRIMARY);
		query_finish(q, NULL, state ? state : "XX000", msg ? msg : "the statement could not be prepared");
	} else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		query_finish(q, last, NULL, NULL);
	} else {
		const char *state = last ? PQresultErrorField(last, PG_DIAG_SQLSTATE) : NULL;
		const char *msg = last ? PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		/* A prepared plan whose result type changed under it (a function replaced by another
		 * node's start-up): prepare the text again next time. */
		if (state && !strcmp(state, "0A000") && *q->stmt_name)
			conn_forget_stmt(c, q->sql, q->stmt_name);
		query_finish(q, NULL, state ? state : "XX000", msg ? msg : "the statement failed");
	}
	if (last)
		PQclear(last);
}

/* One result of the head query. In a segment the results are: the Parse's (when sent), the
 * execution's (an error, or rows; PGRES_PIPELINE_ABORTED when the Parse failed), then the Sync.
 * libpq's NULLs between them are not counted on: the kind of result says where we are. */
static void conn_take_result(struct db_conn *c, PGresult *res)
{
	struct db_query *q = c->fl_head;
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_PIPELINE_SYNC) {
		PQclear(res);
		conn_answer_head(c);
		return;
	}
	if (q->parse_sent && !q->parse_seen) {
		q->parse_seen = true;
		if (st == PGRES_COMMAND_OK) {
			struct db_stmt *s = carillon_hmap_get(&c->stmts, q->sql);
			if (s && !strcmp(s->name, q->stmt_name))
				s->ready = true;
			PQclear(res);
		} else {
			q->parse_err = res;
		}
		return;
	}
	if (c->last)
		PQclear(c->last);
	c->last = res;
}

static void conn_read(struct db_conn *c)
{
	if (!PQconsumeInput(c->pg)) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	bool was_null = false;
	/* A callback may queue onto this connection or fail it: check it is still up every turn. */
	while (c->pg && c->fl_head && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);
		if (!res) {
			if (was_null) /* nothing more to read now */
				break;
			was_null = true;
			continue;
		}
		was_null = false;
		conn_take_result(c, res);
	}
	if (!c->pg)
		return;
	PGnotify *n;
	while ((n = PQnotifies(c->pg))) {
		for (int i = 0; c->listener && i < n_listens; i++)
			if (!strcmp(n->relname, listens[i].channel) && listens[i].notify)
				listens[i].notify(n->extra);
		PQfreemem(n);
	}
	if (PQstatus(c->pg) == CONNECTION_BAD)
		conn_fail(c, PQerrorMessage(c->pg));
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct db_conn *c = h->data;
	if (status < 0 && c->state != CONN_CONNECTING) {
		conn_fail(c, uv_strerror(status));
		return;
	}
	if (c->state == CONN_CONNECTING) {
		conn_connect_step(c);
		return;
	}
	if (events & UV_WRITABLE)
		conn_flush(c);
	if (c->pg && (events & UV_READABLE))
		conn_read(c);
	if ((c->state == CONN_IDLE || c->state == CONN_BUSY) && !c->listener)
		pump();
}

static int pipeline_depth(void) { return carillon_cfg.db_pipeline_depth > 0 ? (int)carillon_cfg.db_pipeline_depth : 1; }

static bool conn_up(const struct db_conn *c) { return c->state == CONN_IDLE || c->state == CONN_BUSY; }

/* The number of write lanes: CARILLON_WRITE_LANES, leaving one connection of the pool for reads. */
int carillon_db_lanes(void)
{
	int n = (int)carillon_cfg.write_lanes;
	if (n > n_conns - 1)
		n = n_conns - 1;
	if (n > CARILLON_DB_LANES_MAX)
		n = CARILLON_DB_LANES_MAX;
	return n < 1 ? 1 : n;
}

/* Lane i's connection: conns[i] while it is up, else the first one up, or NULL. */
static struct db_conn *lane_conn(int lane)
{
	if (lane < n_conns && conn_up(&conns[lane]))
		return &conns[lane];
	for (int i = 0; i < n_conns; i++)
		if (conn_up(&conns[i]))
			return &conns[i];
	return NULL;
}

/* The up connection with the fewest queries in flight and room for one more (an idle one first,
 * so pipelining only adds to connections when every one is busy), or NULL. The lanes' connections
 * are taken only when no other has room, so that a lane's queries wait behind each other rather
 * than behind other work. */
static struct db_conn *conn_with_room(void)
{
	struct db_conn *best = NULL, *lane_best = NULL;
	int depth = pipeline_depth(), lanes = carillon_db_lanes();
	for (int i = 0; i < n_conns; i++) { /* the listener, conns[n_conns], takes none */
		struct db_conn *c = &conns[i];
		if (!conn_up(c) || c->n_flight >= depth)
			continue;
		struct db_conn **slot = i < lanes ? &lane_best : &best;
		if (!*slot || c->n_flight < (*slot)->n_flight)
			*slot = c;
	}
	return best ? best : lane_best;
}

static struct db_query *queue_pop(struct db_query **head, struct db_query **tail)
{
	struct db_query *q = *head;
	*head = q->next;
	if (!*head)
		*tail = NULL;
	q_len--;
	return q;
}

static void pump(void)
{
	struct db_conn *c;
	for (int l = 0; l < CARILLON_DB_LANES_MAX; l++) {
		if (!oq_head[l])
			continue;
		c = lane_conn(l);
		while (oq_head[l] && c && c->n_flight < pipeline_depth())
			conn_send(c, queue_pop(&oq_head[l], &oq_tail[l]));
	}
	while (q_head && (c = conn_with_room()))
		conn_send(c, queue_pop(&q_head, &q_tail));
}

static bool has_room(const struct db_conn *c) { return c && c->n_flight < pipeline_depth(); }

/* lane: a write lane, or -1 for the shared queue. */
static int enqueue(int lane, const char *sql, int nparams, const char *const *params, const int *lengths,
		   carillon_db_cb cb, void *arg)
{
	if (q_len >= carillon_cfg.db_queue_max || shutting_down)
		return -1;
	struct db_query **head = lane < 0 ? &q_head : &oq_head[lane], **tail = lane < 0 ? &q_tail : &oq_tail[lane];
	struct db_query *q = query_new(sql, nparams, params, lengths, cb, arg);
	if (*head || !has_room(lane < 0 ? conn_with_room() : lane_conn(lane))) /* it will wait in the queue */
		carillon_metrics_db_wait();
	if (*tail)
		(*tail)->next = q;
	else
		*head = q;
	*tail = q;
	q_len++;
	pump();
	return 0;
}

int carillon_db_query(const char *sql, int nparams, const char *const *params, carillon_db_cb cb, void *arg)
{
	return enqueue(-1, sql, nparams, params, NULL, cb, arg);
}

int carillon_db_query_lane(int lane, const char *sql, int nparams, const char *const *params, carillon_db_cb cb,
			   void *arg)
{
	if (lane < 0 || lane >= carillon_db_lanes())
		lane = 0;
	return enqueue(lane, sql, nparams, params, NULL, cb, arg);
}

int carillon_db_query_lane_binary(int lane, const char *sql, int nparams, const char *const *params,
				  const int *lengths, carillon_db_cb cb, void *arg)
{
	if (lane < 0 || lane >= carillon_db_lanes())
		lane = 0;
	return enqueue(lane, sql, nparams, params, lengths, cb, arg);
}

void carillon_db_listen(const char *channel, carillon_db_notify_fn on_notify, carillon_db_up_fn on_up)
{
	listen_conn = &conns[n_conns];
	listen_conn->listener = true;
	listen_conn->fd = -1;
	/* The primary channel first: its on_up comes after every LISTEN is in place. */
	memmove(&listens[1], &listens[0], sizeof(listens[0]) * (size_t)n_listens);
	listens[0].channel = carillon_xstrdup(channel);
	listens[0].notify = on_notify;
	n_listens++;
	listen_up = on_up;
	uv_timer_init(db_loop, &listen_conn->retry);
	listen_conn->retry.data = listen_conn;
	conn_start(listen_conn);
}

void carillon_db_listen_also(const char *channel, carillon_db_notify_fn on_notify)
{
	if (n_listens >= LISTEN_MAX - 1) { /* one place stays for carillon_db_listen's channel */
		log_err("too many LISTEN channels; %s is not listened on", channel);
		return;
	}
	listens[n_listens].channel = carillon_xstrdup(channel);
	listens[n_listens].notify = on_notify;
	n_listens++;
}

bool carillon_db_ready(void)
{
	for (int i = 0; i < n_conns; i++)
		if (conns[i].state == CONN_IDLE || conns[i].state == CONN_BUSY)
			return true;
	return false;
}

void carillon_db_stats(int *up, int *busy, int *queued)
{
	*up = *busy = 0;
	for (int i = 0; i < n_conns; i++) {
		*up += conns[i].state == CONN_IDLE || conns[i].state == CONN_BUSY;
		*busy += conns[i].state == CONN_BUSY; /* (a query or more in flight) */
	}
	*queued = q_len;
}

/*
 * The quotas are enforced by the SQL functions (carillon.quota in sql/api/00_common.sql reads
 * carillon.<name>, falling back to Chime's default). Each pool connection gets them as custom
 * settings in its startup packet (`options=-c carillon.max_...=N`), so no request pays for them.
 */
static void quota_options(struct carillon_buf *b)
{
	const struct {
		const char *name;
		long value;
	} q[] = {
		{"max_endpoints_per_user", carillon_cfg.max_endpoints_per_user},
		{"max_channel_memberships", carillon_cfg.max_channel_memberships},
		{"max_channel_moderators", carillon_cfg.max_channel_moderators},
		{"max_app_instance_admins", carillon_cfg.max_app_instance_admins},
		{"max_channel_flows", carillon_cfg.max_channel_flows},
		{"flow_callback_deadline_seconds", carillon_cfg.flow_callback_deadline_seconds},
	};
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		carillon_buf_appendf(b, "%s-c carillon.%s=%ld", b->len ? " " : "", q[i].name, q[i].value);
	/* No JIT: the gateway's statements are short, but the planner's row guesses for jsonb set
	 * functions (100 rows each, multiplied through joins) push a batch's event insert over
	 * jit_above_cost, and compiling it took 20-375 ms per batch, far more than running it (~2 ms). */
	carillon_buf_appendf(b, " -c jit=off");
}

/* Parse the user's conninfo (key=value or URL) into keyword/value arrays and append the quota
 * settings to its `options` (kept: whatever the user put there comes first). */
static void build_params(const char *conninfo)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	PQfreemem(err);
	if (!opts)
		return;
	size_t n = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n++;
	db_keys = carillon_xcalloc(n + 2, sizeof(char *));
	db_vals = carillon_xcalloc(n + 2, sizeof(char *));
	struct carillon_buf options = {0};
	size_t k = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "options")) {
			carillon_buf_appendf(&options, "%s", o->val);
			continue;
		}
		db_keys[k] = carillon_xstrdup(o->keyword);
		db_vals[k++] = carillon_xstrdup(o->val);
	}
	quota_options(&options);
	db_keys[k] = carillon_xstrdup("options");
	db_vals[k] = options.data;
	PQconninfoFree(opts);
}

static void free_params(void)
{
	for (size_t i = 0; db_keys && db_keys[i]; i++) {
		free(db_keys[i]);
		free(db_vals[i]);
	}
	free(db_keys);
	free(db_vals);
	db_keys = db_vals = NULL;
}

int carillon_db_init(uv_loop_t *loop, const char *conninfo, int pool_size)
{
	db_loop = loop;
	db_conninfo = carillon_xstrdup(conninfo);
	build_params(conninfo);
	n_conns = pool_size;
	conns = carillon_xcalloc((size_t)pool_size + 1, sizeof(*conns));
	for (int i = 0; i < n_conns; i++) {
		conns[i].fd = -1;
		uv_timer_init(loop, &conns[i].retry);
		conns[i].retry.data = &conns[i];
		conn_start(&conns[i]);
	}
	return 0;
}

static void timer_closed(uv_handle_t *h) { (void)h; }

void carillon_db_shutdown(void)
{
	shutting_down = true;
	for (int i = 0; i < n_conns + (listen_conn ? 1 : 0); i++) {
		struct db_conn *c = &conns[i];
		uv_timer_stop(&c->retry);
		uv_close((uv_handle_t *)&c->retry, timer_closed);
		conn_fail(c, "shutting down");
	}
	while (q_head)
		query_finish(queue_pop(&q_head, &q_tail), NULL, "57P01", "the server is shutting down");
	for (int l = 0; l < CARILLON_DB_LANES_MAX; l++)
		while (oq_head[l])
			query_finish(queue_pop(&oq_head[l], &oq_tail[l]), NULL, "57P01", "the server is shutting down");
	q_len = 0;
}

void carillon_db_free(void)
{
	free(conns);
	conns = NULL;
	n_conns = 0;
	free(db_conninfo);
	db_conninfo = NULL;
	free_params();
	for (int i = 0; i < n_listens; i++)
		free(listens[i].channel);
	n_listens = 0;
	listen_conn = NULL;
}
