/*
 * main.c - valetd's startup, dependency injection and shutdown (the
 * composition root: the only file of supervisor/ that knows the adapters
 * and the HTTP server). The order matters:
 *   1. config and logging;
 *   2. sandbox preparation (isolation.c): seccomp filters compiled, the
 *      isolation planned, the task users, the cgroups made;
 *   3. the spawner program is exec'd with its setup; it loads the plugins
 *      and answers with the task table (C tasks and exec tasks);
 *   4. the event loop, the store adapter picked by the config, the core,
 *      the HTTP server; signals; run.
 * SIGTERM/SIGINT: stop accepting, let running jobs finish within the grace
 * period, then kill them, then exit 0; a second one kills them at once.
 * SIGHUP: reload. SIGUSR1, SIGUSR2, SIGALRM: logged and otherwise ignored
 * (a log rotation's SIGUSR1 must not kill the daemon; logs go to stderr,
 * there is no file to reopen).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "../api/auth.h"
#include "../api/http.h"
#include "../storage/memory.h"
#include "../storage/postgres.h"
#include "check.h"
#include "config.h"
#include "core.h"
#include "hidden.h"
#include "isolation.h"
#include "keybook.h"
#include "log.h"
#include "notify.h"
#include "policy.h"
#include "probe.h"
#include "run.h"
#include "spawn.h"
#include "store.h"
#include "strv.h"
#include "tasks.h"

struct cli {
	const char *config, *listen, *spawner;
	const char *keys_file; /* --file: the keys file of `valetd key` */
	int workers;
	bool test, verbose, check;
	bool bench_noop; /* --bench-noop: jobs complete without a child (benchmarks) */
	int key_argc; /* `valetd key ...`: its words, after "key" */
	char **key_argv;
	bool done; /* -V or -h: answered, nothing more to do */
};

struct daemon {
	struct ev_loop *loop;
	struct http_server *http;
	struct core *core;
	struct store *store;
	struct config *cfg;
	const struct cli *cli;
	int spawner_fd;
	bool namespaces;  /* jobs have a view to hide things from */
	char **db_dirs;	  /* the database's socket directories, hidden */
	char **db_addrs;  /* its IPv4 addresses, denied to exec+net jobs */
	uint64_t policy_seq;
	ev_signal signals[6];	    /* daemon_signals[] */
	struct notify_watch *watch; /* watchdog pings and STATUS= lines */
};

static int load_config(const struct cli *cli, struct config **out, char *err, size_t errlen);
static int check_startable(const struct config *cfg, char *err, size_t errlen);

static void usage(FILE *out)
{
	fprintf(out,
		"usage: valetd [-c FILE] [-l HOST:PORT] [-w WORKERS] [-t [-v]] [--check] [-V]\n"
		"       valetd [-c FILE | --file KEYS] key create NAME --scopes S | list | revoke NAME\n"
		"  -c, --config FILE   read the INI configuration FILE\n"
		"  -l, --listen ADDR   listen on HOST:PORT (overrides [server] listen)\n"
		"  -w, --workers N     run at most N jobs at once (overrides [queue] workers)\n"
		"  -t, --test-config   check the configuration and exit (with -v: print it)\n"
		"      --check         print what isolation this host offers and exit\n"
		"      --spawner PROG  run the jobs from PROG, a program with tasks of its own\n"
		"                      (what valet_main() passes; default: valet-spawner)\n"
		"      --file KEYS     the API keys file of `key` (default: [server] auth_keys,\n"
		"                      or the database's table with auth_source = postgres)\n"
		"      --bench-noop    for benchmarks only: every job completes at once with\n"
		"                      a fixed result and runs nothing (valetd(8))\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          this text\n");
}

static void stopped(void *arg)
{
	struct daemon *d = arg;

	ev_break(d->loop, EVBREAK_ALL);
}

/* Nothing runs any more: let the store write what is left and give back
 * claimed work that did not start, then stop. */
