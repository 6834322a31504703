/*
 * isolation.c - deciding what isolation jobs get (see isolation.h).
 *
 * Theory of operation: each configured feature is checked against the
 * probe: namespaces need the pid, mount, ipc, uts and network probes to have
 * worked (they ran unshare in a child); cgroups need a hierarchy with the
 * memory and pids controllers we may write to (cgroup.c decides which);
 * switching users needs root or CAP_SETUID+CAP_SETGID, and a uid range
 * (uid_base) must not hold anybody's uid. What is missing is collected in
 * one sentence. With allow_degraded_isolation it becomes a warning and
 * `"degraded": true` on every job; without, an error.
 *
 * User lookups run in a throwaway child process: getpwnam() loads the
 * NSS modules (with libnss_systemd and libcap, ten mappings) into the
 * process that calls it, and every mapping of the daemon at the time the
 * spawner is forked is copied again at every job's fork and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../sandbox/sandbox.h"
#include "../sandbox/sbx_probe.h"
#include "config.h"
#include "isolation.h"

static const struct isolation *global_iso;

const struct isolation *isolation_global(void)
{
	return global_iso;
}

void isolation_set_global(const struct isolation *iso)
{
	global_iso = iso;
}

static void iso_missing(struct isolation *iso, const char *what)
{
	size_t n = strlen(iso->missing);

	snprintf(iso->missing + n, sizeof(iso->missing) - n, "%s%s", n ? "; " : "", what);
	iso->degraded = true;
}

static bool iso_namespaces_ok(const struct sbx_caps *caps)
{
	static const enum sbx_probe_ns need[] = {SBX_PROBE_NS_PID, SBX_PROBE_NS_MOUNT,
						 SBX_PROBE_NS_IPC, SBX_PROBE_NS_UTS,
						 SBX_PROBE_NS_NET};

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!caps->ns[need[i]].ok)
			return false;
	return true;
}

/* What the lookup child finds. */
struct iso_users {
	int rc; /* sbx_lookup_user() of the task user */
	uid_t uid;
	gid_t gid;
	long taken;	/* a uid of the range that belongs to somebody, or -1 */
	char owner[64]; /* whom */
};

/* In a child: the task user, and whether anybody owns a uid of the range
 * (nobody may: a task would act as them). */
static void iso_lookup_child(const char *user, uid_t base, unsigned n, struct iso_users *u)
{
	u->rc = sbx_lookup_user(user, &u->uid, &u->gid);
	u->taken = -1;
	for (unsigned i = 0; base && i < n; i++) {
		struct passwd *pw = getpwuid(base + i);

		if (pw) {
			u->taken = (long)(base + i);
			snprintf(u->owner, sizeof(u->owner), "%s", pw->pw_name);
			break;
		}
	}
}

