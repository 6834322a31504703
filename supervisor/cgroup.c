/*
 * cgroup.c - a cgroup per worker slot (see cgroup.h).
 *
 * Theory of operation: cgroups_setup() runs once at startup, after the host
 * probe (probe) has found our cgroup in each hierarchy. It picks v2
 * when our cgroup2 cgroup offers the memory and pids controllers (a
 * systemd service with Delegate=yes), else the v1 memory and pids
 * hierarchies. Under v2 the "no internal processes" rule applies: when our
 * own cgroup holds processes and its controllers cannot be enabled for
 * children, the daemon first moves itself into a leaf, `valetd.<pid>`.
 * Then `valet.<pid>` and its `slot-<N>` children are made, their limits
 * written, and the files the spawner needs opened. Leftovers of a daemon
 * that died (`valet.<pid>` of a pid that is gone) are removed first.
 *
 * The spawner inherits the fds (sandbox/cg_slot.c). Per job it writes a
 * limit only when the job's differs from the slot's, reads the OOM kill
 * counter when the job ends, and (without PID namespaces) kills what is
 * left in the cgroup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "cgroup.h"

#define CG_PATH 640
#define CG_FILE (CG_PATH + 64) /* a directory and a file in it */

static int cg_write(const char *dir, const char *file, const char *value)
{
	char path[CG_FILE];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int cg_open(const char *dir, const char *file, int flags)
{
	char path[CG_FILE];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return open(path, flags | O_CLOEXEC);
}

/* Remove a slot directory tree: slot-* first, then the directory. Busy
 * directories (processes still exiting) get a few short retries. */
static void cg_remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[CG_PATH];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "slot-", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		for (int i = 0; i < 50 && rmdir(path) < 0 && errno == EBUSY; i++)
			nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	closedir(d);
	for (int i = 0; i < 50 && rmdir(dir) < 0 && errno == EBUSY; i++)
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
}

/* valet.<pid> (job cgroups) and valetd.<pid> (a daemon's own leaf, cgroup
 * v2) directories of daemons that are gone. */
