/*
 * core_cancel.c - cancel and DELETE of jobs and pipelines.
 *
 * Work that never started is taken off its queue and marked CANCELLED at
 * once. Work that runs is killed (the spawner SIGKILLs the child's process
 * group) and the reply is held until the child has been reaped and the job
 * recorded as CANCELLED (core_wait_final). DELETE cancels first, then
 * deletes. A job of a pipeline cannot be deleted alone (409); cancelling it
 * cancels its pipeline. A caller that names an owner finds only that
 * owner's work (core.h): the check comes before anything is changed, on
 * the live object when the work is active here, else on the store's copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

struct cancel_op {
	struct core *core;
	core_done_fn cb;
	void *arg;
	bool pipeline, delete;
	uint8_t id[JOB_ID_LEN];
	uint16_t owner; /* only this owner's work; 0: anyone's */
};

static const char *what(const struct cancel_op *c)
{
	return c->pipeline ? "pipeline" : "job";
}

static void reply_missing(struct cancel_op *c)
{
	core_reply_not_found(c->cb, c->arg, c->id, what(c));
}

static void reply_pipeline_job(struct cancel_op *c)
{
	char s[JOB_ID_STRLEN + 1];

	job_id_format(c->id, s);
	core_reply_err(c->cb, c->arg, CORE_ECONFLICT,
		       "job with ID: %s can not be deleted because it belongs to a pipeline - try "
		       "to delete the pipeline instead",
		       s);
}

static struct job *running_job(struct pipeline *pl)
{
	for (size_t i = 0; i < pl->njobs; i++)
		if (pl->jobs[i]->core_where == CORE_RUNNING)
			return pl->jobs[i];
	return NULL;
}

static void deleted(void *arg, const struct store_reply *reply)
{
	struct cancel_op *c = arg;
	struct core_reply r = {.err = CORE_OK};

	if (reply->err == -ENOENT)
		reply_missing(c);
	else if (reply->err)
		core_reply_err(c->cb, c->arg, CORE_EINTERNAL, "could not delete the %s", what(c));
	else
		c->cb(c->arg, &r);
}

static void deleted_free(void *arg, const struct store_reply *reply)
{
	deleted(arg, reply);
	free(arg);
}

/* A copy of c for a store call that may answer later; NULL (answered) on
 * ENOMEM. */
static struct cancel_op *keep(const struct cancel_op *c)
{
	struct cancel_op *heap = malloc(sizeof(*heap));

	if (!heap)
		core_reply_err(c->cb, c->arg, CORE_EINTERNAL, "out of memory");
	else
		*heap = *c;
	return heap;
}

static void delete_now(struct cancel_op *c)
{
	struct store *st = c->core->store;
	struct cancel_op *heap = keep(c);
	int rc;

	if (!heap)
		return;
	/* deleted() may run later (PostgreSQL): it then owns heap. */
	rc = c->pipeline ? st->ops->delete_pipeline(st, c->id, deleted_free, heap)
			 : st->ops->delete_job(st, c->id, deleted_free, heap);
	if (rc < 0) {
		struct store_reply r = {.err = rc};
		deleted_free(heap, &r);
	}
}

static void cancel_active_pipeline(struct cancel_op *c, struct pipeline *pl, struct job *asked)
{
	struct core *core = c->core;
	struct job *run = running_job(pl);

	if (run) {
		runner_kill(core->runner, run, RUN_KILL_CANCEL);
		if (core_wait_final(core, asked ? asked : run, pl, c->delete, c->cb, c->arg) < 0)
			core_reply_err(c->cb, c->arg, CORE_EINTERNAL, "out of memory");
		return;
	}
	pipeline_ref(pl);
	core_pipeline_end(core, pl, JOB_CANCELLED, "cancelled by request", "cancelled by request");
	if (c->delete) {
		delete_now(c);
	} else {
		core_reply_synced(core, c->cb, c->arg, asked, pl);
	}
	pipeline_unref(pl);
}

static void cancel_active_job(struct cancel_op *c, struct job *job)
{
	struct core *core = c->core;

	if (job->pipeline) {
		if (c->delete)
			reply_pipeline_job(c);
		else
			cancel_active_pipeline(c, job->pipeline, job);
		return;
	}
	if (job->core_where == CORE_RUNNING) {
		runner_kill(core->runner, job, RUN_KILL_CANCEL);
		if (core_wait_final(core, job, NULL, c->delete, c->cb, c->arg) < 0)
			core_reply_err(c->cb, c->arg, CORE_EINTERNAL, "out of memory");
		return;
	}
	job_ref(job);
	core_finish_unrun(core, job, JOB_CANCELLED, "cancelled by request");
	if (c->delete) {
		delete_now(c);
	} else {
		core_reply_synced(core, c->cb, c->arg, job, NULL);
	}
	job_unref(job);
}

/* ---- work this node does not hold (a store shared by several nodes) ---------- */

