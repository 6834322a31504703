/*
 * spawner.c - the spawner process (see spawner.h for why it exists).
 *
 * Theory of operation: a poll() loop over two fds, the control socket and a
 * signalfd for SIGCHLD. START: fork; the child enters the sandbox (fds,
 * rlimits, user, seccomp) and then runs the C tasks or execs the program;
 * the parent closes its copies of the child's fds and remembers slot -> pid.
 * KILL: SIGKILL the slot's process group, if that child is still unreaped.
 * SIGCHLD: reap everything with wait4(); for a job child, SIGKILL what is
 * left of its process group and report EXIT. When the daemon's end of the
 * socket closes, kill every child and exit. The spawner allocates nothing
 * per job and keeps no state but the slot table.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "registry.h"
#include "spawner.h"
#include "taskrun.h"

struct slot {
	pid_t pid; /* 0 = free */
	uint64_t run_id;
};

static struct {
	const struct spawner_opts *opts;
	int sock;
	int devnull;
	pid_t self;
	sigset_t changed_signals; /* dispositions that differ from SIG_DFL */
	struct slot *slots;
	unsigned nslots;
} sp;

/* The explicit environment of every job child. */
static char *child_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=/",
	"LANG=C.UTF-8",
	"TMPDIR=/tmp",
	NULL,
};

