/*
 * core_ops.c - the operations the HTTP driver calls (core.h): validation
 * with the original's messages, submission, reads, PATCH, cancel, DELETE.
 *
 * Validation happens before anything is stored, so a rejected request has
 * no side effects. Accepted work reserves its queue capacity first (a
 * pipeline as many units as it has jobs, admit()) and is queued only once
 * the store has confirmed it (for PostgreSQL: committed), and the reply
 * (202) comes after that; work stored claimed by a node that began to
 * drain meanwhile goes back to the shared queue instead (core.c). A store
 * that cannot confirm it within [storage] submit_timeout withdraws it
 * (-ETIMEDOUT): 503, and the work never exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_value.h"
#include "core_internal.h"
#include "limits.h"
#include "log.h"

/* ---- validation ------------------------------------------------------------------ */

static int validate_job(struct core *core, const struct job_request *req, char *msg, size_t len)
{
	bool no_name = !req->name || !req->name[0];
	bool no_task = !req->task_name || !req->task_name[0];
	size_t n, off;
	const char *const *names;

	if (no_name && no_task)
		return snprintf(msg, len, "name, task_name required"), -1;
	if (no_name)
		return snprintf(msg, len, "name required"), -1;
	if (no_task)
		return snprintf(msg, len, "task_name required"), -1;
	if (!tasks_find(core->reg, req->task_name)) {
		names = tasks_names(core->reg, &n);
		off = (size_t)snprintf(msg, len, "%s is not a valid task name - valid tasks: [",
				       req->task_name);
		for (size_t i = 0; i < n && off < len; i++)
			off += (size_t)snprintf(msg + off, len - off, "%s%s", i ? " " : "", names[i]);
		if (off < len)
			snprintf(msg + off, len - off, "]");
		return -1;
	}
	if (req->has_timeout && req->timeout_ms > core->cfg->max_timeout_ms) {
		char a[32];
		snprintf(a, sizeof(a), "%lld", (long long)(core->cfg->max_timeout_ms / 1000));
		return snprintf(msg, len, "timeout must be at most %s seconds", a), -1;
	}
	if (req->has_limits && limits_check(core->cfg, &req->limits, msg, len) < 0)
		return -1;
	return 0;
}

/*
 * A new job from its request; what the request leaves out comes from its
 * task's defaults (tasks.h), else the global ones. Born PENDING
 * (lifecycle.h).
 */
static struct job *build_job(struct core *core, const struct job_request *req, int64_t now,
			     uint16_t owner)
{
	const struct task_def *t = tasks_find(core->reg, req->task_name);
	struct job *job = job_new();

	if (!job)
		return NULL;
	job_id_generate(job->id);
	job_set_str(&job->name, req->name);
	job_set_str(&job->description, req->description);
	job->task_name = job_intern(req->task_name);
	if (req->params_json && strcmp(req->params_json, "{}") != 0)
		job_set_str(&job->params_json, req->params_json);
	job->timeout_ms = req->has_timeout		  ? req->timeout_ms
			  : t && t->timeout_ms > 0 ? t->timeout_ms
						   : core->cfg->default_timeout_ms;
	if (req->has_limits)
		job->limits = limits_resolve(core->cfg, t, &req->limits);
	job->max_attempts = req->max_attempts > 0	? req->max_attempts
			    : t && t->max_attempts > 0 ? t->max_attempts
						       : core->cfg->max_attempts;
	job->status = JOB_PENDING;
	job->created_at = now;
	job->core_heap_index = UINT32_MAX;
	job->owner = owner;
	if (!job->name || !job->task_name) {
		job_unref(job);
		return NULL;
	}
	return job;
}

/*
 * Whether njobs more jobs may be accepted. [queue] capacity bounds the jobs
 * held here: every queued job, and every job of a pipeline held here, as
 * its first one waits and as it runs - so that one request cannot hold
 * 20,000 jobs on one unit of capacity.
 */
static bool admit(struct core *core, size_t njobs, core_done_fn cb, void *arg)
{
	size_t cap = (size_t)core->cfg->queue_capacity;

	if (core->draining) {
		core_reply_err(cb, arg, CORE_EUNAVAIL, "shutting down - not accepting new work");
		return false;
	}
	if (!core_queue_healthy(core)) {
		core_reply_err(cb, arg, CORE_EUNAVAIL, "job runner unavailable - try again later");
		return false;
	}
	if (!core_storage_healthy(core)) {
		core_reply_err(cb, arg, CORE_EUNAVAIL, "storage unavailable - try again later");
		return false;
	}
	if (njobs > cap) {
		core_reply_err(cb, arg, CORE_EINVAL,
			       "pipeline has %zu jobs, more than the queue holds "
			       "([queue] capacity %zu)",
			       njobs, cap);
		return false;
	}
	if (core->nqueued + core->pl_extra + njobs > cap) {
		core_reply_err(cb, arg, CORE_EFULL, "job queue is full - try again later");
		return false;
	}
	return true;
}

