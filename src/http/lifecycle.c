/*
 * The life of a request, apart from the socket: created when its head is complete, fed its body,
 * dispatched once complete, answered by a handler, then written (request.c) and freed. The states:
 *
 *   READING --body complete--> DISPATCHED --reply--> REPLIED --written--> freed
 *      |  (bad head, oversized or overlong body: answered at once, close after)
 *      +--client gone--> freed          DISPATCHED --client gone--> orphaned (wsi NULL), freed on reply
 *
 * Nothing here calls libwebsockets but carillon_http_want_write (replaced by the unit test), so the
 * state machine is tested without a socket (tests/unit/test_request.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "carillon/config.h"
#include "carillon/http.h"
#include "carillon/log.h"
#include "carillon/metrics.h"
#include "carillon/util.h"
#include "http_internal.h"

static unsigned in_flight;
static carillon_http_dispatch_fn dispatcher;
static unsigned live;

void (*carillon_http_want_write)(struct lws *wsi) = carillon_http_write_now;

unsigned carillon_http_live(void) { return live; }

unsigned carillon_http_in_flight(void) { return in_flight; }
void carillon_http_set_dispatcher(carillon_http_dispatch_fn fn) { dispatcher = fn; }

const char *carillon_req_method(const struct carillon_req *r) { return r->method; }
const char *carillon_req_path(const struct carillon_req *r) { return r->path; }
const char *carillon_req_raw_query(const struct carillon_req *r) { return r->raw_query; }
const char *carillon_req_id(const struct carillon_req *r) { return r->id; }
int64_t carillon_req_time_ms(const struct carillon_req *r) { return r->t_ms; }
void *carillon_req_data(const struct carillon_req *r) { return r->data; }

const struct carillon_kv *carillon_req_query(const struct carillon_req *r, size_t *n)
{
	*n = r->n_query;
	return r->query;
}

const char *carillon_req_body(const struct carillon_req *r, size_t *len)
{
	*len = r->body.len;
	return r->body.data;
}

void carillon_req_set_operation(struct carillon_req *r, const char *service, const char *operation)
{
	r->service = service;
	r->operation = operation;
}

void carillon_req_set_data(struct carillon_req *r, void *data, void (*free_fn)(void *data))
{
	if (r->data_free)
		r->data_free(r->data);
	r->data = data;
	r->data_free = free_fn;
}

void carillon_http_req_free(struct carillon_req *r)
{
	if (!r)
		return;
	carillon_http_write_cancel(r);
	free(r->path);
	for (size_t i = 0; i < r->n_query; i++) {
		free(r->query[i].name);
		free(r->query[i].value);
	}
	free(r->query);
	free(r->raw_query);
	for (int i = 0; i < r->n_hdr; i++) {
		free(r->hdr[i].name);
		free(r->hdr[i].value);
	}
	free(r->hdr);
	carillon_buf_free(&r->body);
	if (r->data_free)
		r->data_free(r->data);
	free(r->resp);
	free(r->cors_origin);
	free(r->cors_preflight_headers);
	free(r);
	live--;
}

const char *carillon_req_path_for_message(const struct carillon_req *r, char *buf, size_t size)
{
	const char *path = r->path ? r->path : "";
	carillon_utf8_sanitize(buf, size, path, strlen(path));
	return buf;
}

static void req_schedule_write(struct carillon_req *r)
{
	if (r->wsi)
		carillon_http_want_write(r->wsi);
	else
		carillon_http_req_free(r);
}

/* A header read with the head (no lws lookup: the connection may be gone). */
static const char *head_header(const struct carillon_req *r, const char *name)
{
	for (int i = 0; i < r->n_hdr; i++)
		if (!strcmp(r->hdr[i].name, name))
			return r->hdr[i].value;
	return NULL;
}

