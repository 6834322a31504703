/*
 * demo_tasks.c - the demo task plugin (build/tasks/demo.so).
 *
 * Theory of operation: the spawner (valet-spawner) dlopen()s every *.so in
 * [tasks] plugin_dir and calls valet_plugin_init(), which VALET_PLUGIN()
 * below forwards to demo_init(); demo_init() registers the tasks. Every
 * task then runs in a forked child under the "strict" seccomp profile, so the code here only
 * computes, allocates, sleeps and returns jansson values: no files, no
 * sockets, no threads.
 *
 *   dummytask  returns a copy of its task_params
 *   echoprev   returns the previous pipeline job's result (no metadata when none)
 *   sleep      {"seconds": N} (fractional allowed) sleeps, returns {"slept": N}
 *   failtask   fails with task_params.message (default "failtask failed")
 *   sha256     {"data": "..."} returns {"sha256": "<64 hex digits>"}
 *
 * SHA-256 (FIPS 180-4) is implemented here so that the plugin needs nothing
 * but jansson; tests/unit/test_demo_sha256.c #includes this file and checks
 * the standard test vectors against the static sha256_* functions.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <valet.h>

/* --- SHA-256 ------------------------------------------------------------- */

#define SHA256_BLOCK 64
#define SHA256_DIGEST 32

struct sha256 {
	uint32_t state[8];
	uint64_t total_bytes;
	size_t buffered;
	uint8_t block[SHA256_BLOCK];
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static uint32_t ror32(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->state, h0, sizeof(h0));
	s->total_bytes = 0;
	s->buffered = 0;
}

/* One 64-byte block through the compression function (FIPS 180-4 6.2.2). */
static void sha256_compress(uint32_t state[8], const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
	for (i = 16; i < 64; i++) {
		uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = state[0], b = state[1], c = state[2], d = state[3];
	e = state[4], f = state[5], g = state[6], h = state[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
		     sha256_k[i] + w[i];
		t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1;
		d = c, c = b, b = a, a = t1 + t2;
	}
	state[0] += a, state[1] += b, state[2] += c, state[3] += d;
	state[4] += e, state[5] += f, state[6] += g, state[7] += h;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->total_bytes += len;
	if (s->buffered > 0) {
		size_t take = SHA256_BLOCK - s->buffered;

		if (take > len)
			take = len;
		memcpy(s->block + s->buffered, p, take);
		s->buffered += take;
		p += take;
		len -= take;
		if (s->buffered < SHA256_BLOCK)
			return;
		sha256_compress(s->state, s->block);
		s->buffered = 0;
	}
	for (; len >= SHA256_BLOCK; p += SHA256_BLOCK, len -= SHA256_BLOCK)
		sha256_compress(s->state, p);
	memcpy(s->block, p, len);
	s->buffered = len;
}

/* Pads (a 1 bit, zeros, the 64-bit big-endian bit length) and writes the digest. */
static void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST])
{
	uint64_t bits = s->total_bytes * 8;
	int i;

	s->block[s->buffered++] = 0x80;
	if (s->buffered > SHA256_BLOCK - 8) {
		memset(s->block + s->buffered, 0, SHA256_BLOCK - s->buffered);
		sha256_compress(s->state, s->block);
		s->buffered = 0;
	}
	memset(s->block + s->buffered, 0, SHA256_BLOCK - 8 - s->buffered);
	for (i = 0; i < 8; i++)
		s->block[SHA256_BLOCK - 1 - i] = (uint8_t)(bits >> (8 * i));
	sha256_compress(s->state, s->block);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->state[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->state[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->state[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->state[i];
	}
}

/* hex: 65 bytes, receives 64 lowercase hex digits and a NUL. */
static void sha256_hex(const void *data, size_t len, char hex[2 * SHA256_DIGEST + 1])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t digest[SHA256_DIGEST];
	struct sha256 s;
	int i;

	sha256_init(&s);
	sha256_update(&s, data, len);
	sha256_final(&s, digest);
	for (i = 0; i < SHA256_DIGEST; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0xf];
	}
	hex[2 * SHA256_DIGEST] = '\0';
}

/* --- tasks --------------------------------------------------------------- */

/* Sleeps longer than this are refused rather than overflowing a timespec. */
#define DEMO_SLEEP_MAX_SECONDS 1e9

static json_t *demo_dummytask(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	return json_incref(params);
}

static json_t *demo_echoprev(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	/* NULL previous -> NULL: the job completes without metadata. */
	return json_incref(previous);
}

static json_t *demo_sleep(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	struct timespec left;
	double seconds;

	if (valet_decode_params(ctx, params, "{s:F}", "seconds", &seconds) < 0)
		return NULL;
	if (!isfinite(seconds) || seconds < 0 || seconds > DEMO_SLEEP_MAX_SECONDS)
		return valet_fail(ctx, "invalid task_params: seconds must be between 0 and %.0f",
				  DEMO_SLEEP_MAX_SECONDS);

	left.tv_sec = (time_t)seconds;
	left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
	if (left.tv_nsec > 999999999)
		left.tv_nsec = 999999999;
	/* A signal (e.g. SIGTERM at shutdown, if handled) must not cut the sleep short. */
	while (nanosleep(&left, &left) < 0) {
		if (errno != EINTR)
			return valet_fail(ctx, "nanosleep failed (errno %d)", errno);
	}
	/* Echo the caller's number as given (an integer stays an integer). */
	return json_pack("{s:O}", "slept", json_object_get(params, "seconds"));
}

static json_t *demo_failtask(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	const char *message = "failtask failed";

	if (valet_decode_params(ctx, params, "{s?s}", "message", &message) < 0)
		return NULL;
	return valet_fail(ctx, "%s", message);
}

static json_t *demo_sha256(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	char hex[2 * SHA256_DIGEST + 1];
	const char *data;
	size_t len;

	/* s% also yields the length, so strings with embedded NULs hash correctly. */
	if (valet_decode_params(ctx, params, "{s:s%}", "data", &data, &len) < 0)
		return NULL;
	sha256_hex(data, len, hex);
	return json_pack("{s:s}", "sha256", hex);
}

static int demo_init(void)
{
	static const struct {
		const char *name;
		valet_task_fn fn;
	} tasks[] = {
		{ "dummytask", demo_dummytask },
		{ "echoprev", demo_echoprev },
		{ "sleep", demo_sleep },
		{ "failtask", demo_failtask },
		{ "sha256", demo_sha256 },
	};
	size_t i;
	int err;

	for (i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++) {
		err = valet_register(tasks[i].name, tasks[i].fn);
		if (err < 0)
			return err;
	}
	return 0;
}

VALET_PLUGIN(demo_init)
