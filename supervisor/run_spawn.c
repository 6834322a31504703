/*
 * run_spawn.c - asking the spawner for a job child (see run.c for a run's
 * life): the child's input, its pipes, the START request with the child's
 * ends attached by SCM_RIGHTS.
 *
 * Theory of operation. A cold child gets pipes of its own (a frame channel,
 * an output pipe and, for exec tasks, a stderr pipe), whose child ends are
 * sent and closed here, and its input inline in START or in a memfd on its
 * stdin. A warm child (forked ahead, run.c) gets its worker slot's pipes:
 * made once per slot and kept open at both ends here, so a job costs no
 * pipe2() and no close(); its input comes later through the slot's stdin
 * pipe (run_feed_warm). A slot's pipes go to the slot's next child only
 * when the last one, reaped, left nothing in them (run_slot_pipes_settle):
 * a C task cannot fork, so nobody else can write into them any more.
 * At startup each slot also gets its deadline timer, which the spawner
 * waits on (run_timers_give; run.c arms it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "limits.h"
#include "run_internal.h"
#include "tasks.h"

void run_slot_pipes_drop(struct slot_pipes *sp)
{
	int *fds[] = {sp->frame, sp->out, sp->in};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		for (int end = 0; end < 2; end++) {
			if (fds[i][end] >= 0)
				close(fds[i][end]);
			fds[i][end] = -1;
		}
	sp->watched = false;
}

static bool pipe_empty(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) == 0 && n == 0;
}

/*
 * A slot's pipes go to the slot's next child only when its last child, now
 * reaped, left nothing in them: what it wrote has been read (the drain in
 * on_exit_evt: run->drained says it emptied a pipe, which then needs no
 * FIONREAD), and it read all of its input. A C task cannot fork, so no
 * one else can write into them any more. Anything else: new pipes.
 */
