/*
 * The hub (src/realtime/hub.c): who hears which event, from the routing facts events carry.
 *
 * The hub's side of a session is a small interface (include/carillon/realtime.h: user, active,
 * start position, deliver, buffer, and two slots the hub keeps in it). These tests provide that
 * interface with a recording session, so the real hub routes real events (built from facts with
 * carillon_event_build, or decoded from a carillon.events_after row with carillon_event_decode)
 * and the test sees exactly what each session received. session.c is not linked: the linker takes
 * these definitions instead.
 *
 * Covered: joins before delivery, leaves after it, a channel that closes, targeted ('only')
 * audiences, HIDDEN memberships, the start position of a session, the replay of events buffered
 * while a session waited for its snapshot, that the hub follows facts and not type names, the
 * decoder, and the channel index under churn (the pair index, its backward-shift deletion and the
 * swap-with-last bookkeeping of both sides, slices of the reaper).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "carillon/realtime.h"

/* ------------------------------------------------------------ a recording session for the hub */

#define MAX_GOT 64

struct carillon_session {
	const char *user;
	bool active;
	int64_t start;
	void *hub;
	uint64_t stamp;
	int64_t got[MAX_GOT];                 /* positions delivered, in order */
	int n_got;
	struct carillon_event *buf[MAX_GOT];  /* buffered while pending */
	int n_buf;
};

const char *carillon_session_user(const struct carillon_session *s) { return s->user; }
bool carillon_session_active(const struct carillon_session *s) { return s->active; }
int64_t carillon_session_start(const struct carillon_session *s) { return s->start; }
void **carillon_session_hub(struct carillon_session *s) { return &s->hub; }
uint64_t *carillon_session_stamp(struct carillon_session *s) { return &s->stamp; }

void carillon_session_deliver(struct carillon_session *s, struct carillon_event *e)
{
	assert_true(s->n_got < MAX_GOT);
	s->got[s->n_got++] = e->position;
}

void carillon_session_buffer(struct carillon_session *s, struct carillon_event *e)
{
	assert_false(s->active);
	assert_true(s->n_buf < MAX_GOT);
	s->buf[s->n_buf++] = carillon_event_ref(e);
}

/* A session of `user`, registered with the hub and active (its snapshot already in). */
static struct carillon_session *open_session(const char *user, bool active)
{
	struct carillon_session *s = calloc(1, sizeof(*s));
	s->user = user;
	s->active = active;
	carillon_hub_add_user(s, user);
	return s;
}

static void close_session(struct carillon_session *s)
{
	carillon_hub_detach(s);
	for (int i = 0; i < s->n_buf; i++)
		carillon_event_unref(s->buf[i]);
	free(s);
}

static bool got(const struct carillon_session *s, int64_t position)
{
	for (int i = 0; i < s->n_got; i++)
		if (s->got[i] == position)
			return true;
	return false;
}

/* -------------------------------------------------------------------------- events from facts */

#define A "arn:aws:chime:us-east-1:1:app-instance/a/user/alice"
#define B "arn:aws:chime:us-east-1:1:app-instance/a/user/bob"
#define H "arn:aws:chime:us-east-1:1:app-instance/a/user/hidden"
#define X "arn:aws:chime:us-east-1:1:app-instance/a/user/xavier"
#define C1 "arn:aws:chime:us-east-1:1:app-instance/a/channel/one"
#define C2 "arn:aws:chime:us-east-1:1:app-instance/a/channel/two"

struct names {
	const char *v[4];
	int n;
};
#define NAMES(...) ((struct names){{__VA_ARGS__}, sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)})
#define NONE ((struct names){{NULL}, 0})

/* An event with its facts; the type is only a label (the hub must not read it). */
static struct carillon_event *event(int64_t pos, const char *channel, const char *type, bool only, struct names arns,
				    struct names joins, struct names leaves, bool closes)
{
	struct carillon_event_facts f = {.position = pos, .channel_arn = channel, .event_type = type,
					 .message_type = "SYSTEM", .payload_json = "{\"ChannelArn\":\"c\"}",
					 .only = only, .arns = arns.v, .n_arns = arns.n, .joins = joins.v,
					 .n_joins = joins.n, .leaves = leaves.v, .n_leaves = leaves.n, .closes = closes};
	struct carillon_event *e = carillon_event_build(&f);
	assert_non_null(e);
	return e;
}

