/*
 * The 'push' outbox handler: one row = one channel message to one device (enqueued by
 * carillon.push_enqueue_message, sql/api/push.sql, whose payload carries the device token, the
 * Pinpoint app and channel, the title and body). It builds Chime's payload keys, sends through
 * carillon_apns_send or carillon_fcm_send by channel type, and maps the outcome: accepted -> done;
 * transient -> retry (the provider's Retry-After, else the outbox's backoff); dead token -> the
 * endpoints with that token become INACTIVE / INVALID_DEVICE_TOKEN (carillon.push_invalidate_token)
 * and the row is dropped; anything else permanent -> dropped.
 *
 * Channel credentials are read once per (app, channel type) and kept with their version: a row
 * enqueued after an update names a newer version and makes them read again; otherwise they are read
 * again after CHANNEL_TTL_MS. Rows arriving while a channel is being read wait for that one read
 * (a 10,000-member message asks once, not 10,000 times).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/hmap.h"
#include "carillon/log.h"
#include "carillon/outbound.h"
#include "carillon/outbox.h"
#include "carillon/push.h"
#include "carillon/util.h"

#define CHANNEL_TTL_MS (5 * 60 * 1000)
#define CHANNEL_MISSING_TTL_MS (10 * 1000)
/* Chime's notifications: kept by the provider for a day; a VoIP call's ring only for a minute. */
#define PUSH_TTL_SECONDS 86400
#define VOIP_TTL_SECONDS 60

enum chan_state { CHAN_LOADING, CHAN_READY, CHAN_MISSING };

struct job {
	struct carillon_outbox_item *item;
	const char *app_id, *channel_type, *token;  /* borrowed from the item's payload */
	int version;
	struct job *next;                            /* waiting for its channel */
};

struct chan {
	char *app_id, *type;
	enum chan_state state;
	int version;
	json_t *settings, *secret;
	int64_t loaded_ms;
	struct job *waiting;
};

static struct carillon_hmap channels; /* "app_id|type" -> struct chan */
static bool started;

static void chan_clear(struct chan *c)
{
	json_decref(c->settings);
	json_decref(c->secret);
	c->settings = c->secret = NULL;
}

static void chan_free(struct chan *c)
{
	chan_clear(c);
	free(c->app_id);
	free(c->type);
	free(c);
}

/* ------------------------------------------------------------------------------------ outcomes */

static void invalidated(void *arg, const struct carillon_db_result *r)
{
	struct job *j = arg;
	if (!r->res) {
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_RETRY, 0, "deactivating the endpoint failed");
	} else {
		log_notice("push: %s token of app %s is dead: %s endpoint(s) now INACTIVE (INVALID_DEVICE_TOKEN)",
			   j->channel_type, j->app_id, PQntuples(r->res) ? PQgetvalue(r->res, 0, 0) : "0");
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_DROP, 0, "invalid device token");
	}
	free(j);
}

static void sent(void *arg, enum carillon_push_outcome outcome, long retry_after_ms, int http_status,
		 const char *detail)
{
	struct job *j = arg;
	char reason[200];
	snprintf(reason, sizeof(reason), "%s %d %s", j->channel_type, http_status, detail ? detail : "");
	switch (outcome) {
	case CARILLON_PUSH_OK:
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_DONE, 0, NULL);
		break;
	case CARILLON_PUSH_RETRY:
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_RETRY, retry_after_ms, reason);
		break;
	case CARILLON_PUSH_INVALID_TOKEN: {
		const char *params[2] = {j->app_id, j->token};
		if (!carillon_db_query("select carillon.push_invalidate_token($1, $2)", 2, params, invalidated, j))
			return; /* completes in invalidated() */
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_RETRY, 0, "database busy: cannot deactivate the endpoint");
		break;
	}
	case CARILLON_PUSH_FAILED:
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_DROP, 0, reason);
		break;
	}
	free(j);
}

/* ------------------------------------------------------------------------------------ sending */

/* Chime's data keys (pinpoint.* and the message ids in pinpoint.jsonBody) of the last message
 * sent, with their JSON text: the pushes of one channel message come one after the other from the
 * outbox and share them (one build per message instead of one per device). */
static struct {
	char *message_id, *channel_arn, *title, *body;
	json_t *data;
	char *data_json;
} last;

