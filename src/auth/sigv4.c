/*
 * AWS Signature Version 4: parsing the claimed credentials, checking the time window, and
 * recomputing the signature over the request exactly as received.
 *
 * Every input is attacker-controlled and bounded here: the Authorization header, the path, the
 * query (length and number of pairs), each header value, and the size of the canonical request.
 * Anything over a bound, any invalid %XX escape, any unparsable field gives MALFORMED.
 *
 * Decisions worth knowing (see also include/carillon/sigv4.h):
 * - A header named in SignedHeaders that the request lacks gives MISMATCH (the signature cannot
 *   match the request as received; typically a proxy dropped it). Repeated headers must be joined
 *   with ',' by the header callback, as HTTP allows.
 * - `host` must be signed, in both forms (MALFORMED otherwise); HTTP/2 clients (the SDK's
 *   NodeHttp2Handler) sign the pseudo-header `:authority` instead, which stands for `host` (its
 *   value is the Host header: HAProxy's h2 frontend forwards `:authority` as Host); `x-amz-chime-bearer`, `content-type` and
 *   every `x-amz-*` header present must be signed too (UNSIGNED_HEADER otherwise; see
 *   carillon_sigv4_unsigned_header): a header outside SignedHeaders is not covered by the signature,
 *   and honouring it would let anyone who sees a signed request act as another bearer.
 * - Presigned (query-string) credentials are refused (QUERY_AUTH) unless the caller allows them
 *   (GET /connect only): their payload hash is that of an empty body and only `host` is signed.
 * - SignedHeaders must be lower-case header-name characters separated by ';'; it is used in the
 *   order given (the spec says sorted, but the client's own list is what it signed).
 * - Presigned form: the host value is lower-cased before it is canonicalised (the JS client signs
 *   the lower-cased endpoint Url); the header form uses header values as received.
 * - Presigned time window: X-Amz-Date may be at most max_skew in the future, and the URL is valid
 *   until X-Amz-Date + X-Amz-Expires + max_skew. (Applying |now - date| <= skew as well would make
 *   every X-Amz-Expires above the skew meaningless.)
 * - A malformed Authorization header is MALFORMED even when no other credentials are present; a query
 *   without X-Amz-Algorithm, X-Amz-Credential or X-Amz-Signature is MISSING.
 * - carillon_sigv4_sign_auth() also signs the presigned form when auth->presigned is set: the canonical
 *   query is the raw query without X-Amz-Signature, re-encoded the RFC 3986 way; the caller appends
 *   X-Amz-Signature. On any invalid field it leaves auth->signature empty.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/sigv4.h"
#include "carillon/util.h"

#define SV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SV4_TERMINATOR "aws4_request"
#define SV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SV4_SIGNATURE_PARAM "X-Amz-Signature"

#define SV4_MAX_AUTHZ 8192            /* Authorization header bytes */
#define SV4_MAX_PATH 8192             /* raw path bytes */
#define SV4_MAX_QUERY 16384           /* raw query bytes */
#define SV4_MAX_PAIRS 512             /* query pairs */
#define SV4_MAX_HEADER_NAME 128       /* one signed header name, with its NUL */
#define SV4_MAX_HEADER_VALUE 8192     /* one header value */
#define SV4_MAX_CANONICAL (1024 * 1024) /* any buffer built here */
#define SV4_MAX_SECRET 1024           /* secret access key bytes */
#define SV4_MAX_METHOD 16
#define SV4_MAX_CREDENTIAL 512        /* AKID/date/region/service/aws4_request */
#define SV4_MAX_EXPIRES 604800L
#define SV4_MAX_SKEW 315360000L       /* ten years: keeps the time arithmetic far from overflow */
#define SV4_TIME_LIMIT (1LL << 50)

typedef enum carillon_sigv4_status sv4_status;

/* ---------------------------------------------------------------------------------------------
 * Growable, bounded byte buffer (always NUL-terminated once anything was written). */

struct sv4_buf {
	char *p;
	size_t len;
	size_t cap;
	bool err;
};

