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
 *  - strips leading white space, which turns off inih's continuation lines
 *    (an indented line is an ordinary key, not a second value for the
 *    previous key that would then look like a duplicate);
 *  - ends the parse at the first error.
 * inih reports the lines it cannot parse itself (no '=', no ']') by
 * returning the first such line; whichever error comes first is reported.
 *
 * [task.NAME] sections declare exec tasks. The command is split like a
 * shell splits words, without any expansion, and its program is made
 * absolute at load time, so what -t checks is what will run. Relative paths
 * in a file (plugin_dir, commands with a slash) are relative to the file's
 * directory, so a config works whatever directory valetd starts in.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/*
 * Debian builds inih with runtime options, which lets us raise its line
 * limit (200 bytes) for long commands. Other builds may not have the
 * variable: the weak reference is then NULL and the limit stays.
 */
#pragma weak ini_max_line
#define CF_MAX_LINE 4096

#define CF_MSG 512
#define CF_TASK_NAME_MAX 64

#define KIB (1LL << 10)
#define GIB (1LL << 30)
#define TIB (1LL << 40)
#define SEC 1000LL
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)

_Static_assert(sizeof(enum log_format) == sizeof(int), "enum fields are written as int");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum fields are written as int");

enum cf_type {
	CF_STRING,   /* char *; min = minimal length */
	CF_PATH,     /* char *, relative to the file's directory */
	CF_LISTEN,   /* char *, checked by config_parse_listen() */
	CF_CHOICE,   /* char *, one of names[] */
	CF_ENUM,     /* int (an enum), index into names[] */
	CF_INT,      /* int */
	CF_BOOL,     /* bool */
	CF_DURATION, /* int64_t milliseconds */
	CF_SIZE,     /* size_t bytes */
};

#define CF_SECRET 1 /* config_dump() hides the password */

struct cf_key {
	const char *section;
	const char *name;
	enum cf_type type;
	size_t offset;
	const char *def; /* NULL: computed by config_new() */
	int64_t min, max;
	const char *const *names;
	unsigned flags;
};

static const char *const cf_backends[] = {"memory", "postgres", NULL};
static const char *const cf_formats[] = {"text", "json", NULL};
static const char *const cf_levels[] = {"debug", "info", "warn", "error", NULL};

#define OFF(field) offsetof(struct config, field)
#define KEY(sec, key, t, field, dflt) \
	.section = sec, .name = key, .type = t, .offset = OFF(field), .def = dflt

static bool cf_is_string(enum cf_type type)
{
	return type == CF_STRING || type == CF_PATH || type == CF_LISTEN || type == CF_CHOICE;
}

static const struct cf_key cf_keys[] = {
	{KEY("server", "listen", CF_LISTEN, listen, "127.0.0.1:8080")},
	{KEY("server", "cors_origins", CF_STRING, cors_origins, "")},
	{KEY("server", "max_body", CF_SIZE, max_body_bytes, "1M"), .min = KIB, .max = GIB},
	{KEY("server", "access_log", CF_BOOL, access_log, "true")},
	{KEY("queue", "workers", CF_INT, workers, NULL), .min = 1, .max = 1024},
	{KEY("queue", "capacity", CF_INT, queue_capacity, "100000"), .min = 1, .max = 10000000},
	{KEY("queue", "shutdown_grace", CF_DURATION, shutdown_grace_ms, "10s"), .min = 0, .max = HOUR},
	{KEY("jobs", "default_timeout", CF_DURATION, default_timeout_ms, "60s"), .min = 1, .max = 30 * DAY},
	{KEY("jobs", "max_timeout", CF_DURATION, max_timeout_ms, "1h"), .min = 1, .max = 30 * DAY},
	{KEY("jobs", "max_result_size", CF_SIZE, max_result_bytes, "1M"), .min = KIB, .max = GIB},
	{KEY("jobs", "max_output_size", CF_SIZE, max_output_bytes, "1M"), .min = KIB, .max = GIB},
	{KEY("sandbox", "user", CF_STRING, user, "nobody"), .min = 1},
	{KEY("sandbox", "memory_limit", CF_SIZE, memory_limit_bytes, "256M"), .min = 0, .max = TIB},
	{KEY("sandbox", "cpu_limit", CF_DURATION, cpu_limit_ms, "0"), .min = 0, .max = 30 * DAY},
	{KEY("sandbox", "max_files", CF_INT, max_files, "64"), .min = 0, .max = 1048576},
	{KEY("sandbox", "max_processes", CF_INT, max_processes, "64"), .min = 0, .max = 1000000},
	{KEY("sandbox", "max_file_size", CF_SIZE, max_file_size, "16M"), .min = 0, .max = TIB},
	{KEY("storage", "backend", CF_CHOICE, storage, "memory"), .names = cf_backends},
	{KEY("storage", "database_url", CF_STRING, database_url, ""), .flags = CF_SECRET},
	{KEY("tasks", "plugin_dir", CF_PATH, plugin_dir, "")},
	{KEY("log", "format", CF_ENUM, log_format, "text"), .names = cf_formats},
	{KEY("log", "level", CF_ENUM, log_level, "info"), .names = cf_levels},
};

