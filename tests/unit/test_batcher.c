/*
 * The write batcher's queue logic, driven with a submit function that records the batches it is
 * given (no database: what is under test is how writes are queued, cut into batches, bounded and
 * answered).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/batcher.h"

#define MAX_SEEN 64

struct recorder {
	int refuse;                               /* submit refuses the next n batches */
	int no_json;                              /* submit does not ask for the batch's JSON */
	int docs_made;                            /* calls of rec_doc_of */
	int doc_fails;                            /* rec_doc_of fails */
	struct carillon_batch *sent[MAX_SEEN];    /* batches submitted, not yet completed */
	int n_sent;
	/* answers, in order */
	int owner[MAX_SEEN];
	char what[MAX_SEEN][64];
	int sent_when_done[MAX_SEEN];             /* batches submitted when the answer was given */
	int n_done;
};

static int rec_submit(void *ctx, struct carillon_batch *batch)
{
	struct recorder *rec = ctx;
	if (rec->refuse) {
		rec->refuse--;
		return -1;
	}
	if (!rec->no_json)
		carillon_batch_json(batch);
	rec->sent[rec->n_sent++] = batch;
	return 0;
}

/* The document of an item queued without one: {"m":owner}. */
static char *rec_doc_of(void *ctx, void *owner)
{
	struct recorder *rec = ctx;
	rec->docs_made++;
	if (rec->doc_fails)
		return NULL;
	char doc[32];
	snprintf(doc, sizeof(doc), "{\"m\":%d}", (int)(intptr_t)owner);
	return strdup(doc);
}

static void rec_done(void *ctx, void *owner, const struct carillon_batch_outcome *o)
{
	struct recorder *rec = ctx;
	int i = rec->n_done++;
	rec->owner[i] = (int)(intptr_t)owner;
	rec->sent_when_done[i] = rec->n_sent;
	if (o->refused)
		snprintf(rec->what[i], sizeof(rec->what[i]), "refused");
	else if (o->ok_text)
		snprintf(rec->what[i], sizeof(rec->what[i]), "text %s", o->ok_text);
	else if (o->ok)
		snprintf(rec->what[i], sizeof(rec->what[i]), "ok %lld", (long long)json_integer_value(json_object_get(o->ok, "v")));
	else if (o->state)
		snprintf(rec->what[i], sizeof(rec->what[i]), "error %s %s", o->state, o->message ? o->message : "-");
	else
		snprintf(rec->what[i], sizeof(rec->what[i]), "none");
}

static struct carillon_batcher make(struct recorder *rec, size_t max_batch, size_t max_queue, size_t in_flight)
{
	memset(rec, 0, sizeof(*rec));
	return (struct carillon_batcher){.max_batch = max_batch, .max_queue = max_queue, .max_in_flight = in_flight,
					 .submit = rec_submit, .item_done = rec_done, .doc_of = rec_doc_of, .ctx = rec};
}

static void enqueue(struct carillon_batcher *b, int owner)
{
	char doc[32];
	snprintf(doc, sizeof(doc), "{\"n\":%d}", owner);
	assert_int_equal(carillon_batcher_enqueue(b, (void *)(intptr_t)owner, doc), 0);
}

/* Light load: a write goes out alone at once; while the slot is busy, writes queue and then leave
 * together in one batch, in order, as a JSON array of their documents. */
static void test_batches_grow_under_load(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	enqueue(&b, 1);
	assert_int_equal(rec.n_sent, 1);
	assert_string_equal(rec.sent[0]->json, "[{\"n\":1}]");
	for (int i = 2; i <= 5; i++)
		enqueue(&b, i);
	assert_int_equal(rec.n_sent, 1); /* the one slot is busy */
	assert_int_equal(b.len, 4);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{\"v\":1}}]", NULL, NULL);
	assert_int_equal(rec.n_done, 1);
	assert_string_equal(rec.what[0], "ok 1");
	assert_int_equal(rec.n_sent, 2); /* the queued four left together */
	assert_string_equal(rec.sent[1]->json, "[{\"n\":2},{\"n\":3},{\"n\":4},{\"n\":5}]");
	assert_int_equal(rec.sent[1]->n, 4);
	assert_int_equal(b.len, 0);
	assert_null(b.head);
	assert_null(b.tail);
	carillon_batcher_complete(&b, rec.sent[1], "[{\"ok\":{\"v\":2}},{\"ok\":{\"v\":3}},{\"ok\":null},{\"ok\":{\"v\":5}}]",
				  NULL, NULL);
	assert_int_equal(rec.n_done, 5);
	for (int i = 1; i < 5; i++)
		assert_int_equal(rec.owner[i], i + 1);
	assert_string_equal(rec.what[3], "ok 0"); /* JSON null is an answer (no body), not a failure */
	assert_int_equal(b.in_flight, 0);
}

