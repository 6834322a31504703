/*
 * sbx_filter_run.h - the harness of the seccomp profile tests
 * (test_sbx_filter.c, test_sbx_filter_sockets.c): run() forks a child that
 * enters the sandbox with sbx_enter() and the compiled filter of one
 * profile (or none: a control run), exactly as a job child does, in a
 * scratch working directory, and then either execs a real program or exits
 * with what a check function returns; the parent collects the child's
 * stdout and stderr and its wait status. Check functions end with the raw
 * exit_group system call, never returning into cmocka, and report the first
 * unexpected answer as a distinct exit code (CHECK, CHECK_ERR). setup() and
 * teardown() compile and release every profile's filter and make and
 * remove the working directory. Include after the system headers,
 * cmocka.h, skip.h, sandbox/sandbox.h and supervisor/filter.h.
 */
#ifndef VALET_TEST_SBX_FILTER_RUN_H
#define VALET_TEST_SBX_FILTER_RUN_H

static struct sbx_filter filters[SBX_PROFILE_COUNT];
static char workdir[] = "/tmp/valet-test-sbx-filter.XXXXXX";

/* ---- harness --------------------------------------------------------------------------- */

struct result {
	int status;
	char out[16384];
	size_t out_len;
};

__attribute__((noreturn)) static void child_exit(int code)
{
	for (;;)
		syscall(SYS_exit_group, code);
}

/*
 * Fork; in the child enter the sandbox under profile (or none, when
 * profile is SBX_PROFILE_COUNT: a control run) and either exec argv or
 * exit with fn(arg). The child's stdout and stderr come back in r->out.
 */
static void run(enum sbx_profile profile, char *const *argv, int (*fn)(void *), void *arg,
		struct result *r)
{
	static char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
				    "HOME=/nonexistent", NULL};
	int out[2], frame[2], devnull;
	struct timespec t0, t1;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(frame, O_CLOEXEC), 0);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sbx_params p = {
		    .stdin_fd = -1,
		    .stdout_fd = out[1],
		    .stderr_fd = out[1],
		    .frame_fd = frame[1],
		    .frame_cloexec = true,
		    .devnull_fd = devnull,
		    .expected_parent = getppid(),
		    .filter = profile < SBX_PROFILE_COUNT ? &filters[profile] : NULL,
		    .workdir = workdir,
		};
		struct sbx_error err;

		if (sbx_enter(&p, &err) < 0)
			sbx_fail(SBX_FD_FRAME, &err);
		if (argv) {
			execve(argv[0], argv, env);
			child_exit(127);
		}
		child_exit(fn(arg));
	}
	close(out[1]);
	close(frame[1]);
	close(devnull);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = {.fd = out[0], .events = POLLIN};
		char scratch[4096];
		ssize_t n;

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		if (pfd.revents) {
			size_t room = sizeof(r->out) - 1 - r->out_len;

			n = read(out[0], room ? r->out + r->out_len : scratch,
				 room ? room : sizeof(scratch));
			if (n == 0 || (n < 0 && errno != EINTR))
				break;
			if (n > 0 && room)
				r->out_len += (size_t)n;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 60) {
			kill(pid, SIGKILL);
			break;
		}
	}
	close(out[0]);
	close(frame[0]);
	while (waitpid(pid, &r->status, 0) < 0)
		assert_int_equal(errno, EINTR);
}

static void expect_exit(const struct result *r, int code, const char *what)
{
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == code)
		return;
	print_message("%s: output:\n%s\n", what, r->out);
	if (WIFSIGNALED(r->status))
		fail_msg("%s: expected exit %d, got signal %d", what, code, WTERMSIG(r->status));
	fail_msg("%s: expected exit %d, got exit %d", what, code, WEXITSTATUS(r->status));
}

static void run_program(enum sbx_profile profile, const char *what, char *const *argv)
{
	struct result r;

	run(profile, argv, NULL, NULL, &r);
	expect_exit(&r, 0, what);
}

#define CHECK(cond, code)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return (code);                                                             \
	} while (0)

/* A system call that must fail with err. */
#define CHECK_ERR(call, err, code) CHECK((call) == -1 && errno == (err), code)

#define HIGH (1UL << 32) /* garbage in the upper half of a 32-bit argument */

/* Whether path is installed (an executable); when not, says so. */
static bool have(const char *path)
{
	if (access(path, X_OK) == 0)
		return true;
	print_message("%s not installed: not tested\n", path);
	return false;
}

/* ---- group setup ---------------------------------------------------------------------- */

static int setup(void **state)
{
	if (!mkdtemp(workdir))
		return -1;
	for (int i = 0; i < SBX_PROFILE_COUNT; i++)
		if (filter_compile((enum sbx_profile)i, &filters[i]) < 0)
			return -1;
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < SBX_PROFILE_COUNT; i++)
		sbx_filter_release(&filters[i]);
	return rmdir(workdir) == 0 ? 0 : -1;
}

#endif
