/*
 * test_registry.c - the task table: C and exec tasks, name rules,
 * duplicates, the sorted name list, lookups by name and index, and plugin
 * loading.
 *
 * Theory of operation: struct registry is opaque and plugins only load into
 * registry_global(), so every test works on the global table and the setup
 * and teardown clear it. Plugins are not compiled here (no compiler is
 * assumed at test time): the test links the already built demo plugin,
 * <build>/tasks/demo.so next to this binary's directory, into a fresh
 * temporary directory. This binary is linked with -rdynamic, so the
 * plugin's valet_register() resolves to the one under test. A system
 * library under a .so name plays the non-plugin, and a text file the
 * broken one.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../sandbox/registry.h"

static json_t *task_one(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	return json_integer(1);
}

static json_t *task_two(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	return json_integer(2);
}

/* ---- temporary plugin directories --------------------------------------------------------- */

#define MAX_LINKS 8

static char tmpdir[512];
static char links[MAX_LINKS][1024];
static int nlinks;

static void make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/valet-registry.XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
}

/* Put target into the temp dir under name (symlink), removed at teardown. */
static void link_in(const char *target, const char *name)
{
	assert_true(nlinks < MAX_LINKS);
	snprintf(links[nlinks], sizeof(links[nlinks]), "%s/%s", tmpdir, name);
	if (symlink(target, links[nlinks]) < 0)
		fail_msg("symlink %s -> %s: %s", links[nlinks], target, strerror(errno));
	nlinks++;
}

/* A plain file with contents, removed at teardown. */
static void write_in(const char *name, const char *contents)
{
	FILE *f;

	assert_true(nlinks < MAX_LINKS);
	snprintf(links[nlinks], sizeof(links[nlinks]), "%s/%s", tmpdir, name);
	f = fopen(links[nlinks], "w");
	assert_non_null(f);
	fputs(contents, f);
	assert_int_equal(fclose(f), 0);
	nlinks++;
}

/* <dir of this binary>/../tasks/demo.so, or build/tasks/demo.so. */
static void demo_path(char *out, size_t len)
{
	char exe[2048];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, len, "%s/../tasks/demo.so", exe);
			if (access(out, R_OK) == 0)
				return;
		}
	}
	snprintf(out, len, "%s/build/tasks/demo.so", getcwd(exe, sizeof(exe)) ? exe : ".");
	if (access(out, R_OK) != 0)
		fail_msg("%s not found: build the demo plugin first (make)", out);
}

/* The full path of the libm this process runs with: a real ELF shared
 * object without valet_plugin_init. */
static void libm_path(char *out, size_t len)
{
	void *h = dlopen("libm.so.6", RTLD_NOW | RTLD_NOLOAD);
	struct link_map *map = NULL;

	if (!h)
		h = dlopen("libm.so.6", RTLD_NOW);
	assert_non_null(h);
	assert_int_equal(dlinfo(h, RTLD_DI_LINKMAP, &map), 0);
	assert_true(map && map->l_name && map->l_name[0] == '/');
	snprintf(out, len, "%s", map->l_name);
	dlclose(h);
}

static int setup(void **state)
{
	registry_clear(registry_global());
	tmpdir[0] = '\0';
	nlinks = 0;
	return 0;
}

static int teardown(void **state)
{
	registry_clear(registry_global());
	for (int i = 0; i < nlinks; i++)
		unlink(links[i]);
	nlinks = 0;
	if (tmpdir[0])
		rmdir(tmpdir);
	tmpdir[0] = '\0';
	return 0;
}

/* ---- C and exec tasks ---------------------------------------------------------------------- */

