/*
 * test_log.c - supervisor/log.c: level filtering, the text format and its
 * key=value quoting, the JSON format and its escaping, long values cut
 * with "...", and one line per call whatever the values contain; no
 * line is lost to a journal that is not there (JOURNAL_STREAM set).
 *
 * stderr (fd 2) is pointed at a temporary file with dup2() around the
 * log_msg() calls and put back before anything is checked, so that a
 * failing assertion prints to the real stderr. JSON lines are checked
 * byte for byte where the escaping matters and also parsed with jansson.
 */
#include <errno.h>
#include <regex.h>
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
#include <jansson.h>

#include "skip.h"

#include "../../supervisor/log.h"

/* log.c's limits: one value (with its escapes and "...") and one line. */
#define VALUE_MAX 1024
#define LINE_MAX_BYTES 4096

#define TIME_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

struct capture {
	FILE *file;
	int saved_fd;
};

static void capture_start(struct capture *c)
{
	c->file = tmpfile();
	assert_non_null(c->file);
	fflush(stderr);
	c->saved_fd = dup(STDERR_FILENO);
	assert_true(c->saved_fd >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* Puts stderr back; returns what was written to it (new). */
static char *capture_end(struct capture *c)
{
	int fd = fileno(c->file);
	struct stat st;
	char *out;
	ssize_t n;

	assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
	close(c->saved_fd);
	assert_int_equal(fstat(fd, &st), 0);
	out = malloc((size_t)st.st_size + 1);
	assert_non_null(out);
	n = pread(fd, out, (size_t)st.st_size, 0);
	assert_int_equal(n, st.st_size);
	out[n] = '\0';
	fclose(c->file);
	return out;
}

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}

static bool matches(const char *s, const char *re)
{
	regex_t rx;
	bool ok;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	ok = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return ok;
}

/* A text line without its timestamp: "INFO msg k=v\n". */
static const char *text_body(const char *line)
{
	if (!matches(line, "^" TIME_RE " "))
		fail_msg("no timestamp at the start of: %s", line);
	return line + strlen("2026-11-27T01:02:03.123Z ");
}

/* A JSON line without {"time":"...", so it can be compared byte for byte. */
static const char *json_body(const char *line)
{
	if (!matches(line, "^\\{\"time\":\"" TIME_RE "\","))
		fail_msg("no time at the start of: %s", line);
	return line + strlen("{\"time\":\"2026-11-27T01:02:03.123Z\",");
}

/* One JSON line parsed strictly; the object is new. */
static json_t *json_line(const char *line)
{
	json_error_t jerr;
	json_t *obj = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);

	if (!obj || !json_is_object(obj))
		fail_msg("not a JSON object (%s): %s", jerr.text, line);
	return obj;
}

static void test_levels_filtered(void **state)
{
	struct capture c;
	char *out;

	log_setup(LOG_TEXT, LOG_WARN);
	assert_false(log_enabled(LOG_DEBUG));
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_WARN));
	assert_true(log_enabled(LOG_ERROR));
	capture_start(&c);
	log_debug("d1");
	log_info("i1");
	log_warn("w1");
	log_error("e1");
	out = capture_end(&c);
	assert_int_equal(count_char(out, '\n'), 2);
	assert_null(strstr(out, "d1"));
	assert_null(strstr(out, "i1"));
	assert_non_null(strstr(out, " WARN w1\n"));
	assert_non_null(strstr(out, " ERROR e1\n"));
	free(out);

	/* The same in JSON, and debug lets everything through. */
	log_setup(LOG_JSON, LOG_ERROR);
	capture_start(&c);
	log_warn("w2");
	log_error("e2");
	out = capture_end(&c);
	assert_int_equal(count_char(out, '\n'), 1);
	assert_string_equal(json_body(out), "\"level\":\"error\",\"msg\":\"e2\"}\n");
	free(out);

	log_setup(LOG_TEXT, LOG_DEBUG);
	capture_start(&c);
	log_debug("d3");
	log_info("i3");
	out = capture_end(&c);
	assert_int_equal(count_char(out, '\n'), 2);
	assert_non_null(strstr(out, " DEBUG d3\n"));
	assert_non_null(strstr(out, " INFO i3\n"));
	free(out);
}

