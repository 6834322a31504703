/*
 * reach.c - whether the task users can reach the exec tasks' programs
 * (see reach.h).
 *
 * Theory of operation: for each exec task the daemon lists what its jobs
 * need of the host's files - the program (execute) and the files its
 * arguments name (read: a script run by an interpreter) - and forks a
 * child that drops to the task user's uid and gid, without supplementary
 * groups, and tries access() on each, as a job will. Where one fails, the
 * child tries the directories above it, from the root down, to name the
 * first one that stops it, and writes a fixed-size record to a pipe. The
 * kernel decides, so permission bits, ACLs and security modules all count.
 * Run at startup, before anything reaps children with waitpid(-1).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "reach.h"
#include "strv.h"

/* The arguments looked at (a command has a few). */
#define REACH_MAX_ARGS 64

/* What the child found: the path that stops the user, and why (0: none). */
struct reach_record {
	int err;
	int arg; /* the argv index whose file it is */
	char path[PATH_MAX];
};

/* In the child: the first directory of path, or path itself, that stops us. */
static void reach_blocker(const char *path, int mode, struct reach_record *r)
{
	size_t n = strlen(path);

	if (n >= sizeof(r->path)) {
		r->err = ENAMETOOLONG;
		return;
	}
	memcpy(r->path, path, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (r->path[i] != '/')
			continue;
		r->path[i] = '\0';
		if (access(r->path, X_OK) < 0) {
			r->err = errno;
			return;
		}
		r->path[i] = '/';
	}
	if (access(path, mode) < 0)
		r->err = errno;
}

static void __attribute__((noreturn))
reach_child(int fd, char *const *argv, const int *modes, uid_t uid, gid_t gid)
{
	struct reach_record r;

	memset(&r, 0, sizeof(r));
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		_exit(1);
	for (int i = 0; i < REACH_MAX_ARGS && argv[i] && !r.err; i++) {
		if (!modes[i])
			continue;
		r.arg = i;
		reach_blocker(argv[i], modes[i], &r);
	}
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

/* What the child found for one task; -errno when it could not tell. */
static int reach_task(char *const *argv, const int *modes, uid_t uid, gid_t gid,
		      struct reach_record *r)
{
	size_t got = 0;
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid == 0)
		reach_child(fds[1], argv, modes, uid, gid);
	close(fds[1]);
	/* More than PIPE_BUF: it may come in parts. */
	while (pid > 0 && got < sizeof(*r) &&
	       ((n = read(fds[0], (char *)r + got, sizeof(*r) - got)) > 0 ||
		(n < 0 && errno == EINTR)))
		got += n > 0 ? (size_t)n : 0;
	close(fds[0]);
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return got == sizeof(*r) ? 0 : -EIO;
}

char **reach_check(const struct config *cfg, uid_t uid, gid_t gid)
{
	char **out = NULL, line[PATH_MAX * 2 + 256];
	size_t nout = 0;

	for (size_t t = 0; t < cfg->nexec_tasks; t++) {
		char *const *argv = cfg->exec_tasks[t].argv;
		struct reach_record r;
		struct stat st;
		int modes[REACH_MAX_ARGS] = {0}, n;

		if (!argv)
			continue;
		/* The program; and the files among the arguments, as root sees them. */
		modes[0] = X_OK;
		for (n = 1; n < REACH_MAX_ARGS && argv[n]; n++)
			if (argv[n][0] == '/' && stat(argv[n], &st) == 0 && S_ISREG(st.st_mode))
				modes[n] = R_OK;
		if (reach_task(argv, modes, uid, gid, &r) < 0 || !r.err)
			continue;
		snprintf(line, sizeof(line),
			 "task.%s: the task users (uid %u) cannot %s %s: %s: %s; its jobs will "
			 "fail - keep it where every user may reach it",
			 cfg->exec_tasks[t].name, (unsigned)uid, r.arg ? "read" : "run",
			 argv[r.arg], r.path, strerror(r.err));
		if (strv_add_unique(&out, &nout, line, strlen(line)) < 0)
			break;
	}
	return out;
}
