/*
 * test_config.c - supervisor/config.c: defaults, a full file, every error
 * message with its line, relative paths, exec task commands, the duration,
 * size and listen parsers, the environment and the dump.
 *
 * Config files are real files written with mkstemp() into a private
 * directory, removed at the end.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../supervisor/config.h"

#define TESTDIR_NAME "valet-test-config"
#include "testdir.h"

/* A new file in tmpdir holding text; returns its path (caller frees). */
static char *write_file(const char *text, mode_t mode)
{
	char path[PATH_MAX + 16];
	size_t len = strlen(text);
	int fd;

	snprintf(path, sizeof(path), "%s/file-XXXXXX", tmpdir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return strdup(path);
}

static char *write_conf(const char *text)
{
	return write_file(text, 0644);
}

/* Load text; rc and the error message come back. */
static struct config *load(const char *text, int *rc, char *err, size_t errlen, char **pathp)
{
	struct config *cfg = config_new();
	char *path = write_conf(text);

	assert_non_null(cfg);
	*rc = config_load(cfg, path, err, errlen);
	if (pathp)
		*pathp = path;
	else
		free(path);
	return cfg;
}

static struct config *load_ok(const char *text)
{
	char err[512];
	int rc;
	struct config *cfg = load(text, &rc, err, sizeof(err), NULL);

	if (rc != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(err, "");
	return cfg;
}

/* text must fail with exactly "<path>:<line>: <msg>". */
static void check_error(const char *text, int line, const char *msg)
{
	char err[1024], want[1024], *path;
	int rc;
	struct config *cfg = load(text, &rc, err, sizeof(err), &path);

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	if (strcmp(err, want) != 0)
		print_error("config:\n%s\n", text);
	assert_string_equal(err, want);
	assert_int_equal(rc, -EINVAL);
	config_free(cfg);
	free(path);
}

/* ---- defaults and a full file ----------------------------------------------- */

static void test_defaults(void **state)
{
	struct config *cfg = config_new();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_string_equal(cfg->cors_origins, "");
	assert_int_equal(cfg->max_body_bytes, 1 << 20);
	assert_true(cfg->access_log);
	assert_int_equal(cfg->workers, ncpu < 1 ? 1 : ncpu > 1024 ? 1024 : ncpu);
	assert_int_equal(cfg->queue_capacity, 100000);
	assert_int_equal(cfg->shutdown_grace_ms, 10000);
	assert_int_equal(cfg->default_timeout_ms, 60000);
	assert_int_equal(cfg->max_timeout_ms, 3600000);
	assert_int_equal(cfg->max_result_bytes, 1 << 20);
	assert_int_equal(cfg->max_output_bytes, 1 << 20);
	assert_string_equal(cfg->user, "nobody");
	assert_int_equal(cfg->memory_limit_bytes, 256 << 20);
	assert_int_equal(cfg->cpu_limit_ms, 0);
	assert_int_equal(cfg->max_files, 64);
	assert_int_equal(cfg->max_processes, 64);
	assert_int_equal(cfg->max_file_size, 16 << 20);
	assert_int_equal(cfg->uid_base, CONFIG_AUTO);
	assert_string_equal(cfg->storage, "memory");
	assert_string_equal(cfg->database_url, "");
	assert_int_equal(cfg->submit_timeout_ms, 5000);
	assert_string_equal(cfg->plugin_dir, "");
	assert_int_equal(cfg->log_format, LOG_TEXT);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->nexec_tasks, 0);
	assert_null(cfg->path);
	config_free(cfg);
	config_free(NULL);
}

static const char full_conf[] = "\xEF\xBB\xBF# every key, none at its default\n"
				"[server]\n"
				"listen = [::1]:9090\n"
				"cors_origins = https://a.example https://b.example\n"
				"max_body = 64k ; inline comment\n"
				"access_log = no\n"
				"\n"
				"[queue]\n"
				"  workers = 3\n"
				"\tcapacity = 500\n"
				"shutdown_grace = 1.5s\n"
				"[jobs]\n"
				"default_timeout = 2m\n"
				"max_timeout = 2h\n"
				"max_result_size = 2MiB\n"
				"max_output_size = 3MB\n"
				"max_attempts = 4\n"
				"[sandbox]\n"
				"user = valet\n"
				"memory_limit = 1G\n"
				"cpu_limit = 30\n"
				"max_files = 16\n"
				"max_processes = 0\n"
				"max_file_size = 0\n"
				"uid_base = 61000\n"
				"[storage]\n"
				"backend = Postgres\n"
				"database_url = postgres://valet@localhost/valet\n"
				"schema = valet_test\n"
				"node_id = worker-1\n"
				"lease = 5s\n"
				"retry_backoff = 250ms\n"
				"retry_backoff_max = 1m\n"
				"retention_days = 7\n"
				"submit_timeout = 750ms\n"
				"[tasks]\n"
				"plugin_dir = /usr/lib/valet/tasks\n"
				"[log]\n"
				"format = JSON\n"
				"level = debug\n"
				"[task.true]\n"
				"command = /bin/sh -c true\n"
				"timeout = 5s\n"
				"max_attempts = 2\n"
				"[task.sha256]\n"
				"max_attempts = 3\n";

static void test_full_file(void **state)
{
	struct config *cfg = load_ok(full_conf);

	(void)state;
	assert_string_equal(cfg->listen, "[::1]:9090");
	assert_string_equal(cfg->cors_origins, "https://a.example https://b.example");
	assert_int_equal(cfg->max_body_bytes, 64 << 10);
	assert_false(cfg->access_log);
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->queue_capacity, 500);
	assert_int_equal(cfg->shutdown_grace_ms, 1500);
	assert_int_equal(cfg->default_timeout_ms, 120000);
	assert_int_equal(cfg->max_timeout_ms, 7200000);
	assert_int_equal(cfg->max_result_bytes, 2 << 20);
	assert_int_equal(cfg->max_output_bytes, 3 << 20);
	assert_string_equal(cfg->user, "valet");
	assert_int_equal(cfg->memory_limit_bytes, 1 << 30);
	assert_int_equal(cfg->cpu_limit_ms, 30000);
	assert_int_equal(cfg->max_files, 16);
	assert_int_equal(cfg->max_processes, 0);
	assert_int_equal(cfg->max_file_size, 0);
	assert_int_equal(cfg->uid_base, 61000);
	assert_string_equal(cfg->storage, "postgres");
	assert_string_equal(cfg->database_url, "postgres://valet@localhost/valet");
	assert_string_equal(cfg->db_schema, "valet_test");
	assert_string_equal(cfg->node_id, "worker-1");
	assert_int_equal(cfg->lease_ms, 5000);
	assert_int_equal(cfg->retry_backoff_ms, 250);
	assert_int_equal(cfg->retry_backoff_max_ms, 60000);
	assert_int_equal(cfg->retention_days, 7);
	assert_int_equal(cfg->submit_timeout_ms, 750);
	assert_int_equal(cfg->max_attempts, 4);
	assert_string_equal(cfg->plugin_dir, "/usr/lib/valet/tasks");
	assert_int_equal(cfg->log_format, LOG_JSON);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_int_equal(cfg->nexec_tasks, 2);
	assert_int_equal(cfg->exec_tasks[0].max_attempts, 2);
	assert_null(cfg->exec_tasks[1].argv);
	assert_int_equal(cfg->exec_tasks[1].max_attempts, 3);
	assert_string_equal(cfg->exec_tasks[0].name, "true");
	assert_string_equal(cfg->exec_tasks[0].argv[0], "/bin/sh");
	assert_string_equal(cfg->exec_tasks[0].argv[1], "-c");
	assert_string_equal(cfg->exec_tasks[0].argv[2], "true");
	assert_null(cfg->exec_tasks[0].argv[3]);
	assert_int_equal(cfg->exec_tasks[0].timeout_ms, 5000);
	assert_non_null(cfg->path);
	config_free(cfg);
}

