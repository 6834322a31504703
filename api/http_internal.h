/*
 * http_internal.h - private to the server glue: the server (http.c), its
 * connections (http_conn.c), the parsing of their requests (http_parse.c)
 * and which browsers' requests it serves (http_origin.c).
 */
#ifndef VALET_HTTP_INTERNAL_H
#define VALET_HTTP_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ev.h>
#include <http_parser.h>

#include "../supervisor/metrics.h"
#include "auth.h"
#include "http_tls.h"
#include "routes.h"

/* The answer to a body that does not fit in [server] max_body_memory. */
#define HTTP_BODIES_FULL "too many request bodies at once - try again later"

/* What a request may be, besides [server] max_body. */
#define HTTP_MAX_TARGET 8192	   /* the request target: 414 above */
#define HTTP_MAX_HEADER_BYTES 16384 /* all header lines: 431 above */
#define HTTP_MAX_HEADERS 100	   /* header lines: 431 above */
#define HTTP_MAX_ORIGIN 512	   /* a longer Origin is no allowed origin */
#define HTTP_MAX_HOST 512	   /* a longer Host is no allowed host */
#define HTTP_MAX_SEC_FETCH_SITE 32 /* a longer Sec-Fetch-Site is no known value */
#define HTTP_MAX_AUTHORIZATION 512 /* a longer Authorization is no token */
#define HTTP_MAX_IF_NONE_MATCH 512 /* a longer If-None-Match matches nothing */
#define HTTP_WRITE_BUDGET (256 * 1024) /* bytes sent per connection per loop pass */
/* Bytes of streamed answers made per loop pass, all connections together:
 * what bounds the loop's time spent encoding lists, however many read. */
#define HTTP_STREAM_PASS_BUDGET (512 * 1024)
#define HTTP_LINGER_S 2.0	   /* reading what a closed-for-us client still sends */
#define HTTP_CLIENT_BUCKETS 1024

/* Which origins CORS allows ([server] cors_origins; http_origin.c). */
enum http_cors {
	HTTP_CORS_NONE = 0, /* none: no CORS headers at all */
	HTTP_CORS_ANY,	    /* every one: Access-Control-Allow-Origin: * */
	HTTP_CORS_LIST,	    /* those listed: echo it, Vary: Origin */
	HTTP_CORS_LOOPBACK, /* http(s) on a loopback host: echo it, Vary: Origin */
};

union http_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

/*
 * A connection's state is the list it sits on (srv->conns[state]); each
 * list is in the order its members entered it, so its head is the first to
 * time out.
 */
enum http_conn_state {
	HTTP_CONN_IDLE = 0, /* no byte of a request yet: idle_timeout */
	HTTP_CONN_READING,  /* a request partly read: request_timeout */
	HTTP_CONN_WAITING,  /* a request in the handlers or the core: no timeout */
	HTTP_CONN_WRITING,  /* an answer partly sent: request_timeout since progress */
	HTTP_CONN_LINGER,   /* answered and shut down for writing: HTTP_LINGER_S */
	HTTP_CONN_NSTATES,
};

TAILQ_HEAD(http_conn_list, http_conn);

/* Requests by route pattern x method x status code, and latency by route
 * (http_metrics.c). */
#define HTTP_METRICS_METHODS 7 /* GET HEAD POST PATCH DELETE OPTIONS other */
#define HTTP_METRICS_CODES 20  /* 0 (none sent), the server's codes, other */
struct http_metrics {
	uint64_t requests[ROUTES_NPATTERNS][HTTP_METRICS_METHODS][HTTP_METRICS_CODES];
	struct metrics_hist latency[ROUTES_NPATTERNS];
};

/* The connections from one IPv4 address or one IPv6 /64. */
struct http_client {
	LIST_ENTRY(http_client) link;
	uint8_t key[16];
	unsigned conns;
};

struct http_server {
	struct ev_loop *loop;
	const struct config *cfg; /* borrowed */
	struct core *core;	  /* borrowed */
	int listen_fd;
	ev_io accept_io;
	ev_timer accept_pause; /* out of file descriptors: accept again later */
	ev_timer sweep;	       /* once a second while there are connections */
	int port;
	bool quiesced;
	enum http_cors cors;
	char **cors_origins;  /* [server] cors_origins: NULL-terminated */
	char **allowed_hosts; /* [server] allowed_hosts: NULL-terminated */
	bool host_check;      /* Host must be local or in allowed_hosts */
	/* From the config, in the units used here. */
	unsigned max_conns, max_per_client;
	double request_timeout_s, idle_timeout_s;

