/*
 * core.h - the service layer that the HTTP driver calls: submit, read,
 * change, cancel and delete jobs and pipelines; list tasks; report health.
 *
 * Every operation that may touch storage answers through a callback that is
 * called exactly once, maybe before the call returns (memory store) or later
 * from the event loop (PostgreSQL). A call never fails without calling it.
 * Objects in the reply are borrowed for the callback's duration.
 *
 * The core knows no HTTP: errors are core_err kinds plus a message, and the
 * driver maps them to status codes (EINVAL 400, ENOTFOUND 404, ECONFLICT 409,
 * EFULL and EUNAVAIL 503, EINTERNAL 500).
 *
 * Ownership: new work records the owner its request names (job_owner_id()
 * of the API key, 0 for none), and every call on existing work takes an
 * owner too: 0 sees all work, any other number only the work of that
 * owner - the rest answers ENOTFOUND exactly as an unknown id does, and is
 * left out of lists. What an owner is, the core does not know.
 *
 * Policy: a submit may carry a core_policy (an API key's): the task names
 * and seccomp profiles it may use, the most it may ask for, and how much of
 * its owner's work may wait and run at once. Work outside it is refused
 * with EFORBIDDEN and a message that names the rule; nothing is stored.
 */
#ifndef VALET_CORE_H
#define VALET_CORE_H

#include <ev.h>

#include "config.h"
#include "job.h"
#include "store.h"

struct core;
struct tasks;
struct store;

enum core_err {
	CORE_OK = 0,
	CORE_EINVAL,
	CORE_ENOTFOUND,
	CORE_ECONFLICT,
	CORE_EFULL,
	CORE_EUNAVAIL,
	CORE_EINTERNAL,
	CORE_EFORBIDDEN, /* outside the submitter's policy */
};

/* What one submitter may ask for; every field 0 or NULL: whatever the
 * config allows. Borrowed by a request for the call's duration. */
struct core_policy {
	const char *who;	/* names it in messages: "the API key \"ci\"" */
	unsigned profiles;	/* bit (1 << enum sbx_profile) of each allowed; 0 = any */
	char **tasks;		/* NULL-terminated names of the allowed tasks; NULL = any */
	int64_t max_timeout_ms; /* the most "timeout" it may ask for; 0 = no own maximum */
	uint64_t max_memory;	/* the most limits.memory it may ask for (bytes); 0 = none */
	int64_t max_cpu_ms;	/* the most limits.cpu it may ask for; 0 = none */
	uint32_t max_running;	/* its owner's runs on this node at once (more wait, are
				 * not refused); 0 = any */
	uint32_t max_queued;	/* its owner's jobs waiting on this node at most; 0 = any */
};

struct core_reply {
	enum core_err err;
	const char *message; /* set when err != CORE_OK */
	struct job *job;
	struct pipeline *pipeline;
	struct job **jobs;
	size_t njobs;
	struct pipeline **pipelines;
	size_t npipelines;
	uint64_t next; /* lists: the cursor after this page (core_list_query.after) */
};

typedef void (*core_done_fn)(void *arg, const struct core_reply *reply);

/* A decoded job request (the API checks JSON types; the core validates). */
struct job_request {
	const char *name;        /* NULL or "" = missing */
	const char *description; /* NULL = absent */
	const char *task_name;   /* NULL or "" = missing */
	const char *params_json; /* compact JSON object text, NULL = absent */
	bool has_timeout;
	int64_t timeout_ms;      /* > 0 when has_timeout (the API rejects <= 0) */
	bool has_run_at;
	int64_t run_at;          /* us since epoch */
	bool use_previous_results;
	int max_attempts;        /* 0 = the task's / configured default */
	bool has_limits;         /* "limits" was given (maybe {}) */
	struct job_limits limits; /* what it asked for: 0 = not asked; set unused */
	uint16_t owner;		  /* who asks (job_owner_id()); 0 = nobody */
	const struct core_policy *policy; /* NULL: no policy of its own */
};

