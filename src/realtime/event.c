/* Events as they travel to sessions: the text frame is rendered once and shared by reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/realtime.h"
#include "carillon/util.h"

static char **string_array(json_t *a, int *n)
{
	*n = 0;
	if (!json_is_array(a) || !json_array_size(a))
		return NULL;
	char **out = carillon_xcalloc(json_array_size(a), sizeof(char *));
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) if (json_is_string(v)) out[(*n)++] = carillon_xstrdup(json_string_value(v));
	return out;
}

/* Membership events name who joins or leaves: Member.Arn, or Members[].Arn for a batch. */
static char **event_members(json_t *payload, int *n)
{
	*n = 0;
	json_t *one = json_object_get(json_object_get(payload, "Member"), "Arn");
	if (json_is_string(one)) {
		char **out = carillon_xcalloc(1, sizeof(char *));
		out[(*n)++] = carillon_xstrdup(json_string_value(one));
		return out;
	}
	json_t *many = json_object_get(payload, "Members");
	if (!json_is_array(many) || !json_array_size(many))
		return NULL;
	char **out = carillon_xcalloc(json_array_size(many), sizeof(char *));
	size_t i;
	json_t *m;
	json_array_foreach(many, i, m) {
		json_t *arn = json_object_get(m, "Arn");
		if (json_is_string(arn))
			out[(*n)++] = carillon_xstrdup(json_string_value(arn));
	}
	return out;
}

static bool is_membership_event(const char *type) { return strstr(type, "CHANNEL_MEMBERSHIP") != NULL; }

struct carillon_event *carillon_event_new(int64_t position, const char *channel_arn, const char *event_type,
					  const char *message_type, const char *payload_json, const char *audience,
					  const char *arns_json)
{
	json_t *payload = json_loads(payload_json, 0, NULL);
	json_t *arns = json_loads(arns_json ? arns_json : "[]", 0, NULL);
	if (!payload) {
		json_decref(arns);
		return NULL;
	}
	struct carillon_event *e = carillon_xcalloc(1, sizeof(*e));
	e->refs = 1;
	e->position = position;
	e->channel_arn = carillon_xstrdup(channel_arn);
	e->event_type = carillon_xstrdup(event_type);
	e->only = !strcmp(audience, "only");
	e->arns = string_array(arns, &e->n_arns);
	if (is_membership_event(event_type))
		e->members = event_members(payload, &e->n_members);
	/* {"Headers":{...},"Payload":"<the payload document as a JSON string>"}, rendered once.
	 * x-carillon-event-position (a string, as clients decode headers as strings) is the log position
	 * a client may resume from (since-position on /connect); the stock clients ignore it. */
	char *compact = json_dumps(payload, JSON_COMPACT); /* jsonb's text form has spaces */
	json_t *frame = json_pack("{s:{s:s,s:s},s:s}", "Headers", "x-amz-chime-event-type", event_type,
				  "x-amz-chime-message-type", message_type, "Payload", compact ? compact : payload_json);
	free(compact);
	if (frame && position > 0) {
		char pos[24];
		snprintf(pos, sizeof(pos), "%lld", (long long)position);
		json_object_set_new(json_object_get(frame, "Headers"), "x-carillon-event-position", json_string(pos));
	}
	char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
	json_decref(frame);
	json_decref(payload);
	json_decref(arns);
	if (!text) {
		carillon_event_unref(e);
		return NULL;
	}
	e->frame_len = strlen(text);
	e->frame = carillon_xmalloc(LWS_PRE + e->frame_len);
	memcpy(e->frame + LWS_PRE, text, e->frame_len);
	free(text);
	return e;
}

struct carillon_event *carillon_event_ref(struct carillon_event *e)
{
	e->refs++;
	return e;
}

void carillon_event_unref(struct carillon_event *e)
{
	if (!e || --e->refs)
		return;
	for (int i = 0; i < e->n_arns; i++)
		free(e->arns[i]);
	for (int i = 0; i < e->n_members; i++)
		free(e->members[i]);
	free(e->arns);
	free(e->members);
	free(e->channel_arn);
	free(e->event_type);
	free(e->frame);
	free(e);
}
