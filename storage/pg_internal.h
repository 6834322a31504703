/*
 * pg_internal.h - the PostgreSQL store's state, shared by postgres.c (the
 * store port: reads, the store's life), pg_save.c and pg_write.c (writes
 * recorded, then group-committed), pg_queue.c (the node: registration,
 * heartbeat, rescue, claims, cancel across nodes, close), pg_giveback.c
 * (claimed work given back at a drain) and pg_spill.c (writes the database
 * does not take, kept across a restart).
 */
#ifndef VALET_PG_INTERNAL_H
#define VALET_PG_INTERNAL_H

#include <sys/queue.h>

#include "pgconn.h"
#include "../supervisor/idmap.h"
#include "../supervisor/metrics.h"
#include "../supervisor/store.h"

enum pg_op_kind { OP_CREATE_JOB, OP_CREATE_PIPELINE, OP_DELETE_JOB, OP_DELETE_RESULT,
		  OP_DELETE_PIPELINE, OP_SYNC };

/*
 * A write that is answered once committed. A create is answered within the
 * submit timeout (pg_deadline.c): committed, or -ETIMEDOUT and withdrawn.
 * A withdrawn create that may have been committed anyway stays an op, a
 * delete of what it created, until the database confirms that.
 */
struct pg_op {
	TAILQ_ENTRY(pg_op) link;  /* on ps->ops while it waits to be sent */
	TAILQ_ENTRY(pg_op) wlink; /* on ps->withdrawn while wlisted */
	enum pg_op_kind kind;
	struct job *job;        /* reference */
	struct pipeline *pl;    /* reference */
	uint8_t id[JOB_ID_LEN];
	bool claim;
	store_done_fn cb;       /* NULL once answered */
	void *arg;
	/* creates (pg_deadline.c) */
	struct pg_store *ps;
	ev_timer deadline_w;    /* the submit timeout */
	int64_t guard_us;       /* its transaction may not commit after this (wall clock) */
	bool in_batch;          /* an attempt is in flight */
	bool maybe_stored;      /* an attempt may have committed (its connection broke) */
	bool withdrawn;         /* answered -ETIMEDOUT: it must not exist */
	bool deleting;          /* the attempt in flight deletes what it made */
	bool wlisted;
};
TAILQ_HEAD(pg_op_list, pg_op);

/*
 * A job or pipeline with changes not yet written (pg_save.c; pg_write.c,
 * "group commit"): one per object however often it changes, on a dirty
 * list (or, a job whose start waits, the lazy list), found from the object's id
 * through an indirect idmap. The entry holds a reference, so the object
 * outlives the write even if everyone else lets go of it.
 */
struct pg_dirty {
	void *obj; /* first: the map reads the id through it; a job or pipeline reference */
	TAILQ_ENTRY(pg_dirty) link;
	unsigned mask; /* JOB_F_* of what changed, PG_F_* (below) */
	int64_t since_ns; /* on the lazy list: when (CLOCK_MONOTONIC) */
};
TAILQ_HEAD(pg_dirty_list, pg_dirty);

struct pg_store {
	struct store base; /* first: a struct store * is a struct pg_store * */
	struct ev_loop *loop;
	char *schema, *node, *url, *setup_sql;
	char chan_jobs[96], chan_cancel[96], chan_schema[96];
	int64_t lease_ms, backoff_ms, backoff_max_ms, submit_timeout_ms;
	int retention_days;
	struct pg_stmt *stmts;
	struct pgconn *writer, *reader;
	bool registering, registered, closing;
	/* pg_spill.c: changes not written, kept across a restart */
	char *state_dir;  /* where they are kept, or NULL */
	bool spill_done;  /* the last run's were written, or set aside */
	char spill_name[600]; /* this run's file in state_dir ("" until made) */
	bool spill_kept;      /* it exists */
	bool spill_said, spill_failed; /* logged once an outage */
	uint64_t mark_gen, spill_gen;  /* changes marked; as of the file's last write */
	int64_t write_ok_ns;  /* a write batch last committed (or the watch began) */
	ev_timer keep_w;      /* while changes wait: keep them once writes stall */

	/* pg_write.c: what waits to be written */
	struct pg_op_list ops;
	struct pg_op_list withdrawn;    /* pg_deadline.c: withdrawn creates that may exist */
	struct pg_dirty_list dirty_jobs; /* changed jobs, oldest change first */
	struct pg_dirty_list lazy_jobs; /* starts, written within PG_LAZY_S */
	struct idmap *dirty_job_map;    /* job id -> its entry on either list */
	ev_timer lazy_w, gather_w;
	struct pg_dirty_list dirty_pls;
	struct idmap *dirty_pl_map;     /* pipeline id -> its entry */
	size_t ndirty;                  /* entries on the two dirty lists */
	ev_tstamp dirty_since;          /* ndirty became non-zero (loop time) */
	unsigned inflight;              /* write batches in flight */
	struct pg_flush *flight;        /* the one in flight, or NULL */
	struct metrics_hist commit_batch; /* entries per group commit (metrics) */
	uint64_t rescued;		  /* jobs rescued from expired nodes (metrics) */
	size_t solo;                    /* entries still to send one per batch */
	ev_prepare flush_w;
	/* The database refused the last write for now (a transient SQLSTATE:
	 * read-only, disk full, timeout...): what it refused waits for retry_w,
	 * the next delay is retry_ms; the store is unhealthy until a write
	 * (or a renewal of the lease) works again. */
	bool write_failing;
	ev_timer retry_w;
	int retry_ms;
	uint64_t rng;

