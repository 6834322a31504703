/*
 * filter.h - the seccomp profiles (policy.c) compiled into BPF, in the
 * daemon, with libseccomp; and the names of system calls.
 */
#ifndef VALET_FILTER_H
#define VALET_FILTER_H

#include <stddef.h>

#include "../sandbox/spawn_proto.h"

/* Compile program i: a profile (enum sbx_profile) or SBX_FILTER_FORKER.
 * 0 or -errno (-EINVAL: no such program). */
int filter_compile(int i, struct sbx_filter *out);
/* Every program into out[SBX_NFILTERS]. 0, or -errno with *failed the
 * profile that did not compile. */
int filter_compile_all(struct sbx_filter *out, enum sbx_profile *failed);
void filter_release(struct sbx_filter *f); /* NULL is a no-op */

/* Name of a syscall number on the native arch into out ("" if unknown). */
void filter_syscall_name(int nr, char *out, size_t outlen);
/* The SECCOMP_RET_DATA of every trap of the programs compiled here (a
 * secret: see filter.c); 0 before the first strict program is compiled. */
uint16_t filter_trap_data(void);

#endif
