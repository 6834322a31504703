/*
 * config.h - valetd's configuration: an INI file (inih) described by one
 * declarative table (key, type, default, min/max), command-line overrides
 * and secrets from the environment.
 */
#ifndef VALET_CONFIG_H
#define VALET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../sandbox/spawn_proto.h"

enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* An int key set to "auto" (uid_base): valetd picks the value at startup. */
#define CONFIG_AUTO (-1)
enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
/* [server] tls_client_auth: client certificates (api/http_tls.c). */
enum config_client_auth {
	CONFIG_CLIENT_AUTH_OFF = 0,	 /* none asked for */
	CONFIG_CLIENT_AUTH_OPTIONAL = 1, /* asked for; without one, a token */
	CONFIG_CLIENT_AUTH_REQUIRE = 2,	 /* a handshake without one fails */
};

/* A [task.NAME] section: an exec task (command = program and arguments),
 * or, without a command, defaults for a C task of that name. */
struct config_exec_task {
	char *name;
	char **argv;          /* NULL-terminated, argv[0] an absolute path; NULL: no command */
	int64_t timeout_ms;   /* 0 = the job's / default timeout */
	int max_attempts;     /* 0 = [jobs] max_attempts */
	enum sbx_profile profile; /* profile = ...; once loaded: EXEC unless set for exec
				   * tasks (EXEC or EXEC_NET), always STRICT for C tasks */
	/* Limits of its jobs; -1 = not set: the [sandbox] / [jobs] value. */
	int64_t memory_limit_bytes; /* memory_limit; 0 = none */
	int64_t cpu_limit_ms;       /* cpu_limit; 0 = none */
	int64_t max_processes;      /* max_processes; 0 = none */
	int64_t max_output_bytes;   /* max_output_size */
};

struct config {
	/* [server] */
	char *listen;           /* "127.0.0.1:8080"; "HOST:PORT", "[::1]:PORT" or ":PORT" */
	char *cors_origins;     /* "*" or space-separated origins; "" = automatic: the
	                         * loopback origins when listening on loopback, CORS off
	                         * otherwise (api/http_origin.c) */
	char *allowed_hosts;    /* Host names answered besides IP addresses, localhost and
	                         * *.localhost ("*" = any, ".d" = d and names under it);
	                         * "" = automatic: those only for an open API on loopback,
	                         * any otherwise */
	size_t max_body_bytes;  /* request body limit (413 above) */
	size_t max_body_memory; /* all request bodies held at once (503 above) */
	bool access_log;
	int max_connections;            /* open HTTP connections at most */
	int max_connections_per_client; /* from one IPv4 address or IPv6 /64 */
	int64_t request_timeout_ms;     /* a request's headers and body, or an answer's
	                                 * progress, within this */
	int64_t idle_timeout_ms;        /* a keep-alive connection with no request */
	char *auth_keys;                /* the API keys file; "" = no keys, an open API */
	char *auth_source;              /* "file" (auth_keys), or "postgres": the api_keys table */
	bool open_status;               /* GET /api/status needs no key */
	bool allow_unauthenticated;     /* an open API on a non-loopback address */
	char *tls_cert, *tls_key;       /* PEM files: HTTPS; "" = plain HTTP */
	char *tls_client_ca;            /* PEM CA bundle of client certificates; "" = none */
	int tls_client_auth;            /* enum config_client_auth */
	/* [auth]: the policy of an API key whose line does not set its own
	 * (api/auth_policy.c); "" and 0 = no rule. */
	char *auth_profiles;	     /* "strict,exec": the profiles jobs may use */
	char *auth_tasks;	     /* "a,b": the tasks a key may run */
	int64_t auth_max_timeout_ms; /* the most "timeout" a key may ask for */
	size_t auth_max_memory;	     /* the most limits.memory */
	int64_t auth_max_cpu_ms;     /* the most limits.cpu */
	int auth_max_running;	     /* a key's jobs running on a node at once */
	int auth_max_queued;	     /* a key's jobs waiting on a node at once */
	int auth_submit_rate;	     /* submits a second */
	int auth_submit_burst;	     /* submits at once; 0 = the rate */
	/* [queue] */
	int workers;            /* concurrent children; default: number of CPUs */
	int queue_capacity;     /* queued jobs+pipelines before 503 */
	int64_t shutdown_grace_ms;
	/* [jobs] */
	int64_t default_timeout_ms;
	int64_t max_timeout_ms;
	int max_attempts;         /* runs per job unless the job says (1 = no retries) */
	size_t max_result_bytes;  /* one task result */
	size_t max_output_bytes;  /* a child's stdout+stderr */
	/* The most a job (API "limits") or a [task.NAME] may set. Each defaults
	 * to its [sandbox] / [jobs] default; 0 = no maximum. */
	size_t max_memory_limit;
	int64_t max_cpu_limit_ms;
	int max_process_limit;
	size_t max_output_limit;  /* never 0 */
	/* [sandbox] */
	char *user;             /* run tasks as this user when root; default "nobody" */
	size_t memory_limit_bytes; /* RLIMIT_AS; 0 = none */
	int64_t cpu_limit_ms;   /* RLIMIT_CPU; 0 = none */
	int max_files;          /* RLIMIT_NOFILE */
	int max_processes;      /* RLIMIT_NPROC */
	size_t max_file_size;   /* RLIMIT_FSIZE */
	bool namespaces;        /* PID, mount, IPC, UTS, network namespaces per job */
	bool cgroups;           /* a cgroup per worker slot: memory and pids limits */
	int uid_base;           /* slot N runs as uid/gid uid_base + N, one more id for the
	                         * network helper (isolation.h); 0 = every task as `user`;
	                         * CONFIG_AUTO (the default) = the first free block in
	                         * 600000-699999 (uidrange.h) */
	bool allow_degraded_isolation; /* start even when the above are unavailable */
	char *hide;             /* more directories no job sees (space-separated) */
	/* [network]: exec+net jobs */
	char *net_mode;         /* "slirp4netns": a namespace per slot; "host": the host's */
	char *net_allow;        /* IPv4 networks they may reach (most specific wins) */
	char *net_deny;         /* ... and may not */
	char *net_helper;       /* the slirp4netns program (a name is looked up in PATH) */
	/* [storage] */
	char *storage;          /* "memory" or "postgres" */
	char *database_url;     /* also VALET_DATABASE_URL */
	char *db_schema;        /* PostgreSQL schema of valet's tables, default "valet" */
	char *node_id;          /* this node's name in a cluster; "" = the host name */
	int64_t lease_ms;       /* a node's lease; others rescue its work after it expires */
	int64_t retry_backoff_ms;     /* first retry delay (doubles, with jitter) */
	int64_t retry_backoff_max_ms; /* cap of the retry delay */
	int retention_days;     /* prune finished jobs older than this; 0 = keep all */
	int64_t submit_timeout_ms;    /* a submit the store did not confirm by then is
	                               * withdrawn and answered 503 */
	char *state_dir;        /* writes the database did not take at shutdown are kept
	                         * there for the next start; "" = $STATE_DIRECTORY */
	/* [tasks] */
	char *plugin_dir;       /* load every *.so in it; "" = none */
	/* [log] */
	enum log_format log_format;
	enum log_level log_level;

