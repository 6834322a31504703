/*
 * pg_keys.c - API keys in PostgreSQL (the api_keys table, migration 007),
 * so that every node of a cluster sees the same keys: the store's
 * watch_keys (a running valetd) and the key book of `valetd key`.
 *
 * Theory of operation. The table holds what a keys file line holds, a
 * column a field, and both sides speak in such lines, so the API parses a
 * table and a file with the same code (api/auth.c); a row is never a line
 * with white space inside a field (the table's checks, and a row that has
 * some anyway is left out here, so it cannot pass for another key).
 *
 * The command (the key book) works on a blocking connection of its own:
 * it applies the migrations as valetd does (so keys can be made before
 * the first start), then creates or revokes in one transaction that ends
 * with pg_notify('<schema>_keys', NAME) - PostgreSQL delivers it at the
 * commit, and only if it commits. Revoking sets revoked_at; the row stays,
 * so a name is never used twice (the work a key submitted stays its own).
 *
 * A running valetd reads the live keys on its reader connection: when the
 * reader comes up, at once when a NOTIFY on the writer (which LISTENs on
 * the schema's channels) says the table changed, and every
 * PG_KEYS_POLL_MS as the backstop (a NOTIFY is lost while a connection is
 * down, and a hand edit in psql sends none). A read hands the API the
 * lines only when they differ from the last ones handed over (so a key's
 * submit rate is not reset every second), so a change is seen on every
 * node within STORE_KEYS_BOUND_S (a poll and a round trip) even without a
 * NOTIFY. A read that fails, a reader that is down at a poll (after the
 * first read, or 5 s after the watch began: not while the store starts),
 * or a read unanswered for 5 s is reported once (the API keeps the keys it
 * has, never opens); the next read that works is handed over whatever it
 * holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supervisor/keybook.h"
#include "../supervisor/log.h"
#include "pg_internal.h"
#include "pg_schema.h"
#include "pg_sql.h"
#include "postgres.h"

#define PG_KEYS_POLL_MS 1000
#define PG_KEYS_STALE_NS 5000000000LL
#define PG_KEYS_WHERE "the database's api_keys table"

_Static_assert(PG_KEYS_POLL_MS + 1000 <= STORE_KEYS_BOUND_S * 1000,
	       "the bound: a re-read and a round trip");

/* A field of a keys file line: no white space. */
static bool keys_field_ok(const char *s)
{
	return s[0] && !strpbrk(s, " \t\r\n\v\f");
}

/* The rows of PG_SQL_KEYS as keys file lines: *text new. *skipped: rows
 * left out (white space inside a field; policy words are one space apart).
 * 0 or -ENOMEM. */
static int keys_lines(const PGresult *res, char **text, int *skipped)
{
	size_t len = 0;
	FILE *f = open_memstream(text, &len);

	*skipped = 0;
	if (!f)
		return -ENOMEM;
	for (int r = 0; r < PQntuples(res); r++) {
		const char *v[5];
		bool ok = true;

		for (int c = 0; c < 5; c++)
			v[c] = PQgetvalue(res, r, c);
		for (int c = 0; c < 4; c++)
			ok = ok && keys_field_ok(v[c]);
		if (!ok || strpbrk(v[4], "\t\r\n\v\f")) {
			(*skipped)++;
			continue;
		}
		fprintf(f, "%s %s %s %s%s%s\n", v[0], v[1], v[2], v[3], v[4][0] ? " " : "", v[4]);
	}
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- a running valetd: the watch ------------------------------------------------- */

static void keys_read(struct pg_store *ps);

/* A read failed: tell the API once, until one works again. */
static void keys_failed(struct pg_store *ps, const char *why)
{
	if (ps->keys_failed || !ps->keys_cb)
		return;
	ps->keys_failed = true;
	ps->keys_cb(ps->keys_arg, NULL, why);
}

static void keys_deliver(struct pg_store *ps, const PGresult *res)
{
	char *text = NULL, n[16];
	int skipped;

	if (keys_lines(res, &text, &skipped) < 0) {
		keys_failed(ps, "out of memory");
		return;
	}
	if (ps->keys_text && !strcmp(ps->keys_text, text) && !ps->keys_failed) {
		free(text);
		return;
	}
	free(ps->keys_text);
	ps->keys_text = text;
	ps->keys_failed = false;
	if (skipped) {
		snprintf(n, sizeof(n), "%d", skipped);
		log_warn("API keys with white space inside a field left out", "table", "api_keys",
			 "rows", n);
	}
	ps->keys_cb(ps->keys_arg, text, NULL);
}

static void keys_done(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_store *ps = arg;

	ps->keys_reading = false;
	if (err != -ECANCELED && ps->keys_cb) {
		if (err)
			keys_failed(ps, msg ? msg : "the connection to the database broke");
		else
			keys_deliver(ps, pg_batch_result(b, 0));
	}
	pg_batch_free(b);
	if (err != -ECANCELED && ps->keys_again) {
		ps->keys_again = false;
		keys_read(ps);
	}
}

static void keys_read(struct pg_store *ps)
{
	struct pg_batch *b;

	if (!ps->keys_cb)
		return;
	if (ps->keys_reading) {
		ps->keys_again = true; /* what the read in flight saw may be older */
		return;
	}
	if (!ps->reader || !pgconn_up(ps->reader)) {
		/* Not while the store starts: its reader comes up after the
		 * node registers (and a first read is what says "failed"). */
		if (ps->keys_text || job_mono_ns() - ps->keys_since_ns > PG_KEYS_STALE_NS)
			keys_failed(ps, "no connection to the database");
		return;
	}
	b = pg_batch_new(false, keys_done, ps);
	if (!b || pg_batch_call(b, PGS_KEYS) < 0 || pgconn_submit(ps->reader, b) < 0) {
		pg_batch_free(b);
		keys_failed(ps, "out of memory");
		return;
	}
	ps->keys_reading = true;
	ps->keys_read_ns = job_mono_ns();
}

static void on_keys_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;

	if (ps->keys_reading) {
		if (job_mono_ns() - ps->keys_read_ns > PG_KEYS_STALE_NS)
			keys_failed(ps, "the database has not answered a read of the keys for 5s");
		return;
	}
	keys_read(ps);
}

