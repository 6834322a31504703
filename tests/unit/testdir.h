/*
 * testdir.h - for unit test binaries that need files: one temporary
 * directory per binary (tmpdir, its real path; made by testdir_setup() as
 * the group setup, removed with everything in it by testdir_teardown()),
 * and fmt(), an snprintf() that fails the test instead of cutting.
 * Header-only: include it once, after <cmocka.h>, and define TESTDIR_NAME
 * ("valet-test-NAME") first.
 */
#ifndef VALET_TESTDIR_H
#define VALET_TESTDIR_H

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static char tmpdir[PATH_MAX];

static int testdir_setup(void **state)
{
	char tmpl[] = "/tmp/" TESTDIR_NAME "-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir))
		return -1;
	return 0;
}

static int testdir_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

__attribute__((format(printf, 3, 4), unused)) static void fmt(char *out, size_t len,
							       const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(out, len, f, ap);
	va_end(ap);
	assert_in_range(n, 0, len - 1);
}

#endif
