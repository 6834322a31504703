/*
 * http.c - the HTTP server glue: libmicrohttpd driven from the daemon's
 * libev loop, with no thread of its own.
 *
 * Theory of operation: MHD runs in external-loop epoll mode. Its epoll fd
 * sits in an ev_io; whenever it is readable, or when the ev_timer armed
 * from MHD_get_timeout() fires, MHD_run() does the work and the timer is
 * re-armed. MHD calls http_access() for each request: first with the
 * headers (a request state is allocated, and a Content-Length above the
 * body limit is answered 413 right there), then with pieces of the body
 * (accumulated up to the limit; past it the rest is read and dropped and
 * the answer is 413), then once more with nothing left to read. That last
 * call answers CORS preflights itself and hands everything else to
 * routes_dispatch().
 *
 * A request is answered either during that call (no core call, or the core
 * answered synchronously) and the response is queued at once, or later: the
 * connection is suspended, the core's callback stores the answer and
 * resumes it, a zero timer makes MHD_run() come round soon, and MHD calls
 * http_access() again, which queues the stored answer. The request state is
 * reference counted (MHD holds one reference until NOTIFY_COMPLETED, an
 * outstanding core call another), so a callback that arrives after the
 * connection or the server has gone only drops its reference.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../supervisor/log.h"
#include "http.h"
#include "json_out.h"
#include "routes.h"

#define HTTP_CONNECTION_LIMIT 1024
#define HTTP_CONNECTION_TIMEOUT_S 60

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

union http_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

/* The last message MHD logged, to explain a failed start. */
static char http_last_mhd_error[256];

static void http_request_unref(struct http_request *req)
{
	if (--req->refs > 0)
		return;
	json_in_doc_release(&req->doc);
	free(req->body);
	free(req->resp_body);
	free(req->url);
	free(req);
}

/* ---- the loop ------------------------------------------------------- */

static void http_arm_timer(struct http_server *srv)
{
	MHD_UNSIGNED_LONG_LONG ms;

	ev_timer_stop(srv->loop, &srv->timer);
	if (MHD_get_timeout(srv->daemon, &ms) == MHD_YES) {
		ev_timer_set(&srv->timer, (double)ms / 1000.0, 0.);
		ev_timer_start(srv->loop, &srv->timer);
	}
}

static void http_run(struct http_server *srv)
{
	srv->in_run = true;
	srv->kicked = false;
	MHD_run(srv->daemon);
	srv->in_run = false;
	if (srv->kicked) {
		/* A resumed connection waits for the next MHD_run(). */
		ev_timer_stop(srv->loop, &srv->timer);
		ev_timer_set(&srv->timer, 0., 0.);
		ev_timer_start(srv->loop, &srv->timer);
		return;
	}
	http_arm_timer(srv);
}

static void http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	http_run(container_of(w, struct http_server, io));
}

static void http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	http_run(container_of(w, struct http_server, timer));
}

/* Make MHD_run() come round soon (a connection was resumed). */
static void http_kick(struct http_server *srv)
{
	if (srv->in_run) {
		srv->kicked = true;
		return;
	}
	ev_timer_stop(srv->loop, &srv->timer);
	ev_timer_set(&srv->timer, 0., 0.);
	ev_timer_start(srv->loop, &srv->timer);
}

/* ---- answers -------------------------------------------------------- */

void http_request_wait(struct http_request *req)
{
	req->waiting = true;
	req->refs++;
	LIST_INSERT_HEAD(&req->srv->waiting, req, wait_link);
}

void http_request_answer(struct http_request *req, unsigned status, char *body, size_t len)
{
	if (req->answered || req->orphaned || !req->conn) {
		free(body);
	} else {
		req->answered = true;
		req->status = status;
		req->resp_body = body;
		req->resp_len = body ? len : 0;
	}
	if (!req->waiting)
		return;
	req->waiting = false;
	if (req->srv) {
		LIST_REMOVE(req, wait_link);
		if (req->suspended) {
			req->suspended = false;
			MHD_resume_connection(req->conn);
			http_kick(req->srv);
		}
	}
	http_request_unref(req);
}

