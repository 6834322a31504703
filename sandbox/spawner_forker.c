/*
 * spawner_forker.c - a worker slot's forker: a process already in the
 * sandbox of the slot's C tasks - the slot's pipes on fds 0-3, its
 * rlimits, its user, no capability, no_new_privs, the strict filter - that
 * forks the slot's warm C-task children, so that each inherits all of it
 * instead of entering the sandbox itself.
 *
 * Theory of operation. Entering the sandbox costs a job child most in its
 * seccomp filter: the kernel compiles the program at the attach (the JIT
 * image goes through text_poke) and frees it again at the child's exit,
 * some 350-750 us of CPU per job on a VM that shadows page tables, a third
 * of a seccomp-only job. A filter is inherited at fork, and then costs
 * nothing. But the strict profile allows no fork: a C task must not make
 * processes. So the forker's program (SBX_FILTER_FORKER: strict, plus one
 * clone rule; supervisor/policy.c) allows clone() with exactly
 * SBX_FORKER_CLONE_FLAGS, and only when its tls argument - which the kernel
 * ignores without CLONE_SETTLS - is a secret of 64 random bits:
 *
 *   - the forker draws the secret (getrandom, into a thread-local word of
 *     its own), puts it in place of the placeholder the daemon compiled
 *     (SBX_FORKER_PLACEHOLDER: exactly one instruction for each half, or
 *     no forker), loads that copy of the program as it enters the sandbox
 *     (sbx_enter: the slot's fds, its socket on fd 4, the job limits, the
 *     uid, the filter; its setup errors go to the spawner, never to the
 *     slot's frame channel), wipes the copy and unmaps the programs it was
 *     forked with (their traps carry the daemon's other secret, sbx_child.c);
 *   - per warm child, the spawner writes one byte to the forker's socket;
 *     the forker clones the child (forker_clone: the secret goes from its
 *     word into the register by the instruction itself, and the register is
 *     cleared after the call, in both processes), and answers with its pid,
 *     which is the spawner's child (CLONE_PARENT) to reap and to kill, as
 *     any other job child;
 *   - the child wipes its copy of the secret first, closes the socket,
 *     sets its parent-death signal and checks its parent, then waits for
 *     its input on the slot's stdin pipe, as a warm child forked by the
 *     spawner does (spawner_warm_main), and runs its task.
 * A task thus runs under the forker's program but does not know the
 * secret: a clone() it makes traps, and ends it, as under strict 1 - one
 * guess of 64 bits. x86-64 only (the clone stub is its system call
 * convention); elsewhere, and whenever a forker cannot serve, the spawner
 * forks the child itself.
 *
 * What could reach the forker: it runs as the slot's uid, so without PID
 * namespaces a task of the slot could signal it by pid (tgkill), stop it
 * or kill it; with them it is no process of their PID namespace, as the
 * exec launcher (spawner_launch.c). So the spawner never waits long on
 * it (FORKER_ANSWER_MS). A forker that does not answer in time, or
 * answers anything but a pid, is killed with its process group - every
 * child it cloned is in it (a C task cannot leave it), so no second
 * reader is left on the slot's pipes - and the slot goes without one for
 * FORKER_PAUSE_MS; one found gone (its socket closed) is replaced at once.
 * A task can thus cost its slot's next job a short wait, nothing more.
 *
 * A forker is made anew when the slot's pipes, its network namespace or
 * the job limits are not those it holds (forker_key_of), and after it
 * cloned about a millisecond of CPU per clone's worth of half a CPU limit
 * (its rlimits are the job's: RLIMIT_CPU counts its own time too); it
 * goes with the slot's namespaces (sbx_slotns_detach) and the spawner
 * (parent-death signal). It counts in the slot's processes: its
 * RLIMIT_NPROC and the pids cgroup (spawner_slot_processes) get one more,
 * and its few pages are in the slot's memory cgroup. Jobs that get no
 * warm child (other limits), cgroups without namespaces (each job's end
 * empties the slot's cgroup, spawner.c's reaped()) and other architectures
 * go the spawner's way, a fork per child.
 */
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawner_internal.h"

