/*
 * The services Carillon serves, each registering its operations (the rows of the operation table
 * for its model). Registration flows one way: this file calls each service's init, which calls the
 * registry (dispatch.c); nothing calls back. A new service is: its model under model/, its rows in
 * ops.def, one registration file and its SQL files.
 */
#include "carillon/api.h"
#include "api_internal.h"

int carillon_api_init(void)
{
	if (carillon_api_registry_open())
		return -1;
	carillon_api_identity_init();
	carillon_api_messaging_init();
	carillon_api_carillon_init();
	carillon_api_pinpoint_init();
	return carillon_api_registry_complete();
}
