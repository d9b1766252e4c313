/*
 * Group commit's queue logic (see include/carillon/batcher.h). Under light load a batch holds one
 * write (no added latency); under load batches grow by themselves up to max_batch, which is what
 * turns one fdatasync per request into one per batch. The queue is bounded: past max_queue a write
 * is refused at once instead of waiting without limit.
 */
#include <stdlib.h>
#include <string.h>

#include "carillon/batcher.h"
#include "carillon/metrics.h"
#include "carillon/util.h"

struct carillon_batch_item {
	struct carillon_batch_item *next;
	void *owner;
	char *doc;
};

static void batch_free(struct carillon_batch *batch)
{
	for (size_t i = 0; i < batch->n; i++)
		free(batch->docs[i]);
	free(batch->docs);
	free(batch->owners);
	free(batch->json);
	free(batch);
}

/* Take up to max_batch items off the queue into one batch. */
static struct carillon_batch *batch_cut(struct carillon_batcher *b)
{
	struct carillon_batch *batch = carillon_xcalloc(1, sizeof(*batch));
	batch->batcher = b;
	size_t cap = b->len < b->max_batch ? b->len : b->max_batch;
	batch->owners = carillon_xcalloc(cap ? cap : 1, sizeof(void *));
	batch->docs = carillon_xcalloc(cap ? cap : 1, sizeof(char *));
	while (b->head && batch->n < cap) {
		struct carillon_batch_item *it = b->head;
		b->head = it->next;
		b->len--;
		batch->owners[batch->n] = it->owner;
		batch->docs[batch->n++] = it->doc;
		free(it);
	}
	if (!b->head)
		b->tail = NULL;
	return batch;
}

const char *carillon_batch_json(struct carillon_batch *batch)
{
	if (batch->json)
		return batch->json;
	struct carillon_batcher *b = batch->batcher;
	struct carillon_buf text = {0};
	carillon_buf_append(&text, "[", 1);
	for (size_t i = 0; i < batch->n; i++) {
		if (!batch->docs[i] && (!b->doc_of || !(batch->docs[i] = b->doc_of(b->ctx, batch->owners[i])))) {
			carillon_buf_free(&text);
			return NULL;
		}
		if (i)
			carillon_buf_append(&text, ",", 1);
		carillon_buf_append(&text, batch->docs[i], strlen(batch->docs[i]));
	}
	carillon_buf_append(&text, "]", 1);
	batch->json = text.data;
	return batch->json;
}

static void batcher_pump(struct carillon_batcher *b)
{
	while (b->head && b->in_flight < (b->max_in_flight ? b->max_in_flight : 1)) {
		struct carillon_batch *batch = batch_cut(b);
		b->in_flight++;
		batch->sent_at = carillon_metrics_clock();
		if (!b->submit(b->ctx, batch)) {
			carillon_metrics_batch_sent(batch->n);
			continue;
		}
		b->in_flight--;
		const struct carillon_batch_outcome refused = {.refused = true};
		for (size_t i = 0; i < batch->n; i++)
			b->item_done(b->ctx, batch->owners[i], &refused);
		batch_free(batch);
	}
}

int carillon_batcher_enqueue(struct carillon_batcher *b, void *owner, const char *doc)
{
	if (b->len >= b->max_queue)
		return -1;
	return carillon_batcher_enqueue_owned(b, owner, carillon_xstrdup(doc));
}

int carillon_batcher_enqueue_owned(struct carillon_batcher *b, void *owner, char *doc)
{
	if (b->len >= b->max_queue)
		return -1;
	struct carillon_batch_item *it = carillon_xcalloc(1, sizeof(*it));
	it->owner = owner;
	it->doc = doc;
	if (b->tail)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	b->len++;
	batcher_pump(b);
	return 0;
}

void carillon_batcher_complete(struct carillon_batcher *b, struct carillon_batch *batch, const char *results,
			       const char *state, const char *message)
{
	b->in_flight--;
	carillon_metrics_batch_done(carillon_metrics_clock() - batch->sent_at);
	batcher_pump(b);
	json_t *all = results ? json_loads(results, 0, NULL) : NULL;
	for (size_t i = 0; i < batch->n; i++) {
		struct carillon_batch_outcome o = {0};
		json_t *item = json_array_get(all, i);
		json_t *err = json_object_get(item, "error");
		if (!results) {
			o.state = state;
			o.message = message;
		} else if (err) {
			/* Either may be missing in a malformed answer: the receiver treats that as internal. */
			o.state = json_string_value(json_object_get(err, "state"));
			o.message = json_string_value(json_object_get(err, "message"));
			if (!o.state)
				o.state = "XX000";
			carillon_metrics_db_error(o.state); /* the item's subtransaction failed */
		} else {
			o.ok = json_object_get(item, "ok");
		}
		b->item_done(b->ctx, batch->owners[i], &o);
	}
	json_decref(all);
	batch_free(batch);
}

void carillon_batcher_complete_rows(struct carillon_batcher *b, struct carillon_batch *batch, size_t n_rows,
				    carillon_batch_row_fn row, void *rows)
{
	b->in_flight--;
	carillon_metrics_batch_done(carillon_metrics_clock() - batch->sent_at);
	batcher_pump(b);
	for (size_t i = 0; i < batch->n; i++) {
		struct carillon_batch_outcome o = {0};
		if (i < n_rows)
			row(rows, i, &o);
		if (!o.ok_text && i < n_rows) {
			if (!o.state)
				o.state = "XX000"; /* a row with neither: the receiver treats it as internal */
			carillon_metrics_db_error(o.state); /* the item's subtransaction failed */
		}
		b->item_done(b->ctx, batch->owners[i], &o);
	}
	batch_free(batch);
}