void pgk_changed(struct pg_store *ps)
{
	if (ps->keys_cb && ps->reader && pgconn_up(ps->reader))
		keys_read(ps);
}

int pgk_watch(struct store *st, store_keys_fn cb, void *arg)
{
	struct pg_store *ps = pg_of(st);

	ps->keys_cb = cb;
	ps->keys_arg = arg;
	if (!cb) {
		ev_timer_stop(ps->loop, &ps->keys_w);
		return 0;
	}
	ps->keys_since_ns = job_mono_ns();
	ev_timer_stop(ps->loop, &ps->keys_w); /* watched again: start afresh */
	ev_timer_init(&ps->keys_w, on_keys_poll, PG_KEYS_POLL_MS / 1000., PG_KEYS_POLL_MS / 1000.);
	ps->keys_w.data = ps;
	ev_timer_start(ps->loop, &ps->keys_w);
	/* Before the reader is up, its state hook reads (pgk_changed). */
	pgk_changed(ps);
	return 0;
}

void pgk_stop(struct pg_store *ps)
{
	if (ps->keys_cb)
		ev_timer_stop(ps->loop, &ps->keys_w);
	ps->keys_cb = NULL;
	free(ps->keys_text);
	ps->keys_text = NULL;
}

/* ---- `valetd key`: the key book ---------------------------------------------------- */

struct pg_key_book {
	struct key_book base; /* first */
	PGconn *conn;
	char *schema;
	char chan[96];
};

static void book_quiet(void *arg, const PGresult *res)
{
	(void)arg;
	(void)res; /* "applied migration ..." notices: valetd logs those */
}

/* Run sql (@SCHEMA@ replaced) with params; *out the result when it
 * returns rows or a count (else cleared). 0, or -EIO with err. */
static int book_exec(struct pg_key_book *kb, const char *sql, int n, const char *const *params,
		     PGresult **out, char *err, size_t errlen)
{
	char *text = pg_schema_subst(sql, kb->schema);
	PGresult *res;
	int st;

	if (out)
		*out = NULL;
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	res = PQexecParams(kb->conn, text, n, NULL, params, NULL, NULL, 0);
	free(text);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "PostgreSQL: %s", PQerrorMessage(kb->conn));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -EIO;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return 0;
}

static int book_list(struct key_book *b, char **text, char *err, size_t errlen)
{
	struct pg_key_book *kb = (struct pg_key_book *)b;
	PGresult *res;
	int skipped, rc = book_exec(kb, PG_SQL_KEYS, 0, NULL, &res, err, errlen);

	if (rc < 0)
		return rc;
	rc = keys_lines(res, text, &skipped);
	PQclear(res);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	else if (skipped)
		fprintf(stderr,
			"valetd key: %d row(s) of %s with white space inside a field "
			"left out\n",
			skipped, PG_KEYS_WHERE);
	return rc;
}

