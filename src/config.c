/* Settings table, parsing and defaults. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "carillon/config.h"
#include "carillon/log.h"
#include "carillon/privdrop.h"
#include "carillon/util.h"

struct carillon_config carillon_cfg;

enum cfg_type { CFG_STR, CFG_LONG };

struct cfg_key {
	const char *env;      /* CARILLON_LISTEN; the flag is --listen */
	enum cfg_type type;
	size_t offset;
	const char *def;
	long min, max;
	const char *help;
};

#define STR(field, env, def, help) {env, CFG_STR, offsetof(struct carillon_config, field), def, 0, 0, help}
#define NUM(field, env, def, lo, hi, help) \
	{env, CFG_LONG, offsetof(struct carillon_config, field), def, lo, hi, help}

static const struct cfg_key cfg_keys[] = {
	STR(listen, "CARILLON_LISTEN", "127.0.0.1:8080", "address to serve REST and websocket on (host:port)"),
	STR(database_url, "CARILLON_DATABASE_URL", "", "libpq connection string or URL; empty: embedded PostgreSQL"),
	STR(data_dir, "CARILLON_DATA_DIR", "carillon-data",
	    "directory for the embedded PostgreSQL and generated keys (as root: /var/lib/carillon; "
	    "under systemd: $STATE_DIRECTORY)"),
	STR(region, "CARILLON_REGION", "us-east-1", "AWS region in ARNs and in the SigV4 scope"),
	STR(account_id, "CARILLON_ACCOUNT_ID", "123456789012", "12-digit account id in ARNs"),
	STR(root_access_key_id, "CARILLON_ROOT_ACCESS_KEY_ID", "", "root access key id (generated when unset)"),
	STR(root_secret_access_key, "CARILLON_ROOT_SECRET_ACCESS_KEY", "",
	    "root secret access key (environment or config file only: never a flag)"),
	STR(root_secret_access_key_file, "CARILLON_ROOT_SECRET_ACCESS_KEY_FILE", "",
	    "file holding the root secret access key (mode 0600)"),
	STR(master_key_hex, "CARILLON_MASTER_KEY", "",
	    "64 hex chars sealing tokens and secrets, same on every node (environment or config file only)"),
	STR(master_key_file, "CARILLON_MASTER_KEY_FILE", "", "file holding the master key in hex (mode 0600)"),
	STR(public_endpoint, "CARILLON_PUBLIC_ENDPOINT", "", "host[:port] clients use for websocket sessions (default: listen address)"),
	STR(log_level, "CARILLON_LOG_LEVEL", "notice", "error, warn, notice, info (access and session lines) or debug"),
	STR(log_format, "CARILLON_LOG_FORMAT", "text", "text, or json (one JSON object a line)"),
	STR(log_file, "CARILLON_LOG_FILE", "", "append the log to this file instead of stderr (reopened on SIGHUP)"),
	STR(metrics_listen, "CARILLON_METRICS_LISTEN", "",
	    "ip:port serving GET /metrics (Prometheus), never the public port; empty: off"),
	STR(tls_cert, "CARILLON_TLS_CERT", "", "PEM certificate: serve https/wss on the listen address (else plain)"),
	STR(tls_key, "CARILLON_TLS_KEY", "", "PEM private key of CARILLON_TLS_CERT"),
	STR(cors_origins, "CARILLON_CORS_ORIGINS", "*",
	    "origins whose pages may call the API (CORS): * for any, a comma list of scheme://host[:port], or none"),
	NUM(max_body_bytes, "CARILLON_MAX_BODY_BYTES", "1048576", 1024, 64L << 20, "largest request body accepted (413 above)"),
	NUM(db_pool_size, "CARILLON_DB_POOL_SIZE", "4", 1, 64, "database connections per process"),
	NUM(clock_skew_seconds, "CARILLON_CLOCK_SKEW_SECONDS", "300", 1, 3600, "SigV4 X-Amz-Date tolerance"),
	NUM(http_keepalive_seconds, "CARILLON_HTTP_KEEPALIVE_SECONDS", "60", 1, 3600, "idle HTTP keep-alive"),
	NUM(shutdown_grace_seconds, "CARILLON_SHUTDOWN_GRACE_SECONDS", "10", 0, 600, "time to finish requests on SIGTERM"),
	STR(run_as_user, "CARILLON_USER", "carillon", "as root: the unprivileged user to run as after binding"),
	NUM(header_timeout_seconds, "CARILLON_HEADER_TIMEOUT_SECONDS", "5", 1, 300,
	    "time allowed for a complete request head; slower clients are closed"),
	NUM(max_headers, "CARILLON_MAX_HEADERS", "64", 8, 1024, "header lines per request (431 above)"),
	NUM(max_header_bytes, "CARILLON_MAX_HEADER_BYTES", "16384", 4096, 1048576,
	    "bytes of one request head (lws closes the connection above)"),
	NUM(header_pool, "CARILLON_HEADER_POOL", "4096", 16, 1000000,
	    "request heads parsed at once (each holds a header table of CARILLON_MAX_HEADER_BYTES)"),
	NUM(io_timeout_seconds, "CARILLON_IO_TIMEOUT_SECONDS", "30", 1, 3600,
	    "time a request body or a response may stall before the connection is closed"),
	NUM(max_query_args, "CARILLON_MAX_QUERY_ARGS", "64", 8, 64,
	    "query arguments per request (400 above; lws 4.1 closes heads of ~100 header lines + arguments)"),
	NUM(max_sessions_per_user, "CARILLON_MAX_SESSIONS_PER_USER", "10", 1, 100000,
	    "concurrent messaging sessions per AppInstanceUser, over every node (Chime: 10)"),
	NUM(max_endpoints_per_user, "CARILLON_MAX_ENDPOINTS_PER_USER", "10", 1, 100000,
	    "AppInstanceUserEndpoints per user (Chime: 10)"),
	NUM(max_channel_memberships, "CARILLON_MAX_CHANNEL_MEMBERSHIPS", "10000", 1, 100000000,
	    "memberships per channel, elastic channels excepted (Chime: 10,000)"),
	NUM(max_channel_moderators, "CARILLON_MAX_CHANNEL_MODERATORS", "1000", 1, 1000000,
	    "moderators per channel (Chime: 1,000)"),
	NUM(max_app_instance_admins, "CARILLON_MAX_APP_INSTANCE_ADMINS", "100", 1, 1000000,
	    "AppInstanceAdmins per AppInstance (Chime: 100)"),
	NUM(max_channel_flows, "CARILLON_MAX_CHANNEL_FLOWS", "100", 1, 1000000,
	    "channel flows per AppInstance (Chime: 100)"),
	NUM(connect_rate_per_user, "CARILLON_CONNECT_RATE_PER_USER", "0", 0, 1000000,
	    "websocket connects per second per user and process (token bucket); 0: off"),
	NUM(connect_burst_per_user, "CARILLON_CONNECT_BURST_PER_USER", "20", 1, 1000000,
	    "connects a user may make at once before CARILLON_CONNECT_RATE_PER_USER applies"),
	NUM(request_rate_per_credential, "CARILLON_REQUEST_RATE_PER_CREDENTIAL", "0", 0, 100000000,
	    "REST requests per second per access key and process (token bucket; 429 above); 0: off"),
	NUM(request_burst_per_credential, "CARILLON_REQUEST_BURST_PER_CREDENTIAL", "200", 1, 100000000,
	    "requests an access key may make at once before CARILLON_REQUEST_RATE_PER_CREDENTIAL applies"),
	NUM(rate_max_credentials, "CARILLON_RATE_MAX_CREDENTIALS", "100000", 16, 100000000,
	    "access keys tracked at once by the request rate limit; new ones beyond it get 429 until buckets refill"),
	NUM(write_batch_max, "CARILLON_WRITE_BATCH_MAX", "50", 1, 64,
	    "writes per group-commit transaction (each a subtransaction; PostgreSQL caches 64 per backend)"),
	NUM(write_in_flight, "CARILLON_WRITE_IN_FLIGHT", "1", 1, 64,
	    "group-commit transactions in flight at once per write lane; with 1 the next batch collects while one "
	    "commits (a lane's batches run one after the other anyway: more in flight means smaller batches)"),
	NUM(write_lanes, "CARILLON_WRITE_LANES", "1", 1, 8,
	    "write lanes: each channel's writes go to one lane, in order; lanes commit at once on their own "
	    "database connections (at most CARILLON_DB_POOL_SIZE - 1)"),
	NUM(write_queue_max, "CARILLON_WRITE_QUEUE_MAX", "10000", 1, 10000000,
	    "writes waiting for a group-commit batch, per write lane; beyond: 503 ServiceUnavailableException"),
	NUM(db_queue_max, "CARILLON_DB_QUEUE_MAX", "20000", 1, 10000000,
	    "statements waiting for a database connection; beyond: 503 ServiceUnavailableException"),
	NUM(db_pipeline_depth, "CARILLON_DB_PIPELINE_DEPTH", "2", 1, 64,
	    "statements in flight on one database connection (libpq pipeline mode); 1: one at a time"),
	NUM(resume_max_events, "CARILLON_RESUME_MAX_EVENTS", "10000", 0, 1000000,
	    "events a resuming session may catch up on (since-position); beyond: CARILLON_RESYNC_REQUIRED"),
	NUM(resume_max_bytes, "CARILLON_RESUME_MAX_BYTES", "4194304", 65536, 1L << 30,
	    "bytes of events a resuming session may catch up on; beyond: CARILLON_RESYNC_REQUIRED"),
	NUM(min_credential_seconds, "CARILLON_MIN_CREDENTIAL_SECONDS", "900", 1, 43200,
	    "smallest DurationSeconds POST /carillon/credentials accepts (AWS STS: 900)"),
	NUM(listener_batch, "CARILLON_LISTENER_BATCH", "500", 1, 100000,
	    "events each node's listener reads from the log per query"),
	NUM(listener_poll_ms, "CARILLON_LISTENER_POLL_MS", "1000", 10, 60000,
	    "the listener reads the log this often even without a notification (a lost NOTIFY costs at most this)"),
	NUM(session_queue_max, "CARILLON_SESSION_QUEUE_MAX", "1024", 64, 1000000,
	    "frames waiting to be written to one websocket session; beyond: close 1013 \"Too slow\""),
	NUM(session_queue_bytes, "CARILLON_SESSION_QUEUE_BYTES", "4194304", 65536, 1L << 30,
	    "bytes of frames waiting for one websocket session; beyond: close 1013 \"Too slow\""),
	NUM(session_pending_max, "CARILLON_SESSION_PENDING_MAX", "4096", 1, 1000000,
	    "events buffered for a session while its snapshot is read; beyond: close 1013 \"Busy\""),
	NUM(snapshot_page, "CARILLON_SNAPSHOT_PAGE", "500", 1, 100000,
	    "channels of a connecting user read and joined per query (one loop turn each)"),
	NUM(resume_page, "CARILLON_RESUME_PAGE", "100", 1, 100000,
	    "events of a resume gap read per query (one loop turn each)"),
	NUM(ws_ping_seconds, "CARILLON_WS_PING_SECONDS", "30", 1, 3600,
	    "ping a websocket session that sent nothing for this long"),
	NUM(ws_idle_seconds, "CARILLON_WS_IDLE_SECONDS", "75", 2, 7200,
	    "close (1001 \"No pong\") a websocket session that sent nothing for this long; above CARILLON_WS_PING_SECONDS"),
	NUM(connect_rate_max_users, "CARILLON_CONNECT_RATE_MAX_USERS", "100000", 16, 100000000,
	    "users tracked at once by the connect rate limit; a new one beyond it gets 429 until buckets refill"),
	NUM(node_heartbeat_seconds, "CARILLON_NODE_HEARTBEAT_SECONDS", "3", 1, 600,
	    "how often a node refreshes its row in the session registry (carillon.ws_nodes)"),
	NUM(node_alive_seconds, "CARILLON_NODE_ALIVE_SECONDS", "10", 2, 3600,
	    "the sessions of a node not heard from for this long stop counting against the session quota"),
	NUM(node_forget_seconds, "CARILLON_NODE_FORGET_SECONDS", "120", 3, 86400,
	    "a node not heard from for this long is deleted from the registry with its sessions"),
	NUM(fanout_slice, "CARILLON_FANOUT_SLICE", "64", 1, 1000000,
	    "sessions an event is delivered to per loop turn (a larger fan-out yields to REST and other I/O between slices)"),
	NUM(workers, "CARILLON_WORKERS", "0", 0, 256,
	    "serve: worker processes sharing the port, supervised by one parent; 0: one per core, 1: a single process"),
	STR(outbound_ca_file, "CARILLON_OUTBOUND_CA_FILE", "",
	    "PEM file of CA certificates trusted for outbound HTTPS in addition to the system store"),
	NUM(outbound_max_in_flight, "CARILLON_OUTBOUND_MAX_IN_FLIGHT", "256", 1, 100000,
	    "outbound HTTP requests running at once per process (HTTP/2 streams share connections)"),
	NUM(outbound_max_queued, "CARILLON_OUTBOUND_MAX_QUEUED", "10000", 0, 10000000,
	    "outbound HTTP requests waiting for a slot; beyond: refused at once"),
	NUM(outbound_timeout_ms, "CARILLON_OUTBOUND_TIMEOUT_MS", "10000", 100, 600000,
	    "default time allowed for one outbound HTTP request, from its start"),
	NUM(outbound_connect_timeout_ms, "CARILLON_OUTBOUND_CONNECT_TIMEOUT_MS", "5000", 100, 600000,
	    "time allowed for an outbound connection's TCP and TLS handshake"),
	NUM(outbound_max_response_bytes, "CARILLON_OUTBOUND_MAX_RESPONSE_BYTES", "65536", 1024, 64L << 20,
	    "largest outbound HTTP response body kept; larger fails the request"),
	NUM(outbox_batch, "CARILLON_OUTBOX_BATCH", "200", 1, 10000,
	    "outbox rows each node claims per query (per kind, within its free delivery slots)"),
	NUM(outbox_lease_seconds, "CARILLON_OUTBOX_LEASE_SECONDS", "60", 2, 86400,
	    "a claimed outbox row is another node's to retry after this long (above the outbound timeout)"),
	NUM(outbox_max_age_seconds, "CARILLON_OUTBOX_MAX_AGE_SECONDS", "86400", 1, 30L * 86400,
	    "an outbox row (push, flow call) older than this is dropped instead of delivered"),
	NUM(outbox_max_attempts, "CARILLON_OUTBOX_MAX_ATTEMPTS", "20", 1, 1000,
	    "deliveries of one outbox row tried before it is dropped"),
	NUM(outbox_poll_ms, "CARILLON_OUTBOX_POLL_MS", "1000", 10, 600000,
	    "the outbox is read this often without a notification (retries fall due, lost NOTIFYs)"),
	NUM(outbox_retry_base_ms, "CARILLON_OUTBOX_RETRY_BASE_MS", "1000", 1, 3600000,
	    "first retry delay of an outbox row; doubled per attempt, with jitter"),
	NUM(outbox_retry_max_ms, "CARILLON_OUTBOX_RETRY_MAX_MS", "300000", 1, 86400000,
	    "longest retry delay (backoff and Retry-After alike)"),
	NUM(push_max_in_flight, "CARILLON_PUSH_MAX_IN_FLIGHT", "1000", 1, 100000,
	    "push notifications being delivered at once per process"),
	STR(apns_url, "CARILLON_APNS_URL", "https://api.push.apple.com", "APNs production base URL"),
	STR(apns_sandbox_url, "CARILLON_APNS_SANDBOX_URL", "https://api.sandbox.push.apple.com",
	    "APNs sandbox (development) base URL"),
	STR(lambda_url, "CARILLON_LAMBDA_URL", "",
	    "Lambda Invoke endpoint for channel-flow processors (default https://lambda.<region>.amazonaws.com)"),
	STR(flow_webhooks, "CARILLON_FLOW_WEBHOOKS", "",
	    "processor function ARN=URL pairs, comma-separated: POST the invocation there instead of Lambda"),
	NUM(flow_callback_deadline_seconds, "CARILLON_FLOW_CALLBACK_DEADLINE_SECONDS", "172800", 1, 31536000,
	    "time a channel-flow processor has to call back (Chime: 48 hours); later: ForbiddenException"),
	NUM(flow_max_attempts, "CARILLON_FLOW_MAX_ATTEMPTS", "5", 1, 100,
	    "invocations of a processor tried before its FallbackAction applies"),
	NUM(flow_retry_ms, "CARILLON_FLOW_RETRY_MS", "1000", 10, 3600000,
	    "wait before the 2nd invocation of a processor; doubled for each further one (at most 5 minutes)"),
	/* janitor and retention (src/janitor.c, sql/api/janitor.sql) */
	NUM(janitor_interval_ms, "CARILLON_JANITOR_INTERVAL_MS", "60000", 100, 86400000,
	    "how often each node runs the janitor: expirations, retention, log trimming"),
	NUM(retention_batch, "CARILLON_RETENTION_BATCH", "1000", 1, 100000,
	    "messages the retention sweep deletes per statement (one short transaction each)"),
	NUM(retention_day_seconds, "CARILLON_RETENTION_DAY_SECONDS", "86400", 1, 86400,
	    "length of a RetentionDays day in seconds; only tests change it"),
	/* streaming export (src/streaming/streaming.c) */
	STR(kinesis_url, "CARILLON_KINESIS_URL", "",
	    "Kinesis endpoint for streaming export; empty: https://kinesis.<CARILLON_REGION>.amazonaws.com"),
	NUM(streaming_batch, "CARILLON_STREAMING_BATCH", "500", 1, 500,
	    "records per Kinesis PutRecords call (Kinesis allows 500)"),
	NUM(streaming_poll_ms, "CARILLON_STREAMING_POLL_MS", "1000", 10, 600000,
	    "the exporter reads the event log this often even without a notification"),
	NUM(streaming_retry_ms, "CARILLON_STREAMING_RETRY_MS", "1000", 10, 600000,
	    "first wait before retrying records Kinesis did not take (doubles up to 30 s)"),
	NUM(streaming_lease_seconds, "CARILLON_STREAMING_LEASE_SECONDS", "15", 2, 3600,
	    "an exporting node that has not renewed its lease for this long is replaced by another"),
	STR(fcm_url, "CARILLON_FCM_URL", "https://fcm.googleapis.com",
	    "FCM HTTP v1 base URL (POST <url>/v1/projects/<project>/messages:send)"),
};

