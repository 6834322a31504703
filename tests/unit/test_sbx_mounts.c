/*
 * test_sbx_mounts.c - sandbox/sbx_mounts.c: the mount table of the jobs'
 * view. sbx_path_under and sbx_kernel_fs_type as plain functions;
 * sbx_mounts_read on a mountinfo file written by hand (octal escapes,
 * optional fields, malformed lines, a second read of the same fd); then
 * the calls that unmount, for real.
 *
 * Theory of operation: whatever mounts or unmounts runs in a forked child
 * that first makes a mount namespace of its own (unshare(CLONE_NEWNS)) and
 * makes every mount in it private, so nothing it does reaches the test's
 * namespace or the host's, and its mounts vanish with it. The mount points
 * are directories under a private directory in /tmp (removed at the end).
 * The child checks what it expects and exits with the number of the first
 * check that failed (0: all passed; 77: no mount namespace here, skipped);
 * the parent asserts on that. Whether something is mounted is read from
 * /proc/self/mountinfo by a parser of this file's own, not the module's.
 * Needs root (skipped otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../sandbox/sbx_mounts.h"

#define SKIPPED 77

#define TESTDIR_NAME "valet-test-sbx-mounts"
#include "testdir.h"


/* ---- plain functions ------------------------------------------------------------------ */

static void test_path_under(void **state)
{
	(void)state;
	assert_true(sbx_path_under("/a", "/a"));
	assert_true(sbx_path_under("/a/b", "/a"));
	assert_true(sbx_path_under("/a/b/c", "/a"));
	assert_true(sbx_path_under("/a/", "/a"));
	assert_false(sbx_path_under("/ab", "/a"));
	assert_false(sbx_path_under("/a", "/a/b"));
	assert_false(sbx_path_under("/b/a", "/a"));
	assert_false(sbx_path_under("", "/a"));
	assert_false(sbx_path_under("/", "/a"));
	assert_true(sbx_path_under("/tmp/x y", "/tmp/x y"));
	assert_false(sbx_path_under("/tmp/x yz", "/tmp/x y"));
	/* "/" holds every absolute path, and only those. */
	assert_true(sbx_path_under("/", "/"));
	assert_true(sbx_path_under("/proc", "/"));
	assert_true(sbx_path_under("/a/b", "/"));
	assert_false(sbx_path_under("proc", "/"));
	assert_false(sbx_path_under("", "/"));
}

static void test_kernel_fs_type(void **state)
{
	static const char *const kernel[] = {
	    "proc",	"sysfs",      "devtmpfs",    "devpts",	  "mqueue",    "debugfs",
	    "tracefs",	"securityfs", "cgroup",	     "cgroup2",	  "pstore",    "bpf",
	    "configfs", "fusectl",    "binfmt_misc", "efivarfs",  "hugetlbfs", "rpc_pipefs",
	    "nfsd",	"nsfs",	      "autofs",	     "selinuxfs", "smackfs",   "apparmorfs",
	};
	static const char *const other[] = {
	    "tmpfs", "ext4", "xfs",  "btrfs",  "overlay", "nfs4", "fuse.sshfs", "ramfs",
	    "vfat",  "",     "Proc", "procfs", "proc ",	  "sys",  "cgroup3",	"devtmpfs2",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(kernel) / sizeof(kernel[0]); i++)
		if (!sbx_kernel_fs_type(kernel[i]))
			fail_msg("%s: not a kernel file system?", kernel[i]);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (sbx_kernel_fs_type(other[i]))
			fail_msg("\"%s\": a kernel file system?", other[i]);
}

/* ---- sbx_mounts_read on a file ------------------------------------------------------------ */

static const char handmade[] =
    /* Optional fields before the separator, none, several. */
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
    "23 22 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    /* Escapes: space, tab, newline, backslash; in the root too. */
    "24 22 0:45 /sub\\040dir /mnt/with\\040space rw master:3 shared:4 propagate_from:2 - tmpfs "
    "my\\040tmpfs rw\n"
    "25 22 0:46 / /mnt/t\\011ab\\012nl\\134bs rw - tmpfs none rw,size=4k\n"
    /* Malformed: no separator, a device that is not one, too few fields,
     * nothing after the separator, an empty line. Each is skipped. */
    "26 22 0:47 / /no/separator rw tmpfs none rw\n"
    "27 22 x:y / /bad/device rw - tmpfs none rw\n"
    "28 22 0:48 /\n"
    "29 22 0:49 / /no/type rw - \n"
    "\n"
    "garbage\n"
    /* A backslash that is no escape stays (also before three digits
     * that are not all octal); large device numbers; a subtype; no
     * newline at the end. */
    "30 22 259:1048575 /a\\b /mnt/a\\9b\\1x7\\078 rw,nosuid shared:7 - fuse.sshfs host:/ rw";

