/*
 * run_io.c - the daemon reading a job child: frames on the frame channel
 * (START/RESULT/SYSCALL/SETUP_ERROR, size-capped), stdout/stderr counted
 * against the caps with a tail kept for the failure reason, an exec task's
 * stdout taken as its result; a cap that is hit kills the child. See run.c
 * for the life of a run. Nothing the child says decides how it ended: a
 * SYSCALL frame only names the call of a seccomp kill the wait status
 * shows (take_syscall), and the text a task gives (its error, its stderr
 * tail) reaches a failure_reason with its control characters blanked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../sandbox/spawn_proto.h"
#include "filter.h"
#include "log.h"
#include "run_internal.h"

/*
 * Under ASan, what a buffer holds past its terminating NUL (up to its
 * capacity) is poisoned, as ASan's container annotations do for a
 * std::vector, and the frame buffer's NUL too (its bytes are not a
 * string): a read past what a child sent is reported although it stays
 * inside the allocation (tests/fuzz/fuzz_frame, make asan). Freeing or
 * growing a buffer needs no unpoisoning: ASan's allocator resets it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RUN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RUN_ASAN 1
#endif
#endif
#ifdef RUN_ASAN
#include <sanitizer/asan_interface.h>
#define buf_poison_from(b, from)                                                                   \
	ASAN_POISON_MEMORY_REGION((b)->data + (from), (b)->cap - (from))
#define buf_unpoison(b) ASAN_UNPOISON_MEMORY_REGION((b)->data, (b)->cap)
#else
#define buf_poison_from(b, from) ((void)(b))
#define buf_unpoison(b) ((void)(b))
#endif

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
	buf_unpoison(b);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	buf_poison_from(b, b->len + 1);
	return 0;
}

int run_buf_adds(struct buf *b, const char *s)
{
	return run_buf_add(b, s, strlen(s));
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

/*
 * A result's JSON text, parsed. No JSON text holds a NUL byte, but
 * jansson's parser skips one after a number or a literal ("[1\0]" reads
 * as [1]), and a C task's result is then kept as a C string, cut at the
 * NUL ("[1"): refused here, as invalid JSON. Found by tests/fuzz/fuzz_frame.
 */
static json_t *load_result(const char *text, size_t len)
{
	if (memchr(text, '\0', len))
		return NULL;
	return json_loadb(text, len, JSON_DECODE_ANY, NULL);
}

/*
 * Text a task chose, for a failure_reason, a log or a terminal: its
 * control characters (C0, DEL, and C1 as UTF-8) become spaces, so that it
 * cannot break a line or drive a terminal. Everything else stays, and the
 * length too (a C1 character is two bytes, two spaces: still UTF-8).
 */
static void blank_controls(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			s[i] = ' ';
		} else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
			   (unsigned char)s[i + 1] <= 0x9f) {
			s[i] = s[i + 1] = ' ';
			i++;
		}
	}
}

/* The task's own error text, as the failure_reason will say it. */
static char *take_error(const char *s, size_t n)
{
	char *e = strndup(s, n);

	if (e)
		blank_controls(e, strlen(e));
	return e;
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
		run->result_error = take_error(p + sizeof(elen), elen);
	}
	size_t rlen = len - sizeof(elen) - elen;
	if (rlen) {
		v = load_result(p + sizeof(elen) + elen, rlen);
		if (!v) {
			run->malformed = "result is not valid JSON";
			return;
		}
		json_decref(v);
		run->result_json = strndup(p + sizeof(elen) + elen, rlen);
	}
}

/*
 * A SYSCALL frame: the reporter's word on which call seccomp trapped. The
 * task can write such a frame itself, so the name is kept only when the
 * frame carries the filter's trap data, which only the kernel's siginfo of
 * a trap holds (filter.c), and only for a child's first and only report:
 * after a real trap the task never runs again, so a second report, or one
 * with other data, is the task's - and then it might have tried every
 * value, so none of its reports is believed. Whether the child died by
 * the filter at all is for the wait status to say (outcome.c).
 */
static void take_syscall(struct run *run, const char *p)
{
	struct frame_syscall rep;

	memcpy(&rep, p, sizeof(rep));
	if (run->syscall_name[0] || rep.trap_data != (int32_t)filter_trap_data() ||
	    filter_trap_data() == 0)
		run->syscall_spoiled = true;
	if (run->syscall_spoiled) {
		run->syscall_name[0] = '\0';
		return;
	}
	filter_syscall_name(rep.nr, run->syscall_name, sizeof(run->syscall_name));
	if (!run->syscall_name[0])
		run->syscall_spoiled = true; /* no call of this arch: not the kernel's */
}

static void on_frame(struct run *run, const struct frame_header *h, const char *p)
{
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
			run_next_job(run, h->index);
			return;
		}
		break;
	case FRAME_RESULT:
		if (run->exec || h->index != run->cur || run->has_result)
			break;
		take_result(run, p, h->len);
		return;
	case FRAME_SYSCALL:
		if (h->len != sizeof(struct frame_syscall))
			break;
		take_syscall(run, p);
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

	buf_poison_from(&run->frames, run->frames.len);
	while (run->frames.len - off >= sizeof(struct frame_header)) {
		struct frame_header h;
		memcpy(&h, run->frames.data + off, sizeof(h));
		if (h.len > cap) {
			run_kill(run, RUN_KILL_RESULT_SIZE);
			run->frames.len = 0;
			buf_poison_from(&run->frames, 0);
			return;
		}
		if (run->frames.len - off - sizeof(h) < h.len)
			break;
		on_frame(run, &h, run->frames.data + off + sizeof(h));
		off += sizeof(h) + h.len;
	}
	memmove(run->frames.data, run->frames.data + off, run->frames.len - off);
	run->frames.len -= off;
	buf_poison_from(&run->frames, run->frames.len);
}

/*
 * Read what is there now (at most a few chunks per wakeup): 0 when the pipe
 * was emptied, 1 at EOF or an error, 2 when more may be there. A read of
 * less than a chunk took all the pipe held (pipe_read() stops when it is
 * empty): no second read() to see EAGAIN; anything written later makes
 * the fd readable again (libev's epoll is level-triggered).
 */
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
		if ((size_t)n < sizeof(chunk))
			return 0;
	}
	return 2;
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

	if (run_read_some(run, w->fd, which) == 1) {
		run->pipes_bad = true; /* EOF or an error: the slot's pipes are not reused */
		run_stop_io(run, w, which == 0 ? &run->frame_fd : which == 1 ? &run->out_fd : &run->err_fd);
	}
}

/* Exec tasks: stdout is the result, {"error": "..."} fails the job. */
void run_exec_result(struct run *run)
{
	json_t *v, *err;

	run_clear_pending(run);
	if (run->stdout_b.len == 0)
		return;
	run->has_result = true;
	v = load_result(run->stdout_b.data, run->stdout_b.len);
	if (!v) {
		run->malformed = "the program's output is not valid JSON";
		return;
	}
	err = json_is_object(v) ? json_object_get(v, "error") : NULL;
	if (json_is_string(err))
		run->result_error = take_error(json_string_value(err), json_string_length(err));
	run->result_json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
}

char *run_clean_tail(const struct run *run, char *out, size_t len)
{
	size_t n = run->tail_len < len - 1 ? run->tail_len : len - 1;

	memcpy(out, run->tail + run->tail_len - n, n);
	out[n] = '\0';
	blank_controls(out, n);
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = '\0';
	char *s = out;
	while (*s == ' ')
		s++;
	return s;
}
