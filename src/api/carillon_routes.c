/*
 * Carillon's own operations (model/carillon.json), served like every other: routed, authenticated
 * (carillon_auth_request), validated against their model and authorised by the dispatcher.
 *   CreateCredentials  POST /carillon/credentials: user-scoped temporary credentials (root or admin key)
 * GET /healthz is the dispatcher's one route outside the models (no authentication).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/api.h"
#include "carillon/auth.h"
#include "carillon/config.h"
#include "carillon/db.h"

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
	return carillon_auth_mint(st->user_arn, carillon_req_principal(r)->access_key_id, (int64_t)gen,
				  carillon_req_time_ms(r), st->duration, c);
}

static void credentials_user_found(void *arg, const struct carillon_db_result *res)
{
	struct carillon_req *r = arg;
	struct mint_state *st = carillon_req_handler_state(r);
	carillon_req_set_handler_state(r, NULL);
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

/* CreateCredentials: the input is validated (AppInstanceUserArn a ChimeArn, DurationSeconds at most
 * 43200) and the caller is the root or an admin key; the user must exist. The model's floor for
 * DurationSeconds is 1: the real one is the setting CARILLON_MIN_CREDENTIAL_SECONDS (900, as STS). */
static void create_credentials(struct carillon_req *r)
{
	json_t *in = carillon_req_input(r);
	json_t *dur = json_object_get(in, "DurationSeconds");
	struct mint_state *st = carillon_xcalloc(1, sizeof(*st));
	snprintf(st->user_arn, sizeof(st->user_arn), "%s", json_string_value(json_object_get(in, "AppInstanceUserArn")));
	st->duration = dur ? (long)json_integer_value(dur) : DEFAULT_DURATION;
	if (st->duration < carillon_cfg.min_credential_seconds) {
		free(st);
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "DurationSeconds must be an integer in %ld..%d",
				     carillon_cfg.min_credential_seconds, MAX_DURATION);
		return;
	}
	carillon_req_set_handler_state(r, st);
	const char *params[1] = {st->user_arn};
	if (carillon_db_query("select generation from carillon.app_instance_users where arn = $1", 1, params,
			      credentials_user_found, r)) {
		free(st);
		carillon_req_set_handler_state(r, NULL);
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is overloaded; retry later");
	}
}

void carillon_api_carillon_init(void) { carillon_api_register("carillon", "CreateCredentials", create_credentials); }
