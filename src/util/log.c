/*
 * Logging: one line per event, text or JSON, on stderr or in a file (see include/carillon/log.h).
 *
 * A line is built in a fixed buffer (never allocated) and written with one write(2). Whatever goes
 * into it is made valid UTF-8 without control characters first (carillon_utf8_sanitize), then
 * escaped for its format; a value too long is cut on a code point boundary, and a line that would
 * exceed the buffer loses its last fields, never its closing brace.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "carillon/log.h"
#include "carillon/util.h"

#define LINE_MAX_BYTES 8192
#define VALUE_MAX_BYTES 2048

static enum carillon_log_level log_level = CARILLON_LOG_NOTICE;
static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};
static bool log_json;
static int log_fd = STDERR_FILENO;
static char log_path[4096];

void carillon_log_set_level(enum carillon_log_level level) { log_level = level; }
bool carillon_log_enabled(enum carillon_log_level level) { return level <= log_level; }

static int open_log_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int carillon_log_configure(const char *format, const char *file)
{
	if (format && *format && strcmp(format, "text") && strcmp(format, "json")) {
		fprintf(stderr, "carillon: CARILLON_LOG_FORMAT must be text or json, not '%s'\n", format);
		return -1;
	}
	log_json = format && !strcmp(format, "json");
	if (file && *file) {
		int fd = open_log_file(file);
		if (fd < 0) {
			fprintf(stderr, "carillon: cannot open the log file %s: %s\n", file, strerror(errno));
			return -1;
		}
		if (log_fd != STDERR_FILENO)
			close(log_fd);
		log_fd = fd;
		snprintf(log_path, sizeof(log_path), "%s", file);
	}
	return 0;
}

void carillon_log_reopen(void)
{
	if (!log_path[0])
		return;
	int fd = open_log_file(log_path);
	if (fd < 0) {
		log_warn("SIGHUP: cannot reopen the log file %s (%s): still writing to the old one", log_path, strerror(errno));
		return;
	}
	int old = log_fd;
	log_fd = fd;
	close(old);
	log_notice("SIGHUP: log file reopened");
}

/* ------------------------------------------------------------------------------ line building */

struct line {
	char *p;
	size_t len, cap; /* cap leaves room for the line's end ("}\n") */
};

static void put(struct line *l, const char *s, size_t n)
{
	if (n > l->cap - l->len)
		n = carillon_utf8_prefix(s, n, l->cap - l->len);
	memcpy(l->p + l->len, s, n);
	l->len += n;
	l->p[l->len] = '\0';
}

static void puts_(struct line *l, const char *s) { put(l, s, strlen(s)); }

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string: sanitized, then " and \ escaped (no control characters remain). */
static void put_json_string(struct line *l, const char *s)
{
	char clean[VALUE_MAX_BYTES];
	size_t n = carillon_utf8_sanitize(clean, sizeof(clean), s, strlen(s));
	puts_(l, "\"");
	for (size_t i = 0; i < n; i++) {
		if (clean[i] == '"' || clean[i] == '\\')
			put(l, "\\", 1);
		put(l, &clean[i], 1);
	}
	puts_(l, "\"");
}

/* A text value: bare when it has no blank, quote, backslash or '='; else quoted like JSON. */
static void put_text_value(struct line *l, const char *s)
{
	char clean[VALUE_MAX_BYTES];
	size_t n = carillon_utf8_sanitize(clean, sizeof(clean), s, strlen(s));
	if (n && !strpbrk(clean, " \"\\="))
		put(l, clean, n);
	else
		put_json_string(l, clean);
}

static void put_number(struct line *l, const struct carillon_log_field *f)
{
	if (f->type == CARILLON_LOG_F_INT)
		putf(l, "%lld", f->i);
	else if (f->d == f->d && f->d < 1e300 && f->d > -1e300)
		putf(l, "%.3f", f->d);
	else
		puts_(l, l->p[0] == '{' ? "null" : "-");
}

static void put_fields(struct line *l, bool json, const struct carillon_log_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct carillon_log_field *f = &fields[i];
		if (json) {
			puts_(l, ",");
			put_json_string(l, f->key);
			puts_(l, ":");
			if (f->type != CARILLON_LOG_F_STR)
				put_number(l, f);
			else if (f->s)
				put_json_string(l, f->s);
			else
				puts_(l, "null");
		} else {
			putf(l, " %s=", f->key);
			if (f->type != CARILLON_LOG_F_STR)
				put_number(l, f);
			else
				put_text_value(l, f->s ? f->s : "-");
		}
	}
}

size_t carillon_log_format_line(char *out, size_t size, bool json, enum carillon_log_level level, const char *event,
				const char *msg, const struct carillon_log_field *fields, size_t n)
{
	if (size < 8)
		return 0;
	struct line l = {out, 0, size - 3};
	out[0] = '\0';
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[64];
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
	if (json) {
		putf(&l, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d", ts, level_names[level], (int)getpid());
		if (event) {
			puts_(&l, ",\"event\":");
			put_json_string(&l, event);
		}
		if (msg) {
			puts_(&l, ",\"msg\":");
			put_json_string(&l, msg);
		}
		put_fields(&l, true, fields, n);
		l.cap += 1;
		puts_(&l, "}");
	} else {
		putf(&l, "%s [%d] %s: ", ts, (int)getpid(), level_names[level]);
		if (event)
			puts_(&l, event);
		if (msg) {
			char clean[LINE_MAX_BYTES];
			carillon_utf8_sanitize(clean, sizeof(clean), msg, strlen(msg));
			puts_(&l, clean);
		}
		put_fields(&l, false, fields, n);
	}
	l.cap += 1;
	puts_(&l, "\n");
	return l.len;
}

static void emit(const char *line, size_t len)
{
	while (len) {
		ssize_t w = write(log_fd, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		line += w;
		len -= (size_t)w;
	}
}

void carillon_log(enum carillon_log_level level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quoting libpq or the system often end with a newline: blanks, not U+FFFD. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	for (size_t k = strlen(msg); k && msg[k - 1] == ' '; k--)
		msg[k - 1] = '\0';
	char line[LINE_MAX_BYTES];
	emit(line, carillon_log_format_line(line, sizeof(line), log_json, level, NULL, msg, NULL, 0));
}

void carillon_log_event(enum carillon_log_level level, const char *event, const struct carillon_log_field *fields,
			size_t n)
{
	if (level > log_level)
		return;
	char line[LINE_MAX_BYTES];
	emit(line, carillon_log_format_line(line, sizeof(line), log_json, level, event, NULL, fields, n));
}
