/*
 * core.c - the supervisor's core: where every accepted job is, dispatch,
 * and the reactions to a job's and a pipeline's events.
 *
 * Theory of operation. An accepted job is in exactly one place, recorded in
 * job->core_where: waiting in the queue (queue.c: the FIFO of immediate
 * work, the run_at min-heap, or the "due" FIFO of scheduled work whose
 * time has come and the next jobs of running pipelines - served first),
 * running in a child, or waiting behind an earlier job of its pipeline.
 * The active map (id -> job) holds a reference to every unfinished job;
 * active_pl does the same for pipelines. Its status is the lifecycle's
 * (lifecycle.c): every status change here is an lc_job()/lc_pipeline()
 * event, checked against its table.
 *
 * Events and what the core does (the place changes here, the status in
 * lifecycle.c):
 *   submit        -> queue or heap                            (core_ops.c)
 *   run_at timer  -> heap -> "due"; DUE (a first attempt)
 *   free slot     -> dispatch: pop "due" then the FIFO, start a child
 *   job_started   -> running; START (pipeline START on its first job)
 *   job_done      -> END with its result; or RETRY: back on the heap
 *   run_done      -> pipeline: next job onto "due", or END the pipeline
 *   cancel        -> unqueue and DROP (never ran), or kill    (core_cancel.c)
 *   SIGTERM       -> drain: no new starts, grace timer, then kill all; a
 *                    shared store gets back at once what is held here and
 *                    never started (waiting standalone jobs, pipelines none
 *                    of whose jobs started), and what a claim or a create
 *                    in flight brings later: forgotten here, not ended
 *                    (core_shared.c)
 * Dispatch runs from an ev_prepare watcher, so a burst of submissions is
 * started in one pass just before the loop sleeps.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_value.h"
#include "core_internal.h"
#include "log.h"

/* ---- replies ---------------------------------------------------------------- */

void core_reply_err(core_done_fn cb, void *arg, enum core_err err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	struct core_reply r = {.err = err, .message = msg};

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cb(arg, &r);
}

void core_reply_not_found(core_done_fn cb, void *arg, const uint8_t id[JOB_ID_LEN],
			  const char *what)
{
	char s[JOB_ID_STRLEN + 1];

	job_id_format(id, s);
	core_reply_err(cb, arg, CORE_ENOTFOUND, "%s with ID: %s not found", what, s);
}

void core_reply_no_answer(struct core *core, core_done_fn cb, void *arg)
{
	char t[32];

	core_reply_err(cb, arg, CORE_EUNAVAIL, "storage did not answer within %s - try again later",
		       config_fmt_duration(core->cfg->submit_timeout_ms, t, sizeof(t)));
}

struct core_sync {
	core_done_fn cb;
	void *arg;
	struct job *job;
	struct pipeline *pl;
};

static void synced(void *arg, const struct store_reply *reply)
{
	struct core_sync *s = arg;
	struct core_reply r = {.err = CORE_OK, .job = s->job, .pipeline = s->pl};

	/* Even if the store failed, the change is held and will be written:
	 * the operation itself succeeded. */
	s->cb(s->arg, &r);
	job_unref(s->job);
	pipeline_unref(s->pl);
	free(s);
}

void core_reply_synced(struct core *core, core_done_fn cb, void *arg, struct job *job,
		       struct pipeline *pl)
{
	struct core_sync *s = core->store->ops->sync ? malloc(sizeof(*s)) : NULL;
	struct store_reply sr = {0};

	if (!s) {
		struct core_reply r = {.err = CORE_OK, .job = job, .pipeline = pl};
		cb(arg, &r);
		return;
	}
	*s = (struct core_sync){cb, arg, job ? job_ref(job) : NULL, pl ? pipeline_ref(pl) : NULL};
	if (core->store->ops->sync(core->store, synced, s) < 0)
		synced(s, &sr);
}

/* ---- the scheduler ------------------------------------------------------------ */

