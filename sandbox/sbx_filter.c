/*
 * sbx_filter.c - the seccomp policies, compiled once in the parent.
 *
 * Theory of operation: each profile is a static table of rules (syscall name,
 * action, at most one argument comparison), so a reviewer reads the whole
 * policy here and nowhere else. sbx_filter_compile() feeds a table to
 * libseccomp for the native architecture only, exports the resulting
 * classic BPF into a memfd with seccomp_export_bpf() and reads it back into
 * a malloc'd struct sock_filter array. A job child then loads that array
 * with one seccomp(2) call, without libseccomp and without malloc, which is
 * also cheaper than running seccomp_load() in every child.
 *
 * Foreign ABIs: the filter only knows the native arch, and
 * SCMP_FLTATR_ACT_BADARCH is KILL_PROCESS, so i386 `int 0x80` from an x86_64
 * task is killed. On x86_64 libseccomp also sends x32 system calls (numbers
 * with __X32_SYSCALL_BIT set) to the bad-arch action, so x32 is refused as
 * well; tests/unit/test_sandbox.c checks both.
 *
 * Arguments: the kernel truncates most integer arguments to 32 bits
 * (int, unsigned int), while libseccomp compares all 64 bits. Every
 * comparison that *allows* something on such an argument therefore masks
 * it or pins the high half to zero, so garbage in the upper 32 bits cannot
 * turn a denied value into an allowed one (the bubblewrap TIOCSTI lesson).
 *
 * Also here: syscall names for the supervisor (parent side, libseccomp
 * mallocs) and the user lookup done at startup.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

/* One rule: name, action and an optional comparison (op 0 = unconditional). */
struct sbx_rule {
	const char *syscall;
	uint32_t action;
	unsigned int arg;
	enum scmp_compare op;
	uint64_t datum_a;
	uint64_t datum_b;
};

/* The policy tables below are laid out for reading, not by clang-format. */
/* clang-format off */

/* SBX_RULE: unconditional. SBX_ARG: on argument `arg`; for
 * SCMP_CMP_MASKED_EQ, a is the mask and b the value, else b is unused. */
#define SBX_RULE(name, action) { (name), (action), 0, 0, 0, 0 }
#define SBX_ARG(name, action, arg, op, a, b) { (name), (action), (arg), (op), (a), (b) }

#define SBX_ALLOW SCMP_ACT_ALLOW
#define SBX_KILL SCMP_ACT_KILL_PROCESS
#define SBX_EPERM SCMP_ACT_ERRNO(EPERM)
#define SBX_LOW32 0xffffffffULL

/*
 * strict v1 - in-process C tasks. Default: SCMP_ACT_TRAP, so the SIGSYS
 * reporter installed by sbx_enter() learns the number before the process is
 * killed. A task may compute, allocate memory, read and write the fds it was
 * given, look at the clock, sleep and exit. It cannot open anything, create
 * processes or sockets, exec, or change its limits.
 */
static const struct sbx_rule strict_v1[] = {
	SBX_RULE("read", SBX_ALLOW),
	SBX_RULE("write", SBX_ALLOW),
	SBX_RULE("readv", SBX_ALLOW),
	SBX_RULE("writev", SBX_ALLOW),
	SBX_RULE("pread64", SBX_ALLOW),
	SBX_RULE("pwrite64", SBX_ALLOW),
	SBX_RULE("close", SBX_ALLOW),
	SBX_RULE("lseek", SBX_ALLOW),
	SBX_RULE("fstat", SBX_ALLOW),
	/* glibc's fstat(); AT_EMPTY_PATH must be set (masked: the flags are an int). */
	SBX_ARG("newfstatat", SBX_ALLOW, 3, SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH),
	SBX_RULE("mmap", SBX_ALLOW),
	SBX_RULE("munmap", SBX_ALLOW),
	SBX_RULE("mremap", SBX_ALLOW),
	SBX_RULE("brk", SBX_ALLOW),
	SBX_RULE("mprotect", SBX_ALLOW),
	SBX_RULE("madvise", SBX_ALLOW),
	SBX_RULE("exit", SBX_ALLOW),
	SBX_RULE("exit_group", SBX_ALLOW),
	SBX_RULE("rt_sigreturn", SBX_ALLOW),
	SBX_RULE("rt_sigprocmask", SBX_ALLOW),
	SBX_RULE("sigaltstack", SBX_ALLOW),
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
	SBX_RULE("clock_gettime", SBX_ALLOW),
	SBX_RULE("clock_getres", SBX_ALLOW),
	SBX_RULE("gettimeofday", SBX_ALLOW),
	SBX_RULE("time", SBX_ALLOW),
	SBX_RULE("nanosleep", SBX_ALLOW),
	SBX_RULE("clock_nanosleep", SBX_ALLOW),
	SBX_RULE("futex", SBX_ALLOW),
	SBX_RULE("getpid", SBX_ALLOW),
	SBX_RULE("gettid", SBX_ALLOW),
	SBX_RULE("tgkill", SBX_ALLOW),
	SBX_RULE("getrandom", SBX_ALLOW),
	SBX_RULE("sched_yield", SBX_ALLOW),
	SBX_RULE("restart_syscall", SBX_ALLOW),
	SBX_RULE("getrusage", SBX_ALLOW),
	/* getrlimit() only: new_limit (a pointer, all 64 bits) must be NULL. */
	SBX_ARG("prlimit64", SBX_ALLOW, 2, SCMP_CMP_EQ, 0, 0),
	SBX_ARG("fcntl", SBX_ALLOW, 1, SCMP_CMP_MASKED_EQ, SBX_LOW32, F_GETFL),
	SBX_ARG("fcntl", SBX_ALLOW, 1, SCMP_CMP_MASKED_EQ, SBX_LOW32, F_GETFD),
	SBX_RULE("poll", SBX_ALLOW),
	SBX_RULE("ppoll", SBX_ALLOW),
};

