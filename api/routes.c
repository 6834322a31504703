/*
 * routes.c - routing and handlers of the HTTP JSON API (API.md).
 *
 * Theory of operation: http.c hands over a complete request (method, path,
 * body). The path is split into at most three segments under /api and
 * matched against the route table in routes_dispatch(); a wrong method on a
 * known path is a 404, as in the original. Requests that need no storage
 * (status, tasks) and requests refused before the core (bad id, bad query,
 * bad body, shutting down) are answered at once. The others decode what
 * they need, record which route they are (req->route) and call the core;
 * the core's callback, routes_done(), encodes the reply by route while the
 * reply's objects are still borrowed, and hands the bytes to
 * http_request_answer(). The callback may run inside the core call (memory
 * store) or later from the loop; http.c copes with both.
 *
 * Ownership: with API keys, new work is the key's (req->owner), and every
 * other call passes the key's owner as a filter - an admin key's is 0, so
 * it sees all work and, here, each object's "owner". Another key's id is a
 * 404 from the core, as an unknown one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supervisor/metrics.h"
#include "json_out.h"
#include "routes.h"

#ifndef VALET_VERSION
#define VALET_VERSION "0.0.0"
#endif

#define ROUTES_MAX_SEGS 3

/* A path segment: a slice of req->url. */
struct seg {
	const char *p;
	size_t len;
};

static bool seg_is(const struct seg *s, const char *word)
{
	return s->len == strlen(word) && memcmp(s->p, word, s->len) == 0;
}

/* Splits "/api/a/b/c"; returns the number of segments, or -1 for no match. */
static int split_path(const char *url, struct seg segs[ROUTES_MAX_SEGS])
{
	const char *p, *slash;
	int n = 0;

	if (strncmp(url, "/api/", 5) != 0)
		return -1;
	p = url + 5;
	for (;;) {
		if (n == ROUTES_MAX_SEGS)
			return -1;
		slash = strchr(p, '/');
		segs[n].p = p;
		segs[n].len = slash ? (size_t)(slash - p) : strlen(p);
		if (segs[n].len == 0)
			return -1; /* "//" or a trailing slash */
		n++;
		if (!slash)
			return n;
		p = slash + 1;
	}
}

static unsigned status_of(enum core_err err)
{
	switch (err) {
	case CORE_EINVAL:
		return 400;
	case CORE_ENOTFOUND:
		return 404;
	case CORE_ECONFLICT:
		return 409;
	case CORE_EFORBIDDEN:
		return 403;
	case CORE_EFULL:
	case CORE_EUNAVAIL:
		return 503;
	default:
		return 500;
	}
}

/* The owner filter of the request's core calls: the key's, or 0 (all
 * work) for an admin key and an open API. */
static uint16_t viewer(const struct http_request *req)
{
	return req->key_admin ? 0 : req->owner;
}

