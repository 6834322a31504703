/*
 * test_hidden.c - supervisor/hidden.c: the directories no job may see.
 * hidden_check_list ([sandbox] hide: which paths are directories one can
 * name), hidden_dirs (what is hidden: the fixed ones, the configuration's
 * directory and its real file's, hide, more; once each) and hidden_check
 * (which configurations would hide what jobs need, and the sentence that
 * says so).
 *
 * Every configuration is a real one: config_new() and config_load() on
 * files written into a private directory under /tmp (removed at the end),
 * with real executable programs and symbolic links in it. Nothing under
 * /etc is created: where a test needs a configuration in /etc it points
 * cfg->path there after the load (hidden_check() resolves the path's
 * directory, it does not read the file), or links to /etc/passwd.
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

#include "../../supervisor/config.h"
#include "../../supervisor/hidden.h"

#define TESTDIR_NAME "valet-test-hidden"
#include "testdir.h"


/* tmpdir/rel into out. */
static char *at(char *out, const char *rel)
{
	fmt(out, PATH_MAX, "%s/%s", tmpdir, rel);
	return out;
}

/* The directory tmpdir/rel (made if missing). */
static void make_dir(const char *rel)
{
	char p[PATH_MAX];

	if (mkdir(at(p, rel), 0755) < 0)
		assert_int_equal(errno, EEXIST);
}

