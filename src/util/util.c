/* Small helpers shared by every module. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "carillon/util.h"

static void out_of_memory(size_t n)
{
	fprintf(stderr, "carillon: out of memory allocating %zu bytes\n", n);
	abort();
}

void *carillon_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		out_of_memory(n);
	return p;
}

void *carillon_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		out_of_memory(n * size);
	return p;
}

void *carillon_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		out_of_memory(n);
	return q;
}

char *carillon_xstrdup(const char *s) { return carillon_xstrndup(s, strlen(s)); }

char *carillon_xstrndup(const char *s, size_t n)
{
	char *p = carillon_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *carillon_trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int carillon_mkdir_p(const char *path, mode_t mode)
{
	char *p = carillon_xstrdup(path);
	int rc = 0;
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) && errno != EEXIST) {
				rc = -1;
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}

int carillon_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t carillon_pct_decode(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			if (len - i < 3)
				return -1;
			int h = carillon_hexval(in[i + 1]), l = carillon_hexval(in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h << 4 | l);
			i += 2;
		}
		if (c == '\0')
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return (ssize_t)o;
}

char *carillon_pct_encode(const char *in, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = carillon_xmalloc(len * 3 + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

int64_t carillon_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Random bytes for ids, from a per-thread pool of libsodium's output refilled ID_POOL bytes at a
 * time: one getrandom() per 32 ids instead of one per id (every REST request gets one). Bytes are
 * wiped from the pool as they are handed out. A forked child starts with an empty pool (its
 * parent's would give both processes the same ids). */
#define ID_POOL 512
static _Thread_local struct {
	unsigned char b[ID_POOL];
	size_t left;
	unsigned long fork_gen;
} id_pool;
static unsigned long id_fork_gen; /* bumped in a forked child */
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_after_fork(void) { id_fork_gen++; }
static void id_init(void) { pthread_atfork(NULL, NULL, id_after_fork); }

static void id_random(unsigned char *out, size_t n)
{
	pthread_once(&id_once, id_init);
	if (id_pool.fork_gen != id_fork_gen || id_pool.left < n) {
		randombytes_buf(id_pool.b, sizeof(id_pool.b));
		id_pool.left = sizeof(id_pool.b);
		id_pool.fork_gen = id_fork_gen;
	}
	unsigned char *p = id_pool.b + sizeof(id_pool.b) - id_pool.left;
	memcpy(out, p, n);
	sodium_memzero(p, n);
	id_pool.left -= n;
}

void carillon_uuid4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	id_random(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char *o = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hex[b[i] >> 4];
		*o++ = hex[b[i] & 15];
	}
	*o = '\0';
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not one:
 * a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, or cut short. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	size_t k;
	unsigned cp, min;
	if ((c & 0xe0) == 0xc0) {
		k = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		k = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		k = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (avail < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

const char *carillon_query_fragment(char *frag, struct carillon_buf *canonical)
{
	char *eq = strchr(frag, '=');
	const char *value = eq ? eq + 1 : "";
	if (eq)
		*eq = '\0';
	char *en = carillon_pct_encode(frag, strlen(frag)), *ev = carillon_pct_encode(value, strlen(value));
	carillon_buf_appendf(canonical, "%s%s=%s", canonical->len ? "&" : "", en, ev);
	free(en);
	free(ev);
	return value;
}

long carillon_utf8_length(const char *s, size_t len)
{
	long n = 0;
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		/* ASCII, eight bytes at a time (most of what the model's length checks count) */
		uint64_t w;
		if ((size_t)(end - p) >= sizeof(w)) {
			memcpy(&w, p, sizeof(w));
			if (!(w & UINT64_C(0x8080808080808080))) {
				p += sizeof(w);
				n += (long)sizeof(w);
				continue;
			}
		}
		if (*p < 0x80) {
			p++;
			n++;
			continue;
		}
		size_t k = utf8_seq(p, (size_t)(end - p));
		if (!k)
			return -1;
		p += k;
		n++;
	}
	return n;
}

size_t carillon_utf8_sanitize(char *out, size_t out_size, const char *in, size_t in_len)
{
	static const char replacement[] = "\xef\xbf\xbd", ellipsis[] = "...";
	if (!out_size)
		return 0;
	const unsigned char *p = (const unsigned char *)in, *end = p + in_len;
	size_t cap = out_size - 1, o = 0;
	size_t mark = 0; /* the last boundary that leaves room for the ellipsis */
	while (p < end) {
		size_t k = utf8_seq(p, (size_t)(end - p));
		const char *unit = (const char *)p;
		size_t n = k;
		if (!k || (k == 1 && (*p < 0x20 || *p == 0x7f))) {
			unit = replacement;
			n = sizeof(replacement) - 1;
			k = 1;
		}
		if (o + n > cap) {
			size_t room = cap - mark < sizeof(ellipsis) - 1 ? cap - mark : sizeof(ellipsis) - 1;
			memcpy(out + mark, ellipsis, room);
			o = mark + room;
			break;
		}
		memcpy(out + o, unit, n);
		o += n;
		p += k;
		if (o + sizeof(ellipsis) - 1 <= cap)
			mark = o;
	}
	out[o] = '\0';
	return o;
}

size_t carillon_utf8_prefix(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	const unsigned char *p = (const unsigned char *)s;
	/* s[max] is the first byte cut off: back up over at most three continuation bytes to the
	 * lead byte of the sequence the cut would split. */
	size_t n = max;
	while (n > 0 && max - n < 3 && (p[n] & 0xc0) == 0x80)
		n--;
	return (p[n] & 0xc0) == 0x80 ? max : n;
}

size_t carillon_utf8_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	if (!size)
		return 0;
	int n = vsnprintf(buf, size, fmt, ap);
	if (n < 0) {
		buf[0] = '\0';
		return 0;
	}
	if ((size_t)n < size)
		return (size_t)n;
	/* Truncated: buf holds size - 1 bytes of a longer text whose next byte is not at hand, so
	 * drop a trailing sequence that is not complete. */
	size_t len = size - 1, cut = len;
	const unsigned char *p = (const unsigned char *)buf;
	size_t lead = len;
	while (lead > 0 && len - lead < 3 && (p[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead > 0 && p[lead - 1] >= 0xc0) {
		size_t need = p[lead - 1] >= 0xf0 ? 4 : p[lead - 1] >= 0xe0 ? 3 : 2;
		if (len - (lead - 1) < need)
			cut = lead - 1;
	}
	buf[cut] = '\0';
	return cut;
}

size_t carillon_utf8_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = carillon_utf8_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void carillon_buf_append(struct carillon_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = carillon_xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void carillon_buf_appendf(struct carillon_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		carillon_buf_append(b, tmp, (size_t)n);
		return;
	}
	char *big = carillon_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	carillon_buf_append(b, big, (size_t)n);
	free(big);
}

void carillon_buf_free(struct carillon_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int carillon_split_host_port(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || !colon[1])
		return -1;
	const char *h = addr;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n >= hlen || strlen(colon + 1) >= plen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}
