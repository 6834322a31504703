/*
 * filter.c - compiling the seccomp profiles, once, in the daemon.
 *
 * Theory of operation: the policy itself is in policy.c, as tables a
 * reviewer reads there and nowhere else. filter_compile() feeds a
 * profile's tables to libseccomp for the native architecture only, exports
 * the resulting classic BPF into a memfd with seccomp_export_bpf() and
 * reads it back into a malloc'd struct sock_filter array. A job child then
 * loads that array with one seccomp(2) call, without libseccomp and
 * without malloc, which is also cheaper than running seccomp_load() in
 * every child.
 *
 * Foreign ABIs: the filter only knows the native arch, and
 * SCMP_FLTATR_ACT_BADARCH is the profile's foreign_abi_action (policy.c:
 * KILL_PROCESS for strict, ENOSYS for the exec profiles), so i386 `int 0x80`
 * from an x86_64 task is refused before any rule is read. On x86_64
 * libseccomp also sends x32 system calls (numbers with __X32_SYSCALL_BIT
 * set) to the bad-arch action, so x32 is refused as well;
 * tests/unit/test_sandbox.c checks both.
 *
 * Arguments: the kernel truncates most integer arguments to 32 bits
 * (int, unsigned int), while libseccomp compares all 64 bits. Every
 * comparison that *allows* something on such an argument therefore masks
 * it or pins the high half to zero, so garbage in the upper 32 bits cannot
 * turn a denied value into an allowed one (the bubblewrap TIOCSTI lesson).
 * The splits (filter_split_walk) only ever compare masked values.
 *
 * Trap data: the strict profile traps (SIGSYS), and the task's own SIGSYS
 * reporter tells the daemon which call it was (sbx_child.c). That report is
 * the task's word, which the task can forge. So every trap of a program
 * returns SECCOMP_RET_TRAP with a secret in SECCOMP_RET_DATA: 16 random
 * bits drawn once per daemon (filter_trap_data), patched into the exported
 * BPF, since libseccomp's SCMP_ACT_TRAP takes no data. The kernel copies
 * it into the trap's siginfo (si_errno), the reporter sends it along, and
 * the daemon believes a report only when it matches (run_io.c). The task
 * cannot read it: the kernel keeps the loaded program to itself, the
 * daemon's copy is in another process, the spawner's copy is unmapped in
 * each C task's child once loaded, and the siginfo of a trap is only ever
 * seen by the reporter, after which the task never runs again. What is
 * left is a guess, right once in 65535 jobs, since a job gets one try: a
 * report that does not match spoils every other of its run (run_io.c).
 *
 * Also here: syscall names, to say which call a job was refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "filter.h"
#include "policy_tables.h"

/* Resolve a name on the native arch; an unknown name is a policy hole (or
 * a typo): refuse to build the filter. */
static int filter_add(scmp_filter_ctx ctx, const char *name, uint32_t action, unsigned int argc,
		   const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return -ENOSYS;
	return seccomp_rule_add_array(ctx, action, nr, argc, cmp);
}

static int filter_add_names(scmp_filter_ctx ctx, const char *const *names, uint32_t action)
{
	int rc = 0;

	for (; names && *names && rc == 0; names++)
		rc = filter_add(ctx, *names, action, 0, NULL);
	return rc;
}

static int filter_add_rules(scmp_filter_ctx ctx, const struct policy_rule *r)
{
	int rc = 0;

	for (; r && r->syscall && rc == 0; r++) {
		struct scmp_arg_cmp cmp[2] = {
		    {.arg = r->arg, .op = r->op, .datum_a = r->datum_a, .datum_b = r->datum_b},
		    {.arg = r->arg2, .op = r->op2, .datum_a = r->datum2_a, .datum_b = r->datum2_b}};

		rc = filter_add(ctx, r->syscall, r->action, r->op ? (r->op2 ? 2 : 1) : 0, cmp);
	}
	return rc;
}

