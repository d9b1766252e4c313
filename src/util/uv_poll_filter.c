/*
 * uv_poll_start without the restart: unchanged events skipped, changed ones changed in place.
 *
 * libuv's uv_poll_start (1.44, src/unix/poll.c) stops the poll first whatever it is asked: the
 * watcher's fd is deleted from epoll at once (epoll_ctl DEL) and added back at the next poll (ADD).
 * libwebsockets 4.1's libuv glue calls it for every change of a connection's events: after each
 * HTTP response it asks for POLLOUT and, at the writable event, for POLLIN alone again; several
 * calls change nothing (a keep-alive HTTP/1.1 request re-arms the read interest it already has).
 * Measured at 64 sends in flight: 7 epoll_ctl a request and 15 % of the gateway's CPU with the
 * kernel's side (BENCHMARKS.md, issue 11 session 15); 3.7 a request once the unchanged ones were
 * skipped (session 18). libwebsockets 4.1 has no hook for its event-loop calls, so this definition
 * takes libuv's place for the whole process: the executable exports it (CMakeLists.txt), and
 * symbols of the executable come first for every library, libwebsockets' event-loop plugin
 * included.
 *
 * For a handle that is active with the same callback:
 *  - the same events: answered 0 at once (libuv's own view: io_watcher.pevents, the mask the next
 *    poll will ask for, in libuv's translation of the UV_ flags);
 *  - other events (not none): changed in place, the way libuv changes the events of its own
 *    streams (uv__io_start / uv__io_stop, src/unix/core.c): the watcher's pending mask becomes the
 *    new one and the watcher goes on the loop's watcher queue, so that the next poll makes one
 *    epoll_ctl MOD. An event epoll already reported for a bit no longer asked for is masked by
 *    libuv's poll (it keeps only pevents' bits). This reads and writes libuv's watcher queue, which
 *    its public header lays out but does not promise: it is compiled only against libuv 1.44 and
 *    done only when the running libuv is 1.44 too (Debian 12's); anything else goes to libuv.
 * Anything else (stopped, closing, another callback, no events) goes to libuv's uv_poll_start.
 * Neither changes what a caller can see: the poll is armed for the events asked for (epoll is
 * level-triggered here, so an event pending for the fd is reported at the next poll).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "carillon/util.h"

/* libuv's translation of the UV_ flags into the watcher's mask (src/unix/poll.c; UV__POLLRDHUP and
 * UV__POLLPRI in src/unix/internal.h on Linux). */
#define FILTER_POLLRDHUP 0x2000u
static unsigned uv_to_mask(int events)
{
	unsigned mask = 0;
	if (events & UV_READABLE)
		mask |= POLLIN;
	if (events & UV_PRIORITIZED)
		mask |= POLLPRI;
	if (events & UV_WRITABLE)
		mask |= POLLOUT;
	if (events & UV_DISCONNECT)
		mask |= FILTER_POLLRDHUP;
	return mask;
}

typedef int (*poll_start_fn)(uv_poll_t *, int, uv_poll_cb);

static poll_start_fn libuv_poll_start(void)
{
	static poll_start_fn next;
	if (!next) {
		void *sym = dlsym(RTLD_NEXT, "uv_poll_start");
		if (!sym) { /* libuv is linked in: cannot happen */
			fprintf(stderr, "uv_poll_start: libuv's definition not found\n");
			abort();
		}
		*(void **)&next = sym;
	}
	return next;
}

/* Restarts skipped since the start, and changes made in place (a test reads them). */
unsigned long carillon_uv_poll_restarts_skipped;
unsigned long carillon_uv_poll_changes_in_place;

#if UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR == 44
#define FILTER_IN_PLACE 1
/* libuv 1.44's QUEUE (src/queue.h): two pointers, next then previous; empty when it points at itself. */
static void watcher_queue_append(uv_loop_t *loop, uv__io_t *w)
{
	void **q = w->watcher_queue, **h = loop->watcher_queue;
	if ((void **)q[0] != q)
		return; /* already queued: the next poll sets what pevents says then */
	q[0] = h;
	q[1] = h[1];
	((void **)q[1])[0] = q;
	h[1] = q;
}

static bool runtime_is_1_44(void)
{
	static int known; /* 0 not asked yet, 1 yes, -1 no */
	if (!known)
		known = (uv_version() >> 8) == ((1u << 8) | 44u) ? 1 : -1;
	return known > 0;
}
#else
#define FILTER_IN_PLACE 0
#endif

int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb)
{
	if (events && cb == handle->poll_cb && uv_is_active((uv_handle_t *)handle) &&
	    !uv_is_closing((uv_handle_t *)handle)) {
		unsigned mask = uv_to_mask(events);
		if (handle->io_watcher.pevents == mask) {
			carillon_uv_poll_restarts_skipped++;
			return 0;
		}
#if FILTER_IN_PLACE
		if (runtime_is_1_44()) {
			handle->io_watcher.pevents = mask;
			if (handle->io_watcher.events != mask)
				watcher_queue_append(handle->loop, &handle->io_watcher);
			carillon_uv_poll_changes_in_place++;
			return 0;
		}
#endif
	}
	return libuv_poll_start()(handle, events, cb);
}
