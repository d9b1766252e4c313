/*
 * Unit tests for where a channel-flow processor is invoked (src/flows/flows.c): the Lambda Invoke URL
 * (region from the function ARN, the ARN one percent-encoded path segment, CARILLON_LAMBDA_URL) and
 * the CARILLON_FLOW_WEBHOOKS mapping (parsing, the https-or-loopback rule).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "carillon/aws_endpoint.h"
#include "carillon/config.h"
#include "carillon/flows.h"

#define ARN_EU "arn:aws:lambda:eu-west-1:111122223333:function:moderate"
#define ARN_US "arn:aws:lambda:us-east-1:111122223333:function:hooked"

static void lambda_url_from_the_arn_region(void **state)
{
	(void)state;
	carillon_cfg.region = "us-east-1";
	carillon_cfg.lambda_url = "";
	carillon_cfg.flow_webhooks = "";
	assert_int_equal(carillon_flows_parse_webhooks("", NULL, 0), 0);
	char *url = NULL;
	char region[64];
	assert_int_equal(carillon_flows_target(ARN_EU, &url, region, sizeof(region)), 1);
	assert_string_equal(url, "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/"
				 "arn%3Aaws%3Alambda%3Aeu-west-1%3A111122223333%3Afunction%3Amoderate/invocations");
	assert_string_equal(region, "eu-west-1");
	free(url);
	/* A bare function name: the server's region. */
	assert_int_equal(carillon_flows_target("moderate", &url, region, sizeof(region)), 1);
	assert_string_equal(url, "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/moderate/invocations");
	assert_string_equal(region, "us-east-1");
	free(url);
	assert_int_equal(carillon_flows_target("", &url, region, sizeof(region)), -1);
	assert_null(url);
}

/* The one builder of the Lambda and Kinesis URLs (src/util/aws_endpoint.c). */
static void aws_endpoint_urls(void **state)
{
	(void)state;
	static const struct {
		const char *base, *service, *path, *want;
	} cases[] = {
	    {NULL, "kinesis", "", "https://kinesis.eu-west-1.amazonaws.com/"},
	    {"", "lambda", "/2015-03-31/functions/f/invocations", "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/f/invocations"},
	    {"http://127.0.0.1:4566", "kinesis", "", "http://127.0.0.1:4566/"},
	    {"http://127.0.0.1:4566//", "kinesis", "", "http://127.0.0.1:4566/"},
	    {"https://proxy.example.com/kinesis", "kinesis", "", "https://proxy.example.com/kinesis"},
	    {"http://localhost:9001/", "lambda", "/2015-03-31/functions/f/invocations", "http://localhost:9001/2015-03-31/functions/f/invocations"},
	    {"https://gw.example.com/aws/", "lambda", "/x", "https://gw.example.com/aws/x"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *url = carillon_aws_endpoint_url(cases[i].base, cases[i].service, "eu-west-1", cases[i].path);
		assert_string_equal(url, cases[i].want);
		free(url);
	}
	assert_true(carillon_aws_endpoint_valid("http://127.0.0.1:1"));
	assert_true(carillon_aws_endpoint_valid("https://lambda.example.com/"));
	assert_false(carillon_aws_endpoint_valid("https://"));
	assert_false(carillon_aws_endpoint_valid("ftp://x/"));
	assert_false(carillon_aws_endpoint_valid("lambda.example.com"));
	/* CARILLON_LAMBDA_URL is read when the URL is made: no trailing '/' doubled. */
	carillon_cfg.lambda_url = "http://127.0.0.1:9000/";
	char *url = NULL;
	char region[64];
	assert_int_equal(carillon_flows_target(ARN_EU, &url, region, sizeof(region)), 1);
	assert_string_equal(url, "http://127.0.0.1:9000/2015-03-31/functions/"
				 "arn%3Aaws%3Alambda%3Aeu-west-1%3A111122223333%3Afunction%3Amoderate/invocations");
	free(url);
	carillon_cfg.lambda_url = "";
}

static void webhooks_parse_and_win_over_lambda(void **state)
{
	(void)state;
	char err[256] = "";
	assert_int_equal(carillon_flows_parse_webhooks(" " ARN_US " = http://127.0.0.1:9000/2015-03-31/functions/function/invocations ,"
						       ARN_EU "=https://hooks.example.com/m",
						       err, sizeof(err)),
			 2);
	char *url = NULL;
	char region[64];
	assert_int_equal(carillon_flows_target(ARN_US, &url, region, sizeof(region)), 0);
	assert_string_equal(url, "http://127.0.0.1:9000/2015-03-31/functions/function/invocations");
	assert_string_equal(region, "");
	free(url);
	assert_int_equal(carillon_flows_target(ARN_EU, &url, region, sizeof(region)), 0);
	assert_string_equal(url, "https://hooks.example.com/m");
	free(url);
	/* Unmapped: still Lambda. */
	assert_int_equal(carillon_flows_target("arn:aws:lambda:us-east-1:111122223333:function:other", &url, region, sizeof(region)), 1);
	free(url);
	assert_int_equal(carillon_flows_parse_webhooks("", err, sizeof(err)), 0);
}

static void webhooks_refused(void **state)
{
	(void)state;
	char err[256];
	/* Plain http to anything but loopback: the body is a user's message. */
	assert_int_equal(carillon_flows_parse_webhooks(ARN_US "=http://hooks.example.com/m", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "https://"));
	assert_int_equal(carillon_flows_parse_webhooks(ARN_US, err, sizeof(err)), -1);
	assert_int_equal(carillon_flows_parse_webhooks("=https://x.example.com/", err, sizeof(err)), -1);
	assert_int_equal(carillon_flows_parse_webhooks(ARN_US "=ftp://x/", err, sizeof(err)), -1);
	assert_int_equal(carillon_flows_parse_webhooks(ARN_US "=https://", err, sizeof(err)), -1);
	/* A refused spec leaves no mapping behind. */
	char *url = NULL;
	char region[64];
	assert_int_equal(carillon_flows_target(ARN_US, &url, region, sizeof(region)), 1);
	free(url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lambda_url_from_the_arn_region),
		cmocka_unit_test(aws_endpoint_urls),
		cmocka_unit_test(webhooks_parse_and_win_over_lambda),
		cmocka_unit_test(webhooks_refused),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	carillon_flows_shutdown();
	return rc;
}
