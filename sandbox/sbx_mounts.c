/*
 * sbx_mounts.c - the mount table of the jobs' view: reading it, taking
 * mounts out of it, and following the host's unmounts.
 *
 * Theory of operation: the spawner's view (sbx_view.c) is a private mount
 * namespace, a copy of the host's taken at startup. Nothing the host mounts
 * later reaches it (a job can never see a mount it was not started with,
 * writable or not), but a private copy would also keep every file system
 * of the host mounted for as long as valetd runs: a disk the host unmounts
 * stays busy. So the spawner keeps /proc/self/mountinfo of the host's
 * namespace open (opened before it left it), polls it (the kernel flags a
 * change with POLLPRI), and when a mount disappears from the host it takes
 * the same mount out of the view, matched by mount point, device and root.
 * Jobs running at that moment keep their own copies until they end.
 *
 * Also here: making every mount of the new namespace private first (in a
 * chroot too: sbx_mounts_private()), taking whole subtrees out of the view
 * before something is laid over them (a covered mount can no longer be
 * reached by its path, so the host's unmount of it could not be followed),
 * and the mounts of kernel file systems (procfs, sysfs, devtmpfs,
 * cgroupfs, debugfs, ...) that no job may see, whatever their mount point.
 *
 * Runs in the spawner, single-threaded, never in a job child: malloc and
 * stdio are fine here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sbx_mounts.h"

/* Linux 5.2; older C libraries have neither the calls nor their flags. */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* In a chroot: where the copy of "/" that becomes our root is attached (on
 * a tmpfs laid over /proc, see sbx_mounts_chroot). */
#define SBX_CHROOT_AT "/proc/root"

/* Kernel file systems that are no job's business anywhere in its view: the
 * job gets its own /proc (sbx_init.c) and a minimal /dev (sbx_view.c). */
static const char *const sbx_kernel_fs[] = {
    "proc",	 "sysfs",     "devtmpfs",   "devpts",	 "mqueue",     "debugfs",
    "tracefs",	 "securityfs", "cgroup",    "cgroup2",	 "pstore",     "bpf",
    "configfs", "fusectl",   "binfmt_misc", "efivarfs", "hugetlbfs", "rpc_pipefs",
    "nfsd",	 "nsfs",      "autofs",	    "selinuxfs", "smackfs",    "apparmorfs",
    NULL,
};

