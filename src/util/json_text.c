/*
 * JSON text without a tree: string literals written straight into a buffer (push payloads, event
 * frames), and a JSON text checked without building it.
 *
 * The check is for the event decoder (src/realtime/event.c), which copies the database's payload
 * text into every frame and only needs to know that it is JSON.
 * Decoding it with jansson to find out built a tree per event only to free it (9 % of the
 * gateway's CPU at 64 sends in flight).
 *
 * The check is at least as strict as jansson's decoder with JSON_DECODE_ANY, so a text it passes
 * decodes there too (tests/fuzz/fuzz_event.c checks exactly that): UTF-8 as strict as jansson's,
 * no raw control characters in strings, no \u0000, surrogate escapes only in pairs, integers within
 * a long long and reals within a double, nothing but white space after the value, and at most
 * JSON_TEXT_MAX_DEPTH nested arrays and objects (jansson allows 2,048).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/util.h"

#define JSON_TEXT_MAX_DEPTH 512

struct json_text {
	const char *p;
	int depth;
};

static bool json_value(struct json_text *t);

static void json_skip_space(struct json_text *t)
{
	while (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r')
		t->p++;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The value of four hex digits, or -1. */
static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = is_digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* A string, t->p at its opening quote. */
static bool json_string(struct json_text *t)
{
	const char *p = t->p + 1;
	for (;;) {
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			t->p = p + 1;
			return true;
		}
		if (c < 0x20) /* a raw control character, or the end of the text */
			return false;
		if (c != '\\') {
			p++;
			continue;
		}
		p++;
		if (*p && strchr("\"\\/bfnrt", *p)) {
			p++;
			continue;
		}
		if (*p != 'u')
			return false;
		int u = hex4(p + 1);
		if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF)) /* not hex, \u0000, a low surrogate alone */
			return false;
		p += 5;
		if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate: its low half must follow */
			if (p[0] != '\\' || p[1] != 'u')
				return false;
			int low = hex4(p + 2);
			if (low < 0xDC00 || low > 0xDFFF)
				return false;
			p += 6;
		}
	}
}

/* A number: JSON's grammar, an integer within a long long, a real that does not overflow. */
static bool json_number(struct json_text *t)
{
	const char *p = t->p;
	bool real = false;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (is_digit(*p))
			p++;
	else
		return false;
	if (*p == '.') {
		real = true;
		if (!is_digit(*++p))
			return false;
		while (is_digit(*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		real = true;
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return false;
		while (is_digit(*p))
			p++;
	}
	errno = 0;
	if (!real) {
		(void)strtoll(t->p, NULL, 10);
		if (errno == ERANGE)
			return false;
	} else {
		double d = strtod(t->p, NULL);
		if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
			return false;
	}
	t->p = p;
	return true;
}

static bool json_literal(struct json_text *t, const char *word)
{
	size_t n = strlen(word);
	if (strncmp(t->p, word, n))
		return false;
	t->p += n;
	return true;
}

/* An array (keys false) or an object (keys true), t->p at its opening bracket. */
static bool json_container(struct json_text *t, char close, bool keys)
{
	if (++t->depth > JSON_TEXT_MAX_DEPTH)
		return false;
	t->p++;
	json_skip_space(t);
	if (*t->p == close) {
		t->p++;
		t->depth--;
		return true;
	}
	for (;;) {
		if (keys) {
			json_skip_space(t);
			if (*t->p != '"' || !json_string(t))
				return false;
			json_skip_space(t);
			if (*t->p != ':')
				return false;
			t->p++;
		}
		if (!json_value(t))
			return false;
		json_skip_space(t);
		if (*t->p == ',') {
			t->p++;
			continue;
		}
		if (*t->p != close)
			return false;
		t->p++;
		t->depth--;
		return true;
	}
}

static bool json_value(struct json_text *t)
{
	json_skip_space(t);
	switch (*t->p) {
	case '{':
		return json_container(t, '}', true);
	case '[':
		return json_container(t, ']', false);
	case '"':
		return json_string(t);
	case 't':
		return json_literal(t, "true");
	case 'f':
		return json_literal(t, "false");
	case 'n':
		return json_literal(t, "null");
	default:
		return (*t->p == '-' || is_digit(*t->p)) && json_number(t);
	}
}

bool carillon_json_text_valid(const char *s)
{
	if (!s || carillon_utf8_length(s, strlen(s)) < 0)
		return false;
	struct json_text t = {s, 0};
	if (!json_value(&t))
		return false;
	json_skip_space(&t);
	return *t.p == '\0';
}

/* short: \b \f \n \r \t for those five, as PostgreSQL writes them. */
static void json_escape(struct carillon_buf *b, const char *s, size_t n, bool short_escapes)
{
	size_t run = 0; /* start of the bytes not yet appended, which need no escape */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		carillon_buf_append(b, s + run, i - run);
		run = i + 1;
		static const char hex[] = "0123456789abcdef", shorts[] = "\b\f\n\r\t", letters[] = "bfnrt";
		const char *sh = short_escapes && c ? strchr(shorts, c) : NULL;
		char esc[6] = {'\\', sh ? letters[sh - shorts] : (char)c};
		size_t len = 2;
		if (c < 0x20 && !sh) {
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			len = 6;
		}
		carillon_buf_append(b, esc, len);
	}
	carillon_buf_append(b, s + run, n - run);
}

void carillon_json_escape(struct carillon_buf *b, const char *s, size_t n) { json_escape(b, s, n, false); }

static int quoted_string(struct carillon_buf *b, const char *s, bool short_escapes)
{
	size_t n = strlen(s);
	if (carillon_utf8_length(s, n) < 0)
		return -1;
	carillon_buf_append(b, "\"", 1);
	json_escape(b, s, n, short_escapes);
	carillon_buf_append(b, "\"", 1);
	return 0;
}

int carillon_json_string(struct carillon_buf *b, const char *s) { return quoted_string(b, s, false); }

int carillon_json_string_pg(struct carillon_buf *b, const char *s) { return quoted_string(b, s, true); }
