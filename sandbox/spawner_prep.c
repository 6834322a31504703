/*
 * spawner_prep.c - what the spawner's jobs start from: the spawner made
 * ready once at startup, and its view of the host kept current.
 *
 * Theory of operation: spawner_main() (spawner.c) first becomes the
 * spawner (spawner_become: its name, "/" as its directory, its signals,
 * SIGCHLD on a signalfd, tied to the daemon's life), then reads its setup
 * document (spawn_setup.c), loads the plugins, lays out what each job
 * writes on pages of their own (setup_hot_state), prepares the view every
 * job starts from (sbx_view.c: its own read-only mount namespace and an
 * empty network namespace; sbx_net.c for exec+net jobs), empties the
 * capability bounding set, and says READY with its task table - or why it
 * cannot. Then it decides once what every child would otherwise do again
 * (spawner_prepare_children: which signals to reset, jansson's lazily
 * bound calls, no rseq, the environment). While it serves, POLICY hides
 * directories from jobs and denies addresses to exec+net jobs, and the poll
 * loop calls spawner_check_view() when the host unmounts something or
 * every few seconds; either time the slots' namespaces made from an older
 * view go (drop_stale_slotns).
 *
 * Runs in the spawner, single-threaded; nothing here is on a job's path.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#if __has_include(<sys/rseq.h>) /* glibc 2.35 */
#include <sys/rseq.h>
#endif
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/capability.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#include "registry.h"
#include "spawner_internal.h"
#include "taskrun.h"

/*
 * The view changed: the slots' namespaces, copies of it as it was, go
 * (those of a running job when it ends, see slotns_reusable in
 * spawner_kill.c): they would keep what the host unmounted busy, and show
 * what is hidden now.
 */
static void drop_stale_slotns(void)
{
	for (unsigned i = 0; i < spawner_sp.nslots; i++) {
		struct slot *s = &spawner_sp.slots[i];

		if (s->ns.init > 0 && !spawner_slotns_current(s) && !s->in_slotns)
			sbx_slotns_drop(&s->ns);
	}
}

/*
 * POLICY: what jobs must not see or reach, decided by the daemon once it
 * knows (the database's socket directory and addresses come from libpq,
 * loaded after we were forked), and again at each reload. The payload is
 * NUL-terminated entries: "h/dir" hides a directory (sbx_view_hide: also
 * when it appears later, or comes back after a rename), "dA.B.C.D" denies an
 * IPv4 address to exec+net jobs; the denied set replaces the last one.
 */
void spawner_handle_policy(const struct spawn_req *req, const char *payload)
{
	struct spawn_evt evt = {.type = SPAWN_EVT_POLICY, .run_id = req->run_id};
	uint32_t deny[256];
	int ndeny = 0, rc;

	for (size_t off = 0; off < req->input_len;) {
		const char *e = payload + off;
		size_t len = strnlen(e, req->input_len - off);
		struct sbx_error err = {{0}, 0};
		struct in_addr a;

		off += len + 1;
		if (len < 2 || off > req->input_len)
			break;
		if (e[0] == 'h' && spawner_sp.view &&
		    sbx_view_hide(spawner_sp.view, e + 1, &err) < 0) {
			dprintf(2, "valetd: cannot hide %s from jobs: %s: %s\n", e + 1, err.step,
				strerror(err.err));
			evt.spawn_err = err.err;
		} else if (e[0] == 'd' && inet_pton(AF_INET, e + 1, &a) == 1 && ndeny < 256) {
			deny[ndeny++] = a.s_addr;
		}
	}
	if (spawner_sp.net && (rc = sbx_net_deny(spawner_sp.net, deny, ndeny)) < 0) {
		dprintf(2, "valetd: cannot deny addresses to exec+net jobs: %s\n", strerror(-rc));
		evt.spawn_err = -rc;
	}
	drop_stale_slotns();
	send_evt(&evt);
}

/* The host unmounted something, or a hidden directory was renamed away:
 * bring the view in line before the next job is forked from it. */
void spawner_check_view(bool host_changed)
{
	struct sbx_error err = {{0}, 0};

	if (!spawner_sp.view)
		return;
	if (host_changed && sbx_view_follow_host(spawner_sp.view) < 0)
		dprintf(2, "valetd: cannot follow the host's unmounts: %s\n", strerror(errno));
	if (sbx_view_recheck(spawner_sp.view, &err) < 0)
		dprintf(2, "valetd: cannot hide a directory from jobs again: %s: %s\n", err.step,
			strerror(err.err));
	drop_stale_slotns();
}

