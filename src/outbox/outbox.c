/*
 * The outbox worker (include/carillon/outbox.h; the table and its functions: sql/migrations/
 * 072_outbox.sql, sql/api/outbox.sql).
 *
 * One claim query at a time (carillon.outbox_claim): for each registered kind with free delivery
 * slots, up to min(free, CARILLON_OUTBOX_BATCH) ready rows, leased to this node. A claim runs when
 * NOTIFY carillon_outbox arrives (carillon_outbox_wake, from the listener), when a kind's last
 * claim came back full and a slot frees up, and every CARILLON_OUTBOX_POLL_MS (retries falling due,
 * a lost notification). Outcomes are recorded in batches, one query at a time
 * (carillon.outbox_complete): under load, many completions share one round trip.
 *
 * A claim's rows are queued and handed to their handlers from a uv_idle handle, at most
 * HAND_OUT_PER_TURN and HAND_OUT_BUDGET_NS of work per loop turn, not all at once: each hand-out
 * prepares and starts a request, and a batch of hundreds in one callback held the loop away from the
 * HTTP and websocket connections for 10 ms and more.
 *
 * Memory is bounded by the kinds' max_in_flight (claimed items) plus the outcomes not yet written.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/outbox.h"
#include "carillon/util.h"

#define KINDS_MAX 8
#define KIND_LEN 32

struct kind {
	char name[KIND_LEN];
	carillon_outbox_handler handler;
	int max_in_flight;
	int in_flight;
	int claimed_limit;   /* what the running claim asked for (0: not in it) */
	bool more;           /* the last claim came back full: more rows may be ready */
};

struct outcome {
	int64_t id;
	const char *result;  /* "done" | "retry" | "drop" (static strings) */
	long delay_ms;
};

struct item {
	struct carillon_outbox_item pub;
	struct kind *kind;
	char *dedupe_key;
	json_t *payload;
	char *payload_text;   /* as claimed, until handed out */
	struct item *next;    /* the hand-out queue */
};

/* Rows handed to their handlers per loop turn: at most this many, and at most this much time (one
 * hand-out is some 50-100 us; 256 at a time held the loop for up to 11 ms a turn, and a 1 ms
 * budget gave about twice the REST p99 of 0.5 ms, docs/perf/push.md). */
#define HAND_OUT_PER_TURN 256
#define HAND_OUT_BUDGET_NS 500000u

static struct kind kinds[KINDS_MAX];
static int n_kinds;
static uv_loop_t *ob_loop;
static uv_timer_t poll_timer;
static uv_idle_t hand_idle;
static struct item *ready_head, *ready_tail; /* claimed, not yet handed out */
static bool running, claiming, claim_again, flushing;
static char node_id[96];

/* Outcomes waiting to be written; grows to the number of completions between two writes. */
static struct outcome *pending;
static size_t n_pending, cap_pending;
/* Written outcomes are not kept beyond this many (a database that stays down): their rows' leases
 * end and they are delivered again, which at-least-once allows. */
#define PENDING_MAX 100000

static void claim(void);
static void flush(void);

int carillon_outbox_register(const char *kind, carillon_outbox_handler handler, int max_in_flight)
{
	if (n_kinds >= KINDS_MAX || strlen(kind) >= KIND_LEN || max_in_flight < 1 || !handler)
		return -1;
	for (int i = 0; i < n_kinds; i++)
		if (!strcmp(kinds[i].name, kind))
			return -1;
	struct kind *k = &kinds[n_kinds++];
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", kind);
	k->handler = handler;
	k->max_in_flight = max_in_flight;
	return 0;
}

/* ------------------------------------------------------------------------------------ outcomes */

/* The backoff of attempt n (0-based): base * 2^n capped, then a random point in [d/2, d] so that
 * the retries of one burst do not come back together. */
static long backoff_ms(int attempts)
{
	long d = carillon_cfg.outbox_retry_base_ms;
	for (int i = 0; i < attempts && d < carillon_cfg.outbox_retry_max_ms; i++)
		d *= 2;
	if (d > carillon_cfg.outbox_retry_max_ms)
		d = carillon_cfg.outbox_retry_max_ms;
	long half = d / 2;
	return half + (half > 0 ? (long)randombytes_uniform((uint32_t)(half > 0x7fffffff ? 0x7fffffff : half) + 1) : 0);
}

