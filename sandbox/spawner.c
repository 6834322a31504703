/*
 * spawner.c - the spawner process (see spawn_proto.h for why it exists).
 *
 * Theory of operation: valetd exec's the spawner program at startup, which
 * reads its setup document (spawn_setup.c), loads the plugins, prepares the
 * view every job starts from (sbx_view.c: its own read-only mount namespace
 * and an empty network namespace; sbx_net.c for exec+net jobs), says READY
 * with its task table, then runs a poll() loop over the control socket, a
 * signalfd for SIGCHLD, the host's mount table and its address events.
 * START: set the slot's cgroup limits, then make the child. With
 * namespaces, a C task is forked into its worker slot's PID namespace
 * (whose init is a tiny clone of this process sharing its memory) and
 * joins the slot's mount, IPC and UTS namespaces and cgroups: made at the
 * slot's first C-task job, entered by the next ones, made anew when they
 * may be dirty (sbx_init.c). An exec task gets a new PID namespace of its
 * own, with the same tiny init, and is cloned into it as pid 2 with new
 * mount, IPC and UTS namespaces, into this process's memory (CLONE_VM |
 * CLONE_VFORK, as posix_spawn does: this process waits until it has exec'd;
 * nothing of the image is copied for a process that execs), and does the
 * rest of its setup in exec_task_ns(). The task enters the sandbox (fds,
 * rlimits, user, seccomp) and runs the C tasks or execs the program. The
 * parent closes its copies of the child's fds and remembers slot -> pid
 * (and an exec task's init). KILL: SIGKILL the slot's child (a C task,
 * which is its job's only process; an exec task and its init, which takes
 * the whole namespace along; without namespaces, the child, its process
 * group and cgroup).
 * Deadlines: each slot has a timer (a timerfd the daemon handed over with
 * TIMER and arms when a job starts, see spawn_proto.h); the poll loop
 * waits on it too, and when it expires the
 * slot's child is killed as for KILL, on this process's clock - however
 * late the daemon's loop is. SIGCHLD: reap everything with wait4(); for
 * a C task in its slot's namespaces, report EXIT at once (it was its job's
 * last process), and drop the slot's namespaces when they may be dirty; for
 * an exec task in its PID namespace, keep its wait status and rusage and
 * kill its init, and report EXIT once the init is reaped too (the
 * namespace is empty then); without namespaces, kill what is left of the
 * child's process group and cgroup; note an OOM kill and a kill at the
 * deadline, and
 * report EXIT. When the daemon's end of the socket closes, kill every
 * child and exit. The spawner allocates nothing per job and keeps no state
 * but the slot table.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/capability.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#include <jansson.h>

#include "registry.h"
#include "spawner.h"
#include "taskrun.h"

/* A stack another process ran on (CLONE_VM), made clean for AddressSanitizer. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define spawner_stack_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define spawner_stack_unpoison(p, n) ((void)(p), (void)(n))
#endif

/* How often the view's hidden directories are checked without a reason. */
#define SPAWNER_RECHECK_MS 2000
/* The poll loop's fds before the slots' timers. */
#define SPAWNER_NFIXED 4
/* The largest request: a START with inline input, or a POLICY. */
#define SPAWNER_REQ_MAX (sizeof(struct spawn_req) + SPAWN_INLINE_MAX)

struct slot {
	pid_t pid;       /* the job child; 0 = free */
	bool in_slotns;  /* ...a C task in the slot's namespaces (ns) */
	pid_t init;      /* an exec task's PID namespace init (sbx_pidns_init); 0 = none */
	bool reaped;     /* ...and the task was reaped (status, ru), its init not yet */
	uint64_t run_id;
	bool peak_reset; /* the cgroup's memory peak was reset for this job */
	bool killed;     /* by a KILL or at the deadline, whichever came first */
	bool deadline;   /* ...and that was the deadline */
	bool exec;       /* an exec task (a C task cannot create processes) */
	int netns;       /* the slot's empty network namespace; -1 = not made yet */
	int timer;       /* the slot's deadline timer (TIMER); -1 = none yet */
	int status;
	struct rusage ru; /* an exec task's, when reaped before its init */
	struct sbx_slotns ns; /* C tasks' namespaces (sbx_slotns_*); ns.init 0 = none */
};

static struct {
	const struct spawner_setup *opts;
	const struct registry *reg;
	int sock;
	int devnull;
	pid_t self;
	uint64_t changed_signals; /* bit sig - 1: disposition not SIG_DFL */
	struct slot *slots;
	unsigned nslots;
	struct pollfd *pfd; /* [SPAWNER_NFIXED + nslots] */
	char *reqbuf;       /* [SPAWNER_REQ_MAX]: one request (see setup_hot_state) */
	struct sbx_view *view;    /* the jobs' view (namespaces); NULL = none */
	struct sbx_net *net;      /* exec+net jobs' network; NULL = none */
	int host_netns;           /* exec+net jobs with net_host; -1 = none */
	int own_pidns;            /* this PID namespace (the jobs' inits) */
	int self_pidfd;           /* a pidfd of this process, for the inits; -1 = none */
	char *init_stacks;        /* 2 x SBX_INIT_STACK bytes per slot: its C tasks' init, an exec job's */
} sp;

