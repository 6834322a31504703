/*
 * http_conn.c - one HTTP/1.1 connection: read, hand over, answer, keep
 * alive or close.
 *
 * Theory of operation: the socket sits in one ev_io. While the connection
 * is idle or reading a request it waits for EV_READ; what one read brings
 * is parsed at once (http_parse.c: http-parser's callbacks keep what valetd
 * needs, each against its limit). A request refused there, or one the
 * parser cannot read, is answered with the usual JSON error body, and the
 * connection closes after it.
 *
 * A complete request pauses the parser: reading stops (a client can queue
 * pipelined requests but not make valetd buffer them), bytes already read
 * after it wait in c->pending, and the request goes to the handlers. Their
 * answer, now or from a core callback later, is sent with one sendmsg() of
 * the head and the body pieces; what the socket does not take is sent on
 * EV_WRITE, piece by piece, so a large answer never holds the loop. A
 * streamed answer (the lists) is made as it is sent: once its piece is all
 * out, the connection asks the producer for the next (stream_ops->more);
 * one that comes at once is sent in the same pass (up to the pass's write
 * budget), one that needs a storage round trip arrives later through
 * http_conn_stream_ready(), the socket's events off meanwhile. So a slow
 * reader holds one piece, and is given the next only when its socket
 * has taken the last. After
 * the answer the connection is idle again (the pending bytes are parsed in
 * a later loop pass, not by recursion) or, when it is not to be kept, it
 * shuts down its side and lingers, reading and dropping what the client
 * still sends until it closes, so the answer is not lost to a reset.
 *
 * End of stream is seen as soon as it comes in the idle and reading states:
 * an idle connection closes, a half-read request is answered 400 and
 * closed. A client that sent a whole request and then shut down its side
 * still gets its answer. Time-outs: see http_conn_sweep().
 */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../supervisor/log.h"
#include "http_internal.h"
#include "json_out.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- state ------------------------------------------------------------ */

void http_conn_enter(struct http_conn *c, enum http_conn_state state)
{
	struct http_server *srv = c->srv;

	TAILQ_REMOVE(&srv->conns[c->state], c, link);
	c->state = state;
	c->since = ev_now(srv->loop);
	TAILQ_INSERT_TAIL(&srv->conns[state], c, link);
}

static void conn_watch(struct http_conn *c, int events)
{
	struct ev_loop *loop = c->srv->loop;

	if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(loop, &c->io);
	if (events) {
		/* The same socket all along: ev_io_set() would make libev
		 * register the fd again (an epoll_ctl that fails with EEXIST,
		 * once per request); ev_io_modify() does not. */
		ev_io_modify(&c->io, events);
		ev_io_start(loop, &c->io);
	}
}

/* Drop the connection's request: log it if it was never answered here. */
static void conn_drop_request(struct http_conn *c, bool sent)
{
	struct http_request *req = c->req;

	if (!req)
		return;
	c->req = NULL;
	http_access_log(c, req, sent);
	req->conn = NULL;
	http_request_unref(req);
}

void http_conn_close(struct http_conn *c)
{
	struct http_server *srv = c->srv;

	if (c->closed)
		return;
	c->closed = true;
	conn_drop_request(c, false);
	ev_io_stop(srv->loop, &c->io);
	TAILQ_REMOVE(&srv->conns[c->state], c, link);
	http_tls_close(c->tls, !c->handshaking);
	c->tls = NULL;
	close(c->fd);
	free(c->pending);
	c->pending = NULL;
	http_conn_gone(srv, c->client);
	if (!c->busy)
		free(c);
}

/* Answered and not kept: shut down our side, read until the client closes. */
static void conn_linger(struct http_conn *c)
{
	conn_drop_request(c, true);
	if (c->tls) {
		/* close_notify before the FIN; the session is done with. */
		http_tls_close(c->tls, true);
		c->tls = NULL;
	}
	if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
		http_conn_close(c);
		return;
	}
	free(c->pending);
	c->pending = NULL;
	c->pending_len = 0;
	http_conn_enter(c, HTTP_CONN_LINGER);
	conn_watch(c, EV_READ);
}

/* ---- answering ---------------------------------------------------------- */

static void conn_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void conn_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	*len = n < 0 ? cap : *len + (size_t)n;
}

