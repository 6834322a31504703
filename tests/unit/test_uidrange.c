/*
 * test_uidrange.c - supervisor/uidrange.c: the subid file and status
 * parsers, candidate stepping, and what makes a block not free - a
 * subordinate range, a user, a group, a running process (as root), another
 * holder of the locks.
 *
 * The pure checks run against a private empty directory instead of /proc
 * and files of our own instead of /etc/subuid and /etc/subgid, in a range
 * near 3100000000 that no user has. Users and groups are the host's real
 * ones (nobody, 65534); the process test forks a child that takes ids of
 * that high range and sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"

#include "../../supervisor/uidrange.h"

/* Ids nobody has on a test machine. */
#define T 3100000000U

static char tmpdir[PATH_MAX], emptydir[PATH_MAX + 8], subuid[PATH_MAX + 8];
static char subgid[PATH_MAX + 8];

static int setup_dir(void **state)
{
	char tmpl[] = "/tmp/valet-test-uidrange-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir))
		return -1;
	snprintf(emptydir, sizeof(emptydir), "%s/proc", tmpdir);
	snprintf(subuid, sizeof(subuid), "%s/subuid", tmpdir);
	snprintf(subgid, sizeof(subgid), "%s/subgid", tmpdir);
	return mkdir(emptydir, 0755);
}

