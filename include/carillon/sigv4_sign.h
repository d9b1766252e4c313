/*
 * Signing Carillon's own outbound requests (Lambda Invoke, Kinesis PutRecords) with AWS Signature
 * Version 4, header form. The canonicalisation is the verifier's (src/auth/sigv4.c,
 * carillon_sigv4_sign_auth): one implementation of the canonical URI, query and headers, whichever
 * way a request travels.
 *
 * What is signed: `host` (from the URL's authority, lower-cased, without the scheme's default port
 * — the Host header libcurl sends), `x-amz-date`, `x-amz-content-sha256` (the body's SHA-256), the
 * session token when there is one, and every header the caller passes except hop-by-hop ones and
 * empty ones ("Expect:" is libcurl's way of removing a header). The canonical URI is the URL's path
 * encoded once more per segment (every AWS service but S3); the query is re-encoded and sorted.
 */
#ifndef CARILLON_SIGV4_SIGN_H
#define CARILLON_SIGV4_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sign an outbound request (AWS Signature Version 4). Writes the header lines to add
 * ("Authorization: ...", "X-Amz-Date: ...", "X-Amz-Content-Sha256: ..." and, with a session token,
 * "X-Amz-Security-Token: ...") into out[] (each malloc'd; caller frees), returns the count or -1. */
int carillon_sigv4_sign(const char *method, const char *url, const char *const *headers, size_t n_headers,
			const void *body, size_t body_len, const char *region, const char *service,
			const char *access_key_id, const char *secret_key, const char *session_token,
			int64_t now_ms, char *out[4]);

/* Flags of carillon_sigv4_sign_ex. */
#define CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256 1u /* no X-Amz-Content-Sha256 header (as AWS's test suite) */

/* carillon_sigv4_sign with flags (carillon_sigv4_sign passes 0). */
int carillon_sigv4_sign_ex(const char *method, const char *url, const char *const *headers, size_t n_headers,
			   const void *body, size_t body_len, const char *region, const char *service,
			   const char *access_key_id, const char *secret_key, const char *session_token,
			   int64_t now_ms, unsigned flags, char *out[4]);

/* The credentials of the standard AWS environment variables, read when called: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (NULL when unset or empty), and the region, CARILLON_REGION
 * (carillon_cfg.region, the region of Carillon's own ARNs). The strings belong to the environment
 * and the settings. */
struct carillon_aws_credentials {
	const char *access_key_id;
	const char *secret_key;
	const char *session_token;
	const char *region;
};

/* Fills *c; true when both the key id and the secret are set (requests are then signed). */
bool carillon_aws_credentials_get(struct carillon_aws_credentials *c);

/* For callers: sign with the environment's credentials, when there are any. Returns the number of
 * header lines written to out[] (0 when no credentials are set: the request goes unsigned), or -1. */
int carillon_sigv4_sign_env(const char *method, const char *url, const char *const *headers, size_t n_headers,
			    const void *body, size_t body_len, const char *service, int64_t now_ms, char *out[4]);

/* Frees the n lines carillon_sigv4_sign* wrote (n may be -1 or 0). */
void carillon_sigv4_free_lines(char *out[4], int n);

#endif
