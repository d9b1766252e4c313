/*
 * Settings: one declarative table (src/config.c) drives the environment, the command-line flags,
 * the optional config file, --help and validation.
 */
#ifndef CARILLON_CONFIG_H
#define CARILLON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct carillon_config {
	char *listen;                 /* host:port */
	char *database_url;           /* NULL/"" -> embedded PostgreSQL */
	char *data_dir;
	char *region;
	char *account_id;
	char *root_access_key_id;
	char *root_secret_access_key;
	char *master_key_hex;         /* 64 hex chars */
	char *master_key_file;
	char *public_endpoint;        /* host[:port] returned by GetMessagingSessionEndpoint */
	char *log_level;
	char *tls_cert;               /* PEM certificate (chain): serve TLS (https/wss) when set */
	char *tls_key;
	long max_body_bytes;
	long db_pool_size;
	long clock_skew_seconds;
	long http_keepalive_seconds;
	long shutdown_grace_seconds;
	char *run_as_user;            /* as root: drop to this user after binding */
	long header_timeout_seconds;
	long max_headers;
	long max_query_args;
	/* quotas (Chime's defaults) */
	long max_sessions_per_user;
	long max_endpoints_per_user;
	long max_channel_memberships;
	long max_channel_moderators;
	long max_app_instance_admins;
	long max_channel_flows;
	/* rate limits (token buckets per process; rate 0: off) */
	long connect_rate_per_user;
	long connect_burst_per_user;
	long request_rate_per_credential;
	long request_burst_per_credential;
	long rate_max_credentials;    /* live request-rate buckets (credentials) at most */
	/* queues and batches of the REST write path */
	long write_batch_max;         /* requests per group-commit batch */
	long write_queue_max;         /* writes waiting for a batch (503 above) */
	long db_queue_max;            /* statements waiting for a pool connection (503 above) */
	/* resume (since-position) bounds */
	long resume_max_events;
	long resume_max_bytes;

	/* derived at startup, not settings */
	unsigned char master_key[32];
	bool root_key_generated;
};

extern struct carillon_config carillon_cfg;

/* Fill defaults, then the config file named by --config or CARILLON_CONFIG, then the
 * environment, then flags. Consumes recognised flags from argv (argc updated).
 * Returns 0, or -1 after printing the problem. */
int carillon_config_load(int *argc, char **argv);

/* Print the settings table for --help. */
void carillon_config_usage(void);

/* Resolve the master key (setting, key file, or generated into <data_dir>/master.key for the
 * embedded quickstart) and the root credential (generated and printed when unset). */
int carillon_config_finish(bool embedded);

#endif
