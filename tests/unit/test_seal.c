/* Sealing (NextTokens, session tokens) and user-scoped credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "carillon/auth.h"
#include "carillon/config.h"

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	memset(carillon_cfg.master_key, 7, sizeof(carillon_cfg.master_key));
	return 0;
}

static void test_round_trip(void **state)
{
	char *s = carillon_seal("purpose A", "hello", 5);
	size_t len;
	char *p = carillon_open("purpose A", s, &len);
	assert_non_null(p);
	assert_int_equal(len, 5);
	assert_string_equal(p, "hello");
	free(p);
	/* another purpose's key does not open it */
	assert_null(carillon_open("purpose B", s, &len));
	/* one flipped character is rejected */
	s[10] = s[10] == 'A' ? 'B' : 'A';
	assert_null(carillon_open("purpose A", s, &len));
	free(s);
	/* garbage, empty, oversized */
	assert_null(carillon_open("purpose A", "!!!!", &len));
	assert_null(carillon_open("purpose A", "", &len));
	char *big = malloc(20000);
	memset(big, 'A', 19999);
	big[19999] = '\0';
	assert_null(carillon_open("purpose A", big, &len));
	free(big);
}

static void test_master_key_binds(void **state)
{
	char *s = carillon_seal("p", "x", 1);
	carillon_cfg.master_key[0] ^= 1;
	size_t len;
	assert_null(carillon_open("p", s, &len));
	carillon_cfg.master_key[0] ^= 1;
	char *p = carillon_open("p", s, &len);
	assert_non_null(p);
	free(p);
	free(s);
}

static void test_mint(void **state)
{
	struct carillon_temp_credentials c;
	assert_int_equal(carillon_auth_mint("arn:aws:chime:us-east-1:1:app-instance/a/user/u", "AKIDROOT", 42, 1000, 900, &c), 0);
	assert_int_equal(strncmp(c.access_key_id, "ASIA", 4), 0);
	assert_int_equal(strlen(c.access_key_id), 20);
	assert_int_equal(strlen(c.secret_access_key), 40);
	assert_int_equal(c.expires_ms, 1000 + 900 * 1000);
	assert_true(strlen(c.session_token) > 40);
	struct carillon_temp_credentials d;
	carillon_auth_mint("arn:aws:chime:us-east-1:1:app-instance/a/user/u", "AKIDROOT", 42, 1000, 900, &d);
	assert_string_not_equal(c.access_key_id, d.access_key_id);
	assert_string_not_equal(c.session_token, d.session_token);
}

/* A GET signed (header form) with a minted credential, verified by carillon_auth_verify. */
struct signed_get {
	char amz_date[17], authz[2048];
	const char *token;
};

static const char *signed_get_header(void *ctx, const char *name)
{
	const struct signed_get *g = ctx;
	if (!strcmp(name, "host"))
		return "h";
	if (!strcmp(name, "x-amz-date"))
		return g->amz_date;
	if (!strcmp(name, "x-amz-security-token"))
		return g->token;
	if (!strcmp(name, "authorization"))
		return g->authz[0] ? g->authz : NULL;
	return NULL;
}

static enum carillon_auth_result verify_minted(const struct carillon_temp_credentials *c, int64_t now_ms,
					       struct carillon_principal *p, char *why, size_t why_len)
{
	struct signed_get g = {.token = c->session_token};
	time_t now = (time_t)(now_ms / 1000);
	strftime(g.amz_date, sizeof(g.amz_date), "%Y%m%dT%H%M%SZ", gmtime(&now));
	struct carillon_sigv4_request r = {.method = "GET", .raw_path = "/channels", .header = signed_get_header,
					   .header_ctx = &g};
	struct carillon_sigv4_auth a = {0};
	snprintf(a.access_key_id, sizeof(a.access_key_id), "%s", c->access_key_id);
	memcpy(a.date, g.amz_date, 8);
	snprintf(a.region, sizeof(a.region), "us-east-1");
	snprintf(a.service, sizeof(a.service), "chime");
	memcpy(a.amz_date, g.amz_date, sizeof(a.amz_date));
	snprintf(a.signed_headers, sizeof(a.signed_headers), "host;x-amz-date;x-amz-security-token");
	carillon_sigv4_sign_auth(&r, &a, c->secret_access_key);
	assert_int_equal(strlen(a.signature), 64);
	snprintf(g.authz, sizeof(g.authz),
		 "AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/chime/aws4_request, SignedHeaders=%s, Signature=%s",
		 a.access_key_id, a.date, a.signed_headers, a.signature);
	return carillon_auth_verify(&r, now_ms, p, why, why_len);
}

/* A token is bound to the key that minted it (still known: root, or an active admin key) and carries
 * the user's generation and expiry into the principal. */
static void test_token_binding(void **state)
{
	(void)state;
	carillon_cfg.region = "us-east-1";
	carillon_cfg.root_access_key_id = "AKIDROOT";
	carillon_cfg.clock_skew_seconds = 300;
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	const char *arn = "arn:aws:chime:us-east-1:1:app-instance/a/user/u";
	struct carillon_temp_credentials c;
	struct carillon_principal p;
	char why[256];
	assert_int_equal(carillon_auth_mint(arn, "AKIDROOT", -1234567890123LL, now_ms, 900, &c), 0);
	assert_int_equal(verify_minted(&c, now_ms, &p, why, sizeof(why)), CARILLON_AUTH_OK);
	assert_int_equal(p.kind, CARILLON_PRINCIPAL_USER);
	assert_string_equal(p.user_arn, arn);
	assert_int_equal(p.user_gen, -1234567890123LL);
	assert_int_equal(p.expires_ms, now_ms + 900 * 1000);
	/* Minted by an admin key that is not (or no longer) active. */
	assert_int_equal(carillon_auth_mint(arn, "AKIAREVOKED000000000", 1, now_ms, 900, &c), 0);
	assert_int_equal(verify_minted(&c, now_ms, &p, why, sizeof(why)), CARILLON_AUTH_UNAUTHORIZED);
	assert_non_null(strstr(why, "no longer active"));
	assert_int_equal(p.kind, CARILLON_PRINCIPAL_NONE);
	/* The root key changed: its old tokens go with it. */
	assert_int_equal(carillon_auth_mint(arn, "AKIDROOT", 1, now_ms, 900, &c), 0);
	carillon_cfg.root_access_key_id = "AKIDROOT2";
	assert_int_equal(verify_minted(&c, now_ms, &p, why, sizeof(why)), CARILLON_AUTH_UNAUTHORIZED);
	carillon_cfg.root_access_key_id = "AKIDROOT";
	assert_int_equal(verify_minted(&c, now_ms, &p, why, sizeof(why)), CARILLON_AUTH_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_token_binding),
		cmocka_unit_test(test_master_key_binds),
		cmocka_unit_test(test_mint),
	};
	return cmocka_run_group_tests_name("seal", tests, setup, NULL);
}