/* The status line and headers of req's answer into c->head. */
static void conn_head(struct http_conn *c, struct http_request *req)
{
	struct http_server *srv = c->srv;
	size_t cap = sizeof(c->head), len = 0;
	bool body = req->status != 204 && req->status != 304;

	conn_add(c->head, cap, &len, "HTTP/1.1 %u %s\r\nDate: %s\r\n", req->status,
		 http_status_str((enum http_status)req->status), http_date(srv));
	if (req->resp_headers)
		conn_add(c->head, cap, &len, "%s", req->resp_headers);
	else if (body && (req->resp_len > 0 || req->streaming))
		conn_add(c->head, cap, &len, "Content-Type: %s\r\n",
			 req->content_type ? req->content_type : "application/json");
	/* A streamed body's length is not known: chunks, or (HTTP/1.0) the
	 * close ends it; a HEAD answer says neither (RFC 9110 9.3.2). */
	if (body && req->streaming && !req->head && http_conn_chunked(c))
		conn_add(c->head, cap, &len, "Transfer-Encoding: chunked\r\n");
	else if (body && !req->streaming)
		conn_add(c->head, cap, &len, "Content-Length: %zu\r\n", req->resp_len);
	if (len < cap)
		len += http_cors_headers(srv, req, c->head + len, cap - len);
	if (req->status == 401)
		conn_add(c->head, cap, &len, "WWW-Authenticate: Bearer realm=\"valet\"%s\r\n",
			 req->bad_token ? ", error=\"invalid_token\"" : "");
	if (req->status == 429 && req->retry_after)
		conn_add(c->head, cap, &len, "Retry-After: %u\r\n", req->retry_after);
	if (!c->keep_alive)
		conn_add(c->head, cap, &len, "Connection: close\r\n");
	else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
		conn_add(c->head, cap, &len, "Connection: keep-alive\r\n");
	conn_add(c->head, cap, &len, "\r\n");
	c->head_len = len < cap ? len : cap;
}

/* The answer is all sent: on to the next request, or close. */
static void conn_sent(struct http_conn *c)
{
	if (!c->keep_alive) {
		conn_linger(c);
		return;
	}
	conn_drop_request(c, true);
	c->complete = false;
	http_conn_enter(c, HTTP_CONN_IDLE);
	conn_watch(c, EV_READ);
	/* Pipelined bytes are parsed in the next loop pass, not from here. */
	if (c->pending_len || (c->tls && http_tls_pending(c->tls)))
		ev_feed_event(c->srv->loop, &c->io, EV_READ);
}

bool http_conn_chunked(const struct http_conn *c)
{
	return c->parser.http_major > 1 || (c->parser.http_major == 1 && c->parser.http_minor >= 1);
}

/* The length of the body pieces in req->resp. */
static size_t conn_body_len(const struct http_request *req)
{
	size_t len = 0;

	for (unsigned i = 0; !req->head && i < req->nresp; i++)
		len += req->resp[i].iov_len;
	return len;
}

/* Whether streamed answers may make more bytes in this loop pass; spent:
 * bytes just made. A connection past the budget waits for the next pass
 * (its socket is writable, so EV_WRITE brings it back at once). */
static bool conn_stream_budget(struct http_server *srv, size_t spent)
{
	unsigned pass = ev_iteration(srv->loop);

	if (pass != srv->stream_pass) {
		srv->stream_pass = pass;
		srv->stream_made = 0;
	}
	srv->stream_made += spent;
	return srv->stream_made < HTTP_STREAM_PASS_BUDGET;
}

/*
 * The piece of a streamed answer is sent: ask for the next. 1: it is in
 * (go on sending), 0: it comes later (http_conn_stream_ready()), -1: the
 * producer failed and c is closed.
 */
static int conn_stream_next(struct http_conn *c)
{
	struct http_request *req = c->req;

	c->head_len = 0;
	c->sent = 0;
	req->stream_asked = true;
	req->stream_in_more = true;
	req->stream_ops->more(req);
	req->stream_in_more = false;
	if (req->stream_failed) {
		http_conn_close(c);
		return -1;
	}
	if (req->stream_asked) {
		conn_watch(c, 0);
		return 0;
	}
	return 1;
}

