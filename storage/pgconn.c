/*
 * pgconn.c - one asynchronous PostgreSQL connection driven by a libev loop:
 * its state machine, its batches and its public functions. The way up
 * (CONNECTING, SETUP, PREPARE) is pgconn_setup.c's; what the two share is
 * pgconn_internal.h's.
 *
 * Theory of operation
 *
 * A connection is a small state machine, driven by one ev_io on libpq's
 * socket and one ev_timer:
 *
 *   WAIT --timer--> CONNECTING --PQconnectPoll OK--> SETUP --> PREPARE --> UP
 *     ^                 |                                |          |        |
 *     +-- drop: PQfinish, in-flight batches fail, backoff timer -----+--------+
 *
 * pgconn_new() only arms the timer (at 0), so no callback runs inside it.
 * CONNECTING has a 10 s deadline: libpq only enforces connect_timeout in its
 * blocking calls.
 * CONNECTING follows PQconnectPoll: after every step the watcher is set
 * again from PQsocket(), because libpq may close the socket and open another
 * (next host, SSL retry) under the same or a new number. SETUP runs two
 * simple-protocol queries, one after the other: the session settings, then
 * the owner's setup SQL (its own query, so that statements that refuse to run
 * in a multi-statement string still work there). PREPARE enters pipeline
 * mode and prepares BEGIN, COMMIT and every statement of the table in one
 * pipelined round trip. The first error of SETUP or PREPARE drops the
 * connection like a connect failure. Drops back off from 100 ms doubling to
 * 5 s, each delay picked at random in [d/2, d] so that many daemons do not
 * reconnect in step.
 *
 * In UP, batches wait on `queue` and at most PGC_MAX_INFLIGHT of them are on
 * `inflight`, both FIFO, and PostgreSQL answers in order, so the head of
 * `inflight` owns the next result. A txn batch of several calls (a block) is
 * sent as BEGIN, the calls, COMMIT and one Sync; a txn batch of one call as
 * that call and a Sync, whose implicit commit is the transaction's.
 * A batch without txn gets a Sync after every call: a
 * Sync closes the implicit transaction, so this is what makes each call
 * commit on its own (between two Syncs, calls share one implicit transaction
 * and one error would undo them all). Per query, libpq returns its result and
 * then NULL (PGRES_PIPELINE_ABORTED for the queries skipped after an error);
 * each Sync gives a PGRES_PIPELINE_SYNC with no NULL after it. A batch
 * counts queries on NULLs and completes on its last Sync. An error raised at
 * a Sync itself (a deferred constraint in an implicit commit) arrives as an
 * extra result before the Sync and is blamed on the call just before.
 *
 * A failure between BEGIN and COMMIT leaves the session in an aborted
 * transaction block after the Sync, and every batch already sent behind it
 * will fail without effect ("current transaction is aborted"). So when such a
 * batch completes, the batches behind it are marked doomed, a ROLLBACK (the
 * connection's own batch) is sent and sending stops (`hold`). Doomed batches
 * are not reported: when their Sync arrives they move to `resend`, and when
 * the ROLLBACK completes they go back to the front of the queue, in order,
 * and are sent again. They never ran, so this is safe, and the order in which
 * batches complete stays the order in which they were submitted.
 *
 * Callbacks may call back into us (submit, reset, even free). Every entry
 * point counts itself in `depth`; pgconn_free() inside a callback cancels
 * everything at once but only marks the object `dead`, and the outermost
 * entry point frees it. `gen` counts drops: code that called out checks
 * `dead` and `gen` afterwards and returns if either changed. A batch is
 * always taken off its list before its done callback runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "../supervisor/job.h"
#include "../supervisor/log.h"
#include "pgconn_internal.h"

/* ---- small helpers -------------------------------------------------------- */

static void pgc_complete(struct pgconn *c, struct pg_batch *b, int err, const char *msg)
{
	b->queued = false;
	c->npending--;
	if (b->sent_ns && (err == 0 || err == -EIO))
		metrics_hist_observe(&c->rtt, (double)(job_mono_ns() - b->sent_ns) / 1e9);
	b->done(b, err, msg, b->arg);
}

static void pgc_leave(struct pgconn *c)
{
	if (--c->depth > 0 || !c->dead)
		return;
	pg_batch_reset(&c->rollback);
	free(c->conninfo);
	free(c->label);
	free(c->values);
	free(c);
}

