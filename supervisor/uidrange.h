/*
 * uidrange.h - a block of consecutive ids that nobody else uses, as uids
 * and as gids: the task users of valetd's worker slots.
 *
 * Slot S runs its tasks as uid and gid base + S; valetd reserves one id
 * more than it has slots, and the last one (base + nslots) is for its
 * network helper processes. An id is free when
 *  - no user has it as uid and no group as gid (getpwuid, getgrgid: the
 *    whole user database, NSS modules included);
 *  - no range of /etc/subuid holds it, nor of /etc/subgid (those ids are
 *    somebody's user namespace: newuidmap maps them for that user);
 *  - no process runs with it as a real, effective, saved or file-system uid
 *    or gid (/proc/PID/status);
 *  - no other valetd holds it (a lock per id, see uidrange_lock()).
 *
 * The first three checks (uidrange_host_read, uidrange_check,
 * uidrange_find) load the NSS modules into the process that calls them:
 * valetd calls them in a throwaway child (isolation.c). The locks must be
 * taken by the process that keeps them - valetd itself.
 */
#ifndef VALET_UIDRANGE_H
#define VALET_UIDRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * Where uid_base = auto looks: from 600000 to 699999. Above everything
 * distributions and systemd hand out to users (system users below 1000,
 * people up to 60000, systemd-homed, DynamicUser= 61184-65519, nobody
 * 65534), and above the first subordinate ranges that useradd gives
 * (100000, 165536, ...: 65536 per user). It is not clear of everything:
 * the subordinate ranges of the eighth to tenth users (558752-755359)
 * overlap it, which is why /etc/subuid and /etc/subgid are read; and
 * systemd-nspawn picks the ranges of containers with --private-users=pick
 * from 524288 up - such a container's processes are seen while they run,
 * its idle ids are not. Pin uid_base on such hosts.
 */
#define UIDRANGE_AUTO_FIRST 600000U
#define UIDRANGE_AUTO_LAST 699999U

/* Why an id is not free. */
enum uidrange_why {
	UIDRANGE_FREE = 0,
	UIDRANGE_USER,	   /* a user has it as uid; who = the user */
	UIDRANGE_GROUP,	   /* a group has it as gid; who = the group */
	UIDRANGE_SUBUID,   /* in /etc/subuid; who = "name:start:count" */
	UIDRANGE_SUBGID,   /* in /etc/subgid */
	UIDRANGE_PROC_UID, /* a process runs as this uid; who = "PID (comm)" */
	UIDRANGE_PROC_GID, /* a process runs with this gid */
	UIDRANGE_LOCKED,   /* another valetd holds it; who = "" */
};

struct uidrange_taken {
	enum uidrange_why why;
	uint32_t id;
	char who[96];
};

/* One line of /etc/subuid or /etc/subgid: name:start:count. */
struct uidrange_span {
	uint64_t start, count;
	char owner[64];
};

/* An id a process runs with. */
struct uidrange_proc_id {
	uint32_t id;
	bool gid; /* a gid, else a uid */
	pid_t pid;
};

/* What the host uses, besides the user database: read once per search. */
struct uidrange_host {
	struct uidrange_span *sub[2]; /* [0] /etc/subuid, [1] /etc/subgid */
	size_t nsub[2];
	struct uidrange_proc_id *procs; /* sorted by id, then uid before gid */
	size_t nprocs;
	char proc[64]; /* the proc mount read, for the comm in messages */
};

/*
 * Read the subordinate id files and every process's ids. NULL paths: the
 * system's (/etc/subuid, /etc/subgid, /proc). A missing subid file holds
 * nothing. 0, or -errno (-ENOMEM; the proc directory cannot be read).
 */
int uidrange_host_read(struct uidrange_host *h, const char *subuid, const char *subgid,
		       const char *proc);
void uidrange_host_free(struct uidrange_host *h);

/* The lines of a subid file: blank lines, comments (#) and malformed lines
 * are skipped, as newuidmap does. *spans: new. 0 or -ENOMEM. */
int uidrange_subid_parse(FILE *f, struct uidrange_span **spans, size_t *n);

/* The Uid: and Gid: lines of a /proc/PID/status text (real, effective,
 * saved, file system). 0, or -EINVAL when either line is missing. */
int uidrange_status_ids(const char *status, uint32_t uids[4], uint32_t gids[4]);

/* The distance between two candidate blocks of n ids: the smallest power of
 * two >= n, so that blocks of the same size line up (0 for n = 0). */
uint32_t uidrange_step(unsigned n);

/*
 * Whether base .. base + n - 1 are all free but for the locks (users,
 * groups, subordinate ranges, processes). 0 = free; -EBUSY with *t saying
 * which id (the lowest) and why; -EINVAL when the block wraps past 2^32 - 2
 * ((uid_t)-1 is no id). Loads NSS modules: call it in a throwaway child.
 */
int uidrange_check(const struct uidrange_host *h, uint32_t base, unsigned n,
		   struct uidrange_taken *t);

/*
 * The first free blocks (as uidrange_check() says) among first,
 * first + step, first + 2 * step, ... that end at last or below: up to max
 * of them into bases. Returns how many (0: none left), or -EINVAL. Loads
 * NSS modules: call it in a throwaway child.
 */
int uidrange_find(const struct uidrange_host *h, uint32_t first, uint32_t last, unsigned n,
		  uint32_t *bases, unsigned max);

/*
 * The locks valetd holds: for every id of the block, an abstract AF_UNIX
 * socket bound to "\0valetd-id-<id>". The kernel lets one socket at a
 * time hold a name, and drops it when its last holder exits (the spawner
 * inherits the sockets, and it is right that the ids stay held while its
 * jobs end). A lock per id rather than per block: blocks of different
 * sizes, and pinned ranges, overlap without starting at the same id.
 * Abstract names are per network namespace: valetds in other network
 * namespaces do not see these locks (their running tasks are still seen
 * as processes, when they share the PID namespace).
 */
struct uidrange {
	uint32_t base;
	unsigned n;
	int *fds; /* [n]; NULL = nothing held */
};

/*
 * Take the locks of base .. base + n - 1, in order. 0; -EADDRINUSE when
 * another process holds one (*held: which id; nothing is kept); or -errno.
 * r must be empty (zeroed or unlocked).
 */
int uidrange_lock(struct uidrange *r, uint32_t base, unsigned n, uint32_t *held);
/*
 * Lock the first of the blocks bases[0 .. nbases - 1] (n ids each) that no
 * other valetd holds an id of. The index of the block taken; -EADDRINUSE
 * when each is held; or -errno.
 */
int uidrange_lock_first(struct uidrange *r, const uint32_t *bases, unsigned nbases, unsigned n);
/* Give the locks back (a no-op when none are held). */
void uidrange_unlock(struct uidrange *r);

#endif
