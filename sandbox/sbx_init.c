/*
 * sbx_init.c - a job's PID namespace: its init, and the namespaces the
 * task gets on top of the spawner's view.
 *
 * Theory of operation: every job runs in PID, mount, IPC and UTS
 * namespaces that are not the spawner's: its worker slot's while no job
 * left anything there, else (exec+net tasks, exec tasks that create
 * processes) new PID, mount and UTS ones and its worker slot's IPC
 * namespace. A PID namespace needs a pid 1, and a pid-1
 * process is special: the kernel drops the signals it sends itself that it
 * has no handler for, so a task running as pid 1 could not abort() or
 * raise(), nor an exec'd program die of its own `kill -9 $$`. So the task
 * runs as pid 2 or more under an init of the spawner's. Two shapes:
 *
 * C tasks (sbx_slotns_*): the namespaces are a worker slot's, made once
 * and entered by each of its C-task jobs, because a C task can leave
 * nothing in them: the strict profile lets it create no process or thread
 * (clone, fork), open or create no file (so nothing in /tmp, no device
 * node, no socket), mount nothing, create no IPC object and not set the
 * host name; all it has are the fds it was given. So after one job the
 * namespaces are as they were before it, and making and tearing them down
 * per job (a copy of the view's mount tree, a procfs, an IPC namespace with
 * its mqueue mount, an init to clone, kill and reap: the bulk of what full
 * isolation cost over seccomp only) buys nothing.
 *   1. Made at the slot's first C-task job, in the spawner: it unshares
 *      its PID namespace for children and clones the init - the cheapest
 *      process there is, a clone sharing its memory (CLONE_VM: no page
 *      tables to copy, nothing to tear down at its exit) on a small stack
 *      of the slot's, running raw system calls only, with every signal
 *      blocked: it names itself valetd-init, dies with the spawner
 *      (parent-death signal; a pidfd of the spawner tells whether it died
 *      before that), ignores SIGCHLD, closes every fd, drops every
 *      capability, sets no_new_privs and sleeps until it is killed. Then a
 *      builder, forked into the namespace (pid 2), makes new mount, IPC
 *      and UTS namespaces as an exec task's init does (host name, a /proc
 *      of this PID namespace, a private /tmp), sends their fds and its
 *      root to the spawner and exits; the spawner keeps them, and what
 *      /tmp's directory looks like (its device and size: one more entry
 *      changes the size).
 *   2. Each job: the spawner setns()es its children's PID namespace to the
 *      slot's, forks the task with glibc's _Fork() (the task's copy of
 *      glibc must be right: raise() and abort() depend on it; no atfork
 *      work), which lands there, and goes back to its own. The task, still privileged, joins
 *      the slot's mount namespace (and its root: the spawner's may be a
 *      chroot in it), IPC, UTS and network namespaces, gives /tmp this
 *      job's size when the last job's limit was another, and joins the
 *      slot's cgroups; then sbx_enter().
 *   3. The spawner is the task's parent and reaps it with its rusage: the
 *      task was the job's only process, so the job is over. The slot's
 *      namespaces are made anew (the init killed, the fds closed) when
 *      they may not be as built: after a kill (KILL, deadline: the task may
 *      have died in its setup), an OOM kill, a setup failure, a /tmp that
 *      is not as built, and a change of the view (sbx_view_generation:
 *      a hidden directory covered again, a host unmount followed).
 * The init never gets anything to reap but what the kernel reaps for it.
 * Sharing memory with the spawner gives it nothing the task can reach: it
 * runs as uid 0 without capabilities, the task under another uid can
 * neither signal, trace nor read it, and the spawner held no secret to
 * begin with. A task sees its pid grow from job to job (3, 4, ...): the
 * only trace of earlier jobs, which tells it nothing they did.
 *
 * Exec tasks without network enter their slot's namespaces too
 * (spawner_exec.c: spawner_spawn_exec_in_slotns, exec_task_slot). An exec task can
 * fork and write files, so the slot's namespaces stay only while nothing
 * of a job is left: the spawner looks after each one (sbx_slotns_clean:
 * /tmp's entries and times, /tmp being noatime; sbx_slotns_alone: no
 * process in the slot's /proc but the init; and spawner_left.c: no socket
 * in the slot's network namespace, which the launcher is in), and the next exec task
 * checks its own pid against next_pid before anything else: a job that
 * created processes, gone or not, moved the pids on, which would tell the
 * next job how many it made. A job that left something: the init is
 * killed (sbx_slotns_detach), its exit waits until all the namespace's
 * processes are gone, and the job is over once the spawner has reaped it;
 * the slot's next job gets namespaces made anew, and a task that created
 * processes namespaces of its own per job from then on.
 *
 * The others get new namespaces per job: an exec+net task (its
 * resolv.conf is mounted per job) or one that created processes before.
 * All but the IPC namespace: the exec profiles
 * let a task create no IPC object either, so the slot's exec tasks share
 * one, made once (spawner_exec.c, job_ipcns: a new one per job cost an
 * expedited RCU grace period at its end):
 *   1. the spawner makes a new PID namespace whose init is the same tiny
 *      CLONE_VM clone as a slot's (sbx_pidns_init), for this job alone;
 *   2. the task, whose image is replaced at once, is cloned into the
 *      spawner's own memory with new mount and UTS namespaces
 *      (CLONE_VM | CLONE_VFORK, on a stack in the spawner's frame, as
 *      posix_spawn does) and lands in the new PID namespace as pid 2; the
 *      spawner waits until it has exec'd or died, so nothing it writes
 *      (errno) races the spawner, and no copy of the image is made for it
 *      or torn down at its execve; then the spawner goes back to its own
 *      PID namespace (setns);
 *   3. the task (sbx_exec_ns_enter), still privileged, joins the slot's
 *      IPC namespace for exec tasks and its network namespace (an empty
 *      one, or for profiles that allow network the one its network helper
 *      serves), sets the host name "valet",
 *      mounts a fresh /proc for the new PID namespace, for jobs with
 *      network a resolv.conf naming the helper's DNS forwarder, and a
 *      private tmpfs on /tmp (gone with the mount namespace) with the
 *      directories of the host's /tmp that hold exec task programs bound
 *      read-only at their paths, and joins the slot's cgroups (writes "0"
 *      to their tasks or cgroup.procs; see cgroup.h for which, and why
 *      not CLONE_INTO_CGROUP);
 *      then sbx_enter() and execve;
 *   4. the spawner is the task's parent: it reaps it with its rusage, then
 *      kills the init - and with it whatever is left in the namespace. The
 *      init's exit waits until every other process of the namespace is
 *      gone, so once the spawner has reaped the init, the job is over. A
 *      timeout or a cancel kills the task and the init alike. What the task
 *      leaves behind (setsid, double fork) is the init's: the kernel reaps
 *      what ends before the task (its CPU time is not the job's), the
 *      init's death kills the rest.
 * Either init keeps uid 0 without capabilities: the task, under another
 * uid, can neither signal nor trace it.
 *
 * Async-signal-safe only, as in sbx_child.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

/* The size of a job's private /tmp: its memory limit, or 256 MiB. */
static uint64_t sbx_tmp_kib(uint64_t bytes)
{
	return bytes ? (bytes + 1023) / 1024 : 256 * 1024;
}

