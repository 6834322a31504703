/*
 * pg_queue.c - the PostgreSQL store as a node of a cluster: registration,
 * lease and rescue, claiming work, and close (cancel across nodes:
 * pg_cancel.c).
 *
 * Theory of operation (see pg_write.c for the write path)
 *
 *   writer up (first time) -> register: nodes row + release_node(self) +
 *                             the count of other live nodes + NOTIFY
 *                             "node <id>" in one transaction; then open the
 *                             reader, start the heartbeat, poll and prune
 *                             timers, claim
 *   writer up (again)      -> heartbeat now, look for work
 *   heartbeat (lease/3)    -> renew the lease, rescue_expired() others,
 *                             count the other live nodes
 *   NOTIFY <schema>_jobs   -> payload is the new work's due time (us):
 *                             due now -> claim; later -> arm the due timer;
 *                             "node <id>": another node registered
 *   no other live node     -> alone (pgq_alone): the core holds all it is
 *                             given, claimed at once (core_local_cap); one
 *                             seen -> tell the core (hooks->peers), which
 *                             gives back what it holds beyond its usual
 *                             backlog
 *   NOTIFY <schema>_cancel -> "job <id>" / "pipeline <id>": the core cancels
 *                             it if it holds it (the asking side: pg_cancel.c)
 *   NOTIFY <schema>_keys   -> the API keys table changed: read it (pg_keys.c)
 *   NOTIFY <schema>_schema -> payload is the schema's version after a
 *                             valetd migrated it: newer than this build ->
 *                             drop the writer (its setup then refuses the
 *                             schema until this node is upgraded)
 *   core want(n)           -> claim up to n when there may be work and no
 *                             claim is in flight; a short claim means the
 *                             queue is dry: ask for the next due time
 *                             (want(0) at a drain: claim nothing more; what
 *                             the core will not start goes back to the
 *                             queue at once: pg_giveback.c)
 *   no renewal for 5/6 of  -> other nodes may take this node's work over
 *   the lease                 soon: tell the core (it kills what runs and
 *                             starts nothing); once a renewal works again,
 *                             write what waited (a job that ended meanwhile,
 *                             still fenced by this node's claim), then give
 *                             every claim back (release_node) and let the
 *                             core forget what it held, then claim again
 *   close                  -> stop claiming; once every write is committed,
 *                             give back claimed work that did not start
 *                             and mark the node stopped
 *
 * A claim that breaks with the connection may have committed. Each claim
 * stamps its rows' claimed_at with a time unique to this node (its token),
 * so after the reconnect the node fetches what that claim took and runs it,
 * before it claims anything else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../supervisor/log.h"
#include "pg_internal.h"
#include "pg_schema.h"
#include "pg_sql.h"

#define PG_MAX_CLAIM 64
#define PG_POLL_S 2.0          /* fallback claim poll */
#define PG_PRUNE_S 60.0
#define PG_PRUNE_BATCH 500
#define PG_CLOSE_WAIT_S 5.0

static void claim_maybe(struct pg_store *ps);
static void refetch_lost_claim(struct pg_store *ps);

bool pgq_submit(struct pgconn *c, struct pg_batch *b, int rc)
{
	if (rc || !b || pgconn_submit(c, b) < 0) {
		pg_batch_free(b);
		return false;
	}
	return true;
}

static int64_t result_int(const PGresult *res, int64_t dflt)
{
	if (!res || PQntuples(res) < 1 || PQgetisnull(res, 0, 0))
		return dflt;
	return strtoll(PQgetvalue(res, 0, 0), NULL, 10);
}

/* ---- timers ------------------------------------------------------------------------ */

static void arm_due(struct pg_store *ps, int64_t due_us)
{
	double after = (double)(due_us - job_now_us()) / 1e6;

	if (after < 0.001)
		after = 0.001;
	if (ev_is_active(&ps->due_w) && ev_timer_remaining(ps->loop, &ps->due_w) <= after)
		return;
	ev_timer_stop(ps->loop, &ps->due_w);
	ev_timer_set(&ps->due_w, after, 0.);
	ev_timer_start(ps->loop, &ps->due_w);
}

