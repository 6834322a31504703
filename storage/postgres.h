/*
 * postgres.h - the PostgreSQL adapter of the storage port
 * (supervisor/store.h): durable jobs, and the job queue shared by every
 * valetd node that uses the same database and schema (postgres.c).
 */
#ifndef VALET_POSTGRES_H
#define VALET_POSTGRES_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct store;

struct pg_options {
	const char *url;	 /* a libpq URL or key=value string */
	const char *schema;	 /* the tables' schema (an SQL identifier) */
	const char *node_id;	 /* this node's name; NULL or "": the host name */
	int64_t lease_ms;	 /* how long a node's claims outlive its last renewal */
	int64_t retry_backoff_ms;     /* a job attempt a lost node failed is retried */
	int64_t retry_backoff_max_ms; /* after this, doubling up to this */
	int retention_days;	 /* finished jobs older than this are pruned; 0 = never */
	int64_t submit_timeout_ms; /* a create not committed by then is withdrawn and
				    * answered -ETIMEDOUT; 0: PG_SUBMIT_TIMEOUT_MS */
	const char *state_dir;	 /* writes not taken at shutdown are kept there, to be
				  * written at the next start (pg_spill.c); NULL: lost */
};

#define PG_SUBMIT_TIMEOUT_MS 5000

/* The store, connecting in the background on loop. NULL with a sentence in
 * err on bad options. */
struct store *store_postgres_new(struct ev_loop *loop, const struct pg_options *o, char *err,
				 size_t errlen);

struct key_book;

/* `valetd key` on the database's api_keys table (storage/pg_keys.c): a
 * blocking connection, the schema made and migrated as valetd does. NULL
 * with a sentence in err. Free with kb->ops->free(kb). */
struct key_book *store_pg_key_book(const char *url, const char *schema, char *err,
				   size_t errlen);

/*
 * Where the database of a libpq URL or connection string lives, so that
 * jobs can be kept from it: *dirs its unix socket directories, *hosts its
 * host names and addresses (both new, NULL-terminated: free each and the
 * array; NULL when empty). host and hostaddr the string does not give come
 * from PGHOST and PGHOSTADDR; without either, or with an empty item in
 * host, libpq's default socket directories. 0, or -errno with a sentence in
 * err.
 */
int store_pg_targets(const char *url, char ***dirs, char ***hosts, char *err, size_t errlen);

/*
 * What store_postgres_new() and the first connection would refuse of o
 * without connecting: no URL, one libpq cannot parse, a node id that is
 * not usable. 0, or -EINVAL with a sentence in err (valetd -t, a reload).
 */
int store_pg_check(const struct pg_options *o, char *err, size_t errlen);

#endif
