/*
 * idmap.c - a hash map from 16-byte ids to pointers.
 *
 * Theory of operation
 *
 * One flat array of slots, a power of two long, each holding just a value
 * pointer; an empty slot is NULL (values are never NULL). The id is not
 * copied into the slot: every value holds its own id at m->id_offset
 * (offsetof(struct job, id) for the job maps), so a slot costs 8 bytes
 * instead of 24. With two maps of 100,000 queued jobs that is 2 x 2 MiB of
 * tables instead of 2 x 6 MiB, and 3x less while a rehash holds the old and
 * the new table at once. The price is one pointer dereference
 * per probed slot, to compare the id; probe runs are short (load <= 0.7) and
 * the value is usually touched next by the caller anyway.
 *
 * Lookups probe linearly from the id's home slot until they find the id or
 * an empty slot. The map doubles when an insert would take it past 70% load,
 * which keeps probe sequences short.
 *
 * Deletion shifts the following entries of the cluster backwards instead of
 * leaving tombstones: after emptying slot i, each later entry j in the same
 * run moves into the hole when its home slot does not lie cyclically in
 * (i, j]. The table therefore never fills up with dead slots, and lookups
 * of absent ids stay as cheap as right after a rebuild.
 *
 * Ids are random UUIDv4, so their bytes are already well spread. We still
 * fold the two halves together and multiply (Fibonacci hashing, top bits):
 * it costs one multiply and keeps the map fast should someone ever insert
 * ids that are not random (tests, imported data). Homes of stored entries
 * (growth, backward shift) are recomputed from the ids inside the values.
 *
 * An indirect map differs only in where the id is read: each value points
 * to a pointer to the object holding the id, so a probe costs one more
 * dereference. The storage adapters use it for their own per-object entries
 * (the memory store's creation-order slots, the PostgreSQL store's dirty
 * entries), which then need no copy of the id.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"

#define IDMAP_MIN_BITS 4

struct idmap {
	void **slots;     /* NULL = empty */
	size_t mask;      /* capacity - 1 */
	unsigned bits;    /* capacity = 1 << bits */
	size_t count;
	size_t id_offset; /* where each value (or, indirect, what it points to) holds its id */
	bool indirect;    /* values point to pointers to the objects with the ids */
};

static const uint8_t *idmap_id_of(const struct idmap *m, const void *value)
{
	if (m->indirect)
		value = *(const void *const *)value;
	return (const uint8_t *)value + m->id_offset;
}

static size_t idmap_home(const struct idmap *m, const uint8_t id[16])
{
	uint64_t a, b;

	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	return (size_t)(((a ^ b) * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - m->bits));
}

struct idmap *idmap_new(size_t id_offset)
{
	struct idmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->id_offset = id_offset;
	m->bits = IDMAP_MIN_BITS;
	m->mask = ((size_t)1 << m->bits) - 1;
	m->slots = calloc(m->mask + 1, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

struct idmap *idmap_new_indirect(size_t id_offset)
{
	struct idmap *m = idmap_new(id_offset);

	if (m)
		m->indirect = true;
	return m;
}

void idmap_free(struct idmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m);
}

/* Index of the id's slot, or of the empty slot that ends its probe run. */
static size_t idmap_find(const struct idmap *m, const uint8_t id[16])
{
	size_t i = idmap_home(m, id);

	while (m->slots[i] && memcmp(idmap_id_of(m, m->slots[i]), id, 16) != 0)
		i = (i + 1) & m->mask;
	return i;
}

static int idmap_grow(struct idmap *m)
{
	void **old = m->slots;
	size_t oldcap = m->mask + 1;
	void **slots = calloc(oldcap * 2, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	m->slots = slots;
	m->bits++;
	m->mask = oldcap * 2 - 1;
	for (size_t j = 0; j < oldcap; j++) {
		if (!old[j])
			continue;
		size_t i = idmap_home(m, idmap_id_of(m, old[j]));

		while (slots[i])
			i = (i + 1) & m->mask;
		slots[i] = old[j];
	}
	free(old);
	return 0;
}

int idmap_put(struct idmap *m, const uint8_t id[16], void *value)
{
	const uint8_t *own;
	size_t i;

	if (!value)
		return -EINVAL;
	/* The map keys on the value's own id; the argument is redundant and
	 * only checked, so a caller mistake cannot misplace the entry. */
	own = idmap_id_of(m, value);
	assert(memcmp(id, own, 16) == 0);
	(void)id;
	i = idmap_find(m, own);
	if (m->slots[i])
		return -EEXIST;
	/* count + 1 > 0.7 * capacity, in integers. */
	if ((m->count + 1) * 10 > (m->mask + 1) * 7) {
		int rc = idmap_grow(m);

		if (rc < 0)
			return rc;
		i = idmap_find(m, own);
	}
	m->slots[i] = value;
	m->count++;
	return 0;
}

void *idmap_get(const struct idmap *m, const uint8_t id[16])
{
	return m->slots[idmap_find(m, id)];
}

void *idmap_del(struct idmap *m, const uint8_t id[16])
{
	size_t i = idmap_find(m, id), j = i;
	void *value = m->slots[i];

	if (!value)
		return NULL;
	/* Backward-shift: pull later entries of the run into the hole at i
	 * unless that would move one in front of its home slot. (id may point
	 * into value, which stays alive: it is not read past idmap_find.) */
	for (;;) {
		j = (j + 1) & m->mask;
		if (!m->slots[j])
			break;
		size_t home = idmap_home(m, idmap_id_of(m, m->slots[j]));

		/* Stay put when home lies cyclically in (i, j]. */
		if (((j - home) & m->mask) < ((j - i) & m->mask))
			continue;
		m->slots[i] = m->slots[j];
		i = j;
	}
	m->slots[i] = NULL;
	m->count--;
	return value;
}

size_t idmap_count(const struct idmap *m)
{
	return m->count;
}

void idmap_foreach(const struct idmap *m, void (*fn)(void *value, void *arg), void *arg)
{
	if (!m)
		return;
	for (size_t i = 0; i <= m->mask; i++)
		if (m->slots[i])
			fn(m->slots[i], arg);
}
