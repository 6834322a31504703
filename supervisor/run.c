/*
 * run.c - the daemon's side of job children: their life from spawn (cold
 * or pre-forked) to reaping. Reading their output is in run_io.c.
 *
 * Theory of operation. runner_start() takes a free worker slot, makes the
 * child's pipes (frame channel, output, and for exec tasks a separate stderr
 * plus a memfd holding the input on stdin), sends START to the spawner with
 * the child's ends attached, and closes them here. From then on a run is a
 * small state machine driven by three kinds of events:
 *   - bytes on the frame channel: START(k) / RESULT(k) / SYSCALL / SETUP_ERROR
 *     frames, parsed with a size cap; a C-task pipeline run reports each job
 *     start and result, so statuses and per-job deadlines stay exact;
 *   - bytes on the output pipes: counted against the caps (exec stdout is
 *     the result), a tail of stderr kept for the failure reason;
 *   - the deadline timer: KILL to the spawner (the first kill reason wins);
 *   - the spawner's EXIT event: the child is reaped. Drain what is left in
 *     the pipes, classify (outcome.c), report job_done and run_done.
 * A job's result is only final when the next job starts or the child has
 * been reaped: a result followed by a crash is a crash.
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
 * Limits. Each START carries the child's rlimits: its job's (limits.h),
 * and for a C-task pipeline run in one child, limit by limit the largest
 * of its jobs'. Warm children were forked with the defaults ([sandbox]),
 * so one serves only a run whose rlimits are those; any other C run is
 * cold. The output cap is the run's too, counted by run_io.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "policy.h"
#include "../sandbox/frame.h"
#include "isolation.h"
#include "limits.h"
#include "log.h"
#include "tasks.h"
#include "run_internal.h"
#include "../sandbox/spawn_proto.h"

static void slot_pipes_drop(struct slot_pipes *sp)
{
	int *fds[] = {sp->frame, sp->out, sp->in};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		for (int end = 0; end < 2; end++) {
			if (fds[i][end] >= 0)
				close(fds[i][end]);
			fds[i][end] = -1;
		}
}

static bool pipe_empty(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) == 0 && n == 0;
}

/*
 * A slot's pipes go to the slot's next child only when its last child, now
 * reaped, left nothing in them: what it wrote has been read (the drain in
 * on_exit_evt), and it read all of its input. A C task cannot fork, so no
 * one else can write into them any more. Anything else: new pipes.
 */
static void slot_pipes_settle(struct runner *r, struct run *run)
{
	struct slot_pipes *sp = &r->pipes[run->slot];

	if (run->pipes_bad || !pipe_empty(sp->frame[0]) || !pipe_empty(sp->out[0]) ||
	    !pipe_empty(sp->in[0]))
		slot_pipes_drop(sp);
}

/* Close everything of a run whose child is gone (or never came). */
static void run_free(struct runner *r, struct run *run)
{
	ev_timer_stop(r->loop, &run->deadline);
	run_stop_io(run, &run->frame_w, &run->frame_fd);
	run_stop_io(run, &run->out_w, &run->out_fd);
	run_stop_io(run, &run->err_w, &run->err_fd);
	if (run->slot_pipes)
		slot_pipes_settle(r, run);
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
static int slot_pipes_ready(struct slot_pipes *sp);

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
		if (!r->quiesced && !r->warming_paused)
			log_warn("a pre-forked job child died unused; forking on demand", "why",
				 status);
		r->warming_paused = true;
	}
	r->nwarm--;
	run_free(r, run);
}

