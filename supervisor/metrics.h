/*
 * metrics.h - what valetd counts for GET /metrics, and the Prometheus text
 * exposition format it is written in.
 *
 * Two parts. The toolkit: a histogram with fixed buckets (a plain array of
 * counters; observing is a short loop, no allocation) and a text buffer
 * with the writers of HELP/TYPE lines, samples and histograms, used by
 * every layer that exposes something (the core, the HTTP server, the
 * storage adapters through the port). And the daemon's job counters
 * (struct metrics): per task (a registered name, so a bounded set; a name
 * the table does not know never becomes a label), per failure class, per
 * blocked system call (at most METRICS_SYSCALLS names, then "other"). The
 * core bumps them as jobs move; nothing is formatted until a scrape.
 */
#ifndef VALET_METRICS_H
#define VALET_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

#define METRICS_HIST_MAX 20 /* buckets at most, +Inf not counted */

/* Cumulative only when written: counts[i] is the observations in
 * (bounds[i-1], bounds[i]], counts[nbounds] those above the last bound. */
struct metrics_hist {
	const double *bounds; /* borrowed, ascending: static tables */
	unsigned nbounds;
	uint64_t counts[METRICS_HIST_MAX + 1];
	uint64_t count;
	double sum;
};

void metrics_hist_init(struct metrics_hist *h, const double *bounds, unsigned nbounds);
void metrics_hist_observe(struct metrics_hist *h, double v);

/* The bucket tables (base units: seconds, bytes). */
extern const double metrics_buckets_latency[]; /* 0.5 ms .. 10 s: HTTP, storage */
extern const unsigned metrics_nbuckets_latency;
extern const double metrics_buckets_batch[]; /* 1 .. 512 changes */
extern const unsigned metrics_nbuckets_batch;

/* A growing text; err is set (-ENOMEM) once a write failed, and later
 * writes do nothing. */
struct metrics_text {
	char *data; /* NUL-terminated; new: the caller frees it */
	size_t len, cap;
	int err;
};

void metrics_printf(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram). */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
/* A label value, escaped (\\, \", \n), appended as it goes in a sample. */
void metrics_label_value(struct metrics_text *t, const char *value);
/*
 * One sample: name{labels} value. labels: NULL, or pairs of name and
 * value (values escaped here), NULL-terminated.
 */
void metrics_sample(struct metrics_text *t, const char *name, double value, ...)
    __attribute__((sentinel));
/* A histogram's _bucket (cumulative, le="..."), _sum and _count samples;
 * label: one "name", "value" pair put before le, or NULL. */
void metrics_hist_write(struct metrics_text *t, const char *name, const char *label,
			const char *value, const struct metrics_hist *h);

/* ---- the daemon's job counters ------------------------------------------------ */

/* Why an attempt failed (job_outcome.failure_class; outcome.c decides). */
enum metrics_failure {
	METRICS_FAIL_NONE = 0,
	METRICS_FAIL_TIMEOUT,
	METRICS_FAIL_OOM,
	METRICS_FAIL_SECCOMP,
	METRICS_FAIL_CPU_LIMIT,
	METRICS_FAIL_SIGNAL,
	METRICS_FAIL_EXIT,
	METRICS_FAIL_SETUP,
	METRICS_FAIL_OUTPUT_LIMIT,
	METRICS_FAIL_RESULT, /* malformed, missing or too large a result */
	METRICS_FAIL_TASK,   /* the task's own error (valet_fail, "error" in its output) */
	METRICS_FAIL_SHUTDOWN,
	METRICS_FAIL_LOST_NODE, /* the node lost its database lease */
	METRICS_FAIL_START,	/* the child could not be started */
	METRICS_FAIL_COUNT
};

const char *metrics_failure_name(enum metrics_failure f); /* "timeout", ... */

#define METRICS_SYSCALLS 64 /* distinct blocked system calls named; then "other" */

struct metrics_task {
	bool active; /* had a job on this node: its finished, failures and retries
		      * series are written from then on (all zero before) */
	uint64_t submitted;
	uint64_t finished[JOB_STATUS_MAX + 1]; /* by final status */
	uint64_t failures[METRICS_FAIL_COUNT]; /* failed attempts by class */
	uint64_t retries;
	struct metrics_hist wall, cpu, memory;
};

struct metrics {
	size_t ntasks;
	const char *const *task_names; /* borrowed: [ntasks] */
	struct metrics_task *tasks;    /* [ntasks] */
	struct metrics_hist queue_wait, kill_latency;
	const char *syscalls[METRICS_SYSCALLS]; /* interned names */
	uint64_t syscall_kills[METRICS_SYSCALLS + 1];
	size_t nsyscalls;
};

/* Counters for task_names[0..ntasks) (borrowed for the daemon's life).
 * NULL on ENOMEM. */
struct metrics *metrics_new(const char *const *task_names, size_t ntasks);
void metrics_free(struct metrics *m); /* NULL is a no-op */

/* The slot of a task name, or NULL for a name the table does not know. */
struct metrics_task *metrics_task(struct metrics *m, const char *task_name);

/* Events (all cheap: counters and a bucket search). */
void metrics_job_submitted(struct metrics *m, const struct job *job);
/* An attempt ended (job->outcome filled in): its figures, and the failure
 * class when it failed (retried or not). */
void metrics_attempt_ended(struct metrics *m, const struct job *job, enum job_status st);
/* The job reached its final status (job->status). */
void metrics_job_finished(struct metrics *m, const struct job *job);
void metrics_job_retried(struct metrics *m, const struct job *job);
/* The job's child could not be started (a failure of class "start"). */
void metrics_start_failed(struct metrics *m, const struct job *job);
/* A job started after waiting `seconds` since it was due. */
void metrics_queue_wait(struct metrics *m, double seconds);
/* A job killed at its deadline was reaped `seconds` after it. */
void metrics_kill_latency(struct metrics *m, double seconds);

/* The job families: submitted, finished, failures, retries, seccomp,
 * the histograms. */
void metrics_write_jobs(struct metrics_text *t, const struct metrics *m);

#endif
