/*
 * test_pgconn.c - storage/pgconn.c and pgbatch.c against a real PostgreSQL:
 * connect and setup, txn and plain batches, errors (and that a failed
 * transaction leaves nothing behind and does not poison the batches sent
 * after it), order of completion with many batches in flight, parameter
 * round trips, LISTEN/NOTIFY, a backend killed by the server, reconnects,
 * bad conninfo, and callbacks that submit or free from inside.
 *
 * The database comes from VALET_TEST_DATABASE_URL (tests/pg_tmp.sh). Without
 * it the tests that need a server are skipped with a message; the value
 * helpers, parameter checks and the unreachable-server test still run. Each
 * run works in its own schema, pgconn_test_<pid>, so runs may overlap. Every
 * wait runs a real ev loop under a guard timer, so nothing hangs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"
#include <ev.h>
#include <libpq-fe.h>

#include "../../storage/pgconn.h"

enum { S_INS, S_SEL, S_COUNT, S_ECHO, S_NOTIFY, S_SLEEP, S_PID, S_LEN, S_INS_D, S_NSTMTS };

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

static void run_for(double seconds)
{
	int never = 0;

	wait_for(&never, 1, seconds);
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

/* ---- tests that need PostgreSQL ------------------------------------------- */

static void test_txn_rows(void **state)
{
	struct tconn t;
	struct rec r = {0};
	struct pg_batch *b;

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	b = batch(true, &r);
	add_ins(b, 1, "one");
	add_ins(b, 2, "two");
	add_call0(b, S_SEL);
	assert_int_equal(pg_batch_int(b, 1), 0);
	add_call0(b, S_COUNT);
	assert_int_equal(pg_batch_ncalls(b), 4);
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_int_equal(pgconn_pending(t.c), 1);
	assert_true(wait_for(&r.calls, 1, 10.));
	assert_int_equal(r.err, 0);
	assert_int_equal(pgconn_pending(t.c), 0);
	assert_int_equal(PQresultStatus(pg_batch_result(b, 0)), PGRES_COMMAND_OK);
	assert_string_equal(PQcmdTuples((PGresult *)pg_batch_result(b, 1)), "1");
	assert_string_equal(val(b, 2, 0), "1");
	assert_string_equal(val(b, 2, 1), "one");
	assert_string_equal(val(b, 3, 0), "2");
	assert_null(pg_batch_result(b, 4));
	assert_int_equal(admin_count("true"), 2);
	pg_batch_free(b);
	pgconn_free(t.c);
	assert_int_equal(t.downs, 0);
}

/* A failing call: -EIO naming the call, nothing of the batch committed, and
 * the batches sent right behind it (into the aborted transaction) still run
 * and complete in order. A plain batch's calls commit one by one. */
static void test_txn_error(void **state)
{
	struct tconn t;
	struct rec r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
	struct pg_batch *b1, *b2, *b3, *b4;

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	b1 = batch(true, &r1);
	add_ins(b1, 10, "x");
	add_ins(b1, 10, "dup");
	add_ins(b1, 11, "z");
	b2 = batch(true, &r2);
	add_ins(b2, 20, "after");
	b3 = batch(false, &r3);
	add_call0(b3, S_COUNT);
	b4 = batch(false, &r4);
	add_ins(b4, 30, "a");
	add_ins(b4, 30, "dup");
	add_ins(b4, 31, "b");
	assert_int_equal(pgconn_submit(t.c, b1), 0);
	assert_int_equal(pgconn_submit(t.c, b2), 0);
	assert_int_equal(pgconn_submit(t.c, b3), 0);
	assert_int_equal(pgconn_submit(t.c, b4), 0);
	assert_true(wait_for(&r4.calls, 1, 10.));
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r1.err, -EIO);
	assert_non_null(strstr(r1.msg, "call 1 (ins)"));
	assert_non_null(strstr(r1.msg, "duplicate key"));
	assert_non_null(strstr(r1.msg, "23505"));
	assert_int_equal(r2.err, 0);
	assert_int_equal(r3.err, 0);
	assert_string_equal(val(b3, 0, 0), "1");
	assert_int_equal(r4.err, -EIO);
	assert_non_null(strstr(r4.msg, "call 1 (ins)"));
	assert_true(r1.seq < r2.seq && r2.seq < r3.seq && r3.seq < r4.seq);
	assert_int_equal(admin_count("id IN (10, 11)"), 0);
	assert_int_equal(admin_count("id = 20"), 1);
	assert_int_equal(admin_count("id IN (30, 31)"), 2);
	assert_int_equal(t.downs, 0);
	pg_batch_free(b1);
	pg_batch_free(b2);
	pg_batch_free(b3);
	pg_batch_free(b4);
	pgconn_free(t.c);
}

