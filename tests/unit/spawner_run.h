/*
 * spawner_run.h - the harness of the spawner tests (test_spawner.c,
 * test_spawner_kill.c): C tasks, a spawner of this very program, and the
 * daemon's side of the protocol played by hand.
 *
 * Theory of operation: a test program that includes this is also a spawner
 * program, the way a program with tasks of its own is (valet_main()): its
 * main() calls fixture_main() first, which registers a few C tasks and,
 * started with SPAWN_ARG, becomes the spawner. The group setup compiles the
 * seccomp filters and names three exec tasks. Each test starts its own
 * spawner with spawn_start() (as valetd does: this program, exec'd, the
 * filters and the tasks in its setup document), learns the task indexes
 * from its READY, and then plays the daemon by hand, speaking the protocol
 * of spawn_proto.h: it makes the frame and output pipes, sends a START
 * request with the input inline (or as a memfd on stdin) and the fds by
 * SCM_RIGHTS, reads STARTED and EXIT events from the socket, and reads the
 * frames (sandbox/frame.h) the job child writes. Assertions are on the
 * frames, the captured output and the wait status in the EXIT event. The
 * teardown closes the daemon's end, which must make the spawner kill its
 * children and exit; it is reaped with a deadline.
 *
 * When the test runs as root the spawner drops job children to "nobody",
 * as valetd does.
 *
 * Include after the system headers, cmocka.h, valet.h, and of sandbox/
 * frame.h and spawn_proto.h, of supervisor/ config.h, filter.h,
 * isolation.h, spawn.h and tasks.h.
 */
#ifndef VALET_TEST_SPAWNER_RUN_H
#define VALET_TEST_SPAWNER_RUN_H

#define MAX_SLOTS 4
#define DEADLINE_MS 20000  /* for anything a run should do */
#define REAP_MS 5000	   /* for the spawner to exit once its socket closed */
#define MS (1000 * 1000LL) /* in ns */

/* ---- the tasks -------------------------------------------------------------------------- */

/* Writes to stdout and stderr, returns its params. */
static json_t *task_ok(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	(void)!write(1, "out\n", 4);
	(void)!write(2, "err\n", 4);
	return json_incref(params);
}

/* Returns the previous result it was given (NULL: no metadata). */
static json_t *task_prev(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	return json_incref(previous);
}

static json_t *task_fail(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	json_t *partial = json_pack("{s:i}", "ignored", 1);

	/* A result returned along with a failure is still sent. */
	valet_fail(ctx, "first");
	valet_fail(ctx, "boom %d", 7);
	return partial;
}

/* Not NULL (UBSan would report that first) but never mapped. */
static volatile uintptr_t bad_address = 16;

static json_t *task_crash(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	*(volatile int *)bad_address = 1;
	return NULL;
}

