/* Model-driven routing and validation, against the embedded service models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/model.h"
#include "carillon/util.h"

#define APP "arn:aws:chime:us-east-1:111122223333:app-instance/11111111-2222-3333-4444-555555555555"

static int setup(void **state)
{
	(void)state;
	return carillon_model_init();
}

static int teardown(void **state)
{
	(void)state;
	carillon_model_free();
	return 0;
}

static const char *label(const struct carillon_route_match *m, const char *name)
{
	for (int i = 0; i < m->n_labels; i++)
		if (!strcmp(m->labels[i].name, name))
			return m->labels[i].value;
	return NULL;
}

/* lws hands us decoded paths: the ARN's slashes come back as separators. */
static void test_route_arn_labels(void **state)
{
	struct carillon_route_match m;
	assert_int_equal(carillon_route("GET", "/channels/" APP "/channel/ch1/messages", NULL, 0, &m), 0);
	assert_string_equal(m.op->name, "ListChannelMessages");
	assert_string_equal(label(&m, "channelArn"), APP "/channel/ch1");
	assert_string_equal(m.raw_path, "/channels/arn%3Aaws%3Achime%3Aus-east-1%3A111122223333%3Aapp-instance%2F"
					"11111111-2222-3333-4444-555555555555%2Fchannel%2Fch1/messages");
	carillon_route_match_free(&m);

	assert_int_equal(carillon_route("DELETE", "/channels/" APP "/channel/c/memberships/" APP "/user/u1", NULL, 0, &m), 0);
	assert_string_equal(m.op->name, "DeleteChannelMembership");
	assert_string_equal(label(&m, "channelArn"), APP "/channel/c");
	assert_string_equal(label(&m, "memberArn"), APP "/user/u1");
	carillon_route_match_free(&m);

	/* A channel named like a literal segment must not confuse the matcher. */
	assert_int_equal(carillon_route("PUT", "/channels/" APP "/channel/channel-flow/channel-flow", NULL, 0, &m), 0);
	assert_string_equal(m.op->name, "AssociateChannelFlow");
	assert_string_equal(label(&m, "channelArn"), APP "/channel/channel-flow");
	carillon_route_match_free(&m);

	/* The most specific route wins over an ARN label that could span the literal. */
	assert_int_equal(carillon_route("GET", "/app-instances/" APP "/retention-settings", NULL, 0, &m), 0);
	assert_string_equal(m.op->name, "GetAppInstanceRetentionSettings");
	assert_string_equal(label(&m, "appInstanceArn"), APP);
	carillon_route_match_free(&m);
	assert_int_equal(carillon_route("GET", "/app-instances/" APP, NULL, 0, &m), 0);
	assert_string_equal(m.op->name, "DescribeAppInstance");
	carillon_route_match_free(&m);

	assert_int_equal(carillon_route("GET", "/app-instances/" APP "/admins/" APP "/user/u1", NULL, 0, &m), 0);
	assert_string_equal(m.op->name, "DescribeAppInstanceAdmin");
	carillon_route_match_free(&m);
}

static void test_route_fixed_query(void **state)
{
	struct carillon_route_match m;
	struct carillon_kv q[2] = {{"max-results", "5"}, {"scope", "app-instance-user-memberships"}};
	assert_int_equal(carillon_route("GET", "/channels", q, 2, &m), 0);
	assert_string_equal(m.op->name, "ListChannelMembershipsForAppInstanceUser");
	carillon_route_match_free(&m);
	assert_int_equal(carillon_route("GET", "/channels", q, 1, &m), 0);
	assert_string_equal(m.op->name, "ListChannels");
	carillon_route_match_free(&m);
	struct carillon_kv op[1] = {{"operation", "search"}};
	assert_int_equal(carillon_route("POST", "/channels", op, 1, &m), 0);
	assert_string_equal(m.op->name, "SearchChannels");
	carillon_route_match_free(&m);
	/* Tag routes exist once for both services. */
	struct carillon_kv tag[1] = {{"operation", "tag-resource"}};
	assert_int_equal(carillon_route("POST", "/tags", tag, 1, &m), 0);
	assert_string_equal(m.op->name, "TagResource");
	carillon_route_match_free(&m);
	assert_int_equal(carillon_route("GET", "/nope", NULL, 0, &m), -1);
	assert_int_equal(carillon_route("PATCH", "/app-instances", NULL, 0, &m), -1);
}

