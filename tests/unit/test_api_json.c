/*
 * test_api_json.c - the API's JSON encoding (key order, omitted fields,
 * outcome, error body bytes, lists) and request decoding (types, messages,
 * run_at, timeout, pipelines, PATCH).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../api/json_in.h"
#include "../../api/json_out.h"
#include "../../supervisor/job.h"

#define T_CREATED 1795741323123456LL   /* 2026-11-27T01:02:03.123456Z */
#define T_SCHEDULED 1795741324000000LL /* 2026-11-27T01:02:04Z */
#define T_STARTED 1795741325500000LL   /* 2026-11-27T01:02:05.5Z */
#define T_DONE 1795741327750000LL      /* 2026-11-27T01:02:07.75Z */
#define T_RUN_AT 1893492000000000LL    /* 2030-01-01T10:00:00Z */

#define ID1 "0b1c2d3e-4f50-4a61-8b72-8394a5b6c7d8"
#define ID2 "11111111-2222-4333-8444-555555555555"
#define ID3 "aaaaaaaa-bbbb-4ccc-9ddd-eeeeeeeeeeee"

static struct job *make_job(const char *id, const char *name, const char *task)
{
	struct job *job = job_new();

	assert_non_null(job);
	assert_int_equal(job_id_parse(id, job->id), 0);
	job_set_str(&job->name, name);
	job->task_name = job_intern(task);
	job->timeout_ms = 10000;
	job->status = JOB_PENDING;
	job->created_at = T_CREATED;
	return job;
}

/* Encodes v (stolen) and compares the bytes. */
static void assert_json(json_t *v, const char *want)
{
	size_t len = 0;
	char *text;

	assert_non_null(v);
	text = json_out_dump(v, &len);
	json_decref(v);
	assert_non_null(text);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
}

/* ---- encoding ------------------------------------------------------- */

static void test_job_pending(void **state)
{
	struct job *job = make_job(ID1, "job_name", "test_task");

	assert_json(json_out_job(job), "{\"id\":\"" ID1 "\",\"name\":\"job_name\","
				       "\"task_name\":\"test_task\",\"timeout\":10,"
				       "\"status\":\"PENDING\","
				       "\"created_at\":\"2026-11-27T01:02:03.123456Z\"}");
	job_unref(job);
}

static void test_job_scheduled(void **state)
{
	struct job *job = make_job(ID1, "n", "t");

	job_set_str(&job->description, "some description");
	job_set_str(&job->params_json, "{\"url\":\"some-url.com\",\"n\":0.1,\"k\":[1,2]}");
	job->timeout_ms = 1500;
	job->status = JOB_SCHEDULED;
	job->run_at = T_RUN_AT;
	job->scheduled_at = T_SCHEDULED;
	assert_json(json_out_job(job),
		    "{\"id\":\"" ID1 "\",\"name\":\"n\",\"description\":\"some description\","
		    "\"task_name\":\"t\",\"task_params\":{\"url\":\"some-url.com\",\"n\":0.1,"
		    "\"k\":[1,2]},\"timeout\":1.5,\"status\":\"SCHEDULED\","
		    "\"run_at\":\"2030-01-01T10:00:00Z\",\"scheduled_at\":\"2026-11-27T01:02:04Z\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\"}");

	/* An empty params object is omitted, like an absent one. */
	job_set_str(&job->params_json, "{}");
	job->timeout_ms = 250;
	job->status = JOB_IN_PROGRESS;
	job->run_at = job->scheduled_at = 0;
	job->started_at = T_STARTED;
	assert_json(json_out_job(job),
		    "{\"id\":\"" ID1 "\",\"name\":\"n\",\"description\":\"some description\","
		    "\"task_name\":\"t\",\"timeout\":0.25,\"status\":\"IN_PROGRESS\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		    "\"started_at\":\"2026-11-27T01:02:05.5Z\"}");
	job_unref(job);
}

static void test_job_completed_outcome(void **state)
{
	struct job *job = make_job(ID1, "n", "t");

	job->status = JOB_COMPLETED;
	job->started_at = T_STARTED;
	job->completed_at = T_DONE;
	job->outcome = (struct job_outcome){
	    .pid = 123, .exit_code = 0, .cpu_ms = 1, .wall_ms = 2, .max_rss_kb = 1234,
	    .memory_peak_kb = 2048};
	assert_json(json_out_job(job),
		    "{\"id\":\"" ID1 "\",\"name\":\"n\",\"task_name\":\"t\",\"timeout\":10,"
		    "\"status\":\"COMPLETED\",\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		    "\"started_at\":\"2026-11-27T01:02:05.5Z\","
		    "\"completed_at\":\"2026-11-27T01:02:07.75Z\",\"duration\":2250,"
		    "\"outcome\":{\"pid\":123,\"exit_code\":0,\"signal\":null,"
		    "\"timed_out\":false,\"oom_killed\":false,\"seccomp_syscall\":null,"
		    "\"cpu_ms\":1,\"wall_ms\":2,\"max_rss_kb\":1234,\"memory_peak_kb\":2048}}");
	job_unref(job);
}