/* "size=<kib>k" at o, the private /tmp's mount option. */
/* A job's /tmp: no set-user-ID programs, no devices, no access times. */
#define SBX_TMP_FLAGS (MS_NOSUID | MS_NODEV | MS_NOATIME)

static void sbx_tmp_size_opt(char *o, uint64_t kib)
{
	memcpy(o, "size=", 5);
	memcpy(sbx_utoa(o + 5, kib), "k", 2);
}

static int sbx_init_mounts(const struct sbx_init_params *p, struct sbx_error *err)
{
	uint64_t kib = sbx_tmp_kib(p->tmp_bytes);
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
	memcpy(opts, "mode=1777,", 10);
	sbx_tmp_size_opt(opts + 10, kib);
	/* noatime: a listing of /tmp changes nothing a later job of the slot
	 * could read (sbx_slotns_clean). */
	if (mount("tmpfs", "/tmp", "tmpfs", SBX_TMP_FLAGS, opts) < 0)
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

int sbx_exec_ns_enter(const struct sbx_init_params *p, int ipcns_fd, struct sbx_error *err)
{
	if (setns(ipcns_fd, CLONE_NEWIPC) < 0)
		return sbx_error_set(err, "setns ipc", errno);
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

/*
 * A new PID namespace for this process's children, and its init: a
 * CLONE_VM clone on stack_top (the top of SBX_INIT_STACK bytes that stay
 * the init's until it is reaped) that sleeps until it is killed and dies
 * with the spawner (spawner_pidfd: a pidfd of the spawner, -1 = none). 0
 * with *init, or -errno with *err (and this process back in own_pidns).
 */
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

void sbx_slotns_init(struct sbx_slotns *ns)
{
	*ns = (struct sbx_slotns){.pid = -1, .mnt = -1, .ipc = -1, .uts = -1, .root = -1,
				  .launch_sock = -1, .forker_sock = -1};
}

/* The launcher and the forker go with the namespaces they start tasks in
 * (they are not in their PID namespace: the init's death would not take
 * them along); the forker with its process group, every child it cloned.
 * The spawner's reaping finds them later. */
pid_t sbx_slotns_detach(struct sbx_slotns *ns)
{
	int fds[] = {ns->pid, ns->mnt, ns->ipc, ns->uts, ns->root, ns->launch_sock, ns->forker_sock};
	pid_t init = ns->init;

	if (ns->launcher > 0)
		(void)kill(ns->launcher, SIGKILL);
	if (ns->forker > 0) {
		(void)kill(-ns->forker, SIGKILL);
		(void)kill(ns->forker, SIGKILL); /* before its setsid() */
	}
	if (init > 0)
		(void)kill(init, SIGKILL);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	sbx_slotns_init(ns);
	return init;
}

void sbx_slotns_drop(struct sbx_slotns *ns)
{
	/* The init's exit takes the PID namespace along, once nothing else is
	 * left in it; reaped here, so that its stack is free for the next one.
	 * Only for a namespace with no process but the init: with others its
	 * exit waits for theirs (sbx_slotns_detach). */
	pid_t init = sbx_slotns_detach(ns);

	if (init > 0)
		(void)waitpid(init, NULL, 0);
}

/*
 * The builder: pid 2 of the slot's new PID namespace, a fork of the
 * spawner. It makes the mount, IPC and UTS namespaces as a job's init does
 * for an exec task (host name, a /proc of this PID namespace, a private
 * /tmp with the kept items), sends them (and its root, "/" of the chroot
 * the spawner may be in) to the spawner on sock, and exits: the spawner's
 * fds keep them. A failure sends the sbx_error without fds.
 */
static void __attribute__((noreturn)) sbx_slotns_builder(int sock, const struct sbx_init_params *p)
{
	static const char *const paths[] = {"/proc/self/ns/mnt", "/proc/self/ns/ipc",
					    "/proc/self/ns/uts", "/"};
	struct sbx_init_params q = *p;
	struct sbx_error err = {{0}, 0};
	union {
		char raw[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {&err, sizeof(err)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[4];

	q.net_resolv = false;
	q.netns_fd = -1; /* each job joins its slot's network itself */
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		sbx_error_set(&err, "unshare", errno);
	else
		(void)sbx_job_view(&q, &err);
	for (int i = 0; i < 4 && !err.err; i++)
		if ((fds[i] = open(paths[i],
				   (i == 3 ? O_PATH | O_DIRECTORY : O_RDONLY) | O_CLOEXEC)) < 0)
			sbx_error_set(&err, "open namespace", errno);
	if (!err.err) {
		msg.msg_control = cbuf.raw;
		msg.msg_controllen = sizeof(cbuf.raw);
		CMSG_FIRSTHDR(&msg)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&msg)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&msg)->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&msg)), fds, sizeof(fds));
	}
	_exit(sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 || err.err);
}

