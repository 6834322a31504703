/*
 * test_auth_cert.c - the cert= field of an API key's line: fingerprints as
 * `openssl x509 -fingerprint -sha256` prints them or in lower case, at most
 * AUTH_CERTS_MAX and no one twice; printed back as read; a certificate
 * found by its fingerprint; two keys of one certificate refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../api/auth.h"

#define HEX_A "6e9a43366c384328530fb12b79dcea48aacdd265d7cabf123585c6a1e01416bd"
#define HEX_B "b35700224aa1c01a1b5ff53a4c76495fd6d9bdac1b1ca9a6c6087af6e5bc1e2d"
#define OPENSSL_A                                                                                  \
	"SHA256:6E:9A:43:36:6C:38:43:28:53:0F:B1:2B:79:DC:EA:48:AA:CD:D2:65:D7:CA:BF:12:35:85:"    \
	"C6:A1:E0:14:16:BD"

static void test_field(void **state)
{
	struct auth_key k, o;
	char buf[512] = "";

	memset(&k, 0, sizeof(k));
	assert_int_equal(auth_cert_field(&k, "sha256:" HEX_A ",sha256:" HEX_B), 0);
	assert_int_equal(k.ncerts, 2);
	auth_cert_format(&k, buf, sizeof(buf));
	assert_string_equal(buf, "cert=sha256:" HEX_A ",sha256:" HEX_B);
	/* After other fields, a word of its own. */
	snprintf(buf, sizeof(buf), "max_queued=3");
	auth_cert_format(&k, buf, sizeof(buf));
	assert_string_equal(buf, "max_queued=3 cert=sha256:" HEX_A ",sha256:" HEX_B);
	/* openssl's form is the same certificate. */
	memset(&o, 0, sizeof(o));
	assert_int_equal(auth_cert_field(&o, OPENSSL_A), 0);
	assert_int_equal(o.ncerts, 1);
	assert_memory_equal(o.certs[0], k.certs[0], 32);
	/* cert= once on a line. */
	assert_int_equal(auth_cert_field(&o, "sha256:" HEX_B), -EINVAL);
}

static void test_bad_fields(void **state)
{
	static const char *const bad[] = {
	    "",
	    HEX_A, /* no sha256: */
	    "sha1:" HEX_A,
	    "sha256:" HEX_A "00",
	    "sha256:" HEX_A ",",
	    "sha256:" HEX_A ",sha256:" HEX_A, /* twice */
	    "sha256:6e9a4336",
	    "sha256:" HEX_A ":",
	    "sha256:6g9a43366c384328530fb12b79dcea48aacdd265d7cabf123585c6a1e01416bd",
	    "sha256:" HEX_A ",sha256:" HEX_B ",sha256:" HEX_A "," HEX_B,
	};
	char five[5 * 80] = "";
	struct auth_key k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&k, 0, sizeof(k));
		assert_int_equal(auth_cert_field(&k, bad[i]), -EINVAL);
		assert_int_equal(k.ncerts, 0);
	}
	for (int i = 0; i <= AUTH_CERTS_MAX; i++)
		snprintf(five + strlen(five), sizeof(five) - strlen(five), "%ssha256:%064x",
			 i ? "," : "", i);
	memset(&k, 0, sizeof(k));
	assert_int_equal(auth_cert_field(&k, five), -EINVAL);
	*strrchr(five, ',') = '\0';
	assert_int_equal(auth_cert_field(&k, five), 0);
	assert_int_equal(k.ncerts, AUTH_CERTS_MAX);
}

static void test_find_and_check(void **state)
{
	struct auth_key keys[3];
	struct auth_keys set = {.n = 3, .keys = keys};
	uint8_t unknown[32] = {0};
	char err[256];

	memset(keys, 0, sizeof(keys));
	snprintf(keys[0].name, sizeof(keys[0].name), "tokens-only");
	snprintf(keys[1].name, sizeof(keys[1].name), "a");
	snprintf(keys[2].name, sizeof(keys[2].name), "b");
	assert_int_equal(auth_cert_field(&keys[1], "sha256:" HEX_A), 0);
	assert_int_equal(auth_cert_field(&keys[2], "sha256:" HEX_B), 0);
	assert_ptr_equal(auth_keys_find_cert(&set, keys[1].certs[0]), &keys[1]);
	assert_ptr_equal(auth_keys_find_cert(&set, keys[2].certs[0]), &keys[2]);
	assert_null(auth_keys_find_cert(&set, unknown));
	assert_null(auth_keys_find_cert(&set, NULL));
	assert_int_equal(auth_cert_check(&set, err, sizeof(err)), 0);
	/* b names a's certificate too: which key would it be? */
	keys[2].ncerts = 0;
	assert_int_equal(auth_cert_field(&keys[2], "sha256:" HEX_B ",sha256:" HEX_A), 0);
	assert_int_equal(auth_cert_check(&set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, HEX_A));
	assert_non_null(strstr(err, "\"a\" and \"b\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_field),
	    cmocka_unit_test(test_bad_fields),
	    cmocka_unit_test(test_find_and_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
