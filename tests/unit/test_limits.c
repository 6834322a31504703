/*
 * test_limits.c - supervisor/limits.c: a job's defaults (task, then
 * global), the maxima and their 400 messages, resolution, the widest
 * limits of a pipeline run, and the rlimits of a child.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/limits.h"

static struct tasks *tasks;

/* The task table of the spawner: "t" and "other", configured by cfg. */
static const struct task_def *task(const struct config *cfg, const char *name)
{
	static const char table[] = "[{\"name\": \"t\", \"exec\": false, \"profile\": 0},"
				    " {\"name\": \"other\", \"exec\": false, \"profile\": 0}]";
	char err[256];

	tasks_free(tasks);
	tasks = tasks_new();
	assert_non_null(tasks);
	assert_int_equal(tasks_load(tasks, table, strlen(table), err, sizeof(err)), 0);
	assert_int_equal(tasks_configure(tasks, cfg, err, sizeof(err)), 0);
	assert_non_null(tasks_find(tasks, name));
	return tasks_find(tasks, name);
}

/* A config with one task section "t" (memory 64M, output 4k; others unset). */
static struct config *make_cfg(void)
{
	struct config *cfg = config_new();

	assert_non_null(cfg);
	cfg->exec_tasks = calloc(1, sizeof(*cfg->exec_tasks));
	assert_non_null(cfg->exec_tasks);
	cfg->exec_tasks[0].name = strdup("t");
	cfg->exec_tasks[0].memory_limit_bytes = 64 << 20;
	cfg->exec_tasks[0].cpu_limit_ms = -1;
	cfg->exec_tasks[0].max_processes = -1;
	cfg->exec_tasks[0].max_output_bytes = 4096;
	cfg->nexec_tasks = 1;
	return cfg;
}

static void test_defaults(void **state)
{
	struct config *cfg = make_cfg();
	struct job_limits l;

	(void)state;
	l = limits_defaults(cfg, task(cfg, "other"));
	assert_int_equal(l.memory_bytes, 256 << 20);
	assert_int_equal(l.cpu_seconds, 0);
	assert_int_equal(l.processes, 64);
	assert_int_equal(l.output_bytes, 1 << 20);
	assert_false(l.set);
	l = limits_defaults(cfg, task(cfg, "t"));
	assert_int_equal(l.memory_bytes, 64 << 20);
	assert_int_equal(l.processes, 64);
	assert_int_equal(l.output_bytes, 4096);
	/* CPU time rounds up to whole seconds. */
	cfg->cpu_limit_ms = 1500;
	assert_int_equal(limits_defaults(cfg, NULL).cpu_seconds, 2);
	config_free(cfg);
}

static void check_msg(const struct config *cfg, struct job_limits asked, const char *want)
{
	char msg[256] = "";

	if (!want) {
		assert_int_equal(limits_check(cfg, &asked, msg, sizeof(msg)), 0);
		return;
	}
	assert_int_equal(limits_check(cfg, &asked, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, want);
}

static void test_check(void **state)
{
	struct config *cfg = make_cfg();

	(void)state;
	check_msg(cfg, (struct job_limits){0}, NULL);
	check_msg(cfg, (struct job_limits){.memory_bytes = 256 << 20, .processes = 64,
					   .output_bytes = 1 << 20, .cpu_seconds = 999999},
		  NULL); /* max_cpu_limit 0: no maximum */
	check_msg(cfg, (struct job_limits){.memory_bytes = (256 << 20) + 1},
		  "limits.memory must be at most 268435456 bytes (256 MiB)");
	check_msg(cfg, (struct job_limits){.processes = 65}, "limits.processes must be at most 64");
	check_msg(cfg, (struct job_limits){.output_bytes = (1 << 20) + 1},
		  "limits.output must be at most 1048576 bytes (1 MiB)");
	cfg->max_cpu_limit_ms = 1500;
	check_msg(cfg, (struct job_limits){.cpu_seconds = 2}, NULL);
	check_msg(cfg, (struct job_limits){.cpu_seconds = 3}, "limits.cpu must be at most 2 seconds");
	cfg->max_memory_limit = 1000;
	check_msg(cfg, (struct job_limits){.memory_bytes = 1001},
		  "limits.memory must be at most 1000 bytes");
	cfg->max_memory_limit = 0; /* no maximum */
	check_msg(cfg, (struct job_limits){.memory_bytes = 1ULL << 40}, NULL);
	config_free(cfg);
}

static void test_resolve_and_widen(void **state)
{
	struct config *cfg = make_cfg();
	struct job_limits asked = {.cpu_seconds = 5}, l, other;
	struct job *job = job_new();
	struct sbx_limits rl;

	(void)state;
	l = limits_resolve(cfg, task(cfg, "t"), &asked);
	assert_true(l.set);
	assert_int_equal(l.memory_bytes, 64 << 20); /* the task's */
	assert_int_equal(l.cpu_seconds, 5);         /* the job's */
	assert_int_equal(l.processes, 64);          /* the global one */
	assert_int_equal(l.output_bytes, 4096);

	/* A job without limits gets the defaults when it runs. */
	job->task_name = job_intern("t");
	assert_int_equal(limits_of_job(cfg, task(cfg, "t"), job).memory_bytes, 64 << 20);
	job->limits = l;
	assert_int_equal(limits_of_job(cfg, task(cfg, "t"), job).cpu_seconds, 5);
	job_unref(job);

	/* Widest of two: none (0) beats any number. */
	other = (struct job_limits){.memory_bytes = 128 << 20, .cpu_seconds = 0, .processes = 8,
				    .output_bytes = 8192};
	limits_widen(&l, &other);
	assert_int_equal(l.memory_bytes, 128 << 20);
	assert_int_equal(l.cpu_seconds, 0);
	assert_int_equal(l.processes, 64);
	assert_int_equal(l.output_bytes, 8192);

	rl = limits_sbx(cfg, &l);
	assert_int_equal(rl.memory_bytes, 128 << 20);
	assert_int_equal(rl.cpu_seconds, 0);
	assert_int_equal(rl.max_processes, 64);
	assert_int_equal(rl.max_files, 64);
	assert_int_equal(rl.max_file_size, 16 << 20);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_resolve_and_widen),
	};

	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tasks_free(tasks);
	return rc;
}
