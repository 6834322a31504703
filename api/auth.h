/*
 * auth.h - API keys: who may ask valetd for what.
 *
 * A key is a name, a set of scopes and the SHA-256 of a random token; the
 * token itself is shown once, when the key is made, and stored nowhere.
 * Keys live in a file ([server] auth_keys), one per line, or in the
 * database's api_keys table ([server] auth_source = postgres), whose rows
 * the store hands over as such lines:
 *
 *   NAME SCOPES SHA256-HEX [CREATED] [FIELD=VALUE ...]
 *
 * SCOPES is a comma-separated subset of submit, read, cancel, admin, metrics. The
 * FIELD=VALUE words are the key's policy (auth_policy.c); a line without
 * them gets the config's [auth] defaults. One of them, cert=sha256:HEX,...,
 * names the client certificates that are this key (auth_cert.c).
 */
#ifndef VALET_AUTH_H
#define VALET_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../supervisor/config.h"
#include "../supervisor/core.h"

enum auth_scope {
	AUTH_SUBMIT = 1u << 0, /* POST jobs and pipelines, PATCH */
	AUTH_READ = 1u << 1,   /* GET */
	AUTH_CANCEL = 1u << 2, /* POST .../cancel, DELETE */
	AUTH_ADMIN = 1u << 3,  /* everything, and every key's work */
	AUTH_METRICS = 1u << 4, /* GET /metrics */
};

#define AUTH_NAME_MAX 64
/* Words of a keys file line at most: 4 and the policy's fields. */
#define AUTH_LINE_WORDS 16
#define AUTH_TOKEN_PREFIX "vk_"
/* "vk_" and 64 hex digits: 256 random bits. */
#define AUTH_TOKEN_LEN (sizeof(AUTH_TOKEN_PREFIX) - 1 + 64)
/* Client certificates of a key at most: the one in use and the next. */
#define AUTH_CERTS_MAX 4

struct auth_key {
	char name[AUTH_NAME_MAX + 1];
	unsigned scopes;
	uint8_t hash[32];
	char created[32]; /* RFC 3339, or "" */
	uint16_t owner;	  /* job_owner_id(name), set by the server that uses it */
	/* Its policy: what its line says (0/NULL: not set) and, once
	 * auth_policy_apply() ran, the [auth] defaults for the rest. */
	struct core_policy policy;
	char **own_tasks;		    /* its tasks= (new; freed with the keys), or NULL */
	char who[AUTH_NAME_MAX + 24];	    /* "the API key \"NAME\"": policy.who */
	uint32_t submit_rate, submit_burst; /* submits a second, at once; 0 = no limit */
	double tokens;			    /* the rate's bucket, as of tokens_at_ns */
	int64_t tokens_at_ns;
	/* Its cert=: the SHA-256 fingerprints of its client certificates. */
	unsigned ncerts;
	uint8_t certs[AUTH_CERTS_MAX][32];
};

struct auth_keys {
	size_t n;
	struct auth_key *keys;
};

/*
 * Read a keys file. 0 with *out (new; auth_keys_free()), or -errno with a
 * "file:line: message" in err. A missing file is -ENOENT.
 */
int auth_keys_load(const char *path, struct auth_keys **out, char *err, size_t errlen);
/*
 * The same from text in that format (a key source's lines: the database's
 * api_keys table); where names it in messages ("where:line: message").
 * skipped NULL: the first bad line is the error, as in a file. Else bad
 * lines are left out and counted in *skipped (err: the first one's
 * message), so one bad row does not stop the others' changes.
 */
int auth_keys_parse(const char *text, const char *where, size_t *skipped, struct auth_keys **out,
		    char *err, size_t errlen);
void auth_keys_free(struct auth_keys *keys); /* NULL is a no-op */

/* The key whose token this is, or NULL. Every key is compared, each in
 * constant time. token: borrowed, NUL-terminated. */
const struct auth_key *auth_keys_find(const struct auth_keys *keys, const char *token);