/* How long the spawner waits for a forker's pid: a clone of a small
 * process (about a millisecond), but a busy host may be slow to run it.
 * All else the spawner does waits meanwhile, a deadline's kill too. */
#define FORKER_ANSWER_MS 100
/* ...for its READY: a fork and the sandbox's setup. */
#define FORKER_READY_MS 2000
/* A slot whose forker failed goes without one this long. */
#define FORKER_PAUSE_MS 5000

/* The secret: set in a forker only, wiped by each of its children.
 * Thread-local: on the page of errno, which a child writes anyway. */
static __thread uint64_t forker_secret;

/* Where glibc keeps a thread's id in its thread descriptor (what
 * libthread_db reads: a {bits, count, offset} descriptor); 0 = unknown,
 * and no forker. A raw clone must write the child's id there itself
 * (CLONE_CHILD_SETTID), as _Fork() does, or raise() and abort() in the
 * child would name the forker's thread. */
static size_t forker_tid_offset;
static bool forker_off; /* cannot work here: the spawner forks */

#if defined(__x86_64__)
/*
 * clone(SBX_FORKER_CLONE_FLAGS, 0, NULL, ctid, secret): the secret is read
 * from its word by the instruction that loads the register, so no other
 * copy of it is made, and r8 is cleared right after the call (also in the
 * child, whose registers are the forker's). r9 is cleared too: nothing in
 * the child holds a value of the forker's it did not need.
 */
static long forker_clone(pid_t *ctid)
{
	register long r10 __asm__("r10") = (long)ctid;
	long ret;

	__asm__ volatile("movq %[secret], %%r8\n\t"
			 "syscall\n\t"
			 "xorl %%r8d, %%r8d\n\t"
			 "xorl %%r9d, %%r9d"
			 : "=a"(ret)
			 : "0"((long)SYS_clone), "D"((long)SBX_FORKER_CLONE_FLAGS), "S"(0L),
			   "d"(0L), "r"(r10), [secret] "m"(forker_secret)
			 : "rcx", "r8", "r9", "r11", "memory");
	return ret;
}
#define FORKER_ARCH_OK 1
#else
static long forker_clone(pid_t *ctid)
{
	(void)ctid;
	return -ENOSYS;
}
#define FORKER_ARCH_OK 0
#endif

/* Once, in the spawner: where the thread id is, checked against gettid(). */
static bool forker_usable(void)
{
	const uint32_t *d;

	if (forker_off)
		return false;
	if (forker_tid_offset)
		return true;
	d = dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid");
	if (!FORKER_ARCH_OK || !d || d[0] != 8 * sizeof(pid_t) || d[2] == 0 ||
	    *(pid_t *)((char *)pthread_self() + d[2]) != gettid()) {
		forker_off = true;
		return false;
	}
	forker_tid_offset = d[2];
	return true;
}

/*
 * The forker's program: a copy of SBX_FILTER_FORKER with the secret in
 * place of the placeholder (each half in exactly one comparison, else
 * -EPROTO). The copy is malloc'd; the caller wipes and frees it.
 */
static int forker_program(struct sbx_filter *out)
{
	const struct sbx_filter *f = &spawner_sp.opts->filters[SBX_FILTER_FORKER];
	const uint32_t hi = (uint32_t)(SBX_FORKER_PLACEHOLDER >> 32);
	const uint32_t lo = (uint32_t)SBX_FORKER_PLACEHOLDER;
	size_t size = (size_t)f->len * sizeof(struct sock_filter);
	struct sock_filter *insns;
	unsigned nhi = 0, nlo = 0;

	if (!f->insns || !f->len || !(insns = malloc(size)))
		return -ENOMEM;
	memcpy(insns, f->insns, size);
	for (unsigned i = 0; i < f->len; i++) {
		if (insns[i].code != (BPF_JMP | BPF_JEQ | BPF_K))
			continue;
		if (insns[i].k == hi && ++nhi)
			insns[i].k = (uint32_t)(*(volatile uint64_t *)&forker_secret >> 32);
		else if (insns[i].k == lo && ++nlo)
			insns[i].k = (uint32_t)*(volatile uint64_t *)&forker_secret;
	}
	out->insns = insns;
	out->len = f->len;
	out->mapped = false;
	if (nhi != 1 || nlo != 1)
		return -EPROTO;
	return 0;
}

