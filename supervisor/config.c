/*
 * config.c - valetd's configuration: defaults, the INI file, the environment.
 *
 * Theory of operation
 *
 * Every scalar setting is one row of cf_keys[] (pgbouncer style): section,
 * key, type, where it lives in struct config, its default written as it
 * would be in the file (so defaults go through the same parsers as the file
 * does) and its range. config_new() applies the defaults, config_load()
 * reads a file on top of them, config_dump() prints the table back. A new
 * setting is one row here, one field in config.h and one paragraph in
 * packaging/valetd.conf.
 *
 * inih does the INI syntax, but we feed it through our own line reader
 * (ini_parse_stream) because inih does not tell a handler which line it is
 * on, and every error must read "file:line: message". The reader:
 *  - counts lines, so the handler knows the current line;
 *  - sees "[section]" lines before inih does, so an unknown section, or a
 *    [task.NAME] without a command, is reported at the section's own line,
 *    and long task names are not cut to inih's 50-byte section buffer;
 *  - strips leading white space - all that inih skips (isspace(): \f,
 *    \v and \r too) -, which turns off inih's continuation lines (an
 *    indented line is an ordinary key, not a second value for the
 *    previous key that would then look like a duplicate) and lets no
 *    "[section]" line past the reader unseen;
 *  - ends the parse at the first error.
 * inih reports the lines it cannot parse itself (no '=', no ']') by
 * returning the first such line; whichever error comes first is reported.
 *
 * The values themselves (durations, sizes, addresses, booleans, commands)
 * are parsed, checked and printed by config_value.c; this file owns the
 * table, the objects and the file. The checks of more than one key, once
 * the whole file is read, are config_check.c's.
 *
 * [task.NAME] sections (exec tasks, and defaults for any task) are read by
 * config_task.c. Relative paths in a file are relative to the file's
 * directory, so a config works whatever directory valetd starts in:
 * plugin_dir, a program with a slash, and arguments that start with "./"
 * or "../" (a script given to an interpreter). Other arguments are passed
 * as they are.
 *
 * Limits: [sandbox] memory_limit, cpu_limit, max_processes and [jobs]
 * max_output_size are the defaults of every job; [jobs] max_memory_limit,
 * max_cpu_limit, max_process_limit and max_output_limit cap what a job (the
 * API's "limits") or a task section may set. A maximum not in the file is
 * its limit's default, so out of the box a job can only lower a limit. 0
 * means none: a maximum of 0 allows any value, and a default of 0 (no
 * limit) is above every maximum but 0.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"
#include "config_value.h"
#include "hidden.h"
#include "netpolicy.h"

/* Debian builds inih with runtime options: its line limit (200 bytes) is
 * raised for long commands through ini_max_line (CF_MAX_LINE). */

_Static_assert(sizeof(enum log_format) == sizeof(int), "enum fields are written as int");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum fields are written as int");
_Static_assert(sizeof(enum config_client_auth) == sizeof(int), "enum fields are written as int");

enum cf_type {
	CF_STRING,   /* char *; min = minimal length */
	CF_PATH,     /* char *, relative to the file's directory */
	CF_LISTEN,   /* char *, checked by config_parse_listen() */
	CF_CHOICE,   /* char *, one of names[] */
	CF_ENUM,     /* int (an enum), index into names[] */
	CF_INT,	     /* int */
	CF_INT_AUTO, /* int, or "auto" (any case): CONFIG_AUTO */
	CF_BOOL,     /* bool */
	CF_DURATION, /* int64_t milliseconds */
	CF_SIZE,     /* size_t bytes */
};

#define CF_SECRET 1 /* config_dump() hides the password */
#define CF_IDENT 2  /* an SQL identifier: [a-z_][a-z0-9_]*, at most CF_IDENT_MAX bytes */
#define CF_LIVE 4   /* a reload applies it (config_reload()); any other key needs a restart */
/* The schema names valet's NOTIFY channels too ("<schema>_cancel",
 * "<schema>_schema": storage/pg_schema.h), and a channel is an identifier
 * of at most 63 bytes: PostgreSQL refuses a longer one in pg_notify(). */