static bool sv4_buf_reserve(struct sv4_buf *b, size_t extra)
{
	if (b->err)
		return false;
	if (extra > SV4_MAX_CANONICAL - b->len) {
		b->err = true;
		return false;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->err = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void sv4_buf_put(struct sv4_buf *b, const char *s, size_t n)
{
	if (!sv4_buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sv4_buf_putc(struct sv4_buf *b, char c)
{
	if (!b->err && b->len < SV4_MAX_CANONICAL && b->len + 2 <= b->cap) { /* room for it and the NUL */
		b->p[b->len++] = c;
		b->p[b->len] = '\0';
		return;
	}
	sv4_buf_put(b, &c, 1);
}

static void sv4_buf_puts(struct sv4_buf *b, const char *s) { sv4_buf_put(b, s, strlen(s)); }

static void sv4_buf_free(struct sv4_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------------------------------------
 * Character classes, percent-decoding and encoding. */

enum sv4_enc {
	SV4_ENC_AWS,  /* RFC 3986 unreserved set A-Za-z0-9-_.~ */
	SV4_ENC_JS,   /* encodeURIComponent: unreserved plus !*'() */
	SV4_ENC_PATH, /* unreserved plus '/' (per-segment encoding of a whole path) */
};

static bool sv4_is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

static bool sv4_is_digit(char c) { return c >= '0' && c <= '9'; }

static bool sv4_is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '.' || c == '~';
}

static bool sv4_keeps(unsigned char c, enum sv4_enc enc)
{
	if (sv4_is_unreserved(c))
		return true;
	if (enc == SV4_ENC_PATH)
		return c == '/';
	if (enc == SV4_ENC_JS)
		return c == '!' || c == '*' || c == '\'' || c == '(' || c == ')';
	return false;
}

static void sv4_encode(struct sv4_buf *b, const char *s, size_t n, enum sv4_enc enc)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0; /* start of the bytes kept as they are, not yet copied */
	for (size_t i = 0; i < n && !b->err; i++) {
		unsigned char c = (unsigned char)s[i];
		if (sv4_keeps(c, enc))
			continue;
		if (i > run)
			sv4_buf_put(b, s + run, i - run);
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		sv4_buf_put(b, e, sizeof(e));
		run = i + 1;
	}
	if (n > run)
		sv4_buf_put(b, s + run, n - run);
}

/* Decodes the byte at s[*i] (a literal or a %XX escape) and advances *i past it. */
static bool sv4_decode_byte(const char *s, size_t n, size_t *i, char *out)
{
	if (s[*i] != '%') {
		*out = s[(*i)++];
		return true;
	}
	if (n - *i < 3)
		return false;
	int hi = carillon_hexval(s[*i + 1]), lo = carillon_hexval(s[*i + 2]);
	if (hi < 0 || lo < 0)
		return false;
	*out = (char)((hi << 4) | lo);
	*i += 3;
	return true;
}

static bool sv4_escapes_ok(const char *s, size_t n)
{
	char c;
	for (size_t i = 0; i < n;)
		if (!sv4_decode_byte(s, n, &i, &c))
			return false;
	return true;
}

/* Percent-decodes into a growable buffer (NUL bytes allowed: lengths are explicit). */
static bool sv4_decode(struct sv4_buf *b, const char *s, size_t n)
{
	char c;
	for (size_t i = 0; i < n;) {
		if (!sv4_decode_byte(s, n, &i, &c))
			return false;
		sv4_buf_putc(b, c);
	}
	return !b->err;
}

/* Percent-decodes into a fixed C string; fails on a bad escape, a NUL byte, or overflow. */
static bool sv4_decode_into(const char *s, size_t n, char *dst, size_t size)
{
	size_t o = 0;
	char c;
	for (size_t i = 0; i < n;) {
		if (!sv4_decode_byte(s, n, &i, &c) || c == '\0' || o + 1 >= size)
			return false;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return true;
}

/* Copies n bytes into a fixed C string; fails when empty, too long, or on a byte outside 0x21..0x7e. */
static bool sv4_copy_token(const char *s, size_t n, char *dst, size_t size)
{
	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

static int sv4_cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	size_t m = an < bn ? an : bn;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c;
	return (an > bn) - (an < bn);
}

/* ---------------------------------------------------------------------------------------------
 * Dates. */

static int sv4_num(const char *s, int digits)
{
	int v = 0;
	for (int i = 0; i < digits; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static bool sv4_all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!sv4_is_digit(s[i]))
			return false;
	return true;
}

static int sv4_days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYYMMDD, a real calendar day. */
static bool sv4_ymd_ok(const char *s, int *y, int *m, int *d)
{
	if (!sv4_all_digits(s, 8))
		return false;
	*y = sv4_num(s, 4);
	*m = sv4_num(s + 4, 2);
	*d = sv4_num(s + 6, 2);
	return *m >= 1 && *m <= 12 && *d >= 1 && *d <= sv4_days_in_month(*y, *m);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era-based civil calendar arithmetic). */
static long long sv4_days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* YYYYMMDDTHHMMSSZ → seconds since the epoch. */
static bool sv4_amz_date_parse(const char *s, long long *out)
{
	int y, mo, d;
	if (strnlen(s, 17) != 16 || s[8] != 'T' || s[15] != 'Z' || !sv4_ymd_ok(s, &y, &mo, &d) ||
	    !sv4_all_digits(s + 9, 6))
		return false;
	int h = sv4_num(s + 9, 2), mi = sv4_num(s + 11, 2), se = sv4_num(s + 13, 2);
	if (h > 23 || mi > 59 || se > 60)
		return false;
	*out = sv4_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return true;
}

/* ---------------------------------------------------------------------------------------------
 * Validation of a filled auth structure. */

static bool sv4_fits(const char *s, size_t size) { return strnlen(s, size) < size; }

static bool sv4_header_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* The one pseudo-header a signature may list: HTTP/2's name for the host. */
static bool sv4_is_authority(const char *name, size_t len)
{
	return len == 10 && memcmp(name, ":authority", 10) == 0;
}

/* ';'-separated lower-case header names (or `:authority`), none empty; reports whether the host
 * ("host" or ":authority") is among them. */
static bool sv4_signed_headers_ok(const char *sh, bool *has_host)
{
	size_t len = 0;
	*has_host = false;
	for (const char *p = sh;; p++) {
		if (*p == ';' || *p == '\0') {
			if (len == 0 || len >= SV4_MAX_HEADER_NAME)
				return false;
			if (*(p - len) == ':' && !sv4_is_authority(p - len, len))
				return false;
			if ((len == 4 && memcmp(p - 4, "host", 4) == 0) || sv4_is_authority(p - len, len))
				*has_host = true;
			if (*p == '\0')
				return true;
			len = 0;
		} else if (*p == ':' && len == 0) {
			len++;
		} else if (!sv4_header_name_char((unsigned char)*p)) {
			return false;
		} else {
			len++;
		}
	}
}

static bool sv4_signature_ok(const char *sig)
{
	if (strnlen(sig, 65) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!sv4_is_digit(sig[i]) && !(sig[i] >= 'a' && sig[i] <= 'f'))
			return false;
	return true;
}

/* Everything but the signature: fields terminated and well-formed, scope date == X-Amz-Date day. */
static sv4_status sv4_check_fields(const struct carillon_sigv4_auth *a)
{
	int y, m, d;
	long long t;
	bool has_host;
	if (!sv4_fits(a->access_key_id, sizeof(a->access_key_id)) || !sv4_fits(a->date, sizeof(a->date)) ||
	    !sv4_fits(a->region, sizeof(a->region)) || !sv4_fits(a->service, sizeof(a->service)) ||
	    !sv4_fits(a->amz_date, sizeof(a->amz_date)) || !sv4_fits(a->signed_headers, sizeof(a->signed_headers)) ||
	    !sv4_fits(a->security_token, sizeof(a->security_token)))
		return CARILLON_SIGV4_MALFORMED;
	if (!a->access_key_id[0] || !a->region[0] || !a->service[0] || strlen(a->date) != 8 ||
	    !sv4_ymd_ok(a->date, &y, &m, &d) || !sv4_amz_date_parse(a->amz_date, &t))
		return CARILLON_SIGV4_MALFORMED;
	if (!sv4_signed_headers_ok(a->signed_headers, &has_host) || !has_host)
		return CARILLON_SIGV4_MALFORMED;
	if (memcmp(a->date, a->amz_date, 8) != 0)
		return CARILLON_SIGV4_BAD_SCOPE;
	return CARILLON_SIGV4_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Query strings. */

/* The next non-empty '&'-separated piece of q[*pos..n). */
static bool sv4_next_piece(const char *q, size_t n, size_t *pos, const char **piece, size_t *len)
{
	while (*pos < n) {
		const char *start = q + *pos;
		const char *amp = memchr(start, '&', n - *pos);
		size_t l = amp ? (size_t)(amp - start) : n - *pos;
		*pos += l + (amp ? 1 : 0);
		if (l) {
			*piece = start;
			*len = l;
			return true;
		}
	}
	return false;
}

/* Splits "name=value" on the first '='; without one the value is empty. */
static void sv4_split_pair(const char *p, size_t n, size_t *klen, const char **v, size_t *vlen)
{
	const char *eq = memchr(p, '=', n);
	*klen = eq ? (size_t)(eq - p) : n;
	*v = eq ? eq + 1 : p + n;
	*vlen = eq ? n - *klen - 1 : 0;
}

/* Length of the raw query, or false when it is longer than allowed. NULL counts as empty. */
static bool sv4_query_len(const char *q, size_t *n)
{
	*n = q ? strnlen(q, SV4_MAX_QUERY + 1) : 0;
	return *n <= SV4_MAX_QUERY;
}

/* Decoded value of the query parameter `name` (decoded name compared exactly). */
static bool sv4_query_get(const char *q, const char *name, char *dst, size_t size)
{
	size_t n, pos = 0, len, klen, vlen;
	const char *piece, *v;
	char key[64];
	if (!sv4_query_len(q, &n))
		return false;
	while (sv4_next_piece(q, n, &pos, &piece, &len)) {
		sv4_split_pair(piece, len, &klen, &v, &vlen);
		if (sv4_decode_into(piece, klen, key, sizeof(key)) && strcmp(key, name) == 0)
			return sv4_decode_into(v, vlen, dst, size);
	}
	return false;
}

enum sv4_qmode {
	SV4_Q_RAW, /* pairs as received */
	SV4_Q_JS,  /* decoded, re-encoded as encodeURIComponent does */
	SV4_Q_AWS, /* decoded, re-encoded with the RFC 3986 unreserved set */
};

struct sv4_qpair {
	size_t koff, klen, voff, vlen; /* into the arena while it may still move */
	const char *k, *v;             /* resolved once the arena is complete */
};

struct sv4_qbuild {
	enum sv4_qmode mode;
	bool skip_signature;
	struct sv4_buf arena; /* the re-encoded names and values */
	struct sv4_buf tmp;   /* scratch for decoding */
	struct sv4_qpair *pairs;
	size_t count;
};

static bool sv4_emit_part(struct sv4_qbuild *qb, const char *s, size_t n)
{
	if (qb->mode == SV4_Q_RAW) {
		sv4_buf_put(&qb->arena, s, n);
		return !qb->arena.err;
	}
	qb->tmp.len = 0;
	if (!sv4_decode(&qb->tmp, s, n))
		return false;
	sv4_encode(&qb->arena, qb->tmp.p, qb->tmp.len, qb->mode == SV4_Q_JS ? SV4_ENC_JS : SV4_ENC_AWS);
	return !qb->arena.err;
}

static bool sv4_is_signature_name(struct sv4_qbuild *qb, const char *k, size_t klen, bool *is_sig)
{
	qb->tmp.len = 0;
	if (!sv4_decode(&qb->tmp, k, klen))
		return false;
	*is_sig = qb->tmp.len == strlen(SV4_SIGNATURE_PARAM) &&
		  memcmp(qb->tmp.p, SV4_SIGNATURE_PARAM, qb->tmp.len) == 0;
	return true;
}

static sv4_status sv4_add_pair(struct sv4_qbuild *qb, const char *piece, size_t len)
{
	size_t klen, vlen;
	const char *v;
	bool is_sig = false;
	sv4_split_pair(piece, len, &klen, &v, &vlen);
	if (!sv4_escapes_ok(piece, len))
		return CARILLON_SIGV4_MALFORMED;
	if (qb->skip_signature && !sv4_is_signature_name(qb, piece, klen, &is_sig))
		return CARILLON_SIGV4_MALFORMED;
	if (is_sig)
		return CARILLON_SIGV4_OK;
	if (qb->count >= SV4_MAX_PAIRS)
		return CARILLON_SIGV4_MALFORMED;
	struct sv4_qpair *p = &qb->pairs[qb->count++];
	p->koff = qb->arena.len;
	if (!sv4_emit_part(qb, piece, klen))
		return CARILLON_SIGV4_MALFORMED;
	p->klen = qb->arena.len - p->koff;
	p->voff = qb->arena.len;
	if (!sv4_emit_part(qb, v, vlen))
		return CARILLON_SIGV4_MALFORMED;
	p->vlen = qb->arena.len - p->voff;
	return CARILLON_SIGV4_OK;
}

static int sv4_pair_cmp(const void *x, const void *y)
{
	const struct sv4_qpair *a = x, *b = y;
	int c = sv4_cmp_bytes(a->k, a->klen, b->k, b->klen);
	return c ? c : sv4_cmp_bytes(a->v, a->vlen, b->v, b->vlen);
}

static void sv4_join_pairs(struct sv4_qbuild *qb, struct sv4_buf *out)
{
	for (size_t i = 0; i < qb->count; i++) {
		qb->pairs[i].k = qb->arena.p ? qb->arena.p + qb->pairs[i].koff : "";
		qb->pairs[i].v = qb->arena.p ? qb->arena.p + qb->pairs[i].voff : "";
	}
	if (qb->count > 1)
		qsort(qb->pairs, qb->count, sizeof(*qb->pairs), sv4_pair_cmp);
	for (size_t i = 0; i < qb->count; i++) {
		if (i)
			sv4_buf_putc(out, '&');
		sv4_buf_put(out, qb->pairs[i].k, qb->pairs[i].klen);
		sv4_buf_putc(out, '=');
		sv4_buf_put(out, qb->pairs[i].v, qb->pairs[i].vlen);
	}
}

static sv4_status sv4_canonical_query(const char *q, enum sv4_qmode mode, bool skip_signature, struct sv4_buf *out)
{
	size_t n, pos = 0, len;
	const char *piece;
	if (!sv4_query_len(q, &n))
		return CARILLON_SIGV4_MALFORMED;
	if (n == 0)
		return CARILLON_SIGV4_OK;
	struct sv4_qbuild qb = {.mode = mode, .skip_signature = skip_signature};
	qb.pairs = calloc(SV4_MAX_PAIRS, sizeof(*qb.pairs));
	sv4_status st = qb.pairs ? CARILLON_SIGV4_OK : CARILLON_SIGV4_MALFORMED;
	while (st == CARILLON_SIGV4_OK && sv4_next_piece(q, n, &pos, &piece, &len))
		st = sv4_add_pair(&qb, piece, len);
	if (st == CARILLON_SIGV4_OK)
		sv4_join_pairs(&qb, out);
	free(qb.pairs);
	sv4_buf_free(&qb.arena);
	sv4_buf_free(&qb.tmp);
	return st == CARILLON_SIGV4_OK && out->err ? CARILLON_SIGV4_MALFORMED : st;
}

/* ---------------------------------------------------------------------------------------------
 * Canonical request. */

static bool sv4_method_ok(const char *m)
{
	size_t n = m ? strnlen(m, SV4_MAX_METHOD + 1) : 0;
	if (n == 0 || n > SV4_MAX_METHOD)
		return false;
	for (size_t i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	return true;
}

/* Each segment of the raw (still encoded) path URI-encoded once more: "%3A" → "%253A". */
static sv4_status sv4_canonical_uri(const char *path, struct sv4_buf *out)
{
	if (!path || !path[0]) {
		sv4_buf_putc(out, '/');
		return CARILLON_SIGV4_OK;
	}
	size_t n = strnlen(path, SV4_MAX_PATH + 1);
	if (n > SV4_MAX_PATH || path[0] != '/' || !sv4_escapes_ok(path, n))
		return CARILLON_SIGV4_MALFORMED;
	sv4_encode(out, path, n, SV4_ENC_PATH);
	return CARILLON_SIGV4_OK;
}

/* Trimmed, runs of whitespace collapsed to one space, optionally lower-cased. */
static void sv4_put_header_value(struct sv4_buf *b, const char *v, size_t n, bool lower)
{
	bool started = false, space = false;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (sv4_is_ws(c)) {
			space = started;
			continue;
		}
		if (space)
			sv4_buf_putc(b, ' ');
		space = false;
		started = true;
		sv4_buf_putc(b, lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
}

static sv4_status sv4_canonical_header(const struct carillon_sigv4_request *req, const char *name, size_t len,
				       bool lower_host, struct sv4_buf *out)
{
	char key[SV4_MAX_HEADER_NAME];
	if (len == 0 || len >= sizeof(key))
		return CARILLON_SIGV4_MALFORMED;
	memcpy(key, name, len);
	key[len] = '\0';
	bool host = strcmp(key, "host") == 0 || sv4_is_authority(key, len);
	const char *v = req->header ? req->header(req->header_ctx, host ? "host" : key) : NULL;
	if (!v)
		return CARILLON_SIGV4_MISMATCH;
	size_t vn = strnlen(v, SV4_MAX_HEADER_VALUE + 1);
	if (vn > SV4_MAX_HEADER_VALUE)
		return CARILLON_SIGV4_MALFORMED;
	sv4_buf_put(out, key, len);
	sv4_buf_putc(out, ':');
	sv4_put_header_value(out, v, vn, lower_host && host);
	sv4_buf_putc(out, '\n');
	return CARILLON_SIGV4_OK;
}

static sv4_status sv4_canonical_headers(const struct carillon_sigv4_request *req, const char *signed_headers,
					bool lower_host, struct sv4_buf *out)
{
	const char *p = signed_headers;
	for (;;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);
		sv4_status st = sv4_canonical_header(req, p, len, lower_host, out);
		if (st != CARILLON_SIGV4_OK)
			return st;
		if (!semi)
			return out->err ? CARILLON_SIGV4_MALFORMED : CARILLON_SIGV4_OK;
		p = semi + 1;
	}
}

static bool sv4_unsigned_payload(const struct carillon_sigv4_request *req, const struct carillon_sigv4_auth *auth)
{
	char v[sizeof(SV4_UNSIGNED_PAYLOAD) + 1];
	const char *h = req->header ? req->header(req->header_ctx, "x-amz-content-sha256") : NULL;
	if (h && strcmp(h, SV4_UNSIGNED_PAYLOAD) == 0)
		return true;
	return auth->presigned && sv4_query_get(req->raw_query, "X-Amz-Content-Sha256", v, sizeof(v)) &&
	       strcmp(v, SV4_UNSIGNED_PAYLOAD) == 0;
}

static void sv4_payload_hash(const struct carillon_sigv4_request *req, const struct carillon_sigv4_auth *auth,
			     char out[65])
{
	if (sv4_unsigned_payload(req, auth))
		memcpy(out, SV4_UNSIGNED_PAYLOAD, sizeof(SV4_UNSIGNED_PAYLOAD));
	else if (auth->presigned)
		carillon_sha256_hex("", 0, out);
	else
		carillon_sha256_hex(req->body, req->body_len, out);
}

static sv4_status sv4_canonical_request(const struct carillon_sigv4_request *req,
					const struct carillon_sigv4_auth *auth, enum sv4_qmode mode,
					struct sv4_buf *out)
{
	char payload[65];
	if (!sv4_method_ok(req->method) || (!req->body && req->body_len))
		return CARILLON_SIGV4_MALFORMED;
	sv4_buf_puts(out, req->method);
	sv4_buf_putc(out, '\n');
	sv4_status st = sv4_canonical_uri(req->raw_path, out);
	sv4_buf_putc(out, '\n');
	if (st == CARILLON_SIGV4_OK)
		st = sv4_canonical_query(req->raw_query, mode, auth->presigned, out);
	sv4_buf_putc(out, '\n');
	if (st == CARILLON_SIGV4_OK)
		st = sv4_canonical_headers(req, auth->signed_headers, auth->presigned, out);
	if (st != CARILLON_SIGV4_OK)
		return st;
	sv4_buf_putc(out, '\n');
	sv4_buf_puts(out, auth->signed_headers);
	sv4_buf_putc(out, '\n');
	sv4_payload_hash(req, auth, payload);
	sv4_buf_puts(out, payload);
	return out->err ? CARILLON_SIGV4_MALFORMED : CARILLON_SIGV4_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Crypto. */

static void sv4_hmac(const unsigned char *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, klen);
	crypto_auth_hmacsha256_update(&st, msg, mlen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

static bool sv4_secret_ok(const char *secret) { return secret && strnlen(secret, SV4_MAX_SECRET + 1) <= SV4_MAX_SECRET; }

/* HMAC chain "AWS4"+secret → date → region → service → "aws4_request". */
static void sv4_derive_key(const struct carillon_sigv4_auth *a, const char *secret, unsigned char key[32])
{
	unsigned char k0[4 + SV4_MAX_SECRET], k1[32], k2[32], k3[32];
	size_t sn = strlen(secret);
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, sn);
	sv4_hmac(k0, 4 + sn, a->date, strlen(a->date), k1);
	sv4_hmac(k1, 32, a->region, strlen(a->region), k2);
	sv4_hmac(k2, 32, a->service, strlen(a->service), k3);
	sv4_hmac(k3, 32, SV4_TERMINATOR, strlen(SV4_TERMINATOR), key);
	sodium_memzero(k0, sizeof(k0));
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	sodium_memzero(k3, sizeof(k3));
}

/* The signing keys of recent (secret, scope) pairs. The chain above is four HMACs that depend only
 * on the secret and the scope (date, region, service), which a client repeats on every request of
 * its day, so a busy credential derives its key once a day instead of once a request. Direct
 * mapped: a slot is chosen and tagged by a keyed BLAKE2b of the secret and the scope (a random key
 * per process: a client cannot aim scopes at one slot or learn anything from the tags); a slot
 * answers only for a tag equal in all 32 bytes, and no secret is kept. One per thread: the loop's. */
#define SV4_KEY_SLOTS 64

struct sv4_key_slot {
	bool used;
	unsigned char tag[32];
	unsigned char key[32];
};

static _Thread_local struct {
	bool keyed;
	unsigned char hash_key[crypto_generichash_KEYBYTES];
	struct sv4_key_slot slot[SV4_KEY_SLOTS];
} sv4_keys;

static void sv4_key_tag(const struct carillon_sigv4_auth *a, const char *secret, unsigned char tag[32])
{
	crypto_generichash_state st;
	if (!sv4_keys.keyed) {
		randombytes_buf(sv4_keys.hash_key, sizeof(sv4_keys.hash_key));
		sv4_keys.keyed = true;
	}
	crypto_generichash_init(&st, sv4_keys.hash_key, sizeof(sv4_keys.hash_key), 32);
	/* Each part with its terminating NUL, so that no two (secret, scope) pairs hash the same bytes. */
	crypto_generichash_update(&st, (const unsigned char *)secret, strlen(secret) + 1);
	crypto_generichash_update(&st, (const unsigned char *)a->date, strlen(a->date) + 1);
	crypto_generichash_update(&st, (const unsigned char *)a->region, strlen(a->region) + 1);
	crypto_generichash_update(&st, (const unsigned char *)a->service, strlen(a->service) + 1);
	crypto_generichash_final(&st, tag, 32);
	sodium_memzero(&st, sizeof(st));
}

static void sv4_signing_key(const struct carillon_sigv4_auth *a, const char *secret, unsigned char key[32])
{
	unsigned char tag[32];
	sv4_key_tag(a, secret, tag);
	struct sv4_key_slot *slot = &sv4_keys.slot[(tag[0] | (unsigned)tag[1] << 8) % SV4_KEY_SLOTS];
	if (slot->used && sodium_memcmp(slot->tag, tag, sizeof(tag)) == 0) {
		memcpy(key, slot->key, 32);
	} else {
		sv4_derive_key(a, secret, key);
		memcpy(slot->tag, tag, sizeof(tag));
		memcpy(slot->key, key, 32);
		slot->used = true;
	}
	sodium_memzero(tag, sizeof(tag));
}

static bool sv4_compute(const struct carillon_sigv4_auth *a, const char *secret, const struct sv4_buf *creq,
			char out[65])
{
	char creq_hash[65], sts[512];
	unsigned char key[32], sig[32];
	carillon_sha256_hex(creq->p ? creq->p : "", creq->len, creq_hash);
	int n = snprintf(sts, sizeof(sts), "%s\n%s\n%s/%s/%s/%s\n%s", SV4_ALGORITHM, a->amz_date, a->date, a->region,
			 a->service, SV4_TERMINATOR, creq_hash);
	if (n < 0 || (size_t)n >= sizeof(sts))
		return false;
	sv4_signing_key(a, secret, key);
	sv4_hmac(key, sizeof(key), sts, (size_t)n, sig);
	sodium_bin2hex(out, 65, sig, sizeof(sig));
	sodium_memzero(key, sizeof(key));
	return true;
}

void carillon_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, data ? data : (const void *)"", data ? len : 0);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

/* ---------------------------------------------------------------------------------------------
 * Parsing: credential scope, Authorization header, presigned query. */

/* AKID/YYYYMMDD/region/service/aws4_request */
static sv4_status sv4_parse_credential(const char *cred, struct carillon_sigv4_auth *out)
{
	char *dst[] = {out->access_key_id, out->date, out->region, out->service};
	size_t size[] = {sizeof(out->access_key_id), sizeof(out->date), sizeof(out->region), sizeof(out->service)};
	const char *p = cred;
	for (size_t i = 0; i < 4; i++) {
		const char *slash = strchr(p, '/');
		if (!slash || !sv4_copy_token(p, (size_t)(slash - p), dst[i], size[i]))
			return CARILLON_SIGV4_MALFORMED;
		p = slash + 1;
	}
	if (strchr(p, '/') || !p[0])
		return CARILLON_SIGV4_MALFORMED;
	return strcmp(p, SV4_TERMINATOR) == 0 ? CARILLON_SIGV4_OK : CARILLON_SIGV4_BAD_SCOPE;
}

/* 64 hex digits, stored lower-case. */
static bool sv4_take_signature(const char *s, size_t n, char out[65])
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < 64; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!sv4_is_digit(c) && !(c >= 'a' && c <= 'f'))
			return false;
		out[i] = c;
	}
	out[64] = '\0';
	return true;
}

enum { SV4_AZ_CREDENTIAL = 1, SV4_AZ_SIGNED_HEADERS = 2, SV4_AZ_SIGNATURE = 4 };

/* One "Key=Value" part of the Authorization header (n excludes the separating comma). */
static sv4_status sv4_authz_part(const char *p, size_t n, struct carillon_sigv4_auth *out, char *cred,
				 unsigned *seen)
{
	while (n && sv4_is_ws(p[n - 1]))
		n--;
	const char *eq = memchr(p, '=', n);
	if (!eq)
		return CARILLON_SIGV4_MALFORMED;
	size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
	const char *v = eq + 1;
	bool ok;
	unsigned bit;
	if (klen == 10 && memcmp(p, "Credential", 10) == 0) {
		bit = SV4_AZ_CREDENTIAL;
		ok = sv4_copy_token(v, vlen, cred, SV4_MAX_CREDENTIAL);
	} else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0) {
		bit = SV4_AZ_SIGNED_HEADERS;
		ok = sv4_copy_token(v, vlen, out->signed_headers, sizeof(out->signed_headers));
	} else if (klen == 9 && memcmp(p, "Signature", 9) == 0) {
		bit = SV4_AZ_SIGNATURE;
		ok = sv4_take_signature(v, vlen, out->signature);
	} else {
		return CARILLON_SIGV4_MALFORMED;
	}
	if (!ok || (*seen & bit))
		return CARILLON_SIGV4_MALFORMED;
	*seen |= bit;
	return CARILLON_SIGV4_OK;
}

static sv4_status sv4_parse_authz(const char *h, struct carillon_sigv4_auth *out, char *cred)
{
	size_t n = strnlen(h, SV4_MAX_AUTHZ + 1), alen = strlen(SV4_ALGORITHM);
	unsigned seen = 0;
	if (n > SV4_MAX_AUTHZ)
		return CARILLON_SIGV4_MALFORMED;
	const char *p = h, *end = h + n;
	while (p < end && sv4_is_ws(*p))
		p++;
	if ((size_t)(end - p) <= alen || memcmp(p, SV4_ALGORITHM, alen) != 0 || !sv4_is_ws(p[alen]))
		return CARILLON_SIGV4_MALFORMED;
	for (p += alen; p < end;) {
		while (p < end && sv4_is_ws(*p))
			p++;
		if (p == end)
			break;
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		sv4_status st = sv4_authz_part(p, (size_t)(stop - p), out, cred, &seen);
		if (st != CARILLON_SIGV4_OK)
			return st;
		p = comma ? comma + 1 : end;
	}
	return seen == (SV4_AZ_CREDENTIAL | SV4_AZ_SIGNED_HEADERS | SV4_AZ_SIGNATURE) ? CARILLON_SIGV4_OK
										     : CARILLON_SIGV4_MALFORMED;
}

/* Copies a header value into a fixed field; false when it does not fit. */
static bool sv4_copy_header(const char *v, char *dst, size_t size)
{
	size_t n = strnlen(v, size);
	if (n >= size)
		return false;
	memcpy(dst, v, n + 1);
	return true;
}

static sv4_status sv4_parse_header_form(const struct carillon_sigv4_request *req, const char *authz,
					struct carillon_sigv4_auth *out)
{
	char cred[SV4_MAX_CREDENTIAL];
	sv4_status st = sv4_parse_authz(authz, out, cred);
	if (st != CARILLON_SIGV4_OK)
		return st;
	const char *date = req->header(req->header_ctx, "x-amz-date");
	if (!date || !sv4_copy_header(date, out->amz_date, sizeof(out->amz_date)))
		return CARILLON_SIGV4_MALFORMED;
	const char *token = req->header(req->header_ctx, "x-amz-security-token");
	if (token && !sv4_copy_header(token, out->security_token, sizeof(out->security_token)))
		return CARILLON_SIGV4_MALFORMED;
	st = sv4_parse_credential(cred, out);
	return st == CARILLON_SIGV4_OK ? sv4_check_fields(out) : st;
}

enum sv4_qfield {
	SV4_QF_ALGORITHM,
	SV4_QF_CREDENTIAL,
	SV4_QF_DATE,
	SV4_QF_EXPIRES,
	SV4_QF_SIGNED_HEADERS,
	SV4_QF_TOKEN,
	SV4_QF_SIGNATURE,
	SV4_QF_COUNT
};

static const char *const sv4_qfield_names[SV4_QF_COUNT] = {
	"X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",      "X-Amz-Expires",
	"X-Amz-SignedHeaders", "X-Amz-Security-Token", SV4_SIGNATURE_PARAM,
};

struct sv4_scan {
	char algorithm[32];
	char credential[SV4_MAX_CREDENTIAL];
	char expires[16];
	char signature[80];
	char *dst[SV4_QF_COUNT];
	size_t size[SV4_QF_COUNT];
	unsigned seen; /* bit per enum sv4_qfield */
	bool bad;      /* a bad escape, a duplicate, or a value that does not fit */
};

static void sv4_scan_init(struct sv4_scan *sc, struct carillon_sigv4_auth *out)
{
	memset(sc, 0, sizeof(*sc));
	sc->dst[SV4_QF_ALGORITHM] = sc->algorithm;
	sc->size[SV4_QF_ALGORITHM] = sizeof(sc->algorithm);
	sc->dst[SV4_QF_CREDENTIAL] = sc->credential;
	sc->size[SV4_QF_CREDENTIAL] = sizeof(sc->credential);
	sc->dst[SV4_QF_DATE] = out->amz_date;
	sc->size[SV4_QF_DATE] = sizeof(out->amz_date);
	sc->dst[SV4_QF_EXPIRES] = sc->expires;
	sc->size[SV4_QF_EXPIRES] = sizeof(sc->expires);
	sc->dst[SV4_QF_SIGNED_HEADERS] = out->signed_headers;
	sc->size[SV4_QF_SIGNED_HEADERS] = sizeof(out->signed_headers);
	sc->dst[SV4_QF_TOKEN] = out->security_token;
	sc->size[SV4_QF_TOKEN] = sizeof(out->security_token);
	sc->dst[SV4_QF_SIGNATURE] = sc->signature;
	sc->size[SV4_QF_SIGNATURE] = sizeof(sc->signature);
}

static void sv4_scan_piece(struct sv4_scan *sc, const char *piece, size_t len)
{
	size_t klen, vlen;
	const char *v;
	char name[64];
	if (!sv4_escapes_ok(piece, len)) {
		sc->bad = true;
		return;
	}
	sv4_split_pair(piece, len, &klen, &v, &vlen);
	if (!sv4_decode_into(piece, klen, name, sizeof(name)))
		return; /* too long or odd: not one of ours */
	for (unsigned i = 0; i < SV4_QF_COUNT; i++) {
		if (strcmp(name, sv4_qfield_names[i]) != 0)
			continue;
		if ((sc->seen & (1u << i)) || !sv4_decode_into(v, vlen, sc->dst[i], sc->size[i]))
			sc->bad = true;
		sc->seen |= 1u << i;
		return;
	}
}

static bool sv4_parse_expires(const char *s, long *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 7 || !sv4_all_digits(s, n))
		return false;
	*out = strtol(s, NULL, 10);
	return *out >= 1 && *out <= SV4_MAX_EXPIRES;
}

static sv4_status sv4_finish_presigned(struct sv4_scan *sc, struct carillon_sigv4_auth *out)
{
	const unsigned required = (1u << SV4_QF_COUNT) - 1u - (1u << SV4_QF_TOKEN);
	if (sc->bad || (sc->seen & required) != required || strcmp(sc->algorithm, SV4_ALGORITHM) != 0 ||
	    !sv4_parse_expires(sc->expires, &out->expires) ||
	    !sv4_take_signature(sc->signature, strlen(sc->signature), out->signature))
		return CARILLON_SIGV4_MALFORMED;
	out->presigned = true;
	sv4_status st = sv4_parse_credential(sc->credential, out);
	return st == CARILLON_SIGV4_OK ? sv4_check_fields(out) : st;
}

static sv4_status sv4_parse_presigned(const struct carillon_sigv4_request *req, struct carillon_sigv4_auth *out)
{
	const unsigned trigger = (1u << SV4_QF_ALGORITHM) | (1u << SV4_QF_CREDENTIAL) | (1u << SV4_QF_SIGNATURE);
	struct sv4_scan sc;
	size_t n, pos = 0, len;
	const char *piece;
	if (!sv4_query_len(req->raw_query, &n))
		return CARILLON_SIGV4_MALFORMED;
	sv4_scan_init(&sc, out);
	while (sv4_next_piece(req->raw_query, n, &pos, &piece, &len))
		sv4_scan_piece(&sc, piece, len);
	if (!(sc.seen & trigger)) {
		memset(out, 0, sizeof(*out));
		return CARILLON_SIGV4_MISSING;
	}
	return sv4_finish_presigned(&sc, out);
}

/* ---------------------------------------------------------------------------------------------
 * The signed-header rule. */

/* Whether the lower-case name (n bytes) is listed in SignedHeaders (`host` also as `:authority`). */
static bool sv4_is_signed(const char *signed_headers, const char *name, size_t n)
{
	bool host = n == 4 && memcmp(name, "host", 4) == 0;
	for (const char *p = signed_headers;;) {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);
		if ((len == n && memcmp(p, name, n) == 0) || (host && sv4_is_authority(p, len)))
			return true;
		if (!semi)
			return false;
		p = semi + 1;
	}
}

