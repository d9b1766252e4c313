/*
 * A batch of plain persistent sends as columns (carillon_api.send_messages): the gateway has parsed
 * and validated every request already, so instead of a JSON document of documents for the database
 * to parse again and pick apart member by member (carillon_api.invoke_batch_rows), it sends each
 * member the set path reads as one typed array in PostgreSQL's binary format, an element an item.
 * The lane's instructions a batch of 31: BENCHMARKS.md, issue 11 session 18.
 *
 * "Plain" is carillon.send_batch's step 0, tested here on the request: SendChannelMessage,
 * PERSISTENT, no Target, no SubChannelId, a ClientRequestToken, a sender (ChimeBearer, or the
 * credential's user), no Metadata on a CONTROL message; every member it reads a string when given.
 * The database runs every other check and declines a batch that fails one (no rows, nothing
 * written): the caller then sends the batch the general way, where each item gets its own answer.
 *
 * The database answers with each send's message id; the answer (Status, MessageId, ChannelArn: the
 * text a jsonb of it prints, as carillon.sent_message_answer writes it) is written here from the
 * request and that id.
 *
 * The gateway also computes each send's request key and message id (carillon.request_key_of and
 * carillon.message_id_at compute the same for the other paths; a retry through any path finds the
 * message by its key, which tests/conformance/send-columns.test.mjs checks against the SQL formula).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/db.h"
#include "carillon/http.h"
#include "carillon/util.h"
#include "send_batch.h"

/* A member that must be a string when present; false when it is present and is not. */
static bool string_or_absent(const json_t *in, const char *name)
{
	const json_t *v = json_object_get(in, name);
	return !v || json_is_string(v);
}

static const char *sender_of(const struct carillon_req *r)
{
	const char *bearer = json_string_value(json_object_get(carillon_req_input(r), "ChimeBearer"));
	const struct carillon_principal *p = carillon_req_principal(r);
	if (!bearer && p->kind == CARILLON_PRINCIPAL_USER)
		bearer = p->user_arn;
	return bearer;
}

bool carillon_send_batch_plain(const struct carillon_req *r)
{
	const char *fn = carillon_req_op_def(r)->sql_function;
	if (!fn || strcmp(fn, "send_channel_message"))
		return false;
	const json_t *in = carillon_req_input(r);
	static const char *const strings[] = {"ChannelArn", "ChimeBearer", "Type", "Content", "Metadata",
					      "ContentType", "ClientRequestToken", "Persistence"};
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (!string_or_absent(in, strings[i]))
			return false;
	const char *persistence = json_string_value(json_object_get(in, "Persistence"));
	const char *type = json_string_value(json_object_get(in, "Type"));
	return persistence && !strcmp(persistence, "PERSISTENT") && !json_object_get(in, "Target") &&
	       !json_object_get(in, "SubChannelId") && json_object_get(in, "ClientRequestToken") &&
	       json_object_get(in, "ChannelArn") && sender_of(r) &&
	       !(type && !strcmp(type, "CONTROL") && json_object_get(in, "Metadata"));
}

static void add_string(struct carillon_db_array *a, const json_t *v)
{
	carillon_db_array_text(a, json_string_value(v), json_string_length(v));
}

/* A JSON member as a jsonb element (absent: NULL; JSON null is present); -1 when it cannot be
 * encoded. */
static int add_json(struct carillon_db_array *a, const json_t *v, struct carillon_buf *scratch)
{
	if (!v) {
		carillon_db_array_null(a);
		return 0;
	}
	scratch->len = 0;
	if (carillon_api_append_json(scratch, v))
		return -1;
	carillon_db_array_jsonb(a, scratch->data, scratch->len);
	return 0;
}

/* The batch's distinct channels (most batches have one). */
static void add_channels(struct carillon_db_array *a, void *const *owners, size_t n)
{
	const json_t **seen = carillon_xcalloc(n, sizeof(*seen));
	size_t distinct = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *arn = json_object_get(carillon_req_input(owners[i]), "ChannelArn");
		size_t j = 0;
		while (j < distinct && strcmp(json_string_value(seen[j]), json_string_value(arn)))
			j++;
		if (j == distinct)
			seen[distinct++] = arn;
	}
	carillon_db_array_begin(a, CARILLON_PG_TEXT_OID, (int)distinct);
	for (size_t j = 0; j < distinct; j++)
		add_string(a, seen[j]);
	free(seen);
}

/* OpenSSL's MD5, fetched once: EVP_md5() would make EVP_Digest look it up again on every call. */
static const EVP_MD *md5(void)
{
	static EVP_MD *md;
	if (!md)
		md = EVP_MD_fetch(NULL, "MD5", NULL);
	return md;
}

