/*
 * cli.h - the `valet` command-line client (api/cli/), shared by its
 * modules: valet.c (main, options, help), cli_http.c (requests through
 * libcurl), cli_cmd.c (the commands), cli_watch.c (following a job or a
 * pipeline until it is final), cli_out.c (tables and JSON).
 *
 * The client is the other side of the HTTP API (api/routes.c): it links
 * libcurl and jansson only and includes nothing of the daemon.
 */
#ifndef VALET_CLI_H
#define VALET_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

/*
 * Exit statuses, for scripts (valet(1) documents them). A command returns
 * one of these, never a negative errno: the process's status is its API.
 */
enum cli_exit {
	CLI_OK = 0,	     /* done; with --wait or watch: COMPLETED */
	CLI_FAILED = 1,	     /* with --wait or watch: the job or pipeline FAILED or was CANCELLED */
	CLI_USAGE = 2,	     /* bad command line, unreadable or invalid input file */
	CLI_UNREACHABLE = 3, /* no answer: connection refused, DNS, TLS, time-out */
	CLI_DENIED = 4,	     /* 401 or 403: no, a wrong or a revoked token, or a missing scope */
	CLI_NOTFOUND = 5,    /* 404: no such job, pipeline or result */
	CLI_ERROR = 6,	     /* any other refusal: 400, 409, 413, 500, ... */
	CLI_UNAVAILABLE = 7, /* 503: queue full, shutting down, storage down: try again later */
};

/* How results are printed. */
enum cli_format {
	CLI_TABLE, /* for people: tables and key/value lines */
	CLI_JSON,  /* the server's JSON (one document, or one per line for watch) */
};

/* Everything a command needs: the parsed command line and the connection. */
struct cli {
	const char *url;    /* the server's base URL, without a trailing slash */
	const char *token;  /* API key or NULL */
	const char *cacert; /* CA bundle for https, or NULL for the system's */
	const char *cert, *key; /* a client certificate and its key (PEM), or NULL */
	enum cli_format format;
	bool tty; /* stdout is a terminal */

	/* Command options (each command uses some). */
	const char *params; /* --params: JSON text, @FILE or - */
	const char *run_at;
	const char *name;
	const char *status;
	const char *task;
	double timeout; /* --timeout, seconds; 0 = not given */
	long limit;	/* --limit; 0 = all */
	bool wait;
	bool pipelines;
	double interval; /* seconds between polls (watch, --wait) */
	bool quiet;	 /* why a request failed is not printed (a watch in an outage) */

	CURL *curl; /* one handle: keep-alive across the requests of a command */
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
};

/* An answer: status and body (JSON when it parses, else NULL). */
struct cli_response {
	long status;
	json_t *body; /* new: cli_response_free() */
	char *text;   /* the body as received, NUL-terminated */
	size_t len;
};

/* cli_http.c */
int cli_http_open(struct cli *cli); /* 0 or -errno (libcurl could not start) */
void cli_http_close(struct cli *cli);
/*
 * Sends METHOD PATH (under cli->url) with body (borrowed; NULL for none)
 * and reads the answer into *r. Returns CLI_OK when an answer came (any
 * status), else prints why the server could not be reached and returns
 * CLI_UNREACHABLE.
 */
int cli_http_send(struct cli *cli, const char *method, const char *path, json_t *body,
		  struct cli_response *r);
/*
 * The same, and a status outside 2xx is an error: it prints the server's
 * message and returns the exit status for it (r is then freed).
 */
int cli_http_call(struct cli *cli, const char *method, const char *path, json_t *body,
		  struct cli_response *r);
/* Prints the server's error message of r and returns its exit status. */
int cli_http_refused(const struct cli *cli, const struct cli_response *r);
int cli_http_exit_for(long status);
void cli_response_free(struct cli_response *r);

/* cli_out.c: print to stdout in cli->format. Objects are borrowed. */
void cli_out_json(const struct cli *cli, json_t *v);
void cli_out_job(const struct cli *cli, json_t *job);
void cli_out_jobs(const struct cli *cli, json_t *jobs);
void cli_out_pipeline(const struct cli *cli, json_t *pipeline, json_t *jobs);
void cli_out_pipelines(const struct cli *cli, json_t *pipelines);
void cli_out_result(const struct cli *cli, json_t *result);
void cli_out_tasks(const struct cli *cli, json_t *tasks);
void cli_out_status(const struct cli *cli, json_t *status);
/* The value of key as text for a table ("-" when absent); into buf. */
const char *cli_out_text(json_t *obj, const char *key, char *buf, size_t len);
/* s, or a copy in buf (cut to fit) with each control character - C0, DEL,
 * and C1 as UTF-8 - as a \u00XX escape: what the server says (a job's
 * name is anyone's with the submit scope) cannot drive the terminal. */
const char *cli_out_safe(const char *s, char *buf, size_t len);
bool cli_status_final(const char *status);

/* cli_watch.c: follow a job (or pipeline) until it is final; returns the
 * exit status for its final status. quiet: print nothing but the end. */
int cli_watch(struct cli *cli, const char *id, bool pipeline, bool quiet);

/* cli_cmd.c: the commands; args are the positional arguments. */
int cli_cmd_submit(struct cli *cli, char **args);
int cli_cmd_get(struct cli *cli, char **args);
int cli_cmd_list(struct cli *cli, char **args);
int cli_cmd_pipelines(struct cli *cli, char **args);
int cli_cmd_watch(struct cli *cli, char **args);
int cli_cmd_result(struct cli *cli, char **args);
int cli_cmd_cancel(struct cli *cli, char **args);
int cli_cmd_pipeline(struct cli *cli, char **args);
int cli_cmd_tasks(struct cli *cli, char **args);
int cli_cmd_status(struct cli *cli, char **args);
/* Reads FILE, "-" (stdin) or, with at, "@FILE"/JSON text as JSON; on error
 * prints it and returns NULL. New. */
json_t *cli_cmd_read_json(const char *what, const char *arg, bool at);

#endif
