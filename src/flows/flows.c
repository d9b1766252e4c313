/*
 * Channel flows: the 'flow' outbox handler, which invokes a flow's processor (include/carillon/flows.h,
 * docs/flows.md).
 *
 * One outbox row is one invocation: POST the row's "event" to the Lambda Invoke API
 * (/2015-03-31/functions/{ARN}/invocations, X-Amz-Invocation-Type: Event: Lambda queues it and
 * answers 202) or to the function's webhook. A 2xx ends the row. A transient failure (no answer,
 * 429, 5xx) is retried, CARILLON_FLOW_MAX_ATTEMPTS times at most, CARILLON_FLOW_RETRY_MS apart and
 * doubling; after the last one, or at once for an answer a retry will not change (403, 404, ...),
 * carillon.flow_invocation_failed applies the processor's FallbackAction in the database. The row is
 * ended only when that has committed, so a crash in between retries the fallback, not the processor
 * (a row claimed again with its attempts used up goes straight to the fallback).
 *
 * The processor answers later and separately, with ChannelFlowCallback.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/aws_endpoint.h"
#include "carillon/config.h"
#include "carillon/db.h"
#include "carillon/flows.h"
#include "carillon/log.h"
#include "carillon/outbound.h"
#include "carillon/outbox.h"
#include "carillon/sigv4_sign.h"
#include "carillon/util.h"

#define FLOW_KIND "flow"
#define FLOW_MAX_IN_FLIGHT 64
#define FLOW_MAX_RETRY_MS 300000L

struct webhook {
	char *arn;
	char *url;
};

static struct {
	struct webhook *hooks;
	size_t n_hooks;
} F;

/* One invocation in progress: the outbox item and what outlives its borrowed payload. */
struct invocation {
	struct carillon_outbox_item *item;
	char *callback_id;
	char *function_arn;
	int attempt; /* 1 for the first */
};

static void free_hooks(void)
{
	for (size_t i = 0; i < F.n_hooks; i++) {
		free(F.hooks[i].arn);
		free(F.hooks[i].url);
	}
	free(F.hooks);
	F.hooks = NULL;
	F.n_hooks = 0;
}

/* http:// is for tests and local processors only: the body is a user's message. */
static bool loopback_http(const char *url)
{
	static const char *const ok[] = {"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:",
					 "http://localhost/", "http://[::1]:", "http://[::1]/"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strncmp(url, ok[i], strlen(ok[i])))
			return true;
	return false;
}

static bool url_allowed(const char *url)
{
	return (!strncmp(url, "https://", 8) && url[8]) || loopback_http(url);
}

int carillon_flows_parse_webhooks(const char *spec, char *err, size_t err_len)
{
	free_hooks();
	if (!spec || !*spec)
		return 0;
	char *copy = carillon_xstrdup(spec);
	char *save = NULL;
	int n = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *pair = carillon_trim(tok);
		if (!*pair)
			continue;
		char *eq = strchr(pair, '=');
		if (!eq) {
			snprintf(err, err_len, "\"%s\" is not functionArn=URL", pair);
			goto fail;
		}
		*eq = '\0';
		char *arn = carillon_trim(pair), *url = carillon_trim(eq + 1);
		if (!*arn || !url_allowed(url)) {
			snprintf(err, err_len, "the webhook of \"%s\" must be an https:// URL (http:// only to a loopback address)", arn);
			goto fail;
		}
		F.hooks = carillon_xrealloc(F.hooks, (F.n_hooks + 1) * sizeof(*F.hooks));
		F.hooks[F.n_hooks].arn = carillon_xstrdup(arn);
		F.hooks[F.n_hooks].url = carillon_xstrdup(url);
		F.n_hooks++;
		n++;
	}
	free(copy);
	return n;
fail:
	free(copy);
	free_hooks();
	return -1;
}

/* The region of arn:aws:lambda:REGION:ACCOUNT:function:NAME (empty when the ARN has none). */
static void arn_region(const char *arn, char *out, size_t out_len)
{
	out[0] = '\0';
	const char *p = arn;
	for (int field = 0; field < 3; field++) {
		p = strchr(p, ':');
		if (!p)
			return;
		p++;
	}
	size_t n = strcspn(p, ":");
	if (n < out_len) {
		memcpy(out, p, n);
		out[n] = '\0';
	}
}

int carillon_flows_target(const char *function_arn, char **url, char *region, size_t region_len)
{
	*url = NULL;
	if (!function_arn || !*function_arn)
		return -1;
	for (size_t i = 0; i < F.n_hooks; i++)
		if (!strcmp(F.hooks[i].arn, function_arn)) {
			*url = carillon_xstrdup(F.hooks[i].url);
			if (region_len)
				region[0] = '\0';
			return 0;
		}
	arn_region(function_arn, region, region_len);
	if (!region[0])
		snprintf(region, region_len, "%s", carillon_cfg.region);
	/* The function's name or ARN is one path segment: its ':' are percent-encoded. */
	char *segment = carillon_pct_encode(function_arn, strlen(function_arn));
	struct carillon_buf path = {0};
	carillon_buf_appendf(&path, "/2015-03-31/functions/%s/invocations", segment);
	*url = carillon_aws_endpoint_url(carillon_cfg.lambda_url, "lambda", region, path.data);
	carillon_buf_free(&path);
	free(segment);
	return 1;
}