static void last_clear(void)
{
	free(last.message_id);
	free(last.channel_arn);
	free(last.title);
	free(last.body);
	json_decref(last.data);
	free(last.data_json);
	memset(&last, 0, sizeof(last));
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static json_t *chime_data(const json_t *p, const char *title, const char *body, const char **data_json)
{
	const char *mid = json_string_value(json_object_get(p, "message_id"));
	const char *arn = json_string_value(json_object_get(p, "channel_arn"));
	if (last.data && same(last.message_id, mid) && same(last.channel_arn, arn) && same(last.title, title) &&
	    same(last.body, body)) {
		*data_json = last.data_json;
		return last.data;
	}
	last_clear();
	json_t *ids = json_pack("{s:s?, s:s?}", "chime.message_id", mid, "chime.channel_arn", arn);
	char *ids_text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	last.data = carillon_push_pinpoint_data(NULL, NULL, NULL, title ? title : "", body ? body : "", false,
						 ids_text ? ids_text : "{}");
	free(ids_text);
	last.data_json = json_dumps(last.data, JSON_COMPACT);
	last.message_id = mid ? carillon_xstrdup(mid) : NULL;
	last.channel_arn = arn ? carillon_xstrdup(arn) : NULL;
	last.title = title ? carillon_xstrdup(title) : NULL;
	last.body = body ? carillon_xstrdup(body) : NULL;
	*data_json = last.data_json;
	return last.data;
}

static void send_job(struct job *j, struct chan *c)
{
	const json_t *p = j->item->payload;
	struct carillon_push_creds creds = {
		.app_id = c->app_id, .channel_type = c->type, .version = c->version,
		.settings = c->settings, .secret = c->secret,
	};
	const char *title = json_string_value(json_object_get(p, "title"));
	const char *body = json_string_value(json_object_get(p, "body"));
	bool voip = json_is_true(json_object_get(p, "voip"));
	const char *data_json = NULL;
	json_t *data = chime_data(p, title, body, &data_json);
	struct carillon_push_msg msg = {
		.title = title, .body = body, .voip = voip, .silent = false, .data = data, .data_json = data_json,
		.dedupe_key = j->item->dedupe_key, .ttl_seconds = voip ? VOIP_TTL_SECONDS : PUSH_TTL_SECONDS,
	};
	int rc = !strcmp(c->type, "GCM") ? carillon_fcm_send(&creds, j->token, &msg, sent, j)
					 : carillon_apns_send(&creds, j->token, &msg, sent, j);
	if (!rc)
		return;
	/* Refused at once: a full outbound queue passes; anything else (credentials, token) will not. */
	if (carillon_outbound_queued() >= (size_t)carillon_cfg.outbound_max_queued)
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_RETRY, 0, "outbound queue full");
	else
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_DROP, 0, "the sender refused it (credentials or token unusable)");
	free(j);
}

static void release_waiting(struct chan *c, bool retry, const char *why)
{
	struct job *w = c->waiting;
	c->waiting = NULL;
	while (w) {
		struct job *next = w->next;
		w->next = NULL;
		if (c->state == CHAN_READY && !retry) {
			send_job(w, c);
		} else {
			carillon_outbox_complete(w->item, retry ? CARILLON_OUTBOX_RETRY : CARILLON_OUTBOX_DROP, 0, why);
			free(w);
		}
		w = next;
	}
}