static void pending_push(int64_t id, const char *result, long delay_ms)
{
	if (n_pending >= PENDING_MAX) {
		log_warn("outbox: %zu outcomes not yet written; the outcome of row %" PRId64 " is not recorded (its lease will end)",
			 n_pending, id);
		return;
	}
	if (n_pending == cap_pending) {
		cap_pending = cap_pending ? cap_pending * 2 : 64;
		pending = carillon_xrealloc(pending, cap_pending * sizeof(*pending));
	}
	pending[n_pending++] = (struct outcome){id, result, delay_ms};
}

static void pending_release_if_idle(void)
{
	if (!running && !n_pending && !flushing) {
		free(pending);
		pending = NULL;
		cap_pending = 0;
	}
}

static void completed(void *arg, const struct carillon_db_result *r)
{
	flushing = false;
	if (!r->res) {
		log_warn("outbox: recording outcomes failed: %s (their rows' leases will end)", r->message);
	} else {
		for (int i = 0; i < PQntuples(r->res); i++)
			if (!strcmp(PQgetvalue(r->res, i, 1), "exhausted"))
				log_warn("outbox: row %s dropped: CARILLON_OUTBOX_MAX_ATTEMPTS (%ld) attempts failed",
					 PQgetvalue(r->res, i, 0), carillon_cfg.outbox_max_attempts);
	}
	if (n_pending)
		flush();
	pending_release_if_idle();
}

/* "{a,b,c}" of the pending outcomes (numbers and plain words need no quoting). */
static void flush(void)
{
	if (flushing || !n_pending)
		return;
	struct carillon_buf ids = {0}, results = {0}, delays = {0};
	for (size_t i = 0; i < n_pending; i++) {
		const char *sep = i ? "," : "{";
		carillon_buf_appendf(&ids, "%s%" PRId64, sep, pending[i].id);
		carillon_buf_appendf(&results, "%s%s", sep, pending[i].result);
		carillon_buf_appendf(&delays, "%s%ld", sep, pending[i].delay_ms);
	}
	carillon_buf_appendf(&ids, "}");
	carillon_buf_appendf(&results, "}");
	carillon_buf_appendf(&delays, "}");
	char max_attempts[24];
	snprintf(max_attempts, sizeof(max_attempts), "%ld", carillon_cfg.outbox_max_attempts);
	const char *params[5] = {node_id, ids.data, results.data, delays.data, max_attempts};
	if (!carillon_db_query("select id, outcome from carillon.outbox_complete($1, $2::bigint[], $3::text[], "
			       "$4::bigint[], $5::int)",
			       5, params, completed, NULL)) {
		flushing = true;
		n_pending = 0;
	} else if (!running) {
		n_pending = 0; /* shutting down: the leases end instead */
	}                      /* else: the queue is full; the poll timer tries again */
	free(ids.data);
	free(results.data);
	free(delays.data);
	pending_release_if_idle();
}

void carillon_outbox_complete(struct carillon_outbox_item *pub, enum carillon_outbox_result result,
			      long retry_after_ms, const char *reason)
{
	struct item *it = pub->internal_;
	struct kind *k = it->kind;
	switch (result) {
	case CARILLON_OUTBOX_DONE:
		pending_push(pub->id, "done", 0);
		carillon_metrics_outbox(k->name, -1, -1, "delivered");
		break;
	case CARILLON_OUTBOX_RETRY: {
		long delay = retry_after_ms > 0 ? retry_after_ms : backoff_ms(pub->attempts);
		if (delay > carillon_cfg.outbox_retry_max_ms)
			delay = carillon_cfg.outbox_retry_max_ms;
		log_info("outbox: %s %s: attempt %d failed (%s); retry in %ld ms", k->name, it->dedupe_key,
			 pub->attempts + 1, reason ? reason : "transient", delay);
		pending_push(pub->id, "retry", delay);
		carillon_metrics_outbox(k->name, -1, -1, "retry");
		break;
	}
	case CARILLON_OUTBOX_DROP:
		log_warn("outbox: %s %s dropped: %s", k->name, it->dedupe_key, reason ? reason : "permanent failure");
		pending_push(pub->id, "drop", 0);
		carillon_metrics_outbox(k->name, -1, -1, "dropped");
		break;
	}
	k->in_flight--;
	json_decref(it->payload);
	free(it->dedupe_key);
	free(it);
	flush();
	if (k->more)
		carillon_outbox_wake();
}