/* A deferred constraint fails at the implicit commit (the Sync) of a plain
 * batch's call: blamed on that call, and the connection stays in step. */
static void test_commit_error(void **state)
{
	struct tconn t;
	struct rec r1 = {0}, r2 = {0};
	struct pg_batch *b1, *b2;

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	b1 = batch(false, &r1);
	add_ins(b1, 40, "parent");
	add_call0(b1, S_INS_D);
	assert_int_equal(pg_batch_int(b1, 999), 0);
	add_call0(b1, S_COUNT);
	b2 = batch(true, &r2);
	add_call0(b2, S_COUNT);
	assert_int_equal(pgconn_submit(t.c, b1), 0);
	assert_int_equal(pgconn_submit(t.c, b2), 0);
	assert_true(wait_for(&r2.calls, 1, 10.));
	assert_int_equal(r1.err, -EIO);
	assert_non_null(strstr(r1.msg, "call 1 (ins_d) at commit"));
	assert_int_equal(r2.err, 0);
	assert_string_equal(val(b2, 0, 0), "1");
	assert_string_equal(val(b1, 2, 0), "1"); /* call 2 still ran */
	pg_batch_free(b1);
	pg_batch_free(b2);
	pgconn_free(t.c);
}

static void test_before_up(void **state)
{
	struct tconn t;
	struct rec r = {0};
	struct pg_batch *b;

	need_db();
	truncate_tables();
	tconn_open(&t, db_url, NULL);
	b = batch(true, &r);
	add_ins(b, 5, "early");
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_false(pgconn_up(t.c));
	assert_int_equal(pgconn_pending(t.c), 1);
	assert_true(wait_for(&r.calls, 1, 10.));
	assert_int_equal(r.err, 0);
	assert_int_equal(t.ups, 1);
	assert_int_equal(admin_count("id = 5"), 1);
	pg_batch_free(b);
	pgconn_free(t.c);
}

static void test_inflight_order(void **state)
{
	enum { N = 30 };
	struct tconn t;
	struct rec r[N];
	struct pg_batch *b[N];

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	memset(r, 0, sizeof(r));
	for (int i = 0; i < N; i++) {
		b[i] = batch(i % 3 != 0, &r[i]);
		if (i == 0) {
			add_call0(b[i], S_SLEEP);
			assert_int_equal(pg_batch_text(b[i], "0.2"), 0);
		}
		add_ins(b[i], 100 + i, "n");
		add_call0(b[i], S_COUNT);
		assert_int_equal(pgconn_submit(t.c, b[i]), 0);
	}
	assert_int_equal(pgconn_pending(t.c), N);
	assert_true(wait_for(&r[N - 1].calls, 1, 10.));
	for (int i = 0; i < N; i++) {
		char want[16];

		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, 0);
		if (i)
			assert_true(r[i - 1].seq < r[i].seq);
		snprintf(want, sizeof(want), "%d", i + 1);
		assert_string_equal(val(b[i], i == 0 ? 2 : 1, 0), want);
		pg_batch_free(b[i]);
	}
	assert_int_equal(pgconn_pending(t.c), 0);
	pgconn_free(t.c);
}

