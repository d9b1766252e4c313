/* carillon: serve | migrate | --help | --version */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "carillon/api.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/embedded_pg.h"
#include "carillon/keys.h"
#include "carillon/log.h"
#include "carillon/model.h"
#include "carillon/server.h"

static void usage(void)
{
	printf("Carillon %s: a self-hosted gateway speaking the Amazon Chime SDK Messaging and Identity APIs.\n\n"
	       "Usage: carillon serve     run the gateway (applies migrations first)\n"
	       "       carillon migrate   apply the database migrations and exit\n"
	       "       carillon keys create [NAME] | list | revoke ACCESS_KEY_ID\n"
	       "                          manage admin access keys (the root key's rights)\n"
	       "       carillon --help | --version\n\n",
	       CARILLON_VERSION);
	carillon_config_usage();
}

/* The database to use: the configured URL, or the embedded cluster (started here). */
static int resolve_database(char *conninfo, size_t len, bool *embedded)
{
	*embedded = !carillon_cfg.database_url || !*carillon_cfg.database_url;
	if (!*embedded) {
		snprintf(conninfo, len, "%s", carillon_cfg.database_url);
		return 0;
	}
	if (carillon_config_finish(true))
		return -1;
	return carillon_embedded_pg_start(carillon_cfg.data_dir, conninfo, len);
}

static void print_banner(bool embedded)
{
	printf("Carillon %s is serving.\n"
	       "  endpoint:          http://%s\n"
	       "  region:            %s\n"
	       "  account:           %s\n"
	       "  root access key:   %s\n",
	       CARILLON_VERSION, carillon_cfg.listen, carillon_cfg.region, carillon_cfg.account_id,
	       carillon_cfg.root_access_key_id);
	if (carillon_cfg.root_key_generated)
		printf("  root secret key:   %s\n", carillon_cfg.root_secret_access_key);
	if (embedded)
		printf("  database:          embedded PostgreSQL under %s/postgres\n", carillon_cfg.data_dir);
	printf("Try: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=<secret> aws chime-sdk-identity list-app-instances "
	       "--endpoint-url http://%s --region %s\n",
	       carillon_cfg.root_access_key_id, carillon_cfg.listen, carillon_cfg.region);
	fflush(stdout);
}

enum serve_mode { MODE_SERVE, MODE_MIGRATE, MODE_KEYS };

static int cmd_serve(enum serve_mode mode, int argc, char **argv)
{
	char conninfo[4096];
	bool embedded;
	if (resolve_database(conninfo, sizeof(conninfo), &embedded))
		return 1;
	if (!embedded && carillon_config_finish(false))
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
	print_banner(embedded);
	rc = carillon_server_run(conninfo);
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
	if (argc > 2) {
		fprintf(stderr, "carillon: unexpected argument '%s' (see --help)\n", argv[2]);
		return 2;
	}
	if (!strcmp(cmd, "serve"))
		return cmd_serve(MODE_SERVE, 0, NULL);
	if (!strcmp(cmd, "migrate"))
		return cmd_serve(MODE_MIGRATE, 0, NULL);
	fprintf(stderr, "carillon: unknown command '%s' (see --help)\n", cmd);
	return 2;
}