static void test_add_c(void **state)
{
	struct registry *reg = registry_global();
	const struct task *t;
	size_t count = 99;

	assert_int_equal(registry_count(reg), 0);
	assert_null(registry_names(reg, &count)[0]);
	assert_int_equal(count, 0);

	assert_int_equal(registry_add_c(reg, "one", task_one), 0);
	assert_int_equal(valet_register("two", task_two), 0);
	assert_int_equal(registry_count(reg), 2);

	t = registry_find(reg, "one");
	assert_non_null(t);
	assert_string_equal(t->name, "one");
	assert_int_equal(t->kind, TASK_C);
	assert_ptr_equal(t->fn, task_one);
	assert_null(t->argv);
	assert_int_equal(t->profile, SBX_PROFILE_STRICT);

	/* valet_register() fills the same global table. */
	t = registry_find(reg, "two");
	assert_non_null(t);
	assert_ptr_equal(t->fn, task_two);
	assert_int_equal(t->kind, TASK_C);

	assert_int_equal(registry_add_c(reg, "nofn", NULL), -EINVAL);
	assert_int_equal(valet_register("nofn", NULL), -EINVAL);
	assert_null(registry_find(reg, "nofn"));
	assert_int_equal(registry_count(reg), 2);
}

static void test_invalid_names(void **state)
{
	static const char *const bad[] = {
	    "",
	    "a b",
	    "a/b",
	    "../x",
	    "x;y",
	    "tab\t",
	    "new\nline",
	    "caf\xc3\xa9",
	    "q\"uote",
	    "65_chars_" /* 9 + 56 */
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	static const char *const good[] = {
	    "a",
	    "A.z-_9",
	    "task.v2",
	    "-dash",
	    "64_chars_" /* 9 + 55 */
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct registry *reg = registry_global();
	char *const argv[] = {"/bin/true", NULL};

	assert_int_equal(strlen(bad[sizeof(bad) / sizeof(bad[0]) - 1]), 65);
	assert_int_equal(strlen(good[sizeof(good) / sizeof(good[0]) - 1]), 64);
	assert_int_equal(registry_add_c(reg, NULL, task_one), -EINVAL);
	assert_int_equal(registry_add_exec(reg, NULL, argv, SBX_PROFILE_EXEC), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (registry_add_c(reg, bad[i], task_one) != -EINVAL)
			fail_msg("C task name \"%s\" was not refused", bad[i]);
		if (registry_add_exec(reg, bad[i], argv, SBX_PROFILE_EXEC) != -EINVAL)
			fail_msg("exec task name \"%s\" was not refused", bad[i]);
	}
	assert_int_equal(registry_count(reg), 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (registry_add_c(reg, good[i], task_one) != 0)
			fail_msg("name \"%s\" was refused", good[i]);
		assert_non_null(registry_find(reg, good[i]));
	}
	assert_int_equal(registry_count(reg), sizeof(good) / sizeof(good[0]));
}

static void test_duplicates(void **state)
{
	struct registry *reg = registry_global();
	char *const argv[] = {"/bin/echo", "hi", NULL};

	assert_int_equal(registry_add_c(reg, "dup", task_one), 0);
	assert_int_equal(registry_add_c(reg, "dup", task_two), -EEXIST);
	assert_int_equal(valet_register("dup", task_two), -EEXIST);
	assert_int_equal(registry_add_exec(reg, "dup", argv, SBX_PROFILE_EXEC), -EEXIST);
	assert_int_equal(registry_add_exec(reg, "xdup", argv, SBX_PROFILE_EXEC), 0);
	assert_int_equal(registry_add_exec(reg, "xdup", argv, SBX_PROFILE_EXEC), -EEXIST);
	assert_int_equal(registry_add_c(reg, "xdup", task_one), -EEXIST);
	/* Names are case-sensitive. */
	assert_int_equal(registry_add_c(reg, "DUP", task_two), 0);

	assert_int_equal(registry_count(reg), 3);
	/* The first registration stays. */
	assert_ptr_equal(registry_find(reg, "dup")->fn, task_one);
	assert_int_equal(registry_find(reg, "xdup")->kind, TASK_EXEC);
	assert_ptr_equal(registry_find(reg, "DUP")->fn, task_two);
}

static void test_sorted_names(void **state)
{
	static const char *const added[] = {"zeta", "alpha", "Mid", "beta", "alpha2", "_x", "9"};
	static const char *const sorted[] = {"9", "Mid", "_x", "alpha", "alpha2", "beta", "zeta"};
	struct registry *reg = registry_global();
	char *const argv[] = {"/bin/true", NULL};
	const char *const *names;
	size_t count = 0;

	for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
		if (i % 2)
			assert_int_equal(registry_add_exec(reg, added[i], argv, SBX_PROFILE_EXEC), 0);
		else
			assert_int_equal(registry_add_c(reg, added[i], task_one), 0);
		/* Sorted after every add, not only at the end. */
		names = registry_names(reg, &count);
		assert_int_equal(count, i + 1);
		for (size_t j = 1; j < count; j++)
			assert_true(strcmp(names[j - 1], names[j]) < 0);
		assert_null(names[count]);
	}
	names = registry_names(reg, &count);
	assert_int_equal(count, sizeof(sorted) / sizeof(sorted[0]));
	for (size_t i = 0; i < count; i++)
		assert_string_equal(names[i], sorted[i]);
	assert_null(names[count]);
	/* The index order stays the insertion order. */
	for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++)
		assert_string_equal(registry_at(reg, (int)i)->name, added[i]);
}

