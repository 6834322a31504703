/*
 * limits.h - a job's resource limits: memory (RLIMIT_AS), CPU time
 * (RLIMIT_CPU), processes (RLIMIT_NPROC) and output (stdout+stderr bytes).
 *
 * A job may set its own ("limits" in the API request), else its task's
 * [task.NAME] defaults apply, else the global keys ([sandbox] memory_limit,
 * cpu_limit, max_processes, [jobs] max_output_size). What a job may ask for
 * is capped by [jobs] max_memory_limit, max_cpu_limit, max_process_limit
 * and max_output_limit (0 = no maximum). In struct job_limits, 0 means no
 * limit (never for output).
 */
#ifndef VALET_LIMITS_H
#define VALET_LIMITS_H

#include <stddef.h>

#include "../sandbox/spawn_proto.h"
#include "config.h"
#include "job.h"
#include "tasks.h"

/* The largest values anyone may ask for, maxima or not (the config's ranges). */
#define LIMITS_MEMORY_MAX (1ULL << 40)       /* 1 TiB */
#define LIMITS_CPU_MAX (30U * 24 * 3600)     /* 30 days, in seconds */
#define LIMITS_PROCESSES_MAX 1000000U
#define LIMITS_OUTPUT_MAX (1U << 30)         /* 1 GiB */

/* The defaults of a job of this task: its [task.NAME] limits, else the
 * global ones (task NULL: the global ones). set is false. */
struct job_limits limits_defaults(const struct config *cfg, const struct task_def *task);

/*
 * Check the limits a request asked for (fields 0 = not asked) against the
 * [jobs] maxima. 0, or -EINVAL with the 400 message in msg
 * ("limits.memory must be at most 268435456 bytes (256 MiB)").
 */
int limits_check(const struct config *cfg, const struct job_limits *asked, char *msg,
		 size_t len);

/* A new job's limits: what it asked for, else its task's defaults; set. */
struct job_limits limits_resolve(const struct config *cfg, const struct task_def *task,
				 const struct job_limits *asked);

/* What a job of task runs with: its own limits when set, else the defaults. */
struct job_limits limits_of_job(const struct config *cfg, const struct task_def *task,
				const struct job *job);

/* acc becomes, limit by limit, the larger of acc and l (none is largest):
 * the limits of one child that runs several jobs. */
void limits_widen(struct job_limits *acc, const struct job_limits *l);

/* The rlimits of a child that runs with l ([sandbox] max_files and
 * max_file_size are global). */
struct sbx_limits limits_sbx(const struct config *cfg, const struct job_limits *l);
/* The rlimits of a child with the global defaults (pre-forked children). */
struct sbx_limits limits_default_sbx(const struct config *cfg);

#endif
