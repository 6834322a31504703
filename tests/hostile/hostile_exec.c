/*
 * hostile_exec.c - a program of deliberately misbehaving exec tasks for the
 * hostile suite (tests/hostile/test_hostile.py). The Makefile builds it as
 * $(BUILD)/tests/hostile_exec, without sanitizers; the suite's daemon runs it
 * as exec tasks `hostile_exec CASE`.
 *
 * Theory of operation: argv[1] names one attack. The program reads its
 * input (the exec task contract: {"params": {...}} on stdin) and takes the
 * few parameters it needs from it with a tiny scanner ("pid", "port",
 * "name", "path", "tag", "key", "canary": numbers and plain strings only).
 * Then it tries the attack and reports what the kernel answered as a JSON
 * object on stdout (the job's result), errno values by name ("EPERM"), so
 * that the test asserts on facts rather than on this program's opinion. An
 * attack that must end the process (memory bomb, stack overflow, file size
 * limit) has no result; when it unexpectedly survives, it exits non-zero
 * with a sentence on stderr, which becomes the job's failure_reason.
 *
 * Here: the input and output helpers, the cases about processes and
 * resources (bombs, children left behind, limits, results), and main. The
 * cases that look around the host are in hostile_exec_see.c. The raw system
 * calls shared with the C plugin are in attacks.h; any case name found there
 * runs that call against task_params.pid (default: the parent) and reports
 * {"ret": N, "errno": "E..." or null}.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attacks.h"
#include "hostile_exec.h"

#define HX_NOOPT __attribute__((noinline, noclone, optimize("no-optimize-sibling-calls")))

static char hx_input[65536];
static volatile uint64_t hx_sink;

const char *hx_errname(int e)
{
	static char buf[16];
	const char *s = strerrorname_np(e);

	if (s)
		return s;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

const char *hx_param(const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(hx_input, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p == '"') {
		p++;
		while (p[n] && p[n] != '"' && n + 1 < len)
			n++;
	} else {
		while (p[n] && strchr("-0123456789", p[n]) && n + 1 < len)
			n++;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

long hx_param_long(const char *key, long def)
{
	char buf[32];

	return hx_param(key, buf, sizeof(buf)) && buf[0] ? strtol(buf, NULL, 10) : def;
}

static void hx_read_input(void)
{
	size_t got = 0;
	ssize_t n;

	while (got + 1 < sizeof(hx_input)) {
		n = read(0, hx_input + got, sizeof(hx_input) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	hx_input[got] = '\0';
}

const char *hx_res(long r)
{
	return r < 0 ? hx_errname(errno) : "ok";
}

void hx_print_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d) {
		printf("\"%s\"", hx_errname(errno));
		return;
	}
	printf("[");
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n < 20)
			printf("%s\"%s\"", n ? "," : "", e->d_name);
		else if (n == 20)
			printf(",\"...\"");
		n++;
	}
	closedir(d);
	printf("]");
}

static int hx_membomb(void)
{
	long mib;

	for (mib = 0; mib < 4096; mib++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);

		if (p == MAP_FAILED) {
			fprintf(stderr, "mmap failed after %ld MiB: %s\n", mib, hx_errname(errno));
			return 4;
		}
		for (size_t i = 0; i < (1u << 20); i += 4096)
			p[i] = 1;
	}
	fprintf(stderr, "touched 4 GiB without being stopped\n");
	return 5;
}

static int hx_mallocbomb(void)
{
	size_t n = hattack_mallocbomb(&hx_sink); /* crashes on NULL (attacks.h) */

	fprintf(stderr, "malloc never returned NULL (%zu MiB)\n", n);
	return 5;
}

HX_NOOPT static int hx_recurse(int depth)
{
	volatile char frame[1024];

	frame[0] = (char)depth;
	frame[sizeof(frame) - 1] = (char)depth;
	if (depth < INT_MAX)
		return hx_recurse(depth + 1) + frame[0] + frame[sizeof(frame) - 1];
	return frame[0];
}

static int hx_stack(void)
{
	hx_sink = (uint64_t)hx_recurse(0);
	fprintf(stderr, "unbounded recursion returned\n");
	return 5;
}

static void hx_quiet_child(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
}

