/*
 * config_check.c - the checks of a configuration file that involve more
 * than one key, once the whole file is read (config_load() calls
 * cf_check()).
 *
 * Theory of operation: each key was parsed and range-checked as it was
 * read (config.c's table); what is left are pairs and groups: a timeout
 * maximum against its default, each job-limit maximum against its limit's
 * default (a maximum the file does not set takes that default here, once
 * the default itself is known), the memory for all request bodies against
 * one body's limit, [network] allow against deny, client certificates against TLS,
 * API keys in the database against the store, and the [task.NAME]
 * sections against the maxima (config_task.c). Each reports its first
 * error at the line of the key that makes the pair wrong (cf_fail), and
 * the first error ends the checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"
#include "config_value.h"
#include "netpolicy.h"

/*
 * The maxima of the limits a job may set: each defaults to its limit's
 * default (so out of the box a job can only lower a limit) and may not be
 * below it. 0 is "none" on both sides: a maximum of 0 allows anything, and
 * a default of 0 (no limit) allows only a maximum of 0.
 */
static void cf_check_maxima(struct cf_load *ld)
{
	/* The maximum, its default, and how a message names the default. */
	static const char *const pairs[][5] = {
	    {"jobs", "max_memory_limit", "sandbox", "memory_limit", "[sandbox] memory_limit"},
	    {"jobs", "max_cpu_limit", "sandbox", "cpu_limit", "[sandbox] cpu_limit"},
	    {"jobs", "max_process_limit", "sandbox", "max_processes", "[sandbox] max_processes"},
	    {"jobs", "max_output_limit", "jobs", "max_output_size", "max_output_size"},
	};
	char a[32], b[32];

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		const struct cf_key *mk = cf_find_key(pairs[i][0], pairs[i][1]);
		const struct cf_key *dk = cf_find_key(pairs[i][2], pairs[i][3]);
		int mline = cf_key_line(ld, mk);
		int64_t max, def = cf_num(ld->cfg, dk);

		if (!mline)
			cf_set_num(ld->cfg, mk, def);
		max = cf_num(ld->cfg, mk);
		if (max != 0 && (def == 0 || def > max)) {
			cf_fail(ld, mline, -EINVAL, "%s (%s) is less than %s (%s)", cf_key_name(mk),
				cf_fmt_num(mk, max, a, sizeof(a)), pairs[i][4],
				cf_fmt_num(dk, def, b, sizeof(b)));
			return;
		}
	}
}

/*
 * [network] allow and deny together: a network in both is an error
 * (netpolicy_rules()). Each list alone was checked as it was read, but
 * the pair used to be checked only when the first exec+net job's network
 * was set up at startup, past valetd -t. Reported at the later of the two
 * lines.
 */
static void cf_check_network(struct cf_load *ld)
{
	int aline = cf_key_line(ld, cf_find_key("network", "allow"));
	int dline = cf_key_line(ld, cf_find_key("network", "deny"));
	struct sbx_net_rule *rules = NULL;
	char msg[CF_MSG];
	int n = 0, rc;

	rc = netpolicy_rules(ld->cfg->net_allow, ld->cfg->net_deny, &rules, &n, msg, sizeof(msg));
	if (rc == 0)
		free(rules);
	else if (rc == -ENOMEM)
		cf_fail(ld, 0, rc, "out of memory");
	else
		cf_fail(ld, aline > dline ? aline : dline, rc, "%s", msg);
}

/* [server] auth_source = postgres: the keys are the database's, only. */
static void cf_check_auth(struct cf_load *ld)
{
	int line = cf_key_line(ld, cf_find_key("server", "auth_source"));

	if (!config_keys_in_db(ld->cfg))
		return;
	if (ld->cfg->auth_keys[0])
		cf_fail(ld, line, -EINVAL,
			"auth_source = postgres: the API keys are the database's table, so "
			"auth_keys must not name a file too (one place to revoke a key)");
	else if (strcmp(ld->cfg->storage, "postgres") != 0)
		cf_fail(ld, line, -EINVAL,
			"auth_source = postgres needs [storage] backend = postgres (the keys "
			"live in its database)");
}

/*
 * Client certificates need TLS and a CA to verify them against; a CA
 * bundle with tls_client_auth = off would look like mTLS and check
 * nothing, so it is an error too.
 */
static void cf_check_client_auth(struct cf_load *ld)
{
	const struct config *cfg = ld->cfg;
	int aline = cf_key_line(ld, cf_find_key("server", "tls_client_auth"));
	int cline = cf_key_line(ld, cf_find_key("server", "tls_client_ca"));

	if (cfg->tls_client_auth != CONFIG_CLIENT_AUTH_OFF && !cfg->tls_client_ca[0])
		cf_fail(ld, aline, -EINVAL,
			"tls_client_auth = %s needs tls_client_ca (a CA bundle)",
			cf_client_auth_name(cfg->tls_client_auth));
	else if (cfg->tls_client_auth != CONFIG_CLIENT_AUTH_OFF && !cfg->tls_cert[0])
		cf_fail(ld, aline, -EINVAL, "tls_client_auth = %s needs TLS (tls_cert, tls_key)",
			cf_client_auth_name(cfg->tls_client_auth));
	else if (cfg->tls_client_auth == CONFIG_CLIENT_AUTH_OFF && cfg->tls_client_ca[0])
		cf_fail(ld, cline, -EINVAL,
			"tls_client_ca is set but tls_client_auth = off: no client certificate "
			"would be asked for (say optional or require)");
}

/* All bodies held at once must leave room for one of the largest. */
static void cf_check_bodies(struct cf_load *ld)
{
	const struct cf_key *mk = cf_find_key("server", "max_body_memory");
	const struct cf_key *bk = cf_find_key("server", "max_body");
	int mline = cf_key_line(ld, mk), bline = cf_key_line(ld, bk);
	char a[32], b[32];

	if (ld->cfg->max_body_memory < ld->cfg->max_body_bytes)
		cf_fail(ld, mline > bline ? mline : bline, -EINVAL,
			"max_body_memory (%s) is less than max_body (%s)",
			cf_fmt_num(mk, (int64_t)ld->cfg->max_body_memory, a, sizeof(a)),
			cf_fmt_num(bk, (int64_t)ld->cfg->max_body_bytes, b, sizeof(b)));
}

/* Checks that involve more than one key, once the whole file is read. */
void cf_check(struct cf_load *ld)
{
	const struct config *cfg = ld->cfg;
	int dline = cf_key_line(ld, cf_find_key("jobs", "default_timeout"));
	int mline = cf_key_line(ld, cf_find_key("jobs", "max_timeout"));
	char a[32], b[32];

	if (cfg->max_timeout_ms < cfg->default_timeout_ms) {
		cf_fail(ld, mline ? mline : dline, -EINVAL,
			"max_timeout (%s) is less than default_timeout (%s)",
			config_fmt_duration(cfg->max_timeout_ms, a, sizeof(a)),
			config_fmt_duration(cfg->default_timeout_ms, b, sizeof(b)));
		return;
	}
	cf_check_maxima(ld);
	if (!ld->err)
		cf_check_bodies(ld);
	if (!ld->err)
		cf_check_network(ld);
	if (!ld->err)
		cf_check_client_auth(ld);
	if (!ld->err)
		cf_check_tasks(ld);
	if (!ld->err)
		cf_check_auth(ld);
}