/* ------------------------------------------------------------------------------------ claims */

static struct kind *kind_named(const char *name)
{
	for (int i = 0; i < n_kinds; i++)
		if (!strcmp(kinds[i].name, name))
			return &kinds[i];
	return NULL;
}

/* Queue a claimed row for hand-out (its payload text copied: the result is freed after the
 * callback), or log an expired one. */
static void take_row(PGresult *res, int row)
{
	struct kind *k = kind_named(PQgetvalue(res, row, 1));
	int64_t id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	if (!k) /* cannot happen: only registered kinds are claimed */
		return;
	if (!strcmp(PQgetvalue(res, row, 6), "t")) {
		log_warn("outbox: %s %s dropped: older than CARILLON_OUTBOX_MAX_AGE_SECONDS (%ld s) after %s attempt(s)",
			 k->name, PQgetvalue(res, row, 2), carillon_cfg.outbox_max_age_seconds, PQgetvalue(res, row, 4));
		carillon_metrics_outbox(k->name, -1, -1, "expired");
		return;
	}
	struct item *it = carillon_xcalloc(1, sizeof(*it));
	it->kind = k;
	it->dedupe_key = carillon_xstrdup(PQgetvalue(res, row, 2));
	it->payload_text = carillon_xstrdup(PQgetvalue(res, row, 3));
	it->pub = (struct carillon_outbox_item){
		.id = id,
		.kind = k->name,
		.dedupe_key = it->dedupe_key,
		.attempts = atoi(PQgetvalue(res, row, 4)),
		.created_ms = strtoll(PQgetvalue(res, row, 5), NULL, 10),
		.internal_ = it,
	};
	k->in_flight++;
	if (ready_tail)
		ready_tail->next = it;
	else
		ready_head = it;
	ready_tail = it;
}

static void hand_out(struct item *it)
{
	json_error_t err;
	json_t *payload = json_loads(it->payload_text, 0, &err);
	free(it->payload_text);
	it->payload_text = NULL;
	it->payload = payload ? payload : json_object();
	it->pub.payload = it->payload;
	if (!payload) {
		carillon_outbox_complete(&it->pub, CARILLON_OUTBOX_DROP, 0, "the payload is not JSON");
		return;
	}
	it->kind->handler(&it->pub);
}

/* One loop turn's share of the queued rows. */
static void hand_out_some(uv_idle_t *h)
{
	uint64_t t0 = uv_hrtime();
	for (int n = 0; n < HAND_OUT_PER_TURN && ready_head && uv_hrtime() - t0 < HAND_OUT_BUDGET_NS; n++) {
		struct item *it = ready_head;
		ready_head = it->next;
		if (!ready_head)
			ready_tail = NULL;
		it->next = NULL;
		hand_out(it);
	}
	if (!ready_head)
		uv_idle_stop(h);
}

static void claimed(void *arg, const struct carillon_db_result *r)
{
	if (!r->res) {
		log_warn("outbox: claiming failed: %s", r->message);
	} else {
		int n = PQntuples(r->res);
		int got[KINDS_MAX] = {0};
		for (int i = 0; i < n; i++) {
			struct kind *k = kind_named(PQgetvalue(r->res, i, 1));
			if (k)
				got[k - kinds]++;
		}
		for (int i = 0; i < n_kinds; i++)
			if (kinds[i].claimed_limit)
				kinds[i].more = got[i] >= kinds[i].claimed_limit;
		for (int i = 0; i < n; i++)
			take_row(r->res, i);
		if (ready_head)
			uv_idle_start(&hand_idle, hand_out_some);
	}
	for (int i = 0; i < n_kinds; i++)
		kinds[i].claimed_limit = 0;
	claiming = false;
	bool more = false;
	for (int i = 0; i < n_kinds; i++)
		more |= kinds[i].more && kinds[i].in_flight < kinds[i].max_in_flight;
	if (claim_again || more) {
		claim_again = false;
		claim();
	}
}

