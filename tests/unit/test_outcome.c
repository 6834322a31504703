/*
 * test_outcome.c - the classification policy of supervisor/outcome.c.
 *
 * Theory of operation: outcome_classify() is a pure function, so the tests
 * are tables of facts and the status and failure_reason they must give.
 * The order table piles every later fact onto each case ("everything bad
 * happened, but the first check wins"), so a check moved up or down in
 * outcome.c changes at least one row. The formatting helpers behind the
 * sentences (durations, sizes, signal names) get their own tables.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/outcome.h"

#define MiB (1024 * 1024)

/* Facts where every check after `killed` would fire: an OOM kill, a SIGSYS
 * with a name, a setup failure, a stderr tail, a malformed result and a task
 * error. Each row of the order table switches off what comes before it. */
static struct outcome_facts all_bad(void)
{
	struct outcome_facts f = {
	    .killed = RUN_KILL_NONE,
	    .timeout_ms = 2000,
	    .shutdown_grace_ms = 10000,
	    .max_output_bytes = MiB,
	    .max_result_bytes = MiB,
	    .spawn_err = 0,
	    .exited = false,
	    .exit_code = 0,
	    .term_signal = SIGSYS,
	    .filter_kills = true,
	    .oom_killed = true,
	    .syscall_name = "socket",
	    .setup_step = "setuid",
	    .setup_errno = 1 /* EPERM */,
	    .stderr_tail = "oops",
	    .has_result = false,
	    .malformed = "not JSON",
	    .task_error = "the task said no",
	};
	return f;
}

/* A clean run that completed with a result. */
static struct outcome_facts all_good(void)
{
	struct outcome_facts f = {
	    .timeout_ms = 2000,
	    .shutdown_grace_ms = 10000,
	    .max_output_bytes = MiB,
	    .max_result_bytes = MiB,
	    .exited = true,
	    .exit_code = 0,
	    .has_result = true,
	};
	return f;
}

