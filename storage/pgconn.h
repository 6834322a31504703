/*
 * pgconn.h - one asynchronous PostgreSQL connection driven by a libev loop.
 *
 * The PostgreSQL store (storage/postgres.c) opens two of these: a writer
 * (state changes, claims, heartbeats, LISTEN) and a reader (API reads), so
 * that a slow list query never holds up a job's state change. The loop never
 * blocks on the database: connecting, sending and receiving are all
 * non-blocking, and the socket is watched by an ev_io.
 *
 * Work is sent in batches. A batch is an ordered list of calls of prepared
 * statements (by index into the statement table given to pgconn_new) with
 * text parameters. A batch with txn set is sent as
 *     BEGIN; call 1; ...; call n; COMMIT; Sync
 * in pipeline mode, so it is one transaction and one round trip: this is
 * how the store does group commit. A txn batch of one call is sent as that
 * call and a Sync: the Sync's implicit commit makes it the same one
 * transaction, without two statements more for the server to run (most of
 * a busy store's transactions are one batched statement). A batch without
 * txn is sent as the calls
 * followed by one Sync (each call autocommits). Several batches may be in
 * flight at once; they complete in order.
 *
 * A batch's done callback is called exactly once:
 *   err == 0        every call succeeded (and, with txn, COMMIT succeeded);
 *                   pg_batch_result(b, i) is call i's result;
 *   err == -EIO     a call failed (SQL error); msg says which and why; with
 *                   txn nothing of the batch was committed;
 *   err == -EPIPE   the connection broke while the batch was in flight:
 *                   whether it committed is unknown;
 *   err == -ECANCELED  pgconn_free() with the batch still queued or in flight.
 * A batch submitted while the connection is down waits in the queue and is
 * sent after the next successful connect (after the setup), in order.
 *
 * A TCP connection gets keepalives and a tcp_user_timeout (a peer gone
 * silent breaks it in about 30 s) unless conninfo sets them itself.
 * On every (re)connect, before any batch: "SET TimeZone = 'UTC'; SET
 * DateStyle = 'ISO'" (so timestamps read back as pg_parse_time expects),
 * then the setup SQL (simple query
 * protocol, may hold several statements; for example migrations and
 * LISTEN) runs, then every statement of the table is prepared. If the setup
 * fails, the connection is dropped and retried like a connect failure.
 * Reconnects back off exponentially (100 ms doubling to 5 s, with jitter).
 * The state callback reports up (after setup and prepare) and down
 * (once per loss, with the reason).
 *
 * Notifications (LISTEN) received on the connection are passed to notify_cb.
 */
#ifndef VALET_PGCONN_H
#define VALET_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <libpq-fe.h>

struct pgconn;
struct pg_batch;

struct pg_stmt {
	const char *name; /* prepared statement name, unique in the table */
	const char *sql;  /* with $1..$n placeholders */
	int nparams;
};

struct pgconn_hooks {
	/* up == true: connected, setup done, statements prepared.
	 * up == false: the connection was lost or a connect attempt failed;
	 * reason is libpq's message (borrowed). */
	void (*state)(void *arg, bool up, const char *reason);
	/* A NOTIFY on a channel this connection LISTENs to (borrowed). */
	void (*notify)(void *arg, const char *channel, const char *payload);
	/* Returns the setup SQL to run after each connect, or NULL for none
	 * (borrowed until the next call). Called at every connect, so it may
	 * change (e.g. take an advisory lock only once migrations are known). */
	const char *(*setup_sql)(void *arg);
};

/* conninfo: a libpq connection string or URL (borrowed; copied). label names
 * the connection in log lines ("writer", "reader"). stmts is borrowed for
 * the connection's life. Starts connecting at once. NULL on ENOMEM. */
struct pgconn *pgconn_new(struct ev_loop *loop, const char *conninfo, const char *label,
			  const struct pg_stmt *stmts, size_t nstmts,
			  const struct pgconn_hooks *hooks, void *arg);
/* Closes the connection; queued and in-flight batches complete with
 * -ECANCELED (their callbacks run inside this call). NULL is a no-op. */
void pgconn_free(struct pgconn *c);

