/*
 * isolation.c - deciding what isolation jobs get (see isolation.h).
 *
 * Theory of operation: each configured feature is checked against the
 * probe: namespaces need the pid, mount, ipc, uts and network probes to have
 * worked (they ran unshare in a child); cgroups need a hierarchy with the
 * memory and pids controllers we may write to (cgroup.c decides which);
 * switching users needs root or CAP_SETUID+CAP_SETGID. What is missing is
 * collected in one sentence. With allow_degraded_isolation it becomes a
 * warning and `"degraded": true` on every job; without, an error.
 *
 * The task users: with uid_base (a number, or auto, the default) every
 * worker slot has a uid and gid of its own, so that a job cannot signal,
 * trace or read another, nor use up its RLIMIT_NPROC (which counts per
 * user, host-wide). A block of nslots + 1 ids is reserved (uidrange.h):
 * one per slot and the network helper's. A pinned block must be free, or
 * valetd refuses to start, naming the id and why; auto takes the first
 * free block in 600000-699999.
 *
 * User lookups run in a throwaway child process: getpwnam() loads the
 * NSS modules (with libnss_systemd and libcap, ten mappings) into the
 * process that calls it, and every mapping of the daemon at the time the
 * spawner is forked is copied again at every job's fork and exit. That
 * child also reads what the host uses and checks the ids (getpwuid,
 * getgrgid: NSS again), and sends back the first free blocks; the daemon
 * takes the locks itself, since they last as long as the process that
 * holds them.
 */
#include <errno.h>
#include <fcntl.h>
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

/* How many free blocks the lookup child sends back at a time: the daemon
 * takes the first whose locks no other valetd holds. */
#define ISO_CANDIDATES 16

/* What uid_base asks for. */
enum iso_ids {
	ISO_IDS_NONE,	/* 0: every task as the task user */
	ISO_IDS_PINNED, /* a number */
	ISO_IDS_AUTO,	/* auto */
};

/* What the lookup child finds. */
struct iso_users {
	int rc; /* sbx_lookup_user() of the task user */
	uid_t uid;
	gid_t gid;
	int ids_rc;		     /* reading the host, or a pinned block's check (-EBUSY) */
	struct uidrange_taken taken; /* a pinned block: which id is not free, and why */
	unsigned ncand;		     /* auto: free blocks (but for the locks), lowest first */
	uint32_t cand[ISO_CANDIDATES];
};

/*
 * In a child: the task user, and the ids. Pinned: whether every id of the
 * block is free (nobody's uid: a task would act as them). Auto: the first
 * free blocks from `from` on.
 */
static void iso_lookup_child(const char *user, enum iso_ids mode, uint32_t from, unsigned n,
			     struct iso_users *u)
{
	struct uidrange_host h;
	int rc;

	u->rc = sbx_lookup_user(user, &u->uid, &u->gid);
	if (mode == ISO_IDS_NONE)
		return;
	if ((u->ids_rc = uidrange_host_read(&h, NULL, NULL, NULL)) < 0)
		return;
	if (mode == ISO_IDS_PINNED) {
		u->ids_rc = uidrange_check(&h, from, n, &u->taken);
	} else {
		rc = uidrange_find(&h, from, UIDRANGE_AUTO_LAST, n, u->cand, ISO_CANDIDATES);
		u->ids_rc = rc < 0 ? rc : 0;
		u->ncand = rc < 0 ? 0 : (unsigned)rc;
	}
	uidrange_host_free(&h);
}

static int iso_lookup(const char *user, enum iso_ids mode, uint32_t from, unsigned n,
		      struct iso_users *u)
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
		iso_lookup_child(user, mode, from, n, &r);
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

/* "[sandbox] uid_base 61000: uid 61003 (slot 3 of 8) belongs to user foo; ..." */
static void iso_taken(const char *setting, uint32_t base, unsigned nslots,
		      const struct uidrange_taken *t, char *err, size_t errlen)
{
	/* [why]: the kind of id, and what holds it (followed by t->who). */
	static const char *const what[][2] = {
	    [UIDRANGE_FREE] = {"id", "is free"},
	    [UIDRANGE_USER] = {"uid", "belongs to user "},
	    [UIDRANGE_GROUP] = {"gid", "belongs to group "},
	    [UIDRANGE_SUBUID] = {"uid", "is in /etc/subuid's range "},
	    [UIDRANGE_SUBGID] = {"gid", "is in /etc/subgid's range "},
	    [UIDRANGE_PROC_UID] = {"uid", "is the uid of process "},
	    [UIDRANGE_PROC_GID] = {"gid", "is the gid of process "},
	    [UIDRANGE_LOCKED] = {"id", "is held by another valetd on this host"},
	};
	char role[64], why[256];

	if (t->id - base < nslots)
		snprintf(role, sizeof(role), "slot %u of %u", t->id - base, nslots);
	else
		snprintf(role, sizeof(role), "the network helper's, after %u slots", nslots);
	snprintf(why, sizeof(why), "%s %u (%s) %s%s", what[t->why][0], t->id, role, what[t->why][1],
		 t->who);
	snprintf(err, errlen, "[sandbox] uid_base %s: %s; pick a range nobody uses", setting, why);
}