/* The explicit environment of every job child. */
static char *child_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=/",
	"LANG=C.UTF-8",
	"TMPDIR=/tmp",
	NULL,
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static void send_evt(const struct spawn_evt *evt)
{
	/* Blocking on purpose: the daemon never waits on us, so this ends. */
	while (send(sp.sock, evt, sizeof(*evt), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static struct cg_slot *cg_of(unsigned index)
{
	return sp.opts->cgslots ? &sp.opts->cgslots[index] : NULL;
}

/*
 * With namespaces: the task (the spawner reaps it: its CPU time is
 * accounted) and its init, whose death takes the rest of the namespace
 * along. Without: the child, its process group and its cgroup.
 */
static void kill_slot(unsigned index)
{
	struct cg_slot *cg = cg_of(index);
	struct slot *s = &sp.slots[index];
	pid_t pid = s->pid;

	/* A C task in its slot's namespaces is the job's only process (it
	 * cannot create one): the spawner reaps it, so it is accounted. */
	if (s->in_slotns) {
		kill(pid, SIGKILL);
		return;
	}
	/* An exec task in its own PID namespace (a reaped one's pid may be
	 * someone else's by now), and the init. */
	if (s->init > 0) {
		if (!s->reaped)
			kill(pid, SIGKILL);
		kill(s->init, SIGKILL);
		return;
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	if (cg && !sp.opts->namespaces)
		cg_slot_kill(cg);
}

static void kill_all_and_exit(void)
{
	for (unsigned i = 0; i < sp.nslots; i++) {
		if (sp.slots[i].pid > 0)
			kill_slot(i);
		if (sp.slots[i].ns.init > 0)
			kill(sp.slots[i].ns.init, SIGKILL);
	}
	/* The network helpers exit when their exit pipes close. */
	sbx_net_free(sp.net);
	sp.net = NULL;
	/* Reap them (and orphans given to us): when the daemon sees us gone,
	 * the slot cgroups are empty and can be removed. */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
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

/* In the forked job child: never returns. */
static void child_main(const struct spawn_req *req, const char *input, const int *fds,
		       int nfds, pid_t parent)
{
	const struct spawner_setup *o = sp.opts;
	const struct task *task = registry_at(sp.reg, req->task_index);
	bool exec = req->flags & SPAWN_F_EXEC;
	struct sbx_params p = {
		.frame_fd = fds[0],
		.stdout_fd = fds[1],
		.stderr_fd = (req->flags & SPAWN_F_SHARED_OUTPUT) ? fds[1] : fds[2],
		.stdin_fd = (req->flags & SPAWN_F_HAS_STDIN) ? fds[nfds - 1] : -1,
		.frame_cloexec = exec,
		.devnull_fd = sp.devnull,
		.expected_parent = parent,
		.drop_user = o->drop_user,
		.uid = o->uid_base ? o->uid_base + req->slot : o->uid,
		.gid = o->uid_base ? o->uid_base + req->slot : o->gid,
		.limits = req->limits,
		.filter = &o->filters[exec && task ? task->profile : SBX_PROFILE_STRICT],
		.trap_sigsys = !exec,
		.workdir = NULL, /* the spawner's: "/" */
		.changed_signals = &sp.changed_signals,
	};
	struct sbx_error err = {{0}, 0};
	char name[16] = {'v', 'a', 'l', 'e', 't', 'd', '-', 'j', 'o', 'b'};

	/* A memory cgroup limits memory; the address space is only a backstop
	 * then, with room for what runtimes reserve and never touch. */
	if (cg_of(req->slot) && p.limits.memory_bytes)
		p.limits.memory_bytes *= 4;
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
		execve(task->argv[0], task->argv, child_env);
		struct sbx_error e = {"execve", errno};
		sbx_fail(SBX_FD_FRAME, &e);
	}
	if (req->flags & SPAWN_F_INPUT_STDIN) {
		size_t len = 0;
		char *buf = (req->flags & SPAWN_F_INPUT_SIZED) ? read_sized_stdin(&len)
							       : read_all_stdin(&len);
		if (!buf)
			_exit(125);
		taskrun_main(sp.reg, buf, len);
	}
	taskrun_main(sp.reg, input, req->input_len);
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
 * A C task with namespaces: forked into its slot's PID namespace (made
 * first when the slot has none, or none of the view as it is now), as a
 * child of this process; its mount, IPC and UTS namespaces it joins itself
 * (sbx_slotns_enter). This process's own children go to its own namespace
 * again before this returns.
 */
static pid_t fork_in_pidns(const struct spawn_req *req)
{
	struct slot *s = &sp.slots[req->slot];
	char *stack_top = sp.init_stacks + (size_t)(2 * req->slot + 1) * SBX_INIT_STACK;
	uint64_t gen = sbx_view_generation(sp.view);
	struct sbx_init_params ip = {
		.tmp_bytes = req->limits.memory_bytes,
		.keep = sp.opts->keep,
		.nkeep = sp.opts->nkeep,
	};
	struct sbx_error err = {{0}, 0};
	pid_t pid;
	int e;

	if (s->ns.init > 0 && s->ns.view_gen != gen)
		sbx_slotns_drop(&s->ns);
	if (s->ns.init > 0 ? sbx_slotns_fork_into(&s->ns, &err) < 0
			   : sbx_slotns_build(&s->ns, stack_top, sp.self_pidfd, sp.own_pidns, &ip,
					      &err) < 0) {
		if (err.err)
			dprintf(2, "valetd: cannot make slot %u's namespaces: %s: %s\n", req->slot,
				err.step, strerror(err.err));
		errno = err.err ? err.err : EIO;
		return -1;
	}
	s->ns.view_gen = gen;
	pid = _Fork(); /* see clone_child() */
	if (pid == 0)
		return 0;
	e = errno;
	if (setns(sp.own_pidns, CLONE_NEWPID) < 0) {
		/* Later children would land in the job's namespace. */
		e = errno;
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	if (pid < 0) {
		sbx_slotns_drop(&s->ns);
		errno = e;
	}
	return pid;
}

static pid_t spawn_process(const struct spawn_req *req)
{
	pid_t pid;

	if (sp.opts->namespaces && !(req->flags & SPAWN_F_EXEC))
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
static bool job_has_network(const struct spawn_req *req)
{
	const struct task *task = registry_at(sp.reg, req->task_index);

	return (req->flags & SPAWN_F_EXEC) && task && task->profile == SBX_PROFILE_EXEC_NET;
}

/*
 * The network namespace of a job: for a profile with network, the slot's
 * own that its helper serves (or the host's, with net_host); else the
 * slot's empty one. Both are made the first time the slot needs them. 0
 * with *fd (-1 without namespaces), or an errno.
 */
static int job_netns(const struct spawn_req *req, int *fd)
{
	struct sbx_error err = {{0}, 0};
	struct slot *s = &sp.slots[req->slot];

	*fd = -1;
	if (!sp.opts->namespaces)
		return 0;
	if (job_has_network(req)) {
		if (sp.opts->net_host || !sp.net) {
			*fd = sp.host_netns;
			return 0;
		}
		*fd = sbx_net_netns(sp.net, req->slot, &err);
		return *fd < 0 ? (err.err ? err.err : EIO) : 0;
	}
	if (s->netns < 0 && sbx_netns_new(&s->netns, &err) < 0)
		return err.err;
	*fd = s->netns;
	return 0;
}

/* What an exec job's task needs from handle_start's frame (exec_task_ns). */
struct exec_args {
	const struct spawn_req *req;
	const char *input;
	const int *fds;
	int nfds;
	int netns;
};

/*
 * An exec task with namespaces, cloned by spawn_exec_in_pidns() into this
 * process's memory: its own mount, IPC and UTS namespaces are made by the
 * clone; the slot's network, the host name, /proc, /tmp and the cgroups,
 * then the sandbox and execve. Its parent, this process, is outside its PID
 * namespace.
 */
static int exec_task_ns(void *arg)
{
	const struct exec_args *a = arg;
	const struct cg_slot *cg = cg_of(a->req->slot);
	struct sbx_error err = {{0}, 0};
	struct sbx_init_params ip = {
		.join_fds = cg ? cg->join : NULL,
		.njoin = cg ? cg->njoin : 0,
		.netns_fd = a->netns,
		.net_resolv = a->netns >= 0 && a->netns != sp.host_netns && job_has_network(a->req),
		.keep = sp.opts->keep,
		.nkeep = sp.opts->nkeep,
		.tmp_bytes = a->req->limits.memory_bytes,
	};

	if (sbx_exec_ns_enter(&ip, &err) < 0)
		sbx_fail(a->fds[0], &err);
	child_main(a->req, a->input, a->fds, a->nfds, 0);
	_exit(127); /* child_main does not return for an exec task */
}

/*
 * An exec task with namespaces: a new PID namespace with the tiny init of
 * the C tasks (sbx_pidns_init: it shares this process's memory and sleeps),
 * and the task cloned into it as pid 2, with new mount, IPC and UTS
 * namespaces, into this process's memory too (CLONE_VM | CLONE_VFORK, on a
 * stack in this frame, as posix_spawn does): this process waits until the
 * task has exec'd or died, so the task's libc calls (errno) race nothing
 * here, and no copy of this image is made for it, none torn down at its
 * execve, none for its init. This process is the task's parent: it reaps
 * it with its rusage, then kills the init (pidns_reaped()).
 */
static pid_t __attribute__((noinline)) spawn_exec_in_pidns(struct exec_args *a, pid_t *init)
{
	char stack[SBX_EXEC_STACK] __attribute__((aligned(16)));
	char *init_top = sp.init_stacks + (size_t)(2 * a->req->slot + 2) * SBX_INIT_STACK;
	const int flags = CLONE_VM | CLONE_VFORK | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
	struct sbx_error err = {{0}, 0};
	pid_t pid;
	int e;

	if (sbx_pidns_init(init_top, sp.self_pidfd, sp.own_pidns, init, &err) < 0) {
		errno = err.err;
		return -1;
	}
	pid = clone(exec_task_ns, stack + sizeof(stack), flags | SIGCHLD, a);
	e = errno;
	/* Under AddressSanitizer the task's frames poisoned their redzones in
	 * this process's shadow memory (CLONE_VM) and never returned to clear
	 * them: clear them here, or the next task trips over them. */
	spawner_stack_unpoison(stack, sizeof(stack));
	if (setns(sp.own_pidns, CLONE_NEWPID) < 0 && pid > 0) {
		/* Later children would land in the job's namespace. */
		e = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	if (pid < 0) {
		kill(*init, SIGKILL);
		waitpid(*init, NULL, 0);
		*init = 0;
		errno = e;
	}
	return pid;
}

/* In the new child (a C task with namespaces, or any task without): the
 * namespaces and the cgroup, then the task. */
static void child_start(const struct spawn_req *req, const char *input, const int *fds, int nfds,
			int netns)
{
	const struct cg_slot *cg = cg_of(req->slot);
	struct sbx_error err = {{0}, 0};
	pid_t parent = sp.self;

	if (sp.opts->namespaces) {
		struct sbx_init_params ip = {
			.join_fds = cg ? cg->join : NULL,
			.njoin = cg ? cg->njoin : 0,
			.netns_fd = netns,
			.net_resolv = netns >= 0 && netns != sp.host_netns && job_has_network(req),
			.keep = sp.opts->keep,
			.nkeep = sp.opts->nkeep,
			.tmp_bytes = req->limits.memory_bytes,
		};
		if (sbx_slotns_enter(&sp.slots[req->slot].ns, &ip, &err) < 0)
			sbx_fail(fds[0], &err);
		parent = 0; /* this process, outside the task's PID namespace */
	} else {
		if (cg && sbx_cgroup_join(cg->join, cg->njoin, &err) < 0)
			sbx_fail(fds[0], &err);
		/* In a new PID namespace getppid() is 0: skip that check. */
		if (getpid() == 1)
			parent = 0;
	}
	child_main(req, input, fds, nfds, parent);
}

/*
 * The fds that came with a request. recvmsg() gives them the lowest free
 * numbers, so they are usually consecutive: then one close_range() closes
 * them all (three close() calls a job otherwise).
 */
static void close_fds(const int *fds, int nfds)
{
	bool run = nfds > 1;

	for (int i = 1; run && i < nfds; i++)
		run = fds[i] == fds[0] + i;
	if (run && syscall(SYS_close_range, (unsigned)fds[0], (unsigned)fds[nfds - 1], 0U) == 0)
		return;
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

static struct slot *slot_of(uint32_t index)
{
	return index < sp.nslots ? &sp.slots[index] : NULL;
}

static void handle_start(const struct spawn_req *req, const char *input, int *fds, int nfds)
{
	struct slot *s = slot_of(req->slot);
	struct spawn_evt evt = {.type = SPAWN_EVT_EXIT, .slot = req->slot, .run_id = req->run_id};
	bool peak_reset;
	int netns;
	pid_t pid, init = 0;

	if (!s || s->pid != 0 || nfds < 2) {
		evt.spawn_err = EINVAL;
		goto report;
	}
	if (cg_of(req->slot) &&
	    (evt.spawn_err = -cg_slot_limit(cg_of(req->slot), req->limits.memory_bytes,
					    req->limits.max_processes)) != 0)
		goto report;
	if ((evt.spawn_err = job_netns(req, &netns)) != 0)
		goto report;
	/* Before the fork: the peak then covers the job's whole life. */
	peak_reset = cg_of(req->slot) && cg_slot_peak_reset(cg_of(req->slot));
	if (sp.opts->namespaces && (req->flags & SPAWN_F_EXEC)) {
		struct exec_args args = {req, input, fds, nfds, netns};

		pid = spawn_exec_in_pidns(&args, &init);
	} else {
		pid = spawn_process(req);
		if (pid == 0)
			child_start(req, input, fds, nfds, netns);
	}
	if (pid < 0) {
		evt.spawn_err = errno;
		goto report;
	}
	s->pid = pid;
	s->init = init;
	s->reaped = false;
	s->in_slotns = sp.opts->namespaces && !(req->flags & SPAWN_F_EXEC);
	/* The child makes /tmp the size of this job's (sbx_slotns_enter). */
	if (s->in_slotns)
		sbx_slotns_started(&s->ns, req->limits.memory_bytes);
	s->run_id = req->run_id;
	s->peak_reset = peak_reset;
	s->killed = s->deadline = false;
	s->exec = req->flags & SPAWN_F_EXEC;
	close_fds(fds, nfds);
	evt.type = SPAWN_EVT_STARTED;
	evt.pid = pid;
	send_evt(&evt);
	return;
report:
	close_fds(fds, nfds);
	send_evt(&evt);
}

/*
 * The view changed: the slots' namespaces, copies of it as it was, go
 * (those of a running job when it ends, see slotns_reusable): they would
 * keep what the host unmounted busy, and show what is hidden now.
 */
static void drop_stale_slotns(void)
{
	uint64_t gen = sbx_view_generation(sp.view);

	for (unsigned i = 0; i < sp.nslots; i++) {
		struct slot *s = &sp.slots[i];

		if (s->ns.init > 0 && s->ns.view_gen != gen && !s->in_slotns)
			sbx_slotns_drop(&s->ns);
	}
}

/*
 * POLICY: what jobs must not see or reach, decided by the daemon once it
 * knows (the database's socket directory and addresses come from libpq,
 * loaded after we were forked), and again at each reload. The payload is
 * NUL-terminated entries: "h/dir" hides a directory (sbx_view_hide: also
 * when it appears later, or comes back after a rename), "dA.B.C.D" denies an
 * IPv4 address to exec+net jobs; the denied set replaces the last one.
 */
static void handle_policy(const struct spawn_req *req, const char *payload)
{
	struct spawn_evt evt = {.type = SPAWN_EVT_POLICY, .run_id = req->run_id};
	uint32_t deny[256];
	int ndeny = 0, rc;

	for (size_t off = 0; off < req->input_len;) {
		const char *e = payload + off;
		size_t len = strnlen(e, req->input_len - off);
		struct sbx_error err = {{0}, 0};
		struct in_addr a;

		off += len + 1;
		if (len < 2 || off > req->input_len)
			break;
		if (e[0] == 'h' && sp.view && sbx_view_hide(sp.view, e + 1, &err) < 0) {
			dprintf(2, "valetd: cannot hide %s from jobs: %s: %s\n", e + 1, err.step,
				strerror(err.err));
			evt.spawn_err = err.err;
		} else if (e[0] == 'd' && inet_pton(AF_INET, e + 1, &a) == 1 && ndeny < 256) {
			deny[ndeny++] = a.s_addr;
		}
	}
	if (sp.net && (rc = sbx_net_deny(sp.net, deny, ndeny)) < 0) {
		dprintf(2, "valetd: cannot deny addresses to exec+net jobs: %s\n", strerror(-rc));
		evt.spawn_err = -rc;
	}
	drop_stale_slotns();
	send_evt(&evt);
}

/* The host unmounted something, or a hidden directory was renamed away:
 * bring the view in line before the next job is forked from it. */
static void check_view(bool host_changed)
{
	struct sbx_error err = {{0}, 0};

	if (!sp.view)
		return;
	if (host_changed && sbx_view_follow_host(sp.view) < 0)
		dprintf(2, "valetd: cannot follow the host's unmounts: %s\n", strerror(errno));
	if (sbx_view_recheck(sp.view, &err) < 0)
		dprintf(2, "valetd: cannot hide a directory from jobs again: %s: %s\n", err.step,
			strerror(err.err));
	drop_stale_slotns();
}

static void handle_kill(const struct spawn_req *req)
{
	struct slot *s = slot_of(req->slot);

	/* Only an unreaped child of this run: its pid cannot be recycled yet. */
	if (s && s->pid > 0 && s->run_id == req->run_id) {
		s->killed = true;
		kill_slot(req->slot);
	}
}


/*
 * TIMER: the slot's deadline timer, which the daemon keeps too and arms
 * (see spawn_proto.h). Anything but one timerfd is refused: the poll loop
 * must not spin on a pipe that is always readable. Non-blocking, so that
 * an expiry the daemon cleared by re-arming reads as nothing.
 */
static void handle_timer(const struct spawn_req *req, const int *fds, int nfds)
{
	struct slot *s = slot_of(req->slot);
	struct itimerspec its;

	if (!s || nfds != 1 || timerfd_gettime(fds[0], &its) < 0 ||
	    fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
		close_fds(fds, nfds);
		return;
	}
	if (s->timer >= 0)
		close(s->timer);
	s->timer = fds[0];
}

/*
 * A slot's timer expired: its child has reached its deadline. Kill it as
 * KILL would, unless a KILL came first, and remember why for its EXIT. An
 * expiry with no child is dropped: the child ended in time, and the daemon
 * disarms the timer (which clears an expiry not read yet) before the slot
 * gets its next child.
 */
static void check_deadline(unsigned index)
{
	struct slot *s = &sp.slots[index];
	uint64_t expiries;

	if (read(s->timer, &expiries, sizeof(expiries)) != (ssize_t)sizeof(expiries))
		return;
	if (s->pid > 0 && !s->killed) {
		s->killed = s->deadline = true;
		kill_slot(index);
	}
}

/* One request. */
static void read_request(void)
{
	char *const buf = sp.reqbuf;
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
	ssize_t n = recvmsg(sp.sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
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
		close_fds(fds, nfds);
		return;
	}
	memcpy(&req, buf, sizeof(req));
	if (req.type == SPAWN_REQ_START && req.input_len == (size_t)n - sizeof(req)) {
		handle_start(&req, buf + sizeof(req), fds, nfds);
	} else if (req.type == SPAWN_REQ_TIMER && (size_t)n == sizeof(req)) {
		handle_timer(&req, fds, nfds);
	} else if (req.type == SPAWN_REQ_POLICY && req.input_len == (size_t)n - sizeof(req)) {
		close_fds(fds, nfds);
		handle_policy(&req, buf + sizeof(req));
	} else {
		close_fds(fds, nfds);
		if (req.type == SPAWN_REQ_KILL)
			handle_kill(&req);
	}
}

/*
 * Every request queued: the deadlines are checked after them (see serve).
 * Whether more are queued is asked of poll(): a last recvmsg() failing
 * with EAGAIN would write errno, one more page written after each fork.
 */
static void read_requests(void)
{
	struct pollfd more = {sp.sock, POLLIN, 0};

	do
		read_request();
	while (poll(&more, 1, 0) == 1);
}

/*
 * A C task in the slot's namespaces ended (status): whether they may be
 * entered by the next job. Not after a kill or an OOM kill (the task may
 * have been stopped in its setup), a setup failure (126: sbx_fail), or
 * when /tmp is not as built (a C task cannot write to it: defence in
 * depth). Otherwise nothing of the task is left: it was the namespace's
 * only process but the init, and it creates neither processes, files,
 * mounts nor IPC objects (the strict profile).
 */
static bool slotns_reusable(const struct slot *s, int status, bool oom)
{
	return !s->killed && !oom && !(WIFEXITED(status) && WEXITSTATUS(status) == 126) &&
	       s->ns.view_gen == sbx_view_generation(sp.view) && sbx_slotns_clean(&s->ns);
}

/* EXIT: the slot's job child is gone, with status and ru. */
static void send_exit(unsigned index, int status, const struct rusage *ru)
{
	struct slot *s = &sp.slots[index];
	struct cg_slot *cg = cg_of(index);
	bool oom = cg && cg_slot_oom(cg);
	struct spawn_evt evt = {
		.type = SPAWN_EVT_EXIT,
		.slot = index,
		.run_id = s->run_id,
		.pid = s->pid,
		.status = status,
		.flags = (oom ? SPAWN_EVT_F_OOM : 0) | (s->deadline ? SPAWN_EVT_F_DEADLINE : 0),
		.memory_peak_kb = s->peak_reset ? cg_slot_peak(cg) / 1024 : -1,
		.utime_us = ru->ru_utime.tv_sec * 1000000LL + ru->ru_utime.tv_usec,
		.stime_us = ru->ru_stime.tv_sec * 1000000LL + ru->ru_stime.tv_usec,
		.maxrss_kb = ru->ru_maxrss,
		.end_ns = now_ns(),
	};

	if (s->in_slotns && !slotns_reusable(s, status, oom))
		sbx_slotns_drop(&s->ns);
	s->pid = 0;
	s->in_slotns = false;
	send_evt(&evt);
}

/*
 * An exec task in its own PID namespace, or its init, was reaped. The task
 * first: its status and rusage are kept, and its init is killed, which
 * takes the rest of the namespace along; the init's exit waits for all of
 * it, so once the init is reaped the job is over: EXIT.
 */
static void pidns_reaped(unsigned index, pid_t pid, int status, const struct rusage *ru)
{
	struct slot *s = &sp.slots[index];

	if (pid == s->pid && !s->reaped) {
		s->reaped = true;
		s->status = status;
		s->ru = *ru;
		kill(s->init, SIGKILL);
		return;
	}
	s->init = 0;
	if (s->reaped)
		send_exit(index, s->status, &s->ru);
}

/* An init or a job child reaped: which slot's, and what it means. */
static void reaped(pid_t pid, int status, const struct rusage *ru)
{
	for (unsigned i = 0; i < sp.nslots; i++) {
		struct slot *s = &sp.slots[i];

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
		/* A C task in the slot's namespaces: the job's last process. */
		if (s->in_slotns) {
			send_exit(i, status, ru);
			return;
		}
		/* Whatever the job left in its process group (and, without a
		 * namespace to take it along, in its cgroup) dies with it. A C
		 * task's strict profile allows no new process: its group is
		 * empty now, and kill() would only fail with ESRCH. */
		if (s->exec)
			kill(-pid, SIGKILL);
		if (cg_of(i) && !sp.opts->namespaces)
			cg_slot_kill(cg_of(i));
		send_exit(i, status, ru);
		return;
	}
}

static void reap(void)
{
	int status;
	struct rusage ru;
	pid_t pid;

	while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0)
		if (!sbx_net_reaped(sp.net, pid))
			reaped(pid, status, &ru);
}

/*
 * The capability bounding set limits what any process forked from here can
 * ever gain by execve() (a file with capabilities, a setuid-root program
 * that nosuid and no_new_privs did not already neutralise): empty it, once,
 * here, instead of in every job child (41 prctl() calls, each a credential
 * change: about 90 us a job). The spawner keeps what it holds. The network
 * helper, started as root after this, gets exactly the inheritable set
 * (root's execve() takes the bounding set and the inheritable set), so
 * that set gets what the helper needs first, while the bounding set still
 * allows it. Without CAP_SETPCAP nothing changes (--check says so).
 */
static void drop_bounding_set(void)
{
	static const int helper_caps[] = {CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETPCAP,
					  CAP_NET_BIND_SERVICE};
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &hdr, caps) < 0 || !(caps[0].effective & (1U << CAP_SETPCAP)))
		return;
	for (size_t i = 0; sp.net && i < sizeof(helper_caps) / sizeof(helper_caps[0]); i++)
		caps[0].inheritable |= caps[0].permitted & (1U << helper_caps[i]);
	(void)syscall(SYS_capset, &hdr, caps);
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

/* The view every job starts from, the jobs' inits, and the network of
 * exec+net jobs. 0, or -errno with *err. */
static int prepare_jobs(struct sbx_error *err)
{
	if (!sp.opts->namespaces)
		return 0;
	/* The jobs' inits: a stack each, the way back to this namespace, and
	 * whether this process is still there (Linux 5.3; else unchecked). */
	sp.init_stacks = calloc(sp.nslots, 2 * SBX_INIT_STACK);
	if (!sp.init_stacks)
		return sbx_error_set(err, "init stacks", ENOMEM);
	sp.own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (sp.own_pidns < 0)
		return sbx_error_set(err, "open pid namespace", errno);
	sp.self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0U);
	if (sbx_view_prepare(&sp.opts->view, sp.opts->keep, sp.opts->nkeep, &sp.view, err) < 0)
		return sbx_failed(err);
	sp.host_netns = sbx_view_host_netns(sp.view);
	if (sp.opts->net.helper && !sp.opts->net_host &&
	    sbx_net_new(&sp.opts->net, sp.nslots, sp.host_netns, &sp.net, err) < 0)
		return sbx_failed(err);
	return 0;
}

/*
 * READY: the event, then the task table (JSON); or, when the setup failed,
 * spawn_err and the sentence that says why.
 */
static void send_ready(int spawn_err, uint32_t flags, const char *text)
{
	struct spawn_evt evt = {.type = SPAWN_EVT_READY, .spawn_err = spawn_err, .flags = flags};
	size_t len = text ? strlen(text) : 0;
	struct iovec iov[2] = {{&evt, sizeof(evt)}, {(void *)text, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = text ? 2 : 1};

	while (sendmsg(sp.sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/*
 * What this process writes for every job - the slot table, poll()'s array,
 * the request just received - on pages of their own, in that order, so
 * that a few slots and a request without inline input share one page:
 * after each fork every page written here again is a copy-on-write fault
 * (about 25 us on a VM that shadows page tables). 0 or -errno.
 */
static int setup_hot_state(void)
{
	size_t slots = sizeof(*sp.slots) * sp.nslots;
	size_t pfd = sizeof(*sp.pfd) * (SPAWNER_NFIXED + sp.nslots);
	char *hot = mmap(NULL, slots + pfd + SPAWNER_REQ_MAX, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (hot == MAP_FAILED)
		return -errno;
	sp.slots = (struct slot *)hot;
	sp.pfd = (struct pollfd *)(hot + slots);
	sp.reqbuf = hot + slots + pfd;
	for (unsigned i = 0; i < sp.nslots; i++) {
		sp.slots[i].netns = sp.slots[i].timer = -1;
		sbx_slotns_init(&sp.slots[i].ns);
	}
	return 0;
}

/* Setup: the document, the plugins, the view, the network; READY. */
static void setup(int setup_fd)
{
	static struct spawner_setup setup_doc;
	struct sbx_error err = {{0}, 0};
	char msg[1024] = "";
	char *table;
	int rc;

	rc = spawn_setup_read(setup_fd, &setup_doc, registry_global(), msg, sizeof(msg));
	if (rc < 0) {
		send_ready(-rc, 0, msg);
		_exit(1);
	}
	sp.opts = &setup_doc;
	sp.reg = registry_global();
	/* Once the plugins are mapped, and while /proc is still the host's:
	 * the jobs' view, which this process enters, mounts it read-only. */
	(void)sbx_share_code();
	sp.nslots = setup_doc.nslots;
	if (setup_hot_state() < 0) {
		send_ready(ENOMEM, 0, "out of memory");
		_exit(1);
	}
	if (prepare_jobs(&err) < 0) {
		/* The steps of sbx_mounts_private()'s chroot need the reason they ran. */
		snprintf(msg, sizeof(msg), "cannot prepare the job sandbox: %s%s: %s",
			 strncmp(err.step, "chroot", 6)
			     ? ""
			     : "/ is not a mount point (a chroot) and a "
			       "root of the jobs' own could not be made: ",
			 err.step, strerror(err.err));
		send_ready(err.err ? err.err : EIO, SPAWN_EVT_F_SANDBOX, msg);
		_exit(1);
	}
	drop_bounding_set();
	table = spawn_setup_task_table(sp.reg);
	if (!table) {
		send_ready(ENOMEM, 0, "out of memory");
		_exit(1);
	}
	send_ready(0, 0, table);
	free(table);
}

/* The process: its name, its signals (SIGCHLD on a signalfd, returned),
 * tied to the daemon's life. The signalfd, or -errno. */
static int become_spawner(int sock)
{
	sigset_t set;
	int fd;

	sp.sock = sock;
	sp.self = getpid();
	sp.host_netns = sp.own_pidns = sp.self_pidfd = -1;
	sp.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* Every job starts in "/": once here instead of a chdir() per child. */
	if (chdir("/") < 0 || sp.devnull < 0)
		return -errno;
	prctl(PR_SET_NAME, "valetd-spawner");
	/* Die with the daemon; it may have died before this prctl: then the
	 * socket is closed already, and the first read says so. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN); /* the daemon decides when we stop */
	signal(SIGTERM, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/*
 * Restartable sequences, which glibc registers for every thread: the kernel
 * then writes the CPU number into the thread's rseq area whenever the
 * thread comes back to user space on another CPU or after a preemption -
 * after each fork, a page fault here and another one in the child, whose
 * registration is inherited. Nothing here or in a task needs them (glibc's
 * sched_getcpu() falls back to the system call), so this process gives
 * them up, and its children inherit that. Best effort: a glibc that
 * registered with another size, or none at all, keeps its registration.
 */
static void drop_rseq(void)
{
#ifdef RSEQ_SIG
	/* The length must be the registered one: __rseq_size is the size of
	 * the features in use (20), the area registered is at least 32. */
	char *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	if (__rseq_size > 0 &&
	    syscall(SYS_rseq, area, 32U, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) < 0 && __rseq_size > 32)
		(void)syscall(SYS_rseq, area, (unsigned)__rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
#endif
}

/* What every child would otherwise do again: decided once here. */
static void prepare_children(void)
{
	/* Children reset only what differs from the default (one syscall per
	 * signal instead of 64), and start with jansson's lazily bound calls
	 * already resolved by a dry run here. */
	sp.changed_signals = 0;
	for (int sig = 1; sig < NSIG && sig <= 64; sig++)
		if (sbx_signal_disposition(sig) == 1)
			sp.changed_signals |= 1ULL << (sig - 1);
	taskrun_warmup();
	drop_rseq();
	/* The C task's environment, set here once: in the child, glibc's
	 * environ would be one more page written. */
	environ = child_env;
}

/* The poll loop: requests, exits, deadlines, the view and the network. */
static void __attribute__((noinline, noreturn)) serve(int sock, int sfd)
{
	int64_t next_check = now_ms() + SPAWNER_RECHECK_MS;

	for (;;) {
		struct pollfd *pfd = sp.pfd;
		struct signalfd_siginfo si;
		int64_t now = now_ms();

		pfd[0] = (struct pollfd){sock, POLLIN, 0};
		pfd[1] = (struct pollfd){sfd, POLLIN, 0};
		pfd[2] = (struct pollfd){sp.view ? sbx_view_mountinfo_fd(sp.view) : -1, POLLPRI, 0};
		pfd[3] = (struct pollfd){sp.net ? sbx_net_monitor_fd(sp.net) : -1, POLLIN, 0};
		for (unsigned i = 0; i < sp.nslots; i++)
			pfd[SPAWNER_NFIXED + i] = (struct pollfd){sp.slots[i].timer, POLLIN, 0};
		/* Every few seconds, busy or not: a hidden directory that was
		 * renamed away and made anew is covered again (a reload does it
		 * at once). */
		if (poll(pfd, SPAWNER_NFIXED + sp.nslots,
			 next_check > now ? (int)(next_check - now) : 0) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd[2].revents || now_ms() >= next_check) {
			check_view(pfd[2].revents != 0);
			next_check = now_ms() + SPAWNER_RECHECK_MS;
		}
		if (pfd[3].revents && sbx_net_addresses_changed(sp.net) < 0)
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
		for (unsigned i = 0; i < sp.nslots; i++)
			if (pfd[SPAWNER_NFIXED + i].revents && sp.slots[i].timer >= 0)
				check_deadline(i);
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
	int sfd = become_spawner(sock);

	if (sfd < 0)
		_exit(1);
	/* Seed jansson's hash function now: in a sandboxed child its first
	 * object would otherwise open /dev/urandom, which seccomp forbids. */
	json_object_seed(0);
	setup(setup_fd);
	prepare_children();
	if (room < SPAWNER_HOT_STACK) {
		/* Down to the top of the next page. */
		volatile char pad[room + 64];

		pad[0] = 0;
		if (pad[0] == 0)
			serve(sock, sfd);
	}
	serve(sock, sfd);
}
