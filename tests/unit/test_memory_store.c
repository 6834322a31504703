/*
 * test_memory_store.c - the embedded in-memory store: every operation of
 * store.h, its error paths, and reference counting (run under ASan: every
 * object must be freed exactly once).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../storage/memory.h"
#include "../../supervisor/store.h"

/* What one callback saw. Objects are borrowed during the callback, so we
 * copy what the assertions need. */
struct seen {
	int calls;
	int err;
	struct job *job;
	struct pipeline *pipeline;
	size_t njobs, npipelines;
	uint64_t next;
	struct job *jobs[64];
	struct pipeline *pipelines[64];
};

static void record(void *arg, const struct store_reply *reply)
{
	struct seen *s = arg;

	s->calls++;
	s->err = reply->err;
	s->job = reply->job;
	s->pipeline = reply->pipeline;
	s->njobs = reply->njobs;
	s->npipelines = reply->npipelines;
	s->next = reply->next;
	for (size_t i = 0; i < reply->njobs && i < 64; i++)
		s->jobs[i] = reply->jobs[i];
	for (size_t i = 0; i < reply->npipelines && i < 64; i++)
		s->pipelines[i] = reply->pipelines[i];
}

/* list_jobs callback for check_order: copies the page to arg. */
static size_t last_njobs;
static uint64_t last_next;

static void record_all(void *arg, const struct store_reply *reply)
{
	struct job **out = arg;

	assert_int_equal(reply->err, 0);
	last_njobs = reply->njobs;
	last_next = reply->next;
	for (size_t i = 0; i < reply->njobs; i++)
		out[i] = reply->jobs[i];
}

static struct job *make_job(const char *name, enum job_status status)
{
	struct job *job = job_new();

	assert_non_null(job);
	job_id_generate(job->id);
	job_set_str(&job->name, name);
	job->task_name = job_intern("dummytask");
	job_set_str(&job->params_json, "{\"a\":1}");
	job->timeout_ms = 1000;
	job->status = status;
	job->created_at = job_now_us();
	return job;
}

/* A pipeline of n jobs, linked the way the core links them. */
static struct pipeline *make_pipeline(const char *name, size_t n, enum job_status status)
{
	struct pipeline *pl = pipeline_new(n);

	assert_non_null(pl);
	job_id_generate(pl->id);
	job_set_str(&pl->name, name);
	pl->status = status;
	for (size_t i = 0; i < n; i++) {
		struct job *job = make_job("pj", status);

		job->in_pipeline = true;
		memcpy(job->pipeline_id, pl->id, JOB_ID_LEN);
		job->pipeline_index = (int)i;
		pl->jobs[i] = job;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		pl->jobs[i]->has_next = true;
		memcpy(pl->jobs[i]->next_job_id, pl->jobs[i + 1]->id, JOB_ID_LEN);
	}
	return pl;
}

static int setup(void **state)
{
	struct store *st = store_memory_new();

	if (!st)
		return -1;
	*state = st;
	return 0;
}

static int teardown(void **state)
{
	store_free(*state);
	return 0;
}

static void test_basics(void **state)
{
	struct store *st = *state;

	assert_string_equal(st->ops->name, "memory");
	assert_true(st->ops->healthy(st));
	store_free(NULL);
}

static void test_create_get_job(void **state)
{
	struct store *st = *state;
	struct job *job = make_job("one", JOB_PENDING);
	struct seen s = {0};
	uint8_t other[JOB_ID_LEN];

	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, 0);
	assert_ptr_equal(s.job, job);
	assert_int_equal(job->refs, 2); /* ours and the store's */

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->get_job(st, job->id, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_ptr_equal(s.job, job);
	assert_int_equal(job->refs, 2); /* the callback's hold was released */

	/* The same id twice: refused, no callback, nothing changed. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, record, &s), -EEXIST);
	assert_int_equal(s.calls, 0);
	assert_int_equal(job->refs, 2);

	job_id_generate(other);
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->get_job(st, other, record, &s), -ENOENT);
	assert_int_equal(s.calls, 0);

	/* save_job is a no-op that sees the shared object. */
	job->status = JOB_IN_PROGRESS;
	st->ops->save_job(st, job, JOB_F_STATUS);
	assert_int_equal(st->ops->get_job(st, job->id, record, &s), 0);
	assert_int_equal(s.job->status, JOB_IN_PROGRESS);

	job_unref(job); /* the store's reference keeps it; teardown frees it */
}