static int remove_dir(void **state)
{
	(void)state;
	unlink(subuid);
	unlink(subgid);
	rmdir(emptydir);
	return rmdir(tmpdir);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A host without processes, with these subid files (NULL: none). */
static void read_host(struct uidrange_host *h, const char *uids, const char *gids)
{
	unlink(subuid);
	unlink(subgid);
	if (uids)
		write_text(subuid, uids);
	if (gids)
		write_text(subgid, gids);
	assert_int_equal(uidrange_host_read(h, subuid, subgid, emptydir), 0);
}

/* ---- pure parts ------------------------------------------------------------ */

static void test_step(void **state)
{
	(void)state;
	assert_int_equal(uidrange_step(0), 0);
	assert_int_equal(uidrange_step(1), 1);
	assert_int_equal(uidrange_step(2), 2);
	assert_int_equal(uidrange_step(3), 4);
	assert_int_equal(uidrange_step(5), 8);
	assert_int_equal(uidrange_step(8), 8);
	assert_int_equal(uidrange_step(9), 16);
	assert_int_equal(uidrange_step(2049), 4096);
}

static void test_subid_parse(void **state)
{
	static char text[] = "# subordinate ids\n"
			     "alice:100000:65536\n"
			     "\n"
			     "bob:165536:65536\n"
			     "no colons here\n"
			     "carol:1:\n"
			     "dave:x:5\n"
			     "erin:5:0\n"
			     ":7:7\n"
			     "  frank:600000:10  \r\n"
			     "1000:4294967290:100\n"
			     "gina:12:34";
	FILE *f = fmemopen(text, strlen(text), "r");
	struct uidrange_span *s;
	size_t n;

	(void)state;
	assert_non_null(f);
	assert_int_equal(uidrange_subid_parse(f, &s, &n), 0);
	fclose(f);
	assert_int_equal(n, 5);
	assert_string_equal(s[0].owner, "alice");
	assert_int_equal(s[0].start, 100000);
	assert_int_equal(s[0].count, 65536);
	assert_string_equal(s[1].owner, "bob");
	assert_int_equal(s[1].start, 165536);
	assert_string_equal(s[2].owner, "frank");
	assert_int_equal(s[2].start, 600000);
	assert_int_equal(s[2].count, 10);
	/* A range past 2^32 is kept as it is. */
	assert_string_equal(s[3].owner, "1000");
	assert_int_equal(s[3].start, 4294967290ULL);
	assert_int_equal(s[3].count, 100);
	/* The last line needs no newline. */
	assert_string_equal(s[4].owner, "gina");
	assert_int_equal(s[4].count, 34);
	free(s);
}

static void test_status_ids(void **state)
{
	static const char status[] = "Name:\tsleep\n"
				     "Umask:\t0022\n"
				     "State:\tS (sleeping)\n"
				     "Uid:\t600001\t600002\t600003\t600004\n"
				     "Gid:\t7\t8\t9\t10\n"
				     "FDSize:\t64\n";
	uint32_t u[4], g[4];

	(void)state;
	assert_int_equal(uidrange_status_ids(status, u, g), 0);
	assert_int_equal(u[0], 600001);
	assert_int_equal(u[3], 600004);
	assert_int_equal(g[0], 7);
	assert_int_equal(g[2], 9);
	assert_int_equal(uidrange_status_ids("Name:\tx\nUid:\t1\t1\t1\t1\n", u, g), -EINVAL);
	assert_int_equal(uidrange_status_ids("Uid:\t1\t1\t1\nGid:\t1\t1\t1\t1\n", u, g), -EINVAL);
}

/* Candidates follow each other at the power of two; the last must end by last. */
static void test_find_steps(void **state)
{
	struct uidrange_host h;
	uint32_t b[8];

	(void)state;
	read_host(&h, NULL, NULL);
	assert_int_equal(uidrange_find(&h, T, T + 100, 5, b, 3), 3);
	assert_int_equal(b[0], T);
	assert_int_equal(b[1], T + 8);
	assert_int_equal(b[2], T + 16);
	/* T + 8 .. T + 12 ends at last exactly; with one id less it does not fit. */
	assert_int_equal(uidrange_find(&h, T, T + 12, 5, b, 8), 2);
	assert_int_equal(uidrange_find(&h, T, T + 11, 5, b, 8), 1);
	assert_int_equal(uidrange_find(&h, T, T + 3, 5, b, 8), 0);
	assert_int_equal(uidrange_find(&h, T, T + 100, 0, b, 8), -EINVAL);
	/* (uid_t)-1 is no id: a block may not reach it. */
	assert_int_equal(uidrange_find(&h, 0xFFFFFFF0U, 0xFFFFFFFEU, 8, b, 8), 1);
	assert_int_equal(b[0], 0xFFFFFFF0U);
	assert_int_equal(uidrange_find(&h, 0xFFFFFFF0U, 0xFFFFFFFFU, 8, b, 8), -EINVAL);
	uidrange_host_free(&h);
}

/* A block that holds an id of a subordinate range is skipped. */
static void test_subid_ranges(void **state)
{
	struct uidrange_host h;
	struct uidrange_taken t;
	char uids[128], gids[128], who[64];
	uint32_t b[2];

	(void)state;
	snprintf(uids, sizeof(uids), "someone:%u:1\n", T + 3);
	snprintf(gids, sizeof(gids), "other:%u:2\n", T + 9);
	read_host(&h, uids, gids);
	assert_int_equal(uidrange_check(&h, T, 5, &t), -EBUSY);
	assert_int_equal(t.why, UIDRANGE_SUBUID);
	assert_int_equal(t.id, T + 3);
	snprintf(who, sizeof(who), "someone:%u:1", T + 3);
	assert_string_equal(t.who, who);
	assert_int_equal(uidrange_check(&h, T + 8, 5, &t), -EBUSY);
	assert_int_equal(t.why, UIDRANGE_SUBGID);
	assert_int_equal(t.id, T + 9);
	assert_int_equal(uidrange_check(&h, T + 4, 4, &t), 0);
	assert_int_equal(t.why, UIDRANGE_FREE);
	assert_int_equal(uidrange_find(&h, T, T + 100, 5, b, 2), 2);
	assert_int_equal(b[0], T + 16);
	assert_int_equal(b[1], T + 24);
	uidrange_host_free(&h);

	/* A missing file holds nothing. */
	read_host(&h, NULL, NULL);
	assert_int_equal(h.nsub[0], 0);
	assert_int_equal(h.nsub[1], 0);
	assert_int_equal(uidrange_check(&h, T, 16, &t), 0);
	uidrange_host_free(&h);
}

/* ---- the user database ------------------------------------------------------- */

/* nobody (65534) is a user on every test machine: a block holding it is
 * skipped, and the message names it. */
static void test_user(void **state)
{
	struct uidrange_host h;
	struct uidrange_taken t;
	uint32_t b[1];

	(void)state;
	if (!getpwuid(65534)) {
		SKIP_HOST("no user 65534 here");
	}
	read_host(&h, NULL, NULL);
	assert_int_equal(uidrange_check(&h, 65530, 9, &t), -EBUSY);
	assert_int_equal(t.id, 65534);
	assert_int_equal(t.why, UIDRANGE_USER);
	assert_string_equal(t.who, getpwuid(65534)->pw_name);
	/* 65532 .. 65536 holds it; the next candidate, 65540, is taken. */
	for (uint32_t id = 65540; id < 65545; id++)
		if (getpwuid(id) || getgrgid(id)) {
			uidrange_host_free(&h);
			SKIP_HOST("65540-65544 are not free here");
		}
	assert_int_equal(uidrange_find(&h, 65532, 70000, 5, b, 1), 1);
	assert_int_equal(b[0], 65540);
	uidrange_host_free(&h);
}

/* A group's gid that is nobody's uid: the block is not free either. */
static void test_group(void **state)
{
	struct uidrange_host h;
	struct uidrange_taken t;
	struct group *gr;
	gid_t gid = 0;
	bool found = false;

	(void)state;
	setgrent();
	while (!found && (gr = getgrent()))
		if (gr->gr_gid != 0 && !getpwuid(gr->gr_gid)) {
			gid = gr->gr_gid;
			found = true;
		}
	endgrent();
	if (!found) {
		SKIP_HOST("every group's gid is also a uid here");
	}
	read_host(&h, NULL, NULL);
	assert_int_equal(uidrange_check(&h, gid, 1, &t), -EBUSY);
	assert_int_equal(t.why, UIDRANGE_GROUP);
	assert_int_equal(t.id, gid);
	assert_string_equal(t.who, getgrgid(gid)->gr_name);
	uidrange_host_free(&h);
}

/* ---- processes (root) ------------------------------------------------------------ */

/* A child that runs with uid T + 2 and gid T + 3 until killed, or until we
 * exit (a failed assertion must not leave it behind). */
static pid_t start_squatter(void)
{
	pid_t pid, parent = getpid();
	int fd[2], null;
	char c;

	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fd[0]);
		/* Not our test runner's stdout: it waits for it to close. */
		null = open("/dev/null", O_RDWR);
		if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(1);
		if (setgroups(0, NULL) < 0 || setresgid(T + 3, T + 3, T + 3) < 0 ||
		    setresuid(T + 2, T + 2, T + 2) < 0)
			_exit(1);
		/* After the credentials change, which clears it. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		if (write(fd[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fd[1]);
	assert_int_equal(read(fd[0], &c, 1), 1);
	close(fd[0]);
	return pid;
}

static void test_process(void **state)
{
	struct uidrange_taken tu, tg;
	struct uidrange_host h;
	int rc_read, rc_uid, rc_gid, nfound;
	char who[64];
	uint32_t b[1] = {0};
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		SKIP_NEEDS("not root (setresuid)");
	}
	/* Look while it runs, then end it, then assert. */
	pid = start_squatter();
	rc_read = uidrange_host_read(&h, subuid, subgid, NULL);
	rc_uid = rc_read ? 0 : uidrange_check(&h, T, 5, &tu);
	rc_gid = rc_read ? 0 : uidrange_check(&h, T + 3, 1, &tg);
	nfound = rc_read ? 0 : uidrange_find(&h, T, T + 100, 5, b, 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(rc_read, 0);
	uidrange_host_free(&h);
	assert_int_equal(rc_uid, -EBUSY);
	assert_int_equal(tu.why, UIDRANGE_PROC_UID);
	assert_int_equal(tu.id, T + 2);
	snprintf(who, sizeof(who), "%d (test_uidrange)", (int)pid);
	assert_string_equal(tu.who, who);
	assert_int_equal(rc_gid, -EBUSY);
	assert_int_equal(tg.why, UIDRANGE_PROC_GID);
	assert_int_equal(tg.id, T + 3);
	assert_int_equal(nfound, 1);
	assert_int_equal(b[0], T + 8);

	/* Gone: the block is free again. */
	assert_int_equal(uidrange_host_read(&h, subuid, subgid, NULL), 0);
	assert_int_equal(uidrange_check(&h, T, 5, &tu), 0);
	uidrange_host_free(&h);
}

/* ---- locks -------------------------------------------------------------------------- */

/* Another process's lock on one id, as a valetd takes it. */
static int hold_id(uint32_t id)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "valetd-id-%u", id);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
	return fd;
}

