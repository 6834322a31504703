/*
 * pgconn_fixture.h - the harness of the storage/pgconn.c tests
 * (test_pgconn.c: the connection's life; test_pgbatch.c: batches on the
 * wire): a table of test statements over a schema of the run's own,
 * FIXTURE_NAME "_test_<pid>" (t: id and text, d: a deferred foreign key to
 * t), connections whose hooks count ups, downs and notifications, batches
 * whose done callback records the outcome and the completion order, a
 * blocking admin connection to check from outside, and wait_for(), which
 * runs the real ev loop under a guard timer so nothing hangs. Without
 * VALET_TEST_DATABASE_URL the tests that need a server skip. Define
 * FIXTURE_NAME, then include after the system headers, cmocka.h, skip.h,
 * ev.h, libpq-fe.h and storage/pgconn.h.
 */
#ifndef VALET_TEST_PGCONN_FIXTURE_H
#define VALET_TEST_PGCONN_FIXTURE_H

enum {
	S_INS,
	S_SEL,
	S_COUNT,
	S_ECHO,
	S_NOTIFY,
	S_SLEEP,
	S_PID,
	S_LEN,
	S_INS_D,
	S_SAVEPOINT,
	S_NSTMTS
};

static const char *db_url;
static char schema[64];
static char sql[S_NSTMTS][256];
static struct pg_stmt stmts[S_NSTMTS];
static struct ev_loop *loop;
static PGconn *admin; /* plain blocking connection for checks from outside */
static int seq;	      /* completion order across batches */

/* ---- helpers -------------------------------------------------------------- */

struct tconn {
	struct pgconn *c;
	int ups, downs;
	char reason[512];
	const char *setup_sql;
	int notifies;
	char channel[64], payload[64];
};

struct rec {
	int calls;
	int err;
	int seq;
	char msg[512];
	/* Optional actions from inside done. */
	struct tconn *submit_to; /* submit `chain` more batches, one per done */
	int chain;
	struct pgconn *free_conn;
};

static void on_state(void *arg, bool up, const char *reason)
{
	struct tconn *t = arg;

	if (up) {
		t->ups++;
		return;
	}
	t->downs++;
	snprintf(t->reason, sizeof(t->reason), "%s", reason ? reason : "(null)");
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct tconn *t = arg;

	t->notifies++;
	snprintf(t->channel, sizeof(t->channel), "%s", channel);
	snprintf(t->payload, sizeof(t->payload), "%s", payload);
}

static const char *on_setup(void *arg)
{
	return ((struct tconn *)arg)->setup_sql;
}

static const struct pgconn_hooks hooks = {on_state, on_notify, on_setup};

static void on_done(struct pg_batch *b, int err, const char *msg, void *arg);

static struct pg_batch *batch(bool txn, struct rec *r)
{
	struct pg_batch *b = pg_batch_new(txn, on_done, r);

	assert_non_null(b);
	return b;
}

static void add_ins(struct pg_batch *b, int64_t id, const char *v)
{
	assert_int_equal(pg_batch_call(b, S_INS), 0);
	assert_int_equal(pg_batch_int(b, id), 0);
	assert_int_equal(pg_batch_text(b, v), 0);
}

static void add_call0(struct pg_batch *b, size_t stmt)
{
	assert_int_equal(pg_batch_call(b, stmt), 0);
}

static void on_done(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct rec *r = arg;

	r->calls++;
	r->err = err;
	r->seq = ++seq;
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
	if (r->submit_to && r->chain > 0) {
		struct pg_batch *next = batch(true, r);

		r->chain--;
		add_ins(next, 1000 + r->chain, "chained");
		assert_int_equal(pgconn_submit(r->submit_to->c, next), 0);
	}
	if (r->free_conn) {
		struct pgconn *c = r->free_conn;

		r->free_conn = NULL;
		pgconn_free(c);
	}
	/* Batches of a chain are freed here; others by the test. */
	if (r->submit_to)
		pg_batch_free(b);
}

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
}