static void test_job_failed_outcome(void **state)
{
	struct job *job = make_job(ID1, "n", "t");

	job->status = JOB_FAILED;
	job_set_str(&job->failure_reason, "blocked by sandbox: system call socket");
	job->started_at = T_STARTED;
	job->completed_at = T_DONE;
	job->outcome = (struct job_outcome){.pid = 77,
					    .exit_code = -1,
					    .term_signal = SIGSYS,
					    .seccomp_blocked = true,
					    .cpu_ms = -1,
					    .wall_ms = 5,
					    .max_rss_kb = -1,
					    .memory_peak_kb = -1};
	job->outcome.seccomp_syscall = job_intern("socket");
	assert_json(json_out_job(job),
		    "{\"id\":\"" ID1 "\",\"name\":\"n\",\"task_name\":\"t\",\"timeout\":10,"
		    "\"status\":\"FAILED\","
		    "\"failure_reason\":\"blocked by sandbox: system call socket\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		    "\"started_at\":\"2026-11-27T01:02:05.5Z\","
		    "\"completed_at\":\"2026-11-27T01:02:07.75Z\",\"duration\":2250,"
		    "\"outcome\":{\"pid\":77,\"exit_code\":null,\"signal\":\"SIGSYS\","
		    "\"timed_out\":false,\"oom_killed\":false,\"seccomp_syscall\":\"socket\","
		    "\"cpu_ms\":null,\"wall_ms\":5,\"max_rss_kb\":null,\"memory_peak_kb\":null}}");

	/* A timeout kill: SIGKILL, timed_out. */
	job->outcome.term_signal = SIGKILL;
	job->outcome.timed_out = true;
	job->outcome.seccomp_blocked = false;
	job->outcome.seccomp_syscall = NULL;
	job_set_str(&job->failure_reason, "timed out after 2s (killed)");
	{
		json_t *o = json_out_job(job), *oc;

		assert_non_null(o);
		oc = json_object_get(o, "outcome");
		assert_string_equal(json_string_value(json_object_get(oc, "signal")), "SIGKILL");
		assert_true(json_is_true(json_object_get(oc, "timed_out")));
		assert_true(json_is_null(json_object_get(oc, "seccomp_syscall")));
		json_decref(o);
	}

	/* A job cancelled before it ran has no outcome and no duration. */
	job->status = JOB_CANCELLED;
	job->started_at = 0;
	job->completed_at = T_DONE;
	memset(&job->outcome, 0, sizeof(job->outcome));
	job_set_str(&job->failure_reason, "cancelled by request");
	assert_json(json_out_job(job),
		    "{\"id\":\"" ID1 "\",\"name\":\"n\",\"task_name\":\"t\",\"timeout\":10,"
		    "\"status\":\"CANCELLED\",\"failure_reason\":\"cancelled by request\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		    "\"completed_at\":\"2026-11-27T01:02:07.75Z\"}");
	job_unref(job);
}

/* "limits" (when the request set them) before the outcome, "isolation" after. */
static void test_job_limits_isolation(void **state)
{
	struct job *job = make_job(ID1, "job_name", "test_task");

	job->limits = (struct job_limits){.memory_bytes = 64 << 20, .cpu_seconds = 0,
					  .processes = 16, .output_bytes = 65536, .set = true};
	job->outcome.pid = 7;
	job->outcome.exit_code = 0;
	job->isolation = strdup("{\"namespaces\": [\"pid\"], \"cgroup\": \"v2\", \"uid\": 61003}");
	assert_json(json_out_job(job),
		    "{\"id\":\"" ID1 "\",\"name\":\"job_name\",\"task_name\":\"test_task\","
		    "\"timeout\":10,\"status\":\"PENDING\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		    "\"limits\":{\"memory\":67108864,\"cpu\":null,\"processes\":16,\"output\":65536},"
		    "\"outcome\":{\"pid\":7,\"exit_code\":0,\"signal\":null,\"timed_out\":false,"
		    "\"oom_killed\":false,\"seccomp_syscall\":null,\"cpu_ms\":null,\"wall_ms\":null,"
		    "\"max_rss_kb\":null,\"memory_peak_kb\":null},"
		    "\"isolation\":{\"namespaces\":[\"pid\"],\"cgroup\":\"v2\",\"uid\":61003}}");
	/* Limits not set by the request are not shown. */
	job->limits.set = false;
	job->outcome.pid = 0;
	free(job->isolation);
	job->isolation = NULL;
	assert_json(json_out_job(job), "{\"id\":\"" ID1 "\",\"name\":\"job_name\","
				       "\"task_name\":\"test_task\",\"timeout\":10,"
				       "\"status\":\"PENDING\","
				       "\"created_at\":\"2026-11-27T01:02:03.123456Z\"}");
	job_unref(job);
}

