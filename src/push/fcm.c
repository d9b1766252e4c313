/*
 * FCM HTTP v1 sender (push.h): one notification to one registration token.
 *
 * Authentication is OAuth2 with the channel's service account: an RS256 JWT assertion
 * {iss = client_email, scope = firebase.messaging, aud = token_uri, iat, exp = iat + 1 h} is POSTed
 * form-encoded to the account's token_uri, and the access token it answers is cached per
 * (app id, channel version) until five minutes before it expires. Sends arriving while a token is
 * being fetched wait on that one request (a burst of 10,000 pushes costs one token request, not
 * 10,000). A 401 from FCM drops the cached token and retries the send once with a new one.
 *
 * The message carries a stable key derived from the intent: the data key "carillon.message_key"
 * (the dedupe key itself). FCM v1 has no idempotency key, and android.collapse_key is not one: a
 * device keeps at most four collapse keys, and collapsing is a display rule, not deduplication. A
 * retry after a lost answer can therefore reach the device twice; the app recognises the second
 * copy by this key.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "carillon/config.h"
#include "carillon/jwt.h"
#include "carillon/log.h"
#include "carillon/outbound.h"
#include "carillon/push.h"
#include "carillon/util.h"

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_ASSERTION_LIFETIME_S 3600
#define FCM_REFRESH_MARGIN_MS (5 * 60 * 1000)

struct fcm_send;

/* One service account as of one channel version, and its access token. Reference-counted: the
 * cache holds one reference while the entry is current, every send and the token request in
 * flight one each, so shutdown or a newer channel version never frees it under a pending request. */
struct fcm_account {
	struct fcm_account *next;
	char *app_id;
	int version;
	bool cached;
	int refs;
	char *client_email, *token_uri, *project_id, *key_id;
	struct carillon_jwt_key *key;
	char *access_token;          /* NULL until fetched */
	int64_t refresh_at_ms;       /* fetch a new one from this time on */
	bool fetching;
	struct fcm_send *waiting;    /* sends waiting for the token request in flight (FIFO) */
	struct fcm_send **waiting_tail;
	size_t n_waiting;
};

struct fcm_send {
	struct fcm_send *next;
	struct fcm_account *acct;
	char *body;
	size_t body_len;
	char *bearer;                /* the access token this attempt carried */
	bool reauthed;               /* a 401 already made us fetch a new token once */
	carillon_push_cb cb;
	void *arg;
};

static struct fcm_account *accounts;

/* ------------------------------------------------------------------------------ accounts */

static void account_unref(struct fcm_account *a)
{
	if (--a->refs > 0)
		return;
	free(a->app_id);
	free(a->client_email);
	free(a->token_uri);
	free(a->project_id);
	free(a->key_id);
	free(a->access_token);
	carillon_jwt_key_free(a->key);
	free(a);
}

static void account_uncache(struct fcm_account *a)
{
	for (struct fcm_account **p = &accounts; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			break;
		}
	}
	a->next = NULL;
	a->cached = false;
	account_unref(a);
}

static char *dup_field(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s && *s ? carillon_xstrdup(s) : NULL;
}

static bool http_url(const char *u)
{
	return u && (!strncasecmp(u, "https://", 8) || !strncasecmp(u, "http://", 7));
}

/* Project ids are lowercase letters, digits and dashes; anything that could leave the path
 * segment is refused rather than encoded. */
static bool valid_project_id(const char *p)
{
	if (!p || !*p || strlen(p) > 128)
		return false;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != ':' && *p != '_')
			return false;
	return true;
}

/* The service-account JSON of the opened secret ({ServiceJson: "<JSON text>"}, or the object
 * itself), parsed into a new account; NULL (logged) when it cannot authenticate. */