static void shutdown_done(void *arg)
{
	struct daemon *d = arg;

	if (d->store->ops->close)
		d->store->ops->close(d->store, stopped, d);
	else
		stopped(d);
}

static bool same_argv(char *const *a, char *const *b)
{
	if (!a || !b)
		return a == b;
	while (*a && *b && !strcmp(*a, *b))
		a++, b++;
	return !*a && !*b;
}

static const struct config_exec_task *find_task(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nexec_tasks; i++)
		if (!strcmp(cfg->exec_tasks[i].name, name))
			return &cfg->exec_tasks[i];
	return NULL;
}

/*
 * [task.NAME] sections: nothing of them applies before a restart (the
 * spawner has its own copy of the task table, with the old commands, and
 * the task table keeps the old timeouts). One line per task, naming the keys
 * that changed: key="[task.wordcount] command, timeout".
 */
static void warn_task_changes(const struct config *old, const struct config *fresh)
{
	static const char msg[] = "configuration changed but needs a restart to apply";
	char key[256];

	for (size_t i = 0; i < old->nexec_tasks; i++) {
		const struct config_exec_task *o = &old->exec_tasks[i];
		const struct config_exec_task *f = find_task(fresh, o->name);
		const struct {
			const char *name;
			bool changed;
		} keys[] = {
			{"command", f && !same_argv(o->argv, f->argv)},
			{"profile", f && o->profile != f->profile},
			{"timeout", f && o->timeout_ms != f->timeout_ms},
			{"max_attempts", f && o->max_attempts != f->max_attempts},
			{"memory_limit", f && o->memory_limit_bytes != f->memory_limit_bytes},
			{"cpu_limit", f && o->cpu_limit_ms != f->cpu_limit_ms},
			{"max_processes", f && o->max_processes != f->max_processes},
			{"max_output_size", f && o->max_output_bytes != f->max_output_bytes},
		};
		size_t len, n = 0;

		snprintf(key, sizeof(key), "[task.%s]", o->name);
		if (!f) {
			log_warn(msg, "key", key, "change", "task removed");
			continue;
		}
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (!keys[k].changed)
				continue;
			len = strlen(key);
			snprintf(key + len, sizeof(key) - len, "%s%s", n++ ? ", " : " ",
				 keys[k].name);
		}
		if (n)
			log_warn(msg, "key", key);
	}
	for (size_t i = 0; i < fresh->nexec_tasks; i++) {
		if (find_task(old, fresh->exec_tasks[i].name))
			continue;
		snprintf(key, sizeof(key), "[task.%s]", fresh->exec_tasks[i].name);
		log_warn(msg, "key", key, "change", "task added");
	}
}

static void warn_restart(const char *key, void *arg)
{
	log_warn("configuration changed but needs a restart to apply", "key", key);
}

/*
 * What jobs must not see or reach, sent to the spawner (spawn_policy):
 * the hidden directories (hidden.h, with the database's socket
 * directories) and the database's addresses. wait: at startup, before any
 * job, for the answer.
 */
static int send_policy(struct daemon *d, bool wait)
{
	char **hide = d->namespaces ? hidden_dirs(d->cfg, d->db_dirs) : NULL;
	int rc;

	if (d->namespaces && !hide)
		return -ENOMEM;
	rc = spawn_policy(d->spawner_fd, hide, d->db_addrs, ++d->policy_seq, wait);
	hidden_free(hide);
	return rc;
}

/* The database's IPv4 addresses (host names resolved now, once). */
static char **resolve_addrs(char *const *hosts)
{
	char **out = NULL;
	size_t n = 0;

	for (; hosts && *hosts; hosts++) {
		struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;

		if (getaddrinfo(*hosts, NULL, &hints, &res) != 0) {
			log_warn("cannot resolve the database host to keep exec+net jobs from it",
				 "host", *hosts);
			continue;
		}
		for (struct addrinfo *a = res; a; a = a->ai_next) {
			char buf[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, buf,
				  sizeof(buf));
			if (strv_add_unique(&out, &n, buf, strlen(buf)) < 0)
				break;
		}
		freeaddrinfo(res);
	}
	return out;
}

