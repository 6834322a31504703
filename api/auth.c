/*
 * auth.c - API keys: the keys file, token lookup, scopes.
 *
 * Theory of operation: a token is 256 random bits, so its SHA-256 is all a
 * key needs to keep (no slow password hash: there is nothing to guess), and
 * a stolen keys file gives no token. A request's token is hashed once and
 * compared with every key's hash; each comparison takes the same time
 * whatever the bytes, and the loop does not stop at a match, so neither the
 * position of a key nor the length of a matching prefix shows in the time
 * an answer takes. SHA-256 is GnuTLS's (the project's TLS library).
 *
 * Which scope a request needs follows from its method and path alone, so
 * that a key is refused before any handler or the core sees its request:
 * reading is GET (and HEAD), cancelling is DELETE and POST .../cancel,
 * anything else that changes state is submit; admin holds every scope.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "../supervisor/strv.h"
#include "auth.h"

static const struct {
	const char *name;
	unsigned bit;
} auth_scope_names[] = {
    {"submit", AUTH_SUBMIT},
    {"read", AUTH_READ},
    {"cancel", AUTH_CANCEL},
    {"admin", AUTH_ADMIN},
    {"metrics", AUTH_METRICS},
};

#define AUTH_NSCOPES (sizeof(auth_scope_names) / sizeof(auth_scope_names[0]))

int auth_scopes_parse(const char *text, unsigned *scopes)
{
	const char *p = text;
	size_t len, i;

	*scopes = 0;
	while (*p) {
		len = strcspn(p, ",");
		for (i = 0; i < AUTH_NSCOPES; i++)
			if (strlen(auth_scope_names[i].name) == len &&
			    !strncmp(p, auth_scope_names[i].name, len))
				break;
		if (i == AUTH_NSCOPES)
			return -EINVAL;
		*scopes |= auth_scope_names[i].bit;
		p += len;
		if (*p == ',')
			p++;
	}
	return *scopes ? 0 : -EINVAL;
}

void auth_scopes_format(unsigned scopes, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < AUTH_NSCOPES; i++) {
		if (!(scopes & auth_scope_names[i].bit))
			continue;
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
					 used ? "," : "", auth_scope_names[i].name);
	}
}

bool auth_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > AUTH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
			return false;
	return true;
}

unsigned auth_scope_needed(const char *method, const char *path)
{
	size_t len = strlen(path);

	if (!strcmp(path, "/metrics"))
		return AUTH_METRICS;
	if (!strcmp(method, "GET"))
		return AUTH_READ;
	if (!strcmp(method, "DELETE"))
		return AUTH_CANCEL;
	if (!strcmp(method, "POST") && len >= 7 && !strcmp(path + len - 7, "/cancel"))
		return AUTH_CANCEL;
	return AUTH_SUBMIT;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_hash(const char *hex, uint8_t out[32])
{
	if (strlen(hex) != 64)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int auth_keys_add(struct auth_keys *keys, const struct auth_key *k)
{
	struct auth_key *a = realloc(keys->keys, (keys->n + 1) * sizeof(*a));

	if (!a)
		return -ENOMEM;
	keys->keys = a;
	a[keys->n++] = *k;
	return 0;
}

/* One line of keys (blank and comment lines too) into keys. 0, or
 * -EINVAL/-ENOMEM with "where:lineno: message" in err. */
