/*
 * The metric registry and its Prometheus text exposition: exact output for counters, gauges and
 * histograms (cumulative buckets, +Inf, _sum, _count), label escaping, number formatting, the
 * cardinality bound, refused definitions, and Carillon's catalogue (no-ops before init).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/metrics.h"
#include "carillon/metrics_endpoint.h"
#include "carillon/util.h"

static char *render(void)
{
	struct carillon_buf b = {0};
	carillon_metrics_render(&b);
	carillon_buf_append(&b, "", 1);
	return b.data;
}

static int teardown(void **state)
{
	carillon_metrics_free();
	return 0;
}

static void counter_and_gauge_exposition(void **state)
{
	struct carillon_metric_family *c =
	    carillon_metrics_family("t_requests_total", "Requests", CARILLON_METRIC_COUNTER, "op,status", NULL, 0, 10);
	struct carillon_metric_family *g = carillon_metrics_family("t_open", "Open\nthings \\ here", CARILLON_METRIC_GAUGE,
								   NULL, NULL, 0, 1);
	assert_non_null(c);
	assert_non_null(g);
	const char *a[] = {"Send", "200"}, *b[] = {"Send", "404"};
	carillon_metric_add(carillon_metrics_series(c, a), 1);
	carillon_metric_add(carillon_metrics_series(c, a), 2);
	carillon_metric_add(carillon_metrics_series(c, b), 1);
	carillon_metric_add(carillon_metrics_series(c, b), -5); /* a counter never goes down */
	struct carillon_metric *open = carillon_metrics_series(g, NULL);
	carillon_metric_add(open, 3);
	carillon_metric_add(open, -1);
	carillon_metric_set(open, 0.25);
	assert_ptr_equal(carillon_metrics_series(c, a), carillon_metrics_series(c, a));
	char *text = render();
	assert_string_equal(text, "# HELP t_requests_total Requests\n"
				  "# TYPE t_requests_total counter\n"
				  "t_requests_total{op=\"Send\",status=\"200\"} 3\n"
				  "t_requests_total{op=\"Send\",status=\"404\"} 1\n"
				  "# HELP t_open Open\\nthings \\\\ here\n"
				  "# TYPE t_open gauge\n"
				  "t_open 0.25\n");
	free(text);
}

static void histogram_exposition(void **state)
{
	static const double buckets[] = {0.005, 0.1, 1};
	struct carillon_metric_family *h =
	    carillon_metrics_family("t_seconds", "Latency", CARILLON_METRIC_HISTOGRAM, "op", buckets, 3, 4);
	const char *op[] = {"Get"};
	struct carillon_metric *m = carillon_metrics_series(h, op);
	carillon_metric_observe(m, 0.005); /* on the bound: in that bucket (le) */
	carillon_metric_observe(m, 0.05);
	carillon_metric_observe(m, 0.05);
	carillon_metric_observe(m, 7);
	assert_int_equal((int)carillon_metric_value(m), 4);
	char *text = render();
	assert_string_equal(text, "# HELP t_seconds Latency\n"
				  "# TYPE t_seconds histogram\n"
				  "t_seconds_bucket{op=\"Get\",le=\"0.005\"} 1\n"
				  "t_seconds_bucket{op=\"Get\",le=\"0.1\"} 3\n"
				  "t_seconds_bucket{op=\"Get\",le=\"1\"} 3\n"
				  "t_seconds_bucket{op=\"Get\",le=\"+Inf\"} 4\n"
				  "t_seconds_sum{op=\"Get\"} 7.105\n"
				  "t_seconds_count{op=\"Get\"} 4\n");
	free(text);
}

