/*
 * sandbox_run.h - the harness of the child-side sandbox tests
 * (test_sandbox.c, test_sandbox_child.c): run() forks a child that
 * (optionally) rearranges its fds, calls sbx_enter() with the parameters of
 * a spec, runs a small child function and ends with the raw exit_group
 * system call; the parent collects the child's stdout, its frame channel and
 * its wait status, and the expect_*() helpers assert on them. setup() and
 * teardown() compile and release the three profiles' filters. Include after
 * the system headers, cmocka.h and skip.h.
 */
#ifndef VALET_TEST_SANDBOX_RUN_H
#define VALET_TEST_SANDBOX_RUN_H

static struct sbx_filter strict_filter;
static struct sbx_filter exec_filter;
static struct sbx_filter exec_net_filter;

/* ---- harness --------------------------------------------------------------------------- */

struct spec {
	const struct sbx_filter *filter;
	bool trap_sigsys;
	bool frame_cloexec;
	bool no_enter; /* run fn without sbx_enter (control runs) */
	const char *workdir;
	struct sbx_limits limits;
	bool drop_user;
	uid_t uid;
	gid_t gid;
	pid_t expected_parent; /* 0: this process */
	int stdin_fd;	       /* -1: /dev/null */
	/* In the child, before sbx_enter; may rearrange fds and edit p. */
	void (*pre)(struct sbx_params *p, void *arg);
	/* In the child, after sbx_enter; returns the exit code. */
	int (*fn)(void *arg);
	void *arg;
};

struct result {
	int status;
	char out[8192];
	size_t out_len;
	unsigned char frames[8192];
	size_t frames_len;
};

__attribute__((noreturn, unused)) static void child_exit(int code)
{
	/* Raw: no atexit, no stdio flush, nothing the strict filter traps. */
	for (;;)
		syscall(SYS_exit_group, code);
}

/* Read what is available on *fd into buf; close it and set -1 at EOF. */
static __attribute__((unused)) void drain(int *fd, void *buf, size_t cap, size_t *len)
{
	char scratch[4096];
	ssize_t n;

	if (*len < cap)
		n = read(*fd, (char *)buf + *len, cap - *len);
	else
		n = read(*fd, scratch, sizeof(scratch)); /* overflow: discard */
	if (n > 0 && *len < cap)
		*len += (size_t)n;
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

/* Read the child's stdout and frame channel to EOF, then reap it. */
static __attribute__((unused)) void collect(pid_t pid, int frame_fd, int out_fd, struct result *r)
{
	int fds[2] = {frame_fd, out_fd};
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd pfd[2] = {{.fd = fds[0], .events = POLLIN},
					{.fd = fds[1], .events = POLLIN}};

		if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		if (pfd[0].revents)
			drain(&fds[0], r->frames, sizeof(r->frames), &r->frames_len);
		if (pfd[1].revents)
			drain(&fds[1], r->out, sizeof(r->out) - 1, &r->out_len);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 20) {
			kill(pid, SIGKILL);
			waitpid(pid, &r->status, 0);
			fail_msg("child %d hung", (int)pid);
		}
	}
	while (waitpid(pid, &r->status, 0) < 0)
		assert_int_equal(errno, EINTR);
}

/* In the child: enter the sandbox as s says, run s->fn, never return. */
__attribute__((noreturn)) static void child_main(const struct spec *s, int frame_fd, int out_fd,
						 int devnull, pid_t parent)
{
	struct sbx_params p = {
	    .stdin_fd = s->stdin_fd,
	    .stdout_fd = out_fd,
	    .stderr_fd = 2, /* the test's own stderr: sanitizer reports show */
	    .frame_fd = frame_fd,
	    .frame_cloexec = s->frame_cloexec,
	    .devnull_fd = devnull,
	    .expected_parent = s->expected_parent ? s->expected_parent : parent,
	    .drop_user = s->drop_user,
	    .uid = s->uid,
	    .gid = s->gid,
	    .limits = s->limits,
	    .filter = s->filter,
	    .trap_sigsys = s->trap_sigsys,
	    .workdir = s->workdir,
	};
	struct sbx_error err;

	if (s->pre)
		s->pre(&p, s->arg);
	if (!s->no_enter && sbx_enter(&p, &err) < 0)
		sbx_fail(p.frame_fd, &err);
	child_exit(s->fn ? s->fn(s->arg) : 0);
}

