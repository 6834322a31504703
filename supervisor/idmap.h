/*
 * idmap.h - a hash map from 16-byte job/pipeline ids to pointers (open
 * addressing, linear probing, tombstone-free backward-shift deletion).
 * Ids are random UUIDv4, so their first 8 bytes are already a good hash.
 */
#ifndef VALET_IDMAP_H
#define VALET_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap;

struct idmap *idmap_new(void); /* NULL on ENOMEM */
void idmap_free(struct idmap *m); /* frees the map, not the values; NULL ok */
/* 0, -EEXIST (id present; nothing changed), -ENOMEM. value must not be NULL. */
int idmap_put(struct idmap *m, const uint8_t id[16], void *value);
void *idmap_get(const struct idmap *m, const uint8_t id[16]);
/* Removes and returns the value, or NULL when absent. */
void *idmap_del(struct idmap *m, const uint8_t id[16]);
size_t idmap_count(const struct idmap *m);
/* Calls fn for every value; fn must not change the map. */
void idmap_foreach(const struct idmap *m, void (*fn)(void *value, void *arg), void *arg);

#endif
