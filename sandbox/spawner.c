/*
 * spawner.c - the spawner process (see spawn_proto.h for why it exists):
 * its poll loop, and what it does for every job - START, the fork, the
 * child's start, and the reaping.
 *
 * Theory of operation: valetd exec's the spawner program at startup, which
 * gets ready (spawner_prep.c: the setup document, the plugins, the view
 * every job starts from, READY with its task table), then runs a poll()
 * loop over the control socket, a signalfd for SIGCHLD, the host's mount
 * table, its address events and the slots' deadline timers.
 * START: set the slot's cgroup limits, then make the child. With
 * namespaces, a C task is forked into its worker slot's PID namespace
 * (whose init is a tiny clone of this process sharing its memory) and
 * joins the slot's mount, IPC and UTS namespaces and cgroups: made at the
 * slot's first job, entered by the next ones, made anew when they may be
 * dirty (sbx_init.c). An exec task without network goes there too,
 * unless it created processes there before; an exec+net task, or one of
 * those, gets a new PID namespace of its own with the same tiny init: both
 * ways are spawner_exec.c's (the task cloned into this process's memory,
 * or started by the slot's launcher, spawner_launch.c). The task enters
 * the sandbox (fds, rlimits, user, seccomp) and runs the C tasks or execs
 * the program. The parent closes its copies of the child's fds and
 * remembers slot -> pid (and an exec task's init). SIGCHLD: reap
 * everything with wait4(); for a task in its slot's namespaces, report
 * EXIT at once (it was its job's last process; an exec task that left
 * one: see spawner_send_exit); for an exec task in its PID namespace, keep
 * its wait status and rusage and kill its init, and report EXIT once the
 * init is reaped too (the namespace is empty then); without namespaces,
 * kill what is left of the child's process group and cgroup, and report
 * EXIT. KILL, the deadlines, the EXIT event and the end when the daemon's
 * end of the socket closes are spawner_kill.c's; POLICY and the view's
 * upkeep spawner_prep.c's. The state they all share, and what spawner.c
 * and spawner_exec.c call in each other, is spawner_internal.h's.
 * The spawner allocates nothing per job and keeps no state but the slot
 * table.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "registry.h"
#include "spawner_internal.h"
#include "taskrun.h"

/* How often the view's hidden directories are checked without a reason. */
#define SPAWNER_RECHECK_MS 2000

struct spawner_state spawner_sp;

/*
 * The explicit environment of every job child. UTF-8 is LC_CTYPE's alone:
 * the other categories of C.UTF-8 are the C locale's, and with LANG a
 * program that calls setlocale(LC_ALL, "") (coreutils, shells) opened and
 * mapped a locale file for each of them: 12 more page faults and about a
 * tenth of /bin/echo's CPU time.
 */
char *spawner_child_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=/",
	"LC_CTYPE=C.UTF-8",
	"TMPDIR=/tmp",
	NULL,
};

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* A job child's input, when small (see read_all_stdin). */
static char stdin_first[65536];

/*
 * In a job child: read the whole input from stdin. Most inputs are small,
 * so they go into a static buffer first: a 64 KiB malloc() here would make
 * glibc consolidate the heap inherited from the spawner, copying pages for
 * nothing. Only a larger input is moved to the heap.
 */
