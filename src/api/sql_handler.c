/*
 * The generic operation handler: one round trip to PostgreSQL.
 *
 * A READ row of the operation table calls its function directly (carillon_api.<fn>, wrapped in
 * carillon.check_token). A WRITE row goes through group commit: it is queued in the write batcher
 * of its channel's write lane (batcher.c; a hash of the input's ChannelArn picks one of
 * CARILLON_WRITE_LANES, so one channel's writes stay in order while other channels' commit at once)
 * and whenever the lane has a batch slot free (CARILLON_WRITE_IN_FLIGHT, default 1: the next batch
 * collects while one commits), everything queued (up to CARILLON_WRITE_BATCH_MAX)
 * is sent as one carillon_api.invoke_batch_rows() call: one transaction, each request in its own
 * subtransaction (carillon.run_op: idempotency, then the function), one event-lock acquisition and
 * one NOTIFY for all of them, each request answered after the commit from its row. A batch of more
 * than eight plain persistent sends goes as typed columns instead (send_batch.c,
 * carillon_api.send_messages), and item by item only if the database declines it. An ok row's
 * output is JSON text; where the operation's output needs no rewriting it is the response body as
 * it is, never decoded and encoded again. The queue holds at most
 * CARILLON_WRITE_QUEUE_MAX writes; beyond, ServiceUnavailableException.
 *
 * Pagination cursors are sealed into NextTokens bound to the listing, so a client can neither forge
 * one nor replay it against another listing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/batcher.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/util.h"
#include "send_batch.h"

#define NEXT_TOKEN_PURPOSE "carillon next token v1"

/* The input member carrying the paging token: NextToken (Chime), Token (Pinpoint). */
static const char *page_token_member(const struct carillon_req *r)
{
	const char *m = carillon_req_op(r)->page_token_member;
	return m ? m : "NextToken";
}

/* The listing a NextToken belongs to: the operation and every input member but the paging ones.
 * -1 when jansson cannot copy or encode the input (out of memory). */
static int listing_scope(const struct carillon_req *r, char out[33])
{
	json_t *copy = json_deep_copy(carillon_req_input(r));
	json_object_del(copy, page_token_member(r));
	json_object_del(copy, "MaxResults");
	json_object_del(copy, "PageSize");
	char *text = copy ? json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(copy);
	if (!text)
		return -1;
	unsigned char h[16];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	const char *op = carillon_req_op(r)->name;
	crypto_generichash_update(&st, (const unsigned char *)op, strlen(op) + 1);
	crypto_generichash_update(&st, (const unsigned char *)text, strlen(text));
	crypto_generichash_final(&st, h, sizeof(h));
	free(text);
	sodium_bin2hex(out, 33, h, sizeof(h));
	return 0;
}

/* NextToken -> the claims of the token (owned; NULL when there is no token), whose "c" member is the
 * cursor; -1 when it is not one of ours for this listing. */
static int open_next_token(struct carillon_req *r, json_t **claims_out)
{
	*claims_out = NULL;
	const char *token = json_string_value(json_object_get(carillon_req_input(r), page_token_member(r)));
	if (!token)
		return 0;
	size_t len;
	char *text = carillon_open(NEXT_TOKEN_PURPOSE, token, &len);
	json_t *claims = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	char scope[33];
	const char *s = json_string_value(json_object_get(claims, "s"));
	if (s && json_object_get(claims, "c") && !listing_scope(r, scope) && !strcmp(s, scope)) {
		*claims_out = claims;
		return 0;
	}
	json_decref(claims);
	return -1;
}

/* -1 when the token cannot be built (jansson out of memory). */
static int seal_next_token(struct carillon_req *r, json_t *body)
{
	json_t *next = json_object_get(body, "__next");
	if (!next)
		return 0;
	char scope[33];
	json_t *claims = listing_scope(r, scope) ? NULL : json_pack("{s:s,s:O}", "s", scope, "c", next);
	char *text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
	json_decref(claims);
	if (!text)
		return -1;
	char *token = carillon_seal(NEXT_TOKEN_PURPOSE, text, strlen(text));
	free(text);
	json_object_del(body, "__next");
	/* With the payload trait the token is a member of the payload (Pinpoint's Item/NextToken). */
	const char *payload = carillon_req_op(r)->output_payload;
	json_t *dest = payload ? json_object_get(body, payload) : body;
	int rc = json_object_set_new(dest, "NextToken", json_string(token));
	free(token);
	return rc;
}

