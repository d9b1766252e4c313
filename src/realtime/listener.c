/*
 * The listener: reads the event log in commit order and feeds the hub.
 *
 * NOTIFY only wakes us; the log is the truth. We keep the position of the last event handed to the
 * hub and read "position > last" (CARILLON_LISTENER_BATCH rows per query, through
 * carillon.events_after, decoded by carillon_event_from_result) whenever a notification arrives,
 * when the LISTEN connection comes back after a drop (anything committed meanwhile is read then:
 * nothing is lost), and every CARILLON_LISTENER_POLL_MS as a fallback. Positions are assigned in
 * commit order (see docs/events.md), so reading above the last position never skips a committed
 * event. One batch is read at a time: the rows in memory are bounded by the batch size, and while
 * the hub still has more than a batch of events to fan out, the next read waits for it to drain
 * (the events in memory stay bounded when deliveries are slower than the log grows).
 *
 * This node's own small write batches (carillon.send_few's sends) bring their events back in their
 * answer (carillon_listener_batch_events). When they are exactly the next positions and nothing
 * else is under way, they go to the hub from there, and the notification of the same commit then
 * finds nothing new to read: one query and its round trip fewer per batch on the writing node. In
 * any other case they are left alone and the notification's read brings them, so order and
 * exactly-once are the log's either way.
 *
 * A node with no session at all (carillon_hub_silent) does not read the log on a notification: it
 * moves its position to the one the notification names (pass_unread). Writes do not notify it at all
 * unless some node has sessions (carillon.events_heard, raised by the registrations): its poll then
 * moves its position to the log's end (end_known).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/outbox.h"
#include "carillon/realtime.h"
#include "carillon/util.h"

/* The listener's read: events_after's rows, each ending with the event's created_at (epoch seconds,
 * column CARILLON_EVENT_COLS) for the commit-to-delivery metric. (It was a scalar subquery per
 * row, an index probe each, and a plan made again on every read: 0.08-0.14 ms of PostgreSQL's time
 * for a read of 31 events, measured.) */
#define LISTENER_SQL "select * from carillon.events_after($1::bigint, $2::int)"
/* The log's end: where the listener starts, and where a node without sessions moves on its poll. */
#define LOG_END_SQL "select carillon.log_position()"

static int64_t last_position = -1; /* -1: not yet known (start from the end of the log) */
static bool reading, read_again, running, hub_wait;
static int read_batch;
static uv_timer_t fallback;

int64_t carillon_listener_position(void) { return last_position; }

static void read_events(void);

/* Hand one event to the hub, timing it for the metrics (`created_at`: its commit time, epoch
 * seconds). */
static void dispatch(struct carillon_event *e, double created_at)
{
	uint64_t mark = carillon_metrics_delivery_mark();
	carillon_hub_dispatch(e);
	carillon_metrics_event_dispatched(mark, created_at);
}

/* A names column of row `row` that names nobody. */
static bool names_none(const PGresult *res, int row, int col)
{
	return carillon_event_names_none(PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col));
}

/* Row `row` is an event no session of this node would receive (carillon_hub_unheard): it is not
 * built at all (its frame was ≈ 4 % of the gateway's CPU at 64 sends in flight on a node without
 * sessions, BENCHMARKS.md issue 11 session 15). */
static bool unheard(const PGresult *res, int row)
{
	return names_none(res, row, CARILLON_EVENT_COL_ARNS) && names_none(res, row, CARILLON_EVENT_COL_JOINS) &&
	       !PQgetisnull(res, row, CARILLON_EVENT_COL_CHANNEL) &&
	       carillon_hub_unheard(PQgetvalue(res, row, CARILLON_EVENT_COL_CHANNEL));
}

static void events_read(void *arg, const struct carillon_db_result *r)
{
	reading = false;
	if (!r->res) {
		log_warn("listener: reading events failed: %s", r->message);
		return; /* the fallback timer or the next notification retries */
	}
	int n = PQntuples(r->res);
	for (int i = 0; i < n; i++) {
		int64_t pos = strtoll(PQgetvalue(r->res, i, CARILLON_EVENT_COL_POSITION), NULL, 10);
		if (unheard(r->res, i)) {
			last_position = pos;
			continue;
		}
		struct carillon_event *e = carillon_event_from_result(r->res, i);
		if (e) {
			dispatch(e, strtod(PQgetvalue(r->res, i, CARILLON_EVENT_COLS), NULL));
			carillon_event_unref(e);
		} else {
			log_err("listener: event %lld is malformed; skipped", (long long)pos);
		}
		last_position = pos;
	}
	if (n == read_batch || read_again) {
		read_again = false;
		read_events();
	}
}

