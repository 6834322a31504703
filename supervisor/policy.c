/*
 * policy.c - the seccomp profiles: what a task may ask the kernel.
 *
 * Theory of operation: this file is the whole policy, as tables a reviewer
 * reads top to bottom; filter.c only compiles them. A profile has a
 * name, a version, a default action, an action for every system call of a
 * foreign ABI, and four kinds of entries:
 *   allowed - system calls allowed whatever their arguments;
 *   denied  - refused with EPERM whatever their arguments (the always-denied
 *             list of SANDBOX.md: a clear "no", not "no such call");
 *   rules   - one comparison on one argument (clone flags, prlimit64);
 *   splits  - one argument's value, in or out of a small set (ioctl
 *             requests, prctl options, personality, socket domains, types
 *             and protocols), maybe only where up to two other arguments
 *             have given values.
 *
 * Names: "strict", "exec" and "exec+net". Versions: a profile's version
 * changes whenever what it allows or refuses changes, so that "exec@2" in
 * a config file (policy_profile_parse) always means the same policy; a valetd
 * that has moved on refuses the old version instead of silently running
 * under a different one. History:
 *   strict 1  the in-process profile (default TRAP; the reporter kills)
 *   strict 2  strict 1 plus getppid(), prctl(PR_SET_PDEATHSIG, SIGKILL) and
 *             prctl(PR_SET_NAME) (what a child cloned by a slot's forker
 *             does before it waits for its job), and one clone() in the
 *             forker's program, see strict_forker_rules
 *   exec 1    default ALLOW with a deny list (valet 0.x; gone)
 *   exec 2    an allowlist, default ENOSYS (setrlimit, and prlimit64 on
 *             the caller itself, allowed before its first release: shells'
 *             `ulimit` and runtimes that set their own limits)
 *   exec+net 1  exec 2 plus TCP/UDP sockets over IPv4 and IPv6
 *   exec+net 2  the same, but checked by protocol as well: IPv4 and IPv6
 *             stream sockets only with protocol 0 or IPPROTO_TCP, datagram
 *             ones only with 0 or IPPROTO_UDP (exec+net 1 checked domain
 *             and type only, and let MPTCP, UDP-Lite, SCTP, L2TP/IP and
 *             ICMP sockets through to the kernel)
 * exec and exec+net share their tables: a change to them bumps both.
 *
 * Foreign ABIs (i386 `int 0x80`, x32): refused by every profile, before
 * any table is read. strict kills, as for anything else it does not list.
 * The exec profiles answer ENOSYS, as their default does: so they never end
 * a task with SIGSYS, and a SIGSYS death of an exec task is the task's own
 * signal (kill, raise, a runtime's abort path), never the sandbox's - which
 * the supervisor cannot tell from the wait status alone, and so could not
 * report honestly if the filter killed with it too (outcome.c). The exec
 * profiles used to kill here as well; their versions did not change with
 * this, since what they allow and refuse did not: a foreign-ABI call never
 * ran and still does not, only its answer is an errno now.
 *
 * Arguments: the kernel truncates most integer arguments to 32 bits, while
 * seccomp compares all 64; every comparison that allows something masks
 * the argument (SBX_LOW32) or pins its high half, so garbage in the upper
 * bits cannot turn a refused value into an allowed one (the bubblewrap
 * TIOCSTI lesson).
 *
 * Portability: every name here must be known to the libseccomp valetd is
 * built with (filter.c refuses to compile a profile otherwise), so the
 * tables stay with system calls of Linux 5.9 and older; newer ones
 * (fchmodat2, epoll_pwait2, futex_waitv, map_shadow_stack, ...) get the
 * default, ENOSYS, and glibc falls back to an older call. Names that do
 * not exist on the native architecture (open, fork, arch_prctl on arm64)
 * are ignored by libseccomp.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "policy_tables.h"

/* The policy tables below are laid out for reading, not by clang-format. */
/* clang-format off */

