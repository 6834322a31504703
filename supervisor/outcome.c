/*
 * outcome.c - turns what the supervisor saw of a job child into a status and
 * a failure_reason a person understands. Pure functions, no I/O: the order
 * of the checks below *is* the classification policy of SANDBOX.md.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "outcome.h"

void outcome_format_duration(int64_t ms, char *out, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(out, len, "%llds", (long long)(ms / 1000));
	else if (ms < 1000)
		snprintf(out, len, "%lldms", (long long)ms);
	else {
		char buf[32];
		size_t n = (size_t)snprintf(buf, sizeof(buf), "%lld.%03lld", (long long)(ms / 1000),
					    (long long)(ms % 1000));
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		snprintf(out, len, "%ss", buf);
	}
}

void outcome_format_size(size_t bytes, char *out, size_t len)
{
	if (bytes >= (1u << 30) && bytes % (1u << 30) == 0)
		snprintf(out, len, "%zu GiB", bytes >> 30);
	else if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
		snprintf(out, len, "%zu MiB", bytes >> 20);
	else if (bytes >= 1024 && bytes % 1024 == 0)
		snprintf(out, len, "%zu KiB", bytes >> 10);
	else
		snprintf(out, len, "%zu bytes", bytes);
}

static const struct {
	int sig;
	const char *name, *what;
} signals[] = {
	{SIGSEGV, "SIGSEGV", "segmentation fault"}, {SIGABRT, "SIGABRT", "aborted"},
	{SIGFPE, "SIGFPE", "floating point exception"}, {SIGBUS, "SIGBUS", "bus error"},
	{SIGILL, "SIGILL", "illegal instruction"}, {SIGKILL, "SIGKILL", "killed"},
	{SIGTERM, "SIGTERM", NULL}, {SIGINT, "SIGINT", NULL}, {SIGHUP, "SIGHUP", NULL},
	{SIGQUIT, "SIGQUIT", NULL}, {SIGPIPE, "SIGPIPE", NULL}, {SIGALRM, "SIGALRM", NULL},
	{SIGUSR1, "SIGUSR1", NULL}, {SIGUSR2, "SIGUSR2", NULL}, {SIGTRAP, "SIGTRAP", NULL},
	{SIGSYS, "SIGSYS", "bad system call"}, {SIGXCPU, "SIGXCPU", "CPU time limit exceeded"},
	{SIGXFSZ, "SIGXFSZ", "file size limit exceeded"}, {SIGSTOP, "SIGSTOP", NULL},
};

const char *outcome_signal_name(int sig, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signals[i].sig == sig) {
			snprintf(buf, len, "%s", signals[i].name);
			return signals[i].what;
		}
	snprintf(buf, len, "SIG%d", sig);
	return NULL;
}

/* We killed it: our reason, whatever the child's status says. */
static enum job_status classify_kill(const struct outcome_facts *f, char *reason, size_t len,
				     enum metrics_failure *cls)
{
	char a[32];

	switch (f->killed) {
	case RUN_KILL_TIMEOUT:
		outcome_format_duration(f->timeout_ms, a, sizeof(a));
		snprintf(reason, len, "timed out after %s (killed)", a);
		*cls = METRICS_FAIL_TIMEOUT;
		return JOB_FAILED;
	case RUN_KILL_CANCEL:
		snprintf(reason, len, "cancelled by request");
		return JOB_CANCELLED;
	case RUN_KILL_SHUTDOWN:
		outcome_format_duration(f->shutdown_grace_ms, a, sizeof(a));
		snprintf(reason, len, "killed at shutdown after the %s grace period", a);
		*cls = METRICS_FAIL_SHUTDOWN;
		return JOB_FAILED;
	case RUN_KILL_SHUTDOWN_NOW:
		snprintf(reason, len, "killed at shutdown: valetd was told to stop at once");
		*cls = METRICS_FAIL_SHUTDOWN;
		return JOB_FAILED;
	case RUN_KILL_OUTPUT:
		outcome_format_size(f->max_output_bytes, a, sizeof(a));
		snprintf(reason, len, "output limit exceeded (more than %s on stdout/stderr)", a);
		*cls = METRICS_FAIL_OUTPUT_LIMIT;
		return JOB_FAILED;
	case RUN_KILL_RESULT_SIZE:
		outcome_format_size(f->max_result_bytes, a, sizeof(a));
		snprintf(reason, len, "result too large (more than %s)", a);
		*cls = METRICS_FAIL_RESULT;
		return JOB_FAILED;
	case RUN_KILL_PROTOCOL:
		snprintf(reason, len, "malformed result: %s",
			 f->malformed ? f->malformed : "bad frame from the task");
		*cls = METRICS_FAIL_RESULT;
		return JOB_FAILED;
	case RUN_KILL_LEASE:
		snprintf(reason, len, "killed: this node could not renew its database lease in time "
				      "(another node may take its work over)");
		*cls = METRICS_FAIL_LOST_NODE;
		return JOB_FAILED;
	case RUN_KILL_SPAWNER:
		snprintf(reason, len, "killed: the spawner process died (no job can run until "
				      "valetd is restarted)");
		*cls = METRICS_FAIL_START;
		return JOB_FAILED;
	case RUN_KILL_NONE:
		break;
	}
	return JOB_UNDEFINED;
}