#define N_KEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static void flag_name(const struct cfg_key *k, char *out, size_t len)
{
	size_t i = 0;
	const char *s = k->env + strlen("CARILLON_");
	for (; *s && i + 1 < len; s++)
		out[i++] = *s == '_' ? '-' : (char)tolower((unsigned char)*s);
	out[i] = '\0';
}

static int cfg_set(const struct cfg_key *k, const char *value, const char *origin)
{
	char *base = (char *)&carillon_cfg;
	if (k->type == CFG_STR) {
		char **slot = (char **)(base + k->offset);
		free(*slot);
		*slot = carillon_xstrdup(value);
		return 0;
	}
	char *end;
	errno = 0;
	long v = strtol(value, &end, 10);
	if (errno || end == value || *end || v < k->min || v > k->max) {
		fprintf(stderr, "carillon: %s from %s must be a number in %ld..%ld\n", k->env, origin, k->min, k->max);
		return -1;
	}
	*(long *)(base + k->offset) = v;
	return 0;
}

static const struct cfg_key *cfg_find_env(const char *env)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(cfg_keys[i].env, env))
			return &cfg_keys[i];
	return NULL;
}

static bool cfg_value_is_secret(const struct cfg_key *k, const char *value);

/* KEY=VALUE lines, '#' comments; keys are the environment names. A file others may read must not
 * hold secrets. */