/*
 * A split, written as rules. libseccomp cannot put two comparisons on one
 * argument, and an unconditional rule on a call swallows every
 * conditional one with another action, so "every value but these" is
 * spelled out: a walk down the binary trie of (argument & mask), high bit
 * to low, where every subtree that holds none of the set's values becomes
 * one masked equality with out_action, and every value of the set (a leaf)
 * one with in_action. Together the rules cover each value exactly once, so
 * their order in the BPF does not matter. At most 32 rules per value.
 * Every rule also carries the split's preconditions (ANDed, on other
 * arguments); so the splits of a call still cover each call exactly once
 * as long as the values a split leaves POLICY_DECIDED_ELSEWHERE are exactly
 * the preconditions of the splits below it (policy.c).
 */
static int filter_split_walk(scmp_filter_ctx ctx, const struct policy_split *s, uint32_t fixed_mask,
			  uint32_t fixed_value)
{
	struct scmp_arg_cmp cmp[1 + sizeof(s->only_if) / sizeof(s->only_if[0])] = {
	    {.arg = s->arg,
	     .op = SCMP_CMP_MASKED_EQ,
	     .datum_a = fixed_mask,
	     .datum_b = fixed_value},
	};
	unsigned int argc = 1 + (unsigned int)s->n_if;
	uint32_t rest = s->mask & ~fixed_mask, bit;
	size_t i, hits = 0;
	int rc;

	for (i = 0; i < s->n_if; i++)
		cmp[1 + i] = (struct scmp_arg_cmp){.arg = s->only_if[i].arg,
						   .op = SCMP_CMP_MASKED_EQ,
						   .datum_a = s->only_if[i].mask,
						   .datum_b = s->only_if[i].value};
	for (i = 0; i < s->n; i++)
		hits += (s->values[i] & fixed_mask) == fixed_value;
	if (hits == 0)
		return filter_add(ctx, s->syscall, s->out_action, argc, cmp);
	if (rest == 0) /* a value of the set */
		return s->in_action == POLICY_DECIDED_ELSEWHERE
			   ? 0
			   : filter_add(ctx, s->syscall, s->in_action, argc, cmp);
	bit = 1U << (31 - __builtin_clz(rest));
	rc = filter_split_walk(ctx, s, fixed_mask | bit, fixed_value);
	if (rc == 0)
		rc = filter_split_walk(ctx, s, fixed_mask | bit, fixed_value | bit);
	return rc;
}

/*
 * A table mistake must not compile into a filter that means something
 * else: values outside the mask could never match, and a precondition on
 * the split's own argument (or twice on one argument) is a second
 * comparison on it, which libseccomp cannot express.
 */
static int filter_split_check(const struct policy_split *s)
{
	unsigned int args; /* one bit per argument compared */

	if (s->arg >= 6 || s->n == 0 || s->n > sizeof(s->values) / sizeof(s->values[0]) ||
	    s->n_if > sizeof(s->only_if) / sizeof(s->only_if[0]))
		return -EINVAL;
	for (size_t i = 0; i < s->n; i++)
		if ((s->values[i] & ~s->mask) != 0)
			return -EINVAL;
	args = 1U << s->arg;
	for (size_t i = 0; i < s->n_if; i++) {
		const struct policy_cond *c = &s->only_if[i];

		if (c->arg >= 6 || (args & (1U << c->arg)) || (c->value & ~c->mask) != 0)
			return -EINVAL;
		args |= 1U << c->arg;
	}
	return 0;
}

static int filter_add_splits(scmp_filter_ctx ctx, const struct policy_split *const *tables)
{
	int rc = 0;

	for (; tables && *tables && rc == 0; tables++)
		for (const struct policy_split *s = *tables; s->syscall && rc == 0; s++) {
			rc = filter_split_check(s);
			if (rc == 0)
				rc = filter_split_walk(ctx, s, 0, 0);
		}
	return rc;
}

