/*
 * store.h - the storage port, defined by the core. The core persists jobs,
 * pipelines and results through it; the API reads through the core, which
 * reads through it. Adapters, in storage/, each with its own constructor
 * (which only main.c, the composition root, calls): memory
 * (storage/memory.h), PostgreSQL (storage/postgres.h).
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

#include "job.h"

struct store;

struct store_reply {
	int err; /* 0, -ENOENT (unknown id), -EIO, -EAGAIN (storage unavailable),
		  * -ETIMEDOUT (create: not confirmed in time, withdrawn) */
	bool claimed; /* create: this node holds the new work (the core runs it) */
	struct job *job;
	struct pipeline *pipeline;
	struct job **jobs;
	size_t njobs;
	struct pipeline **pipelines;
	size_t npipelines;
	/* Lists: where the page's last object is in the list's order, for
	 * store_query.after of the next page (any value for an empty page). */
	uint64_t next;
};

typedef void (*store_done_fn)(void *arg, const struct store_reply *reply);

/* The API keys a store keeps (store_ops.watch_keys): lines in the keys
 * file's format (NAME SCOPES SHA256 CREATED [FIELD=VALUE ...], api/auth.h),
 * or NULL with the reason they could not be read (borrowed). */
typedef void (*store_keys_fn)(void *arg, const char *lines, const char *error);

/*
 * A page of a list. after is a keyset cursor: reply.next of the page
 * before, so that a list read page by page neither skips nor repeats an
 * object when others are created or deleted in between (offset then
 * counts from the cursor). Positions are the store's own: creation order
 * for list_jobs and list_pipelines, pipeline order for pipeline_jobs.
 */
struct store_query {
	enum job_status status; /* JOB_UNDEFINED = all */
	size_t offset;
	size_t limit;           /* 0 = no limit */
	uint16_t owner;		/* only this owner's work (job.owner); 0 = all */
	uint64_t after;		/* only objects after this position; 0 = from the start */
};

/* A change of the keys a store keeps reaches every node within this. */
#define STORE_KEYS_BOUND_S 2

/* create flags */
#define STORE_CLAIM 1u /* this node will run it: claim it as it is stored */

/*
 * A store that is itself the job queue, shared by several valetd nodes
 * (PostgreSQL), hands work to the core through these hooks; the memory
 * store has no queue ops (every job it stores is the core's already).
 */
struct store_queue_hooks {
	/* Claimed work for this node: a standalone job (pl NULL), or pipeline pl
	 * to run from job index `from` on (its earlier jobs carry their
	 * results). Borrowed: take references. */
	void (*deliver)(void *arg, struct job *job, struct pipeline *pl, size_t from);
	/* Another node asks to cancel work this node holds. */
	void (*cancel)(void *arg, const uint8_t id[JOB_ID_LEN], bool pipeline);
	/* lost: this node could not renew its lease in time, so other nodes may
	 * soon take its work over: kill what runs, start nothing. !lost: the
	 * lease is back and the store gave every claim of this node back to the
	 * queue: forget the work held here that did not start, claim afresh. */
	void (*lease)(void *arg, bool lost);
	/* Another node shares the queue now (store_ops.alone turned false):
	 * give back what this node holds beyond its usual backlog. */
	void (*peers)(void *arg);
};

struct metrics_hist;

/*
 * What a store with a database reports for the metrics (store_ops.stats):
 * plain numbers and histograms it keeps (borrowed until the next loop
 * pass); the core names and writes them.
 */
struct store_stats {
	bool up;			     /* healthy (store_ops.healthy): connected, registered... */
	uint64_t round_trips[2];	     /* batches sent: [0] writer, [1] reader */
	const struct metrics_hist *rtt[2];   /* their round trip times, seconds (or NULL) */
	const struct metrics_hist *batch;    /* changes per group commit (or NULL) */
	uint64_t rescued;		     /* jobs rescued from nodes whose lease expired */
	size_t unsaved;			     /* changes waiting to be written */
};

