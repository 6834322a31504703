/*
 * sbx_leftover.c - what a job can leave in its slot's network namespace
 * without any process: the sockets the namespace still has once the job's
 * processes are gone, and the kernel's AF_UNIX garbage collector that frees
 * those only fds in flight hold.
 *
 * Theory of operation. Every process of a job is gone when its job ends
 * (PID namespaces), but a socket can outlive its processes in two ways:
 *   - in flight: an fd sent with SCM_RIGHTS and never received is held by
 *     the message, not by a process. A task that sends its sockets (and
 *     memfds, pipes, ...) to itself in a cycle - a socket queued in its own
 *     receive queue, or a listener in the queue of its own embryo - and
 *     exits leaves them to the kernel's AF_UNIX garbage collector, which
 *     runs only when some AF_UNIX socket on the host is released while fds
 *     are in flight: from microseconds to many seconds later. Meanwhile
 *     the sockets stay in the network namespace (an abstract name the next
 *     job of the slot can connect to) and what they carry stays charged to
 *     the slot's memory cgroup (a memfd's pages: the next job's memory).
 *     The carrier is always an AF_UNIX socket of the job's namespace: only
 *     AF_UNIX sockets carry fds;
 *   - closing TCP states (TIME_WAIT, FIN_WAIT, LAST_ACK, ...), which the
 *     kernel keeps after the last close for up to a minute (exec+net).
 * So after an exec job the spawner looks at the namespace's socket tables
 * (sbx_netns_socks_none): the /proc/net files of that namespace, opened
 * from inside it once when it is made (the open file keeps its namespace)
 * and read again with pread() - unix after an exec job (about 8 us), unix,
 * tcp and tcp6 after an exec+net one (about 10 us more each, with the
 * namespace's own TCP hash table: sbx_net.c). Not udp: a UDP socket
 * outlives its processes only in flight, and then its carrier, an AF_UNIX
 * socket, is listed. A namespace whose jobs are gone lists no socket: the
 * spawner's own there (sbx_net.c's route socket) is an unbound datagram
 * socket. Anything listed is a job's.
 *
 * sbx_unix_gc() makes the collector run now: it releases an AF_UNIX
 * socket. Linux 6.1 collects at once, in the releasing process (the
 * release calls unix_gc() when fds are in flight; a collection already
 * running elsewhere is not waited for); from Linux 6.10 on the release
 * queues the collector's work (unix_gc_work, or unix_schedule_gc() when
 * the in-flight graph may have cycles) and returns, and the last fput()s
 * of what it frees run from a kernel thread's delayed work (a clock tick
 * later). Neither says when it is done, so the caller asks the socket
 * tables again until they are empty, or gives up after a bound.
 *
 * Runs in the spawner.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

static const char *const sbx_socks_tables[SBX_SOCKS_TABLES] = {
    "/proc/thread-self/net/unix", "/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"};

void sbx_netns_socks_init(struct sbx_netns_socks *w)
{
	for (int i = 0; i < SBX_SOCKS_TABLES; i++)
		w->fd[i] = -1;
}

void sbx_netns_socks_close(struct sbx_netns_socks *w)
{
	for (int i = 0; i < SBX_SOCKS_TABLES; i++)
		if (w->fd[i] >= 0)
			close(w->fd[i]);
	sbx_netns_socks_init(w);
}

int sbx_netns_socks_open(int netns, bool inet, struct sbx_netns_socks *w)
{
	int own = -1, n = inet ? SBX_SOCKS_TABLES : 1, rc = 0;

	sbx_netns_socks_init(w);
	if (netns >= 0) {
		if ((own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
			return -errno;
		if (setns(netns, CLONE_NEWNET) < 0) {
			rc = -errno;
			close(own);
			return rc;
		}
	}
	for (int i = 0; i < n && !rc; i++)
		if ((w->fd[i] = open(sbx_socks_tables[i], O_RDONLY | O_CLOEXEC)) < 0)
			rc = -errno;
	/* Back to the spawner's own namespace, whatever happened. */
	if (own >= 0) {
		if (setns(own, CLONE_NEWNET) < 0 && !rc)
			rc = -errno;
		close(own);
	}
	if (rc < 0)
		sbx_netns_socks_close(w);
	return rc;
}

bool sbx_netns_socks_none(const struct sbx_netns_socks *w)
{
	char buf[512];

	for (int i = 0; i < SBX_SOCKS_TABLES; i++) {
		ssize_t n;
		char *nl;

		if (w->fd[i] < 0)
			continue;
		/* The heading, then a line per socket: anything after the
		 * heading's newline is a socket. */
		n = pread(w->fd[i], buf, sizeof(buf), 0);
		if (n < 0)
			return false;
		nl = memchr(buf, '\n', (size_t)n);
		if (!nl || nl + 1 < buf + n)
			return false;
	}
	return true;
}

void sbx_unix_gc(void)
{
	int sv[2];

	/* The release of either end is what schedules the collector. */
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0) {
		close(sv[0]);
		close(sv[1]);
	}
}
