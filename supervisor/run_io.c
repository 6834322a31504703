/*
 * run_io.c - the daemon reading a job child: frames on the frame channel
 * (START/RESULT/SYSCALL/SETUP_ERROR, size-capped), stdout/stderr counted
 * against the caps with a tail kept for the failure reason, an exec task's
 * stdout taken as its result, and the KILL request to the spawner when a
 * cap is hit or the deadline passes. See run.c for the life of a run.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "filter.h"
#include "log.h"
#include "run_internal.h"
#include "../sandbox/spawn_proto.h"

static int buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

int run_buf_add(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n + 1) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int run_buf_adds(struct buf *b, const char *s)
{
	return run_buf_add(b, s, strlen(s));
}

void run_kill(struct run *run, enum run_kill why)
{
	struct spawn_req req = {.type = SPAWN_REQ_KILL, .slot = run->slot, .run_id = run->id};

	if (run->killed == RUN_KILL_NONE)
		run->killed = why;
	/* A KILL is tiny and the spawner drains its socket promptly. */
	while (send(run->r->fd, &req, sizeof(req), MSG_NOSIGNAL) < 0) {
		struct pollfd p = {run->r->fd, POLLOUT, 0};
		if (errno != EAGAIN && errno != EINTR)
			break;
		poll(&p, 1, 100);
	}
}

static void keep_tail(struct run *run, const char *data, size_t n)
{
	if (n >= RUN_TAIL_MAX) {
		memcpy(run->tail, data + n - RUN_TAIL_MAX, RUN_TAIL_MAX);
		run->tail_len = RUN_TAIL_MAX;
		return;
	}
	if (run->tail_len + n > RUN_TAIL_MAX) {
		size_t drop = run->tail_len + n - RUN_TAIL_MAX;
		memmove(run->tail, run->tail + drop, run->tail_len - drop);
		run->tail_len -= drop;
	}
	memcpy(run->tail + run->tail_len, data, n);
	run->tail_len += n;
}

void run_clear_pending(struct run *run)
{
	free(run->result_json);
	free(run->result_error);
	run->result_json = run->result_error = NULL;
	run->has_result = false;
	run->malformed = NULL;
}

/* RESULT payload: uint32 error_len, error bytes, result JSON text. */
static void take_result(struct run *run, const char *p, uint32_t len)
{
	uint32_t elen;
	json_t *v;

	run_clear_pending(run);
	run->has_result = true;
	if (len < sizeof(elen)) {
		run->malformed = "truncated result frame";
		return;
	}
	memcpy(&elen, p, sizeof(elen));
	if (elen > len - sizeof(elen)) {
		run->malformed = "truncated result frame";
		return;
	}
	if (elen) {
		v = json_stringn(p + sizeof(elen), elen);
		if (!v) {
			run->malformed = "error text is not valid UTF-8";
			return;
		}
		json_decref(v);
		run->result_error = strndup(p + sizeof(elen), elen);
	}
	size_t rlen = len - sizeof(elen) - elen;
	if (rlen) {
		v = json_loadb(p + sizeof(elen) + elen, rlen, JSON_DECODE_ANY, NULL);
		if (!v) {
			run->malformed = "result is not valid JSON";
			return;
		}
		json_decref(v);
		run->result_json = strndup(p + sizeof(elen) + elen, rlen);
	}
}

