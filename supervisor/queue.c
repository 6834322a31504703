/*
 * queue.c - the core's waiting work: two FIFOs and the run_at heap (see
 * queue.h).
 *
 * Theory of operation: the FIFOs are tail queues through job->core_link.
 * The heap is a binary min-heap of job pointers ordered by job->core_due;
 * each job knows its index (job->core_heap_index), so a cancelled or
 * claimed job leaves the heap in O(log n) wherever it is. Equal due times
 * keep no particular order. A job whose owner may start no more (a
 * key's max_running) waits on the held list until one of its owner's runs
 * ends, so that it does not block the jobs behind it.
 */
#include <errno.h>
#include <stdlib.h>

#include "queue.h"

void queue_init(struct queue *q)
{
	TAILQ_INIT(&q->fifo);
	TAILQ_INIT(&q->due);
	TAILQ_INIT(&q->held);
	q->heap = NULL;
	q->heap_len = q->heap_cap = 0;
}

void queue_release(struct queue *q)
{
	free(q->heap);
	queue_init(q);
}

void queue_push(struct queue *q, struct job *job)
{
	TAILQ_INSERT_TAIL(&q->fifo, job, core_link);
	job->core_where = CORE_QUEUED;
}

void queue_push_due(struct queue *q, struct job *job, bool first)
{
	if (first)
		TAILQ_INSERT_HEAD(&q->due, job, core_link);
	else
		TAILQ_INSERT_TAIL(&q->due, job, core_link);
	job->core_where = CORE_DUE;
}

/* ---- the heap ------------------------------------------------------------------ */

static void heap_set(struct queue *q, size_t i, struct job *job)
{
	q->heap[i] = job;
	job->core_heap_index = (uint32_t)i;
}

static void heap_up(struct queue *q, size_t i)
{
	struct job *job = q->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (q->heap[parent]->core_due <= job->core_due)
			break;
		heap_set(q, i, q->heap[parent]);
		i = parent;
	}
	heap_set(q, i, job);
}

static void heap_down(struct queue *q, size_t i)
{
	struct job *job = q->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		int64_t best = job->core_due;

		if (l < q->heap_len && q->heap[l]->core_due < best) {
			m = l;
			best = q->heap[l]->core_due;
		}
		if (r < q->heap_len && q->heap[r]->core_due < best)
			m = r;
		if (m == i)
			break;
		heap_set(q, i, q->heap[m]);
		i = m;
	}
	heap_set(q, i, job);
}

int queue_schedule(struct queue *q, struct job *job, bool *earliest)
{
	if (q->heap_len == q->heap_cap) {
		size_t cap = q->heap_cap ? q->heap_cap * 2 : 64;
		struct job **h = realloc(q->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		q->heap = h;
		q->heap_cap = cap;
	}
	q->heap[q->heap_len] = job;
	heap_up(q, q->heap_len++);
	job->core_where = CORE_SCHEDULED;
	*earliest = job->core_heap_index == 0;
	return 0;
}

static void heap_remove(struct queue *q, struct job *job)
{
	size_t i = job->core_heap_index;
	struct job *last = q->heap[--q->heap_len];

	if (i < q->heap_len) {
		heap_set(q, i, last);
		heap_down(q, i);
		heap_up(q, last->core_heap_index);
	}
	job->core_heap_index = UINT32_MAX;
}

/* ---- taking work out ---------------------------------------------------------- */

bool queue_remove(struct queue *q, struct job *job, bool *was_earliest)
{
	*was_earliest = false;
	switch (job->core_where) {
	case CORE_QUEUED:
		TAILQ_REMOVE(&q->fifo, job, core_link);
		break;
	case CORE_DUE:
		TAILQ_REMOVE(&q->due, job, core_link);
		break;
	case CORE_HELD:
		TAILQ_REMOVE(&q->held, job, core_link);
		break;
	case CORE_SCHEDULED:
		*was_earliest = job->core_heap_index == 0;
		heap_remove(q, job);
		break;
	default:
		return false;
	}
	job->core_where = CORE_NOWHERE;
	return true;
}

void queue_hold(struct queue *q, struct job *job)
{
	TAILQ_REMOVE(job->core_where == CORE_DUE ? &q->due : &q->fifo, job, core_link);
	TAILQ_INSERT_TAIL(&q->held, job, core_link);
	job->core_where = CORE_HELD;
}

void queue_unhold(struct queue *q, uint16_t owner)
{
	struct job *job;

	TAILQ_FOREACH(job, &q->held, core_link)
	if (job->owner == owner) {
		TAILQ_REMOVE(&q->held, job, core_link);
		queue_push_due(q, job, true);
		return;
	}
}

struct job *queue_next(const struct queue *q)
{
	struct job *job = TAILQ_FIRST(&q->due);

	return job ? job : TAILQ_FIRST(&q->fifo);
}

struct job *queue_earliest(const struct queue *q)
{
	return q->heap_len ? q->heap[0] : NULL;
}

struct job *queue_any(const struct queue *q)
{
	struct job *job = queue_next(q);

	if (!job)
		job = TAILQ_FIRST(&q->held);
	return job ? job : queue_earliest(q);
}
