/*
 * memory.c - the embedded in-memory store (the default backend).
 *
 * Theory of operation
 *
 * The memory store keeps the very objects the core works on: it holds one
 * reference to every job and pipeline it was given, finds them by id through
 * an idmap, and keeps them in creation order on two lists (job->store_link,
 * pl->store_link) for the list calls. Because the objects are shared, a
 * change the core makes is already "stored": save_job and save_pipeline have
 * nothing to do. Nothing else is allocated per job, which keeps 100,000
 * queued jobs cheap.
 *
 * Every call answers at once: the callback runs before the call returns 0,
 * exactly once. A call that fails (unknown id, out of memory) returns a
 * negative errno and does not call it, as store.h says. While a callback
 * runs, the store holds an extra reference to every object in the reply, so
 * a callback that deletes what it was handed (the core's delete path) does
 * not pull the object out from under itself.
 *
 * A pipeline's jobs are created with it, in pipeline order, and are also
 * plain jobs on the job list. Deleting the pipeline deletes them (and so
 * their results); deleting one of them alone is refused by the core (409)
 * before it reaches us.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "../supervisor/idmap.h"
#include "../supervisor/store.h"
#include "memory.h"

TAILQ_HEAD(mem_job_list, job);
TAILQ_HEAD(mem_pipeline_list, pipeline);

struct mem_store {
	struct store base; /* first: a struct store * is a struct mem_store * */
	struct idmap *jobs;
	struct mem_job_list job_list; /* creation order */
	struct idmap *pipelines;
	struct mem_pipeline_list pipeline_list;
};

static struct mem_store *mem_of(struct store *st)
{
	return (struct mem_store *)st;
}

/* ---- answering ------------------------------------------------------------ */

/* Calls cb with reply, holding references to the reply's objects meanwhile. */
static void mem_answer(store_done_fn cb, void *arg, const struct store_reply *reply)
{
	size_t i;

	if (!cb)
		return;
	job_ref(reply->job);
	pipeline_ref(reply->pipeline);
	for (i = 0; i < reply->njobs; i++)
		job_ref(reply->jobs[i]);
	for (i = 0; i < reply->npipelines; i++)
		pipeline_ref(reply->pipelines[i]);

	cb(arg, reply);

	for (i = 0; i < reply->npipelines; i++)
		pipeline_unref(reply->pipelines[i]);
	for (i = 0; i < reply->njobs; i++)
		job_unref(reply->jobs[i]);
	pipeline_unref(reply->pipeline);
	job_unref(reply->job);
}

static int mem_answer_job(store_done_fn cb, void *arg, struct job *job)
{
	struct store_reply reply = {.job = job};

	mem_answer(cb, arg, &reply);
	return 0;
}

static int mem_answer_pipeline(store_done_fn cb, void *arg, struct pipeline *pl)
{
	struct store_reply reply = {.pipeline = pl};

	mem_answer(cb, arg, &reply);
	return 0;
}

/* How many of total matches to return, after offset and limit. */
static size_t mem_page_size(size_t total, const struct store_query *q)
{
	size_t n = q->offset < total ? total - q->offset : 0;

	if (q->limit && q->limit < n)
		n = q->limit;
	return n;
}

/* ---- jobs ----------------------------------------------------------------- */

/* Every job the memory store holds is the core's: creates always claim. */
static int mem_create_job(struct store *st, struct job *job, unsigned flags, store_done_fn cb,
			  void *arg)
{
	struct store_reply reply = {.job = job, .claimed = true};
	struct mem_store *ms = mem_of(st);
	int rc = idmap_put(ms->jobs, job->id, job);

	if (rc < 0)
		return rc;
	/* TAILQ macros evaluate their arguments more than once: no job_ref()
	 * inside them. */
	job_ref(job);
	TAILQ_INSERT_TAIL(&ms->job_list, job, store_link);
	mem_answer(cb, arg, &reply);
	return 0;
}

/* Unlinks a job the store holds and drops the store's reference. */
static void mem_drop_job(struct mem_store *ms, struct job *job)
{
	if (idmap_del(ms->jobs, job->id) != job)
		return;
	TAILQ_REMOVE(&ms->job_list, job, store_link);
	job_unref(job);
}

