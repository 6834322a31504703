/*
 * test_sbx_filter.c - the named seccomp profiles (supervisor/policy.c),
 * loaded for real in forked children; and (strict_leaves_nothing) what the
 * strict profile must never allow, read from its table.
 *
 * Theory of operation: each test forks a child that enters the sandbox
 * with sbx_enter() and the compiled filter of one profile, exactly as a
 * job child does, and then either execs a real program (shells, coreutils,
 * tar, gzip, python3, perl: the exec profiles must let ordinary programs
 * run) or runs a check function that tries system calls and reports the
 * first unexpected answer as a distinct exit code. Check functions end
 * with the raw exit_group system call, never returning into cmocka.
 *
 * Where a refusal could pass for the wrong reason (a call that fails
 * anyway), a control run without a filter shows the difference.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../sandbox/sandbox.h"
#include "../../supervisor/filter.h"
#include "../../supervisor/policy.h"
#include "../../supervisor/policy_tables.h"

static struct sbx_filter filters[SBX_PROFILE_COUNT];
static char workdir[] = "/tmp/valet-test-sbx-filter.XXXXXX";

/* ---- harness --------------------------------------------------------------------------- */

struct result {
	int status;
	char out[16384];
	size_t out_len;
};

__attribute__((noreturn)) static void child_exit(int code)
{
	for (;;)
		syscall(SYS_exit_group, code);
}

/*
 * Fork; in the child enter the sandbox under profile (or none, when
 * profile is SBX_PROFILE_COUNT: a control run) and either exec argv or
 * exit with fn(arg). The child's stdout and stderr come back in r->out.
 */
static void run(enum sbx_profile profile, char *const *argv, int (*fn)(void *), void *arg,
		struct result *r)
{
	static char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
				    "HOME=/nonexistent", NULL};
	int out[2], frame[2], devnull;
	struct timespec t0, t1;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(frame, O_CLOEXEC), 0);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sbx_params p = {
		    .stdin_fd = -1,
		    .stdout_fd = out[1],
		    .stderr_fd = out[1],
		    .frame_fd = frame[1],
		    .frame_cloexec = true,
		    .devnull_fd = devnull,
		    .expected_parent = getppid(),
		    .filter = profile < SBX_PROFILE_COUNT ? &filters[profile] : NULL,
		    .workdir = workdir,
		};
		struct sbx_error err;

		if (sbx_enter(&p, &err) < 0)
			sbx_fail(SBX_FD_FRAME, &err);
		if (argv) {
			execve(argv[0], argv, env);
			child_exit(127);
		}
		child_exit(fn(arg));
	}
	close(out[1]);
	close(frame[1]);
	close(devnull);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = {.fd = out[0], .events = POLLIN};
		char scratch[4096];
		ssize_t n;

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		if (pfd.revents) {
			size_t room = sizeof(r->out) - 1 - r->out_len;

			n = read(out[0], room ? r->out + r->out_len : scratch,
				 room ? room : sizeof(scratch));
			if (n == 0 || (n < 0 && errno != EINTR))
				break;
			if (n > 0 && room)
				r->out_len += (size_t)n;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 60) {
			kill(pid, SIGKILL);
			break;
		}
	}
	close(out[0]);
	close(frame[0]);
	while (waitpid(pid, &r->status, 0) < 0)
		assert_int_equal(errno, EINTR);
}

static void expect_exit(const struct result *r, int code, const char *what)
{
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == code)
		return;
	print_message("%s: output:\n%s\n", what, r->out);
	if (WIFSIGNALED(r->status))
		fail_msg("%s: expected exit %d, got signal %d", what, code, WTERMSIG(r->status));
	fail_msg("%s: expected exit %d, got exit %d", what, code, WEXITSTATUS(r->status));
}

static void run_program(enum sbx_profile profile, const char *what, char *const *argv)
{
	struct result r;

	run(profile, argv, NULL, NULL, &r);
	expect_exit(&r, 0, what);
}

#define CHECK(cond, code)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return (code);                                                             \
	} while (0)

/* A system call that must fail with err. */
#define CHECK_ERR(call, err, code) CHECK((call) == -1 && errno == (err), code)

/* ---- names, versions, compiling --------------------------------------------------------- */

