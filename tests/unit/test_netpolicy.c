/*
 * test_netpolicy.c - supervisor/netpolicy.c: the [network] allow and deny
 * lists. One network (netpolicy_parse_cidr: what is a network, what is
 * refused and why), a list (netpolicy_check_list: separators, the message
 * that names the entry and the key, the size limit), both lists together
 * (netpolicy_rules: order, allow flags, a network in both, the defaults),
 * and netpolicy_format back to text.
 *
 * Then the same checks as config_load() applies them, on real files written
 * into a private directory (removed at the end): the message carries the
 * file and the line, a network in both lists is refused there too, and
 * [network] mode is one of its names.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../supervisor/config.h"
#include "../../supervisor/netpolicy.h"

#define TESTDIR_NAME "valet-test-netpolicy"
#include "testdir.h"
#include "config_file.h"

/* s must parse as addr/prefix (addr in dotted form). */
static void parses(const char *s, const char *addr, unsigned prefix)
{
	struct sbx_net_rule r = {.addr = 0xdeadbeef, .prefix = 99, .allow = true};
	struct in_addr want;

	assert_int_equal(inet_pton(AF_INET, addr, &want), 1);
	if (netpolicy_parse_cidr(s, &r) != 0)
		fail_msg("\"%s\" refused", s);
	assert_int_equal(r.addr, want.s_addr);
	assert_int_equal(r.prefix, prefix);
	assert_true(r.allow); /* not the parser's business */
}

/* s must be refused, and *r left alone. */
static void refused(const char *s)
{
	struct sbx_net_rule r = {.addr = 0x01020304, .prefix = 7};

	if (netpolicy_parse_cidr(s, &r) != -EINVAL)
		fail_msg("\"%s\" accepted (or not with -EINVAL)", s);
	assert_int_equal(r.addr, 0x01020304);
	assert_int_equal(r.prefix, 7);
}

/* ---- one network ------------------------------------------------------------------------ */

static void test_parse_cidr(void **state)
{
	(void)state;
	parses("10.0.0.0/8", "10.0.0.0", 8);
	parses("192.168.1.0/24", "192.168.1.0", 24);
	parses("169.254.169.254/32", "169.254.169.254", 32);
	parses("10.1.2.3", "10.1.2.3", 32); /* an address is a /32 */
	parses("0.0.0.0/0", "0.0.0.0", 0);
	parses("0.0.0.0", "0.0.0.0", 32);
	parses("255.255.255.255", "255.255.255.255", 32);
	parses("128.0.0.0/1", "128.0.0.0", 1);
	parses("10.1.2.2/31", "10.1.2.2", 31);
	parses("10.0.0.0/08", "10.0.0.0", 8); /* decimal, a leading zero is harmless */

	/* Host bits under the prefix: what was meant? */
	refused("10.1.2.3/8");
	refused("10.0.0.1/31");
	refused("128.0.0.0/0");
	refused("0.0.0.1/0");
	refused("1.0.0.0/0");
	refused("192.168.1.1/24");
	/* Prefixes. */
	refused("10.0.0.0/33");
	refused("10.0.0.0/-1");
	refused("10.0.0.0/+8");
	refused("10.0.0.0/");
	refused("10.0.0.0/8x");
	refused("10.0.0.0/8/8");
	refused("10.0.0.0/0x8");
	refused("10.0.0.0/99999999999999999999999");
	refused("10.0.0.0/4294967304"); /* 2^32 + 8: no wrap to 8 */
	/* Addresses. */
	refused("");
	refused("/8");
	refused("1.2.3");
	refused("1.2.3/24");
	refused("1.2.3.4.5");
	refused("256.0.0.0/8");
	refused("10.0.0.0.0/8");
	refused("example.com");
	refused("junk/8");
	refused("::1");
	refused("::/0");
	refused("255.255.255.2550/32"); /* longer than any address */
	refused("-10.0.0.0/8");
	/* Whitespace is the list parser's business, not this one's. */
	refused(" 10.0.0.0/8");
	refused("10.0.0.0/8 ");
	refused("10.0.0.0 /8");
	refused("10.0.0.0/ 8");
	refused("10.0.0.0/8,");
}