void carillon_http_credential_akid(const char *authorization, char *out, size_t out_len)
{
	const char *cred = authorization ? strstr(authorization, "Credential=") : NULL;
	if (!out_len)
		return;
	out[0] = '\0';
	if (cred) {
		cred += 11;
		size_t n = strcspn(cred, "/, ");
		snprintf(out, out_len, "%.*s", (int)(n < out_len - 1 ? n : out_len - 1), cred);
	}
}

/*
 * The request is answered: its metrics and its access line. The access key id is the one the
 * Authorization header names (Credential=AKID/...), verified or not (a refused request says which
 * key was tried); signatures, tokens and bodies are never written.
 */
static void request_done(const struct carillon_req *r)
{
	const char *service = r->service ? r->service : "none", *operation = r->operation ? r->operation : "none";
	double seconds = carillon_metrics_clock() - r->t0;
	carillon_metrics_request(service, operation, r->status, seconds);
	if (!carillon_log_enabled(CARILLON_LOG_INFO))
		return;
	char akid[129];
	carillon_http_credential_akid(head_header(r, "authorization"), akid, sizeof(akid));
	const struct carillon_log_field f[] = {
		CARILLON_LOG_STR("request_id", r->id),
		CARILLON_LOG_STR("method", r->method),
		CARILLON_LOG_STR("service", service),
		CARILLON_LOG_STR("operation", operation),
		CARILLON_LOG_INT("status", r->status),
		CARILLON_LOG_STR("error", r->error_type),
		CARILLON_LOG_NUM("latency_ms", seconds * 1000.0),
		CARILLON_LOG_STR("access_key_id", akid[0] ? akid : NULL),
		CARILLON_LOG_STR("bearer", head_header(r, "x-amz-chime-bearer")),
		CARILLON_LOG_INT("bytes_in", r->body.len),
		CARILLON_LOG_INT("bytes_out", r->resp_len),
		CARILLON_LOG_STR("peer", r->peer[0] ? r->peer : NULL),
	};
	carillon_log_event(CARILLON_LOG_INFO, "access", f, sizeof(f) / sizeof(f[0]));
}

static void req_set_response(struct carillon_req *r, int status, const char *error_type, const char *body,
			     size_t len)
{
	r->status = status;
	r->error_type = error_type;
	r->resp = carillon_xmalloc(LWS_PRE + CARILLON_RESP_HEAD_ROOM + len + 1);
	memcpy(CARILLON_RESP_BODY(r), body, len);
	r->resp_len = len;
	if (r->state == REQ_DISPATCHED)
		in_flight--;
	r->state = REQ_REPLIED;
	request_done(r);
}

static const struct {
	const char *type;
	int status;
	const char *code;
} err_table[] = {
	[CARILLON_ERR_BAD_REQUEST] = {"BadRequestException", 400, "BadRequest"},
	[CARILLON_ERR_UNAUTHORIZED] = {"UnauthorizedClientException", 401, "Unauthorized"},
	[CARILLON_ERR_FORBIDDEN] = {"ForbiddenException", 403, "Forbidden"},
	[CARILLON_ERR_NOT_FOUND] = {"NotFoundException", 404, "NotFound"},
	[CARILLON_ERR_CONFLICT] = {"ConflictException", 409, "Conflict"},
	[CARILLON_ERR_RESOURCE_LIMIT] = {"ResourceLimitExceededException", 400, "ResourceLimitExceeded"},
	[CARILLON_ERR_THROTTLED] = {"ThrottledClientException", 429, "Throttled"},
	[CARILLON_ERR_SERVICE_FAILURE] = {"ServiceFailureException", 500, "ServiceFailure"},
	[CARILLON_ERR_SERVICE_UNAVAILABLE] = {"ServiceUnavailableException", 503, "ServiceUnavailable"},
	[CARILLON_ERR_UNKNOWN_OPERATION] = {"UnknownOperationException", 404, "NotFound"},
	[CARILLON_ERR_PAYLOAD_TOO_LARGE] = {"BadRequestException", 413, "BadRequest"},
	[CARILLON_ERR_HEADERS_TOO_LARGE] = {"BadRequestException", 431, "BadRequest"},
	[CARILLON_ERR_NOT_IMPLEMENTED] = {"BadRequestException", 400, "BadRequest"},
};
#define N_ERRORS (sizeof(err_table) / sizeof(err_table[0]))