#define APPEND_LIT(b, lit) carillon_buf_append((b), (lit), sizeof(lit) - 1)

static int append_cb(const char *text, size_t size, void *data)
{
	carillon_buf_append(data, text, size);
	return 0;
}

/* A JSON value appended as compact text; -1 when jansson cannot encode it. */
int carillon_api_append_json(struct carillon_buf *b, const json_t *v)
{
	return json_dump_callback(v, append_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The caller as the database knows it (the context's "principal"; send_batch.c passes it as a column). */
void carillon_api_principal_name(const struct carillon_principal *p, char *out, size_t size)
{
	if (p->kind == CARILLON_PRINCIPAL_ADMIN)
		snprintf(out, size, "admin:%s", p->access_key_id);
	else
		snprintf(out, size, "%s", p->kind == CARILLON_PRINCIPAL_ROOT ? "root" : "user");
}

/* The request context, written as JSON text (no document built to be encoded again): who calls,
 * when, the request id, where the node answers; the idempotency token of an IDEMPOTENT operation;
 * `after`, a listing's cursor, when given. A context missing a member would change who the database
 * thinks is calling: any member that cannot be written (text that is not UTF-8) fails the request
 * instead (-1). */
static int append_ctx(struct carillon_buf *b, struct carillon_req *r, const json_t *after)
{
	const struct carillon_principal *p = carillon_req_principal(r);
	char principal[160];
	carillon_api_principal_name(p, principal, sizeof(principal));
	int failed = 0;
	carillon_buf_appendf(b, "{\"now_ms\":%lld,\"region\":", (long long)carillon_req_time_ms(r));
	failed |= carillon_json_string(b, carillon_cfg.region);
	APPEND_LIT(b, ",\"account\":");
	failed |= carillon_json_string(b, carillon_cfg.account_id);
	APPEND_LIT(b, ",\"principal\":");
	failed |= carillon_json_string(b, principal);
	APPEND_LIT(b, ",\"request_id\":");
	failed |= carillon_json_string(b, carillon_req_id(r));
	if (p->kind == CARILLON_PRINCIPAL_USER) {
		APPEND_LIT(b, ",\"user_arn\":");
		failed |= carillon_json_string(b, p->user_arn);
		carillon_buf_appendf(b, ",\"user_gen\":%lld", (long long)p->user_gen);
	}
	APPEND_LIT(b, ",\"public_endpoint\":");
	failed |= carillon_json_string(b, *carillon_cfg.public_endpoint ? carillon_cfg.public_endpoint : carillon_cfg.listen);
	/* The table's IDEMPOTENT trait; the member's name is the model's (the table check keeps the two
	 * in agreement). */
	const char *idem = carillon_req_op_def(r)->flags & CARILLON_OP_IDEMPOTENT ? carillon_req_op(r)->idempotency_member : NULL;
	json_t *token = idem ? json_object_get(carillon_req_input(r), idem) : NULL;
	if (token) {
		APPEND_LIT(b, ",\"idempotency_member\":");
		failed |= carillon_json_string(b, idem);
		APPEND_LIT(b, ",\"idempotency_token\":");
		failed |= carillon_api_append_json(b, token);
	}
	if (after) {
		APPEND_LIT(b, ",\"after\":");
		failed |= carillon_api_append_json(b, after);
	}
	APPEND_LIT(b, "}");
	return failed ? -1 : 0;
}

/* Answer with an operation's output document (stolen; NULL or JSON null: no body). */
static void reply_output(struct carillon_req *r, json_t *body)
{
	if (json_is_object(body) && seal_next_token(r, body)) {
		json_decref(body);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the NextToken could not be built");
		return;
	}
	const struct carillon_op *op = carillon_req_op(r);
	if (!op->has_output || json_is_null(body)) {
		json_decref(body);
		body = NULL;
	}
	body = carillon_model_output_body(op, body);
	carillon_reply_json(r, op->response_code, body);
}

/* An operation's output document as JSON text (borrowed). Sent as it is unless something in it must
 * be rewritten: a NextToken to seal (a paginated operation; writes never page, "__next" is checked
 * all the same) or a payload member that is the whole body. */
static void reply_output_text(struct carillon_req *r, const char *text)
{
	const struct carillon_op *op = carillon_req_op(r);
	if (!op->has_output || !strcmp(text, "null")) {
		carillon_reply_json(r, op->response_code, NULL);
		return;
	}
	if (!op->paginated && !op->output_payload && !strstr(text, "\"__next\"")) {
		carillon_reply_json_text(r, op->response_code, text, strlen(text));
		return;
	}
	json_error_t jerr;
	json_t *body = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!body) {
		log_err("%s: unparsable result from %s: %s", carillon_req_id(r), carillon_req_op_def(r)->sql_function,
			jerr.text);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error");
		return;
	}
	reply_output(r, body);
}

static void sql_done(void *arg, const struct carillon_db_result *res)
{
	struct carillon_req *r = arg;
	if (!res->res) {
		carillon_api_reply_db_error(r, res->sqlstate, res->message);
		return;
	}
	if (PQntuples(res->res) == 1 && !PQgetisnull(res->res, 0, 0))
		reply_output_text(r, PQgetvalue(res->res, 0, 0));
	else
		reply_output(r, NULL);
}

/* The write batchers, one per write lane, sending their batches to carillon_api.invoke_batch_rows
 * on their lane's connection (carillon_db_query_lane). */
static struct carillon_batcher batchers[CARILLON_DB_LANES_MAX];
#define BATCH_SQL "select * from carillon_api.invoke_batch_rows($1::jsonb)"
/* ok, state, message; then the item's event, if its answer carries one (BATCH_EVENTS_FIRST on). */
#define BATCH_EVENTS_FIRST 3
static void (*batch_events)(const PGresult *res, int first);

void carillon_api_on_batch_events(void (*fn)(const struct pg_result *res, int first)) { batch_events = fn; }
/* A batch chosen as a deadlock's victim (two lanes' transactions waiting for each other's rows:
 * the item path locks rows in the order its operations need them) is sent again, this many times. */
#define BATCH_DEADLOCK_RETRIES 3
/* invoke_batch_rows hands a batch of up to this many items to carillon.send_few, which checks and
 * writes a small batch faster an item at a time; a larger batch of plain sends goes as columns. */
#define SEND_FEW_MAX 8

/* Row i of invoke_batch_rows: ok (output JSON text), or state + message. */
static void batch_row(void *rows, size_t i, struct carillon_batch_outcome *o)
{
	PGresult *res = rows;
	if (!PQgetisnull(res, (int)i, 0)) {
		o->ok_text = PQgetvalue(res, (int)i, 0);
		return;
	}
	o->state = PQgetisnull(res, (int)i, 1) ? NULL : PQgetvalue(res, (int)i, 1);
	o->message = PQgetisnull(res, (int)i, 2) ? NULL : PQgetvalue(res, (int)i, 2);
}

static int batch_send(struct carillon_batch *batch);

/* A batch that failed: sent again when it was a deadlock's victim, else every item answered with
 * the error. */
static void batch_failed(struct carillon_batch *batch, const struct carillon_db_result *res)
{
	if (res->sqlstate && !strcmp(res->sqlstate, "40P01") && batch->retries < BATCH_DEADLOCK_RETRIES) {
		batch->retries++;
		if (!batch_send(batch))
			return;
	}
	carillon_batcher_complete(batch->batcher, batch, NULL, res->sqlstate, res->message);
}

static void batch_done(void *arg, const struct carillon_db_result *res)
{
	struct carillon_batch *batch = arg;
	struct carillon_batcher *b = batch->batcher;
	if (!res->res)
		batch_failed(batch, res);
	else if (PQnfields(res->res) < BATCH_EVENTS_FIRST)
		carillon_batcher_complete(b, batch, NULL, "XX000", "invoke_batch_rows returned no rows");
	else {
		carillon_batcher_complete_rows(b, batch, (size_t)PQntuples(res->res), batch_row, res->res);
		if (batch_events && PQnfields(res->res) > BATCH_EVENTS_FIRST)
			batch_events(res->res, BATCH_EVENTS_FIRST);
	}
}

/* The rows of carillon_api.send_messages, each a message id, and the answer written from row i. */
struct send_rows {
	PGresult *res;
	struct carillon_batch *batch;
	struct carillon_buf answer;
};

/* Row i: the item's answer, written from its request and its message id. */
static void send_row(void *rows, size_t i, struct carillon_batch_outcome *o)
{
	struct send_rows *s = rows;
	if (PQgetisnull(s->res, (int)i, 0))
		return;
	s->answer.len = 0;
	if (!carillon_send_batch_answer(&s->answer, s->batch->owners[i], PQgetvalue(s->res, (int)i, 0)))
		o->ok_text = s->answer.data;
}

/* The answer of a batch sent as columns: no rows when the database declined it (an item that must
 * be refused or answered on its own), or unique_violation (a retry in it), which then goes the
 * general way. */
static void send_done(void *arg, const struct carillon_db_result *res)
{
	struct carillon_batch *batch = arg;
	/* A retry in the batch (a request key stored already, or twice in it) fails the insert on the
	 * unique index before anything commits: declined like any other. */
	bool retry = !res->res && res->sqlstate && !strcmp(res->sqlstate, "23505");
	if (!res->res && !retry) {
		batch_failed(batch, res);
		return;
	}
	bool declined = retry || PQntuples(res->res) == 0;
	carillon_metrics_batch_columns(declined);
	if (!declined) {
		struct send_rows rows = {.res = res->res, .batch = batch};
		carillon_batcher_complete_rows(batch->batcher, batch, (size_t)PQntuples(res->res), send_row, &rows);
		carillon_buf_free(&rows.answer);
		return;
	}
	batch->as_json = true;
	if (batch_send(batch))
		carillon_batcher_complete(batch->batcher, batch, NULL, "53300", "the database queue is full");
}

/* The lane: one batch after the other on one connection, the next one waiting at the server
 * (carillon/db.h). A batch of plain sends larger than carillon.send_few takes goes as columns
 * (send_batch.c); any other as its items' documents. */
static int batch_send(struct carillon_batch *batch)
{
	int lane = (int)(batch->batcher - batchers);
	struct carillon_send_columns cols;
	if (batch->n > SEND_FEW_MAX && !batch->as_json && !carillon_send_batch_columns(&cols, batch->owners, batch->n)) {
		int rc = carillon_db_query_lane_binary(lane, CARILLON_SEND_SQL, CARILLON_SEND_COLUMNS, cols.params,
						       cols.lengths, send_done, batch);
		carillon_send_batch_columns_free(&cols);
		return rc;
	}
	const char *params[1] = {carillon_batch_json(batch)};
	if (!params[0]) /* a document could not be encoded: cannot happen for a validated input */
		return -1;
	return carillon_db_query_lane(lane, BATCH_SQL, 1, params, batch_done, batch);
}

static int batch_submit(void *ctx, struct carillon_batch *batch) { return batch_send(batch); }

static void batch_item_done(void *ctx, void *owner, const struct carillon_batch_outcome *o)
{
	struct carillon_req *r = owner;
	if (o->ok_text)
		reply_output_text(r, o->ok_text);
	else if (o->ok)
		reply_output(r, json_incref(o->ok));
	else if (o->refused)
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is overloaded; retry later");
	else if (o->state)
		carillon_api_reply_db_error(r, o->state, o->message);
	else
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error");
}

/* A write's document in its batch, {"fn", "ctx", "input"} (carillon_api.invoke_batch_rows), or NULL
 * when it cannot be encoded. */
static char *item_doc(struct carillon_req *r, const json_t *after)
{
	struct carillon_buf item = {0};
	APPEND_LIT(&item, "{\"fn\":");
	int failed = carillon_json_string(&item, carillon_req_op_def(r)->sql_function);
	APPEND_LIT(&item, ",\"ctx\":");
	failed |= append_ctx(&item, r, after);
	APPEND_LIT(&item, ",\"input\":");
	failed |= carillon_api_append_json(&item, carillon_req_input(r));
	APPEND_LIT(&item, "}");
	if (failed) {
		carillon_buf_free(&item);
		return NULL;
	}
	return item.data;
}

static char *batch_doc_of(void *ctx, void *owner)
{
	(void)ctx;
	return item_doc(owner, NULL);
}

/* The write lane of a request: a hash of its ChannelArn (FNV-1a), so that one channel's writes are
 * batched and committed in the order they came; lane 0 for a write without one. */
static struct carillon_batcher *lane_batcher(struct carillon_req *r)
{
	const char *arn = json_string_value(json_object_get(carillon_req_input(r), "ChannelArn"));
	int lanes = carillon_db_lanes();
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)arn; arn && *p; p++)
		h = (h ^ *p) * 16777619u;
	struct carillon_batcher *b = &batchers[arn && lanes > 1 ? h % (uint32_t)lanes : 0];
	if (!b->submit) {
		b->submit = batch_submit;
		b->item_done = batch_item_done;
		b->doc_of = batch_doc_of;
	}
	return b;
}

