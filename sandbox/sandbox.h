/*
 * sandbox.h - isolation, in the spawner and in a freshly forked job child
 * before any task code. Links nothing but libc: no libev, no libpq, no
 * libseccomp (the daemon compiles the filters), no stdio and no malloc in
 * the child path.
 *
 * The child's fds when the task starts:
 *   0  stdin   (input memfd, or /dev/null)
 *   1  stdout  (capture pipe)
 *   2  stderr  (capture pipe; may be the same pipe as stdout)
 *   3  frame channel (results and setup errors; see frame.h)
 * Everything else is closed.
 */
#ifndef VALET_SANDBOX_H
#define VALET_SANDBOX_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>

#include "spawn_proto.h"

#define SBX_FD_FRAME 3
/* A slot's forker's socket, which its children close (spawner_forker.c). */
#define SBX_FD_KEEP 4

/* Everything the child needs, prepared in the parent (no lookups in the child). */
struct sbx_params {
	int stdin_fd;        /* -1 = /dev/null */
	int stdout_fd;       /* required */
	int stderr_fd;       /* required (may equal stdout_fd) */
	int frame_fd;        /* required */
	int keep_fd;         /* moved to SBX_FD_KEEP and kept open; 0 = none */
	bool frame_cloexec;  /* exec tasks: the frame channel closes at execve */
	int devnull_fd;      /* an open /dev/null, used when stdin_fd < 0 */
	pid_t expected_parent; /* getppid() after PR_SET_PDEATHSIG: the parent's
				* pid, 0 when the parent is outside the child's
				* PID namespace; -1 = no check */
	bool drop_user;      /* setgroups/setgid/setuid to uid/gid below */
	uid_t uid;
	gid_t gid;
	struct sbx_limits limits;
	const struct sbx_filter *filter; /* loaded last; NULL = none (tests only) */
	bool trap_sigsys;    /* strict profile: report the blocked syscall by frame */
	const char *workdir; /* chdir target; NULL = stay where the parent is */
	/* Signals whose disposition the parent changed: only these are reset
	 * (one syscall each). NULL = reset every signal. */
	const uint64_t *changed_signals; /* bit sig - 1 */
};


/*
 * In the child: reset signals, setsid, parent-death signal, fds, chdir,
 * rlimits (core=0 always), drop user, no_new_privs, SIGSYS reporter,
 * seccomp last. Returns 0, or -errno with *err filled; on failure the caller
 * writes the error frame and _exit()s. Async-signal-safe only.
 */
int sbx_enter(const struct sbx_params *p, struct sbx_error *err);

/*
 * In the spawner, once its code is loaded: make fork() copy the page-table
 * entries of every read-only file mapping (code, constants) into the
 * children, instead of leaving each child to fault them in again. 0, or
 * -errno (nothing is lost then but speed).
 */
int sbx_share_code(void);

/* Whether sig's disposition differs from SIG_DFL (1), not (0), or -1 (a
 * raw rt_sigaction query: also glibc's own signals 32 and 33). */
int sbx_signal_disposition(int sig);

/* Fill *err with step and errno e (EIO when e is 0); returns -err->err (for
 * `return sbx_error_set(...)`): the sandbox's functions return 0 or -errno,
 * with the step in *err. */
int sbx_error_set(struct sbx_error *err, const char *step, int e);
/* What a failed call that filled *err returns in turn: -errno (-EIO should
 * it have left err->err 0). */
static inline int sbx_failed(const struct sbx_error *err)
{
	return err->err > 0 ? -err->err : -EIO;
}

/*
 * In a child of a slot's exec launcher (spawner_launch.c), which set up
 * everything else already and whose filter it runs under: setsid,
 * parent-death signal, fds (the ones received beyond 0..3 are close-on-exec:
 * nothing to close), rlimits. 0, or -errno with *err.
 */
int sbx_enter_launched(const struct sbx_params *p, struct sbx_error *err);

/* In the child, after sbx_enter failed: report err on frame_fd and _exit(126). */
void sbx_fail(int frame_fd, const struct sbx_error *err) __attribute__((noreturn));

