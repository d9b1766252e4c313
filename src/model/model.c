/* Loading the embedded service models and routing requests to their operations. */
#include <stdlib.h>
#include <string.h>

#include "carillon/log.h"
#include "carillon/model.h"
#include "carillon/util.h"

extern const char carillon_model_identity_json[], carillon_model_identity_json_end[];
extern const char carillon_model_messaging_json[], carillon_model_messaging_json_end[];
extern const char carillon_model_carillon_json[], carillon_model_carillon_json_end[];
extern const char carillon_model_pinpoint_json[], carillon_model_pinpoint_json_end[];

struct model_service {
	const char *name;
	const char *start, *end;
	json_t *root;
};

static struct model_service services[] = {
	{"identity", carillon_model_identity_json, carillon_model_identity_json_end, NULL},
	{"messaging", carillon_model_messaging_json, carillon_model_messaging_json_end, NULL},
	{"carillon", carillon_model_carillon_json, carillon_model_carillon_json_end, NULL},
	{"pinpoint", carillon_model_pinpoint_json, carillon_model_pinpoint_json_end, NULL},
};
#define N_SERVICES (sizeof(services) / sizeof(services[0]))

static struct carillon_op *ops;
static size_t n_ops;

json_t *carillon_model_shape(const char *service, const char *name)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (!strcmp(services[i].name, service))
			return json_object_get(json_object_get(services[i].root, "shapes"), name);
	return NULL;
}

static void op_parse_uri(struct carillon_op *op, const char *uri)
{
	char *copy = carillon_xstrdup(uri);
	char *q = strchr(copy, '?');
	if (q) {
		*q++ = '\0';
		char *eq = strchr(q, '=');
		if (eq) {
			*eq = '\0';
			op->fixed_query_value = carillon_xstrdup(eq + 1);
		} else {
			op->fixed_query_value = carillon_xstrdup("");
		}
		op->fixed_query_name = carillon_xstrdup(q);
	}
	char *save = NULL;
	for (char *seg = strtok_r(copy, "/", &save); seg && op->n_segs < CARILLON_MAX_SEGMENTS;
	     seg = strtok_r(NULL, "/", &save)) {
		struct carillon_route_seg *s = &op->segs[op->n_segs++];
		size_t n = strlen(seg);
		if (seg[0] == '{' && n > 2 && seg[n - 1] == '}')
			s->label = carillon_xstrndup(seg + 1, n - 2);
		else {
			s->literal = carillon_xstrdup(seg);
			s->literal_len = n;
		}
	}
	free(copy);
}

static void op_scan_input(struct carillon_op *op, const char *service)
{
	json_t *members = json_object_get(op->input_shape, "members");
	const char *name;
	json_t *m;
	json_object_foreach(members, name, m) {
		if (json_is_true(json_object_get(m, "idempotencyToken")))
			op->idempotency_member = name;
		if (!strcmp(name, "ChimeBearer"))
			op->has_bearer = true;
		/* The paging token: NextToken in the Chime models, Token (query "token") in Pinpoint's. */
		if (!strcmp(name, "NextToken") || (!strcmp(name, "Token") && json_object_get(members, "PageSize"))) {
			op->paginated = true;
			op->page_token_member = name;
		}
		json_t *shape = carillon_model_shape(service, json_string_value(json_object_get(m, "shape")));
		const char *pattern = json_string_value(json_object_get(shape, "pattern"));
		if (pattern && !carillon_pattern_known(pattern))
			log_warn("model: %s.%s has a pattern the validator does not check: %s", op->name, name, pattern);
	}
}

