/*
 * Pinpoint's direct sends: SendMessages (to Addresses, each with its ChannelType, and to the app's
 * Endpoints by id) and SendUsersMessages (to every endpoint of each of the Users). The handler
 * delivers through the push senders itself, not through the outbox: the answer carries every
 * provider's result, so it waits for them (each send is bounded by the outbound timeout; a guard
 * timer answers for any still missing after twice that, plus a second). Nothing blocks the loop.
 *
 *   1. check the request (at most 100 targets, no templates, substitutions or raw content);
 *   2. one read (carillon_api.pinpoint_send_targets): the app's channels and the named endpoints;
 *   3. per target: its channel (enabled, secret opened once per request), its message (the channel's
 *      own message over DefaultPushNotificationMessage, the target's overrides on top), one send;
 *   4. when all have answered: the tokens the providers called dead deactivate the endpoints holding
 *      them (carillon_api.pinpoint_send_dead_tokens), then the answer.
 *
 * Per-target results follow Pinpoint's MessageResult / EndpointMessageResult: DeliveryStatus
 * SUCCESSFUL, THROTTLED (429), TEMPORARY_FAILURE (5xx, timeouts, connection failures),
 * PERMANENT_FAILURE (a dead token, a refused message, a channel that is missing or disabled, an
 * endpoint that is unknown or inactive), OPT_OUT, DUPLICATE (a device already sent to in this
 * request), UNKNOWN_FAILURE (the sender refused at once); StatusCode is the provider's HTTP status
 * where there is one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/model.h"
#include "carillon/push.h"
#include "carillon/util.h"
#include "pinpoint_internal.h"

#define MAX_TARGETS 100          /* Pinpoint's limit of addresses + endpoints (or users) per request */
#define SEAL_PURPOSE "pinpoint-channel"

static uv_loop_t *send_loop;

struct job;

struct target {
	struct job *job;
	char *key;               /* the address, or the endpoint id */
	char *user_id;           /* SendUsersMessages: whose endpoint */
	bool endpoint;           /* an endpoint (EndpointResult) rather than an address (Result) */
	char *address, *type;    /* NULL when unknown (an endpoint not found) */
	json_t *overrides;       /* AddressConfiguration / EndpointSendConfiguration (borrowed from the input) */
	char message_id[37];
	bool sent;               /* handed to a sender */
	bool pending, dead_token;
	json_t *result;          /* the result object once known */
};

struct channel {
	const char *type;        /* borrowed from the targets document */
	bool enabled;
	int version;
	json_t *settings;        /* borrowed */
	json_t *secret;          /* opened; NULL when it cannot be */
};

struct job {
	struct carillon_req *r;  /* NULL once answered */
	bool users;              /* SendUsersMessages */
	char *app_id;
	json_t *input;           /* a reference to the validated input */
	const json_t *config;    /* MessageConfiguration (in input) */
	json_t *doc;             /* the targets document of the read */
	struct channel *channels;
	size_t n_channels;
	struct target *targets;
	size_t n_targets, cap_targets;
	size_t pending;          /* sends not answered yet */
	bool finishing;          /* job_finish ran: the answer is being made */
	bool db_wait;            /* waiting for the dead-token update */
	bool released;
	bool has_guard;
	uv_timer_t guard;        /* answers for sends still missing at the deadline */
};

/* ------------------------------------------------------------------------------ results */

static const char *str_of(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void set_result(struct target *t, const char *status, int code, const char *message)
{
	json_decref(t->result);
	t->result = json_pack("{s:s, s:i, s:s, s:s}", "DeliveryStatus", status, "StatusCode", code, "StatusMessage",
			      message ? message : "", "MessageId", t->message_id);
	if (!t->result)   /* a provider's detail that is not UTF-8: say less */
		t->result = json_pack("{s:s, s:i, s:s}", "DeliveryStatus", status, "StatusCode", code, "MessageId",
				      t->message_id);
	if (t->endpoint && t->address)
		json_object_set_new(t->result, "Address", json_string(t->address));
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->n_targets; i++) {
		struct target *t = &j->targets[i];
		free(t->key);
		free(t->user_id);
		free(t->address);
		free(t->type);
		json_decref(t->result);
	}
	for (size_t i = 0; i < j->n_channels; i++)
		json_decref(j->channels[i].secret);
	free(j->channels);
	free(j->targets);
	free(j->app_id);
	json_decref(j->doc);
	json_decref(j->input);
	free(j);
}

