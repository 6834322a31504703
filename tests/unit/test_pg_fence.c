/*
 * test_pg_fence.c - the writes the PostgreSQL store must not make
 * (storage/pg_write.c, storage/pg_giveback.c, storage/pg_deadline.c).
 * Fencing (issue 14): each write of a run - status, finish, retry,
 * outcome, pipeline status - lands while this node holds the work and
 * changes nothing once another node does; a drain's give-back frees only
 * what this node holds unstarted, after its pending changes, which stop
 * gathering for company while it waits. Submit
 * deadlines: against a database that does not answer (its
 * jobs table locked), creates are answered -ETIMEDOUT in time, sent or
 * not, and none of them is ever stored - not when the transaction in
 * flight reaches its guard late, not when it commits late all the same,
 * not when the connection breaks under it. Against a real PostgreSQL
 * (VALET_TEST_DATABASE_URL; skipped without it), in a schema of the run's
 * own; the harness is pgstore_fixture.h's.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"
#include <ev.h>
#include <libpq-fe.h>

#include "../../storage/pg_internal.h"
#include "../../storage/postgres.h"

#define FIXTURE_NAME "pgfence"
#include "pgstore_fixture.h"

/* ---- fencing (issue 14) ------------------------------------------------------ */

/* UPDATE table SET set WHERE <key> = the object's id: the test as another
 * node, or as what a rescue would have done. */
static void admin_update(const char *table, const char *key, const uint8_t id[JOB_ID_LEN],
			 const char *set)
{
	char q[512], s[JOB_ID_STRLEN + 1];

	job_id_format(id, s);
	snprintf(q, sizeof(q), "UPDATE %s.%s SET %s WHERE %s = '%s'", schema, table, set, key, s);
	admin_exec(q);
}

static const char *pipeline_column(const struct pipeline *pl, const char *column)
{
	char q[256], id[JOB_ID_STRLEN + 1];

	job_id_format(pl->id, id);
	snprintf(q, sizeof(q), "SELECT %s::text FROM %s.pipelines WHERE id = '%s'", column, schema,
		 id);
	return admin_value(q);
}

/* Another node holds the job now (it was rescued from this one and claimed
 * there). */
static void steal_job(const struct job *job)
{
	admin_update("jobs", "id", job->id, "claimed_by = 'thief', claimed_at = now()");
}

/*
 * Each write of a run, for two jobs: one still held by this node, one whose
 * claim the test gave to another node after it was created claimed here.
 * The held one is written; the other is left exactly as the other node has
 * it - status, attempt, claim, and no results or attempts row of ours.
 */
