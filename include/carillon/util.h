/* Small helpers shared by every module: strings, percent-encoding, time, ids. */
#ifndef CARILLON_UTIL_H
#define CARILLON_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Allocation that aborts on out-of-memory (like h2o_mem_alloc): callers never see NULL. */
void *carillon_xmalloc(size_t n);
void *carillon_xcalloc(size_t n, size_t size);
void *carillon_xrealloc(void *p, size_t n);
char *carillon_xstrdup(const char *s);
char *carillon_xstrndup(const char *s, size_t n);

char *carillon_trim(char *s);

/* "host:port", "[v6]:port" or ":port" split into host (brackets removed; "" for any address) and
 * port text: 0, or -1 when there is no port or a part does not fit. */
int carillon_split_host_port(const char *addr, char *host, size_t hlen, char *port, size_t plen);
int carillon_mkdir_p(const char *path, mode_t mode);

struct carillon_buf;

/* The value of one hex digit (either case), or -1. */
int carillon_hexval(char c);

/* Percent-decoding; returns the decoded length or -1 on a malformed escape or an embedded NUL.
 * `out` must hold len + 1 bytes. */
ssize_t carillon_pct_decode(const char *in, size_t len, char *out);
/* Percent-encode every byte outside A-Za-z0-9-_.~ ; returns a new string. */
char *carillon_pct_encode(const char *in, size_t len);

/* One query fragment as lws yields it ("name=value", already percent-decoded; without '=' the value
 * is empty), split in place: `frag` becomes the name and the value is returned. The pair is appended
 * to `canonical` re-encoded the way the SigV4 verifier reads a query (RFC 3986 unreserved set,
 * '&'-joined, in the order received). The one query parser of REST requests and /connect. */
const char *carillon_query_fragment(char *frag, struct carillon_buf *canonical);

/* Wall-clock time in milliseconds since the epoch. */
int64_t carillon_now_ms(void);

/* A random RFC 4122 version-4 UUID (37 bytes with NUL). */
void carillon_uuid4(char out[37]);

/* Number of Unicode code points in a UTF-8 string, or -1 when it is not valid UTF-8 (strict:
 * overlong forms, surrogates and code points beyond U+10FFFF are invalid, as for jansson). */
long carillon_utf8_length(const char *s, size_t len);

/* uv_poll_start restarts skipped because nothing changed, and changes of events made in place
 * (src/util/uv_poll_filter.c). */
extern unsigned long carillon_uv_poll_restarts_skipped;
extern unsigned long carillon_uv_poll_changes_in_place;

/* True when s is one JSON text (any value, white space around it allowed), checked without building
 * it and at least as strictly as jansson's decoder (src/util/json_text.c). */
bool carillon_json_text_valid(const char *s);
/* Append n bytes of valid UTF-8 as the inside of a JSON string literal: \" and \\ escaped, control
 * characters as \u00xx, everything else as is. */
void carillon_json_escape(struct carillon_buf *b, const char *s, size_t n);
/* Append s as a JSON string literal; -1 (nothing appended) when s is not valid UTF-8. */
int carillon_json_string(struct carillon_buf *b, const char *s);
/* The same, byte for byte as PostgreSQL's to_json(text)::text writes it (its escape_json: \b \f \n
 * \r \t for those five control characters, \u00xx for the others). */
int carillon_json_string_pg(struct carillon_buf *b, const char *s);

/* Copy arbitrary bytes into `out` (out_size > 0) as valid UTF-8 safe to quote in a message or a
 * log line: every invalid sequence and every control character (C0, DEL) becomes U+FFFD; when the
 * result does not fit it is cut on a code point boundary and ends with "...". Returns the length
 * written (out is always NUL-terminated). */
size_t carillon_utf8_sanitize(char *out, size_t out_size, const char *in, size_t in_len);

/* The longest prefix of s[0..len) not longer than `max` that does not end inside a multi-byte
 * sequence (the bytes before it are left as they are). */
size_t carillon_utf8_prefix(const char *s, size_t len, size_t max);

/* snprintf that, when it has to truncate, cuts on a code point boundary instead of in the middle
 * of a multi-byte character. Returns the length written. */
size_t carillon_utf8_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t carillon_utf8_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* A name/value pair (decoded query arguments, path labels); both owned by whoever holds it. */
struct carillon_kv {
	char *name;
	char *value;
};

/* Growable byte buffer. */
struct carillon_buf {
	char *data;
	size_t len, cap;
};
void carillon_buf_append(struct carillon_buf *b, const void *p, size_t n);
void carillon_buf_appendf(struct carillon_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void carillon_buf_free(struct carillon_buf *b);

#endif