static void guard_closed(uv_handle_t *h) { job_free(h->data); }

/* Free the job once it has answered and nothing can call back into it any more. */
static void maybe_release(struct job *j)
{
	if (j->r || j->pending || j->db_wait || j->released)
		return;
	j->released = true;
	if (j->has_guard)
		uv_close((uv_handle_t *)&j->guard, guard_closed);
	else
		job_free(j);
}

/* The answer: MessageResponse {ApplicationId, RequestId, Result: {address: result}, EndpointResult:
 * {endpoint id: result}} or SendUsersMessageResponse {ApplicationId, RequestId, Result: {user id:
 * {endpoint id: result}}}, as the output document (the payload member holds it). */
static json_t *answer_doc(struct job *j)
{
	json_t *result = json_object(), *eps = json_object();
	for (size_t i = 0; i < j->n_targets; i++) {
		struct target *t = &j->targets[i];
		if (j->users) {
			json_t *u = json_object_get(result, t->user_id);
			if (!u) {
				u = json_object();
				json_object_set_new(result, t->user_id, u);
			}
			if (t->key)   /* a user without endpoints is an empty map */
				json_object_set(u, t->key, t->result);
		} else {
			json_object_set(t->endpoint ? eps : result, t->key, t->result);
		}
	}
	json_t *body = json_pack("{s:s, s:s, s:o}", "ApplicationId", j->app_id, "RequestId", carillon_req_id(j->r),
				 "Result", result);
	if (j->users)
		json_decref(eps);
	else
		json_object_set_new(body, "EndpointResult", eps);
	return json_pack("{s:o}", j->users ? "SendUsersMessageResponse" : "MessageResponse", body);
}

static void reply_now(struct job *j)
{
	struct carillon_req *r = j->r;
	const struct carillon_op *op = carillon_req_op(r);
	json_t *doc = answer_doc(j);
	j->r = NULL;
	if (!doc)
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "The answer could not be built");
	else
		carillon_reply_json(r, op->response_code, carillon_model_output_body(op, doc));
}

static void dead_tokens_recorded(void *arg, const struct carillon_db_result *res)
{
	struct job *j = arg;
	j->db_wait = false;
	if (!res->res)
		log_warn("pinpoint send: app %s: dead device tokens not recorded: %s", j->app_id, res->message);
	reply_now(j);
	maybe_release(j);
}

/* Every send answered, or the deadline passed: record the dead tokens, then answer. */
static void job_finish(struct job *j)
{
	if (j->finishing)
		return;
	j->finishing = true;
	if (j->has_guard)
		uv_timer_stop(&j->guard);
	json_t *dead = json_array();
	for (size_t i = 0; i < j->n_targets; i++) {
		struct target *t = &j->targets[i];
		if (t->pending) {
			t->pending = false;
			set_result(t, "TEMPORARY_FAILURE", 504, "No answer from the push service in time");
		}
		if (t->dead_token)
			json_array_append_new(dead, json_pack("{s:s, s:s}", "type", t->type, "address", t->address));
	}
	char *text = json_array_size(dead) ? json_dumps(dead, JSON_COMPACT) : NULL;
	json_decref(dead);
	const char *params[2] = {j->app_id, text};
	j->db_wait = text && !carillon_db_query("select carillon_api.pinpoint_send_dead_tokens($1, $2::jsonb)", 2,
						params, dead_tokens_recorded, j);
	if (text && !j->db_wait)
		log_warn("pinpoint send: app %s: dead device tokens not recorded: database queue full", j->app_id);
	free(text);
	if (!j->db_wait) {
		reply_now(j);
		maybe_release(j);
	}
}

static void on_guard(uv_timer_t *t) { job_finish(t->data); }

/* ------------------------------------------------------------------------------ sending */

