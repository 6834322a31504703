/*
 * sbx_child.c - entering the sandbox, in a freshly forked job child.
 *
 * Theory of operation: sbx_enter() runs between fork() and the task. Each
 * step either succeeds or names itself in struct sbx_error and stops; the
 * caller then calls sbx_fail(), which reports the error as a
 * FRAME_SETUP_ERROR frame and _exit()s with 126. The order matters:
 *
 *   1. signals: every disposition back to SIG_DFL, then unblock all (the
 *      parent may fork with signals blocked and handlers installed);
 *   2. setsid(): own session and process group, no controlling terminal;
 *   3. PR_SET_PDEATHSIG(SIGKILL), then check that the parent did not die
 *      before that (getppid() != expected_parent);
 *   4. fds: 0 stdin (or /dev/null), 1 stdout, 2 stderr, 3 frame channel
 *      (and 4, a slot's forker's socket); everything else closed;
 *   5. chdir(workdir), unless it is NULL (the spawner is in "/" already);
 *   6. rlimits: core 0 always, then the configured ones (soft = hard);
 *   7. drop to the unprivileged user, and check root cannot be regained;
 *      every capability is cleared, also when there is no user to switch
 *      to (a daemon may hold capabilities without being able to switch);
 *   8. no_new_privs;
 *   9. the SIGSYS reporter (strict profile);
 *  10. the seccomp filter, last, so that every step above may still use
 *      system calls the task is not allowed; then (strict) the program's
 *      pages are unmapped, since its traps carry a secret (sbx_sigsys).
 *
 * Only async-signal-safe calls: no malloc, no stdio, no locks, since the
 * parent may be multi-threaded. (sbx_share_code() is the exception: the
 * spawner calls it once, at setup, so that its children fault less.)
 * Credentials are changed with raw system calls: the child has one
 * thread, so the per-thread system calls are the whole story, and glibc's
 * set*id() wrappers (which broadcast to every thread under an internal
 * lock) stay out of the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "frame.h"
#include "sandbox.h"

/* Same number on every architecture (the unified syscall table, 5.9). */
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* si_code of a seccomp trap (linux/siginfo.h; not in every glibc). */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

/* Temporary fds are moved at or above this before dup2 into 0..3. */
#define SBX_FD_SCRATCH 10

/*
 * True once the frame channel sits on SBX_FD_FRAME; the caller's frame_fd
 * may already be closed then, so sbx_fail() writes to fd 3. Only ever set
 * in the child, which has its own copy of this variable: thread-local, so
 * that it lives next to errno on a page the child writes anyway, not on a
 * data page of its own (each page a forked child writes is a page fault).
 */
static __thread volatile sig_atomic_t sbx_frame_moved;

#if defined(__SANITIZE_ADDRESS__)
#define SBX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SBX_ASAN 1
#endif
#endif

int sbx_error_set(struct sbx_error *err, const char *step, int e)
{
	size_t n = strlen(step);

	if (n >= sizeof(err->step))
		n = sizeof(err->step) - 1;
	memcpy(err->step, step, n);
	memset(err->step + n, 0, sizeof(err->step) - n);
	err->err = e > 0 ? e : EIO;
	return -err->err;
}

/* struct kernel_sigaction: what rt_sigaction(2) takes, for raw calls. */
struct sbx_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

int sbx_signal_disposition(int sig)
{
	struct sbx_ksigaction old;

	if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(old.mask)) < 0)
		return -1;
	return old.handler == (void *)SIG_DFL ? 0 : 1;
}

/*
 * Raw rt_sigaction: glibc's sigaction() refuses its own signals (32 and 33,
 * SIGCANCEL and SIGSETXID), but an ignored one is inherited across execve
 * all the same, so those are reset too.
 */
static int sbx_signals(const uint64_t *changed, struct sbx_error *err)
{
	struct sbx_ksigaction dfl = {0}; /* SIG_DFL, no flags, empty mask */
	uint64_t none = 0;
	int sig;

	/* SIGKILL and SIGSTOP refuse; that is fine. */
	for (sig = 1; sig < NSIG && sig <= 64; sig++)
		if (!changed || (*changed & (1ULL << (sig - 1))))
			(void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
	/* Raw too: glibc's sigprocmask() and sigemptyset() are two more pages
	 * of code to fault in, for one system call. */
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none)) < 0)
		return sbx_error_set(err, "sigprocmask", errno);
	return 0;
}

