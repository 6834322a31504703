/*
 * http.c - the HTTP server: the listening socket, who may connect, time-outs,
 * and the life of a request between its connection and the handlers.
 *
 * Theory of operation: valetd speaks HTTP/1.1 itself, on its libev loop,
 * as nginx, redis and pgbouncer handle their own connections; http-parser
 * (Node's former parser) does the parsing, through http_parse.c's
 * callbacks, and http_conn.c a connection's reading and writing. This file
 * accepts connections and decides which are served:
 *
 *   - at most [server] max_connections_per_client from one IPv4 address or
 *     IPv6 /64; one more gets a 503 JSON answer and is closed;
 *   - at most [server] max_connections in all; when full, the oldest idle
 *     keep-alive connection, else the oldest half-read request, makes room
 *     (a flood of slow or silent clients pushes out its own kind, not the
 *     clients being answered); with neither, the newcomer gets the 503;
 *   - an idle connection lives [server] idle_timeout, a request must arrive
 *     within request_timeout (408 otherwise), and an answer must make
 *     progress within request_timeout. One timer a second sweeps the heads
 *     of the per-state lists, which are in time order.
 *
 * A complete request goes to http_origin.c's checks (its Host, a write
 * from another origin), then to a CORS preflight's answer, the keys
 * (http_auth.c), and the dashboard's files or the handlers.
 *
 * A request is reference counted: its connection holds one reference until
 * the answer is sent (or the connection is gone), an outstanding core call
 * another, so a callback that arrives after the connection or the server
 * has gone only drops its reference.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../supervisor/log.h"
#include "http.h"
#include "http_internal.h"
#include "http_url.h"
#include "json_out.h"
#include "ui.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* File descriptors kept for everything but HTTP connections. */
#define HTTP_FD_RESERVE 256

/* ---- requests ----------------------------------------------------------- */

struct http_request *http_request_new(struct http_server *srv, struct http_conn *conn)
{
	struct http_request *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->refs = 1;
	req->srv = srv;
	req->conn = conn;
	req->core = srv->core;
	req->cfg = srv->cfg;
	snprintf(req->method, sizeof(req->method), "-");
	req->start_ns = job_mono_ns();
	return req;
}

static void http_request_free_answer(struct http_request *req)
{
	for (unsigned i = 0; i < req->nresp; i++)
		if (!(req->resp_borrowed & (1u << i)))
			free(req->resp[i].iov_base);
	job_unref(req->resp_job);
	req->resp_job = NULL;
	req->nresp = 0;
	req->resp_borrowed = 0;
	req->resp_len = 0;
}

void http_request_unref(struct http_request *req)
{
	if (--req->refs > 0)
		return;
	json_in_doc_release(&req->doc);
	http_request_free_answer(req);
	if (req->stream_ops)
		req->stream_ops->free(req->stream);
	for (size_t i = 0; i < sizeof(req->query_values) / sizeof(req->query_values[0]); i++)
		free(req->query_values[i]);
	if (req->srv)
		req->srv->body_memory -= req->body_cap;
	free(req->body);
	free(req->url);
	free(req->query);
	free(req->origin);
	free(req->authorization);
	free(req->if_none_match);
	free(req->host);
	free(req->sec_fetch_site);
	free(req->resp_headers);
	free(req);
}

void http_request_wait(struct http_request *req)
{
	assert(!req->waiting);
	req->waiting = true;
	req->refs++;
	LIST_INSERT_HEAD(&req->srv->waiting, req, wait_link);
}

static void http_request_end_wait(struct http_request *req);

/*
 * Set the answer (each part stolen, but for parts[1] when job is given: that
 * is job's result text, sent from a reference to job), send it when the
 * connection waits for it, and end a wait. A streamed answer has set its
 * first piece already (n is 0).
 */
static void http_request_set_answer(struct http_request *req, unsigned status,
				    struct iovec *parts, unsigned n, struct job *job)
{
	struct http_conn *conn;

