/*
 * auth_cmd.c - `valetd key create|list|revoke`: API keys by hand.
 *
 * Theory of operation: the file is edited as lines (comments and the order
 * of the other keys are kept) and replaced by rename: a new file beside it,
 * written, fsync()ed and given the old file's owner and mode, then renamed
 * over it. A running valetd watches the path and reads the new file at
 * once, so a revoked key stops working without a restart, and a reader
 * never sees half a file. A new key's token is 256 bits from GnuTLS's
 * random generator; it is printed once and only its SHA-256 is written.
 * Its policy options (--max-timeout 30s, ...) become FIELD=VALUE words of
 * its line, each checked as valetd will read it; --cert FILE.pem becomes
 * cert=sha256:HEX, the certificate's fingerprint (auth_cert.c).
 *
 * The commands work on a key book (supervisor/keybook.h): the keys file
 * here, or the database's api_keys table (storage/pg_keys.c, which main.c
 * hands over with [server] auth_source = postgres). A book keeps a row -
 * name, scopes, the token's SHA-256, policy words - and lists keys as the
 * file's lines, which auth.c parses for both.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "../supervisor/keybook.h"
#include "../supervisor/strv.h"
#include "auth.h"

struct lines {
	char **v;
	size_t n;
};

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int lines_add(struct lines *l, const char *s)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	if (!(v[l->n] = strdup(s)))
		return -ENOMEM;
	l->n++;
	return 0;
}

/* The file's lines (none when it does not exist; a directory is an
 * error, not an empty file). */
static int lines_read(const char *path, struct lines *l)
{
	char buf[1024];
	FILE *fp = fopen(path, "re");
	int rc = 0;

	if (!fp)
		return errno == ENOENT ? 0 : -errno;
	while (!rc && fgets(buf, sizeof(buf), fp))
		rc = lines_add(l, buf);
	if (!rc && ferror(fp))
		rc = errno ? -errno : -EIO;
	fclose(fp);
	return rc;
}

/* The first field of a line, into name. */
static void line_name(const char *line, char *name, size_t len)
{
	size_t n;

	line += strspn(line, " \t");
	n = strcspn(line, " \t\r\n");
	snprintf(name, len, "%.*s", (int)(n < len - 1 ? n : len - 1), line);
}

/*
 * The file replaced by rename. An existing file keeps its owner, group and
 * mode; a new one is 0640 in the group of like (the configuration file,
 * which valetd's user can read: root:valet in the packages), so that the
 * service can read a file an administrator made as root.
 */
static int lines_write(const char *path, const char *like, const struct lines *l)
{
	char tmp[4096];
	struct stat st, ls;
	bool had = stat(path, &st) == 0;
	FILE *fp;
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.new.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, had ? st.st_mode & 07777 : 0640);
	if (fd < 0)
		return -errno;
	if (had && fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM)
		rc = -errno;
	else if (!had && like && stat(like, &ls) == 0 && fchown(fd, (uid_t)-1, ls.st_gid) < 0 &&
		 errno != EPERM)
		rc = -errno;
	fp = fdopen(fd, "w");
	if (!fp) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	for (size_t i = 0; !rc && i < l->n; i++)
		if (fputs(l->v[i], fp) < 0)
			rc = -EIO;
	if (!rc && (fflush(fp) != 0 || fsync(fileno(fp)) < 0))
		rc = -errno;
	if (fclose(fp) != 0 && !rc)
		rc = -EIO;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- the keys file as a key book -------------------------------------------------- */

struct file_book {
	struct key_book base; /* first */
	const char *path;
	const char *like; /* a new file's group: this file's; NULL: the caller's */
};

