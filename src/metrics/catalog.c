/*
 * Carillon's metrics: every family, registered once by carillon_metrics_init(), and the
 * instrumentation calls the other modules make (include/carillon/metrics.h). Series that every
 * request touches without labels of their own are looked up once here and kept; labelled ones are
 * found through the registry's hash table (no allocation once a label combination was seen).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "carillon/metrics.h"
#include "carillon/util.h"

/* Latencies from 1 ms to 10 s; connects and end-to-end delivery reach further. */
static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double slow_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 50, 64};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Operations are ~130 rows times a handful of statuses; the caps only guard against a bug. */
#define MAX_OP_SERIES 2048

static struct {
	bool ready;
	struct carillon_metric_family *requests, *request_seconds;
	struct carillon_metric_family *db_errors, *sessions_closed, *outbound, *outbox_depth, *outbox_age,
	    *outbox_outcomes;
	struct carillon_metric *batches, *batch_size, *commit_seconds, *batches_columns, *batches_declined;
	struct carillon_metric *db_waits, *db_reconnects, *db_up, *db_busy, *db_queued;
	struct carillon_metric *s_open, *s_opened, *s_established, *s_frames, *s_bytes, *s_queued, *s_slow, *s_resumes,
	    *s_resyncs;
	struct carillon_metric *log_head, *listener_pos, *notifies, *polls, *deliveries, *commit_to_delivery;
	struct carillon_metric *from_answers, *reads_skipped, *reads_passed;
	struct carillon_metric *rss, *fds, *max_fds, *cpu, *start_time, *loop_lag, *poll_skips, *poll_in_place;
	uint64_t delivered;
} cat;

static struct carillon_metric *single(const char *name, const char *help, enum carillon_metric_kind kind,
				      const double *buckets, size_t n)
{
	return carillon_metrics_series(carillon_metrics_family(name, help, kind, NULL, buckets, n, 1), NULL);
}

static struct carillon_metric *counter(const char *name, const char *help)
{
	return single(name, help, CARILLON_METRIC_COUNTER, NULL, 0);
}

static struct carillon_metric *gauge(const char *name, const char *help)
{
	return single(name, help, CARILLON_METRIC_GAUGE, NULL, 0);
}

static void init_http_and_db(void)
{
	cat.requests = carillon_metrics_family("carillon_http_requests_total",
					       "REST requests answered, by service, operation and HTTP status",
					       CARILLON_METRIC_COUNTER, "service,operation,status", NULL, 0, MAX_OP_SERIES);
	cat.request_seconds = carillon_metrics_family(
	    "carillon_http_request_duration_seconds", "Time from a complete request head to its answer, by operation",
	    CARILLON_METRIC_HISTOGRAM, "service,operation", latency_buckets, N(latency_buckets), MAX_OP_SERIES);
	cat.batches = counter("carillon_write_batches_total", "Group-commit transactions sent (carillon_api.invoke_batch)");
	cat.batches_columns = counter("carillon_write_batches_columns_total",
				      "Group-commit transactions of plain sends written from columns (carillon_api.send_messages)");
	cat.batches_declined = counter("carillon_write_batches_columns_declined_total",
				       "Batches of plain sends carillon_api.send_messages declined (sent again item by item)");
	cat.batch_size = single("carillon_write_batch_size", "Writes per group-commit transaction",
				CARILLON_METRIC_HISTOGRAM, batch_buckets, N(batch_buckets));
	cat.commit_seconds = single("carillon_write_batch_duration_seconds",
				    "Time from sending a group-commit transaction to its result (commit included)",
				    CARILLON_METRIC_HISTOGRAM, latency_buckets, N(latency_buckets));
	cat.db_up = gauge("carillon_db_connections", "Pool connections up (the LISTEN connection excluded)");
	cat.db_busy = gauge("carillon_db_connections_busy", "Pool connections running a statement");
	cat.db_queued = gauge("carillon_db_queue_length", "Statements waiting for a pool connection");
	cat.db_waits = counter("carillon_db_waits_total", "Statements that found no idle connection and had to wait");
	cat.db_reconnects = counter("carillon_db_reconnects_total",
				    "Database connection attempts scheduled after a failure or a lost connection (LISTEN included)");
	cat.db_errors = carillon_metrics_family("carillon_db_errors_total",
						"Statements that failed, by SQLSTATE class (CH: Carillon's own API errors)",
						CARILLON_METRIC_COUNTER, "class", NULL, 0, 256);
}

