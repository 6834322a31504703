/*
 * json_in.c - request body decoding.
 *
 * Theory of operation: the body is parsed once with jansson (duplicate keys
 * refused, any top-level value accepted so that `null` gets its own
 * message), then each known field is type-checked in a fixed order and
 * copied by pointer into the core's request struct. Unknown fields are
 * ignored, and in POST bodies a JSON null counts as an absent field (in a
 * PATCH a present field is a change, so null is a type error). The first
 * wrong type
 * wins; a bad run_at is reported only after all types are right, and before
 * the core's own validation (API.md's order). A run_at outside the years
 * 0001-9999 is a bad run_at (job.h), and a pipeline's job may not have one
 * of its own (the pipeline's is the only one). Nothing here has side
 * effects, so a 400 from this file leaves no trace.
 *
 * task_params is kept as compact JSON text (an empty object counts as
 * absent, as job.h stores it); a number in it of 2^63 or more in magnitude
 * is refused (PostgreSQL could store it but not give it back readably).
 * Timeouts are seconds, integer or real, > 0, converted to whole
 * milliseconds rounding up. "limits" is an object of
 * known keys only (see get_limits).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supervisor/limits.h"
#include "json_in.h"
#include "json_out.h"

static int fail(char *err, size_t errlen, const char *what, const char *must)
{
	snprintf(err, errlen, "%s must be %s", what, must);
	return -EINVAL;
}

static int parse_body(struct json_in_doc *doc, const char *body, size_t len, char *err,
		      size_t errlen)
{
	json_error_t jerr;

	doc->root = json_loadb(body ? body : "", body ? len : 0,
			       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!doc->root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		snprintf(err, errlen, "invalid JSON body: %s (line %d, column %d)", jerr.text,
			 jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(doc->root)) {
		snprintf(err, errlen, "request body must be a JSON object");
		return -EINVAL;
	}
	return 0;
}

/* A field that is absent or null is NULL. */
static json_t *field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

