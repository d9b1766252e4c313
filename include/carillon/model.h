/*
 * The service models (service-2.json of chime-sdk-identity, chime-sdk-messaging and pinpoint, plus
 * Carillon's own model/carillon.json, all embedded in the binary) drive routing, input assembly and
 * validation: every operation gets the same complete checks (required members, types, lengths,
 * patterns, enums, ranges). Once loaded the model is read-only: what serves an operation is
 * registered elsewhere (the api module's operation table), never written into it.
 */
#ifndef CARILLON_MODEL_H
#define CARILLON_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "carillon/util.h"

#define CARILLON_MAX_SEGMENTS 8

struct carillon_route_seg {
	const char *literal;   /* NULL for a label */
	size_t literal_len;
	const char *label;     /* label name without braces */
};

struct carillon_op {
	const char *name;           /* "CreateAppInstance" */
	const char *service;        /* "identity", "messaging", "carillon" or "pinpoint" */
	size_t index;               /* position in the model: 0 .. carillon_model_op_count() - 1 */
	const char *method;         /* "GET", "POST", ... */
	int response_code;          /* modeled success status */
	bool has_output;            /* an output shape exists (else empty body) */
	int n_segs;
	struct carillon_route_seg segs[CARILLON_MAX_SEGMENTS];
	const char *fixed_query_name;   /* "operation" / "scope" or NULL */
	const char *fixed_query_value;
	json_t *input_shape;        /* borrowed structure shape, or NULL */
	const char *idempotency_member; /* member with the idempotencyToken trait, or NULL */
	bool has_bearer;            /* input has ChimeBearer (x-amz-chime-bearer) */
	bool paginated;             /* input has a paging token (NextToken; Pinpoint: Token) */
	const char *page_token_member; /* "NextToken" or "Token" when paginated, else NULL */
	const char *signing_name;   /* the model's SigV4 signing name: "chime", "mobiletargeting" */
	/* The payload trait (rest-json): the member that is the whole request / response body, or
	 * NULL when the body holds the members themselves. */
	const char *input_payload;
	const char *output_payload;
};

/* Load the embedded models. Returns 0 or -1. */
int carillon_model_init(void);
void carillon_model_free(void);

/* The operation `name` of `service`, or NULL. */
const struct carillon_op *carillon_model_find(const char *service, const char *name);
/* Iterate over all operations: i from 0 while non-NULL. */
const struct carillon_op *carillon_model_op_at(size_t i);
size_t carillon_model_op_count(void);

/* A decoded request as the router sees it. */
struct carillon_route_match {
	const struct carillon_op *op;
	int n_labels;
	struct carillon_kv labels[CARILLON_MAX_SEGMENTS]; /* label name -> decoded value (owned) */
	char *raw_path;   /* the path re-encoded as the SDKs send it (owned) */
};

/* Match method + decoded path (+ decoded query pairs, for the fixed operation=/scope= values).
 * Returns 0 and fills `m` on a match; -1 when no operation has this route. */
int carillon_route(const char *method, const char *path, const struct carillon_kv *query, size_t n_query,
		   struct carillon_route_match *m);
void carillon_route_match_free(struct carillon_route_match *m);

/* Header lookup for input assembly: the value of lower-case header `name`, or NULL. */
typedef const char *(*carillon_header_fn)(void *ctx, const char *lower_name);

/* Build the operation input from labels, query, headers and the JSON body, then validate it
 * against the model. On success returns the input object (new reference). On failure returns
 * NULL and writes an AWS-style message into `err` (the caller answers BadRequestException). */
json_t *carillon_model_input(const struct carillon_op *op, const struct carillon_route_match *m,
			     const struct carillon_kv *query, size_t n_query, carillon_header_fn header,
			     void *header_ctx, const char *body, size_t body_len, char *err, size_t err_len);


/* The response body of an operation's output document (stolen): with the payload trait, the
 * payload member alone (NULL when absent); otherwise the document itself. */
json_t *carillon_model_output_body(const struct carillon_op *op, json_t *output);

/* Does `s` match the model pattern `pattern`? Patterns the checker does not know accept. */
bool carillon_pattern_match(const char *pattern, const char *s, size_t len);

/* A shape of the named service's model (borrowed), or NULL. */
json_t *carillon_model_shape(const char *service, const char *name);

/* Is the pattern one the checker implements? */
bool carillon_pattern_known(const char *pattern);

/* Parse an ISO-8601 / RFC 3339 timestamp (or epoch seconds) into epoch milliseconds. */
int carillon_parse_timestamp(const char *s, long long *epoch_ms);

#endif
