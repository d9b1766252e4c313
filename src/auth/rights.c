/*
 * What a principal may do, before any business rule: the root key and admin keys may do anything
 * and act as any bearer; a user-scoped credential may act only as its own AppInstanceUser (x-amz-chime-bearer
 * must be its ARN) and may not call identity or administrative operations.
 */
#include <stdio.h>
#include <string.h>

#include "carillon/rights.h"

/* Operations without a bearer that a chat client's own credential needs. */
static const char *const user_no_bearer_ops[] = {"GetMessagingSessionEndpoint", NULL};

int carillon_rights_check(const struct carillon_op *op, const struct carillon_principal *p, json_t *input,
			  char *why, size_t why_len)
{
	if (p->kind == CARILLON_PRINCIPAL_ROOT || p->kind == CARILLON_PRINCIPAL_ADMIN)
		return 0;
	if (p->kind != CARILLON_PRINCIPAL_USER) {
		snprintf(why, why_len, "Not authorized");
		return -1;
	}
	if (!op->has_bearer) {
		for (const char *const *n = user_no_bearer_ops; *n; n++)
			if (!strcmp(*n, op->name))
				return 0;
		snprintf(why, why_len, "User credentials are not authorized to perform %s", op->name);
		return -1;
	}
	const char *bearer = json_string_value(json_object_get(input, "ChimeBearer"));
	if (bearer && strcmp(bearer, p->user_arn)) {
		snprintf(why, why_len, "User credentials may act only as their own AppInstanceUser");
		return -1;
	}
	return 0;
}