#define CF_IDENT_MAX (63 - 7)

struct cf_key {
	const char *section;
	const char *name;
	enum cf_type type;
	size_t offset;
	const char *def; /* NULL: computed by config_new() */
	int64_t min, max;
	const char *const *names;
	unsigned flags;
	/* Strings: a further check of the value (0, or -EINVAL with msg). */
	int (*check)(const char *label, const char *value, char *msg, size_t msglen);
};

static const char *const cf_backends[] = {"memory", "postgres", NULL};
static const char *const cf_key_sources[] = {"file", "postgres", NULL};
static const char *const cf_formats[] = {"text", "json", NULL};
static const char *const cf_client_auth[] = {"off", "optional", "require", NULL};
static const char *const cf_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const cf_net_modes[] = {"slirp4netns", "host", NULL};

#define OFF(field) offsetof(struct config, field)
#define KEY(sec, key, t, field, dflt)                                                              \
	.section = sec, .name = key, .type = t, .offset = OFF(field), .def = dflt

static bool cf_is_string(enum cf_type type)
{
	return type == CF_STRING || type == CF_PATH || type == CF_LISTEN || type == CF_CHOICE;
}

/* clang-format off */
static const struct cf_key cf_keys[] = {
	{KEY("server", "listen", CF_LISTEN, listen, "127.0.0.1:8080")},
	{KEY("server", "cors_origins", CF_STRING, cors_origins, "")},
	{KEY("server", "allowed_hosts", CF_STRING, allowed_hosts, ""), .check = config_check_hosts},
	{KEY("server", "max_body", CF_SIZE, max_body_bytes, "1M"), .min = KIB, .max = GIB},
	{KEY("server", "max_body_memory", CF_SIZE, max_body_memory, "64M"), .min = KIB,
	 .max = 64 * GIB},
	{KEY("server", "access_log", CF_BOOL, access_log, "true"), .flags = CF_LIVE},
	{KEY("server", "max_connections", CF_INT, max_connections, "4096"), .min = 1, .max = 1000000},
	{KEY("server", "max_connections_per_client", CF_INT, max_connections_per_client, "512"),
	 .min = 1, .max = 1000000},
	{KEY("server", "request_timeout", CF_DURATION, request_timeout_ms, "10s"), .min = 100,
	 .max = HOUR},
	{KEY("server", "idle_timeout", CF_DURATION, idle_timeout_ms, "15s"), .min = 100, .max = HOUR},
	{KEY("server", "auth_keys", CF_PATH, auth_keys, "")},
	{KEY("server", "auth_source", CF_CHOICE, auth_source, "file"), .names = cf_key_sources},
	{KEY("server", "open_status", CF_BOOL, open_status, "true")},
	{KEY("server", "allow_unauthenticated", CF_BOOL, allow_unauthenticated, "false")},
	{KEY("server", "tls_cert", CF_PATH, tls_cert, "")},
	{KEY("server", "tls_key", CF_PATH, tls_key, "")},
	{KEY("server", "tls_client_ca", CF_PATH, tls_client_ca, "")},
	{KEY("server", "tls_client_auth", CF_ENUM, tls_client_auth, "off"), .names = cf_client_auth},
	{KEY("auth", "profiles", CF_STRING, auth_profiles, "")},
	{KEY("auth", "tasks", CF_STRING, auth_tasks, "")},
	{KEY("auth", "max_timeout", CF_DURATION, auth_max_timeout_ms, "0"), .min = 0, .max = DAYS30},
	{KEY("auth", "max_memory", CF_SIZE, auth_max_memory, "0"), .min = 0, .max = TIB},
	{KEY("auth", "max_cpu", CF_DURATION, auth_max_cpu_ms, "0"), .min = 0, .max = DAYS30},
	{KEY("auth", "max_running", CF_INT, auth_max_running, "0"), .min = 0, .max = 1000000},
	{KEY("auth", "max_queued", CF_INT, auth_max_queued, "0"), .min = 0, .max = 10000000},
	{KEY("auth", "submit_rate", CF_INT, auth_submit_rate, "0"), .min = 0, .max = 1000000},
	{KEY("auth", "submit_burst", CF_INT, auth_submit_burst, "0"), .min = 0, .max = 1000000},
	{KEY("queue", "workers", CF_INT, workers, NULL), .min = 1, .max = 1024},
	{KEY("queue", "capacity", CF_INT, queue_capacity, "100000"), .min = 1, .max = 10000000,
	 .flags = CF_LIVE},
	{KEY("queue", "shutdown_grace", CF_DURATION, shutdown_grace_ms, "10s"), .min = 0, .max = HOUR,
	 .flags = CF_LIVE},
	{KEY("jobs", "default_timeout", CF_DURATION, default_timeout_ms, "60s"), .min = 1, .max = DAYS30,
	 .flags = CF_LIVE},
	{KEY("jobs", "max_timeout", CF_DURATION, max_timeout_ms, "1h"), .min = 1, .max = DAYS30,
	 .flags = CF_LIVE},
	{KEY("jobs", "max_attempts", CF_INT, max_attempts, "1"), .min = 1, .max = 100},
	{KEY("jobs", "max_result_size", CF_SIZE, max_result_bytes, "1M"), .min = KIB, .max = GIB,
	 .flags = CF_LIVE},
	{KEY("jobs", "max_output_size", CF_SIZE, max_output_bytes, "1M"), .min = KIB, .max = GIB,
	 .flags = CF_LIVE},
	{KEY("jobs", "max_memory_limit", CF_SIZE, max_memory_limit, NULL), .min = 0, .max = TIB},
	{KEY("jobs", "max_cpu_limit", CF_DURATION, max_cpu_limit_ms, NULL), .min = 0, .max = DAYS30},
	{KEY("jobs", "max_process_limit", CF_INT, max_process_limit, NULL), .min = 0, .max = 1000000},
	{KEY("jobs", "max_output_limit", CF_SIZE, max_output_limit, NULL), .min = KIB, .max = GIB,
	 .flags = CF_LIVE},
	{KEY("sandbox", "user", CF_STRING, user, "nobody"), .min = 1},
	{KEY("sandbox", "memory_limit", CF_SIZE, memory_limit_bytes, "256M"), .min = 0, .max = TIB},
	{KEY("sandbox", "cpu_limit", CF_DURATION, cpu_limit_ms, "0"), .min = 0, .max = DAYS30},
	{KEY("sandbox", "max_files", CF_INT, max_files, "64"), .min = 0, .max = 1048576},
	{KEY("sandbox", "max_processes", CF_INT, max_processes, "64"), .min = 0, .max = 1000000},
	{KEY("sandbox", "max_file_size", CF_SIZE, max_file_size, "16M"), .min = 0, .max = TIB},
	{KEY("sandbox", "namespaces", CF_BOOL, namespaces, "true")},
	{KEY("sandbox", "cgroups", CF_BOOL, cgroups, "true")},
	{KEY("sandbox", "uid_base", CF_INT_AUTO, uid_base, "auto"), .min = 0, .max = 2000000000},
	{KEY("sandbox", "allow_degraded_isolation", CF_BOOL, allow_degraded_isolation, "false")},
	{KEY("sandbox", "hide", CF_STRING, hide, ""), .check = hidden_check_list, .flags = CF_LIVE},
	{KEY("network", "mode", CF_CHOICE, net_mode, "slirp4netns"), .names = cf_net_modes},
	{KEY("network", "allow", CF_STRING, net_allow, NETPOLICY_ALLOW_DEFAULT),
	 .check = netpolicy_check_list},
	{KEY("network", "deny", CF_STRING, net_deny, NETPOLICY_DENY_DEFAULT),
	 .check = netpolicy_check_list},
	{KEY("network", "helper", CF_STRING, net_helper, "slirp4netns"), .min = 1},
	{KEY("storage", "backend", CF_CHOICE, storage, "memory"), .names = cf_backends},
	{KEY("storage", "database_url", CF_STRING, database_url, ""), .flags = CF_SECRET},
	{KEY("storage", "schema", CF_STRING, db_schema, "valet"), .min = 1, .flags = CF_IDENT},
	{KEY("storage", "node_id", CF_STRING, node_id, "")},
	{KEY("storage", "lease", CF_DURATION, lease_ms, "30s"), .min = SEC, .max = HOUR},
	{KEY("storage", "retry_backoff", CF_DURATION, retry_backoff_ms, "1s"), .min = 0, .max = DAY},
	{KEY("storage", "retry_backoff_max", CF_DURATION, retry_backoff_max_ms, "5m"), .min = 0, .max = DAYS30},
	{KEY("storage", "retention_days", CF_INT, retention_days, "0"), .min = 0, .max = 36500},
	{KEY("storage", "submit_timeout", CF_DURATION, submit_timeout_ms, "5s"), .min = 100, .max = HOUR},
	{KEY("storage", "state_dir", CF_PATH, state_dir, "")},
	{KEY("tasks", "plugin_dir", CF_PATH, plugin_dir, "")},
	{KEY("log", "format", CF_ENUM, log_format, "text"), .names = cf_formats, .flags = CF_LIVE},
	{KEY("log", "level", CF_ENUM, log_level, "info"), .names = cf_levels, .flags = CF_LIVE},
};
/* clang-format on */

