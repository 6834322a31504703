/*
 * test_http_origin.c - what an Origin or a Host header names: the hosts an
 * open loopback valetd answers to (DNS rebinding), the loopback origins
 * CORS allows by default, and an Origin against the Host (cross-origin
 * writes). The server's use of them: tests/integration/test_api.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../api/http_origin.h"

static void test_host_local(void **state)
{
	/* clang-format off */
	static const char *const local[] = {
	    "127.0.0.1", "127.0.0.1:8080", "10.1.2.3:80", "0.0.0.0", "[::1]", "[::1]:8080",
	    "[2001:db8::1]:443", "localhost", "LocalHost:8080", "valet.localhost",
	    "a.b-c.localhost:1", "localhost:",
	};
	/* What a rebinding attacker's page sends: a name of its own. */
	static const char *const other[] = {
	    "attacker.example", "attacker.example:8080", "localhost.attacker.example",
	    "127.0.0.1.nip.io", "evillocalhost", ".localhost", "a..localhost", "a/.localhost",
	    "127.1", "2130706433", "[::1", "[::1]x", "::1", "[nope]", "localhost:80:80",
	    "localhost:123456", "localhost:8a", "", ":8080", "x",
	};
	/* clang-format on */

	(void)state;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!http_origin_host_local(local[i]))
			fail_msg("\"%s\" is local", local[i]);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (http_origin_host_local(other[i]))
			fail_msg("\"%s\" is not local", other[i]);
	assert_false(http_origin_host_local(NULL));
}

static void test_host_listed(void **state)
{
	char *list[] = {"valet.example", ".corp.example", NULL};
	char *any[] = {"x.example", "*", NULL};

	(void)state;
	assert_true(http_origin_host_listed(list, "valet.example"));
	assert_true(http_origin_host_listed(list, "VALET.EXAMPLE:443"));
	assert_true(http_origin_host_listed(list, "corp.example"));
	assert_true(http_origin_host_listed(list, "ci.corp.example:8080"));
	assert_true(http_origin_host_listed(list, "a.b.corp.example"));
	assert_false(http_origin_host_listed(list, "xvalet.example"));
	assert_false(http_origin_host_listed(list, "valet.example.evil"));
	assert_false(http_origin_host_listed(list, "evilcorp.example"));
	assert_false(http_origin_host_listed(list, "valet.example:x"));
	assert_false(http_origin_host_listed(list, ""));
	assert_false(http_origin_host_listed(list, NULL));
	assert_true(http_origin_host_listed(any, "anything.example"));
	assert_false(http_origin_host_listed(NULL, "valet.example"));
}

static void test_loopback_origins(void **state)
{
	/* clang-format off */
	static const char *const loopback[] = {
	    "http://localhost", "http://localhost:5173", "https://localhost:8443",
	    "http://127.0.0.1", "http://127.0.0.1:3000", "http://127.255.0.9:1",
	    "http://[::1]:8080", "http://app.localhost", "HTTP://LOCALHOST:80",
	};
	static const char *const other[] = {
	    "http://example.com", "https://evil.example", "null", "file://",
	    "http://10.0.0.1:8080", "http://[::2]", "http://localhost.evil.example",
	    "http://127.0.0.1.evil.example", "http://localhost:80/x", "ftp://localhost",
	    "localhost", "http://", "http://evil.example#localhost", "http://user@localhost",
	    "http://0.0.0.0",
	};
	/* clang-format on */

	(void)state;
	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++)
		if (!http_origin_loopback(loopback[i]))
			fail_msg("\"%s\" is a loopback origin", loopback[i]);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (http_origin_loopback(other[i]))
			fail_msg("\"%s\" is not a loopback origin", other[i]);
	assert_false(http_origin_loopback(NULL));
}

static void test_same_host(void **state)
{
	(void)state;
	assert_true(http_origin_same_host("http://127.0.0.1:8080", "127.0.0.1:8080"));
	assert_true(http_origin_same_host("https://Valet.Example", "valet.example"));
	assert_false(http_origin_same_host("http://127.0.0.1:8080", "127.0.0.1:8081"));
	assert_false(http_origin_same_host("http://evil.example", "127.0.0.1:8080"));
	assert_false(http_origin_same_host("null", "null"));
	assert_false(http_origin_same_host("http://", ""));
	assert_false(http_origin_same_host("://x", "x"));
	assert_false(http_origin_same_host("http://x", NULL));
	assert_false(http_origin_same_host(NULL, "x"));
}

static void test_list(void **state)
{
	char **list;

	(void)state;
	assert_int_equal(http_origin_list(" a, b\tc,,  ", &list), 0);
	assert_string_equal(list[0], "a");
	assert_string_equal(list[1], "b");
	assert_string_equal(list[2], "c");
	assert_null(list[3]);
	http_origin_list_free(list);
	assert_int_equal(http_origin_list("", &list), 0);
	assert_null(list[0]);
	http_origin_list_free(list);
	assert_int_equal(http_origin_list("a,b,c,d,e", &list), 0);
	assert_string_equal(list[4], "e");
	assert_null(list[5]);
	http_origin_list_free(list);
	http_origin_list_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_local),	      cmocka_unit_test(test_host_listed),
	    cmocka_unit_test(test_loopback_origins), cmocka_unit_test(test_same_host),
	    cmocka_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
