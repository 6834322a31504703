/*
 * test_taskapi.c - what a C task calls: valet_fail() and the json_unpack
 * based decoders valet_decode_params() and valet_decode_previous().
 *
 * Theory of operation: these functions only format strings into a struct
 * valet_ctx (sandbox/taskrun.h), so each test makes a zeroed context on
 * the stack, calls the API as a task would and checks the return value,
 * ctx.failed and the exact ctx.error text that becomes the job's
 * failure_reason. The jansson part of a decoding message is jansson's own
 * error text (json_error_t.text), checked verbatim as well.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../sandbox/taskrun.h"

#define NO_PREVIOUS "no previous result: set use_previous_results on this pipeline job"

static void ctx_reset(struct valet_ctx *ctx)
{
	free(ctx->error);
	ctx->error = NULL;
	ctx->failed = false;
}

/* ---- valet_fail ---------------------------------------------------------------------------- */

static void test_fail_formats(void **state)
{
	struct valet_ctx ctx = {0};

	assert_null(valet_fail(&ctx, "bad input: %s (%d)", "url", 3));
	assert_true(ctx.failed);
	assert_non_null(ctx.error);
	assert_string_equal(ctx.error, "bad input: url (3)");
	ctx_reset(&ctx);

	/* A message without directives, and an empty one. */
	assert_null(valet_fail(&ctx, "plain"));
	assert_string_equal(ctx.error, "plain");
	assert_null(valet_fail(&ctx, "%s", ""));
	assert_true(ctx.failed);
	assert_string_equal(ctx.error, "");
	ctx_reset(&ctx);
}

static void test_fail_replaces(void **state)
{
	struct valet_ctx ctx = {0};
	char *first;

	assert_null(valet_fail(&ctx, "first %d", 1));
	first = ctx.error;
	assert_string_equal(first, "first 1");
	assert_null(valet_fail(&ctx, "second %s", "message"));
	assert_true(ctx.failed);
	assert_string_equal(ctx.error, "second message");
	/* Freed and replaced, not appended (ASan sees a leak otherwise). */
	assert_null(valet_fail(&ctx, "third"));
	assert_string_equal(ctx.error, "third");
	ctx_reset(&ctx);
}

static void test_fail_long(void **state)
{
	struct valet_ctx ctx = {0};
	size_t n = 100000;
	char *big = malloc(n + 1);

	assert_non_null(big);
	memset(big, 'z', n);
	big[n] = '\0';
	assert_null(valet_fail(&ctx, "<%s>", big));
	assert_int_equal(strlen(ctx.error), n + 2);
	assert_int_equal(ctx.error[0], '<');
	assert_int_equal(ctx.error[n + 1], '>');
	assert_memory_equal(ctx.error + 1, big, n);
	free(big);
	ctx_reset(&ctx);
}

/* ---- valet_decode_params ------------------------------------------------------------------- */

static void test_decode_params_ok(void **state)
{
	struct valet_ctx ctx = {0};
	json_t *params =
	    json_pack("{s:s, s:i, s:b, s:f}", "url", "http://x", "n", 5, "flag", 1, "ratio", 0.5);
	const char *url = NULL;
	int n = 0, flag = 0, absent = 42;
	double ratio = 0;

	assert_non_null(params);
	assert_int_equal(valet_decode_params(&ctx, params, "{s:s, s?i}", "url", &url, "n", &n), 0);
	assert_false(ctx.failed);
	assert_null(ctx.error);
	assert_string_equal(url, "http://x");
	/* Borrowed: points into params. */
	assert_ptr_equal(url, json_string_value(json_object_get(params, "url")));
	assert_int_equal(n, 5);

	/* Optional and absent: untouched. Extra keys are fine without '!'. */
	assert_int_equal(valet_decode_params(&ctx, params, "{s:b, s:F, s?i}", "flag", &flag,
					     "ratio", &ratio, "absent", &absent),
			 0);
	assert_false(ctx.failed);
	assert_null(ctx.error);
	assert_int_equal(flag, 1);
	assert_true(ratio == 0.5);
	assert_int_equal(absent, 42);

	/* An empty format on an empty object. */
	json_decref(params);
	params = json_object();
	assert_int_equal(valet_decode_params(&ctx, params, "{}"), 0);
	assert_false(ctx.failed);
	json_decref(params);
}