static int cfg_load_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "carillon: cannot read config file %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	bool shared = fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO));
	char line[4096];
	int rc = 0, lineno = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = carillon_trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr, "carillon: %s:%d: expected KEY=VALUE\n", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		const struct cfg_key *k = cfg_find_env(carillon_trim(s));
		if (!k) {
			fprintf(stderr, "carillon: %s:%d: unknown setting %s\n", path, lineno, s);
			rc = -1;
			break;
		}
		const char *value = carillon_trim(eq + 1);
		if (shared && cfg_value_is_secret(k, value)) {
			fprintf(stderr,
				"carillon: %s:%d: %s is a secret, and %s is accessible to group or others (mode %04o): "
				"chmod 600 it, or keep the secret in its own file (%s_FILE where there is one)\n",
				path, lineno, k->env, path, (unsigned)(st.st_mode & 07777), k->env);
			rc = -1;
			break;
		}
		rc = cfg_set(k, value, path);
	}
	fclose(f);
	return rc;
}

/* Settings whose value is a secret. On the command line it would be readable by every local user
 * (ps, /proc/<pid>/cmdline): they come from the environment, the config file or a file. */
static const char *const secret_settings[] = {"CARILLON_ROOT_SECRET_ACCESS_KEY", "CARILLON_MASTER_KEY"};

