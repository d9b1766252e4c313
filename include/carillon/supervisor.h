/* `carillon serve --workers N`: one parent supervising N worker processes (src/supervisor.c). */
#ifndef CARILLON_SUPERVISOR_H
#define CARILLON_SUPERVISOR_H

#include <signal.h>

/* The number of worker processes CARILLON_WORKERS asks for (0: one per online core). */
int carillon_workers_wanted(void);

/* Fork `n` workers, each running worker(index, arg) in its own process (its return value is the
 * worker's exit status; it never returns into the caller), and supervise them until they are all
 * gone after a stop: a worker that dies is started again (at once if it ran for a while, else
 * after a backoff doubling from 0.5 s to 30 s, so a crash loop does not spin); SIGTERM and SIGINT
 * are forwarded (each worker drains gracefully; one still running after the shutdown grace period
 * plus 10 s is killed), and so is SIGHUP. Returns the parent's exit status: 0 when every worker
 * exited 0 after the stop. */
int carillon_supervise(int n, int (*worker)(int index, void *arg), void *arg);

/* The signals the supervisor forwards and a worker's loop handles: SIGTERM, SIGINT, SIGHUP. A
 * worker starts with them blocked; carillon_server_run unblocks them once its handlers are in place,
 * so one that comes while the worker starts is handled, not acted on by default. */
void carillon_worker_signals(sigset_t *set);

#endif
