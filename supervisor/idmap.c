/*
 * idmap.c - a hash map from 16-byte ids to pointers.
 *
 * Theory of operation
 *
 * One flat array of slots, a power of two long, each holding a copy of the
 * id and the value; an empty slot has a NULL value (values are never NULL).
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
 * ids that are not random (tests, imported data).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"

#define IDMAP_MIN_BITS 4

struct idmap_slot {
	uint8_t id[16];
	void *value; /* NULL = empty */
};

struct idmap {
	struct idmap_slot *slots;
	size_t mask;   /* capacity - 1 */
	unsigned bits; /* capacity = 1 << bits */
	size_t count;
};

static size_t idmap_home(const struct idmap *m, const uint8_t id[16])
{
	uint64_t a, b;

	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	return (size_t)(((a ^ b) * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - m->bits));
}

struct idmap *idmap_new(void)
{
	struct idmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->bits = IDMAP_MIN_BITS;
	m->mask = ((size_t)1 << m->bits) - 1;
	m->slots = calloc(m->mask + 1, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
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

	while (m->slots[i].value && memcmp(m->slots[i].id, id, 16) != 0)
		i = (i + 1) & m->mask;
	return i;
}

static int idmap_grow(struct idmap *m)
{
	struct idmap_slot *old = m->slots;
	size_t oldcap = m->mask + 1;
	struct idmap_slot *slots = calloc(oldcap * 2, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	m->slots = slots;
	m->bits++;
	m->mask = oldcap * 2 - 1;
	for (size_t j = 0; j < oldcap; j++) {
		if (!old[j].value)
			continue;
		size_t i = idmap_home(m, old[j].id);

		while (slots[i].value)
			i = (i + 1) & m->mask;
		slots[i] = old[j];
	}
	free(old);
	return 0;
}

int idmap_put(struct idmap *m, const uint8_t id[16], void *value)
{
	size_t i;

	if (!value)
		return -EINVAL;
	i = idmap_find(m, id);
	if (m->slots[i].value)
		return -EEXIST;
	/* count + 1 > 0.7 * capacity, in integers. */
	if ((m->count + 1) * 10 > (m->mask + 1) * 7) {
		int rc = idmap_grow(m);

		if (rc < 0)
			return rc;
		i = idmap_find(m, id);
	}
	memcpy(m->slots[i].id, id, 16);
	m->slots[i].value = value;
	m->count++;
	return 0;
}

void *idmap_get(const struct idmap *m, const uint8_t id[16])
{
	return m->slots[idmap_find(m, id)].value;
}

void *idmap_del(struct idmap *m, const uint8_t id[16])
{
	size_t i = idmap_find(m, id), j = i;
	void *value = m->slots[i].value;

	if (!value)
		return NULL;
	/* Backward-shift: pull later entries of the run into the hole at i
	 * unless that would move one in front of its home slot. */
	for (;;) {
		j = (j + 1) & m->mask;
		if (!m->slots[j].value)
			break;
		size_t home = idmap_home(m, m->slots[j].id);

		/* Stay put when home lies cyclically in (i, j]. */
		if (((j - home) & m->mask) < ((j - i) & m->mask))
			continue;
		m->slots[i] = m->slots[j];
		i = j;
	}
	m->slots[i].value = NULL;
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
		if (m->slots[i].value)
			fn(m->slots[i].value, arg);
}
