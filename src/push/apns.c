/*
 * APNs sender (include/carillon/push.h): one notification per HTTP/2 request,
 * POST {CARILLON_APNS_URL | CARILLON_APNS_SANDBOX_URL}/3/device/<token>, over the outbound module
 * (which multiplexes the requests to one origin over one connection; with certificate auth, one
 * per client certificate).
 *
 * Authentication per channel, by its DefaultAuthenticationMethod (else whichever secret it has):
 *   token:       authorization: bearer <ES256 JWT {alg, kid: TokenKeyId} {iss: TeamId, iat}>. Apple
 *                refuses a token refreshed more often than every 20 minutes or older than 60: one
 *                token per channel is reused and replaced after CARILLON_APNS_TOKEN_REFRESH (40 min).
 *   certificate: the channel's Certificate and PrivateKey as the TLS client certificate.
 * The parsed key and the current token are cached per (app id, channel type, channel version), so an
 * updated channel is used at once; entries unused for an hour are dropped when the cache is swept.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "carillon/config.h"
#include "carillon/hmap.h"
#include "carillon/jwt.h"
#include "carillon/log.h"
#include "carillon/outbound.h"
#include "carillon/push.h"
#include "carillon/util.h"

#define APNS_TOKEN_REFRESH_MS (40 * 60 * 1000)
#define APNS_CACHE_IDLE_MS (60 * 60 * 1000)  /* unused this long: dropped at the next sweep */
#define APNS_TOKEN_MAX 200   /* APNs device tokens are 64 hex digits today; room for longer ones */

struct apns_auth {
	char *key;                    /* "app_id|channel_type|version" */
	struct carillon_jwt_key *jwt_key;
	char *jwt;
	int64_t jwt_made_ms;
	int64_t used_ms;
};

static struct carillon_hmap cache;   /* "app_id|channel_type|version" -> struct apns_auth */
static size_t n_cache, sweep_at;     /* sweep the idle entries when the cache doubles */

struct apns_req {
	carillon_push_cb cb;
	void *arg;
	char cache_key[160];
};

static void auth_free(struct apns_auth *a)
{
	if (!a)
		return;
	carillon_jwt_key_free(a->jwt_key);
	free(a->jwt);
	free(a->key);
	free(a);
}

static struct apns_auth *auth_find(const char *key)
{
	return carillon_hmap_get(&cache, key);
}

struct sweep {
	int64_t now;
	char **keys;
	size_t n;
};

static void sweep_one(const char *key, void *value, void *arg)
{
	struct sweep *sw = arg;
	struct apns_auth *a = value;
	if (sw->now - a->used_ms > APNS_CACHE_IDLE_MS)
		sw->keys[sw->n++] = a->key;
}

/* Drop the entries unused for an hour (the map cannot change while it is visited: keys first). */
static void auth_sweep(int64_t now)
{
	struct sweep sw = {now, carillon_xcalloc(n_cache ? n_cache : 1, sizeof(char *)), 0};
	carillon_hmap_each(&cache, sweep_one, &sw);
	for (size_t i = 0; i < sw.n; i++) {
		struct apns_auth *a = carillon_hmap_del(&cache, sw.keys[i]);
		auth_free(a);
		n_cache--;
	}
	free(sw.keys);
	sweep_at = n_cache * 2 > 64 ? n_cache * 2 : 64;
}

static struct apns_auth *auth_add(const char *key)
{
	int64_t now = carillon_now_ms();
	if (n_cache >= sweep_at)
		auth_sweep(now);
	struct apns_auth *a = carillon_xcalloc(1, sizeof(*a));
	a->key = carillon_xstrdup(key);
	a->used_ms = now;
	carillon_hmap_put(&cache, key, a);
	n_cache++;
	return a;
}

static void auth_forget(const char *key)
{
	struct apns_auth *a = carillon_hmap_del(&cache, key);
	if (a) {
		auth_free(a);
		n_cache--;
	}
}

static const char *jstr(const json_t *obj, const char *name)
{
	const char *s = json_string_value(json_object_get(obj, name));
	return s && *s ? s : NULL;
}

/* The provider token of a token-auth channel: cached, made again after 40 minutes. NULL (logged)
 * when the channel's key or ids are unusable. */
