/* The connection pool: non-blocking libpq connections driven by uv_poll on the event loop. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct db_query {
	struct db_query *next;
	char *sql;
	int nparams;
	char **params;
	carillon_db_cb cb;
	void *arg;
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct db_conn {
	PGconn *pg;
	enum conn_state state;
	uv_poll_t *poll;          /* reallocated when libpq's socket changes */
	int fd;
	uv_timer_t retry;
	int backoff_ms;
	struct db_query *cur;
	PGresult *last;           /* last result of the current query */
	bool listener;            /* the dedicated LISTEN connection: takes no queued queries */
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
static int q_len;
static bool shutting_down;

static void conn_start(struct db_conn *c);
static void listener_subscribe(struct db_conn *c);
static void conn_poll_cb(uv_poll_t *h, int status, int events);
static void pump(void);

static void query_free(struct db_query *q)
{
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
}

static void query_finish(struct db_query *q, PGresult *res, const char *state, const char *msg)
{
	if (state)
		carillon_metrics_db_error(state);
	struct carillon_db_result r = {res, state, msg};
	q->cb(q->arg, &r);
	query_free(q);
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
	}
	uv_poll_start(c->poll, events, conn_poll_cb);
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
	if (c->cur) {
		struct db_query *q = c->cur;
		c->cur = NULL;
		query_finish(q, NULL, "08000", "the database connection was lost");
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
	struct db_query *q = carillon_xcalloc(1, sizeof(*q));
	const char *channel = listens[i].channel;
	char *ident = PQescapeIdentifier(c->pg, channel, strlen(channel));
	struct carillon_buf sql = {0};
	carillon_buf_appendf(&sql, "LISTEN %s", ident ? ident : "\"carillon\"");
	PQfreemem(ident);
	q->sql = sql.data;
	q->params = carillon_xcalloc(1, sizeof(char *));
	q->cb = listener_subscribed;
	q->arg = (void *)(intptr_t)i;
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

static void conn_send(struct db_conn *c, struct db_query *q)
{
	c->cur = q;
	c->state = CONN_BUSY;
	if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL, NULL, 0)) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	conn_flush(c);
}

static void conn_read(struct db_conn *c)
{
	if (!PQconsumeInput(c->pg)) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	while (c->cur && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);
		if (res) {
			if (c->last)
				PQclear(c->last);
			c->last = res;
			continue;
		}
		struct db_query *q = c->cur;
		PGresult *last = c->last;
		c->cur = NULL;
		c->last = NULL;
		c->state = CONN_IDLE;
		ExecStatusType st = last ? PQresultStatus(last) : PGRES_FATAL_ERROR;
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			query_finish(q, last, NULL, NULL);
		} else {
			const char *state = last ? PQresultErrorField(last, PG_DIAG_SQLSTATE) : NULL;
			const char *msg = last ? PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY) : NULL;
			query_finish(q, NULL, state ? state : "XX000", msg ? msg : PQerrorMessage(c->pg));
		}
		if (last)
			PQclear(last);
	}
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
	if (c->state == CONN_IDLE && !c->listener)
		pump();
}

static void pump(void)
{
	for (int i = 0; i < n_conns && q_head; i++) { /* the listener, conns[n_conns], takes none */
		struct db_conn *c = &conns[i];
		if (c->state != CONN_IDLE)
			continue;
		struct db_query *q = q_head;
		q_head = q->next;
		if (!q_head)
			q_tail = NULL;
		q_len--;
		conn_send(c, q);
	}
}

static bool conn_idle(void)
{
	for (int i = 0; i < n_conns; i++)
		if (conns[i].state == CONN_IDLE)
			return true;
	return false;
}

int carillon_db_query(const char *sql, int nparams, const char *const *params, carillon_db_cb cb, void *arg)
{
	if (q_len >= carillon_cfg.db_queue_max || shutting_down)
		return -1;
	struct db_query *q = carillon_xcalloc(1, sizeof(*q));
	q->sql = carillon_xstrdup(sql);
	q->nparams = nparams;
	q->params = carillon_xcalloc((size_t)(nparams ? nparams : 1), sizeof(char *));
	for (int i = 0; i < nparams; i++)
		q->params[i] = params[i] ? carillon_xstrdup(params[i]) : NULL;
	q->cb = cb;
	q->arg = arg;
	if (q_head || !conn_idle()) /* it will wait in the queue for a connection */
		carillon_metrics_db_wait();
	if (q_tail)
		q_tail->next = q;
	else
		q_head = q;
	q_tail = q;
	q_len++;
	pump();
	return 0;
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
		*busy += conns[i].state == CONN_BUSY;
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
	while (q_head) {
		struct db_query *q = q_head;
		q_head = q->next;
		query_finish(q, NULL, "57P01", "the server is shutting down");
	}
	q_tail = NULL;
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
