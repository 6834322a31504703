/*
 * test_lifecycle.c - the state machine of jobs and pipelines
 * (supervisor/lifecycle.c): every (event, from, to) against the table of
 * lifecycle.h written out again here, what each allowed change sets and
 * tells the store, and that a refused one changes nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/lifecycle.h"
#include "../../supervisor/log.h"
#include "../../supervisor/store.h"

#define NSTATUS (JOB_STATUS_MAX + 1)

/* ---- a store that records what it is told -------------------------------------------- */

static struct {
	int job_saves, pl_saves;
	unsigned fields;
} saved;

static void rec_save_job(struct store *st, struct job *job, unsigned fields)
{
	saved.job_saves++;
	saved.fields = fields;
}

static void rec_save_pipeline(struct store *st, struct pipeline *pl, unsigned fields)
{
	saved.pl_saves++;
	saved.fields = fields;
}

static const struct store_ops rec_ops = {
    .name = "recorder",
    .save_job = rec_save_job,
    .save_pipeline = rec_save_pipeline,
};
static struct store rec = {.ops = &rec_ops};

/* ---- the table, as lifecycle.h states it ------------------------------------------------ */

static bool want_job(enum lc_job_event ev, enum job_status from, enum job_status to)
{
	bool unrun = from == JOB_PENDING || from == JOB_SCHEDULED;
	bool final = to == JOB_COMPLETED || to == JOB_FAILED || to == JOB_CANCELLED;

	switch (ev) {
	case LC_JOB_DUE:
		return from == JOB_PENDING && to == JOB_SCHEDULED;
	case LC_JOB_START:
		return unrun && to == JOB_IN_PROGRESS;
	case LC_JOB_END:
		return from == JOB_IN_PROGRESS && final;
	case LC_JOB_RETRY:
		return from == JOB_IN_PROGRESS && to == JOB_PENDING;
	case LC_JOB_DROP:
		return unrun && (to == JOB_FAILED || to == JOB_CANCELLED);
	default:
		return false;
	}
}

static bool want_pl(enum lc_pl_event ev, enum job_status from, enum job_status to)
{
	bool final = to == JOB_COMPLETED || to == JOB_FAILED || to == JOB_CANCELLED;

	if (ev == LC_PL_START)
		return from == JOB_PENDING && to == JOB_IN_PROGRESS;
	if (ev == LC_PL_END)
		return (from == JOB_IN_PROGRESS && final) ||
		       (from == JOB_PENDING && (to == JOB_FAILED || to == JOB_CANCELLED));
	return false;
}

/* Events with one target: lc_*_allowed ignore `to`, lc_job takes it. */
static bool fixed_target(enum lc_job_event ev)
{
	return ev == LC_JOB_DUE || ev == LC_JOB_START || ev == LC_JOB_RETRY;
}

static void test_job_table(void **state)
{
	for (int ev = 0; ev < LC_JOB_EVENTS; ev++)
		for (int from = 0; from < NSTATUS; from++)
			for (int to = 0; to < NSTATUS; to++) {
				struct job *job = job_new();
				struct lc_change c = {.to = (enum job_status)to, .reason = "why"};
				bool want = want_job(ev, from, to);
				bool any = false;
				int rc;

				/* A fixed target: allowed from `from` whatever `to` says. */
				for (int t = 0; fixed_target(ev) && t < NSTATUS; t++)
					any |= want_job(ev, from, t);
				if (fixed_target(ev))
					want = any;
				assert_int_equal(lc_job_allowed(ev, from, to), want);
				job->status = (enum job_status)from;
				memset(&saved, 0, sizeof(saved));
				rc = lc_job(&rec, job, ev, &c);
				assert_int_equal(rc, want ? 0 : -EINVAL);
				assert_int_equal(saved.job_saves, want ? 1 : 0);
				if (!want)
					assert_int_equal(job->status, from);
				else if (!fixed_target(ev))
					assert_int_equal(job->status, to);
				job_unref(job);
			}
	assert_false(lc_job_allowed(LC_JOB_EVENTS, JOB_PENDING, JOB_SCHEDULED));
	assert_false(lc_job_allowed(LC_JOB_DUE, (enum job_status)(JOB_STATUS_MAX + 1),
				    JOB_SCHEDULED));
}

static void test_pipeline_table(void **state)
{
	for (int ev = 0; ev < LC_PL_EVENTS; ev++)
		for (int from = 0; from < NSTATUS; from++)
			for (int to = 0; to < NSTATUS; to++) {
				struct pipeline *pl = pipeline_new(0);
				struct lc_change c = {.to = (enum job_status)to, .reason = "why"};
				bool want = ev == LC_PL_START ? want_pl(ev, from, JOB_IN_PROGRESS)
							      : want_pl(ev, from, to);

				assert_int_equal(lc_pipeline_allowed(ev, from, to), want);
				pl->status = (enum job_status)from;
				memset(&saved, 0, sizeof(saved));
				assert_int_equal(lc_pipeline(&rec, pl, ev, &c), want ? 0 : -EINVAL);
				assert_int_equal(saved.pl_saves, want ? 1 : 0);
				assert_int_equal(pl->status,
						 !want ? from : ev == LC_PL_START ? JOB_IN_PROGRESS : to);
				pipeline_unref(pl);
			}
}

