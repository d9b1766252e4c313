/* Periodic maintenance on the loop: expirations and bookkeeping clean-up (sql/api/janitor.sql). */
#ifndef CARILLON_JANITOR_H
#define CARILLON_JANITOR_H

#include <uv.h>

void carillon_janitor_start(uv_loop_t *loop, unsigned interval_ms);
void carillon_janitor_stop(void);

#endif
