/*
 * pg_write.c - the PostgreSQL store's write path: creates and changes,
 * group-committed - the batches, built, sent, answered and sent again.
 * pg_save.c records what is to be written (the dirty entries, the deferred
 * starts, the ops: the store ops that write); postgres.c has the reads and
 * the store's life, pg_queue.c the cluster (claims, the node),
 * pg_deadline.c the submit deadlines.
 *
 * Theory of operation
 *
 * Writes are group-committed. A create (job or pipeline) becomes an "op"
 * on the op list and is answered only after its transaction committed (the
 * API's 202 means "in the database"), or, when that takes longer than the
 * submit timeout, with -ETIMEDOUT, and then it never exists (the guard at
 * the end of every transaction with creates, and the withdrawal of what
 * may have been stored anyway: pg_deadline.c). A change of a job or pipeline the
 * core holds (save_job/save_pipeline) is recorded in the object's dirty
 * entry (struct pg_dirty, ours: the domain objects carry nothing of it): a
 * JOB_F_* mask of what changed and a reference to the object, found from
 * its id through an idmap and kept on a dirty list in the order of first
 * change - one entry per object however often it changes. The statement is
 * chosen from the object's state when the batch is built, so a job that
 * starts and ends between two flushes costs one statement; the final
 * states of a batch's jobs, when there are several, are one statement
 * for all (PGS_JOB_FINISH_MANY, after the batch's other job statements),
 * as each statement costs PostgreSQL a fixed price; so are the job
 * creates that follow each other in a batch (PGS_INSERT_JOB_MANY, in their
 * order, where the first of them was; a pipeline's stay a statement
 * each). Building the
 * batch takes the entry apart (its mask and reference go with the batch),
 * so a change made while the batch is in flight gets a new entry, written
 * by the next batch. Out of memory for an entry, the change is logged and
 * not written. Just before the loop sleeps (ev_prepare), what is pending
 * goes out as one transaction: creates first, then changes. A create or a
 * delete goes at once (a client waits for it); a state change waits for
 * company until PG_GATHER_S after the oldest waiting one was made, so
 * that many share one statement and one commit (a final-states statement
 * costs PostgreSQL ~0.2 ms however many rows it has, then ~0.03 ms a
 * row): the changes ride with a batch of creates only once they have
 * waited that long, or when a sync waits for them, there are
 * PG_GATHER_MAX of them, or the store closes. At most one batch is in
 * flight (PG_MAX_INFLIGHT); what arrives meanwhile waits for the next
 * one.
 * A job's start waits on pg_save.c's lazy list for 0.1 s first: a job
 * that ends before that is written once, with its final state.
 *   - The connection breaks mid-batch: everything goes back on the lists
 *     and is sent again after the reconnect (a create sent again inserts
 *     ON CONFLICT DO NOTHING - its first attempt, the common case, is a
 *     plain INSERT, cheaper -, and updates set absolute values or are
 *     fenced, so a batch that did commit is harmless to repeat), but for
 *     creates whose deadline passed.
 *   - The database refuses the batch for now - an SQLSTATE that says
 *     "not now" rather than "not this" (pg_sqlstate_transient: read-only,
 *     e.g. a demoted primary after a failover; disk full; a statement
 *     timeout; shutting down; a deadlock...): nothing of it committed, and
 *     it is kept exactly as for a broken connection - the changes go back
 *     on the lists and are sent again after a backoff (retry_w: 100 ms
 *     doubling to 5 s, with jitter), as often as it takes; nothing accepted
 *     is dropped. Only those waiting for an answer are answered now, with
 *     -EAGAIN ("storage unavailable"): a create never stored (its
 *     transaction did not commit, so it never exists), a delete, a sync
 *     (the change it waits for is held). A create an earlier attempt may
 *     have stored goes again, answered at its deadline. Until a write (or
 *     a renewal of the lease) works again the store says it is unhealthy,
 *     so the core refuses new work with 503 rather than piling it up.
 *   - A statement fails for good (bad data, a constraint, a programming
 *     error): the batch's entries are sent again one per
 *     transaction (each create its own PGS_INSERT_JOB; a sync waits behind
 *     the changes, which are what it waits for), so only the bad one
 *     fails: a create is answered with the
 *     error; a final status whose result jsonb refuses is written again
 *     without the result and with a reason that says so; anything else is
 *     logged (ERROR, with its SQLSTATE) and dropped.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "../supervisor/log.h"
#include "pg_internal.h"
#include "pg_sql.h"

#define PG_GATHER_S 0.020     /* a state change waits up to this long for company */
#define PG_GATHER_MAX 256
#define PG_MAX_INFLIGHT 1       /* write batches in flight */
#define PG_MAX_ENTRIES 512      /* entries per write batch */
#define PG_RETRY_MIN_MS 100     /* backoff after a refusal for now ... */
#define PG_RETRY_MAX_MS 5000    /* ... doubling up to this */