/* A write joins its lane's batch. Its document is made only if its batch goes as JSON: a batch of
 * plain sends goes as columns read from the requests (send_batch.c), and most writes under load are
 * in one. (A write with a NextToken's position -- none of today's -- has its document made now, as
 * the position is not kept.) */
static void batch_enqueue(struct carillon_req *r, const json_t *after)
{
	struct carillon_batcher *b = lane_batcher(r);
	/* Settings may differ per run (tests start servers with their own); read them every time. */
	b->max_batch = (size_t)carillon_cfg.write_batch_max;
	b->max_queue = (size_t)carillon_cfg.write_queue_max;
	b->max_in_flight = (size_t)carillon_cfg.write_in_flight;
	char *doc = NULL;
	if (after && !(doc = item_doc(r, after))) {
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the request could not be encoded");
		return;
	}
	if (carillon_batcher_enqueue_owned(b, r, doc)) {
		free(doc);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE,
				     "Too many writes are waiting (CARILLON_WRITE_QUEUE_MAX %ld); retry later",
				     carillon_cfg.write_queue_max);
	}
}

void carillon_api_sql_handler(struct carillon_req *r)
{
	json_t *claims;
	if (open_next_token(r, &claims)) {
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "Invalid NextToken");
		return;
	}
	const struct carillon_op_def *def = carillon_req_op_def(r);
	if (def->flags & CARILLON_OP_WRITE) {
		batch_enqueue(r, json_object_get(claims, "c"));
		json_decref(claims);
		return;
	}
	/* A read has no idempotency token and writes nothing: call the operation's function directly
	 * (its name comes from the operation table, never from the request). */
	struct carillon_buf ctx = {0}, in = {0};
	int failed = append_ctx(&ctx, r, json_object_get(claims, "c"));
	failed |= carillon_api_append_json(&in, carillon_req_input(r));
	json_decref(claims);
	if (failed) {
		carillon_buf_free(&ctx);
		carillon_buf_free(&in);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the request could not be encoded");
		return;
	}
	char sql[192];
	snprintf(sql, sizeof(sql), "select carillon_api.%s(carillon.check_token($1::jsonb), $2::jsonb)::text",
		 def->sql_function);
	const char *params[2] = {ctx.data, in.data};
	if (carillon_db_query(sql, 2, params, sql_done, r))
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is overloaded; retry later");
	carillon_buf_free(&ctx);
	carillon_buf_free(&in);
}

