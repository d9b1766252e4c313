/*
 * One websocket session (GET /connect), as amazon-chime-sdk-js's DefaultMessagingSession expects:
 *
 *   FILTER       (before the upgrade) the per-user connect rate: over it, HTTP 429 and no upgrade
 *                (the client backs off and retries).
 *   ESTABLISHED  verify the SigV4-presigned query (service chime) and that the credential may act as
 *                `userArn`; on refusal close with 4401 right after the upgrade (the only refusal the
 *                client treats as final). Register under the user (pending: every event is
 *                buffered).
 *   registry     the session's row in carillon.ws_sessions, counted against max_sessions_per_user
 *                over every node; over the quota it is closed with 4003 (terminal for the client).
 *                The sessions of one loop turn register in one statement (ws_register_many).
 *   snapshot     one query: the user's channels and the log position P in the same snapshot (one
 *                statement for the fresh sessions of one loop turn). The
 *                channels are read and joined CARILLON_SNAPSHOT_PAGE per query (a user may have tens
 *                of thousands).
 *   resume       (since-position) the user's events of the gap (since, P], CARILLON_RESUME_PAGE per
 *                query and per loop turn (carillon.events_after, decoded by the one event decoder),
 *                filtered to the user's channels in SQL and bounded by resume_max_events and
 *                resume_max_bytes (beyond: CARILLON_RESYNC_REQUIRED).
 *   active       send SESSION_ESTABLISHED, then the gap's events, then the buffered events after P,
 *                then live events, each routed by the hub; one frame per WRITEABLE.
 *   bounds       at most CARILLON_SESSION_QUEUE_MAX frames / CARILLON_SESSION_QUEUE_BYTES waiting
 *                (besides a resume's backlog, itself bounded by the resume bounds); beyond that the
 *                session is closed with 1013 "Too slow" (retryable: the client reconnects and
 *                re-syncs through REST). While pending, at most CARILLON_SESSION_PENDING_MAX events
 *                are buffered (1013 "Busy" beyond).
 *   expiry       a session opened with a temporary credential is closed with 4410 (retryable: the
 *                client reconnects with fresh credentials) once that credential expires.
 *   close        detach from the hub; a query still in flight finds its ticket orphaned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/connect_query.h"
#include "carillon/http.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/ratelimit.h"
#include "carillon/realtime.h"
#include "carillon/util.h"

/* Queue bounds, pages and keepalive times are settings (carillon_cfg.session_*, snapshot_page,
 * resume_page, ws_*: src/config.c). What stays here is loop-slice granularity, not a limit. */
#define REAP_SLICE 500       /* channels of closed sessions left per loop iteration */
/* A gap may span at most this many times resume_max_events log positions (all users' events):
 * bounds what the database scans for one connect. */
#define GAP_SCAN_FACTOR 100
/* Keepalive, from one loop timer over all sessions (lws 4.1 keeps a per-connection ping timer in
 * one sorted list, which costs O(sessions) per insert): ping a session silent for
 * CARILLON_WS_PING_SECONDS, drop one silent for CARILLON_WS_IDLE_SECONDS. The same tick closes
 * sessions whose credential expired, so it runs every second (a pass over the sessions is a few
 * comparisons each). */
#define KEEPALIVE_TICK_MS 1000
/* The session registry (carillon.ws_sessions): this node's heartbeat, how long a silent node's
 * sessions still count, and when they are forgotten, are settings (CARILLON_NODE_*_SECONDS). */

enum session_state { S_NEW, S_PENDING, S_ACTIVE, S_CLOSING };

struct snapshot_ticket {
	struct carillon_session *s; /* NULL once the session is gone */
	int64_t reg_id;             /* a registration: the id it registers */
};

struct carillon_session {
	struct lws *wsi;
	enum session_state state;
	char *user_arn;
	char user_gen[24];          /* a user credential's generation ("" for root/admin): see snapshot */
	int64_t start_pos;
	uint64_t stamp;
	void *hub;                  /* the hub's per-session state (its channels) */
	struct carillon_event **q;  /* ring: frames to write (or, while pending, events to route) */
	unsigned q_head, q_len, q_cap;
	size_t q_bytes;
	struct snapshot_ticket *ticket;
	bool established_sent;
	bool resync_required;       /* since-position was older than the retained log */
	bool prefetch;              /* prefetch-on=connect */
	int64_t since;              /* since-position=N (resume), or -1 */
	char prefetch_sort[24];     /* prefetch-sort-by */
	int close_code;
	const char *close_reason;
	struct carillon_session *prev, *next; /* every open session, for shutdown and keepalive */
	int64_t last_rx_ms;         /* last frame (pong, ping, close...) from the client */
	bool ping_due;
	int64_t expires_ms;         /* the credential's expiry (temporary credentials), or 0 */
	char *join_after;           /* the last channel joined of a snapshot read in pages */
	/* resume: the gap (since, gap_until] read after gap_cursor, its events routed into `gap` */
	bool resuming;
	bool gap_overflow;          /* over the resume bounds: only membership moves are still read */
	int64_t gap_until, gap_cursor;
	char *gap_moved;            /* channels with membership events about the user in the gap (text[]) */
	struct carillon_event **gap;
	unsigned gap_len, gap_cap;
	size_t gap_bytes;
	/* frames at the head of q that came from a resume gap: allowed beyond the session queue bounds */
	unsigned q_backlog;
	size_t q_backlog_bytes;
	int64_t reg_id;             /* its row in carillon.ws_sessions (0: not registered) */
	int64_t reg_retry_at;       /* over the quota once: ask again at this time (keepalive tick) */
	bool reg_retried;
	/* for the metrics and the session's log lines */
	double t_open;              /* carillon_metrics_clock() at the upgrade */
	unsigned long frames_sent;
	int peer_close_code;        /* the code of a close the client started (1005: none given) */
	char session_id[40];        /* the client's sessionId (uuid-like characters only), or "" */
};

static unsigned sessions_open;
static struct carillon_session *all_sessions;

static bool registry_busy(void);
unsigned carillon_sessions_open(void) { return sessions_open + (registry_busy() ? 1 : 0); }
size_t carillon_session_pss_size(void) { return sizeof(struct carillon_session); }
const char *carillon_session_user(const struct carillon_session *s) { return s->user_arn; }
bool carillon_session_active(const struct carillon_session *s) { return s->state == S_ACTIVE; }
int64_t carillon_session_start(const struct carillon_session *s) { return s->start_pos; }
uint64_t *carillon_session_stamp(struct carillon_session *s) { return &s->stamp; }

void **carillon_session_hub(struct carillon_session *s) { return &s->hub; }

/* Frames written to the socket (the count and bytes of the session and of the metrics). */
static void sent(struct carillon_session *s, unsigned frames, size_t bytes)
{
	s->frames_sent += frames;
	carillon_metrics_session_sent(frames, bytes);
}

/* Close from outside the session's own callback: flag it and let WRITEABLE return -1. */
static void session_fail(struct carillon_session *s, int code, const char *reason)
{
	if (s->state == S_CLOSING)
		return;
	s->state = S_CLOSING;
	s->close_code = code;
	s->close_reason = reason;
	lws_callback_on_writable(s->wsi);
}