/* The file tmpdir/rel holding text, with mode. */
static void make_file(const char *rel, const char *text, mode_t mode)
{
	char p[PATH_MAX];
	FILE *f = fopen(at(p, rel), "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(p, mode), 0);
}

/* A configuration loaded from tmpdir/rel; the load must succeed. */
static struct config *load(const char *rel)
{
	char p[PATH_MAX], err[1024] = "";
	struct config *cfg = config_new();

	assert_non_null(cfg);
	if (config_load(cfg, at(p, rel), err, sizeof(err)) != 0)
		fail_msg("%s: unexpected error: %s", p, err);
	return cfg;
}

/* Write text to tmpdir/rel and load it. */
static struct config *conf(const char *rel, const char *text)
{
	make_file(rel, text, 0644);
	return load(rel);
}

/* ---- hidden_check_list ------------------------------------------------------------------- */

static void list_ok(const char *list)
{
	char msg[512] = "";

	if (hidden_check_list("hide", list, msg, sizeof(msg)) != 0)
		fail_msg("\"%s\" refused: %s", list, msg);
}

/* list must be refused, naming bad. */
static void list_bad(const char *list, const char *bad)
{
	char msg[PATH_MAX + 512], want[PATH_MAX + 512];

	if (hidden_check_list("hide", list, msg, sizeof(msg)) != -EINVAL)
		fail_msg("\"%s\" accepted", list);
	fmt(want, sizeof(want),
	    "hide: \"%s\" is not an absolute directory path (no . or .. components, no // "
	    "or trailing /, not /)",
	    bad);
	assert_string_equal(msg, want);
}

static void test_check_list(void **state)
{
	char longest[PATH_MAX + 8], list[PATH_MAX + 64];

	(void)state;
	list_ok("");
	list_ok(" \t ");
	list_ok("/srv/secrets");
	list_ok("/a");
	list_ok("  /srv/a\t/srv/b /var/lib/valet  ");
	/* Dots that are not . or .. components. */
	list_ok("/srv/.hidden /srv/..x /srv/x. /srv/x.. /srv/... /srv/a.b/c");
	/* Whether they are needed is hidden_check()'s business, not this one's. */
	list_ok("/usr /etc");

	list_bad("srv/secrets", "srv/secrets");
	list_bad("/srv/a ./b", "./b");
	list_bad("~/secrets", "~/secrets");
	list_bad("/", "/");
	list_bad("/srv/a / /srv/b", "/");
	list_bad("/srv/./a", "/srv/./a");
	list_bad("/srv/../usr", "/srv/../usr");
	list_bad("/srv/a/.", "/srv/a/.");
	list_bad("/srv/a/..", "/srv/a/..");
	list_bad("/.", "/.");
	list_bad("/..", "/..");
	list_bad("/srv/a\t/./srv", "/./srv");
	list_bad("/srv/a/.. /srv/b", "/srv/a/..");
	/* Spellings of / and of other directories that string comparison
	 * would not recognise (hidden_check() compares strings). */
	list_bad("//", "//");
	list_bad("/usr/", "/usr/");
	list_bad("//usr", "//usr");
	list_bad("/srv//a", "/srv//a");

	/* PATH_MAX characters are too many for a path with its NUL. */
	memset(longest, 'a', PATH_MAX);
	longest[0] = '/';
	longest[PATH_MAX] = '\0';
	assert_int_equal(hidden_check_list("sandbox.hide", longest, list, sizeof(list)), -EINVAL);
	/* The message quotes at most 200 characters of it. */
	{
		char want[256];

		fmt(want, sizeof(want),
		    "sandbox.hide: \"%.200s\" is not an absolute directory path", longest);
		assert_memory_equal(list, want, strlen(want));
	}
	longest[PATH_MAX - 1] = '\0';
	list_ok(longest);
}

/* ---- hidden_dirs ------------------------------------------------------------------------- */

/* dirs must be exactly want (NULL-terminated), in that order. */
static void expect_dirs(char **dirs, const char *const *want)
{
	size_t i;

	assert_non_null(dirs);
	for (i = 0; want[i]; i++) {
		if (!dirs[i])
			fail_msg("missing %s (entry %zu)", want[i], i);
		assert_string_equal(dirs[i], want[i]);
	}
	if (dirs[i])
		fail_msg("unexpected entry %zu: %s", i, dirs[i]);
}

static void test_dirs(void **state)
{
	char own[PATH_MAX], real[PATH_MAX], link[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	struct config *cfg;
	char **dirs;

	(void)state;
	/* Built-in defaults: no file, the fixed two. */
	cfg = config_new();
	assert_non_null(cfg);
	dirs = hidden_dirs(cfg, NULL);
	expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", NULL});
	hidden_free(dirs);
	config_free(cfg);

	/* The file's directory, real. */
	make_dir("own");
	cfg = conf("own/valet.conf", "[queue]\nworkers = 2\n");
	at(own, "own");
	dirs = hidden_dirs(cfg, NULL);
	expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", own, NULL});
	hidden_free(dirs);
	/* Named through a path with .. and //: the same directory. */
	free(cfg->path);
	cfg->path = strdup(at(p, "own/..//own/valet.conf"));
	dirs = hidden_dirs(cfg, NULL);
	expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", own, NULL});
	hidden_free(dirs);
	config_free(cfg);

	/* A link: the link's directory and the real file's. */
	make_dir("real");
	make_dir("link");
	make_file("real/valet.conf", "[queue]\nworkers = 3\n", 0644);
	assert_int_equal(symlink(at(p, "real/valet.conf"), at(q, "link/valet.conf")), 0);
	cfg = load("link/valet.conf");
	assert_int_equal(cfg->workers, 3);
	at(link, "link");
	at(real, "real");
	dirs = hidden_dirs(cfg, NULL);
	expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", link, real, NULL});
	hidden_free(dirs);
	config_free(cfg);

	/* A link to a file next to it: that directory once. */
	assert_int_equal(symlink("valet.conf", at(q, "real/alias.conf")), 0);
	cfg = load("real/alias.conf");
	dirs = hidden_dirs(cfg, NULL);
	expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", real, NULL});
	hidden_free(dirs);
	config_free(cfg);

	/* [sandbox] hide and more, each once, in order, after the file's. */
	fmt(p, sizeof(p), "[sandbox]\nhide = /srv/a\t/srv/b  /srv/a %s /etc/default /srv/ab\n",
	    own);
	cfg = conf("own/valet.conf", p);
	{
		char *const more[] = {"/run/postgresql", "/srv/b",     own, "/var/run/postgresql",
				      "/run/postgresql", "/etc/valet", NULL};

		dirs = hidden_dirs(cfg, more);
		expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", own, "/srv/a",
							"/srv/b", "/srv/ab", "/run/postgresql",
							"/var/run/postgresql", NULL});
		hidden_free(dirs);
		/* An empty more is no more. */
		dirs = hidden_dirs(cfg, (char *const[]){NULL});
		expect_dirs(dirs, (const char *const[]){"/etc/valet", "/etc/default", own, "/srv/a",
							"/srv/b", "/srv/ab", NULL});
		hidden_free(dirs);
	}
	config_free(cfg);
	hidden_free(NULL);
}

