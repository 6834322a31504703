/*
 * test_job.c - the domain objects: ids, timestamps, statuses, durations and
 * reference counting (run under ASan to catch leaks).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../supervisor/job.h"

static void test_id_round_trip(void **state)
{
	uint8_t id[JOB_ID_LEN], back[JOB_ID_LEN];
	char s[JOB_ID_STRLEN + 1];

	for (int i = 0; i < 10000; i++) {
		job_id_generate(id);
		assert_int_equal(id[6] >> 4, 4);      /* version 4 */
		assert_int_equal(id[8] & 0xc0, 0x80); /* variant 10 */
		job_id_format(id, s);
		assert_int_equal(strlen(s), JOB_ID_STRLEN);
		assert_int_equal(s[8], '-');
		assert_int_equal(s[13], '-');
		assert_int_equal(s[14], '4');
		assert_int_equal(s[18], '-');
		assert_int_equal(s[23], '-');
		for (int k = 0; k < JOB_ID_STRLEN; k++)
			assert_false(s[k] >= 'A' && s[k] <= 'F');
		assert_int_equal(job_id_parse(s, back), 0);
		assert_memory_equal(id, back, JOB_ID_LEN);
	}
}

static void test_id_unique(void **state)
{
	enum { N = 2000 };
	uint8_t(*ids)[JOB_ID_LEN] = calloc(N, JOB_ID_LEN);

	assert_non_null(ids);
	for (int i = 0; i < N; i++)
		job_id_generate(ids[i]);
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			assert_memory_not_equal(ids[i], ids[j], JOB_ID_LEN);
	free(ids);
}

static void test_id_parse(void **state)
{
	uint8_t id[JOB_ID_LEN];
	char s[JOB_ID_STRLEN + 1];

	assert_int_equal(job_id_parse("0123ABCD-ef01-4a2b-9C3d-0123456789aB", id), 0);
	job_id_format(id, s);
	assert_string_equal(s, "0123abcd-ef01-4a2b-9c3d-0123456789ab");

	/* 35 and 37 characters. */
	assert_int_equal(job_id_parse("0123abcd-ef01-4a2b-9c3d-0123456789a", id), -EINVAL);
	assert_int_equal(job_id_parse("0123abcd-ef01-4a2b-9c3d-0123456789abc", id), -EINVAL);
	/* Hyphens in the wrong place, or missing. */
	assert_int_equal(job_id_parse("0123abc-def01-4a2b-9c3d-0123456789ab", id), -EINVAL);
	assert_int_equal(job_id_parse("0123abcd-ef01-4a2b-9c3d-0123456789-b", id), -EINVAL);
	assert_int_equal(job_id_parse("0123abcdXef01-4a2b-9c3d-0123456789ab", id), -EINVAL);
	assert_int_equal(job_id_parse("0123abcdef014a2b9c3d0123456789ab", id), -EINVAL);
	/* Not hex. */
	assert_int_equal(job_id_parse("0123abcg-ef01-4a2b-9c3d-0123456789ab", id), -EINVAL);
	assert_int_equal(job_id_parse("0123abcd-ef01-4a2b-9c3d-01234567 9ab", id), -EINVAL);
	assert_int_equal(job_id_parse("", id), -EINVAL);
	assert_int_equal(job_id_parse("not-a-uuid", id), -EINVAL);
	assert_int_equal(job_id_parse(NULL, id), -EINVAL);
}