static bool is_secret_setting(const struct cfg_key *k)
{
	for (size_t i = 0; i < sizeof(secret_settings) / sizeof(secret_settings[0]); i++)
		if (!strcmp(k->env, secret_settings[i]))
			return true;
	return false;
}

/* A libpq connection string or URL carrying a password (keyword form, URL user:password@, or a
 * password= query parameter). */
static bool conninfo_has_password(const char *s)
{
	for (const char *p = s; *p; p++)
		if (!strncasecmp(p, "password", 8) && (p == s || !isalnum((unsigned char)p[-1]))) {
			const char *q = p + 8;
			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '=')
				return true;
		}
	const char *scheme = strstr(s, "://");
	if (!scheme)
		return false;
	const char *auth = scheme + 3;
	size_t host_end = strcspn(auth, "/?");
	const char *at = memchr(auth, '@', host_end);
	return at && memchr(auth, ':', (size_t)(at - auth)) != NULL;
}

static bool cfg_value_is_secret(const struct cfg_key *k, const char *value)
{
	return (is_secret_setting(k) && *value) ||
	       (!strcmp(k->env, "CARILLON_DATABASE_URL") && conninfo_has_password(value));
}

static int cfg_refuse_secret_flag(const struct cfg_key *k, const char *flag, const char *value)
{
	if (is_secret_setting(k)) {
		fprintf(stderr,
			"carillon: --%s is refused: a secret on the command line is visible to every local user (ps). "
			"Set %s in the environment or the config file%s\n",
			flag, k->env,
			!strcmp(k->env, "CARILLON_MASTER_KEY") ? ", or use CARILLON_MASTER_KEY_FILE"
			: !strcmp(k->env, "CARILLON_ROOT_SECRET_ACCESS_KEY") ? ", or use CARILLON_ROOT_SECRET_ACCESS_KEY_FILE"
									       : "");
		return -1;
	}
	if (!strcmp(k->env, "CARILLON_DATABASE_URL") && conninfo_has_password(value)) {
		fprintf(stderr,
			"carillon: --%s with a password is refused: the command line is visible to every local user "
			"(ps). Put the password in ~/.pgpass or PGPASSFILE, or set CARILLON_DATABASE_URL in the "
			"environment or the config file\n",
			flag);
		return -1;
	}
	return 0;
}

