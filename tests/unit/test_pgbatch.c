/*
 * test_pgbatch.c - batches (storage/pgbatch.c) on storage/pgconn.c's wire,
 * against a real PostgreSQL: a txn batch of several calls is one
 * transaction (BEGIN .. COMMIT) and one of one call its own implicit one;
 * errors (a failed transaction leaves nothing behind and does not poison
 * the batches sent after it; a deferred constraint is blamed on its call at
 * the commit), parameter round trips, batches the connection refuses, and
 * the value parsers.
 *
 * The harness is pgconn_fixture.h; this binary's schema is
 * pgbatch_test_<pid>.
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

#define FIXTURE_NAME "pgbatch"
#include "pgconn_fixture.h"

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
	assert_string_equal(pg_batch_sqlstate(b1), "23505");
	assert_false(pg_sqlstate_transient(pg_batch_sqlstate(b1)));
	assert_int_equal(r2.err, 0);
	assert_string_equal(pg_batch_sqlstate(b2), "");
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

/* A txn batch of one call goes without BEGIN and COMMIT: its transaction
 * is the implicit one its Sync commits, not a transaction block (where
 * SAVEPOINT is refused); with two calls BEGIN comes first. Still one
 * transaction: a deferred constraint that fails at that commit fails the
 * batch (blamed on the call), leaves nothing, and the batch behind it runs. */
static void test_txn_one_call(void **state)
{
	struct tconn t;
	struct rec r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
	struct pg_batch *b1, *b2, *b3, *b4;
	PGresult *res;
	char q[128];

	need_db();
	truncate_tables();
	tconn_up(&t, NULL);
	b1 = batch(true, &r1);
	add_call0(b1, S_SAVEPOINT);
	b2 = batch(true, &r2);
	add_call0(b2, S_SAVEPOINT);
	add_call0(b2, S_COUNT);
	b3 = batch(true, &r3);
	add_call0(b3, S_INS_D);
	assert_int_equal(pg_batch_int(b3, 999), 0);
	b4 = batch(true, &r4);
	add_ins(b4, 50, "behind");
	assert_int_equal(pgconn_submit(t.c, b1), 0);
	assert_int_equal(pgconn_submit(t.c, b2), 0);
	assert_int_equal(pgconn_submit(t.c, b3), 0);
	assert_int_equal(pgconn_submit(t.c, b4), 0);
	assert_true(wait_for(&r4.calls, 1, 10.));
	assert_int_equal(r1.err, -EIO);
	assert_non_null(strstr(r1.msg, "call 0 (savepoint)"));
	assert_non_null(strstr(r1.msg, "transaction blocks"));
	assert_int_equal(r2.err, 0);
	assert_string_equal(val(b2, 1, 0), "0");
	assert_int_equal(r3.err, -EIO);
	assert_non_null(strstr(r3.msg, "call 0 (ins_d) at commit"));
	assert_int_equal(r4.err, 0);
	assert_int_equal(admin_count("id = 50"), 1);
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s.d", schema);
	res = PQexec(admin, q);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(res, 0, 0), "0");
	PQclear(res);
	pg_batch_free(b1);
	pg_batch_free(b2);
	pg_batch_free(b3);
	pg_batch_free(b4);
	pgconn_free(t.c);
	assert_int_equal(t.downs, 0);
}

/* ---- tests that need no server -------------------------------------------- */

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

/* Which SQLSTATEs say "not now" (the write is kept and sent again) and
 * which "not this" (the write is refused for good). */
static void test_sqlstate_classes(void **state)
{
	static const char *const transient[] = {
	    "08006", "08P01", "25006" /* read-only */, "25P02", "40001", "40P01",
	    "53100" /* disk full */, "53200", "53300", "57014" /* statement timeout */,
	    "57P01", "57P02", "57P03", "58030", "55P03" /* lock_timeout */};
	static const char *const permanent[] = {
	    "22001", "22P02", "22023", "23505", "23503", "42P01", "42703", "P0001",
	    "55006", "XX000", "", "2", "250060"};

	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (!pg_sqlstate_transient(transient[i]))
			fail_msg("%s should be transient", transient[i]);
	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		if (pg_sqlstate_transient(permanent[i]))
			fail_msg("%s should not be transient", permanent[i]);
	assert_false(pg_sqlstate_transient(NULL));
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sqlstate_classes),
	    cmocka_unit_test(test_parse),	    cmocka_unit_test(test_bad_batches),
	    cmocka_unit_test(test_txn_rows),	    cmocka_unit_test(test_txn_error),
	    cmocka_unit_test(test_commit_error),    cmocka_unit_test(test_txn_one_call),
	    cmocka_unit_test(test_param_roundtrip),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