static void list(struct store *st, enum job_status status, size_t offset, size_t limit,
		 struct seen *s)
{
	struct store_query q = {.status = status, .offset = offset, .limit = limit};

	memset(s, 0, sizeof(*s));
	assert_int_equal(st->ops->list_jobs(st, &q, record, s), 0);
	assert_int_equal(s->calls, 1);
	assert_int_equal(s->err, 0);
}

static void test_list_jobs(void **state)
{
	struct store *st = *state;
	struct job *jobs[10];
	struct seen s;

	/* Empty store. */
	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 0);

	/* Even jobs PENDING, odd jobs COMPLETED. */
	for (int i = 0; i < 10; i++) {
		jobs[i] = make_job("j", i % 2 ? JOB_COMPLETED : JOB_PENDING);
		assert_int_equal(st->ops->create_job(st, jobs[i], STORE_CLAIM, NULL, NULL), 0);
	}

	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 10);
	for (int i = 0; i < 10; i++)
		assert_ptr_equal(s.jobs[i], jobs[i]); /* oldest first */

	list(st, JOB_PENDING, 0, 0, &s);
	assert_int_equal(s.njobs, 5);
	for (int i = 0; i < 5; i++)
		assert_ptr_equal(s.jobs[i], jobs[2 * i]);

	list(st, JOB_COMPLETED, 1, 2, &s);
	assert_int_equal(s.njobs, 2);
	assert_ptr_equal(s.jobs[0], jobs[3]);
	assert_ptr_equal(s.jobs[1], jobs[5]);

	list(st, JOB_UNDEFINED, 8, 5, &s); /* limit past the end */
	assert_int_equal(s.njobs, 2);
	assert_ptr_equal(s.jobs[0], jobs[8]);
	assert_ptr_equal(s.jobs[1], jobs[9]);

	list(st, JOB_UNDEFINED, 3, 0, &s); /* offset only */
	assert_int_equal(s.njobs, 7);
	assert_ptr_equal(s.jobs[0], jobs[3]);

	list(st, JOB_UNDEFINED, 0, 3, &s); /* limit only */
	assert_int_equal(s.njobs, 3);
	assert_ptr_equal(s.jobs[2], jobs[2]);

	list(st, JOB_PENDING, 5, 0, &s); /* offset at the end */
	assert_int_equal(s.njobs, 0);
	list(st, JOB_UNDEFINED, 100, 10, &s);
	assert_int_equal(s.njobs, 0);
	list(st, JOB_FAILED, 0, 0, &s); /* nothing has it */
	assert_int_equal(s.njobs, 0);

	for (int i = 0; i < 10; i++)
		job_unref(jobs[i]);
}

