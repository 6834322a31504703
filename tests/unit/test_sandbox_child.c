/*
 * test_sandbox_child.c - the child-side sandbox, with real forked processes:
 * what sbx_enter() leaves the child - its fds (also shuffled ones), rlimits,
 * session and signals, credentials and capabilities - and how a failing
 * setup step is reported (sbx_fail).
 *
 * Theory of operation: run() forks a child that (optionally) rearranges
 * its fds, calls sbx_enter() with the parameters of a spec, runs a small
 * child function and ends with the raw exit_group system call (never
 * returning into cmocka, never running atexit handlers such as LeakSanitizer's
 * under the seccomp filter). The parent collects the child's stdout, its
 * frame channel and its wait status. Child functions check things from the
 * inside and report the first failed check as a distinct exit code; the
 * parent then asserts on exit codes, signals and frames.
 *
 * Where a check could pass for the wrong reason (a call that fails anyway,
 * without the filter) a control run without the filter shows the difference.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../sandbox/frame.h"
#include "../../sandbox/sandbox.h"
#include "../../supervisor/filter.h"
#include "../../supervisor/isolation.h"

/* Under AddressSanitizer the address space limit is left alone (child_limits). */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#include "sandbox_run.h"

/* ---- fds, limits, session, credentials -------------------------------------------------- */

struct fd_check {
	int leaked_fd; /* open in the parent without CLOEXEC */
	dev_t null_rdev;
	bool frame_cloexec;
};