size_t core_local_cap(const struct core *core)
{
	size_t cap = 4 * (size_t)core->cfg->workers + 32;
	size_t half = (size_t)core->cfg->queue_capacity / 2;

	if (core->shared && core->store->ops->alone && core->store->ops->alone(core->store) &&
	    half > cap)
		return half;
	return cap;
}

size_t core_local_room(const struct core *core)
{
	/* Keep a small local backlog beyond the running children: enough to
	 * start the next job without waiting for a claim round trip, and to
	 * claim in batches; small enough not to hoard work other nodes could
	 * run. */
	size_t cap = core_local_cap(core);
	size_t have = runner_running(core->runner) + core->nqueued;

	return cap > have ? cap - have : 0;
}

size_t core_claim_size(const struct core *core)
{
	size_t room = core_local_room(core);

	if (core->nqueued < (size_t)core->cfg->workers || room >= core_local_cap(core) / 2)
		return room;
	return 0;
}

/* A shared store holds new work for whichever node claims it, unless this
 * node can start it at once (then it is stored claimed, saving a claim). */
static unsigned claim_flags(struct core *core, const struct job *first)
{
	if (!core->shared)
		return STORE_CLAIM;
	if (first->run_at && first->run_at > job_now_us())
		return 0;
	/* nqueued already counts this submission: room 0 means it just fits. */
	return runner_running(core->runner) + core->nqueued <= core_local_cap(core) ? STORE_CLAIM
										      : 0;
}

/* ---- submission ----------------------------------------------------------------- */

/* Context of a call whose store answer may come later (PostgreSQL). */
struct op {
	struct core *core;
	core_done_fn cb;
	void *arg;
	struct job *job;        /* submit: the new job (reference) */
	struct pipeline *pl;    /* submit: the new pipeline (reference) */
	struct patch_request patch;
	char *patch_name, *patch_desc;
	const char *what;       /* "job", "job result", "pipeline" */
	uint8_t id[JOB_ID_LEN];
	uint16_t owner; /* who asks: only its work is found (0: all) */
};

static struct op *op_new(struct core *core, core_done_fn cb, void *arg, const char *what,
			 const uint8_t *id, uint16_t owner)
{
	struct op *op = calloc(1, sizeof(*op));

	if (!op) {
		core_reply_err(cb, arg, CORE_EINTERNAL, "out of memory");
		return NULL;
	}
	op->core = core;
	op->cb = cb;
	op->arg = arg;
	op->what = what;
	op->owner = owner;
	if (id)
		memcpy(op->id, id, JOB_ID_LEN);
	return op;
}

static void op_free(struct op *op)
{
	job_unref(op->job);
	pipeline_unref(op->pl);
	free(op->patch_name);
	free(op->patch_desc);
	free(op);
}

/* A store error as a reply: -ENOENT is "<what> with ID: <id> not found";
 * -ETIMEDOUT of a create (one the store did not confirm within [storage]
 * submit_timeout) means it withdrew it: nothing exists, a retry is safe;
 * -ETIMEDOUT of anything else: the store did not answer in that time. */
static void reply_store_err(struct op *op, int err)
{
	char t[32];

	if (err == -ETIMEDOUT && !op->job && !op->pl)
		core_reply_no_answer(op->core, op->cb, op->arg);
	else if (err == -ENOENT)
		core_reply_not_found(op->cb, op->arg, op->id, op->what);
	else if (err == -EAGAIN)
		core_reply_err(op->cb, op->arg, CORE_EUNAVAIL, "storage unavailable - try again later");
	else if (err == -ETIMEDOUT)
		core_reply_err(op->cb, op->arg, CORE_EUNAVAIL,
			       "storage did not confirm the %s within %s - it was not accepted and "
			       "will not run; try again later",
			       op->what, config_fmt_duration(op->core->cfg->submit_timeout_ms, t,
							     sizeof(t)));
	else
		core_reply_err(op->cb, op->arg, CORE_EINTERNAL, "storage error: %s", strerror(-err));
}

