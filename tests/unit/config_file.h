/*
 * config_file.h - for the unit tests that load config files (test_config.c,
 * test_config_dump.c, test_netpolicy.c): files written into testdir.h's
 * tmpdir, loaded, and their errors checked. Include after cmocka.h and
 * testdir.h.
 */
#ifndef VALET_TEST_CONFIG_FILE_H
#define VALET_TEST_CONFIG_FILE_H

#include <sys/stat.h>

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

/* Every key of the file, none at its default (test_full_file, the dump's round trip). */
static const char full_conf[] __attribute__((unused)) = "\xEF\xBB\xBF# every key, none at its default\n"
				"[server]\n"
				"listen = [::1]:9090\n"
				"cors_origins = https://a.example https://b.example\n"
				"allowed_hosts = valet.example, .corp.example\n"
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

#endif