	/* pg_queue.c */
	const struct store_queue_hooks *hooks;
	void *hooks_arg;
	size_t want;                    /* what the core could take */
	size_t want_asked;              /* the claim in flight asked for this many */
	int64_t claim_us;               /* the last claim's token (its claimed_at) */
	int64_t lost_claim_us;          /* a claim whose answer was lost, or 0 */
	bool claiming, maybe_work, close_sent;
	long peers;                     /* other nodes with a live lease: as of the
					 * last renewal, or a registration since
					 * (-1: not known yet) */
	int64_t peer_seen_ns;           /* when a registration was last heard of */
	bool lease_lost;                /* no renewal for 5/6 of the lease */
	bool release_due;               /* renewed again: give back the claims once
					 * what waits to be written is written */
	int64_t lease_ok_ns;            /* when the last renewal that worked was sent */
	ev_timer lease_w;
	ev_timer due_w, poll_w, beat_w, prune_w, register_w, close_w;
	void (*close_done)(void *arg);
	void *close_arg;

	/* pg_giveback.c: claimed work the core will not start (it drains) */
	struct pg_unit {
		uint8_t id[JOB_ID_LEN];
		bool pipeline;
	} *give_back;
	size_t ngive_back, give_back_cap;
	size_t give_back_sent; /* the first ones, in the batch in flight */
	ev_prepare give_back_w;

	/* pg_keys.c: the API keys table, watched for the HTTP server */
	char chan_keys[96];
	store_keys_fn keys_cb; /* NULL: nobody watches */
	void *keys_arg;
	char *keys_text;       /* the lines handed over last */
	bool keys_reading, keys_again, keys_failed;
	int64_t keys_read_ns;  /* when the read in flight was sent */
	int64_t keys_since_ns; /* when the watch began */
	ev_timer keys_w;       /* the backstop re-read */
};

static inline struct pg_store *pg_of(struct store *st)
{
	return (struct pg_store *)st;
}

/* PG_F_* marks of a dirty entry, beside store.h's JOB_F_* bits below them */
#define PG_F_NORESULT (1u << 8) /* write the final status without the result */
#define PG_F_LAZY (1u << 9)	/* on the lazy list, not the dirty list */

/* pg_write.c: the write path */
int pg_write_init(struct pg_store *ps); /* its lists, maps and watchers; -ENOMEM */
void pg_write_stop(struct pg_store *ps); /* no more flushes (the store is closing) */
void pg_write_free(struct pg_store *ps); /* after the connections: answer, drop, free */
void pg_kick(struct pg_store *ps); /* flush before the loop sleeps */
/* Answer op (if not answered yet): 0 or -errno, reply.claimed. */
void pg_op_reply(struct pg_op *op, int err, bool claimed);
/* Forget op: stop its timer, drop its references, free it. */
void pg_op_free(struct pg_op *op);
/* The calls of every change not known to be committed into b, which is
 * not sent: the batch in flight's, then what waits (pg_spill.c). The
 * number of changes, or -ENOMEM. The lists are left as they are. */
int pg_write_unsent(struct pg_store *ps, struct pg_batch *b);
bool pg_write_pending(const struct pg_store *ps);
/* Writes work: the next refusal starts its backoff afresh (a renewal of the
 * lease worked, or a write batch committed). */
void pg_write_ok(struct pg_store *ps);
/* Send what waits now, without waiting out the retry delay. */
void pg_write_retry_now(struct pg_store *ps);

/* pg_save.c: what is to be written */
/* Mark what changed (JOB_F_*, PG_F_*) in the object's dirty entry, made
 * at the dirty list's tail (or head: a batch's entries put back). */
void pg_mark_job(struct pg_store *ps, struct job *job, unsigned mask, bool head);
void pg_mark_pl(struct pg_store *ps, struct pipeline *pl, unsigned mask, bool head);
/* Removes an unlinked entry from map and frees it; the reference it held
 * is the caller's now. */
void pg_dirty_free(struct idmap *map, struct pg_dirty *d, const uint8_t id[JOB_ID_LEN]);
void pg_lazy_init(struct pg_store *ps);  /* the lazy list's timer */
void pg_flush_lazy(struct pg_store *ps); /* the deferred starts join the next batch */
/* The store ops that write (postgres.c's pg_ops). */
int pg_create_job(struct store *st, struct job *job, unsigned flags, store_done_fn cb, void *arg);
int pg_create_pipeline(struct store *st, struct pipeline *pl, unsigned flags, store_done_fn cb,
		       void *arg);
