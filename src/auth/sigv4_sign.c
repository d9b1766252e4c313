/*
 * The outbound SigV4 signer: turns (method, URL, header lines, body, credentials, time) into the
 * request the verifier's canonicalisation understands (struct carillon_sigv4_request with a header
 * lookup over our own table) and the auth fields (scope, date, sorted SignedHeaders), then lets
 * carillon_sigv4_sign_auth compute the signature. Nothing of the canonical form is rebuilt here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "carillon/config.h"
#include "carillon/sigv4.h"
#include "carillon/sigv4_sign.h"
#include "carillon/util.h"

#define SS_MAX_HEADERS 32
#define SS_MAX_URL 8192

struct ss_header {
	char *name;  /* lower-case */
	char *value; /* trimmed; repeated names joined with ',' */
};

struct ss_table {
	struct ss_header h[SS_MAX_HEADERS];
	size_t n;
};

static void ss_table_free(struct ss_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->h[i].name);
		free(t->h[i].value);
	}
	t->n = 0;
}

static struct ss_header *ss_find(struct ss_table *t, const char *lower)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->h[i].name, lower) == 0)
			return &t->h[i];
	return NULL;
}

static const char *ss_lookup(void *ctx, const char *lower_name)
{
	struct ss_header *h = ss_find(ctx, lower_name);
	return h ? h->value : NULL;
}

/* Adds name: value (name of n bytes, any case). Repeated names are joined with ',' as HTTP allows. */
static bool ss_add(struct ss_table *t, const char *name, size_t n, const char *value)
{
	char lower[128];
	if (n == 0 || n >= sizeof(lower))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f || c == ':' || c == ';')
			return false;
		lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	lower[n] = '\0';
	struct ss_header *h = ss_find(t, lower);
	if (h) {
		size_t a = strlen(h->value), b = strlen(value);
		h->value = carillon_xrealloc(h->value, a + b + 2);
		h->value[a] = ',';
		memcpy(h->value + a + 1, value, b + 1);
		return true;
	}
	if (t->n == SS_MAX_HEADERS)
		return false;
	t->h[t->n].name = carillon_xstrdup(lower);
	t->h[t->n].value = carillon_xstrdup(value);
	t->n++;
	return true;
}

/* Headers a proxy or libcurl may change or drop: never signed. */
static bool ss_hop_by_hop(const char *lower)
{
	static const char *const names[] = {"connection", "expect", "keep-alive", "te", "trailer",
					    "transfer-encoding", "upgrade", "proxy-authorization", "user-agent",
					    "content-length", "authorization"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(lower, names[i]) == 0)
			return true;
	return false;
}

/* One caller line "Name: value". Empty values and hop-by-hop names are left out of the signature. */
static bool ss_add_line(struct ss_table *t, const char *line)
{
	const char *colon = line ? strchr(line, ':') : NULL;
	if (!colon)
		return false;
	size_t n = (size_t)(colon - line);
	char *value = carillon_xstrdup(colon + 1);
	char *v = carillon_trim(value);
	char lower[128];
	bool ok = n > 0 && n < sizeof(lower);
	if (ok) {
		for (size_t i = 0; i < n; i++)
			lower[i] = (line[i] >= 'A' && line[i] <= 'Z') ? (char)(line[i] - 'A' + 'a') : line[i];
		lower[n] = '\0';
		if (v[0] && !ss_hop_by_hop(lower))
			ok = ss_add(t, line, n, v);
	}
	free(value);
	return ok;
}

/* Splits an http(s) URL into the Host header value (lower-cased, default port dropped), the raw path
 * ("/" when empty) and the raw query (after '?', before any '#'). */
