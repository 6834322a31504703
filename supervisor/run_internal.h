/*
 * run_internal.h - what run.c (a run's life: start, deadline, kill, exit,
 * warm children), run_spawn.c (asking the spawner for a child),
 * run_io.c (reading it: frames, caps, results) and run_noop.c (--bench-noop:
 * no child) share.
 */
#ifndef VALET_RUN_INTERNAL_H
#define VALET_RUN_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "../sandbox/frame.h"
#include "../sandbox/spawn_proto.h"
#include "run.h"

#define RUN_TAIL_MAX 512
#define RUN_READ_CHUNK 65536
#define RUN_ERROR_MAX 65536 /* task error text allowed on top of the result cap */

struct buf {
	char *data;
	size_t len, cap;
};

struct run {
	struct runner *r;
	unsigned slot;
	uint64_t id;
	pid_t pid;
	bool exec;
	struct job **jobs;
	size_t njobs, cur;
	int64_t job_start_ns; /* the running job's start, for its wall time */
	int64_t kill_at_ns;   /* when the spawner kills the child (its slot's timer); 0 = never */
	enum run_kill killed;
	/* What the child runs with: its job's limits, or for a C-task
	 * pipeline in one child the largest of its jobs' (limits.h). */
	struct job_limits limits;

	bool noop;  /* --bench-noop: no child (run_noop.c) */
	bool warm;  /* forked ahead of time (its jobs arrive through in_fd) */
	bool retired; /* a warm run we stopped on purpose */
	bool slot_pipes; /* its fds are its slot's (struct slot_pipes): kept */
	bool pipes_bad;  /* ...and they saw EOF or an error: not reused */
	/* After the reap, the drain emptied the frame (1) and output (2)
	 * pipes: nobody writes into them any more, so they are empty. */
	unsigned drained;
	int in_fd;  /* warm runs: the write end of the child's stdin, until used */
	int frame_fd, out_fd, err_fd;
	ev_io frame_w, out_w, err_w;
	ev_timer deadline;

	struct buf frames;   /* unparsed frame bytes */
	struct buf stdout_b; /* exec: the result */
	size_t out_bytes;    /* bytes counted against limits.output_bytes */
	char tail[RUN_TAIL_MAX];
	size_t tail_len;

	/* The pending result of jobs[cur]. */
	bool has_result;
	char *result_json, *result_error;
	const char *malformed;
	/* The blocked call a SYSCALL frame named, when the frame carried the
	 * filter's trap data (filter.c); once a frame did not, or came after
	 * another, no frame of this child is believed (syscall_spoiled). */
	char syscall_name[32];
	bool syscall_spoiled;
	bool has_setup;
	struct sbx_error setup;
};

/*
 * A worker slot's pipes, made once and handed to one warm child after the
 * other (run.c): the daemon keeps both ends of each, so a job costs no
 * pipe2() and no close() here. -1 = not made (or dropped).
 */
struct slot_pipes {
	int frame[2], out[2], in[2];
	bool watched; /* a run has watched them: the fds are known to libev */
};

struct runner {
	struct ev_loop *loop;
	const struct config *cfg;
	const struct tasks *reg;
	int fd;
	bool broken;
	ev_io spawner_w;
	struct run **slots;  /* workers running + workers warm */
	struct slot_pipes *pipes; /* [nslots] */
	int *timers;         /* [nslots]: each slot's deadline timer, the spawner's too */
	unsigned nslots, running, workers, nwarm;
	bool warming_paused; /* a warm child died unused: fork on demand for now */
	bool quiesced;       /* shutting down: no new warm children */
	uint64_t next_id;
	struct runner_hooks hooks;
	void *arg;
	struct metrics *metrics; /* the core's counters (kill latency); may be NULL */
};

/* run.c */
void run_kill(struct run *run, enum run_kill why);
void run_next_job(struct run *run, size_t k);
void run_on_deadline(struct ev_loop *loop, ev_timer *w, int revents);
void run_free(struct runner *r, struct run *run);
/* The run is over: its slot freed, then run_done (spawned: a child was
 * forked for it). Frees run. */
void run_over(struct runner *r, struct run *run, bool spawned);

/* run_noop.c */
/* --bench-noop: jobs[0..njobs) run with no child, ending on the loop's
 * next iteration (run.h's contract of runner_start). 0 or -errno. */
int run_noop_start(struct runner *r, struct job **jobs, size_t njobs);

/* run_spawn.c */
/* Fork a child through the spawner, the child's pipe ends sent along. A
 * warm child (warm = true) gets its slot's pipes, stdin included, which
 * stay open here; any other gets a frame and an output pipe (and for exec
 * tasks a stderr pipe) of its own, and stdin_fd (may be -1), which is sent
 * and closed. Returns the new run (no jobs yet), or NULL with *rc set. */
struct run *run_spawn(struct runner *r, struct spawn_req *req, const char *inline_input,
		      int stdin_fd, bool warm, int *rc);
/* The run's input: see taskrun.h (C tasks) or the exec task contract. */
int run_build_input(struct runner *r, struct job **jobs, size_t njobs, const char *previous,
		    bool exec, struct buf *in);
int run_memfd(const struct buf *in); /* a memfd holding in, at offset 0; or -errno */
/* Hand the input to a warm child; false when it does not fit its pipe. */
bool run_feed_warm(struct run *run, const struct buf *in);
int run_slot_pipes_ready(struct slot_pipes *sp); /* made if need be; 0 or -errno */
/* A deadline timer per slot, handed to the spawner (TIMER); 0 or -errno. */
int run_timers_give(struct runner *r);
void run_slot_pipes_settle(struct runner *r, struct run *run); /* after a reap */
void run_slot_pipes_drop(struct slot_pipes *sp);

/* run_io.c */
int run_buf_add(struct buf *b, const char *s, size_t n);
int run_buf_adds(struct buf *b, const char *s);
void run_clear_pending(struct run *run);
int run_read_some(struct run *run, int fd, int which);
void run_stop_io(struct run *run, ev_io *w, int *fd);
void run_on_io(struct ev_loop *loop, ev_io *w, int revents);
void run_exec_result(struct run *run);
char *run_clean_tail(const struct run *run, char *out, size_t len);

#endif
