/*
 * Log lines: a JSON line is one valid JSON object whatever bytes its message and fields carry
 * (quotes, backslashes, control characters, invalid UTF-8), and stays one when it is too long; a
 * text line is one line with values quoted when they need it. Also the log file: written with
 * O_APPEND, reopened after a rename.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "carillon/log.h"

static const char hostile[] = "a \"quoted\" \\ back\nslash\r\t\x01\xff\xc3(end";

static void json_line_is_one_object(void **state)
{
	char line[8192];
	const struct carillon_log_field f[] = {
		CARILLON_LOG_STR("request_id", "r-1"),
		CARILLON_LOG_STR("bearer", hostile),
		CARILLON_LOG_STR("error", NULL),
		CARILLON_LOG_INT("status", 404),
		CARILLON_LOG_NUM("latency_ms", 1.25),
	};
	size_t n = carillon_log_format_line(line, sizeof(line), true, CARILLON_LOG_INFO, "access", NULL, f, 5);
	assert_true(n > 0);
	assert_int_equal(line[n - 1], '\n');
	assert_null(memchr(line, '\n', n - 1));
	json_error_t err;
	json_t *doc = json_loadb(line, n, 0, &err);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(doc, "event")), "access");
	assert_string_equal(json_string_value(json_object_get(doc, "request_id")), "r-1");
	assert_true(json_is_null(json_object_get(doc, "error")));
	assert_int_equal(json_integer_value(json_object_get(doc, "status")), 404);
	assert_true(json_real_value(json_object_get(doc, "latency_ms")) == 1.25);
	const char *bearer = json_string_value(json_object_get(doc, "bearer"));
	assert_non_null(strstr(bearer, "a \"quoted\" \\ back"));
	assert_null(strchr(bearer, '\n'));
	assert_true(json_is_string(json_object_get(doc, "time")));
	assert_true(json_is_integer(json_object_get(doc, "pid")));
	json_decref(doc);

	n = carillon_log_format_line(line, sizeof(line), true, CARILLON_LOG_WARN, NULL, hostile, NULL, 0);
	doc = json_loadb(line, n, 0, &err);
	assert_non_null(doc);
	assert_non_null(strstr(json_string_value(json_object_get(doc, "msg")), "back"));
	json_decref(doc);
}

static void long_json_line_stays_valid(void **state)
{
	char big[6000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[100] = '"';
	const struct carillon_log_field f[] = {
		CARILLON_LOG_STR("a", big), CARILLON_LOG_STR("b", big), CARILLON_LOG_STR("c", big), CARILLON_LOG_STR("d", big),
	};
	char line[1024];
	size_t n = carillon_log_format_line(line, sizeof(line), true, CARILLON_LOG_INFO, "access", NULL, f, 4);
	assert_true(n < sizeof(line));
	assert_int_equal(line[n - 1], '\n');
	/* Cut inside a value: the object may not parse, but it is one line ending with "}\n". */
	assert_int_equal(line[n - 2], '}');
	assert_null(memchr(line, '\n', n - 1));
}

static void text_line_quotes_values(void **state)
{
	char line[4096];
	const struct carillon_log_field f[] = {
		CARILLON_LOG_STR("user", "arn:aws:chime:us-east-1:1:app-instance/x/user/u"),
		CARILLON_LOG_STR("close_reason", "Too slow"),
		CARILLON_LOG_STR("session_id", NULL),
		CARILLON_LOG_STR("odd", hostile),
		CARILLON_LOG_INT("close_code", 1013),
	};
	size_t n = carillon_log_format_line(line, sizeof(line), false, CARILLON_LOG_INFO, "session_close", NULL, f, 5);
	assert_int_equal(line[n - 1], '\n');
	assert_null(memchr(line, '\n', n - 1));
	assert_non_null(strstr(line, "] info: session_close user=arn:aws:chime:us-east-1:1:app-instance/x/user/u "));
	assert_non_null(strstr(line, " close_reason=\"Too slow\" session_id=- odd=\"a \\\"quoted\\\" \\\\ back"));
	assert_non_null(strstr(line, " close_code=1013\n"));
}

static void log_file_is_reopened(void **state)
{
	char dir[] = "/tmp/carillon-logtest-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], moved[256];
	snprintf(path, sizeof(path), "%s/carillon.log", dir);
	snprintf(moved, sizeof(moved), "%s/carillon.log.1", dir);
	assert_int_equal(carillon_log_configure("json", path), 0);
	carillon_log_set_level(CARILLON_LOG_INFO);
	log_notice("first");
	assert_int_equal(rename(path, moved), 0);
	log_notice("second"); /* still the old file */
	carillon_log_reopen();
	log_notice("third");
	char buf[4096];
	FILE *f = fopen(moved, "r");
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_non_null(strstr(buf, "\"msg\":\"first\""));
	assert_non_null(strstr(buf, "\"msg\":\"second\""));
	assert_null(strstr(buf, "third"));
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_non_null(strstr(buf, "\"msg\":\"third\""));
	assert_int_equal(carillon_log_configure("yaml", NULL), -1);
	unlink(path);
	unlink(moved);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_line_is_one_object),
		cmocka_unit_test(long_json_line_stays_valid),
		cmocka_unit_test(text_line_quotes_values),
		cmocka_unit_test(log_file_is_reopened),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