static bool ss_split_url(const char *url, char *host, size_t host_size, char **path, char **query)
{
	const char *p;
	bool https;
	if (strncmp(url, "https://", 8) == 0) {
		https = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		https = false;
		p = url + 7;
	} else {
		return false;
	}
	size_t alen = strcspn(p, "/?#");
	const char *at = memchr(p, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (alen == 0 || alen >= host_size)
		return false;
	for (size_t i = 0; i < alen; i++)
		host[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] - 'A' + 'a') : p[i];
	host[alen] = '\0';
	const char *def = https ? ":443" : ":80";
	size_t dl = strlen(def);
	if (alen > dl && strcmp(host + alen - dl, def) == 0 && host[alen - dl - 1] != ':')
		host[alen - dl] = '\0';
	const char *rest = p + alen;
	size_t plen = strcspn(rest, "?#");
	*path = plen ? carillon_xstrndup(rest, plen) : carillon_xstrdup("/");
	rest += plen;
	*query = rest[0] == '?' ? carillon_xstrndup(rest + 1, strcspn(rest + 1, "#")) : carillon_xstrdup("");
	return true;
}

static int ss_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ss_header *)a)->name, ((const struct ss_header *)b)->name);
}

/* The sorted names, ';'-joined, into auth->signed_headers. */
static bool ss_signed_headers(struct ss_table *t, struct carillon_sigv4_auth *auth)
{
	qsort(t->h, t->n, sizeof(t->h[0]), ss_name_cmp);
	size_t o = 0;
	for (size_t i = 0; i < t->n; i++) {
		size_t n = strlen(t->h[i].name);
		if (o + n + 2 > sizeof(auth->signed_headers))
			return false;
		if (i)
			auth->signed_headers[o++] = ';';
		memcpy(auth->signed_headers + o, t->h[i].name, n);
		o += n;
	}
	auth->signed_headers[o] = '\0';
	return true;
}

static bool ss_copy(char *dst, size_t size, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n >= size)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

