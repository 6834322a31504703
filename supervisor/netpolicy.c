/*
 * netpolicy.c - the [network] allow and deny lists (see netpolicy.h).
 *
 * Theory of operation: each list is IPv4 networks in CIDR notation. They
 * become routes in the routing table of each worker slot's network
 * namespace, so the semantics are a routing table's: the most specific
 * network that holds a destination decides, whichever list it is in. That
 * makes "deny 10.0.0.0/8, allow 10.1.2.0/24" open one internal network and
 * nothing else of 10/8. A network may not be in both lists (which would
 * win?). The node's own addresses and the database's are denied in any
 * case, ahead of every allow (sbx_net.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy.h"

#define NETPOLICY_MAX 256

int netpolicy_parse_cidr(const char *s, struct sbx_net_rule *r)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	struct in_addr a;
	unsigned long prefix = 32;
	uint32_t mask;
	char *end;

	if (len == 0 || len >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, &a) != 1)
		return -EINVAL;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		prefix = strtoul(slash + 1, &end, 10);
		if (*end || prefix > 32)
			return -EINVAL;
	}
	mask = prefix ? ~0U << (32 - prefix) : 0;
	if (ntohl(a.s_addr) & ~mask)
		return -EINVAL;
	r->addr = a.s_addr;
	r->prefix = (uint8_t)prefix;
	return 0;
}

void netpolicy_format(const struct sbx_net_rule *r, char *out, size_t outlen)
{
	char a[INET_ADDRSTRLEN];
	struct in_addr in = {.s_addr = r->addr};

	inet_ntop(AF_INET, &in, a, sizeof(a));
	snprintf(out, outlen, "%s/%u", a, (unsigned)r->prefix);
}

/* Parse list into rules[*n...], each with allow. */
static int netpolicy_parse(const char *label, const char *list, bool allow,
			   struct sbx_net_rule *rules, int *n, char *msg, size_t msglen)
{
	const char *p = list;
	const int first = *n;

	while (*p) {
		char item[64];
		size_t len;

		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (!len)
			break;
		/* At most NETPOLICY_MAX networks in each list (rules[] has room
		 * for that many from first on; netpolicy_rules() two lists'
		 * worth). This used to compare *n, which counts allow's entries
		 * too when deny is parsed, with NETPOLICY_MAX - 1 and say
		 * NETPOLICY_MAX / 2: deny could fail at startup after passing
		 * the config check, with a limit it did not have. */
		if (*n - first >= NETPOLICY_MAX) {
			snprintf(msg, msglen, "%s: more than %d networks", label, NETPOLICY_MAX);
			return -E2BIG;
		}
		if (len >= sizeof(item) || (memcpy(item, p, len), item[len] = '\0',
					   netpolicy_parse_cidr(item, &rules[*n]) < 0)) {
			snprintf(msg, msglen,
				 "%s: \"%.*s\" is not an IPv4 network (A.B.C.D/N, with no bits set "
				 "after the prefix, or an address)",
				 label, (int)(len < 64 ? len : 64), p);
			return -EINVAL;
		}
		rules[(*n)++].allow = allow;
		p += len;
	}
	return 0;
}

int netpolicy_check_list(const char *label, const char *list, char *msg, size_t msglen)
{
	struct sbx_net_rule rules[NETPOLICY_MAX];
	int n = 0;

	return netpolicy_parse(label, list, true, rules, &n, msg, msglen);
}

int netpolicy_rules(const char *allow, const char *deny, struct sbx_net_rule **rules, int *n,
		    char *msg, size_t msglen)
{
	struct sbx_net_rule *r = calloc(2 * NETPOLICY_MAX, sizeof(*r));
	int na = 0, rc;

	if (!r)
		return -ENOMEM;
	rc = netpolicy_parse("allow", allow, true, r, &na, msg, msglen);
	if (rc == 0) {
		int nd = na;

		rc = netpolicy_parse("deny", deny, false, r, &nd, msg, msglen);
		for (int i = 0; rc == 0 && i < na; i++)
			for (int j = na; j < nd; j++)
				if (r[i].addr == r[j].addr && r[i].prefix == r[j].prefix) {
					char net[24];

					netpolicy_format(&r[i], net, sizeof(net));
					snprintf(msg, msglen,
						 "%s is both allowed and denied in [network]", net);
					rc = -EINVAL;
					break;
				}
		na = nd;
	}
	if (rc < 0) {
		free(r);
		return rc;
	}
	*rules = r;
	*n = na;
	return 0;
}
