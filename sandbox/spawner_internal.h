/*
 * spawner_internal.h - what the spawner's files share (spawner.c: the poll
 * loop, START and the child; spawner_exec.c: an exec task's start with
 * namespaces; spawner_launch.c: a slot's exec launcher;
 * spawner_forker.c: a slot's forker of warm C children; spawner_prep.c:
 * startup and the view's upkeep; spawner_kill.c: KILL, deadlines and
 * EXIT; spawner_left.c: what an exec job left without a process). Private
 * to them.
 *
 * The state is one object, spawner_sp, with hidden visibility: accessed
 * as directly as a static (no GOT entry in -fPIC code). The helpers below
 * are on every job's path, so they are static inline here, not calls.
 */
#ifndef VALET_SPAWNER_INTERNAL_H
#define VALET_SPAWNER_INTERNAL_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "spawner.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* The poll loop's fds before the slots' timers. */
#define SPAWNER_NFIXED 4
/* The largest request: a START with inline input, or a POLICY. */
#define SPAWNER_REQ_MAX (sizeof(struct spawn_req) + SPAWN_INLINE_MAX)

#define SPAWNER_HIDDEN __attribute__((visibility("hidden")))

/* What a slot's forker was made with: the pipes behind its fds 0-3 (frame,
 * output, stdin) and its network namespace (their inode numbers), and the
 * job limits. */
struct forker_key {
	ino_t ino[3];
	ino_t netns;
	struct sbx_limits limits;
};

struct slot {
	pid_t pid;       /* the job child; 0 = free */
	bool in_slotns;  /* ...in the slot's namespaces (ns): a C task, or an
			  * exec task without network */
	pid_t init;      /* an exec task's PID namespace init (sbx_pidns_init); 0 = none */
	bool reaped;     /* ...and the task was reaped (status, ru), its init not yet */
	uint64_t run_id;
	bool peak_reset; /* the cgroup's memory peak was reset for this job */
	bool killed;     /* by a KILL or at the deadline, whichever came first */
	bool deadline;   /* ...and that was the deadline */
	bool exec;       /* an exec task (a C task cannot create processes) */
	bool net;        /* ...with network (exec+net) */
	int netns;       /* the slot's empty network namespace; -1 = not made yet */
	struct sbx_netns_socks netns_socks; /* ...its socket tables (spawner_left.c) */
	int ipcns;       /* its exec tasks' IPC namespace; -1 = not made yet */
	int timer;       /* the slot's deadline timer (TIMER); -1 = none yet */
	int status;
	struct rusage ru; /* an exec task's, when reaped before its init */
	bool oom;         /* ...and whether the memory cgroup killed in its job */
	int task_index;   /* the job's task */
	int ns_exec_task; /* the last exec task in ns (its next_pid tells whether it
			   * created processes); -1 = none */
	struct sbx_slotns ns; /* the slot's namespaces (sbx_slotns_*); ns.init 0 = none */
	struct forker_key forker_key; /* what ns.forker was made with */
	uint64_t forker_clones;       /* ...and the children it cloned */
	int64_t forker_pause_until; /* now_ns(): no forker before (one failed) */
};

struct spawner_state {
	const struct spawner_setup *opts;
	const struct registry *reg;
	int sock;
	int devnull;
	pid_t self;
	uint64_t changed_signals; /* bit sig - 1: disposition not SIG_DFL */
	struct slot *slots;
	unsigned nslots;
	struct pollfd *pfd; /* [SPAWNER_NFIXED + nslots] */
	char *reqbuf;       /* [SPAWNER_REQ_MAX]: one request (spawner_prep.c: setup_hot_state) */
	struct sbx_view *view;    /* the jobs' view (namespaces); NULL = none */
	struct sbx_net *net;      /* exec+net jobs' network; NULL = none */
	int host_netns;           /* exec+net jobs with net_host; -1 = none */
	int own_pidns;            /* this PID namespace (the jobs' inits) */
	int self_pidfd;           /* a pidfd of this process, for the inits; -1 = none */
	/* 2 x SBX_INIT_STACK bytes per slot: its namespaces' init, an exec job's */
	char *init_stacks;
	/* Per task: an exec task that created processes in its slot's
	 * namespaces gets namespaces of its own per job from then on. */
	bool *exec_forks;
};