#define CF_NKEYS (sizeof(cf_keys) / sizeof(cf_keys[0]))

/* ---- formatting and parsing values --------------------------------------- */

static const char *cf_fmt_duration(int64_t ms, char *buf, size_t len)
{
	static const struct { int64_t ms; const char *unit; } units[] = {
		{DAY, "d"}, {HOUR, "h"}, {60 * SEC, "m"}, {SEC, "s"},
	};

	for (size_t i = 0; ms && i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return buf;
		}
	}
	snprintf(buf, len, ms ? "%lldms" : "%llds", (long long)ms);
	return buf;
}

static const char *cf_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "TGMk";

	for (int i = 0; bytes && units[i]; i++) {
		int shift = 40 - 10 * i;

		if (bytes % (1ULL << shift) == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(bytes >> shift), units[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
	return buf;
}

/*
 * A decimal number "123" or "1.25" at *sp. The fraction comes back in
 * billionths; more_digits says a digit beyond the ninth was not zero.
 */
static int cf_number(const char **sp, uint64_t *ip, uint64_t *frac9, bool *more_digits)
{
	const char *s = *sp;
	uint64_t i = 0, f = 0;
	int nd = 0;

	*more_digits = false;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		if (i >= 100000000000000000ULL)
			return -EINVAL;
		i = i * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return -EINVAL;
		for (; isdigit((unsigned char)*s); s++) {
			if (nd < 9) {
				f = f * 10 + (uint64_t)(*s - '0');
				nd++;
			} else if (*s != '0') {
				*more_digits = true;
			}
		}
	}
	for (; nd < 9; nd++)
		f *= 10;
	*ip = i;
	*frac9 = f;
	*sp = s;
	return 0;
}

/* Go-style: "1h30m" is accepted too. Nonzero values under 1ms are refused. */
int config_parse_duration_ms(const char *s, int64_t *ms)
{
	static const struct { const char *name; uint64_t ns; } units[] = {
		{"us", 1000ULL}, {"ms", 1000000ULL}, {"s", 1000000000ULL},
		{"m", 60000000000ULL}, {"h", 3600000000000ULL}, {"d", 86400000000000ULL},
	};
	const char *p = s;
	uint64_t total = 0, ip, frac, unit, part;
	bool more;

	if (!s || !*s)
		return -EINVAL;
	do {
		const char *start = p;
		size_t n = 0, i;

		if (cf_number(&p, &ip, &frac, &more) < 0)
			return -EINVAL;
		while (p[n] >= 'a' && p[n] <= 'z')
			n++;
		if (n == 0) {
			if (start != s || *p) /* a bare number is seconds, alone */
				return -EINVAL;
			unit = 1000000000ULL;
		} else {
			for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
				if (strlen(units[i].name) == n && !strncmp(p, units[i].name, n))
					break;
			if (i == sizeof(units) / sizeof(units[0]))
				return -EINVAL;
			unit = units[i].ns;
			p += n;
		}
		frac += more; /* round up */
		if (ip > UINT64_MAX / unit / 2)
			return -EINVAL;
		part = ip * unit;
		if (unit >= 1000000000ULL)
			part += frac * (unit / 1000000000ULL);
		else
			part += (frac * unit + 999999999ULL) / 1000000000ULL;
		if (part > UINT64_MAX / 2 - total)
			return -EINVAL;
		total += part;
	} while (*p);
	if (total && total < 1000000ULL)
		return -EINVAL;
	*ms = (int64_t)((total + 999999ULL) / 1000000ULL);
	return 0;
}

/* Binary units, any case: 512k 512K 64M 64MB 1MiB 1G 2T; bare = bytes. */
int config_parse_size(const char *s, size_t *bytes)
{
	static const char units[] = "kmgt";
	const char *p = s, *u;
	uint64_t ip, frac, v;
	int shift = 0;
	bool more;

	if (!s || cf_number(&p, &ip, &frac, &more) < 0)
		return -EINVAL;
	if (*p && (u = strchr(units, tolower((unsigned char)*p)))) {
		shift = 10 * (int)(u - units + 1);
		p++;
		if (*p == 'i' || *p == 'I')
			p++;
	}
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p || (shift == 0 && (frac || more)) || ip > (UINT64_MAX >> shift))
		return -EINVAL;
	v = (ip << shift) + (((frac / 1000) << shift) / 1000000); /* fraction rounds down */
	if (v < (ip << shift) || v > SIZE_MAX)
		return -EINVAL;
	*bytes = (size_t)v;
	return 0;
}

