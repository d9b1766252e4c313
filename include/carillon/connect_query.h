/*
 * The query of a websocket upgrade (GET /connect?userArn=...&X-Amz-...), as amazon-chime-sdk-js's
 * DefaultMessagingSession sends it: the parameters the session needs, and the query re-encoded for
 * the SigV4 presigned check. Pure (no lws): the upgrade handler copies the fragments out of lws and
 * hands them here, and the fuzz harness tests/fuzz/fuzz_connect_query.c drives it directly.
 */
#ifndef CARILLON_CONNECT_QUERY_H
#define CARILLON_CONNECT_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More fragments than this, or one fragment longer than this, and the query is malformed. */
#define CARILLON_CONNECT_MAX_PARAMS 64
#define CARILLON_CONNECT_MAX_FRAGMENT 8192

struct carillon_connect_params {
	char user_arn[1601];      /* userArn, decoded; "" when absent */
	int64_t since;            /* since-position=N, or -1 */
	bool prefetch;            /* prefetch-on=connect */
	char prefetch_sort[24];   /* prefetch-sort-by; "" when absent */
	char *canonical_query;    /* malloc'd: every pair in the order received, name and value
	                           * percent-encoded (RFC 3986 unreserved set), joined by '&'; the SigV4
	                           * verifier sorts the pairs itself */
};

/* frags: the query fragments "name=value" as lws yields them (already percent-decoded).
 * Returns 0, or -1 when the query is malformed (the caller refuses the session): too many or too
 * long fragments, a userArn longer than 1600 bytes or not valid UTF-8, a since-position that is not
 * a non-negative decimal integer fitting in 63 bits, a prefetch-sort-by longer than 23 bytes or not
 * valid UTF-8, or userArn / since-position / prefetch-on / prefetch-sort-by given twice.
 * On -1 `out` holds nothing to free (canonical_query is NULL). */
int carillon_connect_params_parse(const char *const *frags, size_t n, struct carillon_connect_params *out);
void carillon_connect_params_free(struct carillon_connect_params *p);

#endif