static void test_text_line(void **state)
{
	struct capture c;
	char *out;

	log_setup(LOG_TEXT, LOG_INFO);
	capture_start(&c);
	log_info("job finished", "job_id", "4b1c-9e", "pid", "123", "path", "/usr/bin/x.py");
	out = capture_end(&c);
	assert_string_equal(text_body(out), "INFO job finished job_id=4b1c-9e pid=123 "
					    "path=/usr/bin/x.py\n");
	free(out);
}

/* A value is quoted when it would not split back on spaces and '='. */
static void test_text_quoting(void **state)
{
	static const struct {
		const char *value, *shown;
	} cases[] = {
	    {"plain", "k=plain"},
	    {"a-b_c.d/e:f,g", "k=a-b_c.d/e:f,g"},
	    {"", "k=\"\""},
	    {"two words", "k=\"two words\""},
	    {"say \"hi\"", "k=\"say \\\"hi\\\"\""},
	    {"a=b", "k=\"a=b\""},
	    {"C:\\dir", "k=\"C:\\\\dir\""},
	    {"tab\there", "k=\"tab\\there\""},
	    {"line\nbreak\r", "k=\"line\\nbreak\\r\""},
	    {"bell\a del\x7f", "k=\"bell\\u0007 del\\u007f\""},
	    {"caf\xc3\xa9", "k=caf\xc3\xa9"},
	};
	struct capture c;
	char expect[128];
	char *out;

	log_setup(LOG_TEXT, LOG_INFO);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		capture_start(&c);
		log_info("m", "k", cases[i].value);
		out = capture_end(&c);
		snprintf(expect, sizeof(expect), "INFO m %s\n", cases[i].shown);
		assert_string_equal(text_body(out), expect);
		free(out);
	}

	/* Messages stay bare but cannot break the line; NULL ends the list. */
	capture_start(&c);
	log_info("two\nlines\tand \"quotes\"", "a", "1", "b", NULL, "c", "3");
	out = capture_end(&c);
	assert_string_equal(text_body(out), "INFO two\\nlines\\tand \"quotes\" a=1 b=(null)\n");
	free(out);
}