static void rearm_scheduler(struct core *core)
{
	struct job *first = queue_earliest(&core->queue);

	ev_periodic_stop(core->loop, &core->sched_w);
	if (!first)
		return;
	ev_periodic_set(&core->sched_w, (double)first->core_due / 1e6, 0, NULL);
	ev_periodic_start(core->loop, &core->sched_w);
}

/* Scheduled work whose time came, and retries that are due: onto "due". */
static void on_schedule(struct ev_loop *loop, ev_periodic *w, int revents)
{
	struct core *core = w->data;
	int64_t now = job_now_us();
	struct job *job;
	bool first;

	/* A millisecond of slack: the timer may fire a hair early. */
	while ((job = queue_earliest(&core->queue)) && job->core_due <= now + 1000) {
		queue_remove(&core->queue, job, &first);
		job->core_due = 0;
		/* A retry stays PENDING; the first run of scheduled work says so. */
		if (job->attempt == 0)
			lc_job(core->store, job, LC_JOB_DUE, NULL);
		queue_push_due(&core->queue, job, false);
	}
	rearm_scheduler(core);
	core_kick(core);
}

/* ---- queueing ----------------------------------------------------------------- */

void core_enqueue(struct core *core, struct job *job)
{
	queue_push(&core->queue, job);
	core_kick(core);
}

void core_schedule(struct core *core, struct job *job)
{
	bool earliest;

	if (!job->core_due)
		job->core_due = job->run_at;
	if (queue_schedule(&core->queue, job, &earliest) < 0) {
		/* Out of memory for the heap: run it now rather than lose it. */
		core_enqueue(core, job);
		return;
	}
	if (earliest)
		rearm_scheduler(core);
}

void core_unqueue(struct core *core, struct job *job)
{
	bool was_earliest;

	if (!queue_remove(&core->queue, job, &was_earliest))
		return;
	if (was_earliest)
		rearm_scheduler(core);
	/* Continuations of a running pipeline are not in nqueued: their
	 * pipeline's jobs count against capacity through pl_extra. */
	if (job->pipeline_index == 0)
		core->nqueued--;
}

void core_kick(struct core *core)
{
	if (!ev_is_active(&core->dispatch_w))
		ev_prepare_start(core->loop, &core->dispatch_w);
}

/* ---- job and pipeline lifecycle ------------------------------------------------ */

void core_deactivate(struct core *core, struct job *job)
{
	job->core_where = CORE_NOWHERE;
	if (idmap_del(core->active, job->id))
		job_unref(job);
}

void core_finish_unrun(struct core *core, struct job *job, enum job_status st,
		       const char *reason)
{
	core_unqueue(core, job);
	lc_job(core->store, job, LC_JOB_DROP, &(struct lc_change){.to = st, .reason = reason});
	metrics_job_finished(core->metrics, job);
	core_deactivate(core, job);
}

static void pipeline_final(struct core *core, struct pipeline *pl, enum job_status st,
			   const char *reason, int64_t when)
{
	lc_pipeline(core->store, pl, LC_PL_END,
		    &(struct lc_change){.to = st, .reason = reason, .when = when});
	for (size_t i = 0; i < pl->njobs; i++)
		pl->jobs[i]->pipeline = NULL;
	if (idmap_del(core->active_pl, pl->id)) {
		core->pl_extra -= pl->njobs - 1;
		pipeline_unref(pl);
	}
}

void core_pipeline_end(struct core *core, struct pipeline *pl, enum job_status st,
		       const char *jobs_reason, const char *pl_reason)
{
	for (size_t i = 0; i < pl->njobs; i++) {
		struct job *job = pl->jobs[i];
		if (!job_status_final(job->status) && job->core_where != CORE_RUNNING)
			core_finish_unrun(core, job, JOB_CANCELLED, jobs_reason);
	}
	pipeline_final(core, pl, st, pl_reason, job_now_us());
}

