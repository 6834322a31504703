/*
 * test_sbx_filter_sockets.c - the socket rules of the seccomp profiles
 * (supervisor/policy.c), loaded for real in forked children: AF_UNIX in
 * every exec profile; IPv4 and IPv6 TCP and UDP under exec+net only,
 * whatever the SOCK_* flags or garbage in the arguments' high halves;
 * netlink, packet, raw sockets and every other protocol never. The rest of
 * the profiles is test_sbx_filter.c's; the harness is sbx_filter_run.h's.
 *
 * Theory of operation: each test forks a child that enters the sandbox
 * with the compiled filter of one profile, exactly as a job child does
 * (sbx_filter_run.h), and calls socket(2) (as a raw system call, so that
 * every bit of the arguments reaches the filter) for a table of cases or
 * a sweep of every type and protocol number, reporting the first (or
 * every) unexpected answer; one test runs a TCP round trip over loopback
 * in python3. An allowed socket must be created (ENOSYS would be a hole in
 * the rules: the default action), a refused one must answer EPERM.
 *
 * Where a refusal could pass for the wrong reason, a control run without
 * a filter shows the difference: as root, netlink and raw sockets work,
 * and the kernel itself never answers EPERM to the refused protocols and
 * creates MPTCP and UDP-Lite sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../sandbox/sandbox.h"
#include "../../supervisor/filter.h"

#include "sbx_filter_run.h"

/* ---- sockets ---------------------------------------------------------------------------- */

/* 0 if socket(domain, type) is allowed (created, or refused by the kernel
 * itself for another reason than EPERM), else 1. */
static int try_socket(unsigned long domain, unsigned long type)
{
	long fd = syscall(SYS_socket, domain, type, 0);

	if (fd >= 0) {
		close((int)fd);
		return 0;
	}
	return errno == EPERM ? 1 : 0;
}

static int child_sockets(void *arg)
{
	bool net = arg != NULL;
	int sv[2];

	/* AF_UNIX, in every profile, with flags in the type's high bits. */
	CHECK(try_socket(AF_UNIX, SOCK_STREAM) == 0, 10);
	CHECK(try_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC) == 0, 11);
	CHECK(try_socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC) == 0, 12);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, 13);
	close(sv[0]);
	close(sv[1]);
	/* Never: netlink, packet, raw sockets, whatever the flags or high bits. */
	CHECK(try_socket(AF_NETLINK, SOCK_RAW) == 1, 15);
	CHECK(try_socket(AF_NETLINK, SOCK_DGRAM) == 1, 16);
	CHECK(try_socket(AF_PACKET, SOCK_RAW) == 1, 17);
	CHECK(try_socket(AF_INET, SOCK_RAW) == 1, 18);
	CHECK(try_socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC) == 1, 19);
	CHECK(try_socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK) == 1, 20);
	CHECK(try_socket(AF_INET, HIGH | SOCK_RAW) == 1, 21);
	CHECK(try_socket(AF_INET, SOCK_PACKET) == 1, 22);
	CHECK(try_socket(HIGH | AF_NETLINK, SOCK_DGRAM) == 1, 23);
	/* IPv4 and IPv6 TCP and UDP: exec+net only. */
	CHECK(try_socket(AF_INET, SOCK_STREAM) == !net, 24);
	CHECK(try_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC) == !net, 25);
	CHECK(try_socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK) == !net, 26);
	CHECK(try_socket(AF_INET6, SOCK_DGRAM) == !net, 27);
	CHECK(try_socket(HIGH | AF_INET, SOCK_STREAM) == !net, 28);
	/* socketpair() is for AF_UNIX only (the kernel would say EOPNOTSUPP). */
	CHECK_ERR(socketpair(AF_INET, SOCK_STREAM, 0, sv), EPERM, 29);
	return 0;
}

static void test_sockets(void **state)
{
	struct result r;

	run(SBX_PROFILE_EXEC, NULL, child_sockets, NULL, &r);
	expect_exit(&r, 0, "exec");
	run(SBX_PROFILE_EXEC_NET, NULL, child_sockets, (void *)1, &r);
	expect_exit(&r, 0, "exec+net");
	/* Control: as root, netlink and raw sockets work without a filter. */
	if (geteuid() == 0) {
		run(SBX_PROFILE_COUNT, NULL, child_sockets, (void *)1, &r);
		expect_exit(&r, 15, "no filter");
	}
}