static bool sv4_must_be_signed(const char *lower, size_t n)
{
	return (n == 4 && !memcmp(lower, "host", 4)) || (n == 12 && !memcmp(lower, "content-type", 12)) ||
	       (n > 6 && !memcmp(lower, "x-amz-", 6));
}

/* Copies a header name for an error message; bytes outside the header-name alphabet become '?'. */
static void sv4_report_name(const char *lower, char *name, size_t size)
{
	if (!name || !size)
		return;
	size_t i = 0;
	for (; lower[i] && i + 1 < size; i++)
		name[i] = sv4_header_name_char((unsigned char)lower[i]) ? lower[i] : '?';
	name[i] = '\0';
}

/* One header name as received: lower-cased, then checked. A name too long to be listed in
 * SignedHeaders at all counts as unsigned when it is one that must be signed. */
static bool sv4_name_unsigned(const char *raw, const char *signed_headers, char *name, size_t size)
{
	char lower[SV4_MAX_HEADER_NAME];
	size_t n = 0;
	for (; raw[n] && n < sizeof(lower) - 1; n++)
		lower[n] = (raw[n] >= 'A' && raw[n] <= 'Z') ? (char)(raw[n] - 'A' + 'a') : raw[n];
	lower[n] = '\0';
	bool too_long = raw[n] != '\0';
	if (!sv4_must_be_signed(lower, n))
		return false;
	if (!too_long && sv4_is_signed(signed_headers, lower, n))
		return false;
	sv4_report_name(lower, name, size);
	return true;
}

