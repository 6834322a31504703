/*
 * filterdump.c - writes one of valetd's seccomp profiles, compiled, to
 * stdout: the classic BPF program (struct sock_filter[]) a job child loads.
 *
 * Theory of operation: the benchmark's second ceiling is a fork loop whose
 * child loads the strict profile's filter before it exits (forkloop -f):
 * what a process per job costs with the filter a C task cannot do without.
 * The program must be the one jobs get, so this links valetd's own
 * compiler (supervisor/filter.o and the policy tables, policy.o) instead
 * of keeping a copy of the policy.
 *
 *   filterdump strict|exec|exec+net > FILE
 */
#include <linux/filter.h>
#include <stdio.h>
#include <string.h>

#include "../../supervisor/filter.h"

int main(int argc, char **argv)
{
	static const char *const names[SBX_NFILTERS] = {
	    [SBX_PROFILE_STRICT] = "strict",
	    [SBX_PROFILE_EXEC] = "exec",
	    [SBX_PROFILE_EXEC_NET] = "exec+net",
	    [SBX_FILTER_FORKER] = "forker",
	};
	struct sbx_filter f;
	int profile = SBX_NFILTERS, rc;
	size_t n, len;

	for (int i = 0; argc == 2 && i < SBX_NFILTERS; i++)
		if (strcmp(argv[1], names[i]) == 0)
			profile = i;
	if (profile == SBX_NFILTERS) {
		fprintf(stderr, "usage: filterdump strict|exec|exec+net|forker > FILE\n");
		return 2;
	}
	rc = filter_compile(profile, &f);
	if (rc < 0) {
		fprintf(stderr, "filterdump: %s: cannot compile: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	len = f.len;
	n = fwrite(f.insns, sizeof(struct sock_filter), len, stdout);
	filter_release(&f);
	if (n != len || fflush(stdout) != 0) {
		fprintf(stderr, "filterdump: write failed\n");
		return 1;
	}
	return 0;
}
