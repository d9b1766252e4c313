/* The operation table and its check against the models. */
#include <stdio.h>
#include <string.h>

#include "carillon/http.h"
#include "carillon/model.h"
#include "carillon/ops.h"

static const struct carillon_op_def table[] = {
#define CARILLON_SERVICE(service, title, style, prefix, unlisted)
#define CARILLON_OP(service, name, fn, flags) {service, name, fn, flags},
#include "ops.def"
#undef CARILLON_OP
#undef CARILLON_SERVICE
};
#define N_ROWS (sizeof(table) / sizeof(table[0]))

static const struct carillon_service_def services[] = {
#define CARILLON_SERVICE(service, title, style, prefix, unlisted) {service, title, style, prefix, {service, NULL, NULL, unlisted}},
#define CARILLON_OP(service, name, fn, flags)
#include "ops.def"
#undef CARILLON_OP
#undef CARILLON_SERVICE
};
#define N_SERVICES (sizeof(services) / sizeof(services[0]))

const struct carillon_service_def *carillon_ops_service(const char *service)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (!strcmp(services[i].service, service))
			return &services[i];
	return NULL;
}

const struct carillon_service_def *carillon_ops_service_of_path(const char *path)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (services[i].path_prefix && !strncmp(path, services[i].path_prefix, strlen(services[i].path_prefix)))
			return &services[i];
	return NULL;
}

/* The traits of an operation of `service` without a row, or NULL when it must have one. */
static const struct carillon_op_def *unlisted_def(const char *service)
{
	const struct carillon_service_def *s = carillon_ops_service(service);
	return s && (s->unlisted.flags & CARILLON_OP_NOT_IMPLEMENTED) ? &s->unlisted : NULL;
}

const struct carillon_op_def *carillon_ops_table(size_t *n)
{
	*n = N_ROWS;
	return table;
}

const struct carillon_op_def *carillon_ops_find(const char *service, const char *name)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (!strcmp(table[i].name, name) && !strcmp(table[i].service, service))
			return &table[i];
	return NULL;
}

const struct carillon_op_def *carillon_ops_def_of(const char *service, const char *name)
{
	const struct carillon_op_def *row = carillon_ops_find(service, name);
	return row ? row : unlisted_def(service);
}

bool carillon_ops_partial_service(const char *service) { return unlisted_def(service) != NULL; }

static const struct carillon_op_def *row_of(const struct carillon_op_def *t, size_t n, const struct carillon_op *op,
					    int *count)
{
	const struct carillon_op_def *found = NULL;
	*count = 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, op->name) && !strcmp(t[i].service, op->service)) {
			found = found ? found : &t[i];
			(*count)++;
		}
	return found;
}

static bool same_route(const struct carillon_op *a, const struct carillon_op *b)
{
	if (strcmp(a->method, b->method) || a->n_segs != b->n_segs ||
	    !a->fixed_query_name != !b->fixed_query_name ||
	    (a->fixed_query_name && (strcmp(a->fixed_query_name, b->fixed_query_name) ||
				     strcmp(a->fixed_query_value, b->fixed_query_value))))
		return false;
	for (int i = 0; i < a->n_segs; i++) {
		const struct carillon_route_seg *x = &a->segs[i], *y = &b->segs[i];
		if (!x->literal != !y->literal || (x->literal && strcmp(x->literal, y->literal)))
			return false;
	}
	return true;
}

static int check_row(const struct carillon_op_def *d, const struct carillon_op *op, char *err, size_t err_len)
{
	unsigned rw = d->flags & (CARILLON_OP_READ | CARILLON_OP_WRITE);
	if (d->flags & CARILLON_OP_NOT_IMPLEMENTED) {
		snprintf(err, err_len, "%s.%s: NOT_IMPLEMENTED on a row (it is a service's trait)", d->service, d->name);
		return -1;
	}
	if (rw != CARILLON_OP_READ && rw != CARILLON_OP_WRITE) {
		snprintf(err, err_len, "%s.%s: exactly one of READ and WRITE", d->service, d->name);
		return -1;
	}
	if ((d->flags & CARILLON_OP_EVENTS) && !(d->flags & CARILLON_OP_WRITE)) {
		snprintf(err, err_len, "%s.%s: EVENTS without WRITE (a read commits nothing)", d->service, d->name);
		return -1;
	}
	if (!d->sql_function && (d->flags & CARILLON_OP_WRITE)) {
		snprintf(err, err_len, "%s.%s: a WRITE without an SQL function cannot go through group commit",
			 d->service, d->name);
		return -1;
	}
	if (!(d->flags & CARILLON_OP_BEARER) != !op->has_bearer) {
		snprintf(err, err_len, "%s.%s: BEARER is %s but the model %s ChimeBearer", d->service, d->name,
			 op->has_bearer ? "missing" : "set", op->has_bearer ? "has" : "has no");
		return -1;
	}
	if (!(d->flags & CARILLON_OP_IDEMPOTENT) != !op->idempotency_member) {
		snprintf(err, err_len, "%s.%s: IDEMPOTENT is %s but the model %s an idempotency token", d->service,
			 d->name, op->idempotency_member ? "missing" : "set", op->idempotency_member ? "has" : "has no");
		return -1;
	}
	return 0;
}

int carillon_ops_check(const struct carillon_op_def *t, size_t n, char *err, size_t err_len)
{
	for (size_t i = 0; i < n; i++)
		if (!carillon_model_find(t[i].service, t[i].name)) {
			snprintf(err, err_len, "%s.%s: a row without an operation in the model", t[i].service, t[i].name);
			return -1;
		}
	const struct carillon_op *op;
	for (size_t i = 0; (op = carillon_model_op_at(i)); i++) {
		int count;
		const struct carillon_op_def *d = row_of(t, n, op, &count);
		if (!carillon_ops_service(op->service)) {
			snprintf(err, err_len, "%s.%s: no CARILLON_SERVICE line for %s", op->service, op->name, op->service);
			return -1;
		}
		if (count == 0 && unlisted_def(op->service))
			continue; /* answered "not implemented" */
		if (count != 1) {
			snprintf(err, err_len, "%s.%s: %d rows in the operation table (exactly one needed)", op->service,
				 op->name, count);
			return -1;
		}
		if (check_row(d, op, err, err_len))
			return -1;
		/* The router takes the first operation of a route: any other on it must be served alike. */
		const struct carillon_op *other;
		for (size_t j = 0; j < i && (other = carillon_model_op_at(j)); j++) {
			if (!same_route(op, other))
				continue;
			const struct carillon_op_def *od = row_of(t, n, other, &count);
			if (!od && unlisted_def(other->service))
				continue;
			if (!od || od->flags != d->flags || !d->sql_function || !od->sql_function ||
			    strcmp(od->sql_function, d->sql_function)) {
				snprintf(err, err_len, "%s.%s shares the route of %s.%s but is served differently",
					 op->service, op->name, other->service, other->name);
				return -1;
			}
		}
	}
	return 0;
}