static void dispatch(struct carillon_event *e)
{
	carillon_hub_dispatch(e);
	carillon_event_unref(e);
}

/* members: the channel's sessions plus arns; joins before delivery */
static void test_join_then_deliver(void **state)
{
	struct carillon_session *a = open_session(A, true), *b = open_session(B, true);
	dispatch(event(1, C1, "CREATE_CHANNEL_MEMBERSHIP", false, NAMES(A), NAMES(A), NONE, false));
	assert_true(got(a, 1));      /* the new member hears its own join */
	assert_false(got(b, 1));     /* bob is in no channel and not named */
	assert_int_equal(carillon_hub_channel_sessions(C1), 1);
	dispatch(event(2, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_true(got(a, 2));
	assert_false(got(b, 2));
	/* a batch joins several users at once */
	dispatch(event(3, C1, "BATCH_CREATE_CHANNEL_MEMBERSHIP", false, NAMES(B), NAMES(B), NONE, false));
	assert_true(got(a, 3) && got(b, 3));
	dispatch(event(4, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_true(got(a, 4) && got(b, 4));
	assert_int_equal(carillon_hub_channel_sessions(C1), 2);
	close_session(a);
	close_session(b);
	carillon_hub_free();
}

/* leaves after delivery: the removed member hears its removal, then nothing more */
static void test_leave(void **state)
{
	struct carillon_session *a = open_session(A, true), *b = open_session(B, true);
	carillon_hub_join(a, C1);
	carillon_hub_join(b, C1);
	dispatch(event(5, C1, "DELETE_CHANNEL_MEMBERSHIP", false, NAMES(A), NONE, NAMES(A), false));
	assert_true(got(a, 5) && got(b, 5));
	assert_int_equal(carillon_hub_channel_sessions(C1), 1);
	dispatch(event(6, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_false(got(a, 6));
	assert_true(got(b, 6));
	/* leaving a channel one is not in changes nothing */
	dispatch(event(7, C2, "DELETE_CHANNEL_MEMBERSHIP", false, NAMES(A), NONE, NAMES(A), false));
	assert_true(got(a, 7));     /* named in arns */
	assert_false(got(b, 7));
	assert_int_equal(carillon_hub_channel_sessions(C1), 1);
	close_session(a);
	close_session(b);
	carillon_hub_free();
}

/* a channel that closes: every session hears it, then leaves */
static void test_closes(void **state)
{
	struct carillon_session *a = open_session(A, true), *b = open_session(B, true), *x = open_session(X, true);
	carillon_hub_join(a, C1);
	carillon_hub_join(b, C1);
	carillon_hub_join(b, C2);
	dispatch(event(8, C1, "DELETE_CHANNEL", false, NONE, NONE, NONE, true));
	assert_true(got(a, 8) && got(b, 8));
	assert_false(got(x, 8));
	assert_int_equal(carillon_hub_channel_sessions(C1), 0);
	assert_int_equal(carillon_hub_channel_sessions(C2), 1); /* other channels stay */
	dispatch(event(9, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_int_equal(a->n_got + b->n_got + x->n_got, 2);
	close_session(a);
	close_session(b);
	close_session(x);
	carillon_hub_free();
}

/* 'only': exactly the named users, members or not (a targeted message; an elastic sub-channel) */
static void test_targeted(void **state)
{
	struct carillon_session *a = open_session(A, true), *b = open_session(B, true), *x = open_session(X, true);
	struct carillon_session *a2 = open_session(A, true); /* a second session of alice */
	carillon_hub_join(a, C1);
	carillon_hub_join(a2, C1);
	carillon_hub_join(x, C1);
	dispatch(event(10, C1, "CREATE_CHANNEL_MESSAGE", true, NAMES(A, B), NONE, NONE, false));
	assert_true(got(a, 10) && got(a2, 10)); /* every session of a named user */
	assert_true(got(b, 10));                /* named, though not in the channel */
	assert_false(got(x, 10));               /* a member, not named */
	assert_int_equal(a->n_got, 1);          /* once, though both in the channel and named */
	close_session(a);
	close_session(a2);
	close_session(b);
	close_session(x);
	carillon_hub_free();
}

/* a HIDDEN member: its membership events are 'only' itself; it hears the channel like any member */
static void test_hidden(void **state)
{
	struct carillon_session *a = open_session(A, true), *h = open_session(H, true);
	carillon_hub_join(a, C1);
	dispatch(event(11, C1, "CREATE_CHANNEL_MEMBERSHIP", true, NAMES(H), NAMES(H), NONE, false));
	assert_true(got(h, 11));
	assert_false(got(a, 11));
	assert_int_equal(carillon_hub_channel_sessions(C1), 2);
	dispatch(event(12, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_true(got(h, 12) && got(a, 12));
	dispatch(event(13, C1, "DELETE_CHANNEL_MEMBERSHIP", true, NAMES(H), NONE, NAMES(H), false));
	assert_true(got(h, 13));
	assert_false(got(a, 13));
	dispatch(event(14, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_false(got(h, 14));
	assert_true(got(a, 14));
	close_session(a);
	close_session(h);
	carillon_hub_free();
}

/* The hub follows the facts, never the type: a "membership" type without facts moves nobody, and
 * facts under any type do. */
static void test_facts_not_types(void **state)
{
	struct carillon_session *a = open_session(A, true);
	dispatch(event(15, C1, "CREATE_CHANNEL_MEMBERSHIP", false, NAMES(A), NONE, NONE, false));
	assert_true(got(a, 15));                          /* named in arns */
	assert_int_equal(carillon_hub_channel_sessions(C1), 0); /* but not joined */
	dispatch(event(16, C1, "SOME_FUTURE_EVENT", false, NONE, NAMES(A), NONE, false));
	assert_true(got(a, 16));
	assert_int_equal(carillon_hub_channel_sessions(C1), 1);
	dispatch(event(17, C1, "DELETE_CHANNEL_MEMBERSHIP", false, NAMES(A), NONE, NONE, false));
	assert_int_equal(carillon_hub_channel_sessions(C1), 1); /* no leaves: stays */
	dispatch(event(18, C1, "UPDATE_CHANNEL", false, NONE, NONE, NONE, true));
	assert_int_equal(carillon_hub_channel_sessions(C1), 0);
	close_session(a);
	carillon_hub_free();
}

/* A session waiting for its snapshot gets every event buffered; once its snapshot (channels as of
 * position P) is in, the buffered events are replayed through the same rules: those at or below P
 * are already reflected and skipped, later joins and leaves apply in order. Live ones follow. */
static void test_replay_after_snapshot(void **state)
{
	struct carillon_session *a = open_session(A, false), *b = open_session(B, true);
	carillon_hub_join(b, C1);
	dispatch(event(20, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	dispatch(event(21, C2, "CREATE_CHANNEL_MEMBERSHIP", false, NAMES(A), NAMES(A), NONE, false));
	dispatch(event(22, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	dispatch(event(23, C1, "DELETE_CHANNEL_MEMBERSHIP", false, NAMES(A), NONE, NAMES(A), false));
	dispatch(event(24, C2, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_int_equal(a->n_got, 0);           /* pending: nothing delivered... */
	assert_int_equal(a->n_buf, 5);           /* ...everything buffered */
	assert_int_equal(carillon_hub_channel_sessions(C2), 0);
	/* the snapshot: alice's channels at position 20 were {C1} */
	a->start = 20;
	carillon_hub_join(a, C1);
	a->active = true;
	for (int i = 0; i < a->n_buf; i++) {
		carillon_hub_replay(a, a->buf[i]);
		carillon_event_unref(a->buf[i]);
	}
	a->n_buf = 0;
	assert_false(got(a, 20));                /* in the snapshot already */
	assert_true(got(a, 21));                 /* joined C2 at 21 */
	assert_true(got(a, 22));                 /* still in C1 */
	assert_true(got(a, 23));                 /* hears its removal... */
	assert_true(got(a, 24));                 /* C2 */
	assert_int_equal(carillon_hub_channel_sessions(C1), 1); /* ...and left C1: bob only */
	assert_int_equal(carillon_hub_channel_sessions(C2), 1);
	dispatch(event(25, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	dispatch(event(26, C2, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_false(got(a, 25));
	assert_true(got(a, 26));
	assert_true(got(b, 25));
	/* and in order */
	for (int i = 1; i < a->n_got; i++)
		assert_true(a->got[i - 1] < a->got[i]);
	close_session(a);
	close_session(b);
	carillon_hub_free();
}

/* A live event at or below a session's start position is already in its snapshot. */
static void test_start_position(void **state)
{
	struct carillon_session *a = open_session(A, true);
	a->start = 30;
	carillon_hub_join(a, C1);
	dispatch(event(30, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	dispatch(event(31, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_false(got(a, 30));
	assert_true(got(a, 31));
	close_session(a);
	carillon_hub_free();
}

/* ---------------------------------------------------------------------------------- decoder */

static void row(const char *cols[CARILLON_EVENT_COLS], const char *pos, const char *audience, const char *arns,
		const char *joins, const char *leaves, const char *closes, const char *payload)
{
	cols[CARILLON_EVENT_COL_POSITION] = pos;
	cols[CARILLON_EVENT_COL_CHANNEL] = C1;
	cols[CARILLON_EVENT_COL_TYPE] = "CREATE_CHANNEL_MEMBERSHIP";
	cols[CARILLON_EVENT_COL_MESSAGE_TYPE] = "SYSTEM";
	cols[CARILLON_EVENT_COL_PAYLOAD] = payload;
	cols[CARILLON_EVENT_COL_AUDIENCE] = audience;
	cols[CARILLON_EVENT_COL_ARNS] = arns;
	cols[CARILLON_EVENT_COL_JOINS] = joins;
	cols[CARILLON_EVENT_COL_LEAVES] = leaves;
	cols[CARILLON_EVENT_COL_CLOSES] = closes;
}

static void test_decode(void **state)
{
	const char *cols[CARILLON_EVENT_COLS];
	row(cols, "42", "only", "[\"" H "\"]", "[\"" H "\"]", "[]", "f",
	    "{\"ChannelArn\": \"c\", \"Member\": {\"Arn\": \"" X "\"}}");
	struct carillon_event *e = carillon_event_decode(cols);
	assert_non_null(e);
	assert_int_equal(e->position, 42);
	assert_string_equal(e->channel_arn, C1);
	assert_true(e->only);
	assert_int_equal(e->arns.n, 1);
	assert_string_equal(e->arns.v[0], H);
	assert_int_equal(e->joins.n, 1);
	assert_string_equal(e->joins.v[0], H); /* the facts, not the payload's Member */
	assert_int_equal(e->leaves.n, 0);
	assert_false(e->closes);
	const char *want = "{\"Headers\":{\"x-amz-chime-event-type\":\"CREATE_CHANNEL_MEMBERSHIP\","
			   "\"x-amz-chime-message-type\":\"SYSTEM\",\"x-carillon-event-position\":\"42\"},"
			   "\"Payload\":\"{\\\"ChannelArn\\\":\\\"c\\\",\\\"Member\\\":{\\\"Arn\\\":\\\"" X "\\\"}}\"}";
	assert_int_equal(e->frame_len, strlen(want));
	assert_memory_equal(e->frame + LWS_PRE, want, strlen(want));
	carillon_event_unref(e);

	/* NULL name columns are empty lists; closes */
	row(cols, "7", "members", NULL, NULL, NULL, "t", "{}");
	e = carillon_event_decode(cols);
	assert_non_null(e);
	assert_false(e->only);
	assert_int_equal(e->arns.n + e->joins.n + e->leaves.n, 0);
	assert_true(e->closes);
	carillon_event_unref(e);

	/* malformed rows are refused, not half-routed */
	row(cols, "x7", "members", "[]", "[]", "[]", "f", "{}");
	assert_null(carillon_event_decode(cols));
	row(cols, NULL, "members", "[]", "[]", "[]", "f", "{}");
	assert_null(carillon_event_decode(cols));
	row(cols, "7", "members", "[]", "[1]", "[]", "f", "{}");
	assert_null(carillon_event_decode(cols));
	row(cols, "7", "members", "{}", "[]", "[]", "f", "{}");
	assert_null(carillon_event_decode(cols));
	row(cols, "7", "members", "[]", "[]", "[\"a\", null]", "f", "{}");
	assert_null(carillon_event_decode(cols));
	row(cols, "7", "members", "[]", "[]", "[]", "f", "{not json");
	assert_null(carillon_event_decode(cols));

	/* a session-private frame: no position header, no facts */
	e = carillon_event_system("CARILLON_RESYNC_REQUIRED", "{}");
	assert_non_null(e);
	assert_int_equal(e->position, 0);
	assert_true(e->only && !e->arns.n && !e->joins.n && !e->leaves.n && !e->closes);
	char *text = strndup((const char *)e->frame + LWS_PRE, e->frame_len);
	assert_null(strstr(text, "x-carillon-event-position"));
	free(text);
	carillon_event_unref(e);
}

/* The frame as jansson renders it: the payload decoded and encoded compact, inside a frame object
 * encoded compact (how frames were written before they were written directly). */
static char *jansson_frame(const char *event_type, const char *message_type, long long position, const char *payload)
{
	json_t *doc = json_loads(payload, JSON_DECODE_ANY, NULL);
	assert_non_null(doc);
	char *compact = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(doc);
	json_t *frame = json_pack("{s:{s:s,s:s},s:s}", "Headers", "x-amz-chime-event-type", event_type,
				  "x-amz-chime-message-type", message_type, "Payload", compact);
	free(compact);
	char pos[24];
	snprintf(pos, sizeof(pos), "%lld", position);
	json_object_set_new(json_object_get(frame, "Headers"), "x-carillon-event-position", json_string(pos));
	char *text = json_dumps(frame, JSON_COMPACT);
	json_decref(frame);
	return text;
}

/* The frame is written directly from the row's text: byte for byte what jansson wrote for payloads
 * as the database gives them (jsonb's text: ", " and ": " between members), and for any JSON text
 * the same document once decoded (white space outside strings dropped, inside kept, escapes kept). */
static void test_frame_bytes(void **state)
{
	(void)state;
	static const char *const same_bytes[] = {
		"{\"ChannelArn\": \"c\", \"Content\": \"two  spaces, a \\\"quote\\\", a \\\\ and a tab\\t\", \"N\": [1, 2, {\"x\": null}]}",
		"{\"Content\": \"caf\xc3\xa9 \xf0\x9f\x99\x82 / <script>\", \"Redacted\": false, \"Metadata\": \"\\n\\r\\b\\f\"}",
		"[]", "\"just a string\"", "{}", "{\"a\": {\"b\": {\"c\": [true, false, null, -12, \"}\"]}}}",
	};
	for (size_t i = 0; i < sizeof(same_bytes) / sizeof(same_bytes[0]); i++) {
		const char *cols[CARILLON_EVENT_COLS];
		row(cols, "42", "members", "[]", "[]", "[]", "f", same_bytes[i]);
		cols[CARILLON_EVENT_COL_TYPE] = "CREATE_CHANNEL_MESSAGE";
		cols[CARILLON_EVENT_COL_MESSAGE_TYPE] = "STANDARD";
		struct carillon_event *e = carillon_event_decode(cols);
		assert_non_null(e);
		char *want = jansson_frame("CREATE_CHANNEL_MESSAGE", "STANDARD", 42, same_bytes[i]);
		assert_int_equal(e->frame_len, strlen(want));
		assert_memory_equal(e->frame + LWS_PRE, want, strlen(want));
		free(want);
		carillon_event_unref(e);
	}
	/* White space of every kind between tokens, a control character escaped (\u001f, which jansson
	 * wrote as \u001F), types that need escapes: the same documents. */
	const char *cols[CARILLON_EVENT_COLS];
	const char *payload = "\n\t{ \"k\"\r\n:\t[ 1 ,\"a\\u001fb\" ] , \"e\" : \"\\u00e9\" }  ";
	row(cols, "9", "members", "[]", "[]", "[]", "f", payload);
	cols[CARILLON_EVENT_COL_TYPE] = "A \"type\"\\";
	cols[CARILLON_EVENT_COL_MESSAGE_TYPE] = "line\nbreak";
	struct carillon_event *e = carillon_event_decode(cols);
	assert_non_null(e);
	json_t *frame = json_loadb((const char *)e->frame + LWS_PRE, e->frame_len, 0, NULL);
	assert_non_null(frame);
	json_t *h = json_object_get(frame, "Headers");
	assert_string_equal(json_string_value(json_object_get(h, "x-amz-chime-event-type")), "A \"type\"\\");
	assert_string_equal(json_string_value(json_object_get(h, "x-amz-chime-message-type")), "line\nbreak");
	assert_string_equal(json_string_value(json_object_get(h, "x-carillon-event-position")), "9");
	json_t *got = json_loads(json_string_value(json_object_get(frame, "Payload")), JSON_DECODE_ANY, NULL);
	json_t *want = json_loads(payload, JSON_DECODE_ANY, NULL);
	assert_true(json_equal(got, want));
	assert_null(strchr(json_string_value(json_object_get(frame, "Payload")), ' '));
	json_decref(got);
	json_decref(want);
	json_decref(frame);
	carillon_event_unref(e);
	/* A type that is not UTF-8 is refused, as jansson refused it. */
	cols[CARILLON_EVENT_COL_TYPE] = "bad \xff";
	assert_null(carillon_event_decode(cols));
}

/* -------------------------------------------------------------------- the index under churn */

#define SESSIONS 64
#define CHANNELS 3000

static unsigned rnd(void)
{
	static uint64_t x = 88172645463325252ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (unsigned)(x >> 11);
}

static void channel_name(char *out, size_t len, int c) { snprintf(out, len, "arn:aws:chime:us-east-1:1:app-instance/a/channel/c%d", c); }

static void check(unsigned char (*model)[CHANNELS], bool *open)
{
	char name[96];
	for (int c = 0; c < CHANNELS; c++) {
		int want = 0;
		for (int s = 0; s < SESSIONS; s++)
			want += open[s] && model[s][c];
		channel_name(name, sizeof(name), c);
		assert_int_equal(carillon_hub_channel_sessions(name), want);
	}
}

static void test_churn(void **state)
{
	static unsigned char model[SESSIONS][CHANNELS];
	bool open[SESSIONS] = {0};
	struct carillon_session *sess[SESSIONS];
	char name[96];
	for (int s = 0; s < SESSIONS; s++)
		sess[s] = calloc(1, sizeof(struct carillon_session)); /* no user, not active */
	for (int round = 0; round < 40; round++) {
		for (int s = 0; s < SESSIONS; s++) {
			unsigned r = rnd() % 4;
			if (!open[s] || r == 0) {
				if (open[s])
					carillon_hub_detach(sess[s]);
				memset(model[s], 0, sizeof(model[s]));
				open[s] = true;
			}
			/* a few sessions join thousands of channels (detached through the reaper) */
			int joins = s % 8 == 0 ? 1500 : (int)(rnd() % 40);
			for (int j = 0; j < joins; j++) {
				int c = (int)(rnd() % CHANNELS);
				channel_name(name, sizeof(name), c);
				carillon_hub_join(sess[s], name);
				model[s][c] = 1;
			}
		}
		/* reap a little at a time, checking between slices */
		while (carillon_hub_reap(700))
			check(model, open);
		check(model, open);
	}
	for (int s = 0; s < SESSIONS; s++) {
		carillon_hub_detach(sess[s]);
		open[s] = false;
	}
	while (carillon_hub_reap(1000))
		;
	check(model, open);
	carillon_hub_free();
	for (int s = 0; s < SESSIONS; s++)
		free(sess[s]);
}


/* A fan-out in slices (carillon_hub_start): two events queued behind one another reach every
 * session in order, a session closed in the middle of a fan-out is skipped (and its record is not
 * used after it is freed: run under ASan), a session that joins mid-fan-out hears only what comes
 * after its start, and a pending session gets both events buffered, once. */
static void test_sliced_fanout(void **state)
{
	static const char *users[10] = {
		"arn:aws:chime:us-east-1:1:app-instance/a/user/u0", "arn:aws:chime:us-east-1:1:app-instance/a/user/u1",
		"arn:aws:chime:us-east-1:1:app-instance/a/user/u2", "arn:aws:chime:us-east-1:1:app-instance/a/user/u3",
		"arn:aws:chime:us-east-1:1:app-instance/a/user/u4", "arn:aws:chime:us-east-1:1:app-instance/a/user/u5",
		"arn:aws:chime:us-east-1:1:app-instance/a/user/u6", "arn:aws:chime:us-east-1:1:app-instance/a/user/u7",
		"arn:aws:chime:us-east-1:1:app-instance/a/user/u8", "arn:aws:chime:us-east-1:1:app-instance/a/user/u9"};
	carillon_hub_start(NULL, 3);
	struct carillon_session *s[10];
	for (int i = 0; i < 10; i++) {
		s[i] = open_session(users[i], true);
		carillon_hub_join(s[i], C1);
	}
	struct carillon_session *p = open_session(X, false); /* waiting for its snapshot, already joined */
	carillon_hub_join(p, C1);
	dispatch(event(1, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_int_equal(carillon_hub_backlog(), 1); /* one slice done, the rest waits for the loop */
	dispatch(event(2, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_int_equal(carillon_hub_backlog(), 2);
	assert_int_equal(p->n_buf, 1);               /* buffered when the event started, not yet the second */
	int before = 0;
	for (int i = 0; i < 10; i++)
		before += s[i]->n_got;
	assert_int_equal(before, 3);
	/* mid-fan-out: a session closes, another connects and joins (its snapshot is at 1) */
	close_session(s[9]);
	s[9] = NULL;
	struct carillon_session *late = open_session(B, true);
	late->start = 1;
	carillon_hub_join(late, C1);
	assert_true(carillon_hub_step(3));
	close_session(s[8]); /* one more, whether or not it was reached */
	s[8] = NULL;
	while (carillon_hub_step(3))
		;
	assert_int_equal(carillon_hub_backlog(), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(s[i]->n_got, 2);
		assert_int_equal(s[i]->got[0], 1);
		assert_int_equal(s[i]->got[1], 2);
	}
	assert_int_equal(late->n_got, 1);
	assert_int_equal(late->got[0], 2);
	assert_int_equal(p->n_got, 0);
	assert_int_equal(p->n_buf, 2);
	assert_int_equal(p->buf[0]->position, 1);
	assert_int_equal(p->buf[1]->position, 2);
	for (int i = 0; i < 8; i++)
		close_session(s[i]);
	close_session(late);
	close_session(p);
	carillon_hub_stop();
}

/* what the listener may leave unbuilt: an event no session of this node would receive */
static void test_unheard(void **state)
{
	assert_true(carillon_hub_unheard(C1)); /* no session at all */
	struct carillon_session *a = open_session(A, false), *b = open_session(B, true);
	assert_false(carillon_hub_unheard(C1)); /* a session waiting for its snapshot buffers everything */
	a->active = true;
	dispatch(event(1, C2, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_true(carillon_hub_unheard(C1)); /* both active now, in no channel */
	carillon_hub_join(a, C1);
	carillon_hub_join(b, C1);
	assert_false(carillon_hub_unheard(C1));
	assert_true(carillon_hub_unheard(C2));
	/* an event behind a fan-out still in progress is built: the indexes are not yet as of it */
	carillon_hub_start(NULL, 1);
	dispatch(event(2, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_int_equal(carillon_hub_backlog(), 1);
	assert_false(carillon_hub_unheard(C2));
	while (carillon_hub_step(1))
		;
	assert_true(carillon_hub_unheard(C2));
	assert_true(got(a, 2) && got(b, 2));
	close_session(a);
	close_session(b);
	carillon_hub_stop();
}

/* carillon_hub_silent: true only with no session at all (pending or active) and no fan-out waiting;
 * the listener passes over notifications without reading the log only then. */
static void test_silent(void **state)
{
	assert_true(carillon_hub_silent());
	struct carillon_session *a = open_session(A, false);
	assert_false(carillon_hub_silent()); /* pending: it buffers every event until its snapshot */
	a->active = true;
	dispatch(event(1, C2, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	assert_false(carillon_hub_silent()); /* active, in no channel: a join event could still name it */
	close_session(a);
	assert_true(carillon_hub_silent());
	/* a fan-out still in progress: not silent, even once its sessions are gone */
	struct carillon_session *b = open_session(B, true), *c = open_session(A, true);
	carillon_hub_join(b, C1);
	carillon_hub_join(c, C1);
	carillon_hub_start(NULL, 1); /* one session a step: the second waits */
	dispatch(event(2, C1, "CREATE_CHANNEL_MESSAGE", false, NONE, NONE, NONE, false));
	close_session(b);
	close_session(c);
	assert_int_equal(carillon_hub_backlog(), 1);
	assert_false(carillon_hub_silent());
	while (carillon_hub_step(1))
		;
	assert_true(carillon_hub_silent());
	carillon_hub_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join_then_deliver),
		cmocka_unit_test(test_leave),
		cmocka_unit_test(test_closes),
		cmocka_unit_test(test_targeted),
		cmocka_unit_test(test_hidden),
		cmocka_unit_test(test_facts_not_types),
		cmocka_unit_test(test_replay_after_snapshot),
		cmocka_unit_test(test_start_position),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_frame_bytes),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_sliced_fanout),
		cmocka_unit_test(test_unheard),
		cmocka_unit_test(test_silent),
	};
	return cmocka_run_group_tests_name("hub", tests, NULL, NULL);
}