#define SBX_ALLOW SCMP_ACT_ALLOW
#define SBX_KILL SCMP_ACT_KILL_PROCESS
#define SBX_EPERM SCMP_ACT_ERRNO(EPERM)
#define SBX_ENOSYS SCMP_ACT_ERRNO(ENOSYS)
#define SBX_LOW32 0xffffffffU
#define SBX_ELSEWHERE POLICY_DECIDED_ELSEWHERE

/* SBX_RULE: unconditional. SBX_ARG: on argument `arg`; for
 * SCMP_CMP_MASKED_EQ, a is the mask and b the value, else b is unused. */
#define SBX_RULE(name, action) { (name), (action), 0, 0, 0, 0, 0, 0, 0, 0 }
#define SBX_ARG(name, action, arg, op, a, b) { (name), (action), (arg), (op), (a), (b), 0, 0, 0, 0 }
/* SBX_ARG2: two comparisons, both must hold. */
#define SBX_ARG2(name, action, arg, op, a, b, arg2, op2, a2, b2) \
	{ (name), (action), (arg), (op), (a), (b), (arg2), (op2), (a2), (b2) }

/* SBX_SPLIT(name, arg, mask, in, out, values...): see struct policy_split.
 * SBX_SPLIT_IF: the same, for calls whose argument if_arg is if_value (in
 * its low 32 bits). SBX_SPLIT_IF2: for calls whose argument if_arg is
 * if_value and whose (argument if2_arg & if2_mask) is if2_value. */
#define SBX_SET(...) (sizeof((uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t)), {__VA_ARGS__}
#define SBX_SPLIT(name, arg, mask, in, out, ...) \
	{ (name), (arg), (mask), (in), (out), 0, {{0}}, SBX_SET(__VA_ARGS__) }
#define SBX_SPLIT_IF(if_arg, if_value, name, arg, mask, in, out, ...) \
	{ (name), (arg), (mask), (in), (out), 1, {{(if_arg), SBX_LOW32, (if_value)}}, \
	  SBX_SET(__VA_ARGS__) }
#define SBX_SPLIT_IF2(if_arg, if_value, if2_arg, if2_mask, if2_value, name, arg, mask, in, out, \
		      ...) \
	{ (name), (arg), (mask), (in), (out), \
	  2, {{(if_arg), SBX_LOW32, (if_value)}, {(if2_arg), (if2_mask), (if2_value)}}, \
	  SBX_SET(__VA_ARGS__) }

/* ---- strict ------------------------------------------------------------- */

/*
 * strict 1 - in-process C tasks. Default: SCMP_ACT_TRAP, so the SIGSYS
 * reporter installed by sbx_enter() learns the number before the process is
 * killed. A task may compute, allocate memory, read and write the fds it was
 * given, look at the clock, sleep and exit. It cannot open anything, create
 * processes or sockets, exec, or change its limits.
 */
static const char *const strict_allowed[] = {
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "lseek", "fstat",
	"mmap", "munmap", "mremap", "brk", "mprotect", "madvise",
	"exit", "exit_group", "rt_sigreturn", "rt_sigprocmask", "sigaltstack",
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
	"futex", "getpid", "gettid", "tgkill", "getrandom", "sched_yield", "restart_syscall",
	"getrusage", "poll", "ppoll",
	NULL
};

