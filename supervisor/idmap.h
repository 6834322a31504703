/*
 * idmap.h - a hash map from 16-byte job/pipeline ids to pointers (open
 * addressing, linear probing, tombstone-free backward-shift deletion).
 * Ids are random UUIDv4, so their first 8 bytes are already a good hash.
 *
 * The map stores only the value pointers (8 bytes a slot): every value
 * carries its own 16-byte id at (const char *)value + id_offset, and
 * lookups compare against that. So a value must stay alive, and its id
 * unchanged, for as long as it is in the map.
 *
 * An indirect map (idmap_new_indirect) reaches the id through one more
 * pointer: each value is the address of a pointer to the object that holds
 * the id, e.g. a slot of an array of job pointers, or an entry struct whose
 * first member points to its job. That way a storage adapter keys its own
 * bookkeeping on the domain objects' ids without copying them.
 */
#ifndef VALET_IDMAP_H
#define VALET_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap;

/* id_offset: where each value holds its id, e.g. offsetof(struct job, id).
 * NULL on ENOMEM. */
struct idmap *idmap_new(size_t id_offset);
/* The id of value is at (const char *)*(void **)value + id_offset. The
 * pointer at value must be set before idmap_put() and point to an object
 * with that id (alive, id unchanged) for as long as value is in the map.
 * NULL on ENOMEM. */
struct idmap *idmap_new_indirect(size_t id_offset);
void idmap_free(struct idmap *m); /* frees the map, not the values; NULL ok */
/* 0, -EEXIST (id present; nothing changed), -ENOMEM, -EINVAL (value NULL).
 * value (borrowed) must embed id at id_offset: id is only checked against it
 * (assert), the map keys on the embedded id. */
int idmap_put(struct idmap *m, const uint8_t id[16], void *value);
void *idmap_get(const struct idmap *m, const uint8_t id[16]);
/* Removes and returns the value, or NULL when absent. id may point into the
 * value itself (idmap_del(m, job->id)). */
void *idmap_del(struct idmap *m, const uint8_t id[16]);
size_t idmap_count(const struct idmap *m);
/* Calls fn for every value; fn must not change the map. The walk does not
 * read the values, so fn may free them, but then the map may only be freed
 * afterwards (any lookup would read the freed ids). */
void idmap_foreach(const struct idmap *m, void (*fn)(void *value, void *arg), void *arg);

#endif