static void on_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;

	ps->maybe_work = true;
	claim_maybe(ps);
}

static void heartbeat(struct pg_store *ps);
static void prune(struct pg_store *ps);

static void on_beat(struct ev_loop *loop, ev_timer *w, int revents)
{
	heartbeat(w->data);
}

static void on_prune(struct ev_loop *loop, ev_timer *w, int revents)
{
	prune(w->data);
}

static void on_register_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	pgq_register(w->data);
}

/* Renewals are sent every lease/3 (when the writer is up); a renewal is
 * dated from when it was sent, so the node gives up its work before the
 * lease others see has expired. */
static void on_lease_check(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;
	int64_t limit_ns = ps->lease_ms * 1000000 / 6 * 5;

	if (!ps->registered || ps->lease_lost || !ps->hooks ||
	    job_mono_ns() - ps->lease_ok_ns < limit_ns)
		return;
	ps->lease_lost = true;
	log_error("could not renew this node's lease in time", "node", ps->node);
	ps->hooks->lease(ps->hooks_arg, true);
}

void pgq_init(struct pg_store *ps)
{
	ev_timer_init(&ps->due_w, on_due, 1., 0.);
	ev_timer_init(&ps->poll_w, on_due, PG_POLL_S, PG_POLL_S);
	ev_timer_init(&ps->beat_w, on_beat, 1., (double)ps->lease_ms / 3000.0);
	ev_timer_init(&ps->prune_w, on_prune, 10., PG_PRUNE_S);
	ev_timer_init(&ps->register_w, on_register_retry, 1., 0.);
	ev_timer_init(&ps->lease_w, on_lease_check, (double)ps->lease_ms / 12000.0,
		      (double)ps->lease_ms / 12000.0);
	ps->due_w.data = ps->poll_w.data = ps->beat_w.data = ps->prune_w.data = ps;
	ps->register_w.data = ps->close_w.data = ps->lease_w.data = ps;
}

void pgq_stop(struct pg_store *ps)
{
	ev_timer_stop(ps->loop, &ps->due_w);
	ev_timer_stop(ps->loop, &ps->poll_w);
	ev_timer_stop(ps->loop, &ps->beat_w);
	ev_timer_stop(ps->loop, &ps->prune_w);
	ev_timer_stop(ps->loop, &ps->register_w);
	ev_timer_stop(ps->loop, &ps->close_w);
	ev_timer_stop(ps->loop, &ps->lease_w);
}

/* ---- registration, heartbeat, rescue, retention ---------------------------------------- */

/* Add release_node(this node): running attempts fail with "valetd on node
 * <node> <what> while the job was running", unstarted work goes back. */
static int add_release(struct pg_store *ps, struct pg_batch *b, const char *what)
{
	char reason[256];

	snprintf(reason, sizeof(reason), "valetd on node %s %s while the job was running",
		 ps->node, what);
	return pg_batch_call(b, PGS_NODE_RELEASE) | pg_batch_text(b, ps->node) |
	       pg_batch_text(b, reason) | pg_batch_int(b, ps->backoff_ms) |
	       pg_batch_int(b, ps->backoff_max_ms);
}

/* Add the count of the other nodes that share the queue (PGS_PEERS). */
static int add_peers(struct pg_store *ps, struct pg_batch *b)
{
	return pg_batch_call(b, PGS_PEERS) | pg_batch_text(b, ps->node);
}

static bool alone(const struct pg_store *ps)
{
	return ps->peers == 0 && ps->registered && !ps->lease_lost && !ps->closing;
}

bool pgq_alone(struct store *st)
{
	return alone(pg_of(st));
}

/* What the node knows of the other nodes now: n of them (-1: not known).
 * A node that was alone and is not any more tells the core, which gives
 * back what it took beyond its usual backlog. */
static void set_peers(struct pg_store *ps, int64_t n)
{
	bool was = alone(ps);

	ps->peers = n;
	if (was == alone(ps))
		return;
	if (was) {
		log_info("another node shares the queue: this node keeps a small backlog again",
			 "node", ps->node);
		if (ps->hooks && ps->hooks->peers)
			ps->hooks->peers(ps->hooks_arg);
	} else {
		log_info("no other node shares the queue: this node keeps what it is given",
			 "node", ps->node);
	}
}