/* (Re)start the watcher on libpq's current socket. While connecting it is
 * always restarted (force): the socket may be a new one with the old number. */
void pgc_watch(struct pgconn *c, int events, bool force)
{
	int fd = PQsocket(c->conn);

	if (!force && ev_is_active(&c->io) && c->io.fd == fd && c->io_events == events)
		return;
	ev_io_stop(c->loop, &c->io);
	if (fd < 0)
		return;
	ev_io_set(&c->io, fd, events);
	c->io_events = events;
	ev_io_start(c->loop, &c->io);
}

/* 1: output is still pending (and libpq may have read input while trying);
 * 0: all sent; -1: the connection was dropped. */
int pgc_flush(struct pgconn *c)
{
	int r = PQflush(c->conn);

	if (r < 0) {
		pgc_drop(c, PQerrorMessage(c->conn));
		return -1;
	}
	pgc_watch(c, EV_READ | (r ? EV_WRITE : 0), false);
	return r;
}

/* ---- sending and receiving batches ---------------------------------------- */

static int pgc_send(struct pgconn *c, struct pg_batch *b)
{
	PGconn *pc = c->conn;
	bool block = pg_batch_block(b);

	if (b->internal) {
		if (!PQsendQueryParams(pc, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) ||
		    !PQpipelineSync(pc))
			return -EIO;
		return 0;
	}
	if (block && !PQsendQueryPrepared(pc, PGC_BEGIN, 0, NULL, NULL, NULL, 0))
		return -EIO;
	for (size_t i = 0; i < b->ncalls; i++) {
		const struct pg_call *call = &b->calls[i];

		/* The arena may have moved while the batch grew: pointers are
		 * made from offsets only now. */
		for (size_t j = 0; j < call->nparams; j++) {
			size_t off = b->params[call->first + j];

			c->values[j] = off == PG_BATCH_NULL ? NULL : b->arena + off;
		}
		if (!PQsendQueryPrepared(pc, c->stmts[call->stmt].name, (int)call->nparams,
					 c->values, NULL, NULL, 0))
			return -EIO;
		if (!block && !PQpipelineSync(pc))
			return -EIO;
	}
	if (block &&
	    (!PQsendQueryPrepared(pc, PGC_COMMIT, 0, NULL, NULL, NULL, 0) || !PQpipelineSync(pc)))
		return -EIO;
	return 0;
}

static void pgc_pump(struct pgconn *c)
{
	struct pg_batch *b;

	while (c->state == PGC_UP && !c->hold && c->ninflight < PGC_MAX_INFLIGHT &&
	       (b = STAILQ_FIRST(&c->queue))) {
		STAILQ_REMOVE_HEAD(&c->queue, link);
		STAILQ_INSERT_TAIL(&c->inflight, b, link);
		c->ninflight++;
		pg_batch_reset(b);
		b->sent_ns = job_mono_ns();
		c->round_trips++;
		if (pgc_send(c, b) < 0) {
			pgc_drop(c, PQerrorMessage(c->conn));
			return;
		}
	}
}

static void pgc_batch_error(struct pgconn *c, struct pg_batch *b, const PGresult *res)
{
	char what[128], msg[PGC_REASON_MAX];
	size_t q = b->query, call;

	if (b->internal)
		snprintf(what, sizeof(what), "ROLLBACK");
	else if (b->extra && !pg_batch_block(b) && q >= 1)
		snprintf(what, sizeof(what), "call %zu (%s) at commit", q - 1,
			 c->stmts[b->calls[q - 1].stmt].name);
	else if (!b->extra && pg_batch_call_of(b, q, &call))
		snprintf(what, sizeof(what), "call %zu (%s)", call,
			 c->stmts[b->calls[call].stmt].name);
	else
		snprintf(what, sizeof(what), q == 0 ? "BEGIN" : "COMMIT");
	/* Failing before COMMIT ran leaves the transaction block aborted. */
	b->rollback = pg_batch_block(b) && !b->extra && q <= b->ncalls;
	b->failed = true;
	snprintf(b->sqlstate, sizeof(b->sqlstate), "%s",
		 PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
							   : "");
	pg_errtext(msg, sizeof(msg), res);
	if (asprintf(&b->errmsg, "%s: %s", what, msg) < 0)
		b->errmsg = NULL;
}

