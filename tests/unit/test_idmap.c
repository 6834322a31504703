/*
 * test_idmap.c - the id -> pointer hash map: many random ids, duplicates,
 * deletion with backward shift, and ids that are not random at all.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/idmap.h"
#include "../../supervisor/job.h"

#define N 100000

/* Values are pointers into this array, so each id maps to its own slot. */
static uint8_t ids[N][16];
static int values[N];

static void make_ids(void)
{
	for (int i = 0; i < N; i++)
		job_id_generate(ids[i]);
}

static void test_put_get_del(void **state)
{
	struct idmap *m = idmap_new();

	assert_non_null(m);
	make_ids();
	assert_int_equal(idmap_count(m), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(idmap_put(m, ids[i], &values[i]), 0);
	assert_int_equal(idmap_count(m), N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(idmap_get(m, ids[i]), &values[i]);

	/* Absent ids. */
	for (int i = 0; i < 1000; i++) {
		uint8_t other[16];

		job_id_generate(other);
		assert_null(idmap_get(m, other));
		assert_null(idmap_del(m, other));
	}

	/* Delete every other entry; the rest must stay reachable across the
	 * holes the backward shift closes. */
	for (int i = 0; i < N; i += 2)
		assert_ptr_equal(idmap_del(m, ids[i]), &values[i]);
	assert_int_equal(idmap_count(m), N / 2);
	for (int i = 0; i < N; i++) {
		if (i % 2)
			assert_ptr_equal(idmap_get(m, ids[i]), &values[i]);
		else
			assert_null(idmap_get(m, ids[i]));
	}
	/* Deleting twice finds nothing. */
	assert_null(idmap_del(m, ids[0]));

	/* Reinsert the deleted ones with other values. */
	for (int i = 0; i < N; i += 2)
		assert_int_equal(idmap_put(m, ids[i], &values[(i + 1) % N]), 0);
	assert_int_equal(idmap_count(m), N);
	for (int i = 0; i < N; i += 2)
		assert_ptr_equal(idmap_get(m, ids[i]), &values[(i + 1) % N]);

	for (int i = N - 1; i >= 0; i--)
		assert_non_null(idmap_del(m, ids[i]));
	assert_int_equal(idmap_count(m), 0);
	for (int i = 0; i < N; i++)
		assert_null(idmap_get(m, ids[i]));
	idmap_free(m);
}

static void test_exists(void **state)
{
	struct idmap *m = idmap_new();
	uint8_t id[16];
	int a, b;

	job_id_generate(id);
	assert_int_equal(idmap_put(m, id, &a), 0);
	assert_int_equal(idmap_put(m, id, &b), -EEXIST);
	assert_ptr_equal(idmap_get(m, id), &a); /* unchanged */
	assert_int_equal(idmap_count(m), 1);
	assert_int_equal(idmap_put(m, id, NULL), -EINVAL);
	assert_ptr_equal(idmap_del(m, id), &a);
	assert_int_equal(idmap_put(m, id, &b), 0);
	assert_ptr_equal(idmap_get(m, id), &b);
	idmap_free(m);
	idmap_free(NULL);
}

/* Ids that differ only in one byte or share halves still work (they may
 * cluster, which is what the backward shift must handle correctly). */
static void test_non_random_ids(void **state)
{
	struct idmap *m = idmap_new();
	enum { M = 20000 };
	uint8_t id[16];

	for (int i = 0; i < M; i++) {
		memset(id, 0, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		assert_int_equal(idmap_put(m, id, &values[i]), 0);
	}
	for (int i = 0; i < M; i += 3) {
		memset(id, 0, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		assert_ptr_equal(idmap_del(m, id), &values[i]);
	}
	for (int i = 0; i < M; i++) {
		memset(id, 0, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		if (i % 3)
			assert_ptr_equal(idmap_get(m, id), &values[i]);
		else
			assert_null(idmap_get(m, id));
	}
	idmap_free(m);
}

/* Random churn against a reference array: insert/delete at random many
 * times over a small id space so runs wrap around the table end. */
static void churn(int K, int ROUNDS)
{
	struct idmap *m = idmap_new();
	bool present[500] = {0};
	size_t count = 0;
	uint64_t x = 88172645463325252u; /* xorshift64: reproducible */

	for (int round = 0; round < ROUNDS; round++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int k = (int)(x % K);

		if (present[k]) {
			assert_ptr_equal(idmap_del(m, ids[k]), &values[k]);
			present[k] = false;
			count--;
		} else {
			assert_int_equal(idmap_put(m, ids[k], &values[k]), 0);
			present[k] = true;
			count++;
		}
		if (K < 50 || round % 1000 == 0) {
			for (int i = 0; i < K; i++)
				assert_ptr_equal(idmap_get(m, ids[i]),
						 present[i] ? &values[i] : NULL);
		}
	}
	assert_int_equal(idmap_count(m), count);
	idmap_free(m);
}

static void test_churn(void **state)
{
	churn(11, 100000); /* at most 11 in 16 slots: runs wrap all the time */
	churn(500, 200000);
}

/* A million entries: this must take well under a second or two. */
static void test_million(void **state)
{
	enum { MILLION = 1000000 };
	uint8_t(*big)[16] = malloc((size_t)MILLION * 16);
	struct idmap *m = idmap_new();

	assert_non_null(big);
	for (int i = 0; i < MILLION; i++) {
		job_id_generate(big[i]);
		assert_int_equal(idmap_put(m, big[i], big[i]), 0);
	}
	assert_int_equal(idmap_count(m), MILLION);
	for (int i = 0; i < MILLION; i++)
		assert_ptr_equal(idmap_get(m, big[i]), big[i]);
	for (int i = 0; i < MILLION; i++)
		assert_ptr_equal(idmap_del(m, big[i]), big[i]);
	assert_int_equal(idmap_count(m), 0);
	idmap_free(m);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del),
		cmocka_unit_test(test_exists),
		cmocka_unit_test(test_non_random_ids),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
