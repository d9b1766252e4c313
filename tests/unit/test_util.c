/* UTF-8 helpers: strict validation, sanitising client bytes for messages, cutting on code point
 * boundaries. Whatever the input, the output must be valid UTF-8 (jansson refuses anything else). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "carillon/util.h"

#define FFFD "\xef\xbf\xbd"

static long len_of(const char *s) { return carillon_utf8_length(s, strlen(s)); }

static void test_length_strict(void **state)
{
	(void)state;
	assert_int_equal(len_of(""), 0);
	assert_int_equal(len_of("abc"), 3);
	assert_int_equal(len_of("\xc3\xa9t\xc3\xa9"), 3);                  /* été */
	assert_int_equal(len_of("\xe2\x82\xac"), 1);                        /* € */
	assert_int_equal(len_of("\xf0\x9f\x98\x80"), 1);                    /* U+1F600 */
	assert_int_equal(len_of("\xf4\x8f\xbf\xbf"), 1);                    /* U+10FFFF */
	assert_int_equal(len_of("\xff"), -1);
	assert_int_equal(len_of("\x80"), -1);                               /* stray continuation */
	assert_int_equal(len_of("\xc3"), -1);                               /* cut short */
	assert_int_equal(len_of("\xe2\x82"), -1);
	assert_int_equal(len_of("\xc0\x80"), -1);                           /* overlong NUL */
	assert_int_equal(len_of("\xc1\xbf"), -1);                           /* overlong */
	assert_int_equal(len_of("\xe0\x80\xaf"), -1);                       /* overlong '/' */
	assert_int_equal(len_of("\xf0\x80\x80\xaf"), -1);
	assert_int_equal(len_of("\xed\xa0\x80"), -1);                       /* U+D800 */
	assert_int_equal(len_of("\xed\xbf\xbf"), -1);                       /* U+DFFF */
	assert_int_equal(len_of("\xf4\x90\x80\x80"), -1);                   /* U+110000 */
	assert_int_equal(len_of("\xf8\x88\x80\x80\x80"), -1);               /* five bytes */
	assert_int_equal(carillon_utf8_length("a\0b", 3), 3);                /* NUL is a code point */
	/* longer runs (ASCII is counted eight bytes at a time): whatever sits around the words' edges */
	assert_int_equal(len_of("abcdefgh"), 8);
	assert_int_equal(len_of("abcdefghijklmnopq"), 17);
	assert_int_equal(len_of("abcdefg\xc3\xa9h"), 9);                  /* é across a word's edge */
	assert_int_equal(len_of("abcdefgh\xf0\x9f\x98\x80ijklmnop"), 17);
	assert_int_equal(len_of("abcdefghijklmnop\xff"), -1);
	assert_int_equal(len_of("abcdefghi\x80jklmnopqrstu"), -1);
	assert_int_equal(len_of("abcdefghijklmno\xc3"), -1);             /* cut short at the end */
	assert_int_equal(len_of("abcdefghijklmnopqrstuvw\xed\xa0\x80xyz"), -1);
}