/* Pinpoint's exceptions (model/pinpoint.json): no Unauthorized, Conflict or ResourceLimit of its own,
 * so a refused signature is Forbidden (403, as AWS answers it) and a quota a BadRequest. */
static const struct {
	const char *type;
	int status;
} pinpoint_errors[N_ERRORS] = {
	[CARILLON_ERR_BAD_REQUEST] = {"BadRequestException", 400},
	[CARILLON_ERR_UNAUTHORIZED] = {"ForbiddenException", 403},
	[CARILLON_ERR_FORBIDDEN] = {"ForbiddenException", 403},
	[CARILLON_ERR_NOT_FOUND] = {"NotFoundException", 404},
	[CARILLON_ERR_CONFLICT] = {"ConflictException", 409},
	[CARILLON_ERR_RESOURCE_LIMIT] = {"BadRequestException", 400},
	[CARILLON_ERR_THROTTLED] = {"TooManyRequestsException", 429},
	[CARILLON_ERR_SERVICE_FAILURE] = {"InternalServerErrorException", 500},
	[CARILLON_ERR_SERVICE_UNAVAILABLE] = {"InternalServerErrorException", 503},
	[CARILLON_ERR_UNKNOWN_OPERATION] = {"NotFoundException", 404},
	[CARILLON_ERR_PAYLOAD_TOO_LARGE] = {"PayloadTooLargeException", 413},
	[CARILLON_ERR_HEADERS_TOO_LARGE] = {"BadRequestException", 431},
	[CARILLON_ERR_NOT_IMPLEMENTED] = {"MethodNotAllowedException", 405},
};

void carillon_req_set_error_style(struct carillon_req *r, enum carillon_err_style style) { r->err_style = style; }

/* What is left to say when even the error body cannot be built (jansson out of memory). */
static const char service_failure_body[] = "{\"Code\":\"ServiceFailure\",\"Message\":\"Internal error\"}";

void carillon_reply_json(struct carillon_req *r, int status, json_t *body)
{
	if (r->state >= REQ_REPLIED) {
		json_decref(body);
		return;
	}
	if (!status)
		status = 200;
	char *s = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(body);
	if (body && !s) {
		/* Never an empty success for a body that could not be encoded. */
		carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "Internal error: the response could not be encoded");
		return;
	}
	req_set_response(r, status, NULL, s ? s : "", s ? strlen(s) : 0);
	free(s);
	req_schedule_write(r);
}

void carillon_reply_json_text(struct carillon_req *r, int status, const char *json, size_t len)
{
	if (r->state >= REQ_REPLIED)
		return;
	req_set_response(r, status ? status : 200, NULL, json, len);
	req_schedule_write(r);
}

/* {"Code":..,"Message":..}; NULL only when jansson cannot allocate. */
static char *error_body(const char *code, const char *message)
{
	json_t *body = json_pack("{s:s,s:s}", "Code", code, "Message", message);
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return s;
}

/* Pinpoint's {"Message":..,"RequestID":..}; NULL only when jansson cannot allocate. */
static char *request_id_error_body(const char *message, const char *request_id)
{
	json_t *body = json_pack("{s:s,s:s}", "Message", message, "RequestID", request_id);
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return s;
}

/*
 * Messages may quote request bytes (a path, a member name, a database message about input): the
 * text is made valid UTF-8 without control characters, cut on a code point boundary, before it
 * goes into JSON, so the answer is always a well-formed AWS error whatever the client sent.
 */
