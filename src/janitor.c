/*
 * The janitor: every CARILLON_JANITOR_INTERVAL_MS, one asynchronous call of carillon.janitor(now)
 * (expirations, log trimming), then the retention sweep: carillon.retention_sweep called again and
 * again, each call one short statement deleting at most CARILLON_RETENTION_BATCH messages, until it
 * has walked every channel of every AppInstance with a retention period (sql/api/janitor.sql).
 * One step at a time, each queued behind other statements like any query: the loop never waits and
 * a large backlog is worked off in small transactions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/janitor.h"
#include "carillon/log.h"

#define JANITOR_SWEEP_CHANNELS "500" /* channels looked at per retention statement */

#define RETENTION_SQL                                                                                   \
	"select deleted, next_app, next_arn from carillon.retention_sweep(now(), $1::int, $2, $3, $4::int, " \
	"$5::int)"

static uv_timer_t janitor_timer;
static bool janitor_busy, janitor_running;

/* The retention sweep in progress: its cursor and what it deleted so far. */
static struct {
	char app[128];
	char arn[2048];
	long long deleted;
} sweep;

static void retention_step(void);

static void janitor_idle(void)
{
	janitor_busy = false;
	if (sweep.deleted > 0)
		log_notice("janitor: %lld message(s) past their AppInstance's retention period deleted", sweep.deleted);
}

static bool copy_cursor(char *dst, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

static void retention_done(void *arg, const struct carillon_db_result *r)
{
	if (!r->res || PQntuples(r->res) != 1) {
		log_warn("janitor: retention sweep: %s", r->message ? r->message : "no answer");
		janitor_idle(); /* the next tick starts over */
		return;
	}
	sweep.deleted += atoll(PQgetvalue(r->res, 0, 0));
	if (!janitor_running || PQgetisnull(r->res, 0, 1)) {
		janitor_idle();
		return;
	}
	if (!copy_cursor(sweep.app, sizeof(sweep.app), PQgetvalue(r->res, 0, 1)) ||
	    !copy_cursor(sweep.arn, sizeof(sweep.arn), PQgetvalue(r->res, 0, 2))) {
		log_warn("janitor: retention sweep cursor too long; the sweep starts over next time");
		janitor_idle();
		return;
	}
	retention_step();
}

static void retention_step(void)
{
	char day[24], rows[24];
	snprintf(day, sizeof(day), "%ld", carillon_cfg.retention_day_seconds);
	snprintf(rows, sizeof(rows), "%ld", carillon_cfg.retention_batch);
	const char *params[5] = {day, sweep.app, sweep.arn, rows, JANITOR_SWEEP_CHANNELS};
	if (carillon_db_query(RETENTION_SQL, 5, params, retention_done, NULL))
		janitor_idle();
}

static void janitor_done(void *arg, const struct carillon_db_result *r)
{
	if (!r->res)
		log_warn("janitor: %s", r->message);
	else if (PQntuples(r->res) == 1 && atoi(PQgetvalue(r->res, 0, 0)) > 0)
		log_notice("janitor: %s expired AppInstanceUser(s) deleted", PQgetvalue(r->res, 0, 0));
	if (!janitor_running) {
		janitor_busy = false;
		return;
	}
	memset(&sweep, 0, sizeof(sweep));
	retention_step();
}

static void janitor_tick(uv_timer_t *t)
{
	if (janitor_busy || !carillon_db_ready())
		return;
	janitor_busy = !carillon_db_query("select carillon.janitor(now())", 0, NULL, janitor_done, NULL);
}

void carillon_janitor_start(uv_loop_t *loop, unsigned interval_ms)
{
	uv_timer_init(loop, &janitor_timer);
	uv_timer_start(&janitor_timer, janitor_tick, interval_ms, interval_ms);
	janitor_running = true;
}

static void janitor_closed(uv_handle_t *h) { (void)h; }

void carillon_janitor_stop(void)
{
	if (!janitor_running)
		return;
	janitor_running = false;
	uv_timer_stop(&janitor_timer);
	uv_close((uv_handle_t *)&janitor_timer, janitor_closed);
}