static void expect_mount(const struct sbx_mount *m, unsigned major, unsigned minor,
			 const char *root, const char *point, const char *fstype)
{
	assert_int_equal(m->major, major);
	assert_int_equal(m->minor, minor);
	assert_string_equal(m->root, root);
	assert_string_equal(m->point, point);
	assert_string_equal(m->fstype, fstype);
}

static void expect_handmade(const struct sbx_mounts *t)
{
	assert_int_equal(t->n, 5);
	expect_mount(&t->m[0], 254, 0, "/", "/", "ext4");
	expect_mount(&t->m[1], 0, 20, "/", "/proc", "proc");
	expect_mount(&t->m[2], 0, 45, "/sub dir", "/mnt/with space", "tmpfs");
	expect_mount(&t->m[3], 0, 46, "/", "/mnt/t\tab\nnl\\bs", "tmpfs");
	expect_mount(&t->m[4], 259, 1048575, "/a\\b", "/mnt/a\\9b\\1x7\\078", "fuse.sshfs");
}

/* Whether "/" is a directory, not a mount point: this runs in a chroot. */
static bool root_is_no_mount(void)
{
	struct statx stx;

	return statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &stx) == 0 &&
	       (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static void test_read(void **state)
{
	struct sbx_mounts t = {NULL, 0}, again = {NULL, 0};
	char path[PATH_MAX];
	int fd, p[2];

	(void)state;
	fmt(path, sizeof(path), "%s/mountinfo", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, handmade, sizeof(handmade) - 1), sizeof(handmade) - 1);

	/* The fd is at its end after the write: read from the start anyway. */
	assert_int_equal(sbx_mounts_read(fd, &t), 0);
	expect_handmade(&t);
	/* And again, somewhere in the middle now: the same table. */
	assert_int_equal(lseek(fd, 17, SEEK_SET), 17);
	assert_int_equal(sbx_mounts_read(fd, &again), 0);
	expect_handmade(&again);
	sbx_mounts_free(&again);
	assert_null(again.m);
	assert_int_equal(again.n, 0);
	/* The fd is still the caller's and still open. */
	assert_true(fcntl(fd, F_GETFD) >= 0);

	/* Empty and all malformed: an empty table. */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(sbx_mounts_read(fd, &again), 0);
	assert_int_equal(again.n, 0);
	sbx_mounts_free(&again);
	assert_int_equal(pwrite(fd, "x\ny - z\n", 8, 0), 8);
	assert_int_equal(sbx_mounts_read(fd, &again), 0);
	assert_int_equal(again.n, 0);
	sbx_mounts_free(&again);
	close(fd);

	/* Errors: not an fd, not seekable. *out is left alone. */
	assert_int_equal(sbx_mounts_read(fd, &t), -EBADF);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sbx_mounts_read(p[0], &t), -ESPIPE);
	close(p[0]);
	close(p[1]);
	expect_handmade(&t);
	sbx_mounts_free(&t);
	sbx_mounts_free(&t); /* twice is fine */
	sbx_mounts_free(NULL);

	/* This process's own table: "/" (unless this is a chroot, whose root is
	 * a directory, no mount) and /proc are in it. */
	assert_int_equal(sbx_mounts_self(&t), 0);
	{
		bool root = false, proc = false;

		for (size_t i = 0; i < t.n; i++) {
			root |= !strcmp(t.m[i].point, "/");
			proc |= !strcmp(t.m[i].point, "/proc") && !strcmp(t.m[i].fstype, "proc");
		}
		assert_true(root || root_is_no_mount());
		assert_true(proc);
	}
	sbx_mounts_free(&t);
}

/* ---- in a mount namespace of a child's own ------------------------------------------------ */

/* A check in a child: on failure, say which and exit with code. */
#define CHECK(cond, code)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			dprintf(2, "child: check %d failed: %s\n", code, #cond);                   \
			_exit(code);                                                               \
		}                                                                                  \
	} while (0)

/* How many mounts are at point (with fstype, unless NULL), by this
 * namespace's /proc/self/mountinfo. Points here have no escaped characters
 * but spaces (\040). -1 on error. */
