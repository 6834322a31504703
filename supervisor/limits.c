/*
 * limits.c - a job's resource limits: defaults, checks against the
 * maxima, resolution, and the rlimits of a child (see limits.h).
 *
 * Theory of operation. Limits are resolved once, when a job is created, if
 * its request set any: the job then carries all four (struct job_limits,
 * set), is stored with them and runs with them on whichever node claims
 * it. A job that set none carries none and gets, when it starts, the
 * defaults of the node that runs it, like every job did before limits
 * could be set per job. A task's own defaults are its task_def's
 * (tasks.h), the global ones the config's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "outcome.h"

static uint32_t ms_to_seconds(int64_t ms)
{
	return ms > 0 ? (uint32_t)((ms + 999) / 1000) : 0;
}

struct job_limits limits_defaults(const struct config *cfg, const struct task_def *t)
{
	struct job_limits l = {
	    .memory_bytes = cfg->memory_limit_bytes,
	    .cpu_seconds = ms_to_seconds(cfg->cpu_limit_ms),
	    .processes = cfg->max_processes > 0 ? (uint32_t)cfg->max_processes : 0,
	    .output_bytes = (uint32_t)cfg->max_output_bytes,
	};

	if (!t)
		return l;
	if (t->memory_limit_bytes >= 0)
		l.memory_bytes = (uint64_t)t->memory_limit_bytes;
	if (t->cpu_limit_ms >= 0)
		l.cpu_seconds = ms_to_seconds(t->cpu_limit_ms);
	if (t->max_processes >= 0)
		l.processes = (uint32_t)t->max_processes;
	if (t->max_output_bytes > 0)
		l.output_bytes = (uint32_t)t->max_output_bytes;
	return l;
}

/* " (256 MiB)" when bytes is a whole number of KiB, MiB or GiB, else "". */
static void size_note(uint64_t bytes, char *out, size_t len)
{
	char a[32];

	out[0] = '\0';
	if (bytes >= 1024 && bytes % 1024 == 0) {
		outcome_format_size((size_t)bytes, a, sizeof(a));
		snprintf(out, len, " (%s)", a);
	}
}

int limits_check(const struct config *cfg, const struct job_limits *asked, char *msg,
		 size_t len)
{
	uint64_t max_cpu = ms_to_seconds(cfg->max_cpu_limit_ms);
	char note[48];

	if (asked->memory_bytes && cfg->max_memory_limit &&
	    asked->memory_bytes > cfg->max_memory_limit) {
		size_note(cfg->max_memory_limit, note, sizeof(note));
		snprintf(msg, len, "limits.memory must be at most %zu bytes%s",
			 cfg->max_memory_limit, note);
		return -EINVAL;
	}
	/* The maximum is in ms, the limit whole seconds: 1500ms allows 2. */
	if (asked->cpu_seconds && max_cpu && asked->cpu_seconds > max_cpu) {
		snprintf(msg, len, "limits.cpu must be at most %llu seconds",
			 (unsigned long long)max_cpu);
		return -EINVAL;
	}
	if (asked->processes && cfg->max_process_limit > 0 &&
	    asked->processes > (uint32_t)cfg->max_process_limit) {
		snprintf(msg, len, "limits.processes must be at most %d", cfg->max_process_limit);
		return -EINVAL;
	}
	if (asked->output_bytes && asked->output_bytes > cfg->max_output_limit) {
		size_note(cfg->max_output_limit, note, sizeof(note));
		snprintf(msg, len, "limits.output must be at most %zu bytes%s",
			 cfg->max_output_limit, note);
		return -EINVAL;
	}
	return 0;
}

struct job_limits limits_resolve(const struct config *cfg, const struct task_def *task,
				 const struct job_limits *asked)
{
	struct job_limits l = limits_defaults(cfg, task);

	if (asked->memory_bytes)
		l.memory_bytes = asked->memory_bytes;
	if (asked->cpu_seconds)
		l.cpu_seconds = asked->cpu_seconds;
	if (asked->processes)
		l.processes = asked->processes;
	if (asked->output_bytes)
		l.output_bytes = asked->output_bytes;
	l.set = true;
	return l;
}

struct job_limits limits_of_job(const struct config *cfg, const struct task_def *task,
				const struct job *job)
{
	return job->limits.set ? job->limits : limits_defaults(cfg, task);
}

/* 0 (none) is larger than anything. */
static uint64_t wider(uint64_t a, uint64_t b)
{
	return a == 0 || b == 0 ? 0 : a > b ? a : b;
}

void limits_widen(struct job_limits *acc, const struct job_limits *l)
{
	acc->memory_bytes = wider(acc->memory_bytes, l->memory_bytes);
	acc->cpu_seconds = (uint32_t)wider(acc->cpu_seconds, l->cpu_seconds);
	acc->processes = (uint32_t)wider(acc->processes, l->processes);
	acc->output_bytes = l->output_bytes > acc->output_bytes ? l->output_bytes
								: acc->output_bytes;
}

struct sbx_limits limits_sbx(const struct config *cfg, const struct job_limits *l)
{
	return (struct sbx_limits){
	    .memory_bytes = l->memory_bytes,
	    .cpu_seconds = l->cpu_seconds,
	    .max_files = (uint64_t)cfg->max_files,
	    .max_processes = l->processes,
	    .max_file_size = cfg->max_file_size,
	};
}

struct sbx_limits limits_default_sbx(const struct config *cfg)
{
	struct job_limits l = limits_defaults(cfg, NULL);

	return limits_sbx(cfg, &l);
}