void pg_save_job(struct store *st, struct job *job, unsigned fields);
void pg_save_pipeline(struct store *st, struct pipeline *pl, unsigned fields);
int pg_delete_job(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb, void *arg);
int pg_delete_result(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
		     void *arg);
int pg_delete_pipeline(struct store *st, const uint8_t id[JOB_ID_LEN], store_done_fn cb,
		       void *arg);
int pg_sync(struct store *st, store_done_fn cb, void *arg);

/* pg_deadline.c: submit deadlines */
enum pgd_end {
	PGD_COMMITTED,   /* the attempt's transaction committed */
	PGD_ROLLED_BACK, /* it did not commit; not for something of its own: try again */
	PGD_REFUSED,     /* it did not commit: the database refused this op itself */
	PGD_UNKNOWN,     /* the connection broke: it may have committed */
	PGD_CLOSED,      /* the store is going away */
};
enum pgd_next {
	PGD_ON,   /* not a deadline matter: carry on as before */
	PGD_DONE, /* answered and freed: forget it */
	PGD_BACK, /* withdrawn but maybe stored: put it back on ps->ops (a delete now) */
};
/* A new create op: arm its deadline. */
void pgd_arm(struct pg_store *ps, struct pg_op *op);
/* A create about to go into a batch at time now: true when it was too late
 * for its guard and has been withdrawn and freed (leave it out). */
bool pgd_too_late(struct pg_store *ps, struct pg_op *op, int64_t now);
/* op goes into a batch: what it becomes there (the guard it needs, or a
 * delete); calls the batch needs are the caller's. */
void pgd_sent(struct pg_op *op);
/* An attempt of op ended; what to do with it next. */
enum pgd_next pgd_after(struct pg_store *ps, struct pg_op *op, enum pgd_end end);
/* The guard failed: op's guard was the batch's (earliest): withdraw it. */
void pgd_guard_failed(struct pg_store *ps, struct pg_op *op);
/* A claimed job or pipeline with this id must not run here: it was
 * withdrawn (503) and is about to be deleted. */
bool pgd_withdrawn_id(const struct pg_store *ps, const uint8_t id[JOB_ID_LEN]);

/* pg_giveback.c: work the core will not start, back to the queue */
void pg_give_back_init(struct pg_store *ps);
void pg_give_back_stop(struct pg_store *ps);
void pg_give_back_free(struct pg_store *ps); /* after the writer */
/* The store op: note the unit; it goes once nothing waits to be written. */
void pg_give_back(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline);
/* Send the units noted, if nothing waits to be written and the writer is up. */
void pg_give_back_maybe(struct pg_store *ps);

/* pg_keys.c */
int pgk_watch(struct store *st, store_keys_fn cb, void *arg);
void pgk_changed(struct pg_store *ps); /* a NOTIFY, the reader is up: read now */
void pgk_stop(struct pg_store *ps);

/* pg_spill.c: unsent changes kept across a restart */
void pg_spill_init(struct pg_store *ps);
void pg_spill_stop(struct pg_store *ps);
/* A change was marked: watch that it is written, keep it if it is not. */
void pg_spill_watch(struct pg_store *ps);
/* A write batch committed. */
void pg_spill_settled(struct pg_store *ps);
/* The node stops with everything written: this run's file goes. */
void pg_spill_closed(struct pg_store *ps);
/* Whether dir can hold them: 0, or -errno with a sentence in err. */
int pg_spill_check(const char *dir, char *err, size_t errlen);
/* At the close timeout: keep what was not written in a file of the state
 * directory. 0 (also: nothing to keep), or -errno (logged). */
int pg_spill_save(struct pg_store *ps);
/* Before the node registers: send the kept changes. true: sent, the
 * registration follows their answer (pgq_register); false: nothing to send. */
bool pg_spill_replay(struct pg_store *ps);

/* pg_queue.c */
/* The payload, then the node id, of the NOTIFY on "<schema>_jobs" that a
 * registering node sends (other payloads there are due times). */
#define PG_NOTIFY_NODE "node "
extern const struct pgconn_hooks pgq_writer_hooks;
void pgq_register(struct pg_store *ps);       /* register now, if not yet */
void pgq_register_later(struct pg_store *ps); /* try it again in a second */
void pgq_init(struct pg_store *ps);
void pgq_stop(struct pg_store *ps);
void pgq_close_maybe(struct pg_store *ps);
void pgq_release_maybe(struct pg_store *ps); /* release_due, and all is written: release */
void pgq_attach(struct store *st, const struct store_queue_hooks *hooks, void *arg);
void pgq_want(struct store *st, size_t n);
bool pgq_alone(struct store *st);
/* Submit b on connection c; on failure (rc set, b NULL, not sent) free it:
 * its done callback is not called. */
bool pgq_submit(struct pgconn *c, struct pg_batch *b, int rc);
/* pg_cancel.c */
int pgq_cancel(struct store *st, const uint8_t id[JOB_ID_LEN], bool pipeline, store_done_fn cb,
	       void *arg);
void pgq_close(struct store *st, void (*done)(void *arg), void *arg);

#endif
