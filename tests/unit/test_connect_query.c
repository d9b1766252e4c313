/* The /connect query parser (src/realtime/connect_query.c): what amazon-chime-sdk-js sends, and the
 * hostile variants a client can send instead. Fragments are given decoded, as lws yields them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/connect_query.h"

#define USER "arn:aws:chime:us-east-1:123456789012:app-instance/abc-123/user/alice"
#define N(a) (sizeof(a) / sizeof((a)[0]))

static int parse(const char *const *frags, size_t n, struct carillon_connect_params *p)
{
	return carillon_connect_params_parse(frags, n, p);
}

/* shared/spec/websocket-protocol.md §1.7 B, decoded: every parameter the JS client sends. */
static void test_js_client_query(void **state)
{
	const char *f[] = {
		"X-Amz-Algorithm=AWS4-HMAC-SHA256",
		"X-Amz-Credential=AKIDEXAMPLE/20240102/us-east-1/chime/aws4_request",
		"X-Amz-Date=20240102T030405Z",
		"X-Amz-Expires=10",
		"X-Amz-Security-Token=FQoGZXIvYXdzE+/=token",
		"X-Amz-SignedHeaders=host",
		"X-Amzn-User-Agent=node-NaN",
		"X-Amzn-Version=3.32.0",
		"prefetch-on=connect",
		"prefetch-sort-by=unread",
		"sessionId=1234567890",
		"userArn=" USER,
		"X-Amz-Signature=af796e5587f13c04d4792b656d2a26f555845f29a9d57397b8651c916b58bde9",
	};
	struct carillon_connect_params p;
	assert_int_equal(parse(f, N(f), &p), 0);
	assert_string_equal(p.user_arn, USER);
	assert_true(p.prefetch);
	assert_string_equal(p.prefetch_sort, "unread");
	assert_int_equal(p.since, -1);
	/* In the order received, re-encoded; only the first '=' splits (the token's '=' is encoded). */
	assert_string_equal(p.canonical_query,
			    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
			    "&X-Amz-Credential=AKIDEXAMPLE%2F20240102%2Fus-east-1%2Fchime%2Faws4_request"
			    "&X-Amz-Date=20240102T030405Z&X-Amz-Expires=10"
			    "&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2F%3Dtoken"
			    "&X-Amz-SignedHeaders=host&X-Amzn-User-Agent=node-NaN&X-Amzn-Version=3.32.0"
			    "&prefetch-on=connect&prefetch-sort-by=unread&sessionId=1234567890"
			    "&userArn=arn%3Aaws%3Achime%3Aus-east-1%3A123456789012%3Aapp-instance%2Fabc-123%2Fuser%2Falice"
			    "&X-Amz-Signature=af796e5587f13c04d4792b656d2a26f555845f29a9d57397b8651c916b58bde9");
	carillon_connect_params_free(&p);
	assert_null(p.canonical_query);
}

static void test_empty_and_bare_names(void **state)
{
	struct carillon_connect_params p;
	assert_int_equal(parse(NULL, 0, &p), 0);
	assert_string_equal(p.canonical_query, "");
	assert_string_equal(p.user_arn, "");
	assert_false(p.prefetch);
	carillon_connect_params_free(&p);

	const char *f[] = {"flag", "", "prefetch-on=later", "a=b=c"};
	assert_int_equal(parse(f, N(f), &p), 0);
	assert_string_equal(p.canonical_query, "flag=&=&prefetch-on=later&a=b%3Dc");
	assert_false(p.prefetch);
	carillon_connect_params_free(&p);
}

static void test_since_position(void **state)
{
	struct carillon_connect_params p;
	const char *ok[] = {"since-position=0"};
	assert_int_equal(parse(ok, 1, &p), 0);
	assert_int_equal(p.since, 0);
	carillon_connect_params_free(&p);

	const char *max[] = {"since-position=9223372036854775807"};
	assert_int_equal(parse(max, 1, &p), 0);
	assert_true(p.since == INT64_MAX);
	carillon_connect_params_free(&p);

	/* The old strtoll() took each of these for a number (or clamped it) instead of refusing. */
	static const char *const bad[] = {
		"since-position=",        "since-position=-1",   "since-position=+5",
		"since-position= 5",      "since-position=5x",   "since-position=0x10",
		"since-position=9223372036854775808", "since-position=99999999999999999999999",
		"since-position=1e3",
	};
	for (size_t i = 0; i < N(bad); i++) {
		const char *f[] = {bad[i]};
		if (parse(f, 1, &p) != -1)
			print_error("accepted: %s\n", bad[i]);
		assert_int_equal(parse(f, 1, &p), -1);
		assert_null(p.canonical_query);
		assert_int_equal(p.since, -1);
	}
}

