/*
 * probe.c - what isolation this host offers (see probe.h).
 *
 * Theory of operation: probe_run() asks the kernel, item by item, and
 * records each answer as "worked" or the errno that said no; nothing is
 * inferred from kernel versions. Three kinds of probe:
 *
 *   - read-only: /proc/self/{status,cgroup,mountinfo}, sysctls, statfs of
 *     /sys/fs/cgroup, prctl(PR_GET_*), seccomp(SECCOMP_GET_ACTION_AVAIL)
 *     and seccomp(SECCOMP_GET_NOTIF_SIZES), statx of "/" (a mount point,
 *     or a chroot's directory) - in this process;
 *   - state-changing: unshare(), PR_SET_NO_NEW_PRIVS, loading an allow-all
 *     seccomp filter with or without a flag - each in a forked child that
 *     reports the errno as its exit status (a signal is reported as such);
 *   - the cgroup write test: mkdir of an empty child cgroup named
 *     PROBE_CG_PREFIX<pid>-<n> in our own cgroup (v2, and each v1
 *     hierarchy valet would use), a look at the files it got (cgroup.kill,
 *     memory.peak), and rmdir at once. That is exactly what a per-job
 *     cgroup needs, so "writable" means "delegated to us", however it came
 *     about (root, Delegate=yes, a chown).
 *
 * Where our cgroup is: /proc/self/cgroup names it per hierarchy ("0::/x"
 * for v2, "4:memory:/x" for v1), /proc/self/mountinfo says where each
 * hierarchy is mounted and which part of it (the mount's root, when a
 * container bind-mounts a subtree). The layout comes from statfs() of
 * /sys/fs/cgroup: cgroup2 there is the unified layout; a tmpfs with v1
 * hierarchies is the legacy or, with a cgroup2 mount beside them
 * (/sys/fs/cgroup/unified), the hybrid layout.
 *
 * Parent side only: stdio and malloc are fine here, and so is printing.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../sandbox/spawn_proto.h"
#include "probe.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
/* Newer than some kernel headers; the values are ABI. */
#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif
#ifndef SECCOMP_GET_NOTIF_SIZES
#define SECCOMP_GET_NOTIF_SIZES 3
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef SECCOMP_RET_LOG
#define SECCOMP_RET_LOG 0x7ffc0000U
#endif
#ifndef SECCOMP_FILTER_FLAG_LOG
#define SECCOMP_FILTER_FLAG_LOG (1UL << 1)
#endif
#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif

#define PROBE_CG_ROOT "/sys/fs/cgroup"

/* As in sbx_child.c: ASan builds set no RLIMIT_AS. */
#if defined(__SANITIZE_ADDRESS__)
#define PROBE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PROBE_ASAN 1
#endif
#endif

/* Capability bits (linux/capability.h), for the report. */
#define PROBE_CAP_KILL 5
#define PROBE_CAP_SETGID 6
#define PROBE_CAP_SETUID 7
#define PROBE_CAP_SYS_ADMIN 21

