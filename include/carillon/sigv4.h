/*
 * AWS Signature Version 4 verification (header form and presigned-query form).
 *
 * The verifier works on the request exactly as received: the raw path and raw
 * query (still percent-encoded), header values looked up through a callback,
 * and the body bytes. HMAC-SHA256 and SHA-256 come from libsodium.
 */
#ifndef CARILLON_SIGV4_H
#define CARILLON_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Returns the value of the header `lower_name` (lower-case), or NULL when absent.
 * The string must stay valid until the verification call returns. */
typedef const char *(*carillon_sigv4_header_fn)(void *ctx, const char *lower_name);

struct carillon_sigv4_request {
	const char *method;          /* "GET", "POST", ... */
	const char *raw_path;        /* as received, percent-encoded, no query, e.g. "/channels/arn%3Aaws..." */
	const char *raw_query;       /* as received after '?', without it; NULL or "" when none */
	carillon_sigv4_header_fn header;
	void *header_ctx;
	const unsigned char *body;   /* may be NULL when body_len == 0 */
	size_t body_len;
	/* Presigned (query-string) credentials are accepted only when this is set: GET /connect, whose
	 * browser clients cannot send headers. Every REST call needs the Authorization header form, whose
	 * signature covers the body. */
	bool allow_query_auth;
	/* Every header name of the request as received (any case; repeated names may repeat), so that an
	 * x-amz-* header added after signing is refused. NULL: only the names checked through `header`
	 * (x-amz-chime-bearer, content-type, x-amz-date, x-amz-security-token, x-amz-content-sha256). */
	const char *const *header_names;
	size_t n_header_names;
	/* The service the credential scope must name: the signing name of the operation's model
	 * ("mobiletargeting" for Pinpoint's routes). NULL: "chime". */
	const char *signing_name;
};

/* What the request claims: parsed from the Authorization header or the X-Amz-* query. */
struct carillon_sigv4_auth {
	bool presigned;              /* credentials came in the query string */
	char access_key_id[129];
	char date[9];                /* scope date, YYYYMMDD */
	char region[64];
	char service[64];
	char amz_date[17];           /* YYYYMMDDTHHMMSSZ */
	char signed_headers[1024];   /* "host;x-amz-date", lower-case, ';'-separated */
	char signature[65];          /* 64 lower-case hex digits */
	long expires;                /* presigned only: X-Amz-Expires seconds; 0 otherwise */
	char security_token[4096];   /* X-Amz-Security-Token (header or query), "" when absent */
};

enum carillon_sigv4_status {
	CARILLON_SIGV4_OK = 0,
	CARILLON_SIGV4_MISSING,      /* no Authorization header and no presigned query */
	CARILLON_SIGV4_MALFORMED,    /* present but unparsable / wrong algorithm / field too long */
	CARILLON_SIGV4_BAD_SCOPE,    /* scope date != X-Amz-Date day, or service/terminator wrong */
	CARILLON_SIGV4_EXPIRED,      /* outside the clock-skew window or past X-Amz-Expires */
	CARILLON_SIGV4_MISMATCH,     /* signature does not match */
	CARILLON_SIGV4_QUERY_AUTH,   /* presigned credentials on a request that does not allow them */
	CARILLON_SIGV4_UNSIGNED_HEADER, /* a header that must be signed is not in SignedHeaders */
};

/* Parse the claimed credentials from the request. Does no crypto. */
enum carillon_sigv4_status carillon_sigv4_parse(const struct carillon_sigv4_request *req,
						struct carillon_sigv4_auth *out);

/* Check the time window: |now - X-Amz-Date| <= max_skew_seconds, and for presigned requests
 * now <= X-Amz-Date + X-Amz-Expires + max_skew_seconds (and Expires within 1..604800). */
enum carillon_sigv4_status carillon_sigv4_check_time(const struct carillon_sigv4_auth *auth, time_t now,
						     long max_skew_seconds);

/* Recompute the signature with `secret` and compare in constant time.
 * Header form: the canonical URI is the raw path re-encoded per segment (double encoding, the
 * rule of every service but S3: "%3A" becomes "%253A"); the canonical query is the decoded pairs
 * re-encoded with the RFC 3986 unreserved set, sorted by name then value; the payload hash is the
 * SHA-256 of the body.
 * Presigned form (used by amazon-chime-sdk-js for GET /connect): the canonical query is built
 * without X-Amz-Signature, tried in up to three ways (raw pairs sorted; decoded then re-encoded as
 * JavaScript's encodeURIComponent does; decoded then re-encoded the RFC 3986 way), accepting if
 * any matches; the payload hash is SHA-256("") unless X-Amz-Content-Sha256 / UNSIGNED-PAYLOAD says otherwise.
 * A presigned request without req->allow_query_auth gives QUERY_AUTH (so does carillon_sigv4_parse);
 * an unsigned header that must be signed gives UNSIGNED_HEADER. */
enum carillon_sigv4_status carillon_sigv4_verify(const struct carillon_sigv4_request *req,
						 const struct carillon_sigv4_auth *auth, const char *secret);

/* The signed-header rule: `host`, `x-amz-chime-bearer`, `content-type` and every `x-amz-*` header
 * present in the request must be listed in SignedHeaders (the AWS SDKs, boto3 and the CLI sign them
 * all); otherwise whoever adds one after signing (a bearer, a security token) would act with it.
 * Returns true when some such header is unsigned, and copies its lower-case name into `name` (when
 * `name` is not NULL; truncated to `size`). carillon_sigv4_verify() applies it before any crypto. */
bool carillon_sigv4_unsigned_header(const struct carillon_sigv4_request *req, const struct carillon_sigv4_auth *auth,
				    char *name, size_t size);

/* Lower-case hex SHA-256 of data (65 bytes with the terminating NUL). */
void carillon_sha256_hex(const void *data, size_t len, char out[65]);

/* Sign a request (header form) – used by tests, by Carillon's own clients (bench, tools) and by the
 * outbound signer (sigv4_sign.h, which builds the request and the fields from a URL and headers).
 * Computes the signature for the given auth fields (access_key_id, date, region, service,
 * amz_date, signed_headers must be filled) and writes it into auth->signature. */
void carillon_sigv4_sign_auth(const struct carillon_sigv4_request *req, struct carillon_sigv4_auth *auth,
			      const char *secret);

#endif
