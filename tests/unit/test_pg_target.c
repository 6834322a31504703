/*
 * test_pg_target.c - storage/pg_target.c: store_pg_targets(), where the
 * database of a connection string lives (its unix socket directories, its
 * hosts), so that jobs can be kept from it. URLs and key=value strings,
 * host lists, hostaddr, abstract sockets, PGHOST and libpq's default
 * socket directories, and strings libpq refuses.
 *
 * libpq is the real one, as in valetd. Nothing
 * connects anywhere: libpq only parses. PGHOST and PGHOSTADDR are set and
 * unset here as each case needs, and restored at the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../storage/postgres.h"

static char *saved_pghost, *saved_pghostaddr;

static int save_env(void **state)
{
	(void)state;
	if (getenv("PGHOST"))
		saved_pghost = strdup(getenv("PGHOST"));
	if (getenv("PGHOSTADDR"))
		saved_pghostaddr = strdup(getenv("PGHOSTADDR"));
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	return 0;
}

static int restore_env(void **state)
{
	(void)state;
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	if (saved_pghost)
		setenv("PGHOST", saved_pghost, 1);
	if (saved_pghostaddr)
		setenv("PGHOSTADDR", saved_pghostaddr, 1);
	free(saved_pghost);
	free(saved_pghostaddr);
	return 0;
}

/* The environment of each test starts without PGHOST and PGHOSTADDR. */
static int clean_env(void **state)
{
	(void)state;
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	return 0;
}

static void free_list(char **l)
{
	for (char **p = l; p && *p; p++)
		free(*p);
	free(l);
}

/* got must hold exactly want (NULL-terminated); an empty list may be NULL. */
static void expect_list(const char *url, const char *what, char **got, const char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		if (!got || !got[i])
			fail_msg("%s: %s: missing \"%s\" (entry %zu)", url, what, want[i], i);
		if (strcmp(got[i], want[i]))
			fail_msg("%s: %s: entry %zu is \"%s\", not \"%s\"", url, what, i, got[i],
				 want[i]);
	}
	if (got && got[i])
		fail_msg("%s: %s: unexpected entry %zu \"%s\"", url, what, i, got[i]);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

/* url must give exactly these socket directories and hosts. */
static void expect(const char *url, const char *const *dirs, const char *const *hosts)
{
	char **d = (char **)&d, **h = (char **)&h, err[512] = "";
	int rc = store_pg_targets(url, &d, &h, err, sizeof(err));

	if (rc != 0)
		fail_msg("%s: %d: %s", url ? url : "(null)", rc, err);
	assert_true(d != (char **)&d && h != (char **)&h); /* both set */
	expect_list(url ? url : "(null)", "dirs", d, dirs);
	expect_list(url ? url : "(null)", "hosts", h, hosts);
	free_list(d);
	free_list(h);
}

/* url must be refused with -EINVAL, a message saying so (with want in
 * it), and the outputs untouched. */
