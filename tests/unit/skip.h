/*
 * skip.h - a skipped cmocka test says why, in one line that
 * tests/run_tests.sh reads:
 *
 *   SKIP(kind): reason
 *
 * The kind says whether the skip is acceptable where `make test` runs:
 *   host  this host or kernel cannot exercise the path (no IA32 emulation,
 *         cgroup v1 holding the memory controller, not x86-64); reported in
 *         the summary, never a failure;
 *   needs a prerequisite that `make test` provides is missing (root,
 *         PostgreSQL, a program deps.sh installs); a failure in a strict run
 *         (VALET_TEST_STRICT=1, the default as root, so in CI).
 * A cmocka skip without such a line counts as "needs".
 * Header-only: include it after <cmocka.h>.
 */
#ifndef VALET_SKIP_H
#define VALET_SKIP_H

#define TEST_SKIP(kind, ...)                                                                   \
	do {                                                                                   \
		print_message("SKIP(" kind "): " __VA_ARGS__);                                 \
		print_message("\n");                                                           \
		skip();                                                                        \
	} while (0)

/* This host or kernel cannot run the test: never a failure. */
#define SKIP_HOST(...) TEST_SKIP("host", __VA_ARGS__)
/* A prerequisite `make test` provides is missing: a failure when strict. */
#define SKIP_NEEDS(...) TEST_SKIP("needs", __VA_ARGS__)

#endif
