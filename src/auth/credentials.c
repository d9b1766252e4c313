/*
 * Resolving a request's principal: SigV4 with the root key, or with a user-scoped temporary
 * credential whose session token is sealed with the master key and carries everything needed to
 * verify it (access key id, secret, user ARN, expiry) — no database round trip.
 *
 * A token also names the key that minted it ("k") and the user's generation ("g"). The key must still
 * be known when the token is used (the root key, or an admin key in the keys cache, which drops a
 * revoked key within its refresh interval); the generation travels with the principal and the
 * database refuses it once the user was deleted (and perhaps recreated under the same ARN).
 * Tokens sealed before the binding existed used another purpose string and no longer open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/keys.h"
#include "carillon/ratelimit.h"
#include "carillon/util.h"

#define TOKEN_PURPOSE "carillon session token v2"
#define QUERY_AUTH_REFUSED                                                                                         \
	"Presigned (query-string) credentials are accepted only for GET /connect: sign this request with an "     \
	"Authorization header"

static void random_chars(char *out, size_t n, const char *alphabet)
{
	size_t al = strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[randombytes_uniform((uint32_t)al)];
	out[n] = '\0';
}

int carillon_auth_mint(const char *user_arn, const char *minted_by, int64_t user_gen, int64_t now_ms, long duration_s,
		       struct carillon_temp_credentials *out)
{
	memcpy(out->access_key_id, "ASIA", 4);
	random_chars(out->access_key_id + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
	random_chars(out->secret_access_key, 40,
		     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
	out->expires_ms = now_ms + (int64_t)duration_s * 1000;
	json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:s,s:I}", "a", out->access_key_id, "s", out->secret_access_key,
				   "u", user_arn, "e", (json_int_t)out->expires_ms, "k", minted_by, "g",
				   (json_int_t)user_gen);
	char *text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
	json_decref(claims);
	if (!text)
		return -1;
	char *token = carillon_seal(TOKEN_PURPOSE, text, strlen(text));
	sodium_memzero(text, strlen(text));
	free(text);
	int rc = snprintf(out->session_token, sizeof(out->session_token), "%s", token) <
			 (int)sizeof(out->session_token) ? 0 : -1;
	free(token);
	return rc;
}

/* Whether the key that minted a token is still known: the root key, or an active admin key. */
static bool minting_key_known(const char *k)
{
	return !strcmp(k, carillon_cfg.root_access_key_id) || carillon_keys_secret(k) != NULL;
}

/* Open a session token; fills the user principal and its secret. 1 when the token is genuine but
 * its minting key is no longer known. */
static int open_session_token(const char *token, const char *akid, struct carillon_principal *p,
			      char *secret, size_t secret_len)
{
	size_t len;
	char *text = carillon_open(TOKEN_PURPOSE, token, &len);
	if (!text)
		return -1;
	json_t *claims = json_loads(text, 0, NULL);
	sodium_memzero(text, len);
	free(text);
	const char *a = json_string_value(json_object_get(claims, "a"));
	const char *s = json_string_value(json_object_get(claims, "s"));
	const char *u = json_string_value(json_object_get(claims, "u"));
	const char *k = json_string_value(json_object_get(claims, "k"));
	json_t *e = json_object_get(claims, "e");
	json_t *g = json_object_get(claims, "g");
	int rc = -1;
	if (a && s && u && k && json_is_integer(e) && json_is_integer(g) && !strcmp(a, akid) &&
	    strlen(u) < sizeof(p->user_arn) && strlen(s) < secret_len) {
		rc = 1;
		if (minting_key_known(k)) {
			p->kind = CARILLON_PRINCIPAL_USER;
			snprintf(p->access_key_id, sizeof(p->access_key_id), "%s", a);
			snprintf(p->user_arn, sizeof(p->user_arn), "%s", u);
			p->expires_ms = (int64_t)json_integer_value(e);
			p->user_gen = (int64_t)json_integer_value(g);
			snprintf(secret, secret_len, "%s", s);
			rc = 0;
		}
	}
	json_decref(claims);
	return rc;
}

static enum carillon_auth_result deny(char *why, size_t why_len, const char *msg)
{
	snprintf(why, why_len, "%s", msg);
	return CARILLON_AUTH_UNAUTHORIZED;
}