static bool pgc_fatal(const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	return sev && (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"));
}

/* One result (not a Sync) for the head batch. -1 if the connection dropped. */
static int pgc_batch_result(struct pgconn *c, struct pg_batch *b, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
	size_t call;

	b->extra = pg_batch_want_sync(b);
	b->got = true;
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
		PQclear(res);
		pgc_drop(c, "COPY is not supported");
		return -1;
	}
	/* FATAL (the backend was terminated, ...): the server closes the
	 * connection next; drop it now, with the server's reason. */
	if (pgc_fatal(res)) {
		char reason[PGC_REASON_MAX];

		pg_errtext(reason, sizeof(reason), res);
		PQclear(res);
		pgc_drop(c, reason);
		return -1;
	}
	if (!b->doomed && ok && !b->extra && pg_batch_call_of(b, b->query, &call)) {
		PQclear(b->calls[call].result);
		b->calls[call].result = res;
		return 0;
	}
	/* PIPELINE_ABORTED: skipped after the error already recorded. */
	if (!b->doomed && !ok && st != PGRES_PIPELINE_ABORTED && !b->failed)
		pgc_batch_error(c, b, res);
	PQclear(res);
	return 0;
}

static int pgc_start_rollback(struct pgconn *c)
{
	struct pg_batch *b;

	for (b = STAILQ_FIRST(&c->inflight); b; b = STAILQ_NEXT(b, link))
		b->doomed = true;
	pg_batch_reset(&c->rollback);
	STAILQ_INSERT_TAIL(&c->inflight, &c->rollback, link);
	c->ninflight++;
	c->hold = true;
	return pgc_send(c, &c->rollback);
}

/* The head batch's last Sync arrived; b is already off inflight. */
static void pgc_batch_finish(struct pgconn *c, struct pg_batch *b)
{
	char reason[PGC_REASON_MAX];

	c->ninflight--;
	if (b->internal) {
		if (b->failed) {
			pgc_drop(c, b->errmsg ? b->errmsg : "ROLLBACK failed");
			return;
		}
		STAILQ_CONCAT(&c->resend, &c->queue);
		STAILQ_CONCAT(&c->queue, &c->resend);
		c->hold = false;
		return;
	}
	if (b->doomed) {
		STAILQ_INSERT_TAIL(&c->resend, b, link);
		return;
	}
	if (b->rollback && pgc_start_rollback(c) < 0) {
		pg_oneline(reason, sizeof(reason), PQerrorMessage(c->conn));
		pgc_drop(c, reason);
	}
	if (b->failed)
		pgc_complete(c, b, -EIO, b->errmsg ? b->errmsg : "query failed (out of memory)");
	else
		pgc_complete(c, b, 0, NULL);
}

static void pgc_batch_results(struct pgconn *c)
{
	unsigned gen = c->gen;
	struct pg_batch *b;
	PGresult *res;

	while (!PQisBusy(c->conn)) {
		b = STAILQ_FIRST(&c->inflight);
		res = PQgetResult(c->conn);
		if (!res) {
			if (!b || !b->got)
				return;
			b->got = false;
			if (!b->extra)
				b->query++;
			continue;
		}
		if (!b) {
			PQclear(res);
			pgc_drop(c, "unexpected result from the server");
			return;
		}
		if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
			if (pgc_batch_result(c, b, res) < 0)
				return;
			continue;
		}
		PQclear(res);
		if (++b->nsynced < pg_batch_nsyncs(b))
			continue;
		STAILQ_REMOVE_HEAD(&c->inflight, link);
		pgc_batch_finish(c, b);
		if (pgc_changed(c, gen))
			return;
	}
}

/* ---- events ----------------------------------------------------------------- */

/* Results for the current state; a state change may make more results ours
 * (PREPARE -> UP). false if the connection dropped or was freed. */
static bool pgc_process(struct pgconn *c)
{
	unsigned gen = c->gen;
	enum pgc_state s;
	PGnotify *n;

	do {
		s = c->state;
		if (s == PGC_SETUP)
			pgc_setup_results(c);
		else if (s == PGC_PREPARE)
			pgc_prepare_results(c);
		else if (s == PGC_UP)
			pgc_batch_results(c);
		if (pgc_changed(c, gen))
			return false;
	} while (c->state != s);
	/* Parsing results may have absorbed notifications too. */
	while ((n = PQnotifies(c->conn))) {
		if (c->hooks.notify)
			c->hooks.notify(c->arg, n->relname, n->extra);
		PQfreemem(n);
		if (pgc_changed(c, gen))
			return false;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		pgc_drop(c, PQerrorMessage(c->conn));
		return false;
	}
	return true;
}

