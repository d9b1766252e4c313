/*
 * The connection pool against a real PostgreSQL (the embedded one, in a temporary directory): a
 * write lane (carillon_db_query_lane, which the write batches use) runs its queries one after the
 * other on one connection, in the order queued; two lanes run at once on two connections; other
 * queries go to the other connections. Skipped when no PostgreSQL server binaries are installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/embedded_pg.h"
#include "pg_fixture.h"

#define ORDERED 8
#define PLAIN 4

static char tmpdir[PATH_MAX];
static uv_loop_t loop;

struct answer {
	bool done, ok;
	long pid;
	int seq;
};
static struct answer ordered[ORDERED], plain[PLAIN];
static int arrival[ORDERED], n_arrived;


static void record(struct answer *a, const struct carillon_db_result *r)
{
	a->done = true;
	a->ok = r->res && PQntuples(r->res) == 1;
	if (a->ok) {
		a->pid = strtol(PQgetvalue(r->res, 0, 0), NULL, 10);
		a->seq = (int)strtol(PQgetvalue(r->res, 0, 1), NULL, 10);
	}
}

static void ordered_cb(void *arg, const struct carillon_db_result *r)
{
	struct answer *a = arg;
	record(a, r);
	int i = (int)(a - ordered);
	arrival[n_arrived++] = i;
}

static void plain_cb(void *arg, const struct carillon_db_result *r) { record(arg, r); }

static void tick(uv_timer_t *t) { (void)t; }

/* Binary array parameters (carillon_db_array, carillon_db_query_lane_binary): what the server
 * prints of them. */
static struct {
	bool done;
	char text[256];
} arrays[2];

static void arrays_cb(void *arg, const struct carillon_db_result *r)
{
	int i = (int)(intptr_t)arg;
	arrays[i].done = true;
	if (r->res && PQntuples(r->res) == 1)
		snprintf(arrays[i].text, sizeof(arrays[i].text), "%s|%s|%s|%s", PQgetvalue(r->res, 0, 0),
			 PQgetvalue(r->res, 0, 1), PQgetvalue(r->res, 0, 2), PQgetvalue(r->res, 0, 3));
	else
		snprintf(arrays[i].text, sizeof(arrays[i].text), "error %s: %s", r->sqlstate ? r->sqlstate : "-",
			 r->message ? r->message : "-");
}

static bool arrays_answered(void) { return arrays[0].done && arrays[1].done; }

static void send_arrays(int i)
{
	struct carillon_db_array a[4];
	carillon_db_array_begin(&a[0], CARILLON_PG_TEXT_OID, 5);
	carillon_db_array_text(&a[0], "a bc", 3);
	carillon_db_array_text(&a[0], NULL, 0);
	carillon_db_array_text(&a[0], "\xc3\xa9\xf0\x9f\x98\x80", 6);
	carillon_db_array_text(&a[0], "", 0);
	carillon_db_array_text(&a[0], "q\"\\", 3);
	carillon_db_array_begin(&a[1], CARILLON_PG_INT8_OID, 3);
	carillon_db_array_int8(&a[1], -1);
	carillon_db_array_int8(&a[1], 9007199254740993LL);
	carillon_db_array_null(&a[1]);
	carillon_db_array_begin(&a[2], CARILLON_PG_JSONB_OID, 3);
	carillon_db_array_jsonb(&a[2], "null", 4);
	carillon_db_array_jsonb(&a[2], NULL, 0);
	carillon_db_array_jsonb(&a[2], "{\"k\":[1]}", 9);
	carillon_db_array_begin(&a[3], CARILLON_PG_INT8_OID, 2);
	carillon_db_array_int8(&a[3], 1);
	carillon_db_array_int8(&a[3], 2);
	const char *params[4];
	int lengths[4];
	for (int k = 0; k < 4; k++)
		params[k] = carillon_db_array_finish(&a[k], &lengths[k]);
	assert_int_equal(carillon_db_query_lane_binary(0, "select $1::text[]::text, $2::int8[]::text, $3::jsonb[]::text, "
							  "$4::int8[]::text",
						       4, params, lengths, arrays_cb, (void *)(intptr_t)i),
			 0);
	for (int k = 0; k < 4; k++)
		carillon_db_array_free(&a[k]);
}

/* Run the loop until done() or about 20 s. */
static bool run_until(bool (*done)(void))
{
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, tick, 10, 10);
	for (int i = 0; i < 2000 && !done(); i++)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&t);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return done();
}