/* The builder's answer on sock: the namespaces' fds into ns, or its error. */
static int sbx_slotns_receive(struct sbx_slotns *ns, int sock, struct sbx_error *err)
{
	struct sbx_error got = {{0}, 0};
	union {
		char raw[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {&got, sizeof(got)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf.raw,
			     .msg_controllen = sizeof(cbuf.raw)};
	struct cmsghdr *c;
	ssize_t n;
	int fds[4];

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(got))
		return sbx_error_set(err, "slot namespaces", n < 0 ? errno : EIO);
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds))) {
		*err = got;
		return got.err ? sbx_failed(err) : sbx_error_set(err, "slot namespaces", EIO);
	}
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	ns->mnt = fds[0];
	ns->ipc = fds[1];
	ns->uts = fds[2];
	ns->root = fds[3];
	return 0;
}

/* A stat's atime, mtime and ctime, as struct sbx_slotns keeps them. */
static void sbx_tmp_times(const struct stat *st, int64_t t[3][2])
{
	const struct timespec *ts[3] = {&st->st_atim, &st->st_mtim, &st->st_ctim};

	for (int i = 0; i < 3; i++) {
		t[i][0] = (int64_t)ts[i]->tv_sec;
		t[i][1] = (int64_t)ts[i]->tv_nsec;
	}
}

