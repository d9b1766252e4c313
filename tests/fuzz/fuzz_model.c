/*
 * libFuzzer harness: model validation of raw JSON bodies (carillon_model_input,
 * src/model/validate.c) for every operation of both services.
 *
 * Input: byte 0 picks the operation (index modulo the number of operations), byte 1 is a flags
 * byte (bit 0: no ChimeBearer header), the rest is the request body, verbatim. The URI labels are
 * filled with well-formed values (an AppInstance ARN for *Arn labels, a short id otherwise) so
 * that validation reaches the body.
 *
 * Properties checked beyond "no crash": on success the input is a JSON object, and each of its
 * string members written as a JSON string literal -- both forms: carillon_json_string's, and
 * PostgreSQL's that the gateway writes event documents in (src/api/send_batch.c) -- reads back as
 * the same text; on failure the message is NUL-terminated and non-empty. With FUZZ_STRICT_MESSAGES=1 in the environment the
 * message must also be valid UTF-8 (it is sent to the client inside a JSON document; see
 * tests/fuzz/README.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "carillon/model.h"
#include "carillon/util.h"

#define APP "arn:aws:chime:us-east-1:111122223333:app-instance/11111111-2222-3333-4444-555555555555"
#define USER APP "/user/u1"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t n_ops;
static bool strict_messages;
static bool verbose; /* FUZZ_VERBOSE set: print each input's operation and outcome (checking seeds) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (carillon_model_init()) {
		fprintf(stderr, "carillon_model_init failed\n");
		abort();
	}
	/* FUZZ_LIST_OPS=1: print which first byte picks which operation (for writing seeds). */
	bool list = getenv("FUZZ_LIST_OPS") && !strcmp(getenv("FUZZ_LIST_OPS"), "1");
	for (; carillon_model_op_at(n_ops); n_ops++)
		if (list)
			printf("%zu %s\n", n_ops, carillon_model_op_at(n_ops)->name);
	const char *s = getenv("FUZZ_STRICT_MESSAGES");
	strict_messages = s && !strcmp(s, "1");
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	return 0;
}

struct hdr_ctx {
	bool bearer;
};

static const char *header(void *ctx, const char *lower_name)
{
	const struct hdr_ctx *c = ctx;
	if (c->bearer && !strcmp(lower_name, "x-amz-chime-bearer"))
		return USER;
	return NULL;
}

/* A well-formed value for a URI label, by its name. */
static const char *label_value(const char *label)
{
	static const struct {
		const char *label, *value;
	} known[] = {
		{"appInstanceArn", APP},
		{"channelArn", APP "/channel/ch1"},
		{"channelFlowArn", APP "/channel-flow/f1"},
		{"botArn", APP "/bot/b1"},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(label, known[i].label))
			return known[i].value;
	size_t n = strlen(label);
	return n >= 3 && !strcmp(label + n - 3, "Arn") ? USER : "abc-123";
}

/* A validated string written as a JSON string literal in form `pg` reads back as itself. */
static void check_literal(const char *op, const char *name, const char *text, bool pg)
{
	struct carillon_buf b = {0};
	if ((pg ? carillon_json_string_pg(&b, text) : carillon_json_string(&b, text)) != 0) {
		fprintf(stderr, "%s: %s: a validated string could not be written\n", op, name);
		abort();
	}
	json_t *back = json_loads(b.data, JSON_DECODE_ANY, NULL);
	if (!json_is_string(back) || json_string_length(back) != strlen(text) ||
	    memcmp(json_string_value(back), text, strlen(text))) {
		fprintf(stderr, "%s: %s: %s does not read back as the string\n", op, name, b.data);
		abort();
	}
	json_decref(back);
	carillon_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || !n_ops)
		return 0;
	const struct carillon_op *op = carillon_model_op_at(data[0] % n_ops);
	struct hdr_ctx hc = {!(data[1] & 1)};
	struct carillon_route_match m;
	memset(&m, 0, sizeof(m));
	m.op = (struct carillon_op *)op;
	for (int i = 0; i < op->n_segs && m.n_labels < CARILLON_MAX_SEGMENTS; i++) {
		const char *label = op->segs[i].label;
		if (!label)
			continue;
		m.labels[m.n_labels].name = (char *)label;
		m.labels[m.n_labels].value = (char *)label_value(label);
		m.n_labels++;
	}
	char err[512];
	memset(err, 0x5a, sizeof(err));
	json_t *input = carillon_model_input(op, &m, NULL, 0, header, &hc, (const char *)data + 2, size - 2, err,
					     sizeof(err));
	if (verbose)
		fprintf(stderr, "%s: %s\n", op->name, input ? "valid" : err);
	if (input) {
		if (!json_is_object(input)) {
			fprintf(stderr, "%s: input is not an object\n", op->name);
			abort();
		}
		const char *name;
		json_t *v;
		json_object_foreach(input, name, v) {
			if (json_is_string(v)) {
				check_literal(op->name, name, json_string_value(v), false);
				check_literal(op->name, name, json_string_value(v), true);
			}
		}
		json_decref(input);
		return 0;
	}
	if (!memchr(err, 0, sizeof(err)) || !err[0]) {
		fprintf(stderr, "%s: no NUL-terminated message\n", op->name);
		abort();
	}
	if (strict_messages) {
		json_t *s = json_string(err);
		if (!s) {
			fprintf(stderr, "%s: message is not valid UTF-8: %s\n", op->name, err);
			abort();
		}
		json_decref(s);
	}
	return 0;
}
