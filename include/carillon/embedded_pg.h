/*
 * The embedded PostgreSQL: a private cluster that Carillon initialises and starts under its data
 * directory when no database URL is configured. Blocking calls, made before the event loop starts
 * and after it stops.
 */
#ifndef CARILLON_EMBEDDED_PG_H
#define CARILLON_EMBEDDED_PG_H

#include <stddef.h>

#include "carillon/privdrop.h"

/* Initialise (first use) and start the cluster under <data_dir>/postgres, listening only on a unix
 * socket in <data_dir>/postgres/run; create the "carillon" database, owned by the ordinary role
 * "carillon_app" (the superuser "carillon" is for maintenance only). When running as root, the
 * cluster belongs to and runs as an unprivileged system user (created if missing).
 * Writes a libpq conninfo string (as carillon_app) into `conninfo`. Returns 0 on success, -1
 * (logged) on error. */
int carillon_embedded_pg_start(const char *data_dir, char *conninfo, size_t conninfo_len);

/* As root: the system user a new cluster runs as (default "carillon"). Before the start. */
void carillon_embedded_pg_set_os_user(const char *name);

/* After a start as root: the user the cluster runs as (0), or -1 when not root or not started. */
int carillon_embedded_pg_os_user(struct carillon_os_user *out);

/* Stop the cluster started by carillon_embedded_pg_start (fast shutdown). No-op if none. */
void carillon_embedded_pg_stop(void);

#endif
