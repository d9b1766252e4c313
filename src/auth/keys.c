/* Admin access keys: the CLI that manages them and the in-memory cache the server verifies against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "carillon/auth.h"
#include "carillon/db.h"
#include "carillon/keys.h"
#include "carillon/log.h"
#include "carillon/util.h"

#define KEY_PURPOSE "carillon admin key secret v1"

struct admin_key {
	char id[32];
	char secret[64];
};

static struct admin_key *keys;
static size_t n_keys;
static uv_timer_t keys_timer;
static bool keys_busy, keys_running;

const char *carillon_keys_secret(const char *access_key_id)
{
	for (size_t i = 0; i < n_keys; i++)
		if (!strcmp(keys[i].id, access_key_id))
			return keys[i].secret;
	return NULL;
}

static void keys_loaded(void *arg, const struct carillon_db_result *r)
{
	keys_busy = false;
	if (!r->res) {
		log_warn("admin keys: refresh failed: %s", r->message);
		return;
	}
	int n = PQntuples(r->res);
	struct admin_key *fresh = carillon_xcalloc((size_t)n, sizeof(*fresh));
	size_t m = 0;
	for (int i = 0; i < n; i++) {
		size_t len;
		char *secret = carillon_open(KEY_PURPOSE, PQgetvalue(r->res, i, 1), &len);
		const char *id = PQgetvalue(r->res, i, 0);
		if (!secret || len >= sizeof(fresh[m].secret) || strlen(id) >= sizeof(fresh[m].id)) {
			log_warn("admin key %s cannot be opened with this master key", id);
			free(secret);
			continue;
		}
		snprintf(fresh[m].id, sizeof(fresh[m].id), "%s", id);
		memcpy(fresh[m].secret, secret, len + 1);
		sodium_memzero(secret, len);
		free(secret);
		m++;
	}
	if (keys)
		sodium_memzero(keys, n_keys * sizeof(*keys));
	free(keys);
	keys = fresh;
	n_keys = m;
}

static void keys_tick(uv_timer_t *t)
{
	if (keys_busy || !carillon_db_ready())
		return;
	keys_busy = !carillon_db_query(
		"select access_key_id, secret_sealed from carillon.access_keys where revoked_at is null", 0, NULL,
		keys_loaded, NULL);
}

void carillon_keys_start(uv_loop_t *loop, unsigned refresh_ms)
{
	uv_timer_init(loop, &keys_timer);
	uv_timer_start(&keys_timer, keys_tick, 0, refresh_ms);
	keys_running = true;
}

static void keys_closed(uv_handle_t *h) { (void)h; }

void carillon_keys_stop(void)
{
	if (keys_running) {
		uv_timer_stop(&keys_timer);
		uv_close((uv_handle_t *)&keys_timer, keys_closed);
		keys_running = false;
	}
	if (keys)
		sodium_memzero(keys, n_keys * sizeof(*keys));
	free(keys);
	keys = NULL;
	n_keys = 0;
}

/* ---- the CLI (blocking) ---- */

static int cli_exec(PGconn *pg, const char *sql, int n, const char *const *params, PGresult **out)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		fprintf(stderr, "carillon keys: %s", PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

static int keys_create(PGconn *pg, const char *name)
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char id[21] = "AKIA", secret[41];
	for (int i = 4; i < 20; i++)
		id[i] = b32[randombytes_uniform(32)];
	id[20] = '\0';
	for (int i = 0; i < 40; i++)
		secret[i] = b64[randombytes_uniform(64)];
	secret[40] = '\0';
	char *sealed = carillon_seal(KEY_PURPOSE, secret, strlen(secret));
	const char *params[3] = {id, sealed, name};
	int rc = cli_exec(pg, "insert into carillon.access_keys (access_key_id, secret_sealed, name) values ($1, $2, $3)",
			  3, params, NULL);
	free(sealed);
	if (!rc)
		printf("AccessKeyId:     %s\nSecretAccessKey: %s\n(the secret is shown once; every node accepts the key "
		       "within a few seconds)\n",
		       id, secret);
	sodium_memzero(secret, sizeof(secret));
	return rc ? 1 : 0;
}

static int keys_list(PGconn *pg)
{
	PGresult *r;
	if (cli_exec(pg,
		     "select access_key_id, name, to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'),"
		     " coalesce(to_char(revoked_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), 'active')"
		     " from carillon.access_keys order by created_at",
		     0, NULL, &r))
		return 1;
	printf("%-22s %-24s %-26s %s\n", "ACCESS KEY ID", "NAME", "CREATED", "STATUS");
	for (int i = 0; i < PQntuples(r); i++)
		printf("%-22s %-24s %-26s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
		       PQgetvalue(r, i, 3));
	PQclear(r);
	return 0;
}

static int keys_revoke(PGconn *pg, const char *id)
{
	PGresult *r;
	const char *params[1] = {id};
	if (cli_exec(pg, "update carillon.access_keys set revoked_at = now() where access_key_id = $1 and revoked_at is null",
		     1, params, &r))
		return 1;
	int n = atoi(PQcmdTuples(r));
	PQclear(r);
	if (!n) {
		fprintf(stderr, "carillon keys: no active key %s\n", id);
		return 1;
	}
	printf("revoked %s\n", id);
	return 0;
}

int carillon_keys_cli(int argc, char **argv, const char *conninfo)
{
	const char *sub = argc > 0 ? argv[0] : "";
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke")) {
		fprintf(stderr, "usage: carillon keys create [NAME] | list | revoke ACCESS_KEY_ID\n");
		return 2;
	}
	if (!strcmp(sub, "revoke") && argc < 2) {
		fprintf(stderr, "usage: carillon keys revoke ACCESS_KEY_ID\n");
		return 2;
	}
	PGconn *pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "carillon keys: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return 1;
	}
	int rc = !strcmp(sub, "create") ? keys_create(pg, argc > 1 ? argv[1] : "")
		 : !strcmp(sub, "list") ? keys_list(pg)
					: keys_revoke(pg, argv[1]);
	PQfinish(pg);
	return rc;
}
