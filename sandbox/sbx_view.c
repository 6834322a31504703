/*
 * sbx_view.c - the file system and network view every job starts from,
 * prepared once in the spawner, which then forks every job from it.
 *
 * Theory of operation: the spawner leaves the daemon's mount (and network)
 * namespace for its own, once, at startup, and turns its mount tree into
 * what a job may see:
 *   1. every mount becomes a slave of the host's: mount events of the host
 *      still arrive, nothing done here goes back;
 *   2. a small private tmpfs on /tmp is the workshop: an empty directory and
 *      an empty file to lay over what jobs must not see, and a minimal /dev
 *      (null zero full random urandom tty: bind mounts of the host's nodes;
 *      fd, stdin, stdout, stderr links; shm -> /tmp) that is then moved onto
 *      /dev. Every job mounts its own /tmp over the workshop;
 *   3. hidden paths (the daemon's config, the PostgreSQL socket directory)
 *      get the empty directory or the empty file bound over them;
 *   4. the whole tree becomes read-only and nosuid: one recursive
 *      mount_setattr() (Linux 5.12), else a remount per mount;
 *   5. network: a new, empty network namespace with loopback up for the
 *      spawner itself (the jobs get one per worker slot, sbx_netns_new());
 *      the host's one stays open for profiles that allow network.
 * Directories of the host's /tmp that hold exec task programs are opened
 * (O_PATH) before the workshop covers /tmp: each job binds them, read-only,
 * into its own /tmp (sbx_init.c).
 * Each job then gets new PID, mount, IPC and UTS namespaces (a copy of this
 * tree) and its own /proc and /tmp on top (sbx_init.c).
 *
 * Runs in the spawner at startup, single-threaded: stdio and malloc are
 * fine here, but it keeps to plain system calls like the rest of sandbox/.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

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

#define SBX_WORKSHOP "/tmp"
#define SBX_EMPTY_DIR SBX_WORKSHOP "/.empty-dir"
#define SBX_EMPTY_FILE SBX_WORKSHOP "/.empty-file"
#define SBX_NEW_DEV SBX_WORKSHOP "/.dev"

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

/* A minimal /dev, built in the workshop and moved over the host's. */
static int sbx_view_dev(struct sbx_error *err)
{
	char path[64];
	size_t i;
	int fd;

	if (mkdir(SBX_NEW_DEV, 0755) < 0 ||
	    mount("tmpfs", SBX_NEW_DEV, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
		return sbx_error_set(err, "view /dev", errno);
	for (i = 0; i < sizeof(sbx_dev_nodes) / sizeof(sbx_dev_nodes[0]); i++) {
		char host[32];

		snprintf(host, sizeof(host), "/dev/%s", sbx_dev_nodes[i]);
		snprintf(path, sizeof(path), SBX_NEW_DEV "/%s", sbx_dev_nodes[i]);
		if (access(host, F_OK) < 0)
			continue;
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
		if (fd < 0)
			return sbx_error_set(err, "view /dev", errno);
		close(fd);
		if (sbx_bind(host, path, "view /dev bind", err) < 0)
			return -1;
	}
	for (i = 0; i < sizeof(sbx_dev_links) / sizeof(sbx_dev_links[0]); i++) {
		snprintf(path, sizeof(path), SBX_NEW_DEV "/%s", sbx_dev_links[i].name);
		if (symlink(sbx_dev_links[i].target, path) < 0)
			return sbx_error_set(err, "view /dev link", errno);
	}
	if (mount(SBX_NEW_DEV, "/dev", NULL, MS_MOVE, NULL) < 0)
		return sbx_error_set(err, "view /dev move", errno);
	return 0;
}

static int sbx_view_hide(const struct sbx_view_opts *o, struct sbx_error *err)
{
	const char *const *p;
	struct stat st;

	for (p = o->hide_dirs; p && *p; p++)
		if (stat(*p, &st) == 0 && S_ISDIR(st.st_mode) &&
		    sbx_bind(SBX_EMPTY_DIR, *p, "view hide", err) < 0)
			return -1;
	for (p = o->hide_files; p && *p; p++)
		if (stat(*p, &st) == 0 && !S_ISDIR(st.st_mode) &&
		    sbx_bind(SBX_EMPTY_FILE, *p, "view hide", err) < 0)
			return -1;
	return 0;
}

/* mountinfo field 5 is the mount point, with " \t\n\\" as octal escapes. */
static void sbx_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Kernels before 5.12: remount each mount read-only, keeping its flags. */
static int sbx_view_readonly_each(struct sbx_error *err)
{
	static const struct {
		unsigned long st, ms;
	} keep[] = {{ST_NODEV, MS_NODEV},
		    {ST_NOEXEC, MS_NOEXEC},
		    {ST_NOATIME, MS_NOATIME},
		    {ST_NODIRATIME, MS_NODIRATIME},
		    {ST_RELATIME, MS_RELATIME}};
	char line[4096], mp[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return sbx_error_set(err, "view read-only", errno);
	while (fgets(line, sizeof(line), f)) {
		struct statvfs sv;
		unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID;

		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		sbx_unescape(mp);
		if (statvfs(mp, &sv) < 0)
			continue; /* hidden under another mount */
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			if (sv.f_flag & keep[i].st)
				flags |= keep[i].ms;
		if (mount(NULL, mp, NULL, flags, NULL) < 0 && errno != EINVAL && errno != ENOENT) {
			int e = errno;
			fclose(f);
			return sbx_error_set(err, "view read-only", e);
		}
	}
	fclose(f);
	return 0;
}

static int sbx_view_readonly(struct sbx_error *err)
{
	struct sbx_mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};

	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof(attr)) == 0)
		return 0;
	if (errno != ENOSYS)
		return sbx_error_set(err, "view read-only", errno);
	return sbx_view_readonly_each(err);
}