static void reader_state(void *arg, bool up, const char *reason)
{
	if (up)
		pgk_changed(arg); /* the API keys, read as soon as can be */
}

static const struct pgconn_hooks reader_hooks = {.state = reader_state};

static void registered(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;
	int64_t peers;
	char n[24];

	ps->registering = false;
	if (err) {
		if (err != -ECANCELED) {
			log_error("cannot register this node in PostgreSQL; retrying", "node",
				  ps->node, "error", msg);
			if (err != -EPIPE)
				ev_timer_start(ps->loop, &ps->register_w);
		}
		pg_batch_free(b);
		return;
	}
	snprintf(n, sizeof(n), "%lld", (long long)result_int(pg_batch_result(b, 1), 0));
	peers = result_int(pg_batch_result(b, 2), -1);
	pg_batch_free(b);
	log_info("node registered", "node", ps->node, "schema", ps->schema,
		 "released_from_earlier_run", n);
	ps->registered = true;
	set_peers(ps, peers);
	if (!ps->reader)
		ps->reader = pgconn_new(ps->loop, ps->url, "reader", ps->stmts, PGS_COUNT,
					&reader_hooks, ps);
	ev_timer_again(ps->loop, &ps->beat_w);
	ev_timer_start(ps->loop, &ps->poll_w);
	ev_timer_start(ps->loop, &ps->lease_w);
	if (ps->retention_days > 0)
		ev_timer_start(ps->loop, &ps->prune_w);
	ps->maybe_work = true;
	pg_kick(ps);
	claim_maybe(ps);
}

void pgq_register_later(struct pg_store *ps)
{
	ev_timer_start(ps->loop, &ps->register_w);
}

void pgq_register(struct pg_store *ps)
{
	struct pg_batch *b;
	char host[256], pid[16], payload[96];
	int rc;

	if (ps->registering || ps->registered || ps->closing || !pgconn_up(ps->writer))
		return;
	/* What the last run could not write goes first: the registration
	 * fails what the node still holds. */
	if (pg_spill_replay(ps))
		return;
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	b = pg_batch_new(true, registered, ps);
	rc = !b;
	if (b) {
		rc |= pg_batch_call(b, PGS_NODE_REGISTER) | pg_batch_text(b, ps->node) |
		      pg_batch_text(b, host) | pg_batch_text(b, pid) |
		      pg_batch_text(b, VALET_VERSION) | pg_batch_int(b, ps->lease_ms);
		rc |= add_release(ps, b, "restarted");
		rc |= add_peers(ps, b);
		snprintf(payload, sizeof(payload), PG_NOTIFY_NODE "%s", ps->node);
		rc |= pg_batch_call(b, PGS_NOTIFY) | pg_batch_text(b, ps->chan_jobs) |
		      pg_batch_text(b, payload);
	}
	if (pgq_submit(ps->writer, b, rc)) {
		ps->registering = true;
		ps->lease_ok_ns = job_mono_ns();
	}
	else
		ev_timer_start(ps->loop, &ps->register_w);
}

struct pg_beat {
	struct pg_store *ps;
	int64_t sent_ns;
};

static void released_after_loss(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;

	pg_batch_free(b);
	if (err) {
		if (err != -ECANCELED) {
			log_warn("could not give back this node's claims; retrying", "error", msg);
			ps->lease_lost = true; /* the next renewal tries again */
		}
		return;
	}
	ps->hooks->lease(ps->hooks_arg, false);
	ps->maybe_work = true;
	claim_maybe(ps);
}

/* The lease is back after it was lost: other nodes may have taken some of
 * this node's work; give back all of it and start over. */
static void release_after_loss(struct pg_store *ps)
{
	struct pg_batch *b = pg_batch_new(true, released_after_loss, ps);
	int rc = !b;

	if (b)
		rc |= add_release(ps, b, "lost its database lease");
	if (!pgq_submit(ps->writer, b, rc))
		ps->lease_lost = true;
}