static void test_index_at_find(void **state)
{
	struct registry *reg = registry_global();
	char *const argv[] = {"/bin/true", NULL};
	char name[16];

	assert_int_equal(registry_index(reg, "one"), -1);
	assert_null(registry_at(reg, 0));

	/* Enough tasks to grow the table past its first allocation. */
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "t%02d", 39 - i);
		if (i % 3 == 0)
			assert_int_equal(registry_add_exec(reg, name, argv,
							   i % 2 ? SBX_PROFILE_EXEC_NET
								 : SBX_PROFILE_EXEC),
					 0);
		else
			assert_int_equal(registry_add_c(reg, name, i % 2 ? task_one : task_two), 0);
	}
	assert_int_equal(registry_count(reg), 40);
	for (int i = 0; i < 40; i++) {
		const struct task *t;

		snprintf(name, sizeof(name), "t%02d", 39 - i);
		assert_int_equal(registry_index(reg, name), i);
		t = registry_at(reg, i);
		assert_non_null(t);
		assert_string_equal(t->name, name);
		assert_ptr_equal(registry_find(reg, name), t);
		assert_int_equal(t->kind, i % 3 == 0 ? TASK_EXEC : TASK_C);
		if (i % 3 == 0)
			assert_int_equal(t->profile,
					 i % 2 ? SBX_PROFILE_EXEC_NET : SBX_PROFILE_EXEC);
		else
			assert_ptr_equal(t->fn, i % 2 ? task_one : task_two);
	}
	assert_int_equal(registry_index(reg, "t40"), -1);
	assert_int_equal(registry_index(reg, "T00"), -1);
	assert_int_equal(registry_index(reg, "t0"), -1);
	assert_int_equal(registry_index(reg, ""), -1);
	assert_int_equal(registry_index(reg, NULL), -1);
	assert_null(registry_find(reg, "nope"));
	assert_null(registry_find(reg, NULL));
	assert_null(registry_at(reg, -1));
	assert_null(registry_at(reg, 40));
	assert_null(registry_at(reg, INT_MAX));
}

static void test_exec_argv_copied(void **state)
{
	struct registry *reg = registry_global();
	char a0[] = "/usr/bin/env", a1[] = "printf", a2[] = "two words";
	char *argv[] = {a0, a1, a2, NULL};
	const struct task *t;

	assert_int_equal(registry_add_exec(reg, "env", argv, SBX_PROFILE_EXEC_NET), 0);
	/* Scribble over the caller's strings and array. */
	memset(a0, 'X', sizeof(a0) - 1);
	memset(a1, 'Y', sizeof(a1) - 1);
	argv[1] = NULL;

	t = registry_find(reg, "env");
	assert_non_null(t);
	assert_int_equal(t->kind, TASK_EXEC);
	assert_null(t->fn);
	assert_int_equal(t->profile, SBX_PROFILE_EXEC_NET);
	assert_non_null(t->argv);
	assert_true(t->argv != argv);
	assert_string_equal(t->argv[0], "/usr/bin/env");
	assert_string_equal(t->argv[1], "printf");
	assert_string_equal(t->argv[2], "two words");
	assert_null(t->argv[3]);
	assert_true(t->argv[0] != a0 && t->argv[2] != a2);
}

