/*
 * Shared by the harnesses: the fuzz input read as an HTTP/1.1 request, so seeds are requests as
 * captured on the wire (shared/api/ROUTES.md §8) and mutations stay close to what a client sends.
 *
 *   METHOD SP target [SP HTTP/1.1] LF     target = path ["?" query]; CR before LF is dropped
 *   name ":" value LF                     up to FUZZ_MAX_HEADERS header lines
 *   LF
 *   body                                  the rest, verbatim
 *
 * Any byte sequence parses to something (missing parts are empty strings); NUL bytes end a field,
 * as they would in the server's C strings.
 */
#ifndef CARILLON_FUZZ_HTTP_H
#define CARILLON_FUZZ_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_HEADERS 64

struct fuzz_header {
	char *name;
	char *value;
};

struct fuzz_http {
	char *copy;             /* the input, NUL-terminated, fields cut in place */
	char *method, *path, *query;
	bool has_query;
	struct fuzz_header h[FUZZ_MAX_HEADERS];
	size_t n_headers;
	const unsigned char *body; /* points into the caller's data */
	size_t body_len;
};

static inline char fuzz_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static inline bool fuzz_name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (fuzz_lower(*a) != fuzz_lower(*b))
			return false;
	return *a == *b;
}

/* Cuts the next line out of [*p, end): returns it NUL-terminated without CR LF. */
static inline char *fuzz_line(char **p, char *end, bool *had_newline)
{
	char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
	*had_newline = nl != NULL;
	if (!nl)
		nl = end;
	*nl = '\0';
	if (nl > s && nl[-1] == '\r')
		nl[-1] = '\0';
	*p = nl < end ? nl + 1 : end;
	return s;
}

static inline char *fuzz_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static inline void fuzz_http_parse(struct fuzz_http *r, const uint8_t *data, size_t size)
{
	memset(r, 0, sizeof(*r));
	r->copy = malloc(size + 1);
	memcpy(r->copy, data, size);
	r->copy[size] = '\0';
	char *p = r->copy, *end = r->copy + size;
	bool nl;
	char *line = fuzz_line(&p, end, &nl);
	r->method = line;
	char *sp = strchr(line, ' ');
	char *target = "";
	if (sp) {
		*sp = '\0';
		target = sp + 1;
		char *sp2 = strchr(target, ' ');
		if (sp2)
			*sp2 = '\0';
	}
	char *q = strchr(target, '?');
	r->has_query = q != NULL;
	if (q)
		*q++ = '\0';
	r->path = target;
	r->query = q ? q : "";
	while (nl && p < end) {
		line = fuzz_line(&p, end, &nl);
		if (!*line)
			break;
		char *colon = strchr(line, ':');
		if (!colon || r->n_headers == FUZZ_MAX_HEADERS)
			continue;
		*colon = '\0';
		r->h[r->n_headers].name = fuzz_trim(line);
		r->h[r->n_headers].value = fuzz_trim(colon + 1);
		r->n_headers++;
	}
	r->body = data + (size_t)(p - r->copy);
	r->body_len = size - (size_t)(p - r->copy);
}

/* Header lookup with the signature of carillon_sigv4_header_fn and carillon_header_fn. */
static inline const char *fuzz_http_header(void *ctx, const char *lower_name)
{
	const struct fuzz_http *r = ctx;
	for (size_t i = 0; i < r->n_headers; i++)
		if (fuzz_name_eq(r->h[i].name, lower_name))
			return r->h[i].value;
	return NULL;
}

static inline void fuzz_http_free(struct fuzz_http *r) { free(r->copy); }

#endif
