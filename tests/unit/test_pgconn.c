/*
 * test_pgconn.c - storage/pgconn.c's connection against a real PostgreSQL:
 * connect and setup, batches queued before the connection is up, order of
 * completion with many batches in flight, LISTEN/NOTIFY, a backend killed
 * by the server, reset, a setup that fails, reconnects to a server that is
 * not there, and callbacks that submit or free from inside. What a batch
 * puts on the wire and gets back is test_pgbatch.c's.
 *
 * The harness is pgconn_fixture.h; this binary's schema is
 * pgconn_test_<pid>.
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

#define FIXTURE_NAME "pgconn"
#include "pgconn_fixture.h"

/* Run the loop for a while (what must not happen in that time). */
static void run_for(double seconds)
{
	int never = 0;

	wait_for(&never, 1, seconds);
}

/* ---- tests that need PostgreSQL ------------------------------------------- */

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

/* TCP keepalives and tcp_user_timeout are set for every connection (a
 * black-holed server is found in about 30 s), but what the URL sets
 * itself wins. */
static void test_tcp_settings(void **state)
{
	struct tconn t;
	char url[1024], buf[64];

	need_db();
	tconn_up(&t, NULL);
	assert_string_equal(pgconn_option(t.c, "keepalives", buf, sizeof(buf)), "1");
	assert_string_equal(pgconn_option(t.c, "keepalives_idle", buf, sizeof(buf)), "10");
	assert_string_equal(pgconn_option(t.c, "keepalives_count", buf, sizeof(buf)), "4");
	assert_string_equal(pgconn_option(t.c, "tcp_user_timeout", buf, sizeof(buf)), "30000");
	pgconn_free(t.c);

	snprintf(url, sizeof(url), "%s%skeepalives_idle=61&tcp_user_timeout=7000", db_url,
		 strchr(db_url, '?') ? "&" : "?");
	tconn_open(&t, url, NULL);
	assert_true(wait_for(&t.ups, 1, 10.));
	assert_string_equal(pgconn_option(t.c, "keepalives_idle", buf, sizeof(buf)), "61");
	assert_string_equal(pgconn_option(t.c, "tcp_user_timeout", buf, sizeof(buf)), "7000");
	assert_string_equal(pgconn_option(t.c, "keepalives_interval", buf, sizeof(buf)), "5");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unreachable),	   cmocka_unit_test(test_before_up),
	    cmocka_unit_test(test_inflight_order), cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_terminate),	   cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_setup_failure),  cmocka_unit_test(test_reentrant),
	    cmocka_unit_test(test_tcp_settings),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
