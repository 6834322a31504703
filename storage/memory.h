/*
 * memory.h - the embedded in-memory adapter of the storage port
 * (supervisor/store.h): the zero-setup default (memory.c).
 */
#ifndef VALET_MEMORY_H
#define VALET_MEMORY_H

struct store;

struct store *store_memory_new(void); /* NULL on ENOMEM */

#endif
