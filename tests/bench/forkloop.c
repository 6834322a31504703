/*
 * forkloop.c - the physical baseline for the benchmark: how many bare
 * fork() + _exit(0) + waitpid() rounds this machine does per second.
 *
 * valetd forks one child per job, so this is the ceiling its job rate is
 * compared against (bench.sh prints jobs/s as a ratio of it). The process
 * stays small on purpose: fork cost grows with the parent's touched memory.
 *
 *   forkloop [SECONDS]     default 2; prints "forkloop: N forks/s"
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = 2.0, start, elapsed;
	long forks = 0;
	pid_t pid;
	int status;

	if (argc > 1) {
		char *end;

		seconds = strtod(argv[1], &end);
		if (*end != '\0' || !(seconds > 0)) {
			fprintf(stderr, "usage: forkloop [SECONDS]\n");
			return 2;
		}
	}
	start = now_s();
	do {
		/* Check the clock every 64 rounds: clock_gettime is cheap, not free. */
		for (int i = 0; i < 64; i++) {
			pid = fork();
			if (pid < 0) {
				fprintf(stderr, "forkloop: fork: %s\n", strerror(errno));
				return 1;
			}
			if (pid == 0)
				_exit(0);
			while (waitpid(pid, &status, 0) < 0) {
				if (errno != EINTR) {
					fprintf(stderr, "forkloop: waitpid: %s\n", strerror(errno));
					return 1;
				}
			}
			forks++;
		}
		elapsed = now_s() - start;
	} while (elapsed < seconds);

	printf("forkloop: %.0f forks/s\n", (double)forks / elapsed);
	return 0;
}
