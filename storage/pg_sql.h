/*
 * pg_sql.h - the prepared statements of the PostgreSQL store, and the
 * conversion between rows and jobs/pipelines.
 */
#ifndef VALET_PG_SQL_H
#define VALET_PG_SQL_H

#include "../supervisor/job.h"
#include "pgconn.h"

enum pg_stmt_id {
	/* writes (writer connection; group-committed) */
	PGS_INSERT_JOB,
	PGS_INSERT_JOB_AGAIN,
	PGS_INSERT_JOB_MANY,
	PGS_INSERT_JOB_MANY_AGAIN,
	PGS_INSERT_PIPELINE,
	PGS_INSERT_PIPELINE_AGAIN,
	PGS_NOTIFY,
	PGS_SUBMIT_GUARD,
	PGS_NOTIFY_GUARD,
	PGS_JOB_STATUS,
	PGS_JOB_FINISH,
	PGS_JOB_FINISH_MANY,
	PGS_JOB_RETRY,
	PGS_JOB_OUTCOME,
	PGS_JOB_META,
	PGS_PIPELINE,
	PGS_PIPELINE_META,
	PGS_DELETE_JOB,
	PGS_DELETE_RESULT,
	PGS_DELETE_PIPELINE,
	PGS_CANCEL_JOB,
	PGS_CANCEL_PIPELINE,
	/* the queue and the node (writer) */
	PGS_CLAIM,
	PGS_CLAIMED,
	PGS_NODE_REGISTER,
	PGS_NODE_RELEASE,
	PGS_GIVE_BACK_JOB,
	PGS_GIVE_BACK_PIPELINE,
	PGS_HEARTBEAT,
	PGS_PEERS,
	PGS_RESCUE,
	PGS_NEXT_DUE,
	PGS_NODE_STOP,
	PGS_PRUNE_JOBS,
	PGS_PRUNE_PIPELINES,
	/* reads (reader connection; the writer for claims) */
	PGS_GET_JOB,
	PGS_LIST_JOBS,
	PGS_GET_RESULT,
	PGS_GET_PIPELINE,
	PGS_LIST_PIPELINES,
	PGS_PIPELINE_JOBS,
	PGS_KEYS, /* the live API keys (pg_keys.c) */
	PGS_COUNT
};

/* The statement table with the schema substituted. New: free with
 * pg_sql_free(). NULL on ENOMEM. */
struct pg_stmt *pg_sql_new(const char *schema);
void pg_sql_free(struct pg_stmt *stmts);

/* Row i of a result of job columns (PGS_GET_JOB, _LIST_JOBS, _GET_RESULT,
 * _PIPELINE_JOBS, _CLAIM, _CANCEL_JOB) as a new job (refs 1). NULL on
 * ENOMEM or a malformed row. */
struct job *pg_row_job(const PGresult *res, int row);
/* Row i of pipeline columns starting at column col0 (0 for
 * PGS_GET_PIPELINE, _LIST_PIPELINES; PG_CLAIM_PL_COL for PGS_CLAIM) as a new
 * pipeline without jobs. */
struct pipeline *pg_row_pipeline(const PGresult *res, int row, int col0);

/* What PostgreSQL says, in the message of PGS_SUBMIT_GUARD's error, when
 * the guard came too late (pg_write.c tells that failure from others). */
#define PG_SUBMIT_GUARD_TEXT "valet: submit deadline passed"


/* The live API keys as the columns of a keys file line: name, scopes,
 * SHA-256, created (RFC 3339), policy words (pg_keys.c; also run by `valetd
 * key list`, with the schema substituted). */
#define PG_SQL_KEYS                                                                          \
	"SELECT name, scopes, token_sha256, "                                               \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), policy "   \
	"FROM @SCHEMA@.api_keys WHERE revoked_at IS NULL ORDER BY name"

/* PGS_CLAIM rows: job columns, pipeline columns from PG_CLAIM_PL_COL, then
 * a boolean at PG_CLAIM_HEAD_COL: this row is a claimed job (not just a
 * member of a claimed pipeline). */
#define PG_CLAIM_PL_COL 35
#define PG_CLAIM_HEAD_COL 45

/* Parameters of one statement call for a job or pipeline. node: this
 * node's id (the writes of a run are fenced by its claim: pg_sql.c);
 * claimed_by: this node's id for work stored claimed, else NULL; again: an
 * earlier attempt of this insert may have committed (its row, if there,
 * is left as it is). 0 or -ENOMEM. */
int pg_add_insert_job(struct pg_batch *b, const struct job *job, const char *claimed_by,
		      int64_t due_at, bool again);
/* One PGS_INSERT_JOB_MANY(_AGAIN) of rows: calls of PGS_INSERT_JOB
 * (pg_add_insert_job() on a batch that is never sent), all first attempts
 * or all not (again). */
int pg_add_insert_job_many(struct pg_batch *b, const struct pg_batch *rows, bool again);
int pg_add_insert_pipeline(struct pg_batch *b, const struct pipeline *pl, const char *claimed_by,
			   bool again);
int pg_add_job_status(struct pg_batch *b, const struct job *job, const char *node);
int pg_add_job_finish(struct pg_batch *b, const struct job *job, const char *node,
		      bool drop_result);
/* One PGS_JOB_FINISH_MANY of rows: calls of PGS_JOB_FINISH (pg_add_job_finish()
 * on a batch that is never sent), all with this node. */
int pg_add_job_finish_many(struct pg_batch *b, const struct pg_batch *rows, const char *node);
int pg_add_job_outcome(struct pg_batch *b, const struct job *job, const char *node);
/* A failed attempt of a job that runs again at job->core_due. */
int pg_add_job_retry(struct pg_batch *b, const struct job *job, const char *node);
int pg_add_job_meta(struct pg_batch *b, const struct job *job);
/* The pipeline's status (fenced); its name and description (not). */
int pg_add_pipeline(struct pg_batch *b, const struct pipeline *pl, const char *node);
int pg_add_pipeline_meta(struct pg_batch *b, const struct pipeline *pl);

#endif
