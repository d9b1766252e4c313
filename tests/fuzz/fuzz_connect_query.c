/*
 * libFuzzer harness: the websocket /connect query parser (carillon_connect_params_parse,
 * src/realtime/connect_query.c).
 *
 * Input: the query as lws hands it over, one decoded fragment per '&'-separated piece (a NUL byte
 * also ends a piece, as it would end lws's C string).
 *
 * Properties checked beyond "no crash": on success userArn and prefetch-sort-by are NUL-terminated,
 * valid UTF-8 (json_string accepts them), since-position is -1 or non-negative, and the canonical
 * query holds only unreserved characters, %XX escapes, '=' and '&'; on refusal nothing is left
 * to free.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/connect_query.h"

#define MAX_FRAGS (CARILLON_CONNECT_MAX_PARAMS + 8)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "carillon_connect_params_parse: %s\n", what);
	abort();
}

static bool utf8_ok(const char *s)
{
	json_t *j = json_string(s);
	json_decref(j);
	return j != NULL;
}

static bool canonical_ok(const char *q)
{
	for (const char *p = q; *p; p++) {
		char c = *p;
		bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				  c == '-' || c == '_' || c == '.' || c == '~';
		if (unreserved || c == '=' || c == '&')
			continue;
		if (c != '%' || !p[1] || !p[2])
			return false;
		for (int i = 1; i <= 2; i++)
			if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'F')))
				return false;
		p += 2;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *frags[MAX_FRAGS];
	size_t n = 0;
	char *p = copy, *end = copy + size;
	while (size && n < MAX_FRAGS) {
		frags[n++] = p;
		char *amp = memchr(p, '&', (size_t)(end - p));
		if (!amp)
			break;
		*amp = '\0';
		p = amp + 1;
	}
	struct carillon_connect_params cp;
	memset(&cp, 0x5a, sizeof(cp));
	if (carillon_connect_params_parse(frags, n, &cp)) {
		if (cp.canonical_query)
			fail("refused, yet left a canonical query");
		free(copy);
		return 0;
	}
	if (!memchr(cp.user_arn, 0, sizeof(cp.user_arn)) || !memchr(cp.prefetch_sort, 0, sizeof(cp.prefetch_sort)))
		fail("a value without its NUL");
	if (!utf8_ok(cp.user_arn) || !utf8_ok(cp.prefetch_sort))
		fail("accepted a value that is not valid UTF-8");
	if (cp.since < -1)
		fail("negative since-position");
	if (!cp.canonical_query || !canonical_ok(cp.canonical_query))
		fail("canonical query is not RFC 3986 encoded");
	carillon_connect_params_free(&cp);
	free(copy);
	return 0;
}
