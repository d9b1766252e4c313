/* carillon: serve | migrate | keys | root-key | config --defaults | --help | --version */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/api.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/embedded_pg.h"
#include "carillon/keys.h"
#include "carillon/log.h"
#include "carillon/model.h"
#include "carillon/privdrop.h"
#include "carillon/server.h"
#include "carillon/supervisor.h"

static void usage(void)
{
	printf("Carillon %s: a self-hosted gateway speaking the Amazon Chime SDK Messaging and Identity APIs.\n\n"
	       "Usage: carillon serve     run the gateway (applies migrations first)\n"
	       "       carillon migrate   apply the database migrations and exit\n"
	       "       carillon keys create [NAME] | list | revoke ACCESS_KEY_ID\n"
	       "                          manage admin access keys (the root key's rights)\n"
	       "       carillon root-key  print the root credential derived from the master key\n"
	       "       carillon config --defaults\n"
	       "                          print a config file listing every setting with its default\n"
	       "       carillon --help | --version\n\n",
	       CARILLON_VERSION);
	carillon_config_usage();
}

/* Started as root, `carillon serve` becomes CARILLON_USER once its port is bound (privdrop.h). */
static int choose_run_user(void)
{
	struct carillon_os_user u;
	if (geteuid() != 0)
		return 0;
	if (carillon_privdrop_lookup(carillon_cfg.run_as_user, true, &u))
		return -1;
	carillon_privdrop_set_target(&u);
	return 0;
}

/* The database to use: the configured URL, or the embedded cluster (started here). As root, files
 * of the data directory are made by the user the cluster runs as, which `carillon serve` becomes:
 * CARILLON_USER, or the owner of a cluster an ordinary user made earlier. */
static int resolve_database(char *conninfo, size_t len, bool *embedded, bool serve)
{
	*embedded = !carillon_cfg.database_url || !*carillon_cfg.database_url;
	if (!*embedded) {
		snprintf(conninfo, len, "%s", carillon_cfg.database_url);
		if (serve && choose_run_user())
			return -1;
		return carillon_config_finish(false);
	}
	carillon_embedded_pg_set_os_user(carillon_cfg.run_as_user);
	if (carillon_embedded_pg_start(carillon_cfg.data_dir, conninfo, len))
		return -1;
	struct carillon_os_user u;
	if (carillon_embedded_pg_os_user(&u) == 0) {
		if (strcmp(u.name, carillon_cfg.run_as_user))
			log_notice("running as %s, the owner of the existing cluster in %s, not CARILLON_USER=%s", u.name,
				   carillon_cfg.data_dir, carillon_cfg.run_as_user);
		carillon_privdrop_set_target(&u);
	}
	if (carillon_config_finish(true)) {
		carillon_embedded_pg_stop();
		return -1;
	}
	return 0;
}

/* The generated root secret is shown once, when it is created, and only on a terminal: never into
 * a log file or a journal. `carillon root-key` prints it again on demand. */
static void print_root_secret(void)
{
	if (!carillon_cfg.root_key_generated)
		return;
	if (carillon_cfg.master_key_created && isatty(STDOUT_FILENO))
		printf("  root secret key:   %s\n"
		       "                     (shown this once; `carillon root-key` prints it again)\n",
		       carillon_cfg.root_secret_access_key);
	else
		printf("  root secret key:   not shown%s; `carillon root-key` (with the same settings) prints it\n",
		       carillon_cfg.master_key_created ? " (stdout is not a terminal)" : "");
}

static void print_banner(bool embedded, int workers)
{
	printf("Carillon %s is serving.\n"
	       "  endpoint:          http://%s\n"
	       "  region:            %s\n"
	       "  account:           %s\n"
	       "  root access key:   %s\n",
	       CARILLON_VERSION, carillon_cfg.listen, carillon_cfg.region, carillon_cfg.account_id,
	       carillon_cfg.root_access_key_id);
	print_root_secret();
	if (embedded)
		printf("  database:          embedded PostgreSQL under %s/postgres\n", carillon_cfg.data_dir);
	if (workers > 1)
		printf("  workers:           %d processes sharing the port\n", workers);
	printf("Try: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=<secret> aws chime-sdk-identity list-app-instances "
	       "--endpoint-url http://%s --region %s\n",
	       carillon_cfg.root_access_key_id, carillon_cfg.listen, carillon_cfg.region);
	fflush(stdout);
}

/* `carillon root-key`: the root credential of this deployment, from its master key. Touches no
 * database and generates nothing. */
