/*
 * test_pg_store.c - the PostgreSQL store's bookkeeping of unsaved changes
 * (storage/pg_write.c, "group commit"): one dirty entry per job or
 * pipeline however often it changes, with the JOB_F_* masks merged; a
 * job's start waiting on the lazy list until it changes again or
 * pg_flush_lazy(); the order of first change; a change made while the
 * object's batch is in flight getting an entry of its own; the reference
 * each entry holds, and the entries a freed store drops; each start
 * waiting PG_LAZY_S from its own save, a stream of starts written in a few
 * batches. Against a real PostgreSQL: that repeated saves are written as
 * one UPDATE (a trigger counts the row updates), a start and an end before
 * PG_LAZY_S too, a start alone after PG_LAZY_S, and the database has the
 * last state; group commit (a trigger records each update's transaction):
 * changes made together, within PG_GATHER_S, or while a write is in flight
 * share one transaction, and keep gathering while creates go (a create
 * takes them along only once they waited PG_GATHER_S); retention deletes 500 rows at a time, the next
 * batch a second after a full one, else a minute later. What a batch
 * writes in the rows is test_pg_rows.c's; the writes that must not land
 * test_pg_fence.c's; the harness pgstore_fixture.h's.
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

#define FIXTURE_NAME "pgstore"
#include "pgstore_fixture.h"

static size_t list_len(const struct pg_dirty_list *list)
{
	const struct pg_dirty *d;
	size_t n = 0;

	TAILQ_FOREACH(d, list, link)
		n++;
	return n;
}

static struct pg_dirty *job_entry(struct pg_store *ps, const struct job *job)
{
	return idmap_get(ps->dirty_job_map, job->id);
}

static bool on_list(const struct pg_dirty_list *list, const struct pg_dirty *e)
{
	const struct pg_dirty *d;

	TAILQ_FOREACH(d, list, link)
		if (d == e)
			return true;
	return false;
}

static bool in_flight(void *ps)
{
	return ((struct pg_store *)ps)->inflight > 0;
}

static bool lazy_empty_and_idle(void *ps)
{
	struct pg_store *p = ps;

	return TAILQ_EMPTY(&p->lazy_jobs) && !pg_write_pending(p) && !p->inflight;
}

/* ---- without a database --------------------------------------------------- */

/*
 * The entries themselves: a store whose server is unreachable still takes
 * saves (and would write them once it is up); the loop never runs here, so
 * nothing is flushed and the lists show what waits.
 */
