/*
 * taskapi.c - what a C task calls while it runs: valet_fail() and the
 * json_unpack-based decoding helpers. Runs inside the sandboxed job child,
 * so it may only allocate memory and format strings.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "taskrun.h"

json_t *valet_fail(struct valet_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(ctx->error);
	ctx->error = msg ? msg : NULL;
	ctx->failed = true;
	return NULL;
}

static int decode(struct valet_ctx *ctx, json_t *value, const char *what, const char *fmt,
		  va_list ap)
{
	json_error_t jerr;

	if (json_vunpack_ex(value, &jerr, 0, fmt, ap) == 0)
		return 0;
	valet_fail(ctx, "invalid %s: %s", what, jerr.text);
	return -1;
}

int valet_decode_params(struct valet_ctx *ctx, json_t *params, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = decode(ctx, params, "task_params", fmt, ap);
	va_end(ap);
	return rc;
}

int valet_decode_previous(struct valet_ctx *ctx, json_t *previous, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (!previous) {
		valet_fail(ctx, "no previous result: set use_previous_results on this pipeline job");
		return -1;
	}
	va_start(ap, fmt);
	rc = decode(ctx, previous, "previous result", fmt, ap);
	va_end(ap);
	return rc;
}