static void test_user_arn_bounds(void **state)
{
	struct carillon_connect_params p;
	char *frag = malloc(8 + 1601 + 1);
	memcpy(frag, "userArn=", 8);
	memset(frag + 8, 'a', 1600);
	frag[8 + 1600] = '\0';
	const char *f[] = {frag};
	assert_int_equal(parse(f, 1, &p), 0); /* 1600 bytes fit (the model's maximum) */
	assert_int_equal(strlen(p.user_arn), 1600);
	carillon_connect_params_free(&p);
	frag[8 + 1600] = 'a';
	frag[8 + 1601] = '\0';
	assert_int_equal(parse(f, 1, &p), -1); /* 1601: refused, not cut */
	free(frag);
}

static void test_invalid_utf8_refused(void **state)
{
	struct carillon_connect_params p;
	static const char *const bad[] = {
		"userArn=arn\xff",           "userArn=\xc3",            /* truncated */
		"userArn=\xc0\xaf",          /* overlong '/' */
		"userArn=\xed\xa0\x80",      /* surrogate */
		"userArn=\xf4\x90\x80\x80",  /* above U+10FFFF */
		"prefetch-sort-by=\xe9",
	};
	for (size_t i = 0; i < N(bad); i++) {
		const char *f[] = {bad[i]};
		assert_int_equal(parse(f, 1, &p), -1);
	}
	const char *good[] = {"userArn=arn:\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"};
	assert_int_equal(parse(good, 1, &p), 0);
	assert_string_equal(p.canonical_query, "userArn=arn%3A%C3%A9%E2%82%AC%F0%9F%98%80");
	carillon_connect_params_free(&p);
}

static void test_bounds_and_duplicates(void **state)
{
	struct carillon_connect_params p;
	const char *sort[] = {"prefetch-sort-by=lastMessageTimestamp1234"}; /* 24 bytes */
	assert_int_equal(parse(sort, 1, &p), -1);

	const char *dup_user[] = {"userArn=" USER, "userArn=arn:aws:chime:us-east-1:1:app-instance/x/user/mallory"};
	assert_int_equal(parse(dup_user, 2, &p), -1);
	const char *dup_since[] = {"since-position=1", "since-position=2"};
	assert_int_equal(parse(dup_since, 2, &p), -1);
	const char *dup_other[] = {"sessionId=1", "sessionId=2"}; /* only signed: allowed */
	assert_int_equal(parse(dup_other, 2, &p), 0);
	carillon_connect_params_free(&p);

	const char *many[CARILLON_CONNECT_MAX_PARAMS + 1];
	for (size_t i = 0; i < N(many); i++)
		many[i] = "x=1";
	assert_int_equal(parse(many, CARILLON_CONNECT_MAX_PARAMS, &p), 0);
	carillon_connect_params_free(&p);
	assert_int_equal(parse(many, N(many), &p), -1);

	char *big = malloc(CARILLON_CONNECT_MAX_FRAGMENT + 2);
	memset(big, 'x', CARILLON_CONNECT_MAX_FRAGMENT + 1);
	big[CARILLON_CONNECT_MAX_FRAGMENT + 1] = '\0';
	const char *f[] = {big};
	assert_int_equal(parse(f, 1, &p), -1);
	big[CARILLON_CONNECT_MAX_FRAGMENT] = '\0';
	assert_int_equal(parse(f, 1, &p), 0);
	carillon_connect_params_free(&p);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_js_client_query),     cmocka_unit_test(test_empty_and_bare_names),
		cmocka_unit_test(test_since_position),      cmocka_unit_test(test_user_arn_bounds),
		cmocka_unit_test(test_invalid_utf8_refused), cmocka_unit_test(test_bounds_and_duplicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
