/*
 * spawner_launch.c - a worker slot's exec launcher: a process already in
 * the slot's namespaces and cgroups, already the slot's user and already
 * under the exec profile's seccomp filter, that clones the slot's exec
 * tasks, so that each inherits all of it instead of setting it up again.
 *
 * Theory of operation. An exec task without network runs in its slot's
 * namespaces (spawner_exec.c). Cloned by the spawner, its child would join
 * them (four setns() and a chroot), join the slot's cgroups (a write each
 * to three tasks files, which takes the cgroup core's global lock), change
 * its user and load the filter - about 150 us of CPU for the filter alone
 * on a 2-core VM (the kernel compiles it, and frees it again at the task's
 * exit), while the spawner waits for the child's execve. A seccomp filter
 * is inherited at fork, so a process that loaded it once can hand it to
 * every task it clones; that is the launcher:
 *
 *   - forked by the spawner (a copy of its image, so it knows the task
 *     table and the jobs' environment), it makes its own children land in
 *     the slot's PID namespace (setns; it stays in the spawner's), joins
 *     the slot's mount, IPC, UTS and network namespaces and cgroups
 *     (sbx_slotns_enter), and enters the sandbox as a task does
 *     (sbx_enter: its socket on fd 3, /dev/null on 0-2, the slot's uid, no
 *     capability, no_new_privs, the exec filter), then says READY - or
 *     sends the setup error frame of a job child that failed (sbx_fail);
 *   - per job, the spawner sends LAUNCH: the task, the rlimits and the pid
 *     the task must get in the slot's namespace, with the job's fds. The
 *     launcher clones the task with CLONE_VM | CLONE_VFORK | CLONE_PARENT:
 *     into its own memory, on a stack in its frame, as posix_spawn does,
 *     waiting until the task has exec'd or died; and as the spawner's
 *     child, so that the spawner reaps it with its rusage and a KILL never
 *     hits a recycled pid, as for every other job child. The task checks
 *     its pid (exec_task_slot's check: a job that created processes moved
 *     the pids on, and this one must not see how far) and enters what is
 *     left of the sandbox (sbx_enter_launched: setsid, parent-death signal,
 *     fds, rlimits), then execs. The launcher answers with its pid.
 *
 * The tasks cannot reach the launcher: it is no process of their PID
 * namespace (not in their /proc; kill(), ptrace(), setpriority() and
 * pidfd_open() name processes by their pid there, and kill(-1) and
 * PRIO_USER only see that namespace's), so although it runs as their user
 * no task can signal, stop, trace or renice it, and nothing a job does
 * reaches the next job through it. It holds no fd of theirs between jobs
 * (the job's arrive close-on-exec and are closed after the clone). It
 * counts, though, in the slot's process limits - the pids cgroup's and
 * RLIMIT_NPROC (the slot's uid): while it is there, the spawner gives
 * every job of the slot one more for it (spawner_slot_processes) - and its
 * few pages in the memory cgroup's.
 *
 * It goes with the slot's namespaces (sbx_slotns_detach kills it), and
 * with the spawner (parent-death signal; spawner_kill_all_and_exit). The
 * OOM killer's group kill of the slot's cgroup (memory.oom.group) takes it
 * along with a job: the spawner reaps it, or finds its socket closed, and
 * the next exec job makes another. One that takes a LAUNCH and does not
 * answer (gone meanwhile, or too slow) takes the slot's namespaces along,
 * so that no task it may have started is left: the job fails to start, as
 * when a fork fails. One that cannot start says why on stderr once, and
 * exec tasks are cloned by the spawner from then on.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "registry.h"
#include "spawner_internal.h"

/* How long the spawner waits for the launcher's answer. It is a clone and
 * the task's execve: microseconds, but a busy host may be slow to run it. */
#define LAUNCH_ANSWER_MS 2000
/* ...and for READY: a fork and the sandbox's setup. */
#define LAUNCH_READY_MS 5000

/* LAUNCH: the job's task and rlimits, the pid it must get; fds attached:
 * frame, stdout, [stderr], [stdin] (spawn_proto.h's START flags say which). */
