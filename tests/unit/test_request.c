/*
 * The request state machine (src/http/lifecycle.c) without a socket: a request is fed its head and
 * body as libwebsockets would, the client may go away at any point, and the test records what
 * the http layer dispatches, answers and frees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "carillon/config.h"
#include "carillon/http.h"
#include "../../src/http/http_internal.h"

/* Stand-in for the connection: never dereferenced by the state machine. */
static char conn_a, conn_b;

static int writes_asked;
static struct lws *last_write_wsi;
static struct carillon_req *dispatched;
static int n_dispatched;
static int data_freed;

static void record_want_write(struct lws *wsi)
{
	writes_asked++;
	last_write_wsi = wsi;
}

static void record_dispatch(struct carillon_req *r)
{
	dispatched = r;
	n_dispatched++;
}

static void count_free(void *data) { data_freed++; }

static int setup(void **state)
{
	carillon_cfg.max_body_bytes = 1024;
	carillon_http_want_write = record_want_write;
	carillon_http_set_dispatcher(record_dispatch);
	writes_asked = 0;
	last_write_wsi = NULL;
	dispatched = NULL;
	n_dispatched = 0;
	data_freed = 0;
	return 0;
}

static void assert_nothing_left(void)
{
	assert_int_equal(carillon_http_live(), 0);
	assert_int_equal(carillon_http_in_flight(), 0);
}

/* The ordinary path: head, body in pieces, dispatch once complete, reply, written and freed. */
static void test_complete_request(void **state)
{
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "POST", "/channels");
	carillon_http_req_head(r, "11", false);
	assert_int_equal(n_dispatched, 0);
	carillon_http_req_body(r, "hello ", 6);
	carillon_http_req_body(r, "world", 5);
	assert_int_equal(n_dispatched, 0);
	carillon_http_req_body_complete(r);
	assert_int_equal(n_dispatched, 1);
	assert_ptr_equal(dispatched, r);
	assert_int_equal(carillon_http_in_flight(), 1);
	size_t len;
	const char *body = carillon_req_body(r, &len);
	assert_int_equal(len, 11);
	assert_memory_equal(body, "hello world", 11);
	assert_string_equal(carillon_req_method(r), "POST");
	assert_string_equal(carillon_req_path(r), "/channels");
	carillon_req_set_data(r, &conn_b, count_free);
	carillon_reply_json(r, 201, json_pack("{s:s}", "ChannelArn", "x"));
	assert_int_equal(writes_asked, 1);
	assert_ptr_equal(last_write_wsi, &conn_a);
	assert_int_equal(r->status, 201);
	assert_int_equal(carillon_http_in_flight(), 0);
	/* A second answer is ignored: the first stands. */
	carillon_reply_error(r, CARILLON_ERR_SERVICE_FAILURE, "late");
	assert_int_equal(r->status, 201);
	assert_int_equal(writes_asked, 1);
	carillon_http_req_free(r); /* what request.c does once the response is written */
	assert_int_equal(data_freed, 1);
	assert_nothing_left();
}

/* No body (no Content-Length): dispatched with the head. */
static void test_no_body_dispatches_at_once(void **state)
{
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "GET", "/app-instances");
	carillon_http_req_head(r, NULL, false);
	assert_int_equal(n_dispatched, 1);
	carillon_http_req_body_complete(r); /* lws may still say so: no second dispatch */
	assert_int_equal(n_dispatched, 1);
	carillon_reply_json(r, 0, NULL);
	assert_int_equal(r->status, 200);
	carillon_http_req_free(r);
	assert_nothing_left();
}

/* The client goes away while the body is still coming: nothing is dispatched, all is freed. */
static void test_early_close(void **state)
{
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "POST", "/channels");
	carillon_http_req_head(r, "100", false);
	carillon_http_req_body(r, "{\"Na", 4);
	carillon_http_req_closed(r);
	assert_int_equal(n_dispatched, 0);
	assert_int_equal(writes_asked, 0);
	assert_nothing_left();
}

/* The client goes away while its request waits on a handler: the request is orphaned, not freed
 * (the handler still holds it), and freed when the handler answers, without any write. */
static void test_orphaned_request(void **state)
{
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "GET", "/app-instances");
	carillon_http_req_head(r, NULL, false);
	assert_ptr_equal(dispatched, r);
	carillon_req_set_data(r, &conn_b, count_free);
	carillon_http_req_closed(r);
	assert_int_equal(carillon_http_live(), 1);
	assert_int_equal(carillon_http_in_flight(), 1);
	assert_int_equal(data_freed, 0);
	assert_ptr_equal(carillon_req_data(r), &conn_b); /* still usable by its handler */
	carillon_reply_error(r, CARILLON_ERR_NOT_FOUND, "gone");
	assert_int_equal(writes_asked, 0);
	assert_int_equal(data_freed, 1);
	assert_nothing_left();
}

/* A Content-Length over CARILLON_MAX_BODY_BYTES: 413 before any byte of the body is kept, the
 * connection closed after; the body lws still delivers is ignored and nothing is dispatched. */
