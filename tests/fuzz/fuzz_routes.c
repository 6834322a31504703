/*
 * fuzz_routes.c - libFuzzer harness of the HTTP routing layer: api/routes.c
 * (routes_dispatch() and the core callback), with the request decoders and
 * the response encoders it calls (json_in.c, json_out.c), on a stub
 * request and a stub core.
 *
 * Input: a request in a small HTTP-like text, so that seeds are readable:
 *   METHOD SP TARGET LF          TARGET = PATH [ "?" QUERY ], %XX decoded
 *   ( NAME ":" VALUE LF )*       "core: WORDS" tells the stub core how to answer
 *   LF
 *   BODY                         everything after the blank line
 * WORDS (any of, anywhere in the value): invalid, notfound, conflict, full,
 * unavailable, internal (that error, with a message; with "nomessage"
 * without one), empty (success without the object the route needs), async
 * (the core answers after routes_dispatch() returned, as the PostgreSQL
 * store does), orphan or gone (async, and before the answer the server is
 * freed or the client disconnected), draining, sick-queue, sick-storage,
 * no-token (the key's submit_rate has no token: a submit is a 429).
 *
 * The server glue (api/http.c, api/http_conn.c, api/http_parse.c) is not
 * linked: the harness defines what routes.h asks of it -
 * http_request_answer() and its _parts, _result and _stream forms (the
 * lists: a streamed answer's pieces are asked for as a connection would,
 * and joined they must be one JSON object), http_request_stream_piece()
 * and _fail(), http_request_error(), http_request_wait(),
 * http_request_take_submit() and http_request_give_back() (a token of the
 * key's rate), and
 * http_request_query() over
 * the parsed QUERY (decoded as api/http_url.c decodes it; the path stays as
 * sent, as the server routes on it). The core's operations
 * (supervisor/core.h) are stubs that answer with canned jobs and pipelines,
 * or the error asked for, and free them as soon as the callback returns (the
 * reply is borrowed). req->conn is a token while the client is there, NULL
 * once it is gone.
 *
 * Checks, besides the sanitizers: every request is answered exactly once
 * (or, orphaned, its wait ends), and is not waiting at the end; a core
 * call is made only while the request waits (http_request_wait() first),
 * at most one per request, with the id of the URL in req->id_text; an
 * answer has a status from 200 to 599, a 204 has no body, any other body
 * is a JSON object of the length given (GET /metrics: the text the
 * stubs wrote, with its content type), an error is 4xx/5xx; a reply's
 * objects are not used after the callback (ASan); an orphaned request's
 * server is not touched (srv is NULL) and a gone client's connection is
 * not looked at; a submit takes a rate token only once, only before its
 * core call, and keeps it only when the core accepts the submit.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../../api/json_out.h"
#include "../../api/routes.h"
#include "../../supervisor/metrics.h"
#include "fuzz.h"

/* ---- what the input asks for ----------------------------------------- */

enum {
	CORE_ASYNC = 1 << 0,
	CORE_ORPHAN = 1 << 1,
	CORE_GONE = 1 << 2,
	CORE_EMPTY = 1 << 3,
	CORE_NOMESSAGE = 1 << 4,
	CORE_DRAINING = 1 << 5,
	CORE_SICK_QUEUE = 1 << 6,
	CORE_SICK_STORAGE = 1 << 7,
	CORE_NO_TOKEN = 1 << 8,
};

#define QUERY_MAX 16

static struct {
	unsigned flags;
	enum core_err err;
	/* The query's arguments, decoded: value NULL for "?key". */
	size_t nargs;
	char *keys[QUERY_MAX], *values[QUERY_MAX];
} in;

/* The request being dispatched, the server it belongs to, and what happened to it. */
static struct http_request *cur;
static char server_token; /* req->srv points here: the server is opaque to routes.c */
#define SERVER ((struct http_server *)&server_token)
static char conn_token; /* req->conn points here while the client is connected */
#define CONN_TOKEN ((struct http_conn *)&conn_token)
static unsigned answers, core_calls;
static struct {
	core_done_fn cb;
	void *arg;
	struct core_reply reply;
	bool set;
} deferred;

/* %XX decoding of the query's arguments ('+' is a space there). */
static char *unescape(const char *s, size_t n, bool plus)
{
	char *out = malloc(n + 1), *o = out;

	FUZZ_CHECK(out != NULL);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], '\0'};

			*o++ = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			*o++ = plus && s[i] == '+' ? ' ' : s[i];
		}
	}
	*o = '\0';
	return out;
}

