/*
 * test_metrics.c - the counters and the Prometheus text format of
 * supervisor/metrics.c: histogram buckets (cumulative, le="+Inf", _sum,
 * _count), label escaping, numbers that read back exactly, the job
 * counters by task, status and failure class (an idle task: its
 * submissions only), unknown task names that never become labels, and the
 * bounded set of system call names. With
 * promtool on the PATH (Debian's prometheus package), the whole text of a
 * busy metrics object is also checked by `promtool check metrics`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../supervisor/metrics.h"

static const char *const tasks[] = {"alpha", "beta", "gamma"};

static void assert_has(const struct metrics_text *t, const char *line)
{
	if (!t->data || !strstr(t->data, line))
		fail_msg("no line \"%s\" in:\n%s", line, t->data ? t->data : "(empty)");
}

static void test_histogram(void **state)
{
	static const double bounds[] = {0.5, 1, 2.5};
	struct metrics_hist h;
	struct metrics_text t = {0};

	metrics_hist_init(&h, bounds, 3);
	metrics_hist_observe(&h, 0.5); /* le is inclusive */
	metrics_hist_observe(&h, 0.7);
	metrics_hist_observe(&h, 2.5);
	metrics_hist_observe(&h, 100);
	assert_int_equal(h.count, 4);
	metrics_family(&t, "x_seconds", "histogram", "A test.");
	metrics_hist_write(&t, "x_seconds", "task", "a\"b\\c\nd", &h);
	assert_int_equal(t.err, 0);
	assert_string_equal(t.data, "# HELP x_seconds A test.\n"
				    "# TYPE x_seconds histogram\n"
				    "x_seconds_bucket{task=\"a\\\"b\\\\c\\nd\",le=\"0.5\"} 1\n"
				    "x_seconds_bucket{task=\"a\\\"b\\\\c\\nd\",le=\"1\"} 2\n"
				    "x_seconds_bucket{task=\"a\\\"b\\\\c\\nd\",le=\"2.5\"} 3\n"
				    "x_seconds_bucket{task=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 4\n"
				    "x_seconds_sum{task=\"a\\\"b\\\\c\\nd\"} 103.7\n"
				    "x_seconds_count{task=\"a\\\"b\\\\c\\nd\"} 4\n");
	free(t.data);
}

static void test_numbers_and_growth(void **state)
{
	struct metrics_text t = {0};

	metrics_sample(&t, "n", 0.1, (const char *)NULL);
	metrics_sample(&t, "n", 9007199254740993.0, "a", "b", (const char *)NULL);
	metrics_sample(&t, "n", 1.0 / 3, (const char *)NULL);
	assert_has(&t, "n 0.1\n");
	assert_has(&t, "n{a=\"b\"} 9007199254740992\n");
	assert_has(&t, "n 0.33333333333333331\n");
	/* Far more than the first buffer: it grows, nothing is cut. */
	for (int i = 0; i < 10000; i++)
		metrics_sample(&t, "valet_padding_total", i, "i", "x", (const char *)NULL);
	assert_int_equal(t.err, 0);
	assert_int_equal(strlen(t.data), t.len);
	assert_has(&t, "valet_padding_total{i=\"x\"} 9999\n");
	free(t.data);
}

static struct job *job_of(const char *task, int pid, int wall_ms)
{
	struct job *job = job_new();

	assert_non_null(job);
	job->task_name = job_intern(task);
	job->outcome.pid = pid;
	job->outcome.wall_ms = wall_ms;
	job->outcome.cpu_ms = wall_ms / 2;
	job->outcome.memory_peak_kb = 2048;
	return job;
}

