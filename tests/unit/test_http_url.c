/*
 * test_http_url.c - request targets taken apart, and query parameters
 * decoded: nothing is decoded before routing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../api/http_url.h"

static void split_ok(const char *target, const char *want_path, const char *want_query)
{
	char *path, *query;

	assert_int_equal(http_url_split(target, strlen(target), &path, &query), 0);
	assert_string_equal(path, want_path);
	if (want_query)
		assert_string_equal(query, want_query);
	else
		assert_null(query);
	free(path);
	free(query);
}

static void test_split(void **state)
{
	char *path, *query;

	split_ok("/api/jobs", "/api/jobs", NULL);
	split_ok("/api/jobs?status=PENDING&limit=2", "/api/jobs", "status=PENDING&limit=2");
	split_ok("/api/jobs?", "/api/jobs", NULL);
	/* Escapes are kept: "%2F" is not a separator for the router. */
	split_ok("/api/jobs%2Fabc", "/api/jobs%2Fabc", NULL);
	split_ok("/api/jobs#frag", "/api/jobs", NULL);
	split_ok("http://example.com:8080/api/status?x=1", "/api/status", "x=1");
	split_ok("http://example.com", "/", NULL);
	assert_int_equal(http_url_split("", 0, &path, &query), -EINVAL);
	assert_int_equal(http_url_split("api/jobs", 8, &path, &query), -EINVAL);
	assert_null(path);
	assert_null(query);
}

static void get_ok(const char *query, const char *key, const char *want)
{
	char *v;

	assert_int_equal(http_url_query_get(query, key, &v), 0);
	assert_string_equal(v, want);
	free(v);
}

static void test_query(void **state)
{
	char *v;

	get_ok("status=PENDING&limit=2", "status", "PENDING");
	get_ok("status=PENDING&limit=2", "limit", "2");
	get_ok("a=1&a=2", "a", "1");
	get_ok("flag", "flag", "");
	get_ok("k=", "k", "");
	get_ok("st%61tus=RUN%4eING", "status", "RUNNING");
	get_ok("q=a+b%20c", "q", "a b c");
	/* Bad escapes and %00 stay as they were sent. */
	get_ok("q=100%", "q", "100%");
	get_ok("q=%zz%4", "q", "%zz%4");
	get_ok("q=1%00x", "q", "1%00x");
	get_ok("&&q=3&", "q", "3");
	assert_int_equal(http_url_query_get("status=x", "limit", &v), -ENOENT);
	assert_null(v);
	assert_int_equal(http_url_query_get(NULL, "limit", &v), -ENOENT);
	assert_int_equal(http_url_query_get("", "limit", &v), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