enum carillon_auth_result carillon_auth_verify(const struct carillon_sigv4_request *req, int64_t now_ms,
					       struct carillon_principal *out, char *why, size_t why_len)
{
	static struct carillon_sigv4_auth auth; /* large; the loop is single-threaded */
	memset(out, 0, sizeof(*out));
	switch (carillon_sigv4_parse(req, &auth)) {
	case CARILLON_SIGV4_OK:
		break;
	case CARILLON_SIGV4_MISSING:
		return deny(why, why_len, "Missing Authentication Token: the request must be signed with SigV4");
	case CARILLON_SIGV4_QUERY_AUTH:
		return deny(why, why_len, QUERY_AUTH_REFUSED);
	default:
		return deny(why, why_len, "The authorization information in the request is malformed");
	}
	const char *service = req->signing_name ? req->signing_name : "chime";
	if (strcmp(auth.service, service)) {
		snprintf(why, why_len, "Credential should be scoped to the correct service: '%s'", service);
		return CARILLON_AUTH_UNAUTHORIZED;
	}
	if (strcmp(auth.region, carillon_cfg.region))
		return deny(why, why_len, "Credential should be scoped to this server's region");
	if (carillon_sigv4_check_time(&auth, (time_t)(now_ms / 1000), carillon_cfg.clock_skew_seconds) !=
	    CARILLON_SIGV4_OK)
		return deny(why, why_len, "Signature expired: the request time is outside the allowed window");
	char secret[128];
	if (auth.security_token[0]) {
		int rc = open_session_token(auth.security_token, auth.access_key_id, out, secret, sizeof(secret));
		if (rc > 0)
			return deny(why, why_len,
				    "The security token included in the request is invalid: the key that minted it "
				    "is no longer active");
		if (rc)
			return deny(why, why_len, "The security token included in the request is invalid");
		if (out->expires_ms <= now_ms) {
			memset(out, 0, sizeof(*out));
			return deny(why, why_len, "The security token included in the request is expired");
		}
	} else if (!strcmp(auth.access_key_id, carillon_cfg.root_access_key_id)) {
		out->kind = CARILLON_PRINCIPAL_ROOT;
		snprintf(out->access_key_id, sizeof(out->access_key_id), "%s", auth.access_key_id);
		snprintf(secret, sizeof(secret), "%s", carillon_cfg.root_secret_access_key);
	} else if (carillon_keys_secret(auth.access_key_id)) {
		out->kind = CARILLON_PRINCIPAL_ADMIN;
		snprintf(out->access_key_id, sizeof(out->access_key_id), "%s", auth.access_key_id);
		snprintf(secret, sizeof(secret), "%s", carillon_keys_secret(auth.access_key_id));
	} else {
		return deny(why, why_len, "The security token included in the request is invalid");
	}
	enum carillon_sigv4_status st = carillon_sigv4_verify(req, &auth, secret);
	sodium_memzero(secret, sizeof(secret));
	if (st != CARILLON_SIGV4_OK)
		memset(out, 0, sizeof(*out));
	if (st == CARILLON_SIGV4_QUERY_AUTH)
		return deny(why, why_len, QUERY_AUTH_REFUSED);
	if (st == CARILLON_SIGV4_UNSIGNED_HEADER) {
		char name[64];
		carillon_sigv4_unsigned_header(req, &auth, name, sizeof(name));
		snprintf(why, why_len, "The header %s must be signed: list it in SignedHeaders", name);
		return CARILLON_AUTH_UNAUTHORIZED;
	}
	if (st != CARILLON_SIGV4_OK)
		return deny(why, why_len,
			    "The request signature we calculated does not match the signature you provided");
	return CARILLON_AUTH_OK;
}

/* Live buckets at most: every credential that called in the last few seconds (a bucket that has
 * refilled is dropped); beyond it new credentials are refused until the sweep frees room. */
static struct carillon_ratelimit request_rate;
static bool request_rate_ready;

static bool request_allowed(const struct carillon_principal *p, int64_t now_ms)
{
	if (carillon_cfg.request_rate_per_credential <= 0)
		return true;
	if (!request_rate_ready) {
		carillon_ratelimit_init(&request_rate, carillon_cfg.request_rate_per_credential,
					carillon_cfg.request_burst_per_credential, carillon_cfg.rate_max_credentials);
		request_rate_ready = true;
	}
	return carillon_ratelimit_take(&request_rate, p->access_key_id, now_ms);
}

enum carillon_auth_result carillon_auth_request(const struct carillon_sigv4_request *req, int64_t now_ms,
						unsigned flags, struct carillon_principal *out, char *why,
						size_t why_len)
{
	enum carillon_auth_result rc = carillon_auth_verify(req, now_ms, out, why, why_len);
	if (rc != CARILLON_AUTH_OK)
		return rc;
	if ((flags & CARILLON_AUTH_METERED) && !request_allowed(out, now_ms)) {
		snprintf(why, why_len, "Rate exceeded for this access key (%ld requests a second, bursts of %ld); retry later",
			 carillon_cfg.request_rate_per_credential, carillon_cfg.request_burst_per_credential);
		return CARILLON_AUTH_THROTTLED;
	}
	return CARILLON_AUTH_OK;
}
