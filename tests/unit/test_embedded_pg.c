/*
 * The embedded PostgreSQL, for real: initdb + start in a temporary directory (whose name has a
 * space and a single quote in it), connect with the returned conninfo, stop, restart, adopt an
 * orphaned server. Skipped when no PostgreSQL server binaries are installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "carillon/embedded_pg.h"
#include "pg_fixture.h"

static char tmpdir[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/carillon pg 'test'.XXXXXX", base);
	if (!mkdtemp(tmpdir))
		return -1;
	/* As root the cluster runs as an unprivileged user, which must be able to get through. */
	return chmod(tmpdir, 0711);
}

/* After a failed test: no server may outlive it (SIGQUIT: immediate shutdown). */
static void kill_leftover(const char *sub)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s/postgres/data/postmaster.pid", tmpdir, sub);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	long pid = 0;
	if (fscanf(f, "%ld", &pid) == 1 && pid > 1) {
		kill((pid_t)pid, SIGQUIT);
		for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++)
			usleep(50 * 1000);
	}
	fclose(f);
}

static int teardown(void **state)
{
	(void)state;
	carillon_embedded_pg_stop();
	kill_leftover("data");
	kill_leftover("orphan");
	rm_tree(tmpdir);
	tmpdir[0] = '\0';
	return 0;
}

static char *query1(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(conn));
	char *v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
	PQclear(res);
	return v;
}

