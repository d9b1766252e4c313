/*
 * Helpers of the unit tests that start the embedded PostgreSQL (test_embedded_pg.c, test_pool.c):
 * whether server binaries are installed, and removing a temporary directory tree.
 */
#ifndef CARILLON_TEST_PG_FIXTURE_H
#define CARILLON_TEST_PG_FIXTURE_H

#include <ftw.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static inline bool have_postgres(void)
{
	const char *env = getenv("CARILLON_PG_BINDIR");
	if (env && *env)
		return true;
	glob_t g;
	bool found = glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 ||
		     glob("/usr/pgsql-*/bin/initdb", 0, NULL, &g) == 0;
	if (found)
		globfree(&g);
	return found;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Remove the tree at `dir` (nothing when it is empty). */
static inline void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
