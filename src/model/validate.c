/*
 * Input assembly and validation, driven by the model: members come from path labels, the query,
 * headers and the JSON body according to their `location`; unknown members are dropped; every
 * constraint of the shape (required, type, min/max, pattern, enum) is checked, recursively.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "carillon/model.h"
#include "carillon/util.h"

struct vctx {
	const char *service;
	char *err;
	size_t err_len;
};

static int verr(struct vctx *v, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verr(struct vctx *v, const char *path, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	carillon_utf8_vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* The path quotes member names and map keys the client chose: cut only on code point
	 * boundaries (the reply sanitises control characters). */
	carillon_utf8_snprintf(v->err, v->err_len,
			       "1 validation error detected: Value at '%s' failed to satisfy constraint: %s", path, what);
	return -1;
}

/* path + sep + key, a long key cut on a code point boundary: a message names the member, it
 * does not echo kilobytes of client input. */
#define MAX_KEY_QUOTED 64
static void sub_path(char *out, size_t size, const char *path, const char *sep, const char *key)
{
	size_t klen = strlen(key), cut = carillon_utf8_prefix(key, klen, MAX_KEY_QUOTED);
	carillon_utf8_snprintf(out, size, "%s%s%.*s%s", path, sep, (int)cut, key, cut < klen ? "..." : "");
}

static int validate_value(struct vctx *v, json_t *shape, json_t *value, const char *path);

static json_t *shape_ref(struct vctx *v, json_t *member)
{
	return carillon_model_shape(v->service, json_string_value(json_object_get(member, "shape")));
}

static int check_length(struct vctx *v, json_t *shape, long n, const char *path, const char *unit)
{
	json_t *min = json_object_get(shape, "min"), *max = json_object_get(shape, "max");
	if (min && n < json_integer_value(min))
		return verr(v, path, "Member must have %s greater than or equal to %lld", unit,
			    (long long)json_integer_value(min));
	if (max && n > json_integer_value(max))
		return verr(v, path, "Member must have %s less than or equal to %lld", unit,
			    (long long)json_integer_value(max));
	return 0;
}

static int validate_string(struct vctx *v, json_t *shape, json_t *value, const char *path)
{
	if (!json_is_string(value))
		return verr(v, path, "Member must be a string");
	const char *s = json_string_value(value);
	size_t len = json_string_length(value);
	long chars = carillon_utf8_length(s, len);
	if (chars < 0 || strlen(s) != len)
		return verr(v, path, "Member must be valid UTF-8 without NUL characters");
	if (check_length(v, shape, chars, path, "length"))
		return -1;
	json_t *en = json_object_get(shape, "enum");
	if (en) {
		size_t i;
		json_t *e;
		json_array_foreach(en, i, e) if (!strcmp(json_string_value(e), s)) return 0;
		return verr(v, path, "Member must satisfy enum value set");
	}
	const char *pattern = json_string_value(json_object_get(shape, "pattern"));
	if (pattern && !carillon_pattern_match(pattern, s, len))
		return verr(v, path, "Member must satisfy regular expression pattern: %.120s", pattern);
	return 0;
}

static int validate_structure(struct vctx *v, json_t *shape, json_t *value, const char *path)
{
	if (!json_is_object(value))
		return verr(v, path, "Member must be an object");
	json_t *members = json_object_get(shape, "members");
	/* Drop members the model does not know: handlers only ever see modeled input. */
	const char *key;
	json_t *val;
	void *tmp;
	json_object_foreach_safe(value, tmp, key, val) {
		if (!json_object_get(members, key) || json_is_null(val))
			json_object_del(value, key);
	}
	size_t i;
	json_t *req;
	json_array_foreach(json_object_get(shape, "required"), i, req) {
		const char *name = json_string_value(req);
		if (!json_object_get(value, name)) {
			char sub[512];
			sub_path(sub, sizeof(sub), path, *path ? "." : "", name);
			return verr(v, sub, "Member must not be null");
		}
	}
	json_object_foreach(value, key, val) {
		char sub[512];
		sub_path(sub, sizeof(sub), path, *path ? "." : "", key);
		if (validate_value(v, shape_ref(v, json_object_get(members, key)), val, sub))
			return -1;
	}
	return 0;
}