static void on_sent(void *arg, enum carillon_push_outcome o, long retry_after_ms, int status, const char *detail)
{
	struct target *t = arg;
	struct job *j = t->job;
	j->pending--;
	if (t->pending) {   /* else the deadline has already answered for it */
		t->pending = false;
		char msg[300];
		switch (o) {
		case CARILLON_PUSH_OK:
			set_result(t, "SUCCESSFUL", status ? status : 200, "OK");
			break;
		case CARILLON_PUSH_RETRY:
			snprintf(msg, sizeof(msg), "%s%s", status ? "The push service is unavailable: " : "The push service did not answer: ",
				 *detail ? detail : "no reason given");
			set_result(t, status == 429 ? "THROTTLED" : "TEMPORARY_FAILURE", status ? status : 503, msg);
			break;
		case CARILLON_PUSH_INVALID_TOKEN:
			snprintf(msg, sizeof(msg), "The device token is not valid: %s", *detail ? detail : "refused");
			set_result(t, "PERMANENT_FAILURE", status ? status : 410, msg);
			t->dead_token = true;
			break;
		default:
			snprintf(msg, sizeof(msg), "The push service refused the message: %s", *detail ? detail : "no reason given");
			set_result(t, "PERMANENT_FAILURE", status ? status : 500, msg);
		}
	}
	if (!j->pending && !j->finishing)
		job_finish(j);
	else
		maybe_release(j);
}

static bool is_apns(const char *type) { return type && !strncmp(type, "APNS", 4); }
static bool is_push(const char *type) { return type && (!strcmp(type, "GCM") || is_apns(type)); }

/* A member of the channel's own message (GCMMessage / APNSMessage), else of
 * DefaultPushNotificationMessage. */
static json_t *msg_field(const struct job *j, const char *type, const char *name)
{
	json_t *own = json_object_get(json_object_get(j->config, is_apns(type) ? "APNSMessage" : "GCMMessage"), name);
	return own ? own : json_object_get(json_object_get(j->config, "DefaultPushNotificationMessage"), name);
}

/* The data keys beside the notification: Data's own keys, then Pinpoint's (which win): the same
 * pinpoint.* keys a Chime channel message carries, Data again as pinpoint.jsonBody. */
static json_t *message_data(const struct job *j, const char *type, const char *title, const char *body, bool silent)
{
	json_t *data = json_object();
	json_t *given = msg_field(j, type, "Data");
	const char *k;
	json_t *v;
	json_object_foreach(given, k, v)
		json_object_set(data, k, v);
	const char *action = json_string_value(msg_field(j, type, "Action"));
	const char *url = json_string_value(msg_field(j, type, "Url"));
	const char *action_key = action && url && !strcmp(action, "URL")         ? "pinpoint.url"
				 : action && url && !strcmp(action, "DEEP_LINK") ? "pinpoint.deeplink"
										 : NULL;
	char *text = json_object_size(given) ? json_dumps(given, JSON_COMPACT) : NULL;
	carillon_push_pinpoint_data(data, action_key, url, title, body, silent, text);
	free(text);
	return data;
}

static struct channel *channel_of(struct job *j, const char *type)
{
	for (size_t i = 0; i < j->n_channels; i++)
		if (!strcmp(j->channels[i].type, type))
			return &j->channels[i];
	return NULL;
}

/* A target already sent to in this request: the same device on the same channel. */
static const struct target *duplicate_of(const struct job *j, const struct target *t)
{
	for (const struct target *o = j->targets; o < t; o++)
		if (o->sent && !strcmp(o->type, t->type) && !strcmp(o->address, t->address))
			return o;
	return NULL;
}

