/*
 * Update*Channel: the channel secrets are checked and sealed here, in C, before the request goes on
 * to its SQL function (sql/api/pinpoint_channels.sql), so the database only ever holds them sealed
 * (carillon_seal, purpose "pinpoint-channel"; the push senders open them) and no response can carry
 * them. Checked at update time, so a bad key is refused now rather than failing every push later:
 *   APNs token auth   TokenKey: a P-256 private key in PEM (Apple's .p8), with TokenKeyId, TeamId
 *                     and BundleId;
 *   APNs certificate  Certificate + PrivateKey: PEM, the key the certificate's;
 *   GCM (FCM v1)      ServiceJson: a service-account JSON with project_id, client_email, token_uri
 *                     and an RSA private_key. The legacy ApiKey (FCM's retired server key) is refused.
 * In the input the secret members are replaced by SealedSecret (the sealed JSON of the secret fields)
 * and SecretInfo (what may be said about them: HasTokenKey, HasCertificate, HasCredential, ProjectId,
 * BundleId read from the certificate).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/jwt.h"
#include "pinpoint_internal.h"

#define SEAL_PURPOSE "pinpoint-channel"

/* A string member of `obj`, NULL when absent (the model has checked the types). */
static const char *str_of(json_t *obj, const char *name) { return json_string_value(json_object_get(obj, name)); }

/* Does `pem` parse as a private key of the JWT algorithm `alg`? */
static bool jwt_key_ok(const char *pem, const char *alg, char *err, size_t err_len)
{
	struct carillon_jwt_key *key = carillon_jwt_key_from_pem(pem, strlen(pem), err, err_len);
	bool ok = key && !strcmp(carillon_jwt_key_alg(key), alg);
	if (key && !ok)
		snprintf(err, err_len, "a %s key was expected", !strcmp(alg, "ES256") ? "P-256 (ES256)" : "RSA (RS256)");
	carillon_jwt_key_free(key);
	return ok;
}

/* The certificate's subject UID (Apple puts the bundle id there), or "" . */
static void cert_uid(X509 *cert, char *out, size_t size)
{
	out[0] = '\0';
	X509_NAME *subject = X509_get_subject_name(cert);
	int at = subject ? X509_NAME_get_index_by_NID(subject, NID_userId, -1) : -1;
	ASN1_STRING *v = at >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)) : NULL;
	unsigned char *utf8 = NULL;
	int n = v ? ASN1_STRING_to_UTF8(&utf8, v) : -1;
	if (n > 0 && (size_t)n < size && !memchr(utf8, '\0', (size_t)n)) {
		memcpy(out, utf8, (size_t)n);
		out[n] = '\0';
	}
	OPENSSL_free(utf8);
}

