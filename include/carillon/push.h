/*
 * Push senders: one notification to one device token through APNs (src/push/apns.c) or FCM HTTP v1
 * (src/push/fcm.c), over the outbound module. The callers are the 'push' outbox handler (a channel
 * message's push intents, src/push/push.c) and Pinpoint's SendMessages / SendUsersMessages.
 *
 * A sender owns its provider authentication: the APNs ES256 provider token (reused, refreshed inside
 * Apple's 20-60 minute window) or client certificate, and FCM's OAuth2 access token (obtained with
 * an RS256 assertion from the service account, cached until shortly before it expires). Both are
 * cached per (app id, channel type, channel version), so a channel update takes effect at once.
 */
#ifndef CARILLON_PUSH_H
#define CARILLON_PUSH_H

#include <stdbool.h>

#include <jansson.h>
#include <uv.h>

/* One Pinpoint channel's credentials, as stored (settings) and opened (secret). Borrowed. */
struct carillon_push_creds {
	const char *app_id;
	const char *channel_type;  /* APNS | APNS_SANDBOX | APNS_VOIP | APNS_VOIP_SANDBOX | GCM */
	int version;               /* carillon.pinpoint_channels.version */
	const json_t *settings;    /* non-secret fields (BundleId, TeamId, TokenKeyId, ProjectId, ...) */
	const json_t *secret;      /* opened secret: {TokenKey} / {Certificate, PrivateKey} / {ServiceJson} */
};

/* One notification. Borrowed for the duration of the send call (senders copy what they keep). */
struct carillon_push_msg {
	const char *title;         /* may be NULL */
	const char *body;          /* may be NULL */
	bool voip;                 /* APNs: apns-push-type voip, topic BundleId + ".voip" */
	bool silent;               /* content-available only, no alert */
	const json_t *data;        /* string keys and values beside the alert (the pinpoint.* and
				    * chime keys of a channel message, or SendMessages' Data); may be NULL */
	const char *data_json;     /* optional: `data` as compact JSON text (an object of strings, no "aps"
				    * key), made once for many sends; the senders splice it into their bodies */
	const char *dedupe_key;    /* stable per (intent, device): apns-id / FCM message key derive from it */
	long ttl_seconds;          /* apns-expiration / android.ttl; 0: provider default */
};

enum carillon_push_outcome {
	CARILLON_PUSH_OK = 0,        /* the provider accepted it */
	CARILLON_PUSH_RETRY,         /* transient: 429, 5xx, timeout, connection failure */
	CARILLON_PUSH_INVALID_TOKEN, /* APNs 410 / 400 BadDeviceToken, FCM 404 UNREGISTERED: deactivate */
	CARILLON_PUSH_FAILED,        /* permanent for this message (bad credentials, payload refused) */
};

/* Called exactly once per accepted send, from the loop. retry_after_ms: the provider's Retry-After
 * (0 when none); http_status: 0 when no answer; detail: the provider's reason ("" when none). */
typedef void (*carillon_push_cb)(void *arg, enum carillon_push_outcome outcome, long retry_after_ms,
				 int http_status, const char *detail);

/* 0: cb will be called; -1: refused at once (bad credentials, queue full), cb is not called. */
int carillon_apns_send(const struct carillon_push_creds *creds, const char *device_token,
		       const struct carillon_push_msg *msg, carillon_push_cb cb, void *arg);
int carillon_fcm_send(const struct carillon_push_creds *creds, const char *device_token,
		      const struct carillon_push_msg *msg, carillon_push_cb cb, void *arg);

/* Pinpoint's data keys beside a notification, set on `data` (a new object when NULL; returned):
 * action_key/action_value ("pinpoint.url" / "pinpoint.deeplink" and the URL) or else
 * pinpoint.openApp "true"; pinpoint.notification.title and .body (when not NULL);
 * pinpoint.campaign.campaign_id "_DIRECT"; pinpoint.notification.silentPush "1" / "0"; and
 * pinpoint.jsonBody (when not NULL). Used by channel messages (push.c) and SendMessages. */
json_t *carillon_push_pinpoint_data(json_t *data, const char *action_key, const char *action_value,
				    const char *title, const char *body, bool silent, const char *json_body);

struct carillon_buf;
/* Append the members "title":..,"body":.. (either may be NULL; neither: nothing), as APNs' alert and
 * FCM's notification both carry them; -1 when one is not valid UTF-8. */
int carillon_push_json_title_body(struct carillon_buf *b, const char *title, const char *body);
/* The members of a JSON object's text ("{...}" without its braces): false when it is not one. */
bool carillon_push_data_members(const char *data_json, const char **start, size_t *len);

/* Register the 'push' outbox handler (channel messages' push intents, src/push/push.c); before
 * carillon_outbox_start. */
int carillon_push_start(void);
/* Free the channel cache and the APNs sender's cache (after the database and outbound shut down). */
void carillon_push_shutdown(void);

/* Pinpoint's direct sends (SendMessages, SendUsersMessages: src/api/pinpoint/send.c) bound their
 * wait for the providers with a timer on this loop; called by the server before it serves. */
void carillon_pinpoint_send_start(uv_loop_t *loop);

/* Drop cached provider tokens and keys (shutdown). */
void carillon_apns_shutdown(void);
void carillon_fcm_shutdown(void);

#endif
