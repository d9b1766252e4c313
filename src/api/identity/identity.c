/*
 * Chime SDK Identity: every operation is served by the generic SQL handler; the rules of each
 * resource live in its file under sql/api/ (identity_<resource>.sql), one function per operation.
 */
#include "carillon/api.h"

static const char *const identity_ops[] = {
	/* sql/api/identity_app_instance.sql */
	"CreateAppInstance", "DescribeAppInstance", "ListAppInstances", "UpdateAppInstance", "DeleteAppInstance",
	"PutAppInstanceRetentionSettings", "GetAppInstanceRetentionSettings",
	/* sql/api/identity_admin.sql */
	"CreateAppInstanceAdmin", "DescribeAppInstanceAdmin", "ListAppInstanceAdmins", "DeleteAppInstanceAdmin",
	/* sql/api/identity_user.sql */
	"CreateAppInstanceUser", "DescribeAppInstanceUser", "ListAppInstanceUsers", "UpdateAppInstanceUser",
	"DeleteAppInstanceUser", "PutAppInstanceUserExpirationSettings",
	/* sql/api/identity_endpoint.sql */
	"RegisterAppInstanceUserEndpoint", "DescribeAppInstanceUserEndpoint", "ListAppInstanceUserEndpoints",
	"UpdateAppInstanceUserEndpoint", "DeregisterAppInstanceUserEndpoint",
	/* sql/api/identity_bot.sql */
	"CreateAppInstanceBot", "DescribeAppInstanceBot", "ListAppInstanceBots", "UpdateAppInstanceBot",
	"DeleteAppInstanceBot",
	/* sql/api/tags.sql (shared by both services, keyed by ARN) */
	"TagResource", "UntagResource", "ListTagsForResource",
	0,
};

void carillon_api_identity_init(void) { carillon_api_register_sql(identity_ops); }