#define CF_NKEYS (sizeof(cf_keys) / sizeof(cf_keys[0]))

static bool cf_is_ident(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CF_IDENT_MAX || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Parse value into k's field. On error, msg says why. dir: relative paths' base or NULL. */
static int cf_set(struct config *cfg, const struct cf_key *k, const char *value, const char *dir,
		  char *msg, size_t msglen)
{
	void *field = (char *)cfg + k->offset;
	char host[256];
	int64_t n;
	int i, port, rc = 0;
	char *s;

	switch (k->type) {
	case CF_STRING:
	case CF_PATH:
	case CF_LISTEN:
	case CF_CHOICE:
		if ((int64_t)strlen(value) < k->min) {
			snprintf(msg, msglen, "%s: must not be empty", k->name);
			return -EINVAL;
		}
		if (k->type == CF_LISTEN &&
		    config_parse_listen(value, host, sizeof(host), &port) < 0) {
			snprintf(
			    msg, msglen,
			    "%s: \"%s\" is not an address (use HOST:PORT, [IPV6]:PORT or :PORT, "
			    "port 0-65535)",
			    k->name, value);
			return -EINVAL;
		}
		if (k->check && k->check(k->name, value, msg, msglen) < 0)
			return -EINVAL;
		if ((k->flags & CF_IDENT) && !cf_is_ident(value)) {
			snprintf(msg, msglen,
				 "%s: \"%s\" is not a plain SQL name (lower-case letters, digits and "
				 "_, not starting with a digit, at most %d)",
				 k->name, value, CF_IDENT_MAX);
			return -EINVAL;
		}
		i = k->type == CF_CHOICE ? config_choice(k->names, value) : 0;
		if (i < 0) {
			config_not_one_of(k->name, value, k->names, msg, msglen);
			return -EINVAL;
		}
		if (k->type == CF_CHOICE)
			s = strdup(k->names[i]);
		else
			s = k->type == CF_PATH ? config_join_path(dir, value) : strdup(value);
		if (!s) {
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
		free(*(char **)field);
		*(char **)field = s;
		return 0;
	case CF_ENUM:
		i = config_choice(k->names, value);
		if (i < 0) {
			config_not_one_of(k->name, value, k->names, msg, msglen);
			return -EINVAL;
		}
		*(int *)field = i;
		return 0;
	case CF_INT:
		rc = config_value_int(k->name, value, k->min, k->max, &n, msg, msglen);
		if (rc == 0)
			*(int *)field = (int)n;
		return rc;
	case CF_INT_AUTO:
		if (!strcasecmp(value, "auto")) {
			*(int *)field = CONFIG_AUTO;
			return 0;
		}
		if (config_value_int(k->name, value, k->min, k->max, &n, msg, msglen) < 0) {
			snprintf(msg, msglen,
				 "%s: \"%s\" is neither auto nor a number from %lld to %lld",
				 k->name, value, (long long)k->min, (long long)k->max);
			return -EINVAL;
		}
		*(int *)field = (int)n;
		return 0;
	case CF_BOOL:
		return config_value_bool(k->name, value, (bool *)field, msg, msglen);
	case CF_DURATION:
		return config_value_duration(k->name, value, k->min, k->max, (int64_t *)field, msg,
					     msglen);
	case CF_SIZE:
		return config_value_size(k->name, value, k->min, k->max, (size_t *)field, msg,
					 msglen);
	}
	return -EINVAL;
}

const struct cf_key *cf_find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < CF_NKEYS; i++)
		if (!strcmp(cf_keys[i].section, section) &&
		    (!name || !strcmp(cf_keys[i].name, name)))
			return &cf_keys[i];
	return NULL;
}