	unsigned nconns;
	struct http_conn_list conns[HTTP_CONN_NSTATES];
	LIST_HEAD(, http_client) clients[HTTP_CLIENT_BUCKETS];
	uint64_t client_seed;
	/* Requests waiting for a core callback. */
	LIST_HEAD(http_request_list, http_request) waiting;
	struct http_tls *tls; /* [server] tls_cert: every connection speaks TLS */
	/* API keys ([server] auth_keys; NULL path: an open API), read again
	 * when the file changes (keys_watch) or on SIGHUP; or the store's
	 * (keys_db: [server] auth_source = postgres), handed over by the store
	 * as they change (NULL until the first read). */
	const char *keys_path;
	bool keys_db, keys_failing;
	struct auth_keys *keys;
	ev_stat keys_watch;
	struct auth_key auth_default; /* [auth]: the policy of a key that sets none */
	/* The Date header's value, made once a second. */
	char date[40];
	int64_t date_s;
	struct http_metrics metrics;
	/* What the requests' body buffers hold in all ([server] max_body_memory). */
	size_t body_memory;
	/* Streamed bytes made in loop pass stream_pass (HTTP_STREAM_PASS_BUDGET). */
	unsigned stream_pass;
	size_t stream_made;
	char scratch[65536]; /* what one read brings in, parsed at once */
};

struct http_conn {
	struct http_server *srv;
	ev_io io;
	int fd;
	enum http_conn_state state;
	TAILQ_ENTRY(http_conn) link;
	ev_tstamp since; /* when it entered its list (or last made progress) */
	struct http_client *client;
	union http_addr peer;
	http_parser parser;
	struct http_request *req; /* being read or answered: one reference */
	/* Read but not parsed: what follows a request, parsed after its answer. */
	char *pending;
	size_t pending_len;
	/* Reading a request. */
	size_t target_len, header_bytes;
	unsigned nheaders;
	char field[16]; /* the current header's name (lower case, cut) */
	size_t field_len;
	bool in_value;
	enum {
		HDR_OTHER,
		HDR_ORIGIN,
		HDR_EXPECT,
		HDR_AUTHORIZATION,
		HDR_IF_NONE_MATCH,
		HDR_HOST,
		HDR_SEC_FETCH_SITE,
	} header;
	char expect[32];
	size_t expect_len;
	/* Framing that http-parser (built without HTTP_PARSER_STRICT) lets
	 * through, checked here (http_parse.c): the buffer being parsed,
	 * whether what was parsed before it ends a line and then only blanks
	 * (a header value there continues a line: obs-fold), and a chunk's
	 * data seen whole, the two bytes after it still to be CRLF - where it
	 * ends in this buffer, or those of them that earlier buffers held. */
	const char *exec_at;
	bool after_eol;
	uint64_t chunk_left;
	bool chunk_crlf;
	const char *chunk_end;
	char chunk_tail[2];
	unsigned chunk_tail_n;
	bool drop_body;	      /* a body that is read and not kept */
	size_t body_dropped;
	size_t body_length;   /* its Content-Length (0: none, or chunked) */
	unsigned fail_status; /* a callback's verdict: answer this and close */
	char fail_msg[160];
	bool complete; /* the request is all read */
	/* Answering. */
	char head[1024];
	size_t head_len, sent;
	bool keep_alive;
	bool peer_eof; /* the client shut down its side */
	/* TLS: the session, its handshake still going, the length of a send
	 * GnuTLS said "again" to (it must be repeated as it was). */
	struct http_tls_conn *tls;
	bool handshaking, tls_started;
	size_t tls_retry;
	/* Closed inside a callback of its own: freed when that returns. */
	unsigned busy;
	bool closed;
};

/* ---- http_conn.c ---- */

/* Take over an accepted socket (non-blocking). 0, or -errno (fd is closed). */
int http_conn_new(struct http_server *srv, int fd, const union http_addr *peer,
		  struct http_client *client);
/* Close now, whatever it was doing (c is freed unless a callback of its own
 * is running; then when that returns). */
void http_conn_close(struct http_conn *c);
/* The request's answer is set (after the handlers returned): send it. */
void http_conn_answered(struct http_conn *c);
/* The next piece of c's streamed answer is in (it was waiting): send it. */
void http_conn_stream_ready(struct http_conn *c);
/* Whether c's client reads a chunked body (HTTP/1.1). */
bool http_conn_chunked(const struct http_conn *c);
/* Time-outs: close (or answer 408) what has waited too long at now. */
void http_conn_sweep(struct http_server *srv, ev_tstamp now);
/* Send a last error answer on a socket that will not be served, and close
 * it (date: the Date header's value, borrowed). */