void pgq_release_maybe(struct pg_store *ps)
{
	if (!ps->release_due || !ps->hooks || ps->closing || pg_write_pending(ps) ||
	    ps->inflight || !pgconn_up(ps->writer))
		return;
	ps->release_due = false;
	release_after_loss(ps);
}

static void beaten(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_beat *beat = arg;
	struct pg_store *ps = beat->ps;
	int64_t rescued, peers, sent_ns = beat->sent_ns;
	char n[24];

	if (err) {
		if (err != -ECANCELED && err != -EPIPE)
			log_warn("heartbeat failed", "node", ps->node, "error", msg);
		/* Refused for now (read-only, disk full...): the database takes
		 * no writes; the store says so at once, not only once the lease
		 * is lost. */
		if (err == -EIO && pg_sqlstate_transient(pg_batch_sqlstate(b)))
			ps->write_failing = true;
		free(beat);
		pg_batch_free(b);
		return;
	}
	if (atoi(PQcmdTuples((PGresult *)pg_batch_result(b, 0))) > 0 &&
	    beat->sent_ns > ps->lease_ok_ns)
		ps->lease_ok_ns = beat->sent_ns;
	free(beat);
	rescued = result_int(pg_batch_result(b, 1), 0);
	peers = result_int(pg_batch_result(b, 2), -1);
	pg_batch_free(b);
	/* The database takes writes: what waits for a retry goes now. */
	if (ps->write_failing) {
		if (!pg_write_pending(ps) && !ps->inflight)
			pg_write_ok(ps);
		else
			pg_write_retry_now(ps);
	}
	if (ps->lease_lost && ps->hooks) {
		ps->lease_lost = false;
		log_info("this node's lease is renewed again", "node", ps->node);
		/* The changes held while the lease was lost (a job that ended
		 * meanwhile) are written first, while this node's claims still
		 * fence them; then the claims are given back. */
		ps->release_due = true;
		pg_write_retry_now(ps);
		pgq_release_maybe(ps);
	}
	/* A count made before a registration this node has heard of since
	 * is stale. */
	if (peers > 0 || ps->peer_seen_ns < sent_ns)
		set_peers(ps, peers);
	if (rescued > 0) {
		ps->rescued += (uint64_t)rescued;
		snprintf(n, sizeof(n), "%lld", (long long)rescued);
		log_warn("rescued the work of nodes whose lease expired", "jobs", n);
		ps->maybe_work = true;
		claim_maybe(ps);
	}
}

static void heartbeat(struct pg_store *ps)
{
	struct pg_beat *beat;
	struct pg_batch *b;
	int rc;

	if (!ps->registered || !pgconn_up(ps->writer))
		return;
	beat = malloc(sizeof(*beat));
	if (!beat)
		return;
	*beat = (struct pg_beat){ps, job_mono_ns()};
	b = pg_batch_new(false, beaten, beat);
	rc = !b;
	if (b) {
		rc |= pg_batch_call(b, PGS_HEARTBEAT) | pg_batch_text(b, ps->node) |
		      pg_batch_int(b, ps->lease_ms);
		rc |= pg_batch_call(b, PGS_RESCUE) | pg_batch_text(b, ps->node) |
		      pg_batch_int(b, ps->backoff_ms) | pg_batch_int(b, ps->backoff_max_ms);
		rc |= add_peers(ps, b);
	}
	if (!pgq_submit(ps->writer, b, rc))
		free(beat);
}

static void pruned(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;
	size_t jobs, pls;

	if (err) {
		if (err != -ECANCELED && err != -EPIPE)
			log_warn("pruning old jobs failed", "error", msg);
		pg_batch_free(b);
		return;
	}
	jobs = (size_t)atoll(PQcmdTuples((PGresult *)pg_batch_result(b, 0)));
	pls = (size_t)atoll(PQcmdTuples((PGresult *)pg_batch_result(b, 1)));
	pg_batch_free(b);
	if (jobs >= PG_PRUNE_BATCH || pls >= PG_PRUNE_BATCH) {
		/* More to do: go on soon, in small steps. */
		ev_timer_stop(ps->loop, &ps->prune_w);
		ev_timer_set(&ps->prune_w, 1., PG_PRUNE_S);
		ev_timer_start(ps->loop, &ps->prune_w);
	}
}