static const char *cfg_flag_value(int *argc, char **argv, const char *flag)
{
	size_t fl = strlen(flag);
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		int consumed = 0;
		if (strncmp(a, "--", 2) || strncmp(a + 2, flag, fl))
			continue;
		if (a[2 + fl] == '=') {
			val = a + 3 + fl;
			consumed = 1;
		} else if (a[2 + fl] == '\0' && i + 1 < *argc) {
			val = argv[i + 1];
			consumed = 2;
		} else {
			continue;
		}
		memmove(&argv[i], &argv[i + consumed], sizeof(char *) * (size_t)(*argc - i - consumed + 1));
		*argc -= consumed;
		return val;
	}
	return NULL;
}

int carillon_config_load(int *argc, char **argv)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (cfg_set(&cfg_keys[i], cfg_keys[i].def, "defaults"))
			return -1;
	/* As root the embedded PostgreSQL runs as an unprivileged user, which may not reach a directory
	 * below the caller's home: use the system location instead. */
	if (geteuid() == 0 && cfg_set(cfg_find_env("CARILLON_DATA_DIR"), "/var/lib/carillon", "defaults"))
		return -1;
	/* A systemd unit with StateDirectory= (deploy/systemd) runs as an ordinary user and names its
	 * state directory in STATE_DIRECTORY (the first one, when it lists several). */
	const char *state = getenv("STATE_DIRECTORY");
	if (state && *state == '/') {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(state, ":"), state);
		if (cfg_set(cfg_find_env("CARILLON_DATA_DIR"), dir, "defaults"))
			return -1;
	}
	const char *file = cfg_flag_value(argc, argv, "config");
	if (!file)
		file = getenv("CARILLON_CONFIG");
	if (file && *file && cfg_load_file(file))
		return -1;
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *v = getenv(cfg_keys[i].env);
		if (v && cfg_set(&cfg_keys[i], v, "the environment"))
			return -1;
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		char flag[64];
		flag_name(&cfg_keys[i], flag, sizeof(flag));
		const char *v = cfg_flag_value(argc, argv, flag);
		if (v && (cfg_refuse_secret_flag(&cfg_keys[i], flag, v) || cfg_set(&cfg_keys[i], v, "the command line")))
			return -1;
	}
	if (carillon_cfg.ws_idle_seconds <= carillon_cfg.ws_ping_seconds) {
		fprintf(stderr, "carillon: CARILLON_WS_IDLE_SECONDS (%ld) must exceed CARILLON_WS_PING_SECONDS (%ld)\n",
			carillon_cfg.ws_idle_seconds, carillon_cfg.ws_ping_seconds);
		return -1;
	}
	if (carillon_cfg.node_alive_seconds <= carillon_cfg.node_heartbeat_seconds ||
	    carillon_cfg.node_forget_seconds <= carillon_cfg.node_alive_seconds) {
		fprintf(stderr, "carillon: CARILLON_NODE_HEARTBEAT_SECONDS (%ld) < CARILLON_NODE_ALIVE_SECONDS (%ld) < "
				"CARILLON_NODE_FORGET_SECONDS (%ld) must hold\n",
			carillon_cfg.node_heartbeat_seconds, carillon_cfg.node_alive_seconds, carillon_cfg.node_forget_seconds);
		return -1;
	}
	static const char *const levels[] = {"error", "warn", "notice", "info", "debug"};
	int level = -1;
	for (int i = 0; i < 5; i++)
		if (!strcmp(carillon_cfg.log_level, levels[i]))
			level = i;
	if (level < 0) {
		fprintf(stderr, "carillon: CARILLON_LOG_LEVEL must be error, warn, notice, info or debug, not '%s'\n",
			carillon_cfg.log_level);
		return -1;
	}
	carillon_log_set_level((enum carillon_log_level)level);
	return carillon_log_configure(carillon_cfg.log_format, carillon_cfg.log_file);
}

