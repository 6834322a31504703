/*
 * sbx_init.c - a job's PID namespace: its init, and the namespaces the
 * task gets on top of the spawner's view.
 *
 * Theory of operation: every job gets new PID, mount, IPC and UTS
 * namespaces. A PID namespace needs a pid 1, and a pid-1 process is
 * special: the kernel drops the signals it sends itself that it has no
 * handler for, so a task running as pid 1 could not abort() or raise(), nor
 * an exec'd program die of its own `kill -9 $$`. So the task runs as pid 2
 * under an init of the spawner's, the same for C and exec tasks:
 *
 * The init (sbx_pidns_init) is the cheapest process there is - a clone of
 * the spawner that shares its memory (CLONE_VM: no page tables to copy,
 * nothing to tear down at its exit), on a small stack of its own, running
 * raw system calls only:
 *   1. the spawner unshares its PID namespace for children (unshare(
 *      CLONE_NEWPID)) and clones the init with every signal blocked; the
 *      init is pid 1 of the new namespace. It names itself valetd-init,
 *      dies with the spawner (parent-death signal; a pidfd of the spawner
 *      tells whether it died before that), ignores SIGCHLD (the kernel
 *      reaps what comes to it), closes every fd, drops every capability,
 *      sets no_new_privs and sleeps until it is killed;
 *   2. the spawner starts the task, which lands in the new namespace as
 *      pid 2, then goes back to its own (setns). A C task is forked with
 *      glibc's fork() (the task's copy of glibc must be right: raise() and
 *      abort() depend on it). An exec task, whose image is replaced at
 *      once, is cloned into the spawner's own memory with new mount, IPC
 *      and UTS namespaces (CLONE_VM | CLONE_VFORK, on a stack in the
 *      spawner's frame, as posix_spawn does): the spawner waits until it
 *      has exec'd or died, so nothing it writes (errno) races the spawner,
 *      and no copy of the image is made for it or torn down at its execve;
 *   3. the task, still privileged, leaves the spawner's mount, IPC and UTS
 *      namespaces for new ones (a C task unshares them: sbx_job_ns_enter;
 *      an exec task got them from its clone: sbx_exec_ns_enter) and joins
 *      the slot's network namespace (an empty one, or for profiles that
 *      allow network the one its network helper serves), sets the host
 *      name "valet", mounts a fresh /proc for the new PID namespace, for
 *      jobs with network a resolv.conf naming the helper's DNS forwarder,
 *      and a private tmpfs on /tmp (gone with the mount namespace) with
 *      the directories of the host's /tmp that hold exec task programs
 *      bound read-only at their paths, and joins the slot's cgroups
 *      (writes "0" to their cgroup.procs; see cgroup.h for why not
 *      CLONE_INTO_CGROUP); then sbx_enter(), and the C task runs or the
 *      program is exec'd;
 *   4. the spawner is the task's parent: it reaps it with its rusage, then
 *      kills the init - and with it whatever is left in the namespace.
 *      The init's exit waits until every other process of the namespace
 *      is gone, so once the spawner has reaped the init, the job is over.
 *      A timeout or a cancel kills the task and the init alike.
 * A C task cannot create processes (the strict profile); what an exec
 * task leaves behind (setsid, double fork) is the init's: the kernel reaps
 * what ends before the task (its CPU time is not the job's), the init's
 * death kills the rest. Sharing memory with the spawner gives the init
 * nothing the task can reach: it runs as uid 0 without capabilities, the
 * task under another uid can neither signal, trace nor read it, and the
 * spawner held no secret to begin with.
 *
 * Async-signal-safe only, as in sbx_child.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

int sbx_cgroup_join(const int *fds, int n, struct sbx_error *err)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0 && pwrite(fds[i], "0", 1, 0) < 0)
			return sbx_error_set(err, "cgroup join", errno);
	return 0;
}

/* Decimal digits of v at o (without snprintf: not async-signal-safe). */
static char *sbx_utoa(char *o, uint64_t v)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(digits));
	while (n)
		*o++ = digits[--n];
	*o = '\0';
	return o;
}

