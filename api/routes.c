/*
 * routes.c - routing and handlers of the HTTP JSON API (API.md).
 *
 * Theory of operation: two tables. The patterns are the path shapes
 * ("/api/jobs/:id/cancel"): routes_match() matches a request's path
 * against them once, when its head is in (http_parse.c), and records the
 * pattern and where the ":id" segment is on the request; the metrics label
 * the request by that pattern, whatever becomes of it. The routes pair a
 * pattern with a method and a handler: routes_dispatch() looks up the
 * recorded pattern and the method there, and a wrong method on a known
 * path is a 404, as in the original. Requests that need no storage
 * (status, tasks) and requests refused before the core (bad id, bad query,
 * bad body, shutting down) are answered at once. The others decode what
 * they need, record which route they are (req->route) and call the core;
 * the core's callback, routes_done(), encodes the reply by route while the
 * reply's objects are still borrowed, and hands the bytes to
 * http_request_answer(). The callback may run inside the core call (memory
 * store) or later from the loop; http.c copes with both. The lists are
 * routes_list.c's: read page by page and sent as they are encoded.
 *
 * Ownership: with API keys, new work is the key's (req->owner), and every
 * other call passes the key's owner as a filter - an admin key's is 0, so
 * it sees all work and, here, each object's "owner". Another key's id is a
 * 404 from the core, as an unknown one. A submit takes a token of its
 * key's submit_rate once its body decoded (a 429 without one), just before
 * the core call, and gives it back when the core refuses it: a refusal
 * changes nothing, the key's rate included.
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

/* A path segment: a slice of req->url. */
struct seg {
	const char *p;
	size_t len;
};

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
	char msg[128];

	switch (req->route) {
	case ROUTE_SUBMIT_JOB:
	case ROUTE_GET_JOB:
	case ROUTE_CANCEL_JOB:
		if (!r->job)
			break;
		answer_json(req, req->route == ROUTE_SUBMIT_JOB ? 202 : 200,
			    with_owner(req, json_out_job(r->job), r->job->owner));
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
	case ROUTE_PATCH_JOB:
	case ROUTE_DELETE_JOB:
	case ROUTE_DELETE_RESULT:
	case ROUTE_PATCH_PIPELINE:
	case ROUTE_DELETE_PIPELINE:
		http_request_answer(req, 204, NULL, 0);
		return;
	case ROUTE_LIST_JOBS: /* routes_list.c's */
	case ROUTE_LIST_PIPELINES:
	case ROUTE_PIPELINE_JOBS:
	case ROUTE_NONE:
		break;
	}
	http_request_error(req, 500, "internal error: the core gave an empty reply");
}

void routes_answer_failure(struct http_request *req, const struct core_reply *reply)
{
	if (req->orphaned) {
		/* Nobody listens any more: just end the wait. */
		http_request_answer(req, 500, NULL, 0);
		return;
	}
	if (reply->err == CORE_EFORBIDDEN)
		http_request_denied(req, reply->message ? reply->message : "policy");
	/* A refused submit changes nothing, its key's rate included. */
	http_request_give_back(req);
	http_request_error(req, status_of(reply->err),
			   reply->message ? reply->message : "internal error");
}

/* The core's callback for every route but the lists. */
static void routes_done(void *arg, const struct core_reply *reply)
{
	struct http_request *req = arg;

	if (req->orphaned || reply->err != CORE_OK) {
		routes_answer_failure(req, reply);
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

static void handle_status(struct http_request *req, enum http_route route)
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

static void handle_tasks(struct http_request *req, enum http_route route)
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
static void handle_openapi(struct http_request *req, enum http_route route)
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
static void handle_metrics(struct http_request *req, enum http_route route)
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

static void handle_submit_job(struct http_request *req, enum http_route route)
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
	if (!http_request_take_submit(req))
		return;
	req->in.job.owner = req->owner;
	req->in.job.policy = req->policy;
	req->route = ROUTE_SUBMIT_JOB;
	http_request_wait(req);
	core_submit_job(req->core, &req->in.job, routes_done, req);
}

static void handle_submit_pipeline(struct http_request *req, enum http_route route)
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
	if (!http_request_take_submit(req))
		return;
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
	routes_list_start(req, pipelines ? ROUTE_LIST_PIPELINES : ROUTE_LIST_JOBS, &q, NULL);
}

