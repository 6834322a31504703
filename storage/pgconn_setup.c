/*
 * pgconn_setup.c - a PostgreSQL connection's way up: connecting, the
 * session's setup, preparing the statements (pgconn.c's header comment
 * has the whole state machine).
 *
 * Theory of operation: the timer starts an attempt (pgc_connect: WAIT ->
 * CONNECTING, with a 10 s deadline, since libpq enforces connect_timeout
 * only in its blocking calls; TCP keepalives and tcp_user_timeout are set
 * unless the connection string sets them itself). pgc_connect_poll follows PQconnectPoll and
 * sets the watcher again after every step (libpq may close the socket and
 * open another under the same number). Connected: SETUP runs the session
 * settings, then the owner's setup SQL, each its own simple query
 * (pgc_setup_results); PREPARE enters pipeline mode and prepares BEGIN,
 * COMMIT and every statement in one pipelined round trip
 * (pgc_prepare_results); its Sync makes the connection UP. The first error
 * of either is kept and drops the connection once the step's results are
 * in, like a connect failure; pgc_backoff picks the delay before the next
 * attempt.
 */
#include <stdio.h>
#include <string.h>

#include "../supervisor/log.h"
#include "pgconn_internal.h"

static void pgc_notice(void *arg, const PGresult *res)
{
	struct pgconn *c = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	bool loud = sev && strcmp(sev, "NOTICE") && strcmp(sev, "INFO") && strcmp(sev, "LOG") &&
		    strncmp(sev, "DEBUG", 5);

	log_msg(loud ? LOG_WARN : LOG_DEBUG, "database notice", "conn", c->label, "severity",
		sev ? sev : "?", "message", msg ? msg : "", (const char *)NULL);
}

void pgc_schedule(struct pgconn *c, double delay)
{
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, delay, 0.);
	ev_timer_start(c->loop, &c->timer);
}

double pgc_backoff(struct pgconn *c)
{
	int ms = c->backoff_ms;

	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	c->backoff_ms = ms * 2 > PGC_BACKOFF_MAX_MS ? PGC_BACKOFF_MAX_MS : ms * 2;
	return (ms / 2 + (double)(c->rng % (uint64_t)(ms / 2 + 1))) / 1000.0;
}

void pgc_connect(struct pgconn *c)
{
	/* TCP keepalives and a TCP user timeout, so that a peer that vanished
	 * (a network black hole, a host that died) breaks the connection
	 * within about 30 s instead of the kernel's 15 minutes of
	 * retransmissions. They come before the expanded dbname (the user's
	 * string), so any of them the string sets wins; a unix socket ignores
	 * them. */
	static const char *const keys[] = {"keepalives",	 "keepalives_idle",
					   "keepalives_interval", "keepalives_count",
					   "tcp_user_timeout",	 "dbname",
					   NULL};
	const char *values[] = {"1", PGC_KEEPALIVES_IDLE, PGC_KEEPALIVES_INTERVAL,
				PGC_KEEPALIVES_COUNT, PGC_TCP_USER_TIMEOUT, c->conninfo, NULL};

	c->conn = PQconnectStartParams(keys, values, 1);
	if (!c->conn) {
		pgc_drop(c, "out of memory");
		return;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		pgc_drop(c, PQerrorMessage(c->conn));
		return;
	}
	PQsetNoticeReceiver(c->conn, pgc_notice, c);
	c->state = PGC_CONNECTING;
	pgc_schedule(c, PGC_CONNECT_TIMEOUT);
	/* Before the first PQconnectPoll, act as if it said WRITING. */
	pgc_watch(c, EV_WRITE, true);
	if (!ev_is_active(&c->io))
		pgc_drop(c, "connection has no socket");
}

static void pgc_send_setup(struct pgconn *c, const char *sql)
{
	if (!PQsendQuery(c->conn, sql))
		pgc_drop(c, PQerrorMessage(c->conn));
	else
		pgc_flush(c);
}

static void pgc_connected(struct pgconn *c)
{
	ev_timer_stop(c->loop, &c->timer);
	if (PQsetnonblocking(c->conn, 1) != 0) {
		pgc_drop(c, PQerrorMessage(c->conn));
		return;
	}
	c->state = PGC_SETUP;
	c->setup_step = 0;
	c->setup_failed = false;
	pgc_send_setup(c, PGC_SESSION_SQL);
}

