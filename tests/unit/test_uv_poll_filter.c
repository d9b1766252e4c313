/*
 * src/util/uv_poll_filter.c: a uv_poll_start that asks for the events already set leaves the fd
 * registered in epoll (libuv's own deletes it at once and adds it back at the next poll); one that
 * asks for other events changes them in place (the fd stays registered, the next poll sets the new
 * events, and an event no longer asked for is not reported); another callback or a stopped poll
 * still go through libuv, and every case works.
 *
 * What epoll holds is read from the kernel: /proc/self/fdinfo/<the loop's epoll fd> lists one
 * "tfd:" line per registered fd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "carillon/util.h"

static uv_loop_t loop;
static uv_poll_t poll_h;
static int fds[2];
static int events_seen, calls;

/* Whether the loop's epoll set holds fd, and for which events (its "events:" mask, hex). */
static bool registered(int fd, unsigned *mask)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", uv_backend_fd(&loop));
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		int tfd;
		unsigned ev;
		if (sscanf(line, "tfd: %d events: %x", &tfd, &ev) == 2 && tfd == fd) {
			found = true;
			if (mask)
				*mask = ev;
		}
	}
	fclose(f);
	return found;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	(void)h;
	assert_int_equal(status, 0);
	events_seen |= events;
	calls++;
}

static void on_poll_other(uv_poll_t *h, int status, int events)
{
	on_poll(h, status, events);
	calls += 100;
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(uv_poll_init(&loop, &poll_h, fds[0]), 0);
	events_seen = calls = 0;
	return 0;
}

static void closed(uv_handle_t *h) { (void)h; }

static int teardown(void **state)
{
	(void)state;
	uv_close((uv_handle_t *)&poll_h, closed);
	uv_run(&loop, UV_RUN_NOWAIT);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(uv_loop_close(&loop), 0);
	return 0;
}

static void test_same_events_keep_the_fd(void **state)
{
	(void)state;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT); /* the fd goes into epoll */
	assert_true(registered(fds[0], NULL));
	unsigned long skipped = carillon_uv_poll_restarts_skipped;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	assert_int_equal(carillon_uv_poll_restarts_skipped, skipped + 1);
	assert_true(registered(fds[0], NULL)); /* libuv's own would have deleted it here */
	/* and it still reports what it was asked for */
	assert_int_equal(write(fds[1], "x", 1), 1);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(events_seen & UV_READABLE);
}

static void test_changes_take_effect(void **state)
{
	(void)state;
	unsigned mask = 0;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	unsigned long skipped = carillon_uv_poll_restarts_skipped;
	/* more events */
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE | UV_WRITABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_true(mask & 0x4); /* EPOLLOUT */
	assert_true(events_seen & UV_WRITABLE);
	/* fewer */
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_false(mask & 0x4);
	/* the same events, another callback */
	calls = 0;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll_other), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(calls >= 100);
	/* stopped, then started with the events it had */
	assert_int_equal(uv_poll_stop(&poll_h), 0);
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll_other), 0);
	assert_true(uv_is_active((uv_handle_t *)&poll_h));
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], NULL));
	assert_int_equal(carillon_uv_poll_restarts_skipped, skipped);
}

/* R -> R|W -> R: each change made in place, the fd never deleted from epoll. */
static void test_changes_in_place(void **state)
{
	(void)state;
	unsigned mask = 0;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_false(mask & 0x4);
	unsigned long in_place = carillon_uv_poll_changes_in_place;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE | UV_WRITABLE, on_poll), 0);
	assert_int_equal(carillon_uv_poll_changes_in_place, in_place + 1);
	assert_true(registered(fds[0], &mask)); /* libuv's own would have deleted it here */
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_true(mask & 0x4); /* EPOLLOUT set by the poll */
	assert_true(events_seen & UV_WRITABLE);
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	assert_int_equal(carillon_uv_poll_changes_in_place, in_place + 2);
	assert_true(registered(fds[0], NULL));
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_false(mask & 0x4);
	/* the socket is still writable: no longer asked for, so not reported; readable still is */
	events_seen = 0;
	assert_int_equal(write(fds[1], "x", 1), 1);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(events_seen, UV_READABLE);
}

/* R -> R|W -> R within one turn of the loop: the poll sets R, writable is never reported. */
static void test_change_and_back_in_one_turn(void **state)
{
	(void)state;
	unsigned mask = 0;
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE | UV_WRITABLE, on_poll), 0);
	assert_int_equal(uv_poll_start(&poll_h, UV_READABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_false(mask & 0x4);
	assert_false(events_seen & UV_WRITABLE);
	/* and writable alone, in place, is reported */
	assert_int_equal(uv_poll_start(&poll_h, UV_WRITABLE, on_poll), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(registered(fds[0], &mask));
	assert_int_equal(mask & 0x5, 0x4);
	assert_true(events_seen & UV_WRITABLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_events_keep_the_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_take_effect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_and_back_in_one_turn, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
