/*
 * json_in.h - decoding of request bodies into the core's request structs,
 * with JSON type checks (the core validates the values: required fields,
 * task names, job counts).
 *
 * The decoded structs point into a struct json_in_doc, which owns the parsed
 * document and every string made for it; keep the doc until the core's
 * callback has run, then json_in_doc_release() it.
 */
#ifndef VALET_JSON_IN_H
#define VALET_JSON_IN_H

#include <stddef.h>

#include <jansson.h>

#include "../supervisor/core.h"

#define JSON_IN_ERRLEN 256

/* Timeouts above this many seconds are refused (400). */
#define JSON_IN_MAX_TIMEOUT_S 1000000000.0

struct json_in_doc {
	json_t *root;
	char **strs; /* made strings (task_params texts) */
	size_t nstrs;
	struct job_request *jobs; /* a pipeline's job array */
};

/*
 * Decode body (len bytes, borrowed) into req. Returns 0, -EINVAL with the
 * 400 message in err, or -ENOMEM. On any return doc must be released.
 */
int json_in_job(struct json_in_doc *doc, const char *body, size_t len, struct job_request *req,
		char *err, size_t errlen);
int json_in_pipeline(struct json_in_doc *doc, const char *body, size_t len,
		     struct pipeline_request *req, char *err, size_t errlen);
int json_in_patch(struct json_in_doc *doc, const char *body, size_t len, struct patch_request *req,
		  char *err, size_t errlen);

/* Frees what doc owns and zeroes it; a zeroed doc is a no-op. */
void json_in_doc_release(struct json_in_doc *doc);

#endif