/* No batch exceeds max_batch; the rest waits for the next free slot. */
static void test_batch_size_bound(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 3, 1000, 1);
	enqueue(&b, 0);
	for (int i = 1; i <= 7; i++)
		enqueue(&b, i);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.sent[1]->n, 3);
	carillon_batcher_complete(&b, rec.sent[1], "[{\"ok\":{}},{\"ok\":{}},{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.sent[2]->n, 3);
	carillon_batcher_complete(&b, rec.sent[2], "[{\"ok\":{}},{\"ok\":{}},{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.sent[3]->n, 1);
	assert_string_equal(rec.sent[3]->json, "[{\"n\":7}]");
	carillon_batcher_complete(&b, rec.sent[3], "[{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.n_done, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(rec.owner[i], i);
}

/* Several slots: batches go out in parallel up to max_in_flight. */
static void test_in_flight_bound(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 2, 1000, 2);
	for (int i = 0; i < 5; i++)
		enqueue(&b, i);
	assert_int_equal(rec.n_sent, 2);
	assert_int_equal(b.in_flight, 2);
	assert_int_equal(b.len, 3);
	carillon_batcher_complete(&b, rec.sent[1], "[{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.n_sent, 3);
	assert_int_equal(rec.sent[2]->n, 2);
	assert_int_equal(b.len, 1);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{}}]", NULL, NULL);
	carillon_batcher_complete(&b, rec.sent[2], "[{\"ok\":{}},{\"ok\":{}}]", NULL, NULL);
	carillon_batcher_complete(&b, rec.sent[3], "[{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.n_done, 5);
	assert_int_equal(b.in_flight, 0);
}

/* The queue is bounded: past max_queue a write is refused at once (the caller answers 503) and
 * nothing is queued for it; once the queue drains, writes are accepted again. */
static void test_queue_bound(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 3, 1);
	enqueue(&b, 0); /* sent at once: not queued */
	for (int i = 1; i <= 3; i++)
		enqueue(&b, i);
	assert_int_equal(b.len, 3);
	assert_int_equal(carillon_batcher_enqueue(&b, (void *)(intptr_t)99, "{}"), -1);
	assert_int_equal(b.len, 3);
	assert_int_equal(rec.n_done, 0);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(b.len, 0);
	enqueue(&b, 4);
	assert_int_equal(b.len, 1);
	carillon_batcher_complete(&b, rec.sent[1], "[{\"ok\":{}},{\"ok\":{}},{\"ok\":{}}]", NULL, NULL);
	carillon_batcher_complete(&b, rec.sent[2], "[{\"ok\":{}}]", NULL, NULL);
	assert_int_equal(rec.n_done, 5);
	for (int i = 0; i < rec.n_done; i++)
		assert_int_not_equal(rec.owner[i], 99);
}

/* One item of a batch fails: only that item gets its error, the others their results, in order;
 * an item the answer leaves out is an internal error, not someone else's result. */
static void test_one_item_fails(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	enqueue(&b, 0);
	for (int i = 1; i <= 4; i++)
		enqueue(&b, i);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{\"v\":0}}]", NULL, NULL);
	carillon_batcher_complete(&b, rec.sent[1],
				  "[{\"ok\":{\"v\":1}},{\"error\":{\"state\":\"CH404\",\"message\":\"no channel\"}},"
				  "{\"ok\":{\"v\":3}}]",
				  NULL, NULL);
	assert_int_equal(rec.n_done, 5);
	assert_string_equal(rec.what[1], "ok 1");
	assert_string_equal(rec.what[2], "error CH404 no channel");
	assert_string_equal(rec.what[3], "ok 3");
	assert_string_equal(rec.what[4], "none");
	assert_int_equal(rec.owner[4], 4);
}

/* The whole batch fails (the transaction, the connection): every item gets that error. */
static void test_whole_batch_fails(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	enqueue(&b, 0);
	enqueue(&b, 1);
	enqueue(&b, 2);
	carillon_batcher_complete(&b, rec.sent[0], NULL, "08006", "connection lost");
	carillon_batcher_complete(&b, rec.sent[1], NULL, "40P01", "deadlock detected");
	assert_int_equal(rec.n_done, 3);
	assert_string_equal(rec.what[0], "error 08006 connection lost");
	assert_string_equal(rec.what[1], "error 40P01 deadlock detected");
	assert_string_equal(rec.what[2], "error 40P01 deadlock detected");
}

/* A batch the database cannot take (its own queue full) is answered `refused` item by item, and
 * its slot is free again for the next write. */
static void test_submit_refused(void **state)
{
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	rec.refuse = 1;
	enqueue(&b, 7);
	assert_int_equal(rec.n_done, 1);
	assert_string_equal(rec.what[0], "refused");
	assert_int_equal(b.in_flight, 0);
	enqueue(&b, 8);
	assert_int_equal(rec.n_sent, 1);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{\"v\":8}}]", NULL, NULL);
	assert_string_equal(rec.what[1], "ok 8");
}

/* Rows as invoke_batch_rows returns them: [ok text, state, message]; NULL = SQL NULL. */
static const char *rows3[][3] = {
    {"{\"v\": 1}", NULL, NULL},
    {NULL, "CH404", "no such channel"},
    {NULL, NULL, NULL},   /* neither: internal */
    {"null", NULL, NULL},
};

