/*
 * routes.h - private to api/: the server and per-request state shared by
 * the server glue (http.c) and the routing and handlers (routes.c).
 */
#ifndef VALET_ROUTES_H
#define VALET_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <ev.h>
#include <microhttpd.h>

#include "../supervisor/config.h"
#include "../supervisor/core.h"
#include "json_in.h"

enum http_cors {
	HTTP_CORS_NONE = 0, /* no CORS headers at all */
	HTTP_CORS_ANY,	    /* Access-Control-Allow-Origin: * */
	HTTP_CORS_LIST,	    /* echo an allowed origin, Vary: Origin */
};

struct http_request;

struct http_server {
	struct ev_loop *loop;
	const struct config *cfg; /* borrowed */
	struct core *core;	  /* borrowed */
	struct MHD_Daemon *daemon;
	ev_io io;	/* MHD's epoll fd */
	ev_timer timer; /* MHD's next timeout, or 0 s after a resume */
	int port;
	bool quiesced;
	bool in_run; /* inside MHD_run() */
	bool kicked; /* a connection was resumed during MHD_run() */
	enum http_cors cors;
	char **cors_origins; /* HTTP_CORS_LIST: NULL-terminated */
	/* Requests waiting for a core callback. */
	LIST_HEAD(http_request_list, http_request) waiting;
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

/*
 * One request. References: one for MHD (dropped when the request
 * completes), one while a core call is outstanding. conn is NULL once MHD
 * is done with it; srv is NULL once the server is gone.
 */
struct http_request {
	unsigned refs;
	struct http_server *srv;
	struct MHD_Connection *conn;
	char method[16];
	char *url; /* the path, without the query */
	int64_t start_ns;

	char *body; /* the upload, NUL-terminated */
	size_t body_len, body_cap;
	bool body_too_large;

	bool waiting;	/* a core call is outstanding */
	bool suspended; /* MHD_suspend_connection() while waiting */
	bool orphaned;	/* the server went away while waiting */
	bool answered;	/* status and response body are set */
	bool queued;	/* handed to MHD */
	bool preflight; /* a CORS preflight: add the Allow-* headers */
	unsigned status;
	char *resp_body; /* NULL for no body */
	size_t resp_len;

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

/* Route a complete request: answers now or starts a core call (routes.c). */
void routes_dispatch(struct http_request *req);

/* Set the answer; body is stolen (NULL for none). Ends a wait (http.c). */
void http_request_answer(struct http_request *req, unsigned status, char *body, size_t len);
/* An error body answer. */
void http_request_error(struct http_request *req, unsigned status, const char *message);
/* Before a core call: the request waits for its callback. */
void http_request_wait(struct http_request *req);

#endif
