/*
 * auth_policy.c - an API key's policy: the fields after a key's hash in the
 * keys file, and the defaults of [auth] in the config.
 *
 * Theory of operation: a keys file line is NAME SCOPES SHA256 [CREATED]
 * and then any number of FIELD=VALUE words (a file without them reads as
 * before). Each field is also a key of the config's [auth] section, whose
 * value every key gets unless its line sets its own:
 *
 *   profiles=strict,exec     the seccomp profiles its jobs may run under
 *   tasks=sha256,wordcount   the task names it may run
 *   max_timeout=30s          the most "timeout" it may ask for
 *   max_memory=256M          the most limits.memory it may ask for
 *   max_cpu=10s              the most limits.cpu it may ask for
 *   max_running=4            its jobs running on a node at once (more wait)
 *   max_queued=100           its jobs waiting on a node at once
 *   submit_rate=5            submits (POST jobs or pipelines) per second...
 *   submit_burst=20          ... with this many at once (default: the rate)
 *
 * The rules themselves are the core's (struct core_policy); the submit
 * rate is kept here, a token bucket per key: it fills at submit_rate per
 * second up to submit_burst, each submit takes one, and an empty bucket is
 * a 429 whose Retry-After says when the next token comes. A submit that is
 * then refused (a body that does not decode, the core's validation or a
 * rule) gives its token back, so only accepted work uses the rate. Keys
 * read again
 * (a keys file edited, the api_keys table changed) keep their buckets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supervisor/config_value.h"
#include "../supervisor/policy.h"
#include "../supervisor/strv.h"
#include "auth.h"

static int parse_list(const char *text, char ***out)
{
	char **v = NULL;
	size_t n = 0;

	for (const char *p = text; *p;) {
		size_t len = strcspn(p, ",");
		if (len && strv_add_unique(&v, &n, p, len) < 0) {
			strv_free(v);
			return -ENOMEM;
		}
		p += len;
		p += *p == ',';
	}
	*out = v;
	return v ? 0 : -EINVAL;
}

static int parse_profiles(const char *text, unsigned *out)
{
	unsigned bits = 0;

	for (const char *p = text; *p;) {
		size_t len = strcspn(p, ",");
		int i;
		for (i = 0; i < SBX_PROFILE_COUNT; i++) {
			const char *name = policy_profile_name((enum sbx_profile)i);
			if (strlen(name) == len && !strncmp(p, name, len))
				break;
		}
		if (i == SBX_PROFILE_COUNT)
			return -EINVAL;
		bits |= 1u << i;
		p += len;
		p += *p == ',';
	}
	*out = bits;
	return bits ? 0 : -EINVAL;
}

static int parse_count(const char *text, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(text, &end, 10);

	if (!*text || *end || text[0] == '-' || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int auth_policy_field(struct auth_key *k, const char *field, char *msg, size_t len)
{
	const char *eq = strchr(field, '='), *v = eq ? eq + 1 : "";
	size_t nlen = eq ? (size_t)(eq - field) : 0;
	struct core_policy *p = &k->policy;
	size_t bytes;
	int rc = -EINVAL;

#define IS(name) (nlen == strlen(name) && !strncmp(field, name, nlen))
	if (IS("profiles"))
		rc = parse_profiles(v, &p->profiles);
	else if (IS("tasks") && !k->own_tasks)
		rc = parse_list(v, &k->own_tasks);
	else if (IS("max_timeout"))
		rc = config_parse_duration_ms(v, &p->max_timeout_ms) < 0 || p->max_timeout_ms <= 0
			 ? -EINVAL
			 : 0;
	else if (IS("max_memory"))
		rc = config_parse_size(v, &bytes) < 0 || !bytes ? -EINVAL
								: (p->max_memory = bytes, 0);
	else if (IS("max_cpu"))
		rc = config_parse_duration_ms(v, &p->max_cpu_ms) < 0 || p->max_cpu_ms <= 0 ? -EINVAL
											   : 0;
	else if (IS("max_running"))
		rc = parse_count(v, &p->max_running);
	else if (IS("max_queued"))
		rc = parse_count(v, &p->max_queued);
	else if (IS("submit_rate"))
		rc = parse_count(v, &k->submit_rate);
	else if (IS("submit_burst"))
		rc = parse_count(v, &k->submit_burst);
	else if (IS("cert"))
		rc = auth_cert_field(k, v); /* not a rule: who the key is (auth_cert.c) */
#undef IS
	if (rc == -ENOMEM)
		snprintf(msg, len, "out of memory");
	else if (rc < 0)
		snprintf(msg, len,
			 "bad policy field \"%.100s\" (profiles=, tasks=, max_timeout=, "
			 "max_memory=, max_cpu=, max_running=, max_queued=, submit_rate=, "
			 "submit_burst=, cert=sha256:HEX)",
			 field);
	return rc;
}