/* The mount point for path in the new /tmp: its directories, and path
 * itself as a directory or (is_file) an empty file. */
static int sbx_mkdirs(const char *path, bool is_file, struct sbx_error *err)
{
	char buf[4096];
	size_t n = strlen(path);
	int fd;

	if (n >= sizeof(buf))
		return sbx_error_set(err, "keep path", ENAMETOOLONG);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (i == n && is_file) {
			fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
			if (fd < 0)
				return sbx_error_set(err, "keep file", errno);
			close(fd);
		} else if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			return sbx_error_set(err, "keep mkdir", errno);
		}
		buf[i] = path[i];
	}
	return 0;
}

/*
 * The kept items of the host's /tmp, read-only at their paths in the new
 * /tmp. The view has them under the workshop (SBX_KEEP_DIR), which the new
 * /tmp covers: fds[] were opened on them before it was mounted.
 */
static int sbx_init_keep(const struct sbx_keep *keep, int nkeep, const int *fds,
			 struct sbx_error *err)
{
	char src[48];

	for (int i = 0; i < nkeep; i++) {
		memcpy(src, "/proc/self/fd/", 14);
		sbx_utoa(src + 14, (uint64_t)fds[i]);
		if (sbx_mkdirs(keep[i].path, keep[i].is_file, err) < 0)
			return sbx_failed(err);
		if (mount(src, keep[i].path, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, keep[i].path, NULL,
			  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
			return sbx_error_set(err, "keep mount", errno);
	}
	return 0;
}

static int sbx_init_mounts(const struct sbx_init_params *p, struct sbx_error *err)
{
	uint64_t kib = p->tmp_bytes ? (p->tmp_bytes + 1023) / 1024 : 256 * 1024;
	int fds[SBX_KEEP_MAX];
	char opts[64], path[48];
	int rc = 0, n = 0;

	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return sbx_error_set(err, "mount /proc", errno);
	/* exec+net: the resolver is slirp4netns's forwarder (the host's may be
	 * on its loopback, or in a network jobs may not reach). From the
	 * workshop, so before the job's /tmp covers it. A host without
	 * /etc/resolv.conf keeps none. */
	if (p->net_resolv &&
	    (mount(SBX_NET_RESOLV, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0
		 ? errno != ENOENT
		 : mount(NULL, "/etc/resolv.conf", NULL,
			 MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			 NULL) < 0))
		return sbx_error_set(err, "mount resolv.conf", errno);
	for (; n < p->nkeep && n < SBX_KEEP_MAX; n++) {
		memcpy(path, SBX_KEEP_DIR, sizeof(SBX_KEEP_DIR) - 1);
		sbx_utoa(path + sizeof(SBX_KEEP_DIR) - 1, (uint64_t)n);
		if ((fds[n] = open(path, O_PATH | O_CLOEXEC)) < 0) {
			rc = sbx_error_set(err, "keep open", errno);
			goto out;
		}
	}
	memcpy(opts, "mode=1777,size=", 15);
	memcpy(sbx_utoa(opts + 15, kib), "k", 2);
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		rc = sbx_error_set(err, "mount /tmp", errno);
	else
		rc = sbx_init_keep(p->keep, n, fds, err);
out:
	while (n--)
		close(fds[n]);
	return rc;
}

/* The job's own view, in its new namespaces: the slot's network, the host
 * name, /proc and /tmp. */
static int sbx_job_view(const struct sbx_init_params *p, struct sbx_error *err)
{
	if (p->netns_fd >= 0 && setns(p->netns_fd, CLONE_NEWNET) < 0)
		return sbx_error_set(err, "setns net", errno);
	if (sethostname("valet", 5) < 0)
		return sbx_error_set(err, "sethostname", errno);
	return sbx_init_mounts(p, err);
}

int sbx_exec_ns_enter(const struct sbx_init_params *p, struct sbx_error *err)
{
	if (sbx_job_view(p, err) < 0)
		return sbx_failed(err);
	return sbx_cgroup_join(p->join_fds, p->njoin, err);
}

int sbx_job_ns_enter(const struct sbx_init_params *p, struct sbx_error *err)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		return sbx_error_set(err, "unshare", errno);
	if (sbx_job_view(p, err) < 0)
		return sbx_failed(err);
	return sbx_cgroup_join(p->join_fds, p->njoin, err);
}

/*
 * A system call that writes nothing but its result: glibc's syscall() sets
 * errno on failure, and the C task's init shares the spawner's thread
 * pointer, so that errno is the spawner's (a close_range that a 5.8 kernel
 * does not know would have written ENOSYS into the spawner's loop at any
 * moment). Other architectures fall back to syscall().
 */
__attribute__((no_sanitize("address", "undefined"))) static inline long
sbx_raw(long n, long a, long b, long c, long d, long e)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;

	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
	return x0;
#else
	return syscall(n, a, b, c, d, e);
#endif
}

/* struct kernel_sigaction, for a raw rt_sigaction. */
struct sbx_init_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

/*
 * The init of a C task's PID namespace (see the top). It shares the
 * spawner's memory and its thread-local storage: it touches nothing but
 * its own stack and makes raw system calls (sbx_raw: errno, the
 * spawner's, is never written). Not instrumented: the
 * sanitizers' runtime state is the spawner's too.
 */
__attribute__((no_sanitize("address", "undefined"))) static int sbx_pidns_init_main(void *arg)
{
	struct sbx_init_sigaction ign = {.handler = (void *)SIG_IGN};
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {{0}};
	struct pollfd pfd = {.fd = (int)(intptr_t)arg, .events = POLLIN};
	struct timespec now = {0, 0};

	sbx_raw(SYS_prctl, PR_SET_NAME, (long)"valetd-init", 0, 0, 0);
	sbx_raw(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* The spawner may have died before that prctl (getppid() says 0
	 * across the namespace either way): its pidfd is readable then. */
	if (pfd.fd >= 0 && sbx_raw(SYS_ppoll, (long)&pfd, 1, (long)&now, 0, 0) != 0)
		sbx_raw(SYS_exit, 1, 0, 0, 0, 0);
	/* What comes to the init (orphans) the kernel reaps. */
	sbx_raw(SYS_rt_sigaction, SIGCHLD, (long)&ign, 0, sizeof(ign.mask), 0);
	sbx_raw(SYS_close_range, 0, ~0U, 0, 0, 0);
	sbx_raw(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	sbx_raw(SYS_capset, (long)&hdr, (long)caps, 0, 0, 0);
	sbx_raw(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* Every signal is blocked (the spawner cloned it so): sleep until
	 * SIGKILL. */
	for (;;)
		sbx_raw(SYS_ppoll, 0, 0, 0, 0, 0);
	return 0;
}

int sbx_pidns_init(void *stack_top, int spawner_pidfd, int own_pidns, pid_t *init,
		   struct sbx_error *err)
{
	uint64_t all = ~0ULL, old;
	int e;

	if (unshare(CLONE_NEWPID) < 0)
		return sbx_error_set(err, "unshare pid", errno);
	/* Born with every signal blocked, glibc's own included: no handler
	 * of the spawner's ever runs on the init's stack. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof(all));
	*init = clone(sbx_pidns_init_main, stack_top, CLONE_VM | SIGCHLD,
		      (void *)(intptr_t)spawner_pidfd);
	e = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof(old));
	if (*init < 0) {
		(void)setns(own_pidns, CLONE_NEWPID);
		return sbx_error_set(err, "clone init", e);
	}
	return 0;
}
