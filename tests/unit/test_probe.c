/*
 * test_probe.c - the host probe (sandbox/probe.c), on the real host.
 *
 * Theory of operation: the probe is run for real and its answers checked
 * against what must hold on any Linux machine where the suite runs as root
 * (the development and CI VMs): namespaces can be created, seccomp works,
 * a cgroup hierarchy is found whose directory really holds this process,
 * and the cgroup write test leaves nothing behind. A forked child that
 * drops to nobody checks the unprivileged answers (EPERM, EACCES). The
 * parts that must hold for any user run without root; the rest skip.
 * The cgroup locator is also fed the /proc files of other kinds of host
 * (systemd's cgroup v2, a container's bind-mounted v1 subtree), and a
 * cgroup2 mount with favordynmods, which --check reports.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../sandbox/sandbox.h"
#include "../../supervisor/probe.h"

#define CAP_SYS_ADMIN_BIT 21

static const char *const ns_files[] = {"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"};

/* What the probe must leave as it was in the calling process. */
struct self_state {
	int nnp, seccomp;
	char ns[7][64];
	char cgroup[4096];
	char cwd[512];
};

static void read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

static void self_state(struct self_state *s)
{
	char path[64];

	memset(s, 0, sizeof(*s));
	s->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	s->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
	for (size_t i = 0; i < 7; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns_files[i]);
		ssize_t n = readlink(path, s->ns[i], sizeof(s->ns[i]) - 1);
		s->ns[i][n > 0 ? n : 0] = '\0';
	}
	read_text("/proc/self/cgroup", s->cgroup, sizeof(s->cgroup));
	assert_non_null(getcwd(s->cwd, sizeof(s->cwd)));
}

/* Whether dir/cgroup.procs lists pid. */
static bool cgroup_holds(const char *dir, pid_t pid)
{
	char path[PROBE_PATH + 32], line[32];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = atol(line) == (long)pid;
	fclose(f);
	return found;
}