static void pgc_io(struct pgconn *c)
{
	unsigned gen = c->gen;

	if (!c->conn)
		return;
	if (c->state == PGC_CONNECTING) {
		pgc_connect_poll(c);
		return;
	}
	/* Always read: PQflush may have left input in libpq's buffer. */
	if (!PQconsumeInput(c->conn)) {
		pgc_drop(c, PQerrorMessage(c->conn));
		return;
	}
	if (!pgc_process(c))
		return;
	pgc_pump(c);
	if (pgc_changed(c, gen) || pgc_flush(c) != 1)
		return;
	/* Output is stuck and libpq read input meanwhile: use it now. */
	pgc_process(c);
}

static void pgc_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pgconn *c = PGC_OWNER(w, io);

	c->depth++;
	c->in_io = true;
	pgc_io(c);
	c->in_io = false;
	pgc_leave(c);
}

static void pgc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pgconn *c = PGC_OWNER(w, timer);

	c->depth++;
	if (c->state == PGC_WAIT)
		pgc_connect(c);
	else if (c->state == PGC_CONNECTING)
		pgc_drop(c, "timeout expired while connecting");
	pgc_leave(c);
}

/* Close the connection and schedule the next attempt. In-flight batches
 * fail with -EPIPE, except doomed ones: they never ran, so they go back to
 * the front of the queue with those waiting for resending. */
void pgc_drop(struct pgconn *c, const char *why)
{
	struct pg_batch_list lost = STAILQ_HEAD_INITIALIZER(lost);
	struct pg_batch_list back = STAILQ_HEAD_INITIALIZER(back);
	char reason[PGC_REASON_MAX];
	bool was_up = c->state == PGC_UP, again;
	struct pg_batch *b;

	pg_oneline(reason, sizeof(reason), why && *why ? why : "connection failed");
	ev_io_stop(c->loop, &c->io);
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->state = PGC_WAIT;
	c->hold = false;
	c->gen++;
	STAILQ_CONCAT(&back, &c->resend);
	while ((b = STAILQ_FIRST(&c->inflight))) {
		STAILQ_REMOVE_HEAD(&c->inflight, link);
		if (b->doomed)
			STAILQ_INSERT_TAIL(&back, b, link);
		else if (!b->internal)
			STAILQ_INSERT_TAIL(&lost, b, link);
	}
	c->ninflight = 0;
	STAILQ_CONCAT(&back, &c->queue);
	STAILQ_CONCAT(&c->queue, &back);
	pgc_schedule(c, pgc_backoff(c));

	again = !was_up && !strcmp(reason, c->last_reason);
	log_msg(again ? LOG_DEBUG : LOG_WARN,
		was_up ? "database connection lost" : "database connection failed", "conn",
		c->label, "reason", reason, (const char *)NULL);
	snprintf(c->last_reason, sizeof(c->last_reason), "%s", reason);

	while ((b = STAILQ_FIRST(&lost))) {
		STAILQ_REMOVE_HEAD(&lost, link);
		pgc_complete(c, b, -EPIPE, reason);
	}
	if (!c->dead && c->hooks.state)
		c->hooks.state(c->arg, false, reason);
}

/* ---- the connection ---------------------------------------------------------- */