void carillon_config_usage(void)
{
	printf("Settings (environment variable / flag, default):\n");
	for (size_t i = 0; i < N_KEYS; i++) {
		char flag[64];
		flag_name(&cfg_keys[i], flag, sizeof(flag));
		printf("  %-34s --%-24s %s\n      default: %s\n", cfg_keys[i].env, flag, cfg_keys[i].help,
		       *cfg_keys[i].def ? cfg_keys[i].def : "(none)");
	}
	printf("  CARILLON_CONFIG                    --config                   file of KEY=VALUE lines\n");
}

void carillon_config_print_defaults(void)
{
	printf("# Carillon settings: the file `carillon --config FILE` (or CARILLON_CONFIG=FILE) reads.\n"
	       "# KEY=VALUE lines, one setting a line; '#' starts a comment line; the value is the rest of\n"
	       "# the line after '=', without quotes. The environment and command-line flags override it.\n"
	       "# A file that holds a secret (CARILLON_MASTER_KEY, CARILLON_ROOT_SECRET_ACCESS_KEY, a\n"
	       "# CARILLON_DATABASE_URL with a password) must be readable by its owner only (chmod 600), else\n"
	       "# it is refused: better keep secrets in their own files (CARILLON_MASTER_KEY_FILE, ...).\n"
	       "#\n"
	       "# Every setting is listed below, commented out, with its default (generated by\n"
	       "# `carillon config --defaults` of Carillon %s).\n",
	       CARILLON_VERSION);
	for (size_t i = 0; i < N_KEYS; i++)
		printf("\n# %s\n#%s=%s\n", cfg_keys[i].help, cfg_keys[i].env, cfg_keys[i].def);
}