static void test_fenced_job_writes(void **state)
{
	struct job *held[5], *lost[5];
	struct store *st;
	struct pg_store *ps;
	enum { STATUS, FINISH, RETRY, OUTCOME, FINISH1 };

	need_db();
	st = db_store();
	ps = pg_of(st);
	for (int i = 0; i < 5; i++) {
		held[i] = make_job("held");
		lost[i] = make_job("lost");
		held[i]->max_attempts = lost[i]->max_attempts = i == RETRY ? 2 : 1;
		create_claimed_job(st, held[i]);
		create_claimed_job(st, lost[i]);
		assert_column(lost[i], "claimed_by", ps->node);
		steal_job(lost[i]);
	}

	/* PGS_JOB_STATUS: a start (written once PG_LAZY_S has passed). */
	for (int i = 0; i < 2; i++) {
		struct job *job = i ? lost[STATUS] : held[STATUS];
		start_attempt(job);
		st->ops->save_job(st, job, JOB_F_STATUS);
	}
	pg_flush_lazy(ps);
	sync_wait(st);
	assert_column(held[STATUS], "status", "IN_PROGRESS");
	assert_column(held[STATUS], "node_id", ps->node);
	assert_column(lost[STATUS], "status", "PENDING");
	assert_column(lost[STATUS], "attempt", "0");
	assert_column(lost[STATUS], "node_id", NULL);
	assert_column(lost[STATUS], "claimed_by", "thief");

	/* The final status with the result: PGS_JOB_FINISH_MANY (both in one
	 * batch), then PGS_JOB_FINISH (each alone in its batch). */
	for (int k = FINISH; k <= FINISH1; k += FINISH1 - FINISH) {
		for (int i = 0; i < 2; i++) {
			struct job *job = i ? lost[k] : held[k];
			start_attempt(job);
			job->status = JOB_COMPLETED;
			job->completed_at = job_now_us();
			job->has_result = true;
			job_set_str(&job->result_json, "{\"late\":true}");
			job->outcome.pid = 4100;
			job->outcome.exit_code = 0;
			st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
			if (k == FINISH1)
				sync_wait(st);
		}
		sync_wait(st);
		assert_column(held[k], "status", "COMPLETED");
		assert_column(held[k], "claimed_by", NULL);
		assert_int_equal(rows_of_job("results", held[k]), 1);
		assert_column(lost[k], "status", "PENDING");
		assert_column(lost[k], "claimed_by", "thief");
		assert_column(lost[k], "pid", NULL);
		assert_column(lost[k], "completed_at", NULL);
		assert_int_equal(rows_of_job("results", lost[k]), 0);
	}

	/* PGS_JOB_RETRY: a failed attempt of a job that may run again. */
	for (int i = 0; i < 2; i++) {
		struct job *job = i ? lost[RETRY] : held[RETRY];
		start_attempt(job);
		job->status = JOB_PENDING;
		job_set_str(&job->failure_reason, "attempt 1 of 2 failed: boom");
		job->core_due = job_now_us() + 60 * INT64_C(1000000);
		job->outcome.pid = 4200;
		job->outcome.exit_code = 1;
		st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_OUTCOME | JOB_F_RETRY);
	}
	sync_wait(st);
	assert_column(held[RETRY], "failure_reason", "attempt 1 of 2 failed: boom");
	assert_column(held[RETRY], "attempt", "1");
	assert_int_equal(rows_of_job("attempts", held[RETRY]), 1);
	assert_column(lost[RETRY], "failure_reason", NULL);
	assert_column(lost[RETRY], "attempt", "0");
	assert_column(lost[RETRY], "pid", NULL);
	assert_column(lost[RETRY], "claimed_by", "thief");
	assert_int_equal(rows_of_job("attempts", lost[RETRY]), 0);

	/* PGS_JOB_OUTCOME: the outcome alone. */
	for (int i = 0; i < 2; i++) {
		struct job *job = i ? lost[OUTCOME] : held[OUTCOME];
		job->outcome.pid = 4300;
		st->ops->save_job(st, job, JOB_F_OUTCOME);
	}
	sync_wait(st);
	assert_column(held[OUTCOME], "pid", "4300");
	assert_column(lost[OUTCOME], "pid", NULL);
	assert_column(lost[OUTCOME], "claimed_by", "thief");

	store_free(st);
	for (int i = 0; i < 5; i++) {
		job_unref(held[i]);
		job_unref(lost[i]);
	}
}

/*
 * The same for pipelines: a pipeline stored claimed is held by its row
 * (pipelines.claimed_by). Its status is written only while this node holds
 * it, and a final one ends the claim; the late pid of a job of it whose own
 * claim ended with its final status is written under the pipeline's claim,
 * and not once another node holds the pipeline. A rename (PATCH, from any
 * node) is no run's write: it lands, and writes no status.
 */