static void test_dirty_entries(void **state)
{
	struct store *st = new_store("postgresql:///none?host=/nonexistent/valet-test");
	struct pg_store *ps = pg_of(st);
	struct job *a = make_job("a"), *b = make_job("b"), *c = make_job("c");
	struct pipeline *pl = make_pipeline("p", 2);
	struct pg_dirty *da, *db, *dc, *dp;

	/* Many changes of one job: one entry, one reference, masks merged. */
	for (int i = 0; i < 20; i++)
		st->ops->save_job(st, a, JOB_F_META);
	st->ops->save_job(st, a, JOB_F_STATUS); /* PENDING: no wait */
	assert_int_equal(ps->ndirty, 1);
	assert_int_equal(list_len(&ps->dirty_jobs), 1);
	da = job_entry(ps, a);
	assert_non_null(da);
	assert_ptr_equal(da->obj, a);
	assert_int_equal(da->mask, JOB_F_META | JOB_F_STATUS);
	assert_int_equal(a->refs, 2);

	/* A start waits on the lazy list, outside the dirty count. */
	b->status = JOB_IN_PROGRESS;
	st->ops->save_job(st, b, JOB_F_STATUS);
	db = job_entry(ps, b);
	assert_non_null(db);
	assert_true(on_list(&ps->lazy_jobs, db));
	assert_int_equal(list_len(&ps->lazy_jobs), 1);
	assert_true(db->mask & JOB_F_STATUS);
	assert_int_equal(ps->ndirty, 1);
	assert_int_equal(b->refs, 2);
	/* It changes again: the same entry moves to the dirty list, at its
	 * end (after a, changed first). */
	b->status = JOB_COMPLETED;
	st->ops->save_job(st, b, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
	assert_ptr_equal(job_entry(ps, b), db);
	assert_true(TAILQ_EMPTY(&ps->lazy_jobs));
	assert_int_equal(db->mask, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
	assert_int_equal(ps->ndirty, 2);
	assert_ptr_equal(TAILQ_FIRST(&ps->dirty_jobs), da);
	assert_ptr_equal(TAILQ_NEXT(da, link), db);
	assert_int_equal(b->refs, 2);

	/* A SCHEDULED mark waits too; pg_flush_lazy() sends it along. */
	c->status = JOB_SCHEDULED;
	st->ops->save_job(st, c, JOB_F_STATUS);
	dc = job_entry(ps, c);
	assert_true(on_list(&ps->lazy_jobs, dc));
	pg_flush_lazy(ps);
	assert_true(TAILQ_EMPTY(&ps->lazy_jobs));
	assert_ptr_equal(TAILQ_LAST(&ps->dirty_jobs, pg_dirty_list), dc);
	assert_int_equal(dc->mask, JOB_F_STATUS);
	assert_int_equal(ps->ndirty, 3);

	/* Pipelines: one entry too; a save without fields means the status. */
	for (int i = 0; i < 5; i++)
		st->ops->save_pipeline(st, pl, 0);
	st->ops->save_pipeline(st, pl, JOB_F_META);
	assert_int_equal(list_len(&ps->dirty_pls), 1);
	dp = idmap_get(ps->dirty_pl_map, pl->id);
	assert_non_null(dp);
	assert_ptr_equal(dp->obj, pl);
	assert_int_equal(dp->mask, JOB_F_STATUS | JOB_F_META);
	assert_int_equal(pl->refs, 2);
	assert_int_equal(ps->ndirty, 4);
	/* Its jobs are not dirty for it. */
	assert_null(job_entry(ps, pl->jobs[0]));

	/* The objects outlive everyone else's references while dirty. */
	job_unref(job_ref(a));
	assert_int_equal(a->refs, 2);

	/* A freed store drops what it did not write, with the references. */
	store_free(st);
	assert_int_equal(a->refs, 1);
	assert_int_equal(b->refs, 1);
	assert_int_equal(c->refs, 1);
	assert_int_equal(pl->refs, 1);
	job_unref(a);
	job_unref(b);
	job_unref(c);
	pipeline_unref(pl);
}

/* ---- against PostgreSQL --------------------------------------------------- */

/* Repeated saves of a job, and of a pipeline, are one UPDATE each. */
static void test_saves_coalesce(void **state)
{
	struct store *st;
	struct pg_store *ps;
	struct job *job = make_job("n0");
	struct pipeline *pl = make_pipeline("p0", 2);
	struct answer a = {0};
	long before_jobs, before_pls;
	size_t ndirty;
	char name[32];

	need_db();
	st = db_store();
	ps = pg_of(st);
	create_claimed_job(st, job);
	assert_int_equal(st->ops->create_pipeline(st, pl, STORE_CLAIM, record, &a), 0);
	assert_true(wait_until(answered, &a, 10.));
	assert_int_equal(a.err, 0);

	for (int i = 1; i <= 50; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		job_set_str(&job->name, name);
		st->ops->save_job(st, job, JOB_F_META);
	}
	for (int i = 1; i <= 10; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		job_set_str(&pl->name, name);
		st->ops->save_pipeline(st, pl, JOB_F_META);
	}
	ndirty = ps->ndirty; /* checked after what the database saw */
	before_jobs = updates("jobs");
	before_pls = updates("pipelines");
	sync_wait(st);
	assert_int_equal(updates("jobs"), before_jobs + 1);
	assert_int_equal(updates("pipelines"), before_pls + 1);
	assert_int_equal(ndirty, 2);
	assert_string_equal(job_column(job, "name"), "n50");
	assert_null(job_entry(ps, job));
	assert_int_equal(job->refs, 1);
	assert_int_equal(pl->refs, 1);

	/* Started and finished before PG_LAZY_S: one write, the final one. */
	job->status = JOB_IN_PROGRESS;
	job->attempt = 1;
	job->started_at = job_now_us();
	st->ops->save_job(st, job, JOB_F_STATUS);
	assert_int_equal(list_len(&ps->lazy_jobs), 1);
	job->status = JOB_COMPLETED;
	job->completed_at = job_now_us();
	job->has_result = true;
	job_set_str(&job->result_json, "42");
	job->outcome.pid = 1234;
	job->outcome.exit_code = 0;
	st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
	sync_wait(st);
	assert_int_equal(updates("jobs"), before_jobs + 2);
	assert_string_equal(job_column(job, "status"), "COMPLETED");

	store_free(st);
	assert_int_equal(job->refs, 1);
	job_unref(job);
	pipeline_unref(pl);
}

/* A start alone is written once PG_LAZY_S has passed (0.1 s: README,
 * "Durable submit"); a change made while its batch is in flight is written
 * again by the next one. */
static void test_lazy_and_in_flight(void **state)
{
	struct store *st;
	struct pg_store *ps;
	struct job *job = make_job("x0");
	int64_t t0;
	double waited;
	long before;

	need_db();
	st = db_store();
	ps = pg_of(st);
	create_claimed_job(st, job);
	before = updates("jobs");

	job->status = JOB_IN_PROGRESS;
	job->attempt = 1;
	job->started_at = job_now_us();
	t0 = job_mono_ns();
	st->ops->save_job(st, job, JOB_F_STATUS);
	assert_int_equal(list_len(&ps->lazy_jobs), 1);
	assert_int_equal(ps->ndirty, 0);
	assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	/* Written within PG_LAZY_S (0.1 s) and its round trip, not sooner. */
	waited = (double)(job_mono_ns() - t0) / 1e9;
	if (waited < 0.095 || waited > 0.3)
		fail_msg("the start was written %.3f s after it was saved", waited);
	assert_int_equal(updates("jobs"), before + 1);
	assert_string_equal(job_column(job, "status"), "IN_PROGRESS");
	assert_int_equal(job->refs, 1);

	job_set_str(&job->name, "x1");
	st->ops->save_job(st, job, JOB_F_META);
	assert_true(wait_until(in_flight, ps, 10.));
	assert_null(job_entry(ps, job)); /* its entry went with the batch */
	job_set_str(&job->name, "x2");
	st->ops->save_job(st, job, JOB_F_META);
	assert_non_null(job_entry(ps, job));
	assert_int_equal(job->refs, 3); /* ours, the batch's, the new entry's */
	sync_wait(st);
	assert_int_equal(updates("jobs"), before + 3);
	assert_string_equal(job_column(job, "name"), "x2");
	assert_int_equal(job->refs, 1);

	store_free(st);
	job_unref(job);
}

/* ---- group commit and retention (README: "Durable submit", "Retention") ------ */

/* Records the transaction of every update of a job row in txs. */
static void track_txids(void)
{
	char q[1024];

	snprintf(q, sizeof(q),
		 "CREATE TABLE IF NOT EXISTS %s.txs (id uuid NOT NULL, txid bigint NOT NULL); "
		 "CREATE OR REPLACE FUNCTION %s.track_tx() RETURNS trigger LANGUAGE plpgsql AS $$ "
		 "BEGIN INSERT INTO %s.txs VALUES (NEW.id, txid_current()); RETURN NULL; END $$; "
		 "DROP TRIGGER IF EXISTS track_tx ON %s.jobs; "
		 "CREATE TRIGGER track_tx AFTER UPDATE ON %s.jobs "
		 "FOR EACH ROW EXECUTE FUNCTION %s.track_tx()",
		 schema, schema, schema, schema, schema, schema);
	admin_exec(q);
}

/* How many transactions wrote the n jobs (each once, since track_txids). */
static long txids_of(struct job **jobs, size_t n)
{
	char q[1024], id[JOB_ID_STRLEN + 1];
	size_t len;

	len = (size_t)snprintf(q, sizeof(q),
			       "SELECT count(DISTINCT txid) || ' ' || count(*) FROM %s.txs WHERE id IN (",
			       schema);
	for (size_t i = 0; i < n; i++) {
		job_id_format(jobs[i]->id, id);
		len += (size_t)snprintf(q + len, sizeof(q) - len, "%s'%s'", i ? ", " : "", id);
	}
	snprintf(q + len, sizeof(q) - len, ")");
	long txids = 0, rows = 0;
	sscanf(admin_value(q), "%ld %ld", &txids, &rows);
	assert_int_equal(rows, (long)n);
	return txids;
}

static bool never(void *arg)
{
	return false;
}

/* Run the loop for that long. */
static void run_for(double seconds)
{
	wait_until(never, NULL, seconds);
}

struct lazy_watch {
	struct pg_store *ps;
	struct job *job;
};

/* The job's start has left the lazy list (it goes with the next batch). */
static bool start_sent(void *arg)
{
	struct lazy_watch *w = arg;
	struct pg_dirty *d = job_entry(w->ps, w->job);

	return !d || !on_list(&w->ps->lazy_jobs, d);
}

/*
 * Each start waits PG_LAZY_S from its own save, not from the oldest one's:
 * a start saved 60 ms after another does not go out with it (it would be
 * written 40 ms old, for a job that would likely have ended by its time).
 * A slow machine can only delay a start further, so the check cannot fail
 * on a loaded one.
 */
static void test_lazy_each_its_own_time(void **state)
{
	struct store *st;
	struct pg_store *ps;
	struct job *a = make_job("lazy-a"), *b = make_job("lazy-b");
	struct lazy_watch wa, wb;
	int64_t ta, tb;
	double age_a, age_b;

	need_db();
	st = db_store();
	ps = pg_of(st);
	create_claimed_job(st, a);
	create_claimed_job(st, b);
	wa = (struct lazy_watch){ps, a};
	wb = (struct lazy_watch){ps, b};

	start_attempt(a);
	ta = job_mono_ns();
	st->ops->save_job(st, a, JOB_F_STATUS);
	run_for(0.06);
	start_attempt(b);
	tb = job_mono_ns();
	st->ops->save_job(st, b, JOB_F_STATUS);
	assert_int_equal(list_len(&ps->lazy_jobs), 2);
	assert_true(wait_until(start_sent, &wa, 10.));
	age_a = (double)(job_mono_ns() - ta) / 1e9;
	assert_true(wait_until(start_sent, &wb, 10.));
	age_b = (double)(job_mono_ns() - tb) / 1e9;
	if (age_a < 0.098 || age_b < 0.098)
		fail_msg("starts sent %.3f s and %.3f s after their saves (PG_LAZY_S: 0.1 s)",
			 age_a, age_b);
	assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	assert_column(a, "status", "IN_PROGRESS");
	assert_column(b, "status", "IN_PROGRESS");

	store_free(st);
	job_unref(a);
	job_unref(b);
}

/*
 * A stream of starts (four, 6 ms apart, as long jobs start under load) is written in a few batches: the lazy timer fires at most every
 * PG_LAZY_TICK_S (20 ms) and takes every start that is 0.1 s old, so two
 * transactions for starts made within 20 ms (one more per 20 ms a loaded
 * machine stretched them to), not one per start.
 */
static void test_lazy_starts_batched(void **state)
{
	struct job *jobs[4];
	struct store *st;
	struct pg_store *ps;
	int64_t t0;
	double span;
	long txs, bound;

	need_db();
	st = db_store();
	ps = pg_of(st);
	track_txids();
	for (size_t i = 0; i < 4; i++) {
		jobs[i] = make_job("tick");
		create_claimed_job(st, jobs[i]);
	}
	t0 = job_mono_ns();
	for (size_t i = 0; i < 4; i++) {
		if (i)
			run_for(0.006);
		start_attempt(jobs[i]);
		st->ops->save_job(st, jobs[i], JOB_F_STATUS);
	}
	span = since(t0);
	assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	txs = txids_of(jobs, 4);
	bound = 2 + (long)(span / 0.02);
	if (txs > bound)
		fail_msg("4 starts made within %.1f ms written in %ld transactions (at most %ld)",
			 span * 1e3, txs, bound);
	for (size_t i = 0; i < 4; i++) {
		assert_column(jobs[i], "status", "IN_PROGRESS");
		job_unref(jobs[i]);
	}
	store_free(st);
}

/*
 * Group commit: changes made together are one transaction; a change waits
 * PG_GATHER_S (20 ms) for company before it is sent; and changes made while
 * a write is in flight wait for it, and then go together.
 */
static void test_group_commit(void **state)
{
	struct job *jobs[9];
	struct store *st;
	struct pg_store *ps;
	int64_t t0;
	bool gathering;

	need_db();
	st = db_store();
	ps = pg_of(st);
	track_txids();
	for (size_t i = 0; i < 9; i++) {
		jobs[i] = make_job("g");
		create_claimed_job(st, jobs[i]);
	}

	/* Four jobs end at once: one transaction. */
	for (size_t i = 0; i < 4; i++)
		finish_job(st, jobs[i]);
	assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	assert_int_equal(txids_of(jobs, 4), 1);

	/* One ends; the loop goes round once (nothing is sent: it gathers);
	 * another ends less than 15 ms after the first: both in one. The
	 * loop's time first: the queries above did not move it, and a gather
	 * timer armed from a stale time would fire at once. */
	ev_now_update(loop);
	t0 = job_mono_ns();
	finish_job(st, jobs[4]);
	ev_run(loop, EVRUN_NOWAIT);
	gathering = ps->inflight == 0 && ev_is_active(&ps->gather_w);
	finish_job(st, jobs[5]);
	if (since(t0) < 0.015) {
		assert_true(gathering);
		assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
		assert_int_equal(txids_of(jobs + 4, 2), 1);
	} else {
		print_message("the loop took %.1f ms: gathering not checked\n", since(t0) * 1e3);
		assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	}

	/* A write hangs (the jobs table is locked); two changes made while it
	 * is in flight, more than PG_GATHER_S apart, wait for it and then go
	 * in one transaction. */
	lock_jobs();
	finish_job(st, jobs[6]);
	until_in_flight(ps);
	finish_job(st, jobs[7]);
	run_for(0.03);
	finish_job(st, jobs[8]);
	run_for(0.03);
	assert_int_equal(ps->inflight, 1);
	unlock_jobs();
	assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	assert_int_equal(txids_of(jobs + 6, 1), 1);
	assert_int_equal(txids_of(jobs + 7, 2), 1);
	assert_int_equal(txids_of(jobs + 6, 3), 2);

	store_free(st);
	for (size_t i = 0; i < 9; i++)
		job_unref(jobs[i]);
}

/*
 * Changes keep gathering while creates go (a client waits for a create,
 * not for a job's final state): a job ends, a create commits at once
 * without it, another job ends, and both final states share one
 * transaction, PG_GATHER_S after the first ended. A change that has waited
 * PG_GATHER_S goes with the next create.
 */
static void test_gather_beside_creates(void **state)
{
	struct job *jobs[3], *made[2];
	struct store *st;
	struct pg_store *ps;
	bool early;
	int64_t t0;

	need_db();
	st = db_store();
	ps = pg_of(st);
	track_txids();
	for (size_t i = 0; i < 3; i++) {
		jobs[i] = make_job("g");
		create_claimed_job(st, jobs[i]);
	}
	for (size_t i = 0; i < 2; i++)
		made[i] = make_job("made");
	assert_true(wait_until(lazy_empty_and_idle, ps, 10.));

	ev_now_update(loop);
	t0 = job_mono_ns();
	finish_job(st, jobs[0]);
	create_claimed_job(st, made[0]);
	early = strcmp(job_column(jobs[0], "status"), "COMPLETED") == 0;
	finish_job(st, jobs[1]);
	if (since(t0) < 0.015) {
		if (early)
			fail_msg("a final state made %.1f ms before a create went with it",
				 since(t0) * 1e3);
		assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
		assert_int_equal(txids_of(jobs, 2), 1);
	} else {
		print_message("the create took %.1f ms: gathering not checked\n", since(t0) * 1e3);
		assert_true(wait_until(lazy_empty_and_idle, ps, 10.));
	}

	/* The loop does not run while the change ages: only the create's
	 * transaction can write it. */
	ev_now_update(loop);
	finish_job(st, jobs[2]);
	usleep(25000);
	ev_now_update(loop);
	create_claimed_job(st, made[1]);
	assert_column(jobs[2], "status", "COMPLETED");

	store_free(st);
	for (size_t i = 0; i < 3; i++)
		job_unref(jobs[i]);
	for (size_t i = 0; i < 2; i++)
		job_unref(made[i]);
}

static long count_rows(const char *table, const char *where)
{
	char q[256];

	snprintf(q, sizeof(q), "SELECT count(*) FROM %s.%s WHERE %s", schema, table, where);
	return atol(admin_value(q));
}

static bool prune_soon(void *ps)
{
	struct pg_store *p = ps;

	return ev_is_active(&p->prune_w) && ev_timer_remaining(loop, &p->prune_w) <= 1.;
}

struct prune_watch {
	const char *table;
	long below;
};

static bool fewer_old_rows(void *arg)
{
	struct prune_watch *w = arg;

	return count_rows(w->table, "name = 'old'") < w->below;
}

/*
 * Retention ([storage] retention_days): finished jobs and pipelines older
 * than that are deleted 500 at a time (PG_PRUNE_BATCH); after a full batch
 * the next follows a second later, and once a batch is short, the next
 * round is a minute later (PG_PRUNE_S). The first round is 10 s after the
 * node registered: the test does not wait, it fires the timer.
 */
static void test_retention_batches(void **state)
{
	struct prune_watch jobs_below = {"jobs", 0}, pls_below = {"pipelines", 0};
	struct store *st;
	struct pg_store *ps;
	char q[1024];

	need_db();
	retention_days = 1;
	st = db_store();
	retention_days = 0;
	ps = pg_of(st);
	assert_true(ev_is_active(&ps->prune_w));
	assert_true(ev_timer_remaining(loop, &ps->prune_w) > 9.);
	assert_true(ps->prune_w.repeat == 60.);
	snprintf(q, sizeof(q),
		 "INSERT INTO %s.jobs (id, name, task_name, timeout_ms, status, created_at, "
		 "completed_at) SELECT gen_random_uuid(), 'old', 'dummytask', 1000, 'COMPLETED', "
		 "now() - interval '3 days', now() - interval '2 days' FROM generate_series(1, 1200); "
		 "INSERT INTO %s.pipelines (id, name, status, created_at, completed_at) "
		 "SELECT gen_random_uuid(), 'old', 'FAILED', now() - interval '3 days', "
		 "now() - interval '2 days' FROM generate_series(1, 600); "
		 "INSERT INTO %s.jobs (id, name, task_name, timeout_ms, status, created_at, "
		 "completed_at) VALUES (gen_random_uuid(), 'recent', 'dummytask', 1000, 'COMPLETED', "
		 "now() - interval '23 hours', now() - interval '23 hours')",
		 schema, schema, schema);
	admin_exec(q);

	ev_timer_stop(loop, &ps->prune_w);
	ev_feed_event(loop, &ps->prune_w, EV_TIMER);
	jobs_below.below = 1200;
	pls_below.below = 600;
	assert_true(wait_until(fewer_old_rows, &jobs_below, 10.));
	assert_true(wait_until(fewer_old_rows, &pls_below, 10.));
	assert_int_equal(count_rows("jobs", "name = 'old'"), 700);
	assert_int_equal(count_rows("pipelines", "name = 'old'"), 100);
	/* Full batches: the next round in a second. */
	assert_true(wait_until(prune_soon, ps, 2.));
	jobs_below.below = 700;
	assert_true(wait_until(fewer_old_rows, &jobs_below, 3.));
	assert_int_equal(count_rows("jobs", "name = 'old'"), 200);
	pls_below.below = 1;
	assert_true(wait_until(fewer_old_rows, &pls_below, 3.));
	jobs_below.below = 200;
	assert_true(wait_until(fewer_old_rows, &jobs_below, 3.));
	assert_int_equal(count_rows("jobs", "name = 'old'"), 0);
	/* That batch was short: the next round is a minute later. */
	run_for(0.1);
	assert_true(ev_timer_remaining(loop, &ps->prune_w) > 59.);
	assert_int_equal(count_rows("jobs", "name = 'recent'"), 1);

	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_entries),
		cmocka_unit_test(test_saves_coalesce),
		cmocka_unit_test(test_lazy_and_in_flight),
		cmocka_unit_test(test_lazy_each_its_own_time),
		cmocka_unit_test(test_lazy_starts_batched),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_gather_beside_creates),
		cmocka_unit_test(test_retention_batches),
	};
	const char *filter = getenv("VALET_TEST_FILTER");

	/* VALET_TEST_FILTER: only the tests whose names match (cmocka's * and ?;
	 * tests/mutants/run.sh names them so). */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