static void on_exit_evt(struct runner *r, const struct spawn_evt *evt)
{
	struct run *run = evt->slot < r->nslots ? r->slots[evt->slot] : NULL;
	struct job *job;
	char reason[1024], tailbuf[RUN_TAIL_MAX + 1];
	struct outcome_facts f;
	enum job_status st;
	bool by_task;
	struct job **jobs;
	size_t njobs, ran;

	if (!run || run->id != evt->run_id)
		return;
	ev_timer_stop(r->loop, &run->deadline);
	/* The child wrote everything before it died: drain it now. */
	if (run->frame_fd >= 0)
		run_read_some(run, run->frame_fd, 0);
	if (run->out_fd >= 0)
		run_read_some(run, run->out_fd, 1);
	if (run->err_fd >= 0)
		run_read_some(run, run->err_fd, 2);
	if (run->njobs == 0) {
		warm_died(r, run, evt);
		return;
	}
	run->pid = evt->pid;
	if (run->exec && run->killed == RUN_KILL_NONE)
		run_exec_result(run);

	job = run->jobs[run->cur];
	f = (struct outcome_facts){
		.killed = run->killed,
		.timeout_ms = job->timeout_ms,
		.shutdown_grace_ms = r->cfg->shutdown_grace_ms,
		.max_output_bytes = run->limits.output_bytes,
		.max_result_bytes = r->cfg->max_result_bytes,
		.spawn_err = evt->spawn_err,
		.exited = !evt->spawn_err && WIFEXITED(evt->status),
		.exit_code = WIFEXITED(evt->status) ? WEXITSTATUS(evt->status) : -1,
		.term_signal = WIFSIGNALED(evt->status) ? WTERMSIG(evt->status) : 0,
		.oom_killed = evt->flags & SPAWN_EVT_F_OOM,
		.memory_limit_bytes = run->limits.memory_bytes,
		.cpu_limit_s = run->limits.cpu_seconds,
		.cpu_ms = (evt->utime_us + evt->stime_us) / 1000,
		.syscall_name = run->syscall_name,
		.setup_step = run->has_setup ? run->setup.step : NULL,
		.setup_errno = run->setup.err,
		.stderr_tail = run->exec ? run_clean_tail(run, tailbuf, sizeof(tailbuf)) : NULL,
		.has_result = run->has_result,
		.malformed = run->malformed,
		.task_error = run->result_error,
	};
	st = outcome_classify(&f, reason, sizeof(reason), &by_task);
	run_fill_outcome(run, job);
	if (!evt->spawn_err) {
		job->outcome.exit_code = f.exit_code;
		job->outcome.term_signal = f.term_signal;
		job->outcome.cpu_ms = run_clamp_ms((evt->utime_us + evt->stime_us) / 1000);
		job->outcome.max_rss_kb = run_clamp_ms(evt->maxrss_kb);
		job->outcome.memory_peak_kb =
		    evt->memory_peak_kb < 0 ? -1 : run_clamp_ms(evt->memory_peak_kb);
	} else {
		job->outcome.pid = 0;
	}
	job->outcome.timed_out = run->killed == RUN_KILL_TIMEOUT;
	job->outcome.oom_killed = f.oom_killed;
	job->outcome.cancelled = run->killed == RUN_KILL_CANCEL || run->killed == RUN_KILL_SHUTDOWN;
	job->outcome.output_limit = run->killed == RUN_KILL_OUTPUT ||
				    run->killed == RUN_KILL_RESULT_SIZE;
	job->outcome.seccomp_blocked = run->killed == RUN_KILL_NONE && f.term_signal == SIGSYS;
	if (job->outcome.seccomp_blocked && run->syscall_name[0])
		job->outcome.seccomp_syscall = job_intern(run->syscall_name);
	run_report_done(run, job, st, by_task ? run->result_error : reason, by_task);
	ran = run->cur + 1;
	/* Earlier jobs of this child may have ended before the spawner's
	 * STARTED event was read (a frame and that event race in one loop
	 * pass): give them the pid now. */
	for (size_t i = 0; i < run->cur && run->pid > 0; i++)
		if (run->jobs[i]->outcome.pid == 0) {
			run->jobs[i]->outcome.pid = run->pid;
			r->hooks.outcome_changed(r->arg, run->jobs[i]);
		}

	/* The hooks get the jobs after the run is gone and its slot free. */
	jobs = run->jobs;
	njobs = run->njobs;
	run->jobs = NULL;
	run->njobs = 0;
	if (!run->exec && !evt->spawn_err)
		r->warming_paused = false; /* C children start fine again */
	r->running--;
	run_free(r, run);
	warm_up(r);
	r->hooks.run_done(r->arg, jobs, njobs, ran);
	for (size_t i = 0; i < njobs; i++)
		job_unref(jobs[i]);
	free(jobs);
}

static void on_started_evt(struct runner *r, const struct spawn_evt *evt)
{
	struct run *run = evt->slot < r->nslots ? r->slots[evt->slot] : NULL;

	if (run && run->id == evt->run_id)
		run->pid = evt->pid;
}