/* Run a store call; errors it returns at once are answered here. */
#define STORE_CALL(op, call)                                                                 \
	do {                                                                                 \
		int rc_ = (call);                                                            \
		if (rc_ < 0) {                                                               \
			reply_store_err(op, rc_);                                            \
			op_free(op);                                                         \
		}                                                                            \
	} while (0)

static void submitted(void *arg, const struct store_reply *reply)
{
	struct op *op = arg;
	struct core *core = op->core;
	struct job *first = op->pl ? op->pl->jobs[0] : op->job;

	if (op->pl)
		core->pl_extra -= op->pl->njobs - 1; /* core_hold() counts it if held */
	if (reply->err) {
		core->nqueued--;
		reply_store_err(op, reply->err);
		op_free(op);
		return;
	}
	if (op->pl)
		for (size_t i = 0; i < op->pl->njobs; i++)
			metrics_job_submitted(core->metrics, op->pl->jobs[i]);
	else
		metrics_job_submitted(core->metrics, op->job);
	if (!reply->claimed) {
		/* Stored for whichever node claims it first (shared store). */
		core->nqueued--;
		goto reply;
	}
	/* Stored claimed by this node, which began to drain meanwhile and
	 * starts nothing more: to the queue, for the other nodes. */
	if (core->draining &&
	    core_give_back(core, op->pl ? op->pl->id : op->job->id, op->pl != NULL)) {
		core->nqueued--;
		goto reply;
	}
	core_hold(core, op->job, op->pl, 0);
	if (first->run_at)
		core_schedule(core, first);
	else
		core_enqueue(core, first);
reply:;
	struct core_reply r = {.err = CORE_OK, .job = op->job, .pipeline = op->pl};
	op->cb(op->arg, &r);
	op_free(op);
}

static void submit_failed(struct op *op, int rc)
{
	struct store_reply r = {.err = rc};

	submitted(op, &r);
}

void core_submit_job(struct core *core, const struct job_request *req, core_done_fn cb, void *arg)
{
	char msg[4096];
	struct op *op;
	int rc;

	if (validate_job(core, req, msg, sizeof(msg)) < 0) {
		core_reply_err(cb, arg, CORE_EINVAL, "%s", msg);
		return;
	}
	if (core_policy_check(core, req->policy, req, msg, sizeof(msg)) < 0 ||
	    core_policy_quota(core, req->policy, req->owner, 1, msg, sizeof(msg)) < 0) {
		core_reply_err(cb, arg, CORE_EFORBIDDEN, "%s", msg);
		return;
	}
	core_policy_note(core, req->policy, req->owner);
	if (!admit(core, 1, cb, arg) || !(op = op_new(core, cb, arg, "job", NULL, 0)))
		return;
	op->job = build_job(core, req, job_now_us(), req->owner);
	if (!op->job) {
		core_reply_err(cb, arg, CORE_EINTERNAL, "out of memory");
		op_free(op);
		return;
	}
	if (req->has_run_at)
		op->job->run_at = req->run_at;
	memcpy(op->id, op->job->id, JOB_ID_LEN);
	core->nqueued++;
	rc = core->store->ops->create_job(core->store, op->job, claim_flags(core, op->job), submitted,
					  op);
	if (rc < 0)
		submit_failed(op, rc);
}

static int validate_pipeline(struct core *core, const struct pipeline_request *req, char *msg,
			     size_t len)
{
	bool no_name = !req->name || !req->name[0];

	for (size_t i = 0; i < req->njobs; i++)
		if (validate_job(core, &req->jobs[i], msg, len) < 0)
			return -1;
	if (no_name && req->njobs == 0)
		return snprintf(msg, len, "name, jobs required"), -1;
	if (no_name)
		return snprintf(msg, len, "name required"), -1;
	if (req->njobs == 0)
		return snprintf(msg, len, "jobs required"), -1;
	if (req->njobs < 2)
		return snprintf(msg, len, "pipeline should have at least 2 jobs, %zu given",
				req->njobs),
		       -1;
	return 0;
}

static struct pipeline *build_pipeline(struct core *core, const struct pipeline_request *req)
{
	struct pipeline *pl = pipeline_new(req->njobs);
	int64_t now = job_now_us();