static void q_push(struct carillon_session *s, struct carillon_event *e)
{
	if (s->q_len == s->q_cap) {
		unsigned cap = s->q_cap ? s->q_cap * 2 : 8;
		struct carillon_event **q = carillon_xmalloc(sizeof(*q) * cap);
		for (unsigned i = 0; i < s->q_len; i++)
			q[i] = s->q[(s->q_head + i) % s->q_cap];
		free(s->q);
		s->q = q;
		s->q_head = 0;
		s->q_cap = cap;
	}
	s->q[(s->q_head + s->q_len++) % s->q_cap] = carillon_event_ref(e);
	s->q_bytes += e->frame_len;
	carillon_metrics_session_queued((long)e->frame_len);
}

static struct carillon_event *q_pop(struct carillon_session *s)
{
	if (!s->q_len)
		return NULL;
	struct carillon_event *e = s->q[s->q_head];
	s->q_head = (s->q_head + 1) % s->q_cap;
	s->q_len--;
	s->q_bytes -= e->frame_len;
	carillon_metrics_session_queued(-(long)e->frame_len);
	if (s->q_backlog) {
		s->q_backlog--;
		s->q_backlog_bytes -= e->frame_len;
	}
	return e;
}

static void q_clear(struct carillon_session *s)
{
	struct carillon_event *e;
	while ((e = q_pop(s)))
		carillon_event_unref(e);
	free(s->q);
	s->q = NULL;
	s->q_cap = 0;
}

static void gap_clear(struct carillon_session *s)
{
	for (unsigned i = 0; i < s->gap_len; i++)
		carillon_event_unref(s->gap[i]);
	free(s->gap);
	s->gap = NULL;
	s->gap_len = s->gap_cap = 0;
	s->gap_bytes = 0;
}

/* An event of a resume gap for this session: kept aside until the whole gap is read, within the
 * resume bounds; past them the gap is dropped and the session will get CARILLON_RESYNC_REQUIRED. */
static void gap_append(struct carillon_session *s, struct carillon_event *e)
{
	if (s->gap_overflow)
		return;
	if ((long)s->gap_len + 1 > carillon_cfg.resume_max_events ||
	    (long)(s->gap_bytes + e->frame_len) > carillon_cfg.resume_max_bytes) {
		s->gap_overflow = true;
		gap_clear(s);
		return;
	}
	if (s->gap_len == s->gap_cap) {
		s->gap_cap = s->gap_cap ? s->gap_cap * 2 : 64;
		s->gap = carillon_xrealloc(s->gap, sizeof(*s->gap) * s->gap_cap);
	}
	s->gap[s->gap_len++] = carillon_event_ref(e);
	s->gap_bytes += e->frame_len;
}

void carillon_session_deliver(struct carillon_session *s, struct carillon_event *e)
{
	if (s->resuming) {
		gap_append(s, e);
		return;
	}
	if (s->state != S_ACTIVE)
		return;
	if (e->position > 0)
		carillon_metrics_delivery();
	/* The common case of a fan-out: nothing queued and nothing left unsent by lws. Writing now costs
	 * one send; waiting for WRITEABLE would add two epoll_ctl calls and a callback per recipient.
	 * No poll() first (lws_send_pipe_choked() makes one, a second syscall per delivery): when the
	 * socket is full, lws keeps what send() did not take (at most this one frame) and asks for
	 * WRITEABLE itself; lws_partial_buffered() is then true and later frames queue here, bounded,
	 * until WRITEABLE drains lws's remainder first. Order and memory bounds are kept. */
	if (!s->q_len && s->established_sent && !lws_partial_buffered(s->wsi)) {
		if (lws_write(s->wsi, e->frame + LWS_PRE, e->frame_len, LWS_WRITE_TEXT) < 0)
			session_fail(s, 1011, "Write failed");
		else
			sent(s, 1, e->frame_len);
		return;
	}
	if ((long)s->q_len >= carillon_cfg.session_queue_max + (long)s->q_backlog ||
	    s->q_bytes + e->frame_len > (size_t)carillon_cfg.session_queue_bytes + s->q_backlog_bytes) {
		log_notice("session of %s is too slow (%u frames queued): closing it", s->user_arn, s->q_len);
		carillon_metrics_session_slow_close();
		session_fail(s, 1013, "Too slow");
		return;
	}
	q_push(s, e);
	lws_callback_on_writable(s->wsi);
}

void carillon_session_buffer(struct carillon_session *s, struct carillon_event *e)
{
	if (s->state != S_PENDING)
		return;
	if ((long)s->q_len >= carillon_cfg.session_pending_max) {
		session_fail(s, 1013, "Busy");
		return;
	}
	q_push(s, e);
}

/* Database queries of a session carry a ticket, not the session: if the session closes meanwhile,
 * session_closed() clears the ticket and the reply is dropped. */
static bool session_query(struct carillon_session *s, const char *sql, int n, const char *const *params,
			  carillon_db_cb cb)
{
	struct snapshot_ticket *t = carillon_xcalloc(1, sizeof(*t));
	t->s = s;
	s->ticket = t;
	if (!carillon_db_query(sql, n, params, cb, t))
		return true;
	free(t);
	s->ticket = NULL;
	return false;
}

/* The session a reply belongs to, if it is still open and in the state the query was made in. */
static struct carillon_session *session_claim(void *arg, enum session_state expect)
{
	struct snapshot_ticket *t = arg;
	struct carillon_session *s = t->s;
	free(t);
	if (!s)
		return NULL;
	s->ticket = NULL;
	return s->state == expect ? s : NULL;
}

/* CHANNEL_DETAILS frames, one per channel, queued right after SESSION_ESTABLISHED. They are
 * private to this session: events built here with position 0 never go through the hub. */
static void prefetch_done(void *arg, const struct carillon_db_result *r)
{
	struct carillon_session *s = session_claim(arg, S_ACTIVE);
	if (!s || !r->res || PQntuples(r->res) != 1)
		return;
	json_t *details = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
	size_t i;
	json_t *d;
	json_array_foreach(details, i, d) {
		char *payload = json_dumps(d, JSON_COMPACT);
		struct carillon_event *e = payload ? carillon_event_system("CHANNEL_DETAILS", payload) : NULL;
		free(payload);
		if (e) {
			carillon_session_deliver(s, e);
			carillon_event_unref(e);
		}
	}
	json_decref(details);
}

static void request_prefetch(struct carillon_session *s)
{
	const char *params[2] = {s->user_arn, s->prefetch_sort[0] ? s->prefetch_sort : "unread"};
	session_query(s, "select carillon.prefetch($1, $2)::text", 2, params, prefetch_done);
}

static void session_activate(struct carillon_session *s);
static void request_gap(struct carillon_session *s);

/* ------------------------------------------------------------------------ joining the snapshot */

/* The channels of the snapshot come CARILLON_SNAPSHOT_PAGE at a time, in ARN order: the first page with the
 * snapshot itself, the next ones from carillon.channels_at(user, position, after), which computes
 * the channels as of that log position from a later snapshot (current memberships corrected by the
 * membership events after it). Each page is joined in the loop turn of its reply, so a user with
 * 60,000 channels costs the loop 120 short turns, never one long one. */
static void request_channels(struct carillon_session *s);

/* Join the '\n'-separated channels of `text`; false if it was a full page (more may follow). */
static bool join_page(struct carillon_session *s, const char *text)
{
	int n = 0;
	const char *p = text, *last = NULL;
	size_t last_len = 0;
	char arn[2048];
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len && len < sizeof(arn)) {
			memcpy(arn, p, len);
			arn[len] = '\0';
			carillon_hub_join(s, arn);
			last = p;
			last_len = len;
			n++;
		}
		p = nl ? nl + 1 : p + len;
	}
	if (n < carillon_cfg.snapshot_page)
		return true;
	free(s->join_after);
	s->join_after = carillon_xstrndup(last, last_len);
	return false;
}