/* Entries in dir whose name starts with "valet-probe-<our pid>-". */
static int leftovers(const char *dir)
{
	char prefix[64];
	struct dirent *e;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	snprintf(prefix, sizeof(prefix), PROBE_CG_PREFIX "%ld-", (long)getpid());
	while ((e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static void test_result_str(void **state)
{
	struct probe_result ok = {true, 0, 0}, eperm = {false, EPERM, 0};
	struct probe_result odd = {false, 200, 0}, sig = {false, 0, 31};
	char b[64];

	probe_result_str(&ok, b, sizeof(b));
	assert_string_equal(b, "yes");
	probe_result_str(&eperm, b, sizeof(b));
	assert_string_equal(b, "no (EPERM)");
	probe_result_str(&odd, b, sizeof(b));
	assert_string_equal(b, "no (errno 200)");
	probe_result_str(&sig, b, sizeof(b));
	assert_string_equal(b, "no (killed by signal 31)");
	probe_result_str(&ok, b, 2); /* truncates, stays a string */
	assert_string_equal(b, "y");
}

/* Any user: the probe runs, reports, and changes nothing in this process. */
static void test_probe_any_user(void **state)
{
	struct self_state before, after;
	struct probe_caps caps;
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	assert_int_equal(probe_run(NULL), -EINVAL);
	self_state(&before);
	assert_int_equal(probe_run(&caps), 0);
	self_state(&after);
	assert_memory_equal(&before, &after, sizeof(before));
	/* Every probe child was reaped. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	assert_int_equal(caps.uid, getuid());
	assert_int_equal(caps.euid, geteuid());
	assert_int_equal(caps.gid, getgid());
	assert_true(caps.cap_known);
	assert_int_equal(caps.no_new_privs_now, before.nnp);
	assert_int_equal(caps.seccomp_mode, before.seccomp);
	assert_int_equal(caps.can_switch_user, probe_can_switch_user());
	for (int i = 0; i < PROBE_NS_COUNT; i++)
		assert_true(caps.ns[i].ok || caps.ns[i].err != 0 || caps.ns[i].sig != 0);

	out = open_memstream(&text, &len);
	assert_non_null(out);
	probe_print(&caps, out);
	fclose(out);
	assert_non_null(strstr(text, "namespaces"));
	assert_non_null(strstr(text, "cgroup"));
	assert_non_null(strstr(text, "seccomp"));
	assert_non_null(strstr(text, "privileges"));
	free(text);
}

/* Root on a VM (development and CI): everything valet may use is there. */
/* Whether this process runs in a chroot whose root is a mount point: its
 * root is not pid 1's (when pid 1's can be looked at). */
static bool chrooted(void)
{
	struct stat ours, init;

	return stat("/", &ours) == 0 && stat("/proc/1/root/", &init) == 0 &&
	       (ours.st_dev != init.st_dev || ours.st_ino != init.st_ino);
}

static void test_probe_root(void **state)
{
	struct probe_caps caps;
	bool writable = false;
	int found = 0;

	if (geteuid() != 0) {
		SKIP_NEEDS("not root");
	}
	assert_int_equal(probe_run(&caps), 0);
	for (int i = PROBE_NS_PID; i < PROBE_NS_COUNT; i++)
		assert_true(caps.ns[i].ok);
	/* user namespaces may be switched off, and then say so; and the kernel
	 * makes none for a process in a chroot (EPERM) */
	assert_true(caps.ns[PROBE_NS_USER].ok || caps.max_user_namespaces == 0 ||
		    caps.unprivileged_userns_clone == 0 ||
		    (caps.ns[PROBE_NS_USER].err == EPERM && (caps.root_mount == 0 || chrooted())));

	assert_true(caps.seccomp_filter.ok);
	assert_true(caps.action[PROBE_ACT_KILL_PROCESS].ok);
	assert_true(caps.action[PROBE_ACT_TRAP].ok);
	assert_true(caps.action[PROBE_ACT_ERRNO].ok);
	assert_true(caps.flag[PROBE_FLAG_SPEC_ALLOW].ok);
	assert_true(caps.flag[PROBE_FLAG_TSYNC].ok);
	assert_true(caps.no_new_privs.ok);
	assert_true(caps.can_switch_user);
	assert_true((caps.cap_eff >> CAP_SYS_ADMIN_BIT) & 1);

	assert_int_not_equal(caps.cg_layout, PROBE_CG_NONE);
	if (caps.cg_layout == PROBE_CG_UNIFIED)
		for (int i = 0; i < PROBE_CG1_COUNT; i++)
			assert_false(caps.cg1[i].found);
	if (caps.cg_layout == PROBE_CG_HYBRID)
		assert_true(caps.cg2.cg.found);
	/* Each directory found really is this process's cgroup. */
	if (caps.cg2.cg.found) {
		assert_true(cgroup_holds(caps.cg2.cg.dir, getpid()));
		writable |= caps.cg2.cg.writable.ok;
		found++;
		/* cgroup.kill is 5.14 (Debian 12 has 6.1) */
		if (caps.cg2.cg.writable.ok)
			assert_true(caps.cg2.kill);
	}
	for (int i = 0; i < PROBE_CG1_COUNT; i++) {
		if (!caps.cg1[i].found)
			continue;
		assert_true(cgroup_holds(caps.cg1[i].dir, getpid()));
		writable |= caps.cg1[i].writable.ok;
		found++;
	}
	assert_true(found > 0);
	assert_true(writable);
}

/* The cgroup write test removes what it made, every time. */
static void test_probe_no_leftovers(void **state)
{
	struct probe_caps caps;

	if (geteuid() != 0) {
		SKIP_NEEDS("not root");
	}
	for (int round = 0; round < 3; round++) {
		assert_int_equal(probe_run(&caps), 0);
		assert_int_equal(leftovers(caps.cg2.cg.dir), 0);
		for (int i = 0; i < PROBE_CG1_COUNT; i++)
			if (caps.cg1[i].found)
				assert_int_equal(leftovers(caps.cg1[i].dir), 0);
	}
}

/* In the child of test_probe_unprivileged: 0, or the number of the failed check. */
static int unprivileged_checks(void)
{
	struct probe_caps caps;

	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		return 1;
	if (probe_run(&caps) < 0)
		return 2;
	if (caps.ns[PROBE_NS_PID].ok || caps.ns[PROBE_NS_PID].err != EPERM)
		return 3;
	if (caps.ns[PROBE_NS_MOUNT].ok || caps.ns[PROBE_NS_NET].ok)
		return 4;
	if (caps.can_switch_user || !caps.cap_known || caps.cap_eff != 0)
		return 5;
	/* unprivileged seccomp needs no_new_privs, which the probe child sets */
	if (!caps.seccomp_filter.ok || !caps.no_new_privs.ok)
		return 6;
	if (caps.cg2.cg.found && caps.cg2.cg.writable.ok)
		return 7;
	for (int i = 0; i < PROBE_CG1_COUNT; i++)
		if (caps.cg1[i].found && caps.cg1[i].writable.ok)
			return 8;
	return 0;
}

/* As nobody: no privileged namespaces, no cgroup of root's, no capabilities. */
static void test_probe_unprivileged(void **state)
{
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		SKIP_NEEDS("not root (needs root to become nobody)");
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unprivileged_checks());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Feed the locator other hosts' /proc/self/cgroup and mountinfo. */
static void locate(struct probe_caps *caps, const char *cgroup, const char *mountinfo)
{
	FILE *cf = fmemopen((void *)cgroup, strlen(cgroup), "r");
	FILE *mf = fmemopen((void *)mountinfo, strlen(mountinfo), "r");

	assert_non_null(cf);
	assert_non_null(mf);
	memset(caps, 0, sizeof(*caps));
	probe_cg_locate(caps, cf, mf);
	fclose(cf);
	fclose(mf);
}

static void test_locate_systemd_v2(void **state)
{
	struct probe_caps caps;

	locate(&caps, "0::/system.slice/valetd.service\n",
	       "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	       "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - "
	       "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n");
	assert_true(caps.cg2.cg.found);
	assert_string_equal(caps.cg2.cg.mount, "/sys/fs/cgroup");
	assert_string_equal(caps.cg2.cg.path, "/system.slice/valetd.service");
	assert_string_equal(caps.cg2.cg.dir, "/sys/fs/cgroup/system.slice/valetd.service");
	assert_false(caps.cg2.favordynmods);
	for (int i = 0; i < PROBE_CG1_COUNT; i++)
		assert_false(caps.cg1[i].found);
}

/* What --check prints about the cgroup2 mount (probe_print), in *buf. */
static char *print_of(const struct probe_caps *caps)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	probe_print(caps, out);
	fclose(out);
	return buf;
}

/*
 * favordynmods among the cgroup2 mount's super options (supervisor/cgroup.h:
 * without it a job's move into its cgroup can wait for an RCU grace
 * period); --check says so, and where jobs join cgroup2 for its memory
 * controller, what it costs.
 */
static void test_locate_favordynmods(void **state)
{
	static const char mounts[] =
	    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - "
	    "cgroup2 cgroup2 rw,nsdelegate,favordynmods,memory_recursiveprot\n";
	struct probe_caps caps;
	char *out;

	locate(&caps, "0::/system.slice/valetd.service\n", mounts);
	assert_true(caps.cg2.cg.found);
	assert_true(caps.cg2.favordynmods);
	snprintf(caps.cg2.controllers, sizeof(caps.cg2.controllers), "memory pids");
	out = print_of(&caps);
	assert_non_null(strstr(out, "favordynmods: yes\n"));
	assert_null(strstr(out, "RCU grace period"));
	free(out);

	caps.cg2.favordynmods = false;
	out = print_of(&caps);
	assert_non_null(strstr(out, "favordynmods: no\n"));
	assert_non_null(strstr(out, "RCU grace period"));
	free(out);
	/* Without the memory controller in cgroup2, a job in a PID namespace
	 * does not join it (cgroup.h). */
	snprintf(caps.cg2.controllers, sizeof(caps.cg2.controllers), "hugetlb");
	out = print_of(&caps);
	assert_null(strstr(out, "RCU grace period"));
	free(out);
}

/* The development VM: v1 controllers (cpu alone), cgroup2 at .../unified. */
static void test_locate_hybrid(void **state)
{
	struct probe_caps caps;

	locate(&caps,
	       "9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/process_api/f2a9\n"
	       "1:cpu:/\n0::/\n",
	       "30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	       "31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	       "34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	       "36 30 0:32 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
	       "38 30 0:34 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	       "39 30 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	       "40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
	assert_true(caps.cg2.cg.found);
	assert_string_equal(caps.cg2.cg.dir, "/sys/fs/cgroup/unified");
	assert_string_equal(caps.cg1[PROBE_CG1_MEMORY].dir,
			    "/sys/fs/cgroup/memory/process_api/f2a9");
	assert_string_equal(caps.cg1[PROBE_CG1_PIDS].dir, "/sys/fs/cgroup/pids");
	assert_string_equal(caps.cg1[PROBE_CG1_FREEZER].dir, "/sys/fs/cgroup/freezer");
	assert_string_equal(caps.cg1[PROBE_CG1_CPU].dir, "/sys/fs/cgroup/cpu");
}

/*
 * A container without a cgroup namespace: its own subtree bind-mounted (the
 * mount's root is the container's cgroup), cpu and cpuacct co-mounted, a
 * mount point with an escaped space, and a hierarchy whose mounted part
 * does not hold our cgroup (not found).
 */
static void test_locate_container_v1(void **state)
{
	struct probe_caps caps;

	locate(&caps,
	       "7:cpu,cpuacct:/docker/abc\n5:memory:/docker/abc\n3:pids:/elsewhere\n"
	       "2:freezer:/docker/abcdef\n0::/\n",
	       "40 30 0:40 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup "
	       "rw,cpu,cpuacct\n"
	       "41 30 0:41 /docker/abc /sys/fs/cgroup/my\\040memory ro - cgroup cgroup rw,memory\n"
	       "42 30 0:42 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n"
	       "43 30 0:43 /docker/abc /sys/fs/cgroup/freezer ro - cgroup cgroup rw,freezer\n");
	assert_true(caps.cg1[PROBE_CG1_CPU].found);
	assert_string_equal(caps.cg1[PROBE_CG1_CPU].dir, "/sys/fs/cgroup/cpu,cpuacct");
	assert_true(caps.cg1[PROBE_CG1_MEMORY].found);
	assert_string_equal(caps.cg1[PROBE_CG1_MEMORY].dir, "/sys/fs/cgroup/my memory");
	assert_false(caps.cg1[PROBE_CG1_PIDS].found);
	/* "/docker/abcdef" is not below "/docker/abc" */
	assert_false(caps.cg1[PROBE_CG1_FREEZER].found);
	assert_false(caps.cg2.cg.found); /* no cgroup2 mount */
}

/* cgroup2 mounted twice: /sys/fs/cgroup wins, in either order. */
static void test_locate_v2_twice(void **state)
{
	struct probe_caps caps;

	locate(&caps, "0::/a/b\n",
	       "50 1 0:50 / /mnt/cg rw - cgroup2 cgroup2 rw\n"
	       "51 1 0:50 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
	assert_string_equal(caps.cg2.cg.dir, "/sys/fs/cgroup/a/b");
	locate(&caps, "0::/a/b\n",
	       "51 1 0:50 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
	       "50 1 0:50 / /mnt/cg rw - cgroup2 cgroup2 rw\n");
	assert_string_equal(caps.cg2.cg.dir, "/sys/fs/cgroup/a/b");
}

static void test_print_limits(void **state)
{
	struct sbx_limits none = {0};
	struct sbx_limits some = {.memory_bytes = 256ULL << 20,
				  .cpu_seconds = 3,
				  .max_files = 64,
				  .max_processes = 32,
				  .max_file_size = 1000};
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	probe_print_limits(&none, "> ", out);
	probe_print_limits(&some, "", out);
	fclose(out);
	assert_non_null(strstr(text, "> core 0, address space "));
	assert_non_null(strstr(text, "> open files inherited, processes inherited, "
				     "file size unlimited\n"));
#if !defined(__SANITIZE_ADDRESS__)
	assert_non_null(
	    strstr(text, "address space 256 MiB, CPU time 3 s (SIGXCPU; SIGKILL 1 s later),\n"));
#endif
	assert_non_null(
	    strstr(text, "open files 64, processes 32 (per user), file size 1000 bytes"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_result_str),	       cmocka_unit_test(test_probe_any_user),
	    cmocka_unit_test(test_probe_root),	       cmocka_unit_test(test_probe_no_leftovers),
	    cmocka_unit_test(test_probe_unprivileged), cmocka_unit_test(test_locate_systemd_v2),
	    cmocka_unit_test(test_locate_hybrid),      cmocka_unit_test(test_locate_favordynmods),      cmocka_unit_test(test_locate_container_v1),
	    cmocka_unit_test(test_locate_v2_twice),    cmocka_unit_test(test_print_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