static int child_fds(void *arg)
{
	const struct fd_check *c = arg;
	struct stat st;
	int fd;

	CHECK(fcntl(c->leaked_fd, F_GETFD) < 0 && errno == EBADF, 10);
	for (fd = 4; fd < 256; fd++)
		CHECK(fcntl(fd, F_GETFD) < 0, 11);
	CHECK(fstat(0, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == c->null_rdev, 12);
	for (fd = 0; fd < 3; fd++)
		CHECK(fcntl(fd, F_GETFD) == 0, 13);
	CHECK(fcntl(3, F_GETFD) == (c->frame_cloexec ? FD_CLOEXEC : 0), 14);
	CHECK(fstat(3, &st) == 0 && S_ISFIFO(st.st_mode), 15);
	CHECK(frame_write(3, FRAME_START, 7, NULL, 0) == 0, 16);
	return 0;
}

static void test_fds(void **state)
{
	struct fd_check c;
	struct spec s = plain_spec(child_fds, &c);
	struct result r;
	struct stat st;
	uint32_t len;
	int leaked = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */

	assert_true(leaked >= 0);
	c.leaked_fd = fcntl(leaked, F_DUPFD, 100); /* and one high up */
	assert_true(c.leaked_fd >= 100);
	assert_int_equal(stat("/dev/null", &st), 0);
	c.null_rdev = st.st_rdev;
	c.frame_cloexec = false;
	run(&s, &r);
	expect_exit(&r, 0);
	assert_non_null(find_frame(&r, FRAME_START, &len));

	c.frame_cloexec = true;
	s.frame_cloexec = true;
	run(&s, &r);
	expect_exit(&r, 0);

	/* Control: without sbx_enter the leaked fd is there. */
	s.no_enter = true;
	run(&s, &r);
	expect_exit(&r, 10);
	close(leaked);
	close(c.leaked_fd);
}

/*
 * The sources sit on the target numbers, in the wrong places: stdin on 2,
 * stdout (= stderr) on 3, the frame channel on 0. A naive dup2 sequence
 * clobbers one of them.
 */
struct shuffle {
	int in_fd;
	ino_t in_ino, out_ino, frame_ino;
};

static void pre_shuffle(struct sbx_params *p, void *arg)
{
	struct shuffle *sh = arg; /* the child's own copy */
	struct stat st;
	int in, out, frame;

	if (fstat(p->stdout_fd, &st) < 0)
		child_exit(90);
	sh->out_ino = st.st_ino;
	if (fstat(p->frame_fd, &st) < 0)
		child_exit(90);
	sh->frame_ino = st.st_ino;
	in = fcntl(sh->in_fd, F_DUPFD, 60);
	out = fcntl(p->stdout_fd, F_DUPFD, 61);
	frame = fcntl(p->frame_fd, F_DUPFD, 62);
	if (in < 0 || out < 0 || frame < 0 || dup2(frame, 0) != 0 || dup2(in, 2) != 2 ||
	    dup2(out, 3) != 3)
		child_exit(91);
	p->stdin_fd = 2;
	p->stdout_fd = 3;
	p->stderr_fd = 3;
	p->frame_fd = 0;
}

static int child_shuffled(void *arg)
{
	const struct shuffle *sh = arg;
	struct stat st;
	char buf[16];

	CHECK(fstat(0, &st) == 0 && st.st_ino == sh->in_ino, 10);
	CHECK(fstat(1, &st) == 0 && st.st_ino == sh->out_ino, 11);
	CHECK(fstat(2, &st) == 0 && st.st_ino == sh->out_ino, 12);
	CHECK(fstat(3, &st) == 0 && st.st_ino == sh->frame_ino, 13);
	CHECK(pread(0, buf, 5, 0) == 5 && memcmp(buf, "input", 5) == 0, 14);
	CHECK(write(1, "out ", 4) == 4 && write(2, "err", 3) == 3, 15);
	CHECK(frame_write(3, FRAME_RESULT, 1, "{}", 2) == 0, 16);
	return 0;
}

static void test_fds_shuffled(void **state)
{
	struct shuffle sh;
	struct spec s = strict_spec(child_shuffled, &sh);
	struct result r;
	struct stat st;
	uint32_t len = 0;
	const char *payload;

	sh.in_fd = memfd_create("input", MFD_CLOEXEC);
	assert_true(sh.in_fd >= 0);
	assert_int_equal(write(sh.in_fd, "input", 5), 5);
	assert_int_equal(fstat(sh.in_fd, &st), 0);
	sh.in_ino = st.st_ino;
	s.pre = pre_shuffle;
	run(&s, &r);
	expect_exit(&r, 0);
	r.out[r.out_len] = '\0';
	assert_string_equal(r.out, "out err");
	payload = find_frame(&r, FRAME_RESULT, &len);
	assert_non_null(payload);
	assert_int_equal(len, 2);
	assert_memory_equal(payload, "{}", 2);
	close(sh.in_fd);
}

static const int test_rlimit_cpu = 50;
static const int test_rlimit_files = 32;
static const int test_rlimit_fsize = 1 << 20;

struct limit_check {
	rlim_t as_before;
	rlim_t nproc;
};

static int check_limit2(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl;

	return getrlimit(res, &rl) == 0 && rl.rlim_cur == soft && rl.rlim_max == hard;
}

static int check_limit(int res, rlim_t want)
{
	return check_limit2(res, want, want);
}

static int child_limits(void *arg)
{
	const struct limit_check *c = arg;

	CHECK(check_limit(RLIMIT_CORE, 0), 10);
#ifdef TEST_ASAN
	{
		struct rlimit rl;

		CHECK(getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur == c->as_before, 11);
	}
#else
	CHECK(check_limit(RLIMIT_AS, 1UL << 30), 11);
#endif
	/* SIGXCPU at the limit, SIGKILL a second later. */
	CHECK(check_limit2(RLIMIT_CPU, test_rlimit_cpu, test_rlimit_cpu + 1), 12);
	CHECK(check_limit(RLIMIT_NOFILE, test_rlimit_files), 13);
	CHECK(check_limit(RLIMIT_NPROC, c->nproc), 14);
	CHECK(check_limit(RLIMIT_FSIZE, test_rlimit_fsize), 15);
	return 0;
}

static void test_rlimits(void **state)
{
	struct limit_check c;
	struct spec s = strict_spec(child_limits, &c);
	struct result r;
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_AS, &rl), 0);
	c.as_before = rl.rlim_cur;
	assert_int_equal(getrlimit(RLIMIT_NPROC, &rl), 0);
	c.nproc = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
	s.limits.memory_bytes = 1UL << 30;
	s.limits.cpu_seconds = test_rlimit_cpu;
	s.limits.max_files = test_rlimit_files;
	s.limits.max_processes = c.nproc;
	s.limits.max_file_size = test_rlimit_fsize;
	run(&s, &r);
	expect_exit(&r, 0);

	/* Zero means "leave": the core limit is still 0, the others are not
	 * what the child checks for. */
	s = plain_spec(child_limits, &c);
	run(&s, &r);
	assert_true(WIFEXITED(r.status));
	assert_in_range(WEXITSTATUS(r.status), 11, 15);
}