int sbx_netns_new(int *fd, struct sbx_error *err)
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
	*fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return sbx_error_set(err, "netns", errno);
	return 0;
}

static int sbx_view_net(int *host_netns, struct sbx_error *err)
{
	int empty;

	*host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*host_netns < 0)
		return sbx_error_set(err, "view netns", errno);
	if (sbx_netns_new(&empty, err) < 0)
		return -1;
	close(empty); /* the spawner stays in it */
	return 0;
}

/* The kept items of the host's /tmp, bound under the workshop. */
static int sbx_view_keep(const struct sbx_keep *keep, int nkeep, const int *fds,
			 struct sbx_error *err)
{
	char dst[64], src[64];
	int rc;

	if (nkeep > 0 && mkdir(SBX_KEEP_DIR, 0755) < 0)
		return sbx_error_set(err, "view keep", errno);
	for (int i = 0; i < nkeep; i++) {
		snprintf(dst, sizeof(dst), SBX_KEEP_DIR "%d", i);
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fds[i]);
		if (keep[i].is_file) {
			rc = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
			if (rc >= 0)
				close(rc);
		} else {
			rc = mkdir(dst, 0755);
		}
		if (rc < 0)
			return sbx_error_set(err, "view keep", errno);
		if (sbx_bind(src, dst, "view keep", err) < 0)
			return -1;
	}
	return 0;
}

int sbx_view_prepare(const struct sbx_view_opts *o, const struct sbx_keep *keep, int nkeep,
		     int *host_netns, struct sbx_error *err)
{
	int keep_fds[SBX_KEEP_MAX];
	int fd;

	if (nkeep > SBX_KEEP_MAX)
		return sbx_error_set(err, "view keep", E2BIG);
	for (int i = 0; i < nkeep; i++)
		keep_fds[i] = -1;

	*host_netns = -1;
	if (unshare(CLONE_NEWNS) < 0)
		return sbx_error_set(err, "unshare mount", errno);
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return sbx_error_set(err, "view slave", errno);
	/* Before the workshop covers the host's /tmp. */
	for (int i = 0; i < nkeep; i++)
		if ((keep_fds[i] = open(keep[i].path,
					O_PATH | O_CLOEXEC | (keep[i].is_file ? 0 : O_DIRECTORY))) <
		    0) {
			sbx_error_set(err, "view keep", errno);
			goto fail;
		}
	if (mount("tmpfs", SBX_WORKSHOP, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=1m") < 0)
		return sbx_error_set(err, "view workshop", errno);
	if (mkdir(SBX_EMPTY_DIR, 0555) < 0)
		return sbx_error_set(err, "view workshop", errno);
	fd = open(SBX_EMPTY_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return sbx_error_set(err, "view workshop", errno);
	close(fd);
	if (sbx_view_keep(keep, nkeep, keep_fds, err) < 0 || sbx_view_dev(err) < 0 ||
	    sbx_view_hide(o, err) < 0 || sbx_view_readonly(err) < 0)
		goto fail;
	for (int i = 0; i < nkeep; i++)
		close(keep_fds[i]);
	if (o->empty_netns && sbx_view_net(host_netns, err) < 0)
		return -1;
	return 0;
fail:
	for (int i = 0; i < nkeep; i++)
		if (keep_fds[i] >= 0)
			close(keep_fds[i]);
	return -1;
}
