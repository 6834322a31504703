/*
 * hostile.c - a plugin of deliberately misbehaving tasks for the hostile
 * suite (tests/hostile/test_hostile.py).
 *
 * Theory of operation: each task tries one thing a buggy or malicious task
 * might do - spin, sleep, deadlock, crash in the usual ways, call a forbidden
 * system call, exit behind valet's back, flood its output, return a huge
 * result, stop itself, ignore SIGTERM, exhaust its address space, attack its
 * parent. The test suite submits each one with a short timeout and checks
 * the exact failure_reason that the supervisor records, while the daemon
 * keeps serving.
 *
 * Every forbidden call is made with syscall() so that libc cannot turn it
 * into a different system call (open() -> openat is spelled out as openat,
 * fork() is left to libc on purpose: it is clone underneath). When such a
 * call unexpectedly returns, the task fails with a message that says so,
 * which makes the test's assertion on the failure_reason show what went
 * wrong.
 *
 * The crash tasks are built without sanitizer instrumentation (the ASan
 * build compiles this file with -fsanitize=address,undefined) so that the
 * signal the kernel delivers is the one the test expects, not a sanitizer
 * report.
 *
 * Tasks that attack the parent take the target pid from task_params.pid
 * (the test passes valetd's own pid) and fall back to getppid().
 *
 * hostile_syscall makes one raw system call of attacks.h (shared with the
 * exec program hostile_exec.c), chosen by task_params.call. hostile_frame
 * writes forged frames on the result channel (fd 3, sandbox/frame.h): lies
 * the supervisor must not believe.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <valet.h>

#include "../../sandbox/frame.h"
#include "attacks.h"

#define HOSTILE_NOSAN __attribute__((no_sanitize("address", "undefined"), noinline))

extern char **environ;

/* Keeps the optimizer from removing loops and allocations. */
static volatile uint64_t hostile_sink;

static long hostile_param_long(json_t *params, const char *key, long def)
{
	json_t *v = json_object_get(params, key);

	return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

static pid_t hostile_target_pid(json_t *params)
{
	json_t *v = json_object_get(params, "pid");

	/* getppid() only when asked: it may be blocked itself. */
	return json_is_integer(v) ? (pid_t)json_integer_value(v) : getppid();
}

static json_t *hostile_spin(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	for (;;)
		hostile_sink++;
	return NULL;
}

static json_t *hostile_sleep(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	struct timespec ts = { .tv_sec = 1000, .tv_nsec = 0 };

	for (;;)
		nanosleep(&ts, NULL);
	return NULL;
}

static json_t *hostile_deadlock(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	/* A normal (non error-checking) mutex locked twice by the same thread
	 * waits on its futex forever. */
	static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_NORMAL);
	pthread_mutex_init(&mutex, &attr);
	pthread_mutex_lock(&mutex);
	pthread_mutex_lock(&mutex);
	return valet_fail(ctx, "relocking a mutex did not deadlock");
}

HOSTILE_NOSAN static json_t *hostile_segv(struct valet_ctx *ctx, json_t *params,
					  json_t *previous)
{
	/* Through a volatile pointer so the compiler cannot see the NULL and
	 * replace the store with a trap instruction (SIGILL). */
	volatile int *volatile ptr = NULL;

	*ptr = 42;
	return valet_fail(ctx, "writing to NULL did not crash");
}

static json_t *hostile_abort(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	abort();
}

HOSTILE_NOSAN static int hostile_recurse(int depth)
{
	volatile char frame[1024];
	static volatile int limit = 1 << 30;

	frame[0] = (char)depth;
	frame[sizeof(frame) - 1] = (char)depth;
	if (depth < limit)
		return hostile_recurse(depth + 1) + frame[0] + frame[sizeof(frame) - 1];
	return frame[0];
}

HOSTILE_NOSAN static json_t *hostile_stack(struct valet_ctx *ctx, json_t *params,
					   json_t *previous)
{
	hostile_sink = (uint64_t)hostile_recurse(0);
	return valet_fail(ctx, "unbounded recursion returned");
}