void run_slot_pipes_settle(struct runner *r, struct run *run)
{
	struct slot_pipes *sp = &r->pipes[run->slot];

	if (run->pipes_bad || (!(run->drained & 1) && !pipe_empty(sp->frame[0])) ||
	    (!(run->drained & 2) && !pipe_empty(sp->out[0])) || !pipe_empty(sp->in[0]))
		run_slot_pipes_drop(sp);
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

/* The slot's pipes, made if need be: the daemon's ends non-blocking. */
int run_slot_pipes_ready(struct slot_pipes *sp)
{
	int rc;

	if (sp->frame[0] >= 0)
		return 0;
	sp->watched = false; /* new pipes: libev has to register them */
	if ((rc = nonblock_pipe(sp->frame)) < 0 || (rc = nonblock_pipe(sp->out)) < 0)
		goto fail;
	if (pipe2(sp->in, O_CLOEXEC) < 0 || fcntl(sp->in[1], F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	return 0;
fail:
	run_slot_pipes_drop(sp);
	return rc;
}

/* The run's input: see taskrun.h (C tasks) or the exec task contract. */
int run_build_input(struct runner *r, struct job **jobs, size_t njobs, const char *previous,
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

int run_memfd(const struct buf *in)
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

static int send_req(struct runner *r, const struct spawn_req *req, const char *inline_input,
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

/*
 * The slots' deadline timers (spawn_proto.h): made here and sent, one
 * TIMER each, before any START, so that no child runs in a slot without
 * one. The spawner waits on them; the daemon keeps its fds to arm them.
 */
int run_timers_give(struct runner *r)
{
	for (unsigned i = 0; i < r->nslots; i++) {
		struct spawn_req req = {.type = SPAWN_REQ_TIMER, .slot = i};
		int rc;

		r->timers[i] = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (r->timers[i] < 0)
			return -errno;
		if ((rc = send_req(r, &req, NULL, &r->timers[i], 1)) < 0)
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

/* A child's fds: its frame and output pipes (a slot's, or its own), an
 * exec task's stderr pipe, and its stdin. */
struct child_fds {
	int own_f[2], own_o[2], err[2];
	int *frame, *out;
	int stdin_fd;
	int send[SPAWN_MAX_FDS], nsend;
};

/* The pipes of a child in slot: the slot's (warm) or new ones. 0 or -errno. */
static int child_fds_make(struct runner *r, int slot, bool warm, bool exec, struct child_fds *c)
{
	int rc;

	if (warm) {
		struct slot_pipes *sp = &r->pipes[slot];

		if ((rc = run_slot_pipes_ready(sp)) < 0)
			return rc;
		c->frame = sp->frame;
		c->out = sp->out;
		c->stdin_fd = sp->in[0];
	} else if ((rc = nonblock_pipe(c->own_f)) < 0 || (rc = nonblock_pipe(c->own_o)) < 0) {
		return rc;
	}
	c->send[c->nsend++] = c->frame[1];
	c->send[c->nsend++] = c->out[1];
	if (exec) {
		if ((rc = nonblock_pipe(c->err)) < 0)
			return rc;
		c->send[c->nsend++] = c->err[1];
	}
	if (c->stdin_fd >= 0)
		c->send[c->nsend++] = c->stdin_fd;
	return 0;
}

/* Close what a cold child's START took along, or everything on failure. */
static void child_fds_close(struct child_fds *c, bool warm, bool all)
{
	for (int i = 0; i < 2; i++) {
		if (c->own_f[i] >= 0 && (all || i == 1))
			close(c->own_f[i]);
		if (c->own_o[i] >= 0 && (all || i == 1))
			close(c->own_o[i]);
		if (c->err[i] >= 0 && (all || i == 1))
			close(c->err[i]);
	}
	if (c->stdin_fd >= 0 && !warm)
		close(c->stdin_fd);
}

/* The run of a child that START asked for: its read ends watched. */
static void run_init(struct run *run, struct runner *r, const struct spawn_req *req, bool warm,
		     const struct child_fds *c)
{
	run->r = r;
	run->limits = limits_defaults(r->cfg, NULL);
	run->slot = req->slot;
	run->id = req->run_id;
	run->exec = req->flags & SPAWN_F_EXEC;
	run->slot_pipes = warm;
	run->in_fd = warm ? r->pipes[req->slot].in[1] : -1;
	run->frame_fd = c->frame[0];
	run->out_fd = c->out[0];
	run->err_fd = c->err[0];
	ev_io_init(&run->frame_w, run_on_io, run->frame_fd, EV_READ);
	ev_io_init(&run->out_w, run_on_io, run->out_fd, EV_READ);
	if (warm && r->pipes[req->slot].watched) {
		/* The slot's pipes, which an earlier run watched: the same
		 * pipes behind the same fds, so libev need not register them
		 * again (as after ev_io_modify(); ev_io_init() would cost an
		 * epoll_ctl per pipe per job that fails with EEXIST). */
		run->frame_w.events &= ~EV__IOFDSET;
		run->out_w.events &= ~EV__IOFDSET;
	}
	if (warm)
		r->pipes[req->slot].watched = true;
	run->frame_w.data = run->out_w.data = run->err_w.data = run->deadline.data = run;
	ev_io_start(r->loop, &run->frame_w);
	ev_io_start(r->loop, &run->out_w);
	if (run->err_fd >= 0) {
		ev_io_init(&run->err_w, run_on_io, run->err_fd, EV_READ);
		ev_io_start(r->loop, &run->err_w);
	}
	ev_init(&run->deadline, run_on_deadline);
}

struct run *run_spawn(struct runner *r, struct spawn_req *req, const char *inline_input,
		      int stdin_fd, bool warm, int *rc)
{
	struct child_fds c = {.own_f = {-1, -1}, .own_o = {-1, -1}, .err = {-1, -1},
			      .stdin_fd = stdin_fd};
	int slot = free_slot(r);
	struct run *run = NULL;

	c.frame = c.own_f;
	c.out = c.own_o;
	*rc = -EBUSY;
	if (slot < 0 ||
	    (*rc = child_fds_make(r, slot, warm, req->flags & SPAWN_F_EXEC, &c)) < 0)
		goto fail;
	if (c.stdin_fd >= 0)
		req->flags |= SPAWN_F_HAS_STDIN;
	req->type = SPAWN_REQ_START;
	req->slot = (uint32_t)slot;
	req->run_id = r->next_id++;
	/* Allocated before START: once that is sent, the child is ours. */
	if (!(run = calloc(1, sizeof(*run)))) {
		*rc = -ENOMEM;
		goto fail;
	}
	if ((*rc = send_req(r, req, inline_input, c.send, c.nsend)) < 0)
		goto fail;
	child_fds_close(&c, warm, false);
	run_init(run, r, req, warm, &c);
	r->slots[slot] = run;
	return run;
fail:
	free(run);
	child_fds_close(&c, warm, true);
	if (*rc == -EPIPE || *rc == -ECONNREFUSED || *rc == -ECONNRESET)
		r->broken = true;
	return NULL;
}

/*
 * Hand the input to a warm child: its size (uint32), then the bytes, into
 * the slot's stdin pipe, which is empty (slot_pipes_settle). False when it
 * does not fit in the pipe.
 */
bool run_feed_warm(struct run *run, const struct buf *in)
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