	if (req->answered || req->orphaned || !req->conn) {
		for (unsigned i = 0; i < n; i++)
			if (!(job && i == 1))
				free(parts[i].iov_base);
	} else if (req->streaming) {
		req->answered = true;
		req->status = status;
	} else {
		req->answered = true;
		req->status = status;
		for (unsigned i = 0; i < n; i++) {
			req->resp[i] = parts[i];
			req->resp_len += parts[i].iov_len;
		}
		req->nresp = n;
		if (job) {
			req->resp_job = job_ref(job);
			req->resp_gen = job->result_gen;
			req->resp_borrowed = 1u << 1;
		}
	}
	conn = req->conn;
	/* Answered from a core callback: the connection sends it now - after
	 * the wait has ended, as sending a streamed answer may begin the next
	 * one. (The connection's reference keeps req.) */
	if (req->answered && conn && !req->dispatching && conn->state == HTTP_CONN_WAITING &&
	    conn->req == req) {
		http_request_end_wait(req);
		http_conn_answered(conn);
		return;
	}
	http_request_end_wait(req);
}

/* The core call is over: drop its reference (req may be gone after). */
static void http_request_end_wait(struct http_request *req)
{
	if (!req->waiting)
		return;
	req->waiting = false;
	if (req->srv)
		LIST_REMOVE(req, wait_link);
	http_request_unref(req);
}

/* ---- streamed answers ------------------------------------------------------ */

/* Frame piece (stolen) into req->resp as the current piece of the stream. */
static void http_request_stream_set(struct http_request *req, char *piece, size_t len, bool last)
{
	bool chunked = req->conn && http_conn_chunked(req->conn);
	static const char crlf_end[] = "\r\n0\r\n\r\n";
	int n = 0;

	http_request_free_answer(req);
	if (!piece)
		len = 0;
	if (chunked && len)
		n = snprintf(req->stream_line, sizeof(req->stream_line), "%zx\r\n", len);
	req->resp[0] = (struct iovec){req->stream_line, n > 0 ? (size_t)n : 0};
	req->resp[1] = (struct iovec){piece, len};
	/* After the text its CRLF; the last chunk (size 0) ends the body. */
	if (!chunked)
		req->resp[2] = (struct iovec){NULL, 0};
	else if (len)
		req->resp[2] = (struct iovec){(char *)crlf_end, last ? sizeof(crlf_end) - 1 : 2};
	else
		req->resp[2] =
		    (struct iovec){(char *)crlf_end + 2, last ? sizeof(crlf_end) - 3 : 0};
	req->nresp = 3;
	req->resp_borrowed = 1u << 0 | 1u << 2;
	req->stream_last = last;
}

void http_request_answer_stream(struct http_request *req, unsigned status, char *piece,
				size_t len, bool last)
{
	if (req->answered || req->orphaned || !req->conn) {
		free(piece);
		http_request_set_answer(req, status, NULL, 0, NULL);
		return;
	}
	req->streaming = true;
	http_request_stream_set(req, piece, len, last);
	req->resp_len = len;
	http_request_set_answer(req, status, NULL, 0, NULL);
}

void http_request_stream_piece(struct http_request *req, char *piece, size_t len, bool last)
{
	struct http_conn *conn = req->conn;

	if (!req->streaming || !req->stream_asked || req->orphaned || !conn) {
		free(piece);
		http_request_end_wait(req);
		return;
	}
	req->stream_asked = false;
	http_request_stream_set(req, piece, len, last);
	req->resp_len += len;
	/* The connection holds its reference: req outlives the wait. */
	http_request_end_wait(req);
	if (!req->stream_in_more)
		http_conn_stream_ready(conn);
}

void http_request_stream_fail(struct http_request *req)
{
	struct http_conn *conn = req->conn;

	req->stream_failed = true;
	req->stream_asked = false;
	http_request_end_wait(req);
	if (conn && !req->stream_in_more)
		http_conn_close(conn);
}

void http_request_answer_parts(struct http_request *req, unsigned status, struct iovec *parts,
			       unsigned n)
{
	http_request_set_answer(req, status, parts, n, NULL);
}

void http_request_answer_result(struct http_request *req, unsigned status,
				struct iovec parts[3], struct job *job)
{
	http_request_set_answer(req, status, parts, 3, job);
}

void http_request_answer(struct http_request *req, unsigned status, char *body, size_t len)
{
	struct iovec part = {body, body ? len : 0};

	http_request_set_answer(req, status, &part, body ? 1 : 0, NULL);
}

void http_request_error(struct http_request *req, unsigned status, const char *message)
{
	size_t len = 0;
	char *body = json_out_error((int)status, message, &len);

	http_request_answer(req, body ? status : 500, body, len);
}

