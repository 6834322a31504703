/*
 * test_spawner.c - a run from START to EXIT, with real processes: the
 * spawner program (sandbox/spawner.c, sandbox/spawn_setup.c) and the C-task
 * runtime of its job children (sandbox/taskrun.c). How a run is ended early
 * - KILL, deadline timers, the daemon gone - is test_spawner_kill.c's; the
 * harness is spawner_run.h's.
 *
 * Theory of operation: each test starts a spawner of this program (see
 * spawner_run.h), sends START requests and reads what comes back: the
 * frames (a START and a RESULT per job, RESULT's payload being uint32
 * error_len, error, result JSON), the captured stdout and stderr, and the
 * wait status in the EXIT event. The C tasks return a result, hand results
 * on along a pipeline, fail, crash and make a system call their profile
 * refuses; exec tasks run real programs, each under its own profile; the
 * input comes inline or on stdin. Bad input and bad requests are refused
 * without harming a busy slot, and every slot runs a child at the same
 * time. test_setup_version reads a setup document without a spawner.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <valet.h>

#include "../../sandbox/frame.h"
#include "../../sandbox/registry.h"
#include "../../sandbox/spawner.h"
#include "../../sandbox/spawn_proto.h"
#include "../../supervisor/config.h"
#include "../../supervisor/filter.h"
#include "../../supervisor/isolation.h"
#include "../../supervisor/spawn.h"
#include "../../supervisor/tasks.h"

#include "spawner_run.h"

/* ---- frames ----------------------------------------------------------------------------- */

/* Frame n is RESULT for job index: error (NULL = none) and result (JSON
 * text compared as JSON; NULL = no result). */
static void expect_result_frame(const struct run *r, int n, int index, const char *error,
				const char *result)
{
	struct frame_header h = {0};
	const unsigned char *p = frame_at(r, n, &h);
	uint32_t elen;
	size_t rlen;

	if (!p)
		fail_msg("no frame %d", n);
	assert_int_equal(h.type, FRAME_RESULT);
	assert_int_equal(h.index, index);
	assert_true(h.len >= sizeof(elen));
	memcpy(&elen, p, sizeof(elen));
	assert_true(sizeof(elen) + elen <= h.len);
	if (error) {
		assert_int_equal(elen, strlen(error));
		assert_memory_equal(p + sizeof(elen), error, elen);
	} else {
		assert_int_equal(elen, 0);
	}
	rlen = h.len - sizeof(elen) - elen;
	if (!result) {
		assert_int_equal(rlen, 0);
	} else {
		json_error_t jerr;
		json_t *got = json_loadb((const char *)p + sizeof(elen) + elen, rlen, 0, &jerr);
		json_t *want = json_loads(result, 0, NULL);

		if (!got)
			fail_msg("result of job %d is not JSON: %s", index, jerr.text);
		assert_non_null(want);
		if (!json_equal(got, want))
			fail_msg("result of job %d: got %.*s, want %s", index, (int)rlen,
				 (const char *)p + sizeof(elen) + elen, result);
		json_decref(got);
		json_decref(want);
	}
}

/* Frames 2*job and 2*job + 1 are START and RESULT of job. */
static void expect_job(const struct run *r, int job, const char *error, const char *result)
{
	expect_start_frame(r, 2 * job, job);
	expect_result_frame(r, 2 * job + 1, job, error, result);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_ok(void **state)
{
	struct run *r = run_init(0, 2, 1001);

	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{\"a\":1,\"s\":\"x\"}"));
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 2);
	expect_job(r, 0, NULL, "{\"a\":1,\"s\":\"x\"}");
	/* stdout and stderr both land in the shared pipe. */
	assert_string_equal(r->out, "out\nerr\n");
}

static void test_separate_stderr(void **state)
{
	struct run *r = run_init(0, 1, 1002);

	/* Without SPAWN_F_SHARED_OUTPUT, stderr is the third fd. Params that
	 * are not an object reach the task as {}. */
	run_to_end(r, T_OK, SPAWN_F_HAS_STDIN | SPAWN_F_INPUT_STDIN, one_job(T_OK, "[]"));
	expect_status(r, 0, 0);
	expect_result_frame(r, 1, 0, NULL, "{}");
	assert_string_equal(r->out, "out\n");
	assert_string_equal(r->err, "err\n");
}

