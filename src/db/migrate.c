/*
 * Applying the embedded migrations: ordered, recorded, idempotent, safe with several nodes.
 *
 * No superuser needed: a role that owns the database, or has CREATE on it, or merely owns the
 * schemas carillon and carillon_api made for it by an administrator, can apply them. So nothing
 * here creates what already exists (CREATE SCHEMA IF NOT EXISTS still needs CREATE on the
 * database), and the bookkeeping lives in the carillon schema, not in public (where only the
 * database owner may create tables since PostgreSQL 15).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/db.h"
#include "carillon/log.h"
#include "carillon/migrations.h"
#include "carillon/util.h"

#define MIGRATION_LOCK_KEY "7061726c696f6e" /* any constant shared by all nodes */

static int exec_ok(PGconn *pg, const char *sql, const char *what)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		log_err("migration %s: %s", what, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Versioned migrations (migrations/...) apply once; repeatable ones (api/...) whenever their
 * checksum changes. */
static bool is_applied(PGconn *pg, const char *name, const char *checksum)
{
	const char *params[2] = {name, checksum};
	PGresult *r = PQexecParams(pg,
				   "select 1 from carillon.migrations where name = $1"
				   " and (name like 'migrations/%' or checksum = $2)",
				   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		log_err("migration bookkeeping: %s", PQresultErrorMessage(r));
	bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	return yes;
}

/* SHA-256 of the text, in hex (libsodium's; the same value the bookkeeping has always stored). */
static void checksum_of(const struct carillon_migration *m, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)m->start, (unsigned long long)(m->end - m->start));
	sodium_bin2hex(out, 65, h, sizeof(h));
}

static int apply_one(PGconn *pg, const struct carillon_migration *m, const char *checksum)
{
	char *sql = carillon_xstrndup(m->start, (size_t)(m->end - m->start));
	const char *params[2] = {m->name, checksum};
	int rc = exec_ok(pg, "begin", m->name);
	if (!rc)
		rc = exec_ok(pg, sql, m->name);
	if (!rc) {
		PGresult *r = PQexecParams(pg,
					   "insert into carillon.migrations(name, checksum) values ($1, $2)"
					   " on conflict (name) do update set checksum = $2, applied_at = now()",
					   2, NULL, params, NULL, NULL, 0);
		rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
		PQclear(r);
	}
	exec_ok(pg, rc ? "rollback" : "commit", m->name);
	free(sql);
	if (!rc)
		log_notice("applied migration %s", m->name);
	return rc;
}

/* The carillon schema and its bookkeeping table, each made only if missing; a deployment from before
 * has public.carillon_migrations, which is moved. */
static const char bookkeeping_sql[] =
	"do $$ begin"
	"  if to_regnamespace('carillon') is null then create schema carillon; end if;"
	"  if to_regclass('carillon.migrations') is null then"
	"    if to_regclass('public.carillon_migrations') is not null then"
	"      alter table public.carillon_migrations set schema carillon;"
	"      alter table carillon.carillon_migrations rename to migrations;"
	"    else"
	"      create table carillon.migrations (name text primary key, checksum text,"
	"                                        applied_at timestamptz not null default now());"
	"    end if;"
	"  end if;"
	"end $$";

static PGconn *connect_with_retry(const char *conninfo)
{
	for (int attempt = 0; attempt < 60; attempt++) {
		PGconn *pg = PQconnectdb(conninfo);
		if (PQstatus(pg) == CONNECTION_OK)
			return pg;
		if (attempt == 0 || attempt % 10 == 9)
			log_warn("waiting for the database: %s", PQerrorMessage(pg));
		PQfinish(pg);
		usleep(500 * 1000);
	}
	return NULL;
}

int carillon_db_migrate(const char *conninfo)
{
	PGconn *pg = connect_with_retry(conninfo);
	if (!pg) {
		log_err("cannot reach the database to apply migrations");
		return -1;
	}
	int rc = exec_ok(pg, "set client_min_messages = warning", "setup");
	if (!rc)
		rc = exec_ok(pg, "select pg_advisory_lock(x'" MIGRATION_LOCK_KEY "'::bigint)", "lock");
	if (!rc)
		rc = exec_ok(pg, bookkeeping_sql, "bookkeeping");
	if (!rc)
		rc = exec_ok(pg, "set check_function_bodies = off", "setup");
	for (const struct carillon_migration *m = carillon_migrations; !rc && m->name; m++) {
		char checksum[65];
		checksum_of(m, checksum);
		if (!is_applied(pg, m->name, checksum))
			rc = apply_one(pg, m, checksum);
	}
	exec_ok(pg, "select pg_advisory_unlock_all()", "unlock");
	PQfinish(pg);
	return rc;
}