/* A long command line: inih's own limit is 200 bytes (raised where possible). */
static void test_long_line(void **state)
{
	char conf[8192], arg[1001];
	struct config *cfg;

	(void)state;
	memset(arg, 'x', 1000);
	arg[1000] = '\0';
	snprintf(conf, sizeof(conf), "[task.long]\ncommand = /bin/sh -c %s\n", arg);
	cfg = load_ok(conf);
	assert_string_equal(cfg->exec_tasks[0].argv[2], arg);
	config_free(cfg);

	memset(conf, 0, sizeof(conf));
	strcpy(conf, "[server]\ncors_origins = ");
	memset(conf + strlen(conf), 'y', 5000);
	strcat(conf, "\n");
	check_error(conf, 2, "line too long (more than 4094 characters)");
}

/*
 * Leading white space is whatever isspace() says, as for inih: a section
 * line indented with \f or \v used to reach inih only (its keys went to the
 * previous section), and a key line indented so was taken for a second
 * value of the previous key ("duplicate key").
 */
static void test_leading_white_space(void **state)
{
	struct config *cfg;

	(void)state;
	check_error("[server]\n\f[jobs]\nmax_body = 2M\n", 3,
		    "unknown key \"max_body\" in [jobs]");
	cfg = load_ok("[server]\n\f[queue]\n\r\v workers = 3\n\v\t[jobs]\n\vmax_attempts = 2\n"
		      "\f \n\r\n");
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->max_attempts, 2);
	config_free(cfg);
}

/* ---- errors ------------------------------------------------------------------- */

static void test_missing_file(void **state)
{
	struct config *cfg = config_new();
	char err[512], path[PATH_MAX + 32];
	int rc;

	(void)state;
	snprintf(path, sizeof(path), "%s/no-such.conf", tmpdir);
	rc = config_load(cfg, path, err, sizeof(err));
	assert_int_equal(rc, -ENOENT);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_string_equal(err + strlen(path), ": cannot open: No such file or directory");
	config_free(cfg);
}

static void test_error_sections(void **state)
{
	char name65[80];

	(void)state;
	check_error("[server]\nlisten = :1\n[foo]\n", 3, "unknown section [foo]");
	check_error("[queue]\n[ task ]\n", 2, "unknown section [task]");
	check_error("; comment\n[task.]\ncommand = /bin/sh\n", 2,
		    "invalid task name \"\" (use 1 to 64 of A-Z a-z 0-9 _ . -)");
	check_error("[task.a b]\n", 1,
		    "invalid task name \"a b\" (use 1 to 64 of A-Z a-z 0-9 _ . -)");
	memset(name65, 'n', 65);
	strcpy(name65 + 65, "]\n");
	{
		char conf[128], msg[160];

		snprintf(conf, sizeof(conf), "[task.%s", name65);
		snprintf(msg, sizeof(msg),
			 "invalid task name \"%.65s\" (use 1 to 64 of A-Z a-z 0-9 _ . -)", name65);
		check_error(conf, 1, msg);
	}
	check_error("workers = 2\n[queue]\n", 1, "key \"workers\" outside of any section");
	check_error("[storage]\nschema = Valet\n", 2,
		    "schema: \"Valet\" is not a plain SQL name (lower-case letters, digits and _, "
		    "not starting with a digit, at most 63)");
	check_error("[storage]\nschema = 1abc\n", 2,
		    "schema: \"1abc\" is not a plain SQL name (lower-case letters, digits and _, "
		    "not starting with a digit, at most 63)");
	check_error("[jobs]\nmax_attempts = 101\n", 2, "max_attempts: must be between 1 and 100");
	check_error("[storage]\n\nsubmit_timeout = 50ms\n", 3,
		    "submit_timeout: must be between 100ms and 1h");
	check_error("[storage]\nsubmit_timeout = 0\n", 2,
		    "submit_timeout: must be between 100ms and 1h");
	check_error("[task.a]\nmax_attempts = 0\n", 2, "task.a: max_attempts: must be between 1 and 100");
	check_error("[task.a]\nmax_attempts = 2\nmax_attempts = 3\n", 3,
		    "duplicate key \"max_attempts\" in [task.a] (first on line 2)");
	check_error("[task.c]\ncommand = /bin/sh\n[task.c]\ncommand = /bin/sh\n", 3,
		    "duplicate section [task.c] (first on line 1)");
}