static const char *no_headers(void *ctx, const char *name) { return NULL; }

static json_t *input_for(const char *op_name, const char *body, char *err, size_t err_len)
{
	const struct carillon_op *op = carillon_model_find("identity", op_name);
	struct carillon_route_match m = {.op = op ? op : carillon_model_find("messaging", op_name)};
	return carillon_model_input(m.op, &m, NULL, 0, no_headers, NULL, body, strlen(body), err, err_len);
}

static void test_validation(void **state)
{
	char err[512];
	json_t *in = input_for("CreateAppInstanceUser",
			       "{\"AppInstanceArn\":\"" APP "\",\"AppInstanceUserId\":\"u1\",\"Name\":\"n\","
			       "\"ClientRequestToken\":\"abcdef\",\"Unknown\":1}",
			       err, sizeof(err));
	assert_non_null(in);
	assert_null(json_object_get(in, "Unknown")); /* unknown members are dropped */
	json_decref(in);

	/* missing required member */
	assert_null(input_for("CreateAppInstanceUser", "{\"AppInstanceArn\":\"" APP "\",\"Name\":\"n\",\"ClientRequestToken\":\"ab\"}", err, sizeof(err)));
	assert_non_null(strstr(err, "AppInstanceUserId"));
	/* pattern */
	assert_null(input_for("CreateAppInstanceUser", "{\"AppInstanceArn\":\"" APP "\",\"AppInstanceUserId\":\"a b\",\"Name\":\"n\",\"ClientRequestToken\":\"ab\"}", err, sizeof(err)));
	assert_non_null(strstr(err, "pattern"));
	/* bad ARN */
	assert_null(input_for("CreateAppInstanceUser", "{\"AppInstanceArn\":\"not-an-arn\",\"AppInstanceUserId\":\"u\",\"Name\":\"n\",\"ClientRequestToken\":\"ab\"}", err, sizeof(err)));
	/* max length counts characters, not bytes: 100 two-byte characters are fine, 101 are not */
	char body[2048];
	char name[512] = "";
	for (int i = 0; i < 100; i++)
		strcat(name, "\xc3\xa9");
	snprintf(body, sizeof(body), "{\"AppInstanceArn\":\"" APP "\",\"AppInstanceUserId\":\"u\",\"Name\":\"%s\",\"ClientRequestToken\":\"ab\"}", name);
	in = input_for("CreateAppInstanceUser", body, err, sizeof(err));
	assert_non_null(in);
	json_decref(in);
	strcat(name, "\xc3\xa9");
	snprintf(body, sizeof(body), "{\"AppInstanceArn\":\"" APP "\",\"AppInstanceUserId\":\"u\",\"Name\":\"%s\",\"ClientRequestToken\":\"ab\"}", name);
	assert_null(input_for("CreateAppInstanceUser", body, err, sizeof(err)));
	assert_non_null(strstr(err, "less than or equal to 100"));
	/* enum, nested */
	assert_null(input_for("CreateAppInstanceUser", "{\"AppInstanceArn\":\"" APP "\",\"AppInstanceUserId\":\"u\",\"Name\":\"n\",\"ClientRequestToken\":\"ab\",\"ExpirationSettings\":{\"ExpirationDays\":1,\"ExpirationCriterion\":\"NOPE\"}}", err, sizeof(err)));
	assert_non_null(strstr(err, "ExpirationSettings.ExpirationCriterion"));
	/* integer range, nested */
	assert_null(input_for("CreateAppInstanceUser", "{\"AppInstanceArn\":\"" APP "\",\"AppInstanceUserId\":\"u\",\"Name\":\"n\",\"ClientRequestToken\":\"ab\",\"ExpirationSettings\":{\"ExpirationDays\":5476,\"ExpirationCriterion\":\"CREATED_TIMESTAMP\"}}", err, sizeof(err)));
	/* list bounds */
	assert_null(input_for("TagResource", "{\"ResourceARN\":\"" APP "\",\"Tags\":[]}", err, sizeof(err)));
	/* wrong types, malformed JSON, duplicate keys, a JSON array */
	assert_null(input_for("CreateAppInstance", "{\"Name\":5,\"ClientRequestToken\":\"ab\"}", err, sizeof(err)));
	assert_null(input_for("CreateAppInstance", "{\"Name\":\"x\",", err, sizeof(err)));
	assert_null(input_for("CreateAppInstance", "{\"Name\":\"x\",\"Name\":\"y\",\"ClientRequestToken\":\"ab\"}", err, sizeof(err)));
	assert_null(input_for("CreateAppInstance", "[1,2]", err, sizeof(err)));
}

