/*
 * job.c - the domain objects: construction and reference counting of jobs
 * and pipelines, status names, UUIDv4 ids and RFC 3339 timestamps.
 *
 * Theory of operation
 *
 * Jobs and pipelines are plain structs with a reference count. Whoever
 * creates one holds the first reference; the store, the queue and a running
 * child take their own. The last job_unref()/pipeline_unref() frees the
 * object and every string it owns. A pipeline owns one reference to each of
 * its jobs; a job names its pipeline by id only, so there is no cycle.
 *
 * Ids are random UUIDv4. Random bytes come from getrandom() in batches of
 * 4 KiB per thread, so making an id costs a memcpy, not a system call. A
 * forked child starts with an empty batch (pthread_atfork) so it can never
 * hand out the same ids as its parent.
 *
 * Times are int64 microseconds since the Unix epoch. Formatting and parsing
 * convert with the days-from-civil arithmetic (Howard Hinnant's algorithms),
 * so they neither depend on the TZ environment nor call timegm()/gmtime().
 * Parsing follows Go's time.Parse(time.RFC3339Nano, s), which the original
 * valet used for run_at: a zone (Z or +hh:mm) is required, T and Z are upper
 * case, the fraction has 1-9 digits ('.' or ',', as Go >= 1.17) and is
 * truncated to microseconds. Parsing refuses instants outside years
 * 0001-9999 UTC (JOB_TIME_MIN_US, JOB_TIME_MAX_US): PostgreSQL has no year
 * 0, and a year beyond 9999 would not format as RFC 3339.
 *
 * An owner (the API key that made a job) is a name the core does not
 * interpret; a job keeps it as a two-byte number into a table of names
 * that only grows (job_owner_id()), so ownership costs a parked job no
 * memory and a revoked key's work still says whose it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "job.h"

/* 100,000 parked jobs: struct job stays in a 288-byte malloc chunk. */
_Static_assert(sizeof(struct job) <= 280, "struct job grew past 280 bytes");

/* ---- interned strings -------------------------------------------------------- */

/*
 * A short list is enough: task names and syscall names are few, and lookups
 * happen once per submitted job or blocked syscall. Never freed.
 */
struct interned {
	struct interned *next;
	char s[];
};

static struct interned *interned_list;

const char *job_intern(const char *s)
{
	struct interned *i;
	size_t n;

	if (!s)
		return NULL;
	for (i = interned_list; i; i = i->next)
		if (strcmp(i->s, s) == 0)
			return i->s;
	n = strlen(s);
	i = malloc(sizeof(*i) + n + 1);
	if (!i)
		return NULL;
	memcpy(i->s, s, n + 1);
	i->next = interned_list;
	interned_list = i;
	return i->s;
}

/* ---- owners ---------------------------------------------------------------- */

/*
 * Names 1..owner_count in owner_names; an open-addressing table of their
 * numbers (0: an empty slot), at most half full, keyed by FNV-1a of the
 * name. Lookups happen once per key loaded and per row read from
 * PostgreSQL. Never freed, like job_intern()'s strings (the same strings).
 */
static const char **owner_names;
static size_t owner_count, owner_names_cap;
static uint16_t *owner_slots;
static size_t owner_nslots; /* a power of two, or 0 */

static size_t owner_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (size_t)h;
}

static uint16_t *owner_slot(const char *name)
{
	size_t i = owner_hash(name) & (owner_nslots - 1);

	while (owner_slots[i] && strcmp(owner_names[owner_slots[i]], name) != 0)
		i = (i + 1) & (owner_nslots - 1);
	return &owner_slots[i];
}