static bool cf_valid_hostname(const char *h, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)h[i]) && !strchr("-._", h[i]))
			return false;
	return len > 0;
}

/* "127.0.0.1:8080", "[::1]:8080", ":8080" (all IPv4), "localhost:8080". */
int config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *h, *colon;
	size_t hl;
	long p = 0;
	int nd = 0;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		char tmp[INET6_ADDRSTRLEN + 1];
		const char *end = strchr(s, ']');
		struct in6_addr a6;

		if (!end || end[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
		/* A zone ("fe80::1%eth0") is left to getaddrinfo(). */
		if (hl == 0 || strcspn(h, "%]") >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, h, strcspn(h, "%]"));
		tmp[strcspn(h, "%]")] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		h = s;
		hl = (size_t)(colon - s);
		if (hl == 0) {
			h = "0.0.0.0";
			hl = strlen(h);
		} else if (!cf_valid_hostname(h, hl)) {
			return -EINVAL;
		}
	}
	for (const char *d = colon + 1; *d; d++, nd++) {
		if (!isdigit((unsigned char)*d) || nd >= 5)
			return -EINVAL;
		p = p * 10 + (*d - '0');
	}
	if (nd == 0 || p > 65535 || hl + 1 > hostlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

static int cf_choice(const char *const *names, const char *value)
{
	for (int i = 0; names[i]; i++)
		if (!strcasecmp(names[i], value))
			return i;
	return -1;
}

static void cf_not_one_of(const char *label, const char *value, const char *const *names,
			  char *msg, size_t msglen)
{
	size_t n = (size_t)snprintf(msg, msglen, "%s: \"%s\" is not one of ", label, value);

	for (int i = 0; names[i] && n < msglen; i++)
		n += (size_t)snprintf(msg + n, msglen - n, "%s%s", i ? ", " : "", names[i]);
}

static int cf_int(const char *label, const char *value, int64_t min, int64_t max, int64_t *out,
		  char *msg, size_t msglen)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (end == value || *end || isspace((unsigned char)*value)) {
		snprintf(msg, msglen, "%s: \"%s\" is not a number", label, value);
		return -EINVAL;
	}
	if (errno == ERANGE || v < min || v > max) {
		snprintf(msg, msglen, "%s: must be between %lld and %lld", label, (long long)min,
			 (long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int cf_duration(const char *label, const char *value, int64_t min, int64_t max,
		       int64_t *ms, char *msg, size_t msglen)
{
	char lo[32], hi[32];
	int64_t v;

	if (config_parse_duration_ms(value, &v) < 0) {
		snprintf(msg, msglen,
			 "%s: \"%s\" is not a duration (use 500ms, 30s, 1.5s, 2m, 1h, 1d, 1h30m "
			 "or a number of seconds; at least 1ms unless 0)",
			 label, value);
		return -EINVAL;
	}
	if (v < min || v > max) {
		snprintf(msg, msglen, "%s: must be between %s and %s", label,
			 cf_fmt_duration(min, lo, sizeof(lo)), cf_fmt_duration(max, hi, sizeof(hi)));
		return -EINVAL;
	}
	*ms = v;
	return 0;
}

static int cf_size(const char *label, const char *value, int64_t min, int64_t max, size_t *out,
		   char *msg, size_t msglen)
{
	char lo[32], hi[32];
	size_t v;

	if (config_parse_size(value, &v) < 0) {
		snprintf(msg, msglen,
			 "%s: \"%s\" is not a size (use 512k, 64M, 1G, 1MiB, 64MB or a number of "
			 "bytes)",
			 label, value);
		return -EINVAL;
	}
	if ((uint64_t)v < (uint64_t)min || (uint64_t)v > (uint64_t)max) {
		snprintf(msg, msglen, "%s: must be between %s and %s", label,
			 cf_fmt_size((uint64_t)min, lo, sizeof(lo)),
			 cf_fmt_size((uint64_t)max, hi, sizeof(hi)));
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int cf_bool(const char *label, const char *value, bool *out, char *msg, size_t msglen)
{
	static const char *const yes[] = {"true", "yes", "on", "1", NULL};
	static const char *const no[] = {"false", "no", "off", "0", NULL};

	if (cf_choice(yes, value) >= 0) {
		*out = true;
	} else if (cf_choice(no, value) >= 0) {
		*out = false;
	} else {
		snprintf(msg, msglen, "%s: \"%s\" is not a boolean (use true/false, yes/no, on/off or 1/0)",
			 label, value);
		return -EINVAL;
	}
	return 0;
}

/* dir/rel, or rel itself when it is empty or absolute or there is no dir. */
static char *cf_join(const char *dir, const char *rel)
{
	char *out;
	size_t dl;

	if (!dir || !*rel || rel[0] == '/')
		return strdup(rel);
	dl = strlen(dir);
	if (asprintf(&out, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", rel) < 0)
		return NULL;
	return out;
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
			snprintf(msg, msglen,
				 "%s: \"%s\" is not an address (use HOST:PORT, [IPV6]:PORT or :PORT, "
				 "port 0-65535)",
				 k->name, value);
			return -EINVAL;
		}
		i = k->type == CF_CHOICE ? cf_choice(k->names, value) : 0;
		if (i < 0) {
			cf_not_one_of(k->name, value, k->names, msg, msglen);
			return -EINVAL;
		}
		if (k->type == CF_CHOICE)
			s = strdup(k->names[i]);
		else
			s = k->type == CF_PATH ? cf_join(dir, value) : strdup(value);
		if (!s) {
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
		free(*(char **)field);
		*(char **)field = s;
		return 0;
	case CF_ENUM:
		i = cf_choice(k->names, value);
		if (i < 0) {
			cf_not_one_of(k->name, value, k->names, msg, msglen);
			return -EINVAL;
		}
		*(int *)field = i;
		return 0;
	case CF_INT:
		rc = cf_int(k->name, value, k->min, k->max, &n, msg, msglen);
		if (rc == 0)
			*(int *)field = (int)n;
		return rc;
	case CF_BOOL:
		return cf_bool(k->name, value, (bool *)field, msg, msglen);
	case CF_DURATION:
		return cf_duration(k->name, value, k->min, k->max, (int64_t *)field, msg, msglen);
	case CF_SIZE:
		return cf_size(k->name, value, k->min, k->max, (size_t *)field, msg, msglen);
	}
	return -EINVAL;
}

static const struct cf_key *cf_find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < CF_NKEYS; i++)
		if (!strcmp(cf_keys[i].section, section) && (!name || !strcmp(cf_keys[i].name, name)))
			return &cf_keys[i];
	return NULL;
}

/* ---- config objects ------------------------------------------------------ */

static int cf_nproc(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

struct config *config_new(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char msg[CF_MSG];

	if (!cfg)
		return NULL;
	for (size_t i = 0; i < CF_NKEYS; i++) {
		/* The defaults are valid (tested), so only ENOMEM can fail here. */
		if (cf_keys[i].def && cf_set(cfg, &cf_keys[i], cf_keys[i].def, NULL, msg,
					     sizeof(msg)) < 0)
			goto fail;
	}
	cfg->workers = cf_nproc();
	return cfg;
fail:
	config_free(cfg);
	return NULL;
}

static void cf_free_argv(char **argv)
{
	for (char **a = argv; a && *a; a++)
		free(*a);
	free(argv);
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
		cf_free_argv(cfg->exec_tasks[i].argv);
	}
	free(cfg->exec_tasks);
	free(cfg->path);
	free(cfg);
}

/* Only non-empty values count, so an empty line in an EnvironmentFile is harmless. */
void config_apply_env(struct config *cfg)
{
	static const struct { const char *var; size_t offset; } env[] = {
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

/* postgres://user:secret@host/db -> postgres://user:***@host/db; password=x -> password=*** */
static void cf_print_secret(const char *url, FILE *out)
{
	const char *auth = strstr(url, "://"), *at, *slash, *colon, *pw;

	if (auth) {
		auth += 3;
		at = strchr(auth, '@');
		slash = strchr(auth, '/');
		colon = at && (!slash || at < slash) ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			fprintf(out, "%.*s***%s", (int)(colon + 1 - url), url, at);
			return;
		}
	}
	pw = strstr(url, "password=");
	if (pw) {
		fprintf(out, "%.*s***%s", (int)(pw + 9 - url), url, pw + 9 + strcspn(pw + 9, " "));
		return;
	}
	fputs(url, out);
}

/* Written so that the command splitter reads it back the same. */
static void cf_print_arg(const char *arg, FILE *out)
{
	if (*arg && !arg[strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789_./:=@%+,-")]) {
		fputs(arg, out);
		return;
	}
	fputc('\'', out);
	for (; *arg; arg++) {
		if (*arg == '\'')
			fputs("'\\''", out);
		else
			fputc(*arg, out);
	}
	fputc('\'', out);
}

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
			cf_print_secret(*(char *const *)field, out);
		else
			fputs(*(char *const *)field, out);
		break;
	case CF_ENUM:
		fputs(k->names[*(const int *)field], out);
		break;
	case CF_INT:
		fprintf(out, "%d", *(const int *)field);
		break;
	case CF_BOOL:
		fputs(*(const bool *)field ? "true" : "false", out);
		break;
	case CF_DURATION:
		fputs(cf_fmt_duration(*(const int64_t *)field, buf, sizeof(buf)), out);
		break;
	case CF_SIZE:
		fputs(cf_fmt_size(*(const size_t *)field, buf, sizeof(buf)), out);
		break;
	}
}

void config_dump(const struct config *cfg, FILE *out)
{
	const char *section = NULL;
	char buf[32];

	fprintf(out, "# valetd configuration (%s)\n", cfg->path ? cfg->path : "built-in defaults");
	for (size_t i = 0; i < CF_NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];

		if (!section || strcmp(section, k->section))
			fprintf(out, "\n[%s]\n", k->section);
		section = k->section;
		fprintf(out, "%s = ", k->name);
		cf_print_value(cfg, k, out);
		fputc('\n', out);
	}
	for (size_t i = 0; i < cfg->nexec_tasks; i++) {
		const struct config_exec_task *t = &cfg->exec_tasks[i];

		fprintf(out, "\n[task.%s]\ncommand =", t->name);
		for (char **a = t->argv; a && *a; a++) {
			fputc(' ', out);
			cf_print_arg(*a, out);
		}
		fputc('\n', out);
		if (t->timeout_ms)
			fprintf(out, "timeout = %s\n", cf_fmt_duration(t->timeout_ms, buf, sizeof(buf)));
	}
}

/* ---- loading a file ------------------------------------------------------ */

struct cf_task_lines {
	int section, command, timeout;
};

struct cf_load {
	struct config *cfg;
	const char *path;     /* as given, for messages */
	char *dir;            /* absolute directory of the file */
	FILE *fp;
	char *buf;            /* getline() */
	size_t bufcap;
	int lineno;
	char *section;        /* current section, NULL before the first */
	int section_line;
	long task;            /* index of the current [task.NAME] or -1 */
	size_t first_task;    /* tasks from this file start here */
	struct cf_task_lines *task_lines; /* [i - first_task] */
	int key_line[CF_NKEYS];
	int err;              /* the first error, 0 = none yet */
	int err_line;
	char *errbuf;
	size_t errlen;
};

/* Records the first error only; line 0 = no line. */
__attribute__((format(printf, 4, 5))) static void cf_fail(struct cf_load *ld, int line, int err,
							  const char *fmt, ...)
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
 * Split like a shell, without expansion: white space separates words,
 * '...' is literal, "..." allows \" \\ \$ \` escapes, and a backslash
 * outside quotes escapes any character. Returns a new NULL-terminated argv.
 */
static int cf_split(const char *s, char ***argvp, const char **why)
{
	char **argv = calloc(1, sizeof(*argv)), **grown, *word = malloc(strlen(s) + 1);
	size_t argc = 0, n;

	if (!argv || !word)
		goto nomem;
	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		for (n = 0; *s && !isspace((unsigned char)*s);) {
			if (*s == '\'') {
				for (s++; *s && *s != '\''; )
					word[n++] = *s++;
				if (!*s++)
					goto unterminated;
			} else if (*s == '"') {
				for (s++; *s && *s != '"'; ) {
					if (*s == '\\' && s[1] && strchr("\"\\$`", s[1]))
						s++;
					word[n++] = *s++;
				}
				if (!*s++)
					goto unterminated;
			} else if (*s == '\\') {
				if (!*++s) {
					*why = "trailing backslash";
					goto fail;
				}
				word[n++] = *s++;
			} else {
				word[n++] = *s++;
			}
		}
		grown = realloc(argv, (argc + 2) * sizeof(*argv));
		if (!grown)
			goto nomem;
		argv = grown;
		argv[argc + 1] = NULL;
		if (!(argv[argc] = strndup(word, n)))
			goto nomem;
		argc++;
	}
	free(word);
	*argvp = argv;
	return 0;
unterminated:
	*why = "unterminated quote";
fail:
	free(word);
	cf_free_argv(argv);
	return -EINVAL;
nomem:
	free(word);
	cf_free_argv(argv);
	return -ENOMEM;
}

static bool cf_is_exec(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * A bare program name is looked up in PATH now. Relative PATH entries
 * (including the empty one) are skipped: what runs must not depend on the
 * directory valetd happens to start in.
 */
static int cf_path_lookup(const char *name, char **out)
{
	const char *path = getenv("PATH"), *p, *end;
	char *cand;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = end + 1) {
		end = strchrnul(p, ':');
		if (*p == '/') {
			if (asprintf(&cand, "%.*s/%s", (int)(end - p), p, name) < 0)
				return -ENOMEM;
			if (cf_is_exec(cand)) {
				*out = cand;
				return 0;
			}
			free(cand);
		}
		if (!*end)
			return -ENOENT;
	}
}

static int cf_task_command(struct cf_load *ld, struct config_exec_task *t, const char *value)
{
	const char *why = NULL;
	char **argv = NULL, *prog = NULL;
	int rc = cf_split(value, &argv, &why);

	if (rc == -EINVAL) {
		cf_fail(ld, ld->lineno, rc, "task.%s: command: %s", t->name, why);
		return rc;
	}
	if (rc < 0)
		goto nomem;
	if (!argv[0]) {
		cf_fail(ld, ld->lineno, -EINVAL, "task.%s: command is empty", t->name);
		rc = -EINVAL;
		goto fail;
	}
	if (strchr(argv[0], '/')) {
		if (!(prog = cf_join(ld->dir, argv[0])))
			goto nomem;
	} else if ((rc = cf_path_lookup(argv[0], &prog)) == -ENOENT) {
		cf_fail(ld, ld->lineno, rc, "task.%s: command \"%s\": not found in PATH", t->name,
			argv[0]);
		goto fail;
	} else if (rc < 0) {
		goto nomem;
	}
	if (!cf_is_exec(prog)) {
		cf_fail(ld, ld->lineno, -EINVAL, "task.%s: command \"%s\": not an executable file",
			t->name, prog);
		rc = -EINVAL;
		goto fail;
	}
	free(argv[0]);
	argv[0] = prog;
	cf_free_argv(t->argv);
	t->argv = argv;
	return 0;
nomem:
	rc = -ENOMEM;
	cf_fail(ld, ld->lineno, rc, "out of memory");
fail:
	free(prog);
	cf_free_argv(argv);
	return rc;
}

static int cf_task_key(struct cf_load *ld, const char *name, const char *value)
{
	struct config_exec_task *t = &ld->cfg->exec_tasks[ld->task];
	struct cf_task_lines *tl = &ld->task_lines[(size_t)ld->task - ld->first_task];
	char label[CF_TASK_NAME_MAX + 16], msg[CF_MSG];
	int *seen, rc;

	if (!strcmp(name, "command")) {
		seen = &tl->command;
	} else if (!strcmp(name, "timeout")) {
		seen = &tl->timeout;
	} else {
		cf_fail(ld, ld->lineno, -EINVAL, "unknown key \"%s\" in [%s]", name, ld->section);
		return -EINVAL;
	}
	if (*seen) {
		cf_fail(ld, ld->lineno, -EINVAL, "duplicate key \"%s\" in [%s] (first on line %d)",
			name, ld->section, *seen);
		return -EINVAL;
	}
	*seen = ld->lineno;
	if (seen == &tl->command)
		return cf_task_command(ld, t, value);
	snprintf(label, sizeof(label), "task.%s: timeout", t->name);
	rc = cf_duration(label, value, 0, 30 * DAY, &t->timeout_ms, msg, sizeof(msg));
	if (rc < 0)
		cf_fail(ld, ld->lineno, rc, "%s", msg);
	return rc;
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
	return rc == 0;
}

/* The end of a section (a new one starts, or the file ends). */
static void cf_end_section(struct cf_load *ld)
{
	if (ld->task >= 0 && !ld->cfg->exec_tasks[ld->task].argv)
		cf_fail(ld, ld->section_line, -EINVAL, "task.%s: missing command",
			ld->cfg->exec_tasks[ld->task].name);
}

static int cf_task_section(struct cf_load *ld, const char *name)
{
	struct config *cfg = ld->cfg;
	size_t len = strlen(name), n = cfg->nexec_tasks;
	struct config_exec_task *tasks;
	struct cf_task_lines *lines;

	if (len < 1 || len > CF_TASK_NAME_MAX ||
	    name[strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")]) {
		cf_fail(ld, ld->lineno, -EINVAL,
			"invalid task name \"%s\" (use 1 to 64 of A-Z a-z 0-9 _ . -)", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cfg->exec_tasks[i].name, name))
			continue;
		if (i >= ld->first_task)
			cf_fail(ld, ld->lineno, -EINVAL, "duplicate section [task.%s] (first on line %d)",
				name, ld->task_lines[i - ld->first_task].section);
		else
			cf_fail(ld, ld->lineno, -EINVAL, "duplicate section [task.%s]", name);
		return -EINVAL;
	}
	tasks = realloc(cfg->exec_tasks, (n + 1) * sizeof(*tasks));
	if (tasks)
		cfg->exec_tasks = tasks;
	lines = realloc(ld->task_lines, (n + 1 - ld->first_task) * sizeof(*lines));
	if (lines)
		ld->task_lines = lines;
	if (!tasks || !lines || !(tasks[n].name = strdup(name))) {
		cf_fail(ld, ld->lineno, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	tasks[n].argv = NULL;
	tasks[n].timeout_ms = 0;
	lines[n - ld->first_task] = (struct cf_task_lines){.section = ld->lineno};
	cfg->nexec_tasks = n + 1;
	ld->task = (long)n;
	return 0;
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
	while (*p == ' ' || *p == '\t')
		p++;
	len = (size_t)n - (size_t)(p - ld->buf);
	if (len + 1 > (size_t)num) {
		cf_fail(ld, ld->lineno, -EINVAL, "line too long (more than %d characters)", num - 2);
		return NULL;
	}
	if (*p == '[' && cf_section(ld, p) < 0)
		return NULL;
	memcpy(str, p, len + 1);
	return str;
}

/* Checks that involve more than one key, once the whole file is read. */
static void cf_check(struct cf_load *ld)
{
	const struct config *cfg = ld->cfg;
	int dline = ld->key_line[cf_find_key("jobs", "default_timeout") - cf_keys];
	int mline = ld->key_line[cf_find_key("jobs", "max_timeout") - cf_keys];
	char a[32], b[32];

	if (cfg->max_timeout_ms < cfg->default_timeout_ms) {
		cf_fail(ld, mline ? mline : dline, -EINVAL,
			"max_timeout (%s) is less than default_timeout (%s)",
			cf_fmt_duration(cfg->max_timeout_ms, a, sizeof(a)),
			cf_fmt_duration(cfg->default_timeout_ms, b, sizeof(b)));
		return;
	}
	for (size_t i = ld->first_task; i < cfg->nexec_tasks; i++) {
		const struct config_exec_task *t = &cfg->exec_tasks[i];

		if (t->timeout_ms > cfg->max_timeout_ms) {
			cf_fail(ld, ld->task_lines[i - ld->first_task].timeout, -EINVAL,
				"task.%s: timeout (%s) is more than max_timeout (%s)", t->name,
				cf_fmt_duration(t->timeout_ms, a, sizeof(a)),
				cf_fmt_duration(cfg->max_timeout_ms, b, sizeof(b)));
			return;
		}
	}
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
		.cfg = cfg, .path = path, .task = -1, .first_task = cfg->nexec_tasks,
		.errbuf = err, .errlen = errlen,
	};
	int saved_max_line = 0, rc;
	char *copy;

	if (err && errlen)
		err[0] = '\0';
	ld.fp = fopen(path, "re");
	if (!ld.fp) {
		rc = -errno;
		cf_fail(&ld, 0, rc, "cannot open: %s", strerror(-rc));
		return rc;
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

	if (&ini_max_line) {
		saved_max_line = ini_max_line;
		ini_max_line = CF_MAX_LINE;
	}
	rc = ini_parse_stream(cf_read_line, &ld, cf_handler, &ld);
	if (&ini_max_line)
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