static int get_string(json_t *obj, const char *key, const char **out, char *err, size_t errlen)
{
	json_t *v = field(obj, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return fail(err, errlen, key, "a string");
	*out = json_string_value(v);
	return 0;
}

static int doc_keep(struct json_in_doc *doc, char *s)
{
	char **strs = realloc(doc->strs, (doc->nstrs + 1) * sizeof(*strs));

	if (!strs) {
		free(s);
		return -ENOMEM;
	}
	doc->strs = strs;
	doc->strs[doc->nstrs++] = s;
	return 0;
}

/*
 * A real of 2^63 or more in magnitude, anywhere in v, or NULL. PostgreSQL's
 * jsonb prints such a number as a plain integer of 19 or more digits, which
 * jansson cannot read back (its integers are int64): the params would come
 * back empty from PostgreSQL, while the memory store keeps them. Integers
 * are int64 already (jansson refuses bigger ones in the body).
 */
static json_t *too_large_number(json_t *v)
{
	const char *key;
	json_t *x, *bad;
	size_t i;

	if (json_is_real(v))
		return fabs(json_real_value(v)) >= 0x1p63 ? v : NULL;
	if (json_is_object(v)) {
		json_object_foreach(v, key, x)
			if ((bad = too_large_number(x)))
				return bad;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if ((bad = too_large_number(x)))
				return bad;
	}
	return NULL;
}

static int get_params(struct json_in_doc *doc, json_t *obj, const char **out, char *err,
		      size_t errlen)
{
	json_t *v = field(obj, "task_params"), *big;
	char *text;
	int rc;

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return fail(err, errlen, "task_params", "an object");
	if (json_object_size(v) == 0)
		return 0;
	if ((big = too_large_number(v))) {
		snprintf(err, errlen,
			 "task_params must not hold numbers of 2^63 or more in magnitude, got %g",
			 json_real_value(big));
		return -EINVAL;
	}
	text = json_out_dump(v, NULL);
	if (!text)
		return -ENOMEM;
	rc = doc_keep(doc, text);
	if (!rc)
		*out = text;
	return rc;
}

/*
 * Seconds -> ms, rounding up, but not for the float noise of a product
 * that is meant to be whole (1.1 * 1000 = 1100.0000000000002). s is in
 * (0, JSON_IN_MAX_TIMEOUT_S], so the product fits an int64_t exactly enough.
 */
static int64_t seconds_to_ms(double s)
{
	double v = s * 1000.0;
	int64_t down = (int64_t)v, nearest = v - (double)down >= 0.5 ? down + 1 : down;
	int64_t ms;

	if (fabs(v - (double)nearest) <= 4 * DBL_EPSILON * v)
		ms = nearest;
	else
		ms = (double)down < v ? down + 1 : down;
	return ms < 1 ? 1 : ms;
}

static int get_timeout(json_t *obj, struct job_request *req, char *err, size_t errlen)
{
	json_t *v = field(obj, "timeout");
	double s;

	req->has_timeout = false;
	req->timeout_ms = 0;
	if (!v)
		return 0;
	if (json_is_integer(v))
		s = (double)json_integer_value(v);
	else if (json_is_real(v))
		s = json_real_value(v);
	else
		return fail(err, errlen, "timeout", "a number greater than 0");
	if (!(s > 0))
		return fail(err, errlen, "timeout", "a number greater than 0");
	if (s > JSON_IN_MAX_TIMEOUT_S) {
		snprintf(err, errlen, "timeout must be at most %.0f seconds",
			 JSON_IN_MAX_TIMEOUT_S);
		return -EINVAL;
	}
	if (json_is_integer(v))
		req->timeout_ms = (int64_t)json_integer_value(v) * 1000;
	else
		req->timeout_ms = seconds_to_ms(s);
	req->has_timeout = true;
	return 0;
}

/* Extension: how many runs a job may take (1 = no retry). */
static int get_max_attempts(json_t *obj, struct job_request *req, char *err, size_t errlen)
{
	json_t *v = field(obj, "max_attempts");

	req->max_attempts = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > JOB_MAX_ATTEMPTS)
		return fail(err, errlen, "max_attempts", "an integer from 1 to 100");
	req->max_attempts = (int)json_integer_value(v);
	return 0;
}

/*
 * Extension: "limits": {"memory": 67108864 | "64M", "cpu": 5 | "5s",
 * "processes": 16, "output": 65536 | "64k"}. Integers are bytes or seconds,
 * strings use the config file's size and duration syntax (a CPU time is
 * rounded up to whole seconds). Each value is > 0; a null value is absent.
 * Unknown keys are refused. The [jobs] maxima are the core's to check; here
 * only the absolute bounds (the config's ranges).
 */
static const char *const limit_keys[] = {"memory", "cpu", "processes", "output"};
static const char *const limit_musts[] = {
	"an integer number of bytes greater than 0 or a size such as \"64M\"",
	"an integer number of seconds greater than 0 or a duration such as \"5s\"",
	"an integer greater than 0",
	"an integer number of bytes greater than 0 or a size such as \"64k\"",
};
static const uint64_t limit_bounds[] = {LIMITS_MEMORY_MAX, LIMITS_CPU_MAX, LIMITS_PROCESSES_MAX,
					LIMITS_OUTPUT_MAX};