static int file_list(struct key_book *b, char **text, char *err, size_t errlen)
{
	const char *path = ((struct file_book *)b)->path;
	struct lines l = {0};
	size_t len = 0;
	struct stat st;
	FILE *f;
	/* A file that is not there is an error here (a path mistyped), not
	 * an empty list. */
	int rc = stat(path, &st) < 0 ? -errno : lines_read(path, &l);

	if (rc < 0 || !(f = open_memstream(text, &len))) {
		snprintf(err, errlen, "%s: %s", path, strerror(rc < 0 ? -rc : ENOMEM));
		lines_free(&l);
		return rc < 0 ? rc : -ENOMEM;
	}
	for (size_t i = 0; i < l.n; i++)
		fputs(l.v[i], f);
	lines_free(&l);
	if (fclose(f) != 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int file_add(struct key_book *b, const struct key_row *row, char *err, size_t errlen)
{
	const char *path = ((struct file_book *)b)->path;
	char line[1024], have[AUTH_NAME_MAX + 2], created[32];
	struct lines l = {0};
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	if ((rc = lines_read(path, &l)) < 0)
		goto fail;
	for (size_t i = 0; i < l.n; i++) {
		line_name(l.v[i], have, sizeof(have));
		if (!strcmp(have, row->name)) {
			snprintf(err, errlen, "%s: a key named \"%s\" exists", path, row->name);
			lines_free(&l);
			return -EEXIST;
		}
	}
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(line, sizeof(line), "%s %s %s %s%s%s\n", row->name, row->scopes, row->sha256_hex,
		 created, row->policy[0] ? " " : "", row->policy);
	if (l.n && !strchr(l.v[l.n - 1], '\n') && (rc = lines_add(&l, "\n")) < 0)
		goto fail;
	if ((rc = lines_add(&l, line)) < 0 ||
	    (rc = lines_write(path, ((struct file_book *)b)->like, &l)) < 0)
		goto fail;
	lines_free(&l);
	return 0;
fail:
	lines_free(&l);
	snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	return rc;
}

static int file_revoke(struct key_book *b, const char *name, char *err, size_t errlen)
{
	const char *path = ((struct file_book *)b)->path;
	struct lines l = {0}, kept = {0};
	char have[AUTH_NAME_MAX + 2];
	bool found = false;
	int rc;

	if ((rc = lines_read(path, &l)) < 0)
		goto fail;
	for (size_t i = 0; !rc && i < l.n; i++) {
		line_name(l.v[i], have, sizeof(have));
		if (!strcmp(have, name))
			found = true;
		else
			rc = lines_add(&kept, l.v[i]);
	}
	if (!rc && !found) {
		snprintf(err, errlen, "%s: no key named \"%s\"", path, name);
		rc = -ENOENT;
		goto out;
	}
	if (rc || (rc = lines_write(path, ((struct file_book *)b)->like, &kept)) < 0)
		goto fail;
	goto out;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(-rc));
out:
	lines_free(&l);
	lines_free(&kept);
	return rc;
}

static const struct key_book_ops file_book_ops = {
    .list = file_list,
    .add = file_add,
    .revoke = file_revoke,
};

/* ---- the commands -------------------------------------------------------------------- */

static int key_create(struct key_book *book, const char *name, const char *scopes_text,
		      const char *policy)
{
	uint8_t raw[32], hash[32];
	char token[AUTH_TOKEN_LEN + 1], hex[65], scopes[64], err[512];
	struct key_row row = {.name = name, .scopes = scopes, .sha256_hex = hex};
	unsigned bits;
	int rc, n;

	if (!auth_name_valid(name)) {
		fprintf(stderr, "valetd key: bad name \"%s\": 1 to %d of A-Z a-z 0-9 _ . -\n", name,
			AUTH_NAME_MAX);
		return 2;
	}
	if (!scopes_text || auth_scopes_parse(scopes_text, &bits) < 0) {
		fprintf(stderr, "valetd key: --scopes: a comma-separated list of submit, read, "
				"cancel, admin, metrics\n");
		return 2;
	}
	if (gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof(raw)) < 0) {
		fprintf(stderr, "valetd key: no random numbers from GnuTLS\n");
		return 1;
	}
	n = snprintf(token, sizeof(token), "%s", AUTH_TOKEN_PREFIX);
	for (size_t i = 0; i < sizeof(raw); i++)
		n += snprintf(token + n, sizeof(token) - (size_t)n, "%02x", raw[i]);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), hash) < 0) {
		fprintf(stderr, "valetd key: no SHA-256 from GnuTLS\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(hash); i++)
		snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", hash[i]);
	auth_scopes_format(bits, scopes, sizeof(scopes));
	row.policy = policy + (policy[0] == ' '); /* its words, after the first space */
	if ((rc = book->ops->add(book, &row, err, sizeof(err))) < 0) {
		fprintf(stderr, "valetd key: %s\n", err);
		return 1;
	}
	printf("%s\n", token);
	fprintf(stderr,
		"valetd key: made \"%s\" (%s%s) in %s; the token above is shown "
		"this once\n",
		name, scopes, policy, book->where);
	return 0;
}

static int key_revoke(struct key_book *book, const char *name)
{
	char err[512];

	if (book->ops->revoke(book, name, err, sizeof(err)) < 0) {
		fprintf(stderr, "valetd key: %s\n", err);
		return 1;
	}
	fprintf(stderr, "valetd key: revoked \"%s\" in %s\n", name, book->where);
	return 0;
}

static int key_list(struct key_book *book)
{
	struct auth_keys *keys;
	char err[512], scopes[64], policy[512], *text = NULL;
	int rc = book->ops->list(book, &text, err, sizeof(err));

	if (rc == 0)
		rc = auth_keys_parse(text, book->where, NULL, &keys, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fprintf(stderr, "valetd key: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < keys->n; i++) {
		auth_scopes_format(keys->keys[i].scopes, scopes, sizeof(scopes));
		auth_policy_format(&keys->keys[i], policy, sizeof(policy));
		printf("%-20s %-28s %-20s %s\n", keys->keys[i].name, scopes,
		       keys->keys[i].created[0] ? keys->keys[i].created : "-",
		       policy[0] ? policy : "-");
	}
	auth_keys_free(keys);
	return 0;
}

/* --max-timeout VALUE (or --max-timeout=VALUE) at argv[*i] as " max_timeout=VALUE"
 * appended to policy, checked; 0, or 2 (bad usage, said). */
static int policy_option(int argc, char **argv, int *i, char *policy, size_t len)
{
	const char *opt = argv[*i] + 2, *eq = strchr(opt, '='), *value;
	char field[256], msg[256];
	struct auth_key k;
	size_t n = eq ? (size_t)(eq - opt) : strlen(opt), used = strlen(policy);
	int rc;

	if (eq)
		value = eq + 1;
	else if (*i + 1 < argc)
		value = argv[++*i];
	else
		value = "";
	snprintf(field, sizeof(field), "%.*s=%s", (int)n, opt, value);
	for (char *p = field; *p && *p != '='; p++)
		if (*p == '-')
			*p = '_';
	memset(&k, 0, sizeof(k));
	rc = auth_policy_field(&k, field, msg, sizeof(msg));
	strv_free(k.own_tasks);
	if (rc < 0 || strpbrk(field, " \t") || used + strlen(field) + 2 > len) {
		fprintf(stderr, "valetd key create: %s\n", rc < 0 ? msg : "bad policy option");
		return 2;
	}
	snprintf(policy + used, len - used, " %s", field);
	return 0;
}

/* Whether a certificate of policy's cert= is another key's already (said
 * on stderr): 1, else 0 (a book that does not read: 1). */
static int book_cert_taken(struct key_book *book, const char *policy)
{
	struct auth_keys *keys;
	char err[512], *text = NULL;
	size_t skipped;
	int rc;

	if (!strstr(policy, " cert="))
		return 0;
	rc = book->ops->list(book, &text, err, sizeof(err));
	if (rc == -ENOENT)
		return 0; /* no keys file yet */
	if (rc == 0)
		rc = auth_keys_parse(text, book->where, &skipped, &keys, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fprintf(stderr, "valetd key create: %s\n", err);
		return 1;
	}
	rc = auth_cert_taken(keys, policy);
	auth_keys_free(keys);
	return rc;
}

static void auth_key_usage(FILE *out)
{
	fprintf(out,
		"usage: valetd [-c FILE | --file KEYS] key create NAME --scopes "
		"submit,read,cancel,admin,metrics\n"
		"           [--profiles P,...] [--tasks T,...] [--max-timeout D] "
		"[--max-memory S]\n"
		"           [--max-cpu D] [--max-running N] [--max-queued N] "
		"[--submit-rate N] "
		"[--submit-burst N]\n"
		"           [--cert CLIENT.pem | --cert sha256:HEX]...\n"
		"       valetd [-c FILE | --file KEYS] key list\n"
		"       valetd [-c FILE | --file KEYS] key revoke NAME\n"
		"  the keys file: [server] auth_keys, or --file; with [server] auth_source =\n"
		"  postgres, the database's api_keys table ([storage] database_url, schema)\n");
}

bool auth_key_help(int argc, char **argv)
{
	return argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"));
}

int auth_key_command_book(struct key_book *book, int argc, char **argv)
{
	const char *scopes = NULL;
	char policy[512] = "";

	if (argc >= 1 && !strcmp(argv[0], "list") && argc == 1)
		return key_list(book);
	if (argc == 2 && !strcmp(argv[0], "revoke"))
		return key_revoke(book, argv[1]);
	if (argc >= 2 && !strcmp(argv[0], "create")) {
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--scopes") && i + 1 < argc)
				scopes = argv[++i];
			else if (!strncmp(argv[i], "--scopes=", 9))
				scopes = argv[i] + 9;
			else if (!strcmp(argv[i], "--cert") || !strncmp(argv[i], "--cert=", 7)) {
				const char *arg = argv[i] + 7;

				if (!argv[i][6])
					arg = i + 1 < argc ? argv[++i] : "";

				if (auth_cert_option(arg, policy, sizeof(policy)))
					return 2;
			} else if (!strncmp(argv[i], "--", 2) && argv[i][2]) {
				if (policy_option(argc, argv, &i, policy, sizeof(policy)))
					return 2;
			} else {
				fprintf(stderr, "valetd key create: unexpected %s\n", argv[i]);
				return 2;
			}
		}
		if (book_cert_taken(book, policy))
			return 1;
		return key_create(book, argv[1], scopes, policy);
	}
	auth_key_usage(stderr);
	return 2;
}

int auth_key_command(const char *path, const char *like, int argc, char **argv)
{
	struct file_book fb = {
	    .base = {.ops = &file_book_ops, .where = path}, .path = path, .like = like};

	if (auth_key_help(argc, argv)) {
		auth_key_usage(stdout);
		return 0;
	}
	if (!path || !path[0]) {
		fprintf(stderr,
			"valetd key: no keys file: set [server] auth_keys in the config "
			"(-c FILE), [server] auth_source = postgres, or give --file PATH\n");
		return 2;
	}
	return auth_key_command_book(&fb.base, argc, argv);
}