#if FORKER_ARCH_OK
/* A system call of up to two arguments without libc: see forker_child(). */
static inline long forker_sys(long nr, long a, long b)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
}
#else
#define forker_sys(nr, a, b) syscall((nr), (a), (b))
#endif

/*
 * In a forker's child: never returns. Raw system calls and a plain store:
 * each page of code the child touches first costs a fault on a VM that
 * shadows page tables, and the libc functions for these would be pages
 * of their own, which its task may never touch.
 */
static void __attribute__((noreturn)) forker_child(pid_t parent)
{
	char name[16] = {'v', 'a', 'l', 'e', 't', 'd', '-', 'j', 'o', 'b'};

	*(volatile uint64_t *)&forker_secret = 0;
	forker_sys(SYS_close, SBX_FD_KEEP, 0);
	/* As every job child: ps tells it apart. */
	forker_sys(SYS_prctl, PR_SET_NAME, (long)name);
	/* The parent-death signal is not inherited; the parent is the
	 * spawner (CLONE_PARENT), which may have died before this. */
	if (forker_sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL) != 0 ||
	    forker_sys(SYS_getppid, 0, 0) != parent)
		_exit(125);
	spawner_warm_main();
}

/* A forker's setup failed: why, to the spawner (never to the slot's frame
 * channel, which is the daemon's). */
static void __attribute__((noreturn)) forker_fail(int sock, const struct sbx_error *err)
{
	(void)!write(sock, err, sizeof(*err));
	_exit(126);
}

/* The forker, forked: into the slot's namespaces (ip; none: NULL) and the
 * sandbox, then one clone per byte. */
static void __attribute__((noreturn)) forker_main(const struct spawn_req *req, const int *fds,
						  int sock, const struct sbx_init_params *ip)
{
	const struct spawner_setup *o = spawner_sp.opts;
	struct sbx_slotns *ns = &spawner_sp.slots[req->slot].ns;
	struct sbx_filter prog = {0};
	struct sbx_params p = {
	    .frame_fd = fds[0],
	    .stdout_fd = fds[1],
	    .stderr_fd = fds[1],
	    .stdin_fd = fds[2],
	    .keep_fd = sock,
	    .devnull_fd = spawner_sp.devnull,
	    .expected_parent = spawner_sp.self,
	    .drop_user = o->drop_user,
	    .uid = slot_uid(req->slot),
	    .gid = slot_gid(req->slot),
	    .limits = req->limits,
	    .filter = &prog,
	    .trap_sigsys = true,
	    .changed_signals = &spawner_sp.changed_signals,
	};
	char name[16] = {'v', 'a', 'l', 'e', 't', 'd', '-', 'f', 'o', 'r', 'k', 'e', 'r'};
	/* Its children's parent is the spawner, outside their PID namespace
	 * when they have one (getppid() is 0 there). */
	pid_t parent = ip ? 0 : spawner_sp.self;
	pid_t *tid = (pid_t *)((char *)pthread_self() + forker_tid_offset);
	struct sbx_error err = {{0}, 0};
	int rc;

	prctl(PR_SET_NAME, name);
	/* As spawner_child_main(): with a memory cgroup, the address space is
	 * only a backstop; one process more of the slot's: this one. */
	if (cg_of(req->slot) && p.limits.memory_bytes)
		p.limits.memory_bytes *= 4;
	if (p.limits.max_processes)
		p.limits.max_processes += 1 + (ns->launcher > 0);
	if (getrandom(&forker_secret, sizeof(forker_secret), 0) != sizeof(forker_secret)) {
		sbx_error_set(&err, "getrandom", errno);
		forker_fail(sock, &err);
	}
	if ((rc = forker_program(&prog)) < 0) {
		sbx_error_set(&err, "forker program", -rc);
		forker_fail(sock, &err);
	}
	/* The programs as the spawner holds them: strict's traps carry the
	 * daemon's secret, and no child of this process may read them. */
	for (int i = 0; i < SBX_NFILTERS; i++)
		if (o->filters[i].mapped)
			(void)munmap(o->filters[i].insns,
				     (size_t)o->filters[i].len * sizeof(struct sock_filter));
	/* Its children into the slot's PID namespace, itself into the rest
	 * and the slot's cgroups (the exec launcher's way). */
	if (ip && (sbx_slotns_fork_into(ns, &err) < 0 || sbx_slotns_enter(ns, ip, &err) < 0))
		forker_fail(sock, &err);
	/* Until sbx_enter() moved it to SBX_FD_KEEP (and closed the rest),
	 * the socket is sock; fd 4 may be any of the spawner's. */
	if (sbx_enter(&p, &err) < 0)
		forker_fail(fcntl(sock, F_GETFD) >= 0 ? sock : SBX_FD_KEEP, &err);
	explicit_bzero(prog.insns, (size_t)prog.len * sizeof(struct sock_filter));
	free(prog.insns);
	/* READY: a pid of 0. */
	rc = 0;
	if (write(SBX_FD_KEEP, &rc, sizeof(rc)) != sizeof(rc))
		_exit(0);
	for (;;) {
		char c;
		ssize_t n = read(SBX_FD_KEEP, &c, 1);
		long pid;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		pid = forker_clone(tid);
		if (pid == 0)
			forker_child(parent);
		rc = (int)pid; /* the pid, or -errno */
		if (write(SBX_FD_KEEP, &rc, sizeof(rc)) != sizeof(rc))
			_exit(0);
	}
}