static void test_json_line(void **state)
{
	struct capture c;
	json_t *obj;
	char *out;

	log_setup(LOG_JSON, LOG_DEBUG);
	capture_start(&c);
	log_info("job finished", "job_id", "4b1c-9e", "pid", "123");
	out = capture_end(&c);
	assert_string_equal(json_body(out), "\"level\":\"info\",\"msg\":\"job finished\","
					    "\"job_id\":\"4b1c-9e\",\"pid\":\"123\"}\n");
	obj = json_line(out);
	assert_int_equal(json_object_size(obj), 5);
	assert_string_equal(json_string_value(json_object_get(obj, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(obj, "pid")), "123");
	json_decref(obj);
	free(out);

	/* Level names; a NULL value is null and ends the list. */
	capture_start(&c);
	log_debug("d", "k", NULL, "dropped", "x");
	out = capture_end(&c);
	assert_string_equal(json_body(out), "\"level\":\"debug\",\"msg\":\"d\",\"k\":null}\n");
	free(out);
	capture_start(&c);
	log_warn("w");
	out = capture_end(&c);
	assert_string_equal(json_body(out), "\"level\":\"warn\",\"msg\":\"w\"}\n");
	free(out);
}

static void test_json_escaping(void **state)
{
	static const char value[] = "say \"hi\" C:\\dir\n\r\t\x01\x1f\x7f end";
	static const char invalid[] = "ok\xff\xc3(\xed\xa0\x80 caf\xc3\xa9";
	struct capture c;
	json_t *obj;
	char *out;

	log_setup(LOG_JSON, LOG_INFO);
	capture_start(&c);
	log_info("a \"quoted\"\nmessage", "q\"k", value, "utf8", invalid);
	out = capture_end(&c);
	assert_string_equal(
	    json_body(out),
	    "\"level\":\"info\",\"msg\":\"a \\\"quoted\\\"\\nmessage\","
	    "\"q\\\"k\":\"say \\\"hi\\\" C:\\\\dir\\n\\r\\t\\u0001\\u001f\\u007f end\","
	    "\"utf8\":\"ok\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd caf\xc3\xa9\"}\n");
	/* And it reads back to the same strings. */
	obj = json_line(out);
	assert_string_equal(json_string_value(json_object_get(obj, "msg")),
			    "a \"quoted\"\nmessage");
	assert_string_equal(json_string_value(json_object_get(obj, "q\"k")), value);
	json_decref(obj);
	free(out);
}

static char *repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* "xxx...": at most VALUE_MAX bytes, a prefix of what was logged. */
static void assert_cut(const char *shown, size_t shown_len, const char *value)
{
	assert_in_range(shown_len, 4, VALUE_MAX);
	assert_memory_equal(shown + shown_len - 3, "...", 3);
	assert_memory_equal(shown, value, shown_len - 3);
}

static void test_long_value_cut(void **state)
{
	char *fits = repeat('f', VALUE_MAX - 24), *longer = repeat('x', VALUE_MAX + 1);
	char *huge = repeat('y', 10000), *quotes = repeat('"', 3000);
	struct capture c;
	const char *v, *end;
	json_t *obj;
	char *out;

	/* Text: the cut value keeps its place and the fields after it stay. */
	log_setup(LOG_TEXT, LOG_INFO);
	capture_start(&c);
	log_info("m", "fits", fits, "longer", longer, "huge", huge, "after", "yes");
	out = capture_end(&c);
	assert_int_equal(count_char(out, '\n'), 1);
	assert_true(strlen(out) <= LINE_MAX_BYTES);
	v = strstr(out, " fits=");
	assert_non_null(v);
	assert_memory_equal(v + 6, fits, VALUE_MAX - 24);
	assert_memory_equal(v + 6 + VALUE_MAX - 24, " longer=", 8);
	v = strstr(out, " longer=") + 8;
	end = strchr(v, ' ');
	assert_non_null(end);
	assert_int_equal(end - v, VALUE_MAX);
	assert_cut(v, (size_t)(end - v), longer);
	v = strstr(out, " huge=");
	assert_non_null(v);
	v += 6;
	end = strchr(v, ' ');
	assert_non_null(end);
	assert_int_equal(end - v, VALUE_MAX);
	assert_cut(v, (size_t)(end - v), huge);
	assert_string_equal(end, " after=yes\n");
	free(out);

	/* JSON: the same, and an escape is never split by the cut. */
	log_setup(LOG_JSON, LOG_INFO);
	capture_start(&c);
	log_info("m", "huge", huge, "quotes", quotes, "after", "yes");
	out = capture_end(&c);
	assert_int_equal(count_char(out, '\n'), 1);
	obj = json_line(out);
	v = json_string_value(json_object_get(obj, "huge"));
	assert_non_null(v);
	assert_int_equal(strlen(v), VALUE_MAX);
	assert_cut(v, strlen(v), huge);
	v = json_string_value(json_object_get(obj, "quotes"));
	assert_non_null(v);
	/* Each quote takes two bytes on the line: \" */
	assert_true(strlen(v) > VALUE_MAX / 4 && (strlen(v) - 3) * 2 + 3 <= VALUE_MAX);
	assert_string_equal(v + strlen(v) - 3, "...");
	assert_memory_equal(v, quotes, strlen(v) - 3);
	assert_string_equal(json_string_value(json_object_get(obj, "after")), "yes");
	json_decref(obj);
	free(out);

	free(fits);
	free(longer);
	free(huge);
	free(quotes);
}

/*
 * More than a line holds: the value that does not fit is cut, the fields
 * after it are dropped, and the line stays one line and valid JSON.
 */
static void test_full_line(void **state)
{
	char *big = repeat('z', 900);
	struct capture c;
	const char *v;
	json_t *obj;
	char *out;

	for (int fmt = LOG_TEXT; fmt <= LOG_JSON; fmt++) {
		log_setup((enum log_format)fmt, LOG_INFO);
		capture_start(&c);
		log_info("m", "a", big, "b", big, "c", big, "d", big, "e", big, "f", big, "last",
			 "z");
		out = capture_end(&c);
		assert_int_equal(count_char(out, '\n'), 1);
		assert_true(strlen(out) <= LINE_MAX_BYTES);
		assert_true(strlen(out) > LINE_MAX_BYTES - 100);
		assert_int_equal(out[strlen(out) - 1], '\n');
		assert_null(strstr(out, "last"));
		if (fmt == LOG_JSON) {
			obj = json_line(out);
			assert_string_equal(json_string_value(json_object_get(obj, "d")), big);
			v = json_string_value(json_object_get(obj, "e"));
			assert_non_null(v);
			assert_cut(v, strlen(v), big);
			assert_null(json_object_get(obj, "f"));
			json_decref(obj);
		} else {
			assert_non_null(strstr(out, " d=zzz"));
			v = strstr(out, " e=");
			assert_non_null(v);
			assert_string_equal(v + strlen(v) - 4, "...\n");
			assert_memory_equal(v + 3, big, strlen(v) - 3 - 4);
		}
		free(out);
	}
	free(big);
}

/* Whatever the values hold, each call is exactly one line. */
static void test_one_line_per_call(void **state)
{
	static const char *const nasty[] = {
	    "a\nb", "\n\n\n", "\r\n", "x\x0by\x0cz", "\x85\xe2\x80\xa8 u2028", "",
	};
	struct capture c;
	char *out, *line, *save = NULL;
	size_t n = sizeof(nasty) / sizeof(nasty[0]);
	size_t lines = 0;

	for (int fmt = LOG_TEXT; fmt <= LOG_JSON; fmt++) {
		log_setup((enum log_format)fmt, LOG_INFO);
		capture_start(&c);
		for (size_t i = 0; i < n; i++)
			log_info(nasty[i], nasty[i], nasty[i], "k", nasty[i]);
		out = capture_end(&c);
		assert_int_equal(count_char(out, '\n'), n);
		assert_int_equal(out[strlen(out) - 1], '\n');
		lines = 0;
		for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			lines++;
			if (fmt == LOG_JSON)
				json_decref(json_line(line));
			else
				assert_non_null(strstr(text_body(line), "INFO "));
		}
		assert_int_equal(lines, n);
		free(out);
	}
}

