/*
 * test_pg_store.c - the PostgreSQL store's bookkeeping of unsaved changes
 * (storage/postgres.c, "group commit"): one dirty entry per job or pipeline
 * however often it changes, with the JOB_F_* masks merged; a job's start
 * waiting on the lazy list until it changes again or pg_flush_lazy(); the
 * order of first change; a change made while the object's batch is in
 * flight getting an entry of its own; the reference each entry holds, and
 * the entries a freed store drops; each start waiting PG_LAZY_S from its own
 * save, a stream of starts written in a few batches. Against a real PostgreSQL: that repeated
 * saves are written as one UPDATE (a trigger counts the row updates), a
 * start and an end before PG_LAZY_S too, a start alone after PG_LAZY_S, and
 * the database has the last state; group commit (a trigger records each
 * update's transaction): changes made together, within PG_GATHER_S, or
 * while a write is in flight share one transaction; retention deletes 500
 * rows at a time, the next batch a second after a full one, else a minute
 * later. Fencing (issue 14): each write of a run - status, finish, retry,
 * outcome, pipeline status - lands while this node holds the work and
 * changes nothing once another node does. Submit deadlines
 * (storage/pg_deadline.c): against a database that does not answer (its
 * jobs table locked), creates are answered -ETIMEDOUT in time, sent or not,
 * and none of them is ever stored - not when the transaction in flight
 * reaches its guard late, not when it commits late all the same, not when
 * the connection breaks under it. A create is a plain INSERT but after an
 * attempt whose fate is unknown; a final status replaces a result row
 * already there.
 *
 * White box: it reads struct pg_store (storage/pg_internal.h). The tests
 * that need a server take it from VALET_TEST_DATABASE_URL (tests/pg_tmp.sh)
 * and are skipped without it; they work in their own schema,
 * pgstore_test_<pid>, dropped at the end. Every wait runs the real ev loop
 * under a guard timer.
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

static const char *db_url;
static char schema[64];
static int64_t submit_timeout_ms; /* of the next store; 0: the default */
static int retention_days;	  /* of the next store */
static struct ev_loop *loop;
static PGconn *admin;

/* ---- helpers -------------------------------------------------------------- */

static struct job *make_job(const char *name)
{
	struct job *job = job_new();

	assert_non_null(job);
	job_id_generate(job->id);
	job_set_str(&job->name, name);
	job->task_name = job_intern("dummytask");
	job->timeout_ms = 1000;
	job->status = JOB_PENDING;
	job->created_at = job_now_us();
	return job;
}

static struct pipeline *make_pipeline(const char *name, size_t n)
{
	struct pipeline *pl = pipeline_new(n);

	assert_non_null(pl);
	job_id_generate(pl->id);
	job_set_str(&pl->name, name);
	pl->status = JOB_PENDING;
	pl->created_at = job_now_us();
	for (size_t i = 0; i < n; i++) {
		struct job *job = make_job("pj");

		job->in_pipeline = true;
		memcpy(job->pipeline_id, pl->id, JOB_ID_LEN);
		job->pipeline_index = (int)i;
		pl->jobs[i] = job;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		pl->jobs[i]->has_next = true;
		memcpy(pl->jobs[i]->next_job_id, pl->jobs[i + 1]->id, JOB_ID_LEN);
	}
	return pl;
}

/* Each store is a node of its own, so that one a failed test left behind
 * does not hold the node id of the next. */
static struct store *new_store(const char *url)
{
	static int stores;
	char node[32];
	const struct pg_options o = {.url = url,
				     .schema = schema,
				     .node_id = node,
				     .lease_ms = 30000,
				     .retry_backoff_ms = 1000,
				     .retry_backoff_max_ms = 60000,
				     .submit_timeout_ms = submit_timeout_ms,
				     .retention_days = retention_days};
	char err[256] = "";
	struct store *st;

	snprintf(node, sizeof(node), "unit-test-%d", ++stores);
	st = store_postgres_new(loop, &o, err, sizeof(err));

	if (!st)
		fail_msg("store_postgres_new: %s", err);
	return st;
}

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

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
}