static void parse_query(const char *q, size_t n)
{
	while (n > 0 && in.nargs < QUERY_MAX) {
		const char *amp = memchr(q, '&', n), *eq;
		size_t len = amp ? (size_t)(amp - q) : n;

		eq = memchr(q, '=', len);
		if (len > 0) {
			in.keys[in.nargs] = unescape(q, eq ? (size_t)(eq - q) : len, true);
			in.values[in.nargs] =
			    eq ? unescape(eq + 1, len - (size_t)(eq + 1 - q), true) : NULL;
			in.nargs++;
		}
		if (!amp)
			break;
		n -= len + 1;
		q = amp + 1;
	}
}

static void parse_core_words(const char *v, size_t n)
{
	static const struct {
		const char *word;
		enum core_err err;
		unsigned flags;
	} words[] = {
	    {"invalid", CORE_EINVAL, 0},	 {"notfound", CORE_ENOTFOUND, 0},
	    {"conflict", CORE_ECONFLICT, 0},	 {"full", CORE_EFULL, 0},
	    {"unavailable", CORE_EUNAVAIL, 0}, {"internal", CORE_EINTERNAL, 0},
	    {"empty", CORE_OK, CORE_EMPTY},	 {"nomessage", CORE_OK, CORE_NOMESSAGE},
	    {"async", CORE_OK, CORE_ASYNC},	 {"orphan", CORE_OK, CORE_ASYNC | CORE_ORPHAN},
	    {"gone", CORE_OK, CORE_ASYNC | CORE_GONE},
	    {"draining", CORE_OK, CORE_DRAINING},
	    {"sick-queue", CORE_OK, CORE_SICK_QUEUE},
	    {"sick-storage", CORE_OK, CORE_SICK_STORAGE},
	    {"no-token", CORE_OK, CORE_NO_TOKEN},
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!memmem(v, n, words[i].word, strlen(words[i].word)))
			continue;
		in.flags |= words[i].flags;
		if (words[i].err != CORE_OK)
			in.err = words[i].err;
	}
}

/* The next line of [*p, end): its length without LF (and a CR before it). */
static const char *next_line(const char **p, const char *end, size_t *len)
{
	const char *line = *p, *lf = memchr(line, '\n', (size_t)(end - line));

	*len = lf ? (size_t)(lf - line) : (size_t)(end - line);
	*p = lf ? lf + 1 : end;
	if (*len > 0 && line[*len - 1] == '\r')
		(*len)--;
	return line;
}

/* A request as http.c makes it: new. */
static struct http_request *parse_request(const char *data, size_t size)
{
	const char *p = data, *end = data + size, *line, *sp, *qm;
	struct http_request *req = calloc(1, sizeof(*req));
	size_t len, mlen;

	FUZZ_CHECK(req != NULL);
	req->refs = 1;
	req->srv = SERVER;
	req->conn = CONN_TOKEN;
	line = next_line(&p, end, &len);
	sp = memchr(line, ' ', len);
	mlen = sp ? (size_t)(sp - line) : len;
	snprintf(req->method, sizeof(req->method), "%.*s", (int)mlen, line);
	if (sp) {
		len -= mlen + 1;
		line = sp + 1;
	} else {
		len = 0;
	}
	qm = memchr(line, '?', len);
	/* The path as sent: the server routes on it undecoded. */
	req->url = strndup(line, qm ? (size_t)(qm - line) : len);
	FUZZ_CHECK(req->url != NULL);
	if (qm)
		parse_query(qm + 1, len - (size_t)(qm + 1 - line));
	while (p < end) {
		line = next_line(&p, end, &len);
		if (len == 0)
			break;
		if (len >= 5 && !strncasecmp(line, "core:", 5))
			parse_core_words(line + 5, len - 5);
	}
	if (p < end) {
		req->body_len = (size_t)(end - p);
		req->body = malloc(req->body_len + 1);
		FUZZ_CHECK(req->body != NULL);
		memcpy(req->body, p, req->body_len);
		req->body[req->body_len] = '\0';
		req->body_cap = req->body_len + 1;
	}
	return req;
}

/* ---- the server glue (http.c's contract) ---------------------------- */