/* Limit i of the request: 0 = absent, else its value in bytes, seconds or a count. */
static int get_limit(json_t *limits, size_t i, uint64_t *out, char *err, size_t errlen)
{
	json_t *v = field(limits, limit_keys[i]);
	char what[32];
	uint64_t n = 0;
	int64_t ms;
	size_t bytes;

	*out = 0;
	if (!v)
		return 0;
	snprintf(what, sizeof(what), "limits.%s", limit_keys[i]);
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		n = (uint64_t)json_integer_value(v);
	} else if (json_is_string(v) && i == 1) {
		if (config_parse_duration_ms(json_string_value(v), &ms) == 0 && ms > 0)
			n = (uint64_t)(ms / 1000 + (ms % 1000 != 0));
	} else if (json_is_string(v) && i != 2) {
		if (config_parse_size(json_string_value(v), &bytes) == 0)
			n = bytes;
	}
	if (n == 0)
		return fail(err, errlen, what, limit_musts[i]);
	if (n > limit_bounds[i]) {
		snprintf(err, errlen, "%s must be at most %llu%s", what,
			 (unsigned long long)limit_bounds[i],
			 i == 1 ? " seconds" : i == 2 ? "" : " bytes");
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static int get_limits(json_t *obj, struct job_request *req, char *err, size_t errlen)
{
	json_t *v = field(obj, "limits"), *x;
	uint64_t n[4];
	const char *key;
	size_t i;
	int rc;

	req->has_limits = false;
	memset(&req->limits, 0, sizeof(req->limits));
	if (!v)
		return 0;
	if (!json_is_object(v))
		return fail(err, errlen, "limits", "an object");
	json_object_foreach(v, key, x) {
		for (i = 0; i < 4 && strcmp(key, limit_keys[i]); i++)
			;
		if (i == 4) {
			snprintf(err, errlen,
				 "limits.%s is not a valid limit - valid limits: [cpu memory output "
				 "processes]",
				 key);
			return -EINVAL;
		}
	}
	for (i = 0; i < 4; i++)
		if ((rc = get_limit(v, i, &n[i], err, errlen)))
			return rc;
	req->limits.memory_bytes = n[0];
	req->limits.cpu_seconds = (uint32_t)n[1];
	req->limits.processes = (uint32_t)n[2];
	req->limits.output_bytes = (uint32_t)n[3];
	req->has_limits = true;
	return 0;
}

static int get_bool(json_t *obj, const char *key, bool *out, char *err, size_t errlen)
{
	json_t *v = field(obj, key);

	*out = false;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(err, errlen, key, "a boolean");
	*out = json_is_true(v);
	return 0;
}

/*
 * The fields a standalone job and a pipeline job share. A pipeline job's
 * use_previous_results is kept; a standalone job's is checked and dropped
 * (it means nothing there).
 */
static int decode_job_fields(struct json_in_doc *doc, json_t *obj, struct job_request *req,
			     bool in_pipeline, char *err, size_t errlen)
{
	bool use_prev;
	int rc;

	memset(req, 0, sizeof(*req));
	if ((rc = get_string(obj, "name", &req->name, err, errlen)) ||
	    (rc = get_string(obj, "description", &req->description, err, errlen)) ||
	    (rc = get_string(obj, "task_name", &req->task_name, err, errlen)) ||
	    (rc = get_params(doc, obj, &req->params_json, err, errlen)) ||
	    (rc = get_timeout(obj, req, err, errlen)) ||
	    (rc = get_max_attempts(obj, req, err, errlen)) ||
	    (rc = get_limits(obj, req, err, errlen)))
		return rc;
	rc = get_bool(obj, "use_previous_results", &use_prev, err, errlen);
	if (rc)
		return rc;
	req->use_previous_results = in_pipeline && use_prev;
	return 0;
}

/* run_at: "" is absent; a bad value names itself. A time outside the
 * years 0001-9999 (UTC) is refused here, so that no store ever sees one
 * (PostgreSQL has no year 0; the memory store would take it). */
static int parse_run_at(const char *run_at, bool *has, int64_t *us, char *err, size_t errlen)
{
	int rc;

	*has = false;
	*us = 0;
	if (!run_at || !run_at[0])
		return 0;
	rc = job_time_parse(run_at, us);
	if (rc == -ERANGE) {
		snprintf(err, errlen,
			 "invalid run_at: \"%.150s\" is out of range: times must be from "
			 "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z",
			 run_at);
		return -EINVAL;
	}
	if (rc < 0) {
		snprintf(err, errlen,
			 "invalid run_at: parsing time \"%.150s\": expected RFC 3339 with a time "
			 "zone, e.g. 2026-01-02T15:04:05Z",
			 run_at);
		return -EINVAL;
	}
	*has = true;
	return 0;
}

int json_in_job(struct json_in_doc *doc, const char *body, size_t len, struct job_request *req,
		char *err, size_t errlen)
{
	const char *run_at;
	int rc;

	memset(req, 0, sizeof(*req));
	rc = parse_body(doc, body, len, err, errlen);
	if (rc)
		return rc;
	rc = decode_job_fields(doc, doc->root, req, false, err, errlen);
	if (!rc)
		rc = get_string(doc->root, "run_at", &run_at, err, errlen);
	if (!rc)
		rc = parse_run_at(run_at, &req->has_run_at, &req->run_at, err, errlen);
	return rc;
}

int json_in_pipeline(struct json_in_doc *doc, const char *body, size_t len,
		     struct pipeline_request *req, char *err, size_t errlen)
{
	const char *run_at;
	json_t *jobs;
	size_t i;
	int rc;

	memset(req, 0, sizeof(*req));
	rc = parse_body(doc, body, len, err, errlen);
	if (rc)
		return rc;
	if ((rc = get_string(doc->root, "name", &req->name, err, errlen)) ||
	    (rc = get_string(doc->root, "description", &req->description, err, errlen)) ||
	    (rc = get_string(doc->root, "run_at", &run_at, err, errlen)))
		return rc;
	jobs = field(doc->root, "jobs");
	if (jobs && !json_is_array(jobs))
		return fail(err, errlen, "jobs", "an array of objects");
	for (i = 0; i < json_array_size(jobs); i++) {
		if (!json_is_object(json_array_get(jobs, i)))
			return fail(err, errlen, "jobs", "an array of objects");
	}
	if (jobs && json_array_size(jobs) > 0) {
		doc->jobs = calloc(json_array_size(jobs), sizeof(*doc->jobs));
		if (!doc->jobs)
			return -ENOMEM;
		for (i = 0; i < json_array_size(jobs); i++) {
			json_t *obj = json_array_get(jobs, i);

			rc = decode_job_fields(doc, obj, &doc->jobs[i], true, err, errlen);
			if (rc)
				return rc;
			/* The original ignored it: the job then ran at another time
			 * than its client asked for, without a word. */
			if (field(obj, "run_at")) {
				snprintf(err, errlen,
					 "jobs[%zu].run_at is not allowed: run_at belongs to the "
					 "pipeline (set it next to \"jobs\")",
					 i);
				return -EINVAL;
			}
		}
		req->jobs = doc->jobs;
		req->njobs = json_array_size(jobs);
	}
	return parse_run_at(run_at, &req->has_run_at, &req->run_at, err, errlen);
}

int json_in_patch(struct json_in_doc *doc, const char *body, size_t len, struct patch_request *req,
		  char *err, size_t errlen)
{
	json_t *name, *desc;
	int rc;

	memset(req, 0, sizeof(*req));
	rc = parse_body(doc, body, len, err, errlen);
	if (rc)
		return rc;
	/* Here a null is not "absent": a present field is a change. */
	name = json_object_get(doc->root, "name");
	desc = json_object_get(doc->root, "description");
	if (name && (!json_is_string(name) || json_string_length(name) == 0))
		return fail(err, errlen, "name", "a non-empty string");
	if (desc && !json_is_string(desc))
		return fail(err, errlen, "description", "a string");
	req->name = name ? json_string_value(name) : NULL;
	req->description = desc ? json_string_value(desc) : NULL;
	return 0;
}

void json_in_doc_release(struct json_in_doc *doc)
{
	size_t i;

	for (i = 0; i < doc->nstrs; i++)
		free(doc->strs[i]);
	free(doc->strs);
	free(doc->jobs);
	json_decref(doc->root);
	memset(doc, 0, sizeof(*doc));
}
