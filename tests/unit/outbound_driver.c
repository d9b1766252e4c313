/*
 * Test driver for the outbound module (not installed): runs a libuv loop, fires the requests of a
 * JSON plan through carillon_outbound_request() all at once, and prints one JSON line per request
 * (refused at once, or its answer), then a summary line. A 10 ms uv timer ticks meanwhile; the
 * summary reports the largest gap between ticks, i.e. how long the loop was ever blocked.
 *
 *   outbound-driver '<plan JSON>'
 *
 * Plan: {"requests": [{"url", "method"?, "headers"?: ["Name: value"...], "body"?, "timeout_ms"?,
 *        "http"?: "prior" | "1.1", "client_cert_pem"?, "client_key_pem"?, "then"?: {a request fired from inside this one's callback,
 *        reported as i + 1000}}...], "capture"?: [response header names],
 *        "max_in_flight"?, "max_queued"?, "timeout_ms"?, "max_response_bytes"?,
 *        "ca_file"? (else CARILLON_OUTBOUND_CA_FILE), "cancel_after_ms"?}
 * Settings come from the environment (CARILLON_OUTBOUND_*) as in the server; the plan overrides.
 * Exit status: 0, 2 on a bad plan or init failure, 3 when loop handles were left open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "carillon/config.h"
#include "carillon/outbound.h"

static uv_loop_t loop;
static uv_timer_t tick, cancel_timer;
static uint64_t last_tick_ns, max_gap_ns, start_ns;
static long ticks;
static size_t pending;
static json_t *capture;

struct slot {
	size_t i;
	json_t *then;   /* a request to fire from inside this one's callback (borrowed from the plan) */
};

static int fire(json_t *r, size_t i);

static bool closing;

static void on_cancel(uv_timer_t *t);

/* Everything answered: shut the module down on the next loop turn (not from inside its callback),
 * so the loop runs out of handles and uv_run returns. */
static void finish_if_done(void)
{
	if (pending || closing)
		return;
	closing = true;
	uv_timer_start(&cancel_timer, on_cancel, 0, 0);
}

static void on_tick(uv_timer_t *t)
{
	uint64_t now = uv_hrtime();
	if (now - last_tick_ns > max_gap_ns)
		max_gap_ns = now - last_tick_ns;
	last_tick_ns = now;
	ticks++;
}

static void on_response(void *arg, const struct carillon_outbound_resp *resp)
{
	struct slot *s = arg;
	json_t *o = json_pack("{s:I, s:s, s:s, s:I, s:i, s:s#, s:f, s:f}", "i", (json_int_t)s->i, "error",
			      carillon_outbound_error_name(resp->error), "detail", resp->error_detail, "status",
			      (json_int_t)resp->status, "http_version", resp->http_version, "body", resp->body,
			      resp->body_len, "ms", resp->total_ms, "at_ms", (double)(uv_hrtime() - start_ns) / 1e6);
	json_t *h = json_object();
	size_t k;
	json_t *name;
	json_array_foreach(capture, k, name) {
		const char *v = carillon_outbound_header(resp, json_string_value(name));
		if (v)
			json_object_set_new(h, json_string_value(name), json_string(v));
	}
	json_object_set_new(o, "headers", h);
	json_object_set_new(o, "transient", json_boolean(carillon_outbound_error_transient(resp->error)));
	char *line = json_dumps(o, JSON_COMPACT);
	printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(o);
	/* A follow-up made from inside the callback, as a retry would be: numbered i + 1000. */
	if (s->then)
		fire(s->then, s->i + 1000);
	free(s);
	pending--;
	finish_if_done();
}

static void on_cancel(uv_timer_t *t)
{
	carillon_outbound_shutdown();   /* callbacks of pending requests: cancelled */
	if (closing) {
		uv_close((uv_handle_t *)&tick, NULL);
		uv_close((uv_handle_t *)&cancel_timer, NULL);
	}
}

