/*
 * cli_out.c - how the client prints what the server answered.
 *
 * Theory of operation: two formats. CLI_JSON prints the server's documents
 * as they came (pretty on a terminal, one compact line otherwise), so that
 * a script reads exactly the API's JSON - a list is the server's list
 * object, filtered only where the command filters (--task). CLI_TABLE is
 * for people: a list is a table with one row per job or pipeline and
 * columns as wide as their widest cell; one object is "key: value" lines
 * in the server's key order, nested objects as compact JSON and durations
 * in seconds. Nothing here decides an exit status.
 *
 * Anything of the server's reaches the terminal without its control
 * characters: a job's name, description or failure reason is set by
 * whoever submitted it, and an escape sequence in it (ESC, or C1's CSI
 * and OSC as UTF-8) could retitle the terminal, write to the clipboard or
 * hide output from whoever lists jobs. A table shows them as \u00XX
 * escapes (cli_out_safe()); JSON has the C0 ones escaped by jansson, and
 * DEL and C1 escaped here, the same text to a JSON reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define COLS_MAX 8

/* The C1 character (its second byte) at p, or 0. */
static unsigned c1_at(const unsigned char *p)
{
	return p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f ? p[1] : 0;
}

static bool is_control(const unsigned char *p)
{
	return *p < 0x20 || *p == 0x7f || c1_at(p);
}

const char *cli_out_safe(const char *s, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p && !is_control(p))
		p++;
	if (!*p)
		return s;
	for (p = (const unsigned char *)s; *p; p++) {
		unsigned c1 = c1_at(p);
		/* A character starts: room for its escape, or all of it. */
		if ((*p & 0xc0) != 0x80 && n + 7 > len)
			break;
		if (is_control(p))
			n += (size_t)snprintf(buf + n, len - n, "\\u%04x", c1 ? c1 : *p);
		else
			buf[n++] = (char)*p;
		p += c1 != 0;
	}
	buf[n] = '\0';
	return buf;
}

void cli_out_json(const struct cli *cli, json_t *v)
{
	char *text = json_dumps(v, (cli->tty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_ENCODE_ANY);
	const unsigned char *p;

	if (!text)
		return;
	/* jansson escapes C0 only; DEL and C1 (in strings only) as \u00XX. */
	for (p = (const unsigned char *)text; *p; p++) {
		unsigned c1 = c1_at(p);
		if (*p == 0x7f || c1)
			printf("\\u%04x", c1 ? c1 : *p);
		else
			putchar(*p);
		p += c1 != 0;
	}
	putchar('\n');
	free(text);
}

static void format_ms(json_int_t ms, char *buf, size_t len)
{
	if (ms < 1000)
		snprintf(buf, len, "%lldms", (long long)ms);
	else if (ms < 60000)
		snprintf(buf, len, "%.3gs", ms / 1000.0);
	else
		snprintf(buf, len, "%lldm%02llds", (long long)(ms / 60000),
			 (long long)(ms / 1000 % 60));
}

const char *cli_out_text(json_t *obj, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(obj, key);
	char *dump;

	if (!v || json_is_null(v))
		return "-";
	if (json_is_string(v))
		return cli_out_safe(json_string_value(v), buf, len);
	if (json_is_integer(v) && !strcmp(key, "duration")) {
		format_ms(json_integer_value(v), buf, len);
		return buf;
	}
	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!dump)
		snprintf(buf, len, "?");
	else if (cli_out_safe(dump, buf, len) == dump)
		snprintf(buf, len, "%s", dump);
	free(dump);
	return buf;
}

bool cli_status_final(const char *status)
{
	return status && (!strcmp(status, "COMPLETED") || !strcmp(status, "FAILED") ||
			  !strcmp(status, "CANCELLED"));
}

