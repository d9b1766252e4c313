/*
 * Unit tests for the outbound signer (src/auth/sigv4_sign.c).
 *
 * Vectors:
 * - AWS's SigV4 test suite (aws-sig-v4-test-suite, 2015-08-30T12:36:00Z, AKIDEXAMPLE /
 *   wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1, service "service"): get-vanilla,
 *   post-x-www-form-urlencoded and post-sts-header-before (session token), with the published
 *   signatures. The suite's requests carry no X-Amz-Content-Sha256, hence
 *   CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256 for them.
 * - Kinesis PutRecords and Lambda Invoke requests as the server sends them (X-Amz-Content-Sha256
 *   signed), signed independently by @smithy/signature-v4 5.7.5 (the signer of the AWS SDK for
 *   JavaScript v3) with the same key, clock pinned to 2026-11-22T03:23:57Z.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/sigv4_sign.h"

#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_NOW_MS 1440938160000LL /* 2015-08-30T12:36:00Z */
#define SMITHY_NOW_MS 1795317837000LL /* 2026-11-22T03:23:57Z */
#define SUITE_SCOPE "Credential=" SUITE_AKID "/20150830/us-east-1/service/aws4_request"

#define STS_TOKEN                                                                                                 \
	"AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfK" \
	"D8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8" \
	"Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3" \
	"iSIlTJabIQwj2ICCR/oLxBA=="

#define KINESIS_BODY "{\"StreamName\":\"chime-messaging-x\",\"Records\":[]}"
#define KINESIS_SHA "77d829f2ed06577080af1688c454cbdce84e5845106468a359d932aea86d2357"

static const char *const kinesis_headers[] = {"Content-Type: application/x-amz-json-1.1",
					      "X-Amz-Target: Kinesis_20131202.PutRecords"};

