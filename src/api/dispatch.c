/* From a complete request to its handler: route, authenticate, validate, authorise. */
#include <stdio.h>
#include <string.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/log.h"
#include "carillon/rights.h"
#include "../http/http_internal.h"

static void not_implemented(struct carillon_req *r)
{
	carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "%s is not implemented by this server yet",
			     r->match.op->name);
}

void carillon_api_dispatch(struct carillon_req *r)
{
	if (carillon_api_extra_route(r, r->method, r->path))
		return;
	if (carillon_route(r->method, r->path, r->query, r->n_query, &r->match)) {
		/* The path is client bytes (decoded by lws: any byte but NUL): quoted sanitised and short. */
		char path[256];
		carillon_reply_error(r, CARILLON_ERR_UNKNOWN_OPERATION, "No operation matches %s %s", r->method,
				     carillon_req_path_for_message(r, path, sizeof(path)));
		return;
	}
	struct carillon_sigv4_request sr = {
		.method = r->method,
		.raw_path = r->match.raw_path,
		.raw_query = r->raw_query,
		.header = carillon_req_header,
		.header_ctx = r,
		.body = (const unsigned char *)r->body.data,
		.body_len = r->body.len,
	};
	char why[256] = "The request signature is not valid";
	if (carillon_auth_verify(&sr, r->t_ms, &r->principal, why, sizeof(why)) != CARILLON_AUTH_OK) {
		carillon_reply_error(r, CARILLON_ERR_UNAUTHORIZED, "%s", why);
		return;
	}
	char err[512] = "Invalid request";
	const struct carillon_op *op = r->match.op;
	r->input = carillon_model_input(op, &r->match, r->query, r->n_query, carillon_req_header, r, r->body.data,
					r->body.len, err, sizeof(err));
	if (!r->input) {
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	if (carillon_rights_check(op, &r->principal, r->input, why, sizeof(why))) {
		carillon_reply_error(r, CARILLON_ERR_FORBIDDEN, "%s", why);
		return;
	}
	log_debug("%s %s by %s", r->id, op->name, r->principal.access_key_id);
	(op->handler ? op->handler : not_implemented)(r);
}
