/*
 * test_sbx_leftover.c - sandbox/sbx_leftover.c: a network namespace's socket
 * tables, and the kernel's AF_UNIX garbage collector run on demand.
 *
 * Theory of operation: each test makes a new network namespace
 * (sbx_netns_new, as the spawner does for a slot) and opens its tables from
 * outside it (sbx_netns_socks_open); a forked child enters the namespace
 * and leaves something there, then exits - as a job's last process does:
 *   - a listener it closes: nothing is left;
 *   - the SCM_RIGHTS cycle of the attack (a listener in the queue of its own
 *     embryo, with a memfd of 8 MiB): sockets no process holds, which the
 *     tables list until the collector frees them. sbx_unix_gc() must make
 *     that happen soon (the test waits GC_WAIT_MS, and prints how long it
 *     took), and the memfd's pages must be freed with it: the test reads
 *     the system's Shmem in /proc/meminfo before and after.
 * Needs root (skipped otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../sandbox/sandbox.h"

#define CYCLE_MIB 8
/* How long the collector may take once asked (spawner_left.c waits 50 ms);
 * left alone, it waits for some release on the host: 0.2 to 20 s here. */
#define GC_WAIT_MS 100

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* /proc/meminfo's Shmem (KiB). */
static long shmem_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Shmem: %ld kB", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static int abstract_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + 1, name, strlen(name));
	return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
}

/* In the child: a listener, a connection to it, and both of them and a
 * memfd of CYCLE_MIB sent into the accepted end, which nobody accepts. */
static int leave_cycle(void)
{
	static char mib[1 << 20];
	struct sockaddr_un a;
	int len = abstract_addr(&a, "valet-test-leftover");
	int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
	int m = memfd_create("leftover", 0), fds[3] = {l, c, m};
	union {
		char raw[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {"x", 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.raw,
			     .msg_controllen = sizeof(cbuf.raw)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	memset(mib, 'S', sizeof(mib));
	for (int i = 0; i < CYCLE_MIB; i++)
		if (pwrite(m, mib, sizeof(mib), (off_t)i << 20) != (ssize_t)sizeof(mib))
			return 1;
	if (bind(l, (struct sockaddr *)&a, (socklen_t)len) < 0 || listen(l, 4) < 0 ||
	    connect(c, (struct sockaddr *)&a, (socklen_t)len) < 0)
		return 2;
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	return sendmsg(c, &msg, 0) == 1 ? 0 : 3;
}

static int leave_nothing(void)
{
	struct sockaddr_un a;
	int len = abstract_addr(&a, "valet-test-closed");
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	return bind(l, (struct sockaddr *)&a, (socklen_t)len) < 0 || listen(l, 4) < 0 ? 1 : 0;
}

/* A child in netns runs fn and exits (its fds close); its exit status. */
static int in_netns(int netns, int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(setns(netns, CLONE_NEWNET) < 0 ? 99 : fn());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_closed_sockets_are_not_listed(void **state)
{
	struct sbx_error err = {{0}, 0};
	struct sbx_netns_socks w;
	int netns;

	(void)state;
	if (geteuid() != 0)
		SKIP_NEEDS("needs root (network namespaces)");
	assert_int_equal(sbx_netns_new(&netns, &err), 0);
	assert_int_equal(sbx_netns_socks_open(netns, true, &w), 0);
	assert_true(sbx_netns_socks_none(&w));
	assert_int_equal(in_netns(netns, leave_nothing), 0);
	assert_true(sbx_netns_socks_none(&w));
	sbx_netns_socks_close(&w);
	close(netns);
}

static void test_sockets_in_flight_are_collected(void **state)
{
	struct sbx_error err = {{0}, 0};
	struct sbx_netns_socks w;
	long before, after;
	int64_t start, took;
	int netns;

	(void)state;
	if (geteuid() != 0)
		SKIP_NEEDS("needs root (network namespaces)");
	assert_int_equal(sbx_netns_new(&netns, &err), 0);
	assert_int_equal(sbx_netns_socks_open(netns, false, &w), 0);
	before = shmem_kib();
	assert_int_equal(in_netns(netns, leave_cycle), 0);
	/* Left: the child is gone, its sockets are not (unless some other
	 * release on this host ran the collector meanwhile). */
	start = now_ms();
	while (!sbx_netns_socks_none(&w) && now_ms() - start < GC_WAIT_MS) {
		struct timespec ms = {0, 1000000};

		sbx_unix_gc();
		nanosleep(&ms, NULL);
	}
	took = now_ms() - start;
	print_message("waited %lld ms for the collector\n", (long long)took);
	assert_true(sbx_netns_socks_none(&w));
	/* The memfd went with them (within a few ticks: the last fput runs
	 * from delayed work); others may allocate shared memory meanwhile, so
	 * only most of it is asked for. */
	for (start = now_ms(); now_ms() - start < 1000;) {
		after = shmem_kib();
		if (after < before + CYCLE_MIB * 1024 / 2)
			break;
		usleep(1000);
	}
	assert_true(after < before + CYCLE_MIB * 1024 / 2);
	sbx_netns_socks_close(&w);
	close(netns);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_closed_sockets_are_not_listed),
	    cmocka_unit_test(test_sockets_in_flight_are_collected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