static void test_oversized_body(void **state)
{
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "POST", "/channels");
	carillon_http_req_head(r, "1025", false);
	assert_int_equal(r->status, 413);
	assert_true(r->close_after);
	assert_int_equal(writes_asked, 1);
	carillon_http_req_body(r, "xxxx", 4);
	carillon_http_req_body_complete(r);
	assert_int_equal(n_dispatched, 0);
	assert_int_equal(r->body.len, 0);
	carillon_http_req_closed(r); /* the client hangs up before the answer is written */
	assert_nothing_left();
}

/* Error styles: Chime's {"Code","Message"} by default, Pinpoint's {"Message","RequestID"} with its
 * own exception names and statuses once the dispatcher says so. */
static void test_error_styles(void **state)
{
	static const struct {
		enum carillon_err_style style;
		enum carillon_err e;
		int status;
		const char *type;
	} cases[] = {
	    {CARILLON_ERR_STYLE_CHIME, CARILLON_ERR_NOT_FOUND, 404, "NotFoundException"},
	    {CARILLON_ERR_STYLE_CHIME, CARILLON_ERR_UNAUTHORIZED, 401, "UnauthorizedClientException"},
	    {CARILLON_ERR_STYLE_PINPOINT, CARILLON_ERR_NOT_FOUND, 404, "NotFoundException"},
	    {CARILLON_ERR_STYLE_PINPOINT, CARILLON_ERR_UNAUTHORIZED, 403, "ForbiddenException"},
	    {CARILLON_ERR_STYLE_PINPOINT, CARILLON_ERR_THROTTLED, 429, "TooManyRequestsException"},
	    {CARILLON_ERR_STYLE_PINPOINT, CARILLON_ERR_SERVICE_FAILURE, 500, "InternalServerErrorException"},
	    {CARILLON_ERR_STYLE_PINPOINT, CARILLON_ERR_NOT_IMPLEMENTED, 405, "MethodNotAllowedException"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "GET", "/v1/apps/x");
		carillon_http_req_head(r, NULL, false);
		carillon_req_set_error_style(r, cases[i].style);
		carillon_reply_error(r, cases[i].e, "why %d", 7);
		assert_int_equal(r->status, cases[i].status);
		assert_string_equal(r->error_type, cases[i].type);
		json_t *body = json_loadb((const char *)CARILLON_RESP_BODY(r), r->resp_len, 0, NULL);
		assert_non_null(body);
		assert_string_equal(json_string_value(json_object_get(body, "Message")), "why 7");
		if (cases[i].style == CARILLON_ERR_STYLE_PINPOINT) {
			assert_string_equal(json_string_value(json_object_get(body, "RequestID")), r->id);
			assert_null(json_object_get(body, "Code"));
		} else {
			assert_non_null(json_object_get(body, "Code"));
			assert_null(json_object_get(body, "RequestID"));
		}
		json_decref(body);
		carillon_http_req_free(r);
	}
	assert_nothing_left();
}

/* More body than the Content-Length announced: 400 and close, no dispatch. */
static void test_overlong_body(void **state)
{
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "POST", "/channels");
	carillon_http_req_head(r, "4", false);
	carillon_http_req_body(r, "{}{}{}", 6);
	assert_int_equal(r->status, 400);
	assert_true(r->close_after);
	carillon_http_req_body_complete(r);
	assert_int_equal(n_dispatched, 0);
	carillon_http_req_free(r);
	assert_nothing_left();
}

/* Framing the server refuses: a malformed or negative Content-Length, a chunked body. */
static void test_bad_framing(void **state)
{
	static const char *const bad[] = {"abc", "-1", "12x", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "POST", "/channels");
		carillon_http_req_head(r, bad[i], false);
		assert_int_equal(r->status, 400);
		assert_true(r->close_after);
		carillon_http_req_free(r);
	}
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "POST", "/channels");
	carillon_http_req_head(r, NULL, true);
	assert_int_equal(r->status, 400);
	carillon_http_req_free(r);
	assert_int_equal(n_dispatched, 0);
	assert_nothing_left();
}

/* Before a dispatcher is set (start-up), a complete request gets 503, not a crash. */
static void test_no_dispatcher(void **state)
{
	carillon_http_set_dispatcher(NULL);
	struct carillon_req *r = carillon_http_req_new((struct lws *)&conn_a, "GET", "/app-instances");
	carillon_http_req_head(r, NULL, false);
	assert_int_equal(r->status, 503);
	carillon_http_req_free(r);
	assert_nothing_left();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_complete_request, setup),
		cmocka_unit_test_setup(test_no_body_dispatches_at_once, setup),
		cmocka_unit_test_setup(test_early_close, setup),
		cmocka_unit_test_setup(test_orphaned_request, setup),
		cmocka_unit_test_setup(test_oversized_body, setup),
		cmocka_unit_test_setup(test_overlong_body, setup),
		cmocka_unit_test_setup(test_bad_framing, setup),
		cmocka_unit_test_setup(test_no_dispatcher, setup),
		cmocka_unit_test_setup(test_error_styles, setup),
	};
	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