/* uid_base = N: the block must be free, and then it is ours. */
static int iso_ids_pinned(struct isolation *iso, const struct config *cfg,
			  const struct iso_users *u, char *err, size_t errlen)
{
	uint32_t base = (uint32_t)cfg->uid_base, held = 0;
	char setting[16];
	int rc;

	snprintf(setting, sizeof(setting), "%d", cfg->uid_base);
	if (u->ids_rc == -EBUSY) {
		iso_taken(setting, base, iso->nslots, &u->taken, err, errlen);
		return -EINVAL;
	}
	if (u->ids_rc < 0) {
		snprintf(err, errlen, "[sandbox] uid_base %s: cannot tell which ids are in use: %s",
			 setting, strerror(-u->ids_rc));
		return u->ids_rc;
	}
	rc = uidrange_lock(&iso->ids, base, iso->nslots + 1, &held);
	if (rc == -EADDRINUSE) {
		struct uidrange_taken t = {.why = UIDRANGE_LOCKED, .id = held};

		iso_taken(setting, base, iso->nslots, &t, err, errlen);
		return -EINVAL;
	}
	if (rc < 0)
		snprintf(err, errlen, "[sandbox] uid_base %s: cannot lock the ids: %s", setting,
			 strerror(-rc));
	return rc;
}

/*
 * uid_base = auto: the first free block whose locks we get. Another valetd
 * may take a block between the child's look and our lock: then the next
 * candidate, and when all were taken, the next few from the child.
 */
static int iso_ids_auto(struct isolation *iso, const struct config *cfg, struct iso_users *u,
			char *err, size_t errlen)
{
	unsigned n = iso->nslots + 1;
	uint32_t from;
	int rc;

	for (;;) {
		if (u->ids_rc < 0) {
			snprintf(err, errlen,
				 "[sandbox] uid_base auto: cannot tell which ids are in use: %s",
				 strerror(-u->ids_rc));
			return u->ids_rc;
		}
		if (u->ncand == 0) {
			snprintf(err, errlen,
				 "[sandbox] uid_base auto: no block of %u ids in %u-%u is free (a "
				 "user, group, /etc/subuid or /etc/subgid range, process or other "
				 "valetd has an id of each); set uid_base to a free range",
				 n, UIDRANGE_AUTO_FIRST, UIDRANGE_AUTO_LAST);
			return -EBUSY;
		}
		rc = uidrange_lock_first(&iso->ids, u->cand, u->ncand, n);
		if (rc >= 0)
			return 0;
		if (rc != -EADDRINUSE) {
			snprintf(err, errlen, "[sandbox] uid_base auto: cannot lock ids: %s",
				 strerror(-rc));
			return rc;
		}
		from = u->cand[u->ncand - 1] + uidrange_step(n);
		rc = iso_lookup(cfg->user, ISO_IDS_AUTO, from, n, u);
		if (rc < 0)
			u->ids_rc = rc;
	}
}

static int iso_user(struct isolation *iso, const struct config *cfg, const struct sbx_caps *caps,
		    unsigned nslots, char *err, size_t errlen)
{
	enum iso_ids mode = ISO_IDS_PINNED;
	uint32_t from = (uint32_t)cfg->uid_base;
	struct iso_users u;
	int rc;

	if (cfg->uid_base == 0) {
		mode = ISO_IDS_NONE;
	} else if (cfg->uid_base == CONFIG_AUTO) {
		mode = ISO_IDS_AUTO;
		from = UIDRANGE_AUTO_FIRST;
	}

	if (!caps->can_switch_user) {
		iso_missing(iso, "cannot switch users (not root, no CAP_SETUID/CAP_SETGID): tasks "
				 "run as valetd's user");
		return 0;
	}
	iso->nslots = nslots;
	rc = iso_lookup(cfg->user, mode, from, nslots + 1, &u);
	if (rc == 0)
		rc = u.rc;
	if (rc < 0) {
		snprintf(err, errlen, "[sandbox] user %s: %s", cfg->user,
			 rc == -ENOENT ? "no such user" : strerror(-rc));
		return rc;
	}
	if (mode == ISO_IDS_PINNED)
		rc = iso_ids_pinned(iso, cfg, &u, err, errlen);
	else if (mode == ISO_IDS_AUTO)
		rc = iso_ids_auto(iso, cfg, &u, err, errlen);
	if (rc < 0)
		return rc;
	iso->uid = u.uid;
	iso->gid = u.gid;
	iso->switch_user = true;
	if (mode != ISO_IDS_NONE) {
		iso->uid_base = iso->ids.base;
		iso->uid_auto = mode == ISO_IDS_AUTO;
		iso->net_id = iso->ids.base + nslots;
	}
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
	uidrange_unlock(&iso->ids);
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
	char how[96];

	if (iso->uid_auto)
		snprintf(how, sizeof(how), "auto: the first free block of %u in %u-%u",
			 iso->nslots + 1, UIDRANGE_AUTO_FIRST, UIDRANGE_AUTO_LAST);
	else
		snprintf(how, sizeof(how), "[sandbox] uid_base");
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
			"%suser: uid/gid %u + slot number (%s),\n"
			"%s  one per worker slot; gid %u for the network helper; no capabilities\n",
			in, (unsigned)iso->uid_base, how, in, (unsigned)iso->net_id);
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