static void test_names(void **state)
{
	enum sbx_profile p = SBX_PROFILE_COUNT;
	char name[32];

	assert_string_equal(policy_profile_name(SBX_PROFILE_STRICT), "strict");
	assert_string_equal(policy_profile_name(SBX_PROFILE_EXEC), "exec");
	assert_string_equal(policy_profile_name(SBX_PROFILE_EXEC_NET), "exec+net");
	assert_null(policy_profile_name(SBX_PROFILE_COUNT));
	assert_int_equal(policy_profile_version(SBX_PROFILE_COUNT), 0);
	for (int i = 0; i < SBX_PROFILE_COUNT; i++) {
		assert_true(policy_profile_version((enum sbx_profile)i) >= 1);
		assert_int_equal(policy_profile_parse(policy_profile_name((enum sbx_profile)i), &p), 0);
		assert_int_equal(p, i);
		snprintf(name, sizeof(name), "%s@%u", policy_profile_name((enum sbx_profile)i),
			 policy_profile_version((enum sbx_profile)i));
		p = SBX_PROFILE_COUNT;
		assert_int_equal(policy_profile_parse(name, &p), 0);
		assert_int_equal(p, i);
		/* Any other version is refused, not silently upgraded. */
		snprintf(name, sizeof(name), "%s@%u", policy_profile_name((enum sbx_profile)i),
			 policy_profile_version((enum sbx_profile)i) + 1);
		assert_int_equal(policy_profile_parse(name, &p), -EINVAL);
		snprintf(name, sizeof(name), "%s@0%u", policy_profile_name((enum sbx_profile)i),
			 policy_profile_version((enum sbx_profile)i));
		assert_int_equal(policy_profile_parse(name, &p), -EINVAL);
	}
	assert_int_equal(policy_profile_version(SBX_PROFILE_EXEC), 2);
	assert_int_equal(policy_profile_parse("exec@1", &p), -EINVAL);
	/* exec+net@1 let MPTCP, UDP-Lite and the like through: gone. */
	assert_int_equal(policy_profile_version(SBX_PROFILE_EXEC_NET), 2);
	assert_int_equal(policy_profile_parse("exec+net@2", &p), 0);
	assert_int_equal(p, SBX_PROFILE_EXEC_NET);
	assert_int_equal(policy_profile_parse("exec+net@1", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("exec@", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("exec@2x", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("exec@-2", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("exec@+2", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("Exec", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("exec ", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("exec+", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("net", &p), -EINVAL);
	assert_int_equal(policy_profile_parse("", &p), -EINVAL);
	assert_int_equal(policy_profile_parse(NULL, &p), -EINVAL);
}

static void test_compile(void **state)
{
	struct sbx_filter f = {(void *)1, 1};

	for (int i = 0; i < SBX_PROFILE_COUNT; i++) {
		assert_non_null(filters[i].insns);
		assert_true(filters[i].len > 0 && filters[i].len <= 4096);
	}
	/* Only the socket rules tell exec and exec+net apart. */
	assert_true(filters[SBX_PROFILE_EXEC_NET].len > filters[SBX_PROFILE_EXEC].len);
	assert_int_equal(filter_compile(SBX_PROFILE_COUNT, &f), -EINVAL);
	assert_null(f.insns);
	assert_int_equal(filter_compile((enum sbx_profile)(SBX_PROFILE_COUNT + 1), &f),
			 -EINVAL);
	assert_int_equal(filter_compile(SBX_PROFILE_EXEC, NULL), -EINVAL);
	/* The same profile compiles to the same program. */
	assert_int_equal(filter_compile(SBX_PROFILE_EXEC, &f), 0);
	assert_int_equal(f.len, filters[SBX_PROFILE_EXEC].len);
	assert_memory_equal(f.insns, filters[SBX_PROFILE_EXEC].insns, f.len * 8);
	sbx_filter_release(&f);
	assert_null(f.insns);
	sbx_filter_release(NULL);
}

/* Compiled in a child process: the very same programs. */
static void test_compile_all(void **state)
{
	struct sbx_filter all[SBX_PROFILE_COUNT];
	enum sbx_profile failed = SBX_PROFILE_COUNT;

	assert_int_equal(filter_compile_all(all, &failed), 0);
	for (int i = 0; i < SBX_PROFILE_COUNT; i++) {
		assert_int_equal(all[i].len, filters[i].len);
		assert_memory_equal(all[i].insns, filters[i].insns, all[i].len * 8);
		sbx_filter_release(&all[i]);
	}
}

/* ---- real programs under exec and exec+net ---------------------------------------------- */

static bool have(const char *path)
{
	if (access(path, X_OK) == 0)
		return true;
	print_message("%s not installed: not tested\n", path);
	return false;
}

static const char python_script[] =
    "import threading, subprocess, hashlib, tempfile, json, os, queue\n"
    "q = queue.Queue()\n"
    "ts = [threading.Thread(target=lambda i=i: q.put(i * i)) for i in range(4)]\n"
    "[t.start() for t in ts]; [t.join() for t in ts]\n"
    "assert sorted(q.get() for _ in range(4)) == [0, 1, 4, 9]\n"
    "p = subprocess.run(['/bin/sh', '-c', 'echo sub; exit 3'], capture_output=True)\n"
    "assert p.returncode == 3 and p.stdout == b'sub\\n', p\n"
    "assert hashlib.sha256(b'abc').hexdigest().startswith('ba7816bf')\n"
    "with tempfile.TemporaryDirectory(dir='.') as d:\n"
    "    with tempfile.NamedTemporaryFile('w', dir=d, delete=False) as f:\n"
    "        json.dump({'a': [1, 2.5, None]}, f)\n"
    "    with open(f.name) as g:\n"
    "        assert json.load(g) == {'a': [1, 2.5, None]}\n"
    "print('python ok')\n";

static void test_exec_programs(void **state)
{
	char *const sh[] = {"/bin/sh", "-c",
			    "set -e; printf 'b\\na\\nc\\n' | sort | head -n 2 | tr -d '\\n' > out;"
			    " test \"$(cat out)\" = ab; echo $$ > /dev/null; x=$(echo sub); rm out",
			    NULL};
	char *const bash[] = {"/bin/bash", "-c",
			      "set -euo pipefail; a=(1 2 3); (( ${#a[@]} == 3 ));"
			      " read -r l < <(echo proc-subst); [[ $l == proc-subst ]];"
			      " sleep 0.01 & wait $!",
			      NULL};
	char *const ls[] = {"/bin/ls", "-la", "/", "/usr/bin", NULL};
	char *const sort[] = {"/usr/bin/sort", "-n", "/etc/passwd", NULL};
	char *const sha[] = {
	    "/bin/sh", "-c",
	    "printf abc | sha256sum | grep -q"
	    " '^ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad '",
	    NULL};
	char *const tar[] = {
	    "/bin/sh", "-c",
	    "set -e; mkdir -p t/d; echo hello > t/d/f; ln -s f t/d/l;"
	    " tar -czf t.tgz -C t d; mkdir u; tar -xzf t.tgz -C u; cmp t/d/f u/d/f;"
	    " test \"$(readlink u/d/l)\" = f; gzip -9 t/d/f; gzip -d t/d/f.gz; cmp t/d/f u/d/f;"
	    " cp -a u v; mv v w; chmod 600 w/d/f; touch -d @0 w/d/f; rm -rf t u w t.tgz",
	    NULL};
	char *const python[] = {"/usr/bin/python3", "-c", (char *)python_script, NULL};
	char *const perl[] = {
	    "/usr/bin/perl", "-e",
	    "use strict; use File::Temp qw(tempdir); use Digest::SHA qw(sha256_hex);"
	    " my $d = tempdir(DIR => '.', CLEANUP => 1); open(my $f, '>', \"$d/x\") or die;"
	    " print $f 'x'; close $f; my @s = sort { $a <=> $b } (3, 1, 2);"
	    " die unless \"@s\" eq '1 2 3';"
	    " die unless sha256_hex('abc') =~ /^ba7816bf/; die unless system('true') == 0;"
	    " my $p = fork(); exit 0 unless $p; waitpid($p, 0); die if $?; print \"perl ok\\n\"",
	    NULL};

	for (int i = SBX_PROFILE_EXEC; i <= SBX_PROFILE_EXEC_NET; i++) {
		enum sbx_profile p = (enum sbx_profile)i;

		run_program(p, "sh pipeline", sh);
		if (access(bash[0], X_OK) == 0)
			run_program(p, "bash", bash);
		run_program(p, "ls", ls);
		run_program(p, "sort", sort);
		run_program(p, "sha256sum", sha);
		run_program(p, "tar and gzip", tar);
		if (have(python[0]))
			run_program(p, "python3", python);
		if (have(perl[0]))
			run_program(p, "perl", perl);
	}
	/* What ran passed; a missing interpreter is still a skip, said. */
	if (!have(python[0]) || !have(perl[0]))
		SKIP_NEEDS("python3 or perl missing: not all programs tested (deps.sh --test)");
}

/* ---- system calls: unlisted, denied ----------------------------------------------------- */

#define HIGH (1UL << 32) /* garbage in the upper half of a 32-bit argument */

static int child_unlisted(void *arg)
{
	struct timeval tv = {0, 0};

	/* Neither allowed nor denied: the default answer, ENOSYS. */
	CHECK_ERR(syscall(SYS_vhangup), ENOSYS, 10);
	CHECK_ERR(syscall(SYS_settimeofday, &tv, NULL), ENOSYS, 11);
	CHECK_ERR(syscall(SYS_clone3, NULL, 0), ENOSYS, 12);
	CHECK_ERR(syscall(SYS_seccomp, 0, 0, NULL), ENOSYS, 13);
	CHECK_ERR(syscall(SYS_setuid, 0), ENOSYS, 14);
	CHECK_ERR(syscall(SYS_chroot, "/"), ENOSYS, 15);
	/* A task may lower its own limits (setrlimit, prlimit64 on pid 0),
	 * not touch another process's (that is left unlisted: ENOSYS). */
	{
		struct rlimit rl;

		CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, 16);
		rl.rlim_cur = rl.rlim_cur > 32 ? 32 : rl.rlim_cur;
		CHECK(syscall(SYS_setrlimit, RLIMIT_NOFILE, &rl) == 0, 17);
		CHECK(syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &rl, NULL) == 0, 18);
		CHECK_ERR(syscall(SYS_prlimit64, getppid(), RLIMIT_NOFILE, &rl, NULL), ENOSYS, 19);
		/* A pid with garbage in the high 32 bits is still "not me". */
		CHECK_ERR(syscall(SYS_prlimit64, 0x100000000ULL | (unsigned)getppid(), RLIMIT_NOFILE,
				  &rl, NULL),
			  ENOSYS, 20);
	}
	/* No IPC object: the exec tasks of a worker slot share its IPC
	 * namespace (sandbox/spawner.c, job_ipcns), which is only safe while
	 * none of them can leave anything there. */
	CHECK_ERR(syscall(SYS_shmget, 0x7661, 4096, IPC_CREAT | 0666), ENOSYS, 21);
	CHECK_ERR(syscall(SYS_semget, 0x7661, 1, IPC_CREAT | 0666), ENOSYS, 22);
	CHECK_ERR(syscall(SYS_msgget, 0x7661, IPC_CREAT | 0666), ENOSYS, 23);
	CHECK_ERR(syscall(SYS_mq_open, "valet", O_RDWR | O_CREAT, 0666, NULL), ENOSYS, 24);
	return 0;
}

static void test_exec_unlisted(void **state)
{
	struct result r;

	run(SBX_PROFILE_EXEC, NULL, child_unlisted, NULL, &r);
	expect_exit(&r, 0, "exec");
	run(SBX_PROFILE_EXEC_NET, NULL, child_unlisted, NULL, &r);
	expect_exit(&r, 0, "exec+net");
}

static int child_denied(void *arg)
{
	char c = 'x';
	pid_t pid;

	CHECK_ERR(syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0), EPERM, 10);
	CHECK_ERR(syscall(SYS_unshare, CLONE_NEWUSER), EPERM, 11);
	CHECK_ERR(syscall(SYS_unshare, 0), EPERM, 12);
	CHECK_ERR(syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL), EPERM, 13);
	CHECK_ERR(syscall(SYS_bpf, 0, NULL, 0), EPERM, 14);
	CHECK_ERR(syscall(SYS_io_uring_setup, 1, NULL), EPERM, 15);
	CHECK_ERR(syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM, 16);
	CHECK_ERR(syscall(SYS_setns, 0, 0), EPERM, 17);
	CHECK_ERR(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM, 18);
	CHECK_ERR(syscall(SYS_process_vm_readv, getppid(), NULL, 0, NULL, 0, 0), EPERM, 19);
	CHECK_ERR(syscall(SYS_userfaultfd, 0), EPERM, 20);
	/* personality: only PER_LINUX and the query. The kernel reads 32 bits. */
	CHECK_ERR(syscall(SYS_personality, PER_LINUX32), EPERM, 21);
	CHECK_ERR(syscall(SYS_personality, HIGH | PER_LINUX32), EPERM, 22);
	CHECK_ERR(syscall(SYS_personality, ADDR_NO_RANDOMIZE), EPERM, 23);
	CHECK(syscall(SYS_personality, 0xffffffffUL) >= 0, 24);
	CHECK(syscall(SYS_personality, PER_LINUX) >= 0, 25);
	/* clone with any namespace flag; high bits do not matter either way. */
	pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		child_exit(0);
	CHECK(pid == -1 && errno == EPERM, 26);
	pid = (pid_t)syscall(SYS_clone, HIGH | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		child_exit(0);
	CHECK(pid == -1 && errno == EPERM, 27);
	/* Faking terminal input, also with garbage in the request's high half. */
	CHECK_ERR(ioctl(0, TIOCSTI, &c), EPERM, 28);
	CHECK_ERR(syscall(SYS_ioctl, 0, HIGH | TIOCSTI, &c), EPERM, 29);
	CHECK_ERR(syscall(SYS_ioctl, 0, 0xdead00000000UL | TIOCSTI, &c), EPERM, 30);
	CHECK_ERR(syscall(SYS_ioctl, 0, HIGH | TIOCLINUX, &c), EPERM, 31);
	/* Other requests go through to the kernel (stdin is /dev/null: ENOTTY). */
	CHECK_ERR(ioctl(0, TCGETS, &c), ENOTTY, 32);
	CHECK_ERR(ioctl(0, TIOCSTI + 1, &c), ENOTTY, 33);
	/* prctl: not PR_SET_MM nor PR_SET_PTRACER; other options work. */
	CHECK_ERR(syscall(SYS_prctl, PR_SET_MM, PR_SET_MM_START_CODE, 0, 0, 0), EPERM, 34);
	CHECK_ERR(syscall(SYS_prctl, HIGH | PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0), EPERM,
		  35);
	CHECK(prctl(PR_SET_NAME, "renamed", 0, 0, 0) == 0, 36);
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 37);
	/* Ordinary process creation still works: fork, vfork, threads' clone. */
	pid = fork();
	if (pid == 0)
		child_exit(7);
	{
		int status;

		CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, 38);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, 39);
	}
	return 0;
}

static void test_exec_denied(void **state)
{
	struct result r;

	run(SBX_PROFILE_EXEC, NULL, child_denied, NULL, &r);
	expect_exit(&r, 0, "exec");
	run(SBX_PROFILE_EXEC_NET, NULL, child_denied, NULL, &r);
	expect_exit(&r, 0, "exec+net");
	/* Control: as root, ptrace(PTRACE_TRACEME) works without a filter. */
	if (geteuid() == 0) {
		run(SBX_PROFILE_COUNT, NULL, child_denied, NULL, &r);
		expect_exit(&r, 10, "no filter");
	}
}

/* ---- sockets ---------------------------------------------------------------------------- */

/* 0 if socket(domain, type) is allowed (created, or refused by the kernel
 * itself for another reason than EPERM), else 1. */
static int try_socket(unsigned long domain, unsigned long type)
{
	long fd = syscall(SYS_socket, domain, type, 0);

	if (fd >= 0) {
		close((int)fd);
		return 0;
	}
	return errno == EPERM ? 1 : 0;
}

static int child_sockets(void *arg)
{
	bool net = arg != NULL;
	int sv[2];

	/* AF_UNIX, in every profile, with flags in the type's high bits. */
	CHECK(try_socket(AF_UNIX, SOCK_STREAM) == 0, 10);
	CHECK(try_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC) == 0, 11);
	CHECK(try_socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC) == 0, 12);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, 13);
	close(sv[0]);
	close(sv[1]);
	/* Never: netlink, packet, raw sockets, whatever the flags or high bits. */
	CHECK(try_socket(AF_NETLINK, SOCK_RAW) == 1, 15);
	CHECK(try_socket(AF_NETLINK, SOCK_DGRAM) == 1, 16);
	CHECK(try_socket(AF_PACKET, SOCK_RAW) == 1, 17);
	CHECK(try_socket(AF_INET, SOCK_RAW) == 1, 18);
	CHECK(try_socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC) == 1, 19);
	CHECK(try_socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK) == 1, 20);
	CHECK(try_socket(AF_INET, HIGH | SOCK_RAW) == 1, 21);
	CHECK(try_socket(AF_INET, SOCK_PACKET) == 1, 22);
	CHECK(try_socket(HIGH | AF_NETLINK, SOCK_DGRAM) == 1, 23);
	/* IPv4 and IPv6 TCP and UDP: exec+net only. */
	CHECK(try_socket(AF_INET, SOCK_STREAM) == !net, 24);
	CHECK(try_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC) == !net, 25);
	CHECK(try_socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK) == !net, 26);
	CHECK(try_socket(AF_INET6, SOCK_DGRAM) == !net, 27);
	CHECK(try_socket(HIGH | AF_INET, SOCK_STREAM) == !net, 28);
	/* socketpair() is for AF_UNIX only (the kernel would say EOPNOTSUPP). */
	CHECK_ERR(socketpair(AF_INET, SOCK_STREAM, 0, sv), EPERM, 29);
	return 0;
}

