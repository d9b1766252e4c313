/* JWT signing (src/outbound/jwt.c): ES256 for APNs, RS256 for Google service accounts. Keys are
 * generated here; signatures are checked with OpenSSL's verifier after converting the JWS form back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "carillon/jwt.h"

static int setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

/* The key as PEM: PKCS#8 ("BEGIN PRIVATE KEY", Apple's .p8 and Google's private_key) or the
 * traditional form. Caller frees. */
static char *key_pem(EVP_PKEY *pkey, bool traditional)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL)
			     : PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
	assert_int_equal(ok, 1);
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	char *pem = strndup(data, (size_t)len);
	BIO_free(bio);
	return pem;
}

/* base64url without padding, decoded independently of the encoder under test (libsodium). */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len)
{
	unsigned char *out = malloc(len + 1);
	const char *end;
	assert_int_equal(sodium_base642bin(out, len + 1, s, len, NULL, out_len, &end,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	assert_ptr_equal(end, s + len);
	return out;
}

struct parts {
	char *header, *claims;
	unsigned char *sig;
	size_t sig_len;
	char *signing_input;
};

static void split(const char *jwt, struct parts *p)
{
	const char *d1 = strchr(jwt, '.');
	assert_non_null(d1);
	const char *d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	assert_null(strchr(jwt, '='));  /* no padding anywhere */
	size_t n;
	p->header = (char *)b64url_decode(jwt, (size_t)(d1 - jwt), &n);
	p->header[n] = '\0';
	p->claims = (char *)b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &n);
	p->claims[n] = '\0';
	p->sig = b64url_decode(d2 + 1, strlen(d2 + 1), &p->sig_len);
	p->signing_input = strndup(jwt, (size_t)(d2 - jwt));
}

static void parts_free(struct parts *p)
{
	free(p->header);
	free(p->claims);
	free(p->sig);
	free(p->signing_input);
}

static int verify(EVP_PKEY *pkey, const char *input, const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
	int rc = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, strlen(input));
	EVP_MD_CTX_free(md);
	return rc;
}

/* JWS r || s back to OpenSSL's DER ECDSA-Sig-Value. */
static unsigned char *rs_to_der(const unsigned char rs[64], size_t *der_len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	assert_int_equal(ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL)), 1);
	unsigned char *der = NULL;
	int n = i2d_ECDSA_SIG(sig, &der);
	assert_true(n > 0);
	ECDSA_SIG_free(sig);
	*der_len = (size_t)n;
	return der;
}

static void check_b64(const char *in, size_t len, const char *want)
{
	char *got = carillon_base64url(in, len);
	assert_string_equal(got, want);
	free(got);
}

static void test_base64url_known_answers(void **state)
{
	(void)state;
	/* RFC 4648 §10 (no padding) */
	check_b64("", 0, "");
	check_b64("f", 1, "Zg");
	check_b64("fo", 2, "Zm8");
	check_b64("foo", 3, "Zm9v");
	check_b64("foob", 4, "Zm9vYg");
	check_b64("fooba", 5, "Zm9vYmE");
	check_b64("foobar", 6, "Zm9vYmFy");
	/* the URL-safe alphabet: 62 is '-', 63 is '_' */
	check_b64("\xfb\xff\xbf", 3, "-_-_");
	check_b64("\xfb\xff", 2, "-_8");
	/* RFC 7515 appendix A.1: the JWS header and payload of the example */
	const char *h = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
	check_b64(h, strlen(h), "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9");
	const char *c = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
	check_b64(c, strlen(c),
		  "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ");
}

