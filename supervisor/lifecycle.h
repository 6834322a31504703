/*
 * lifecycle.h - the one state machine of jobs and pipelines.
 *
 * Every status change of a job or a pipeline goes through lc_job() or
 * lc_pipeline(): they check it against the state x event table
 * (lifecycle.c), set the status with its timestamps, reason and result,
 * and tell the store what changed. Where a job waits meanwhile (the FIFOs,
 * the run_at heap, a child) is the core's business (core.c, queue.c); what
 * state it is in is this file's.
 *
 * A job is born PENDING (or SCHEDULED never: only its due time makes it
 * so), a pipeline PENDING; both are stored that way by the create.
 *
 *   job event   from                   to
 *   DUE         PENDING                SCHEDULED    its run_at came (first attempt)
 *   START       PENDING, SCHEDULED     IN_PROGRESS  a child runs it
 *   END         IN_PROGRESS            COMPLETED, FAILED, CANCELLED  with its result
 *   RETRY       IN_PROGRESS            PENDING      the attempt failed; another is due
 *   DROP        PENDING, SCHEDULED     FAILED, CANCELLED  it never ran
 *
 *   pipeline    from                   to
 *   START       PENDING                IN_PROGRESS  its first job starts
 *   END         IN_PROGRESS            COMPLETED, FAILED, CANCELLED
 *   END         PENDING                FAILED, CANCELLED  it never ran
 */
#ifndef VALET_LIFECYCLE_H
#define VALET_LIFECYCLE_H

#include <stdint.h>

#include "job.h"

struct store;

enum lc_job_event {
	LC_JOB_DUE,
	LC_JOB_START,
	LC_JOB_END,
	LC_JOB_RETRY,
	LC_JOB_DROP,
	LC_JOB_EVENTS
};

enum lc_pl_event {
	LC_PL_START,
	LC_PL_END,
	LC_PL_EVENTS
};

/* What an event says besides (NULL for DUE and START). */
struct lc_change {
	enum job_status to;	 /* END, DROP (and pipeline END): the final status */
	const char *reason;	 /* FAILED, CANCELLED, RETRY: the failure_reason */
	const char *result_json; /* END: the task's result (NULL: none) */
	const char *error;	 /* END: the failure text stored with the result */
	int64_t when;		 /* END of a pipeline: completed_at; 0 = now */
};

/* Apply ev to job (see the table). 0, or -EINVAL when the table does not
 * allow it (job untouched: a bug, logged). */
int lc_job(struct store *st, struct job *job, enum lc_job_event ev, const struct lc_change *c);
int lc_pipeline(struct store *st, struct pipeline *pl, enum lc_pl_event ev,
		const struct lc_change *c);

/* Whether the table allows ev from `from` to `to` (to: ignored for the
 * events whose target is fixed). */
bool lc_job_allowed(enum lc_job_event ev, enum job_status from, enum job_status to);
bool lc_pipeline_allowed(enum lc_pl_event ev, enum job_status from, enum job_status to);

#endif