static void refused(const char *url, const char *want)
{
	char **d = (char **)&d, **h = (char **)&h, err[512] = "";

	assert_int_equal(store_pg_targets(url, &d, &h, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(d, (char **)&d);
	assert_ptr_equal(h, (char **)&h);
	if (strncmp(err, "database_url: ", 14) || !strstr(err, want))
		fail_msg("%s: message \"%s\" (wanted \"database_url: ...%s...\")", url, err, want);
	/* A sentence, not a line: no newline of libpq's at its end. */
	assert_null(strchr(err, '\n'));
	/* Never the password, which the tests below spell s3cret. */
	assert_null(strstr(err, "s3cret"));
}

static void test_urls(void **state)
{
	(void)state;
	expect("postgresql:///valet?host=/some/dir", LIST("/some/dir"), NONE);
	expect("postgres:///valet?host=%2Fvar%2Frun%2Fpg", LIST("/var/run/pg"), NONE);
	expect("postgresql://%2Fsocket%2Fdir/valet", LIST("/socket/dir"), NONE);
	expect("postgresql://db.example.com/valet", NONE, LIST("db.example.com"));
	expect("postgresql://valet:secret@db.example.com:5433/valet?sslmode=require", NONE,
	       LIST("db.example.com"));
	expect("postgresql:///valet?host=db.example.com", NONE, LIST("db.example.com"));
	expect("postgresql://db1:5432,db2:5433,db1/valet", NONE, LIST("db1", "db2"));
	expect("postgresql://[::1]:5432/valet", NONE, LIST("::1"));
	expect("postgresql://192.0.2.7/valet?hostaddr=10.0.0.5", NONE,
	       LIST("192.0.2.7", "10.0.0.5"));
}

static void test_keywords(void **state)
{
	(void)state;
	expect("host=/a,db2,/b hostaddr=10.0.0.5", LIST("/a", "/b"), LIST("db2", "10.0.0.5"));
	expect("dbname=valet host=db.example.com port=5432", NONE, LIST("db.example.com"));
	expect("host='/with space/dir' dbname=valet", LIST("/with space/dir"), NONE);
	expect("hostaddr=10.0.0.5,10.0.0.6", NONE, LIST("10.0.0.5", "10.0.0.6"));
	/* Each once. */
	expect("host=/a,/a,db,db hostaddr=db", LIST("/a"), LIST("db"));
	/* An abstract socket lives in a network namespace jobs are not in. */
	expect("host=@abs", NONE, NONE);
	expect("host=@abs,/c,db", LIST("/c"), LIST("db"));
	expect("postgresql:///valet?host=%40abs", NONE, NONE);
	/* An empty item is libpq's default socket directory. */
	expect("host=,db2", LIST("/var/run/postgresql", "/run/postgresql"), LIST("db2"));
	expect("host=db2,", LIST("/var/run/postgresql", "/run/postgresql"), LIST("db2"));
	expect("postgresql://,db2/valet", LIST("/var/run/postgresql", "/run/postgresql"),
	       LIST("db2"));
}

static void test_defaults(void **state)
{
	(void)state;
	/* No host at all: libpq's own socket directory, in both spellings. */
	expect("", LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	expect(NULL, LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	expect("postgresql:///valet", LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	expect("dbname=valet user=valet", LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	expect("host=", LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	/* Empty PGHOST is no PGHOST. */
	setenv("PGHOST", "", 1);
	expect("dbname=valet", LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	/* PGHOST when the string has no host. */
	setenv("PGHOST", "/x", 1);
	expect("dbname=valet", LIST("/x"), NONE);
	expect("postgresql:///valet", LIST("/x"), NONE);
	setenv("PGHOST", "/x,db3,@abs", 1);
	expect("dbname=valet", LIST("/x"), LIST("db3"));
	/* ... and not when it has one. */
	expect("host=db.example.com", NONE, LIST("db.example.com"));
	expect("postgresql:///valet?host=/y", LIST("/y"), NONE);
	/* With a hostaddr, libpq connects there and PGHOST only names it: kept
	 * from jobs all the same (hiding one directory too many is harmless). */
	expect("hostaddr=10.0.0.5", LIST("/x"), LIST("db3", "10.0.0.5"));
	/* An explicitly empty host is libpq's default, not PGHOST. */
	expect("host=", LIST("/var/run/postgresql", "/run/postgresql"), NONE);
	unsetenv("PGHOST");

	/* PGHOSTADDR: where libpq connects to, unless the string has a
	 * hostaddr; the host names are then only names, kept anyway. */
	setenv("PGHOSTADDR", "10.9.9.9", 1);
	expect("dbname=valet", NONE, LIST("10.9.9.9"));
	expect("host=db1", NONE, LIST("db1", "10.9.9.9"));
	expect("postgresql:///valet?host=/y", LIST("/y"), LIST("10.9.9.9"));
	expect("hostaddr=10.0.0.5", NONE, LIST("10.0.0.5"));
	setenv("PGHOST", "/x", 1);
	expect("dbname=valet", LIST("/x"), LIST("10.9.9.9"));
}

static void test_malformed(void **state)
{
	(void)state;
	refused("nonsense", "nonsense");
	refused("host='unterminated", "unterminated quoted string");
	refused("bogus_key=1", "bogus_key");
	refused("postgresql://db/valet?bogus_key=1", "bogus_key");
	refused("postgresql://[::1/valet", "IPv6");
	refused("postgresql://db/valet?host", "host");
	/* A message that would quote the password is not repeated. */
	refused("host=db password s3cret", "not repeated");
	refused("postgresql://u:s3cret@[db/valet", "not repeated");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_urls, clean_env),
	    cmocka_unit_test_setup(test_keywords, clean_env),
	    cmocka_unit_test_setup(test_defaults, clean_env),
	    cmocka_unit_test_setup(test_malformed, clean_env),
	};

	return cmocka_run_group_tests(tests, save_env, restore_env);
}