/*
 * The view every job starts from (sbx_view.c), prepared once in the
 * spawner: its own private mount namespace, read-only, nosuid and nodev, a
 * minimal /dev, an empty /run, no kernel file systems but /proc, hidden
 * directories, and (empty_netns) an empty network namespace with loopback
 * up. Privileged (CAP_SYS_ADMIN, CAP_NET_ADMIN). 0, or -errno with *err filled.
 */
struct sbx_view_opts {
	const char *const *hide_dirs; /* NULL-terminated; missing ones are skipped */
	bool empty_netns;
	bool job_network; /* exec+net jobs get a network: keep /dev/net/tun for
			   * the helper and their resolv.conf in the workshop */
};

/* The spawner's scratch space, covered by each job's own /tmp. */
#define SBX_WORKSHOP "/tmp"
/* Where the view keeps kept item i (under the workshop). */
#define SBX_KEEP_DIR SBX_WORKSHOP "/.keep/"
/* exec+net jobs: the resolver they use (slirp4netns's DNS forwarder), their
 * resolv.conf naming it, and the helper's /dev/net/tun, in the workshop. */
#define SBX_NET_DNS "10.0.2.3"
#define SBX_NET_RESOLV SBX_WORKSHOP "/.resolv.conf"
#define SBX_NET_TUN SBX_WORKSHOP "/.tun"

struct sbx_view;
int sbx_view_prepare(const struct sbx_view_opts *o, const struct sbx_keep *keep, int nkeep,
		     struct sbx_view **out, struct sbx_error *err);
void sbx_view_free(struct sbx_view *v);
/* The host's network namespace (an fd), or -1 when the view kept it. */
int sbx_view_host_netns(const struct sbx_view *v);
/* Lay the empty directory over dir, now and (sbx_view_recheck) whenever it
 * is found uncovered again (dir renamed away and made anew). Missing dirs
 * are remembered and covered once they exist. 0, or -errno with *err. */
int sbx_view_hide(struct sbx_view *v, const char *dir, struct sbx_error *err);
/* Cover again what is no longer covered: how many, or -errno with *err. */
int sbx_view_recheck(struct sbx_view *v, struct sbx_error *err);
/* The host's mountinfo: poll it for POLLPRI, then sbx_view_follow_host()
 * takes out of the view what the host has unmounted (how many, or -errno). */
int sbx_view_mountinfo_fd(const struct sbx_view *v);
int sbx_view_follow_host(struct sbx_view *v);
/* Bumped whenever the view changes (a cover laid, a host unmount followed):
 * namespaces copied from it before are stale. */
uint64_t sbx_view_generation(const struct sbx_view *v);

/*
 * A new, empty network namespace with loopback up: *fd gets an fd of it;
 * the caller stays in (goes back to) its own. Made once per worker slot, so
 * that jobs running at the same time share no loopback nor abstract
 * AF_UNIX sockets (a new one per job costs about 0.5 ms). Privileged.
 */
int sbx_netns_new(int *fd, struct sbx_error *err);

/*
 * The sockets of a network namespace (sbx_leftover.c): fds of its /proc/net
 * tables - unix, and with inet also tcp and tcp6 - opened from
 * inside it (netns: an fd of it; -1: the caller's own), which keep it.
 * sbx_netns_socks_none(): whether they list no socket (a table that cannot
 * be read lists one). sbx_unix_gc(): have the kernel's AF_UNIX garbage
 * collector run, which frees the sockets (and what they carry) that only
 * fds in flight hold; it does not wait for it. Privileged (setns).
 */
#define SBX_SOCKS_TABLES 3
struct sbx_netns_socks {
	int fd[SBX_SOCKS_TABLES]; /* -1 = not opened */
};
void sbx_netns_socks_init(struct sbx_netns_socks *w);
int sbx_netns_socks_open(int netns, bool inet, struct sbx_netns_socks *w);
void sbx_netns_socks_close(struct sbx_netns_socks *w);
bool sbx_netns_socks_none(const struct sbx_netns_socks *w);
void sbx_unix_gc(void);

/*
 * A new IPC namespace, for a worker slot's exec tasks (sbx_exec_ns_enter):
 * the caller stays in its own; *fd gets an fd of the new one. Privileged.
 */
int sbx_ipcns_new(int *fd, struct sbx_error *err);

