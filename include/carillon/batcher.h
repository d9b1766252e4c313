/*
 * The write batcher of group commit, apart from the database: a bounded FIFO of encoded writes
 * that are cut into batches of at most `max_batch` whenever fewer than `max_in_flight` batches are
 * out. What a batch is sent to is the `submit` function (the api module's sends it to
 * carillon_api.invoke_batch_rows; the unit test records it); its results come back through
 * carillon_batcher_complete or carillon_batcher_complete_rows, which answer each item through
 * `item_done` in order.
 */
#ifndef CARILLON_BATCHER_H
#define CARILLON_BATCHER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct carillon_batch_item;

/* One batch: its items' owners in order and their documents. */
struct carillon_batch {
	size_t n;
	void **owners;
	char **docs;       /* item i's document, or NULL: made by the batcher's doc_of when asked for */
	char *json;        /* "[doc,doc,...]" once carillon_batch_json made it, else NULL */
	double sent_at;    /* carillon_metrics_clock() when submitted */
	struct carillon_batcher *batcher; /* the one it was cut from */
	int retries;       /* times the caller sent it again (a deadlock victim) */
	bool as_json;      /* the caller sends it as `json` (the database declined it in another form) */
};

/* The outcome of one item: `refused` (its batch could not be sent: the caller answers 503), `ok`
 * (borrowed; may be JSON null) or `ok_text` (the same as JSON text, borrowed: from
 * carillon_batcher_complete_rows) or an error `state` + `message`. None of them: the item has no
 * result (a malformed answer): an internal error. */
struct carillon_batch_outcome {
	bool refused;
	json_t *ok;
	const char *ok_text;
	const char *state;
	const char *message;
};

struct carillon_batcher {
	/* configuration */
	size_t max_batch, max_queue, max_in_flight;
	/* Send a batch; 0 when sent (carillon_batcher_complete follows, once), -1 when refused (every
	 * item is then answered with a `refused` outcome). */
	int (*submit)(void *ctx, struct carillon_batch *batch);
	void (*item_done)(void *ctx, void *owner, const struct carillon_batch_outcome *o);
	/* The document of an item queued without one (malloc'd), made only when its batch's JSON is
	 * asked for; NULL when it cannot be made. */
	char *(*doc_of)(void *ctx, void *owner);
	void *ctx;
	/* state */
	struct carillon_batch_item *head, *tail;
	size_t len, in_flight;
};

/* Queue one item (`doc` is copied); sends batches if a slot is free. -1 when the queue holds
 * max_queue items already (the caller answers 503 ServiceUnavailable). */
int carillon_batcher_enqueue(struct carillon_batcher *b, void *owner, const char *doc);
/* The same, taking `doc` (malloc'd) over instead of copying it; on -1 the caller still owns it.
 * NULL: the item has no document yet (the batcher's doc_of makes it if its batch goes as JSON). */
int carillon_batcher_enqueue_owned(struct carillon_batcher *b, void *owner, char *doc);
/* The batch as the JSON array of its items' documents (made once, kept in batch->json; documents
 * missing are made by doc_of first), or NULL when one cannot be made. */
const char *carillon_batch_json(struct carillon_batch *batch);

/* A submitted batch's results: `results` is the JSON array [{"ok":..}|{"error":{"state","message"}}]
 * in item order, or NULL with the batch's own error (`state`, `message`: every item gets it).
 * Sends the next batches first -- the writes queued meanwhile go to the database while the node
 * answers this batch's items --, then answers every item and frees the batch. */
void carillon_batcher_complete(struct carillon_batcher *b, struct carillon_batch *batch, const char *results,
			       const char *state, const char *message);

/* The same, with the results as rows (carillon_api.invoke_batch_rows): `row` fills item i's outcome
 * (ok_text, or state + message) from `rows`, for i < n_rows; items past n_rows have no result. */
typedef void (*carillon_batch_row_fn)(void *rows, size_t i, struct carillon_batch_outcome *o);
void carillon_batcher_complete_rows(struct carillon_batcher *b, struct carillon_batch *batch, size_t n_rows,
				    carillon_batch_row_fn row, void *rows);

#endif