static int mounted(const char *point, const char *fstype)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], p[4096], o[4096], type[64];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *dash = strstr(line, " - ");
		size_t j = 0;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", p) != 1 ||
		    sscanf(dash + 3, "%63s", type) != 1)
			continue;
		for (size_t i = 0; p[i] && j < sizeof(o) - 1; i++) {
			if (!strncmp(p + i, "\\040", 4)) {
				o[j++] = ' ';
				i += 3;
			} else {
				o[j++] = p[i];
			}
		}
		o[j] = '\0';
		n += !strcmp(o, point) && (!fstype || !strcmp(type, fstype));
	}
	fclose(f);
	return n;
}

/* The mountinfo line (without its newline) of the mount at point, into out. */
static bool mountinfo_line(const char *point, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], p[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %*s %*s %*s %4095s", p) == 1 && !strcmp(p, point)) {
			line[strcspn(line, "\n")] = '\0';
			found = (size_t)snprintf(out, len, "%s", line) < len;
		}
	fclose(f);
	return found;
}

/* Fork; the child gets a private mount namespace and exits with fn(). */
static void in_namespace(int (*fn)(void))
{
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		SKIP_NEEDS("not root");
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0) {
			dprintf(2, "child: unshare(CLONE_NEWNS): %s\n", strerror(errno));
			_exit(SKIPPED);
		}
		/* In a chroot, from a private copy of "/": what the spawner does. */
		const char *step = "making / private";
		int rc = sbx_mounts_private(&step);

		if (rc < 0) {
			dprintf(2, "child: %s: %s\n", step, strerror(-rc));
			_exit(SKIPPED);
		}
		_exit(fn());
	}
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == SKIPPED) {
		SKIP_HOST("no private mount namespace here (the child said why above)");
	}
	if (WEXITSTATUS(status) != 0)
		fail_msg("child: check %d failed (see above)", WEXITSTATUS(status));
}

/* mkdir tmpdir/rel (in the child: maybe inside one of its mounts). */
static bool mkdir_at(char *out, const char *rel)
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", tmpdir, rel) >= PATH_MAX)
		return false;
	return mkdir(out, 0755) == 0 || errno == EEXIST;
}

static bool mount_tmpfs(const char *point)
{
	return mount("tmpfs", point, "tmpfs", 0, "size=64k") == 0;
}

static int child_detach_under(void)
{
	char top[PATH_MAX], inner[PATH_MAX], deep[PATH_MAX], sibling[PATH_MAX];

	CHECK(mkdir_at(top, "top"), 1);
	CHECK(mkdir_at(sibling, "topper"), 2);
	CHECK(mount_tmpfs(top) && mount_tmpfs(sibling), 3);
	/* In the tmpfs: a tmpfs with a space in its name, two stacked on a
	 * point below that. */
	CHECK(mkdir_at(inner, "top/in ner"), 4);
	CHECK(mount_tmpfs(inner), 5);
	CHECK(mkdir_at(deep, "top/in ner/deep"), 6);
	CHECK(mount_tmpfs(deep) && mount_tmpfs(deep), 7);
	CHECK(mounted(top, "tmpfs") == 1 && mounted(inner, "tmpfs") == 1, 8);
	CHECK(mounted(deep, "tmpfs") == 2, 9);

	/* keep_dir: everything below goes, the one at top stays. */
	CHECK(sbx_mounts_detach_under(top, true) == 0, 10);
	CHECK(mounted(inner, NULL) == 0 && mounted(deep, NULL) == 0, 11);
	CHECK(mounted(top, "tmpfs") == 1, 12);
	CHECK(mounted(sibling, "tmpfs") == 1, 13);
	CHECK(mounted("/", NULL) >= 1 && mounted("/proc", "proc") >= 1, 14);

	/* Again, and without keep_dir: top goes too (with what is below it),
	 * a directory whose name starts the same does not. */
	CHECK(mkdir_at(inner, "top/in ner"), 15);
	CHECK(mount_tmpfs(inner), 16);
	CHECK(sbx_mounts_detach_under(top, false) == 0, 17);
	CHECK(mounted(top, NULL) == 0 && mounted(inner, NULL) == 0, 18);
	CHECK(mounted(sibling, "tmpfs") == 1, 19);
	CHECK(mounted("/", NULL) >= 1 && mounted("/proc", "proc") >= 1, 20);

	/* Nothing mounted there: nothing to do. */
	CHECK(sbx_mounts_detach_under(top, false) == 0, 21);
	CHECK(mounted(sibling, "tmpfs") == 1, 22);
	return 0;
}

static void test_detach_under(void **state)
{
	(void)state;
	in_namespace(child_detach_under);
}