static void invocation_free(struct invocation *inv)
{
	free(inv->callback_id);
	free(inv->function_arn);
	free(inv);
}

static long retry_delay_ms(int attempt)
{
	long d = carillon_cfg.flow_retry_ms;
	for (int i = 1; i < attempt && d < FLOW_MAX_RETRY_MS; i++)
		d *= 2;
	return d < FLOW_MAX_RETRY_MS ? d : FLOW_MAX_RETRY_MS;
}

static void fallback_done(void *arg, const struct carillon_db_result *r)
{
	struct invocation *inv = arg;
	if (!r->res) {
		/* Not recorded: the row comes back after the lease, its attempts used up, and tries the
		 * fallback again. */
		log_warn("flow: the fallback of callback %s failed: %s %s", inv->callback_id, r->sqlstate, r->message);
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_RETRY, retry_delay_ms(1), "fallback not recorded");
	} else {
		const char *outcome = PQgetisnull(r->res, 0, 0) ? "nothing (already answered)" : PQgetvalue(r->res, 0, 0);
		log_notice("flow: processor %s not invoked for callback %s: message %s", inv->function_arn,
			   inv->callback_id, outcome);
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_DONE, 0, NULL);
	}
	invocation_free(inv);
}

/* The processor cannot be invoked: its FallbackAction applies (in SQL). `detail` reaches the sender
 * as Status.Detail, so it says what failed, never where (no URL, no address). */
static void fallback(struct invocation *inv, const char *detail)
{
	const char *params[2] = {inv->callback_id, detail};
	if (carillon_db_query("select carillon.flow_invocation_failed($1, $2)", 2, params, fallback_done, inv)) {
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_RETRY, retry_delay_ms(1), "database queue full");
		invocation_free(inv);
	}
}

/* Retry-After in seconds (Lambda's 429 may carry one), as milliseconds; 0 when absent. */
static long retry_after_ms(const struct carillon_outbound_resp *r)
{
	const char *v = carillon_outbound_header(r, "Retry-After");
	long s = v ? strtol(v, NULL, 10) : 0;
	return s > 0 && s < 3600 ? s * 1000 : 0;
}

static void on_answer(void *arg, const struct carillon_outbound_resp *r)
{
	struct invocation *inv = arg;
	if (r->error == CARILLON_OUTBOUND_OK && r->status >= 200 && r->status < 300) {
		log_debug("flow: processor %s invoked for callback %s (HTTP %ld)", inv->function_arn, inv->callback_id, r->status);
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_DONE, 0, NULL);
		invocation_free(inv);
		return;
	}
	if (r->error == CARILLON_OUTBOUND_E_CANCELLED) {
		/* Shutting down: not the processor's failure; another node (or this one, restarted) retries. */
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_RETRY, retry_delay_ms(1), "shutting down");
		invocation_free(inv);
		return;
	}
	char detail[200];
	bool transient;
	if (r->error != CARILLON_OUTBOUND_OK) {
		transient = carillon_outbound_error_transient(r->error);
		snprintf(detail, sizeof(detail), "%s", carillon_outbound_error_name(r->error));
		log_warn("flow: invoking %s for callback %s (attempt %d): %s: %s", inv->function_arn, inv->callback_id,
			 inv->attempt, detail, r->error_detail);
	} else {
		transient = r->status == 408 || r->status == 429 || r->status >= 500;
		const char *type = carillon_outbound_header(r, "X-Amzn-ErrorType");
		char type_buf[64] = "";
		if (type)
			snprintf(type_buf, sizeof(type_buf), " %.*s", (int)strcspn(type, ":"), type);
		snprintf(detail, sizeof(detail), "HTTP %ld%s", r->status, type_buf);
		log_warn("flow: invoking %s for callback %s (attempt %d): %s", inv->function_arn, inv->callback_id,
			 inv->attempt, detail);
	}
	if (transient && inv->attempt < carillon_cfg.flow_max_attempts) {
		long after = retry_after_ms(r);
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_RETRY, after ? after : retry_delay_ms(inv->attempt), detail);
		invocation_free(inv);
		return;
	}
	char why[256];
	snprintf(why, sizeof(why), "%s (%d attempt%s)", detail, inv->attempt, inv->attempt == 1 ? "" : "s");
	fallback(inv, why);
}

/* The request headers: the content type, the asynchronous invocation type for Lambda, and for Lambda
 * with credentials the SigV4 lines. The credentials are read per request (carillon_aws_credentials_get):
 * rotated ones are used from the next invocation on. Returns the count, or -1 when a Lambda request
 * should be signed and cannot be (a key id without its secret, a URL the signer refuses): the caller
 * must not send it unsigned. signed_lines[] holds what must be freed. */
