/*
 * Real-time delivery: the websocket endpoint (GET /connect) that amazon-chime-sdk-js's
 * DefaultMessagingSession speaks, fed from the event log.
 *
 *   listener.c  LISTEN carillon_events on a dedicated connection; on every notification (and after
 *               every reconnect, and every CARILLON_LISTENER_POLL_MS as a fallback) read the events
 *               after the last position seen (carillon.events_after), in position (= commit) order,
 *               and hand them to the hub; this node's own write batches' events come with their
 *               answers instead, when they are the next positions.
 *   event.c     one event = one refcounted text frame built once, shared by every recipient, with
 *               the routing facts of its row (the one decoder of carillon.events_after rows).
 *   hub.c       the indexes: channel -> local sessions, user -> local sessions; applies each
 *               event's facts (joins, audience, leaves, closes) in log order, knowing no event
 *               type. docs/events.md describes the facts and the data flows.
 *   session.c   one websocket session: SigV4-presigned auth (4401 on refusal), the per-user connect
 *               rate (429 before the upgrade) and session quota (4003), a membership snapshot at
 *               position P joined in slices, for a resume the user's events of the gap in pages,
 *               SESSION_ESTABLISHED, then every event after P that the user may see, through a
 *               bounded queue (a slow consumer is closed with a retryable code); closed with 4410
 *               when the credential it was opened with expires.
 */
#ifndef CARILLON_REALTIME_H
#define CARILLON_REALTIME_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <libwebsockets.h>
#include <uv.h>

struct carillon_session;

/* A list of user ARNs (owned by the event). */
struct carillon_names {
	char **v;
	int n;
};

/* A routed event: the frame every recipient shares, and the routing facts its row carries
 * (migration 060; written by carillon.event in the write's own transaction). The hub applies the
 * facts and reads nothing else: it never looks at the type or the payload. */
struct carillon_event {
	unsigned refs;
	int64_t position;            /* 0: a frame private to one session (never routed) */
	char *channel_arn;
	char *event_type;            /* for logs and tests only */
	bool only;                   /* audience 'only': exactly `arns`; else the channel's sessions plus `arns` */
	struct carillon_names arns;
	struct carillon_names joins;  /* users whose sessions join the channel before delivery */
	struct carillon_names leaves; /* users whose sessions leave the channel after delivery */
	bool closes;                 /* every session leaves the channel after delivery */
	unsigned char *frame;        /* LWS_PRE bytes of headroom, then the text frame */
	size_t frame_len;
};

/* The facts of one event, as given to carillon_event_build (borrowed; copied into the event). */
struct carillon_event_facts {
	int64_t position;
	const char *channel_arn;
	const char *event_type;
	const char *message_type;
	const char *payload_json;
	bool only;
	const char *const *arns;
	int n_arns;
	const char *const *joins;
	int n_joins;
	const char *const *leaves;
	int n_leaves;
	bool closes;
};

/* Render an event's frame once and keep its facts. NULL when the payload is not JSON. */
struct carillon_event *carillon_event_build(const struct carillon_event_facts *f);

/* The one row shape of the event log, as carillon.events_after() returns it (sql/api/realtime.sql),
 * read by the listener and by a resuming session alike. */
enum {
	CARILLON_EVENT_COL_POSITION,
	CARILLON_EVENT_COL_CHANNEL,
	CARILLON_EVENT_COL_TYPE,
	CARILLON_EVENT_COL_MESSAGE_TYPE,
	CARILLON_EVENT_COL_PAYLOAD,
	CARILLON_EVENT_COL_AUDIENCE,
	CARILLON_EVENT_COL_ARNS,     /* JSON array of strings */
	CARILLON_EVENT_COL_JOINS,    /* JSON array of strings */
	CARILLON_EVENT_COL_LEAVES,   /* JSON array of strings */
	CARILLON_EVENT_COL_CLOSES,   /* "t" / "f" */
	CARILLON_EVENT_COLS          /* (then created_at, epoch seconds: not decoded, the listener's metric) */
};
/* The statement both readers run: $1 after, $2 limit, $3 until, $4 user, $5 moved channels
 * (text[]), $6 moves only (boolean); $3..$6 may be NULL (the listener: every event). */
#define CARILLON_EVENTS_AFTER_SQL \
	"select * from carillon.events_after($1::bigint, $2::int, $3::bigint, $4, $5::text[], coalesce($6::boolean, false))"

/* The one decoder: a row of carillon.events_after() (text columns, in the order above) -> a routed
 * event. NULL if the row is malformed (a bad position, payload or name list). */
struct carillon_event *carillon_event_decode(const char *const cols[CARILLON_EVENT_COLS]);
/* True when a names column (CARILLON_EVENT_COL_ARNS, _JOINS, _LEAVES) names nobody: NULL, empty or []. */
bool carillon_event_names_none(const char *text);
/* Row `row` of a carillon.events_after() result (NULL if malformed). */
struct carillon_event *carillon_event_from_result(const PGresult *res, int row);
/* The same with the row's columns from column `first` on (another result that carries events in
 * that shape: carillon_api.invoke_batch_rows' ev_ columns). */