static void claim(void)
{
	if (!running || !carillon_db_ready())
		return;
	if (claiming) {
		claim_again = true;
		return;
	}
	struct carillon_buf names = {0}, limits = {0};
	int asked = 0;
	for (int i = 0; i < n_kinds; i++) {
		struct kind *k = &kinds[i];
		long free_slots = k->max_in_flight - k->in_flight;
		if (free_slots <= 0)
			continue;
		k->claimed_limit = (int)(free_slots < carillon_cfg.outbox_batch ? free_slots : carillon_cfg.outbox_batch);
		carillon_buf_appendf(&names, "%s\"%s\"", asked ? "," : "{", k->name);
		carillon_buf_appendf(&limits, "%s%d", asked ? "," : "{", k->claimed_limit);
		asked++;
	}
	if (asked) {
		carillon_buf_appendf(&names, "}");
		carillon_buf_appendf(&limits, "}");
		char lease[24], max_age[24];
		snprintf(lease, sizeof(lease), "%ld", carillon_cfg.outbox_lease_seconds);
		snprintf(max_age, sizeof(max_age), "%ld", carillon_cfg.outbox_max_age_seconds);
		const char *params[5] = {node_id, names.data, limits.data, lease, max_age};
		claiming = !carillon_db_query("select id, kind, dedupe_key, payload, attempts, created_ms, expired "
					      "from carillon.outbox_claim($1, $2::text[], $3::int[], $4::int, $5::int)",
					      5, params, claimed, NULL);
		if (!claiming)
			for (int i = 0; i < n_kinds; i++)
				kinds[i].claimed_limit = 0;
	}
	free(names.data);
	free(limits.data);
}

void carillon_outbox_wake(void)
{
	claim();
}

static void on_poll(uv_timer_t *t)
{
	(void)t;
	flush();
	claim();
}

int carillon_outbox_start(uv_loop_t *loop)
{
	char host[64] = "";
	gethostname(host, sizeof(host) - 1);
	/* Unique per process (a restarted node is a new claimant: its predecessor's claims run out). */
	snprintf(node_id, sizeof(node_id), "%s:%ld:%08" PRIx32, host, (long)getpid(), randombytes_random());
	if (carillon_cfg.outbox_lease_seconds * 1000 <= carillon_cfg.outbound_timeout_ms)
		log_warn("CARILLON_OUTBOX_LEASE_SECONDS (%ld s) is not above CARILLON_OUTBOUND_TIMEOUT_MS (%ld ms): a delivery "
			 "still waiting when its lease ends may be made again by another node",
			 carillon_cfg.outbox_lease_seconds, carillon_cfg.outbound_timeout_ms);
	ob_loop = loop;
	running = true;
	uv_timer_init(ob_loop, &poll_timer);
	uv_idle_init(ob_loop, &hand_idle);
	uint64_t poll = (uint64_t)carillon_cfg.outbox_poll_ms;
	uv_timer_start(&poll_timer, on_poll, poll, poll);
	log_info("outbox: node %s delivering %d kind(s)", node_id, n_kinds);
	return 0;
}

static void poll_closed(uv_handle_t *h) { (void)h; }

void carillon_outbox_stop(void)
{
	if (!running)
		return;
	running = false;
	uv_timer_stop(&poll_timer);
	uv_close((uv_handle_t *)&poll_timer, poll_closed);
	uv_idle_stop(&hand_idle);
	uv_close((uv_handle_t *)&hand_idle, poll_closed);
	/* Claimed, never handed out: their leases end and they are delivered again later. */
	while (ready_head) {
		struct item *it = ready_head;
		ready_head = it->next;
		it->kind->in_flight--;
		free(it->payload_text);
		free(it->dedupe_key);
		free(it);
	}
	ready_tail = NULL;
	flush();
	/* Kinds stay registered: a restart of the module (tests) registers nothing again. */
	pending_release_if_idle();
}
