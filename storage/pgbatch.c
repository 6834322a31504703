/*
 * pgbatch.c - building pg_batch objects and the text of their values.
 *
 * Theory of operation
 *
 * A batch is an ordered list of calls (statement index + parameters) that
 * pgconn.c sends in one go. Parameters are text-format, so every value is a
 * NUL-terminated string; all of a batch's strings are copied into one
 * growing arena and remembered by offset (the arena moves when it grows),
 * and pgconn.c makes the pointer array only when it sends the batch. So a
 * batch costs a handful of allocations however many parameters it has.
 * Statement indexes and parameter counts are checked against the statement
 * table by pgconn_submit(), which is the first place that knows the table.
 * A batch that is never sent can serve as a table of values, one call a
 * row: pg_batch_column() turns one of its parameters, down the rows, into
 * one array-literal parameter of another batch, for a statement that
 * writes many rows at once (unnest()).
 *
 * The value helpers speak what the connection's session settings make
 * PostgreSQL speak (TimeZone UTC, DateStyle ISO): timestamps go out as RFC
 * 3339 UTC with microseconds and come back as "2026-11-27 06:01:51.123456+00",
 * parsed with plain calendar arithmetic, never the process's time zone.
 *
 * Also here, because they are about a batch rather than the connection: the
 * order in which a batch's results arrive (what pgconn.c counts), and error
 * text made to fit on one log line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgbatch.h"

struct pg_batch *pg_batch_new(bool txn, pg_batch_done_fn done, void *arg)
{
	struct pg_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->txn = txn;
	b->done = done;
	b->arg = arg;
	return b;
}

void pg_batch_reset(struct pg_batch *b)
{
	for (size_t i = 0; i < b->ncalls; i++) {
		PQclear(b->calls[i].result);
		b->calls[i].result = NULL;
	}
	free(b->errmsg);
	b->errmsg = NULL;
	b->sqlstate[0] = '\0';
	b->query = b->nsynced = 0;
	b->doomed = b->rollback = b->failed = b->got = b->extra = false;
}

void pg_batch_free(struct pg_batch *b)
{
	if (!b)
		return;
	pg_batch_reset(b);
	free(b->calls);
	free(b->params);
	free(b->arena);
	free(b);
}

static int batch_grow(void **p, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap : first;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / size)
			return -ENOMEM;
		ncap *= 2;
	}
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

int pg_batch_call(struct pg_batch *b, size_t stmt)
{
	if (b->broken)
		return -ENOMEM;
	if (batch_grow((void **)&b->calls, &b->calls_cap, b->ncalls + 1, sizeof(*b->calls), 4) <
	    0) {
		b->broken = true;
		return -ENOMEM;
	}
	b->calls[b->ncalls++] = (struct pg_call){.stmt = stmt, .first = b->nparams};
	return 0;
}

/* s == NULL: SQL NULL. A parameter before any call, or text holding a NUL
 * byte (which text-format parameters cannot carry) breaks the batch. */
static int batch_param(struct pg_batch *b, const char *s, size_t len)
{
	size_t off = PG_BATCH_NULL;

	if (b->broken)
		return -ENOMEM;
	if (!b->ncalls || (s && memchr(s, '\0', len))) {
		b->broken = true;
		return -EINVAL;
	}
	if (batch_grow((void **)&b->params, &b->params_cap, b->nparams + 1, sizeof(*b->params), 8) <
	    0)
		goto nomem;
	if (s) {
		if (len >= SIZE_MAX / 2 || batch_grow((void **)&b->arena, &b->arena_cap,
						      b->arena_len + len + 1, 1, 256) < 0)
			goto nomem;
		off = b->arena_len;
		memcpy(b->arena + off, s, len);
		b->arena[off + len] = '\0';
		b->arena_len += len + 1;
	}
	b->params[b->nparams++] = off;
	b->calls[b->ncalls - 1].nparams++;
	return 0;
nomem:
	b->broken = true;
	return -ENOMEM;
}

int pg_batch_textn(struct pg_batch *b, const char *s, size_t len)
{
	return batch_param(b, s, s ? len : 0);
}

int pg_batch_text(struct pg_batch *b, const char *s)
{
	return batch_param(b, s, s ? strlen(s) : 0);
}

int pg_batch_null(struct pg_batch *b)
{
	return batch_param(b, NULL, 0);
}