static char *read_all_stdin(size_t *len)
{
	char *const first = stdin_first;
	size_t cap = sizeof(stdin_first), n = 0;
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

/* Read exactly n bytes from fd 0; false on EOF or an error. */
static bool read_exactly(char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(0, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/*
 * A warm child's input: its size (uint32), then the bytes. The pipe is its
 * slot's, and stays open in the daemon for the slot's next child, so there
 * is no EOF to wait for. Small inputs go into a static buffer (see
 * read_all_stdin).
 */
static char *read_sized_stdin(size_t *len)
{
	uint32_t n;
	char *buf = stdin_first;

	if (!read_exactly((char *)&n, sizeof(n)))
		return NULL;
	if (n > sizeof(stdin_first) && !(buf = malloc(n)))
		return NULL;
	if (!read_exactly(buf, n))
		return NULL;
	*len = n;
	return buf;
}

void spawner_warm_main(void)
{
	size_t len = 0;
	char *buf = read_sized_stdin(&len);

	if (!buf)
		_exit(125);
	taskrun_main(spawner_sp.reg, buf, len);
}

/* In the forked job child: never returns. */
void spawner_child_main(const struct spawn_req *req, const char *input, const int *fds, int nfds,
			pid_t parent)
{
	const struct spawner_setup *o = spawner_sp.opts;
	const struct task *task = registry_at(spawner_sp.reg, req->task_index);
	bool exec = req->flags & SPAWN_F_EXEC;
	struct sbx_params p = {
		.frame_fd = fds[0],
		.stdout_fd = fds[1],
		.stderr_fd = (req->flags & SPAWN_F_SHARED_OUTPUT) ? fds[1] : fds[2],
		.stdin_fd = (req->flags & SPAWN_F_HAS_STDIN) ? fds[nfds - 1] : -1,
		.frame_cloexec = exec,
		.devnull_fd = spawner_sp.devnull,
		.expected_parent = parent,
		.drop_user = o->drop_user,
		.uid = slot_uid(req->slot),
		.gid = slot_gid(req->slot),
		.limits = req->limits,
		.filter = &o->filters[exec && task ? task->profile : SBX_PROFILE_STRICT],
		.trap_sigsys = !exec,
		.workdir = NULL, /* the spawner's: "/" */
		.changed_signals = &spawner_sp.changed_signals,
	};
	struct sbx_error err = {{0}, 0};
	char name[16] = {'v', 'a', 'l', 'e', 't', 'd', '-', 'j', 'o', 'b'};

	/* A memory cgroup limits memory; the address space is only a backstop
	 * then, with room for what runtimes reserve and never touch. */
	if (cg_of(req->slot) && p.limits.memory_bytes)
		p.limits.memory_bytes *= 4;
	p.limits.max_processes = spawner_slot_processes(req);
	/* ps shows job children apart from the spawner (before seccomp forbids
	 * it). The name is built on the stack: a string constant would be read
	 * from a read-only data page this child has not mapped yet (a fault). */
	prctl(PR_SET_NAME, name);
	if (sbx_enter(&p, &err) < 0)
		sbx_fail(SBX_FD_FRAME, &err);
	/* C-task children learn their tasks from the input. */
	if (exec && !task) {
		struct sbx_error e = {"task lookup", ENOENT};
		sbx_fail(SBX_FD_FRAME, &e);
	}
	if (exec) {
		execve(task->argv[0], task->argv, spawner_child_env);
		struct sbx_error e = {"execve", errno};
		sbx_fail(SBX_FD_FRAME, &e);
	}
	if (req->flags & SPAWN_F_INPUT_STDIN) {
		size_t len = 0;
		char *buf = (req->flags & SPAWN_F_INPUT_SIZED) ? read_sized_stdin(&len)
							       : read_all_stdin(&len);
		if (!buf)
			_exit(125);
		taskrun_main(spawner_sp.reg, buf, len);
	}
	taskrun_main(spawner_sp.reg, input, req->input_len);
}

/*
 * Without per-job namespaces, exec tasks (which can create processes) still
 * get their own PID namespace: when the exec'd program, its init, ends, the
 * kernel kills everything left in it, including grandchildren that escaped
 * the process group with setsid(). C tasks cannot fork (strict seccomp
 * profile), so a plain fork will do. Without the privilege for CLONE_NEWPID
 * that falls back to fork() for good.
 */
static bool pidns_usable = true;

static bool clone_refused(int err)
{
	/* Not allowed, not built in, or a limit of 0 such as
	 * user.max_pid_namespaces (ENOSPC). A passing shortage (EAGAIN,
	 * ENOMEM) fails this job alone. */
	return err == EPERM || err == EINVAL || err == EUSERS || err == ENOSPC;
}

/*
 * glibc's _Fork() for a child that goes on to run C code: it keeps glibc's
 * idea of the thread id right (raise() and abort() depend on it) but, unlike
 * fork(), runs no atfork handlers and takes no locks: this process has one
 * thread, and every libc or loader page such work writes would be a page
 * fault in the child and, for the lock released after the fork, in this
 * process (about 5 faults a job on a VM that shadows page tables). A raw
 * clone() for an exec task's new PID namespace without the per-job
 * namespaces: its child enters the sandbox and execs at once.
 */
static pid_t clone_child(unsigned long flags)
{
	if (!flags)
		return _Fork();
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/*
 * After a child was started in another PID namespace (pid, or -1 with
 * errno): this process's later children go to its own again. If it cannot
 * go back, the child is killed and reaped, and the error is setns()'s.
 * The child's pid, or -1 with errno.
 */
pid_t spawner_pidns_leave(pid_t pid)
{
	int e = errno;

	if (setns(spawner_sp.own_pidns, CLONE_NEWPID) < 0) {
		/* Later children would land in the job's namespace. */
		e = errno;
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	errno = e;
	return pid;
}

/*
 * This process's next child goes to the slot's PID namespace: made first
 * when the slot has none, or none of the view as it is now. 0, or -1 with
 * errno.
 */
int spawner_slotns_enter_pidns(const struct spawn_req *req)
{
	struct slot *s = &spawner_sp.slots[req->slot];
	char *stack_top = spawner_sp.init_stacks + (size_t)(2 * req->slot + 1) * SBX_INIT_STACK;
	uint64_t gen = sbx_view_generation(spawner_sp.view);
	struct sbx_init_params ip = {
		.tmp_bytes = req->limits.memory_bytes,
		.keep = spawner_sp.opts->keep,
		.nkeep = spawner_sp.opts->nkeep,
	};
	struct sbx_error err = {{0}, 0};

	if (s->ns.init > 0 && !spawner_slotns_current(s))
		sbx_slotns_drop(&s->ns);
	if (s->ns.init == 0)
		s->ns_exec_task = -1;
	if (s->ns.init > 0 ? sbx_slotns_fork_into(&s->ns, &err) < 0
			   : sbx_slotns_build(&s->ns, stack_top, spawner_sp.self_pidfd,
					      spawner_sp.own_pidns, &ip, &err) < 0) {
		if (err.err)
			dprintf(2, "valetd: cannot make slot %u's namespaces: %s: %s\n", req->slot,
				err.step, strerror(err.err));
		errno = err.err ? err.err : EIO;
		return -1;
	}
	s->ns.view_gen = gen;
	return 0;
}

/*
 * A C task with namespaces: forked into its slot's PID namespace, as a
 * child of this process; its mount, IPC and UTS namespaces it joins itself
 * (sbx_slotns_enter). This process's own children go to its own namespace
 * again before this returns.
 */
static pid_t fork_in_pidns(const struct spawn_req *req)
{
	struct slot *s = &spawner_sp.slots[req->slot];
	pid_t pid;
	int e;

	if (spawner_slotns_enter_pidns(req) < 0)
		return -1;
	pid = _Fork(); /* see clone_child() */
	if (pid == 0)
		return 0;
	pid = spawner_pidns_leave(pid);
	if (pid < 0) {
		e = errno;
		sbx_slotns_drop(&s->ns);
		errno = e;
	}
	return pid;
}

static pid_t spawn_process(const struct spawn_req *req)
{
	pid_t pid;

	if (spawner_sp.opts->namespaces && !(req->flags & SPAWN_F_EXEC))
		return fork_in_pidns(req);
	if ((req->flags & SPAWN_F_EXEC) && pidns_usable) {
		pid = clone_child(CLONE_NEWPID);
		if (pid >= 0 || !clone_refused(errno))
			return pid;
		pidns_usable = false;
	}
	return clone_child(0);
}

/* Whether a job's task may use the network (exec+net). */
bool spawner_job_has_network(const struct spawn_req *req)
{
	const struct task *task = registry_at(spawner_sp.reg, req->task_index);

	return (req->flags & SPAWN_F_EXEC) && task && task->profile == SBX_PROFILE_EXEC_NET;
}

/*
 * The network namespace of a job: for a profile with network, the slot's
 * own that its helper serves (or the host's, with net_host); else the
 * slot's empty one. Both are made the first time the slot needs them, and
 * anew after a job that left a socket there (spawner_left.c). 0 with *fd
 * (-1 without namespaces), or an errno.
 */
static int job_netns(const struct spawn_req *req, int *fd)
{
	struct sbx_error err = {{0}, 0};
	struct slot *s = &spawner_sp.slots[req->slot];

	*fd = -1;
	if (!spawner_sp.opts->namespaces)
		return 0;
	if (spawner_job_has_network(req)) {
		if (spawner_sp.opts->net_host || !spawner_sp.net) {
			*fd = spawner_sp.host_netns;
			return 0;
		}
		*fd = sbx_net_netns(spawner_sp.net, req->slot, &err);
		return *fd < 0 ? (err.err ? err.err : EIO) : 0;
	}
	if (s->netns < 0) {
		int rc;

		if (sbx_netns_new(&s->netns, &err) < 0)
			return err.err;
		/* What exec jobs may leave there is looked for in its socket
		 * tables (spawner_left.c). */
		if ((rc = sbx_netns_socks_open(s->netns, false, &s->netns_socks)) < 0) {
			close(s->netns);
			s->netns = -1;
			return -rc;
		}
	}
	*fd = s->netns;
	return 0;
}

/*
 * What a job's task needs to enter its namespaces (in the child, before
 * the sandbox): the slot's cgroups (those for a task with a PID namespace),
 * its network namespace (netns; a resolv.conf of the helper's for one
 * served by slirp4netns), the kept /tmp items and /tmp's size.
 */
struct sbx_init_params spawner_job_init_params(const struct spawn_req *req, int netns)
{
	const struct cg_slot *cg = cg_of(req->slot);

	return (struct sbx_init_params){
	    .join_fds = cg ? cg->join : NULL,
	    .njoin = cg ? cg->njoin_ns : 0,
	    .netns_fd = netns,
	    .net_resolv =
		netns >= 0 && netns != spawner_sp.host_netns && spawner_job_has_network(req),
	    .keep = spawner_sp.opts->keep,
	    .nkeep = spawner_sp.opts->nkeep,
	    .tmp_bytes = req->limits.memory_bytes,
	};
}

/* In the new child (a C task with namespaces, or any task without): the
 * namespaces and the cgroup, then the task. */
static void child_start(const struct spawn_req *req, const char *input, const int *fds, int nfds,
			int netns)
{
	const struct cg_slot *cg = cg_of(req->slot);
	struct sbx_error err = {{0}, 0};
	pid_t parent = spawner_sp.self;

	if (spawner_sp.opts->namespaces) {
		struct sbx_init_params ip = spawner_job_init_params(req, netns);
		if (sbx_slotns_enter(&spawner_sp.slots[req->slot].ns, &ip, &err) < 0)
			sbx_fail(fds[0], &err);
		parent = 0; /* this process, outside the task's PID namespace */
	} else {
		if (cg && sbx_cgroup_join(cg->join, cg->njoin, &err) < 0)
			sbx_fail(fds[0], &err);
		/* In a new PID namespace getppid() is 0: skip that check. */
		if (getpid() == 1)
			parent = 0;
	}
	spawner_child_main(req, input, fds, nfds, parent);
}

static void handle_start(const struct spawn_req *req, const char *input, int *fds, int nfds)
{
	struct slot *s = slot_of(req->slot);
	struct spawn_evt evt = {.type = SPAWN_EVT_EXIT, .slot = req->slot, .run_id = req->run_id};
	bool peak_reset, in_slotns;
	int netns;
	pid_t pid, init = 0;

	if (!s || s->pid != 0 || nfds < 2) {
		evt.spawn_err = EINVAL;
		goto report;
	}
	if (cg_of(req->slot) &&
	    (evt.spawn_err = -cg_slot_limit(cg_of(req->slot), req->limits.memory_bytes,
					    spawner_slot_processes(req))) != 0)
		goto report;
	if ((evt.spawn_err = job_netns(req, &netns)) != 0)
		goto report;
	/* Before the fork: the peak then covers the job's whole life. */
	peak_reset = cg_of(req->slot) && cg_slot_peak_reset(cg_of(req->slot));
	if (spawner_sp.opts->namespaces && (req->flags & SPAWN_F_EXEC)) {
		struct exec_args args = {req, input, fds, nfds, netns, 0, 0};

		pid = spawner_exec_in_slotns(req) ? spawner_spawn_exec_in_slotns(&args) : -2;
		in_slotns = pid > 0;
		/* The slot's launcher may have gone with its namespaces. */
		if (pid == -2 && cg_of(req->slot) &&
		    (evt.spawn_err = -cg_slot_limit(cg_of(req->slot), req->limits.memory_bytes,
						    spawner_slot_processes(req))) != 0)
			goto report;
		if (pid == -2)
			pid = spawner_spawn_exec_in_pidns(&args, &init);
	} else {
		in_slotns = spawner_sp.opts->namespaces;
		pid = spawner_forker_spawn(req, fds, nfds, netns);
		if (pid == -3) {
			pid = spawn_process(req);
			if (pid == 0)
				child_start(req, input, fds, nfds, netns);
		}
	}
	if (pid < 0) {
		evt.spawn_err = errno;
		goto report;
	}
	s->pid = pid;
	s->init = init;
	s->reaped = false;
	s->in_slotns = in_slotns;
	s->task_index = req->task_index;
	/* The child makes /tmp the size of this job's (sbx_slotns_enter). */
	if (s->in_slotns)
		sbx_slotns_started(&s->ns, req->limits.memory_bytes);
	s->run_id = req->run_id;
	s->peak_reset = peak_reset;
	s->killed = s->deadline = false;
	s->exec = req->flags & SPAWN_F_EXEC;
	s->net = spawner_job_has_network(req);
	close_fds(fds, nfds);
	evt.type = SPAWN_EVT_STARTED;
	evt.pid = pid;
	send_evt(&evt);
	return;
report:
	close_fds(fds, nfds);
	send_evt(&evt);
}



/* One request. */
static void read_request(void)
{
	char *const buf = spawner_sp.reqbuf;
	union {
		char raw[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;

	struct iovec iov = {buf, SPAWNER_REQ_MAX};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf.raw,
			     .msg_controllen = sizeof(cbuf.raw)};
	int fds[SPAWN_MAX_FDS], nfds = 0;
	struct spawn_req req;
	ssize_t n = recvmsg(spawner_sp.sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0)
		spawner_kill_all_and_exit(); /* the daemon is gone */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfds);
		}
	}
	if ((size_t)n < sizeof(req)) {
		close_fds(fds, nfds);
		return;
	}
	memcpy(&req, buf, sizeof(req));
	if (req.type == SPAWN_REQ_START && req.input_len == (size_t)n - sizeof(req)) {
		handle_start(&req, buf + sizeof(req), fds, nfds);
	} else if (req.type == SPAWN_REQ_TIMER && (size_t)n == sizeof(req)) {
		spawner_handle_timer(&req, fds, nfds);
	} else if (req.type == SPAWN_REQ_POLICY && req.input_len == (size_t)n - sizeof(req)) {
		close_fds(fds, nfds);
		spawner_handle_policy(&req, buf + sizeof(req));
	} else {
		close_fds(fds, nfds);
		if (req.type == SPAWN_REQ_KILL)
			spawner_handle_kill(&req);
	}
}

/*
 * Every request queued: the deadlines are checked after them (see serve).
 * Whether more are queued is asked of poll(): a last recvmsg() failing
 * with EAGAIN would write errno, one more page written after each fork.
 */
static void read_requests(void)
{
	struct pollfd more = {spawner_sp.sock, POLLIN, 0};

	do
		read_request();
	while (poll(&more, 1, 0) == 1);
}


/*
 * An exec task in its own PID namespace, or its init, was reaped. The task
 * first: its status and rusage are kept, and its init is killed, which
 * takes the rest of the namespace along; the init's exit waits for all of
 * it, so once the init is reaped the job is over: EXIT.
 */
static void pidns_reaped(unsigned index, pid_t pid, int status, const struct rusage *ru)
{
	struct slot *s = &spawner_sp.slots[index];

	if (pid == s->pid && !s->reaped) {
		s->reaped = true;
		s->status = status;
		s->ru = *ru;
		kill(s->init, SIGKILL);
		return;
	}
	s->init = 0;
	if (s->reaped)
		spawner_send_exit(index, s->status, &s->ru);
}

/* An init or a job child reaped: which slot's, and what it means. */
static void reaped(pid_t pid, int status, const struct rusage *ru)
{
	for (unsigned i = 0; i < spawner_sp.nslots; i++) {
		struct slot *s = &spawner_sp.slots[i];

		/* A slot's launcher died (the OOM killer's group kill): the
		 * next exec job makes another. */
		if (s->ns.launcher == pid) {
			spawner_launcher_gone(&s->ns);
			return;
		}
		/* A slot's forker died: the next warm child makes another. */
		if (s->ns.forker == pid) {
			spawner_forker_gone(&s->ns);
			return;
		}
		/* A slot's init died (it is only ever killed): its namespaces go. */
		if (s->ns.init == pid) {
			s->ns.init = 0;
			sbx_slotns_drop(&s->ns);
			return;
		}
		/* An exec task in its PID namespace, or that namespace's init. */
		if (s->init > 0 && (pid == s->init || (pid == s->pid && !s->reaped))) {
			pidns_reaped(i, pid, status, ru);
			return;
		}
		if (s->pid != pid || s->init > 0)
			continue;
		/* A task in the slot's namespaces: the job's last process, but
		 * for what an exec task left (spawner_send_exit). */
		if (s->in_slotns) {
			spawner_send_exit(i, status, ru);
			return;
		}
		/* Whatever the job left in its process group (and, without a
		 * namespace to take it along, in its cgroup) dies with it. A C
		 * task's strict profile allows no new process: its group is
		 * empty now, and kill() would only fail with ESRCH. */
		if (s->exec)
			kill(-pid, SIGKILL);
		if (cg_of(i) && !spawner_sp.opts->namespaces)
			cg_slot_kill(cg_of(i));
		spawner_send_exit(i, status, ru);
		return;
	}
}

static void reap(void)
{
	int status;
	struct rusage ru;
	pid_t pid;

	while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0)
		if (!sbx_net_reaped(spawner_sp.net, pid))
			reaped(pid, status, &ru);
}


/* The poll loop: requests, exits, deadlines, the view and the network. */
static void __attribute__((noinline, noreturn)) serve(int sock, int sfd)
{
	int64_t next_check = now_ms() + SPAWNER_RECHECK_MS;

	for (;;) {
		struct pollfd *pfd = spawner_sp.pfd;
		struct signalfd_siginfo si;
		int64_t now = now_ms();

		pfd[0] = (struct pollfd){sock, POLLIN, 0};
		pfd[1] = (struct pollfd){sfd, POLLIN, 0};
		pfd[2] = (struct pollfd){
		    spawner_sp.view ? sbx_view_mountinfo_fd(spawner_sp.view) : -1, POLLPRI, 0};
		pfd[3] = (struct pollfd){spawner_sp.net ? sbx_net_monitor_fd(spawner_sp.net) : -1,
					 POLLIN, 0};
		for (unsigned i = 0; i < spawner_sp.nslots; i++)
			pfd[SPAWNER_NFIXED + i] =
			    (struct pollfd){spawner_sp.slots[i].timer, POLLIN, 0};
		/* Every few seconds, busy or not: a hidden directory that was
		 * renamed away and made anew is covered again (a reload does it
		 * at once). */
		if (poll(pfd, SPAWNER_NFIXED + spawner_sp.nslots,
			 next_check > now ? (int)(next_check - now) : 0) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd[2].revents || now_ms() >= next_check) {
			spawner_check_view(pfd[2].revents != 0);
			next_check = now_ms() + SPAWNER_RECHECK_MS;
		}
		if (pfd[3].revents && sbx_net_addresses_changed(spawner_sp.net) < 0)
			dprintf(2, "valetd: cannot follow the node's addresses: %s\n",
				strerror(errno));
		/* SIGCHLD does not queue: one read takes what is pending (and
		 * reap() takes every child that is done). */
		if (pfd[1].revents) {
			(void)!read(sfd, &si, sizeof(si));
			reap();
		}
		if (pfd[0].revents)
			read_requests();
		/* After the requests: a deadline that came while a START for its
		 * slot waited still finds (and kills) that child. */
		for (unsigned i = 0; i < spawner_sp.nslots; i++)
			if (pfd[SPAWNER_NFIXED + i].revents && spawner_sp.slots[i].timer >= 0)
				spawner_check_deadline(i);
	}
}

/*
 * Where serve() starts: the frames of a job's round (poll, recvmsg, fork,
 * wait4, send) take about 1.5 KiB of stack, and each stack page they write
 * is a copy-on-write fault after every fork - two when they straddle a
 * page boundary, which depends on where the kernel put the stack. So the
 * loop starts no less than 3 KiB above the bottom of a stack page.
 */
#define SPAWNER_HOT_STACK 3072

void spawner_main(int sock, int setup_fd)
{
	uintptr_t room = (uintptr_t)__builtin_frame_address(0) & 4095;
	int sfd = spawner_become(sock);

	if (sfd < 0)
		_exit(1);
	/* Seed jansson's hash function now: in a sandboxed child its first
	 * object would otherwise open /dev/urandom, which seccomp forbids. */
	json_object_seed(0);
	spawner_setup(setup_fd);
	spawner_prepare_children();
	if (room < SPAWNER_HOT_STACK) {
		/* Down to the top of the next page. */
		volatile char pad[room + 64];

		pad[0] = 0;
		if (pad[0] == 0)
			serve(sock, sfd);
	}
	serve(sock, sfd);
}