HOSTILE_NOSAN static json_t *hostile_divzero(struct valet_ctx *ctx, json_t *params,
					     json_t *previous)
{
#if defined(__x86_64__) || defined(__i386__)
	volatile int numerator = 1;
	volatile int denominator = 0;

	hostile_sink = (uint64_t)(numerator / denominator);
#else
	/* Integer division by zero does not trap on this architecture. */
	raise(SIGFPE);
#endif
	return valet_fail(ctx, "dividing by zero did not crash");
}

HOSTILE_NOSAN static json_t *hostile_sigill(struct valet_ctx *ctx, json_t *params,
					    json_t *previous)
{
	__builtin_trap();
}

static json_t *hostile_socket(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);

	return valet_fail(ctx, "socket() was allowed: returned %ld (errno %d)", fd, errno);
}

static json_t *hostile_execve(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo escaped", NULL };
	char *envp[] = { NULL };
	long r = syscall(SYS_execve, "/bin/sh", argv, envp);

	return valet_fail(ctx, "execve() was allowed: returned %ld (errno %d)", r, errno);
}

static json_t *hostile_fork(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return valet_fail(ctx, "fork() was allowed: returned %d (errno %d)", (int)pid, errno);
}

static void *hostile_thread_main(void *arg)
{
	return arg;
}

static json_t *hostile_thread(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	pthread_t thread;
	int err = pthread_create(&thread, NULL, hostile_thread_main, NULL);

	if (err == 0)
		pthread_join(thread, NULL);
	return valet_fail(ctx, "pthread_create() was allowed: returned %d", err);
}

static json_t *hostile_open_shadow(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	long fd = syscall(SYS_openat, AT_FDCWD, "/etc/shadow", O_RDONLY);

	return valet_fail(ctx, "openat(/etc/shadow) was allowed: returned %ld (errno %d)", fd,
			  errno);
}

static json_t *hostile_noresult(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	_exit(0);
}

static json_t *hostile_exit3(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	_exit(3);
}

static json_t *hostile_flood(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	/* 100 MB in 64 KiB writes on fd 1 (or task_params.fd). */
	static char buf[65536];
	int fd = (int)hostile_param_long(params, "fd", 1);
	uint64_t total = 0;

	memset(buf, 'y', sizeof(buf));
	while (total < 100ull * 1000 * 1000) {
		ssize_t n = write(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return valet_fail(ctx, "write failed after %llu bytes (errno %d)",
					  (unsigned long long)total, errno);
		total += (uint64_t)n;
	}
	return valet_fail(ctx, "wrote 100 MB without being stopped");
}

static json_t *hostile_bigresult(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	size_t len = 2u * 1024 * 1024;
	char *s = malloc(len);
	json_t *result;

	if (!s)
		return valet_fail(ctx, "malloc failed");
	memset(s, 'x', len);
	result = json_stringn_nocheck(s, len);
	free(s);
	return result;
}

static json_t *hostile_sigstop(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	raise(SIGSTOP);
	return valet_fail(ctx, "continued after SIGSTOP");
}

static json_t *hostile_ignore_term(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	for (;;)
		hostile_sink++;
	return NULL;
}

HOSTILE_NOSAN static json_t *hostile_mallocbomb(struct valet_ctx *ctx, json_t *params,
						json_t *previous)
{
	/* Crashes when malloc returns NULL (attacks.h); fails the job if it
	 * never does. */
	size_t n = hattack_mallocbomb(&hostile_sink);

	return valet_fail(ctx, "malloc never returned NULL (%zu MiB)", n);
}

static json_t *hostile_killparent(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	pid_t pid = hostile_target_pid(params);
	long r = syscall(SYS_kill, (long)pid, SIGKILL);

	return valet_fail(ctx, "kill(%d, SIGKILL) was allowed: returned %ld (errno %d)", (int)pid,
			  r, errno);
}

/* tgkill(pid, pid, signal), which strict allows (abort() needs it): a
 * task's way to signal another process of its uid, such as its slot's
 * forker (test_forker.py). Says what the kernel answered. */
static json_t *hostile_tgkill(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	json_int_t pid = 0, sig = 0;
	long r;

	if (valet_decode_params(ctx, params, "{s:I, s:I}", "pid", &pid, "signal", &sig) < 0)
		return NULL;
	r = syscall(SYS_tgkill, (long)pid, (long)pid, (long)sig);
	return json_pack("{s:I, s:i}", "rc", (json_int_t)r, "errno", r < 0 ? errno : 0);
}

static json_t *hostile_ptrace(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	pid_t pid = hostile_target_pid(params);
	long r = syscall(SYS_ptrace, (long)PTRACE_ATTACH, (long)pid, 0L, 0L);

	return valet_fail(ctx, "ptrace(PTRACE_ATTACH, %d) was allowed: returned %ld (errno %d)",
			  (int)pid, r, errno);
}

static json_t *hostile_unshare(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	long r = syscall(SYS_unshare, (long)CLONE_NEWUSER);

	return valet_fail(ctx, "unshare(CLONE_NEWUSER) was allowed: returned %ld (errno %d)", r,
			  errno);
}

static json_t *hostile_io_uring(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
#ifdef SYS_io_uring_setup
	/* struct io_uring_params is 120 bytes; zeroed is a valid request. */
	static char uparams[120];
	long r = syscall(SYS_io_uring_setup, 1L, uparams);

	return valet_fail(ctx, "io_uring_setup() was allowed: returned %ld (errno %d)", r, errno);
#else
	return valet_fail(ctx, "io_uring_setup is not known on this system");
#endif
}

static json_t *hostile_perf_event(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	/* A zeroed struct perf_event_attr (whose size field 0 means the
	 * original 64-byte layout). */
	static char attr[128];
	long r = syscall(SYS_perf_event_open, attr, 0L, -1L, -1L, 0L);

	return valet_fail(ctx, "perf_event_open() was allowed: returned %ld (errno %d)", r,
			  errno);
}

HOSTILE_NOSAN static json_t *hostile_membomb(struct valet_ctx *ctx, json_t *params,
					     json_t *previous)
{
	/* Map and touch 1 MiB at a time (up to 4 GiB): the memory cgroup's
	 * OOM killer should end this. Running out of address space first
	 * (RLIMIT_AS) fails the job with a message that says so. */
	long mib;

	for (mib = 0; mib < 4096; mib++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);

		if (p == MAP_FAILED)
			return valet_fail(ctx, "mmap failed after %ld MiB (errno %d)", mib, errno);
		for (size_t i = 0; i < (1u << 20); i += 4096)
			p[i] = 1;
	}
	return valet_fail(ctx, "touched 4 GiB without being stopped");
}