static const char *provider_token(const struct carillon_push_creds *c, const char *cache_key)
{
	const char *pem = jstr(c->secret, "TokenKey"), *kid = jstr(c->settings, "TokenKeyId"),
		   *team = jstr(c->settings, "TeamId");
	if (!pem || !kid || !team) {
		log_warn("apns: channel %s of app %s: token auth needs TokenKey, TokenKeyId and TeamId", c->channel_type,
			 c->app_id);
		return NULL;
	}
	int64_t now = carillon_now_ms();
	struct apns_auth *a = auth_find(cache_key);
	if (!a)
		a = auth_add(cache_key);
	a->used_ms = now;
	if (!a->jwt_key) {
		char err[160];
		a->jwt_key = carillon_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err));
		if (!a->jwt_key || strcmp(carillon_jwt_key_alg(a->jwt_key), "ES256")) {
			log_warn("apns: the TokenKey of channel %s of app %s is not a P-256 key: %s", c->channel_type,
				 c->app_id, a->jwt_key ? "not ES256" : err);
			auth_forget(cache_key);
			return NULL;
		}
	}
	if (a->jwt && now - a->jwt_made_ms < APNS_TOKEN_REFRESH_MS)
		return a->jwt;
	json_t *hdr = json_pack("{s:s, s:s}", "alg", "ES256", "kid", kid);
	json_t *claims = json_pack("{s:s, s:I}", "iss", team, "iat", (json_int_t)(now / 1000));
	char *h = json_dumps(hdr, JSON_COMPACT), *cl = json_dumps(claims, JSON_COMPACT);
	free(a->jwt);
	a->jwt = h && cl ? carillon_jwt_sign(a->jwt_key, h, cl) : NULL;
	a->jwt_made_ms = now;
	free(h);
	free(cl);
	json_decref(hdr);
	json_decref(claims);
	return a->jwt;
}

/* apns-id: a UUID derived from the dedupe key, so every attempt of one intent carries the same id. */
static void apns_id(const char *dedupe_key, char out[37])
{
	unsigned char h[16];
	crypto_generichash(h, sizeof(h), (const unsigned char *)dedupe_key, strlen(dedupe_key), NULL, 0);
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x50); /* version 5: name-based */
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2],
		 h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
}

/* payload_json's body around a prepared data text (no "aps" key in it): no jansson tree per push. */
static char *payload_text(const struct carillon_push_msg *m, const char *members, size_t members_len)
{
	struct carillon_buf b = {0};
	bool ok = true;
	carillon_buf_append(&b, "{", 1);
	if (members_len) {
		carillon_buf_append(&b, members, members_len);
		carillon_buf_append(&b, ",", 1);
	}
	if (m->silent) {
		carillon_buf_appendf(&b, "\"aps\":{\"content-available\":1}}");
	} else {
		carillon_buf_appendf(&b, "\"aps\":{\"alert\":{");
		ok = !carillon_push_json_title_body(&b, m->title, m->body);
		carillon_buf_appendf(&b, "}}}");
	}
	if (!ok) {
		carillon_buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* {"aps": {...}, data keys...}: the alert (title, body) or content-available for a silent push. */
static char *payload_json(const struct carillon_push_msg *m)
{
	const char *members;
	size_t members_len;
	if (carillon_push_data_members(m->data_json, &members, &members_len))
		return payload_text(m, members, members_len);
	json_t *aps = json_object();
	if (m->silent) {
		json_object_set_new(aps, "content-available", json_integer(1));
	} else {
		json_t *alert = json_object();
		if (m->title)
			json_object_set_new(alert, "title", json_string(m->title));
		if (m->body)
			json_object_set_new(alert, "body", json_string(m->body));
		json_object_set_new(aps, "alert", alert);
	}
	json_t *root = json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)m->data, k, v)
		if (strcmp(k, "aps"))
			json_object_set(root, k, v);
	json_object_set_new(root, "aps", aps);
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

/* Retry-After: delay-seconds or an HTTP-date; 0 when absent or unreadable. */

static void on_answer(void *arg, const struct carillon_outbound_resp *r)
{
	struct apns_req *q = arg;
	enum carillon_push_outcome out;
	char reason[128] = "";
	if (r->error != CARILLON_OUTBOUND_OK) {
		/* As FCM: connect, timeout, protocol (and a shutdown) come back later; TLS, too_large and
		 * internal are configuration or peer problems a retry will not fix. */
		bool again = carillon_outbound_error_transient(r->error) || r->error == CARILLON_OUTBOUND_E_CANCELLED;
		snprintf(reason, sizeof(reason), "%s: %s", carillon_outbound_error_name(r->error), r->error_detail);
		q->cb(q->arg, again ? CARILLON_PUSH_RETRY : CARILLON_PUSH_FAILED, 0, 0, reason);
		free(q);
		return;
	}
	json_t *body = r->body_len ? json_loads(r->body, 0, NULL) : NULL;
	const char *rs = json_string_value(json_object_get(body, "reason"));
	snprintf(reason, sizeof(reason), "%s", rs ? rs : "");
	json_decref(body);
	if (r->status == 200)
		out = CARILLON_PUSH_OK;
	else if (r->status == 410 ||
		 (r->status == 400 && (!strcmp(reason, "BadDeviceToken") || !strcmp(reason, "DeviceTokenNotForTopic"))))
		out = CARILLON_PUSH_INVALID_TOKEN;
	else if (r->status == 429 || r->status >= 500)
		out = CARILLON_PUSH_RETRY;
	else if (r->status == 403 && !strcmp(reason, "ExpiredProviderToken")) {
		auth_forget(q->cache_key); /* a fresh token on the next attempt */
		out = CARILLON_PUSH_RETRY;
	} else
		out = CARILLON_PUSH_FAILED;
	q->cb(q->arg, out, out == CARILLON_PUSH_RETRY ? carillon_outbound_retry_after_ms(r) : 0, (int)r->status, reason);
	free(q);
}

static bool token_ok(const char *t)
{
	size_t n = strlen(t);
	if (!n || n > APNS_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)t[i]))
			return false;
	return true;
}

