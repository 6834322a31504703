/*
 * config_value.c - one configuration value at a time: parsing, checking
 * and printing durations, sizes, listen addresses, booleans, choices and
 * numbers, relative paths, the command of an exec task, and a list of host
 * names.
 *
 * Theory of operation
 *
 * config.c owns the table of keys and the file; this file knows nothing of
 * either. It turns one string into one value and back, so that a default
 * and a line of the file go through the same code, and what config_dump()
 * prints, the parsers read back unchanged.
 *
 * Numbers are read as an integer part and a fraction in billionths, so
 * "1.5s" and "0.5M" need no floating point and round the same way on
 * every machine: durations round up to the next millisecond (and a
 * nonzero duration under 1ms is refused rather than becoming 0, which
 * means "none"), sizes round down to the byte.
 *
 * The checked parsers (config_value_*) add the key's label, the accepted
 * forms and the range to the message, so config.c only prefixes
 * "file:line: ".
 *
 * A command is split like a shell splits words, without any expansion. A
 * bare program name is resolved in PATH when the file is loaded, never
 * later, so what valetd -t checks is what will run.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "config_value.h"
#include "strv.h"

/* ---- formatting ---------------------------------------------------------- */

const char *config_fmt_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {
	    {86400000, "d"},
	    {3600000, "h"},
	    {60000, "m"},
	    {1000, "s"},
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

const char *config_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "TGMk";

	for (int i = 0; bytes && units[i]; i++) {
		int shift = 40 - 10 * i;

		if (bytes % (1ULL << shift) == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(bytes >> shift),
				 units[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
	return buf;
}

/* The end of a key=value conninfo value at v: up to white space that is
 * neither quoted ('...') nor escaped (\), as libpq reads it (a backslash
 * escapes in both; what follows a closing quote directly is no valid
 * conninfo: hidden too). */
static const char *conninfo_value_end(const char *v)
{
	bool quoted = false;

	for (; *v; v++) {
		if (*v == '\\' && v[1])
			v++;
		else if (*v == '\'')
			quoted = !quoted;
		else if (!quoted && isspace((unsigned char)*v))
			break;
	}
	return v;
}

/* The end of a URL's query value at v: the next &, or the end of the
 * string when a / or @ comes before it - the text left would otherwise
 * read differently (a user info where a / had hidden it), and a dump must
 * read back to itself. */
static const char *url_value_end(const char *v)
{
	size_t n = strcspn(v, "&");
	size_t cut = strcspn(v, "/@");

	return cut < n ? v + strlen(v) : v + n;
}

/*
 * postgres://user:secret@host/db -> postgres://user:***@host/db, and every
 * password=x -> password=*** (a URL's query parameter: url_value_end();
 * a key=value string's value: conninfo_value_end()). A URL is what starts with
 * postgres:// or postgresql://, and its user info what libpq takes for it:
 * up to the first @, unless a / comes first. What is printed prints itself
 * again (the dump reads back to the same dump).
 */
void config_print_secret(const char *url, FILE *out)
{
	const char *auth = NULL, *p = url, *end, *colon, *pw;

	/* A URL as libpq tells one: by its prefix. */
	if (!strncmp(url, "postgresql://", 13))
		auth = url + 13;
	else if (!strncmp(url, "postgres://", 11))
		auth = url + 11;
	if (auth) {
		end = auth + strcspn(auth, "@/");
		colon = *end == '@' ? memchr(auth, ':', (size_t)(end - auth)) : NULL;
		if (colon) {
			fprintf(out, "%.*s***", (int)(colon + 1 - url), url);
			p = end;
		}
	}
	while ((pw = strstr(p, "password="))) {
		fprintf(out, "%.*s***", (int)(pw + 9 - p), p);
		p = auth ? url_value_end(pw + 9) : conninfo_value_end(pw + 9);
	}
	fputs(p, out);
}

/* Written so that the command splitter reads it back the same, and so that
 * inih reads the line back whole: it takes white space then ';' for an
 * inline comment, so a ';' is written outside the quotes, escaped. */
void config_print_arg(const char *arg, FILE *out)
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
		else if (*arg == ';')
			fputs("'\\;'", out);
		else
			fputc(*arg, out);
	}
	fputc('\'', out);
}

/* ---- parsing ------------------------------------------------------------- */

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
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
	    {"us", 1000ULL},	   {"ms", 1000000ULL},	    {"s", 1000000000ULL},
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

/* ---- checked values, with a message -------------------------------------- */

int config_choice(const char *const *names, const char *value)
{
	for (int i = 0; names[i]; i++)
		if (!strcasecmp(names[i], value))
			return i;
	return -1;
}

void config_not_one_of(const char *label, const char *value, const char *const *names, char *msg,
		       size_t msglen)
{
	size_t n = (size_t)snprintf(msg, msglen, "%s: \"%s\" is not one of ", label, value);

	for (int i = 0; names[i] && n < msglen; i++)
		n += (size_t)snprintf(msg + n, msglen - n, "%s%s", i ? ", " : "", names[i]);
}

int config_value_int(const char *label, const char *value, int64_t min, int64_t max, int64_t *out,
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

int config_value_profile(const char *label, const char *value, enum sbx_profile *out, char *msg,
			 size_t msglen)
{
	static const char *const names[] = {"strict", "exec", "exec+net", NULL};
	size_t len = strcspn(value, "@");

	if (policy_profile_parse(value, out) == 0)
		return 0;
	for (int i = 0; i < SBX_PROFILE_COUNT; i++) {
		const char *name = policy_profile_name((enum sbx_profile)i);

		if (strlen(name) == len && !strncmp(name, value, len)) {
			snprintf(msg, msglen, "%s: \"%s\": this valetd has %s@%u", label, value, name,
				 policy_profile_version((enum sbx_profile)i));
			return -EINVAL;
		}
	}
	config_not_one_of(label, value, names, msg, msglen);
	return -EINVAL;
}

int config_value_duration(const char *label, const char *value, int64_t min, int64_t max,
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
			 config_fmt_duration(min, lo, sizeof(lo)),
			 config_fmt_duration(max, hi, sizeof(hi)));
		return -EINVAL;
	}
	*ms = v;
	return 0;
}

