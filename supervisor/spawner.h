/*
 * spawner.h - the small process that forks every job child.
 *
 * fork() cost grows with the parent's touched memory, so job children are
 * not forked from the daemon (which may hold 100,000 queued jobs) but from
 * this process, forked once at startup while the daemon is still small.
 * The daemon talks to it over a SOCK_SEQPACKET socketpair:
 *   daemon -> spawner: START (header + inline input, fds by SCM_RIGHTS), KILL
 *   spawner -> daemon: STARTED (the child's pid), EXIT (wait status and
 *   rusage of a reaped job child)
 * The spawner is the only parent and the only reaper of job children, so a
 * KILL never hits a recycled pid. It is also a child subreaper: orphans of
 * a job are reparented to it and reaped.
 */
#ifndef VALET_SPAWNER_H
#define VALET_SPAWNER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../sandbox/sandbox.h"

struct registry;
struct cg_slot;

#define SPAWN_INLINE_MAX 4096 /* larger inputs go as a memfd on stdin */
#define SPAWN_MAX_FDS 4

/* POLICY: what jobs must not see or reach (see spawner_policy()); its
 * answer is a POLICY event with the same run_id and an errno. */
enum spawn_req_type { SPAWN_REQ_START = 1, SPAWN_REQ_KILL = 2, SPAWN_REQ_POLICY = 3 };
enum spawn_evt_type {
	SPAWN_EVT_EXIT = 1,
	SPAWN_EVT_STARTED = 2,
	SPAWN_EVT_READY = 3,
	SPAWN_EVT_POLICY = 4,
};

enum {
	SPAWN_EVT_F_OOM = 1u << 0, /* EXIT: the OOM killer struck in the job's cgroup */
};

enum {
	SPAWN_F_EXEC = 1u << 0,        /* exec task: execve task argv */
	SPAWN_F_INPUT_STDIN = 1u << 1, /* C task: read the input from fd 0 */
	SPAWN_F_HAS_STDIN = 1u << 2,   /* an input fd is attached (last fd) */
	SPAWN_F_SHARED_OUTPUT = 1u << 3, /* stderr goes to the stdout pipe */
	SPAWN_F_INPUT_SIZED = 1u << 4,   /* stdin: uint32 size, then the input (no EOF) */
};

/* fds attached to START, in order: frame, stdout, [stderr], [stdin]. */
struct spawn_req {
	uint32_t type;
	uint32_t slot;
	uint64_t run_id;
	int32_t task_index;
	uint32_t flags;
	uint32_t input_len; /* inline input bytes following the header */
	uint32_t pad;
	struct sbx_limits limits; /* the child's rlimits (the job's limits) */
};

struct spawn_evt {
	uint32_t type;
	uint32_t slot;
	uint64_t run_id;
	int32_t pid;
	int32_t status;    /* wait status */
	int32_t spawn_err; /* errno when the fork failed (status invalid); READY: setup */
	uint32_t flags;    /* SPAWN_EVT_F_* */
	int64_t utime_us, stime_us, maxrss_kb;
	int64_t memory_peak_kb; /* the job's cgroup memory peak; -1 = unknown */
};

struct spawner_opts {
	const struct registry *reg;
	struct sbx_limits limits; /* the defaults; each START carries its own */
	bool drop_user;
	uid_t uid;
	gid_t gid;
	const struct sbx_filter *filters; /* [SBX_PROFILE_COUNT] */
	unsigned max_slots;
	/* Isolation (decided at startup): per-job namespaces on top of the
	 * view, a cgroup per slot ([max_slots]; NULL = none), a uid per slot
	 * (uid_base + slot; 0 = every job runs as uid/gid). */
	bool namespaces;
	struct sbx_view_opts view;
	struct sbx_keep *keep; /* host /tmp directories jobs see ([nkeep]) */
	int nkeep;
	struct cg_slot *cgslots;
	uid_t uid_base;
	/* exec+net jobs: the host's network namespace (net_host), or a
	 * namespace per slot served by net.helper (NULL: no such task). */
	bool net_host;
	struct sbx_net_opts net;
	/* Strings the spawner zeroes in its own memory (secrets such as the
	 * database URL), so that no job child, forked from it, holds a copy.
	 * NULL-terminated; NULL = none. The environment is always zeroed. */
	char *const *wipe;
};

/*
 * Fork the spawner and wait until it is ready (its view prepared). Returns 0
 * with *pid and *fd (the daemon's end, CLOEXEC, non-blocking), or a negative
 * errno (the spawner printed why). In the spawner this never returns.
 */
int spawner_start(const struct spawner_opts *opts, pid_t *pid, int *fd);

/*
 * POLICY: the directories no job may see (hide; also later, when one
 * appears or comes back after a rename) and the IPv4 addresses exec+net
 * jobs may not reach (deny, replacing the last such list), both
 * NULL-terminated. wait (at startup, before any job): return the spawner's
 * answer, 0 or -errno; else its POLICY event comes with the others, with
 * run_id id. 0 or -errno (-E2BIG: more than SPAWN_INLINE_MAX bytes).
 */
int spawner_policy(int fd, char *const *hide, char *const *deny, uint64_t id, bool wait);

#endif