static int validate_value(struct vctx *v, json_t *shape, json_t *value, const char *path)
{
	if (!shape)
		return 0;
	const char *type = json_string_value(json_object_get(shape, "type"));
	if (!type)
		return 0;
	if (!strcmp(type, "structure"))
		return validate_structure(v, shape, value, path);
	if (!strcmp(type, "string"))
		return validate_string(v, shape, value, path);
	if (!strcmp(type, "integer") || !strcmp(type, "long")) {
		if (!json_is_integer(value))
			return verr(v, path, "Member must be an integer");
		return check_length(v, shape, (long)json_integer_value(value), path, "value");
	}
	if (!strcmp(type, "boolean"))
		return json_is_boolean(value) ? 0 : verr(v, path, "Member must be a boolean");
	if (!strcmp(type, "double") || !strcmp(type, "float"))
		return json_is_number(value) ? 0 : verr(v, path, "Member must be a number");
	if (!strcmp(type, "timestamp")) {
		long long ms;
		if (json_is_number(value))
			return 0;
		if (json_is_string(value) && !carillon_parse_timestamp(json_string_value(value), &ms))
			return 0;
		return verr(v, path, "Member must be a timestamp");
	}
	if (!strcmp(type, "list")) {
		if (!json_is_array(value))
			return verr(v, path, "Member must be a list");
		if (check_length(v, shape, (long)json_array_size(value), path, "length"))
			return -1;
		json_t *item_shape = shape_ref(v, json_object_get(shape, "member"));
		size_t i;
		json_t *item;
		json_array_foreach(value, i, item) {
			char sub[512];
			carillon_utf8_snprintf(sub, sizeof(sub), "%s.%zu.member", path, i + 1);
			if (validate_value(v, item_shape, item, sub))
				return -1;
		}
		return 0;
	}
	if (!strcmp(type, "map")) {
		if (!json_is_object(value))
			return verr(v, path, "Member must be a map");
		if (check_length(v, shape, (long)json_object_size(value), path, "length"))
			return -1;
		json_t *kshape = shape_ref(v, json_object_get(shape, "key"));
		json_t *vshape = shape_ref(v, json_object_get(shape, "value"));
		const char *key;
		json_t *val;
		json_object_foreach(value, key, val) {
			char sub[512];
			sub_path(sub, sizeof(sub), path, ".", key);
			json_t *k = json_string(key);
			int rc = k ? validate_value(v, kshape, k, sub) : verr(v, sub, "Member key must be UTF-8");
			json_decref(k);
			if (rc || validate_value(v, vshape, val, sub))
				return -1;
		}
		return 0;
	}
	return 0;
}

/* A string from the path, query or a header, converted to the member's type. */
static json_t *scalar_from_text(struct vctx *v, json_t *shape, const char *text, const char *name)
{
	const char *type = json_string_value(json_object_get(shape, "type"));
	if (type && (!strcmp(type, "integer") || !strcmp(type, "long"))) {
		char *end;
		errno = 0;
		long long n = strtoll(text, &end, 10);
		if (errno || end == text || *end) {
			verr(v, name, "Member must be an integer");
			return NULL;
		}
		return json_integer(n);
	}
	if (type && !strcmp(type, "timestamp")) {
		long long ms;
		if (carillon_parse_timestamp(text, &ms)) {
			verr(v, name, "Member must be a timestamp in ISO 8601 format");
			return NULL;
		}
		return json_real((double)ms / 1000.0);
	}
	if (type && !strcmp(type, "boolean")) {
		if (strcmp(text, "true") && strcmp(text, "false")) {
			verr(v, name, "Member must be a boolean");
			return NULL;
		}
		return !strcmp(text, "true") ? json_true() : json_false();
	}
	json_t *s = json_string(text);
	if (!s)
		verr(v, name, "Member must be valid UTF-8");
	return s;
}

static const char *kv_get(const struct carillon_kv *kv, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(kv[i].name, name))
			return kv[i].value;
	return NULL;
}

