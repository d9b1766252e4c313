/*
 * One log sink for Carillon and for libwebsockets' own messages: stderr or CARILLON_LOG_FILE, in
 * text (the default) or JSON lines (CARILLON_LOG_FORMAT=json), filtered by CARILLON_LOG_LEVEL.
 * Every line is written with one write(2), so lines of several processes sharing a file (O_APPEND)
 * never interleave. Text is made valid UTF-8 without control characters before it is written, so
 * nothing a client sends can forge or break a line.
 */
#ifndef CARILLON_LOG_H
#define CARILLON_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum carillon_log_level { CARILLON_LOG_ERR, CARILLON_LOG_WARN, CARILLON_LOG_NOTICE, CARILLON_LOG_INFO, CARILLON_LOG_DEBUG };

void carillon_log_set_level(enum carillon_log_level level);
bool carillon_log_enabled(enum carillon_log_level level);
void carillon_log(enum carillon_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The format ("text" or "json") and the file ("" or NULL: stderr; else opened for appending, mode
 * 0640, created if missing). -1 with a message on stderr when the format is unknown or the file
 * cannot be opened. */
int carillon_log_configure(const char *format, const char *file);
/* Open the log file again (SIGHUP: after logrotate renamed it). On failure the old file is kept
 * and a warning says why. No-op when logging to stderr. */
void carillon_log_reopen(void);

/* A structured line: an event name and typed fields. Text: `event key=value ...` (values with
 * blanks, quotes or '=' quoted); JSON: {"time","level","pid","event", fields...}. String fields
 * that are NULL are written as "-" (text) or null (JSON). */
enum carillon_log_field_type { CARILLON_LOG_F_STR, CARILLON_LOG_F_INT, CARILLON_LOG_F_NUM };
struct carillon_log_field {
	const char *key;
	enum carillon_log_field_type type;
	const char *s;
	long long i;
	double d;
};
#define CARILLON_LOG_STR(k, v) {(k), CARILLON_LOG_F_STR, (v), 0, 0}
#define CARILLON_LOG_INT(k, v) {(k), CARILLON_LOG_F_INT, NULL, (long long)(v), 0}
#define CARILLON_LOG_NUM(k, v) {(k), CARILLON_LOG_F_NUM, NULL, 0, (double)(v)}
void carillon_log_event(enum carillon_log_level level, const char *event, const struct carillon_log_field *fields,
			size_t n);

/* Render a line without writing it (the unit test): returns the length written into out. */
size_t carillon_log_format_line(char *out, size_t size, bool json, enum carillon_log_level level, const char *event,
				const char *msg, const struct carillon_log_field *fields, size_t n);

#define log_err(...) carillon_log(CARILLON_LOG_ERR, __VA_ARGS__)
#define log_warn(...) carillon_log(CARILLON_LOG_WARN, __VA_ARGS__)
#define log_notice(...) carillon_log(CARILLON_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) carillon_log(CARILLON_LOG_INFO, __VA_ARGS__)
#define log_debug(...) carillon_log(CARILLON_LOG_DEBUG, __VA_ARGS__)

#endif