static int cmd_root_key(void)
{
	bool embedded = !carillon_cfg.database_url || !*carillon_cfg.database_url;
	if (carillon_config_keys(embedded, false))
		return 1;
	if (!carillon_cfg.root_key_generated) {
		printf("AccessKeyId:     %s\n(the root key is configured through CARILLON_ROOT_SECRET_ACCESS_KEY, "
		       "not derived from the master key)\n",
		       carillon_cfg.root_access_key_id);
		return 0;
	}
	printf("AccessKeyId:     %s\nSecretAccessKey: %s\n", carillon_cfg.root_access_key_id,
	       carillon_cfg.root_secret_access_key);
	return 0;
}

enum serve_mode { MODE_SERVE, MODE_MIGRATE, MODE_KEYS };

/* --workers N (N > 1): one listening socket per worker slot, opened here and kept by the parent
 * (supervisor.c says why); worker i serves socket i and closes the others. */
struct workers {
	const char *conninfo;
	int *fds;
	int n;
};

static int run_worker(int index, void *arg)
{
	struct workers *w = arg;
	for (int i = 0; i < w->n; i++)
		if (i != index)
			close(w->fds[i]);
	carillon_server_use_listen_fd(w->fds[index], index);
	int rc = carillon_server_run(w->conninfo);
	free(w->fds);
	carillon_api_free();
	carillon_model_free();
	return rc;
}

static int serve_workers(const char *conninfo, int n)
{
	struct workers w = {conninfo, calloc((size_t)n, sizeof(int)), n};
	int rc = 1;
	if (!w.fds)
		return 1;
	for (int i = 0; i < n; i++)
		w.fds[i] = -1;
	for (int i = 0; i < n; i++)
		if ((w.fds[i] = carillon_server_listen_socket()) < 0)
			goto out;
	rc = carillon_supervise(n, run_worker, &w);
out:
	for (int i = 0; i < n; i++)
		if (w.fds[i] >= 0)
			close(w.fds[i]);
	free(w.fds);
	return rc;
}

static int cmd_serve(enum serve_mode mode, int argc, char **argv)
{
	char conninfo[4096];
	bool embedded;
	if (resolve_database(conninfo, sizeof(conninfo), &embedded, mode == MODE_SERVE))
		return 1;
	int rc = 1;
	if (carillon_db_migrate(conninfo))
		goto out;
	if (mode == MODE_MIGRATE) {
		rc = 0;
		goto out;
	}
	if (mode == MODE_KEYS) {
		rc = carillon_keys_cli(argc, argv, conninfo);
		goto out;
	}
	if (carillon_model_init())
		goto out;
	if (carillon_api_init())
		goto out;
	carillon_http_set_dispatcher(carillon_api_dispatch);
	int workers = carillon_workers_wanted();
	print_banner(embedded, workers);
	rc = workers > 1 ? serve_workers(conninfo, workers) : carillon_server_run(conninfo);
	carillon_api_free();
	carillon_model_free();
out:
	if (embedded)
		carillon_embedded_pg_stop();
	return rc;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "carillon: libsodium failed to initialise\n");
		return 1;
	}
	if (carillon_config_load(&argc, argv))
		return 2;
	const char *cmd = argc > 1 ? argv[1] : NULL;
	if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage();
		return cmd ? 0 : 2;
	}
	if (!strcmp(cmd, "--version")) {
		printf("carillon %s\n", CARILLON_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "keys")) {
		const char *sub = argc > 2 ? argv[2] : "";
		bool valid = !strcmp(sub, "create") || !strcmp(sub, "list") || (!strcmp(sub, "revoke") && argc > 3);
		if (!valid) { /* before touching any database */
			fprintf(stderr, !strcmp(sub, "revoke") ? "usage: carillon keys revoke ACCESS_KEY_ID\n"
							       : "usage: carillon keys create [NAME] | list | revoke ACCESS_KEY_ID\n");
			return 2;
		}
		return cmd_serve(MODE_KEYS, argc - 2, argv + 2);
	}
	if (!strcmp(cmd, "config")) {
		if (argc != 3 || strcmp(argv[2], "--defaults")) {
			fprintf(stderr, "usage: carillon config --defaults\n");
			return 2;
		}
		carillon_config_print_defaults();
		return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
	}
	if (argc > 2) {
		fprintf(stderr, "carillon: unexpected argument '%s' (see --help)\n", argv[2]);
		return 2;
	}
	if (!strcmp(cmd, "serve"))
		return cmd_serve(MODE_SERVE, 0, NULL);
	if (!strcmp(cmd, "migrate"))
		return cmd_serve(MODE_MIGRATE, 0, NULL);
	if (!strcmp(cmd, "root-key"))
		return cmd_root_key();
	fprintf(stderr, "carillon: unknown command '%s' (see --help)\n", cmd);
	return 2;
}