/* A page of channels is in: join it, then the next page, or go on (the gap, or active). */
static void channels_joined(struct carillon_session *s, const char *text)
{
	if (!join_page(s, text)) {
		request_channels(s);
		return;
	}
	free(s->join_after);
	s->join_after = NULL;
	if (s->resuming)
		request_gap(s);
	else
		session_activate(s);
}

/* The pending session a one-row answer belongs to; NULL when it is gone, or when the answer is not
 * one row (the session is then failed with 1011). */
static struct carillon_session *claim_one_row(void *arg, const struct carillon_db_result *r)
{
	struct carillon_session *s = session_claim(arg, S_PENDING);
	if (s && (!r->res || PQntuples(r->res) != 1)) {
		session_fail(s, 1011, "Internal error");
		return NULL;
	}
	return s;
}

static void channels_done(void *arg, const struct carillon_db_result *r)
{
	struct carillon_session *s = claim_one_row(arg, r);
	if (!s)
		return;
	channels_joined(s, PQgetvalue(r->res, 0, 0));
}

static void request_channels(struct carillon_session *s)
{
	char at[24], limit[16];
	snprintf(at, sizeof(at), "%lld", (long long)(s->resuming ? s->since : s->start_pos));
	snprintf(limit, sizeof(limit), "%ld", carillon_cfg.snapshot_page);
	const char *params[4] = {s->user_arn, at, s->join_after, limit};
	if (!session_query(s, "select coalesce(string_agg(a, E'\\n' order by a), '')"
			      " from carillon.channels_at($1, $2::bigint, $3, $4::int) a",
			   4, params, channels_done))
		session_fail(s, 1013, "Busy");
}

/* ---------------------------------------------------------------------------------- snapshot */

/* The snapshot: the user's channels and the log position, in one statement (one snapshot). */
static void snapshot_done(void *arg, const struct carillon_db_result *r)
{
	struct carillon_session *s = claim_one_row(arg, r);
	if (!s)
		return;
	if (strcmp(PQgetvalue(r->res, 0, 0), "t")) {
		session_fail(s, 4401, "Unauthorized");
		return;
	}
	s->start_pos = strtoll(PQgetvalue(r->res, 0, 2), NULL, 10);
	bool resume = !strcmp(PQgetvalue(r->res, 0, 3), "t") &&
		      strtol(PQgetvalue(r->res, 0, 6), NULL, 10) <= carillon_cfg.resume_max_events;
	if (resume) {
		carillon_metrics_session_resume();
		/* route the gap from the channels as of `since` (its events are above since) */
		s->resuming = true;
		s->gap_until = s->start_pos;
		s->gap_cursor = s->since;
		s->start_pos = s->since;
		s->gap_moved = carillon_xstrdup(PQgetvalue(r->res, 0, 5));
	} else if (s->since >= 0) {
		s->resync_required = true;
	}
	channels_joined(s, PQgetvalue(r->res, 0, resume ? 4 : 1));
}
/* Take the events buffered while pending out of the queue (they still have to be routed). */
static struct carillon_event **take_buffered(struct carillon_session *s, unsigned *n)
{
	*n = s->q_len;
	if (!*n)
		return NULL;
	struct carillon_event **b = carillon_xmalloc(sizeof(*b) * *n);
	for (unsigned k = 0; k < *n; k++)
		b[k] = q_pop(s);
	return b;
}

/* Route events to the now active session, in order, and release them. */
static void replay(struct carillon_session *s, struct carillon_event **events, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		carillon_hub_replay(s, events[k]);
		carillon_event_unref(events[k]);
	}
	free(events);
}

/* Active: SESSION_ESTABLISHED (written first by session_writeable), an optional re-sync signal or
 * the resume gap's events, then what arrived while we waited, through the same routing rules as
 * live events. */
static void session_activate(struct carillon_session *s)
{
	unsigned n;
	struct carillon_event **buffered = take_buffered(s, &n);
	s->state = S_ACTIVE;
	if (s->resync_required) {
		carillon_metrics_session_resync();
		struct carillon_event *e = carillon_event_system("CARILLON_RESYNC_REQUIRED", "{}");
		if (e) {
			carillon_session_deliver(s, e);
			carillon_event_unref(e);
		}
	}
	/* the gap's events go first, as a backlog the slow-consumer bounds do not count */
	for (unsigned k = 0; k < s->gap_len; k++) {
		q_push(s, s->gap[k]);
		s->q_backlog++;
		s->q_backlog_bytes += s->gap[k]->frame_len;
	}
	gap_clear(s);
	replay(s, buffered, n);
	lws_callback_on_writable(s->wsi);
	if (s->prefetch)
		request_prefetch(s);
}

/* ------------------------------------------------------------------------------------ resume */

/* The gap is read: from now on the session routes from the snapshot position, like any other. */
static void gap_finished(struct carillon_session *s)
{
	s->resuming = false;
	s->start_pos = s->gap_until;
	free(s->gap_moved);
	s->gap_moved = NULL;
	if (s->gap_overflow) {
		log_info("resume of %s exceeds the resume bounds: re-sync", s->user_arn);
		s->resync_required = true;
	}
	session_activate(s);
}

/* One page of the gap: route each event through the session's own channel state (joins and
 * leaves in log order, as live delivery would have), collecting what it would have received. */
static void gap_done(void *arg, const struct carillon_db_result *r)
{
	struct carillon_session *s = session_claim(arg, S_PENDING);
	if (!s)
		return;
	if (!r->res) {
		session_fail(s, 1011, "Internal error");
		return;
	}
	int rows = PQntuples(r->res);
	for (int i = 0; i < rows; i++) {
		int64_t pos = strtoll(PQgetvalue(r->res, i, CARILLON_EVENT_COL_POSITION), NULL, 10);
		struct carillon_event *e = carillon_event_from_result(r->res, i);
		if (e) {
			carillon_hub_replay(s, e);
			carillon_event_unref(e);
		}
		s->gap_cursor = pos;
	}
	if (rows < carillon_cfg.resume_page)
		gap_finished(s);
	else
		request_gap(s);
}

/* The next page of the gap after gap_cursor: events of the user's channels or naming the user
 * (carillon.events_after with the user's filter); once over the bounds, only the events that move
 * sessions (joins, leaves, closes), which keep the session's channels right. */
static void request_gap(struct carillon_session *s)
{
	char after[24], until[24], limit[16];
	snprintf(after, sizeof(after), "%lld", (long long)s->gap_cursor);
	snprintf(until, sizeof(until), "%lld", (long long)s->gap_until);
	snprintf(limit, sizeof(limit), "%ld", carillon_cfg.resume_page);
	const char *params[6] = {after, limit, until, s->user_arn, s->gap_moved, s->gap_overflow ? "t" : "f"};
	if (!session_query(s, CARILLON_EVENTS_AFTER_SQL, 6, params, gap_done))
		session_fail(s, 1013, "Busy");
}

/* Tickets waiting for a statement shared by the sessions of one loop turn (see flush_snapshots). */
struct ticket_list {
	struct snapshot_ticket **t;
	size_t n, cap;
};
static void batch_join(struct ticket_list *l, struct carillon_session *s, int64_t reg_id);
static struct ticket_list snap_wait;