/* What each change sets, and the fields the store is told of. */
static void test_job_effects(void **state)
{
	struct job *job = job_new();
	int64_t before = job_now_us();

	job->status = JOB_PENDING;
	assert_int_equal(lc_job(&rec, job, LC_JOB_DUE, NULL), 0);
	assert_int_equal(job->status, JOB_SCHEDULED);
	assert_true(job->scheduled_at >= before);
	assert_int_equal(saved.fields, JOB_F_STATUS);

	assert_int_equal(lc_job(&rec, job, LC_JOB_START, NULL), 0);
	assert_int_equal(job->status, JOB_IN_PROGRESS);
	assert_int_equal(job->attempt, 1);
	assert_true(job->started_at >= before);

	assert_int_equal(lc_job(&rec, job, LC_JOB_RETRY, &(struct lc_change){.reason = "first"}),
			 0);
	assert_int_equal(job->status, JOB_PENDING);
	assert_string_equal(job->failure_reason, "first");
	assert_int_equal(job->completed_at, 0);
	assert_int_equal(saved.fields, JOB_F_STATUS | JOB_F_OUTCOME | JOB_F_RETRY);

	assert_int_equal(lc_job(&rec, job, LC_JOB_START, NULL), 0);
	assert_int_equal(job->attempt, 2);
	/* Completed: no failure reason, the result kept. */
	assert_int_equal(lc_job(&rec, job, LC_JOB_END,
				&(struct lc_change){.to = JOB_COMPLETED,
						    .reason = "ignored",
						    .result_json = "{\"a\":1}"}),
			 0);
	assert_int_equal(job->status, JOB_COMPLETED);
	assert_null(job->failure_reason);
	assert_true(job->has_result);
	assert_string_equal(job->result_json, "{\"a\":1}");
	assert_null(job->result_error);
	assert_true(job->completed_at >= job->started_at);
	assert_int_equal(saved.fields, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
	/* Final is final. */
	assert_int_equal(lc_job(&rec, job, LC_JOB_START, NULL), -EINVAL);
	assert_int_equal(lc_job(&rec, job, LC_JOB_END, &(struct lc_change){.to = JOB_FAILED}),
			 -EINVAL);
	assert_int_equal(job->status, JOB_COMPLETED);
	job_unref(job);

	/* A job that never ran: dropped with its reason. */
	job = job_new();
	job->status = JOB_SCHEDULED;
	assert_int_equal(lc_job(&rec, job, LC_JOB_DROP,
				&(struct lc_change){.to = JOB_CANCELLED, .reason = "cancelled"}),
			 0);
	assert_int_equal(job->status, JOB_CANCELLED);
	assert_string_equal(job->failure_reason, "cancelled");
	assert_true(job->completed_at > 0);
	assert_int_equal(job->attempt, 0);
	assert_false(job->has_result);
	job_unref(job);

	/* A retry without a change: no reason, no crash. */
	job = job_new();
	job->status = JOB_IN_PROGRESS;
	assert_int_equal(lc_job(&rec, job, LC_JOB_RETRY, NULL), 0);
	assert_null(job->failure_reason);
	job_unref(job);

	/* No store: the change is made all the same. */
	job = job_new();
	job->status = JOB_PENDING;
	assert_int_equal(lc_job(NULL, job, LC_JOB_START, NULL), 0);
	assert_int_equal(job->status, JOB_IN_PROGRESS);
	job_unref(job);
}

static void test_pipeline_effects(void **state)
{
	struct pipeline *pl = pipeline_new(0);

	pl->status = JOB_PENDING;
	assert_int_equal(lc_pipeline(&rec, pl, LC_PL_START, &(struct lc_change){.when = 1234}), 0);
	assert_int_equal(pl->started_at, 1234);
	assert_int_equal(lc_pipeline(&rec, pl, LC_PL_END,
				     &(struct lc_change){.to = JOB_FAILED, .reason = "job x failed"}),
			 0);
	assert_int_equal(pl->status, JOB_FAILED);
	assert_string_equal(pl->failure_reason, "job x failed");
	assert_true(pl->completed_at > 1234);
	assert_int_equal(saved.fields, JOB_F_STATUS);
	pipeline_unref(pl);
}

static int quiet(void **state)
{
	log_setup(LOG_TEXT, (enum log_level)(LOG_ERROR + 1));
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_job_table),
	    cmocka_unit_test(test_pipeline_table),
	    cmocka_unit_test(test_job_effects),
	    cmocka_unit_test(test_pipeline_effects),
	};

	return cmocka_run_group_tests(tests, quiet, NULL);
}