static void log_done(struct job *job)
{
	char id[JOB_ID_STRLEN + 1], pid[16], wall[24], cpu[24], rss[24];
	enum log_level level = job->status == JOB_COMPLETED ? LOG_INFO : LOG_WARN;

	if (!log_enabled(level))
		return;
	job_id_format(job->id, id);
	snprintf(pid, sizeof(pid), "%d", job->outcome.pid);
	snprintf(wall, sizeof(wall), "%lld", (long long)job->outcome.wall_ms);
	snprintf(cpu, sizeof(cpu), "%lld", (long long)job->outcome.cpu_ms);
	snprintf(rss, sizeof(rss), "%lld", (long long)job->outcome.max_rss_kb);
	log_msg(level, "job finished", "job_id", id, "task", job->task_name, "status",
		job_status_name(job->status), "pid", pid, "wall_ms", wall, "cpu_ms", cpu,
		"max_rss_kb", rss,
		/* A job without a reason ends the fields here (no reason=""). */
		job->failure_reason ? "reason" : (const char *)NULL, job->failure_reason,
		(const char *)NULL);
}

static void hook_started(void *arg, struct job *job)
{
	struct core *core = arg;
	struct pipeline *pl = job->pipeline;

	job->core_where = CORE_RUNNING;
	lc_job(core->store, job, LC_JOB_START, NULL);
	/* How long its first attempt waited once it was due (a pipeline: its
	 * first job; later ones wait for their predecessor, not the queue). */
	if (job->attempt == 1 && job->pipeline_index == 0) {
		int64_t due = job->run_at > job->created_at ? job->run_at : job->created_at;

		metrics_queue_wait(core->metrics, (double)(job->started_at - due) / 1e6);
	}
	/* Its first job (a later one, or a retry, finds it running already). */
	if (pl && pl->status == JOB_PENDING)
		lc_pipeline(core->store, pl, LC_PL_START, &(struct lc_change){.when = job->started_at});
}

/* Exponential backoff with jitter: base * 2^(attempt-1), capped, times
 * 0.5-1.0 (so that many jobs failing together do not retry together). */
static int64_t retry_delay_us(const struct config *cfg, int attempt)
{
	double ms = (double)cfg->retry_backoff_ms;

	for (int i = 1; i < attempt && ms < (double)cfg->retry_backoff_max_ms; i++)
		ms *= 2;
	if (ms > (double)cfg->retry_backoff_max_ms)
		ms = (double)cfg->retry_backoff_max_ms;
	ms *= 0.5 + (double)random() / RAND_MAX / 2;
	return (int64_t)(ms * 1000);
}

/* An attempt failed and attempts remain: record it, run it again later. */
static void retry(struct core *core, struct job *job, const char *reason)
{
	char why[1024], id[JOB_ID_STRLEN + 1], n[16], when[40];

	snprintf(why, sizeof(why), "attempt %d of %d failed: %s", job->attempt, job->max_attempts,
		 reason && reason[0] ? reason : "failed");
	job->core_due = job_now_us() + retry_delay_us(core->cfg, job->attempt);
	lc_job(core->store, job, LC_JOB_RETRY, &(struct lc_change){.reason = why});
	job_id_format(job->id, id);
	snprintf(n, sizeof(n), "%d", job->attempt);
	job_time_format(job->core_due, when, sizeof(when));
	log_warn("job attempt failed; retrying", "job_id", id, "task", job->task_name, "attempt", n,
		 "retry_at", when, "reason", why);
	/* Back on the heap: it counts against capacity again like any queued
	 * job (core_unqueue's rule), and a pipeline waits for it. */
	if (job->pipeline_index == 0)
		core->nqueued++;
	core_schedule(core, job);
}

static void hook_done(void *arg, struct job *job, enum job_status st, const char *reason,
		      const char *result_json, const char *error)
{
	struct core *core = arg;

	metrics_attempt_ended(core->metrics, job, st);
	if (st == JOB_FAILED && job->attempt < job->max_attempts && !core->draining) {
		metrics_job_retried(core->metrics, job);
		retry(core, job, reason);
		return;
	}

	lc_job(core->store, job, LC_JOB_END,
	       &(struct lc_change){
		   .to = st, .reason = reason, .result_json = result_json, .error = error});
	metrics_job_finished(core->metrics, job);
	log_done(job);
	core_deactivate(core, job);
}

