/*
 * The hub's channel index under churn, checked against a plain model: sessions join channels
 * (again and again: a join is idempotent), and detach, some from a few channels (left at once),
 * some from thousands (left in slices by carillon_hub_reap). Exercises the (session, channel) pair
 * index, its backward-shift deletion and the swap-with-last bookkeeping of both sides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/realtime.h"

#define SESSIONS 64
#define CHANNELS 3000

static unsigned rnd(void)
{
	static uint64_t x = 88172645463325252ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (unsigned)(x >> 11);
}

static void channel_name(char *out, size_t len, int c) { snprintf(out, len, "arn:aws:chime:us-east-1:1:app-instance/a/channel/c%d", c); }

static void check(unsigned char (*model)[CHANNELS], bool *open)
{
	char name[96];
	for (int c = 0; c < CHANNELS; c++) {
		int want = 0;
		for (int s = 0; s < SESSIONS; s++)
			want += open[s] && model[s][c];
		channel_name(name, sizeof(name), c);
		assert_int_equal(carillon_hub_channel_sessions(name), want);
	}
}

static void test_churn(void **state)
{
	static unsigned char model[SESSIONS][CHANNELS];
	bool open[SESSIONS] = {0};
	struct carillon_session *sess[SESSIONS];
	char name[96];
	for (int s = 0; s < SESSIONS; s++)
		sess[s] = calloc(1, carillon_session_pss_size()); /* a closed session: no user, not active */
	for (int round = 0; round < 40; round++) {
		for (int s = 0; s < SESSIONS; s++) {
			unsigned r = rnd() % 4;
			if (!open[s] || r == 0) {
				if (open[s])
					carillon_hub_detach(sess[s]);
				memset(model[s], 0, sizeof(model[s]));
				open[s] = true;
			}
			/* a few sessions join thousands of channels (detached through the reaper) */
			int joins = s % 8 == 0 ? 1500 : (int)(rnd() % 40);
			for (int j = 0; j < joins; j++) {
				int c = (int)(rnd() % CHANNELS);
				channel_name(name, sizeof(name), c);
				carillon_hub_join(sess[s], name);
				model[s][c] = 1;
			}
		}
		/* reap a little at a time, checking between slices */
		while (carillon_hub_reap(700))
			check(model, open);
		check(model, open);
	}
	for (int s = 0; s < SESSIONS; s++) {
		carillon_hub_detach(sess[s]);
		open[s] = false;
	}
	while (carillon_hub_reap(1000))
		;
	check(model, open);
	carillon_hub_free();
	for (int s = 0; s < SESSIONS; s++)
		free(sess[s]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_churn)};
	return cmocka_run_group_tests_name("hub", tests, NULL, NULL);
}
