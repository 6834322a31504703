/*
 * postgres.c - the PostgreSQL store: durable jobs, and the job queue shared
 * by every valetd node that uses the same database and schema.
 *
 * Theory of operation
 *
 * Two connections (pgconn.c): the writer carries every change, the claims,
 * the node's heartbeat and LISTEN; the reader answers the API's reads, so a
 * slow list never holds up a job's state change. Nothing here blocks the
 * loop, and nobody waits on the database without a bound: a read is
 * answered within [storage] submit_timeout (-ETIMEDOUT, the API's 503
 * "storage did not answer", when the database is slower), as a create is
 * (pg_deadline.c). The store is healthy only while the database does its
 * part (pg_healthy): connections up, lease held, writes taken, and no
 * round trip of the writer unanswered for long.
 *
 * Writes are group-committed, and deferred where that saves a statement:
 * pg_write.c.
 *
 * The queue. A job row is runnable when due_at <= now() and no node claims
 * it. A create the core can run at once is stored already claimed by this
 * node (no second round trip) - every create, while no other node shares
 * the queue (pg_queue.c); anything else is left to whichever node claims
 * it first (FOR UPDATE SKIP LOCKED). The core says how much it
 * could take (want); we claim when there may be work: after a NOTIFY on
 * "<schema>_jobs", at the earliest due_at of unclaimed work (a timer; the
 * NOTIFY payload carries the due time), and every few seconds as a
 * fallback. A claimed pipeline is loaded whole and delivered from its head.
 *
 * The node. At its first connect the node registers (nodes row), then
 * releases whatever an earlier run under the same node id left claimed
 * (release_node() in SQL: running attempts fail and may be retried,
 * unstarted work goes back to the queue), and only then claims. Every
 * lease/3 it renews its lease and rescues the work of nodes whose lease
 * expired. All writes about running jobs and pipelines are fenced by their
 * claim (pg_sql.c), so a late write from a node that lost them changes
 * nothing. A node told to stop gives back at once what it holds and has
 * not started (pg_giveback.c), and at close whatever it still holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "../supervisor/log.h"
#include "../supervisor/strv.h"
#include "pg_internal.h"
#include "postgres.h"
#include "pg_schema.h"
#include "pg_sql.h"

#define PG_HUNG_S 4 /* a round trip unanswered this long: the database hangs */

/* ---- store ops: reads --------------------------------------------------------------------- */

enum pg_read_kind { RD_JOB, RD_JOBS, RD_RESULT, RD_PIPELINE, RD_PIPELINES, RD_PIPELINE_JOBS };

/* A read is answered within the submit timeout: its rows, or -ETIMEDOUT
 * (the API's 503 "storage did not answer") when the database is slower;
 * the batch then ends unheard. */
struct pg_read {
	enum pg_read_kind kind;
	store_done_fn cb; /* NULL once answered */
	void *arg;
	struct pg_store *ps;
	ev_timer deadline_w;
	uint64_t after; /* RD_PIPELINE_JOBS: the page's start (store_query.after) */
};

static void read_reply(struct pg_read *rd, const struct store_reply *r)
{
	store_done_fn cb = rd->cb;

	ev_timer_stop(rd->ps->loop, &rd->deadline_w);
	rd->cb = NULL;
	if (cb)
		cb(rd->arg, r);
}

static void on_read_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_read *rd = w->data;
	struct store_reply r = {.err = -ETIMEDOUT};

	log_warn("PostgreSQL did not answer a read in time; answered 503");
	read_reply(rd, &r);
}