static void test_pipeline(void **state)
{
	char input[SPAWN_INLINE_MAX];
	struct run *r = run_init(0, 1, 2);

	snprintf(input, sizeof(input),
		 "{\"previous\":{\"p\":2},\"jobs\":["
		 "{\"task\":%d,\"use_previous\":true,\"params\":{}},"
		 "{\"task\":%d,\"use_previous\":false,\"params\":{\"n\":1}},"
		 "{\"task\":%d,\"use_previous\":true,\"params\":{}},"
		 "{\"task\":%d,\"use_previous\":false,\"params\":{}}]}",
		 T_PREV, T_OK, T_PREV, T_PREV);
	run_to_end(r, T_PREV, SPAWN_F_SHARED_OUTPUT, input);
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 8);
	expect_job(r, 0, NULL, "{\"p\":2}");
	expect_job(r, 1, NULL, "{\"n\":1}");
	/* Each job sees the result of the one before it, when it asks. */
	expect_job(r, 2, NULL, "{\"n\":1}");
	expect_job(r, 3, NULL, NULL);
}

static void test_fail(void **state)
{
	char input[SPAWN_INLINE_MAX];
	struct run *r = run_init(0, 3, 3);

	snprintf(input, sizeof(input),
		 "{\"previous\":null,\"jobs\":["
		 "{\"task\":%d,\"use_previous\":false,\"params\":{}},"
		 "{\"task\":%d,\"use_previous\":false,\"params\":{}}]}",
		 T_FAIL, T_OK);
	run_to_end(r, T_FAIL, SPAWN_F_SHARED_OUTPUT, input);
	/* The task failed, the process did not. */
	expect_status(r, 0, 0);
	/* The run stops after the failed job: no START for job 1. */
	assert_int_equal(frame_count(r), 2);
	expect_job(r, 0, "boom 7", "{\"ignored\":1}");
	assert_string_equal(r->out, "");
}

static void test_crash(void **state)
{
	struct run *r = run_init(0, 0, 4);

	run_to_end(r, T_CRASH, SPAWN_F_SHARED_OUTPUT, one_job(T_CRASH, "{}"));
	expect_status(r, 0, SIGSEGV);
	assert_int_equal(frame_count(r), 1);
	expect_start_frame(r, 0, 0);
}

static void test_blocked_syscall(void **state)
{
	struct run *r = run_init(0, 0, 5);
	struct frame_header h = {0};
	const unsigned char *p;
	struct frame_syscall rep;

	run_to_end(r, T_BLOCKED, SPAWN_F_SHARED_OUTPUT, one_job(T_BLOCKED, "{}"));
	expect_status(r, 0, SIGSYS);
	assert_int_equal(frame_count(r), 2);
	expect_start_frame(r, 0, 0);
	p = frame_at(r, 1, &h);
	assert_non_null(p);
	assert_int_equal(h.type, FRAME_SYSCALL);
	assert_int_equal(h.len, sizeof(rep));
	memcpy(&rep, p, sizeof(rep));
	assert_int_equal(rep.nr, SYS_getuid);
	/* The filter's trap data, through the spawner's own copy of the
	 * program: the secret the daemon believes a report by (filter.c). */
	assert_int_not_equal(filter_trap_data(), 0);
	assert_int_equal(rep.trap_data, filter_trap_data());
}

static void test_stdin_input(void **state)
{
	size_t n = SPAWN_INLINE_MAX * 3;
	char *big = malloc(n + 1), *input = malloc(n + 256), *want = malloc(n + 64);
	struct run *r = run_init(0, 0, 9);

	assert_true(big && input && want);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\0';
	snprintf(input, n + 256,
		 "{\"previous\":null,\"jobs\":[{\"task\":%d,\"use_previous\":false,"
		 "\"params\":{\"data\":\"%s\"}}]}",
		 T_OK, big);
	snprintf(want, n + 64, "{\"data\":\"%s\"}", big);
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN | SPAWN_F_INPUT_STDIN, input);
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 2);
	expect_result_frame(r, 1, 0, NULL, want);
	/* stderr is still the stdout pipe, not the input fd. */
	assert_string_equal(r->out, "out\nerr\n");
	free(big);
	free(input);
	free(want);
}