static void test_time_format(void **state)
{
	static const struct {
		int64_t us;
		const char *want;
	} cases[] = {
		{0, "1970-01-01T00:00:00Z"},
		{1795741323000000, "2026-11-27T01:02:03Z"},
		{1795741323123400, "2026-11-27T01:02:03.1234Z"},
		{1795741323123456, "2026-11-27T01:02:03.123456Z"},
		{1795741323100000, "2026-11-27T01:02:03.1Z"},
		{1795741323000001, "2026-11-27T01:02:03.000001Z"},
		{1795741323010000, "2026-11-27T01:02:03.01Z"},
		{951782400000000, "2000-02-29T00:00:00Z"},
		{1136214245000000, "2006-01-02T15:04:05Z"},
		{-1, "1969-12-31T23:59:59.999999Z"},
		{-1000000, "1969-12-31T23:59:59Z"},
		{253402300799999999, "9999-12-31T23:59:59.999999Z"},
		{JOB_TIME_MAX_US, "9999-12-31T23:59:59.999999Z"},
		{JOB_TIME_MIN_US, "0001-01-01T00:00:00Z"},
		{JOB_TIME_MIN_US + 1, "0001-01-01T00:00:00.000001Z"},
		{-62104147200000000, "0001-12-31T00:00:00Z"},
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		job_time_format(cases[i].us, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	/* A short buffer truncates and stays terminated. */
	job_time_format(0, buf, 5);
	assert_string_equal(buf, "1970");
}

static void test_time_parse_accepts(void **state)
{
	static const struct {
		const char *s;
		const char *utc; /* what it formats back to */
	} cases[] = {
		{"2006-01-02T15:04:05Z", "2006-01-02T15:04:05Z"},
		{"2006-01-02T15:04:05.999999999Z", "2006-01-02T15:04:05.999999Z"},
		{"2006-01-02T15:04:05.5Z", "2006-01-02T15:04:05.5Z"},
		{"2006-01-02T15:04:05,25Z", "2006-01-02T15:04:05.25Z"},
		{"2006-01-02T15:04:05.000000Z", "2006-01-02T15:04:05Z"},
		{"2030-01-01T10:00:00+02:00", "2030-01-01T08:00:00Z"},
		{"2030-01-01T10:00:00.5+02:00", "2030-01-01T08:00:00.5Z"},
		{"2030-01-01T01:00:00+02:30", "2029-12-31T22:30:00Z"},
		{"2029-12-31T22:00:00-05:00", "2030-01-01T03:00:00Z"},
		{"2030-01-01T00:00:00-00:00", "2030-01-01T00:00:00Z"},
		{"2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z"},
		{"2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"},
		{"1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"},
		{"2026-12-31T23:59:59Z", "2026-12-31T23:59:59Z"},
		{"2026-04-30T00:00:00Z", "2026-04-30T00:00:00Z"},
	};
	char buf[32];
	int64_t us;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		us = 42;
		if (job_time_parse(cases[i].s, &us) != 0)
			fail_msg("rejected %s", cases[i].s);
		job_time_format(us, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].utc);
	}
	assert_int_equal(job_time_parse("2006-01-02T15:04:05Z", &us), 0);
	assert_int_equal(us, INT64_C(1136214245000000));
	assert_int_equal(job_time_parse("2030-01-01T10:00:00+02:00", &us), 0);
	int64_t utc;
	assert_int_equal(job_time_parse("2030-01-01T08:00:00Z", &utc), 0);
	assert_int_equal(us, utc);
}

static void test_time_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"2022-06-06T15:04:05.999",     /* no zone */
		"2022-06-06T15:04:05",         /* no zone */
		"2006-01-02t15:04:05Z",        /* lower-case t */
		"2006-01-02T15:04:05z",        /* lower-case z */
		"2022-06-06 15:04:05Z",        /* space separator */
		"2023-02-29T00:00:00Z",        /* not a leap year */
		"1900-02-29T00:00:00Z",        /* not a leap year */
		"2026-13-01T00:00:00Z",        /* month 13 */
		"2026-00-01T00:00:00Z",        /* month 0 */
		"2026-04-31T00:00:00Z",        /* April has 30 days */
		"2026-01-00T00:00:00Z",        /* day 0 */
		"2026-01-32T00:00:00Z",
		"2026-01-01T24:00:00Z",
		"2026-01-01T00:60:00Z",
		"2026-01-01T00:00:60Z",
		"2026-01-01",                  /* date only */
		"2026-01-01T",
		"1795741323",                  /* epoch number */
		"invalid_timestamp_format",
		"2026-01-01T00:00:00.Z",       /* empty fraction */
		"2026-01-01T00:00:00.1234567890Z", /* 10 digits */
		"2026-01-01T00:00:00+0200",    /* offset without colon */
		"2026-01-01T00:00:00+02",
		"2026-01-01T00:00:00+24:00",
		"2026-01-01T00:00:00+02:60",
		"2026-01-01T00:00:00Z ",       /* trailing garbage */
		"2026-01-01T00:00:00ZZ",
		"26-01-01T00:00:00Z",
		"2026-1-01T00:00:00Z",
		"+2026-01-01T00:00:00Z",
	};
	int64_t us = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (job_time_parse(bad[i], &us) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(us, 7);
	assert_int_equal(job_time_parse(NULL, &us), -EINVAL);
}

/*
 * The edges of what valet takes (years 0001-9999 in UTC): inside, parse
 * and format are each other's inverse; outside, parse says -ERANGE and
 * leaves *us alone, whatever zone carried the time there.
 */
