/*
 * JWT (JWS compact serialization) signing for outbound authentication: ES256 for APNs token auth
 * (a P-256 key in the PKCS#8 PEM of Apple's .p8 file) and RS256 for Google OAuth service-account
 * assertions (the RSA PEM of the service-account JSON's private_key). OpenSSL EVP does the crypto.
 */
#ifndef CARILLON_JWT_H
#define CARILLON_JWT_H

#include <stddef.h>

struct carillon_jwt_key;

/* Parse a PEM private key (PKCS#8 "PRIVATE KEY", or the traditional EC/RSA forms): a P-256 EC key
 * signs ES256, an RSA key of >= 2048 bits RS256. NULL on anything else; `err` (may be NULL) then
 * says why. */
struct carillon_jwt_key *carillon_jwt_key_from_pem(const char *pem, size_t len, char *err, size_t errlen);
void carillon_jwt_key_free(struct carillon_jwt_key *key);

/* "ES256" or "RS256". */
const char *carillon_jwt_key_alg(const struct carillon_jwt_key *key);

/* base64url(header) "." base64url(claims) "." base64url(signature), the JSON texts encoded exactly
 * as given. The header must be a JSON object whose "alg" is the key's. ES256 signatures are the
 * JWS form, r || s (32 bytes each), not OpenSSL's DER. A new string, or NULL. */
char *carillon_jwt_sign(const struct carillon_jwt_key *key, const char *header_json, const char *claims_json);

/* base64url without padding (RFC 4648 §5, RFC 7515 §2): a new NUL-terminated string. */
char *carillon_base64url(const void *data, size_t len);

#endif