/* Starts a core call on one job or pipeline id (already parsed). */
static void call_by_id(struct http_request *req, enum http_route route, const uint8_t id[])
{
	struct core *core = req->core;
	uint16_t owner = viewer(req);
	struct core_list_query q = {.owner = owner};

	job_id_format(id, req->id_text);
	if (route == ROUTE_PIPELINE_JOBS) {
		routes_list_start(req, route, &q, id);
		return;
	}
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
	default:
		http_request_error(req, 500, "internal error: bad route");
		break;
	}
}

/* /api/jobs/:id... and /api/pipelines/:id...: the route is the table's. */
static void handle_by_id(struct http_request *req, enum http_route route)
{
	bool pipelines = route >= ROUTE_GET_PIPELINE;
	struct seg id = {req->url + req->path_id, req->path_id_len};
	char idbuf[JOB_ID_STRLEN + 1], err[JSON_IN_ERRLEN];
	uint8_t bin[JOB_ID_LEN];
	int rc;

	/* A malformed id is simply an unknown one. */
	if (id.len != JOB_ID_STRLEN) {
		rc = -EINVAL;
	} else {
		memcpy(idbuf, id.p, JOB_ID_STRLEN);
		idbuf[JOB_ID_STRLEN] = '\0';
		rc = job_id_parse(idbuf, bin);
	}
	if (rc < 0) {
		if (pipelines)
			not_found(req, "pipeline", &id);
		else if (route == ROUTE_GET_RESULT || route == ROUTE_DELETE_RESULT)
			not_found(req, "job result", &id);
		else
			not_found(req, "job", &id);
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

static void handle_list_jobs(struct http_request *req, enum http_route route)
{
	handle_list(req, false);
}

static void handle_list_pipelines(struct http_request *req, enum http_route route)
{
	handle_list(req, true);
}

/* ---- the tables ----------------------------------------------------- */

/*
 * The path shapes, in routes_pattern_name() order: each is its own label
 * in the metrics and what a path is matched against - ":id" stands for
 * one segment that is not empty, anything else is literal. A path that
 * matches none is "other" (0). /ui/ is a prefix: /ui and anything under it.
 */
static const char *const patterns[ROUTES_NPATTERNS] = {
    [ROUTES_PAT_OTHER] = "other",
    [ROUTES_PAT_STATUS] = "/api/status",
    [ROUTES_PAT_TASKS] = "/api/tasks",
    [ROUTES_PAT_JOBS] = "/api/jobs",
    [ROUTES_PAT_JOB] = "/api/jobs/:id",
    [ROUTES_PAT_JOB_CANCEL] = "/api/jobs/:id/cancel",
    [ROUTES_PAT_JOB_RESULTS] = "/api/jobs/:id/results",
    [ROUTES_PAT_PIPELINES] = "/api/pipelines",
    [ROUTES_PAT_PIPELINE] = "/api/pipelines/:id",
    [ROUTES_PAT_PIPELINE_CANCEL] = "/api/pipelines/:id/cancel",
    [ROUTES_PAT_PIPELINE_JOBS] = "/api/pipelines/:id/jobs",
    [ROUTES_PAT_METRICS] = "/metrics",
    [ROUTES_PAT_OPENAPI] = "/api/openapi.json",
    [ROUTES_PAT_UI] = "/ui/",
};

/* The routes: a pattern and a method, and what answers them. A known path
 * with another method is a 404, as in the original. The dashboard's files
 * (ROUTES_PAT_UI) are http.c's (ui.c). */
static const struct route {
	uint8_t pattern;
	char method[7];
	uint8_t route; /* enum http_route, for the handlers of core calls */
	void (*handle)(struct http_request *req, enum http_route route);
} routes[] = {
    {ROUTES_PAT_JOBS, "POST", ROUTE_SUBMIT_JOB, handle_submit_job},
    {ROUTES_PAT_JOB, "GET", ROUTE_GET_JOB, handle_by_id},
    {ROUTES_PAT_JOBS, "GET", ROUTE_LIST_JOBS, handle_list_jobs},
    {ROUTES_PAT_JOB, "PATCH", ROUTE_PATCH_JOB, handle_by_id},
    {ROUTES_PAT_JOB, "DELETE", ROUTE_DELETE_JOB, handle_by_id},
    {ROUTES_PAT_JOB_CANCEL, "POST", ROUTE_CANCEL_JOB, handle_by_id},
    {ROUTES_PAT_JOB_RESULTS, "GET", ROUTE_GET_RESULT, handle_by_id},
    {ROUTES_PAT_JOB_RESULTS, "DELETE", ROUTE_DELETE_RESULT, handle_by_id},
    {ROUTES_PAT_PIPELINES, "POST", ROUTE_SUBMIT_PIPELINE, handle_submit_pipeline},
    {ROUTES_PAT_PIPELINES, "GET", ROUTE_LIST_PIPELINES, handle_list_pipelines},
    {ROUTES_PAT_PIPELINE, "GET", ROUTE_GET_PIPELINE, handle_by_id},
    {ROUTES_PAT_PIPELINE, "PATCH", ROUTE_PATCH_PIPELINE, handle_by_id},
    {ROUTES_PAT_PIPELINE, "DELETE", ROUTE_DELETE_PIPELINE, handle_by_id},
    {ROUTES_PAT_PIPELINE_CANCEL, "POST", ROUTE_CANCEL_PIPELINE, handle_by_id},
    {ROUTES_PAT_PIPELINE_JOBS, "GET", ROUTE_PIPELINE_JOBS, handle_by_id},
    {ROUTES_PAT_STATUS, "GET", ROUTE_NONE, handle_status},
    {ROUTES_PAT_TASKS, "GET", ROUTE_NONE, handle_tasks},
    {ROUTES_PAT_OPENAPI, "GET", ROUTE_NONE, handle_openapi},
    {ROUTES_PAT_METRICS, "GET", ROUTE_NONE, handle_metrics},
};

const char *routes_pattern_name(unsigned pattern)
{
	return pattern < ROUTES_NPATTERNS ? patterns[pattern] : NULL;
}

/* Whether url has the shape pat; *id: where its ":id" segment starts (0: none). */
static bool shape_match(const char *pat, const char *url, size_t *id, size_t *id_len)
{
	const char *u = url;

	while (*pat) {
		if (pat[0] == ':' && pat[1] == 'i' && pat[2] == 'd') {
			size_t n = strcspn(u, "/");

			if (!n)
				return false;
			*id = (size_t)(u - url);
			*id_len = n;
			u += n;
			pat += 3;
		} else if (*pat++ != *u++) {
			return false;
		}
	}
	return *u == '\0';
}

void routes_match(struct http_request *req)
{
	const char *url = req->url;
	size_t n = strlen(patterns[ROUTES_PAT_UI]) - 1;

	req->pattern = ROUTES_PAT_OTHER;
	req->path_id = req->path_id_len = 0;
	if (!url)
		return;
	if (!strncmp(url, patterns[ROUTES_PAT_UI], n) && (url[n] == '\0' || url[n] == '/')) {
		req->pattern = ROUTES_PAT_UI;
		return;
	}
	for (unsigned p = ROUTES_PAT_OTHER + 1; p < ROUTES_NPATTERNS; p++)
		if (p != ROUTES_PAT_UI && shape_match(patterns[p], url, &req->path_id,
						      &req->path_id_len)) {
			req->pattern = (uint8_t)p;
			return;
		}
	req->path_id = req->path_id_len = 0;
}

void routes_dispatch(struct http_request *req)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];

		if (rt->pattern == req->pattern && !strcmp(rt->method, req->method)) {
			rt->handle(req, (enum http_route)rt->route);
			return;
		}
	}
	http_request_error(req, 404, "not found");
}