/* ---- a list ----------------------------------------------------------------------------- */

static void test_check_list(void **state)
{
	char msg[512];

	(void)state;
	msg[0] = '\0';
	assert_int_equal(netpolicy_check_list("allow", "", msg, sizeof(msg)), 0);
	assert_int_equal(netpolicy_check_list("allow", "  \t , ,", msg, sizeof(msg)), 0);
	assert_int_equal(netpolicy_check_list("allow", "10.0.0.0/8", msg, sizeof(msg)), 0);
	assert_int_equal(netpolicy_check_list("allow",
					      " 10.0.0.0/8,192.168.0.0/16\t1.2.3.4 , 0.0.0.0/0 ",
					      msg, sizeof(msg)),
			 0);
	assert_int_equal(netpolicy_check_list("deny", NETPOLICY_DENY_DEFAULT, msg, sizeof(msg)), 0);
	assert_string_equal(msg, ""); /* untouched on success */

	/* The bad entry, and which key. */
	assert_int_equal(
	    netpolicy_check_list("deny", "10.0.0.0/8, 10.1.2.3/8 192.168.0.0/16", msg, sizeof(msg)),
	    -EINVAL);
	assert_string_equal(msg, "deny: \"10.1.2.3/8\" is not an IPv4 network (A.B.C.D/N, with no "
				 "bits set after the prefix, or an address)");
	assert_int_equal(netpolicy_check_list("allow", "1.2.3.0/24,junk", msg, sizeof(msg)),
			 -EINVAL);
	assert_string_equal(msg, "allow: \"junk\" is not an IPv4 network (A.B.C.D/N, with no bits "
				 "set after the prefix, or an address)");
	assert_int_equal(netpolicy_check_list("allow", "10.0.0.0/33", msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "allow: \"10.0.0.0/33\""));
	assert_int_equal(netpolicy_check_list("allow", "1.2.3", msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "\"1.2.3\""));
	assert_int_equal(netpolicy_check_list("allow", "10.0.0.0/8;11.0.0.0/8", msg, sizeof(msg)),
			 -EINVAL);
	assert_non_null(strstr(msg, "\"10.0.0.0/8;11.0.0.0/8\""));

	/* An entry too long for any network: named, cut at 64 characters. */
	{
		char list[200], want[80];

		memset(list, '1', 150);
		list[150] = '\0';
		assert_int_equal(netpolicy_check_list("deny", list, msg, sizeof(msg)), -EINVAL);
		snprintf(want, sizeof(want), "deny: \"%.64s\" is not", list);
		assert_memory_equal(msg, want, strlen(want));
	}
	/* A short message buffer gets a cut sentence, nothing more. */
	{
		char small[12];

		memset(small, 'x', sizeof(small));
		assert_int_equal(netpolicy_check_list("deny", "nonsense", small, 8), -EINVAL);
		assert_string_equal(small, "deny: \"");
		assert_int_equal(small[8], 'x');
	}
}

/* n different networks first.x.y.0/24, space-separated, in a new string. */
static char *many(int n, int first)
{
	char *s = malloc((size_t)n * 20 + 1), *p = s;

	assert_non_null(s);
	*p = '\0';
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%d.%d.%d.0/24 ", first, i / 256, i % 256);
	return s;
}