static void label_values_are_escaped(void **state)
{
	struct carillon_metric_family *f =
	    carillon_metrics_family("t_esc", "x", CARILLON_METRIC_COUNTER, "v", NULL, 0, 4);
	const char *v[] = {"a\"b\\c\nd"};
	carillon_metric_add(carillon_metrics_series(f, v), 1);
	char *text = render();
	assert_non_null(strstr(text, "t_esc{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(text);
}

static void cardinality_is_bounded(void **state)
{
	struct carillon_metric_family *f =
	    carillon_metrics_family("t_bounded_total", "x", CARILLON_METRIC_COUNTER, "k", NULL, 0, 3);
	char name[16];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		const char *v[] = {name};
		carillon_metric_add(carillon_metrics_series(f, v), 1);
	}
	char *text = render();
	assert_non_null(strstr(text, "t_bounded_total{k=\"k0\"} 1\n"));
	assert_non_null(strstr(text, "t_bounded_total{k=\"k2\"} 1\n"));
	assert_null(strstr(text, "k=\"k3\""));
	assert_non_null(strstr(text, "t_bounded_total{k=\"_overflow\"} 97\n"));
	free(text);
	/* a series seen before the bound keeps counting */
	const char *k1[] = {"k1"};
	carillon_metric_add(carillon_metrics_series(f, k1), 1);
	assert_int_equal((int)carillon_metric_value(carillon_metrics_series(f, k1)), 2);
}

static void bad_definitions_are_refused(void **state)
{
	static const double unsorted[] = {1, 0.5};
	assert_non_null(carillon_metrics_family("t_ok", "x", CARILLON_METRIC_GAUGE, NULL, NULL, 0, 1));
	assert_null(carillon_metrics_family("t_ok", "again", CARILLON_METRIC_GAUGE, NULL, NULL, 0, 1));
	assert_null(carillon_metrics_family("0bad", "x", CARILLON_METRIC_GAUGE, NULL, NULL, 0, 1));
	assert_null(carillon_metrics_family("t-bad", "x", CARILLON_METRIC_GAUGE, NULL, NULL, 0, 1));
	assert_null(carillon_metrics_family("t_l", "x", CARILLON_METRIC_GAUGE, "a,le", NULL, 0, 1));
	assert_null(carillon_metrics_family("t_l2", "x", CARILLON_METRIC_GAUGE, "a,b-c", NULL, 0, 1));
	assert_null(carillon_metrics_family("t_l3", "x", CARILLON_METRIC_GAUGE, "a,b,c,d,e", NULL, 0, 1));
	assert_null(carillon_metrics_family("t_h", "x", CARILLON_METRIC_HISTOGRAM, NULL, NULL, 0, 1));
	assert_null(carillon_metrics_family("t_h2", "x", CARILLON_METRIC_HISTOGRAM, NULL, unsorted, 2, 1));
	/* wrong-kind operations are ignored, NULL series are harmless */
	struct carillon_metric *g = carillon_metrics_series(carillon_metrics_family("t_g", "x", CARILLON_METRIC_GAUGE,
										    NULL, NULL, 0, 1), NULL);
	carillon_metric_observe(g, 3);
	assert_true(carillon_metric_value(g) == 0);
	carillon_metric_add(NULL, 1);
	carillon_metric_observe(NULL, 1);
	assert_null(carillon_metrics_series(NULL, NULL));
}

static void numbers_read_back_exactly(void **state)
{
	struct carillon_metric_family *f = carillon_metrics_family("t_num", "x", CARILLON_METRIC_GAUGE, "k", NULL, 0, 8);
	const double values[] = {0.1, 1e-7, 123456789.125, -2.5, 1e20};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char k[8];
		snprintf(k, sizeof(k), "%zu", i);
		const char *v[] = {k};
		carillon_metric_set(carillon_metrics_series(f, v), values[i]);
	}
	char *text = render();
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char needle[32];
		snprintf(needle, sizeof(needle), "t_num{k=\"%zu\"} ", i);
		const char *p = strstr(text, needle);
		assert_non_null(p);
		assert_true(strtod(p + strlen(needle), NULL) == values[i]);
	}
	assert_non_null(strstr(text, "t_num{k=\"0\"} 0.1\n"));
	free(text);
}