static int master_key_from_hex(const char *hex, const char *origin)
{
	size_t bin_len = 0;
	const char *end = NULL;
	char buf[129];
	snprintf(buf, sizeof(buf), "%s", hex);
	char *t = carillon_trim(buf);
	int rc = 0;
	if (strlen(t) != 64 ||
	    sodium_hex2bin(carillon_cfg.master_key, 32, t, 64, NULL, &bin_len, &end) || bin_len != 32) {
		fprintf(stderr, "carillon: the master key from %s must be 64 hex characters\n", origin);
		rc = -1;
	}
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

/*
 * Reads a secret from a file that must be a regular file nobody but its owner may read or write:
 * a group- or world-readable key has already leaked to every local account. With `adopt` (the
 * generated <data_dir>/master.key of a data directory now run by an unprivileged user), a
 * root-owned file is handed over to that user. Returns 0 and the trimmed contents in `out`.
 */
static int secret_file_read(const char *path, bool adopt, char *out, size_t len)
{
	/* O_NONBLOCK: a FIFO planted in place of the file must not hang the start (refused below). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (adopt ? O_NOFOLLOW : 0));
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "carillon: cannot read %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "carillon: %s is not a regular file\n", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		fprintf(stderr,
			"carillon: %s is accessible to group or others (mode %04o): a secret must be readable by its "
			"owner only; run chmod 600 %s (and use a new key if others may have read it)\n",
			path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	struct carillon_os_user u;
	if (adopt && st.st_uid == 0 && st.st_nlink == 1 && carillon_privdrop_target(&u)) {
		if (fchown(fd, u.uid, u.gid) < 0)
			log_warn("cannot give %s to user %s: %s", path, u.name, strerror(errno));
		else
			log_notice("%s now belongs to user %s", path, u.name);
	}
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	if (n < 0) {
		fprintf(stderr, "carillon: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* The first start of an embedded deployment: a new master key, written by the user Carillon runs
 * as (see privdrop.h), readable by it alone. */
static int master_key_create(const char *path)
{
	randombytes_buf(carillon_cfg.master_key, 32);
	char hex[65];
	sodium_bin2hex(hex, sizeof(hex), carillon_cfg.master_key, 32);
	struct carillon_os_user u;
	bool as_user = carillon_privdrop_target(&u);
	if (carillon_privdrop_enter())
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int err = errno;
	bool ok = fd >= 0 && write(fd, hex, 64) == 64 && fsync(fd) == 0;
	if (fd >= 0 && !ok)
		err = errno;
	if (fd >= 0 && close(fd) < 0 && ok) {
		ok = false;
		err = errno;
	}
	carillon_privdrop_leave();
	sodium_memzero(hex, sizeof(hex));
	if (!ok) {
		fprintf(stderr, "carillon: cannot write %s%s%s: %s%s\n", path, as_user ? " as user " : "",
			as_user ? u.name : "", strerror(err),
			as_user && err == EACCES ? " (the data directory must belong to that user: chown it, or choose "
						   "another CARILLON_DATA_DIR)"
						 : "");
		if (fd >= 0)
			unlink(path);
		return -1;
	}
	carillon_cfg.master_key_created = true;
	log_notice("generated a master key in %s", path);
	return 0;
}

static int master_key_resolve(bool embedded, bool may_generate)
{
	char buf[130];
	int rc;
	if (*carillon_cfg.master_key_hex)
		return master_key_from_hex(carillon_cfg.master_key_hex, "CARILLON_MASTER_KEY");
	if (*carillon_cfg.master_key_file) {
		rc = secret_file_read(carillon_cfg.master_key_file, false, buf, sizeof(buf));
		if (!rc)
			rc = master_key_from_hex(buf, carillon_cfg.master_key_file);
		sodium_memzero(buf, sizeof(buf));
		return rc;
	}
	if (!embedded) {
		fprintf(stderr, "carillon: CARILLON_MASTER_KEY (or _FILE) is required with CARILLON_DATABASE_URL:\n"
				"every node of a deployment must share it\n");
		return -1;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/master.key", carillon_cfg.data_dir);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		if (may_generate)
			return master_key_create(path);
		fprintf(stderr, "carillon: no master key in %s yet (the first `carillon serve` generates it)\n",
			carillon_cfg.data_dir);
		return -1;
	}
	rc = secret_file_read(path, true, buf, sizeof(buf));
	if (!rc)
		rc = master_key_from_hex(buf, path);
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

/* The root credential: configured, or derived from the master key (so a restarted quickstart keeps
 * the same one). */
static int root_key_resolve(void)
{
	if (*carillon_cfg.root_secret_access_key_file) {
		if (*carillon_cfg.root_secret_access_key) {
			fprintf(stderr, "carillon: set CARILLON_ROOT_SECRET_ACCESS_KEY or its _FILE, not both\n");
			return -1;
		}
		char buf[256];
		if (secret_file_read(carillon_cfg.root_secret_access_key_file, false, buf, sizeof(buf)))
			return -1;
		free(carillon_cfg.root_secret_access_key);
		carillon_cfg.root_secret_access_key = carillon_xstrdup(carillon_trim(buf));
		sodium_memzero(buf, sizeof(buf));
	}
	if (*carillon_cfg.root_access_key_id && *carillon_cfg.root_secret_access_key)
		return 0;
	if (*carillon_cfg.root_access_key_id || *carillon_cfg.root_secret_access_key) {
		fprintf(stderr, "carillon: set both CARILLON_ROOT_ACCESS_KEY_ID and _SECRET_ACCESS_KEY\n");
		return -1;
	}
	unsigned char d[64];
	crypto_generichash(d, sizeof(d), (const unsigned char *)"carillon-root-key", 17, carillon_cfg.master_key, 32);
	static const char up[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char id[21] = "AKIA", secret[41];
	for (int i = 0; i < 16; i++)
		id[4 + i] = up[d[i] & 31];
	id[20] = '\0';
	for (int i = 0; i < 40; i++)
		secret[i] = b64[d[16 + i] & 63];
	secret[40] = '\0';
	free(carillon_cfg.root_access_key_id);
	free(carillon_cfg.root_secret_access_key);
	carillon_cfg.root_access_key_id = carillon_xstrdup(id);
	carillon_cfg.root_secret_access_key = carillon_xstrdup(secret);
	carillon_cfg.root_key_generated = true;
	sodium_memzero(d, sizeof(d));
	sodium_memzero(secret, sizeof(secret));
	return 0;
}

int carillon_config_keys(bool embedded, bool may_generate)
{
	if (master_key_resolve(embedded, may_generate))
		return -1;
	return root_key_resolve();
}

int carillon_config_finish(bool embedded)
{
	if (embedded && carillon_mkdir_p(carillon_cfg.data_dir, 0700)) {
		fprintf(stderr, "carillon: cannot create %s: %s\n", carillon_cfg.data_dir, strerror(errno));
		return -1;
	}
	return carillon_config_keys(embedded, true);
}