static void test_fenced_pipeline_writes(void **state)
{
	struct pipeline *held = make_pipeline("held", 2), *lost = make_pipeline("lost", 2);
	struct pipeline *both[2] = {held, lost};
	struct answer a = {0};
	struct store *st;
	struct pg_store *ps;

	need_db();
	st = db_store();
	ps = pg_of(st);
	for (int i = 0; i < 2; i++) {
		a.calls = 0;
		assert_int_equal(st->ops->create_pipeline(st, both[i], STORE_CLAIM, record, &a), 0);
		assert_true(wait_until(answered, &a, 10.));
		assert_int_equal(a.err, 0);
		assert_string_equal(pipeline_column(both[i], "claimed_by"), ps->node);
	}
	/* Both pipelines' first jobs ran and finished here (their claims end). */
	for (int i = 0; i < 2; i++) {
		struct job *job = both[i]->jobs[0];
		both[i]->status = JOB_IN_PROGRESS;
		both[i]->started_at = job_now_us();
		st->ops->save_pipeline(st, both[i], JOB_F_STATUS);
		start_attempt(job);
		job->status = JOB_COMPLETED;
		job->completed_at = job_now_us();
		job->has_result = true;
		st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
	}
	sync_wait(st);
	assert_string_equal(pipeline_column(lost, "status"), "IN_PROGRESS");
	assert_column(lost->jobs[0], "claimed_by", NULL);
	/* Another node holds the second pipeline now, and its open job. */
	admin_update("pipelines", "id", lost->id, "claimed_by = 'thief'");
	steal_job(lost->jobs[1]);

	/* PGS_JOB_OUTCOME under the pipeline's claim: the late pid. */
	for (int i = 0; i < 2; i++) {
		both[i]->jobs[0]->outcome.pid = 4400;
		st->ops->save_job(st, both[i]->jobs[0], JOB_F_OUTCOME);
	}
	sync_wait(st);
	assert_column(held->jobs[0], "pid", "4400");
	assert_column(lost->jobs[0], "pid", NULL);

	/* PGS_PIPELINE: the final status, which ends the claim. */
	for (int i = 0; i < 2; i++) {
		both[i]->status = JOB_FAILED;
		job_set_str(&both[i]->failure_reason, "late");
		both[i]->completed_at = job_now_us();
		st->ops->save_pipeline(st, both[i], JOB_F_STATUS);
	}
	sync_wait(st);
	assert_string_equal(pipeline_column(held, "status"), "FAILED");
	assert_null(pipeline_column(held, "claimed_by"));
	assert_string_equal(pipeline_column(lost, "status"), "IN_PROGRESS");
	assert_null(pipeline_column(lost, "failure_reason"));
	assert_null(pipeline_column(lost, "completed_at"));
	assert_string_equal(pipeline_column(lost, "claimed_by"), "thief");

	/* A rename lands whoever holds the pipeline, and writes nothing else. */
	job_set_str(&lost->name, "renamed");
	st->ops->save_pipeline(st, lost, JOB_F_META);
	sync_wait(st);
	assert_string_equal(pipeline_column(lost, "name"), "renamed");
	assert_string_equal(pipeline_column(lost, "status"), "IN_PROGRESS");

	store_free(st);
	pipeline_unref(held);
	pipeline_unref(lost);
}

/* ---- giving back at a drain ------------------------------------------------- */

static bool given_back_all(void *arg)
{
	const struct pg_store *ps = arg;

	return !ps->ngive_back && !ps->give_back_sent;
}

/* Whether the admin connection (LISTENing) got a NOTIFY on channel with
 * payload (channel NULL: none; what came is forgotten), within a second. */
static bool notified(const char *channel, const char *payload)
{
	for (int i = 0; i < 100; i++) {
		PGnotify *n;
		bool found = false;

		PQconsumeInput(admin);
		while ((n = PQnotifies(admin))) {
			found |= channel && !strcmp(n->relname, channel) &&
				 !strcmp(n->extra, payload);
			PQfreemem(n);
		}
		if (found || !channel)
			return found;
		usleep(10000);
	}
	return false;
}

/*
 * Work waiting to be given back waits for every change saved before it
 * (test_give_back); those changes do not wait for company meanwhile
 * (pg_write.c's gathering): a job's end, and a unit given back, are sent
 * at once - under a steady stream of changes the units would otherwise
 * find one always waiting.
 */
static void test_give_back_stops_gathering(void **state)
{
	struct job *held = make_job("held"), *ends = make_job("ends");
	struct store *st;
	struct pg_store *ps;

	need_db();
	st = db_store();
	ps = pg_of(st);
	create_claimed_job(st, held);
	create_claimed_job(st, ends);
	sync_wait(st);

	finish_job(st, ends);
	st->ops->give_back(st, held->id, false);
	ev_now_update(loop);
	ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(ps->inflight, 1);
	assert_false(ev_is_active(&ps->gather_w));
	assert_true(wait_until(given_back_all, ps, 10.));
	assert_column(ends, "status", "COMPLETED");
	assert_column(held, "claimed_by", NULL);

	store_free(st);
	job_unref(held);
	job_unref(ends);
}

static const char *job_test(const struct job *job, const char *cond)
{
	char q[256], id[JOB_ID_STRLEN + 1];

	job_id_format(job->id, id);
	snprintf(q, sizeof(q), "SELECT (%s)::text FROM %s.jobs WHERE id = '%s'", cond, schema, id);
	return admin_value(q);
}

