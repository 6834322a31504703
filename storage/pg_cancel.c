/*
 * pg_cancel.c - the PostgreSQL store cancels work this node does not hold
 * (store_ops.cancel): work still queued in the database, or work another
 * node runs.
 *
 * Theory of operation: one statement (PGS_CANCEL_JOB, _PIPELINE) cancels
 * what nobody holds, in the database, or NOTIFYs "<schema>_cancel" for the
 * node that holds it (pg_queue.c's writer_notify there hands it to that
 * node's core); then the object is read every PG_CANCEL_POLL_S until it is
 * final (answered 0 with it), for at most PG_CANCEL_WAIT_S (-ETIMEDOUT,
 * with it as it is). One that had finished before is -EALREADY; one that
 * does not exist, -ENOENT; a statement that fails, -EIO (the database
 * refused it) or -EAGAIN (the connection broke).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"
#include "pg_sql.h"

#define PG_CANCEL_POLL_S 0.05
#define PG_CANCEL_WAIT_S 10.0

struct pg_cancel {
	struct pg_store *ps;
	bool pipeline;
	uint8_t id[JOB_ID_LEN];
	store_done_fn cb;
	void *arg;
	ev_timer poll_w;
	int64_t deadline_ns;
};

static void cancel_poll(struct ev_loop *loop, ev_timer *w, int revents);

static void cancel_reply(struct pg_cancel *c, int err, struct job *job, struct pipeline *pl)
{
	struct store_reply r = {.err = err, .job = job, .pipeline = pl};

	ev_timer_stop(c->ps->loop, &c->poll_w);
	c->cb(c->arg, &r);
	free(c);
}

/* res: the object as it is now; outcome: what PGS_CANCEL_* did ("final":
 * it had finished before), or NULL for a poll. Answers, or polls again. */
static void cancel_answer(struct pg_cancel *c, const PGresult *res, const char *outcome)
{
	struct job *job = NULL;
	struct pipeline *pl = NULL;
	bool final;

	if (PQntuples(res) == 0) {
		cancel_reply(c, -ENOENT, NULL, NULL);
		return;
	}
	if (c->pipeline)
		pl = pg_row_pipeline(res, 0, 0);
	else
		job = pg_row_job(res, 0);
	if (!job && !pl) {
		cancel_reply(c, -ENOMEM, NULL, NULL);
		return;
	}
	final = job_status_final(c->pipeline ? pl->status : job->status);
	if (outcome && !strcmp(outcome, "final"))
		cancel_reply(c, -EALREADY, job, pl);
	else if (final)
		cancel_reply(c, 0, job, pl);
	else if (job_mono_ns() > c->deadline_ns)
		cancel_reply(c, -ETIMEDOUT, job, pl);
	else
		ev_timer_start(c->ps->loop, &c->poll_w); /* look again soon */
	job_unref(job);
	pipeline_unref(pl);
}

static void cancel_polled(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_cancel *c = arg;

	if (err)
		cancel_reply(c, err == -EIO ? -EIO : -EAGAIN, NULL, NULL);
	else
		cancel_answer(c, pg_batch_result(b, 0), NULL);
	pg_batch_free(b);
}

static void cancel_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_cancel *c = w->data;
	struct pg_batch *b = pg_batch_new(false, cancel_polled, c);
	int rc = !b;

	if (b)
		rc |= pg_batch_call(b, c->pipeline ? PGS_GET_PIPELINE : PGS_GET_JOB) |
		      pg_batch_uuid(b, c->id);
	if (!pgq_submit(c->ps->writer, b, rc))
		cancel_reply(c, -ENOMEM, NULL, NULL);
}

static void cancel_done(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_cancel *c = arg;

	if (err) {
		cancel_reply(c, err == -EIO ? -EIO : -EAGAIN, NULL, NULL);
	} else {
		const PGresult *res = pg_batch_result(b, 0);
		cancel_answer(c, pg_batch_result(b, 1), PQgetvalue(res, 0, 0));
	}
	pg_batch_free(b);
}

int pgq_cancel(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline, store_done_fn cb,
	       void *arg)
{
	struct pg_store *ps = pg_of(st);
	struct pg_cancel *c;
	struct pg_batch *b;
	int rc;

	if (!ps->registered || !pgconn_up(ps->writer))
		return -EAGAIN;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct pg_cancel){.ps = ps, .pipeline = pipeline, .cb = cb, .arg = arg};
	memcpy(c->id, id, JOB_ID_LEN);
	c->deadline_ns = job_mono_ns() + (int64_t)(PG_CANCEL_WAIT_S * 1e9);
	ev_timer_init(&c->poll_w, cancel_poll, PG_CANCEL_POLL_S, 0.);
	c->poll_w.data = c;
	b = pg_batch_new(false, cancel_done, c);
	rc = !b;
	if (b) {
		rc |= pg_batch_call(b, pipeline ? PGS_CANCEL_PIPELINE : PGS_CANCEL_JOB) |
		      pg_batch_uuid(b, id) | pg_batch_text(b, ps->chan_cancel);
		rc |= pg_batch_call(b, pipeline ? PGS_GET_PIPELINE : PGS_GET_JOB) |
		      pg_batch_uuid(b, id);
	}
	if (!pgq_submit(ps->writer, b, rc)) {
		free(c);
		return -ENOMEM;
	}
	return 0;
}
