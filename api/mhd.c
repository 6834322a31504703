/*
 * mhd.c - dlopen() libmicrohttpd and fill the call table (see mhd.h for
 * why valetd does not link it). The soname is the one found at build time.
 */
#define VALET_MHD_IMPL
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

#include "mhd.h"

#ifndef VALET_MHD_SONAME
#define VALET_MHD_SONAME "libmicrohttpd.so.12"
#endif

struct mhd_api mhd_api;

int mhd_load(char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
#define SYM(field, name) {#name, offsetof(struct mhd_api, field)}
		SYM(start_daemon, MHD_start_daemon),
		SYM(stop_daemon, MHD_stop_daemon),
		SYM(quiesce_daemon, MHD_quiesce_daemon),
		SYM(run, MHD_run),
		SYM(get_timeout, MHD_get_timeout),
		SYM(get_daemon_info, MHD_get_daemon_info),
		SYM(get_connection_info, MHD_get_connection_info),
		SYM(lookup_connection_value, MHD_lookup_connection_value),
		SYM(suspend_connection, MHD_suspend_connection),
		SYM(resume_connection, MHD_resume_connection),
		SYM(create_response_from_buffer, MHD_create_response_from_buffer),
		SYM(add_response_header, MHD_add_response_header),
		SYM(queue_response, MHD_queue_response),
		SYM(destroy_response, MHD_destroy_response),
#undef SYM
	};
	void *lib;

	if (mhd_api.run)
		return 0;
	lib = dlopen(VALET_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "cannot load %s: %s", VALET_MHD_SONAME, dlerror());
		return -ENOENT;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *fn = dlsym(lib, syms[i].name);
		if (!fn) {
			snprintf(err, errlen, "%s: no symbol %s", VALET_MHD_SONAME, syms[i].name);
			dlclose(lib);
			return -ENOENT;
		}
		*(void **)((char *)&mhd_api + syms[i].offset) = fn;
	}
	/* The library stays loaded for the life of the process. */
	return 0;
}