static void test_signal_names(void **state)
{
	char buf[32];

	assert_string_equal(json_out_signal_name(SIGSEGV, buf, sizeof(buf)), "SIGSEGV");
	assert_string_equal(json_out_signal_name(SIGABRT, buf, sizeof(buf)), "SIGABRT");
	assert_string_equal(json_out_signal_name(SIGXCPU, buf, sizeof(buf)), "SIGXCPU");
	assert_string_equal(json_out_signal_name(0, buf, sizeof(buf)), "SIG0");
}

static struct pipeline *make_pipeline(void)
{
	struct pipeline *pl = pipeline_new(2);
	struct job *a = make_job(ID2, "first", "dummytask");
	struct job *b = make_job(ID3, "second", "echoprev");

	assert_non_null(pl);
	assert_int_equal(job_id_parse(ID1, pl->id), 0);
	job_set_str(&pl->name, "pl");
	pl->status = JOB_PENDING;
	pl->created_at = T_CREATED;
	a->in_pipeline = b->in_pipeline = true;
	memcpy(a->pipeline_id, pl->id, JOB_ID_LEN);
	memcpy(b->pipeline_id, pl->id, JOB_ID_LEN);
	a->has_next = true;
	memcpy(a->next_job_id, b->id, JOB_ID_LEN);
	b->use_previous_results = true;
	b->pipeline_index = 1;
	pl->jobs[0] = a;
	pl->jobs[1] = b;
	pl->njobs = 2;
	return pl;
}

static void test_pipeline(void **state)
{
	struct pipeline *pl = make_pipeline();

	assert_json(json_out_pipeline(pl, false),
		    "{\"id\":\"" ID1 "\",\"name\":\"pl\",\"status\":\"PENDING\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\"}");
	assert_json(json_out_pipeline(pl, true),
		    "{\"id\":\"" ID1 "\",\"name\":\"pl\",\"status\":\"PENDING\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\",\"jobs\":["
		    "{\"id\":\"" ID2 "\",\"name\":\"first\",\"task_name\":\"dummytask\","
		    "\"timeout\":10,\"status\":\"PENDING\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\",\"pipeline_id\":\"" ID1 "\","
		    "\"next_job_id\":\"" ID3 "\"},"
		    "{\"id\":\"" ID3 "\",\"name\":\"second\",\"task_name\":\"echoprev\","
		    "\"timeout\":10,\"status\":\"PENDING\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\",\"pipeline_id\":\"" ID1 "\","
		    "\"use_previous_results\":true}]}");

	job_set_str(&pl->description, "d");
	pl->status = JOB_FAILED;
	job_set_str(&pl->failure_reason, "job failed");
	pl->run_at = T_RUN_AT;
	pl->started_at = T_STARTED;
	pl->completed_at = T_DONE;
	assert_json(json_out_pipeline(pl, false),
		    "{\"id\":\"" ID1 "\",\"name\":\"pl\",\"description\":\"d\","
		    "\"status\":\"FAILED\",\"failure_reason\":\"job failed\","
		    "\"run_at\":\"2030-01-01T10:00:00Z\","
		    "\"created_at\":\"2026-11-27T01:02:03.123456Z\","
		    "\"started_at\":\"2026-11-27T01:02:05.5Z\","
		    "\"completed_at\":\"2026-11-27T01:02:07.75Z\",\"duration\":2250}");
	pipeline_unref(pl);
}

/* json_out_result()'s pieces joined, checked as JSON like the others. */
static json_t *result_value(const struct job *job)
{
	struct iovec parts[3];
	char buf[4096];
	size_t len = 0;
	json_t *v;

	assert_int_equal(json_out_result(job, &parts[0], &parts[1], &parts[2]), 0);
	/* The middle piece is the stored text itself, not a copy. */
	assert_true(parts[1].iov_len == 0 || parts[1].iov_base == job->result_json);
	for (int i = 0; i < 3; i++) {
		assert_true(len + parts[i].iov_len < sizeof(buf));
		if (parts[i].iov_len)
			memcpy(buf + len, parts[i].iov_base, parts[i].iov_len);
		len += parts[i].iov_len;
	}
	free(parts[0].iov_base);
	free(parts[2].iov_base);
	v = json_loadb(buf, len, 0, NULL);
	assert_non_null(v);
	return v;
}

static void test_result(void **state)
{
	struct job *job = make_job(ID1, "n", "t");

	job->has_result = true;
	job_set_str(&job->result_json, "{\"sha256\":\"ab\",\"x\":[1,null]}");
	assert_json(result_value(job),
		    "{\"job_id\":\"" ID1 "\",\"metadata\":{\"sha256\":\"ab\",\"x\":[1,null]}}");
	job_set_str(&job->result_error, "boom");
	assert_json(result_value(job), "{\"job_id\":\"" ID1 "\",\"metadata\":{\"sha256\":"
					  "\"ab\",\"x\":[1,null]},\"error\":\"boom\"}");
	job_set_str(&job->result_json, NULL);
	assert_json(result_value(job), "{\"job_id\":\"" ID1 "\",\"error\":\"boom\"}");
	job_set_str(&job->result_json, "42");
	job_set_str(&job->result_error, NULL);
	assert_json(result_value(job), "{\"job_id\":\"" ID1 "\",\"metadata\":42}");
	/* A stored null is no metadata; surrounding blanks are no reason. */
	job_set_str(&job->result_json, " null\n");
	assert_json(result_value(job), "{\"job_id\":\"" ID1 "\"}");
	job_set_str(&job->result_json, "[1, 2]\n");
	job_set_str(&job->result_error, "bad \"quote\"\n");
	assert_json(result_value(job), "{\"job_id\":\"" ID1 "\",\"metadata\":[1,2],"
				       "\"error\":\"bad \\\"quote\\\"\\n\"}");
	job_unref(job);
}

