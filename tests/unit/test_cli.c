/*
 * test_cli.c - the valet client's parts that need no server: statuses to
 * exit statuses, values as table cells, tables and key/value lines, JSON
 * input from text, files and their errors. (The commands against a real
 * valetd: tests/integration/test_cli.py.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../api/cli/cli.h"

/* What fn printed on stdout, as a new string. */
static char *captured(void (*fn)(const struct cli *, json_t *), const struct cli *cli, json_t *v)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDOUT_FILENO);
	char *out = calloc(1, 65536);
	size_t n;

	assert_non_null(tmp);
	assert_non_null(out);
	fflush(stdout);
	dup2(fileno(tmp), STDOUT_FILENO);
	fn(cli, v);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, 65535, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static void test_exit_statuses(void **state)
{
	assert_int_equal(cli_http_exit_for(200), CLI_OK);
	assert_int_equal(cli_http_exit_for(202), CLI_OK);
	assert_int_equal(cli_http_exit_for(204), CLI_OK);
	assert_int_equal(cli_http_exit_for(400), CLI_ERROR);
	assert_int_equal(cli_http_exit_for(401), CLI_DENIED);
	assert_int_equal(cli_http_exit_for(403), CLI_DENIED);
	assert_int_equal(cli_http_exit_for(404), CLI_NOTFOUND);
	assert_int_equal(cli_http_exit_for(409), CLI_ERROR);
	assert_int_equal(cli_http_exit_for(413), CLI_ERROR);
	assert_int_equal(cli_http_exit_for(500), CLI_ERROR);
	assert_int_equal(cli_http_exit_for(503), CLI_UNAVAILABLE);
	assert_true(cli_status_final("COMPLETED"));
	assert_true(cli_status_final("FAILED"));
	assert_true(cli_status_final("CANCELLED"));
	assert_false(cli_status_final("IN_PROGRESS"));
	assert_false(cli_status_final("PENDING"));
	assert_false(cli_status_final(NULL));
}

static void test_cells(void **state)
{
	json_t *o =
	    json_pack("{s:s, s:I, s:I, s:I, s:I, s:n, s:{s:i}, s:b, s:f}", "s", "text", "duration",
		      (json_int_t)16, "d2", (json_int_t)1500, "n", (json_int_t)7, "long",
		      (json_int_t)125000, "null", "obj", "a", 1, "t", 1, "r", 2.5);
	char buf[64];

	assert_non_null(o);
	json_object_set_new(o, "duration", json_integer(16));
	assert_string_equal(cli_out_text(o, "s", buf, sizeof(buf)), "text");
	assert_string_equal(cli_out_text(o, "duration", buf, sizeof(buf)), "16ms");
	json_object_set_new(o, "duration", json_integer(1500));
	assert_string_equal(cli_out_text(o, "duration", buf, sizeof(buf)), "1.5s");
	json_object_set_new(o, "duration", json_integer(125000));
	assert_string_equal(cli_out_text(o, "duration", buf, sizeof(buf)), "2m05s");
	assert_string_equal(cli_out_text(o, "n", buf, sizeof(buf)), "7");
	assert_string_equal(cli_out_text(o, "null", buf, sizeof(buf)), "-");
	assert_string_equal(cli_out_text(o, "absent", buf, sizeof(buf)), "-");
	assert_string_equal(cli_out_text(o, "obj", buf, sizeof(buf)), "{\"a\":1}");
	assert_string_equal(cli_out_text(o, "t", buf, sizeof(buf)), "true");
	assert_string_equal(cli_out_text(o, "r", buf, sizeof(buf)), "2.5");
	/* A cell longer than the buffer is cut, not overrun. */
	json_object_set_new(o, "big",
			    json_pack("[s,s,s,s]", "0123456789abcdef", "0123456789abcdef",
				      "0123456789abcdef", "0123456789abcdef"));
	assert_int_equal(strlen(cli_out_text(o, "big", buf, sizeof(buf))), sizeof(buf) - 1);
	json_decref(o);
}

static void test_table(void **state)
{
	struct cli cli = {.format = CLI_TABLE};
	json_t *list =
	    json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s, s:i}]}", "jobs",
		      "id", "a", "name", "first-job", "task_name", "sleep", "status", "PENDING",
		      "created_at", "T1", "id", "b", "name", "j2", "task_name", "sha256", "status",
		      "COMPLETED", "created_at", "T2", "duration", 16);
	char *out;

	assert_non_null(list);
	out = captured(cli_out_jobs, &cli, list);
	assert_string_equal(out, "ID  NAME       TASK    STATUS     CREATED  DURATION\n"
				 "a   first-job  sleep   PENDING    T1       -\n"
				 "b   j2         sha256  COMPLETED  T2       16ms\n");
	free(out);
	/* One object: "key: value" lines, values aligned, in the server's order. */
	out = captured(cli_out_job, &cli, json_array_get(json_object_get(list, "jobs"), 1));
	assert_string_equal(out, "id:         b\n"
				 "name:       j2\n"
				 "task_name:  sha256\n"
				 "status:     COMPLETED\n"
				 "created_at: T2\n"
				 "duration:   16ms\n");
	free(out);
	/* JSON, not on a terminal: the document as it is, on one line. */
	cli.format = CLI_JSON;
	out = captured(cli_out_jobs, &cli, list);
	assert_string_equal(out,
			    "{\"jobs\":[{\"id\":\"a\",\"name\":\"first-job\",\"task_name\":"
			    "\"sleep\",\"status\":\"PENDING\",\"created_at\":\"T1\"},"
			    "{\"id\":\"b\",\"name\":\"j2\",\"task_name\":\"sha256\","
			    "\"status\":\"COMPLETED\",\"created_at\":\"T2\",\"duration\":16}]}\n");
	free(out);
	json_decref(list);
}

static void test_read_json(void **state)
{
	char path[] = "/tmp/valet-test-cli-XXXXXX", at[64];
	json_t *v;
	int fd;

	v = cli_cmd_read_json("--params", "{\"a\": [1, 2]}", true);
	assert_non_null(v);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(v, "a"), 1)), 2);
	json_decref(v);
	v = cli_cmd_read_json("--params", "42", true);
	assert_int_equal(json_integer_value(v), 42);
	json_decref(v);
	assert_null(cli_cmd_read_json("--params", "{bad", true));
	assert_null(cli_cmd_read_json("--params", "", true));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"from\": \"file\"}", 16), 16);
	close(fd);
	snprintf(at, sizeof(at), "@%s", path);
	v = cli_cmd_read_json("--params", at, true);
	assert_string_equal(json_string_value(json_object_get(v, "from")), "file");
	json_decref(v);
	/* A pipeline FILE is a path (no "@"); text is not taken for one. */
	v = cli_cmd_read_json("pipeline", path, false);
	assert_non_null(v);
	json_decref(v);
	assert_null(cli_cmd_read_json("pipeline", "{\"name\": \"x\"}", false));
	unlink(path);
	assert_null(cli_cmd_read_json("--params", "@/nonexistent/valet-params.json", true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exit_statuses),
	    cmocka_unit_test(test_cells),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_read_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
