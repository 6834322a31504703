/*
 * pg_giveback.c - the PostgreSQL store gives back to the queue claimed work
 * that will not start on this node (store_ops.give_back): at a drain, and
 * when a node that held everything it was given while alone sees another
 * node (pg_queue.c): then what it has not started is everyone's again.
 *
 * Theory of operation
 *
 * A node told to stop starts nothing more, and lets what runs finish for
 * [queue] shutdown_grace. What it holds claimed and has not started - its
 * waiting standalone jobs, its pipelines none of whose jobs started, and
 * what a claim or a create in flight brings after the drain began - the
 * core hands over here, a unit at a time, and forgets; kept until close()
 * (release_node()), it would be kept from every other node for the whole
 * grace period.
 *
 *   give_back(unit)          -> noted; sent just before the loop sleeps
 *                               (give_back_w), so a burst is one transaction
 *   nothing to write, writer -> one transaction: PGS_GIVE_BACK_JOB or
 *   up, none in flight          _PIPELINE per unit, then a NOTIFY on
 *                               "<schema>_jobs" without a due time, so that
 *                               idle nodes claim at once
 *   a write batch ends,      -> look again (units noted meanwhile, or held
 *   the writer comes up         back by writes)
 *   committed                -> forget the units (log: how many went back)
 *   connection broke, or     -> keep them: sent again at the next chance
 *   refused for now             (a fenced release is harmless to repeat)
 *   any other failure        -> forget them (WARN): close() gives them back
 *   close() began            -> note and send nothing more: its
 *                               release_node() gives back all the node holds
 *
 * The units wait until every change saved before them is committed - no
 * write pending, none in flight; meanwhile pg_write.c sends changes at
 * once instead of gathering them -, as the release after a lost lease does:
 * a change of a unit the core made while it held it (a retry written, a
 * scheduled job come due) lands while this node's claim still fences it,
 * and the unit is then free as its last state says. Each statement is
 * fenced too: it frees the rows only while this node still claims them and
 * they have not started (PENDING or SCHEDULED; a pipeline: its row and
 * every job of it), so work another node took over meanwhile, or that did
 * start, stays as it is. Nothing is ended or failed: a row given back keeps
 * its status, attempt, reason and due time, and loses only its claim. A
 * node that never gets to send them (the database down until it exits)
 * leaves them to its close, or to its next start (release_node()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supervisor/log.h"
#include "pg_internal.h"
#include "pg_sql.h"

/* Forget the first n units. */
static void forget_units(struct pg_store *ps, size_t n)
{
	memmove(ps->give_back, ps->give_back + n, (ps->ngive_back - n) * sizeof(*ps->give_back));
	ps->ngive_back -= n;
}

static void given_back(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;
	size_t n = ps->give_back_sent, units = 0;
	char sent[24], freed[24];

	ps->give_back_sent = 0;
	if (err == -ECANCELED) {
		pg_batch_free(b); /* the store is going away */
		return;
	}
	if (err == -EPIPE || (err == -EIO && pg_sqlstate_transient(pg_batch_sqlstate(b)))) {
		pg_batch_free(b); /* kept: sent again at the next chance */
		return;
	}
	if (err) {
		log_warn("could not give back claimed work that did not start; it is given back "
			 "when this node stops", "error", msg);
	} else {
		for (size_t i = 0; i < n; i++)
			if (atoll(PQcmdTuples((PGresult *)pg_batch_result(b, i))) > 0)
				units++;
		snprintf(sent, sizeof(sent), "%zu", n);
		snprintf(freed, sizeof(freed), "%zu", units);
		log_info("gave claimed work that did not start back to the queue", "node", ps->node,
			 "units", sent, "given_back", freed);
	}
	pg_batch_free(b);
	forget_units(ps, n);
	pg_give_back_maybe(ps);
}

void pg_give_back_maybe(struct pg_store *ps)
{
	struct pg_batch *b;
	int rc;

	if (!ps->ngive_back || ps->give_back_sent || ps->closing || !ps->registered ||
	    !pgconn_up(ps->writer) || pg_write_pending(ps) || ps->inflight)
		return;
	b = pg_batch_new(true, given_back, ps);
	rc = !b;
	for (size_t i = 0; b && i < ps->ngive_back; i++) {
		const struct pg_unit *u = &ps->give_back[i];

		rc |= pg_batch_call(b, u->pipeline ? PGS_GIVE_BACK_PIPELINE : PGS_GIVE_BACK_JOB) |
		      pg_batch_uuid(b, u->id) | pg_batch_text(b, ps->node);
	}
	if (b)
		rc |= pg_batch_call(b, PGS_NOTIFY) | pg_batch_text(b, ps->chan_jobs) |
		      pg_batch_text(b, "");
	if (rc || pgconn_submit(ps->writer, b) < 0) {
		pg_batch_free(b);
		log_warn("out of memory: claimed work that did not start is given back when this "
			 "node stops");
		forget_units(ps, ps->ngive_back);
		return;
	}
	ps->give_back_sent = ps->ngive_back;
}

static void on_give_back(struct ev_loop *loop, ev_prepare *w, int revents)
{
	ev_prepare_stop(loop, w);
	pg_give_back_maybe(w->data);
}

void pg_give_back(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline)
{
	struct pg_store *ps = pg_of(st);

	if (ps->closing)
		return; /* close()'s release_node() gives it back */
	if (ps->ngive_back == ps->give_back_cap) {
		size_t cap = ps->give_back_cap ? ps->give_back_cap * 2 : 64;
		struct pg_unit *v = realloc(ps->give_back, cap * sizeof(*v));

		if (!v) {
			log_warn("out of memory: claimed work that did not start is given back when "
				 "this node stops");
			return;
		}
		ps->give_back = v;
		ps->give_back_cap = cap;
	}
	memcpy(ps->give_back[ps->ngive_back].id, id, JOB_ID_LEN);
	ps->give_back[ps->ngive_back++].pipeline = pipeline;
	if (!ev_is_active(&ps->give_back_w))
		ev_prepare_start(ps->loop, &ps->give_back_w);
}

void pg_give_back_init(struct pg_store *ps)
{
	ev_prepare_init(&ps->give_back_w, on_give_back);
	ps->give_back_w.data = ps;
}

void pg_give_back_stop(struct pg_store *ps)
{
	ev_prepare_stop(ps->loop, &ps->give_back_w);
}

void pg_give_back_free(struct pg_store *ps)
{
	free(ps->give_back);
	ps->give_back = NULL;
	ps->ngive_back = ps->give_back_cap = ps->give_back_sent = 0;
}