/* exec+net for real: a TCP round trip over loopback in python. */
static void test_exec_net_python(void **state)
{
	char *const python[] = {
	    "/usr/bin/python3", "-c",
	    "import socket, threading\n"
	    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
	    "def serve():\n"
	    "    c, _ = s.accept(); c.sendall(c.recv(16).upper()); c.close()\n"
	    "t = threading.Thread(target=serve); t.start()\n"
	    "c = socket.create_connection(s.getsockname()); c.sendall(b'ping')\n"
	    "assert c.recv(16) == b'PING'; t.join()\n",
	    NULL};
	struct result r;

	if (!have(python[0]))
		SKIP_NEEDS("%s missing (deps.sh --test installs it)", python[0]);
	run_program(SBX_PROFILE_EXEC_NET, "python3 tcp", python);
	run(SBX_PROFILE_EXEC, (char *const *)python, NULL, NULL, &r);
	assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
	assert_non_null(strstr(r.out, "PermissionError"));
}

/* ---- socket protocols ------------------------------------------------------------------- */

#ifndef IPPROTO_L2TP
#define IPPROTO_L2TP 115 /* <linux/in.h>, which clashes with <netinet/in.h> */
#endif

/*
 * socket(2) calls under exec+net, each tried for AF_INET, AF_INET6 and
 * AF_INET with garbage in the domain's high half. `own` marks the refused
 * protocols the kernel itself implements here (MPTCP, UDP-Lite): only the
 * filter stands between a task and them, and the control run shows that
 * they are created without it. The kernel reads the protocol as an int, so
 * HIGH | IPPROTO_TCP is TCP to it and is allowed (the filter compares the
 * low 32 bits, as the kernel reads them), and no high bits make MPTCP pass.
 */
struct sock_case {
	const char *what;
	unsigned long long type, protocol;
	bool allowed, own;
};

#define NB_CX (SOCK_NONBLOCK | SOCK_CLOEXEC)

/* clang-format off */
static const struct sock_case sock_cases[] = {
	{"stream 0",               SOCK_STREAM,          0,                       true,   false},
	{"stream TCP",             SOCK_STREAM,          IPPROTO_TCP,             true,   false},
	{"stream|flags TCP",       SOCK_STREAM | NB_CX,  IPPROTO_TCP,             true,   false},
	{"stream high|TCP",        SOCK_STREAM,          HIGH | IPPROTO_TCP,      true,   false},
	{"stream|flags high|0",    SOCK_STREAM | NB_CX,  0xffffffff00000000ULL,   true,   false},
	{"dgram 0",                SOCK_DGRAM,           0,                       true,   false},
	{"dgram UDP",              SOCK_DGRAM,           IPPROTO_UDP,             true,   false},
	{"dgram|flags 0",          SOCK_DGRAM | NB_CX,   0,                       true,   false},
	{"dgram|flags UDP",        SOCK_DGRAM | NB_CX,   IPPROTO_UDP,             true,   false},
	{"dgram high|UDP",         SOCK_DGRAM,           HIGH | IPPROTO_UDP,      true,   false},
	{"stream MPTCP",           SOCK_STREAM,          IPPROTO_MPTCP,           false,  true},
	{"stream|flags MPTCP",     SOCK_STREAM | NB_CX,  IPPROTO_MPTCP,           false,  true},
	{"stream high|MPTCP",      SOCK_STREAM,          HIGH | IPPROTO_MPTCP,    false,  true},
	{"high|stream MPTCP",      HIGH | SOCK_STREAM,   IPPROTO_MPTCP,           false,  true},
	{"dgram UDP-Lite",         SOCK_DGRAM,           IPPROTO_UDPLITE,         false,  true},
	{"dgram|flags UDP-Lite",   SOCK_DGRAM | NB_CX,   IPPROTO_UDPLITE,         false,  true},
	{"dgram high|UDP-Lite",    SOCK_DGRAM,           HIGH | IPPROTO_UDPLITE,  false,  true},
	{"stream SCTP",            SOCK_STREAM,          IPPROTO_SCTP,            false,  false},
	{"seqpacket SCTP",         SOCK_SEQPACKET,       IPPROTO_SCTP,            false,  false},
	{"dgram L2TP",             SOCK_DGRAM,           IPPROTO_L2TP,            false,  false},
	{"dgram ICMP",             SOCK_DGRAM,           IPPROTO_ICMP,            false,  false},
	{"dgram ICMPv6",           SOCK_DGRAM,           IPPROTO_ICMPV6,          false,  false},
	{"stream UDP",             SOCK_STREAM,          IPPROTO_UDP,             false,  false},
	{"dgram TCP",              SOCK_DGRAM,           IPPROTO_TCP,             false,  false},
	/* Only exact low halves pass (MPTCP, 0x106, would be TCP to a byte mask). */
	{"stream 0x10006",         SOCK_STREAM,          0x10006,                 false,  false},
	{"stream -1",              SOCK_STREAM,          0xffffffffULL,           false,  false},
	{"dgram high|0x80000011",  SOCK_DGRAM,           HIGH | 0x80000011ULL,    false,  false},
};
/* clang-format on */

