/*
 * run.h - the daemon's side of job children ("runs"). A run is one child
 * executing one job, or several consecutive C-task jobs of a pipeline.
 * The runner owns the spawner connection, the worker slots, every pipe of
 * every child, and the per-job deadline timers; it reports back through
 * hooks and never touches storage.
 */
#ifndef VALET_RUN_H
#define VALET_RUN_H

#include <stdbool.h>

#include <ev.h>

#include "config.h"
#include "job.h"
#include "outcome.h"

struct tasks;
struct runner;

struct runner_hooks {
	/* The job now runs (set IN_PROGRESS, started_at). */
	void (*job_started)(void *arg, struct job *job);
	/* The job ended: status COMPLETED/FAILED/CANCELLED, reason "" when
	 * completed; result_json (may be NULL) and error (may be NULL) form its
	 * result; job->outcome is filled in. */
	void (*job_done)(void *arg, struct job *job, enum job_status status, const char *reason,
			 const char *result_json, const char *error);
	/* A finished job's outcome changed after job_done (the child's pid of
	 * an earlier job of a shared pipeline child, learnt late). */
	void (*outcome_changed)(void *arg, struct job *job);
	/* The child is gone and its slot free. ran = how many of the run's jobs
	 * got a job_done; the rest never started. */
	void (*run_done)(void *arg, struct job **jobs, size_t njobs, size_t ran);
};

struct runner *runner_new(struct ev_loop *loop, const struct config *cfg,
			  const struct tasks *reg, int spawner_fd,
			  const struct runner_hooks *hooks, void *arg);
void runner_free(struct runner *r);

/* Children the spawner must track: workers running + as many pre-forked. */
unsigned runner_max_children(const struct config *cfg);
/* Shutting down: kill the pre-forked children, fork no more. */
void runner_quiesce(struct runner *r);

/* A free worker slot? */
bool runner_has_slot(const struct runner *r);
unsigned runner_running(const struct runner *r);
bool runner_healthy(const struct runner *r);

struct metrics;
/* Where to count kill latencies (borrowed; NULL: nowhere). */
void runner_set_metrics(struct runner *r, struct metrics *m);

/* The worker slots and the spawner, for the metrics. */
struct runner_state {
	unsigned workers;    /* jobs that may run at once */
	unsigned running;    /* slots running a job */
	unsigned warm;	     /* children forked ahead, waiting for a job */
	bool warming_paused; /* a warm child died unused: forking on demand */
	bool spawner_up;     /* the spawner answers */
};
void runner_state(const struct runner *r, struct runner_state *out);

/*
 * Start a child for jobs[0..njobs) (one exec job, or consecutive C jobs of
 * one pipeline). previous_json: borrowed, the previous job's result or
 * NULL. Takes a reference on each job. On success hooks->job_started runs
 * for jobs[0] before this returns. Returns 0, -EBUSY (no slot), -EPIPE (no
 * spawner) or another negative errno; on error no hook is called.
 */
int runner_start(struct runner *r, struct job **jobs, size_t njobs, const char *previous_json);

/* Kill the child running job (no-op when it runs nothing). The first reason wins. */
void runner_kill(struct runner *r, struct job *job, enum run_kill why);
/* Kill every child (shutdown). */
void runner_kill_all(struct runner *r, enum run_kill why);

#endif