static const struct policy_rule strict_rules[] = {
	/* glibc's fstat(); AT_EMPTY_PATH must be set (masked: the flags are an int). */
	SBX_ARG("newfstatat", SBX_ALLOW, 3, SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH),
	/*
	 * rt_sigaction for every signal but SIGSYS. The kernel reads an int,
	 * so SIGSYS in the low 32 bits kills whatever the high bits say, and
	 * the allow rules pin the high half to zero: signals 1..30, 32..63, 64.
	 * Any other value falls through to the default (trap).
	 */
	SBX_ARG("rt_sigaction", SBX_KILL, 0, SCMP_CMP_MASKED_EQ, SBX_LOW32, SIGSYS),
	SBX_ARG("rt_sigaction", SBX_ALLOW, 0, SCMP_CMP_LT, SIGSYS, 0),
	SBX_ARG("rt_sigaction", SBX_ALLOW, 0, SCMP_CMP_MASKED_EQ, ~0x1fULL, 0x20),
	SBX_ARG("rt_sigaction", SBX_ALLOW, 0, SCMP_CMP_EQ, 64, 0),
	/* getrlimit() only: new_limit (a pointer, all 64 bits) must be NULL. */
	SBX_ARG("prlimit64", SBX_ALLOW, 2, SCMP_CMP_EQ, 0, 0),
	SBX_ARG("fcntl", SBX_ALLOW, 1, SCMP_CMP_MASKED_EQ, SBX_LOW32, F_GETFL),
	SBX_ARG("fcntl", SBX_ALLOW, 1, SCMP_CMP_MASKED_EQ, SBX_LOW32, F_GETFD),
	/* A child of a slot's forker: its parent-death signal, exactly this
	 * one (all 64 bits of both), the check that its parent is alive, and
	 * its name for ps (a task may rename itself: /proc/PID/comm says
	 * nothing valetd relies on). */
	SBX_ARG2("prctl", SBX_ALLOW, 0, SCMP_CMP_EQ, PR_SET_PDEATHSIG, 0,
		 1, SCMP_CMP_EQ, SIGKILL, 0),
	SBX_ARG("prctl", SBX_ALLOW, 0, SCMP_CMP_EQ, PR_SET_NAME, 0),
	SBX_RULE("getppid", SBX_ALLOW),
	{NULL},
};

/*
 * Only in the program of a worker slot's forker (sandbox/spawner_forker.c),
 * which its children inherit: clone() with exactly these flags (all 64
 * bits: a copy of the process, as the spawner's child, the child's tid
 * written for glibc; no thread, no namespace, no shared memory), and only
 * when tls, which the kernel ignores without CLONE_SETTLS, is the secret
 * the forker drew and put in place of the placeholder before it loaded
 * the program. A task of its children has the same program but not the
 * secret (each child wipes its copy before it reads its job), and a
 * clone() that does not match traps and ends the task: one guess of 64
 * bits. Every other strict program has no clone rule at all.
 */
static const struct policy_rule strict_forker_rules[] = {
	SBX_ARG2("clone", SBX_ALLOW, 0, SCMP_CMP_EQ, SBX_FORKER_CLONE_FLAGS, 0,
		 4, SCMP_CMP_EQ, SBX_FORKER_PLACEHOLDER, 0),
	{NULL},
};

/* ---- exec and exec+net -------------------------------------------------- */

/*
 * exec 2 - exec'd programs: what a dynamically linked program, a shell,
 * coreutils, tar, gzip, python3 (threads, subprocess, hashlib, tempfile)
 * and perl need, within the files, processes and limits the rest of the
 * sandbox gives them. Default: ENOSYS, the answer of a kernel without the
 * call, which runtimes already handle (glibc falls back, python raises
 * OSError). The always-denied list answers EPERM.
 */