/* Send what the socket takes. Returns false when the connection is closed. */
static bool conn_write(struct http_conn *c)
{
	struct http_request *req = c->req;
	struct iovec iov[1 + HTTP_BODY_PARTS];
	struct msghdr msg = {.msg_iov = iov};
	size_t skip = c->sent, total = c->head_len + conn_body_len(req);
	size_t budget = HTTP_WRITE_BUDGET;
	ssize_t n;
	int rc;

again:
	while (c->sent < total) {
		/* A fast reader of a large answer would keep this loop going:
		 * after a budget, the rest waits for the next loop pass. */
		if (budget == 0) {
			conn_watch(c, EV_WRITE);
			return true;
		}
		unsigned k = 0;

		skip = c->sent;
		if (skip < c->head_len) {
			iov[k].iov_base = c->head + skip;
			iov[k++].iov_len = c->head_len - skip;
			skip = 0;
		} else {
			skip -= c->head_len;
		}
		for (unsigned i = 0; !req->head && i < req->nresp; i++) {
			if (skip >= req->resp[i].iov_len) {
				skip -= req->resp[i].iov_len;
				continue;
			}
			iov[k].iov_base = (char *)req->resp[i].iov_base + skip;
			iov[k++].iov_len = req->resp[i].iov_len - skip;
			skip = 0;
		}
		msg.msg_iovlen = k;
		/* A result sent from its job: gone or replaced meanwhile (DELETE
		 * .../results), the answer is cut short rather than sent from
		 * freed memory; the client sees fewer bytes than announced. */
		if (req->resp_job && req->resp_job->result_gen != req->resp_gen) {
			http_conn_close(c);
			return false;
		}
		if (c->tls) {
			/* One record at a time; after "again", the same length. */
			size_t want = c->tls_retry ? c->tls_retry
						   : (iov[0].iov_len < 16384 ? iov[0].iov_len : 16384);

			n = http_tls_send(c->tls, iov[0].iov_base, want);
			if (n == -EAGAIN) {
				c->tls_retry = want;
				conn_watch(c, http_tls_events(c->tls));
				return true;
			}
			c->tls_retry = 0;
			if (n < 0)
				n = -1;
		} else {
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				conn_watch(c, EV_WRITE);
				return true;
			}
		}
		if (n <= 0) {
			http_conn_close(c);
			return false;
		}
		c->sent += (size_t)n;
		budget = (size_t)n < budget ? budget - (size_t)n : 0;
		/* Progress restarts the clock: a slow reader is not a dead one. */
		http_conn_enter(c, HTTP_CONN_WRITING);
	}
	if (req->streaming && !req->stream_last && !req->head) {
		if (!conn_stream_budget(c->srv, 0)) {
			conn_watch(c, EV_WRITE);
			return true;
		}
		rc = conn_stream_next(c);
		if (rc <= 0)
			return rc == 0;
		total = conn_body_len(req);
		conn_stream_budget(c->srv, total);
		goto again;
	}
	conn_sent(c);
	return true;
}

void http_conn_stream_ready(struct http_conn *c)
{
	if (c->req && c->req->streaming && c->state == HTTP_CONN_WRITING) {
		conn_stream_budget(c->srv, conn_body_len(c->req));
		conn_write(c);
	}
}

void http_conn_answered(struct http_conn *c)
{
	struct http_request *req = c->req;

	/* Kept only when both sides want it and the parser can go on. */
	c->keep_alive = c->keep_alive && !c->fail_status && !c->peer_eof &&
			!c->srv->quiesced && !c->parser.upgrade &&
			http_should_keep_alive(&c->parser);
	/* A streamed body to an HTTP/1.0 client ends with the connection. */
	if (req->streaming && !req->head && c->parser.http_major == 1 && c->parser.http_minor == 0)
		c->keep_alive = false;
	conn_head(c, req);
	c->sent = 0;
	http_conn_enter(c, HTTP_CONN_WRITING);
	conn_write(c);
}

/* Answer the request being read with an error and close after it. */
static void conn_fail(struct http_conn *c, unsigned status, const char *message)
{
	if (!c->req) {
		c->req = http_request_new(c->srv, c);
		if (!c->req) {
			http_conn_close(c);
			return;
		}
	}
	c->fail_status = status;
	c->keep_alive = false;
	conn_watch(c, 0);
	/* A request refused at its head (http_auth_head()) has its answer. */
	if (!c->req->answered)
		http_request_error(c->req, status, message);
	http_conn_answered(c);
}

