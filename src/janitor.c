/* The janitor: every interval, one asynchronous call of carillon.janitor(now). */
#include <stdio.h>
#include <stdlib.h>

#include "carillon/db.h"
#include "carillon/janitor.h"
#include "carillon/log.h"

static uv_timer_t janitor_timer;
static bool janitor_busy, janitor_running;

static void janitor_done(void *arg, const struct carillon_db_result *r)
{
	janitor_busy = false;
	if (!r->res)
		log_warn("janitor: %s", r->message);
	else if (PQntuples(r->res) == 1 && atoi(PQgetvalue(r->res, 0, 0)) > 0)
		log_notice("janitor: %s expired AppInstanceUser(s) deleted", PQgetvalue(r->res, 0, 0));
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