static void on_spawner(struct ev_loop *loop, ev_io *w, int revents)
{
	struct runner *r = w->data;
	struct spawn_evt evt;

	for (int i = 0; i < 256; i++) {
		ssize_t n = recv(r->fd, &evt, sizeof(evt), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			log_error("the spawner process is gone: no job can run any more");
			r->broken = true;
			ev_io_stop(loop, w);
			return;
		}
		if ((size_t)n != sizeof(evt))
			continue;
		if (evt.type == SPAWN_EVT_EXIT)
			on_exit_evt(r, &evt);
		else if (evt.type == SPAWN_EVT_STARTED)
			on_started_evt(r, &evt);
		else if (evt.type == SPAWN_EVT_POLICY && evt.spawn_err)
			log_error("the spawner could not apply what jobs must not see or reach "
				  "(it said why on stderr)",
				  "error", strerror(evt.spawn_err));
	}
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

	if (!r)
		return NULL;
	r->workers = (unsigned)cfg->workers;
	r->nslots = runner_max_children(cfg);
	r->slots = calloc(r->nslots, sizeof(*r->slots));
	r->pipes = malloc(r->nslots * sizeof(*r->pipes));
	if (!r->slots || !r->pipes) {
		free(r->slots);
		free(r->pipes);
		free(r);
		return NULL;
	}
	memset(r->pipes, -1, r->nslots * sizeof(*r->pipes));
	/* All at once: the daemon's fd count is then the same from the
	 * start (a slot whose pipes could not be made tries again later). */
	for (unsigned i = 0; i < r->nslots; i++)
		(void)slot_pipes_ready(&r->pipes[i]);
	r->loop = loop;
	r->cfg = cfg;
	r->reg = reg;
	r->fd = spawner_fd;
	r->hooks = *hooks;
	r->arg = arg;
	r->next_id = 1;
	ev_io_init(&r->spawner_w, on_spawner, spawner_fd, EV_READ);
	r->spawner_w.data = r;
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
	for (unsigned i = 0; i < r->nslots; i++)
		slot_pipes_drop(&r->pipes[i]);
	free(r->slots);
	free(r->pipes);
	free(r);
}

bool runner_has_slot(const struct runner *r)
{
	return r->running < r->workers;
}

unsigned runner_running(const struct runner *r)
{
	return r->running;
}

bool runner_healthy(const struct runner *r)
{
	return !r->broken;
}

void runner_quiesce(struct runner *r)
{
	r->quiesced = true;
	for (unsigned i = 0; i < r->nslots; i++)
		if (r->slots[i] && r->slots[i]->njobs == 0)
			run_kill(r->slots[i], RUN_KILL_SHUTDOWN);
}

/* The run's input: see taskrun.h (C tasks) or the exec task contract. */
static int build_input(struct runner *r, struct job **jobs, size_t njobs, const char *previous,
		       bool exec, struct buf *in)
{
	int rc = 0;

	if (exec) {
		rc |= run_buf_adds(in, "{\"params\":");
		rc |= run_buf_adds(in, jobs[0]->params_json ? jobs[0]->params_json : "{}");
		rc |= run_buf_adds(in, ",\"previous\":");
		rc |= run_buf_adds(in, previous && jobs[0]->use_previous_results ? previous : "null");
		rc |= run_buf_adds(in, "}\n");
		return rc ? -ENOMEM : 0;
	}
	rc |= run_buf_adds(in, "{\"previous\":");
	rc |= run_buf_adds(in, previous ? previous : "null");
	rc |= run_buf_adds(in, ",\"jobs\":[");
	for (size_t i = 0; i < njobs; i++) {
		char head[96];
		snprintf(head, sizeof(head), "%s{\"task\":%d,\"use_previous\":%s,\"params\":",
			 i ? "," : "", tasks_index(r->reg, jobs[i]->task_name),
			 jobs[i]->use_previous_results ? "true" : "false");
		rc |= run_buf_adds(in, head);
		rc |= run_buf_adds(in, jobs[i]->params_json ? jobs[i]->params_json : "{}");
		rc |= run_buf_adds(in, "}");
	}
	rc |= run_buf_adds(in, "]}");
	return rc ? -ENOMEM : 0;
}