int http_conn_send_interim(struct http_conn *c, const char *data, size_t len)
{
	ssize_t n = c->tls ? http_tls_send(c->tls, data, len)
			   : send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	return n == (ssize_t)len ? 0 : -EIO;
}

/* ---- reading ------------------------------------------------------------ */

/* What a parse error is answered with. */
static void conn_parse_error(struct http_conn *c, enum http_errno err)
{
	char msg[160];
	unsigned status = http_parse_error(c, err, msg, sizeof(msg));

	conn_fail(c, status, msg);
}

/* The HTTP/2 connection preface: a client that speaks only HTTP/2. */
static bool is_http2_preface(const char *data, size_t len)
{
	static const char preface[] = "PRI * HTTP/2.0";

	return len >= 3 && !memcmp(data, preface, len < sizeof(preface) - 1 ? len : 14);
}

/*
 * Parse data (read just now, or pending; NULL at end of stream). A complete
 * request is handed over; the rest is kept pending. May close c.
 */
static void conn_parse(struct http_conn *c, const char *data, size_t len)
{
	struct http_request *req;
	enum http_errno err;
	size_t n;
	char *rest;

	if (c->state == HTTP_CONN_IDLE && !c->req && is_http2_preface(data, len)) {
		conn_fail(c, 505, "HTTP/2 is not supported: use HTTP/1.1");
		return;
	}
	n = http_parse_execute(c, data, len);
	err = HTTP_PARSER_ERRNO(&c->parser);
	if (err == HPE_PAUSED) {
		http_parser_pause(&c->parser, 0);
		if (n < len) {
			rest = malloc(len - n);
			if (!rest) {
				http_conn_close(c);
				return;
			}
			memcpy(rest, data + n, len - n);
			c->pending = rest;
			c->pending_len = len - n;
		}
	} else if (err != HPE_OK) {
		conn_parse_error(c, err);
		return;
	}
	if (!c->complete)
		return;
	/* The request is in: stop reading until it is answered. */
	req = c->req;
	conn_watch(c, 0);
	http_conn_enter(c, HTTP_CONN_WAITING);
	c->keep_alive = true;
	req->dispatching = true;
	http_request_ready(req);
	req->dispatching = false;
	if (req->answered)
		http_conn_answered(c);
}

/* A complete request may not be answered yet: peer_eof is noted, no more. */
static void conn_read(struct http_conn *c)
{
	struct http_server *srv = c->srv;
	char *pending = c->pending;
	size_t len = c->pending_len;
	ssize_t n;

	if (pending) {
		c->pending = NULL;
		c->pending_len = 0;
		conn_parse(c, pending, len);
		free(pending);
		return;
	}
	if (c->tls) {
		n = http_tls_recv(c->tls, srv->scratch, sizeof(srv->scratch));
		if (n == -EAGAIN) {
			conn_watch(c, http_tls_events(c->tls));
			return;
		}
		if (n < 0) {
			http_conn_close(c);
			return;
		}
	} else {
		n = recv(c->fd, srv->scratch, sizeof(srv->scratch), 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			http_conn_close(c);
			return;
		}
	}
	if (n == 0) {
		c->peer_eof = true;
		if (c->state == HTTP_CONN_READING) {
			/* Tell the parser; a request that ends with the stream is
			 * complete, any other is answered 400. */
			conn_parse(c, NULL, 0);
			if (!c->closed && c->state == HTTP_CONN_READING)
				conn_fail(c, 400, "incomplete request: the client closed its side");
			return;
		}
		http_conn_close(c);
		return;
	}
	conn_parse(c, srv->scratch, (size_t)n);
	/* Records GnuTLS decrypted already do not make the socket readable. */
	if (!c->closed && c->tls && (c->state == HTTP_CONN_IDLE || c->state == HTTP_CONN_READING)) {
		conn_watch(c, EV_READ);
		if (http_tls_pending(c->tls))
			ev_feed_event(srv->loop, &c->io, EV_READ);
	}
}

/*
 * The TLS handshake, on every readiness until done. A client that speaks
 * plain HTTP to this port gets a plain answer that says so: its first byte
 * is no TLS handshake record (22).
 */