static void test_error_keys(void **state)
{
	(void)state;
	check_error("[server]\n\n[queue]\nwrokers = 4\n", 4, "unknown key \"wrokers\" in [queue]");
	check_error("[queue]\nworkers = 2\nworkers = 3\n", 3,
		    "duplicate key \"workers\" in [queue] (first on line 2)");
	check_error("[queue]\nworkers = 2\n[log]\n[queue]\nworkers = 3\n", 5,
		    "duplicate key \"workers\" in [queue] (first on line 2)");
	check_error("[task.t]\ncommand = /bin/sh\nretries = 3\n", 3,
		    "unknown key \"retries\" in [task.t]");
	check_error("[task.t]\ncommand = /bin/sh\ncommand = /bin/sh\n", 3,
		    "duplicate key \"command\" in [task.t] (first on line 2)");
}

static void test_error_values(void **state)
{
	(void)state;
	check_error("[queue]\n# c\n\nworkers = abc\n", 4, "workers: \"abc\" is not a number");
	check_error("[queue]\nworkers = 4x\n", 2, "workers: \"4x\" is not a number");
	check_error("[queue]\nworkers = \n", 2, "workers: \"\" is not a number");
	check_error("[queue]\nworkers = 0\n", 2, "workers: must be between 1 and 1024");
	check_error("[queue]\nworkers = 1025\n", 2, "workers: must be between 1 and 1024");
	check_error("[queue]\nworkers = 99999999999999999999\n", 2,
		    "workers: must be between 1 and 1024");
	check_error("[queue]\ncapacity = 10000001\n", 2,
		    "capacity: must be between 1 and 10000000");
	check_error(
	    "[queue]\nshutdown_grace = 10 sec\n", 2,
	    "shutdown_grace: \"10 sec\" is not a duration (use 500ms, 30s, 1.5s, 2m, 1h, 1d, "
	    "1h30m or a number of seconds; at least 1ms unless 0)");
	check_error("[queue]\nshutdown_grace = 2h\n", 2,
		    "shutdown_grace: must be between 0s and 1h");
	check_error("[jobs]\ndefault_timeout = 0\n", 2,
		    "default_timeout: must be between 1ms and 30d");
	check_error(
	    "[server]\nmax_body = lots\n", 2,
	    "max_body: \"lots\" is not a size (use 512k, 64M, 1G, 1MiB, 64MB or a number of "
	    "bytes)");
	check_error("[server]\nmax_body = 10\n", 2, "max_body: must be between 1k and 1G");
	check_error("[server]\nmax_body = 2G\n", 2, "max_body: must be between 1k and 1G");
	check_error(
	    "[server]\naccess_log = maybe\n", 2,
	    "access_log: \"maybe\" is not a boolean (use true/false, yes/no, on/off or 1/0)");
	check_error("[log]\nformat = xml\n", 2, "format: \"xml\" is not one of text, json");
	check_error("[log]\nlevel = verbose\n", 2,
		    "level: \"verbose\" is not one of debug, info, warn, error");
	check_error("[storage]\nbackend = sqlite\n", 2,
		    "backend: \"sqlite\" is not one of memory, postgres");
	check_error("[sandbox]\nuser =\n", 2, "user: must not be empty");
	check_error("[sandbox]\nuid_base = automatic\n", 2,
		    "uid_base: \"automatic\" is neither auto nor a number from 0 to 2000000000");
	check_error("[sandbox]\n\nuid_base = -1\n", 3,
		    "uid_base: \"-1\" is neither auto nor a number from 0 to 2000000000");
	check_error("[sandbox]\nuid_base = 2000000001\n", 2,
		    "uid_base: \"2000000001\" is neither auto nor a number from 0 to 2000000000");
	check_error("[server]\nlisten = 8080\n", 2,
		    "listen: \"8080\" is not an address (use HOST:PORT, [IPV6]:PORT or :PORT, port "
		    "0-65535)");
	check_error("[jobs]\ndefault_timeout = 2h\n", 2,
		    "max_timeout (1h) is less than default_timeout (2h)");
}

static void test_error_timeouts(void **state)
{
	(void)state;
	/* max_timeout is the key to blame when it is set. */
	check_error("[jobs]\ndefault_timeout = 10s\nmax_timeout = 5s\n", 3,
		    "max_timeout (5s) is less than default_timeout (10s)");
	check_error("[task.t]\ncommand = /bin/sh\ntimeout = 2h\n", 3,
		    "task.t: timeout (2h) is more than max_timeout (1h)");
	check_error(
	    "[task.t]\ncommand = /bin/sh\ntimeout = soon\n", 3,
	    "task.t: timeout: \"soon\" is not a duration (use 500ms, 30s, 1.5s, 2m, 1h, 1d, "
	    "1h30m or a number of seconds; at least 1ms unless 0)");
}

static void test_error_syntax(void **state)
{
	(void)state;
	check_error("[server]\nlisten\n", 2, "syntax error");
	check_error("[server\nlisten = :1\n", 1, "syntax error");
	check_error("[server ; comment]\n", 1, "syntax error");
	/* The first error in the file wins, whoever finds it. */
	check_error("[queue]\nbogus line\nworkers = x\n", 2, "syntax error");
	check_error("[queue]\nworkers = x\nbogus line\n", 2, "workers: \"x\" is not a number");
	check_error("[queue]\nbogus line\n[nope]\n", 2, "syntax error");
	check_error("[nope]\nbogus line\n", 1, "unknown section [nope]");
	/* A byte order mark does not hide the first section. */
	check_error("\xEF\xBB\xBF[queue]\nworkers = 0\n", 2, "workers: must be between 1 and 1024");
}

static void test_error_commands(void **state)
{
	char conf[PATH_MAX + 64], msg[PATH_MAX + 128];
	char *plain = write_file("#!/bin/sh\n", 0644);

	(void)state;
	snprintf(conf, sizeof(conf), "[task.x]\ncommand = %s arg\n", plain);
	snprintf(msg, sizeof(msg), "task.x: command \"%s\": not an executable file", plain);
	check_error(conf, 2, msg);

	snprintf(conf, sizeof(conf), "[task.x]\ncommand = %s\n", tmpdir);
	snprintf(msg, sizeof(msg), "task.x: command \"%s\": not an executable file", tmpdir);
	check_error(conf, 2, msg);

	snprintf(conf, sizeof(conf), "[task.x]\n\ncommand = ./missing --flag\n");
	snprintf(msg, sizeof(msg), "task.x: command \"%s/./missing\": not an executable file",
		 tmpdir);
	check_error(conf, 3, msg);

	check_error("[task.y]\ncommand = valet-no-such-program-xyz\n", 2,
		    "task.y: command \"valet-no-such-program-xyz\": not found in PATH");
	check_error("[task.y]\ncommand = /bin/sh -c 'echo\n", 2,
		    "task.y: command: unterminated quote");
	check_error("[task.y]\ncommand = /bin/sh -c \"echo\n", 2,
		    "task.y: command: unterminated quote");
	check_error("[task.y]\ncommand = /bin/sh \\\n", 2, "task.y: command: trailing backslash");
	check_error("[task.y]\ncommand =\n", 2, "task.y: command is empty");
	check_error("[task.y]\ncommand = ''\n", 2, "task.y: command \"\": not found in PATH");
	free(plain);
}