static void test_delete_job(void **state)
{
	struct store *st = *state;
	struct job *a = make_job("a", JOB_PENDING), *b = make_job("b", JOB_PENDING);
	struct job *c = make_job("c", JOB_PENDING);
	struct seen s = {0};

	assert_int_equal(st->ops->create_job(st, a, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->create_job(st, b, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->create_job(st, c, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(b->refs, 2);

	assert_int_equal(st->ops->delete_job(st, b->id, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_ptr_equal(s.job, b);
	assert_int_equal(b->refs, 1); /* only ours left */

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->get_job(st, b->id, record, &s), -ENOENT);
	assert_int_equal(st->ops->delete_job(st, b->id, record, &s), -ENOENT);
	assert_int_equal(s.calls, 0);

	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 2);
	assert_ptr_equal(s.jobs[0], a);
	assert_ptr_equal(s.jobs[1], c);

	/* Deleted, it can be created again (and goes to the end). */
	assert_int_equal(st->ops->create_job(st, b, STORE_CLAIM, NULL, NULL), 0);
	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 3);
	assert_ptr_equal(s.jobs[2], b);

	job_unref(a);
	job_unref(b);
	job_unref(c);
}

/* The whole job list, checked against want[0..n) (oldest first): in one
 * call, then in pages of 1 to 7 (every other size with a status filter that
 * all of them match). */
static void check_order(struct store *st, struct job *const *want, size_t n)
{
	struct job **all = calloc(n + 1, sizeof(*all));

	assert_non_null(all);
	for (size_t page = 0; page <= 7; page++) {
		struct store_query q = {.status = page % 2 ? JOB_PENDING : JOB_UNDEFINED,
					.limit = page};
		size_t got = 0;

		do {
			q.offset = got;
			last_njobs = SIZE_MAX;
			assert_int_equal(st->ops->list_jobs(st, &q, record_all, all + got), 0);
			assert_true(last_njobs <= n - got);
			got += last_njobs;
		} while (page > 0 && last_njobs > 0);
		assert_int_equal(got, n);
		for (size_t i = 0; i < n; i++)
			assert_ptr_equal(all[i], want[i]);
	}
	/* The same by the cursor, the way the API streams a list. */
	for (size_t page = 1; page <= 7; page++) {
		struct store_query q = {.limit = page};
		size_t got = 0;

		memset(all, 0, (n + 1) * sizeof(*all));
		do {
			last_njobs = SIZE_MAX;
			assert_int_equal(st->ops->list_jobs(st, &q, record_all, all + got), 0);
			assert_true(last_njobs <= n - got);
			got += last_njobs;
			q.after = last_next;
		} while (last_njobs > 0);
		assert_int_equal(got, n);
		for (size_t i = 0; i < n; i++)
			assert_ptr_equal(all[i], want[i]);
	}
	free(all);
}

/*
 * A list read page by page by its cursor while jobs are deleted (the one
 * at the cursor among them, and enough ahead of it for the log to
 * compact) and created between the pages: each job is seen at most once,
 * in creation order; a job deleted before its page is not seen; every
 * other one is, every new one included.
 */
static void test_list_cursor_across_changes(void **state)
{
	struct store *st = *state;
	enum { N = 4000, PAGE = 10, MORE = 100 };
	struct job **jobs = calloc(N + MORE, sizeof(*jobs)), *page[PAGE];
	bool *gone = calloc(N + MORE, 1), *seen = calloc(N + MORE, 1);
	struct store_query q = {.limit = PAGE};
	size_t total = 0, i, k = 0;
	int64_t last = 0;

	assert_non_null(jobs);
	assert_non_null(gone);
	assert_non_null(seen);
	for (total = 0; total < N; total++) {
		jobs[total] = make_job("c", JOB_PENDING);
		jobs[total]->timeout_ms = (int64_t)total + 1; /* its creation rank */
		assert_int_equal(st->ops->create_job(st, jobs[total], STORE_CLAIM, NULL, NULL), 0);
	}
	for (size_t pages = 0;; pages++) {
		assert_true(pages < N + MORE); /* a cursor that does not move */
		assert_int_equal(st->ops->list_jobs(st, &q, record_all, page), 0);
		if (!last_njobs)
			break;
		for (i = 0; i < last_njobs; i++) {
			k = (size_t)page[i]->timeout_ms - 1;
			assert_true(page[i]->timeout_ms > last);
			assert_false(gone[k]);
			last = page[i]->timeout_ms;
			seen[k] = true;
		}
		q.after = last_next;
		assert_int_equal(st->ops->delete_job(st, jobs[k]->id, NULL, NULL), 0);
		gone[k] = true;
		for (i = k + 1; i < k + 41 && i < N; i++) {
			if (i % 4 && !gone[i]) {
				assert_int_equal(st->ops->delete_job(st, jobs[i]->id, NULL, NULL), 0);
				gone[i] = true;
			}
		}
		if (total < N + MORE) {
			jobs[total] = make_job("new", JOB_PENDING);
			jobs[total]->timeout_ms = (int64_t)total + 1;
			assert_int_equal(
			    st->ops->create_job(st, jobs[total], STORE_CLAIM, NULL, NULL), 0);
			total++;
		}
	}
	size_t new_seen = 0;
	for (i = 0; i < total; i++) {
		assert_true(seen[i] || gone[i]);
		new_seen += i >= N && seen[i];
		job_unref(jobs[i]);
	}
	assert_int_equal(total, N + MORE);
	assert_int_equal(new_seen, MORE); /* created after the cursor passed N */
	free(jobs);
	free(gone);
	free(seen);
}

/*
 * Order survives deletes: holes in the middle and at the end, enough of
 * them (more than the objects left, more than a chunk of the log) that the
 * log compacts, more than once; new jobs go after the old ones; every job
 * left is still found by id, every deleted one is not.
 */
static void test_list_order_after_deletes(void **state)
{
	struct store *st = *state;
	enum { N = 5000 };
	struct job **jobs = calloc(N + 100, sizeof(*jobs)), **want = calloc(N + 100, sizeof(*want));
	uint8_t(*ids)[JOB_ID_LEN] = calloc(N + 100, JOB_ID_LEN);
	size_t n = 0;

	assert_non_null(jobs);
	assert_non_null(want);
	assert_non_null(ids);
	for (int i = 0; i < N; i++) {
		jobs[i] = make_job("o", JOB_PENDING);
		memcpy(ids[i], jobs[i]->id, JOB_ID_LEN);
		assert_int_equal(st->ops->create_job(st, jobs[i], STORE_CLAIM, NULL, NULL), 0);
		job_unref(jobs[i]); /* the store holds the only reference */
	}
	/* Delete the first, the last and two of every three in between. */
	for (int i = 0; i < N; i++) {
		if (i == 0 || i == N - 1 || i % 3 != 0)
			assert_int_equal(st->ops->delete_job(st, ids[i], NULL, NULL), 0);
		else
			want[n++] = jobs[i];
	}
	check_order(st, want, n);
	for (int i = 0; i < N; i++) {
		int rc = st->ops->get_job(st, ids[i], NULL, NULL);

		assert_int_equal(rc, i == 0 || i == N - 1 || i % 3 != 0 ? -ENOENT : 0);
	}

	/* Delete from the back (holes at the end), then add: new ones last. */
	for (int k = 0; k < 10; k++)
		assert_int_equal(st->ops->delete_job(st, want[--n]->id, NULL, NULL), 0);
	for (int i = N; i < N + 100; i++) {
		jobs[i] = make_job("new", JOB_PENDING);
		assert_int_equal(st->ops->create_job(st, jobs[i], STORE_CLAIM, NULL, NULL), 0);
		want[n++] = jobs[i];
		job_unref(jobs[i]);
	}
	check_order(st, want, n);

	/* Delete all but every 50th from the front: compacts again. */
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % 50 == 0)
			want[kept++] = want[i];
		else
			assert_int_equal(st->ops->delete_job(st, want[i]->id, NULL, NULL), 0);
	}
	n = kept;
	check_order(st, want, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(st->ops->get_job(st, want[i]->id, NULL, NULL), 0);

	/* Everything gone, then one more. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(st->ops->delete_job(st, want[i]->id, NULL, NULL), 0);
	check_order(st, want, 0);
	want[0] = make_job("last", JOB_PENDING);
	assert_int_equal(st->ops->create_job(st, want[0], STORE_CLAIM, NULL, NULL), 0);
	job_unref(want[0]);
	check_order(st, want, 1);
	free(jobs);
	free(want);
	free(ids);
}

/* Pipelines keep their order too when one in the middle goes, and so do
 * their jobs among the others. */
static void test_pipeline_order_after_delete(void **state)
{
	struct store *st = *state;
	struct pipeline *pls[5];
	struct job *want[12];
	struct store_query all = {0};
	struct seen s = {0};
	size_t n = 0;

	for (int i = 0; i < 5; i++) {
		pls[i] = make_pipeline("p", 2, JOB_PENDING);
		assert_int_equal(st->ops->create_pipeline(st, pls[i], STORE_CLAIM, NULL, NULL), 0);
	}
	assert_int_equal(st->ops->delete_pipeline(st, pls[1]->id, NULL, NULL), 0);
	assert_int_equal(st->ops->delete_pipeline(st, pls[4]->id, NULL, NULL), 0);
	assert_int_equal(st->ops->list_pipelines(st, &all, record, &s), 0);
	assert_int_equal(s.npipelines, 3);
	assert_ptr_equal(s.pipelines[0], pls[0]);
	assert_ptr_equal(s.pipelines[1], pls[2]);
	assert_ptr_equal(s.pipelines[2], pls[3]);
	for (int i = 0; i < 5; i++) {
		if (i == 1 || i == 4)
			continue;
		want[n++] = pls[i]->jobs[0];
		want[n++] = pls[i]->jobs[1];
	}
	check_order(st, want, n);
	for (int i = 0; i < 5; i++)
		pipeline_unref(pls[i]);
}

/* The core's delete path deletes from inside a get callback. */
static void delete_in_callback(void *arg, const struct store_reply *reply)
{
	struct store *st = arg;

	assert_int_equal(st->ops->delete_job(st, reply->job->id, NULL, NULL), 0);
	/* Still ours to read until the callback returns. */
	assert_string_equal(reply->job->name, "gone");
}

static void test_delete_inside_callback(void **state)
{
	struct store *st = *state;
	struct job *job = make_job("gone", JOB_PENDING);
	uint8_t id[JOB_ID_LEN];

	memcpy(id, job->id, JOB_ID_LEN);
	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, NULL, NULL), 0);
	job_unref(job); /* the store holds the only reference now */
	assert_int_equal(st->ops->get_job(st, id, delete_in_callback, st), 0);
	assert_int_equal(st->ops->get_job(st, id, NULL, NULL), -ENOENT);
}

static void test_results(void **state)
{
	struct store *st = *state;
	struct job *job = make_job("r", JOB_PENDING);
	struct seen s = {0};
	uint8_t other[JOB_ID_LEN];

	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->get_result(st, job->id, record, &s), -ENOENT);
	assert_int_equal(st->ops->delete_result(st, job->id, record, &s), -ENOENT);
	assert_int_equal(s.calls, 0);

	job->status = JOB_COMPLETED;
	job->has_result = true;
	job_set_str(&job->result_json, "{\"x\":1}");
	job_set_str(&job->result_error, "partial");
	st->ops->save_job(st, job, JOB_F_STATUS | JOB_F_RESULT);

	assert_int_equal(st->ops->get_result(st, job->id, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_ptr_equal(s.job, job);
	assert_string_equal(job->result_json, "{\"x\":1}");

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->delete_result(st, job->id, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_false(job->has_result);
	assert_null(job->result_json);
	assert_null(job->result_error);

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->get_result(st, job->id, record, &s), -ENOENT);
	assert_int_equal(st->ops->delete_result(st, job->id, record, &s), -ENOENT);
	assert_int_equal(s.calls, 0);
	/* The job itself stays. */
	assert_int_equal(st->ops->get_job(st, job->id, NULL, NULL), 0);

	job_id_generate(other);
	assert_int_equal(st->ops->get_result(st, other, record, &s), -ENOENT);
	assert_int_equal(st->ops->delete_result(st, other, record, &s), -ENOENT);
	assert_int_equal(s.calls, 0);

	job_unref(job);
}

static void test_pipelines(void **state)
{
	struct store *st = *state;
	struct pipeline *p1 = make_pipeline("p1", 3, JOB_PENDING);
	struct pipeline *p2 = make_pipeline("p2", 2, JOB_COMPLETED);
	struct job *solo = make_job("solo", JOB_PENDING);
	struct store_query all = {0}, done = {.status = JOB_COMPLETED};
	struct store_query all_jobs = {0}, page2 = {.after = 1, .limit = 2};
	struct seen s = {0};

	assert_int_equal(st->ops->create_job(st, solo, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->create_pipeline(st, p1, STORE_CLAIM, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_ptr_equal(s.pipeline, p1);
	assert_int_equal(p1->refs, 2);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(p1->jobs[i]->refs, 2); /* the pipeline's and the store's */
	assert_int_equal(st->ops->create_pipeline(st, p2, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->create_pipeline(st, p2, STORE_CLAIM, NULL, NULL), -EEXIST);

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->get_pipeline(st, p2->id, record, &s), 0);
	assert_ptr_equal(s.pipeline, p2);

	/* Pipeline jobs are jobs, in creation (= pipeline) order. */
	assert_int_equal(st->ops->get_job(st, p1->jobs[1]->id, record, &s), 0);
	assert_ptr_equal(s.job, p1->jobs[1]);
	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 6);
	assert_ptr_equal(s.jobs[0], solo);
	assert_ptr_equal(s.jobs[1], p1->jobs[0]);
	assert_ptr_equal(s.jobs[3], p1->jobs[2]);
	assert_ptr_equal(s.jobs[5], p2->jobs[1]);

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->list_pipelines(st, &all, record, &s), 0);
	assert_int_equal(s.npipelines, 2);
	assert_ptr_equal(s.pipelines[0], p1);
	assert_ptr_equal(s.pipelines[1], p2);
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->list_pipelines(st, &done, record, &s), 0);
	assert_int_equal(s.npipelines, 1);
	assert_ptr_equal(s.pipelines[0], p2);
	all.offset = 1;
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->list_pipelines(st, &all, record, &s), 0);
	assert_int_equal(s.npipelines, 1);
	assert_ptr_equal(s.pipelines[0], p2);
	all.offset = 0;
	all.limit = 1;
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->list_pipelines(st, &all, record, &s), 0);
	assert_int_equal(s.npipelines, 1);
	assert_ptr_equal(s.pipelines[0], p1);

	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->pipeline_jobs(st, p1->id, &all_jobs, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_ptr_equal(s.pipeline, p1);
	assert_int_equal(s.njobs, 3);
	for (size_t i = 0; i < 3; i++)
		assert_ptr_equal(s.jobs[i], p1->jobs[i]);
	/* By pages: positions are index + 1. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->pipeline_jobs(st, p1->id, &page2, record, &s), 0);
	assert_int_equal(s.njobs, 2);
	assert_ptr_equal(s.jobs[0], p1->jobs[1]);
	assert_int_equal(s.next, 3);
	memset(&s, 0, sizeof(s));
	page2.after = 3;
	assert_int_equal(st->ops->pipeline_jobs(st, p1->id, &page2, record, &s), 0);
	assert_int_equal(s.njobs, 0);

	/* Delete cascades to the jobs and their results. */
	struct job *kept = job_ref(p1->jobs[2]);
	uint8_t jid[JOB_ID_LEN];

	memcpy(jid, p1->jobs[0]->id, JOB_ID_LEN);
	kept->has_result = true;
	job_set_str(&kept->result_json, "1");
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->delete_pipeline(st, p1->id, record, &s), 0);
	assert_int_equal(s.calls, 1);
	assert_ptr_equal(s.pipeline, p1);
	assert_int_equal(p1->refs, 1); /* ours */
	assert_int_equal(kept->refs, 2); /* ours and the pipeline's */
	assert_int_equal(st->ops->get_job(st, jid, NULL, NULL), -ENOENT);
	assert_int_equal(st->ops->get_result(st, kept->id, NULL, NULL), -ENOENT);
	assert_int_equal(st->ops->get_pipeline(st, p1->id, NULL, NULL), -ENOENT);
	assert_int_equal(st->ops->pipeline_jobs(st, p1->id, &all_jobs, NULL, NULL), -ENOENT);
	assert_int_equal(st->ops->delete_pipeline(st, p1->id, NULL, NULL), -ENOENT);
	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 3);
	assert_ptr_equal(s.jobs[0], solo);
	assert_ptr_equal(s.jobs[1], p2->jobs[0]);
	memset(&s, 0, sizeof(s));
	assert_int_equal(st->ops->list_pipelines(st, &done, record, &s), 0);
	assert_int_equal(s.npipelines, 1);

	pipeline_unref(p1);
	assert_int_equal(kept->refs, 1);
	job_unref(kept);
	pipeline_unref(p2);
	job_unref(solo);
}

