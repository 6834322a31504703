/*
 * loadgen.c - an HTTP/1.1 load generator for valetd's job API.
 *
 * Theory of operation: C transfers (libcurl easy handles, driven by one
 * multi handle on one thread) share a counter of N job submissions. A
 * transfer sends POST /api/jobs, and when the whole answer is in, the next
 * one; the multi handle keeps at most C keep-alive connections and hands
 * each transfer an idle one, so C requests are in flight at any time, each
 * alone on its connection (no pipelining). A 503 (queue full) is counted and
 * the same request is re-sent after 1 ms. The 202 answers give the job ids.
 *
 * Then one blocking transfer (its own keep-alive connection) waits for the
 * jobs: it polls GET /api/jobs/:id (backing off from 5 to 100 ms) for the
 * last few submitted ids (the queue is FIFO, so they finish last), lists the
 * final jobs once (GET /api/jobs?status=..., paginated, matched by id) and
 * polls any job still missing. Every number but the HTTP submit latency comes from the server's
 * own timestamps, read with valetd's own parser (job_time_parse(),
 * supervisor/job.o):
 *   throughput = jobs / (max completed_at - min created_at)
 *   latency    = completed_at - created_at, p50 and p99
 *   kill       = completed_at - started_at - timeout, for jobs that sleep
 *                10 s under a 50 ms timeout (--kill N)
 * --park N first submits N jobs with run_at an hour ahead, so they sit in
 * the daemon during the measurement; they are not counted. --samples adds
 * every job's figures (submit latency, submit-to-complete latency) to the
 * JSON report, so that runs of a measure in chunks (bench.sh's side_by_side) can
 * be merged into exact percentiles.
 *
 * Progress goes to stderr, the report to stdout (text, or one JSON object
 * with --json). Exit status 0 when every job was accepted and reached a
 * final state, 1 otherwise, 2 for bad usage. --selftest checks how a job's
 * answer is read and the percentiles.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "../../supervisor/job.h"
#include "loadgen.h"

#define LG_RETRY_NS 1000000LL   /* re-send a 503'd request after 1 ms */
#define LG_MAX_ATTEMPTS 5       /* transport failures for one request */
#define LG_REQUEST_TIMEOUT_S 60 /* one request; a hung server must not hang us */
#define LG_PAGE 5000            /* list page size */
#define LG_TAIL_IDS 8           /* last-submitted ids polled first */
#define LG_POLL_MIN_MS 5        /* a job's polls start this often... */
#define LG_POLL_MAX_MS 100      /* ...and back off to this */

struct opts {
	const char *host;
	const char *port;
	long jobs;
	int conns;
	const char *body;
	const char *task;
	const char *params;
	double timeout_s;
	long park;
	long kill;
	bool json;
	const char *token; /* --token: an API key's, or NULL */
};

/* An answer's body as it arrives. */
struct buf {
	char *data;
	size_t len, cap;
};

/* One request at a time: a libcurl easy handle and what it carries. */
struct xfer {
	CURL *easy;
	char *body;             /* the request body; new, kept until the answer */
	struct buf in;
	long req;               /* request index in flight, -1 when idle */
	int64_t sent_ns;
	int64_t retry_ns;       /* > 0: re-send req at this monotonic time */
	int attempts;
};

static int64_t g_deadline_ns;
static char g_base_url[300];      /* http://host:port */
static char g_jobs_url[320];      /* .../api/jobs */
static struct curl_slist *g_headers;
char g_first_failure[256]; /* the first failure_reason seen, for the report */
bool g_samples;            /* --samples */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void lg_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* --- HTTP (libcurl) ------------------------------------------------------ */

static size_t buf_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;

	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap - b->len < n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0; /* libcurl fails the transfer */
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	return n;
}

/* The URLs and headers every request uses. */
static void http_setup(const struct opts *o)
{
	/* An IPv6 literal goes in brackets. */
	bool v6 = strchr(o->host, ':') && o->host[0] != '[';

	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		lg_die("curl_global_init failed");
	snprintf(g_base_url, sizeof(g_base_url), "http://%s%s%s:%s", v6 ? "[" : "", o->host,
		 v6 ? "]" : "", o->port);
	snprintf(g_jobs_url, sizeof(g_jobs_url), "%s/api/jobs", g_base_url);
	g_headers = curl_slist_append(g_headers, "Accept: application/json");
	g_headers = curl_slist_append(g_headers, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip before a large --body. */
	g_headers = curl_slist_append(g_headers, "Expect:");
	if (o->token) {
		char auth[256];
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
		g_headers = curl_slist_append(g_headers, auth);
	}
	if (!g_headers)
		lg_die("out of memory");
}

static void xfer_init(struct xfer *x)
{
	x->req = -1;
	x->easy = curl_easy_init();
	if (!x->easy)
		lg_die("curl_easy_init failed");
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_URL, g_jobs_url);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, g_headers);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &x->in);
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT, (long)LG_REQUEST_TIMEOUT_S);
	/* The daemon is right here: never through an http_proxy of the environment. */
	curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
}

