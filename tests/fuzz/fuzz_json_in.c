/*
 * fuzz_json_in.c - libFuzzer harness of the request body decoders
 * (api/json_in.c): every input is decoded as a job, a pipeline and a
 * PATCH body, as the routes would for POST /api/jobs, POST /api/pipelines
 * and PATCH /api/jobs/:id.
 *
 * Besides what the sanitizers see (reads past the body, which is passed
 * with its length and no NUL, leaks of the doc), it checks the decoders'
 * contract with the core: 0 or a negative errno; -EINVAL comes with a
 * message; on 0 the request holds what core.h promises (a timeout > 0 when
 * there is one, limits within their absolute bounds, task_params a compact
 * non-empty JSON object that encodes back to the same text, a pipeline's
 * jobs array exactly when it has jobs, a PATCH name that is not empty).
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "../../api/json_in.h"
#include "../../api/json_out.h"
#include "../../supervisor/limits.h"
#include "fuzz.h"

/* err after a decoder returned rc. */
static void check_rc(int rc, const char *err, size_t errlen)
{
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc == -EINVAL) {
		FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
		FUZZ_CHECK(err[0] != '\0');
	}
}

static void check_params(const char *params_json)
{
	json_error_t jerr;
	json_t *v;
	char *again;

	if (!params_json)
		return;
	v = json_loads(params_json, 0, &jerr);
	FUZZ_CHECK(v != NULL);
	FUZZ_CHECK(json_is_object(v) && json_object_size(v) > 0);
	again = json_out_dump(v, NULL);
	FUZZ_CHECK(again != NULL);
	FUZZ_CHECK(strcmp(again, params_json) == 0);
	free(again);
	json_decref(v);
}

static void check_job(const struct job_request *r, bool in_pipeline)
{
	/* Strings are C strings in the doc (ASan checks the reads). */
	fuzz_touch(r->name);
	fuzz_touch(r->description);
	fuzz_touch(r->task_name);
	check_params(r->params_json);
	if (r->has_timeout)
		FUZZ_CHECK(r->timeout_ms >= 1 &&
			   r->timeout_ms <= (int64_t)(JSON_IN_MAX_TIMEOUT_S * 1000));
	else
		FUZZ_CHECK(r->timeout_ms == 0);
	FUZZ_CHECK(r->max_attempts >= 0 && r->max_attempts <= JOB_MAX_ATTEMPTS);
	if (!r->has_run_at)
		FUZZ_CHECK(r->run_at == 0);
	FUZZ_CHECK(in_pipeline || !r->use_previous_results);
	if (r->has_limits) {
		FUZZ_CHECK(r->limits.memory_bytes <= LIMITS_MEMORY_MAX);
		FUZZ_CHECK(r->limits.cpu_seconds <= LIMITS_CPU_MAX);
		FUZZ_CHECK(r->limits.processes <= LIMITS_PROCESSES_MAX);
		FUZZ_CHECK(r->limits.output_bytes <= LIMITS_OUTPUT_MAX);
	} else {
		FUZZ_CHECK(!r->limits.memory_bytes && !r->limits.cpu_seconds &&
			   !r->limits.processes && !r->limits.output_bytes);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct json_in_doc doc = {0};
	struct job_request job;
	struct pipeline_request pl;
	struct patch_request patch;
	char err[JSON_IN_ERRLEN];
	int rc;

	err[0] = '\0';
	rc = json_in_job(&doc, body, size, &job, err, sizeof(err));
	check_rc(rc, err, sizeof(err));
	if (rc == 0)
		check_job(&job, false);
	json_in_doc_release(&doc);

	err[0] = '\0';
	rc = json_in_pipeline(&doc, body, size, &pl, err, sizeof(err));
	check_rc(rc, err, sizeof(err));
	if (rc == 0) {
		fuzz_touch(pl.name);
		fuzz_touch(pl.description);
		FUZZ_CHECK((pl.njobs == 0) == (pl.jobs == NULL));
		FUZZ_CHECK(pl.has_run_at || pl.run_at == 0);
		for (size_t i = 0; i < pl.njobs; i++)
			check_job(&pl.jobs[i], true);
	}
	json_in_doc_release(&doc);

	err[0] = '\0';
	rc = json_in_patch(&doc, body, size, &patch, err, sizeof(err));
	check_rc(rc, err, sizeof(err));
	if (rc == 0) {
		FUZZ_CHECK(!patch.name || strlen(patch.name) > 0);
		fuzz_touch(patch.description);
	}
	json_in_doc_release(&doc);
	return 0;
}
