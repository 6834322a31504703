/*
 * json_out.h - JSON encoding of API responses (API.md): jobs, pipelines,
 * results, lists and the error body. Keys come out in the documented order
 * and absent fields are omitted.
 */
#ifndef VALET_JSON_OUT_H
#define VALET_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include <jansson.h>

#include "../supervisor/job.h"

/* Flags for every dump: compact, keys in insertion order. */
#define JSON_OUT_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

/* job: borrowed. Returns new, or NULL on ENOMEM. */
json_t *json_out_job(const struct job *job);
/* pl: borrowed. with_jobs adds "jobs" (the POST response). New or NULL. */
json_t *json_out_pipeline(const struct pipeline *pl, bool with_jobs);
/*
 * {"job_id","metadata"?,"error"?} from a job's stored result, as three
 * pieces of text: *head and *tail are new (free()), *meta is the stored
 * result itself, borrowed from job (empty when there is no metadata). The
 * stored result is valid JSON already: it is neither decoded again nor
 * copied, so a large one costs nothing here. 0 or -ENOMEM.
 */
int json_out_result(const struct job *job, struct iovec *head, struct iovec *meta,
		    struct iovec *tail);
/* The "outcome" object of a job that ran (outcome.pid != 0). New or NULL. */
json_t *json_out_outcome(const struct job_outcome *oc);

/*
 * Dump v (borrowed) compactly. Returns new text (free()) and its length in
 * *len, or NULL on ENOMEM. Reals use the fewest digits that still read back
 * exactly, so 0.1 prints as 0.1.
 */
char *json_out_dump(const json_t *v, size_t *len);
/* The precision (1..17) that json_out_dump uses for v: JSON_REAL_PRECISION(n). */
int json_out_real_precision(const json_t *v);

/*
 * {"code":N,"error":true,"message":"..."}; message may hold invalid UTF-8
 * (it often quotes the request), which is replaced by U+FFFD. Returns new
 * text (free()) or NULL on ENOMEM.
 */
char *json_out_error(int code, const char *message, size_t *len);

/*
 * {"<key>":[job,...]} / {"<key>":[pipeline,...]} in pieces, for an answer
 * streamed as it is sent (api/routes_list.c): open it ({"<key>":[), add
 * objects (a job, else the pipeline pl; first: no comma before it), close
 * it (]}), each appending to b. The caller owns b->data
 * (free()) and may take it and start b afresh between calls. 0, or
 * -ENOMEM (b's text is then not to be used).
 */
struct json_out_buf {
	char *data; /* NUL-terminated once anything is in */
	size_t len, cap;
};
int json_out_list_open(struct json_out_buf *b, const char *key);
int json_out_list_item(struct json_out_buf *b, const struct job *job, const struct pipeline *pl,
		       bool first, bool owners);
int json_out_list_close(struct json_out_buf *b);
/* Adds "owner": the name of owner (job_owner_name()), null for none - what
 * an admin key is shown (owners: every object of a list gets it). 0 or -1. */
int json_out_owner(json_t *o, uint16_t owner);

/* "SIGSEGV" for SIGSEGV; "SIG<n>" for an unknown number. buf >= 16 bytes. */
const char *json_out_signal_name(int sig, char *buf, size_t buflen);

#endif
