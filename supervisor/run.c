/*
 * run.c - the daemon's side of job children: a run's life from start to
 * reaping, its deadline and its kill, and the warm children forked ahead.
 * Asking the spawner for a child is run_spawn.c; reading one (frames,
 * output caps, results) is run_io.c.
 *
 * Theory of operation. runner_start() takes a free worker slot, has a
 * child forked (run_spawn.c) or hands the input to a warm one, and arms
 * the job's deadline. From then on a run is a small state machine driven
 * by four kinds of events:
 *   - bytes on the frame channel (run_io.c): START(k) / RESULT(k) / SYSCALL
 *     / SETUP_ERROR frames; a C-task pipeline run reports each job start
 *     and result, so statuses and per-job deadlines stay exact
 *     (run_next_job);
 *   - bytes on the output pipes (run_io.c): counted against the caps (exec
 *     stdout is the result), a tail of stderr kept for the failure reason;
 *     a cap that is hit kills the child;
 *   - the deadline timer: KILL to the spawner (the first kill reason wins);
 *   - the spawner's EXIT event: the child is reaped. Drain what is left in
 *     the pipes, classify (outcome.c), report job_done and run_done.
 * A job's result is only final when the next job starts or the child has
 * been reaped: a result followed by a crash is a crash.
 *
 * Deadlines do not depend on this loop being on time. Each slot has a
 * timer that the spawner waits on (spawn_proto.h); arming it is one system
 * call here, and at its expiry the spawner kills the child by itself and
 * says so in EXIT (SPAWN_EVT_F_DEADLINE: a timeout, as if our timer had
 * fired). For one job, that timer is the job's deadline. A C-task pipeline
 * runs its jobs in one child, whose job boundaries only the daemon sees
 * (the frames), so the spawner gets a bound instead: the running job's
 * start plus its timeout and those of the jobs after it, moved at each
 * boundary the daemon sees; the ev_timer keeps each job's own deadline
 * exact while the loop is healthy. A loop that comes back late to an
 * expired ev_timer first reads what the spawner and the child said
 * meanwhile (run_on_deadline): the job may have ended in time.
 *
 * Pre-forked children. With few workers, the time to fork a child and set
 * up its sandbox is on every job's critical path. So for C tasks the runner
 * keeps up to `workers` children forked and sandboxed ahead of time, each
 * blocked reading its input from a pipe (a "warm" run with no jobs yet).
 * Starting a C job then means writing its input into a warm child's pipe;
 * a replacement is forked right away, off the critical path. Every job
 * still gets a fresh process that no other job has touched. Exec tasks and
 * inputs too large for a pipe are forked on demand ("cold" runs).
 *
 * valetd --bench-noop (benchmarks only): no child at all, see run_noop.c.
 *
 * Limits. Each START carries the child's rlimits: its job's (limits.h),
 * and for a C-task pipeline run in one child, limit by limit the largest
 * of its jobs'. Warm children were forked with the defaults ([sandbox]),
 * so one serves only a run whose rlimits are those; any other C run is
 * cold. The output cap is the run's too, counted by run_io.c.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../sandbox/spawn_proto.h"
#include "isolation.h"
#include "limits.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "run_internal.h"
#include "tasks.h"

/* The child's own time between two jobs of a pipeline (writing frames,
 * starting the next task), allowed on top of the jobs' timeouts in the
 * spawner's bound, per job boundary it spans. */
#define RUN_BOUND_SLACK_MS 20

/* ---- a run's life: deadline, kill, the jobs it reports ---------------------- */

void run_kill(struct run *run, enum run_kill why)
{
	struct spawn_req req = {.type = SPAWN_REQ_KILL, .slot = run->slot, .run_id = run->id};

	if (run->killed == RUN_KILL_NONE)
		run->killed = why;
	if (run->noop)
		return; /* no child: run_noop.c ends the run with this reason */
	/* A KILL is tiny and the spawner drains its socket promptly. */
	while (send(run->r->fd, &req, sizeof(req), MSG_NOSIGNAL) < 0) {
		struct pollfd p = {run->r->fd, POLLOUT, 0};
		if (errno != EAGAIN && errno != EINTR)
			break;
		poll(&p, 1, 100);
	}
}

