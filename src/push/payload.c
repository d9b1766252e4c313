/*
 * Push payload pieces shared by the channel-message handler (push.c), Pinpoint's direct sends
 * (src/api/pinpoint/send.c) and the two senders (apns.c, fcm.c): Pinpoint's data keys, and the
 * JSON text of a data object spliced into a provider's body without building a jansson tree per
 * push (one message to 10,000 devices makes its data text once).
 */
#include <stdio.h>
#include <string.h>

#include "carillon/push.h"
#include "carillon/util.h"

json_t *carillon_push_pinpoint_data(json_t *data, const char *action_key, const char *action_value,
				    const char *title, const char *body, bool silent, const char *json_body)
{
	if (!data)
		data = json_object();
	if (action_key && action_value)
		json_object_set_new(data, action_key, json_string(action_value));
	else
		json_object_set_new(data, "pinpoint.openApp", json_string("true"));
	if (title)
		json_object_set_new(data, "pinpoint.notification.title", json_string(title));
	if (body)
		json_object_set_new(data, "pinpoint.notification.body", json_string(body));
	json_object_set_new(data, "pinpoint.campaign.campaign_id", json_string("_DIRECT"));
	json_object_set_new(data, "pinpoint.notification.silentPush", json_string(silent ? "1" : "0"));
	if (json_body)
		json_object_set_new(data, "pinpoint.jsonBody", json_string(json_body));
	return data;
}

bool carillon_push_data_members(const char *data_json, const char **start, size_t *len)
{
	size_t n = data_json ? strlen(data_json) : 0;
	if (n < 2 || data_json[0] != '{' || data_json[n - 1] != '}')
		return false;
	*start = data_json + 1;
	*len = n - 2;
	return true;
}

int carillon_push_json_title_body(struct carillon_buf *b, const char *title, const char *body)
{
	if (title) {
		carillon_buf_append(b, "\"title\":", 8);
		if (carillon_json_string(b, title))
			return -1;
	}
	if (body) {
		carillon_buf_appendf(b, "%s\"body\":", title ? "," : "");
		if (carillon_json_string(b, body))
			return -1;
	}
	return 0;
}