/*
 * PGS_GIVE_BACK_JOB and _PIPELINE (pg_giveback.c), the units of a drain:
 * what this node holds unstarted goes back to the queue - unclaimed and
 * due, its status, attempt and reason as they were - and a NOTIFY without
 * a due time wakes the other nodes; what another node holds now, and what
 * started here, stays as it is. A unit given back while a change of it
 * waits to be written (here a retry) goes after that change: the retry
 * lands under the claim, then the claim ends.
 */
static void test_give_back(void **state)
{
	enum { HELD, LOST, STARTED, RETRY, NJOBS };
	struct job *jobs[NJOBS];
	struct pipeline *pls[3];
	enum { PL_HELD, PL_LOST, PL_STARTED };
	struct answer a = {0};
	struct store *st;
	struct pg_store *ps;
	char q[160];

	need_db();
	st = db_store();
	ps = pg_of(st);
	snprintf(q, sizeof(q), "LISTEN \"%s\"", ps->chan_jobs);
	admin_exec(q);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = make_job("give-back");
		jobs[i]->max_attempts = 2;
		create_claimed_job(st, jobs[i]);
	}
	steal_job(jobs[LOST]);
	start_attempt(jobs[STARTED]);
	start_attempt(jobs[RETRY]);
	st->ops->save_job(st, jobs[STARTED], JOB_F_STATUS);
	st->ops->save_job(st, jobs[RETRY], JOB_F_STATUS);
	for (int i = 0; i < 3; i++) {
		pls[i] = make_pipeline("give-back", 2);
		a.calls = 0;
		assert_int_equal(st->ops->create_pipeline(st, pls[i], STORE_CLAIM, record, &a), 0);
		assert_true(wait_until(answered, &a, 10.));
		assert_int_equal(a.err, 0);
	}
	admin_update("pipelines", "id", pls[PL_LOST]->id, "claimed_by = 'thief'");
	admin_update("jobs", "pipeline_id", pls[PL_LOST]->id, "claimed_by = 'thief'");
	pls[PL_STARTED]->status = JOB_IN_PROGRESS;
	pls[PL_STARTED]->started_at = job_now_us();
	st->ops->save_pipeline(st, pls[PL_STARTED], JOB_F_STATUS);
	start_attempt(pls[PL_STARTED]->jobs[0]);
	st->ops->save_job(st, pls[PL_STARTED]->jobs[0], JOB_F_STATUS);
	pg_flush_lazy(ps);
	sync_wait(st);
	assert_column(jobs[RETRY], "status", "IN_PROGRESS");
	notified(NULL, NULL); /* forget what came before */

	/* The retry is saved, and given back at once: it waits to be written. */
	jobs[RETRY]->status = JOB_PENDING;
	job_set_str(&jobs[RETRY]->failure_reason, "attempt 1 of 2 failed: boom");
	jobs[RETRY]->core_due = job_now_us() + 60 * INT64_C(1000000);
	st->ops->save_job(st, jobs[RETRY], JOB_F_STATUS | JOB_F_OUTCOME | JOB_F_RETRY);
	for (int i = 0; i < NJOBS; i++)
		st->ops->give_back(st, jobs[i]->id, false);
	for (int i = 0; i < 3; i++)
		st->ops->give_back(st, pls[i]->id, true);
	assert_true(wait_until(given_back_all, ps, 10.));
	assert_true(notified(ps->chan_jobs, ""));

	assert_column(jobs[HELD], "claimed_by", NULL);
	assert_column(jobs[HELD], "claimed_at", NULL);
	assert_column(jobs[HELD], "status", "PENDING");
	assert_column(jobs[HELD], "attempt", "0");
	assert_column(jobs[HELD], "failure_reason", NULL);
	assert_string_equal(job_test(jobs[HELD], "due_at <= now()"), "true");
	assert_column(jobs[LOST], "claimed_by", "thief");
	assert_column(jobs[STARTED], "claimed_by", ps->node);
	assert_column(jobs[STARTED], "status", "IN_PROGRESS");
	assert_column(jobs[RETRY], "claimed_by", NULL);
	assert_column(jobs[RETRY], "status", "PENDING");
	assert_column(jobs[RETRY], "attempt", "1");
	assert_column(jobs[RETRY], "failure_reason", "attempt 1 of 2 failed: boom");
	assert_string_equal(job_test(jobs[RETRY], "due_at > now() + interval '50 s'"), "true");
	assert_int_equal(rows_of_job("attempts", jobs[RETRY]), 1);

	assert_null(pipeline_column(pls[PL_HELD], "claimed_by"));
	assert_string_equal(pipeline_column(pls[PL_HELD], "status"), "PENDING");
	for (int i = 0; i < 2; i++) {
		assert_column(pls[PL_HELD]->jobs[i], "claimed_by", NULL);
		assert_column(pls[PL_HELD]->jobs[i], "status", "PENDING");
		assert_column(pls[PL_LOST]->jobs[i], "claimed_by", "thief");
		assert_column(pls[PL_STARTED]->jobs[i], "claimed_by", ps->node);
	}
	assert_string_equal(job_test(pls[PL_HELD]->jobs[0], "due_at <= now()"), "true");
	assert_string_equal(pipeline_column(pls[PL_LOST], "claimed_by"), "thief");
	assert_string_equal(pipeline_column(pls[PL_STARTED], "claimed_by"), ps->node);

	admin_exec("UNLISTEN *");
	store_free(st);
	for (int i = 0; i < NJOBS; i++)
		job_unref(jobs[i]);
	for (int i = 0; i < 3; i++)
		pipeline_unref(pls[i]);
}