static void test_sockets(void **state)
{
	struct result r;

	run(SBX_PROFILE_EXEC, NULL, child_sockets, NULL, &r);
	expect_exit(&r, 0, "exec");
	run(SBX_PROFILE_EXEC_NET, NULL, child_sockets, (void *)1, &r);
	expect_exit(&r, 0, "exec+net");
	/* Control: as root, netlink and raw sockets work without a filter. */
	if (geteuid() == 0) {
		run(SBX_PROFILE_COUNT, NULL, child_sockets, (void *)1, &r);
		expect_exit(&r, 15, "no filter");
	}
}

/* exec+net for real: a TCP round trip over loopback in python. */
static void test_exec_net_python(void **state)
{
	char *const python[] = {
	    "/usr/bin/python3", "-c",
	    "import socket, threading\n"
	    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
	    "def serve():\n"
	    "    c, _ = s.accept(); c.sendall(c.recv(16).upper()); c.close()\n"
	    "t = threading.Thread(target=serve); t.start()\n"
	    "c = socket.create_connection(s.getsockname()); c.sendall(b'ping')\n"
	    "assert c.recv(16) == b'PING'; t.join()\n",
	    NULL};
	struct result r;

	if (!have(python[0]))
		SKIP_NEEDS("%s missing (deps.sh --test installs it)", python[0]);
	run_program(SBX_PROFILE_EXEC_NET, "python3 tcp", python);
	run(SBX_PROFILE_EXEC, (char *const *)python, NULL, NULL, &r);
	assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
	assert_non_null(strstr(r.out, "PermissionError"));
}