const char *http_request_query(struct http_request *req, const char *key)
{
	FUZZ_CHECK(req == cur && key != NULL);
	for (size_t i = 0; i < in.nargs; i++)
		if (!strcmp(in.keys[i], key))
			return in.values[i] && in.values[i][0] ? in.values[i] : NULL;
	return NULL;
}

void http_request_wait(struct http_request *req)
{
	FUZZ_CHECK(req == cur && !req->waiting && !req->answered);
	req->waiting = true;
	req->refs++;
}

/* Each part stolen but parts[1] when job is given (its result text). */
static void answer(struct http_request *req, unsigned status, struct iovec *parts, unsigned n,
		   struct job *job)
{
	size_t len = 0;
	char *text;
	json_t *v;

	FUZZ_CHECK(req == cur);
	FUZZ_CHECK(status >= 200 && status <= 599);
	FUZZ_CHECK(n <= HTTP_BODY_PARTS);
	for (unsigned i = 0; i < n; i++)
		len += parts[i].iov_len;
	if (n) {
		/* The pieces together are one JSON object. */
		FUZZ_CHECK(status != 204);
		text = malloc(len + 1);
		FUZZ_CHECK(text != NULL);
		len = 0;
		for (unsigned i = 0; i < n; i++) {
			if (parts[i].iov_len)
				memcpy(text + len, parts[i].iov_base, parts[i].iov_len);
			len += parts[i].iov_len;
		}
		text[len] = '\0';
		FUZZ_CHECK(strlen(text) == len);
		if (req->content_type) {
			/* /metrics: the Prometheus text of the stubs. */
			FUZZ_CHECK(status == 200 && !strncmp(text, "# HELP valet_fuzz ", 18));
		} else {
			v = json_loadb(text, len, 0, NULL);
			FUZZ_CHECK(json_is_object(v));
			json_decref(v);
		}
		free(text);
	}
	for (unsigned i = 0; i < n; i++)
		if (!(job && i == 1))
			free(parts[i].iov_base);
	if (!(req->orphaned || !req->conn)) {
		FUZZ_CHECK(!req->answered);
		req->answered = true;
		req->status = status;
		req->resp_len = len;
	}
	answers++;
	if (!req->waiting)
		return;
	req->waiting = false;
	FUZZ_CHECK(req->refs > 1);
	req->refs--;
}

void http_request_answer(struct http_request *req, unsigned status, char *body, size_t len)
{
	struct iovec part = {body, body ? len : 0};

	FUZZ_CHECK(!body || len == strlen(body));
	answer(req, status, &part, body ? 1 : 0, NULL);
}

void http_request_answer_parts(struct http_request *req, unsigned status, struct iovec *parts,
			       unsigned n)
{
	answer(req, status, parts, n, NULL);
}

void http_request_answer_result(struct http_request *req, unsigned status,
				struct iovec parts[3], struct job *job)
{
	FUZZ_CHECK(job != NULL);
	FUZZ_CHECK(parts[1].iov_len == 0 || parts[1].iov_base == job->result_json);
	answer(req, status, parts, 3, job);
}

/* A streamed answer's pieces, joined: one JSON object once the last is in. */
static char *streamed;
static size_t streamed_len;

static void stream_add(char *piece, size_t len)
{
	if (len) {
		streamed = realloc(streamed, streamed_len + len + 1);
		FUZZ_CHECK(streamed != NULL);
		memcpy(streamed + streamed_len, piece, len);
		streamed_len += len;
		streamed[streamed_len] = '\0';
	}
	free(piece);
}

void http_request_answer_stream(struct http_request *req, unsigned status, char *piece,
				size_t len, bool last)
{
	FUZZ_CHECK(req == cur && status == 200 && req->stream_ops && req->stream);
	FUZZ_CHECK(!piece || len == strlen(piece));
	if (!(req->orphaned || !req->conn)) {
		req->streaming = true;
		req->stream_last = last;
	}
	stream_add(piece, len);
	answer(req, status, NULL, 0, NULL);
}

static void stream_end_wait(struct http_request *req)
{
	if (!req->waiting)
		return;
	req->waiting = false;
	FUZZ_CHECK(req->refs > 1);
	req->refs--;
}

void http_request_stream_piece(struct http_request *req, char *piece, size_t len, bool last)
{
	FUZZ_CHECK(req == cur && (!piece || len == strlen(piece)));
	if (req->streaming && req->stream_asked && !req->orphaned && req->conn) {
		req->stream_asked = false;
		req->stream_last = last;
	}
	stream_add(piece, len);
	stream_end_wait(req);
}

