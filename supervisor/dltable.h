/*
 * dltable.h - fill a table of function pointers from a library loaded at
 * run time (api/mhd.c: libmicrohttpd, storage/pq.c: libpq).
 */
#ifndef VALET_DLTABLE_H
#define VALET_DLTABLE_H

#include <stddef.h>

struct dltable_sym {
	const char *name;  /* the symbol */
	size_t offset;     /* where its address goes in the table */
};

/* dlopen(soname) and store each symbol's address at table + offset. The
 * library stays loaded for the life of the process. 0, or -ENOENT with a
 * message in err (nothing stored then). */
int dltable_load(const char *soname, const struct dltable_sym *syms, size_t nsyms, void *table,
		 char *err, size_t errlen);

#endif