int cf_key_line(const struct cf_load *ld, const struct cf_key *k)
{
	return ld->key_line[k - cf_keys];
}

const char *cf_key_name(const struct cf_key *k)
{
	return k->name;
}

static bool cf_same(const struct config *a, const struct config *b, const struct cf_key *k)
{
	const void *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;

	if (cf_is_string(k->type)) {
		const char *s = *(char *const *)x, *t = *(char *const *)y;
		return !strcmp(s ? s : "", t ? t : "");
	}
	if (k->type == CF_BOOL)
		return *(const bool *)x == *(const bool *)y;
	return cf_num(a, k) == cf_num(b, k);
}

void config_reload(struct config *cfg, struct config *fresh,
		   void (*restart)(const char *key, void *arg), void *arg)
{
	char key[128];

	for (size_t i = 0; i < CF_NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];
		void *to = (char *)cfg + k->offset, *from = (char *)fresh + k->offset;

		if (!(k->flags & CF_LIVE)) {
			if (!cf_same(cfg, fresh, k)) {
				snprintf(key, sizeof(key), "[%s] %s", k->section, k->name);
				restart(key, arg);
			}
		} else if (cf_is_string(k->type)) {
			char *old = *(char **)to;

			*(char **)to = *(char **)from;
			*(char **)from = old;
		} else if (k->type == CF_BOOL) {
			*(bool *)to = *(bool *)from;
		} else {
			cf_set_num(cfg, k, cf_num(fresh, k));
		}
	}
}