const char *http_request_query(struct http_request *req, const char *key)
{
	size_t max = sizeof(req->query_values) / sizeof(req->query_values[0]), i;
	char *v;

	for (i = 0; i < max && req->query_values[i]; i++)
		;
	if (i == max || http_url_query_get(req->query, key, &v) < 0)
		return NULL;
	req->query_values[i] = v;
	return v[0] ? v : NULL;
}

void http_reload(struct http_server *srv)
{
	char err[512];

	if (!srv)
		return;
	http_auth_reload(srv);
	if (!srv->tls)
		return;
	if (http_tls_reload(srv->tls, err, sizeof(err)) < 0)
		log_error("TLS certificate not read again: keeping the one in use", "error", err);
	else
		log_info("TLS certificate read", "file", srv->cfg->tls_cert, "client_ca",
			 srv->cfg->tls_client_ca[0] ? srv->cfg->tls_client_ca : "-");
}

void http_request_ready(struct http_request *req)
{
	struct http_server *srv = req->srv;
	bool preflight = !strcmp(req->method, "OPTIONS") && req->origin && srv->cors != HTTP_CORS_NONE;

	if (!http_origin_allowed(srv, req))
		return;
	/* A CORS preflight carries no credentials; it reveals nothing. */
	if (!preflight && !http_auth_allowed(srv, req))
		return;
	if (preflight) {
		if (http_cors_allow(srv, req->origin)) {
			req->preflight = true;
			http_request_answer(req, 204, NULL, 0);
		} else {
			http_request_error(req, 403, "origin not allowed");
		}
		return;
	}
	if (req->pattern == ROUTES_PAT_UI)
		ui_serve(req);
	else
		routes_dispatch(req);
}

/* ---- small things for the connections ----------------------------------- */

const char *http_date(struct http_server *srv)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != srv->date_s) {
		srv->date_s = now;
		gmtime_r(&now, &tm);
		strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	}
	return srv->date;
}

void http_format_peer(const union http_addr *a, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a->in4.sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(a->in4.sin_port));
	} else if (a->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(a->in6.sin6_port));
	} else {
		snprintf(out, len, "-");
	}
}

void http_access_log(const struct http_conn *c, const struct http_request *req, bool sent)
{
	char status[16], bytes[32], ms[32], remote[INET6_ADDRSTRLEN + 16];

	http_metrics_request(&c->srv->metrics, req, sent);
	if (!c->srv->cfg->access_log)
		return;
	http_format_peer(&c->peer, remote, sizeof(remote));
	snprintf(status, sizeof(status), "%u", sent ? req->status : 0);
	snprintf(bytes, sizeof(bytes), "%zu", sent && !req->head ? req->resp_len : 0);
	snprintf(ms, sizeof(ms), "%.3f", (double)(job_mono_ns() - req->start_ns) / 1e6);
	log_info("request", "method", req->head ? "HEAD" : req->method, "path",
		 req->url ? req->url : "-", "status", status, "bytes", bytes, "ms", ms, "remote",
		 remote, "key", req->key_name[0] ? req->key_name : "-");
}

void http_request_metrics(struct http_request *req, struct metrics_text *t)
{
	if (req->srv)
		http_metrics_write(req->srv, t);
}

/* ---- clients ---------------------------------------------------------------- */

/* An IPv4 address as ::ffff:a.b.c.d, an IPv6 address cut to its /64. */
static void client_key(const union http_addr *a, uint8_t key[16])
{
	memset(key, 0, 16);
	if (a->sa.sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a->in4.sin_addr, 4);
	} else if (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr)) {
		memcpy(key, &a->in6.sin6_addr, 16);
	} else {
		memcpy(key, &a->in6.sin6_addr, 8);
	}
}

static unsigned client_bucket(const struct http_server *srv, const uint8_t key[16])
{
	uint64_t h = srv->client_seed ^ 0xcbf29ce484222325ULL;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 0x100000001b3ULL;
	return (unsigned)((h ^ (h >> 29)) % HTTP_CLIENT_BUCKETS);
}

static struct http_client *client_get(struct http_server *srv, const union http_addr *a)
{
	struct http_client *cl;
	uint8_t key[16];
	unsigned b;

	client_key(a, key);
	b = client_bucket(srv, key);
	LIST_FOREACH(cl, &srv->clients[b], link)
		if (!memcmp(cl->key, key, 16))
			return cl;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	memcpy(cl->key, key, 16);
	LIST_INSERT_HEAD(&srv->clients[b], cl, link);
	return cl;
}

