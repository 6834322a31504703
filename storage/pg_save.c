/*
 * pg_save.c - what the PostgreSQL store is to write, recorded: the store
 * ops that write (postgres.c's pg_ops) become ops on the op list (creates,
 * deletes, syncs) or marks in an object's dirty entry (changes), which
 * pg_write.c's batches take apart.
 *
 * Theory of operation: see pg_write.c for group commit. A change of a job
 * or pipeline is a JOB_F_* mask in the object's dirty entry, found from
 * its id through an idmap, on a dirty list in the order of first change
 * (pg_mark_job, pg_mark_pl; a batch sent again puts its entries back at
 * the head). Out of memory for an entry, the change is logged and not
 * written.
 * A job's start (IN_PROGRESS) and SCHEDULED mark are deferred by
 * PG_LAZY_S (the lazy list, in the order of the marks, each with its time;
 * one timer for the oldest, at most every PG_LAZY_TICK_S, so a start waits
 * 0.1 to 0.12 s): a job that ends before that is written once,
 * with its final state. The price: a node that dies within PG_LAZY_S of
 * starting a job leaves it PENDING in the database, so it runs again.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "../supervisor/log.h"
#include "pg_internal.h"

#define PG_LAZY_S 0.1
#define PG_LAZY_TICK_S 0.02 /* lazy starts are written at most this often */

/* ---- dirty entries -------------------------------------------------------- */

/* A new entry for obj in map (the caller takes the reference and links
 * it), or NULL on ENOMEM. */
static struct pg_dirty *dirty_new(struct idmap *map, void *obj, const uint8_t id[JOB_ID_LEN])
{
	struct pg_dirty *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->obj = obj; /* before idmap_put, which reads the id through it */
	if (idmap_put(map, id, d) < 0) {
		free(d);
		return NULL;
	}
	return d;
}

/* Removes an unlinked entry from map and frees it; the reference it held
 * is the caller's now. */
void pg_dirty_free(struct idmap *map, struct pg_dirty *d, const uint8_t id[JOB_ID_LEN])
{
	idmap_del(map, id);
	free(d);
}

static void dirty_lost(const char *what, const char *key, const uint8_t id[JOB_ID_LEN])
{
	char s[JOB_ID_STRLEN + 1];

	job_id_format(id, s);
	log_error(what, key, s, "error", "out of memory");
}

/* One more entry on a dirty list: the first starts the gathering's clock
 * (pg_write.c). */
static void dirty_added(struct pg_store *ps)
{
	if (ps->ndirty++ == 0)
		ps->dirty_since = ev_now(ps->loop);
}

void pg_mark_job(struct pg_store *ps, struct job *job, unsigned mask, bool head)
{
	struct pg_dirty *d = idmap_get(ps->dirty_job_map, job->id);

	if (!d) {
		d = dirty_new(ps->dirty_job_map, job, job->id);
		if (!d) {
			dirty_lost("a job's change is not saved", "job_id", job->id);
			return;
		}
		job_ref(job);
		if (head)
			TAILQ_INSERT_HEAD(&ps->dirty_jobs, d, link);
		else
			TAILQ_INSERT_TAIL(&ps->dirty_jobs, d, link);
		dirty_added(ps);
	}
	d->mask |= mask;
	pg_spill_watch(ps);
}

void pg_mark_pl(struct pg_store *ps, struct pipeline *pl, unsigned mask, bool head)
{
	struct pg_dirty *d = idmap_get(ps->dirty_pl_map, pl->id);

	if (!d) {
		d = dirty_new(ps->dirty_pl_map, pl, pl->id);
		if (!d) {
			dirty_lost("a pipeline's change is not saved", "pipeline_id", pl->id);
			return;
		}
		pipeline_ref(pl);
		if (head)
			TAILQ_INSERT_HEAD(&ps->dirty_pls, d, link);
		else
			TAILQ_INSERT_TAIL(&ps->dirty_pls, d, link);
		dirty_added(ps);
	}
	d->mask |= mask;
	pg_spill_watch(ps);
}

/* ---- ops ------------------------------------------------------------------ */

static int queue_op(struct pg_store *ps, enum pg_op_kind kind, struct job *job,
		    struct pipeline *pl, const uint8_t *id, bool claim, store_done_fn cb,
		    void *arg)
{
	struct pg_op *op;

	if (!ps->registered || !pgconn_up(ps->writer) || ps->closing)
		return -EAGAIN;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->ps = ps;
	op->kind = kind;
	op->job = job ? job_ref(job) : NULL;
	op->pl = pl ? pipeline_ref(pl) : NULL;
	if (id)
		memcpy(op->id, id, JOB_ID_LEN);
	op->claim = claim && ps->hooks;
	op->cb = cb;
	op->arg = arg;
	if (kind == OP_CREATE_JOB || kind == OP_CREATE_PIPELINE)
		pgd_arm(ps, op);
	TAILQ_INSERT_TAIL(&ps->ops, op, link);
	pg_kick(ps);
	return 0;
}