static const unsigned long long sock_domains[] = {AF_INET, AF_INET6, HIGH | AF_INET};

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static long raw_socket(unsigned long long domain, unsigned long long type,
		       unsigned long long protocol)
{
	return syscall(SYS_socket, domain, type, protocol);
}

/* Under exec+net: every case gets its verdict. Allowed sockets must be
 * created (ENOSYS would be a hole in the rules: the default action), unless
 * the kernel has no IPv6; refused ones answer EPERM. */
static int child_protocols(void *arg)
{
	int bad = 0;

	for (size_t d = 0; d < LEN(sock_domains); d++)
		for (size_t i = 0; i < LEN(sock_cases); i++) {
			const struct sock_case *c = &sock_cases[i];
			unsigned long long domain = sock_domains[d];
			long fd = raw_socket(domain, c->type, c->protocol);
			int e = errno;

			if (fd >= 0)
				close((int)fd);
			if (c->allowed ? fd >= 0 || (e == EAFNOSUPPORT && domain == AF_INET6)
				       : fd < 0 && e == EPERM)
				continue;
			dprintf(1, "domain %#llx, %s: %s, expected %s\n", domain, c->what,
				fd >= 0 ? "created" : strerror(e),
				c->allowed ? "a socket" : "EPERM");
			bad = 1;
		}
	return bad;
}

/* Bits of child_protocols_control()'s exit status. */
#define CONTROL_KERNEL_EPERM 1 /* the kernel itself answered EPERM: the test proves nothing */
#define CONTROL_NOT_OWN 2      /* MPTCP or UDP-Lite is not available on this kernel */
#define CONTROL_NOT_INT 4      /* the kernel did not read the protocol as an int */

static int so_protocol(long fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0 ? v : -1;
}

/* Without a filter: what the kernel itself says to the refused cases.
 * SCTP and L2TP are left out: asking for them may load a kernel module. */
static int child_protocols_control(void *arg)
{
	int bits = 0;

	for (size_t d = 0; d < LEN(sock_domains); d++)
		for (size_t i = 0; i < LEN(sock_cases); i++) {
			const struct sock_case *c = &sock_cases[i];
			unsigned long long domain = sock_domains[d];
			long fd;
			int e;

			if (c->allowed || c->protocol == IPPROTO_SCTP ||
			    c->protocol == IPPROTO_L2TP)
				continue;
			fd = raw_socket(domain, c->type, c->protocol);
			e = errno;
			if (fd >= 0) {
				dprintf(1, "domain %#llx, %s: created (protocol %d)\n", domain,
					c->what, so_protocol(fd));
				close((int)fd);
			} else {
				dprintf(1, "domain %#llx, %s: %s\n", domain, c->what, strerror(e));
			}
			if (fd < 0 && e == EPERM)
				bits |= CONTROL_KERNEL_EPERM;
			if (c->own && fd < 0 && !(e == EAFNOSUPPORT && domain == AF_INET6))
				bits |= CONTROL_NOT_OWN;
		}
	/* The kernel drops the high half: TCP, and MPTCP when it has it. */
	{
		long fd = raw_socket(AF_INET, SOCK_STREAM, HIGH | IPPROTO_TCP);

		if (fd < 0 || so_protocol(fd) != IPPROTO_TCP)
			bits |= CONTROL_NOT_INT;
		if (fd >= 0)
			close((int)fd);
		fd = raw_socket(AF_INET, SOCK_STREAM, HIGH | IPPROTO_MPTCP);
		if (fd >= 0 && so_protocol(fd) != IPPROTO_MPTCP)
			bits |= CONTROL_NOT_INT;
		if (fd >= 0)
			close((int)fd);
	}
	return bits;
}