static int mem_create_pipeline(struct store *st, struct pipeline *pl, unsigned flags,
			       store_done_fn cb, void *arg)
{
	struct store_reply reply = {.pipeline = pl, .claimed = true};
	struct mem_store *ms = mem_of(st);
	size_t i, added = 0;
	int rc;

	for (i = 0; i < pl->njobs; i++) {
		if (!pl->jobs[i])
			return -EINVAL;
	}
	rc = idmap_put(ms->pipelines, pl->id, pl);
	if (rc < 0)
		return rc;
	for (added = 0; added < pl->njobs; added++) {
		rc = idmap_put(ms->jobs, pl->jobs[added]->id, pl->jobs[added]);
		if (rc < 0)
			goto fail;
	}
	pipeline_ref(pl);
	TAILQ_INSERT_TAIL(&ms->pipeline_list, pl, store_link);
	for (i = 0; i < pl->njobs; i++) {
		job_ref(pl->jobs[i]);
		TAILQ_INSERT_TAIL(&ms->job_list, pl->jobs[i], store_link);
	}
	mem_answer(cb, arg, &reply);
	return 0;

fail:
	/* Nothing is on the lists yet and no reference was taken. */
	while (added > 0)
		idmap_del(ms->jobs, pl->jobs[--added]->id);
	idmap_del(ms->pipelines, pl->id);
	return rc;
}

/* The memory store shares the live objects with the core: the change is
 * already in the object the store holds, so there is nothing to write. */
static void mem_save_job(struct store *st, struct job *job, unsigned fields)
{
}

static void mem_save_pipeline(struct store *st, struct pipeline *pl, unsigned fields)
{
}

static int mem_get_job(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
		       void *arg)
{
	struct job *job = idmap_get(mem_of(st)->jobs, id);

	if (!job)
		return -ENOENT;
	return mem_answer_job(cb, arg, job);
}

static int mem_list_jobs(struct store *st, const struct store_query *q, store_done_fn cb,
			 void *arg)
{
	struct mem_store *ms = mem_of(st);
	struct store_reply reply = {0};
	size_t total = 0, skipped = 0, cap;
	struct job *job;

	if (q->status == JOB_UNDEFINED) {
		total = idmap_count(ms->jobs);
	} else {
		TAILQ_FOREACH(job, &ms->job_list, store_link)
			total += job->status == q->status;
	}
	cap = mem_page_size(total, q);
	if (cap) {
		reply.jobs = malloc(cap * sizeof(*reply.jobs));
		if (!reply.jobs)
			return -ENOMEM;
		TAILQ_FOREACH(job, &ms->job_list, store_link) {
			if (q->status != JOB_UNDEFINED && job->status != q->status)
				continue;
			if (skipped < q->offset) {
				skipped++;
				continue;
			}
			reply.jobs[reply.njobs++] = job;
			if (reply.njobs == cap)
				break;
		}
	}
	mem_answer(cb, arg, &reply);
	free(reply.jobs);
	return 0;
}

static int mem_delete_job(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			  void *arg)
{
	struct mem_store *ms = mem_of(st);
	struct job *job = idmap_get(ms->jobs, id);
	int rc;

	if (!job)
		return -ENOENT;
	/* Keep it alive for the callback: reply.job is the deleted job. */
	job_ref(job);
	mem_drop_job(ms, job);
	rc = mem_answer_job(cb, arg, job);
	job_unref(job);
	return rc;
}

static int mem_get_result(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			  void *arg)
{
	struct job *job = idmap_get(mem_of(st)->jobs, id);

	if (!job || !job->has_result)
		return -ENOENT;
	return mem_answer_job(cb, arg, job);
}

static int mem_delete_result(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			     void *arg)
{
	struct job *job = idmap_get(mem_of(st)->jobs, id);

	if (!job || !job->has_result)
		return -ENOENT;
	job->has_result = false;
	job_set_str(&job->result_json, NULL);
	job_set_str(&job->result_error, NULL);
	return mem_answer_job(cb, arg, job);
}

/* ---- pipelines ------------------------------------------------------------ */

static int mem_get_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			    void *arg)
{
	struct pipeline *pl = idmap_get(mem_of(st)->pipelines, id);

	if (!pl)
		return -ENOENT;
	return mem_answer_pipeline(cb, arg, pl);
}