static void hook_outcome(void *arg, struct job *job)
{
	struct core *core = arg;

	core->store->ops->save_job(core->store, job, JOB_F_OUTCOME);
}

static void resolve_waiters(struct core *core);
static void maybe_shutdown_done(struct core *core);

static void hook_run_done(void *arg, struct job **jobs, size_t njobs, size_t ran)
{
	struct core *core = arg;
	struct job *last = jobs[ran - 1];
	struct pipeline *pl = last->pipeline;

	/* A run of a capped owner ended: room for its oldest job set aside. */
	if (jobs[0]->owner < core->nowners && core->owners[jobs[0]->owner].max_running) {
		core_owner_ran(core, jobs[0]->owner, -1);
		queue_unhold(&core->queue, jobs[0]->owner);
	}

	if (pl) {
		size_t next = (size_t)last->pipeline_index + 1;
		char reason[128], id[JOB_ID_STRLEN + 1];

		if (last->status == JOB_PENDING) {
			/* Failed and waits on the heap for its retry. */
		} else if (last->status == JOB_COMPLETED && next < pl->njobs) {
			queue_push_due(&core->queue, pl->jobs[next], true);
		} else if (last->status == JOB_COMPLETED) {
			pipeline_final(core, pl, JOB_COMPLETED, NULL, last->completed_at);
		} else if (last->status == JOB_CANCELLED) {
			core_pipeline_end(core, pl, JOB_CANCELLED, "cancelled by request",
					  "cancelled by request");
		} else {
			job_id_format(last->id, id);
			snprintf(reason, sizeof(reason), "cancelled: job %s failed", id);
			char plr[128];
			snprintf(plr, sizeof(plr), "job %s failed", id);
			core_pipeline_end(core, pl, JOB_FAILED, reason, plr);
		}
	}
	core_kick(core);
	resolve_waiters(core);
	maybe_shutdown_done(core);
}

/* ---- dispatch ----------------------------------------------------------------- */

static void start_failed(struct core *core, struct job *job, int rc)
{
	char reason[160];
	struct pipeline *pl = job->pipeline;

	snprintf(reason, sizeof(reason), "could not start the job: %s", strerror(-rc));
	log_error("could not start a job", "task", job->task_name, "error", strerror(-rc));
	metrics_start_failed(core->metrics, job);
	core_finish_unrun(core, job, JOB_FAILED, reason);
	if (pl)
		core_pipeline_end(core, pl, JOB_FAILED, "cancelled: an earlier job could not start",
				  reason);
	resolve_waiters(core);
}

static void start_one(struct core *core, struct job *job)
{
	struct pipeline *pl = job->pipeline;
	struct job **jobs = &job;
	const char *previous = NULL;
	size_t n = 1;
	int rc;

	core_unqueue(core, job);
	if (pl) {
		size_t i = (size_t)job->pipeline_index;
		const struct task_def *t = tasks_find(core->reg, job->task_name);
		jobs = &pl->jobs[i];
		/* Consecutive C tasks of a pipeline share one child. */
		while (t && !t->exec && i + n < pl->njobs) {
			const struct task_def *u = tasks_find(core->reg, pl->jobs[i + n]->task_name);
			if (!u || u->exec)
				break;
			n++;
		}
		if (i > 0)
			previous = pl->jobs[i - 1]->result_json;
	}
	rc = runner_start(core->runner, jobs, n, previous);
	if (rc < 0)
		start_failed(core, job, rc);
	else
		core_owner_ran(core, job->owner, +1);
}