/* The store cancelled it (or found it final already) on whichever node. */
static void remote_cancelled(void *arg, const struct store_reply *reply)
{
	struct cancel_op *c = arg;
	char s[JOB_ID_STRLEN + 1];

	job_id_format(c->id, s);
	if (reply->err == -ENOENT) {
		reply_missing(c);
	} else if (reply->err == -ETIMEDOUT) {
		core_reply_err(c->cb, c->arg, CORE_EUNAVAIL,
			       "%s with ID: %s: the node running it did not confirm the cancel - try "
			       "again",
			       what(c), s);
	} else if (reply->err && reply->err != -EALREADY) {
		core_reply_err(c->cb, c->arg, CORE_EUNAVAIL, "storage unavailable - try again later");
	} else if (c->delete) {
		delete_now(c);
	} else if (reply->err == -EALREADY) {
		enum job_status st = c->pipeline ? reply->pipeline->status : reply->job->status;
		core_reply_err(c->cb, c->arg, CORE_ECONFLICT, "%s with ID: %s has already finished (%s)",
			       what(c), s, job_status_name(st));
	} else {
		struct core_reply r = {.err = CORE_OK, .job = reply->job, .pipeline = reply->pipeline};
		c->cb(c->arg, &r);
	}
	free(c);
}

static void cancel_remote(struct cancel_op *c, const struct store_reply *reply)
{
	struct store *st = c->core->store;
	struct cancel_op *heap = keep(c);
	int rc;

	if (!heap)
		return;
	if (!c->pipeline && reply->job->in_pipeline) {
		/* Cancelling a job of a pipeline cancels the pipeline. */
		heap->pipeline = true;
		memcpy(heap->id, reply->job->pipeline_id, JOB_ID_LEN);
	}
	rc = st->ops->cancel(st, heap->id, heap->pipeline, remote_cancelled, heap);
	if (rc < 0) {
		struct store_reply r = {.err = rc};
		remote_cancelled(heap, &r);
	}
}

/* Not active here: finished, unknown, or (shared store) queued or held by
 * another node. */
static void found(void *arg, const struct store_reply *reply)
{
	struct cancel_op *c = arg;
	char s[JOB_ID_STRLEN + 1];
	enum job_status st = JOB_UNDEFINED;

	job_id_format(c->id, s);
	if (!reply->err)
		st = c->pipeline ? reply->pipeline->status : reply->job->status;
	if (!reply->err && c->owner &&
	    (c->pipeline ? reply->pipeline->owner : reply->job->owner) != c->owner) {
		reply_missing(c);
	} else if (reply->err == -ENOENT) {
		reply_missing(c);
	} else if (reply->err == -EAGAIN) {
		core_reply_err(c->cb, c->arg, CORE_EUNAVAIL, "storage unavailable - try again later");
	} else if (reply->err == -ETIMEDOUT) {
		core_reply_no_answer(c->core, c->cb, c->arg);
	} else if (reply->err) {
		core_reply_err(c->cb, c->arg, CORE_EINTERNAL, "storage error: %s",
			       strerror(-reply->err));
	} else if (c->delete &&!c->pipeline && reply->job->in_pipeline) {
		reply_pipeline_job(c);
	} else if (!job_status_final(st) && c->core->store->ops->cancel) {
		cancel_remote(c, reply);
	} else if (c->delete) {
		delete_now(c);
	} else {
		core_reply_err(c->cb, c->arg, CORE_ECONFLICT, "%s with ID: %s has already finished (%s)",
			       what(c), s, job_status_name(st));
	}
	free(c);
}

static void ignore_reply(void *arg, const struct core_reply *reply)
{
}

void core_cancel_held(struct core *core, const uint8_t id[JOB_ID_LEN], bool pipeline)
{
	struct cancel_op c = {core, ignore_reply, NULL, pipeline, false, {0}, 0};
	struct pipeline *pl = pipeline ? idmap_get(core->active_pl, id) : NULL;
	struct job *job = pipeline ? NULL : idmap_get(core->active, id);

	memcpy(c.id, id, JOB_ID_LEN);
	if (pl)
		cancel_active_pipeline(&c, pl, NULL);
	else if (job)
		cancel_active_job(&c, job);
}

static void lookup(struct core *core, const uint8_t *id, uint16_t owner, bool pipeline, bool delete,
		   core_done_fn cb, void *arg)
{
	struct cancel_op c = {core, cb, arg, pipeline, delete, {0}, owner};
	struct store *st = core->store;
	struct cancel_op *heap;
	int rc;

	memcpy(c.id, id, JOB_ID_LEN);
	if (pipeline) {
		struct pipeline *pl = idmap_get(core->active_pl, id);
		if (pl && owner && pl->owner != owner) {
			reply_missing(&c);
			return;
		}
		if (pl) {
			cancel_active_pipeline(&c, pl, NULL);
			return;
		}
	} else {
		struct job *job = idmap_get(core->active, id);
		if (job && owner && job->owner != owner) {
			reply_missing(&c);
			return;
		}
		if (job) {
			cancel_active_job(&c, job);
			return;
		}
	}
	heap = malloc(sizeof(*heap));
	if (!heap) {
		core_reply_err(cb, arg, CORE_EINTERNAL, "out of memory");
		return;
	}
	*heap = c;
	rc = pipeline ? st->ops->get_pipeline(st, id, found, heap)
		      : st->ops->get_job(st, id, found, heap);
	if (rc < 0) {
		struct store_reply r = {.err = rc};
		found(heap, &r);
	}
}

void core_cancel_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg)
{
	lookup(core, id, owner, false, false, cb, arg);
}

void core_delete_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg)
{
	lookup(core, id, owner, false, true, cb, arg);
}

void core_cancel_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			  core_done_fn cb, void *arg)
{
	lookup(core, id, owner, true, false, cb, arg);
}

void core_delete_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			  core_done_fn cb, void *arg)
{
	lookup(core, id, owner, true, true, cb, arg);
}
