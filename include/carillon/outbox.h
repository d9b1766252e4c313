/*
 * The transactional outbox: work that must reach another service (a push to APNs/FCM, a channel-flow
 * processor invocation) is written as a row of carillon.outbox in the same transaction as the write
 * that causes it, so a crash or restart after the commit still does it. Any node may deliver; a row
 * is claimed with a lease (SELECT ... FOR UPDATE SKIP LOCKED, then claimed_until = now() + lease), so
 * two nodes never both deliver one intent while the lease holds.
 *
 * This module runs on the event loop: it claims ready rows of the kinds registered here (woken by
 * NOTIFY carillon_outbox and by a timer), hands each to its kind's handler with bounded concurrency,
 * and records the outcome the handler reports: done (row deleted), retry (not_before moved by the
 * backoff or the given delay, attempts + 1), or drop (row deleted, reason logged). Rows older than
 * CARILLON_OUTBOX_MAX_AGE_SECONDS are dropped instead of delivered. Delivery is at least once: a
 * node that dies mid-delivery leaves the row to be claimed again when its lease ends, so handlers
 * give each intent a stable key (apns-id, FCM message key, CallbackId) derived from dedupe_key.
 *
 * Single-threaded: call everything from the loop's thread.
 */
#ifndef CARILLON_OUTBOX_H
#define CARILLON_OUTBOX_H

#include <stdint.h>

#include <jansson.h>
#include <uv.h>

enum carillon_outbox_result {
	CARILLON_OUTBOX_DONE = 0, /* delivered (or nothing left to do): delete the row */
	CARILLON_OUTBOX_RETRY,    /* transient failure: try again later */
	CARILLON_OUTBOX_DROP,     /* permanent failure: delete the row, log the reason */
};

struct carillon_outbox_item {
	int64_t id;
	const char *kind;        /* as registered */
	const char *dedupe_key;  /* unique per kind; stable across retries */
	json_t *payload;         /* borrowed: valid until carillon_outbox_complete() */
	int attempts;            /* deliveries tried before this one */
	int64_t created_ms;      /* when the row was committed (epoch ms) */
	void *internal_;
};

/* Called on the loop for each claimed row. Must call carillon_outbox_complete() exactly once, now
 * or later (after an outbound answer). */
typedef void (*carillon_outbox_handler)(struct carillon_outbox_item *item);

/* Register a kind before carillon_outbox_start(). max_in_flight bounds the items of this kind
 * handed out and not yet completed. Returns 0, or -1 for a duplicate kind or a full table. */
int carillon_outbox_register(const char *kind, carillon_outbox_handler handler, int max_in_flight);

/* Record the outcome. retry_after_ms > 0 (with RETRY) overrides the backoff (Retry-After); reason
 * is logged for DROP and for a RETRY, never stored with secrets. The item is invalid afterwards. */
void carillon_outbox_complete(struct carillon_outbox_item *item, enum carillon_outbox_result result,
			      long retry_after_ms, const char *reason);

/* Start claiming (after carillon_db_init and carillon_outbound_init). */
int carillon_outbox_start(uv_loop_t *loop);

/* Claim soon: called by the listener on NOTIFY carillon_outbox. */
void carillon_outbox_wake(void);

/* Stop claiming; items already handed out may still complete (their outcome is recorded if the
 * database is still up, else their lease simply ends). */
void carillon_outbox_stop(void);

#endif