static void position_known(void *arg, const struct carillon_db_result *r)
{
	reading = false;
	if (!r->res || PQntuples(r->res) != 1) {
		log_warn("listener: cannot read the log position: %s", r->message ? r->message : "?");
		return;
	}
	last_position = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
	log_info("listener: starting after event %lld", (long long)last_position);
	if (read_again) {
		read_again = false;
		read_events();
	}
}

static void read_events(void)
{
	if (!running)
		return;
	if (reading) {
		read_again = true;
		return;
	}
	if (carillon_hub_backlog() > (unsigned)read_batch) {
		hub_wait = true;
		return;
	}
	if (last_position < 0) {
		reading = !carillon_db_query(LOG_END_SQL, 0, NULL, position_known, NULL);
		return;
	}
	char after[32], limit[16];
	snprintf(after, sizeof(after), "%lld", (long long)last_position);
	snprintf(limit, sizeof(limit), "%d", read_batch);
	const char *params[2] = {after, limit};
	reading = !carillon_db_query(LISTENER_SQL, 2, params, events_read, NULL);
}

static carillon_listener_wake_fn subscribers[4];
static size_t n_subscribers;

void carillon_listener_subscribe(carillon_listener_wake_fn fn)
{
	if (n_subscribers < sizeof(subscribers) / sizeof(subscribers[0]))
		subscribers[n_subscribers++] = fn;
}

static void wake_subscribers(int64_t position)
{
	for (size_t i = 0; i < n_subscribers; i++)
		subscribers[i](position);
}

/* The position a notification names (the last event of the transaction that sent it), or -1 if it
 * names none. */
static int64_t notified_position(const char *payload)
{
	if (!payload || *payload < '0' || *payload > '9')
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(payload, &end, 10);
	return errno || *end ? -1 : v;
}

/* Notifications are acted on at the end of the loop turn that received them (a check handle), so
 * that the answer of the batch that sent one, when it came in the same turn, is taken first. */
static uv_check_t notified_check;
static int64_t notified_max = -2; /* -2: none pending; -1: one that names no position */
static bool notified_unnamed;

/* A node with no session (carillon_hub_silent) has nobody to hand an event to: the listener moves
 * its position to the one the notification names without reading the log. Every event up to it is
 * committed (positions are in commit order), and a session that connects later takes a snapshot of
 * the log that includes them, so none is missed; the first notification after a session registers
 * is read as usual, from this position. (At 64 sends in flight on a node without sessions the read
 * cost ≈ 20 µs of PostgreSQL's CPU a message, BENCHMARKS.md issue 11 session 16.) */
static void pass_unread(int64_t position)
{
	last_position = position;
	carillon_metrics_listener_read_passed();
}

static void notified_run(uv_check_t *h)
{
	uv_check_stop(h);
	int64_t position = notified_max;
	bool unnamed = notified_unnamed;
	notified_max = -2;
	notified_unnamed = false;
	/* Events up to last_position were all handed over (a batch's answer brought them): every
	 * event of a notifying transaction is at or below the position it names. */
	if (!unnamed && position >= 0 && position <= last_position)
		carillon_metrics_listener_read_skipped();
	else if (!unnamed && position >= 0 && last_position >= 0 && !reading && carillon_hub_silent())
		pass_unread(position);
	else
		read_events();
	wake_subscribers(unnamed ? -1 : position);
}

static void on_notify(const char *payload)
{
	carillon_metrics_listener_notify();
	int64_t position = notified_position(payload);
	if (position < 0)
		notified_unnamed = true;
	else if (position > notified_max)
		notified_max = position;
	if (running)
		uv_check_start(&notified_check, notified_run);
}

/* Events from this node's batch answers wait here for the start of the next loop turn (an idle
 * handle), so that they go after the batch's REST replies, which are written at the end of this
 * one: handed over at once, their fan-out went first and the replies waited for it (measured: the
 * REST p50 at 1,000 sends/s rose from 1.7-2.3 to 2.7-3.4 ms). */
static struct held_event {
	struct carillon_event *e;
	double created_at;
} *held;
static size_t n_held, held_cap;
static uv_idle_t held_idle;

static void held_flush(uv_idle_t *h)
{
	uv_idle_stop(h);
	for (size_t i = 0; i < n_held; i++) {
		dispatch(held[i].e, held[i].created_at);
		carillon_event_unref(held[i].e);
	}
	n_held = 0;
}

