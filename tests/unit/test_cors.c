/*
 * CORS decisions (src/http/cors.c) without a socket: which origin is allowed, and the bounded
 * Access-Control-Allow-Headers list built from whatever a preflight asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/config.h"
#include "../../src/http/http_internal.h"

static char origins[256];

static void set_origins(const char *s)
{
	snprintf(origins, sizeof(origins), "%s", s);
	carillon_cfg.cors_origins = origins;
}

static void any_origin_by_default(void **state)
{
	(void)state;
	carillon_cfg.cors_origins = NULL;
	assert_true(carillon_cors_enabled());
	assert_string_equal(carillon_cors_allow_origin("https://a.example"), "*");
	set_origins("*");
	assert_string_equal(carillon_cors_allow_origin("null"), "*");
	assert_null(carillon_cors_allow_origin(NULL));
}

static void listed_origins_are_exact(void **state)
{
	(void)state;
	set_origins("https://chat.example:8443, http://127.0.0.1:3000");
	assert_false(carillon_cors_any_origin());
	assert_string_equal(carillon_cors_allow_origin("https://chat.example:8443"), "https://chat.example:8443");
	assert_string_equal(carillon_cors_allow_origin("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
	assert_null(carillon_cors_allow_origin("https://chat.example"));
	assert_null(carillon_cors_allow_origin("https://chat.example:8443.evil"));
	assert_null(carillon_cors_allow_origin("https://chat.example:844"));
	assert_null(carillon_cors_allow_origin("https://chat.example:8443\x7f"));
	assert_null(carillon_cors_allow_origin(""));
	set_origins("none");
	assert_false(carillon_cors_enabled());
	assert_null(carillon_cors_allow_origin("https://chat.example:8443"));
}

static void allow_headers_reflects_the_allow_list_only(void **state)
{
	(void)state;
	char out[2048];
	carillon_cors_allow_headers("Authorization, content-type,X-Amz-Date , evil, x-amz-new-thing,, amz-sdk-request,"
				    " x-amz-\xc3\xa9, x-amz-, authorization",
				    out, sizeof(out));
	assert_string_equal(out, "authorization,content-type,x-amz-date,x-amz-new-thing,amz-sdk-request");
	carillon_cors_allow_headers(NULL, out, sizeof(out));
	assert_string_equal(out, "");
}

static void allow_headers_is_bounded(void **state)
{
	(void)state;
	/* 200 distinct allowed names and one 100-byte name: at most 32 listed, never past the buffer. */
	static char big[200 * 24 + 200];
	size_t n = 0;
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "x-amz-h%d,", i);
	memset(big + n, 'a', 100);
	big[n + 100] = '\0';
	char out[2048];
	size_t len = carillon_cors_allow_headers(big, out, sizeof(out));
	assert_int_equal(len, strlen(out));
	int commas = 0;
	for (const char *p = out; *p; p++)
		commas += *p == ',';
	assert_int_equal(commas + 1, 32);
	char small[40];
	len = carillon_cors_allow_headers(big, small, sizeof(small));
	assert_true(len < sizeof(small));
	assert_int_equal(strlen(small), len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(any_origin_by_default),
		cmocka_unit_test(listed_origins_are_exact),
		cmocka_unit_test(allow_headers_reflects_the_allow_list_only),
		cmocka_unit_test(allow_headers_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