/* ---- relative paths and exec tasks ------------------------------------------- */

static void test_plugin_dir(void **state)
{
	char want[PATH_MAX + 32];
	struct config *cfg;

	(void)state;
	cfg = load_ok("[tasks]\nplugin_dir = ../build/tasks\n");
	snprintf(want, sizeof(want), "%s/../build/tasks", tmpdir);
	assert_string_equal(cfg->plugin_dir, want);
	config_free(cfg);

	cfg = load_ok("[tasks]\nplugin_dir = plugins\n");
	snprintf(want, sizeof(want), "%s/plugins", tmpdir);
	assert_string_equal(cfg->plugin_dir, want);
	config_free(cfg);

	cfg = load_ok("[tasks]\nplugin_dir = /opt/valet/tasks\n");
	assert_string_equal(cfg->plugin_dir, "/opt/valet/tasks");
	config_free(cfg);

	cfg = load_ok("[tasks]\nplugin_dir =\n");
	assert_string_equal(cfg->plugin_dir, "");
	config_free(cfg);
}

/* A config given by a relative path resolves against its directory too. */
static void test_relative_config_path(void **state)
{
	char *path = write_conf("[tasks]\nplugin_dir = p\n"), want[PATH_MAX + 8], cwd[PATH_MAX];
	struct config *cfg = config_new();
	char err[256];

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(config_load(cfg, path + 1, err, sizeof(err)), 0);
	assert_int_equal(chdir(cwd), 0);
	snprintf(want, sizeof(want), "%s/p", tmpdir);
	assert_string_equal(cfg->plugin_dir, want);
	assert_string_equal(cfg->path, path + 1);
	config_free(cfg);
	free(path);
}

static void test_exec_tasks(void **state)
{
	char *tool = write_file("#!/bin/sh\necho hi\n", 0755), *base = strrchr(tool, '/') + 1;
	char conf[2048], want[PATH_MAX + 32];
	const char *old_path = getenv("PATH");
	char *saved = old_path ? strdup(old_path) : NULL;
	struct config *cfg;
	char **a;

	(void)state;
	snprintf(conf, sizeof(conf),
		 "[task.quotes]\n"
		 "command = /bin/echo 'single  quoted' \"double \\\"q\\\" \\\\ \\n\" plain\\ space "
		 "a'b'\"c\" '' \"it's\" x\\\"y\n"
		 "timeout = 1.5s\n"
		 "[task.path]\n"
		 "command = sh -c 'exit 0'\n"
		 "[task.mine]\n"
		 "command = %s --flag\n"
		 "[task.rel]\n"
		 "command = ./%s ../x.py ./ .hidden sub/y --opt=./z\n",
		 base, base);
	/*
	 * "mine" is in tmpdir, which is also the current directory: the
	 * relative PATH entry "." must be skipped, so argv[0] is absolute.
	 */
	{
		char p[PATH_MAX + 64], cwd[PATH_MAX];

		snprintf(p, sizeof(p), ".:%s:/usr/local/bin:/usr/bin:/bin", tmpdir);
		setenv("PATH", p, 1);
		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(tmpdir), 0);
		cfg = load_ok(conf);
		assert_int_equal(chdir(cwd), 0);
	}
	if (saved)
		setenv("PATH", saved, 1);
	else
		unsetenv("PATH");
	free(saved);

	assert_int_equal(cfg->nexec_tasks, 4);
	a = cfg->exec_tasks[0].argv;
	assert_string_equal(cfg->exec_tasks[0].name, "quotes");
	assert_string_equal(a[0], "/bin/echo");
	assert_string_equal(a[1], "single  quoted");
	assert_string_equal(a[2], "double \"q\" \\ \\n");
	assert_string_equal(a[3], "plain space");
	assert_string_equal(a[4], "abc");
	assert_string_equal(a[5], "");
	assert_string_equal(a[6], "it's");
	assert_string_equal(a[7], "x\"y");
	assert_null(a[8]);
	assert_int_equal(cfg->exec_tasks[0].timeout_ms, 1500);

	a = cfg->exec_tasks[1].argv;
	assert_true(a[0][0] == '/');
	assert_string_equal(strrchr(a[0], '/'), "/sh");
	assert_int_equal(access(a[0], X_OK), 0);
	assert_string_equal(a[1], "-c");
	assert_string_equal(a[2], "exit 0");
	assert_null(a[3]);
	assert_int_equal(cfg->exec_tasks[1].timeout_ms, 0);

	assert_string_equal(cfg->exec_tasks[2].argv[0], tool);
	assert_string_equal(cfg->exec_tasks[2].argv[1], "--flag");

	/* The program and arguments starting with ./ or ../ are relative to the file. */
	a = cfg->exec_tasks[3].argv;
	snprintf(want, sizeof(want), "%s/./%s", tmpdir, base);
	assert_string_equal(a[0], want);
	snprintf(want, sizeof(want), "%s/../x.py", tmpdir);
	assert_string_equal(a[1], want);
	snprintf(want, sizeof(want), "%s/./", tmpdir);
	assert_string_equal(a[2], want);
	assert_string_equal(a[3], ".hidden");
	assert_string_equal(a[4], "sub/y");
	assert_string_equal(a[5], "--opt=./z");
	assert_null(a[6]);
	config_free(cfg);
	free(tool);
}

