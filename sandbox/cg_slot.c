/*
 * cg_slot.c - a worker slot's cgroup, per job, in the spawner (see
 * cg_slot.h): the limits written only when a job's differ from the slot's,
 * the memory peak reset before and read after it, the OOM kill counter read
 * when it ends, (without PID namespaces) what is left killed, and the
 * memory a job may have left charged (cg_slot_pinned).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg_slot.h"

static int cg_put(int fd, uint64_t v, const char *unlimited)
{
	char buf[32];

	if (fd < 0)
		return 0;
	if (v == 0)
		snprintf(buf, sizeof(buf), "%s", unlimited);
	else
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return pwrite(fd, buf, strlen(buf), 0) < 0 ? -errno : 0;
}

uint64_t cg_slot_oom_count(const struct cg_slot *s)
{
	char buf[512];
	ssize_t n;
	char *p;

	if (s->oom < 0 || (n = pread(s->oom, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	for (p = buf; (p = strstr(p, "oom_kill ")); p++)
		if (p == buf || p[-1] == '\n')
			return strtoull(p + 9, NULL, 10);
	return 0;
}

int cg_slot_limit(struct cg_slot *s, uint64_t memory, uint64_t pids)
{
	const char *unlimited = s->v1 ? "-1" : "max";
	int rc = 0;

	if (memory != s->memory && s->mem_max >= 0) {
		/* v1: the memory+swap limit may not go below the memory limit,
		 * so the order depends on the direction; try both. */
		if (cg_put(s->mem_max, memory, unlimited) < 0) {
			rc = cg_put(s->memsw, memory, unlimited);
			if (rc == 0)
				rc = cg_put(s->mem_max, memory, unlimited);
		} else {
			rc = cg_put(s->memsw, memory, unlimited);
		}
		if (rc < 0)
			return rc;
		s->memory = memory;
	}
	if (pids != s->pids && s->pids_max >= 0) {
		if ((rc = cg_put(s->pids_max, pids, "max")) < 0)
			return rc;
		s->pids = pids;
	}
	return 0;
}

/*
 * v1: writing 0 to memory.max_usage_in_bytes resets it. v2: writing to
 * memory.peak resets the peak as seen through that open file (Linux 6.12);
 * the spawner keeps the one fd per slot, so its reads see the job's peak.
 */
bool cg_slot_peak_reset(struct cg_slot *s)
{
	if (s->peak < 0)
		return false;
	return pwrite(s->peak, s->v1 ? "0" : "reset\n", s->v1 ? 1 : 6, 0) > 0;
}

int64_t cg_slot_peak(struct cg_slot *s)
{
	char buf[32];
	ssize_t n;

	if (s->peak < 0 || (n = pread(s->peak, buf, sizeof(buf) - 1, 0)) <= 0)
		return -1;
	buf[n] = '\0';
	return (int64_t)strtoull(buf, NULL, 10);
}

bool cg_slot_oom(struct cg_slot *s)
{
	uint64_t n;

	if (s->oom < 0)
		return false;
	n = cg_slot_oom_count(s);
	if (n == s->oom_seen)
		return false;
	s->oom_seen = n;
	return true;
}

/* The value of key in a memory.stat text ("key value" lines); 0 when absent. */
static uint64_t cg_stat_value(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; (p = strstr(p, key)); p += n)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
	return 0;
}

int64_t cg_slot_pinned(const struct cg_slot *s)
{
	char usage[32], stat[8192];
	ssize_t n, m;
	uint64_t used, file;

	if (s->usage < 0 || s->stat < 0 || (n = pread(s->usage, usage, sizeof(usage) - 1, 0)) <= 0 ||
	    (m = pread(s->stat, stat, sizeof(stat) - 1, 0)) <= 0)
		return -1;
	usage[n] = stat[m] = '\0';
	used = strtoull(usage, NULL, 10);
	file = cg_stat_value(stat, "active_file") + cg_stat_value(stat, "inactive_file");
	return used > file ? (int64_t)(used - file) : 0;
}

void cg_slot_kill(struct cg_slot *s)
{
	char buf[4096];

	if (s->kill >= 0) {
		(void)pwrite(s->kill, "1", 1, 0);
		return;
	}
	/* No cgroup.kill: SIGKILL each listed process until none is left
	 * (bounded: pids.max bounds how many can appear meanwhile). */
	for (int round = 0; s->procs >= 0 && round < 16; round++) {
		ssize_t n = pread(s->procs, buf, sizeof(buf) - 1, 0);
		bool any = false;

		if (n <= 0)
			return;
		buf[n] = '\0';
		for (char *p = buf, *end; *p; p = end) {
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
				any = true;
		}
		if (!any)
			return;
	}
}