/* Where the database lives (PostgreSQL storage), and the first policy. */
static int first_policy(struct daemon *d)
{
	char err[512], **hosts = NULL;
	int rc;

	if (!strcmp(d->cfg->storage, "postgres")) {
		rc = store_pg_targets(d->cfg->database_url, &d->db_dirs, &hosts, err, sizeof(err));
		if (rc < 0) {
			log_error("cannot tell where the database lives", "error", err);
			return rc;
		}
		d->db_addrs = resolve_addrs(hosts);
		strv_free(hosts);
	}
	rc = send_policy(d, true);
	if (rc < 0)
		log_error("cannot hide the daemon's files from jobs (the spawner says why)",
			  "error", strerror(-rc));
	return rc;
}

/*
 * SIGHUP: read the file again. A bad file changes nothing. Otherwise the
 * keys the running daemon reads at each use take their new values now:
 * logging, access log, queue capacity, shutdown grace, job timeouts and
 * size caps, [sandbox] hide (config_reload(): the keys marked live in the
 * config table). Every other key that changed is reported as needing a
 * restart, one line each.
 */
static void reload(struct daemon *d)
{
	struct config *fresh = NULL, *cfg = d->cfg;
	char err[1024] = "out of memory"; /* load_config()'s -ENOMEM says nothing */

	notify_send("RELOADING=1");
	if (load_config(d->cli, &fresh, err, sizeof(err)) < 0 ||
	    check_startable(fresh, err, sizeof(err)) < 0) {
		log_error("reload failed: keeping the running configuration", "file",
			  d->cli->config ? d->cli->config : "(none)", "error", err);
		config_free(fresh);
		notify_send("READY=1");
		return;
	}
	config_reload(cfg, fresh, warn_restart, NULL);
	warn_task_changes(cfg, fresh);
	log_setup(cfg->log_format, cfg->log_level);
	/* What jobs must not see, again: [sandbox] hide may have grown, and a
	 * hidden directory may have been renamed away and made anew. */
	if (send_policy(d, false) < 0)
		log_error("reload: cannot tell the spawner what to hide from jobs");
	http_reload(d->http);
	config_free(fresh);
	log_info("configuration reloaded", "file", d->cli->config ? d->cli->config : "(none)");
	notify_send("READY=1");
}

static const int daemon_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM};

/* Beyond the grace period, how long a shutdown may take: the kills, the
 * store's last writes (PostgreSQL waits up to 5 s for them) and a margin. */
#define MAIN_STOP_SLACK_MS 15000

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char name[16], state[64];

	snprintf(name, sizeof(name), "SIG%s", sigabbrev_np(w->signum));

	switch (w->signum) {
	case SIGHUP:
		reload(d);
		return;
	case SIGTERM:
	case SIGINT:
		break;
	default:
		log_info("signal received: ignored", "signal", name);
		return;
	}
	if (core_draining(d->core)) {
		log_warn("second stop signal: killing running jobs now", "signal", name);
		core_shutdown_now(d->core);
		return;
	}
	log_info("signal received: shutting down", "signal", name);
	/* The grace period may be longer than the unit's TimeoutStopSec: ask
	 * the service manager for it, the kills and the store's last writes
	 * (MAIN_STOP_SLACK_MS), so it does not SIGKILL jobs still in their
	 * grace and leave their outcomes unrecorded. */
	snprintf(state, sizeof(state), "STOPPING=1\nEXTEND_TIMEOUT_USEC=%lld",
		 (long long)(d->cfg->shutdown_grace_ms + MAIN_STOP_SLACK_MS) * 1000);
	notify_send(state);
	if (d->http)
		http_quiesce(d->http);
	core_shutdown(d->core, shutdown_done, d);
}