/* Run the loop until done(arg) or timeout seconds pass. */
static bool wait_until(bool (*done)(void *arg), void *arg, double timeout)
{
	bool expired = false;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, timeout, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (!done(arg) && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return done(arg);
}

static bool is_healthy(void *st)
{
	return ((struct store *)st)->ops->healthy(st);
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

struct answer {
	int calls;
	int err;
	bool claimed;
};

static void record(void *arg, const struct store_reply *reply)
{
	struct answer *a = arg;

	a->calls++;
	a->err = reply->err;
	a->claimed = reply->claimed;
}

static bool answered(void *a)
{
	return ((struct answer *)a)->calls > 0;
}

/* Every change saved so far is committed. */
static void sync_wait(struct store *st)
{
	struct answer a = {0};

	assert_int_equal(st->ops->sync(st, record, &a), 0);
	assert_true(wait_until(answered, &a, 10.));
	assert_int_equal(a.err, 0);
}

static void need_db(void)
{
	if (!db_url) {
		SKIP_NEEDS("VALET_TEST_DATABASE_URL is not set (needs PostgreSQL; "
			   "run tests/pg_tmp.sh or `make test`)");
	}
}

static void admin_exec(const char *q)
{
	PGresult *res = PQexec(admin, q);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(admin));
	PQclear(res);
}

/* The one value query q returns (a static buffer), NULL for SQL NULL. */
static const char *admin_value(const char *q)
{
	static char out[256];
	PGresult *res = PQexec(admin, q);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s (%d rows)", q, PQerrorMessage(admin), PQntuples(res));
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return NULL;
	}
	snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

/* Row updates of table (jobs or pipelines) since the trigger was made. */
static long updates(const char *table)
{
	char q[256];
	const char *v;

	snprintf(q, sizeof(q), "SELECT coalesce(sum(n), 0) FROM %s.upd WHERE tbl = '%s'", schema,
		 table);
	v = admin_value(q);
	return v ? atol(v) : 0;
}

static const char *job_column(const struct job *job, const char *column)
{
	char q[256], id[JOB_ID_STRLEN + 1];

	job_id_format(job->id, id);
	snprintf(q, sizeof(q), "SELECT %s::text FROM %s.jobs WHERE id = '%s'", column, schema, id);
	return admin_value(q);
}

/* Counts every row update of the store's jobs and pipelines in upd (made
 * once; the counts go on across tests). */
static void count_updates(void)
{
	char q[2048];

	snprintf(q, sizeof(q),
		 "CREATE TABLE IF NOT EXISTS %s.upd (tbl text PRIMARY KEY, n int NOT NULL); "
		 "CREATE OR REPLACE FUNCTION %s.count_upd() RETURNS trigger LANGUAGE plpgsql AS $$ "
		 "BEGIN INSERT INTO %s.upd VALUES (TG_TABLE_NAME, 1) "
		 "ON CONFLICT (tbl) DO UPDATE SET n = %s.upd.n + 1; RETURN NULL; END $$; "
		 "DROP TRIGGER IF EXISTS count_upd ON %s.jobs; "
		 "CREATE TRIGGER count_upd AFTER UPDATE ON %s.jobs "
		 "FOR EACH ROW EXECUTE FUNCTION %s.count_upd(); "
		 "DROP TRIGGER IF EXISTS count_upd ON %s.pipelines; "
		 "CREATE TRIGGER count_upd AFTER UPDATE ON %s.pipelines "
		 "FOR EACH ROW EXECUTE FUNCTION %s.count_upd()",
		 schema, schema, schema, schema, schema, schema, schema, schema, schema, schema);
	admin_exec(q);
	/* Committed inserts too, as tbl "jobs+": a transaction that rolls back
	 * takes its count with it. */
	snprintf(q, sizeof(q),
		 "CREATE OR REPLACE FUNCTION %s.count_ins() RETURNS trigger LANGUAGE plpgsql AS $$ "
		 "BEGIN INSERT INTO %s.upd VALUES (TG_TABLE_NAME || '+', 1) "
		 "ON CONFLICT (tbl) DO UPDATE SET n = %s.upd.n + 1; RETURN NULL; END $$; "
		 "DROP TRIGGER IF EXISTS count_ins ON %s.jobs; "
		 "CREATE TRIGGER count_ins AFTER INSERT ON %s.jobs "
		 "FOR EACH ROW EXECUTE FUNCTION %s.count_ins()",
		 schema, schema, schema, schema, schema, schema);
	admin_exec(q);
}

static void hook_deliver(void *arg, struct job *job, struct pipeline *pl, size_t from)
{
	fail_msg("nothing was asked for, nothing should be delivered");
}

static void hook_cancel(void *arg, const uint8_t id[JOB_ID_LEN], bool pipeline)
{
}

static void hook_lease(void *arg, bool lost)
{
}

static const struct store_queue_hooks queue_hooks = {hook_deliver, hook_cancel, hook_lease};

/* A store on the test database, registered (its schema made), with hooks
 * (so that creates can claim: status writes are fenced by the claim) but
 * no want (it claims nothing); row updates are counted from here on. */
static struct store *db_store(void)
{
	struct store *st = new_store(db_url);

	st->ops->attach(st, &queue_hooks, NULL);
	assert_true(wait_until(is_healthy, st, 20.));
	count_updates();
	return st;
}

static void create_claimed_job(struct store *st, struct job *job)
{
	struct answer a = {0};

	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, record, &a), 0);
	assert_true(wait_until(answered, &a, 10.));
	assert_int_equal(a.err, 0);
	assert_true(a.claimed);
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

