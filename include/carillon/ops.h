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
};

struct carillon_op_def {
	const char *service;       /* "identity", "messaging", "carillon", "pinpoint" */
	const char *name;          /* the operation's name in its model */
	const char *sql_function;  /* carillon_api.<sql_function>, or NULL (a C handler) */
	unsigned flags;            /* enum carillon_op_flag */
};

/* The table, in ops.def order. */
const struct carillon_op_def *carillon_ops_table(size_t *n);

/* The row of (service, name), or NULL. */
const struct carillon_op_def *carillon_ops_find(const char *service, const char *name);

/* A service whose model Carillon implements only in part (Pinpoint): its operations without a row
 * answer that Carillon does not implement them (CARILLON_ERR_NOT_IMPLEMENTED) instead of failing
 * the table check. Every other service must have a row for every operation. */
bool carillon_ops_partial_service(const char *service);

/* Check a table against the loaded models (see ops.def for the rules). 0, or -1 with the first
 * problem in `err`. */
int carillon_ops_check(const struct carillon_op_def *table, size_t n, char *err, size_t err_len);

#endif
