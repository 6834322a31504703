/*
 * test_spawner.c - the spawner program (sandbox/spawner.c) and the C-task
 * runtime of its job children (sandbox/taskrun.c), with real processes.
 *
 * Theory of operation: this test program is also a spawner program, the
 * way a program with tasks of its own is (valet_main()): main() registers a
 * few C tasks and, started with SPAWN_ARG, becomes the spawner. The group
 * setup compiles the seccomp filters and names three exec tasks. Each test
 * starts its own spawner with spawn_start() (as valetd does: this program,
 * exec'd, the filters and the tasks in its setup document), learns the task
 * indexes from its READY, and then plays the daemon by hand, speaking the
 * protocol of spawn_proto.h: it makes the frame and output pipes, sends a START
 * request with the input inline (or as a memfd on stdin) and the fds by
 * SCM_RIGHTS, reads STARTED and EXIT events from the socket, and reads the
 * frames (sandbox/frame.h) the job child writes. Assertions are on the
 * frames, the RESULT payloads (uint32 error_len, error, result JSON), the
 * captured output and the wait status in the EXIT event. Deadlines: the
 * test hands a slot a timerfd (TIMER) and arms it itself, as valetd does,
 * and then only watches. The teardown
 * closes the daemon's end, which must make the spawner kill its children
 * and exit; it is reaped with a deadline.
 *
 * When the test runs as root the spawner drops job children to "nobody",
 * as valetd does, and one test checks that in /proc.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <valet.h>

#include "../../sandbox/frame.h"
#include "../../sandbox/registry.h"
#include "../../sandbox/spawner.h"
#include "../../sandbox/spawn_proto.h"
#include "../../supervisor/config.h"
#include "../../supervisor/filter.h"
#include "../../supervisor/isolation.h"
#include "../../supervisor/spawn.h"
#include "../../supervisor/tasks.h"

#define MAX_SLOTS 4
#define DEADLINE_MS 20000 /* for anything a run should do */
#define REAP_MS 5000	  /* for the spawner to exit once its socket closed */
/* How long after its deadline a child may be reaped. The goal is 10 ms
 * (issue 13) and it takes 1 to 5 here; the rest is room for a loaded test
 * machine, which can keep any process off a CPU for tens of ms. */
#define DEADLINE_LATE_MS 100
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
} c_tasks[] = {{"ok", task_ok},	  {"prev", task_prev}, {"fail", task_fail},
	       {"crash", task_crash}, {"loop", task_loop}, {"blocked", task_blocked}};

/* The task indexes, as the spawner's READY gives them. */
static int T_OK, T_PREV, T_FAIL, T_CRASH, T_LOOP, T_BLOCKED, T_ECHO, T_INET, T_INET_NET;

static struct {
	struct sbx_filter filters[SBX_PROFILE_COUNT];
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
	fx.exec[0] = (struct config_exec_task){.name = "echo", .argv = echo,
					       .profile = SBX_PROFILE_EXEC};
	fx.exec[1] = (struct config_exec_task){.name = "inet", .argv = inet,
					       .profile = SBX_PROFILE_EXEC};
	fx.exec[2] = (struct config_exec_task){.name = "inet_net", .argv = inet,
					       .profile = SBX_PROFILE_EXEC_NET};
	for (int i = 0; i < SBX_PROFILE_COUNT; i++)
		if (filter_compile((enum sbx_profile)i, &fx.filters[i]) < 0)
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
	for (int i = 0; i < SBX_PROFILE_COUNT; i++)
		filter_release(&fx.filters[i]);
	return 0;
}

