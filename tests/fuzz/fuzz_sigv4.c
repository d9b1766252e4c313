/*
 * libFuzzer harness: SigV4 parsing and verification (src/auth/sigv4.c) on a whole HTTP request.
 *
 * The input is a request as a client sends it (fuzz_http.h): the Authorization header or the
 * X-Amz-* query, the headers the verifier asks for through its callback, the path and the body all
 * come from the fuzz input. Each input goes through parse, check_time (at a fixed clock and at the
 * request's own X-Amz-Date, so the verifier is reached), verify with the captures' secret, and sign.
 *
 * Every input's Authorization header also goes through the access log's reading of it
 * (carillon_http_credential_akid, src/http/lifecycle.c), which runs on every request, refused or not.
 *
 * Property checked beyond "no crash, no sanitizer report": a request signed by carillon_sigv4_sign_auth
 * verifies with the same secret (sign and verify canonicalise the same way), and parsed fields are
 * NUL-terminated within their arrays; the access log's key id is NUL-terminated within its bound,
 * holds no '/', ',' or ' ', and is the start of what follows "Credential=" in the header.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "carillon/http.h"
#include "carillon/sigv4.h"
#include "fuzz_http.h"

/* The secret of the captured requests (shared/api/ROUTES.md §8): seeds verify OK. */
#define FAKE_SECRET "fakeSecretKeyForLocalTestsOnly0000000000"
/* The AWS SigV4 test suite's and the JS presigned vectors' (websocket-protocol.md §1.7). */
#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define CAPTURE_NOW ((time_t)1795317837) /* 2026-11-22T03:23:57Z */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool verbose; /* FUZZ_VERBOSE set: print each input's statuses (checking seeds) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	return sodium_init() < 0 ? -1 : 0;
}

/* X-Amz-Date (YYYYMMDDTHHMMSSZ) as epoch seconds, or `fallback` when it does not parse. */
static time_t amz_time(const char *d, time_t fallback)
{
	struct tm tm = {0};
	if (strlen(d) != 16 || sscanf(d, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				      &tm.tm_min, &tm.tm_sec) != 6)
		return fallback;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? fallback : t;
}

static void check_terminated(const struct carillon_sigv4_auth *a)
{
	if (!memchr(a->access_key_id, 0, sizeof(a->access_key_id)) || !memchr(a->date, 0, sizeof(a->date)) ||
	    !memchr(a->region, 0, sizeof(a->region)) || !memchr(a->service, 0, sizeof(a->service)) ||
	    !memchr(a->amz_date, 0, sizeof(a->amz_date)) || !memchr(a->signed_headers, 0, sizeof(a->signed_headers)) ||
	    !memchr(a->signature, 0, sizeof(a->signature)) ||
	    !memchr(a->security_token, 0, sizeof(a->security_token))) {
		fprintf(stderr, "carillon_sigv4_parse left a field without its NUL\n");
		abort();
	}
}

/* The access log's key id, at a few output sizes (129: the server's). */
static void check_access_log_akid(const char *authz)
{
	static const size_t sizes[] = {1, 2, 17, 129};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char out[129];
		memset(out, 0x5a, sizeof(out));
		carillon_http_credential_akid(authz, out, sizes[k]);
		size_t n = strnlen(out, sizes[k]);
		const char *cred = authz ? strstr(authz, "Credential=") : NULL;
		if (n == sizes[k] || strcspn(out, "/, ") != n || (n && (!cred || strncmp(cred + 11, out, n)))) {
			fprintf(stderr, "carillon_http_credential_akid(%zu): \"%.*s\" is not the header's key id\n", sizes[k],
				(int)(n < sizes[k] ? n : sizes[k]), out);
			abort();
		}
	}
	carillon_http_credential_akid(authz, NULL, 0); /* no room: writes nothing */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_http h;
	fuzz_http_parse(&h, data, size);
	check_access_log_akid(fuzz_http_header(&h, "authorization"));
	/* Every header name of the input, for the signed-header rule (as the server lists them). */
	const char *names[FUZZ_MAX_HEADERS];
	for (size_t i = 0; i < h.n_headers; i++)
		names[i] = h.h[i].name;
	struct carillon_sigv4_request req = {
		.header_names = names,
		.n_header_names = h.n_headers,
		.method = h.method,
		.raw_path = h.path,
		.raw_query = h.has_query ? h.query : NULL,
		.header = fuzz_http_header,
		.header_ctx = &h,
		.body = h.body_len ? h.body : NULL,
		.body_len = h.body_len,
		/* Presigned (query) auth is for GET /connect only: half the inputs (by the parity of their
		 * length) allow it, so both the refusal and the presigned parser are exercised. */
		.allow_query_auth = size & 1,
	};
	static struct carillon_sigv4_auth auth; /* large, as in the server */
	memset(&auth, 0x5a, sizeof(auth));      /* garbage in: parse must set what it reports */
	enum carillon_sigv4_status st = carillon_sigv4_parse(&req, &auth);
	if (verbose)
		fprintf(stderr, "parse: %d\n", (int)st);
	if (st != CARILLON_SIGV4_OK)
		goto done;
	check_terminated(&auth);
	(void)carillon_sigv4_check_time(&auth, CAPTURE_NOW, 300);
	(void)carillon_sigv4_check_time(&auth, amz_time(auth.amz_date, CAPTURE_NOW), 300);
	(void)carillon_sigv4_check_time(&auth, amz_time(auth.amz_date, CAPTURE_NOW), 315360000L);
	const char *secret = strcmp(auth.access_key_id, SUITE_AKID) ? FAKE_SECRET : SUITE_SECRET;
	st = carillon_sigv4_verify(&req, &auth, secret);
	if (verbose)
		fprintf(stderr, "verify: %d\n", (int)st);

	/* Sign what was parsed, then verify: a mismatch means sign and verify disagree on the
	 * canonical request. (Refusals for other reasons — a missing signed header, a bound — are not
	 * MISMATCH unless the header is missing, which sign would have refused too.) */
	carillon_sigv4_sign_auth(&req, &auth, secret);
	enum carillon_sigv4_status signed_st = carillon_sigv4_verify(&req, &auth, secret);
	if (auth.signature[0] && signed_st == CARILLON_SIGV4_MISMATCH) {
		fprintf(stderr, "a request signed by carillon_sigv4_sign_auth does not verify\n");
		abort();
	}
	/* The signed-header rule looks at the names only: signing cannot change its answer. */
	if (auth.signature[0] && (signed_st == CARILLON_SIGV4_UNSIGNED_HEADER) != (st == CARILLON_SIGV4_UNSIGNED_HEADER)) {
		fprintf(stderr, "the signed-header rule answered differently once the request was signed\n");
		abort();
	}
	(void)carillon_sigv4_verify(&req, &auth, "");
	(void)carillon_sigv4_verify(&req, &auth, NULL);
done:
	fuzz_http_free(&h);
	return 0;
}