static int sbx_parent_death(const struct sbx_params *p, struct sbx_error *err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return sbx_error_set(err, "pdeathsig", errno);
	/* The parent may have died before the prctl: then nobody kills us.
	 * (A child whose parent is outside its PID namespace sees 0, and 1
	 * once it was handed to the namespace's init.) */
	if (p->expected_parent >= 0 && getppid() != p->expected_parent)
		return sbx_error_set(err, "pdeathsig", ESRCH);
	return 0;
}

/*
 * Put the four channels on 0..3. A source may already sit on a target
 * number, or two sources may be the same fd (stdout == stderr), so first
 * every source is duplicated above SBX_FD_SCRATCH, then the copies are
 * dup2'd down. The frame channel goes first so that a failure after that
 * point is still reported on fd 3. dup2/dup3 leave FD_CLOEXEC clear (or set
 * it with O_CLOEXEC); close_range() then drops the copies and everything
 * the parent leaked - unless !close_rest: a launched task's other fds and
 * copies are all close-on-exec (and its filter has no close_range).
 */
static int sbx_fds(const struct sbx_params *p, bool close_rest, struct sbx_error *err)
{
	int src[5], tmp[5], n = p->keep_fd > 0 ? 5 : 4;
	bool low = false;
	int i;

	src[0] = p->stdin_fd >= 0 ? p->stdin_fd : p->devnull_fd;
	src[1] = p->stdout_fd;
	src[2] = p->stderr_fd;
	src[3] = p->frame_fd;
	src[4] = p->keep_fd;
	for (i = 0; i < n; i++) {
		if (src[i] < 0)
			return sbx_error_set(err, "fds", EBADF);
		low |= src[i] <= SBX_FD_FRAME + (n - 4);
	}
	/* Sources above the targets (the spawner's always are) go straight
	 * down; dup2/dup3 onto a different number clear FD_CLOEXEC. */
	for (i = 0; i < n; i++) {
		tmp[i] = low ? fcntl(src[i], F_DUPFD_CLOEXEC, SBX_FD_SCRATCH) : src[i];
		if (tmp[i] < 0)
			return sbx_error_set(err, "dup", errno);
	}
	if (dup3(tmp[3], SBX_FD_FRAME, p->frame_cloexec ? O_CLOEXEC : 0) < 0)
		return sbx_error_set(err, "dup2", errno);
	sbx_frame_moved = 1;
	for (i = 0; i < 3; i++)
		if (dup2(tmp[i], i) < 0)
			return sbx_error_set(err, "dup2", errno);
	if (n == 5 && dup3(tmp[4], SBX_FD_KEEP, O_CLOEXEC) < 0)
		return sbx_error_set(err, "dup2", errno);

	if (!close_rest || syscall(SYS_close_range, (unsigned)n, ~0U, 0U) == 0)
		return 0;
	if (errno != ENOSYS)
		return sbx_error_set(err, "close_range", errno);
	/* Kernels before 5.9: close every possible fd up to the limit. */
	{
		struct rlimit rl;
		rlim_t fd, max = 65536;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
			max = rl.rlim_max;
		for (fd = (rlim_t)n; fd < max; fd++)
			(void)close((int)fd);
	}
	return 0;
}

static int sbx_rlimit2(int resource, uint64_t soft, uint64_t hard, const char *step,
		       struct sbx_error *err)
{
	struct rlimit rl = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};

	if (setrlimit(resource, &rl) < 0)
		return sbx_error_set(err, step, errno);
	return 0;
}

static int sbx_rlimit(int resource, uint64_t value, const char *step, struct sbx_error *err)
{
	return sbx_rlimit2(resource, value, value, step, err);
}

static int sbx_rlimits(const struct sbx_limits *l, struct sbx_error *err)
{
	if (sbx_rlimit(RLIMIT_CORE, 0, "setrlimit CORE", err) < 0)
		return sbx_failed(err);
#ifndef SBX_ASAN
	/* Not under AddressSanitizer: its shadow memory reserves terabytes of
	 * address space up front, so any sane RLIMIT_AS kills the test child. */
	if (l->memory_bytes && sbx_rlimit(RLIMIT_AS, l->memory_bytes, "setrlimit AS", err) < 0)
		return sbx_failed(err);
#endif
	/* At the limit the kernel sends SIGXCPU, which ends the task; a task
	 * that handles SIGXCPU is killed a second later. The supervisor knows
	 * the limit by that signal and a CPU time near the limit - not the
	 * limit exactly: the rusage of a busy VM's child can read a sixth
	 * below what the kernel counted (supervisor/outcome.c). */
	if (l->cpu_seconds &&
	    sbx_rlimit2(RLIMIT_CPU, l->cpu_seconds, l->cpu_seconds + 1, "setrlimit CPU", err) < 0)
		return sbx_failed(err);
	if (l->max_files && sbx_rlimit(RLIMIT_NOFILE, l->max_files, "setrlimit NOFILE", err) < 0)
		return sbx_failed(err);
	if (l->max_processes &&
	    sbx_rlimit(RLIMIT_NPROC, l->max_processes, "setrlimit NPROC", err) < 0)
		return sbx_failed(err);
	if (l->max_file_size &&
	    sbx_rlimit(RLIMIT_FSIZE, l->max_file_size, "setrlimit FSIZE", err) < 0)
		return sbx_failed(err);
	return 0;
}