static int key_line(struct auth_keys *keys, char *line, const char *where, unsigned lineno,
		    char *err, size_t errlen)
{
	char *f[AUTH_LINE_WORDS + 1], *save, msg[256];
	struct auth_key k;
	int n = 0, rc = 0;

	for (char *t = strtok_r(line, " \t\r\n", &save); t && n <= AUTH_LINE_WORDS;
	     t = strtok_r(NULL, " \t\r\n", &save))
		f[n++] = t;
	if (n == 0 || f[0][0] == '#')
		return 0;
	memset(&k, 0, sizeof(k));
	if (n < 3 || n > AUTH_LINE_WORDS) {
		snprintf(err, errlen, "%s:%u: expected NAME SCOPES SHA256 [CREATED] [FIELD=VALUE ...]",
			 where, lineno);
		return -EINVAL;
	}
	if (!auth_name_valid(f[0])) {
		snprintf(err, errlen, "%s:%u: bad key name \"%.64s\"", where, lineno, f[0]);
		return -EINVAL;
	}
	if (auth_scopes_parse(f[1], &k.scopes) < 0) {
		snprintf(err, errlen, "%s:%u: bad scopes \"%.64s\" (submit, read, cancel, admin, metrics)",
			 where, lineno, f[1]);
		return -EINVAL;
	}
	if (parse_hash(f[2], k.hash) < 0) {
		snprintf(err, errlen, "%s:%u: bad hash (64 lower-case hex digits)", where, lineno);
		return -EINVAL;
	}
	for (size_t i = 0; i < keys->n; i++)
		if (!strcmp(keys->keys[i].name, f[0])) {
			snprintf(err, errlen, "%s:%u: key \"%s\" twice", where, lineno, f[0]);
			return -EINVAL;
		}
	snprintf(k.name, sizeof(k.name), "%s", f[0]);
	if (n > 3 && !strchr(f[3], '='))
		snprintf(k.created, sizeof(k.created), "%s", f[3]);
	for (int i = k.created[0] ? 4 : 3; !rc && i < n; i++)
		if ((rc = auth_policy_field(&k, f[i], msg, sizeof(msg))) < 0)
			snprintf(err, errlen, "%s:%u: %s", where, lineno, msg);
	if (!rc && (rc = auth_keys_add(keys, &k)) < 0)
		snprintf(err, errlen, "out of memory");
	if (rc)
		strv_free(k.own_tasks);
	return rc;
}

/* Every line of fp; with skipped, bad lines are left out and counted (err:
 * the first one's message), else the first one is the error. */
static int keys_read(FILE *fp, const char *where, size_t *skipped, struct auth_keys **out,
		     char *err, size_t errlen)
{
	struct auth_keys *keys = calloc(1, sizeof(*keys));
	char line[1024], msg[512];
	unsigned lineno = 0;
	int rc = 0;

	*out = NULL;
	if (skipped)
		*skipped = 0;
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (!rc && fgets(line, sizeof(line), fp)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(fp)) {
			snprintf(msg, sizeof(msg), "%s:%u: line too long", where, lineno);
			rc = -EINVAL;
			while (fgets(line, sizeof(line), fp) && !strchr(line, '\n'))
				; /* the rest of it */
		} else {
			rc = key_line(keys, line, where, lineno, msg, sizeof(msg));
		}
		if (rc == -EINVAL && skipped) {
			if (!(*skipped)++)
				snprintf(err, errlen, "%s", msg);
			rc = 0;
		} else if (rc) {
			snprintf(err, errlen, "%s", msg);
		}
	}
	/* A read error (a directory: EISDIR) is no empty file of no keys. */
	if (!rc && ferror(fp)) {
		rc = errno ? -errno : -EIO;
		snprintf(err, errlen, "%s: %s", where, strerror(-rc));
	}
	if (rc) {
		auth_keys_free(keys);
		return rc;
	}
	*out = keys;
	return 0;
}

int auth_keys_load(const char *path, struct auth_keys **out, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	int rc;

	*out = NULL;
	if (!fp) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	rc = keys_read(fp, path, NULL, out, err, errlen);
	fclose(fp);
	return rc;
}

int auth_keys_parse(const char *text, const char *where, size_t *skipped, struct auth_keys **out,
		    char *err, size_t errlen)
{
	FILE *fp;
	int rc;

	*out = NULL;
	if (skipped)
		*skipped = 0;
	/* fmemopen() may refuse a size of 0: no keys. */
	fp = text[0] ? fmemopen((void *)text, strlen(text), "r") : NULL;
	if (!text[0] && !(*out = calloc(1, sizeof(**out))))
		fp = NULL;
	else if (!text[0])
		return 0;
	if (!fp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = keys_read(fp, where, skipped, out, err, errlen);
	fclose(fp);
	return rc;
}

void auth_keys_free(struct auth_keys *keys)
{
	if (!keys)
		return;
	for (size_t i = 0; i < keys->n; i++)
		strv_free(keys->keys[i].own_tasks);
	free(keys->keys);
	free(keys);
}

const struct auth_key *auth_keys_find(const struct auth_keys *keys, const char *token)
{
	const struct auth_key *found = NULL;
	uint8_t hash[32];

	if (!keys || !token ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), hash) < 0)
		return NULL;
	for (size_t i = 0; i < keys->n; i++) {
		unsigned diff = 0;

		for (int j = 0; j < 32; j++)
			diff |= (unsigned)(hash[j] ^ keys->keys[i].hash[j]);
		/* No early exit: every key costs the same. */
		if (diff == 0)
			found = &keys->keys[i];
	}
	return found;
}