static void test_error_body(void **state)
{
	size_t len = 0;
	char *text = json_out_error(404, "job with ID: x not found", &len);

	assert_string_equal(
	    text, "{\"code\":404,\"error\":true,\"message\":\"job with ID: x not found\"}");
	assert_int_equal(len, strlen(text));
	free(text);

	/* A message quoting bad bytes from a URL still encodes. */
	text = json_out_error(404, "job with ID: \xff\xc3 not found", &len);
	assert_string_equal(text, "{\"code\":404,\"error\":true,\"message\":"
				  "\"job with ID: \xEF\xBF\xBD\xEF\xBF\xBD not found\"}");
	free(text);
	text = json_out_error(400, "quote \" and \\ and caf\xC3\xA9", &len);
	assert_string_equal(text, "{\"code\":400,\"error\":true,\"message\":"
				  "\"quote \\\" and \\\\ and caf\xC3\xA9\"}");
	free(text);
}

/* A whole list, as the pieces build it in one buffer: jobs, else pls.
 * *out new; 0 or -ENOMEM. */
static int list_text(const char *key, struct job *const *jobs, size_t njobs,
		     struct pipeline *const *pls, size_t npls, bool owners, char **out, size_t *len)
{
	struct json_out_buf b = {0};
	size_t n = jobs ? njobs : npls;
	int rc = json_out_list_open(&b, key);

	for (size_t i = 0; !rc && i < n; i++)
		rc = json_out_list_item(&b, jobs ? jobs[i] : NULL, jobs ? NULL : pls[i], i == 0,
					owners);
	if (!rc)
		rc = json_out_list_close(&b);
	if (rc) {
		free(b.data);
		return rc;
	}
	*out = b.data;
	*len = b.len;
	return 0;
}

static void test_lists(void **state)
{
	struct pipeline *pl = make_pipeline();
	char *text = NULL;
	size_t len = 0;
	json_t *v, *one;

	assert_int_equal(list_text("jobs", NULL, 0, NULL, 0, false, &text, &len), 0);
	assert_string_equal(text, "{\"jobs\":[]}");
	assert_int_equal(len, 11);
	free(text);

	assert_int_equal(list_text("jobs", pl->jobs, pl->njobs, NULL, 0, false, &text, &len), 0);
	assert_int_equal(len, strlen(text));
	v = json_loads(text, 0, NULL);
	assert_non_null(v);
	assert_int_equal(json_array_size(json_object_get(v, "jobs")), 2);
	one = json_out_job(pl->jobs[1]);
	assert_true(json_equal(json_array_get(json_object_get(v, "jobs"), 1), one));
	json_decref(one);
	json_decref(v);
	free(text);

	assert_int_equal(list_text("pipelines", NULL, 0, &pl, 1, false, &text, &len), 0);
	assert_string_equal(text, "{\"pipelines\":[{\"id\":\"" ID1 "\",\"name\":\"pl\","
				  "\"status\":\"PENDING\","
				  "\"created_at\":\"2026-11-27T01:02:03.123456Z\"}]}");
	free(text);

	/* The same lists in pieces, each taken away as a streamed answer
	 * does: joined, the very same text. */
	struct json_out_buf b = {0};
	char joined[4096] = "";

	assert_int_equal(list_text("jobs", pl->jobs, pl->njobs, NULL, 0, true, &text, &len), 0);
	assert_int_equal(json_out_list_open(&b, "jobs"), 0);
	for (size_t i = 0; i < pl->njobs; i++) {
		assert_int_equal(json_out_list_item(&b, pl->jobs[i], NULL, i == 0, true), 0);
		strcat(joined, b.data);
		free(b.data);
		b = (struct json_out_buf){0};
	}
	assert_int_equal(json_out_list_close(&b), 0);
	strcat(joined, b.data);
	free(b.data);
	assert_string_equal(joined, text);
	free(text);
	b = (struct json_out_buf){0};
	assert_int_equal(list_text("pipelines", NULL, 0, &pl, 1, false, &text, &len), 0);
	assert_int_equal(json_out_list_open(&b, "pipelines"), 0);
	assert_int_equal(json_out_list_item(&b, NULL, pl, true, false), 0);
	assert_int_equal(json_out_list_close(&b), 0);
	assert_string_equal(b.data, text);
	free(b.data);
	free(text);
	pipeline_unref(pl);
}