static int hx_forkbomb(void)
{
	int n, err = 0;

	for (n = 0; n < 10000; n++) {
		pid_t pid = fork();

		if (pid == 0) {
			hx_quiet_child();
			for (;;)
				pause();
		}
		if (pid < 0) {
			err = errno;
			break;
		}
	}
	printf("{\"forked\":%d,\"errno\":\"%s\"}\n", n, err ? hx_errname(err) : "none");
	return 0;
}

static void *hx_thread_main(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int hx_threadbomb(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int n, err = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (n = 0; n < 10000; n++) {
		err = pthread_create(&t, &attr, hx_thread_main, NULL);
		if (err)
			break;
	}
	printf("{\"threads\":%d,\"errno\":\"%s\"}\n", n, err ? hx_errname(err) : "none");
	fflush(stdout);
	_exit(0);
}

static int hx_stopped_child(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		hx_quiet_child();
		raise(SIGSTOP);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, WUNTRACED) != pid) {
		fprintf(stderr, "fork/waitpid: %s\n", hx_errname(errno));
		return 4;
	}
	printf("{\"stopped\":%s}\n", WIFSTOPPED(status) ? "true" : "false");
	return 0;
}

static int hx_zombies(void)
{
	int fds[2];
	char c;
	pid_t pid;

	if (pipe(fds) < 0)
		return 4;
	pid = fork();
	if (pid == 0) {
		/* A child with 16 zombie children it never reaps. */
		for (int i = 0; i < 16; i++)
			if (fork() == 0)
				_exit(0);
		hx_quiet_child();
		if (write(fds[1], "z", 1) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &c, 1) != 1) {
		fprintf(stderr, "the zombie maker did not start\n");
		return 4;
	}
	printf("{\"zombies\":16}\n");
	return 0;
}

static int hx_orphan(void)
{
	int fds[2];
	char c;
	pid_t pid;

	if (pipe(fds) < 0)
		return 4;
	pid = fork();
	if (pid == 0) {
		/* setsid + double fork: a daemon in its own session, deaf to the
		 * usual signals, with no fd to the job left open. */
		setsid();
		signal(SIGHUP, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		if (fork() == 0) {
			hx_quiet_child();
			if (write(fds[1], "o", 1) < 0)
				_exit(1);
			close(fds[1]);
			for (;;)
				pause();
		}
		_exit(0);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &c, 1) != 1) {
		fprintf(stderr, "the orphan did not start\n");
		return 4;
	}
	waitpid(pid, NULL, 0);
	printf("{\"orphan\":true}\n");
	return 0;
}

/*
 * A child that looks like an idle pre-forked job child - named valetd-job,
 * asleep in read(0) on a pipe (its own, which nobody ever writes) - left
 * behind by a task that exits at once. It must die with the job's PID
 * namespace, and the clean-host check must not excuse it as idle.
 */
static int hx_disguise(void)
{
	int fds[2], ready[2];
	char c;
	pid_t pid;

	if (pipe(fds) < 0 || pipe(ready) < 0)
		return 4;
	pid = fork();
	if (pid == 0) {
		hx_quiet_child();
		prctl(PR_SET_NAME, "valetd-job");
		dup2(fds[0], 0);
		close(ready[0]);
		close(ready[1]); /* the parent's read returns: in place */
		for (;;)
			if (read(0, &c, 1) <= 0 && errno != EINTR)
				break;
		_exit(0);
	}
	close(ready[1]);
	if (pid < 0 || read(ready[0], &c, 1) != 0) {
		fprintf(stderr, "the disguised child did not start\n");
		return 4;
	}
	printf("{\"disguised\":true}\n");
	return 0;
}

static int hx_file_size(void)
{
	static char buf[1 << 20];
	char tag[64], p[128];
	int fd;

	if (!hx_param("tag", tag, sizeof(tag)))
		strcpy(tag, "x");
	snprintf(p, sizeof(p), "/tmp/valet-hostile-%s-big", tag);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", p, hx_errname(errno));
		return 4;
	}
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < 64; i++)
		if (write(fd, buf, sizeof(buf)) < 0) {
			fprintf(stderr, "write failed after %d MiB: %s\n", i, hx_errname(errno));
			return 4;
		}
	fprintf(stderr, "wrote 64 MiB without hitting a file size limit\n");
	return 5;
}

static int hx_fd_exhaust(void)
{
	int n = 0, err = 0;

	for (; n < 100000; n++)
		if (open("/dev/null", O_RDONLY) < 0) {
			err = errno;
			break;
		}
	printf("{\"opened\":%d,\"errno\":\"%s\"}\n", n, err ? hx_errname(err) : "none");
	return 0;
}

