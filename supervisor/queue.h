/*
 * queue.h - where accepted work waits in the core until a worker slot takes
 * it: the FIFO of immediate work; the "due" FIFO, served first (scheduled
 * work whose time has come, and the next job of a running pipeline); and
 * the run_at min-heap, keyed by job->core_due (its run_at, or when a retry
 * is due). A job is in at most one of them, which job->core_where says.
 * The queue holds no references: the core's active map does.
 */
#ifndef VALET_QUEUE_H
#define VALET_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "job.h"

/* Where an active job is (job->core_where): the queue's three places, or
 * the core's two. */
enum core_where {
	CORE_NOWHERE = 0,
	CORE_QUEUED,	/* on the FIFO of immediate work */
	CORE_DUE,	/* on the FIFO of due scheduled work / pipeline continuations */
	CORE_SCHEDULED, /* in the run_at heap */
	CORE_RUNNING,	/* in a child */
	CORE_WAITING,	/* a later job of a pipeline that runs */
	CORE_HELD,	/* due, but its owner runs as many jobs as its policy allows */
};

TAILQ_HEAD(queue_list, job);

struct queue {
	struct queue_list fifo, due, held;
	struct job **heap;
	size_t heap_len, heap_cap;
};

void queue_init(struct queue *q);
/* Free the heap's array; what is queued is forgotten (the caller's). */
void queue_release(struct queue *q);

/* Onto the FIFO's tail. */
void queue_push(struct queue *q, struct job *job);
/* Onto the due FIFO: its tail, or its head (first). */
void queue_push_due(struct queue *q, struct job *job, bool first);
/* Into the heap, by job->core_due. 0, or -ENOMEM (then it is nowhere).
 * *earliest: it is now the heap's head (the scheduler's timer changes). */
int queue_schedule(struct queue *q, struct job *job, bool *earliest);
/* Out of whichever place it is in: false when in none of the three.
 * *was_earliest: it was the heap's head. */
bool queue_remove(struct queue *q, struct job *job, bool *was_earliest);

/* From a FIFO (queue_next() gave it) onto the held list's tail. */
void queue_hold(struct queue *q, struct job *job);
/* owner's oldest held job back to the due FIFO's head (one of its runs
 * ended: room for one). */
void queue_unhold(struct queue *q, uint16_t owner);

/* The next job to run: the due FIFO's head, else the FIFO's; NULL. */
struct job *queue_next(const struct queue *q);
/* The heap's head (the earliest core_due); NULL. */
struct job *queue_earliest(const struct queue *q);
/* Any queued job (to empty the queue); NULL when empty. */
struct job *queue_any(const struct queue *q);

#endif
