/*
 * spawner_left.c - what a finished exec job may have left in its worker
 * slot without any process: sockets in the slot's network namespace, and
 * the memory they keep charged to the slot's cgroup.
 *
 * Theory of operation. A slot's network namespace and cgroup outlive its
 * jobs (the empty namespace of its C and exec tasks, spawner.c's
 * job_netns; the one of its exec+net tasks, sbx_net.c), and so does a
 * socket that no process holds: in flight in an SCM_RIGHTS cycle, or
 * closing (TCP) - see sbx_leftover.c. A C task creates no socket (the
 * strict profile); an exec task can. So once every process of an exec job
 * is gone (spawner_send_exit, before EXIT), spawner_left_behind() reads the
 * socket tables of the namespace the job had: one pread() of
 * /proc/net/unix, and of tcp and tcp6 for exec+net. The common case ends
 * there: nothing listed.
 *
 * Anything listed is a job's, and the slow path, which only a job that left
 * something takes:
 *   1. the kernel's AF_UNIX garbage collector is made to run
 *      (sbx_unix_gc), again every millisecond (a collection that was
 *      already running when the job ended may have missed its sockets), and
 *      the tables are read again until they are empty, for at most
 *      SPAWNER_LEFT_WAIT_MS. That frees what fds in flight held - with
 *      memfds their pages - and lets a TCP connection that the job closed
 *      just before it ended finish closing (its peer, slirp4netns, answers
 *      within microseconds);
 *   2. the slot's memory: what reclaim cannot free (usage but the page
 *      cache, cg_slot_pinned) must be back to an idle slot's,
 *      SPAWNER_IDLE_PINNED at most. The last fput() of what the collector
 *      frees may come a clock tick after the sockets left the tables, so
 *      this is waited for too, within the same bound. An idle slot's cgroup
 *      holds no job memory (no process of the slot but its launcher; /tmp
 *      empty, or the namespaces went with it): only the launcher's pages
 *      and kernel objects such as dentries, 0.3-0.7 MiB measured here
 *      after Python jobs. The bound is well above that and well below what
 *      would make a next job fail: the attack this stops left 40 MiB in a
 *      64 MiB slot. Memory still charged after the wait is logged; it has
 *      no holder the spawner could end any more, only the kernel's work
 *      (moving the slot to another cgroup is the daemon's, which made
 *      them);
 *   3. a namespace that still lists a socket is given up: the slot's empty
 *      one is closed, so that its next job gets a new one, and its
 *      namespaces dropped (their launcher is in the old one); an exec+net
 *      slot's namespace and helper are made anew by its next exec+net job
 *      (sbx_net_renew). Either way the sockets are nowhere a job can see.
 * The wait holds the spawner's loop (other slots' STARTs and EXITs wait
 * too) for at most SPAWNER_LEFT_WAIT_MS, and only after a job that left
 * something.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "spawner_internal.h"

/* How long the slow path waits for the collector and for the memory. */
#define SPAWNER_LEFT_WAIT_MS 50
/* An idle slot's memory that reclaim cannot free, at most (see the top). */
#define SPAWNER_IDLE_PINNED (4LL << 20)

/* Whether the namespace of the slot's last job lists no socket. */
static bool job_net_clean(unsigned index)
{
	struct slot *s = &spawner_sp.slots[index];

	if (s->net)
		return spawner_sp.opts->net_host || sbx_net_socks_none(spawner_sp.net, index);
	return sbx_netns_socks_none(&s->netns_socks);
}

/* Whether the slot's memory is back to an idle slot's (unknown counts as
 * back: there is nothing to wait for then). */
static bool memory_back(unsigned index)
{
	struct cg_slot *cg = cg_of(index);

	return !cg || cg_slot_pinned(cg) <= SPAWNER_IDLE_PINNED;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

bool spawner_left_behind(unsigned index)
{
	struct slot *s = &spawner_sp.slots[index];
	int64_t end = now_ns() + SPAWNER_LEFT_WAIT_MS * 1000000LL;
	bool clean, back;

	if (!s->exec || !spawner_sp.opts->namespaces || job_net_clean(index))
		return false;
	for (;;) {
		sbx_unix_gc();
		clean = job_net_clean(index);
		back = clean && memory_back(index);
		if (back || now_ns() >= end)
			break;
		sleep_ms(1);
	}
	if (!back && !memory_back(index))
		dprintf(2, "valetd: worker slot %u: %lld KiB of a finished job's memory is still "
			   "charged\n", index, (long long)cg_slot_pinned(cg_of(index)) / 1024);
	if (clean)
		return false;
	dprintf(2, "valetd: a job of worker slot %u left sockets in its network namespace: "
		   "the slot gets a new one\n", index);
	if (s->net) {
		sbx_net_renew(spawner_sp.net, index);
		return false;
	}
	sbx_netns_socks_close(&s->netns_socks);
	close(s->netns);
	s->netns = -1;
	return true;
}