static struct fcm_account *account_new(const struct carillon_push_creds *c)
{
	const json_t *sj = json_object_get(c->secret, "ServiceJson");
	json_t *owned = NULL;
	if (json_is_string(sj)) {
		owned = json_loads(json_string_value(sj), 0, NULL);
		sj = owned;
	}
	if (!json_is_object(sj)) {
		log_warn("fcm: app %s: the GCM channel has no usable ServiceJson", c->app_id);
		json_decref(owned);
		return NULL;
	}
	struct fcm_account *a = carillon_xcalloc(1, sizeof(*a));
	a->refs = 1;
	a->app_id = carillon_xstrdup(c->app_id);
	a->version = c->version;
	a->client_email = dup_field(sj, "client_email");
	a->token_uri = dup_field(sj, "token_uri");
	a->key_id = dup_field(sj, "private_key_id");
	a->project_id = dup_field(c->settings, "ProjectId");
	if (!a->project_id)
		a->project_id = dup_field(sj, "project_id");
	a->waiting_tail = &a->waiting;
	const char *pem = json_string_value(json_object_get(sj, "private_key"));
	char err[128] = "no private_key";
	if (pem)
		a->key = carillon_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err));
	const char *why = !a->key                                          ? err
			  : strcmp(carillon_jwt_key_alg(a->key), "RS256")    ? "private_key is not an RSA key"
			  : !a->client_email                                 ? "no client_email"
			  : !http_url(a->token_uri)                          ? "token_uri is not an http(s) URL"
			  : !valid_project_id(a->project_id)                 ? "no valid project_id"
									     : NULL;
	json_decref(owned);
	if (why) {
		log_warn("fcm: app %s: the service account cannot be used: %s", c->app_id, why);
		account_unref(a);
		return NULL;
	}
	return a;
}

/* The account of (app id, version), with a reference for the caller. A newer version replaces the
 * cached older ones; a send still carrying an older version gets an uncached account of its own. */
static struct fcm_account *account_get(const struct carillon_push_creds *c)
{
	bool newer_cached = false;
	for (struct fcm_account *a = accounts; a; a = a->next) {
		if (strcmp(a->app_id, c->app_id))
			continue;
		if (a->version == c->version) {
			a->refs++;
			return a;
		}
		if (a->version > c->version)
			newer_cached = true;
	}
	struct fcm_account *a = account_new(c);
	if (!a)
		return NULL;
	if (!newer_cached) {
		for (struct fcm_account *o = accounts, *next; o; o = next) {
			next = o->next;
			if (!strcmp(o->app_id, c->app_id))
				account_uncache(o);
		}
		a->cached = true;
		a->next = accounts;
		accounts = a;
		a->refs++;
	}
	return a;
}

static bool token_fresh(const struct fcm_account *a)
{
	return a->access_token && carillon_now_ms() < a->refresh_at_ms;
}

/* ------------------------------------------------------------------------------ answers */

static void send_free(struct fcm_send *s)
{
	account_unref(s->acct);
	free(s->body);
	free(s->bearer);
	free(s);
}

static void finish(struct fcm_send *s, enum carillon_push_outcome o, long retry_after_ms, int status,
		   const char *detail)
{
	s->cb(s->arg, o, retry_after_ms, status, detail ? detail : "");
	send_free(s);
}

/* Retry-After: delay-seconds or an HTTP date; 0 when absent or unreadable. */

/* Google's error answer {"error": {"code", "message", "status", "details": [{"errorCode"}...]}}:
 * the FCM errorCode when there is one, else the status; written into out (may stay ""). */
static void error_code(const struct carillon_outbound_resp *r, char *out, size_t len, bool *names_token)
{
	out[0] = '\0';
	*names_token = false;
	json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
	json_t *err = json_object_get(doc, "error");
	const char *code = json_string_value(json_object_get(err, "status"));
	size_t i, j;
	json_t *d, *v;
	json_array_foreach(json_object_get(err, "details"), i, d) {
		const char *ec = json_string_value(json_object_get(d, "errorCode"));
		if (ec)
			code = ec;
		json_array_foreach(json_object_get(d, "fieldViolations"), j, v) {
			const char *f = json_string_value(json_object_get(v, "field"));
			if (f && !strcmp(f, "message.token"))
				*names_token = true;
		}
	}
	/* FCM's answer to a malformed token names it only in its message. */
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (msg && strstr(msg, "registration token"))
		*names_token = true;
	if (code)
		snprintf(out, len, "%s", code);
	json_decref(doc);
}

static int send_start(struct fcm_send *s);

