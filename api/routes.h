/*
 * routes.h - private to api/: a request as the server glue (http.c,
 * http_conn.c, http_parse.c) hands it to the routing and handlers
 * (routes.c), and the calls by which a handler answers it.
 */
#ifndef VALET_ROUTES_H
#define VALET_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "../supervisor/config.h"
#include "../supervisor/core.h"
#include "json_in.h"

struct http_server;
struct http_conn;
struct http_request;

/*
 * The producer of a streamed answer (http_request_answer_stream()): the
 * body goes out in pieces, each made only once the one before has been
 * sent, so that a long answer costs one piece of memory and one piece of
 * loop time at a time, however slowly the client reads.
 */
struct http_stream_ops {
	/* Everything handed over so far is sent: hand over the next piece
	 * (http_request_stream_piece() or _fail()), now or later from the
	 * loop. Called only while the request has its connection. */
	void (*more)(struct http_request *req);
	/* The request is freed: free the producer's state (stolen). */
	void (*free)(void *state);
};

/* What a request asked for; the core callback encodes by it. */
enum http_route {
	ROUTE_NONE = 0,
	ROUTE_SUBMIT_JOB,
	ROUTE_LIST_JOBS,
	ROUTE_GET_JOB,
	ROUTE_PATCH_JOB,
	ROUTE_DELETE_JOB,
	ROUTE_CANCEL_JOB,
	ROUTE_GET_RESULT,
	ROUTE_DELETE_RESULT,
	ROUTE_SUBMIT_PIPELINE,
	ROUTE_LIST_PIPELINES,
	ROUTE_GET_PIPELINE,
	ROUTE_PATCH_PIPELINE,
	ROUTE_DELETE_PIPELINE,
	ROUTE_CANCEL_PIPELINE,
	ROUTE_PIPELINE_JOBS,
};

/* Pieces of an answer's body at most (GET .../results: head, result, tail). */
#define HTTP_BODY_PARTS 3

/*
 * One request. References: one for its connection (dropped when the answer
 * has been sent or the connection is gone), one while a core call is
 * outstanding. conn is NULL once the connection is done with it; srv is
 * NULL once the server is gone.
 */
struct http_request {
	unsigned refs;
	struct http_server *srv;
	struct http_conn *conn;
	struct core *core;	   /* borrowed: the server's */
	const struct config *cfg;  /* borrowed: the server's */
	char method[16];	   /* as routed: HEAD is routed as GET */
	bool head;		   /* a HEAD request: the answer goes without its body */
	char *url;		   /* the path as sent: not percent-decoded, no query */
	char *query;		   /* the query as sent, after '?'; NULL when none */
	char *origin;		   /* the Origin header; NULL when none */
	char *authorization;	   /* the Authorization header; NULL when none */
	char *if_none_match;	   /* the If-None-Match header; NULL when none */
	char *host;		   /* the Host header; NULL when none */
	char *sec_fetch_site;	   /* the Sec-Fetch-Site header; NULL when none */
	char key_name[65];	   /* the API key it came with; "" for none */
	bool bad_token;		   /* a bearer token was sent and refused (401) */
	bool key_admin;		   /* that key has the admin scope */
	uint16_t owner;		   /* that key as an owner (job.h); 0 for none */
	/* That key's policy; borrowed from the keys in use, so valid only
	 * while the request is dispatched (the core checks it at once). */
	const struct core_policy *policy;
	unsigned retry_after; /* a 429: seconds for the Retry-After header */
	bool rate_taken;      /* a submit took a token of its key's rate */
	int64_t start_ns;

	char *body; /* the upload, NUL-terminated */
	size_t body_len, body_cap;

	bool waiting;	  /* a core call is outstanding */
	bool dispatching; /* inside routes_dispatch(): the answer is sent after it */
	bool orphaned;	  /* the server went away while waiting */
	bool answered;	  /* status and response body are set */
	bool preflight;	  /* a CORS preflight: add the Allow-* headers */
	unsigned status;
	/* Header lines of an answer that is not JSON ("Content-Type: ...\r\n"
	 * and more), malloc()ed; NULL: a JSON answer. */
	char *resp_headers;
	const char *content_type; /* static; NULL: application/json */
	struct iovec resp[HTTP_BODY_PARTS]; /* the body, in pieces (malloc()ed) */
	unsigned nresp;
	uint8_t resp_borrowed; /* bit i: resp[i] is not the request's to free */
	size_t resp_len;       /* the body's length; streamed: what was handed so far */
	/* A streamed answer: resp holds the current piece, framed as a chunk
	 * (its size line, the text, its CRLF; the last also the last chunk),
	 * or as it is for an HTTP/1.0 client, which reads to the close. */
	bool streaming;
	bool stream_last;     /* the piece in resp is the last */
	bool stream_asked;    /* stream_ops->more() was called; no piece yet */
	bool stream_in_more;  /* inside stream_ops->more(): sent when it returns */
	bool stream_failed;   /* the producer failed: cut the connection */
	char stream_line[24]; /* the chunk-size line of the piece */
	const struct http_stream_ops *stream_ops; /* NULL: none */
	void *stream;			/* the producer's state: stream_ops->free() */
	struct job *resp_job; /* a reference: resp[1] is its result text, borrowed */
	uint8_t resp_gen;     /* resp_job->result_gen when answered */
	char *query_values[4]; /* decoded values handed out by http_request_query() */