/* An int from the forker on sock within ms: 0, or -errno (-EPIPE: gone). */
static int forker_recv(int sock, int ms, int *v)
{
	struct pollfd pf = {sock, POLLIN, 0};
	int64_t end = now_ns() + (int64_t)ms * 1000000;
	char buf[sizeof(struct sbx_error)];

	for (;;) {
		int left = (int)((end - now_ns()) / 1000000);
		int rc = poll(&pf, 1, left > 0 ? left : 0);
		ssize_t n;

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == (ssize_t)sizeof(int)) {
			memcpy(v, buf, sizeof(int));
			return 0;
		}
		if (n == (ssize_t)sizeof(struct sbx_error)) {
			struct sbx_error e;

			memcpy(&e, buf, sizeof(e));
			e.step[sizeof(e.step) - 1] = '\0';
			dprintf(2, "valetd: a worker slot's forker cannot start: %s: %s; its "
				   "children are forked by the spawner\n", e.step, strerror(e.err));
			return -EPROTO;
		}
		return n < 0 ? -errno : n == 0 ? -EPIPE : -EPROTO;
	}
}

/* The slot's forker must go: it and every child it cloned (its process
 * group), reaped later by reap() as pids of no slot. failed: and the slot
 * goes without one for a while. */
static void forker_drop(struct slot *s, bool failed)
{
	if (s->ns.forker > 0) {
		(void)kill(-s->ns.forker, SIGKILL);
		(void)kill(s->ns.forker, SIGKILL); /* before its setsid() */
	}
	spawner_forker_gone(&s->ns);
	s->forker_clones = 0;
	if (failed)
		s->forker_pause_until = now_ns() + (int64_t)FORKER_PAUSE_MS * 1000000;
}

void spawner_forker_gone(struct sbx_slotns *ns)
{
	if (ns->forker_sock >= 0)
		close(ns->forker_sock);
	ns->forker = 0;
	ns->forker_sock = -1;
}

/* What a forker for this job must have been made with: the pipes behind
 * the START's fds (frame, output, stdin), the network namespace and the
 * job limits. */
static void forker_key_of(const struct spawn_req *req, const int *fds, int netns,
			  struct forker_key *k)
{
	struct stat st;

	memset(k, 0, sizeof(*k));
	for (int i = 0; i < 3; i++)
		k->ino[i] = fstat(fds[i], &st) == 0 ? st.st_ino : 0;
	k->netns = netns >= 0 && fstat(netns, &st) == 0 ? st.st_ino : 0;
	k->limits = req->limits;
}