static void cg_remove_stale(const char *parent)
{
	DIR *d = opendir(parent);
	struct dirent *e;
	char path[CG_PATH];

	if (!d)
		return;
	while ((e = readdir(d))) {
		const char *num;
		long pid;
		char *end;

		if (!strncmp(e->d_name, "valet.", 6))
			num = e->d_name + 6;
		else if (!strncmp(e->d_name, "valetd.", 7))
			num = e->d_name + 7;
		else
			continue;
		pid = strtol(num, &end, 10);
		if (*end || pid <= 0 || pid == getpid() || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		cg_remove_tree(path);
	}
	closedir(d);
}

/* Make <parent>/valet.<pid> and remember it for teardown. */
static int cg_make_root(struct cgroups *cg, const char *parent, char *root, size_t len)
{
	int i;

	cg_remove_stale(parent);
	snprintf(root, len, "%s/valet.%ld", parent, (long)getpid());
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		return -errno;
	for (i = 0; i < 3 && cg->roots[i]; i++)
		;
	if (i < 3 && !(cg->roots[i] = strdup(root)))
		return -ENOMEM;
	return 0;
}

static bool cg_has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

/* cgroup v2: enable memory and pids for our children, moving ourselves to
 * a leaf if our cgroup holds processes. */
static int cg2_enable(const char *own, char *err, size_t errlen)
{
	char leaf[CG_PATH];
	int rc = cg_write(own, "cgroup.subtree_control", "+memory +pids");

	if (rc != -EBUSY)
		goto out;
	snprintf(leaf, sizeof(leaf), "%s/valetd.%ld", own, (long)getpid());
	if (mkdir(leaf, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	if ((rc = cg_write(leaf, "cgroup.procs", "0")) < 0)
		goto out;
	rc = cg_write(own, "cgroup.subtree_control", "+memory +pids");
out:
	if (rc < 0)
		snprintf(err, errlen, "cannot enable the memory and pids controllers in %s: %s",
			 own, strerror(-rc));
	return rc;
}

static void cg_slot_init(struct cg_slot *s)
{
	memset(s, 0, sizeof(*s));
	s->join[0] = s->join[1] = s->join[2] = -1;
	s->mem_max = s->memsw = s->pids_max = s->oom = s->kill = s->procs = s->peak = -1;
	s->usage = s->stat = -1;
}

/* With limits in v1 beside it (!limits), this cgroup serves cgroup.kill
 * alone: its cgroup.procs goes last in join[], past njoin_ns. */
static int cg2_slot(struct cg_slot *s, const char *dir, bool limits)
{
	int *join = &s->join[limits ? 0 : 2];

	if ((*join = cg_open(dir, "cgroup.procs", O_WRONLY)) < 0)
		return -errno;
	if (limits)
		s->njoin = s->njoin_ns = 1;
	s->kill = cg_open(dir, "cgroup.kill", O_WRONLY);
	if (s->kill < 0)
		s->procs = cg_open(dir, "cgroup.procs", O_RDONLY);
	if (!limits)
		return 0;
	(void)cg_write(dir, "memory.swap.max", "0");
	(void)cg_write(dir, "memory.oom.group", "1");
	s->peak = cg_open(dir, "memory.peak", O_RDWR); /* Linux 5.19 */
	s->usage = cg_open(dir, "memory.current", O_RDONLY);
	s->stat = cg_open(dir, "memory.stat", O_RDONLY);
	if ((s->mem_max = cg_open(dir, "memory.max", O_WRONLY)) < 0 ||
	    (s->pids_max = cg_open(dir, "pids.max", O_WRONLY)) < 0 ||
	    (s->oom = cg_open(dir, "memory.events", O_RDONLY)) < 0)
		return -errno;
	return 0;
}

static int cg1_slot(struct cg_slot *s, const char *memdir, const char *pidsdir)
{
	if ((s->join[0] = cg_open(memdir, "tasks", O_WRONLY)) < 0 ||
	    (s->join[1] = cg_open(pidsdir, "tasks", O_WRONLY)) < 0)
		return -errno;
	s->njoin = s->njoin_ns = 2;
	if (s->join[2] >= 0)
		s->njoin = 3;
	s->v1 = true;
	if (s->procs < 0 && s->kill < 0)
		s->procs = cg_open(pidsdir, "cgroup.procs", O_RDONLY);
	(void)cg_write(memdir, "memory.swappiness", "0");
	s->memsw = cg_open(memdir, "memory.memsw.limit_in_bytes", O_WRONLY);
	s->peak = cg_open(memdir, "memory.max_usage_in_bytes", O_RDWR);
	s->usage = cg_open(memdir, "memory.usage_in_bytes", O_RDONLY);
	s->stat = cg_open(memdir, "memory.stat", O_RDONLY);
	if ((s->mem_max = cg_open(memdir, "memory.limit_in_bytes", O_WRONLY)) < 0 ||
	    (s->pids_max = cg_open(pidsdir, "pids.max", O_WRONLY)) < 0 ||
	    (s->oom = cg_open(memdir, "memory.oom_control", O_RDONLY)) < 0)
		return -errno;
	return 0;
}

/* Make slot-<i> under root (if root is set) and return its path in dir. */
static int cg_mkslot(const char *root, unsigned i, char *dir, size_t len)
{
	snprintf(dir, len, "%s/slot-%u", root, i);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int cg_make_slots(struct cgroups *cg, const char *v2root, const char *memroot,
			 const char *pidsroot)
{
	char d2[CG_PATH], dm[CG_PATH], dp[CG_PATH];
	int rc;

	for (unsigned i = 0; i < cg->nslots; i++) {
		struct cg_slot *s = &cg->slots[i];

		if (v2root && ((rc = cg_mkslot(v2root, i, d2, sizeof(d2))) < 0 ||
			       (rc = cg2_slot(s, d2, cg->version == 2)) < 0))
			return rc;
		if (memroot && ((rc = cg_mkslot(memroot, i, dm, sizeof(dm))) < 0 ||
				(rc = cg_mkslot(pidsroot, i, dp, sizeof(dp))) < 0 ||
				(rc = cg1_slot(s, dm, dp)) < 0))
			return rc;
		/* The limits are the spawner's to write (cg_slot_limit()), the
		 * first time a job needs them, as the OOM counter's to read. */
		s->memory = s->pids = UINT64_MAX;
	}
	return 0;
}

int cgroups_version(const struct probe_caps *caps)
{
	const struct probe_cgroup *mem = &caps->cg1[PROBE_CG1_MEMORY];
	const struct probe_cgroup *pid = &caps->cg1[PROBE_CG1_PIDS];

	if (caps->cg2.cg.found && caps->cg2.cg.writable.ok &&
	    cg_has_word(caps->cg2.controllers, "memory") &&
	    cg_has_word(caps->cg2.controllers, "pids"))
		return 2;
	if (mem->found && mem->writable.ok && pid->found && pid->writable.ok)
		return 1;
	return 0;
}

int cgroups_setup(struct cgroups *cg, const struct probe_caps *caps, unsigned nslots, char *err,
		  size_t errlen)
{
	const struct probe_cgroup *mem = &caps->cg1[PROBE_CG1_MEMORY];
	const struct probe_cgroup *pid = &caps->cg1[PROBE_CG1_PIDS];
	bool v2ok = caps->cg2.cg.found && caps->cg2.cg.writable.ok;
	char v2root[CG_PATH] = "", memroot[CG_PATH] = "", pidsroot[CG_PATH] = "";
	int rc;

	memset(cg, 0, sizeof(*cg));
	err[0] = '\0';
	cg->version = cgroups_version(caps);
	if (!cg->version) {
		snprintf(err, errlen,
			 "no cgroup with the memory and pids controllers that valetd "
			 "may write to (valetd --check tells more)");
		return -ENOTSUP;
	}
	cg->nslots = nslots;
	cg->slots = calloc(nslots, sizeof(*cg->slots));
	if (!cg->slots) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < nslots; i++)
		cg_slot_init(&cg->slots[i]);
	if (cg->version == 2 && !cg_has_word(caps->cg2.subtree, "memory") &&
	    (rc = cg2_enable(caps->cg2.cg.dir, err, errlen)) < 0)
		goto fail;
	if (v2ok && (rc = cg_make_root(cg, caps->cg2.cg.dir, v2root, sizeof(v2root))) < 0)
		goto fail;
	if (cg->version == 2 &&
	    (rc = cg_write(v2root, "cgroup.subtree_control", "+memory +pids")) < 0)
		goto fail;
	if (cg->version == 1 && ((rc = cg_make_root(cg, mem->dir, memroot, sizeof(memroot))) < 0 ||
				 (rc = cg_make_root(cg, pid->dir, pidsroot, sizeof(pidsroot))) < 0))
		goto fail;
	rc = cg_make_slots(cg, v2ok ? v2root : NULL, cg->version == 1 ? memroot : NULL, pidsroot);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	if (!err[0])
		snprintf(err, errlen, "cannot set up the job cgroups: %s", strerror(-rc));
	cgroups_teardown(cg);
	return rc;
}

void cgroups_close(struct cgroups *cg)
{
	for (unsigned i = 0; cg->slots && i < cg->nslots; i++) {
		struct cg_slot *s = &cg->slots[i];
		int *fds[] = {&s->join[0],  &s->join[1], &s->join[2], &s->mem_max, &s->memsw,
			      &s->pids_max, &s->oom,	 &s->kill,    &s->procs,   &s->peak,
			      &s->usage,    &s->stat};

		for (size_t k = 0; k < sizeof(fds) / sizeof(fds[0]); k++)
			if (*fds[k] >= 0) {
				close(*fds[k]);
				*fds[k] = -1;
			}
	}
}

void cgroups_teardown(struct cgroups *cg)
{
	cgroups_close(cg);
	for (int i = 0; i < 3; i++) {
		if (cg->roots[i])
			cg_remove_tree(cg->roots[i]);
		free(cg->roots[i]);
		cg->roots[i] = NULL;
	}
	free(cg->slots);
	cg->slots = NULL;
	cg->nslots = 0;
	cg->version = 0;
}
