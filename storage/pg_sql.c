/*
 * pg_sql.c - every SQL statement of the PostgreSQL store, and rows <-> jobs.
 *
 * Theory of operation. The statements are prepared once per connection
 * (pgconn prepares the whole table on each connect), with the schema name
 * substituted when the store starts. Values travel as text: ids as UUID
 * text, times as RFC 3339 UTC with microseconds (timestamptz keeps
 * microseconds, so a time reads back exactly as it was written), JSON as
 * its text (jsonb re-normalises it; the API re-encodes it anyway).
 *
 * Every statement that writes what this node's run of a job or pipeline
 * did is fenced by the claim: the job's status, final state with result,
 * retry and outcome (PGS_JOB_STATUS, _FINISH, _RETRY, _OUTCOME) need
 * jobs.claimed_by = <this node>, the pipeline's status (PGS_PIPELINE)
 * pipelines.claimed_by = <this node> (migration 004: a pipeline is claimed
 * whole, and its row says by whom). If another node rescued the work (this
 * node's lease had expired), or an operator took it away, the late write
 * changes nothing and the new owner decides its fate. One write comes after
 * the job's own claim ended: the pid of a pipeline job that finished before
 * its child's start was seen (run.c) - PGS_JOB_OUTCOME takes the claim of
 * the job's pipeline for that. The final write of a job or pipeline ends
 * its claim. Renaming (PGS_JOB_META, PGS_PIPELINE_META, the API's PATCH
 * through any node) is no run's business and is not fenced; it writes
 * name and description only, never a state read earlier. The give-back of
 * a draining node (PGS_GIVE_BACK_JOB, _PIPELINE) is fenced the same way,
 * and by the work's status: it frees only what the node still claims and
 * has not started.
 * A final status, the result and the attempt's record are written by one
 * statement (PGS_JOB_FINISH), so a COMPLETED or FAILED job always has its
 * result. The result is three columns of the job's own row (migration
 * 009: result_metadata, result_error, and result_at, NULL while there is
 * none), set by the UPDATE that writes the final status: no second row,
 * index entry or foreign key check per job. A final state without a
 * result (has_result false) leaves the columns as they are. The
 * results "table" is a view of them for operators; nothing here reads it.
 * Deleting a result (PGS_DELETE_RESULT) clears the columns. The final states of a
 * batch's jobs go in one statement when there are several
 * (PGS_JOB_FINISH_MANY: the same statement over arrays, a row each), and so
 * do its job creates (PGS_INSERT_JOB_MANY). A transaction's NOTIFY of new
 * work and its submit guard are one statement (PGS_NOTIFY_GUARD).
 *
 * A job's limits (set at creation) are inserted with it and read back with
 * every job row, so a job claimed by another node runs with its own. Its
 * isolation record is written by whichever update follows its start
 * (status, outcome, finish or retry), when the job has one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg_schema.h"
#include "pg_sql.h"

#define JOB_COLS                                                                             \
	"j.id, j.name, j.description, j.task_name, j.task_params, j.timeout_ms, j.status, "  \
	"j.failure_reason, j.run_at, j.scheduled_at, j.created_at, j.started_at, "          \
	"j.completed_at, j.pipeline_id, j.pipeline_index, j.next_job_id, "                  \
	"j.use_previous_results, j.attempt, j.max_attempts, j.pid, j.exit_code, j.signal, " \
	"j.timed_out, j.oom_killed, j.seccomp_syscall, j.cpu_ms, j.wall_ms, j.max_rss_kb, " \
	"j.limits, j.isolation, j.memory_peak_kb, j.owner"
/* ... followed by these three: with the result, or without (lists). */
#define RESULT_COLS " , j.result_at IS NOT NULL, j.result_metadata, j.result_error"
#define NO_RESULT_COLS " , false, NULL::jsonb, NULL::text"
enum {
	JC_ID, JC_NAME, JC_DESC, JC_TASK, JC_PARAMS, JC_TIMEOUT, JC_STATUS, JC_REASON,
	JC_RUN_AT, JC_SCHEDULED_AT, JC_CREATED_AT, JC_STARTED_AT, JC_COMPLETED_AT,
	JC_PIPELINE_ID, JC_PIPELINE_INDEX, JC_NEXT_JOB_ID, JC_USE_PREVIOUS, JC_ATTEMPT,
	JC_MAX_ATTEMPTS, JC_PID, JC_EXIT_CODE, JC_SIGNAL, JC_TIMED_OUT, JC_OOM, JC_SECCOMP,
	JC_CPU, JC_WALL, JC_RSS, JC_LIMITS, JC_ISOLATION, JC_PEAK, JC_OWNER, JC_HAS_RESULT,
	JC_METADATA, JC_ERROR, JC_COUNT
};
_Static_assert(JC_COUNT == PG_CLAIM_PL_COL, "claim rows: pipeline columns follow the job's");

#define PL_COLS                                                                              \
	"p.id, p.name, p.description, p.status, p.failure_reason, p.run_at, p.created_at, "  \
	"p.started_at, p.completed_at, p.owner"
enum { PC_ID, PC_NAME, PC_DESC, PC_STATUS, PC_REASON, PC_RUN_AT, PC_CREATED_AT,
       PC_STARTED_AT, PC_COMPLETED_AT, PC_OWNER, PC_COUNT };

#define S "@SCHEMA@."
#define OUTCOME_SET                                                                          \
	"pid = $11, exit_code = $12, signal = $13, timed_out = $14, oom_killed = $15, "     \
	"seccomp_syscall = $16, cpu_ms = $17, wall_ms = $18, max_rss_kb = $19, memory_peak_kb = $20"

/* A write's fence on claimed_by, beside the key that finds its rows (id,
 * pipeline_id): the same test as claimed_by = P, written so that no index
 * on claimed_by can serve it. jobs_claimed holds an entry for every claim
 * a node made since the last vacuum - a job's end leaves its entry behind,
 * dead - and every job a node stored claimed is a live one: a plan that
 * read the rows through it (PostgreSQL chose one: a bitmap scan of all of
 * them, then the join on id) cost a write up to a millisecond and grew
 * with the node's work. The key's index finds the few rows instead. */