/*
 * exec v1 - exec'd programs. Default: SCMP_ACT_ALLOW. These are refused
 * with EPERM whatever their arguments: debugging other processes, kernel
 * attack surface (bpf, perf, keys, io_uring, userfaultfd), the mount API,
 * namespaces, kexec, modules, reboot, swap, accounting, quotas, the kernel
 * log and file handles (which bypass path permissions).
 */
static const char *const exec_v1_denied[] = {
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
};

/* exec v1, rules that look at arguments. */
static const struct sbx_rule exec_v1_rules[] = {
	/* Faking terminal input. The request is an unsigned int: mask it. */
	SBX_ARG("ioctl", SBX_EPERM, 1, SCMP_CMP_MASKED_EQ, SBX_LOW32, TIOCSTI),
	/* Same family (CVE-2023-28100, bubblewrap refuses it too). */
	SBX_ARG("ioctl", SBX_EPERM, 1, SCMP_CMP_MASKED_EQ, SBX_LOW32, TIOCLINUX),
	/* clone() that would create a namespace; unshare/setns are above. */
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWNS, CLONE_NEWNS),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWPID, CLONE_NEWPID),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWNET, CLONE_NEWNET),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWIPC, CLONE_NEWIPC),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWUTS, CLONE_NEWUTS),
	SBX_ARG("clone", SBX_EPERM, 0, SCMP_CMP_MASKED_EQ, CLONE_NEWCGROUP, CLONE_NEWCGROUP),
	/* clone3 passes its flags in memory, which seccomp cannot read:
	 * ENOSYS makes glibc fall back to clone(), which the rules above see. */
	SBX_RULE("clone3", SCMP_ACT_ERRNO(ENOSYS)),
	/* personality: see sbx_add_personality(). */
};

/* exec v1 without network: sockets of the AF_UNIX family only. Refusing a
 * call whose high bits are garbage is the safe direction, so a plain
 * 64-bit "not equal" is right here. */
static const struct sbx_rule exec_v1_nonet[] = {
	SBX_ARG("socket", SBX_EPERM, 0, SCMP_CMP_NE, AF_UNIX, 0),
	SBX_ARG("socketpair", SBX_EPERM, 0, SCMP_CMP_NE, AF_UNIX, 0),
};

/* clang-format on */

static int sbx_add_rule(scmp_filter_ctx ctx, const char *name, uint32_t action, unsigned int argc,
			const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);

	/* An unknown name is a policy hole: refuse to build the filter. */
	if (nr == __NR_SCMP_ERROR)
		return -ENOSYS;
	return seccomp_rule_add_array(ctx, action, nr, argc, cmp);
}

