/*
 * The API operations. The dispatcher (carillon_api_dispatch, given to the http layer by main.c)
 * routes a complete request to its model operation, authenticates it (carillon_auth_request),
 * validates its input against the model, checks the caller's rights and calls the handler
 * registered for the operation's row of the operation table (carillon/ops.h). Most operations are
 * served by the generic SQL handler: the validated input and a context (region, account,
 * principal, time, idempotency token, pagination cursor) go to the operation's PostgreSQL function
 * (sql/api/), reads directly, writes through group commit (carillon/batcher.h).
 */
#ifndef CARILLON_API_H
#define CARILLON_API_H

#include <jansson.h>

#include "carillon/auth.h"
#include "carillon/http.h"
#include "carillon/model.h"
#include "carillon/ops.h"

typedef void (*carillon_api_handler_fn)(struct carillon_req *r);

/* Register every service's operations and check the operation table against the models (once,
 * after carillon_model_init). 0, or -1 after logging what is wrong. */
int carillon_api_init(void);
void carillon_api_free(void);

/* The http dispatcher: route, authenticate, validate, authorise, call the handler. */
void carillon_api_dispatch(struct carillon_req *r);

/* Registration (by the service modules, from carillon_api_init): the handler of one row of the
 * operation table, or of every row of a service that names an SQL function. */
void carillon_api_register(const char *service, const char *name, carillon_api_handler_fn fn);
void carillon_api_register_service(const char *service, carillon_api_handler_fn fn);

/* Per-service registration. */
void carillon_api_identity_init(void);
void carillon_api_messaging_init(void);
void carillon_api_carillon_init(void);
void carillon_api_pinpoint_init(void);

/* A handler answering that Carillon does not implement the operation (Pinpoint:
 * MethodNotAllowedException, 405): what a partial service's operations without a row answer, and
 * the placeholder of a row whose C handler is not registered yet. */
void carillon_api_not_implemented(struct carillon_req *r);

/* What a handler knows of its request, once dispatched. */
const struct carillon_op *carillon_req_op(const struct carillon_req *r);
const struct carillon_op_def *carillon_req_op_def(const struct carillon_req *r);
json_t *carillon_req_input(const struct carillon_req *r);        /* validated input (borrowed) */
const struct carillon_principal *carillon_req_principal(const struct carillon_req *r);
/* A handler's own state while it waits (not freed by the api: the handler owns it). */
void *carillon_req_handler_state(const struct carillon_req *r);
void carillon_req_set_handler_state(struct carillon_req *r, void *state);

/* The generic handler: runs the row's SQL function (a READ directly, a WRITE through group commit). */
void carillon_api_sql_handler(struct carillon_req *r);
/* Where a write batch's answer goes once its items are answered, when it carries the events the
 * batch logged (carillon_api.invoke_batch_rows' ev_ columns, from column `first` on): the server
 * wires the realtime listener here (NULL: nowhere). */
struct pg_result;
void carillon_api_on_batch_events(void (*fn)(const struct pg_result *res, int first));

/* Map a database error to the AWS error a client should see, and answer with it. */
void carillon_api_reply_db_error(struct carillon_req *r, const char *sqlstate, const char *message);

#endif