/* ---- parsers -------------------------------------------------------------------- */

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {
	    {"30s", 30000},
	    {"500ms", 500},
	    {"2m", 120000},
	    {"1h", 3600000},
	    {"1.5s", 1500},
	    {"0", 0},
	    {"0s", 0},
	    {"10", 10000},
	    {"0.5", 500},
	    {"1h30m", 5400000},
	    {"1d", 86400000},
	    {"2.5m", 150000},
	    {"1000us", 1},
	    {"1500us", 2},
	    {"1.0005s", 1001},
	    {"0.001", 1},
	    {"1m30s500ms", 90500},
	    {"007s", 7000},
	    {"1.0000000001s", 1001},
	    {"0.0015s", 2},
	};
	static const char *const bad[] = {
	    "",
	    "abc",
	    "250us",
	    "0.1ms",
	    "-1s",
	    "+1s",
	    "1x",
	    "s",
	    "1.s",
	    ".5s",
	    "1 s",
	    "30S",
	    "1h30",
	    "10 ",
	    " 10",
	    "1e3",
	    "99999999999999999999s",
	    "1ms1",
	    "1.5.5s",
	    "1sm",
	    "9999999999999999d",
	};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = -1;
		if (config_parse_duration_ms(ok[i].s, &ms) != 0 || ms != ok[i].ms)
			print_error("duration \"%s\" -> %lld\n", ok[i].s, (long long)ms);
		assert_int_equal(config_parse_duration_ms(ok[i].s, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_duration_ms(bad[i], &ms) != -EINVAL)
			print_error("duration \"%s\" accepted\n", bad[i]);
		assert_int_equal(config_parse_duration_ms(bad[i], &ms), -EINVAL);
	}
	assert_int_equal(config_parse_duration_ms(NULL, &ms), -EINVAL);
}

static void test_sizes(void **state)
{
	static const struct {
		const char *s;
		uint64_t n;
	} ok[] = {
	    {"512k", 512 << 10},  {"512K", 512 << 10}, {"64M", 64 << 20},  {"1G", 1 << 30},
	    {"1048576", 1048576}, {"1MiB", 1 << 20},   {"64MB", 64 << 20}, {"0", 0},
	    {"1.5k", 1536},	  {"2T", 2ULL << 40},  {"7b", 7},	   {"1kib", 1024},
	    {"1Gb", 1 << 30},	  {"0.5M", 512 << 10},
	};
	static const char *const bad[] = {
	    "",	   "abc",	   "1.5", "-1",	 "+1",	"1X",  "k",
	    "1 M", "99999999999T", "1kk", " 1k", "1k ", "1.k", "18446744073709551616",
	    "1iB",
	};
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		n = 1;
		if (config_parse_size(ok[i].s, &n) != 0 || n != ok[i].n)
			print_error("size \"%s\" -> %zu\n", ok[i].s, n);
		assert_int_equal(config_parse_size(ok[i].s, &n), 0);
		assert_int_equal(n, ok[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_size(bad[i], &n) != -EINVAL)
			print_error("size \"%s\" accepted\n", bad[i]);
		assert_int_equal(config_parse_size(bad[i], &n), -EINVAL);
	}
}

static void test_listen(void **state)
{
	static const struct {
		const char *s, *host;
		int port;
	} ok[] = {
	    {"127.0.0.1:8080", "127.0.0.1", 8080},
	    {"[::1]:8080", "::1", 8080},
	    {":8080", "0.0.0.0", 8080},
	    {"localhost:8080", "localhost", 8080},
	    {"example.com:0", "example.com", 0},
	    {"h:65535", "h", 65535},
	    {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
	    {"[::]:1", "::", 1},
	};
	static const char *const bad[] = {
	    "8080",	"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:8080", "[::1]8080",
	    "[::1",	"[zz]:80",   "[]:80",	   "a b:80",	      "h:-1",	  "h:+1",
	    "h:123456", "h:80x",     "",	   "[127.0.0.1]:80",
	};
	char host[256];
	int port;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		port = -1;
		assert_int_equal(config_parse_listen(ok[i].s, host, sizeof(host), &port), 0);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_listen(bad[i], host, sizeof(host), &port) != -EINVAL)
			print_error("listen \"%s\" accepted\n", bad[i]);
		assert_int_equal(config_parse_listen(bad[i], host, sizeof(host), &port), -EINVAL);
	}
	/* The host buffer is too small: refused, not cut. */
	assert_int_equal(config_parse_listen("localhost:80", host, 9, &port), -EINVAL);
	assert_int_equal(config_parse_listen("localhost:80", host, 10, &port), 0);
}

/* ---- environment and dump ----------------------------------------------------- */

static void test_env(void **state)
{
	struct config *cfg = config_new();

	(void)state;
	setenv("VALET_DATABASE_URL", "postgres://u:p@db/valet", 1);
	setenv("VALET_LISTEN", "0.0.0.0:9000", 1);
	config_apply_env(cfg);
	assert_string_equal(cfg->database_url, "postgres://u:p@db/valet");
	assert_string_equal(cfg->listen, "0.0.0.0:9000");

	/* Empty values are ignored. */
	setenv("VALET_DATABASE_URL", "", 1);
	unsetenv("VALET_LISTEN");
	config_apply_env(cfg);
	assert_string_equal(cfg->database_url, "postgres://u:p@db/valet");
	assert_string_equal(cfg->listen, "0.0.0.0:9000");
	unsetenv("VALET_DATABASE_URL");
	config_free(cfg);
}

/* config_dump() output as a new string. */
static char *dump(const struct config *cfg)
{
	FILE *f = tmpfile();
	char *text;
	long len;

	assert_non_null(f);
	config_dump(cfg, f);
	len = ftell(f);
	assert_true(len > 0);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	rewind(f);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return text;
}