static void test_exec_invalid(void **state)
{
	struct registry *reg = registry_global();
	char *const relative[] = {"bin/true", NULL};
	char *const empty0[] = {"", NULL};
	char *const none[] = {NULL};
	char *const ok[] = {"/bin/true", NULL};

	assert_int_equal(registry_add_exec(reg, "x", NULL, SBX_PROFILE_EXEC), -EINVAL);
	assert_int_equal(registry_add_exec(reg, "x", none, SBX_PROFILE_EXEC), -EINVAL);
	assert_int_equal(registry_add_exec(reg, "x", empty0, SBX_PROFILE_EXEC), -EINVAL);
	assert_int_equal(registry_add_exec(reg, "x", relative, SBX_PROFILE_EXEC), -EINVAL);
	assert_int_equal(registry_count(reg), 0);
	assert_null(registry_find(reg, "x"));
	/* An exec task runs under exec or exec+net, nothing else. */
	assert_int_equal(registry_add_exec(reg, "x", ok, SBX_PROFILE_STRICT), -EINVAL);
	assert_int_equal(registry_add_exec(reg, "x", ok, SBX_PROFILE_COUNT), -EINVAL);
	assert_int_equal(registry_count(reg), 0);
	/* argv[0] alone is enough. */
	assert_int_equal(registry_add_exec(reg, "x", ok, SBX_PROFILE_EXEC), 0);
	assert_string_equal(registry_find(reg, "x")->argv[0], "/bin/true");
	assert_null(registry_find(reg, "x")->argv[1]);
}

static void test_clear(void **state)
{
	struct registry *reg = registry_global();
	char *const argv[] = {"/bin/true", "-x", NULL};
	size_t count = 99;

	assert_int_equal(registry_add_c(reg, "a", task_one), 0);
	assert_int_equal(registry_add_exec(reg, "b", argv, SBX_PROFILE_EXEC), 0);
	registry_clear(reg);
	assert_int_equal(registry_count(reg), 0);
	assert_null(registry_find(reg, "a"));
	assert_int_equal(registry_index(reg, "b"), -1);
	assert_null(registry_at(reg, 0));
	assert_null(registry_names(reg, &count)[0]);
	assert_int_equal(count, 0);
	/* Clearing twice is harmless, and the table is usable again. */
	registry_clear(reg);
	assert_int_equal(registry_add_c(reg, "b", task_two), 0);
	assert_int_equal(registry_index(reg, "b"), 0);
	assert_int_equal(registry_find(reg, "b")->kind, TASK_C);
	assert_string_equal(registry_names(reg, &count)[0], "b");
	assert_int_equal(count, 1);
}

/* ---- plugins ------------------------------------------------------------------------------- */

static void test_plugin_demo(void **state)
{
	static const char *const want[] = {"dummytask", "echoprev", "failtask", "sha256", "sleep"};
	struct registry *reg = registry_global();
	char path[PATH_MAX], err[512] = "";
	const char *const *names;
	const struct task *t;
	json_t *params, *res;
	size_t count = 0;

	demo_path(path, sizeof(path));
	make_tmpdir();
	link_in(path, "demo.so");
	/* Not plugins by name: skipped without being opened. */
	write_in("README", "not a plugin\n");
	write_in(".hidden.so", "not even ELF\n");
	write_in("demo.so.bak", "not even ELF\n");

	assert_int_equal(registry_add_c(reg, "mine", task_one), 0);
	if (registry_load_plugins(reg, tmpdir, err, sizeof(err)) != 0)
		fail_msg("registry_load_plugins: %s", err);
	assert_int_equal(registry_count(reg), 6);
	names = registry_names(reg, &count);
	assert_int_equal(count, 6);
	for (size_t i = 0, j = 0; i < count; i++) {
		if (strcmp(names[i], "mine") == 0)
			continue;
		assert_string_equal(names[i], want[j++]);
	}
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		t = registry_find(reg, want[i]);
		assert_non_null(t);
		assert_int_equal(t->kind, TASK_C);
		assert_non_null(t->fn);
	}
	/* The function pointers point into the loaded plugin and work. */
	params = json_pack("{s:i}", "n", 7);
	res = registry_find(reg, "dummytask")->fn(NULL, params, NULL);
	assert_ptr_equal(res, params);
	json_decref(res);
	json_decref(params);

	/* Loading it again registers the same names again: the plugin's
	 * init fails with -EEXIST and the error says which plugin. */
	err[0] = '\0';
	assert_int_equal(registry_load_plugins(reg, tmpdir, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "/demo.so: valet_plugin_init failed: File exists"));
	assert_int_equal(registry_count(reg), 6);
}

