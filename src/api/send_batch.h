/* Private to the api module: a batch of plain sends as carillon_api.send_messages' columns
 * (send_batch.c), for the write batches of sql_handler.c. */
#ifndef CARILLON_API_SEND_BATCH_H
#define CARILLON_API_SEND_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "carillon/api.h"
#include "carillon/db.h"

/* carillon_api.send_messages' parameters, in order (sql/api/messaging_message.sql). */
enum carillon_send_column {
	CARILLON_SEND_CHANNELS,
	CARILLON_SEND_ARNS,
	CARILLON_SEND_BEARERS,
	CARILLON_SEND_PRINCIPALS,
	CARILLON_SEND_USER_ARNS,
	CARILLON_SEND_USER_GENS,
	CARILLON_SEND_TYPES,
	CARILLON_SEND_CONTENTS,
	CARILLON_SEND_METADATA,
	CARILLON_SEND_CONTENT_TYPES,
	CARILLON_SEND_ATTRIBUTES,
	CARILLON_SEND_PUSH,
	CARILLON_SEND_KEYS,
	CARILLON_SEND_IDS,
	CARILLON_SEND_NOW_MS,
	CARILLON_SEND_HEADS,
	CARILLON_SEND_TAILS,
	CARILLON_SEND_COLUMNS
};

#define CARILLON_SEND_SQL                                                                                      \
	"select unnest(carillon_api.send_messages($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], " \
	"$6::int8[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], $13::uuid[], "  \
	"$14::text[], $15::int8[], $16::text[], $17::text[]))"

struct carillon_send_columns {
	struct carillon_db_array col[CARILLON_SEND_COLUMNS];
	const char *params[CARILLON_SEND_COLUMNS];
	int lengths[CARILLON_SEND_COLUMNS];
};

/* Whether the request is a plain persistent send (see send_batch.c). */
bool carillon_send_batch_plain(const struct carillon_req *r);
/* The columns of a batch of requests (owners[i]: struct carillon_req); -1, with nothing to free,
 * when an item is not a plain send or a member cannot be encoded. */
int carillon_send_batch_columns(struct carillon_send_columns *c, void *const *owners, size_t n);
void carillon_send_batch_columns_free(struct carillon_send_columns *c);
/* The answer of a plain send written as columns (owner: its struct carillon_req), from the message
 * id the database returned: its response body's JSON text appended to out, as
 * carillon.sent_message_answer writes it (the text a jsonb of it prints); -1 when it cannot be
 * encoded. */
int carillon_send_batch_answer(struct carillon_buf *out, const void *owner, const char *id);

/* From sql_handler.c: the context's principal as the database knows it (root, admin:<key id>,
 * user); a JSON value appended as compact text (-1 when jansson cannot encode it). */
void carillon_api_principal_name(const struct carillon_principal *p, char *out, size_t size);
int carillon_api_append_json(struct carillon_buf *b, const json_t *v);

#endif