void pg_kick(struct pg_store *ps)
{
	if (!ev_is_active(&ps->flush_w))
		ev_prepare_start(ps->loop, &ps->flush_w);
}


/* ---- the write path ----------------------------------------------------------------- */

enum pg_entry_kind { ENT_OP, ENT_JOB, ENT_PL, ENT_NONE };

struct pg_entry {
	enum pg_entry_kind kind;
	void *p;          /* struct pg_op *, or a job / pipeline reference */
	unsigned mask;    /* ENT_JOB/ENT_PL: what was dirty */
	size_t call;      /* ENT_OP: the index of its (first) call */
};

struct pg_flush {
	struct pg_store *ps;
	int64_t guard_us; /* the earliest guard of its creates (pg_deadline.c), or 0 */
	size_t n;
	struct pg_entry e[];
};

static int64_t due_of(const struct job *job)
{
	return job->run_at ? job->run_at : job->created_at;
}

/* A batch's job creates in a row, gathered for one statement
 * (PGS_INSERT_JOB_MANY): rows holds a PGS_INSERT_JOB call for each (never
 * sent), first is the first one's op; all are first attempts, or all not. */
struct pg_creates {
	bool on;               /* false: each create on its own (one part at a time) */
	struct pg_batch *rows; /* NULL: none gathered */
	struct pg_op *first;
};

static int insert_job(struct pg_store *ps, struct pg_batch *b, const struct pg_op *op)
{
	return pg_add_insert_job(b, op->job, op->claim ? ps->node : NULL, due_of(op->job),
				 op->maybe_stored);
}

/* The gathered creates into b: one alone as PGS_INSERT_JOB, several as one
 * statement; cr is empty again. */
static int add_creates(struct pg_store *ps, struct pg_batch *b, struct pg_creates *cr)
{
	size_t n = cr->rows ? pg_batch_ncalls(cr->rows) : 0;
	int rc = 0;

	if (n == 1)
		rc = insert_job(ps, b, cr->first);
	else if (n > 1)
		rc = pg_add_insert_job_many(b, cr->rows, cr->first->maybe_stored);
	pg_batch_free(cr->rows);
	cr->rows = NULL;
	cr->first = NULL;
	return rc;
}

/* A job create: gathered in cr, or (cr off) a statement of its own. */
static int create_job(struct pg_store *ps, struct pg_batch *b, struct pg_creates *cr,
		      struct pg_op *op)
{
	int rc = 0;

	if (!cr->on)
		return insert_job(ps, b, op);
	if (cr->first && cr->first->maybe_stored != op->maybe_stored)
		rc = add_creates(ps, b, cr);
	if (!cr->rows) {
		cr->rows = pg_batch_new(false, NULL, NULL);
		cr->first = op;
	}
	return rc || !cr->rows ? -ENOMEM : insert_job(ps, cr->rows, op);
}

/* The calls of one op (a job create: gathered in cr); *notify_due: earliest
 * due time of unclaimed work; *guard: the earliest guard time of the
 * creates (pg_deadline.c). */
static int add_op(struct pg_store *ps, struct pg_batch *b, struct pg_creates *cr,
		  struct pg_op *op, int64_t *notify_due, int64_t *guard)
{
	const char *claim = op->claim ? ps->node : NULL;
	int rc = 0;

	pgd_sent(op);
	if (op->deleting) /* a withdrawn create that may have been stored */
		return op->kind == OP_CREATE_JOB
			   ? pg_batch_call(b, PGS_DELETE_JOB) | pg_batch_uuid(b, op->job->id)
			   : pg_batch_call(b, PGS_DELETE_PIPELINE) | pg_batch_uuid(b, op->pl->id);
	if ((op->kind == OP_CREATE_JOB || op->kind == OP_CREATE_PIPELINE) &&
	    (!*guard || op->guard_us < *guard))
		*guard = op->guard_us;
	switch (op->kind) {
	case OP_CREATE_JOB:
		rc = create_job(ps, b, cr, op);
		if (!op->claim && (!*notify_due || due_of(op->job) < *notify_due))
			*notify_due = due_of(op->job);
		return rc;
	case OP_CREATE_PIPELINE:
		rc = pg_add_insert_pipeline(b, op->pl, claim, op->maybe_stored);
		for (size_t i = 0; i < op->pl->njobs && !rc; i++) {
			struct job *job = op->pl->jobs[i];
			rc = pg_add_insert_job(b, job, claim, i == 0 ? due_of(job) : 0,
					       op->maybe_stored);
		}
		if (!op->claim && (!*notify_due || due_of(op->pl->jobs[0]) < *notify_due))
			*notify_due = due_of(op->pl->jobs[0]);
		return rc;
	case OP_DELETE_JOB:
	case OP_DELETE_RESULT:
	case OP_DELETE_PIPELINE:
		rc = pg_batch_call(b, op->kind == OP_DELETE_JOB	     ? PGS_DELETE_JOB
				      : op->kind == OP_DELETE_RESULT ? PGS_DELETE_RESULT
								     : PGS_DELETE_PIPELINE);
		return rc | pg_batch_uuid(b, op->id);
	case OP_SYNC:
		return 0; /* answered with the batch's commit */
	}
	return -EINVAL;
}

