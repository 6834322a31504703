/*
 * spawner_exec.c - the ways an exec task with namespaces is started: in its
 * worker slot's namespaces, or in a PID namespace of its own.
 *
 * Theory of operation. With namespaces, handle_start() (spawner.c) asks
 * spawner_exec_in_slotns() where an exec task goes. One without network,
 * of a task that created no processes in its slot's namespaces before,
 * goes there: spawner_spawn_exec_in_slotns() makes them first when the
 * slot has none, or none of the view as it is now, and has the slot's
 * launcher start the task (spawner_launch.c); where it cannot (a /tmp of
 * another size), the task is cloned into the slot's PID namespace and into
 * this process's memory (CLONE_VM | CLONE_VFORK, as posix_spawn does: this
 * process waits until it has exec'd; nothing of the image is copied for a
 * process that execs), and joins the slot's other namespaces, its network
 * namespace and its cgroups itself (exec_task_slot). Either way the task
 * checks its pid first: the one that follows the last job's. If a job of
 * the slot created processes there, the pids moved on, and this one must
 * not see how far: it ends at once, the namespaces are dropped, and its
 * task gets namespaces of its own per job from then on
 * (spawner_sp.exec_forks).
 *
 * An exec+net task, or one of those, gets a new PID namespace of its own
 * with the C tasks' tiny init (sbx_pidns_init: it shares this process's
 * memory and sleeps), and is cloned into it as pid 2 the same way, with new
 * mount and UTS namespaces; it joins its slot's IPC namespace (job_ipcns:
 * one per slot, made once) and its network namespace, and makes its host
 * name, /proc and /tmp itself (exec_task_ns). spawner.c reaps the task
 * with its rusage, then kills the init, and reports EXIT when the init is
 * reaped too.
 *
 * Runs in the spawner, single-threaded, on every exec job's path; the
 * clones run on stacks in the frames of spawner_spawn_exec_in_*(), kept out
 * of handle_start's (noinline). What these share with the other tasks'
 * fork (the child's main, the way into and out of the slot's PID
 * namespace, the namespace parameters) is spawner.c's, declared in
 * spawner_internal.h.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "registry.h"
#include "spawner_internal.h"

/*
 * Whether an exec job runs in its slot's namespaces: not with network (its
 * resolv.conf is mounted per job), and not a task that created processes
 * there before (it would leave them dirty every time: a shell script's
 * namespaces of its own cost less than the slot's made anew).
 */
bool spawner_exec_in_slotns(const struct spawn_req *req)
{
	return registry_at(spawner_sp.reg, req->task_index) && !spawner_job_has_network(req) &&
	       !spawner_sp.exec_forks[req->task_index];
}

/*
 * The IPC namespace of an exec task in a namespace of its own (exec+net,
 * or a task that creates processes; one in its slot's namespaces has the
 * slot's): its slot's, made the first time the slot runs one, and kept
 * (spawner_spawn_exec_in_pidns). Not one per job: the exec profiles let a
 * task make no IPC object (shmget, semget, msgget and mq_open answer
 * ENOSYS; test_exec's ExecSlotTest tries) and change none of the
 * namespace's limits (no capability), so a job leaves nothing there for
 * the next one; and a new one's end waited for an expedited RCU grace
 * period (the unmount of its mqueue file system, in a kworker): IPIs to
 * every CPU, about 2.5 a job. 0, or an errno.
 */
static int job_ipcns(const struct spawn_req *req)
{
	struct slot *s = &spawner_sp.slots[req->slot];
	struct sbx_error err = {{0}, 0};

	if (!spawner_sp.opts->namespaces || !(req->flags & SPAWN_F_EXEC) || s->ipcns >= 0)
		return 0;
	if (sbx_ipcns_new(&s->ipcns, &err) < 0)
		return err.err ? err.err : EIO;
	return 0;
}

/*
 * An exec task with namespaces, cloned by spawner_spawn_exec_in_pidns()
 * into this process's memory: its own mount and UTS namespaces are made by
 * the clone; the slot's IPC and network namespaces, the host name, /proc,
 * /tmp and the cgroups, then the sandbox and execve. Its parent, this
 * process, is outside its PID namespace.
 */
static int exec_task_ns(void *arg)
{
	const struct exec_args *a = arg;
	struct sbx_error err = {{0}, 0};
	struct sbx_init_params ip = spawner_job_init_params(a->req, a->netns);

	if (sbx_exec_ns_enter(&ip, spawner_sp.slots[a->req->slot].ipcns, &err) < 0)
		sbx_fail(a->fds[0], &err);
	spawner_child_main(a->req, a->input, a->fds, a->nfds, 0);
	_exit(127); /* spawner_child_main does not return for an exec task */
}

/*
 * An exec task with namespaces: a new PID namespace with the tiny init of
 * the C tasks (sbx_pidns_init: it shares this process's memory and sleeps),
 * and the task cloned into it as pid 2, with new mount and UTS
 * namespaces, into this process's memory too (CLONE_VM | CLONE_VFORK, on a
 * stack in this frame, as posix_spawn does): this process waits until the
 * task has exec'd or died, so the task's libc calls (errno) race nothing
 * here, and no copy of this image is made for it, none torn down at its
 * execve, none for its init. This process is the task's parent: it reaps
 * it with its rusage, then kills the init (spawner.c's pidns_reaped()).
 */