static void row_of(void *rows, size_t i, struct carillon_batch_outcome *o)
{
	const char *(*r)[3] = rows;
	if (r[i][0]) {
		o->ok_text = r[i][0];
		return;
	}
	o->state = r[i][1];
	o->message = r[i][2];
}

/* Rows answer their items in order, ok text passed as it is; an item without a row has no result. */
static void test_complete_rows(void **state)
{
	(void)state;
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	enqueue(&b, 1); /* goes out alone */
	for (int i = 2; i <= 6; i++)
		enqueue(&b, i);
	carillon_batcher_complete_rows(&b, rec.sent[0], 1, row_of, rows3);
	assert_int_equal(rec.n_done, 1);
	assert_string_equal(rec.what[0], "text {\"v\": 1}");
	assert_int_equal(rec.n_sent, 2); /* the queued five left together */
	carillon_batcher_complete_rows(&b, rec.sent[1], 4, row_of, rows3);
	assert_int_equal(rec.n_done, 6);
	const char *want[] = {"text {\"v\": 1}", "error CH404 no such channel", "error XX000 -", "text null", "none"};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(rec.owner[1 + i], 2 + i);
		assert_string_equal(rec.what[1 + i], want[i]);
	}
	assert_int_equal(b.in_flight, 0);
}

/* A completed batch hands its lane the next one before its own items are answered: the database
 * starts on the writes that queued meanwhile while the node writes the responses. Both ways of
 * completing. */
static void test_next_batch_before_answers(void **state)
{
	(void)state;
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	enqueue(&b, 1); /* goes out alone */
	for (int i = 2; i <= 4; i++)
		enqueue(&b, i);
	assert_int_equal(rec.n_sent, 1);
	carillon_batcher_complete_rows(&b, rec.sent[0], 1, row_of, rows3);
	assert_int_equal(rec.n_done, 1);
	assert_int_equal(rec.sent_when_done[0], 2); /* 2..4 had left when 1 was answered */
	enqueue(&b, 5);
	carillon_batcher_complete(&b, rec.sent[1], "[{\"ok\": {\"v\": 2}}, {\"ok\": {\"v\": 3}}, {\"ok\": {\"v\": 4}}]",
				  NULL, NULL);
	assert_int_equal(rec.n_done, 4);
	for (int i = 1; i < 4; i++)
		assert_int_equal(rec.sent_when_done[i], 3); /* 5 had left when 2..4 were answered */
	assert_string_equal(rec.what[3], "ok 4");
	assert_int_equal(b.in_flight, 1);
	carillon_batcher_complete_rows(&b, rec.sent[2], 1, row_of, rows3); /* 5's batch, the last */
	assert_int_equal(rec.n_done, 5);
	assert_int_equal(b.in_flight, 0);
}

/* Items queued without a document get one from doc_of only when their batch's JSON is asked for,
 * once; a batch never asked for it never makes them (and frees what it holds). */
static void test_docs_made_when_asked(void **state)
{
	(void)state;
	struct recorder rec;
	struct carillon_batcher b = make(&rec, 50, 1000, 1);
	rec.no_json = 1;
	assert_int_equal(carillon_batcher_enqueue_owned(&b, (void *)(intptr_t)1, NULL), 0);
	for (int i = 2; i <= 4; i++)
		assert_int_equal(carillon_batcher_enqueue_owned(&b, (void *)(intptr_t)i, NULL), 0);
	enqueue(&b, 5); /* one with its document */
	assert_int_equal(rec.n_sent, 1);
	assert_null(rec.sent[0]->json);
	carillon_batcher_complete(&b, rec.sent[0], "[{\"ok\":{\"v\":1}}]", NULL, NULL);
	assert_int_equal(rec.n_sent, 2);
	assert_int_equal(rec.docs_made, 0); /* neither batch asked */
	const char *json = carillon_batch_json(rec.sent[1]);
	assert_string_equal(json, "[{\"m\":2},{\"m\":3},{\"m\":4},{\"n\":5}]");
	assert_int_equal(rec.docs_made, 3);
	assert_ptr_equal(carillon_batch_json(rec.sent[1]), json); /* made once */
	assert_int_equal(rec.docs_made, 3);
	carillon_batcher_complete(&b, rec.sent[1], NULL, "XX000", "gone");
	assert_int_equal(rec.n_done, 5);
	/* a document that cannot be made: no JSON */
	rec.doc_fails = 1;
	assert_int_equal(carillon_batcher_enqueue_owned(&b, (void *)(intptr_t)6, NULL), 0);
	assert_null(carillon_batch_json(rec.sent[2]));
	carillon_batcher_complete(&b, rec.sent[2], NULL, "XX000", "gone");
	assert_int_equal(rec.n_done, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batches_grow_under_load), cmocka_unit_test(test_batch_size_bound),
		cmocka_unit_test(test_in_flight_bound),         cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_one_item_fails),          cmocka_unit_test(test_whole_batch_fails),
		cmocka_unit_test(test_submit_refused),          cmocka_unit_test(test_complete_rows),
		cmocka_unit_test(test_next_batch_before_answers),
		cmocka_unit_test(test_docs_made_when_asked),
	};
	return cmocka_run_group_tests_name("batcher", tests, NULL, NULL);
}