static void prune(struct pg_store *ps)
{
	struct pg_batch *b;
	int rc;

	if (!ps->registered || ps->retention_days <= 0 || !pgconn_up(ps->writer))
		return;
	b = pg_batch_new(false, pruned, ps);
	rc = !b;
	if (b) {
		rc |= pg_batch_call(b, PGS_PRUNE_JOBS) | pg_batch_int(b, ps->retention_days) |
		      pg_batch_int(b, PG_PRUNE_BATCH);
		rc |= pg_batch_call(b, PGS_PRUNE_PIPELINES) | pg_batch_int(b, ps->retention_days) |
		      pg_batch_int(b, PG_PRUNE_BATCH);
	}
	pgq_submit(ps->writer, b, rc);
}

/* ---- writer connection hooks --------------------------------------------------------------- */

static void writer_state(void *arg, bool up, const char *reason)
{
	struct pg_store *ps = arg;

	if (!up)
		return;
	if (!ps->registered) {
		pgq_register(ps);
		return;
	}
	heartbeat(ps);
	ps->maybe_work = true;
	pg_kick(ps);
	refetch_lost_claim(ps);
	pgq_release_maybe(ps);
	pg_give_back_maybe(ps);
	claim_maybe(ps);
	pgq_close_maybe(ps);
}

static void writer_notify(void *arg, const char *channel, const char *payload)
{
	struct pg_store *ps = arg;
	uint8_t id[JOB_ID_LEN];

	if (!strcmp(channel, ps->chan_jobs)) {
		size_t pre = strlen(PG_NOTIFY_NODE);
		int64_t due = payload && payload[0] ? strtoll(payload, NULL, 10) : 0;

		if (payload && !strncmp(payload, PG_NOTIFY_NODE, pre)) {
			/* A node registered (pgq_register): not alone, unless it
			 * is this one. */
			if (strcmp(payload + pre, ps->node)) {
				ps->peer_seen_ns = job_mono_ns();
				if (ps->peers <= 0)
					set_peers(ps, 1);
			}
		} else if (due > job_now_us() + 1000) {
			arm_due(ps, due);
		} else {
			ps->maybe_work = true;
			claim_maybe(ps);
		}
	} else if (!strcmp(channel, ps->chan_keys)) {
		pgk_changed(ps);
	} else if (!strcmp(channel, ps->chan_schema)) {
		long long v = payload ? strtoll(payload, NULL, 10) : 0;

		if (v > (long long)pg_schema_version()) {
			char known[24];

			/* A newer valetd migrated the schema under us: stop
			 * writing now. The reconnect's setup refuses the schema
			 * and says why, and retries until this node is upgraded;
			 * what it has to write waits, as when the database is
			 * down. */
			snprintf(known, sizeof(known), "%zu", pg_schema_version());
			log_error("a newer valetd migrated the database schema; this node stops "
				  "writing until it is upgraded", "schema", ps->schema,
				  "schema_version", payload, "known_version", known);
			pgconn_reset(ps->writer);
		}
	} else if (!strcmp(channel, ps->chan_cancel) && ps->hooks) {
		bool pl = !strncmp(payload, "pipeline ", 9);
		const char *s = strchr(payload, ' ');
		if (s && job_id_parse(s + 1, id) == 0)
			ps->hooks->cancel(ps->hooks_arg, id, pl);
	}
}

static const char *writer_setup(void *arg)
{
	return ((struct pg_store *)arg)->setup_sql;
}

const struct pgconn_hooks pgq_writer_hooks = {
	.state = writer_state,
	.notify = writer_notify,
	.setup_sql = writer_setup,
};

/* ---- claims ------------------------------------------------------------------------------------ */