int config_value_size(const char *label, const char *value, int64_t min, int64_t max, size_t *out,
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
			 config_fmt_size((uint64_t)min, lo, sizeof(lo)),
			 config_fmt_size((uint64_t)max, hi, sizeof(hi)));
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int config_value_bool(const char *label, const char *value, bool *out, char *msg, size_t msglen)
{
	static const char *const yes[] = {"true", "yes", "on", "1", NULL};
	static const char *const no[] = {"false", "no", "off", "0", NULL};

	if (config_choice(yes, value) >= 0) {
		*out = true;
	} else if (config_choice(no, value) >= 0) {
		*out = false;
	} else {
		snprintf(msg, msglen,
			 "%s: \"%s\" is not a boolean (use true/false, yes/no, on/off or 1/0)",
			 label, value);
		return -EINVAL;
	}
	return 0;
}

/*
 * A list of host names (space, tab or comma between): each "*", a name or
 * ".name" (the name and every name under it). A port, a scheme or a path
 * would never match a Host's name (api/http_origin.c compares the name
 * alone), so they are errors here rather than a list that quietly allows
 * nothing.
 */
int config_check_hosts(const char *label, const char *list, char *msg, size_t msglen)
{
	const char *p = list;
	size_t len, i;

	while (*p) {
		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (!len)
			break;
		for (i = 0; i < len && !(len == 1 && p[0] == '*'); i++)
			if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_' &&
			    !(p[i] == '.' && i + 1 < len && p[i + 1] != '.'))
				break;
		if (i < len && !(len == 1 && p[0] == '*')) {
			snprintf(msg, msglen,
				 "%s: \"%.*s\" is not a host name (a name, .domain for it and the "
				 "names under it, or *; no scheme, port or path)",
				 label, (int)(len > 200 ? 200 : len), p);
			return -EINVAL;
		}
		p += len;
	}
	return 0;
}

/* ---- paths and commands -------------------------------------------------- */

/* dir/rel, or rel itself when it is empty or absolute or there is no dir. */
char *config_join_path(const char *dir, const char *rel)
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

void config_free_argv(char **argv)
{
	strv_free(argv);
}

/*
 * Split like a shell, without expansion: white space separates words,
 * '...' is literal, "..." allows \" \\ \$ \` escapes, and a backslash
 * outside quotes escapes any character. Returns a new NULL-terminated argv.
 */
int config_split_command(const char *s, char ***argvp, const char **why)
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
				for (s++; *s && *s != '\'';)
					word[n++] = *s++;
				if (!*s++)
					goto unterminated;
			} else if (*s == '"') {
				for (s++; *s && *s != '"';) {
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
	config_free_argv(argv);
	return -EINVAL;
nomem:
	free(word);
	config_free_argv(argv);
	return -ENOMEM;
}

bool config_is_exec(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * A bare program name is looked up in PATH now. Relative PATH entries
 * (including the empty one) are skipped: what runs must not depend on the
 * directory valetd happens to start in.
 */
int config_path_lookup(const char *name, char **out)
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
			if (config_is_exec(cand)) {
				*out = cand;
				return 0;
			}
			free(cand);
		}
		if (!*end)
			return -ENOENT;
	}
}
