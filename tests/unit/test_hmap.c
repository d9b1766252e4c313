/* The string hash map under insert/replace/delete churn, checked against a plain array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/hmap.h"

#define N 5000

static void count_entry(const char *key, void *value, void *arg)
{
	(void)key;
	(void)value;
	(*(size_t *)arg)++;
}

static void test_churn(void **state)
{
	struct carillon_hmap m = {0};
	static intptr_t model[N];
	char key[32];
	unsigned x = 12345;
	for (int round = 0; round < 200000; round++) {
		x = x * 1103515245u + 12345u;
		int k = (int)((x >> 8) % N);
		snprintf(key, sizeof(key), "arn:%d", k);
		switch ((x >> 4) % 3) {
		case 0:
		case 1:
			carillon_hmap_put(&m, key, (void *)(intptr_t)(round + 1));
			model[k] = round + 1;
			break;
		default:
			assert_ptr_equal(carillon_hmap_del(&m, key), (void *)model[k]);
			model[k] = 0;
		}
	}
	size_t live = 0, seen = 0;
	for (int k = 0; k < N; k++) {
		snprintf(key, sizeof(key), "arn:%d", k);
		assert_ptr_equal(carillon_hmap_get(&m, key), (void *)model[k]);
		live += model[k] != 0;
	}
	assert_int_equal(m.len, live);
	carillon_hmap_each(&m, count_entry, &seen);
	assert_int_equal(seen, live);
	assert_null(carillon_hmap_get(&m, "absent"));
	carillon_hmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_churn)};
	return cmocka_run_group_tests_name("hmap", tests, NULL, NULL);
}