void http_request_stream_fail(struct http_request *req)
{
	FUZZ_CHECK(req == cur && req->streaming);
	req->stream_failed = true;
	stream_end_wait(req);
}

void http_request_denied(struct http_request *req, const char *why)
{
	FUZZ_CHECK(why != NULL);
}

bool http_request_take_submit(struct http_request *req)
{
	FUZZ_CHECK(req == cur && !req->waiting && !req->answered && !req->rate_taken);
	FUZZ_CHECK(!strcmp(req->method, "POST"));
	if (in.flags & CORE_NO_TOKEN) {
		http_request_error(req, 429, "no token");
		return false;
	}
	req->rate_taken = true;
	return true;
}

void http_request_give_back(struct http_request *req)
{
	FUZZ_CHECK(req == cur);
	req->rate_taken = false;
}

void http_request_error(struct http_request *req, unsigned status, const char *message)
{
	size_t len = 0;
	char *body;

	FUZZ_CHECK(status >= 400 && status <= 599);
	FUZZ_CHECK(message != NULL);
	body = json_out_error((int)status, message, &len);
	http_request_answer(req, body ? status : 500, body, len);
}

/* ---- the stub core --------------------------------------------------- */

#define T0 1795741323123456LL /* 2026-11-27T01:02:03.123456Z */

static void free_reply(struct core_reply *r)
{
	job_unref(r->job);
	pipeline_unref(r->pipeline);
	for (size_t i = 0; i < r->njobs; i++)
		job_unref(r->jobs[i]);
	free(r->jobs);
	for (size_t i = 0; i < r->npipelines; i++)
		pipeline_unref(r->pipelines[i]);
	free(r->pipelines);
	memset(r, 0, sizeof(*r));
}

/* Every core operation: checks the call, then answers now or later. */
static void reply(core_done_fn cb, void *arg, struct core_reply *r)
{
	FUZZ_CHECK(cb != NULL && arg == cur && cur->waiting && !cur->answered);
	FUZZ_CHECK(++core_calls == 1);
	if (in.err != CORE_OK) {
		free_reply(r);
		r->err = in.err;
		r->message = in.flags & CORE_NOMESSAGE ? NULL : "stub core: as asked";
	} else if (in.flags & CORE_EMPTY) {
		free_reply(r);
	}
	if (in.flags & CORE_ASYNC) {
		deferred.cb = cb;
		deferred.arg = arg;
		deferred.reply = *r;
		deferred.set = true;
		return;
	}
	cb(arg, r);
	free_reply(r);
}

/* A canned job; variant picks its status and which optional fields it has. */
static struct job *canned_job(const uint8_t id[JOB_ID_LEN], unsigned variant)
{
	struct job *job = job_new();

	FUZZ_CHECK(job != NULL);
	memcpy(job->id, id, JOB_ID_LEN);
	job_set_str(&job->name, "canned");
	job->task_name = "dummytask";
	job->timeout_ms = 1500;
	job->created_at = T0;
	job->status = (enum job_status)(1 + variant % JOB_STATUS_MAX);
	if (variant & 1) {
		job_set_str(&job->description, "d\xc3\xa9j\xe0 vu"); /* invalid UTF-8 too */
		job_set_str(&job->params_json, "{\"n\":42,\"x\":0.1}");
	}
	if (variant & 2) {
		job->in_pipeline = true;
		job->has_next = variant & 4;
		job->use_previous_results = true;
		memset(job->pipeline_id, 0xab, JOB_ID_LEN);
		memset(job->next_job_id, 0xcd, JOB_ID_LEN);
	}
	if (variant & 8) {
		job->limits = (struct job_limits){.memory_bytes = 64 << 20, .processes = 16,
						  .output_bytes = 65536, .set = true};
		job->max_attempts = 3;
		job->attempt = 2;
		job->run_at = T0 + 1000000;
		job->scheduled_at = T0 + 1000000;
	}
	if (job_status_final(job->status) || job->status == JOB_IN_PROGRESS) {
		job->started_at = T0 + 2000000;
		job_set_str(&job->isolation, "{\"namespaces\":true,\"seccomp\":\"strict@2\"}");
		job->outcome = (struct job_outcome){.pid = 4242, .exit_code = -1,
						    .term_signal = 11, .cpu_ms = 3, .wall_ms = 5,
						    .max_rss_kb = 2324, .memory_peak_kb = -1};
	}
	if (job_status_final(job->status)) {
		job->completed_at = T0 + 2750000;
		job->has_result = !(variant & 16);
		if (job->has_result)
			job_set_str(&job->result_json, variant & 1 ? "{\"sum\":3}" : "[1,\"a\"]");
		if (job->status != JOB_COMPLETED) {
			job_set_str(&job->failure_reason, "crashed: SIGSEGV (segmentation fault)");
			job_set_str(&job->result_error, "boom");
			job->outcome.seccomp_blocked = variant & 4;
			job->outcome.seccomp_syscall = variant & 4 ? "socket" : NULL;
		}
	}
	return job;
}