static int owner_grow(void)
{
	size_t n = owner_nslots ? owner_nslots * 2 : 64;
	uint16_t *old = owner_slots, *slots = calloc(n, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	owner_slots = slots;
	owner_nslots = n;
	for (size_t i = 1; i <= owner_count; i++)
		*owner_slot(owner_names[i]) = (uint16_t)i;
	free(old);
	return 0;
}

uint16_t job_owner_id(const char *name)
{
	const char **names, *s;
	uint16_t known;

	if (!name || !name[0])
		return 0;
	known = owner_nslots ? *owner_slot(name) : 0;
	if (known)
		return known;
	if (owner_count >= UINT16_MAX)
		return 0;
	if ((owner_count + 1) * 2 > owner_nslots && owner_grow() < 0)
		return 0;
	if (owner_count + 2 > owner_names_cap) {
		size_t cap = owner_names_cap ? owner_names_cap * 2 : 16;
		names = realloc(owner_names, cap * sizeof(*names));
		if (!names)
			return 0;
		owner_names = names;
		owner_names_cap = cap;
	}
	if (!(s = job_intern(name)))
		return 0;
	owner_names[++owner_count] = s;
	*owner_slot(name) = (uint16_t)owner_count;
	return (uint16_t)owner_count;
}

const char *job_owner_name(uint16_t id)
{
	return id && id <= owner_count ? owner_names[id] : NULL;
}

/* ---- objects -------------------------------------------------------------- */

struct job *job_new(void)
{
	struct job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->refs = 1;
	job->outcome.exit_code = -1;
	job->outcome.cpu_ms = -1;
	job->outcome.wall_ms = -1;
	job->outcome.max_rss_kb = -1;
	job->outcome.memory_peak_kb = -1;
	job->max_attempts = 1;
	return job;
}

struct job *job_ref(struct job *job)
{
	if (job)
		job->refs++;
	return job;
}

void job_unref(struct job *job)
{
	if (!job || --job->refs > 0)
		return;
	free(job->name);
	free(job->description);
	free(job->params_json);
	free(job->failure_reason);
	free(job->result_json);
	free(job->result_error);
	free(job->isolation);
	free(job);
}

struct pipeline *pipeline_new(size_t njobs)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));

	if (!pl)
		return NULL;
	/* Never a NULL array, so callers need no special case for njobs == 0. */
	pl->jobs = calloc(njobs ? njobs : 1, sizeof(*pl->jobs));
	if (!pl->jobs) {
		free(pl);
		return NULL;
	}
	pl->refs = 1;
	pl->njobs = njobs;
	return pl;
}

struct pipeline *pipeline_ref(struct pipeline *pl)
{
	if (pl)
		pl->refs++;
	return pl;
}

void pipeline_unref(struct pipeline *pl)
{
	if (!pl || --pl->refs > 0)
		return;
	for (size_t i = 0; i < pl->njobs; i++)
		job_unref(pl->jobs[i]);
	free(pl->jobs);
	free(pl->name);
	free(pl->description);
	free(pl->failure_reason);
	free(pl);
}

void job_set_str(char **field, const char *value)
{
	char *copy = NULL;

	/* Copy first: value may point into the old string. A failed copy leaves
	 * the field NULL rather than stale. */
	if (value)
		copy = strdup(value);
	free(*field);
	*field = copy;
}

/* ---- statuses ------------------------------------------------------------- */

static const char *const job_status_names[] = {
	[JOB_UNDEFINED] = "UNDEFINED",     [JOB_PENDING] = "PENDING",
	[JOB_SCHEDULED] = "SCHEDULED",     [JOB_IN_PROGRESS] = "IN_PROGRESS",
	[JOB_COMPLETED] = "COMPLETED",     [JOB_FAILED] = "FAILED",
	[JOB_CANCELLED] = "CANCELLED",
};

bool job_status_final(enum job_status s)
{
	return s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELLED;
}

const char *job_status_name(enum job_status s)
{
	if ((unsigned)s > JOB_STATUS_MAX)
		return job_status_names[JOB_UNDEFINED];
	return job_status_names[s];
}

