/*
 * Streaming export to Kinesis (docs/streaming.md).
 *
 * Who exports: the node holding the lease row carillon.streaming_lease (claimed and renewed every
 * third of CARILLON_STREAMING_LEASE_SECONDS by carillon.streaming_lease_claim). A lease row rather
 * than an advisory lock: the pool has no connection of its own to hold a session lock on, and a
 * lock held by a connection whose peer vanished (a partition, a killed node behind a NAT) stays
 * held until the server notices the dead socket — possibly for minutes — while a lease runs out at
 * a known time. The holder stops exporting by its own clock when its last successful renewal,
 * counted from when the renewal was *sent*, is a lease old: a node cut off from the database stops
 * before another can claim the lease (up to clock-rate drift); even an overlap only duplicates
 * records, since cursors only move forward past acknowledged records.
 *
 * What it exports: for each stream (a "sink": one per AppInstance and stream ARN, with its cursor
 * row), the records carillon.streaming_read returns after the cursor, in log order, queued in
 * memory (at most twice the batch). One PutRecords call per sink at a time takes the head of the
 * queue (at most CARILLON_STREAMING_BATCH records). On the answer:
 *   - a record Kinesis accepted is done, unless an earlier record of its channel in the same call
 *     failed: then it stays queued too, so the channel's failed record and everything after it go
 *     again, in order (per-channel order holds for the last copy of every record; see the doc);
 *   - failed records (FailedRecordCount > 0, or the whole call failing) stay at the head, and the
 *     sink waits CARILLON_STREAMING_RETRY_MS, doubling per failed round up to 30 s;
 *   - the cursor moves to just below the first record still queued (or to where the log was read,
 *     when nothing is queued): everything at or below it was acknowledged. After a restart or a
 *     change of exporter, export resumes there (records above it may go twice: at-least-once).
 *
 * When: on every notification of the event log (through the listener), every
 * CARILLON_STREAMING_POLL_MS (which also reloads the list of streams), and when a retry is due.
 * Reads are coalesced: a sink that wants the log read is marked, and a zero-delay timer reads for
 * every marked sink in one query once the loop turn is over (reads_due), so a burst of
 * notifications or answers costs one round trip, not one per stream and wake-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "carillon/aws_endpoint.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/outbound.h"
#include "carillon/realtime.h"
#include "carillon/sigv4_sign.h"
#include "carillon/streaming.h"
#include "carillon/util.h"

#define ST_READ_WINDOW "10000"           /* log positions looked at per read */
#define ST_MAX_BODY (4L * 1024 * 1024)  /* PutRecords allows 5 MiB per call */
#define ST_MAX_BACKOFF_MS 30000
#define ST_RESPONSE_BYTES_PER_RECORD 160 /* the answer's size per record, generously */

/* One read for several sinks: each sink's place in the read (1-based), then its rows in order. */
#define ST_READ_SQL                                                                                            \
	"select s.i, r.r_position, r.r_channel_arn, r.r_data"                                                  \
	"  from unnest($1::text[], $2::text[], $3::bigint[], $4::int[]) with ordinality as s(app, stream, aft, lim, i)" \
	" cross join lateral carillon.streaming_read(s.app, s.stream, s.aft, s.lim, $5::int)"                   \
	"       with ordinality as r(r_position, r_channel_arn, r_data, k)"                                    \
	" order by s.i, r.k"

struct st_record {
	int64_t position;
	char *channel;
	char *data;
	size_t data_len;
};

struct st_sink {
	struct st_sink *next;
	char *app;
	char *stream_arn;
	char *stream_name;
	int64_t acked;          /* the cursor as stored: everything at or below was acknowledged */
	int64_t scanned;        /* the log was read up to here */
	struct st_record **q;   /* not yet acknowledged, in log order */
	size_t qn, qcap;
	size_t sent;            /* records of the queue's head in the PutRecords call in flight */
	unsigned gen;           /* bumped on reset: answers to older operations are dropped */
	unsigned pending;       /* operations in flight (reads, calls, saves) */
	bool reading, need_read, saving, dead, seen;
	uint64_t retry_at;      /* uv_now() before which nothing is sent */
	int failures;           /* failed rounds in a row */
};

