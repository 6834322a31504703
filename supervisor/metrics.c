/*
 * metrics.c - counters, histograms and the Prometheus text format
 * (metrics.h).
 *
 * Theory of operation: everything a job event touches is a plain integer
 * in a preallocated array (per task: found by a binary search of the
 * sorted task names; a histogram: a linear search of at most 20 bounds),
 * so the hot path neither allocates nor formats. A scrape walks the arrays
 * once and prints them (a task's histograms once it has an observation),
 * in the exposition format version 0.0.4: a HELP
 * and a TYPE line per family, then its samples; histograms cumulative, with
 * le="+Inf", _sum and _count. Numbers are printed in the shortest of
 * %.15g and %.17g that reads back exactly (0.025, not 0.025000000000000001).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* ---- buckets ------------------------------------------------------------------ */

static const double buckets_duration[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,
					  2.5,	 5,    10,    30,   60,	 300,  1800, 3600};
static const double buckets_wait[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600};
static const double buckets_kill[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
				      0.05,   0.1,   0.25,  0.5,   1};
static const double buckets_memory[] = {1048576.0,   4194304.0,	   16777216.0,	67108864.0,
					268435456.0, 1073741824.0, 4294967296.0};
const double metrics_buckets_latency[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					  0.1,	  0.25,	 0.5,	 1,	2.5,  5,     10};
const double metrics_buckets_batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

#define NB(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))
const unsigned metrics_nbuckets_latency = NB(metrics_buckets_latency);
const unsigned metrics_nbuckets_batch = NB(metrics_buckets_batch);

void metrics_hist_init(struct metrics_hist *h, const double *bounds, unsigned nbounds)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = nbounds < METRICS_HIST_MAX ? nbounds : METRICS_HIST_MAX;
}

void metrics_hist_observe(struct metrics_hist *h, double v)
{
	unsigned i = 0;

	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

/* ---- text ----------------------------------------------------------------------- */

static __attribute__((format(printf, 2, 0))) void text_vprintf(struct metrics_text *t,
							       const char *fmt, va_list ap)
{
	va_list again;
	int n;

	if (t->err)
		return;
	va_copy(again, ap);
	n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, fmt, ap);
	if (n >= 0 && (!t->data || (size_t)n >= t->cap - t->len)) {
		size_t cap = t->cap ? t->cap : 4096;
		char *p;

		while (cap - t->len <= (size_t)n)
			cap *= 2;
		p = realloc(t->data, cap);
		if (!p) {
			t->err = -ENOMEM;
			va_end(again);
			return;
		}
		t->data = p;
		t->cap = cap;
		n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, again);
	}
	va_end(again);
	if (n < 0)
		t->err = -EINVAL;
	else
		t->len += (size_t)n;
}

void metrics_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	text_vprintf(t, fmt, ap);
	va_end(ap);
}

