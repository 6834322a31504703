/*
 * pq.c - dlopen() libpq and fill the call table (see pq.h for why valetd
 * does not link it). The soname is the one found at build time.
 */
#define VALET_PQ_IMPL
#include "../supervisor/dltable.h"
#include "pq.h"

#ifndef VALET_PQ_SONAME
#define VALET_PQ_SONAME "libpq.so.5"
#endif

struct pq_api pq_api;

int pq_load(char *err, size_t errlen)
{
	static const struct dltable_sym syms[] = {
#define PQ_SYM(name) {#name, offsetof(struct pq_api, name)},
		PQ_FUNCS(PQ_SYM)
#undef PQ_SYM
	};

	if (pq_api.PQstatus)
		return 0;
	return dltable_load(VALET_PQ_SONAME, syms, sizeof(syms) / sizeof(syms[0]), &pq_api, err,
			    errlen);
}