static void test_real_precision(void **state)
{
	json_t *v = json_loads("{\"a\":0.1,\"b\":2.5,\"c\":1e300}", 0, NULL);
	char *text = json_out_dump(v, NULL);

	assert_string_equal(text, "{\"a\":0.1,\"b\":2.5,\"c\":1e300}");
	free(text);
	json_decref(v);

	/* A value that needs 17 digits still reads back exactly. */
	v = json_pack("{s:f}", "x", 0.1 + 0.2);
	text = json_out_dump(v, NULL);
	json_decref(v);
	v = json_loads(text, 0, NULL);
	assert_true(json_real_value(json_object_get(v, "x")) == 0.1 + 0.2);
	json_decref(v);
	free(text);
}

/* ---- decoding ------------------------------------------------------- */

/* Decodes a job body; returns the rc and leaves the message in err. */
static int decode_job(const char *body, struct job_request *req, char *err)
{
	struct json_in_doc doc = {0};
	int rc;

	err[0] = '\0';
	rc = json_in_job(&doc, body, strlen(body), req, err, JSON_IN_ERRLEN);
	json_in_doc_release(&doc);
	return rc;
}

static void assert_job_error(const char *body, const char *want)
{
	struct job_request req;
	char err[JSON_IN_ERRLEN];

	assert_int_equal(decode_job(body, &req, err), -EINVAL);
	assert_string_equal(err, want);
}