/*
 * RLIMIT_CPU: the kernel sends SIGXCPU once the task's CPU time reaches the
 * limit (soft = the limit), and SIGKILL at the hard limit a second later
 * when the task handled that. A task can send itself either signal, so the
 * signal alone proves nothing (attack-sandbox.md 3b): the CPU time the
 * spawner got from the kernel when it reaped the task (wait4's rusage) must
 * show the limit reached. Not exactly: the kernel checks the limit, on a
 * tick, against its tick-sampled CPU time (a tick is charged whole to the
 * task that runs when it comes), while rusage reports the scheduler's
 * runtime, which reads lower when the task shares its CPU: 0.84 s at the
 * SIGXCPU of a 1 s limit, with three spinning tasks per CPU on the 2-CPU
 * development VM (rusage never read higher than the limit plus a tick).
 * So three quarters of the limit count as reached, a margin over what was
 * measured; a task that forges the signal must first burn that much of its
 * budget. Below it the signal is the task's own: a crash by that signal.
 */
static bool cpu_limit_reached(const struct outcome_facts *f)
{
	int64_t limit_ms = (int64_t)f->cpu_limit_s * 1000;

	if (!f->cpu_limit_s || (f->term_signal != SIGXCPU && f->term_signal != SIGKILL))
		return false;
	return f->cpu_ms * 4 >= limit_ms * 3;
}

/* It never ran, or the kernel ended it: fork, OOM, seccomp, CPU, a signal. */
static enum job_status classify_death(const struct outcome_facts *f, char *reason, size_t len,
				      enum metrics_failure *cls)
{
	char a[32];
	const char *what;

	if (f->spawn_err) {
		snprintf(reason, len, "could not start the job: fork: %s", strerror(f->spawn_err));
		*cls = METRICS_FAIL_START;
		return JOB_FAILED;
	}
	if (f->oom_killed) {
		outcome_format_size(f->memory_limit_bytes, a, sizeof(a));
		if (f->memory_limit_bytes)
			snprintf(reason, len, "out of memory (limit %s)", a);
		else
			snprintf(reason, len, "out of memory");
		*cls = METRICS_FAIL_OOM;
		return JOB_FAILED;
	}
	if (f->exited)
		return JOB_UNDEFINED;
	/* SIGSYS is the filter's only where the filter kills with it: an exec
	 * task's is its own (kill, raise), a crash like any other signal. */
	if (f->term_signal == SIGSYS && f->filter_kills) {
		if (f->syscall_name && f->syscall_name[0])
			snprintf(reason, len, "blocked by sandbox: system call %s", f->syscall_name);
		else
			snprintf(reason, len, "blocked by sandbox: forbidden system call");
		*cls = METRICS_FAIL_SECCOMP;
		return JOB_FAILED;
	}
	if (cpu_limit_reached(f)) {
		outcome_format_duration((int64_t)f->cpu_limit_s * 1000, a, sizeof(a));
		snprintf(reason, len, "CPU time limit exceeded (limit %s)", a);
		*cls = METRICS_FAIL_CPU_LIMIT;
		return JOB_FAILED;
	}
	what = outcome_signal_name(f->term_signal, a, sizeof(a));
	if (what)
		snprintf(reason, len, "crashed: %s (%s)", a, what);
	else
		snprintf(reason, len, "crashed: %s", a);
	*cls = METRICS_FAIL_SIGNAL;
	return JOB_FAILED;
}

/* It exited: the sandbox's setup, its status, then its result. */
static enum job_status classify_exit(const struct outcome_facts *f, char *reason, size_t len,
				     enum metrics_failure *cls)
{
	if (f->setup_step) {
		snprintf(reason, len, "sandbox setup failed: %s: %s", f->setup_step,
			 strerror(f->setup_errno));
		*cls = METRICS_FAIL_SETUP;
		return JOB_FAILED;
	}
	if (f->exit_code != 0) {
		if (f->stderr_tail && f->stderr_tail[0])
			snprintf(reason, len, "exited with status %d: %s", f->exit_code,
				 f->stderr_tail);
		else
			snprintf(reason, len, "exited with status %d", f->exit_code);
		*cls = METRICS_FAIL_EXIT;
		return JOB_FAILED;
	}
	if (f->malformed) {
		snprintf(reason, len, "malformed result: %s", f->malformed);
		*cls = METRICS_FAIL_RESULT;
		return JOB_FAILED;
	}
	if (!f->has_result) {
		snprintf(reason, len, "exited without a result");
		*cls = METRICS_FAIL_RESULT;
		return JOB_FAILED;
	}
	if (f->task_error) {
		/* Its control characters are spaces already (run_io.c). */
		snprintf(reason, len, "%s", f->task_error);
		*cls = METRICS_FAIL_TASK;
		return JOB_FAILED;
	}
	return JOB_COMPLETED;
}

enum job_status outcome_decide(const struct outcome_facts *f, char *reason, size_t len,
			       enum metrics_failure *cls)
{
	enum job_status st;

	reason[0] = '\0';
	*cls = METRICS_FAIL_NONE;
	st = classify_kill(f, reason, len, cls);
	if (st == JOB_UNDEFINED)
		st = classify_death(f, reason, len, cls);
	if (st == JOB_UNDEFINED)
		st = classify_exit(f, reason, len, cls);
	return st;
}

enum job_status outcome_classify(const struct outcome_facts *f, char *reason, size_t len,
				 bool *by_task)
{
	enum metrics_failure cls;
	enum job_status st = outcome_decide(f, reason, len, &cls);

	if (by_task)
		*by_task = cls == METRICS_FAIL_TASK;
	return st;
}