int pg_create_job(struct store *st, struct job *job, unsigned flags, store_done_fn cb,
			 void *arg)
{
	return queue_op(pg_of(st), OP_CREATE_JOB, job, NULL, NULL, flags & STORE_CLAIM, cb, arg);
}

int pg_create_pipeline(struct store *st, struct pipeline *pl, unsigned flags,
			      store_done_fn cb, void *arg)
{
	if (pl->njobs == 0)
		return -EINVAL;
	return queue_op(pg_of(st), OP_CREATE_PIPELINE, NULL, pl, NULL, flags & STORE_CLAIM, cb,
			arg);
}

/* ---- the lazy list: deferred starts ---------------------------------------- */

/* From the lazy list to the dirty list; the entry keeps its reference. */
static void unlazy(struct pg_store *ps, struct pg_dirty *d)
{
	TAILQ_REMOVE(&ps->lazy_jobs, d, link);
	d->mask &= ~PG_F_LAZY;
	TAILQ_INSERT_TAIL(&ps->dirty_jobs, d, link);
	dirty_added(ps);
}

void pg_flush_lazy(struct pg_store *ps)
{
	struct pg_dirty *d;

	ev_timer_stop(ps->loop, &ps->lazy_w);
	while ((d = TAILQ_FIRST(&ps->lazy_jobs)))
		unlazy(ps, d);
	pg_kick(ps);
}

/* Arm the lazy timer for the oldest mark, if any and it is not armed, but
 * not sooner than min_s from now. */
static void lazy_arm(struct pg_store *ps, int64_t now_ns, double min_s)
{
	struct pg_dirty *d = TAILQ_FIRST(&ps->lazy_jobs);
	double after;

	if (!d || ev_is_active(&ps->lazy_w))
		return;
	after = PG_LAZY_S - (double)(now_ns - d->since_ns) / 1e9;
	ev_timer_set(&ps->lazy_w, after > min_s ? after : min_s, 0.);
	ev_timer_start(ps->loop, &ps->lazy_w);
}

/* The marks PG_LAZY_S old join the next batch; younger ones wait on, for
 * PG_LAZY_TICK_S at least, so that a stream of long jobs' starts is still
 * written in a few batches a second, not one per start. */
static void on_lazy(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;
	int64_t now = job_mono_ns(), age = (int64_t)(PG_LAZY_S * 1e9);
	struct pg_dirty *d;
	bool moved = false;

	while ((d = TAILQ_FIRST(&ps->lazy_jobs)) && now - d->since_ns >= age - 1000000) {
		unlazy(ps, d);
		moved = true;
	}
	lazy_arm(ps, now, PG_LAZY_TICK_S);
	if (moved)
		pg_kick(ps);
}

void pg_lazy_init(struct pg_store *ps)
{
	ev_timer_init(&ps->lazy_w, on_lazy, PG_LAZY_S, 0.);
	ps->lazy_w.data = ps;
}

/* ---- store ops: writes (postgres.c: pg_ops) --------------------------------- */

void pg_save_job(struct store *st, struct job *job, unsigned fields)
{
	struct pg_store *ps = pg_of(st);
	struct pg_dirty *d = idmap_get(ps->dirty_job_map, job->id);

	if (fields == JOB_F_STATUS && !d &&
	    (job->status == JOB_IN_PROGRESS || job->status == JOB_SCHEDULED)) {
		d = dirty_new(ps->dirty_job_map, job, job->id);
		if (!d) {
			dirty_lost("a job's start is not saved", "job_id", job->id);
			return;
		}
		d->mask = JOB_F_STATUS | PG_F_LAZY;
		d->since_ns = job_mono_ns();
		job_ref(job);
		TAILQ_INSERT_TAIL(&ps->lazy_jobs, d, link);
		lazy_arm(ps, d->since_ns, 0.);
		return;
	}
	if (d && (d->mask & PG_F_LAZY))
		unlazy(ps, d); /* changed again before its start was written: one write */
	pg_mark_job(ps, job,
		 fields & (JOB_F_STATUS | JOB_F_META | JOB_F_RESULT | JOB_F_OUTCOME | JOB_F_RETRY),
		 false);
	pg_kick(ps);
}

void pg_save_pipeline(struct store *st, struct pipeline *pl, unsigned fields)
{
	struct pg_store *ps = pg_of(st);

	pg_mark_pl(ps, pl, fields ? fields : JOB_F_STATUS, false);
	pg_kick(ps);
}

int pg_delete_job(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			 void *arg)
{
	return queue_op(pg_of(st), OP_DELETE_JOB, NULL, NULL, id, false, cb, arg);
}

int pg_delete_result(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			    void *arg)
{
	return queue_op(pg_of(st), OP_DELETE_RESULT, NULL, NULL, id, false, cb, arg);
}

int pg_delete_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			      void *arg)
{
	return queue_op(pg_of(st), OP_DELETE_PIPELINE, NULL, NULL, id, false, cb, arg);
}

int pg_sync(struct store *st, store_done_fn cb, void *arg)
{
	return queue_op(pg_of(st), OP_SYNC, NULL, NULL, NULL, false, cb, arg);
}