/* One operation in flight: the sink it is for and the sink's generation when it started. */
struct st_op {
	struct st_sink *sink;
	unsigned gen;
	int64_t position; /* a save: the position stored */
};

static struct {
	uv_loop_t *loop;
	uv_timer_t poll, lease, retry, reads;
	bool running, leader, claiming, loading;
	uint64_t lease_until;   /* uv_now() ms */
	char node[37];
	char *url;              /* the PutRecords URL */
	size_t batch;
	struct st_sink *sinks;
	unsigned long n_reads, n_sink_reads; /* log reads, and the sinks they read for (logged at stop) */
} st;

static void sink_kick(struct st_sink *s);

/* ---------------------------------------------------------------------------------------------
 * Sinks and their queues. */

static void record_free(struct st_record *r)
{
	if (!r)
		return;
	free(r->channel);
	free(r->data);
	free(r);
}

static void queue_clear(struct st_sink *s)
{
	for (size_t i = 0; i < s->qn; i++)
		record_free(s->q[i]);
	s->qn = 0;
	s->sent = 0;
}

static void sink_free(struct st_sink *s)
{
	queue_clear(s);
	free(s->q);
	free(s->app);
	free(s->stream_arn);
	free(s->stream_name);
	free(s);
}

/* The sink leaves the list; it is freed once no operation refers to it. */
static void sink_drop(struct st_sink *s)
{
	for (struct st_sink **pp = &st.sinks; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->dead = true;
	s->next = NULL;
	if (!s->pending)
		sink_free(s);
}

static void drop_all_sinks(void)
{
	while (st.sinks)
		sink_drop(st.sinks);
}

static struct st_op *op_new(struct st_sink *s)
{
	struct st_op *op = carillon_xcalloc(1, sizeof(*op));
	op->sink = s;
	op->gen = s->gen;
	s->pending++;
	return op;
}

/* Ends an operation: true when its answer still matters (the sink lives, was not reset). */
static bool op_end(struct st_op *op, struct st_sink **out)
{
	struct st_sink *s = op->sink;
	bool current = st.running && !s->dead && op->gen == s->gen;
	s->pending--;
	if (s->dead && !s->pending)
		sink_free(s);
	*out = current ? s : NULL;
	return current;
}

/* "arn:aws:kinesis:REGION:ACCOUNT:stream/NAME" -> NAME. The stream is addressed by name: its ARN
 * carries Carillon's account id, not necessarily the one of the Kinesis endpoint. */
static char *stream_name_of(const char *arn)
{
	const char *slash = strstr(arn, ":stream/");
	return carillon_xstrdup(slash ? slash + 8 : arn);
}

static struct st_sink *sink_find(const char *app, const char *stream)
{
	for (struct st_sink *s = st.sinks; s; s = s->next)
		if (!strcmp(s->app, app) && !strcmp(s->stream_arn, stream))
			return s;
	return NULL;
}

static void sink_reset(struct st_sink *s, int64_t position)
{
	queue_clear(s);
	s->gen++;
	s->acked = s->scanned = position;
	s->reading = s->saving = false;
	s->need_read = true;
	s->failures = 0;
	s->retry_at = 0;
}

/* ---------------------------------------------------------------------------------------------
 * The cursor. */

static void save_done(void *arg, const struct carillon_db_result *r)
{
	struct st_op *op = arg;
	struct st_sink *s;
	int64_t position = op->position;
	bool current = op_end(op, &s);
	free(op);
	if (!current)
		return;
	s->saving = false;
	if (!r->res)
		log_warn("streaming: saving the cursor of %s: %s", s->stream_arn, r->message);
	else if (position > s->acked)
		s->acked = position;
}

/* Stores the cursor: just below the first record still queued, or where the log was read. */
static void sink_save(struct st_sink *s)
{
	int64_t position = s->qn ? s->q[0]->position - 1 : s->scanned;
	if (s->saving || position <= s->acked)
		return;
	char pos[24];
	snprintf(pos, sizeof(pos), "%lld", (long long)position);
	const char *params[3] = {s->app, s->stream_arn, pos};
	struct st_op *op = op_new(s);
	op->position = position;
	s->saving = true;
	if (carillon_db_query("select carillon.streaming_advance($1, $2, $3::bigint)", 3, params, save_done, op)) {
		s->saving = false;
		s->pending--;
		free(op);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Reading the log. */

static void queue_push(struct st_sink *s, struct st_record *r)
{
	if (s->qn == s->qcap) {
		s->qcap = s->qcap ? s->qcap * 2 : 64;
		s->q = carillon_xrealloc(s->q, s->qcap * sizeof(*s->q));
	}
	s->q[s->qn++] = r;
}

/* One read of the log for several sinks: an operation per sink. */
struct st_read {
	size_t n;
	struct st_op ops[];
};

/* The rows of one sink (the result's rows [from, to)): its records, then the top row. False when the
 * sink was dropped (no rows: no longer configured). */
static bool read_rows(struct st_sink *s, PGresult *res, int from, int to)
{
	if (to == from) {
		sink_drop(s);
		return false;
	}
	int64_t before = s->scanned;
	for (int i = from; i < to - 1; i++) {
		struct st_record *rec = carillon_xcalloc(1, sizeof(*rec));
		rec->position = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		rec->channel = carillon_xstrdup(PQgetvalue(res, i, 2));
		rec->data_len = (size_t)PQgetlength(res, i, 3);
		rec->data = carillon_xstrndup(PQgetvalue(res, i, 3), rec->data_len);
		queue_push(s, rec);
	}
	int64_t top = strtoll(PQgetvalue(res, to - 1, 1), NULL, 10);
	if (top > s->scanned)
		s->scanned = top;
	/* A full page, or a window read to its end: there may be more right away. */
	if ((size_t)(to - 1 - from) >= st.batch || top >= before + atoll(ST_READ_WINDOW))
		s->need_read = true;
	return true;
}

static void read_done(void *arg, const struct carillon_db_result *r)
{
	struct st_read *rd = arg;
	size_t n = rd->n;
	struct st_sink **kick = carillon_xcalloc(n, sizeof(*kick));
	int rows = r->res ? PQntuples(r->res) : 0, at = 0;
	for (size_t j = 0; j < n; j++) {
		/* This sink's rows: the result is ordered by the sink's place in the read (1-based). */
		int from = at;
		while (at < rows && strtoull(PQgetvalue(r->res, at, 0), NULL, 10) == j + 1)
			at++;
		struct st_sink *s;
		if (!op_end(&rd->ops[j], &s))
			continue;
		s->reading = false;
		if (!r->res) {
			log_warn("streaming: reading the log for %s: %s", s->stream_arn, r->message);
			continue; /* the next wake-up or poll reads again */
		}
		if (read_rows(s, r->res, from, at))
			kick[j] = s;
	}
	free(rd);
	/* A cursor that only follows the log (nothing of this stream was read) is stored on the poll
	 * timer (sinks_loaded), not after every read: one write per poll, not per commit. A kick never
	 * drops a sink (see sink_kick), so the pointers stay valid through the loop. */
	for (size_t j = 0; j < n; j++)
		if (kick[j])
			sink_kick(kick[j]);
	free(kick);
}

/* Appends `v` to a PostgreSQL array literal being built (the caller wrote its "{"). */
static void array_add(struct carillon_buf *b, const char *v)
{
	if (b->len > 1)
		carillon_buf_append(b, ",", 1);
	carillon_buf_append(b, "\"", 1);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			carillon_buf_append(b, "\\", 1);
		carillon_buf_append(b, p, 1);
	}
	carillon_buf_append(b, "\"", 1);
}

static bool wants_read(const struct st_sink *s)
{
	return s->need_read && !s->reading && s->qn < 2 * st.batch;
}

static bool still_leader(void);

/* Reads the log for every sink that wants it, in one query: the notifications, answers and timers
 * of one loop turn end in one read however many streams there are (reads_wanted). */
static void reads_due(uv_timer_t *t)
{
	if (!st.running || !still_leader())
		return;
	size_t n = 0;
	for (struct st_sink *s = st.sinks; s; s = s->next)
		n += wants_read(s);
	if (!n)
		return;
	struct st_read *rd = carillon_xcalloc(1, sizeof(*rd) + n * sizeof(rd->ops[0]));
	struct carillon_buf arr[4] = {{0}};
	for (int i = 0; i < 4; i++)
		carillon_buf_append(&arr[i], "{", 1);
	for (struct st_sink *s = st.sinks; s && rd->n < n; s = s->next) {
		if (!wants_read(s))
			continue;
		size_t room = 2 * st.batch - s->qn;
		char after[24], limit[24];
		snprintf(after, sizeof(after), "%lld", (long long)s->scanned);
		snprintf(limit, sizeof(limit), "%zu", room < st.batch ? room : st.batch);
		array_add(&arr[0], s->app);
		array_add(&arr[1], s->stream_arn);
		array_add(&arr[2], after);
		array_add(&arr[3], limit);
		rd->ops[rd->n++] = (struct st_op){.sink = s, .gen = s->gen};
		s->pending++;
		s->reading = true;
		s->need_read = false;
	}
	for (int i = 0; i < 4; i++)
		carillon_buf_append(&arr[i], "}", 2); /* with the NUL */
	const char *params[5] = {arr[0].data, arr[1].data, arr[2].data, arr[3].data, ST_READ_WINDOW};
	st.n_reads++;
	st.n_sink_reads += rd->n;
	if (carillon_db_query(ST_READ_SQL, 5, params, read_done, rd)) {
		for (size_t j = 0; j < rd->n; j++) {
			struct st_sink *s = rd->ops[j].sink;
			s->reading = false;
			s->need_read = true; /* the next wake-up or poll tries again */
			s->pending--;
		}
		free(rd);
	}
	for (int i = 0; i < 4; i++)
		carillon_buf_free(&arr[i]);
}

/* Some sink wants the log read: once this loop turn is over, one read for all that do. */
static void reads_wanted(void)
{
	if (!uv_is_active((uv_handle_t *)&st.reads))
		uv_timer_start(&st.reads, reads_due, 0, 0);
}

/* ---------------------------------------------------------------------------------------------
 * PutRecords. */

static void retry_due(uv_timer_t *t);

/* The retry timer fires at the earliest time a backing-off sink may send again. */
static void schedule_retry(uint64_t at)
{
	uint64_t now = uv_now(st.loop);
	uint64_t due = at > now ? at - now : 0;
	if (uv_is_active((uv_handle_t *)&st.retry) && uv_timer_get_due_in(&st.retry) <= due)
		return;
	uv_timer_start(&st.retry, retry_due, due, 0);
}

static void sink_backoff(struct st_sink *s)
{
	int shift = s->failures < 9 ? s->failures : 9;
	uint64_t delay = (uint64_t)carillon_cfg.streaming_retry_ms << shift;
	if (delay > ST_MAX_BACKOFF_MS)
		delay = ST_MAX_BACKOFF_MS;
	s->failures++;
	s->retry_at = uv_now(st.loop) + delay;
	schedule_retry(s->retry_at);
}

/* Whether the i-th answer record says it failed. */
static bool answer_failed(json_t *records, size_t i)
{
	json_t *rec = json_array_get(records, i);
	return !json_is_object(rec) || json_object_get(rec, "ErrorCode") != NULL ||
	       !json_is_string(json_object_get(rec, "SequenceNumber"));
}

static bool channel_in(const char *const *set, size_t n, const char *channel)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(set[i], channel))
			return true;
	return false;
}