static int make_memfd(const struct buf *in)
{
	int fd = memfd_create("valet-input", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < in->len) {
		ssize_t n = write(fd, in->data + off, in->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			close(fd);
			return rc;
		}
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int send_start(struct runner *r, const struct spawn_req *req, const char *inline_input,
		      const int *fds, int nfds)
{
	union {
		char raw[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov[2] = {{(void *)req, sizeof(*req)},
			       {(void *)inline_input, req->input_len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = req->input_len ? 2 : 1,
			     .msg_control = cbuf.raw,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	memset(cbuf.raw, 0, sizeof(cbuf.raw));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	/* The socket buffer holds every in-flight request; EAGAIN means the
	 * spawner is momentarily behind, so wait for it briefly. */
	while (sendmsg(r->fd, &msg, MSG_NOSIGNAL) < 0) {
		struct pollfd p = {r->fd, POLLOUT, 0};
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(&p, 1, 1000) == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

static int nonblock_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int rc = -errno;
		close(p[0]);
		close(p[1]);
		return rc;
	}
	return 0;
}

static int free_slot(const struct runner *r)
{
	for (unsigned i = 0; i < r->nslots; i++)
		if (!r->slots[i])
			return (int)i;
	return -1;
}

/* The slot's pipes, made if need be: the daemon's ends non-blocking. */
static int slot_pipes_ready(struct slot_pipes *sp)
{
	int rc;

	if (sp->frame[0] >= 0)
		return 0;
	if ((rc = nonblock_pipe(sp->frame)) < 0 || (rc = nonblock_pipe(sp->out)) < 0)
		goto fail;
	if (pipe2(sp->in, O_CLOEXEC) < 0 || fcntl(sp->in[1], F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	return 0;
fail:
	slot_pipes_drop(sp);
	return rc;
}

/*
 * Fork a child through the spawner, the child's pipe ends sent along. A
 * warm child (warm = true) gets its slot's pipes, stdin included, which
 * stay open here; any other gets a frame and an output pipe (and for exec
 * tasks a stderr pipe) of its own, and stdin_fd (may be -1), which is sent
 * and closed. Returns the new run (no jobs yet), or NULL with *rc set.
 */
static struct run *spawn_child(struct runner *r, struct spawn_req *req, const char *inline_input,
			       int stdin_fd, bool warm, int *rc)
{
	int own_f[2] = {-1, -1}, own_o[2] = {-1, -1}, pe[2] = {-1, -1};
	int *pf = own_f, *po = own_o;
	int fds[SPAWN_MAX_FDS], nfds = 0, slot = free_slot(r);
	bool exec = req->flags & SPAWN_F_EXEC;
	struct run *run = NULL;

	*rc = -EBUSY;
	if (slot < 0)
		goto fail;
	if (warm) {
		struct slot_pipes *sp = &r->pipes[slot];
		if ((*rc = slot_pipes_ready(sp)) < 0)
			goto fail;
		pf = sp->frame;
		po = sp->out;
		stdin_fd = sp->in[0];
	} else if ((*rc = nonblock_pipe(pf)) < 0 || (*rc = nonblock_pipe(po)) < 0) {
		goto fail;
	}
	fds[nfds++] = pf[1];
	fds[nfds++] = po[1];
	if (exec) {
		if ((*rc = nonblock_pipe(pe)) < 0)
			goto fail;
		fds[nfds++] = pe[1];
	}
	if (stdin_fd >= 0) {
		fds[nfds++] = stdin_fd;
		req->flags |= SPAWN_F_HAS_STDIN;
	}
	run = calloc(1, sizeof(*run));
	if (!run) {
		*rc = -ENOMEM;
		goto fail;
	}
	req->type = SPAWN_REQ_START;
	req->slot = (uint32_t)slot;
	req->run_id = r->next_id++;
	*rc = send_start(r, req, inline_input, fds, nfds);
	if (*rc < 0)
		goto fail;
	if (!warm)
		for (int i = 0; i < nfds; i++)
			close(fds[i]);

	run->r = r;
	run->limits = limits_defaults(r->cfg, NULL);
	run->slot = (unsigned)slot;
	run->id = req->run_id;
	run->exec = exec;
	run->slot_pipes = warm;
	run->in_fd = warm ? r->pipes[slot].in[1] : -1;
	run->frame_fd = pf[0];
	run->out_fd = po[0];
	run->err_fd = pe[0];
	ev_io_init(&run->frame_w, run_on_io, pf[0], EV_READ);
	ev_io_init(&run->out_w, run_on_io, po[0], EV_READ);
	run->frame_w.data = run->out_w.data = run->err_w.data = run->deadline.data = run;
	ev_io_start(r->loop, &run->frame_w);
	ev_io_start(r->loop, &run->out_w);
	if (pe[0] >= 0) {
		ev_io_init(&run->err_w, run_on_io, pe[0], EV_READ);
		ev_io_start(r->loop, &run->err_w);
	}
	ev_init(&run->deadline, run_on_deadline);
	r->slots[slot] = run;
	return run;
fail:
	for (int i = 0; i < 2; i++) {
		if (own_f[i] >= 0)
			close(own_f[i]);
		if (own_o[i] >= 0)
			close(own_o[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	if (stdin_fd >= 0 && !warm)
		close(stdin_fd);
	free(run);
	if (*rc == -EPIPE || *rc == -ECONNREFUSED || *rc == -ECONNRESET)
		r->broken = true;
	return NULL;
}

/* The limits of a run of these jobs (one, or a C-task pipeline). */
static struct job_limits run_limits(const struct runner *r, struct job **jobs, size_t njobs)
{
	struct job_limits l = limits_of_job(r->cfg, jobs[0]);

	for (size_t i = 1; i < njobs; i++) {
		struct job_limits more = limits_of_job(r->cfg, jobs[i]);
		limits_widen(&l, &more);
	}
	return l;
}

/* Keep up to `workers` C-task children forked and waiting for input. */
static void warm_up(struct runner *r)
{
	while (!r->quiesced && !r->warming_paused && !r->broken && r->nwarm < r->workers &&
	       r->running + r->nwarm < r->nslots) {
		struct spawn_req req = {.task_index = -1,
					.flags = SPAWN_F_SHARED_OUTPUT | SPAWN_F_INPUT_STDIN |
						 SPAWN_F_INPUT_SIZED,
					.limits = limits_default_sbx(r->cfg)};
		struct run *run;
		int rc;

		run = spawn_child(r, &req, NULL, -1, true, &rc);
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

/*
 * Hand the input to a warm child: its size (uint32), then the bytes, into
 * the slot's stdin pipe, which is empty (slot_pipes_settle). False when it
 * does not fit in the pipe.
 */
static bool feed_warm(struct run *run, const struct buf *in)
{
	uint32_t len = (uint32_t)in->len;
	struct iovec iov[2] = {{&len, sizeof(len)}, {in->data, in->len}};
	size_t total = sizeof(len) + in->len;
	ssize_t n;

	if (in->len > UINT32_MAX)
		return false;
	if (total > 65536 && fcntl(run->in_fd, F_SETPIPE_SZ, (int)total) < 0)
		return false;
	n = writev(run->in_fd, iov, 2);
	if (n == (ssize_t)total) {
		run->in_fd = -1; /* the slot's: stays open */
		return true;
	}
	if (n > 0) {
		/* Part of an input went in: this child can serve no job now. */
		run->retired = true;
		run_kill(run, RUN_KILL_PROTOCOL);
	}
	return false;
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
	rc = build_input(r, jobs, njobs, previous_json, exec, &in);
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
	    !feed_warm(run, &in)) {
		/* Too big for a pipe: this warm child stays for the next job. */
		run = NULL;
	}
	if (run) {
		r->nwarm--;
	} else {
		req.task_index = tasks_index(r->reg, task->name);
		req.flags = exec ? SPAWN_F_EXEC : SPAWN_F_SHARED_OUTPUT;
		if (exec || in.len > SPAWN_INLINE_MAX) {
			if ((in_fd = make_memfd(&in)) < 0) {
				rc = in_fd;
				goto out;
			}
			if (!exec)
				req.flags |= SPAWN_F_INPUT_STDIN;
		} else {
			req.input_len = (uint32_t)in.len;
		}
		run = spawn_child(r, &req, in.data, in_fd, false, &rc);
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
	run_arm_deadline(run);
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
