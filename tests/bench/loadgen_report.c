/*
 * loadgen_report.c - loadgen's figures: percentiles, the report of a phase
 * (JSON) and its text form.
 *
 * Theory of operation: loadgen.c collects, per job, what the server said
 * (created, started, completed, final state) and, per submit, the client's
 * latency; this file turns them into the report. Throughput is final jobs
 * over the server's span (first created_at to last completed_at), latency
 * completed_at - created_at, and a kill's lateness completed_at -
 * started_at - timeout; percentiles are nearest-rank.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of v[0..n) (sorted in place); NAN when empty. */
double lg_percentile(double *v, long n, double q)
{
	long rank;

	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	rank = (long)ceil(q * (double)n);
	return v[rank < 1 ? 0 : rank - 1];
}

static json_t *num(double v)
{
	return isfinite(v) ? json_real(round(v * 1000) / 1000) : json_null();
}

/* With --samples: v[0..n) as out's samples.KEY, a JSON array. */
static void add_samples(json_t *out, const char *key, const double *v, long n)
{
	json_t *all, *arr;
	long k;

	if (!g_samples)
		return;
	all = json_object_get(out, "samples");
	if (!all) {
		all = json_object();
		json_object_set_new(out, "samples", all);
	}
	arr = json_array();
	for (k = 0; k < n; k++)
		json_array_append_new(arr, num(v[k]));
	json_object_set_new(all, key, arr);
}

/* Adds the client-side figures of a submit phase to out. */
void lg_report_submit(struct phase *ph, json_t *out)
{
	json_object_set_new(out, "jobs", json_integer(ph->n));
	json_object_set_new(out, "accepted", json_integer(ph->accepted));
	json_object_set_new(out, "submit_errors", json_integer(ph->errors));
	json_object_set_new(out, "retries_503", json_integer(ph->retries));
	json_object_set_new(out, "submit_seconds", num(ph->seconds));
	json_object_set_new(out, "submit_rate", num((double)ph->done / ph->seconds));
	json_object_set_new(out, "submit_latency_ms",
			    json_pack("{s:o,s:o}", "p50",
				      num(lg_percentile(ph->submit_ms, ph->nsubmit_ms, 0.50)), "p99",
				      num(lg_percentile(ph->submit_ms, ph->nsubmit_ms, 0.99))));
	add_samples(out, "submit_latency_ms", ph->submit_ms, ph->nsubmit_ms);
}

/* Adds the throughput/latency (or, kill, the kill latency) figures to out. */
bool lg_report_phase(struct phase *ph, struct jobrec *recs, long nfinal, bool kill,
			 json_t *out)
{
	double *lat = calloc((size_t)ph->n + 1, sizeof(double)), span = NAN, p50, p99;
	int64_t first = INT64_MAX, last = INT64_MIN;
	long k, nlat = 0, ntimed_out = 0, count[JS_CANCELLED + 1] = { 0 };

	if (!lat)
		lg_die("out of memory");
	for (k = 0; k < ph->n; k++) {
		struct jobrec *r = &recs[k];

		count[r->state]++;
		if (r->state < JS_COMPLETED || !r->created || !r->completed)
			continue;
		first = r->created < first ? r->created : first;
		last = r->completed > last ? r->completed : last;
		if (!kill)
			lat[nlat++] = (double)(r->completed - r->created) / 1e3;
		else if (r->state == JS_FAILED && r->timed_out && r->started && ++ntimed_out)
			lat[nlat++] = (double)(r->completed - r->started) / 1e3 -
				      (r->timeout_s > 0 ? r->timeout_s : 0.05) * 1000;
	}
	if (last > first)
		span = (double)(last - first) / 1e6;
	lg_report_submit(ph, out);
	json_object_set_new(out, "completed", json_integer(count[JS_COMPLETED]));
	json_object_set_new(out, "failed", json_integer(count[JS_FAILED]));
	json_object_set_new(out, "cancelled", json_integer(count[JS_CANCELLED]));
	json_object_set_new(out, "unfinished", json_integer(ph->accepted - nfinal));
	json_object_set_new(out, "span_seconds", num(span));
	json_object_set_new(out, "throughput", num((double)nfinal / span));
	if (kill)
		json_object_set_new(out, "timed_out", json_integer(ntimed_out));
	p50 = lg_percentile(lat, nlat, 0.50); /* sorts lat */
	p99 = lg_percentile(lat, nlat, 0.99);
	json_object_set_new(out, kill ? "kill_ms" : "latency_ms",
			    json_pack("{s:o,s:o,s:o}", "p50", num(p50), "p99", num(p99), "max",
				      num(nlat ? lat[nlat - 1] : NAN)));
	add_samples(out, kill ? "kill_ms" : "latency_ms", lat, nlat);
	free(lat);
	return ph->errors == 0 && nfinal == ph->accepted && ph->accepted == ph->n;
}

/* A figure of the report as text, "n/a" when missing; buf: 32 bytes. */
static const char *fig(json_t *obj, const char *key, const char *sub, char *buf)
{
	json_t *v = json_object_get(obj, key);

	if (sub)
		v = json_object_get(v, sub);
	if (json_is_integer(v))
		snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, 32, "%.2f", json_real_value(v));
	else
		return "n/a";
	return buf;
}

void lg_print_text(json_t *report)
{
	char f[8][32];
	const char *name, *lat;
	json_t *ph;

	json_object_foreach(report, name, ph) {
		if (!json_is_object(ph))
			continue;
		printf("%s: %s jobs accepted in %s s (%s/s), %s errors, %s 503 retries; "
		       "HTTP submit latency p50 %s ms, p99 %s ms\n", name,
		       fig(ph, "accepted", NULL, f[0]), fig(ph, "submit_seconds", NULL, f[1]),
		       fig(ph, "submit_rate", NULL, f[2]), fig(ph, "submit_errors", NULL, f[3]),
		       fig(ph, "retries_503", NULL, f[4]), fig(ph, "submit_latency_ms", "p50", f[5]),
		       fig(ph, "submit_latency_ms", "p99", f[6]));
		if (!json_object_get(ph, "completed"))
			continue;
		printf("%s: %s completed, %s failed, %s unfinished; %s jobs/s over %s s "
		       "(server clock)\n", name, fig(ph, "completed", NULL, f[0]),
		       fig(ph, "failed", NULL, f[1]), fig(ph, "unfinished", NULL, f[2]),
		       fig(ph, "throughput", NULL, f[3]), fig(ph, "span_seconds", NULL, f[4]));
		if (json_object_get(ph, "first_failure"))
			printf("%s: first failure: %s\n", name,
			       json_string_value(json_object_get(ph, "first_failure")));
		lat = json_object_get(ph, "kill_ms") ? "kill_ms" : "latency_ms";
		printf("%s: %s p50 %s ms, p99 %s ms, max %s ms\n", name,
		       strcmp(lat, "kill_ms") ? "submit-to-complete latency" :
		       "kill latency (completed - started - timeout)",
		       fig(ph, lat, "p50", f[0]), fig(ph, lat, "p99", f[1]), fig(ph, lat, "max", f[2]));
	}
}
