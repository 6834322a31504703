/*
 * pg_internal.h - the PostgreSQL store's state, shared by postgres.c (the
 * store port: writes with group commit, reads) and pg_queue.c (the node:
 * registration, heartbeat, rescue, claims, cancel across nodes, close).
 */
#ifndef VALET_PG_INTERNAL_H
#define VALET_PG_INTERNAL_H

#include <sys/queue.h>

#include "pgconn.h"
#include "../supervisor/idmap.h"
#include "../supervisor/store.h"

enum pg_op_kind { OP_CREATE_JOB, OP_CREATE_PIPELINE, OP_DELETE_JOB, OP_DELETE_RESULT,
		  OP_DELETE_PIPELINE, OP_SYNC };

/* A write that is answered once committed. */
struct pg_op {
	TAILQ_ENTRY(pg_op) link;
	enum pg_op_kind kind;
	struct job *job;        /* reference */
	struct pipeline *pl;    /* reference */
	uint8_t id[JOB_ID_LEN];
	bool claim;
	store_done_fn cb;
	void *arg;
};
TAILQ_HEAD(pg_op_list, pg_op);

/*
 * A job or pipeline with changes not yet written (postgres.c, "group
 * commit"): one per object however often it changes, on a dirty list (or,
 * a job whose start waits, the lazy list), found from the object's id
 * through an indirect idmap. The entry holds a reference, so the object
 * outlives the write even if everyone else lets go of it.
 */
struct pg_dirty {
	void *obj; /* first: the map reads the id through it; a job or pipeline reference */
	TAILQ_ENTRY(pg_dirty) link;
	unsigned mask; /* JOB_F_* of what changed, PG_F_* (postgres.c) */
};
TAILQ_HEAD(pg_dirty_list, pg_dirty);

struct pg_store {
	struct store base; /* first: a struct store * is a struct pg_store * */
	struct ev_loop *loop;
	char *schema, *node, *url, *setup_sql;
	char chan_jobs[96], chan_cancel[96];
	int64_t lease_ms, backoff_ms, backoff_max_ms;
	int retention_days;
	struct pg_stmt *stmts;
	struct pgconn *writer, *reader;
	bool registering, registered, closing;

	/* postgres.c: what waits to be written */
	struct pg_op_list ops;
	struct pg_dirty_list dirty_jobs; /* changed jobs, oldest change first */
	struct pg_dirty_list lazy_jobs; /* starts, written within PG_LAZY_S */
	struct idmap *dirty_job_map;    /* job id -> its entry on either list */
	ev_timer lazy_w, gather_w;
	struct pg_dirty_list dirty_pls;
	struct idmap *dirty_pl_map;     /* pipeline id -> its entry */
	size_t ndirty;                  /* entries on the two dirty lists */
	unsigned inflight;              /* write batches in flight */
	size_t solo;                    /* entries still to send one per batch */
	ev_prepare flush_w;

	/* pg_queue.c */
	const struct store_queue_hooks *hooks;
	void *hooks_arg;
	size_t want;                    /* what the core could take */
	size_t want_asked;              /* the claim in flight asked for this many */
	int64_t claim_us;               /* the last claim's token (its claimed_at) */
	int64_t lost_claim_us;          /* a claim whose answer was lost, or 0 */
	bool claiming, maybe_work, close_sent;
	bool lease_lost;                /* no renewal for 5/6 of the lease */
	int64_t lease_ok_ns;            /* when the last renewal that worked was sent */
	ev_timer lease_w;
	ev_timer due_w, poll_w, beat_w, prune_w, register_w, close_w;
	void (*close_done)(void *arg);
	void *close_arg;
};

static inline struct pg_store *pg_of(struct store *st)
{
	return (struct pg_store *)st;
}

/* postgres.c */
void pg_kick(struct pg_store *ps); /* flush before the loop sleeps */
bool pg_write_pending(const struct pg_store *ps);
void pg_flush_lazy(struct pg_store *ps); /* the deferred starts join the next batch */

/* pg_queue.c */
extern const struct pgconn_hooks pgq_writer_hooks;
void pgq_init(struct pg_store *ps);
void pgq_stop(struct pg_store *ps);
void pgq_close_maybe(struct pg_store *ps);
void pgq_attach(struct store *st, const struct store_queue_hooks *hooks, void *arg);
void pgq_want(struct store *st, size_t n);
int pgq_cancel(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline, store_done_fn cb,
	       void *arg);
void pgq_close(struct store *st, void (*done)(void *arg), void *arg);

#endif
