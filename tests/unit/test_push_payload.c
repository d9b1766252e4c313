/* The JSON text the push senders write around a message's title and body (src/push/payload.c):
 * the title and body come from SendChannelMessage's PushNotification and Pinpoint's SendMessages,
 * so any bytes must give either valid JSON that reads back as the same strings, or a refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "carillon/push.h"
#include "carillon/util.h"

/* "{" + the members + "}" as text (NULL when the builder refused). */
static char *object_of(const char *title, const char *body)
{
	struct carillon_buf b = {0};
	carillon_buf_append(&b, "{", 1);
	if (carillon_push_json_title_body(&b, title, body)) {
		carillon_buf_free(&b);
		return NULL;
	}
	carillon_buf_append(&b, "}", 2); /* with the terminating NUL */
	return b.data;
}

static void expect(const char *title, const char *body, const char *text)
{
	char *got = object_of(title, body);
	assert_non_null(got);
	assert_string_equal(got, text);
	free(got);
}

static void test_members(void **state)
{
	(void)state;
	expect("Hi", "there", "{\"title\":\"Hi\",\"body\":\"there\"}");
	expect("Hi", NULL, "{\"title\":\"Hi\"}");
	expect(NULL, "there", "{\"body\":\"there\"}");
	expect(NULL, NULL, "{}");
	expect("", "", "{\"title\":\"\",\"body\":\"\"}");
}

static void test_escapes(void **state)
{
	(void)state;
	expect("a\"b\\c", "line\nnext\x01", "{\"title\":\"a\\\"b\\\\c\",\"body\":\"line\\u000anext\\u0001\"}");
	expect("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", NULL, "{\"title\":\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\"}");
	expect("</script>'", NULL, "{\"title\":\"</script>'\"}");
}

static void test_invalid_utf8_refused(void **state)
{
	(void)state;
	assert_null(object_of("\xff", "ok"));
	assert_null(object_of("ok", "\xc3"));
	assert_null(object_of("\xed\xa0\x80", NULL)); /* a UTF-16 surrogate */
	assert_null(object_of(NULL, "a\x80"));
}

/* Random bytes: valid UTF-8 reads back unchanged through jansson; anything else is refused. */
static void test_random_bytes(void **state)
{
	(void)state;
	srand(7);
	for (int round = 0; round < 20000; round++) {
		char s[2][24];
		for (int k = 0; k < 2; k++) {
			size_t n = (size_t)(rand() % 23);
			for (size_t i = 0; i < n; i++) {
				int r = rand() % 4;
				s[k][i] = (char)(r == 0 ? 1 + rand() % 0x7f : r == 1 ? 0x80 + rand() % 0x80 : "\"\\\n\xc3\xa9"[rand() % 5]);
			}
			s[k][n] = '\0';
		}
		bool valid = carillon_utf8_length(s[0], strlen(s[0])) >= 0 && carillon_utf8_length(s[1], strlen(s[1])) >= 0;
		char *text = object_of(s[0], s[1]);
		if (!valid) {
			assert_null(text);
			continue;
		}
		assert_non_null(text);
		json_error_t err;
		json_t *o = json_loads(text, 0, &err);
		assert_non_null(o);
		assert_string_equal(json_string_value(json_object_get(o, "title")), s[0]);
		assert_string_equal(json_string_value(json_object_get(o, "body")), s[1]);
		json_decref(o);
		free(text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_invalid_utf8_refused),
		cmocka_unit_test(test_random_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
