/*
 * test_pg_keys.c - API keys in PostgreSQL (storage/pg_keys.c), against a
 * real server: the key book of `valetd key` (a row made, listed as a keys
 * file line, revoked; a taken name, live or revoked, refused; nothing but
 * the hash stored) and the store's watch (the live keys handed over once
 * read, again after a change - at once on the NOTIFY of the book's
 * transaction, within the re-read for a change made by hand -, never when
 * nothing changed; a row with white space inside a field left out; a read
 * the database does not answer reported once, and the keys handed over
 * again once it does).
 *
 * White box: it reads struct pg_store (storage/pg_internal.h). It needs
 * VALET_TEST_DATABASE_URL (tests/pg_tmp.sh) and works in its own schema,
 * pgkeys_test_<pid>, dropped at the end. Every wait runs the real ev loop
 * under a guard timer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"
#include <ev.h>
#include <libpq-fe.h>

#include "../../storage/pg_internal.h"
#include "../../storage/postgres.h"
#include "../../supervisor/keybook.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static const char *db_url;
static char schema[64];
static struct ev_loop *loop;
static PGconn *admin;

/* What the watch handed over. */
static struct {
	int deliveries, failures;
	char *lines;
	char error[256];
} seen;

static void on_keys(void *arg, const char *lines, const char *error)
{
	if (!lines) {
		seen.failures++;
		snprintf(seen.error, sizeof(seen.error), "%s", error);
		return;
	}
	seen.deliveries++;
	free(seen.lines);
	seen.lines = strdup(lines);
}

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
}

/* Run the loop until done(arg) or timeout seconds pass. */
static bool wait_until(bool (*done)(void *arg), void *arg, double timeout)
{
	bool expired = false;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, timeout, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (!done(arg) && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return done(arg);
}

static bool never(void *arg)
{
	return false;
}

static bool deliveries_reach(void *n)
{
	return seen.deliveries >= *(int *)n;
}

static bool failures_reach(void *n)
{
	return seen.failures >= *(int *)n;
}

static void admin_exec(const char *sql)
{
	PGresult *res = PQexec(admin, sql);
	int st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(admin));
	PQclear(res);
}

static struct key_book *new_book(void)
{
	char err[512] = "";
	struct key_book *kb = store_pg_key_book(db_url, schema, err, sizeof(err));

	if (!kb)
		fail_msg("store_pg_key_book: %s", err);
	return kb;
}

static void test_book(void **state)
{
	const struct key_row a = {"alpha", "submit,read", HASH_A, "max_timeout=30s"};
	const struct key_row again = {"alpha", "read", HASH_B, ""};
	struct key_book *kb;
	char err[512], *text = NULL, q[256];
	PGresult *res;

	if (!db_url)
		SKIP_NEEDS("PostgreSQL: VALET_TEST_DATABASE_URL is not set");
	kb = new_book(); /* makes the schema, as valetd would */
	assert_int_equal(kb->ops->list(kb, &text, err, sizeof(err)), 0);
	assert_string_equal(text, "");
	free(text);
	assert_int_equal(kb->ops->add(kb, &a, err, sizeof(err)), 0);
	assert_int_equal(kb->ops->add(kb, &again, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "a key named \"alpha\" exists"));
	assert_int_equal(kb->ops->list(kb, &text, err, sizeof(err)), 0);
	/* NAME SCOPES SHA256 CREATED POLICY: the keys file's line. */
	assert_int_equal(strncmp(text, "alpha submit,read " HASH_A " 20", 85), 0);
	assert_non_null(strstr(text, "Z max_timeout=30s\n"));
	free(text);
	snprintf(q, sizeof(q), "SELECT token_sha256 FROM %s.api_keys", schema);
	res = PQexec(admin, q);
	assert_int_equal(PQntuples(res), 1);
	assert_string_equal(PQgetvalue(res, 0, 0), HASH_A);
	PQclear(res);
	assert_int_equal(kb->ops->revoke(kb, "alpha", err, sizeof(err)), 0);
	assert_int_equal(kb->ops->revoke(kb, "alpha", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "was revoked at"));
	assert_int_equal(kb->ops->revoke(kb, "nobody", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no key named \"nobody\""));
	/* A revoked key's name is not used again. */
	assert_int_equal(kb->ops->add(kb, &again, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "not used again"));
	assert_int_equal(kb->ops->list(kb, &text, err, sizeof(err)), 0);
	assert_string_equal(text, "");
	free(text);
	kb->ops->free(kb);
}