/* Rows of table (results, attempts) about the job. */
static long rows_of_job(const char *table, const struct job *job)
{
	char q[256], id[JOB_ID_STRLEN + 1];

	job_id_format(job->id, id);
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s.%s WHERE job_id = '%s'", schema, table, id);
	return atol(admin_value(q));
}

/* Another node holds the job now (it was rescued from this one and claimed
 * there). */
static void steal_job(const struct job *job)
{
	admin_update("jobs", "id", job->id, "claimed_by = 'thief', claimed_at = now()");
}

/* The job's column is want (NULL: SQL NULL). A macro: a failure names the
 * line of the check. */
#define assert_column(job, column, want)                                                           \
	do {                                                                                       \
		const char *v_ = job_column(job, column), *w_ = (want);                            \
		if (v_ && w_ ? strcmp(v_, w_) != 0 : v_ != w_)                                     \
			fail_msg("jobs.%s is %s, expected %s", column, v_ ? v_ : "NULL",           \
				 w_ ? w_ : "NULL");                                                \
	} while (0)

static void start_attempt(struct job *job)
{
	job->status = JOB_IN_PROGRESS;
	job->attempt++;
	job->started_at = job_now_us();
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

/* ---- submit deadlines ------------------------------------------------------- */

/* The admin connection locks the store's jobs table, in a transaction it
 * keeps open until unlock_jobs(): every write of a job row waits. */
static void lock_jobs(void)
{
	char q[128];

	admin_exec("BEGIN");
	snprintf(q, sizeof(q), "LOCK TABLE %s.jobs IN ACCESS EXCLUSIVE MODE", schema);
	admin_exec(q);
}

static void unlock_jobs(void)
{
	admin_exec("COMMIT");
}

static long rows_with_id(const char *table, const uint8_t id[JOB_ID_LEN])
{
	char q[256], s[JOB_ID_STRLEN + 1];

	job_id_format(id, s);
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s.%s WHERE id = '%s'", schema, table, s);
	return atol(admin_value(q));
}

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

/* Until the first write batch is in flight, without waiting for an event
 * (a batch that hangs gives none before the deadline timer). */
static void until_in_flight(struct pg_store *ps)
{
	for (int i = 0; i < 2000 && !ps->inflight; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		if (!ps->inflight)
			usleep(1000);
	}
	assert_int_equal(ps->inflight, 1);
}

static double since(int64_t t0_ns)
{
	return (double)(job_mono_ns() - t0_ns) / 1e9;
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

static void finish_job(struct store *st, struct job *job)
{
	start_attempt(job);
	job->status = JOB_COMPLETED;
	job->completed_at = job_now_us();
	job->has_result = true;
	st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
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
 * A create's first attempt is a plain INSERT; only an attempt that follows
 * one whose fate is unknown (its connection broke: maybe_stored) leaves a
 * row it finds as it is. White box: the test marks the op as such.
 */
static void test_insert_again(void **state)
{
	struct store *st;
	struct pg_store *ps;
	struct job *job = make_job("again");
	struct answer a = {0}, b = {0};

	need_db();
	st = db_store();
	ps = pg_of(st);
	create_claimed_job(st, job);
	/* The same id again, first attempt: the database refuses it. */
	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, record, &a), 0);
	assert_true(wait_until(answered, &a, 10.));
	assert_int_equal(a.err, -EIO);
	/* Sent again after a lost answer: the row is there, that is success. */
	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, record, &b), 0);
	TAILQ_LAST(&ps->ops, pg_op_list)->maybe_stored = true;
	assert_true(wait_until(answered, &b, 10.));
	assert_int_equal(b.err, 0);
	assert_int_equal(rows_with_id("jobs", job->id), 1);

	store_free(st);
	job_unref(job);
}