static int model_load_service(struct model_service *svc)
{
	json_error_t jerr;
	svc->root = json_loadb(svc->start, (size_t)(svc->end - svc->start), 0, &jerr);
	if (!svc->root) {
		log_err("model %s: %s (line %d)", svc->name, jerr.text, jerr.line);
		return -1;
	}
	json_t *jops = json_object_get(svc->root, "operations");
	const char *signing = json_string_value(json_object_get(json_object_get(svc->root, "metadata"), "signingName"));
	ops = carillon_xrealloc(ops, sizeof(*ops) * (n_ops + json_object_size(jops)));
	const char *name;
	json_t *jop;
	json_object_foreach(jops, name, jop) {
		/* Every operation of every service is kept, the tag operations of both Chime models too
		 * (same routes and shapes, ROUTES.md 5.1): the router takes the first loaded. */
		struct carillon_op *op = &ops[n_ops];
		memset(op, 0, sizeof(*op));
		op->index = n_ops++;
		json_t *http = json_object_get(jop, "http");
		op->name = name;
		op->service = svc->name;
		op->method = json_string_value(json_object_get(http, "method"));
		json_t *code = json_object_get(http, "responseCode");
		op->response_code = code ? (int)json_integer_value(code) : 200;
		op->has_output = json_object_get(jop, "output") != NULL;
		op->signing_name = signing ? signing : "chime";
		const char *out = json_string_value(json_object_get(json_object_get(jop, "output"), "shape"));
		op->output_payload = json_string_value(json_object_get(carillon_model_shape(svc->name, out), "payload"));
		op_parse_uri(op, json_string_value(json_object_get(http, "requestUri")));
		const char *in = json_string_value(json_object_get(json_object_get(jop, "input"), "shape"));
		op->input_shape = in ? carillon_model_shape(svc->name, in) : NULL;
		op->input_payload = json_string_value(json_object_get(op->input_shape, "payload"));
		op_scan_input(op, svc->name);
	}
	return 0;
}

int carillon_model_init(void)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (model_load_service(&services[i]))
			return -1;
	log_info("model: %zu operations", n_ops);
	return 0;
}

void carillon_model_free(void)
{
	for (size_t i = 0; i < n_ops; i++) {
		struct carillon_op *op = &ops[i];
		for (int s = 0; s < op->n_segs; s++) {
			free((char *)op->segs[s].literal);
			free((char *)op->segs[s].label);
		}
		free((char *)op->fixed_query_name);
		free((char *)op->fixed_query_value);
	}
	free(ops);
	ops = NULL;
	n_ops = 0;
	for (size_t i = 0; i < N_SERVICES; i++) {
		json_decref(services[i].root);
		services[i].root = NULL;
	}
}

const struct carillon_op *carillon_model_find(const char *service, const char *name)
{
	for (size_t i = 0; i < n_ops; i++)
		if (!strcmp(ops[i].name, name) && !strcmp(ops[i].service, service))
			return &ops[i];
	return NULL;
}

json_t *carillon_model_output_body(const struct carillon_op *op, json_t *output)
{
	if (!op->output_payload || !output)
		return output;
	json_t *body = json_incref(json_object_get(output, op->output_payload));
	json_decref(output);
	return body;
}

const struct carillon_op *carillon_model_op_at(size_t i) { return i < n_ops ? &ops[i] : NULL; }
size_t carillon_model_op_count(void) { return n_ops; }

/*
 * Routing. libwebsockets hands us the path already percent-decoded, so an ARN label
 * ("arn%3Aaws%3A...%2Fchannel%2Fch1") arrives as several segments. A label whose first segment is
 * an ARN may absorb the segments of the ARN's resource path; the matcher backtracks over how many,
 * longest first, until the literal segments of the template line up.
 */
#define MAX_PATH_SEGS 32

struct path_segs {
	int n;
	const char *s[MAX_PATH_SEGS];
	size_t len[MAX_PATH_SEGS];
};

static int split_path(const char *path, struct path_segs *ps)
{
	ps->n = 0;
	const char *p = path;
	if (*p != '/')
		return -1;
	while (*p == '/') {
		p++;
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (!len && !e)
			break;
		if (ps->n == MAX_PATH_SEGS)
			return -1;
		ps->s[ps->n] = p;
		ps->len[ps->n++] = len;
		p += len;
	}
	return 0;
}

/* How many decoded segments an ARN label may span: an AppInstance ARN is
 * "arn:...:app-instance" + "<id>" (2), one of its resources adds "<kind>" + "<id>" (4). An id is
 * never empty: a label spanning an empty segment ("/channels/<arn>/memberships/channel//") would
 * be re-encoded into a raw path that routes to another operation once decoded. */
static int arn_spans(const struct path_segs *ps, int pi, int spans[2])
{
	static const char *const kinds[] = {"user", "bot", "channel", "channel-flow", NULL};
	const char *s = ps->s[pi];
	size_t len = ps->len[pi];
	static const char suffix[] = ":app-instance";
	size_t sl = sizeof(suffix) - 1;
	if (len < 4 + sl || memcmp(s, "arn:", 4) || memcmp(s + len - sl, suffix, sl) || pi + 1 >= ps->n ||
	    !ps->len[pi + 1])
		return 0;
	int n = 0;
	if (pi + 3 < ps->n && ps->len[pi + 3])
		for (const char *const *k = kinds; *k; k++)
			if (strlen(*k) == ps->len[pi + 2] && !memcmp(*k, ps->s[pi + 2], ps->len[pi + 2]))
				spans[n++] = 4;
	spans[n++] = 2;
	return n;
}