static json_t *task_loop(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	for (;;) {
		struct timespec ts = {3600, 0};

		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* A system call the strict profile does not allow. */
static json_t *task_blocked(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	syscall(SYS_getuid);
	return json_string("not reached");
}

/* ---- fixture ---------------------------------------------------------------------------- */

static const struct {
	const char *name;
	valet_task_fn fn;
} c_tasks[] = {{"ok", task_ok},	      {"prev", task_prev}, {"fail", task_fail},
	       {"crash", task_crash}, {"loop", task_loop}, {"blocked", task_blocked}};

/* The task indexes, as the spawner's READY gives them. */
static int T_OK, T_PREV, T_FAIL, T_CRASH, T_LOOP, T_BLOCKED, T_ECHO, T_INET, T_INET_NET;

static struct {
	struct sbx_filter filters[SBX_NFILTERS];
	struct config_exec_task exec[3];
	struct spawn_setup setup;
	pid_t pid;		      /* the spawner */
	int fd;			      /* the daemon's end */
	struct spawn_evt pending[32]; /* events read early */
	int npending;
} fx = {.fd = -1};

struct run {
	uint32_t slot;
	uint64_t id;
	pid_t pid;
	int frame_fd, out_fd, err_fd; /* read ends; -1 at EOF or none */
	unsigned char frames[1 << 17];
	size_t frames_len;
	char out[1 << 14], err[1 << 14];
	size_t out_len, err_len;
	struct spawn_evt exit;
};

static struct run runs[MAX_SLOTS + 1];

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
	return now_ns() / MS;
}

static int group_setup(void **state)
{
	static char *echo[] = {"/bin/echo", "hello", "exec", NULL};
	static char *inet[] = {"/usr/bin/perl", "-MSocket", "-e",
			       "socket(my $s, PF_INET, SOCK_STREAM, 0) or exit 3", NULL};
	static char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	/* The same program under exec and under exec+net. */
	fx.exec[0] =
	    (struct config_exec_task){.name = "echo", .argv = echo, .profile = SBX_PROFILE_EXEC};
	fx.exec[1] =
	    (struct config_exec_task){.name = "inet", .argv = inet, .profile = SBX_PROFILE_EXEC};
	fx.exec[2] = (struct config_exec_task){
	    .name = "inet_net", .argv = inet, .profile = SBX_PROFILE_EXEC_NET};
	for (int i = 0; i < SBX_NFILTERS; i++)
		if (filter_compile(i, &fx.filters[i]) < 0)
			return -1;
	fx.setup = (struct spawn_setup){.program = self,
					.nslots = MAX_SLOTS,
					.filters = fx.filters,
					.exec_tasks = fx.exec,
					.nexec = 3};
	if (geteuid() == 0) {
		if (isolation_lookup_user("nobody", &fx.setup.uid, &fx.setup.gid) < 0)
			return -1;
		fx.setup.drop_user = true;
	}
	return 0;
}

static int group_teardown(void **state)
{
	for (int i = 0; i < SBX_NFILTERS; i++)
		filter_release(&fx.filters[i]);
	return 0;
}

/* Each task's index in the spawner's table; -1 when one is missing. */
static int learn_indexes(const char *table)
{
	struct {
		const char *name;
		int *index;
	} want[] = {{"ok", &T_OK},	 {"prev", &T_PREV}, {"fail", &T_FAIL},
		    {"crash", &T_CRASH}, {"loop", &T_LOOP}, {"blocked", &T_BLOCKED},
		    {"echo", &T_ECHO},	 {"inet", &T_INET}, {"inet_net", &T_INET_NET}};
	struct tasks *t = tasks_new();
	char err[256];
	int rc = t ? tasks_load(t, table, strlen(table), err, sizeof(err)) : -1;

	for (size_t i = 0; rc == 0 && i < sizeof(want) / sizeof(want[0]); i++)
		if ((*want[i].index = tasks_index(t, want[i].name)) < 0) {
			print_error("no task %s in the spawner's table %s\n", want[i].name, table);
			rc = -1;
		}
	tasks_free(t);
	return rc;
}

static int setup(void **state)
{
	char err[512], *table = NULL;
	int rc;

	fflush(stdout);
	fflush(stderr);
	fx.npending = 0;
	rc = spawn_start(&fx.setup, &fx.pid, &fx.fd, &table, NULL, err, sizeof(err));
	if (rc < 0) {
		print_error("spawn_start: %s\n", err);
		return -1;
	}
	rc = learn_indexes(table);
	free(table);
	return rc;
}

/* Wait for the spawner to exit by itself; 0 = its wait status, -1 = it hung. */
static int reap_spawner(int *status)
{
	int64_t end = now_ms() + REAP_MS;

	for (;;) {
		pid_t p = waitpid(fx.pid, status, WNOHANG);

		if (p == fx.pid)
			return 0;
		if (p < 0 && errno != EINTR)
			return -1;
		if (now_ms() > end)
			return -1;
		usleep(5000);
	}
}

static int teardown(void **state)
{
	int status, rc = 0;

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		if (runs[i].frame_fd >= 0)
			close(runs[i].frame_fd);
		if (runs[i].out_fd >= 0)
			close(runs[i].out_fd);
		if (runs[i].err_fd >= 0)
			close(runs[i].err_fd);
		runs[i].frame_fd = runs[i].out_fd = runs[i].err_fd = -1;
	}
	if (fx.fd >= 0)
		close(fx.fd);
	fx.fd = -1;
	if (fx.pid > 0 && reap_spawner(&status) < 0) {
		kill(fx.pid, SIGKILL);
		waitpid(fx.pid, &status, 0);
		rc = -1;
	}
	fx.pid = 0;
	return rc;
}

