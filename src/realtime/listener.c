/*
 * The listener: reads the event log in commit order and feeds the hub.
 *
 * NOTIFY only wakes us; the log is the truth. We keep the position of the last event handed to the
 * hub and read "position > last" (in batches of READ_BATCH) whenever a notification arrives, when
 * the LISTEN connection comes back after a drop (anything committed meanwhile is read then: nothing
 * is lost), and once a second as a fallback. Positions are assigned in commit order (see
 * docs/events.md), so reading above the last position never skips a committed event.
 */
#include <stdio.h>
#include <stdlib.h>

#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/realtime.h"

#define READ_BATCH 500
#define FALLBACK_MS 1000

static int64_t last_position = -1; /* -1: not yet known (start from the end of the log) */
static bool reading, read_again, running;
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
		int64_t pos = strtoll(PQgetvalue(r->res, i, 0), NULL, 10);
		struct carillon_event *e = carillon_event_new(pos, PQgetvalue(r->res, i, 1), PQgetvalue(r->res, i, 2),
							      PQgetvalue(r->res, i, 3), PQgetvalue(r->res, i, 4),
							      PQgetvalue(r->res, i, 5), PQgetvalue(r->res, i, 6));
		if (e) {
			carillon_hub_dispatch(e);
			carillon_event_unref(e);
		} else {
			log_err("listener: event %lld is malformed; skipped", (long long)pos);
		}
		last_position = pos;
	}
	if (n == READ_BATCH || read_again) {
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
	if (last_position < 0) {
		reading = !carillon_db_query("select coalesce(max(position), 0) from carillon.events", 0, NULL,
					     position_known, NULL);
		return;
	}
	char after[32], limit[16];
	snprintf(after, sizeof(after), "%lld", (long long)last_position);
	snprintf(limit, sizeof(limit), "%d", READ_BATCH);
	const char *params[2] = {after, limit};
	reading = !carillon_db_query("select position, channel_arn, event_type, message_type, payload::text, audience,"
				     " array_to_json(arns)::text from carillon.events where position > $1::bigint"
				     " order by position limit $2::int",
				     2, params, events_read, NULL);
}

static void on_notify(const char *payload) { read_events(); }
static void on_up(void) { read_events(); }
static void on_fallback(uv_timer_t *t) { read_events(); }

void carillon_listener_start(uv_loop_t *loop)
{
	running = true;
	carillon_db_listen("carillon_events", on_notify, on_up);
	uv_timer_init(loop, &fallback);
	uv_timer_start(&fallback, on_fallback, FALLBACK_MS, FALLBACK_MS);
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