static void init_sessions(void)
{
	cat.s_open = gauge("carillon_sessions_open", "Websocket sessions open on this node (pending ones included)");
	cat.s_opened = counter("carillon_sessions_opened_total", "Websocket sessions accepted (upgrade done)");
	cat.sessions_closed = carillon_metrics_family("carillon_sessions_closed_total",
						      "Websocket sessions closed, by close code (1005: the client sent none; "
						      "1006: no close frame; other: a code outside the known list)",
						      CARILLON_METRIC_COUNTER, "code", NULL, 0, 32);
	cat.s_established = single("carillon_session_establish_duration_seconds",
				   "Time from the upgrade to SESSION_ESTABLISHED written (auth, registry, snapshot, resume)",
				   CARILLON_METRIC_HISTOGRAM, slow_buckets, N(slow_buckets));
	cat.s_frames = counter("carillon_session_frames_sent_total", "Websocket text frames written to sessions");
	cat.s_bytes = counter("carillon_session_bytes_sent_total", "Payload bytes of the frames written to sessions");
	cat.s_queued = gauge("carillon_session_queued_bytes", "Bytes of frames waiting to be written, over all sessions");
	cat.s_slow = counter("carillon_session_slow_consumer_closes_total",
			     "Sessions closed with 1013 \"Too slow\" (queue bound reached)");
	cat.s_resumes = counter("carillon_session_resumes_total", "Connects that resumed from since-position");
	cat.s_resyncs = counter("carillon_session_resync_required_total", "CARILLON_RESYNC_REQUIRED answers sent");
}

static void init_events_and_outbound(void)
{
	cat.log_head = gauge("carillon_event_log_head_position", "Position of the last event in the log (sampled per scrape)");
	cat.listener_pos = gauge("carillon_event_listener_position",
				 "Position of the last event this node's listener handed to the hub (lag: head minus this)");
	cat.notifies = counter("carillon_event_listener_notifies_total", "NOTIFY wake-ups of the listener");
	cat.polls = counter("carillon_event_listener_polls_total", "Fallback reads of the log by the listener's timer");
	cat.from_answers = counter("carillon_event_listener_from_answers_total",
				   "Events of this node's own write batches handed to the hub from the batch's answer, not read back from the log");
	cat.reads_skipped = counter("carillon_event_listener_reads_skipped_total",
				    "Notifications of events this node's listener had already handed to the hub (no read)");
	cat.reads_passed = counter("carillon_event_listener_reads_passed_total",
				   "Notifications passed over without a read: this node had no session to hand the events to");
	cat.deliveries = counter("carillon_event_deliveries_total", "Event frames handed to local sessions (written or queued)");
	cat.loop_lag = single("carillon_loop_lag_seconds",
			      "How late the event loop ran a timer due every 100 ms: how long a ready connection can "
			      "wait while one loop turn's work runs",
			      CARILLON_METRIC_HISTOGRAM, latency_buckets, N(latency_buckets));
	cat.commit_to_delivery = single("carillon_event_delivery_delay_seconds",
					"Time from an event's transaction (created_at) to its first delivery to a session on this node",
					CARILLON_METRIC_HISTOGRAM, slow_buckets, N(slow_buckets));
	cat.outbound = carillon_metrics_family("carillon_outbound_requests_total",
					       "Outbound HTTP requests ended, by result (ok: a response of any status)",
					       CARILLON_METRIC_COUNTER, "result", NULL, 0, 16);
	cat.outbox_depth = carillon_metrics_family("carillon_outbox_depth", "Outbox rows waiting, by kind",
						   CARILLON_METRIC_GAUGE, "kind", NULL, 0, 16);
	cat.outbox_age = carillon_metrics_family("carillon_outbox_oldest_age_seconds",
						 "Age of the oldest outbox row waiting, by kind", CARILLON_METRIC_GAUGE, "kind",
						 NULL, 0, 16);
	cat.outbox_outcomes = carillon_metrics_family("carillon_outbox_outcomes_total", "Outbox rows done, by kind and outcome",
						      CARILLON_METRIC_COUNTER, "kind,outcome", NULL, 0, 128);
}

/* The process metrics keep the names every Prometheus client library uses (process_*), so the
 * usual dashboards and alerts work unchanged. */
