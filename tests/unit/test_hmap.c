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

/* FNV-1a, the unkeyed hash the map used to have: anyone can compute it offline. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Keys a client could choose (channel ids) so that, under FNV-1a, all of them share one home
 * slot of a 4096-slot table: with an unkeyed hash they form one probe run and every lookup scans
 * it. Under the keyed hash they spread like any keys. */
#define COLLIDING 2000
static void test_chosen_collisions(void **state)
{
	static char keys[COLLIDING][48];
	int n = 0;
	for (unsigned long i = 0; n < COLLIDING; i++) {
		char k[48];
		snprintf(k, sizeof(k), "arn:aws:chime:channel/%lx", i);
		if ((fnv1a(k) & 4095) == 0)
			memcpy(keys[n++], k, sizeof(k));
	}
	struct carillon_hmap m = {0};
	for (int i = 0; i < COLLIDING; i++)
		carillon_hmap_put(&m, keys[i], (void *)(intptr_t)(i + 1));
	assert_int_equal(m.cap, 4096);
	size_t worst = carillon_hmap_max_probe(&m);
	printf("longest probe of %d FNV-colliding keys: %zu slots\n", COLLIDING, worst);
	assert_true(worst < 64);
	for (int i = 0; i < COLLIDING; i++)
		assert_ptr_equal(carillon_hmap_get(&m, keys[i]), (void *)(intptr_t)(i + 1));
	for (int i = 0; i < COLLIDING; i += 2)
		assert_ptr_equal(carillon_hmap_del(&m, keys[i]), (void *)(intptr_t)(i + 1));
	for (int i = 0; i < COLLIDING; i++)
		assert_ptr_equal(carillon_hmap_get(&m, keys[i]), i % 2 ? (void *)(intptr_t)(i + 1) : NULL);
	carillon_hmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_churn), cmocka_unit_test(test_chosen_collisions)};
	return cmocka_run_group_tests_name("hmap", tests, NULL, NULL);
}