struct pipeline_request {
	const char *name;
	const char *description;
	bool has_run_at;
	int64_t run_at;
	size_t njobs;
	struct job_request *jobs; /* their owner and policy are the pipeline's */
	uint16_t owner;
	const struct core_policy *policy;
};

/* A PATCH: only the present fields change. */
struct patch_request {
	const char *name;        /* NULL = absent; "" is rejected by the core */
	const char *description; /* NULL = absent */
};

/* A page of a list (store.h's store_query): read a long list page by
 * page, each after the reply.next of the one before. */
struct core_list_query {
	enum job_status status;  /* JOB_UNDEFINED = all */
	size_t offset;
	size_t limit;            /* 0 = all */
	uint16_t owner;		 /* only this owner's work; 0 = everyone's */
	uint64_t after;		 /* the cursor: 0 = from the start */
};

struct core *core_new(struct ev_loop *loop, const struct config *cfg, struct store *store,
		      struct tasks *reg, int spawner_fd);
void core_free(struct core *core);

void core_submit_job(struct core *core, const struct job_request *req, core_done_fn cb,
		     void *arg);
void core_submit_pipeline(struct core *core, const struct pipeline_request *req,
			  core_done_fn cb, void *arg);

/* On one job or pipeline, as owner sees it (0: all work). */
void core_get_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner, core_done_fn cb,
		  void *arg);
void core_list_jobs(struct core *core, const struct core_list_query *q, core_done_fn cb,
		    void *arg);
void core_patch_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		    const struct patch_request *req, core_done_fn cb, void *arg);
/* Cancels a queued or running job first. ECONFLICT for a pipeline job. */
void core_delete_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg);
/* Stops a queued or running job: CANCELLED, the record stays (reply.job). */
void core_cancel_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg);
void core_get_result(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg);
void core_delete_result(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			core_done_fn cb, void *arg);

void core_get_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		       core_done_fn cb, void *arg);
void core_list_pipelines(struct core *core, const struct core_list_query *q,
			 core_done_fn cb, void *arg);
void core_patch_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			 const struct patch_request *req, core_done_fn cb, void *arg);
void core_delete_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			  core_done_fn cb, void *arg);
void core_cancel_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			  core_done_fn cb, void *arg);
/* A page of a pipeline's jobs: q's after and limit (its owner is unused). */
void core_pipeline_jobs(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			const struct core_list_query *q, core_done_fn cb, void *arg);

/* Sorted task names; borrowed, valid for the daemon's life. */
const char *const *core_task_names(struct core *core, size_t *count);
bool core_queue_healthy(struct core *core);
bool core_storage_healthy(struct core *core);
/* The API keys the store keeps for every node (store_ops.watch_keys): cb
 * as there; cb NULL stops. -ENOTSUP: the store keeps none (memory). */
int core_watch_keys(struct core *core, store_keys_fn cb, void *arg);
/* True while shutting down: the API answers 503 to new work. */
bool core_draining(struct core *core);
/* What this node runs now, and what it holds that has not started. */
void core_load(struct core *core, unsigned *running, size_t *queued);

struct metrics_text;
/* Append the core's metrics families (Prometheus text) to t: the build,
 * held jobs, slots, spawner, isolation, the store's figures, the job
 * counters (core_metrics.c). */
void core_metrics(struct core *core, struct metrics_text *t);

/* Graceful shutdown: refuse new work, let running jobs finish for up to the
 * grace period, then kill them and record why. Calls done(arg) once when
 * nothing runs any more. */
void core_shutdown(struct core *core, void (*done)(void *arg), void *arg);
/* A second stop request during the shutdown: end the grace period now,
 * killing the running jobs ("killed at shutdown: stopped at once"). */
void core_shutdown_now(struct core *core);

#endif