struct session_check {
	const char *workdir;
	char parent_cwd[256];
};

static int child_session(void *arg)
{
	const struct session_check *c = arg;
	struct sigaction sa;
	sigset_t mask;
	char cwd[256];
	int sig = 0;

	CHECK(getsid(0) == getpid(), 10);
	CHECK(getpgrp() == getpid(), 11);
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 12);
	CHECK(prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 && sig == SIGKILL, 13);
	CHECK(sigaction(SIGUSR1, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, 14);
	CHECK(sigprocmask(SIG_SETMASK, NULL, &mask) == 0 && !sigismember(&mask, SIGUSR2), 15);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL, 16);
	/* No workdir: the child stays where its parent was. */
	CHECK(c->workdir || strcmp(cwd, c->parent_cwd) == 0, 17);
	CHECK(!c->workdir || strcmp(cwd, c->workdir) == 0, 17);
	/* glibc's own signal 32, ignored in the parent, is not inherited. */
	CHECK(sbx_signal_disposition(32) == 0, 18);
	return 0;
}

/* rt_sigaction(sig, SIG_IGN) without glibc, which refuses signals 32 and 33. */
static void raw_ignore(int sig, bool ignore)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} act = {.handler = ignore ? (void *)SIG_IGN : (void *)SIG_DFL};

	assert_int_equal(syscall(SYS_rt_sigaction, sig, &act, NULL, sizeof(act.mask)), 0);
}

static void test_session(void **state)
{
	struct session_check c = {NULL, ""};
	struct spec s = plain_spec(child_session, &c);
	struct result r;
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigset_t block, oldmask;
	char dir[] = "/tmp/test_sandbox.XXXXXX";

	/* The child inherits an ignored SIGUSR1 and signal 32 (as from a parent
	 * that set it without glibc), and a blocked SIGUSR2. */
	sigaction(SIGUSR1, &ign, &old);
	raw_ignore(32, true);
	assert_int_equal(sbx_signal_disposition(32), 1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	assert_non_null(getcwd(c.parent_cwd, sizeof(c.parent_cwd)));

	run(&s, &r);
	expect_exit(&r, 0);
	assert_non_null(mkdtemp(dir));
	c.workdir = dir;
	s.workdir = dir;
	run(&s, &r);
	expect_exit(&r, 0);
	rmdir(dir);

	/* Control: a plain fork keeps its parent's session. */
	s.no_enter = true;
	run(&s, &r);
	expect_exit(&r, 10);

	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGUSR1, &old, NULL);
	raw_ignore(32, false);
}

struct user_check {
	uid_t uid;
	gid_t gid;
};

static int child_user(void *arg)
{
	const struct user_check *c = arg;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	uid_t r, e, s;
	int sig = 0;

	CHECK(getresuid(&r, &e, &s) == 0 && r == c->uid && e == c->uid && s == c->uid, 10);
	CHECK(getgid() == c->gid && getegid() == c->gid, 11);
	CHECK(getgroups(0, NULL) == 0, 12);
	CHECK(setuid(0) < 0 && errno == EPERM, 13);
	CHECK(syscall(SYS_capget, &hdr, data) == 0, 14);
	CHECK(data[0].effective == 0 && data[0].permitted == 0 && data[1].effective == 0 &&
		  data[1].permitted == 0,
	      15);
	/* The uid change cleared the parent-death signal; it must be back. */
	CHECK(prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 && sig == SIGKILL, 16);
	return 0;
}