static void test_param_roundtrip(void **state)
{
	static const uint8_t id[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				       0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
	const int64_t when = 1795759311123456; /* 2026-11-27T06:01:51.123456Z */
	enum { BIG = 200 };
	struct tconn t;
	struct rec r = {0};
	struct pg_batch *b;
	uint8_t back[16];
	char big[1500];

	need_db();
	tconn_up(&t, NULL);
	b = batch(false, &r);
	/* echo: $1 IS NULL, $2::bool, $3::bigint, $4::timestamptz, $5::uuid, $1 */
	add_call0(b, S_ECHO);
	assert_int_equal(pg_batch_null(b), 0);
	assert_int_equal(pg_batch_bool(b, true), 0);
	assert_int_equal(pg_batch_int(b, INT64_MIN), 0);
	assert_int_equal(pg_batch_time(b, when), 0);
	assert_int_equal(pg_batch_uuid(b, id), 0);
	add_call0(b, S_ECHO);
	assert_int_equal(pg_batch_textn(b, "it's \"quoted\" ünïcode and more",
					strlen("it's \"quoted\" ünïcode")),
			 0);
	assert_int_equal(pg_batch_bool(b, false), 0);
	assert_int_equal(pg_batch_int(b, INT64_MAX), 0);
	assert_int_equal(pg_batch_time(b, 0), 0); /* NULL */
	assert_int_equal(pg_batch_text(b, NULL), 0);
	/* Enough text to make the arena move many times. */
	for (int i = 0; i < BIG; i++) {
		memset(big, 'a' + i % 26, sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		big[i] = '#';
		add_call0(b, S_ECHO);
		assert_int_equal(pg_batch_text(b, big), 0);
		assert_int_equal(pg_batch_bool(b, i & 1), 0);
		assert_int_equal(pg_batch_int(b, i), 0);
		assert_int_equal(pg_batch_time(b, -1 - i), 0);
		assert_int_equal(pg_batch_null(b), 0);
	}
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_true(wait_for(&r.calls, 1, 10.));
	assert_int_equal(r.err, 0);
	assert_string_equal(val(b, 0, 0), "t");
	assert_string_equal(val(b, 0, 1), "t");
	assert_string_equal(val(b, 0, 2), "-9223372036854775808");
	assert_string_equal(val(b, 0, 3), "2026-11-27 06:01:51.123456+00");
	assert_true(pg_parse_time(val(b, 0, 3)) == when);
	assert_string_equal(val(b, 0, 4), "01234567-89ab-cdef-fedc-ba9876543210");
	assert_int_equal(pg_parse_uuid(val(b, 0, 4), back), 0);
	assert_memory_equal(back, id, 16);
	assert_string_equal(val(b, 1, 0), "f");
	assert_string_equal(val(b, 1, 5), "it's \"quoted\" ünïcode");
	assert_string_equal(val(b, 1, 1), "f");
	assert_string_equal(val(b, 1, 2), "9223372036854775807");
	assert_null(val(b, 1, 3));
	assert_null(val(b, 1, 4));
	for (int i = 0; i < BIG; i++) {
		memset(big, 'a' + i % 26, sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		big[i] = '#';
		assert_string_equal(val(b, 2 + i, 5), big);
		assert_string_equal(val(b, 2 + i, 1), i & 1 ? "t" : "f");
		assert_int_equal(atoi(val(b, 2 + i, 2)), i);
		assert_true(pg_parse_time(val(b, 2 + i, 3)) == -1 - i);
	}
	pg_batch_free(b);

	/* One parameter far larger than the socket buffer: the server answers
	 * only once it has all of it, so this needs the EV_WRITE flushing. */
	{
		enum { HUGE = 8 << 20 };
		struct rec rh = {0};
		char *huge = malloc(HUGE + 1);

		assert_non_null(huge);
		memset(huge, 'h', HUGE);
		huge[HUGE] = '\0';
		b = batch(false, &rh);
		add_call0(b, S_LEN);
		assert_int_equal(pg_batch_text(b, huge), 0);
		free(huge);
		assert_int_equal(pgconn_submit(t.c, b), 0);
		assert_true(wait_for(&rh.calls, 1, 20.));
		assert_int_equal(rh.err, 0);
		assert_int_equal(atol(val(b, 0, 0)), HUGE);
		pg_batch_free(b);
	}
	pgconn_free(t.c);
}

static void test_notify(void **state)
{
	struct tconn t;
	struct rec r1 = {0}, r2 = {0};
	struct pg_batch *b;
	char setup[128], channel[64];

	need_db();
	snprintf(channel, sizeof(channel), "pgconn_test_%d", (int)getpid());
	snprintf(setup, sizeof(setup), "LISTEN %s", channel);
	tconn_up(&t, setup);
	b = batch(false, &r1);
	add_call0(b, S_NOTIFY);
	assert_int_equal(pg_batch_text(b, channel), 0);
	assert_int_equal(pg_batch_text(b, "hello"), 0);
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_true(wait_for(&t.notifies, 1, 10.));
	assert_string_equal(t.channel, channel);
	assert_string_equal(t.payload, "hello");
	assert_true(wait_for(&r1.calls, 1, 10.));
	pg_batch_free(b);
	/* From another session too, while we are idle. */
	snprintf(setup, sizeof(setup), "NOTIFY %s, 'from admin'", channel);
	admin_exec(setup);
	assert_true(wait_for(&t.notifies, 2, 10.));
	assert_string_equal(t.payload, "from admin");
	/* Inside a transaction: delivered once it commits. */
	b = batch(true, &r2);
	add_call0(b, S_NOTIFY);
	assert_int_equal(pg_batch_text(b, channel), 0);
	assert_int_equal(pg_batch_text(b, "in txn"), 0);
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_true(wait_for(&t.notifies, 3, 10.));
	assert_string_equal(t.payload, "in txn");
	assert_true(wait_for(&r2.calls, 1, 10.));
	pg_batch_free(b);
	pgconn_free(t.c);
}

static void test_terminate(void **state)
{
	struct tconn t;
	struct rec rp = {0}, rs = {0}, rq = {0}, ra = {0};
	struct pg_batch *bp, *bs, *bq, *ba;
	char q[128], pid[32];

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	bp = batch(false, &rp);
	add_call0(bp, S_PID);
	assert_int_equal(pgconn_submit(t.c, bp), 0);
	assert_true(wait_for(&rp.calls, 1, 10.));
	snprintf(pid, sizeof(pid), "%s", val(bp, 0, 0));
	pg_batch_free(bp);

	bs = batch(true, &rs);
	add_ins(bs, 50, "maybe");
	add_call0(bs, S_SLEEP);
	assert_int_equal(pg_batch_text(bs, "30"), 0);
	assert_int_equal(pgconn_submit(t.c, bs), 0);
	run_for(0.3); /* sent and sleeping */
	assert_int_equal(rs.calls, 0);
	snprintf(q, sizeof(q), "SELECT pg_terminate_backend(%s)", pid);
	admin_exec(q);
	assert_true(wait_for(&rs.calls, 1, 10.));
	assert_int_equal(rs.err, -EPIPE);
	assert_int_equal(t.downs, 1);
	assert_false(pgconn_up(t.c));
	/* Submitted while down: waits, then runs after the reconnect. */
	bq = batch(true, &rq);
	add_ins(bq, 51, "later");
	assert_int_equal(pgconn_submit(t.c, bq), 0);
	assert_true(wait_for(&t.ups, 2, 10.));
	assert_true(wait_for(&rq.calls, 1, 10.));
	assert_int_equal(rq.err, 0);
	assert_int_equal(admin_count("id = 51"), 1);
	assert_int_equal(admin_count("id = 50"), 0);
	/* A new backend. */
	ba = batch(false, &ra);
	add_call0(ba, S_PID);
	assert_int_equal(pgconn_submit(t.c, ba), 0);
	assert_true(wait_for(&ra.calls, 1, 10.));
	assert_int_equal(ra.err, 0);
	assert_string_not_equal(val(ba, 0, 0), pid);
	pg_batch_free(bs);
	pg_batch_free(bq);
	pg_batch_free(ba);
	pgconn_free(t.c);
}

static void test_reset(void **state)
{
	struct tconn t;
	struct rec rs = {0}, rq = {0};
	struct pg_batch *bs, *bq;

	need_db();
	tconn_up(&t, NULL);
	bs = batch(false, &rs);
	add_call0(bs, S_SLEEP);
	assert_int_equal(pg_batch_text(bs, "30"), 0);
	assert_int_equal(pgconn_submit(t.c, bs), 0);
	run_for(0.1);
	pgconn_reset(t.c);
	assert_int_equal(rs.calls, 1);
	assert_int_equal(rs.err, -EPIPE);
	assert_int_equal(t.downs, 1);
	assert_non_null(strstr(t.reason, "reset"));
	bq = batch(false, &rq);
	add_call0(bq, S_COUNT);
	assert_int_equal(pgconn_submit(t.c, bq), 0);
	assert_true(wait_for(&rq.calls, 1, 10.));
	assert_int_equal(rq.err, 0);
	assert_int_equal(t.ups, 2);
	pg_batch_free(bs);
	pg_batch_free(bq);
	pgconn_free(t.c);
}

static void test_setup_failure(void **state)
{
	static const struct pg_stmt bad[] = {{"broken_stmt", "SELECT FROM nowhere_at_all", 0}};
	struct tconn t, u;

	need_db();
	tconn_open(&t, db_url, "SELECT no_such_function_pgconn()");
	assert_true(wait_for(&t.downs, 2, 10.)); /* and it keeps retrying */
	assert_int_equal(t.ups, 0);
	assert_non_null(strstr(t.reason, "no_such_function_pgconn"));
	pgconn_free(t.c);

	memset(&u, 0, sizeof(u));
	u.c = pgconn_new(loop, db_url, "test", bad, 1, &hooks, &u);
	assert_non_null(u.c);
	assert_true(wait_for(&u.downs, 1, 10.));
	assert_int_equal(u.ups, 0);
	assert_non_null(strstr(u.reason, "broken_stmt"));
	assert_non_null(strstr(u.reason, "nowhere_at_all"));
	pgconn_free(u.c);
}

/* done submits the next batch (a chain), and done frees the connection with
 * batches still queued: they are cancelled, and nothing is used after free
 * (ASan). */
static void test_reentrant(void **state)
{
	struct tconn t;
	struct rec chain = {0}, rf = {0}, rq[3];
	struct pg_batch *b, *bq[3];

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	chain.submit_to = &t;
	chain.chain = 5;
	b = batch(true, &chain);
	add_ins(b, 999, "first");
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_true(wait_for(&chain.calls, 6, 10.));
	assert_int_equal(chain.err, 0);
	assert_int_equal(admin_count("v = 'chained'"), 5);

	memset(rq, 0, sizeof(rq));
	rf.free_conn = t.c;
	b = batch(false, &rf);
	add_call0(b, S_COUNT);
	assert_int_equal(pgconn_submit(t.c, b), 0);
	for (int i = 0; i < 3; i++) {
		bq[i] = batch(false, &rq[i]);
		add_call0(bq[i], S_SLEEP);
		assert_int_equal(pg_batch_text(bq[i], "0.3"), 0);
		assert_int_equal(pgconn_submit(t.c, bq[i]), 0);
	}
	assert_true(wait_for(&rf.calls, 1, 10.));
	assert_int_equal(rf.err, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rq[i].calls, 1);
		assert_int_equal(rq[i].err, -ECANCELED);
		pg_batch_free(bq[i]);
	}
	pg_batch_free(b);
	run_for(0.05); /* the freed connection's watchers must be gone */
}

/* ---- tests that need no server -------------------------------------------- */

/* A closed port: each attempt fails and is reported, attempts repeat with
 * backoff, the loop keeps running, queued batches wait, and free cancels
 * them. */
static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(*(int *)w->data)++;
}

static void test_unreachable(void **state)
{
	struct tconn t;
	struct rec r = {0};
	struct pg_batch *b;
	int ticks = 0;
	ev_timer tick;

	tconn_open(&t, "host=127.0.0.1 port=1 dbname=x user=x", NULL);
	b = batch(true, &r);
	add_ins(b, 1, "never");
	assert_int_equal(pgconn_submit(t.c, b), 0);
	ev_timer_init(&tick, tick_cb, 0.01, 0.01);
	tick.data = &ticks;
	ev_timer_start(loop, &tick);
	run_for(1.0);
	ev_timer_stop(loop, &tick);
	assert_true(ticks >= 50);  /* the loop never stalled */
	assert_true(t.downs >= 3); /* attempts at ~0, 0.1, 0.3, 0.7 s */
	assert_true(t.downs <= 6);
	assert_int_equal(t.ups, 0);
	assert_false(pgconn_up(t.c));
	assert_non_null(strstr(t.reason, "refused"));
	assert_int_equal(r.calls, 0);
	assert_int_equal(pgconn_pending(t.c), 1);
	pgconn_free(t.c);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -ECANCELED);
	pg_batch_free(b);
}

