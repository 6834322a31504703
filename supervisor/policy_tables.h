/*
 * policy_tables.h - the shape of a seccomp profile, between policy.c (the
 * tables a reviewer reads) and filter.c (which compiles them). Private to
 * those two: it brings libseccomp's header, whose ELF constants (EV_NONE)
 * collide with libev's.
 */
#ifndef VALET_POLICY_TABLES_H
#define VALET_POLICY_TABLES_H

#include <stddef.h>
#include <stdint.h>
#include <seccomp.h>

#include "policy.h"

/* One rule: name, action and up to two comparisons, ANDed (op 0 = none:
 * unconditional). For SCMP_CMP_MASKED_EQ, datum_a is the mask and datum_b
 * the value. */
struct policy_rule {
	const char *syscall;
	uint32_t action;
	unsigned int arg;
	enum scmp_compare op;
	uint64_t datum_a;
	uint64_t datum_b;
	unsigned int arg2; /* the second comparison, when op2 is not 0 */
	enum scmp_compare op2;
	uint64_t datum2_a;
	uint64_t datum2_b;
};

/*
 * A precondition of a split: the split's rules only apply to calls where
 * (argument arg & mask) == value.
 */
struct policy_cond {
	unsigned int arg;
	uint32_t mask;
	uint32_t value;
};

/*
 * A system call whose verdict depends on one argument: the value of
 * (argument & mask) is either in values[] (in_action) or not (out_action).
 * Both sides are written out as masked equalities (see filter.c), so
 * high bits outside mask never change the verdict. in_action
 * POLICY_DECIDED_ELSEWHERE adds no rule for the values in the set: other
 * splits, whose preconditions are those values, decide them. The first
 * n_if entries of only_if limit every rule of the split to the calls that
 * meet all of them; each names another argument (libseccomp puts at most
 * one comparison on an argument in a rule), and two are enough for
 * socket(domain, type, protocol).
 */
struct policy_split {
	const char *syscall;
	unsigned int arg;
	uint32_t mask;
	uint32_t in_action;
	uint32_t out_action;
	size_t n_if;
	struct policy_cond only_if[2];
	size_t n;
	uint32_t values[4];
};

/* Not a libseccomp action: "no rule here". */
#define POLICY_DECIDED_ELSEWHERE 0xffffffffU

struct policy {
	const char *name;
	unsigned version;
	uint32_t default_action;
	/* What a system call of another ABI (i386 `int 0x80`, x32) gets,
	 * whatever it is: the filter knows the native one only. */
	uint32_t foreign_abi_action;
	const char *const *allowed;   /* unconditional SCMP_ACT_ALLOW, NULL-terminated */
	const char *const *denied;    /* unconditional EPERM, NULL-terminated; may be NULL */
	const struct policy_rule *rules; /* ends with {NULL}; may be NULL */
	/* Added to the rules in the program of a slot's forker only
	 * (SBX_FILTER_FORKER); may be NULL. */
	const struct policy_rule *forker_rules;
	/* Tables of splits, each ending with {NULL}; the list ends with NULL. */
	const struct policy_split *const *splits;
};

/* The policy of a profile, or NULL out of range. */
const struct policy *policy_of(enum sbx_profile profile);

#endif
