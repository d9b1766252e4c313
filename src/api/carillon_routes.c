/*
 * Carillon's own routes, outside the AWS models:
 *   GET  /healthz               200 once the database is reachable (no auth)
 *   POST /carillon/credentials  user-scoped temporary credentials, for the root or an admin key
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/model.h"
#include "../http/http_internal.h"

#define MIN_DURATION ((int)carillon_cfg.min_credential_seconds)
#define MAX_DURATION 43200
#define DEFAULT_DURATION 3600

struct mint_state {
	char user_arn[1601];
	long duration;
};

/* The token is bound to the user's generation: it dies with the user, even if the same ARN is created
 * again later. */
static int mint_for_row(struct carillon_req *r, const struct mint_state *st, const PGresult *row,
			struct carillon_temp_credentials *c)
{
	char *end;
	const char *text = PQgetvalue(row, 0, 0);
	long long gen = strtoll(text, &end, 10);
	if (PQgetisnull(row, 0, 0) || end == text || *end)
		return -1;
	return carillon_auth_mint(st->user_arn, r->principal.access_key_id, (int64_t)gen, r->t_ms, st->duration, c);
}

static void healthz(struct carillon_req *r)
{
	if (carillon_db_ready())
		carillon_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
	else
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The database is not reachable");
}

static void credentials_user_found(void *arg, const struct carillon_db_result *res)
{
	struct carillon_req *r = arg;
	struct mint_state *st = r->handler_state;
	r->handler_state = NULL;
	if (!res->res) {
		carillon_api_reply_db_error(r, res->sqlstate, res->message);
	} else if (PQntuples(res->res) != 1) {
		carillon_reply_error(r, CARILLON_ERR_NOT_FOUND, "AppInstanceUser %s not found", st->user_arn);
	} else {
		struct carillon_temp_credentials c;
		if (mint_for_row(r, st, res->res, &c))
			carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Cannot mint credentials");
		else
			carillon_reply_json(r, 200,
					    json_pack("{s:{s:s,s:s,s:s,s:f}}", "Credentials", "AccessKeyId",
						      c.access_key_id, "SecretAccessKey", c.secret_access_key,
						      "SessionToken", c.session_token, "Expiration",
						      (double)c.expires_ms / 1000.0));
	}
	free(st);
}

static void credentials(struct carillon_req *r)
{
	/* Header form only (allow_query_auth stays false): a presigned URL would not sign the body. */
	const char *names[128];
	struct carillon_sigv4_request sr = {
		.method = r->method,
		.raw_path = "/carillon/credentials",
		.raw_query = r->raw_query,
		.header = carillon_req_header,
		.header_ctx = r,
		.body = (const unsigned char *)r->body.data,
		.body_len = r->body.len,
		.header_names = names,
		.n_header_names = carillon_req_header_names(r, names, sizeof(names) / sizeof(names[0])),
	};
	char why[512];
	if (carillon_auth_verify(&sr, r->t_ms, &r->principal, why, sizeof(why)) != CARILLON_AUTH_OK) {
		carillon_reply_error(r, CARILLON_ERR_UNAUTHORIZED, "%s", why);
		return;
	}
	if (r->principal.kind != CARILLON_PRINCIPAL_ROOT && r->principal.kind != CARILLON_PRINCIPAL_ADMIN) {
		carillon_reply_error(r, CARILLON_ERR_FORBIDDEN, "Only the root credential or an admin key may mint user credentials");
		return;
	}
	json_t *in = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
	json_t *arn = json_object_get(in, "AppInstanceUserArn");
	json_t *dur = json_object_get(in, "DurationSeconds");
	long duration = dur ? (long)json_integer_value(dur) : DEFAULT_DURATION;
	int bad = !json_is_object(in) || !arn ||
		  carillon_model_validate("identity", "ChimeArn", arn, "AppInstanceUserArn", why, sizeof(why)) ||
		  (dur && (!json_is_integer(dur) || duration < MIN_DURATION || duration > MAX_DURATION));
	if (bad) {
		if (!json_is_object(in))
			snprintf(why, sizeof(why), "The request body must be a JSON object");
		else if (!arn)
			snprintf(why, sizeof(why), "AppInstanceUserArn is required");
		else if (dur && (!json_is_integer(dur) || duration < MIN_DURATION || duration > MAX_DURATION))
			snprintf(why, sizeof(why), "DurationSeconds must be an integer in %d..%d", MIN_DURATION,
				 MAX_DURATION);
		json_decref(in);
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "%s", why);
		return;
	}
	struct mint_state *st = carillon_xcalloc(1, sizeof(*st));
	snprintf(st->user_arn, sizeof(st->user_arn), "%s", json_string_value(arn));
	st->duration = duration;
	json_decref(in);
	r->handler_state = st;
	const char *params[1] = {st->user_arn};
	if (carillon_db_query("select generation from carillon.app_instance_users where arn = $1", 1, params,
			      credentials_user_found, r)) {
		free(st);
		r->handler_state = NULL;
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is overloaded; retry later");
	}
}

bool carillon_api_extra_route(struct carillon_req *r, const char *method, const char *path)
{
	if (!strcmp(path, "/healthz") && (!strcmp(method, "GET") || !strcmp(method, "HEAD"))) {
		healthz(r);
		return true;
	}
	if (!strcmp(path, "/carillon/credentials") && !strcmp(method, "POST")) {
		credentials(r);
		return true;
	}
	return false;
}
