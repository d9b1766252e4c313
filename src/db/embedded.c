/*
 * The embedded PostgreSQL: a private cluster under <data_dir>/postgres that Carillon initialises,
 * starts and stops itself when no database URL is configured.
 *
 *   <data_dir>/postgres/            mode 0700, owned by the cluster user
 *   <data_dir>/postgres/data/       the cluster (initdb)
 *   <data_dir>/postgres/run/        the unix socket directory (mode 0700); no TCP listener at all
 *   <data_dir>/postgres/postgres.log
 *   <data_dir>/postgres/carillon.lock
 *
 * Authentication is "trust", which is acceptable only because the server listens on nothing but a
 * unix socket inside a mode-0700 directory owned by the cluster user (TCP is "reject" in
 * pg_hba.conf, and listen_addresses is empty anyway).
 *
 * PostgreSQL refuses to run as root. When Carillon runs as root, the cluster belongs to and runs as
 * the unprivileged system user CARILLON_USER ("carillon"; created with useradd if missing), or, for
 * a cluster made earlier by an ordinary user, as that cluster's owner; `carillon serve` becomes the
 * same user once its port is bound (privdrop.h), so it can still stop the cluster at the end. A
 * data directory Carillon creates as root, or finds owned by root and holding only its own files,
 * is given to that user. The tools (initdb, pg_ctl) are run with fork + setgroups/setgid/setuid +
 * execve, argv arrays and an environment without Carillon's settings (secrets among them): no
 * shell command line is ever built here.
 *
 * Roles: initdb makes the superuser "carillon", kept for maintenance (psql as the cluster user:
 * host=<data_dir>/postgres/run user=carillon). Carillon itself connects as "carillon_app", an
 * ordinary role (no superuser, createdb, createrole or replication) that owns the database
 * "carillon" and everything in it, which is all the migrations need. A cluster made before that
 * role existed is converted at start: the role is created and the database and its objects are
 * handed over to it.
 *
 * Our settings (socket directory, no TCP, ...) are rewritten into <cluster>/carillon.conf at every
 * start, and postgresql.conf includes that file (the include line is appended once, after initdb).
 * Rewriting it each time keeps the socket directory right if the data directory is moved; ALTER
 * SYSTEM (postgresql.auto.conf) still overrides it.
 *
 * Who stops the server: while it uses the cluster, a Carillon process holds an exclusive flock on
 * carillon.lock. The process that holds the lock owns the server and stops it in
 * carillon_embedded_pg_stop(), whether it started the server itself or found one already running
 * (that can only be an orphan left by a Carillon that crashed, since a live one would hold the
 * lock). A process that cannot take the lock shares the server of the Carillon holding it (e.g. an
 * admin command run next to `carillon serve`) and never stops it.
 *
 * initdb and pg_ctl pass paths to /bin/sh inside double quotes, so a data directory containing
 * '"', '$', '`', '\' or a newline is refused; spaces and single quotes are fine.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "carillon/embedded_pg.h"
#include "carillon/log.h"
#include "carillon/privdrop.h"

extern char **environ;

#define PG_SUPERUSER "carillon" /* the PostgreSQL superuser made by initdb: maintenance only */
#define PG_ROLE "carillon_app"  /* the role Carillon connects as: owns the database, no superuser */
#define PG_DBNAME "carillon"
#define PG_PORT "5432" /* only names the socket file; there is no TCP listener */
#define PG_CONF_FILE "carillon.conf"
#define PG_START_TIMEOUT "120"
#define PG_STOP_TIMEOUT "60"

static struct {
	bool active; /* carillon_embedded_pg_start succeeded */
	bool owned;  /* we hold the lock: stop the server in carillon_embedded_pg_stop */
	int lock_fd;
	bool drop;   /* run the tools as another user (we are root) */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
	char **env; /* environment for the tools when dropping privileges */
	char user[256];
	char bindir[PATH_MAX];
	char base[PATH_MAX]; /* <data_dir>/postgres */
	char data[PATH_MAX];
	char run[PATH_MAX];
	char log[PATH_MAX];
	char conninfo[2 * PATH_MAX];
} pg = {.lock_fd = -1};

/* The system user the cluster runs as when Carillon is root (outside `pg`: reset_state keeps it). */
static char pg_os_user[64] = "carillon";

void carillon_embedded_pg_set_os_user(const char *name)
{
	if (name && *name)
		snprintf(pg_os_user, sizeof(pg_os_user), "%s", name);
}

int carillon_embedded_pg_os_user(struct carillon_os_user *out)
{
	if (!pg.active || !pg.drop)
		return -1;
	size_t n = strlen(pg.user);
	if (n >= sizeof(out->name))
		return -1;
	out->uid = pg.uid;
	out->gid = pg.gid;
	memcpy(out->name, pg.user, n + 1);
	return 0;
}

/* Carillon's own settings (CARILLON_MASTER_KEY, ...) stay out of the tools' and the server's
 * environment. */
static bool env_for_tools(const char *e) { return strncmp(e, "CARILLON_", 9) != 0 || !strncmp(e, "CARILLON_PG_", 12); }

