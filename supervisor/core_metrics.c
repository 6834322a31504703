/*
 * core_metrics.c - what the core shows at GET /metrics: the build, the
 * jobs this node holds by status, the worker slots and the spawner, the
 * isolation, the store's figures (through the port) and the job counters
 * (metrics.c).
 *
 * Theory of operation: nothing here runs on a job's path. A scrape reads
 * the counters the core bumps as jobs move, asks the runner for its slots
 * and the store for its stats, and walks the active map once to count the
 * held jobs by status and find the oldest one waiting for a slot (100,000
 * queued jobs: about a millisecond). The HTTP server adds its own
 * families after these (api/http_metrics.c).
 */
#include <stdio.h>

#include "core_internal.h"
#include "isolation.h"

#ifndef VALET_VERSION
#define VALET_VERSION "0.0.0"
#endif

struct held {
	uint64_t by_status[JOB_STATUS_MAX + 1];
	int64_t now;
	int64_t oldest_due; /* 0: none waits */
};

static void count_held(void *value, void *arg)
{
	const struct job *job = value;
	struct held *h = arg;
	int64_t due;

	if (job->status >= 0 && job->status <= JOB_STATUS_MAX)
		h->by_status[job->status]++;
	/* Waiting for a slot, due since its creation or its run_at: a first
	 * attempt of standalone work (a retry waits for its backoff, a later
	 * pipeline job for the one before it). */
	if ((job->core_where != CORE_QUEUED && job->core_where != CORE_DUE) || job->attempt > 0 ||
	    job->pipeline_index > 0)
		return;
	due = job->run_at > job->created_at ? job->run_at : job->created_at;
	if (due <= h->now && (!h->oldest_due || due < h->oldest_due))
		h->oldest_due = due;
}

static void write_queue(struct metrics_text *t, struct core *core)
{
	static const enum job_status held_states[] = {JOB_PENDING, JOB_SCHEDULED, JOB_IN_PROGRESS};
	struct held h = {.now = job_now_us()};

	idmap_foreach(core->active, count_held, &h);
	metrics_family(t, "valet_queue_jobs", "gauge",
		       "Unfinished jobs this node holds, by status (queued, due, running).");
	for (size_t i = 0; i < sizeof(held_states) / sizeof(held_states[0]); i++)
		metrics_sample(t, "valet_queue_jobs", (double)h.by_status[held_states[i]], "status",
			       job_status_name(held_states[i]), (const char *)NULL);
	metrics_family(t, "valet_queue_oldest_wait_seconds", "gauge",
		       "How long the oldest job that is due has waited for a worker slot "
		       "(0: none waits).");
	metrics_sample(t, "valet_queue_oldest_wait_seconds",
		       h.oldest_due ? (double)(h.now - h.oldest_due) / 1e6 : 0.0,
		       (const char *)NULL);
	metrics_family(t, "valet_queue_accepted", "gauge",
		       "Accepted work (jobs and pipelines) not started yet, counted against "
		       "[queue] capacity.");
	metrics_sample(t, "valet_queue_accepted", (double)core->nqueued, (const char *)NULL);
	metrics_family(t, "valet_queue_capacity", "gauge", "[queue] capacity.");
	metrics_sample(t, "valet_queue_capacity", (double)core->cfg->queue_capacity,
		       (const char *)NULL);
}