static void xfer_free(struct xfer *x)
{
	curl_easy_cleanup(x->easy);
	free(x->body);
	free(x->in.data);
}

/*
 * A blocking GET of path on the waiter's own connection (libcurl reconnects
 * when a kept-alive one turns out to be closed). Returns the HTTP status;
 * the body is in x->in. Dies when the server cannot be reached.
 */
static long sync_get(struct xfer *x, const char *path)
{
	char url[sizeof(g_base_url) + 128];
	long status = 0;
	CURLcode res;

	snprintf(url, sizeof(url), "%s%s", g_base_url, path);
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
	x->in.len = 0;
	res = curl_easy_perform(x->easy);
	if (res != CURLE_OK)
		lg_die("GET %s failed: %s", path, curl_easy_strerror(res));
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* --- the submit loop ----------------------------------------------------- */

static void phase_send(struct xfer *x, struct phase *ph, CURLM *multi)
{
	CURLMcode mc;

	if (ph->vary)
		json_object_set_new(ph->tmpl, "task_params", json_pack("{s:I}", "i",
								       (json_int_t)x->req));
	free(x->body);
	x->body = json_dumps(ph->tmpl, JSON_COMPACT);
	if (!x->body)
		lg_die("out of memory");
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
	x->in.len = 0;
	x->retry_ns = 0;
	x->sent_ns = job_mono_ns();
	mc = curl_multi_add_handle(multi, x->easy);
	if (mc != CURLM_OK)
		lg_die("curl_multi_add_handle: %s", curl_multi_strerror(mc));
}

static void phase_next(struct xfer *x, struct phase *ph, CURLM *multi)
{
	x->attempts = 0;
	x->req = ph->next < ph->n ? ph->next++ : -1;
	if (x->req >= 0)
		phase_send(x, ph, multi);
}

static void phase_answer(struct xfer *x, struct phase *ph, long status, CURLM *multi)
{
	if (status == 503) {
		ph->retries++;
		x->retry_ns = job_mono_ns() + LG_RETRY_NS;
		return;
	}
	ph->done++;
	if (status == 202) {
		json_t *job = json_loadb(x->in.data, x->in.len, 0, NULL);
		const char *id = json_string_value(json_object_get(job, "id"));

		ph->submit_ms[ph->nsubmit_ms++] = (double)(job_mono_ns() - x->sent_ns) / 1e6;
		if (id && strlen(id) < LG_ID_MAX) {
			strcpy(ph->ids[x->req], id);
			ph->accepted++;
		} else {
			ph->errors++;
		}
		json_decref(job);
	} else {
		if (ph->errors++ < 3)
			fprintf(stderr, "loadgen: %s: HTTP %ld: %.*s\n", ph->what, status,
				(int)(x->in.len > 300 ? 300 : x->in.len), x->in.data ? x->in.data : "");
	}
	phase_next(x, ph, multi);
}

/* A transfer of ph has ended (its handle is out of the multi again). */
static void phase_done(struct xfer *x, struct phase *ph, CURLcode res, CURLM *multi)
{
	long status = 0;

	if (res == CURLE_OK) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		phase_answer(x, ph, status, multi);
		return;
	}
	/* A server that takes no connections is not there: end the run. */
	if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST)
		lg_die("cannot connect to %s: %s", g_base_url, curl_easy_strerror(res));
	if (++x->attempts > LG_MAX_ATTEMPTS) {
		fprintf(stderr, "loadgen: request %ld: %s, %d times\n", x->req,
			curl_easy_strerror(res), x->attempts);
		ph->errors++;
		ph->done++;
		phase_next(x, ph, multi);
		return;
	}
	phase_send(x, ph, multi);
}

/* Until the deadline or the next re-send, in ms rounded up. */
static int poll_timeout_ms(struct xfer *xs, int nxs)
{
	int64_t now = job_mono_ns(), wait = g_deadline_ns - now;

	for (int i = 0; i < nxs; i++)
		if (xs[i].retry_ns && xs[i].retry_ns - now < wait)
			wait = xs[i].retry_ns - now;
	return wait <= 0 ? 0 : (int)((wait + 999999) / 1000000);
}