static int iso_lookup(const char *user, uid_t base, unsigned n, struct iso_users *u)
{
	int fd[2], status;
	ssize_t got;
	pid_t pid;

	if (pipe2(fd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -errno;
	}
	if (pid == 0) {
		struct iso_users r;

		memset(&r, 0, sizeof(r));
		iso_lookup_child(user, base, n, &r);
		_exit(write(fd[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(fd[1]);
	while ((got = read(fd[0], u, sizeof(*u))) < 0 && errno == EINTR)
		;
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return got == (ssize_t)sizeof(*u) ? 0 : -EIO;
}

static int iso_user(struct isolation *iso, const struct config *cfg, const struct sbx_caps *caps,
		    unsigned nslots, char *err, size_t errlen)
{
	struct iso_users u;
	int rc;

	if (!caps->can_switch_user) {
		iso_missing(iso, "cannot switch users (not root, no CAP_SETUID/CAP_SETGID): tasks "
				 "run as valetd's user");
		return 0;
	}
	rc = iso_lookup(cfg->user, (uid_t)cfg->uid_base, nslots, &u);
	if (rc == 0)
		rc = u.rc;
	if (rc < 0) {
		snprintf(err, errlen, "[sandbox] user %s: %s", cfg->user,
			 rc == -ENOENT ? "no such user" : strerror(-rc));
		return rc;
	}
	if (u.taken >= 0) {
		snprintf(
		    err, errlen,
		    "[sandbox] uid_base %d: uid %ld (slot %ld of %u) belongs to user %s; pick a "
		    "range nobody uses",
		    cfg->uid_base, u.taken, u.taken - cfg->uid_base, nslots, u.owner);
		return -EINVAL;
	}
	iso->uid = u.uid;
	iso->gid = u.gid;
	iso->switch_user = true;
	iso->uid_base = (uid_t)cfg->uid_base;
	return 0;
}

int isolation_plan(struct isolation *iso, const struct config *cfg, const struct sbx_caps *caps,
		   unsigned nslots, bool make_cgroups, char *err, size_t errlen)
{
	char why[256];
	int rc;

	memset(iso, 0, sizeof(*iso));
	err[0] = '\0';
	if ((rc = iso_user(iso, cfg, caps, nslots, err, errlen)) < 0)
		return rc;
	if (cfg->namespaces) {
		if (iso_namespaces_ok(caps))
			iso->namespaces = true;
		else
			iso_missing(iso,
				    "no pid, mount, ipc, uts and network namespaces (needs root "
				    "or CAP_SYS_ADMIN)");
	}
	if (cfg->cgroups) {
		if (make_cgroups) {
			rc = cgroups_setup(&iso->cg, caps, nslots, cfg->memory_limit_bytes,
					   (uint64_t)cfg->max_processes, why, sizeof(why));
			if (rc < 0)
				iso_missing(iso, why);
		} else if (!(iso->cg.version = cgroups_version(caps))) {
			/* --check: what cgroups_setup() would pick, without it. */
			iso_missing(iso, "no cgroup with the memory and pids controllers that "
					 "valetd may write to");
		}
	}
	if (iso->degraded && !cfg->allow_degraded_isolation) {
		snprintf(err, errlen,
			 "isolation configured in [sandbox] is not available here: %s. Refusing "
			 "to start; fix the host, or set allow_degraded_isolation = true",
			 iso->missing);
		isolation_release(iso);
		return -EPERM;
	}
	return 0;
}

void isolation_release(struct isolation *iso)
{
	if (iso->cg.slots)
		cgroups_teardown(&iso->cg);
}

long isolation_uid(const struct isolation *iso, unsigned slot)
{
	if (!iso->switch_user)
		return -1;
	return iso->uid_base ? (long)iso->uid_base + slot : (long)iso->uid;
}

char *isolation_record(const struct isolation *iso, unsigned slot, const char *profile)
{
	char buf[256], uid[24], cg[8];
	long u = isolation_uid(iso, slot);

	if (u >= 0)
		snprintf(uid, sizeof(uid), "%ld", u);
	else
		snprintf(uid, sizeof(uid), "null");
	if (iso->cg.version)
		snprintf(cg, sizeof(cg), "\"v%d\"", iso->cg.version);
	else
		snprintf(cg, sizeof(cg), "null");
	/* exec+net jobs share the host's network namespace. */
	snprintf(buf, sizeof(buf),
		 "{\"namespaces\":%s,\"cgroup\":%s,\"uid\":%s,\"profile\":\"%s\",\"degraded\":%s}",
		 !iso->namespaces	       ? "[]"
		 : strcmp(profile, "exec+net") ? "[\"pid\",\"mount\",\"ipc\",\"uts\",\"net\"]"
					       : "[\"pid\",\"mount\",\"ipc\",\"uts\"]",
		 cg, uid, profile, iso->degraded ? "true" : "false");
	return strdup(buf);
}

void isolation_print(const struct isolation *iso, const char *in, FILE *out)
{
	if (iso->namespaces)
		fprintf(
		    out,
		    "%snamespaces: new pid, mount, ipc and uts namespaces per job; the task is\n"
		    "%s  pid 2 under an init that takes everything along when it ends; a\n"
		    "%s  fresh /proc, a private /tmp (tmpfs, gone with the job), the rest\n"
		    "%s  read-only and nosuid, a minimal /dev, the config file and the\n"
		    "%s  PostgreSQL socket directory hidden; an empty network namespace per\n"
		    "%s  worker slot (loopback only) unless the task's profile allows network\n",
		    in, in, in, in, in, in);
	else
		fprintf(out, "%snamespaces: none (exec tasks: a PID namespace when allowed)\n", in);
	if (iso->cg.version)
		fprintf(out,
			"%scgroups: v%d, one per worker slot: memory limit (no swap), pids limit,\n"
			"%s  OOM kills reported as such; killed as a whole at job end\n",
			in, iso->cg.version, in);
	else
		fprintf(out, "%scgroups: none (rlimits only)\n", in);
	if (!iso->switch_user)
		fprintf(out, "%suser: valetd's own (cannot switch users); no capabilities\n", in);
	else if (iso->uid_base)
		fprintf(out,
			"%suser: uid/gid %u + slot number, one per worker slot; no capabilities\n",
			in, (unsigned)iso->uid_base);
	else
		fprintf(out, "%suser: uid %u, gid %u; no capabilities\n", in, (unsigned)iso->uid,
			(unsigned)iso->gid);
	if (iso->degraded)
		fprintf(out, "%sDEGRADED: %s\n", in, iso->missing);
}