static int32_t clamp_ms(int64_t v)
{
	return v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* The pid and wall time of jobs[cur], which ended at end_ns (monotonic). */
static void fill_outcome(struct run *run, struct job *job, int64_t end_ns)
{
	job->outcome.pid = run->pid;
	job->outcome.wall_ms = clamp_ms((end_ns - run->job_start_ns) / 1000000);
}

/* Set the slot's timer, which the spawner waits on: kill the child at
 * at_ns (CLOCK_MONOTONIC), or never (0). */
static void spawner_deadline_set(struct run *run, int64_t at_ns)
{
	struct itimerspec its = {.it_value = {.tv_sec = at_ns / 1000000000,
					      .tv_nsec = at_ns % 1000000000}};
	int fd = run->r->timers[run->slot];

	if (fd >= 0 && timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		run->kill_at_ns = at_ns;
}

/* jobs[cur] starts now: its wall time, its deadline, and the spawner's. */
static void arm_deadline(struct run *run)
{
	struct job *job = run->jobs[run->cur];
	int64_t bound;

	run->job_start_ns = job_mono_ns();
	ev_timer_stop(run->r->loop, &run->deadline);
	/* libev counts a timer from the loop's time, taken when this loop
	 * iteration began: without an update, a busy iteration made the timer
	 * (and the kill) come before the job had its whole timeout. */
	ev_now_update(run->r->loop);
	ev_timer_set(&run->deadline, (double)job->timeout_ms / 1000.0, 0.);
	ev_timer_start(run->r->loop, &run->deadline);
	/* Never early: the jobs after this one may take their whole timeouts
	 * too, and this start is when we saw it, not before. */
	bound = run->job_start_ns + job->timeout_ms * 1000000;
	for (size_t i = run->cur + 1; i < run->njobs; i++)
		bound += (run->jobs[i]->timeout_ms + RUN_BOUND_SLACK_MS) * 1000000;
	spawner_deadline_set(run, bound);
}

/*
 * The job's result: metadata is kept when the job completed or failed by its
 * own error (the original kept it too); error is the failure text.
 */
static void report_done(struct run *run, struct job *job, enum job_status st, const char *why,
			bool by_task)
{
	bool keep = st == JOB_COMPLETED || by_task;

	run->r->hooks.job_done(run->r->arg, job, st, st == JOB_COMPLETED ? "" : why,
			       keep ? run->result_json : NULL, st == JOB_COMPLETED ? NULL : why);
}

/* jobs[cur] completed its part and the child moved on to job k (a START
 * frame of a C-task pipeline run). */
void run_next_job(struct run *run, size_t k)
{
	struct job *job = run->jobs[run->cur];
	struct outcome_facts f = {.exited = true, .has_result = run->has_result,
				  .malformed = run->malformed, .task_error = run->result_error};
	char reason[256];
	enum metrics_failure cls;
	enum job_status st = outcome_decide(&f, reason, sizeof(reason), &cls);
	bool by_task = cls == METRICS_FAIL_TASK;

	fill_outcome(run, job, job_mono_ns());
	job->outcome.failure_class = (uint8_t)cls;
	report_done(run, job, st, by_task ? run->result_error : reason, by_task);
	run_clear_pending(run);
	run->cur = k;
	run->r->hooks.job_started(run->r->arg, run->jobs[k]);
	arm_deadline(run);
}

static void read_events(struct runner *r);

/*
 * jobs[cur]'s deadline. The loop may come here late (a long callback, a
 * stopped process), when the child may have ended in time or moved on to
 * the next job of its pipeline, which has a deadline of its own: what the
 * spawner and the child said meanwhile comes first.
 */
void run_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *run = w->data;
	struct runner *r = run->r;
	unsigned slot = run->slot;
	uint64_t id = run->id;
	size_t cur = run->cur;

	read_events(r);
	run = r->slots[slot];
	if (!run || run->id != id)
		return; /* reaped meanwhile, and freed */
	if (run->frame_fd >= 0)
		run_on_io(loop, &run->frame_w, EV_READ);
	if (run->cur == cur)
		run_kill(run, RUN_KILL_TIMEOUT);
}

/* Close everything of a run whose child is gone (or never came). */
void run_free(struct runner *r, struct run *run)
{
	ev_timer_stop(r->loop, &run->deadline);
	/* Disarmed (which also drops an expiry the spawner has not read)
	 * before the slot can get its next child. */
	if (run->kill_at_ns)
		spawner_deadline_set(run, 0);
	run_stop_io(run, &run->frame_w, &run->frame_fd);
	run_stop_io(run, &run->out_w, &run->out_fd);
	run_stop_io(run, &run->err_w, &run->err_fd);
	if (run->slot_pipes)
		run_slot_pipes_settle(r, run);
	else if (run->in_fd >= 0)
		close(run->in_fd);
	if (r->slots[run->slot] == run)
		r->slots[run->slot] = NULL;
	run_clear_pending(run);
	free(run->frames.data);
	free(run->stdout_b.data);
	for (size_t i = 0; i < run->njobs; i++)
		job_unref(run->jobs[i]);
	free(run->jobs);
	free(run);
}

static void warm_up(struct runner *r);

/* A pre-forked child died before it got a job: fork on demand for now. */
static void warm_died(struct runner *r, struct run *run, const struct spawn_evt *evt)
{
	char status[96];

	if (run->has_setup)
		snprintf(status, sizeof(status), "sandbox setup failed: %s: %s", run->setup.step,
			 strerror(run->setup.err));
	else
		snprintf(status, sizeof(status), "wait status 0x%x, fork errno %d", evt->status,
			 evt->spawn_err);
	if (!run->retired) {
		/* Killed by us (a lease lost, a shutdown): no surprise to report. */
		if (!r->quiesced && !r->warming_paused && run->killed == RUN_KILL_NONE)
			log_warn("a pre-forked job child died unused; forking on demand", "why",
				 status);
		r->warming_paused = true;
	}
	r->nwarm--;
	run_free(r, run);
}

/*
 * The child wrote everything before it died: read what is left. Mostly
 * nothing is (the loop read it as it came): one poll() of the pipes says
 * so, instead of a read() per pipe that fails with EAGAIN. A pipe with
 * nothing in it now stays empty (nobody writes any more): run->drained.
 */
static void drain(struct run *run)
{
	struct pollfd pf[3] = {{.fd = run->frame_fd, .events = POLLIN},
			       {.fd = run->out_fd, .events = POLLIN},
			       {.fd = run->err_fd, .events = POLLIN}}; /* -1: ignored */
	bool polled = poll(pf, 3, 0) >= 0;

	for (int i = 0; i < 3; i++) {
		if (pf[i].fd < 0)
			continue;
		if ((!polled || pf[i].revents) && run_read_some(run, pf[i].fd, i) != 0)
			continue;
		if (i < 2)
			run->drained |= 1u << i;
	}
}

/* What was observed of jobs[cur]'s end, for outcome_classify(). */
static struct outcome_facts exit_facts(const struct run *run, const struct spawn_evt *evt,
				       char *tail, size_t taillen)
{
	const struct job *job = run->jobs[run->cur];

	return (struct outcome_facts){
	    .killed = run->killed,
	    .timeout_ms = job->timeout_ms,
	    .shutdown_grace_ms = run->r->cfg->shutdown_grace_ms,
	    .max_output_bytes = run->limits.output_bytes,
	    .max_result_bytes = run->r->cfg->max_result_bytes,
	    .spawn_err = evt->spawn_err,
	    .exited = !evt->spawn_err && WIFEXITED(evt->status),
	    .exit_code = WIFEXITED(evt->status) ? WEXITSTATUS(evt->status) : -1,
	    .term_signal = WIFSIGNALED(evt->status) ? WTERMSIG(evt->status) : 0,
	    .filter_kills = !run->exec,
	    .oom_killed = evt->flags & SPAWN_EVT_F_OOM,
	    .memory_limit_bytes = run->limits.memory_bytes,
	    .cpu_limit_s = run->limits.cpu_seconds,
	    .cpu_ms = (evt->utime_us + evt->stime_us) / 1000,
	    .syscall_name = run->syscall_name,
	    .setup_step = run->has_setup ? run->setup.step : NULL,
	    .setup_errno = run->setup.err,
	    .stderr_tail = run->exec ? run_clean_tail(run, tail, taillen) : NULL,
	    .has_result = run->has_result,
	    .malformed = run->malformed,
	    .task_error = run->result_error,
	};
}

/* jobs[cur]'s outcome from the EXIT event and what we did to the child. */
static void exit_outcome(struct run *run, struct job *job, const struct spawn_evt *evt,
			 const struct outcome_facts *f)
{
	struct job_outcome *o = &job->outcome;
	int64_t now = job_mono_ns();

	/* When the spawner reaped it, not when this loop got to it; unless
	 * this job's start was seen only after that (a stalled loop). */
	fill_outcome(run, job,
		     evt->end_ns >= run->job_start_ns && evt->end_ns <= now ? evt->end_ns : now);
	if (!evt->spawn_err) {
		o->exit_code = f->exit_code;
		o->term_signal = f->term_signal;
		o->cpu_ms = clamp_ms((evt->utime_us + evt->stime_us) / 1000);
		o->max_rss_kb = clamp_ms(evt->maxrss_kb);
		o->memory_peak_kb = evt->memory_peak_kb < 0 ? -1 : clamp_ms(evt->memory_peak_kb);
	} else {
		o->pid = 0;
	}
	o->timed_out = run->killed == RUN_KILL_TIMEOUT;
	o->oom_killed = f->oom_killed;
	o->cancelled = outcome_kill_cancels(run->killed);
	o->output_limit = run->killed == RUN_KILL_OUTPUT || run->killed == RUN_KILL_RESULT_SIZE;
	o->seccomp_blocked =
	    run->killed == RUN_KILL_NONE && f->term_signal == SIGSYS && f->filter_kills;
	if (o->seccomp_blocked && run->syscall_name[0])
		o->seccomp_syscall = job_intern(run->syscall_name);
}

/*
 * The run is over: free its slot, then tell the core, which may start the
 * next run at once. Earlier jobs of this child may have ended before the
 * spawner's STARTED event was read (a frame and that event race in one
 * loop pass): they get the pid now.
 */
void run_over(struct runner *r, struct run *run, bool spawned)
{
	size_t njobs = run->njobs, ran = run->cur + 1;
	struct job **jobs = run->jobs;

	for (size_t i = 0; i < run->cur && run->pid > 0; i++)
		if (jobs[i]->outcome.pid == 0) {
			jobs[i]->outcome.pid = run->pid;
			r->hooks.outcome_changed(r->arg, jobs[i]);
		}
	run->jobs = NULL;
	run->njobs = 0;
	if (!run->exec && spawned)
		r->warming_paused = false; /* C children start fine again */
	r->running--;
	run_free(r, run);
	warm_up(r);
	r->hooks.run_done(r->arg, jobs, njobs, ran);
	for (size_t i = 0; i < njobs; i++)
		job_unref(jobs[i]);
	free(jobs);
}

/* A job killed at its deadline: how long after it the spawner reaped it
 * (its own clock's reap time; the loop's when that is unknown). */
static void kill_latency(const struct run *run, const struct job *job, const struct spawn_evt *evt)
{
	int64_t deadline = run->job_start_ns + job->timeout_ms * 1000000;
	int64_t end = evt->end_ns > 0 ? evt->end_ns : job_mono_ns();

	metrics_kill_latency(run->r->metrics, (double)(end - deadline) / 1e9);
}

/* The spawner reaped a child: classify how jobs[cur] ended, report it. */
static void on_exit_evt(struct runner *r, const struct spawn_evt *evt)
{
	struct run *run = evt->slot < r->nslots ? r->slots[evt->slot] : NULL;
	char reason[1024], tail[RUN_TAIL_MAX + 1];
	enum metrics_failure cls;
	struct outcome_facts f;
	enum job_status st;
	struct job *job;

	if (!run || run->id != evt->run_id)
		return;
	ev_timer_stop(r->loop, &run->deadline);
	drain(run);
	if (run->njobs == 0) {
		warm_died(r, run, evt);
		return;
	}
	/* The spawner's timer killed it: a timeout, as if ours had fired. What
	 * the pipes held was written before, so a reason found there (a cap,
	 * a bad frame) came first, as it would have with a loop on time. */
	if ((evt->flags & SPAWN_EVT_F_DEADLINE) && run->killed == RUN_KILL_NONE)
		run->killed = RUN_KILL_TIMEOUT;
	run->pid = evt->pid;
	if (run->exec && run->killed == RUN_KILL_NONE)
		run_exec_result(run);
	job = run->jobs[run->cur];
	f = exit_facts(run, evt, tail, sizeof(tail));
	st = outcome_decide(&f, reason, sizeof(reason), &cls);
	exit_outcome(run, job, evt, &f);
	job->outcome.failure_class = (uint8_t)cls;
	if (run->killed == RUN_KILL_TIMEOUT && r->metrics)
		kill_latency(run, job, evt);
	report_done(run, job, st, cls == METRICS_FAIL_TASK ? run->result_error : reason,
		    cls == METRICS_FAIL_TASK);
	run_over(r, run, !evt->spawn_err);
}

static void on_started_evt(struct runner *r, const struct spawn_evt *evt)
{
	struct run *run = evt->slot < r->nslots ? r->slots[evt->slot] : NULL;

	if (run && run->id == evt->run_id)
		run->pid = evt->pid;
}

/* One event of the spawner's (read_events). */
static void on_event(struct runner *r, const struct spawn_evt *evt)
{
	if (evt->type == SPAWN_EVT_EXIT)
		on_exit_evt(r, evt);
	else if (evt->type == SPAWN_EVT_STARTED)
		on_started_evt(r, evt);
	else if (evt->type == SPAWN_EVT_POLICY && evt->spawn_err)
		log_error("the spawner could not apply what jobs must not see or reach "
			  "(it said why on stderr)",
			  "error", strerror(evt->spawn_err));
}

/*
 * The spawner is gone, and its children with it (each has a parent-death
 * signal; a namespace's init takes its namespace along): no EXIT will come
 * for them, so end every run as if one had, killed for that reason. Else
 * its jobs would stay IN_PROGRESS and a shutdown would wait for them for
 * ever.
 */
static void spawner_lost(struct runner *r)
{
	for (unsigned i = 0; i < r->nslots; i++) {
		struct run *run = r->slots[i];
		struct spawn_evt evt = {.type = SPAWN_EVT_EXIT, .slot = i, .status = SIGKILL};

		if (!run)
			continue;
		evt.run_id = run->id;
		evt.pid = run->pid;
		evt.memory_peak_kb = -1;
		if (run->killed == RUN_KILL_NONE)
			run->killed = RUN_KILL_SPAWNER;
		if (run->njobs == 0)
			run->retired = true; /* no "died unused" warning */
		on_exit_evt(r, &evt);
	}
}

/*
 * The spawner's events that are there now (a bounded batch): up to
 * RUN_EVT_BATCH messages per recvmmsg(). Fewer than asked for means the
 * socket was empty: no further call to see EAGAIN (a later event makes
 * it readable again). A message of 0 bytes is the end of the stream.
 */
#define RUN_EVT_BATCH 4

static void read_events(struct runner *r)
{
	struct spawn_evt evts[RUN_EVT_BATCH];
	struct iovec iov[RUN_EVT_BATCH];
	struct mmsghdr msgs[RUN_EVT_BATCH];

	for (int round = 0; round < 16 && !r->broken; round++) {
		for (int i = 0; i < RUN_EVT_BATCH; i++) {
			iov[i] = (struct iovec){.iov_base = &evts[i], .iov_len = sizeof(evts[i])};
			msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
		}
		int n = recvmmsg(r->fd, msgs, RUN_EVT_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		for (int i = 0; i < n && !r->broken; i++) {
			if (msgs[i].msg_len == 0) {
				n = 0;
				break;
			}
			if (msgs[i].msg_len == sizeof(evts[i]))
				on_event(r, &evts[i]);
		}
		if (n <= 0) {
			log_error("the spawner process is gone: no job can run any more");
			r->broken = true;
			ev_io_stop(r->loop, &r->spawner_w);
			spawner_lost(r);
			return;
		}
		if (n < RUN_EVT_BATCH)
			return;
	}
}

static void on_spawner(struct ev_loop *loop, ev_io *w, int revents)
{
	read_events(w->data);
}

unsigned runner_max_children(const struct config *cfg)
{
	return 2 * (unsigned)cfg->workers;
}

struct runner *runner_new(struct ev_loop *loop, const struct config *cfg,
			  const struct tasks *reg, int spawner_fd,
			  const struct runner_hooks *hooks, void *arg)
{
	struct runner *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return NULL;
	r->workers = (unsigned)cfg->workers;
	r->nslots = runner_max_children(cfg);
	r->slots = calloc(r->nslots, sizeof(*r->slots));
	r->pipes = malloc(r->nslots * sizeof(*r->pipes));
	r->timers = malloc(r->nslots * sizeof(*r->timers));
	if (!r->slots || !r->pipes || !r->timers) {
		free(r->slots);
		free(r->pipes);
		free(r->timers);
		free(r);
		return NULL;
	}
	memset(r->pipes, -1, r->nslots * sizeof(*r->pipes));
	memset(r->timers, -1, r->nslots * sizeof(*r->timers));
	/* All at once: the daemon's fd count is then the same from the
	 * start (a slot whose pipes could not be made tries again later). */
	for (unsigned i = 0; i < r->nslots; i++)
		(void)run_slot_pipes_ready(&r->pipes[i]);
	r->loop = loop;
	r->cfg = cfg;
	r->reg = reg;
	r->fd = spawner_fd;
	r->hooks = *hooks;
	r->arg = arg;
	r->next_id = 1;
	ev_io_init(&r->spawner_w, on_spawner, spawner_fd, EV_READ);
	r->spawner_w.data = r;
	if ((rc = run_timers_give(r)) < 0) {
		log_error("cannot give the spawner its deadline timers", "error", strerror(-rc));
		runner_free(r);
		return NULL;
	}
	ev_io_start(loop, &r->spawner_w);
	warm_up(r);
	return r;
}

void runner_free(struct runner *r)
{
	if (!r)
		return;
	ev_io_stop(r->loop, &r->spawner_w);
	for (unsigned i = 0; i < r->nslots; i++)
		if (r->slots[i])
			run_free(r, r->slots[i]);
	for (unsigned i = 0; i < r->nslots; i++) {
		run_slot_pipes_drop(&r->pipes[i]);
		if (r->timers[i] >= 0)
			close(r->timers[i]);
	}
	free(r->slots);
	free(r->pipes);
	free(r->timers);
	free(r);
}

bool runner_has_slot(const struct runner *r)
{
	/* Without its spawner no job can start: queued work stays queued. */
	return !r->broken && r->running < r->workers;
}

unsigned runner_running(const struct runner *r)
{
	return r->running;
}

bool runner_healthy(const struct runner *r)
{
	return !r->broken;
}

void runner_set_metrics(struct runner *r, struct metrics *m)
{
	r->metrics = m;
}

void runner_state(const struct runner *r, struct runner_state *out)
{
	*out = (struct runner_state){.workers = r->workers,
				     .running = r->running,
				     .warm = r->nwarm,
				     .warming_paused = r->warming_paused,
				     .spawner_up = !r->broken};
}

void runner_quiesce(struct runner *r)
{
	r->quiesced = true;
	for (unsigned i = 0; i < r->nslots; i++)
		if (r->slots[i] && r->slots[i]->njobs == 0)
			run_kill(r->slots[i], RUN_KILL_SHUTDOWN);
}

/* The limits of a run of these jobs (one, or a C-task pipeline). */
static struct job_limits run_limits(const struct runner *r, struct job **jobs, size_t njobs)
{
	struct job_limits l = limits_of_job(r->cfg, tasks_find(r->reg, jobs[0]->task_name), jobs[0]);

	for (size_t i = 1; i < njobs; i++) {
		struct job_limits more =
		    limits_of_job(r->cfg, tasks_find(r->reg, jobs[i]->task_name), jobs[i]);
		limits_widen(&l, &more);
	}
	return l;
}

/* Keep up to `workers` C-task children forked and waiting for input. */
static void warm_up(struct runner *r)
{
	while (!r->quiesced && !r->warming_paused && !r->broken && !r->cfg->bench_noop &&
	       r->nwarm < r->workers && r->running + r->nwarm < r->nslots) {
		struct spawn_req req = {.task_index = -1,
					.flags = SPAWN_F_SHARED_OUTPUT | SPAWN_F_INPUT_STDIN |
						 SPAWN_F_INPUT_SIZED,
					.limits = limits_default_sbx(r->cfg)};
		struct run *run;
		int rc;

		run = run_spawn(r, &req, NULL, -1, true, &rc);
		if (!run)
			return;
		run->warm = true;
		r->nwarm++;
	}
}

static struct run *take_warm(struct runner *r)
{
	for (unsigned i = 0; i < r->nslots; i++) {
		struct run *run = r->slots[i];
		if (run && run->warm && !run->retired && run->njobs == 0 && run->in_fd >= 0 &&
		    run->killed == RUN_KILL_NONE)
			return run;
	}
	return NULL;
}

/* What isolation the run's jobs get, recorded on each (see isolation.h). */
static void record_isolation(struct run *run, const struct task_def *task)
{
	const struct isolation *iso = isolation_global();
	enum sbx_profile profile = run->exec ? task->profile : SBX_PROFILE_STRICT;

	if (!iso)
		return; /* unit tests without a daemon */
	for (size_t i = 0; i < run->njobs; i++) {
		free(run->jobs[i]->isolation);
		run->jobs[i]->isolation = isolation_record(iso, run->slot, policy_profile_name(profile));
	}
}

int runner_start(struct runner *r, struct job **jobs, size_t njobs, const char *previous_json)
{
	const struct task_def *task = tasks_find(r->reg, jobs[0]->task_name);
	bool exec = task && task->exec;
	struct spawn_req req = {0};
	struct buf in = {0};
	struct run *run = NULL;
	struct job **tracked = NULL;
	struct job_limits limits;
	struct sbx_limits warm_rl;
	int rc, in_fd = -1;

	if (r->broken)
		return -EPIPE;
	if (!task)
		return -ENOENT;
	if (r->running >= r->workers)
		return -EBUSY;
	if (r->cfg->bench_noop)
		return run_noop_start(r, jobs, njobs);
	rc = run_build_input(r, jobs, njobs, previous_json, exec, &in);
	if (rc < 0)
		goto out;
	tracked = calloc(njobs, sizeof(*tracked));
	if (!tracked) {
		rc = -ENOMEM;
		goto out;
	}
	limits = run_limits(r, jobs, njobs);
	req.limits = limits_sbx(r->cfg, &limits);
	warm_rl = limits_default_sbx(r->cfg);
	if (!exec && !memcmp(&req.limits, &warm_rl, sizeof(warm_rl)) && (run = take_warm(r)) &&
	    !run_feed_warm(run, &in)) {
		/* Too big for a pipe: this warm child stays for the next job. */
		run = NULL;
	}
	if (run) {
		r->nwarm--;
	} else {
		req.task_index = tasks_index(r->reg, task->name);
		req.flags = exec ? SPAWN_F_EXEC : SPAWN_F_SHARED_OUTPUT;
		if (exec || in.len > SPAWN_INLINE_MAX) {
			if ((in_fd = run_memfd(&in)) < 0) {
				rc = in_fd;
				goto out;
			}
			if (!exec)
				req.flags |= SPAWN_F_INPUT_STDIN;
		} else {
			req.input_len = (uint32_t)in.len;
		}
		run = run_spawn(r, &req, in.data, in_fd, false, &rc);
		if (!run)
			goto out;
	}
	run->limits = limits;
	run->jobs = tracked;
	tracked = NULL;
	run->njobs = njobs;
	for (size_t i = 0; i < njobs; i++)
		run->jobs[i] = job_ref(jobs[i]);
	record_isolation(run, task);
	r->running++;
	r->hooks.job_started(r->arg, jobs[0]);
	arm_deadline(run);
	warm_up(r);
	rc = 0;
out:
	free(tracked);
	free(in.data);
	return rc;
}

void runner_kill(struct runner *r, struct job *job, enum run_kill why)
{
	for (unsigned i = 0; i < r->nslots; i++) {
		struct run *run = r->slots[i];
		if (run && run->njobs && run->jobs[run->cur] == job) {
			run_kill(run, why);
			return;
		}
	}
}

void runner_kill_all(struct runner *r, enum run_kill why)
{
	for (unsigned i = 0; i < r->nslots; i++)
		if (r->slots[i])
			run_kill(r->slots[i], why);
}
