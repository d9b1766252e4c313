/*
 * uv_poll_start without the restart when nothing changes.
 *
 * libuv's uv_poll_start (1.44, src/unix/poll.c) stops the poll first whatever it is asked: the
 * watcher's fd is deleted from epoll at once (epoll_ctl DEL) and added back at the next poll (ADD),
 * even when the events asked for are the ones already set. libwebsockets 4.1's libuv glue calls it
 * for every change of a connection's events, and several of those change nothing (a keep-alive
 * HTTP/1.1 request re-arms the read interest it already has): measured, 7 epoll_ctl a request at
 * 64 sends in flight, 15 % of the gateway's CPU with the kernel's side (BENCHMARKS.md, issue 11
 * session 15). libwebsockets 4.1 has no hook for its event-loop calls, so this definition takes
 * libuv's place for the whole process: the executable exports it (CMakeLists.txt), and symbols of
 * the executable come first for every library, libwebsockets' event-loop plugin included.
 *
 * It answers 0 at once when the handle is active with the same callback and the same events
 * (libuv's own view: io_watcher.pevents, the mask the next poll will ask for, in libuv's
 * translation of the UV_ flags); anything else goes to libuv's uv_poll_start. Skipping such a
 * restart changes nothing a caller can see: the poll stays armed for the same events (epoll is
 * level-triggered here, so an event pending for the fd is still reported).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <poll.h>
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

/* Restarts skipped since the start (a test reads it). */
unsigned long carillon_uv_poll_restarts_skipped;

int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb)
{
	if (events && cb == handle->poll_cb && uv_is_active((uv_handle_t *)handle) &&
	    !uv_is_closing((uv_handle_t *)handle) && handle->io_watcher.pevents == uv_to_mask(events)) {
		carillon_uv_poll_restarts_skipped++;
		return 0;
	}
	return libuv_poll_start()(handle, events, cb);
}
