/*
 * auth.h - API keys: who may ask valetd for what.
 *
 * A key is a name, a set of scopes and the SHA-256 of a random token; the
 * token itself is shown once, when the key is made, and stored nowhere.
 * Keys live in a file ([server] auth_keys), one per line:
 *
 *   NAME SCOPES SHA256-HEX [CREATED]
 *
 * SCOPES is a comma-separated subset of submit, read, cancel, admin.
 */
#ifndef VALET_AUTH_H
#define VALET_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_scope {
	AUTH_SUBMIT = 1u << 0, /* POST jobs and pipelines, PATCH */
	AUTH_READ = 1u << 1,   /* GET */
	AUTH_CANCEL = 1u << 2, /* POST .../cancel, DELETE */
	AUTH_ADMIN = 1u << 3,  /* everything, and every key's work */
};

#define AUTH_NAME_MAX 64
#define AUTH_TOKEN_PREFIX "vk_"
/* "vk_" and 64 hex digits: 256 random bits. */
#define AUTH_TOKEN_LEN (sizeof(AUTH_TOKEN_PREFIX) - 1 + 64)

struct auth_key {
	char name[AUTH_NAME_MAX + 1];
	unsigned scopes;
	uint8_t hash[32];
	char created[32]; /* RFC 3339, or "" */
	uint16_t owner;	  /* job_owner_id(name), set by the server that uses it */
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
void auth_keys_free(struct auth_keys *keys); /* NULL is a no-op */

/* The key whose token this is, or NULL. Every key is compared, each in
 * constant time. token: borrowed, NUL-terminated. */
const struct auth_key *auth_keys_find(const struct auth_keys *keys, const char *token);

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
 * replaced by rename, so a running valetd sees the change at once. Exit
 * status: 0, 1 (failed), 2 (bad usage).
 */
int auth_key_command(const char *path, int argc, char **argv);

#endif