static json_t *hostile_syscall(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	const struct hostile_attack *a;
	const char *call;
	long r;

	if (valet_decode_params(ctx, params, "{s:s}", "call", &call) < 0)
		return NULL;
	a = hostile_attack_find(call);
	if (!a)
		return valet_fail(ctx, "no such attack: %s", call);
	/* No getppid() fallback here: that call would be the one blocked. */
	r = a->fn(hostile_param_long(params, "pid", 0));
	return valet_fail(ctx, "%s was allowed: returned %ld (errno %d)", call, r,
			  r < 0 ? errno : 0);
}

/* Forged frames on the result channel; see the test table for what each one
 * must become. */
static void hostile_frame_raw(uint32_t len, uint16_t type, const void *payload, size_t n)
{
	struct frame_header h = {.len = len, .type = type, .index = 0};

	if (write(3, &h, sizeof(h)) < 0 || (n && write(3, payload, n) < 0))
		_exit(9);
}

static void hostile_frame_result(const char *json)
{
	uint32_t elen = 0;
	char buf[256];
	size_t n = strlen(json);

	memcpy(buf, &elen, sizeof(elen));
	memcpy(buf + sizeof(elen), json, n);
	hostile_frame_raw((uint32_t)(sizeof(elen) + n), FRAME_RESULT, buf, sizeof(elen) + n);
}

/*
 * A SYSCALL frame that names reboot, with trap data `data` (never the
 * filter's: the daemon's secret is 1..65535 and unknown here), then the
 * call that is really blocked: socket, which traps. attack-sandbox.md 3c:
 * with SIGSYS blocked (block_sigsys) the kernel kills at once, without the
 * reporter and its true frame; the supervisor must not say "reboot".
 */
static void hostile_forge_syscall(int32_t data, bool block_sigsys)
{
	struct frame_syscall rep = {.nr = SYS_reboot, .trap_data = data};
	uint64_t set = 1ULL << (SIGSYS - 1);

	if (block_sigsys)
		syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, sizeof(set));
	hostile_frame_raw(sizeof(rep), FRAME_SYSCALL, &rep, sizeof(rep));
}