static int filter_build(scmp_filter_ctx ctx, const struct policy *p, bool forker)
{
	int rc = filter_add_names(ctx, p->allowed, SCMP_ACT_ALLOW);

	if (rc == 0)
		rc = filter_add_names(ctx, p->denied, SCMP_ACT_ERRNO(EPERM));
	if (rc == 0)
		rc = filter_add_rules(ctx, p->rules);
	if (rc == 0 && forker)
		rc = filter_add_rules(ctx, p->forker_rules);
	if (rc == 0)
		rc = filter_add_splits(ctx, p->splits);
	return rc;
}

/* The secret of the traps: 1..65535, drawn at the first compile. */
static uint16_t filter_trap_secret;

static int filter_trap_secret_draw(void)
{
	uint16_t v = 0;

	while (filter_trap_secret == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		filter_trap_secret = v;
	}
	return 0;
}

uint16_t filter_trap_data(void)
{
	return filter_trap_secret;
}

/* Every `ret TRAP` of the program carries the secret as its data. */
static void filter_trap_mark(struct sbx_filter *f)
{
	struct sock_filter *insns = f->insns;

	for (unsigned i = 0; i < f->len; i++)
		if (insns[i].code == (BPF_RET | BPF_K) && insns[i].k == SECCOMP_RET_TRAP)
			insns[i].k = SECCOMP_RET_TRAP | filter_trap_secret;
}

/* Export ctx as BPF and read it back into a new sock_filter array. */
static int filter_export(scmp_filter_ctx ctx, struct sbx_filter *out)
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

/*
 * Program i: a profile's (enum sbx_profile), or SBX_FILTER_FORKER, the
 * strict profile with its forker_rules: the program a slot's forker loads
 * (sandbox/spawner_forker.c), whose clone rule names SBX_FORKER_PLACEHOLDER
 * where the forker puts its own secret before it loads it.
 */
int filter_compile(int i, struct sbx_filter *out)
{
	bool forker = i == SBX_FILTER_FORKER;
	const struct policy *policy = policy_of(forker ? SBX_PROFILE_STRICT : (enum sbx_profile)i);
	scmp_filter_ctx ctx;
	int rc;

	if (out == NULL)
		return -EINVAL;
	out->insns = NULL;
	out->len = 0;
	out->mapped = false;
	if (policy == NULL)
		return -EINVAL;

	if (policy->default_action == SCMP_ACT_TRAP) {
		rc = filter_trap_secret_draw();
		if (rc < 0)
			return rc;
	}
	ctx = seccomp_init(policy->default_action);
	if (ctx == NULL)
		return -ENOMEM;
	/* seccomp_init() adds only the native arch; foreign ABIs are refused. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, policy->foreign_abi_action);
	/* A binary tree over syscall numbers instead of a linear chain: the
	 * kernel emulates the filter once per syscall number when it attaches
	 * it (the action cache), inside a lock, in every job child - the
	 * shorter path to each verdict makes that several times cheaper. */
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc == 0)
		rc = filter_build(ctx, policy, forker);
	if (rc == 0)
		rc = filter_export(ctx, out);
	if (rc == 0)
		filter_trap_mark(out);
	seccomp_release(ctx);
	return rc;
}

int filter_compile_all(struct sbx_filter *out, enum sbx_profile *failed)
{
	int rc = 0;

	memset(out, 0, sizeof(*out) * SBX_NFILTERS);
	for (int i = 0; i < SBX_NFILTERS && rc == 0; i++) {
		*failed = i == SBX_FILTER_FORKER ? SBX_PROFILE_STRICT : (enum sbx_profile)i;
		rc = filter_compile(i, &out[i]);
	}
	if (rc < 0)
		for (int i = 0; i < SBX_NFILTERS; i++)
			filter_release(&out[i]);
	return rc;
}

void filter_release(struct sbx_filter *f)
{
	if (f == NULL)
		return;
	free(f->insns);
	f->insns = NULL;
	f->len = 0;
}

void filter_syscall_name(int nr, char *out, size_t outlen)
{
	char *name;
	size_t n;

	if (out == NULL || outlen == 0)
		return;
	out[0] = '\0';
	if (nr < 0)
		return;
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