void carillon_reply_error(struct carillon_req *r, enum carillon_err e, const char *fmt, ...)
{
	if (r->state >= REQ_REPLIED)
		return;
	if ((size_t)e >= N_ERRORS || !err_table[e].type)
		e = CARILLON_ERR_SERVICE_FAILURE;
	char raw[1024], msg[1024];
	va_list ap;
	va_start(ap, fmt);
	size_t n = carillon_utf8_vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	carillon_utf8_sanitize(msg, sizeof(msg), raw, n);
	bool pinpoint = r->err_style == CARILLON_ERR_STYLE_PINPOINT;
	const char *type = pinpoint ? pinpoint_errors[e].type : err_table[e].type;
	int status = pinpoint ? pinpoint_errors[e].status : err_table[e].status;
	char *s = pinpoint ? request_id_error_body(msg, r->id) : error_body(err_table[e].code, msg);
	if (s) {
		req_set_response(r, status, type, s, strlen(s));
		free(s);
	} else {
		e = CARILLON_ERR_SERVICE_FAILURE;
		req_set_response(r, err_table[e].status, err_table[e].type, service_failure_body,
				 sizeof(service_failure_body) - 1);
	}
	if (err_table[e].status >= 500 || e == CARILLON_ERR_UNAUTHORIZED) {
		char path[256];
		log_info("%s %s %s -> %s: %s", r->id, r->method, carillon_req_path_for_message(r, path, sizeof(path)),
			 err_table[e].type, msg);
	}
	req_schedule_write(r);
}

void carillon_http_req_dispatch(struct carillon_req *r)
{
	r->state = REQ_DISPATCHED;
	in_flight++;
	if (dispatcher)
		dispatcher(r);
	else
		carillon_reply_error(r, CARILLON_ERR_SERVICE_UNAVAILABLE, "The server is starting; retry later");
}

void carillon_http_req_body(struct carillon_req *r, const void *in, size_t len)
{
	if (!r || r->state != REQ_READING)
		return;
	if (r->body.len + len > r->content_length) {
		r->close_after = true;
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "Request body longer than its Content-Length");
		return;
	}
	carillon_buf_append(&r->body, in, len);
}

void carillon_http_req_body_complete(struct carillon_req *r)
{
	if (r && r->state == REQ_READING)
		carillon_http_req_dispatch(r);
}

void carillon_http_req_closed(struct carillon_req *r)
{
	if (!r)
		return;
	if (r->state == REQ_DISPATCHED)
		r->wsi = NULL; /* orphaned: freed when its handler replies */
	else
		carillon_http_req_free(r);
}

/* The head's framing: a body announced by Content-Length within CARILLON_MAX_BODY_BYTES (413
 * above), no chunked bodies. Dispatches at once when there is no body. */
void carillon_http_req_head(struct carillon_req *r, const char *content_length, bool chunked)
{
	if (chunked) {
		r->close_after = true;
		carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "Chunked request bodies are not supported: send Content-Length");
		return;
	}
	const char *cl = content_length;
	if (cl) {
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);
		if (end == cl || *end || cl[0] == '-') {
			r->close_after = true;
			carillon_reply_error(r, CARILLON_ERR_BAD_REQUEST, "Invalid Content-Length");
			return;
		}
		if (n > (unsigned long long)carillon_cfg.max_body_bytes) {
			r->close_after = true;
			carillon_reply_error(r, CARILLON_ERR_PAYLOAD_TOO_LARGE,
					     "Request body of %llu bytes exceeds the limit of %ld bytes", n,
					     carillon_cfg.max_body_bytes);
			return;
		}
		r->content_length = (size_t)n;
	}
	/* Without Content-Length lws never completes a body: there is none. */
	if (!r->content_length)
		carillon_http_req_dispatch(r);
}

struct carillon_req *carillon_http_req_new(struct lws *wsi, const char *method, const char *path)
{
	struct carillon_req *r = carillon_xcalloc(1, sizeof(*r));
	r->wsi = wsi;
	r->t_ms = carillon_now_ms();
	r->t0 = carillon_metrics_clock();
	carillon_uuid4(r->id);
	snprintf(r->method, sizeof(r->method), "%s", method ? method : "?");
	r->path = carillon_xstrdup(path && *path ? path : "/");
	r->state = REQ_READING;
	live++;
	return r;
}
