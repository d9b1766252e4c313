/*
 * Test driver for the push senders (not installed): runs a libuv loop with the outbound module and
 * sends the notifications of a JSON plan through carillon_fcm_send(), round by round: every send of
 * a round is made at once, the next round starts when all of them have answered. One JSON line per
 * send (refused at once, or its outcome), then a summary line.
 *
 *   push-driver '<plan JSON>'
 *
 * Plan: {"rounds": [[{"provider": "fcm", "creds": {"app_id", "channel_type", "version", "settings",
 *        "secret"}, "token", "msg": {"title"?, "body"?, "silent"?, "voip"?, "data"?, "dedupe_key"?,
 *        "ttl_seconds"?}}...]...], "shutdown_after_ms"?}
 * Settings come from the environment (CARILLON_OUTBOUND_*, CARILLON_FCM_URL) as in the server.
 * Or {"raw": {"url", "headers", "body", "count"}}: the same request `count` times through the outbound
 * module alone, one first (setting up the connection), then the others all at once (the push benchmark's reference: one loopback HTTP/2 request without a
 * sender around it); one summary line {"done", "raw_ok", "raw_failed", "elapsed_ms"}.
 * shutdown_after_ms shuts the senders and the outbound module down while sends are pending (their
 * callbacks must still run, exactly once). Exit status: 0, 2 on a bad plan or init failure, 3 when
 * loop handles were left open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "carillon/config.h"
#include "carillon/outbound.h"
#include "carillon/push.h"

static const char *outcome_names[] = {"ok", "retry", "invalid_token", "failed"};

static uv_loop_t loop;
static uv_timer_t next_round, stop_timer;
static json_t *rounds;
static size_t round_no, pending, sent;
static uint64_t start_ns;
static bool stopped;

static void fire_round(uv_timer_t *t);

static size_t raw_ok, raw_failed;
static json_t *raw;

static json_int_t raw_left;
static void fire_raw(void);

static void on_raw(void *arg, const struct carillon_outbound_resp *resp)
{
	if (resp->error == CARILLON_OUTBOUND_OK && resp->status == 200)
		raw_ok++;
	else {
		/* The reason on stderr: a failure of the reference is a finding, not noise. */
		if (raw_failed++ < 5)
			fprintf(stderr, "push-driver: raw request failed: %s (%s) status %ld\n",
				carillon_outbound_error_name(resp->error), resp->error_detail, resp->status);
	}
	pending--;
	if (raw_left)
		fire_raw();   /* the first answered: its connection is up, the rest go at once */
	if (!pending)
		uv_timer_start(&next_round, fire_round, 0, 0);
}

/* The raw requests: one first (the connection's set-up), then all the others at once. */
static void fire_raw(void)
{
	json_t *hs = json_object_get(raw, "headers");
	size_t nh = json_array_size(hs);
	const char *lines[16];
	for (size_t k = 0; k < nh && k < 16; k++)
		lines[k] = json_string_value(json_array_get(hs, k));
	const char *body = json_string_value(json_object_get(raw, "body"));
	struct carillon_outbound_req req = {
		.method = "POST", .url = json_string_value(json_object_get(raw, "url")), .headers = lines,
		.n_headers = nh < 16 ? nh : 16, .body = body, .body_len = body ? strlen(body) : 0,
	};
	json_int_t n = raw_left ? raw_left : 1;
	raw_left = raw_left ? 0 : json_integer_value(json_object_get(raw, "count")) - 1;
	for (json_int_t i = 0; i < n; i++) {
		if (carillon_outbound_request(&req, on_raw, NULL))
			raw_failed++;
		else
			pending++;
	}
}

struct slot {
	size_t round, i;
	int calls;
};

static void on_push(void *arg, enum carillon_push_outcome o, long retry_after_ms, int http_status,
		    const char *detail)
{
	struct slot *s = arg;
	json_t *line = json_pack("{s:I, s:I, s:s, s:I, s:i, s:s, s:f}", "round", (json_int_t)s->round, "i",
				 (json_int_t)s->i, "outcome", outcome_names[o], "retry_after_ms",
				 (json_int_t)retry_after_ms, "status", http_status, "detail", detail, "at_ms",
				 (double)(uv_hrtime() - start_ns) / 1e6);
	char *t = json_dumps(line, JSON_COMPACT);
	printf("%s\n", t);
	fflush(stdout);
	free(t);
	json_decref(line);
	free(s);
	if (--pending == 0 && !stopped)
		uv_timer_start(&next_round, fire_round, 0, 0);
}

