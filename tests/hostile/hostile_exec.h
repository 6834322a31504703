/*
 * hostile_exec.h - what the two files of the hostile_exec program share: the
 * task's input, JSON output helpers, and the cases of hostile_exec_see.c.
 */
#ifndef VALET_TEST_HOSTILE_EXEC_H
#define VALET_TEST_HOSTILE_EXEC_H

#include <stdbool.h>
#include <stddef.h>

/* The errno name ("EPERM"), or E<number>. */
const char *hx_errname(int e);
/* "key": value in the task's input, as text (a string's contents, or a
 * number); NULL when absent. */
const char *hx_param(const char *key, char *out, size_t len);
long hx_param_long(const char *key, long def);
/* "ok", or the errno name of a failed call (r < 0). */
const char *hx_res(long r);
/* Print a JSON array of the entries of dir (without . and ..), at most 20,
 * or the errno name as a JSON string. */
void hx_print_dir(const char *dir);

/* hostile_exec_see.c: what the task can see and reach. */
int hx_tcp_connect(void);
int hx_abstract_unix(void);
int hx_net_view(void);
int hx_proc_view(void);
int hx_uts(void);
int hx_ids(void);
int hx_whoami(void);
int hx_setuid(void);
int hx_cgroup_escape(void);
int hx_kill_pid(void);
int hx_kill_all(void);
int hx_proc_peek(void);
int hx_read_file(void);
int hx_pg_socket(void);
int hx_write_outside(void);
int hx_tmp_leave(void);
int hx_devshm_leave(void);
int hx_ipc(bool create);
int hx_ls_tmp(void);

#endif
