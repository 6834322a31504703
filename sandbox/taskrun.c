/*
 * taskrun.c - runs C tasks inside a sandboxed job child.
 *
 * Theory of operation: the spawner forked this child and sbx_enter() has
 * closed every fd but 0-3, applied rlimits, dropped privileges and loaded
 * the strict seccomp filter. From here on only memory, time and the open fds
 * are usable. For each job of the run: send FRAME_START, call the task,
 * send FRAME_RESULT; stop after the first failed job. The supervisor decides
 * the job's fate from the frames *and* how this process ends: a result
 * followed by a crash is still a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "sandbox.h"
#include "registry.h"
#include "taskrun.h"

static int send_result(int index, struct valet_ctx *ctx, json_t *result)
{
	char *text = NULL;
	size_t text_len = 0, err_len = 0;
	uint32_t hdr;
	char *buf;
	int rc;

	if (result && !json_is_null(result)) {
		text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!text)
			return -ENOMEM;
		text_len = strlen(text);
	}
	/* A failed task with an empty message still fails: say so. */
	if (ctx->failed && (!ctx->error || !ctx->error[0])) {
		free(ctx->error);
		ctx->error = strdup("task failed without a message");
	}
	if (ctx->failed && ctx->error)
		err_len = strlen(ctx->error);
	buf = malloc(sizeof(hdr) + err_len + text_len + 1);
	if (!buf) {
		free(text);
		return -ENOMEM;
	}
	hdr = (uint32_t)err_len;
	memcpy(buf, &hdr, sizeof(hdr));
	if (err_len)
		memcpy(buf + sizeof(hdr), ctx->error, err_len);
	if (text_len)
		memcpy(buf + sizeof(hdr) + err_len, text, text_len);
	rc = frame_write(SBX_FD_FRAME, FRAME_RESULT, (uint16_t)index, buf,
			 sizeof(hdr) + err_len + text_len);
	free(buf);
	free(text);
	return rc;
}

void taskrun_main(const struct registry *reg, const char *input, size_t len)
{
	json_t *root, *jobs, *job, *previous = NULL;
	size_t i;

	root = json_loadb(input, len, 0, NULL);
	jobs = root ? json_object_get(root, "jobs") : NULL;
	if (!json_is_array(jobs))
		_exit(125);
	previous = json_object_get(root, "previous");
	previous = json_is_null(previous) ? NULL : json_incref(previous);

	json_array_foreach(jobs, i, job) {
		const struct task *task = registry_at(reg, (int)json_integer_value(
							json_object_get(job, "task")));
		json_t *params = json_object_get(job, "params");
		bool use_prev = json_is_true(json_object_get(job, "use_previous"));
		struct valet_ctx ctx = {0};
		json_t *result;

		if (!task || task->kind != TASK_C)
			_exit(125);
		if (!json_is_object(params))
			params = json_object();
		else
			json_incref(params);
		if (frame_write(SBX_FD_FRAME, FRAME_START, (uint16_t)i, NULL, 0) < 0)
			_exit(125);
		result = task->fn(&ctx, params, use_prev ? previous : NULL);
		json_decref(params);
		if (send_result((int)i, &ctx, result) < 0)
			_exit(125);
		if (ctx.failed)
			break;
		json_decref(previous);
		previous = (result && !json_is_null(result)) ? result : NULL;
		if (!previous)
			json_decref(result);
		free(ctx.error);
	}
	/* No cleanup: the process ends here and the kernel frees everything. */
	_exit(0);
}

void taskrun_warmup(void)
{
	static const char sample[] = "{\"previous\":{\"k\":[1,2.5,\"s\",true,null]},\"jobs\":"
				     "[{\"task\":0,\"use_previous\":false,\"params\":{}}]}";
	json_t *root = json_loadb(sample, sizeof(sample) - 1, 0, NULL);
	char *text;

	if (!root)
		return;
	text = json_dumps(json_object_get(root, json_is_array(json_object_get(root, "jobs"))
						       ? "previous"
						       : "jobs"),
			  JSON_COMPACT | JSON_ENCODE_ANY);
	free(text);
	json_decref(root);
}