static void test_decode_params_fail(void **state)
{
	static const struct {
		const char *json, *fmt, *message;
	} rows[] = {
	    {"{\"url\": 5}", "{s:s}", "invalid task_params: Expected string, got integer"},
	    {"{}", "{s:s}", "invalid task_params: Object item not found: url"},
	    {"{\"url\": \"a\", \"extra\": 1}", "{s:s!}",
	     "invalid task_params: 1 object item(s) left unpacked: extra"},
	    {"{\"url\": \"a\"}", "[s]", "invalid task_params: Expected array, got object"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct valet_ctx ctx = {0};
		json_t *params = json_loads(rows[i].json, 0, NULL);
		const char *url = "untouched";

		assert_non_null(params);
		assert_int_equal(valet_decode_params(&ctx, params, rows[i].fmt, "url", &url), -1);
		assert_true(ctx.failed);
		assert_non_null(ctx.error);
		assert_string_equal(ctx.error, rows[i].message);
		json_decref(params);
		ctx_reset(&ctx);
	}
}

static void test_decode_params_null(void **state)
{
	struct valet_ctx ctx = {0};
	const char *url;

	assert_int_equal(valet_decode_params(&ctx, NULL, "{s:s}", "url", &url), -1);
	assert_true(ctx.failed);
	assert_string_equal(ctx.error, "invalid task_params: NULL root value");
	ctx_reset(&ctx);
}

static void test_decode_replaces_fail(void **state)
{
	struct valet_ctx ctx = {0};
	json_t *params = json_pack("{s:i}", "n", 1);
	int n = 0;

	/* An earlier valet_fail() message is replaced by the decoding error. */
	valet_fail(&ctx, "earlier");
	assert_int_equal(valet_decode_params(&ctx, params, "{s:s}", "n", &n), -1);
	assert_string_equal(ctx.error, "invalid task_params: Expected string, got integer");
	ctx_reset(&ctx);

	/* A later success does not clear an earlier failure. */
	valet_fail(&ctx, "earlier");
	assert_int_equal(valet_decode_params(&ctx, params, "{s:i}", "n", &n), 0);
	assert_int_equal(n, 1);
	assert_true(ctx.failed);
	assert_string_equal(ctx.error, "earlier");
	ctx_reset(&ctx);
	json_decref(params);
}

/* ---- valet_decode_previous ----------------------------------------------------------------- */

static void test_decode_previous_null(void **state)
{
	struct valet_ctx ctx = {0};
	int n = 7;

	assert_int_equal(valet_decode_previous(&ctx, NULL, "{s:i}", "n", &n), -1);
	assert_true(ctx.failed);
	assert_string_equal(ctx.error, NO_PREVIOUS);
	assert_int_equal(n, 7);
	ctx_reset(&ctx);
}

static void test_decode_previous_value(void **state)
{
	struct valet_ctx ctx = {0};
	json_t *previous = json_pack("{s:s, s:[i,i]}", "sha256", "abc", "list", 1, 2);
	const char *sha = NULL;
	int a = 0, b = 0;

	assert_int_equal(
	    valet_decode_previous(&ctx, previous, "{s:s, s:[ii]}", "sha256", &sha, "list", &a, &b),
	    0);
	assert_false(ctx.failed);
	assert_null(ctx.error);
	assert_string_equal(sha, "abc");
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);

	/* A mismatch names the previous result, not task_params. */
	assert_int_equal(valet_decode_previous(&ctx, previous, "{s:i}", "sha256", &a), -1);
	assert_true(ctx.failed);
	assert_string_equal(ctx.error, "invalid previous result: Expected integer, got string");
	ctx_reset(&ctx);

	/* Any JSON value may be a previous result, not only objects. */
	json_decref(previous);
	previous = json_integer(12);
	assert_int_equal(valet_decode_previous(&ctx, previous, "i", &a), 0);
	assert_int_equal(a, 12);
	assert_false(ctx.failed);
	json_decref(previous);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fail_formats),
	    cmocka_unit_test(test_fail_replaces),
	    cmocka_unit_test(test_fail_long),
	    cmocka_unit_test(test_decode_params_ok),
	    cmocka_unit_test(test_decode_params_fail),
	    cmocka_unit_test(test_decode_params_null),
	    cmocka_unit_test(test_decode_replaces_fail),
	    cmocka_unit_test(test_decode_previous_null),
	    cmocka_unit_test(test_decode_previous_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