static void client_put(struct http_client *cl)
{
	if (cl->conns == 0) {
		LIST_REMOVE(cl, link);
		free(cl);
	}
}

void http_conn_gone(struct http_server *srv, struct http_client *client)
{
	client->conns--;
	client_put(client);
	srv->nconns--;
	if (srv->nconns == 0)
		ev_timer_stop(srv->loop, &srv->sweep);
}

/* ---- accepting ---------------------------------------------------------- */

/* Full: close the oldest idle connection, else the oldest half-read one. */
static bool http_make_room(struct http_server *srv)
{
	struct http_conn *c = TAILQ_FIRST(&srv->conns[HTTP_CONN_IDLE]);

	if (!c)
		c = TAILQ_FIRST(&srv->conns[HTTP_CONN_READING]);
	if (!c)
		return false;
	http_conn_close(c);
	return true;
}

/* A connection not to be served: a plain answer says why, but a TLS client
 * could not read one before its handshake, so it is only closed. */
static void http_refuse(struct http_server *srv, int fd, unsigned status, const char *message)
{
	if (srv->tls)
		close(fd);
	else
		http_conn_refuse(fd, http_date(srv), status, message);
}

static void http_accept_one(struct http_server *srv, int fd, const union http_addr *peer)
{
	struct http_client *cl = client_get(srv, peer);

	if (!cl) {
		http_refuse(srv, fd, 503, "out of memory");
		return;
	}
	if (cl->conns >= srv->max_per_client) {
		client_put(cl);
		http_refuse(srv, fd, 503, "too many connections from this address");
		return;
	}
	if (srv->nconns >= srv->max_conns && !http_make_room(srv)) {
		client_put(cl);
		http_refuse(srv, fd, 503, "too many connections");
		return;
	}
	cl->conns++;
	srv->nconns++;
	if (!ev_is_active(&srv->sweep))
		ev_timer_again(srv->loop, &srv->sweep);
	(void)http_conn_new(srv, fd, peer, cl);
}

static void http_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_server *srv = container_of(w, struct http_server, accept_io);
	union http_addr peer;
	socklen_t len;
	int fd;

	/* A bounded batch: accepting must not starve everything else. */
	for (int i = 0; i < 64; i++) {
		len = sizeof(peer);
		fd = accept4(srv->listen_fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of descriptors: free one if any is idle, else
				 * try again in a moment rather than spin. */
				if (http_make_room(srv))
					continue;
				log_warn("http server: cannot accept", "error", strerror(errno));
				ev_io_stop(loop, &srv->accept_io);
				ev_timer_start(loop, &srv->accept_pause);
			}
			return;
		}
		if (srv->quiesced) {
			close(fd);
			continue;
		}
		http_accept_one(srv, fd, &peer);
	}
}

static void http_accept_again(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_server *srv = container_of(w, struct http_server, accept_pause);

	if (srv->listen_fd >= 0)
		ev_io_start(loop, &srv->accept_io);
}

static void http_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	http_conn_sweep(container_of(w, struct http_server, sweep), ev_now(loop));
}

/* ---- setup -------------------------------------------------------------- */

/* host: numeric, a name, or "" / "*" for every interface. */
static int http_resolve(const char *host, int port, union http_addr *addr)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai, *pick = NULL;
	char buf[256];
	size_t len = strlen(host);

	memset(addr, 0, sizeof(*addr));
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		host = buf;
	}
	if (!host[0] || !strcmp(host, "*")) {
		addr->in4.sin_family = AF_INET;
		addr->in4.sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (inet_pton(AF_INET, host, &addr->in4.sin_addr) == 1) {
		addr->in4.sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, host, &addr->in6.sin6_addr) == 1) {
		addr->in6.sin6_family = AF_INET6;
	} else {
		if (getaddrinfo(host, NULL, &hints, &res) != 0)
			return -EINVAL;
		for (ai = res; ai; ai = ai->ai_next) {
			if (ai->ai_family == AF_INET && (!pick || pick->ai_family != AF_INET))
				pick = ai;
			else if (ai->ai_family == AF_INET6 && !pick)
				pick = ai;
		}
		if (pick)
			memcpy(&addr->ss, pick->ai_addr, pick->ai_addrlen);
		freeaddrinfo(res);
		if (!pick)
			return -EINVAL;
	}
	if (addr->sa.sa_family == AF_INET)
		addr->in4.sin_port = htons((uint16_t)port);
	else
		addr->in6.sin6_port = htons((uint16_t)port);
	return 0;
}

