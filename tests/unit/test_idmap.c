/*
 * test_idmap.c - the id -> pointer hash map: many random ids, duplicates,
 * deletion with backward shift, and ids that are not random at all. The map
 * stores only value pointers and reads each value's id at the offset given
 * to idmap_new(), so every value here is a small struct that embeds its id;
 * an indirect map (idmap_new_indirect) reads it through a pointer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/idmap.h"
#include "../../supervisor/job.h"

#define N 100000

/* A value with its id inside, not at offset 0 (like struct job). */
struct item {
	int tag;
	uint8_t id[16];
};

#define ITEM_ID offsetof(struct item, id)

/* Keys are looked up through ids[], a copy separate from the values, as the
 * API looks up ids parsed from a request. alt[i] has the same id as
 * items[i]: a second value for the same key. */
static uint8_t ids[N][16];
static struct item items[N], alt[N];

static void make_ids(void)
{
	for (int i = 0; i < N; i++) {
		job_id_generate(ids[i]);
		items[i].tag = i;
		memcpy(items[i].id, ids[i], 16);
		alt[i].tag = -i;
		memcpy(alt[i].id, ids[i], 16);
	}
}

static void test_put_get_del(void **state)
{
	struct idmap *m = idmap_new(ITEM_ID);

	assert_non_null(m);
	make_ids();
	assert_int_equal(idmap_count(m), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(idmap_put(m, ids[i], &items[i]), 0);
	assert_int_equal(idmap_count(m), N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(idmap_get(m, ids[i]), &items[i]);

	/* Absent ids. */
	for (int i = 0; i < 1000; i++) {
		uint8_t other[16];

		job_id_generate(other);
		assert_null(idmap_get(m, other));
		assert_null(idmap_del(m, other));
	}

	/* Delete every other entry, keyed by the id inside the value itself
	 * as the core does (idmap_del(m, job->id)); the rest must stay
	 * reachable across the holes the backward shift closes. */
	for (int i = 0; i < N; i += 2)
		assert_ptr_equal(idmap_del(m, items[i].id), &items[i]);
	assert_int_equal(idmap_count(m), N / 2);
	for (int i = 0; i < N; i++) {
		if (i % 2)
			assert_ptr_equal(idmap_get(m, ids[i]), &items[i]);
		else
			assert_null(idmap_get(m, ids[i]));
	}
	/* Deleting twice finds nothing. */
	assert_null(idmap_del(m, ids[0]));

	/* Reinsert the deleted ones as other values with the same ids. */
	for (int i = 0; i < N; i += 2)
		assert_int_equal(idmap_put(m, ids[i], &alt[i]), 0);
	assert_int_equal(idmap_count(m), N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(idmap_get(m, ids[i]), i % 2 ? &items[i] : &alt[i]);

	for (int i = N - 1; i >= 0; i--)
		assert_non_null(idmap_del(m, ids[i]));
	assert_int_equal(idmap_count(m), 0);
	for (int i = 0; i < N; i++)
		assert_null(idmap_get(m, ids[i]));
	idmap_free(m);
}

static void test_exists(void **state)
{
	struct idmap *m = idmap_new(ITEM_ID);
	struct item a = {.tag = 1}, b = {.tag = 2};
	uint8_t id[16];

	job_id_generate(id);
	memcpy(a.id, id, 16);
	memcpy(b.id, id, 16);
	assert_int_equal(idmap_put(m, id, &a), 0);
	assert_int_equal(idmap_put(m, id, &b), -EEXIST);
	assert_ptr_equal(idmap_get(m, id), &a); /* unchanged */
	assert_int_equal(idmap_count(m), 1);
	assert_int_equal(idmap_put(m, id, NULL), -EINVAL);
	assert_int_equal(idmap_count(m), 1);
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
	enum { M = 20000 };
	static struct item seq[M];
	struct idmap *m = idmap_new(ITEM_ID);
	uint8_t id[16];

	for (int i = 0; i < M; i++) {
		seq[i].tag = i;
		memset(seq[i].id, 0, 16);
		memcpy(seq[i].id + 12, &i, sizeof(i));
		assert_int_equal(idmap_put(m, seq[i].id, &seq[i]), 0);
	}
	for (int i = 0; i < M; i += 3) {
		memset(id, 0, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		assert_ptr_equal(idmap_del(m, id), &seq[i]);
	}
	for (int i = 0; i < M; i++) {
		memset(id, 0, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		if (i % 3)
			assert_ptr_equal(idmap_get(m, id), &seq[i]);
		else
			assert_null(idmap_get(m, id));
	}
	idmap_free(m);
}

/* Random churn against a reference array: insert/delete at random many
 * times over a small id space so runs wrap around the table end. */
static void churn(int K, int ROUNDS)
{
	struct idmap *m = idmap_new(ITEM_ID);
	bool present[500] = {0};
	size_t count = 0;
	uint64_t x = 88172645463325252u; /* xorshift64: reproducible */

	for (int round = 0; round < ROUNDS; round++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int k = (int)(x % K);

		if (present[k]) {
			assert_ptr_equal(idmap_del(m, ids[k]), &items[k]);
			present[k] = false;
			count--;
		} else {
			assert_int_equal(idmap_put(m, ids[k], &items[k]), 0);
			present[k] = true;
			count++;
		}
		if (K < 50 || round % 1000 == 0) {
			for (int i = 0; i < K; i++)
				assert_ptr_equal(idmap_get(m, ids[i]),
						 present[i] ? &items[i] : NULL);
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

/* Objects with two ids at different offsets: each map keys on its own
 * offset only, and idmap_foreach visits every value exactly once. */
struct two_ids {
	uint8_t a[16];
	uint64_t visits;
	char pad[40];
	uint8_t b[16];
};

static void count_visit(void *value, void *arg)
{
	((struct two_ids *)value)->visits++;
	(*(size_t *)arg)++;
}

static void count_visit_indirect(void *value, void *arg)
{
	assert_non_null(*(struct item **)value);
	(*(size_t *)arg)++;
}

static void test_id_offset(void **state)
{
	enum { M = 5000 };
	struct two_ids *objs = calloc(M, sizeof(*objs));
	struct idmap *by_a = idmap_new(offsetof(struct two_ids, a));
	struct idmap *by_b = idmap_new(offsetof(struct two_ids, b));
	size_t seen = 0;

	assert_non_null(objs);
	assert_true(offsetof(struct two_ids, b) > 16);
	for (int i = 0; i < M; i++) {
		job_id_generate(objs[i].a);
		job_id_generate(objs[i].b);
		assert_int_equal(idmap_put(by_a, objs[i].a, &objs[i]), 0);
		assert_int_equal(idmap_put(by_b, objs[i].b, &objs[i]), 0);
	}
	for (int i = 0; i < M; i++) {
		uint8_t key[16];

		memcpy(key, objs[i].b, 16);
		assert_ptr_equal(idmap_get(by_a, objs[i].a), &objs[i]);
		assert_ptr_equal(idmap_get(by_b, key), &objs[i]);
		assert_null(idmap_get(by_a, objs[i].b));
		assert_null(idmap_get(by_b, objs[i].a));
	}
	idmap_foreach(by_b, count_visit, &seen);
	assert_int_equal(seen, M);
	for (int i = 0; i < M; i++)
		assert_int_equal(objs[i].visits, 1);
	for (int i = 0; i < M; i += 2)
		assert_ptr_equal(idmap_del(by_b, objs[i].b), &objs[i]);
	seen = 0;
	idmap_foreach(by_b, count_visit, &seen);
	assert_int_equal(seen, M / 2);
	for (int i = 0; i < M; i++)
		assert_int_equal(objs[i].visits, i % 2 ? 2 : 1);
	assert_int_equal(idmap_count(by_a), M);
	assert_int_equal(idmap_count(by_b), M / 2);
	idmap_foreach(NULL, count_visit, &seen);
	idmap_free(by_a);
	idmap_free(by_b);
	free(objs);
}

/* An indirect map: the values are slots that point to the items, as the
 * memory store's creation log uses it. A value may move to another slot
 * (del, then put the new slot), and a slot may be pointed elsewhere while
 * its value is out of the map. */
static void test_indirect(void **state)
{
	enum { M = 20000 };
	struct item *objs = calloc(M, sizeof(*objs));
	struct item **slots = calloc(2 * M, sizeof(*slots));
	struct idmap *m = idmap_new_indirect(ITEM_ID);
	size_t seen = 0;

	assert_non_null(objs);
	assert_non_null(slots);
	assert_non_null(m);
	for (int i = 0; i < M; i++) {
		objs[i].tag = i;
		job_id_generate(objs[i].id);
		slots[i] = &objs[i];
		assert_int_equal(idmap_put(m, objs[i].id, &slots[i]), 0);
	}
	/* The same id through another slot is a duplicate. */
	slots[M] = &objs[7];
	assert_int_equal(idmap_put(m, objs[7].id, &slots[M]), -EEXIST);
	for (int i = 0; i < M; i++) {
		uint8_t key[16];

		memcpy(key, objs[i].id, 16);
		assert_ptr_equal(idmap_get(m, key), &slots[i]);
	}
	/* Move the odd ones to the upper half of the slots. */
	for (int i = 1; i < M; i += 2) {
		assert_ptr_equal(idmap_del(m, objs[i].id), &slots[i]);
		slots[M + i] = &objs[i];
		slots[i] = NULL;
		assert_int_equal(idmap_put(m, objs[i].id, &slots[M + i]), 0);
	}
	for (int i = 0; i < M; i++)
		assert_ptr_equal(idmap_get(m, objs[i].id), i % 2 ? &slots[M + i] : &slots[i]);
	idmap_foreach(m, count_visit_indirect, &seen);
	assert_int_equal(seen, M);
	for (int i = 0; i < M; i += 2)
		assert_ptr_equal(idmap_del(m, objs[i].id), &slots[i]);
	assert_int_equal(idmap_count(m), M / 2);
	for (int i = 0; i < M; i++)
		assert_true(i % 2 ? idmap_get(m, objs[i].id) != NULL : !idmap_get(m, objs[i].id));
	idmap_free(m);
	free(slots);
	free(objs);
}

/* The core frees what is left in its maps from idmap_foreach, then frees
 * the maps: the walk must not read the values. Caught by ASan otherwise. */
static void free_value(void *value, void *arg)
{
	free(value);
}

static void test_foreach_frees(void **state)
{
	struct idmap *m = idmap_new(ITEM_ID);

	for (int i = 0; i < 1000; i++) {
		struct item *it = malloc(sizeof(*it));

		assert_non_null(it);
		it->tag = i;
		job_id_generate(it->id);
		assert_int_equal(idmap_put(m, it->id, it), 0);
	}
	idmap_foreach(m, free_value, NULL);
	idmap_free(m);
}

/* A million entries: this must take well under a second or two. The values
 * are the ids themselves (id_offset 0). */
static void test_million(void **state)
{
	enum { MILLION = 1000000 };
	uint8_t(*big)[16] = malloc((size_t)MILLION * 16);
	struct idmap *m = idmap_new(0);

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
		cmocka_unit_test(test_id_offset),
		cmocka_unit_test(test_indirect),
		cmocka_unit_test(test_foreach_frees),
		cmocka_unit_test(test_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
