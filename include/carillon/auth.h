/*
 * Who is calling: the root credential, an admin access key, or a user-scoped temporary credential minted by
 * POST /carillon/credentials (a session token sealed with the master key that carries the user ARN,
 * expiry and secret, so verification needs no database round trip).
 */
#ifndef CARILLON_AUTH_H
#define CARILLON_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "carillon/sigv4.h"

enum carillon_principal_kind {
	CARILLON_PRINCIPAL_NONE,
	CARILLON_PRINCIPAL_ROOT,     /* the deployment's root key: may act as any bearer */
	CARILLON_PRINCIPAL_ADMIN,    /* an admin access key (carillon keys): the root key's rights */
	CARILLON_PRINCIPAL_USER,     /* user-scoped: may act only as its own AppInstanceUser */
};

struct carillon_principal {
	enum carillon_principal_kind kind;
	char access_key_id[129];
	char user_arn[1601];         /* CARILLON_PRINCIPAL_USER only */
	int64_t expires_ms;          /* CARILLON_PRINCIPAL_USER only */
	int64_t user_gen;            /* CARILLON_PRINCIPAL_USER only: the user's generation at minting */
};

enum carillon_auth_result {
	CARILLON_AUTH_OK,
	CARILLON_AUTH_UNAUTHORIZED,  /* unsigned, bad signature, unknown key, expired */
	CARILLON_AUTH_THROTTLED,     /* genuine, but over its request budget (429) */
};

/* The one authentication entry point of every signed request (REST operations,
 * POST /carillon/credentials, and GET /connect): verifies the SigV4 signature, resolves who acts
 * (`out`: the kind says with which rights) and, with CARILLON_AUTH_METERED, then takes one request
 * from that credential's budget (CARILLON_REQUEST_RATE_PER_CREDENTIAL; checked only after the
 * signature, so an unauthenticated flood costs no more than the check and cannot spend another
 * caller's budget). Unmetered: the operations the table marks so (minting credentials) and
 * connects, which have their own per-user budget. On failure `why` says why (for the error
 * message; never reveals secrets). */
enum { CARILLON_AUTH_METERED = 1 };
enum carillon_auth_result carillon_auth_request(const struct carillon_sigv4_request *req, int64_t now_ms,
						unsigned flags, struct carillon_principal *out, char *why,
						size_t why_len);

/* The signature and principal part of carillon_auth_request alone, without the rate limit. */
enum carillon_auth_result carillon_auth_verify(const struct carillon_sigv4_request *req, int64_t now_ms,
					       struct carillon_principal *out, char *why, size_t why_len);

/* Mint a temporary credential for `user_arn`, valid for `duration_s` seconds. Writes the strings
 * into the given buffers; returns 0.
 * The sealed token is bound to `minted_by` (the access key id of the root or admin key that asked for
 * it: the token stops working once that key is no longer known, e.g. revoked) and to `user_gen` (the
 * user's carillon.app_instance_users.generation: a deleted and recreated user does not inherit it;
 * checked by the database on every request, see carillon.check_token). */
struct carillon_temp_credentials {
	char access_key_id[32];
	char secret_access_key[64];
	char session_token[2048];
	int64_t expires_ms;
};
int carillon_auth_mint(const char *user_arn, const char *minted_by, int64_t user_gen, int64_t now_ms, long duration_s,
		       struct carillon_temp_credentials *out);

/* Seal / open small opaque values with a purpose-bound subkey of the master key
 * (NextTokens, session tokens). Output is URL-safe base64 without padding. */
char *carillon_seal(const char *purpose, const void *data, size_t len);
/* Returns a malloc'd buffer (NUL-terminated for convenience) and its length, or NULL if forged. */
void *carillon_open(const char *purpose, const char *sealed, size_t *len);

#endif