/* The payload trait (Pinpoint): the body is the payload member's value; labels stay members; the
 * payload is validated like any member; an output document's payload member is the response body. */
static void test_payload_trait(void **state)
{
	char err[512];
	struct carillon_route_match m;
	assert_int_equal(carillon_route("PUT", "/v1/apps/0123abcd/channels/apns", NULL, 0, &m), 0);
	assert_string_equal(m.op->service, "pinpoint");
	assert_string_equal(m.op->name, "UpdateApnsChannel");
	const char *body = "{\"BundleId\":\"com.example\",\"Enabled\":true,\"Unknown\":1}";
	json_t *in = carillon_model_input(m.op, &m, NULL, 0, no_headers, NULL, body, strlen(body), err, sizeof(err));
	assert_non_null(in);
	assert_string_equal(json_string_value(json_object_get(in, "ApplicationId")), "0123abcd");
	json_t *req = json_object_get(in, "APNSChannelRequest");
	assert_string_equal(json_string_value(json_object_get(req, "BundleId")), "com.example");
	assert_true(json_is_true(json_object_get(req, "Enabled")));
	assert_null(json_object_get(req, "Unknown"));
	assert_null(json_object_get(in, "BundleId"));
	json_decref(in);
	body = "{\"Enabled\":\"yes\"}";
	assert_null(carillon_model_input(m.op, &m, NULL, 0, no_headers, NULL, body, strlen(body), err, sizeof(err)));
	assert_non_null(strstr(err, "APNSChannelRequest.Enabled"));
	/* No body: the required payload is missing. */
	assert_null(carillon_model_input(m.op, &m, NULL, 0, no_headers, NULL, "", 0, err, sizeof(err)));
	assert_non_null(strstr(err, "APNSChannelRequest"));
	json_t *out = carillon_model_output_body(m.op, json_pack("{s:{s:s}}", "APNSChannelResponse", "Platform", "APNS"));
	assert_string_equal(json_string_value(json_object_get(out, "Platform")), "APNS");
	json_decref(out);
	carillon_route_match_free(&m);
	/* Without the trait the document is the body. */
	const struct carillon_op *chime = carillon_model_find("identity", "DescribeAppInstance");
	out = carillon_model_output_body(chime, json_pack("{s:{}}", "AppInstance"));
	assert_non_null(json_object_get(out, "AppInstance"));
	json_decref(out);
}

static const char *bearer_header(void *ctx, const char *name)
{
	(void)ctx;
	return !strcmp(name, "x-amz-chime-bearer") ? APP "/user/u1" : NULL;
}

/* A validation message quotes member names and map keys the client chose: whatever their length
 * it stays valid UTF-8 (jansson refuses anything else; that used to crash the server). */