/* Drops the acknowledged records of the call's `sent` head records and keeps the rest in order: a
 * failed record, and every later record of a channel that had one fail. Returns the failures. */
static size_t settle(struct st_sink *s, json_t *records)
{
	size_t sent = s->sent, kept = 0, failed = 0, n_bad = 0;
	const char **bad = carillon_xcalloc(sent ? sent : 1, sizeof(*bad));
	struct st_record **keep = carillon_xcalloc(sent ? sent : 1, sizeof(*keep));
	for (size_t i = 0; i < sent; i++) {
		struct st_record *r = s->q[i];
		bool f = records ? answer_failed(records, i) : true;
		bool after_failure = channel_in(bad, n_bad, r->channel);
		if (f)
			failed++;
		if (f && !after_failure)
			bad[n_bad++] = r->channel;
		if (f || after_failure)
			keep[kept++] = r;
		else
			record_free(r); /* acknowledged (bad[] only points into kept records) */
	}
	memcpy(s->q, keep, kept * sizeof(*keep));
	memmove(s->q + kept, s->q + sent, (s->qn - sent) * sizeof(*s->q));
	s->qn = s->qn - sent + kept;
	s->sent = 0;
	free(bad);
	free(keep);
	return failed;
}

/* The answer's Records, when it is a 200 with one entry per record sent; else NULL. */
static json_t *answer_records(const struct carillon_outbound_resp *resp, size_t sent, json_t **doc)
{
	*doc = NULL;
	if (resp->error != CARILLON_OUTBOUND_OK || resp->status != 200)
		return NULL;
	*doc = json_loadb(resp->body, resp->body_len, 0, NULL);
	json_t *records = *doc ? json_object_get(*doc, "Records") : NULL;
	return json_is_array(records) && json_array_size(records) == sent ? records : NULL;
}