static long plan_long(json_t *plan, const char *key, long def)
{
	json_t *v = json_object_get(plan, key);
	return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

static int fire(json_t *r, size_t i)
{
	struct carillon_outbound_req req = {0};
	req.url = json_string_value(json_object_get(r, "url"));
	req.method = json_string_value(json_object_get(r, "method"));
	json_t *body = json_object_get(r, "body");
	if (json_is_string(body)) {
		req.body = json_string_value(body);
		req.body_len = json_string_length(body);
	}
	req.timeout_ms = plan_long(r, "timeout_ms", 0);
	req.client_cert_pem = json_string_value(json_object_get(r, "client_cert_pem"));
	req.client_key_pem = json_string_value(json_object_get(r, "client_key_pem"));
	const char *http = json_string_value(json_object_get(r, "http"));
	req.http = !http ? CARILLON_OUTBOUND_HTTP_AUTO
		   : !strcmp(http, "prior") ? CARILLON_OUTBOUND_HTTP2_PRIOR
					      : CARILLON_OUTBOUND_HTTP1;
	json_t *hs = json_object_get(r, "headers");
	size_t n = json_array_size(hs);
	const char **lines = calloc(n ? n : 1, sizeof(*lines));
	for (size_t k = 0; k < n; k++)
		lines[k] = json_string_value(json_array_get(hs, k));
	req.headers = lines;
	req.n_headers = n;
	struct slot *s = malloc(sizeof(*s));
	s->i = i;
	s->then = json_is_object(json_object_get(r, "then")) ? json_object_get(r, "then") : NULL;
	int rc = carillon_outbound_request(&req, on_response, s);
	free(lines);
	if (rc) {
		free(s);
		printf("{\"i\":%zu,\"refused\":true}\n", i);
	} else {
		pending++;
	}
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: outbound-driver '<plan JSON>'\n");
		return 2;
	}
	json_error_t jerr;
	json_t *plan = json_loads(argv[1], 0, &jerr);
	if (!json_is_object(plan)) {
		fprintf(stderr, "outbound-driver: bad plan: %s\n", jerr.text);
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
	opts.max_in_flight = plan_long(plan, "max_in_flight", opts.max_in_flight);
	opts.max_queued = plan_long(plan, "max_queued", opts.max_queued);
	opts.default_timeout_ms = plan_long(plan, "timeout_ms", opts.default_timeout_ms);
	opts.connect_timeout_ms = plan_long(plan, "connect_timeout_ms", opts.connect_timeout_ms);
	opts.max_response_bytes = plan_long(plan, "max_response_bytes", opts.max_response_bytes);
	if (json_is_string(json_object_get(plan, "ca_file")))
		opts.ca_file = json_string_value(json_object_get(plan, "ca_file"));
	capture = json_object_get(plan, "capture");

	uv_loop_init(&loop);
	if (carillon_outbound_init(&loop, &opts)) {
		fprintf(stderr, "outbound-driver: the outbound module did not start\n");
		uv_loop_close(&loop);
		json_decref(plan);
		return 2;
	}
	uv_timer_init(&loop, &tick);
	uv_timer_init(&loop, &cancel_timer);
	start_ns = last_tick_ns = uv_hrtime();
	uv_timer_start(&tick, on_tick, 10, 10);
	long cancel_after = plan_long(plan, "cancel_after_ms", 0);
	if (cancel_after > 0)
		uv_timer_start(&cancel_timer, on_cancel, (uint64_t)cancel_after, 0);
	size_t k;
	json_t *r;
	long refused = 0;
	json_array_foreach(json_object_get(plan, "requests"), k, r)
		refused += fire(r, k) != 0;
	finish_if_done();
	/* Returns once finish_if_done has shut the module down and every handle is closed. */
	uv_run(&loop, UV_RUN_DEFAULT);
	printf("{\"done\":true,\"ticks\":%ld,\"max_gap_ms\":%.1f,\"elapsed_ms\":%.1f,\"refused\":%ld}\n", ticks,
	       (double)max_gap_ns / 1e6, (double)(uv_hrtime() - start_ns) / 1e6, refused);
	int rc = uv_loop_close(&loop) ? 3 : 0;
	json_decref(plan);
	return rc;
}
