/*
 * spawn_proto.h - the protocol between valetd and its spawner: the only
 * thing the daemon (supervisor/) knows of sandbox/.
 *
 * Three processes, three programs' worth of memory:
 *   valetd        the daemon: HTTP, queue, storage, the config; links
 *                 libev, libmicrohttpd, libpq, inih, libseccomp, jansson.
 *   valet-spawner exec'd by valetd at startup (or the user's own program
 *                 with its valet_register()ed tasks, see valet_main()): a
 *                 fresh image of libc, jansson and the task code, which never
 *                 parsed the config and never held a secret. It forks every
 *                 job child, and is the only one who reaps them.
 *   job child     a fork of the spawner: sandbox/ code, then the task (an
 *                 exec task in its slot's namespaces: a clone of the slot's
 *                 launcher, itself a fork of the spawner, with the spawner
 *                 as its parent: spawner_launch.c).
 *
 * Start: valetd runs
 *     SPAWNER --valet-spawner SOCK SETUP
 * with SOCK its end of a SOCK_SEQPACKET socketpair and SETUP a memfd holding
 * the setup document (JSON, below). The fds the document names (cgroup
 * files, seccomp filters in memfds, ...) are open in the spawner already,
 * inherited across execve. The spawner answers READY: struct spawn_evt, and
 * after it, in the same message, the task table as JSON text:
 *     [{"name": "sha256", "exec": false, "profile": 0}, ...]
 * in index order (the C tasks its program registered, its plugins' in file
 * name order, then the exec tasks of the setup document), or, when it
 * cannot start, spawn_err and a sentence (text) saying why, with
 * SPAWN_EVT_F_SANDBOX when it was the jobs' sandbox (view, network) that
 * could not be prepared.
 *
 * The setup document:
 *   "version":    SPAWN_PROTO_VERSION; a spawner of another version refuses
 *                 it (READY with EPROTO): a program built against another
 *                 libvalet than valetd's
 *   "slots":      the number of worker slots (2 x workers)
 *   "user":       {"drop": bool, "uid", "gid", "uid_base"} (uid_base 0: all
 *                 slots run as uid/gid; else slot N as uid_base + N)
 *   "filters":    [fd, fd, fd, fd]: memfds of BPF (struct sock_filter[]) by
 *                 enum sbx_profile, then SBX_FILTER_FORKER
 *   "namespaces": bool; "view": {"hide": [dir...], "job_network": bool};
 *   "keep":       [{"path", "file": bool}]: the host's /tmp items jobs see
 *   "net":        {"host": bool, "helper": path, "gid", "rules":
 *                 [[addr, prefix, allow]...]} (addr: IPv4 in dotted form)
 *   "cgroups":    null, or [{"join": [fd...], "mem_max", "memsw",
 *                 "pids_max", "oom", "kill", "procs", "peak", and optional
 *                 "usage", "stat" (fds, -1 = none), "v1": bool, "memory",
 *                 "pids", "oom_seen"}] per slot
 *   "plugin_dir": the directory whose *.so files the spawner loads, or ""
 *   "exec_tasks": [{"name", "argv": [...], "profile"}]
 *
 * Then, per job: daemon -> spawner START (header + inline input, fds by
 * SCM_RIGHTS), KILL, POLICY; spawner -> daemon STARTED (the child's pid),
 * EXIT (wait status and rusage of a reaped job child), POLICY (its answer).
 * The spawner is the only parent and the only reaper of job children, so a
 * KILL never hits a recycled pid. It is also a child subreaper: orphans of
 * a job are reparented to it and reaped.
 *
 * Deadlines are kept on the spawner's side, so that a kill at a job's
 * deadline does not wait for the daemon's event loop (which a slow client
 * or a stopped process may hold up). Before any START the daemon sends one
 * TIMER per slot: a timerfd on CLOCK_MONOTONIC, attached by SCM_RIGHTS,
 * that both processes then hold. The daemon arms it (absolute time) when a
 * job starts, may move it when a pipeline's next job starts, and disarms it
 * before the slot gets another child; the spawner only waits on it. When a
 * slot's timer expires while the slot has a child that was not killed
 * already, the spawner kills it as for KILL, and its EXIT carries
 * SPAWN_EVT_F_DEADLINE. An expiry with no child is dropped.
 */
#ifndef VALET_SPAWN_PROTO_H
#define VALET_SPAWN_PROTO_H

#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The protocol's version: the setup document's, the requests' and the
 * events'. Bumped on any change of either (2: TIMER, SPAWN_EVT_F_DEADLINE,
 * spawn_evt.end_ns; 3: SPAWN_EVT_F_SANDBOX; 4: the forker's program in
 * "filters"). */
#define SPAWN_PROTO_VERSION 4

/* argv[1] of a spawner started by valetd. */
#define SPAWN_ARG "--valet-spawner"
/* argv[1] of a spawner asked only for its tasks (valetd -t): it prints the
 * task table (JSON, as READY has it) on stdout and exits. argv[2]: the fd
 * of a setup document with only "version", "plugin_dir" and "exec_tasks". */
#define SPAWN_ARG_LIST "--valet-list-tasks"

#define SPAWN_INLINE_MAX 4096 /* larger inputs go as a memfd on stdin */
#define SPAWN_MAX_FDS 4
/* READY's task table and error text, at most. */
#define SPAWN_READY_MAX (1 << 20)

/* The seccomp profiles, named and versioned (the policy:
 * supervisor/policy.c; compiled by the daemon, loaded by the job child). */