/* One target: its result now (not sendable) or one send. */
static void send_target(struct job *j, struct target *t, const json_t *ep)
{
	char msg[200];
	if (ep && !strcmp(str_of(ep, "status") ? str_of(ep, "status") : "", "INACTIVE")) {
		set_result(t, "PERMANENT_FAILURE", 400, "The endpoint is inactive");
		return;
	}
	if (ep && !strcmp(str_of(ep, "opt_out") ? str_of(ep, "opt_out") : "NONE", "ALL")) {
		set_result(t, "OPT_OUT", 400, "The endpoint has opted out (OptOut ALL)");
		return;
	}
	if (!t->address || !*t->address || !t->type) {
		set_result(t, "PERMANENT_FAILURE", 400, "The endpoint has no address or channel type");
		return;
	}
	if (!is_push(t->type)) {
		snprintf(msg, sizeof(msg), "Carillon delivers push notifications only (APNS, APNS_SANDBOX, APNS_VOIP, "
					   "APNS_VOIP_SANDBOX, GCM), not %.40s", t->type);
		set_result(t, "PERMANENT_FAILURE", 400, msg);
		return;
	}
	const struct target *dup = duplicate_of(j, t);
	if (dup) {
		snprintf(msg, sizeof(msg), "The same device as %.100s in this request: sent once", dup->key);
		set_result(t, "DUPLICATE", 200, msg);
		return;
	}
	struct channel *c = channel_of(j, t->type);
	if (!c || !c->enabled) {
		snprintf(msg, sizeof(msg), "The %s channel of this app is %s", t->type, c ? "disabled" : "not set up");
		set_result(t, "PERMANENT_FAILURE", 400, msg);
		return;
	}
	if (!c->secret) {
		snprintf(msg, sizeof(msg), "The %s channel's credentials cannot be read", t->type);
		set_result(t, "PERMANENT_FAILURE", 500, msg);
		return;
	}
	const char *title = str_of(t->overrides, "TitleOverride");
	const char *body = str_of(t->overrides, "BodyOverride");
	if (!title)
		title = json_string_value(msg_field(j, t->type, "Title"));
	if (!body)
		body = json_string_value(msg_field(j, t->type, "Body"));
	if (!body)
		body = str_of(json_object_get(j->config, "DefaultMessage"), "Body");
	bool silent = json_is_true(msg_field(j, t->type, "SilentPush"));
	const char *push_type = str_of(json_object_get(j->config, "APNSMessage"), "APNSPushType");
	json_t *ttl = json_object_get(json_object_get(j->config, is_apns(t->type) ? "APNSMessage" : "GCMMessage"), "TimeToLive");
	json_t *data = message_data(j, t->type, title, body, silent);
	struct carillon_push_creds creds = {
		.app_id = j->app_id, .channel_type = c->type, .version = c->version, .settings = c->settings,
		.secret = c->secret,
	};
	struct carillon_push_msg m = {
		.title = title, .body = body, .silent = silent, .data = data, .dedupe_key = t->message_id,
		.voip = strstr(t->type, "VOIP") || (push_type && !strcmp(push_type, "voip")),
		.ttl_seconds = json_is_integer(ttl) && json_integer_value(ttl) > 0 ? (long)json_integer_value(ttl) : 0,
	};
	t->pending = t->sent = true;
	j->pending++;
	int rc = is_apns(t->type) ? carillon_apns_send(&creds, t->address, &m, on_sent, t)
				  : carillon_fcm_send(&creds, t->address, &m, on_sent, t);
	json_decref(data);
	if (rc) {
		t->pending = t->sent = false;
		j->pending--;
		set_result(t, "UNKNOWN_FAILURE", 500,
			   "Not sent: the channel's credentials cannot be used or the outbound queue is full (see the server log)");
	}
}

/* ------------------------------------------------------------------------------ targets */

static struct target *add_target(struct job *j, const char *key, bool endpoint)
{
	if (j->n_targets == j->cap_targets) {
		j->cap_targets = j->cap_targets ? j->cap_targets * 2 : 8;
		j->targets = carillon_xrealloc(j->targets, j->cap_targets * sizeof(*j->targets));
	}
	struct target *t = &j->targets[j->n_targets++];
	memset(t, 0, sizeof(*t));
	t->job = j;
	t->key = key ? carillon_xstrdup(key) : NULL;
	t->endpoint = endpoint;
	carillon_uuid4(t->message_id);
	return t;
}

static void target_from_endpoint(struct target *t, const json_t *ep)
{
	const char *a = str_of(ep, "address"), *ty = str_of(ep, "type");
	t->address = a ? carillon_xstrdup(a) : NULL;
	t->type = ty ? carillon_xstrdup(ty) : NULL;
}

static const json_t *endpoint_by_id(const json_t *eps, const char *id)
{
	size_t i;
	json_t *e;
	json_array_foreach(eps, i, e)
		if (!strcmp(str_of(e, "id"), id))
			return e;
	return NULL;
}