static void conn_handshake(struct http_conn *c)
{
	unsigned char first;
	int rc;

	/* Only the very first byte: later records may be of other types. */
	if (!c->tls_started && recv(c->fd, &first, 1, MSG_PEEK) == 1 && first != 22) {
		http_tls_close(c->tls, false);
		c->tls = NULL;
		c->handshaking = false;
		conn_fail(c, 400, "this port speaks TLS: use https://");
		return;
	}
	c->tls_started = true;
	rc = http_tls_handshake(c->tls);
	if (rc == -EAGAIN) {
		conn_watch(c, http_tls_events(c->tls));
		return;
	}
	if (rc == -EACCES)
		http_auth_refused_cert(c);
	if (rc < 0) {
		http_conn_close(c);
		return;
	}
	c->handshaking = false;
	conn_watch(c, EV_READ);
	if (http_tls_pending(c->tls))
		ev_feed_event(c->srv->loop, &c->io, EV_READ);
}

/* Lingering: drop what comes until the client closes. */
static void conn_drain(struct http_conn *c)
{
	ssize_t n = recv(c->fd, c->srv->scratch, sizeof(c->srv->scratch), 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		http_conn_close(c);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_conn *c = container_of(w, struct http_conn, io);

	c->busy++;
	switch (c->state) {
	case HTTP_CONN_IDLE:
	case HTTP_CONN_READING:
		if (c->handshaking)
			conn_handshake(c);
		else
			conn_read(c);
		break;
	case HTTP_CONN_WRITING:
		/* TLS may need to read to go on writing. */
		if ((revents & EV_WRITE) || c->tls)
			conn_write(c);
		break;
	case HTTP_CONN_LINGER:
		conn_drain(c);
		break;
	default:
		break;
	}
	if (--c->busy == 0 && c->closed)
		free(c);
}

/* ---- life --------------------------------------------------------------- */

int http_conn_new(struct http_server *srv, int fd, const union http_addr *peer,
		  struct http_client *client)
{
	struct http_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		close(fd);
		http_conn_gone(srv, client);
		return -ENOMEM;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (srv->tls && http_tls_accept(srv->tls, fd, &c->tls) < 0) {
		free(c);
		close(fd);
		http_conn_gone(srv, client);
		return -ENOMEM;
	}
	c->handshaking = c->tls != NULL;
	c->srv = srv;
	c->fd = fd;
	c->peer = *peer;
	c->client = client;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->state = HTTP_CONN_IDLE;
	c->since = ev_now(srv->loop);
	TAILQ_INSERT_TAIL(&srv->conns[HTTP_CONN_IDLE], c, link);
	ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
	ev_io_start(srv->loop, &c->io);
	return 0;
}

void http_conn_refuse(int fd, const char *date, unsigned status, const char *message)
{
	char head[256], buf[4096], *body;
	size_t len = 0;
	int n;

	body = json_out_error((int)status, message, &len);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		     status, http_status_str((enum http_status)status), date, body ? len : 0);
	if (n > 0 && (size_t)n < sizeof(head)) {
		struct iovec iov[2] = {{head, (size_t)n}, {body, body ? len : 0}};
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = body ? 2 : 1};

		(void)!sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	free(body);
	/* The answer goes before the FIN; what the client sent already is
	 * dropped first, so that close() does not turn it into a reset that
	 * could overtake the answer. */
	(void)shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

void http_conn_sweep(struct http_server *srv, ev_tstamp now)
{
	static const char *const why[HTTP_CONN_NSTATES] = {
	    [HTTP_CONN_READING] = "request timeout: the request did not arrive in time",
	};
	double limit[HTTP_CONN_NSTATES] = {
	    [HTTP_CONN_IDLE] = srv->idle_timeout_s,
	    [HTTP_CONN_READING] = srv->request_timeout_s,
	    [HTTP_CONN_WAITING] = 0,
	    [HTTP_CONN_WRITING] = srv->request_timeout_s,
	    [HTTP_CONN_LINGER] = HTTP_LINGER_S,
	};
	struct http_conn *c;

	for (int s = 0; s < HTTP_CONN_NSTATES; s++) {
		if (limit[s] <= 0)
			continue;
		while ((c = TAILQ_FIRST(&srv->conns[s])) && c->since + limit[s] <= now) {
			if (why[s])
				conn_fail(c, 408, why[s]);
			else
				http_conn_close(c);
		}
	}
}