bool sbx_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return path[0] == '/';
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* mountinfo escapes " \t\n\\" in paths as octal (\040). */
static void sbx_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((unsigned)(s[1] - '0') << 6 | (unsigned)(s[2] - '0') << 3 |
				      (unsigned)(s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* One line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw". */
static int sbx_mount_parse(char *line, struct sbx_mount *m)
{
	char root[4096], point[4096], fstype[64];
	const char *dash = strstr(line, " - ");

	if (!dash || sscanf(line, "%*d %*d %u:%u %4095s %4095s", &m->major, &m->minor, root,
			    point) != 4 ||
	    sscanf(dash + 3, "%63s", fstype) != 1)
		return -EINVAL;
	sbx_unescape(root);
	sbx_unescape(point);
	m->root = strdup(root);
	m->point = strdup(point);
	m->fstype = strdup(fstype);
	if (!m->root || !m->point || !m->fstype)
		return -ENOMEM;
	return 0;
}

void sbx_mounts_free(struct sbx_mounts *t)
{
	for (size_t i = 0; t && i < t->n; i++) {
		free(t->m[i].root);
		free(t->m[i].point);
		free(t->m[i].fstype);
	}
	if (t) {
		free(t->m);
		t->m = NULL;
		t->n = 0;
	}
}

int sbx_mounts_read(int fd, struct sbx_mounts *out)
{
	struct sbx_mounts t = {NULL, 0};
	size_t cap = 0;
	char *line = NULL;
	size_t linecap = 0;
	int rc = 0, dupfd;
	FILE *f;

	/* A fresh read from the start also tells the kernel that this change
	 * was seen (poll() stops reporting it). */
	if (lseek(fd, 0, SEEK_SET) < 0 || (dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	f = fdopen(dupfd, "r");
	if (!f) {
		close(dupfd);
		return -ENOMEM;
	}
	while (getline(&line, &linecap, f) > 0) {
		if (t.n == cap) {
			struct sbx_mount *nm = realloc(t.m, (cap = cap ? 2 * cap : 64) * sizeof(*nm));
			if (!nm) {
				rc = -ENOMEM;
				break;
			}
			t.m = nm;
		}
		memset(&t.m[t.n], 0, sizeof(t.m[t.n]));
		rc = sbx_mount_parse(line, &t.m[t.n]);
		t.n++; /* freed with the rest even when half parsed */
		if (rc == -EINVAL) {
			rc = 0;
			t.n--;
			free(t.m[t.n].root);
			free(t.m[t.n].point);
			free(t.m[t.n].fstype);
		} else if (rc < 0) {
			break;
		}
	}
	free(line);
	fclose(f);
	if (rc < 0) {
		sbx_mounts_free(&t);
		return rc;
	}
	*out = t;
	return 0;
}

int sbx_mounts_self(struct sbx_mounts *out)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -errno;
	rc = sbx_mounts_read(fd, out);
	close(fd);
	return rc;
}

/*
 * "/" is not a mount point: valetd runs in a chroot (a build chroot, some CI
 * runners), and mount() cannot change the propagation of "/" (EINVAL).
 * Binding "/" onto itself would make it a mount point, but that bind would
 * sit on the mount that holds the chroot directory, which on most hosts
 * (systemd's) is shared with the host's namespace: the host would get the
 * bind, and every mount the view then makes on it. So nothing is attached
 * to that mount. A recursive copy of "/" (open_tree(): detached, it
 * propagates nowhere) is attached on a small tmpfs laid over /proc - a
 * mount point of the chroot, whose propagation can be made private first -
 * and becomes our root (the spawner's, and so every job's). From there on
 * "/" is a mount point like on any host; what the copy was made from stays
 * in this namespace, out of reach. Linux 5.2 (open_tree, move_mount), and
 * CAP_SYS_CHROOT (valetd.service grants it, for package tests in chroots;
 * pivot_root() cannot do it: the kernel refuses it from a chroot).
 */
static int sbx_mounts_chroot(const char **step)
{
	int tree, rc = 0;

	*step = "chroot: copy /";
	tree = (int)syscall(SYS_open_tree, AT_FDCWD, "/",
			    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		return -errno;
	*step = "chroot: park on /proc";
	if (mount(NULL, "/proc", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0700,size=4k") < 0 ||
	    mkdir(SBX_CHROOT_AT, 0700) < 0)
		goto fail;
	*step = "chroot: attach copy";
	if (syscall(SYS_move_mount, tree, "", AT_FDCWD, SBX_CHROOT_AT, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		goto fail;
	*step = "chroot: enter copy";
	if (fchdir(tree) < 0 || chroot(".") < 0 || chdir("/") < 0)
		goto fail;
	close(tree);
	return 0;
fail:
	rc = -errno;
	close(tree);
	return rc;
}

int sbx_mounts_private(const char **step)
{
	const char *caller_step = *step;
	int rc;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	if ((rc = sbx_mounts_chroot(step)) < 0)
		return rc;
	*step = caller_step;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	return 0;
}

/* Lazily unmount everything mounted at point (mounts may be stacked). */
static void sbx_detach(const char *point)
{
	for (int i = 0; i < 64 && umount2(point, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++)
		;
}

int sbx_mounts_detach_under(const char *dir, bool keep_dir)
{
	struct sbx_mounts t;
	int rc = sbx_mounts_self(&t);

	if (rc < 0)
		return rc;
	/* Deepest first: a lazy unmount takes the mounts below along, but a
	 * mount point hidden under another mount cannot be named afterwards. */
	for (size_t i = t.n; i-- > 0;) {
		const char *p = t.m[i].point;
		if (sbx_path_under(p, dir) && !(keep_dir && !strcmp(p, dir)))
			sbx_detach(p);
	}
	sbx_mounts_free(&t);
	return 0;
}

bool sbx_kernel_fs_type(const char *fstype)
{
	for (const char *const *k = sbx_kernel_fs; *k; k++)
		if (!strcmp(*k, fstype))
			return true;
	return false;
}

int sbx_mounts_detach_kernel_fs(const char *const *keep_at, const char *const *keep_under)
{
	struct sbx_mounts t;
	int rc = sbx_mounts_self(&t), n = 0;

	if (rc < 0)
		return rc;
	for (size_t i = t.n; i-- > 0;) {
		const struct sbx_mount *m = &t.m[i];
		bool kept = false;

		if (!sbx_kernel_fs_type(m->fstype))
			continue;
		for (const char *const *k = keep_at; k && *k && !kept; k++)
			kept = !strcmp(m->point, *k);
		for (const char *const *k = keep_under; k && *k && !kept; k++)
			kept = sbx_path_under(m->point, *k);
		if (!kept) {
			sbx_detach(m->point);
			n++;
		}
	}
	sbx_mounts_free(&t);
	return n;
}

static bool sbx_same_mount(const struct sbx_mount *a, const struct sbx_mount *b)
{
	return a->major == b->major && a->minor == b->minor && !strcmp(a->point, b->point) &&
	       !strcmp(a->root, b->root);
}

static bool sbx_mounts_has(const struct sbx_mounts *t, const struct sbx_mount *m)
{
	for (size_t i = 0; i < t->n; i++)
		if (sbx_same_mount(&t->m[i], m))
			return true;
	return false;
}

int sbx_mounts_follow_host(int host_fd, struct sbx_mounts *host)
{
	struct sbx_mounts now, view;
	int rc, n = 0;

	if ((rc = sbx_mounts_read(host_fd, &now)) < 0)
		return rc;
	if ((rc = sbx_mounts_self(&view)) < 0) {
		sbx_mounts_free(&now);
		return rc;
	}
	/* What the host had and has no more, the view drops too, if the view
	 * still holds that very mount (same point, device and root: never one
	 * of the view's own mounts, which come from other devices). */
	for (size_t i = host->n; i-- > 0;) {
		const struct sbx_mount *gone = &host->m[i];

		if (sbx_mounts_has(&now, gone) || !sbx_mounts_has(&view, gone))
			continue;
		/* Once: nothing of the view's own is stacked on a host mount
		 * (sbx_mounts_detach_under() ran before anything was laid over). */
		(void)umount2(gone->point, MNT_DETACH | UMOUNT_NOFOLLOW);
		n++;
	}
	sbx_mounts_free(&view);
	sbx_mounts_free(host);
	*host = now;
	return n;
}