pid_t __attribute__((noinline)) spawner_spawn_exec_in_pidns(struct exec_args *a, pid_t *init)
{
	char stack[SBX_EXEC_STACK] __attribute__((aligned(16)));
	char *init_top = spawner_sp.init_stacks + (size_t)(2 * a->req->slot + 2) * SBX_INIT_STACK;
	const int flags = CLONE_VM | CLONE_VFORK | CLONE_NEWNS | CLONE_NEWUTS;
	struct sbx_error err = {{0}, 0};
	pid_t pid;
	int e;

	/* Only this shape joins the slot's exec IPC namespace: made here. */
	if ((e = job_ipcns(a->req)) != 0) {
		errno = e;
		return -1;
	}
	if (sbx_pidns_init(init_top, spawner_sp.self_pidfd, spawner_sp.own_pidns, init, &err) < 0) {
		errno = err.err;
		return -1;
	}
	pid = clone(exec_task_ns, stack + sizeof(stack), flags | SIGCHLD, a);
	e = errno;
	/* Under AddressSanitizer the task's frames poisoned their redzones in
	 * this process's shadow memory (CLONE_VM) and never returned to clear
	 * them: clear them here, or the next task trips over them. */
	spawner_stack_unpoison(stack, sizeof(stack));
	errno = e;
	pid = spawner_pidns_leave(pid);
	if (pid < 0) {
		e = errno;
		kill(*init, SIGKILL);
		waitpid(*init, NULL, 0);
		*init = 0;
		errno = e;
	}
	return pid;
}

/*
 * An exec task in its slot's namespaces, cloned by
 * spawner_spawn_exec_in_slotns() into this process's memory. First its
 * pid there: the one that follows the last job's, unless a job of the
 * slot created processes - whose trace (the pids this task and its
 * children get) it must not see: it ends at once, and the spawner drops
 * the namespaces. Then the slot's namespaces, network, /tmp's size and
 * cgroups, the sandbox and execve.
 */
static int exec_task_slot(void *arg)
{
	struct exec_args *a = arg;
	struct sbx_error err = {{0}, 0};
	struct sbx_init_params ip = spawner_job_init_params(a->req, a->netns);

	a->seen = getpid();
	if (a->seen != a->expect)
		_exit(127);
	if (sbx_slotns_enter(&spawner_sp.slots[a->req->slot].ns, &ip, &err) < 0)
		sbx_fail(a->fds[0], &err);
	spawner_child_main(a->req, a->input, a->fds, a->nfds, 0);
	_exit(127); /* spawner_child_main does not return for an exec task */
}

/* The task of spawner_spawn_exec_in_slotns() through the slot's launcher
 * (spawner_launch.c): as exec_task_slot would, it sets a->seen. */
static pid_t launch_in_slotns(struct exec_args *a)
{
	struct sbx_init_params ip = spawner_job_init_params(a->req, a->netns);
	pid_t seen = 0, pid = spawner_launch(a->req, a->fds, a->nfds, &ip, &seen);

	a->seen = seen;
	return pid;
}

/*
 * An exec task without network in its slot's namespaces (made first when
 * the slot has none, or none of the view as it is now), started by the
 * slot's launcher (spawner_launch.c), or, where it cannot (a /tmp of
 * another size), cloned into this process's memory (CLONE_VM |
 * CLONE_VFORK) as spawner_spawn_exec_in_pidns() does. The task's pid
 * (both check it against next_pid first), or -1 with errno; or -2 when the
 * last exec task of the slot created processes there (exec_task_slot saw
 * its pid further on): the task is reaped, the namespaces dropped, and
 * that task gets namespaces of its own per job from now on.
 */
pid_t __attribute__((noinline)) spawner_spawn_exec_in_slotns(struct exec_args *a)
{
	char stack[SBX_EXEC_STACK] __attribute__((aligned(16)));
	struct slot *s = &spawner_sp.slots[a->req->slot];
	pid_t pid;
	int e;

	/* The slot's launcher (in this process's PID namespace) first; the
	 * namespaces are made first when need be. */
	if (!spawner_slotns_current(s) &&
	    (spawner_slotns_enter_pidns(a->req) < 0 || spawner_pidns_leave(0) < 0)) {
		e = errno;
		sbx_slotns_drop(&s->ns);
		errno = e;
		return -1;
	}
	a->expect = s->ns.next_pid;
	a->seen = 0;
	if ((pid = launch_in_slotns(a)) != -3)
		goto started;
	if (spawner_slotns_enter_pidns(a->req) < 0)
		return -1;
	pid = clone(exec_task_slot, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, a);
	e = errno;
	spawner_stack_unpoison(stack, sizeof(stack)); /* see spawner_spawn_exec_in_pidns() */
	errno = e;
	pid = spawner_pidns_leave(pid);
started:
	if (pid < 0) {
		e = errno;
		sbx_slotns_drop(&s->ns);
		errno = e;
		return -1;
	}
	if (a->seen != a->expect) {
		(void)waitpid(pid, NULL, 0);
		if (s->ns_exec_task >= 0)
			spawner_sp.exec_forks[s->ns_exec_task] = true;
		sbx_slotns_drop(&s->ns);
		return -2;
	}
	s->ns_exec_task = a->req->task_index;
	return pid;
}