int auth_policy_defaults(const struct config *cfg, struct auth_key *dflt, char *msg, size_t len)
{
	memset(dflt, 0, sizeof(*dflt));
	if (cfg->auth_profiles[0] &&
	    parse_profiles(cfg->auth_profiles, &dflt->policy.profiles) < 0) {
		snprintf(msg, len,
			 "[auth] profiles: \"%s\" is not a list of strict, exec, exec+net",
			 cfg->auth_profiles);
		return -EINVAL;
	}
	if (cfg->auth_tasks[0] && parse_list(cfg->auth_tasks, &dflt->own_tasks) < 0) {
		snprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	dflt->policy.max_timeout_ms = cfg->auth_max_timeout_ms;
	dflt->policy.max_memory = cfg->auth_max_memory;
	dflt->policy.max_cpu_ms = cfg->auth_max_cpu_ms;
	dflt->policy.max_running = (uint32_t)cfg->auth_max_running;
	dflt->policy.max_queued = (uint32_t)cfg->auth_max_queued;
	dflt->submit_rate = (uint32_t)cfg->auth_submit_rate;
	dflt->submit_burst = (uint32_t)cfg->auth_submit_burst;
	return 0;
}

void auth_policy_apply(struct auth_key *k, const struct auth_key *dflt)
{
	struct core_policy *p = &k->policy;

	snprintf(k->who, sizeof(k->who), "the API key \"%s\"", k->name);
	p->who = k->who;
	p->tasks = k->own_tasks ? k->own_tasks : dflt->own_tasks;
	if (!p->profiles)
		p->profiles = dflt->policy.profiles;
	if (!p->max_timeout_ms)
		p->max_timeout_ms = dflt->policy.max_timeout_ms;
	if (!p->max_memory)
		p->max_memory = dflt->policy.max_memory;
	if (!p->max_cpu_ms)
		p->max_cpu_ms = dflt->policy.max_cpu_ms;
	if (!p->max_running)
		p->max_running = dflt->policy.max_running;
	if (!p->max_queued)
		p->max_queued = dflt->policy.max_queued;
	if (!k->submit_rate)
		k->submit_rate = dflt->submit_rate;
	if (!k->submit_burst)
		k->submit_burst = dflt->submit_burst ? dflt->submit_burst : k->submit_rate;
	k->tokens = k->submit_burst;
	k->tokens_at_ns = 0;
}

/* k's bucket filled up to now_ns; the seconds until it holds a token (0:
 * it holds one). */
static unsigned policy_fill(struct auth_key *k, int64_t now_ns)
{
	double rate = k->submit_rate, burst = k->submit_burst ? k->submit_burst : rate;

	if (k->tokens_at_ns)
		k->tokens += (double)(now_ns - k->tokens_at_ns) / 1e9 * rate;
	if (k->tokens > burst)
		k->tokens = burst;
	k->tokens_at_ns = now_ns;
	if (k->tokens >= 1.0)
		return 0;
	double wait = (1.0 - k->tokens) / rate;
	unsigned secs = (unsigned)wait;

	return secs < wait ? secs + 1 : secs;
}

unsigned auth_policy_take(struct auth_key *k, int64_t now_ns)
{
	unsigned wait;

	if (!k->submit_rate)
		return 0;
	wait = policy_fill(k, now_ns);
	if (!wait)
		k->tokens -= 1.0;
	return wait;
}

unsigned auth_policy_wait(struct auth_key *k, int64_t now_ns)
{
	return k->submit_rate ? policy_fill(k, now_ns) : 0;
}

void auth_policy_give_back(struct auth_key *k)
{
	double burst = k->submit_burst ? k->submit_burst : k->submit_rate;

	if (k->submit_rate)
		k->tokens = k->tokens + 1.0 < burst ? k->tokens + 1.0 : burst;
}

void auth_policy_carry(struct auth_keys *fresh, const struct auth_keys *old)
{
	for (size_t i = 0; old && i < fresh->n; i++) {
		struct auth_key *k = &fresh->keys[i];

		for (size_t j = 0; j < old->n; j++) {
			const struct auth_key *o = &old->keys[j];

			if (strcmp(o->name, k->name) != 0 || memcmp(o->hash, k->hash, 32) != 0 ||
			    o->submit_rate != k->submit_rate || o->submit_burst != k->submit_burst)
				continue;
			k->tokens = o->tokens;
			k->tokens_at_ns = o->tokens_at_ns;
			break;
		}
	}
}

void auth_policy_format(const struct auth_key *k, char *buf, size_t len)
{
	const struct core_policy *p = &k->policy;
	size_t used = 0;
	char a[32];

#define PUT(...) used += (size_t)snprintf(buf + used, used < len ? len - used : 0, __VA_ARGS__)
	buf[0] = '\0';
	if (p->profiles) {
		PUT("%sprofiles=", used ? " " : "");
		for (int i = 0, n = 0; i < SBX_PROFILE_COUNT; i++)
			if (p->profiles & (1u << i))
				PUT("%s%s", n++ ? "," : "",
				    policy_profile_name((enum sbx_profile)i));
	}
	if (k->own_tasks) {
		PUT("%stasks=", used ? " " : "");
		for (char **t = k->own_tasks; *t; t++)
			PUT("%s%s", t == k->own_tasks ? "" : ",", *t);
	}
	if (p->max_timeout_ms)
		PUT("%smax_timeout=%s", used ? " " : "",
		    config_fmt_duration(p->max_timeout_ms, a, sizeof(a)));
	if (p->max_memory)
		PUT("%smax_memory=%s", used ? " " : "",
		    config_fmt_size(p->max_memory, a, sizeof(a)));
	if (p->max_cpu_ms)
		PUT("%smax_cpu=%s", used ? " " : "",
		    config_fmt_duration(p->max_cpu_ms, a, sizeof(a)));
	if (p->max_running)
		PUT("%smax_running=%u", used ? " " : "", p->max_running);
	if (p->max_queued)
		PUT("%smax_queued=%u", used ? " " : "", p->max_queued);
	if (k->submit_rate)
		PUT("%ssubmit_rate=%u", used ? " " : "", k->submit_rate);
	if (k->submit_burst)
		PUT("%ssubmit_burst=%u", used ? " " : "", k->submit_burst);
#undef PUT
	if (used >= len && len)
		buf[len - 1] = '\0';
	auth_cert_format(k, buf, len);
}
