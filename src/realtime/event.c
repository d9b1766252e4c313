/*
 * Events as they travel to sessions: the text frame is rendered once and shared by reference, and
 * the routing facts of the row (audience, joins, leaves, closes) travel with it. This file is the
 * one decoder of event rows (carillon.events_after); nothing here or in the hub reads a payload to
 * route an event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/realtime.h"
#include "carillon/util.h"

static void names_copy(struct carillon_names *out, const char *const *v, int n)
{
	out->n = 0;
	out->v = NULL;
	if (n <= 0)
		return;
	out->v = carillon_xcalloc((size_t)n, sizeof(char *));
	for (int i = 0; i < n; i++)
		if (v[i])
			out->v[out->n++] = carillon_xstrdup(v[i]);
}

static void names_free(struct carillon_names *names)
{
	for (int i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	names->v = NULL;
	names->n = 0;
}

/* Appends a valid JSON text to b compacted (no white space outside its strings, as jansson's
 * JSON_COMPACT writes it) and escaped as the inside of a JSON string: the frame's Payload, written
 * in one pass over the text the database gave, instead of decoding it and encoding it twice. */
static void json_compact_escaped(struct carillon_buf *b, const char *s)
{
	bool in_string = false, escaped = false;
	size_t start = 0, i = 0;
	for (; s[i]; i++) {
		char c = s[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			carillon_json_escape(b, s + start, i - start);
			start = i + 1;
		} else if (c == '"') {
			in_string = true;
		}
	}
	carillon_json_escape(b, s + start, i - start);
}

#define BUF_LITERAL(b, text) carillon_buf_append((b), (text), sizeof(text) - 1)

/* {"Headers":{...},"Payload":"<the payload document as a JSON string>"}, rendered once, with
 * LWS_PRE bytes of room in front (the caller owns the block); NULL when the payload is not a JSON
 * document or a type is not valid UTF-8. The payload is checked without decoding it (a row of the
 * database is JSON by construction, but the decoder is the one place that refuses a malformed row);
 * the frame itself is written directly: for jsonb's text, byte for byte the frame jansson's encoder
 * wrote (escapes are kept as the text has them: jsonb writes \u001f where jansson wrote \u001F,
 * and numbers keep their digits instead of passing through a double).
 * x-carillon-event-position (a string, as clients decode headers as strings) is the log position
 * a client may resume from (since-position on /connect); the stock clients ignore it. */
static unsigned char *render_frame(int64_t position, const char *event_type, const char *message_type,
				   const char *payload_json, size_t *frame_len)
{
	if (!carillon_json_text_valid(payload_json))
		return NULL;
	static const char pre[LWS_PRE];
	struct carillon_buf b = {0};
	carillon_buf_append(&b, pre, LWS_PRE);
	BUF_LITERAL(&b, "{\"Headers\":{\"x-amz-chime-event-type\":");
	if (carillon_json_string(&b, event_type))
		goto refused;
	BUF_LITERAL(&b, ",\"x-amz-chime-message-type\":");
	if (carillon_json_string(&b, message_type))
		goto refused;
	if (position > 0)
		carillon_buf_appendf(&b, ",\"x-carillon-event-position\":\"%lld\"", (long long)position);
	BUF_LITERAL(&b, "},\"Payload\":\"");
	json_compact_escaped(&b, payload_json);
	BUF_LITERAL(&b, "\"}");
	*frame_len = b.len - LWS_PRE;
	return (unsigned char *)b.data;
refused:
	carillon_buf_free(&b);
	return NULL;
}

struct carillon_event *carillon_event_build(const struct carillon_event_facts *f)
{
	size_t frame_len;
	unsigned char *frame = render_frame(f->position, f->event_type ? f->event_type : "",
					    f->message_type ? f->message_type : "",
					    f->payload_json ? f->payload_json : "", &frame_len);
	if (!frame)
		return NULL;
	struct carillon_event *e = carillon_xcalloc(1, sizeof(*e));
	e->refs = 1;
	e->position = f->position;
	e->channel_arn = carillon_xstrdup(f->channel_arn ? f->channel_arn : "");
	e->event_type = carillon_xstrdup(f->event_type ? f->event_type : "");
	e->only = f->only;
	names_copy(&e->arns, f->arns, f->n_arns);
	names_copy(&e->joins, f->joins, f->n_joins);
	names_copy(&e->leaves, f->leaves, f->n_leaves);
	e->closes = f->closes;
	e->frame_len = frame_len;
	e->frame = frame;
	return e;
}