/* ---- submit deadlines ------------------------------------------------------- */

static bool two_answered(void *a)
{
	struct answer *v = a;

	return v[0].calls && v[1].calls;
}

static bool three_answered(void *a)
{
	struct answer *v = a;

	return v[0].calls && v[1].calls && v[2].calls;
}

/* Everything written, nothing withdrawn that may still exist. */
static bool settled(void *ps)
{
	struct pg_store *p = ps;

	return !pg_write_pending(p) && !p->inflight && TAILQ_EMPTY(&p->withdrawn);
}

/* A store whose creates time out after 300 ms (guard 150 ms earlier). */
static struct store *deadline_store(void)
{
	struct store *st;

	submit_timeout_ms = 300;
	st = db_store();
	submit_timeout_ms = 0;
	return st;
}

/*
 * A hung database: the first create (unclaimed, so its transaction ends
 * with the NOTIFY and the guard in one statement) is sent and waits for the
 * lock; two more (a job, a pipeline) wait behind it, unsent. All three are
 * answered -ETIMEDOUT at their deadline. Once the lock goes, the transaction
 * in flight reaches its guard after its time and rolls back: nothing
 * exists (test_deadline_connection_lost: a guard without a NOTIFY).
 */
static void test_deadline_hung(void **state)
{
	struct job *a = make_job("a"), *b = make_job("b");
	struct pipeline *c = make_pipeline("c", 2);
	struct answer ans[3] = {{0}};
	struct store *st;
	struct pg_store *ps;
	int64_t t0;
	long inserts;

	need_db();
	st = deadline_store();
	ps = pg_of(st);
	inserts = updates("jobs+");
	lock_jobs();
	t0 = job_mono_ns();
	/* Unclaimed: its guard is the statement with its NOTIFY. */
	assert_int_equal(st->ops->create_job(st, a, 0, record, &ans[0]), 0);
	until_in_flight(ps);
	assert_true(since(t0) < 0.1);
	assert_int_equal(st->ops->create_job(st, b, 0, record, &ans[1]), 0);
	assert_int_equal(st->ops->create_pipeline(st, c, STORE_CLAIM, record, &ans[2]), 0);
	assert_true(wait_until(three_answered, ans, 5.));
	assert_true(since(t0) < 1.0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ans[i].calls, 1);
		assert_int_equal(ans[i].err, -ETIMEDOUT);
	}
	/* The unsent ones are gone; the one in flight waits for its end. */
	assert_true(TAILQ_EMPTY(&ps->ops));
	assert_int_equal(ps->inflight, 1);
	assert_true(pgd_withdrawn_id(ps, a->id));
	assert_false(pgd_withdrawn_id(ps, b->id));
	assert_false(pgd_withdrawn_id(ps, c->id));
	unlock_jobs();
	assert_true(wait_until(settled, ps, 10.));
	/* Its guard rolled it back: it was never committed, not even for a
	 * moment (no delete needed). */
	assert_int_equal(updates("jobs+"), inserts);
	assert_int_equal(rows_with_id("jobs", a->id), 0);
	assert_int_equal(rows_with_id("jobs", b->id), 0);
	assert_int_equal(rows_with_id("pipelines", c->id), 0);
	assert_int_equal(rows_with_id("jobs", c->jobs[0]->id), 0);
	assert_int_equal(a->refs, 1);
	assert_int_equal(c->refs, 1);
	/* And the store still works. */
	create_claimed_job(st, b);
	assert_int_equal(rows_with_id("jobs", b->id), 1);

	store_free(st);
	job_unref(a);
	job_unref(b);
	pipeline_unref(c);
}

