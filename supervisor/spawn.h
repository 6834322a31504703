/*
 * spawn.h - the daemon's side of the spawner (sandbox/spawn_proto.h):
 * starting it, telling it what jobs must not see or reach, and asking a
 * spawner program for its tasks.
 */
#ifndef VALET_SPAWN_H
#define VALET_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../sandbox/spawn_proto.h"

struct cg_slot;
struct config_exec_task;

/* What the spawner gets (borrowed, all of it; see spawn_proto.h). */
struct spawn_setup {
	const char *program; /* the spawner program */
	unsigned nslots;
	bool drop_user;
	uid_t uid, uid_base;
	gid_t gid;
	const struct sbx_filter *filters; /* [SBX_PROFILE_COUNT] */
	bool namespaces;
	char *const *hide; /* NULL-terminated */
	bool job_network;
	const struct sbx_keep *keep;
	int nkeep;
	bool net_host;
	const char *net_helper; /* NULL: no exec+net task, or net_host */
	gid_t net_gid;
	const struct sbx_net_rule *rules;
	int nrules;
	const struct cg_slot *cgslots; /* [nslots]; NULL = none */
	const char *plugin_dir;	       /* NULL or "": no plugins */
	const struct config_exec_task *exec_tasks; /* [nexec]; those with a command run */
	size_t nexec;
};

/*
 * Start the spawner program and wait until it is ready. 0 with *pid, *fd
 * (the daemon's end: CLOEXEC, non-blocking) and *table (new, NUL-terminated:
 * its task table, spawn_proto.h's JSON); or -errno with a sentence in err
 * (the spawner's own, when it said why) and, when sandbox is not NULL,
 * *sandbox true if what failed was preparing the jobs' sandbox (their view,
 * their network: SPAWN_EVT_F_SANDBOX), false for anything else.
 */
int spawn_start(const struct spawn_setup *s, pid_t *pid, int *fd, char **table, bool *sandbox,
		char *err, size_t errlen);

/*
 * POLICY: the directories no job may see (hide; also later, when one
 * appears or comes back after a rename) and the IPv4 addresses exec+net
 * jobs may not reach (deny, replacing the last such list), both
 * NULL-terminated. wait (at startup, before any job): return the spawner's
 * answer, 0 or -errno; else its POLICY event comes with the others, with
 * run_id id. 0 or -errno (-E2BIG: more than SPAWN_INLINE_MAX bytes).
 */
int spawn_policy(int fd, char *const *hide, char *const *deny, uint64_t id, bool wait);

/* The task table s->program would have with s's plugins and exec tasks,
 * without starting a spawner (valetd -t): 0 with *table (new), or -errno
 * with a sentence in err (the program said more on stderr). */
int spawn_list_tasks(const struct spawn_setup *s, char **table, char *err, size_t errlen);

/* The spawner program valetd runs: path when given, else valet-spawner
 * beside this executable (a build tree), else the installed one. New. */
char *spawn_program(const char *path);

#endif