void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_label_value(struct metrics_text *t, const char *value)
{
	for (const char *p = value; *p; p++) {
		size_t n = strcspn(p, "\\\"\n");

		metrics_printf(t, "%.*s", (int)n, p);
		p += n;
		if (!*p)
			break;
		metrics_printf(t, "%s", *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\");
	}
}

/* The shortest of %.15g and %.17g that reads back as v. */
static void write_number(struct metrics_text *t, double v)
{
	char buf[40];

	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	metrics_printf(t, "%s", buf);
}

static void write_value(struct metrics_text *t, double value)
{
	metrics_printf(t, " ");
	write_number(t, value);
	metrics_printf(t, "\n");
}

void metrics_sample(struct metrics_text *t, const char *name, double value, ...)
{
	const char *label;
	va_list ap;
	bool first = true;

	metrics_printf(t, "%s", name);
	va_start(ap, value);
	while ((label = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);

		metrics_printf(t, "%s%s=\"", first ? "{" : ",", label);
		metrics_label_value(t, v ? v : "");
		metrics_printf(t, "\"");
		first = false;
	}
	va_end(ap);
	if (!first)
		metrics_printf(t, "}");
	write_value(t, value);
}

void metrics_hist_write(struct metrics_text *t, const char *name, const char *label,
			const char *value, const struct metrics_hist *h)
{
	uint64_t cum = 0;

	for (unsigned i = 0; i <= h->nbounds; i++) {
		cum += h->counts[i];
		metrics_printf(t, "%s_bucket{", name);
		if (label) {
			metrics_printf(t, "%s=\"", label);
			metrics_label_value(t, value);
			metrics_printf(t, "\",");
		}
		if (i < h->nbounds) {
			metrics_printf(t, "le=\"");
			write_number(t, h->bounds[i]);
			metrics_printf(t, "\"}");
		} else
			metrics_printf(t, "le=\"+Inf\"}");
		write_value(t, (double)cum);
	}
	metrics_printf(t, "%s_sum", name);
	if (label) {
		metrics_printf(t, "{%s=\"", label);
		metrics_label_value(t, value);
		metrics_printf(t, "\"}");
	}
	write_value(t, h->sum);
	metrics_printf(t, "%s_count", name);
	if (label) {
		metrics_printf(t, "{%s=\"", label);
		metrics_label_value(t, value);
		metrics_printf(t, "\"}");
	}
	write_value(t, (double)h->count);
}

/* ---- the job counters ------------------------------------------------------------ */

static const char *const failure_names[METRICS_FAIL_COUNT] = {
    [METRICS_FAIL_NONE] = "none",
    [METRICS_FAIL_TIMEOUT] = "timeout",
    [METRICS_FAIL_OOM] = "oom",
    [METRICS_FAIL_SECCOMP] = "seccomp",
    [METRICS_FAIL_CPU_LIMIT] = "cpu_limit",
    [METRICS_FAIL_SIGNAL] = "signal",
    [METRICS_FAIL_EXIT] = "exit",
    [METRICS_FAIL_SETUP] = "setup",
    [METRICS_FAIL_OUTPUT_LIMIT] = "output_limit",
    [METRICS_FAIL_RESULT] = "result",
    [METRICS_FAIL_TASK] = "task_error",
    [METRICS_FAIL_SHUTDOWN] = "shutdown",
    [METRICS_FAIL_LOST_NODE] = "lost_node",
    [METRICS_FAIL_START] = "start",
};

const char *metrics_failure_name(enum metrics_failure f)
{
	return f >= 0 && f < METRICS_FAIL_COUNT ? failure_names[f] : "unknown";
}

struct metrics *metrics_new(const char *const *task_names, size_t ntasks)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->tasks = calloc(ntasks ? ntasks : 1, sizeof(*m->tasks));
	if (!m->tasks) {
		free(m);
		return NULL;
	}
	m->ntasks = ntasks;
	m->task_names = task_names;
	for (size_t i = 0; i < ntasks; i++) {
		metrics_hist_init(&m->tasks[i].wall, buckets_duration, NB(buckets_duration));
		metrics_hist_init(&m->tasks[i].cpu, buckets_duration, NB(buckets_duration));
		metrics_hist_init(&m->tasks[i].memory, buckets_memory, NB(buckets_memory));
	}
	metrics_hist_init(&m->queue_wait, buckets_wait, NB(buckets_wait));
	metrics_hist_init(&m->kill_latency, buckets_kill, NB(buckets_kill));
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->tasks);
	free(m);
}

struct metrics_task *metrics_task(struct metrics *m, const char *task_name)
{
	size_t lo = 0, hi = m ? m->ntasks : 0;

