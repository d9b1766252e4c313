/*
 * PostgreSQL, asynchronously, on the process's event loop: a small pool of non-blocking libpq
 * connections whose sockets are watched by uv_poll handles, a FIFO of waiting queries, and
 * reconnection with backoff. Nothing here blocks the loop (migrations, which run before the loop
 * starts, are the exception and live in migrate.c).
 */
#ifndef CARILLON_DB_H
#define CARILLON_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "carillon/util.h"

/* How a query ended. */
struct carillon_db_result {
	PGresult *res;           /* the last result (PGRES_TUPLES_OK / COMMAND_OK), or NULL on error */
	const char *sqlstate;    /* on error: the SQLSTATE ("CH404", "23505", ...) or "08000" when the
				    connection failed */
	const char *message;     /* on error: the primary message */
};

typedef void (*carillon_db_cb)(void *arg, const struct carillon_db_result *r);

int carillon_db_init(uv_loop_t *loop, const char *conninfo, int pool_size);
void carillon_db_shutdown(void);
/* Release the pool's memory, once the loop has closed its handles. */
void carillon_db_free(void);

/* Queue a parameterised statement (text parameters; NULL = SQL NULL). The callback runs on the
 * loop exactly once; the result is freed after it returns. Returns 0, or -1 when the queue is
 * full (the caller answers ServiceUnavailable). Each statement is its own transaction; it may share
 * its connection with up to CARILLON_DB_PIPELINE_DEPTH - 1 others in flight (pipeline mode), and its
 * text is prepared once per connection (keep texts fixed: values go in parameters). See
 * docs/db-pipeline.md. */
int carillon_db_query(const char *sql, int nparams, const char *const *params, carillon_db_cb cb, void *arg);
/* The same, in write lane `lane` (0 .. carillon_db_lanes() - 1): one lane's queries run one after the
 * other on one connection, in the order queued, up to CARILLON_DB_PIPELINE_DEPTH of them pipelined;
 * different lanes run at once on different connections. */
int carillon_db_query_lane(int lane, const char *sql, int nparams, const char *const *params, carillon_db_cb cb,
			   void *arg);
/* The same with binary parameters (PostgreSQL's binary format: carillon_db_array builds arrays in
 * it), params[i] of lengths[i] bytes (NULL = SQL NULL); the statement's text gives their types. */
int carillon_db_query_lane_binary(int lane, const char *sql, int nparams, const char *const *params,
				  const int *lengths, carillon_db_cb cb, void *arg);
/* A one-dimensional array parameter in PostgreSQL's binary format (src/db/array.c): begin with the
 * element type's OID and the number of elements, add exactly that many, finish (the bytes and
 * their length, owned by the array), free. */
#define CARILLON_PG_INT8_OID 20
#define CARILLON_PG_TEXT_OID 25
#define CARILLON_PG_UUID_OID 2950
#define CARILLON_PG_JSONB_OID 3802
struct carillon_db_array {
	struct carillon_buf buf;
	bool nulls;
};
void carillon_db_array_begin(struct carillon_db_array *a, uint32_t elem_oid, int n);
void carillon_db_array_null(struct carillon_db_array *a);
/* text of len bytes (NULL s: SQL NULL); valid UTF-8 without NUL, or the server refuses the query.
 * Any other type whose binary form is its bytes as they are (a uuid's 16) goes the same way. */
void carillon_db_array_text(struct carillon_db_array *a, const char *s, size_t len);
void carillon_db_array_int8(struct carillon_db_array *a, int64_t v);
/* a jsonb element from JSON text (NULL json: SQL NULL) */
void carillon_db_array_jsonb(struct carillon_db_array *a, const char *json, size_t len);
const char *carillon_db_array_finish(struct carillon_db_array *a, int *len);
void carillon_db_array_free(struct carillon_db_array *a);

/* The number of write lanes: CARILLON_WRITE_LANES, at most the pool's size less one and
 * CARILLON_DB_LANES_MAX (at least 1). */
#define CARILLON_DB_LANES_MAX 8
int carillon_db_lanes(void);

/* A dedicated connection that LISTENs on `channel`: `on_notify` runs for every notification,
 * `on_up` every time the connection (re)connects and its LISTEN is in place — the moment to catch
 * up on anything missed while it was down. It takes no queries. Call once, after carillon_db_init. */
typedef void (*carillon_db_notify_fn)(const char *payload);
typedef void (*carillon_db_up_fn)(void);
void carillon_db_listen(const char *channel, carillon_db_notify_fn on_notify, carillon_db_up_fn on_up);

/* Also LISTEN on `channel` on that connection, `on_notify` for its notifications (the on_up of
 * carillon_db_listen covers all channels). Call before carillon_db_listen. */
void carillon_db_listen_also(const char *channel, carillon_db_notify_fn on_notify);

/* At least one connection is up. */
bool carillon_db_ready(void);

/* For the metrics: pool connections up and busy (the LISTEN connection excluded), statements queued. */
void carillon_db_stats(int *up, int *busy, int *queued);

/* Migrations (blocking; before the loop starts): apply every embedded sql/ migration not yet
 * recorded, each in its own transaction, under an advisory lock so that several nodes starting
 * together apply each one once. */
int carillon_db_migrate(const char *conninfo);

#endif