static void catalogue_counts_what_it_is_told(void **state)
{
	/* before init: no-ops, nothing rendered */
	carillon_metrics_request("messaging", "SendChannelMessage", 200, 0.01);
	char *text = render();
	assert_string_equal(text, "");
	free(text);
	carillon_metrics_init("9.9.9");
	carillon_metrics_init("9.9.9"); /* idempotent */
	carillon_metrics_request("messaging", "SendChannelMessage", 200, 0.01);
	carillon_metrics_request("messaging", "SendChannelMessage", 200, 0.02);
	carillon_metrics_request("identity", "DescribeAppInstance", 404, 0.003);
	carillon_metrics_session_opened();
	carillon_metrics_session_opened();
	carillon_metrics_session_closed(1000);
	carillon_metrics_session_closed(3999); /* a client's own code: "other" */
	carillon_metrics_db_error("CH404");
	carillon_metrics_db_error("bogus");
	carillon_metrics_outbox("push", 3, 1.5, "delivered");
	carillon_metrics_outbox("push", -1, -1, "delivered");
	text = render();
	assert_non_null(strstr(text, "carillon_build_info{version=\"9.9.9\"} 1\n"));
	assert_non_null(strstr(text, "carillon_http_requests_total{service=\"messaging\",operation=\"SendChannelMessage\",status=\"200\"} 2\n"));
	assert_non_null(strstr(text, "carillon_http_request_duration_seconds_count{service=\"messaging\",operation=\"SendChannelMessage\"} 2\n"));
	assert_non_null(strstr(text, "carillon_http_requests_total{service=\"identity\",operation=\"DescribeAppInstance\",status=\"404\"} 1\n"));
	assert_non_null(strstr(text, "carillon_sessions_open 0\n"));
	assert_non_null(strstr(text, "carillon_sessions_opened_total 2\n"));
	assert_non_null(strstr(text, "carillon_sessions_closed_total{code=\"1000\"} 1\n"));
	assert_non_null(strstr(text, "carillon_sessions_closed_total{code=\"other\"} 1\n"));
	assert_non_null(strstr(text, "carillon_db_errors_total{class=\"CH\"} 1\n"));
	assert_non_null(strstr(text, "carillon_db_errors_total{class=\"XX\"} 1\n"));
	assert_non_null(strstr(text, "carillon_outbox_depth{kind=\"push\"} 3\n"));
	assert_non_null(strstr(text, "carillon_outbox_oldest_age_seconds{kind=\"push\"} 1.5\n"));
	assert_non_null(strstr(text, "carillon_outbox_outcomes_total{kind=\"push\",outcome=\"delivered\"} 2\n"));
	free(text);
	struct carillon_metrics_sample s = {.log_head = 42, .listener_position = 40, .db_connections_up = 3};
	carillon_metrics_collect(&s);
	text = render();
	assert_non_null(strstr(text, "carillon_event_log_head_position 42\n"));
	assert_non_null(strstr(text, "carillon_event_listener_position 40\n"));
	assert_non_null(strstr(text, "carillon_db_connections 3\n"));
	assert_non_null(strstr(text, "process_open_fds "));
	assert_null(strstr(text, "process_resident_memory_bytes 0\n"));
	free(text);
}

/* The scrape endpoint's request-head reader (src/metrics_endpoint.c): what each head asks for. */
static void scrape_heads(void **state)
{
	(void)state;
	static const struct {
		const char *head;
		enum carillon_metrics_head want;
	} cases[] = {
	    {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", CARILLON_METRICS_HEAD_GET},
	    {"GET /metrics?x=1 HTTP/1.0\n\n", CARILLON_METRICS_HEAD_GET},
	    {"HEAD /metrics HTTP/1.1\r\n\r\n", CARILLON_METRICS_HEAD_HEAD},
	    {"POST /metrics HTTP/1.1\r\n\r\n", CARILLON_METRICS_HEAD_METHOD},
	    {"GET /metricsx HTTP/1.1\r\n\r\n", CARILLON_METRICS_HEAD_NOT_FOUND},
	    {"GET / HTTP/1.1\r\n\r\n", CARILLON_METRICS_HEAD_NOT_FOUND},
	    {"GET /metrics\r\n\r\n", CARILLON_METRICS_HEAD_BAD},
	    {"GET /metrics HTTP/2\r\n\r\n", CARILLON_METRICS_HEAD_BAD},
	    {"GET /metrics HTTP/1.1\r\nHost: x\r\n", CARILLON_METRICS_HEAD_INCOMPLETE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(carillon_metrics_parse_head(cases[i].head, strlen(cases[i].head), 8191), cases[i].want);
	/* A NUL byte, anywhere; no end of the head within the bound; a request line too long. */
	assert_int_equal(carillon_metrics_parse_head("GET /m\0etrics HTTP/1.1\r\n\r\n", 26, 8191), CARILLON_METRICS_HEAD_BAD);
	assert_int_equal(carillon_metrics_parse_head("GET /metrics HTTP/1.1\r\nX: y", 27, 27), CARILLON_METRICS_HEAD_TOO_LARGE);
	char line[400];
	memset(line, 'a', sizeof(line));
	memcpy(line + sizeof(line) - 4, "\r\n\r\n", 4);
	assert_int_equal(carillon_metrics_parse_head(line, sizeof(line), 8191), CARILLON_METRICS_HEAD_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(counter_and_gauge_exposition, teardown),
		cmocka_unit_test_teardown(histogram_exposition, teardown),
		cmocka_unit_test_teardown(label_values_are_escaped, teardown),
		cmocka_unit_test_teardown(cardinality_is_bounded, teardown),
		cmocka_unit_test_teardown(bad_definitions_are_refused, teardown),
		cmocka_unit_test_teardown(numbers_read_back_exactly, teardown),
		cmocka_unit_test_teardown(catalogue_counts_what_it_is_told, teardown),
		cmocka_unit_test(scrape_heads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
