/*
 * fuzz_frame.c - libFuzzer harness of the daemon's side of the channel
 * between a job child and the daemon: supervisor/run_io.c, which reads the
 * frames the child writes (sandbox/frame.h: START, RESULT, SYSCALL,
 * SETUP_ERROR; frame_write() in sandbox/frame.c is the writer) and its
 * stdout/stderr, and turns them into the pending result of a run.
 *
 * The child is the attacker here, so the input is what it writes. Layout:
 *   byte 0   flags: bits 0-1 the run's number of jobs (0: a pre-forked
 *            child that has not been given its input yet), bit 2 an exec
 *            task, bit 3 the child exits with status 1 (else 0), bit 4 a
 *            1 KiB result cap (else 1 MiB), bit 5 a 1 KiB output cap
 *   byte 1   chunk size - 1: how many bytes each write() delivers (at
 *            least 1/64th of the input, so that an input costs at most
 *            some 200 system calls per stream)
 *   2-3, 4-5 the lengths (little endian) of what goes to stdout and to
 *            stderr; the rest of the input is the frame channel.
 * The three streams go through real non-blocking pipes, a chunk of each in
 * turn, into run_read_some() (as the event loop would call it), so frames
 * arrive split at every possible place. At the end the child "exits" and
 * the harness does what run.c does at the EXIT event: an exec task's
 * stdout becomes its result, and outcome_classify() decides the status.
 *
 * run.c itself (the spawner socket, the deadline timer, the job records)
 * cannot run here: run_kill() and run_next_job() are stubs that keep
 * run.c's effect on the run (the kill reason; the next job index and a
 * cleared result) and check that run_io.c calls them as run.c expects.
 *
 * Checks: a pending result is consistent (a result is valid JSON, an
 * error text valid UTF-8; neither without has_result), the setup step and
 * the syscall name are C strings, what stays buffered is less than one
 * frame, and a frame over the cap kills the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../../supervisor/outcome.h"
#include "../../supervisor/run_internal.h"
#include "fuzz.h"

#define KIB 1024
#define MIB (1024 * 1024)

static unsigned fuzz_kills;

/* run.c's run_kill() without the KILL request to the spawner. */
void run_kill(struct run *run, enum run_kill why)
{
	FUZZ_CHECK(why != RUN_KILL_NONE);
	if (run->killed == RUN_KILL_NONE)
		run->killed = why;
	fuzz_kills++;
}

/* run.c's run_next_job(): jobs[cur] is reported done, k starts. */
void run_next_job(struct run *run, size_t k)
{
	struct outcome_facts f = {.exited = true, .has_result = run->has_result,
				  .malformed = run->malformed, .task_error = run->result_error};
	char reason[256];
	bool by_task;
	enum job_status st;

	FUZZ_CHECK(!run->exec && k == run->cur + 1 && k < run->njobs);
	FUZZ_CHECK(run->has_result && !run->malformed && !run->result_error);
	st = outcome_classify(&f, reason, sizeof(reason), &by_task);
	FUZZ_CHECK(st == JOB_COMPLETED);
	run_clear_pending(run);
	run->cur = k;
}

static void check_pending(const struct run *run)
{
	json_t *v;

	/* malformed may come without a result: an unexpected frame. */
	if (run->malformed)
		fuzz_touch(run->malformed);
	if (!run->has_result) {
		FUZZ_CHECK(!run->result_json && !run->result_error);
		return;
	}
	if (run->result_json) {
		v = json_loads(run->result_json, JSON_DECODE_ANY, NULL);
		FUZZ_CHECK(v != NULL);
		json_decref(v);
	}
	if (run->result_error) {
		v = json_string(run->result_error);
		FUZZ_CHECK(v != NULL);
		json_decref(v);
	}
}

/* What stays in the frame buffer is the start of one frame, never a whole one. */
static void check_buffered(const struct run *run, size_t cap)
{
	struct frame_header h;

	FUZZ_CHECK(run->frames.len <= run->frames.cap);
	if (run->frames.len < sizeof(h))
		return;
	memcpy(&h, run->frames.data, sizeof(h));
	if (h.len > cap) /* only once the child was killed for it */
		FUZZ_CHECK(run->killed != RUN_KILL_NONE);
	else
		FUZZ_CHECK(run->frames.len - sizeof(h) < h.len);
}

static int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};

static void feed(struct run *run, int which, const uint8_t *p, size_t n)
{
	if (!n)
		return;
	FUZZ_CHECK(write(pipes[which][1], p, n) == (ssize_t)n);
	FUZZ_CHECK(run_read_some(run, pipes[which][0], which) == 0);
}