enum job_status job_status_parse(const char *name)
{
	if (!name)
		return JOB_UNDEFINED;
	for (int s = JOB_PENDING; s <= JOB_STATUS_MAX; s++) {
		if (strcasecmp(name, job_status_names[s]) == 0)
			return (enum job_status)s;
	}
	return JOB_UNDEFINED;
}

/* ---- ids ------------------------------------------------------------------ */

#define JOB_RAND_BATCH 4096

static _Thread_local uint8_t job_rand_buf[JOB_RAND_BATCH];
static _Thread_local size_t job_rand_pos = JOB_RAND_BATCH;
static pthread_once_t job_rand_once = PTHREAD_ONCE_INIT;

/* The child of fork() must not reuse the parent's unused random bytes. */
static void job_rand_atfork_child(void)
{
	job_rand_pos = JOB_RAND_BATCH;
}

static void job_rand_init(void)
{
	pthread_atfork(NULL, NULL, job_rand_atfork_child);
}

static int job_rand_urandom(uint8_t *buf, size_t len)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -EIO;
		}
		got += (size_t)n;
	}
	close(fd);
	return 0;
}

static void job_rand_refill(void)
{
	size_t got = 0;

	pthread_once(&job_rand_once, job_rand_init);
	while (got < JOB_RAND_BATCH) {
		ssize_t n = getrandom(job_rand_buf + got, JOB_RAND_BATCH - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Only a kernel older than 3.17 gets here (ENOSYS). Ids
			 * that are not random would collide and mix up other
			 * people's jobs: better to stop than to go on. */
			if (job_rand_urandom(job_rand_buf, JOB_RAND_BATCH) < 0)
				abort();
			break;
		}
		got += (size_t)n;
	}
	job_rand_pos = 0;
}

void job_id_generate(uint8_t id[JOB_ID_LEN])
{
	if (job_rand_pos + JOB_ID_LEN > JOB_RAND_BATCH)
		job_rand_refill();
	memcpy(id, job_rand_buf + job_rand_pos, JOB_ID_LEN);
	job_rand_pos += JOB_ID_LEN;
	id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
	id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* variant 10 (RFC 4122) */
}

void job_id_format(const uint8_t id[JOB_ID_LEN], char out[JOB_ID_STRLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < JOB_ID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[id[i] >> 4];
		*p++ = hex[id[i] & 0x0f];
	}
	*p = '\0';
}

int job_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int job_id_parse(const char *s, uint8_t id[JOB_ID_LEN])
{
	uint8_t tmp[JOB_ID_LEN];
	int n = 0;

	if (!s)
		return -EINVAL;
	for (int i = 0; i < JOB_ID_STRLEN; i += 2) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			i++;
		}
		/* A NUL before position 36 fails here, so no read runs past it. */
		hi = job_hex_value(s[i]);
		if (hi < 0)
			return -EINVAL;
		lo = job_hex_value(s[i + 1]);
		if (lo < 0)
			return -EINVAL;
		tmp[n++] = (uint8_t)(hi << 4 | lo);
	}
	if (s[JOB_ID_STRLEN] != '\0')
		return -EINVAL;
	memcpy(id, tmp, JOB_ID_LEN);
	return 0;
}

/* ---- clocks --------------------------------------------------------------- */

int64_t job_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t job_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- RFC 3339 ------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31). */
static int64_t job_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);                       /* [0, 399] */
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */

	return era * 146097 + (int64_t)doe - 719468;
}

static void job_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *job_put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

