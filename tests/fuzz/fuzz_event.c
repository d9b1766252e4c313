/*
 * libFuzzer harness: the event renderer (carillon_event_new, src/realtime/event.c), which turns a
 * row of carillon.events into the websocket text frame every recipient shares.
 *
 * Input: the row's fields, one per line, the payload last (it may span lines):
 *   position LF channel_arn LF event_type LF message_type LF audience LF arns_json LF payload_json
 * (a missing field is ""; arns_json "-" stands for NULL, as the column allows).
 *
 * Properties checked beyond "no crash": a rendered frame is a JSON object whose Headers carry the
 * event and message types and whose Payload is a string holding a JSON document; membership
 * events list their members as non-NULL strings; references count down to a clean free.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/realtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "carillon_event_new: %s\n", what);
	abort();
}

static char *next_field(char **p, bool last)
{
	char *s = *p;
	if (last)
		return s;
	char *nl = strchr(s, '\n');
	if (!nl) {
		*p = s + strlen(s);
		return s;
	}
	*nl = '\0';
	*p = nl + 1;
	return s;
}

static void check_frame(const struct carillon_event *e, const char *event_type, const char *message_type)
{
	json_error_t jerr;
	json_t *f = json_loadb((const char *)e->frame + LWS_PRE, e->frame_len, 0, &jerr);
	if (!json_is_object(f))
		fail("the frame is not a JSON object");
	json_t *h = json_object_get(f, "Headers");
	if (!json_is_string(json_object_get(h, "x-amz-chime-event-type")) ||
	    strcmp(json_string_value(json_object_get(h, "x-amz-chime-event-type")), event_type) ||
	    !json_is_string(json_object_get(h, "x-amz-chime-message-type")) ||
	    strcmp(json_string_value(json_object_get(h, "x-amz-chime-message-type")), message_type))
		fail("the frame's Headers do not carry the event and message types");
	json_t *payload = json_object_get(f, "Payload");
	if (!json_is_string(payload))
		fail("the frame's Payload is not a string");
	json_t *doc = json_loads(json_string_value(payload), JSON_DECODE_ANY, &jerr);
	if (!doc)
		fail("the frame's Payload is not a JSON document");
	json_decref(doc);
	json_decref(f);
	for (int i = 0; i < e->n_members; i++)
		if (!e->members[i])
			fail("a NULL member");
	for (int i = 0; i < e->n_arns; i++)
		if (!e->arns[i])
			fail("a NULL recipient ARN");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	char *p = copy;
	long long position = strtoll(next_field(&p, false), NULL, 10);
	const char *channel = next_field(&p, false);
	const char *event_type = next_field(&p, false);
	const char *message_type = next_field(&p, false);
	const char *audience = next_field(&p, false);
	const char *arns = next_field(&p, false);
	const char *payload = next_field(&p, true);
	struct carillon_event *e = carillon_event_new(position, channel, event_type, message_type, payload, audience,
						      strcmp(arns, "-") ? arns : NULL);
	if (e) {
		check_frame(e, event_type, message_type);
		carillon_event_ref(e);
		carillon_event_unref(e);
		carillon_event_unref(e);
	}
	free(copy);
	return 0;
}
