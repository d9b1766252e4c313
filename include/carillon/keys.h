/*
 * Admin access keys: long-lived operator credentials with the root key's rights (call every
 * operation, act as any bearer, mint user credentials). Stored in carillon.access_keys with the
 * secret sealed by the master key; each node keeps the active ones in memory, refreshed from the
 * database every few seconds on the loop, so a request's verification never waits on the database
 * and a revocation reaches every node within the refresh interval.
 */
#ifndef CARILLON_KEYS_H
#define CARILLON_KEYS_H

#include <uv.h>

/* `carillon keys create [NAME] | list | revoke AKID` (blocking; not on the loop). Returns the exit status. */
int carillon_keys_cli(int argc, char **argv, const char *conninfo);

void carillon_keys_start(uv_loop_t *loop, unsigned refresh_ms);
void carillon_keys_stop(void);

/* The secret of an active admin key, or NULL. */
const char *carillon_keys_secret(const char *access_key_id);

#endif