/* Decode a read's rows into a reply, call back, free the objects. */
static void read_answer(struct pg_read *rd, struct pg_batch *b, int err)
{
	struct store_reply r = {.err = err};
	const PGresult *res = err ? NULL : pg_batch_result(b, 0);
	int n = res ? PQntuples(res) : 0;
	bool pls = rd->kind == RD_PIPELINE || rd->kind == RD_PIPELINES;

	if (!err && (rd->kind == RD_JOB || rd->kind == RD_RESULT || rd->kind == RD_PIPELINE ||
		     rd->kind == RD_PIPELINE_JOBS) && n == 0)
		r.err = -ENOENT;
	if (!r.err && rd->kind == RD_PIPELINE_JOBS) {
		/* Call 0: the pipeline; call 1: its jobs. */
		r.pipeline = pg_row_pipeline(res, 0, 0);
		res = pg_batch_result(b, 1);
		n = PQntuples(res);
		pls = false;
	}
	if (!r.err && n > 0) {
		if (pls)
			r.pipelines = calloc((size_t)n, sizeof(*r.pipelines));
		else
			r.jobs = calloc((size_t)n, sizeof(*r.jobs));
		if (!r.pipelines && !r.jobs)
			r.err = -ENOMEM;
	}
	for (int i = 0; !r.err && i < n; i++) {
		if (pls)
			r.pipelines[r.npipelines++] = pg_row_pipeline(res, i, 0);
		else
			r.jobs[r.njobs++] = pg_row_job(res, i);
		if (pls ? !r.pipelines[i] : !r.jobs[i])
			r.err = -EIO;
	}
	if (!r.err && (rd->kind == RD_JOB || rd->kind == RD_RESULT))
		r.job = r.jobs[0];
	if (!r.err && rd->kind == RD_PIPELINE)
		r.pipeline = r.pipelines[0];
	/* The cursor: a list's rows end with their seq; a pipeline's jobs
	 * are at their index + 1. */
	if (!r.err && n > 0 && (rd->kind == RD_JOBS || rd->kind == RD_PIPELINES))
		r.next = strtoull(PQgetvalue(res, n - 1, PQnfields(res) - 1), NULL, 10);
	if (!r.err && rd->kind == RD_PIPELINE_JOBS)
		r.next = rd->after + r.njobs;
	if (r.err)
		r = (struct store_reply){.err = r.err, .jobs = r.jobs, .njobs = r.njobs,
					 .pipelines = r.pipelines, .npipelines = r.npipelines,
					 .pipeline = rd->kind == RD_PIPELINE_JOBS ? r.pipeline : NULL};
	if (r.err) {
		struct store_reply e = {.err = r.err};
		read_reply(rd, &e);
	} else {
		read_reply(rd, &r);
	}
	for (size_t i = 0; i < r.njobs; i++)
		job_unref(r.jobs[i]);
	for (size_t i = 0; i < r.npipelines; i++)
		pipeline_unref(r.pipelines[i]);
	if (rd->kind == RD_PIPELINE_JOBS)
		pipeline_unref(r.pipeline);
	free(r.jobs);
	free(r.pipelines);
	free(rd);
}

static void read_done(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_read *rd = arg;

	if (err && err != -ECANCELED)
		log_warn("PostgreSQL read failed", "error", msg);
	read_answer(rd, b, err == -EPIPE || err == -ECANCELED ? -EAGAIN : err ? -EIO : 0);
	pg_batch_free(b);
}

static int read_start(struct pg_store *ps, enum pg_read_kind kind, const uint8_t *id,
		      const struct store_query *q, store_done_fn cb, void *arg)
{
	struct pg_read *rd;
	struct pg_batch *b;
	int rc = 0;

	if (!ps->reader || !pgconn_up(ps->reader))
		return -EAGAIN;
	rd = calloc(1, sizeof(*rd));
	b = pg_batch_new(false, read_done, rd);
	if (!rd || !b) {
		free(rd);
		pg_batch_free(b);
		return -ENOMEM;
	}
	*rd = (struct pg_read){
	    .kind = kind, .cb = cb, .arg = arg, .ps = ps, .after = q ? q->after : 0};
	ev_timer_init(&rd->deadline_w, on_read_deadline, (double)ps->submit_timeout_ms / 1000.0, 0.);
	rd->deadline_w.data = rd;
	switch (kind) {
	case RD_JOB:
		rc = pg_batch_call(b, PGS_GET_JOB) | pg_batch_uuid(b, id);
		break;
	case RD_RESULT:
		rc = pg_batch_call(b, PGS_GET_RESULT) | pg_batch_uuid(b, id);
		break;
	case RD_PIPELINE:
		rc = pg_batch_call(b, PGS_GET_PIPELINE) | pg_batch_uuid(b, id);
		break;
	case RD_PIPELINE_JOBS:
		rc = pg_batch_call(b, PGS_GET_PIPELINE) | pg_batch_uuid(b, id) |
		     pg_batch_call(b, PGS_PIPELINE_JOBS) | pg_batch_uuid(b, id) |
		     pg_batch_int(b, q->after > INT32_MAX ? INT32_MAX : (int64_t)q->after);
		rc |= q->limit ? pg_batch_int(b, q->limit > INT32_MAX ? INT32_MAX : (int64_t)q->limit)
			       : pg_batch_null(b);
		break;
	case RD_JOBS:
	case RD_PIPELINES:
		rc = pg_batch_call(b, kind == RD_JOBS ? PGS_LIST_JOBS : PGS_LIST_PIPELINES);
		rc |= q->status ? pg_batch_text(b, job_status_name(q->status)) : pg_batch_null(b);
		/* The API refuses more than INT64_MAX; never a negative LIMIT/OFFSET. */
		rc |= q->limit ? pg_batch_int(b, q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit)
			       : pg_batch_null(b);
		rc |= pg_batch_int(b, q->offset > INT64_MAX ? INT64_MAX : (int64_t)q->offset);
		rc |= pg_batch_text(b, job_owner_name(q->owner));
		rc |= pg_batch_int(b, q->after > INT64_MAX ? INT64_MAX : (int64_t)q->after);
		break;
	}
	if (rc || pgconn_submit(ps->reader, b) < 0) {
		free(rd);
		pg_batch_free(b);
		return -ENOMEM;
	}
	ev_timer_start(ps->loop, &rd->deadline_w);
	return 0;
}

