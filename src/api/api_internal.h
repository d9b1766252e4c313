/* Private to the api module: the handler registry's life cycle (dispatch.c), driven by services.c. */
#ifndef CARILLON_API_INTERNAL_H
#define CARILLON_API_INTERNAL_H

/* Check the operation table against the models and make room for the handlers. 0 or -1. */
int carillon_api_registry_open(void);
/* Every model operation has a handler. 0 or -1 (logged). */
int carillon_api_registry_complete(void);

#endif
