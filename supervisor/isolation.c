/*
 * isolation.c - deciding what isolation jobs get (see isolation.h).
 *
 * Theory of operation: each configured feature is checked against the
 * probe: namespaces need the pid, mount, ipc, uts and network probes to have
 * worked (they ran unshare in a child); cgroups need a hierarchy with the
 * memory and pids controllers we may write to (cgroup.c decides which);
 * switching users needs root or CAP_SETUID+CAP_SETGID. What is missing is
 * collected in one sentence. With allow_degraded_isolation it becomes a
 * warning and `"degraded": true` on every job; without, an error. The
 * probe cannot tell all: whether the spawner can prepare the jobs' view of
 * the files (and their network) only the spawner finds out, at its start.
 * isolation_start() treats its failure the same way: refuse, or go on
 * without namespaces. valetd --check starts the spawner too, so that it
 * says what valetd will do.
 *
 * The task users: with uid_base (a number, or auto, the default) every
 * worker slot has a uid and gid of its own, so that a job cannot signal,
 * trace or read another, nor use up its RLIMIT_NPROC (which counts per
 * user, host-wide). A block of nslots + 1 ids is reserved (uidrange.h):
 * one per slot and the network helper's. A pinned block must be free, or
 * valetd refuses to start, naming the id and why; auto takes the first
 * free block in 600000-699999.
 *
 * The lookups (getpwnam, and the host's users, groups and processes for
 * the ids) run in the daemon: the spawner is a program of its own, so
 * the NSS modules they load never reach a job child.
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

#include "config.h"
#include "config_value.h"
#include "filter.h"
#include "hidden.h"
#include "isolation.h"
#include "netpolicy.h"
#include "policy.h"
#include "probe.h"
#include "reach.h"
#include "strv.h"

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

static bool iso_namespaces_ok(const struct probe_caps *caps)
{
	static const enum probe_ns need[] = {PROBE_NS_PID, PROBE_NS_MOUNT,
						 PROBE_NS_IPC, PROBE_NS_UTS,
						 PROBE_NS_NET};

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!caps->ns[need[i]].ok)
			return false;
	return true;
}

/* How many free blocks a lookup finds at a time: the daemon takes the
 * first whose locks no other valetd holds. */
#define ISO_CANDIDATES 16

/* What uid_base asks for. */
enum iso_ids {
	ISO_IDS_NONE,	/* 0: every task as the task user */
	ISO_IDS_PINNED, /* a number */
	ISO_IDS_AUTO,	/* auto */
};

int isolation_lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t buflen = hint > 0 ? (size_t)hint : 4096;
	char *buf = NULL;
	int rc;

	if (name == NULL || name[0] == '\0' || uid == NULL || gid == NULL)
		return -EINVAL;
	for (;;) {
		char *nbuf = realloc(buf, buflen);

		if (nbuf == NULL) {
			rc = -ENOMEM;
			break;
		}
		buf = nbuf;
		rc = getpwnam_r(name, &pw, buf, buflen, &res);
		if (rc == ERANGE && buflen < (1U << 20)) {
			buflen *= 2;
			continue;
		}
		if (rc == 0 && res != NULL) {
			*uid = res->pw_uid;
			*gid = res->pw_gid;
		} else if (rc == 0 || rc == ENOENT || rc == ESRCH) {
			/* POSIX: "not found" is rc 0 with res NULL; some
			 * implementations return ENOENT/ESRCH instead. */
			rc = -ENOENT;
		} else {
			rc = -rc;
		}
		break;
	}
	free(buf);
	return rc;
}

/* The task user's lookup failed with rc: say so in err; rc. */
static int iso_user_refused(const char *user, int rc, char *err, size_t errlen)
{
	snprintf(err, errlen, "[sandbox] user %s: %s", user,
		 rc == -ENOENT ? "no such user" : strerror(-rc));
	return rc;
}

int isolation_check_user(const char *user, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	int rc = isolation_lookup_user(user, &uid, &gid);

	return rc < 0 ? iso_user_refused(user, rc, err, errlen) : 0;
}

/* What the lookups find. */
struct iso_users {
	int rc; /* isolation_lookup_user() of the task user */
	uid_t uid;
	gid_t gid;
	int ids_rc;		     /* reading the host, or a pinned block's check (-EBUSY) */
	struct uidrange_taken taken; /* a pinned block: which id is not free, and why */
	unsigned ncand;		     /* auto: free blocks (but for the locks), lowest first */
	uint32_t cand[ISO_CANDIDATES];
};

/*
 * The task user, and the ids. Pinned: whether every id of the block is
 * free (nobody's uid: a task would act as them). Auto: the first free
 * blocks from `from` on.
 */
static void iso_lookup(const char *user, enum iso_ids mode, uint32_t from, unsigned n,
		       struct iso_users *u)
{
	struct uidrange_host h;
	int rc;