static const struct {
	const char *name;
	int flag;
} probe_ns_table[PROBE_NS_COUNT] = {
    {"user", CLONE_NEWUSER},	 {"pid", CLONE_NEWPID}, {"mount", CLONE_NEWNS},
    {"network", CLONE_NEWNET},	 {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
    {"cgroup", CLONE_NEWCGROUP},
};

static const char *const probe_cg1_names[PROBE_CG1_COUNT] = {
    "memory",
    "pids",
    "freezer",
    "cpu",
};

static const struct {
	const char *name;
	uint32_t action;
} probe_actions[PROBE_ACT_COUNT] = {
    {"kill_process", SECCOMP_RET_KILL_PROCESS},
    {"trap", SECCOMP_RET_TRAP},
    {"errno", SECCOMP_RET_ERRNO},
    {"user_notif", SECCOMP_RET_USER_NOTIF},
    {"log", SECCOMP_RET_LOG},
};

static const struct {
	const char *name;
	unsigned long flag;
} probe_flags[PROBE_FLAG_COUNT] = {
    {"tsync", SECCOMP_FILTER_FLAG_TSYNC},
    {"log", SECCOMP_FILTER_FLAG_LOG},
    {"spec_allow", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
};

/* The errnos these probes meet; others print as a number. */
static const struct {
	int err;
	const char *name;
} probe_errnos[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {ECHILD, "ECHILD"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {ENOTDIR, "ENOTDIR"},
    {EINVAL, "EINVAL"},
    {ENOSPC, "ENOSPC"},
    {EROFS, "EROFS"},
    {ENOSYS, "ENOSYS"},
    {EUSERS, "EUSERS"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
};

void probe_result_str(const struct probe_result *r, char *out, size_t outlen)
{
	size_t i;

	if (out == NULL || outlen == 0)
		return;
	if (r->ok) {
		snprintf(out, outlen, "yes");
		return;
	}
	if (r->sig) {
		snprintf(out, outlen, "no (killed by signal %d)", r->sig);
		return;
	}
	for (i = 0; i < sizeof(probe_errnos) / sizeof(probe_errnos[0]); i++) {
		if (probe_errnos[i].err == r->err) {
			snprintf(out, outlen, "no (%s)", probe_errnos[i].name);
			return;
		}
	}
	snprintf(out, outlen, "no (errno %d)", r->err);
}

/* --- probes in a forked child ------------------------------------------- */

/* Runs in the child; returns 0 or an errno. Async-signal-safe only. */
typedef int (*probe_fn)(unsigned long arg);

static struct probe_result probe_in_child(probe_fn fn, unsigned long arg)
{
	struct probe_result r = {false, 0, 0};
	int status, e;
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		r.err = errno;
		return r;
	}
	if (pid == 0) {
		e = fn(arg);
		_exit(e >= 0 && e < 256 ? e : 255);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			r.err = errno;
			return r;
		}
	}
	if (WIFSIGNALED(status))
		r.sig = WTERMSIG(status);
	else
		r.err = WEXITSTATUS(status);
	r.ok = r.sig == 0 && r.err == 0;
	return r;
}

static int probe_unshare(unsigned long flag)
{
	return unshare((int)flag) == 0 ? 0 : errno;
}

static int probe_set_nnp(unsigned long unused)
{
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno;
}

/* Load an allow-all filter with these flags, as sbx_enter() would. */
static int probe_load_filter(unsigned long flags)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = 1, .filter = &allow};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return errno;
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0 ? 0 : errno;
}

/* --- small file helpers -------------------------------------------------- */

