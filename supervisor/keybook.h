/*
 * keybook.h - the port of `valetd key` on API keys kept outside the keys
 * file: a table every node of a cluster reads (PostgreSQL: storage/pg_keys.c,
 * made by main.c). The command (api/auth_cmd.c) makes the token, checks
 * the name, scopes and policy, and hands a book the row to keep; a running
 * valetd reads the keys through its store (store_ops.watch_keys). Calls
 * block: the command has no event loop.
 */
#ifndef VALET_KEYBOOK_H
#define VALET_KEYBOOK_H

#include <stddef.h>

struct key_book;

/* A new key, as the fields of its keys file line (borrowed). */
struct key_row {
	const char *name;
	const char *scopes;	/* "submit,read" */
	const char *sha256_hex; /* of the token: 64 lower-case hex digits */
	const char *policy;	/* FIELD=VALUE words, space-separated, or "" */
};

struct key_book_ops {
	/* The live keys as keys file lines (NAME SCOPES SHA256 CREATED
	 * [FIELD=VALUE ...]): *text new (free()). 0, or -errno with err. */
	int (*list)(struct key_book *kb, char **text, char *err, size_t errlen);
	/* Keep a new key (its creation time: now), in one transaction that
	 * tells every node. 0; -EEXIST when its name is taken (by a live or a
	 * revoked key: err says which); -errno with err. */
	int (*add)(struct key_book *kb, const struct key_row *row, char *err, size_t errlen);
	/* Revoke the live key name, in one transaction that tells every node.
	 * 0; -ENOENT when there is no live key of that name (err says why);
	 * -errno with err. */
	int (*revoke)(struct key_book *kb, const char *name, char *err, size_t errlen);
	void (*free)(struct key_book *kb);
};

struct key_book {
	const struct key_book_ops *ops;
	const char *where; /* for messages: "the database's api_keys table" */
};

#endif