/* One FIELD=VALUE of a key's line into k. 0, or -EINVAL/-ENOMEM with msg. */
int auth_policy_field(struct auth_key *k, const char *field, char *msg, size_t len);
/* The [auth] defaults as a key (own_tasks: new, free with strv_free()). */
int auth_policy_defaults(const struct config *cfg, struct auth_key *dflt, char *msg, size_t len);
/* Fill what k's line leaves unset from dflt (borrowed: it must outlive k);
 * k must be at its final address (policy.who points into it). */
void auth_policy_apply(struct auth_key *k, const struct auth_key *dflt);
/* A submit by k at now_ns: 0 when its rate allows it (a token is taken),
 * else the seconds until it would. */
unsigned auth_policy_take(struct auth_key *k, int64_t now_ns);
/* The same, but nothing is taken: whether a submit would be allowed now. */
unsigned auth_policy_wait(struct auth_key *k, int64_t now_ns);
/* A token taken for a submit that was then refused goes back (up to the
 * burst). */
void auth_policy_give_back(struct auth_key *k);
/* Keys read again (fresh, their policy applied): a key that is the same
 * key as before (name, token hash, rate and burst) keeps its rate's bucket,
 * so that reading the keys again gives no key a fresh burst. */
void auth_policy_carry(struct auth_keys *fresh, const struct auth_keys *old);
/* k's own policy as the words of its line ("" for none). */
void auth_policy_format(const struct auth_key *k, char *buf, size_t len);

/* cert=sha256:HEX[,sha256:HEX...] (VALUE only) into k. 0, or -EINVAL. */
int auth_cert_field(struct auth_key *k, const char *value);
/* k's certificates as " cert=sha256:HEX,..." appended to buf ("" for none). */
void auth_cert_format(const struct auth_key *k, char *buf, size_t len);
/* The key whose cert= holds this fingerprint, or NULL. fp: borrowed. */
const struct auth_key *auth_keys_find_cert(const struct auth_keys *keys, const uint8_t fp[32]);
/* 0, or -EINVAL when two keys name one certificate (which would it be?),
 * with a message. */
int auth_cert_check(const struct auth_keys *keys, char *err, size_t errlen);
/* fp as 64 lower-case hex digits into out[65]. */
void auth_cert_hex(const uint8_t fp[32], char out[65]);
/* `key create --cert ARG`: ARG is a PEM certificate file (its first
 * certificate, a client's, not a CA's) or sha256:HEX; " cert=..." is
 * appended to policy (or its fingerprint added there). 0, or 2 with a
 * message on stderr. */
int auth_cert_option(const char *arg, char *policy, size_t len);
/* Whether keys (a keys file's, or the api_keys table's) have a key with a
 * certificate of policy's cert= already (said on stderr): 1, else 0. */
int auth_cert_taken(const struct auth_keys *keys, const char *policy);

/* "submit,read" -> bits; -EINVAL for an unknown name or none. */
int auth_scopes_parse(const char *text, unsigned *scopes);
/* bits -> "submit,read" into buf. */
void auth_scopes_format(unsigned scopes, char *buf, size_t len);
/* The scope a request needs: method as routed ("GET" for HEAD), path as sent. */
unsigned auth_scope_needed(const char *method, const char *path);
/* Whether name is a valid key name: [A-Za-z0-9_.-], 1..AUTH_NAME_MAX. */
bool auth_name_valid(const char *name);

/*
 * `valetd key create NAME --scopes S | list | revoke NAME` on the keys
 * file at path: create prints the token once on stdout. The file is
 * replaced by rename, so a running valetd sees the change at once; a new
 * file gets the group of like (borrowed: the configuration file; NULL:
 * the caller's group). Exit status: 0, 1 (failed), 2 (bad usage).
 */
int auth_key_command(const char *path, const char *like, int argc, char **argv);
/* `valetd key --help` (or -h): auth_key_command() prints the usage. */
bool auth_key_help(int argc, char **argv);
/* The same on a key book (the database's api_keys table). */
struct key_book;
int auth_key_command_book(struct key_book *book, int argc, char **argv);

#endif
