/*
 * Chime SDK Identity: every operation is served by the generic SQL handler; its rows in the
 * operation table (src/api/ops.def) name the function of each, and the rules of each resource live
 * in its file under sql/api/ (identity_<resource>.sql, tags.sql).
 */
#include "carillon/api.h"

void carillon_api_identity_init(void) { carillon_api_register_service("identity", carillon_api_sql_handler); }
