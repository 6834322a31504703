/*
 * memory.c - the embedded in-memory store (the default backend).
 *
 * Theory of operation
 *
 * The memory store keeps the very objects the core works on: it holds one
 * reference to every job and pipeline it was given. Because the objects are
 * shared, a change the core makes is already "stored": save_job and
 * save_pipeline have nothing to do.
 *
 * Its bookkeeping is its own (struct job and struct pipeline carry nothing
 * of it): one creation log per kind of object. A log is an array of object
 * pointers in creation order, in chunks of MEM_CHUNK slots that never move,
 * and an indirect idmap from id to slot, which finds an object for the
 * get calls and its slot for a delete. The list calls walk the slots in
 * order (oldest first); a delete leaves a hole (NULL) that the walks skip.
 * Holes at the end are given back at once; once holes outnumber the objects
 * (and fill a chunk), the log is compacted: the objects slide to the front,
 * in order, and the map is pointed at their new slots - O(n) for at least
 * n deletes.
 *
 * Each slot also holds its object's sequence number, 1, 2, 3, ... in the
 * order of the pushes; a hole keeps its number and a compaction moves the
 * numbers with their objects, so the numbers of the slots always ascend.
 * That is the lists' cursor (store_query.after, reply.next): a page goes
 * on at the first slot numbered above it, found by binary search, however
 * the log changed in between. So a job costs the store 16 bytes in the log
 * besides its slot in the map (and holes until a compaction), which keeps
 * 100,000 queued jobs cheap.
 *
 * Every call answers at once: the callback runs before the call returns 0,
 * exactly once. A call that fails (unknown id, out of memory) returns a
 * negative errno and does not call it, as store.h says. While a callback
 * runs, the store holds an extra reference to every object in the reply, so
 * a callback that deletes what it was handed (the core's delete path) does
 * not pull the object out from under itself. Nothing walks a log while a
 * callback runs (the list calls copy their page first), so a callback may
 * delete, and so compact, freely.
 *
 * A pipeline's jobs are created with it, in pipeline order, and are also
 * plain jobs in the job log. Deleting the pipeline deletes them (and so
 * their results); deleting one of them alone is refused by the core (409)
 * before it reaches us.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../supervisor/idmap.h"
#include "../supervisor/store.h"
#include "memory.h"

#define MEM_CHUNK 1024 /* slots per chunk of a log: 16 KiB */

/* MEM_CHUNK slots: the objects, and their sequence numbers. */
struct mem_chunk {
	void *obj[MEM_CHUNK];
	uint64_t seq[MEM_CHUNK];
};

/* Objects of one kind in creation order; see the top of the file. */
struct mem_log {
	struct idmap *map;	   /* id -> slot (indirect: the slot points to the object) */
	struct mem_chunk **chunks; /* slot i is chunks[i / MEM_CHUNK]->obj[i % MEM_CHUNK] */
	size_t nchunks;		   /* chunks allocated */
	size_t chunks_cap;	   /* length of the chunks array */
	size_t len;		   /* slots in use, holes included */
	size_t id_offset;	   /* where an object holds its id */
	uint64_t last_seq;	   /* the number of the latest push */
};

struct mem_store {
	struct store base; /* first: a struct store * is a struct mem_store * */
	struct mem_log jobs;
	struct mem_log pipelines;
};

static struct mem_store *mem_of(struct store *st)
{
	return (struct mem_store *)st;
}

/* ---- the creation logs ---------------------------------------------------- */

static int log_init(struct mem_log *log, size_t id_offset)
{
	log->id_offset = id_offset;
	log->map = idmap_new_indirect(id_offset);
	return log->map ? 0 : -ENOMEM;
}

static void **log_slot(const struct mem_log *log, size_t i)
{
	return &log->chunks[i / MEM_CHUNK]->obj[i % MEM_CHUNK];
}

static uint64_t *log_seq(const struct mem_log *log, size_t i)
{
	return &log->chunks[i / MEM_CHUNK]->seq[i % MEM_CHUNK];
}

