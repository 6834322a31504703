/*
 * spawner_kill.c - the end of the spawner's jobs: KILL, the deadlines, the
 * EXIT event, and the end of all when the daemon goes.
 *
 * Theory of operation: KILL kills the slot's child, if it is still the
 * request's run's (only an unreaped child: its pid cannot be recycled yet).
 * With namespaces that is the task (the spawner reaps it: its CPU time is
 * accounted) and, for an exec task, its init (its own, or its slot's),
 * whose death takes the rest of its PID namespace along; without, the
 * child, its process group and its
 * cgroup. Deadlines: each slot has a timer (a timerfd the daemon hands over
 * with TIMER and arms when a job starts, see spawn_proto.h); the poll loop
 * waits on it too, and when it expires the slot's child is killed as for
 * KILL, on this process's clock - however late the daemon's loop is. When
 * spawner.c has reaped a job's last process, spawner_send_exit() reports
 * EXIT with its status, rusage, memory peak, an OOM kill and a kill at the
 * deadline, and drops the slot's namespaces when the job may have left
 * them dirty (an exec task: killing their init, and reporting EXIT once
 * it is reaped); once every process of an exec job is gone, before EXIT,
 * spawner_left.c looks for what it left without one (sockets in the
 * slot's network namespace, memory charged for them). When the daemon's
 * end of the socket closes, every child is killed and reaped, and the
 * spawner exits.
 *
 * Runs in the spawner, single-threaded; spawner_send_exit() is on every
 * job's path (one call, as it was before the split).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawner_internal.h"

/*
 * With namespaces: the task (the spawner reaps it: its CPU time is
 * accounted) and its init, whose death takes the rest of the namespace
 * along. Without: the child, its process group and its cgroup.
 */
static void kill_slot(unsigned index)
{
	struct cg_slot *cg = cg_of(index);
	struct slot *s = &spawner_sp.slots[index];
	pid_t pid = s->pid;

	/* A C task in its slot's namespaces is the job's only process (it
	 * cannot create one): the spawner reaps it, so it is accounted. An
	 * exec task there may have made more: the init's death takes them
	 * along (and the namespaces, which spawner_send_exit() then drops). */
	if (s->in_slotns) {
		kill(pid, SIGKILL);
		if (s->exec && s->ns.init > 0)
			kill(s->ns.init, SIGKILL);
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
	if (cg && !spawner_sp.opts->namespaces)
		cg_slot_kill(cg);
}

void spawner_kill_all_and_exit(void)
{
	for (unsigned i = 0; i < spawner_sp.nslots; i++) {
		if (spawner_sp.slots[i].pid > 0)
			kill_slot(i);
		if (spawner_sp.slots[i].ns.init > 0)
			kill(spawner_sp.slots[i].ns.init, SIGKILL);
		if (spawner_sp.slots[i].ns.launcher > 0)
			kill(spawner_sp.slots[i].ns.launcher, SIGKILL);
		if (spawner_sp.slots[i].ns.forker > 0)
			kill(spawner_sp.slots[i].ns.forker, SIGKILL);
	}
	/* The network helpers exit when their exit pipes close. */
	sbx_net_free(spawner_sp.net);
	spawner_sp.net = NULL;
	/* Reap them (and orphans given to us): when the daemon sees us gone,
	 * the slot cgroups are empty and can be removed. */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
}

void spawner_handle_kill(const struct spawn_req *req)
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
void spawner_handle_timer(const struct spawn_req *req, const int *fds, int nfds)
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
void spawner_check_deadline(unsigned index)
{
	struct slot *s = &spawner_sp.slots[index];
	uint64_t expiries;

	if (read(s->timer, &expiries, sizeof(expiries)) != (ssize_t)sizeof(expiries))
		return;
	if (s->pid > 0 && !s->killed) {
		s->killed = s->deadline = true;
		kill_slot(index);
	}
}

/*
 * A task in the slot's namespaces ended (status): whether they may be
 * entered by the next job. Not after a kill or an OOM kill (the task may
 * have been stopped in its setup), a setup failure (126: sbx_fail), or
 * when /tmp is not as built. A C task cannot write to /tmp (defence in
 * depth), and leaves nothing else: it was the namespace's only process but
 * the init, and it creates neither processes, files, mounts nor IPC
 * objects (the strict profile). An exec task can create processes and
 * files, and none may be left: no process but the init. (One that created
 * processes that are gone left their pids behind: the next exec task
 * finds that out from its own, see spawner_exec.c's exec_task_slot.)
 */
static bool slotns_reusable(const struct slot *s, int status, bool oom)
{
	return !s->killed && !oom && !(WIFEXITED(status) && WEXITSTATUS(status) == 126) &&
	       s->ns.view_gen == sbx_view_generation(spawner_sp.view) && sbx_slotns_clean(&s->ns) &&
	       (!s->exec || sbx_slotns_alone(&s->ns));
}

/*
 * An exec task left its slot's namespaces dirty: they go, and with the
 * init's death whatever the job left in them. Its exit waits until all of
 * that is gone, so the job's EXIT waits for the init (spawner.c,
 * pidns_reaped), as an exec task's in a namespace of its own does. A task
 * that left processes gets namespaces of its own per job from now on.
 * false when there is no init to wait for.
 */
static bool slotns_leave_dirty(struct slot *s, int status, const struct rusage *ru, bool oom)
{
	if (!sbx_slotns_alone(&s->ns))
		spawner_sp.exec_forks[s->task_index] = true;
	s->in_slotns = false;
	s->reaped = true;
	s->status = status;
	s->ru = *ru;
	s->oom = oom;
	s->ns_exec_task = -1;
	s->init = sbx_slotns_detach(&s->ns);
	return s->init > 0;
}

/* EXIT: the slot's job child is gone, with status and ru. */
void spawner_send_exit(unsigned index, int status, const struct rusage *ru)
{
	struct slot *s = &spawner_sp.slots[index];
	struct cg_slot *cg = cg_of(index);
	bool oom = (cg && cg_slot_oom(cg)) || s->oom;
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

	if (s->in_slotns && !slotns_reusable(s, status, oom)) {
		if (s->exec && slotns_leave_dirty(s, status, ru, oom))
			return; /* here again once the init is reaped */
		sbx_slotns_drop(&s->ns);
	}
	/* Every process of the job is gone now: what is left has no holder
	 * (spawner_left.c). A new network namespace for the slot takes its
	 * launcher, which is in the old one, along with its namespaces. */
	if (s->exec && spawner_left_behind(index))
		sbx_slotns_drop(&s->ns);
	s->pid = 0;
	s->in_slotns = false;
	s->oom = false;
	send_evt(&evt);
}
