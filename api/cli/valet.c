/*
 * valet.c - main() of `valet`, the command-line client of valetd's HTTP
 * API: the command table, option parsing, help and the environment.
 *
 * Theory of operation: one getopt_long() pass over the whole command line
 * (options may come before or after the command and its arguments) fills
 * struct cli and records which options were given; the first positional
 * argument names the command, found in a table that says how many
 * arguments it takes and which options it accepts. An option the command
 * does not take, a missing or extra argument, or a bad number is a usage
 * error (exit 2) that names the problem and points at `valet help CMD`.
 * The server comes from --url, else VALET_URL, else valetd's default
 * listen address; the token from --token, else VALET_TOKEN. The output is
 * a table when stdout is a terminal, JSON otherwise or with --json
 * (--table forces the table). Then the command runs (cli_cmd.c) and its
 * return value is the exit status (enum cli_exit in cli.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

#ifndef VALET_VERSION
#define VALET_VERSION "0.0.0"
#endif

/* valetd's default [server] listen (supervisor/config.c). */
#define CLI_DEFAULT_URL "http://127.0.0.1:8080"

/* Options; the low ones are command options (a bit each in a mask). */
enum opt {
	OPT_PARAMS,
	OPT_TIMEOUT,
	OPT_RUN_AT,
	OPT_NAME,
	OPT_WAIT,
	OPT_STATUS,
	OPT_TASK,
	OPT_PIPELINES,
	OPT_LIMIT,
	OPT_INTERVAL,
	OPT_URL = 256, /* above every short option character */
	OPT_TOKEN,
	OPT_CACERT,
	OPT_CERT,
	OPT_KEY,
	OPT_JSON,
	OPT_TABLE,
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
};

#define M(o) (1u << (o))

struct command {
	const char *name;
	int (*run)(struct cli *cli, char **args);
	int nargs; /* positional arguments after the command */
	unsigned opts;
	const char *usage;
	const char *help;
};

static const struct command commands[] = {
	{"submit", cli_cmd_submit, 1,
	 M(OPT_PARAMS) | M(OPT_TIMEOUT) | M(OPT_RUN_AT) | M(OPT_NAME) | M(OPT_WAIT) |
		 M(OPT_INTERVAL),
	 "submit TASK [--params JSON|@FILE|-] [--timeout SECONDS] [--run-at TIME] [--name NAME] "
	 "[--wait]",
	 "Submit a job of TASK (POST /api/jobs) and print it. --params: the task_params, as JSON\n"
	 "text, @FILE or - (standard input). --timeout: seconds (fractions allowed). --run-at:\n"
	 "RFC 3339 (2030-01-01T10:00:00Z) or +N with s, m, h or d (+30s). --name: the job's\n"
	 "name (default: TASK). --wait: follow it until it is final and print it; exit 0 when\n"
	 "COMPLETED, 1 when FAILED or CANCELLED."},
	{"get", cli_cmd_get, 1, 0, "get ID",
	 "Print a job, or a pipeline and its jobs (GET /api/jobs/ID, else /api/pipelines/ID)."},
	{"list", cli_cmd_list, 0, M(OPT_STATUS) | M(OPT_TASK) | M(OPT_PIPELINES) | M(OPT_LIMIT),
	 "list [--status STATUS] [--task TASK] [--limit N] [--pipelines]",
	 "List jobs, oldest first (GET /api/jobs). --status: pending, scheduled, in_progress,\n"
	 "completed, failed or cancelled. --task: only jobs of TASK. --limit: at most N.\n"
	 "--pipelines: list pipelines instead (as `valet pipelines`)."},
	{"pipelines", cli_cmd_pipelines, 0, M(OPT_STATUS) | M(OPT_LIMIT),
	 "pipelines [--status STATUS] [--limit N]", "List pipelines (GET /api/pipelines)."},
	{"watch", cli_cmd_watch, 1, M(OPT_INTERVAL), "watch ID [--interval SECONDS]",
	 "Follow a job or pipeline until it is final. On a terminal: a status line rewritten\n"
	 "in place, then the final object; otherwise one line per change (JSON: the object).\n"
	 "Exit 0 when COMPLETED, 1 when FAILED or CANCELLED."},
	{"result", cli_cmd_result, 1, 0, "result ID",
	 "Print a finished job's result (GET /api/jobs/ID/results): what the task returned\n"
	 "(metadata) and its error."},
	{"cancel", cli_cmd_cancel, 1, 0, "cancel ID",
	 "Cancel a queued or running job or pipeline (POST .../cancel); it stays, CANCELLED."},
	{"pipeline", cli_cmd_pipeline, 1, M(OPT_WAIT) | M(OPT_INTERVAL), "pipeline FILE [--wait]",
	 "Submit the pipeline request in FILE (JSON; - for standard input) with POST\n"
	 "/api/pipelines. --wait: follow it until it is final (exit 0 COMPLETED, 1 otherwise)."},
	{"tasks", cli_cmd_tasks, 0, 0, "tasks", "List the task names valetd knows (GET /api/tasks)."},
	{"status", cli_cmd_status, 0, 0, "status",
	 "Print valetd's health (GET /api/status); exit 7 when it answers unhealthy (503)."},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct option long_opts[] = {
	{"params", required_argument, NULL, OPT_PARAMS},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"run-at", required_argument, NULL, OPT_RUN_AT},
	{"name", required_argument, NULL, OPT_NAME},
	{"wait", no_argument, NULL, OPT_WAIT},
	{"status", required_argument, NULL, OPT_STATUS},
	{"task", required_argument, NULL, OPT_TASK},
	{"pipelines", no_argument, NULL, OPT_PIPELINES},
	{"limit", required_argument, NULL, OPT_LIMIT},
	{"interval", required_argument, NULL, OPT_INTERVAL},
	{"url", required_argument, NULL, OPT_URL},
	{"token", required_argument, NULL, OPT_TOKEN},
	{"cacert", required_argument, NULL, OPT_CACERT},
	{"cert", required_argument, NULL, OPT_CERT},
	{"key", required_argument, NULL, OPT_KEY},
	{"json", no_argument, NULL, OPT_JSON},
	{"table", no_argument, NULL, OPT_TABLE},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static const char global_help[] =
	"Global options:\n"
	"  --url URL        valetd's address (default: $VALET_URL, else " CLI_DEFAULT_URL ")\n"
	"  --token TOKEN    API key, sent as Authorization: Bearer (default: $VALET_TOKEN)\n"
	"  --cacert FILE    CA certificates to verify an https server with (default: the "
	"system's)\n"
	"  --cert FILE      a client certificate (PEM) for https, for valetd's\n"
	"                   tls_client_auth; --key FILE: its key (default: in FILE)\n"
	"  --json           print JSON (the default when stdout is not a terminal)\n"
	"  --table          print tables (the default on a terminal)\n"
	"  -h, --help       this help; valet help COMMAND for a command's\n"
	"  -V, --version    print the version\n"
	"\n"
	"Exit status: 0 done (with --wait or watch: COMPLETED), 1 FAILED or CANCELLED (with\n"
	"--wait or watch), 2 usage error, 3 valetd unreachable, 4 API key refused (401/403),\n"
	"5 not found (404), 6 other refusal or server error, 7 unavailable (503): try again.\n";

static const struct command *command_find(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	}
	return NULL;
}

