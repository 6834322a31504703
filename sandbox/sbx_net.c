/*
 * sbx_net.c - the network of exec+net jobs: a network namespace per worker
 * slot, connected to the outside by slirp4netns, with the destinations jobs
 * may not reach routed nowhere.
 *
 * Theory of operation: a job whose profile allows network must not share
 * the host's network namespace: there it would reach valetd's own API and
 * every service on the node's loopback and addresses, and the host's
 * abstract AF_UNIX sockets. So each worker slot gets a network namespace of
 * its own (made once, reused by every exec+net job of that slot: a job
 * cannot change the namespace's routes or addresses without CAP_NET_ADMIN,
 * and leaves no socket there - closed connections skip TIME_WAIT
 * (sbx_net_no_time_wait), and after each job the spawner checks the
 * namespace's socket tables and has it made anew, with its helper, when a
 * job left one: sbx_net_socks_none, sbx_net_renew, sbx_leftover.c), with a
 * tap device served by a
 * slirp4netns process: user-mode networking, the tool rootless containers
 * use. slirp4netns turns the job's packets into ordinary sockets of its own
 * in the host's namespace, so a job never touches the host's network stack
 * directly; it runs with --disable-host-loopback (10.0.2.2 does not lead to
 * the host's 127.0.0.1), in its own sandbox (--enable-sandbox: a new mount
 * namespace, every capability but CAP_NET_BIND_SERVICE dropped) and under
 * its own seccomp filter, and exits when the spawner does (--exit-fd).
 *
 * What a job may reach is decided by the slot namespace's routing table,
 * which only the spawner writes: slirp4netns only sees what the kernel
 * routed to the tap device. Longest prefix wins, as in any routing table:
 *   - the allowed networks are routed via the tap device (the default route
 *     when everything is allowed), the denied ones are "unreachable" routes,
 *     so that a more specific allow inside a denied range works, and the
 *     job gets EHOSTUNREACH at once instead of a timeout;
 *   - always unreachable, ahead of any allow (a lower metric): every IPv4
 *     address of the node itself (read from the host's namespace, and again
 *     whenever it changes: the spawner listens to the host's address events
 *     on a netlink socket), and the database's addresses (sbx_net_deny);
 *   - the node's loopback is the job's own (127.0.0.1 in the slot's
 *     namespace), and abstract AF_UNIX sockets belong to a network
 *     namespace, so the host's are out of reach by construction;
 *   - IPv4 only: slirp4netns's IPv6 is experimental, so the namespace has
 *     no IPv6 route out.
 * DNS: jobs get a resolv.conf naming slirp4netns's forwarder (SBX_NET_DNS,
 * on the tap's own subnet), which asks the host's resolvers for them.
 *
 * Runs in the spawner, single-threaded; the helper's launch forks a child
 * that only makes system calls before execve().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define SBX_NET_TAP "tap0"
#define SBX_NET_GW "10.0.2.2" /* slirp4netns's gateway */
/* How long the helper may take to bring its tap device up. */
#define SBX_NET_READY_MS 10000
/* Route metrics (the kernel's priority is metric - 1): the always-denied
 * addresses win over an allow of the same prefix. */
#define SBX_NET_METRIC_ALWAYS 1
#define SBX_NET_METRIC_POLICY 101
#define SBX_NET_MAX_ADDRS 256
/* The buckets of a slot namespace's TCP hash table (sbx_net_own_ehash). */
#define SBX_NET_EHASH "1024"

struct sbx_net_slot {
	int netns;   /* -1 = not made */
	int ctl;     /* an AF_INET socket made inside it, for route ioctls */
	struct sbx_netns_socks socks; /* its socket tables (sbx_net_socks_none) */
	pid_t helper; /* 0 = not running */
	int exit_wr; /* the helper exits when this closes */
	int log;     /* a memfd with the helper's stderr */
};

struct sbx_net {
	struct sbx_net_opts o;	  /* rules copied */
	int host_netns;		  /* borrowed from the view */
	int sysctl;		  /* the host's /proc/sys (O_PATH), for sbx_net_no_time_wait */
	int monitor;		  /* netlink, the host's address events; -1 */
	uint32_t node[SBX_NET_MAX_ADDRS]; /* the node's IPv4 addresses */
	int nnode;
	uint32_t deny[SBX_NET_MAX_ADDRS]; /* sbx_net_deny(): the database's */
	int ndeny;
	unsigned nslots;
	struct sbx_net_slot *slots;
};

