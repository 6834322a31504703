/*
 * sbx_view.c - the file system and network view every job starts from,
 * prepared once in the spawner, which then forks every job from it.
 *
 * Theory of operation: the spawner leaves the daemon's mount (and network)
 * namespace for its own, once, at startup, and turns its mount tree into
 * what a job may see (in a chroot, whose "/" is no mount point, it first
 * makes itself a root that is one: sbx_mounts_private()):
 *   1. every mount becomes private: nothing the host mounts later ever
 *      reaches a job, and nothing done here goes back. (The host's unmounts
 *      are followed by hand, see sbx_mounts.c, so that the view does not
 *      keep the host's file systems busy.);
 *   2. a small private tmpfs on /tmp is the workshop: an empty directory to
 *      lay over what jobs must not see, the directories of the host's /tmp
 *      that hold exec task programs, what the network helper needs (a
 *      /dev/net/tun node, the jobs' resolv.conf) and a minimal /dev (null
 *      zero full random urandom tty: bind mounts of the host's nodes; fd,
 *      stdin, stdout, stderr links; shm -> /tmp) that is then moved onto
 *      /dev. Every job mounts its own /tmp over the workshop;
 *   3. /run, where the host keeps its sockets (D-Bus, the database, ...),
 *      becomes an empty tmpfs holding only the resolv.conf of hosts whose
 *      /etc/resolv.conf points into it;
 *   4. every other mount of a kernel file system (a second procfs, sysfs,
 *      cgroupfs, debugfs, ...) goes; the host's /proc stays for the spawner
 *      (each job mounts its own over it);
 *   5. hidden directories (the daemon's configuration directory, the
 *      database's socket directory, /etc/default, ...) get the empty
 *      directory bound over them - a directory, not a file: replacing a
 *      file by rename, as editors do, would detach a mount laid over it;
 *   6. the whole tree becomes read-only, nosuid and nodev (/dev keeps dev):
 *      one recursive mount_setattr() (Linux 5.12), else a remount per mount;
 *   7. network: a new, empty network namespace with loopback up for the
 *      spawner itself (the jobs get one per worker slot, sbx_netns_new());
 *      the host's one stays open for the network helper (sbx_net.c). Also
 *      here: a worker slot's IPC namespace for its exec tasks
 *      (sbx_ipcns_new()), made the same way, once.
 * Before anything is laid over a path, every mount below it is taken out of
 * the view: a covered mount can no longer be named, so the host's unmount
 * of it could not be followed.
 * Each job then gets PID, mount, IPC and UTS namespaces that are not the
 * spawner's (a new mount namespace is a copy of this tree) and its own
 * /proc and /tmp on top (sbx_init.c).
 *
 * Runs in the spawner, single-threaded: stdio and malloc are fine here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"
#include "sbx_mounts.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct sbx_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

#define SBX_EMPTY_DIR SBX_WORKSHOP "/.empty-dir"
#define SBX_NEW_DEV SBX_WORKSHOP "/.dev"

struct sbx_view {
	int host_mountinfo;    /* the host's mount table (its namespace's), polled */
	struct sbx_mounts host; /* as last read */
	char **hidden;	       /* directories with the empty directory over them */
	size_t nhidden;
	struct stat empty;     /* the empty directory, to tell a hidden path */
	int host_netns;	       /* the host's network namespace; -1 = not left */
	uint64_t generation;   /* bumped at each change (sbx_view_generation) */
};

static const char *const sbx_dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

static const struct {
	const char *name, *target;
} sbx_dev_links[] = {
    {"fd", "/proc/self/fd"},
    {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"},
    {"shm", "/tmp"},
};

static int sbx_bind(const char *src, const char *dst, const char *step, struct sbx_error *err)
{
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return sbx_error_set(err, step, errno);
	return 0;
}

/* An empty file to bind a file over (mode 0444). */
static int sbx_touch(const char *path, struct sbx_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);

	if (fd < 0)
		return sbx_error_set(err, "view file", errno);
	close(fd);
	return 0;
}

/* Bind the file behind an O_PATH fd onto dst. */
static int sbx_bind_fd(int fd, const char *dst, const char *step, struct sbx_error *err)
{
	char src[48];

	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	return sbx_bind(src, dst, step, err);
}

