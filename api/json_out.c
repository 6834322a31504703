/*
 * json_out.c - JSON encoding of API responses.
 *
 * Theory of operation: each domain object becomes a jansson object built
 * key by key in the order API.md documents (jansson keeps insertion order),
 * with absent fields left out, and is dumped compactly. Lists are not built
 * as one big tree: each element is encoded and dumped on its own into one
 * growing buffer, so a list of 100k jobs costs one job's tree at a time.
 *
 * Reals are dumped with the smallest precision that reads every real of
 * the document back exactly (jansson's default of 17 digits prints 0.1 as
 * 0.10000000000000001). Strings that may come from a request (an id in a
 * URL, for instance) can be invalid UTF-8, which jansson refuses; they are
 * repaired with U+FFFD rather than failing the response.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/* A JSON string of s, repairing invalid UTF-8. New or NULL (ENOMEM). */
static json_t *str_value(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0, seq;
	json_t *v;
	char *fixed;

	v = json_stringn(s, n);
	if (v)
		return v;
	fixed = malloc(n * 3 + 1); /* each bad byte becomes 3 bytes */
	if (!fixed)
		return NULL;
	while (i < n) {
		seq = utf8_seq_len(p + i, n - i);
		if (seq) {
			memcpy(fixed + o, p + i, seq);
			o += seq;
			i += seq;
		} else {
			memcpy(fixed + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	v = json_stringn(fixed, o);
	free(fixed);
	return v;
}

static json_t *time_value(int64_t us)
{
	char buf[40];

	job_time_format(us, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *id_value(const uint8_t id[JOB_ID_LEN])
{
	char buf[JOB_ID_STRLEN + 1];

	job_id_format(id, buf);
	return json_string(buf);
}

/* -1 for "unknown" becomes null. */
static json_t *count_value(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

const char *json_out_signal_name(int sig, char *buf, size_t buflen)
{
	const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;

	if (abbrev)
		snprintf(buf, buflen, "SIG%s", abbrev);
	else
		snprintf(buf, buflen, "SIG%d", sig);
	return buf;
}

json_t *json_out_outcome(const struct job_outcome *oc)
{
	json_t *o = json_object(), *sig = json_null();
	char sigbuf[32];
	int rc = 0;

	if (!o)
		return NULL;
	if (oc->term_signal > 0)
		sig = json_string(json_out_signal_name(oc->term_signal, sigbuf, sizeof(sigbuf)));
	rc |= json_object_set_new(o, "pid", json_integer(oc->pid));
	rc |= json_object_set_new(o, "exit_code",
				  oc->exit_code < 0 ? json_null() : json_integer(oc->exit_code));
	rc |= json_object_set_new(o, "signal", sig);
	rc |= json_object_set_new(o, "timed_out", json_boolean(oc->timed_out));
	rc |= json_object_set_new(o, "oom_killed", json_boolean(oc->oom_killed));
	rc |= json_object_set_new(o, "seccomp_syscall",
				  oc->seccomp_syscall ? str_value(oc->seccomp_syscall)
							 : json_null());
	rc |= json_object_set_new(o, "cpu_ms", count_value(oc->cpu_ms));
	rc |= json_object_set_new(o, "wall_ms", count_value(oc->wall_ms));
	rc |= json_object_set_new(o, "max_rss_kb", count_value(oc->max_rss_kb));
	rc |= json_object_set_new(o, "memory_peak_kb", count_value(oc->memory_peak_kb));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The stored params text as a JSON value; NULL when absent, empty or bad. */
static json_t *params_value(const char *params_json)
{
	json_t *v;

	if (!params_json)
		return NULL;
	v = json_loads(params_json, JSON_DECODE_ANY, NULL);
	if (v && json_is_object(v) && json_object_size(v) == 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* Set key to the time us, unless it is 0 (not set). */
static int put_time(json_t *o, const char *key, int64_t us)
{
	return us ? json_object_set_new(o, key, time_value(us)) : 0;
}

/* Seconds as a number: an integer when whole, else a real. */
static json_t *timeout_value(int64_t ms)
{
	if (ms % 1000 == 0)
		return json_integer(ms / 1000);
	return json_real((double)ms / 1000.0);
}

/* A limit: its number, or null for none (0). */
static json_t *limit_value(uint64_t v)
{
	return v ? json_integer((json_int_t)v) : json_null();
}

/* The effective limits of a job whose request set limits: numbers (bytes,
 * seconds, a count), null for none. */
static json_t *limits_value(const struct job_limits *l)
{
	json_t *o = json_object();
	int rc = 0;

	if (!o)
		return NULL;
	rc |= json_object_set_new(o, "memory", limit_value(l->memory_bytes));
	rc |= json_object_set_new(o, "cpu", limit_value(l->cpu_seconds));
	rc |= json_object_set_new(o, "processes", limit_value(l->processes));
	rc |= json_object_set_new(o, "output", json_integer(l->output_bytes));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * The isolation record, an object as the runner wrote it; NULL if absent or
 * bad. A daemon has a few distinct records (a slot's uid, a profile), so
 * the parsed objects are kept and shared (jansson counts references; the
 * output never changes them) instead of parsing one per job per request.
 */
#define ISOLATION_CACHE 64

static json_t *isolation_value(const char *text)
{
	static struct {
		char *text;
		json_t *value;
	} cache[ISOLATION_CACHE];
	static unsigned next;
	json_t *v;

	if (!text)
		return NULL;
	for (unsigned i = 0; i < ISOLATION_CACHE && cache[i].text; i++)
		if (strcmp(cache[i].text, text) == 0)
			return json_incref(cache[i].value);
	v = json_loads(text, 0, NULL);
	if (v && !json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	if (v) {
		char *copy = strdup(text);
		unsigned i = next++ % ISOLATION_CACHE;

		if (copy) {
			free(cache[i].text);
			json_decref(cache[i].value);
			cache[i].text = copy;
			cache[i].value = json_incref(v);
		}
	}
	return v;
}

json_t *json_out_job(const struct job *job)
{
	json_t *o = json_object(), *params, *isolation;
	int64_t duration;
	int rc = 0;

	if (!o)
		return NULL;
	rc |= json_object_set_new(o, "id", id_value(job->id));
	rc |= json_object_set_new(o, "name", str_value(job->name ? job->name : ""));
	if (job->description)
		rc |= json_object_set_new(o, "description", str_value(job->description));
	rc |= json_object_set_new(o, "task_name", str_value(job->task_name ? job->task_name : ""));
	params = params_value(job->params_json);
	if (params)
		rc |= json_object_set_new(o, "task_params", params);
	if (job->timeout_ms > 0)
		rc |= json_object_set_new(o, "timeout", timeout_value(job->timeout_ms));
	rc |= json_object_set_new(o, "status", json_string(job_status_name(job->status)));
	if (job->failure_reason)
		rc |= json_object_set_new(o, "failure_reason", str_value(job->failure_reason));
	rc |= put_time(o, "run_at", job->run_at);
	rc |= put_time(o, "scheduled_at", job->scheduled_at);
	rc |= json_object_set_new(o, "created_at", time_value(job->created_at));
	rc |= put_time(o, "started_at", job->started_at);
	rc |= put_time(o, "completed_at", job->completed_at);
	duration = job_duration_ms(job);
	if (duration >= 0)
		rc |= json_object_set_new(o, "duration", json_integer(duration));
	if (job->in_pipeline) {
		rc |= json_object_set_new(o, "pipeline_id", id_value(job->pipeline_id));
		if (job->has_next)
			rc |= json_object_set_new(o, "next_job_id", id_value(job->next_job_id));
		if (job->use_previous_results)
			rc |= json_object_set_new(o, "use_previous_results", json_true());
	}
	if (job->max_attempts > 1) {
		rc |= json_object_set_new(o, "max_attempts", json_integer(job->max_attempts));
		rc |= json_object_set_new(o, "attempt", json_integer(job->attempt));
	}
	if (job->limits.set)
		rc |= json_object_set_new(o, "limits", limits_value(&job->limits));
	if (job->outcome.pid != 0)
		rc |= json_object_set_new(o, "outcome", json_out_outcome(&job->outcome));
	if ((isolation = isolation_value(job->isolation)))
		rc |= json_object_set_new(o, "isolation", isolation);
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *json_out_pipeline(const struct pipeline *pl, bool with_jobs)
{
	json_t *o = json_object(), *jobs;
	int64_t duration;
	size_t i;
	int rc = 0;

	if (!o)
		return NULL;
	rc |= json_object_set_new(o, "id", id_value(pl->id));
	rc |= json_object_set_new(o, "name", str_value(pl->name ? pl->name : ""));
	if (pl->description)
		rc |= json_object_set_new(o, "description", str_value(pl->description));
	rc |= json_object_set_new(o, "status", json_string(job_status_name(pl->status)));
	if (pl->failure_reason)
		rc |= json_object_set_new(o, "failure_reason", str_value(pl->failure_reason));
	rc |= put_time(o, "run_at", pl->run_at);
	rc |= json_object_set_new(o, "created_at", time_value(pl->created_at));
	rc |= put_time(o, "started_at", pl->started_at);
	rc |= put_time(o, "completed_at", pl->completed_at);
	duration = job_span_ms(pl->status, pl->started_at, pl->completed_at);
	if (duration >= 0)
		rc |= json_object_set_new(o, "duration", json_integer(duration));
	if (with_jobs) {
		jobs = json_array();
		for (i = 0; jobs && i < pl->njobs; i++)
			rc |= json_array_append_new(jobs, json_out_job(pl->jobs[i]));
		rc |= json_object_set_new(o, "jobs", jobs);
	}
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Whether a stored result is "null": no metadata, as in the original. */
static bool result_is_null(const char *text)
{
	text += strspn(text, " \t\r\n");
	if (strncmp(text, "null", 4) != 0)
		return false;
	text += 4;
	return text[strspn(text, " \t\r\n")] == '\0';
}

int json_out_result(const struct job *job, struct iovec *head, struct iovec *meta,
		    struct iovec *tail)
{
	char id[JOB_ID_STRLEN + 1], *err = NULL;
	bool has_meta = job->result_json && !result_is_null(job->result_json);
	json_t *v;

	head->iov_base = tail->iov_base = NULL;
	meta->iov_base = has_meta ? job->result_json : NULL;
	meta->iov_len = has_meta ? strlen(job->result_json) : 0;
	job_id_format(job->id, id);
	if (job->result_error && job->result_error[0]) {
		v = str_value(job->result_error);
		err = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
		json_decref(v);
		if (!err)
			goto fail;
	}
	if (asprintf((char **)&head->iov_base, "{\"job_id\":\"%s\"%s", id,
		     has_meta ? ",\"metadata\":" : "") < 0) {
		head->iov_base = NULL;
		goto fail;
	}
	head->iov_len = strlen(head->iov_base);
	if (asprintf((char **)&tail->iov_base, "%s%s}", err ? ",\"error\":" : "",
		     err ? err : "") < 0) {
		tail->iov_base = NULL;
		goto fail;
	}
	tail->iov_len = strlen(tail->iov_base);
	free(err);
	return 0;
fail:
	free(head->iov_base);
	head->iov_base = NULL;
	free(err);
	return -ENOMEM;
}

/* Decimal digits (1..17) that print v so that it reads back exactly. */
static int real_digits(double v)
{
	char buf[40];
	int p;

	for (p = 1; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return p;
	}
	return 17;
}

static int real_precision_walk(const json_t *v, int best)
{
	void *iter;
	size_t i;
	int p;

	switch (json_typeof(v)) {
	case JSON_REAL:
		p = real_digits(json_real_value(v));
		return p > best ? p : best;
	case JSON_OBJECT:
		for (iter = json_object_iter((json_t *)v); iter;
		     iter = json_object_iter_next((json_t *)v, iter))
			best = real_precision_walk(json_object_iter_value(iter), best);
		return best;
	case JSON_ARRAY:
		for (i = 0; i < json_array_size(v); i++)
			best = real_precision_walk(json_array_get(v, i), best);
		return best;
	default:
		return best;
	}
}

int json_out_real_precision(const json_t *v)
{
	return real_precision_walk(v, 1);
}

char *json_out_dump(const json_t *v, size_t *len)
{
	char *text;

	text = json_dumps(v, JSON_OUT_FLAGS | JSON_REAL_PRECISION(json_out_real_precision(v)));
	if (text && len)
		*len = strlen(text);
	return text;
}

char *json_out_error(int code, const char *message, size_t *len)
{
	json_t *o = json_object();
	char *text;
	int rc = 0;

	if (!o)
		return NULL;
	rc |= json_object_set_new(o, "code", json_integer(code));
	rc |= json_object_set_new(o, "error", json_true());
	rc |= json_object_set_new(o, "message", str_value(message ? message : ""));
	text = rc ? NULL : json_out_dump(o, len);
	json_decref(o);
	return text;
}


static int outbuf_add(const char *buffer, size_t size, void *data)
{
	struct json_out_buf *b = data;
	size_t cap;
	char *p;

	if (b->len + size + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + size + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -1;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, buffer, size);
	b->len += size;
	b->data[b->len] = '\0';
	return 0;
}

static int outbuf_add_value(struct json_out_buf *b, const json_t *v)
{
	size_t flags = JSON_OUT_FLAGS | JSON_REAL_PRECISION(json_out_real_precision(v));

	return json_dump_callback(v, outbuf_add, b, flags);
}

/* Opens {"key":[ and returns 0, or -1. */
static int outbuf_open_list(struct json_out_buf *b, const char *key)
{
	json_t *k = json_string(key);
	int rc;

	if (!k)
		return -1;
	rc = outbuf_add("{", 1, b);
	if (!rc)
		rc = json_dump_callback(k, outbuf_add, b, JSON_OUT_FLAGS | JSON_ENCODE_ANY);
	json_decref(k);
	if (!rc)
		rc = outbuf_add(":[", 2, b);
	return rc;
}

int json_out_list_open(struct json_out_buf *b, const char *key)
{
	return outbuf_open_list(b, key) ? -ENOMEM : 0;
}

int json_out_list_item(struct json_out_buf *b, const struct job *job, const struct pipeline *pl,
		       bool first, bool owners)
{
	json_t *v = job ? json_out_job(job) : json_out_pipeline(pl, false);
	int rc;

	if (v && owners && json_out_owner(v, job ? job->owner : pl->owner) < 0) {
		json_decref(v);
		v = NULL;
	}
	if (!v)
		return -ENOMEM;
	rc = first ? 0 : outbuf_add(",", 1, b);
	if (!rc)
		rc = outbuf_add_value(b, v);
	json_decref(v);
	return rc ? -ENOMEM : 0;
}

int json_out_list_close(struct json_out_buf *b)
{
	return outbuf_add("]}", 2, b) ? -ENOMEM : 0;
}

int json_out_owner(json_t *o, uint16_t owner)
{
	const char *name = job_owner_name(owner);

	return json_object_set_new(o, "owner", name ? str_value(name) : json_null());
}