struct store_ops {
	const char *name;
	/* Persist a new standalone job (reply.job = the job). flags: STORE_CLAIM
	 * asks to claim it for this node; reply.claimed says whether it was (a
	 * store without queue ops always claims). A store that may be slow
	 * answers within its submit timeout: 0 once the job is durable, or
	 * -ETIMEDOUT: withdrawn, it never exists (not now, not later). */
	int (*create_job)(struct store *st, struct job *job, unsigned flags, store_done_fn cb,
			  void *arg);
	/* Persist a new pipeline and all its jobs (reply.pipeline); answered
	 * like create_job. */
	int (*create_pipeline)(struct store *st, struct pipeline *pl, unsigned flags,
			       store_done_fn cb, void *arg);
	/* Record a change (JOB_F_* mask) of a job or pipeline. */
	void (*save_job)(struct store *st, struct job *job, unsigned fields);
	void (*save_pipeline)(struct store *st, struct pipeline *pl, unsigned fields);

	int (*get_job)(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
		       void *arg);
	/* All jobs (pipeline jobs included) oldest first (reply.jobs), a page
	 * of them as q says (reply.next: the cursor). */
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
	/* reply.pipeline and reply.jobs (in pipeline order): the page that
	 * q's after and limit say (its status, offset and owner are unused). */
	int (*pipeline_jobs)(struct store *st, const uint8_t id[JOB_ID_LEN],
			     const struct store_query *q, store_done_fn cb, void *arg);
	/* Delete a pipeline, its jobs and their results. */
	int (*delete_pipeline)(struct store *st, const uint8_t id[JOB_ID_LEN],
			       store_done_fn cb, void *arg);

	/* Call back once every change saved before this call is durable, so a
	 * read that follows sees it. NULL: saves are visible at once. */
	int (*sync)(struct store *st, store_done_fn cb, void *arg);
	bool (*healthy)(struct store *st);
	/* The metrics of a store with a database; NULL: none (memory). */
	void (*stats)(struct store *st, struct store_stats *out);
	/* API keys shared by every node (PostgreSQL's api_keys table); NULL:
	 * none (memory). From now on cb gets the live keys once read, then
	 * again whenever they change, within STORE_KEYS_BOUND_S of the change
	 * (on every node), and after a failed read; a failed read is reported
	 * once (lines NULL) until a read works again. cb NULL: stop. */
	int (*watch_keys)(struct store *st, store_keys_fn cb, void *arg);
	void (*free)(struct store *st);

	/* ---- queue ops: NULL for a store that is not a shared queue ---- */
	void (*attach)(struct store *st, const struct store_queue_hooks *hooks, void *arg);
	/* The core could start n more units of work here now (0: none - it
	 * drains or is full; claim nothing). */
	void (*want)(struct store *st, size_t n);
	/* No other node shares the queue now, as far as the store knows (a
	 * live lease at the last renewal, a node registered since): the core
	 * may hold much more of the work it is given, claimed at once. NULL or
	 * false: it keeps a small backlog (core_local_cap). */
	bool (*alone)(struct store *st);
	/* Cancel work this node does not hold: work still queued in the store
	 * becomes CANCELLED at once; work another node runs is cancelled there
	 * (the reply comes once it is final). reply.job or reply.pipeline. */
	int (*cancel)(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline,
		      store_done_fn cb, void *arg);
	/* Work this node holds claimed will not start here (the core drains and
	 * forgets it): a standalone job, or a pipeline none of whose jobs
	 * started (pipeline true). Give it back to the queue so that other
	 * nodes claim it now, not after the grace period: once the changes
	 * saved before are written, and only while this node still holds it
	 * unstarted; it ends or fails nothing. No answer: what this does not
	 * give back (the database is down), close() does. */
	void (*give_back)(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline);
	/* Shutdown: stop claiming, give back claimed work that did not start,
	 * write every pending change; then done(arg), once. */
	void (*close)(struct store *st, void (*done)(void *arg), void *arg);
};

struct store {
	const struct store_ops *ops;
};

/* st->ops->free(st); NULL is a no-op. */
static inline void store_free(struct store *st)
{
	if (st)
		st->ops->free(st);
}

#endif
