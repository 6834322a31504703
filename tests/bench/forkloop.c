/*
 * forkloop.c - the physical baseline for the benchmark: how many bare
 * fork() + _exit(0) + waitpid() rounds this machine does per second.
 *
 * valetd forks one child per job, so this is the ceiling its job rate is
 * compared against (bench.sh prints jobs/s as a ratio of it). The process
 * stays small on purpose: fork cost grows with the parent's touched memory.
 * With PROCS > 1, that many loops run at once (bench.sh: one per core, the
 * ceiling for `workers` = cores), each in a process of its own forked from
 * this one, and the rate printed is their sum: each loop counts its forks
 * over the same SECONDS and sends the count back through a pipe.
 *
 * With -f FILE, each child first loads the classic BPF program in FILE
 * (struct sock_filter[], as tests/bench/filterdump writes valetd's) the way
 * a job child does (sbx_child.c: no_new_privs, then seccomp(2) with
 * SECCOMP_FILTER_FLAG_SPEC_ALLOW), then exits: the ceiling for a process
 * per job that must have a filter of its own. A child whose load fails
 * exits 3, and the loop stops with an error.
 *
 *   forkloop [-f FILE] [SECONDS [PROCS]]   default 2 and 1;
 *   prints "forkloop: N forks/s" (and ", PROCS loops at once, summed")
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* -f: the program each child loads; none when len is 0. */
static struct sock_fprog filter;

/* In the child: 0, or 3 when the filter does not load. */
static int load_filter(void)
{
	if (filter.len == 0)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return 3;
	if (!syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &filter))
		return 0;
	/* Before 4.17 there is no SPEC_ALLOW: as sbx_child.c, without it. */
	if (errno == EINVAL && !syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter))
		return 0;
	return 3;
}

/* -f FILE: read the program; 0, or -1 (said on stderr). */
static int read_filter(const char *path)
{
	static struct sock_filter insns[BPF_MAXINSNS];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		fprintf(stderr, "forkloop: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(insns, sizeof(insns[0]), BPF_MAXINSNS, f);
	fclose(f);
	if (n == 0) {
		fprintf(stderr, "forkloop: %s: no BPF program in it\n", path);
		return -1;
	}
	filter.len = (unsigned short)n;
	filter.filter = insns;
	return 0;
}

/* One loop for SECONDS: its forks, or -1 on an error (said on stderr). */
static long loop(double seconds, double *elapsed)
{
	double start = now_s();
	long forks = 0;
	int status;
	pid_t pid;

	do {
		/* Check the clock every 64 rounds: clock_gettime is cheap, not free. */
		for (int i = 0; i < 64; i++) {
			pid = fork();
			if (pid < 0) {
				fprintf(stderr, "forkloop: fork: %s\n", strerror(errno));
				return -1;
			}
			if (pid == 0)
				_exit(load_filter());
			while (waitpid(pid, &status, 0) < 0) {
				if (errno != EINTR) {
					fprintf(stderr, "forkloop: waitpid: %s\n", strerror(errno));
					return -1;
				}
			}
			if (status != 0) {
				fprintf(stderr, "forkloop: the child's filter did not load\n");
				return -1;
			}
			forks++;
		}
		*elapsed = now_s() - start;
	} while (*elapsed < seconds);
	return forks;
}

/* PROCS loops at once: the sum of their rates, or a negative value. */
static double loops(double seconds, long procs)
{
	int p[2];
	double total = 0;
	long started = 0;

	if (pipe(p) < 0) {
		fprintf(stderr, "forkloop: pipe: %s\n", strerror(errno));
		return -1;
	}
	for (; started < procs; started++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "forkloop: fork: %s\n", strerror(errno));
			break;
		}
		if (pid == 0) {
			double elapsed = 0, rate;
			long n = loop(seconds, &elapsed);

			rate = n < 0 ? -1 : (double)n / elapsed;
			_exit(write(p[1], &rate, sizeof(rate)) == sizeof(rate) ? 0 : 1);
		}
	}
	close(p[1]);
	for (long i = 0; i < started; i++) {
		double rate;

		if (read(p[0], &rate, sizeof(rate)) != sizeof(rate) || rate < 0)
			total = -1e300;
		else
			total += rate;
	}
	close(p[0]);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return started == procs ? total : -1;
}

int main(int argc, char **argv)
{
	double seconds = 2.0, elapsed = 0, rate;
	long procs = 1;
	char *end;

	if (argc > 2 && strcmp(argv[1], "-f") == 0) {
		if (read_filter(argv[2]) < 0)
			return 1;
		argc -= 2;
		argv += 2;
	}
	if (argc > 1) {
		seconds = strtod(argv[1], &end);
		if (*end != '\0' || !(seconds > 0))
			goto usage;
	}
	if (argc > 2) {
		procs = strtol(argv[2], &end, 10);
		if (*end != '\0' || procs < 1 || procs > 1024)
			goto usage;
	}
	if (argc > 3)
		goto usage;
	if (procs == 1) {
		long n = loop(seconds, &elapsed);

		if (n < 0)
			return 1;
		printf("forkloop: %.0f forks/s\n", (double)n / elapsed);
		return 0;
	}
	rate = loops(seconds, procs);
	if (rate < 0)
		return 1;
	printf("forkloop: %.0f forks/s, %ld loops at once, summed\n", rate, procs);
	return 0;
usage:
	fprintf(stderr, "usage: forkloop [-f FILE] [SECONDS [PROCS]]\n");
	return 2;
}
