/*
 * core_shared.c - the core with a shared store (PostgreSQL): the work this
 * node holds (claimed: created here and stored claimed, or delivered by a
 * claim), and the store's calls into the core (core_queue_hooks): claimed
 * work delivered, a cancel asked by another node, the lease lost and
 * back, another node come to share the queue; and what the core gives
 * back to the queue (core_give_back_waiting: at the drain, and when a node
 * that held all it was given while alone is not alone any more).
 */
#include <stdio.h>
#include <stdlib.h>

#include "core_internal.h"
#include "log.h"

static void hold_job(struct core *core, struct job *job)
{
	if (idmap_put(core->active, job->id, job) == 0)
		job_ref(job);
}

void core_hold(struct core *core, struct job *job, struct pipeline *pl, size_t from)
{
	if (!pl) {
		hold_job(core, job);
		return;
	}
	/* Out of memory for the map: the jobs still run as one pipeline. */
	if (idmap_put(core->active_pl, pl->id, pl) == 0) {
		pipeline_ref(pl);
		core->pl_extra += pl->njobs - 1;
	}
	for (size_t i = from; i < pl->njobs; i++) {
		pl->jobs[i]->pipeline = pl;
		pl->jobs[i]->core_where = CORE_WAITING;
		hold_job(core, pl->jobs[i]);
	}
}

static bool unstarted_pipeline(const struct pipeline *pl)
{
	return pl->status == JOB_PENDING || pl->status == JOB_SCHEDULED;
}

bool core_give_back(struct core *core, const uint8_t id[JOB_ID_LEN], bool pipeline)
{
	if (!core->shared || !core->store->ops->give_back)
		return false;
	core->store->ops->give_back(core->store, id, pipeline);
	return true;
}

static void deliver(void *arg, struct job *job, struct pipeline *pl, size_t from)
{
	struct core *core = arg;
	struct job *first = pl ? pl->jobs[from] : job;

	if (idmap_get(core->active, first->id))
		return; /* already held */
	if (core->draining) {
		/* Claimed just before the drain began: back to the queue (a
		 * pipeline that has started elsewhere: at close, as before). */
		if (!pl || (from == 0 && unstarted_pipeline(pl)))
			core_give_back(core, pl ? pl->id : job->id, pl != NULL);
		return;
	}
	core_hold(core, job, pl, from);
	/* Counted like a submission; a pipeline resumed past its first job
	 * is a continuation (core_unqueue's rule). */
	if (first->pipeline_index == 0)
		core->nqueued++;
	if (first->run_at && first->status == JOB_PENDING)
		lc_job(core->store, first, LC_JOB_DUE, NULL);
	if (first->run_at || from > 0) {
		queue_push_due(&core->queue, first, false);
		core_kick(core);
	} else {
		core_enqueue(core, first);
	}
}

static void cancel_held(void *arg, const uint8_t id[JOB_ID_LEN], bool pipeline)
{
	core_cancel_held(arg, id, pipeline);
}

/* Pipelines, or jobs, collected from a map (the caller takes references). */
struct obj_set {
	void **v;
	size_t n, cap;
};

/* false: out of memory (obj is left out, and left as it is). */
static bool set_add(struct obj_set *set, void *obj)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		void **v = realloc(set->v, cap * sizeof(*v));
		if (!v)
			return false;
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = obj;
	return true;
}

static bool pipeline_runs(const struct pipeline *pl)
{
	for (size_t i = 0; i < pl->njobs; i++)
		if (pl->jobs[i]->core_where == CORE_RUNNING)
			return true;
	return false;
}

static void collect_idle(void *value, void *arg)
{
	if (!pipeline_runs(value) && set_add(arg, value))
		pipeline_ref(value);
}

/* Forget a pipeline held here and its unfinished jobs, writing nothing. */
static void forget_pipeline(struct core *core, struct pipeline *pl)
{
	for (size_t i = 0; i < pl->njobs; i++) {
		pl->jobs[i]->pipeline = NULL;
		if (!job_status_final(pl->jobs[i]->status)) {
			core_unqueue(core, pl->jobs[i]);
			core_deactivate(core, pl->jobs[i]);
		}
	}
	if (idmap_del(core->active_pl, pl->id)) {
		core->pl_extra -= pl->njobs - 1;
		pipeline_unref(pl);
	}
}