struct carillon_event *carillon_event_system(const char *event_type, const char *payload_json)
{
	struct carillon_event_facts f = {.position = 0, .channel_arn = "", .event_type = event_type,
					 .message_type = "SYSTEM", .payload_json = payload_json, .only = true};
	return carillon_event_build(&f);
}

/* A JSON array of strings (a column of names), borrowed from `doc`: false if it is anything else. */
static bool names_view(json_t *doc, const char ***out, int *n)
{
	*out = NULL;
	*n = 0;
	if (!json_is_array(doc))
		return false;
	size_t len = json_array_size(doc);
	if (!len)
		return true;
	*out = carillon_xcalloc(len, sizeof(char *));
	size_t i;
	json_t *v;
	json_array_foreach(doc, i, v) {
		if (!json_is_string(v))
			return false;
		(*out)[(*n)++] = json_string_value(v);
	}
	return true;
}

/* A names column: NULL (as a nullable column reads) is an empty list, and so is "[]" (most
 * events' joins and leaves), without a decoder. */
bool carillon_event_names_none(const char *text) { return !text || !*text || !strcmp(text, "[]"); }

static json_t *names_column(const char *text)
{
	if (carillon_event_names_none(text))
		return json_array();
	return json_loads(text, 0, NULL);
}

struct carillon_event *carillon_event_decode(const char *const cols[CARILLON_EVENT_COLS])
{
	const char *pos_text = cols[CARILLON_EVENT_COL_POSITION];
	if (!pos_text || !*pos_text)
		return NULL;
	char *end;
	errno = 0;
	long long position = strtoll(pos_text, &end, 10);
	if (errno || *end || position < 0)
		return NULL;
	json_t *docs[3] = {names_column(cols[CARILLON_EVENT_COL_ARNS]), names_column(cols[CARILLON_EVENT_COL_JOINS]),
			   names_column(cols[CARILLON_EVENT_COL_LEAVES])};
	const char **lists[3] = {NULL, NULL, NULL};
	int counts[3] = {0, 0, 0};
	bool ok = true;
	for (int i = 0; i < 3; i++)
		ok = names_view(docs[i], &lists[i], &counts[i]) && ok;
	struct carillon_event *e = NULL;
	if (ok) {
		const char *audience = cols[CARILLON_EVENT_COL_AUDIENCE];
		const char *closes = cols[CARILLON_EVENT_COL_CLOSES];
		struct carillon_event_facts f = {
			.position = position,
			.channel_arn = cols[CARILLON_EVENT_COL_CHANNEL],
			.event_type = cols[CARILLON_EVENT_COL_TYPE],
			.message_type = cols[CARILLON_EVENT_COL_MESSAGE_TYPE],
			.payload_json = cols[CARILLON_EVENT_COL_PAYLOAD],
			.only = audience && !strcmp(audience, "only"),
			.arns = lists[0], .n_arns = counts[0],
			.joins = lists[1], .n_joins = counts[1],
			.leaves = lists[2], .n_leaves = counts[2],
			.closes = closes && !strcmp(closes, "t"),
		};
		e = carillon_event_build(&f);
	}
	for (int i = 0; i < 3; i++) {
		free(lists[i]);
		json_decref(docs[i]);
	}
	return e;
}

struct carillon_event *carillon_event_from_result_at(const PGresult *res, int row, int first)
{
	if (first < 0 || PQnfields(res) - first < CARILLON_EVENT_COLS || row < 0 || row >= PQntuples(res))
		return NULL;
	const char *cols[CARILLON_EVENT_COLS];
	for (int c = 0; c < CARILLON_EVENT_COLS; c++)
		cols[c] = PQgetisnull(res, row, first + c) ? NULL : PQgetvalue(res, row, first + c);
	return carillon_event_decode(cols);
}

struct carillon_event *carillon_event_from_result(const PGresult *res, int row)
{
	return carillon_event_from_result_at(res, row, 0);
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
	names_free(&e->arns);
	names_free(&e->joins);
	names_free(&e->leaves);
	free(e->channel_arn);
	free(e->event_type);
	free(e->frame);
	free(e);
}