static void usage_all(FILE *f)
{
	size_t i;

	fprintf(f, "usage: valet [OPTIONS] COMMAND [ARGS]\n\nCommands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  valet %s\n", commands[i].usage);
	fprintf(f, "\n%s", global_help);
}

static int help_command(const char *name)
{
	const struct command *cmd = command_find(name);

	if (!cmd) {
		fprintf(stderr, "valet: unknown command \"%s\" (valet --help lists them)\n", name);
		return CLI_USAGE;
	}
	printf("usage: valet [OPTIONS] %s\n\n%s\n\n%s", cmd->usage, cmd->help, global_help);
	return CLI_OK;
}

static int parse_number(const char *opt, const char *arg, double min, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(arg, &end);
	if (errno || end == arg || *end || !(*out > min) || *out > 1e9) {
		fprintf(stderr, "valet: --%s %s: not a number greater than %g\n", opt, arg, min);
		return -EINVAL;
	}
	return 0;
}

/* One option into cli; 0, or -EINVAL after a message. */
static int take_option(struct cli *cli, int c, const char *arg, unsigned *given)
{
	double v;

	if (c < 32)
		*given |= M(c);
	switch (c) {
	case OPT_PARAMS:
		cli->params = arg;
		return 0;
	case OPT_TIMEOUT:
		return parse_number("timeout", arg, 0, &cli->timeout);
	case OPT_RUN_AT:
		cli->run_at = arg;
		return 0;
	case OPT_NAME:
		cli->name = arg;
		return 0;
	case OPT_WAIT:
		cli->wait = true;
		return 0;
	case OPT_STATUS:
		cli->status = arg;
		return 0;
	case OPT_TASK:
		cli->task = arg;
		return 0;
	case OPT_PIPELINES:
		cli->pipelines = true;
		return 0;
	case OPT_LIMIT:
		if (parse_number("limit", arg, 0, &v) < 0)
			return -EINVAL;
		if (v != (long)v) {
			fprintf(stderr, "valet: --limit %s: not a whole number\n", arg);
			return -EINVAL;
		}
		cli->limit = (long)v;
		return 0;
	case OPT_INTERVAL:
		return parse_number("interval", arg, 0.009, &cli->interval);
	case OPT_URL:
		cli->url = arg;
		return 0;
	case OPT_TOKEN:
		cli->token = arg;
		return 0;
	case OPT_CACERT:
		cli->cacert = arg;
		return 0;
	case OPT_CERT:
		cli->cert = arg;
		return 0;
	case OPT_KEY:
		cli->key = arg;
		return 0;
	case OPT_JSON:
		cli->format = CLI_JSON;
		return 0;
	case OPT_TABLE:
		cli->format = CLI_TABLE;
		return 0;
	}
	return -EINVAL;
}