/* A batch's final states, gathered for one statement (PGS_JOB_FINISH_MANY):
 * rows holds a PGS_JOB_FINISH call for each, first is the first job. */
struct pg_finishes {
	struct pg_batch *rows; /* never sent; NULL: each final state on its own */
	struct job *first;
};

static int add_job(struct pg_store *ps, struct pg_batch *b, struct pg_finishes *fin,
		   struct job *job, unsigned mask)
{
	bool final = job_status_final(job->status);
	int rc = 0;

	if ((mask & JOB_F_RETRY) && job->status == JOB_PENDING) {
		/* The failed attempt, with its outcome (a later start, if
		 * coalesced with it, would lose that record: backoff > 0). */
		rc |= pg_add_job_retry(b, job, ps->node);
		mask &= ~(JOB_F_STATUS | JOB_F_OUTCOME);
	} else if ((mask & JOB_F_STATUS) && final && fin->rows && !(mask & PG_F_NORESULT)) {
		/* Written after the batch's other job statements (which touch
		 * other jobs, or this one's name and description only). */
		rc |= pg_add_job_finish(fin->rows, job, ps->node, false);
		if (!fin->first)
			fin->first = job;
		mask &= ~JOB_F_OUTCOME;
	} else if ((mask & JOB_F_STATUS) && final) {
		rc |= pg_add_job_finish(b, job, ps->node, mask & PG_F_NORESULT);
		mask &= ~JOB_F_OUTCOME;
	} else if (mask & JOB_F_STATUS) {
		rc |= pg_add_job_status(b, job, ps->node);
	}
	if (mask & JOB_F_OUTCOME)
		rc |= pg_add_job_outcome(b, job, ps->node);
	if (mask & JOB_F_META)
		rc |= pg_add_job_meta(b, job);
	return rc;
}

/* A pipeline's status (fenced by its claim) and/or its name and
 * description (a PATCH, from whichever node). */
static int add_pipeline(struct pg_store *ps, struct pg_batch *b, struct pipeline *pl, unsigned mask)
{
	int rc = 0;

	if (mask & JOB_F_STATUS)
		rc |= pg_add_pipeline(b, pl, ps->node);
	if (mask & JOB_F_META)
		rc |= pg_add_pipeline_meta(b, pl);
	return rc;
}

void pg_op_reply(struct pg_op *op, int err, bool claimed)
{
	struct store_reply r = {.err = err, .job = op->job, .pipeline = op->pl,
				.claimed = claimed};
	store_done_fn cb = op->cb;

	op->cb = NULL;
	if (cb)
		cb(op->arg, &r);
}

void pg_op_free(struct pg_op *op)
{
	struct pg_store *ps = op->ps;

	if (op->kind == OP_CREATE_JOB || op->kind == OP_CREATE_PIPELINE)
		ev_timer_stop(ps->loop, &op->deadline_w);
	if (op->wlisted)
		TAILQ_REMOVE(&ps->withdrawn, op, wlink);
	job_unref(op->job);
	pipeline_unref(op->pl);
	free(op);
}

static void op_answer(struct pg_op *op, int err, bool claimed)
{
	pg_op_reply(op, err, claimed);
	pg_op_free(op);
}

/* An op's attempt ended without an answer for it: back on the list (at
 * the head, so that it keeps its place), unless its deadline says it is
 * done with (pg_deadline.c). */
static void op_again(struct pg_store *ps, struct pg_op *op, enum pgd_end end)
{
	if (pgd_after(ps, op, end) != PGD_DONE)
		TAILQ_INSERT_HEAD(&ps->ops, op, link);
}