static void expect(const struct outcome_facts *f, enum job_status status, const char *reason,
		   bool by_task)
{
	char buf[256];
	bool bt = !by_task; /* the opposite, so that "not written" fails */
	enum job_status got;

	memset(buf, 'x', sizeof(buf));
	got = outcome_classify(f, buf, sizeof(buf), &bt);
	assert_string_equal(buf, reason);
	assert_int_equal(got, status);
	assert_int_equal(bt, by_task);
	/* by_task may be NULL. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(outcome_classify(f, buf, sizeof(buf), NULL), status);
	assert_string_equal(buf, reason);
}

/* ---- killed by us ------------------------------------------------------------------------ */

static void test_killed_beats_everything(void **state)
{
	static const struct {
		enum run_kill killed;
		enum job_status status;
		const char *reason;
	} rows[] = {
	    {RUN_KILL_TIMEOUT, JOB_FAILED, "timed out after 2s (killed)"},
	    {RUN_KILL_CANCEL, JOB_CANCELLED, "cancelled by request"},
	    {RUN_KILL_SHUTDOWN, JOB_FAILED, "killed at shutdown after the 10s grace period"},
	    {RUN_KILL_OUTPUT, JOB_FAILED,
	     "output limit exceeded (more than 1 MiB on stdout/stderr)"},
	    {RUN_KILL_RESULT_SIZE, JOB_FAILED, "result too large (more than 1 MiB)"},
	    {RUN_KILL_PROTOCOL, JOB_FAILED, "malformed result: not JSON"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct outcome_facts f = all_bad();

		f.killed = rows[i].killed;
		/* Even a fork failure and a process that seemed to end well. */
		f.spawn_err = 12;
		expect(&f, rows[i].status, rows[i].reason, false);
		f.spawn_err = 0;
		f.exited = true;
		f.term_signal = 0;
		f.has_result = true;
		expect(&f, rows[i].status, rows[i].reason, false);
	}
}

/* outcome_decide(): the failure class the metrics count (metrics.h), one
 * per way to fail, decided in the same order as the status. */
static enum metrics_failure class_of(const struct outcome_facts *f)
{
	enum metrics_failure cls = METRICS_FAIL_COUNT;
	char buf[256];

	outcome_decide(f, buf, sizeof(buf), &cls);
	return cls;
}

static void test_failure_classes(void **state)
{
	static const struct {
		enum run_kill killed;
		enum metrics_failure cls;
	} kills[] = {
	    {RUN_KILL_TIMEOUT, METRICS_FAIL_TIMEOUT},	 {RUN_KILL_CANCEL, METRICS_FAIL_NONE},
	    {RUN_KILL_SHUTDOWN, METRICS_FAIL_SHUTDOWN},	 {RUN_KILL_OUTPUT, METRICS_FAIL_OUTPUT_LIMIT},
	    {RUN_KILL_RESULT_SIZE, METRICS_FAIL_RESULT}, {RUN_KILL_PROTOCOL, METRICS_FAIL_RESULT},
	    {RUN_KILL_LEASE, METRICS_FAIL_LOST_NODE},
	};
	struct outcome_facts f = all_bad();

	for (size_t i = 0; i < sizeof(kills) / sizeof(kills[0]); i++) {
		f.killed = kills[i].killed;
		assert_int_equal(class_of(&f), kills[i].cls);
	}
	f.killed = RUN_KILL_NONE;
	f.spawn_err = 12;
	assert_int_equal(class_of(&f), METRICS_FAIL_START);
	f.spawn_err = 0;
	assert_int_equal(class_of(&f), METRICS_FAIL_OOM);
	f.oom_killed = false;
	assert_int_equal(class_of(&f), METRICS_FAIL_SECCOMP);
	f.term_signal = SIGXCPU;
	f.cpu_limit_s = 1;
	f.cpu_ms = 1000;
	assert_int_equal(class_of(&f), METRICS_FAIL_CPU_LIMIT);
	f.cpu_ms = 0;
	assert_int_equal(class_of(&f), METRICS_FAIL_SIGNAL);
	f.term_signal = SIGSEGV;
	assert_int_equal(class_of(&f), METRICS_FAIL_SIGNAL);
	f.exited = true;
	f.term_signal = 0;
	assert_int_equal(class_of(&f), METRICS_FAIL_SETUP);
	f.setup_step = NULL;
	f.exit_code = 3;
	assert_int_equal(class_of(&f), METRICS_FAIL_EXIT);
	f.exit_code = 0;
	assert_int_equal(class_of(&f), METRICS_FAIL_RESULT); /* malformed */
	f.malformed = NULL;
	assert_int_equal(class_of(&f), METRICS_FAIL_RESULT); /* none */
	f.has_result = true;
	assert_int_equal(class_of(&f), METRICS_FAIL_TASK);
	f = all_good();
	assert_int_equal(class_of(&f), METRICS_FAIL_NONE);
}

static void test_killed_formats(void **state)
{
	struct outcome_facts f = all_good();

	f.killed = RUN_KILL_TIMEOUT;
	f.timeout_ms = 500;
	expect(&f, JOB_FAILED, "timed out after 500ms (killed)", false);
	f.timeout_ms = 1500;
	expect(&f, JOB_FAILED, "timed out after 1.5s (killed)", false);

	f.killed = RUN_KILL_SHUTDOWN;
	f.shutdown_grace_ms = 2500;
	expect(&f, JOB_FAILED, "killed at shutdown after the 2.5s grace period", false);

	f.killed = RUN_KILL_OUTPUT;
	f.max_output_bytes = 512 * 1024;
	expect(&f, JOB_FAILED, "output limit exceeded (more than 512 KiB on stdout/stderr)", false);

	f.killed = RUN_KILL_RESULT_SIZE;
	f.max_result_bytes = 100;
	expect(&f, JOB_FAILED, "result too large (more than 100 bytes)", false);

	/* A protocol kill without a reason still says what went wrong. */
	f.killed = RUN_KILL_PROTOCOL;
	f.malformed = NULL;
	expect(&f, JOB_FAILED, "malformed result: bad frame from the task", false);
}

/* ---- the order of the remaining checks ---------------------------------------------------- */

static void test_order(void **state)
{
	struct outcome_facts f = all_bad();

	f.spawn_err = 11; /* EAGAIN */
	expect(&f, JOB_FAILED, "could not start the job: fork: Resource temporarily unavailable",
	       false);
	f.spawn_err = 0;

	/* OOM beats the signal the kernel killed it with; the sentence names
	 * the limit when there is one. */
	expect(&f, JOB_FAILED, "out of memory", false);
	f.memory_limit_bytes = 64 * MiB;
	expect(&f, JOB_FAILED, "out of memory (limit 64 MiB)", false);
	f.oom_killed = false;

	/* SIGSYS beats the setup failure and everything after. */
	expect(&f, JOB_FAILED, "blocked by sandbox: system call socket", false);

	/* The kernel's SIGXCPU at RLIMIT_CPU: the signal and a CPU time of at
	 * least three quarters of the limit (rusage reads low on a busy
	 * machine). */
	f.term_signal = SIGXCPU;
	f.cpu_limit_s = 2;
	f.cpu_ms = 1700;
	expect(&f, JOB_FAILED, "CPU time limit exceeded (limit 2s)", false);
	f.cpu_ms = 1500;
	expect(&f, JOB_FAILED, "CPU time limit exceeded (limit 2s)", false);
	/* The task's own SIGXCPU, well before its limit: a crash by it
	 * (attack-sandbox.md 3b: 16 ms of a 5 s limit). */
	f.cpu_ms = 1499;
	expect(&f, JOB_FAILED, "crashed: SIGXCPU (CPU time limit exceeded)", false);
	f.cpu_limit_s = 5;
	f.cpu_ms = 16;
	expect(&f, JOB_FAILED, "crashed: SIGXCPU (CPU time limit exceeded)", false);
	f.cpu_limit_s = 2;
	/* Its SIGKILL a second later (the task handled SIGXCPU): told by the
	 * CPU time used, likewise. */
	f.term_signal = SIGKILL;
	f.cpu_ms = 2990;
	expect(&f, JOB_FAILED, "CPU time limit exceeded (limit 2s)", false);
	f.cpu_ms = 1499; /* well below: somebody else's SIGKILL */
	expect(&f, JOB_FAILED, "crashed: SIGKILL (killed)", false);
	f.cpu_limit_s = 0;
	f.cpu_ms = 5000;
	expect(&f, JOB_FAILED, "crashed: SIGKILL (killed)", false);

	/* Any other signal, likewise. */
	f.term_signal = SIGSEGV;
	expect(&f, JOB_FAILED, "crashed: SIGSEGV (segmentation fault)", false);

	/* The process exited: the setup step beats its exit status. */
	f.exited = true;
	f.term_signal = 0;
	f.exit_code = 126;
	expect(&f, JOB_FAILED, "sandbox setup failed: setuid: Operation not permitted", false);
	f.setup_step = NULL;

	/* Non-zero exit, with the stderr tail, beats a malformed result. */
	expect(&f, JOB_FAILED, "exited with status 126: oops", false);
	f.exit_code = 0;

	/* Malformed beats "no result". */
	expect(&f, JOB_FAILED, "malformed result: not JSON", false);
	f.malformed = NULL;

	/* No result beats a task error (which needs a result to be seen). */
	expect(&f, JOB_FAILED, "exited without a result", false);
	f.has_result = true;

	/* The task's own error, verbatim, and by_task. */
	expect(&f, JOB_FAILED, "the task said no", true);
	f.task_error = NULL;

	expect(&f, JOB_COMPLETED, "", false);
}

static void test_sigsys(void **state)
{
	struct outcome_facts f = all_good();

	f.exited = false;
	f.term_signal = SIGSYS;
	f.filter_kills = true;
	f.syscall_name = "openat";
	expect(&f, JOB_FAILED, "blocked by sandbox: system call openat", false);
	f.syscall_name = NULL;
	expect(&f, JOB_FAILED, "blocked by sandbox: forbidden system call", false);
	f.syscall_name = "";
	expect(&f, JOB_FAILED, "blocked by sandbox: forbidden system call", false);

	/* A syscall name without a SIGSYS death is not a seccomp kill. */
	f.term_signal = SIGSEGV;
	f.syscall_name = "socket";
	expect(&f, JOB_FAILED, "crashed: SIGSEGV (segmentation fault)", false);
}

/*
 * Under a profile that never kills with SIGSYS (exec: a foreign ABI gets
 * ENOSYS like any unlisted call), a SIGSYS death is the task's own signal:
 * a crash, not the sandbox, whatever a frame said (attack-sandbox.md 3a).
 */
static void test_sigsys_not_the_filters(void **state)
{
	struct outcome_facts f = all_good();
	enum metrics_failure cls;
	char reason[256];

	f.exited = false;
	f.term_signal = SIGSYS;
	f.filter_kills = false;
	expect(&f, JOB_FAILED, "crashed: SIGSYS (bad system call)", false);
	f.syscall_name = "socket";
	expect(&f, JOB_FAILED, "crashed: SIGSYS (bad system call)", false);
	outcome_decide(&f, reason, sizeof(reason), &cls);
	assert_int_equal(cls, METRICS_FAIL_SIGNAL);
}

static void test_signals(void **state)
{
	static const struct {
		int sig;
		const char *reason;
	} rows[] = {
	    {SIGSEGV, "crashed: SIGSEGV (segmentation fault)"},
	    {SIGABRT, "crashed: SIGABRT (aborted)"},
	    {SIGFPE, "crashed: SIGFPE (floating point exception)"},
	    {SIGBUS, "crashed: SIGBUS (bus error)"},
	    {SIGILL, "crashed: SIGILL (illegal instruction)"},
	    {SIGKILL, "crashed: SIGKILL (killed)"},
	    {SIGXCPU, "crashed: SIGXCPU (CPU time limit exceeded)"},
	    {SIGXFSZ, "crashed: SIGXFSZ (file size limit exceeded)"},
	    {SIGTERM, "crashed: SIGTERM"},
	    {SIGPIPE, "crashed: SIGPIPE"},
	    {SIGUSR1, "crashed: SIGUSR1"},
	    {40, NULL}, /* a real-time signal: no name */
	};
	char want[64];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct outcome_facts f = all_good();

		f.exited = false;
		f.term_signal = rows[i].sig;
		/* A result that arrived before the crash does not save the job. */
		f.has_result = true;
		if (rows[i].reason)
			snprintf(want, sizeof(want), "%s", rows[i].reason);
		else
			snprintf(want, sizeof(want), "crashed: SIG%d", rows[i].sig);
		expect(&f, JOB_FAILED, want, false);
	}
}

static void test_setup_failure(void **state)
{
	struct outcome_facts f = all_good();

	f.exit_code = 126;
	f.has_result = false;
	f.setup_step = "seccomp";
	f.setup_errno = 22; /* EINVAL */
	expect(&f, JOB_FAILED, "sandbox setup failed: seccomp: Invalid argument", false);
}

static void test_exit_code(void **state)
{
	struct outcome_facts f = all_good();

	f.exit_code = 3;
	expect(&f, JOB_FAILED, "exited with status 3", false);
	f.stderr_tail = "";
	expect(&f, JOB_FAILED, "exited with status 3", false);
	f.stderr_tail = "No such file or directory";
	expect(&f, JOB_FAILED, "exited with status 3: No such file or directory", false);
	f.exit_code = 255;
	f.stderr_tail = NULL;
	expect(&f, JOB_FAILED, "exited with status 255", false);
}

static void test_results(void **state)
{
	struct outcome_facts f = all_good();

	f.malformed = "bad UTF-8";
	expect(&f, JOB_FAILED, "malformed result: bad UTF-8", false);
	f.malformed = NULL;

	f.has_result = false;
	expect(&f, JOB_FAILED, "exited without a result", false);
	f.has_result = true;

	f.task_error = "invalid task_params: wrong type";
	expect(&f, JOB_FAILED, "invalid task_params: wrong type", true);
	/* Verbatim: a task error with printf directives is not formatted again. */
	f.task_error = "100% done %s";
	expect(&f, JOB_FAILED, "100% done %s", true);
	f.task_error = NULL;

	expect(&f, JOB_COMPLETED, "", false);
}

static void test_small_buffer(void **state)
{
	struct outcome_facts f = all_good();
	char buf[8];
	bool by_task = true;

	f.task_error = "a long message from the task";
	assert_int_equal(outcome_classify(&f, buf, sizeof(buf), &by_task), JOB_FAILED);
	assert_string_equal(buf, "a long ");
	assert_true(by_task);

	f.task_error = NULL;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(outcome_classify(&f, buf, sizeof(buf), &by_task), JOB_COMPLETED);
	assert_string_equal(buf, "");
	assert_false(by_task);
}

/* ---- formatting ---------------------------------------------------------------------------- */

static void test_format_duration(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} rows[] = {
	    {2000, "2s"},    {1500, "1.5s"},   {500, "500ms"}, {1, "1ms"},     {999, "999ms"},
	    {1250, "1.25s"}, {1001, "1.001s"}, {10000, "10s"}, {60000, "60s"}, {0, "0s"},
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		outcome_format_duration(rows[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].text);
	}
	outcome_format_duration(1500, buf, 3);
	assert_string_equal(buf, "1.");
}

