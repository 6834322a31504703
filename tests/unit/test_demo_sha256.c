/*
 * test_demo_sha256.c - the demo plugin's SHA-256 against the FIPS 180-4 /
 * NIST test vectors, plus the padding boundaries (55, 56, 63, 64 bytes) and
 * incremental updates, and the two tasks that need no valet_ctx.
 *
 * The plugin keeps its SHA-256 static, so this test #includes the plugin's
 * source; valet_register() and friends come from libvalet.a as usual.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../sandbox/demo/demo_tasks.c"

static void expect_hex(const void *data, size_t len, const char *want)
{
	char hex[2 * SHA256_DIGEST + 1];

	sha256_hex(data, len, hex);
	assert_string_equal(hex, want);
}

static void test_nist_vectors(void **state)
{
	expect_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
		   "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	expect_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		   "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 112,
		   "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
	static const char want[] =
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char *buf = malloc(1000000);

	assert_non_null(buf);
	memset(buf, 'a', 1000000);
	expect_hex(buf, 1000000, want);
	free(buf);
}

/* Lengths around the 56-byte padding limit and the 64-byte block. */
static void test_padding_boundaries(void **state)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
		{ 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
		{ 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
	};
	char buf[128];
	size_t i;

	memset(buf, 'a', sizeof(buf));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_hex(buf, cases[i].len, cases[i].hex);
	/* Embedded NUL bytes are data, not terminators. */
	expect_hex("a\0b", 3, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
}

/* Feeding the input in uneven pieces gives the one-shot digest. */
static void test_incremental(void **state)
{
	uint8_t data[300], one[SHA256_DIGEST], parts[SHA256_DIGEST];
	size_t len, off, step;
	struct sha256 s;

	for (len = 0; len < sizeof(data); len++)
		data[len] = (uint8_t)(len * 7 + 3);
	for (len = 0; len <= sizeof(data); len += 13) {
		sha256_init(&s);
		sha256_update(&s, data, len);
		sha256_final(&s, one);
		for (step = 1; step <= 65; step += 8) {
			sha256_init(&s);
			for (off = 0; off < len; off += step)
				sha256_update(&s, data + off, len - off < step ? len - off : step);
			sha256_final(&s, parts);
			assert_memory_equal(one, parts, SHA256_DIGEST);
		}
	}
}

/* dummytask and echoprev never touch ctx, so they can run without one. */
static void test_ctxless_tasks(void **state)
{
	json_t *params = json_pack("{s:i}", "i", 7);
	json_t *empty = json_object();
	json_t *out;

	out = demo_dummytask(NULL, params, NULL);
	assert_ptr_equal(out, params);
	assert_int_equal(params->refcount, 2);
	json_decref(out);

	assert_null(demo_echoprev(NULL, params, NULL));
	out = demo_echoprev(NULL, empty, params);
	assert_ptr_equal(out, params);
	json_decref(out);
	json_decref(empty);
	json_decref(params);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nist_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_padding_boundaries),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_ctxless_tasks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