/* A minimal /dev, built in the workshop and moved over the host's. */
static int sbx_view_dev(struct sbx_error *err)
{
	char path[64];
	size_t i;

	if (mkdir(SBX_NEW_DEV, 0755) < 0 ||
	    mount("tmpfs", SBX_NEW_DEV, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
		return sbx_error_set(err, "view /dev", errno);
	for (i = 0; i < sizeof(sbx_dev_nodes) / sizeof(sbx_dev_nodes[0]); i++) {
		char host[32];

		snprintf(host, sizeof(host), "/dev/%s", sbx_dev_nodes[i]);
		snprintf(path, sizeof(path), SBX_NEW_DEV "/%s", sbx_dev_nodes[i]);
		if (access(host, F_OK) < 0)
			continue;
		if (sbx_touch(path, err) < 0 || sbx_bind(host, path, "view /dev bind", err) < 0)
			return sbx_failed(err);
	}
	for (i = 0; i < sizeof(sbx_dev_links) / sizeof(sbx_dev_links[0]); i++) {
		snprintf(path, sizeof(path), SBX_NEW_DEV "/%s", sbx_dev_links[i].name);
		if (symlink(sbx_dev_links[i].target, path) < 0)
			return sbx_error_set(err, "view /dev link", errno);
	}
	/* The host's /dev (devtmpfs, devpts, mqueue, ...) goes; the nodes bound
	 * above are mounts of their own and stay. */
	if (sbx_mounts_detach_under("/dev", false) < 0 ||
	    mount(SBX_NEW_DEV, "/dev", NULL, MS_MOVE, NULL) < 0)
		return sbx_error_set(err, "view /dev move", errno);
	return 0;
}

/* mkdir -p of path's parent directories (in a fresh tmpfs). */
static int sbx_mkparents(const char *path, struct sbx_error *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return sbx_error_set(err, "view mkdir", ENAMETOOLONG);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return sbx_error_set(err, "view mkdir", errno);
		buf[i] = '/';
	}
	return 0;
}

/*
 * /run: an empty tmpfs instead of the host's sockets and runtime state. On
 * hosts whose /etc/resolv.conf is a link into /run (systemd-resolved), that
 * one file is bound back, so that names still resolve.
 */
static int sbx_view_run(struct sbx_error *err)
{
	char resolv[PATH_MAX];
	struct stat st;
	int fd = -1, rc = 0;

	if (stat("/run", &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	if (realpath("/etc/resolv.conf", resolv) && sbx_path_under(resolv, "/run") &&
	    (fd = open(resolv, O_PATH | O_CLOEXEC)) < 0)
		return sbx_error_set(err, "view resolv.conf", errno);
	if (sbx_mounts_detach_under("/run", false) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=64k") < 0) {
		rc = sbx_error_set(err, "view /run", errno);
		goto out;
	}
	if (fd >= 0 && (sbx_mkparents(resolv, err) < 0 || sbx_touch(resolv, err) < 0 ||
			sbx_bind_fd(fd, resolv, "view resolv.conf", err) < 0))
		rc = -1;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Read-only, nosuid, noexec, nodev: for a mount made after the view. */
static int sbx_harden(const char *path, struct sbx_error *err)
{
	struct sbx_mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						  MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};

	if (syscall(SYS_mount_setattr, AT_FDCWD, path, 0, &attr, sizeof(attr)) == 0)
		return 0;
	if (errno == ENOSYS &&
	    mount(NULL, path, NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
		return 0;
	return sbx_error_set(err, "view harden", errno);
}

static bool sbx_view_is_hidden(const struct sbx_view *v, const char *dir)
{
	struct stat st;

	return stat(dir, &st) == 0 && st.st_dev == v->empty.st_dev &&
	       st.st_ino == v->empty.st_ino;
}

/* Lay the empty directory over dir (when it exists and is not covered yet). */
static int sbx_view_cover(struct sbx_view *v, const char *dir, struct sbx_error *err)
{
	struct stat st;
	int rc;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || sbx_view_is_hidden(v, dir))
		return 0;
	if ((rc = sbx_mounts_detach_under(dir, false)) < 0)
		return sbx_error_set(err, "view hide", -rc);
	v->generation++;
	if (sbx_bind(SBX_EMPTY_DIR, dir, "view hide", err) < 0)
		return sbx_failed(err);
	return sbx_harden(dir, err);
}

int sbx_view_hide(struct sbx_view *v, const char *dir, struct sbx_error *err)
{
	char **h;
	char *copy;

	if (dir[0] != '/' || !strcmp(dir, "/"))
		return sbx_error_set(err, "view hide", EINVAL);
	/* Every job has a /tmp of its own over the workshop. */
	if (sbx_path_under(dir, SBX_WORKSHOP))
		return 0;
	for (size_t i = 0; i < v->nhidden; i++)
		if (!strcmp(v->hidden[i], dir))
			return sbx_view_cover(v, dir, err);
	copy = strdup(dir);
	h = realloc(v->hidden, (v->nhidden + 1) * sizeof(*h));
	if (!copy || !h) {
		free(copy);
		if (h)
			v->hidden = h;
		return sbx_error_set(err, "view hide", ENOMEM);
	}
	v->hidden = h;
	v->hidden[v->nhidden++] = copy;
	return sbx_view_cover(v, dir, err);
}

int sbx_view_recheck(struct sbx_view *v, struct sbx_error *err)
{
	int n = 0;

	for (size_t i = 0; i < v->nhidden; i++) {
		if (sbx_view_is_hidden(v, v->hidden[i]))
			continue;
		if (sbx_view_cover(v, v->hidden[i], err) < 0)
			return sbx_failed(err);
		n += sbx_view_is_hidden(v, v->hidden[i]);
	}
	return n;
}

/* Kernels before 5.12: remount each mount, keeping its flags. */
static int sbx_view_readonly_each(struct sbx_error *err)
{
	static const struct {
		unsigned long st, ms;
	} keep[] = {{ST_NOEXEC, MS_NOEXEC},
		    {ST_NOATIME, MS_NOATIME},
		    {ST_NODIRATIME, MS_NODIRATIME},
		    {ST_RELATIME, MS_RELATIME}};
	struct sbx_mounts t;
	int rc = sbx_mounts_self(&t);

	if (rc < 0)
		return sbx_error_set(err, "view read-only", -rc);
	for (size_t i = 0; i < t.n; i++) {
		const char *mp = t.m[i].point;
		unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID;
		struct statvfs sv;

		if (statvfs(mp, &sv) < 0)
			continue; /* hidden under another mount */
		for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
			if (sv.f_flag & keep[k].st)
				flags |= keep[k].ms;
		if (!sbx_path_under(mp, "/dev"))
			flags |= MS_NODEV;
		if (mount(NULL, mp, NULL, flags, NULL) < 0 && errno != EINVAL && errno != ENOENT) {
			rc = sbx_error_set(err, "view read-only", errno);
			break;
		}
	}
	sbx_mounts_free(&t);
	return rc < 0 ? -1 : 0;
}

static int sbx_view_readonly(struct sbx_error *err)
{
	struct sbx_mount_attr all = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						 MOUNT_ATTR_NODEV};
	struct sbx_mount_attr dev = {.attr_clr = MOUNT_ATTR_NODEV};

	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &all, sizeof(all)) == 0) {
		/* The minimal /dev is all device nodes. */
		if (syscall(SYS_mount_setattr, AT_FDCWD, "/dev", AT_RECURSIVE, &dev, sizeof(dev)) <
		    0)
			return sbx_error_set(err, "view /dev dev", errno);
		return 0;
	}
	if (errno != ENOSYS)
		return sbx_error_set(err, "view read-only", errno);
	return sbx_view_readonly_each(err);
}

/* Into a new network namespace whose loopback is up. */
static int sbx_netns_enter_new(struct sbx_error *err)
{
	struct ifreq ifr;
	int s;

	if (unshare(CLONE_NEWNET) < 0)
		return sbx_error_set(err, "unshare net", errno);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return sbx_error_set(err, "loopback", errno);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP | IFF_RUNNING, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
		int e = errno;
		close(s);
		return sbx_error_set(err, "loopback", e);
	}
	close(s);
	return 0;
}