/* The spawner's state (defined in spawner.c). */
extern struct spawner_state spawner_sp SPAWNER_HIDDEN;
/* The explicit environment of every job child (spawner.c). */
extern char *spawner_child_env[] SPAWNER_HIDDEN;

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void send_evt(const struct spawn_evt *evt)
{
	/* Blocking on purpose: the daemon never waits on us, so this ends. */
	while (send(spawner_sp.sock, evt, sizeof(*evt), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static inline struct cg_slot *cg_of(unsigned index)
{
	return spawner_sp.opts->cgslots ? &spawner_sp.opts->cgslots[index] : NULL;
}

/* The uid and gid a slot's jobs run as (and its exec launcher). */
static inline uid_t slot_uid(unsigned index)
{
	return spawner_sp.opts->uid_base ? spawner_sp.opts->uid_base + index : spawner_sp.opts->uid;
}

static inline gid_t slot_gid(unsigned index)
{
	return spawner_sp.opts->uid_base ? spawner_sp.opts->uid_base + index : spawner_sp.opts->gid;
}

static inline struct slot *slot_of(uint32_t index)
{
	return index < spawner_sp.nslots ? &spawner_sp.slots[index] : NULL;
}

/* Whether the slot's namespaces exist and are of the view as it is now. */
static inline bool spawner_slotns_current(const struct slot *s)
{
	return s->ns.init != 0 && s->ns.view_gen == sbx_view_generation(spawner_sp.view);
}

/*
 * A job's process limit (0: none) as its slot's pids cgroup and its task's
 * RLIMIT_NPROC count it: one more while the slot has an exec launcher
 * (spawner_launch.c), and one more while it has a forker
 * (spawner_forker.c): each is in the slot's cgroups and runs as its uid,
 * so counts in both, and is no process of the job's - whichever way the
 * job's task is started. Read when the limits are set; where a path starts
 * a launcher or drops one, the slot's limit is set again (spawner_launch,
 * handle_start's -2; a C task, which cannot create processes, is left at
 * the limit of its start when its path drops the namespaces).
 */
static inline uint64_t spawner_slot_processes(const struct spawn_req *req)
{
	const struct sbx_slotns *ns = &spawner_sp.slots[req->slot].ns;
	uint64_t n = req->limits.max_processes;

	return n ? n + (ns->launcher > 0) + (ns->forker > 0) : n;
}

/*
 * The fds that came with a request. recvmsg() gives them the lowest free
 * numbers, so they are usually consecutive: then one close_range() closes
 * them all (three close() calls a job otherwise).
 */
static inline void close_fds(const int *fds, int nfds)
{
	bool run = nfds > 1;

	for (int i = 1; run && i < nfds; i++)
		run = fds[i] == fds[0] + i;
	if (run && syscall(SYS_close_range, (unsigned)fds[0], (unsigned)fds[nfds - 1], 0U) == 0)
		return;
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* A stack another process ran on (CLONE_VM), made clean for AddressSanitizer. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define spawner_stack_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define spawner_stack_unpoison(p, n) ((void)(p), (void)(n))
#endif

/* spawner.c: what an exec task's start with namespaces (spawner_exec.c)
 * shares with the other tasks' fork. The job child's main (never returns);
 * this process's next child into the slot's PID namespace (made first when
 * need be) and back to its own (the child's pid, or -1 with errno); an
 * exec+net job's test; what a job's task needs to enter its namespaces. */
void spawner_child_main(const struct spawn_req *req, const char *input, const int *fds, int nfds,
			pid_t parent) SPAWNER_HIDDEN;
int spawner_slotns_enter_pidns(const struct spawn_req *req) SPAWNER_HIDDEN;
pid_t spawner_pidns_leave(pid_t pid) SPAWNER_HIDDEN;
bool spawner_job_has_network(const struct spawn_req *req) SPAWNER_HIDDEN;
struct sbx_init_params spawner_job_init_params(const struct spawn_req *req,
					       int netns) SPAWNER_HIDDEN;

/* What an exec job's task needs from handle_start's frame (exec_task_ns,
 * exec_task_slot). */
struct exec_args {
	const struct spawn_req *req;
	const char *input;
	const int *fds;
	int nfds;
	int netns;
	pid_t expect;	     /* exec_task_slot: its pid in the slot's namespace, */
	volatile pid_t seen; /* ...and the one it got (CLONE_VM: written here) */
};

/* spawner_exec.c: an exec task with namespaces. Whether it runs in its
 * slot's; started there (its pid; -1 with errno; -2: it must have
 * namespaces of its own), or in a PID namespace of its own, *init that
 * namespace's init (its pid, or -1 with errno). */
bool spawner_exec_in_slotns(const struct spawn_req *req) SPAWNER_HIDDEN;
pid_t spawner_spawn_exec_in_slotns(struct exec_args *a) SPAWNER_HIDDEN;
pid_t spawner_spawn_exec_in_pidns(struct exec_args *a, pid_t *init) SPAWNER_HIDDEN;

/* spawner_launch.c: an exec task in its slot's namespaces, started by the
 * slot's launcher. Its pid with *seen (its pid there); -1 with errno: no
 * task; -3: no launcher for it (the spawner clones it). */
pid_t spawner_launch(const struct spawn_req *req, const int *fds, int nfds,
		     const struct sbx_init_params *ip, pid_t *seen) SPAWNER_HIDDEN;
/* A slot's launcher was reaped (or could not be written to): forgotten. */
void spawner_launcher_gone(struct sbx_slotns *ns) SPAWNER_HIDDEN;

/* spawner_left.c: after an exec job whose processes are all gone, what it
 * left in its slot that no process holds: whether the slot's namespaces
 * must go (its empty network namespace was given up). */
bool spawner_left_behind(unsigned index) SPAWNER_HIDDEN;

/* spawner_forker.c: a warm C child cloned by its slot's forker (its pid;
 * -3: the spawner forks it); a slot's forker was reaped: forgotten. */
pid_t spawner_forker_spawn(const struct spawn_req *req, const int *fds, int nfds,
			   int netns) SPAWNER_HIDDEN;
void spawner_forker_gone(struct sbx_slotns *ns) SPAWNER_HIDDEN;
/* spawner.c: a warm child's life once in the sandbox: its input, then its
 * task (never returns). */
void spawner_warm_main(void) SPAWNER_HIDDEN __attribute__((noreturn));

/* spawner_prep.c: the process, the setup (READY), what every child would
 * otherwise do again; POLICY and the view's upkeep. */
int spawner_become(int sock) SPAWNER_HIDDEN;
void spawner_setup(int setup_fd) SPAWNER_HIDDEN;
void spawner_prepare_children(void) SPAWNER_HIDDEN;
void spawner_handle_policy(const struct spawn_req *req, const char *payload) SPAWNER_HIDDEN;
void spawner_check_view(bool host_changed) SPAWNER_HIDDEN;

/* spawner_kill.c: KILL, TIMER, a deadline reached, EXIT; the end of all. */
void spawner_handle_kill(const struct spawn_req *req) SPAWNER_HIDDEN;
void spawner_handle_timer(const struct spawn_req *req, const int *fds, int nfds) SPAWNER_HIDDEN;
void spawner_check_deadline(unsigned index) SPAWNER_HIDDEN;
void spawner_send_exit(unsigned index, int status, const struct rusage *ru) SPAWNER_HIDDEN;
void spawner_kill_all_and_exit(void) SPAWNER_HIDDEN __attribute__((noreturn));

#endif