static void on_message(void *arg, const struct carillon_outbound_resp *r)
{
	struct fcm_send *s = arg;
	if (r->error != CARILLON_OUTBOUND_OK) {
		log_info("fcm: app %s: send: %s", s->acct->app_id, r->error_detail);
		bool again = carillon_outbound_error_transient(r->error) || r->error == CARILLON_OUTBOUND_E_CANCELLED;
		finish(s, again ? CARILLON_PUSH_RETRY : CARILLON_PUSH_FAILED, 0, 0, carillon_outbound_error_name(r->error));
		return;
	}
	int st = (int)r->status;
	if (st == 200) {
		finish(s, CARILLON_PUSH_OK, 0, st, "");
		return;
	}
	char code[64];
	bool names_token;
	error_code(r, code, sizeof(code), &names_token);
	if (st == 401 && !s->reauthed) {
		/* The token was revoked or expired early: drop it (unless another send already replaced
		 * it) and try once more with a new one. */
		struct fcm_account *a = s->acct;
		s->reauthed = true;
		if (a->access_token && s->bearer && !strcmp(a->access_token, s->bearer))
			a->refresh_at_ms = 0;
		if (send_start(s))
			finish(s, CARILLON_PUSH_RETRY, 0, st, "outbound queue full");
		return;
	}
	if ((st == 404 && !strcmp(code, "UNREGISTERED")) ||
	    (st == 400 && (!strcmp(code, "INVALID_ARGUMENT") || !strcmp(code, "UNREGISTERED")) && names_token))
		finish(s, CARILLON_PUSH_INVALID_TOKEN, 0, st, code);
	else if (st == 429 || st >= 500)
		finish(s, CARILLON_PUSH_RETRY, carillon_outbound_retry_after_ms(r), st, code);
	else
		finish(s, CARILLON_PUSH_FAILED, 0, st, code);
}

/* ------------------------------------------------------------------------------ requests */

static int post_message(struct fcm_send *s)
{
	struct fcm_account *a = s->acct;
	free(s->bearer);
	s->bearer = carillon_xstrdup(a->access_token);
	struct carillon_buf url = {0}, auth = {0};
	const char *base = carillon_cfg.fcm_url && *carillon_cfg.fcm_url ? carillon_cfg.fcm_url : "https://fcm.googleapis.com";
	size_t blen = strlen(base);
	while (blen && base[blen - 1] == '/')
		blen--;
	carillon_buf_appendf(&url, "%.*s/v1/projects/%s/messages:send", (int)blen, base, a->project_id);
	carillon_buf_appendf(&auth, "Authorization: Bearer %s", a->access_token);
	const char *headers[] = {auth.data, "Content-Type: application/json; charset=UTF-8"};
	struct carillon_outbound_req req = {
		.method = "POST", .url = url.data, .headers = headers, .n_headers = 2,
		.body = s->body, .body_len = s->body_len,
	};
	int rc = carillon_outbound_request(&req, on_message, s);
	carillon_buf_free(&url);
	carillon_buf_free(&auth);
	return rc;
}

/* The signed assertion of RFC 7523 as Google's token endpoint wants it. */
static char *assertion(const struct fcm_account *a)
{
	int64_t now = carillon_now_ms() / 1000;
	json_t *hdr = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	if (a->key_id)
		json_object_set_new(hdr, "kid", json_string(a->key_id));
	json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", a->client_email, "scope", FCM_SCOPE, "aud",
				   a->token_uri, "iat", (json_int_t)now, "exp", (json_int_t)(now + FCM_ASSERTION_LIFETIME_S));
	char *h = json_dumps(hdr, JSON_COMPACT);
	char *c = json_dumps(claims, JSON_COMPACT);
	char *jwt = h && c ? carillon_jwt_sign(a->key, h, c) : NULL;
	free(h);
	free(c);
	json_decref(hdr);
	json_decref(claims);
	return jwt;
}

/* Read the token answer into the account: NULL, or why it is unusable. */
static const char *take_token(struct fcm_account *a, const struct carillon_outbound_resp *r)
{
	json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
	const char *tok = json_string_value(json_object_get(doc, "access_token"));
	json_t *exp = json_object_get(doc, "expires_in");
	const char *why = NULL;
	if (!tok || !*tok || strpbrk(tok, "\r\n"))
		why = "token answer without access_token";
	else if (!json_is_integer(exp) || json_integer_value(exp) <= 0)
		why = "token answer without expires_in";
	if (!why) {
		int64_t life_ms = (int64_t)json_integer_value(exp) * 1000;
		/* Five minutes before expiry; a token living less than ten minutes is used for half its life. */
		int64_t margin = life_ms > 2 * FCM_REFRESH_MARGIN_MS ? FCM_REFRESH_MARGIN_MS : life_ms / 2;
		free(a->access_token);
		a->access_token = carillon_xstrdup(tok);
		a->refresh_at_ms = carillon_now_ms() + life_ms - margin;
	}
	json_decref(doc);
	return why;
}