/* The channels of the read, their secrets opened once for the whole request. */
static void open_channels(struct job *j)
{
	json_t *chs = json_object_get(j->doc, "channels");
	j->n_channels = json_array_size(chs);
	j->channels = carillon_xcalloc(j->n_channels ? j->n_channels : 1, sizeof(*j->channels));
	size_t i;
	json_t *c;
	json_array_foreach(chs, i, c) {
		struct channel *ch = &j->channels[i];
		ch->type = str_of(c, "type");
		ch->enabled = json_is_true(json_object_get(c, "enabled"));
		ch->version = (int)json_integer_value(json_object_get(c, "version"));
		ch->settings = json_object_get(c, "settings");
		const char *sealed = str_of(c, "secret");
		size_t len;
		char *text = sealed ? carillon_open(SEAL_PURPOSE, sealed, &len) : NULL;
		ch->secret = text ? json_loadb(text, len, 0, NULL) : NULL;
		if (text) {
			sodium_memzero(text, len);
			free(text);
		}
		if (sealed && !json_is_object(ch->secret))
			log_warn("pinpoint send: app %s: the %s channel's secret cannot be opened", j->app_id, ch->type);
	}
}

/* The targets in the request's order: Addresses then Endpoints (SendMessages), or each user's
 * endpoints (SendUsersMessages), each with its result when it cannot be sent. */
static void build_targets(struct job *j, const json_t *req)
{
	const json_t *eps = json_object_get(j->doc, "endpoints");
	const char *k;
	json_t *v;
	if (j->users) {
		json_object_foreach(json_object_get(req, "Users"), k, v) {
			size_t before = j->n_targets, i;
			json_t *e;
			json_array_foreach(eps, i, e) {
				if (strcmp(str_of(e, "user_id") ? str_of(e, "user_id") : "", k))
					continue;
				struct target *t = add_target(j, str_of(e, "id"), true);
				t->user_id = carillon_xstrdup(k);
				t->overrides = v;
				target_from_endpoint(t, e);
			}
			if (j->n_targets == before)   /* no endpoints: an empty map in the answer */
				add_target(j, NULL, true)->user_id = carillon_xstrdup(k);
		}
		return;
	}
	json_object_foreach(json_object_get(req, "Addresses"), k, v) {
		struct target *t = add_target(j, k, false);
		t->address = carillon_xstrdup(k);
		t->type = carillon_xstrdup(str_of(v, "ChannelType"));
		t->overrides = v;
	}
	json_object_foreach(json_object_get(req, "Endpoints"), k, v) {
		struct target *t = add_target(j, k, true);
		t->overrides = v;
		const json_t *e = endpoint_by_id(eps, k);
		if (e)
			target_from_endpoint(t, e);
		else
			set_result(t, "PERMANENT_FAILURE", 404, "Endpoint not found");
	}
}

static void targets_read(void *arg, const struct carillon_db_result *res)
{
	struct job *j = arg;
	if (!res->res) {
		struct carillon_req *r = j->r;
		j->r = NULL;
		carillon_api_reply_db_error(r, res->sqlstate, res->message);
		maybe_release(j);
		return;
	}
	const char *text = PQgetisnull(res->res, 0, 0) ? NULL : PQgetvalue(res->res, 0, 0);
	j->doc = text ? json_loads(text, 0, NULL) : NULL;
	if (!j->doc) {
		struct carillon_req *r = j->r;
		j->r = NULL;
		carillon_reply_error(r, CARILLON_ERR_NOT_FOUND, "Application %s not found", j->app_id);
		maybe_release(j);
		return;
	}
	open_channels(j);
	const json_t *req = json_object_get(j->input, j->users ? "SendUsersMessageRequest" : "MessageRequest");
	build_targets(j, req);
	if (send_loop) {
		uv_timer_init(send_loop, &j->guard);
		j->guard.data = j;
		j->has_guard = true;
		uv_timer_start(&j->guard, on_guard, (uint64_t)carillon_cfg.outbound_timeout_ms * 2 + 1000, 0);
	}
	for (size_t i = 0; i < j->n_targets; i++) {
		struct target *t = &j->targets[i];
		if (t->key && !t->result)
			send_target(j, t, t->endpoint ? endpoint_by_id(json_object_get(j->doc, "endpoints"), t->key) : NULL);
	}
	if (!j->pending)
		job_finish(j);
}

/* ------------------------------------------------------------------------------ the request */

/* Something Carillon does not do in a message (templates, substitutions, raw provider payloads):
 * its name, or NULL. */
