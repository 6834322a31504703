/*
 * store.c - what all storage adapters share: the generic entry points of the
 * storage port. The adapters themselves live in memory.c and (later) pg.c;
 * each fills in a struct store_ops and returns its struct store.
 */
#include <stddef.h>

#include "store.h"

void store_free(struct store *st)
{
	if (st)
		st->ops->free(st);
}
