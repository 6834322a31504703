/*
 * cli_cmd.c - the commands of `valet`, each a few requests of the API.
 *
 * Theory of operation: valet.c has parsed the command line into struct
 * cli and calls one function here with the positional arguments (their
 * count already checked). A command builds its request (submit: the job
 * request of API.md from the options; pipeline: the file as it is), sends
 * it with cli_http_call(), prints the answer with cli_out_*() and returns
 * the exit status. An ID given to get, watch and cancel may be a job's or
 * a pipeline's: the job is tried first, and on a 404 the pipeline.
 * Input the client can check itself (JSON that does not parse, a file
 * that cannot be read, a --run-at it cannot read) is a usage error
 * before anything is sent; everything else is the server's to judge, and
 * its message is shown as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

json_t *cli_cmd_read_json(const char *what, const char *arg, bool at)
{
	json_error_t err;
	json_t *v;

	if (!strcmp(arg, "-")) {
		v = json_loadf(stdin, JSON_DECODE_ANY, &err);
		arg = "standard input";
	} else if (!at || arg[0] == '@') {
		if (at)
			arg++;
		v = json_load_file(arg, JSON_DECODE_ANY, &err);
	} else {
		v = json_loads(arg, JSON_DECODE_ANY, &err);
		arg = NULL;
	}
	if (!v) {
		if (arg && err.line < 1) /* the file could not be read */
			fprintf(stderr, "valet: %s: %s\n", what, err.text);
		else if (arg)
			fprintf(stderr, "valet: %s: %s: line %d, column %d: %s\n", what, arg,
				err.line, err.column, err.text);
		else
			fprintf(stderr, "valet: %s is not JSON: column %d: %s\n", what, err.column,
				err.text);
	}
	return v;
}

/*
 * --run-at: RFC 3339 goes to the server as it is; "+N" with a unit (s, m,
 * h, d) is that long from now, in UTC. Returns 0 or -EINVAL.
 */
static int run_at_text(const char *arg, char *out, size_t len)
{
	static const struct {
		char unit;
		long seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	time_t t = time(NULL);
	struct tm tm;
	char *end;
	long n;
	size_t i;

	if (arg[0] != '+') {
		snprintf(out, len, "%s", arg);
		return 0;
	}
	errno = 0;
	n = strtol(arg + 1, &end, 10);
	if (errno || n < 0 || end == arg + 1 || !end[0] || end[1])
		return -EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (*end == units[i].unit) {
			t += (time_t)n * units[i].seconds;
			gmtime_r(&t, &tm);
			strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
			return 0;
		}
	}
	return -EINVAL;
}

/* The job request of `valet submit TASK`; NULL (message printed) on bad input. */
static json_t *job_request(const struct cli *cli, const char *task)
{
	json_t *req = json_object(), *params;
	char when[64];

	if (!req)
		return NULL;
	json_object_set_new(req, "name", json_string(cli->name ? cli->name : task));
	json_object_set_new(req, "task_name", json_string(task));
	if (cli->params) {
		params = cli_cmd_read_json("--params", cli->params, true);
		if (!params)
			goto fail;
		json_object_set_new(req, "task_params", params);
	}
	if (cli->timeout > 0)
		json_object_set_new(req, "timeout", json_real(cli->timeout));
	if (cli->run_at) {
		if (run_at_text(cli->run_at, when, sizeof(when)) < 0) {
			fprintf(stderr,
				"valet: --run-at %s: not a time (RFC 3339, e.g. "
				"2030-01-01T10:00:00Z, or +N with s, m, h or d: +30s)\n",
				cli->run_at);
			goto fail;
		}
		json_object_set_new(req, "run_at", json_string(when));
	}
	return req;
fail:
	json_decref(req);
	return NULL;
}

