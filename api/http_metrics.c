/*
 * http_metrics.c - the HTTP server's metrics: requests by route pattern,
 * method and status code, their latency, and the open connections.
 *
 * Theory of operation: when a request ends on its connection (where the
 * access log line is written), its route pattern (req->pattern, matched
 * once when its head was in: the route, never the path, so ids do not
 * become labels; "other" for a request whose head never completed), its method (one of
 * a fixed list, else "other") and its status (one of the codes the server
 * answers with, else "other"; 0 when no answer was sent) pick one counter
 * of a fixed table, and its time from the first byte to the end one
 * bucket of its route's histogram. A scrape prints the counters that are
 * not zero.
 */
#include <stdio.h>
#include <string.h>

#include "../supervisor/metrics.h"
#include "http_internal.h"

static const char *const methods[HTTP_METRICS_METHODS] = {
    "GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "other",
};

static const unsigned codes[HTTP_METRICS_CODES - 1] = {
    0, 200, 202, 204, 400, 401, 403, 404, 405, 408, 409, 413, 414, 417, 431, 500, 501, 503, 505,
};

void http_metrics_init(struct http_metrics *m)
{
	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < ROUTES_NPATTERNS; i++)
		metrics_hist_init(&m->latency[i], metrics_buckets_latency,
				  metrics_nbuckets_latency);
}

static unsigned method_index(const struct http_request *req)
{
	const char *m = req->head ? "HEAD" : req->method;

	for (unsigned i = 0; i < HTTP_METRICS_METHODS - 1; i++)
		if (!strcmp(m, methods[i]))
			return i;
	return HTTP_METRICS_METHODS - 1;
}

static unsigned code_index(unsigned status)
{
	for (unsigned i = 0; i < HTTP_METRICS_CODES - 1; i++)
		if (codes[i] == status)
			return i;
	return HTTP_METRICS_CODES - 1;
}

void http_metrics_request(struct http_metrics *m, const struct http_request *req, bool sent)
{
	unsigned route = req->pattern < ROUTES_NPATTERNS ? req->pattern : ROUTES_PAT_OTHER;

	m->requests[route][method_index(req)][code_index(sent ? req->status : 0)]++;
	metrics_hist_observe(&m->latency[route], (double)(job_mono_ns() - req->start_ns) / 1e9);
}

void http_metrics_write(const struct http_server *srv, struct metrics_text *t)
{
	const struct http_metrics *m = &srv->metrics;
	char code[16];

	metrics_family(t, "valet_http_requests_total", "counter",
		       "HTTP requests by route pattern, method and status code (0: none was "
		       "sent).");
	for (unsigned r = 0; r < ROUTES_NPATTERNS; r++)
		for (unsigned k = 0; k < HTTP_METRICS_METHODS; k++)
			for (unsigned c = 0; c < HTTP_METRICS_CODES; c++) {
				if (!m->requests[r][k][c])
					continue;
				if (c < HTTP_METRICS_CODES - 1)
					snprintf(code, sizeof(code), "%u", codes[c]);
				else
					snprintf(code, sizeof(code), "other");
				metrics_sample(t, "valet_http_requests_total",
					       (double)m->requests[r][k][c], "route",
					       routes_pattern_name(r), "method", methods[k], "code",
					       code, (const char *)NULL);
			}
	metrics_family(t, "valet_http_request_duration_seconds", "histogram",
		       "From a request's first byte to its answer sent, by route pattern.");
	for (unsigned r = 0; r < ROUTES_NPATTERNS; r++)
		if (m->latency[r].count)
			metrics_hist_write(t, "valet_http_request_duration_seconds", "route",
					   routes_pattern_name(r), &m->latency[r]);
	metrics_family(t, "valet_http_connections", "gauge", "Open HTTP connections.");
	metrics_sample(t, "valet_http_connections", (double)srv->nconns, (const char *)NULL);
}