static bool all_up(void)
{
	int up, busy, queued;
	carillon_db_stats(&up, &busy, &queued);
	return up == 4;
}

static bool all_answered(void)
{
	for (int i = 0; i < ORDERED; i++)
		if (!ordered[i].done)
			return false;
	for (int i = 0; i < PLAIN; i++)
		if (!plain[i].done)
			return false;
	return true;
}

static void test_write_lanes(void **state)
{
	(void)state;
	if (!have_postgres())
		skip();
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/carillon-pool.XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chmod(tmpdir, 0711), 0);
	char conninfo[1024];
	assert_int_equal(carillon_embedded_pg_start(tmpdir, conninfo, sizeof(conninfo)), 0);

	char *argv[] = {"test_pool", NULL};
	int argc = 1;
	assert_int_equal(carillon_config_load(&argc, argv), 0);
	carillon_cfg.db_pipeline_depth = 2;
	carillon_cfg.write_lanes = 2;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(carillon_db_init(&loop, conninfo, 4), 0);
	assert_true(run_until(all_up));
	assert_int_equal(carillon_db_lanes(), 2);

	/* Lane queries (even ones in lane 0, odd ones in lane 1) interleaved with plain ones that hold
	 * their connections for a while: the two other connections take the plain ones (two each,
	 * pipelined), each lane keeps its own. */
	const char *sql = "select pg_backend_pid(), $1::int from pg_sleep(0.02)";
	/* Lane 0's first query takes 0.5 s: lane 1 is done before it only if the lanes run at once. */
	const char *slow = "select pg_backend_pid(), $1::int from pg_sleep(0.5)";
	for (int i = 0; i < ORDERED; i++) {
		char seq[16];
		snprintf(seq, sizeof(seq), "%d", i);
		const char *params[1] = {seq};
		assert_int_equal(carillon_db_query_lane(i % 2, i ? sql : slow, 1, params, ordered_cb, &ordered[i]), 0);
		if (i < PLAIN)
			assert_int_equal(carillon_db_query(sql, 1, params, plain_cb, &plain[i]), 0);
	}
	assert_true(run_until(all_answered));

	int last_seen[2] = {-1, -1};
	for (int i = 0; i < ORDERED; i++) {
		assert_true(ordered[i].ok);
		assert_int_equal(ordered[i].seq, i);
		assert_int_equal(ordered[i].pid, ordered[i % 2].pid); /* one connection per lane */
		int lane = arrival[i] % 2;                            /* answered in the order queued, per lane */
		assert_true(arrival[i] > last_seen[lane]);
		last_seen[lane] = arrival[i];
	}
	assert_int_not_equal(ordered[0].pid, ordered[1].pid); /* two lanes, two connections */
	/* The lanes run at once: lane 1's four queries are answered while lane 0's first still runs. */
	for (int i = 0; i < ORDERED / 2; i++)
		assert_int_equal(arrival[i] % 2, 1);
	for (int i = 0; i < PLAIN; i++) {
		assert_true(plain[i].ok);
		assert_int_not_equal(plain[i].pid, ordered[0].pid); /* not behind the lanes' queries */
		assert_int_not_equal(plain[i].pid, ordered[1].pid);
	}

	/* Twice: the first prepares the text, the second runs the prepared statement. */
	send_arrays(0);
	send_arrays(1);
	assert_true(run_until(arrays_answered));
	const char *want = "{\"a b\",NULL,\xc3\xa9\xf0\x9f\x98\x80,\"\",\"q\\\"\\\\\"}|{-1,9007199254740993,NULL}|"
			   "{\"null\",NULL,\"{\\\"k\\\": [1]}\"}|{1,2}";
	assert_string_equal(arrays[0].text, want);
	assert_string_equal(arrays[1].text, want);

	carillon_db_shutdown();
	int rc = UV_EBUSY;
	for (int i = 0; i < 500 && rc == UV_EBUSY; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if ((rc = uv_loop_close(&loop)) == UV_EBUSY)
			usleep(10 * 1000);
	}
	assert_int_equal(rc, 0);
	carillon_db_free();
}

static int teardown(void **state)
{
	(void)state;
	carillon_embedded_pg_stop();
	rm_tree(tmpdir);
	tmpdir[0] = '\0';
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_write_lanes, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