static void request_snapshot(struct carillon_session *s)
{
	if (s->since < 0) { /* a fresh session: with the others of this loop turn (flush_snapshots) */
		batch_join(&snap_wait, s, 0);
		return;
	}
	char since[24], max_scan[24], page[16], max_events[24];
	snprintf(since, sizeof(since), "%lld", (long long)s->since);
	snprintf(max_scan, sizeof(max_scan), "%ld", carillon_cfg.resume_max_events * GAP_SCAN_FACTOR);
	snprintf(page, sizeof(page), "%ld", carillon_cfg.snapshot_page);
	snprintf(max_events, sizeof(max_events), "%ld", carillon_cfg.resume_max_events);
	const char *params[6] = {s->user_arn, since, max_scan, page, s->user_gen[0] ? s->user_gen : NULL, max_events};
	/* One statement, one snapshot: the position P, and the channels as of P (a fresh session, or
	 * one whose gap cannot be resumed), or for a resumable gap (since, P] (still in the log, not
	 * too long, at most resume_max_events membership moves of the user) the channels as of
	 * `since` and the channels the user joined or left in the gap (both from one scan of the
	 * user's moves: carillon.resume_start). Only the list the session will use is built. Channel
	 * lists are the first page, '\n'-separated (ARNs have no newline). */
	if (!session_query(s, "with p as (select carillon.log_position() as pos),"
			      " rs as (select * from carillon.resume_start($1, $2::bigint, (select pos from p), $4::int)"
			      "        where $2::bigint >= 0),"
			      " r as (select $2::bigint >= 0 and carillon.resume_window($2::bigint, p.pos, $3::bigint)"
			      "              and coalesce((select cardinality(rs.moved) from rs), 0) <= $6::int as ok from p)"
			      " select exists (select 1 from carillon.app_instance_users where arn = $1"
			      "                and ($5::bigint is null or generation = $5::bigint)),"
			      " case when not r.ok then coalesce((select string_agg(a, E'\\n' order by a)"
			      "           from carillon.channels_at($1, p.pos, '', $4::int) a), '') end,"
			      " p.pos, r.ok,"
			      " case when r.ok then (select rs.channels from rs) end,"
			      " (select rs.moved::text from rs), coalesce((select cardinality(rs.moved) from rs), 0)"
			      " from p, r",
			   6, params, snapshot_done))
		session_fail(s, 1013, "Busy");
}

/* ------------------------------------------------------------------------- session registry */

/* The per-user session quota holds across the deployment: every session is registered in
 * carillon.ws_sessions under this process's random node id before its snapshot, counted under a
 * per-user lock (carillon.ws_register), and unregistered when it closes. The ids of closed
 * sessions are deleted in batches with the node's heartbeat (carillon.ws_heartbeat), which also
 * keeps the node alive: the sessions of a node silent for CARILLON_NODE_ALIVE_SECONDS no longer count. At
 * shutdown the node's row goes, and its sessions with it, before the database connections close
 * (clients reconnecting elsewhere must not find their old sessions still counted). */
static char node_id[37];
static int64_t next_reg_id;
static int64_t *closed_ids, *flushing_ids;
static size_t n_closed, cap_closed, n_flushing;
static bool heartbeat_in_flight, node_leaving, node_gone;
static int64_t last_heartbeat_ms;
/* The node's flag in carillon.ws_nodes (whether writes notify it: carillon.events_heard) is raised
 * by its registrations, before their sessions' snapshots, and lowered by a heartbeat sent while the
 * node has no session and no registration in flight (`lowering`); registrations wait for that
 * heartbeat's answer, so a lowering and a raising of this node never run at the same time. */
static unsigned regs_in_flight;
static bool lowering;
static bool registrations_waiting(void);
static void registrations_resume(void);

/* Registry work the shutdown should wait for (not when no database connection is up: then it
 * could only wait for the grace period to end). */
static bool registry_busy(void)
{
	return (heartbeat_in_flight || (node_leaving && !node_gone)) && carillon_db_ready();
}

static void closed_push(int64_t id)
{
	if (n_closed == cap_closed) {
		cap_closed = cap_closed ? cap_closed * 2 : 64;
		closed_ids = carillon_xrealloc(closed_ids, cap_closed * sizeof(*closed_ids));
	}
	closed_ids[n_closed++] = id;
}

static void registry_flush(void);

static void heartbeat_done(void *arg, const struct carillon_db_result *r)
{
	heartbeat_in_flight = false;
	if (lowering) {
		lowering = false;
		registrations_resume();
	}
	if (!r->res) {
		log_warn("session registry: heartbeat failed: %s", r->message ? r->message : "?");
		for (size_t i = 0; i < n_flushing; i++) /* retried with the next heartbeat */
			closed_push(flushing_ids[i]);
	}
	free(flushing_ids);
	flushing_ids = NULL;
	n_flushing = 0;
	if (n_closed && r->res)
		registry_flush();
}

/* Send the heartbeat with the ids closed since the last one (one query in flight at a time). */
static void registry_flush(void)
{
	if (heartbeat_in_flight || node_leaving || !node_id[0])
		return;
	struct carillon_buf ids = {0};
	carillon_buf_appendf(&ids, "{");
	for (size_t i = 0; i < n_closed; i++)
		carillon_buf_appendf(&ids, "%s%lld", i ? "," : "", (long long)closed_ids[i]);
	carillon_buf_appendf(&ids, "}");
	char forget[16];
	snprintf(forget, sizeof(forget), "%ld", carillon_cfg.node_forget_seconds);
	bool listen = !carillon_hub_silent() || regs_in_flight || registrations_waiting();
	const char *params[4] = {node_id, ids.data, forget, listen ? "true" : "false"};
	if (carillon_db_query("select carillon.ws_heartbeat($1::uuid, $2::bigint[], $3::int, $4::boolean)", 4, params,
			      heartbeat_done, NULL)) {
		free(ids.data);
		return; /* the queue is full: the next tick tries again */
	}
	free(ids.data);
	lowering = !listen;
	flushing_ids = closed_ids;
	n_flushing = n_closed;
	closed_ids = NULL;
	n_closed = cap_closed = 0;
	heartbeat_in_flight = true;
	last_heartbeat_ms = carillon_now_ms();
}

static void registry_closed(struct carillon_session *s)
{
	if (!s->reg_id)
		return;
	closed_push(s->reg_id);
	s->reg_id = 0;
	registry_flush();
}

static void node_left(void *arg, const struct carillon_db_result *r)
{
	node_gone = true;
	if (!r->res)
		log_warn("session registry: cannot remove this node: %s", r->message ? r->message : "?");
}

/* Shutdown: the node's row and every session of it (on delete cascade), in one statement. */
static void registry_leave(void)
{
	if (node_leaving || !node_id[0])
		return;
	node_leaving = true;
	const char *params[1] = {node_id};
	if (carillon_db_query("delete from carillon.ws_nodes where node = $1::uuid", 1, params, node_left, NULL))
		node_gone = true;
}

static void request_snapshot(struct carillon_session *s);