	memset(u, 0, sizeof(*u));
	u->rc = isolation_lookup_user(user, &u->uid, &u->gid);
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
 * may take a block between our look and our lock: then the next
 * candidate, and when all were taken, the next few.
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
		iso_lookup(cfg->user, ISO_IDS_AUTO, from, n, u);
	}
}

static int iso_user(struct isolation *iso, const struct config *cfg, const struct probe_caps *caps,
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
	iso_lookup(cfg->user, mode, from, nslots + 1, &u);
	rc = u.rc;
	if (rc < 0)
		return iso_user_refused(cfg->user, rc, err, errlen);
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

int isolation_plan(struct isolation *iso, const struct config *cfg, const struct probe_caps *caps,
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
			rc = cgroups_setup(&iso->cg, caps, nslots, why, sizeof(why));
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
		    "%snamespaces: pid, mount, ipc and uts namespaces not the daemon's: the\n"
		    "%s  worker slot's, entered by its jobs while none leaves anything there\n"
		    "%s  (made anew after a kill, or an exec task that left a file or a\n"
		    "%s  process); new per job for exec+net tasks and exec tasks that\n"
		    "%s  create processes; the task at pid 2 or more under an init that\n"
		    "%s  takes everything along; a /proc of that pid namespace, a\n"
		    "%s  private /tmp (tmpfs, gone with the job or the slot's), the rest\n"
		    "%s  read-only, nosuid and nodev, as the host's mounts were at startup\n"
		    "%s  (later mounts never appear; later unmounts are followed); a minimal\n"
		    "%s  /dev, an empty /run, no other procfs, sysfs or kernel file system;\n"
		    "%s  the config's directory, /etc/default, the database's socket\n"
		    "%s  directory and [sandbox] hide hidden; an empty network namespace per\n"
		    "%s  worker slot (loopback only) unless the task's profile allows network\n",
		    in, in, in, in, in, in, in, in, in, in, in, in, in);
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
			"%s  one per worker slot, no capabilities; gid %u for the network helper\n",
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

/*
 * What no job may see (hidden.h): known before the spawner starts, so
 * hidden from the start; the database's socket directories follow once the
 * store knows them (main.c's send_policy). And how exec+net jobs reach the
 * network.
 */
static int iso_view_and_network(const struct config *cfg, struct isolation_prep *p, char *err,
				size_t errlen)
{
	int rc;

	if ((rc = hidden_check(cfg, err, errlen)) < 0)
		return rc;
	p->config_real = cfg->path ? realpath(cfg->path, NULL) : NULL;
	p->hide = hidden_dirs(cfg, NULL);
	if (!p->hide)
		return -ENOMEM;
	p->setup.hide = p->hide;
	p->setup.net_host = p->iso.network == ISO_NET_HOST;
	if (p->iso.network != ISO_NET_SLIRP)
		return 0;
	rc = netpolicy_rules(cfg->net_allow, cfg->net_deny, &p->net_rules, &p->setup.nrules, err,
			     errlen);
	if (rc < 0)
		return rc;
	p->setup.job_network = true;
	p->setup.net_helper = p->iso.net_helper;
	p->setup.net_gid = p->iso.uid_base ? p->iso.net_id : 0;
	p->setup.rules = p->net_rules;
	return 0;
}

/* Whether dir is path or one of its parents. */
static bool iso_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* Add the directory of an exec task's file under /tmp (jobs have their own
 * /tmp): the topmost ones only, since a kept directory is read-only. */
static int iso_keep_add(struct isolation_prep *p, const char *file)
{
	struct stat st;
	char *dir, *slash;
	struct sbx_keep *k;
	bool is_file = false;

	if (strncmp(file, "/tmp/", 5) != 0 || stat(file, &st) < 0)
		return 0;
	if (!(dir = strdup(file)))
		return -ENOMEM;
	/* A file's directory; a file right in /tmp is kept alone. */
	if (!S_ISDIR(st.st_mode)) {
		slash = strrchr(dir, '/');
		if (slash > dir + 4)
			*slash = '\0';
		else
			is_file = true;
	}
	for (int i = 0; i < p->nkeep; i++) {
		if (iso_path_under(dir, p->keep[i].path)) {
			free(dir);
			return 0;
		}
		if (iso_path_under(p->keep[i].path, dir)) { /* replaces a deeper one */
			free((char *)p->keep[i].path);
			p->keep[i--] = p->keep[--p->nkeep];
		}
	}
	k = realloc(p->keep, sizeof(*k) * (size_t)(p->nkeep + 1));
	if (!k) {
		free(dir);
		return -ENOMEM;
	}
	p->keep = k;
	if (p->nkeep >= SBX_KEEP_MAX) {
		free(dir);
		return -E2BIG;
	}
	p->keep[p->nkeep++] = (struct sbx_keep){.path = dir, .is_file = is_file};
	return 0;
}

