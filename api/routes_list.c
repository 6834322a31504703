/*
 * routes_list.c - the list answers (GET /api/jobs, /api/pipelines and
 * /api/pipelines/:id/jobs), made as the client reads them.
 *
 * Theory of operation: a list may hold 100,000 jobs (6 MB of JSON for
 * 20,000), and a client that asks for it and does not read must cost
 * neither the loop's time nor the list's memory. So a list is read from
 * the core a page at a time (ROUTES_LIST_PAGE objects, by the store's
 * keyset cursor, store.h) and encoded a piece at a time (about
 * ROUTES_LIST_PIECE bytes): the connection asks for the next piece only
 * once the last one has been sent (routes.h's http_stream_ops), and a
 * page is read only once the one before is all encoded. One list costs
 * at most a page of references (or, with PostgreSQL, of decoded rows) and
 * a piece of text, and one piece of loop time per pass, however long the
 * list and however slow its reader.
 *
 * A list that fits its first page is answered as before, with a
 * Content-Length; a longer one is streamed (Transfer-Encoding: chunked,
 * or read to the close by an HTTP/1.0 client). A HEAD request reads one
 * object (so that a 404 or 503 is the GET's) and encodes nothing.
 *
 * What a client sees of a list that changes while it is sent: every
 * object that exists from the start to the time its page is read, once,
 * in order; an object created meanwhile is in it if its page is read
 * after it was created (it sorts last); one deleted meanwhile is in it if
 * its page was read before. Each object is as it is when its page is
 * read. The pages hold references, so nothing is freed under an answer.
 * ?offset applies to the first page, ?limit to the whole list. A
 * pipeline deleted while its jobs are sent ends its list there. A page
 * that cannot be read midway (storage down) cuts the connection: the
 * client sees a body that does not end, never a short list that looks
 * whole.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"
#include "routes.h"

#define ROUTES_LIST_PAGE 100	      /* objects per core call */
#define ROUTES_LIST_PIECE (64 * 1024) /* text per piece: at least one object */

struct routes_list {
	enum http_route route;
	struct core_list_query q; /* the next page: q.after is the cursor */
	uint8_t id[JOB_ID_LEN];	  /* ROUTE_PIPELINE_JOBS: the pipeline */
	size_t left;		  /* objects ?limit still allows; SIZE_MAX: no limit */
	bool started;		  /* the answer is set: later pieces are the stream's */
	bool exhausted;		  /* the store has no more */
	bool any;		  /* an object is out: the next one has a comma */
	bool owners;		  /* objects say whose they are (an admin key) */
	/* The page read last, references not encoded yet (from next on). */
	void **objs;
	size_t nobjs, next;
};

static bool list_of_pipelines(const struct routes_list *l)
{
	return l->route == ROUTE_LIST_PIPELINES;
}

static void list_drop_page(struct routes_list *l)
{
	for (size_t i = l->next; i < l->nobjs; i++) {
		if (list_of_pipelines(l))
			pipeline_unref(l->objs[i]);
		else
			job_unref(l->objs[i]);
	}
	free(l->objs);
	l->objs = NULL;
	l->nobjs = l->next = 0;
}

static void list_free(void *state)
{
	struct routes_list *l = state;

	if (!l)
		return;
	list_drop_page(l);
	free(l);
}

/* Hand over text (stolen) as the answer or its next piece. */
static void list_hand(struct http_request *req, char *text, size_t len, bool last)
{
	struct routes_list *l = req->stream;

	if (l->started) {
		http_request_stream_piece(req, text, len, last);
	} else if (last && !req->head) {
		/* The whole list in one piece: a plain answer. */
		l->started = true;
		http_request_answer(req, 200, text, len);
	} else {
		l->started = true;
		http_request_answer_stream(req, 200, text, len, last);
	}
}

