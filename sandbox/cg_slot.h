/*
 * cg_slot.h - a worker slot's cgroup, as the spawner uses it per job: the
 * files the daemon opened at startup (supervisor/cgroup.c made the cgroups;
 * the fds are inherited by the spawner, named in its setup document).
 *
 *   v2: memory.max, memory.swap.max = 0, memory.oom.group = 1, pids.max,
 *       memory.events (oom_kill), memory.peak (reset per job), cgroup.kill,
 *       memory.current and memory.stat (what a job left charged).
 *   v1: memory.limit_in_bytes (and memory.memsw.limit_in_bytes: no swap),
 *       pids.max, memory.oom_control (oom_kill), memory.max_usage_in_bytes
 *       (the peak, reset per job), memory.usage_in_bytes and memory.stat;
 *       cgroup.kill of a cgroup2 mount beside
 *       them, when there is one (joined by a job without a PID namespace
 *       alone: join[njoin_ns..njoin)).
 */
#ifndef VALET_CG_SLOT_H
#define VALET_CG_SLOT_H

#include <stdbool.h>
#include <stdint.h>

/* The fds of one slot; -1 where there is none. */
struct cg_slot {
	int join[3];	       /* the child writes "0" to each: see supervisor/cgroup.h */
	int njoin;	       /* a job without a PID namespace joins them all */
	int njoin_ns;	       /* one in a PID namespace the first njoin_ns */
	int mem_max;	       /* memory.max or memory.limit_in_bytes */
	int memsw;	       /* v1 memory.memsw.limit_in_bytes */
	int pids_max;	       /* pids.max */
	int oom;	       /* memory.events or memory.oom_control */
	int kill;	       /* cgroup.kill */
	int procs;	       /* a cgroup.procs to read when there is no cgroup.kill */
	int peak;	       /* memory.peak (v2) or memory.max_usage_in_bytes (v1) */
	int usage;	       /* memory.current (v2) or memory.usage_in_bytes (v1) */
	int stat;	       /* memory.stat */
	bool v1;	       /* memory limits in v1 ("-1" = none) */
	uint64_t memory, pids; /* the limits written; UINT64_MAX = not yet */
	uint64_t oom_seen;     /* oom_kill count after the last job */
};

/* Apply limits (0 = none) when they differ from the slot's; 0 or -errno. */
int cg_slot_limit(struct cg_slot *s, uint64_t memory, uint64_t pids);
/* Reset the slot's memory peak before a job; false when it cannot be
 * (cgroup v2 before Linux 6.12): then the peak is not known per job. */
bool cg_slot_peak_reset(struct cg_slot *s);
/* The peak memory use (bytes) since the reset; -1 when unknown. */
int64_t cg_slot_peak(struct cg_slot *s);
/* The OOM killer's count so far (memory.events, memory.oom_control). */
uint64_t cg_slot_oom_count(const struct cg_slot *s);
/* Whether the OOM killer struck in the slot since the last call. */
bool cg_slot_oom(struct cg_slot *s);
/* The memory charged to the slot that reclaim cannot free (bytes): its
 * usage but the page cache (memory.stat's active_file and inactive_file);
 * -1 when unknown. */
int64_t cg_slot_pinned(const struct cg_slot *s);
/* Kill every process in the slot's cgroup. */
void cg_slot_kill(struct cg_slot *s);

#endif