static int sbx_add_rules(scmp_filter_ctx ctx, const struct sbx_rule *rules, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct sbx_rule *r = &rules[i];
		struct scmp_arg_cmp cmp = {
		    .arg = r->arg, .op = r->op, .datum_a = r->datum_a, .datum_b = r->datum_b};
		int rc = sbx_add_rule(ctx, r->syscall, r->action, r->op ? 1 : 0, &cmp);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * personality(): allowed only for 0 (PER_LINUX) and 0xffffffff (query).
 * The kernel reads an unsigned int. libseccomp can neither put two
 * comparisons on one argument nor add ALLOW exceptions to an ALLOW-default
 * filter, so "neither 0 nor 0xffffffff" is written as a union of masked
 * equalities: such a 32-bit value has some bit i set whose cyclic
 * neighbour i+1 is clear (it has both ones and zeros, so going round there
 * is a 1 -> 0 step). The high 32 bits are ignored, as by the kernel.
 */
static int sbx_add_personality(scmp_filter_ctx ctx)
{
	unsigned int i;

	for (i = 0; i < 32; i++) {
		uint64_t bit = 1ULL << i;
		uint64_t next = 1ULL << ((i + 1) % 32);
		struct scmp_arg_cmp cmp = {
		    .arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = bit | next, .datum_b = bit};
		int rc = sbx_add_rule(ctx, "personality", SBX_EPERM, 1, &cmp);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int sbx_build(scmp_filter_ctx ctx, enum sbx_profile profile, bool allow_net)
{
	size_t i;
	int rc;

	if (profile == SBX_PROFILE_STRICT)
		return sbx_add_rules(ctx, strict_v1, sizeof(strict_v1) / sizeof(strict_v1[0]));

	for (i = 0; i < sizeof(exec_v1_denied) / sizeof(exec_v1_denied[0]); i++) {
		rc = sbx_add_rule(ctx, exec_v1_denied[i], SBX_EPERM, 0, NULL);
		if (rc < 0)
			return rc;
	}
	rc = sbx_add_rules(ctx, exec_v1_rules, sizeof(exec_v1_rules) / sizeof(exec_v1_rules[0]));
	if (rc == 0)
		rc = sbx_add_personality(ctx);
	if (rc == 0 && !allow_net)
		rc = sbx_add_rules(ctx, exec_v1_nonet,
				   sizeof(exec_v1_nonet) / sizeof(exec_v1_nonet[0]));
	return rc;
}

/* Export ctx as BPF and read it back into a new sock_filter array. */
static int sbx_export(scmp_filter_ctx ctx, struct sbx_filter *out)
{
	struct sock_filter *insns = NULL;
	off_t size;
	size_t got = 0;
	int fd, rc;

	fd = memfd_create("valet-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		goto fail;
	size = lseek(fd, 0, SEEK_END);
	if (size < 0) {
		rc = -errno;
		goto fail;
	}
	if (size == 0 || size % sizeof(struct sock_filter) != 0 ||
	    size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		rc = -E2BIG;
		goto fail;
	}
	insns = malloc((size_t)size);
	if (insns == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	while (got < (size_t)size) {
		ssize_t n = pread(fd, (char *)insns + got, (size_t)size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	out->insns = insns;
	out->len = (unsigned short)(size / sizeof(struct sock_filter));
	return 0;
fail:
	free(insns);
	close(fd);
	return rc;
}

int sbx_filter_compile(enum sbx_profile profile, bool allow_net, struct sbx_filter *out)
{
	scmp_filter_ctx ctx;
	uint32_t def;
	int rc;

	if (out == NULL)
		return -EINVAL;
	out->insns = NULL;
	out->len = 0;
	if (profile != SBX_PROFILE_STRICT && profile != SBX_PROFILE_EXEC)
		return -EINVAL;
	if (profile == SBX_PROFILE_STRICT && allow_net)
		return -EINVAL;

	def = profile == SBX_PROFILE_STRICT ? SCMP_ACT_TRAP : SCMP_ACT_ALLOW;
	ctx = seccomp_init(def);
	if (ctx == NULL)
		return -ENOMEM;
	/* seccomp_init() adds only the native arch; foreign ABIs are killed. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* A binary tree over syscall numbers instead of a linear chain: the
	 * kernel emulates the filter once per syscall number when it attaches
	 * it (the action cache), inside a lock, in every job child - the
	 * shorter path to each verdict makes that several times cheaper. */
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc == 0)
		rc = sbx_build(ctx, profile, allow_net);
	if (rc == 0)
		rc = sbx_export(ctx, out);
	seccomp_release(ctx);
	return rc;
}

void sbx_filter_release(struct sbx_filter *f)
{
	if (f == NULL)
		return;
	free(f->insns);
	f->insns = NULL;
	f->len = 0;
}

void sbx_syscall_name(int nr, char *out, size_t outlen)
{
	char *name;
	size_t n;

	if (out == NULL || outlen == 0)
		return;
	out[0] = '\0';
	if (nr < 0)
		return;
	/* Returns a new string (malloc): parent side only. */
	name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	if (name == NULL)
		return;
	n = strlen(name);
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, name, n);
	out[n] = '\0';
	free(name);
}

int sbx_lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t buflen = hint > 0 ? (size_t)hint : 4096;
	char *buf = NULL;
	int rc;

	if (name == NULL || name[0] == '\0' || uid == NULL || gid == NULL)
		return -EINVAL;
	for (;;) {
		char *nbuf = realloc(buf, buflen);

		if (nbuf == NULL) {
			rc = -ENOMEM;
			break;
		}
		buf = nbuf;
		rc = getpwnam_r(name, &pw, buf, buflen, &res);
		if (rc == ERANGE && buflen < (1U << 20)) {
			buflen *= 2;
			continue;
		}
		if (rc == 0 && res != NULL) {
			*uid = res->pw_uid;
			*gid = res->pw_gid;
		} else if (rc == 0 || rc == ENOENT || rc == ESRCH) {
			/* POSIX: "not found" is rc 0 with res NULL; some
			 * implementations return ENOENT/ESRCH instead. */
			rc = -ENOENT;
		} else {
			rc = -rc;
		}
		break;
	}
	free(buf);
	return rc;
}

bool sbx_can_switch_user(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (geteuid() == 0)
		return true;
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return (data[0].effective & (1u << CAP_SETUID)) && (data[0].effective & (1u << CAP_SETGID));
}
