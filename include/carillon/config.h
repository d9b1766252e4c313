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
	char *root_secret_access_key_file;
	char *master_key_hex;         /* 64 hex chars */
	char *master_key_file;
	char *public_endpoint;        /* host[:port] returned by GetMessagingSessionEndpoint */
	char *log_level;
	char *log_format;             /* "text" or "json" */
	char *log_file;               /* "" -> stderr; reopened on SIGHUP */
	char *metrics_listen;         /* host:port of GET /metrics; "" -> off */
	char *tls_cert;               /* PEM certificate (chain): serve TLS (https/wss) when set */
	char *tls_key;
	char *cors_origins;           /* "*" (any), a comma list of origins, or "none" (CORS off) */
	long max_body_bytes;
	long db_pool_size;
	long clock_skew_seconds;
	long http_keepalive_seconds;
	long shutdown_grace_seconds;
	char *run_as_user;            /* as root: drop to this user after binding */
	long header_timeout_seconds;
	long max_headers;
	long max_header_bytes;
	long header_pool;
	long io_timeout_seconds;
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
	long write_in_flight;         /* group-commit transactions in flight at once, per lane */
	long write_lanes;             /* write lanes (connections committing writes at once) */
	long write_queue_max;         /* writes waiting for a batch (503 above) */
	long db_queue_max;            /* statements waiting for a pool connection (503 above) */
	long db_pipeline_depth;       /* statements in flight on one pool connection (pipeline mode) */
	/* resume (since-position) bounds */
	long resume_max_events;
	long resume_max_bytes;
	long min_credential_seconds;  /* smallest DurationSeconds of POST /carillon/credentials */
	/* real time: the listener, the websocket sessions' queues, pages and keepalive */
	long listener_batch;          /* events read per query by each node's listener */
	long listener_poll_ms;        /* fallback read of the log when no notification comes */
	long session_queue_max;       /* frames waiting to be written to one session (1013 above) */
	long session_queue_bytes;     /* bytes of those frames (1013 above) */
	long session_pending_max;     /* events buffered for a session waiting for its snapshot (1013 above) */
	long snapshot_page;           /* channels of a connect's snapshot read and joined per query */
	long resume_page;             /* events of a resume gap read per query */
	long ws_ping_seconds;         /* ping a session silent this long */
	long ws_idle_seconds;         /* close (1001) a session silent this long */
	long connect_rate_max_users;  /* users tracked at once by the connect rate limit */
	long node_heartbeat_seconds;  /* the session registry: how often a node says it is alive */
	long node_alive_seconds;      /* sessions of a node silent this long stop counting */
	long node_forget_seconds;     /* a node silent this long is deleted with its sessions */
	long fanout_slice;            /* sessions an event is delivered to per loop turn */
	long workers;                 /* serve: worker processes (0: one per core; 1: no supervisor) */
	/* outbound HTTP (outbound.h) */
	char *outbound_ca_file;       /* extra trusted CA certificates (PEM); "" -> the system store only */
	long outbound_max_in_flight;
	long outbound_max_queued;
	long outbound_timeout_ms;
	long outbound_connect_timeout_ms;
	long outbound_max_response_bytes;
	/* the outbox (outbox.h) and push delivery (push.h) */
	long outbox_batch;            /* rows claimed per query */
	long outbox_lease_seconds;    /* a claim's lease */
	long outbox_max_age_seconds;  /* older rows are dropped */
	long outbox_max_attempts;     /* deliveries tried per row */
	long outbox_poll_ms;          /* fallback claim without a notification */
	long outbox_retry_base_ms;    /* first retry delay (doubled per attempt, jittered) */
	long outbox_retry_max_ms;     /* longest retry delay */
	long push_max_in_flight;      /* pushes delivering at once */
	char *apns_url;               /* APNs production base URL */
	char *apns_sandbox_url;       /* APNs sandbox base URL */
	/* channel flows (src/flows/flows.c) */
	char *lambda_url;             /* Lambda Invoke endpoint; "" -> https://lambda.<region>.amazonaws.com */
	char *flow_webhooks;          /* "functionArn=url,..." */
	long flow_callback_deadline_seconds;
	long flow_max_attempts;
	long flow_retry_ms;
	/* janitor and retention */
	long janitor_interval_ms;     /* how often the janitor runs */
	long retention_batch;         /* messages deleted per retention statement */
	long retention_day_seconds;   /* one RetentionDays day (86400; tests shorten it) */
	/* streaming export to Kinesis */
	char *kinesis_url;            /* "" -> https://kinesis.<region>.amazonaws.com */
	long streaming_batch;         /* records per PutRecords call (<= 500) */
	long streaming_poll_ms;       /* fallback read of the log */
	long streaming_retry_ms;      /* first backoff after failed records */
	long streaming_lease_seconds; /* exporter lease length */
	/* push (push.h) */
	char *fcm_url;                /* FCM HTTP v1 base URL */

	/* derived at startup, not settings */
	unsigned char master_key[32];
	bool root_key_generated;
	bool master_key_created;      /* generated by this process: the deployment's first start */
};

extern struct carillon_config carillon_cfg;

/* Fill defaults, then the config file named by --config or CARILLON_CONFIG, then the
 * environment, then flags. Consumes recognised flags from argv (argc updated).
 * Returns 0, or -1 after printing the problem. */
int carillon_config_load(int *argc, char **argv);

/* Print the settings table for --help. */
void carillon_config_usage(void);

/* Print a config file (the --config format) listing every setting, commented out, with its default
 * and its help: `carillon config --defaults`, installed as /etc/carillon/carillon.conf. */
void carillon_config_print_defaults(void);

/* Resolve the master key (setting, key file, or generated into <data_dir>/master.key for the
 * embedded quickstart, by the user Carillon runs as: privdrop.h) and the root credential (derived
 * from the master key when unset). */
int carillon_config_finish(bool embedded);

/* The master key and root credential alone; a missing <data_dir>/master.key is generated only
 * with may_generate. Key files accessible to group or others are refused. */
int carillon_config_keys(bool embedded, bool may_generate);

#endif
