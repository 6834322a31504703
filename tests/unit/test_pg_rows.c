/*
 * test_pg_rows.c - what the PostgreSQL store's write batches put in the
 * rows (storage/pg_write.c): the creates of one transaction are one INSERT
 * that writes, for each kind of job and pipeline, what a create alone
 * does, with the NOTIFY of new work in the same statement; a create's
 * first attempt is a plain INSERT, one after an attempt whose fate is
 * unknown leaves the row it finds; the final states of one transaction
 * are one statement that writes what each alone does, and a final status
 * replaces a result already there; a batch PostgreSQL refuses is written
 * again one part at a time, so only the bad part fails, and a sync waiting
 * meanwhile is answered once it is all committed; a batch it refuses for
 * now (disk full, read-only...) is kept whole and written once it can be;
 * meanwhile, and while the database hangs, the store says it is unhealthy,
 * and a read that hangs is answered at its deadline; the writer's keyed
 * statements find their rows by their key whatever the table and its
 * statistics hold. Against a real
 * PostgreSQL (VALET_TEST_DATABASE_URL; skipped without it), in a schema of
 * the run's own; the harness is pgstore_fixture.h's.
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
#include "../../storage/pg_schema.h"
#include "../../storage/pg_sql.h"
#include "../../storage/postgres.h"

#define FIXTURE_NAME "pgrows"
#include "pgstore_fixture.h"

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

/* Counts the statements (not rows) of event ("insert" or "update") on the
 * store's jobs table under key in count_updates()'s table: updates(key). */