static void test_lock(void **state)
{
	struct uidrange a = {0}, b = {0};
	uint32_t held = 0;

	(void)state;
	assert_int_equal(uidrange_lock(&a, T, 5, &held), 0);
	assert_int_equal(a.base, T);
	assert_int_equal(a.n, 5);
	/* Overlapping blocks, whatever their sizes, do not both get it. */
	assert_int_equal(uidrange_lock(&b, T + 3, 8, &held), -EADDRINUSE);
	assert_int_equal(held, T + 3);
	assert_null(b.fds);
	assert_int_equal(uidrange_lock(&b, T + 5, 8, &held), 0);
	uidrange_unlock(&b);
	uidrange_unlock(&a);
	assert_null(a.fds);
	uidrange_unlock(&a);
	/* Given back: free for the next one. */
	assert_int_equal(uidrange_lock(&b, T + 3, 8, &held), 0);
	uidrange_unlock(&b);
	assert_int_equal(uidrange_lock(&a, 0xFFFFFFFEU, 2, &held), -EINVAL);
}

/* A block one id of which another socket holds is skipped. */
static void test_lock_first(void **state)
{
	const uint32_t bases[] = {T, T + 8, T + 16};
	struct uidrange r = {0};
	int fd, fd2;

	(void)state;
	fd = hold_id(T + 2);
	assert_int_equal(uidrange_lock_first(&r, bases, 3, 5), 1);
	assert_int_equal(r.base, T + 8);
	uidrange_unlock(&r);
	fd2 = hold_id(T + 12);
	assert_int_equal(uidrange_lock_first(&r, bases, 3, 5), 2);
	assert_int_equal(r.base, T + 16);
	uidrange_unlock(&r);
	assert_int_equal(uidrange_lock_first(&r, bases, 2, 5), -EADDRINUSE);
	assert_null(r.fds);
	close(fd);
	close(fd2);
	assert_int_equal(uidrange_lock_first(&r, bases, 3, 5), 0);
	uidrange_unlock(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_step),	 cmocka_unit_test(test_subid_parse),
	    cmocka_unit_test(test_status_ids),	 cmocka_unit_test(test_find_steps),
	    cmocka_unit_test(test_subid_ranges), cmocka_unit_test(test_user),
	    cmocka_unit_test(test_group),	 cmocka_unit_test(test_process),
	    cmocka_unit_test(test_lock),	 cmocka_unit_test(test_lock_first),
	};

	return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