static void send_evt(const struct spawn_evt *evt)
{
	/* Blocking on purpose: the daemon never waits on us, so this ends. */
	while (send(sp.sock, evt, sizeof(*evt), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static void kill_all_and_exit(void)
{
	for (unsigned i = 0; i < sp.nslots; i++)
		if (sp.slots[i].pid > 0) {
			kill(-sp.slots[i].pid, SIGKILL);
			kill(sp.slots[i].pid, SIGKILL);
		}
	_exit(0);
}

/*
 * In a job child: read the whole input from stdin. Most inputs are small,
 * so they go into a static buffer first: a 64 KiB malloc() here would make
 * glibc consolidate the heap inherited from the spawner, copying pages for
 * nothing. Only a larger input is moved to the heap.
 */
static char *read_all_stdin(size_t *len)
{
	static char first[65536];
	size_t cap = sizeof(first), n = 0;
	char *buf = first;

	for (;;) {
		ssize_t r = read(0, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			char *nb = buf == first ? malloc(cap * 2) : realloc(buf, cap * 2);
			if (!nb)
				return NULL;
			if (buf == first)
				memcpy(nb, first, n);
			buf = nb;
			cap *= 2;
		}
	}
	*len = n;
	return buf;
}

/* In the forked job child: never returns. */
static void child_main(const struct spawn_req *req, const char *input, const int *fds,
		       int nfds)
{
	const struct spawner_opts *o = sp.opts;
	const struct task *task = registry_at(o->reg, req->task_index);
	bool exec = req->flags & SPAWN_F_EXEC;
	struct sbx_params p = {
		.frame_fd = fds[0],
		.stdout_fd = fds[1],
		.stderr_fd = (req->flags & SPAWN_F_SHARED_OUTPUT) ? fds[1] : fds[2],
		.stdin_fd = (req->flags & SPAWN_F_HAS_STDIN) ? fds[nfds - 1] : -1,
		.frame_cloexec = exec,
		.devnull_fd = sp.devnull,
		/* In a new PID namespace getppid() is 0: skip that check. */
		.expected_parent = (exec && getpid() == 1) ? 0 : sp.self,
		.drop_user = o->drop_user,
		.uid = o->uid,
		.gid = o->gid,
		.limits = req->limits,
		.filter = &o->filters[exec ? SBX_PROFILE_EXEC : SBX_PROFILE_STRICT],
		.trap_sigsys = !exec,
		.workdir = "/",
		.changed_signals = &sp.changed_signals,
	};
	struct sbx_error err = {{0}, 0};

	/* ps shows job children apart from the spawner (before seccomp forbids it). */
	prctl(PR_SET_NAME, "valetd-job");
	if (sbx_enter(&p, &err) < 0)
		sbx_fail(SBX_FD_FRAME, &err);
	/* C-task children learn their tasks from the input. */
	if (exec && !task) {
		struct sbx_error e = {"task lookup", ENOENT};
		sbx_fail(SBX_FD_FRAME, &e);
	}
	if (exec) {
		execve(task->argv[0], task->argv, child_env);
		struct sbx_error e = {"execve", errno};
		sbx_fail(SBX_FD_FRAME, &e);
	}
	environ = child_env;
	if (req->flags & SPAWN_F_INPUT_STDIN) {
		size_t len = 0;
		char *buf = read_all_stdin(&len);
		if (!buf)
			_exit(125);
		taskrun_main(o->reg, buf, len);
	}
	taskrun_main(o->reg, input, req->input_len);
}

/*
 * Exec tasks can create processes, so each gets its own PID namespace: when
 * the exec'd program (its init) ends, the kernel kills everything left in
 * it, including grandchildren that escaped the process group with setsid().
 * C tasks cannot fork (strict seccomp profile), so a plain fork will do.
 * Without the privilege for CLONE_NEWPID we fall back to fork() for good.
 */
static bool pidns_usable = true;

static pid_t spawn_process(bool new_pidns)
{
	if (new_pidns && pidns_usable) {
		/* Raw clone: the child only sets up the sandbox and execs. */
		pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
		/* No PID namespaces here (not allowed, not built in, or a limit
		 * of 0 such as user.max_pid_namespaces: ENOSPC): the process
		 * group only, from now on. A passing shortage (EAGAIN, ENOMEM)
		 * fails this job alone. */
		if (pid >= 0 || (errno != EPERM && errno != EINVAL && errno != EUSERS &&
				 errno != ENOSPC))
			return pid;
		pidns_usable = false;
	}
	return fork();
}

static struct slot *slot_of(uint32_t index)
{
	return index < sp.nslots ? &sp.slots[index] : NULL;
}

static void handle_start(const struct spawn_req *req, const char *input, int *fds, int nfds)
{
	struct slot *s = slot_of(req->slot);
	struct spawn_evt evt = {.type = SPAWN_EVT_EXIT, .slot = req->slot, .run_id = req->run_id};
	pid_t pid;

	if (!s || s->pid != 0 || nfds < 2) {
		evt.spawn_err = EINVAL;
		goto report;
	}
	pid = spawn_process(req->flags & SPAWN_F_EXEC);
	if (pid == 0)
		child_main(req, input, fds, nfds);
	if (pid < 0) {
		evt.spawn_err = errno;
		goto report;
	}
	s->pid = pid;
	s->run_id = req->run_id;
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	evt.type = SPAWN_EVT_STARTED;
	evt.pid = pid;
	send_evt(&evt);
	return;
report:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	send_evt(&evt);
}

static void handle_kill(const struct spawn_req *req)
{
	struct slot *s = slot_of(req->slot);

	/* Only an unreaped child of this run: its pid cannot be recycled yet. */
	if (s && s->pid > 0 && s->run_id == req->run_id) {
		kill(-s->pid, SIGKILL);
		kill(s->pid, SIGKILL);
	}
}

static void read_requests(void)
{
	static char buf[sizeof(struct spawn_req) + SPAWN_INLINE_MAX];
	union {
		char raw[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;

	for (;;) {
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf.raw,
				     .msg_controllen = sizeof(cbuf.raw)};
		int fds[SPAWN_MAX_FDS], nfds = 0;
		struct spawn_req req;
		ssize_t n = recvmsg(sp.sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			kill_all_and_exit(); /* the daemon is gone */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfds);
			}
		}
		if ((size_t)n < sizeof(req)) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			continue;
		}
		memcpy(&req, buf, sizeof(req));
		if (req.type == SPAWN_REQ_START &&
		    req.input_len == (size_t)n - sizeof(req))
			handle_start(&req, buf + sizeof(req), fds, nfds);
		else {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			if (req.type == SPAWN_REQ_KILL)
				handle_kill(&req);
		}
	}
}

static void reap(void)
{
	int status;
	struct rusage ru;
	pid_t pid;

	while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
		for (unsigned i = 0; i < sp.nslots; i++) {
			struct slot *s = &sp.slots[i];
			if (s->pid != pid)
				continue;
			/* Whatever the job left in its process group dies with it. */
			kill(-pid, SIGKILL);
			struct spawn_evt evt = {
				.type = SPAWN_EVT_EXIT,
				.slot = i,
				.run_id = s->run_id,
				.pid = pid,
				.status = status,
				.utime_us = ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
				.stime_us = ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec,
				.maxrss_kb = ru.ru_maxrss,
			};
			s->pid = 0;
			send_evt(&evt);
			break;
		}
	}
}

