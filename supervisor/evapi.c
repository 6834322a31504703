/*
 * evapi.c - dlopen() libev and fill the call table (see evapi.h for why
 * valetd does not link it). The soname is the one found at build time.
 */
#define VALET_EVAPI_IMPL
#include <stdio.h>

#include "dltable.h"
#include "evapi.h"

#ifndef VALET_EV_SONAME
#define VALET_EV_SONAME "libev.so.4"
#endif

struct ev_api ev_api;

int ev_api_load(char *err, size_t errlen)
{
	static const struct dltable_sym syms[] = {
#define EV_SYM(name) {#name, offsetof(struct ev_api, name)},
		EV_FUNCS(EV_SYM)
#undef EV_SYM
	};

	if (ev_api.ev_run)
		return 0;
	return dltable_load(VALET_EV_SONAME, syms, sizeof(syms) / sizeof(syms[0]), &ev_api, err,
			    errlen);
}

static int load_or_say(void)
{
	char err[256];

	if (ev_api_load(err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "valetd: %s\n", err);
	return -1;
}

struct ev_loop *ev_api_default_loop(unsigned int flags)
{
	return load_or_say() == 0 ? ev_api.ev_default_loop(flags) : NULL;
}

struct ev_loop *ev_api_loop_new(unsigned int flags)
{
	return load_or_say() == 0 ? ev_api.ev_loop_new(flags) : NULL;
}