#define FENCE(col, p) "(" col " = " p ") IS TRUE"

/* The rows of claimed work, from a CTE H of (id, pipeline_id) of claimed
 * standalone jobs and pipeline heads: each standalone job, and every job of
 * each pipeline with its result, then the pipeline's columns and whether
 * the row is a claimed head (PG_CLAIM_PL_COL, PG_CLAIM_HEAD_COL). */
#define CLAIMED_ROWS(H)                                                                      \
	"SELECT " JOB_COLS NO_RESULT_COLS ", " PL_COLS ", true "                            \
	"FROM " S "jobs j LEFT JOIN " S "pipelines p ON false "                             \
	"WHERE j.id IN (SELECT id FROM " H " WHERE pipeline_id IS NULL) "                   \
	"UNION ALL "                                                                         \
	"SELECT " JOB_COLS RESULT_COLS ", " PL_COLS ", j.id IN (SELECT id FROM " H ") "     \
	"FROM " S "jobs j JOIN " S "pipelines p ON p.id = j.pipeline_id "                  \
	"WHERE j.pipeline_id IN (SELECT pipeline_id FROM " H " WHERE pipeline_id IS NOT NULL) " \
	"ORDER BY 14 NULLS FIRST, 15, 11"

#define INSERT_JOB                                                                           \
	"INSERT INTO " S "jobs (id, name, description, task_name, task_params, timeout_ms, "  \
	"status, run_at, created_at, pipeline_id, pipeline_index, next_job_id, "            \
	"use_previous_results, due_at, claimed_by, claimed_at, max_attempts, limits, owner) " \
	"VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::text, " \
	"CASE WHEN $15::text IS NULL THEN NULL ELSE now() END, $16, $17::jsonb, $18)"
/* INSERT_JOB for many jobs: each parameter an array, one element a job,
 * in INSERT_JOB's order; the rows go in in the arrays' order (seq). */
#define INSERT_JOBS                                                                          \
	"INSERT INTO " S "jobs (id, name, description, task_name, task_params, timeout_ms, "  \
	"status, run_at, created_at, pipeline_id, pipeline_index, next_job_id, "            \
	"use_previous_results, due_at, claimed_by, claimed_at, max_attempts, limits, owner) " \
	"SELECT id, name, description, task_name, task_params, timeout_ms, status, run_at, " \
	"created_at, pipeline_id, pipeline_index, next_job_id, use_previous_results, due_at, " \
	"claimed_by, CASE WHEN claimed_by IS NULL THEN NULL ELSE now() END, max_attempts, "  \
	"limits, owner FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], "        \
	"$5::jsonb[], $6::bigint[], $7::text[], $8::timestamptz[], $9::timestamptz[], "      \
	"$10::uuid[], $11::int[], $12::uuid[], $13::bool[], $14::timestamptz[], $15::text[], " \
	"$16::int[], $17::jsonb[], $18::text[]) WITH ORDINALITY AS v(id, name, description, " \
	"task_name, task_params, timeout_ms, status, run_at, created_at, pipeline_id, "      \
	"pipeline_index, next_job_id, use_previous_results, due_at, claimed_by, "            \
	"max_attempts, limits, owner, ord) ORDER BY ord"
#define INSERT_PIPELINE                                                                      \
	"INSERT INTO " S "pipelines (id, name, description, status, run_at, created_at, "     \
	"claimed_by, owner) VALUES ($1, $2, $3, $4, $5, $6, $7::text, $8)"