/* A pipeline whose job id is taken is refused whole. */
static void test_pipeline_rollback(void **state)
{
	struct store *st = *state;
	struct pipeline *pl = make_pipeline("p", 3, JOB_PENDING);
	struct job *taken = make_job("taken", JOB_PENDING);
	struct seen s = {0};

	memcpy(taken->id, pl->jobs[2]->id, JOB_ID_LEN);
	assert_int_equal(st->ops->create_job(st, taken, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->create_pipeline(st, pl, STORE_CLAIM, record, &s), -EEXIST);
	assert_int_equal(s.calls, 0);
	assert_int_equal(pl->refs, 1);
	assert_int_equal(pl->jobs[0]->refs, 1);
	assert_int_equal(st->ops->get_pipeline(st, pl->id, NULL, NULL), -ENOENT);
	assert_int_equal(st->ops->get_job(st, pl->jobs[0]->id, NULL, NULL), -ENOENT);
	assert_int_equal(st->ops->get_job(st, taken->id, record, &s), 0);
	assert_ptr_equal(s.job, taken); /* the earlier job is untouched */
	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 1);

	/* With fresh ids it goes in. */
	job_id_generate(pl->jobs[2]->id);
	assert_int_equal(st->ops->create_pipeline(st, pl, STORE_CLAIM, NULL, NULL), 0);
	list(st, JOB_UNDEFINED, 0, 0, &s);
	assert_int_equal(s.njobs, 4);
	pipeline_unref(pl);
	job_unref(taken);
}