/*
 * Job children are forked from us, so they get a copy of our memory: clear
 * what they must not read. The daemon's environment (children get an
 * explicit one anyway) and the secrets the daemon names.
 */
/*
 * Stale frames below ours may still hold what the daemon parsed (config
 * lines): zero a generous stretch of stack under this frame, and hand its
 * whole pages back to the kernel, so that children do not inherit (and
 * fork does not copy) page table entries for memory nobody uses.
 */
static void __attribute__((noinline)) wipe_stack(void)
{
	char below[256 * 1024];
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)below + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)below + sizeof(below)) & ~(page - 1);

	explicit_bzero(below, sizeof(below));
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static void wipe_secrets(char *const *wipe)
{
	for (char **e = environ; e && *e; e++)
		explicit_bzero(*e, strlen(*e));
	for (; wipe && *wipe; wipe++)
		explicit_bzero(*wipe, strlen(*wipe));
	wipe_stack();
	/* Give free heap memory back too: less for every fork to copy. */
	malloc_trim(0);
}

static void spawner_main(const struct spawner_opts *opts, int sock, pid_t daemon)
{
	sigset_t set;
	int sfd;

	wipe_secrets(opts->wipe);
	sp.opts = opts;
	sp.sock = sock;
	sp.self = getpid();
	sp.nslots = opts->max_slots;
	sp.slots = calloc(sp.nslots, sizeof(*sp.slots));
	sp.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	prctl(PR_SET_NAME, "valetd-spawner");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != daemon || !sp.slots || sp.devnull < 0)
		_exit(1);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN); /* the daemon decides when we stop */
	signal(SIGTERM, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		_exit(1);
	/* Children reset only what differs from the default (one syscall per
	 * signal instead of 64), and start with jansson's lazily bound calls
	 * already resolved by a dry run here. */
	sigemptyset(&sp.changed_signals);
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction old;
		if (sigaction(sig, NULL, &old) == 0 && old.sa_handler != SIG_DFL)
			sigaddset(&sp.changed_signals, sig);
	}
	taskrun_warmup();

	for (;;) {
		struct pollfd pfd[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
		struct signalfd_siginfo si;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd[1].revents) {
			while (read(sfd, &si, sizeof(si)) > 0)
				;
			reap();
		}
		if (pfd[0].revents)
			read_requests();
	}
}

int spawner_start(const struct spawner_opts *opts, pid_t *pid_out, int *fd_out)
{
	int sv[2];
	pid_t daemon = getpid(), pid;
	int size = 4 << 20;

	/* Seed jansson's hash function now: in a sandboxed child its first
	 * object would otherwise open /dev/urandom, which seccomp forbids. */
	json_object_seed(0);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Room for every in-flight request, so the daemon rarely sees EAGAIN. */
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (pid == 0) {
		close(sv[0]);
		spawner_main(opts, sv[1], daemon);
		_exit(1);
	}
	close(sv[1]);
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		int rc = -errno;
		close(sv[0]);
		return rc;
	}
	*pid_out = pid;
	*fd_out = sv[0];
	return 0;
}