/* ---- the protocol --------------------------------------------------------------------------- */

static int send_req(const struct spawn_req *req, const char *input, const int *fds, int nfds)
{
	union {
		char raw[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov[2] = {{(void *)req, sizeof(*req)}, {(void *)input, req->input_len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = req->input_len ? 2 : 1};

	memset(cbuf.raw, 0, sizeof(cbuf.raw));
	if (nfds > 0) {
		struct cmsghdr *c;

		msg.msg_control = cbuf.raw;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	while (sendmsg(fx.fd, &msg, MSG_NOSIGNAL) < 0) {
		struct pollfd p = {fx.fd, POLLOUT, 0};

		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		poll(&p, 1, 1000);
	}
	return 0;
}

static void send_kill(uint32_t slot, uint64_t run_id)
{
	struct spawn_req req = {.type = SPAWN_REQ_KILL, .slot = slot, .run_id = run_id};

	assert_int_equal(send_req(&req, NULL, NULL, 0), 0);
}

/* The next event for slot/run_id of the given type, keeping others for later. */
static void wait_evt(uint32_t type, uint32_t slot, uint64_t run_id, struct spawn_evt *out,
		     int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = {fx.fd, POLLIN, 0};
		struct spawn_evt evt;
		ssize_t n;

		for (int i = 0; i < fx.npending; i++) {
			if (fx.pending[i].type == type && fx.pending[i].slot == slot &&
			    fx.pending[i].run_id == run_id) {
				*out = fx.pending[i];
				memmove(&fx.pending[i], &fx.pending[i + 1],
					sizeof(fx.pending[0]) * (size_t)(fx.npending - i - 1));
				fx.npending--;
				return;
			}
		}
		if (now_ms() > end)
			fail_msg("no event type %u for slot %u run %llu", type, slot,
				 (unsigned long long)run_id);
		poll(&p, 1, 100);
		n = recv(fx.fd, &evt, sizeof(evt), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n == 0)
			fail_msg("the spawner closed its socket");
		if (n != (ssize_t)sizeof(evt))
			fail_msg("event of %zd bytes (errno %d)", n, n < 0 ? errno : 0);
		assert_true(fx.npending < (int)(sizeof(fx.pending) / sizeof(fx.pending[0])));
		fx.pending[fx.npending++] = evt;
	}
}

/* No event at all for timeout_ms. */
static void expect_no_evt(int timeout_ms)
{
	struct pollfd p = {fx.fd, POLLIN, 0};

	assert_int_equal(fx.npending, 0);
	assert_int_equal(poll(&p, 1, timeout_ms), 0);
}

static struct run *run_init(int i, uint32_t slot, uint64_t run_id)
{
	struct run *r = &runs[i];

	memset(r, 0, sizeof(*r));
	r->slot = slot;
	r->id = run_id;
	r->frame_fd = r->out_fd = r->err_fd = -1;
	return r;
}

/*
 * Send START for r: frame and stdout pipes, a stderr pipe unless flags have
 * SPAWN_F_SHARED_OUTPUT, the input inline or, with SPAWN_F_HAS_STDIN, in a
 * memfd - or stdin_fd (>= 0, borrowed: a pipe whose write end the caller
 * keeps, to hand the input over later). fds_to_send >= 0 sends only that
 * many of these fds.
 */
static void start_run_stdin(struct run *r, int task, uint32_t flags, const char *input,
			    int fds_to_send, int stdin_fd)
{
	struct spawn_req req = {.type = SPAWN_REQ_START,
				.slot = r->slot,
				.run_id = r->id,
				.task_index = task,
				.flags = flags};
	int pf[2], po[2], pe[2] = {-1, -1}, fds[SPAWN_MAX_FDS], nfds = 0, in_fd = -1;
	size_t len = input ? strlen(input) : 0;

	assert_int_equal(pipe2(pf, O_CLOEXEC), 0);
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	fds[nfds++] = pf[1];
	fds[nfds++] = po[1];
	if (!(flags & SPAWN_F_SHARED_OUTPUT)) {
		assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
		fds[nfds++] = pe[1];
	}
	if (stdin_fd >= 0) {
		fds[nfds++] = stdin_fd;
	} else if (flags & SPAWN_F_HAS_STDIN) {
		in_fd = memfd_create("test-input", MFD_CLOEXEC);
		assert_true(in_fd >= 0);
		assert_int_equal(write(in_fd, input, len), (ssize_t)len);
		assert_int_equal(lseek(in_fd, 0, SEEK_SET), 0);
		fds[nfds++] = in_fd;
	} else {
		assert_true(len <= SPAWN_INLINE_MAX);
		req.input_len = (uint32_t)len;
	}
	if (fds_to_send >= 0 && fds_to_send < nfds)
		nfds = fds_to_send;
	assert_int_equal(send_req(&req, input, fds, nfds), 0);
	/* Ours go now: EOF on the read ends then means the child is gone. */
	close(pf[1]);
	close(po[1]);
	if (pe[1] >= 0)
		close(pe[1]);
	if (in_fd >= 0)
		close(in_fd);
	r->frame_fd = pf[0];
	r->out_fd = po[0];
	r->err_fd = pe[0];
	if (pe[0] >= 0)
		assert_int_equal(fcntl(pe[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(pf[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(po[0], F_SETFL, O_NONBLOCK), 0);
}

static void start_run(struct run *r, int task, uint32_t flags, const char *input, int fds_to_send)
{
	start_run_stdin(r, task, flags, input, fds_to_send, -1);
}

static void expect_started(struct run *r)
{
	struct spawn_evt evt;

	wait_evt(SPAWN_EVT_STARTED, r->slot, r->id, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, 0);
	assert_true(evt.pid > 0);
	r->pid = evt.pid;
}

static void finish(struct run *r);

/* A whole run: START, STARTED, everything it writes, EXIT. */
static void run_to_end(struct run *r, int task, uint32_t flags, const char *input)
{
	start_run(r, task, flags, input, -1);
	expect_started(r);
	finish(r);
}

static void drain(int *fd, void *buf, size_t cap, size_t *len)
{
	char scratch[4096];
	ssize_t n;

	if (*len < cap)
		n = read(*fd, (char *)buf + *len, cap - *len);
	else
		n = read(*fd, scratch, sizeof(scratch));
	if (n > 0 && *len < cap)
		*len += (size_t)n;
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

/* One round of reading whatever the child wrote. */
static void pump(struct run *r, int timeout_ms)
{
	struct pollfd p[3] = {
	    {r->frame_fd, POLLIN, 0}, {r->out_fd, POLLIN, 0}, {r->err_fd, POLLIN, 0}};

	if (poll(p, 3, timeout_ms) < 0 && errno != EINTR)
		fail_msg("poll: %s", strerror(errno));
	if (r->frame_fd >= 0 && p[0].revents)
		drain(&r->frame_fd, r->frames, sizeof(r->frames), &r->frames_len);
	if (r->out_fd >= 0 && p[1].revents)
		drain(&r->out_fd, r->out, sizeof(r->out) - 1, &r->out_len);
	if (r->err_fd >= 0 && p[2].revents)
		drain(&r->err_fd, r->err, sizeof(r->err) - 1, &r->err_len);
}

/* Frame n (0-based) or NULL; *h filled. */
static const unsigned char *frame_at(const struct run *r, int n, struct frame_header *h)
{
	size_t off = 0;

	for (;;) {
		if (off + sizeof(*h) > r->frames_len)
			return NULL;
		memcpy(h, r->frames + off, sizeof(*h));
		if (off + sizeof(*h) + h->len > r->frames_len)
			return NULL;
		if (n-- == 0)
			return r->frames + off + sizeof(*h);
		off += sizeof(*h) + h->len;
	}
}

static int frame_count(const struct run *r)
{
	struct frame_header h = {0};
	int n = 0;

	while (frame_at(r, n, &h))
		n++;
	return n;
}

/* Read until frame n exists. */
static __attribute__((unused)) void wait_frames(struct run *r, int n)
{
	int64_t end = now_ms() + DEADLINE_MS;

	while (frame_count(r) < n) {
		if (now_ms() > end || r->frame_fd < 0)
			fail_msg("got %d frames, waited for %d", frame_count(r), n);
		pump(r, 100);
	}
}

/* Read every pipe to EOF: the job child and all its copies are gone. */
static void read_to_eof(struct run *r)
{
	int64_t end = now_ms() + DEADLINE_MS;

	while (r->frame_fd >= 0 || r->out_fd >= 0 || r->err_fd >= 0) {
		if (now_ms() > end)
			fail_msg("run %llu: the pipes never closed", (unsigned long long)r->id);
		pump(r, 100);
	}
	r->out[r->out_len] = '\0';
	r->err[r->err_len] = '\0';
}

/* Read the pipes to EOF, then the EXIT event. */
static void finish(struct run *r)
{
	read_to_eof(r);
	wait_evt(SPAWN_EVT_EXIT, r->slot, r->id, &r->exit, DEADLINE_MS);
	assert_int_equal(r->exit.spawn_err, 0);
	assert_int_equal(r->exit.pid, r->pid);
	assert_true(r->exit.utime_us >= 0 && r->exit.stime_us >= 0);
	assert_true(r->exit.maxrss_kb > 0);
}

/* For failure messages: the system call a FRAME_SYSCALL names, or "". */
static const char *blocked_name(const struct run *r, char *buf, size_t len)
{
	struct frame_header h = {0};
	const unsigned char *p;
	struct frame_syscall rep;

	buf[0] = '\0';
	for (int i = 0; (p = frame_at(r, i, &h)); i++) {
		if (h.type == FRAME_SYSCALL && h.len == sizeof(rep)) {
			memcpy(&rep, p, sizeof(rep));
			snprintf(buf, len, "system call %d ", (int)rep.nr);
			filter_syscall_name(rep.nr, buf + strlen(buf), len - strlen(buf));
		}
	}
	return buf;
}

/* The EXIT status: exit code `code`, or killed by `sig` when sig != 0. */
static void expect_status(const struct run *r, int code, int sig)
{
	int st = r->exit.status;
	char name[64];

	if (sig ? WIFSIGNALED(st) && WTERMSIG(st) == sig : WIFEXITED(st) && WEXITSTATUS(st) == code)
		return;
	if (WIFSIGNALED(st))
		fail_msg("expected %s %d, got signal %d %s", sig ? "signal" : "exit",
			 sig ? sig : code, WTERMSIG(st), blocked_name(r, name, sizeof(name)));
	fail_msg("expected %s %d, got status 0x%x", sig ? "signal" : "exit", sig ? sig : code, st);
}

static void expect_start_frame(const struct run *r, int n, int index)
{
	struct frame_header h = {0};

	if (!frame_at(r, n, &h))
		fail_msg("no frame %d", n);
	assert_int_equal(h.type, FRAME_START);
	assert_int_equal(h.index, index);
	assert_int_equal(h.len, 0);
}

/* The input of a run of one job. */
static const char *one_job(int task, const char *params)
{
	static char buf[SPAWN_INLINE_MAX];

	snprintf(
	    buf, sizeof(buf),
	    "{\"previous\":null,\"jobs\":[{\"task\":%d,\"use_previous\":false,\"params\":%s}]}",
	    task, params);
	return buf;
}

/* ---- main ------------------------------------------------------------------------------- */

/*
 * The start of main(): register the C tasks. Started by spawn_start() (with
 * SPAWN_ARG) this program is the spawner: the result, >= 0, is its exit
 * status. Otherwise -1: run the tests. VALET_TEST_FILTER picks them by name
 * (cmocka's * and ?; tests/mutants/run.sh names them so).
 */
static int fixture_main(int argc, char **argv)
{
	const char *filter = getenv("VALET_TEST_FILTER");

	for (size_t i = 0; i < sizeof(c_tasks) / sizeof(c_tasks[0]); i++)
		if (valet_register(c_tasks[i].name, c_tasks[i].fn) < 0)
			return 1;
	if (argc > 1 && !strcmp(argv[1], SPAWN_ARG))
		return valet_main(argc, argv);
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
		runs[i].frame_fd = runs[i].out_fd = runs[i].err_fd = -1;
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return -1;
}

#endif