/* Certificate + PrivateKey: both PEM, and the key is the certificate's. 0 or -1 (`err` says why). */
static int check_certificate(const char *cert_pem, const char *key_pem, char *uid, size_t uid_size, char *err,
			     size_t err_len)
{
	BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
	X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	int rc = -1;
	if (!cert)
		snprintf(err, err_len, "Certificate is not a PEM X.509 certificate");
	else if (!key)
		snprintf(err, err_len, "PrivateKey is not an unencrypted PEM private key");
	else if (X509_check_private_key(cert, key) != 1)
		snprintf(err, err_len, "PrivateKey is not the key of Certificate");
	else {
		cert_uid(cert, uid, uid_size);
		rc = 0;
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

/* APNs: the secret fields of `req` into `secret`, what may be said about them into `info`. */
static int apns_secret(json_t *req, json_t *secret, json_t *info, char *err, size_t err_len)
{
	const char *token = str_of(req, "TokenKey"), *cert = str_of(req, "Certificate"), *key = str_of(req, "PrivateKey");
	if (!cert != !key) {
		snprintf(err, err_len, "Certificate and PrivateKey go together: give both or neither");
		return -1;
	}
	if (token) {
		char why[256] = "";
		if (!jwt_key_ok(token, "ES256", why, sizeof(why))) {
			snprintf(err, err_len, "TokenKey is not a P-256 private key in PEM (the .p8 file from Apple): %s", why);
			return -1;
		}
		if (!str_of(req, "TokenKeyId") || !str_of(req, "TeamId") || !str_of(req, "BundleId")) {
			snprintf(err, err_len, "TokenKey needs TokenKeyId, TeamId and BundleId");
			return -1;
		}
		json_object_set_new(secret, "TokenKey", json_string(token));
		json_object_set_new(info, "HasTokenKey", json_true());
	}
	if (cert) {
		char uid[256];
		if (check_certificate(cert, key, uid, sizeof(uid), err, err_len))
			return -1;
		json_object_set_new(secret, "Certificate", json_string(cert));
		json_object_set_new(secret, "PrivateKey", json_string(key));
		json_object_set_new(info, "HasCertificate", json_true());
		if (*uid)
			json_object_set_new(info, "BundleId", json_string(uid));
	}
	json_object_del(req, "TokenKey");
	json_object_del(req, "Certificate");
	json_object_del(req, "PrivateKey");
	return 0;
}

/* GCM: ServiceJson, an FCM v1 service account. */
static int gcm_secret(json_t *req, json_t *secret, json_t *info, char *err, size_t err_len)
{
	if (str_of(req, "ApiKey")) {
		snprintf(err, err_len, "ApiKey (FCM's legacy server key) is not supported: only ServiceJson, the "
				       "service-account JSON of FCM v1, is");
		return -1;
	}
	const char *text = str_of(req, "ServiceJson");
	if (!text)
		return 0;
	json_t *sa = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	static const char *const needed[] = {"project_id", "client_email", "private_key", "token_uri", NULL};
	int rc = -1;
	if (!json_is_object(sa)) {
		snprintf(err, err_len, "ServiceJson is not a JSON object");
		goto done;
	}
	for (const char *const *n = needed; *n; n++)
		if (!str_of(sa, *n) || !*str_of(sa, *n)) {
			snprintf(err, err_len, "ServiceJson has no %s: a service-account JSON has project_id, client_email, "
					       "private_key and token_uri", *n);
			goto done;
		}
	char why[256] = "";
	if (!jwt_key_ok(str_of(sa, "private_key"), "RS256", why, sizeof(why))) {
		snprintf(err, err_len, "ServiceJson's private_key is not an RSA private key in PEM: %s", why);
		goto done;
	}
	json_object_set_new(secret, "ServiceJson", json_string(text));
	json_object_set_new(info, "ProjectId", json_string(str_of(sa, "project_id")));
	json_object_del(req, "ServiceJson");
	rc = 0;
done:
	json_decref(sa);
	return rc;
}

/* The sealed secret in place of its fields: 0, or -1 when it cannot be built (out of memory). */
static int seal_into(json_t *input, json_t *secret, json_t *info)
{
	char *text = json_dumps(secret, JSON_COMPACT);
	char *sealed = text ? carillon_seal(SEAL_PURPOSE, text, strlen(text)) : NULL;
	if (text)
		sodium_memzero(text, strlen(text));
	free(text);
	json_object_set_new(info, "HasCredential", json_true());
	int rc = !sealed || json_object_set_new(input, "SealedSecret", json_string(sealed)) ||
		 json_object_set(input, "SecretInfo", info);
	free(sealed);
	return rc ? -1 : 0;
}

static void update_channel(struct carillon_req *r)
{
	const struct carillon_op *op = carillon_req_op(r);
	json_t *input = carillon_req_input(r);
	json_t *req = json_object_get(input, op->input_payload);
	json_t *secret = json_object(), *info = json_object();
	char err[512] = "Invalid channel credentials";
	bool gcm = !strcmp(op->name, "UpdateGcmChannel");
	int rc = !secret || !info ? -2
	       : gcm		  ? gcm_secret(req, secret, info, err, sizeof(err))
				  : apns_secret(req, secret, info, err, sizeof(err));
	if (!rc && json_object_size(secret) && seal_into(input, secret, info))
		rc = -2;
	json_decref(secret);
	json_decref(info);
	if (rc == -1)
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "%s", err);
	else if (rc)
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the channel could not be sealed");
	else
		carillon_api_sql_handler(r);
}

void carillon_pinpoint_channels_init(void)
{
	static const char *const updates[] = {"UpdateApnsChannel", "UpdateApnsSandboxChannel", "UpdateApnsVoipChannel",
					      "UpdateApnsVoipSandboxChannel", "UpdateGcmChannel", NULL};
	for (const char *const *n = updates; *n; n++)
		carillon_api_register("pinpoint", *n, update_channel);
}
