/*
 * Becoming an unprivileged user after the privileged start-up work (see privdrop.h).
 *
 * The order matters: supplementary groups and the gid can only be changed while still root, so
 * they go first; setuid() as root sets the real, effective and saved uid at once, after which no
 * call can bring uid 0 back. That is checked, not assumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "carillon/log.h"
#include "carillon/privdrop.h"

#define MAX_GROUPS 256

static struct {
	bool set;
	struct carillon_os_user user;
	gid_t groups[MAX_GROUPS]; /* the target's supplementary groups */
	int ngroups;
	gid_t root_groups[MAX_GROUPS]; /* ours, restored by carillon_privdrop_leave */
	int root_ngroups;
	bool entered;
} target;

/* useradd as a child process: argv array, no shell, a minimal environment. */
static int run_useradd(const char *name)
{
	static const char *const paths[] = {"/usr/sbin/useradd", "/sbin/useradd"};
	const char *useradd = NULL;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && !useradd; i++)
		if (access(paths[i], X_OK) == 0)
			useradd = paths[i];
	if (!useradd) {
		log_err("user %s does not exist and useradd is missing: create it, or set CARILLON_USER", name);
		return -1;
	}
	log_notice("creating system user %s", name);
	/* Not the data directory as home: the user may serve several data directories. */
	char *const argv[] = {(char *)useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
			      "/nonexistent", "--shell", "/usr/sbin/nologin", (char *)name, NULL};
	char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	struct sigaction dfl = {.sa_handler = SIG_DFL}, saved;
	sigaction(SIGCHLD, &dfl, &saved); /* waitpid must see the child even if SIGCHLD is ignored */
	pid_t pid = fork();
	if (pid == 0) {
		/* The signal mask survives exec: a worker's (stop signals blocked while it starts) is not
		 * the tool's. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		execve(useradd, argv, envp);
		_exit(127);
	}
	int status = -1;
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	sigaction(SIGCHLD, &saved, NULL);
	/* Exit 9 (already exists) means another process made it first: the lookup decides. */
	return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int carillon_privdrop_lookup(const char *name, bool create, struct carillon_os_user *out)
{
	if (!name || !*name || strlen(name) >= sizeof(out->name) || name[0] == '-') {
		log_err("CARILLON_USER must name an unprivileged system user");
		return -1;
	}
	struct passwd *pw = getpwnam(name);
	if (!pw && create) {
		int rc = run_useradd(name);
		pw = getpwnam(name);
		if (!pw)
			log_err("useradd %s failed (exit %d)", name, rc);
	} else if (!pw) {
		log_err("user %s does not exist", name);
	}
	if (!pw)
		return -1;
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		log_err("CARILLON_USER=%s has uid or gid 0: it must be an unprivileged user", name);
		return -1;
	}
	out->uid = pw->pw_uid;
	out->gid = pw->pw_gid;
	snprintf(out->name, sizeof(out->name), "%s", pw->pw_name);
	return 0;
}

void carillon_privdrop_set_target(const struct carillon_os_user *u)
{
	target.set = false;
	if (!u || geteuid() != 0)
		return;
	target.user = *u;
	target.ngroups = MAX_GROUPS;
	if (getgrouplist(u->name, u->gid, target.groups, &target.ngroups) < 0) {
		/* More groups than we keep: the primary group alone is the safe subset. */
		target.groups[0] = u->gid;
		target.ngroups = 1;
	}
	target.set = true;
}

bool carillon_privdrop_target(struct carillon_os_user *out)
{
	if (!target.set || getuid() != 0)
		return false;
	if (out)
		*out = target.user;
	return true;
}

int carillon_privdrop_enter(void)
{
	if (!carillon_privdrop_target(NULL) || target.entered)
		return 0;
	target.root_ngroups = getgroups(MAX_GROUPS, target.root_groups);
	if (target.root_ngroups < 0)
		target.root_ngroups = 0;
	if (setgroups((size_t)target.ngroups, target.groups) < 0 || setegid(target.user.gid) < 0 ||
	    seteuid(target.user.uid) < 0) {
		log_err("cannot act as user %s: %s", target.user.name, strerror(errno));
		target.entered = true;
		carillon_privdrop_leave();
		return -1;
	}
	target.entered = true;
	return 0;
}

void carillon_privdrop_leave(void)
{
	if (!target.entered)
		return;
	target.entered = false;
	/* The saved uid is still 0, so this always succeeds; failing would leave us half-switched. */
	if (seteuid(0) < 0 || setegid(0) < 0 || setgroups((size_t)target.root_ngroups, target.root_groups) < 0) {
		log_err("cannot return to root after acting as %s: %s", target.user.name, strerror(errno));
		abort();
	}
}

/* No capability is left: setuid() clears them unless securebits said otherwise (a container
 * runtime may set SECBIT_NO_SETUID_FIXUP), so this reads what the kernel reports. */
static bool no_capabilities(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return false;
	char line[256];
	int zero = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if ((sscanf(line, "CapPrm: %llx", &v) == 1 || sscanf(line, "CapEff: %llx", &v) == 1 ||
		     sscanf(line, "CapAmb: %llx", &v) == 1)) {
			if (v != 0) {
				fclose(f);
				return false;
			}
			zero++;
		}
	}
	fclose(f);
	return zero >= 2; /* CapAmb is missing before Linux 4.3 */
}

/* Every id is the target's, and neither uid 0 nor gid 0 can be had back. */
static bool dropped_for_good(void)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return false;
	uid_t u = target.user.uid;
	gid_t g = target.user.gid;
	if (ru != u || eu != u || su != u || rg != g || eg != g || sg != g)
		return false;
	gid_t groups[MAX_GROUPS];
	int n = getgroups(MAX_GROUPS, groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == 0)
			return false;
	return n >= 0 && setuid(0) < 0 && seteuid(0) < 0 && setgid(0) < 0 && setegid(0) < 0;
}

int carillon_privdrop_now(void)
{
	if (!carillon_privdrop_target(NULL))
		return 0;
	carillon_privdrop_leave();
	if (setgroups((size_t)target.ngroups, target.groups) < 0 || setgid(target.user.gid) < 0 ||
	    setuid(target.user.uid) < 0) {
		log_err("cannot become user %s: %s", target.user.name, strerror(errno));
		return -1;
	}
	if (!dropped_for_good() || !no_capabilities()) {
		log_err("still able to regain root after becoming %s: refusing to serve", target.user.name);
		return -1;
	}
	/* Nothing run from here on may gain privileges (setuid binaries, file capabilities). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_warn("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
#if defined(__SANITIZE_ADDRESS__)
	/* setuid() made the process non-dumpable, and LeakSanitizer needs to ptrace it at exit. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
#endif
	target.set = false;
	log_notice("running as user %s (uid %u, gid %u)", target.user.name, (unsigned)target.user.uid,
		   (unsigned)target.user.gid);
	return 0;
}