static void test_time_range(void **state)
{
	static const char *const in[] = {
		"0001-01-01T00:00:00Z",
		"0001-01-01T00:00:00.000001Z",
		"0001-01-01T01:00:00+01:00",
		"0001-03-01T00:00:00Z",
		"1969-12-31T23:59:59.999999Z",
		"9999-12-31T23:59:59.999999Z",
		"9999-12-31T23:59:59.9999999Z",
		"9999-12-31T22:59:59-01:00",
	};
	static const char *const out[] = {
		"0000-01-01T00:00:00Z",
		"0000-12-31T23:59:59.999999Z",
		"0001-01-01T00:59:59.999999+01:00",
		"0001-01-01T00:00:00+00:01",
		"9999-12-31T23:59:59-00:01",
		"9999-12-31T23:00:00-01:00",
	};
	int64_t edges[] = {JOB_TIME_MIN_US, JOB_TIME_MIN_US + 1, -1, 0, 1, JOB_TIME_MAX_US - 1,
			   JOB_TIME_MAX_US};
	char buf[40], again[40];
	int64_t us, back;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		if (job_time_parse(in[i], &us) != 0)
			fail_msg("rejected %s", in[i]);
		assert_true(us >= JOB_TIME_MIN_US && us <= JOB_TIME_MAX_US);
		job_time_format(us, buf, sizeof(buf));
		assert_int_equal(job_time_parse(buf, &back), 0);
		assert_int_equal(back, us);
		job_time_format(back, again, sizeof(again));
		assert_string_equal(again, buf);
	}
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		us = 7;
		if (job_time_parse(out[i], &us) != -ERANGE)
			fail_msg("did not refuse %s as out of range", out[i]);
		assert_int_equal(us, 7);
	}
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		job_time_format(edges[i], buf, sizeof(buf));
		assert_int_equal(strlen(buf) >= 20 && buf[4] == '-', true);
		assert_int_equal(job_time_parse(buf, &back), 0);
		assert_int_equal(back, edges[i]);
	}
}

static void test_status(void **state)
{
	static const char *const names[] = {"PENDING", "SCHEDULED", "IN_PROGRESS",
					    "COMPLETED", "FAILED", "CANCELLED"};

	for (int s = JOB_PENDING; s <= JOB_STATUS_MAX; s++) {
		assert_string_equal(job_status_name(s), names[s - 1]);
		assert_int_equal(job_status_parse(names[s - 1]), s);
	}
	assert_int_equal(job_status_parse("pending"), JOB_PENDING);
	assert_int_equal(job_status_parse("in_progress"), JOB_IN_PROGRESS);
	assert_int_equal(job_status_parse("In_Progress"), JOB_IN_PROGRESS);
	assert_int_equal(job_status_parse("cancelled"), JOB_CANCELLED);
	assert_int_equal(job_status_parse("completed"), JOB_COMPLETED);
	assert_int_equal(job_status_parse("in-progress"), JOB_UNDEFINED);
	assert_int_equal(job_status_parse("inprogress"), JOB_UNDEFINED);
	assert_int_equal(job_status_parse("PENDING "), JOB_UNDEFINED);
	assert_int_equal(job_status_parse(""), JOB_UNDEFINED);
	assert_int_equal(job_status_parse("UNDEFINED"), JOB_UNDEFINED);
	assert_int_equal(job_status_parse(NULL), JOB_UNDEFINED);
	assert_string_equal(job_status_name(JOB_UNDEFINED), "UNDEFINED");
	assert_string_equal(job_status_name((enum job_status)99), "UNDEFINED");

	assert_false(job_status_final(JOB_UNDEFINED));
	assert_false(job_status_final(JOB_PENDING));
	assert_false(job_status_final(JOB_SCHEDULED));
	assert_false(job_status_final(JOB_IN_PROGRESS));
	assert_true(job_status_final(JOB_COMPLETED));
	assert_true(job_status_final(JOB_FAILED));
	assert_true(job_status_final(JOB_CANCELLED));
}

