/*
 * attacks.h - raw system calls a sandboxed task must not get to make, shared
 * by the C plugin (hostile.c, task hostile_syscall: the strict profile kills
 * the task and names the call) and the exec program (hostile_exec.c: the exec
 * profile refuses with an errno, or kills for a foreign ABI).
 *
 * Theory of operation: each attack is one system call made with syscall(),
 * so that libc cannot turn it into another one, with arguments that are
 * harmless even if the sandbox let it through (wrong reboot magic, invalid
 * kexec flags, a NULL module image, a missing fd). `syscall` is the name
 * seccomp sees, which the supervisor puts in the failure_reason of a C task;
 * NULL for the foreign-ABI calls, which the filter kills without a name.
 * `target` is a pid (task_params.pid; the parent when absent). The malloc
 * bomb, shared too, is at the end.
 */
#ifndef VALET_TEST_ATTACKS_H
#define VALET_TEST_ATTACKS_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/netlink.h>
#include <unistd.h>

struct hostile_attack {
	const char *name;
	const char *syscall;
	long (*fn)(long target);
};

static long hattack_ptrace(long target)
{
	return syscall(SYS_ptrace, (long)PTRACE_ATTACH, target, 0L, 0L);
}

static long hattack_process_vm_readv(long target)
{
	char buf[8];
	struct iovec local = {buf, sizeof(buf)};
	struct iovec remote = {(void *)0x10000, sizeof(buf)};

	return syscall(SYS_process_vm_readv, target, &local, 1L, &remote, 1L, 0L);
}

static long hattack_unshare_user(long target)
{
	return syscall(SYS_unshare, (long)CLONE_NEWUSER);
}

static long hattack_clone_user(long target)
{
	long r = syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0L, 0L, 0L, 0L);

	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r;
}

static long hattack_setns(long target)
{
	return syscall(SYS_setns, -1L, (long)CLONE_NEWNET);
}

static long hattack_io_uring(long target)
{
#ifdef SYS_io_uring_setup
	/* struct io_uring_params is 120 bytes; zeroed is a valid request. */
	static char uparams[120];

	return syscall(SYS_io_uring_setup, 1L, uparams);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static long hattack_perf_event(long target)
{
	/* size 0 means the original 64-byte struct perf_event_attr. */
	static char attr[128];

	return syscall(SYS_perf_event_open, attr, 0L, -1L, -1L, 0L);
}

static long hattack_bpf(long target)
{
	static char attr[128]; /* BPF_MAP_CREATE of nothing */

	return syscall(SYS_bpf, 0L, attr, (long)sizeof(attr));
}

static long hattack_keyctl(long target)
{
	/* KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING, no create. */
	return syscall(SYS_keyctl, 0L, -3L, 0L);
}

static long hattack_add_key(long target)
{
	/* A "user" key in KEY_SPEC_PROCESS_KEYRING. */
	return syscall(SYS_add_key, "user", "valet-hostile", "x", 1L, -2L);
}

static long hattack_mount(long target)
{
	return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL);
}

static long hattack_umount(long target)
{
	return syscall(SYS_umount2, "/proc", (long)MNT_DETACH);
}

static long hattack_tiocsti(long target)
{
	static const char c = 'x';

	return syscall(SYS_ioctl, 0L, (long)TIOCSTI, &c);
}

static long hattack_personality(long target)
{
	long r = syscall(SYS_personality, (long)READ_IMPLIES_EXEC);

	if (r >= 0)
		syscall(SYS_personality, r);
	return r;
}

static long hattack_userfaultfd(long target)
{
	return syscall(SYS_userfaultfd, 0L);
}

static long hattack_kexec(long target)
{
	/* Flags that no kernel accepts: EINVAL if it ever got that far. */
	return syscall(SYS_kexec_load, 0L, 0L, NULL, 0x7ead0000L);
}

static long hattack_init_module(long target)
{
	return syscall(SYS_init_module, NULL, 0L, "");
}

static long hattack_reboot(long target)
{
	/* Wrong magic numbers: EINVAL if it ever got that far. */
	return syscall(SYS_reboot, 0xdeadL, 0xbeefL, 0L, NULL);
}

static long hattack_sethostname(long target)
{
	return syscall(SYS_sethostname, "pwned", 5L);
}

static long hattack_mknod(long target)
{
	return syscall(SYS_mknodat, (long)AT_FDCWD, "/tmp/valet-hostile-mknod",
		       (long)(S_IFCHR | 0666), (long)makedev(1, 3));
}