static void phase_run(struct phase *ph, struct xfer *xs, int nxs, CURLM *multi)
{
	int64_t start = job_mono_ns(), now;
	struct xfer *x;
	CURLMcode mc;
	CURLMsg *msg;
	int i, running, left;

	ph->ids = calloc((size_t)ph->n + 1, LG_ID_MAX);
	ph->submit_ms = calloc((size_t)ph->n + 1, sizeof(double));
	if (!ph->ids || !ph->submit_ms)
		lg_die("out of memory");
	for (i = 0; i < nxs; i++)
		phase_next(&xs[i], ph, multi);
	while (ph->done < ph->n) {
		mc = curl_multi_perform(multi, &running);
		if (mc != CURLM_OK)
			lg_die("curl_multi_perform: %s", curl_multi_strerror(mc));
		while ((msg = curl_multi_info_read(multi, &left))) {
			CURL *easy = msg->easy_handle;
			CURLcode res = msg->data.result;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
			/* msg is gone after this; the connection goes back to the pool. */
			curl_multi_remove_handle(multi, easy);
			phase_done(x, ph, res, multi);
		}
		now = job_mono_ns();
		for (i = 0; i < nxs; i++)
			if (xs[i].retry_ns && xs[i].retry_ns <= now)
				phase_send(&xs[i], ph, multi);
		if (now > g_deadline_ns)
			lg_die("%s: timed out submitting", ph->what);
		if (ph->done >= ph->n)
			break;
		/* Returns at once when a transfer was just added. */
		mc = curl_multi_poll(multi, NULL, 0, poll_timeout_ms(xs, nxs), NULL);
		if (mc != CURLM_OK)
			lg_die("curl_multi_poll: %s", curl_multi_strerror(mc));
	}
	ph->seconds = (double)(job_mono_ns() - start) / 1e9;
}

/* --- waiting for the jobs ------------------------------------------------ */

static enum js parse_job(json_t *job, struct jobrec *rec)
{
	const char *status = json_string_value(json_object_get(job, "status"));
	const char *t;

	rec->state = !status ? JS_UNKNOWN :
		     !strcmp(status, "COMPLETED") ? JS_COMPLETED :
		     !strcmp(status, "FAILED") ? JS_FAILED :
		     !strcmp(status, "CANCELLED") ? JS_CANCELLED : JS_WAITING;
	if ((t = json_string_value(json_object_get(job, "created_at"))))
		job_time_parse(t, &rec->created);
	if ((t = json_string_value(json_object_get(job, "started_at"))))
		job_time_parse(t, &rec->started);
	if ((t = json_string_value(json_object_get(job, "completed_at"))))
		job_time_parse(t, &rec->completed);
	rec->timeout_s = json_number_value(json_object_get(job, "timeout"));
	t = json_string_value(json_object_get(job, "failure_reason"));
	rec->timed_out = json_is_true(json_object_get(json_object_get(job, "outcome"),
						      "timed_out")) ||
			 (t && !strncmp(t, "timed out", 9));
	if (t && rec->state == JS_FAILED && !g_first_failure[0])
		snprintf(g_first_failure, sizeof(g_first_failure), "%s", t);
	return rec->state;
}

/*
 * Polls GET /api/jobs/:id until the job is final; false at the deadline.
 * The polls back off (5 ms doubling to 100 ms): the figures come from the
 * server's timestamps, so a late poll changes none of them, while each poll
 * costs the machine under test CPU (an HTTP request, and with PostgreSQL a
 * query) for as long as the queue takes to drain.
 */
static bool poll_job(struct xfer *x, const char *id, struct jobrec *rec)
{
	char path[128];
	json_t *job;
	int wait_ms = LG_POLL_MIN_MS;

	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	while (job_mono_ns() < g_deadline_ns) {
		job = sync_get(x, path) == 200 ? json_loadb(x->in.data, x->in.len, 0, NULL) : NULL;
		if (job && parse_job(job, rec) >= JS_COMPLETED) {
			json_decref(job);
			return true;
		}
		json_decref(job);
		sleep_ms(wait_ms);
		wait_ms = wait_ms * 2 > LG_POLL_MAX_MS ? LG_POLL_MAX_MS : wait_ms * 2;
	}
	return false;
}

static const char (*g_sort_ids)[LG_ID_MAX];

