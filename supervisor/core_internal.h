/*
 * core_internal.h - state shared by core.c (places, scheduler, dispatch,
 * reactions to job events), core_ops.c (the operations the API calls) and
 * core_cancel.c (cancel and DELETE).
 */
#ifndef VALET_CORE_INTERNAL_H
#define VALET_CORE_INTERNAL_H

#include <sys/queue.h>

#include "core.h"
#include "idmap.h"
#include "lifecycle.h"
#include "metrics.h"
#include "queue.h"
#include "run.h"
#include "store.h"
#include "tasks.h"

/* A reply held until a running job has been killed and reaped. */
struct core_waiter {
	struct core_waiter *next;
	struct job *job;      /* reference */
	struct pipeline *pl;  /* reference or NULL */
	bool delete_after;
	core_done_fn cb;
	void *arg;
};

struct core {
	struct ev_loop *loop;
	const struct config *cfg;
	struct store *store;
	struct tasks *reg;
	struct runner *runner;
	struct metrics *metrics;    /* what /metrics shows of jobs (metrics.h) */

	struct queue queue;	    /* waiting work: FIFOs and the run_at heap */
	size_t nqueued;             /* accepted, not yet started: counts against capacity */
	/* The jobs after the first of each pipeline held here (active_pl) or
	 * being stored: capacity counts a pipeline as its jobs (admit()). */
	size_t pl_extra;
	ev_periodic sched_w;	    /* at the heap's earliest due time */
	ev_prepare dispatch_w;

	struct idmap *active;       /* id -> job for every unfinished job */
	struct idmap *active_pl;    /* id -> pipeline for every unfinished pipeline */
	struct core_waiter *waiters;
	/* Per owner (job.owner): runs going on here, and the most its policy
	 * allows at once (0: any); grown to the largest owner seen. */
	struct core_owner {
		uint32_t running, max_running;
	} * owners;
	size_t nowners;

	bool shared;                /* the store is a queue shared by several nodes */
	bool paused;                /* shared store: lease lost, start nothing */
	bool draining;
	ev_timer grace_w;
	void (*shutdown_done)(void *arg);
	void *shutdown_arg;
};

/* core.c */
void core_kick(struct core *core);
void core_enqueue(struct core *core, struct job *job);
void core_schedule(struct core *core, struct job *job);
/* The job is nowhere any more: out of the active map (its reference
 * dropped). */
void core_deactivate(struct core *core, struct job *job);
/* core_shared.c: make work active here: the standalone job, or pipeline pl
 * with its jobs from index `from` on (bound to it, waiting). */
void core_hold(struct core *core, struct job *job, struct pipeline *pl, size_t from);
/* Hand work held here claimed, which will not start here (the drain), back
 * to the shared store's queue: a standalone job or an unstarted pipeline.
 * false: the store has no such queue (the caller keeps it). */
bool core_give_back(struct core *core, const uint8_t id[JOB_ID_LEN], bool pipeline);
/* Give back everything held here that has not started (waiting standalone
 * jobs, pipelines none of whose jobs started) and forget it; what: the
 * log's message. */
void core_give_back_waiting(struct core *core, const char *what);
/* The store's calls into the core (store_ops.attach). */
extern const struct store_queue_hooks core_queue_hooks;
/* core.c: take an active, not running job out of wherever it waits. */
void core_unqueue(struct core *core, struct job *job);
/* Final status for a job that never ran (cancel, or pipeline cut short). */
void core_finish_unrun(struct core *core, struct job *job, enum job_status st,
		       const char *reason);
/* Finish the pipeline: cancel its unfinished jobs with reason. */
void core_pipeline_end(struct core *core, struct pipeline *pl, enum job_status st,
		       const char *jobs_reason, const char *pl_reason);
/* Hold the reply until job (and pl, when given) are final; then answer with
 * them, or delete them first when delete_after. 0 or -ENOMEM. */
int core_wait_final(struct core *core, struct job *job, struct pipeline *pl, bool delete_after,
		    core_done_fn cb, void *arg);
/* Another node asks to cancel work this node holds (no reply). */
void core_cancel_held(struct core *core, const uint8_t id[JOB_ID_LEN], bool pipeline);
/* core_ops.c: how many units of work this node holds at most, running or
 * waiting: a small backlog, so that work another node could run is not
 * hoarded - unless the store says no other node shares its queue (alone):
 * then half the queue's capacity. */
size_t core_local_cap(const struct core *core);
/* How many more units of work this node should take on now. */
size_t core_local_room(const struct core *core);
/* How much to ask the shared store for now: the room, in batches of at
 * least half the backlog unless the node is about to run dry. */
size_t core_claim_size(const struct core *core);
/* Answer OK with job/pl once the store has made every change so far
 * durable (a read that follows sees them); at once for the memory store. */
void core_reply_synced(struct core *core, core_done_fn cb, void *arg, struct job *job,
		       struct pipeline *pl);
/* "<what> with ID: <id> not found" (what: "job", "job result", "pipeline"). */
void core_reply_not_found(core_done_fn cb, void *arg, const uint8_t id[JOB_ID_LEN],
			  const char *what);
/* 503 "storage did not answer within <submit_timeout> - try again later":
 * a read the store gave up waiting for (-ETIMEDOUT). */
void core_reply_no_answer(struct core *core, core_done_fn cb, void *arg);
/* core_policy.c: whether req keeps to pol (NULL: yes): 0, or -1 with the
 * broken rule in msg. */
int core_policy_check(struct core *core, const struct core_policy *pol,
		      const struct job_request *req, char *msg, size_t len);
/* Remember pol's max_running for owner (the latest policy wins). */
void core_policy_note(struct core *core, const struct core_policy *pol, uint16_t owner);
/* Whether owner runs as many jobs here as its policy allows. */
bool core_owner_full(const struct core *core, uint16_t owner);
/* A run of owner's started (+1) or ended (-1). */
void core_owner_ran(struct core *core, uint16_t owner, int delta);
/* Whether owner may have njobs more jobs waiting here under pol: 0 or -1. */
int core_policy_quota(struct core *core, const struct core_policy *pol, uint16_t owner,
		      size_t njobs, char *msg, size_t len);
void core_reply_err(core_done_fn cb, void *arg, enum core_err err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