static int hx_result_then_crash(void)
{
	printf("{\"ok\":true}\n");
	fflush(stdout);
	abort();
}

static int hx_noresult(void)
{
	return 0;
}

/* A little CPU, then a signal of the kernel's sent by the task itself:
 * neither is the sandbox's doing (attack-sandbox.md 3a, 3b). */
static int hx_self_signal(int sig)
{
	struct timespec t0, t;
	volatile unsigned long n = 0;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	do {
		n++;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 20);
	kill(getpid(), sig);
	return 0;
}

static int hx_sigsys(void)
{
	return hx_self_signal(SIGSYS);
}

static int hx_sigxcpu(void)
{
	return hx_self_signal(SIGXCPU);
}

/* An error with control characters: a newline, ESC, C1 CSI, DEL
 * (attack-sandbox.md 3d). */
static int hx_error_text(void)
{
	printf("{\"error\":\"one\\ntwo\\u001b[2J\\u009bthree\\u007f\"}\n");
	return 0;
}

static int hx_attack(const struct hostile_attack *a)
{
	long r = a->fn(hx_param_long("pid", (long)getppid()));
	int e = errno;

	printf("{\"ret\":%ld,\"errno\":%s%s%s}\n", r, r < 0 ? "\"" : "",
	       r < 0 ? hx_errname(e) : "null", r < 0 ? "\"" : "");
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
} hx_cases[] = {
	{"membomb", hx_membomb},
	{"mallocbomb", hx_mallocbomb},
	{"stack", hx_stack},
	{"forkbomb", hx_forkbomb},
	{"threadbomb", hx_threadbomb},
	{"stopped_child", hx_stopped_child},
	{"zombies", hx_zombies},
	{"orphan", hx_orphan},
	{"disguise", hx_disguise},
	{"tcp_connect", hx_tcp_connect},
	{"abstract_unix", hx_abstract_unix},
	{"net_view", hx_net_view},
	{"proc_view", hx_proc_view},
	{"uts", hx_uts},
	{"ids", hx_ids},
	{"whoami", hx_whoami},
	{"setuid", hx_setuid},
	{"cgroup_escape", hx_cgroup_escape},
	{"kill_pid", hx_kill_pid},
	{"kill_all", hx_kill_all},
	{"proc_peek", hx_proc_peek},
	{"read_file", hx_read_file},
	{"pg_socket", hx_pg_socket},
	{"write_outside", hx_write_outside},
	{"tmp_leave", hx_tmp_leave},
	{"devshm_leave", hx_devshm_leave},
	{"file_size", hx_file_size},
	{"fd_exhaust", hx_fd_exhaust},
	{"ls_tmp", hx_ls_tmp},
	{"result_then_crash", hx_result_then_crash},
	{"noresult", hx_noresult},
	{"sigsys", hx_sigsys},
	{"sigxcpu", hx_sigxcpu},
	{"error_text", hx_error_text},
};

int main(int argc, char **argv)
{
	const struct hostile_attack *a;

	if (argc < 2) {
		fprintf(stderr, "usage: hostile_exec CASE (see tests/hostile/hostile_exec.c)\n");
		return 2;
	}
	/* The suite makes a setuid-root copy of this program for the "setuid"
	 * case: that copy does nothing but say who it runs as. */
	if (geteuid() != getuid() && strcmp(argv[1], "whoami") != 0)
		return 3;
	/* Run on the host by the test, outside any sandbox: does this kernel
	 * take i386 system calls at all? */
	if (strcmp(argv[1], "probe_int80") == 0)
		return hattack_int80(0) > 0 ? 0 : 1;
	if (strcmp(argv[1], "ipc_leave") == 0 || strcmp(argv[1], "ipc_check") == 0) {
		hx_read_input();
		return hx_ipc(argv[1][4] == 'l');
	}
	for (size_t i = 0; i < sizeof(hx_cases) / sizeof(hx_cases[0]); i++)
		if (strcmp(argv[1], hx_cases[i].name) == 0) {
			if (strcmp(argv[1], "whoami") != 0)
				hx_read_input();
			return hx_cases[i].fn();
		}
	a = hostile_attack_find(argv[1]);
	if (a) {
		hx_read_input();
		return hx_attack(a);
	}
	fprintf(stderr, "hostile_exec: no such case: %s\n", argv[1]);
	return 2;
}