static int cmp_index(const void *a, const void *b)
{
	return strcmp(g_sort_ids[*(const long *)a], g_sort_ids[*(const long *)b]);
}

static int cmp_key(const void *key, const void *b)
{
	return strcmp(key, g_sort_ids[*(const long *)b]);
}

/* Lists the jobs in one status page by page and files those that are ours. */
static void fetch_list(struct xfer *x, const char *status, struct phase *ph, long *order,
		       struct jobrec *recs)
{
	char path[128], first[LG_ID_MAX] = "", prev_first[LG_ID_MAX] = "";
	size_t i, count;
	long offset = 0;
	json_t *page, *jobs, *job;

	do {
		snprintf(path, sizeof(path), "/api/jobs?status=%s&limit=%d&offset=%ld", status,
			 LG_PAGE, offset);
		page = sync_get(x, path) == 200 ? json_loadb(x->in.data, x->in.len, 0, NULL) : NULL;
		jobs = json_object_get(page, "jobs");
		count = json_array_size(jobs);
		json_array_foreach(jobs, i, job) {
			const char *id = json_string_value(json_object_get(job, "id"));
			long *hit = id ? bsearch(id, order, (size_t)ph->n, sizeof(long),
						 cmp_key) : NULL;

			if (i == 0 && id)
				snprintf(first, sizeof(first), "%s", id);
			if (hit)
				parse_job(job, &recs[*hit]);
		}
		json_decref(page);
		offset += (long)count;
		/* A server that ignores limit or offset would repeat itself: stop. */
		if (count > LG_PAGE || (count && !strcmp(first, prev_first)))
			break;
		memcpy(prev_first, first, sizeof(first));
	} while (count > 0);
}
/* Waits until every accepted job of ph is final; returns how many are. */
static long wait_final(struct xfer *x, struct phase *ph, struct jobrec *recs)
{
	static const char *const finals[] = { "completed", "failed", "cancelled" };
	long *order = malloc(((size_t)ph->n + 1) * sizeof(long)), k, tail = 0, nfinal = 0;

	if (!order)
		lg_die("out of memory");
	for (k = ph->n - 1; k >= 0 && tail < LG_TAIL_IDS; k--) {
		if (ph->ids[k][0] && !poll_job(x, ph->ids[k], &recs[k]))
			goto out;
		tail += ph->ids[k][0] != '\0';
	}
	for (k = 0; k < ph->n; k++)
		order[k] = k;
	g_sort_ids = (const char (*)[LG_ID_MAX])ph->ids;
	qsort(order, (size_t)ph->n, sizeof(long), cmp_index);
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
		fetch_list(x, finals[i], ph, order, recs);
	for (k = 0; k < ph->n; k++) {
		if (ph->ids[k][0] && recs[k].state < JS_COMPLETED && !poll_job(x, ph->ids[k], &recs[k]))
			break;
	}
out:
	for (k = 0; k < ph->n; k++)
		nfinal += recs[k].state >= JS_COMPLETED;
	free(order);
	return nfinal;
}


/* --- self test ----------------------------------------------------------- */

/* What loadgen makes of the server's answers: a job, as valetd writes it. */
static int selftest(void)
{
	static const char killed[] =
		"{\"id\":\"x\",\"status\":\"FAILED\",\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		"\"started_at\":\"2026-11-27T01:02:04Z\",\"completed_at\":"
		"\"2026-11-27T01:02:04.05125Z\",\"timeout\":0.05,\"failure_reason\":"
		"\"timed out after 50ms (killed)\",\"outcome\":{\"timed_out\":true}}";
	static const char waiting[] =
		"{\"status\":\"SCHEDULED\",\"created_at\":\"2026-11-27T01:02:03Z\",\"timeout\":60}";
	const int64_t base = 1795741323LL * 1000000; /* 2026-11-27T01:02:03Z */
	double v[100];
	struct jobrec r = { 0 };
	int failed = 0;
	json_t *job;

	job = json_loads(killed, 0, NULL);
	if (parse_job(job, &r) != JS_FAILED || r.created != base + 123456 ||
	    r.started != base + 1000000 || r.completed != base + 1051250 || !r.timed_out ||
	    r.timeout_s != 0.05 || strcmp(g_first_failure, "timed out after 50ms (killed)")) {
		fprintf(stderr, "selftest: a killed job read as state %d, %lld %lld %lld, %d\n",
			r.state, (long long)r.created, (long long)r.started,
			(long long)r.completed, r.timed_out);
		failed++;
	}
	json_decref(job);
	g_first_failure[0] = '\0';
	r = (struct jobrec){ 0 };
	job = json_loads(waiting, 0, NULL);
	if (parse_job(job, &r) != JS_WAITING || r.created != base || r.completed || r.timed_out) {
		fprintf(stderr, "selftest: a scheduled job read as state %d\n", r.state);
		failed++;
	}
	json_decref(job);
	/* Nearest rank: of 1..100, p50 is 50 and p99 is 99. */
	for (int i = 0; i < 100; i++)
		v[i] = 100 - i;
	if (lg_percentile(v, 100, 0.50) != 50 || lg_percentile(v, 100, 0.99) != 99 ||
	    !isnan(lg_percentile(v, 0, 0.5))) {
		fprintf(stderr, "selftest: percentile\n");
		failed++;
	}
	fprintf(stderr, "selftest: %s\n", failed ? "FAILED" : "ok");
	return failed ? 1 : 0;
}