/* The first slot numbered above after (log->len when none). */
static size_t log_seek(const struct mem_log *log, uint64_t after)
{
	size_t lo = 0, hi = log->len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (*log_seq(log, mid) <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const uint8_t *log_id(const struct mem_log *log, const void *obj)
{
	return (const uint8_t *)obj + log->id_offset;
}

static size_t log_count(const struct mem_log *log)
{
	return idmap_count(log->map);
}

/* The object with this id, or NULL. */
static void *log_get(const struct mem_log *log, const uint8_t id[JOB_ID_LEN])
{
	void **slot = idmap_get(log->map, id);

	return slot ? *slot : NULL;
}

/* Appends obj (borrowed: the caller keeps the store's reference). 0,
 * -EEXIST (its id is in the log; nothing changed), -ENOMEM. */
static int log_push(struct mem_log *log, void *obj)
{
	void **slot;
	int rc;

	if (log->len == log->nchunks * MEM_CHUNK) {
		if (log->nchunks == log->chunks_cap) {
			size_t cap = log->chunks_cap ? 2 * log->chunks_cap : 8;
			struct mem_chunk **chunks = realloc(log->chunks, cap * sizeof(*chunks));

			if (!chunks)
				return -ENOMEM;
			log->chunks = chunks;
			log->chunks_cap = cap;
		}
		log->chunks[log->nchunks] = malloc(sizeof(struct mem_chunk));
		if (!log->chunks[log->nchunks])
			return -ENOMEM;
		log->nchunks++;
	}
	/* The map reads the id through the slot: fill it first. */
	slot = log_slot(log, log->len);
	*slot = obj;
	rc = idmap_put(log->map, log_id(log, obj), slot);
	if (rc < 0)
		return rc;
	*log_seq(log, log->len) = ++log->last_seq;
	log->len++;
	return 0;
}

/* Frees the chunks past the end but one spare, so that pushes and deletes
 * at a chunk's edge do not allocate and free each time. */
static void log_shrink(struct mem_log *log)
{
	while (log->nchunks > log->len / MEM_CHUNK + 2)
		free(log->chunks[--log->nchunks]);
}

/* Slides the objects to the front, in order, and frees the chunks left
 * empty. Re-keying an object (del, then put at its new slot) cannot fail:
 * the map's count is back where it was, so the put never grows it. */
static void log_compact(struct mem_log *log)
{
	size_t w = 0;

	for (size_t r = 0; r < log->len; r++) {
		void **from = log_slot(log, r), **to;
		void *obj = *from;
		int rc;

		if (!obj)
			continue;
		if (r != w) {
			to = log_slot(log, w);
			idmap_del(log->map, log_id(log, obj));
			*to = obj;
			*from = NULL;
			*log_seq(log, w) = *log_seq(log, r);
			rc = idmap_put(log->map, log_id(log, obj), to);
			assert(rc == 0);
			(void)rc;
		}
		w++;
	}
	log->len = w;
}

/* Removes and returns the object with this id, or NULL. */
static void *log_del(struct mem_log *log, const uint8_t id[JOB_ID_LEN])
{
	void **slot = idmap_del(log->map, id);
	void *obj;
	size_t holes;

	if (!slot)
		return NULL;
	obj = *slot;
	*slot = NULL;
	while (log->len > 0 && !*log_slot(log, log->len - 1))
		log->len--;
	holes = log->len - log_count(log);
	if (holes >= MEM_CHUNK && holes > log_count(log))
		log_compact(log);
	log_shrink(log);
	return obj;
}

/* Frees the log; unref drops the store's reference of each object. */
static void log_free(struct mem_log *log, void (*unref)(void *obj))
{
	for (size_t i = 0; i < log->len; i++) {
		void *obj = *log_slot(log, i);

		if (obj)
			unref(obj);
	}
	while (log->nchunks > 0)
		free(log->chunks[--log->nchunks]);
	free(log->chunks);
	idmap_free(log->map);
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
	int rc = log_push(&mem_of(st)->jobs, job);

	if (rc < 0)
		return rc;
	job_ref(job);
	mem_answer(cb, arg, &reply);
	return 0;
}

/* Removes a job the store holds and drops the store's reference. */
static void mem_drop_job(struct mem_store *ms, struct job *job)
{
	if (log_get(&ms->jobs, job->id) != job)
		return;
	log_del(&ms->jobs, job->id);
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
	rc = log_push(&ms->pipelines, pl);
	if (rc < 0)
		return rc;
	for (added = 0; added < pl->njobs; added++) {
		rc = log_push(&ms->jobs, pl->jobs[added]);
		if (rc < 0)
			goto fail;
	}
	pipeline_ref(pl);
	for (i = 0; i < pl->njobs; i++)
		job_ref(pl->jobs[i]);
	mem_answer(cb, arg, &reply);
	return 0;

fail:
	/* No reference was taken yet. */
	while (added > 0)
		log_del(&ms->jobs, pl->jobs[--added]->id);
	log_del(&ms->pipelines, pl->id);
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
	struct job *job = log_get(&mem_of(st)->jobs, id);

	if (!job)
		return -ENOENT;
	return mem_answer_job(cb, arg, job);
}

/* Whether work of status and owner is what q asks for. */
static bool mem_matches(const struct store_query *q, enum job_status status, uint16_t owner)
{
	return (q->status == JOB_UNDEFINED || status == q->status) &&
	       (!q->owner || owner == q->owner);
}

static int mem_list_jobs(struct store *st, const struct store_query *q, store_done_fn cb,
			 void *arg)
{
	const struct mem_log *log = &mem_of(st)->jobs;
	struct store_reply reply = {0};
	size_t total = 0, skipped = 0, cap, i, from = log_seek(log, q->after);
	struct job *job;

	if (q->status == JOB_UNDEFINED && !q->owner && !from) {
		total = log_count(log);
	} else {
		for (i = from; i < log->len; i++) {
			job = *log_slot(log, i);
			total += job && mem_matches(q, job->status, job->owner);
		}
	}
	cap = mem_page_size(total, q);
	if (cap) {
		reply.jobs = malloc(cap * sizeof(*reply.jobs));
		if (!reply.jobs)
			return -ENOMEM;
		for (i = from; i < log->len && reply.njobs < cap; i++) {
			job = *log_slot(log, i);
			if (!job || !mem_matches(q, job->status, job->owner))
				continue;
			if (skipped < q->offset) {
				skipped++;
				continue;
			}
			reply.jobs[reply.njobs++] = job;
			reply.next = *log_seq(log, i);
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
	struct job *job = log_get(&ms->jobs, id);
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
	struct job *job = log_get(&mem_of(st)->jobs, id);

	if (!job || !job->has_result)
		return -ENOENT;
	return mem_answer_job(cb, arg, job);
}

static int mem_delete_result(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			     void *arg)
{
	struct job *job = log_get(&mem_of(st)->jobs, id);

	if (!job || !job->has_result)
		return -ENOENT;
	job->has_result = false;
	job_set_str(&job->result_json, NULL);
	job->result_gen++;
	job_set_str(&job->result_error, NULL);
	return mem_answer_job(cb, arg, job);
}

/* ---- pipelines ------------------------------------------------------------ */

static int mem_get_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
			    void *arg)
{
	struct pipeline *pl = log_get(&mem_of(st)->pipelines, id);

	if (!pl)
		return -ENOENT;
	return mem_answer_pipeline(cb, arg, pl);
}

static int mem_list_pipelines(struct store *st, const struct store_query *q,
			      store_done_fn cb, void *arg)
{
	const struct mem_log *log = &mem_of(st)->pipelines;
	struct store_reply reply = {0};
	size_t total = 0, skipped = 0, cap, i, from = log_seek(log, q->after);
	struct pipeline *pl;

	if (q->status == JOB_UNDEFINED && !q->owner && !from) {
		total = log_count(log);
	} else {
		for (i = from; i < log->len; i++) {
			pl = *log_slot(log, i);
			total += pl && mem_matches(q, pl->status, pl->owner);
		}
	}
	cap = mem_page_size(total, q);
	if (cap) {
		reply.pipelines = malloc(cap * sizeof(*reply.pipelines));
		if (!reply.pipelines)
			return -ENOMEM;
		for (i = from; i < log->len && reply.npipelines < cap; i++) {
			pl = *log_slot(log, i);
			if (!pl || !mem_matches(q, pl->status, pl->owner))
				continue;
			if (skipped < q->offset) {
				skipped++;
				continue;
			}
			reply.pipelines[reply.npipelines++] = pl;
			reply.next = *log_seq(log, i);
		}
	}
	mem_answer(cb, arg, &reply);
	free(reply.pipelines);
	return 0;
}

/* A pipeline's jobs never move: the position of its job i is i + 1. */
static int mem_pipeline_jobs(struct store *st, const uint8_t id[JOB_ID_LEN],
			     const struct store_query *q, store_done_fn cb, void *arg)
{
	struct pipeline *pl = log_get(&mem_of(st)->pipelines, id);
	struct store_reply reply = {0};
	size_t from;

	if (!pl)
		return -ENOENT;
	from = q->after < pl->njobs ? (size_t)q->after : pl->njobs;
	reply.pipeline = pl;
	reply.jobs = pl->jobs + from;
	reply.njobs = pl->njobs - from;
	if (q->limit && q->limit < reply.njobs)
		reply.njobs = q->limit;
	reply.next = from + reply.njobs;
	mem_answer(cb, arg, &reply);
	return 0;
}

static int mem_delete_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN],
			       store_done_fn cb, void *arg)
{
	struct mem_store *ms = mem_of(st);
	struct pipeline *pl = log_del(&ms->pipelines, id);
	int rc;

	if (!pl)
		return -ENOENT;
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

static void unref_pipeline(void *pl)
{
	pipeline_unref(pl);
}

static void unref_job(void *job)
{
	job_unref(job);
}

static void mem_free(struct store *st)
{
	struct mem_store *ms = mem_of(st);

	log_free(&ms->pipelines, unref_pipeline);
	log_free(&ms->jobs, unref_job);
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
	if (log_init(&ms->jobs, offsetof(struct job, id)) < 0 ||
	    log_init(&ms->pipelines, offsetof(struct pipeline, id)) < 0)
		goto fail;
	return &ms->base;

fail:
	idmap_free(ms->jobs.map);
	idmap_free(ms->pipelines.map);
	free(ms);
	return NULL;
}