/* A registration's answer: registered (true), refused (false), or no answer (answered = false). */
static void register_result(struct snapshot_ticket *t, bool answered, bool registered)
{
	struct carillon_session *s = t->s;
	int64_t id = t->reg_id;
	free(t);
	if (!s) { /* closed meanwhile: take the row back out */
		if (registered) {
			closed_push(id);
			registry_flush();
		}
		return;
	}
	s->ticket = NULL;
	if (s->state != S_PENDING) {
		if (registered) {
			closed_push(id);
			registry_flush();
		}
		return;
	}
	if (!answered) {
		session_fail(s, 1011, "Internal error");
		return;
	}
	if (!registered && !s->reg_retried) {
		/* A session closed a moment ago may not be unregistered yet (its delete travels with
		 * the next heartbeat): ask once more a second later before refusing for good. */
		s->reg_retried = true;
		s->reg_retry_at = carillon_now_ms() + 1000;
		return;
	}
	if (!registered) {
		log_info("websocket session of %s refused: %ld sessions already open in the deployment", s->user_arn,
			 carillon_cfg.max_sessions_per_user);
		session_fail(s, 4003, "Too many messaging sessions for this AppInstanceUser");
		return;
	}
	s->reg_id = id;
	request_snapshot(s);
}

/* ------------------------------------------------------------- connects batched per loop turn */

/* Sessions that connect in the same loop turn share their statements: their registrations are one
 * carillon.ws_register_many call, and the snapshots of the fresh ones (no since-position) one
 * statement over all of them. Tickets wait in these lists until the loop is about to block for
 * I/O (a prepare handle), at most BATCH_MAX per statement. */
#define BATCH_MAX 256

struct batch {                 /* the tickets of one statement in flight */
	size_t n;
	struct snapshot_ticket *t[];
};

static struct ticket_list reg_wait;
static uv_prepare_t batch_prepare;
static bool batch_ready;

static void batch_flush(uv_prepare_t *h);

/* The batched statements go out at the end of this loop turn. */
static void batch_schedule(void)
{
	if (batch_ready)
		uv_prepare_start(&batch_prepare, batch_flush);
	else
		batch_flush(NULL); /* no loop to wait for: one statement now */
}

static void ticket_push(struct ticket_list *l, struct snapshot_ticket *t)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->t = carillon_xrealloc(l->t, sizeof(*l->t) * l->cap);
	}
	l->t[l->n++] = t;
	batch_schedule();
}

/* Take up to BATCH_MAX tickets of sessions still open (the others are dropped here). */
static struct batch *batch_take(struct ticket_list *l)
{
	struct batch *b = carillon_xmalloc(sizeof(*b) + sizeof(b->t[0]) * (l->n < BATCH_MAX ? l->n : BATCH_MAX));
	size_t used = 0;
	b->n = 0;
	while (used < l->n && b->n < BATCH_MAX) {
		struct snapshot_ticket *t = l->t[used++];
		if (t->s)
			b->t[b->n++] = t;
		else
			free(t);
	}
	memmove(l->t, l->t + used, sizeof(*l->t) * (l->n - used));
	l->n -= used;
	return b;
}

/* {"a","b",NULL}: a text[] literal (ARNs quoted and escaped). */
static void array_literal(struct carillon_buf *out, const char *const *v, size_t n)
{
	carillon_buf_append(out, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			carillon_buf_append(out, ",", 1);
		if (!v[i]) {
			carillon_buf_append(out, "NULL", 4);
			continue;
		}
		carillon_buf_append(out, "\"", 1);
		for (const char *c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				carillon_buf_append(out, "\\", 1);
			carillon_buf_append(out, c, 1);
		}
		carillon_buf_append(out, "\"", 1);
	}
	carillon_buf_append(out, "}", 1);
}

/* A batch's statement could not be sent: every session of it is refused, retryable. */
static void batch_fail(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct carillon_session *s = b->t[i]->s;
		s->ticket = NULL;
		free(b->t[i]);
		session_fail(s, 1013, "Busy");
	}
	free(b);
}

static void registrations_done(void *arg, const struct carillon_db_result *r)
{
	struct batch *b = arg;
	regs_in_flight--;
	int rows = r->res ? PQntuples(r->res) : 0;
	for (int i = 0; i < rows; i++) {
		long k = strtol(PQgetvalue(r->res, i, 0), NULL, 10) - 1;
		if (k < 0 || (size_t)k >= b->n || !b->t[k])
			continue;
		register_result(b->t[k], true, !strcmp(PQgetvalue(r->res, i, 1), "t"));
		b->t[k] = NULL;
	}
	for (size_t k = 0; k < b->n; k++)
		if (b->t[k])
			register_result(b->t[k], false, false);
	free(b);
}

static void flush_registrations(void)
{
	struct batch *b = batch_take(&reg_wait);
	if (!b->n) {
		free(b);
		return;
	}
	struct carillon_buf ids = {0}, users = {0};
	const char **names = carillon_xmalloc(sizeof(*names) * b->n);
	carillon_buf_append(&ids, "{", 1);
	for (size_t i = 0; i < b->n; i++) {
		carillon_buf_appendf(&ids, "%s%lld", i ? "," : "", (long long)b->t[i]->reg_id);
		names[i] = b->t[i]->s->user_arn;
	}
	carillon_buf_append(&ids, "}", 2); /* with the terminating NUL */
	array_literal(&users, names, b->n);
	carillon_buf_append(&users, "", 1);
	free(names);
	char max[24], alive[16];
	snprintf(max, sizeof(max), "%ld", carillon_cfg.max_sessions_per_user);
	snprintf(alive, sizeof(alive), "%ld", carillon_cfg.node_alive_seconds);
	const char *params[5] = {node_id, ids.data, users.data, max, alive};
	regs_in_flight++; /* registrations_done takes it back */
	if (carillon_db_query("select r_i, r_ok from carillon.ws_register_many($1::uuid, $2::bigint[], $3::text[], $4::int, $5::int)",
			      5, params, registrations_done, b)) {
		regs_in_flight--;
		batch_fail(b);
	}
	carillon_buf_free(&ids);
	carillon_buf_free(&users);
}

static void channels_joined(struct carillon_session *s, const char *text);

/* A fresh session's snapshot: its user still exists (with the credential's generation), the log
 * position P, and the first page of its channels as of P. */
static void snapshot_apply(struct carillon_session *s, bool exists, const char *pos, const char *channels)
{
	if (!exists) {
		session_fail(s, 4401, "Unauthorized");
		return;
	}
	s->start_pos = strtoll(pos, NULL, 10);
	channels_joined(s, channels);
}

static void snapshots_done(void *arg, const struct carillon_db_result *r)
{
	struct batch *b = arg;
	int rows = r->res ? PQntuples(r->res) : 0;
	for (int i = 0; i < rows; i++) {
		long k = strtol(PQgetvalue(r->res, i, 0), NULL, 10) - 1;
		if (k < 0 || (size_t)k >= b->n || !b->t[k])
			continue;
		struct carillon_session *s = session_claim(b->t[k], S_PENDING);
		b->t[k] = NULL;
		if (s)
			snapshot_apply(s, !strcmp(PQgetvalue(r->res, i, 1), "t"), PQgetvalue(r->res, i, 3),
				       PQgetvalue(r->res, i, 2));
	}
	for (size_t k = 0; k < b->n; k++) {
		struct carillon_session *s = b->t[k] ? session_claim(b->t[k], S_PENDING) : NULL;
		if (s)
			session_fail(s, 1011, "Internal error");
	}
	free(b);
}

/* One statement, one snapshot for every session of the batch: P once, then per session whether its
 * user still exists and its channels as of P (first page). */