	while (task_name && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(task_name, m->task_names[mid]);

		if (c == 0)
			return &m->tasks[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void metrics_job_submitted(struct metrics *m, const struct job *job)
{
	struct metrics_task *t = metrics_task(m, job->task_name);

	if (t) {
		t->submitted++;
		t->active = true;
	}
}

static void count_syscall(struct metrics *m, const char *name)
{
	size_t i;

	for (i = 0; name && i < m->nsyscalls; i++)
		if (m->syscalls[i] == name || !strcmp(m->syscalls[i], name))
			break;
	if (name && i == m->nsyscalls && i < METRICS_SYSCALLS)
		m->syscalls[m->nsyscalls++] = name;
	else if (!name || i == m->nsyscalls)
		i = METRICS_SYSCALLS; /* unknown, or one name too many: "other" */
	m->syscall_kills[i]++;
}

void metrics_attempt_ended(struct metrics *m, const struct job *job, enum job_status st)
{
	struct metrics_task *t = metrics_task(m, job->task_name);
	const struct job_outcome *o = &job->outcome;
	enum metrics_failure f = o->failure_class;

	if (!t)
		return;
	t->active = true;
	/* Every attempt that started has a wall time (a pipeline's job may end
	 * before its child's pid is known); its child's figures need a child. */
	if (o->wall_ms >= 0 && f != METRICS_FAIL_START)
		metrics_hist_observe(&t->wall, o->wall_ms / 1e3);
	if (o->pid > 0 && o->cpu_ms >= 0)
		metrics_hist_observe(&t->cpu, o->cpu_ms / 1e3);
	if (o->pid > 0 && o->memory_peak_kb >= 0)
		metrics_hist_observe(&t->memory, o->memory_peak_kb * 1024.0);
	else if (o->pid > 0 && o->max_rss_kb >= 0)
		metrics_hist_observe(&t->memory, o->max_rss_kb * 1024.0);
	if (st != JOB_FAILED)
		return;
	if (f <= METRICS_FAIL_NONE || f >= METRICS_FAIL_COUNT)
		f = METRICS_FAIL_EXIT;
	t->failures[f]++;
	if (f == METRICS_FAIL_SECCOMP)
		count_syscall(m, o->seccomp_syscall);
}

void metrics_job_finished(struct metrics *m, const struct job *job)
{
	struct metrics_task *t = metrics_task(m, job->task_name);

	if (t && job->status >= 0 && job->status <= JOB_STATUS_MAX) {
		t->finished[job->status]++;
		t->active = true;
	}
}

void metrics_job_retried(struct metrics *m, const struct job *job)
{
	struct metrics_task *t = metrics_task(m, job->task_name);

	if (t)
		t->retries++;
}

void metrics_start_failed(struct metrics *m, const struct job *job)
{
	struct metrics_task *t = metrics_task(m, job->task_name);

	if (t) {
		t->failures[METRICS_FAIL_START]++;
		t->active = true;
	}
}

void metrics_queue_wait(struct metrics *m, double seconds)
{
	metrics_hist_observe(&m->queue_wait, seconds < 0 ? 0 : seconds);
}

void metrics_kill_latency(struct metrics *m, double seconds)
{
	metrics_hist_observe(&m->kill_latency, seconds < 0 ? 0 : seconds);
}

static void write_finished(struct metrics_text *t, const char *name, const struct metrics_task *mt)
{
	static const enum job_status finals[] = {JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED};

	for (size_t k = 0; k < sizeof(finals) / sizeof(finals[0]); k++)
		metrics_sample(t, "valet_jobs_finished_total", (double)mt->finished[finals[k]],
			       "task", name, "status", job_status_name(finals[k]),
			       (const char *)NULL);
}

/* Every task's submissions; its finished, failures and retries series (all
 * zero until then) once it had a job here: a daemon with hundreds of tasks,
 * most of them idle, is not scraped as thousands of zeros. */
static void write_task_counters(struct metrics_text *t, const struct metrics *m)
{
	metrics_family(t, "valet_jobs_submitted_total", "counter",
		       "Jobs accepted by this node (pipeline jobs included), by task.");
	for (size_t i = 0; i < m->ntasks; i++)
		metrics_sample(t, "valet_jobs_submitted_total", (double)m->tasks[i].submitted,
			       "task", m->task_names[i], (const char *)NULL);
	metrics_family(t, "valet_jobs_finished_total", "counter",
		       "Jobs that reached a final status on this node, by task and status.");
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].active)
			write_finished(t, m->task_names[i], &m->tasks[i]);
	metrics_family(t, "valet_job_failures_total", "counter",
		       "Failed attempts (retried or not) by task and class.");
	for (size_t i = 0; i < m->ntasks; i++)
		for (int f = METRICS_FAIL_NONE + 1; m->tasks[i].active && f < METRICS_FAIL_COUNT;
		     f++)
			metrics_sample(t, "valet_job_failures_total",
				       (double)m->tasks[i].failures[f], "task", m->task_names[i],
				       "class", failure_names[f], (const char *)NULL);
	metrics_family(t, "valet_job_retries_total", "counter",
		       "Failed attempts that were scheduled to run again, by task.");
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].active)
			metrics_sample(t, "valet_job_retries_total", (double)m->tasks[i].retries,
				       "task", m->task_names[i], (const char *)NULL);
}

void metrics_write_jobs(struct metrics_text *t, const struct metrics *m)
{
	write_task_counters(t, m);
	metrics_family(t, "valet_seccomp_kills_total", "counter",
		       "Jobs killed by the seccomp filter, by the blocked system call.");
	for (size_t i = 0; i < m->nsyscalls; i++)
		metrics_sample(t, "valet_seccomp_kills_total", (double)m->syscall_kills[i],
			       "syscall", m->syscalls[i], (const char *)NULL);
	if (m->syscall_kills[METRICS_SYSCALLS])
		metrics_sample(t, "valet_seccomp_kills_total",
			       (double)m->syscall_kills[METRICS_SYSCALLS], "syscall", "other",
			       (const char *)NULL);
	metrics_family(t, "valet_job_wall_seconds", "histogram",
		       "Wall time of an attempt, start to reaped, by task.");
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].wall.count)
			metrics_hist_write(t, "valet_job_wall_seconds", "task", m->task_names[i],
					   &m->tasks[i].wall);
	metrics_family(t, "valet_job_cpu_seconds", "histogram",
		       "CPU time (user + system) of an attempt's processes, by task.");
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].cpu.count)
			metrics_hist_write(t, "valet_job_cpu_seconds", "task", m->task_names[i],
					   &m->tasks[i].cpu);
	metrics_family(t, "valet_job_memory_peak_bytes", "histogram",
		       "Peak memory of an attempt (its cgroup's peak, else its largest RSS), "
		       "by task.");
	for (size_t i = 0; i < m->ntasks; i++)
		if (m->tasks[i].memory.count)
			metrics_hist_write(t, "valet_job_memory_peak_bytes", "task",
					   m->task_names[i], &m->tasks[i].memory);
	metrics_family(t, "valet_job_queue_wait_seconds", "histogram",
		       "From when a job was due (created, or its run_at) to its first start.");
	metrics_hist_write(t, "valet_job_queue_wait_seconds", NULL, NULL, &m->queue_wait);
	metrics_family(t, "valet_job_kill_latency_seconds", "histogram",
		       "From a job's deadline to its child reaped, for jobs killed at it.");
	metrics_hist_write(t, "valet_job_kill_latency_seconds", NULL, NULL, &m->kill_latency);
}