struct launch_req {
	int32_t task_index;
	uint32_t flags; /* SPAWN_F_SHARED_OUTPUT, SPAWN_F_HAS_STDIN */
	pid_t expect;
	struct sbx_limits limits;
};

/* The answer: the task's pid (the spawner's view), the one it saw in the
 * slot's namespace, or err (an errno: no task). READY is one with pid 0;
 * a launcher that cannot start sends a FRAME_SETUP_ERROR frame instead
 * (sbx_fail), and exits. */
struct launch_ans {
	pid_t pid;
	pid_t seen;
	int32_t err;
};

/* A launched task, before its execve: in the launcher's memory. */
struct launch_args {
	const struct launch_req *req;
	const struct task *task;
	const int *fds;
	int nfds;
	volatile pid_t seen;
};

static bool launcher_broken; /* one failed to start: the spawner clones */

static int launched_task(void *arg)
{
	struct launch_args *a = arg;
	const struct launch_req *req = a->req;
	struct sbx_params p = {
	    .frame_fd = a->fds[0],
	    .stdout_fd = a->fds[1],
	    .stderr_fd = (req->flags & SPAWN_F_SHARED_OUTPUT) ? a->fds[1] : a->fds[2],
	    .stdin_fd = (req->flags & SPAWN_F_HAS_STDIN) ? a->fds[a->nfds - 1] : -1,
	    .frame_cloexec = true,
	    .devnull_fd = 0, /* the launcher's fd 0 is /dev/null */
	    .expected_parent = 0, /* the spawner, outside the namespace */
	    .limits = req->limits,
	};
	struct sbx_error err = {{0}, 0};

	a->seen = getpid();
	if (a->seen != req->expect)
		_exit(127);
	/* Not SBX_FD_FRAME: until sbx_fds() moved the frame channel there,
	 * fd 3 is the launcher's socket (sbx_fail() knows when it moved). */
	if (sbx_enter_launched(&p, &err) < 0)
		sbx_fail(p.frame_fd, &err);
	execve(a->task->argv[0], a->task->argv, spawner_child_env);
	sbx_error_set(&err, "execve", errno);
	sbx_fail(p.frame_fd, &err);
}

/* One LAUNCH, in the launcher: the task cloned, the answer sent. */
static void __attribute__((noinline)) launch_one(const struct launch_req *req, const int *fds,
						 int nfds)
{
	char stack[SBX_EXEC_STACK] __attribute__((aligned(16)));
	const struct task *task = registry_at(spawner_sp.reg, req->task_index);
	int want = 2 + !(req->flags & SPAWN_F_SHARED_OUTPUT) + !!(req->flags & SPAWN_F_HAS_STDIN);
	struct launch_args a = {req, task, fds, nfds, 0};
	struct launch_ans ans = {0};

	if (!task || task->kind != TASK_EXEC || task->profile != SBX_PROFILE_EXEC || nfds != want) {
		ans.err = EINVAL;
	} else {
		ans.pid = clone(launched_task, stack + sizeof(stack),
				CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, &a);
		ans.err = ans.pid < 0 ? errno : 0;
		spawner_stack_unpoison(stack, sizeof(stack));
		ans.seen = a.seen;
	}
	(void)send(SBX_FD_FRAME, &ans, sizeof(ans), MSG_NOSIGNAL);
}

/* The launcher's life after its setup: one LAUNCH after the other, until
 * the spawner closes its end. */