static int sbx_clear_caps(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	return (int)syscall(SYS_capset, &hdr, data);
}

/*
 * Clear the ambient set, then permitted, effective and inheritable. Leaving
 * root clears them too, but a daemon that started as an unprivileged user
 * with ambient capabilities (valetd.service runs as `valet` with CAP_SETUID
 * and friends) keeps them across setresuid, and one that cannot switch
 * users at all may still hold some.
 */
static int sbx_drop_caps(struct sbx_error *err)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return sbx_error_set(err, "cap_ambient", errno);
	if (sbx_clear_caps() < 0)
		return sbx_error_set(err, "capset", errno);
	return 0;
}

static int sbx_drop_user(const struct sbx_params *p, struct sbx_error *err)
{
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		return sbx_error_set(err, "setgroups", errno);
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		return sbx_error_set(err, "setgid", errno);
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		return sbx_error_set(err, "setuid", errno);
	if (sbx_drop_caps(err) < 0)
		return sbx_failed(err);
	if (p->uid != 0 && syscall(SYS_setuid, 0) == 0)
		return sbx_error_set(err, "setuid(0) succeeded", EPERM);
	/*
	 * The kernel clears the parent-death signal when the euid changes
	 * (commit_creds), so set it again and re-check the parent.
	 */
	return sbx_parent_death(p, err);
}

int sbx_enter_launched(const struct sbx_params *p, struct sbx_error *err)
{
	if (setsid() < 0)
		return sbx_error_set(err, "setsid", errno);
	if (sbx_parent_death(p, err) < 0 || sbx_fds(p, false, err) < 0 ||
	    sbx_rlimits(&p->limits, err) < 0)
		return sbx_failed(err);
	return 0;
}

/*
 * SIGSYS reporter for the strict profile (default action TRAP). Report the
 * blocked system call on the frame channel, then die by SIGSYS: the handler
 * calls rt_sigaction(SIGSYS, SIG_DFL), which the strict filter answers with
 * KILL_PROCESS, so the wait status says "killed by SIGSYS" exactly as for a
 * filter kill, and no code path resumes the task. Called raw: libc's
 * sigaction() might do more than one system call.
 *
 * The reporter is code in the task's process, so the task can write the
 * same frame itself (or block SIGSYS, so that the kernel kills without
 * running this). What makes the report believable is si_errno: the filter's
 * SECCOMP_RET_DATA, a secret of the daemon's compiled into the program's
 * traps (supervisor/filter.c), which only the kernel puts in a trap's
 * siginfo. The task never gets to read it: the program is unmapped once
 * loaded (sbx_enter), and after a trap the task never runs again.
 */
static void sbx_sigsys(int sig, siginfo_t *info, void *uctx)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} dfl = {0}; /* struct kernel_sigaction, handler SIG_DFL (0) */
	struct frame_syscall rep = {.nr = info->si_syscall, .trap_data = info->si_errno};
	sigset_t sys;

	/* Only the kernel's seccomp trap carries a syscall number; a SIGSYS
	 * the task sent itself (tgkill) ends the same way, without a name. */
	if (info->si_code == SYS_SECCOMP)
		(void)frame_write(SBX_FD_FRAME, FRAME_SYSCALL, 0, &rep, sizeof(rep));
	syscall(SYS_rt_sigaction, SIGSYS, &dfl, NULL, sizeof(dfl.mask));
	/* Not reached under the strict filter; without one, end the same way. */
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	raise(SIGSYS);
	sigprocmask(SIG_UNBLOCK, &sys, NULL);
	_exit(128 + SIGSYS);
}

static int sbx_install_reporter(struct sbx_error *err)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sbx_sigsys;
	sa.sa_flags = SA_SIGINFO;
	/* Nothing may interrupt the report (no handler can longjmp out). */
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return sbx_error_set(err, "sigaction SIGSYS", errno);
	return 0;
}