/* ---- hidden_check ------------------------------------------------------------------------ */

static void check_ok(const struct config *cfg)
{
	char err[PATH_MAX * 2] = "";

	if (hidden_check(cfg, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	assert_string_equal(err, "");
}

static void check_bad(const struct config *cfg, int rc, const char *want)
{
	char err[PATH_MAX * 2] = "";

	assert_int_equal(hidden_check(cfg, err, sizeof(err)), rc);
	assert_string_equal(err, want);
}

/* The sentence for a configuration whose directory dir may not be hidden. */
static const char *dir_msg(char *out, size_t len, const char *path, const char *dir,
			   const char *why)
{
	fmt(out, len,
	    "%s: jobs must not see this file, so its directory %s is hidden from them, but "
	    "%s: keep the configuration in a directory of its own, such as /etc/valet/",
	    path, dir, why);
	return out;
}

static void test_check(void **state)
{
	char text[PATH_MAX * 2], want[PATH_MAX * 3], why[PATH_MAX * 2];
	char both[PATH_MAX], prog[PATH_MAX], script[PATH_MAX], sub[PATH_MAX], p[PATH_MAX];
	struct config *cfg;

	(void)state;
	/* Built-in defaults. */
	cfg = config_new();
	check_ok(cfg);
	config_free(cfg);

	/* In a directory of its own, with tasks elsewhere (also in a directory
	 * whose name only starts like the configuration's). */
	make_dir("conf");
	make_dir("conf2");
	make_dir("progs");
	make_file("conf2/prog", "#!/bin/sh\nexit 0\n", 0755);
	make_file("progs/script.sh", "exit 0\n", 0644);
	fmt(text, sizeof(text),
	    "[sandbox]\nhide = /srv/valet-secrets\n"
	    "[task.a]\ncommand = %s/conf2/prog\n"
	    "[task.b]\ncommand = /bin/sh %s/progs/script.sh\n",
	    tmpdir, tmpdir);
	cfg = conf("conf/valet.conf", text);
	check_ok(cfg);
	config_free(cfg);
	/* A script named through the config's directory but outside it (as
	 * `make run`'s "../build/tasks/wordcount" is): not in it. */
	fmt(text, sizeof(text), "[task.c]\ncommand = /bin/sh %s/conf/../progs/script.sh\n",
	    tmpdir);
	cfg = conf("conf/valet.conf", text);
	check_ok(cfg);
	config_free(cfg);

	/* Directly in /etc (only the path counts), or linked to a file there. */
	cfg = conf("conf/valet.conf", "");
	free(cfg->path);
	cfg->path = strdup("/etc/valet.conf");
	check_bad(cfg, -EINVAL,
		  dir_msg(want, sizeof(want), "/etc/valet.conf", "/etc", "every job needs /etc"));
	free(cfg->path);
	cfg->path = strdup("/valet.conf");
	check_bad(cfg, -EINVAL,
		  dir_msg(want, sizeof(want), "/valet.conf", "/", "every job needs /"));
	assert_int_equal(symlink("/etc/passwd", at(p, "conf/passwd.conf")), 0);
	free(cfg->path);
	cfg->path = strdup(p);
	check_bad(cfg, -EINVAL, dir_msg(want, sizeof(want), p, "/etc", "every job needs /etc"));
	/* A directory that does not resolve. */
	free(cfg->path);
	cfg->path = strdup("/nonexistent-valet-test-dir/valet.conf");
	check_bad(cfg, -ENOENT,
		  "/nonexistent-valet-test-dir/valet.conf: cannot resolve its directory: No such "
		  "file or directory");
	config_free(cfg);

	/* Next to an exec task's program: naming the program and the task. */
	make_dir("both");
	make_file("both/run", "#!/bin/sh\nexit 0\n", 0755);
	at(both, "both");
	at(prog, "both/run");
	fmt(text, sizeof(text), "[task.other]\ncommand = /bin/true\n[task.job]\ncommand = %s -x\n",
	    prog);
	cfg = conf("both/valet.conf", text);
	fmt(why, sizeof(why), "it holds %s, which task job runs", prog);
	check_bad(cfg, -EINVAL, dir_msg(want, sizeof(want), cfg->path, both, why));
	config_free(cfg);
	/* A relative command is the configuration directory's, just the same. */
	cfg = conf("both/valet.conf", "[task.rel]\ncommand = ./run\n");
	fmt(why, sizeof(why), "it holds %s/./run, which task rel runs", both);
	check_bad(cfg, -EINVAL, dir_msg(want, sizeof(want), cfg->path, both, why));
	config_free(cfg);
	/* A script the program runs, in a subdirectory. */
	make_dir("both/lib");
	make_file("both/lib/task.sh", "exit 0\n", 0644);
	at(script, "both/lib/task.sh");
	fmt(text, sizeof(text), "[task.sh]\ncommand = /bin/sh %s\n", script);
	cfg = conf("both/valet.conf", text);
	fmt(why, sizeof(why), "it holds %s, which task sh runs", script);
	check_bad(cfg, -EINVAL, dir_msg(want, sizeof(want), cfg->path, both, why));
	config_free(cfg);

	/* Linked from a directory of its own to a file next to the program:
	 * the real file's directory is hidden too. */
	fmt(text, sizeof(text), "[task.job]\ncommand = %s\n", prog);
	make_file("both/real.conf", text, 0644);
	assert_int_equal(symlink(at(p, "both/real.conf"), at(sub, "conf/linked.conf")), 0);
	cfg = load("conf/linked.conf");
	fmt(why, sizeof(why), "it holds %s, which task job runs", prog);
	check_bad(cfg, -EINVAL, dir_msg(want, sizeof(want), sub, both, why));
	config_free(cfg);

	/* [sandbox] hide of a directory every job needs. */
	cfg = conf("conf/valet.conf", "[sandbox]\nhide = /srv/x /usr\n");
	check_bad(cfg, -EINVAL,
		  "[sandbox] hide: /usr cannot be hidden from jobs: every job needs /usr");
	config_free(cfg);
	cfg = conf("conf/valet.conf", "[sandbox]\nhide = /etc\n");
	check_bad(cfg, -EINVAL,
		  "[sandbox] hide: /etc cannot be hidden from jobs: every job needs /etc");
	config_free(cfg);
	/* ... or that holds a program (or a directory above it). */
	fmt(text, sizeof(text), "[task.job]\ncommand = %s\n[sandbox]\nhide = %s\n", prog, tmpdir);
	cfg = conf("conf/valet.conf", text);
	fmt(want, sizeof(want),
	    "[sandbox] hide: %s cannot be hidden from jobs: it holds %s, which task job runs",
	    tmpdir, prog);
	check_bad(cfg, -EINVAL, want);
	config_free(cfg);
	/* Hiding a directory below the program's is fine, and so are the
	 * directories always hidden. */
	fmt(text, sizeof(text),
	    "[task.job]\ncommand = %s\n[sandbox]\nhide = %s/lib /etc/default /etc/valet\n", prog,
	    both);
	cfg = conf("conf/valet.conf", text);
	check_ok(cfg);
	config_free(cfg);

	/* "/usr/" or "//" would go past the string comparisons above: the
	 * load refuses them already (hidden_check_list), with file and line. */
	make_file("conf/slash.conf", "[sandbox]\nhide = /srv/a /usr/\n", 0644);
	cfg = config_new();
	assert_int_equal(config_load(cfg, at(p, "conf/slash.conf"), text, sizeof(text)), -EINVAL);
	fmt(want, sizeof(want),
	    "%s:2: hide: \"/usr/\" is not an absolute directory path (no . or .. components, no "
	    "// or trailing /, not /)",
	    p);
	assert_string_equal(text, want);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_list),
	    cmocka_unit_test(test_dirs),
	    cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, testdir_setup, testdir_teardown);
}