/* ---- routes ---------------------------------------------------------------------- */

static int sbx_route(int ctl, unsigned long op, uint32_t addr, unsigned prefix, bool reject,
		     int metric)
{
	struct rtentry rt;
	struct sockaddr_in *sin;

	memset(&rt, 0, sizeof(rt));
	sin = (struct sockaddr_in *)&rt.rt_dst;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
	sin = (struct sockaddr_in *)&rt.rt_genmask;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = prefix ? htonl(~0U << (32 - prefix)) : 0;
	rt.rt_flags = RTF_UP | (prefix == 32 ? RTF_HOST : 0);
	rt.rt_metric = (short)metric;
	if (reject) {
		rt.rt_flags |= RTF_REJECT;
		rt.rt_dev = "lo";
	} else {
		sin = (struct sockaddr_in *)&rt.rt_gateway;
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, SBX_NET_GW, &sin->sin_addr);
		rt.rt_flags |= RTF_GATEWAY;
		rt.rt_dev = SBX_NET_TAP;
	}
	if (ioctl(ctl, op, &rt) < 0)
		return -errno;
	return 0;
}

static int sbx_net_always(int ctl, unsigned long op, uint32_t addr)
{
	int rc = sbx_route(ctl, op, addr, 32, true, SBX_NET_METRIC_ALWAYS);

	/* Adding what is there, or deleting what is not: the goal is met. */
	return rc == -EEXIST || (op == SIOCDELRT && rc == -ESRCH) ? 0 : rc;
}

/* The policy of a fresh slot namespace (slirp4netns made tap0 and the
 * default route). */
static int sbx_net_routes(const struct sbx_net *n, int ctl)
{
	bool all = false;
	int rc;

	for (int i = 0; i < n->o.nrules; i++) {
		const struct sbx_net_rule *r = &n->o.rules[i];

		if (r->allow && r->prefix == 0) {
			all = true;
			continue;
		}
		rc = sbx_route(ctl, SIOCADDRT, r->addr, r->prefix, !r->allow,
			       SBX_NET_METRIC_POLICY);
		if (rc < 0)
			return rc;
	}
	if (!all && (rc = sbx_route(ctl, SIOCDELRT, 0, 0, false, 0)) < 0 && rc != -ESRCH)
		return rc;
	for (int i = 0; i < n->nnode; i++)
		if ((rc = sbx_net_always(ctl, SIOCADDRT, n->node[i])) < 0)
			return rc;
	for (int i = 0; i < n->ndeny; i++)
		if ((rc = sbx_net_always(ctl, SIOCADDRT, n->deny[i])) < 0)
			return rc;
	return 0;
}

/* ---- the node's addresses ---------------------------------------------------------- */

/* Run fn in the host's network namespace (sockets made there stay there). */
static int sbx_in_host(const struct sbx_net *n, int (*fn)(void *), void *arg)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), rc;

	if (self < 0)
		return -errno;
	if (setns(n->host_netns, CLONE_NEWNET) < 0) {
		rc = -errno;
		close(self);
		return rc;
	}
	rc = fn(arg);
	if (setns(self, CLONE_NEWNET) < 0)
		rc = -errno; /* cannot happen: we were just there */
	close(self);
	return rc;
}

struct sbx_addrs {
	uint32_t a[SBX_NET_MAX_ADDRS];
	int n;
};

static int sbx_node_addrs(void *arg)
{
	struct sbx_addrs *out = arg;
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	out->n = 0;
	for (i = ifa; i && out->n < SBX_NET_MAX_ADDRS; i = i->ifa_next) {
		uint32_t a;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
		if ((ntohl(a) >> 24) == 127) /* the job's own loopback */
			continue;
		out->a[out->n++] = a;
	}
	freeifaddrs(ifa);
	return 0;
}

static int sbx_monitor_open(void *arg)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_IFADDR};
	int *fd = arg;

	*fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (*fd < 0)
		return -errno;
	if (bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;
		close(*fd);
		*fd = -1;
		return rc;
	}
	return 0;
}

