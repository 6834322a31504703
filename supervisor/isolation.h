/*
 * isolation.h - what isolation jobs get on this host with this config.
 *
 * Decided once at startup from the config ([sandbox] namespaces, cgroups,
 * user, uid_base, allow_degraded_isolation) and the host probe (probe).
 * A configured feature the host does not offer stops valetd from starting,
 * unless allow_degraded_isolation is set: then it runs without, says so in
 * the log and records it on every job.
 */
#ifndef VALET_ISOLATION_H
#define VALET_ISOLATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "cgroup.h"
#include "spawn.h"
#include "uidrange.h"

struct config;
struct probe_caps;

struct isolation {
	bool namespaces;  /* pid, mount, ipc, uts, net per job */
	bool switch_user; /* tasks run as another user */
	uid_t uid;	  /* that user (when uid_base is 0) */
	gid_t gid;
	uid_t uid_base;	   /* slot N runs as uid_base + N; 0 = all as uid */
	/* How exec+net jobs reach the network (ISO_NET_NONE: no such task). */
	enum iso_net { ISO_NET_NONE = 0, ISO_NET_SLIRP, ISO_NET_HOST } network;
	char *net_helper;  /* ISO_NET_SLIRP: the slirp4netns program (new) */
	bool degraded;	   /* something configured is missing */
	char missing[640]; /* what, as a sentence ("" = nothing) */
	struct cgroups cg; /* cg.version 0 = no cgroups */
	bool uid_auto;	   /* uid_base was picked ([sandbox] uid_base = auto) */
	unsigned nslots;
	/*
	 * The uid and gid of valetd's network helper processes: uid_base +
	 * nslots, the last id of the block reserved with the slots' ids, as
	 * free as they are (no user, group, subordinate range or process has
	 * it) and held as long as they are. 0 = none (uid_base is 0, or users
	 * are not switched).
	 */
	uid_t net_id;
	struct uidrange ids; /* the locks on uid_base .. net_id, held until release */
};

/*
 * Decide. With uid_base (auto or a number) and users switched, this
 * reserves nslots + 1 ids (uidrange.h): isolation_release() gives them
 * back. make_cgroups: create the slot cgroups (false for --check, which
 * changes nothing; cg.version then says what would be used). 0, or
 * -EPERM (a configured feature is missing and degradation is not allowed)
 * or another -errno, with a sentence in err.
 */
int isolation_plan(struct isolation *iso, const struct config *cfg, const struct probe_caps *caps,
		   unsigned nslots, bool make_cgroups, char *err, size_t errlen);
void isolation_release(struct isolation *iso);

/* A user name's uid and gid (getpwnam_r). 0, -ENOENT or another -errno. */
int isolation_lookup_user(const char *name, uid_t *uid, gid_t *gid);
/* Whether the task user exists, as isolation_plan() asks: 0, or -errno
 * with "[sandbox] user NAME: why" in err. */
int isolation_check_user(const char *user, char *err, size_t errlen);

/* The uid a job in this slot runs as (or -1 when users are not switched). */
long isolation_uid(const struct isolation *iso, unsigned slot);

/* The JSON object recorded on a job (new string): namespaces, cgroup
 * version, uid, seccomp profile, network ("none", "slirp4netns" or "host")
 * and whether isolation is degraded. */
char *isolation_record(const struct isolation *iso, unsigned slot, const char *profile);

/* For --check: what every job gets, in lines starting with indent. */
void isolation_print(const struct isolation *iso, const char *indent, FILE *out);

/*
 * Everything the spawner needs, decided at startup from the probe (caps,
 * borrowed): the seccomp programs compiled, the isolation planned (and,
 * with make_cgroups, the cgroups made: not for --check), the hidden
 * directories, the network of exec+net jobs, the host /tmp items jobs keep;
 * setup is what spawn_start() takes. 0, or -errno with a sentence in err.
 */
struct isolation_prep {
	struct sbx_filter filters[SBX_NFILTERS];
	struct isolation iso;
	struct spawn_setup setup;
	char *config_real;
	char **hide;			/* the hidden directories known before the store's */
	struct sbx_net_rule *net_rules; /* [network] allow and deny */
	struct sbx_keep *keep;		/* [nkeep], paths owned */
	int nkeep;
	char *sandbox_error; /* why the spawner could not prepare the jobs' sandbox */
	char **unreachable;  /* reach.h: exec task programs the task users cannot run */
};
int isolation_prepare(struct isolation_prep *p, const struct config *cfg,
		      const struct probe_caps *caps, unsigned nslots, const char *spawner,
		      bool make_cgroups, char *err, size_t errlen);
/*
 * Start the spawner with p->setup (spawn_start()). The probe cannot tell
 * everything: when the spawner itself cannot prepare the jobs' sandbox
 * (their view of the files, their network), that isolation is missing like
 * any other - -EPERM with the sentence in err, or, with
 * allow_degraded_isolation, p->iso and p->setup lose the namespaces (the
 * reason joins p->iso.missing) and the spawner starts again without them.
 * valetd --check runs this too, so that it says what valetd would do.
 */
int isolation_start(struct isolation_prep *p, const struct config *cfg, pid_t *pid, int *fd,
		    char **table, char *err, size_t errlen);
void isolation_prep_release(struct isolation_prep *p);

/* The plan the daemon runs with (set once by main; NULL before). */
const struct isolation *isolation_global(void);
void isolation_set_global(const struct isolation *iso);

#endif
