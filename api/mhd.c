/*
 * mhd.c - dlopen() libmicrohttpd and fill the call table (see mhd.h for
 * why valetd does not link it). The soname is the one found at build time.
 */
#define VALET_MHD_IMPL
#include "../supervisor/dltable.h"
#include "mhd.h"

#ifndef VALET_MHD_SONAME
#define VALET_MHD_SONAME "libmicrohttpd.so.12"
#endif

struct mhd_api mhd_api;

int mhd_load(char *err, size_t errlen)
{
	static const struct dltable_sym syms[] = {
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

	if (mhd_api.run)
		return 0;
	return dltable_load(VALET_MHD_SONAME, syms, sizeof(syms) / sizeof(syms[0]), &mhd_api, err,
			    errlen);
}