static void next_due_done(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;
	int64_t due = err ? 0 : result_int(pg_batch_result(b, 0), 0);

	pg_batch_free(b);
	if (due > 0)
		/* Due already: locked by another node's claim right now; look again soon. */
		arm_due(ps, due > job_now_us() ? due : job_now_us() + 50000);
}

static void ask_next_due(struct pg_store *ps)
{
	struct pg_batch *b = pg_batch_new(false, next_due_done, ps);

	pgq_submit(ps->writer, b, b ? pg_batch_call(b, PGS_NEXT_DUE) : 1);
}

/* Deliver the jobs of one claimed pipeline: rows [first, end). */
static void deliver_pipeline(struct pg_store *ps, const PGresult *res, int first, int end)
{
	struct pipeline *pl = pg_row_pipeline(res, first, PG_CLAIM_PL_COL);
	struct job **jobs = pl ? realloc(pl->jobs, (size_t)(end - first) * sizeof(*jobs)) : NULL;
	int head = -1;

	if (!jobs)
		goto fail;
	pl->jobs = jobs;
	for (int i = first; i < end; i++) {
		struct job *job = pg_row_job(res, i);
		if (!job)
			goto fail;
		pl->jobs[pl->njobs++] = job;
		if (PQgetvalue(res, i, PG_CLAIM_HEAD_COL)[0] == 't')
			head = (int)pl->njobs - 1;
	}
	if (head < 0)
		goto fail;
	/* Answered 503 and about to be deleted: never run it (pg_deadline.c). */
	if (!pgd_withdrawn_id(ps, pl->id))
		ps->hooks->deliver(ps->hooks_arg, pl->jobs[head], pl, (size_t)head);
	pipeline_unref(pl);
	return;
fail:
	log_error("could not load a claimed pipeline; it stays claimed until this node restarts");
	pipeline_unref(pl);
}

/* Hand claimed rows (PGS_CLAIM's shape) to the core; the number of units. */
static int deliver_rows(struct pg_store *ps, const PGresult *res)
{
	int n = PQntuples(res), heads = 0;

	for (int i = 0; i < n;) {
		if (PQgetisnull(res, i, 13 /* pipeline_id */)) {
			struct job *job = pg_row_job(res, i);
			if (job && !ps->closing && !pgd_withdrawn_id(ps, job->id))
				ps->hooks->deliver(ps->hooks_arg, job, NULL, 0);
			job_unref(job);
			heads++;
			i++;
			continue;
		}
		int end = i + 1;
		const char *pid = PQgetvalue(res, i, 13);
		while (end < n && !strcmp(PQgetvalue(res, end, 13), pid))
			end++;
		if (!ps->closing)
			deliver_pipeline(ps, res, i, end);
		heads++;
		i = end;
	}
	return heads;
}

static void claimed(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;
	int heads;

	ps->claiming = false;
	if (err) {
		if (err == -EPIPE)
			/* It may have committed: fetch what it took after the reconnect. */
			ps->lost_claim_us = ps->claim_us;
		else if (err != -ECANCELED)
			log_warn("claiming jobs failed", "error", msg);
		pg_batch_free(b);
		return;
	}
	heads = deliver_rows(ps, pg_batch_result(b, 0));
	pg_batch_free(b);
	/* What was delivered fills that much of the room; the core says again
	 * what it can take at its next dispatch. */
	ps->want = ps->want > (size_t)heads ? ps->want - (size_t)heads : 0;
	if (heads < (int)ps->want_asked) {
		ps->maybe_work = false;
		ask_next_due(ps);
	}
	claim_maybe(ps);
}

static void refetched(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;
	char n[16];

	ps->claiming = false;
	if (!err) {
		snprintf(n, sizeof(n), "%d", deliver_rows(ps, pg_batch_result(b, 0)));
		log_info("recovered the work of a claim whose answer was lost", "units", n);
		ps->lost_claim_us = 0;
	} else if (err != -EPIPE && err != -ECANCELED) {
		log_warn("could not recover the work of a lost claim", "error", msg);
	}
	pg_batch_free(b);
	claim_maybe(ps);
}