static void flush_snapshots(void)
{
	struct batch *b = batch_take(&snap_wait);
	if (!b->n) {
		free(b);
		return;
	}
	struct carillon_buf users = {0}, gens = {0};
	const char **names = carillon_xmalloc(sizeof(*names) * b->n), **g = carillon_xmalloc(sizeof(*g) * b->n);
	for (size_t i = 0; i < b->n; i++) {
		names[i] = b->t[i]->s->user_arn;
		g[i] = b->t[i]->s->user_gen[0] ? b->t[i]->s->user_gen : NULL;
	}
	array_literal(&users, names, b->n);
	carillon_buf_append(&users, "", 1);
	array_literal(&gens, g, b->n);
	carillon_buf_append(&gens, "", 1);
	free(names);
	free(g);
	char page[16];
	snprintf(page, sizeof(page), "%ld", carillon_cfg.snapshot_page);
	const char *params[3] = {users.data, gens.data, page};
	if (carillon_db_query("select u.i, exists (select 1 from carillon.app_instance_users a where a.arn = u.arn"
			      "                  and (u.gen is null or a.generation = u.gen)),"
			      " coalesce((select string_agg(c, E'\\n' order by c)"
			      "           from carillon.channels_at(u.arn, p.pos, '', $3::int) c), ''),"
			      " p.pos"
			      " from (select carillon.log_position() as pos) p,"
			      "      unnest($1::text[], $2::bigint[]) with ordinality as u(arn, gen, i)",
			      3, params, snapshots_done, b)) {
		batch_fail(b);
	}
	carillon_buf_free(&users);
	carillon_buf_free(&gens);
}

static bool registrations_waiting(void) { return reg_wait.n > 0; }

/* A lowering heartbeat has answered: the registrations held meanwhile go out. */
static void registrations_resume(void)
{
	if (reg_wait.n)
		batch_schedule();
}

static void batch_flush(uv_prepare_t *h)
{
	while (reg_wait.n && !lowering) /* held while a lowering heartbeat is in flight */
		flush_registrations();
	while (snap_wait.n)
		flush_snapshots();
	if (h)
		uv_prepare_stop(h);
}

/* Queue a ticket for one of the batched statements (s->ticket is set: a close drops it). */
static void batch_join(struct ticket_list *l, struct carillon_session *s, int64_t reg_id)
{
	struct snapshot_ticket *t = carillon_xcalloc(1, sizeof(*t));
	t->s = s;
	t->reg_id = reg_id;
	s->ticket = t;
	ticket_push(l, t);
}

static void request_register(struct carillon_session *s)
{
	batch_join(&reg_wait, s, ++next_reg_id);
}

/* The query of the upgrade request, copied out of lws fragment by fragment and parsed by
 * carillon_connect_params_parse (the fuzzed parser). Returns the query re-encoded for the
 * signature, or NULL when it is malformed (too many or too long fragments, a bad value). */
static char *connect_query(struct lws *wsi, struct carillon_session *s, char *user_arn, size_t user_len)
{
	char **frags;
	user_arn[0] = '\0';
	int n = carillon_http_query_fragments(wsi, CARILLON_CONNECT_MAX_PARAMS, CARILLON_CONNECT_MAX_FRAGMENT, &frags);
	if (n < 0)
		return NULL;
	struct carillon_connect_params p;
	int rc = carillon_connect_params_parse((const char *const *)frags, (size_t)n, &p);
	if (n > 0)
		carillon_http_fragments_free(frags, n);
	if (rc)
		return NULL;
	snprintf(user_arn, user_len, "%s", p.user_arn);
	s->prefetch = p.prefetch;
	s->since = p.since;
	snprintf(s->prefetch_sort, sizeof(s->prefetch_sort), "%s", p.prefetch_sort);
	return p.canonical_query; /* ownership passes to the caller */
}

struct upgrade_headers {
	struct lws *wsi;
	char host[256];
};

static const char *upgrade_header(void *ctx, const char *name)
{
	struct upgrade_headers *h = ctx;
	if (strcmp(name, "host"))
		return NULL;
	if (!h->host[0] && lws_hdr_copy(h->wsi, h->host, sizeof(h->host), WSI_TOKEN_HOST) < 0)
		return NULL;
	for (char *p = h->host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return h->host;
}

/* Verify the upgrade request: /connect, a userArn, a valid presigned signature whose principal
 * may act as userArn. Fills `user` (and the query options of s); on refusal `why` says why. */
static bool connect_verify(struct lws *wsi, struct carillon_session *s, char *user, size_t user_len,
			   struct carillon_principal *pp, char *why, size_t why_len)
{
	char uri[64] = "";
	lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
	char *query = connect_query(wsi, s, user, user_len);
	if (!query) {
		snprintf(why, why_len, "malformed query");
		return false;
	}
	struct upgrade_headers h = {wsi, ""};
	struct carillon_sigv4_request sr = {.method = "GET", .raw_path = "/connect", .raw_query = query,
					    .header = upgrade_header, .header_ctx = &h, .allow_query_auth = true};
	struct carillon_principal p;
	bool ok = false;
	if (strcmp(uri, "/connect"))
		snprintf(why, why_len, "not /connect");
	else if (!user[0])
		snprintf(why, why_len, "no userArn");
	else if (carillon_auth_request(&sr, carillon_now_ms(), 0, &p, why, why_len) != CARILLON_AUTH_OK)
		; /* why says why */
	else if (p.kind == CARILLON_PRINCIPAL_USER && strcmp(p.user_arn, user))
		snprintf(why, why_len, "user credentials may connect only as their own AppInstanceUser");
	else
		ok = true;
	free(query);
	if (ok)
		*pp = p;
	return ok;
}

static struct carillon_ratelimit connect_rate;
static bool keepalive_running;          /* carillon_sessions_start() ran, stop() did not yet */

/* With the connect rate on, the upgrade request is verified before the upgrade (to charge the
 * right user); ESTABLISHED then takes that verdict instead of verifying the signature again. Every
 * upgrade passes the filter before its ESTABLISHED, and each filter call clears the slot first, so
 * the slot can only be taken by the connection it was filled for. */
static struct {
	struct lws *wsi;                /* NULL: empty */
	char user[1601];
	struct carillon_principal p;
	struct carillon_session opts;   /* the query options (prefetch, since, prefetch_sort) */
} verified;

/* Before the upgrade (LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION): the per-user connect rate. Over
 * it, answer 429 ThrottledClientException and refuse the upgrade: the client backs off and tries
 * again. Only verified requests take a token (nobody can spend another user's), and refusals of
 * any other kind are left to ESTABLISHED (4401 after the upgrade, which the client expects). */
static int connect_filter(struct lws *wsi)
{
	verified.wsi = NULL;
	if (carillon_cfg.connect_rate_per_user <= 0 || !keepalive_running)
		return 0;
	struct carillon_session scratch;
	memset(&scratch, 0, sizeof(scratch));
	scratch.since = -1;
	char user[1601], why[256];
	struct carillon_principal p;
	if (!connect_verify(wsi, &scratch, user, sizeof(user), &p, why, sizeof(why)))
		return 0;
	if (carillon_ratelimit_take(&connect_rate, user, carillon_now_ms())) {
		verified.wsi = wsi;
		snprintf(verified.user, sizeof(verified.user), "%s", user);
		verified.p = p;
		verified.opts = scratch;
		return 0;
	}
	log_info("websocket connect of %s refused: over the connect rate", user);
	static const char body[] = "{\"Code\":\"ThrottledClientException\",\"Message\":\"Too many connects for this AppInstanceUser; retry later\"}";
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
			 "x-amzn-ErrorType: ThrottledClientException\r\nretry-after: 1\r\n"
			 "content-length: %zu\r\nconnection: close\r\n\r\n%s",
			 sizeof(body) - 1, body);
	unsigned char buf[LWS_PRE + sizeof(head)];
	memcpy(buf + LWS_PRE, head, (size_t)n);
	lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP);
	return 1; /* lws closes the connection without upgrading */
}