static void test_watch(void **state)
{
	const struct key_row b = {"bravo", "read", HASH_B, ""};
	const struct pg_options o = {.url = db_url,
				     .schema = schema,
				     .node_id = "keys-unit",
				     .lease_ms = 30000,
				     .retry_backoff_ms = 1000,
				     .retry_backoff_max_ms = 60000};
	struct key_book *kb;
	struct store *st;
	struct pg_store *ps;
	char err[512] = "", q[512];
	int n;

	if (!db_url)
		SKIP_NEEDS("PostgreSQL: VALET_TEST_DATABASE_URL is not set");
	kb = new_book();
	st = store_postgres_new(loop, &o, err, sizeof(err));
	assert_non_null(st);
	ps = pg_of(st);
	assert_int_equal(st->ops->watch_keys(st, on_keys, NULL), 0);
	n = 1;
	assert_true(wait_until(deliveries_reach, &n, 5.));
	assert_string_equal(seen.lines, "");
	/* Made by the command: the NOTIFY brings it (the re-read is stopped
	 * here, so nothing else could). */
	ev_timer_stop(loop, &ps->keys_w);
	assert_int_equal(kb->ops->add(kb, &b, err, sizeof(err)), 0);
	n = 2;
	assert_true(wait_until(deliveries_reach, &n, 2.));
	ev_timer_start(loop, &ps->keys_w);
	assert_int_equal(strncmp(seen.lines, "bravo read " HASH_B " ", 76), 0);
	/* Nothing changes: the re-reads hand nothing over. */
	wait_until(never, NULL, 2.5);
	assert_int_equal(seen.deliveries, 2);
	/* By hand, no NOTIFY: the re-read finds it; a row with white space
	 * inside a field (its check dropped) is left out. */
	snprintf(q, sizeof(q),
		 "ALTER TABLE %s.api_keys DROP CONSTRAINT api_keys_name_check; "
		 "INSERT INTO %s.api_keys (name, scopes, token_sha256) VALUES "
		 "('x admin', 'read', '" HASH_A "'), ('charlie', 'read', '" HASH_A "')",
		 schema, schema);
	admin_exec(q);
	n = 3;
	assert_true(wait_until(deliveries_reach, &n, 2.));
	assert_non_null(strstr(seen.lines, "charlie read"));
	assert_null(strstr(seen.lines, "admin"));
	ev_timer_stop(loop, &ps->keys_w);
	assert_int_equal(kb->ops->revoke(kb, "bravo", err, sizeof(err)), 0);
	n = 4;
	assert_true(wait_until(deliveries_reach, &n, 2.));
	ev_timer_start(loop, &ps->keys_w);
	assert_null(strstr(seen.lines, "bravo"));
	/* A read the database does not answer (the table locked): reported
	 * once; once it answers, the keys are handed over again. */
	snprintf(q, sizeof(q), "BEGIN; LOCK TABLE %s.api_keys IN ACCESS EXCLUSIVE MODE", schema);
	admin_exec(q);
	n = 1;
	assert_true(wait_until(failures_reach, &n, 8.));
	if (!strstr(seen.error, "has not answered"))
		fail_msg("failure: %s", seen.error);
	wait_until(never, NULL, 1.5);
	assert_int_equal(seen.failures, 1);
	admin_exec("COMMIT");
	n = 5;
	assert_true(wait_until(deliveries_reach, &n, 3.));
	assert_non_null(strstr(seen.lines, "charlie read"));
	assert_int_equal(seen.failures, 1);
	st->ops->watch_keys(st, NULL, NULL);
	store_free(st);
	kb->ops->free(kb);
	free(seen.lines);
	seen.lines = NULL;
}

static int group_setup(void **state)
{
	char q[256];

	snprintf(schema, sizeof(schema), "pgkeys_test_%d", (int)getpid());
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		return -1;
	db_url = getenv("VALET_TEST_DATABASE_URL");
	if (db_url && !db_url[0])
		db_url = NULL;
	if (!db_url)
		return 0;
	admin = PQconnectdb(db_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "test_pg_keys: %s", PQerrorMessage(admin));
		return -1;
	}
	PQclear(PQexec(admin, "SET client_min_messages = warning"));
	snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	PQclear(PQexec(admin, q));
	return 0;
}

static int group_teardown(void **state)
{
	char q[128];

	if (admin) {
		PQclear(PQexec(admin, "ROLLBACK"));
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
	    cmocka_unit_test(test_book),
	    cmocka_unit_test(test_watch),
	};
	const char *filter = getenv("VALET_TEST_FILTER");

	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