static void test_decode_job(void **state)
{
	struct json_in_doc doc = {0};
	struct job_request req;
	char err[JSON_IN_ERRLEN];
	const char *body = "{\"name\":\"job_name\",\"description\":\"d\",\"task_name\":\"t\","
			   "\"task_params\":{\"url\":\"x\",\"n\":0.5},\"timeout\":10,"
			   "\"run_at\":\"2030-01-01T12:00:00+02:00\",\"unknown\":[1],"
			   "\"use_previous_results\":true}";

	assert_int_equal(json_in_job(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_string_equal(req.name, "job_name");
	assert_string_equal(req.description, "d");
	assert_string_equal(req.task_name, "t");
	assert_string_equal(req.params_json, "{\"url\":\"x\",\"n\":0.5}");
	assert_true(req.has_timeout);
	assert_int_equal(req.timeout_ms, 10000);
	assert_true(req.has_run_at);
	assert_int_equal(req.run_at, T_RUN_AT);
	assert_false(req.use_previous_results); /* standalone: ignored */
	json_in_doc_release(&doc);
	assert_null(doc.root);

	/* Minimal body: everything optional is absent; nulls count as absent. */
	body = "{\"name\":\"n\",\"task_name\":\"t\",\"description\":null,\"timeout\":null,"
	       "\"task_params\":{},\"run_at\":\"\"}";
	assert_int_equal(json_in_job(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_null(req.description);
	assert_null(req.params_json);
	assert_false(req.has_timeout);
	assert_false(req.has_run_at);
	json_in_doc_release(&doc);

	/* Missing required fields are the core's business, not a decode error. */
	assert_int_equal(decode_job("{}", &req, err), 0);
}

static void test_decode_timeout(void **state)
{
	struct job_request req;
	char err[JSON_IN_ERRLEN];

	assert_int_equal(decode_job("{\"timeout\":1.5}", &req, err), 0);
	assert_int_equal(req.timeout_ms, 1500);
	assert_int_equal(decode_job("{\"timeout\":1.1}", &req, err), 0);
	assert_int_equal(req.timeout_ms, 1100);
	assert_int_equal(decode_job("{\"timeout\":0.0001}", &req, err), 0);
	assert_int_equal(req.timeout_ms, 1);
	assert_int_equal(decode_job("{\"timeout\":2.0005}", &req, err), 0);
	assert_int_equal(req.timeout_ms, 2001);
	assert_int_equal(decode_job("{\"timeout\":1000000000}", &req, err), 0);
	assert_int_equal(req.timeout_ms, 1000000000000LL);

	assert_job_error("{\"timeout\":0}", "timeout must be a number greater than 0");
	assert_job_error("{\"timeout\":-1}", "timeout must be a number greater than 0");
	assert_job_error("{\"timeout\":-0.5}", "timeout must be a number greater than 0");
	assert_job_error("{\"timeout\":\"10\"}", "timeout must be a number greater than 0");
	assert_job_error("{\"timeout\":true}", "timeout must be a number greater than 0");
	assert_job_error("{\"timeout\":1000000001}", "timeout must be at most 1000000000 seconds");
	assert_job_error("{\"timeout\":1e300}", "timeout must be at most 1000000000 seconds");
}

static void test_decode_limits(void **state)
{
	struct job_request req;
	char err[JSON_IN_ERRLEN];

	assert_int_equal(decode_job("{\"limits\":{\"memory\":67108864,\"cpu\":5,\"processes\":16,"
				    "\"output\":65536}}",
				    &req, err),
			 0);
	assert_true(req.has_limits);
	assert_int_equal(req.limits.memory_bytes, 67108864);
	assert_int_equal(req.limits.cpu_seconds, 5);
	assert_int_equal(req.limits.processes, 16);
	assert_int_equal(req.limits.output_bytes, 65536);
	/* Strings in the config's syntax; CPU time rounds up to seconds. */
	assert_int_equal(decode_job("{\"limits\":{\"memory\":\"64M\",\"cpu\":\"1500ms\","
				    "\"output\":\"64k\"}}",
				    &req, err),
			 0);
	assert_int_equal(req.limits.memory_bytes, 64 << 20);
	assert_int_equal(req.limits.cpu_seconds, 2);
	assert_int_equal(req.limits.processes, 0);
	assert_int_equal(req.limits.output_bytes, 65536);
	/* {} and null values: set, nothing asked; null limits: absent. */
	assert_int_equal(decode_job("{\"limits\":{\"cpu\":null}}", &req, err), 0);
	assert_true(req.has_limits);
	assert_int_equal(req.limits.cpu_seconds, 0);
	assert_int_equal(decode_job("{\"limits\":null}", &req, err), 0);
	assert_false(req.has_limits);
	assert_int_equal(decode_job("{}", &req, err), 0);
	assert_false(req.has_limits);

	assert_job_error("{\"limits\":[]}", "limits must be an object");
	assert_job_error("{\"limits\":64}", "limits must be an object");
	assert_job_error("{\"limits\":{\"memory\":1,\"swap\":1}}",
			 "limits.swap is not a valid limit - valid limits: [cpu memory output "
			 "processes]");
	assert_job_error("{\"limits\":{\"memory\":0}}",
			 "limits.memory must be an integer number of bytes greater than 0 or a size "
			 "such as \"64M\"");
	assert_job_error("{\"limits\":{\"memory\":\"lots\"}}",
			 "limits.memory must be an integer number of bytes greater than 0 or a size "
			 "such as \"64M\"");
	assert_job_error("{\"limits\":{\"memory\":1.5}}",
			 "limits.memory must be an integer number of bytes greater than 0 or a size "
			 "such as \"64M\"");
	assert_job_error("{\"limits\":{\"cpu\":-1}}",
			 "limits.cpu must be an integer number of seconds greater than 0 or a "
			 "duration such as \"5s\"");
	assert_job_error("{\"limits\":{\"cpu\":\"0s\"}}",
			 "limits.cpu must be an integer number of seconds greater than 0 or a "
			 "duration such as \"5s\"");
	assert_job_error("{\"limits\":{\"processes\":\"16\"}}",
			 "limits.processes must be an integer greater than 0");
	assert_job_error("{\"limits\":{\"output\":true}}",
			 "limits.output must be an integer number of bytes greater than 0 or a size "
			 "such as \"64k\"");
	assert_job_error("{\"limits\":{\"output\":\"2G\"}}",
			 "limits.output must be at most 1073741824 bytes");
	assert_job_error("{\"limits\":{\"cpu\":2592001}}", "limits.cpu must be at most 2592000 seconds");
	assert_job_error("{\"limits\":{\"processes\":1000001}}",
			 "limits.processes must be at most 1000000");
	/* In a pipeline, per job. */
	{
		struct json_in_doc doc = {0};
		struct pipeline_request pl;
		const char *body = "{\"name\":\"p\",\"jobs\":[{\"name\":\"a\",\"task_name\":\"t\"},"
				   "{\"name\":\"b\",\"task_name\":\"t\",\"limits\":{\"cpu\":3}}]}";

		assert_int_equal(
		    json_in_pipeline(&doc, body, strlen(body), &pl, err, sizeof(err)), 0);
		assert_false(pl.jobs[0].has_limits);
		assert_true(pl.jobs[1].has_limits);
		assert_int_equal(pl.jobs[1].limits.cpu_seconds, 3);
		json_in_doc_release(&doc);
	}
}

static void test_decode_type_errors(void **state)
{
	assert_job_error("{\"name\":1,\"task_name\":\"t\"}", "name must be a string");
	assert_job_error("{\"name\":\"n\",\"description\":[]}", "description must be a string");
	assert_job_error("{\"name\":\"n\",\"task_name\":false}", "task_name must be a string");
	assert_job_error("{\"task_params\":[1]}", "task_params must be an object");
	assert_job_error("{\"task_params\":\"x\"}", "task_params must be an object");
	/* Numbers PostgreSQL's jsonb would give back as integers jansson
	 * cannot read (the memory store would keep them). */
	assert_job_error("{\"task_params\":{\"x\":1e19}}",
			 "task_params must not hold numbers of 2^63 or more in magnitude, got 1e+19");
	assert_job_error("{\"task_params\":{\"a\":[1,{\"b\":-9223372036854775808.0}]}}",
			 "task_params must not hold numbers of 2^63 or more in magnitude, got "
			 "-9.22337e+18");
	{
		struct job_request req;
		char err[JSON_IN_ERRLEN];

		assert_int_equal(decode_job("{\"task_params\":{\"x\":9.2e18,\"y\":-9223372036854775808,"
					    "\"z\":1e-300}}",
					    &req, err),
				 0);
	}
	assert_job_error("{\"run_at\":5}", "run_at must be a string");
	assert_job_error("{\"use_previous_results\":\"yes\"}",
			 "use_previous_results must be a boolean");
	/* The first wrong field in a fixed order wins. */
	assert_job_error("{\"timeout\":\"x\",\"name\":2}", "name must be a string");
	/* Type errors come before a bad run_at. */
	assert_job_error("{\"run_at\":\"nope\",\"task_name\":1}", "task_name must be a string");
}

static void test_decode_body_errors(void **state)
{
	struct job_request req;
	char err[JSON_IN_ERRLEN];

	assert_job_error("null", "request body must be a JSON object");
	assert_job_error("[1,2]", "request body must be a JSON object");
	assert_job_error("\"x\"", "request body must be a JSON object");
	assert_int_equal(decode_job("{\"name\":", &req, err), -EINVAL);
	assert_true(strncmp(err, "invalid JSON body: ", 19) == 0);
	assert_non_null(strstr(err, "(line 1, column "));
	assert_int_equal(decode_job("", &req, err), -EINVAL);
	assert_true(strncmp(err, "invalid JSON body: ", 19) == 0);
	assert_int_equal(decode_job("{\"name\":\"a\",\"name\":\"b\"}", &req, err), -EINVAL);
	assert_non_null(strstr(err, "duplicate"));
	assert_int_equal(decode_job("{} x", &req, err), -EINVAL);
	assert_true(strncmp(err, "invalid JSON body: ", 19) == 0);
}

static void test_decode_run_at(void **state)
{
	struct job_request req;
	char err[JSON_IN_ERRLEN];

	assert_int_equal(decode_job("{\"run_at\":\"\"}", &req, err), 0);
	assert_false(req.has_run_at);
	assert_int_equal(decode_job("{\"run_at\":\"2030-01-01T10:00:00Z\"}", &req, err), 0);
	assert_true(req.has_run_at);
	assert_int_equal(req.run_at, T_RUN_AT);
	assert_job_error("{\"name\":\"n\",\"run_at\":\"invalid_timestamp_format\"}",
			 "invalid run_at: parsing time \"invalid_timestamp_format\": expected "
			 "RFC 3339 with a time zone, e.g. 2026-01-02T15:04:05Z");
	assert_job_error("{\"run_at\":\"2022-06-06T15:04:05.999\"}",
			 "invalid run_at: parsing time \"2022-06-06T15:04:05.999\": expected "
			 "RFC 3339 with a time zone, e.g. 2026-01-02T15:04:05Z");
	/* Years 0001-9999 in UTC, as both stores can hold them. */
	assert_int_equal(decode_job("{\"run_at\":\"0001-01-01T00:00:00Z\"}", &req, err), 0);
	assert_int_equal(req.run_at, JOB_TIME_MIN_US);
	assert_int_equal(decode_job("{\"run_at\":\"9999-12-31T23:59:59.999999Z\"}", &req, err),
			 0);
	assert_int_equal(req.run_at, JOB_TIME_MAX_US);
	assert_job_error("{\"name\":\"n\",\"run_at\":\"0000-01-01T00:00:00Z\"}",
			 "invalid run_at: \"0000-01-01T00:00:00Z\" is out of range: times must be "
			 "from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z");
	assert_job_error("{\"run_at\":\"0001-01-01T00:59:59+01:00\"}",
			 "invalid run_at: \"0001-01-01T00:59:59+01:00\" is out of range: times must "
			 "be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z");
	assert_job_error("{\"run_at\":\"9999-12-31T23:00:00-01:00\"}",
			 "invalid run_at: \"9999-12-31T23:00:00-01:00\" is out of range: times must "
			 "be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z");
}

static void test_decode_pipeline(void **state)
{
	struct json_in_doc doc = {0};
	struct pipeline_request req;
	char err[JSON_IN_ERRLEN];
	const char *body =
	    "{\"name\":\"pl\",\"description\":\"d\",\"run_at\":\"2030-01-01T10:00:00Z\","
	    "\"jobs\":[{\"name\":\"a\",\"task_name\":\"dummytask\",\"task_params\":{\"k\":1},"
	    "\"run_at\":null},"
	    "{\"name\":\"b\",\"task_name\":\"echoprev\",\"use_previous_results\":true,"
	    "\"timeout\":3}]}";

	assert_int_equal(json_in_pipeline(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_string_equal(req.name, "pl");
	assert_string_equal(req.description, "d");
	assert_true(req.has_run_at);
	assert_int_equal(req.run_at, T_RUN_AT);
	assert_int_equal(req.njobs, 2);
	assert_string_equal(req.jobs[0].name, "a");
	assert_string_equal(req.jobs[0].params_json, "{\"k\":1}");
	assert_false(req.jobs[0].use_previous_results);
	assert_false(req.jobs[0].has_run_at);
	assert_string_equal(req.jobs[1].task_name, "echoprev");
	assert_true(req.jobs[1].use_previous_results);
	assert_true(req.jobs[1].has_timeout);
	assert_int_equal(req.jobs[1].timeout_ms, 3000);
	json_in_doc_release(&doc);

	body = "{\"name\":\"pl\"}";
	assert_int_equal(json_in_pipeline(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_int_equal(req.njobs, 0);
	assert_null(req.jobs);
	json_in_doc_release(&doc);

	body = "{\"jobs\":[]}";
	assert_int_equal(json_in_pipeline(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_int_equal(req.njobs, 0);
	json_in_doc_release(&doc);

	const char *bad[][2] = {
	    {"{\"jobs\":{}}", "jobs must be an array of objects"},
	    {"{\"jobs\":[{}, 1]}", "jobs must be an array of objects"},
	    {"{\"jobs\":[{\"name\":\"a\"},{\"timeout\":0}]}",
	     "timeout must be a number greater than 0"},
	    {"{\"jobs\":[{\"use_previous_results\":1}]}", "use_previous_results must be a boolean"},
	    {"{\"name\":7,\"jobs\":[]}", "name must be a string"},
	    {"{\"run_at\":\"2030-01-01\",\"jobs\":[{},{}]}",
	     "invalid run_at: parsing time \"2030-01-01\": expected RFC 3339 with a time zone, "
	     "e.g. 2026-01-02T15:04:05Z"},
	    {"null", "request body must be a JSON object"},
	    /* A job's own run_at, of any type, is refused (the original
	     * ignored it); a wrong type in an earlier field still wins. */
	    {"{\"run_at\":\"2030-01-01T10:00:00Z\",\"jobs\":[{},"
	     "{\"run_at\":\"2030-01-01T10:00:00Z\"}]}",
	     "jobs[1].run_at is not allowed: run_at belongs to the pipeline (set it next to "
	     "\"jobs\")"},
	    {"{\"jobs\":[{\"run_at\":5},{}]}",
	     "jobs[0].run_at is not allowed: run_at belongs to the pipeline (set it next to "
	     "\"jobs\")"},
	    {"{\"jobs\":[{\"run_at\":\"\"},{}]}",
	     "jobs[0].run_at is not allowed: run_at belongs to the pipeline (set it next to "
	     "\"jobs\")"},
	    {"{\"jobs\":[{\"run_at\":\"x\",\"timeout\":\"x\"},{}]}",
	     "timeout must be a number greater than 0"},
	    {"{\"run_at\":\"0000-12-31T00:00:00Z\",\"jobs\":[{},{}]}",
	     "invalid run_at: \"0000-12-31T00:00:00Z\" is out of range: times must be from "
	     "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    json_in_pipeline(&doc, bad[i][0], strlen(bad[i][0]), &req, err, sizeof(err)),
		    -EINVAL);
		assert_string_equal(err, bad[i][1]);
		json_in_doc_release(&doc);
	}
}

static void test_decode_patch(void **state)
{
	struct json_in_doc doc = {0};
	struct patch_request req;
	char err[JSON_IN_ERRLEN];
	const char *body = "{\"description\":\"new\"}";

	assert_int_equal(json_in_patch(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_null(req.name);
	assert_string_equal(req.description, "new");
	json_in_doc_release(&doc);

	body = "{\"name\":\"x\",\"description\":\"\"}";
	assert_int_equal(json_in_patch(&doc, body, strlen(body), &req, err, sizeof(err)), 0);
	assert_string_equal(req.name, "x");
	assert_string_equal(req.description, "");
	json_in_doc_release(&doc);

	const char *bad[][2] = {
	    {"{\"name\":\"\"}", "name must be a non-empty string"},
	    {"{\"name\":3}", "name must be a non-empty string"},
	    {"{\"name\":null,\"description\":\"x\"}", "name must be a non-empty string"},
	    {"{\"description\":null}", "description must be a string"},
	    {"{\"description\":3}", "description must be a string"},
	    {"null", "request body must be a JSON object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    json_in_patch(&doc, bad[i][0], strlen(bad[i][0]), &req, err, sizeof(err)),
		    -EINVAL);
		assert_string_equal(err, bad[i][1]);
		json_in_doc_release(&doc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_job_pending),
	    cmocka_unit_test(test_job_scheduled),
	    cmocka_unit_test(test_job_completed_outcome),
	    cmocka_unit_test(test_job_failed_outcome),
	    cmocka_unit_test(test_job_limits_isolation),
	    cmocka_unit_test(test_signal_names),
	    cmocka_unit_test(test_pipeline),
	    cmocka_unit_test(test_result),
	    cmocka_unit_test(test_error_body),
	    cmocka_unit_test(test_lists),
	    cmocka_unit_test(test_real_precision),
	    cmocka_unit_test(test_decode_job),
	    cmocka_unit_test(test_decode_timeout),
	    cmocka_unit_test(test_decode_limits),
	    cmocka_unit_test(test_decode_type_errors),
	    cmocka_unit_test(test_decode_body_errors),
	    cmocka_unit_test(test_decode_run_at),
	    cmocka_unit_test(test_decode_pipeline),
	    cmocka_unit_test(test_decode_patch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