/* The host /tmp directories jobs keep: those of exec task programs and of
 * the paths among their arguments (a script run by an interpreter). The
 * config file must not be in one (jobs must not read it). */
static int iso_keep_list(const struct config *cfg, struct isolation_prep *p, char *err,
			 size_t errlen)
{
	int rc;

	for (size_t i = 0; i < cfg->nexec_tasks; i++)
		for (char **a = cfg->exec_tasks[i].argv; a && *a; a++)
			if ((rc = iso_keep_add(p, *a)) < 0)
				return rc;
	for (int i = 0; p->config_real && i < p->nkeep; i++)
		if (iso_path_under(p->config_real, p->keep[i].path)) {
			snprintf(err, errlen,
				 "%s is in %s, which holds an exec task's program and which every "
				 "job sees: keep the config file elsewhere",
				 p->config_real, p->keep[i].path);
			return -EINVAL;
		}
	p->setup.keep = p->keep;
	p->setup.nkeep = p->nkeep;
	return 0;
}

int isolation_prepare(struct isolation_prep *p, const struct config *cfg,
		      const struct probe_caps *caps, unsigned nslots, const char *spawner,
		      bool make_cgroups, char *err, size_t errlen)
{
	enum sbx_profile failed = SBX_PROFILE_STRICT;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = filter_compile_all(p->filters, &failed);
	if (rc < 0) {
		snprintf(err, errlen, "cannot compile the seccomp profile %s: %s",
			 policy_profile_name(failed), strerror(-rc));
		return rc;
	}
	rc = isolation_plan(&p->iso, cfg, caps, nslots, make_cgroups, err, errlen);
	if (rc < 0)
		return rc;
	p->setup = (struct spawn_setup){
		.program = spawner,
		.nslots = nslots,
		.drop_user = p->iso.switch_user,
		.uid = p->iso.uid,
		.gid = p->iso.gid,
		.uid_base = p->iso.uid_base,
		.filters = p->filters,
		.namespaces = p->iso.namespaces,
		.cgslots = p->iso.cg.version ? p->iso.cg.slots : NULL,
		.plugin_dir = cfg->plugin_dir,
		.exec_tasks = cfg->exec_tasks,
		.nexec = cfg->nexec_tasks,
	};
	if (p->iso.namespaces && ((rc = iso_view_and_network(cfg, p, err, errlen)) < 0 ||
				  (rc = iso_keep_list(cfg, p, err, errlen)) < 0))
		return rc;
	if (p->iso.switch_user)
		p->unreachable = reach_check(cfg, (uid_t)isolation_uid(&p->iso, 0),
					     p->iso.uid_base ? (gid_t)p->iso.uid_base : p->iso.gid);
	return 0;
}

/*
 * The spawner could not prepare the jobs' sandbox although the probe found
 * the namespaces: what is missing is the view (or the network), named in
 * why. Jobs then go without namespaces, as on a host that has none.
 */
static void iso_without_namespaces(struct isolation_prep *p, const char *why)
{
	iso_missing(&p->iso, why);
	p->iso.namespaces = false;
	if (p->iso.network == ISO_NET_SLIRP)
		p->iso.network = ISO_NET_HOST;
	free(p->iso.net_helper);
	p->iso.net_helper = NULL;
	p->setup.namespaces = false;
	p->setup.job_network = false;
	p->setup.net_helper = NULL;
	p->setup.net_host = false;
	p->setup.keep = NULL;
	p->setup.nkeep = 0;
}

int isolation_start(struct isolation_prep *p, const struct config *cfg, pid_t *pid, int *fd,
		    char **table, char *err, size_t errlen)
{
	char why[640];
	bool sandbox;
	int rc = spawn_start(&p->setup, pid, fd, table, &sandbox, err, errlen);

	if (rc == 0 || !sandbox || !p->iso.namespaces)
		return rc;
	snprintf(why, sizeof(why), "%s", err);
	free(p->sandbox_error);
	p->sandbox_error = strdup(why);
	if (!cfg->allow_degraded_isolation) {
		snprintf(err, errlen,
			 "isolation configured in [sandbox] is not available here: %s. Refusing "
			 "to start; fix the host, or set allow_degraded_isolation = true",
			 why);
		return -EPERM;
	}
	iso_without_namespaces(p, why);
	return spawn_start(&p->setup, pid, fd, table, NULL, err, errlen);
}

void isolation_prep_release(struct isolation_prep *p)
{
	isolation_release(&p->iso);
	for (int i = 0; i < SBX_NFILTERS; i++)
		filter_release(&p->filters[i]);
	free(p->config_real);
	hidden_free(p->hide);
	free(p->net_rules);
	for (int i = 0; i < p->nkeep; i++)
		free((char *)p->keep[i].path);
	free(p->keep);
	free(p->sandbox_error);
	strv_free(p->unreachable);
	memset(p, 0, sizeof(*p));
}