/* Supplementary groups that sbx_enter must drop. */
static void pre_groups(struct sbx_params *p, void *arg)
{
	gid_t groups[2] = {4242, 4343};

	if (setgroups(2, groups) < 0)
		child_exit(90);
}

static void test_drop_user(void **state)
{
	struct user_check c;
	struct spec s = plain_spec(child_user, &c);
	struct result r;

	if (geteuid() != 0) {
		SKIP_NEEDS("not root: drop_user not tested");
	}
	assert_int_equal(isolation_lookup_user("nobody", &c.uid, &c.gid), 0);
	assert_int_equal(c.uid, 65534);
	s.drop_user = true;
	s.uid = c.uid;
	s.gid = c.gid;
	s.pre = pre_groups;
	run(&s, &r);
	expect_exit(&r, 0);
	/* With the strict filter on top, the task still runs. */
	s.filter = &strict_filter;
	s.trap_sigsys = true;
	s.fn = child_compute;
	run(&s, &r);
	expect_exit(&r, 0);
}

static int child_no_caps(void *arg)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];

	(void)arg;
	CHECK(syscall(SYS_capget, &hdr, data) == 0, 14);
	CHECK(data[0].effective == 0 && data[0].permitted == 0 && data[0].inheritable == 0 &&
		  data[1].effective == 0 && data[1].permitted == 0,
	      15);
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) == 0, 16);
	return 0;
}

/* A daemon that keeps its user (it cannot switch) still hands its jobs no
 * capability: run as root without drop_user, the task has none. */
static void test_caps_dropped_without_user_switch(void **state)
{
	struct spec s = plain_spec(child_no_caps, NULL);
	struct result r;

	(void)state;
	if (geteuid() != 0) {
		SKIP_NEEDS("not root: no capabilities to drop");
	}
	run(&s, &r);
	expect_exit(&r, 0);
}

/* ---- sbx_fail and failing setup steps --------------------------------------------------- */

static void expect_setup_error(const struct result *r, const char *step, int err)
{
	struct sbx_error e;
	uint32_t len = 0;
	const void *payload = find_frame(r, FRAME_SETUP_ERROR, &len);

	expect_exit(r, 126);
	assert_non_null(payload);
	assert_int_equal(len, sizeof(e));
	memcpy(&e, payload, sizeof(e));
	assert_string_equal(e.step, step);
	assert_int_equal(e.err, err);
}

static void pre_fail(struct sbx_params *p, void *arg)
{
	struct sbx_error e = {.step = "test step", .err = EIO};

	sbx_fail(p->frame_fd, &e);
}

static void test_sbx_fail(void **state)
{
	struct spec s = plain_spec(NULL, NULL);
	struct result r;

	s.pre = pre_fail;
	run(&s, &r);
	expect_setup_error(&r, "test step", EIO);

	/* A step after the fds moved: the frame channel is on fd 3 now and
	 * the caller's frame_fd (40-something) is closed. */
	s = plain_spec(NULL, NULL);
	s.workdir = "/nonexistent/valet";
	run(&s, &r);
	expect_setup_error(&r, "chdir", ENOENT);

	/* A step before: the parent-death check with the wrong parent. */
	s = plain_spec(NULL, NULL);
	s.expected_parent = 1;
	run(&s, &r);
	expect_setup_error(&r, "pdeathsig", ESRCH);

	/* An rlimit the kernel refuses (above fs.nr_open). */
	s = plain_spec(NULL, NULL);
	s.limits.max_files = 1ULL << 40;
	run(&s, &r);
	expect_setup_error(&r, "setrlimit NOFILE", EPERM);
}

/* ---- main ------------------------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fds),
	    cmocka_unit_test(test_fds_shuffled),
	    cmocka_unit_test(test_rlimits),
	    cmocka_unit_test(test_session),
	    cmocka_unit_test(test_drop_user),
	    cmocka_unit_test(test_caps_dropped_without_user_switch),
	    cmocka_unit_test(test_sbx_fail),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