static int forker_start(const struct spawn_req *req, const int *fds,
			const struct sbx_init_params *ip, const struct forker_key *key)
{
	struct slot *s = &spawner_sp.slots[req->slot];
	struct cg_slot *cg = cg_of(req->slot);
	int sv[2], rc, v = -1;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = _Fork(); /* see spawner.c's clone_child() */
	if (pid == 0)
		forker_main(req, fds, sv[1], ip);
	rc = pid < 0 ? -errno : 0;
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		return rc;
	}
	s->ns.forker = pid;
	s->ns.forker_sock = sv[0];
	s->forker_key = *key;
	s->forker_clones = 0;
	if ((rc = forker_recv(sv[0], FORKER_READY_MS, &v)) < 0 || v != 0) {
		forker_drop(s, true);
		return rc < 0 ? rc : -EPROTO;
	}
	/* One process more in the slot's pids cgroup (spawner_slot_processes). */
	if (cg && (rc = cg_slot_limit(cg, req->limits.memory_bytes,
				      spawner_slot_processes(req))) < 0) {
		forker_drop(s, true);
		return rc;
	}
	return 0;
}

/*
 * A warm C-task child for START (fds: frame, output, stdin; netns: the
 * job's network namespace with namespaces), cloned by the slot's forker
 * (made first when the slot has none, or one of other pipes or limits):
 * its pid, or -3: not here - the spawner forks it (no forker for such a
 * job, or the forker failed: then it is gone, with whatever it may have
 * cloned).
 */
pid_t spawner_forker_spawn(const struct spawn_req *req, const int *fds, int nfds, int netns)
{
	struct slot *s = &spawner_sp.slots[req->slot];
	bool ns = spawner_sp.opts->namespaces;
	struct sbx_init_params ip;
	struct forker_key key;
	char c = 0;
	int v = 0;

	/* Warm C children only; with cgroups only in the slot's namespaces
	 * (without, each job's end empties the slot's cgroup: reaped()). */
	if ((req->flags & (SPAWN_F_EXEC | SPAWN_F_INPUT_SIZED | SPAWN_F_HAS_STDIN |
			   SPAWN_F_SHARED_OUTPUT)) !=
		(SPAWN_F_INPUT_SIZED | SPAWN_F_HAS_STDIN | SPAWN_F_SHARED_OUTPUT) ||
	    nfds != 3 || (cg_of(req->slot) && !ns) || !forker_usable() ||
	    now_ns() < s->forker_pause_until)
		return -3;
	if (ns) {
		/* The slot's namespaces as they are now, made first when need
		 * be; a forker cannot remount /tmp for another size. */
		if (!spawner_slotns_current(s) &&
		    (spawner_slotns_enter_pidns(req) < 0 || spawner_pidns_leave(0) < 0)) {
			sbx_slotns_drop(&s->ns);
			return -3;
		}
		if (!sbx_slotns_tmp_is(&s->ns, req->limits.memory_bytes))
			return -3;
		ip = spawner_job_init_params(req, netns);
	}
	forker_key_of(req, fds, netns, &key);
	/* Another one for other pipes or limits, or one that has used a good
	 * part of a CPU limit (its rlimits are the job's; about a millisecond
	 * of its CPU a clone): it has no child now, the slot is free. */
	if (s->ns.forker > 0 &&
	    (memcmp(&key, &s->forker_key, sizeof(key)) != 0 ||
	     (req->limits.cpu_seconds && s->forker_clones >= req->limits.cpu_seconds * 500)))
		forker_drop(s, false);
	for (int tries = 0; tries < 2; tries++) {
		int rc;

		if (s->ns.forker == 0 && forker_start(req, fds, ns ? &ip : NULL, &key) < 0)
			return -3;
		rc = send(s->ns.forker_sock, &c, 1, MSG_NOSIGNAL) == 1
			 ? forker_recv(s->ns.forker_sock, FORKER_ANSWER_MS, &v)
			 : -EPIPE;
		if (rc == 0 && v > 0) {
			s->forker_clones++;
			return v;
		}
		/* Gone (killed: it may have cloned a child first, which goes
		 * with its group), then another; stopped, slow or confused:
		 * none for a while. */
		forker_drop(s, rc != -EPIPE && rc != -ECONNRESET);
		if (rc != -EPIPE && rc != -ECONNRESET)
			break;
	}
	return -3;
}