/* What config_dump() prints reads back to the same configuration. */
static void test_dump_round_trip(void **state)
{
	struct config *cfg = load_ok(full_conf), *again;
	char *first = dump(cfg), *second, *body, *path;

	(void)state;
	assert_non_null(
	    strstr(first, "\n[queue]\nworkers = 3\ncapacity = 500\nshutdown_grace = 1500ms\n"));
	assert_non_null(strstr(first, "\n[log]\nformat = json\nlevel = debug\n"));
	assert_non_null(strstr(
	    first, "\n[task.true]\ncommand = /bin/sh -c true\ntimeout = 5s\nmax_attempts = 2\n"));
	assert_non_null(strstr(first, "\n[task.sha256]\nmax_attempts = 3\n"));
	assert_non_null(strstr(first, "max_output_size = 3M\n"));
	assert_non_null(strstr(first, "\nuid_base = 61000\n"));

	body = strchr(first, '\n'); /* skip the "# ... (path)" line */
	again = config_new();
	path = write_conf(body);
	{
		char err[512] = "";
		int rc = config_load(again, path, err, sizeof(err));
		if (rc)
			print_message("%s\n", err);
		assert_int_equal(rc, 0);
	}
	second = dump(again);
	assert_string_equal(strchr(second, '\n'), body);

	/* Arguments that need quoting survive. */
	config_free(again);
	free(second);
	free(path);
	again = load_ok("[task.q]\ncommand = /bin/echo \"a b\" it\\'s '' x\\\\y\n");
	second = dump(again);
	assert_non_null(strstr(second, "command = /bin/echo 'a b' 'it'\\''s' '' 'x\\y'\n"));
	body = strstr(second, "[task.q]");
	config_free(again);
	again = load_ok(body);
	assert_string_equal(again->exec_tasks[0].argv[2], "it's");
	assert_string_equal(again->exec_tasks[0].argv[3], "");
	assert_string_equal(again->exec_tasks[0].argv[4], "x\\y");
	config_free(again);
	free(second);
	free(first);
	config_free(cfg);
}

/*
 * A value that starts with ';' ("user =;x": inih's inline comments need
 * white space before the ';') is dumped so that it reads back: found by
 * tests/fuzz/fuzz_config (corpus/config/regress-dump-semicolon.conf).
 */
static void test_dump_semicolon_value(void **state)
{
	struct config *cfg = load_ok("[server]\ncors_origins =;x\n[sandbox]\nuser=;nobody\n"
				     "[storage]\ndatabase_url =;t@db\n"),
		      *again;
	char *first = dump(cfg), *second, *path;

	(void)state;
	assert_string_equal(cfg->cors_origins, ";x");
	assert_string_equal(cfg->user, ";nobody");
	assert_non_null(strstr(first, "\ncors_origins =;x\n"));
	assert_non_null(strstr(first, "\nuser =;nobody\n"));
	assert_non_null(strstr(first, "\ndatabase_url =;t@db\n"));
	path = write_conf(strchr(first, '\n'));
	again = config_new();
	assert_non_null(again);
	assert_int_equal(config_load(again, path, NULL, 0), 0);
	assert_string_equal(again->cors_origins, ";x");
	assert_string_equal(again->user, ";nobody");
	assert_string_equal(again->database_url, ";t@db");
	second = dump(again);
	assert_string_equal(strchr(second, '\n'), strchr(first, '\n'));
	free(second);
	free(first);
	free(path);
	config_free(again);
	config_free(cfg);
}

/* conf = head, then a line of exactly 4094 characters (the most the reader
 * takes): key, fill up to the length, tail. */
static void long_line(char *conf, const char *head, const char *key, char fill, const char *tail)
{
	size_t n = strlen(head), k = strlen(key), t = strlen(tail);

	memcpy(conf, head, n);
	memcpy(conf + n, key, k);
	memset(conf + n + k, fill, 4094 - k - t);
	strcpy(conf + n + 4094 - t, tail);
	strcat(conf, "\n");
}

/*
 * A line that fits may print back longer (relative paths made absolute,
 * quoting): such a value is refused where it is read, so that what
 * valetd -t -v prints always reads back. Found by tests/fuzz/fuzz_config
 * (corpus/config/regress-dump-long-command.conf).
 */
static void test_dump_line_limit(void **state)
{
	static const struct {
		const char *head, *key;
		char fill;
		const char *tail, *msg;
	} cases[] = {
	    {"[task.long]\n", "command = /bin/sh ./", 'x', "",
	     "task.long: command is too long once its paths are made absolute (valetd -t -v "
	     "would print "},
	    {"[task.quoted]\n", "command = /bin/sh -c \"", '\'', "\"",
	     "task.quoted: command is too long once its paths are made absolute (valetd -t -v "
	     "would print 16"},
	    {"[tasks]\n", "plugin_dir=", 'p', "",
	     "plugin_dir: too long once read (valetd -t -v would print "},
	};
	char conf[8192], err[1024];
	struct config *cfg;
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long_line(conf, cases[i].head, cases[i].key, cases[i].fill, cases[i].tail);
		cfg = load(conf, &rc, err, sizeof(err), NULL);
		if (!strstr(err, cases[i].msg))
			print_error("%s\n", err);
		assert_int_equal(rc, -EINVAL);
		assert_non_null(strstr(err, ":2: "));
		assert_non_null(strstr(err, cases[i].msg));
		assert_non_null(strstr(err, " characters, at most 4094)"));
		config_free(cfg);
	}
	/* Just short enough: it loads, and the dump's line is as long. */
	long_line(conf, "[tasks]\n", "plugin_dir = /", 'p', "");
	cfg = load_ok(conf);
	assert_int_equal(strlen(cfg->plugin_dir), 4094 - strlen("plugin_dir = "));
	config_free(cfg);
}

/* uid_base: auto (the default, any case), 0 or a number; the dump says auto. */
static void test_uid_base(void **state)
{
	struct config *cfg;
	char *dumped;

	(void)state;
	cfg = config_new();
	dumped = dump(cfg);
	assert_non_null(strstr(dumped, "\n[sandbox]\n"));
	assert_non_null(strstr(dumped, "\nuid_base = auto\n"));
	free(dumped);
	config_free(cfg);
	cfg = load_ok("[sandbox]\nuid_base = 0\n");
	assert_int_equal(cfg->uid_base, 0);
	dumped = dump(cfg);
	assert_non_null(strstr(dumped, "\nuid_base = 0\n"));
	free(dumped);
	config_free(cfg);
	cfg = load_ok("[sandbox]\nuid_base = 61000\n");
	assert_int_equal(cfg->uid_base, 61000);
	config_free(cfg);
	cfg = load_ok("[sandbox]\nuid_base = AUTO\n");
	assert_int_equal(cfg->uid_base, CONFIG_AUTO);
	config_free(cfg);
}