static json_t *hostile_frame(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	const char *kind;
	struct frame_syscall fake = {.nr = SYS_socket, .trap_data = 0};

	if (valet_decode_params(ctx, params, "{s:s}", "kind", &kind) < 0)
		return NULL;
	if (strcmp(kind, "garbage") == 0) {
		hostile_frame_raw(4, 99, "junk", 4);
	} else if (strcmp(kind, "truncated") == 0) {
		hostile_frame_raw(2, FRAME_RESULT, "\0\0", 2);
		_exit(0);
	} else if (strcmp(kind, "huge") == 0) {
		hostile_frame_raw(0xfffffff0u, FRAME_RESULT, NULL, 0);
	} else if (strcmp(kind, "badjson") == 0) {
		hostile_frame_result("{\"not\": json");
		_exit(0);
	} else if (strcmp(kind, "nul") == 0) {
		/* jansson's parser skips a NUL after a number: "[1\0]" read as
		 * [1], then kept as the C string "[1". */
		hostile_frame_raw(8, FRAME_RESULT, "\0\0\0\0[1\0]", 8);
		_exit(0);
	} else if (strcmp(kind, "result_then_crash") == 0) {
		hostile_frame_result("{\"ok\":true}");
		abort();
	} else if (strcmp(kind, "fake_seccomp") == 0) {
		/* Claims a seccomp kill, then exits 0 without a result. */
		hostile_frame_raw(sizeof(fake), FRAME_SYSCALL, &fake, sizeof(fake));
		_exit(0);
	} else if (strcmp(kind, "forged_syscall") == 0) {
		hostile_forge_syscall(0, true);
		syscall(SYS_socket, (long)AF_INET, (long)SOCK_STREAM, 0L);
		_exit(0);
	} else if (strcmp(kind, "forged_then_trap") == 0) {
		/* The reporter runs and sends the true frame, after the lie. */
		hostile_forge_syscall(0, false);
		syscall(SYS_socket, (long)AF_INET, (long)SOCK_STREAM, 0L);
		_exit(0);
	} else if (strcmp(kind, "forged_then_kill") == 0) {
		/* Ends by the filter's own kill (rt_sigaction of SIGSYS), with
		 * no trap at all. */
		uint64_t dfl[4] = {0};

		hostile_forge_syscall(0, false);
		syscall(SYS_rt_sigaction, (long)SIGSYS, dfl, NULL, 8L);
		_exit(0);
	} else if (strcmp(kind, "error_text") == 0) {
		/* Control characters in its own error (3d): a newline, ESC, C1
		 * CSI (UTF-8), DEL. */
		return valet_fail(ctx, "%s", "one\ntwo\x1b[2J\xc2\x9bthree\x7f");
	} else if (strcmp(kind, "sigxcpu") == 0) {
		/* The kernel's signal for RLIMIT_CPU, sent by the task itself
		 * long before its limit (3b). */
		syscall(SYS_tgkill, (long)getpid(), (long)syscall(SYS_gettid), (long)SIGXCPU);
		_exit(0);
	} else if (strcmp(kind, "syscall_spray") == 0) {
		/* Every possible trap data: one of them is the daemon's. */
		for (int32_t d = 1; d <= 0xffff; d++)
			hostile_forge_syscall(d, d == 0xffff);
		syscall(SYS_socket, (long)AF_INET, (long)SOCK_STREAM, 0L);
		_exit(0);
	} else {
		return valet_fail(ctx, "no such frame kind: %s", kind);
	}
	/* Wait to be killed (nanosleep: pause() is not in the strict profile). */
	return hostile_sleep(ctx, params, previous);
}

static json_t *hostile_environ(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	/* Reads memory only: the names of the variables in the environment
	 * the task inherited. */
	json_t *names = json_array();
	char **e;

	for (e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');

		json_array_append_new(names, json_stringn(*e, eq ? (size_t)(eq - *e) : strlen(*e)));
	}
	return json_pack("{s:o}", "env", names);
}

/*
 * Scan what this process can read of its own memory for a secret: the
 * whole stack (the inherited environment strings live at its top, stale
 * frames below us) and the heap downwards from its end, each until the
 * first fault. The
 * secret comes reversed in the params, so only a copy inherited from the
 * daemon can match; the rebuilt needle itself is skipped.
 */