void http_request_error(struct http_request *req, unsigned status, const char *message)
{
	size_t len = 0;
	char *body = json_out_error((int)status, message, &len);

	http_request_answer(req, body ? status : 500, body, len);
}

/* ---- CORS ----------------------------------------------------------- */

/* The Access-Control-Allow-Origin value for this request, or NULL. */
static const char *cors_allow(const struct http_server *srv, const char *origin)
{
	char *const *o;

	if (!origin || srv->cors == HTTP_CORS_NONE)
		return NULL;
	if (srv->cors == HTTP_CORS_ANY)
		return "*";
	for (o = srv->cors_origins; *o; o++)
		if (!strcmp(*o, origin))
			return origin;
	return NULL;
}

static int cors_setup(struct http_server *srv, const char *spec, const union http_addr *addr)
{
	const char *p = spec ? spec : "";
	size_t n = 0, len;
	char **list;

	if (!p[0]) {
		bool loop = addr->sa.sa_family == AF_INET
				? (ntohl(addr->in4.sin_addr.s_addr) >> 24) == 127
				: IN6_IS_ADDR_LOOPBACK(&addr->in6.sin6_addr);
		srv->cors = loop ? HTTP_CORS_ANY : HTTP_CORS_NONE;
		return 0;
	}
	list = calloc(strlen(p) / 2 + 2, sizeof(*list));
	if (!list)
		return -ENOMEM;
	srv->cors = HTTP_CORS_LIST;
	srv->cors_origins = list;
	while (*p) {
		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (!len)
			break;
		if (len == 1 && *p == '*')
			srv->cors = HTTP_CORS_ANY;
		list[n] = strndup(p, len);
		if (!list[n])
			return -ENOMEM;
		n++;
		p += len;
	}
	return 0;
}

/* ---- requests ------------------------------------------------------- */

static enum MHD_Result http_queue(struct http_server *srv, struct http_request *req)
{
	const char *origin, *allow;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(req->resp_len, req->resp_body,
					       req->resp_body ? MHD_RESPMEM_MUST_FREE
							      : MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	req->resp_body = NULL; /* MHD frees it now */
	if (req->resp_len > 0)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
	allow = cors_allow(srv, origin);
	if (allow) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", allow);
		if (req->preflight) {
			MHD_add_response_header(resp, "Access-Control-Allow-Methods",
						"GET,POST,PUT,PATCH,DELETE,HEAD");
			MHD_add_response_header(resp, "Access-Control-Allow-Headers",
						"Origin,Content-Length,Content-Type");
			MHD_add_response_header(resp, "Access-Control-Max-Age", "43200");
		}
	}
	if (srv->cors == HTTP_CORS_LIST)
		MHD_add_response_header(resp, "Vary", "Origin");
	ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	req->queued = true;
	return ret;
}

static void http_too_large(struct http_server *srv, struct http_request *req)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
		 srv->cfg->max_body_bytes);
	http_request_error(req, 413, msg);
}

static struct http_request *http_request_new(struct http_server *srv, struct MHD_Connection *conn,
					     const char *method, const char *url)
{
	struct http_request *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->url = strdup(url);
	if (!req->url) {
		free(req);
		return NULL;
	}
	req->refs = 1;
	req->srv = srv;
	req->conn = conn;
	snprintf(req->method, sizeof(req->method), "%s", method);
	req->start_ns = job_mono_ns();
	return req;
}