/* --- main ---------------------------------------------------------------- */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: loadgen [options]\n"
		"  --host HOST      server address (127.0.0.1)\n"
		"  --port PORT      server port (8080)\n"
		"  --jobs N         jobs to submit and time (10000; 0 with --kill)\n"
		"  --conns C        keep-alive connections (8)\n"
		"  --task NAME      task_name (dummytask)\n"
		"  --params JSON    task_params for every job (default {\"i\": k})\n"
		"  --body JSON      the whole job request for every job\n"
		"  --park N         first park N jobs with run_at an hour ahead (not timed)\n"
		"  --kill N         time the kill of N sleep jobs (10 s) under a 50 ms timeout\n"
		"  --timeout SEC    give up after SEC seconds in all (300)\n"
		"  --token TOKEN    an API key: Authorization: Bearer TOKEN on every request\n"
		"  --json           print the report as one JSON object\n"
		"  --samples        with --json: every job's latencies too (for merging)\n"
		"  --selftest       check how answers are read and exit\n");
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "loadgen: %s: expected an integer in [%ld, %ld], got \"%s\"\n",
			opt, min, max, s);
		exit(2);
	}
	return v;
}

static json_t *parse_object(const char *opt, const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

	if (!json_is_object(v)) {
		fprintf(stderr, "loadgen: %s: not a JSON object: %s\n", opt,
			v ? "wrong type" : err.text);
		exit(2);
	}
	return v;
}