static int pg_get_job(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb, void *arg)
{
	return read_start(pg_of(st), RD_JOB, id, NULL, cb, arg);
}

static int pg_list_jobs(struct store *st, const struct store_query *q, store_done_fn cb,
			void *arg)
{
	return read_start(pg_of(st), RD_JOBS, NULL, q, cb, arg);
}

static int pg_get_result(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			 void *arg)
{
	return read_start(pg_of(st), RD_RESULT, id, NULL, cb, arg);
}

static int pg_get_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			   void *arg)
{
	return read_start(pg_of(st), RD_PIPELINE, id, NULL, cb, arg);
}

static int pg_list_pipelines(struct store *st, const struct store_query *q, store_done_fn cb,
			     void *arg)
{
	return read_start(pg_of(st), RD_PIPELINES, NULL, q, cb, arg);
}

static int pg_pipeline_jobs(struct store *st, const uint8_t id[JOB_ID_LEN],
			    const struct store_query *q, store_done_fn cb, void *arg)
{
	return read_start(pg_of(st), RD_PIPELINE_JOBS, id, q, cb, arg);
}

/*
 * Healthy: both connections up and the node registered, and the database
 * does its part: this node holds its lease (and, renewed after a loss, has
 * given its claims back), the last write was not refused for now
 * (read-only, disk full...), and the writer's oldest round trip in flight
 * is younger than PG_HUNG_S - the heartbeat (every lease/3) sees to it that
 * one is, so a server that stopped answering (hung, or a network black
 * hole) shows within lease/3 + PG_HUNG_S. The reader is left out of that
 * last test: a long list is slow, not a sick database; its reads have
 * their own deadline.
 */
static bool pg_healthy(struct store *st)
{
	struct pg_store *ps = pg_of(st);
	int64_t since;

	if (!ps->registered || !pgconn_up(ps->writer) || !ps->reader || !pgconn_up(ps->reader) ||
	    ps->lease_lost || ps->release_due || ps->write_failing)
		return false;
	since = pgconn_waiting_since(ps->writer);
	return !since || job_mono_ns() - since < PG_HUNG_S * 1000000000LL;
}

static void pg_stats(struct store *st, struct store_stats *out)
{
	struct pg_store *ps = pg_of(st);

	*out = (struct store_stats){.up = pg_healthy(st),
				    .batch = &ps->commit_batch,
				    .rescued = ps->rescued,
				    .unsaved = ps->ndirty};
	if (ps->writer)
		pgconn_stats(ps->writer, &out->round_trips[0], &out->rtt[0]);
	if (ps->reader)
		pgconn_stats(ps->reader, &out->round_trips[1], &out->rtt[1]);
}

static void pg_free(struct store *st)
{
	struct pg_store *ps = pg_of(st);

	if (!ps)
		return;
	pg_write_stop(ps);
	pg_spill_stop(ps);
	pgq_stop(ps);
	pg_give_back_stop(ps);
	pgk_stop(ps);
	pgconn_free(ps->reader);
	ps->reader = NULL;
	pgconn_free(ps->writer);
	ps->writer = NULL;
	pg_give_back_free(ps);
	pg_write_free(ps);
	pg_sql_free(ps->stmts);
	free(ps->schema);
	free(ps->node);
	free(ps->url);
	free(ps->state_dir);
	free(ps->setup_sql);
	free(ps);
}

static const struct store_ops pg_ops = {
	.name = "postgres",
	.create_job = pg_create_job,
	.create_pipeline = pg_create_pipeline,
	.save_job = pg_save_job,
	.save_pipeline = pg_save_pipeline,
	.get_job = pg_get_job,
	.list_jobs = pg_list_jobs,
	.delete_job = pg_delete_job,
	.get_result = pg_get_result,
	.delete_result = pg_delete_result,
	.get_pipeline = pg_get_pipeline,
	.list_pipelines = pg_list_pipelines,
	.pipeline_jobs = pg_pipeline_jobs,
	.delete_pipeline = pg_delete_pipeline,
	.sync = pg_sync,
	.healthy = pg_healthy,
	.stats = pg_stats,
	.watch_keys = pgk_watch,
	.free = pg_free,
	.attach = pgq_attach,
	.want = pgq_want,
	.alone = pgq_alone,
	.cancel = pgq_cancel,
	.give_back = pg_give_back,
	.close = pgq_close,
};