static void write_runner(struct metrics_text *t, struct core *core)
{
	struct runner_state rs;
	const struct isolation *iso = isolation_global();

	runner_state(core->runner, &rs);
	metrics_family(t, "valet_jobs_running", "gauge", "Jobs running on this node.");
	metrics_sample(t, "valet_jobs_running", (double)rs.running, (const char *)NULL);
	metrics_family(t, "valet_worker_slots", "gauge",
		       "Worker slots ([queue] workers) by state: busy runs a job.");
	metrics_sample(t, "valet_worker_slots", (double)rs.running, "state", "busy",
		       (const char *)NULL);
	metrics_sample(t, "valet_worker_slots",
		       (double)(rs.workers > rs.running ? rs.workers - rs.running : 0), "state",
		       "idle", (const char *)NULL);
	metrics_family(t, "valet_spawner_warm_children", "gauge",
		       "Job children forked ahead of time, waiting for a C task's job.");
	metrics_sample(t, "valet_spawner_warm_children", (double)rs.warm, (const char *)NULL);
	metrics_family(t, "valet_spawner_warming_paused", "gauge",
		       "1 while a warm child died unused and children are forked on demand.");
	metrics_sample(t, "valet_spawner_warming_paused", rs.warming_paused ? 1 : 0,
		       (const char *)NULL);
	metrics_family(t, "valet_spawner_up", "gauge",
		       "1 while the spawner process answers (0: no job can run).");
	metrics_sample(t, "valet_spawner_up", rs.spawner_up ? 1 : 0, (const char *)NULL);
	metrics_family(t, "valet_isolation_degraded", "gauge",
		       "1 when configured isolation is missing and jobs run without it "
		       "(allow_degraded_isolation).");
	metrics_sample(t, "valet_isolation_degraded", iso && iso->degraded ? 1 : 0,
		       (const char *)NULL);
}

static void write_store(struct metrics_text *t, struct core *core)
{
	static const char *const conns[2] = {"writer", "reader"};
	struct store_stats ss = {0};

	if (!core->store->ops->stats)
		return;
	core->store->ops->stats(core->store, &ss);
	metrics_family(t, "valet_database_up", "gauge",
		       "1 while both database connections are up, the node registered and holding its "
		       "lease, writes taken and the database answering.");
	metrics_sample(t, "valet_database_up", ss.up ? 1 : 0, (const char *)NULL);
	metrics_family(t, "valet_storage_round_trips_total", "counter",
		       "Batches of statements sent to the database (one round trip each), by "
		       "connection.");
	for (int i = 0; i < 2; i++)
		metrics_sample(t, "valet_storage_round_trips_total", (double)ss.round_trips[i],
			       "connection", conns[i], (const char *)NULL);
	metrics_family(t, "valet_storage_round_trip_seconds", "histogram",
		       "From a batch sent to its last answer, by connection.");
	for (int i = 0; i < 2; i++)
		if (ss.rtt[i])
			metrics_hist_write(t, "valet_storage_round_trip_seconds", "connection",
					   conns[i], ss.rtt[i]);
	if (ss.batch) {
		metrics_family(t, "valet_storage_group_commit_size", "histogram",
			       "Changes (creates and state changes) written per transaction.");
		metrics_hist_write(t, "valet_storage_group_commit_size", NULL, NULL, ss.batch);
	}
	metrics_family(t, "valet_storage_unsaved_changes", "gauge",
		       "State changes waiting to be written to the database.");
	metrics_sample(t, "valet_storage_unsaved_changes", (double)ss.unsaved, (const char *)NULL);
	metrics_family(t, "valet_storage_rescued_jobs_total", "counter",
		       "Jobs this node rescued from nodes whose lease expired (lost nodes).");
	metrics_sample(t, "valet_storage_rescued_jobs_total", (double)ss.rescued,
		       (const char *)NULL);
}

void core_metrics(struct core *core, struct metrics_text *t)
{
	metrics_family(t, "valet_build_info", "gauge", "valetd's version; always 1.");
	metrics_sample(t, "valet_build_info", 1, "version", VALET_VERSION, (const char *)NULL);
	metrics_family(t, "valet_storage_healthy", "gauge",
		       "1 while the store takes new work (as /api/status storage_healthy).");
	metrics_sample(t, "valet_storage_healthy", core_storage_healthy(core) ? 1 : 0,
		       (const char *)NULL);
	write_queue(t, core);
	write_runner(t, core);
	write_store(t, core);
	metrics_write_jobs(t, core->metrics);
}
