/*
 * The regular expressions of the Chime models, as checkers. The models use a small, fixed set of
 * ECMAScript patterns (unanchored); identifier-like ones are full-matched as the service intends.
 * A pattern not in this table accepts (and is reported once at startup by the model loader).
 */
#include <ctype.h>
#include <string.h>

#include "carillon/model.h"

static bool is_alnum(char c) { return isascii((unsigned char)c) && isalnum((unsigned char)c); }

/* [-_a-zA-Z0-9]* */
static bool pat_token(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* [A-Za-z0-9]([A-Za-z0-9\:\-\_\.\@]{0,62}[A-Za-z0-9])? */
static bool pat_user_id(const char *s, size_t n)
{
	if (n < 1 || n > 64 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!is_alnum(s[i]) && !strchr(":-_.@", s[i]))
			return false;
	return true;
}

static bool arn_field_ok(const char *s, size_t n, size_t min, size_t max)
{
	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

/* arn:[a-z0-9-\.]{1,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[^/].{0,1023}, full match */
static bool pat_chime_arn(const char *s, size_t n)
{
	if (n < 4 || memcmp(s, "arn:", 4))
		return false;
	size_t pos = 4;
	static const size_t mins[4] = {1, 0, 0, 0};
	for (int f = 0; f < 4; f++) {
		const char *colon = memchr(s + pos, ':', n - pos);
		if (!colon || !arn_field_ok(s + pos, (size_t)(colon - (s + pos)), mins[f], 63))
			return false;
		pos = (size_t)(colon - s) + 1;
	}
	if (pos >= n || s[pos] == '/' || n - pos > 1024)
		return false;
	for (size_t i = pos; i < n; i++)
		if (s[i] == '\n' || s[i] == '\r')
			return false;
	return true;
}

/* .*\S.*  : some non-white-space character */
static bool pat_non_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return true;
	return false;
}

/* XML-legal characters: \u0009 \u000A \u000D \u0020-\u007E \u0085 \u00A0-\uD7FF \uE000-\uFFFD \u10000-\u10FFFF */
static bool pat_xml_chars(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p, cp;
		size_t k;
		if (c < 0x80) {
			cp = c;
			k = 1;
		} else if ((c >> 5) == 6 && end - p >= 2) {
			cp = (c & 0x1f) << 6 | (p[1] & 0x3f);
			k = 2;
		} else if ((c >> 4) == 14 && end - p >= 3) {
			cp = (c & 0x0f) << 12 | (p[1] & 0x3f) << 6 | (p[2] & 0x3f);
			k = 3;
		} else if ((c >> 3) == 30 && end - p >= 4) {
			cp = (c & 0x07) << 18 | (p[1] & 0x3f) << 12 | (p[2] & 0x3f) << 6 | (p[3] & 0x3f);
			k = 4;
		} else {
			return false;
		}
		bool ok = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0x7E) || cp == 0x85 ||
			  (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
			  (cp >= 0x10000 && cp <= 0x10FFFF);
		if (!ok)
			return false;
		p += k;
	}
	return true;
}

static bool span(const char **s, const char *end, int (*cls)(int), size_t min, size_t max)
{
	size_t n = 0;
	while (*s < end && n < max && cls((unsigned char)**s)) {
		(*s)++;
		n++;
	}
	return n >= min;
}

static bool expect(const char **s, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - *s) < n || memcmp(*s, lit, n))
		return false;
	*s += n;
	return true;
}

static int cls_lower(int c) { return c >= 'a' && c <= 'z'; }
static int cls_digit(int c) { return c >= '0' && c <= '9'; }
static int cls_upper_digit(int c) { return (c >= 'A' && c <= 'Z') || cls_digit(c); }
static int cls_fn_name(int c) { return is_alnum((char)c) || c == '-' || c == '_' || c == '.'; }
static int cls_alias(int c) { return is_alnum((char)c) || c == '-' || c == '_'; }

#define SPAN(s, e, cls, lo, hi) span(s, e, cls, lo, hi)