/* Read a small file into buf, NUL-terminated, trailing newline removed. */
static int probe_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static long probe_sysctl(const char *path)
{
	char buf[32];

	if (probe_read(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

static bool probe_exists(const char *dir, const char *name)
{
	char path[PROBE_PATH + 64];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);

	return n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void probe_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Whether name is one of the comma-separated words of list. */
static bool probe_in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

static void probe_copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
}

/* --- cgroups ------------------------------------------------------------- */

/* /proc/self/cgroup: our path in the v2 hierarchy and in each v1 one. */
static void probe_cg_paths(struct probe_caps *c, FILE *f)
{
	char *line = NULL, *ctrls, *path;
	size_t cap = 0;
	ssize_t n;
	int i;

	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		ctrls = strchr(line, ':');
		path = ctrls ? strchr(ctrls + 1, ':') : NULL;
		if (path == NULL)
			continue;
		*ctrls++ = '\0';
		*path++ = '\0';
		if (strcmp(line, "0") == 0 && ctrls[0] == '\0') {
			probe_copy(c->cg2.cg.path, sizeof(c->cg2.cg.path), path);
			continue;
		}
		for (i = 0; i < PROBE_CG1_COUNT; i++)
			if (probe_in_list(ctrls, probe_cg1_names[i]))
				probe_copy(c->cg1[i].path, sizeof(c->cg1[i].path), path);
	}
	free(line);
}

/*
 * Our cgroup's directory: the mount point, plus our path below the part of
 * the hierarchy that is mounted there (its root). Leaves found false when
 * our cgroup is outside that part.
 */
static void probe_cg_dir(struct probe_cgroup *cg, const char *mount, const char *root)
{
	const char *rel = cg->path;
	size_t rlen = strlen(root);
	int n;

	if (cg->path[0] != '/' || cg->found)
		return;
	if (strcmp(root, "/") != 0) {
		if (strncmp(rel, root, rlen) != 0 || (rel[rlen] != '/' && rel[rlen] != '\0'))
			return;
		rel += rlen;
	}
	if (strcmp(rel, "/") == 0)
		rel = "";
	probe_copy(cg->mount, sizeof(cg->mount), mount);
	n = snprintf(cg->dir, sizeof(cg->dir), "%s%s", mount, rel);
	if (n < 0 || (size_t)n >= sizeof(cg->dir))
		return;
	cg->found = true;
}

/* One mountinfo line: "id parent maj:min root mountpoint opts [opt...] - fstype src superopts". */
static void probe_mount_line(struct probe_caps *c, char *line)
{
	char *tok[64], *save = NULL, *t;
	int n = 0, dash = -1, i;

	for (t = strtok_r(line, " \n", &save); t && n < 64; t = strtok_r(NULL, " \n", &save)) {
		if (dash < 0 && n >= 6 && strcmp(t, "-") == 0)
			dash = n;
		tok[n++] = t;
	}
	if (dash < 0 || dash + 3 >= n)
		return;
	probe_unescape(tok[3]);
	probe_unescape(tok[4]);
	if (strcmp(tok[dash + 1], "cgroup2") == 0) {
		/* Mounted more than once: the first, unless one is in the usual place. */
		if (c->cg2.cg.found && strcmp(tok[4], PROBE_CG_ROOT) == 0) {
			struct probe_cgroup usual = c->cg2.cg;

			usual.found = false;
			probe_cg_dir(&usual, tok[4], tok[3]);
			if (usual.found)
				c->cg2.cg = usual;
		}
		probe_cg_dir(&c->cg2.cg, tok[4], tok[3]);
		if (c->cg2.cg.found && strcmp(c->cg2.cg.mount, tok[4]) == 0)
			c->cg2.favordynmods = probe_in_list(tok[dash + 3], "favordynmods");
	} else if (strcmp(tok[dash + 1], "cgroup") == 0) {
		for (i = 0; i < PROBE_CG1_COUNT; i++)
			if (probe_in_list(tok[dash + 3], probe_cg1_names[i]))
				probe_cg_dir(&c->cg1[i], tok[4], tok[3]);
	}
}

void probe_cg_locate(struct probe_caps *c, FILE *proc_cgroup, FILE *mountinfo)
{
	char *line = NULL;
	size_t cap = 0;

	if (proc_cgroup)
		probe_cg_paths(c, proc_cgroup);
	while (mountinfo && getline(&line, &cap, mountinfo) > 0)
		probe_mount_line(c, line);
	free(line);
}

/*
 * The write test: create an empty child cgroup and remove it again. If
 * kill/peak are given, note whether the child got cgroup.kill and
 * memory.peak (a root cgroup has neither file, its children may).
 */
static struct probe_result probe_cg_mkdir(const char *dir, bool *kill, bool *peak)
{
	static unsigned seq;
	struct probe_result r = {false, 0, 0};
	char child[PROBE_PATH + 64];
	int n, tries;

	n = snprintf(child, sizeof(child), "%s/" PROBE_CG_PREFIX "%ld-%u", dir, (long)getpid(),
		     seq++);
	if (n < 0 || (size_t)n >= sizeof(child)) {
		r.err = ENAMETOOLONG;
		return r;
	}
	if (mkdir(child, 0755) < 0) {
		r.err = errno;
		return r;
	}
	if (kill && !*kill)
		*kill = probe_exists(child, "cgroup.kill");
	if (peak && !*peak)
		*peak = probe_exists(child, "memory.peak");
	/* An empty cgroup goes at once; EBUSY only while the kernel is
	 * still tearing down something that briefly lived in it. */
	for (tries = 0; rmdir(child) < 0; tries++) {
		if (errno != EBUSY || tries == 50) {
			r.err = errno;
			return r;
		}
		usleep(1000);
	}
	r.ok = true;
	return r;
}

static void probe_cgroups(struct probe_caps *c)
{
	FILE *cgf = fopen("/proc/self/cgroup", "re");
	FILE *mif = fopen("/proc/self/mountinfo", "re");
	char file[PROBE_PATH + 64];
	struct statfs sfs;
	bool any_v1 = false;
	int i;

	if (statfs(PROBE_CG_ROOT, &sfs) == 0)
		c->cg_fs_magic = (unsigned long)sfs.f_type;
	if (cgf && mif)
		probe_cg_locate(c, cgf, mif);
	if (cgf)
		fclose(cgf);
	if (mif)
		fclose(mif);
	if (c->cg2.cg.found) {
		const char *d = c->cg2.cg.dir;

		snprintf(file, sizeof(file), "%s/cgroup.controllers", d);
		probe_read(file, c->cg2.controllers, sizeof(c->cg2.controllers));
		snprintf(file, sizeof(file), "%s/cgroup.subtree_control", d);
		probe_read(file, c->cg2.subtree, sizeof(c->cg2.subtree));
		c->cg2.kill = probe_exists(d, "cgroup.kill");
		c->cg2.memory_peak = probe_exists(d, "memory.peak");
		c->cg2.cg.writable = probe_cg_mkdir(d, &c->cg2.kill, &c->cg2.memory_peak);
	}
	for (i = 0; i < PROBE_CG1_COUNT; i++) {
		if (!c->cg1[i].found)
			continue;
		any_v1 = true;
		c->cg1[i].writable = probe_cg_mkdir(c->cg1[i].dir, NULL, NULL);
	}
	if (c->cg_fs_magic == CGROUP2_SUPER_MAGIC)
		c->cg_layout = PROBE_CG_UNIFIED;
	else if (any_v1)
		c->cg_layout = c->cg2.cg.found ? PROBE_CG_HYBRID : PROBE_CG_LEGACY;
	else if (c->cg2.cg.found)
		c->cg_layout = PROBE_CG_UNIFIED; /* cgroup2 mounted elsewhere only */
	else
		c->cg_layout = PROBE_CG_NONE;
}

/* --- seccomp and privileges ---------------------------------------------- */

static void probe_seccomp(struct probe_caps *c)
{
	struct {
		uint16_t notif, resp, data;
	} sizes;
	int i, mode;

	mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
	c->seccomp_mode = mode < 0 ? -errno : mode;
	c->seccomp_filter = probe_in_child(probe_load_filter, 0);
	for (i = 0; i < PROBE_ACT_COUNT; i++) {
		uint32_t action = probe_actions[i].action;

		c->action[i].ok = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
		c->action[i].err = c->action[i].ok ? 0 : errno;
	}
	for (i = 0; i < PROBE_FLAG_COUNT; i++)
		c->flag[i] = probe_in_child(probe_load_filter, probe_flags[i].flag);
	c->notif_sizes.ok = syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) == 0;
	c->notif_sizes.err = c->notif_sizes.ok ? 0 : errno;
}