static void count_statements(const char *event, const char *key)
{
	char q[1024];

	snprintf(q, sizeof(q),
		 "CREATE OR REPLACE FUNCTION %s.count_%s_stmt() RETURNS trigger LANGUAGE plpgsql "
		 "AS $$ BEGIN INSERT INTO %s.upd VALUES ('%s', 1) ON CONFLICT (tbl) "
		 "DO UPDATE SET n = %s.upd.n + 1; RETURN NULL; END $$; "
		 "CREATE TRIGGER count_%s_stmt AFTER %s ON %s.jobs "
		 "FOR EACH STATEMENT EXECUTE FUNCTION %s.count_%s_stmt()",
		 schema, event, schema, key, schema, event, event, schema, schema, event);
	admin_exec(q);
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
	count_statements("insert", "jobs ins stmt");
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
	count_statements("update", "jobs stmt");
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

static bool is_sick(void *st)
{
	return !is_healthy(st);
}

/*
 * A batch PostgreSQL refuses for now (here disk full, SQLSTATE 53100; the
 * same path as a read-only server's 25006 or a statement timeout's 57014)
 * loses nothing: a job that finished meanwhile is written, with its
 * result, once the database takes writes again; a create refused then is
 * answered -EAGAIN (the API's 503 "storage unavailable"), not -EIO; the
 * store says it is unhealthy until a write works again.
 */
static void test_refused_for_now(void **state)
{
	struct job *job = make_job("kept"), *late = make_job("refused");
	struct answer a = {0};
	struct store *st;
	char q[1024], id[JOB_ID_STRLEN + 1];

	need_db();
	st = db_store();
	create_claimed_job(st, job);
	job_set_str(&job->result_json, "{\"kept\": 1}");
	snprintf(q, sizeof(q),
		 "CREATE FUNCTION %s.disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
		 "RAISE EXCEPTION 'could not extend file: No space left on device' USING "
		 "ERRCODE = '53100'; END $$; "
		 "CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON %s.jobs "
		 "FOR EACH STATEMENT EXECUTE FUNCTION %s.disk_full()",
		 schema, schema, schema);
	admin_exec(q);
	finish_job(st, job);
	assert_true(wait_until(is_sick, st, 10.));
	assert_int_equal(st->ops->create_job(st, late, STORE_CLAIM, record, &a), 0);
	assert_true(wait_until(answered, &a, 10.));
	assert_int_equal(a.err, -EAGAIN);
	assert_int_equal(rows_with_id("jobs", late->id), 0);
	assert_column(job, "status", "PENDING");
	assert_false(is_healthy(st));

	snprintf(q, sizeof(q), "DROP TRIGGER disk_full ON %s.jobs", schema);
	admin_exec(q);
	assert_true(wait_until(is_healthy, st, 15.));
	sync_wait(st);
	assert_column(job, "status", "COMPLETED");
	job_id_format(job->id, id);
	snprintf(q, sizeof(q), "SELECT metadata::text FROM %s.results WHERE job_id = '%s'", schema,
		 id);
	assert_string_equal(admin_value(q), "{\"kept\": 1}");

	store_free(st);
	job_unref(job);
	job_unref(late);
}

/*
 * A database that stops answering (here: the jobs table locked, so the
 * writer's batch and the reader's query wait) makes the store unhealthy
 * once the writer's round trip has waited PG_HUNG_S (it stayed healthy
 * for as long as the database hung), and a read is answered -ETIMEDOUT
 * at the submit timeout (it waited as long as the database did).
 */
static void test_hung_database(void **state)
{
	struct job *job = make_job("hung");
	struct answer a = {0};
	struct store *st;
	int64_t t0;

	need_db();
	submit_timeout_ms = 1000;
	st = db_store();
	submit_timeout_ms = 0;
	create_claimed_job(st, job);
	lock_jobs();
	finish_job(st, job);
	until_in_flight((struct pg_store *)st);
	t0 = job_mono_ns();
	assert_int_equal(st->ops->get_job(st, job->id, record, &a), 0);
	assert_true(wait_until(answered, &a, 5.));
	assert_int_equal(a.err, -ETIMEDOUT);
	assert_true(since(t0) > 0.8 && since(t0) < 3.0);
	assert_true(is_healthy(st));
	assert_true(wait_until(is_sick, st, 10.));
	assert_true(since(t0) > 3.0);
	unlock_jobs();
	assert_true(wait_until(is_healthy, st, 10.));
	sync_wait(st);
	assert_column(job, "status", "COMPLETED");
	store_free(st);
	job_unref(job);
}

/*
 * The writer's keyed statements find their rows through a key, whatever
 * the table holds and whatever its statistics say: never a scan of the
 * whole jobs table (a generic plan made while the table is new and small
 * would keep one), never the claimed_by index (its entries for a node are
 * every claim since the last vacuum, dead ones mostly: statistics taken
 * while few rows were claimed make it look cheap). EXPLAIN of each
 * statement's generic plan on a connection with the writer's settings
 * (PG_WRITER_SESSION_SQL), on the new table, and after claims that left
 * dead entries behind.
 */
static void check_keyed_plans(PGconn *c, const struct pg_stmt *stmts, const char *when)
{
	static const int keyed[] = {PGS_JOB_STATUS, PGS_JOB_FINISH, PGS_JOB_FINISH_MANY,
				    PGS_JOB_RETRY, PGS_PIPELINE, PGS_GIVE_BACK_JOB,
				    PGS_GIVE_BACK_PIPELINE};
	char q[8192], plan[8192];

	for (size_t k = 0; k < sizeof(keyed) / sizeof(keyed[0]); k++) {
		const struct pg_stmt *st = &stmts[keyed[k]];
		PGresult *res;
		size_t n = 0;
		int len;

		snprintf(q, sizeof(q), "PREPARE keyed AS %s", st->sql);
		res = PQexec(c, q);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			fail_msg("%s: %s", st->name, PQerrorMessage(c));
		PQclear(res);
		len = snprintf(q, sizeof(q), "EXPLAIN EXECUTE keyed(");
		for (int i = 0; i < st->nparams; i++)
			len += snprintf(q + len, sizeof(q) - (size_t)len, "%sNULL", i ? ", " : "");
		snprintf(q + len, sizeof(q) - (size_t)len, ")");
		res = PQexec(c, q);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", st->name, PQerrorMessage(c));
		plan[0] = '\0';
		for (int r = 0; r < PQntuples(res); r++)
			n += (size_t)snprintf(plan + n, n < sizeof(plan) ? sizeof(plan) - n : 0, "%s\n",
					      PQgetvalue(res, r, 0));
		PQclear(res);
		PQclear(PQexec(c, "DEALLOCATE keyed"));
		if (strstr(plan, "Seq Scan") || strstr(plan, "_claimed"))
			fail_msg("%s, %s: a whole-table scan or the claimed_by index:\n%s", st->name,
				 when, plan);
	}
}

static void test_writes_find_rows_by_key(void **state)
{
	struct store *st;
	struct pg_stmt *stmts;
	PGconn *c;
	PGresult *res;
	char q[1024];

	need_db();
	st = db_store();
	stmts = pg_sql_new(schema);
	c = PQconnectdb(db_url);
	assert_non_null(stmts);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("%s", PQerrorMessage(c));
	res = PQexec(c, PG_WRITER_SESSION_SQL);
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	check_keyed_plans(c, stmts, "a new table");
	/* Statistics taken while nothing was claimed; then every row claimed
	 * and unclaimed again (dead entries in jobs_claimed), a few claimed. */
	snprintf(q, sizeof(q),
		 "INSERT INTO %s.jobs (id, name, task_name, timeout_ms, status, created_at, "
		 "due_at) SELECT gen_random_uuid(), 'n', 'dummytask', 1000, 'PENDING', now(), "
		 "now() FROM generate_series(1, 3000)",
		 schema);
	admin_exec(q);
	snprintf(q, sizeof(q), "ANALYZE %s.jobs", schema);
	admin_exec(q);
	snprintf(q, sizeof(q), "UPDATE %s.jobs SET claimed_by = '%s'", schema, pg_of(st)->node);
	admin_exec(q);
	snprintf(q, sizeof(q), "UPDATE %s.jobs SET claimed_by = NULL", schema);
	admin_exec(q);
	snprintf(q, sizeof(q),
		 "UPDATE %s.jobs SET claimed_by = '%s' WHERE id IN (SELECT id FROM %s.jobs "
		 "LIMIT 20)",
		 schema, pg_of(st)->node, schema);
	admin_exec(q);
	check_keyed_plans(c, stmts, "after claims that left dead entries");
	PQfinish(c);
	pg_sql_free(stmts);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_again),
		cmocka_unit_test(test_insert_many),
		cmocka_unit_test(test_finish_replaces_result),
		cmocka_unit_test(test_finish_many),
		cmocka_unit_test(test_refused_result_then_sync),
		cmocka_unit_test(test_refused_for_now),
		cmocka_unit_test(test_hung_database),
		cmocka_unit_test(test_writes_find_rows_by_key),
	};
	const char *filter = getenv("VALET_TEST_FILTER");

	/* VALET_TEST_FILTER: only the tests whose names match (cmocka's * and ?;
	 * tests/mutants/run.sh names them so). */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
