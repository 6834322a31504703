/*
 * valet.h - the public task API of valet.
 *
 * A task is a C function registered under a name. valetd runs every job in a
 * forked, seccomp-sandboxed child: the task gets the job's task_params and,
 * in a pipeline job with use_previous_results, the previous job's result, as
 * jansson values, and returns a JSON result and/or an error message.
 *
 * Three ways to provide tasks:
 *  - your own main(): valet_register() each task, then return valet_main();
 *  - a plugin .so in the tasks directory that exports valet_plugin_init(),
 *    which calls valet_register() (see VALET_PLUGIN below);
 *  - an exec task declared in the config (any program; no C needed).
 *
 * Task code runs under the "strict" seccomp profile: it may compute, allocate
 * memory, read/write its already-open fds, sleep and exit. Opening files,
 * sockets, fork, exec and threads are blocked and fail the job with
 * "blocked by sandbox: system call <name>".
 */
#ifndef VALET_H
#define VALET_H

#include <stdarg.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VALET_API_VERSION 1

/* Per-call context: carries the task's error message back to valetd. */
struct valet_ctx;

/*
 * A task. params: borrowed, the job's task_params (an empty object when the
 * job has none). previous: borrowed, the previous job's result in a pipeline
 * job with use_previous_results, else NULL. Returns: new (stolen by valet),
 * the result stored as the job's "metadata"; NULL means no metadata. The job
 * FAILS when the task called valet_fail()/valet_decode_*() failed, COMPLETES
 * otherwise.
 */
typedef json_t *(*valet_task_fn)(struct valet_ctx *ctx, json_t *params, json_t *previous);

/*
 * Register a task under a name ([A-Za-z0-9_.-], 1..64 chars). Call before
 * valet_main() (or from valet_plugin_init()). Returns 0, -EINVAL for a bad
 * name or NULL fn, -EEXIST when the name is already taken.
 */
int valet_register(const char *name, valet_task_fn fn);

/*
 * Fail the current job with a printf-style message (the job's
 * failure_reason and the result's "error"). Always returns NULL so that a
 * task can write: return valet_fail(ctx, "bad input: %s", why);
 * A later call replaces the message.
 */
json_t *valet_fail(struct valet_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Decode task_params with a json_unpack() format, in the spirit of the
 * original's DecodeTaskParams. On mismatch the job is failed with a clear
 * message ("invalid task_params: <what>") and -1 is returned;
 * 0 on success. Strings you get point into params (borrowed).
 * Example: valet_decode_params(ctx, params, "{s:s, s?i}", "url", &url, "n", &n)
 */
int valet_decode_params(struct valet_ctx *ctx, json_t *params, const char *fmt, ...);

/*
 * Same for the previous job's result (the original's DecodePreviousJobResults).
 * Fails with "no previous result: set use_previous_results on this pipeline
 * job" when previous is NULL.
 */
int valet_decode_previous(struct valet_ctx *ctx, json_t *previous, const char *fmt, ...);

/*
 * Run valetd with the registered tasks (plus plugins and exec tasks from
 * the config): takes valetd's arguments (-c FILE, -t, -l ADDR, -w N, ...),
 * serves until SIGTERM/SIGINT. It execs valetd (VALET_DAEMON, else the
 * valetd installed with this library) naming this program as its spawner;
 * valetd execs the program back as the spawner, where valet_main() runs
 * the tasks. Returns only on failure (the exit status).
 */
int valet_main(int argc, char **argv);

/*
 * Plugins: a shared object in the tasks directory that defines
 *   VALET_PLUGIN(my_init)
 * where my_init() registers its tasks and returns 0 (or a negative errno to
 * refuse loading).
 */
#define VALET_PLUGIN(init_fn)                                                 \
	const int valet_plugin_api_version = VALET_API_VERSION;              \
	int valet_plugin_init(void)                                           \
	{                                                                     \
		return init_fn();                                             \
	}

#ifdef __cplusplus
}
#endif
#endif /* VALET_H */