/* clang-format off */
static const struct pg_stmt pg_stmts[PGS_COUNT] = {
	/* A create's first attempt is a plain INSERT; one sent again after a
	 * connection broke under it (it may have committed) ignores the row it
	 * finds (_AGAIN). ON CONFLICT costs a speculative insertion and a WAL
	 * record more per row, so only the second kind pays for it. */
	[PGS_INSERT_JOB] = {"valet_insert_job", INSERT_JOB, 18},
	[PGS_INSERT_JOB_AGAIN] = {"valet_insert_job_again",
		INSERT_JOB " ON CONFLICT (id) DO NOTHING", 18},
	/* The creates of a batch, when there are several in a row: one
	 * statement instead of one per job (see PGS_JOB_FINISH_MANY). */
	[PGS_INSERT_JOB_MANY] = {"valet_insert_job_many", INSERT_JOBS, 18},
	[PGS_INSERT_JOB_MANY_AGAIN] = {"valet_insert_job_many_again",
		INSERT_JOBS " ON CONFLICT (id) DO NOTHING", 18},
	[PGS_INSERT_PIPELINE] = {"valet_insert_pipeline", INSERT_PIPELINE, 8},
	[PGS_INSERT_PIPELINE_AGAIN] = {"valet_insert_pipeline_again",
		INSERT_PIPELINE " ON CONFLICT (id) DO NOTHING", 8},
	[PGS_NOTIFY] = {"valet_notify", "SELECT pg_notify($1, $2)", 2},
	/* The last call of a transaction that creates work: it fails the
	 * transaction (an error that names PG_SUBMIT_GUARD_TEXT) when the
	 * database reaches it after $1, so that a submit answered 503 at its
	 * deadline cannot be committed later (pg_deadline.c). The cast fails
	 * only at run time: clock_timestamp() is volatile, so nothing here is
	 * folded when the statement is planned. */
	[PGS_SUBMIT_GUARD] = {"valet_submit_guard",
		"SELECT (CASE WHEN clock_timestamp() <= $1::timestamptz THEN NULL "
		"ELSE '" PG_SUBMIT_GUARD_TEXT "' END)::int", 1},
	/* PGS_NOTIFY and PGS_SUBMIT_GUARD ($3) in one statement. */
	[PGS_NOTIFY_GUARD] = {"valet_notify_guard",
		"SELECT pg_notify($1, $2), (CASE WHEN clock_timestamp() <= $3::timestamptz "
		"THEN NULL ELSE '" PG_SUBMIT_GUARD_TEXT "' END)::int", 3},
	[PGS_JOB_STATUS] = {"valet_job_status",
		"UPDATE " S "jobs SET status = $2, scheduled_at = $3, started_at = $4, attempt = $5, "
		"node_id = CASE WHEN $2 = 'IN_PROGRESS' THEN $6 ELSE node_id END, "
		"isolation = coalesce($7::jsonb, isolation) "
		"WHERE id = $1 AND " FENCE("claimed_by", "$6"), 7},
	[PGS_JOB_FINISH] = {"valet_job_finish",
		"WITH u AS (UPDATE " S "jobs SET status = $3, failure_reason = $4, started_at = $5, "
		"completed_at = $6, attempt = $7, "
		"node_id = CASE WHEN $5::timestamptz IS NULL THEN node_id ELSE $2 END, "
		OUTCOME_SET ", claimed_by = NULL, claimed_at = NULL, due_at = NULL, "
		"isolation = coalesce($22::jsonb, isolation), "
		"result_metadata = CASE WHEN $8 THEN $9::jsonb ELSE result_metadata END, "
		"result_error = CASE WHEN $8 THEN $10 ELSE result_error END, "
		"result_at = CASE WHEN $8 THEN now() ELSE result_at END "
		"WHERE id = $1 AND " FENCE("claimed_by", "$2") " "
		"RETURNING id, attempt, node_id, started_at), "
		"a AS (INSERT INTO " S "attempts (job_id, attempt, node_id, status, failure_reason, "
		"started_at, finished_at, pid, exit_code, signal, timed_out, oom_killed, "
		"seccomp_syscall, cpu_ms, wall_ms, max_rss_kb, memory_peak_kb) "
		"SELECT id, attempt, node_id, $3, $4, started_at, $6, $11, $12, $13, $14, $15, $16, "
		"$17, $18, $19, $20 FROM u WHERE started_at IS NOT NULL AND attempt > 0 AND $21 "
		"ON CONFLICT (job_id, attempt) DO NOTHING) "
		"SELECT count(*) FROM u", 22},
	/* PGS_JOB_FINISH for many jobs: each parameter an array, one element
	 * a job ($1 is the node; $2 the ids, $3 to $22 as in PGS_JOB_FINISH).
	 * One statement instead of one per job: each statement on jobs costs
	 * PostgreSQL a fixed price (the plan's start, its CHECK constraints
	 * read back from their stored text) that rows share. */
	[PGS_JOB_FINISH_MANY] = {"valet_job_finish_many",
		"WITH v AS (SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], "
		"$5::timestamptz[], $6::timestamptz[], $7::int[], $8::bool[], $9::jsonb[], "
		"$10::text[], $11::int[], $12::int[], $13::text[], $14::bool[], $15::bool[], "
		"$16::text[], $17::int[], $18::int[], $19::int[], $20::int[], $21::bool[], "
		"$22::jsonb[]) AS v(id, status, reason, started_at, completed_at, attempt, "
		"has_result, metadata, error, pid, exit_code, signal, timed_out, oom_killed, "
		"seccomp_syscall, cpu_ms, wall_ms, max_rss_kb, memory_peak_kb, rec, isolation)), "
		"u AS (UPDATE " S "jobs j SET status = v.status, failure_reason = v.reason, "
		"started_at = v.started_at, completed_at = v.completed_at, attempt = v.attempt, "
		"node_id = CASE WHEN v.started_at IS NULL THEN j.node_id ELSE $1 END, "
		"pid = v.pid, exit_code = v.exit_code, signal = v.signal, timed_out = v.timed_out, "
		"oom_killed = v.oom_killed, seccomp_syscall = v.seccomp_syscall, cpu_ms = v.cpu_ms, "
		"wall_ms = v.wall_ms, max_rss_kb = v.max_rss_kb, memory_peak_kb = v.memory_peak_kb, "
		"claimed_by = NULL, claimed_at = NULL, due_at = NULL, "
		"isolation = coalesce(v.isolation, j.isolation), "
		"result_metadata = CASE WHEN v.has_result THEN v.metadata ELSE j.result_metadata END, "
		"result_error = CASE WHEN v.has_result THEN v.error ELSE j.result_error END, "
		"result_at = CASE WHEN v.has_result THEN now() ELSE j.result_at END "
		"FROM v WHERE j.id = v.id AND " FENCE("j.claimed_by", "$1") " "
		"RETURNING j.id, j.attempt, j.node_id, j.started_at, v.status, v.reason, "
		"v.completed_at, v.pid, v.exit_code, v.signal, v.timed_out, v.oom_killed, "
		"v.seccomp_syscall, v.cpu_ms, v.wall_ms, v.max_rss_kb, v.memory_peak_kb, v.rec), "
		"a AS (INSERT INTO " S "attempts (job_id, attempt, node_id, status, failure_reason, "
		"started_at, finished_at, pid, exit_code, signal, timed_out, oom_killed, "
		"seccomp_syscall, cpu_ms, wall_ms, max_rss_kb, memory_peak_kb) "
		"SELECT id, attempt, node_id, status, reason, started_at, completed_at, pid, "
		"exit_code, signal, timed_out, oom_killed, seccomp_syscall, cpu_ms, wall_ms, "
		"max_rss_kb, memory_peak_kb FROM u WHERE started_at IS NOT NULL AND attempt > 0 "
		"AND rec ON CONFLICT (job_id, attempt) DO NOTHING) "
		"SELECT count(*) FROM u", 22},
	/* A failed attempt; the job waits (still claimed) for its next one. */
	[PGS_JOB_RETRY] = {"valet_job_retry",
		"WITH u AS (UPDATE " S "jobs SET status = 'PENDING', failure_reason = $3, "
		"started_at = $4, attempt = $5, due_at = $6, node_id = $2, "
		"pid = $7, exit_code = $8, signal = $9, timed_out = $10, oom_killed = $11, "
		"seccomp_syscall = $12, cpu_ms = $13, wall_ms = $14, max_rss_kb = $15, "
		"memory_peak_kb = $16, isolation = coalesce($17::jsonb, isolation) "
		"WHERE id = $1 AND " FENCE("claimed_by", "$2") " RETURNING id) "
		"INSERT INTO " S "attempts (job_id, attempt, node_id, status, failure_reason, "
		"started_at, finished_at, pid, exit_code, signal, timed_out, oom_killed, "
		"seccomp_syscall, cpu_ms, wall_ms, max_rss_kb, memory_peak_kb) "
		"SELECT id, $5, $2, 'FAILED', $3, $4, now(), $7, $8, $9, $10, $11, $12, $13, $14, $15, "
		"$16 FROM u ON CONFLICT (job_id, attempt) DO NOTHING", 17},
	/* Held by this node, or (its claim ended with its final status) a job
	 * of a pipeline this node holds. */
	[PGS_JOB_OUTCOME] = {"valet_job_outcome",
		"UPDATE " S "jobs j SET pid = $2, exit_code = $3, signal = $4, timed_out = $5, "
		"oom_killed = $6, seccomp_syscall = $7, cpu_ms = $8, wall_ms = $9, max_rss_kb = $10, "
		"memory_peak_kb = $11, isolation = coalesce($12::jsonb, isolation) "
		"WHERE j.id = $1 AND (j.claimed_by = $13 OR (j.claimed_by IS NULL AND EXISTS "
		"(SELECT 1 FROM " S "pipelines p WHERE p.id = j.pipeline_id AND p.claimed_by = $13)))",
		13},
	[PGS_JOB_META] = {"valet_job_meta",
		"UPDATE " S "jobs SET name = $2, description = $3 WHERE id = $1", 3},
	/* A final status ends the claim. */
	[PGS_PIPELINE] = {"valet_pipeline",
		"UPDATE " S "pipelines SET status = $2, failure_reason = $3, started_at = $4, "
		"completed_at = $5, claimed_by = CASE WHEN $2 IN ('COMPLETED', 'FAILED', 'CANCELLED') "
		"THEN NULL ELSE claimed_by END WHERE id = $1 AND " FENCE("claimed_by", "$6"), 6},
	[PGS_PIPELINE_META] = {"valet_pipeline_meta",
		"UPDATE " S "pipelines SET name = $2, description = $3 WHERE id = $1", 3},
	[PGS_DELETE_JOB] = {"valet_delete_job",
		"DELETE FROM " S "jobs WHERE id = $1 RETURNING id", 1},
	[PGS_DELETE_RESULT] = {"valet_delete_result",
		"UPDATE " S "jobs SET result_metadata = NULL, result_error = NULL, result_at = NULL "
		"WHERE id = $1 AND result_at IS NOT NULL RETURNING id", 1},
	[PGS_DELETE_PIPELINE] = {"valet_delete_pipeline",
		"DELETE FROM " S "pipelines WHERE id = $1 RETURNING id", 1},
	/* Cancel a standalone job nobody holds; otherwise ask its node. The
	 * first column says which: 'cancelled', 'asked' (another node holds
	 * it), 'final' (it had finished). */
	[PGS_CANCEL_JOB] = {"valet_cancel_job",
		"WITH c AS (UPDATE " S "jobs SET status = 'CANCELLED', "
		"failure_reason = 'cancelled by request', completed_at = now(), due_at = NULL "
		"WHERE id = $1 AND claimed_by IS NULL AND status IN ('PENDING', 'SCHEDULED') "
		"RETURNING id), "
		"n AS (SELECT pg_notify($2, 'job ' || j.id) FROM " S "jobs j "
		"WHERE j.id = $1 AND j.claimed_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM c)) "
		"SELECT CASE WHEN EXISTS (SELECT 1 FROM c) THEN 'cancelled' "
		"WHEN (SELECT count(*) FROM n) > 0 THEN 'asked' ELSE 'final' END", 2},
	[PGS_CANCEL_PIPELINE] = {"valet_cancel_pipeline",
		"WITH held AS (SELECT 1 FROM " S "jobs WHERE pipeline_id = $1 AND claimed_by IS NOT NULL), "
		"p AS (UPDATE " S "pipelines SET status = 'CANCELLED', "
		"failure_reason = 'cancelled by request', completed_at = now() "
		"WHERE id = $1 AND status IN ('PENDING', 'SCHEDULED') AND NOT EXISTS (SELECT 1 FROM held) "
		"RETURNING id), "
		"c AS (UPDATE " S "jobs SET status = 'CANCELLED', "
		"failure_reason = 'cancelled by request', completed_at = now(), due_at = NULL "
		"WHERE pipeline_id IN (SELECT id FROM p) AND status IN ('PENDING', 'SCHEDULED') "
		"RETURNING id), "
		"n AS (SELECT pg_notify($2, 'pipeline ' || $1::text) WHERE EXISTS (SELECT 1 FROM held)) "
		"SELECT CASE WHEN EXISTS (SELECT 1 FROM p) THEN 'cancelled' "
		"WHEN (SELECT count(*) FROM n) > 0 THEN 'asked' ELSE 'final' END, "
		"(SELECT count(*) FROM c)", 2},
	/* Claim due work: standalone jobs and pipeline heads, oldest due first;
	 * a claimed pipeline's other unfinished jobs are claimed with it, and
	 * so is its row in pipelines. The rows: each claimed standalone job, and every job of each claimed
	 * pipeline (with its result, for the previous-result chain), followed by
	 * the pipeline's columns and whether the row is a claimed head. The
	 * SELECT sees the rows as they were before this statement's updates,
	 * which only touched the claim columns it does not read. */
	[PGS_CLAIM] = {"valet_claim",
		"WITH c AS (SELECT id, pipeline_id FROM " S "jobs "
		"WHERE claimed_by IS NULL AND due_at IS NOT NULL AND due_at <= now() "
		"ORDER BY due_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED), "
		"h AS (UPDATE " S "jobs j SET claimed_by = $1, claimed_at = $3 FROM c "
		"WHERE j.id = c.id RETURNING j.id, j.pipeline_id), "
		"hp AS (UPDATE " S "pipelines p SET claimed_by = $1 FROM h WHERE p.id = h.pipeline_id), "
		"t AS (UPDATE " S "jobs j SET claimed_by = $1, claimed_at = $3 FROM c "
		"WHERE j.pipeline_id = c.pipeline_id AND j.id <> c.id AND j.claimed_by IS NULL "
		"AND j.status IN ('PENDING', 'SCHEDULED')) "
		CLAIMED_ROWS("h"), 3},
	/* What claim $2 (its claimed_at, unique per node) took, in PGS_CLAIM's
	 * shape: for a claim whose answer the connection lost. */
	[PGS_CLAIMED] = {"valet_claimed",
		"WITH h AS (SELECT id, pipeline_id, pipeline_index FROM " S "jobs "
		"WHERE claimed_by = $1 AND claimed_at = $2 AND status IN ('PENDING', 'SCHEDULED')), "
		"heads AS (SELECT DISTINCT ON (coalesce(pipeline_id, id)) id, pipeline_id FROM h "
		"ORDER BY coalesce(pipeline_id, id), pipeline_index) "
		CLAIMED_ROWS("heads"), 2},
	[PGS_NODE_REGISTER] = {"valet_node_register",
		"INSERT INTO " S "nodes (node_id, hostname, pid, version, lease_until) "
		"VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond') "
		"ON CONFLICT (node_id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid, "
		"version = excluded.version, started_at = now(), heartbeat_at = now(), "
		"lease_until = excluded.lease_until, stopped_at = NULL", 5},
	[PGS_NODE_RELEASE] = {"valet_node_release",
		"SELECT " S "release_node($1, $2, $3, $4)", 4},
	/* Give back work node $2 holds and will not start (it drains,
	 * pg_giveback.c): only while $2 claims it and it has not started. Its
	 * status, attempt and reason stay; a retry keeps its due time. */
	[PGS_GIVE_BACK_JOB] = {"valet_give_back_job",
		"UPDATE " S "jobs SET claimed_by = NULL, claimed_at = NULL, "
		"due_at = coalesce(due_at, run_at, created_at) "
		"WHERE id = $1 AND " FENCE("claimed_by", "$2") " AND pipeline_id IS NULL "
		"AND status IN ('PENDING', 'SCHEDULED')", 2},
	/* A pipeline: its row (its claim ends) and its jobs, only while $2
	 * claims it and none of its jobs has started; the first job is the
	 * queue's again (a pipeline is claimed by its first unfinished job). */
	[PGS_GIVE_BACK_PIPELINE] = {"valet_give_back_pipeline",
		"WITH p AS (UPDATE " S "pipelines SET claimed_by = NULL "
		"WHERE id = $1 AND " FENCE("claimed_by", "$2") " AND status IN ('PENDING', 'SCHEDULED') "
		"AND NOT EXISTS (SELECT 1 FROM " S "jobs WHERE pipeline_id = $1 "
		"AND status NOT IN ('PENDING', 'SCHEDULED')) RETURNING id) "
		"UPDATE " S "jobs j SET claimed_by = NULL, claimed_at = NULL, "
		"due_at = CASE WHEN j.pipeline_index = 0 THEN coalesce(j.due_at, now()) "
		"ELSE j.due_at END FROM p WHERE j.pipeline_id = p.id AND " FENCE("j.claimed_by", "$2"), 2},
	[PGS_HEARTBEAT] = {"valet_heartbeat",
		"UPDATE " S "nodes SET heartbeat_at = now(), "
		"lease_until = now() + $2 * interval '1 millisecond' WHERE node_id = $1", 2},
	/* The other nodes that share the queue: a live lease, not stopped. */
	[PGS_PEERS] = {"valet_peers",
		"SELECT count(*) FROM " S "nodes WHERE node_id <> $1 AND stopped_at IS NULL "
		"AND lease_until > now()", 1},
	[PGS_RESCUE] = {"valet_rescue", "SELECT " S "rescue_expired($1, $2, $3)", 3},
	[PGS_NEXT_DUE] = {"valet_next_due",
		"SELECT (extract(epoch FROM min(due_at)) * 1000000)::bigint FROM " S "jobs "
		"WHERE claimed_by IS NULL AND due_at IS NOT NULL", 0},
	[PGS_NODE_STOP] = {"valet_node_stop",
		"UPDATE " S "nodes SET stopped_at = now(), lease_until = now() WHERE node_id = $1", 1},
	[PGS_PRUNE_JOBS] = {"valet_prune_jobs",
		"DELETE FROM " S "jobs WHERE id IN (SELECT id FROM " S "jobs "
		"WHERE completed_at < now() - $1 * interval '1 day' AND pipeline_id IS NULL "
		"LIMIT $2 FOR UPDATE SKIP LOCKED)", 2},
	[PGS_PRUNE_PIPELINES] = {"valet_prune_pipelines",
		"DELETE FROM " S "pipelines WHERE id IN (SELECT id FROM " S "pipelines "
		"WHERE completed_at < now() - $1 * interval '1 day' "
		"LIMIT $2 FOR UPDATE SKIP LOCKED)", 2},
	[PGS_GET_JOB] = {"valet_get_job",
		"SELECT " JOB_COLS RESULT_COLS " FROM " S "jobs j WHERE j.id = $1", 1},
	/* Lists go page by page, keyset on seq ($5: the last seq of the page
	 * before, reply.next), which comes last in each row. */
	[PGS_LIST_JOBS] = {"valet_list_jobs",
		"SELECT " JOB_COLS NO_RESULT_COLS ", j.seq FROM " S "jobs j "
		"WHERE ($1::text IS NULL OR j.status = $1) AND ($4::text IS NULL OR j.owner = $4) "
		"AND j.seq > $5 ORDER BY j.seq LIMIT $2 OFFSET $3", 5},
	[PGS_GET_RESULT] = {"valet_get_result",
		"SELECT " JOB_COLS RESULT_COLS " FROM " S "jobs j "
		"WHERE j.id = $1 AND j.result_at IS NOT NULL", 1},
	[PGS_GET_PIPELINE] = {"valet_get_pipeline",
		"SELECT " PL_COLS " FROM " S "pipelines p WHERE p.id = $1", 1},
	[PGS_LIST_PIPELINES] = {"valet_list_pipelines",
		"SELECT " PL_COLS ", p.seq FROM " S "pipelines p "
		"WHERE ($1::text IS NULL OR p.status = $1) AND ($4::text IS NULL OR p.owner = $4) "
		"AND p.seq > $5 ORDER BY p.seq LIMIT $2 OFFSET $3", 5},
	/* A page of a pipeline's jobs: from index $2 on, at most $3 (NULL: all). */
	[PGS_PIPELINE_JOBS] = {"valet_pipeline_jobs",
		"SELECT " JOB_COLS NO_RESULT_COLS " FROM " S "jobs j "
		"WHERE j.pipeline_id = $1 AND j.pipeline_index >= $2 "
		"ORDER BY j.pipeline_index LIMIT $3", 3},
	[PGS_KEYS] = {"valet_keys", PG_SQL_KEYS, 0},
};
/* clang-format on */