/* Everything a create writes about a job but its id, seq and the time of
 * its claim, as text (a static buffer). */
static const char *created_row(const struct job *job)
{
	static char out[2048];
	char q[1024], id[JOB_ID_STRLEN + 1];

	job_id_format(job->id, id);
	snprintf(q, sizeof(q),
		 "SELECT row(name, description, task_name, task_params, timeout_ms, status, "
		 "run_at, created_at, pipeline_id, pipeline_index, next_job_id, "
		 "use_previous_results, due_at, claimed_by, claimed_at IS NOT NULL, attempt, "
		 "max_attempts, limits, owner)::text FROM %s.jobs WHERE id = '%s'",
		 schema, id);
	snprintf(out, sizeof(out), "%s", admin_value(q));
	return out;
}

/* Create kind k of the kinds test_insert_many writes. */
static struct job *make_create(int k, int64_t t0)
{
	struct job *job = make_job(k == 0 ? "plain" : "a \"quoted\" \\ back,slash {a,b} NULL ''");

	if (k == 1) {
		job_set_str(&job->description, "NULL");
		job_set_str(&job->params_json, "{\"q\": \"a \\\"b\\\" {c,d}\", \"u\": \"\\u00e9\"}");
		job->timeout_ms = 123456;
		job->max_attempts = 3;
		job->owner = job_owner_id("alice");
		job->limits = (struct job_limits){.memory_bytes = 1 << 20, .cpu_seconds = 2,
						  .output_bytes = 4096, .set = true};
	}
	if (k == 2) {
		job->status = JOB_SCHEDULED;
		job->run_at = t0 + 3600 * 1000000LL;
		job_set_str(&job->params_json, "[1, null, \"x\"]");
	}
	job->created_at = t0 + k;
	return job;
}

/* The admin connection got a notification on channel (LISTEN), within a
 * few seconds; the others it got are dropped. */
static bool notified(const char *channel)
{
	bool got = false;

	for (int i = 0; i < 50 && !got; i++) {
		PGnotify *n;

		PQconsumeInput(admin);
		while ((n = PQnotifies(admin))) {
			got |= !strcmp(n->relname, channel);
			PQfreemem(n);
		}
		if (!got)
			usleep(100 * 1000);
	}
	return got;
}

/* Every answer of a, up to the one whose err is 1 (the end), came. */
static bool all_answered(void *arg)
{
	struct answer *a = arg;

	for (; a->err != 1; a++)
		if (!a->calls)
			return false;
	return true;
}

/*
 * Job creates that follow each other in a batch are one INSERT
 * (PGS_INSERT_JOB_MANY) that writes what each written alone
 * (PGS_INSERT_JOB) does - three kinds: plain; quotes, backslashes and the
 * array syntax's characters in text and params, limits, an owner, retries;
 * scheduled, unclaimed - in the order they were made (seq). A create the
 * database refuses (params with \u0000, which jsonb cannot hold) among good
 * ones fails alone: the batch goes again one create per transaction. Creates
 * sent again (maybe stored) are one INSERT ... ON CONFLICT DO NOTHING: the
 * one that is there is success, the other is stored.
 */
