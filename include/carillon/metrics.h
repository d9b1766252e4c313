/*
 * Metrics: a small registry of counters, gauges and histograms (fixed buckets) with labelled
 * series, rendered in the Prometheus text exposition format (version 0.0.4), and the catalogue of
 * Carillon's own metrics with one entry point per thing measured (the instrumentation calls).
 *
 * Cardinality is bounded twice: label values come only from fixed sets (the operation table, HTTP
 * status codes, close codes from a known list, SQLSTATE classes, result names), never from request
 * input; and each family holds at most `max_series` series, beyond which observations go to one
 * series whose every label is "_overflow". A series is created (allocated) the first time its
 * label values are seen; after that recording is a hash lookup and an increment. Single-threaded:
 * everything runs on the event loop. Every instrumentation call is a no-op until
 * carillon_metrics_init() ran (unit tests of other modules never initialise them).
 *
 * docs/operations.md ("Metrics") lists every metric and what it means.
 */
#ifndef CARILLON_METRICS_H
#define CARILLON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "carillon/util.h"

/* ------------------------------------------------------------------------------ the registry */

enum carillon_metric_kind { CARILLON_METRIC_COUNTER, CARILLON_METRIC_GAUGE, CARILLON_METRIC_HISTOGRAM };

#define CARILLON_METRIC_MAX_LABELS 4
#define CARILLON_METRIC_MAX_BUCKETS 24

struct carillon_metric_family;
struct carillon_metric; /* one series of a family */

/* Register a family (name, help and label names are copied). `labels`: comma-separated label
 * names, or NULL. Histograms take `buckets` (strictly increasing upper bounds, +Inf implied).
 * NULL when the name is already registered or the arguments are invalid. */
struct carillon_metric_family *carillon_metrics_family(const char *name, const char *help,
						       enum carillon_metric_kind kind, const char *labels,
						       const double *buckets, size_t n_buckets, size_t max_series);

/* The series of `values` (one per label name; NULL for a family without labels), created on first
 * use; the overflow series once the family holds max_series. */
struct carillon_metric *carillon_metrics_series(struct carillon_metric_family *f, const char *const *values);

void carillon_metric_add(struct carillon_metric *m, double v);     /* counter (v >= 0) or gauge */
void carillon_metric_set(struct carillon_metric *m, double v);     /* gauge */
void carillon_metric_observe(struct carillon_metric *m, double v); /* histogram */
/* A counter's or gauge's value; a histogram's count. */
double carillon_metric_value(const struct carillon_metric *m);

/* Append the whole exposition (families in registration order) to `out`. */
void carillon_metrics_render(struct carillon_buf *out);

/* Forget every family (tests; the server at exit). */
void carillon_metrics_reset(void);

/* A monotonic clock in seconds, for latencies. */
double carillon_metrics_clock(void);

/* ---------------------------------------------------------------- Carillon's metric catalogue */

/* Register Carillon's families (idempotent). `version`: carillon_build_info's label. */
void carillon_metrics_init(const char *version);
/* carillon_metrics_reset, and the instrumentation calls become no-ops again. */
void carillon_metrics_free(void);

/* REST: one answered request. service/operation come from the operation table (or the fixed
 * "none"/"healthz" of requests outside it); status is the HTTP status sent. */
void carillon_metrics_request(const char *service, const char *operation, int status, double seconds);

/* Group commit: a batch of `items` writes was sent; a batch's transaction took `seconds`. */
void carillon_metrics_batch_sent(size_t items);
void carillon_metrics_batch_done(double seconds);
/* A batch of plain sends was answered as columns (carillon_api.send_messages), or declined there. */
void carillon_metrics_batch_columns(bool declined);
/* The lateness of the loop's 100 ms timer (src/server.c). */
void carillon_metrics_loop_lag(double seconds);

/* Database pool: a statement had to wait for a connection; a connection is being retried after a
 * failure; a statement failed with `sqlstate` (its class, the first two characters, is the label). */
void carillon_metrics_db_wait(void);
void carillon_metrics_db_reconnect(void);
void carillon_metrics_db_error(const char *sqlstate);

/* Websocket sessions. */
void carillon_metrics_session_opened(void);
void carillon_metrics_session_closed(int close_code);   /* codes outside the known list: "other" */
void carillon_metrics_session_established(double seconds);
void carillon_metrics_session_sent(unsigned frames, size_t bytes);
void carillon_metrics_session_queued(long delta_bytes);  /* frames waiting to be written */
void carillon_metrics_session_slow_close(void);
void carillon_metrics_session_resume(void);
void carillon_metrics_session_resync(void);
/* An event frame handed to a session (written or queued). */
void carillon_metrics_delivery(void);

/* The event pipeline: a NOTIFY woke the listener; the fallback timer did. */
void carillon_metrics_listener_notify(void);
void carillon_metrics_listener_poll(void);
/* The listener handed `n` events of this node's own write batch to the hub from the batch's answer
 * (not read back from the log); a notification found nothing new to read. */
void carillon_metrics_listener_from_answer(unsigned n);
void carillon_metrics_listener_read_skipped(void);
void carillon_metrics_listener_read_passed(void);
/* Around the hub's dispatch of one event read by the listener: take a mark before, and after it
 * the time from the event's created_at (epoch seconds) to now is observed if the event reached at
 * least one local session (its first delivery on this node). */
uint64_t carillon_metrics_delivery_mark(void);
void carillon_metrics_event_dispatched(uint64_t mark, double created_at_epoch);

/* Outbound HTTP: one request ended with `result` (carillon_outbound_error_name: "ok", "connect",
 * "timeout", ...). */
void carillon_metrics_outbound(const char *result);

/*
 * The outbox hook (push, flows, streaming; kind is one of a fixed set chosen by the caller, never
 * request input): `depth` (rows waiting) and `oldest_age_seconds` (age of the oldest waiting row)
 * set the gauges carillon_outbox_depth{kind} and carillon_outbox_oldest_age_seconds{kind} when
 * non-negative (pass -1 to leave them); `outcome` (e.g. "delivered", "retry", "failed",
 * "dropped"), when not NULL, counts one row done in carillon_outbox_outcomes_total{kind,outcome}.
 */
void carillon_metrics_outbox(const char *kind, long depth, double oldest_age_seconds, const char *outcome);

/* What the scrape endpoint samples at scrape time (-1: unknown, the gauge keeps its last value). */
struct carillon_metrics_sample {
	int64_t log_head;           /* carillon.log_position() */
	int64_t listener_position;  /* the last event this node's listener handed to the hub */
	int db_connections_up, db_connections_busy, db_queued;
};
/* Set the sampled gauges and the process metrics (RSS, fds, CPU, start time). */
void carillon_metrics_collect(const struct carillon_metrics_sample *s);

#endif
