/*
 * Cross-origin requests (CORS) for browser clients: the AWS SDK for JavaScript and
 * amazon-chime-sdk-js call the REST API from pages of other origins with user-scoped SigV4
 * credentials, never cookies, so any origin may be allowed by default (what AWS endpoints do) and
 * no credentials mode is needed. CARILLON_CORS_ORIGINS restricts the origins to a list, or turns
 * CORS off ("none").
 *
 * Everything here is pure string work on bounded input: a preflight is answered from its three
 * headers alone, before authentication and without the database, and its answer is bounded
 * whatever the client sent (a hostile Access-Control-Request-Headers list is cut, never echoed
 * raw).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "carillon/config.h"
#include "http_internal.h"

/* Request headers a page may send: what the SDKs add to their calls — these three, and the AWS
 * families by prefix (x-amz-date, x-amz-security-token, x-amz-chime-bearer, amz-sdk-request, ...),
 * so a newer SDK's extra header does not break. */
static const char *const allowed_headers[] = {"authorization", "content-type", "content-encoding"};
static const char *const allowed_prefixes[] = {"x-amz-", "x-amzn-", "amz-sdk-"};

/* Headers listed in one preflight answer, and the longest name considered: bounds the answer. */
#define MAX_REFLECTED 32
#define MAX_NAME 64

static bool cors_off(void)
{
	const char *o = carillon_cfg.cors_origins;
	return o && !strcmp(o, "none");
}

bool carillon_cors_enabled(void) { return !cors_off(); }

/* Origins are compared exactly (scheme://host[:port], as browsers send them), case-sensitively
 * but for the scheme and host, which browsers send lower-cased anyway. */
static bool origin_listed(const char *origin, size_t olen)
{
	const char *p = carillon_cfg.cors_origins ? carillon_cfg.cors_origins : "*";
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t n = strcspn(p, ", ");
		if (n == 1 && *p == '*')
			return true;
		if (n && n == olen && !strncmp(p, origin, n))
			return true;
		p += n;
	}
	return false;
}

/* "*" among the listed origins: any origin. */
bool carillon_cors_any_origin(void) { return origin_listed("*", 1); }

/* The Access-Control-Allow-Origin value for a request's Origin: "*" when any origin is allowed,
 * the origin itself when it is listed, NULL when CORS is off, the request has no Origin, or the
 * origin is not allowed. An origin with bytes outside printable ASCII is never echoed. */
const char *carillon_cors_allow_origin(const char *origin)
{
	if (cors_off() || !origin)
		return NULL;
	if (carillon_cors_any_origin())
		return "*";
	size_t n = strlen(origin);
	if (!n || n > 256)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (origin[i] <= 0x20 || origin[i] >= 0x7f)
			return NULL;
	return origin_listed(origin, n) ? origin : NULL;
}

static bool header_allowed(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(allowed_headers) / sizeof(allowed_headers[0]); i++)
		if (strlen(allowed_headers[i]) == n && !strncmp(allowed_headers[i], name, n))
			return true;
	for (size_t i = 0; i < sizeof(allowed_prefixes) / sizeof(allowed_prefixes[0]); i++) {
		size_t pn = strlen(allowed_prefixes[i]);
		if (n > pn && !strncmp(allowed_prefixes[i], name, pn))
			return true;
	}
	return false;
}

static bool token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Whether `name` (n bytes) is one of the comma-separated names of `list`. */
static bool listed_already(const char *list, const char *name, size_t n)
{
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && !memcmp(p, name, n))
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

/*
 * Access-Control-Allow-Headers for a preflight: the requested names (lower-cased; a comma list as
 * browsers send) that are on the allow-list, at most MAX_REFLECTED of them, written to `out`
 * (always terminated). Names that are not tokens, too long, repeated or not allowed are left out:
 * the browser then refuses the actual request, which is the answer they deserve.
 */
size_t carillon_cors_allow_headers(const char *requested, char *out, size_t size)
{
	size_t len = 0, listed = 0;
	if (size)
		out[0] = '\0';
	for (const char *p = requested ? requested : ""; *p && listed < MAX_REFLECTED;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, ",");
		const char *name = p;
		p += n;
		while (n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
			n--;
		if (!n || n > MAX_NAME)
			continue;
		char lower[MAX_NAME + 1];
		bool ok = true;
		for (size_t i = 0; i < n && ok; i++) {
			char c = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
			ok = token_char(c);
			lower[i] = c;
		}
		lower[n] = '\0';
		if (!ok || !header_allowed(lower, n))
			continue;
		if (listed_already(out, lower, n))
			continue;
		if (len + n + 2 >= size)
			break;
		len += (size_t)snprintf(out + len, size - len, "%s%s", len ? "," : "", lower);
		listed++;
	}
	return len;
}