static void test_insert_many(void **state)
{
	enum { KINDS = 3 };
	struct job *alone[KINDS], *together[KINDS], *mixed[3], *again[2];
	struct answer a[KINDS + 1] = {0}, m[4] = {0}, g[3] = {0};
	struct store *st;
	char q[1024], want[2048];
	int64_t t0 = job_now_us();
	long stmts;

	need_db();
	st = db_store();
	snprintf(q, sizeof(q),
		 "CREATE OR REPLACE FUNCTION %s.count_ins_stmt() RETURNS trigger LANGUAGE plpgsql "
		 "AS $$ BEGIN INSERT INTO %s.upd VALUES ('jobs ins stmt', 1) ON CONFLICT (tbl) "
		 "DO UPDATE SET n = %s.upd.n + 1; RETURN NULL; END $$; "
		 "CREATE TRIGGER count_ins_stmt AFTER INSERT ON %s.jobs "
		 "FOR EACH STATEMENT EXECUTE FUNCTION %s.count_ins_stmt()",
		 schema, schema, schema, schema, schema);
	admin_exec(q);
	for (int k = 0; k < KINDS; k++) {
		alone[k] = make_create(k, t0);
		together[k] = make_create(k, t0);
		assert_int_equal(st->ops->create_job(st, alone[k], k == 2 ? 0 : STORE_CLAIM, record,
						     &a[0]),
				 0);
		assert_true(wait_until(answered, &a[0], 10.));
		assert_int_equal(a[0].err, 0);
		a[0].calls = 0;
	}
	assert_int_equal(updates("jobs ins stmt"), KINDS);
	/* Made before the loop runs: one batch; the unclaimed one is
	 * announced (the NOTIFY shares the guard's statement). */
	snprintf(q, sizeof(q), "LISTEN \"%s\"", pg_of(st)->chan_jobs);
	admin_exec(q);
	a[KINDS].err = 1;
	for (int k = 0; k < KINDS; k++)
		assert_int_equal(st->ops->create_job(st, together[k], k == 2 ? 0 : STORE_CLAIM,
						     record, &a[k]),
				 0);
	assert_true(wait_until(all_answered, a, 10.));
	assert_int_equal(updates("jobs ins stmt"), KINDS + 1);
	assert_true(notified(pg_of(st)->chan_jobs));
	for (int k = 0; k < KINDS; k++) {
		assert_int_equal(a[k].err, 0);
		snprintf(want, sizeof(want), "%s", created_row(alone[k]));
		if (strcmp(created_row(together[k]), want) != 0)
			fail_msg("kind %d: written alone %s, with the others %s", k, want,
				 created_row(together[k]));
	}
	assert_column(together[1], "owner", "alice");
	for (int k = 1; k < KINDS; k++)
		if (atol(job_column(together[k], "seq")) <= atol(job_column(together[k - 1], "seq")))
			fail_msg("create %d stored before create %d", k, k - 1);

	/* One bad create between two good ones, in one batch. */
	for (int i = 0; i < 3; i++)
		mixed[i] = make_job("mixed");
	job_set_str(&mixed[1]->params_json, "{\"nul\": \"\\u0000\"}");
	m[3].err = 1;
	for (int i = 0; i < 3; i++)
		assert_int_equal(st->ops->create_job(st, mixed[i], STORE_CLAIM, record, &m[i]), 0);
	assert_true(wait_until(all_answered, m, 20.));
	assert_int_equal(m[0].err, 0);
	assert_int_equal(m[1].err, -EIO);
	assert_int_equal(m[2].err, 0);
	assert_int_equal(rows_with_id("jobs", mixed[0]->id), 1);
	assert_int_equal(rows_with_id("jobs", mixed[1]->id), 0);
	assert_int_equal(rows_with_id("jobs", mixed[2]->id), 1);

	/* Sent again: one stored already, one not. */
	again[0] = make_job("again");
	again[1] = make_job("again");
	create_claimed_job(st, again[0]);
	stmts = updates("jobs ins stmt");
	g[2].err = 1;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(st->ops->create_job(st, again[i], STORE_CLAIM, record, &g[i]), 0);
		TAILQ_LAST(&pg_of(st)->ops, pg_op_list)->maybe_stored = true;
	}
	assert_true(wait_until(all_answered, g, 10.));
	assert_int_equal(g[0].err, 0);
	assert_int_equal(g[1].err, 0);
	assert_int_equal(rows_with_id("jobs", again[0]->id), 1);
	assert_int_equal(rows_with_id("jobs", again[1]->id), 1);
	assert_int_equal(updates("jobs ins stmt"), stmts + 1);

	store_free(st);
	for (int k = 0; k < KINDS; k++) {
		job_unref(alone[k]);
		job_unref(together[k]);
	}
	for (int i = 0; i < 3; i++)
		job_unref(mixed[i]);
	job_unref(again[0]);
	job_unref(again[1]);
}