static const char *const exec_allowed[] = {
	/* Files: open, look at, read and write, in the directories it may. */
	"read", "write", "readv", "writev", "pread64", "pwrite64",
	"preadv", "pwritev", "preadv2", "pwritev2", "lseek", "close", "close_range",
	"open", "openat", "openat2", "creat",
	"stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
	"access", "faccessat", "faccessat2", "readlink", "readlinkat",
	"getdents", "getdents64", "getcwd", "chdir", "fchdir",
	"mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
	"link", "linkat", "symlink", "symlinkat", "mknod", "mknodat",
	"chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown", "umask",
	"truncate", "ftruncate", "fallocate", "fsync", "fdatasync", "sync_file_range",
	"utime", "utimes", "utimensat", "futimesat", "flock", "fadvise64", "readahead",
	"copy_file_range", "sendfile", "splice", "tee",
	"getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
	"setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
	"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	/* fds: duplicate, pipe, control (ioctl is a split below). */
	"dup", "dup2", "dup3", "pipe", "pipe2", "fcntl",
	/* Waiting for several things at once. */
	"poll", "ppoll", "select", "pselect6",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"eventfd", "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime",
	"signalfd", "signalfd4",
	/* Memory. mlock is bounded by RLIMIT_MEMLOCK. */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore",
	"mlock", "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "memfd_create",
	/* Signals and timers. kill() reaches only what the uid and the PID
	 * namespace let it reach. */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
	"rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack",
	"kill", "tkill", "tgkill", "pause", "alarm", "getitimer", "setitimer",
	"timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
	/* Time. */
	"clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "time",
	"nanosleep", "times",
	/* Processes (clone is a rule below, clone3 answers ENOSYS). */
	"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
	"pidfd_open", "pidfd_send_signal",
	"getpid", "getppid", "gettid", "getpgid", "getpgrp", "setpgid", "getsid", "setsid",
	/* Threads and the C library's own bookkeeping. */
	"futex", "set_robust_list", "set_tid_address", "rseq", "arch_prctl", "restart_syscall",
	"sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
	"sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
	"sched_rr_get_interval", "getpriority", "setpriority",
	/* Who and where am I: ids, limits, the machine. setrlimit() only ever
	 * changes the caller's own limits, and the kernel refuses raising a
	 * hard limit (valet sets soft = hard) without CAP_SYS_RESOURCE. */
	"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
	"capget", "getrlimit", "setrlimit", "getrusage", "uname", "sysinfo", "getcpu",
	"getrandom",
	/* Sockets: which ones may be created is the socket split below. */
	"connect", "bind", "listen", "accept", "accept4",
	"sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	NULL
};

/*
 * Refused with EPERM whatever the arguments: debugging other processes,
 * kernel attack surface (bpf, perf, keys, io_uring, userfaultfd), the
 * mount API, namespaces, kexec, modules, reboot, swap, accounting, quotas,
 * the kernel log and file handles (which bypass path permissions).
 */
static const char *const exec_denied[] = {
	"ptrace", "process_vm_readv", "process_vm_writev",
	"bpf", "perf_event_open",
	"keyctl", "add_key", "request_key",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"mount", "umount2", "pivot_root", "move_mount", "open_tree",
	"fsopen", "fsmount", "fsconfig", "fspick",
	"unshare", "setns",
	"kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module",
	"reboot", "userfaultfd", "swapon", "swapoff", "acct", "quotactl", "syslog",
	"lookup_dcookie", "open_by_handle_at", "name_to_handle_at",
	NULL
};

/* Any clone flag that would create a namespace. */
#define SBX_CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
			   CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

static const struct policy_rule exec_rules[] = {
	/* clone(): threads, fork, vfork and posix_spawn, but no namespace.
	 * The kernel reads the low 32 bits of the flags; the masks ignore the
	 * rest. CLONE_NEWTIME is only possible with clone3 and unshare. */
	SBX_ARG("clone", SBX_ALLOW, 0, SCMP_CMP_MASKED_EQ, SBX_CLONE_NEW_ANY, 0),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWNS, CLONE_NEWNS),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWPID, CLONE_NEWPID),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWNET, CLONE_NEWNET),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWIPC, CLONE_NEWIPC),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWUTS, CLONE_NEWUTS),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWCGROUP, CLONE_NEWCGROUP),
	/* clone3 is left to the default, ENOSYS, on purpose: it passes its
	 * flags in memory, which seccomp cannot read, and ENOSYS makes glibc
	 * fall back to clone(), which the rules above see. (libseccomp refuses
	 * a rule whose action is the default one.) */
	/* prlimit64: reading anybody's limits (new_limit, a pointer, all 64
	 * bits, is NULL), or setting the caller's own (pid 0; a pid_t, so the
	 * low 32 bits), as setrlimit() does. */
	SBX_ARG("prlimit64", SBX_ALLOW, 2, SCMP_CMP_EQ, 0, 0),
	SBX_ARG("prlimit64", SBX_ALLOW, 0, SCMP_CMP_MASKED_EQ, SBX_LOW32, 0),
	{NULL},
};