/* Each task's index in the spawner's table; -1 when one is missing. */
static int learn_indexes(const char *table)
{
	struct {
		const char *name;
		int *index;
	} want[] = {{"ok", &T_OK},	   {"prev", &T_PREV},	 {"fail", &T_FAIL},
		    {"crash", &T_CRASH},   {"loop", &T_LOOP},	 {"blocked", &T_BLOCKED},
		    {"echo", &T_ECHO},	   {"inet", &T_INET},	 {"inet_net", &T_INET_NET}};
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
static void wait_frames(struct run *r, int n)
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
	int32_t nr;

	buf[0] = '\0';
	for (int i = 0; (p = frame_at(r, i, &h)); i++) {
		if (h.type == FRAME_SYSCALL && h.len == sizeof(nr)) {
			memcpy(&nr, p, sizeof(nr));
			snprintf(buf, len, "system call %d ", (int)nr);
			filter_syscall_name(nr, buf + strlen(buf), len - strlen(buf));
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

/* Frame n is RESULT for job index: error (NULL = none) and result (JSON
 * text compared as JSON; NULL = no result). */
static void expect_result_frame(const struct run *r, int n, int index, const char *error,
				const char *result)
{
	struct frame_header h = {0};
	const unsigned char *p = frame_at(r, n, &h);
	uint32_t elen;
	size_t rlen;

	if (!p)
		fail_msg("no frame %d", n);
	assert_int_equal(h.type, FRAME_RESULT);
	assert_int_equal(h.index, index);
	assert_true(h.len >= sizeof(elen));
	memcpy(&elen, p, sizeof(elen));
	assert_true(sizeof(elen) + elen <= h.len);
	if (error) {
		assert_int_equal(elen, strlen(error));
		assert_memory_equal(p + sizeof(elen), error, elen);
	} else {
		assert_int_equal(elen, 0);
	}
	rlen = h.len - sizeof(elen) - elen;
	if (!result) {
		assert_int_equal(rlen, 0);
	} else {
		json_error_t jerr;
		json_t *got = json_loadb((const char *)p + sizeof(elen) + elen, rlen, 0, &jerr);
		json_t *want = json_loads(result, 0, NULL);

		if (!got)
			fail_msg("result of job %d is not JSON: %s", index, jerr.text);
		assert_non_null(want);
		if (!json_equal(got, want))
			fail_msg("result of job %d: got %.*s, want %s", index, (int)rlen,
				 (const char *)p + sizeof(elen) + elen, result);
		json_decref(got);
		json_decref(want);
	}
}

/* Frames 2*job and 2*job + 1 are START and RESULT of job. */
static void expect_job(const struct run *r, int job, const char *error, const char *result)
{
	expect_start_frame(r, 2 * job, job);
	expect_result_frame(r, 2 * job + 1, job, error, result);
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

/* A deadline timer for slot, handed to the spawner (TIMER); ours to arm. */
static int give_timer(uint32_t slot)
{
	struct spawn_req req = {.type = SPAWN_REQ_TIMER, .slot = slot};
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	assert_true(fd >= 0);
	assert_int_equal(send_req(&req, NULL, &fd, 1), 0);
	return fd;
}

/* Arm a timer for at_ns (CLOCK_MONOTONIC), as valetd does; 0 disarms. */
static void arm_at(int fd, int64_t at_ns)
{
	struct itimerspec its = {.it_value = {at_ns / 1000000000, at_ns % 1000000000}};

	assert_int_equal(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL), 0);
}

/* r was killed at its deadline, at_ns, by the spawner, and reaped soon after. */
static void expect_deadline_kill(const struct run *r, int64_t at_ns)
{
	expect_status(r, 0, SIGKILL);
	assert_true(r->exit.flags & SPAWN_EVT_F_DEADLINE);
	if (r->exit.end_ns < at_ns || r->exit.end_ns > at_ns + DEADLINE_LATE_MS * MS)
		fail_msg("reaped %.1f ms after its deadline", (double)(r->exit.end_ns - at_ns) / MS);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_ok(void **state)
{
	struct run *r = run_init(0, 2, 1001);

	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{\"a\":1,\"s\":\"x\"}"));
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 2);
	expect_job(r, 0, NULL, "{\"a\":1,\"s\":\"x\"}");
	/* stdout and stderr both land in the shared pipe. */
	assert_string_equal(r->out, "out\nerr\n");
}

static void test_separate_stderr(void **state)
{
	struct run *r = run_init(0, 1, 1002);

	/* Without SPAWN_F_SHARED_OUTPUT, stderr is the third fd. Params that
	 * are not an object reach the task as {}. */
	run_to_end(r, T_OK, SPAWN_F_HAS_STDIN | SPAWN_F_INPUT_STDIN, one_job(T_OK, "[]"));
	expect_status(r, 0, 0);
	expect_result_frame(r, 1, 0, NULL, "{}");
	assert_string_equal(r->out, "out\n");
	assert_string_equal(r->err, "err\n");
}

static void test_pipeline(void **state)
{
	char input[SPAWN_INLINE_MAX];
	struct run *r = run_init(0, 1, 2);

	snprintf(input, sizeof(input),
		 "{\"previous\":{\"p\":2},\"jobs\":["
		 "{\"task\":%d,\"use_previous\":true,\"params\":{}},"
		 "{\"task\":%d,\"use_previous\":false,\"params\":{\"n\":1}},"
		 "{\"task\":%d,\"use_previous\":true,\"params\":{}},"
		 "{\"task\":%d,\"use_previous\":false,\"params\":{}}]}",
		 T_PREV, T_OK, T_PREV, T_PREV);
	run_to_end(r, T_PREV, SPAWN_F_SHARED_OUTPUT, input);
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 8);
	expect_job(r, 0, NULL, "{\"p\":2}");
	expect_job(r, 1, NULL, "{\"n\":1}");
	/* Each job sees the result of the one before it, when it asks. */
	expect_job(r, 2, NULL, "{\"n\":1}");
	expect_job(r, 3, NULL, NULL);
}

static void test_fail(void **state)
{
	char input[SPAWN_INLINE_MAX];
	struct run *r = run_init(0, 3, 3);

	snprintf(input, sizeof(input),
		 "{\"previous\":null,\"jobs\":["
		 "{\"task\":%d,\"use_previous\":false,\"params\":{}},"
		 "{\"task\":%d,\"use_previous\":false,\"params\":{}}]}",
		 T_FAIL, T_OK);
	run_to_end(r, T_FAIL, SPAWN_F_SHARED_OUTPUT, input);
	/* The task failed, the process did not. */
	expect_status(r, 0, 0);
	/* The run stops after the failed job: no START for job 1. */
	assert_int_equal(frame_count(r), 2);
	expect_job(r, 0, "boom 7", "{\"ignored\":1}");
	assert_string_equal(r->out, "");
}

static void test_crash(void **state)
{
	struct run *r = run_init(0, 0, 4);

	run_to_end(r, T_CRASH, SPAWN_F_SHARED_OUTPUT, one_job(T_CRASH, "{}"));
	expect_status(r, 0, SIGSEGV);
	assert_int_equal(frame_count(r), 1);
	expect_start_frame(r, 0, 0);
}

static void test_blocked_syscall(void **state)
{
	struct run *r = run_init(0, 0, 5);
	struct frame_header h = {0};
	const unsigned char *p;
	int32_t nr;

	run_to_end(r, T_BLOCKED, SPAWN_F_SHARED_OUTPUT, one_job(T_BLOCKED, "{}"));
	expect_status(r, 0, SIGSYS);
	assert_int_equal(frame_count(r), 2);
	expect_start_frame(r, 0, 0);
	p = frame_at(r, 1, &h);
	assert_non_null(p);
	assert_int_equal(h.type, FRAME_SYSCALL);
	assert_int_equal(h.len, sizeof(nr));
	memcpy(&nr, p, sizeof(nr));
	assert_int_equal(nr, SYS_getuid);
}

/* The first (real) id on the "Uid:" or "Gid:" line of /proc/pid/status. */
static long proc_id(pid_t pid, const char *key)
{
	char path[64], line[256];
	long found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (found < 0 && fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			found = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return found;
}

static void test_kill(void **state)
{
	struct run *r = run_init(0, 1, 6);

	start_run(r, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(r);
	wait_frames(r, 1);
	expect_start_frame(r, 0, 0);

	/* The task runs as the sandbox user. */
	if (fx.setup.drop_user) {
		assert_int_equal(proc_id(r->pid, "Uid:"), fx.setup.uid);
		assert_int_equal(proc_id(r->pid, "Gid:"), fx.setup.gid);
	}

	/* A KILL for another run of the slot, or another slot, is ignored. */
	send_kill(r->slot, r->id + 1);
	send_kill(r->slot + 1, r->id);
	send_kill(MAX_SLOTS + 5, r->id);
	expect_no_evt(300);
	assert_int_equal(kill(r->pid, 0), 0);
	assert_true(r->frame_fd >= 0);

	send_kill(r->slot, r->id);
	finish(r);
	expect_status(r, 0, SIGKILL);
	assert_int_equal(frame_count(r), 1);

	/* The slot is free again: a new run in it works, and a late KILL for
	 * the old run does not touch it. */
	r = run_init(1, 1, 8);
	start_run(r, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(r);
	wait_frames(r, 1);
	send_kill(1, 6);
	expect_no_evt(200);
	send_kill(1, 8);
	finish(r);
	expect_status(r, 0, SIGKILL);
}

/*
 * A slot's deadline timer: when it expires the spawner kills the slot's
 * child by itself - the daemon sends nothing - and its EXIT says so. A
 * KILL that came first stays a KILL.
 */
static void test_deadline(void **state)
{
	struct run *r = run_init(0, 1, 60);
	int timer = give_timer(1);
	int64_t at;

	start_run(r, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(r);
	wait_frames(r, 1);
	at = now_ns() + 100 * MS;
	arm_at(timer, at);
	finish(r);
	expect_deadline_kill(r, at);
	assert_true(r->exit.end_ns <= now_ns());

	r = run_init(1, 1, 61);
	start_run(r, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(r);
	wait_frames(r, 1);
	send_kill(1, 61);
	arm_at(timer, now_ns());
	finish(r);
	expect_status(r, 0, SIGKILL);
	assert_false(r->exit.flags & SPAWN_EVT_F_DEADLINE);
	close(timer);
}

/*
 * An expiry that finds the slot empty (the child ended in time) is
 * dropped, not kept for the slot's next child. A timer armed again before
 * it expires (valetd moves a pipeline's bound at each job boundary) kills
 * at the new time only.
 */
static void test_deadline_moved(void **state)
{
	struct run *r = run_init(0, 2, 70);
	int timer = give_timer(2);
	int64_t at;

	arm_at(timer, now_ns() + 300 * MS);
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"));
	expect_status(r, 0, 0);
	assert_false(r->exit.flags & SPAWN_EVT_F_DEADLINE);
	usleep(400 * 1000); /* the expiry came, with no child */

	r = run_init(1, 2, 71);
	start_run(r, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(r);
	wait_frames(r, 1);
	expect_no_evt(200);
	arm_at(timer, now_ns() + 100 * MS);
	at = now_ns() + 400 * MS;
	arm_at(timer, at);
	expect_no_evt(250);
	finish(r);
	expect_deadline_kill(r, at);
	close(timer);
}

/* TIMER with anything but one timerfd is refused (the fd closed), and the
 * slot works as before. */
static void test_deadline_bad_timer(void **state)
{
	struct spawn_req req = {.type = SPAWN_REQ_TIMER, .slot = 3};
	struct run *r = run_init(0, 3, 80);
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(send_req(&req, NULL, &p[0], 1), 0);
	close(p[0]);
	/* A pipe's write end polls POLLERR once no one holds the read end. */
	assert_int_equal(poll(&(struct pollfd){p[1], 0, 0}, 1, DEADLINE_MS), 1);
	close(p[1]);
	close(give_timer(MAX_SLOTS));
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"));
	expect_status(r, 0, 0);
}

static void test_stdin_input(void **state)
{
	size_t n = SPAWN_INLINE_MAX * 3;
	char *big = malloc(n + 1), *input = malloc(n + 256), *want = malloc(n + 64);
	struct run *r = run_init(0, 0, 9);

	assert_true(big && input && want);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\0';
	snprintf(input, n + 256,
		 "{\"previous\":null,\"jobs\":[{\"task\":%d,\"use_previous\":false,"
		 "\"params\":{\"data\":\"%s\"}}]}",
		 T_OK, big);
	snprintf(want, n + 64, "{\"data\":\"%s\"}", big);
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN | SPAWN_F_INPUT_STDIN, input);
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 2);
	expect_result_frame(r, 1, 0, NULL, want);
	/* stderr is still the stdout pipe, not the input fd. */
	assert_string_equal(r->out, "out\nerr\n");
	free(big);
	free(input);
	free(want);
}

static void test_bad_input(void **state)
{
	struct run *r = run_init(0, 0, 10);
	struct frame_header h = {0};
	struct sbx_error e;
	const unsigned char *p;

	/* Not JSON: the runtime gives up before any frame. */
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, "{not json");
	expect_status(r, 125, 0);
	assert_int_equal(frame_count(r), 0);

	/* An exec task's index without SPAWN_F_EXEC is no C task. */
	r = run_init(0, 0, 11);
	run_to_end(r, T_ECHO, SPAWN_F_SHARED_OUTPUT, one_job(T_ECHO, "{}"));
	expect_status(r, 125, 0);
	assert_int_equal(frame_count(r), 0);

	/* A C job whose task index the registry does not have. */
	r = run_init(0, 0, 12);
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(99, "{}"));
	expect_status(r, 125, 0);
	assert_int_equal(frame_count(r), 0);

	/* An exec run of an unknown task: a setup error frame. */
	r = run_init(0, 0, 13);
	run_to_end(r, 99, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN, "{}");
	expect_status(r, 126, 0);
	assert_int_equal(frame_count(r), 1);
	p = frame_at(r, 0, &h);
	assert_non_null(p);
	assert_int_equal(h.type, FRAME_SETUP_ERROR);
	assert_int_equal(h.len, sizeof(e));
	memcpy(&e, p, sizeof(e));
	assert_string_equal(e.step, "task lookup");
	assert_int_equal(e.err, ENOENT);
}

static void test_bad_requests(void **state)
{
	struct run *busy = run_init(0, 2, 20), *r;
	struct spawn_evt evt;
	char c;

	/* A slot beyond max_slots. */
	r = run_init(1, MAX_SLOTS, 21);
	start_run(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"), -1);
	wait_evt(SPAWN_EVT_EXIT, MAX_SLOTS, 21, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, EINVAL);
	assert_int_equal(evt.pid, 0);
	/* The spawner closed the fds it got: no child holds the pipes. */
	assert_int_equal(poll(&(struct pollfd){r->frame_fd, POLLIN, 0}, 1, DEADLINE_MS), 1);
	assert_int_equal(read(r->frame_fd, &c, 1), 0);

	/* Only one fd (the frame channel). */
	r = run_init(1, 0, 22);
	start_run(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"), 1);
	wait_evt(SPAWN_EVT_EXIT, 0, 22, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, EINVAL);
	assert_int_equal(poll(&(struct pollfd){r->frame_fd, POLLIN, 0}, 1, DEADLINE_MS), 1);
	assert_int_equal(read(r->frame_fd, &c, 1), 0);

	/* A slot that is still busy. */
	start_run(busy, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(busy);
	r = run_init(1, 2, 23);
	start_run(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"), -1);
	wait_evt(SPAWN_EVT_EXIT, 2, 23, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, EINVAL);

	/* A message shorter than a request, and an unknown type: ignored. */
	{
		uint32_t tiny = SPAWN_REQ_KILL;
		struct spawn_req odd = {.type = 77, .slot = 2, .run_id = 20};

		assert_int_equal(send(fx.fd, &tiny, sizeof(tiny), MSG_NOSIGNAL), sizeof(tiny));
		assert_int_equal(send_req(&odd, NULL, NULL, 0), 0);
		/* START whose input_len does not match the message. */
		odd.type = SPAWN_REQ_START;
		odd.slot = 3;
		odd.input_len = 100;
		assert_int_equal(send(fx.fd, &odd, sizeof(odd), MSG_NOSIGNAL), sizeof(odd));
		expect_no_evt(200);
	}

	/* The busy run is unharmed and still killable. */
	assert_int_equal(kill(busy->pid, 0), 0);
	send_kill(2, 20);
	finish(busy);
	expect_status(busy, 0, SIGKILL);
}

/* The state letter of /proc/PID/stat ('S', 'R', 'Z', ...); '?' when gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

/*
 * Every slot's child at the same time: each gets its input through a pipe
 * that the test writes only once all four have started, so all four are
 * alive together - none has ended (no EXIT, not a zombie) or written a
 * frame. Then the inputs go in reverse order, and each child answers with
 * its own result while the others still wait.
 */
static void test_concurrent(void **state)
{
	const uint32_t flags = SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN | SPAWN_F_INPUT_STDIN;
	char params[64];
	int in_wr[MAX_SLOTS];

	for (int i = 0; i < MAX_SLOTS; i++) {
		struct run *r = run_init(i, (uint32_t)(MAX_SLOTS - 1 - i), 100 + (uint64_t)i);
		int p[2];

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		start_run_stdin(r, T_OK, flags, NULL, -1, p[0]);
		close(p[0]);
		in_wr[i] = p[1];
	}
	for (int i = 0; i < MAX_SLOTS; i++)
		expect_started(&runs[i]);
	expect_no_evt(200);
	for (int i = 0; i < MAX_SLOTS; i++) {
		char st = proc_state(runs[i].pid);

		if (st != 'S' && st != 'R' && st != 'D')
			fail_msg("child %d (pid %d) is in state %c while all should run", i,
				 (int)runs[i].pid, st);
		pump(&runs[i], 0);
		assert_int_equal(frame_count(&runs[i]), 0);
		for (int j = 0; j < i; j++)
			assert_true(runs[i].pid != runs[j].pid);
	}
	for (int i = MAX_SLOTS - 1; i >= 0; i--) {
		const char *input;

		snprintf(params, sizeof(params), "{\"i\":%d}", i);
		input = one_job(T_OK, params);
		assert_int_equal(write(in_wr[i], input, strlen(input)), (ssize_t)strlen(input));
		close(in_wr[i]);
		finish(&runs[i]);
		expect_status(&runs[i], 0, 0);
		expect_result_frame(&runs[i], 1, 0, NULL, params);
		for (int j = 0; j < i; j++)
			assert_int_equal(proc_state(runs[j].pid), 'S');
	}
}

static void test_exec(void **state)
{
	struct run *r = run_init(0, 0, 30);

	/* An exec task: the frame channel closes at execve, the program's
	 * output is captured; its input comes on stdin. */
	run_to_end(r, T_ECHO, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN, "{}");
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 0);
	assert_string_equal(r->out, "hello exec\n");
}

static void test_exec_profile(void **state)
{
	struct run *r = run_init(0, 0, 50);

	/* Each exec task runs under its own profile: only exec+net may open
	 * an IPv4 socket (perl exits 3 when socket() fails). */
	run_to_end(r, T_INET_NET, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT, "{}");
	expect_status(r, 0, 0);
	r = run_init(0, 0, 51);
	run_to_end(r, T_INET, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT, "{}");
	expect_status(r, 3, 0);
}

static void test_daemon_gone(void **state)
{
	struct run *r = run_init(0, 0, 40);
	int status;

	start_run(r, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(r);
	wait_frames(r, 1);

	/* Closing the daemon's end: the spawner kills its children and exits. */
	close(fx.fd);
	fx.fd = -1;
	if (reap_spawner(&status) < 0)
		fail_msg("the spawner did not exit when its socket closed");
	fx.pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* The job child died with it: its pipes reach EOF. */
	read_to_eof(r);
	assert_int_equal(frame_count(r), 1);
}

/* A setup document of another protocol version (a program built against
 * another libvalet than valetd's) is refused with a sentence that says so. */
static void test_setup_version(void **state)
{
	static const char *const docs[] = {"{\"version\": 999, \"slots\": 1}",
					   "{\"slots\": 1}"};
	struct spawner_setup s;
	char err[512];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		int fd = memfd_create("test-setup", MFD_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, docs[i], strlen(docs[i])), (ssize_t)strlen(docs[i]));
		err[0] = '\0';
		assert_int_equal(spawn_setup_read(fd, &s, registry_global(), err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "spawner protocol"));
		spawn_setup_free(&s);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_separate_stderr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pipeline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blocked_syscall, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline_moved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline_bad_timer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stdin_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_profile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_daemon_gone, setup, teardown),
	    cmocka_unit_test(test_setup_version),
	};
	const char *filter = getenv("VALET_TEST_FILTER");

	/* Started by spawn_start(): the spawner, with these tasks. */
	for (size_t i = 0; i < sizeof(c_tasks) / sizeof(c_tasks[0]); i++)
		if (valet_register(c_tasks[i].name, c_tasks[i].fn) < 0)
			return 1;
	if (argc > 1 && !strcmp(argv[1], SPAWN_ARG))
		return valet_main(argc, argv);
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
		runs[i].frame_fd = runs[i].out_fd = runs[i].err_fd = -1;
	/* VALET_TEST_FILTER: only the tests whose names match (cmocka's * and ?;
	 * tests/mutants/run.sh names them so). */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