static const char *unsupported(const json_t *req)
{
	if (json_object_get(req, "TemplateConfiguration"))
		return "TemplateConfiguration (message templates)";
	const json_t *cfg = json_object_get(req, "MessageConfiguration");
	static const char *const msgs[] = {"APNSMessage", "GCMMessage", "DefaultPushNotificationMessage", "DefaultMessage"};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		const json_t *m = json_object_get(cfg, msgs[i]);
		if (json_object_get(m, "RawContent"))
			return "RawContent";
		if (json_object_get(m, "Substitutions"))
			return "Substitutions (message variables)";
	}
	static const char *const maps[] = {"Addresses", "Endpoints", "Users"};
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(req, maps[i]), k, v) {
			if (json_object_get(v, "RawContent"))
				return "RawContent";
			if (json_object_get(v, "Substitutions"))
				return "Substitutions (message variables)";
		}
	}
	return NULL;
}

/* The request's shape beyond the model: true, or false with the problem in `err`. */
static bool check_request(const json_t *req, bool users, char *err, size_t len)
{
	const json_t *cfg = json_object_get(req, "MessageConfiguration");
	const char *what = unsupported(req);
	if (what) {
		snprintf(err, len, "Carillon does not support %s in direct sends", what);
		return false;
	}
	if (!json_object_get(cfg, "APNSMessage") && !json_object_get(cfg, "GCMMessage") &&
	    !json_object_get(cfg, "DefaultPushNotificationMessage")) {
		snprintf(err, len, "MessageConfiguration must have APNSMessage, GCMMessage or DefaultPushNotificationMessage: "
				   "Carillon delivers push notifications only");
		return false;
	}
	size_t n = users ? json_object_size(json_object_get(req, "Users"))
			 : json_object_size(json_object_get(req, "Addresses")) + json_object_size(json_object_get(req, "Endpoints"));
	if (n == 0 || n > MAX_TARGETS) {
		snprintf(err, len, "%s must name 1 to %d %s", users ? "SendUsersMessageRequest" : "MessageRequest", MAX_TARGETS,
			 users ? "Users" : "Addresses and Endpoints together");
		return false;
	}
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(req, "Addresses"), k, v) {
		if (!*k || !str_of(v, "ChannelType")) {
			snprintf(err, len, "Every address needs a ChannelType (and a non-empty address)");
			return false;
		}
	}
	return true;
}

static void direct_send(struct carillon_req *r, bool users)
{
	json_t *in = carillon_req_input(r);
	const json_t *req = json_object_get(in, users ? "SendUsersMessageRequest" : "MessageRequest");
	char err[256];
	if (!check_request(req, users, err, sizeof(err))) {
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	struct job *j = carillon_xcalloc(1, sizeof(*j));
	j->r = r;
	j->users = users;
	j->input = json_incref(in);
	j->config = json_object_get(req, "MessageConfiguration");
	j->app_id = carillon_xstrdup(str_of(in, "ApplicationId") ? str_of(in, "ApplicationId") : "");
	json_t *ids = json_array(), *uids = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(req, "Endpoints"), k, v)
		json_array_append_new(ids, json_string(k));
	json_object_foreach(json_object_get(req, "Users"), k, v)
		json_array_append_new(uids, json_string(k));
	char *ids_text = json_dumps(ids, JSON_COMPACT), *uids_text = json_dumps(uids, JSON_COMPACT);
	json_decref(ids);
	json_decref(uids);
	const char *params[3] = {j->app_id, ids_text, uids_text};
	int rc = ids_text && uids_text ? carillon_db_query("select carillon_api.pinpoint_send_targets($1, $2::jsonb, $3::jsonb)",
							   3, params, targets_read, j)
				       : -1;
	free(ids_text);
	free(uids_text);
	if (rc) {
		j->r = NULL;
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is overloaded; retry later");
		maybe_release(j);
	}
}

static void send_messages(struct carillon_req *r) { direct_send(r, false); }
static void send_users_messages(struct carillon_req *r) { direct_send(r, true); }

void carillon_pinpoint_send_start(uv_loop_t *loop) { send_loop = loop; }

void carillon_pinpoint_send_init(void)
{
	carillon_api_register("pinpoint", "SendMessages", send_messages);
	carillon_api_register("pinpoint", "SendUsersMessages", send_users_messages);
}