bool carillon_sigv4_unsigned_header(const struct carillon_sigv4_request *req, const struct carillon_sigv4_auth *auth,
				    char *name, size_t size)
{
	/* Looked up by name, so the rule holds even when the caller cannot list every header. */
	static const char *const known[] = {"host", "x-amz-chime-bearer", "content-type", "x-amz-date",
					    "x-amz-security-token", "x-amz-content-sha256"};
	if (!req || !auth || !sv4_fits(auth->signed_headers, sizeof(auth->signed_headers)))
		return false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (req->header && req->header(req->header_ctx, known[i]) &&
		    !sv4_is_signed(auth->signed_headers, known[i], strlen(known[i]))) {
			sv4_report_name(known[i], name, size);
			return true;
		}
	}
	for (size_t i = 0; req->header_names && i < req->n_header_names; i++)
		if (req->header_names[i] && sv4_name_unsigned(req->header_names[i], auth->signed_headers, name, size))
			return true;
	return false;
}

static const char *sv4_no_header(void *ctx, const char *lower_name)
{
	(void)ctx;
	(void)lower_name;
	return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Public API. */

enum carillon_sigv4_status carillon_sigv4_parse(const struct carillon_sigv4_request *req,
						struct carillon_sigv4_auth *out)
{
	size_t qn;
	if (!req || !out)
		return CARILLON_SIGV4_MALFORMED;
	memset(out, 0, sizeof(*out));
	struct carillon_sigv4_request r = *req;
	if (!r.header)
		r.header = sv4_no_header;
	if (!sv4_query_len(r.raw_query, &qn) || (r.raw_path && strnlen(r.raw_path, SV4_MAX_PATH + 1) > SV4_MAX_PATH))
		return CARILLON_SIGV4_MALFORMED;
	const char *authz = r.header(r.header_ctx, "authorization");
	if (authz)
		return sv4_parse_header_form(&r, authz, out);
	sv4_status st = sv4_parse_presigned(&r, out);
	return st != CARILLON_SIGV4_MISSING && !r.allow_query_auth ? CARILLON_SIGV4_QUERY_AUTH : st;
}

enum carillon_sigv4_status carillon_sigv4_check_time(const struct carillon_sigv4_auth *auth, time_t now,
						     long max_skew_seconds)
{
	long long t;
	if (!auth || !sv4_fits(auth->amz_date, sizeof(auth->amz_date)) || !sv4_amz_date_parse(auth->amz_date, &t))
		return CARILLON_SIGV4_MALFORMED;
	long long skew = max_skew_seconds < 0 ? 0 : max_skew_seconds > SV4_MAX_SKEW ? SV4_MAX_SKEW : max_skew_seconds;
	long long n = (long long)now;
	if (n > SV4_TIME_LIMIT || n < -SV4_TIME_LIMIT)
		return CARILLON_SIGV4_EXPIRED;
	if (t - n > skew)
		return CARILLON_SIGV4_EXPIRED; /* signed in the future */
	if (!auth->presigned)
		return n - t > skew ? CARILLON_SIGV4_EXPIRED : CARILLON_SIGV4_OK;
	if (auth->expires < 1 || auth->expires > SV4_MAX_EXPIRES)
		return CARILLON_SIGV4_MALFORMED;
	return n > t + auth->expires + skew ? CARILLON_SIGV4_EXPIRED : CARILLON_SIGV4_OK;
}

static sv4_status sv4_verify_mode(const struct carillon_sigv4_request *req, const struct carillon_sigv4_auth *auth,
				  const char *secret, enum sv4_qmode mode)
{
	struct sv4_buf creq = {0};
	char sig[65];
	sv4_status st = sv4_canonical_request(req, auth, mode, &creq);
	if (st == CARILLON_SIGV4_OK && !sv4_compute(auth, secret, &creq, sig))
		st = CARILLON_SIGV4_MALFORMED;
	if (st == CARILLON_SIGV4_OK && sodium_memcmp(sig, auth->signature, 64) != 0)
		st = CARILLON_SIGV4_MISMATCH;
	sodium_memzero(sig, sizeof(sig));
	sv4_buf_free(&creq);
	return st;
}

enum carillon_sigv4_status carillon_sigv4_verify(const struct carillon_sigv4_request *req,
						 const struct carillon_sigv4_auth *auth, const char *secret)
{
	static const enum sv4_qmode presigned_modes[] = {SV4_Q_RAW, SV4_Q_JS, SV4_Q_AWS};
	if (!req || !auth)
		return CARILLON_SIGV4_MALFORMED;
	sv4_status st = sv4_check_fields(auth);
	if (st != CARILLON_SIGV4_OK)
		return st;
	if (!sv4_signature_ok(auth->signature))
		return CARILLON_SIGV4_MALFORMED;
	if (auth->presigned && !req->allow_query_auth)
		return CARILLON_SIGV4_QUERY_AUTH;
	if (carillon_sigv4_unsigned_header(req, auth, NULL, 0))
		return CARILLON_SIGV4_UNSIGNED_HEADER;
	if (!sv4_secret_ok(secret))
		return CARILLON_SIGV4_MISMATCH;
	if (!auth->presigned)
		return sv4_verify_mode(req, auth, secret, SV4_Q_AWS);
	for (size_t i = 0; i < sizeof(presigned_modes) / sizeof(presigned_modes[0]); i++) {
		st = sv4_verify_mode(req, auth, secret, presigned_modes[i]);
		if (st != CARILLON_SIGV4_MISMATCH)
			return st;
	}
	return CARILLON_SIGV4_MISMATCH;
}

void carillon_sigv4_sign_auth(const struct carillon_sigv4_request *req, struct carillon_sigv4_auth *auth,
			      const char *secret)
{
	struct sv4_buf creq = {0};
	char sig[65];
	if (!req || !auth)
		return;
	auth->signature[0] = '\0';
	if (!sv4_secret_ok(secret) || sv4_check_fields(auth) != CARILLON_SIGV4_OK)
		return;
	if (sv4_canonical_request(req, auth, SV4_Q_AWS, &creq) == CARILLON_SIGV4_OK &&
	    sv4_compute(auth, secret, &creq, sig))
		memcpy(auth->signature, sig, sizeof(sig));
	sv4_buf_free(&creq);
}