static void on_dispatch(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct core *core = w->data;

	ev_prepare_stop(loop, w);
	while (!core->draining && !core->paused && runner_has_slot(core->runner)) {
		struct job *job = queue_next(&core->queue);

		if (!job)
			break;
		if (core_owner_full(core, job->owner)) {
			/* Its owner's next run ends it (hook_run_done). */
			queue_hold(&core->queue, job);
			continue;
		}
		start_one(core, job);
	}
	if (core->shared && !core->draining && !core->paused)
		core->store->ops->want(core->store, core_claim_size(core));
}

/* ---- waiters (replies held until a killed job is reaped) ------------------------ */

static bool waiter_ready(const struct core_waiter *w)
{
	if (!job_status_final(w->job->status))
		return false;
	return !w->pl || job_status_final(w->pl->status);
}

static void waiter_free(struct core_waiter *w)
{
	job_unref(w->job);
	pipeline_unref(w->pl);
	free(w);
}

/* The store's answer to the delete a waiter asked for: the waiter lives
 * until then (a store may answer later, from the loop). */
static void waiter_delete_done(void *arg, const struct store_reply *reply)
{
	struct core_waiter *w = arg;
	struct core_reply r = {.err = reply->err ? CORE_EINTERNAL : CORE_OK,
			       .message = reply->err ? "could not delete" : NULL};

	w->cb(w->arg, &r);
	waiter_free(w);
}