/* [task.NAME] profile: exec (default) or exec+net for exec tasks, strict only for C tasks. */
static void test_task_profiles(void **state)
{
	struct config *cfg;
	char *dumped;

	(void)state;
	cfg = load_ok("[task.plain]\ncommand = /bin/true\n"
		      "[task.net]\nprofile = exec+net\ncommand = /bin/true\n"
		      "[task.pinned]\ncommand = /bin/true\nprofile = exec@2\n"
		      "[task.netpinned]\ncommand = /bin/true\nprofile = exec+net@2\n"
		      "[task.ctask]\nmax_attempts = 2\n"
		      "[task.cstrict]\nprofile = strict@1\n");
	assert_int_equal(cfg->nexec_tasks, 6);
	assert_int_equal(cfg->exec_tasks[0].profile, SBX_PROFILE_EXEC);
	assert_int_equal(cfg->exec_tasks[1].profile, SBX_PROFILE_EXEC_NET);
	assert_int_equal(cfg->exec_tasks[2].profile, SBX_PROFILE_EXEC);
	assert_int_equal(cfg->exec_tasks[3].profile, SBX_PROFILE_EXEC_NET);
	assert_int_equal(cfg->exec_tasks[4].profile, SBX_PROFILE_STRICT);
	assert_int_equal(cfg->exec_tasks[5].profile, SBX_PROFILE_STRICT);
	dumped = dump(cfg);
	assert_non_null(strstr(dumped, "\n[task.plain]\ncommand = /bin/true\nprofile = exec\n"));
	assert_non_null(strstr(dumped, "\n[task.net]\ncommand = /bin/true\nprofile = exec+net\n"));
	assert_non_null(strstr(dumped, "\n[task.ctask]\nmax_attempts = 2\nprofile = strict\n"));
	free(dumped);
	config_free(cfg);

	/* A C task (no command) runs under strict, whatever the key's place. */
	check_error("[task.c]\nprofile = exec\n", 2, "C tasks run under the strict profile");
	check_error("[task.c]\ntimeout = 1s\nprofile = exec+net\n[server]\n", 3,
		    "C tasks run under the strict profile");
	check_error("[task.x]\nprofile = strict\ncommand = /bin/true\n", 2,
		    "task.x: exec tasks run under the exec or exec+net profile");
	check_error("[task.x]\ncommand = /bin/true\nprofile = net\n", 3,
		    "task.x: profile: \"net\" is not one of strict, exec, exec+net");
	check_error("[task.x]\ncommand = /bin/true\nprofile = EXEC\n", 3,
		    "task.x: profile: \"EXEC\" is not one of strict, exec, exec+net");
	check_error("[task.x]\ncommand = /bin/true\nprofile =\n", 3,
		    "task.x: profile: \"\" is not one of strict, exec, exec+net");
	check_error("[task.x]\ncommand = /bin/true\nprofile = exec@1\n", 3,
		    "task.x: profile: \"exec@1\": this valetd has exec@2");
	check_error("[task.x]\ncommand = /bin/true\nprofile = exec+net@7\n", 3,
		    "task.x: profile: \"exec+net@7\": this valetd has exec+net@2");
	check_error("[task.x]\ncommand = /bin/true\nprofile = exec+net@1\n", 3,
		    "task.x: profile: \"exec+net@1\": this valetd has exec+net@2");
	check_error("[task.x]\ncommand = /bin/true\nprofile = exec\nprofile = exec\n", 4,
		    "duplicate key \"profile\" in [task.x] (first on line 3)");
}

static void test_dump_hides_password(void **state)
{
	struct config *cfg = config_new();
	char *out;

	(void)state;
	free(cfg->database_url);
	cfg->database_url = strdup("postgres://valet:s3cret@db:5432/valet");
	out = dump(cfg);
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "database_url = postgres://valet:***@db:5432/valet\n"));
	free(out);

	free(cfg->database_url);
	cfg->database_url = strdup("host=db user=valet password=s3cret dbname=valet");
	out = dump(cfg);
	assert_null(strstr(out, "s3cret"));
	assert_non_null(
	    strstr(out, "database_url = host=db user=valet password=*** dbname=valet\n"));
	free(out);
	config_free(cfg);
}

/*
 * packaging/valetd.conf lists every key, commented out, with its default:
 * uncommenting them all must load, set every key once, and change nothing.
 */
