/*
 * pq.c - dlopen() libpq and fill the call table (see pq.h for why valetd
 * does not link it). The soname is the one found at build time.
 */
#define VALET_PQ_IMPL
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

#include "pq.h"

#ifndef VALET_PQ_SONAME
#define VALET_PQ_SONAME "libpq.so.5"
#endif

struct pq_api pq_api;

int pq_load(char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
#define PQ_SYM(name) {#name, offsetof(struct pq_api, name)},
		PQ_FUNCS(PQ_SYM)
#undef PQ_SYM
	};
	void *lib;

	if (pq_api.PQstatus)
		return 0;
	lib = dlopen(VALET_PQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "cannot load %s: %s", VALET_PQ_SONAME, dlerror());
		return -ENOENT;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *fn = dlsym(lib, syms[i].name);
		if (!fn) {
			snprintf(err, errlen, "%s: no symbol %s", VALET_PQ_SONAME, syms[i].name);
			dlclose(lib);
			return -ENOENT;
		}
		*(void **)((char *)&pq_api + syms[i].offset) = fn;
	}
	/* The library stays loaded for the life of the process. */
	return 0;
}