/* [a-z]{2}-[a-z]+-\d{1} */
static bool aws_region(const char **s, const char *e)
{
	return SPAN(s, e, cls_lower, 2, 2) && expect(s, e, "-") && SPAN(s, e, cls_lower, 1, 64) &&
	       expect(s, e, "-") && SPAN(s, e, cls_digit, 1, 1);
}

/* arn:aws:lex:[a-z]{2}-[a-z]+-\d{1}:\d{12}:bot-alias/[A-Z0-9]{10}/[A-Z0-9]{10} */
static bool pat_lex_alias(const char *s, size_t n)
{
	const char *e = s + n;
	return expect(&s, e, "arn:aws:lex:") && aws_region(&s, e) && expect(&s, e, ":") &&
	       SPAN(&s, e, cls_digit, 12, 12) && expect(&s, e, ":bot-alias/") &&
	       SPAN(&s, e, cls_upper_digit, 10, 10) && expect(&s, e, "/") &&
	       SPAN(&s, e, cls_upper_digit, 10, 10) && s == e;
}

/* arn:aws:lambda:[a-z]{2}-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9\-_\.]+(:(\$LATEST|[a-zA-Z0-9\-_]+))? */
static bool pat_lambda(const char *s, size_t n)
{
	const char *e = s + n;
	if (!(expect(&s, e, "arn:aws:lambda:") && aws_region(&s, e) && expect(&s, e, ":") &&
	      SPAN(&s, e, cls_digit, 12, 12) && expect(&s, e, ":function:") && SPAN(&s, e, cls_fn_name, 1, 2048)))
		return false;
	if (s == e)
		return true;
	if (!expect(&s, e, ":"))
		return false;
	if (expect(&s, e, "$LATEST"))
		return s == e;
	return SPAN(&s, e, cls_alias, 1, 2048) && s == e;
}

/* ^([A-Za-z]_?)+$ */
static bool pat_lex_intent(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalpha((unsigned char)s[i]) || !isascii((unsigned char)s[i]))
			return false;
		if (i + 1 < n && s[i + 1] == '_')
			i++;
	}
	return true;
}

static bool pat_any(const char *s, size_t n) { return true; }

/* '.' in ECMAScript does not match line terminators, but the unanchored `.*` matches the empty
 * string anywhere, so it accepts everything, as [\s\S]* does. */
static const struct {
	const char *pattern;
	bool (*check)(const char *s, size_t n);
} patterns[] = {
	{"[-_a-zA-Z0-9]*", pat_token},
	{"[A-Za-z0-9]([A-Za-z0-9\\:\\-\\_\\.\\@]{0,62}[A-Za-z0-9])?", pat_user_id},
	{"arn:[a-z0-9-\\.]{1,63}:[a-z0-9-\\.]{0,63}:[a-z0-9-\\.]{0,63}:[a-z0-9-\\.]{0,63}:[^/].{0,1023}", pat_chime_arn},
	{".*\\S.*", pat_non_blank},
	{"[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u0085\\u00A0-\\uD7FF\\uE000-\\uFFFD\\u10000-\\u10FFFF]*", pat_xml_chars},
	{"arn:aws:lex:[a-z]{2}-[a-z]+-\\d{1}:\\d{12}:bot-alias/[A-Z0-9]{10}/[A-Z0-9]{10}", pat_lex_alias},
	{"arn:aws:lambda:[a-z]{2}-[a-z]+-\\d{1}:\\d{12}:function:[a-zA-Z0-9\\-_\\.]+(:(\\$LATEST|[a-zA-Z0-9\\-_]+))?", pat_lambda},
	{"^([A-Za-z]_?)+$", pat_lex_intent},
	{".*", pat_any},
	{"[\\s\\S]*", pat_any},
};

bool carillon_pattern_known(const char *pattern)
{
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		if (!strcmp(patterns[i].pattern, pattern))
			return true;
	return false;
}

bool carillon_pattern_match(const char *pattern, const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		if (!strcmp(patterns[i].pattern, pattern))
			return patterns[i].check(s, len);
	return true;
}
