/*
 * `carillon serve --workers N`: a parent process that supervises N workers.
 *
 * Each worker is a whole Carillon process (its own loop, database pool, listener and hub), forked
 * from the parent after the migrations ran and the models were loaded (so that memory is shared
 * copy-on-write). Workers share the port through SO_REUSEPORT: main.c opens one listening socket
 * per worker slot in the parent and the worker of slot i serves socket i. The parent keeps every
 * socket open, so a worker that dies loses only the connections it had accepted: the ones the
 * kernel queued for its slot wait there for the replacement, which also needs no privilege to
 * bind the port again.
 *
 * The parent runs no event loop: it blocks the signals it handles and waits for them with
 * sigtimedwait (SIGCHLD: reap and restart; SIGTERM/SIGINT/SIGHUP: forward), the timeout being the
 * next restart due. Nothing else happens in it while workers run.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "carillon/config.h"
#include "carillon/log.h"
#include "carillon/supervisor.h"
#include "carillon/util.h"

/* A worker that ran this long before dying is restarted at once (its backoff starts over). */
#define STABLE_MS 10000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 30000
/* After a stop, a worker still running this long after the grace period is killed. */
#define STOP_SLACK_MS 10000

struct slot {
	pid_t pid;               /* 0: not running */
	int64_t started_ms;
	int64_t restart_at_ms;   /* when to start it again (not running, not stopping) */
	int backoff_ms;
};

int carillon_workers_wanted(void)
{
	if (carillon_cfg.workers > 0)
		return (int)carillon_cfg.workers;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)(n > 256 ? 256 : n) : 1;
}

void carillon_worker_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

static int spawn(struct slot *s, int index, const sigset_t *old_mask, int (*worker)(int, void *), void *arg)
{
	fflush(NULL); /* nothing buffered may be written twice */
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		log_err("supervisor: cannot start worker %d: %s", index, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* A supervisor killed outright (SIGKILL, a crash) must not leave workers serving on
		 * their own, holding the port and the database: each is told with SIGTERM (a graceful
		 * drain). getppid() catches a parent that died before prctl took effect. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
			_exit(1);
		/* The forwarded signals stay blocked until the worker's loop handles them
		 * (carillon_worker_signals): one that comes while the worker starts waits for its
		 * handler instead of killing it with the default action. */
		sigset_t forwarded, mask;
		carillon_worker_signals(&forwarded);
		sigorset(&mask, old_mask, &forwarded);
		sigprocmask(SIG_SETMASK, &mask, NULL);
		exit(worker(index, arg));
	}
	s->pid = pid;
	s->started_ms = carillon_now_ms();
	log_notice("supervisor: worker %d started (pid %d)", index, (int)pid);
	return 0;
}

static void forward(struct slot *slots, int n, int sig)
{
	for (int i = 0; i < n; i++)
		if (slots[i].pid > 0)
			kill(slots[i].pid, sig);
}

static void describe_exit(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped (status %d)", status);
}

/* Reap every exited worker; after a stop record how it ended, else schedule its restart. */
static void reap(struct slot *slots, int n, bool stopping, bool *clean)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int i = 0;
		while (i < n && slots[i].pid != pid)
			i++;
		if (i == n)
			continue; /* not a worker */
		struct slot *s = &slots[i];
		s->pid = 0;
		char how[96];
		describe_exit(status, how, sizeof(how));
		if (stopping) {
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				*clean = false;
				log_warn("supervisor: worker %d (pid %d) %s while stopping", i, (int)pid, how);
			} else {
				log_info("supervisor: worker %d (pid %d) stopped", i, (int)pid);
			}
			continue;
		}
		int64_t now = carillon_now_ms();
		if (now - s->started_ms >= STABLE_MS)
			s->backoff_ms = 0;
		else
			s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2)
						      : BACKOFF_FIRST_MS;
		s->restart_at_ms = now + s->backoff_ms;
		log_warn("supervisor: worker %d (pid %d) %s; restarting it in %d ms", i, (int)pid, how, s->backoff_ms);
	}
}

int carillon_supervise(int n, int (*worker)(int index, void *arg), void *arg)
{
	sigset_t set, old;
	carillon_worker_signals(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	struct slot *slots = carillon_xcalloc((size_t)n, sizeof(*slots));
	bool stopping = false, clean = true;
	int64_t kill_at = 0;
	log_notice("supervisor: starting %d workers (pid %d)", n, (int)getpid());
	for (;;) {
		reap(slots, n, stopping, &clean);
		int64_t now = carillon_now_ms(), next = now + 1000;
		int running = 0;
		for (int i = 0; i < n; i++) {
			struct slot *s = &slots[i];
			if (!s->pid && !stopping && now >= s->restart_at_ms && spawn(s, i, &old, worker, arg)) {
				s->backoff_ms = BACKOFF_MAX_MS;
				s->restart_at_ms = now + s->backoff_ms;
			}
			if (s->pid)
				running++;
			else if (!stopping && s->restart_at_ms < next)
				next = s->restart_at_ms;
		}
		if (stopping && !running)
			break;
		if (stopping && now >= kill_at) {
			log_warn("supervisor: workers still running %ld s after the stop: killing them",
				 carillon_cfg.shutdown_grace_seconds + STOP_SLACK_MS / 1000);
			forward(slots, n, SIGKILL);
			kill_at = now + 1000;
			clean = false;
		}
		if (stopping && kill_at < next)
			next = kill_at;
		int64_t wait_ms = next > now ? next - now : 0;
		struct timespec ts = {.tv_sec = wait_ms / 1000, .tv_nsec = (wait_ms % 1000) * 1000000};
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			if (!stopping) {
				log_notice("supervisor: received %s: stopping the workers", sig == SIGTERM ? "SIGTERM" : "SIGINT");
				stopping = true;
				kill_at = carillon_now_ms() + carillon_cfg.shutdown_grace_seconds * 1000 + STOP_SLACK_MS;
			}
			forward(slots, n, sig);
		} else if (sig == SIGHUP) {
			forward(slots, n, SIGHUP);
		}
	}
	free(slots);
	sigprocmask(SIG_SETMASK, &old, NULL);
	log_notice("supervisor: every worker has stopped");
	return clean ? 0 : 1;
}