static int fire(json_t *r, size_t round, size_t i)
{
	json_t *c = json_object_get(r, "creds");
	json_t *m = json_object_get(r, "msg");
	struct carillon_push_creds creds = {
		.app_id = json_string_value(json_object_get(c, "app_id")),
		.channel_type = json_string_value(json_object_get(c, "channel_type")),
		.version = (int)json_integer_value(json_object_get(c, "version")),
		.settings = json_object_get(c, "settings"),
		.secret = json_object_get(c, "secret"),
	};
	struct carillon_push_msg msg = {
		.title = json_string_value(json_object_get(m, "title")),
		.body = json_string_value(json_object_get(m, "body")),
		.silent = json_is_true(json_object_get(m, "silent")),
		.voip = json_is_true(json_object_get(m, "voip")),
		.data = json_object_get(m, "data"),
		.dedupe_key = json_string_value(json_object_get(m, "dedupe_key")),
		.ttl_seconds = (long)json_integer_value(json_object_get(m, "ttl_seconds")),
	};
	struct slot *s = calloc(1, sizeof(*s));
	s->round = round;
	s->i = i;
	pending++;
	int rc = carillon_fcm_send(&creds, json_string_value(json_object_get(r, "token")), &msg, on_push, s);
	if (rc) {
		pending--;
		free(s);
		printf("{\"round\":%zu,\"i\":%zu,\"refused\":true}\n", round, i);
	}
	sent++;
	return rc;
}

static void finish(void)
{
	uv_timer_stop(&stop_timer);
	carillon_fcm_shutdown();
	carillon_outbound_shutdown();
	uv_close((uv_handle_t *)&next_round, NULL);
	uv_close((uv_handle_t *)&stop_timer, NULL);
}

static void fire_round(uv_timer_t *t)
{
	if (stopped)
		return;
	if (raw) {
		if (!raw_ok && !raw_failed)
			fire_raw();
		if (pending)
			return;
		raw = NULL;
	}
	while (round_no < json_array_size(rounds)) {
		json_t *round = json_array_get(rounds, round_no);
		size_t i;
		json_t *r;
		json_array_foreach(round, i, r)
			fire(r, round_no, i);
		round_no++;
		if (pending)
			return;   /* on_push starts the next round */
	}
	stopped = true;
	finish();
}

static void on_stop(uv_timer_t *t)
{
	/* Shut down with sends pending: every callback must still come, from the outbound module's
	 * cancellation, before the loop runs dry. */
	stopped = true;
	finish();
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: push-driver '<plan JSON>'\n");
		return 2;
	}
	json_error_t jerr;
	json_t *plan = json_loads(argv[1], 0, &jerr);
	if (!json_is_object(plan)) {
		fprintf(stderr, "push-driver: bad plan: %s\n", jerr.text);
		return 2;
	}
	int cargc = 1;
	char *cargv[] = {argv[0], NULL};
	if (carillon_config_load(&cargc, cargv)) {
		json_decref(plan);
		return 2;
	}
	struct carillon_outbound_opts opts;
	carillon_outbound_opts_from_config(&opts);
	uv_loop_init(&loop);
	if (carillon_outbound_init(&loop, &opts)) {
		fprintf(stderr, "push-driver: the outbound module did not start\n");
		uv_loop_close(&loop);
		json_decref(plan);
		return 2;
	}
	rounds = json_object_get(plan, "rounds");
	raw = json_object_get(plan, "raw");
	uv_timer_init(&loop, &next_round);
	uv_timer_init(&loop, &stop_timer);
	start_ns = uv_hrtime();
	json_t *sa = json_object_get(plan, "shutdown_after_ms");
	if (json_is_integer(sa))
		uv_timer_start(&stop_timer, on_stop, (uint64_t)json_integer_value(sa), 0);
	uv_timer_start(&next_round, fire_round, 0, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	printf("{\"done\":true,\"sent\":%zu,\"pending\":%zu,\"raw_ok\":%zu,\"raw_failed\":%zu,\"elapsed_ms\":%.1f}\n", sent,
	       pending, raw_ok, raw_failed, (double)(uv_hrtime() - start_ns) / 1e6);
	int rc = uv_loop_close(&loop) ? 3 : 0;
	json_decref(plan);
	return rc;
}