static const struct policy_split exec_splits[] = {
	/* Faking terminal input (TIOCSTI), and the same family
	 * (TIOCLINUX, CVE-2023-28100); any other request is fine. */
	SBX_SPLIT("ioctl", 1, SBX_LOW32, SBX_EPERM, SBX_ALLOW, TIOCSTI, TIOCLINUX),
	/* prctl: not rewriting its own memory map (PR_SET_MM), nor letting
	 * another process ptrace it (PR_SET_PTRACER); the rest is about the
	 * caller itself (names, no_new_privs, seccomp, dumpable, ...). */
	SBX_SPLIT("prctl", 0, SBX_LOW32, SBX_EPERM, SBX_ALLOW, PR_SET_MM, PR_SET_PTRACER),
	/* personality: PER_LINUX and the query 0xffffffff only (no
	 * ADDR_NO_RANDOMIZE, no READ_IMPLIES_EXEC). */
	SBX_SPLIT("personality", 0, SBX_LOW32, SBX_ALLOW, SBX_EPERM, PER_LINUX, 0xffffffffU),
	{NULL},
};

/*
 * Sockets. socket(domain, type, protocol): the domain must be in the set,
 * then type & 0xf (the SOCK_* flags live in the high bits) must be a plain
 * stream, datagram or seqpacket type: no SOCK_RAW, no SOCK_PACKET. Refused
 * sockets answer EPERM. socketpair() only exists for AF_UNIX.
 *
 * For AF_INET and AF_INET6 the protocol decides as well: a stream or
 * datagram type alone also names MPTCP, SCTP, UDP-Lite, L2TP/IP and ICMP
 * ("ping") sockets, each its own kernel code. So a stream socket may only
 * be TCP (protocol 0 or IPPROTO_TCP), a datagram one only UDP (0 or
 * IPPROTO_UDP). The protocol is an int: its low 32 bits are compared, as
 * the kernel reads it, so 0x100000006 is TCP to the kernel and the filter
 * alike and is allowed, and no high bits make 262 (MPTCP) pass. The type
 * split leaves the two types SBX_ELSEWHERE, and the protocol splits, one
 * per (domain, type), decide them: each call meets exactly one rule. (An
 * SBX_ALLOW there would overlap them, and libseccomp lets the shorter rule
 * win: MPTCP would pass again.)
 *
 * AF_UNIX's protocol is not checked: the kernel accepts only 0 and PF_UNIX
 * there and selects no other code by it, so a protocol split would add
 * rules without refusing anything the kernel would let through.
 */
#define SBX_UNIX_TYPES SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
#define SBX_INET_TYPES SOCK_STREAM, SOCK_DGRAM

static const struct policy_split exec_sockets[] = {
	SBX_SPLIT("socket", 0, SBX_LOW32, SBX_ELSEWHERE, SBX_EPERM, AF_UNIX),
	SBX_SPLIT_IF(0, AF_UNIX, "socket", 1, 0xf, SBX_ALLOW, SBX_EPERM, SBX_UNIX_TYPES),
	SBX_SPLIT("socketpair", 0, SBX_LOW32, SBX_ELSEWHERE, SBX_EPERM, AF_UNIX),
	SBX_SPLIT_IF(0, AF_UNIX, "socketpair", 1, 0xf, SBX_ALLOW, SBX_EPERM, SBX_UNIX_TYPES),
	{NULL},
};