/*
 * The capability bounding set limits what any process forked from here can
 * ever gain by execve() (a file with capabilities, a setuid-root program
 * that nosuid and no_new_privs did not already neutralise): empty it, once,
 * here, instead of in every job child (41 prctl() calls, each a credential
 * change: about 90 us a job). The spawner keeps what it holds. The network
 * helper, started as root after this, gets exactly the inheritable set
 * (root's execve() takes the bounding set and the inheritable set), so
 * that set gets what the helper needs first, while the bounding set still
 * allows it. Without CAP_SETPCAP nothing changes (--check says so).
 */
static void drop_bounding_set(void)
{
	static const int helper_caps[] = {CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETPCAP,
					  CAP_NET_BIND_SERVICE};
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &hdr, caps) < 0 || !(caps[0].effective & (1U << CAP_SETPCAP)))
		return;
	for (size_t i = 0; spawner_sp.net && i < sizeof(helper_caps) / sizeof(helper_caps[0]); i++)
		caps[0].inheritable |= caps[0].permitted & (1U << helper_caps[i]);
	(void)syscall(SYS_capset, &hdr, caps);
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

/* The view every job starts from, the jobs' inits, and the network of
 * exec+net jobs. 0, or -errno with *err. */
static int prepare_jobs(struct sbx_error *err)
{
	bool net = spawner_sp.opts->net.helper && !spawner_sp.opts->net_host;
	int sysctl = -1;

	if (!spawner_sp.opts->namespaces)
		return 0;
	/* The jobs' inits: a stack each, the way back to this namespace, and
	 * whether this process is still there (Linux 5.3; else unchecked). */
	spawner_sp.init_stacks = calloc(spawner_sp.nslots, 2 * SBX_INIT_STACK);
	spawner_sp.exec_forks = calloc(registry_count(spawner_sp.reg) + 1, sizeof(bool));
	if (!spawner_sp.init_stacks || !spawner_sp.exec_forks)
		return sbx_error_set(err, "init stacks", ENOMEM);
	spawner_sp.own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (spawner_sp.own_pidns < 0)
		return sbx_error_set(err, "open pid namespace", errno);
	spawner_sp.self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0U);
	/* The network's sysctls are written in the slots' namespaces through
	 * the host's /proc: the view's is read-only (sbx_net.c). */
	if (net && (sysctl = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sbx_error_set(err, "open /proc/sys", errno);
	if (sbx_view_prepare(&spawner_sp.opts->view, spawner_sp.opts->keep, spawner_sp.opts->nkeep,
			     &spawner_sp.view, err) < 0) {
		if (sysctl >= 0)
			close(sysctl);
		return sbx_failed(err);
	}
	spawner_sp.host_netns = sbx_view_host_netns(spawner_sp.view);
	if (net && sbx_net_new(&spawner_sp.opts->net, spawner_sp.nslots, spawner_sp.host_netns,
			       sysctl, &spawner_sp.net, err) < 0)
		return sbx_failed(err);
	return 0;
}

/*
 * READY: the event, then the task table (JSON); or, when the setup failed,
 * spawn_err and the sentence that says why.
 */
static void send_ready(int spawn_err, uint32_t flags, const char *text)
{
	struct spawn_evt evt = {.type = SPAWN_EVT_READY, .spawn_err = spawn_err, .flags = flags};
	size_t len = text ? strlen(text) : 0;
	struct iovec iov[2] = {{&evt, sizeof(evt)}, {(void *)text, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = text ? 2 : 1};

	while (sendmsg(spawner_sp.sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/*
 * What this process writes for every job - the slot table, poll()'s array,
 * the request just received - on pages of their own, in that order, so
 * that a few slots and a request without inline input share one page:
 * after each fork every page written here again is a copy-on-write fault
 * (about 25 us on a VM that shadows page tables). 0 or -errno.
 */
static int setup_hot_state(void)
{
	size_t slots = sizeof(*spawner_sp.slots) * spawner_sp.nslots;
	size_t pfd = sizeof(*spawner_sp.pfd) * (SPAWNER_NFIXED + spawner_sp.nslots);
	char *hot = mmap(NULL, slots + pfd + SPAWNER_REQ_MAX, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (hot == MAP_FAILED)
		return -errno;
	spawner_sp.slots = (struct slot *)hot;
	spawner_sp.pfd = (struct pollfd *)(hot + slots);
	spawner_sp.reqbuf = hot + slots + pfd;
	for (unsigned i = 0; i < spawner_sp.nslots; i++) {
		spawner_sp.slots[i].netns = spawner_sp.slots[i].timer = -1;
		spawner_sp.slots[i].ipcns = -1;
		spawner_sp.slots[i].ns_exec_task = -1;
		sbx_netns_socks_init(&spawner_sp.slots[i].netns_socks);
		sbx_slotns_init(&spawner_sp.slots[i].ns);
	}
	return 0;
}

/* Setup: the document, the plugins, the view, the network; READY. */
void spawner_setup(int setup_fd)
{
	static struct spawner_setup setup_doc;
	struct sbx_error err = {{0}, 0};
	char msg[1024] = "";
	char *table;
	int rc;

	rc = spawn_setup_read(setup_fd, &setup_doc, registry_global(), msg, sizeof(msg));
	if (rc < 0) {
		send_ready(-rc, 0, msg);
		_exit(1);
	}
	spawner_sp.opts = &setup_doc;
	spawner_sp.reg = registry_global();
	/* Once the plugins are mapped, and while /proc is still the host's:
	 * the jobs' view, which this process enters, mounts it read-only. */
	(void)sbx_share_code();
	spawner_sp.nslots = setup_doc.nslots;
	if (setup_hot_state() < 0) {
		send_ready(ENOMEM, 0, "out of memory");
		_exit(1);
	}
	if (prepare_jobs(&err) < 0) {
		/* The steps of sbx_mounts_private()'s chroot need the reason they ran. */
		snprintf(msg, sizeof(msg), "cannot prepare the job sandbox: %s%s: %s",
			 strncmp(err.step, "chroot", 6)
			     ? ""
			     : "/ is not a mount point (a chroot) and a "
			       "root of the jobs' own could not be made: ",
			 err.step, strerror(err.err));
		send_ready(err.err ? err.err : EIO, SPAWN_EVT_F_SANDBOX, msg);
		_exit(1);
	}
	drop_bounding_set();
	table = spawn_setup_task_table(spawner_sp.reg);
	if (!table) {
		send_ready(ENOMEM, 0, "out of memory");
		_exit(1);
	}
	send_ready(0, 0, table);
	free(table);
}

/* The process: its name, its signals (SIGCHLD on a signalfd, returned),
 * tied to the daemon's life. The signalfd, or -errno. */
int spawner_become(int sock)
{
	sigset_t set;
	int fd;

	spawner_sp.sock = sock;
	spawner_sp.self = getpid();
	spawner_sp.host_netns = spawner_sp.own_pidns = spawner_sp.self_pidfd = -1;
	spawner_sp.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* Every job starts in "/": once here instead of a chdir() per child. */
	if (chdir("/") < 0 || spawner_sp.devnull < 0)
		return -errno;
	prctl(PR_SET_NAME, "valetd-spawner");
	/* Die with the daemon; it may have died before this prctl: then the
	 * socket is closed already, and the first read says so. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	/* The daemon decides when we stop: a signal sent to the whole service
	 * (`systemctl kill`, a log rotation's SIGHUP or SIGUSR1) is not for us.
	 * Children get these back at their default (changed_signals). */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGALRM, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/*
 * Restartable sequences, which glibc registers for every thread: the kernel
 * then writes the CPU number into the thread's rseq area whenever the
 * thread comes back to user space on another CPU or after a preemption -
 * after each fork, a page fault here and another one in the child, whose
 * registration is inherited. Nothing here or in a task needs them (glibc's
 * sched_getcpu() falls back to the system call), so this process gives
 * them up, and its children inherit that. Best effort: a glibc that
 * registered with another size, or none at all, keeps its registration.
 */
static void drop_rseq(void)
{
#ifdef RSEQ_SIG
	/* The length must be the registered one: __rseq_size is the size of
	 * the features in use (20), the area registered is at least 32. */
	char *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	if (__rseq_size > 0 &&
	    syscall(SYS_rseq, area, 32U, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) < 0 && __rseq_size > 32)
		(void)syscall(SYS_rseq, area, (unsigned)__rseq_size, RSEQ_FLAG_UNREGISTER,
			      RSEQ_SIG);
#endif
}

/* What every child would otherwise do again: decided once here. */
void spawner_prepare_children(void)
{
	/* Children reset only what differs from the default (one syscall per
	 * signal instead of 64), and start with jansson's lazily bound calls
	 * already resolved by a dry run here. */
	spawner_sp.changed_signals = 0;
	for (int sig = 1; sig < NSIG && sig <= 64; sig++)
		if (sbx_signal_disposition(sig) == 1)
			spawner_sp.changed_signals |= 1ULL << (sig - 1);
	taskrun_warmup();
	drop_rseq();
	/* The C task's environment, set here once: in the child, glibc's
	 * environ would be one more page written. */
	environ = spawner_child_env;
}