static void test_format_size(void **state)
{
	static const struct {
		size_t bytes;
		const char *text;
	} rows[] = {
	    {MiB, "1 MiB"},
	    {512 * 1024, "512 KiB"},
	    {100, "100 bytes"},
	    {0, "0 bytes"},
	    {1023, "1023 bytes"},
	    {1024, "1 KiB"},
	    {1025, "1025 bytes"},
	    {1536 * 1024, "1536 KiB"},
	    {16 * MiB, "16 MiB"},
	    {(size_t)1 << 30, "1 GiB"},
	    {((size_t)1 << 30) + MiB, "1025 MiB"},
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		outcome_format_size(rows[i].bytes, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].text);
	}
}

static void test_signal_name(void **state)
{
	static const struct {
		int sig;
		const char *name, *what;
	} rows[] = {
	    {SIGSEGV, "SIGSEGV", "segmentation fault"},
	    {SIGABRT, "SIGABRT", "aborted"},
	    {SIGFPE, "SIGFPE", "floating point exception"},
	    {SIGBUS, "SIGBUS", "bus error"},
	    {SIGILL, "SIGILL", "illegal instruction"},
	    {SIGKILL, "SIGKILL", "killed"},
	    {SIGSYS, "SIGSYS", "bad system call"},
	    {SIGTERM, "SIGTERM", NULL},
	    {SIGHUP, "SIGHUP", NULL},
	    {SIGALRM, "SIGALRM", NULL},
	    {SIGTRAP, "SIGTRAP", NULL},
	};
	char buf[16];
	const char *what;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		what = outcome_signal_name(rows[i].sig, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].name);
		if (rows[i].what)
			assert_string_equal(what, rows[i].what);
		else
			assert_null(what);
	}
	assert_null(outcome_signal_name(42, buf, sizeof(buf)));
	assert_string_equal(buf, "SIG42");
	assert_null(outcome_signal_name(0, buf, sizeof(buf)));
	assert_string_equal(buf, "SIG0");
	/* Truncated, still terminated. */
	assert_string_equal(outcome_signal_name(SIGSEGV, buf, 5), "segmentation fault");
	assert_string_equal(buf, "SIGS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_killed_beats_everything),
	    cmocka_unit_test(test_killed_formats),
	    cmocka_unit_test(test_failure_classes),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_sigsys),
	    cmocka_unit_test(test_sigsys_not_the_filters),
	    cmocka_unit_test(test_signals),
	    cmocka_unit_test(test_setup_failure),
	    cmocka_unit_test(test_exit_code),
	    cmocka_unit_test(test_results),
	    cmocka_unit_test(test_small_buffer),
	    cmocka_unit_test(test_format_duration),
	    cmocka_unit_test(test_format_size),
	    cmocka_unit_test(test_signal_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
