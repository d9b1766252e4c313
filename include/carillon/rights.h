/* Rights of a principal over an operation, checked before the operation's own rules. */
#ifndef CARILLON_RIGHTS_H
#define CARILLON_RIGHTS_H

#include <stddef.h>

#include <jansson.h>

#include "carillon/auth.h"
#include "carillon/model.h"

/* 0 when allowed; -1 (ForbiddenException) with a reason otherwise. */
int carillon_rights_check(const struct carillon_op *op, const struct carillon_principal *p, json_t *input,
			  char *why, size_t why_len);

#endif