/* Try to match template segments [ti..] against path segments [pi..]; labels record spans. */
static bool match_from(const struct carillon_op *op, int ti, const struct path_segs *ps, int pi, int span[])
{
	if (ti == op->n_segs)
		return pi == ps->n;
	if (pi >= ps->n)
		return false;
	const struct carillon_route_seg *t = &op->segs[ti];
	if (t->literal) {
		if (t->literal_len != ps->len[pi] || memcmp(t->literal, ps->s[pi], ps->len[pi]))
			return false;
		span[ti] = 1;
		return match_from(op, ti + 1, ps, pi + 1, span);
	}
	if (ps->len[pi] == 0)
		return false;
	int spans[3];
	int n = arn_spans(ps, pi, spans);
	spans[n++] = 1;
	for (int i = 0; i < n; i++) {
		span[ti] = spans[i];
		if (match_from(op, ti + 1, ps, pi + spans[i], span))
			return true;
	}
	return false;
}

static const char *query_value(const struct carillon_kv *q, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(q[i].name, name))
			return q[i].value;
	return NULL;
}

static void fill_match(const struct carillon_op *op, const struct path_segs *ps, const int span[],
		       struct carillon_route_match *m)
{
	struct carillon_buf raw = {0};
	m->op = op;
	m->n_labels = 0;
	int pi = 0;
	for (int ti = 0; ti < op->n_segs; ti++) {
		const char *start = ps->s[pi];
		const char *end = ps->s[pi + span[ti] - 1] + ps->len[pi + span[ti] - 1];
		carillon_buf_append(&raw, "/", 1);
		if (op->segs[ti].literal) {
			carillon_buf_append(&raw, op->segs[ti].literal, strlen(op->segs[ti].literal));
		} else {
			struct carillon_kv *kv = &m->labels[m->n_labels++];
			kv->name = carillon_xstrdup(op->segs[ti].label);
			kv->value = carillon_xstrndup(start, (size_t)(end - start));
			char *enc = carillon_pct_encode(kv->value, strlen(kv->value));
			carillon_buf_append(&raw, enc, strlen(enc));
			free(enc);
		}
		pi += span[ti];
	}
	if (!raw.data)
		carillon_buf_append(&raw, "/", 1);
	m->raw_path = raw.data;
}

int carillon_route(const char *method, const char *path, const struct carillon_kv *query, size_t n_query,
		   struct carillon_route_match *m)
{
	struct path_segs ps;
	memset(m, 0, sizeof(*m));
	if (split_path(path, &ps))
		return -1;
	const struct carillon_op *plain = NULL, *fixed = NULL;
	int plain_span[CARILLON_MAX_SEGMENTS], fixed_span[CARILLON_MAX_SEGMENTS];
	for (size_t i = 0; i < n_ops; i++) {
		const struct carillon_op *op = &ops[i];
		int span[CARILLON_MAX_SEGMENTS];
		/* Most routes differ in their first segment, a literal: that is compared first. */
		const struct carillon_route_seg *first = &op->segs[0];
		if (op->n_segs && first->literal && ps.n &&
		    (first->literal_len != ps.len[0] || memcmp(first->literal, ps.s[0], ps.len[0])))
			continue;
		if (strcmp(op->method, method) || !match_from(op, 0, &ps, 0, span))
			continue;
		if (!op->fixed_query_name) {
			/* The most specific route wins: /app-instances/{arn}/retention-settings over
			 * /app-instances/{arn} with the ARN spanning "retention-settings". */
			if (plain && plain->n_segs >= op->n_segs)
				continue;
			plain = op;
			memcpy(plain_span, span, sizeof(span));
			continue;
		}
		const char *v = query_value(query, n_query, op->fixed_query_name);
		if (v && !strcmp(v, op->fixed_query_value) && (!fixed || fixed->n_segs < op->n_segs)) {
			fixed = op;
			memcpy(fixed_span, span, sizeof(span));
		}
	}
	if (fixed)
		fill_match(fixed, &ps, fixed_span, m);
	else if (plain)
		fill_match(plain, &ps, plain_span, m);
	else
		return -1;
	return 0;
}

void carillon_route_match_free(struct carillon_route_match *m)
{
	for (int i = 0; i < m->n_labels; i++) {
		free(m->labels[i].name);
		free(m->labels[i].value);
	}
	free(m->raw_path);
	memset(m, 0, sizeof(*m));
}