static void log_call_failure(struct st_sink *s, const struct carillon_outbound_resp *resp)
{
	if (s->failures > 1 && s->failures % 10)
		return; /* the first failure of a run, then every tenth */
	if (resp->error != CARILLON_OUTBOUND_OK)
		log_warn("streaming: PutRecords to %s failed: %s (%s)", s->stream_name,
			 carillon_outbound_error_name(resp->error), resp->error_detail);
	else
		log_warn("streaming: PutRecords to %s answered %ld: %.300s", s->stream_name, resp->status,
			 resp->body ? resp->body : "");
}

static void put_done(void *arg, const struct carillon_outbound_resp *resp)
{
	struct st_op *op = arg;
	struct st_sink *s;
	bool current = op_end(op, &s);
	free(op);
	if (!current)
		return;
	json_t *doc;
	json_t *records = answer_records(resp, s->sent, &doc);
	size_t sent = s->sent;
	size_t failed = settle(s, records);
	json_decref(doc);
	if (!records) {
		sink_backoff(s);
		log_call_failure(s, resp);
	} else if (failed) {
		if (failed < sent)
			s->failures = 0; /* progress: throttled, not down; retry after the first wait */
		sink_backoff(s);
		if (s->failures == 1 || s->failures % 10 == 0)
			log_info("streaming: %zu of %zu records to %s not taken; retrying them", failed, sent,
				 s->stream_name);
	} else {
		s->failures = 0;
	}
	sink_save(s);
	sink_kick(s);
}