static void test_plugin_after_clear(void **state)
{
	struct registry *reg = registry_global();
	char path[PATH_MAX], err[512] = "";

	/* The same plugin, already mapped by the previous test, registers
	 * its tasks again into a cleared table. */
	demo_path(path, sizeof(path));
	make_tmpdir();
	link_in(path, "zz-demo.so");
	if (registry_load_plugins(reg, tmpdir, err, sizeof(err)) != 0)
		fail_msg("registry_load_plugins: %s", err);
	assert_int_equal(registry_count(reg), 5);
	assert_int_equal(registry_index(reg, "dummytask"), 0);
	assert_int_equal(registry_index(reg, "sha256"), 4);
}

static void test_plugin_not_a_plugin(void **state)
{
	struct registry *reg = registry_global();
	char path[PATH_MAX], want[PATH_MAX + 64], err[PATH_MAX + 128] = "";

	libm_path(path, sizeof(path));
	make_tmpdir();
	link_in(path, "x.so");
	assert_int_equal(registry_load_plugins(reg, tmpdir, err, sizeof(err)), -ENOEXEC);
	snprintf(want, sizeof(want), "%s/x.so: not a valet plugin (no VALET_PLUGIN(...))", tmpdir);
	assert_string_equal(err, want);
	assert_int_equal(registry_count(reg), 0);
}

static void test_plugin_not_elf(void **state)
{
	struct registry *reg = registry_global();
	char want[PATH_MAX + 64], err[PATH_MAX + 512] = "";

	make_tmpdir();
	write_in("broken.so", "this is not an ELF file\n");
	assert_int_equal(registry_load_plugins(reg, tmpdir, err, sizeof(err)), -ENOEXEC);
	snprintf(want, sizeof(want), "%s/broken.so: cannot load plugin: ", tmpdir);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("unexpected error: %s", err);
	assert_true(strlen(err) > strlen(want)); /* dlerror()'s reason follows */
	assert_int_equal(registry_count(reg), 0);
}

static void test_plugin_stops_at_first_error(void **state)
{
	struct registry *reg = registry_global();
	char demo[PATH_MAX], libm[PATH_MAX], err[PATH_MAX + 128] = "";

	/* Sorted: a-libm.so fails first; the error is about it, not later ones. */
	demo_path(demo, sizeof(demo));
	libm_path(libm, sizeof(libm));
	make_tmpdir();
	link_in(libm, "a-libm.so");
	link_in(demo, "b-demo.so");
	assert_int_equal(registry_load_plugins(reg, tmpdir, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "/a-libm.so: not a valet plugin"));
}

static void test_plugin_dirs(void **state)
{
	struct registry *reg = registry_global();
	char missing[PATH_MAX + 16], want[PATH_MAX + 128], err[PATH_MAX + 256] = "";
	static char not_a_registry[64];

	make_tmpdir();
	/* An empty directory loads nothing, successfully. */
	assert_int_equal(registry_load_plugins(reg, tmpdir, err, sizeof(err)), 0);
	assert_int_equal(registry_count(reg), 0);

	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	assert_int_equal(registry_load_plugins(reg, missing, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot read tasks directory: No such file or directory",
		 missing);
	assert_string_equal(err, want);

	/* A file where a directory should be. */
	write_in("file", "x");
	assert_int_equal(registry_load_plugins(reg, links[0], err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "cannot read tasks directory"));

	/* Only the global table takes plugins (checked before anything else). */
	assert_int_equal(
	    registry_load_plugins((struct registry *)not_a_registry, tmpdir, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "plugins load into the global registry only");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_add_c, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sorted_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_at_find, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_argv_copied, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_invalid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plugin_demo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plugin_after_clear, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plugin_not_a_plugin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plugin_not_elf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plugin_stops_at_first_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plugin_dirs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