/* How many kernel file system mounts; and whether each is one of kept
 * (say: print those that are not). */
static int kernel_mounts(const char *const *keep_at, const char *const *keep_under, bool say,
			 bool *all_kept)
{
	struct sbx_mounts t;
	int n = 0;

	if (sbx_mounts_self(&t) < 0)
		return -1;
	*all_kept = true;
	for (size_t i = 0; i < t.n; i++) {
		bool kept = false;

		if (!sbx_kernel_fs_type(t.m[i].fstype))
			continue;
		n++;
		for (const char *const *k = keep_at; *k; k++)
			kept |= !strcmp(t.m[i].point, *k);
		for (const char *const *k = keep_under; *k; k++)
			kept |= sbx_path_under(t.m[i].point, *k);
		if (!kept && say)
			dprintf(2, "child: still mounted: %s (%s)\n", t.m[i].point, t.m[i].fstype);
		*all_kept &= kept;
	}
	sbx_mounts_free(&t);
	return n;
}

/* The type of the file system at path, or 0. */
static long fs_type(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 ? (long)st.f_type : 0;
}

static int child_detach_kernel_fs(void)
{
	char p1[PATH_MAX], p2[PATH_MAX], keep[PATH_MAX], p3[PATH_MAX], sys[PATH_MAX];
	char t[PATH_MAX];
	bool all_kept;
	int before, after, n;

	CHECK(mkdir_at(p1, "proc1") && mkdir_at(p2, "proc2") && mkdir_at(keep, "keep"), 1);
	CHECK(mkdir_at(p3, "keep/proc3") && mkdir_at(sys, "sys") && mkdir_at(t, "tmp"), 2);
	CHECK(mount("proc", p1, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0, 3);
	CHECK(mount("proc", p2, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0, 4);
	CHECK(mount("proc", p3, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0, 5);
	CHECK(mount("sysfs", sys, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0, 6);
	CHECK(mount_tmpfs(t), 7);
	{
		/* /proc stays, with what is below it, for the checks here. */
		const char *const keep_at[] = {"/proc", p2, NULL};
		const char *const keep_under[] = {"/proc", keep, NULL};

		before = kernel_mounts(keep_at, keep_under, false, &all_kept);
		CHECK(before >= 5, 8);
		CHECK(!all_kept, 9);
		n = sbx_mounts_detach_kernel_fs(keep_at, keep_under);
		after = kernel_mounts(keep_at, keep_under, true, &all_kept);
		CHECK(n >= 2, 10);
		CHECK(after >= 3 && all_kept, 11);
		CHECK(n == before - after, 12);
	}
	CHECK(mounted(p1, NULL) == 0 && mounted(sys, NULL) == 0, 13);
	CHECK(mounted(p2, "proc") == 1 && mounted(p3, "proc") == 1, 14);
	CHECK(mounted("/proc", "proc") == 1, 15);
	CHECK(mounted(t, "tmpfs") == 1 && mounted("/", NULL) >= 1, 16);
	CHECK(mounted("/sys", NULL) == 0, 17); /* the namespace's own sysfs went too */

	/* Nothing more to take: 0. */
	{
		const char *const keep_at[] = {"/proc", p2, NULL};
		const char *const keep_under[] = {"/proc", keep, NULL};

		CHECK(sbx_mounts_detach_kernel_fs(keep_at, keep_under) == 0, 18);
	}
	/* NULL lists keep nothing, /proc included: from here on, what is
	 * mounted where is told by statfs(). */
	CHECK(sbx_mounts_detach_kernel_fs(NULL, NULL) >= 3, 19);
	CHECK(fs_type(p2) != PROC_SUPER_MAGIC && fs_type(p3) != PROC_SUPER_MAGIC, 20);
	CHECK(fs_type("/proc") != PROC_SUPER_MAGIC, 21);
	CHECK(fs_type(t) == TMPFS_MAGIC, 22);
	return 0;
}

static void test_detach_kernel_fs(void **state)
{
	(void)state;
	in_namespace(child_detach_kernel_fs);
}

/* Replace the contents of fd with text. */
static bool rewrite(int fd, const char *text)
{
	size_t len = strlen(text);

	return ftruncate(fd, 0) == 0 && pwrite(fd, text, len, 0) == (ssize_t)len;
}

static int child_follow_host(void)
{
	char gone[PATH_MAX], stays[PATH_MAX], other[PATH_MAX], rooted[PATH_MAX], fake[PATH_MAX];
	char lgone[8192], lstays[8192], lother[8192], lrooted[8192];
	char v1[40000], v2[20000], file[PATH_MAX];
	struct sbx_mounts host = {NULL, 0};
	unsigned id, parent, major, minor;
	char tail[8192];
	int fd;

	CHECK(mkdir_at(gone, "gone") && mkdir_at(stays, "stays") && mkdir_at(other, "other"), 1);
	CHECK(mkdir_at(rooted, "rooted") && mkdir_at(fake, "fake"), 2);
	CHECK(mount_tmpfs(gone) && mount_tmpfs(stays) && mount_tmpfs(other), 3);
	CHECK(mount_tmpfs(rooted), 4);
	CHECK(mountinfo_line(gone, lgone, sizeof(lgone)), 5);
	CHECK(mountinfo_line(stays, lstays, sizeof(lstays)), 6);
	CHECK(mountinfo_line(rooted, lrooted, sizeof(lrooted)), 7);
	/* other as the host would list another file system at the same point:
	 * the same line with another minor number. */
	CHECK(mountinfo_line(other, lother, sizeof(lother)), 8);
	CHECK(sscanf(lother, "%u %u %u:%u %8191[^\n]", &id, &parent, &major, &minor, tail) == 5, 9);
	CHECK(snprintf(lother, sizeof(lother), "%u %u %u:%u %s", id, parent, major, minor + 1000,
		       tail) < (int)sizeof(lother),
	      10);
	/* rooted: the same device at the same point, but another directory of
	 * it as its root. */
	CHECK(sscanf(lrooted, "%u %u %u:%u / %8191[^\n]", &id, &parent, &major, &minor, tail) == 5,
	      11);
	CHECK(snprintf(lrooted, sizeof(lrooted), "%u %u %u:%u /sub %s", id, parent, major, minor,
		       tail) < (int)sizeof(lrooted),
	      12);

	/* The host's mountinfo, a file here: first with all of them (and one
	 * the view never had), then with only stays. */
	CHECK(snprintf(v1, sizeof(v1), "%s\n%s\n%s\n%s\n99 1 0:999 / %s rw - tmpfs tmpfs rw\n",
		       lgone, lstays, lother, lrooted, fake) < (int)sizeof(v1),
	      13);
	CHECK(snprintf(v2, sizeof(v2), "%s\n", lstays) < (int)sizeof(v2), 14);
	CHECK(snprintf(file, sizeof(file), "%s/host-mountinfo", tmpdir) < (int)sizeof(file), 15);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && rewrite(fd, v1), 16);
	CHECK(sbx_mounts_read(fd, &host) == 0 && host.n == 5, 17);

	CHECK(rewrite(fd, v2), 18);
	CHECK(sbx_mounts_follow_host(fd, &host) == 1, 19);
	/* gone went; stays is still the host's; other and rooted were never
	 * the host's mounts that went, fake was never here. */
	CHECK(mounted(gone, NULL) == 0, 20);
	CHECK(mounted(stays, "tmpfs") == 1, 21);
	CHECK(mounted(other, "tmpfs") == 1, 22);
	CHECK(mounted(rooted, "tmpfs") == 1, 23);
	CHECK(mounted(fake, NULL) == 0, 24);
	/* The table is now the host's new one. */
	CHECK(host.n == 1 && !strcmp(host.m[0].point, stays), 25);

	/* Nothing changed: nothing to do. */
	CHECK(sbx_mounts_follow_host(fd, &host) == 0, 26);
	CHECK(mounted(stays, "tmpfs") == 1, 27);

	/* The host unmounts stays too. */
	CHECK(rewrite(fd, ""), 28);
	CHECK(sbx_mounts_follow_host(fd, &host) == 1, 29);
	CHECK(mounted(stays, NULL) == 0 && host.n == 0, 30);
	CHECK(mounted(other, "tmpfs") == 1 && mounted(rooted, "tmpfs") == 1, 31);

	/* An unreadable fd: an error, and the table is left as it was. */
	close(fd);
	CHECK(sbx_mounts_follow_host(fd, &host) == -EBADF && host.n == 0, 32);
	sbx_mounts_free(&host);
	return 0;
}

static void test_follow_host(void **state)
{
	(void)state;
	in_namespace(child_follow_host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_under),
	    cmocka_unit_test(test_kernel_fs_type),
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_detach_under),
	    cmocka_unit_test(test_detach_kernel_fs),
	    cmocka_unit_test(test_follow_host),
	};

	return cmocka_run_group_tests(tests, testdir_setup, testdir_teardown);
}
