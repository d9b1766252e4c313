/*
 * The operation table against the models and the SQL: a model operation without its row (or a row
 * without an operation, a trait that disagrees with the model, an SQL function that does not exist)
 * fails here, at build-and-test time, instead of leaving an operation silently unrouted.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/http.h"
#include "carillon/model.h"
#include "carillon/ops.h"
#include "carillon/util.h"

static int setup(void **state)
{
	(void)state;
	return carillon_model_init();
}

static int teardown(void **state)
{
	(void)state;
	carillon_model_free();
	return 0;
}

static size_t count_service(const char *service)
{
	size_t n, count = 0;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	for (size_t i = 0; i < n; i++)
		count += !strcmp(t[i].service, service);
	return count;
}

static void test_table_matches_models(void **state)
{
	size_t n;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	char err[512] = "";
	int rc = carillon_ops_check(t, n, err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	/* 30 identity + 51 messaging operations + the credentials pseudo-operation, all of them; of
	 * Pinpoint's 122 only the rows of the subset Carillon implements. */
	assert_int_equal(count_service("identity"), 30);
	assert_int_equal(count_service("messaging"), 51);
	assert_int_equal(count_service("carillon"), 1);
	size_t pinpoint_ops = 0;
	const struct carillon_op *op;
	for (size_t i = 0; (op = carillon_model_op_at(i)); i++)
		pinpoint_ops += !strcmp(op->service, "pinpoint");
	assert_int_equal(pinpoint_ops, 122);
	assert_true(count_service("pinpoint") > 0 && count_service("pinpoint") < pinpoint_ops);
	assert_int_equal(n, carillon_model_op_count() - pinpoint_ops + count_service("pinpoint"));
}

/* The partial-service rule: a Pinpoint operation may lack a row (it answers "not implemented"), a
 * Chime or Carillon one may not. */
static void test_only_pinpoint_may_lack_rows(void **state)
{
	size_t n;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	struct carillon_op_def *copy = carillon_xcalloc(n, sizeof(*copy));
	char err[512];
	assert_true(carillon_ops_partial_service("pinpoint"));
	assert_false(carillon_ops_partial_service("identity"));
	assert_false(carillon_ops_partial_service("messaging"));
	assert_false(carillon_ops_partial_service("carillon"));
	static const char *const drop[][2] = {{"pinpoint", "GetApp"},
					      {"messaging", "SendChannelMessage"},
					      {"identity", "RegisterAppInstanceUserEndpoint"},
					      {"carillon", "CreateCredentials"}};
	for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++) {
		const struct carillon_op_def *row = carillon_ops_find(drop[k][0], drop[k][1]);
		assert_non_null(row);
		size_t at = (size_t)(row - t), m = 0;
		for (size_t i = 0; i < n; i++)
			if (i != at)
				copy[m++] = t[i];
		int rc = carillon_ops_check(copy, m, err, sizeof(err));
		if (!strcmp(drop[k][0], "pinpoint")) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err, drop[k][1]));
		}
	}
	/* Decided in one place: a row, else the service's unlisted traits, else nothing. */
	const struct carillon_op_def *d = carillon_ops_def_of("pinpoint", "GetCampaigns");
	assert_non_null(d);
	assert_int_equal(d->flags, CARILLON_OP_NOT_IMPLEMENTED | CARILLON_OP_READ | CARILLON_OP_ADMIN);
	assert_ptr_equal(carillon_ops_def_of("pinpoint", "GetApp"), carillon_ops_find("pinpoint", "GetApp"));
	assert_false(carillon_ops_def_of("pinpoint", "GetApp")->flags & CARILLON_OP_NOT_IMPLEMENTED);
	assert_null(carillon_ops_def_of("messaging", "NoSuchOperation"));
	assert_null(carillon_ops_def_of("nosuchservice", "GetApp"));
	assert_int_equal(carillon_ops_service("pinpoint")->err_style, CARILLON_ERR_STYLE_PINPOINT);
	assert_int_equal(carillon_ops_service("messaging")->err_style, CARILLON_ERR_STYLE_CHIME);
	assert_ptr_equal(carillon_ops_service_of_path("/v1/apps/x/segments"), carillon_ops_service("pinpoint"));
	assert_null(carillon_ops_service_of_path("/channels/x/messages"));
	/* NOT_IMPLEMENTED is a service's trait, never a row's. */
	memcpy(copy, t, n * sizeof(*copy));
	const struct carillon_op_def *get_app = carillon_ops_find("pinpoint", "GetApp");
	copy[get_app - t].flags |= CARILLON_OP_NOT_IMPLEMENTED;
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NOT_IMPLEMENTED"));
	/* A row must still name an operation of Pinpoint's model. */
	memcpy(copy, t, n * sizeof(*copy));
	copy[n - 1] = (struct carillon_op_def){"pinpoint", "NoSuchOperation", "no_such_operation", CARILLON_OP_READ};
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	free(copy);
}

