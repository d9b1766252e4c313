/*
 * Least privilege on the host. Started as root, `carillon serve` needs root only to bind its port,
 * read root-only key files and prepare its data directory; then it becomes an unprivileged user
 * (CARILLON_USER, default "carillon") for good. Blocking calls, made before the event loop runs.
 */
#ifndef CARILLON_PRIVDROP_H
#define CARILLON_PRIVDROP_H

#include <stdbool.h>
#include <sys/types.h>

struct carillon_os_user {
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Looks up the system user `name`; with `create`, makes it (useradd --system, no home, no login
 * shell) when it does not exist. Refuses uid 0. Returns 0, or -1 after logging why. */
int carillon_privdrop_lookup(const char *name, bool create, struct carillon_os_user *out);

/* The user this process becomes in carillon_privdrop_now() and acts as in
 * carillon_privdrop_enter(). Only meaningful as root; NULL clears it. */
void carillon_privdrop_set_target(const struct carillon_os_user *u);

/* True (and *out filled when out is not NULL) while a target is set and this process is root. */
bool carillon_privdrop_target(struct carillon_os_user *out);

/* Acts as the target (effective uid/gid and groups) until carillon_privdrop_leave(), so that files
 * are created by that user, with its permissions, not by root. No-op (0) without a target. */
int carillon_privdrop_enter(void);
void carillon_privdrop_leave(void);

/* Becomes the target for good: supplementary groups, then gid, then uid (real, effective and
 * saved), and checks that root cannot be regained. No-op (0) without a target. Returns -1 (logged)
 * on any failure: the caller must then exit rather than go on as root. */
int carillon_privdrop_now(void);

#endif