/* A final status replaces a result that is already there (the result
 * columns of the job's row, written by the UPDATE of its final status). */
static void test_finish_replaces_result(void **state)
{
	struct store *st;
	struct job *job = make_job("result");
	char q[512], id[JOB_ID_STRLEN + 1];

	need_db();
	st = db_store();
	create_claimed_job(st, job);
	job_id_format(job->id, id);
	snprintf(q, sizeof(q),
		 "UPDATE %s.jobs SET result_metadata = '{\"old\": 1}', result_error = 'old', "
		 "result_at = now() WHERE id = '%s'",
		 schema, id);
	admin_exec(q);
	job_set_str(&job->result_json, "{\"new\": 2}");
	finish_job(st, job);
	sync_wait(st);
	assert_column(job, "status", "COMPLETED");
	snprintf(q, sizeof(q), "SELECT metadata->>'new' || coalesce(error, '-') FROM %s.results "
		 "WHERE job_id = '%s'", schema, id);
	assert_string_equal(admin_value(q), "2-");

	store_free(st);
	job_unref(job);
}

/* Everything a final state writes about a job: its row's run columns, its
 * result row and its attempts rows, as text (a static buffer). */
static const char *final_state(const struct job *job)
{
	static char out[2048];
	char q[2048], id[JOB_ID_STRLEN + 1];
	PGresult *res;

	job_id_format(job->id, id);
	snprintf(q, sizeof(q),
		 "SELECT row(j.status, j.failure_reason, j.started_at, j.completed_at, j.attempt, "
		 "j.node_id, j.pid, j.exit_code, j.signal, j.timed_out, j.oom_killed, "
		 "j.seccomp_syscall, j.cpu_ms, j.wall_ms, j.max_rss_kb, j.memory_peak_kb, "
		 "j.claimed_by, j.claimed_at, j.due_at, j.isolation, r.job_id IS NOT NULL, "
		 "r.metadata, r.error, (SELECT array_agg(row(a.attempt, a.node_id, a.status, "
		 "a.failure_reason, a.started_at, a.finished_at, a.pid, a.exit_code, a.signal, "
		 "a.timed_out, a.oom_killed, a.seccomp_syscall, a.cpu_ms, a.wall_ms, a.max_rss_kb, "
		 "a.memory_peak_kb)) FROM %s.attempts a WHERE a.job_id = j.id))::text "
		 "FROM %s.jobs j LEFT JOIN %s.results r ON r.job_id = j.id WHERE j.id = '%s'",
		 schema, schema, schema, id);
	res = PQexec(admin, q);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", q, PQerrorMessage(admin));
	snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

/* Final state number k of the kinds test_finish_many writes. */
static void set_final(struct job *job, int k, int64_t t0)
{
	static const char *const text = "a \"quoted\" \\ back,slash {a,b} NULL ''";

	job->status = k == 1 ? JOB_FAILED : k == 2 ? JOB_CANCELLED : JOB_COMPLETED;
	job->max_attempts = k == 3 ? 2 : 1;
	job->completed_at = t0 + 2000;
	job->has_result = true;
	if (k != 2) {
		job->attempt = 1;
		job->started_at = t0 + 1000;
		job->outcome.pid = 4000 + k;
		job->outcome.exit_code = k == 1 ? -1 : 0;
		job->outcome.term_signal = k == 1 ? SIGSEGV : 0;
		job->outcome.timed_out = k == 1;
		job->outcome.seccomp_blocked = k == 1;
		job->outcome.seccomp_syscall = k == 1 ? "socket" : NULL;
		job->outcome.cpu_ms = 10 + k;
		job->outcome.wall_ms = 20 + k;
		job->outcome.max_rss_kb = k == 4 ? -1 : 30 + k;
		job->outcome.memory_peak_kb = -1;
		job_set_str(&job->isolation, "{\"profile\": \"a,\\\"b\\\"\", \"ns\": null}");
	}
	if (k == 0 || k == 3 || k == 4)
		job_set_str(&job->result_json,
			    k == 4 ? "[1, {\"s\": \"}{,\\\\\"}]"
				   : "{\"q\": "
				     "\"a \\\"quoted\\\" \\\\ back\", \"u\": \"\\u00e9\\n\"}");
	if (k == 1 || k == 2) {
		job_set_str(&job->failure_reason, text);
		job_set_str(&job->result_error, text);
	}
}

/*
 * The final states of a batch's jobs are one statement
 * (PGS_JOB_FINISH_MANY), and it writes what each written alone
 * (PGS_JOB_FINISH) does: five kinds - a result with quotes, backslashes and
 * non-ASCII; a failure (signal, timeout, seccomp) with a reason full of the
 * array syntax's characters; a cancel before any start (no node, no
 * outcome); a job that may retry (its attempts row); a result replacing one
 * already there - once one per batch, once all in one batch, compared.
 */
static void test_finish_many(void **state)
{
	enum { KINDS = 5 };
	struct job *alone[KINDS], *together[KINDS];
	struct store *st;
	char q[1024], id[JOB_ID_STRLEN + 1], want[2048];
	int64_t t0 = job_now_us();

	need_db();
	st = db_store();
	for (int k = 0; k < KINDS; k++) {
		alone[k] = make_job("alone");
		together[k] = make_job("together");
		create_claimed_job(st, alone[k]);
		create_claimed_job(st, together[k]);
		set_final(alone[k], k, t0);
		set_final(together[k], k, t0);
	}
	for (int i = 0; i < 2; i++) {
		job_id_format((i ? together : alone)[4]->id, id);
		snprintf(q, sizeof(q),
			 "UPDATE %s.jobs SET result_metadata = '{\"old\": 1}', "
			 "result_error = 'old', result_at = now() WHERE id = '%s'",
			 schema, id);
		admin_exec(q);
	}
	snprintf(q, sizeof(q),
		 "CREATE OR REPLACE FUNCTION %s.count_stmt() RETURNS trigger LANGUAGE plpgsql "
		 "AS $$ BEGIN INSERT INTO %s.upd VALUES ('jobs stmt', 1) ON CONFLICT (tbl) "
		 "DO UPDATE SET n = %s.upd.n + 1; RETURN NULL; END $$; "
		 "CREATE TRIGGER count_stmt AFTER UPDATE ON %s.jobs "
		 "FOR EACH STATEMENT EXECUTE FUNCTION %s.count_stmt()",
		 schema, schema, schema, schema, schema);
	admin_exec(q);
	for (int k = 0; k < KINDS; k++) {
		st->ops->save_job(st, alone[k], JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
		sync_wait(st);
	}
	assert_int_equal(updates("jobs stmt"), KINDS);
	for (int k = 0; k < KINDS; k++)
		st->ops->save_job(st, together[k], JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
	sync_wait(st);
	assert_int_equal(updates("jobs stmt"), KINDS + 1);
	for (int k = 0; k < KINDS; k++) {
		snprintf(want, sizeof(want), "%s", final_state(alone[k]));
		if (strcmp(final_state(together[k]), want) != 0)
			fail_msg("kind %d: written alone %s, with the others %s", k, want,
				 final_state(together[k]));
		if (k != 2)
			assert_column(together[k], "node_id", pg_of(st)->node);
	}
	assert_column(together[2], "node_id", NULL);
	assert_column(together[0], "status", "COMPLETED");
	assert_int_equal(rows_of_job("attempts", together[3]), 1);
	snprintf(q, sizeof(q),
		 "SELECT metadata->>'q' || '|' || (metadata->>'u') FROM %s.results "
		 "WHERE job_id = '%s'",
		 schema, (job_id_format(together[0]->id, id), id));
	assert_string_equal(admin_value(q), "a \"quoted\" \\ back|\u00e9\n");
	snprintf(q, sizeof(q), "SELECT error FROM %s.results WHERE job_id = '%s'", schema,
		 (job_id_format(together[1]->id, id), id));
	assert_string_equal(admin_value(q), "a \"quoted\" \\ back,slash {a,b} NULL ''");

	store_free(st);
	for (int k = 0; k < KINDS; k++) {
		job_unref(alone[k]);
		job_unref(together[k]);
	}
}

/*
 * A batch of final states that PostgreSQL refuses (one result holds a
 * \u0000, which jsonb cannot) is written again one part at a time: the good
 * one with its result, the bad one without it and with a reason that says
 * so; and a sync made meanwhile is answered once both are committed.
 */
static void test_refused_result_then_sync(void **state)
{
	struct job *good = make_job("good"), *bad = make_job("bad");
	struct store *st;
	char q[512], id[JOB_ID_STRLEN + 1];

	need_db();
	st = db_store();
	create_claimed_job(st, good);
	create_claimed_job(st, bad);
	job_set_str(&good->result_json, "{\"ok\": 1}");
	job_set_str(&bad->result_json, "{\"nul\": \"\\u0000\"}");
	finish_job(st, good);
	finish_job(st, bad);
	sync_wait(st);
	assert_column(good, "status", "COMPLETED");
	assert_column(bad, "status", "COMPLETED");
	job_id_format(good->id, id);
	snprintf(q, sizeof(q), "SELECT metadata::text FROM %s.results WHERE job_id = '%s'", schema,
		 id);
	assert_string_equal(admin_value(q), "{\"ok\": 1}");
	job_id_format(bad->id, id);
	snprintf(q, sizeof(q),
		 "SELECT coalesce(metadata::text, '-') || ' ' || error FROM %s.results "
		 "WHERE job_id = '%s'",
		 schema, id);
	assert_string_equal(admin_value(q), "- the result could not be stored in PostgreSQL");

	store_free(st);
	job_unref(good);
	job_unref(bad);
}

/*
 * A stream of starts (four, 6 ms apart - farther than PG_GATHER_S - as long
 * jobs start under load) is written in a few batches: the lazy timer fires at most every
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
 * PG_GATHER_S (5 ms) for company before it is sent; and changes made while
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
	 * another ends less than 5 ms after the first: both in one. The
	 * loop's time first: the queries above did not move it, and a gather
	 * timer armed from a stale time would fire at once. */
	ev_now_update(loop);
	t0 = job_mono_ns();
	finish_job(st, jobs[4]);
	ev_run(loop, EVRUN_NOWAIT);
	gathering = ps->inflight == 0 && ev_is_active(&ps->gather_w);
	finish_job(st, jobs[5]);
	if (since(t0) < 0.004) {
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

static int group_setup(void **state)
{
	char q[256];

	snprintf(schema, sizeof(schema), "pgstore_test_%d", (int)getpid());
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		return -1;
	db_url = getenv("VALET_TEST_DATABASE_URL");
	if (db_url && !db_url[0])
		db_url = NULL;
	if (!db_url) {
		fprintf(stderr, "test_pg_store: VALET_TEST_DATABASE_URL is not set: the tests "
				"that need PostgreSQL are skipped\n");
		return 0;
	}
	admin = PQconnectdb(db_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "test_pg_store: %s", PQerrorMessage(admin));
		return -1;
	}
	PQclear(PQexec(admin, "SET client_min_messages = warning"));
	snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	admin_exec(q);
	return 0;
}

static int group_teardown(void **state)
{
	char q[128];

	if (admin) {
		snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
		PQclear(PQexec(admin, q));
		PQfinish(admin);
	}
	ev_loop_destroy(loop);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_entries),
		cmocka_unit_test(test_saves_coalesce),
		cmocka_unit_test(test_lazy_and_in_flight),
		cmocka_unit_test(test_fenced_job_writes),
		cmocka_unit_test(test_fenced_pipeline_writes),
		cmocka_unit_test(test_deadline_hung),
		cmocka_unit_test(test_deadline_late_commit),
		cmocka_unit_test(test_deadline_connection_lost),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_lazy_each_its_own_time),
		cmocka_unit_test(test_lazy_starts_batched),
		cmocka_unit_test(test_insert_again),
		cmocka_unit_test(test_insert_many),
		cmocka_unit_test(test_finish_replaces_result),
		cmocka_unit_test(test_finish_many),
		cmocka_unit_test(test_refused_result_then_sync),
		cmocka_unit_test(test_retention_batches),
	};
	const char *filter = getenv("VALET_TEST_FILTER");

	/* VALET_TEST_FILTER: only the tests whose names match (cmocka's * and ?;
	 * tests/mutants/run.sh names them so). */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