/* The job request for the timed jobs (name "b") and the parked ones. */
static json_t *job_template(const struct opts *o, const char *name, bool *vary)
{
	json_t *t;

	*vary = false;
	if (o->body)
		return parse_object("--body", o->body);
	t = json_pack("{s:s,s:s}", "name", name, "task_name", o->task);
	if (o->params)
		json_object_set_new(t, "task_params", parse_object("--params", o->params));
	else
		*vary = true;
	return t;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' }, { "port", required_argument, NULL, 'p' },
		{ "jobs", required_argument, NULL, 'n' }, { "conns", required_argument, NULL, 'c' },
		{ "body", required_argument, NULL, 'b' }, { "task", required_argument, NULL, 't' },
		{ "params", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "park", required_argument, NULL, 'k' }, { "kill", required_argument, NULL, 'K' },
		{ "json", no_argument, NULL, 'j' }, { "selftest", no_argument, NULL, 'S' },
		{ "token", required_argument, NULL, 'A' }, { "samples", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool jobs_set = false;
	char *end;
	int ch;

	*o = (struct opts){ .host = "127.0.0.1", .port = "8080", .jobs = 10000, .conns = 8,
			    .task = "dummytask", .timeout_s = 300 };
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': o->host = optarg; break;
		case 'p': parse_long("--port", optarg, 1, 65535); o->port = optarg; break;
		case 'n': o->jobs = parse_long("--jobs", optarg, 0, 100000000); jobs_set = true; break;
		case 'c': o->conns = (int)parse_long("--conns", optarg, 1, 4096); break;
		case 'b': o->body = optarg; break;
		case 't': o->task = optarg; break;
		case 'P': o->params = optarg; break;
		case 'k': o->park = parse_long("--park", optarg, 0, 100000000); break;
		case 'K': o->kill = parse_long("--kill", optarg, 0, 100000000); break;
		case 'j': o->json = true; break;
		case 'A': o->token = optarg; break;
		case 's': g_samples = true; break;
		case 'S': exit(selftest());
		case 'h': usage(stdout); exit(0);
		case 'T':
			o->timeout_s = strtod(optarg, &end);
			if (*end || !(o->timeout_s > 0)) {
				fprintf(stderr, "loadgen: --timeout: expected seconds > 0\n");
				exit(2);
			}
			break;
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (o->kill && !jobs_set)
		o->jobs = 0;
}

static void phase_free(struct phase *ph)
{
	json_decref(ph->tmpl);
	free(ph->ids);
	free(ph->submit_ms);
}


/* Submits ph, then (unless parking) waits and reports it under key. */
static bool run_phase(struct phase *ph, struct xfer *xs, int nxs, CURLM *multi,
		      struct xfer *waiter, bool kill, const char *key, json_t *report)
{
	json_t *out = json_object();
	struct jobrec *recs;
	long nfinal;
	bool ok;

	fprintf(stderr, "loadgen: %s: submitting %ld jobs over %d connections\n", ph->what,
		ph->n, nxs);
	phase_run(ph, xs, nxs, multi);
	fprintf(stderr, "loadgen: %s: %ld accepted in %.2f s (%ld 503 retries, %ld errors)\n",
		ph->what, ph->accepted, ph->seconds, ph->retries, ph->errors);
	if (!strcmp(key, "park")) {
		lg_report_submit(ph, out);
		json_object_set_new(report, key, out);
		return ph->errors == 0;
	}
	recs = calloc((size_t)ph->n + 1, sizeof(*recs));
	if (!recs)
		lg_die("out of memory");
	nfinal = wait_final(waiter, ph, recs);
	if (nfinal < ph->accepted)
		fprintf(stderr, "loadgen: %s: %ld of %ld jobs not final before the timeout\n",
			ph->what, ph->accepted - nfinal, ph->accepted);
	ok = lg_report_phase(ph, recs, nfinal, kill, out);
	if (g_first_failure[0])
		json_object_set_new(out, "first_failure", json_string(g_first_failure));
	g_first_failure[0] = '\0';
	json_object_set_new(report, key, out);
	free(recs);
	return ok;
}

int main(int argc, char **argv)
{
	struct xfer *xs, waiter = { 0 };
	json_t *report;
	struct opts o;
	char run_at[64];
	bool ok = true;
	CURLM *multi;
	int i;

	parse_opts(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	g_deadline_ns = job_mono_ns() + (int64_t)(o.timeout_s * 1e9);
	http_setup(&o);

	/* At most C connections, all kept alive: the pool holds as many. */
	multi = curl_multi_init();
	xs = calloc((size_t)o.conns, sizeof(*xs));
	if (!multi || !xs)
		lg_die("setup failed");
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o.conns);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o.conns);
	for (i = 0; i < o.conns; i++)
		xfer_init(&xs[i]);
	xfer_init(&waiter);
	report = json_pack("{s:i}", "conns", o.conns);

	if (o.park > 0) {
		struct phase ph = { .what = "park", .n = o.park };

		ph.tmpl = job_template(&o, "park", &ph.vary);
		job_time_format(job_now_us() + 3600LL * 1000000, run_at, sizeof(run_at));
		json_object_set_new(ph.tmpl, "run_at", json_string(run_at));
		ok &= run_phase(&ph, xs, o.conns, multi, &waiter, false, "park", report);
		phase_free(&ph);
	}
	if (o.jobs > 0) {
		struct phase ph = { .what = "run", .n = o.jobs };

		ph.tmpl = job_template(&o, "b", &ph.vary);
		ok &= run_phase(&ph, xs, o.conns, multi, &waiter, false, "run", report);
		phase_free(&ph);
	}
	if (o.kill > 0) {
		struct phase ph = { .what = "kill", .n = o.kill };

		ph.tmpl = json_pack("{s:s,s:s,s:{s:i},s:f}", "name", "kill", "task_name", "sleep",
				    "task_params", "seconds", 10, "timeout", 0.05);
		ok &= run_phase(&ph, xs, o.conns, multi, &waiter, true, "kill", report);
		phase_free(&ph);
	}
	json_object_set_new(report, "ok", json_boolean(ok));

	if (o.json) {
		json_dumpf(report, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
		putchar('\n');
	} else {
		lg_print_text(report);
	}
	/* Every transfer has ended, so none is still in the multi handle. */
	for (i = 0; i < o.conns; i++)
		xfer_free(&xs[i]);
	xfer_free(&waiter);
	free(xs);
	curl_multi_cleanup(multi);
	curl_slist_free_all(g_headers);
	curl_global_cleanup();
	json_decref(report);
	return ok ? 0 : 1;
}