int cli_cmd_submit(struct cli *cli, char **args)
{
	json_t *req = job_request(cli, args[0]);
	struct cli_response r;
	char id[128];
	int rc;

	if (!req)
		return CLI_USAGE;
	rc = cli_http_call(cli, "POST", "/api/jobs", req, &r);
	json_decref(req);
	if (rc != CLI_OK)
		return rc;
	if (!cli->wait) {
		cli_out_job(cli, r.body);
		cli_response_free(&r);
		return CLI_OK;
	}
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.body, "id")));
	cli_response_free(&r);
	return cli_watch(cli, id, false, true);
}

int cli_cmd_pipeline(struct cli *cli, char **args)
{
	json_t *req = cli_cmd_read_json("pipeline", args[0], false);
	struct cli_response r;
	char id[128];
	int rc;

	if (!req)
		return CLI_USAGE;
	rc = cli_http_call(cli, "POST", "/api/pipelines", req, &r);
	json_decref(req);
	if (rc != CLI_OK)
		return rc;
	if (!cli->wait) {
		cli_out_pipeline(cli, r.body, json_object_get(r.body, "jobs"));
		cli_response_free(&r);
		return CLI_OK;
	}
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.body, "id")));
	cli_response_free(&r);
	return cli_watch(cli, id, true, true);
}

/* An id as a path segment: no '/', '?', '#' or '%' to change the route. */
static int check_id(const char *id)
{
	if (!id[0] || strlen(id) > 64 || strpbrk(id, "/?#% \t\r\n")) {
		fprintf(stderr, "valet: \"%s\" is not a job or pipeline ID\n", id);
		return CLI_USAGE;
	}
	return CLI_OK;
}

/*
 * GET /api/jobs/ID, else /api/pipelines/ID: *pipeline says which answered.
 * Both 404: both messages, CLI_NOTFOUND.
 */
static int find(struct cli *cli, const char *id, struct cli_response *r, bool *pipeline)
{
	char path[128], first[256];
	json_t *msg;
	int rc = check_id(id);

	if (rc != CLI_OK)
		return rc;
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	rc = cli_http_send(cli, "GET", path, NULL, r);
	if (rc != CLI_OK)
		return rc;
	*pipeline = false;
	if (r->status == 404) {
		msg = json_object_get(r->body, "message");
		snprintf(first, sizeof(first), "%s",
			 json_is_string(msg) ? json_string_value(msg) : "");
		cli_response_free(r);
		snprintf(path, sizeof(path), "/api/pipelines/%s", id);
		rc = cli_http_send(cli, "GET", path, NULL, r);
		if (rc != CLI_OK)
			return rc;
		*pipeline = true;
		if (r->status == 404 && first[0])
			fprintf(stderr, "valet: %s (HTTP 404)\n", first);
	}
	if (r->status >= 200 && r->status < 300)
		return CLI_OK;
	rc = cli_http_refused(cli, r);
	cli_response_free(r);
	return rc;
}

int cli_cmd_get(struct cli *cli, char **args)
{
	struct cli_response r, jobs = {0};
	char path[128];
	bool pipeline;
	int rc = find(cli, args[0], &r, &pipeline);

	if (rc != CLI_OK)
		return rc;
	if (!pipeline) {
		cli_out_job(cli, r.body);
	} else {
		snprintf(path, sizeof(path), "/api/pipelines/%s/jobs", args[0]);
		rc = cli->format == CLI_TABLE ? cli_http_call(cli, "GET", path, NULL, &jobs)
					      : CLI_OK;
		if (rc == CLI_OK)
			cli_out_pipeline(cli, r.body, json_object_get(jobs.body, "jobs"));
		cli_response_free(&jobs);
	}
	cli_response_free(&r);
	return rc;
}

int cli_cmd_watch(struct cli *cli, char **args)
{
	struct cli_response r;
	bool pipeline;
	int rc = find(cli, args[0], &r, &pipeline);

	if (rc != CLI_OK)
		return rc;
	cli_response_free(&r);
	return cli_watch(cli, args[0], pipeline, false);
}