/* The request key: the md5 of channel, sender and ClientRequestToken joined by U+0001, as a uuid's 16
 * bytes (carillon.request_key_of). -1 when OpenSSL cannot. */
static int request_key(const char *arn, const char *bearer, const json_t *token, unsigned char key[16],
		       struct carillon_buf *scratch)
{
	scratch->len = 0;
	carillon_buf_append(scratch, arn, strlen(arn));
	carillon_buf_append(scratch, "\1", 1);
	carillon_buf_append(scratch, bearer, strlen(bearer));
	carillon_buf_append(scratch, "\1", 1);
	carillon_buf_append(scratch, json_string_value(token), json_string_length(token));
	unsigned int len = 0;
	const EVP_MD *md = md5();
	return md && EVP_Digest(scratch->data, scratch->len, key, &len, md, NULL) == 1 && len == 16 ? 0 : -1;
}

/* The message id: the request time in milliseconds as 12 hex digits, then the key's first 20 hex
 * digits (carillon.message_id_at). */
static void message_id(int64_t now_ms, const unsigned char key[16], char id[33])
{
	char ms[24];
	snprintf(ms, sizeof(ms), "%012llx", (unsigned long long)now_ms);
	memcpy(id, ms, 12); /* lpad(..., 12) keeps the first 12 of a longer one */
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 10; i++) {
		id[12 + 2 * i] = hex[key[i] >> 4];
		id[13 + 2 * i] = hex[key[i] & 15];
	}
	id[32] = '\0';
}

/* A string member's text, NULL when absent or JSON null (as add_string leaves its column NULL). */
static const char *member_text(const json_t *in, const char *name)
{
	return json_string_value(json_object_get(in, name));
}

/* The event document of the send (carillon.sent_message_payload_of, byte for byte) without its
 * time and sender, which the database adds: `head` ends at CreatedTimestamp's opening quote, `tail`
 * starts after the Sender. NULL columns (the database writes the whole document) for a send with
 * MessageAttributes: jsonb prints those with its own key order, which is not written here. */
static int add_event_parts(struct carillon_send_columns *c, const json_t *in, const char *id,
			   struct carillon_buf *scratch)
{
	const json_t *attributes = json_object_get(in, "MessageAttributes");
	if (attributes && !json_is_null(attributes)) {
		carillon_db_array_null(&c->col[CARILLON_SEND_HEADS]);
		carillon_db_array_null(&c->col[CARILLON_SEND_TAILS]);
		return 0;
	}
	const char *content = member_text(in, "Content"), *metadata = member_text(in, "Metadata");
	const char *type = member_text(in, "Type"), *content_type = member_text(in, "ContentType");
	int failed = 0;
	scratch->len = 0;
	carillon_buf_append(scratch, "{\"ChannelArn\": ", 15);
	const char *arn = member_text(in, "ChannelArn");
	failed |= carillon_json_string_pg(scratch, arn ? arn : "");
	carillon_buf_appendf(scratch, ", \"MessageId\": \"%s\"", id);
	if (content) {
		carillon_buf_append(scratch, ", \"Content\": ", 13);
		failed |= carillon_json_string_pg(scratch, content);
	}
	if (metadata) {
		carillon_buf_append(scratch, ", \"Metadata\": ", 14);
		failed |= carillon_json_string_pg(scratch, metadata);
	}
	if (type)
		carillon_buf_appendf(scratch, ", \"Type\": \"%s\"", type);
	static const char created[] = ", \"CreatedTimestamp\": \"";
	carillon_buf_append(scratch, created, sizeof(created) - 1);
	carillon_db_array_text(&c->col[CARILLON_SEND_HEADS], scratch->data, scratch->len);
	scratch->len = 0;
	static const char sent[] = ", \"Redacted\": false, \"Persistence\": \"PERSISTENT\", \"Status\": {\"Value\": \"SENT\"}";
	carillon_buf_append(scratch, sent, sizeof(sent) - 1);
	if (content_type) {
		carillon_buf_append(scratch, ", \"ContentType\": ", 17);
		failed |= carillon_json_string_pg(scratch, content_type);
	}
	carillon_buf_append(scratch, "}", 1);
	carillon_db_array_text(&c->col[CARILLON_SEND_TAILS], scratch->data, scratch->len);
	return failed;
}

