/*
 * reach.h - whether the task users can reach the exec tasks' programs.
 *
 * Jobs run as users of their own (isolation.h), not as valetd's: a program
 * in a directory only root may search (/root, mode 0700, where root's
 * clones usually are) cannot be run by them, and every job of its task
 * would fail with "sandbox setup failed: execve: Permission denied". The
 * daemon says so at startup instead, once, with the directory that stops
 * them (valetd --check too).
 */
#ifndef VALET_REACH_H
#define VALET_REACH_H

#include <sys/types.h>

struct config;

/*
 * For each exec task of cfg (borrowed): whether uid and gid (a task
 * user's, with no supplementary groups) can execute its program and read
 * the files its arguments name. Checked for real, by a child that takes
 * those ids and tries access(). Returns a NULL-terminated vector of
 * sentences (new, strv_free()), one per task that they cannot run, or
 * NULL when they can run them all (or on a failure to check: no warning).
 */
char **reach_check(const struct config *cfg, uid_t uid, gid_t gid);

#endif