static void expect_sanitized(const char *in, size_t in_len, size_t size, const char *want)
{
	char out[4096];
	assert_true(size <= sizeof(out));
	size_t n = carillon_utf8_sanitize(out, size, in, in_len);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_sanitize(void **state)
{
	(void)state;
	expect_sanitized("hello", 5, 64, "hello");
	expect_sanitized("\xc3\xa9t\xc3\xa9", 5, 64, "\xc3\xa9t\xc3\xa9");
	expect_sanitized("/\xff", 2, 64, "/" FFFD);
	expect_sanitized("/\xc3", 2, 64, "/" FFFD);
	expect_sanitized("\xc3" "a", 2, 64, FFFD "a");                     /* the next byte is kept */
	expect_sanitized("\xed\xa0\x80", 3, 64, FFFD FFFD FFFD);             /* surrogate: each byte */
	expect_sanitized("\xc0\x80", 2, 64, FFFD FFFD);
	expect_sanitized("a\r\nb\x1b[0m\x7f", 9, 64, "a" FFFD FFFD "b" FFFD "[0m" FFFD);
	expect_sanitized("a\0b", 3, 64, "a" FFFD "b");
	/* Cut: on a code point boundary, marked with "...". */
	expect_sanitized("abcdefghij", 10, 8, "abcd...");
	expect_sanitized("abcdefg", 7, 8, "abcdefg");                       /* exactly fits */
	expect_sanitized("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 8, "\xc3\xa9\xc3\xa9...");
	expect_sanitized("a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 9, 8, "a\xc3\xa9...");
	expect_sanitized("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 9, 8, "\xe2\x82\xac...");
	expect_sanitized("\xff\xff\xff", 3, 8, FFFD "...");
	/* Tiny buffers never overflow and still end in a valid string. */
	expect_sanitized("\xc3\xa9\xc3\xa9", 4, 1, "");
	expect_sanitized("\xc3\xa9\xc3\xa9", 4, 2, ".");
	expect_sanitized("\xc3\xa9\xc3\xa9", 4, 3, "..");
	expect_sanitized("\xc3\xa9\xc3\xa9", 4, 4, "...");
	expect_sanitized("\xc3\xa9\xc3\xa9", 4, 5, "\xc3\xa9\xc3\xa9");
	char out[1] = {'x'};
	assert_int_equal(carillon_utf8_sanitize(out, 0, "abc", 3), 0);
	assert_int_equal(out[0], 'x');
}

/* Random bytes biased towards UTF-8 lead and continuation bytes: the output is always valid,
 * NUL-terminated, within bounds, and free of control characters. */
static void test_sanitize_random(void **state)
{
	(void)state;
	static const unsigned char alphabet[] = {'a', '/', 0x00, 0x0a, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xc3, 0xa9,
						 0xe0, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0, 0x9f, 0x98, 0xf4,
						 0x90, 0xf5, 0xff};
	unsigned x = 2463534242u;
	for (int round = 0; round < 20000; round++) {
		unsigned char in[64];
		char out[80];
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		size_t in_len = x % sizeof(in), size = 1 + (x >> 8) % sizeof(out);
		for (size_t i = 0; i < in_len; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			in[i] = alphabet[x % sizeof(alphabet)];
		}
		memset(out, 0x55, sizeof(out));
		size_t n = carillon_utf8_sanitize(out, size, (const char *)in, in_len);
		assert_true(n < size);
		assert_int_equal(out[n], '\0');
		assert_int_equal(strlen(out), n);
		assert_true(carillon_utf8_length(out, n) >= 0);
		for (size_t i = 0; i < n; i++)
			assert_true((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
		for (size_t i = size; i < sizeof(out); i++)
			assert_int_equal((unsigned char)out[i], 0x55);
	}
}

static void test_prefix(void **state)
{
	(void)state;
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"; /* a é € 😀 z: boundaries 0 1 3 6 10 11 */
	size_t len = strlen(s);
	static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11, 11};
	for (size_t max = 0; max < sizeof(want) / sizeof(want[0]); max++)
		assert_int_equal(carillon_utf8_prefix(s, len, max), want[max]);
	/* Not UTF-8 at the cut (four continuation bytes in a row): the plain cut. */
	assert_int_equal(carillon_utf8_prefix("a\x80\x80\x80\x80\x80", 6, 5), 5);
}

static void test_snprintf_cuts_on_boundaries(void **state)
{
	(void)state;
	char buf[64];
	/* "x" + 20 two-byte characters, cut at every size: never a partial sequence. */
	char text[64] = "x";
	for (int i = 0; i < 20; i++)
		strcat(text, "\xc3\xa9");
	for (size_t size = 1; size < sizeof(buf); size++) {
		size_t n = carillon_utf8_snprintf(buf, size, "%s", text);
		assert_int_equal(strlen(buf), n);
		assert_true(n < size);
		assert_true(carillon_utf8_length(buf, n) >= 0);
		assert_true(n + 2 >= size || n == strlen(text)); /* loses at most one character */
	}
	/* Three- and four-byte characters. */
	assert_int_equal(carillon_utf8_snprintf(buf, 6, "%s", "\xe2\x82\xac\xe2\x82\xac"), 3);
	assert_int_equal(carillon_utf8_snprintf(buf, 4, "%s", "\xe2\x82\xac\xe2\x82\xac"), 3);
	assert_int_equal(carillon_utf8_snprintf(buf, 3, "%s", "\xe2\x82\xac\xe2\x82\xac"), 0);
	assert_int_equal(carillon_utf8_snprintf(buf, 8, "ab%s", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 6);
	assert_int_equal(carillon_utf8_snprintf(buf, 7, "ab%s", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 6);
	assert_int_equal(carillon_utf8_snprintf(buf, 6, "ab%s", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 2);
	/* Untruncated text is returned as is, even when it is not UTF-8 (sanitising is separate). */
	assert_int_equal(carillon_utf8_snprintf(buf, sizeof(buf), "%s", "a\xff"), 2);
	assert_string_equal(buf, "a\xff");
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* Request ids: the RFC 4122 version-4 layout, all distinct, and a forked child does not repeat
 * its parent's ids (the ids come from a per-thread pool of random bytes). */
static void test_uuid4(void **state)
{
	(void)state;
	enum { N = 5000 };
	static char ids[N][37];
	for (int i = 0; i < N; i++) {
		carillon_uuid4(ids[i]);
		const char *u = ids[i];
		assert_int_equal(strlen(u), 36);
		for (int k = 0; k < 36; k++) {
			if (k == 8 || k == 13 || k == 18 || k == 23)
				assert_int_equal(u[k], '-');
			else
				assert_non_null(strchr("0123456789abcdef", u[k]));
		}
		assert_int_equal(u[14], '4');
		assert_non_null(strchr("89ab", u[19]));
	}
	qsort(ids, N, sizeof(ids[0]), cmp_id);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);

	int fd[2];
	assert_int_equal(pipe(fd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char child[37];
		carillon_uuid4(child);
		_exit(write(fd[1], child, 37) == 37 ? 0 : 1);
	}
	char parent[37], child[37];
	carillon_uuid4(parent);
	assert_int_equal(read(fd[0], child, 37), 37);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_string_not_equal(parent, child);
	close(fd[0]);
	close(fd[1]);
}

/* carillon_json_text_valid agrees with jansson's decoder (JSON_DECODE_ANY) on the edges of the
 * grammar, the string escapes, UTF-8 and the number ranges; it may only be stricter on depth. */
static void test_json_text_valid(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"", " ", "1", "-", "-0", "01", "1.", "1.5", "1.5e", "1.5e+3", "1E-2", ".5", "+1",
		"1e309", "-1e309", "1e-400", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "12345678901234567890.5",
		"true", "tru", "nul", "null", "false ", "truex", "[1,]", "[,1]", "[1 2]", "[]", " [ ] ",
		"{\"a\":1,}", "{\"a\" 1}", "{1:2}", "{\"a\":1}", "{ \"a\" : [ true , false , null ] }", "{\"a\":{}}",
		"\"\\u0000\"", "\"\\ud800\"", "\"\\ud800\\udc00\"", "\"\\udc00\"", "\"\\uD83D\\uDE42\"", "\"\\u00e9\"",
		"\"\\u12\"", "\"\\x\"", "\"\\/\"", "\"a\tb\"", "\"a\\tb\"", "\"\xff\"", "\"\xc0\xaf\"",
		"\"caf\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"open", "[1] x", "1 2", "[[[]]]", "{\"a\"}", "{\"a\":}",
		"\"\\\"\"", "\"\\\\\"", "\"\\", "[\"a\",\"b\"]", "{\"\":\"\"}", "\t\r\n1\t\r\n", "\x7f",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_t *doc = json_loads(texts[i], JSON_DECODE_ANY, NULL);
		if (carillon_json_text_valid(texts[i]) != (doc != NULL))
			fail_msg("%s: carillon_json_text_valid %s, jansson %s", texts[i],
				 carillon_json_text_valid(texts[i]) ? "accepts" : "refuses", doc ? "accepts" : "refuses");
		json_decref(doc);
	}
	/* Depth: 512 nested arrays pass, 513 do not (jansson takes up to 2,048). */
	char deep[2 * 513 + 1];
	for (int depth = 512; depth <= 513; depth++) {
		memset(deep, '[', (size_t)depth);
		memset(deep + depth, ']', (size_t)depth);
		deep[2 * depth] = '\0';
		assert_int_equal(carillon_json_text_valid(deep), depth == 512);
	}
	assert_false(carillon_json_text_valid(NULL));
}

/* carillon_json_string writes controls as \u00xx; the _pg form as PostgreSQL's to_json does: five
 * short escapes, \u00xx for the other controls, everything else (U+2028, non-ASCII) as it is. */
static void test_json_string_forms(void **state)
{
	(void)state;
	const char *s = "a\b\f\n\r\t\x01\x1f\"\\\xc3\xa9\xe2\x80\xa8/";
	struct carillon_buf b = {0};
	assert_int_equal(carillon_json_string(&b, s), 0);
	assert_string_equal(b.data, "\"a\\u0008\\u000c\\u000a\\u000d\\u0009\\u0001\\u001f\\\"\\\\\xc3\xa9\xe2\x80\xa8/\"");
	b.len = 0;
	assert_int_equal(carillon_json_string_pg(&b, s), 0);
	assert_string_equal(b.data, "\"a\\b\\f\\n\\r\\t\\u0001\\u001f\\\"\\\\\xc3\xa9\xe2\x80\xa8/\"");
	b.len = 0;
	assert_int_equal(carillon_json_string_pg(&b, "\xff"), -1); /* not UTF-8 */
	assert_int_equal(b.len, 0);
	carillon_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_strict),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_sanitize_random),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_snprintf_cuts_on_boundaries),
		cmocka_unit_test(test_uuid4),
		cmocka_unit_test(test_json_text_valid),
		cmocka_unit_test(test_json_string_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