static struct pipeline *canned_pipeline(const uint8_t id[JOB_ID_LEN], unsigned variant)
{
	struct pipeline *pl = pipeline_new(2);
	uint8_t jid[JOB_ID_LEN];

	FUZZ_CHECK(pl != NULL);
	memcpy(pl->id, id, JOB_ID_LEN);
	job_set_str(&pl->name, "canned pipeline");
	if (variant & 1)
		job_set_str(&pl->description, "two jobs");
	pl->status = (enum job_status)(1 + variant % JOB_STATUS_MAX);
	pl->created_at = T0;
	if (pl->status != JOB_PENDING)
		pl->started_at = T0 + 1000;
	if (job_status_final(pl->status)) {
		pl->completed_at = T0 + 9000;
		if (pl->status != JOB_COMPLETED)
			job_set_str(&pl->failure_reason, "job failed");
	}
	for (size_t i = 0; i < pl->njobs; i++) {
		memcpy(jid, id, JOB_ID_LEN);
		jid[JOB_ID_LEN - 1] ^= (uint8_t)(i + 1);
		pl->jobs[i] = canned_job(jid, variant + (unsigned)i);
		pl->jobs[i]->in_pipeline = true;
		memcpy(pl->jobs[i]->pipeline_id, id, JOB_ID_LEN);
		pl->jobs[i]->pipeline_index = (int)i;
	}
	return pl;
}

static void check_id(const uint8_t id[JOB_ID_LEN])
{
	char text[JOB_ID_STRLEN + 1];

	FUZZ_CHECK(cur != NULL);
	job_id_format(id, text);
	FUZZ_CHECK(strcmp(text, cur->id_text) == 0);
}

static struct job *job_from_request(const struct job_request *rq, unsigned n)
{
	uint8_t id[JOB_ID_LEN] = {0x10, (uint8_t)n};
	struct job *job = job_new();

	FUZZ_CHECK(job != NULL);
	memcpy(job->id, id, JOB_ID_LEN);
	job_set_str(&job->name, rq->name ? rq->name : "");
	job_set_str(&job->description, rq->description);
	job->task_name = rq->task_name ? rq->task_name : ""; /* borrowed from the doc */
	job_set_str(&job->params_json, rq->params_json);
	job->timeout_ms = rq->has_timeout ? rq->timeout_ms : 60000;
	job->run_at = rq->has_run_at ? rq->run_at : 0;
	job->status = rq->has_run_at ? JOB_SCHEDULED : JOB_PENDING;
	job->created_at = T0;
	job->use_previous_results = rq->use_previous_results;
	if (rq->max_attempts)
		job->max_attempts = (int16_t)rq->max_attempts;
	if (rq->has_limits) {
		job->limits = rq->limits;
		job->limits.set = true;
	}
	return job;
}

void core_submit_job(struct core *core, const struct job_request *rq, core_done_fn cb, void *arg)
{
	struct core_reply r = {.job = job_from_request(rq, 0)};

	reply(cb, arg, &r);
}

void core_submit_pipeline(struct core *core, const struct pipeline_request *rq, core_done_fn cb,
			  void *arg)
{
	struct core_reply r = {.pipeline = pipeline_new(rq->njobs)};
	uint8_t id[JOB_ID_LEN] = {0x20};

	FUZZ_CHECK(r.pipeline != NULL);
	memcpy(r.pipeline->id, id, JOB_ID_LEN);
	job_set_str(&r.pipeline->name, rq->name ? rq->name : "");
	job_set_str(&r.pipeline->description, rq->description);
	r.pipeline->status = JOB_PENDING;
	r.pipeline->created_at = T0;
	r.pipeline->run_at = rq->has_run_at ? rq->run_at : 0;
	for (size_t i = 0; i < rq->njobs; i++) {
		r.pipeline->jobs[i] = job_from_request(&rq->jobs[i], (unsigned)i + 1);
		r.pipeline->jobs[i]->in_pipeline = true;
		memcpy(r.pipeline->jobs[i]->pipeline_id, id, JOB_ID_LEN);
	}
	reply(cb, arg, &r);
}