int cli_cmd_cancel(struct cli *cli, char **args)
{
	struct cli_response r;
	char path[128];
	bool pipeline;
	int rc = find(cli, args[0], &r, &pipeline);

	if (rc != CLI_OK)
		return rc;
	cli_response_free(&r);
	snprintf(path, sizeof(path), "/api/%s/%s/cancel", pipeline ? "pipelines" : "jobs", args[0]);
	rc = cli_http_call(cli, "POST", path, NULL, &r);
	if (rc != CLI_OK)
		return rc;
	if (pipeline)
		cli_out_pipeline(cli, r.body, NULL);
	else
		cli_out_job(cli, r.body);
	cli_response_free(&r);
	return CLI_OK;
}

int cli_cmd_result(struct cli *cli, char **args)
{
	struct cli_response r;
	char path[128];
	int rc = check_id(args[0]);

	if (rc != CLI_OK)
		return rc;
	snprintf(path, sizeof(path), "/api/jobs/%s/results", args[0]);
	rc = cli_http_call(cli, "GET", path, NULL, &r);
	if (rc != CLI_OK)
		return rc;
	cli_out_result(cli, r.body);
	cli_response_free(&r);
	return CLI_OK;
}

/* ?status=S&limit=N for a list path; the server checks the status. */
static void list_path(const struct cli *cli, const char *what, char *out, size_t len)
{
	char *esc = cli->status ? curl_easy_escape(cli->curl, cli->status, 0) : NULL;

	snprintf(out, len, "/api/%s?", what);
	if (esc)
		snprintf(out + strlen(out), len - strlen(out), "status=%s&", esc);
	if (cli->limit > 0)
		snprintf(out + strlen(out), len - strlen(out), "limit=%ld&", cli->limit);
	out[strlen(out) - 1] = '\0';
	curl_free(esc);
}

int cli_cmd_pipelines(struct cli *cli, char **args)
{
	struct cli_response r;
	char path[512];
	int rc;

	list_path(cli, "pipelines", path, sizeof(path));
	rc = cli_http_call(cli, "GET", path, NULL, &r);
	if (rc != CLI_OK)
		return rc;
	cli_out_pipelines(cli, r.body);
	cli_response_free(&r);
	return CLI_OK;
}

int cli_cmd_list(struct cli *cli, char **args)
{
	struct cli_response r;
	json_t *jobs, *job;
	char path[512];
	size_t i;
	int rc;

	if (cli->pipelines)
		return cli_cmd_pipelines(cli, args);
	list_path(cli, "jobs", path, sizeof(path));
	rc = cli_http_call(cli, "GET", path, NULL, &r);
	if (rc != CLI_OK)
		return rc;
	/* --task: the API has no such filter; the list is filtered here. */
	jobs = json_object_get(r.body, "jobs");
	for (i = 0; cli->task && i < json_array_size(jobs);) {
		job = json_array_get(jobs, i);
		if (strcmp(json_string_value(json_object_get(job, "task_name")) ?: "", cli->task))
			json_array_remove(jobs, i);
		else
			i++;
	}
	cli_out_jobs(cli, r.body);
	cli_response_free(&r);
	return CLI_OK;
}

int cli_cmd_tasks(struct cli *cli, char **args)
{
	struct cli_response r;
	int rc = cli_http_call(cli, "GET", "/api/tasks", NULL, &r);

	if (rc != CLI_OK)
		return rc;
	cli_out_tasks(cli, r.body);
	cli_response_free(&r);
	return CLI_OK;
}

/* GET /api/status: 503 (unhealthy) still prints the body; exit 7. */
int cli_cmd_status(struct cli *cli, char **args)
{
	struct cli_response r;
	int rc = cli_http_send(cli, "GET", "/api/status", NULL, &r);

	if (rc != CLI_OK)
		return rc;
	if (r.status == 503 && json_object_get(r.body, "storage_healthy")) {
		cli_out_status(cli, r.body);
		fprintf(stderr, "valet: valetd at %s is not healthy (HTTP 503)\n", cli->url);
		rc = CLI_UNAVAILABLE;
	} else if (r.status != 200) {
		rc = cli_http_refused(cli, &r);
	} else {
		cli_out_status(cli, r.body);
	}
	cli_response_free(&r);
	return rc;
}
