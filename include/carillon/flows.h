/*
 * Channel flows: invoking a flow's processor for each message that waits for it (docs/flows.md).
 *
 * The SQL side (sql/api/messaging_flow.sql) writes a 'flow' outbox row in the transaction that makes
 * a message PENDING: {"function": <Lambda function ARN>, "event": <the invocation payload>}, keyed
 * by the CallbackId. This module is that kind's outbox handler: it POSTs the payload to the Lambda
 * Invoke API (asynchronous invocation, SigV4-signed with the AWS_* credentials when they are set),
 * or to the webhook CARILLON_FLOW_WEBHOOKS maps the function to, retries transient failures a
 * bounded number of times, and when the processor cannot be invoked hands the message to
 * carillon.flow_invocation_failed, which applies the processor's FallbackAction.
 *
 * Single-threaded: call everything from the loop's thread.
 */
#ifndef CARILLON_FLOWS_H
#define CARILLON_FLOWS_H

#include <stddef.h>

/* Parse the settings and register the 'flow' outbox kind; before carillon_outbox_start(). Returns
 * 0, or -1 (logged) for a malformed CARILLON_FLOW_WEBHOOKS or CARILLON_LAMBDA_URL. */
int carillon_flows_init(void);

/* Free what carillon_flows_init() parsed (after the outbox stopped). */
void carillon_flows_shutdown(void);

/* Where an invocation of `function_arn` goes (exposed for the unit test): the webhook mapped to it,
 * else the Lambda Invoke URL under CARILLON_LAMBDA_URL (default https://lambda.<region>.amazonaws.com,
 * the region taken from the ARN, else CARILLON_REGION). Writes a malloc'd URL to *url, the signing
 * region to region (for Lambda; "" for a webhook). Returns 1 for Lambda, 0 for a webhook, -1 when no
 * URL can be made (the ARN is empty). */
int carillon_flows_target(const char *function_arn, char **url, char *region, size_t region_len);

/* Parse a CARILLON_FLOW_WEBHOOKS value ("arn=url,arn=url"; exposed for the unit test) into the
 * module's table, replacing it. URLs must be https://, or http:// to a loopback host. Returns the
 * number of mappings, or -1 with a reason in err. */
int carillon_flows_parse_webhooks(const char *spec, char *err, size_t err_len);

#endif