static void test_es256_p8(void **state)
{
	(void)state;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(pkey);
	char *pem = key_pem(pkey, false);
	assert_true(!strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27));  /* the .p8 form */
	char err[128];
	struct carillon_jwt_key *key = carillon_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err));
	assert_non_null(key);
	assert_string_equal(carillon_jwt_key_alg(key), "ES256");

	const char *header = "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}";
	const char *claims = "{\"iss\":\"DEF123GHIJ\",\"iat\":1437179036}";
	for (int round = 0; round < 20; round++) {  /* r or s with leading zero bytes must still be 32 bytes */
		char *jwt = carillon_jwt_sign(key, header, claims);
		assert_non_null(jwt);
		struct parts p;
		split(jwt, &p);
		assert_string_equal(p.header, header);
		assert_string_equal(p.claims, claims);
		assert_int_equal(p.sig_len, 64);
		size_t der_len;
		unsigned char *der = rs_to_der(p.sig, &der_len);
		assert_int_equal(verify(pkey, p.signing_input, der, der_len), 1);
		/* the signature covers the claims: another payload does not verify */
		p.signing_input[strlen(p.signing_input) - 1] ^= 1;
		assert_int_not_equal(verify(pkey, p.signing_input, der, der_len), 1);
		OPENSSL_free(der);
		parts_free(&p);
		free(jwt);
	}
	/* another key's signature does not verify */
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *jwt = carillon_jwt_sign(key, header, claims);
	struct parts p;
	split(jwt, &p);
	size_t der_len;
	unsigned char *der = rs_to_der(p.sig, &der_len);
	assert_int_not_equal(verify(other, p.signing_input, der, der_len), 1);
	OPENSSL_free(der);
	parts_free(&p);
	free(jwt);
	EVP_PKEY_free(other);
	carillon_jwt_key_free(key);
	free(pem);
	EVP_PKEY_free(pkey);
}

static void test_rs256_service_account(void **state)
{
	(void)state;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	assert_non_null(pkey);
	for (int traditional = 0; traditional < 2; traditional++) {
		char *pem = key_pem(pkey, traditional);
		struct carillon_jwt_key *key = carillon_jwt_key_from_pem(pem, strlen(pem), NULL, 0);
		assert_non_null(key);
		assert_string_equal(carillon_jwt_key_alg(key), "RS256");
		const char *header = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";
		const char *claims = "{\"iss\":\"sa@p.iam.gserviceaccount.com\","
				     "\"scope\":\"https://www.googleapis.com/auth/firebase.messaging\","
				     "\"aud\":\"https://oauth2.googleapis.com/token\",\"iat\":1700000000,\"exp\":1700003600}";
		char *jwt = carillon_jwt_sign(key, header, claims);
		assert_non_null(jwt);
		struct parts p;
		split(jwt, &p);
		assert_string_equal(p.header, header);
		assert_string_equal(p.claims, claims);
		assert_int_equal(p.sig_len, 256);
		assert_int_equal(verify(pkey, p.signing_input, p.sig, p.sig_len), 1);
		p.sig[0] ^= 1;
		assert_int_not_equal(verify(pkey, p.signing_input, p.sig, p.sig_len), 1);
		parts_free(&p);
		free(jwt);
		carillon_jwt_key_free(key);
		free(pem);
	}
	EVP_PKEY_free(pkey);
}

static void expect_refused_key(EVP_PKEY *pkey, const char *why)
{
	char *pem = key_pem(pkey, false);
	char err[128] = "";
	assert_null(carillon_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	assert_non_null(strstr(err, why));
	free(pem);
	EVP_PKEY_free(pkey);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refused_key(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), "P-256");
	expect_refused_key(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), "2048");
	expect_refused_key(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), "P-256 EC (ES256) or RSA");
	char err[128] = "";
	const char *junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	assert_null(carillon_jwt_key_from_pem(junk, strlen(junk), err, sizeof(err)));
	assert_non_null(strstr(err, "PEM"));

	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem = key_pem(pkey, false);
	struct carillon_jwt_key *key = carillon_jwt_key_from_pem(pem, strlen(pem), NULL, 0);
	assert_non_null(key);
	const char *claims = "{\"iss\":\"T\"}";
	assert_null(carillon_jwt_sign(key, "{\"alg\":\"RS256\"}", claims));  /* not the key's algorithm */
	assert_null(carillon_jwt_sign(key, "{\"alg\":\"none\"}", claims));
	assert_null(carillon_jwt_sign(key, "{\"kid\":\"x\"}", claims));
	assert_null(carillon_jwt_sign(key, "not json", claims));
	assert_null(carillon_jwt_sign(key, "{\"alg\":\"ES256\"}", "[1]"));  /* claims must be an object */
	assert_null(carillon_jwt_sign(key, "{\"alg\":\"ES256\"}", "{"));
	char *ok = carillon_jwt_sign(key, "{\"alg\":\"ES256\"}", claims);
	assert_non_null(ok);
	free(ok);
	carillon_jwt_key_free(key);
	free(pem);
	EVP_PKEY_free(pkey);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64url_known_answers),
		cmocka_unit_test(test_es256_p8),
		cmocka_unit_test(test_rs256_service_account),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests_name("jwt", tests, setup, NULL);
}