/* The client's sessionId (amazon-chime-sdk-js sends a UUID), for the log lines only: kept when it
 * is made of [A-Za-z0-9._-] and short. */
static void session_id_of(struct lws *wsi, char *out, size_t size)
{
	char buf[80];
	out[0] = '\0';
	const char *v = NULL;
	for (int n = 0; n < CARILLON_CONNECT_MAX_PARAMS && !v; n++) { /* lws's own lookup stops at a long one */
		int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, n);
		if (len > 10 && len < (int)sizeof(buf) && lws_hdr_copy_fragment(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_URI_ARGS, n) > 0 &&
		    !strncmp(buf, "sessionId=", 10))
			v = buf + 10;
	}
	if (!v || strlen(v) >= size)
		return;
	if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(v))
		snprintf(out, size, "%s", v);
}

/* session_open / session_close lines: who, which session, and at close how long, why, how much. */
static void log_session(const struct carillon_session *s, const char *event)
{
	if (!carillon_log_enabled(CARILLON_LOG_INFO))
		return;
	bool closing = !strcmp(event, "session_close");
	int code = s->close_code ? s->close_code : s->peer_close_code ? s->peer_close_code : 1006;
	const char *reason = s->close_code ? s->close_reason : s->peer_close_code ? "closed by the client" : "connection lost";
	const struct carillon_log_field f[] = {
		CARILLON_LOG_STR("user", s->user_arn),
		CARILLON_LOG_STR("session_id", s->session_id[0] ? s->session_id : NULL),
		CARILLON_LOG_NUM("duration_s", carillon_metrics_clock() - s->t_open),
		CARILLON_LOG_INT("close_code", code),
		CARILLON_LOG_STR("close_reason", reason),
		CARILLON_LOG_INT("frames_sent", s->frames_sent),
	};
	carillon_log_event(CARILLON_LOG_INFO, event, f, closing ? 6 : 2);
}

static int session_open(struct lws *wsi, struct carillon_session *s)
{
	memset(s, 0, sizeof(*s));
	s->wsi = wsi;
	s->since = -1;
	s->last_rx_ms = carillon_now_ms();
	s->t_open = carillon_metrics_clock();
	carillon_metrics_session_opened();
	session_id_of(wsi, s->session_id, sizeof(s->session_id));
	sessions_open++;
	s->next = all_sessions;
	if (all_sessions)
		all_sessions->prev = s;
	all_sessions = s;
	char user[1601];
	struct carillon_principal p;
	char why[256];
	if (verified.wsi == wsi) { /* verified by the filter a moment ago, in this same upgrade */
		verified.wsi = NULL;
		snprintf(user, sizeof(user), "%s", verified.user);
		p = verified.p;
		s->prefetch = verified.opts.prefetch;
		s->since = verified.opts.since;
		memcpy(s->prefetch_sort, verified.opts.prefetch_sort, sizeof(s->prefetch_sort));
	} else if (!connect_verify(wsi, s, user, sizeof(user), &p, why, sizeof(why))) {
		log_info("websocket session refused (%s)", why);
		session_fail(s, 4401, "Unauthorized");
		return 0;
	}
	/* Chime's quota (10 concurrent messaging sessions per AppInstanceUser) is the registry's to
	 * decide (register_done), not this node's count: a client reconnecting while its previous
	 * session is still closing here would be refused for good (4003 is final for the client),
	 * where the registry asks again a second later, once the old session is gone. */
	s->expires_ms = p.kind == CARILLON_PRINCIPAL_USER ? p.expires_ms : 0;
	s->user_arn = carillon_xstrdup(user);
	if (p.kind == CARILLON_PRINCIPAL_USER)
		snprintf(s->user_gen, sizeof(s->user_gen), "%lld", (long long)p.user_gen);
	s->state = S_PENDING;
	carillon_hub_add_user(s, s->user_arn);
	log_session(s, "session_open");
	request_register(s);
	return 0;
}

/* Several queued frames in one write (one syscall instead of one each): we frame them ourselves
 * (server frames are unmasked: FIN|text, then the length) and hand lws the bytes raw — lws's ws
 * role sends LWS_WRITE_HTTP-typed data as is, and keeps whatever the socket does not take. */
#define COALESCE_MAX_BYTES (128u << 10)
#define COALESCE_MAX_FRAMES 64

static int write_coalesced(struct carillon_session *s)
{
	static unsigned char buf[LWS_PRE + COALESCE_MAX_BYTES + 10 * COALESCE_MAX_FRAMES];
	size_t len = 0, payload = 0;
	unsigned frames = 0;
	for (int n = 0; n < COALESCE_MAX_FRAMES && s->q_len; n++) {
		struct carillon_event *e = s->q[s->q_head];
		if (n && len + e->frame_len > COALESCE_MAX_BYTES)
			break;
		if (!n && e->frame_len > COALESCE_MAX_BYTES) { /* a large one alone, framed by lws */
			e = q_pop(s);
			int w = lws_write(s->wsi, e->frame + LWS_PRE, e->frame_len, LWS_WRITE_TEXT);
			if (w >= 0)
				sent(s, 1, e->frame_len);
			carillon_event_unref(e);
			return w < 0 ? -1 : 0;
		}
		e = q_pop(s);
		unsigned char *p = buf + LWS_PRE + len;
		size_t fl = e->frame_len, h;
		p[0] = 0x81;
		if (fl < 126) {
			p[1] = (unsigned char)fl;
			h = 2;
		} else if (fl < 65536) {
			p[1] = 126;
			p[2] = (unsigned char)(fl >> 8);
			p[3] = (unsigned char)fl;
			h = 4;
		} else {
			p[1] = 127;
			for (int i = 0; i < 8; i++)
				p[2 + i] = (unsigned char)((uint64_t)fl >> (56 - 8 * i));
			h = 10;
		}
		memcpy(p + h, e->frame + LWS_PRE, fl);
		len += h + fl;
		payload += fl;
		frames++;
		carillon_event_unref(e);
	}
	if (lws_write(s->wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP) < 0)
		return -1;
	sent(s, frames, payload);
	return 0;
}

static const char established_frame[] =
	"{\"Headers\":{\"x-amz-chime-event-type\":\"SESSION_ESTABLISHED\",\"x-amz-chime-message-type\":\"SYSTEM\"}}";