static __attribute__((unused)) void run(const struct spec *s, struct result *r)
{
	int frame[2], out[2], devnull, high;
	pid_t parent = getpid(), pid;

	memset(r, 0, sizeof(*r));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);
	assert_int_equal(pipe2(frame, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	/* A frame fd well above 3, so that sbx_enter must move it. */
	high = fcntl(frame[1], F_DUPFD_CLOEXEC, 40);
	assert_true(high >= 40);
	close(frame[1]);
	frame[1] = high;
	fflush(stdout);
	fflush(stderr);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_main(s, frame[1], out[1], devnull, parent);
	close(frame[1]);
	close(out[1]);
	close(devnull);
	collect(pid, frame[0], out[0], r);
}

/* The first frame of the given type, or NULL. */
static __attribute__((unused)) const void *find_frame(const struct result *r, uint16_t type, uint32_t *len)
{
	size_t off = 0;

	while (off + sizeof(struct frame_header) <= r->frames_len) {
		struct frame_header h;

		memcpy(&h, r->frames + off, sizeof(h));
		off += sizeof(h);
		if (off + h.len > r->frames_len)
			return NULL;
		if (h.type == type) {
			*len = h.len;
			return r->frames + off;
		}
		off += h.len;
	}
	return NULL;
}

static __attribute__((unused)) void expect_exit(const struct result *r, int code)
{
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != code) {
		if (WIFSIGNALED(r->status))
			fail_msg("expected exit %d, got signal %d", code, WTERMSIG(r->status));
		fail_msg("expected exit %d, got exit %d", code, WEXITSTATUS(r->status));
	}
}

static __attribute__((unused)) void expect_signal(const struct result *r, int sig)
{
	if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != sig) {
		if (WIFEXITED(r->status))
			fail_msg("expected signal %d, got exit %d", sig, WEXITSTATUS(r->status));
		fail_msg("expected signal %d, got signal %d", sig, WTERMSIG(r->status));
	}
}

/* Killed by SIGSYS, and the reporter named syscall nr (or no frame: nr < 0),
 * with the filter's trap data (filter.c), which only a real trap carries. */
static __attribute__((unused)) void expect_sigsys(const struct result *r, int nr)
{
	uint32_t len = 0;
	const void *payload = find_frame(r, FRAME_SYSCALL, &len);

	expect_signal(r, SIGSYS);
	if (nr < 0) {
		assert_null(payload);
		return;
	}
	assert_non_null(payload);
	assert_int_equal(len, sizeof(struct frame_syscall));
	{
		struct frame_syscall got;

		memcpy(&got, payload, sizeof(got));
		assert_int_equal(got.nr, nr);
		assert_int_not_equal(filter_trap_data(), 0);
		assert_int_equal(got.trap_data, filter_trap_data());
	}
}

static __attribute__((unused)) struct spec strict_spec(int (*fn)(void *), void *arg)
{
	struct spec s = {
	    .filter = &strict_filter, .trap_sigsys = true, .stdin_fd = -1, .fn = fn, .arg = arg};
	return s;
}

static __attribute__((unused)) struct spec exec_spec(int (*fn)(void *), void *arg)
{
	struct spec s = {
	    .filter = &exec_filter, .frame_cloexec = true, .stdin_fd = -1, .fn = fn, .arg = arg};
	return s;
}

static __attribute__((unused)) struct spec plain_spec(int (*fn)(void *), void *arg)
{
	struct spec s = {.stdin_fd = -1, .fn = fn, .arg = arg};
	return s;
}

#define CHECK(cond, code)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return (code);                                                             \
	} while (0)

static __attribute__((unused)) int setup(void **state)
{
	if (filter_compile(SBX_PROFILE_STRICT, &strict_filter) < 0 ||
	    filter_compile(SBX_PROFILE_EXEC, &exec_filter) < 0 ||
	    filter_compile(SBX_PROFILE_EXEC_NET, &exec_net_filter) < 0)
		return -1;
	return 0;
}

static __attribute__((unused)) int teardown(void **state)
{
	sbx_filter_release(&strict_filter);
	sbx_filter_release(&exec_filter);
	sbx_filter_release(&exec_net_filter);
	return 0;
}

static __attribute__((unused)) int child_compute(void *arg)
{
	char msg[64];
	unsigned long sum = 0, i;
	struct timespec ts;
	char *heap;
	int n;

	for (i = 1; i <= 1000; i++)
		sum += i;
	/* Memory, the clock, fcntl(F_GETFL), getrlimit and stdio all work. */
	heap = malloc(1 << 20);
	CHECK(heap != NULL, 10);
	memset(heap, 1, 1 << 20);
	free(heap);
	CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0, 11);
	CHECK(fcntl(1, F_GETFL) >= 0, 12);
	{
		struct rlimit rl;

		CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, 13);
	}
	n = snprintf(msg, sizeof(msg), "sum=%lu\n", sum);
	CHECK(write(1, msg, (size_t)n) == n, 14);
	printf("stdio too\n"); /* fstat(1) through newfstatat(AT_EMPTY_PATH) */
	CHECK(fflush(stdout) == 0, 15);
	return 0;
}

#endif