/* This node's id: [storage] node_id, else the host name (at most 63
 * bytes). 0, or -EINVAL with a sentence in err when it is not usable. */
static int pg_node_id(const struct pg_options *o, char *host, size_t len, char *err, size_t errlen)
{
	if (o->node_id && o->node_id[0]) {
		snprintf(host, len, "%s", o->node_id);
	} else if (gethostname(host, len) < 0) {
		snprintf(host, len, "valetd");
	}
	host[len > 63 ? 63 : len - 1] = '\0';
	if (!pg_schema_node_id_ok(host)) {
		snprintf(err, errlen,
			 "node id \"%s\" is not usable: set [storage] node_id to 1-63 letters, "
			 "digits or . _ : -",
			 host);
		return -EINVAL;
	}
	return 0;
}

/* What a store needs of o: a URL and a usable node id (into host). */
static int pg_options_check(const struct pg_options *o, char *host, size_t len, char *err,
			    size_t errlen)
{
	if (!o->url || !o->url[0]) {
		snprintf(err, errlen,
			 "[storage] backend = postgres needs database_url (or the "
			 "VALET_DATABASE_URL environment variable)");
		return -EINVAL;
	}
	if (o->state_dir && o->state_dir[0] && pg_spill_check(o->state_dir, err, errlen) < 0)
		return -EINVAL;
	return pg_node_id(o, host, len, err, errlen);
}

int store_pg_check(const struct pg_options *o, char *err, size_t errlen)
{
	char host[256], **dirs = NULL, **hosts = NULL;
	int rc;

	if ((rc = pg_options_check(o, host, sizeof(host), err, errlen)) < 0)
		return rc;
	rc = store_pg_targets(o->url, &dirs, &hosts, err, errlen);
	strv_free(dirs);
	strv_free(hosts);
	return rc < 0 ? -EINVAL : 0;
}

struct store *store_postgres_new(struct ev_loop *loop, const struct pg_options *o, char *err,
				 size_t errlen)
{
	struct pg_store *ps;
	char host[256];

	if (!o->schema) {
		snprintf(err, errlen, "no schema");
		return NULL;
	}
	if (pg_options_check(o, host, sizeof(host), err, errlen) < 0)
		return NULL;
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		goto nomem;
	ps->base.ops = &pg_ops;
	ps->loop = loop;
	TAILQ_INIT(&ps->withdrawn);
	if (pg_write_init(ps) < 0)
		goto nomem;
	pg_spill_init(ps);
	ps->schema = strdup(o->schema);
	ps->node = strdup(host);
	ps->url = strdup(o->url);
	if (o->state_dir && o->state_dir[0] && !(ps->state_dir = strdup(o->state_dir)))
		goto nomem;
	ps->lease_ms = o->lease_ms;
	ps->peers = -1;
	ps->backoff_ms = o->retry_backoff_ms;
	ps->backoff_max_ms = o->retry_backoff_max_ms;
	ps->retention_days = o->retention_days;
	ps->submit_timeout_ms = o->submit_timeout_ms > 0 ? o->submit_timeout_ms : PG_SUBMIT_TIMEOUT_MS;
	if (!ps->schema || !ps->node || !ps->url)
		goto nomem;
	pg_schema_channel(ps->schema, "jobs", ps->chan_jobs, sizeof(ps->chan_jobs));
	pg_schema_channel(ps->schema, "cancel", ps->chan_cancel, sizeof(ps->chan_cancel));
	pg_schema_channel(ps->schema, "keys", ps->chan_keys, sizeof(ps->chan_keys));
	pg_schema_channel(ps->schema, "schema", ps->chan_schema, sizeof(ps->chan_schema));
	ps->setup_sql = pg_schema_setup_sql(ps->schema, ps->node);
	ps->stmts = pg_sql_new(ps->schema);
	if (!ps->setup_sql || !ps->stmts)
		goto nomem;
	pgq_init(ps);
	pg_give_back_init(ps);
	ps->writer = pgconn_new(loop, ps->url, "writer", ps->stmts, PGS_COUNT, &pgq_writer_hooks, ps);
	if (!ps->writer)
		goto nomem;
	return &ps->base;
nomem:
	snprintf(err, errlen, "out of memory");
	pg_free(ps ? &ps->base : NULL);
	return NULL;
}