/* "key: value" lines of every key of obj, values aligned. */
static void print_object(json_t *obj)
{
	const char *key;
	json_t *v;
	size_t width = 0;
	char buf[4096];

	json_object_foreach(obj, key, v) {
		if (strlen(key) > width)
			width = strlen(key);
	}
	json_object_foreach(obj, key, v) {
		printf("%s:%*s %s\n", key, (int)(width - strlen(key)), "",
		       cli_out_text(obj, key, buf, sizeof(buf)));
	}
}

/* The table of a list of objects: headers and the keys of their cells. */
static void print_table(json_t *rows, const char *const *heads, const char *const *keys,
			size_t ncols)
{
	size_t width[COLS_MAX], i, c;
	char buf[COLS_MAX][512];
	json_t *row;

	for (c = 0; c < ncols; c++)
		width[c] = strlen(heads[c]);
	json_array_foreach(rows, i, row) {
		for (c = 0; c < ncols; c++) {
			size_t w = strlen(cli_out_text(row, keys[c], buf[c], sizeof(buf[c])));

			if (w > width[c])
				width[c] = w;
		}
	}
	for (c = 0; c < ncols; c++)
		printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, heads[c],
		       c + 1 < ncols ? "  " : "\n");
	json_array_foreach(rows, i, row) {
		for (c = 0; c < ncols; c++)
			printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0,
			       cli_out_text(row, keys[c], buf[c], sizeof(buf[c])),
			       c + 1 < ncols ? "  " : "\n");
	}
}

static const char *const job_heads[] = {"ID", "NAME", "TASK", "STATUS", "CREATED", "DURATION"};
static const char *const job_keys[] = {"id",	 "name",       "task_name",
				       "status", "created_at", "duration"};

void cli_out_job(const struct cli *cli, json_t *job)
{
	if (cli->format == CLI_JSON)
		cli_out_json(cli, job);
	else
		print_object(job);
}

void cli_out_jobs(const struct cli *cli, json_t *jobs)
{
	if (cli->format == CLI_JSON) {
		cli_out_json(cli, jobs);
		return;
	}
	print_table(json_object_get(jobs, "jobs"), job_heads, job_keys, 6);
}

void cli_out_pipeline(const struct cli *cli, json_t *pipeline, json_t *jobs)
{
	if (cli->format == CLI_JSON) {
		cli_out_json(cli, pipeline);
		return;
	}
	print_object(pipeline);
	if (json_array_size(jobs)) {
		printf("\n");
		print_table(jobs, job_heads, job_keys, 6);
	}
}

void cli_out_pipelines(const struct cli *cli, json_t *pipelines)
{
	static const char *const heads[] = {"ID", "NAME", "STATUS", "CREATED", "DURATION"};
	static const char *const keys[] = {"id", "name", "status", "created_at", "duration"};

	if (cli->format == CLI_JSON)
		cli_out_json(cli, pipelines);
	else
		print_table(json_object_get(pipelines, "pipelines"), heads, keys, 5);
}

void cli_out_result(const struct cli *cli, json_t *result)
{
	json_t *meta = json_object_get(result, "metadata");
	json_t *err = json_object_get(result, "error");
	char buf[4096];

	if (cli->format == CLI_JSON) {
		cli_out_json(cli, result);
		return;
	}
	if (meta) {
		struct cli pretty = *cli;

		pretty.tty = true; /* indented */
		cli_out_json(&pretty, meta);
	}
	if (json_is_string(err))
		printf("error: %s\n", cli_out_safe(json_string_value(err), buf, sizeof(buf)));
}

void cli_out_tasks(const struct cli *cli, json_t *tasks)
{
	json_t *name;
	char buf[512];
	size_t i;

	if (cli->format == CLI_JSON) {
		cli_out_json(cli, tasks);
		return;
	}
	json_array_foreach(json_object_get(tasks, "tasks"), i, name) {
		if (json_is_string(name))
			printf("%s\n", cli_out_safe(json_string_value(name), buf, sizeof(buf)));
	}
}

void cli_out_status(const struct cli *cli, json_t *status)
{
	if (cli->format == CLI_JSON)
		cli_out_json(cli, status);
	else
		print_object(status);
}
