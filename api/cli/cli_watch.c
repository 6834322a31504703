/*
 * cli_watch.c - following a job or a pipeline until its status is final
 * (`valet watch`, and `--wait` of submit and pipeline).
 *
 * Theory of operation: the API has no push channel, so the client polls
 * GET /api/jobs/ID (or /api/pipelines/ID and its jobs, for the progress
 * count) every --interval seconds on one keep-alive connection, and acts
 * on each change of status. On a terminal one status line is rewritten in
 * place (a spinner, the status, the time watched, a pipeline's jobs done
 * out of all) and cleared at the end, before the final object is printed.
 * Elsewhere (a pipe, a log) each change is one line: the object as JSON in
 * the JSON format, else "TIME ID STATUS [failure_reason]" - so a script
 * sees every transition, not a spinner's control characters. With quiet
 * (--wait) only the final object is printed. The final status decides the
 * exit status: COMPLETED 0, FAILED or CANCELLED 1.
 *
 * The job exists (its submit was answered 202, or watch found it), so an
 * outage is no answer about it: valetd restarting (no connection), or its
 * database down or failing over (503). Giving up there with "try again
 * later" (3, 7) would invite a script to submit the job a second time. So
 * such an answer is said once on stderr and the poll goes on, backing off
 * to CLI_WATCH_BACKOFF_MAX_S, for up to CLI_WATCH_OUTAGE_S in a row; only
 * then does the outage's own exit status end the watch.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define CLI_WATCH_OUTAGE_S 600.0   /* no answer about the job for this long: give up */
#define CLI_WATCH_BACKOFF_MAX_S 5.0 /* polls during an outage: at least this often */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Jobs of a pipeline that are final, and all of them: "3/5 jobs". */
static int pipeline_progress(struct cli *cli, const char *id, size_t *done, size_t *total)
{
	struct cli_response r;
	char path[256];
	json_t *job;
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "/api/pipelines/%s/jobs", id);
	rc = cli_http_call(cli, "GET", path, NULL, &r);
	if (rc != CLI_OK)
		return rc;
	*done = 0;
	*total = json_array_size(json_object_get(r.body, "jobs"));
	json_array_foreach(json_object_get(r.body, "jobs"), i, job) {
		if (cli_status_final(json_string_value(json_object_get(job, "status"))))
			(*done)++;
	}
	cli_response_free(&r);
	return CLI_OK;
}

/* One line per change, for a pipe or a log. */
static void print_change(const struct cli *cli, json_t *obj)
{
	char when[32], idbuf[128], stbuf[64], why[2048];
	time_t t = time(NULL);
	struct tm tm;

	if (cli->format == CLI_JSON) {
		struct cli one = *cli;

		one.tty = false; /* one compact line */
		cli_out_json(&one, obj);
	} else {
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%s %s %s", when, cli_out_text(obj, "id", idbuf, sizeof(idbuf)),
		       cli_out_text(obj, "status", stbuf, sizeof(stbuf)));
		if (json_is_string(json_object_get(obj, "failure_reason")))
			printf(" %s", cli_out_text(obj, "failure_reason", why, sizeof(why)));
		printf("\n");
	}
	fflush(stdout);
}

static void print_spinner(json_t *obj, unsigned tick, double elapsed, size_t done, size_t total)
{
	static const char spin[] = "|/-\\";
	char idbuf[128], stbuf[64];

	printf("\r\033[K%c %s %s %.1fs", spin[tick % 4],
	       cli_out_text(obj, "id", idbuf, sizeof(idbuf)),
	       cli_out_text(obj, "status", stbuf, sizeof(stbuf)), elapsed);
	if (total)
		printf(" (%zu/%zu jobs done)", done, total);
	fflush(stdout);
}

/* The final object, in the command's format; jobs for a pipeline's table. */
static int print_final(struct cli *cli, const char *id, bool pipeline, json_t *obj)
{
	struct cli_response r;
	char path[256];
	int rc;

	if (!pipeline) {
		cli_out_job(cli, obj);
		return CLI_OK;
	}
	snprintf(path, sizeof(path), "/api/pipelines/%s/jobs", id);
	rc = cli_http_call(cli, "GET", path, NULL, &r);
	if (rc != CLI_OK)
		return rc;
	cli_out_pipeline(cli, obj, json_object_get(r.body, "jobs"));
	cli_response_free(&r);
	return CLI_OK;
}

int cli_watch(struct cli *cli, const char *id, bool pipeline, bool quiet)
{
	char path[256], last[32] = "";
	struct cli_response r = {0};
	double start = now_s(), outage = 0, backoff = 0;
	size_t done = 0, total = 0;
	const char *status;
	unsigned tick = 0;
	int rc;

	snprintf(path, sizeof(path), "/api/%s/%s", pipeline ? "pipelines" : "jobs", id);
	for (;; tick++) {
		rc = cli_http_call(cli, "GET", path, NULL, &r);
		if (rc == CLI_OK && pipeline && cli->tty)
			rc = pipeline_progress(cli, id, &done, &total);
		if ((rc == CLI_UNREACHABLE || rc == CLI_UNAVAILABLE) &&
		    (outage == 0 || now_s() - outage < CLI_WATCH_OUTAGE_S)) {
			if (outage == 0) {
				outage = now_s();
				backoff = cli->interval;
				if (cli->tty)
					printf("\r\033[K");
				fflush(stdout);
				fprintf(stderr, "valet: no answer about %s for now; still waiting\n",
					id);
				cli->quiet = true; /* said once */
			}
			cli_response_free(&r);
			sleep_s(backoff);
			backoff = backoff * 2 > CLI_WATCH_BACKOFF_MAX_S ? CLI_WATCH_BACKOFF_MAX_S
									 : backoff * 2;
			continue;
		}
		cli->quiet = false;
		if (outage && (rc == CLI_UNREACHABLE || rc == CLI_UNAVAILABLE))
			fprintf(stderr, "valet: no answer about %s for %.0f s; giving up\n", id,
				now_s() - outage);
		if (rc != CLI_OK)
			goto fail;
		outage = 0;
		status = json_string_value(json_object_get(r.body, "status"));
		if (!status) {
			fprintf(stderr, "valet: the server's answer has no status: %.200s\n",
				r.text);
			rc = CLI_ERROR;
			goto fail;
		}
		if (strcmp(status, last) != 0 && !cli->tty && !quiet)
			print_change(cli, r.body);
		snprintf(last, sizeof(last), "%s", status);
		if (cli_status_final(status))
			break;
		if (cli->tty)
			print_spinner(r.body, tick, now_s() - start, done, total);
		cli_response_free(&r);
		sleep_s(cli->interval);
	}
	if (cli->tty) {
		printf("\r\033[K");
		fflush(stdout);
	}
	if (cli->tty || quiet)
		rc = print_final(cli, id, pipeline, r.body);
	if (rc == CLI_OK)
		rc = strcmp(last, "COMPLETED") == 0 ? CLI_OK : CLI_FAILED;
fail:
	if (cli->tty && rc != CLI_OK && rc != CLI_FAILED)
		printf("\r\033[K");
	cli_response_free(&r);
	return rc;
}
