/*
 * policy.h - the seccomp profiles by name and version, as the config and
 * the jobs' isolation records spell them (the tables: policy.c).
 */
#ifndef VALET_POLICY_H
#define VALET_POLICY_H

#include "../sandbox/spawn_proto.h"

/* "strict", "exec", "exec+net"; NULL for a value out of range. Static. */
const char *policy_profile_name(enum sbx_profile profile);
/* The version of the policy a profile compiles to today (1, 2, ...); 0 out of range. */
unsigned policy_profile_version(enum sbx_profile profile);
/* "exec", or "exec@N" where N is exec's current version. 0 or -EINVAL. */
int policy_profile_parse(const char *name, enum sbx_profile *out);

#endif