void carillon_api_reply_db_error(struct carillon_req *r, const char *sqlstate, const char *message)
{
	static const struct {
		const char *state;
		enum carillon_err err;
	} map[] = {
		{"CH400", CARILLON_ERR_BAD_REQUEST},  {"CH403", CARILLON_ERR_FORBIDDEN},
		{"CH401", CARILLON_ERR_UNAUTHORIZED},
		{"CH404", CARILLON_ERR_NOT_FOUND},    {"CH409", CARILLON_ERR_CONFLICT},
		{"CH410", CARILLON_ERR_RESOURCE_LIMIT}, {"23505", CARILLON_ERR_CONFLICT},
		{"22001", CARILLON_ERR_BAD_REQUEST},  {"22P02", CARILLON_ERR_BAD_REQUEST},
		{"22003", CARILLON_ERR_BAD_REQUEST},  {"22008", CARILLON_ERR_BAD_REQUEST},
		{"42883", CARILLON_ERR_BAD_REQUEST}, /* no function for this operation yet */
	};
	/* A batch item's error may lack either (a malformed result): an internal error. */
	if (!sqlstate)
		sqlstate = "XX000";
	if (!message)
		message = "";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (!strcmp(map[i].state, sqlstate)) {
			bool ours = sqlstate[0] == 'C' && sqlstate[1] == 'H';
			if (!strcmp(sqlstate, "42883"))
				carillon_reply_error(r, map[i].err, "%s is not implemented by this server",
						     carillon_req_op(r) ? carillon_req_op(r)->name : "This operation");
			else
				carillon_reply_error(r, map[i].err, "%s",
						     ours ? message : "The request conflicts with the current state");
			return;
		}
	}
	if (!strncmp(sqlstate, "08", 2) || !strcmp(sqlstate, "57P01") || !strcmp(sqlstate, "40001") ||
	    !strcmp(sqlstate, "40P01") || !strcmp(sqlstate, "53300")) {
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The database is unavailable; retry later");
		return;
	}
	char path[256];
	const struct carillon_op *op = carillon_req_op(r);
	log_err("%s %s: database error %s: %s", carillon_req_id(r),
		op ? op->name : carillon_req_path_for_message(r, path, sizeof(path)), sqlstate, message);
	carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error (request %s)", carillon_req_id(r));
}