/* What run.c does when the child has exited: the outcome of jobs[cur]. */
static void child_exited(struct run *run, const struct config *cfg, int exit_code)
{
	char reason[1024], tail[RUN_TAIL_MAX + 1];
	struct outcome_facts f;
	enum job_status st;
	bool by_task;

	FUZZ_CHECK(memchr(run->syscall_name, '\0', sizeof(run->syscall_name)) != NULL);
	if (run->has_setup)
		FUZZ_CHECK(memchr(run->setup.step, '\0', sizeof(run->setup.step)) != NULL);
	if (run->njobs == 0) /* a pre-forked child died unused: run.c logs the setup error */
		return;
	if (run->exec && run->killed == RUN_KILL_NONE)
		run_exec_result(run);
	check_pending(run);
	f = (struct outcome_facts){
	    .killed = run->killed,
	    .timeout_ms = 1000,
	    .shutdown_grace_ms = cfg->shutdown_grace_ms,
	    .max_output_bytes = run->limits.output_bytes,
	    .max_result_bytes = cfg->max_result_bytes,
	    .exited = true,
	    .exit_code = exit_code,
	    .syscall_name = run->syscall_name,
	    .setup_step = run->has_setup ? run->setup.step : NULL,
	    .setup_errno = run->setup.err,
	    .stderr_tail = run->exec ? run_clean_tail(run, tail, sizeof(tail)) : NULL,
	    .has_result = run->has_result,
	    .malformed = run->malformed,
	    .task_error = run->result_error,
	};
	st = outcome_classify(&f, reason, sizeof(reason), &by_task);
	FUZZ_CHECK(st == JOB_COMPLETED || st == JOB_FAILED || st == JOB_CANCELLED);
	FUZZ_CHECK(memchr(reason, '\0', sizeof(reason)) != NULL);
	FUZZ_CHECK(st != JOB_COMPLETED || reason[0] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg = {.shutdown_grace_ms = 10000};
	struct runner r = {.cfg = &cfg};
	struct run run;
	size_t chunk, out_len, err_len, off[3], len[3], cap;
	const uint8_t *stream[3];
	uint8_t flags;

	if (pipes[0][0] < 0)
		for (int i = 0; i < 3; i++)
			FUZZ_CHECK(pipe2(pipes[i], O_NONBLOCK | O_CLOEXEC) == 0);
	if (size < 6)
		return 0;
	flags = data[0];
	chunk = (size_t)data[1] + 1;
	if (chunk < (size + 63) / 64)
		chunk = (size + 63) / 64;
	out_len = (size_t)data[2] | (size_t)data[3] << 8;
	err_len = (size_t)data[4] | (size_t)data[5] << 8;
	data += 6;
	size -= 6;
	out_len = out_len < size ? out_len : size;
	err_len = err_len < size - out_len ? err_len : size - out_len;
	stream[1] = data;
	len[1] = out_len;
	stream[2] = data + out_len;
	len[2] = err_len;
	stream[0] = data + out_len + err_len;
	len[0] = size - out_len - err_len;

	cfg.max_result_bytes = flags & 0x10 ? KIB : MIB;
	cap = cfg.max_result_bytes + RUN_ERROR_MAX;
	memset(&run, 0, sizeof(run));
	run.r = &r;
	run.njobs = flags & 3;
	run.exec = flags & 4;
	run.limits.output_bytes = flags & 0x20 ? KIB : MIB;
	run.frame_fd = run.out_fd = run.err_fd = -1;
	fuzz_kills = 0;

	memset(off, 0, sizeof(off));
	while (off[0] < len[0] || off[1] < len[1] || off[2] < len[2]) {
		for (int which = 0; which < 3; which++) {
			size_t n = len[which] - off[which] < chunk ? len[which] - off[which] : chunk;

			feed(&run, which, stream[which] + off[which], n);
			off[which] += n;
			check_buffered(&run, cap);
			check_pending(&run);
			FUZZ_CHECK(run.tail_len <= RUN_TAIL_MAX);
			FUZZ_CHECK(run.stdout_b.len <= cfg.max_result_bytes);
			FUZZ_CHECK(run.cur <= (run.njobs ? run.njobs - 1 : 0));
		}
	}
	FUZZ_CHECK(run.out_bytes <= len[1] + len[2]);
	FUZZ_CHECK(fuzz_kills == 0 || run.killed != RUN_KILL_NONE);
	child_exited(&run, &cfg, flags & 8 ? 1 : 0);

	run_clear_pending(&run);
	free(run.frames.data);
	free(run.stdout_b.data);
	return 0;
}
