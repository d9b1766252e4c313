/* From a complete request to its handler: route, authenticate, validate, authorise. */
#include <stdio.h>
#include <string.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/log.h"
#include "carillon/ratelimit.h"
#include "carillon/rights.h"
#include "../http/http_internal.h"

/* Live buckets at most: every credential that called in the last few seconds (a bucket that has
 * refilled is dropped); beyond it new credentials are refused until the sweep frees room. */
#define RATE_MAX_CREDENTIALS 100000

static struct carillon_ratelimit request_rate;
static bool request_rate_ready;

/* The per-credential request budget (CARILLON_REQUEST_RATE_PER_CREDENTIAL, off by default). Checked
 * only after the signature: an unauthenticated flood costs no more than the signature check and
 * cannot spend another caller's budget. */
static bool request_allowed(const struct carillon_req *r)
{
	if (carillon_cfg.request_rate_per_credential <= 0)
		return true;
	if (!request_rate_ready) {
		carillon_ratelimit_init(&request_rate, carillon_cfg.request_rate_per_credential,
					carillon_cfg.request_burst_per_credential, RATE_MAX_CREDENTIALS);
		request_rate_ready = true;
	}
	return carillon_ratelimit_take(&request_rate, r->principal.access_key_id, r->t_ms);
}

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
	const char *names[128];
	struct carillon_sigv4_request sr = {
		.header_names = names,
		.n_header_names = carillon_req_header_names(r, names, sizeof(names) / sizeof(names[0])),
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
	if (!request_allowed(r)) {
		carillon_reply_error(r, CARILLON_ERR_THROTTLED,
				     "Rate exceeded for this access key (%ld requests a second, bursts of %ld); retry later",
				     carillon_cfg.request_rate_per_credential, carillon_cfg.request_burst_per_credential);
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
