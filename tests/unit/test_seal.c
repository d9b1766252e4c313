/* Sealing (NextTokens, session tokens) and user-scoped credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "carillon/auth.h"
#include "carillon/config.h"

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	memset(carillon_cfg.master_key, 7, sizeof(carillon_cfg.master_key));
	return 0;
}

static void test_round_trip(void **state)
{
	char *s = carillon_seal("purpose A", "hello", 5);
	size_t len;
	char *p = carillon_open("purpose A", s, &len);
	assert_non_null(p);
	assert_int_equal(len, 5);
	assert_string_equal(p, "hello");
	free(p);
	/* another purpose's key does not open it */
	assert_null(carillon_open("purpose B", s, &len));
	/* one flipped character is rejected */
	s[10] = s[10] == 'A' ? 'B' : 'A';
	assert_null(carillon_open("purpose A", s, &len));
	free(s);
	/* garbage, empty, oversized */
	assert_null(carillon_open("purpose A", "!!!!", &len));
	assert_null(carillon_open("purpose A", "", &len));
	char *big = malloc(20000);
	memset(big, 'A', 19999);
	big[19999] = '\0';
	assert_null(carillon_open("purpose A", big, &len));
	free(big);
}

static void test_master_key_binds(void **state)
{
	char *s = carillon_seal("p", "x", 1);
	carillon_cfg.master_key[0] ^= 1;
	size_t len;
	assert_null(carillon_open("p", s, &len));
	carillon_cfg.master_key[0] ^= 1;
	char *p = carillon_open("p", s, &len);
	assert_non_null(p);
	free(p);
	free(s);
}

static void test_mint(void **state)
{
	struct carillon_temp_credentials c;
	assert_int_equal(carillon_auth_mint("arn:aws:chime:us-east-1:1:app-instance/a/user/u", "AKIDROOT", 42, 1000, 900, &c), 0);
	assert_int_equal(strncmp(c.access_key_id, "ASIA", 4), 0);
	assert_int_equal(strlen(c.access_key_id), 20);
	assert_int_equal(strlen(c.secret_access_key), 40);
	assert_int_equal(c.expires_ms, 1000 + 900 * 1000);
	assert_true(strlen(c.session_token) > 40);
	struct carillon_temp_credentials d;
	carillon_auth_mint("arn:aws:chime:us-east-1:1:app-instance/a/user/u", "AKIDROOT", 42, 1000, 900, &d);
	assert_string_not_equal(c.access_key_id, d.access_key_id);
	assert_string_not_equal(c.session_token, d.session_token);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_master_key_binds),
		cmocka_unit_test(test_mint),
	};
	return cmocka_run_group_tests_name("seal", tests, setup, NULL);
}
