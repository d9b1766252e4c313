/*
 * The generic operation handler: one round trip to PostgreSQL.
 *
 * Reads call carillon_api.invoke() directly. Writes go through group commit: they queue here and
 * whenever a batch slot is free, everything queued (up to BATCH_MAX) is sent as one
 * carillon_api.invoke_batch() call: one transaction, each request in its own subtransaction, one
 * event-lock acquisition and one NOTIFY for all of them, each request answered after the commit.
 * Under light load a batch holds one request (no added latency); under load batches grow by
 * themselves, which is what turns one fdatasync per request into one per batch.
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
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/util.h"
#include "../http/http_internal.h"

#define NEXT_TOKEN_PURPOSE "carillon next token v1"
#define BATCH_MAX 50          /* subtransactions per batch (PostgreSQL caches 64 per backend) */

struct batch_item {
	struct batch_item *next;
	struct carillon_req *r;
	char *json;           /* {"fn":..,"ctx":..,"input":..} */
};

struct batch {
	int n;
	struct carillon_req *reqs[BATCH_MAX];
};

static struct batch_item *q_head, *q_tail;
static unsigned q_len, batches_in_flight;

/* The listing a NextToken belongs to: the operation and every input member but the paging ones.
 * -1 when jansson cannot copy or encode the input (out of memory). */
static int listing_scope(const struct carillon_req *r, char out[33])
{
	json_t *copy = json_deep_copy(r->input);
	json_object_del(copy, "NextToken");
	json_object_del(copy, "MaxResults");
	char *text = copy ? json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(copy);
	if (!text)
		return -1;
	unsigned char h[16];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)r->match.op->name, strlen(r->match.op->name) + 1);
	crypto_generichash_update(&st, (const unsigned char *)text, strlen(text));
	crypto_generichash_final(&st, h, sizeof(h));
	free(text);
	sodium_bin2hex(out, 33, h, sizeof(h));
	return 0;
}

/* NextToken -> cursor; -1 when it is not one of ours for this listing. */
static int open_next_token(struct carillon_req *r, json_t *ctx)
{
	const char *token = json_string_value(json_object_get(r->input, "NextToken"));
	if (!token)
		return 0;
	size_t len;
	char *text = carillon_open(NEXT_TOKEN_PURPOSE, token, &len);
	json_t *claims = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	char scope[33];
	const char *s = json_string_value(json_object_get(claims, "s"));
	json_t *after = json_object_get(claims, "c");
	int rc = -1;
	if (s && after && !listing_scope(r, scope) && !strcmp(s, scope) && !json_object_set(ctx, "after", after))
		rc = 0;
	json_decref(claims);
	return rc;
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
	int rc = json_object_set_new(body, "NextToken", json_string(token));
	free(token);
	return rc;
}

static json_t *make_ctx(struct carillon_req *r)
{
	const struct carillon_principal *p = &r->principal;
	char principal[160];
	snprintf(principal, sizeof(principal), "%s",
		 p->kind == CARILLON_PRINCIPAL_ROOT ? "root" : p->kind == CARILLON_PRINCIPAL_ADMIN ? "admin" : "user");
	if (p->kind == CARILLON_PRINCIPAL_ADMIN)
		snprintf(principal, sizeof(principal), "admin:%s", p->access_key_id);
	json_t *ctx = json_pack("{s:s,s:s,s:s,s:I,s:s}", "region", carillon_cfg.region, "account",
				carillon_cfg.account_id, "principal", principal, "now_ms", (json_int_t)r->t_ms,
				"request_id", r->id);
	if (!ctx)
		return NULL;
	/* A context missing a member would change who the database thinks is calling: any failure
	 * (json_string of text that is not UTF-8, out of memory) fails the request instead. */
	int failed = 0;
	if (p->kind == CARILLON_PRINCIPAL_USER) {
		failed |= json_object_set_new(ctx, "user_arn", json_string(p->user_arn));
		failed |= json_object_set_new(ctx, "user_gen", json_integer((json_int_t)p->user_gen));
	}
	failed |= json_object_set_new(
	    ctx, "public_endpoint",
	    json_string(*carillon_cfg.public_endpoint ? carillon_cfg.public_endpoint : carillon_cfg.listen));
	const char *idem = r->match.op->idempotency_member;
	json_t *token = idem ? json_object_get(r->input, idem) : NULL;
	if (token) {
		failed |= json_object_set_new(ctx, "idempotency_member", json_string(idem));
		failed |= json_object_set(ctx, "idempotency_token", token);
	}
	if (failed) {
		json_decref(ctx);
		return NULL;
	}
	return ctx;
}

/* Answer with an operation's output document (stolen; NULL or JSON null: no body). */
static void reply_output(struct carillon_req *r, json_t *body)
{
	if (json_is_object(body) && seal_next_token(r, body)) {
		json_decref(body);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the NextToken could not be built");
		return;
	}
	if (!r->match.op->has_output || json_is_null(body)) {
		json_decref(body);
		body = NULL;
	}
	carillon_reply_json(r, 0, body);
}

static void sql_done(void *arg, const struct carillon_db_result *res)
{
	struct carillon_req *r = arg;
	if (!res->res) {
		carillon_api_reply_db_error(r, res->sqlstate, res->message);
		return;
	}
	json_t *body = NULL;
	if (PQntuples(res->res) == 1 && !PQgetisnull(res->res, 0, 0)) {
		json_error_t jerr;
		body = json_loads(PQgetvalue(res->res, 0, 0), JSON_DECODE_ANY, &jerr);
		if (!body) {
			log_err("%s: unparsable result from %s: %s", r->id, r->match.op->sql_function, jerr.text);
			carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error");
			return;
		}
	}
	reply_output(r, body);
}