/* The checker itself: a table missing a row, with an extra row, a duplicate row or a wrong trait
 * is refused. */
static void test_check_refuses_bad_tables(void **state)
{
	size_t n;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	struct carillon_op_def *copy = carillon_xcalloc(n + 1, sizeof(*copy));
	char err[512];

	memcpy(copy, t + 1, (n - 1) * sizeof(*copy)); /* the first row missing */
	assert_int_equal(carillon_ops_check(copy, n - 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, t[0].name));

	memcpy(copy, t, n * sizeof(*copy));
	copy[n] = (struct carillon_op_def){"messaging", "NoSuchOperation", "no_such_operation", CARILLON_OP_READ};
	assert_int_equal(carillon_ops_check(copy, n + 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NoSuchOperation"));

	copy[n] = t[3]; /* a duplicate */
	assert_int_equal(carillon_ops_check(copy, n + 1, err, sizeof(err)), -1);

	const struct carillon_op_def *send = carillon_ops_find("messaging", "SendChannelMessage");
	assert_non_null(send);
	size_t at = (size_t)(send - t);
	copy[at].flags &= ~(unsigned)CARILLON_OP_IDEMPOTENT; /* the model has ClientRequestToken */
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	copy[at] = *send;
	copy[at].flags &= ~(unsigned)CARILLON_OP_BEARER;
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	copy[at] = *send;
	copy[at].flags |= CARILLON_OP_READ; /* both READ and WRITE */
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	copy[at] = *send;
	copy[at].flags = (copy[at].flags & ~(unsigned)CARILLON_OP_WRITE) | CARILLON_OP_READ; /* a READ with EVENTS */
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	copy[at] = *send;
	copy[at].sql_function = NULL; /* a WRITE without its function */
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	copy[at] = *send;

	/* The tag operations share their routes across services: they must be served alike. */
	const struct carillon_op_def *tag = carillon_ops_find("messaging", "TagResource");
	assert_non_null(tag);
	copy[tag - t].sql_function = "tag_messaging_resource";
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "TagResource"));
	copy[tag - t] = *tag;
	assert_int_equal(carillon_ops_check(copy, n, err, sizeof(err)), 0);
	free(copy);
}

/* Both TagResource rows exist and are found by (service, name), not by load order. */
static void test_lookup_by_service(void **state)
{
	const struct carillon_op *a = carillon_model_find("identity", "TagResource");
	const struct carillon_op *b = carillon_model_find("messaging", "TagResource");
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_string_equal(b->service, "messaging");
	assert_non_null(carillon_ops_find("messaging", "TagResource"));
	assert_null(carillon_ops_find("identity", "SendChannelMessage"));
	assert_non_null(carillon_model_find("carillon", "CreateCredentials"));
	const struct carillon_op *app = carillon_model_find("pinpoint", "CreateApp");
	assert_non_null(app);
	assert_string_equal(app->signing_name, "mobiletargeting");
	assert_string_equal(app->input_payload, "CreateApplicationRequest");
	assert_string_equal(app->output_payload, "ApplicationResponse");
	assert_string_equal(carillon_model_find("pinpoint", "GetApps")->page_token_member, "Token");
	assert_string_equal(carillon_model_find("messaging", "SendChannelMessage")->signing_name, "chime");
	assert_null(carillon_model_find("messaging", "SendChannelMessage")->input_payload);
}

/* Every SQL function the table names is defined under sql/api/. */
static char *read_sql(void)
{
	struct carillon_buf all = {0};
	DIR *d = opendir(CARILLON_SQL_DIR "/api");
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".sql"))
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/api/%s", CARILLON_SQL_DIR, e->d_name);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		char buf[8192];
		size_t got;
		while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
			carillon_buf_append(&all, buf, got);
		fclose(f);
	}
	closedir(d);
	carillon_buf_append(&all, "", 1);
	return all.data;
}

static void test_sql_functions_exist(void **state)
{
	char *sql = read_sql();
	size_t n;
	const struct carillon_op_def *t = carillon_ops_table(&n);
	for (size_t i = 0; i < n; i++) {
		if (!t[i].sql_function)
			continue;
		char needle[256];
		snprintf(needle, sizeof(needle), "function carillon_api.%s(", t[i].sql_function);
		if (!strstr(sql, needle))
			fail_msg("%s.%s: no %s in sql/api/", t[i].service, t[i].name, needle);
	}
	free(sql);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_models),
		cmocka_unit_test(test_check_refuses_bad_tables),
		cmocka_unit_test(test_only_pinpoint_may_lack_rows),
		cmocka_unit_test(test_lookup_by_service),
		cmocka_unit_test(test_sql_functions_exist),
	};
	return cmocka_run_group_tests_name("ops", tests, setup, teardown);
}