int pg_batch_int(struct pg_batch *b, int64_t v)
{
	char buf[24];

	return pg_batch_textn(b, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRId64, v));
}

int pg_batch_bool(struct pg_batch *b, bool v)
{
	return pg_batch_textn(b, v ? "t" : "f", 1);
}

int pg_batch_time(struct pg_batch *b, int64_t us)
{
	int64_t secs = us / 1000000, frac = us % 1000000;
	time_t t;
	struct tm tm;
	char buf[64];
	int n;

	if (us == 0)
		return pg_batch_null(b);
	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm)) {
		b->broken = true;
		return -EINVAL;
	}
	n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
	return pg_batch_textn(b, buf, (size_t)n);
}

int pg_batch_uuid(struct pg_batch *b, const uint8_t id[16])
{
	static const char hex[] = "0123456789abcdef";
	char buf[37], *p = buf;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[id[i] >> 4];
		*p++ = hex[id[i] & 15];
	}
	return pg_batch_textn(b, buf, 36);
}

/* An array literal's element: SQL NULL unquoted, any text in double quotes
 * with its quotes and backslashes escaped. */
static size_t array_element(char *dst, const char *s)
{
	size_t n = 0;

	if (!s) {
		memcpy(dst, "NULL", 4);
		return 4;
	}
	dst[n++] = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			dst[n++] = '\\';
		dst[n++] = *s;
	}
	dst[n++] = '"';
	return n;
}

int pg_batch_column(struct pg_batch *b, const struct pg_batch *rows, size_t col)
{
	size_t need = 3, n = 0;
	char *buf;
	int rc;

	for (size_t i = 0; i < rows->ncalls; i++) {
		const struct pg_call *c = &rows->calls[i];
		size_t off;
		if (rows->broken || col >= c->nparams)
			goto invalid;
		off = rows->params[c->first + col];
		need += 1 + (off == PG_BATCH_NULL ? 4 : 2 + 2 * strlen(rows->arena + off));
	}
	buf = malloc(need);
	if (!buf) {
		b->broken = true;
		return -ENOMEM;
	}
	buf[n++] = '{';
	for (size_t i = 0; i < rows->ncalls; i++) {
		size_t off = rows->params[rows->calls[i].first + col];
		if (i)
			buf[n++] = ',';
		n += array_element(buf + n, off == PG_BATCH_NULL ? NULL : rows->arena + off);
	}
	buf[n++] = '}';
	rc = batch_param(b, buf, n);
	free(buf);
	return rc;
invalid:
	b->broken = true;
	return -EINVAL;
}

size_t pg_batch_ncalls(const struct pg_batch *b)
{
	return b->ncalls;
}

const PGresult *pg_batch_result(const struct pg_batch *b, size_t i)
{
	return i < b->ncalls ? b->calls[i].result : NULL;
}

const char *pg_batch_sqlstate(const struct pg_batch *b)
{
	return b->sqlstate;
}

/*
 * The classes (the first two characters) and codes of errors that say
 * "not now" rather than "not this": the server cannot take the work at the
 * moment, and the same statement may well succeed later. 08 connection,
 * 25 invalid transaction state (25006: a read-only server, e.g. a demoted
 * primary), 40 rollback (serialization failure, deadlock), 53 insufficient
 * resources (disk full, out of memory, too many connections), 57 operator
 * intervention (57014: statement timeout or cancel; 57P01-03: shutdown,
 * crash, cannot connect now), 58 system error (I/O), 55P03 lock not
 * available (lock_timeout). Everything else - data (22), constraints (23),
 * programming (42), an error without a code - retrying cannot fix.
 */
bool pg_sqlstate_transient(const char *code)
{
	static const char *const classes[] = {"08", "25", "40", "53", "57", "58"};

	if (!code || strlen(code) != 5)
		return false;
	if (!strcmp(code, "55P03"))
		return true;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strncmp(code, classes[i], 2))
			return true;
	return false;
}

/* ---- the order of results --------------------------------------------------- */

bool pg_batch_block(const struct pg_batch *b)
{
	return b->txn && b->ncalls > 1;
}

/* A block: BEGIN, calls, COMMIT, Sync. Otherwise: call, Sync, call, Sync...
 * The connection's ROLLBACK: ROLLBACK, Sync. */