static void init_process(const char *version)
{
	cat.rss = gauge("process_resident_memory_bytes", "Resident memory size in bytes");
	cat.fds = gauge("process_open_fds", "Open file descriptors");
	cat.max_fds = gauge("process_max_fds", "Limit of open file descriptors");
	cat.cpu = counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds");
	cat.poll_skips = counter("carillon_poll_restarts_skipped_total",
				 "Poll restarts asking for the events already set, skipped (src/util/uv_poll_filter.c)");
	cat.poll_in_place = counter("carillon_poll_changes_in_place_total",
				    "Changes of a poll's events made in place instead of a restart (src/util/uv_poll_filter.c)");
	cat.start_time = gauge("process_start_time_seconds", "Start time of the process since the epoch, in seconds");
	carillon_metric_set(cat.start_time, (double)carillon_now_ms() / 1000.0);
	struct carillon_metric_family *info = carillon_metrics_family(
	    "carillon_build_info", "Always 1; the version of the running binary", CARILLON_METRIC_GAUGE, "version", NULL, 0, 1);
	const char *v[] = {version ? version : "unknown"};
	carillon_metric_set(carillon_metrics_series(info, v), 1);
}

void carillon_metrics_init(const char *version)
{
	if (cat.ready)
		return;
	init_http_and_db();
	init_sessions();
	init_events_and_outbound();
	init_process(version);
	cat.ready = true;
}

void carillon_metrics_free(void)
{
	carillon_metrics_reset();
	memset(&cat, 0, sizeof(cat));
}

/* ------------------------------------------------------------------------ instrumentation */

void carillon_metrics_request(const char *service, const char *operation, int status, double seconds)
{
	if (!cat.ready)
		return;
	char code[8];
	snprintf(code, sizeof(code), "%d", status >= 100 && status <= 599 ? status : 0);
	const char *labels[] = {service, operation, code};
	carillon_metric_add(carillon_metrics_series(cat.requests, labels), 1);
	carillon_metric_observe(carillon_metrics_series(cat.request_seconds, labels), seconds);
}

void carillon_metrics_batch_sent(size_t items)
{
	if (!cat.ready)
		return;
	carillon_metric_add(cat.batches, 1);
	carillon_metric_observe(cat.batch_size, (double)items);
}

void carillon_metrics_batch_columns(bool declined)
{
	if (cat.ready)
		carillon_metric_add(declined ? cat.batches_declined : cat.batches_columns, 1);
}

void carillon_metrics_loop_lag(double seconds)
{
	if (cat.ready)
		carillon_metric_observe(cat.loop_lag, seconds);
}

void carillon_metrics_batch_done(double seconds)
{
	if (cat.ready)
		carillon_metric_observe(cat.commit_seconds, seconds);
}

void carillon_metrics_db_wait(void)
{
	if (cat.ready)
		carillon_metric_add(cat.db_waits, 1);
}

void carillon_metrics_db_reconnect(void)
{
	if (cat.ready)
		carillon_metric_add(cat.db_reconnects, 1);
}

void carillon_metrics_db_error(const char *sqlstate)
{
	if (!cat.ready)
		return;
	/* A SQLSTATE is five characters of [0-9A-Z]; anything else is counted as "XX". */
	char cls[3] = "XX";
	if (sqlstate && strlen(sqlstate) == 5) {
		bool ok = true;
		for (int i = 0; i < 2; i++)
			ok = ok && ((sqlstate[i] >= '0' && sqlstate[i] <= '9') || (sqlstate[i] >= 'A' && sqlstate[i] <= 'Z'));
		if (ok)
			memcpy(cls, sqlstate, 2);
	}
	const char *labels[] = {cls};
	carillon_metric_add(carillon_metrics_series(cat.db_errors, labels), 1);
}

void carillon_metrics_session_opened(void)
{
	if (!cat.ready)
		return;
	carillon_metric_add(cat.s_opened, 1);
	carillon_metric_add(cat.s_open, 1);
}

void carillon_metrics_session_closed(int close_code)
{
	if (!cat.ready)
		return;
	/* The codes Carillon sends or clients commonly do; a client may send any other 16-bit value. */
	static const int known[] = {1000, 1001, 1005, 1006, 1011, 1013, 4003, 4401, 4410};
	char code[8] = "other";
	for (size_t i = 0; i < N(known); i++)
		if (close_code == known[i])
			snprintf(code, sizeof(code), "%d", close_code);
	const char *labels[] = {code};
	carillon_metric_add(carillon_metrics_series(cat.sessions_closed, labels), 1);
	carillon_metric_add(cat.s_open, -1);
}

void carillon_metrics_session_established(double seconds)
{
	if (cat.ready)
		carillon_metric_observe(cat.s_established, seconds);
}