static void held_drop(size_t from)
{
	for (size_t i = from; i < n_held; i++)
		carillon_event_unref(held[i].e);
	n_held = from;
}

void carillon_listener_batch_events(const PGresult *res, int first)
{
	if (!running || reading || hub_wait || last_position < 0 || carillon_hub_backlog() > (unsigned)read_batch ||
	    PQnfields(res) < first + CARILLON_EVENT_COLS + 1)
		return;
	/* All kept before any is handed over; one that is malformed or not the next position (another
	 * writer's events are between) leaves the whole batch to the notification's read. */
	size_t start = n_held;
	int64_t next = last_position + 1;
	for (int i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, first + CARILLON_EVENT_COL_POSITION))
			continue;
		struct carillon_event *e = carillon_event_from_result_at(res, i, first);
		if (!e || e->position != next) {
			if (e)
				carillon_event_unref(e);
			held_drop(start);
			return;
		}
		if (n_held == held_cap) {
			held_cap = held_cap ? held_cap * 2 : 8;
			held = carillon_xrealloc(held, held_cap * sizeof(*held));
		}
		held[n_held++] = (struct held_event){e, strtod(PQgetvalue(res, i, first + CARILLON_EVENT_COLS), NULL)};
		next++;
	}
	if (n_held == start)
		return;
	if (!start)
		uv_idle_start(&held_idle, held_flush);
	last_position = next - 1;
	carillon_metrics_listener_from_answer((unsigned)(n_held - start));
}

/* The outbox's notifications share this connection: a commit that enqueued work wakes the worker. */
static void on_outbox_notify(const char *payload) { carillon_outbox_wake(); }
static void hub_drained(void)
{
	if (hub_wait) {
		hub_wait = false;
		read_events();
	}
}
static void on_up(void)
{
	read_events();
	wake_subscribers(-1);
	carillon_outbox_wake(); /* anything enqueued while the connection was down */
}
/* The log's end, asked for by the poll of a node without sessions: taken only if the node still has
 * none now (a session that registered meanwhile takes its snapshot after this answer's, or it is
 * here and the read below brings the events from the old position). */
static void end_known(void *arg, const struct carillon_db_result *r)
{
	reading = false;
	if (r->res && PQntuples(r->res) == 1 && carillon_hub_silent()) {
		int64_t end = strtoll(PQgetvalue(r->res, 0, 0), NULL, 10);
		if (end > last_position)
			pass_unread(end);
	} else if (r->res) {
		read_again = true;
	}
	if (read_again) {
		read_again = false;
		read_events();
	}
}

/* The poll. A node without sessions is not woken by writes (carillon.events_heard: its flag in
 * carillon.ws_nodes is down), so its position would fall behind and the first read after a session
 * came would carry the whole interval: it moves the position to the log's end instead of reading
 * (the same as pass_unread on a notification). */
static void on_fallback(uv_timer_t *t)
{
	carillon_metrics_listener_poll();
	if (carillon_hub_silent() && last_position >= 0 && !reading) {
		reading = !carillon_db_query(LOG_END_SQL, 0, NULL, end_known, NULL);
		return;
	}
	read_events();
}

void carillon_listener_start(uv_loop_t *loop)
{
	running = true;
	read_batch = (int)carillon_cfg.listener_batch;
	carillon_db_listen_also("carillon_outbox", on_outbox_notify);
	carillon_hub_on_drained(hub_drained);
	uv_check_init(loop, &notified_check);
	uv_idle_init(loop, &held_idle);
	carillon_db_listen("carillon_events", on_notify, on_up);
	uv_timer_init(loop, &fallback);
	uint64_t poll = (uint64_t)carillon_cfg.listener_poll_ms;
	uv_timer_start(&fallback, on_fallback, poll, poll);
}

static void fallback_closed(uv_handle_t *h) { (void)h; }

void carillon_listener_stop(void)
{
	if (!running)
		return;
	running = false;
	uv_timer_stop(&fallback);
	uv_close((uv_handle_t *)&fallback, fallback_closed);
	uv_check_stop(&notified_check);
	uv_close((uv_handle_t *)&notified_check, fallback_closed);
	uv_idle_stop(&held_idle);
	uv_close((uv_handle_t *)&held_idle, fallback_closed);
	held_drop(0); /* not fanned out: the sessions close with the node */
	free(held);
	held = NULL;
	held_cap = 0;
}
