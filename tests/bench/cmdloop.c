/*
 * cmdloop.c - how many times per second a command runs to completion, in
 * N loops at once: what `make bench` compares exec tasks with (bubblewrap's
 * and unshare's own sandbox around `true`, each run as a user would, in a
 * loop per worker).
 *
 * Theory of operation: N worker processes, each running PROGRAM ARGS with
 * posix_spawnp() and waiting for it, again and again, for SECONDS; the
 * program's stdout and stderr go to /dev/null. Each worker sends its count
 * and its failures (a run that did not exit 0) back through a pipe; the
 * rate printed is the sum of the workers' rates. Any failed run makes the
 * exit status 1 (a sandbox tool that does not work here must not look
 * fast), with the first failure's wait status on stderr.
 *
 *   cmdloop [-j N] [-t SECONDS] -- PROGRAM [ARGS...]   (N = 2, SECONDS = 3)
 *   prints "cmdloop: R runs/s, N loops at once, summed"
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct tally {
	double rate;
	long runs, failed;
	int first_status;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One worker: run argv until SECONDS have passed. */
static struct tally worker(char **argv, double seconds)
{
	struct tally t = {0};
	posix_spawn_file_actions_t fa;
	double start = now_s(), elapsed;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	do {
		pid_t pid;
		int status = 0, rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);

		if (rc == 0) {
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		} else {
			status = rc << 8 | 0x7f; /* not a wait status a program gives */
		}
		if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (!t.failed++)
				t.first_status = status;
		}
		t.runs++;
		elapsed = now_s() - start;
	} while (elapsed < seconds);
	t.rate = (double)t.runs / elapsed;
	return t;
}

int main(int argc, char **argv)
{
	long procs = 2, started = 0, runs = 0, failed = 0;
	double seconds = 3, total = 0;
	int p[2], opt, first_status = 0;

	while ((opt = getopt(argc, argv, "j:t:")) != -1) {
		char *end;

		if (opt == 'j') {
			procs = strtol(optarg, &end, 10);
			if (*end || procs < 1 || procs > 1024)
				goto usage;
		} else if (opt == 't') {
			seconds = strtod(optarg, &end);
			if (*end || !(seconds > 0))
				goto usage;
		} else {
			goto usage;
		}
	}
	if (optind >= argc)
		goto usage;
	if (pipe(p) < 0) {
		fprintf(stderr, "cmdloop: pipe: %s\n", strerror(errno));
		return 1;
	}
	for (; started < procs; started++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "cmdloop: fork: %s\n", strerror(errno));
			break;
		}
		if (pid == 0) {
			struct tally t = worker(argv + optind, seconds);

			_exit(write(p[1], &t, sizeof(t)) == sizeof(t) ? 0 : 1);
		}
	}
	close(p[1]);
	for (long i = 0; i < started; i++) {
		struct tally t;

		if (read(p[0], &t, sizeof(t)) != sizeof(t)) {
			failed++;
			continue;
		}
		total += t.rate;
		runs += t.runs;
		if (t.failed && !failed)
			first_status = t.first_status;
		failed += t.failed;
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	if (started < procs || failed) {
		fprintf(stderr, "cmdloop: %s: %ld of %ld runs failed (first: wait status 0x%x)\n",
			argv[optind], failed, runs, first_status);
		return 1;
	}
	printf("cmdloop: %.0f runs/s, %ld loops at once, summed\n", total, procs);
	return 0;
usage:
	fprintf(stderr, "usage: cmdloop [-j N] [-t SECONDS] -- PROGRAM [ARGS...]\n");
	return 2;
}
