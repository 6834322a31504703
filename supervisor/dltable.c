/*
 * dltable.c - a library's functions by name into a table (see dltable.h).
 * All symbols are looked up before any is stored, so a library that lacks
 * one leaves the table untouched.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dltable.h"

int dltable_load(const char *soname, const struct dltable_sym *syms, size_t nsyms, void *table,
		 char *err, size_t errlen)
{
	void **found = calloc(nsyms ? nsyms : 1, sizeof(*found));
	void *lib;

	if (!found) {
		snprintf(err, errlen, "cannot load %s: out of memory", soname);
		return -ENOENT;
	}
	lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "cannot load %s: %s", soname, dlerror());
		free(found);
		return -ENOENT;
	}
	for (size_t i = 0; i < nsyms; i++) {
		found[i] = dlsym(lib, syms[i].name);
		if (!found[i]) {
			snprintf(err, errlen, "%s: no symbol %s", soname, syms[i].name);
			dlclose(lib);
			free(found);
			return -ENOENT;
		}
	}
	for (size_t i = 0; i < nsyms; i++)
		memcpy((char *)table + syms[i].offset, &found[i], sizeof(void *));
	free(found);
	return 0;
}