/* The scope and the date: X-Amz-Date (YYYYMMDDTHHMMSSZ) of now_ms, the credential scope fields. */
static bool ss_fill_auth(struct carillon_sigv4_auth *auth, const char *region, const char *service,
			 const char *access_key_id, int64_t now_ms)
{
	time_t secs = (time_t)(now_ms / 1000);
	struct tm tm;
	if (now_ms < 0 || !gmtime_r(&secs, &tm) ||
	    strftime(auth->amz_date, sizeof(auth->amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16)
		return false;
	memcpy(auth->date, auth->amz_date, 8);
	auth->date[8] = '\0';
	return ss_copy(auth->access_key_id, sizeof(auth->access_key_id), access_key_id) &&
	       ss_copy(auth->region, sizeof(auth->region), region) &&
	       ss_copy(auth->service, sizeof(auth->service), service);
}

static char *ss_line(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *s = carillon_xmalloc(n);
	snprintf(s, n, "%s: %s", name, value);
	return s;
}

/* The header lines to add, in the contract's order. */
static int ss_emit(const struct carillon_sigv4_auth *auth, const char *content_sha, const char *token,
		   char *out[4])
{
	int n = 0;
	char authz[sizeof(auth->access_key_id) + sizeof(auth->signed_headers) + 256];
	snprintf(authz, sizeof(authz), "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
		 "Signature=%s", auth->access_key_id, auth->date, auth->region, auth->service, auth->signed_headers,
		 auth->signature);
	out[n++] = ss_line("Authorization", authz);
	out[n++] = ss_line("X-Amz-Date", auth->amz_date);
	if (content_sha)
		out[n++] = ss_line("X-Amz-Content-Sha256", content_sha);
	if (token)
		out[n++] = ss_line("X-Amz-Security-Token", token);
	return n;
}

/* The table of signed headers: the caller's (a Host line of theirs wins over the URL's), then ours. */
static bool ss_build_table(struct ss_table *t, const char *host, const char *const *headers, size_t n_headers,
			   const struct carillon_sigv4_auth *auth, const char *content_sha, const char *token)
{
	for (size_t i = 0; i < n_headers; i++)
		if (!ss_add_line(t, headers[i]))
			return false;
	if (ss_find(t, "x-amz-date") || ss_find(t, "x-amz-security-token") || ss_find(t, "x-amz-content-sha256"))
		return false; /* ours to set */
	if (!ss_find(t, "host") && !ss_add(t, "host", 4, host))
		return false;
	if (!ss_add(t, "x-amz-date", 10, auth->amz_date))
		return false;
	if (content_sha && !ss_add(t, "x-amz-content-sha256", 20, content_sha))
		return false;
	return !token || ss_add(t, "x-amz-security-token", 20, token);
}

int carillon_sigv4_sign_ex(const char *method, const char *url, const char *const *headers, size_t n_headers,
			   const void *body, size_t body_len, const char *region, const char *service,
			   const char *access_key_id, const char *secret_key, const char *session_token,
			   int64_t now_ms, unsigned flags, char *out[4])
{
	struct carillon_sigv4_auth auth;
	struct ss_table t = {.n = 0};
	char host[512], content_sha[65];
	char *path = NULL, *query = NULL;
	int rc = -1;
	const char *token = session_token && session_token[0] ? session_token : NULL;
	if (!method || !url || !out || !secret_key || (n_headers && !headers) || (body_len && !body) ||
	    strnlen(url, SS_MAX_URL + 1) > SS_MAX_URL)
		return -1;
	memset(&auth, 0, sizeof(auth));
	carillon_sha256_hex(body, body_len, content_sha);
	const char *sha = (flags & CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256) ? NULL : content_sha;
	if (ss_split_url(url, host, sizeof(host), &path, &query) &&
	    ss_fill_auth(&auth, region, service, access_key_id, now_ms) &&
	    ss_build_table(&t, host, headers, n_headers, &auth, sha, token) && ss_signed_headers(&t, &auth)) {
		struct carillon_sigv4_request req = {.method = method, .raw_path = path, .raw_query = query,
						     .header = ss_lookup, .header_ctx = &t, .body = body,
						     .body_len = body_len};
		carillon_sigv4_sign_auth(&req, &auth, secret_key);
		if (auth.signature[0])
			rc = ss_emit(&auth, sha, token, out);
	}
	ss_table_free(&t);
	free(path);
	free(query);
	return rc;
}

int carillon_sigv4_sign(const char *method, const char *url, const char *const *headers, size_t n_headers,
			const void *body, size_t body_len, const char *region, const char *service,
			const char *access_key_id, const char *secret_key, const char *session_token,
			int64_t now_ms, char *out[4])
{
	return carillon_sigv4_sign_ex(method, url, headers, n_headers, body, body_len, region, service,
				      access_key_id, secret_key, session_token, now_ms, 0, out);
}

static const char *ss_env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

bool carillon_aws_credentials_get(struct carillon_aws_credentials *c)
{
	c->access_key_id = ss_env("AWS_ACCESS_KEY_ID");
	c->secret_key = ss_env("AWS_SECRET_ACCESS_KEY");
	c->session_token = ss_env("AWS_SESSION_TOKEN");
	c->region = carillon_cfg.region && carillon_cfg.region[0] ? carillon_cfg.region : "us-east-1";
	return c->access_key_id && c->secret_key;
}

int carillon_sigv4_sign_env(const char *method, const char *url, const char *const *headers, size_t n_headers,
			    const void *body, size_t body_len, const char *service, int64_t now_ms, char *out[4])
{
	struct carillon_aws_credentials c;
	if (!carillon_aws_credentials_get(&c))
		return 0;
	return carillon_sigv4_sign(method, url, headers, n_headers, body, body_len, c.region, service,
				   c.access_key_id, c.secret_key, c.session_token, now_ms, out);
}

void carillon_sigv4_free_lines(char *out[4], int n)
{
	for (int i = 0; out && i < n && i < 4; i++) {
		free(out[i]);
		out[i] = NULL;
	}
}