/*
 * The network of exec+net jobs (sbx_net.c): per worker slot, a network
 * namespace served by a slirp4netns process, whose routing table sends
 * denied destinations nowhere. Runs in the spawner. Rules: the configured
 * networks, allowed or denied (most specific wins); the node's own
 * addresses and sbx_net_deny()'s are always denied.
 */
struct sbx_net_opts {
	const char *helper; /* the slirp4netns program (absolute) */
	gid_t gid;	    /* the helper's group (its uid is root's; it drops every
			     * capability): an id of its own, or 0 */
	const struct sbx_net_rule *rules;
	int nrules;
};
struct sbx_net;
/* Every slot's namespace and helper, now (the helper is started as root,
 * with the caller's inheritable capabilities; it drops them). sysctl: an
 * O_PATH fd of a writable /proc/sys (stolen; the view's is read-only), for
 * the namespaces' settings. 0, or -errno with *err (the helper's own
 * complaint went to stderr). */
int sbx_net_new(const struct sbx_net_opts *o, unsigned nslots, int host_netns, int sysctl,
		struct sbx_net **out, struct sbx_error *err);
void sbx_net_free(struct sbx_net *n);
/* The slot's namespace, its helper restarted first if it had died. An fd
 * (borrowed), or -errno with *err. */
int sbx_net_netns(struct sbx_net *n, unsigned slot, struct sbx_error *err);
/* These addresses (network order) are denied too, instead of the last
 * call's: the database's. 0 or -errno. */
int sbx_net_deny(struct sbx_net *n, const uint32_t *addrs, int naddrs);
/* A netlink socket with the host's address events: when readable, call
 * sbx_net_addresses_changed(). 0 or -errno. */
int sbx_net_monitor_fd(const struct sbx_net *n);
int sbx_net_addresses_changed(struct sbx_net *n);
/* A child was reaped: whether it was a helper (its slot restarts it). */
bool sbx_net_reaped(struct sbx_net *n, pid_t pid);
/* Whether the slot's namespace lists no socket (true without one), and its
 * namespace and helper given up, so that the slot's next job gets new ones
 * (a job left sockets there). */
bool sbx_net_socks_none(const struct sbx_net *n, unsigned slot);
void sbx_net_renew(struct sbx_net *n, unsigned slot);

/*
 * A job's PID namespace and its init (sbx_init.c). sbx_pidns_init(), in the
 * spawner, makes a new PID namespace whose pid 1 is a tiny init that shares
 * the spawner's memory (a CLONE_VM clone on stack_top, the top of a stack
 * of SBX_INIT_STACK bytes that stays the init's until it is reaped) and
 * sleeps until it is killed; the spawner's next child is pid 2 of that
 * namespace, until the spawner goes back to own_pidns (setns). The init
 * dies with the spawner (spawner_pidfd: a pidfd of the spawner, -1 =
 * none). 0 with *init, or -errno with *err (and the spawner back in
 * own_pidns).
 *
 * C tasks, and exec tasks without network: their worker slot's
 * namespaces, sbx_slotns_* below, whose PID namespace's init is made by
 * sbx_pidns_init() too.
 *
 * Other exec tasks: a PID namespace of the job's own (sbx_pidns_init), the task
 * cloned into it as pid 2 with CLONE_NEWNS | CLONE_NEWUTS (CLONE_VM |
 * CLONE_VFORK, on a stack of SBX_EXEC_STACK bytes), which calls
 * sbx_exec_ns_enter(): the slot's IPC namespace for exec tasks (ipcns_fd,
 * from sbx_ipcns_new) and network namespace, the host name, a fresh /proc
 * and a private /tmp, the cgroups. 0, or -errno with *err.
 */
#define SBX_INIT_STACK 16384
struct sbx_init_params {
	const int *join_fds;   /* tasks or cgroup.procs files the task writes "0" to */
	int njoin;
	int netns_fd;          /* setns() into it first: the slot's empty network
				* namespace, or its network helper's; -1 = stay */
	bool net_resolv;       /* bind SBX_NET_RESOLV over /etc/resolv.conf */
	uint64_t tmp_bytes;    /* size of the private /tmp */
	const struct sbx_keep *keep; /* bound read-only into the private /tmp */
	int nkeep;
};
/* The stack of an exec job's task until its execve (sbx_enter, execve). */
#define SBX_EXEC_STACK (64 * 1024)
int sbx_pidns_init(void *stack_top, int spawner_pidfd, int own_pidns, pid_t *init,
		   struct sbx_error *err);