	if (!pl)
		return NULL;
	job_id_generate(pl->id);
	job_set_str(&pl->name, req->name);
	job_set_str(&pl->description, req->description);
	pl->status = JOB_PENDING;
	pl->created_at = now;
	pl->run_at = req->has_run_at ? req->run_at : 0;
	pl->owner = req->owner;
	for (size_t i = 0; i < req->njobs; i++) {
		struct job *job = build_job(core, &req->jobs[i], now, req->owner);
		if (!job) {
			pipeline_unref(pl);
			return NULL;
		}
		pl->jobs[i] = job;
		job->in_pipeline = true;
		memcpy(job->pipeline_id, pl->id, JOB_ID_LEN);
		job->pipeline_index = (int)i;
		job->use_previous_results = i > 0 && req->jobs[i].use_previous_results;
		if (i > 0) {
			pl->jobs[i - 1]->has_next = true;
			memcpy(pl->jobs[i - 1]->next_job_id, job->id, JOB_ID_LEN);
		}
	}
	pl->jobs[0]->run_at = pl->run_at;
	if (!pl->name) {
		pipeline_unref(pl);
		return NULL;
	}
	return pl;
}

void core_submit_pipeline(struct core *core, const struct pipeline_request *req,
			  core_done_fn cb, void *arg)
{
	char msg[4096];
	struct op *op;
	int rc;

	if (validate_pipeline(core, req, msg, sizeof(msg)) < 0) {
		core_reply_err(cb, arg, CORE_EINVAL, "%s", msg);
		return;
	}
	for (size_t i = 0; i < req->njobs; i++)
		if (core_policy_check(core, req->policy, &req->jobs[i], msg, sizeof(msg)) < 0) {
			core_reply_err(cb, arg, CORE_EFORBIDDEN, "%s", msg);
			return;
		}
	if (core_policy_quota(core, req->policy, req->owner, req->njobs, msg, sizeof(msg)) < 0) {
		core_reply_err(cb, arg, CORE_EFORBIDDEN, "%s", msg);
		return;
	}
	core_policy_note(core, req->policy, req->owner);
	if (!admit(core, req->njobs, cb, arg) ||
	    !(op = op_new(core, cb, arg, "pipeline", NULL, 0)))
		return;
	op->pl = build_pipeline(core, req);
	if (!op->pl) {
		core_reply_err(cb, arg, CORE_EINTERNAL, "out of memory");
		op_free(op);
		return;
	}
	memcpy(op->id, op->pl->id, JOB_ID_LEN);
	core->nqueued++;
	core->pl_extra += op->pl->njobs - 1; /* until stored: then core_hold()'s */
	rc = core->store->ops->create_pipeline(core->store, op->pl, claim_flags(core, op->pl->jobs[0]),
					       submitted, op);
	if (rc < 0)
		submit_failed(op, rc);
}

/* ---- reads ------------------------------------------------------------------------ */

/* Whether the op's caller may see the work of a reply (its job, or its
 * pipeline when it has one: a pipeline's jobs are the pipeline's owner's). */
static bool owned(const struct op *op, const struct store_reply *reply)
{
	if (!op->owner)
		return true;
	if (reply->pipeline)
		return reply->pipeline->owner == op->owner;
	return reply->job && reply->job->owner == op->owner;
}

/* Pass a store reply on as a core reply; another owner's work is unknown. */
static void forward(void *arg, const struct store_reply *reply)
{
	struct op *op = arg;

	if (reply->err) {
		reply_store_err(op, reply->err);
	} else if (!owned(op, reply)) {
		reply_store_err(op, -ENOENT);
	} else {
		struct core_reply r = {
			.err = CORE_OK,
			.job = reply->job,
			.pipeline = reply->pipeline,
			.jobs = reply->jobs,
			.njobs = reply->njobs,
			.pipelines = reply->pipelines,
			.npipelines = reply->npipelines,
			.next = reply->next,
		};
		op->cb(op->arg, &r);
	}
	op_free(op);
}

#define FORWARD(core, cb, arg, what, id, owner, method, ...)                                       \
	do {                                                                                       \
		struct op *op_ = op_new(core, cb, arg, what, id, owner);                           \
		if (op_)                                                                           \
			STORE_CALL(op_, (core)->store->ops->method((core)->store, __VA_ARGS__,     \
								   forward, op_));                 \
	} while (0)

void core_get_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner, core_done_fn cb,
		  void *arg)
{
	FORWARD(core, cb, arg, "job", id, owner, get_job, id);
}

/* Lists are filtered by the store, so that limit and offset count only
 * what the caller may see. */
void core_list_jobs(struct core *core, const struct core_list_query *q, core_done_fn cb,
		    void *arg)
{
	struct store_query sq = {.status = q->status,
				 .offset = q->offset,
				 .limit = q->limit,
				 .owner = q->owner,
				 .after = q->after};

	FORWARD(core, cb, arg, "job", NULL, 0, list_jobs, &sq);
}

void core_get_result(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg)
{
	FORWARD(core, cb, arg, "job result", id, owner, get_result, id);
}