/* The PutRecords body for the queue's first records (at most the batch and ST_MAX_BODY bytes). */
static char *put_body(struct st_sink *s, size_t *count)
{
	json_t *records = json_array();
	size_t bytes = 0, n = 0;
	for (; n < s->qn && n < st.batch; n++) {
		struct st_record *r = s->q[n];
		size_t b64 = sodium_base64_ENCODED_LEN(r->data_len, sodium_base64_VARIANT_ORIGINAL);
		if (n && bytes + b64 + strlen(r->channel) + 64 > (size_t)ST_MAX_BODY)
			break;
		char *data = carillon_xmalloc(b64);
		sodium_bin2base64(data, b64, (const unsigned char *)r->data, r->data_len, sodium_base64_VARIANT_ORIGINAL);
		json_array_append_new(records, json_pack("{s:s, s:s}", "Data", data, "PartitionKey", r->channel));
		free(data);
		bytes += b64 + strlen(r->channel) + 64;
	}
	json_t *doc = json_pack("{s:s, s:o}", "StreamName", s->stream_name, "Records", records);
	char *body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	*count = n;
	return body;
}

static void sink_put(struct st_sink *s)
{
	size_t count;
	char *body = put_body(s, &count);
	if (!body || !count) {
		free(body);
		return;
	}
	size_t len = strlen(body);
	const char *headers[7] = {"Content-Type: application/x-amz-json-1.1", "X-Amz-Target: Kinesis_20131202.PutRecords",
				  "Expect:"};
	char *sig[4] = {0};
	int n_sig = carillon_sigv4_sign_env("POST", st.url, headers, 3, body, len, "kinesis", carillon_now_ms(), sig);
	if (n_sig < 0) {
		log_err("streaming: cannot sign a request to %s", st.url);
		free(body);
		sink_backoff(s);
		return;
	}
	for (int i = 0; i < n_sig; i++)
		headers[3 + i] = sig[i];
	struct carillon_outbound_req req = {.method = "POST", .url = st.url, .headers = headers,
					    .n_headers = 3 + (size_t)n_sig, .body = body, .body_len = len};
	struct st_op *op = op_new(s);
	s->sent = count;
	if (carillon_outbound_request(&req, put_done, op)) {
		s->sent = 0;
		s->pending--;
		free(op);
		sink_backoff(s); /* the outbound queue is full: later */
	}
	carillon_sigv4_free_lines(sig, n_sig);
	free(body);
}

