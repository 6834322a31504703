/*
 * pg_schema.c - the setup script of the PostgreSQL writer connection.
 *
 * Theory of operation. The migrations are the files in storage/migrations,
 * compiled in by the Makefile (build/gen/pg_migrations.c) in file-name
 * order; migration i (from 0) is version i + 1. At every connect the writer
 * runs one simple-protocol script, in one explicit transaction:
 *   1. pg_advisory_xact_lock on the schema: two nodes starting at once
 *      migrate one after the other;
 *   2. the schema, unless it exists (CREATE SCHEMA IF NOT EXISTS would
 *      need CREATE on the database even then: a user that made the schema
 *      once needs only rights on it afterwards), and the schema_migrations
 *      table IF NOT EXISTS;
 *   3. one DO block that refuses a schema newer than this build (a version
 *      recorded that it does not know: a newer valetd migrated it, and
 *      this one's statements may no longer be right for it), then, for
 *      each version not yet recorded, EXECUTEs the migration and records
 *      it - so running it twice is a no-op - and when it applied any,
 *      NOTIFYs "<schema>_schema" with the new version (at the commit);
 *   4. LISTEN on the schema's channels (active from the commit on): new
 *      work, cancels, changes of the API keys table (pg_keys.c), and
 *      migrations: a node that hears of a version newer than its own
 *      drops its writer connection, whose next setup refuses the schema
 *      (pg_queue.c: writer_notify). An older node connected while a newer
 *      one migrates thus stops writing at once, instead of sending
 *      statements written for the old schema.
 * Then, outside that transaction, a session-level pg_try_advisory_lock on
 * the node id, held for the connection's life: a second valetd with the
 * same node id (which would "recover" the first one's running jobs) fails
 * its setup with a message that says so, and retries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_schema.h"

extern const char *const pg_migration_names[];
extern const char *const pg_migration_sql[];

size_t pg_schema_version(void)
{
	size_t n = 0;

	while (pg_migration_sql[n])
		n++;
	return n;
}

/* A growing string; on ENOMEM it frees itself and stays NULL. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (!b->s && b->cap)
		return; /* failed before */
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			free(b->s);
			b->s = NULL;
			b->cap = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_subst(struct sbuf *b, const char *text, const char *schema)
{
	static const char mark[] = "@SCHEMA@";
	const char *p;

	while ((p = strstr(text, mark))) {
		sb_addn(b, text, (size_t)(p - text));
		sb_add(b, schema);
		text = p + sizeof(mark) - 1;
	}
	sb_add(b, text);
}

char *pg_schema_subst(const char *text, const char *schema)
{
	struct sbuf b = {0};

	sb_subst(&b, text, schema);
	sb_add(&b, "");
	return b.s;
}

bool pg_schema_node_id_ok(const char *node_id)
{
	size_t n = strlen(node_id);

	if (n == 0 || n > 63)
		return false;
	return strspn(node_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

void pg_schema_channel(const char *schema, const char *what, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s_%s", schema, what);
}

char *pg_schema_setup_sql(const char *schema, const char *node_id)
{
	struct sbuf b = {0};
	char line[2048], chan[96];

	snprintf(line, sizeof(line),
		 "BEGIN;\nSELECT pg_advisory_xact_lock(hashtextextended('valet-migrate:%s', 0));\n"
		 "DO $valet_schema$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace "
		 "WHERE nspname = '%s') THEN CREATE SCHEMA %s; END IF; END $valet_schema$;\n"
		 "CREATE TABLE IF NOT EXISTS %s.schema_migrations (version integer PRIMARY KEY, "
		 "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());\n"
		 "DO $valet_migrate$ DECLARE v integer; BEGIN\n"
		 "SELECT max(version) INTO v FROM %s.schema_migrations;\n"
		 "IF v > %zu THEN RAISE EXCEPTION 'the database schema \"%s\" is at version %%, "
		 "newer than this valetd knows (%zu): a newer valetd migrated it; every node of a "
		 "cluster must run the same valetd version (upgrade this one)', v; END IF;\n",
		 schema, schema, schema, schema, schema, pg_schema_version(), schema,
		 pg_schema_version());
	sb_add(&b, line);
	for (size_t i = 0; pg_migration_sql[i]; i++) {
		snprintf(line, sizeof(line),
			 "IF NOT EXISTS (SELECT 1 FROM %s.schema_migrations WHERE version = %zu) THEN\n"
			 "EXECUTE $valet_m$",
			 schema, i + 1);
		sb_add(&b, line);
		sb_subst(&b, pg_migration_sql[i], schema);
		snprintf(line, sizeof(line),
			 "$valet_m$;\nINSERT INTO %s.schema_migrations (version, name) VALUES (%zu, "
			 "'%s');\nRAISE NOTICE 'valet: applied migration %s';\nEND IF;\n",
			 schema, i + 1, pg_migration_names[i], pg_migration_names[i]);
		sb_add(&b, line);
	}
	pg_schema_channel(schema, "schema", chan, sizeof(chan));
	snprintf(line, sizeof(line),
		 "IF coalesce(v, 0) < %zu THEN PERFORM pg_notify('%s', '%zu'); END IF;\n"
		 "END $valet_migrate$;\n",
		 pg_schema_version(), chan, pg_schema_version());
	sb_add(&b, line);
	pg_schema_channel(schema, "jobs", chan, sizeof(chan));
	snprintf(line, sizeof(line), "LISTEN %s;\n", chan);
	sb_add(&b, line);
	pg_schema_channel(schema, "cancel", chan, sizeof(chan));
	snprintf(line, sizeof(line), "LISTEN %s;\n", chan);
	sb_add(&b, line);
	pg_schema_channel(schema, "keys", chan, sizeof(chan));
	snprintf(line, sizeof(line), "LISTEN %s;\n", chan);
	sb_add(&b, line);
	pg_schema_channel(schema, "schema", chan, sizeof(chan));
	snprintf(line, sizeof(line), "LISTEN %s;\n", chan);
	sb_add(&b, line);
	/* Committed before the node lock: the migrations are in even when
	 * the lock is refused. */
	sb_add(&b, "COMMIT;\n");
	if (node_id) {
		snprintf(line, sizeof(line),
			 "DO $valet_node$ BEGIN IF NOT pg_try_advisory_lock("
			 "hashtextextended('valet-node:%s:%s', 0)) THEN RAISE EXCEPTION "
			 "'node id \"%s\" is in use by another valetd connected to this "
			 "database (set [storage] node_id)'; END IF; END $valet_node$;\n",
			 schema, node_id, node_id);
		sb_add(&b, line);
		/* The writer's statements (pg_sql.c) find their rows through
		 * a key or the queue's index, whatever the tables hold: each
		 * is planned once, on its first run (a custom plan for every
		 * run cost PostgreSQL more than some statements' work), and
		 * never as a scan of the whole table - which is what a plan
		 * made while the table was new and small would keep. */
		sb_add(&b, PG_WRITER_SESSION_SQL);
	}
	sb_add(&b, "");
	return b.s;
}