/* /tmp of the slot's mount namespace, looked at from the spawner's. */
static int sbx_slotns_tmp_stat(const struct sbx_slotns *ns, struct stat *st)
{
	int fd = openat(ns->root, "tmp", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = fd >= 0 && fstat(fd, st) == 0 ? 0 : -errno;

	if (fd >= 0)
		close(fd);
	return rc;
}

int sbx_slotns_build(struct sbx_slotns *ns, void *stack_top, int spawner_pidfd, int own_pidns,
		     const struct sbx_init_params *p, struct sbx_error *err)
{
	struct stat st;
	int sv[2], rc;
	pid_t b;

	sbx_slotns_init(ns);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return sbx_error_set(err, "slot socket", errno);
	rc = sbx_pidns_init(stack_top, spawner_pidfd, own_pidns, &ns->init, err);
	if (rc < 0) {
		ns->init = 0;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	ns->pid = open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
	b = ns->pid < 0 ? -1 : fork();
	if (b == 0) {
		close(sv[0]);
		sbx_slotns_builder(sv[1], p);
	}
	rc = b < 0 ? sbx_error_set(err, "slot builder", errno) : 0;
	close(sv[1]);
	if (!rc) {
		rc = sbx_slotns_receive(ns, sv[0], err);
		(void)waitpid(b, NULL, 0);
	}
	close(sv[0]);
	if (!rc && (rc = sbx_slotns_tmp_stat(ns, &st)) < 0)
		sbx_error_set(err, "slot /tmp", -rc);
	if (rc < 0) {
		sbx_slotns_drop(ns);
		(void)setns(own_pidns, CLONE_NEWPID);
		return rc;
	}
	ns->tmp_kib = sbx_tmp_kib(p->tmp_bytes);
	ns->tmp_size = (int64_t)st.st_size;
	ns->tmp_dev = (uint64_t)st.st_dev;
	sbx_tmp_times(&st, ns->tmp_times);
	ns->next_pid = 3; /* the init is 1, the builder was 2 */
	return 0;
}

bool sbx_slotns_tmp_is(const struct sbx_slotns *ns, uint64_t tmp_bytes)
{
	return sbx_tmp_kib(tmp_bytes) == ns->tmp_kib;
}

void sbx_slotns_started(struct sbx_slotns *ns, uint64_t tmp_bytes)
{
	ns->tmp_kib = sbx_tmp_kib(tmp_bytes);
	ns->next_pid++;
}

int sbx_slotns_fork_into(const struct sbx_slotns *ns, struct sbx_error *err)
{
	if (setns(ns->pid, CLONE_NEWPID) < 0)
		return sbx_error_set(err, "setns pid", errno);
	return 0;
}

int sbx_slotns_enter(const struct sbx_slotns *ns, const struct sbx_init_params *p,
		     struct sbx_error *err)
{
	uint64_t kib = sbx_tmp_kib(p->tmp_bytes);
	char opts[48];

	/* setns() puts the root at the namespace's; the spawner's may be a
	 * chroot in it: the builder's root, kept as ns->root, is. */
	if (setns(ns->mnt, CLONE_NEWNS) < 0)
		return sbx_error_set(err, "setns mount", errno);
	if (fchdir(ns->root) < 0 || chroot(".") < 0)
		return sbx_error_set(err, "slot root", errno);
	if (setns(ns->ipc, CLONE_NEWIPC) < 0 || setns(ns->uts, CLONE_NEWUTS) < 0)
		return sbx_error_set(err, "setns ipc/uts", errno);
	if (p->netns_fd >= 0 && setns(p->netns_fd, CLONE_NEWNET) < 0)
		return sbx_error_set(err, "setns net", errno);
	/* Another memory limit than the last job's: /tmp follows (it is empty:
	 * a C task cannot write to it, and after an exec task that did the
	 * namespaces were made anew). */
	if (kib != ns->tmp_kib) {
		sbx_tmp_size_opt(opts, kib);
		if (mount(NULL, "/tmp", NULL, MS_REMOUNT | SBX_TMP_FLAGS, opts) < 0)
			return sbx_error_set(err, "remount /tmp", errno);
	}
	return sbx_cgroup_join(p->join_fds, p->njoin, err);
}

/*
 * /tmp as built: the same file system, the same entries (a tmpfs
 * directory's size counts them), and its times untouched - a file made and
 * removed again changes the mtime and ctime, which the next job could read.
 * (Listings change no atime: /tmp is mounted noatime.)
 */
bool sbx_slotns_clean(const struct sbx_slotns *ns)
{
	int64_t t[3][2];
	struct stat st;

	if (sbx_slotns_tmp_stat(ns, &st) < 0)
		return false;
	sbx_tmp_times(&st, t);
	return (int64_t)st.st_size == ns->tmp_size && (uint64_t)st.st_dev == ns->tmp_dev &&
	       memcmp(t, ns->tmp_times, sizeof(t)) == 0;
}

/*
 * No process in the slot's PID namespace but its init: the namespace's
 * /proc lists one directory, "1", among its files (self, sys, ...). Read
 * from the spawner through the slot's root; a /proc that cannot be read
 * counts as not alone.
 */
bool sbx_slotns_alone(const struct sbx_slotns *ns)
{
	char buf[4096] __attribute__((aligned(8)));
	bool alone = true;
	ssize_t n;
	int fd = openat(ns->root, "proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return false;
	/* getdents64() into a buffer on the stack: readdir() would allocate. */
	while (alone && (n = getdents64(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *d = (const void *)(buf + off);

			if (d->d_name[0] >= '0' && d->d_name[0] <= '9' &&
			    strcmp(d->d_name, "1") != 0)
				alone = false;
			off += d->d_reclen;
		}
	}
	if (n < 0)
		alone = false;
	close(fd);
	return alone;
}