static void resolve_waiters(struct core *core)
{
	struct core_waiter **pp = &core->waiters;

	while (*pp) {
		struct core_waiter *w = *pp;
		if (!waiter_ready(w)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (w->delete_after) {
			int rc = w->pl ? core->store->ops->delete_pipeline(core->store, w->pl->id,
									  waiter_delete_done, w)
				       : core->store->ops->delete_job(core->store, w->job->id,
								      waiter_delete_done, w);
			if (rc == 0)
				continue; /* waiter_delete_done() frees it */
			if (rc != -ENOENT) {
				core_reply_err(w->cb, w->arg, CORE_EINTERNAL, "could not delete: %s",
					       strerror(-rc));
			} else {
				struct core_reply r = {.err = CORE_OK};
				w->cb(w->arg, &r);
			}
		} else {
			core_reply_synced(core, w->cb, w->arg, w->job, w->pl);
		}
		waiter_free(w);
	}
}

int core_wait_final(struct core *core, struct job *job, struct pipeline *pl, bool delete_after,
		    core_done_fn cb, void *arg)
{
	struct core_waiter *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->job = job_ref(job);
	w->pl = pl ? pipeline_ref(pl) : NULL;
	w->delete_after = delete_after;
	w->cb = cb;
	w->arg = arg;
	w->next = core->waiters;
	core->waiters = w;
	resolve_waiters(core);
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------------- */

static const struct runner_hooks hooks = {
	.job_started = hook_started,
	.job_done = hook_done,
	.outcome_changed = hook_outcome,
	.run_done = hook_run_done,
};

struct core *core_new(struct ev_loop *loop, const struct config *cfg, struct store *store,
		      struct tasks *reg, int spawner_fd)
{
	struct core *core = calloc(1, sizeof(*core));
	const char *const *names;
	size_t ntasks;

	if (!core)
		return NULL;
	core->loop = loop;
	core->cfg = cfg;
	core->store = store;
	core->reg = reg;
	queue_init(&core->queue);
	core->active = idmap_new(offsetof(struct job, id));
	core->active_pl = idmap_new(offsetof(struct pipeline, id));
	core->runner = runner_new(loop, cfg, reg, spawner_fd, &hooks, core);
	names = tasks_names(reg, &ntasks);
	core->metrics = metrics_new(names, ntasks);
	if (!core->active || !core->active_pl || !core->runner || !core->metrics)
		goto fail;
	runner_set_metrics(core->runner, core->metrics);
	ev_periodic_init(&core->sched_w, on_schedule, 0, 0, NULL);
	core->sched_w.data = core;
	ev_prepare_init(&core->dispatch_w, on_dispatch);
	core->dispatch_w.data = core;
	if (store->ops->attach && store->ops->want) {
		core->shared = true;
		store->ops->attach(store, &core_queue_hooks, core);
		core_kick(core); /* the first dispatch tells the store what we can take */
	}
	return core;
fail:
	core_free(core);
	return NULL;
}

static void unref_job(void *value, void *arg)
{
	job_unref(value);
}

static void unref_pipeline(void *value, void *arg)
{
	pipeline_unref(value);
}

static void drop_active(struct core *core, struct job *job)
{
	if (idmap_del(core->active, job->id))
		job_unref(job);
}

void core_free(struct core *core)
{
	struct job *job;

	if (!core)
		return;
	ev_periodic_stop(core->loop, &core->sched_w);
	ev_prepare_stop(core->loop, &core->dispatch_w);
	ev_timer_stop(core->loop, &core->grace_w);
	runner_free(core->runner);
	while (core->waiters) {
		struct core_waiter *w = core->waiters;
		core->waiters = w->next;
		core_reply_err(w->cb, w->arg, CORE_EUNAVAIL, "shutting down");
		job_unref(w->job);
		pipeline_unref(w->pl);
		free(w);
	}
	while ((job = queue_any(&core->queue))) {
		bool first;

		queue_remove(&core->queue, job, &first);
		drop_active(core, job);
	}
	queue_release(&core->queue);
	/* Whatever is still active (waiting pipeline jobs, pipelines). */
	idmap_foreach(core->active, unref_job, NULL);
	idmap_foreach(core->active_pl, unref_pipeline, NULL);
	idmap_free(core->active);
	idmap_free(core->active_pl);
	metrics_free(core->metrics);
	free(core->owners);
	free(core);
}

/* ---- health and shutdown ---------------------------------------------------------- */

const char *const *core_task_names(struct core *core, size_t *count)
{
	return tasks_names(core->reg, count);
}

bool core_queue_healthy(struct core *core)
{
	return runner_healthy(core->runner);
}

bool core_storage_healthy(struct core *core)
{
	return core->store->ops->healthy(core->store);
}

bool core_draining(struct core *core)
{
	return core->draining;
}

void core_load(struct core *core, unsigned *running, size_t *queued)
{
	*running = runner_running(core->runner);
	*queued = core->nqueued;
}

static void maybe_shutdown_done(struct core *core)
{
	void (*done)(void *) = core->shutdown_done;

	if (!core->draining || runner_running(core->runner) > 0 || !done)
		return;
	core->shutdown_done = NULL;
	ev_timer_stop(core->loop, &core->grace_w);
	done(core->shutdown_arg);
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core *core = w->data;
	char n[16];

	snprintf(n, sizeof(n), "%u", runner_running(core->runner));
	log_warn("shutdown grace period over: killing running jobs", "running", n);
	runner_kill_all(core->runner, RUN_KILL_SHUTDOWN);
}

void core_shutdown_now(struct core *core)
{
	if (!core->draining)
		return;
	ev_timer_stop(core->loop, &core->grace_w);
	runner_kill_all(core->runner, RUN_KILL_SHUTDOWN_NOW);
}

void core_shutdown(struct core *core, void (*done)(void *arg), void *arg)
{
	char running[16], queued[24];

	if (core->draining)
		return;
	core->draining = true;
	runner_quiesce(core->runner);
	if (core->shared) {
		core->store->ops->want(core->store, 0);
		core_give_back_waiting(core, "shutting down: giving back claimed work that did not start");
	}
	core->shutdown_done = done;
	core->shutdown_arg = arg;
	snprintf(running, sizeof(running), "%u", runner_running(core->runner));
	snprintf(queued, sizeof(queued), "%zu", core->nqueued);
	log_info("shutting down: waiting for running jobs", "running", running, "queued", queued);
	ev_timer_init(&core->grace_w, on_grace, (double)core->cfg->shutdown_grace_ms / 1000.0, 0.);
	core->grace_w.data = core;
	ev_timer_start(core->loop, &core->grace_w);
	maybe_shutdown_done(core);
}
