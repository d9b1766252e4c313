/*
 * libFuzzer harness: the one event decoder (carillon_event_decode, src/realtime/event.c), which
 * turns a row of carillon.events_after() into the routed event every recipient shares: its text
 * frame and its routing facts.
 *
 * Input: the row's columns, one per line, the payload last (it may span lines):
 *   position LF channel_arn LF event_type LF message_type LF audience LF arns_json LF joins_json LF
 *   leaves_json LF closes LF payload_json
 * (a missing column is ""; "-" stands for NULL, as libpq reports a NULL column).
 *
 * Properties checked beyond "no crash": a decoded event's frame is a JSON object whose Headers
 * carry the event and message types and whose Payload is a string holding a JSON document; its
 * name lists are non-NULL strings, as many as the row's JSON arrays hold; references count down
 * to a clean free. The payload check (carillon_json_text_valid) agrees with jansson's decoder
 * both ways, except that it refuses deeper nesting than jansson (512 levels against 2,048).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/realtime.h"
#include "carillon/util.h"

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

static int json_count(const char *text)
{
	json_t *a = json_loads(text && *text ? text : "[]", 0, NULL);
	int n = json_is_array(a) ? (int)json_array_size(a) : -1;
	json_decref(a);
	return n;
}

static void check_names(const struct carillon_names *names, const char *column)
{
	if (names->n != json_count(column))
		fail("a name list lost or gained names");
	for (int i = 0; i < names->n; i++)
		if (!names->v[i])
			fail("a NULL name");
}

static void check_frame(const struct carillon_event *e, const char *const *cols)
{
	const char *event_type = cols[CARILLON_EVENT_COL_TYPE] ? cols[CARILLON_EVENT_COL_TYPE] : "";
	const char *message_type = cols[CARILLON_EVENT_COL_MESSAGE_TYPE] ? cols[CARILLON_EVENT_COL_MESSAGE_TYPE] : "";
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
	check_names(&e->arns, cols[CARILLON_EVENT_COL_ARNS]);
	check_names(&e->joins, cols[CARILLON_EVENT_COL_JOINS]);
	check_names(&e->leaves, cols[CARILLON_EVENT_COL_LEAVES]);
}

/* The input's order (payload last, so it may span lines) -> the row's column numbers. */
static const int input_order[] = {
	CARILLON_EVENT_COL_POSITION, CARILLON_EVENT_COL_CHANNEL, CARILLON_EVENT_COL_TYPE,
	CARILLON_EVENT_COL_MESSAGE_TYPE, CARILLON_EVENT_COL_AUDIENCE, CARILLON_EVENT_COL_ARNS,
	CARILLON_EVENT_COL_JOINS, CARILLON_EVENT_COL_LEAVES, CARILLON_EVENT_COL_CLOSES, CARILLON_EVENT_COL_PAYLOAD,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_Static_assert(sizeof(input_order) / sizeof(input_order[0]) == CARILLON_EVENT_COLS, "every column");
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	char *p = copy;
	const char *cols[CARILLON_EVENT_COLS];
	for (int i = 0; i < CARILLON_EVENT_COLS; i++) {
		const char *v = next_field(&p, i == CARILLON_EVENT_COLS - 1);
		cols[input_order[i]] = strcmp(v, "-") ? v : NULL;
	}
	const char *payload = cols[CARILLON_EVENT_COL_PAYLOAD] ? cols[CARILLON_EVENT_COL_PAYLOAD] : "";
	json_t *doc = json_loads(payload, JSON_DECODE_ANY, NULL);
	size_t brackets = 0;
	for (const char *q = payload; *q; q++)
		brackets += *q == '[' || *q == '{';
	if (carillon_json_text_valid(payload) ? !doc : doc && brackets <= 512)
		fail("carillon_json_text_valid and jansson disagree on the payload");
	json_decref(doc);
	struct carillon_event *e = carillon_event_decode(cols);
	if (e) {
		check_frame(e, cols);
		carillon_event_ref(e);
		carillon_event_unref(e);
		carillon_event_unref(e);
	}
	free(copy);
	return 0;
}