const char *cf_client_auth_name(enum config_client_auth a)
{
	return cf_client_auth[a];
}

/* ---- config objects ------------------------------------------------------ */

static int cf_nproc(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/* The [jobs] maxima of limits default to the limits' defaults. */
static void cf_default_maxima(struct config *cfg)
{
	cfg->max_memory_limit = cfg->memory_limit_bytes;
	cfg->max_cpu_limit_ms = cfg->cpu_limit_ms;
	cfg->max_process_limit = cfg->max_processes;
	cfg->max_output_limit = cfg->max_output_bytes;
}

struct config *config_new(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char msg[CF_MSG];

	if (!cfg)
		return NULL;
	for (size_t i = 0; i < CF_NKEYS; i++) {
		/* The defaults are valid (tested), so only ENOMEM can fail here. */
		if (cf_keys[i].def &&
		    cf_set(cfg, &cf_keys[i], cf_keys[i].def, NULL, msg, sizeof(msg)) < 0)
			goto fail;
	}
	cfg->workers = cf_nproc();
	cf_default_maxima(cfg);
	return cfg;
fail:
	config_free(cfg);
	return NULL;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < CF_NKEYS; i++) {
		if (cf_is_string(cf_keys[i].type))
			free(*(char **)((char *)cfg + cf_keys[i].offset));
	}
	for (size_t i = 0; i < cfg->nexec_tasks; i++) {
		free(cfg->exec_tasks[i].name);
		config_free_argv(cfg->exec_tasks[i].argv);
	}
	free(cfg->exec_tasks);
	free(cfg->path);
	free(cfg);
}

bool config_keys_in_db(const struct config *cfg)
{
	return cfg->auth_source && !strcmp(cfg->auth_source, "postgres");
}

bool config_auth_on(const struct config *cfg)
{
	return (cfg->auth_keys && cfg->auth_keys[0]) || config_keys_in_db(cfg);
}

