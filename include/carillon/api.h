/*
 * The API operations. Most operations are served by the generic SQL handler: the validated input
 * and a context (region, account, principal, time, idempotency token, pagination cursor) go to
 * one PostgreSQL function per operation (the files under sql/api/), which applies the business rules in one
 * transaction and returns the output document.
 */
#ifndef CARILLON_API_H
#define CARILLON_API_H

#include "carillon/http.h"

/* Register every implemented operation's handler (called once at startup). */
void carillon_api_init(void);

/* The generic handler: runs carillon_api.invoke(<op's sql_function>, ctx, input). */
void carillon_api_sql_handler(struct carillon_req *r);

/* Register the listed operations with the generic SQL handler. */
void carillon_api_register_sql(const char *const *op_names);

/* Per-service registration (one table per resource file). */
void carillon_api_identity_init(void);
void carillon_api_messaging_init(void);

/* Map a database error to the AWS error a client should see, and answer with it. */
void carillon_api_reply_db_error(struct carillon_req *r, const char *sqlstate, const char *message);

#endif