static void flush_done(struct pg_batch *b, int err, const char *msg, void *arg);
static void flush_now(struct pg_store *ps);

/* The gathered final states: one alone as PGS_JOB_FINISH (what a batch
 * retried one part at a time sends, too), several as one statement. */
static int add_finishes(struct pg_store *ps, struct pg_batch *b, struct pg_finishes *fin)
{
	size_t n = fin->rows ? pg_batch_ncalls(fin->rows) : 0;

	if (n == 1)
		return pg_add_job_finish(b, fin->first, ps->node, false);
	return n ? pg_add_job_finish_many(b, fin->rows, ps->node) : 0;
}

/* The dirty jobs' calls, up to max entries in f in all (*n so far). A
 * dirty entry's reference and mask go with the batch. */
static int add_dirty_jobs(struct pg_store *ps, struct pg_batch *b, struct pg_flush *f, size_t *n,
			  size_t max)
{
	struct pg_finishes fin = {max > 1 ? pg_batch_new(false, NULL, NULL) : NULL, NULL};
	int rc = 0;

	while (*n < max && !TAILQ_EMPTY(&ps->dirty_jobs) && !rc) {
		struct pg_dirty *d = TAILQ_FIRST(&ps->dirty_jobs);
		struct job *job = d->obj;
		TAILQ_REMOVE(&ps->dirty_jobs, d, link);
		ps->ndirty--;
		f->e[(*n)++] = (struct pg_entry){ENT_JOB, job, d->mask, 0};
		pg_dirty_free(ps->dirty_job_map, d, job->id);
		rc = add_job(ps, b, &fin, job, f->e[*n - 1].mask);
	}
	if (!rc)
		rc = add_finishes(ps, b, &fin);
	pg_batch_free(fin.rows);
	return rc;
}

/* Whether the state changes wait for company (see the top): a batch sent
 * for its ops leaves them for a later one. Not while work waits to be
 * given back (pg_giveback.c): it waits for every change to be written. */
static bool gathering(const struct pg_store *ps)
{
	return ps->ndirty < PG_GATHER_MAX && !ps->closing && !ps->ngive_back &&
	       ev_now(ps->loop) - ps->dirty_since < PG_GATHER_S;
}

/* Build and send one transaction of what is pending. */
static void flush(struct pg_store *ps)
{
	size_t max = ps->solo ? 1 : PG_MAX_ENTRIES, n = 0;
	struct pg_flush *f = malloc(sizeof(*f) + max * sizeof(struct pg_entry));
	struct pg_batch *b = pg_batch_new(true, flush_done, f);
	int64_t notify_due = 0, guard = 0, now = job_now_us();
	struct pg_creates cr = {.on = max > 1};
	bool sync = false, changes;
	char payload[32];
	int rc = 0;

	if (!f || !b)
		goto fail;
	f->ps = ps;
	while (n < max && !TAILQ_EMPTY(&ps->ops) && !rc) {
		struct pg_op *op = TAILQ_FIRST(&ps->ops);
		/* One part at a time (after a failed batch), a sync would take
		 * the only place and go back (below) while the changes it waits
		 * for never went: they go first. */
		if (op->kind == OP_SYNC && max == 1 &&
		    (!TAILQ_EMPTY(&ps->dirty_jobs) || !TAILQ_EMPTY(&ps->dirty_pls)))
			break;
		TAILQ_REMOVE(&ps->ops, op, link);
		if (pgd_too_late(ps, op, now))
			continue;
		sync |= op->kind == OP_SYNC;
		/* Gathered creates go before anything else, whose place (call)
		 * is counted after them. */
		if (op->kind != OP_CREATE_JOB || op->deleting)
			rc = add_creates(ps, b, &cr);
		f->e[n++] = (struct pg_entry){ENT_OP, op, 0, pg_batch_ncalls(b)};
		rc |= add_op(ps, b, &cr, op, &notify_due, &guard);
	}
	rc |= add_creates(ps, b, &cr);
	/* The changes, unless they gather still and this batch goes for its
	 * ops (with none, it goes because they waited long enough). */
	changes = max == 1 || n == 0 || sync || !gathering(ps);
	if (!rc && changes)
		rc = add_dirty_jobs(ps, b, f, &n, max);
	while (changes && n < max && !TAILQ_EMPTY(&ps->dirty_pls) && !rc) {
		struct pg_dirty *d = TAILQ_FIRST(&ps->dirty_pls);
		struct pipeline *pl = d->obj;
		TAILQ_REMOVE(&ps->dirty_pls, d, link);
		ps->ndirty--;
		f->e[n++] = (struct pg_entry){ENT_PL, pl, d->mask, 0};
		pg_dirty_free(ps->dirty_pl_map, d, pl->id);
		rc = add_pipeline(ps, b, pl, f->e[n - 1].mask);
	}
	f->n = n;
	/* A sync is answered only once every change made before it is
	 * committed: with changes left for a later batch, it waits for that. */
	for (size_t i = n; i-- > 0;) {
		struct pg_op *op = f->e[i].p;
		if (f->e[i].kind == ENT_OP && op->kind == OP_SYNC &&
		    (!TAILQ_EMPTY(&ps->dirty_jobs) || !TAILQ_EMPTY(&ps->dirty_pls))) {
			TAILQ_INSERT_HEAD(&ps->ops, op, link);
			f->e[i].kind = ENT_NONE;
		}
	}
	/* Last: a transaction with creates commits only before their guard;
	 * the NOTIFY of unclaimed work (there are creates) is the same
	 * statement, one less. */
	f->guard_us = guard;
	if (notify_due && !rc) {
		snprintf(payload, sizeof(payload), "%lld", (long long)notify_due);
		rc = pg_batch_call(b, guard ? PGS_NOTIFY_GUARD : PGS_NOTIFY) |
		     pg_batch_text(b, ps->chan_jobs) | pg_batch_text(b, payload);
		if (guard)
			rc |= pg_batch_time(b, guard);
	} else if (guard && !rc) {
		rc = pg_batch_call(b, PGS_SUBMIT_GUARD) | pg_batch_time(b, guard);
	}
	if (!rc && pg_batch_ncalls(b) == 0) {
		/* Only syncs, and nothing in flight: all is committed already. */
		for (size_t i = 0; i < n; i++)
			if (f->e[i].kind == ENT_OP)
				op_answer(f->e[i].p, 0, false);
		free(f);
		pg_batch_free(b);
		return;
	}
	if (rc || pgconn_submit(ps->writer, b) < 0) {
		/* Out of memory: put everything back and try at the next pass. */
		pg_batch_free(b);
		flush_done(NULL, -EPIPE, "out of memory", f);
		return;
	}
	ps->flight = f;
	if (ps->solo)
		ps->solo--;
	ps->inflight++;
	metrics_hist_observe(&ps->commit_batch, (double)n);
	return;
fail:
	free(f);
	pg_batch_free(b);
}