/*
 * The transaction commits after the answer all the same (as when the
 * database's clock is behind valetd's by more than the margin; here its
 * guard is set a minute late): it is deleted as soon as the commit is
 * known, and the claims of this node would not deliver it meanwhile.
 */
static void test_deadline_late_commit(void **state)
{
	struct job *a = make_job("late");
	struct pipeline *c = make_pipeline("late-pl", 2);
	struct answer ans[2] = {{0}};
	struct store *st;
	struct pg_store *ps;
	struct pg_op *op;
	long inserts;

	need_db();
	st = deadline_store();
	ps = pg_of(st);
	inserts = updates("jobs+");
	lock_jobs();
	assert_int_equal(st->ops->create_job(st, a, STORE_CLAIM, record, &ans[0]), 0);
	assert_int_equal(st->ops->create_pipeline(st, c, 0, record, &ans[1]), 0);
	TAILQ_FOREACH(op, &ps->ops, link)
		op->guard_us = job_now_us() + 60 * INT64_C(1000000);
	until_in_flight(ps);
	assert_true(wait_until(two_answered, ans, 5.));
	assert_int_equal(ans[0].err, -ETIMEDOUT);
	assert_int_equal(ans[1].err, -ETIMEDOUT);
	assert_true(pgd_withdrawn_id(ps, a->id));
	assert_true(pgd_withdrawn_id(ps, c->id));
	unlock_jobs();
	assert_true(wait_until(settled, ps, 10.));
	assert_int_equal(updates("jobs+"), inserts + 3); /* committed, then deleted */
	assert_int_equal(rows_with_id("jobs", a->id), 0);
	assert_int_equal(rows_with_id("pipelines", c->id), 0);
	assert_int_equal(rows_with_id("jobs", c->jobs[1]->id), 0);
	assert_int_equal(ans[0].calls, 1);
	assert_int_equal(ans[1].calls, 1);

	store_free(st);
	job_unref(a);
	pipeline_unref(c);
}

/*
 * The connection breaks while the create is in flight: it may have
 * committed, so at its deadline it is answered -ETIMEDOUT and becomes a
 * delete. The old connection's transaction, still waiting for the lock on
 * the server, reaches its guard late and never commits.
 */
static void test_deadline_connection_lost(void **state)
{
	struct job *a = make_job("lost");
	struct answer ans = {0};
	struct store *st;
	struct pg_store *ps;
	int64_t t0;

	need_db();
	st = deadline_store();
	ps = pg_of(st);
	lock_jobs();
	t0 = job_mono_ns();
	assert_int_equal(st->ops->create_job(st, a, STORE_CLAIM, record, &ans), 0);
	until_in_flight(ps);
	assert_true(since(t0) < 0.1);
	pgconn_reset(ps->writer);
	assert_int_equal(ans.calls, 0);
	assert_int_equal(ps->inflight, 0);
	assert_true(wait_until(answered, &ans, 5.));
	assert_true(since(t0) < 1.0);
	assert_int_equal(ans.err, -ETIMEDOUT);
	assert_true(pgd_withdrawn_id(ps, a->id));
	unlock_jobs();
	assert_true(wait_until(settled, ps, 10.));
	/* The old connection's transaction ends after its guard time too. */
	usleep(300000);
	assert_int_equal(rows_with_id("jobs", a->id), 0);
	assert_int_equal(ans.calls, 1);

	store_free(st);
	job_unref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fenced_job_writes),
		cmocka_unit_test(test_fenced_pipeline_writes),
		cmocka_unit_test(test_give_back),
		cmocka_unit_test(test_give_back_stops_gathering),
		cmocka_unit_test(test_deadline_hung),
		cmocka_unit_test(test_deadline_late_commit),
		cmocka_unit_test(test_deadline_connection_lost),
	};
	const char *filter = getenv("VALET_TEST_FILTER");

	/* VALET_TEST_FILTER: only the tests whose names match (cmocka's * and ?;
	 * tests/mutants/run.sh names them so). */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