/* [server] listen, parsed and resolved: 0, or -EINVAL with a sentence. */
static int http_listen_addr(const char *listen, union http_addr *addr, char *err, size_t errlen)
{
	char host[256];
	int port;

	if (config_parse_listen(listen, host, sizeof(host), &port) < 0 ||
	    http_resolve(host, port, addr) < 0) {
		snprintf(err, errlen, "invalid listen address: %s", listen);
		return -EINVAL;
	}
	return 0;
}

static bool addr_is_loopback(const union http_addr *addr)
{
	return addr->sa.sa_family == AF_INET ? (ntohl(addr->in4.sin_addr.s_addr) >> 24) == 127
					     : IN6_IS_ADDR_LOOPBACK(&addr->in6.sin6_addr);
}

/* "127.0.0.1:8080" or "[::1]:8080" of the bound address. */
static void http_format_addr(const union http_addr *addr, int port, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	if (addr->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &addr->in4.sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%d", host, port);
	} else {
		inet_ntop(AF_INET6, &addr->in6.sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%d", host, port);
	}
}

/*
 * Each connection is a descriptor (main.c has raised the soft limit to the
 * hard one): say so when max_connections does not fit.
 */
static void http_fd_budget(struct http_server *srv)
{
	struct rlimit rl;
	char want[32], have[32];

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)srv->max_conns + HTTP_FD_RESERVE > rl.rlim_cur) {
		snprintf(want, sizeof(want), "%u", srv->max_conns);
		snprintf(have, sizeof(have), "%llu",
			 rl.rlim_cur > HTTP_FD_RESERVE
			     ? (unsigned long long)(rl.rlim_cur - HTTP_FD_RESERVE)
			     : 0ULL);
		log_warn("[server] max_connections is above what the open-file limit allows",
			 "max_connections", want, "fits", have);
	}
}

static int http_listen(struct http_server *srv, const union http_addr *addr, char *err,
		       size_t errlen)
{
	union http_addr bound;
	socklen_t len = sizeof(bound);
	int one = 1, fd;

	fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &addr->sa,
		 addr->sa.sa_family == AF_INET ? sizeof(addr->in4) : sizeof(addr->in6)) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || getsockname(fd, &bound.sa, &len) < 0)
		goto fail;
	srv->listen_fd = fd;
	srv->port = ntohs(bound.sa.sa_family == AF_INET ? bound.in4.sin_port
							 : bound.in6.sin6_port);
	ev_io_init(&srv->accept_io, http_accept_cb, fd, EV_READ);
	ev_io_start(srv->loop, &srv->accept_io);
	return 0;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", srv->cfg->listen, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -EADDRNOTAVAIL;
}