static void channel_loaded(void *arg, const struct carillon_db_result *r)
{
	char *key = arg;
	struct chan *c = carillon_hmap_get(&channels, key);
	if (!c) { /* shut down meanwhile */
		free(key);
		return;
	}
	if (!r->res) {
		log_warn("push: reading channel %s of app %s failed: %s", c->type, c->app_id, r->message);
		carillon_hmap_del(&channels, key); /* read again by the next row */
		free(key);
		release_waiting(c, true, "the channel could not be read");
		chan_free(c);
		return;
	}
	free(key);
	chan_clear(c);
	c->loaded_ms = carillon_now_ms();
	c->state = CHAN_MISSING;
	const char *why = "the Pinpoint channel is gone or disabled";
	if (PQntuples(r->res) == 1 && !strcmp(PQgetvalue(r->res, 0, 3), "t")) {
		size_t len = 0;
		bool sealed = !PQgetisnull(r->res, 0, 1);
		char *opened = sealed ? carillon_open("pinpoint-channel", PQgetvalue(r->res, 0, 1), &len) : NULL;
		c->settings = json_loads(PQgetvalue(r->res, 0, 0), 0, NULL);
		c->secret = opened ? json_loadb(opened, len, 0, NULL) : sealed ? NULL : json_object();
		c->version = atoi(PQgetvalue(r->res, 0, 2));
		if (opened)
			sodium_memzero(opened, len);
		free(opened);
		if (c->settings && c->secret)
			c->state = CHAN_READY;
		else
			why = "the channel's secret cannot be opened (another master key?)";
	}
	if (c->state != CHAN_READY)
		log_warn("push: channel %s of app %s: %s", c->type, c->app_id, why);
	release_waiting(c, false, why);
}

static void load_channel(struct chan *c, const char *key)
{
	c->state = CHAN_LOADING;
	const char *params[2] = {c->app_id, c->type};
	char *arg = carillon_xstrdup(key);
	if (carillon_db_query("select settings::text, secret, version, enabled from carillon.pinpoint_channels "
			      "where app_id = $1 and type = $2",
			      2, params, channel_loaded, arg)) {
		free(arg);
		carillon_hmap_del(&channels, key);
		release_waiting(c, true, "database busy");
		chan_free(c);
	}
}

/* The job's channel: send now, or wait for its read. */
static void dispatch(struct job *j)
{
	char key[256];
	snprintf(key, sizeof(key), "%s|%s", j->app_id, j->channel_type);
	struct chan *c = carillon_hmap_get(&channels, key);
	if (!c) {
		c = carillon_xcalloc(1, sizeof(*c));
		c->app_id = carillon_xstrdup(j->app_id);
		c->type = carillon_xstrdup(j->channel_type);
		carillon_hmap_put(&channels, key, c);
		j->next = c->waiting;
		c->waiting = j;
		load_channel(c, key);
		return;
	}
	if (c->state == CHAN_LOADING) {
		j->next = c->waiting;
		c->waiting = j;
		return;
	}
	int64_t age = carillon_now_ms() - c->loaded_ms;
	bool stale = j->version > c->version ||
		     age > (c->state == CHAN_READY ? CHANNEL_TTL_MS : CHANNEL_MISSING_TTL_MS);
	if (stale) {
		j->next = c->waiting;
		c->waiting = j;
		load_channel(c, key);
		return;
	}
	if (c->state == CHAN_READY) {
		send_job(j, c);
	} else {
		carillon_outbox_complete(j->item, CARILLON_OUTBOX_DROP, 0, "the Pinpoint channel is gone or disabled");
		free(j);
	}
}

static void handle(struct carillon_outbox_item *item)
{
	const json_t *p = item->payload;
	struct job *j = carillon_xcalloc(1, sizeof(*j));
	j->item = item;
	j->app_id = json_string_value(json_object_get(p, "app_id"));
	j->channel_type = json_string_value(json_object_get(p, "channel_type"));
	j->token = json_string_value(json_object_get(p, "token"));
	j->version = (int)json_integer_value(json_object_get(p, "channel_version"));
	if (!j->app_id || !j->channel_type || !j->token || strlen(j->app_id) > 100 || strlen(j->channel_type) > 40) {
		carillon_outbox_complete(item, CARILLON_OUTBOX_DROP, 0, "malformed push row");
		free(j);
		return;
	}
	dispatch(j);
}

int carillon_push_start(void)
{
	if (started)
		return 0;
	started = true;
	return carillon_outbox_register("push", handle, (int)carillon_cfg.push_max_in_flight);
}

static void drop_chan(const char *key, void *value, void *arg)
{
	struct chan *c = value;
	/* Still waiting at shutdown (the database went first): their leases end. */
	for (struct job *w = c->waiting, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	chan_free(c);
}

void carillon_push_shutdown(void)
{
	carillon_hmap_each(&channels, drop_chan, NULL);
	carillon_hmap_free(&channels);
	memset(&channels, 0, sizeof(channels));
	last_clear();
	carillon_apns_shutdown(); /* (server.c shuts the FCM sender down itself) */
}