static void assert_query(PGconn *conn, const char *sql, const char *want)
{
	char *got = query1(conn, sql);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static PGconn *connect_ok(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		fail_msg("connect %s: %s", conninfo, PQerrorMessage(conn));
	return conn;
}

static bool server_running(const char *data_dir)
{
	char pid[PATH_MAX + 64];
	snprintf(pid, sizeof(pid), "%s/postgres/data/postmaster.pid", data_dir);
	return access(pid, F_OK) == 0;
}

static void test_start_connect_stop_restart(void **state)
{
	(void)state;
	if (!have_postgres())
		skip();
	char data_dir[PATH_MAX + 16];
	snprintf(data_dir, sizeof(data_dir), "%s/data", tmpdir); /* created by start */
	char conninfo[2 * PATH_MAX];

	assert_int_equal(carillon_embedded_pg_start(data_dir, conninfo, sizeof(conninfo)), 0);
	assert_true(server_running(data_dir));
	assert_non_null(strstr(conninfo, "dbname=carillon"));
	assert_non_null(strstr(conninfo, "user=carillon_app"));
	assert_non_null(strstr(conninfo, "\\'test\\'")); /* the quote in the path is escaped */

	/* A second call while running hands back the same conninfo. */
	char again[2 * PATH_MAX];
	assert_int_equal(carillon_embedded_pg_start(data_dir, again, sizeof(again)), 0);
	assert_string_equal(conninfo, again);

	PGconn *conn = connect_ok(conninfo);
	assert_query(conn, "SELECT current_database()", "carillon");
	assert_query(conn, "SELECT current_user", "carillon_app");
	/* Carillon serves through an ordinary role that owns its database, not the superuser. */
	assert_query(conn, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user", "false");
	assert_query(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'carillon'", "carillon_app");
	assert_query(conn, "SHOW listen_addresses", "");
	assert_query(conn, "SHOW synchronous_commit", "on");
	assert_query(conn, "SHOW fsync", "on");
	/* The write path's settings (carillon.conf): a buffer pool of 128-512 MB, a background writer
	 * that keeps up with a write-heavy log. */
	assert_query(conn, "SELECT (setting::bigint * 8 BETWEEN 131072 AND 524288)::text FROM pg_settings WHERE name = 'shared_buffers'", "true");
	assert_query(conn, "SHOW bgwriter_lru_maxpages", "1000");
	assert_query(conn, "SHOW bgwriter_delay", "20ms");
	assert_query(conn, "SHOW max_wal_size", "4GB");
	assert_query(conn, "SHOW server_encoding", "UTF8");
	assert_query(conn, "SHOW unix_socket_permissions", "0700");
	free(query1(conn, "CREATE TABLE t (v text)"));
	free(query1(conn, "INSERT INTO t VALUES ('kept')"));
	PQfinish(conn);

	struct stat st;
	char base[PATH_MAX + 32];
	snprintf(base, sizeof(base), "%s/postgres", data_dir);
	assert_int_equal(stat(base, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	if (geteuid() == 0)
		assert_int_not_equal(st.st_uid, 0); /* the cluster belongs to an unprivileged user */

	carillon_embedded_pg_stop();
	assert_false(server_running(data_dir));
	carillon_embedded_pg_stop(); /* no-op */

	/* Restart: no initdb, the data is still there. */
	assert_int_equal(carillon_embedded_pg_start(data_dir, conninfo, sizeof(conninfo)), 0);
	conn = connect_ok(conninfo);
	assert_query(conn, "SELECT v FROM t", "kept");
	PQfinish(conn);
	carillon_embedded_pg_stop();
	assert_false(server_running(data_dir));
}

/* The conninfo of the superuser "carillon" kept for maintenance. */
static void superuser_conninfo(const char *conninfo, char *out, size_t len)
{
	snprintf(out, len, "%s", conninfo);
	char *u = strstr(out, "user=carillon_app");
	assert_non_null(u);
	u[strlen("user=carillon")] = '\0';
}

/* A cluster from before the serving role: the database and its objects belong to the superuser.
 * The next start hands them over, and the data stays. */
static void test_converts_superuser_owned_cluster(void **state)
{
	(void)state;
	if (!have_postgres())
		skip();
	char data_dir[PATH_MAX + 16];
	snprintf(data_dir, sizeof(data_dir), "%s/data", tmpdir);
	char conninfo[2 * PATH_MAX], admin[2 * PATH_MAX];
	assert_int_equal(carillon_embedded_pg_start(data_dir, conninfo, sizeof(conninfo)), 0);
	superuser_conninfo(conninfo, admin, sizeof(admin));
	PGconn *conn = connect_ok(admin);
	assert_query(conn, "SELECT current_user", "carillon");
	/* What an older Carillon left: everything owned by the superuser. */
	free(query1(conn, "ALTER DATABASE carillon OWNER TO carillon"));
	free(query1(conn, "CREATE SCHEMA old"));
	free(query1(conn, "CREATE TABLE old.t (id serial PRIMARY KEY, v text)"));
	free(query1(conn, "INSERT INTO old.t (v) VALUES ('kept')"));
	free(query1(conn, "CREATE SEQUENCE old.s"));
	free(query1(conn, "CREATE FUNCTION old.f() RETURNS int LANGUAGE sql AS 'SELECT 1'"));
	free(query1(conn, "CREATE TABLE public.carillon_migrations (name text PRIMARY KEY)"));
	PQfinish(conn);
	carillon_embedded_pg_stop();

	assert_int_equal(carillon_embedded_pg_start(data_dir, conninfo, sizeof(conninfo)), 0);
	conn = connect_ok(conninfo);
	assert_query(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'carillon'", "carillon_app");
	assert_query(conn, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'old'", "carillon_app");
	assert_query(conn,
		     "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class "
		     "WHERE oid IN ('old.t'::regclass, 'old.t_id_seq'::regclass, 'old.s'::regclass, "
		     "'public.carillon_migrations'::regclass)",
		     "carillon_app");
	assert_query(conn, "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'old.f()'::regprocedure", "carillon_app");
	/* The serving role can now use and change all of it. */
	free(query1(conn, "INSERT INTO old.t (v) VALUES ('new')"));
	assert_query(conn, "SELECT string_agg(v, ',' ORDER BY id) FROM old.t", "kept,new");
	free(query1(conn, "ALTER TABLE old.t ADD COLUMN w int"));
	free(query1(conn, "DROP SCHEMA old CASCADE"));
	PQfinish(conn);
	carillon_embedded_pg_stop();
}

static void test_adopts_orphan(void **state)
{
	(void)state;
	if (!have_postgres())
		skip();
	char data_dir[PATH_MAX + 16];
	snprintf(data_dir, sizeof(data_dir), "%s/orphan", tmpdir);
	char conninfo[2 * PATH_MAX];

	/* A Carillon that starts the server and dies without stopping it. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(carillon_embedded_pg_start(data_dir, conninfo, sizeof(conninfo)) == 0 ? 0 : 1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(server_running(data_dir));

	/* The next one reuses the running server, and stops it at the end; a server process may have
	 * SIGCHLD and SIGPIPE ignored by then. */
	void (*old_chld)(int) = signal(SIGCHLD, SIG_IGN);
	void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(carillon_embedded_pg_start(data_dir, conninfo, sizeof(conninfo)), 0);
	PGconn *conn = connect_ok(conninfo);
	assert_query(conn, "SELECT current_database()", "carillon");
	PQfinish(conn);
	carillon_embedded_pg_stop();
	assert_false(server_running(data_dir));
	signal(SIGCHLD, old_chld);
	signal(SIGPIPE, old_pipe);
}

static void test_refuses_unsafe_paths(void **state)
{
	(void)state;
	char conninfo[1024];
	char bad[PATH_MAX + 16];
	snprintf(bad, sizeof(bad), "%s/a$b", tmpdir);
	assert_int_equal(carillon_embedded_pg_start(bad, conninfo, sizeof(conninfo)), -1);
	snprintf(bad, sizeof(bad), "%s/a\"b", tmpdir);
	assert_int_equal(carillon_embedded_pg_start(bad, conninfo, sizeof(conninfo)), -1);
	assert_int_equal(carillon_embedded_pg_start("", conninfo, sizeof(conninfo)), -1);

	/* The unix socket path would not fit in sun_path. */
	if (!have_postgres())
		return;
	char longdir[PATH_MAX];
	int n = snprintf(longdir, sizeof(longdir), "%s/", tmpdir);
	memset(longdir + n, 'x', 120);
	longdir[n + 120] = '\0';
	assert_int_equal(carillon_embedded_pg_start(longdir, conninfo, sizeof(conninfo)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_connect_stop_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_converts_superuser_owned_cluster, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopts_orphan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_unsafe_paths, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