/* Logging does not disturb errno, so "log, then return -errno" works. */
static void test_errno_kept(void **state)
{
	struct capture c;
	int saved;
	char *out;

	log_setup(LOG_TEXT, LOG_INFO);
	capture_start(&c);
	errno = EAGAIN;
	log_info("m", "k", "v");
	saved = errno;
	out = capture_end(&c);
	assert_int_equal(saved, EAGAIN);
	assert_non_null(strstr(out, "INFO m k=v\n"));
	free(out);
}

/*
 * stderr is the journal's stream (JOURNAL_STREAM names it) but there is no
 * journal socket (libsystemd would drop the entries without a word): the
 * lines stay on stderr, in the configured format. Skipped where a journald
 * runs (test_service.JournaldTest covers that host).
 */
static void test_journal_absent_lines_kept(void **state)
{
	struct capture c;
	struct stat st;
	char env[64], *out;

	if (access("/run/systemd/journal/socket", F_OK) == 0)
		SKIP_HOST("a systemd-journald runs here (test_service.JournaldTest covers it)");
	capture_start(&c);
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	log_setup(LOG_TEXT, LOG_INFO);
	log_info("job finished", "job_id", "abc", "status", "COMPLETED");
	out = capture_end(&c);
	unsetenv("JOURNAL_STREAM");
	assert_true(matches(out, "^" TIME_RE " INFO job finished job_id=abc status=COMPLETED\n$"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_levels_filtered),
	    cmocka_unit_test(test_text_line),
	    cmocka_unit_test(test_text_quoting),
	    cmocka_unit_test(test_json_line),
	    cmocka_unit_test(test_json_escaping),
	    cmocka_unit_test(test_long_value_cut),
	    cmocka_unit_test(test_full_line),
	    cmocka_unit_test(test_one_line_per_call),
	    cmocka_unit_test(test_errno_kept),
	    cmocka_unit_test(test_journal_absent_lines_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