/* 0 (cli->done after -V and -h), or -EINVAL with a message on stderr. */
static int parse_cli(int argc, char **argv, struct cli *cli)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
		{"workers", required_argument, NULL, 'w'}, {"test-config", no_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},      {"check", no_argument, NULL, 'C'},
		{"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
		{"spawner", required_argument, NULL, 'S'}, {"file", required_argument, NULL, 'F'},
		{"bench-noop", no_argument, NULL, 'N'},
		{NULL, 0, NULL, 0},
	};
	int c;
	char *end;

	optind = 1;
	/* "+": options stop at the first word, so `key create ...` is left whole. */
	while ((c = getopt_long(argc, argv, "+c:l:w:tvVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli->config = optarg;
			break;
		case 'l':
			cli->listen = optarg;
			break;
		case 'w':
			cli->workers = (int)strtol(optarg, &end, 10);
			if (*end || cli->workers < 1 || cli->workers > 1024) {
				fprintf(stderr, "valetd: -w: must be a number between 1 and 1024\n");
				return -EINVAL;
			}
			break;
		case 't':
			cli->test = true;
			break;
		case 'v':
			cli->verbose = true;
			break;
		case 'C':
			cli->check = true;
			break;
		case 'S':
			cli->spawner = optarg;
			break;
		case 'F':
			cli->keys_file = optarg;
			break;
		case 'N':
			cli->bench_noop = true;
			break;
		case 'V':
			printf("valetd %s\n", VALET_VERSION);
			cli->done = true;
			return 0;
		case 'h':
			usage(stdout);
			cli->done = true;
			return 0;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc && !strcmp(argv[optind], "key")) {
		cli->key_argc = argc - optind - 1;
		cli->key_argv = argv + optind + 1;
		return 0;
	}
	if (optind < argc) {
		fprintf(stderr, "valetd: unexpected argument: %s\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* The file and the command line's overrides: 0 with *out, or -EINVAL
 * (with file:line: message in err) or -ENOMEM. */
static int load_config(const struct cli *cli, struct config **out, char *err, size_t errlen)
{
	const char *file = cli->config ? cli->config : "valetd";
	struct config *cfg = config_new();
	char host[256];
	int port;

	if (!cfg)
		return -ENOMEM;
	if (cli->config && config_load(cfg, cli->config, err, errlen) < 0) {
		config_free(cfg);
		return -EINVAL;
	}
	config_apply_env(cfg);
	if (getenv("VALET_LISTEN") && getenv("VALET_LISTEN")[0] &&
	    config_parse_listen(cfg->listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "valetd: VALET_LISTEN=%s: expected HOST:PORT", cfg->listen);
		config_free(cfg);
		return -EINVAL;
	}
	if (cli->listen) {
		if (config_parse_listen(cli->listen, host, sizeof(host), &port) < 0) {
			snprintf(err, errlen, "valetd: -l %s: expected HOST:PORT", cli->listen);
			config_free(cfg);
			return -EINVAL;
		}
		free(cfg->listen);
		cfg->listen = strdup(cli->listen);
	}
	if (cli->workers)
		cfg->workers = cli->workers;
	cfg->bench_noop = cli->bench_noop;
	if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
		snprintf(err, errlen, "%s: [server] tls_cert and tls_key go together", file);
		config_free(cfg);
		return -EINVAL;
	}
	/* Secure by default: an open API only where other hosts cannot reach it. */
	if (!config_auth_on(cfg) && !cfg->allow_unauthenticated && !cli->key_argv &&
	    !http_listen_is_loopback(cfg->listen)) {
		snprintf(err, errlen,
			 "%s: [server] listen = %s is not a loopback address and [server] auth_keys "
			 "is not set: anyone who reaches the port could run code here; set "
			 "auth_keys (valetd key create) or auth_source = postgres, or "
			 "allow_unauthenticated = true",
			 file, cfg->listen);
		config_free(cfg);
		return -EINVAL;
	}
	if (!cfg->state_dir[0] && getenv("STATE_DIRECTORY")) {
		/* systemd's StateDirectory= (its first, if several) */
		free(cfg->state_dir);
		cfg->state_dir = strndup(getenv("STATE_DIRECTORY"),
					 strcspn(getenv("STATE_DIRECTORY"), ":"));
		if (!cfg->state_dir) {
			snprintf(err, errlen, "out of memory");
			config_free(cfg);
			return -ENOMEM;
		}
	}
	*out = cfg;
	return 0;
}

/*
 * What would stop valetd from starting with cfg, beyond the file's own
 * syntax and ranges (load_config): the HTTP server's listen address, keys
 * file and TLS files, the storage's URL and node id, the task user and
 * what [sandbox] hide names - checked with the same functions the start
 * uses, so that `valetd -t` (the unit's ExecStartPre and ExecReload) and a
 * reload refuse what a start would. 0, or -EINVAL with a sentence in err.
 */
static int check_startable(const struct config *cfg, char *err, size_t errlen)
{
	const struct pg_options pg = {
	    .url = cfg->database_url, .node_id = cfg->node_id, .state_dir = cfg->state_dir};

	if (http_check(cfg, err, errlen) < 0)
		return -EINVAL;
	if (!strcmp(cfg->storage, "postgres") && store_pg_check(&pg, err, errlen) < 0)
		return -EINVAL;
	if (probe_can_switch_user() && isolation_check_user(cfg->user, err, errlen) < 0)
		return -EINVAL;
	if (cfg->namespaces && hidden_check(cfg, err, errlen) < 0)
		return -EINVAL;
	return 0;
}

/*
 * Every worker slot keeps three pipes (run.c), and every connection and
 * running job holds more: take the hard limit on open files instead of
 * the soft 1024 of a systemd service. The spawner, started next, inherits it.
 */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The storage adapter the config picks (dependency injection). */
static struct store *make_store(struct ev_loop *loop, const struct config *cfg)
{
	const struct pg_options pg = {
	    .url = cfg->database_url,
	    .schema = cfg->db_schema,
	    .node_id = cfg->node_id,
	    .lease_ms = cfg->lease_ms,
	    .retry_backoff_ms = cfg->retry_backoff_ms,
	    .retry_backoff_max_ms = cfg->retry_backoff_max_ms,
	    .submit_timeout_ms = cfg->submit_timeout_ms,
	    .retention_days = cfg->retention_days,
	    .state_dir = cfg->state_dir,
	};
	struct store *store;
	char err[512];

	if (strcmp(cfg->storage, "postgres") != 0)
		return store_memory_new();
	store = store_postgres_new(loop, &pg, err, sizeof(err));
	if (!store)
		log_error("cannot use PostgreSQL storage", "error", err);
	return store;
}

/* STATUS= for the service manager: "running 3 jobs, 120 queued"; false
 * (no more watchdog pings: a restart) once no job can run. */
static bool status_line(void *arg, char *buf, size_t len)
{
	struct daemon *d = arg;
	unsigned running;
	size_t queued;

	if (!core_queue_healthy(d->core)) {
		snprintf(buf, len, "the spawner process is gone: no job can run");
		return false;
	}
	core_load(d->core, &running, &queued);
	snprintf(buf, len, "%srunning %u job%s, %zu queued%s",
		 core_draining(d->core) ? "stopping: " : "", running, running == 1 ? "" : "s",
		 queued, core_storage_healthy(d->core) ? "" : "; storage unavailable");
	return true;
}

/* The loop, the store, the core, the HTTP server; run until shut down.
 * 0, or -errno when one of them cannot start (logged). */
static int serve(struct config *cfg, const struct cli *cli, int spawner_fd, bool namespaces,
		 struct tasks *tasks)
{
	struct daemon d = {.cfg = cfg, .cli = cli, .spawner_fd = spawner_fd, .namespaces = namespaces};
	char err[512], n[16];
	int rc = -ENOMEM;

	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (!d.loop) {
		log_error("cannot start the event loop", "error", "ev_default_loop failed");
		goto out;
	}
	if (!(d.store = make_store(d.loop, cfg))) {
		rc = -EINVAL;
		goto out;
	}
	if ((rc = first_policy(&d)) < 0)
		goto out;
	rc = -ENOMEM;
	if (!(d.core = core_new(d.loop, cfg, d.store, tasks, spawner_fd)))
		goto out;
	d.http = http_new(d.loop, cfg, d.core, err, sizeof(err));
	if (!d.http) {
		log_error("cannot start the HTTP server", "error", err);
		rc = -EADDRNOTAVAIL;
		goto out;
	}
	for (size_t i = 0; i < sizeof(daemon_signals) / sizeof(daemon_signals[0]); i++) {
		ev_signal_init(&d.signals[i], on_signal, daemon_signals[i]);
		d.signals[i].data = &d;
		ev_signal_start(d.loop, &d.signals[i]);
	}
	snprintf(n, sizeof(n), "%d", cfg->workers);
	if (cfg->bench_noop)
		log_warn("--bench-noop: no job runs; every job completes at once with the result "
			 "{\"bench_noop\":true} (for benchmarks only)");
	log_info("valetd ready", "version", VALET_VERSION, "workers", n, "storage", cfg->storage);
	notify_send("READY=1\nSTATUS=serving the HTTP API");
	d.watch = notify_watch_new(d.loop, status_line, &d);
	ev_run(d.loop, 0);
	log_info("valetd stopped");
	rc = 0;
out:
	notify_watch_free(d.watch);
	http_free(d.http);
	core_free(d.core);
	store_free(d.store);
	strv_free(d.db_dirs);
	strv_free(d.db_addrs);
	return rc;
}

/* The spawner program, started with its setup (without namespaces when
 * it cannot prepare the jobs' view and degraded isolation is allowed); the
 * task table it has. 0, or -errno with the reason on stderr (-EINVAL: the
 * config's, or a plugin's). */
static int start_spawner(const struct config *cfg, struct isolation_prep *prep,
			 struct tasks *tasks, pid_t *pid, int *fd)
{
	char err[1024], *table = NULL;
	int rc = isolation_start(prep, cfg, pid, fd, &table, err, sizeof(err));

	if (rc < 0) {
		fprintf(stderr, "valetd: %s\n", err);
		return rc;
	}
	rc = tasks_load(tasks, table, strlen(table), err, sizeof(err));
	if (rc == 0)
		rc = tasks_configure(tasks, cfg, err, sizeof(err));
	free(table);
	if (rc < 0) {
		fprintf(stderr, "valetd: %s\n", err);
		close(*fd);
		waitpid(*pid, NULL, 0);
		return -EINVAL;
	}
	/* The spawner has the cgroup files now. */
	cgroups_close(&prep->iso.cg);
	return 0;
}

static void log_isolation(const struct isolation *iso)
{
	char first[16], net[16];

	if (iso->degraded)
		log_warn("degraded isolation (allow_degraded_isolation = true)", "missing",
			 iso->missing);
	if (!iso->uid_base)
		return;
	snprintf(first, sizeof(first), "%u", (unsigned)iso->uid_base);
	snprintf(net, sizeof(net), "%u", (unsigned)iso->net_id);
	log_info("task users: a uid and gid per worker slot", "first", first, "network_helper",
		 net, "picked", iso->uid_auto ? "auto" : "uid_base");
}

/* `valetd -c FILE key ...`: on the keys file, or with [server] auth_source =
 * postgres on the database's api_keys table. An exit status. */
static int key_command(const struct config *cfg, const struct cli *cli)
{
	struct key_book *book;
	char err[512];
	int rc;

	if (!config_keys_in_db(cfg) || auth_key_help(cli->key_argc, cli->key_argv))
		return auth_key_command(cfg->auth_keys, cli->config, cli->key_argc, cli->key_argv);
	if (!cfg->database_url || !cfg->database_url[0]) {
		fprintf(stderr, "valetd key: auth_source = postgres needs [storage] database_url "
				"(or VALET_DATABASE_URL)\n");
		return 2;
	}
	book = store_pg_key_book(cfg->database_url, cfg->db_schema, err, sizeof(err));
	if (!book) {
		fprintf(stderr, "valetd key: %s\n", err);
		return 1;
	}
	rc = auth_key_command_book(book, cli->key_argc, cli->key_argv);
	book->ops->free(book);
	return rc;
}

/* The exit status: 2 for a usage or configuration error (a plugin's
 * included), 1 when the daemon cannot start or run, else 0. */
static int exit_status(int rc)
{
	return rc == 0 ? 0 : rc == -EINVAL ? 2 : 1;
}

/* Sandbox, spawner, serve; 0 after a clean shutdown, or -errno. */
static int run_daemon(struct config *cfg, const struct cli *cli, const char *spawner)
{
	struct isolation_prep prep;
	struct probe_caps caps;
	struct tasks *tasks = NULL;
	pid_t spawner_pid;
	int rc, spawner_fd;
	char err[1024];

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	probe_run(&caps);
	rc = isolation_prepare(&prep, cfg, &caps, runner_max_children(cfg), spawner, true, err,
			       sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "valetd: %s\n", err);
		isolation_prep_release(&prep);
		return rc == -EINVAL ? -EPERM : rc; /* the host's, not the file's */
	}
	isolation_set_global(&prep.iso);
	if (!(tasks = tasks_new()))
		rc = -ENOMEM;
	else
		rc = start_spawner(cfg, &prep, tasks, &spawner_pid, &spawner_fd);
	if (rc == 0) {
		log_isolation(&prep.iso); /* as the spawner started: maybe without its view */
		for (char **w = prep.unreachable; w && *w; w++)
			log_warn("an exec task's program is out of the task users' reach", "why",
				 *w);
		rc = serve(cfg, cli, spawner_fd, prep.iso.namespaces, tasks);
		if (rc == -EINVAL)
			rc = -EIO; /* it started: not a usage error */
		/* Closing our end tells the spawner to kill what is left and exit. */
		close(spawner_fd);
		waitpid(spawner_pid, NULL, 0);
	}
	isolation_set_global(NULL);
	isolation_prep_release(&prep);
	tasks_free(tasks);
	return rc;
}

int valetd_main(int argc, char **argv)
{
	struct cli cli = {0};
	struct config *cfg = NULL;
	char *spawner = NULL, err[1024];
	int rc;

	rc = parse_cli(argc, argv, &cli);
	if (rc < 0 || cli.done)
		return exit_status(rc);
	if (cli.key_argv && cli.keys_file)
		return auth_key_command(cli.keys_file, NULL, cli.key_argc, cli.key_argv);
	rc = load_config(&cli, &cfg, err, sizeof(err));
	if (rc < 0) {
		if (rc == -EINVAL)
			fprintf(stderr, "%s\n", err);
		return exit_status(rc);
	}
	if (cli.key_argv) {
		rc = key_command(cfg, &cli);
		config_free(cfg);
		return rc;
	}
	log_setup(cfg->log_format, cfg->log_level);
	spawner = spawn_program(cli.spawner);
	if (!spawner)
		rc = -ENOMEM;
	else if (cli.test && (rc = check_startable(cfg, err, sizeof(err))) < 0)
		fprintf(stderr, "%s: %s\n", cli.config ? cli.config : "valetd", err);
	else if (cli.test)
		rc = check_tasks(cfg, spawner);
	else if (cli.check)
		rc = check_print(cfg, spawner);
	else
		rc = run_daemon(cfg, &cli, spawner);
	if (rc == 0 && cli.test) {
		if (cli.verbose)
			config_dump(cfg, stdout);
		fprintf(stderr, "%s: configuration OK\n", cli.config ? cli.config : "valetd");
	}
	free(spawner);
	config_free(cfg);
	return exit_status(rc);
}