struct carillon_event *carillon_event_from_result_at(const PGresult *res, int row, int first);

/* A frame private to one session (SESSION-side signals such as CHANNEL_DETAILS and
 * CARILLON_RESYNC_REQUIRED): position 0, no routing facts. */
struct carillon_event *carillon_event_system(const char *event_type, const char *payload_json);

struct carillon_event *carillon_event_ref(struct carillon_event *e);
void carillon_event_unref(struct carillon_event *e);

/* hub */
/* Fan an event out to the sessions that hear it (takes its own reference). Before
 * carillon_hub_start, at once; after it, in log order through a FIFO, `slice` sessions per loop
 * turn. */
void carillon_hub_dispatch(struct carillon_event *e);
/* From now on, fan out `slice` sessions per loop turn on `loop` (NULL: only carillon_hub_step
 * advances the fan-out, for tests). */
void carillon_hub_start(uv_loop_t *loop, unsigned slice);
/* Drop the events not yet fanned out and close the loop handle (shutdown). */
void carillon_hub_stop(void);
/* Consider up to `budget` more sessions of the fan-outs in progress; true while some remain. */
bool carillon_hub_step(unsigned budget);
/* Events waiting to be fanned out (the one in progress included). */
unsigned carillon_hub_backlog(void);
/* True when an event of channel_arn that names no user (no arns, no joins) would reach no session
 * of this node: no fan-out waiting before it, no session still pending, no session in the channel.
 * The listener then does not build it (a node of a cluster holds the sessions of some channels). */
bool carillon_hub_unheard(const char *channel_arn);
/* True when no event at all would reach a session of this node: no session (pending or not), no
 * fan-out waiting. A session that connects from now on takes a snapshot of the log that includes
 * every event committed before it registered. */
bool carillon_hub_silent(void);
/* Called when the last waiting event has been fanned out (the listener resumes reading). */
void carillon_hub_on_drained(void (*fn)(void));
void carillon_hub_add_user(struct carillon_session *s, const char *user_arn);
void carillon_hub_join(struct carillon_session *s, const char *channel_arn);
void carillon_hub_detach(struct carillon_session *s);
/* Leave up to `budget` channels of closed sessions still in many; true while some remain. */
bool carillon_hub_reap(unsigned budget);
/* Route one buffered event to a session that just received its membership snapshot. */
void carillon_hub_replay(struct carillon_session *s, struct carillon_event *e);
void carillon_hub_free(void);
/* Open sessions of this node in a channel (for tests and diagnostics: O(channel size)). */
int carillon_hub_channel_sessions(const char *channel_arn);
/* Open sessions of a user on this node (pending ones included). */
int carillon_hub_user_sessions(const char *user_arn);

/* what the hub needs from a session (session.c) */
const char *carillon_session_user(const struct carillon_session *s);
bool carillon_session_active(const struct carillon_session *s);
int64_t carillon_session_start(const struct carillon_session *s);
void carillon_session_deliver(struct carillon_session *s, struct carillon_event *e);
void carillon_session_buffer(struct carillon_session *s, struct carillon_event *e); /* while pending */
/* a slot in the session for the hub's own per-session state */
void **carillon_session_hub(struct carillon_session *s);
uint64_t *carillon_session_stamp(struct carillon_session *s);

/* listener */
void carillon_listener_start(uv_loop_t *loop);
void carillon_listener_stop(void);
int64_t carillon_listener_position(void);
/* This node's write batch committed and its answer `res` carries the events it logged, from column
 * `first` on, in the shape of a carillon.events_after row (carillon_api.invoke_batch_rows' ev_
 * columns; rows of items without an event have a NULL position). */
void carillon_listener_batch_events(const PGresult *res, int first);
/* Other readers of the event log (the streaming exporter) are woken with the listener: `fn` runs on
 * every notification with the position it names, and with -1 when the LISTEN connection comes back
 * (anything may have been missed). At most 4 subscribers; call before the loop runs. */
typedef void (*carillon_listener_wake_fn)(int64_t position);
void carillon_listener_subscribe(carillon_listener_wake_fn fn);

/* the lws protocol of websocket sessions */
int carillon_session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
size_t carillon_session_pss_size(void);
/* Open sessions (plus one while session-registry work must still reach the database). */
unsigned carillon_sessions_open(void);
/* Keepalive over all sessions: one loop timer (ping after 30 s of silence, drop after 75 s). */
void carillon_sessions_start(uv_loop_t *loop);
void carillon_sessions_stop(void);
/* Close every session with `code` (1001 on shutdown: clients reconnect, elsewhere), and take this
 * node and its sessions out of the deployment's session registry. */
void carillon_sessions_close_all(int code, const char *reason);

#endif
