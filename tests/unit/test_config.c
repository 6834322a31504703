/*
 * test_config.c - supervisor/config.c: defaults, a full file, every error
 * message with its line, relative paths, exec task commands, the duration,
 * size and listen parsers, the limits and their maxima. The environment and
 * the dump are test_config_dump.c's.
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

#include "config_file.h"

/* ---- defaults and a full file ----------------------------------------------- */

static void test_defaults(void **state)
{
	struct config *cfg = config_new();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_string_equal(cfg->cors_origins, "");
	assert_string_equal(cfg->allowed_hosts, "");
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

static void test_full_file(void **state)
{
	struct config *cfg = load_ok(full_conf);

	(void)state;
	assert_string_equal(cfg->listen, "[::1]:9090");
	assert_string_equal(cfg->cors_origins, "https://a.example https://b.example");
	assert_string_equal(cfg->allowed_hosts, "valet.example, .corp.example");
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
		    "not starting with a digit, at most 56)");
	check_error("[storage]\nschema = 1abc\n", 2,
		    "schema: \"1abc\" is not a plain SQL name (lower-case letters, digits and _, "
		    "not starting with a digit, at most 56)");
	/* 57 bytes: "<schema>_cancel" would be a channel name PostgreSQL refuses. */
	check_error("[storage]\nschema = a23456789012345678901234567890123456789012345678901234567\n", 2,
		    "schema: \"a23456789012345678901234567890123456789012345678901234567\" is not a "
		    "plain SQL name (lower-case letters, digits and _, not starting with a digit, at "
		    "most 56)");
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
	/* A Host's name is compared alone: a port, scheme or path would
	 * quietly match nothing. */
	for (size_t i = 0; i < 5; i++) {
		static const char *const bad[] = {"valet.example:8080", "https://valet.example",
						  "valet.example/ui", "..example", "*.example"};
		char conf[128], want[256];

		snprintf(conf, sizeof(conf), "[server]\nallowed_hosts = ok.example %s\n", bad[i]);
		snprintf(want, sizeof(want),
			 "allowed_hosts: \"%s\" is not a host name (a name, .domain for it and "
			 "the names under it, or *; no scheme, port or path)",
			 bad[i]);
		check_error(conf, 2, want);
	}
	config_free(load_ok("[server]\nallowed_hosts = * , a-b.example .c_d.example\n"));
}

static void test_error_timeouts(void **state)
{
	(void)state;
	/* max_timeout is the key to blame when it is set. */
	check_error("[jobs]\ndefault_timeout = 10s\nmax_timeout = 5s\n", 3,
		    "max_timeout (5s) is less than default_timeout (10s)");
	check_error("[task.t]\ncommand = /bin/sh\ntimeout = 2h\n", 3,
		    "task.t: timeout (2h) is more than max_timeout (1h)");
	/* Room for one body of the largest, at the later of the two lines. */
	check_error("[server]\nmax_body_memory = 512k\nmax_body = 1M\n", 3,
		    "max_body_memory (512k) is less than max_body (1M)");
	check_error("[server]\nmax_body_memory = 512k\n", 2,
		    "max_body_memory (512k) is less than max_body (1M)");
	config_free(load_ok("[server]\nmax_body_memory = 1M\n"));
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
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_listen),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_error_limits),
	};

	return cmocka_run_group_tests(tests, testdir_setup, testdir_teardown);
}
