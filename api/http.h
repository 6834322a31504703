/*
 * http.h - the HTTP JSON API (API.md) on libmicrohttpd, driven from the
 * daemon's libev loop: MHD's epoll fd in an ev_io, its timeout in an
 * ev_timer, no extra threads.
 */
#ifndef VALET_HTTP_H
#define VALET_HTTP_H

#include <stdbool.h>

#include <ev.h>

#include "../supervisor/config.h"
#include "../supervisor/core.h"

struct http_server;

/* Bind and listen on cfg->listen. Returns new, or NULL with a message in err. */
struct http_server *http_new(struct ev_loop *loop, const struct config *cfg, struct core *core,
			     char *err, size_t errlen);
/* What http_new() would refuse of cfg, without listening: the listen
 * address, the API keys file (when the keys are a file) and the TLS
 * certificate, key and client CA. 0, or -errno with a sentence in err. */
int http_check(const struct config *cfg, char *err, size_t errlen);
/* Whether a [server] listen value is a loopback address (127.0.0.0/8, ::1,
 * localhost): one no other host can reach. */
bool http_listen_is_loopback(const char *listen);
/* SIGHUP: read the API keys file and the TLS certificate and key again;
 * what does not load keeps what is in use. */
void http_reload(struct http_server *srv);
/* Stop accepting connections (shutdown); requests in flight still finish. */
void http_quiesce(struct http_server *srv);
/* The port actually bound (useful with port 0). */
int http_port(const struct http_server *srv);
void http_free(struct http_server *srv); /* NULL is a no-op */

#endif