	struct config_exec_task *exec_tasks;
	size_t nexec_tasks;

	char *path;             /* the file read, or NULL for built-in defaults */
	/* Not a key of the file: valetd --bench-noop (main.c), for benchmarks
	 * only. Jobs complete at once without a child (supervisor/run_noop.c). */
	bool bench_noop;
};

/* Defaults for everything. Returns new; NULL only on ENOMEM. */
struct config *config_new(void);
void config_free(struct config *cfg);

/*
 * Read an INI file on top of cfg. On error returns a negative errno and
 * writes "file:line: message" (no newline) to err.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Whether the API keys are the database's api_keys table ([server]
 * auth_source = postgres). */
bool config_keys_in_db(const struct config *cfg);
/* Whether the API wants keys: a keys file, or the table. */
bool config_auth_on(const struct config *cfg);

/*
 * A reload: every key a running daemon reads at each use (logging, the
 * access log, queue capacity, shutdown grace, job timeouts and size caps,
 * [sandbox] hide) takes fresh's value; for every other key whose value
 * differs, restart("[section] key", arg) is called - it keeps the running
 * value until a restart. fresh (borrowed) is left with what cfg had.
 */
void config_reload(struct config *cfg, struct config *fresh,
		   void (*restart)(const char *key, void *arg), void *arg);

/* Apply the environment (VALET_DATABASE_URL). */
void config_apply_env(struct config *cfg);

/* Print every key with its current value, INI format (valetd -t -v). */
void config_dump(const struct config *cfg, FILE *out);

/* Parse helpers, exported for the command line and tests. 0 or -EINVAL. */
int config_parse_duration_ms(const char *s, int64_t *ms); /* "30s" "500ms" "2m" "1h" "1.5s"; bare number = seconds */
int config_parse_size(const char *s, size_t *bytes);      /* "64M" "1G" "512k" "1048576" */
int config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

#endif