void pgc_connect_poll(struct pgconn *c)
{
	switch (PQconnectPoll(c->conn)) {
	case PGRES_POLLING_READING:
		pgc_watch(c, EV_READ, true);
		break;
	case PGRES_POLLING_WRITING:
		pgc_watch(c, EV_WRITE, true);
		break;
	case PGRES_POLLING_OK:
		pgc_connected(c);
		return;
	default:
		pgc_drop(c, PQerrorMessage(c->conn));
		return;
	}
	if (!ev_is_active(&c->io))
		pgc_drop(c, "connection has no socket");
}

static void pgc_setup_error(struct pgconn *c, const char *what, const PGresult *res)
{
	char msg[PGC_REASON_MAX - 128];

	if (c->setup_failed)
		return;
	c->setup_failed = true;
	pg_errtext(msg, sizeof(msg), res);
	snprintf(c->setup_err, sizeof(c->setup_err), "%.100s: %s", what, msg);
}

/* Prepare BEGIN, COMMIT and the statements, pipelined, with one Sync. */
static void pgc_prepare(struct pgconn *c)
{
	PGconn *pc = c->conn;

	if (!PQenterPipelineMode(pc) || !PQsendPrepare(pc, PGC_BEGIN, "BEGIN", 0, NULL) ||
	    !PQsendPrepare(pc, PGC_COMMIT, "COMMIT", 0, NULL))
		goto fail;
	for (size_t i = 0; i < c->nstmts; i++)
		if (!PQsendPrepare(pc, c->stmts[i].name, c->stmts[i].sql, c->stmts[i].nparams,
				   NULL))
			goto fail;
	if (!PQpipelineSync(pc))
		goto fail;
	c->state = PGC_PREPARE;
	c->prepared = 0;
	pgc_flush(c);
	return;
fail:
	pgc_drop(c, PQerrorMessage(pc));
}

void pgc_setup_results(struct pgconn *c)
{
	unsigned gen = c->gen;
	const char *sql;
	PGresult *res;

	while (!PQisBusy(c->conn)) {
		res = PQgetResult(c->conn);
		if (res) {
			ExecStatusType st = PQresultStatus(res);

			if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
				PQclear(res);
				pgc_drop(c, "setup: COPY is not supported");
				return;
			}
			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
			    st != PGRES_EMPTY_QUERY)
				pgc_setup_error(c, "setup", res);
			PQclear(res);
			continue;
		}
		/* NULL: every statement of this step has run. */
		if (c->setup_failed) {
			pgc_drop(c, c->setup_err);
			return;
		}
		if (c->setup_step++ == 0 && c->hooks.setup_sql) {
			sql = c->hooks.setup_sql(c->arg);
			if (pgc_changed(c, gen))
				return;
			if (sql && *sql) {
				pgc_send_setup(c, sql);
				return;
			}
		}
		pgc_prepare(c);
		return;
	}
}

static void pgc_up(struct pgconn *c)
{
	c->state = PGC_UP;
	c->backoff_ms = PGC_BACKOFF_MIN_MS;
	c->last_reason[0] = '\0';
	log_info("database connection up", "conn", c->label, "host", PQhost(c->conn));
	if (c->hooks.state)
		c->hooks.state(c->arg, true, NULL);
}

void pgc_prepare_results(struct pgconn *c)
{
	const char *name;
	char what[128];
	PGresult *res;
	int nulls = 0;

	while (!PQisBusy(c->conn)) {
		res = PQgetResult(c->conn);
		if (!res) {
			if (++nulls > 1)
				return;
			continue;
		}
		nulls = 0;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			if (c->setup_failed)
				pgc_drop(c, c->setup_err);
			else
				pgc_up(c);
			return;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			name = c->prepared < 2 ? "BEGIN/COMMIT" : "?";
			if (c->prepared >= 2 && c->prepared - 2 < c->nstmts)
				name = c->stmts[c->prepared - 2].name;
			snprintf(what, sizeof(what), "prepare %s", name);
			pgc_setup_error(c, what, res);
		}
		c->prepared++;
		PQclear(res);
	}
}