/* Put the batch's entries back, in their order, ahead of newer work; end:
 * how the batch ended, for the creates' deadlines. */
static void requeue(struct pg_store *ps, struct pg_flush *f, unsigned extra, enum pgd_end end)
{
	for (size_t i = f->n; i-- > 0;) {
		struct pg_entry *e = &f->e[i];
		if (e->kind == ENT_OP) {
			op_again(ps, e->p, end);
		} else if (e->kind == ENT_JOB) {
			pg_mark_job(ps, e->p, e->mask | extra, true);
			job_unref(e->p);
		} else if (e->kind == ENT_PL) {
			pg_mark_pl(ps, e->p, e->mask, true);
			pipeline_unref(e->p);
		}
	}
}

static void entry_failed(struct pg_store *ps, struct pg_entry *e, const char *code,
			 const char *msg)
{
	char id[JOB_ID_STRLEN + 1];

	if (e->kind == ENT_NONE)
		return;
	if (e->kind == ENT_OP) {
		log_error("PostgreSQL refused a write", "sqlstate", code, "error", msg);
		switch (pgd_after(ps, e->p, PGD_REFUSED)) {
		case PGD_ON:
			op_answer(e->p, -EIO, false);
			break;
		case PGD_BACK:
			TAILQ_INSERT_HEAD(&ps->ops, (struct pg_op *)e->p, link);
			break;
		case PGD_DONE:
			break;
		}
		return;
	}
	if (e->kind == ENT_JOB) {
		struct job *job = e->p;
		job_id_format(job->id, id);
		if (job_status_final(job->status) && (e->mask & JOB_F_STATUS) &&
		    job->has_result && !(e->mask & PG_F_NORESULT)) {
			log_error("PostgreSQL refused a job's result; storing the status without it",
				  "job_id", id, "sqlstate", code, "error", msg);
			pg_mark_job(ps, job, e->mask | PG_F_NORESULT, true);
			ps->solo++;
		} else {
			log_error("PostgreSQL refused a job's change; dropped", "job_id", id,
				  "sqlstate", code, "error", msg);
		}
		job_unref(job);
		return;
	}
	job_id_format(((struct pipeline *)e->p)->id, id);
	log_error("PostgreSQL refused a pipeline's change; dropped", "pipeline_id", id,
		  "sqlstate", code, "error", msg);
	pipeline_unref(e->p);
}