/* A claim's answer was lost with the connection: deliver what it took. */
static void refetch_lost_claim(struct pg_store *ps)
{
	struct pg_batch *b;
	int rc;

	if (!ps->lost_claim_us || ps->claiming || !ps->hooks || !pgconn_up(ps->writer))
		return;
	b = pg_batch_new(false, refetched, ps);
	rc = !b;
	if (b)
		rc |= pg_batch_call(b, PGS_CLAIMED) | pg_batch_text(b, ps->node) |
		      pg_batch_time(b, ps->lost_claim_us);
	if (pgq_submit(ps->writer, b, rc))
		ps->claiming = true;
}

static void claim_maybe(struct pg_store *ps)
{
	struct pg_batch *b;
	size_t n = ps->want < PG_MAX_CLAIM ? ps->want : PG_MAX_CLAIM;
	int64_t now = job_now_us();
	int rc;

	if (!ps->hooks || !ps->registered || ps->closing || ps->claiming || ps->lease_lost ||
	    ps->release_due || ps->lost_claim_us || !n || !ps->maybe_work || !pgconn_up(ps->writer))
		return;
	/* The claim's time is its token: unique for this node. */
	ps->claim_us = now > ps->claim_us ? now : ps->claim_us + 1;
	b = pg_batch_new(false, claimed, ps);
	rc = !b;
	if (b)
		rc |= pg_batch_call(b, PGS_CLAIM) | pg_batch_text(b, ps->node) |
		      pg_batch_int(b, (int64_t)n) | pg_batch_time(b, ps->claim_us);
	if (!pgq_submit(ps->writer, b, rc))
		return;
	ps->claiming = true;
	ps->want_asked = n;
}

void pgq_attach(struct store *st, const struct store_queue_hooks *hooks, void *arg)
{
	struct pg_store *ps = pg_of(st);

	ps->hooks = hooks;
	ps->hooks_arg = arg;
}

void pgq_want(struct store *st, size_t n)
{
	struct pg_store *ps = pg_of(st);

	ps->want = n;
	claim_maybe(ps);
}

/* ---- close ------------------------------------------------------------------------------------- */

static void close_finish(struct pg_store *ps)
{
	void (*done)(void *arg) = ps->close_done;

	ps->close_done = NULL;
	ev_timer_stop(ps->loop, &ps->close_w);
	if (done)
		done(ps->close_arg);
}

static void stopped(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;

	if (err && err != -ECANCELED)
		log_warn("could not mark this node stopped in PostgreSQL", "error", msg);
	pg_batch_free(b);
	close_finish(ps);
}

static void on_close_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;

	pg_spill_save(ps);
	close_finish(ps);
}

void pgq_close_maybe(struct pg_store *ps)
{
	struct pg_batch *b;
	int rc;

	if (!ps->closing || !ps->close_done || ps->close_sent)
		return;
	if (!ps->registered || !pgconn_up(ps->writer) || pg_write_pending(ps) || ps->inflight ||
	    ps->claiming)
		return;
	b = pg_batch_new(true, stopped, ps);
	rc = !b;
	if (b) {
		rc |= add_release(ps, b, "stopped");
		rc |= pg_batch_call(b, PGS_NODE_STOP) | pg_batch_text(b, ps->node);
	}
	ps->close_sent = true;
	pg_spill_closed(ps); /* all is written: nothing of this run is kept */
	if (!pgq_submit(ps->writer, b, rc))
		close_finish(ps);
}

void pgq_close(struct store *st, void (*done)(void *arg), void *arg)
{
	struct pg_store *ps = pg_of(st);

	ps->closing = true;
	ps->close_done = done;
	ps->close_arg = arg;
	ev_timer_stop(ps->loop, &ps->poll_w);
	ev_timer_stop(ps->loop, &ps->due_w);
	ev_timer_init(&ps->close_w, on_close_timeout, PG_CLOSE_WAIT_S, 0.);
	ps->close_w.data = ps;
	ps->close_sent = false;
	ev_timer_start(ps->loop, &ps->close_w);
	pg_flush_lazy(ps);
	if (!ps->registered) {
		close_finish(ps);
		return;
	}
	pgq_close_maybe(ps);
}
