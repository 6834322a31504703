/*
 * netpolicy.h - where exec+net jobs may connect to: the [network] allow and
 * deny lists of IPv4 networks, as rules for their slots' routing tables
 * (sandbox/sbx_net.c applies them in the spawner).
 */
#ifndef VALET_NETPOLICY_H
#define VALET_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "../sandbox/spawn_proto.h"

/* [network] deny's default: private, shared, link-local (the cloud metadata
 * address 169.254.169.254), multicast and reserved IPv4 networks. The
 * internet stays allowed; an operator allows an internal network with a
 * more specific entry in allow. */
#define NETPOLICY_DENY_DEFAULT                                                                \
	"10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16 0.0.0.0/8 "      \
	"224.0.0.0/4 240.0.0.0/4"
#define NETPOLICY_ALLOW_DEFAULT "0.0.0.0/0"

/* One "A.B.C.D/N" (or a bare address, /32) into *r. 0 or -EINVAL; an
 * address with host bits set under its prefix is an error too (10.1.2.3/8:
 * what was meant?). */
int netpolicy_parse_cidr(const char *s, struct sbx_net_rule *r);

/* A list of networks (space or comma separated) for a config key: 0, or
 * -EINVAL with a sentence in msg. */
int netpolicy_check_list(const char *label, const char *list, char *msg, size_t msglen);

/* allow and deny together: *rules (new, free()) and *n. A network in both
 * lists is an error. 0, or -errno with a sentence in msg. */
int netpolicy_rules(const char *allow, const char *deny, struct sbx_net_rule **rules, int *n,
		    char *msg, size_t msglen);

/* "A.B.C.D/N" of a rule into out (at least 19 bytes). */
void netpolicy_format(const struct sbx_net_rule *r, char *out, size_t outlen);

#endif
