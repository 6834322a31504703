/*
 * test_config_dump.c - supervisor/config.c: the environment over the file,
 * and config_dump() (a round trip through the file, values with ';', the
 * line limit, the hidden password, uid_base and task profiles as printed),
 * and packaging/valetd.conf (every key, uncommented, loads and changes
 * nothing).
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

#define TESTDIR_NAME "valet-test-config-dump"
#include "testdir.h"

#include "config_file.h"

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

/* conf's [task.q], loaded, dumped (the dump must have line), and the
 * dump's [task.q] loaded again: that config (the caller frees). */
static struct config *command_round_trip(const char *conf, const char *line)
{
	struct config *cfg = load_ok(conf), *again;
	char *out = dump(cfg);

	assert_non_null(strstr(out, line));
	again = load_ok(strstr(out, "[task.q]"));
	free(out);
	config_free(cfg);
	return again;
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
	again = command_round_trip("[task.q]\ncommand = /bin/echo \"a b\" it\\'s '' x\\\\y\n",
				   "command = /bin/echo 'a b' 'it'\\''s' '' 'x\\y'\n");
	assert_string_equal(again->exec_tasks[0].argv[2], "it's");
	assert_string_equal(again->exec_tasks[0].argv[3], "");
	assert_string_equal(again->exec_tasks[0].argv[4], "x\\y");
	config_free(again);

	/* An argument with " ;" in it ('a ';b reads as one word): written
	 * with the ';' outside quotes, or inih would take the rest of the
	 * line for a comment (found by fuzz_config). */
	again = command_round_trip("[task.q]\ncommand = /bin/echo 'a ';b\n",
				   "command = /bin/echo 'a '\\;'b'\n");
	assert_string_equal(again->exec_tasks[0].argv[1], "a ;b");
	config_free(again);
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
		      "[task.cstrict]\nprofile = strict@2\n");
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
	/* strict 2 allows a forker's child's getppid() and prctl()s. */
	check_error("[task.c]\nprofile = strict@1\n", 2,
		    "task.c: profile: \"strict@1\": this valetd has strict@2");
	check_error("[task.x]\ncommand = /bin/true\nprofile = exec\nprofile = exec\n", 4,
		    "duplicate key \"profile\" in [task.x] (first on line 3)");
}

/* The dump of a config whose database_url is url: it shows none of secret
 * and has "database_url = " shown. */
static void check_masked(const char *url, const char *secret, const char *shown)
{
	struct config *cfg = config_new();
	char line[512], *out;

	free(cfg->database_url);
	cfg->database_url = strdup(url);
	out = dump(cfg);
	snprintf(line, sizeof(line), "database_url = %s\n", shown);
	if (strstr(out, secret) || !strstr(out, line))
		fail_msg("%s\n  dumped as: %.*s", url, (int)strcspn(strstr(out, "database_url"), "\n"),
			 strstr(out, "database_url"));
	free(out);
	config_free(cfg);
}

static void test_dump_hides_password(void **state)
{
	(void)state;
	check_masked("postgres://valet:s3cret@db:5432/valet", "s3cret",
		     "postgres://valet:***@db:5432/valet");
	check_masked("host=db user=valet password=s3cret dbname=valet", "s3cret",
		     "host=db user=valet password=*** dbname=valet");
	/* An escaped space in a value. */
	check_masked("host=db password=s3\\ cret user=valet", "cret",
		     "host=db password=*** user=valet");
	/* A quoted value with a space, and a second password (libpq takes
	 * the last one). */
	check_masked("host=db password='s3 \\'cret' user=valet password=s4cret", "cret",
		     "host=db password=*** user=valet password=***");
	/* In a URL: the password parameter up to the next &; and user info
	 * as libpq reads it (a / before the @ means there is none). */
	check_masked("postgres://valet:s3cret@db/valet?password=s4cret&sslmode=require", "cret",
		     "postgres://valet:***@db/valet?password=***&sslmode=require");
	check_masked("postgres://valet:s1password=cret(s://v:s3cret@b.[x=e/v?s=r =default_et@bd500",
		     "cret", "postgres://valet:s1password=***");
	/* A query value with a / in it hides the rest: what is left must not
	 * read as a user info the / had hidden. */
	check_masked("postgres://valet:s1password=cr/et&q=s3cret@db", "cret",
		     "postgres://valet:s1password=***");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_dump_round_trip),
	    cmocka_unit_test(test_dump_semicolon_value),
	    cmocka_unit_test(test_dump_line_limit),
	    cmocka_unit_test(test_uid_base),
	    cmocka_unit_test(test_task_profiles),
	    cmocka_unit_test(test_dump_hides_password),
	    cmocka_unit_test(test_packaged_conf),
	};

	return cmocka_run_group_tests(tests, testdir_setup, testdir_teardown);
}
