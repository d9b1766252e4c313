/*
 * The /connect query: what the session needs (userArn, since-position, prefetch-on,
 * prefetch-sort-by) and the query re-encoded for the SigV4 presigned check.
 *
 * Every value is bounded and checked here, before it reaches a log line, a JSON document or a SQL
 * parameter: a value that would have to be cut, or that is not valid UTF-8, makes the whole query
 * malformed rather than being silently truncated into something else.
 */
#include <stdlib.h>
#include <string.h>

#include "carillon/connect_query.h"
#include "carillon/util.h"

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF): what
 * PostgreSQL and jansson accept, so a value that passes here is accepted by both. */
static bool utf8_valid(const char *s, size_t len) { return carillon_utf8_length(s, len) >= 0; }

/* A non-negative decimal integer, digits only, no sign, no overflow. */
static bool parse_position(const char *s, int64_t *out)
{
	int64_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		int d = *s - '0';
		if (v > (INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Copies `value` into `dst` (of `cap` bytes) if it fits whole and is valid UTF-8. */
static bool copy_text(char *dst, size_t cap, const char *value)
{
	size_t len = strlen(value);
	if (len >= cap || !utf8_valid(value, len))
		return false;
	memcpy(dst, value, len + 1);
	return true;
}

enum seen { SEEN_USER = 1, SEEN_SINCE = 2, SEEN_PREFETCH = 4, SEEN_SORT = 8 };

/* Applies one decoded name=value pair; false when it makes the query malformed. */
static bool apply_param(struct carillon_connect_params *out, unsigned *seen, const char *name, const char *value)
{
	unsigned bit;
	bool ok;
	if (!strcmp(name, "userArn")) {
		bit = SEEN_USER;
		ok = copy_text(out->user_arn, sizeof(out->user_arn), value);
	} else if (!strcmp(name, "since-position")) {
		bit = SEEN_SINCE;
		ok = parse_position(value, &out->since);
	} else if (!strcmp(name, "prefetch-on")) {
		bit = SEEN_PREFETCH;
		out->prefetch = !strcmp(value, "connect");
		ok = true;
	} else if (!strcmp(name, "prefetch-sort-by")) {
		bit = SEEN_SORT;
		ok = copy_text(out->prefetch_sort, sizeof(out->prefetch_sort), value);
	} else {
		return true; /* X-Amz-* and anything else: only signed */
	}
	/* A parameter given twice would let the signed query say one thing and the session use another. */
	if (*seen & bit)
		return false;
	*seen |= bit;
	return ok;
}

int carillon_connect_params_parse(const char *const *frags, size_t n, struct carillon_connect_params *out)
{
	memset(out, 0, sizeof(*out));
	out->since = -1;
	if (n > CARILLON_CONNECT_MAX_PARAMS)
		return -1;
	struct carillon_buf raw = {0};
	char frag[CARILLON_CONNECT_MAX_FRAGMENT + 1];
	unsigned seen = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = frags[i] ? strlen(frags[i]) : 0;
		if (len > CARILLON_CONNECT_MAX_FRAGMENT)
			goto malformed;
		memcpy(frag, frags[i] ? frags[i] : "", len + 1);
		const char *value = carillon_query_fragment(frag, &raw);
		if (!apply_param(out, &seen, frag, value))
			goto malformed;
	}
	out->canonical_query = raw.data ? raw.data : carillon_xstrdup("");
	return 0;
malformed:
	carillon_buf_free(&raw);
	memset(out, 0, sizeof(*out));
	out->since = -1;
	return -1;
}

void carillon_connect_params_free(struct carillon_connect_params *p)
{
	free(p->canonical_query);
	p->canonical_query = NULL;
}