static void on_token(void *arg, const struct carillon_outbound_resp *r)
{
	struct fcm_account *a = arg;
	a->fetching = false;
	enum carillon_push_outcome fail = CARILLON_PUSH_OK;
	char detail[96] = "";
	int st = (int)r->status;
	if (r->error != CARILLON_OUTBOUND_OK) {
		fail = carillon_outbound_error_transient(r->error) || r->error == CARILLON_OUTBOUND_E_CANCELLED
			       ? CARILLON_PUSH_RETRY
			       : CARILLON_PUSH_FAILED;
		snprintf(detail, sizeof(detail), "token request: %s", carillon_outbound_error_name(r->error));
		log_warn("fcm: app %s: token request to %s: %s", a->app_id, a->token_uri, r->error_detail);
	} else if (st != 200) {
		/* 400 invalid_grant / 401 invalid_client: the credentials; 429 / 5xx: try again later. */
		fail = st == 429 || st >= 500 ? CARILLON_PUSH_RETRY : CARILLON_PUSH_FAILED;
		json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
		const char *e = json_string_value(json_object_get(doc, "error"));
		snprintf(detail, sizeof(detail), "token request: HTTP %d%s%s", st, e ? " " : "", e ? e : "");
		json_decref(doc);
	} else {
		const char *why = take_token(a, r);
		if (why) {
			fail = CARILLON_PUSH_FAILED;
			snprintf(detail, sizeof(detail), "%s", why);
		}
	}
	if (fail != CARILLON_PUSH_OK)
		log_warn("fcm: app %s: %s", a->app_id, detail);
	/* Hand the token (or the failure) to every send that waited for it. */
	struct fcm_send *w = a->waiting;
	a->waiting = NULL;
	a->waiting_tail = &a->waiting;
	a->n_waiting = 0;
	while (w) {
		struct fcm_send *next = w->next;
		w->next = NULL;
		if (fail != CARILLON_PUSH_OK)
			finish(w, fail, fail == CARILLON_PUSH_RETRY ? carillon_outbound_retry_after_ms(r) : 0, st, detail);
		else if (post_message(w))
			finish(w, CARILLON_PUSH_RETRY, 0, 0, "outbound queue full");
		w = next;
	}
	account_unref(a);
}

static int fetch_token(struct fcm_account *a)
{
	char *jwt = assertion(a);
	if (!jwt)
		return -1;
	struct carillon_buf form = {0};
	carillon_buf_appendf(&form, "grant_type=%s&assertion=%s",
			     "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer", jwt);
	free(jwt);
	const char *headers[] = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"};
	struct carillon_outbound_req req = {
		.method = "POST", .url = a->token_uri, .headers = headers, .n_headers = 2,
		.body = form.data, .body_len = form.len,
	};
	int rc = carillon_outbound_request(&req, on_token, a);
	carillon_buf_free(&form);
	if (rc == 0) {
		a->fetching = true;
		a->refs++;
	}
	return rc;
}

/* Send now with the cached token, or wait for the token request (starting one when none runs).
 * 0, or -1 when nothing was accepted (the caller still owns s). */
static int send_start(struct fcm_send *s)
{
	struct fcm_account *a = s->acct;
	if (token_fresh(a) && !a->fetching)
		return post_message(s);
	/* Bounded like the outbound queue the waiting sends are about to join. */
	if (a->n_waiting >= (size_t)(carillon_cfg.outbound_max_queued > 0 ? carillon_cfg.outbound_max_queued : 1))
		return -1;
	if (!a->fetching && fetch_token(a))
		return -1;
	s->next = NULL;
	*a->waiting_tail = s;
	a->waiting_tail = &s->next;
	a->n_waiting++;
	return 0;
}

/* ------------------------------------------------------------------------------ the message */

/* The same body as build_body's, written as text around the message's prepared data_json: no
 * jansson tree per push. NULL when a string is not valid UTF-8 (as build_body). */
/* A string literal appended without its NUL. */
#define LIT(b, s) carillon_buf_append((b), (s), sizeof(s) - 1)