static void test_job_counters(void **state)
{
	struct metrics *m = metrics_new(tasks, 3);
	struct metrics_text t = {0};
	struct job *ok = job_of("beta", 10, 20), *bad = job_of("gamma", 11, 1500),
		   *stranger = job_of("not-registered", 12, 5);

	assert_non_null(m);
	metrics_job_submitted(m, ok);
	metrics_job_submitted(m, bad);
	metrics_job_submitted(m, stranger);
	metrics_attempt_ended(m, ok, JOB_COMPLETED);
	ok->status = JOB_COMPLETED;
	metrics_job_finished(m, ok);
	bad->outcome.failure_class = METRICS_FAIL_TIMEOUT;
	metrics_attempt_ended(m, bad, JOB_FAILED);
	metrics_job_retried(m, bad);
	bad->outcome.failure_class = METRICS_FAIL_SECCOMP;
	bad->outcome.seccomp_syscall = job_intern("socket");
	metrics_attempt_ended(m, bad, JOB_FAILED);
	bad->status = JOB_FAILED;
	metrics_job_finished(m, bad);
	stranger->outcome.failure_class = METRICS_FAIL_OOM;
	metrics_attempt_ended(m, stranger, JOB_FAILED);
	metrics_start_failed(m, ok);
	metrics_kill_latency(m, 0.0015);
	metrics_queue_wait(m, -1); /* a clock step back counts as no wait */

	metrics_write_jobs(&t, m);
	assert_int_equal(t.err, 0);
	assert_has(&t, "valet_jobs_submitted_total{task=\"alpha\"} 0\n");
	assert_has(&t, "valet_jobs_submitted_total{task=\"beta\"} 1\n");
	assert_has(&t, "valet_jobs_finished_total{task=\"beta\",status=\"COMPLETED\"} 1\n");
	assert_has(&t, "valet_jobs_finished_total{task=\"gamma\",status=\"FAILED\"} 1\n");
	assert_has(&t, "valet_job_failures_total{task=\"gamma\",class=\"timeout\"} 1\n");
	assert_has(&t, "valet_job_failures_total{task=\"gamma\",class=\"seccomp\"} 1\n");
	assert_has(&t, "valet_job_failures_total{task=\"beta\",class=\"start\"} 1\n");
	assert_has(&t, "valet_job_retries_total{task=\"gamma\"} 1\n");
	assert_has(&t, "valet_seccomp_kills_total{syscall=\"socket\"} 1\n");
	assert_has(&t, "valet_job_wall_seconds_bucket{task=\"gamma\",le=\"2.5\"} 2\n");
	assert_has(&t, "valet_job_wall_seconds_bucket{task=\"gamma\",le=\"1\"} 0\n");
	assert_has(&t, "valet_job_memory_peak_bytes_bucket{task=\"beta\",le=\"4194304\"} 1\n");
	assert_has(&t, "valet_job_kill_latency_seconds_bucket{le=\"0.002\"} 1\n");
	assert_has(&t, "valet_job_queue_wait_seconds_bucket{le=\"0.001\"} 1\n");
	/* A name the task table does not know is no label; a task with no
	 * attempt has no histogram series yet. */
	assert_null(strstr(t.data, "not-registered"));
	assert_null(strstr(t.data, "valet_job_wall_seconds_count{task=\"alpha\"}"));
	/* Nor, until it has a job, finished, failures or retries series. */
	assert_null(strstr(t.data, "valet_jobs_finished_total{task=\"alpha\""));
	assert_null(strstr(t.data, "valet_job_failures_total{task=\"alpha\""));
	assert_null(strstr(t.data, "valet_job_retries_total{task=\"alpha\""));
	assert_has(&t, "valet_job_failures_total{task=\"beta\",class=\"oom\"} 0\n");
	free(t.data);
	job_unref(ok);
	job_unref(bad);
	job_unref(stranger);
	metrics_free(m);
}

static void test_syscalls_bounded(void **state)
{
	struct metrics *m = metrics_new(tasks, 3);
	struct metrics_text t = {0};
	struct job *job = job_of("alpha", 1, 1);
	char name[32];

	job->outcome.failure_class = METRICS_FAIL_SECCOMP;
	for (int i = 0; i < METRICS_SYSCALLS + 10; i++) {
		snprintf(name, sizeof(name), "call%d", i);
		job->outcome.seccomp_syscall = job_intern(name);
		metrics_attempt_ended(m, job, JOB_FAILED);
	}
	job->outcome.seccomp_syscall = job_intern("call0");
	metrics_attempt_ended(m, job, JOB_FAILED);
	job->outcome.seccomp_syscall = NULL;
	metrics_attempt_ended(m, job, JOB_FAILED);
	metrics_write_jobs(&t, m);
	assert_has(&t, "valet_seccomp_kills_total{syscall=\"call0\"} 2\n");
	assert_has(&t, "valet_seccomp_kills_total{syscall=\"call63\"} 1\n");
	assert_null(strstr(t.data, "\"call64\""));
	assert_has(&t, "valet_seccomp_kills_total{syscall=\"other\"} 11\n");
	free(t.data);
	job_unref(job);
	metrics_free(m);
}

/* The whole job text through promtool, where Debian's prometheus is. */
static void test_promtool(void **state)
{
	struct metrics *m = metrics_new(tasks, 3);
	struct metrics_text t = {0};
	struct job *job = job_of("alpha", 1, 100);
	char path[] = "/tmp/valet-metrics-XXXXXX", cmd[256];
	FILE *f;
	int fd, rc;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		free(t.data);
		job_unref(job);
		metrics_free(m);
		skip();
	}
	job->outcome.failure_class = METRICS_FAIL_SIGNAL;
	metrics_attempt_ended(m, job, JOB_FAILED);
	metrics_write_jobs(&t, m);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(t.data, 1, t.len, f), t.len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	rc = system(cmd);
	unlink(path);
	assert_int_equal(rc, 0);
	free(t.data);
	job_unref(job);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests_[] = {
	    cmocka_unit_test(test_histogram),	 cmocka_unit_test(test_numbers_and_growth),
	    cmocka_unit_test(test_job_counters), cmocka_unit_test(test_syscalls_bounded),
	    cmocka_unit_test(test_promtool),
	};

	return cmocka_run_group_tests(tests_, NULL, NULL);
}