/* The delay before the next attempt after a refusal for now: 100 ms
 * doubling to 5 s, each picked at random in [d/2, d], as pgconn.c's
 * reconnects. */
static double retry_delay(struct pg_store *ps)
{
	int ms = ps->retry_ms ? ps->retry_ms : PG_RETRY_MIN_MS;

	ps->rng ^= ps->rng << 13;
	ps->rng ^= ps->rng >> 7;
	ps->rng ^= ps->rng << 17;
	ps->retry_ms = ms * 2 > PG_RETRY_MAX_MS ? PG_RETRY_MAX_MS : ms * 2;
	return (ms / 2 + (double)(ps->rng % (uint64_t)(ms / 2 + 1))) / 1000.0;
}

/* An op of a batch refused for now (nothing committed): answered
 * -EAGAIN when that is the truth, else sent again. */
static void op_refused_for_now(struct pg_store *ps, struct pg_op *op)
{
	bool create = op->kind == OP_CREATE_JOB || op->kind == OP_CREATE_PIPELINE;
	bool answer = !create || !op->maybe_stored;

	switch (pgd_after(ps, op, PGD_ROLLED_BACK)) {
	case PGD_DONE:
		break;
	case PGD_BACK:
		TAILQ_INSERT_HEAD(&ps->ops, op, link);
		break;
	case PGD_ON:
		if (answer)
			op_answer(op, -EAGAIN, false);
		else
			TAILQ_INSERT_HEAD(&ps->ops, op, link);
		break;
	}
}

/* The database refused the batch for now (a transient SQLSTATE): keep
 * every change, in its order, and try again after the backoff. */
static void refused_for_now(struct pg_store *ps, struct pg_flush *f, const char *code,
			    const char *msg)
{
	log_msg(ps->write_failing ? LOG_DEBUG : LOG_WARN,
		"PostgreSQL cannot take writes for now; keeping them and retrying", "sqlstate",
		code, "error", msg, (const char *)NULL);
	ps->write_failing = true;
	for (size_t i = f->n; i-- > 0;) {
		struct pg_entry *e = &f->e[i];
		if (e->kind == ENT_OP) {
			op_refused_for_now(ps, e->p);
		} else if (e->kind == ENT_JOB) {
			pg_mark_job(ps, e->p, e->mask, true);
			job_unref(e->p);
		} else if (e->kind == ENT_PL) {
			pg_mark_pl(ps, e->p, e->mask, true);
			pipeline_unref(e->p);
		}
	}
	ev_timer_stop(ps->loop, &ps->retry_w);
	ev_timer_set(&ps->retry_w, retry_delay(ps), 0.);
	ev_timer_start(ps->loop, &ps->retry_w);
}

void pg_write_ok(struct pg_store *ps)
{
	ps->retry_ms = 0;
	if (!ps->write_failing)
		return;
	ps->write_failing = false;
	log_info("PostgreSQL takes writes again");
}

void pg_write_retry_now(struct pg_store *ps)
{
	ev_timer_stop(ps->loop, &ps->retry_w);
	pg_kick(ps);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	pg_kick(w->data);
}