void carillon_metrics_session_sent(unsigned frames, size_t bytes)
{
	if (!cat.ready)
		return;
	carillon_metric_add(cat.s_frames, frames);
	carillon_metric_add(cat.s_bytes, (double)bytes);
}

void carillon_metrics_session_queued(long delta_bytes)
{
	if (cat.ready)
		carillon_metric_add(cat.s_queued, (double)delta_bytes);
}

void carillon_metrics_session_slow_close(void)
{
	if (cat.ready)
		carillon_metric_add(cat.s_slow, 1);
}

void carillon_metrics_session_resume(void)
{
	if (cat.ready)
		carillon_metric_add(cat.s_resumes, 1);
}

void carillon_metrics_session_resync(void)
{
	if (cat.ready)
		carillon_metric_add(cat.s_resyncs, 1);
}

void carillon_metrics_delivery(void)
{
	cat.delivered++;
	if (cat.ready)
		carillon_metric_add(cat.deliveries, 1);
}

void carillon_metrics_listener_notify(void)
{
	if (cat.ready)
		carillon_metric_add(cat.notifies, 1);
}

void carillon_metrics_listener_poll(void)
{
	if (cat.ready)
		carillon_metric_add(cat.polls, 1);
}

void carillon_metrics_listener_from_answer(unsigned n)
{
	if (cat.ready)
		carillon_metric_add(cat.from_answers, (double)n);
}

void carillon_metrics_listener_read_skipped(void)
{
	if (cat.ready)
		carillon_metric_add(cat.reads_skipped, 1);
}

void carillon_metrics_listener_read_passed(void)
{
	if (cat.ready)
		carillon_metric_add(cat.reads_passed, 1);
}

uint64_t carillon_metrics_delivery_mark(void) { return cat.delivered; }

void carillon_metrics_event_dispatched(uint64_t mark, double created_at_epoch)
{
	if (!cat.ready || cat.delivered == mark || !(created_at_epoch > 0))
		return;
	double delay = (double)carillon_now_ms() / 1000.0 - created_at_epoch;
	carillon_metric_observe(cat.commit_to_delivery, delay > 0 ? delay : 0); /* clocks of two hosts may differ */
}

void carillon_metrics_outbound(const char *result)
{
	if (!cat.ready)
		return;
	const char *labels[] = {result ? result : "internal"};
	carillon_metric_add(carillon_metrics_series(cat.outbound, labels), 1);
}

void carillon_metrics_outbox(const char *kind, long depth, double oldest_age_seconds, const char *outcome)
{
	if (!cat.ready || !kind)
		return;
	const char *k[] = {kind};
	if (depth >= 0)
		carillon_metric_set(carillon_metrics_series(cat.outbox_depth, k), (double)depth);
	if (oldest_age_seconds >= 0)
		carillon_metric_set(carillon_metrics_series(cat.outbox_age, k), oldest_age_seconds);
	if (outcome) {
		const char *ko[] = {kind, outcome};
		carillon_metric_add(carillon_metrics_series(cat.outbox_outcomes, ko), 1);
	}
}

/* ------------------------------------------------------------------------- scrape-time values */

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static void collect_process(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long pages_total, pages_rss;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) == 2)
			carillon_metric_set(cat.rss, (double)pages_rss * (double)sysconf(_SC_PAGESIZE));
		fclose(f);
	}
	long fds = count_fds();
	if (fds >= 0)
		carillon_metric_set(cat.fds, (double)fds);
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		carillon_metric_set(cat.max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
	struct rusage ru;
	if (!getrusage(RUSAGE_SELF, &ru))
		carillon_metric_add(cat.cpu, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
						      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6 -
						      carillon_metric_value(cat.cpu));
	carillon_metric_add(cat.poll_skips,
			    (double)carillon_uv_poll_restarts_skipped - carillon_metric_value(cat.poll_skips));
	carillon_metric_add(cat.poll_in_place,
			    (double)carillon_uv_poll_changes_in_place - carillon_metric_value(cat.poll_in_place));
}

void carillon_metrics_collect(const struct carillon_metrics_sample *s)
{
	if (!cat.ready)
		return;
	if (s) {
		if (s->log_head >= 0)
			carillon_metric_set(cat.log_head, (double)s->log_head);
		if (s->listener_position >= 0)
			carillon_metric_set(cat.listener_pos, (double)s->listener_position);
		carillon_metric_set(cat.db_up, s->db_connections_up);
		carillon_metric_set(cat.db_busy, s->db_connections_busy);
		carillon_metric_set(cat.db_queued, s->db_queued);
	}
	collect_process();
}
