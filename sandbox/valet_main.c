/*
 * valet_main.c - valet_main(): how a program with tasks becomes valetd.
 *
 * Theory of operation: the tasks a program registered with valet_register()
 * must run in its own image - the spawner's, where job children are forked
 * - without the daemon's libraries. So such a program (and the stock
 * valet-spawner, which is the same with no tasks of its own) plays two
 * parts, chosen by its command line:
 *   - started as itself: it execs valetd (VALET_DAEMON, else the valetd
 *     installed with this library), passing its arguments on and naming
 *     itself, by its real path, as valetd's spawner (--spawner);
 *   - started by valetd with SPAWN_ARG: it is the spawner (spawner.c);
 *   - with SPAWN_ARG_LIST (valetd -t): it prints the task table it would
 *     have and exits.
 * Its own main() is only valet_register() calls and valet_main().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../include/valet.h"
#include "registry.h"
#include "spawner.h"

#ifndef VALET_DAEMON_PATH
#define VALET_DAEMON_PATH "/usr/sbin/valetd"
#endif

/* A decimal fd number, or -1. */
static int valet_fd_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s && !*end && v >= 0 && v < (1 << 20) ? (int)v : -1;
}

/* valetd -t: the tasks this program would have with the document's
 * plugins and exec tasks. */
static int valet_list_tasks(int fd)
{
	char err[1024], *table;

	if (spawn_setup_read_tasks(fd, registry_global(), err, sizeof(err)) < 0) {
		fprintf(stderr, "valetd: %s\n", err);
		return 2;
	}
	table = spawn_setup_task_table(registry_global());
	if (!table || printf("%s\n", table) < 0 || fflush(stdout) != 0) {
		free(table);
		return 1;
	}
	free(table);
	return 0;
}

int valet_main(int argc, char **argv)
{
	const char *daemon = getenv("VALET_DAEMON");
	char *self, **args;
	int sock, setup;

	if (argc == 4 && !strcmp(argv[1], SPAWN_ARG)) {
		sock = valet_fd_arg(argv[2]);
		setup = valet_fd_arg(argv[3]);
		if (sock < 0 || setup < 0) {
			fprintf(stderr, "valet: %s takes two fd numbers\n", SPAWN_ARG);
			return 2;
		}
		spawner_main(sock, setup);
	}
	if (argc == 3 && !strcmp(argv[1], SPAWN_ARG_LIST)) {
		setup = valet_fd_arg(argv[2]);
		if (setup < 0) {
			fprintf(stderr, "valet: %s takes an fd number\n", SPAWN_ARG_LIST);
			return 2;
		}
		return valet_list_tasks(setup);
	}
	if (!daemon || !daemon[0])
		daemon = VALET_DAEMON_PATH;
	self = realpath("/proc/self/exe", NULL);
	args = calloc((size_t)argc + 3, sizeof(*args));
	if (!self || !args) {
		fprintf(stderr, "valet: %s\n", strerror(errno));
		return 1;
	}
	args[0] = (char *)daemon;
	args[1] = "--spawner";
	args[2] = self;
	for (int i = 1; i < argc; i++)
		args[i + 2] = argv[i];
	execv(daemon, args);
	fprintf(stderr, "valet: cannot run valetd (%s): %s; set VALET_DAEMON to its path\n", daemon,
		strerror(errno));
	return 1;
}