static void probe_privileges(struct probe_caps *c)
{
	FILE *f = fopen("/proc/self/status", "re");
	char *line = NULL;
	size_t cap = 0;

	c->uid = getuid();
	c->euid = geteuid();
	c->gid = getgid();
	c->egid = getegid();
	c->no_new_privs_now = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	c->no_new_privs = probe_in_child(probe_set_nnp, 0);
	c->can_switch_user = probe_can_switch_user();
	if (f == NULL)
		return;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "CapEff:", 7) == 0) {
			c->cap_eff = strtoull(line + 7, NULL, 16);
			c->cap_known = true;
		}
	}
	free(line);
	fclose(f);
}

static int probe_root_mount(void)
{
	struct statx stx;

	if (statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &stx) < 0 ||
	    !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return -1;
	return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

int probe_run(struct probe_caps *c)
{
	int i;

	if (c == NULL)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	for (i = 0; i < PROBE_NS_COUNT; i++)
		c->ns[i] = probe_in_child(probe_unshare,
					      (unsigned long)probe_ns_table[i].flag);
	c->max_user_namespaces = probe_sysctl("/proc/sys/user/max_user_namespaces");
	c->unprivileged_userns_clone =
	    probe_sysctl("/proc/sys/kernel/unprivileged_userns_clone");
	c->apparmor_restrict_userns =
	    probe_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
	probe_cgroups(c);
	probe_seccomp(c);
	probe_privileges(c);
	c->root_mount = probe_root_mount();
	return 0;
}

/* --- the report ---------------------------------------------------------- */

static const char *probe_str(const struct probe_result *r, char *buf, size_t len)
{
	probe_result_str(r, buf, len);
	return buf;
}

static void probe_print_ns(const struct probe_caps *c, FILE *out)
{
	char b[64];
	int i;

	fprintf(out, "namespaces (unshare in a child process):\n");
	for (i = 0; i < PROBE_NS_COUNT; i++)
		fprintf(out, "  %-8s %s\n", probe_ns_table[i].name,
			probe_str(&c->ns[i], b, sizeof(b)));
	if (c->max_user_namespaces >= 0)
		fprintf(out, "  user.max_user_namespaces = %ld\n", c->max_user_namespaces);
	if (c->unprivileged_userns_clone >= 0)
		fprintf(out, "  kernel.unprivileged_userns_clone = %ld\n",
			c->unprivileged_userns_clone);
	if (c->apparmor_restrict_userns >= 0)
		fprintf(out, "  kernel.apparmor_restrict_unprivileged_userns = %ld\n",
			c->apparmor_restrict_userns);
}

static const char *probe_fs_name(unsigned long magic)
{
	switch (magic) {
	case 0:
		return "not mounted";
	case CGROUP2_SUPER_MAGIC:
		return "cgroup2";
	case CGROUP_SUPER_MAGIC:
		return "cgroup (v1)";
	case TMPFS_MAGIC:
		return "tmpfs";
	default:
		return "another file system";
	}
}

static void probe_print_cgroups(const struct probe_caps *c, FILE *out)
{
	static const char *const layouts[] = {
	    [PROBE_CG_NONE] = "no cgroup hierarchy found",
	    [PROBE_CG_UNIFIED] = "unified layout (cgroup v2 only)",
	    [PROBE_CG_HYBRID] = "hybrid layout (cgroup v1 controllers, cgroup v2 beside them)",
	    [PROBE_CG_LEGACY] = "legacy layout (cgroup v1 only)",
	};
	char b[64];
	int i;

	fprintf(out, "cgroups:\n  " PROBE_CG_ROOT ": %s - %s\n",
		probe_fs_name(c->cg_fs_magic), layouts[c->cg_layout]);
	if (c->cg2.cg.found) {
		fprintf(out, "  v2 %s (our cgroup %s)\n", c->cg2.cg.dir, c->cg2.cg.path);
		fprintf(out, "     create a child cgroup: %s\n",
			probe_str(&c->cg2.cg.writable, b, sizeof(b)));
		fprintf(out, "     controllers: %s; enabled for children: %s\n",
			c->cg2.controllers[0] ? c->cg2.controllers : "none",
			c->cg2.subtree[0] ? c->cg2.subtree : "none");
		/* The root cgroup has neither file: without a child to look at, we
		 * cannot tell. */
		if (strcmp(c->cg2.cg.path, "/") == 0 && !c->cg2.cg.writable.ok)
			fprintf(out, "     cgroup.kill, memory.peak: unknown (none in the root "
				     "cgroup, and no child cgroup to look at)\n");
		else
			fprintf(out, "     cgroup.kill: %s; memory.peak: %s\n",
				c->cg2.kill ? "yes" : "no", c->cg2.memory_peak ? "yes" : "no");
		fprintf(out, "     favordynmods: %s\n", c->cg2.favordynmods ? "yes" : "no");
		/* Jobs join cgroup2 for its limits: each join may wait (cgroup.h). */
		if (!c->cg2.favordynmods && strstr(c->cg2.controllers, "memory"))
			fprintf(out,
				"       (without it a job's move into its cgroup waits now and "
				"then for an RCU grace period, up to ~14 ms; mount cgroup2 "
				"with favordynmods: README, Install from packages)\n");
	} else {
		fprintf(out, "  v2 not mounted (or our cgroup is outside the mount)\n");
	}
	fprintf(out, "  v1 (create a child cgroup in ours):\n");
	for (i = 0; i < PROBE_CG1_COUNT; i++) {
		if (c->cg1[i].found)
			fprintf(out, "    %-8s %-13s %s\n", probe_cg1_names[i],
				probe_str(&c->cg1[i].writable, b, sizeof(b)), c->cg1[i].dir);
		else
			fprintf(out, "    %-8s not mounted\n", probe_cg1_names[i]);
	}
}

static void probe_print_seccomp(const struct probe_caps *c, FILE *out)
{
	static const char *const modes[] = {"no filter", "strict mode", "already filtered"};
	char b[64];
	int i;

	fprintf(out, "seccomp:\n");
	if (c->seccomp_mode >= 0 && c->seccomp_mode <= 2)
		fprintf(out, "  this process: %s\n", modes[c->seccomp_mode]);
	else
		fprintf(out, "  this process: PR_GET_SECCOMP failed (%s)\n",
			probe_str(&(struct probe_result){false, -c->seccomp_mode, 0}, b,
				      sizeof(b)));
	fprintf(out, "  load a filter (in a child): %s\n",
		probe_str(&c->seccomp_filter, b, sizeof(b)));
	fprintf(out, "  actions:");
	for (i = 0; i < PROBE_ACT_COUNT; i++)
		fprintf(out, "%s %s %s", i ? "," : "", probe_actions[i].name,
			probe_str(&c->action[i], b, sizeof(b)));
	fprintf(out, "\n  filter flags:");
	for (i = 0; i < PROBE_FLAG_COUNT; i++)
		fprintf(out, "%s %s %s", i ? "," : "", probe_flags[i].name,
			probe_str(&c->flag[i], b, sizeof(b)));
	fprintf(out, "\n  user notification (SECCOMP_GET_NOTIF_SIZES): %s\n",
		probe_str(&c->notif_sizes, b, sizeof(b)));
}

static const char *probe_yn(const struct probe_caps *c, int bit)
{
	return (c->cap_eff >> bit) & 1 ? "yes" : "no";
}

static void probe_print_privileges(const struct probe_caps *c, FILE *out)
{
	char b[64];

	fprintf(out, "privileges:\n  uid %u, euid %u, gid %u, egid %u\n", (unsigned)c->uid,
		(unsigned)c->euid, (unsigned)c->gid, (unsigned)c->egid);
	if (c->cap_known)
		fprintf(out,
			"  CapEff %016llx: CAP_SYS_ADMIN %s, CAP_SETUID %s, CAP_SETGID %s, "
			"CAP_KILL %s\n",
			(unsigned long long)c->cap_eff, probe_yn(c, PROBE_CAP_SYS_ADMIN),
			probe_yn(c, PROBE_CAP_SETUID), probe_yn(c, PROBE_CAP_SETGID),
			probe_yn(c, PROBE_CAP_KILL));
	else
		fprintf(out, "  CapEff: unknown (/proc/self/status unreadable)\n");
	fprintf(out, "  no_new_privs: can set (in a child): %s; set on this process: %s\n",
		probe_str(&c->no_new_privs, b, sizeof(b)),
		c->no_new_privs_now == 1 ? "yes" : "no");
	fprintf(out, "  can switch users: %s\n", c->can_switch_user ? "yes" : "no");
}

/* "256 MiB", or the number of bytes when that is not a whole KiB/MiB/GiB. */
static void probe_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = {"GiB", "MiB", "KiB"};
	int i;

	for (i = 0; i < 3; i++) {
		uint64_t unit = 1ULL << (10 * (3 - i));

		if (bytes >= unit && bytes % unit == 0) {
			snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / unit), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
}

/* Keep in step with sbx_rlimits() in sbx_child.c: which 0 means what. */
void probe_print_limits(const struct sbx_limits *l, const char *indent, FILE *out)
{
	char as[32] = "unlimited", fsize[32] = "unlimited";

	if (l->memory_bytes)
		probe_size(as, sizeof(as), l->memory_bytes);
#ifdef PROBE_ASAN
	snprintf(as, sizeof(as), "not set (ASan build)");
#endif
	if (l->max_file_size)
		probe_size(fsize, sizeof(fsize), l->max_file_size);
	fprintf(out, "%score 0, address space %s, CPU time ", indent, as);
	if (l->cpu_seconds)
		fprintf(out, "%llu s (SIGXCPU; SIGKILL 1 s later)", (unsigned long long)l->cpu_seconds);
	else
		fprintf(out, "unlimited");
	if (l->max_files)
		fprintf(out, ",\n%sopen files %llu", indent, (unsigned long long)l->max_files);
	else
		fprintf(out, ",\n%sopen files inherited", indent);
	if (l->max_processes)
		fprintf(out, ", processes %llu (per user)", (unsigned long long)l->max_processes);
	else
		fprintf(out, ", processes inherited");
	fprintf(out, ", file size %s\n", fsize);
}

void probe_print(const struct probe_caps *c, FILE *out)
{
	if (c == NULL || out == NULL)
		return;
	probe_print_ns(c, out);
	probe_print_cgroups(c, out);
	probe_print_seccomp(c, out);
	probe_print_privileges(c, out);
}

bool probe_can_switch_user(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (geteuid() == 0)
		return true;
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return (data[0].effective & (1u << CAP_SETUID)) && (data[0].effective & (1u << CAP_SETGID));
}