static void test_duration(void **state)
{
	struct job *job = job_new();

	assert_non_null(job);
	job->status = JOB_COMPLETED;
	assert_int_equal(job_duration_ms(job), -1); /* no times */
	job->started_at = 1000000;
	assert_int_equal(job_duration_ms(job), -1); /* no completed_at */
	job->completed_at = 1000000 + 1234999;
	assert_int_equal(job_duration_ms(job), 1234); /* truncated */
	job->status = JOB_FAILED;
	assert_int_equal(job_duration_ms(job), 1234);
	job->completed_at = 1000000 + 999;
	assert_int_equal(job_duration_ms(job), 0);
	job->status = JOB_CANCELLED;
	assert_int_equal(job_duration_ms(job), -1);
	job->status = JOB_IN_PROGRESS;
	assert_int_equal(job_duration_ms(job), -1);
	job_unref(job);
}

static void test_job_lifecycle(void **state)
{
	struct job *job = job_new();

	assert_non_null(job);
	assert_int_equal(job->refs, 1);
	assert_int_equal(job->status, JOB_UNDEFINED);
	assert_int_equal(job->outcome.exit_code, -1);
	assert_int_equal(job->outcome.cpu_ms, -1);
	assert_int_equal(job->outcome.wall_ms, -1);
	assert_int_equal(job->outcome.max_rss_kb, -1);
	assert_int_equal(job->outcome.memory_peak_kb, -1);
	assert_int_equal(job->outcome.pid, 0);

	job_set_str(&job->name, "a name");
	job_set_str(&job->name, job->name); /* self-assignment is safe */
	assert_string_equal(job->name, "a name");
	job_set_str(&job->description, "d");
	job_set_str(&job->description, NULL);
	assert_null(job->description);
	job->task_name = job_intern("t");
	job_set_str(&job->params_json, "{\"a\":1}");
	job_set_str(&job->failure_reason, "x");
	job_set_str(&job->result_json, "[1]");
	job_set_str(&job->result_error, "e");

	assert_ptr_equal(job_ref(job), job);
	assert_int_equal(job->refs, 2);
	job_unref(job);
	assert_int_equal(job->refs, 1);
	job_unref(job); /* frees every string: ASan reports a leak otherwise */
	job_unref(NULL);
	assert_null(job_ref(NULL));
}

static void test_pipeline_lifecycle(void **state)
{
	struct pipeline *pl = pipeline_new(3);
	struct job *kept;

	assert_non_null(pl);
	assert_int_equal(pl->refs, 1);
	assert_int_equal(pl->njobs, 3);
	for (size_t i = 0; i < 3; i++)
		assert_null(pl->jobs[i]);
	for (size_t i = 0; i < 2; i++) { /* the last slot stays NULL */
		pl->jobs[i] = job_new();
		job_set_str(&pl->jobs[i]->name, "j");
	}
	kept = job_ref(pl->jobs[1]);
	job_set_str(&pl->name, "p");
	job_set_str(&pl->description, "pd");
	job_set_str(&pl->failure_reason, "why");
	pipeline_ref(pl);
	pipeline_unref(pl);
	pipeline_unref(pl);
	assert_int_equal(kept->refs, 1);
	assert_string_equal(kept->name, "j");
	job_unref(kept);
	pipeline_unref(NULL);

	pl = pipeline_new(0);
	assert_non_null(pl);
	assert_non_null(pl->jobs);
	pipeline_unref(pl);
}

/* Owners: one number per name, stable, the name back; 0 for none; many
 * names (the table grows past its first sizes) keep their numbers. */
static void test_owner_ids(void **state)
{
	char name[32];
	uint16_t a = job_owner_id("alice"), b = job_owner_id("bob");

	assert_int_equal(job_owner_id(NULL), 0);
	assert_int_equal(job_owner_id(""), 0);
	assert_null(job_owner_name(0));
	assert_true(a && b && a != b);
	assert_int_equal(job_owner_id("alice"), a);
	assert_string_equal(job_owner_name(a), "alice");
	assert_string_equal(job_owner_name(b), "bob");
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "key-%d", i);
		uint16_t id = job_owner_id(name);
		assert_true(id > b);
		assert_string_equal(job_owner_name(id), name);
	}
	assert_int_equal(job_owner_id("alice"), a);
	assert_int_equal(job_owner_id("key-7"), job_owner_id("key-7"));
	assert_null(job_owner_name(UINT16_MAX));
	assert_true(sizeof(struct job) <= 280);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_round_trip),
		cmocka_unit_test(test_id_unique),
		cmocka_unit_test(test_id_parse),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_time_parse_accepts),
		cmocka_unit_test(test_time_parse_rejects),
		cmocka_unit_test(test_time_range),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_job_lifecycle),
		cmocka_unit_test(test_pipeline_lifecycle),
		cmocka_unit_test(test_owner_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