static bool sbx_has(const uint32_t *a, int n, uint32_t v)
{
	for (int i = 0; i < n; i++)
		if (a[i] == v)
			return true;
	return false;
}

int sbx_net_addresses_changed(struct sbx_net *n)
{
	struct sbx_addrs now;
	char buf[8192];
	int rc;

	if (n->monitor >= 0)
		while (recv(n->monitor, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
	if ((rc = sbx_in_host(n, sbx_node_addrs, &now)) < 0)
		return rc;
	for (unsigned s = 0; s < n->nslots; s++) {
		int ctl = n->slots[s].ctl;

		if (ctl < 0)
			continue;
		for (int i = 0; i < now.n; i++)
			if (!sbx_has(n->node, n->nnode, now.a[i]) &&
			    (rc = sbx_net_always(ctl, SIOCADDRT, now.a[i])) < 0)
				return rc;
		for (int i = 0; i < n->nnode; i++)
			if (!sbx_has(now.a, now.n, n->node[i]) &&
			    !sbx_has(n->deny, n->ndeny, n->node[i]) &&
			    (rc = sbx_net_always(ctl, SIOCDELRT, n->node[i])) < 0)
				return rc;
	}
	memcpy(n->node, now.a, sizeof(now.a[0]) * (size_t)now.n);
	n->nnode = now.n;
	return 0;
}

int sbx_net_deny(struct sbx_net *n, const uint32_t *addrs, int naddrs)
{
	int rc;

	if (naddrs > SBX_NET_MAX_ADDRS)
		return -E2BIG;
	for (unsigned s = 0; s < n->nslots; s++) {
		int ctl = n->slots[s].ctl;

		if (ctl < 0)
			continue;
		for (int i = 0; i < naddrs; i++)
			if ((rc = sbx_net_always(ctl, SIOCADDRT, addrs[i])) < 0)
				return rc;
		for (int i = 0; i < n->ndeny; i++)
			if (!sbx_has(addrs, naddrs, n->deny[i]) &&
			    !sbx_has(n->node, n->nnode, n->deny[i]) &&
			    (rc = sbx_net_always(ctl, SIOCDELRT, n->deny[i])) < 0)
				return rc;
	}
	memcpy(n->deny, addrs, sizeof(addrs[0]) * (size_t)naddrs);
	n->ndeny = naddrs;
	return 0;
}

/* ---- a slot's namespace and its helper --------------------------------------------- */

/* A slot that has nothing (sbx_net_slot_down). */
static void sbx_net_slot_reset(struct sbx_net_slot *s)
{
	*s = (struct sbx_net_slot){.netns = -1, .ctl = -1, .exit_wr = -1, .log = -1};
	sbx_netns_socks_init(&s->socks);
}

/*
 * Closed connections skip TIME_WAIT in the slot's namespace: the kernel
 * keeps no time-wait socket when the namespace's table of them is full, and
 * a table of 0 always is (inet_twsk_alloc; it only counts
 * TCPTimeWaitOverflow in the namespace's /proc/net/netstat, and logs
 * nothing). Otherwise each connection a job closed first would stay a
 * minute in the namespace, where the slot's next job reads its addresses
 * and ports in /proc/net/tcp. TIME_WAIT guards against a late segment of
 * an old connection landing in a new one with the same ports; the peer of
 * every connection here is slirp4netns on the tap device, with nothing in
 * between to delay a segment.
 */
static void sbx_net_no_time_wait(int sysctl)
{
	/* A path from /proc/sys: "net" leads to the caller's namespace's. */
	int fd = openat(sysctl, "net/ipv4/tcp_max_tw_buckets", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, "0", 1) != 1)
		dprintf(2, "valetd: cannot turn TIME_WAIT off in a network namespace of exec+net "
			   "jobs (%s): a job that leaves such sockets gets its namespace made anew\n",
			strerror(errno));
	if (fd >= 0)
		close(fd);
}

/*
 * The network namespaces the caller makes from now on get a TCP hash table
 * of their own, of SBX_NET_EHASH buckets (Linux 6.1; before, or when it
 * cannot be set, they share the host's): /proc/net/tcp walks every bucket
 * of its namespace's table, which for the host's (hundreds of thousands)
 * took 0.7 ms a read here, against 10 us for 1024 - read after every
 * exec+net job (sbx_net_socks_none). A slot's namespace holds one job's
 * connections.
 */
static void sbx_net_own_ehash(int sysctl)
{
	int fd = openat(sysctl, "net/ipv4/tcp_child_ehash_entries", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		(void)!write(fd, SBX_NET_EHASH, strlen(SBX_NET_EHASH));
		close(fd);
	}
}

/* A new network namespace with loopback up, without TIME_WAIT, a socket
 * inside it and its socket tables opened; the caller stays in its own. */
static int sbx_net_ns(const struct sbx_net *n, struct sbx_net_slot *s, struct sbx_error *err)
{
	int rc, self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

	if (self < 0)
		return sbx_error_set(err, "net ns", errno);
	if (sbx_netns_new(&s->netns, err) < 0) {
		close(self);
		return sbx_failed(err);
	}
	if (setns(s->netns, CLONE_NEWNET) < 0) {
		close(self);
		return sbx_error_set(err, "net ns", errno);
	}
	sbx_net_no_time_wait(n->sysctl);
	s->ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	rc = s->ctl < 0 ? -errno : sbx_netns_socks_open(-1, true, &s->socks);
	if (setns(self, CLONE_NEWNET) < 0 && !rc)
		rc = -errno;
	close(self);
	return rc < 0 ? sbx_error_set(err, "net ns", -rc) : 0;
}

/* In the helper's child: a /dev with null and net/tun only (the view's has
 * no tun; jobs never see this one). */
static int sbx_net_child_dev(void)
{
	char src[48];
	int null, tun, fd;

	/* The sources are opened in the new namespace: a bind mount's source
	 * must be a mount of the caller's own. */
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	null = open("/dev/null", O_PATH | O_CLOEXEC);
	tun = open(SBX_NET_TUN, O_PATH | O_CLOEXEC);
	if (null < 0 || tun < 0 ||
	    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=16k") < 0 ||
	    mkdir("/dev/net", 0755) < 0)
		return -errno;
	if ((fd = open("/dev/null", O_WRONLY | O_CREAT | O_CLOEXEC, 0666)) < 0)
		return -errno;
	close(fd);
	if ((fd = open("/dev/net/tun", O_WRONLY | O_CREAT | O_CLOEXEC, 0666)) < 0)
		return -errno;
	close(fd);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", null);
	if (mount(src, "/dev/null", NULL, MS_BIND, NULL) < 0)
		return -errno;
	snprintf(src, sizeof(src), "/proc/self/fd/%d", tun);
	if (mount(src, "/dev/net/tun", NULL, MS_BIND, NULL) < 0)
		return -errno;
	/* The copies keep the view's read-only and nodev flags: clear them. */
	if (mount(NULL, "/dev/null", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, NULL) <
		0 ||
	    mount(NULL, "/dev/net/tun", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, NULL) <
		0)
		return -errno;
	close(null);
	close(tun);
	return 0;
}

/*
 * The helper's child, between fork and execve (fds: netns 3, ready 4,
 * exit 5, stderr to the log): the host's network namespace (slirp4netns
 * makes its sockets there and enters the slot's to make the tap device),
 * root's uid (it drops all but CAP_NET_BIND_SERVICE itself) with a group
 * of its own (ps and the host's firewall can tell it), and an environment
 * of its own.
 */
static void __attribute__((noreturn))
sbx_net_child(const struct sbx_net *n, const struct sbx_net_slot *s, int ready_wr, int exit_rd)
{
	static char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	char *argv[] = {(char *)n->o.helper, "--configure", "--mtu=65520",
			"--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
			"--ready-fd=4", "--exit-fd=5", "--netns-type=path", "/proc/self/fd/3",
			SBX_NET_TAP, NULL};
	int in[4] = {s->log, s->netns, ready_wr, exit_rd}, hi[4], devnull;
	sigset_t none;

	/* The spawner's blocked and ignored signals are not the helper's. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setns(n->host_netns, CLONE_NEWNET) < 0 || sbx_net_child_dev() < 0)
		_exit(126);
	/* Above anything they could collide with, then down to 2..5. */
	for (int i = 0; i < 4; i++)
		if ((hi[i] = fcntl(in[i], F_DUPFD, 100)) < 0)
			_exit(126);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
		_exit(126);
	for (int i = 0; i < 4; i++)
		if (dup2(hi[i], 2 + i) < 0)
			_exit(126);
	if (syscall(SYS_close_range, 6U, ~0U, 0U) < 0)
		_exit(126);
	if (syscall(SYS_setgroups, 0, NULL) < 0 ||
	    syscall(SYS_setresgid, n->o.gid, n->o.gid, n->o.gid) < 0 ||
	    syscall(SYS_setresuid, 0, 0, 0) < 0)
		_exit(126);
	/* After the credentials changed (which clears it); kept by execve. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	execve(n->o.helper, argv, env);
	_exit(127);
}

/* The end of the helper's stderr, for an error message. */
static void sbx_net_log_tail(int log, char *out, size_t outlen)
{
	off_t end = lseek(log, 0, SEEK_END);
	off_t from = end > (off_t)outlen - 1 ? end - (off_t)outlen + 1 : 0;
	ssize_t got = pread(log, out, outlen - 1, from);

	out[got > 0 ? got : 0] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n')
			*c = ' ';
}

static int sbx_net_wait_ready(int ready_rd)
{
	struct pollfd p = {.fd = ready_rd, .events = POLLIN};
	char c;
	int rc;

	while ((rc = poll(&p, 1, SBX_NET_READY_MS)) < 0 && errno == EINTR)
		;
	if (rc == 0)
		return -ETIMEDOUT;
	return read(ready_rd, &c, 1) == 1 && c == '1' ? 0 : -EIO;
}

static void sbx_net_slot_down(struct sbx_net_slot *s)
{
	if (s->exit_wr >= 0)
		close(s->exit_wr); /* the helper exits; the spawner reaps it */
	if (s->helper > 0)
		kill(s->helper, SIGKILL);
	if (s->ctl >= 0)
		close(s->ctl);
	if (s->netns >= 0)
		close(s->netns);
	if (s->log >= 0)
		close(s->log);
	sbx_netns_socks_close(&s->socks);
	sbx_net_slot_reset(s);
}

static int sbx_net_launch(struct sbx_net *n, struct sbx_net_slot *s, struct sbx_error *err)
{
	int ready[2] = {-1, -1}, ex[2] = {-1, -1}, rc;
	pid_t pid;

	s->log = memfd_create("valetd-net-log", MFD_CLOEXEC);
	if (s->log < 0 || pipe2(ready, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
		rc = sbx_error_set(err, "net helper", errno);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = sbx_error_set(err, "net helper", errno);
		goto out;
	}
	if (pid == 0)
		sbx_net_child(n, s, ready[1], ex[0]);
	s->helper = pid;
	s->exit_wr = ex[1];
	ex[1] = -1;
	close(ready[1]);
	ready[1] = -1;
	rc = sbx_net_wait_ready(ready[0]);
	if (rc < 0) {
		char tail[160];

		sbx_net_log_tail(s->log, tail, sizeof(tail));
		dprintf(2, "valetd: the network helper %s did not start (%s)%s%s\n", n->o.helper,
			strerror(-rc), tail[0] ? ": " : "", tail);
		rc = sbx_error_set(err, "net helper", -rc);
		goto out;
	}
	rc = sbx_net_routes(n, s->ctl);
	if (rc < 0)
		rc = sbx_error_set(err, "net routes", -rc);
out:
	for (int i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (ex[i] >= 0)
			close(ex[i]);
	}
	return rc;
}

static int sbx_net_slot_up(struct sbx_net *n, struct sbx_net_slot *s, struct sbx_error *err)
{
	if (sbx_net_ns(n, s, err) < 0 || sbx_net_launch(n, s, err) < 0) {
		sbx_net_slot_down(s);
		return sbx_failed(err);
	}
	return 0;
}

/* ---- the whole ------------------------------------------------------------------- */

int sbx_net_new(const struct sbx_net_opts *o, unsigned nslots, int host_netns, int sysctl,
		struct sbx_net **out, struct sbx_error *err)
{
	struct sbx_net *n = calloc(1, sizeof(*n));
	struct sbx_addrs addrs;
	int rc;

	if (!n || !(n->slots = calloc(nslots, sizeof(*n->slots))) ||
	    !(n->o.rules = calloc((size_t)o->nrules + 1, sizeof(*o->rules)))) {
		if (n)
			free(n->slots);
		free(n);
		if (sysctl >= 0)
			close(sysctl);
		return sbx_error_set(err, "net", ENOMEM);
	}
	n->o.helper = o->helper;
	n->o.gid = o->gid;
	n->o.nrules = o->nrules;
	memcpy((void *)n->o.rules, o->rules, sizeof(*o->rules) * (size_t)o->nrules);
	n->host_netns = host_netns;
	n->sysctl = sysctl;
	n->monitor = -1;
	n->nslots = nslots;
	for (unsigned i = 0; i < nslots; i++)
		sbx_net_slot_reset(&n->slots[i]);
	if ((rc = sbx_in_host(n, sbx_monitor_open, &n->monitor)) < 0 ||
	    (rc = sbx_in_host(n, sbx_node_addrs, &addrs)) < 0) {
		sbx_net_free(n);
		return sbx_error_set(err, "net addresses", -rc);
	}
	memcpy(n->node, addrs.a, sizeof(addrs.a[0]) * (size_t)addrs.n);
	n->nnode = addrs.n;
	sbx_net_own_ehash(n->sysctl);
	for (unsigned i = 0; i < nslots; i++)
		if (sbx_net_slot_up(n, &n->slots[i], err) < 0) {
			sbx_net_free(n);
			return sbx_failed(err);
		}
	*out = n;
	return 0;
}

void sbx_net_free(struct sbx_net *n)
{
	if (!n)
		return;
	for (unsigned i = 0; i < n->nslots; i++) {
		pid_t pid = n->slots[i].helper;

		sbx_net_slot_down(&n->slots[i]);
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
	}
	if (n->monitor >= 0)
		close(n->monitor);
	if (n->sysctl >= 0)
		close(n->sysctl);
	free((void *)n->o.rules);
	free(n->slots);
	free(n);
}

int sbx_net_monitor_fd(const struct sbx_net *n)
{
	return n->monitor;
}

bool sbx_net_reaped(struct sbx_net *n, pid_t pid)
{
	for (unsigned i = 0; n && i < n->nslots; i++)
		if (n->slots[i].helper == pid) {
			n->slots[i].helper = 0; /* reaped: never kill() it again */
			sbx_net_slot_down(&n->slots[i]);
			dprintf(2, "valetd: the network helper of worker slot %u exited; it "
				   "restarts with the slot's next exec+net job\n", i);
			return true;
		}
	return false;
}

/* Whether the slot's tap device is there: it goes when its helper dies,
 * before the spawner may have reaped the helper. */
static bool sbx_net_tap_up(const struct sbx_net_slot *s)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, SBX_NET_TAP);
	return s->ctl >= 0 && ioctl(s->ctl, SIOCGIFINDEX, &ifr) == 0;
}

int sbx_net_netns(struct sbx_net *n, unsigned slot, struct sbx_error *err)
{
	struct sbx_net_slot *s;

	if (!n || slot >= n->nslots)
		return sbx_error_set(err, "net", EINVAL);
	s = &n->slots[slot];
	if (s->helper > 0 && !sbx_net_tap_up(s)) {
		/* Dead, not reaped yet: reap() will not know the pid any more. */
		dprintf(2, "valetd: the network helper of worker slot %u is gone; starting "
			   "another\n", slot);
		sbx_net_slot_down(s);
	}
	if (s->helper <= 0 && sbx_net_slot_up(n, s, err) < 0)
		return sbx_failed(err);
	return s->netns;
}

bool sbx_net_socks_none(const struct sbx_net *n, unsigned slot)
{
	return !n || slot >= n->nslots || sbx_netns_socks_none(&n->slots[slot].socks);
}

void sbx_net_renew(struct sbx_net *n, unsigned slot)
{
	/* The next job starts another helper in a new namespace
	 * (sbx_net_netns), as after a helper's death; this one is not ours to
	 * reap any more (sbx_net_reaped will not know it). */
	if (n && slot < n->nslots)
		sbx_net_slot_down(&n->slots[slot]);
}