static long hattack_chown(long target)
{
	return syscall(SYS_fchownat, (long)AT_FDCWD, "/etc/passwd", 65534L, 65534L, 0L);
}

static long hattack_chmod(long target)
{
	return syscall(SYS_fchmodat, (long)AT_FDCWD, "/etc/passwd", 0666L);
}

static long hattack_rlimit_raise(long target)
{
	struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};

	return syscall(SYS_prlimit64, 0L, (long)RLIMIT_NPROC, &inf, NULL);
}

static long hattack_socket_netlink(long target)
{
	long fd = syscall(SYS_socket, (long)AF_NETLINK, (long)SOCK_RAW, (long)NETLINK_ROUTE);

	if (fd >= 0)
		close((int)fd);
	return fd;
}

static long hattack_shmget(long target)
{
	/* A System V segment that would outlive the job without an IPC
	 * namespace (IPC_RMID right away if it is ever created). */
	long id = syscall(SYS_shmget, (long)IPC_PRIVATE, 4096L, (long)(IPC_CREAT | 0600));

	if (id >= 0)
		syscall(SYS_shmctl, id, (long)IPC_RMID, NULL);
	return id;
}

static long hattack_int80(long target)
{
#if defined(__x86_64__)
	long r;

	/* i386 getpid (20) through the 32-bit entry point. */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
#else
	errno = ENOSYS;
	return -1;
#endif
}

static long hattack_x32(long target)
{
#if defined(__x86_64__)
	/* x32 getpid: __X32_SYSCALL_BIT | 39. */
	return syscall(0x40000000L | 39L);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static const struct hostile_attack hostile_attacks[] = {
	{"ptrace", "ptrace", hattack_ptrace},
	{"process_vm_readv", "process_vm_readv", hattack_process_vm_readv},
	{"unshare_user", "unshare", hattack_unshare_user},
	{"clone_user", "clone", hattack_clone_user},
	{"setns", "setns", hattack_setns},
	{"io_uring", "io_uring_setup", hattack_io_uring},
	{"perf_event", "perf_event_open", hattack_perf_event},
	{"bpf", "bpf", hattack_bpf},
	{"keyctl", "keyctl", hattack_keyctl},
	{"add_key", "add_key", hattack_add_key},
	{"mount", "mount", hattack_mount},
	{"umount", "umount2", hattack_umount},
	{"tiocsti", "ioctl", hattack_tiocsti},
	{"personality", "personality", hattack_personality},
	{"userfaultfd", "userfaultfd", hattack_userfaultfd},
	{"kexec", "kexec_load", hattack_kexec},
	{"init_module", "init_module", hattack_init_module},
	{"reboot", "reboot", hattack_reboot},
	{"sethostname", "sethostname", hattack_sethostname},
	{"mknod", "mknodat", hattack_mknod},
	{"chown", "fchownat", hattack_chown},
	{"chmod", "fchmodat", hattack_chmod},
	{"rlimit_raise", "prlimit64", hattack_rlimit_raise},
	{"socket_netlink", "socket", hattack_socket_netlink},
	{"shmget", "shmget", hattack_shmget},
	{"int80", NULL, hattack_int80},
	{"x32", NULL, hattack_x32},
};

/*
 * Not a system call, but the same in both: allocate 1 MiB blocks, chained
 * through their first word (into *sink) so that nothing can be optimized
 * away, until malloc returns NULL; then use the NULL as if it were memory
 * (SIGSEGV; not instrumented, so that a sanitizer build crashes the same
 * way). Stops after 64 GiB of address space (no limit in force) and
 * returns how many MiB it got, for the task to fail with.
 */
__attribute__((no_sanitize("address", "undefined"), noinline))
static size_t hattack_mallocbomb(volatile uint64_t *sink)
{
	void **head = NULL, **block = NULL;
	volatile char *volatile last;
	size_t n;

	for (n = 0; n < 65536; n++) {
		block = malloc(1024 * 1024);
		if (!block)
			break;
		*block = head;
		head = block;
	}
	last = (volatile char *)block;
	*sink = (uint64_t)(uintptr_t)head;
	if (last == NULL)
		*last = 1;
	return n;
}

static const struct hostile_attack *hostile_attack_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(hostile_attacks) / sizeof(hostile_attacks[0]); i++)
		if (strcmp(hostile_attacks[i].name, name) == 0)
			return &hostile_attacks[i];
	return NULL;
}

#endif