/* The job first, when only an owner's work may be touched: another
 * owner's result must stay as it is. */
static void result_owned(void *arg, const struct store_reply *reply)
{
	struct op *op = arg;
	struct store *st = op->core->store;

	if (reply->err || !owned(op, reply)) {
		reply_store_err(op, reply->err ? reply->err : -ENOENT);
		op_free(op);
		return;
	}
	op->owner = 0;
	STORE_CALL(op, st->ops->delete_result(st, op->id, forward, op));
}

void core_delete_result(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			core_done_fn cb, void *arg)
{
	struct op *op;

	if (!owner) {
		FORWARD(core, cb, arg, "job result", id, 0, delete_result, id);
		return;
	}
	if ((op = op_new(core, cb, arg, "job result", id, owner)))
		STORE_CALL(op, core->store->ops->get_result(core->store, id, result_owned, op));
}

void core_get_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		       core_done_fn cb, void *arg)
{
	FORWARD(core, cb, arg, "pipeline", id, owner, get_pipeline, id);
}

void core_list_pipelines(struct core *core, const struct core_list_query *q,
			 core_done_fn cb, void *arg)
{
	struct store_query sq = {.status = q->status,
				 .offset = q->offset,
				 .limit = q->limit,
				 .owner = q->owner,
				 .after = q->after};

	FORWARD(core, cb, arg, "pipeline", NULL, 0, list_pipelines, &sq);
}

void core_pipeline_jobs(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			const struct core_list_query *q, core_done_fn cb, void *arg)
{
	struct store_query sq = {.limit = q->limit, .after = q->after};

	FORWARD(core, cb, arg, "pipeline", id, owner, pipeline_jobs, id, &sq);
}

/* ---- PATCH -------------------------------------------------------------------------- */

static void apply_patch(struct op *op, char **name, char **desc)
{
	if (op->patch.name)
		job_set_str(name, op->patch.name);
	if (op->patch.description)
		job_set_str(desc, op->patch.description);
}

static void patched(void *arg, const struct store_reply *reply)
{
	struct op *op = arg;
	struct store *st = op->core->store;
	struct core_reply r = {.err = CORE_OK};

	if (reply->err || !owned(op, reply)) {
		reply_store_err(op, reply->err ? reply->err : -ENOENT);
		op_free(op);
		return;
	}
	if (reply->job) {
		/* An active job is the live object: change that one. */
		struct job *live = idmap_get(op->core->active, reply->job->id);
		struct job *job = live ? live : reply->job;
		apply_patch(op, &job->name, &job->description);
		st->ops->save_job(st, job, JOB_F_META);
		r.job = job;
	} else {
		struct pipeline *live = idmap_get(op->core->active_pl, reply->pipeline->id);
		struct pipeline *pl = live ? live : reply->pipeline;
		apply_patch(op, &pl->name, &pl->description);
		st->ops->save_pipeline(st, pl, JOB_F_META);
		r.pipeline = pl;
	}
	core_reply_synced(op->core, op->cb, op->arg, r.job, r.pipeline);
	op_free(op);
}

static struct op *patch_op(struct core *core, const uint8_t *id, uint16_t owner,
			   const struct patch_request *req, core_done_fn cb, void *arg,
			   const char *what)
{
	struct op *op;

	if (req->name && !req->name[0]) {
		core_reply_err(cb, arg, CORE_EINVAL, "name must be a non-empty string");
		return NULL;
	}
	if (!(op = op_new(core, cb, arg, what, id, owner)))
		return NULL;
	op->patch_name = req->name ? strdup(req->name) : NULL;
	op->patch_desc = req->description ? strdup(req->description) : NULL;
	op->patch.name = op->patch_name;
	op->patch.description = op->patch_desc;
	return op;
}

void core_patch_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		    const struct patch_request *req, core_done_fn cb, void *arg)
{
	struct op *op = patch_op(core, id, owner, req, cb, arg, "job");

	if (op)
		STORE_CALL(op, core->store->ops->get_job(core->store, id, patched, op));
}

void core_patch_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			 const struct patch_request *req, core_done_fn cb, void *arg)
{
	struct op *op = patch_op(core, id, owner, req, cb, arg, "pipeline");

	if (op)
		STORE_CALL(op, core->store->ops->get_pipeline(core->store, id, patched, op));
}

int core_watch_keys(struct core *core, store_keys_fn cb, void *arg)
{
	if (!core->store->ops->watch_keys)
		return -ENOTSUP;
	return core->store->ops->watch_keys(core->store, cb, arg);
}