static void __attribute__((noreturn)) launcher_serve(void)
{
	for (;;) {
		union {
			char raw[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
			struct cmsghdr align;
		} cbuf;
		struct launch_req req;
		struct iovec iov = {&req, sizeof(req)};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.raw,
				     .msg_controllen = sizeof(cbuf.raw)};
		int fds[SPAWN_MAX_FDS], nfds = 0;
		ssize_t n = recvmsg(SBX_FD_FRAME, &msg, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfds);
			}
		if (n == sizeof(req) && !(msg.msg_flags & MSG_CTRUNC)) {
			launch_one(&req, fds, nfds);
		} else {
			struct launch_ans ans = {.err = EPROTO};
			(void)send(SBX_FD_FRAME, &ans, sizeof(ans), MSG_NOSIGNAL);
		}
		/* close() each: the exec filter has no close_range. */
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

/* The launcher, forked: into the slot's namespaces and the sandbox. */
static void __attribute__((noreturn)) launcher_main(unsigned slot, const struct sbx_init_params *ip,
						    int sock)
{
	const struct spawner_setup *o = spawner_sp.opts;
	struct sbx_slotns *ns = &spawner_sp.slots[slot].ns;
	struct sbx_params p = {
	    .frame_fd = sock,
	    .stdout_fd = spawner_sp.devnull,
	    .stderr_fd = spawner_sp.devnull,
	    .stdin_fd = -1,
	    .devnull_fd = spawner_sp.devnull,
	    .expected_parent = spawner_sp.self,
	    .drop_user = o->drop_user,
	    .uid = slot_uid(slot),
	    .gid = slot_gid(slot),
	    .filter = &o->filters[SBX_PROFILE_EXEC],
	    .changed_signals = &spawner_sp.changed_signals,
	};
	char name[16] = {'v', 'a', 'l', 'e', 't', 'd', '-', 'l', 'a', 'u', 'n', 'c', 'h'};
	struct launch_ans ready = {0};
	struct sbx_error err = {{0}, 0};

	prctl(PR_SET_NAME, name);
	/* sbx_fail() reports on sock, or on fd 3 once sbx_enter moved it. */
	if (sbx_slotns_fork_into(ns, &err) < 0 || sbx_slotns_enter(ns, ip, &err) < 0 ||
	    sbx_enter(&p, &err) < 0)
		sbx_fail(sock, &err);
	(void)send(SBX_FD_FRAME, &ready, sizeof(ready), MSG_NOSIGNAL);
	launcher_serve();
}

/* A message of the launcher's on sock, within ms: its size, or -errno
 * (-EPIPE: it is gone). */
static ssize_t launch_recv(int sock, int ms, void *buf, size_t len)
{
	struct pollfd pf = {sock, POLLIN, 0};
	int64_t end = now_ns() + (int64_t)ms * 1000000;
	ssize_t n;

	for (;;) {
		int left = (int)((end - now_ns()) / 1000000);
		int rc = poll(&pf, 1, left > 0 ? left : 0);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		n = recv(sock, buf, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n < 0 ? -errno : n == 0 ? -EPIPE : n;
	}
}

/* The launcher's answer to a LAUNCH; 0, or -errno. */
static int launch_answer(int sock, struct launch_ans *ans)
{
	ssize_t n = launch_recv(sock, LAUNCH_ANSWER_MS, ans, sizeof(*ans));

	return n < 0 ? (int)n : n == (ssize_t)sizeof(*ans) ? 0 : -EPROTO;
}

/* READY, or why the launcher could not start (*err); 0, or -errno. */
static int launch_ready(int sock, struct sbx_error *err)
{
	struct {
		struct frame_header h;
		struct sbx_error e;
	} __attribute__((packed)) m;
	ssize_t n = launch_recv(sock, LAUNCH_READY_MS, &m, sizeof(m));

	if (n == (ssize_t)sizeof(struct launch_ans))
		return 0;
	if (n == (ssize_t)sizeof(m) && m.h.type == FRAME_SETUP_ERROR) {
		*err = m.e;
		err->step[sizeof(err->step) - 1] = '\0';
		return m.e.err > 0 ? -m.e.err : -EIO;
	}
	return n < 0 ? (int)n : -EPROTO;
}

/*
 * The slot's launcher, started now; ip: the slot's namespaces' params (its
 * network namespace, cgroups, /tmp's size). The spawner's next child must
 * be in its own PID namespace (the launcher is). 0, or -errno (the
 * spawner clones exec tasks itself from then on).
 */
static int launcher_start(unsigned slot, const struct sbx_init_params *ip)
{
	struct sbx_slotns *ns = &spawner_sp.slots[slot].ns;
	struct sbx_error err = {{0}, 0};
	int sv[2], rc;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = _Fork(); /* see spawner.c's clone_child() */
	if (pid == 0)
		launcher_main(slot, ip, sv[1]);
	rc = pid < 0 ? -errno : 0;
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		return rc;
	}
	ns->launcher = pid;
	ns->launch_sock = sv[0];
	if ((rc = launch_ready(sv[0], &err)) < 0) {
		dprintf(2, "valetd: the exec launcher cannot start: %s%s%s; exec tasks are "
			   "started without it\n", err.step, err.step[0] ? ": " : "", strerror(-rc));
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		close(sv[0]);
		ns->launcher = 0;
		ns->launch_sock = -1;
		launcher_broken = true;
	}
	return rc;
}

void spawner_launcher_gone(struct sbx_slotns *ns)
{
	if (ns->launch_sock >= 0)
		close(ns->launch_sock);
	ns->launch_sock = -1;
	ns->launcher = 0;
}

/*
 * An exec task in its slot's namespaces, started by the slot's launcher
 * (made first if the slot has none), as the next_pid of the namespace. The
 * task's pid with *seen, the pid it got there; -1 with errno when no task
 * was started (the launcher, having taken the namespaces along if it could
 * have started one); or -3: no launcher for this job - the spawner clones
 * the task itself. ip: the slot's namespaces' params (launcher_start).
 */
pid_t spawner_launch(const struct spawn_req *req, const int *fds, int nfds,
		     const struct sbx_init_params *ip, pid_t *seen)
{
	struct slot *s = &spawner_sp.slots[req->slot];
	struct cg_slot *cg = cg_of(req->slot);
	struct launch_req lr = {req->task_index, req->flags, s->ns.next_pid, req->limits};
	struct launch_ans ans;
	union {
		char raw[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {&lr, sizeof(lr)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.raw,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	int rc;

	/* /tmp is remounted at another size by a task that joins the
	 * namespaces itself; the launcher cannot. */
	if (launcher_broken || nfds > SPAWN_MAX_FDS ||
	    !sbx_slotns_tmp_is(&s->ns, req->limits.memory_bytes))
		return -3;
	if (s->ns.launcher == 0 && launcher_start(req->slot, ip) < 0)
		return -3;
	/* As spawner_child_main(): with a memory cgroup, the address space is only
	 * a backstop. */
	if (cg && lr.limits.memory_bytes)
		lr.limits.memory_bytes *= 4;
	/* The launcher is one more process of the slot's pids cgroup and
	 * of its uid (uid_base; with one uid for all slots RLIMIT_NPROC counts
	 * every slot's processes anyway): set again, for a launcher started
	 * now (the same values write nothing). */
	lr.limits.max_processes = spawner_slot_processes(req);
	if (cg && cg_slot_limit(cg, req->limits.memory_bytes, lr.limits.max_processes) < 0)
		return -3;
	memset(cbuf.raw, 0, sizeof(cbuf.raw));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	for (int tries = 0;; tries++) {
		while ((rc = (int)sendmsg(s->ns.launch_sock, &msg, MSG_NOSIGNAL)) < 0 &&
		       errno == EINTR)
			;
		if (rc >= 0)
			break;
		/* Not sent: no task. The launcher is gone (the OOM killer of a
		 * job's cgroup, memory.oom.group, takes it along): another. */
		spawner_launcher_gone(&s->ns);
		if (tries > 0 || launcher_start(req->slot, ip) < 0) {
			/* The spawner clones it: no launcher to count. */
			if (cg)
				(void)cg_slot_limit(cg, req->limits.memory_bytes,
						    spawner_slot_processes(req));
			return -3;
		}
	}
	if ((rc = launch_answer(s->ns.launch_sock, &ans)) < 0) {
		/* A task may have been started, or may be yet: the namespaces'
		 * end takes it along. Not waited for: the init's exit waits
		 * until that task, our child, is reaped (reap() will). */
		(void)sbx_slotns_detach(&s->ns);
		errno = -rc;
		return -1;
	}
	if (ans.err) {
		errno = ans.err; /* no task */
		return -1;
	}
	*seen = ans.seen;
	return ans.pid;
}
