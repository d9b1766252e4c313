/*
 * From a complete request to its handler: route (the models), authenticate (carillon_auth_request),
 * validate (the model), authorise (rights), then the handler registered for the operation's row of
 * the operation table. GET /healthz is the one route outside the models (no authentication).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/rights.h"
#include "api_internal.h"

/* What the api keeps per request (the http layer's request data). */
struct api_call {
	struct carillon_route_match match;
	const struct carillon_op_def *def;
	json_t *input;
	struct carillon_principal principal;
	void *handler_state;
};

/* Handlers by model operation index (the model stays read-only). */
static carillon_api_handler_fn *handlers;
static const struct carillon_op_def **defs;
static size_t n_handlers;

static struct api_call *call_of(const struct carillon_req *r) { return carillon_req_data(r); }

const struct carillon_op *carillon_req_op(const struct carillon_req *r)
{
	struct api_call *c = call_of(r);
	return c ? c->match.op : NULL;
}
const struct carillon_op_def *carillon_req_op_def(const struct carillon_req *r)
{
	struct api_call *c = call_of(r);
	return c ? c->def : NULL;
}
json_t *carillon_req_input(const struct carillon_req *r) { return call_of(r)->input; }
const struct carillon_principal *carillon_req_principal(const struct carillon_req *r)
{
	return &call_of(r)->principal;
}
void *carillon_req_handler_state(const struct carillon_req *r) { return call_of(r)->handler_state; }
void carillon_req_set_handler_state(struct carillon_req *r, void *state) { call_of(r)->handler_state = state; }

static void call_free(void *data)
{
	struct api_call *c = data;
	carillon_route_match_free(&c->match);
	json_decref(c->input);
	free(c);
}

static void healthz(struct carillon_req *r)
{
	if (carillon_db_ready())
		carillon_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
	else
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The database is not reachable");
}

/* The SigV4 view of a request: header form or presigned query, over the route's canonical path. */
static void sigv4_of(struct carillon_req *r, const char *raw_path, struct carillon_sigv4_request *sr,
		     const char **names, size_t max_names)
{
	size_t body_len;
	const char *body = carillon_req_body(r, &body_len);
	*sr = (struct carillon_sigv4_request){
	    .header_names = names,
	    .n_header_names = carillon_req_header_names(r, names, max_names),
	    .method = carillon_req_method(r),
	    .raw_path = raw_path,
	    .raw_query = carillon_req_raw_query(r),
	    .header = carillon_req_header,
	    .header_ctx = r,
	    .body = (const unsigned char *)body,
	    .body_len = body_len,
	    .signing_name = call_of(r)->match.op->signing_name,
	};
}

static bool authenticate(struct carillon_req *r, struct api_call *c)
{
	const char *names[128];
	struct carillon_sigv4_request sr;
	sigv4_of(r, c->match.raw_path, &sr, names, sizeof(names) / sizeof(names[0]));
	char why[512] = "The request signature is not valid";
	unsigned flags = c->def && (c->def->flags & CARILLON_OP_UNMETERED) ? 0 : CARILLON_AUTH_METERED;
	switch (carillon_auth_request(&sr, carillon_req_time_ms(r), flags, &c->principal, why, sizeof(why))) {
	case CARILLON_AUTH_OK:
		return true;
	case CARILLON_AUTH_THROTTLED:
		carillon_reply_error(r, CARILLON_ERR_THROTTLED, "%s", why);
		return false;
	default:
		carillon_reply_error(r, CARILLON_ERR_UNAUTHORIZED, "%s", why);
		return false;
	}
}

static bool authorise_admin(struct carillon_req *r, struct api_call *c)
{
	if (c->principal.kind == CARILLON_PRINCIPAL_ROOT || c->principal.kind == CARILLON_PRINCIPAL_ADMIN)
		return true;
	carillon_reply_error(r, CARILLON_ERR_FORBIDDEN, "Only the root credential or an admin key may call %s",
			     c->match.op->name);
	return false;
}

static bool authorise(struct carillon_req *r, struct api_call *c)
{
	char why[256];
	if ((c->def->flags & CARILLON_OP_ADMIN) && !authorise_admin(r, c))
		return false;
	if (carillon_rights_check(c->match.op, &c->principal, c->input, why, sizeof(why))) {
		carillon_reply_error(r, CARILLON_ERR_FORBIDDEN, "%s", why);
		return false;
	}
	return true;
}

