/* JWT signing (ES256, RS256) with OpenSSL's EVP API. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "carillon/jwt.h"
#include "carillon/util.h"

enum jwt_alg { JWT_ES256, JWT_RS256 };

struct carillon_jwt_key {
	EVP_PKEY *pkey;
	enum jwt_alg alg;
};

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen) {
		strncpy(err, msg, errlen - 1);
		err[errlen - 1] = '\0';
	}
}

char *carillon_base64url(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = carillon_xmalloc(n);
	sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

static bool is_p256(EVP_PKEY *pkey)
{
	char group[64];
	size_t glen = 0;
	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen))
		return false;
	return !strcmp(group, "prime256v1") || !strcmp(group, "P-256");
}

struct carillon_jwt_key *carillon_jwt_key_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	if (!pem || len > INT_MAX) {
		set_err(err, errlen, "no key");
		return NULL;
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	/* A NULL passphrase callback with an encrypted key would prompt on the terminal: refuse instead. */
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (!pkey) {
		set_err(err, errlen, "not a PEM private key (or an encrypted one)");
		return NULL;
	}
	struct carillon_jwt_key *k = carillon_xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	if (EVP_PKEY_is_a(pkey, "EC") && is_p256(pkey)) {
		k->alg = JWT_ES256;
	} else if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= 2048) {
		k->alg = JWT_RS256;
	} else {
		set_err(err, errlen, EVP_PKEY_is_a(pkey, "EC") ? "an EC key must be on P-256 (ES256)"
				      : EVP_PKEY_is_a(pkey, "RSA") ? "an RSA key must have at least 2048 bits"
								  : "the key must be P-256 EC (ES256) or RSA (RS256)");
		carillon_jwt_key_free(k);
		return NULL;
	}
	return k;
}

void carillon_jwt_key_free(struct carillon_jwt_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

const char *carillon_jwt_key_alg(const struct carillon_jwt_key *key)
{
	return key->alg == JWT_ES256 ? "ES256" : "RS256";
}

/* OpenSSL's ECDSA signature is DER (SEQUENCE of INTEGER r, s); JWS wants r and s as 32-byte
 * big-endian numbers, concatenated (RFC 7518 §3.4). */
static bool ecdsa_der_to_jws(const unsigned char *der, size_t len, unsigned char out[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (!sig)
		return false;
	const BIGNUM *r, *s;
	ECDSA_SIG_get0(sig, &r, &s);
	bool ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(s, out + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok;
}

static unsigned char *sign_raw(const struct carillon_jwt_key *key, const char *input, size_t *siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t len = 0;
	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
	    EVP_DigestSign(md, NULL, &len, (const unsigned char *)input, strlen(input)) == 1) {
		sig = carillon_xmalloc(len);
		if (EVP_DigestSign(md, sig, &len, (const unsigned char *)input, strlen(input)) != 1) {
			free(sig);
			sig = NULL;
		}
	}
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (sig && key->alg == JWT_ES256) {
		unsigned char *rs = carillon_xmalloc(64);
		if (!ecdsa_der_to_jws(sig, len, rs)) {
			free(rs);
			rs = NULL;
		}
		free(sig);
		sig = rs;
		len = 64;
	}
	*siglen = len;
	return sig;
}

static bool header_alg_matches(const struct carillon_jwt_key *key, const char *header_json)
{
	json_t *h = json_loads(header_json, JSON_REJECT_DUPLICATES, NULL);
	const char *alg = json_is_object(h) ? json_string_value(json_object_get(h, "alg")) : NULL;
	bool ok = alg && !strcmp(alg, carillon_jwt_key_alg(key));
	json_decref(h);
	return ok;
}

char *carillon_jwt_sign(const struct carillon_jwt_key *key, const char *header_json, const char *claims_json)
{
	if (!key || !header_json || !claims_json || !header_alg_matches(key, header_json))
		return NULL;
	json_t *c = json_loads(claims_json, 0, NULL);
	bool claims_ok = json_is_object(c);
	json_decref(c);
	if (!claims_ok)
		return NULL;
	char *h64 = carillon_base64url(header_json, strlen(header_json));
	char *c64 = carillon_base64url(claims_json, strlen(claims_json));
	size_t in_len = strlen(h64) + 1 + strlen(c64);
	char *input = carillon_xmalloc(in_len + 1);
	snprintf(input, in_len + 1, "%s.%s", h64, c64);
	free(h64);
	free(c64);
	size_t siglen;
	unsigned char *sig = sign_raw(key, input, &siglen);
	if (!sig) {
		free(input);
		return NULL;
	}
	char *s64 = carillon_base64url(sig, siglen);
	free(sig);
	size_t total = in_len + 1 + strlen(s64);
	char *jwt = carillon_xmalloc(total + 1);
	snprintf(jwt, total + 1, "%s.%s", input, s64);
	free(input);
	free(s64);
	return jwt;
}