static int mem_list_pipelines(struct store *st, const struct store_query *q,
			      store_done_fn cb, void *arg)
{
	struct mem_store *ms = mem_of(st);
	struct store_reply reply = {0};
	size_t total = 0, skipped = 0, cap;
	struct pipeline *pl;

	if (q->status == JOB_UNDEFINED) {
		total = idmap_count(ms->pipelines);
	} else {
		TAILQ_FOREACH(pl, &ms->pipeline_list, store_link)
			total += pl->status == q->status;
	}
	cap = mem_page_size(total, q);
	if (cap) {
		reply.pipelines = malloc(cap * sizeof(*reply.pipelines));
		if (!reply.pipelines)
			return -ENOMEM;
		TAILQ_FOREACH(pl, &ms->pipeline_list, store_link) {
			if (q->status != JOB_UNDEFINED && pl->status != q->status)
				continue;
			if (skipped < q->offset) {
				skipped++;
				continue;
			}
			reply.pipelines[reply.npipelines++] = pl;
			if (reply.npipelines == cap)
				break;
		}
	}
	mem_answer(cb, arg, &reply);
	free(reply.pipelines);
	return 0;
}

static int mem_pipeline_jobs(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			     void *arg)
{
	struct pipeline *pl = idmap_get(mem_of(st)->pipelines, id);
	struct store_reply reply = {0};

	if (!pl)
		return -ENOENT;
	reply.pipeline = pl;
	reply.jobs = pl->jobs;
	reply.njobs = pl->njobs;
	mem_answer(cb, arg, &reply);
	return 0;
}

static int mem_delete_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN],
			       store_done_fn cb, void *arg)
{
	struct mem_store *ms = mem_of(st);
	struct pipeline *pl = idmap_del(ms->pipelines, id);
	int rc;

	if (!pl)
		return -ENOENT;
	TAILQ_REMOVE(&ms->pipeline_list, pl, store_link);
	/* The pipeline's own references keep its jobs alive until the
	 * pipeline goes; their results go with them. */
	for (size_t i = 0; i < pl->njobs; i++) {
		if (pl->jobs[i])
			mem_drop_job(ms, pl->jobs[i]);
	}
	rc = mem_answer_pipeline(cb, arg, pl);
	pipeline_unref(pl); /* the store's reference */
	return rc;
}

/* ---- the store ------------------------------------------------------------ */

static bool mem_healthy(struct store *st)
{
	return true;
}

static void mem_free(struct store *st)
{
	struct mem_store *ms = mem_of(st);
	struct pipeline *pl;
	struct job *job;

	while ((pl = TAILQ_FIRST(&ms->pipeline_list))) {
		TAILQ_REMOVE(&ms->pipeline_list, pl, store_link);
		pipeline_unref(pl);
	}
	while ((job = TAILQ_FIRST(&ms->job_list))) {
		TAILQ_REMOVE(&ms->job_list, job, store_link);
		job_unref(job);
	}
	idmap_free(ms->pipelines);
	idmap_free(ms->jobs);
	free(ms);
}

static const struct store_ops mem_ops = {
	.name = "memory",
	.create_job = mem_create_job,
	.create_pipeline = mem_create_pipeline,
	.save_job = mem_save_job,
	.save_pipeline = mem_save_pipeline,
	.get_job = mem_get_job,
	.list_jobs = mem_list_jobs,
	.delete_job = mem_delete_job,
	.get_result = mem_get_result,
	.delete_result = mem_delete_result,
	.get_pipeline = mem_get_pipeline,
	.list_pipelines = mem_list_pipelines,
	.pipeline_jobs = mem_pipeline_jobs,
	.delete_pipeline = mem_delete_pipeline,
	.healthy = mem_healthy,
	.free = mem_free,
};

struct store *store_memory_new(void)
{
	struct mem_store *ms = calloc(1, sizeof(*ms));

	if (!ms)
		return NULL;
	ms->base.ops = &mem_ops;
	TAILQ_INIT(&ms->job_list);
	TAILQ_INIT(&ms->pipeline_list);
	ms->jobs = idmap_new(offsetof(struct job, id));
	ms->pipelines = idmap_new(offsetof(struct pipeline, id));
	if (!ms->jobs || !ms->pipelines)
		goto fail;
	return &ms->base;

fail:
	idmap_free(ms->jobs);
	idmap_free(ms->pipelines);
	free(ms);
	return NULL;
}