static int sbx_ipcns_enter_new(struct sbx_error *err)
{
	return unshare(CLONE_NEWIPC) < 0 ? sbx_error_set(err, "unshare ipc", errno) : 0;
}

/*
 * A new namespace of type (path: its /proc/self/ns file), made by
 * enter_new(), which moves the caller into it: *fd gets an fd of it, and
 * the caller goes back to its own, on failure too - the spawner stays in
 * the view's (empty) network namespace, so no job's is the spawner's, and
 * the slots' inits and builders are cloned from it.
 */
static int sbx_ns_new(int type, const char *path, const char *what,
		      int (*enter_new)(struct sbx_error *), int *fd, struct sbx_error *err)
{
	int own = open(path, O_RDONLY | O_CLOEXEC), e = 0;
	bool made;

	*fd = -1;
	if (own < 0)
		return sbx_error_set(err, what, errno);
	made = enter_new(err) == 0;
	if (made && (*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		e = errno;
	if (setns(own, type) < 0)
		e = errno;
	close(own);
	if (e && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	if (e)
		return sbx_error_set(err, what, e);
	return made ? 0 : sbx_failed(err);
}

int sbx_netns_new(int *fd, struct sbx_error *err)
{
	return sbx_ns_new(CLONE_NEWNET, "/proc/self/ns/net", "netns", sbx_netns_enter_new, fd, err);
}

int sbx_ipcns_new(int *fd, struct sbx_error *err)
{
	return sbx_ns_new(CLONE_NEWIPC, "/proc/self/ns/ipc", "ipcns", sbx_ipcns_enter_new, fd, err);
}

static int sbx_view_net(int *host_netns, struct sbx_error *err)
{
	*host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*host_netns < 0)
		return sbx_error_set(err, "view netns", errno);
	/* The spawner stays in it. */
	return sbx_netns_enter_new(err);
}

/* The kept items of the host's /tmp, bound under the workshop. */
static int sbx_view_keep(const struct sbx_keep *keep, int nkeep, const int *fds,
			 struct sbx_error *err)
{
	char dst[64];

	if (nkeep > 0 && mkdir(SBX_KEEP_DIR, 0755) < 0)
		return sbx_error_set(err, "view keep", errno);
	for (int i = 0; i < nkeep; i++) {
		snprintf(dst, sizeof(dst), SBX_KEEP_DIR "%d", i);
		if (keep[i].is_file ? sbx_touch(dst, err) < 0 : mkdir(dst, 0755) < 0)
			return sbx_error_set(err, "view keep", errno);
		if (sbx_bind_fd(fds[i], dst, "view keep", err) < 0)
			return sbx_failed(err);
	}
	return 0;
}

/* What exec+net jobs need from the workshop: their resolv.conf (slirp's
 * DNS forwarder), and /dev/net/tun for the network helper. */
static int sbx_view_netfiles(int tun_fd, struct sbx_error *err)
{
	static const char resolv[] = "nameserver " SBX_NET_DNS "\n";
	int fd = open(SBX_NET_RESOLV, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);

	if (fd < 0)
		return sbx_error_set(err, "view resolv.conf", errno);
	if (write(fd, resolv, sizeof(resolv) - 1) != (ssize_t)sizeof(resolv) - 1) {
		close(fd);
		return sbx_error_set(err, "view resolv.conf", EIO);
	}
	close(fd);
	if (tun_fd >= 0 &&
	    (sbx_touch(SBX_NET_TUN, err) < 0 || sbx_bind_fd(tun_fd, SBX_NET_TUN, "view tun", err) < 0))
		return sbx_failed(err);
	return 0;
}

/* Before the workshop covers /tmp and /dev goes: what the view keeps. */
static int sbx_view_open(const struct sbx_view_opts *o, const struct sbx_keep *keep, int nkeep,
			 int *keep_fds, int *tun_fd, struct sbx_error *err)
{
	for (int i = 0; i < nkeep; i++)
		if ((keep_fds[i] = open(keep[i].path, O_PATH | O_CLOEXEC |
							  (keep[i].is_file ? 0 : O_DIRECTORY))) < 0)
			return sbx_error_set(err, "view keep", errno);
	if (o->job_network && (*tun_fd = open("/dev/net/tun", O_PATH | O_CLOEXEC)) < 0)
		return sbx_error_set(err, "view /dev/net/tun", errno);
	return 0;
}

/* The workshop: a tmpfs on /tmp (the host's /tmp mounts go first). */
static int sbx_view_workshop(struct sbx_view *v, struct sbx_error *err)
{
	if (sbx_mounts_detach_under(SBX_WORKSHOP, false) < 0 ||
	    mount("tmpfs", SBX_WORKSHOP, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=1m") < 0)
		return sbx_error_set(err, "view workshop", errno);
	if (mkdir(SBX_EMPTY_DIR, 0555) < 0 || stat(SBX_EMPTY_DIR, &v->empty) < 0)
		return sbx_error_set(err, "view workshop", errno);
	return 0;
}

static int sbx_view_build(struct sbx_view *v, const struct sbx_view_opts *o,
			  const struct sbx_keep *keep, int nkeep, const int *keep_fds, int tun_fd,
			  struct sbx_error *err)
{
	/* The spawner's /proc (each job mounts its own over it); the minimal
	 * /dev's nodes and the workshop's tun node are devtmpfs mounts too. */
	static const char *const kernel_fs_at[] = {"/proc", NULL};
	static const char *const kernel_fs_under[] = {"/dev", SBX_WORKSHOP, NULL};

	if (sbx_view_workshop(v, err) < 0 || sbx_view_keep(keep, nkeep, keep_fds, err) < 0 ||
	    (o->job_network && sbx_view_netfiles(tun_fd, err) < 0) || sbx_view_dev(err) < 0 ||
	    sbx_view_run(err) < 0)
		return sbx_failed(err);
	if (sbx_mounts_detach_under("/proc", true) < 0 ||
	    sbx_mounts_detach_kernel_fs(kernel_fs_at, kernel_fs_under) < 0)
		return sbx_error_set(err, "view kernel fs", errno);
	for (const char *const *p = o->hide_dirs; p && *p; p++)
		if (sbx_view_hide(v, *p, err) < 0)
			return sbx_failed(err);
	return sbx_view_readonly(err);
}

/* Every mount private: nothing mounted on either side reaches the other
 * (in a chroot, from a root of the spawner's own: sbx_mounts_private()). */
static int sbx_view_private(struct sbx_error *err)
{
	const char *step = "view private";
	int rc = sbx_mounts_private(&step);

	return rc < 0 ? sbx_error_set(err, step, -rc) : 0;
}

int sbx_view_prepare(const struct sbx_view_opts *o, const struct sbx_keep *keep, int nkeep,
		     struct sbx_view **out, struct sbx_error *err)
{
	int keep_fds[SBX_KEEP_MAX], tun_fd = -1, rc = -1;
	struct sbx_view *v;

	if (nkeep > SBX_KEEP_MAX)
		return sbx_error_set(err, "view keep", E2BIG);
	v = calloc(1, sizeof(*v));
	if (!v)
		return sbx_error_set(err, "view", ENOMEM);
	v->host_netns = -1;
	for (int i = 0; i < nkeep; i++)
		keep_fds[i] = -1;
	/* The host's mount table, read in the host's namespace: it stays
	 * that namespace's after we leave. */
	v->host_mountinfo = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (v->host_mountinfo < 0 || sbx_mounts_read(v->host_mountinfo, &v->host) < 0) {
		sbx_error_set(err, "view mountinfo", errno);
		goto out;
	}
	if (unshare(CLONE_NEWNS) < 0) {
		sbx_error_set(err, "unshare mount", errno);
		goto out;
	}
	if (sbx_view_private(err) < 0)
		goto out;
	if (sbx_view_open(o, keep, nkeep, keep_fds, &tun_fd, err) < 0 ||
	    sbx_view_build(v, o, keep, nkeep, keep_fds, tun_fd, err) < 0)
		goto out;
	if (o->empty_netns && sbx_view_net(&v->host_netns, err) < 0)
		goto out;
	rc = 0;
out:
	for (int i = 0; i < nkeep; i++)
		if (keep_fds[i] >= 0)
			close(keep_fds[i]);
	if (tun_fd >= 0)
		close(tun_fd);
	if (rc < 0)
		sbx_view_free(v);
	else
		*out = v;
	return rc;
}

void sbx_view_free(struct sbx_view *v)
{
	if (!v)
		return;
	if (v->host_mountinfo >= 0)
		close(v->host_mountinfo);
	if (v->host_netns >= 0)
		close(v->host_netns);
	sbx_mounts_free(&v->host);
	for (size_t i = 0; i < v->nhidden; i++)
		free(v->hidden[i]);
	free(v->hidden);
	free(v);
}

int sbx_view_host_netns(const struct sbx_view *v)
{
	return v->host_netns;
}

int sbx_view_mountinfo_fd(const struct sbx_view *v)
{
	return v->host_mountinfo;
}

int sbx_view_follow_host(struct sbx_view *v)
{
	int n = sbx_mounts_follow_host(v->host_mountinfo, &v->host);

	if (n != 0)
		v->generation++;
	return n;
}

uint64_t sbx_view_generation(const struct sbx_view *v)
{
	return v ? v->generation : 0;
}