/* ---- socket protocols ------------------------------------------------------------------- */

#ifndef IPPROTO_L2TP
#define IPPROTO_L2TP 115 /* <linux/in.h>, which clashes with <netinet/in.h> */
#endif

/*
 * socket(2) calls under exec+net, each tried for AF_INET, AF_INET6 and
 * AF_INET with garbage in the domain's high half. `own` marks the refused
 * protocols the kernel itself implements here (MPTCP, UDP-Lite): only the
 * filter stands between a task and them, and the control run shows that
 * they are created without it. The kernel reads the protocol as an int, so
 * HIGH | IPPROTO_TCP is TCP to it and is allowed (the filter compares the
 * low 32 bits, as the kernel reads them), and no high bits make MPTCP pass.
 */
struct sock_case {
	const char *what;
	unsigned long long type, protocol;
	bool allowed, own;
};

#define NB_CX (SOCK_NONBLOCK | SOCK_CLOEXEC)

/* clang-format off */
static const struct sock_case sock_cases[] = {
	{"stream 0",               SOCK_STREAM,          0,                       true,   false},
	{"stream TCP",             SOCK_STREAM,          IPPROTO_TCP,             true,   false},
	{"stream|flags TCP",       SOCK_STREAM | NB_CX,  IPPROTO_TCP,             true,   false},
	{"stream high|TCP",        SOCK_STREAM,          HIGH | IPPROTO_TCP,      true,   false},
	{"stream|flags high|0",    SOCK_STREAM | NB_CX,  0xffffffff00000000ULL,   true,   false},
	{"dgram 0",                SOCK_DGRAM,           0,                       true,   false},
	{"dgram UDP",              SOCK_DGRAM,           IPPROTO_UDP,             true,   false},
	{"dgram|flags 0",          SOCK_DGRAM | NB_CX,   0,                       true,   false},
	{"dgram|flags UDP",        SOCK_DGRAM | NB_CX,   IPPROTO_UDP,             true,   false},
	{"dgram high|UDP",         SOCK_DGRAM,           HIGH | IPPROTO_UDP,      true,   false},
	{"stream MPTCP",           SOCK_STREAM,          IPPROTO_MPTCP,           false,  true},
	{"stream|flags MPTCP",     SOCK_STREAM | NB_CX,  IPPROTO_MPTCP,           false,  true},
	{"stream high|MPTCP",      SOCK_STREAM,          HIGH | IPPROTO_MPTCP,    false,  true},
	{"high|stream MPTCP",      HIGH | SOCK_STREAM,   IPPROTO_MPTCP,           false,  true},
	{"dgram UDP-Lite",         SOCK_DGRAM,           IPPROTO_UDPLITE,         false,  true},
	{"dgram|flags UDP-Lite",   SOCK_DGRAM | NB_CX,   IPPROTO_UDPLITE,         false,  true},
	{"dgram high|UDP-Lite",    SOCK_DGRAM,           HIGH | IPPROTO_UDPLITE,  false,  true},
	{"stream SCTP",            SOCK_STREAM,          IPPROTO_SCTP,            false,  false},
	{"seqpacket SCTP",         SOCK_SEQPACKET,       IPPROTO_SCTP,            false,  false},
	{"dgram L2TP",             SOCK_DGRAM,           IPPROTO_L2TP,            false,  false},
	{"dgram ICMP",             SOCK_DGRAM,           IPPROTO_ICMP,            false,  false},
	{"dgram ICMPv6",           SOCK_DGRAM,           IPPROTO_ICMPV6,          false,  false},
	{"stream UDP",             SOCK_STREAM,          IPPROTO_UDP,             false,  false},
	{"dgram TCP",              SOCK_DGRAM,           IPPROTO_TCP,             false,  false},
	/* Only exact low halves pass (MPTCP, 0x106, would be TCP to a byte mask). */
	{"stream 0x10006",         SOCK_STREAM,          0x10006,                 false,  false},
	{"stream -1",              SOCK_STREAM,          0xffffffffULL,           false,  false},
	{"dgram high|0x80000011",  SOCK_DGRAM,           HIGH | 0x80000011ULL,    false,  false},
};
/* clang-format on */