static int sbx_load_filter(const struct sbx_filter *f, struct sbx_error *err)
{
	struct sock_fprog prog = {.len = f->len, .filter = f->insns};

	if (f->insns == NULL || f->len == 0)
		return sbx_error_set(err, "seccomp", EINVAL);
	/*
	 * SPEC_ALLOW: do not force the Speculative Store Bypass mitigation on
	 * the task. It guards code that shares an address space with untrusted
	 * code (browser sandboxes); here the boundary is the process itself,
	 * and the mitigation costs a control-register write at every context
	 * switch and slows CPU-bound tasks a lot (crun and runc make the same
	 * choice by default). Kernels before 4.17 reject the flag: retry.
	 */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) == 0)
		return 0;
	if (errno == EINVAL && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
		return 0;
	return sbx_error_set(err, "seccomp", errno);
}

int sbx_enter(const struct sbx_params *p, struct sbx_error *err)
{
	if (sbx_signals(p->changed_signals, err) < 0)
		return sbx_failed(err);
	if (setsid() < 0)
		return sbx_error_set(err, "setsid", errno);
	if (sbx_parent_death(p, err) < 0)
		return sbx_failed(err);
	if (sbx_fds(p, true, err) < 0)
		return sbx_failed(err);
	if (p->workdir && chdir(p->workdir) < 0)
		return sbx_error_set(err, "chdir", errno);
	if (sbx_rlimits(&p->limits, err) < 0)
		return sbx_failed(err);
	if (p->drop_user ? sbx_drop_user(p, err) < 0 : sbx_drop_caps(err) < 0)
		return sbx_failed(err);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sbx_error_set(err, "no_new_privs", errno);
	if (p->trap_sigsys && sbx_install_reporter(err) < 0)
		return sbx_failed(err);
	if (p->filter && sbx_load_filter(p->filter, err) < 0)
		return sbx_failed(err);
	/* The kernel has its copy now. A task that runs in this process must
	 * not read the program: its traps carry the daemon's secret (the
	 * reporter above). An exec task's execve drops it anyway. */
	if (p->trap_sigsys && p->filter && p->filter->mapped)
		(void)munmap(p->filter->insns, (size_t)p->filter->len * sizeof(struct sock_filter));
	return 0;
}

/*
 * fork() copies the page-table entries of a mapping only when the mapping
 * has anonymous pages (an anon_vma): a file mapping never written to - the
 * code and read-only data of the program and its libraries - is left for
 * the child to fault in again, page window by page window, as it runs. On a
 * VM that shadows page tables each such fault costs as much as copying
 * hundreds of entries: a seccomp-only job child took some 15 of them. So
 * each such mapping here gets one anonymous page: the first byte is written
 * back unchanged through /proc/self/mem, which breaks copy-on-write like a
 * debugger's breakpoint does, without ever making the mapping writable.
 * The page's content stays the same, and the rest of the mapping stays
 * shared with the page cache. Without /proc, or where the kernel refuses
 * such writes, nothing changes.
 */
int sbx_share_code(void)
{
	char line[512];
	FILE *maps = fopen("/proc/self/maps", "re");
	int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	int rc = 0;

	if (!maps || mem < 0) {
		rc = -errno;
		goto out;
	}
	while (fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perms[8], path[2];
		unsigned char b;

		/* Private, not writable, backed by a file ("/..."). */
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %1s", &lo, &hi, perms, path) < 4 ||
		    path[0] != '/' || perms[1] != '-' || perms[3] != 'p')
			continue;
		if (pread(mem, &b, 1, (off_t)lo) != 1 || pwrite(mem, &b, 1, (off_t)lo) != 1)
			rc = -EIO;
	}
out:
	if (maps)
		fclose(maps);
	if (mem >= 0)
		close(mem);
	return rc;
}

void sbx_fail(int frame_fd, const struct sbx_error *err)
{
	if (sbx_frame_moved)
		frame_fd = SBX_FD_FRAME;
	(void)frame_write(frame_fd, FRAME_SETUP_ERROR, 0, err, sizeof(*err));
	_exit(126);
}

void sbx_filter_release(struct sbx_filter *f)
{
	if (f == NULL)
		return;
	if (f->mapped && f->insns)
		munmap(f->insns, (size_t)f->len * sizeof(struct sock_filter));
	else
		free(f->insns);
	f->mapped = false;
	f->insns = NULL;
	f->len = 0;
}