static void list_reply(const struct core_list_query *q, bool pipelines, core_done_fn cb,
		       void *arg)
{
	size_t n = q->limit && q->limit < 3 ? q->limit : 3;
	struct core_reply r = {0};
	uint8_t id[JOB_ID_LEN] = {0x30};

	FUZZ_CHECK(q->status >= JOB_UNDEFINED && q->status <= JOB_STATUS_MAX);
	if (pipelines) {
		r.pipelines = calloc(n ? n : 1, sizeof(*r.pipelines));
		FUZZ_CHECK(r.pipelines != NULL);
		for (; r.npipelines < n; r.npipelines++) {
			id[1] = (uint8_t)r.npipelines;
			r.pipelines[r.npipelines] =
			    canned_pipeline(id, (unsigned)(q->offset + r.npipelines));
		}
	} else {
		r.jobs = calloc(n ? n : 1, sizeof(*r.jobs));
		FUZZ_CHECK(r.jobs != NULL);
		for (; r.njobs < n; r.njobs++) {
			id[1] = (uint8_t)r.njobs;
			r.jobs[r.njobs] = canned_job(id, (unsigned)(q->offset + r.njobs));
		}
	}
	reply(cb, arg, &r);
}

void core_list_jobs(struct core *core, const struct core_list_query *q, core_done_fn cb, void *arg)
{
	list_reply(q, false, cb, arg);
}

void core_list_pipelines(struct core *core, const struct core_list_query *q, core_done_fn cb,
			 void *arg)
{
	list_reply(q, true, cb, arg);
}

/* The variant of a canned object: from the id, so that every one is reachable. */
static unsigned variant_of(const uint8_t id[JOB_ID_LEN])
{
	return id[JOB_ID_LEN - 1];
}

static void job_reply(const uint8_t id[JOB_ID_LEN], enum job_status status, core_done_fn cb,
		      void *arg)
{
	struct core_reply r = {.job = canned_job(id, variant_of(id))};

	check_id(id);
	if (status != JOB_UNDEFINED)
		r.job->status = status;
	reply(cb, arg, &r);
}

static void pipeline_reply(const uint8_t id[JOB_ID_LEN], enum job_status status, core_done_fn cb,
			   void *arg)
{
	struct core_reply r = {.pipeline = canned_pipeline(id, variant_of(id))};

	check_id(id);
	if (status != JOB_UNDEFINED)
		r.pipeline->status = status;
	reply(cb, arg, &r);
}

static void empty_reply(const uint8_t id[JOB_ID_LEN], core_done_fn cb, void *arg)
{
	struct core_reply r = {0};

	check_id(id);
	reply(cb, arg, &r);
}

static void check_patch(const struct patch_request *rq)
{
	fuzz_touch(rq->name);
	fuzz_touch(rq->description);
}

void core_get_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner, core_done_fn cb,
		  void *arg)
{
	job_reply(id, JOB_UNDEFINED, cb, arg);
}

void core_patch_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		    const struct patch_request *rq, core_done_fn cb, void *arg)
{
	check_patch(rq);
	empty_reply(id, cb, arg);
}

void core_delete_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg)
{
	empty_reply(id, cb, arg);
}

void core_cancel_job(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg)
{
	job_reply(id, JOB_CANCELLED, cb, arg);
}

void core_get_result(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		     core_done_fn cb, void *arg)
{
	job_reply(id, JOB_UNDEFINED, cb, arg);
}

void core_delete_result(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			core_done_fn cb, void *arg)
{
	empty_reply(id, cb, arg);
}

void core_get_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
		       core_done_fn cb, void *arg)
{
	pipeline_reply(id, JOB_UNDEFINED, cb, arg);
}

void core_patch_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			 const struct patch_request *rq, core_done_fn cb, void *arg)
{
	check_patch(rq);
	empty_reply(id, cb, arg);
}