/* An admin sees whose work an object is; v is stolen and returned. */
static json_t *with_owner(const struct http_request *req, json_t *v, uint16_t owner)
{
	if (v && req->key_admin && json_out_owner(v, owner) < 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static void answer_json(struct http_request *req, unsigned status, json_t *v)
{
	size_t len = 0;
	char *text = v ? json_out_dump(v, &len) : NULL;

	json_decref(v);
	if (!text) {
		http_request_error(req, 500, "out of memory");
		return;
	}
	http_request_answer(req, status, text, len);
}

static void answer_list(struct http_request *req, int rc, char *text, size_t len)
{
	if (rc < 0)
		http_request_error(req, 500, "out of memory");
	else
		http_request_answer(req, 200, text, len);
}

static void not_found(struct http_request *req, const char *what, const struct seg *id)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s with ID: %.*s not found", what, (int)id->len, id->p);
	http_request_error(req, 404, msg);
}

/* Encodes a successful core reply according to the request's route. */
static void answer_reply(struct http_request *req, const struct core_reply *r)
{
	struct iovec parts[3];
	char *text = NULL;
	size_t len = 0;
	char msg[128];
	int rc;

	switch (req->route) {
	case ROUTE_SUBMIT_JOB:
	case ROUTE_GET_JOB:
	case ROUTE_CANCEL_JOB:
		if (!r->job)
			break;
		answer_json(req, req->route == ROUTE_SUBMIT_JOB ? 202 : 200,
			    with_owner(req, json_out_job(r->job), r->job->owner));
		return;
	case ROUTE_LIST_JOBS:
	case ROUTE_PIPELINE_JOBS:
		rc = json_out_job_list("jobs", r->jobs, r->njobs, req->key_admin, &text, &len);
		answer_list(req, rc, text, len);
		return;
	case ROUTE_GET_RESULT:
		if (!r->job || !r->job->has_result) {
			snprintf(msg, sizeof(msg), "job result with ID: %s not found",
				 req->id_text);
			http_request_error(req, 404, msg);
			return;
		}
		if (json_out_result(r->job, &parts[0], &parts[1], &parts[2]) < 0)
			http_request_error(req, 500, "out of memory");
		else
			http_request_answer_result(req, 200, parts, r->job);
		return;
	case ROUTE_SUBMIT_PIPELINE:
	case ROUTE_GET_PIPELINE:
	case ROUTE_CANCEL_PIPELINE:
		if (!r->pipeline)
			break;
		answer_json(
		    req, req->route == ROUTE_SUBMIT_PIPELINE ? 202 : 200,
		    with_owner(req,
			       json_out_pipeline(r->pipeline, req->route == ROUTE_SUBMIT_PIPELINE),
			       r->pipeline->owner));
		return;
	case ROUTE_LIST_PIPELINES:
		rc = json_out_pipeline_list("pipelines", r->pipelines, r->npipelines,
					    req->key_admin, &text, &len);
		answer_list(req, rc, text, len);
		return;
	case ROUTE_PATCH_JOB:
	case ROUTE_DELETE_JOB:
	case ROUTE_DELETE_RESULT:
	case ROUTE_PATCH_PIPELINE:
	case ROUTE_DELETE_PIPELINE:
		http_request_answer(req, 204, NULL, 0);
		return;
	case ROUTE_NONE:
		break;
	}
	http_request_error(req, 500, "internal error: the core gave an empty reply");
}

/* The core's callback for every route. */
static void routes_done(void *arg, const struct core_reply *reply)
{
	struct http_request *req = arg;

	if (req->orphaned) {
		/* Nobody listens any more: just end the wait. */
		http_request_answer(req, 500, NULL, 0);
		return;
	}
	if (reply->err == CORE_EFORBIDDEN)
		http_request_denied(req, reply->message ? reply->message : "policy");
	if (reply->err != CORE_OK) {
		http_request_error(req, status_of(reply->err),
				   reply->message ? reply->message : "internal error");
		return;
	}
	answer_reply(req, reply);
}

/* ---- query strings -------------------------------------------------- */

static const char *query_arg(struct http_request *req, const char *key)
{
	return http_request_query(req, key);
}

/*
 * ?limit= and ?offset=: decimal digits, at most INT64_MAX - what PostgreSQL
 * takes for LIMIT and OFFSET (a bigint), so that both stores answer the
 * same; anything else is a 400 here, before a store sees it.
 */
_Static_assert(SIZE_MAX >= INT64_MAX, "a count up to INT64_MAX fits a size_t");

static int parse_count(struct http_request *req, const char *key, size_t *out)
{
	const char *v = query_arg(req, key), *p;
	char msg[256];
	uint64_t n = 0;

	*out = 0;
	if (!v)
		return 0;
	for (p = v; *p; p++) {
		if (!isdigit((unsigned char)*p) ||
		    n > (uint64_t)(INT64_MAX - (*p - '0')) / 10)
			goto bad;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*out = (size_t)n;
	return 0;
bad:
	snprintf(msg, sizeof(msg), "invalid %s: \"%.100s\" (an integer from 0 to %lld)", key, v,
		 (long long)INT64_MAX);
	http_request_error(req, 400, msg);
	return -EINVAL;
}

/* Fills q from ?status=&limit=&offset=; answers 400 and returns < 0 on error. */
static int list_query(struct http_request *req, struct core_list_query *q)
{
	const char *status = query_arg(req, "status");
	char upper[200], msg[256];
	size_t i;

	memset(q, 0, sizeof(*q));
	if (status) {
		q->status = job_status_parse(status);
		if (q->status == JOB_UNDEFINED) {
			for (i = 0; i < sizeof(upper) - 1 && status[i]; i++)
				upper[i] = (char)toupper((unsigned char)status[i]);
			upper[i] = '\0';
			snprintf(msg, sizeof(msg), "invalid status: \"%s\"", upper);
			http_request_error(req, 400, msg);
			return -EINVAL;
		}
	}
	if (parse_count(req, "limit", &q->limit) < 0 || parse_count(req, "offset", &q->offset) < 0)
		return -EINVAL;
	return 0;
}

/* ---- handlers ------------------------------------------------------- */

static void handle_status(struct http_request *req)
{
	struct core *core = req->core;
	bool queue_ok = core_queue_healthy(core), storage_ok = core_storage_healthy(core);
	char now[40];
	json_t *o = json_object();

	job_time_format(job_now_us(), now, sizeof(now));
	if (o && (json_object_set_new(o, "job_queue_healthy", json_boolean(queue_ok)) ||
		  json_object_set_new(o, "storage_healthy", json_boolean(storage_ok)) ||
		  json_object_set_new(o, "time", json_string(now)) ||
		  json_object_set_new(o, "version", json_string(VALET_VERSION)))) {
		json_decref(o);
		o = NULL;
	}
	answer_json(req, queue_ok && storage_ok ? 200 : 503, o);
}

static void handle_tasks(struct http_request *req)
{
	size_t n = 0, i;
	const char *const *names = core_task_names(req->core, &n);
	json_t *o = json_object(), *arr = json_array();
	int rc = !o || !arr;

	for (i = 0; !rc && i < n; i++)
		rc = json_array_append_new(arr, json_string(names[i]));
	if (!rc) {
		rc = json_object_set_new(o, "tasks", arr);
		arr = NULL;
	}
	json_decref(arr);
	if (rc) {
		json_decref(o);
		o = NULL;
	}
	answer_json(req, 200, o);
}

/* GET /api/openapi.json: api/openapi.json, compiled in by the Makefile. */
static void handle_openapi(struct http_request *req)
{
	char *copy = malloc(routes_openapi_json_len + 1);

	if (!copy) {
		http_request_error(req, 500, "out of memory");
		return;
	}
	memcpy(copy, routes_openapi_json, routes_openapi_json_len + 1);
	http_request_answer(req, 200, copy, routes_openapi_json_len);
}

/* GET /metrics: the core's families, then the HTTP server's. */
static void handle_metrics(struct http_request *req)
{
	struct metrics_text t = {0};

	core_metrics(req->core, &t);
	http_request_metrics(req, &t);
	if (t.err) {
		free(t.data);
		http_request_error(req, 500, "out of memory");
		return;
	}
	req->content_type = "text/plain; version=0.0.4; charset=utf-8";
	http_request_answer(req, 200, t.data, t.len);
}

/* Decoding failed: 400 with the message, or 500 on ENOMEM. */
static void bad_body(struct http_request *req, int rc, const char *err)
{
	if (rc == -EINVAL)
		http_request_error(req, 400, err);
	else
		http_request_error(req, 500, "out of memory");
}

static bool refuse_new_work(struct http_request *req)
{
	if (!core_draining(req->core))
		return false;
	http_request_error(req, 503, "shutting down - not accepting new work");
	return true;
}

static void handle_submit_job(struct http_request *req)
{
	char err[JSON_IN_ERRLEN];
	int rc;

	if (refuse_new_work(req))
		return;
	rc = json_in_job(&req->doc, req->body, req->body_len, &req->in.job, err, sizeof(err));
	if (rc) {
		bad_body(req, rc, err);
		return;
	}
	req->in.job.owner = req->owner;
	req->in.job.policy = req->policy;
	req->route = ROUTE_SUBMIT_JOB;
	http_request_wait(req);
	core_submit_job(req->core, &req->in.job, routes_done, req);
}

static void handle_submit_pipeline(struct http_request *req)
{
	char err[JSON_IN_ERRLEN];
	int rc;

	if (refuse_new_work(req))
		return;
	rc = json_in_pipeline(&req->doc, req->body, req->body_len, &req->in.pipeline, err,
			      sizeof(err));
	if (rc) {
		bad_body(req, rc, err);
		return;
	}
	req->in.pipeline.owner = req->owner;
	req->in.pipeline.policy = req->policy;
	req->route = ROUTE_SUBMIT_PIPELINE;
	http_request_wait(req);
	core_submit_pipeline(req->core, &req->in.pipeline, routes_done, req);
}

static void handle_list(struct http_request *req, bool pipelines)
{
	struct core_list_query q;

	if (list_query(req, &q) < 0)
		return;
	q.owner = viewer(req);
	req->route = pipelines ? ROUTE_LIST_PIPELINES : ROUTE_LIST_JOBS;
	http_request_wait(req);
	if (pipelines)
		core_list_pipelines(req->core, &q, routes_done, req);
	else
		core_list_jobs(req->core, &q, routes_done, req);
}

/* Starts a core call on one job or pipeline id (already parsed). */
static void call_by_id(struct http_request *req, enum http_route route, const uint8_t id[])
{
	struct core *core = req->core;
	uint16_t owner = viewer(req);

	job_id_format(id, req->id_text);
	req->route = route;
	http_request_wait(req);
	switch (route) {
	case ROUTE_GET_JOB:
		core_get_job(core, id, owner, routes_done, req);
		break;
	case ROUTE_PATCH_JOB:
		core_patch_job(core, id, owner, &req->in.patch, routes_done, req);
		break;
	case ROUTE_DELETE_JOB:
		core_delete_job(core, id, owner, routes_done, req);
		break;
	case ROUTE_CANCEL_JOB:
		core_cancel_job(core, id, owner, routes_done, req);
		break;
	case ROUTE_GET_RESULT:
		core_get_result(core, id, owner, routes_done, req);
		break;
	case ROUTE_DELETE_RESULT:
		core_delete_result(core, id, owner, routes_done, req);
		break;
	case ROUTE_GET_PIPELINE:
		core_get_pipeline(core, id, owner, routes_done, req);
		break;
	case ROUTE_PATCH_PIPELINE:
		core_patch_pipeline(core, id, owner, &req->in.patch, routes_done, req);
		break;
	case ROUTE_DELETE_PIPELINE:
		core_delete_pipeline(core, id, owner, routes_done, req);
		break;
	case ROUTE_CANCEL_PIPELINE:
		core_cancel_pipeline(core, id, owner, routes_done, req);
		break;
	case ROUTE_PIPELINE_JOBS:
		core_pipeline_jobs(core, id, owner, routes_done, req);
		break;
	default:
		http_request_error(req, 500, "internal error: bad route");
		break;
	}
}

/* The route for a method on /api/<kind>/<id>[/<action>], or ROUTE_NONE. */
static enum http_route route_for_id(const char *m, bool pipelines, const struct seg *action)
{
	bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST");

	if (!action) {
		if (get)
			return pipelines ? ROUTE_GET_PIPELINE : ROUTE_GET_JOB;
		if (!strcmp(m, "PATCH"))
			return pipelines ? ROUTE_PATCH_PIPELINE : ROUTE_PATCH_JOB;
		if (!strcmp(m, "DELETE"))
			return pipelines ? ROUTE_DELETE_PIPELINE : ROUTE_DELETE_JOB;
		return ROUTE_NONE;
	}
	if (seg_is(action, "cancel") && post)
		return pipelines ? ROUTE_CANCEL_PIPELINE : ROUTE_CANCEL_JOB;
	if (pipelines)
		return seg_is(action, "jobs") && get ? ROUTE_PIPELINE_JOBS : ROUTE_NONE;
	if (!seg_is(action, "results"))
		return ROUTE_NONE;
	if (get)
		return ROUTE_GET_RESULT;
	return !strcmp(m, "DELETE") ? ROUTE_DELETE_RESULT : ROUTE_NONE;
}

/* /api/jobs/:id... and /api/pipelines/:id... */
static void handle_by_id(struct http_request *req, bool pipelines, const struct seg *id,
			 const struct seg *action)
{
	enum http_route route = route_for_id(req->method, pipelines, action);
	char idbuf[JOB_ID_STRLEN + 1], err[JSON_IN_ERRLEN];
	uint8_t bin[JOB_ID_LEN];
	int rc;

	if (route == ROUTE_NONE) {
		http_request_error(req, 404, "not found");
		return;
	}
	/* A malformed id is simply an unknown one. */
	if (id->len != JOB_ID_STRLEN) {
		rc = -EINVAL;
	} else {
		memcpy(idbuf, id->p, JOB_ID_STRLEN);
		idbuf[JOB_ID_STRLEN] = '\0';
		rc = job_id_parse(idbuf, bin);
	}
	if (rc < 0) {
		if (pipelines)
			not_found(req, "pipeline", id);
		else if (route == ROUTE_GET_RESULT || route == ROUTE_DELETE_RESULT)
			not_found(req, "job result", id);
		else
			not_found(req, "job", id);
		return;
	}
	if (route == ROUTE_PATCH_JOB || route == ROUTE_PATCH_PIPELINE) {
		rc = json_in_patch(&req->doc, req->body, req->body_len, &req->in.patch, err,
				   sizeof(err));
		if (rc) {
			bad_body(req, rc, err);
			return;
		}
	}
	call_by_id(req, route, bin);
}

/* The route patterns (the metrics' route label), in routes_pattern_name() order. */
enum { PAT_OTHER, PAT_STATUS, PAT_TASKS, PAT_JOBS, PAT_JOB, PAT_JOB_CANCEL, PAT_JOB_RESULTS,
       PAT_PIPELINES, PAT_PIPELINE, PAT_PIPELINE_CANCEL, PAT_PIPELINE_JOBS, PAT_METRICS,
       PAT_OPENAPI, PAT_UI };

static const char *const patterns[ROUTES_NPATTERNS] = {
    [PAT_OTHER] = "other",
    [PAT_STATUS] = "/api/status",
    [PAT_TASKS] = "/api/tasks",
    [PAT_JOBS] = "/api/jobs",
    [PAT_JOB] = "/api/jobs/:id",
    [PAT_JOB_CANCEL] = "/api/jobs/:id/cancel",
    [PAT_JOB_RESULTS] = "/api/jobs/:id/results",
    [PAT_PIPELINES] = "/api/pipelines",
    [PAT_PIPELINE] = "/api/pipelines/:id",
    [PAT_PIPELINE_CANCEL] = "/api/pipelines/:id/cancel",
    [PAT_PIPELINE_JOBS] = "/api/pipelines/:id/jobs",
    [PAT_METRICS] = "/metrics",
    [PAT_OPENAPI] = "/api/openapi.json",
    [PAT_UI] = "/ui/",
};

const char *routes_pattern_name(unsigned pattern)
{
	return pattern < ROUTES_NPATTERNS ? patterns[pattern] : NULL;
}

unsigned routes_pattern(const char *url)
{
	struct seg segs[ROUTES_MAX_SEGS];
	int n = url ? split_path(url, segs) : -1;
	bool pl = n >= 1 && seg_is(&segs[0], "pipelines");

	if (url && !strcmp(url, "/metrics"))
		return PAT_METRICS;
	if (url && (!strcmp(url, "/ui") || !strncmp(url, "/ui/", 4)))
		return PAT_UI;
	if (n == 1 && seg_is(&segs[0], "openapi.json"))
		return PAT_OPENAPI;
	if (n == 1 && seg_is(&segs[0], "status"))
		return PAT_STATUS;
	if (n == 1 && seg_is(&segs[0], "tasks"))
		return PAT_TASKS;
	if (n < 1 || !(pl || seg_is(&segs[0], "jobs")))
		return PAT_OTHER;
	if (n == 1)
		return pl ? PAT_PIPELINES : PAT_JOBS;
	if (n == 2)
		return pl ? PAT_PIPELINE : PAT_JOB;
	if (seg_is(&segs[2], "cancel"))
		return pl ? PAT_PIPELINE_CANCEL : PAT_JOB_CANCEL;
	if (seg_is(&segs[2], pl ? "jobs" : "results"))
		return pl ? PAT_PIPELINE_JOBS : PAT_JOB_RESULTS;
	return PAT_OTHER;
}

void routes_dispatch(struct http_request *req)
{
	struct seg segs[ROUTES_MAX_SEGS];
	const char *m = req->method;
	int n = split_path(req->url, segs);
	bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST");

	if (!strcmp(req->url, "/metrics") && get)
		handle_metrics(req);
	else if (n == 1 && seg_is(&segs[0], "status") && get)
		handle_status(req);
	else if (n == 1 && seg_is(&segs[0], "tasks") && get)
		handle_tasks(req);
	else if (n == 1 && seg_is(&segs[0], "openapi.json") && get)
		handle_openapi(req);
	else if (n == 1 && seg_is(&segs[0], "jobs") && post)
		handle_submit_job(req);
	else if (n == 1 && seg_is(&segs[0], "jobs") && get)
		handle_list(req, false);
	else if (n == 1 && seg_is(&segs[0], "pipelines") && post)
		handle_submit_pipeline(req);
	else if (n == 1 && seg_is(&segs[0], "pipelines") && get)
		handle_list(req, true);
	else if (n >= 2 && (seg_is(&segs[0], "jobs") || seg_is(&segs[0], "pipelines")))
		handle_by_id(req, seg_is(&segs[0], "pipelines"), &segs[1],
			     n == 3 ? &segs[2] : NULL);
	else
		http_request_error(req, 404, "not found");
}
