/*
 * lifecycle.c - the state machine of jobs and pipelines (see lifecycle.h
 * for the table in words).
 *
 * Theory of operation: job_table[event][from] is the set of statuses the
 * event may lead to from `from` (empty: not allowed). Events with one
 * possible target (DUE, START, RETRY) take it; END and DROP name theirs
 * in the change, which must be in the set. A refused event changes
 * nothing and is logged: it means a bug in the caller, and the job keeps
 * the state it had rather than a state the table does not know. An
 * allowed one sets what goes with the new state in one place (the
 * switches below) and tells the store which fields changed (JOB_F_*).
 */
#include <errno.h>
#include <stddef.h>

#include "lifecycle.h"
#include "log.h"
#include "store.h"

#define S(status) (1u << (status))
#define ENDED (S(JOB_COMPLETED) | S(JOB_FAILED) | S(JOB_CANCELLED))
#define UNRUN (S(JOB_FAILED) | S(JOB_CANCELLED))

static const unsigned job_table[LC_JOB_EVENTS][JOB_STATUS_MAX + 1] = {
    [LC_JOB_DUE] = {[JOB_PENDING] = S(JOB_SCHEDULED)},
    [LC_JOB_START] = {[JOB_PENDING] = S(JOB_IN_PROGRESS), [JOB_SCHEDULED] = S(JOB_IN_PROGRESS)},
    [LC_JOB_END] = {[JOB_IN_PROGRESS] = ENDED},
    [LC_JOB_RETRY] = {[JOB_IN_PROGRESS] = S(JOB_PENDING)},
    [LC_JOB_DROP] = {[JOB_PENDING] = UNRUN, [JOB_SCHEDULED] = UNRUN},
};

static const unsigned pl_table[LC_PL_EVENTS][JOB_STATUS_MAX + 1] = {
    [LC_PL_START] = {[JOB_PENDING] = S(JOB_IN_PROGRESS)},
    [LC_PL_END] = {[JOB_PENDING] = UNRUN, [JOB_IN_PROGRESS] = ENDED},
};

static const char *const job_events[LC_JOB_EVENTS] = {"DUE", "START", "END", "RETRY", "DROP"};
static const char *const pl_events[LC_PL_EVENTS] = {"START", "END"};

/* A table, its event names and its number of events. */
struct lc_table {
	const unsigned (*rows)[JOB_STATUS_MAX + 1];
	const char *const *names;
	int nevents;
	const char *what; /* "job", "pipeline" */
};

static const struct lc_table lc_jobs = {job_table, job_events, LC_JOB_EVENTS, "job"};
static const struct lc_table lc_pls = {pl_table, pl_events, LC_PL_EVENTS, "pipeline"};

/*
 * Where ev leads from `from`: the only status the table has for it, or the
 * one asked (to, for END and DROP) when the table has it. 0 with *out, or
 * -EINVAL.
 */
static int lc_decide(const struct lc_table *t, int ev, enum job_status from, enum job_status to,
		     enum job_status *out)
{
	unsigned allowed;

	if (ev < 0 || ev >= t->nevents || from < JOB_UNDEFINED || from > JOB_STATUS_MAX)
		return -EINVAL;
	allowed = t->rows[ev][from];
	if (allowed && !(allowed & (allowed - 1)))
		to = (enum job_status)__builtin_ctz(allowed);
	if (to < JOB_UNDEFINED || to > JOB_STATUS_MAX || !(allowed & S(to)))
		return -EINVAL;
	*out = to;
	return 0;
}

/* lc_decide(), logging a refusal (a caller's bug). */
static int lc_check(const struct lc_table *t, const uint8_t id[JOB_ID_LEN], int ev,
		    enum job_status from, const struct lc_change *c, enum job_status *to)
{
	enum job_status want = c ? c->to : JOB_UNDEFINED;
	char s[JOB_ID_STRLEN + 1];

	if (lc_decide(t, ev, from, want, to) == 0)
		return 0;
	job_id_format(id, s);
	log_error("refused a status change the lifecycle does not allow (a bug)", "what", t->what,
		  "id", s, "event", ev >= 0 && ev < t->nevents ? t->names[ev] : "?", "from",
		  job_status_name(from), "to", want == JOB_UNDEFINED ? "?" : job_status_name(want));
	return -EINVAL;
}

bool lc_job_allowed(enum lc_job_event ev, enum job_status from, enum job_status to)
{
	enum job_status out;

	return lc_decide(&lc_jobs, ev, from, to, &out) == 0;
}

bool lc_pipeline_allowed(enum lc_pl_event ev, enum job_status from, enum job_status to)
{
	enum job_status out;

	return lc_decide(&lc_pls, ev, from, to, &out) == 0;
}

/* What an event without a change says: nothing. */
static const struct lc_change lc_none;

int lc_job(struct store *st, struct job *job, enum lc_job_event ev, const struct lc_change *c)
{
	unsigned fields = JOB_F_STATUS;
	int64_t now = job_now_us();
	enum job_status to;

	if (lc_check(&lc_jobs, job->id, ev, job->status, c, &to) < 0)
		return -EINVAL;
	c = c ? c : &lc_none;
	job->status = to;
	switch (ev) {
	case LC_JOB_DUE:
		job->scheduled_at = now;
		break;
	case LC_JOB_START:
		job->started_at = now;
		job->attempt++;
		break;
	case LC_JOB_END:
		job_set_str(&job->failure_reason, to == JOB_COMPLETED ? NULL : c->reason);
		job->completed_at = now;
		job->has_result = true;
		job_set_str(&job->result_json, c->result_json);
		job->result_gen++;
		job_set_str(&job->result_error, c->error);
		fields |= JOB_F_RESULT | JOB_F_OUTCOME;
		break;
	case LC_JOB_RETRY:
		/* The core has set when the next attempt is due (core_due). */
		job_set_str(&job->failure_reason, c->reason);
		job->completed_at = 0;
		fields |= JOB_F_OUTCOME | JOB_F_RETRY;
		break;
	case LC_JOB_DROP:
		job_set_str(&job->failure_reason, c->reason);
		job->completed_at = now;
		break;
	case LC_JOB_EVENTS:
		break;
	}
	if (st)
		st->ops->save_job(st, job, fields);
	return 0;
}

int lc_pipeline(struct store *st, struct pipeline *pl, enum lc_pl_event ev,
		const struct lc_change *c)
{
	int64_t when = c && c->when ? c->when : job_now_us();
	enum job_status to;

	if (lc_check(&lc_pls, pl->id, ev, pl->status, c, &to) < 0)
		return -EINVAL;
	c = c ? c : &lc_none;
	pl->status = to;
	switch (ev) {
	case LC_PL_START:
		pl->started_at = when;
		break;
	case LC_PL_END:
		job_set_str(&pl->failure_reason, to == JOB_COMPLETED ? NULL : c->reason);
		pl->completed_at = when;
		break;
	case LC_PL_EVENTS:
		break;
	}
	if (st)
		st->ops->save_pipeline(st, pl, JOB_F_STATUS);
	return 0;
}
