/*
 * loadgen.h - what loadgen.c and loadgen_report.c share: a phase of
 * submissions and what is known of each of its jobs.
 */
#ifndef VALET_LOADGEN_H
#define VALET_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define LG_ID_MAX 40

/* One batch of submissions. */
struct phase {
	const char *what;
	long n;
	json_t *tmpl;           /* the job request; task_params {"i":k} when vary */
	bool vary;
	char (*ids)[LG_ID_MAX]; /* new; the job id of request k ("" on error) */
	double *submit_ms;      /* client-side latency of each 202 */
	long nsubmit_ms;
	long next, done, accepted, retries, errors;
	double seconds;
};

enum js { JS_UNKNOWN = 0, JS_WAITING, JS_COMPLETED, JS_FAILED, JS_CANCELLED };

struct jobrec {
	enum js state;
	int64_t created, started, completed; /* us since the epoch, 0 = absent */
	double timeout_s;
	bool timed_out;
};

/* The first failure_reason seen, for the report. */
extern char g_first_failure[256];

/* --samples: the reports carry every job's latencies ("samples"). */
extern bool g_samples;

/* Print "loadgen: ..." and exit 1. */
void lg_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Nearest-rank percentile q of v[0..n) (sorted in place); NAN when empty. */
double lg_percentile(double *v, long n, double q);

/* Adds the client-side figures of a submit phase to out. */
void lg_report_submit(struct phase *ph, json_t *out);

/* Adds a phase's figures to out: throughput and latency, or (kill) the kill
 * latency. Whether every job was accepted and reached a final state. */
bool lg_report_phase(struct phase *ph, struct jobrec *recs, long nfinal, bool kill, json_t *out);

/* The report as text lines. */
void lg_print_text(json_t *report);

#endif