static char *build_body_text(const char *device_token, const struct carillon_push_msg *m, const char *members,
			     size_t members_len, size_t *len)
{
	struct carillon_buf b = {0};
	bool ok = true, any_data = members_len || (m->dedupe_key && *m->dedupe_key);
	LIT(&b, "{\"message\":{\"token\":");
	ok = !carillon_json_string(&b, device_token);
	if (ok && any_data) {
		LIT(&b, ",\"data\":{");
		carillon_buf_append(&b, members, members_len);
		if (m->dedupe_key && *m->dedupe_key) {
			carillon_buf_appendf(&b, "%s\"carillon.message_key\":", members_len ? "," : "");
			ok = !carillon_json_string(&b, m->dedupe_key);
		}
		LIT(&b, "}");
	}
	if (ok && !m->silent && (m->title || m->body)) {
		LIT(&b, ",\"notification\":{");
		ok = !carillon_push_json_title_body(&b, m->title, m->body);
		LIT(&b, "}");
	}
	if (m->ttl_seconds > 0)
		carillon_buf_appendf(&b, ",\"android\":{\"priority\":\"high\",\"ttl\":\"%lds\"}}}", m->ttl_seconds);
	else
		carillon_buf_appendf(&b, ",\"android\":{\"priority\":\"high\"}}}");
	if (!ok) {
		carillon_buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

static char *build_body(const char *device_token, const struct carillon_push_msg *m, size_t *len)
{
	const char *members;
	size_t members_len;
	/* A prepared data text (channel messages) holds only string values: spliced as it is. */
	if (carillon_push_data_members(m->data_json, &members, &members_len))
		return build_body_text(device_token, m, members, members_len, len);
	json_t *msg = json_pack("{s:s}", "token", device_token);
	json_t *data = json_object();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)m->data, k, v) {
		/* FCM data values are strings: anything else travels as its JSON text. */
		if (json_is_string(v)) {
			json_object_set(data, k, v);
		} else if (!json_is_null(v)) {
			char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			if (t)
				json_object_set_new(data, k, json_string(t));
			free(t);
		}
	}
	if (m->dedupe_key && *m->dedupe_key)
		json_object_set_new(data, "carillon.message_key", json_string(m->dedupe_key));
	if (json_object_size(data))
		json_object_set(msg, "data", data);
	json_decref(data);
	if (!m->silent && (m->title || m->body)) {
		json_t *n = json_object();
		if (m->title)
			json_object_set_new(n, "title", json_string(m->title));
		if (m->body)
			json_object_set_new(n, "body", json_string(m->body));
		json_object_set_new(msg, "notification", n);
	}
	json_t *android = json_pack("{s:s}", "priority", "high");
	if (m->ttl_seconds > 0) {
		char ttl[32];
		snprintf(ttl, sizeof(ttl), "%lds", m->ttl_seconds);
		json_object_set_new(android, "ttl", json_string(ttl));
	}
	json_object_set_new(msg, "android", android);
	json_t *doc = json_pack("{s:o}", "message", msg);
	char *out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	*len = out ? strlen(out) : 0;
	return out;
}

/* ------------------------------------------------------------------------------ interface */

int carillon_fcm_send(const struct carillon_push_creds *creds, const char *device_token,
		      const struct carillon_push_msg *msg, carillon_push_cb cb, void *arg)
{
	if (!creds || !creds->app_id || !creds->secret || !device_token || !*device_token || !msg || !cb)
		return -1;
	/* Strings that are not valid UTF-8 make the body NULL; so does a NULL token in json_pack. */
	size_t len;
	char *body = build_body(device_token, msg, &len);
	if (!body)
		return -1;
	struct fcm_account *a = account_get(creds);
	if (!a) {
		free(body);
		return -1;
	}
	struct fcm_send *s = carillon_xcalloc(1, sizeof(*s));
	s->acct = a;
	s->body = body;
	s->body_len = len;
	s->cb = cb;
	s->arg = arg;
	if (send_start(s)) {
		send_free(s);
		return -1;
	}
	return 0;
}

void carillon_fcm_shutdown(void)
{
	/* Sends still waiting keep their account alive until their callbacks have run (the outbound
	 * module's shutdown cancels them). */
	while (accounts)
		account_uncache(accounts);
}