struct pgconn *pgconn_new(struct ev_loop *loop, const char *conninfo, const char *label,
			  const struct pg_stmt *stmts, size_t nstmts,
			  const struct pgconn_hooks *hooks, void *arg)
{
	struct pgconn *c;
	int maxparams = 1;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	for (size_t i = 0; i < nstmts; i++)
		if (stmts[i].nparams > maxparams)
			maxparams = stmts[i].nparams;
	c->conninfo = strdup(conninfo ? conninfo : "");
	c->label = strdup(label ? label : "postgres");
	c->values = calloc((size_t)maxparams, sizeof(*c->values));
	if (!c->conninfo || !c->label || !c->values) {
		free(c->conninfo);
		free(c->label);
		free(c->values);
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->stmts = stmts;
	c->nstmts = nstmts;
	if (hooks)
		c->hooks = *hooks;
	c->arg = arg;
	STAILQ_INIT(&c->queue);
	STAILQ_INIT(&c->inflight);
	STAILQ_INIT(&c->resend);
	c->rollback.internal = true;
	metrics_hist_init(&c->rtt, metrics_buckets_latency, metrics_nbuckets_latency);
	c->backoff_ms = PGC_BACKOFF_MIN_MS;
	c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)(ev_time() * 1e6) ^ 0x9e3779b97f4a7c15ull;
	c->state = PGC_WAIT;
	ev_io_init(&c->io, pgc_io_cb, -1, 0);
	ev_timer_init(&c->timer, pgc_timer_cb, 0., 0.);
	/* Connect from the loop, so that no callback runs inside pgconn_new. */
	ev_timer_start(loop, &c->timer);
	return c;
}

void pgconn_stats(const struct pgconn *c, uint64_t *round_trips, const struct metrics_hist **rtt)
{
	*round_trips = c->round_trips;
	*rtt = &c->rtt;
}

static struct pg_batch *pgc_pop_any(struct pgconn *c)
{
	struct pg_batch_list *lists[] = {&c->resend, &c->inflight, &c->queue};
	struct pg_batch *b;

	for (size_t i = 0; i < 3; i++) {
		while ((b = STAILQ_FIRST(lists[i]))) {
			STAILQ_REMOVE_HEAD(lists[i], link);
			if (!b->internal)
				return b;
		}
	}
	return NULL;
}

void pgconn_free(struct pgconn *c)
{
	struct pg_batch *b;

	if (!c || c->dead)
		return;
	c->dead = true;
	c->depth++;
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->state = PGC_CLOSED;
	c->gen++;
	c->ninflight = 0;
	while ((b = pgc_pop_any(c)))
		pgc_complete(c, b, -ECANCELED, "connection closed");
	pgc_leave(c);
}

bool pgconn_up(const struct pgconn *c)
{
	return c && c->state == PGC_UP;
}

size_t pgconn_pending(const struct pgconn *c)
{
	return c ? c->npending : 0;
}

const char *pgconn_option(const struct pgconn *c, const char *keyword, char *buf, size_t size)
{
	PQconninfoOption *opts = c && c->conn ? PQconninfo(c->conn) : NULL;
	const char *found = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, keyword) && o->val) {
			snprintf(buf, size, "%s", o->val);
			found = buf;
		}
	PQconninfoFree(opts);
	return found;
}

int64_t pgconn_waiting_since(const struct pgconn *c)
{
	const struct pg_batch *b;

	if (!c || c->state != PGC_UP)
		return 0;
	/* The connection's own ROLLBACK carries no time; the batches behind
	 * it were sent later. */
	STAILQ_FOREACH(b, &c->inflight, link)
		if (b->sent_ns)
			return b->sent_ns;
	return 0;
}

void pgconn_reset(struct pgconn *c)
{
	if (!c || c->dead)
		return;
	c->depth++;
	if (c->state != PGC_WAIT)
		pgc_drop(c, "connection reset by request");
	if (!c->dead && c->state == PGC_WAIT)
		pgc_schedule(c, 0.);
	pgc_leave(c);
}

int pgconn_submit(struct pgconn *c, struct pg_batch *b)
{
	if (!c || !b || !b->done || b->queued || b->broken || b->internal || !b->ncalls)
		return -EINVAL;
	for (size_t i = 0; i < b->ncalls; i++) {
		const struct pg_call *call = &b->calls[i];

		if (call->stmt >= c->nstmts || c->stmts[call->stmt].nparams < 0 ||
		    call->nparams != (size_t)c->stmts[call->stmt].nparams)
			return -EINVAL;
	}
	if (c->dead)
		return -ECANCELED;
	pg_batch_reset(b);
	b->queued = true;
	STAILQ_INSERT_TAIL(&c->queue, b, link);
	c->npending++;
	/* Send from the loop: done never runs inside submit. Inside our own
	 * io callback, the pump at its end sends it. */
	if (c->state == PGC_UP && !c->in_io)
		ev_feed_event(c->loop, &c->io, EV_WRITE);
	return 0;
}