int sbx_exec_ns_enter(const struct sbx_init_params *p, int ipcns_fd, struct sbx_error *err);

/*
 * A worker slot's namespaces (sbx_init.c), made once and entered by each of
 * the slot's jobs while they stay as built: a PID namespace with its tiny
 * init, and mount (with the /proc of that PID namespace and a private
 * /tmp), IPC and UTS namespaces. A C task (strict profile) can create no
 * process, file, mount or IPC object and cannot set the host name, so it
 * leaves nothing; an exec task (no network) can leave processes and files,
 * so after one the spawner looks (sbx_slotns_clean, sbx_slotns_alone, and
 * next_pid at the next job's start) and makes them anew when it did.
 * sbx_slotns_build(), in the spawner: the namespaces (p: tmp_bytes, keep);
 * the spawner's next fork() lands in the slot's PID namespace until it goes
 * back to own_pidns. sbx_slotns_fork_into(): the same for a built one.
 * sbx_slotns_enter(), in the job child: join them with the slot's network
 * (p->netns_fd) and cgroups, remounting /tmp at p->tmp_bytes when the last
 * job's limit was another. sbx_slotns_clean(): whether /tmp is still as
 * built (entries, times). sbx_slotns_alone(): whether no process but the
 * init is left in the PID namespace. sbx_slotns_drop(): kill the init (and
 * reap it), and the slot's exec launcher, and close the fds;
 * sbx_slotns_detach(): the same, leaving the init to the caller to reap
 * (its exit waits until every process of the namespace is gone).
 */
struct sbx_slotns {
	pid_t init;         /* 0 = none built */
	int pid, mnt, ipc, uts, root; /* namespace fds; root: "/" in mnt */
	pid_t next_pid;     /* the pid the next process forked into the PID
			     * namespace gets, if no job created one: 3 when
			     * built (the builder was 2), then one more a job */
	uint64_t tmp_kib;   /* the size /tmp has now */
	int64_t tmp_size;   /* /tmp's directory size as built (its entries) */
	uint64_t tmp_dev;   /* ...and its device */
	int64_t tmp_times[3][2]; /* ...and its atime, mtime, ctime (s, ns) */
	uint64_t view_gen;  /* sbx_view_generation() when built */
	/* The slot's exec launcher (spawner_launch.c), killed with the
	 * namespaces; 0 / -1 = none. */
	pid_t launcher;
	int launch_sock;
	/* The slot's forker of warm C-task children (spawner_forker.c; also
	 * without namespaces), killed with its process group - the children
	 * it cloned - when the namespaces go; 0 / -1 = none. */
	pid_t forker;
	int forker_sock;
};
void sbx_slotns_init(struct sbx_slotns *ns);
int sbx_slotns_build(struct sbx_slotns *ns, void *stack_top, int spawner_pidfd, int own_pidns,
		     const struct sbx_init_params *p, struct sbx_error *err);
int sbx_slotns_fork_into(const struct sbx_slotns *ns, struct sbx_error *err);
/* In the spawner, once a job child is forked: /tmp has its size now, and
 * the child took next_pid. */
void sbx_slotns_started(struct sbx_slotns *ns, uint64_t tmp_bytes);
int sbx_slotns_enter(const struct sbx_slotns *ns, const struct sbx_init_params *p,
		     struct sbx_error *err);
bool sbx_slotns_clean(const struct sbx_slotns *ns);
bool sbx_slotns_alone(const struct sbx_slotns *ns);
/* Whether /tmp has the size a job of tmp_bytes gets (no remount needed). */
bool sbx_slotns_tmp_is(const struct sbx_slotns *ns, uint64_t tmp_bytes);
void sbx_slotns_drop(struct sbx_slotns *ns);
pid_t sbx_slotns_detach(struct sbx_slotns *ns);

/* In a job child, before sbx_enter(): join cgroups by writing "0" to each
 * tasks or cgroup.procs fd. 0, or -errno with *err. */
int sbx_cgroup_join(const int *fds, int n, struct sbx_error *err);

/* Free a filter read by the spawner; NULL is a no-op. */
void sbx_filter_release(struct sbx_filter *f);

#endif