static const struct policy_split exec_net_sockets[] = {
	SBX_SPLIT("socket", 0, SBX_LOW32, SBX_ELSEWHERE, SBX_EPERM, AF_UNIX, AF_INET, AF_INET6),
	SBX_SPLIT_IF(0, AF_UNIX, "socket", 1, 0xf, SBX_ALLOW, SBX_EPERM, SBX_UNIX_TYPES),
	SBX_SPLIT_IF(0, AF_INET, "socket", 1, 0xf, SBX_ELSEWHERE, SBX_EPERM, SBX_INET_TYPES),
	SBX_SPLIT_IF2(0, AF_INET, 1, 0xf, SOCK_STREAM,
		      "socket", 2, SBX_LOW32, SBX_ALLOW, SBX_EPERM, 0, IPPROTO_TCP),
	SBX_SPLIT_IF2(0, AF_INET, 1, 0xf, SOCK_DGRAM,
		      "socket", 2, SBX_LOW32, SBX_ALLOW, SBX_EPERM, 0, IPPROTO_UDP),
	SBX_SPLIT_IF(0, AF_INET6, "socket", 1, 0xf, SBX_ELSEWHERE, SBX_EPERM, SBX_INET_TYPES),
	SBX_SPLIT_IF2(0, AF_INET6, 1, 0xf, SOCK_STREAM,
		      "socket", 2, SBX_LOW32, SBX_ALLOW, SBX_EPERM, 0, IPPROTO_TCP),
	SBX_SPLIT_IF2(0, AF_INET6, 1, 0xf, SOCK_DGRAM,
		      "socket", 2, SBX_LOW32, SBX_ALLOW, SBX_EPERM, 0, IPPROTO_UDP),
	SBX_SPLIT("socketpair", 0, SBX_LOW32, SBX_ELSEWHERE, SBX_EPERM, AF_UNIX),
	SBX_SPLIT_IF(0, AF_UNIX, "socketpair", 1, 0xf, SBX_ALLOW, SBX_EPERM, SBX_UNIX_TYPES),
	{NULL},
};

static const struct policy_split *const exec_split_tables[] = {exec_splits, exec_sockets, NULL};
static const struct policy_split *const exec_net_split_tables[] = {
	exec_splits, exec_net_sockets, NULL
};

static const struct policy policies[SBX_PROFILE_COUNT] = {
	[SBX_PROFILE_STRICT] = {
		.name = "strict",
		.version = 2,
		.default_action = SCMP_ACT_TRAP,
		.foreign_abi_action = SBX_KILL,
		.allowed = strict_allowed,
		.rules = strict_rules,
		.forker_rules = strict_forker_rules,
	},
	[SBX_PROFILE_EXEC] = {
		.name = "exec",
		.version = 2,
		.default_action = SBX_ENOSYS,
		.foreign_abi_action = SBX_ENOSYS,
		.allowed = exec_allowed,
		.denied = exec_denied,
		.rules = exec_rules,
		.splits = exec_split_tables,
	},
	[SBX_PROFILE_EXEC_NET] = {
		.name = "exec+net",
		.version = 2,
		.default_action = SBX_ENOSYS,
		.foreign_abi_action = SBX_ENOSYS,
		.allowed = exec_allowed,
		.denied = exec_denied,
		.rules = exec_rules,
		.splits = exec_net_split_tables,
	},
};

/* clang-format on */

const struct policy *policy_of(enum sbx_profile profile)
{
	if ((unsigned)profile >= SBX_PROFILE_COUNT)
		return NULL;
	return &policies[profile];
}

const char *policy_profile_name(enum sbx_profile profile)
{
	const struct policy *p = policy_of(profile);

	return p ? p->name : NULL;
}

unsigned policy_profile_version(enum sbx_profile profile)
{
	const struct policy *p = policy_of(profile);

	return p ? p->version : 0;
}

/* "NAME" or "NAME@VERSION", VERSION in decimal without sign or leading zeros. */
int policy_profile_parse(const char *name, enum sbx_profile *out)
{
	const char *at;
	size_t len;

	if (name == NULL)
		return -EINVAL;
	at = strchr(name, '@');
	len = at ? (size_t)(at - name) : strlen(name);
	for (int i = 0; i < SBX_PROFILE_COUNT; i++) {
		const struct policy *p = &policies[i];
		char *end;
		unsigned long v;

		if (strlen(p->name) != len || strncmp(p->name, name, len) != 0)
			continue;
		if (at) {
			if (at[1] < '1' || at[1] > '9')
				return -EINVAL;
			errno = 0;
			v = strtoul(at + 1, &end, 10);
			if (errno || *end != '\0' || v != p->version)
				return -EINVAL;
		}
		if (out)
			*out = (enum sbx_profile)i;
		return 0;
	}
	return -EINVAL;
}