static void flush_done(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_flush *f = arg;
	struct pg_store *ps = f->ps;

	if (b) {
		ps->inflight--;
		ps->flight = NULL;
	}
	if (err == -ECANCELED) {
		/* The store is going away: answer what waits, drop the rest. */
		for (size_t i = 0; i < f->n; i++) {
			struct pg_entry *e = &f->e[i];
			if (e->kind == ENT_OP && pgd_after(ps, e->p, PGD_CLOSED) == PGD_ON)
				op_answer(e->p, -EAGAIN, false);
			else if (e->kind == ENT_JOB)
				job_unref(e->p);
			else if (e->kind == ENT_PL)
				pipeline_unref(e->p);
		}
	} else if (err == -EPIPE) {
		/* Sent (b): it may have committed. Not sent (out of memory): not. */
		requeue(ps, f, 0, b ? PGD_UNKNOWN : PGD_ROLLED_BACK);
	} else if (err == -EIO && msg && strstr(msg, PG_SUBMIT_GUARD_TEXT)) {
		/* Nothing committed; the creates whose guard it was are withdrawn,
		 * the rest goes again as it was. */
		log_warn("PostgreSQL reached a submit's guard after its time; withdrawing it, "
			 "writing the rest again");
		for (size_t i = 0; i < f->n; i++) {
			struct pg_op *op = f->e[i].p;
			if (f->e[i].kind == ENT_OP && !op->deleting &&
			    (op->kind == OP_CREATE_JOB || op->kind == OP_CREATE_PIPELINE) &&
			    op->guard_us <= f->guard_us)
				pgd_guard_failed(ps, op);
		}
		requeue(ps, f, 0, PGD_ROLLED_BACK);
	} else if (err == -EIO && b && pg_sqlstate_transient(pg_batch_sqlstate(b))) {
		refused_for_now(ps, f, pg_batch_sqlstate(b), msg);
	} else if (err == -EIO && f->n > 1) {
		log_warn("a PostgreSQL write batch failed; retrying its parts one by one", "error",
			 msg);
		ps->solo += f->n;
		requeue(ps, f, 0, PGD_ROLLED_BACK);
	} else if (err) {
		if (f->n == 1)
			entry_failed(ps, &f->e[0], b ? pg_batch_sqlstate(b) : "", msg);
	} else {
		pg_write_ok(ps);
		pg_spill_settled(ps);
		for (size_t i = 0; i < f->n; i++) {
			struct pg_entry *e = &f->e[i];
			if (e->kind == ENT_OP) {
				struct pg_op *op = e->p;
				bool found = op->kind < OP_DELETE_JOB || op->kind == OP_SYNC ||
					     PQntuples(pg_batch_result(b, e->call)) > 0;
				enum pgd_next next = pgd_after(ps, op, PGD_COMMITTED);
				if (next == PGD_BACK)
					TAILQ_INSERT_HEAD(&ps->ops, op, link);
				else if (next == PGD_ON)
					op_answer(op, found ? 0 : -ENOENT, op->claim);
			} else if (e->kind == ENT_JOB) {
				job_unref(e->p);
			} else if (e->kind == ENT_PL) {
				pipeline_unref(e->p);
			}
		}
	}
	free(f);
	pg_batch_free(b);
	pg_kick(ps);
	pgq_release_maybe(ps);
	pg_give_back_maybe(ps);
	pgq_close_maybe(ps);
}

/* The calls of one group of changes (the batch in flight's, or what
 * waits on a list): jobs, their final states in one statement, pipelines. */
static int add_unsent(struct pg_store *ps, struct pg_batch *b, const struct pg_entry *e, size_t n)
{
	struct pg_finishes fin = {pg_batch_new(false, NULL, NULL), NULL};
	int rc = fin.rows ? 0 : -ENOMEM;

	for (size_t i = 0; i < n && !rc; i++)
		if (e[i].kind == ENT_JOB)
			rc = add_job(ps, b, &fin, e[i].p, e[i].mask);
	if (!rc)
		rc = add_finishes(ps, b, &fin);
	for (size_t i = 0; i < n && !rc; i++)
		if (e[i].kind == ENT_PL)
			rc = add_pipeline(ps, b, e[i].p, e[i].mask);
	pg_batch_free(fin.rows);
	return rc;
}

/* A list's entries as a batch's entries (borrowed references). */
static void list_entries(struct pg_dirty_list *list, enum pg_entry_kind kind, struct pg_entry *e,
			 size_t *n)
{
	struct pg_dirty *d;

	TAILQ_FOREACH(d, list, link)
		e[(*n)++] = (struct pg_entry){kind, d->obj, d->mask, 0};
}