static void test_validation_message_is_utf8(void **state)
{
	(void)state;
	static const char *const units[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
	for (size_t u = 0; u < 3; u++) {
		for (int prefix = 0; prefix < 4; prefix++) {
			char key[2048] = "", body[4096], err[512];
			size_t err_len = prefix ? sizeof(err) : 100 + u; /* small ones cut inside the key */
			for (int i = 0; i < prefix; i++)
				strcat(key, "a");
			for (int i = 0; i < 300; i++)
				strcat(key, units[u]);
			snprintf(body, sizeof(body),
				 "{\"Content\":\"hi\",\"Type\":\"STANDARD\",\"Persistence\":\"PERSISTENT\","
				 "\"ClientRequestToken\":\"abcdef\",\"MessageAttributes\":{\"%s\":{\"StringValues\":[\"v\"]}}}",
				 key);
			struct carillon_route_match m;
			assert_int_equal(carillon_route("POST", "/channels/" APP "/channel/c1/messages", NULL, 0, &m), 0);
			assert_string_equal(m.op->name, "SendChannelMessage");
			json_t *in = carillon_model_input(m.op, &m, NULL, 0, bearer_header, NULL, body, strlen(body), err,
							  err_len);
			carillon_route_match_free(&m);
			assert_null(in);
			assert_non_null(strstr(err, "MessageAttributes."));
			assert_true(carillon_utf8_length(err, strlen(err)) >= 0);
			json_t *j = json_string(err);
			assert_non_null(j);
			json_decref(j);
		}
	}
}

static void test_patterns(void **state)
{
	const char *arn_pat = "arn:[a-z0-9-\\.]{1,63}:[a-z0-9-\\.]{0,63}:[a-z0-9-\\.]{0,63}:[a-z0-9-\\.]{0,63}:[^/].{0,1023}";
	assert_true(carillon_pattern_match(arn_pat, APP, strlen(APP)));
	assert_false(carillon_pattern_match(arn_pat, "arn:aws:chime", 13));
	assert_false(carillon_pattern_match(arn_pat, "arn:AWS:chime:r:a:x", 19));
	assert_false(carillon_pattern_match(arn_pat, "arn:aws:chime:r:a:/x", 20));
	const char *lex = "arn:aws:lex:[a-z]{2}-[a-z]+-\\d{1}:\\d{12}:bot-alias/[A-Z0-9]{10}/[A-Z0-9]{10}";
	const char *ok = "arn:aws:lex:us-east-1:123456789012:bot-alias/ABCDEFGHIJ/KLMNOPQRST";
	assert_true(carillon_pattern_match(lex, ok, strlen(ok)));
	assert_false(carillon_pattern_match(lex, ok, strlen(ok) - 1));
	assert_true(carillon_pattern_match("^([A-Za-z]_?)+$", "Hello_World", 11));
	assert_false(carillon_pattern_match("^([A-Za-z]_?)+$", "Hello__World", 12));
	assert_false(carillon_pattern_match(".*\\S.*", " \t ", 3));
}

static void test_timestamps(void **state)
{
	long long ms;
	assert_int_equal(carillon_parse_timestamp("2024-01-02T03:04:05.678000Z", &ms), 0);
	assert_int_equal(ms, 1704164645678LL);
	assert_int_equal(carillon_parse_timestamp("2024-01-02T03:04:05.678Z", &ms), 0);
	assert_int_equal(ms, 1704164645678LL);
	assert_int_equal(carillon_parse_timestamp("2024-01-03T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 1704240000000LL);
	assert_int_equal(carillon_parse_timestamp("2024-01-03T01:00:00+01:00", &ms), 0);
	assert_int_equal(ms, 1704240000000LL);
	assert_int_equal(carillon_parse_timestamp("1704164645.678", &ms), 0);
	assert_int_equal(ms, 1704164645678LL);
	assert_int_equal(carillon_parse_timestamp("2024-13-01T00:00:00Z", &ms), -1);
	assert_int_equal(carillon_parse_timestamp("2024-01-01 00:00:00", &ms), -1);
	assert_int_equal(carillon_parse_timestamp("2024-01-01T00:00:00.1234567890Z", &ms), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_arn_labels), cmocka_unit_test(test_route_fixed_query),
		cmocka_unit_test(test_validation),       cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_validation_message_is_utf8),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_payload_trait),
	};
	return cmocka_run_group_tests_name("model", tests, setup, teardown);
}
