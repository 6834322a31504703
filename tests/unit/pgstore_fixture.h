/*
 * pgstore_fixture.h - the harness of the PostgreSQL store's tests
 * (test_pg_store.c: its bookkeeping and group commit; test_pg_fence.c:
 * the writes it must not make - fenced, or past a submit deadline): jobs
 * and pipelines to save, stores that are each a node of their own on the
 * test database (white box: struct pg_store, storage/pg_internal.h),
 * wait_until(), which runs the real ev loop under a guard timer so nothing
 * hangs, a blocking admin connection that checks from outside and counts
 * row updates with a trigger, and the group's setup: a schema of the run's
 * own, FIXTURE_NAME "_test_<pid>", dropped at the end. Without
 * VALET_TEST_DATABASE_URL the tests that need a server skip. Define
 * FIXTURE_NAME, then include after the system headers, cmocka.h, skip.h,
 * ev.h, libpq-fe.h and storage/pg_internal.h and postgres.h.
 */
#ifndef VALET_TEST_PGSTORE_FIXTURE_H
#define VALET_TEST_PGSTORE_FIXTURE_H

/* Not every test file uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"

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

static void hook_peers(void *arg)
{
}

static const struct store_queue_hooks queue_hooks = {hook_deliver, hook_cancel, hook_lease,
						     hook_peers};

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

/* Rows of table (results, attempts) about the job. */
static long rows_of_job(const char *table, const struct job *job)
{
	char q[256], id[JOB_ID_STRLEN + 1];

	job_id_format(job->id, id);
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s.%s WHERE job_id = '%s'", schema, table, id);
	return atol(admin_value(q));
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

static void finish_job(struct store *st, struct job *job)
{
	start_attempt(job);
	job->status = JOB_COMPLETED;
	job->completed_at = job_now_us();
	job->has_result = true;
	st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_RESULT | JOB_F_OUTCOME);
}

static int group_setup(void **state)
{
	char q[256];

	snprintf(schema, sizeof(schema), "%s_test_%d", FIXTURE_NAME, (int)getpid());
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		return -1;
	db_url = getenv("VALET_TEST_DATABASE_URL");
	if (db_url && !db_url[0])
		db_url = NULL;
	if (!db_url) {
		fprintf(stderr, "test_%s: VALET_TEST_DATABASE_URL is not set: the tests "
				"that need PostgreSQL are skipped\n",
			FIXTURE_NAME);
		return 0;
	}
	admin = PQconnectdb(db_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "test_%s: %s", FIXTURE_NAME, PQerrorMessage(admin));
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

#endif
