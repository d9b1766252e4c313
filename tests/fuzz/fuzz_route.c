/*
 * libFuzzer harness: the router (carillon_route, src/model/model.c) on raw paths, then input
 * assembly and validation (carillon_model_input) of whatever it matched.
 *
 * The input is a request (fuzz_http.h). The server hands the router the path as lws decoded it,
 * which can hold any byte but NUL; here the path is tried both as given and percent-decoded
 * (when it decodes), and the query is split at '&' and each pair decoded, as lws does.
 *
 * Properties checked beyond "no crash": a match names an operation of the requested method, its
 * labels are non-NULL, and its re-encoded raw_path, decoded, routes to no other operation.
 *
 * The same request's CORS headers (src/http/cors.c) are read as a preflight is, under the three
 * kinds of CARILLON_CORS_ORIGINS: an echoed Origin is printable ASCII, and the
 * Access-Control-Allow-Headers answer fits its buffer and lists only lower-case token names.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "carillon/config.h"
#include "carillon/model.h"
#include "carillon/util.h"
#include "fuzz_http.h"
#include "../../src/http/http_internal.h"

#define MAX_QUERY 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (carillon_model_init()) {
		fprintf(stderr, "carillon_model_init failed\n");
		abort();
	}
	return 0;
}

/* Decoded copy of s, or a plain copy when it does not decode. */
static char *decoded(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(len + 1);
	if (carillon_pct_decode(s, len, out) < 0)
		memcpy(out, s, len + 1);
	return out;
}

static size_t split_query(char *q, struct carillon_kv *kv)
{
	size_t n = 0;
	while (*q && n < MAX_QUERY) {
		char *amp = strchr(q, '&');
		if (amp)
			*amp = '\0';
		char *eq = strchr(q, '=');
		if (eq)
			*eq = '\0';
		kv[n].name = decoded(q);
		kv[n].value = decoded(eq ? eq + 1 : "");
		n++;
		if (!amp)
			break;
		q = amp + 1;
	}
	return n;
}

static void route_one(const char *method, const char *path, const struct carillon_kv *q, size_t nq,
		      struct fuzz_http *h)
{
	struct carillon_route_match m;
	memset(&m, 0, sizeof(m));
	if (carillon_route(method, path, q, nq, &m))
		return;
	if (!m.op || strcmp(m.op->method, method) || !m.raw_path || m.n_labels < 0 ||
	    m.n_labels > CARILLON_MAX_SEGMENTS) {
		fprintf(stderr, "carillon_route matched inconsistently\n");
		abort();
	}
	for (int i = 0; i < m.n_labels; i++)
		if (!m.labels[i].name || !m.labels[i].value) {
			fprintf(stderr, "carillon_route left a label NULL\n");
			abort();
		}
	/* The signature is checked over raw_path: if its decoded form routes, it must be to the same
	 * operation, or one signature would stand for two operations. (It may route nowhere: the router
	 * drops one trailing '/', so a label ending in '/' re-encodes to a path that decodes without
	 * it; an ARN label never spans an empty segment, so "/channels/<arn>/memberships/channel//" is
	 * not DescribeChannel of "<arn>/memberships/channel/", whose raw path would decode to
	 * DescribeChannelMembership: regressions/route/trailing-slashes, empty-arn-segment.) */
	char *back = decoded(m.raw_path);
	struct carillon_route_match m2;
	memset(&m2, 0, sizeof(m2));
	if (!carillon_route(method, back, q, nq, &m2)) {
		if (m2.op != m.op) {
			fprintf(stderr, "raw_path %s routes to %s, not %s\n", m.raw_path, m2.op->name, m.op->name);
			abort();
		}
		carillon_route_match_free(&m2);
	}
	free(back);

	char err[512];
	memset(err, 0x5a, sizeof(err)); /* garbage in: a refusal must write its message */
	json_t *input = carillon_model_input(m.op, &m, q, nq, fuzz_http_header, h, (const char *)h->body,
					     h->body_len, err, sizeof(err));
	if (!input && !memchr(err, 0, sizeof(err))) {
		fprintf(stderr, "carillon_model_input left err unterminated\n");
		abort();
	}
	json_decref(input);
	carillon_route_match_free(&m);
}

static void check_allow_headers(const char *requested)
{
	char out[512];
	size_t len = carillon_cors_allow_headers(requested, out, sizeof(out));
	if (len >= sizeof(out) || strlen(out) != len)
		abort();
	for (const char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == ','))
			abort();
	char tiny[8]; /* a buffer too small for most answers: cut, never overrun */
	if (carillon_cors_allow_headers(requested, tiny, sizeof(tiny)) >= sizeof(tiny))
		abort();
}

static void fuzz_cors(const struct fuzz_http *h)
{
	static char any[] = "*", listed[] = "https://a.example, http://127.0.0.1:3000", none[] = "none";
	char *modes[] = {any, listed, none};
	for (size_t i = 0; i < h->n_headers; i++) {
		const char *name = h->h[i].name, *value = h->h[i].value;
		if (!strcasecmp(name, "access-control-request-headers"))
			check_allow_headers(value);
		if (strcasecmp(name, "origin"))
			continue;
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			carillon_cfg.cors_origins = modes[m];
			const char *allow = carillon_cors_allow_origin(value);
			if (allow && strcmp(allow, "*"))
				for (const char *p = allow; *p; p++)
					if (*p <= 0x20 || *p >= 0x7f)
						abort();
		}
		carillon_cfg.cors_origins = NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_http h;
	fuzz_http_parse(&h, data, size);
	struct carillon_kv q[MAX_QUERY];
	char *qcopy = strdup(h.query);
	size_t nq = split_query(qcopy, q);
	route_one(h.method, h.path, q, nq, &h);
	fuzz_cors(&h);
	char *dpath = decoded(h.path);
	if (strcmp(dpath, h.path))
		route_one(h.method, dpath, q, nq, &h);
	free(dpath);
	for (size_t i = 0; i < nq; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(qcopy);
	fuzz_http_free(&h);
	return 0;
}