static void test_packaged_conf(void **state)
{
	char path[PATH_MAX], line[1024], *text = NULL, *want, *got, *p;
	size_t len = 0, nkeys = 0, uncommented = 0;
	struct config *defaults = config_new(), *cfg;
	FILE *in, *out;

	(void)state;
	/* __FILE__ is tests/unit/test_config.c, relative to the repository. */
	snprintf(path, sizeof(path), "%.*s/../../packaging/valetd.conf",
		 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
	in = fopen(path, "r");
	if (!in) {
		config_free(defaults);
		SKIP_NEEDS("cannot open %s: not run from the repository root", path);
	}
	out = open_memstream(&text, &len);
	assert_non_null(out);
	while (fgets(line, sizeof(line), in)) {
		size_t kl = strspn(line + 1, "abcdefghijklmnopqrstuvwxyz_");

		if (!strncmp(line, "#[task.", 7))
			break; /* the example task */
		if (line[0] == '#' && kl && !strncmp(line + 1 + kl, " =", 2) &&
		    strncmp(line, "#workers =", 10)) {
			fputs(line + 1, out);
			uncommented++;
		} else {
			fputs(line, out);
		}
	}
	fclose(in);
	fclose(out);

	cfg = load_ok(text);
	want = dump(defaults);
	got = dump(cfg);
	assert_string_equal(strchr(got, '\n'), strchr(want, '\n'));
	for (p = want; (p = strstr(p, " =")); p++)
		nkeys++;
	assert_int_equal(uncommented, nkeys - 1); /* all but workers */
	assert_non_null(strstr(text, "\n#workers = <number of CPUs>\n"));
	free(got);
	free(want);
	free(text);
	config_free(cfg);
	config_free(defaults);
}

/* ---- limits: task defaults and the [jobs] maxima ----------------------------- */

static void test_limits(void **state)
{
	struct config *cfg;
	const struct config_exec_task *t;
	char *out;

	(void)state;
	/* Out of the box each maximum is its limit's default. */
	cfg = config_new();
	assert_int_equal(cfg->max_memory_limit, 256 << 20);
	assert_int_equal(cfg->max_cpu_limit_ms, 0);
	assert_int_equal(cfg->max_process_limit, 64);
	assert_int_equal(cfg->max_output_limit, 1 << 20);
	config_free(cfg);

	/* A maximum not in the file follows its limit as the file sets it. */
	cfg = load_ok("[sandbox]\nmemory_limit = 64M\ncpu_limit = 5s\nmax_processes = 8\n"
		      "[jobs]\nmax_output_size = 2M\n");
	assert_int_equal(cfg->max_memory_limit, 64 << 20);
	assert_int_equal(cfg->max_cpu_limit_ms, 5000);
	assert_int_equal(cfg->max_process_limit, 8);
	assert_int_equal(cfg->max_output_limit, 2 << 20);
	config_free(cfg);

	/* Task defaults, for exec and C tasks; unset ones are -1. */
	cfg = load_ok("[jobs]\nmax_memory_limit = 1G\nmax_cpu_limit = 0\nmax_process_limit = 0\n"
		      "max_output_limit = 8M\n"
		      "[task.t]\ncommand = /bin/sh\nmemory_limit = 512M\ncpu_limit = 1.5s\n"
		      "max_processes = 0\nmax_output_size = 64k\n"
		      "[task.c]\nmax_processes = 0\n");
	assert_int_equal(cfg->nexec_tasks, 2);
	t = &cfg->exec_tasks[0];
	assert_int_equal(t->memory_limit_bytes, 512 << 20);
	assert_int_equal(t->cpu_limit_ms, 1500);
	assert_int_equal(t->max_processes, 0);
	assert_int_equal(t->max_output_bytes, 64 << 10);
	t = &cfg->exec_tasks[1];
	assert_null(t->argv);
	assert_int_equal(t->memory_limit_bytes, -1);
	assert_int_equal(t->cpu_limit_ms, -1);
	assert_int_equal(t->max_processes, 0);
	assert_int_equal(t->max_output_bytes, -1);
	/* The dump prints them back (0 as 0), and reads back the same. */
	{
		FILE *f = open_memstream(&out, &(size_t){0});
		assert_non_null(f);
		config_dump(cfg, f);
		fclose(f);
	}
	assert_non_null(strstr(out, "\n[task.t]\ncommand = /bin/sh\nprofile = exec\nmemory_limit = 512M\n"
				    "cpu_limit = 1500ms\nmax_processes = 0\nmax_output_size = 64k\n"));
	assert_non_null(strstr(out, "\n[task.c]\nprofile = strict\nmax_processes = 0\n"));
	assert_non_null(strstr(out, "max_memory_limit = 1G\nmax_cpu_limit = 0s\n"
				    "max_process_limit = 0\nmax_output_limit = 8M\n"));
	free(out);
	config_free(cfg);
}

static void test_error_limits(void **state)
{
	(void)state;
	/* A maximum below its default. */
	check_error("[jobs]\nmax_memory_limit = 128M\n", 2,
		    "max_memory_limit (128M) is less than [sandbox] memory_limit (256M)");
	check_error("[sandbox]\ncpu_limit = 10s\n[jobs]\nmax_cpu_limit = 5s\n", 4,
		    "max_cpu_limit (5s) is less than [sandbox] cpu_limit (10s)");
	check_error("[jobs]\nmax_process_limit = 32\n", 2,
		    "max_process_limit (32) is less than [sandbox] max_processes (64)");
	check_error("[jobs]\nmax_output_limit = 512k\n", 2,
		    "max_output_limit (512k) is less than max_output_size (1M)");
	/* No limit by default: only "no maximum" is not below it. */
	check_error("[jobs]\nmax_cpu_limit = 1h\n", 2,
		    "max_cpu_limit (1h) is less than [sandbox] cpu_limit (none)");
	check_error("[sandbox]\nmemory_limit = 0\n[jobs]\nmax_memory_limit = 1G\n", 4,
		    "max_memory_limit (1G) is less than [sandbox] memory_limit (none)");
	check_error("[jobs]\nmax_output_limit = 0\n", 2,
		    "max_output_limit: must be between 1k and 1G");
	/* A task default above its maximum. */
	check_error("[task.t]\ncommand = /bin/sh\nmemory_limit = 512M\n", 3,
		    "task.t: memory_limit (512M) is more than max_memory_limit (256M)");
	check_error("[task.t]\ncommand = /bin/sh\n\nmemory_limit = 0\n", 4,
		    "task.t: memory_limit (none) is more than max_memory_limit (256M)");
	check_error("[task.t]\nmax_processes = 65\ncommand = /bin/sh\n", 2,
		    "task.t: max_processes (65) is more than max_process_limit (64)");
	check_error("[sandbox]\ncpu_limit = 1s\n[jobs]\nmax_cpu_limit = 2s\n"
		    "[task.t]\ncommand = /bin/sh\ncpu_limit = 3s\n",
		    7, "task.t: cpu_limit (3s) is more than max_cpu_limit (2s)");
	check_error("[task.t]\ncommand = /bin/sh\nmax_output_size = 2M\n", 3,
		    "task.t: max_output_size (2M) is more than max_output_limit (1M)");
	/* Values, as for the global keys. */
	check_error("[task.t]\ncommand = /bin/sh\nmax_processes = x\n", 3,
		    "task.t: max_processes: \"x\" is not a number");
	check_error("[task.t]\ncommand = /bin/sh\nmax_output_size = 10\n", 3,
		    "task.t: max_output_size: must be between 1k and 1G");
	check_error("[task.t]\ncommand = /bin/sh\ncpu_limit = 1s\ncpu_limit = 2s\n", 4,
		    "duplicate key \"cpu_limit\" in [task.t] (first on line 3)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_leading_white_space),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_error_sections),
	    cmocka_unit_test(test_error_keys),
	    cmocka_unit_test(test_error_values),
	    cmocka_unit_test(test_error_timeouts),
	    cmocka_unit_test(test_error_syntax),
	    cmocka_unit_test(test_error_commands),
	    cmocka_unit_test(test_plugin_dir),
	    cmocka_unit_test(test_relative_config_path),
	    cmocka_unit_test(test_exec_tasks),
	    cmocka_unit_test(test_task_profiles),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_listen),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_dump_round_trip),
	    cmocka_unit_test(test_dump_semicolon_value),
	    cmocka_unit_test(test_dump_line_limit),
	    cmocka_unit_test(test_uid_base),
	    cmocka_unit_test(test_dump_hides_password),
	    cmocka_unit_test(test_packaged_conf),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_error_limits),
	};

	return cmocka_run_group_tests(tests, testdir_setup, testdir_teardown);
}