int32_t run_clamp_ms(int64_t v)
{
	return v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

void run_fill_outcome(struct run *run, struct job *job)
{
	job->outcome.pid = run->pid;
	job->outcome.wall_ms = run_clamp_ms((job_mono_ns() - run->job_start_ns) / 1000000);
}

void run_arm_deadline(struct run *run)
{
	struct job *job = run->jobs[run->cur];

	run->job_start_ns = job_mono_ns();
	ev_timer_stop(run->r->loop, &run->deadline);
	ev_timer_set(&run->deadline, (double)job->timeout_ms / 1000.0, 0.);
	ev_timer_start(run->r->loop, &run->deadline);
}

/*
 * The job's result: metadata is kept when the job completed or failed by its
 * own error (the original kept it too); error is the failure text.
 */
void run_report_done(struct run *run, struct job *job, enum job_status st, const char *why,
			bool by_task)
{
	bool keep = st == JOB_COMPLETED || by_task;

	run->r->hooks.job_done(run->r->arg, job, st, st == JOB_COMPLETED ? "" : why,
			       keep ? run->result_json : NULL, st == JOB_COMPLETED ? NULL : why);
}

/* jobs[cur] completed its part and the child moved on to job k. */
static void advance(struct run *run, size_t k)
{
	struct job *job = run->jobs[run->cur];
	struct outcome_facts f = {.exited = true, .has_result = run->has_result,
				  .malformed = run->malformed, .task_error = run->result_error};
	char reason[256];
	bool by_task;
	enum job_status st = outcome_classify(&f, reason, sizeof(reason), &by_task);

	run_fill_outcome(run, job);
	run_report_done(run, job, st, by_task ? run->result_error : reason, by_task);
	run_clear_pending(run);
	run->cur = k;
	run->r->hooks.job_started(run->r->arg, run->jobs[k]);
	run_arm_deadline(run);
}

static void on_frame(struct run *run, const struct frame_header *h, const char *p)
{
	int32_t nr;

	/* A warm child speaks only after it got its input (setup errors aside). */
	if (run->njobs == 0 && (h->type == FRAME_START || h->type == FRAME_RESULT)) {
		run_kill(run, RUN_KILL_PROTOCOL);
		return;
	}
	switch (h->type) {
	case FRAME_START:
		if (run->exec)
			break;
		if (h->index == run->cur && !run->has_result)
			return; /* confirms the job we already started */
		if (h->index == run->cur + 1 && h->index < run->njobs && run->has_result &&
		    !run->result_error && !run->malformed) {
			advance(run, h->index);
			return;
		}
		break;
	case FRAME_RESULT:
		if (run->exec || h->index != run->cur || run->has_result)
			break;
		take_result(run, p, h->len);
		return;
	case FRAME_SYSCALL:
		if (h->len != sizeof(nr))
			break;
		memcpy(&nr, p, sizeof(nr));
		filter_syscall_name(nr, run->syscall_name, sizeof(run->syscall_name));
		return;
	case FRAME_SETUP_ERROR:
		if (h->len != sizeof(run->setup))
			break;
		memcpy(&run->setup, p, sizeof(run->setup));
		run->setup.step[sizeof(run->setup.step) - 1] = '\0';
		run->has_setup = true;
		return;
	}
	run->malformed = "unexpected frame from the task";
	run_kill(run, RUN_KILL_PROTOCOL);
}

static void parse_frames(struct run *run)
{
	size_t off = 0, cap = run->r->cfg->max_result_bytes + RUN_ERROR_MAX;

	while (run->frames.len - off >= sizeof(struct frame_header)) {
		struct frame_header h;
		memcpy(&h, run->frames.data + off, sizeof(h));
		if (h.len > cap) {
			run_kill(run, RUN_KILL_RESULT_SIZE);
			run->frames.len = 0;
			return;
		}
		if (run->frames.len - off - sizeof(h) < h.len)
			break;
		on_frame(run, &h, run->frames.data + off + sizeof(h));
		off += sizeof(h) + h.len;
	}
	memmove(run->frames.data, run->frames.data + off, run->frames.len - off);
	run->frames.len -= off;
}

/* Read what is there now (at most a few chunks per wakeup). 1 = EOF/error. */
int run_read_some(struct run *run, int fd, int which)
{
	char chunk[RUN_READ_CHUNK];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return 1;
		if (which == 0) {
			if (run->killed != RUN_KILL_RESULT_SIZE && run_buf_add(&run->frames, chunk, (size_t)n) == 0)
				parse_frames(run);
		} else if (which == 1 && run->exec) {
			if (run->stdout_b.len + (size_t)n > run->r->cfg->max_result_bytes)
				run_kill(run, RUN_KILL_RESULT_SIZE);
			else
				run_buf_add(&run->stdout_b, chunk, (size_t)n);
		} else {
			run->out_bytes += (size_t)n;
			keep_tail(run, chunk, (size_t)n);
			if (run->out_bytes > run->limits.output_bytes)
				run_kill(run, RUN_KILL_OUTPUT);
		}
	}
	return 0;
}

void run_stop_io(struct run *run, ev_io *w, int *fd)
{
	ev_io_stop(run->r->loop, w);
	/* A slot's pipe stays open for the slot's next child (run.c). */
	if (*fd >= 0 && !run->slot_pipes)
		close(*fd);
	*fd = -1;
}

void run_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *run = w->data;
	int which = w == &run->frame_w ? 0 : w == &run->out_w ? 1 : 2;

	if (run_read_some(run, w->fd, which)) {
		run->pipes_bad = true; /* EOF or an error: the slot's pipes are not reused */
		run_stop_io(run, w, which == 0 ? &run->frame_fd : which == 1 ? &run->out_fd : &run->err_fd);
	}
}

void run_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	run_kill(w->data, RUN_KILL_TIMEOUT);
}

/* Exec tasks: stdout is the result, {"error": "..."} fails the job. */
void run_exec_result(struct run *run)
{
	json_t *v, *err;

	run_clear_pending(run);
	if (run->stdout_b.len == 0)
		return;
	run->has_result = true;
	v = json_loadb(run->stdout_b.data, run->stdout_b.len, JSON_DECODE_ANY, NULL);
	if (!v) {
		run->malformed = "the program's output is not valid JSON";
		return;
	}
	err = json_is_object(v) ? json_object_get(v, "error") : NULL;
	if (json_is_string(err))
		run->result_error = strdup(json_string_value(err));
	run->result_json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
}

char *run_clean_tail(struct run *run, char *out, size_t len)
{
	size_t n = run->tail_len < len - 1 ? run->tail_len : len - 1;

	memcpy(out, run->tail + run->tail_len - n, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20)
			out[i] = ' ';
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = '\0';
	char *s = out;
	while (*s == ' ')
		s++;
	return s;
}
