/*
 * outcome.h - decide a job's final status and failure_reason from what the
 * supervisor itself observed (SANDBOX.md property 8), in this order:
 * killed by us (timeout / cancel / shutdown / output or result limit) ->
 * OOM -> seccomp (SIGSYS) -> other signal -> setup failure -> non-zero exit
 * -> missing or malformed result -> the task's own error -> ok.
 */
#ifndef VALET_OUTCOME_H
#define VALET_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "metrics.h"

enum run_kill {
	RUN_KILL_NONE = 0,
	RUN_KILL_TIMEOUT,
	RUN_KILL_CANCEL,
	RUN_KILL_SHUTDOWN,
	RUN_KILL_SHUTDOWN_NOW, /* a second stop signal ended the grace period */
	RUN_KILL_OUTPUT,
	RUN_KILL_RESULT_SIZE,
	RUN_KILL_PROTOCOL,
	RUN_KILL_LEASE,     /* this node lost its claim on the job (shared store) */
	RUN_KILL_SPAWNER,   /* the spawner died: its children die with it */
};

/* Whether a kill for this reason is recorded as a cancel in the outcome:
 * a request's, or a shutdown's. */
static inline bool outcome_kill_cancels(enum run_kill why)
{
	return why == RUN_KILL_CANCEL || why == RUN_KILL_SHUTDOWN || why == RUN_KILL_SHUTDOWN_NOW;
}

struct outcome_facts {
	enum run_kill killed;
	int64_t timeout_ms;       /* of the job that was running */
	int64_t shutdown_grace_ms;
	size_t max_output_bytes, max_result_bytes;
	int spawn_err;            /* fork failed: errno */
	bool exited;              /* WIFEXITED */
	int exit_code;
	int term_signal;          /* WIFSIGNALED */
	/* The job's seccomp profile ends a task with SIGSYS (strict: C tasks).
	 * The exec profiles never do (policy.c): there a SIGSYS is the task's. */
	bool filter_kills;
	bool oom_killed;          /* the OOM killer struck in the job's cgroup */
	size_t memory_limit_bytes; /* that cgroup's limit, for the sentence */
	uint64_t cpu_limit_s;     /* RLIMIT_CPU of the child; 0 = none */
	int64_t cpu_ms;           /* CPU time the child used (the kernel's rusage) */
	const char *syscall_name; /* from the SIGSYS reporter; NULL/"" unknown */
	const char *setup_step;   /* sandbox setup failure; NULL = none */
	int setup_errno;
	const char *stderr_tail;  /* exec tasks: appended to exit failures */
	bool has_result;          /* a result arrived for this job */
	const char *malformed;    /* why the result is unusable; NULL = fine */
	const char *task_error;   /* the task's own error, control characters
				   * blanked (run_io.c); NULL = none */
};

/* Returns COMPLETED, FAILED or CANCELLED and writes the reason ("" for
 * COMPLETED) into reason. *by_task (may be NULL) tells whether the job
 * failed by its own error, whose full text is then f->task_error. */
enum job_status outcome_classify(const struct outcome_facts *f, char *reason, size_t len,
				 bool *by_task);

/* The same, and *cls: why it failed, for the metrics (METRICS_FAIL_NONE
 * when it did not). */
enum job_status outcome_decide(const struct outcome_facts *f, char *reason, size_t len,
			       enum metrics_failure *cls);

/* "2s", "1.5s", "500ms" */
void outcome_format_duration(int64_t ms, char *out, size_t len);
/* "1 MiB", "512 KiB", "100 bytes" */
void outcome_format_size(size_t bytes, char *out, size_t len);
/* "SIGSEGV" ("SIG42" when unknown) and "segmentation fault" (or NULL). */
const char *outcome_signal_name(int sig, char *buf, size_t len);

#endif