int pg_write_unsent(struct pg_store *ps, struct pg_batch *b)
{
	size_t lazy = 0, n = 0;
	struct pg_entry *e;
	struct pg_dirty *d;
	int rc = 0;

	TAILQ_FOREACH(d, &ps->lazy_jobs, link)
		lazy++;
	e = calloc(ps->ndirty + lazy + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* In flight first (it may not have committed), then what changed since. */
	if (ps->flight)
		rc = add_unsent(ps, b, ps->flight->e, ps->flight->n);
	list_entries(&ps->lazy_jobs, ENT_JOB, e, &n);
	list_entries(&ps->dirty_jobs, ENT_JOB, e, &n);
	list_entries(&ps->dirty_pls, ENT_PL, e, &n);
	if (!rc)
		rc = add_unsent(ps, b, e, n);
	if (!rc)
		for (size_t i = 0; ps->flight && i < ps->flight->n; i++)
			n += ps->flight->e[i].kind == ENT_JOB || ps->flight->e[i].kind == ENT_PL;
	free(e);
	return rc ? -ENOMEM : (int)n;
}

/* Something to send now (the lazy list waits for its timer). */
static bool sendable(const struct pg_store *ps)
{
	return !TAILQ_EMPTY(&ps->ops) || !TAILQ_EMPTY(&ps->dirty_jobs) ||
	       !TAILQ_EMPTY(&ps->dirty_pls);
}

bool pg_write_pending(const struct pg_store *ps)
{
	return !TAILQ_EMPTY(&ps->ops) || !TAILQ_EMPTY(&ps->dirty_jobs) ||
	       !TAILQ_EMPTY(&ps->dirty_pls) || !TAILQ_EMPTY(&ps->lazy_jobs);
}

static void flush_now(struct pg_store *ps)
{
	while (sendable(ps) && ps->inflight < PG_MAX_INFLIGHT) {
		unsigned before = ps->inflight;
		flush(ps);
		if (ps->inflight == before)
			break;
	}
}

static void on_gather(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;

	if (ps->registered && pgconn_up(ps->writer) && !ps->inflight &&
	    !ev_is_active(&ps->retry_w))
		flush_now(ps);
}

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct pg_store *ps = w->data;

	ev_prepare_stop(loop, w);
	if (!ps->registered || !pgconn_up(ps->writer) || ps->inflight || !sendable(ps) ||
	    ev_is_active(&ps->retry_w))
		return; /* flushed again once the writer is (back) up / the batch is done /
			 * the retry delay is over */
	/* A create or delete waits for nobody (a client waits for it); state
	 * changes gather (see the top), and go when the oldest has waited
	 * PG_GATHER_S. */
	if (!TAILQ_EMPTY(&ps->ops) || !gathering(ps)) {
		ev_timer_stop(loop, &ps->gather_w);
		flush_now(ps);
	} else if (!ev_is_active(&ps->gather_w)) {
		ev_timer_set(&ps->gather_w, ps->dirty_since + PG_GATHER_S - ev_now(loop), 0.);
		ev_timer_start(loop, &ps->gather_w);
	}
}

/* ---- the write path's life ---------------------------------------------------------------- */

int pg_write_init(struct pg_store *ps)
{
	TAILQ_INIT(&ps->ops);
	TAILQ_INIT(&ps->dirty_jobs);
	TAILQ_INIT(&ps->dirty_pls);
	TAILQ_INIT(&ps->lazy_jobs);
	ps->dirty_job_map = idmap_new_indirect(offsetof(struct job, id));
	ps->dirty_pl_map = idmap_new_indirect(offsetof(struct pipeline, id));
	metrics_hist_init(&ps->commit_batch, metrics_buckets_batch, metrics_nbuckets_batch);
	pg_lazy_init(ps);
	ev_timer_init(&ps->gather_w, on_gather, PG_GATHER_S, 0.);
	ps->gather_w.data = ps;
	ev_prepare_init(&ps->flush_w, on_flush);
	ps->flush_w.data = ps;
	ev_timer_init(&ps->retry_w, on_retry, 1., 0.);
	ps->retry_w.data = ps;
	ps->rng = (uint64_t)(uintptr_t)ps ^ (uint64_t)(ev_time() * 1e6) ^ 0x9e3779b97f4a7c15ull;
	return ps->dirty_job_map && ps->dirty_pl_map ? 0 : -ENOMEM;
}

void pg_write_stop(struct pg_store *ps)
{
	ev_prepare_stop(ps->loop, &ps->flush_w);
	ev_timer_stop(ps->loop, &ps->gather_w);
	ev_timer_stop(ps->loop, &ps->retry_w);
}

void pg_write_free(struct pg_store *ps)
{
	struct pg_dirty_list *lists[] = {&ps->lazy_jobs, &ps->dirty_jobs, &ps->dirty_pls};
	struct pg_dirty *d;

	/* The cancelled batches' ends kicked the flush again. */
	ev_prepare_stop(ps->loop, &ps->flush_w);
	while (!TAILQ_EMPTY(&ps->ops)) {
		struct pg_op *op = TAILQ_FIRST(&ps->ops);
		TAILQ_REMOVE(&ps->ops, op, link);
		if (pgd_after(ps, op, PGD_CLOSED) == PGD_ON)
			op_answer(op, -EAGAIN, false);
	}
	ev_timer_stop(ps->loop, &ps->lazy_w);
	/* Unsaved changes are dropped with their references; the maps go
	 * after the entries (freeing a map reads none of them). */
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		while ((d = TAILQ_FIRST(lists[i]))) {
			TAILQ_REMOVE(lists[i], d, link);
			if (lists[i] == &ps->dirty_pls)
				pipeline_unref(d->obj);
			else
				job_unref(d->obj);
			free(d);
		}
	}
	idmap_free(ps->dirty_job_map);
	idmap_free(ps->dirty_pl_map);
}