static const unsigned long long sock_domains[] = {AF_INET, AF_INET6, HIGH | AF_INET};

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static long raw_socket(unsigned long long domain, unsigned long long type,
		       unsigned long long protocol)
{
	return syscall(SYS_socket, domain, type, protocol);
}

/* Under exec+net: every case gets its verdict. Allowed sockets must be
 * created (ENOSYS would be a hole in the rules: the default action), unless
 * the kernel has no IPv6; refused ones answer EPERM. */
static int child_protocols(void *arg)
{
	int bad = 0;

	for (size_t d = 0; d < LEN(sock_domains); d++)
		for (size_t i = 0; i < LEN(sock_cases); i++) {
			const struct sock_case *c = &sock_cases[i];
			unsigned long long domain = sock_domains[d];
			long fd = raw_socket(domain, c->type, c->protocol);
			int e = errno;

			if (fd >= 0)
				close((int)fd);
			if (c->allowed ? fd >= 0 || (e == EAFNOSUPPORT && domain == AF_INET6)
				       : fd < 0 && e == EPERM)
				continue;
			dprintf(1, "domain %#llx, %s: %s, expected %s\n", domain, c->what,
				fd >= 0 ? "created" : strerror(e),
				c->allowed ? "a socket" : "EPERM");
			bad = 1;
		}
	return bad;
}