static void test_bad_input(void **state)
{
	struct run *r = run_init(0, 0, 10);
	struct frame_header h = {0};
	struct sbx_error e;
	const unsigned char *p;

	/* Not JSON: the runtime gives up before any frame. */
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, "{not json");
	expect_status(r, 125, 0);
	assert_int_equal(frame_count(r), 0);

	/* An exec task's index without SPAWN_F_EXEC is no C task. */
	r = run_init(0, 0, 11);
	run_to_end(r, T_ECHO, SPAWN_F_SHARED_OUTPUT, one_job(T_ECHO, "{}"));
	expect_status(r, 125, 0);
	assert_int_equal(frame_count(r), 0);

	/* A C job whose task index the registry does not have. */
	r = run_init(0, 0, 12);
	run_to_end(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(99, "{}"));
	expect_status(r, 125, 0);
	assert_int_equal(frame_count(r), 0);

	/* An exec run of an unknown task: a setup error frame. */
	r = run_init(0, 0, 13);
	run_to_end(r, 99, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN, "{}");
	expect_status(r, 126, 0);
	assert_int_equal(frame_count(r), 1);
	p = frame_at(r, 0, &h);
	assert_non_null(p);
	assert_int_equal(h.type, FRAME_SETUP_ERROR);
	assert_int_equal(h.len, sizeof(e));
	memcpy(&e, p, sizeof(e));
	assert_string_equal(e.step, "task lookup");
	assert_int_equal(e.err, ENOENT);
}