	uint8_t pattern;   /* enum routes_pattern: routes_match() */
	size_t path_id;	   /* where the path's ":id" segment starts in url (0: none) */
	size_t path_id_len;
	enum http_route route;
	char id_text[JOB_ID_STRLEN + 1]; /* the id of a core call */
	/* A decoded body; strings point into doc. Kept until the answer. */
	struct json_in_doc doc;
	union {
		struct job_request job;
		struct pipeline_request pipeline;
		struct patch_request patch;
	} in;
	LIST_ENTRY(http_request) wait_link;
};

/* The OpenAPI document of the API (api/openapi.json, generated into the
 * build by the Makefile); NUL-terminated, len without the NUL. */
extern const char routes_openapi_json[];
extern const size_t routes_openapi_json_len;

/* Route a complete request by req->pattern (routes_match() first) and its
 * method: answers now or starts a core call (routes.c). */
void routes_dispatch(struct http_request *req);

/*
 * The path shapes of the routes (routes.c's table): req->pattern, and the
 * metrics' route label, routes_pattern_name() ("/api/jobs/:id", "/metrics",
 * ...; "other" for a path that is no route).
 */
enum routes_pattern {
	ROUTES_PAT_OTHER = 0,
	ROUTES_PAT_STATUS,
	ROUTES_PAT_TASKS,
	ROUTES_PAT_JOBS,
	ROUTES_PAT_JOB,
	ROUTES_PAT_JOB_CANCEL,
	ROUTES_PAT_JOB_RESULTS,
	ROUTES_PAT_PIPELINES,
	ROUTES_PAT_PIPELINE,
	ROUTES_PAT_PIPELINE_CANCEL,
	ROUTES_PAT_PIPELINE_JOBS,
	ROUTES_PAT_METRICS,
	ROUTES_PAT_OPENAPI,
	ROUTES_PAT_UI,
	ROUTES_NPATTERNS
};
const char *routes_pattern_name(unsigned pattern);
/* Match req->url (the path, once its head is in) against the patterns, once
 * per request: sets req->pattern and req->path_id; dispatch and the metrics
 * read them. */
void routes_match(struct http_request *req);

struct metrics_text;
/* Append the HTTP server's own metrics families to t (http_metrics.c). */
void http_request_metrics(struct http_request *req, struct metrics_text *t);

/* Set the answer; body is stolen (NULL for none). Ends a wait (http.c). */
void http_request_answer(struct http_request *req, unsigned status, char *body, size_t len);
/* The same with a body in n pieces (n <= HTTP_BODY_PARTS), each stolen, so
 * that a large piece is sent as it is, not copied into one buffer. */
void http_request_answer_parts(struct http_request *req, unsigned status, struct iovec *parts,
			       unsigned n);
/*
 * The answer to GET .../results: parts[0] and parts[2] are stolen, parts[1]
 * is job's stored result text, sent from job itself (a reference is held
 * until it is sent; should the result change meanwhile, the connection is
 * cut rather than sending freed memory).
 */
void http_request_answer_result(struct http_request *req, unsigned status,
				struct iovec parts[3], struct job *job);
/*
 * Answer with a streamed body (see http_stream_ops), beginning with piece
 * (stolen; NULL for none yet); last: it is the whole body. The producer
 * must be set first (req->stream_ops, req->stream). Ends a wait. A HEAD
 * request gets the head alone, with neither Content-Length nor chunks.
 */
void http_request_answer_stream(struct http_request *req, unsigned status, char *piece,
				size_t len, bool last);
/* The next piece (stolen) after stream_ops->more(); ends a wait. */
void http_request_stream_piece(struct http_request *req, char *piece, size_t len, bool last);
/* The body cannot go on (a read failed midway): the connection is cut, so
 * the client sees an unfinished body, never a wrong one. Ends a wait. */
void http_request_stream_fail(struct http_request *req);
/* A list route: read it from the core page by page and stream the answer
 * (routes_list.c). q: the query (borrowed); id: the pipeline of
 * ROUTE_PIPELINE_JOBS (borrowed), else NULL. */
void routes_list_start(struct http_request *req, enum http_route route,
		       const struct core_list_query *q, const uint8_t *id);
/* Answer a core reply that is an error, or end the wait of a request
 * orphaned meanwhile (routes.c). */
void routes_answer_failure(struct http_request *req, const struct core_reply *reply);
/* Log that req was refused, once, with its key's name and why (never its
 * token); the answer is set apart. */
void http_request_denied(struct http_request *req, const char *why);
/* A submit whose body decoded takes a token of its key's submit_rate:
 * true, or false when there is none (then req has been answered 429). */
bool http_request_take_submit(struct http_request *req);
/* The submit was refused after all: its token goes back (none taken: no-op). */
void http_request_give_back(struct http_request *req);
/* An error body answer. */
void http_request_error(struct http_request *req, unsigned status, const char *message);
/* Before a core call: the request waits for its callback. */
void http_request_wait(struct http_request *req);
/* The percent-decoded value of query parameter key (the first one), or NULL
 * when absent or empty. Borrowed: valid while the request lives. */
const char *http_request_query(struct http_request *req, const char *key);

#endif