static void test_bad_batches(void **state)
{
	struct tconn t;
	struct rec r = {0};
	struct pg_batch *b;

	tconn_open(&t, "host=127.0.0.1 port=1 dbname=x user=x", NULL);
	/* Empty. */
	b = batch(true, &r);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	/* Too few parameters. */
	add_call0(b, S_INS);
	assert_int_equal(pg_batch_int(b, 1), 0);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	/* Too many. */
	assert_int_equal(pg_batch_text(b, "x"), 0);
	assert_int_equal(pg_batch_text(b, "y"), 0);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	pg_batch_free(b);
	/* No such statement. */
	b = batch(true, &r);
	add_call0(b, S_NSTMTS);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	pg_batch_free(b);
	/* A parameter before any call, or text with a NUL: the batch is broken. */
	b = batch(true, &r);
	assert_int_equal(pg_batch_text(b, "x"), -EINVAL);
	assert_true(pg_batch_call(b, S_SEL) < 0);
	assert_true(pg_batch_int(b, 1) < 0);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	pg_batch_free(b);
	b = batch(true, &r);
	add_call0(b, S_SEL);
	assert_int_equal(pg_batch_textn(b, "a\0b", 3), -EINVAL);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	pg_batch_free(b);
	/* No callback. */
	b = pg_batch_new(true, NULL, NULL);
	add_call0(b, S_COUNT);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	pg_batch_free(b);
	/* A good one is accepted, and refused while it is queued. */
	b = batch(true, &r);
	add_call0(b, S_COUNT);
	assert_int_equal(pgconn_submit(t.c, b), 0);
	assert_int_equal(pgconn_submit(t.c, b), -EINVAL);
	assert_int_equal(pgconn_pending(t.c), 1);
	assert_int_equal(r.calls, 0);
	pgconn_free(t.c);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -ECANCELED);
	pg_batch_free(b);
	pg_batch_free(NULL);
	pgconn_free(NULL);
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = s};

	return (int64_t)timegm(&tm) * 1000000;
}