/* The option of bit o, for a message. */
static const char *option_name(unsigned o)
{
	size_t i;

	for (i = 0; long_opts[i].name; i++) {
		if ((unsigned)long_opts[i].val == o)
			return long_opts[i].name;
	}
	return "?";
}

static int check_command(const struct command *cmd, int nargs, unsigned given)
{
	unsigned o;

	for (o = 0; o < 32; o++) {
		if ((given & M(o)) && !(cmd->opts & M(o))) {
			fprintf(stderr, "valet: %s takes no --%s (valet help %s)\n", cmd->name,
				option_name(o), cmd->name);
			return CLI_USAGE;
		}
	}
	if (nargs != cmd->nargs) {
		fprintf(stderr, "valet: %s: %s argument%s\nusage: valet %s\n", cmd->name,
			nargs < cmd->nargs ? "missing" : "too many", nargs < cmd->nargs ? "" : "s",
			cmd->usage);
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* A token goes into a header: printable ASCII, no spaces, not too long
 * for cli_http.c's header buffer. */
static bool token_ok(const char *token)
{
	if (strlen(token) > 512)
		return false;
	for (; *token; token++) {
		if (*token < 0x21 || *token > 0x7e)
			return false;
	}
	return true;
}

/* The base URL without trailing slashes; new. */
static char *base_url(const char *url)
{
	char *u = strdup(url);
	size_t n = u ? strlen(u) : 0;

	while (n > 0 && u[n - 1] == '/')
		u[--n] = '\0';
	return u;
}

/* A URL libcurl would take for another protocol, or a certificate file that
 * cannot be read, is a usage error (2), said before anything is sent - not
 * "valetd unreachable" (3). */
static bool where_ok(const struct cli *cli)
{
	const char *const files[][2] = {
	    {"--cacert", cli->cacert}, {"--cert", cli->cert}, {"--key", cli->key}};

	if (strncasecmp(cli->url, "http://", 7) && strncasecmp(cli->url, "https://", 8)) {
		fprintf(stderr, "valet: %s is not an http:// or https:// URL (--url or VALET_URL)\n",
			cli->url);
		return false;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i][1] && access(files[i][1], R_OK) < 0) {
			fprintf(stderr, "valet: %s %s: %s\n", files[i][0], files[i][1],
				strerror(errno));
			return false;
		}
	return true;
}

int main(int argc, char **argv)
{
	struct cli cli = {.interval = 0.5, .format = CLI_JSON};
	bool help = false, version = false;
	const struct command *cmd;
	unsigned given = 0;
	char *url = NULL;
	int c, rc;

	cli.tty = isatty(STDOUT_FILENO);
	cli.format = cli.tty ? CLI_TABLE : CLI_JSON;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", long_opts, NULL)) != -1) {
		if (c == OPT_HELP) {
			help = true;
		} else if (c == OPT_VERSION) {
			version = true;
		} else if (c == '?' || c == ':') {
			fprintf(stderr, "valet: %s %s (valet --help)\n",
				c == ':' ? "missing the value of" : "unknown option", argv[optind - 1]);
			return CLI_USAGE;
		} else if (take_option(&cli, c, optarg, &given) < 0) {
			return CLI_USAGE;
		}
	}
	if (version) {
		printf("valet %s\n", VALET_VERSION);
		return CLI_OK;
	}
	if (optind < argc && !strcmp(argv[optind], "help"))
		return optind + 1 < argc ? help_command(argv[optind + 1]) : (usage_all(stdout), 0);
	if (help && optind < argc)
		return help_command(argv[optind]);
	if (help || optind >= argc) {
		usage_all(help ? stdout : stderr);
		return help ? CLI_OK : CLI_USAGE;
	}
	cmd = command_find(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "valet: unknown command \"%s\" (valet --help lists them)\n",
			argv[optind]);
		return CLI_USAGE;
	}
	rc = check_command(cmd, argc - optind - 1, given);
	if (rc != CLI_OK)
		return rc;
	if (!cli.url)
		cli.url = getenv("VALET_URL") && *getenv("VALET_URL") ? getenv("VALET_URL")
								      : CLI_DEFAULT_URL;
	if (!cli.token && getenv("VALET_TOKEN") && *getenv("VALET_TOKEN"))
		cli.token = getenv("VALET_TOKEN");
	if (cli.token && (!cli.token[0] || !token_ok(cli.token))) {
		fprintf(stderr, "valet: the API key (--token or VALET_TOKEN) is not one: longer than "
				"512 bytes, or with spaces or control characters\n");
		return CLI_USAGE;
	}
	if (!where_ok(&cli))
		return CLI_USAGE;
	url = base_url(cli.url);
	if (!url || cli_http_open(&cli) < 0) {
		fprintf(stderr, "valet: cannot start libcurl: out of memory\n");
		free(url);
		cli_http_close(&cli);
		return CLI_ERROR;
	}
	cli.url = url;
	rc = cmd->run(&cli, argv + optind + 1);
	cli_http_close(&cli);
	free(url);
	fflush(stdout);
	return rc;
}