size_t pg_batch_nsyncs(const struct pg_batch *b)
{
	return pg_batch_block(b) || b->internal ? 1 : b->ncalls;
}

bool pg_batch_call_of(const struct pg_batch *b, size_t q, size_t *call)
{
	if (b->internal)
		return false;
	if (pg_batch_block(b)) {
		*call = q - 1;
		return q >= 1 && q <= b->ncalls;
	}
	*call = q;
	return q < b->ncalls;
}

/* Every query before the next Sync has ended, so a result now is an error
 * raised by the Sync's implicit commit. */
bool pg_batch_want_sync(const struct pg_batch *b)
{
	if (pg_batch_block(b))
		return b->query >= b->ncalls + 2;
	return b->nsynced < b->query;
}

/* ---- error text ----------------------------------------------------------------- */

/* libpq's messages span lines ("...failed: ...\n\tIs the server running..."). */
void pg_oneline(char *dst, size_t size, const char *src)
{
	size_t n = 0;
	bool space = false;

	for (; src && *src && n + 1 < size; src++) {
		if (*src == '\n' || *src == '\t' || *src == '\r') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < size)
			dst[n++] = ' ';
		space = false;
		dst[n++] = *src;
	}
	dst[n] = '\0';
}

void pg_errtext(char *dst, size_t size, const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char text[512];

	if (!primary) {
		pg_oneline(dst, size, PQresultErrorMessage(res));
		if (!*dst)
			snprintf(dst, size, "%s", PQresStatus(PQresultStatus(res)));
		return;
	}
	snprintf(text, sizeof(text), "%s: %s%s%s%s%s%s", sev ? sev : "ERROR", primary,
		 detail ? " DETAIL: " : "", detail ? detail : "", code ? " (SQLSTATE " : "",
		 code ? code : "", code ? ")" : "");
	pg_oneline(dst, size, text);
}

/* ---- parsing values --------------------------------------------------------- */

static bool pgc_digits(const char **p, int min, int max, int64_t *out)
{
	int n = 0;

	*out = 0;
	while (n < max && **p >= '0' && **p <= '9') {
		*out = *out * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	return n >= min;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t pgc_days(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t pg_parse_time(const char *s)
{
	int64_t y, mo, d, h, mi, sec, us = 0, oh = 0, om = 0, os = 0, sign = 1, secs;
	const char *p = s;
	int n = 0;

	if (!s || !*s)
		return 0;
	if (!strcmp(s, "infinity"))
		return INT64_MAX;
	if (!strcmp(s, "-infinity"))
		return INT64_MIN;
	if (!pgc_digits(&p, 4, 9, &y) || *p++ != '-' || !pgc_digits(&p, 2, 2, &mo) || *p++ != '-' ||
	    !pgc_digits(&p, 2, 2, &d) || (*p != ' ' && *p != 'T') || (p++, false) ||
	    !pgc_digits(&p, 2, 2, &h) || *p++ != ':' || !pgc_digits(&p, 2, 2, &mi) || *p++ != ':' ||
	    !pgc_digits(&p, 2, 2, &sec))
		return 0;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 6)
				us = us * 10 + (*p - '0');
		if (!n)
			return 0;
		for (; n < 6; n++)
			us *= 10;
	}
	if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (!pgc_digits(&p, 2, 2, &oh))
			return 0;
		if (*p == ':' && (p++, !pgc_digits(&p, 2, 2, &om)))
			return 0;
		if (*p == ':' && (p++, !pgc_digits(&p, 2, 2, &os)))
			return 0;
	} else if (*p == 'Z') {
		p++;
	}
	if (!strcmp(p, " BC"))
		y = 1 - y; /* 1 BC is year 0 */
	else if (*p)
		return 0;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec > 60)
		return 0;
	secs = pgc_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	       sign * (oh * 3600 + om * 60 + os);
	return secs * 1000000 + us;
}

static int pgc_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int pg_parse_uuid(const char *s, uint8_t id[16])
{
	uint8_t out[16];
	int hi, lo;

	if (!s)
		return -EINVAL;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (*s++ != '-')
				return -EINVAL;
		}
		hi = pgc_hex(s[0]);
		lo = hi < 0 ? -1 : pgc_hex(s[1]);
		if (lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	if (*s)
		return -EINVAL;
	memcpy(id, out, sizeof(out));
	return 0;
}
