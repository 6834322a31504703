/*
 * pgconn_internal.h - what the two halves of a PostgreSQL connection
 * share: pgconn.c (the state machine, the batches, the public functions)
 * and pgconn_setup.c (connecting, the session's setup, preparing the
 * statements). The connection itself, and the functions each half calls
 * in the other. Private to those two files; pgconn.c's header comment is
 * the theory of operation of both.
 */
#ifndef VALET_PGCONN_INTERNAL_H
#define VALET_PGCONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../supervisor/metrics.h"
#include "pgbatch.h"

#define PGC_MAX_INFLIGHT 8
#define PGC_BACKOFF_MIN_MS 100
#define PGC_BACKOFF_MAX_MS 5000
#define PGC_CONNECT_TIMEOUT 10.0 /* seconds, TCP and authentication only */
#define PGC_REASON_MAX 512
/* TCP: a silent peer is given up after about 30 s, idle or not. */
#define PGC_KEEPALIVES_IDLE "10"
#define PGC_KEEPALIVES_INTERVAL "5"
#define PGC_KEEPALIVES_COUNT "4"
#define PGC_TCP_USER_TIMEOUT "30000" /* ms */
#define PGC_BEGIN "pgconn_begin"
#define PGC_COMMIT "pgconn_commit"
#define PGC_SESSION_SQL "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'"
#define PGC_OWNER(ptr, member) ((struct pgconn *)((char *)(ptr)-offsetof(struct pgconn, member)))

enum pgc_state { PGC_WAIT, PGC_CONNECTING, PGC_SETUP, PGC_PREPARE, PGC_UP, PGC_CLOSED };

struct pgconn {
	struct ev_loop *loop;
	ev_io io;
	ev_timer timer; /* WAIT: reconnect; CONNECTING: timeout */
	int io_events;
	PGconn *conn;
	enum pgc_state state;
	int setup_step;	 /* SETUP: 0 session settings, 1 the owner's SQL */
	size_t prepared; /* PREPARE: results seen */
	bool setup_failed;
	char setup_err[PGC_REASON_MAX];
	char *conninfo;
	char *label;
	const struct pg_stmt *stmts;
	size_t nstmts;
	struct pgconn_hooks hooks;
	void *arg;
	const char **values; /* scratch for PQsendQueryPrepared */
	struct pg_batch_list queue, inflight, resend;
	size_t ninflight; /* on inflight, the ROLLBACK included */
	size_t npending;  /* submitted and not completed */
	struct pg_batch rollback;
	bool hold; /* a ROLLBACK is in flight: send nothing */
	bool in_io;
	bool dead;
	int depth;
	unsigned gen;
	int backoff_ms;
	uint64_t rng;
	char last_reason[PGC_REASON_MAX]; /* to log a repeated failure quietly */
	uint64_t round_trips;		  /* batches sent */
	struct metrics_hist rtt;	  /* sent -> answered, in seconds */
};

/* Did the connection drop (gen moved) or get freed since gen was read? */
static inline bool pgc_changed(const struct pgconn *c, unsigned gen)
{
	return c->dead || c->gen != gen;
}

/* pgconn.c */
void pgc_drop(struct pgconn *c, const char *why);
void pgc_watch(struct pgconn *c, int events, bool force);
int pgc_flush(struct pgconn *c);

/* pgconn_setup.c: WAIT -> CONNECTING -> SETUP -> PREPARE -> UP, and the
 * timer that drives the first two. */
void pgc_schedule(struct pgconn *c, double delay);
double pgc_backoff(struct pgconn *c);
void pgc_connect(struct pgconn *c);
void pgc_connect_poll(struct pgconn *c);
void pgc_setup_results(struct pgconn *c);
void pgc_prepare_results(struct pgconn *c);

#endif