static int build_headers(bool lambda, const char *url, const char *region, const char *body, const char *hdrs[8],
			 char *signed_lines[4], int *n_signed)
{
	int n = 0;
	hdrs[n++] = "Content-Type: application/json";
	*n_signed = 0;
	if (!lambda)
		return n;
	hdrs[n++] = "X-Amz-Invocation-Type: Event";
	struct carillon_aws_credentials c;
	if (!carillon_aws_credentials_get(&c))
		return c.access_key_id || c.secret_key ? -1 : n; /* none at all: unsigned, for an emulator */
	int k = carillon_sigv4_sign("POST", url, hdrs, (size_t)n, body, strlen(body), region, "lambda", c.access_key_id,
				    c.secret_key, c.session_token, carillon_now_ms(), signed_lines);
	if (k < 0)
		return -1;
	for (int i = 0; i < k; i++)
		hdrs[n++] = signed_lines[i];
	*n_signed = k;
	return n;
}

/* An invocation that cannot be signed is not sent: a transient failure, like no answer (the
 * credentials may be fixed or rotated in), so the row is retried and, its attempts used up, falls
 * back. */
static void unsignable(struct invocation *inv, const char *url)
{
	log_warn("flow: cannot sign the invocation of %s for callback %s (attempt %d): incomplete AWS credentials or "
		 "an unsignable URL; not sent", url, inv->callback_id, inv->attempt);
	if (inv->attempt < carillon_cfg.flow_max_attempts) {
		carillon_outbox_complete(inv->item, CARILLON_OUTBOX_RETRY, retry_delay_ms(inv->attempt), "request not signed");
		invocation_free(inv);
		return;
	}
	char why[128];
	snprintf(why, sizeof(why), "request not signed (%d attempt%s)", inv->attempt, inv->attempt == 1 ? "" : "s");
	fallback(inv, why);
}

static void flow_handle(struct carillon_outbox_item *item)
{
	const char *fn = json_string_value(json_object_get(item->payload, "function"));
	json_t *event = json_object_get(item->payload, "event");
	if (!fn || !json_is_object(event)) {
		carillon_outbox_complete(item, CARILLON_OUTBOX_DROP, 0, "flow row without function or event");
		return;
	}
	struct invocation *inv = carillon_xcalloc(1, sizeof(*inv));
	inv->item = item;
	inv->callback_id = carillon_xstrdup(item->dedupe_key);
	inv->function_arn = carillon_xstrdup(fn);
	inv->attempt = item->attempts + 1;
	if (item->attempts >= carillon_cfg.flow_max_attempts) {
		/* Its attempts were used up before its fallback could be recorded (see the header). */
		fallback(inv, "no answer (retries exhausted)");
		return;
	}
	char *url = NULL;
	char region[64];
	int lambda = carillon_flows_target(fn, &url, region, sizeof(region));
	if (lambda < 0) {
		fallback(inv, "no processor");
		return;
	}
	char *body = json_dumps(event, JSON_COMPACT);
	const char *hdrs[8];
	char *signed_lines[4];
	int n_signed;
	int n = build_headers(lambda == 1, url, region, body, hdrs, signed_lines, &n_signed);
	if (n < 0) {
		unsignable(inv, url);
		free(body);
		free(url);
		return;
	}
	struct carillon_outbound_req req = {
		.method = "POST", .url = url, .headers = hdrs, .n_headers = (size_t)n, .body = body, .body_len = strlen(body),
	};
	int rc = carillon_outbound_request(&req, on_answer, inv);
	for (int i = 0; i < n_signed; i++)
		free(signed_lines[i]);
	free(body);
	free(url);
	if (rc) {
		/* The outbound queue is full: not an attempt at the processor, try again soon. */
		carillon_outbox_complete(item, CARILLON_OUTBOX_RETRY, retry_delay_ms(1), "outbound queue full");
		invocation_free(inv);
	}
}

int carillon_flows_init(void)
{
	char err[256];
	if (carillon_flows_parse_webhooks(carillon_cfg.flow_webhooks, err, sizeof(err)) < 0) {
		log_err("CARILLON_FLOW_WEBHOOKS: %s", err);
		return -1;
	}
	if (carillon_cfg.lambda_url && *carillon_cfg.lambda_url && !carillon_aws_endpoint_valid(carillon_cfg.lambda_url)) {
		log_err("CARILLON_LAMBDA_URL must be an http:// or https:// URL");
		return -1;
	}
	if (carillon_outbox_register(FLOW_KIND, flow_handle, FLOW_MAX_IN_FLIGHT)) {
		log_err("flow: cannot register the outbox kind");
		return -1;
	}
	return 0;
}

void carillon_flows_shutdown(void)
{
	free_hooks();
}
