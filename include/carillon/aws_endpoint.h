/*
 * The URL of an AWS API Carillon calls itself (Lambda Invoke for channel flows, Kinesis PutRecords
 * for streaming): the endpoint a setting names (an emulator, a proxy, a test stand-in) or the
 * service's regional endpoint, then the API's path. One builder for both callers, so the two
 * settings (CARILLON_LAMBDA_URL, CARILLON_KINESIS_URL) read alike.
 */
#ifndef CARILLON_AWS_ENDPOINT_H
#define CARILLON_AWS_ENDPOINT_H

/* `base` (when set and non-empty; its trailing '/'s dropped) or https://SERVICE.REGION.amazonaws.com,
 * followed by `path` (starting with '/', or "" for the endpoint itself). A URL that would end
 * without a path gets "/". Returns a malloc'd string. */
char *carillon_aws_endpoint_url(const char *base, const char *service, const char *region, const char *path);

/* Whether a setting's value is usable as `base`: an http:// or https:// URL with a host. */
int carillon_aws_endpoint_valid(const char *base);

#endif
