/*
 * cgroup.h - a cgroup per worker slot, for the jobs run in it.
 *
 * At startup the daemon makes `valet.<pid>/slot-<N>` under its own cgroup
 * in each hierarchy it uses and opens what the spawner needs per slot: the
 * files a job's child writes itself into ("0": the writer; join[]), the
 * memory and pids limits, the OOM kill counter and cgroup.kill.
 *
 * Not clone3(CLONE_INTO_CGROUP): on Linux 6.18 (at least) every child
 * cloned into a cgroup that was once killed through cgroup.kill is killed
 * at birth (the fork compares kill sequence numbers of two cgroups), and a
 * raw clone leaves glibc's cached thread id stale in a child that goes on
 * to run C code (raise() and abort() then miss). So each job's child
 * writes itself into its slot's cgroups: in a v1 hierarchy through the
 * tasks file, in cgroup2 through cgroup.procs. A write to cgroup.procs
 * moves a whole thread group, under the kernel's global
 * cgroup_threadgroup_rwsem taken for writing, whose fast path lasts one RCU
 * grace period after the last such write: at an exec job every millisecond
 * or so it waited for a new grace period now and then, up to 14 ms with
 * the spawner stopped (CLONE_VFORK), 17 times in 2,000 jobs. A write of the
 * writer itself to v1's tasks moves one thread (the child has no other)
 * without that lock: 5 to 50 us, never a grace period (test_cgroup
 * test_join_files). cgroup2 has no such file for a domain cgroup: on a
 * v2 host every join takes the lock. A slot's cgroup is reused by one job
 * after the other; a job's processes are all gone before the next job
 * starts in that slot (the PID namespace, or cgroup.kill).
 *
 *   v2: memory and pids delegated to us in the unified hierarchy:
 *       memory.max, memory.swap.max = 0, memory.oom.group = 1, pids.max,
 *       memory.events (oom_kill), memory.peak (reset per job), cgroup.kill.
 *   v1: the memory and pids hierarchies: memory.limit_in_bytes (and
 *       memory.memsw.limit_in_bytes: no swap), pids.max, memory.oom_control
 *       (oom_kill), memory.max_usage_in_bytes (the peak, reset per job); a
 *       cgroup2 mount beside them, when there is one, gives cgroup.kill
 *       for a job without a PID namespace, which alone joins it (past
 *       njoin_ns: for the others, the namespace's end kills what is left,
 *       and a join would take the global lock above).
 */
#ifndef VALET_CGROUP_H
#define VALET_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../sandbox/cg_slot.h"

struct probe_caps;

struct cgroups {
	int version; /* 0 = none, 1 = v1 limits, 2 = v2 limits */
	unsigned nslots;
	struct cg_slot *slots;
	char *roots[3]; /* the valet.<pid> directories made, to remove at exit */
};

/* Which cgroups cgroups_setup() would use here: 2, 1, or 0 (none: no
 * hierarchy with the memory and pids controllers we may write to). */
int cgroups_version(const struct probe_caps *caps);
/* Make and open every slot's cgroups (the spawner writes the limits). 0,
 * or -errno with a sentence in err; *cg is then empty (version 0). */
int cgroups_setup(struct cgroups *cg, const struct probe_caps *caps, unsigned nslots, char *err,
		  size_t errlen);
/* Close the fds and remove the directories (their processes must be gone). */
void cgroups_teardown(struct cgroups *cg);
/* Close the fds only (the spawner has them). */
void cgroups_close(struct cgroups *cg);

#endif
