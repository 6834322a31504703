/*
 * pg_deadline.c - submit deadlines of the PostgreSQL store: a new job or
 * pipeline is committed within [storage] submit_timeout, or it is answered
 * -ETIMEDOUT (the API's 503 "not accepted") and never exists.
 *
 * Theory of operation
 *
 * A create (pg_write.c's op) is answered once its transaction committed.
 * Without a bound, a submit in flight when the database stops or hangs
 * waits for the whole outage, and the client that gave up meanwhile never
 * learns that its job exists. So every create gets a timer at its deadline
 * D = creation + submit_timeout, and its transaction a guard: the last call
 * before COMMIT (PGS_SUBMIT_GUARD, or PGS_NOTIFY_GUARD with the NOTIFY)
 * fails the transaction when the database
 * reaches it after G = D - min(1 s, submit_timeout / 2), in the database's
 * clock. The margin covers the commit's own round trip and a clock skew
 * between valetd and the database of up to that much.
 *
 * At D, still unanswered, the create is withdrawn: answered -ETIMEDOUT,
 * and from then on the store's business is that it never exists:
 *   - waiting to be sent, never sent before: taken off the list, done;
 *   - in a batch in flight: that batch's end decides (pgd_after). Rolled
 *     back (the guard, reached after G, failed it): done. Committed all the
 *     same (its answer was slower than the margin): a delete of what it
 *     made, sent next;
 *   - sent before and its connection broke (it may have committed, and a
 *     transaction of the old connection could still commit until its guard
 *     time): a delete, sent when the database is back. The guard makes the
 *     delete final: what could commit later must have reached its guard
 *     before G < D.
 * A create that waits to be sent after its G is withdrawn at once: its
 * guard would fail anyway, and with it the batch it rides in. A guard that
 * fails all the same (the database's clock is ahead) rolls back the batch:
 * the creates whose guard it was are withdrawn there and then, the rest of
 * the batch goes again.
 *
 * A withdrawn create that may exist is on ps->withdrawn until its delete
 * committed. Claims deliver nothing with such an id (pgd_withdrawn_id), so
 * this node never runs it. What stays open: another node could claim such
 * a job between a late commit and the delete (only if it was stored
 * unclaimed), and a valetd that stops before the database is back cannot
 * delete it (logged as an error).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../supervisor/log.h"
#include "pg_internal.h"

#define PGD_MARGIN_MAX_US 1000000

static bool is_create(const struct pg_op *op)
{
	return op->kind == OP_CREATE_JOB || op->kind == OP_CREATE_PIPELINE;
}

static const uint8_t *op_obj_id(const struct pg_op *op)
{
	return op->kind == OP_CREATE_JOB ? op->job->id : op->pl->id;
}

static void log_op(enum log_level level, const char *msg, const struct pg_op *op)
{
	char id[JOB_ID_STRLEN + 1];

	job_id_format(op_obj_id(op), id);
	log_msg(level, msg, op->kind == OP_CREATE_JOB ? "job_id" : "pipeline_id", id,
		(const char *)NULL);
}

/* Answer -ETIMEDOUT; from now on op must never exist. */
static void withdraw(struct pg_store *ps, struct pg_op *op, const char *msg)
{
	ev_timer_stop(ps->loop, &op->deadline_w);
	op->withdrawn = true;
	log_op(LOG_WARN, msg, op);
	pg_op_reply(op, -ETIMEDOUT, false);
	if (!op->wlisted) {
		TAILQ_INSERT_TAIL(&ps->withdrawn, op, wlink);
		op->wlisted = true;
	}
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_op *op = w->data;
	struct pg_store *ps = op->ps;

	if (op->withdrawn)
		return;
	withdraw(ps, op,
		 op->in_batch
		     ? "PostgreSQL did not confirm a submit in time: answered 503; it "
		       "must not commit (its guard time passed)"
		     : "PostgreSQL did not take a submit in time: answered 503, withdrawn");
	if (op->in_batch)
		return; /* its batch's end decides (pgd_after) */
	if (!op->maybe_stored) {
		TAILQ_REMOVE(&ps->ops, op, link);
		pg_op_free(op);
		return;
	}
	/* It stays on the list, as the delete of what an earlier attempt may
	 * have made. */
	pg_kick(ps);
}

void pgd_arm(struct pg_store *ps, struct pg_op *op)
{
	int64_t timeout_us = ps->submit_timeout_ms * 1000;
	int64_t margin = timeout_us / 2 < PGD_MARGIN_MAX_US ? timeout_us / 2 : PGD_MARGIN_MAX_US;

	op->guard_us = job_now_us() + timeout_us - margin;
	ev_timer_init(&op->deadline_w, on_deadline, (double)ps->submit_timeout_ms / 1000.0, 0.);
	op->deadline_w.data = op;
	ev_timer_start(ps->loop, &op->deadline_w);
}

bool pgd_too_late(struct pg_store *ps, struct pg_op *op, int64_t now)
{
	if (!is_create(op) || op->withdrawn || now < op->guard_us)
		return false;
	withdraw(ps, op, "PostgreSQL did not take a submit in time: answered 503, withdrawn");
	if (op->maybe_stored)
		return false; /* sent as a delete */
	pg_op_free(op);
	return true;
}

void pgd_sent(struct pg_op *op)
{
	if (!is_create(op))
		return;
	op->in_batch = true;
	op->deleting = op->withdrawn;
}

enum pgd_next pgd_after(struct pg_store *ps, struct pg_op *op, enum pgd_end end)
{
	bool deleted = op->deleting;

	if (!is_create(op))
		return PGD_ON;
	op->in_batch = false;
	op->deleting = false;
	if (end == PGD_UNKNOWN)
		op->maybe_stored = true;
	if (end == PGD_CLOSED) {
		if (!op->withdrawn)
			return PGD_ON;
		if (op->maybe_stored || deleted)
			log_op(LOG_ERROR,
			       "shutting down before PostgreSQL confirmed the delete of a "
			       "submit answered 503: it may exist",
			       op);
		pg_op_free(op);
		return PGD_DONE;
	}
	if (deleted) {
		if (end == PGD_COMMITTED) {
			log_op(LOG_INFO, "deleted what a submit answered 503 may have stored", op);
			pg_op_free(op);
			return PGD_DONE;
		}
		if (end == PGD_REFUSED) {
			log_op(LOG_ERROR,
			       "PostgreSQL refused to delete what a submit answered 503 "
			       "may have stored: it may exist",
			       op);
			pg_op_free(op);
			return PGD_DONE;
		}
		return PGD_BACK;
	}
	if (!op->withdrawn)
		return PGD_ON;
	if (end == PGD_COMMITTED) {
		log_op(LOG_WARN, "PostgreSQL committed a submit after it was answered 503: deleting it",
		       op);
		op->maybe_stored = true;
	}
	if (!op->maybe_stored) {
		pg_op_free(op);
		return PGD_DONE;
	}
	return PGD_BACK;
}

void pgd_guard_failed(struct pg_store *ps, struct pg_op *op)
{
	if (!op->withdrawn)
		withdraw(ps, op,
			 "PostgreSQL reached a submit's guard too late: answered 503, "
			 "rolled back");
}

bool pgd_withdrawn_id(const struct pg_store *ps, const uint8_t id[JOB_ID_LEN])
{
	const struct pg_op *op;

	TAILQ_FOREACH(op, &ps->withdrawn, wlink)
		if (!memcmp(op_obj_id(op), id, JOB_ID_LEN))
			return true;
	return false;
}