/* Why name cannot be made or revoked: it is taken by a live key, or by one
 * revoked at ... . -EEXIST (make) or -ENOENT (revoke), with err. */
static int book_taken(struct pg_key_book *kb, const char *name, bool make, char *err, size_t errlen)
{
	const char *p[] = {name};
	PGresult *res;
	int rc =
	    book_exec(kb,
		      "SELECT to_char(revoked_at AT TIME ZONE 'UTC', "
		      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM @SCHEMA@.api_keys WHERE name = $1",
		      1, p, &res, err, errlen);

	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0)
		snprintf(err, errlen, "%s: no key named \"%s\"", PG_KEYS_WHERE, name);
	else if (PQgetisnull(res, 0, 0))
		snprintf(err, errlen, "%s: a key named \"%s\" exists", PG_KEYS_WHERE, name);
	else
		snprintf(err, errlen, "%s: the key \"%s\" was revoked at %s%s", PG_KEYS_WHERE, name,
			 PQgetvalue(res, 0, 0),
			 make ? "; a revoked key's name is not used again (the work it "
				"submitted is still its own)"
			      : "");
	PQclear(res);
	return make ? -EEXIST : -ENOENT;
}

/* BEGIN; sql (changes a row of name, or none); NOTIFY; COMMIT. */
static int book_change(struct pg_key_book *kb, const char *sql, int n, const char *const *params,
		       bool make, char *err, size_t errlen)
{
	const char *notify[] = {kb->chan, params[0]};
	PGresult *res;
	int rc = book_exec(kb, "BEGIN", 0, NULL, NULL, err, errlen);

	if (rc < 0)
		return rc;
	if ((rc = book_exec(kb, sql, n, params, &res, err, errlen)) < 0)
		goto fail;
	if (!strcmp(PQcmdTuples(res), "0")) {
		PQclear(res);
		rc = book_taken(kb, params[0], make, err, errlen);
		goto fail;
	}
	PQclear(res);
	if ((rc = book_exec(kb, "SELECT pg_notify($1, $2)", 2, notify, NULL, err, errlen)) < 0 ||
	    (rc = book_exec(kb, "COMMIT", 0, NULL, NULL, err, errlen)) < 0)
		goto fail;
	return 0;
fail:
	PQclear(PQexec(kb->conn, "ROLLBACK"));
	return rc;
}

static int book_add(struct key_book *b, const struct key_row *row, char *err, size_t errlen)
{
	const char *p[] = {row->name, row->scopes, row->sha256_hex, row->policy};

	return book_change((struct pg_key_book *)b,
			   "INSERT INTO @SCHEMA@.api_keys (name, scopes, token_sha256, policy) "
			   "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
			   4, p, true, err, errlen);
}

static int book_revoke(struct key_book *b, const char *name, char *err, size_t errlen)
{
	const char *p[] = {name};

	return book_change((struct pg_key_book *)b,
			   "UPDATE @SCHEMA@.api_keys SET revoked_at = now() "
			   "WHERE name = $1 AND revoked_at IS NULL",
			   1, p, false, err, errlen);
}

static void book_free(struct key_book *b)
{
	struct pg_key_book *kb = (struct pg_key_book *)b;

	if (!kb)
		return;
	PQfinish(kb->conn);
	free(kb->schema);
	free(kb);
}

static const struct key_book_ops pg_book_ops = {
    .list = book_list,
    .add = book_add,
    .revoke = book_revoke,
    .free = book_free,
};

struct key_book *store_pg_key_book(const char *url, const char *schema, char *err, size_t errlen)
{
	struct pg_key_book *kb = calloc(1, sizeof(*kb));
	char *setup = NULL;
	PGresult *res;

	if (!kb || !(kb->schema = strdup(schema)) || !(setup = pg_schema_setup_sql(schema, NULL))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	kb->base.ops = &pg_book_ops;
	kb->base.where = PG_KEYS_WHERE;
	pg_schema_channel(schema, "keys", kb->chan, sizeof(kb->chan));
	kb->conn = PQconnectdb(url);
	if (PQstatus(kb->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(kb->conn));
		goto fail;
	}
	PQsetNoticeReceiver(kb->conn, book_quiet, NULL);
	/* The schema and its migrations, as valetd makes them at its start. */
	res = PQexec(kb->conn, setup);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "cannot set up the schema \"%s\": %s", schema,
			 PQerrorMessage(kb->conn));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	free(setup);
	return &kb->base;
fail:
	err[strcspn(err, "\n")] = '\0';
	free(setup);
	book_free(kb ? &kb->base : NULL);
	return NULL;
}