struct http_server *http_new(struct ev_loop *loop, const struct config *cfg, struct core *core,
			     char *err, size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	char where[300], msg[330];
	union http_addr addr;

	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->loop = loop;
	http_metrics_init(&srv->metrics);
	srv->cfg = cfg;
	srv->core = core;
	srv->listen_fd = -1;
	srv->max_conns = (unsigned)cfg->max_connections;
	srv->max_per_client = (unsigned)cfg->max_connections_per_client;
	srv->request_timeout_s = (double)cfg->request_timeout_ms / 1000.0;
	srv->idle_timeout_s = (double)cfg->idle_timeout_ms / 1000.0;
	for (int s = 0; s < HTTP_CONN_NSTATES; s++)
		TAILQ_INIT(&srv->conns[s]);
	for (int b = 0; b < HTTP_CLIENT_BUCKETS; b++)
		LIST_INIT(&srv->clients[b]);
	if (getrandom(&srv->client_seed, sizeof(srv->client_seed), GRND_NONBLOCK) < 0)
		srv->client_seed = (uint64_t)job_mono_ns();
	LIST_INIT(&srv->waiting);
	ev_timer_init(&srv->sweep, http_sweep_cb, 1., 1.);
	ev_timer_init(&srv->accept_pause, http_accept_again, 0.1, 0.);
	if (http_listen_addr(cfg->listen, &addr, err, errlen) < 0)
		goto fail;
	if (http_origin_setup(srv, addr_is_loopback(&addr)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	http_fd_budget(srv);
	if (http_auth_start(srv, err, errlen) < 0)
		goto fail;
	if (cfg->tls_cert && cfg->tls_cert[0] &&
	    http_tls_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca,
			 cfg->tls_client_auth == CONFIG_CLIENT_AUTH_REQUIRE, &srv->tls, err,
			 errlen) < 0)
		goto fail;
	if (http_listen(srv, &addr, err, errlen) < 0)
		goto fail;
	http_format_addr(&addr, srv->port, where, sizeof(where));
	snprintf(msg, sizeof(msg), "listening on %s://%s", srv->tls ? "https" : "http", where);
	log_info(msg, "addr", where);
	return srv;
fail:
	http_free(srv);
	return NULL;
}

int http_check(const struct config *cfg, char *err, size_t errlen)
{
	union http_addr addr;
	struct auth_keys *keys = NULL;
	struct http_tls *tls = NULL;
	char msg[512];
	int rc = 0;

	if (http_listen_addr(cfg->listen, &addr, err, errlen) < 0)
		return -EINVAL;
	if (cfg->auth_keys && cfg->auth_keys[0] && !config_keys_in_db(cfg))
		rc = auth_keys_load(cfg->auth_keys, &keys, msg, sizeof(msg));
	auth_keys_free(keys);
	if (rc < 0) {
		snprintf(err, errlen, "[server] auth_keys: %s", msg);
		return rc;
	}
	if (cfg->tls_cert && cfg->tls_cert[0])
		rc = http_tls_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca,
				  cfg->tls_client_auth == CONFIG_CLIENT_AUTH_REQUIRE, &tls, msg,
				  sizeof(msg));
	http_tls_free(tls);
	if (rc < 0)
		snprintf(err, errlen, "[server] tls_cert, tls_key, tls_client_ca: %s", msg);
	return rc;
}

static void http_stop_listening(struct http_server *srv)
{
	ev_io_stop(srv->loop, &srv->accept_io);
	ev_timer_stop(srv->loop, &srv->accept_pause);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	srv->listen_fd = -1;
}

void http_quiesce(struct http_server *srv)
{
	struct http_conn *c;

	if (!srv || srv->quiesced)
		return;
	srv->quiesced = true;
	http_stop_listening(srv);
	/* Idle ones go now; the others close after their answer. */
	while ((c = TAILQ_FIRST(&srv->conns[HTTP_CONN_IDLE])))
		http_conn_close(c);
}

bool http_listen_is_loopback(const char *listen)
{
	union http_addr addr;
	char host[256];
	int port;

	if (config_parse_listen(listen, host, sizeof(host), &port) < 0)
		return false;
	if (!strcmp(host, "localhost"))
		return true;
	/* A name is resolved the way http_new() will bind it. */
	return http_resolve(host, port, &addr) == 0 && addr_is_loopback(&addr);
}

int http_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

void http_free(struct http_server *srv)
{
	struct http_request *req;
	struct http_conn *c;

	if (!srv)
		return;
	srv->quiesced = true;
	http_stop_listening(srv);
	/*
	 * Requests still waiting for the core are cut loose: they are answered
	 * 503 (sent if the socket takes it at once), and their callbacks, when
	 * they come, only drop a reference.
	 */
	while ((req = LIST_FIRST(&srv->waiting))) {
		LIST_REMOVE(req, wait_link);
		req->srv = NULL;
		req->orphaned = true;
		if (req->answered || !req->conn)
			continue;
		req->resp[0].iov_base = json_out_error(503, "shutting down", &req->resp[0].iov_len);
		req->nresp = req->resp[0].iov_base ? 1 : 0;
		req->resp_len = req->nresp ? req->resp[0].iov_len : 0;
		req->status = 503;
		req->answered = true;
		if (req->conn->state == HTTP_CONN_WAITING && req->conn->req == req)
			http_conn_answered(req->conn);
	}
	for (int s = 0; s < HTTP_CONN_NSTATES; s++)
		while ((c = TAILQ_FIRST(&srv->conns[s])))
			http_conn_close(c);
	ev_timer_stop(srv->loop, &srv->sweep);
	http_auth_stop(srv);
	http_tls_free(srv->tls);
	http_origin_free(srv);
	free(srv);
}
