/*
 * libFuzzer harness: the request-head reader of the scrape endpoint (carillon_metrics_parse_head,
 * src/metrics_endpoint.c), which reads whatever bytes reach CARILLON_METRICS_LISTEN.
 *
 * Input: byte 0 sets the bound (`max`: the input's length minus 1 when even, the server's 8191 when
 * odd, so the "too large" answer is reached), the rest is the bytes received, in one piece and
 * then as the server sees them arrive, one prefix after another (a read may end anywhere).
 *
 * Properties checked beyond "no crash, no sanitizer report": the answer is one of the enum's;
 * INCOMPLETE only below the bound and without an empty line; GET or HEAD only for a request line
 * "GET /metrics" / "HEAD /metrics" (any query) followed by " HTTP/1."; a NUL byte is always BAD;
 * every prefix the server may have read (up to a '\n', a NUL or the bound) holds to the same rules.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/metrics_endpoint.h"

#define SERVER_MAX 8191

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, size_t len)
{
	fprintf(stderr, "carillon_metrics_parse_head (%zu bytes): %s\n", len, what);
	abort();
}

static bool has_end(const char *b, size_t n)
{
	return memmem(b, n, "\r\n\r\n", 4) || memmem(b, n, "\n\n", 2);
}

/* What a request line may ask for /metrics: "GET /metrics[?...] HTTP/1." or "HEAD ...". */
static bool asks_metrics(const char *b, size_t n, const char *method)
{
	size_t m = strlen(method);
	if (n < m + 9 || memcmp(b, method, m) || memcmp(b + m, " /metrics", 9))
		return false;
	const char *p = b + m + 9, *end = b + n;
	if (p < end && *p == '?')
		while (p < end && *p != ' ' && *p != '\r' && *p != '\n')
			p++;
	return (size_t)(end - p) >= 8 && !memcmp(p, " HTTP/1.", 8);
}

static void check(const char *b, size_t n, size_t max, enum carillon_metrics_head h)
{
	if (h > CARILLON_METRICS_HEAD_TOO_LARGE)
		fail("not an answer of the enum", n);
	if (memchr(b, '\0', n) && h != CARILLON_METRICS_HEAD_BAD)
		fail("a NUL byte is not refused", n);
	if (h == CARILLON_METRICS_HEAD_INCOMPLETE && (n >= max || has_end(b, n)))
		fail("INCOMPLETE at the bound or after the end of the head", n);
	if (h == CARILLON_METRICS_HEAD_TOO_LARGE && (n < max || has_end(b, n)))
		fail("TOO_LARGE below the bound or with the end of the head", n);
	if (h == CARILLON_METRICS_HEAD_GET && !asks_metrics(b, n, "GET"))
		fail("GET without a GET /metrics request line", n);
	if (h == CARILLON_METRICS_HEAD_HEAD && !asks_metrics(b, n, "HEAD"))
		fail("HEAD without a HEAD /metrics request line", n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1;
	size_t max = data[0] & 1 ? SERVER_MAX : (n ? n - 1 : 0);
	if (max > SERVER_MAX)
		max = SERVER_MAX;
	/* A copy of exactly n bytes: a read past them is an ASan report. */
	char *buf = malloc(n ? n : 1);
	memcpy(buf, data + 1, n);
	check(buf, n, max, carillon_metrics_parse_head(buf, n, max));
	/* As it arrives: the server stops at the first answer that is not INCOMPLETE. The answer can
	 * only change after a '\n' (the end of the head), a NUL or at the bound: those prefixes. */
	size_t last = n < max ? n : max;
	for (size_t len = 0; len <= last; len++) {
		if (len != last && buf[len] != '\n' && buf[len] != '\0')
			continue;
		size_t upto = len == last ? len : len + 1;
		enum carillon_metrics_head h = carillon_metrics_parse_head(buf, upto, max);
		check(buf, upto, max, h);
		if (h != CARILLON_METRICS_HEAD_INCOMPLETE)
			break;
	}
	free(buf);
	return 0;
}