/* Run the loop until *counter >= target or timeout seconds pass. */
static bool wait_for(const int *counter, int target, double timeout)
{
	bool expired = false;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, timeout, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (*counter < target && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return *counter >= target;
}

static void need_db(void)
{
	if (!db_url) {
		SKIP_NEEDS("VALET_TEST_DATABASE_URL is not set (needs PostgreSQL; "
			   "run tests/pg_tmp.sh or `make test`)");
	}
}

static void tconn_open(struct tconn *t, const char *url, const char *setup)
{
	memset(t, 0, sizeof(*t));
	t->setup_sql = setup;
	t->c = pgconn_new(loop, url, "test", stmts, S_NSTMTS, &hooks, t);
	assert_non_null(t->c);
}

static void tconn_up(struct tconn *t, const char *setup)
{
	tconn_open(t, db_url, setup);
	assert_true(wait_for(&t->ups, 1, 10.));
	assert_true(pgconn_up(t->c));
}

static void admin_exec(const char *q)
{
	PGresult *res = PQexec(admin, q);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(admin));
	PQclear(res);
}

static long admin_count(const char *where)
{
	char q[256];
	PGresult *res;
	long n;

	snprintf(q, sizeof(q), "SELECT count(*) FROM %s.t WHERE %s", schema, where);
	res = PQexec(admin, q);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	n = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

static void truncate_tables(void)
{
	char q[256];

	snprintf(q, sizeof(q), "TRUNCATE %s.t, %s.d", schema, schema);
	admin_exec(q);
}

static const char *val(const struct pg_batch *b, size_t call, int col)
{
	const PGresult *res = pg_batch_result(b, call);

	assert_non_null(res);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 1);
	return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

/* ---- setup ------------------------------------------------------------------ */

/* ---- setup ------------------------------------------------------------------ */

/* tmpl with '@' for the schema name. */
static void set_stmt(int i, const char *name, int nparams, const char *tmpl)
{
	size_t n = 0;

	for (; *tmpl && n + sizeof(schema) < sizeof(sql[i]); tmpl++) {
		if (*tmpl == '@')
			n += (size_t)snprintf(sql[i] + n, sizeof(sql[i]) - n, "%s", schema);
		else
			sql[i][n++] = *tmpl;
	}
	sql[i][n] = '\0';
	stmts[i] = (struct pg_stmt){name, sql[i], nparams};
}

static int group_setup(void **state)
{
	char q[512];

	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		return -1;
	snprintf(schema, sizeof(schema), "%s_test_%d", FIXTURE_NAME, (int)getpid());
	set_stmt(S_INS, "ins", 2, "INSERT INTO @.t (id, v) VALUES ($1, $2)");
	set_stmt(S_SEL, "sel", 1, "SELECT id, v FROM @.t WHERE id = $1");
	set_stmt(S_COUNT, "count", 0, "SELECT count(*) FROM @.t");
	set_stmt(
	    S_ECHO, "echo", 5,
	    "SELECT $1::text IS NULL, $2::bool, $3::bigint, $4::timestamptz, $5::uuid, $1::text");
	set_stmt(S_NOTIFY, "notify", 2, "SELECT pg_notify($1, $2)");
	set_stmt(S_SLEEP, "sleep", 1, "SELECT pg_sleep($1::float8)");
	set_stmt(S_PID, "pid", 0, "SELECT pg_backend_pid()");
	set_stmt(S_LEN, "len", 1, "SELECT length($1::text)");
	set_stmt(S_INS_D, "ins_d", 1, "INSERT INTO @.d (id) VALUES ($1)");
	/* Refused outside a transaction block (BEGIN .. COMMIT). */
	set_stmt(S_SAVEPOINT, "savepoint", 0, "SAVEPOINT s");
	db_url = getenv("VALET_TEST_DATABASE_URL");
	if (db_url && !*db_url)
		db_url = NULL;
	if (!db_url) {
		fprintf(stderr,
			"test_%s: VALET_TEST_DATABASE_URL is not set: the tests that "
			"need PostgreSQL are skipped\n",
			FIXTURE_NAME);
		return 0;
	}
	admin = PQconnectdb(db_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "test_%s: %s", FIXTURE_NAME, PQerrorMessage(admin));
		return -1;
	}
	PQclear(PQexec(admin, "SET client_min_messages = warning"));
	snprintf(q, sizeof(q),
		 "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; "
		 "CREATE TABLE %s.t (id bigint PRIMARY KEY, v text); "
		 "CREATE TABLE %s.d (id bigint REFERENCES %s.t (id) DEFERRABLE INITIALLY DEFERRED)",
		 schema, schema, schema, schema, schema);
	admin_exec(q);
	return 0;
}

static int group_teardown(void **state)
{
	char q[128];

	if (admin) {
		snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
		PQclear(PQexec(admin, q));
		PQfinish(admin);
	}
	ev_loop_destroy(loop);
	return 0;
}

#endif
