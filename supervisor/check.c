/*
 * check.c - what valetd says about a configuration before it runs one:
 * `valetd -t` (the tasks) and `valetd --check` (the isolation).
 *
 * Theory of operation: both start the spawner program as valetd would and
 * stop it again, so that what they report is what a start would find, not
 * a guess. check_tasks() asks it for its task table (the plugins' C tasks
 * and the config's exec tasks) and checks the config's [task.NAME] sections
 * against it. check_print() prints what the host offers (probe.c), what
 * jobs get with this configuration (isolation.c decides, as at startup,
 * without creating cgroups), the spawner's own preparation (its view, its
 * network) and where exec+net jobs may connect.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "isolation.h"
#include "limits.h"
#include "netpolicy.h"
#include "policy.h"
#include "probe.h"
#include "run.h"
#include "spawn.h"
#include "tasks.h"

/* valetd -t: the C tasks the spawner program has (with its plugins), and
 * what the config says of them. 0, or -EINVAL with the reason on stderr. */
int check_tasks(const struct config *cfg, const char *spawner)
{
	const struct spawn_setup s = {.program = spawner,
				      .plugin_dir = cfg->plugin_dir,
				      .exec_tasks = cfg->exec_tasks,
				      .nexec = cfg->nexec_tasks};
	struct tasks *tasks = tasks_new();
	char err[1024], *table = NULL;
	int rc = tasks ? spawn_list_tasks(&s, &table, err, sizeof(err)) : -ENOMEM;

	if (rc == 0)
		rc = tasks_load(tasks, table, strlen(table), err, sizeof(err));
	if (rc == 0)
		rc = tasks_configure(tasks, cfg, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "valetd: %s\n", err);
	free(table);
	tasks_free(tasks);
	return rc < 0 ? -EINVAL : 0;
}

/* --check: where exec+net jobs may connect to. */
static void print_network(const struct config *cfg, const struct isolation *iso)
{
	struct sbx_net_rule *rules;
	char err[256], net[24];
	int n;

	if (iso->network != ISO_NET_SLIRP)
		return;
	if (netpolicy_rules(cfg->net_allow, cfg->net_deny, &rules, &n, err, sizeof(err)) < 0) {
		printf("    [network]: %s\n", err);
		return;
	}
	for (int allow = 1; allow >= 0; allow--) {
		printf("    %s:", allow ? "may reach" : "may not reach");
		for (int i = 0; i < n; i++)
			if (rules[i].allow == allow) {
				netpolicy_format(&rules[i], net, sizeof(net));
				printf(" %s", net);
			}
		printf("\n");
	}
	printf("    never, whatever allow says: every address of this node (as it changes),\n"
	       "      the database's, and the node's loopback (the job has its own)\n");
	free(rules);
}

/*
 * --check: the spawner, started with the setup valetd would give it and
 * stopped again: the probe cannot tell everything the spawner will do (its
 * view of the files, in a chroot too; the network of exec+net jobs). rc:
 * isolation_start()'s.
 */
static void print_spawner(const struct probe_caps *caps, const struct isolation_prep *prep,
			  bool namespaces, int rc)
{
	static const char *const root[] = {"unknown (no statx() attribute for it)",
					   "not a mount point (a chroot): the spawner makes the\n"
					   "    jobs' root from a private copy of it",
					   "a mount point"};

	printf("\nthe spawner (started with this configuration's setup, then stopped):\n");
	printf("  /: %s\n", root[caps->root_mount + 1]);
	if (!namespaces)
		printf("  jobs' view and network: none to prepare (no namespaces)\n");
	else if (prep->sandbox_error)
		printf("  jobs' view and network prepared: no: %s\n", prep->sandbox_error);
	else if (rc == 0)
		printf("  jobs' view and network prepared: yes\n");
	else
		printf("  jobs' view and network prepared: unknown, the spawner did not start\n");
}

/*
 * --check: what this host offers (sandbox/probe.c), then what jobs get
 * with this configuration (isolation.c decides, as at startup, without
 * creating cgroups; the block of task ids it picks is locked only until
 * isolation_prep_release() below), and the spawner started as at startup
 * (its view, its network) and stopped. Exits 1 where valetd would refuse
 * to start (a seccomp profile does not compile, the task user is unknown,
 * an id of a pinned uid_base is not free, configured isolation is missing -
 * the jobs' view among it - and degradation is not allowed, the spawner
 * does not start).
 */
int check_print(const struct config *cfg, const char *spawner)
{
	struct sbx_limits lim = limits_default_sbx(cfg);
	struct isolation_prep prep;
	const struct isolation *iso = &prep.iso;
	struct probe_caps caps;
	char err[1024], *table = NULL;
	int rc, fd;
	pid_t pid;

	printf("valetd %s isolation check\n\n", VALET_VERSION);
	probe_run(&caps);
	probe_print(&caps, stdout);
	rc = isolation_prepare(&prep, cfg, &caps, runner_max_children(cfg), spawner, false, err,
			       sizeof(err));
	if (rc == 0) {
		bool namespaces = prep.iso.namespaces;

		rc = isolation_start(&prep, cfg, &pid, &fd, &table, err, sizeof(err));
		print_spawner(&caps, &prep, namespaces, rc);
		if (rc == 0) {
			close(fd); /* the spawner kills what it started and exits */
			waitpid(pid, NULL, 0);
			free(table);
		}
	}
	printf("\nwhat jobs get with this configuration:\n");
	if (rc < 0) {
		printf("  valetd would not start: %s\n", err);
		isolation_prep_release(&prep);
		return -EPERM;
	}
	printf("  every job: a fresh process from the spawner; its own session and process\n"
	       "    group; dies with the spawner; fds 0-2 (+ 3, the result channel, for C\n"
	       "    tasks); a fixed environment; working directory /; no_new_privs\n");
	isolation_print(iso, "  ", stdout);
	print_network(cfg, iso);
	printf("  capability bounding set of jobs: %s\n",
	       caps.cap_known && (caps.cap_eff & (1ULL << CAP_SETPCAP))
		   ? "empty (cleared once in the spawner)"
				: "NOT cleared (no CAP_SETPCAP); no_new_privs and nosuid still stop "
				  "setuid programs and file capabilities");
	printf("  rlimits (soft = hard, but CPU time):\n");
	probe_print_limits(&lim, "    ", stdout);
	if (iso->cg.version && lim.memory_bytes)
		printf("    (the address space limit is 4 x memory_limit: the cgroup limits memory)\n");
	printf("  C tasks: seccomp profile strict@%u (any other system call kills the task)\n",
	       policy_profile_version(SBX_PROFILE_STRICT));
	printf("  exec tasks: seccomp profile exec@%u (an allowlist; AF_UNIX sockets only),\n"
	       "    or exec+net@%u (also TCP and UDP over IPv4 and IPv6, in the network\n"
	       "    above) where the task's [task.NAME] profile says so",
	       policy_profile_version(SBX_PROFILE_EXEC), policy_profile_version(SBX_PROFILE_EXEC_NET));
	for (size_t i = 0, n = 0; i < cfg->nexec_tasks; i++)
		if (cfg->exec_tasks[i].argv && cfg->exec_tasks[i].profile == SBX_PROFILE_EXEC_NET)
			printf("%s %s", n++ ? "," : ":", cfg->exec_tasks[i].name);
	printf("\n");
	for (char **w = prep.unreachable; w && *w; w++)
		printf("  WARNING: %s\n", *w);
	isolation_prep_release(&prep);
	return 0;
}