/* The store frees what it still holds (ASan checks for leaks). */
static void test_free_with_contents(void **state)
{
	struct store *st = store_memory_new();
	struct pipeline *pl = make_pipeline("p", 2, JOB_IN_PROGRESS);
	struct job *job = make_job("j", JOB_FAILED);

	assert_non_null(st);
	job->has_result = true;
	job_set_str(&job->result_error, "boom");
	assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, NULL, NULL), 0);
	assert_int_equal(st->ops->create_pipeline(st, pl, STORE_CLAIM, NULL, NULL), 0);
	job_unref(job);
	pipeline_unref(pl);
	store_free(st);
}

/* 100,000 jobs: list filters walk them all, the map finds each. */
static void test_many_jobs(void **state)
{
	struct store *st = *state;
	enum { N = 100000 };
	struct store_query q = {.status = JOB_SCHEDULED, .offset = 10, .limit = 20};
	uint8_t first[JOB_ID_LEN], last[JOB_ID_LEN];
	struct seen s = {0};

	for (int i = 0; i < N; i++) {
		struct job *job = make_job("bulk", i % 100 ? JOB_PENDING : JOB_SCHEDULED);

		assert_int_equal(st->ops->create_job(st, job, STORE_CLAIM, NULL, NULL), 0);
		if (i == 0)
			memcpy(first, job->id, JOB_ID_LEN);
		memcpy(last, job->id, JOB_ID_LEN);
		job_unref(job);
	}
	assert_int_equal(st->ops->list_jobs(st, &q, record, &s), 0);
	assert_int_equal(s.njobs, 20);
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(s.jobs[i]->status, JOB_SCHEDULED);
	assert_int_equal(st->ops->get_job(st, first, NULL, NULL), 0);
	assert_int_equal(st->ops->get_job(st, last, NULL, NULL), 0);
	assert_int_equal(st->ops->delete_job(st, first, NULL, NULL), 0);
	assert_int_equal(st->ops->get_job(st, first, NULL, NULL), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_get_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_order_after_deletes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_cursor_across_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_order_after_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_inside_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_rollback, setup, teardown),
		cmocka_unit_test(test_free_with_contents),
		cmocka_unit_test_setup_teardown(test_many_jobs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