bool pgconn_up(const struct pgconn *c);
/* Batches queued or in flight. */
size_t pgconn_pending(const struct pgconn *c);
struct metrics_hist;
/* For the metrics: batches sent (each one round trip), and their round
 * trip times (borrowed: the connection's). */
void pgconn_stats(const struct pgconn *c, uint64_t *round_trips, const struct metrics_hist **rtt);
/* Drop the connection now and reconnect (tests; a hung server). */
void pgconn_reset(struct pgconn *c);
/* The value libpq uses for a connection option (keyword) of the live
 * connection, copied into buf; NULL when not connected or unset. */
const char *pgconn_option(const struct pgconn *c, const char *keyword, char *buf, size_t size);
/* When (job_mono_ns()) the oldest batch still in flight was sent: the
 * server owes an answer since then; 0 when nothing is in flight. */
int64_t pgconn_waiting_since(const struct pgconn *c);

/* ---- batches ------------------------------------------------------------ */

typedef void (*pg_batch_done_fn)(struct pg_batch *b, int err, const char *msg, void *arg);

/* A new empty batch. NULL on ENOMEM. */
struct pg_batch *pg_batch_new(bool txn, pg_batch_done_fn done, void *arg);
/* Frees the batch and its results. Call it from (or after) done; never on a
 * batch that was submitted and has not completed. NULL is a no-op. */
void pg_batch_free(struct pg_batch *b);

/* Append a call of statement stmt (index into the table). Then add exactly
 * that statement's nparams parameters, in order. Parameter text is copied
 * into the batch. 0 or -ENOMEM (the batch is then unusable: free it). */
int pg_batch_call(struct pg_batch *b, size_t stmt);
int pg_batch_text(struct pg_batch *b, const char *s);   /* NULL -> SQL NULL */
int pg_batch_textn(struct pg_batch *b, const char *s, size_t len);
int pg_batch_null(struct pg_batch *b);
int pg_batch_int(struct pg_batch *b, int64_t v);
int pg_batch_bool(struct pg_batch *b, bool v);
/* Microseconds since the epoch as an RFC 3339 UTC timestamp; 0 -> NULL. */
int pg_batch_time(struct pg_batch *b, int64_t us);
/* 16 bytes -> the canonical UUID text. */
int pg_batch_uuid(struct pg_batch *b, const uint8_t id[16]);

/* One parameter: the array literal ("{...}") of parameter col of every call
 * of rows (a batch never sent: a table of values, one call a row), SQL NULLs
 * as NULL elements, in the calls' order. 0, -ENOMEM, or -EINVAL when a call
 * has no parameter col (b is unusable then, like after any failed append). */
int pg_batch_column(struct pg_batch *b, const struct pg_batch *rows, size_t col);

size_t pg_batch_ncalls(const struct pg_batch *b);
/* Call i's result after done(err == 0): PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; borrowed, freed with the batch. */
const PGresult *pg_batch_result(const struct pg_batch *b, size_t i);
/* After done(err == -EIO): the SQLSTATE of the error ("25006"), or "" when
 * the error had none (borrowed, freed with the batch). */
const char *pg_batch_sqlstate(const struct pg_batch *b);
/* Whether an error with this SQLSTATE (NULL: none) is one retrying may
 * cure - the server cannot take the work now (read-only, disk full,
 * statement timeout, shutting down, ...) - rather than one about the work
 * itself (bad data, a constraint, a bug in the SQL). */
bool pg_sqlstate_transient(const char *code);

/* Queue the batch (stolen until done runs). 0, or -EINVAL for an empty
 * batch or one whose parameters do not match its statements (done is not
 * called then). */
int pgconn_submit(struct pgconn *c, struct pg_batch *b);

/* ---- value helpers for results -------------------------------------------- */

/* timestamptz text as PostgreSQL prints it in ISO style with TimeZone=UTC
 * ("2026-11-27 06:01:51.123456+00") -> us since the epoch; NULL/"" -> 0. */
int64_t pg_parse_time(const char *s);
/* "xxxxxxxx-xxxx-..." -> 16 bytes. 0 or -EINVAL. */
int pg_parse_uuid(const char *s, uint8_t id[16]);

#endif