/* Token auth unless the channel says CERTIFICATE or has only a certificate. */
static bool uses_certificate(const struct carillon_push_creds *c)
{
	const char *m = jstr(c->settings, "DefaultAuthenticationMethod");
	if (m && !strcasecmp(m, "CERTIFICATE"))
		return true;
	if (m && !strcasecmp(m, "TOKEN"))
		return false;
	return !jstr(c->secret, "TokenKey") && jstr(c->secret, "Certificate");
}

int carillon_apns_send(const struct carillon_push_creds *c, const char *device_token,
		       const struct carillon_push_msg *m, carillon_push_cb cb, void *arg)
{
	const char *bundle = jstr(c->settings, "BundleId");
	if (!device_token || !token_ok(device_token) || !bundle || !c->channel_type)
		return -1;
	bool sandbox = strstr(c->channel_type, "SANDBOX") != NULL;
	struct apns_req *q = carillon_xcalloc(1, sizeof(*q));
	q->cb = cb;
	q->arg = arg;
	snprintf(q->cache_key, sizeof(q->cache_key), "%s|%s|%d", c->app_id, c->channel_type, c->version);

	const char *headers[8];
	size_t nh = 0;
	char auth[1024] = "", topic[300], type[40], prio[24], expiry[48], id[64], uuid[37];
	const char *cert = NULL, *key = NULL;
	if (uses_certificate(c)) {
		cert = jstr(c->secret, "Certificate");
		key = jstr(c->secret, "PrivateKey");
		if (!cert || !key) {
			free(q);
			return -1;
		}
	} else {
		const char *jwt = provider_token(c, q->cache_key);
		if (!jwt || strlen(jwt) > sizeof(auth) - 32) {
			free(q);
			return -1;
		}
		snprintf(auth, sizeof(auth), "authorization: bearer %s", jwt);
		headers[nh++] = auth;
	}
	size_t bl = strlen(bundle);
	bool has_voip = bl > 5 && !strcmp(bundle + bl - 5, ".voip");
	snprintf(topic, sizeof(topic), "apns-topic: %s%s", bundle, m->voip && !has_voip ? ".voip" : "");
	snprintf(type, sizeof(type), "apns-push-type: %s", m->voip ? "voip" : m->silent ? "background" : "alert");
	snprintf(prio, sizeof(prio), "apns-priority: %d", m->silent ? 5 : 10);
	apns_id(m->dedupe_key ? m->dedupe_key : "", uuid);
	snprintf(id, sizeof(id), "apns-id: %s", uuid);
	headers[nh++] = topic;
	headers[nh++] = type;
	headers[nh++] = prio;
	headers[nh++] = id;
	if (m->ttl_seconds > 0) {
		snprintf(expiry, sizeof(expiry), "apns-expiration: %" PRId64, carillon_now_ms() / 1000 + m->ttl_seconds);
		headers[nh++] = expiry;
	}
	headers[nh++] = "content-type: application/json";

	char url[600];
	snprintf(url, sizeof(url), "%s/3/device/%s", sandbox ? carillon_cfg.apns_sandbox_url : carillon_cfg.apns_url,
		 device_token);
	char *body = payload_json(m);
	struct carillon_outbound_req req = {
		.method = "POST", .url = url, .headers = headers, .n_headers = nh,
		.body = body, .body_len = body ? strlen(body) : 0,
		.client_cert_pem = cert, .client_key_pem = key,
	};
	int rc = body ? carillon_outbound_request(&req, on_answer, q) : -1;
	free(body);
	if (rc)
		free(q);
	return rc;
}

static void free_one(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	auth_free(value);
}

void carillon_apns_shutdown(void)
{
	carillon_hmap_each(&cache, free_one, NULL);
	carillon_hmap_free(&cache);
	memset(&cache, 0, sizeof(cache));
	n_cache = 0;
	sweep_at = 0;
}
