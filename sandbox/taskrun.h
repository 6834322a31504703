/*
 * taskrun.h - the C-task runtime inside a job child (after the sandbox is
 * up): decode the run's input, call each task, send START/RESULT frames.
 *
 * Input (JSON text built by the daemon):
 *   {"previous": <json or null>, "jobs": [{"task": <registry index>,
 *     "use_previous": <bool>, "params": <object>}, ...]}
 * RESULT frame payload: uint32 error_len, error bytes (UTF-8, no NUL),
 * then the result as compact JSON text (empty = null).
 */
#ifndef VALET_TASKRUN_H
#define VALET_TASKRUN_H

#include <stdbool.h>
#include <stddef.h>

#include "../include/valet.h"

struct registry;

struct valet_ctx {
	char *error;
	bool failed;
};

/* In the spawner, once: exercise the JSON paths a child takes, so that the
 * dynamic linker's lazy bindings are resolved before children are forked. */
void taskrun_warmup(void);

/* Runs the jobs of input and _exit()s: 0 when every frame was written. */
void taskrun_main(const struct registry *reg, const char *input, size_t len)
	__attribute__((noreturn));

#endif