json_t *carillon_model_input(const struct carillon_op *op, const struct carillon_route_match *m,
			     const struct carillon_kv *query, size_t n_query, carillon_header_fn header,
			     void *header_ctx, const char *body, size_t body_len, char *err, size_t err_len)
{
	struct vctx v = {op->service, err, err_len};
	json_t *input;
	if (body_len) {
		/* jansson refuses invalid UTF-8, overlong forms, surrogates (raw or as lone "\ud800"
		 * escapes), "\u0000" and nesting deeper than 2048: all a BadRequest. */
		json_error_t jerr;
		input = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
		if (!input || !json_is_object(input)) {
			if (input)
				carillon_utf8_snprintf(err, err_len, "The request body is not a valid JSON object");
			else {
				/* jansson's text may quote the offending bytes: made valid UTF-8 first. */
				char why[sizeof(jerr.text) * 3];
				carillon_utf8_sanitize(why, sizeof(why), jerr.text, strnlen(jerr.text, sizeof(jerr.text)));
				carillon_utf8_snprintf(err, err_len, "The request body is not a valid JSON object: %s (at byte %d)",
						       why, jerr.position);
			}
			json_decref(input);
			return NULL;
		}
	} else {
		input = json_object();
	}
	if (input && body_len && op->input_payload) {
		/* The payload trait: the body is that one member's value, not an object of members. */
		json_t *wrapped = json_object();
		if (!wrapped)
			json_decref(input);
		else if (json_object_set_new(wrapped, op->input_payload, input)) { /* steals input */
			json_decref(wrapped);
			wrapped = NULL;
		}
		input = wrapped;
	}
	if (!input) {
		carillon_utf8_snprintf(err, err_len, "Out of memory");
		return NULL;
	}
	/* Body keys that name non-body members are not accepted from the body. */
	json_t *members = json_object_get(op->input_shape, "members");
	const char *name;
	json_t *mem;
	json_object_foreach(members, name, mem) {
		const char *loc = json_string_value(json_object_get(mem, "location"));
		if (!loc)
			continue;
		json_object_del(input, name);
		const char *loc_name = json_string_value(json_object_get(mem, "locationName"));
		const char *text = NULL;
		if (!strcmp(loc, "uri"))
			text = kv_get(m->labels, (size_t)m->n_labels, loc_name);
		else if (!strcmp(loc, "querystring"))
			text = kv_get(query, n_query, loc_name);
		else if (!strcmp(loc, "header"))
			text = header(header_ctx, loc_name);
		if (!text)
			continue;
		json_t *val = scalar_from_text(&v, shape_ref(&v, mem), text, name);
		if (!val || json_object_set_new(input, name, val)) {
			if (val)
				verr(&v, name, "Member could not be stored");
			json_decref(input);
			return NULL;
		}
	}
	if (op->input_shape && validate_structure(&v, op->input_shape, input, "")) {
		json_decref(input);
		return NULL;
	}
	return input;
}

static int digits(const char **s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return -1;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

int carillon_parse_timestamp(const char *s, long long *epoch_ms)
{
	/* Epoch seconds, as hand-written clients send them. */
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (!errno && end != s && !*end && d >= 0 && d < 1e11) {
		*epoch_ms = (long long)(d * 1000.0 + 0.5);
		return 0;
	}
	int Y, M, D, h, m, sec, ms = 0;
	const char *p = s;
	if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D) ||
	    (*p != 'T' && *p != 't') || (p++, digits(&p, 2, &h)) || *p++ != ':' || digits(&p, 2, &m) ||
	    *p++ != ':' || digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (isdigit((unsigned char)*p)) {
			if (nd < 3)
				ms = ms * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0 || nd > 9)
			return -1;
		for (; nd < 3; nd++)
			ms *= 10;
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		int sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
			return -1;
		offset = sign * (oh * 3600L + om * 60L);
	} else {
		return -1;
	}
	if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -1;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	time_t t = timegm(&tm);
	*epoch_ms = ((long long)t - offset) * 1000 + ms;
	return 0;
}
