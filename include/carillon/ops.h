/*
 * The operation table (src/api/ops.def): for every operation, its service, the SQL function that
 * implements it and its traits. Dispatch reads the traits from here and nowhere else: read or
 * write (group commit), bearer, idempotency token, events, admin-only, unmetered.
 */
#ifndef CARILLON_OPS_H
#define CARILLON_OPS_H

#include <stdbool.h>
#include <stddef.h>

enum carillon_op_flag {
	CARILLON_OP_READ = 1u << 0,
	CARILLON_OP_WRITE = 1u << 1,
	CARILLON_OP_BEARER = 1u << 2,
	CARILLON_OP_IDEMPOTENT = 1u << 3,
	CARILLON_OP_EVENTS = 1u << 4,
	CARILLON_OP_ADMIN = 1u << 5,
	CARILLON_OP_UNMETERED = 1u << 6,
	CARILLON_OP_NOT_IMPLEMENTED = 1u << 7, /* answered "not implemented" (never a row's trait) */
};

struct carillon_op_def {
	const char *service;       /* "identity", "messaging", "carillon", "pinpoint" */
	const char *name;          /* the operation's name in its model */
	const char *sql_function;  /* carillon_api.<sql_function>, or NULL (a C handler) */
	unsigned flags;            /* enum carillon_op_flag */
};

/* A service (a CARILLON_SERVICE line of ops.def): how its clients read errors, where its routes
 * live, and what an operation of its model without a row is. */
struct carillon_service_def {
	const char *service;        /* as in the models: "identity", "messaging", "carillon", "pinpoint" */
	const char *title;          /* for messages: "Pinpoint" */
	int err_style;              /* enum carillon_err_style (carillon/http.h) */
	const char *path_prefix;    /* every route of the service and no other starts with it, or NULL */
	struct carillon_op_def unlisted; /* .flags 0: every operation needs a row; else the traits of
					  * one without (name and function NULL) */
};

/* The service's line, or NULL. */
const struct carillon_service_def *carillon_ops_service(const char *service);

/* The service whose path prefix `path` starts with, or NULL. */
const struct carillon_service_def *carillon_ops_service_of_path(const char *path);

/* What serves a model operation: its row, else its service's unlisted traits (a service
 * implemented in part: CARILLON_OP_NOT_IMPLEMENTED), else NULL. The one place that decides. */
const struct carillon_op_def *carillon_ops_def_of(const char *service, const char *name);

/* The table, in ops.def order. */
const struct carillon_op_def *carillon_ops_table(size_t *n);

/* The row of (service, name), or NULL. */
const struct carillon_op_def *carillon_ops_find(const char *service, const char *name);

/* A service whose model Carillon implements only in part (Pinpoint; its CARILLON_SERVICE line gives
 * unlisted operations CARILLON_OP_NOT_IMPLEMENTED): its operations without a row answer that Carillon
 * does not implement them (CARILLON_ERR_NOT_IMPLEMENTED) instead of failing the table check. Every
 * other service must have a row for every operation. */
bool carillon_ops_partial_service(const char *service);

/* Check a table against the loaded models (see ops.def for the rules). 0, or -1 with the first
 * problem in `err`. */
int carillon_ops_check(const struct carillon_op_def *table, size_t n, char *err, size_t err_len);

#endif