/* Only non-empty values count, so an empty line in an EnvironmentFile is harmless. */
void config_apply_env(struct config *cfg)
{
	static const struct {
		const char *var;
		size_t offset;
	} env[] = {
	    {"VALET_DATABASE_URL", OFF(database_url)},
	    {"VALET_LISTEN", OFF(listen)},
	};

	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
		const char *v = getenv(env[i].var);
		char **field = (char **)((char *)cfg + env[i].offset);
		char *copy;

		if (!v || !*v || !(copy = strdup(v)))
			continue;
		free(*field);
		*field = copy;
	}
}

/* ---- dump ---------------------------------------------------------------- */

static void cf_print_value(const struct config *cfg, const struct cf_key *k, FILE *out)
{
	const void *field = (const char *)cfg + k->offset;
	char buf[32];

	switch (k->type) {
	case CF_STRING:
	case CF_PATH:
	case CF_LISTEN:
	case CF_CHOICE:
		if (k->flags & CF_SECRET)
			config_print_secret(*(char *const *)field, out);
		else
			fputs(*(char *const *)field, out);
		break;
	case CF_ENUM:
		fputs(k->names[*(const int *)field], out);
		break;
	case CF_INT:
		fprintf(out, "%d", *(const int *)field);
		break;
	case CF_INT_AUTO:
		if (*(const int *)field == CONFIG_AUTO)
			fputs("auto", out);
		else
			fprintf(out, "%d", *(const int *)field);
		break;
	case CF_BOOL:
		fputs(*(const bool *)field ? "true" : "false", out);
		break;
	case CF_DURATION:
		fputs(config_fmt_duration(*(const int64_t *)field, buf, sizeof(buf)), out);
		break;
	case CF_SIZE:
		fputs(config_fmt_size(*(const size_t *)field, buf, sizeof(buf)), out);
		break;
	}
}

/* "key = value", without the newline. */
static void cf_print_line(const struct config *cfg, const struct cf_key *k, FILE *out)
{
	const char *s = cf_is_string(k->type) ? *(char *const *)((const char *)cfg + k->offset) : NULL;

	fprintf(out, "%s =", k->name);
	if (s && !*s)
		return;
	/* inih takes " ;" for an inline comment: a value that starts with
	 * ';' (user =;x) must follow the '=' directly to be read back. */
	if (!s || *s != ';')
		fputc(' ', out);
	cf_print_value(cfg, k, out);
}

void config_dump(const struct config *cfg, FILE *out)
{
	const char *section = NULL;

	fprintf(out, "# valetd configuration (%s)\n", cfg->path ? cfg->path : "built-in defaults");
	for (size_t i = 0; i < CF_NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];

		if (!section || strcmp(section, k->section))
			fprintf(out, "\n[%s]\n", k->section);
		section = k->section;
		cf_print_line(cfg, k, out);
		fputc('\n', out);
	}
	cf_dump_tasks(cfg, out);
}

size_t cf_printed_len(void (*print)(const void *what, FILE *out), const void *what)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return 0;
	print(what, f);
	if (fclose(f) != 0)
		len = 0;
	free(text);
	return len;
}

/* The key being checked by cf_print_key_line(), which cf_printed_len() calls. */
struct cf_line {
	const struct config *cfg;
	const struct cf_key *k;
};

static void cf_print_key_line(const void *what, FILE *out)
{
	const struct cf_line *l = what;

	cf_print_line(l->cfg, l->k, out);
}

/* ---- loading a file ------------------------------------------------------ */

/* Records the first error only; line 0 = no line. */
void cf_fail(struct cf_load *ld, int line, int err, const char *fmt, ...)
{
	char msg[CF_MSG];
	va_list ap;

	if (ld->err)
		return;
	ld->err = err;
	ld->err_line = line;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ld->errbuf || !ld->errlen)
		return;
	if (line > 0)
		snprintf(ld->errbuf, ld->errlen, "%s:%d: %s", ld->path, line, msg);
	else
		snprintf(ld->errbuf, ld->errlen, "%s: %s", ld->path, msg);
}