/* Bits of child_protocols_control()'s exit status. */
#define CONTROL_KERNEL_EPERM 1 /* the kernel itself answered EPERM: the test proves nothing */
#define CONTROL_NOT_OWN 2      /* MPTCP or UDP-Lite is not available on this kernel */
#define CONTROL_NOT_INT 4      /* the kernel did not read the protocol as an int */

static int so_protocol(long fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0 ? v : -1;
}

/* Without a filter: what the kernel itself says to the refused cases.
 * SCTP and L2TP are left out: asking for them may load a kernel module. */
static int child_protocols_control(void *arg)
{
	int bits = 0;

	for (size_t d = 0; d < LEN(sock_domains); d++)
		for (size_t i = 0; i < LEN(sock_cases); i++) {
			const struct sock_case *c = &sock_cases[i];
			unsigned long long domain = sock_domains[d];
			long fd;
			int e;

			if (c->allowed || c->protocol == IPPROTO_SCTP ||
			    c->protocol == IPPROTO_L2TP)
				continue;
			fd = raw_socket(domain, c->type, c->protocol);
			e = errno;
			if (fd >= 0) {
				dprintf(1, "domain %#llx, %s: created (protocol %d)\n", domain,
					c->what, so_protocol(fd));
				close((int)fd);
			} else {
				dprintf(1, "domain %#llx, %s: %s\n", domain, c->what, strerror(e));
			}
			if (fd < 0 && e == EPERM)
				bits |= CONTROL_KERNEL_EPERM;
			if (c->own && fd < 0 && !(e == EAFNOSUPPORT && domain == AF_INET6))
				bits |= CONTROL_NOT_OWN;
		}
	/* The kernel drops the high half: TCP, and MPTCP when it has it. */
	{
		long fd = raw_socket(AF_INET, SOCK_STREAM, HIGH | IPPROTO_TCP);

		if (fd < 0 || so_protocol(fd) != IPPROTO_TCP)
			bits |= CONTROL_NOT_INT;
		if (fd >= 0)
			close((int)fd);
		fd = raw_socket(AF_INET, SOCK_STREAM, HIGH | IPPROTO_MPTCP);
		if (fd >= 0 && so_protocol(fd) != IPPROTO_MPTCP)
			bits |= CONTROL_NOT_INT;
		if (fd >= 0)
			close((int)fd);
	}
	return bits;
}