static char **env_filtered(void)
{
	size_t count = 0;
	for (char **e = environ; *e; e++)
		count++;
	char **env = calloc(count + 1, sizeof(char *));
	if (!env)
		return NULL;
	size_t k = 0;
	for (char **e = environ; *e; e++)
		if (env_for_tools(*e))
			env[k++] = *e; /* borrowed: freed with free(env) alone */
	return env;
}

static void reset_state(void)
{
	if (pg.lock_fd >= 0)
		close(pg.lock_fd);
	if (pg.env) {
		for (char **e = pg.env; *e; e++)
			free(*e);
		free(pg.env);
	}
	free(pg.groups);
	memset(&pg, 0, sizeof(pg));
	pg.lock_fd = -1;
}

static int join(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);
	if (n < 0 || (size_t)n >= len) {
		log_err("embedded postgres: path too long: %s/%s", a, b);
		return -1;
	}
	return 0;
}

static bool is_executable(const char *dir, const char *name)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s/%s", dir, name) >= (int)sizeof(p))
		return false;
	return access(p, X_OK) == 0;
}

static bool is_pg_bindir(const char *dir)
{
	return is_executable(dir, "initdb") && is_executable(dir, "pg_ctl") && is_executable(dir, "postgres");
}

static void close_fds_from(unsigned int lowfd)
{
	if (close_range(lowfd, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (long fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/* In a forked child: become the cluster user. Only system calls (async-signal-safe). */
static int drop_privileges(void)
{
	if (getuid() == pg.uid && geteuid() == pg.uid && getuid() != 0)
		return 0; /* `carillon serve` already became the cluster user */
	if (setgroups((size_t)pg.ngroups, pg.groups) < 0 || setgid(pg.gid) < 0 || setuid(pg.uid) < 0)
		return -1;
	if (getuid() != pg.uid || geteuid() != pg.uid || getegid() != pg.gid || setuid(0) == 0)
		return -1;
	return 0;
}

/* waitpid needs SIGCHLD not to be ignored (children would be reaped automatically): set it to the
 * default if it is. True if `saved` is to be restored afterwards. */
static bool sigchld_default(struct sigaction *saved)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	return sigaction(SIGCHLD, NULL, saved) == 0 && saved->sa_handler == SIG_IGN &&
	       sigaction(SIGCHLD, &dfl, NULL) == 0;
}

/* run_tool's fork, exec and collection of the output. */
static int run_child(char *const argv[], bool drop, char **envp, int pfd[2], char *out, size_t outlen)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_err("embedded postgres: fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
			_exit(126);
		close_fds_from(3);
		/* Ignored signals and the signal mask survive exec: give the tools (and the postmaster
		 * that pg_ctl starts) a clean slate. */
		static const int sigs[] = {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2};
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			sigaction(sigs[i], &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (drop && drop_privileges() < 0) {
			static const char msg[] = "cannot switch to the cluster user\n";
			(void)!write(2, msg, sizeof(msg) - 1);
			_exit(126);
		}
		umask(077);
		if (pg.base[0])
			(void)!chdir(pg.base);
		if (strchr(argv[0], '/'))
			execve(argv[0], argv, envp);
		else
			execvpe(argv[0], argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	size_t used = 0;
	char buf[1024];
	for (;;) {
		ssize_t r = read(pfd[0], buf, sizeof(buf));
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (out && outlen > 0) {
			size_t room = outlen - 1 - used;
			size_t n = (size_t)r < room ? (size_t)r : room;
			memcpy(out + used, buf, n);
			used += n;
		}
	}
	close(pfd[0]);
	if (out && outlen > 0)
		out[used] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			log_err("embedded postgres: waitpid: %s", strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	log_err("embedded postgres: %s killed by signal %d", argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
}

/*
 * Runs argv[0] (an absolute path, or a name looked up in PATH) with stdin from /dev/null and
 * stdout+stderr captured into out (NUL-terminated, truncated to outlen). With drop, as the cluster
 * user. Returns the exit status, or -1 if it could not be run or was killed.
 */
static int run_tool(char *const argv[], bool drop, char *out, size_t outlen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		log_err("embedded postgres: pipe: %s", strerror(errno));
		return -1;
	}
	char **own = drop ? NULL : env_filtered();
	char **envp = drop ? pg.env : own;
	if (!envp) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	struct sigaction saved;
	bool restore = sigchld_default(&saved);
	int rc = run_child(argv, drop, envp, pfd, out, outlen);
	if (restore)
		sigaction(SIGCHLD, &saved, NULL);
	free(own);
	return rc;
}

/* Logs a tool's captured output, line by line. */
static void log_output(bool error, const char *tool, char *out)
{
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (error)
			log_err("embedded postgres: %s: %s", tool, line);
		else
			log_info("embedded postgres: %s: %s", tool, line);
	}
}

/* Logs the end of the server log, to explain a failed start. */
static void log_server_log_tail(void)
{
	FILE *f = fopen(pg.log, "r");
	if (!f)
		return;
	char line[1024];
	bool skip_partial = false;
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > 4096) {
		fseek(f, -4096, SEEK_END);
		skip_partial = true; /* the first line read after seeking is probably cut */
	} else {
		rewind(f);
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!skip_partial)
			log_err("embedded postgres: %s: %s", pg.log, line);
		skip_partial = false;
	}
	fclose(f);
}

static int mkdir_p(const char *path, mode_t leaf_mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	size_t len = strlen(tmp);
	while (len > 1 && tmp[len - 1] == '/')
		tmp[--len] = '\0';
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
			log_err("embedded postgres: cannot create %s: %s", tmp, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(tmp, leaf_mode) < 0 && errno != EEXIST) {
		log_err("embedded postgres: cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

/* A directory only for the cluster user: create it if needed, then owner and mode 0700. */
static int private_dir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_err("embedded postgres: cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("embedded postgres: %s is not a directory", path);
		return -1;
	}
	if (pg.drop && (st.st_uid != pg.uid || st.st_gid != pg.gid) && chown(path, pg.uid, pg.gid) < 0) {
		log_err("embedded postgres: cannot chown %s to %s: %s", path, pg.user, strerror(errno));
		return -1;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0) {
		log_err("embedded postgres: cannot chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads the major version in <cluster>/PG_VERSION into out ("" when there is no cluster yet). */
static void read_pg_version(char *out, size_t len)
{
	out[0] = '\0';
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s/PG_VERSION", pg.data) >= (int)sizeof(p))
		return;
	FILE *f = fopen(p, "r");
	if (!f)
		return;
	char line[32] = "";
	if (fgets(line, sizeof(line), f)) {
		size_t n = strspn(line, "0123456789");
		if (n > 0 && n < len) {
			memcpy(out, line, n);
			out[n] = '\0';
		}
	}
	fclose(f);
}

/* Finds the directory holding initdb, pg_ctl and postgres. */
static int find_bindir(const char *cluster_major)
{
	const char *env = getenv("CARILLON_PG_BINDIR");
	if (env && *env) {
		if (!is_pg_bindir(env)) {
			log_err("embedded postgres: CARILLON_PG_BINDIR=%s has no initdb/pg_ctl/postgres", env);
			return -1;
		}
		snprintf(pg.bindir, sizeof(pg.bindir), "%s", env);
		return 0;
	}
	/* An existing cluster needs the server of its own major version. */
	if (cluster_major[0]) {
		snprintf(pg.bindir, sizeof(pg.bindir), "/usr/lib/postgresql/%s/bin", cluster_major);
		if (is_pg_bindir(pg.bindir))
			return 0;
	}
	/* pg_config --bindir (from libpq-dev; postgresql-common's wrapper names the newest server). */
	char out[PATH_MAX];
	char *pgc_argv[] = {"pg_config", "--bindir", NULL};
	if (run_tool(pgc_argv, false, out, sizeof(out)) == 0) {
		out[strcspn(out, "\r\n")] = '\0';
		if (out[0] == '/' && is_pg_bindir(out)) {
			memcpy(pg.bindir, out, sizeof(pg.bindir));
			return 0;
		}
	}
	/* The newest /usr/lib/postgresql/<major>/bin (Debian), then /usr/pgsql-<major>/bin (PGDG rpms). */
	static const char *const patterns[] = {"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"};
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		glob_t g;
		if (glob(patterns[i], GLOB_ONLYDIR, NULL, &g) != 0)
			continue;
		long best = -1;
		for (size_t j = 0; j < g.gl_pathc; j++) {
			const char *v = g.gl_pathv[j] + strcspn(g.gl_pathv[j], "0123456789");
			long major = strtol(v, NULL, 10);
			if (major > best && is_pg_bindir(g.gl_pathv[j])) {
				best = major;
				snprintf(pg.bindir, sizeof(pg.bindir), "%s", g.gl_pathv[j]);
			}
		}
		globfree(&g);
		if (best >= 0)
			return 0;
	}
	/* Last resort: initdb in PATH, symlinks resolved. */
	const char *path = getenv("PATH");
	if (path) {
		char *copy = strdup(path), *save = NULL;
		for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
			char cand[PATH_MAX], real[PATH_MAX];
			if (snprintf(cand, sizeof(cand), "%s/initdb", d) >= (int)sizeof(cand) || !realpath(cand, real))
				continue;
			char *slash = strrchr(real, '/');
			*slash = '\0';
			if (is_pg_bindir(real)) {
				snprintf(pg.bindir, sizeof(pg.bindir), "%s", real);
				free(copy);
				return 0;
			}
		}
		free(copy);
	}
	log_err("embedded postgres: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; "
		"install postgresql-15, set CARILLON_PG_BINDIR, or set CARILLON_DATABASE_URL");
	return -1;
}

static int set_user(const struct passwd *pw)
{
	pg.uid = pw->pw_uid;
	pg.gid = pw->pw_gid;
	snprintf(pg.user, sizeof(pg.user), "%s", pw->pw_name);

	int n = 16;
	for (;;) {
		gid_t *g = realloc(pg.groups, (size_t)n * sizeof(gid_t));
		if (!g)
			return -1;
		pg.groups = g;
		int want = n;
		if (getgrouplist(pw->pw_name, pw->pw_gid, pg.groups, &want) >= 0) {
			pg.ngroups = want;
			break;
		}
		if (want <= n || want > 65536)
			return -1;
		n = want;
	}

	/* The environment for the tools: ours, with HOME, USER and LOGNAME of the cluster user. */
	size_t count = 0;
	for (char **e = environ; *e; e++)
		count++;
	pg.env = calloc(count + 4, sizeof(char *));
	if (!pg.env)
		return -1;
	size_t k = 0;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "HOME=", 5) || !strncmp(*e, "USER=", 5) || !strncmp(*e, "LOGNAME=", 8) ||
		    !env_for_tools(*e))
			continue;
		if (!(pg.env[k++] = strdup(*e)))
			return -1;
	}
	if (asprintf(&pg.env[k++], "HOME=%s", pw->pw_dir) < 0 || asprintf(&pg.env[k++], "USER=%s", pw->pw_name) < 0 ||
	    asprintf(&pg.env[k++], "LOGNAME=%s", pw->pw_name) < 0) {
		pg.env[k - 1] = NULL;
		return -1;
	}
	return 0;
}

/* As root: pick the user the cluster runs as, creating the system user if needed. */
static int choose_user(bool cluster_exists)
{
	pg.drop = true;
	struct stat st;
	if (cluster_exists && stat(pg.data, &st) == 0) {
		if (st.st_uid == 0) {
			log_err("embedded postgres: %s is owned by root, and PostgreSQL cannot run as root "
				"(chown -R it to %s)", pg.data, pg_os_user);
			return -1;
		}
		struct passwd *owner = getpwuid(st.st_uid);
		if (owner && strcmp(owner->pw_name, pg_os_user) != 0) {
			log_notice("embedded postgres: running the existing cluster as its owner %s", owner->pw_name);
			return set_user(owner);
		}
	}
	struct carillon_os_user u;
	if (carillon_privdrop_lookup(pg_os_user, true, &u) < 0)
		return -1;
	struct passwd *pw = getpwuid(u.uid);
	if (!pw) {
		log_err("embedded postgres: user %s vanished", pg_os_user);
		return -1;
	}
	return set_user(pw);
}

/* As root: the data directory belongs to the cluster user when Carillon made it, or when it is
 * owned by root and holds nothing but Carillon's files (a data directory from before `carillon
 * serve` ran unprivileged). Anything else is left alone: it may be a directory shared with others. */
static void adopt_data_dir(const char *data_dir, bool created)
{
	struct stat st;
	if (lstat(data_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0)
		return;
	if (!created) {
		DIR *d = opendir(data_dir);
		if (!d)
			return;
		bool ours = true;
		for (struct dirent *e; ours && (e = readdir(d));)
			ours = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "postgres") ||
			       !strcmp(e->d_name, "master.key");
		closedir(d);
		if (!ours)
			return;
	}
	if (chown(data_dir, pg.uid, pg.gid) < 0 || chmod(data_dir, 0700) < 0)
		log_warn("embedded postgres: cannot give %s to user %s: %s", data_dir, pg.user, strerror(errno));
	else if (!created)
		log_notice("embedded postgres: %s now belongs to user %s", data_dir, pg.user);
}

/* In a child as the cluster user: can it use `path`? */
static bool user_can_use(const char *path)
{
	struct sigaction saved;
	bool restore = sigchld_default(&saved);
	bool ok = false;
	pid_t pid = fork();
	if (pid == 0) {
		if (drop_privileges() < 0)
			_exit(2);
		_exit(access(path, R_OK | W_OK | X_OK) == 0 ? 0 : 1);
	}
	if (pid > 0) {
		int status;
		pid_t w;
		while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
			;
		ok = w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	if (restore)
		sigaction(SIGCHLD, &saved, NULL);
	return ok;
}

/* As root: the cluster user must be able to reach <data_dir>/postgres. */
static int check_reachable(const char *data_dir)
{
	if (user_can_use(pg.base))
		return 0;
	/* The usual obstacle is the data directory itself (say mkdir'ed 0700 by root): grant search
	 * permission on it alone, which lets the user reach the subdirectory it owns, nothing more. */
	struct stat st;
	if (stat(data_dir, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & S_IXOTH)) {
		if (chmod(data_dir, (st.st_mode & 07777) | S_IXOTH) == 0) {
			if (user_can_use(pg.base)) {
				log_notice("embedded postgres: made %s traversable (o+x) for user %s", data_dir, pg.user);
				return 0;
			}
			(void)!chmod(data_dir, st.st_mode & 07777); /* did not help: undo */
		}
	}
	log_err("embedded postgres: user %s cannot reach %s; make its parent directories traversable "
		"(chmod o+x) or choose another CARILLON_DATA_DIR", pg.user, pg.base);
	return -1;
}

/* Writes `content` to `path` atomically, owned by the cluster user, mode 0600. */
static int write_file(const char *path, const char *content)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_err("embedded postgres: cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t len = strlen(content), off = 0;
	while (off < len) {
		ssize_t w = write(fd, content + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_err("embedded postgres: cannot write %s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)w;
	}
	if ((pg.drop && fchown(fd, pg.uid, pg.gid) < 0) || fsync(fd) < 0 || close(fd) < 0) {
		log_err("embedded postgres: cannot finish %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		log_err("embedded postgres: cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Bytes of memory this process may use: the machine's, or its cgroup's limit (cgroup v2
 * memory.max: a container's or a systemd unit's MemoryMax) when that is lower. */
static unsigned long long usable_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	unsigned long long mem = pages > 0 && page > 0 ? (unsigned long long)pages * (unsigned long long)page : 0;
	char line[PATH_MAX], path[PATH_MAX + 32];
	FILE *f = fopen("/proc/self/cgroup", "r");
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strncmp(line, "0::", 3) == 0;
	if (f)
		fclose(f);
	if (!found)
		return mem;
	line[strcspn(line, "\n")] = '\0';
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", line + 3);
	f = fopen(path, "r");
	unsigned long long limit = 0;
	if (f) {
		if (fscanf(f, "%llu", &limit) != 1) /* "max": no limit */
			limit = 0;
		fclose(f);
	}
	return limit && (!mem || limit < mem) ? limit : mem;
}

/* shared_buffers in MB: an eighth of the usable memory, between PostgreSQL's default of 128 MB and
 * 512 MB. The write path's working set is the right edges of the logs and indexes plus one index
 * with random keys (channel_messages.request_key, ≈ 40 bytes a message); once that outgrows the
 * pool, every send reads a leaf and the sending backend writes dirty pages out itself, and the rate
 * falls as the tables grow (docs/perf/write-path-decay.md). 512 MB holds it for ≈ 10 M messages;
 * a larger pool pays for itself only on a larger database (ALTER SYSTEM overrides this). */
static unsigned long shared_buffers_mb(void)
{
	unsigned long long mb = usable_memory() / 8 / (1024 * 1024);
	return mb < 128 ? 128 : mb > 512 ? 512 : (unsigned long)mb;
}

/* Rewrites <cluster>/carillon.conf and makes sure postgresql.conf includes it. */
static int write_settings(void)
{
	/* A quoted postgresql.conf string: ' doubled (backslashes are refused in paths earlier). */
	char run_q[2 * PATH_MAX];
	size_t k = 0;
	for (const char *s = pg.run; *s && k + 2 < sizeof(run_q); s++) {
		if (*s == '\'')
			run_q[k++] = '\'';
		run_q[k++] = *s;
	}
	run_q[k] = '\0';

	char *conf = NULL;
	if (asprintf(&conf,
		     "# Written by Carillon at every start of its embedded PostgreSQL: edits here are lost.\n"
		     "# Use ALTER SYSTEM (postgresql.auto.conf) to override.\n"
		     "listen_addresses = ''\n"
		     "port = " PG_PORT "\n"
		     "unix_socket_directories = '%s'\n"
		     "unix_socket_permissions = 0700\n"
		     "max_connections = 100\n"
		     "# An eighth of the memory, 128 MB to 512 MB (raise it for a database of more than ~10 M messages).\n"
		     "shared_buffers = %luMB\n"
		     "# The background writer cleans the pages a write-heavy log dirties before a backend has to.\n"
		     "bgwriter_delay = 20ms\n"
		     "bgwriter_lru_maxpages = 1000\n"
		     "bgwriter_lru_multiplier = 4.0\n"
		     "max_wal_size = 4GB\n"
		     "fsync = on\n"
		     "synchronous_commit = on\n"
		     "full_page_writes = on\n",
		     run_q, shared_buffers_mb()) < 0)
		return -1;
	char path[PATH_MAX];
	int rc = join(path, sizeof(path), pg.data, PG_CONF_FILE);
	if (rc == 0)
		rc = write_file(path, conf);
	free(conf);
	if (rc < 0)
		return -1;

	static const char include_line[] = "include '" PG_CONF_FILE "'";
	if (join(path, sizeof(path), pg.data, "postgresql.conf") < 0)
		return -1;
	FILE *f = fopen(path, "r");
	if (!f) {
		log_err("embedded postgres: cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strncmp(line, include_line, sizeof(include_line) - 1) == 0;
	fclose(f);
	if (found)
		return 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		log_err("embedded postgres: cannot append to %s: %s", path, strerror(errno));
		return -1;
	}
	static const char append[] = "\n# Carillon's settings (rewritten at every start)\ninclude '" PG_CONF_FILE "'\n";
	bool ok = write(fd, append, sizeof(append) - 1) == (ssize_t)(sizeof(append) - 1) && fsync(fd) == 0;
	close(fd);
	if (!ok) {
		log_err("embedded postgres: cannot append to %s", path);
		return -1;
	}
	return 0;
}

static int tool_path(char *out, size_t len, const char *tool) { return join(out, len, pg.bindir, tool); }

static int run_initdb(void)
{
	char initdb[PATH_MAX];
	if (tool_path(initdb, sizeof(initdb), "initdb") < 0)
		return -1;
	/* Byte-order collation (no collation-version churn on glibc upgrades), UTF-8 character classes. */
	const char *ctype = "C";
	locale_t loc = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
	if (loc) {
		ctype = "C.UTF-8";
		freelocale(loc);
	}
	char ctype_opt[64];
	snprintf(ctype_opt, sizeof(ctype_opt), "--lc-ctype=%s", ctype);
	char *argv[] = {initdb, "-D", pg.data, "-U", PG_SUPERUSER, "--auth-local=trust", "--auth-host=reject",
			"-E", "UTF8", "--locale=C", ctype_opt, NULL};
	log_notice("embedded postgres: initialising a new cluster in %s", pg.data);
	char out[8192];
	int rc = run_tool(argv, pg.drop, out, sizeof(out));
	if (rc != 0) {
		log_output(true, "initdb", out);
		log_err("embedded postgres: initdb failed (exit %d)", rc);
		return -1;
	}
	log_output(false, "initdb", out);
	return 0;
}

/* pg_ctl status: 0 running, 3 not running, other values are errors. */
static int pg_ctl_status(void)
{
	char pg_ctl[PATH_MAX];
	if (tool_path(pg_ctl, sizeof(pg_ctl), "pg_ctl") < 0)
		return -1;
	char *argv[] = {pg_ctl, "-D", pg.data, "status", NULL};
	char out[1024];
	int rc = run_tool(argv, pg.drop, out, sizeof(out));
	if (rc != 0 && rc != 3)
		log_output(true, "pg_ctl status", out);
	return rc;
}

static int pg_ctl_start(void)
{
	char pg_ctl[PATH_MAX];
	if (tool_path(pg_ctl, sizeof(pg_ctl), "pg_ctl") < 0)
		return -1;
	char *argv[] = {pg_ctl, "-D", pg.data, "-l", pg.log, "-w", "-t", PG_START_TIMEOUT, "start", NULL};
	log_notice("embedded postgres: starting the server (socket in %s, log in %s)", pg.run, pg.log);
	char out[4096];
	int rc = run_tool(argv, pg.drop, out, sizeof(out));
	if (rc != 0) {
		log_output(true, "pg_ctl start", out);
		log_server_log_tail();
		log_err("embedded postgres: pg_ctl start failed (exit %d)", rc);
		return -1;
	}
	return 0;
}

static int pg_ctl_stop(void)
{
	char pg_ctl[PATH_MAX];
	if (tool_path(pg_ctl, sizeof(pg_ctl), "pg_ctl") < 0)
		return -1;
	char *argv[] = {pg_ctl, "-D", pg.data, "-m", "fast", "-w", "-t", PG_STOP_TIMEOUT, "stop", NULL};
	char out[4096];
	int rc = run_tool(argv, pg.drop, out, sizeof(out));
	if (rc != 0) {
		log_output(true, "pg_ctl stop", out);
		log_err("embedded postgres: pg_ctl stop failed (exit %d)", rc);
		return -1;
	}
	return 0;
}

/* Appends key='value' (libpq conninfo quoting) to buf. */
static int conninfo_add(char *buf, size_t len, const char *key, const char *val)
{
	size_t k = strlen(buf);
	bool quote = !*val || strpbrk(val, " \t\n\r\f\v'\\") != NULL;
	int n = snprintf(buf + k, len - k, "%s%s=%s", k ? " " : "", key, quote ? "'" : "");
	if (n < 0 || (size_t)n >= len - k)
		return -1;
	k += (size_t)n;
	for (const char *s = val; *s; s++) {
		if (k + 3 >= len)
			return -1;
		if (quote && (*s == '\'' || *s == '\\'))
			buf[k++] = '\\';
		buf[k++] = *s;
	}
	if (quote) {
		if (k + 2 >= len)
			return -1;
		buf[k++] = '\'';
	}
	buf[k] = '\0';
	return 0;
}

static int make_conninfo(char *buf, size_t len, const char *dbname, const char *user)
{
	buf[0] = '\0';
	if (conninfo_add(buf, len, "host", pg.run) < 0 || conninfo_add(buf, len, "port", PG_PORT) < 0 ||
	    conninfo_add(buf, len, "dbname", dbname) < 0 || conninfo_add(buf, len, "user", user) < 0) {
		log_err("embedded postgres: conninfo too long");
		return -1;
	}
	return 0;
}

/* Waits until the server accepts connections. */
static int wait_ready(const char *conninfo, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		if (PQping(conninfo) == PQPING_OK)
			return 0;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int exec_admin(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	/* 42P04 duplicate_database, 42710 duplicate_object: made concurrently by a server we share */
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
		  (state && (!strcmp(state, "42P04") || !strcmp(state, "42710")));
	if (!ok)
		log_err("embedded postgres: %s failed: %s", what, PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

/* The serving role: may log in and own what it creates, nothing more (re-asserted at every start). */
static const char ensure_role_sql[] =
	"DO $$ BEGIN"
	"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" PG_ROLE "') THEN"
	"    CREATE ROLE " PG_ROLE " LOGIN;"
	"  END IF;"
	"  ALTER ROLE " PG_ROLE " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;"
	"END $$";

/* In the database: what the superuser owns outside the system schemas goes to the serving role
 * (a cluster from before that role existed). Tables carry their indexes, triggers and owned
 * sequences with them; the bootstrap superuser's objects cannot be moved with REASSIGN OWNED. */
static const char hand_over_sql[] =
	"DO $$ DECLARE r record; su oid := '" PG_SUPERUSER "'::regrole; BEGIN"
	"  FOR r IN SELECT nspname FROM pg_namespace WHERE nspowner = su"
	"           AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP"
	"    EXECUTE format('ALTER SCHEMA %I OWNER TO " PG_ROLE "', r.nspname);"
	"  END LOOP;"
	"  FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"           WHERE c.relowner = su AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	"           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP"
	"    EXECUTE format('ALTER TABLE %s OWNER TO " PG_ROLE "', r.rel);"
	"  END LOOP;"
	"  FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"           WHERE c.relowner = su AND c.relkind = 'S'"
	"           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP"
	"    EXECUTE format('ALTER SEQUENCE %s OWNER TO " PG_ROLE "', r.rel);"
	"  END LOOP;"
	"  FOR r IN SELECT p.oid::regprocedure AS fn, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
	"           WHERE p.proowner = su"
	"           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP"
	"    EXECUTE format('ALTER %s %s OWNER TO " PG_ROLE "',"
	"                   CASE r.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, r.fn);"
	"  END LOOP;"
	"  FOR r IN SELECT t.oid::regtype AS typ, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
	"           WHERE t.typowner = su AND t.typtype IN ('e', 'd', 'r', 'c')"
	"           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')"
	"           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP"
	"    EXECUTE format('ALTER %s %s OWNER TO " PG_ROLE "',"
	"                   CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.typ);"
	"  END LOOP;"
	"END $$";

static PGconn *connect_admin(const char *dbname)
{
	char admin[2 * PATH_MAX];
	if (make_conninfo(admin, sizeof(admin), dbname, PG_SUPERUSER) < 0)
		return NULL;
	PGconn *conn = PQconnectdb(admin);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_err("embedded postgres: cannot connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* The serving role and its database, as the superuser. Serialised by an advisory lock between
 * Carillon processes sharing the cluster. */
static int create_database(void)
{
	char admin[2 * PATH_MAX];
	if (make_conninfo(admin, sizeof(admin), "postgres", PG_SUPERUSER) < 0)
		return -1;
	/* Immediate for a server pg_ctl -w just started; one being started by another Carillon may
	 * still be in initdb. */
	if (wait_ready(admin, pg.owned ? 30 : 120) < 0) {
		log_err("embedded postgres: the server in %s is not answering", pg.data);
		return -1;
	}
	PGconn *conn = connect_admin("postgres");
	if (!conn)
		return -1;
	int rc = exec_admin(conn, "SELECT pg_advisory_lock(7061726)", "lock");
	if (!rc)
		rc = exec_admin(conn, ensure_role_sql, "CREATE ROLE " PG_ROLE);
	PGresult *res = rc ? NULL : PQexec(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '" PG_DBNAME "'");
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_err("embedded postgres: %s", PQerrorMessage(conn));
		rc = -1;
	} else if (res && PQntuples(res) == 0) {
		log_notice("embedded postgres: creating database " PG_DBNAME " owned by role " PG_ROLE);
		rc = exec_admin(conn, "CREATE DATABASE " PG_DBNAME " OWNER " PG_ROLE, "CREATE DATABASE");
	} else if (res && strcmp(PQgetvalue(res, 0, 0), PG_ROLE) != 0) {
		log_notice("embedded postgres: handing database " PG_DBNAME " over from superuser %s to role " PG_ROLE,
			   PQgetvalue(res, 0, 0));
		rc = exec_admin(conn, "ALTER DATABASE " PG_DBNAME " OWNER TO " PG_ROLE, "ALTER DATABASE");
	}
	PQclear(res);
	if (!rc) {
		PGconn *db = connect_admin(PG_DBNAME);
		rc = db ? exec_admin(db, hand_over_sql, "handing objects over to " PG_ROLE) : -1;
		PQfinish(db);
	}
	PQfinish(conn); /* releases the advisory lock */
	return rc;
}

static bool path_is_shell_safe(const char *p) { return strpbrk(p, "\"$`\\\n") == NULL; }

static int start(const char *data_dir_arg)
{
	if (!data_dir_arg || !*data_dir_arg) {
		log_err("embedded postgres: no data directory");
		return -1;
	}
	if (!path_is_shell_safe(data_dir_arg)) {
		log_err("embedded postgres: the data directory may not contain '\"', '$', '`', '\\' or newlines: %s",
			data_dir_arg);
		return -1;
	}
	struct stat st;
	bool created = lstat(data_dir_arg, &st) < 0 && errno == ENOENT;
	if (mkdir_p(data_dir_arg, 0700) < 0)
		return -1;
	char data_dir[PATH_MAX];
	if (!realpath(data_dir_arg, data_dir)) {
		log_err("embedded postgres: %s: %s", data_dir_arg, strerror(errno));
		return -1;
	}
	if (!path_is_shell_safe(data_dir)) {
		log_err("embedded postgres: the data directory may not contain '\"', '$', '`', '\\' or newlines: %s",
			data_dir);
		return -1;
	}
	if (join(pg.base, sizeof(pg.base), data_dir, "postgres") < 0 || join(pg.data, sizeof(pg.data), pg.base, "data") < 0 ||
	    join(pg.run, sizeof(pg.run), pg.base, "run") < 0 || join(pg.log, sizeof(pg.log), pg.base, "postgres.log") < 0)
		return -1;
	char sock[PATH_MAX];
	const size_t sun_path_len = sizeof(((struct sockaddr_un *)0)->sun_path);
	if (snprintf(sock, sizeof(sock), "%s/.s.PGSQL." PG_PORT, pg.run) >= (int)sun_path_len) {
		log_err("embedded postgres: the socket path %s is longer than %zu bytes; choose a shorter "
			"CARILLON_DATA_DIR", sock, sun_path_len - 1);
		return -1;
	}

	char major[16];
	read_pg_version(major, sizeof(major));
	bool cluster_exists = major[0] != '\0';
	if (find_bindir(major) < 0)
		return -1;
	log_info("embedded postgres: using %s", pg.bindir);

	if (geteuid() == 0 && choose_user(cluster_exists) < 0)
		return -1;
	if (pg.drop)
		adopt_data_dir(data_dir, created);
	if (private_dir(pg.base) < 0)
		return -1;
	if (pg.drop && check_reachable(data_dir) < 0)
		return -1;
	if (private_dir(pg.run) < 0)
		return -1;
	if (pg.drop && !cluster_exists && lstat(pg.data, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid != pg.uid && chown(pg.data, pg.uid, pg.gid) < 0) {
		log_err("embedded postgres: cannot chown %s to %s: %s", pg.data, pg.user, strerror(errno));
		return -1;
	}

	char lock_path[PATH_MAX];
	if (join(lock_path, sizeof(lock_path), pg.base, "carillon.lock") < 0)
		return -1;
	pg.lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (pg.lock_fd < 0) {
		log_err("embedded postgres: cannot open %s: %s", lock_path, strerror(errno));
		return -1;
	}
	if (pg.drop && fchown(pg.lock_fd, pg.uid, pg.gid) < 0)
		log_warn("embedded postgres: cannot chown %s: %s", lock_path, strerror(errno));
	if (flock(pg.lock_fd, LOCK_EX | LOCK_NB) == 0) {
		pg.owned = true;
	} else if (errno == EWOULDBLOCK) {
		log_notice("embedded postgres: another Carillon process is running the cluster in %s; sharing it",
			   pg.data);
		close(pg.lock_fd);
		pg.lock_fd = -1;
		return 0;
	} else {
		log_err("embedded postgres: cannot lock %s: %s", lock_path, strerror(errno));
		return -1;
	}

	if (!cluster_exists && run_initdb() < 0)
		return -1;
	if (write_settings() < 0)
		return -1;
	int status = pg_ctl_status();
	if (status == 0) {
		/* We hold the lock, so no live Carillon uses it: an orphan of one that crashed. Adopt it. */
		log_notice("embedded postgres: reusing the server already running on %s", pg.data);
		return 0;
	}
	if (status != 3) {
		log_err("embedded postgres: pg_ctl status failed (exit %d)", status);
		return -1;
	}
	return pg_ctl_start();
}

int carillon_embedded_pg_start(const char *data_dir, char *conninfo, size_t conninfo_len)
{
	if (pg.active) {
		if (snprintf(conninfo, conninfo_len, "%s", pg.conninfo) >= (int)conninfo_len)
			return -1;
		return 0;
	}
	reset_state();
	if (start(data_dir) < 0 || create_database() < 0 ||
	    make_conninfo(pg.conninfo, sizeof(pg.conninfo), PG_DBNAME, PG_ROLE) < 0)
		goto fail;
	if (snprintf(conninfo, conninfo_len, "%s", pg.conninfo) >= (int)conninfo_len) {
		log_err("embedded postgres: conninfo buffer too small");
		goto fail;
	}
	pg.active = true;
	log_notice("embedded postgres: ready (%s)", pg.conninfo);
	return 0;
fail:
	if (pg.owned && pg_ctl_status() == 0)
		pg_ctl_stop();
	reset_state();
	return -1;
}

void carillon_embedded_pg_stop(void)
{
	if (!pg.active)
		return;
	if (pg.owned) {
		log_notice("embedded postgres: stopping the server");
		if (pg_ctl_stop() == 0)
			log_notice("embedded postgres: stopped");
	} else {
		log_notice("embedded postgres: leaving the server to the Carillon process that runs it");
	}
	reset_state();
}