static void test_parse(void **state)
{
	static const uint8_t want[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
					 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
	uint8_t id[16], same[16];
	int64_t base = utc(2026, 11, 27, 6, 1, 51);

	assert_true(pg_parse_time("2026-11-27 06:01:51.123456+00") == base + 123456);
	assert_true(pg_parse_time("2026-11-27 06:01:51+00") == base);
	assert_true(pg_parse_time("2026-11-27 06:01:51.5+00") == base + 500000);
	assert_true(pg_parse_time("2026-11-27 06:01:51.123+00") == base + 123000);
	assert_true(pg_parse_time("2026-11-27 06:01:51.1234567+00") == base + 123456);
	assert_true(pg_parse_time("2026-11-27T06:01:51.123456Z") == base + 123456);
	assert_true(pg_parse_time("2026-11-27 11:31:51+05:30") == base);
	assert_true(pg_parse_time("2026-11-26 22:01:51-08") == base);
	assert_true(pg_parse_time("2000-02-29 12:00:00+00") == utc(2000, 2, 29, 12, 0, 0));
	assert_true(pg_parse_time("1969-12-31 23:59:59.999999+00") == -1);
	assert_true(pg_parse_time("1900-03-01 00:00:00+00") == utc(1900, 3, 1, 0, 0, 0));
	assert_true(pg_parse_time("2400-12-31 23:59:59+00") == utc(2400, 12, 31, 23, 59, 59));
	assert_true(pg_parse_time("infinity") == INT64_MAX);
	assert_true(pg_parse_time("-infinity") == INT64_MIN);
	assert_true(pg_parse_time(NULL) == 0);
	assert_true(pg_parse_time("") == 0);
	assert_true(pg_parse_time("yesterday") == 0);
	assert_true(pg_parse_time("2026-11-27") == 0);
	assert_true(pg_parse_time("2026-13-27 06:01:51+00") == 0);
	assert_true(pg_parse_time("2026-11-27 06:01:51.+00") == 0);
	assert_true(pg_parse_time("2026-11-27 06:01:51+00 junk") == 0);

	assert_int_equal(pg_parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", id), 0);
	assert_memory_equal(id, want, 16);
	assert_int_equal(pg_parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", id), 0);
	assert_memory_equal(id, want, 16);
	memcpy(same, id, 16);
	assert_int_equal(pg_parse_uuid(NULL, id), -EINVAL);
	assert_int_equal(pg_parse_uuid("", id), -EINVAL);
	assert_int_equal(pg_parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", id), -EINVAL);
	assert_int_equal(pg_parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", id), -EINVAL);
	assert_int_equal(pg_parse_uuid("a0eebc999c0b-4ef8-bb6d-6bb9bd380a11ab", id), -EINVAL);
	assert_int_equal(pg_parse_uuid("00000000-0000-0000-0000-00000000000g", id), -EINVAL);
	assert_int_equal(pg_parse_uuid("zzeebc99-9c0b-4ef8-bb6d-6bb9bd380a11", id), -EINVAL);
	assert_memory_equal(id, same, 16); /* untouched on error */
}

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
	snprintf(schema, sizeof(schema), "pgconn_test_%d", (int)getpid());
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
	db_url = getenv("VALET_TEST_DATABASE_URL");
	if (db_url && !*db_url)
		db_url = NULL;
	if (!db_url) {
		fprintf(stderr, "test_pgconn: VALET_TEST_DATABASE_URL is not set: the tests that "
				"need PostgreSQL are skipped\n");
		return 0;
	}
	admin = PQconnectdb(db_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "test_pgconn: %s", PQerrorMessage(admin));
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),	    cmocka_unit_test(test_bad_batches),
	    cmocka_unit_test(test_unreachable),	    cmocka_unit_test(test_txn_rows),
	    cmocka_unit_test(test_txn_error),	    cmocka_unit_test(test_commit_error),
	    cmocka_unit_test(test_before_up),	    cmocka_unit_test(test_inflight_order),
	    cmocka_unit_test(test_param_roundtrip), cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_terminate),	    cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_setup_failure),   cmocka_unit_test(test_reentrant),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
