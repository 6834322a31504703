/*
 * probe.h - what isolation this host offers: namespaces, cgroup v1/v2
 * hierarchies and controllers, seccomp features, privileges. Run once at
 * startup (valetd --check prints it).
 *
 * Parent side only, never in a job child. The calling process is left as it
 * was: probes that would change it (unshare, no_new_privs, loading a seccomp
 * filter) run in forked children, and the cgroup write test creates an empty
 * child cgroup and removes it again. Call it before anything reaps children
 * with waitpid(-1) (a libev child watcher) and not with SIGCHLD ignored.
 */
#ifndef VALET_PROBE_H
#define VALET_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../sandbox/spawn_proto.h"

#define PROBE_PATH 512
#define PROBE_LIST 256
/* The cgroup write test's child is named PROBE_CG_PREFIX "<pid>-<n>". */
#define PROBE_CG_PREFIX "valet-probe-"

/* One probe: it worked, or why not. */
struct probe_result {
	bool ok;
	int err; /* errno when !ok; 0 if the probe child died by a signal */
	int sig; /* the signal that killed the probe child; 0 = none */
};

enum probe_ns {
	PROBE_NS_USER,
	PROBE_NS_PID,
	PROBE_NS_MOUNT,
	PROBE_NS_NET,
	PROBE_NS_IPC,
	PROBE_NS_UTS,
	PROBE_NS_CGROUP,
	PROBE_NS_COUNT
};

enum probe_cg_layout {
	PROBE_CG_NONE,    /* no cgroup hierarchy found */
	PROBE_CG_UNIFIED, /* cgroup2 at /sys/fs/cgroup (systemd's default) */
	PROBE_CG_HYBRID,  /* v1 hierarchies, and a cgroup2 mount (.../unified) */
	PROBE_CG_LEGACY,  /* v1 hierarchies only */
};

/* The v1 controllers valet would use. */
enum probe_cg1 {
	PROBE_CG1_MEMORY,
	PROBE_CG1_PIDS,
	PROBE_CG1_FREEZER,
	PROBE_CG1_CPU,
	PROBE_CG1_COUNT
};

enum probe_action {
	PROBE_ACT_KILL_PROCESS,
	PROBE_ACT_TRAP,
	PROBE_ACT_ERRNO,
	PROBE_ACT_USER_NOTIF,
	PROBE_ACT_LOG,
	PROBE_ACT_COUNT
};

enum probe_flag {
	PROBE_FLAG_TSYNC,
	PROBE_FLAG_LOG,
	PROBE_FLAG_SPEC_ALLOW,
	PROBE_FLAG_COUNT
};

/* This process's cgroup in one hierarchy. */
struct probe_cgroup {
	bool found;			  /* mounted, and listed in /proc/self/cgroup */
	char mount[PROBE_PATH];	  /* where the hierarchy is mounted */
	char path[PROBE_PATH];	  /* our cgroup, as /proc/self/cgroup names it */
	char dir[PROBE_PATH];	  /* its directory */
	struct probe_result writable; /* mkdir + rmdir of an empty child cgroup */
};

struct probe_caps {
	/* Namespaces: unshare(flag) in a forked child. */
	struct probe_result ns[PROBE_NS_COUNT];
	/* Limits on user namespaces, -1 where the file does not exist. */
	long max_user_namespaces;	/* /proc/sys/user/max_user_namespaces */
	long unprivileged_userns_clone; /* /proc/sys/kernel/unprivileged_userns_clone (Debian) */
	long apparmor_restrict_userns;	/* .../apparmor_restrict_unprivileged_userns (Ubuntu) */

	/* cgroups */
	enum probe_cg_layout cg_layout;
	unsigned long cg_fs_magic; /* statfs("/sys/fs/cgroup").f_type; 0 = none */
	struct {
		struct probe_cgroup cg;
		char controllers[PROBE_LIST]; /* cgroup.controllers: usable here */
		char subtree[PROBE_LIST];	  /* cgroup.subtree_control: given to children */
		bool kill;			  /* cgroup.kill (ours, or the test child's) */
		bool memory_peak;		  /* memory.peak (likewise) */
		bool favordynmods;		  /* mounted so: cgroup moves never wait (cgroup.h) */
	} cg2;
	struct probe_cgroup cg1[PROBE_CG1_COUNT];

	/* seccomp */
	int seccomp_mode; /* PR_GET_SECCOMP: 0 none, 1 strict, 2 filter; or -errno */
	struct probe_result seccomp_filter;		     /* a child loads an allow-all filter */
	struct probe_result action[PROBE_ACT_COUNT]; /* SECCOMP_GET_ACTION_AVAIL */
	struct probe_result flag[PROBE_FLAG_COUNT];  /* a child loads with the flag */
	struct probe_result notif_sizes;		     /* SECCOMP_GET_NOTIF_SIZES */

	/* Privileges */
	struct probe_result no_new_privs; /* a child sets it */
	int no_new_privs_now;		      /* PR_GET_NO_NEW_PRIVS of this process */
	bool cap_known;
	uint64_t cap_eff; /* CapEff of /proc/self/status */
	uid_t uid, euid;
	gid_t gid, egid;
	bool can_switch_user; /* probe_can_switch_user() */

	/* Whether "/" is a mount point (statx): 1; 0, as in a chroot, whose
	 * root is a directory of some mount; -1 unknown (before Linux 5.8). */
	int root_mount;
};

/* Fill *caps (borrowed). Each item records its own result; returns 0, or
 * -EINVAL for a NULL caps. */
int probe_run(struct probe_caps *caps);

/*
 * The part of probe_run() that finds our cgroups, from the text of
 * /proc/self/cgroup and /proc/self/mountinfo (borrowed streams): fills the
 * found, mount, path and dir fields of caps->cg2.cg and caps->cg1[]. Exposed
 * so that tests can feed it other hosts' files.
 */
void probe_cg_locate(struct probe_caps *caps, FILE *proc_cgroup, FILE *mountinfo);

/* Print a report of *caps (borrowed) to out (borrowed), for people. */
void probe_print(const struct probe_caps *caps, FILE *out);

/* Print the rlimits sbx_enter() sets from *l (borrowed): two lines, each
 * starting with indent (borrowed). */
void probe_print_limits(const struct sbx_limits *l, const char *indent, FILE *out);

/* Whether this process may switch users (root, or CAP_SETUID and
 * CAP_SETGID in its effective set, as under valetd.service). */
bool probe_can_switch_user(void);

/* "yes", "no (EPERM)", "no (errno 200)" or "no (killed by signal 31)". */
void probe_result_str(const struct probe_result *r, char *out, size_t outlen);

#endif
