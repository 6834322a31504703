/*
 * store.h - the storage port. The core persists jobs, pipelines and results
 * through it; the API reads through the core, which reads through it.
 * Adapters: memory (storage/memory.c), PostgreSQL (later).
 *
 * Every read or create takes a callback that is called exactly once with
 * the reply, possibly before the call returns (the memory adapter always
 * answers at once; the PostgreSQL adapter answers from the event loop). A
 * call that returns a negative errno never calls its callback.
 *
 * Objects in a reply are borrowed for the duration of the callback: take a
 * reference (job_ref/pipeline_ref) to keep one.
 *
 * save_* calls record a state change of a job the core holds; they never
 * fail towards the caller (an adapter that cannot write queues the change
 * and retries; nothing accepted is lost).
 */
#ifndef VALET_STORE_H
#define VALET_STORE_H

#include "../supervisor/job.h"

struct store;

struct store_reply {
	int err; /* 0, -ENOENT (unknown id), -EIO, -EAGAIN (storage unavailable) */
	struct job *job;
	struct pipeline *pipeline;
	struct job **jobs;
	size_t njobs;
	struct pipeline **pipelines;
	size_t npipelines;
};

typedef void (*store_done_fn)(void *arg, const struct store_reply *reply);

struct store_query {
	enum job_status status; /* JOB_UNDEFINED = all */
	size_t offset;
	size_t limit;           /* 0 = no limit */
};

struct store_ops {
	const char *name;
	/* Persist a new standalone job (reply.job = the job). */
	int (*create_job)(struct store *st, struct job *job, store_done_fn cb, void *arg);
	/* Persist a new pipeline and all its jobs (reply.pipeline). */
	int (*create_pipeline)(struct store *st, struct pipeline *pl, store_done_fn cb,
			       void *arg);
	/* Record a change (JOB_F_* mask) of a job or pipeline. */
	void (*save_job)(struct store *st, struct job *job, unsigned fields);
	void (*save_pipeline)(struct store *st, struct pipeline *pl, unsigned fields);

	int (*get_job)(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
		       void *arg);
	/* All jobs (pipeline jobs included) oldest first (reply.jobs). */
	int (*list_jobs)(struct store *st, const struct store_query *q, store_done_fn cb,
			 void *arg);
	/* Delete a job and its result. The core checks pipeline membership. */
	int (*delete_job)(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			  void *arg);
	/* reply.job is the job with has_result set; -ENOENT when no result. */
	int (*get_result)(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			  void *arg);
	int (*delete_result)(struct store *st, const uint8_t id[JOB_ID_LEN],
			     store_done_fn cb, void *arg);

	int (*get_pipeline)(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			    void *arg);
	int (*list_pipelines)(struct store *st, const struct store_query *q,
			      store_done_fn cb, void *arg);
	/* reply.pipeline and reply.jobs (in pipeline order). */
	int (*pipeline_jobs)(struct store *st, const uint8_t id[JOB_ID_LEN],
			     store_done_fn cb, void *arg);
	/* Delete a pipeline, its jobs and their results. */
	int (*delete_pipeline)(struct store *st, const uint8_t id[JOB_ID_LEN],
			       store_done_fn cb, void *arg);

	bool (*healthy)(struct store *st);
	void (*free)(struct store *st);
};

struct store {
	const struct store_ops *ops;
};

/* The embedded in-memory store. */
struct store *store_memory_new(void);

/* Convenience: st->ops->free(st); NULL is a no-op. */
void store_free(struct store *st);

#endif