static sigjmp_buf memscan_jmp;
static char memscan_needle[256];

static void memscan_fault(int sig)
{
	siglongjmp(memscan_jmp, 1);
}

/* Unchecked reads on purpose (also under ASan, which would otherwise report
 * the stack's redzones): this task reads memory it did not allocate. */
#define MEMSCAN_RAW __attribute__((no_sanitize("address")))

MEMSCAN_RAW static bool memscan_at(const char *p, size_t len)
{
	if (p >= memscan_needle && p < memscan_needle + sizeof(memscan_needle))
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] != memscan_needle[i])
			return false;
	return true;
}

MEMSCAN_RAW static json_t *hostile_memscan(struct valet_ctx *ctx, json_t *params,
					   json_t *previous)
{
	static volatile int found_stack, found_heap;
	static const char *volatile p;
	const char *rev;
	struct sigaction sa = {.sa_handler = memscan_fault};
	size_t len;

	if (valet_decode_params(ctx, params, "{s:s}", "rev", &rev) < 0)
		return NULL;
	len = strlen(rev);
	if (len == 0 || len >= sizeof(memscan_needle))
		return valet_fail(ctx, "bad needle");
	for (size_t i = 0; i < len; i++)
		memscan_needle[i] = rev[len - 1 - i];
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	found_stack = found_heap = 0;
	p = (const char *)&len;
	if (sigsetjmp(memscan_jmp, 1) == 0)
		for (;; p++)
			if (*p == memscan_needle[0] && memscan_at(p, len))
				found_stack = 1;
	p = (const char *)&len;
	if (sigsetjmp(memscan_jmp, 1) == 0)
		for (;; p--)
			if (*p == memscan_needle[0] && memscan_at(p, len))
				found_stack = 1;
	p = (const char *)sbrk(0) - len;
	if (sigsetjmp(memscan_jmp, 1) == 0)
		for (;; p--)
			if (*p == memscan_needle[0] && memscan_at(p, len))
				found_heap = 1;
	return json_pack("{s:b, s:b}", "stack", found_stack, "heap", found_heap);
}

static const struct {
	const char *name;
	valet_task_fn fn;
} hostile_tasks[] = {
	{ "hostile_memscan", hostile_memscan },
	{ "hostile_abort", hostile_abort },
	{ "hostile_bigresult", hostile_bigresult },
	{ "hostile_deadlock", hostile_deadlock },
	{ "hostile_divzero", hostile_divzero },
	{ "hostile_environ", hostile_environ },
	{ "hostile_execve", hostile_execve },
	{ "hostile_exit3", hostile_exit3 },
	{ "hostile_flood", hostile_flood },
	{ "hostile_fork", hostile_fork },
	{ "hostile_frame", hostile_frame },
	{ "hostile_ignore_term", hostile_ignore_term },
	{ "hostile_io_uring", hostile_io_uring },
	{ "hostile_killparent", hostile_killparent },
	{ "hostile_mallocbomb", hostile_mallocbomb },
	{ "hostile_membomb", hostile_membomb },
	{ "hostile_noresult", hostile_noresult },
	{ "hostile_open_shadow", hostile_open_shadow },
	{ "hostile_perf_event", hostile_perf_event },
	{ "hostile_ptrace", hostile_ptrace },
	{ "hostile_segv", hostile_segv },
	{ "hostile_sigill", hostile_sigill },
	{ "hostile_sigstop", hostile_sigstop },
	{ "hostile_sleep", hostile_sleep },
	{ "hostile_socket", hostile_socket },
	{ "hostile_spin", hostile_spin },
	{ "hostile_stack", hostile_stack },
	{ "hostile_syscall", hostile_syscall },
	{ "hostile_tgkill", hostile_tgkill },
	{ "hostile_thread", hostile_thread },
	{ "hostile_unshare", hostile_unshare },
};

static int hostile_init(void)
{
	size_t i;
	int err;

	for (i = 0; i < sizeof(hostile_tasks) / sizeof(hostile_tasks[0]); i++) {
		err = valet_register(hostile_tasks[i].name, hostile_tasks[i].fn);
		if (err < 0)
			return err;
	}
	return 0;
}

VALET_PLUGIN(hostile_init)