/*
 * What config_dump() prints for a string key must read back: a relative
 * path made absolute, or a password replaced by "***", may make a longer
 * line than the one that was read.
 */
static int cf_check_line(struct cf_load *ld, const struct cf_key *k)
{
	struct cf_line line = {ld->cfg, k};
	size_t len = cf_printed_len(cf_print_key_line, &line);

	if (len == 0) {
		cf_fail(ld, ld->lineno, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	if (len > CF_MAX_CHARS) {
		cf_fail(ld, ld->lineno, -EINVAL,
			"%s: too long once read (valetd -t -v would print %zu characters, at "
			"most %d)",
			k->name, len, CF_MAX_CHARS);
		return -EINVAL;
	}
	return 0;
}

static int cf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cf_load *ld = user;
	const struct cf_key *k;
	char msg[CF_MSG];
	size_t i;
	int rc;

	(void)section; /* ours is the same, but not cut at 50 bytes */
	if (ld->err)
		return 0;
	if (!ld->section) {
		cf_fail(ld, ld->lineno, -EINVAL, "key \"%s\" outside of any section", name);
		return 0;
	}
	if (ld->task >= 0)
		return cf_task_key(ld, name, value) == 0;
	k = cf_find_key(ld->section, name);
	if (!k) {
		cf_fail(ld, ld->lineno, -EINVAL, "unknown key \"%s\" in [%s]", name, ld->section);
		return 0;
	}
	i = (size_t)(k - cf_keys);
	if (ld->key_line[i]) {
		cf_fail(ld, ld->lineno, -EINVAL, "duplicate key \"%s\" in [%s] (first on line %d)",
			name, ld->section, ld->key_line[i]);
		return 0;
	}
	ld->key_line[i] = ld->lineno;
	rc = cf_set(ld->cfg, k, value, ld->dir, msg, sizeof(msg));
	if (rc < 0)
		cf_fail(ld, ld->lineno, rc, "%s", msg);
	else if (cf_is_string(k->type))
		rc = cf_check_line(ld, k);
	return rc == 0;
}

/* The end of a section (a new one starts, or the file ends). A [task.NAME]
 * without a command holds defaults for a C task: main.c checks the name
 * once plugins are loaded. */
static void cf_end_section(struct cf_load *ld)
{
	(void)ld;
}

/*
 * A "[...]" line, seen before inih parses it. Lines that inih will call a
 * syntax error (no ']' before an inline comment) are left to inih.
 */
static int cf_section(struct cf_load *ld, const char *line)
{
	const char *start = line + 1, *end = start;
	char *name;

	while (*end && *end != ']' && !(*end == ';' && isspace((unsigned char)end[-1])))
		end++;
	if (*end != ']')
		return 0;
	cf_end_section(ld);
	while (start < end && isspace((unsigned char)*start))
		start++;
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	if (!(name = strndup(start, (size_t)(end - start)))) {
		cf_fail(ld, ld->lineno, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	free(ld->section);
	ld->section = name;
	ld->section_line = ld->lineno;
	ld->task = -1;
	if (ld->err)
		return ld->err;
	if (cf_find_key(name, NULL))
		return 0;
	if (!strncmp(name, "task.", 5))
		return cf_task_section(ld, name + 5);
	cf_fail(ld, ld->lineno, -EINVAL, "unknown section [%s]", name);
	return -EINVAL;
}

/* inih's fgets()-style reader; see the top of the file. */
static char *cf_read_line(char *str, int num, void *stream)
{
	struct cf_load *ld = stream;
	ssize_t n;
	size_t len;
	char *p;

	if (ld->err)
		return NULL;
	n = getline(&ld->buf, &ld->bufcap, ld->fp);
	if (n < 0) {
		if (ferror(ld->fp))
			cf_fail(ld, 0, -EIO, "read error: %s", strerror(errno));
		else
			cf_end_section(ld);
		return NULL;
	}
	ld->lineno++;
	p = ld->buf;
	if (ld->lineno == 1 && !strncmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	/* Not just ' ' and '\t': inih would take "\f[jobs]" for a section
	 * that we never saw. The newline goes too: an empty line. */
	while (isspace((unsigned char)*p))
		p++;
	len = (size_t)n - (size_t)(p - ld->buf);
	if (len + 1 > (size_t)num) {
		cf_fail(ld, ld->lineno, -EINVAL, "line too long (more than %d characters)",
			num - 2);
		return NULL;
	}
	if (*p == '[' && cf_section(ld, p) < 0)
		return NULL;
	memcpy(str, p, len + 1);
	return str;
}

int64_t cf_num(const struct config *cfg, const struct cf_key *k)
{
	const void *field = (const char *)cfg + k->offset;

	if (k->type == CF_SIZE)
		return (int64_t)*(const size_t *)field;
	if (k->type == CF_DURATION)
		return *(const int64_t *)field;
	return *(const int *)field;
}

void cf_set_num(struct config *cfg, const struct cf_key *k, int64_t v)
{
	void *field = (char *)cfg + k->offset;

	if (k->type == CF_SIZE)
		*(size_t *)field = (size_t)v;
	else if (k->type == CF_DURATION)
		*(int64_t *)field = v;
	else
		*(int *)field = (int)v;
}

const char *cf_fmt_num(const struct cf_key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == CF_SIZE)
		return cf_fmt_size_none((uint64_t)v, buf, len);
	if (k->type == CF_DURATION)
		return cf_fmt_duration_none(v, buf, len);
	if (v == 0)
		return "none";
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

const char *cf_fmt_size_none(uint64_t bytes, char *buf, size_t len)
{
	return bytes ? config_fmt_size(bytes, buf, len) : "none";
}

const char *cf_fmt_duration_none(int64_t ms, char *buf, size_t len)
{
	return ms ? config_fmt_duration(ms, buf, len) : "none";
}

/* The file's directory, absolute (the file itself may be a symlink: not followed). */
static char *cf_file_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *abs;

	if (!slash)
		return realpath(".", NULL);
	dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!dir)
		return NULL;
	abs = realpath(dir, NULL);
	free(dir);
	return abs;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct cf_load ld = {
	    .cfg = cfg,
	    .path = path,
	    .task = -1,
	    .first_task = cfg->nexec_tasks,
	    .errbuf = err,
	    .errlen = errlen,
	};
	int saved_max_line = 0, rc, key_line[CF_NKEYS] = {0};
	struct stat st;
	char *copy;

	ld.key_line = key_line;
	if (err && errlen)
		err[0] = '\0';
	ld.fp = fopen(path, "re");
	if (!ld.fp) {
		rc = -errno;
		cf_fail(&ld, 0, rc, "cannot open: %s", strerror(-rc));
		return rc;
	}
	/* A device (/dev/zero) would be read for ever, one endless line. */
	if (fstat(fileno(ld.fp), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
		cf_fail(&ld, 0, -EINVAL, "not a regular file");
		fclose(ld.fp);
		return -EINVAL;
	}
	ld.dir = cf_file_dir(path);
	if (!ld.dir) {
		cf_fail(&ld, 0, -errno, "cannot resolve its directory: %s", strerror(errno));
		goto out;
	}
	if (!(copy = strdup(path))) {
		cf_fail(&ld, 0, -ENOMEM, "out of memory");
		goto out;
	}
	free(cfg->path);
	cfg->path = copy;

	saved_max_line = ini_max_line;
	ini_max_line = CF_MAX_LINE;
	rc = ini_parse_stream(cf_read_line, &ld, cf_handler, &ld);
	ini_max_line = saved_max_line;

	if (rc > 0 && (!ld.err || (ld.err_line > 0 && rc < ld.err_line))) {
		ld.err = 0; /* an earlier line inih could not parse wins */
		cf_fail(&ld, rc, -EINVAL, "syntax error");
	} else if (rc < 0 && !ld.err) {
		cf_fail(&ld, 0, -ENOMEM, "out of memory");
	}
	if (!ld.err)
		cf_check(&ld);
out:
	fclose(ld.fp);
	free(ld.dir);
	free(ld.buf);
	free(ld.section);
	free(ld.task_lines);
	return ld.err;
}
