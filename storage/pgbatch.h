/*
 * pgbatch.h - the inside of a pg_batch, shared by pgconn.c (which sends it
 * and files its results) and pgbatch.c (which builds it and formats and
 * parses values). Not a public contract: everyone else uses pgconn.h.
 */
#ifndef VALET_PGBATCH_H
#define VALET_PGBATCH_H

#include <stdint.h>
#include <sys/queue.h>

#include "pgconn.h"

#define PG_BATCH_NULL SIZE_MAX /* parameter offset of an SQL NULL */

struct pg_call {
	size_t stmt;
	size_t first;	/* index of its first parameter in the batch's params */
	size_t nparams; /* parameters added so far */
	PGresult *result;
};

struct pg_batch {
	STAILQ_ENTRY(pg_batch) link;
	pg_batch_done_fn done;
	void *arg;
	bool txn;
	bool broken;   /* an append failed: submit refuses the batch */
	bool queued;   /* submitted, done not called yet */
	bool internal; /* the connection's own ROLLBACK */
	bool doomed;   /* sent behind a failed transaction: resend, do not report */
	bool rollback; /* failed inside BEGIN..COMMIT: the session is left aborted */
	bool failed;
	bool got;   /* a result for `query` came: the next NULL ends it */
	bool extra; /* that result was an error raised at a Sync */
	struct pg_call *calls;
	size_t ncalls, calls_cap;
	size_t *params; /* offsets into arena, or PG_BATCH_NULL */
	size_t nparams, params_cap;
	char *arena; /* NUL-terminated parameter texts */
	size_t arena_len, arena_cap;
	size_t query;	/* the query whose results come next (block: 0 is BEGIN) */
	size_t nsynced; /* Sync results seen */
	char *errmsg;
	char sqlstate[6]; /* the failure's SQLSTATE, "" when it had none */
	int64_t sent_ns; /* when it was last sent (CLOCK_MONOTONIC), for the metrics */
};

STAILQ_HEAD(pg_batch_list, pg_batch);

/* Forget what a previous send received (results, error, progress), so that
 * the batch can be sent (again). */
void pg_batch_reset(struct pg_batch *b);

/* Whether the batch goes on the wire as BEGIN, calls, COMMIT: a txn batch
 * of more than one call (one call and its Sync are a transaction already). */
bool pg_batch_block(const struct pg_batch *b);

/* The order of a batch's results on the wire (see pgconn.c): how many Sync
 * results it gets, whether its query number q (block: 0 is BEGIN) is a call
 * and which, and whether the next result should be a Sync. */
size_t pg_batch_nsyncs(const struct pg_batch *b);
bool pg_batch_call_of(const struct pg_batch *b, size_t q, size_t *call);
bool pg_batch_want_sync(const struct pg_batch *b);

/* src (may be NULL) as one line: newlines and tabs become single spaces,
 * none at the end; cut to fit size. */
void pg_oneline(char *dst, size_t size, const char *src);
/* A result's error as one line: "ERROR: primary DETAIL: detail (SQLSTATE
 * 23505)", without the statement excerpt and caret libpq adds. */
void pg_errtext(char *dst, size_t size, const PGresult *res);

#endif