static void http_body_add(struct http_server *srv, struct http_request *req, const char *data,
			  size_t size)
{
	size_t cap;
	char *p;

	if (req->body_too_large)
		return; /* read and dropped */
	if (size > srv->cfg->max_body_bytes - req->body_len) {
		req->body_too_large = true;
		free(req->body);
		req->body = NULL;
		req->body_len = req->body_cap = 0;
		return;
	}
	if (req->body_len + size + 1 > req->body_cap) {
		cap = req->body_cap ? req->body_cap : 1024;
		while (cap < req->body_len + size + 1)
			cap *= 2;
		p = realloc(req->body, cap);
		if (!p) {
			/* Treated as too large: the answer is still an error. */
			req->body_too_large = true;
			return;
		}
		req->body = p;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, size);
	req->body_len += size;
	req->body[req->body_len] = '\0';
}

/* The first call: the headers are in. Answers 413 early when it can. */
static void http_headers_in(struct http_server *srv, struct http_request *req)
{
	const char *cl =
	    MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (!cl)
		return;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (end != cl && (errno == ERANGE || n > srv->cfg->max_body_bytes)) {
		req->body_too_large = true;
		http_too_large(srv, req);
	}
}

/* The body is complete: answer or start the work. */
static void http_request_ready(struct http_server *srv, struct http_request *req)
{
	const char *origin;

	if (req->body_too_large) {
		http_too_large(srv, req);
		return;
	}
	origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
	if (!strcmp(req->method, "OPTIONS") && origin && srv->cors != HTTP_CORS_NONE) {
		if (cors_allow(srv, origin)) {
			req->preflight = true;
			http_request_answer(req, 204, NULL, 0);
		} else {
			http_request_error(req, 403, "origin not allowed");
		}
		return;
	}
	routes_dispatch(req);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;

	if (!req) {
		req = http_request_new(srv, conn, method, url);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		http_headers_in(srv, req);
		return req->answered ? http_queue(srv, req) : MHD_YES;
	}
	if (req->orphaned)
		return req->answered && !req->queued ? http_queue(srv, req) : MHD_NO;
	if (*upload_data_size) {
		http_body_add(srv, req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->queued)
		return MHD_YES;
	if (!req->answered && !req->waiting)
		http_request_ready(srv, req);
	if (req->answered)
		return http_queue(srv, req);
	/* Waiting for the core: park the connection until the answer. */
	req->suspended = true;
	MHD_suspend_connection(conn);
	return MHD_YES;
}

static void http_access_log(struct http_request *req, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;
	char status[16], bytes[32], ms[32], remote[INET6_ADDRSTRLEN + 16] = "-";
	char host[INET6_ADDRSTRLEN];
	const struct sockaddr *sa;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = info ? info->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const void *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		snprintf(remote, sizeof(remote), "%s:%u", host, ntohs(in4->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(remote, sizeof(remote), "[%s]:%u", host, ntohs(in6->sin6_port));
	}
	snprintf(status, sizeof(status), "%u", req->queued ? req->status : 0);
	snprintf(bytes, sizeof(bytes), "%zu", req->queued ? req->resp_len : 0);
	snprintf(ms, sizeof(ms), "%.3f", (double)(job_mono_ns() - req->start_ns) / 1e6);
	log_info("request", "method", req->method, "path", req->url, "status", status, "bytes",
		 bytes, "ms", ms, "remote", remote);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			   enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;

	if (!req)
		return;
	*con_cls = NULL;
	if (srv->cfg->access_log)
		http_access_log(req, conn);
	req->conn = NULL;
	http_request_unref(req);
}

__attribute__((format(printf, 2, 0))) static void http_mhd_log(void *cls, const char *fmt,
							       va_list ap)
{
	size_t len;

	vsnprintf(http_last_mhd_error, sizeof(http_last_mhd_error), fmt, ap);
	len = strlen(http_last_mhd_error);
	while (len > 0 &&
	       (http_last_mhd_error[len - 1] == '\n' || http_last_mhd_error[len - 1] == ' '))
		http_last_mhd_error[--len] = '\0';
	log_warn("http server", "error", http_last_mhd_error);
}

/* ---- setup ---------------------------------------------------------- */

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

static int http_start(struct http_server *srv, const union http_addr *addr, char *err,
		      size_t errlen)
{
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	uint16_t port =
	    ntohs(addr->sa.sa_family == AF_INET6 ? addr->in6.sin6_port : addr->in4.sin_port);

	if (addr->sa.sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	http_last_mhd_error[0] = '\0';
	/* The port argument only shows in MHD's messages; SOCK_ADDR decides. */
	/* clang-format off */
	srv->daemon = MHD_start_daemon(flags, port, NULL, NULL, http_access, srv,
		MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,
		MHD_OPTION_SOCK_ADDR, &addr->sa,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
		MHD_OPTION_END);
	/* clang-format on */
	if (!srv->daemon) {
		snprintf(err, errlen, "cannot listen on %s: %s", srv->cfg->listen,
			 http_last_mhd_error[0] ? http_last_mhd_error : "microhttpd failed");
		return -EADDRNOTAVAIL;
	}
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		snprintf(err, errlen, "microhttpd has no epoll fd");
		return -EINVAL;
	}
	ev_io_init(&srv->io, http_io_cb, info->epoll_fd, EV_READ);
	ev_io_start(srv->loop, &srv->io);
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : 0;
	http_arm_timer(srv);
	return 0;
}

struct http_server *http_new(struct ev_loop *loop, const struct config *cfg, struct core *core,
			     char *err, size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	char host[256], where[300], msg[320];
	union http_addr addr;
	int port;

	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->loop = loop;
	srv->cfg = cfg;
	srv->core = core;
	LIST_INIT(&srv->waiting);
	ev_init(&srv->timer, http_timer_cb);
	if (config_parse_listen(cfg->listen, host, sizeof(host), &port) < 0 ||
	    http_resolve(host, port, &addr) < 0) {
		snprintf(err, errlen, "invalid listen address: %s", cfg->listen);
		goto fail;
	}
	if (cors_setup(srv, cfg->cors_origins, &addr) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (http_start(srv, &addr, err, errlen) < 0)
		goto fail;
	http_format_addr(&addr, srv->port, where, sizeof(where));
	snprintf(msg, sizeof(msg), "listening on http://%s", where);
	log_info(msg, "addr", where);
	return srv;
fail:
	http_free(srv);
	return NULL;
}

void http_quiesce(struct http_server *srv)
{
	MHD_socket fd;

	if (!srv || !srv->daemon || srv->quiesced)
		return;
	srv->quiesced = true;
	fd = MHD_quiesce_daemon(srv->daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	http_arm_timer(srv);
}

int http_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

void http_free(struct http_server *srv)
{
	struct http_request *req;
	char **o;
	int i;

	if (!srv)
		return;
	if (srv->daemon) {
		/*
		 * Requests still waiting for the core are cut loose: they are
		 * answered 503 and resumed (MHD refuses to stop with suspended
		 * connections), and their callbacks, when they come, only drop
		 * a reference.
		 */
		while ((req = LIST_FIRST(&srv->waiting))) {
			LIST_REMOVE(req, wait_link);
			req->srv = NULL;
			req->orphaned = true;
			if (!req->answered) {
				req->answered = true;
				req->status = 503;
				req->resp_body =
				    json_out_error(503, "shutting down", &req->resp_len);
				if (!req->resp_body)
					req->resp_len = 0;
			}
			if (req->suspended) {
				req->suspended = false;
				MHD_resume_connection(req->conn);
			}
		}
		for (i = 0; i < 4; i++)
			MHD_run(srv->daemon);
		ev_io_stop(srv->loop, &srv->io);
		MHD_stop_daemon(srv->daemon);
	}
	ev_timer_stop(srv->loop, &srv->timer);
	for (o = srv->cors_origins; o && *o; o++)
		free(*o);
	free(srv->cors_origins);
	free(srv);
}