void core_delete_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			  core_done_fn cb, void *arg)
{
	empty_reply(id, cb, arg);
}

void core_cancel_pipeline(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			  core_done_fn cb, void *arg)
{
	pipeline_reply(id, JOB_CANCELLED, cb, arg);
}

void core_pipeline_jobs(struct core *core, const uint8_t id[JOB_ID_LEN], uint16_t owner,
			const struct core_list_query *q, core_done_fn cb, void *arg)
{
	struct pipeline *pl = canned_pipeline(id, variant_of(id));
	struct core_reply r = {.jobs = pl->jobs, .njobs = pl->njobs, .next = pl->njobs};

	/* One page holds them all: a page after it is empty. */
	if (q->after)
		r.njobs = 0;
	for (size_t i = r.njobs; i < pl->njobs; i++)
		job_unref(pl->jobs[i]);

	/* The reply owns the pipeline's job references now. */
	pl->jobs = NULL;
	pl->njobs = 0;
	pipeline_unref(pl);
	check_id(id);
	reply(cb, arg, &r);
}

const char *const *core_task_names(struct core *core, size_t *count)
{
	static const char *const names[] = {"dummytask", "sha256", "sl\xffw", NULL};

	FUZZ_CHECK(cur && cur->srv == SERVER);
	*count = 3;
	return names;
}

bool core_queue_healthy(struct core *core)
{
	return !(in.flags & CORE_SICK_QUEUE);
}

bool core_storage_healthy(struct core *core)
{
	return !(in.flags & CORE_SICK_STORAGE);
}

bool core_draining(struct core *core)
{
	return in.flags & CORE_DRAINING;
}

void core_metrics(struct core *core, struct metrics_text *t)
{
	FUZZ_CHECK(cur && cur->srv == SERVER);
	metrics_family(t, "valet_fuzz", "gauge", "A stub's family.");
	metrics_sample(t, "valet_fuzz", 1, "route", cur->url, (const char *)NULL);
}

void http_request_metrics(struct http_request *req, struct metrics_text *t)
{
	FUZZ_CHECK(req == cur);
}

/* ---- one input -------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request *req;

	memset(&in, 0, sizeof(in));
	answers = core_calls = 0;
	req = cur = parse_request((const char *)data, size);
	/* As http_parse.c does once the head is in. */
	routes_match(req);
	FUZZ_CHECK(routes_pattern_name(req->pattern) != NULL);
	FUZZ_CHECK(req->path_id + req->path_id_len <= strlen(req->url));
	/* (http.c hands ROUTES_PAT_UI to ui.c; here no route has it: a 404.) */
	routes_dispatch(req);
	if (deferred.set) {
		FUZZ_CHECK(req->waiting && !req->answered && answers == 0);
		deferred.set = false;
		if (in.flags & CORE_ORPHAN) {
			req->orphaned = true;
			req->srv = NULL;
		}
		if (in.flags & CORE_GONE)
			req->conn = NULL;
		deferred.cb(deferred.arg, &deferred.reply);
		free_reply(&deferred.reply);
	}
	/* A streamed answer: ask for pieces as a connection would. */
	while (req->streaming && !req->stream_last && !req->stream_failed && req->conn &&
	       !req->orphaned) {
		req->stream_asked = true;
		req->stream_ops->more(req);
		FUZZ_CHECK(!req->stream_asked || req->stream_failed);
	}
	if (req->streaming && req->stream_last && !req->head) {
		json_t *v = json_loadb(streamed, streamed_len, 0, NULL);

		FUZZ_CHECK(json_is_object(v));
		json_decref(v);
	}
	FUZZ_CHECK(!req->waiting && req->refs == 1);
	FUZZ_CHECK(answers == 1);
	FUZZ_CHECK(req->answered || req->orphaned || !req->conn);
	/* A token is kept by accepted work only (the server gone: moot). */
	FUZZ_CHECK(!req->rate_taken || req->orphaned || !req->conn || in.err == CORE_OK);
	if (req->stream_ops)
		req->stream_ops->free(req->stream);
	free(streamed);
	streamed = NULL;
	streamed_len = 0;

	json_in_doc_release(&req->doc);
	free(req->body);
	free(req->url);
	free(req);
	cur = NULL;
	for (size_t i = 0; i < in.nargs; i++) {
		free(in.keys[i]);
		free(in.values[i]);
	}
	return 0;
}
