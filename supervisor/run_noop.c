/*
 * run_noop.c - `valetd --bench-noop`: runs with no child, for benchmarks only.
 *
 * Theory of operation. Under --bench-noop (a command-line flag, never a key
 * of the configuration file: main.c sets cfg->bench_noop and says so in the
 * log at startup) runner_start() hands its jobs here instead of to the
 * spawner, and run.c forks no warm children. Such a run takes a worker slot
 * like any other and goes through the same hooks: job_started at once
 * (IN_PROGRESS, started_at), then, on the loop's next iteration (the run's
 * deadline timer set to zero), job_done for each of its jobs - COMPLETED
 * with the fixed result RUN_NOOP_RESULT, as outcome.c classifies a child
 * that exited 0 with that result - and run_done. The core, the queue and
 * the store therefore do for each job what they do for a real one (status
 * changes, timestamps, the result stored, metrics, the next dispatch); only
 * the fork, the sandbox and the child's pipes are left out, which is what
 * `make bench` measures this mode for: the cost of HTTP + core + queue +
 * storage per job apart from the process.
 *
 * A kill (cancel, shutdown, lease) before the timer fires is recorded by
 * run_kill() and classified as for a real child. No child ever exists:
 * outcome.pid stays 0 (the API shows no "outcome") and no isolation is
 * recorded, since none was applied. Job deadlines are not armed: the run
 * ends within one loop iteration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "run_internal.h"

#define RUN_NOOP_RESULT "{\"bench_noop\":true}"

/* jobs[cur] "exited 0 with RUN_NOOP_RESULT" now; what outcome.c makes of it. */
static enum job_status noop_end(struct run *run, struct job *job, char *reason, size_t len,
				enum metrics_failure *cls)
{
	struct outcome_facts f = {
	    .killed = run->killed,
	    .timeout_ms = job->timeout_ms,
	    .shutdown_grace_ms = run->r->cfg->shutdown_grace_ms,
	    .max_output_bytes = run->limits.output_bytes,
	    .max_result_bytes = run->r->cfg->max_result_bytes,
	    .exited = true,
	    .has_result = true,
	};
	int64_t wall_ns = job_mono_ns() - run->job_start_ns;

	job->outcome.pid = 0;
	job->outcome.exit_code = 0;
	job->outcome.cpu_ms = 0;
	job->outcome.wall_ms = (int32_t)(wall_ns / 1000000);
	job->outcome.cancelled = outcome_kill_cancels(run->killed);
	job->outcome.timed_out = run->killed == RUN_KILL_TIMEOUT;
	return outcome_decide(&f, reason, len, cls);
}

/* The loop's next iteration after the start: every job of the run ends. */
static void on_noop(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *run = w->data;
	struct runner *r = run->r;
	char reason[256];
	enum metrics_failure cls;

	for (;;) {
		struct job *job = run->jobs[run->cur];
		enum job_status st = noop_end(run, job, reason, sizeof(reason), &cls);

		job->outcome.failure_class = (uint8_t)cls;
		r->hooks.job_done(r->arg, job, st, st == JOB_COMPLETED ? "" : reason,
				  st == JOB_COMPLETED ? RUN_NOOP_RESULT : NULL,
				  st == JOB_COMPLETED ? NULL : reason);
		if (st != JOB_COMPLETED || run->cur + 1 >= run->njobs)
			break;
		/* The next job of a C-task pipeline run, as a START frame would. */
		run->cur++;
		run->job_start_ns = job_mono_ns();
		r->hooks.job_started(r->arg, run->jobs[run->cur]);
	}
	run_over(r, run, false);
}

int run_noop_start(struct runner *r, struct job **jobs, size_t njobs)
{
	struct run *run = NULL;
	unsigned slot;
	int rc = -EBUSY;

	for (slot = 0; slot < r->nslots && r->slots[slot]; slot++)
		;
	if (slot == r->nslots)
		goto fail;
	rc = -ENOMEM;
	if (!(run = calloc(1, sizeof(*run))) || !(run->jobs = calloc(njobs, sizeof(*run->jobs))))
		goto fail;
	run->r = r;
	run->slot = slot;
	run->id = r->next_id++;
	run->noop = true;
	run->in_fd = run->frame_fd = run->out_fd = run->err_fd = -1;
	run->limits = limits_defaults(r->cfg, NULL);
	run->njobs = njobs;
	for (size_t i = 0; i < njobs; i++)
		run->jobs[i] = job_ref(jobs[i]);
	/* The io watchers are never started; run_free() stops them all the same. */
	ev_io_init(&run->frame_w, run_on_io, -1, EV_READ);
	ev_io_init(&run->out_w, run_on_io, -1, EV_READ);
	ev_io_init(&run->err_w, run_on_io, -1, EV_READ);
	ev_timer_init(&run->deadline, on_noop, 0., 0.);
	run->deadline.data = run;
	r->slots[slot] = run;
	r->running++;
	run->job_start_ns = job_mono_ns();
	r->hooks.job_started(r->arg, jobs[0]);
	ev_timer_start(r->loop, &run->deadline);
	return 0;
fail:
	free(run);
	return rc;
}