static void test_list_limit(void **state)
{
	char msg[256];
	struct sbx_net_rule *rules = NULL;
	char *a = many(256, 10), *b = many(257, 10), *c = many(200, 11);
	int n = 0;

	(void)state;
	/* 256 networks in one list; 257 are too many, with a true message. */
	assert_int_equal(netpolicy_check_list("allow", a, msg, sizeof(msg)), 0);
	assert_int_equal(netpolicy_check_list("deny", b, msg, sizeof(msg)), -E2BIG);
	assert_string_equal(msg, "deny: more than 256 networks");
	/* The limit is each list's: allow does not use up deny's room. */
	assert_int_equal(netpolicy_rules(a, c, &rules, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 456);
	assert_true(rules[255].allow);
	assert_false(rules[256].allow);
	assert_false(rules[455].allow);
	free(rules);
	assert_int_equal(netpolicy_rules(c, b, &rules, &n, msg, sizeof(msg)), -E2BIG);
	assert_string_equal(msg, "deny: more than 256 networks");
	free(a);
	free(b);
	free(c);
}

/* ---- both lists ------------------------------------------------------------------------- */

static void expect_rule(const struct sbx_net_rule *r, const char *net, bool allow)
{
	char s[24];

	netpolicy_format(r, s, sizeof(s));
	assert_string_equal(s, net);
	assert_int_equal(r->allow, allow);
}

static void test_rules(void **state)
{
	char msg[256] = "";
	struct sbx_net_rule *rules = NULL;
	int n = -1;

	(void)state;
	/* Allow first, then deny, each in its own order. */
	assert_int_equal(netpolicy_rules("0.0.0.0/0, 10.1.2.0/24", "10.0.0.0/8 1.1.1.1", &rules, &n,
					 msg, sizeof(msg)),
			 0);
	assert_int_equal(n, 4);
	expect_rule(&rules[0], "0.0.0.0/0", true);
	expect_rule(&rules[1], "10.1.2.0/24", true);
	expect_rule(&rules[2], "10.0.0.0/8", false);
	expect_rule(&rules[3], "1.1.1.1/32", false);
	free(rules);

	/* Either list may be empty. */
	rules = NULL;
	assert_int_equal(netpolicy_rules("", "10.0.0.0/8", &rules, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 1);
	expect_rule(&rules[0], "10.0.0.0/8", false);
	free(rules);
	rules = NULL;
	assert_int_equal(netpolicy_rules("8.8.8.8", "", &rules, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 1);
	expect_rule(&rules[0], "8.8.8.8/32", true);
	free(rules);
	rules = NULL;
	assert_int_equal(netpolicy_rules("", " ", &rules, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 0);
	assert_non_null(rules);
	free(rules);

	/* Nested networks in both lists are the point; the same network is not. */
	rules = NULL;
	assert_int_equal(netpolicy_rules("10.0.0.0/8", "10.0.0.0/9", &rules, &n, msg, sizeof(msg)),
			 0);
	free(rules);
	rules = (struct sbx_net_rule *)&n; /* must stay as it is on failure */
	n = 77;
	assert_int_equal(netpolicy_rules("1.2.3.4, 10.1.0.0/16", "192.168.0.0/16 10.1.0.0/16",
					 &rules, &n, msg, sizeof(msg)),
			 -EINVAL);
	assert_string_equal(msg, "10.1.0.0/16 is both allowed and denied in [network]");
	assert_ptr_equal(rules, &n);
	assert_int_equal(n, 77);
	/* An address and its /32 are the same network. */
	assert_int_equal(netpolicy_rules("1.2.3.4", "1.2.3.4/32", &rules, &n, msg, sizeof(msg)),
			 -EINVAL);
	assert_string_equal(msg, "1.2.3.4/32 is both allowed and denied in [network]");

	/* A bad entry in either list, named with its list. */
	assert_int_equal(netpolicy_rules("10.0.0.1/8", "", &rules, &n, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "allow: \"10.0.0.1/8\" is not an IPv4 network"));
	assert_int_equal(netpolicy_rules("", "0.0.0.0/0 x", &rules, &n, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "deny: \"x\" is not an IPv4 network"));
	assert_ptr_equal(rules, &n);
}

static void test_defaults(void **state)
{
	static const char *const deny[] = {"10.0.0.0/8",    "172.16.0.0/12",  "192.168.0.0/16",
					   "100.64.0.0/10", "169.254.0.0/16", "0.0.0.0/8",
					   "224.0.0.0/4",   "240.0.0.0/4"};
	struct sbx_net_rule *rules = NULL;
	struct config *cfg = config_new();
	char msg[256];
	int n = 0;

	(void)state;
	assert_int_equal(netpolicy_rules(NETPOLICY_ALLOW_DEFAULT, NETPOLICY_DENY_DEFAULT, &rules,
					 &n, msg, sizeof(msg)),
			 0);
	assert_int_equal(n, 9);
	expect_rule(&rules[0], "0.0.0.0/0", true);
	for (int i = 0; i < 8; i++)
		expect_rule(&rules[1 + i], deny[i], false);
	free(rules);
	/* They are the configuration's defaults. */
	assert_non_null(cfg);
	assert_string_equal(cfg->net_allow, NETPOLICY_ALLOW_DEFAULT);
	assert_string_equal(cfg->net_deny, NETPOLICY_DENY_DEFAULT);
	assert_string_equal(cfg->net_mode, "slirp4netns");
	config_free(cfg);
}

static void test_format(void **state)
{
	static const char *const nets[] = {"0.0.0.0/0",	    "10.0.0.0/8",     "255.255.255.255/32",
					   "1.2.3.4/32",    "192.168.0.0/16", "128.0.0.0/1",
					   "100.64.0.0/10", "172.16.0.0/12",  "10.1.2.252/30"};
	struct sbx_net_rule r, back;
	char s[24], small[8];

	(void)state;
	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		assert_int_equal(netpolicy_parse_cidr(nets[i], &r), 0);
		netpolicy_format(&r, s, sizeof(s));
		assert_string_equal(s, nets[i]);
		assert_int_equal(netpolicy_parse_cidr(s, &back), 0);
		assert_int_equal(back.addr, r.addr);
		assert_int_equal(back.prefix, r.prefix);
	}
	/* The longest fits the documented 19 bytes. */
	assert_int_equal(netpolicy_parse_cidr("255.255.255.255", &r), 0);
	netpolicy_format(&r, s, 19);
	assert_string_equal(s, "255.255.255.255/32");
	/* A shorter buffer gets a cut, terminated string. */
	netpolicy_format(&r, small, sizeof(small));
	assert_string_equal(small, "255.255");
}

/* ---- through config_load() -------------------------------------------------------------- */

static void test_config(void **state)
{
	struct config *cfg;

	(void)state;
	check_error("[network]\ndeny = 10.0.0.0/33\n", 2,
		     "deny: \"10.0.0.0/33\" is not an IPv4 network (A.B.C.D/N, with no bits set "
		     "after the prefix, or an address)");
	check_error("# comment\n[network]\nmode = host\n\nallow = 0.0.0.0/0 10.1.2.3/16\n", 5,
		     "allow: \"10.1.2.3/16\" is not an IPv4 network (A.B.C.D/N, with no bits set "
		     "after the prefix, or an address)");
	check_error("[network]\nmode = bogus\n", 2,
		     "mode: \"bogus\" is not one of slirp4netns, host");
	check_error("[network]\nmode =\n", 2, "mode: \"\" is not one of slirp4netns, host");

	cfg = load_ok("[network]\n"
			   "mode = host\n"
			   "allow = 0.0.0.0/0, 10.1.2.0/24\n"
			   "deny = 10.0.0.0/8 169.254.169.254\n");
	assert_string_equal(cfg->net_mode, "host");
	assert_string_equal(cfg->net_allow, "0.0.0.0/0, 10.1.2.0/24");
	assert_string_equal(cfg->net_deny, "10.0.0.0/8 169.254.169.254");
	config_free(cfg);

	/* A network in both lists: refused where the file is read, at the
	 * later of the two lines, not first at startup (found by
	 * tests/fuzz/fuzz_config, corpus/config/regress-allow-deny.conf). */
	check_error("[network]\nallow = 0.0.0.0/8, 192.168.1.1\n", 2,
		     "0.0.0.0/8 is both allowed and denied in [network]");
	check_error("[network]\nmode = host\nallow = 10.2.0.0/16\n\ndeny = 10.0.0.0/8 10.2.0.0/16\n",
		     5, "10.2.0.0/16 is both allowed and denied in [network]");
	check_error("[network]\ndeny = 10.2.0.0/16\nallow = 10.2.0.0/16\n", 3,
		     "10.2.0.0/16 is both allowed and denied in [network]");

	/* Empty lists are lists too. */
	cfg = load_ok("[network]\nallow =\ndeny =\n");
	assert_string_equal(cfg->net_allow, "");
	assert_string_equal(cfg->net_deny, "");
	assert_string_equal(cfg->net_mode, "slirp4netns");
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_cidr), cmocka_unit_test(test_check_list),
	    cmocka_unit_test(test_list_limit), cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_defaults),   cmocka_unit_test(test_format),
	    cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, testdir_setup, testdir_teardown);
}
