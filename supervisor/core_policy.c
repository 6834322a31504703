/*
 * core_policy.c - what one submitter may ask for (core.h, struct
 * core_policy): the tasks and seccomp profiles it may use, the most it may
 * ask for, how much of its work may wait at once.
 *
 * Theory of operation: a submit that carries a policy is checked after the
 * request's own validation and before anything is reserved or stored, job
 * by job for a pipeline, so a refusal changes nothing. The first rule a
 * request breaks is the one its message names, with the policy's own value
 * ("may use the tasks: a, b"), so the client knows what to change. The
 * limits checked are what a request asks for; what it leaves out gets the
 * task's and the config's defaults, which the operator chose. The queue
 * quota counts the owner's jobs this node holds and has not started (with
 * PostgreSQL, work waiting in the database for any node is not counted): a
 * walk over the active jobs, done only for a policy that has a quota.
 *
 * max_running is no refusal: the core counts each owner's runs here and
 * the dispatcher sets aside (queue_hold()) a job whose owner has as many
 * as its policy allows, until one of them ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_value.h"
#include "core_internal.h"
#include "policy.h"

static bool task_allowed(char **tasks, const char *name)
{
	if (!tasks)
		return true;
	for (char **t = tasks; *t; t++)
		if (!strcmp(*t, name))
			return true;
	return false;
}

/* "a, b, c" of a NULL-terminated list, cut to fit. */
static void list_text(char **v, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (; *v && used < len; v++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *v);
}

static void profiles_text(unsigned profiles, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int p = 0; p < SBX_PROFILE_COUNT && used < len; p++)
		if (profiles & (1u << p))
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
						 policy_profile_name((enum sbx_profile)p));
}

int core_policy_check(struct core *core, const struct core_policy *pol,
		      const struct job_request *req, char *msg, size_t len)
{
	const struct task_def *t = tasks_find(core->reg, req->task_name);
	char have[512], a[32];

	if (!pol || !t)
		return 0;
	if (!task_allowed(pol->tasks, req->task_name)) {
		list_text(pol->tasks, have, sizeof(have));
		snprintf(msg, len, "%s may not run the task %s (policy tasks: %s)", pol->who,
			 req->task_name, have);
		return -1;
	}
	if (pol->profiles && !(pol->profiles & (1u << t->profile))) {
		profiles_text(pol->profiles, have, sizeof(have));
		snprintf(msg, len,
			 "%s may not use the %s profile of the task %s (policy profiles: %s)",
			 pol->who, policy_profile_name(t->profile), req->task_name, have);
		return -1;
	}
	if (pol->max_timeout_ms && req->has_timeout && req->timeout_ms > pol->max_timeout_ms) {
		snprintf(msg, len, "%s may ask for a timeout of at most %s (policy max_timeout)",
			 pol->who, config_fmt_duration(pol->max_timeout_ms, a, sizeof(a)));
		return -1;
	}
	if (pol->max_memory && req->has_limits && req->limits.memory_bytes > pol->max_memory) {
		snprintf(msg, len,
			 "%s may ask for a memory limit of at most %s (policy max_memory)",
			 pol->who, config_fmt_size(pol->max_memory, a, sizeof(a)));
		return -1;
	}
	if (pol->max_cpu_ms && req->has_limits && req->limits.cpu_seconds &&
	    (int64_t)req->limits.cpu_seconds * 1000 > pol->max_cpu_ms) {
		snprintf(msg, len, "%s may ask for a cpu limit of at most %s (policy max_cpu)",
			 pol->who, config_fmt_duration(pol->max_cpu_ms, a, sizeof(a)));
		return -1;
	}
	return 0;
}

void core_policy_note(struct core *core, const struct core_policy *pol, uint16_t owner)
{
	struct core_owner *o;
	size_t n;

	if (!pol || !owner)
		return;
	if (owner >= core->nowners) {
		if (!pol->max_running)
			return;
		n = (size_t)owner + 16;
		o = realloc(core->owners, n * sizeof(*o));
		if (!o)
			return; /* no cap then, rather than no job */
		memset(o + core->nowners, 0, (n - core->nowners) * sizeof(*o));
		core->owners = o;
		core->nowners = n;
	}
	core->owners[owner].max_running = pol->max_running;
}

bool core_owner_full(const struct core *core, uint16_t owner)
{
	const struct core_owner *o = owner < core->nowners ? &core->owners[owner] : NULL;

	return o && o->max_running && o->running >= o->max_running;
}

void core_owner_ran(struct core *core, uint16_t owner, int delta)
{
	struct core_owner *o = owner < core->nowners ? &core->owners[owner] : NULL;

	/* Counted only for an owner with a cap (the memory of the others'). */
	if (!o || !o->max_running)
		return;
	if (delta > 0)
		o->running++;
	else if (o->running > 0)
		o->running--;
}

struct waiting_count {
	uint16_t owner;
	size_t n;
};

static void count_waiting(void *value, void *arg)
{
	const struct job *job = value;
	struct waiting_count *c = arg;

	if (job->owner == c->owner && job->core_where != CORE_RUNNING &&
	    !job_status_final(job->status))
		c->n++;
}

int core_policy_quota(struct core *core, const struct core_policy *pol, uint16_t owner,
		      size_t njobs, char *msg, size_t len)
{
	struct waiting_count c = {owner, 0};

	if (!pol || !pol->max_queued || !owner)
		return 0;
	idmap_foreach(core->active, count_waiting, &c);
	if (c.n + njobs <= pol->max_queued)
		return 0;
	snprintf(msg, len, "%s has %zu jobs waiting and may have at most %u (policy max_queued)",
		 pol->who, c.n, pol->max_queued);
	return -1;
}