/*
 * exec+net: IPv4 and IPv6 sockets are TCP or UDP, whatever the SOCK_*
 * flags or the high bits; MPTCP, UDP-Lite, SCTP, L2TP/IP and ICMP answer
 * EPERM. exec+net@1 let MPTCP and UDP-Lite sockets be created.
 */
static void test_exec_net_protocols(void **state)
{
	struct result r;
	int bits;

	run(SBX_PROFILE_EXEC_NET, NULL, child_protocols, NULL, &r);
	expect_exit(&r, 0, "exec+net");
	/* Control: the kernel itself never answers EPERM to these (so EPERM
	 * above came from the filter), and creates MPTCP and UDP-Lite sockets,
	 * so that refusing them is the filter's doing. */
	run(SBX_PROFILE_COUNT, NULL, child_protocols_control, NULL, &r);
	assert_true(WIFEXITED(r.status));
	bits = WEXITSTATUS(r.status);
	if (bits & ~(CONTROL_KERNEL_EPERM | CONTROL_NOT_OWN | CONTROL_NOT_INT))
		fail_msg("no filter: exit %d\n%s", bits, r.out);
	if (bits & CONTROL_KERNEL_EPERM)
		fail_msg("no filter: the kernel answers EPERM itself; EPERM does not show the "
			 "filter's refusal:\n%s",
			 r.out);
	if (bits & CONTROL_NOT_INT)
		fail_msg("no filter: the kernel does not read the protocol as a 32-bit int");
	if (bits & CONTROL_NOT_OWN)
		print_message("NOTE: this kernel refuses MPTCP or UDP-Lite even without a filter; "
			      "for those the test only shows that the filter answers EPERM where "
			      "the kernel would answer otherwise:\n%s",
			      r.out);
}

/*
 * Every type (with and without flags) and protocol 0..511, and a few
 * with high bits: under exec+net exactly TCP and UDP are created and all
 * else answers EPERM - never ENOSYS, which would be a value no rule
 * covers; under exec every IPv4 and IPv6 socket answers EPERM.
 */
static int child_inet_sweep(void *arg)
{
	/* clang-format off */
	static const unsigned long long odd[] = {
		HIGH, HIGH | IPPROTO_TCP, HIGH | IPPROTO_UDP, 0xffffffff00000006ULL,
		HIGH | IPPROTO_MPTCP, HIGH | IPPROTO_UDPLITE,
		0x80000006ULL, 0x10006ULL, 0x10011ULL, 0xffffffffULL,
	};
	/* clang-format on */
	static const int domains[] = {AF_INET, AF_INET6};
	bool net = arg != NULL;
	int bad = 0;

	for (size_t d = 0; d < LEN(domains); d++)
		for (unsigned type = 0; type < 32; type++) {
			unsigned long long t =
			    (type & 0xf) | (type & 0x10 ? SOCK_NONBLOCK | SOCK_CLOEXEC : 0);

			for (unsigned i = 0; i < 512 + LEN(odd); i++) {
				unsigned long long p = i < 512 ? i : odd[i - 512];
				uint32_t low = (uint32_t)p;
				bool allowed = net && (((type & 0xf) == SOCK_STREAM &&
							(low == 0 || low == IPPROTO_TCP)) ||
						       ((type & 0xf) == SOCK_DGRAM &&
							(low == 0 || low == IPPROTO_UDP)));
				long fd = raw_socket(domains[d], t, p);
				int e = errno;

				if (fd >= 0)
					close((int)fd);
				if (allowed ? fd >= 0 || (e == EAFNOSUPPORT && d == 1)
					    : fd < 0 && e == EPERM)
					continue;
				if (bad++ < 20)
					dprintf(1, "socket(%d, %#llx, %#llx): %s\n", domains[d], t,
						p, fd >= 0 ? "created" : strerror(e));
			}
		}
	return bad ? 1 : 0;
}

