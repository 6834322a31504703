/*
 * mhd.h - libmicrohttpd, loaded at run time.
 *
 * libmicrohttpd brings GnuTLS and eight more libraries with it, about fifty
 * memory mappings. Job children never use them, but a child forked from a
 * process that has them mapped pays for every mapping twice, at fork and at
 * exit (fork+exit measured here: 195 us with 24 mappings, 370 us with 102).
 * So valetd is not linked against libmicrohttpd: the HTTP server dlopen()s
 * it after the spawner has been forked, and the api/ code calls it through
 * this table. Include this header instead of <microhttpd.h>.
 */
#ifndef VALET_MHD_H
#define VALET_MHD_H

#include <stddef.h>

#include <microhttpd.h>

struct mhd_api {
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_quiesce_daemon) *quiesce_daemon;
	__typeof__(MHD_run) *run;
	__typeof__(MHD_get_timeout) *get_timeout;
	__typeof__(MHD_get_daemon_info) *get_daemon_info;
	__typeof__(MHD_get_connection_info) *get_connection_info;
	__typeof__(MHD_lookup_connection_value) *lookup_connection_value;
	__typeof__(MHD_suspend_connection) *suspend_connection;
	__typeof__(MHD_resume_connection) *resume_connection;
	__typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
	__typeof__(MHD_add_response_header) *add_response_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
};

extern struct mhd_api mhd_api;

/* Load libmicrohttpd once (idempotent). 0, or -ENOENT with a message. */
int mhd_load(char *err, size_t errlen);

#ifndef VALET_MHD_IMPL
#define MHD_start_daemon (*mhd_api.start_daemon)
#define MHD_stop_daemon (*mhd_api.stop_daemon)
#define MHD_quiesce_daemon (*mhd_api.quiesce_daemon)
#define MHD_run (*mhd_api.run)
#define MHD_get_timeout (*mhd_api.get_timeout)
#define MHD_get_daemon_info (*mhd_api.get_daemon_info)
#define MHD_get_connection_info (*mhd_api.get_connection_info)
#define MHD_lookup_connection_value (*mhd_api.lookup_connection_value)
#define MHD_suspend_connection (*mhd_api.suspend_connection)
#define MHD_resume_connection (*mhd_api.resume_connection)
#define MHD_create_response_from_buffer (*mhd_api.create_response_from_buffer)
#define MHD_add_response_header (*mhd_api.add_response_header)
#define MHD_queue_response (*mhd_api.queue_response)
#define MHD_destroy_response (*mhd_api.destroy_response)
#endif

#endif