void http_conn_refuse(int fd, const char *date, unsigned status, const char *message);
/* For http_parse.c: c enters state (the list of that state, at its tail). */
void http_conn_enter(struct http_conn *c, enum http_conn_state state);
/* For http_parse.c: a few bytes now, an interim answer (data borrowed). 0, or
 * -errno (TLS: it must not be left half-sent, so "again" is a failure here). */
int http_conn_send_interim(struct http_conn *c, const char *data, size_t len);

/* ---- http_parse.c, for http_conn.c ---- */

/* Parse data (borrowed) of c's stream with c's parser: the callbacks keep
 * c's request, or refuse it (c->fail_status). How much was parsed, as
 * http_parser_execute() says; HTTP_PARSER_ERRNO() says why it stopped. */
size_t http_parse_execute(struct http_conn *c, const char *data, size_t len);
/* What the parse error err of c is answered with: the status, and the
 * message in msg (cap bytes). */
unsigned http_parse_error(const struct http_conn *c, enum http_errno err, char *msg, size_t cap);

/* ---- http_metrics.c ---- */

void http_metrics_init(struct http_metrics *m);
/* A request ended on its connection (sent: its answer went out). */
void http_metrics_request(struct http_metrics *m, const struct http_request *req, bool sent);
void http_metrics_write(const struct http_server *srv, struct metrics_text *t);

/* ---- http_auth.c, for http.c ---- */

/* Read the keys ([server] auth_keys; none: an open API) and watch the file.
 * 0, or -errno with a message in err. */
int http_auth_start(struct http_server *srv, char *err, size_t errlen);
/* Read the keys file again; a file that does not read keeps the keys. */
void http_auth_reload(struct http_server *srv);
void http_auth_stop(struct http_server *srv);
/* Whether the complete req may go on (else it has been answered 401, 403,
 * 429 or 503). */
bool http_auth_allowed(struct http_server *srv, struct http_request *req);

/* ---- http_auth.c, for http_parse.c ---- */

enum http_auth_verdict {
	HTTP_AUTH_OK,	  /* an open API, or a key's request: read on */
	HTTP_AUTH_NO_KEY, /* with keys, a request that needs none: its body is not kept */
	HTTP_AUTH_DENIED, /* answered 401, 403, 429 or 503 */
};
/* Decide req once its head is in, before its body is read. The rate is
 * looked at (a 429 when it has no token now), not taken; the complete
 * request goes through http_auth_allowed() too. */
enum http_auth_verdict http_auth_head(struct http_server *srv, struct http_request *req);
/* For http_conn.c: c's client certificate ended its handshake; log it once. */
void http_auth_refused_cert(const struct http_conn *c);

/* ---- http_origin.c, for http.c and http_conn.c ---- */

/* srv's CORS and Host rules from its config; loopback: it listens on a
 * loopback address. 0 or -ENOMEM. */
int http_origin_setup(struct http_server *srv, bool loopback);
void http_origin_free(struct http_server *srv);
/* Whether req's Host may be answered and, if it writes from another
 * origin, that origin may (else it has been answered 403). */
bool http_origin_allowed(struct http_server *srv, struct http_request *req);
/* The Access-Control-Allow-Origin value for origin (borrowed), or NULL. */
const char *http_cors_allow(const struct http_server *srv, const char *origin);
/* The Access-Control-* and Vary headers of an answer, appended to buf. */
size_t http_cors_headers(const struct http_server *srv, const struct http_request *req,
			 char *buf, size_t len);

/* ---- http.c, for http_conn.c ---- */

struct http_request *http_request_new(struct http_server *srv, struct http_conn *conn);
void http_request_unref(struct http_request *req);
/* The complete request: its Host and origin, a CORS preflight, the
 * dashboard's files, or the handlers. */
void http_request_ready(struct http_request *req);
/* The current Date header value. */
const char *http_date(struct http_server *srv);
/* One access-log line for a request that ends on its connection. */
void http_access_log(const struct http_conn *c, const struct http_request *req, bool sent);
/* "1.2.3.4:5", "[::1]:5" or "-". */
void http_format_peer(const union http_addr *a, char *out, size_t len);
/* A connection was closed: its client's count, the sweep timer. */
void http_conn_gone(struct http_server *srv, struct http_client *client);

#endif