static void test_inet_sweep(void **state)
{
	struct result r;

	run(SBX_PROFILE_EXEC_NET, NULL, child_inet_sweep, (void *)1, &r);
	expect_exit(&r, 0, "exec+net");
	run(SBX_PROFILE_EXEC, NULL, child_inet_sweep, NULL, &r);
	expect_exit(&r, 0, "exec");
}

/* ---- foreign ABIs ----------------------------------------------------------------------- */

static int child_x32(void *arg)
{
#if defined(__x86_64__)
	long ret = syscall(0x40000000L | __NR_getpid);

	return ret == getpid() ? 0 : 5;
#else
	return 4;
#endif
}

static void test_foreign_abi(void **state)
{
	struct result r;

#if !defined(__x86_64__)
	SKIP_HOST("not x86-64: no foreign ABI to try");
#endif
	/* x32 numbers: killed (bad arch) under every profile. test_sandbox.c
	 * covers int 0x80 for strict and exec as well. */
	for (int i = 0; i < SBX_PROFILE_COUNT; i++) {
		run((enum sbx_profile)i, NULL, child_x32, NULL, &r);
		assert_true(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSYS);
	}
}

/* ---- main ------------------------------------------------------------------------------- */

static int setup(void **state)
{
	if (!mkdtemp(workdir))
		return -1;
	for (int i = 0; i < SBX_PROFILE_COUNT; i++)
		if (filter_compile((enum sbx_profile)i, &filters[i]) < 0)
			return -1;
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < SBX_PROFILE_COUNT; i++)
		sbx_filter_release(&filters[i]);
	return rmdir(workdir) == 0 ? 0 : -1;
}

/* ---- strict: what worker slots rely on ------------------------------------------------- */

static bool strict_may(const struct policy *pol, const char *name)
{
	for (size_t i = 0; pol->allowed && pol->allowed[i]; i++)
		if (!strcmp(pol->allowed[i], name))
			return true;
	for (size_t i = 0; pol->rules && pol->rules[i].syscall; i++)
		if (!strcmp(pol->rules[i].syscall, name) && pol->rules[i].action == SCMP_ACT_ALLOW)
			return true;
	for (size_t t = 0; pol->splits && pol->splits[t]; t++)
		for (const struct policy_split *sp = pol->splits[t]; sp->syscall; sp++)
			if (!strcmp(sp->syscall, name))
				return true;
	return false;
}

/*
 * C tasks share their worker slot's PID, mount, IPC and UTS namespaces
 * from job to job (sandbox/sbx_init.c) because the strict profile lets a
 * task leave nothing there: no process or thread, no file or node (in
 * /tmp or anywhere), no mount, no IPC object, no host name, no namespace
 * of its own. A call added to the profile that could leave something must
 * end that sharing first: this list says which.
 */
static void test_strict_leaves_nothing(void **state)
{
	static const char *const leaving[] = {
		"clone", "clone3", "fork", "vfork", "execve", "execveat",
		"open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at",
		"mkdir", "mkdirat", "mknod", "mknodat", "link", "linkat", "symlink", "symlinkat",
		"rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir",
		"truncate", "chmod", "fchmodat", "chown", "fchownat", "lchown", "utimensat",
		"setxattr", "lsetxattr", "fsetxattr", "removexattr", "memfd_create",
		"mount", "umount2", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
		"mount_setattr", "pivot_root", "chroot", "chdir", "fchdir",
		"shmget", "shmat", "semget", "msgget", "mq_open", "mq_unlink",
		"sethostname", "setdomainname", "unshare", "setns", "ptrace",
		"socket", "socketpair", "bind", "kill", "tkill", "rt_sigqueueinfo",
		"prctl", "setrlimit", "setpriority", "ioctl",
		NULL,
	};
	const struct policy *pol = policy_of(SBX_PROFILE_STRICT);

	assert_non_null(pol);
	assert_true(pol->default_action != SCMP_ACT_ALLOW);
	for (size_t i = 0; leaving[i]; i++)
		if (strict_may(pol, leaving[i]))
			fail_msg("the strict profile allows %s", leaving[i]);
	/* The check itself sees what the profile allows. */
	assert_true(strict_may(pol, "write"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strict_leaves_nothing),
	    cmocka_unit_test(test_names),	    cmocka_unit_test(test_compile),
	    cmocka_unit_test(test_compile_all),
	    cmocka_unit_test(test_exec_programs),   cmocka_unit_test(test_exec_unlisted),
	    cmocka_unit_test(test_exec_denied),	    cmocka_unit_test(test_sockets),
	    cmocka_unit_test(test_exec_net_python), cmocka_unit_test(test_exec_net_protocols),
	    cmocka_unit_test(test_inet_sweep),	    cmocka_unit_test(test_foreign_abi),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
