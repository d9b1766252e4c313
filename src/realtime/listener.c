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
 */
#include <stdio.h>
#include <stdlib.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/outbox.h"
#include "carillon/realtime.h"

/* The listener's read: events_after's rows, each ending with the event's created_at (epoch seconds,
 * column CARILLON_EVENT_COLS) for the commit-to-delivery metric. (It was a scalar subquery per
 * row, an index probe each, and a plan made again on every read: 0.08-0.14 ms of PostgreSQL's time
 * for a read of 31 events, measured.) */
#define LISTENER_SQL "select * from carillon.events_after($1::bigint, $2::int)"

static int64_t last_position = -1; /* -1: not yet known (start from the end of the log) */
static bool reading, read_again, running, hub_wait;
static int read_batch;
static uv_timer_t fallback;

int64_t carillon_listener_position(void) { return last_position; }

static void read_events(void);

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
		struct carillon_event *e = carillon_event_from_result(r->res, i);
		if (e) {
			uint64_t mark = carillon_metrics_delivery_mark();
			carillon_hub_dispatch(e);
			carillon_metrics_event_dispatched(mark, strtod(PQgetvalue(r->res, i, CARILLON_EVENT_COLS), NULL));
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
		reading = !carillon_db_query("select carillon.log_position()", 0, NULL, position_known, NULL);
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

static void on_notify(const char *payload)
{
	carillon_metrics_listener_notify();
	read_events();
	wake_subscribers(payload && *payload ? strtoll(payload, NULL, 10) : -1);
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
static void on_fallback(uv_timer_t *t)
{
	carillon_metrics_listener_poll();
	read_events();
}

void carillon_listener_start(uv_loop_t *loop)
{
	running = true;
	read_batch = (int)carillon_cfg.listener_batch;
	carillon_db_listen_also("carillon_outbox", on_outbox_notify);
	carillon_hub_on_drained(hub_drained);
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
}
