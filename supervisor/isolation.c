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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../sandbox/sandbox.h"
#include "../sandbox/sbx_probe.h"
#include "config.h"
#include "config_value.h"
#include "isolation.h"
#include "netpolicy.h"

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

static bool iso_has_net_task(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nexec_tasks; i++)
		if (cfg->exec_tasks[i].argv && cfg->exec_tasks[i].profile == SBX_PROFILE_EXEC_NET)
			return true;
	return false;
}

/*
 * exec+net jobs: a network namespace per slot served by slirp4netns (which
 * needs the program and /dev/net/tun), or, when configured so, the host's
 * network. Without namespaces every job shares the host's network anyway.
 */
static void iso_network(struct isolation *iso, const struct config *cfg)
{
	struct stat st;

	if (!iso_has_net_task(cfg))
		return;
	iso->network = ISO_NET_HOST;
	if (!iso->namespaces || !strcmp(cfg->net_mode, "host"))
		return;
	if (cfg->net_helper[0] == '/' ? !config_is_exec(cfg->net_helper) ||
						!(iso->net_helper = strdup(cfg->net_helper))
				      : config_path_lookup(cfg->net_helper, &iso->net_helper) < 0) {
		iso_missing(iso, "exec+net jobs need slirp4netns for a network of their own (not "
				 "found: install the slirp4netns package, or set [network] helper)");
		return;
	}
	if (stat("/dev/net/tun", &st) < 0 || !S_ISCHR(st.st_mode)) {
		iso_missing(iso, "exec+net jobs need /dev/net/tun for slirp4netns (the tun module, "
				 "or the unit's DeviceAllow)");
		free(iso->net_helper);
		iso->net_helper = NULL;
		return;
	}
	iso->network = ISO_NET_SLIRP;
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
	iso_network(iso, cfg);
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
	free(iso->net_helper);
	iso->net_helper = NULL;
}

long isolation_uid(const struct isolation *iso, unsigned slot)
{
	if (!iso->switch_user)
		return -1;
	return iso->uid_base ? (long)iso->uid_base + slot : (long)iso->uid;
}

static const char *iso_network_name(const struct isolation *iso, const char *profile)
{
	if (!iso->namespaces)
		return "host"; /* the spawner's: without namespaces, the host's */
	if (strcmp(profile, "exec+net") != 0)
		return "none";
	return iso->network == ISO_NET_SLIRP ? "slirp4netns" : "host";
}

char *isolation_record(const struct isolation *iso, unsigned slot, const char *profile)
{
	char buf[320], uid[24], cg[8];
	long u = isolation_uid(iso, slot);
	const char *net = iso_network_name(iso, profile);

	if (u >= 0)
		snprintf(uid, sizeof(uid), "%ld", u);
	else
		snprintf(uid, sizeof(uid), "null");
	if (iso->cg.version)
		snprintf(cg, sizeof(cg), "\"v%d\"", iso->cg.version);
	else
		snprintf(cg, sizeof(cg), "null");
	/* exec+net jobs in the host's network have no network namespace. */
	snprintf(buf, sizeof(buf),
		 "{\"namespaces\":%s,\"cgroup\":%s,\"uid\":%s,\"profile\":\"%s\","
		 "\"network\":\"%s\",\"degraded\":%s}",
		 !iso->namespaces	   ? "[]"
		 : strcmp(net, "host") ? "[\"pid\",\"mount\",\"ipc\",\"uts\",\"net\"]"
				       : "[\"pid\",\"mount\",\"ipc\",\"uts\"]",
		 cg, uid, profile, net, iso->degraded ? "true" : "false");
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
		    "%s  read-only, nosuid and nodev, as the host's mounts were at startup\n"
		    "%s  (later mounts never appear; later unmounts are followed); a minimal\n"
		    "%s  /dev, an empty /run, no other procfs, sysfs or kernel file system;\n"
		    "%s  the config's directory, /etc/default, the database's socket\n"
		    "%s  directory and [sandbox] hide hidden; an empty network namespace per\n"
		    "%s  worker slot (loopback only) unless the task's profile allows network\n",
		    in, in, in, in, in, in, in, in, in);
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
	if (iso->network == ISO_NET_SLIRP)
		fprintf(out,
			"%sexec+net tasks: a network namespace per worker slot, served by\n"
			"%s  %s (user-mode networking, its own sandbox); IPv4 only;\n"
			"%s  the routes below decide what jobs reach\n",
			in, in, iso->net_helper, in);
	else if (iso->network == ISO_NET_HOST)
		fprintf(out,
			"%sexec+net tasks: the HOST's network namespace: they reach the node's\n"
			"%s  loopback and addresses, valetd's API and abstract unix sockets\n",
			in, in);
	if (iso->degraded)
		fprintf(out, "%sDEGRADED: %s\n", in, iso->missing);
}
