/*
 * The Pinpoint-compatible subset (model/pinpoint.json, SigV4 signing name "mobiletargeting", paths
 * under /v1/apps; docs/push.md). Pinpoint is implemented in part: the operations with a row in the
 * operation table (src/api/ops.def) are served, every other one answers MethodNotAllowedException
 * (its CARILLON_SERVICE line in ops.def; dispatch.c answers). Every row is admin-only.
 *   apps, channel reads and deletes, endpoints: the generic SQL handler (sql/api/pinpoint_*.sql)
 *   Update*Channel: channels.c seals the secrets, then the SQL handler
 *   SendMessages, SendUsersMessages: C handlers (rows without an SQL function), registered here.
 */
#include "carillon/api.h"
#include "pinpoint_internal.h"

void carillon_api_pinpoint_init(void)
{
	carillon_api_register_service("pinpoint", carillon_api_sql_handler);
	carillon_pinpoint_channels_init();
	carillon_pinpoint_send_init();
}