static void test_get_vanilla(void **state)
{
	(void)state;
	char *out[4] = {0};
	int n = carillon_sigv4_sign_ex("GET", "https://example.amazonaws.com/", NULL, 0, NULL, 0, "us-east-1",
				       "service", SUITE_AKID, SUITE_SECRET, NULL, SUITE_NOW_MS,
				       CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "Authorization: AWS4-HMAC-SHA256 " SUITE_SCOPE ", SignedHeaders=host;x-amz-date, "
				    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	assert_string_equal(out[1], "X-Amz-Date: 20150830T123600Z");
	carillon_sigv4_free_lines(out, n);
	/* The default port, the host's case and an empty query do not change the signed host. */
	n = carillon_sigv4_sign_ex("GET", "https://Example.AmazonAWS.com:443/?", NULL, 0, NULL, 0, "us-east-1", "service",
				   SUITE_AKID, SUITE_SECRET, NULL, SUITE_NOW_MS, CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 2);
	assert_non_null(strstr(out[0], "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
	carillon_sigv4_free_lines(out, n);
}

static void test_post_form(void **state)
{
	(void)state;
	static const char *const h[] = {"Content-Type: application/x-www-form-urlencoded"};
	char *out[4] = {0};
	int n = carillon_sigv4_sign_ex("POST", "https://example.amazonaws.com/", h, 1, "Param1=value1", 13, "us-east-1",
				       "service", SUITE_AKID, SUITE_SECRET, NULL, SUITE_NOW_MS,
				       CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "Authorization: AWS4-HMAC-SHA256 " SUITE_SCOPE
				    ", SignedHeaders=content-type;host;x-amz-date, "
				    "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
	carillon_sigv4_free_lines(out, n);
	/* One byte of the body more: another signature. */
	n = carillon_sigv4_sign_ex("POST", "https://example.amazonaws.com/", h, 1, "Param1=value2", 13, "us-east-1",
				   "service", SUITE_AKID, SUITE_SECRET, NULL, SUITE_NOW_MS,
				   CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 2);
	assert_null(strstr(out[0], "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
	carillon_sigv4_free_lines(out, n);
}

static void test_session_token(void **state)
{
	(void)state;
	char *out[4] = {0};
	/* post-sts-header-before: the token is a signed header. */
	int n = carillon_sigv4_sign_ex("POST", "https://example.amazonaws.com/", NULL, 0, NULL, 0, "us-east-1", "service",
				       SUITE_AKID, SUITE_SECRET, STS_TOKEN, SUITE_NOW_MS,
				       CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 3);
	assert_string_equal(out[0], "Authorization: AWS4-HMAC-SHA256 " SUITE_SCOPE
				    ", SignedHeaders=host;x-amz-date;x-amz-security-token, "
				    "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
	assert_string_equal(out[1], "X-Amz-Date: 20150830T123600Z");
	assert_string_equal(out[2], "X-Amz-Security-Token: " STS_TOKEN);
	carillon_sigv4_free_lines(out, n);
	/* An empty token is no token. */
	n = carillon_sigv4_sign_ex("POST", "https://example.amazonaws.com/", NULL, 0, NULL, 0, "us-east-1", "service",
				   SUITE_AKID, SUITE_SECRET, "", SUITE_NOW_MS, CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 2);
	carillon_sigv4_free_lines(out, n);
}

static void expect_smithy(const char *url, const char *token, const char *signed_headers, const char *sig)
{
	char *out[4] = {0}, want[512];
	int n = carillon_sigv4_sign("POST", url, kinesis_headers, 2, KINESIS_BODY, strlen(KINESIS_BODY), "eu-west-1",
				    "kinesis", SUITE_AKID, SUITE_SECRET, token, SMITHY_NOW_MS, out);
	assert_int_equal(n, token ? 4 : 3);
	snprintf(want, sizeof(want),
		 "Authorization: AWS4-HMAC-SHA256 Credential=" SUITE_AKID "/20261122/eu-west-1/kinesis/aws4_request, "
		 "SignedHeaders=%s, Signature=%s",
		 signed_headers, sig);
	assert_string_equal(out[0], want);
	assert_string_equal(out[1], "X-Amz-Date: 20261122T032357Z");
	assert_string_equal(out[2], "X-Amz-Content-Sha256: " KINESIS_SHA);
	if (token) {
		snprintf(want, sizeof(want), "X-Amz-Security-Token: %s", token);
		assert_string_equal(out[3], want);
	}
	carillon_sigv4_free_lines(out, n);
}

static void test_smithy_kinesis(void **state)
{
	(void)state;
	expect_smithy("http://127.0.0.1:4567/", NULL, "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target",
		      "45b5e1c21e82e9b3ac467168dd21677fe70c7b0931b417e4bc08dac890cc847b");
	expect_smithy("http://127.0.0.1:4567/", "FwoGZXIvYXdzEXAMPLETOKEN+/=",
		      "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-amz-target",
		      "338159600a67b8340d5704d21c51633ed3e9fb4c04c7e58071a3e1c4c29c52ba");
	/* An encoded path (a function ARN): the canonical URI encodes it once more. */
	expect_smithy("http://127.0.0.1:4567/2015-03-31/functions/"
		      "arn%3Aaws%3Alambda%3Aus-east-1%3A111122223333%3Afunction%3Aproc/invocations",
		      NULL, "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target",
		      "380aa9ccc4c50a15ff7deb7b6d22224fd51c45212b75db3f9de0f71572753fc3");
}

static void test_refusals(void **state)
{
	(void)state;
	char *out[4] = {0};
	static const char *const own[] = {"X-Amz-Date: 20150830T123600Z"};
	static const char *const bad[] = {"no colon here"};
	static const char *const skipped[] = {"Expect:", "Content-Length: 13", "Connection: keep-alive"};
	assert_int_equal(carillon_sigv4_sign("GET", "ftp://example.com/", NULL, 0, NULL, 0, "us-east-1", "s", "A", "S", NULL,
					     SUITE_NOW_MS, out),
			 -1);
	assert_int_equal(carillon_sigv4_sign("GET", "https:///", NULL, 0, NULL, 0, "us-east-1", "s", "A", "S", NULL,
					     SUITE_NOW_MS, out),
			 -1);
	assert_int_equal(carillon_sigv4_sign("GET", "https://h/", NULL, 0, NULL, 0, "us-east-1", "s", "A", NULL, NULL,
					     SUITE_NOW_MS, out),
			 -1);
	assert_int_equal(carillon_sigv4_sign("GET", "https://h/", NULL, 0, NULL, 0, "", "s", "A", "S", NULL,
					     SUITE_NOW_MS, out),
			 -1);
	assert_int_equal(carillon_sigv4_sign("GET", "https://h/", own, 1, NULL, 0, "us-east-1", "s", "A", "S", NULL,
					     SUITE_NOW_MS, out),
			 -1);
	assert_int_equal(carillon_sigv4_sign("GET", "https://h/", bad, 1, NULL, 0, "us-east-1", "s", "A", "S", NULL,
					     SUITE_NOW_MS, out),
			 -1);
	assert_int_equal(carillon_sigv4_sign("GET", "https://h/bad%zz", NULL, 0, NULL, 0, "us-east-1", "s", "A", "S",
					     NULL, SUITE_NOW_MS, out),
			 -1);
	/* Hop-by-hop and empty headers are not signed: the suite's signature still comes out. */
	int n = carillon_sigv4_sign_ex("GET", "https://example.amazonaws.com/", skipped, 3, NULL, 0, "us-east-1",
				       "service", SUITE_AKID, SUITE_SECRET, NULL, SUITE_NOW_MS,
				       CARILLON_SIGV4_SIGN_NO_CONTENT_SHA256, out);
	assert_int_equal(n, 2);
	assert_non_null(strstr(out[0], "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
	carillon_sigv4_free_lines(out, n);
}

static void test_env(void **state)
{
	(void)state;
	char *out[4] = {0};
	struct carillon_aws_credentials c;
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	assert_false(carillon_aws_credentials_get(&c));
	assert_int_equal(carillon_sigv4_sign_env("POST", "http://127.0.0.1:1/", NULL, 0, "x", 1, "kinesis", SMITHY_NOW_MS,
						 out),
			 0);
	setenv("AWS_ACCESS_KEY_ID", SUITE_AKID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", SUITE_SECRET, 1);
	setenv("AWS_SESSION_TOKEN", "tok", 1);
	assert_true(carillon_aws_credentials_get(&c));
	assert_string_equal(c.session_token, "tok");
	int n = carillon_sigv4_sign_env("POST", "http://127.0.0.1:1/", NULL, 0, "x", 1, "kinesis", SMITHY_NOW_MS, out);
	assert_int_equal(n, 4);
	assert_string_equal(out[3], "X-Amz-Security-Token: tok");
	carillon_sigv4_free_lines(out, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_vanilla),    cmocka_unit_test(test_post_form),
		cmocka_unit_test(test_session_token),  cmocka_unit_test(test_smithy_kinesis),
		cmocka_unit_test(test_refusals),       cmocka_unit_test(test_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