static int session_writeable(struct carillon_session *s)
{
	if (s->state == S_CLOSING) {
		/* lws 4.1 defers a lws_close_reason() frame to a writable that never comes when the
		 * callback returns -1: write the close frame ourselves, then close. */
		unsigned char buf[LWS_PRE + 2 + 64];
		size_t rlen = strlen(s->close_reason) < 64 ? strlen(s->close_reason) : 64;
		buf[LWS_PRE] = (unsigned char)(s->close_code >> 8);
		buf[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
		memcpy(buf + LWS_PRE + 2, s->close_reason, rlen);
		lws_write(s->wsi, buf + LWS_PRE, 2 + rlen, (enum lws_write_protocol)4 /* LWS_WRITE_CLOSE */);
		return -1;
	}
	if (s->ping_due) {
		/* A ping with a payload: the peer's pong echoes it, and lws 4.1 hands an EMPTY pong to
		 * nobody (no LWS_CALLBACK_RECEIVE_PONG), so an empty ping's answer would go unseen and a
		 * healthy but quiet client would be dropped as silent. */
		static const char ping_payload[] = "carillon";
		unsigned char buf[LWS_PRE + sizeof(ping_payload)];
		s->ping_due = false;
		memcpy(buf + LWS_PRE, ping_payload, sizeof(ping_payload) - 1);
		if (lws_write(s->wsi, buf + LWS_PRE, sizeof(ping_payload) - 1, LWS_WRITE_PING) < 0)
			return -1;
		if (s->q_len || (s->state == S_ACTIVE && !s->established_sent))
			lws_callback_on_writable(s->wsi);
		return 0;
	}
	if (s->state != S_ACTIVE)
		return 0;
	if (!s->established_sent) {
		unsigned char buf[LWS_PRE + sizeof(established_frame)];
		memcpy(buf + LWS_PRE, established_frame, sizeof(established_frame) - 1);
		if (lws_write(s->wsi, buf + LWS_PRE, sizeof(established_frame) - 1, LWS_WRITE_TEXT) < 0)
			return -1;
		s->established_sent = true;
		sent(s, 1, sizeof(established_frame) - 1);
		carillon_metrics_session_established(carillon_metrics_clock() - s->t_open);
	} else if (s->q_len > 1) {
		if (write_coalesced(s) < 0)
			return -1;
	} else {
		struct carillon_event *e = q_pop(s);
		if (!e)
			return 0;
		int w = lws_write(s->wsi, e->frame + LWS_PRE, e->frame_len, LWS_WRITE_TEXT);
		if (w >= 0)
			sent(s, 1, e->frame_len);
		carillon_event_unref(e);
		if (w < 0)
			return -1;
	}
	if (s->q_len)
		lws_callback_on_writable(s->wsi);
	return 0;
}

/* Closed sessions' channels are left a slice per loop iteration (an idle handle runs once per
 * iteration, after I/O): see carillon_hub_reap. */
static uv_idle_t reap_idle;
static bool reap_ready;

static void reap_tick(uv_idle_t *h)
{
	if (!carillon_hub_reap(REAP_SLICE))
		uv_idle_stop(h);
}

static void session_closed(struct carillon_session *s)
{
	if (!s->wsi)
		return;
	if (s->ticket)
		s->ticket->s = NULL;
	log_session(s, "session_close");
	carillon_metrics_session_closed(s->close_code ? s->close_code : s->peer_close_code ? s->peer_close_code : 1006);
	registry_closed(s);
	free(s->join_after);
	s->join_after = NULL;
	carillon_hub_detach(s);
	if (reap_ready)
		uv_idle_start(&reap_idle, reap_tick);
	q_clear(s);
	gap_clear(s);
	free(s->gap_moved);
	s->gap_moved = NULL;
	free(s->user_arn);
	s->user_arn = NULL;
	s->wsi = NULL;
	sessions_open--;
	if (s->prev)
		s->prev->next = s->next;
	else
		all_sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
}

static uv_timer_t keepalive_timer;

static void keepalive_tick(uv_timer_t *t)
{
	int64_t now = carillon_now_ms();
	for (struct carillon_session *s = all_sessions; s; s = s->next) {
		int64_t silent = now - s->last_rx_ms;
		if (s->reg_retry_at && now >= s->reg_retry_at && s->state == S_PENDING && !s->ticket) {
			s->reg_retry_at = 0;
			request_register(s);
		}
		if (s->expires_ms && now >= s->expires_ms) {
			/* retryable: the client asks for fresh credentials and reconnects */
			session_fail(s, 4410, "Credentials expired");
		} else if (silent > carillon_cfg.ws_idle_seconds * 1000) {
			session_fail(s, 1001, "No pong");
		} else if (silent > carillon_cfg.ws_ping_seconds * 1000 && !s->ping_due) {
			s->ping_due = true;
			lws_callback_on_writable(s->wsi);
		}
	}
	if (now - last_heartbeat_ms >= carillon_cfg.node_heartbeat_seconds * 1000)
		registry_flush();
}

void carillon_sessions_start(uv_loop_t *loop)
{
	uv_timer_init(loop, &keepalive_timer);
	uv_timer_start(&keepalive_timer, keepalive_tick, KEEPALIVE_TICK_MS, KEEPALIVE_TICK_MS);
	uv_idle_init(loop, &reap_idle);
	reap_ready = true;
	carillon_hub_start(loop, (unsigned)carillon_cfg.fanout_slice);
	uv_prepare_init(loop, &batch_prepare);
	batch_ready = true;
	carillon_uuid4(node_id);
	registry_flush();
	carillon_ratelimit_init(&connect_rate, carillon_cfg.connect_rate_per_user, carillon_cfg.connect_burst_per_user,
				(size_t)carillon_cfg.connect_rate_max_users);
	keepalive_running = true;
}

static void keepalive_closed(uv_handle_t *h) { (void)h; }

void carillon_sessions_stop(void)
{
	if (!keepalive_running)
		return;
	keepalive_running = false;
	uv_timer_stop(&keepalive_timer);
	uv_close((uv_handle_t *)&keepalive_timer, keepalive_closed);
	carillon_ratelimit_free(&connect_rate);
	free(closed_ids);
	free(flushing_ids);
	closed_ids = flushing_ids = NULL;
	n_closed = cap_closed = n_flushing = 0;
	reap_ready = false;
	carillon_hub_stop();
	batch_ready = false;
	uv_prepare_stop(&batch_prepare);
	uv_close((uv_handle_t *)&batch_prepare, keepalive_closed);
	for (struct ticket_list *l = &reg_wait; l; l = l == &reg_wait ? &snap_wait : NULL) {
		for (size_t i = 0; i < l->n; i++) {
			if (l->t[i]->s)
				l->t[i]->s->ticket = NULL;
			free(l->t[i]);
		}
		free(l->t);
		memset(l, 0, sizeof(*l));
	}
	uv_idle_stop(&reap_idle);
	uv_close((uv_handle_t *)&reap_idle, keepalive_closed);
}

void carillon_sessions_close_all(int code, const char *reason)
{
	registry_leave();
	for (struct carillon_session *s = all_sessions; s; s = s->next)
		session_fail(s, code, reason);
}

int carillon_session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct carillon_session *s = user;
	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: /* lws asks the default protocol, this one */
		carillon_http_confirm_upgrade(in);
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return connect_filter(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		return session_open(wsi, s);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return s && s->wsi ? session_writeable(s) : 0;
	case LWS_CALLBACK_RECEIVE:      /* the client sends no data frames; lws answers its pings */
	case LWS_CALLBACK_RECEIVE_PONG:
		if (s && s->wsi)
			s->last_rx_ms = carillon_now_ms();
		return 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (s && s->wsi && !s->peer_close_code)
			s->peer_close_code = len >= 2 ? ((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1] : 1005;
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (s)
			session_closed(s);
		return 0;
	default:
		return 0;
	}
}