/* Forget (without writing: the store has given it back) every job held
 * here that is not running, and every pipeline with nothing running. */
static void drop_unstarted(struct core *core)
{
	struct obj_set set = {0};
	struct job *job;

	while ((job = queue_any(&core->queue))) {
		core_unqueue(core, job);
		core_deactivate(core, job);
	}
	idmap_foreach(core->active_pl, collect_idle, &set);
	for (size_t k = 0; k < set.n; k++) {
		forget_pipeline(core, set.v[k]);
		pipeline_unref(set.v[k]);
	}
	free(set.v);
}

static void collect_waiting_job(void *value, void *arg)
{
	struct job *job = value;

	if (!job->pipeline && !job->in_pipeline &&
	    (job->core_where == CORE_QUEUED || job->core_where == CORE_DUE ||
	     job->core_where == CORE_SCHEDULED || job->core_where == CORE_HELD) &&
	    set_add(arg, job))
		job_ref(job);
}

static void collect_unstarted_pipeline(void *value, void *arg)
{
	if (unstarted_pipeline(value) && !pipeline_runs(value) && set_add(arg, value))
		pipeline_ref(value);
}

/*
 * Work this node holds and has not started - its waiting standalone jobs
 * (retries too), its pipelines none of whose jobs ever started - goes back
 * to the shared queue, for whichever node claims it first; the core
 * forgets it (it neither ran nor ended here). A pipeline that has started
 * stays. At the drain (it will not start here: given back now, not at
 * close after the grace period), and when another node comes to share the
 * queue of a node that held everything it was given while alone
 * (core_local_cap): the backlog is spread again, the oldest first, as the
 * nodes claim it. what: the log's message.
 */
void core_give_back_waiting(struct core *core, const char *what)
{
	struct obj_set jobs = {0}, pls = {0};
	char nj[24], np[24];

	if (!core->store->ops->give_back)
		return;
	idmap_foreach(core->active, collect_waiting_job, &jobs);
	idmap_foreach(core->active_pl, collect_unstarted_pipeline, &pls);
	for (size_t k = 0; k < jobs.n; k++) {
		struct job *job = jobs.v[k];

		core_give_back(core, job->id, false);
		core_unqueue(core, job);
		core_deactivate(core, job);
		job_unref(job);
	}
	for (size_t k = 0; k < pls.n; k++) {
		struct pipeline *pl = pls.v[k];

		core_give_back(core, pl->id, true);
		forget_pipeline(core, pl);
		pipeline_unref(pl);
	}
	if (jobs.n || pls.n) {
		snprintf(nj, sizeof(nj), "%zu", jobs.n);
		snprintf(np, sizeof(np), "%zu", pls.n);
		log_info(what, "jobs", nj, "pipelines", np);
	}
	free(jobs.v);
	free(pls.v);
}

static void lease(void *arg, bool lost)
{
	struct core *core = arg;
	char n[16];

	if (lost) {
		snprintf(n, sizeof(n), "%u", runner_running(core->runner));
		log_error("lost the database lease: killing running jobs, starting none until it "
			  "is back", "running", n);
		core->paused = true;
		runner_kill_all(core->runner, RUN_KILL_LEASE);
		return;
	}
	log_info("database lease renewed: claiming work again");
	drop_unstarted(core);
	core->paused = false;
	core_kick(core);
}

/* Another node shares the queue now: what this node took while alone
 * beyond its usual backlog is everyone's again. */
static void peers(void *arg)
{
	struct core *core = arg;

	if (core->draining || core->paused ||
	    runner_running(core->runner) + core->nqueued <= core_local_cap(core))
		return;
	core_give_back_waiting(core, "another node shares the queue: giving back claimed work "
				"that did not start");
	core_kick(core);
}

const struct store_queue_hooks core_queue_hooks = {
	.deliver = deliver,
	.cancel = cancel_held,
	.lease = lease,
	.peers = peers,
};