void job_time_format(int64_t us, char *out, size_t outlen)
{
	char buf[64], *p = buf;
	int64_t secs, days, y;
	unsigned sod, frac, m, d;

	if (!out || outlen == 0)
		return;
	/* Floor division, so times before 1970 format correctly too. */
	secs = us / 1000000;
	if (us % 1000000 < 0)
		secs--;
	frac = (unsigned)(us - secs * 1000000);
	days = secs / 86400;
	if (secs % 86400 < 0)
		days--;
	sod = (unsigned)(secs - days * 86400);
	job_civil_from_days(days, &y, &m, &d);

	if (y >= 0 && y <= 9999) {
		p = job_put2(p, (unsigned)(y / 100));
		p = job_put2(p, (unsigned)(y % 100));
	} else {
		p += snprintf(p, 24, "%lld", (long long)y);
	}
	*p++ = '-';
	p = job_put2(p, m);
	*p++ = '-';
	p = job_put2(p, d);
	*p++ = 'T';
	p = job_put2(p, sod / 3600);
	*p++ = ':';
	p = job_put2(p, sod / 60 % 60);
	*p++ = ':';
	p = job_put2(p, sod % 60);
	if (frac) {
		int digits = 6;

		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		*p++ = '.';
		for (int i = digits - 1; i >= 0; i--) {
			p[i] = (char)('0' + frac % 10);
			frac /= 10;
		}
		p += digits;
	}
	*p++ = 'Z';
	*p = '\0';

	size_t len = (size_t)(p - buf);

	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, buf, len);
	out[len] = '\0';
}

/* n decimal digits at s, or -1. */
static int job_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool job_leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned job_days_in_month(int y, int m)
{
	static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && job_leap_year(y) ? 29 : mdays[m - 1];
}

int job_time_parse(const char *s, int64_t *us)
{
	int year, month, day, hour, min, sec, off = 0;
	int64_t frac_us = 0;
	const char *p;

	if (!s)
		return -EINVAL;
	/* "YYYY-MM-DDTHH:MM:SS": every check below stops at a NUL, so a short
	 * string never makes us read past its end. */
	year = job_digits(s, 4);
	if (year < 0 || s[4] != '-')
		return -EINVAL;
	month = job_digits(s + 5, 2);
	if (month < 1 || month > 12 || s[7] != '-')
		return -EINVAL;
	day = job_digits(s + 8, 2);
	if (day < 1 || (unsigned)day > job_days_in_month(year, month) || s[10] != 'T')
		return -EINVAL;
	hour = job_digits(s + 11, 2);
	if (hour < 0 || hour > 23 || s[13] != ':')
		return -EINVAL;
	min = job_digits(s + 14, 2);
	if (min < 0 || min > 59 || s[16] != ':')
		return -EINVAL;
	sec = job_digits(s + 17, 2);
	if (sec < 0 || sec > 59)
		return -EINVAL;
	p = s + 19;

	if (*p == '.' || *p == ',') {
		int ndigits = 0;

		p++;
		while (*p >= '0' && *p <= '9') {
			/* Digits past the microsecond are dropped (truncation). */
			if (ndigits < 6)
				frac_us = frac_us * 10 + (*p - '0');
			ndigits++;
			p++;
		}
		if (ndigits < 1 || ndigits > 9)
			return -EINVAL;
		for (int i = ndigits; i < 6; i++)
			frac_us *= 10;
	}

	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh = job_digits(p + 1, 2), om;

		if (oh < 0 || oh > 23 || p[3] != ':')
			return -EINVAL;
		om = job_digits(p + 4, 2);
		if (om < 0 || om > 59)
			return -EINVAL;
		off = (oh * 60 + om) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;

	int64_t secs = job_days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 +
		       hour * 3600 + min * 60 + sec - off;
	int64_t t = secs * 1000000 + frac_us;

	/* The zone may carry a time of year 0001 or 9999 out of that year. */
	if (t < JOB_TIME_MIN_US || t > JOB_TIME_MAX_US)
		return -ERANGE;
	*us = t;
	return 0;
}

int64_t job_span_ms(enum job_status status, int64_t started_at, int64_t completed_at)
{
	if (status != JOB_COMPLETED && status != JOB_FAILED)
		return -1;
	if (!started_at || !completed_at || completed_at < started_at)
		return -1;
	return (completed_at - started_at) / 1000;
}

int64_t job_duration_ms(const struct job *job)
{
	return job ? job_span_ms(job->status, job->started_at, job->completed_at) : -1;
}
