/*
 * pg_schema.h - the SQL valetd runs on its PostgreSQL writer connection at
 * every connect: migrations (under an advisory lock), the node's exclusive
 * lock on its id, and LISTEN.
 */
#ifndef VALET_PG_SCHEMA_H
#define VALET_PG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

/* How many migrations this build knows (the schema version it brings). */
size_t pg_schema_version(void);

/* Text with every "@SCHEMA@" replaced by schema. New (caller frees); NULL on
 * ENOMEM. */
char *pg_schema_subst(const char *text, const char *schema);

/* The setup script: create the schema and apply missing migrations in one
 * transaction under an advisory lock (refused, with a message that says
 * so, when the schema is newer than this build: pg_schema_version()); when
 * node_id is given (the writer), take the
 * session lock that keeps two live valetd from using the same node id
 * (fails with a clear message if another one holds it) and set the
 * session's planner for keyed writes (generic plans, no sequential scans);
 * LISTEN on the
 * schema's channels. schema must be a plain identifier and node_id free of
 * quotes (pg_schema_node_id_ok). New (caller frees); NULL on ENOMEM. */
char *pg_schema_setup_sql(const char *schema, const char *node_id);

/* The writer's planner (part of the setup when node_id is given): each
 * statement planned once, and never as a scan of a whole table. */
#define PG_WRITER_SESSION_SQL "SET plan_cache_mode = force_generic_plan;\nSET enable_seqscan = off;\n"

/* A node id is 1-63 bytes of [A-Za-z0-9._:-]. */
bool pg_schema_node_id_ok(const char *node_id);

/* NOTIFY channels: "<schema>_jobs" (new runnable work), "<schema>_cancel"
 * (payload: "job <uuid>" or "pipeline <uuid>"), "<schema>_keys" (the API
 * keys table changed; payload: the key's name), "<schema>_schema" (a
 * valetd applied migrations; payload: the schema's version now). A
 * channel is an identifier (at most 63 bytes) and the longest suffix is 7
 * ("_cancel", "_schema"): the config takes a schema of at most 56 bytes
 * (supervisor/config.c, CF_IDENT_MAX). out >= 80 bytes. */
void pg_schema_channel(const char *schema, const char *what, char *out, size_t outlen);

#endif