static void test_bad_requests(void **state)
{
	struct run *busy = run_init(0, 2, 20), *r;
	struct spawn_evt evt;
	char c;

	/* A slot beyond max_slots. */
	r = run_init(1, MAX_SLOTS, 21);
	start_run(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"), -1);
	wait_evt(SPAWN_EVT_EXIT, MAX_SLOTS, 21, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, EINVAL);
	assert_int_equal(evt.pid, 0);
	/* The spawner closed the fds it got: no child holds the pipes. */
	assert_int_equal(poll(&(struct pollfd){r->frame_fd, POLLIN, 0}, 1, DEADLINE_MS), 1);
	assert_int_equal(read(r->frame_fd, &c, 1), 0);

	/* Only one fd (the frame channel). */
	r = run_init(1, 0, 22);
	start_run(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"), 1);
	wait_evt(SPAWN_EVT_EXIT, 0, 22, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, EINVAL);
	assert_int_equal(poll(&(struct pollfd){r->frame_fd, POLLIN, 0}, 1, DEADLINE_MS), 1);
	assert_int_equal(read(r->frame_fd, &c, 1), 0);

	/* A slot that is still busy. */
	start_run(busy, T_LOOP, SPAWN_F_SHARED_OUTPUT, one_job(T_LOOP, "{}"), -1);
	expect_started(busy);
	r = run_init(1, 2, 23);
	start_run(r, T_OK, SPAWN_F_SHARED_OUTPUT, one_job(T_OK, "{}"), -1);
	wait_evt(SPAWN_EVT_EXIT, 2, 23, &evt, DEADLINE_MS);
	assert_int_equal(evt.spawn_err, EINVAL);

	/* A message shorter than a request, and an unknown type: ignored. */
	{
		uint32_t tiny = SPAWN_REQ_KILL;
		struct spawn_req odd = {.type = 77, .slot = 2, .run_id = 20};

		assert_int_equal(send(fx.fd, &tiny, sizeof(tiny), MSG_NOSIGNAL), sizeof(tiny));
		assert_int_equal(send_req(&odd, NULL, NULL, 0), 0);
		/* START whose input_len does not match the message. */
		odd.type = SPAWN_REQ_START;
		odd.slot = 3;
		odd.input_len = 100;
		assert_int_equal(send(fx.fd, &odd, sizeof(odd), MSG_NOSIGNAL), sizeof(odd));
		expect_no_evt(200);
	}

	/* The busy run is unharmed and still killable. */
	assert_int_equal(kill(busy->pid, 0), 0);
	send_kill(2, 20);
	finish(busy);
	expect_status(busy, 0, SIGKILL);
}

/* The state letter of /proc/PID/stat ('S', 'R', 'Z', ...); '?' when gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

/*
 * Every slot's child at the same time: each gets its input through a pipe
 * that the test writes only once all four have started, so all four are
 * alive together - none has ended (no EXIT, not a zombie) or written a
 * frame. Then the inputs go in reverse order, and each child answers with
 * its own result while the others still wait.
 */
static void test_concurrent(void **state)
{
	const uint32_t flags = SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN | SPAWN_F_INPUT_STDIN;
	char params[64];
	int in_wr[MAX_SLOTS];

	for (int i = 0; i < MAX_SLOTS; i++) {
		struct run *r = run_init(i, (uint32_t)(MAX_SLOTS - 1 - i), 100 + (uint64_t)i);
		int p[2];

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		start_run_stdin(r, T_OK, flags, NULL, -1, p[0]);
		close(p[0]);
		in_wr[i] = p[1];
	}
	for (int i = 0; i < MAX_SLOTS; i++)
		expect_started(&runs[i]);
	expect_no_evt(200);
	for (int i = 0; i < MAX_SLOTS; i++) {
		char st = proc_state(runs[i].pid);

		if (st != 'S' && st != 'R' && st != 'D')
			fail_msg("child %d (pid %d) is in state %c while all should run", i,
				 (int)runs[i].pid, st);
		pump(&runs[i], 0);
		assert_int_equal(frame_count(&runs[i]), 0);
		for (int j = 0; j < i; j++)
			assert_true(runs[i].pid != runs[j].pid);
	}
	for (int i = MAX_SLOTS - 1; i >= 0; i--) {
		const char *input;

		snprintf(params, sizeof(params), "{\"i\":%d}", i);
		input = one_job(T_OK, params);
		assert_int_equal(write(in_wr[i], input, strlen(input)), (ssize_t)strlen(input));
		close(in_wr[i]);
		finish(&runs[i]);
		expect_status(&runs[i], 0, 0);
		expect_result_frame(&runs[i], 1, 0, NULL, params);
		for (int j = 0; j < i; j++)
			assert_int_equal(proc_state(runs[j].pid), 'S');
	}
}

static void test_exec(void **state)
{
	struct run *r = run_init(0, 0, 30);

	/* An exec task: the frame channel closes at execve, the program's
	 * output is captured; its input comes on stdin. */
	run_to_end(r, T_ECHO, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT | SPAWN_F_HAS_STDIN, "{}");
	expect_status(r, 0, 0);
	assert_int_equal(frame_count(r), 0);
	assert_string_equal(r->out, "hello exec\n");
}

static void test_exec_profile(void **state)
{
	struct run *r = run_init(0, 0, 50);

	/* Each exec task runs under its own profile: only exec+net may open
	 * an IPv4 socket (perl exits 3 when socket() fails). */
	run_to_end(r, T_INET_NET, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT, "{}");
	expect_status(r, 0, 0);
	r = run_init(0, 0, 51);
	run_to_end(r, T_INET, SPAWN_F_EXEC | SPAWN_F_SHARED_OUTPUT, "{}");
	expect_status(r, 3, 0);
}

/* A setup document of another protocol version (a program built against
 * another libvalet than valetd's) is refused with a sentence that says so. */
static void test_setup_version(void **state)
{
	static const char *const docs[] = {"{\"version\": 999, \"slots\": 1}", "{\"slots\": 1}"};
	struct spawner_setup s;
	char err[512];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		int fd = memfd_create("test-setup", MFD_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, docs[i], strlen(docs[i])), (ssize_t)strlen(docs[i]));
		err[0] = '\0';
		assert_int_equal(spawn_setup_read(fd, &s, registry_global(), err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "spawner protocol"));
		spawn_setup_free(&s);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_separate_stderr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pipeline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blocked_syscall, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stdin_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_profile, setup, teardown),
	    cmocka_unit_test(test_setup_version),
	};
	int rc = fixture_main(argc, argv);

	return rc >= 0 ? rc : cmocka_run_group_tests(tests, group_setup, group_teardown);
}
