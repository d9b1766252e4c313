/*
 * Chime SDK Messaging: every operation is served by the generic SQL handler (writes through group
 * commit); its rows in the operation table (src/api/ops.def) name the function of each, and the
 * rules of each resource live in its file under sql/api/ (messaging_<resource>.sql, tags.sql);
 * every write returns the events it causes.
 */
#include "carillon/api.h"

void carillon_api_messaging_init(void) { carillon_api_register_service("messaging", carillon_api_sql_handler); }