/* ---------------------------------------------------------------------------------------------
 * Scheduling. */

static bool still_leader(void)
{
	if (st.leader && uv_now(st.loop) >= st.lease_until) {
		log_warn("streaming: the export lease was not renewed in time; this node stops exporting");
		st.leader = false;
		drop_all_sinks();
	}
	return st.leader;
}

/* Never drops or frees a sink (callers walk the list): a lapsed lease is acted on by still_leader(),
 * called from the timers and the wake-up before they walk it. */
static void sink_kick(struct st_sink *s)
{
	if (!st.running || s->dead || !st.leader || uv_now(st.loop) >= st.lease_until)
		return;
	if (wants_read(s))
		reads_wanted();
	if (!s->sent && s->qn && uv_now(st.loop) >= s->retry_at)
		sink_put(s);
}

static void kick_all(void)
{
	if (!still_leader())
		return;
	for (struct st_sink *s = st.sinks; s; s = s->next)
		sink_kick(s);
}

static void retry_due(uv_timer_t *t)
{
	uint64_t now = uv_now(st.loop), next = 0;
	kick_all();
	for (struct st_sink *s = st.sinks; s; s = s->next)
		if (s->qn && !s->sent && s->retry_at > now && (!next || s->retry_at < next))
			next = s->retry_at;
	if (next)
		schedule_retry(next);
}

/* The list of streams: new ones join, gone ones leave, and a sink whose stored cursor is ahead of
 * what this node has read (another node exported meanwhile) starts again from the store. */
static void sinks_loaded(void *arg, const struct carillon_db_result *r)
{
	st.loading = false;
	if (!st.running || !st.leader)
		return;
	if (!r->res) {
		log_warn("streaming: reading the streaming configurations: %s", r->message);
		return;
	}
	for (struct st_sink *s = st.sinks; s; s = s->next)
		s->seen = false;
	for (int i = 0; i < PQntuples(r->res); i++) {
		const char *app = PQgetvalue(r->res, i, 0), *stream = PQgetvalue(r->res, i, 1);
		int64_t position = strtoll(PQgetvalue(r->res, i, 2), NULL, 10);
		struct st_sink *s = sink_find(app, stream);
		if (!s) {
			s = carillon_xcalloc(1, sizeof(*s));
			s->app = carillon_xstrdup(app);
			s->stream_arn = carillon_xstrdup(stream);
			s->stream_name = stream_name_of(stream);
			s->next = st.sinks;
			st.sinks = s;
			sink_reset(s, position);
			log_info("streaming: exporting %s from log position %lld", stream, (long long)position);
		} else if (position > s->scanned) {
			sink_reset(s, position);
		}
		s->seen = true;
		s->need_read = true;
	}
	struct st_sink *s = st.sinks;
	while (s) {
		struct st_sink *next = s->next;
		if (!s->seen)
			sink_drop(s);
		else
			sink_save(s); /* the cursor follows the log read even when nothing was ours */
		s = next;
	}
	kick_all();
}

static void load_sinks(void)
{
	if (st.loading || !st.leader)
		return;
	st.loading = !carillon_db_query("select r_app, r_stream, r_position from carillon.streaming_sinks()", 0, NULL,
					sinks_loaded, NULL);
}

static void lease_done(void *arg, const struct carillon_db_result *r)
{
	uint64_t sent_at = (uint64_t)(uintptr_t)arg;
	st.claiming = false;
	if (!st.running)
		return;
	if (!r->res || PQntuples(r->res) != 1) {
		log_warn("streaming: renewing the export lease: %s", r->message ? r->message : "no answer");
		return; /* still_leader() lets it run out */
	}
	bool held = PQgetvalue(r->res, 0, 0)[0] == 't';
	if (held) {
		st.lease_until = sent_at + (uint64_t)carillon_cfg.streaming_lease_seconds * 1000;
		if (!st.leader) {
			log_notice("streaming: this node exports the streaming configurations (node %s)", st.node);
			st.leader = true;
			drop_all_sinks();
			load_sinks();
		}
	} else if (st.leader) {
		log_warn("streaming: another node holds the export lease; this node stops exporting");
		st.leader = false;
		drop_all_sinks();
	}
}