void carillon_api_dispatch(struct carillon_req *r)
{
	const char *method = carillon_req_method(r), *path = carillon_req_path(r);
	if (!strcmp(path, "/healthz") && (!strcmp(method, "GET") || !strcmp(method, "HEAD"))) {
		carillon_req_set_operation(r, "none", "healthz");
		healthz(r);
		return;
	}
	struct api_call *c = carillon_xcalloc(1, sizeof(*c));
	carillon_req_set_data(r, c, call_free);
	/* A service whose routes share a prefix (Pinpoint's /v1/) answers even a path no operation
	 * matches there the way its clients read errors. */
	const struct carillon_service_def *svc = carillon_ops_service_of_path(path);
	if (svc)
		carillon_req_set_error_style(r, svc->err_style);
	size_t n_query;
	const struct carillon_kv *query = carillon_req_query(r, &n_query);
	if (carillon_route(method, path, query, n_query, &c->match)) {
		/* The path is client bytes (decoded by lws: any byte but NUL): quoted sanitised and short. */
		char quoted[256];
		carillon_reply_error(r, CARILLON_ERR_UNKNOWN_OPERATION, "No operation matches %s %s", method,
				     carillon_req_path_for_message(r, quoted, sizeof(quoted)));
		return;
	}
	const struct carillon_op *op = c->match.op;
	carillon_req_set_operation(r, op->service, op->name);
	/* From here on the request is the service's: its errors are named and shaped as its SDKs expect. */
	svc = carillon_ops_service(op->service);
	carillon_req_set_error_style(r, svc ? svc->err_style : CARILLON_ERR_STYLE_CHIME);
	c->def = op->index < n_handlers && defs[op->index] ? defs[op->index] : carillon_ops_def_of(op->service, op->name);
	if (c->def && (c->def->flags & CARILLON_OP_NOT_IMPLEMENTED)) {
		/* A caller the operation's traits let through learns that it is not implemented; anyone
		 * else gets the refusal every operation gives. */
		if (authenticate(r, c) && (!(c->def->flags & CARILLON_OP_ADMIN) || authorise_admin(r, c)))
			carillon_api_not_implemented(r);
		return;
	}
	if (!c->def || !handlers[op->index]) {
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "%s is not served by this server", op->name);
		return;
	}
	if (!authenticate(r, c))
		return;
	/* The admin-only check comes before the input is read, as it always did for credentials. */
	if ((c->def->flags & CARILLON_OP_ADMIN) && !authorise(r, c))
		return;
	char err[512] = "Invalid request";
	size_t body_len;
	const char *body = carillon_req_body(r, &body_len);
	c->input = carillon_model_input(op, &c->match, query, n_query, carillon_req_header, r, body, body_len, err,
					sizeof(err));
	if (!c->input) {
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	if (!(c->def->flags & CARILLON_OP_ADMIN) && !authorise(r, c))
		return;
	log_debug("%s %s.%s by %s", carillon_req_id(r), op->service, op->name, c->principal.access_key_id);
	handlers[op->index](r);
}

void carillon_api_not_implemented(struct carillon_req *r)
{
	const struct carillon_op *op = carillon_req_op(r);
	const struct carillon_service_def *svc = op ? carillon_ops_service(op->service) : NULL;
	carillon_reply_error(r, CARILLON_ERR_NOT_IMPLEMENTED, "Carillon does not implement the %s operation %s",
			     svc ? svc->title : "API", op ? op->name : "");
}

void carillon_api_register(const char *service, const char *name, carillon_api_handler_fn fn)
{
	const struct carillon_op *op = carillon_model_find(service, name);
	const struct carillon_op_def *def = carillon_ops_find(service, name);
	if (!op || !def || op->index >= n_handlers) {
		log_err("api: %s.%s is not an operation of both the models and the operation table", service, name);
		abort();
	}
	handlers[op->index] = fn;
	defs[op->index] = def;
}

void carillon_api_register_service(const char *service, carillon_api_handler_fn fn)
{
	size_t n;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].service, service) && t[i].sql_function)
			carillon_api_register(t[i].service, t[i].name, fn);
}

int carillon_api_registry_open(void)
{
	size_t n;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	char err[512];
	if (carillon_ops_check(t, n, err, sizeof(err))) {
		log_err("api: the operation table does not match the models: %s", err);
		return -1;
	}
	n_handlers = carillon_model_op_count();
	handlers = carillon_xcalloc(n_handlers ? n_handlers : 1, sizeof(*handlers));
	defs = carillon_xcalloc(n_handlers ? n_handlers : 1, sizeof(*defs));
	return 0;
}

int carillon_api_registry_complete(void)
{
	for (size_t i = 0; i < n_handlers; i++)
		if (!handlers[i]) {
			const struct carillon_op *op = carillon_model_op_at(i);
			const struct carillon_op_def *def = carillon_ops_def_of(op->service, op->name);
			if (def && (def->flags & CARILLON_OP_NOT_IMPLEMENTED))
				continue; /* not implemented: answered by the dispatcher */
			log_err("api: no handler registered for %s.%s", op->service, op->name);
			return -1;
		}
	return 0;
}

void carillon_api_free(void)
{
	free(handlers);
	free(defs);
	handlers = NULL;
	defs = NULL;
	n_handlers = 0;
}