enum sbx_profile {
	SBX_PROFILE_STRICT = 0,   /* "strict": C tasks: memory, time, I/O on open fds, exit */
	SBX_PROFILE_EXEC = 1,     /* "exec": exec'd programs, an allowlist; AF_UNIX sockets only */
	SBX_PROFILE_EXEC_NET = 2, /* "exec+net": exec, plus TCP and UDP over IPv4 and IPv6 */
	SBX_PROFILE_COUNT
};

/*
 * The programs the daemon compiles: one per profile, then the strict
 * profile's variant for a worker slot's forker (sandbox/spawner_forker.c),
 * which may clone with exactly SBX_FORKER_CLONE_FLAGS when the clone's tls
 * argument (ignored by the kernel without CLONE_SETTLS) is the forker's
 * secret. The daemon compiles SBX_FORKER_PLACEHOLDER in its place; no
 * process ever loads the program as compiled.
 */
#define SBX_FILTER_FORKER SBX_PROFILE_COUNT
#define SBX_NFILTERS (SBX_PROFILE_COUNT + 1)
#define SBX_FORKER_PLACEHOLDER 0x76616c65742d6b21ULL /* "valet-k!" */
#define SBX_FORKER_CLONE_FLAGS (CLONE_PARENT | CLONE_CHILD_SETTID | SIGCHLD)

/* A compiled seccomp filter (BPF). */
struct sbx_filter {
	void *insns; /* struct sock_filter[] */
	unsigned short len;
	/* insns is a mapping of its own (the spawner's copies), which a C
	 * task's child unmaps once it has loaded it (sbx_child.c); else malloc'd. */
	bool mapped;
};

/* A job's rlimits. */
struct sbx_limits {
	uint64_t memory_bytes;  /* RLIMIT_AS; 0 = unlimited */
	uint64_t cpu_seconds;   /* RLIMIT_CPU; 0 = unlimited */
	uint64_t max_files;     /* RLIMIT_NOFILE; 0 = leave */
	uint64_t max_processes; /* RLIMIT_NPROC; 0 = leave */
	uint64_t max_file_size; /* RLIMIT_FSIZE; 0 = unlimited */
};

/* Setup failure, reported on the frame channel as FRAME_SETUP_ERROR. */
struct sbx_error {
	char step[24]; /* "setsid", "dup2", "setrlimit", "setuid", "seccomp", ... */
	int err;       /* errno */
};
/* A destination network of exec+net jobs (sandbox/sbx_net.c). */
struct sbx_net_rule {
	uint32_t addr;	/* network byte order */
	uint8_t prefix; /* 0..32 */
	bool allow;
};

/* A directory of the host's /tmp (or a file right in it) that every job
 * sees, read-only, at the same path in its own /tmp (exec task programs
 * that live there). */
struct sbx_keep {
	const char *path; /* absolute, under /tmp */
	bool is_file;
};
#define SBX_KEEP_MAX 64

/* POLICY: what jobs must not see or reach; its answer is a POLICY event
 * with the same run_id and an errno. Payload: NUL-terminated entries,
 * "h/dir" hides a directory (also when it appears later, or comes back
 * after a rename), "dA.B.C.D" denies an IPv4 address to exec+net jobs (the
 * denied set replaces the last one). */
enum spawn_req_type {
	SPAWN_REQ_START = 1,
	SPAWN_REQ_KILL = 2,
	SPAWN_REQ_POLICY = 3,
	SPAWN_REQ_TIMER = 4, /* the slot's deadline timer: one timerfd attached */
};
enum spawn_evt_type {
	SPAWN_EVT_EXIT = 1,
	SPAWN_EVT_STARTED = 2,
	SPAWN_EVT_READY = 3,
	SPAWN_EVT_POLICY = 4,
};

enum {
	SPAWN_EVT_F_OOM = 1u << 0,      /* EXIT: the OOM killer struck in the job's cgroup */
	SPAWN_EVT_F_DEADLINE = 1u << 1, /* EXIT: the spawner killed it when its slot's timer expired */
	/* READY (failed): the jobs' sandbox could not be prepared (their view,
	 * their network): the host's limit, not the setup's - valetd may go on
	 * without namespaces when degraded isolation is allowed. */
	SPAWN_EVT_F_SANDBOX = 1u << 2,
};

enum {
	SPAWN_F_EXEC = 1u << 0,          /* exec task: execve task argv */
	SPAWN_F_INPUT_STDIN = 1u << 1,   /* C task: read the input from fd 0 */
	SPAWN_F_HAS_STDIN = 1u << 2,     /* an input fd is attached (last fd) */
	SPAWN_F_SHARED_OUTPUT = 1u << 3, /* stderr goes to the stdout pipe */
	SPAWN_F_INPUT_SIZED = 1u << 4,   /* stdin: uint32 size, then the input (no EOF) */
};

/* fds attached to START, in order: frame, stdout, [stderr], [stdin]. */
struct spawn_req {
	uint32_t type;
	uint32_t slot;
	uint64_t run_id;
	int32_t task_index;
	uint32_t flags;
	uint32_t input_len; /* bytes following the header: inline input, POLICY's entries */
	uint32_t pad;
	struct sbx_limits limits; /* the child's rlimits (the job's limits) */
};

struct spawn_evt {
	uint32_t type;
	uint32_t slot;
	uint64_t run_id;
	int32_t pid;
	int32_t status;	   /* wait status */
	int32_t spawn_err; /* errno when the fork failed (status invalid); READY: setup */
	uint32_t flags;	   /* SPAWN_EVT_F_* */
	int64_t utime_us, stime_us, maxrss_kb;
	int64_t memory_peak_kb; /* the job's cgroup memory peak; -1 = unknown */
	int64_t end_ns;		/* EXIT: when it was reaped (CLOCK_MONOTONIC); 0 = unknown */
};

#endif
