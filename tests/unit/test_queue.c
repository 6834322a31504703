/*
 * test_queue.c - supervisor/queue.c: the two FIFOs (due first), the run_at
 * heap in due order through random pushes and removals from anywhere,
 * and where each job is said to be.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/queue.h"

#define N 500

static struct job *make(int64_t due)
{
	struct job *job = job_new();

	assert_non_null(job);
	job->core_due = due;
	return job;
}

static void test_fifos(void **state)
{
	struct queue q;
	struct job *a = make(0), *b = make(0), *c = make(0), *d = make(0);
	bool first;

	queue_init(&q);
	assert_null(queue_next(&q));
	assert_null(queue_any(&q));
	queue_push(&q, a);
	queue_push(&q, b);
	assert_int_equal(a->core_where, CORE_QUEUED);
	assert_ptr_equal(queue_next(&q), a);
	/* The due FIFO goes first; its head is for pipeline continuations. */
	queue_push_due(&q, c, false);
	queue_push_due(&q, d, true);
	assert_int_equal(c->core_where, CORE_DUE);
	assert_ptr_equal(queue_next(&q), d);
	assert_true(queue_remove(&q, d, &first));
	assert_false(first);
	assert_int_equal(d->core_where, CORE_NOWHERE);
	assert_false(queue_remove(&q, d, &first)); /* not queued any more */
	assert_ptr_equal(queue_next(&q), c);
	assert_true(queue_remove(&q, c, &first));
	assert_ptr_equal(queue_next(&q), a);
	assert_true(queue_remove(&q, a, &first));
	assert_ptr_equal(queue_next(&q), b);
	assert_true(queue_remove(&q, b, &first));
	assert_null(queue_any(&q));
	queue_release(&q);
	job_unref(a);
	job_unref(b);
	job_unref(c);
	job_unref(d);
}

static void test_heap_order(void **state)
{
	struct job *jobs[N];
	struct queue q;
	int64_t last = -1;
	size_t left = N;
	bool earliest, was;

	srandom(42);
	queue_init(&q);
	for (int i = 0; i < N; i++) {
		int64_t due = random() % 1000;
		struct job *head = queue_earliest(&q);

		jobs[i] = make(due);
		assert_int_equal(queue_schedule(&q, jobs[i], &earliest), 0);
		assert_int_equal(jobs[i]->core_where, CORE_SCHEDULED);
		/* It is the new head exactly when it is due before the old one. */
		assert_int_equal(earliest, !head || due < head->core_due);
	}
	/* Scheduled work is not "next": only the scheduler takes it out. */
	assert_null(queue_next(&q));
	/* Remove every third from wherever it is. */
	for (int i = 0; i < N; i += 3) {
		struct job *head = queue_earliest(&q);

		assert_true(queue_remove(&q, jobs[i], &was));
		assert_int_equal(was, head == jobs[i]);
		assert_int_equal(jobs[i]->core_where, CORE_NOWHERE);
		left--;
	}
	/* What is left comes out in due order. */
	while (queue_earliest(&q)) {
		struct job *job = queue_earliest(&q);

		assert_true(job->core_due >= last);
		last = job->core_due;
		assert_true(queue_remove(&q, job, &was));
		assert_true(was);
		left--;
	}
	assert_int_equal(left, 0);
	queue_release(&q);
	for (int i = 0; i < N; i++)
		job_unref(jobs[i]);
}

/* A job set aside (its owner's max_running) leaves the FIFOs, is still
 * found by queue_any() and queue_remove(), and comes back at the due
 * FIFO's head, its owner's oldest first. */
static void test_held(void **state)
{
	struct queue q;
	struct job *a = make(0), *b = make(0), *c = make(0), *other = make(0);
	bool first;

	a->owner = b->owner = c->owner = 7;
	other->owner = 8;
	queue_init(&q);
	queue_push(&q, a);
	queue_push(&q, b);
	queue_push(&q, c);
	queue_push(&q, other);
	queue_hold(&q, a);
	queue_hold(&q, b);
	assert_int_equal(a->core_where, CORE_HELD);
	assert_ptr_equal(queue_next(&q), c);
	queue_unhold(&q, 9); /* nobody's: nothing moves */
	assert_ptr_equal(queue_next(&q), c);
	queue_unhold(&q, 7);
	assert_int_equal(a->core_where, CORE_DUE);
	assert_int_equal(b->core_where, CORE_HELD);
	assert_ptr_equal(queue_next(&q), a);
	assert_true(queue_remove(&q, b, &first));
	assert_int_equal(b->core_where, CORE_NOWHERE);
	queue_hold(&q, c);
	assert_true(queue_remove(&q, a, &first));
	assert_true(queue_remove(&q, other, &first));
	assert_ptr_equal(queue_any(&q), c); /* only held work left */
	assert_null(queue_next(&q));
	assert_true(queue_remove(&q, c, &first));
	assert_null(queue_any(&q));
	queue_release(&q);
	job_unref(a);
	job_unref(b);
	job_unref(c);
	job_unref(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fifos),
	    cmocka_unit_test(test_heap_order),
	    cmocka_unit_test(test_held),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