int carillon_send_batch_columns(struct carillon_send_columns *c, void *const *owners, size_t n)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		if (!carillon_send_batch_plain(owners[i]))
			return -1;
	static const uint32_t types[CARILLON_SEND_COLUMNS] = {
	    [CARILLON_SEND_USER_GENS] = CARILLON_PG_INT8_OID, [CARILLON_SEND_NOW_MS] = CARILLON_PG_INT8_OID,
	    [CARILLON_SEND_ATTRIBUTES] = CARILLON_PG_JSONB_OID, [CARILLON_SEND_PUSH] = CARILLON_PG_JSONB_OID,
	    [CARILLON_SEND_KEYS] = CARILLON_PG_UUID_OID};
	add_channels(&c->col[CARILLON_SEND_CHANNELS], owners, n);
	for (int k = CARILLON_SEND_CHANNELS + 1; k < CARILLON_SEND_COLUMNS; k++)
		carillon_db_array_begin(&c->col[k], types[k] ? types[k] : CARILLON_PG_TEXT_OID, (int)n);
	struct carillon_buf scratch = {0};
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct carillon_req *r = owners[i];
		const json_t *in = carillon_req_input(r);
		const struct carillon_principal *p = carillon_req_principal(r);
		const char *bearer = sender_of(r);
		char principal[160];
		carillon_api_principal_name(p, principal, sizeof(principal));
		add_string(&c->col[CARILLON_SEND_ARNS], json_object_get(in, "ChannelArn"));
		carillon_db_array_text(&c->col[CARILLON_SEND_BEARERS], bearer, strlen(bearer));
		carillon_db_array_text(&c->col[CARILLON_SEND_PRINCIPALS], principal, strlen(principal));
		if (p->kind == CARILLON_PRINCIPAL_USER) {
			carillon_db_array_text(&c->col[CARILLON_SEND_USER_ARNS], p->user_arn, strlen(p->user_arn));
			carillon_db_array_int8(&c->col[CARILLON_SEND_USER_GENS], p->user_gen);
		} else {
			carillon_db_array_null(&c->col[CARILLON_SEND_USER_ARNS]);
			carillon_db_array_null(&c->col[CARILLON_SEND_USER_GENS]);
		}
		add_string(&c->col[CARILLON_SEND_TYPES], json_object_get(in, "Type"));
		add_string(&c->col[CARILLON_SEND_CONTENTS], json_object_get(in, "Content"));
		add_string(&c->col[CARILLON_SEND_METADATA], json_object_get(in, "Metadata"));
		add_string(&c->col[CARILLON_SEND_CONTENT_TYPES], json_object_get(in, "ContentType"));
		failed |= add_json(&c->col[CARILLON_SEND_ATTRIBUTES], json_object_get(in, "MessageAttributes"), &scratch);
		failed |= add_json(&c->col[CARILLON_SEND_PUSH], json_object_get(in, "PushNotification"), &scratch);
		unsigned char key[16];
		char id[33];
		const char *arn = json_string_value(json_object_get(in, "ChannelArn"));
		failed |= request_key(arn, bearer, json_object_get(in, "ClientRequestToken"), key, &scratch);
		message_id(carillon_req_time_ms(r), key, id);
		carillon_db_array_text(&c->col[CARILLON_SEND_KEYS], (const char *)key, sizeof(key));
		carillon_db_array_text(&c->col[CARILLON_SEND_IDS], id, 32);
		carillon_db_array_int8(&c->col[CARILLON_SEND_NOW_MS], carillon_req_time_ms(r));
		failed |= add_event_parts(c, in, id, &scratch);
	}
	carillon_buf_free(&scratch);
	for (int k = 0; k < CARILLON_SEND_COLUMNS; k++)
		c->params[k] = carillon_db_array_finish(&c->col[k], &c->lengths[k]);
	if (failed) {
		carillon_send_batch_columns_free(c);
		return -1;
	}
	return 0;
}

void carillon_send_batch_columns_free(struct carillon_send_columns *c)
{
	for (int k = 0; k < CARILLON_SEND_COLUMNS; k++)
		carillon_db_array_free(&c->col[k]);
}

int carillon_send_batch_answer(struct carillon_buf *out, const void *owner, const char *id)
{
	const char *arn = json_string_value(json_object_get(carillon_req_input(owner), "ChannelArn"));
	static const char status[] = "{\"Status\": {\"Value\": \"SENT\"}, \"MessageId\": ";
	carillon_buf_append(out, status, sizeof(status) - 1);
	int failed = carillon_json_string_pg(out, id);
	carillon_buf_append(out, ", \"ChannelArn\": ", 16);
	failed |= carillon_json_string_pg(out, arn ? arn : "");
	carillon_buf_append(out, "}", 1);
	return failed ? -1 : 0;
}