/*
 * exec+net: IPv4 and IPv6 sockets are TCP or UDP, whatever the SOCK_*
 * flags or the high bits; MPTCP, UDP-Lite, SCTP, L2TP/IP and ICMP answer
 * EPERM. exec+net@1 let MPTCP and UDP-Lite sockets be created.
 */
static void test_exec_net_protocols(void **state)
{
	struct result r;
	int bits;

	run(SBX_PROFILE_EXEC_NET, NULL, child_protocols, NULL, &r);
	expect_exit(&r, 0, "exec+net");
	/* Control: the kernel itself never answers EPERM to these (so EPERM
	 * above came from the filter), and creates MPTCP and UDP-Lite sockets,
	 * so that refusing them is the filter's doing. */
	run(SBX_PROFILE_COUNT, NULL, child_protocols_control, NULL, &r);
	assert_true(WIFEXITED(r.status));
	bits = WEXITSTATUS(r.status);
	if (bits & ~(CONTROL_KERNEL_EPERM | CONTROL_NOT_OWN | CONTROL_NOT_INT))
		fail_msg("no filter: exit %d\n%s", bits, r.out);
	if (bits & CONTROL_KERNEL_EPERM)
		fail_msg("no filter: the kernel answers EPERM itself; EPERM does not show the "
			 "filter's refusal:\n%s",
			 r.out);
	if (bits & CONTROL_NOT_INT)
		fail_msg("no filter: the kernel does not read the protocol as a 32-bit int");
	if (bits & CONTROL_NOT_OWN)
		print_message("NOTE: this kernel refuses MPTCP or UDP-Lite even without a filter; "
			      "for those the test only shows that the filter answers EPERM where "
			      "the kernel would answer otherwise:\n%s",
			      r.out);
}

/*
 * Every type (with and without flags) and protocol 0..511, and a few
 * with high bits: under exec+net exactly TCP and UDP are created and all
 * else answers EPERM - never ENOSYS, which would be a value no rule
 * covers; under exec every IPv4 and IPv6 socket answers EPERM.
 */
static int child_inet_sweep(void *arg)
{
	/* clang-format off */
	static const unsigned long long odd[] = {
		HIGH, HIGH | IPPROTO_TCP, HIGH | IPPROTO_UDP, 0xffffffff00000006ULL,
		HIGH | IPPROTO_MPTCP, HIGH | IPPROTO_UDPLITE,
		0x80000006ULL, 0x10006ULL, 0x10011ULL, 0xffffffffULL,
	};
	/* clang-format on */
	static const int domains[] = {AF_INET, AF_INET6};
	bool net = arg != NULL;
	int bad = 0;

	for (size_t d = 0; d < LEN(domains); d++)
		for (unsigned type = 0; type < 32; type++) {
			unsigned long long t =
			    (type & 0xf) | (type & 0x10 ? SOCK_NONBLOCK | SOCK_CLOEXEC : 0);

			for (unsigned i = 0; i < 512 + LEN(odd); i++) {
				unsigned long long p = i < 512 ? i : odd[i - 512];
				uint32_t low = (uint32_t)p;
				bool allowed = net && (((type & 0xf) == SOCK_STREAM &&
							(low == 0 || low == IPPROTO_TCP)) ||
						       ((type & 0xf) == SOCK_DGRAM &&
							(low == 0 || low == IPPROTO_UDP)));
				long fd = raw_socket(domains[d], t, p);
				int e = errno;

				if (fd >= 0)
					close((int)fd);
				if (allowed ? fd >= 0 || (e == EAFNOSUPPORT && d == 1)
					    : fd < 0 && e == EPERM)
					continue;
				if (bad++ < 20)
					dprintf(1, "socket(%d, %#llx, %#llx): %s\n", domains[d], t,
						p, fd >= 0 ? "created" : strerror(e));
			}
		}
	return bad ? 1 : 0;
}

static void test_inet_sweep(void **state)
{
	struct result r;

	run(SBX_PROFILE_EXEC_NET, NULL, child_inet_sweep, (void *)1, &r);
	expect_exit(&r, 0, "exec+net");
	run(SBX_PROFILE_EXEC, NULL, child_inet_sweep, NULL, &r);
	expect_exit(&r, 0, "exec");
}

/* ---- main ------------------------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sockets),
	    cmocka_unit_test(test_exec_net_python),
	    cmocka_unit_test(test_exec_net_protocols),
	    cmocka_unit_test(test_inet_sweep),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