static bool op_is_read(const struct carillon_op *op)
{
	static const char *const prefixes[] = {"Describe", "List", "Get", "Search", NULL};
	for (const char *const *p = prefixes; *p; p++)
		if (!strncmp(op->name, *p, strlen(*p)))
			return true;
	return false;
}

static void batch_pump(void);

static void batch_done(void *arg, const struct carillon_db_result *res)
{
	struct batch *b = arg;
	batches_in_flight--;
	json_t *results = NULL;
	if (res->res && PQntuples(res->res) == 1)
		results = json_loads(PQgetvalue(res->res, 0, 0), 0, NULL);
	for (int i = 0; i < b->n; i++) {
		struct carillon_req *r = b->reqs[i];
		json_t *item = json_array_get(results, (size_t)i);
		json_t *err = json_object_get(item, "error");
		if (!res->res)
			carillon_api_reply_db_error(r, res->sqlstate, res->message);
		else if (!item)
			carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error");
		else if (err)
			carillon_api_reply_db_error(r, json_string_value(json_object_get(err, "state")),
						    json_string_value(json_object_get(err, "message")));
		else
			reply_output(r, json_incref(json_object_get(item, "ok")));
	}
	json_decref(results);
	free(b);
	batch_pump();
}

static void batch_pump(void)
{
	unsigned max_in_flight = carillon_cfg.db_pool_size > 1 ? (unsigned)carillon_cfg.db_pool_size / 2 : 1;
	while (q_head && batches_in_flight < max_in_flight) {
		struct batch *b = carillon_xcalloc(1, sizeof(*b));
		struct carillon_buf text = {0};
		carillon_buf_append(&text, "[", 1);
		while (q_head && b->n < BATCH_MAX) {
			struct batch_item *it = q_head;
			q_head = it->next;
			q_len--;
			if (b->n)
				carillon_buf_append(&text, ",", 1);
			carillon_buf_append(&text, it->json, strlen(it->json));
			b->reqs[b->n++] = it->r;
			free(it->json);
			free(it);
		}
		if (!q_head)
			q_tail = NULL;
		carillon_buf_append(&text, "]", 1);
		const char *params[1] = {text.data};
		if (carillon_db_query("select carillon_api.invoke_batch($1::jsonb)::text", 1, params, batch_done, b)) {
			for (int i = 0; i < b->n; i++)
				carillon_reply_error(b->reqs[i], CARILLON_ERR_SERVICE_UNAVAILABLE,
						     "The server is overloaded; retry later");
			free(b);
		} else {
			batches_in_flight++;
		}
		carillon_buf_free(&text);
	}
}

static void batch_enqueue(struct carillon_req *r, json_t *ctx)
{
	json_t *item = json_pack("{s:s,s:O,s:O}", "fn", r->match.op->sql_function, "ctx", ctx, "input", r->input);
	char *text = item ? json_dumps(item, JSON_COMPACT) : NULL;
	json_decref(item);
	if (!text) {
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the request could not be encoded");
		return;
	}
	struct batch_item *it = carillon_xcalloc(1, sizeof(*it));
	it->r = r;
	it->json = text;
	if (q_tail)
		q_tail->next = it;
	else
		q_head = it;
	q_tail = it;
	q_len++;
	batch_pump();
}

void carillon_api_sql_handler(struct carillon_req *r)
{
	json_t *ctx = make_ctx(r);
	if (!ctx) {
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the request context could not be built");
		return;
	}
	if (open_next_token(r, ctx)) {
		json_decref(ctx);
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "Invalid NextToken");
		return;
	}
	if (!op_is_read(r->match.op)) {
		batch_enqueue(r, ctx);
		json_decref(ctx);
		return;
	}
	/* A read has no idempotency token and writes nothing: call the operation's function directly
	 * (its name comes from the model, never from the request). */
	char *ctx_text = json_dumps(ctx, JSON_COMPACT);
	char *in_text = json_dumps(r->input, JSON_COMPACT);
	json_decref(ctx);
	if (!ctx_text || !in_text) {
		free(ctx_text);
		free(in_text);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the request could not be encoded");
		return;
	}
	char sql[192];
	snprintf(sql, sizeof(sql), "select carillon_api.%s(carillon.check_token($1::jsonb), $2::jsonb)::text",
		 r->match.op->sql_function);
	const char *params[2] = {ctx_text, in_text};
	if (carillon_db_query(sql, 2, params, sql_done, r))
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is overloaded; retry later");
	free(ctx_text);
	free(in_text);
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
						     r->match.op ? r->match.op->name : "This operation");
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
	log_err("%s %s: database error %s: %s", r->id,
		r->match.op ? r->match.op->name : carillon_req_path_for_message(r, path, sizeof(path)), sqlstate, message);
	carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error (request %s)", r->id);
}

void carillon_api_register_sql(const char *const *op_names)
{
	for (; *op_names; op_names++) {
		struct carillon_op *op = carillon_model_op(*op_names);
		if (!op) {
			log_err("api: no operation %s in the models", *op_names);
			abort();
		}
		op->handler = carillon_api_sql_handler;
	}
}

void carillon_api_init(void)
{
	carillon_api_identity_init();
	carillon_api_messaging_init();
}