/* Encode the next piece from the page read last and hand it over. */
static void list_piece(struct http_request *req)
{
	struct routes_list *l = req->stream;
	struct json_out_buf b = {0};
	bool last;
	int rc = 0;

	if (req->head) {
		list_drop_page(l);
		list_hand(req, NULL, 0, true);
		return;
	}
	if (!l->started)
		rc = json_out_list_open(&b, list_of_pipelines(l) ? "pipelines" : "jobs");
	while (!rc && l->next < l->nobjs && b.len < ROUTES_LIST_PIECE) {
		void *obj = l->objs[l->next];
		bool pls = list_of_pipelines(l);

		rc = json_out_list_item(&b, pls ? NULL : obj, pls ? obj : NULL, !l->any, l->owners);
		l->any = true;
		l->next++;
		if (pls)
			pipeline_unref(obj);
		else
			job_unref(obj);
	}
	if (l->next == l->nobjs)
		list_drop_page(l);
	last = !l->nobjs && (l->exhausted || l->left == 0);
	if (!rc && last)
		rc = json_out_list_close(&b);
	if (rc) {
		free(b.data);
		if (l->started)
			http_request_stream_fail(req);
		else
			http_request_error(req, 500, "out of memory");
		return;
	}
	list_hand(req, b.data, b.len, last);
}

static void list_read(struct http_request *req);

/* A page from the core. */
static void list_got(void *arg, const struct core_reply *reply)
{
	struct http_request *req = arg;
	struct routes_list *l = req->stream;
	bool pls = list_of_pipelines(l);
	size_t n = pls ? reply->npipelines : reply->njobs;

	/* Before the answer, as any route: an error answer, or (nobody
	 * listens) one that only ends the wait. */
	if (!l->started && (req->orphaned || !req->conn || reply->err != CORE_OK)) {
		routes_answer_failure(req, reply);
		return;
	}
	if (req->orphaned || !req->conn) {
		http_request_stream_piece(req, NULL, 0, true); /* only ends the wait */
		return;
	}
	if (reply->err == CORE_ENOTFOUND && l->route == ROUTE_PIPELINE_JOBS) {
		n = 0; /* the pipeline went away: so did the rest of its jobs */
	} else if (reply->err != CORE_OK) {
		http_request_stream_fail(req);
		return;
	}
	if (n) {
		l->objs = malloc(n * sizeof(*l->objs));
		if (!l->objs) {
			if (l->started)
				http_request_stream_fail(req);
			else
				http_request_error(req, 500, "out of memory");
			return;
		}
		for (size_t i = 0; i < n; i++)
			l->objs[i] = pls ? (void *)pipeline_ref(reply->pipelines[i])
					 : (void *)job_ref(reply->jobs[i]);
	}
	l->nobjs = n;
	l->next = 0;
	l->exhausted = n < l->q.limit || req->head;
	l->left = l->left == SIZE_MAX ? SIZE_MAX : l->left - n;
	l->q.after = reply->next;
	l->q.offset = 0;
	list_piece(req);
}

/* Read the next page; list_got() hands over a piece or fails. */
static void list_read(struct http_request *req)
{
	struct routes_list *l = req->stream;

	l->q.limit = l->left < ROUTES_LIST_PAGE ? l->left : ROUTES_LIST_PAGE;
	if (req->head)
		l->q.limit = 1;
	http_request_wait(req);
	if (l->route == ROUTE_PIPELINE_JOBS)
		core_pipeline_jobs(req->core, l->id, l->q.owner, &l->q, list_got, req);
	else if (list_of_pipelines(l))
		core_list_pipelines(req->core, &l->q, list_got, req);
	else
		core_list_jobs(req->core, &l->q, list_got, req);
}

/* http_stream_ops.more: the piece before is sent. */
static void list_more(struct http_request *req)
{
	struct routes_list *l = req->stream;

	if (l->nobjs || l->exhausted || l->left == 0)
		list_piece(req);
	else
		list_read(req);
}

static const struct http_stream_ops list_ops = {
    .more = list_more,
    .free = list_free,
};

void routes_list_start(struct http_request *req, enum http_route route,
		       const struct core_list_query *q, const uint8_t *id)
{
	struct routes_list *l = calloc(1, sizeof(*l));

	if (!l) {
		http_request_error(req, 500, "out of memory");
		return;
	}
	l->route = route;
	l->q = *q;
	l->left = q->limit ? q->limit : SIZE_MAX;
	l->owners = req->key_admin;
	if (id)
		memcpy(l->id, id, JOB_ID_LEN);
	req->route = route;
	req->stream_ops = &list_ops;
	req->stream = l;
	list_read(req);
}