static void lease_tick(uv_timer_t *t)
{
	if (st.claiming || !carillon_db_ready())
		return;
	char secs[24];
	snprintf(secs, sizeof(secs), "%ld", carillon_cfg.streaming_lease_seconds);
	const char *params[2] = {st.node, secs};
	uintptr_t sent_at = (uintptr_t)uv_now(st.loop);
	st.claiming = !carillon_db_query("select carillon.streaming_lease_claim($1, $2::int)", 2, params, lease_done,
					 (void *)sent_at);
}

static void poll_tick(uv_timer_t *t)
{
	if (!still_leader())
		return;
	load_sinks(); /* which also reads every sink */
}

static void on_log_wake(int64_t position)
{
	if (!st.running || !still_leader())
		return;
	for (struct st_sink *s = st.sinks; s; s = s->next)
		if (position < 0 || s->scanned < position)
			s->need_read = true;
	kick_all();
}

/* ---------------------------------------------------------------------------------------------
 * Start and stop. */

void carillon_streaming_start(uv_loop_t *loop)
{
	memset(&st, 0, sizeof(st));
	st.loop = loop;
	st.running = true;
	carillon_uuid4(st.node);
	st.url = carillon_aws_endpoint_url(carillon_cfg.kinesis_url, "kinesis", carillon_cfg.region, "");
	st.batch = (size_t)carillon_cfg.streaming_batch;
	/* The answer lists every record; it must fit the outbound module's response bound. */
	size_t fit = (size_t)carillon_cfg.outbound_max_response_bytes / ST_RESPONSE_BYTES_PER_RECORD;
	if (fit < st.batch) {
		log_notice("streaming: %zu records per PutRecords call (CARILLON_STREAMING_BATCH %zu): the answer must fit "
			   "CARILLON_OUTBOUND_MAX_RESPONSE_BYTES",
			   fit ? fit : 1, st.batch);
		st.batch = fit ? fit : 1;
	}
	uint64_t lease_every = (uint64_t)carillon_cfg.streaming_lease_seconds * 1000 / 3;
	uv_timer_init(loop, &st.lease);
	uv_timer_start(&st.lease, lease_tick, 0, lease_every ? lease_every : 1);
	uv_timer_init(loop, &st.poll);
	uv_timer_start(&st.poll, poll_tick, (uint64_t)carillon_cfg.streaming_poll_ms,
		       (uint64_t)carillon_cfg.streaming_poll_ms);
	uv_timer_init(loop, &st.retry);
	uv_timer_init(loop, &st.reads);
	carillon_listener_subscribe(on_log_wake);
}

static void timer_closed(uv_handle_t *h) { (void)h; }

static void release_done(void *arg, const struct carillon_db_result *r) { (void)r; }

void carillon_streaming_stop(void)
{
	if (!st.running)
		return;
	st.running = false;
	if (st.leader) {
		/* Hand the lease on now rather than when it runs out (best effort: the pool is closing). */
		const char *params[1] = {st.node};
		carillon_db_query("select carillon.streaming_lease_release($1)", 1, params, release_done, NULL);
	}
	st.leader = false;
	drop_all_sinks();
	if (st.n_reads)
		log_info("streaming: %lu log reads for %lu stream reads", st.n_reads, st.n_sink_reads);
	uv_timer_stop(&st.lease);
	uv_timer_stop(&st.poll);
	uv_timer_stop(&st.retry);
	uv_timer_stop(&st.reads);
	uv_close((uv_handle_t *)&st.reads, timer_closed);
	uv_close((uv_handle_t *)&st.lease, timer_closed);
	uv_close((uv_handle_t *)&st.poll, timer_closed);
	uv_close((uv_handle_t *)&st.retry, timer_closed);
	free(st.url);
	st.url = NULL;
}