struct pg_stmt *pg_sql_new(const char *schema)
{
	struct pg_stmt *t = calloc(PGS_COUNT, sizeof(*t));

	if (!t)
		return NULL;
	for (size_t i = 0; i < PGS_COUNT; i++) {
		t[i] = pg_stmts[i];
		t[i].sql = pg_schema_subst(pg_stmts[i].sql, schema);
		if (!t[i].sql) {
			pg_sql_free(t);
			return NULL;
		}
	}
	return t;
}

void pg_sql_free(struct pg_stmt *stmts)
{
	if (!stmts)
		return;
	for (size_t i = 0; i < PGS_COUNT; i++)
		free((char *)stmts[i].sql);
	free(stmts);
}

/* ---- rows -> objects ------------------------------------------------------------ */

static const char *col(const PGresult *res, int row, int c)
{
	return PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

static int64_t col_int(const PGresult *res, int row, int c, int64_t dflt)
{
	const char *s = col(res, row, c);

	return s ? strtoll(s, NULL, 10) : dflt;
}

static bool col_bool(const PGresult *res, int row, int c)
{
	const char *s = col(res, row, c);

	return s && s[0] == 't';
}

static int64_t col_time(const PGresult *res, int row, int c)
{
	return pg_parse_time(col(res, row, c));
}

static int set_str(char **field, const char *s)
{
	job_set_str(field, s);
	return s && !*field ? -ENOMEM : 0;
}

static int signal_number(const char *name)
{
	if (!name || strncmp(name, "SIG", 3) != 0)
		return 0;
	for (int sig = 1; sig < NSIG; sig++) {
		const char *abbrev = sigabbrev_np(sig);
		if (abbrev && !strcmp(abbrev, name + 3))
			return sig;
	}
	return atoi(name + 3);
}

/* A limit of the limits column: a number, or null / absent for none. */
static uint64_t limit_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

/* The limits column (NULL: the job set none). A malformed value counts as
 * none set, so the job gets the defaults rather than a zero output cap. */
static void parse_limits(const char *text, struct job_limits *l)
{
	json_t *o = text ? json_loads(text, 0, NULL) : NULL;

	memset(l, 0, sizeof(*l));
	if (json_is_object(o)) {
		l->memory_bytes = limit_of(o, "memory");
		l->cpu_seconds = (uint32_t)limit_of(o, "cpu");
		l->processes = (uint32_t)limit_of(o, "processes");
		l->output_bytes = (uint32_t)limit_of(o, "output");
		l->set = l->output_bytes > 0;
	}
	json_decref(o);
}

struct job *pg_row_job(const PGresult *res, int row)
{
	struct job *job = job_new();
	const char *s;
	int rc = 0;

	if (!job || PQnfields(res) < JC_COUNT)
		goto fail;
	if (pg_parse_uuid(col(res, row, JC_ID), job->id) < 0)
		goto fail;
	rc |= set_str(&job->name, col(res, row, JC_NAME) ? col(res, row, JC_NAME) : "");
	rc |= set_str(&job->description, col(res, row, JC_DESC));
	job->task_name = job_intern(col(res, row, JC_TASK) ? col(res, row, JC_TASK) : "");
	s = col(res, row, JC_PARAMS);
	rc |= set_str(&job->params_json, s && strcmp(s, "{}") && strcmp(s, "null") ? s : NULL);
	job->timeout_ms = col_int(res, row, JC_TIMEOUT, 1);
	job->status = job_status_parse(col(res, row, JC_STATUS) ? col(res, row, JC_STATUS) : "");
	rc |= set_str(&job->failure_reason, col(res, row, JC_REASON));
	job->run_at = col_time(res, row, JC_RUN_AT);
	job->scheduled_at = col_time(res, row, JC_SCHEDULED_AT);
	job->created_at = col_time(res, row, JC_CREATED_AT);
	job->started_at = col_time(res, row, JC_STARTED_AT);
	job->completed_at = col_time(res, row, JC_COMPLETED_AT);
	if (col(res, row, JC_PIPELINE_ID)) {
		job->in_pipeline = true;
		pg_parse_uuid(col(res, row, JC_PIPELINE_ID), job->pipeline_id);
		job->pipeline_index = (int)col_int(res, row, JC_PIPELINE_INDEX, 0);
		job->has_next = pg_parse_uuid(col(res, row, JC_NEXT_JOB_ID), job->next_job_id) == 0;
		job->use_previous_results = col_bool(res, row, JC_USE_PREVIOUS);
	}
	job->attempt = (int32_t)col_int(res, row, JC_ATTEMPT, 0);
	job->max_attempts = (int32_t)col_int(res, row, JC_MAX_ATTEMPTS, 1);
	job->outcome.pid = (int32_t)col_int(res, row, JC_PID, 0);
	job->outcome.exit_code = (int32_t)col_int(res, row, JC_EXIT_CODE, -1);
	job->outcome.term_signal = signal_number(col(res, row, JC_SIGNAL));
	job->outcome.timed_out = col_bool(res, row, JC_TIMED_OUT);
	job->outcome.oom_killed = col_bool(res, row, JC_OOM);
	s = col(res, row, JC_SECCOMP);
	job->outcome.seccomp_blocked = s != NULL;
	job->outcome.seccomp_syscall = s ? job_intern(s) : NULL;
	job->outcome.cpu_ms = (int32_t)col_int(res, row, JC_CPU, -1);
	job->outcome.wall_ms = (int32_t)col_int(res, row, JC_WALL, -1);
	job->outcome.max_rss_kb = (int32_t)col_int(res, row, JC_RSS, -1);
	job->outcome.memory_peak_kb = (int32_t)col_int(res, row, JC_PEAK, -1);
	parse_limits(col(res, row, JC_LIMITS), &job->limits);
	/* An owner the table has no room for is nobody's: only admins see it. */
	job->owner = job_owner_id(col(res, row, JC_OWNER));
	rc |= set_str(&job->isolation, col(res, row, JC_ISOLATION));
	job->has_result = col_bool(res, row, JC_HAS_RESULT);
	if (job->has_result) {
		s = col(res, row, JC_METADATA);
		rc |= set_str(&job->result_json, s && strcmp(s, "null") ? s : NULL);
		rc |= set_str(&job->result_error, col(res, row, JC_ERROR));
	}
	if (rc || !job->task_name)
		goto fail;
	return job;
fail:
	job_unref(job);
	return NULL;
}

struct pipeline *pg_row_pipeline(const PGresult *res, int row, int col0)
{
	struct pipeline *pl = pipeline_new(0);
	int rc = 0;

	if (!pl || PQnfields(res) < col0 + PC_COUNT)
		goto fail;
	if (pg_parse_uuid(col(res, row, col0 + PC_ID), pl->id) < 0)
		goto fail;
	rc |= set_str(&pl->name, col(res, row, col0 + PC_NAME) ? col(res, row, col0 + PC_NAME) : "");
	rc |= set_str(&pl->description, col(res, row, col0 + PC_DESC));
	pl->status = job_status_parse(col(res, row, col0 + PC_STATUS) ? col(res, row, col0 + PC_STATUS) : "");
	rc |= set_str(&pl->failure_reason, col(res, row, col0 + PC_REASON));
	pl->run_at = col_time(res, row, col0 + PC_RUN_AT);
	pl->created_at = col_time(res, row, col0 + PC_CREATED_AT);
	pl->started_at = col_time(res, row, col0 + PC_STARTED_AT);
	pl->completed_at = col_time(res, row, col0 + PC_COMPLETED_AT);
	pl->owner = job_owner_id(col(res, row, col0 + PC_OWNER));
	if (rc)
		goto fail;
	return pl;
fail:
	pipeline_unref(pl);
	return NULL;
}

/* ---- objects -> parameters ----------------------------------------------------- */

static int add_status(struct pg_batch *b, enum job_status st)
{
	return pg_batch_text(b, job_status_name(st));
}

/* -1 ("unknown") is NULL. */
static int add_count(struct pg_batch *b, int64_t v)
{
	return v < 0 ? pg_batch_null(b) : pg_batch_int(b, v);
}

static int add_uuid_or_null(struct pg_batch *b, bool set, const uint8_t id[JOB_ID_LEN])
{
	return set ? pg_batch_uuid(b, id) : pg_batch_null(b);
}

/* The limits column: the API's shape, null for none; SQL NULL when not set. */
static int add_limits(struct pg_batch *b, const struct job_limits *l)
{
	char text[160], mem[24] = "null", cpu[24] = "null", procs[24] = "null";

	if (!l->set)
		return pg_batch_null(b);
	if (l->memory_bytes)
		snprintf(mem, sizeof(mem), "%llu", (unsigned long long)l->memory_bytes);
	if (l->cpu_seconds)
		snprintf(cpu, sizeof(cpu), "%u", l->cpu_seconds);
	if (l->processes)
		snprintf(procs, sizeof(procs), "%u", l->processes);
	snprintf(text, sizeof(text), "{\"memory\":%s,\"cpu\":%s,\"processes\":%s,\"output\":%u}",
		 mem, cpu, procs, l->output_bytes);
	return pg_batch_text(b, text);
}

int pg_add_insert_job(struct pg_batch *b, const struct job *job, const char *claimed_by,
		      int64_t due_at, bool again)
{
	int rc = pg_batch_call(b, again ? PGS_INSERT_JOB_AGAIN : PGS_INSERT_JOB);

	rc |= pg_batch_uuid(b, job->id);
	rc |= pg_batch_text(b, job->name);
	rc |= pg_batch_text(b, job->description);
	rc |= pg_batch_text(b, job->task_name);
	rc |= pg_batch_text(b, job->params_json);
	rc |= pg_batch_int(b, job->timeout_ms);
	rc |= add_status(b, job->status);
	rc |= pg_batch_time(b, job->run_at);
	rc |= pg_batch_time(b, job->created_at);
	rc |= add_uuid_or_null(b, job->in_pipeline, job->pipeline_id);
	rc |= job->in_pipeline ? pg_batch_int(b, job->pipeline_index) : pg_batch_null(b);
	rc |= add_uuid_or_null(b, job->in_pipeline && job->has_next, job->next_job_id);
	rc |= pg_batch_bool(b, job->use_previous_results);
	rc |= pg_batch_time(b, due_at);
	rc |= pg_batch_text(b, claimed_by);
	rc |= pg_batch_int(b, job->max_attempts > 0 ? job->max_attempts : 1);
	rc |= add_limits(b, &job->limits);
	rc |= pg_batch_text(b, job_owner_name(job->owner));
	return rc ? -ENOMEM : 0;
}

int pg_add_insert_job_many(struct pg_batch *b, const struct pg_batch *rows, bool again)
{
	int rc = pg_batch_call(b, again ? PGS_INSERT_JOB_MANY_AGAIN : PGS_INSERT_JOB_MANY);

	for (size_t col = 0; col < 18 && !rc; col++)
		rc = pg_batch_column(b, rows, col);
	return rc;
}

int pg_add_insert_pipeline(struct pg_batch *b, const struct pipeline *pl, const char *claimed_by,
			   bool again)
{
	int rc = pg_batch_call(b, again ? PGS_INSERT_PIPELINE_AGAIN : PGS_INSERT_PIPELINE);

	rc |= pg_batch_uuid(b, pl->id);
	rc |= pg_batch_text(b, pl->name);
	rc |= pg_batch_text(b, pl->description);
	rc |= add_status(b, pl->status);
	rc |= pg_batch_time(b, pl->run_at);
	rc |= pg_batch_time(b, pl->created_at);
	rc |= pg_batch_text(b, claimed_by);
	rc |= pg_batch_text(b, job_owner_name(pl->owner));
	return rc ? -ENOMEM : 0;
}

int pg_add_job_status(struct pg_batch *b, const struct job *job, const char *node)
{
	int rc = pg_batch_call(b, PGS_JOB_STATUS);

	rc |= pg_batch_uuid(b, job->id);
	rc |= add_status(b, job->status);
	rc |= pg_batch_time(b, job->scheduled_at);
	rc |= pg_batch_time(b, job->started_at);
	rc |= pg_batch_int(b, job->attempt);
	rc |= pg_batch_text(b, node);
	rc |= pg_batch_text(b, job->isolation);
	return rc ? -ENOMEM : 0;
}

static int add_outcome(struct pg_batch *b, const struct job_outcome *oc)
{
	char sig[32];
	const char *abbrev;
	int rc = 0;

	rc |= oc->pid ? pg_batch_int(b, oc->pid) : pg_batch_null(b);
	rc |= add_count(b, oc->exit_code);
	if (oc->term_signal > 0) {
		abbrev = sigabbrev_np(oc->term_signal);
		if (abbrev)
			snprintf(sig, sizeof(sig), "SIG%s", abbrev);
		else
			snprintf(sig, sizeof(sig), "SIG%d", oc->term_signal);
		rc |= pg_batch_text(b, sig);
	} else {
		rc |= pg_batch_null(b);
	}
	rc |= oc->pid ? pg_batch_bool(b, oc->timed_out) : pg_batch_null(b);
	rc |= oc->pid ? pg_batch_bool(b, oc->oom_killed) : pg_batch_null(b);
	rc |= pg_batch_text(b, oc->seccomp_blocked ? (oc->seccomp_syscall ? oc->seccomp_syscall
									   : "unknown")
						   : NULL);
	rc |= add_count(b, oc->cpu_ms);
	rc |= add_count(b, oc->wall_ms);
	rc |= add_count(b, oc->max_rss_kb);
	rc |= add_count(b, oc->memory_peak_kb);
	return rc;
}

int pg_add_job_finish(struct pg_batch *b, const struct job *job, const char *node,
		      bool drop_result)
{
	char why[512];
	int rc = pg_batch_call(b, PGS_JOB_FINISH);

	rc |= pg_batch_uuid(b, job->id);
	rc |= pg_batch_text(b, node);
	rc |= add_status(b, job->status);
	rc |= pg_batch_text(b, job->failure_reason);
	rc |= pg_batch_time(b, job->started_at);
	rc |= pg_batch_time(b, job->completed_at);
	rc |= pg_batch_int(b, job->attempt);
	rc |= pg_batch_bool(b, job->has_result);
	if (drop_result) {
		/* The database refused the result (for example a \u0000 that jsonb
		 * cannot hold): keep the status, say why the result is missing. */
		snprintf(why, sizeof(why), "%s%sthe result could not be stored in PostgreSQL",
			 job->result_error ? job->result_error : "", job->result_error ? "; " : "");
		rc |= pg_batch_null(b);
		rc |= pg_batch_text(b, why);
	} else {
		rc |= pg_batch_text(b, job->result_json);
		rc |= pg_batch_text(b, job->result_error);
	}
	rc |= add_outcome(b, &job->outcome);
	/* The only attempt of a job that may not retry is the job row itself. */
	rc |= pg_batch_bool(b, job->max_attempts > 1 || job->attempt > 1);
	rc |= pg_batch_text(b, job->isolation);
	return rc ? -ENOMEM : 0;
}

int pg_add_job_finish_many(struct pg_batch *b, const struct pg_batch *rows, const char *node)
{
	int rc = pg_batch_call(b, PGS_JOB_FINISH_MANY) | pg_batch_text(b, node);

	/* PGS_JOB_FINISH's parameters but its second (the node), in order. */
	for (size_t col = 0; col < 22 && !rc; col++)
		if (col != 1)
			rc = pg_batch_column(b, rows, col);
	return rc;
}

int pg_add_job_outcome(struct pg_batch *b, const struct job *job, const char *node)
{
	int rc = pg_batch_call(b, PGS_JOB_OUTCOME);

	rc |= pg_batch_uuid(b, job->id);
	rc |= add_outcome(b, &job->outcome);
	rc |= pg_batch_text(b, job->isolation);
	rc |= pg_batch_text(b, node);
	return rc ? -ENOMEM : 0;
}

int pg_add_job_retry(struct pg_batch *b, const struct job *job, const char *node)
{
	int rc = pg_batch_call(b, PGS_JOB_RETRY);

	rc |= pg_batch_uuid(b, job->id);
	rc |= pg_batch_text(b, node);
	rc |= pg_batch_text(b, job->failure_reason);
	rc |= pg_batch_time(b, job->started_at);
	rc |= pg_batch_int(b, job->attempt);
	rc |= pg_batch_time(b, job->core_due ? job->core_due : job_now_us());
	rc |= add_outcome(b, &job->outcome);
	rc |= pg_batch_text(b, job->isolation);
	return rc ? -ENOMEM : 0;
}

int pg_add_job_meta(struct pg_batch *b, const struct job *job)
{
	int rc = pg_batch_call(b, PGS_JOB_META);

	rc |= pg_batch_uuid(b, job->id);
	rc |= pg_batch_text(b, job->name);
	rc |= pg_batch_text(b, job->description);
	return rc ? -ENOMEM : 0;
}

int pg_add_pipeline(struct pg_batch *b, const struct pipeline *pl, const char *node)
{
	int rc = pg_batch_call(b, PGS_PIPELINE);

	rc |= pg_batch_uuid(b, pl->id);
	rc |= add_status(b, pl->status);
	rc |= pg_batch_text(b, pl->failure_reason);
	rc |= pg_batch_time(b, pl->started_at);
	rc |= pg_batch_time(b, pl->completed_at);
	rc |= pg_batch_text(b, node);
	return rc ? -ENOMEM : 0;
}

int pg_add_pipeline_meta(struct pg_batch *b, const struct pipeline *pl)
{
	int rc = pg_batch_call(b, PGS_PIPELINE_META);

	rc |= pg_batch_uuid(b, pl->id);
	rc |= pg_batch_text(b, pl->name);
	rc |= pg_batch_text(b, pl->description);
	return rc ? -ENOMEM : 0;
}
