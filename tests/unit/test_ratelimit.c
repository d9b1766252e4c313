/* Token buckets: burst, refill, independence of keys, unlimited rate, bounded memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "carillon/ratelimit.h"

static void burst_then_refill(void **state)
{
	(void)state;
	struct carillon_ratelimit rl;
	carillon_ratelimit_init(&rl, 2, 3, 100);
	for (int i = 0; i < 3; i++)
		assert_true(carillon_ratelimit_take(&rl, "k", 1000));
	assert_false(carillon_ratelimit_take(&rl, "k", 1000));
	assert_false(carillon_ratelimit_take(&rl, "k", 1400)); /* 0.8 token */
	assert_true(carillon_ratelimit_take(&rl, "k", 1500));  /* 1 token after 500 ms at 2/s */
	assert_false(carillon_ratelimit_take(&rl, "k", 1500));
	assert_true(carillon_ratelimit_take(&rl, "other", 1500));
	carillon_ratelimit_free(&rl);
}

static void unlimited(void **state)
{
	(void)state;
	struct carillon_ratelimit rl;
	carillon_ratelimit_init(&rl, 0, 1, 1);
	for (int i = 0; i < 1000; i++)
		assert_true(carillon_ratelimit_take(&rl, "k", 0));
	assert_int_equal(rl.buckets.len, 0);
	carillon_ratelimit_free(&rl);
}

static void bounded_keys(void **state)
{
	(void)state;
	struct carillon_ratelimit rl;
	carillon_ratelimit_init(&rl, 1, 1, 4);
	char key[16];
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_true(carillon_ratelimit_take(&rl, key, 1000));
	}
	/* full of buckets that are still empty: a new key is refused */
	assert_false(carillon_ratelimit_take(&rl, "new", 1100));
	assert_int_equal(rl.buckets.len, 4);
	/* after they refill, the sweep drops them and room is made */
	assert_true(carillon_ratelimit_take(&rl, "new", 3000));
	assert_int_equal(rl.buckets.len, 1);
	carillon_ratelimit_free(&rl);
}

static void clock_going_back(void **state)
{
	(void)state;
	struct carillon_ratelimit rl;
	carillon_ratelimit_init(&rl, 1, 1, 10);
	assert_true(carillon_ratelimit_take(&rl, "k", 5000));
	assert_false(carillon_ratelimit_take(&rl, "k", 1000)); /* no negative refill, no free tokens */
	assert_true(carillon_ratelimit_take(&rl, "k", 6000));
	carillon_ratelimit_free(&rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_refill),
		cmocka_unit_test(unlimited),
		cmocka_unit_test(bounded_keys),
		cmocka_unit_test(clock_going_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
