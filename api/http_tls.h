/*
 * http_tls.h - private to the server glue: TLS sessions (GnuTLS) on the
 * server's non-blocking sockets.
 */
#ifndef VALET_HTTP_TLS_H
#define VALET_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http_tls;
struct http_tls_conn;

/* The certificate chain and key files (PEM; paths borrowed, kept for
 * reloads) and, unless client_ca is NULL or "", the CA bundle that client
 * certificates must verify against (client_require: a client without
 * one fails the handshake; else it may go without). 0 with *out, or
 * -errno with a message in err. */
int http_tls_new(const char *cert, const char *key, const char *client_ca, bool client_require,
		 struct http_tls **out, char *err, size_t errlen);
/* Read the files (the CA bundle too) again for new connections; on
 * failure the old ones stay. */
int http_tls_reload(struct http_tls *tls, char *err, size_t errlen);
void http_tls_free(struct http_tls *tls); /* NULL is a no-op */

/* A server session on an accepted socket (fd borrowed). 0 or -errno. */
int http_tls_accept(struct http_tls *tls, int fd, struct http_tls_conn **out);
/* 0 when done; -EAGAIN: call again once http_tls_events() is ready;
 * -EACCES: the client certificate was refused (http_tls_refused()); -EPROTO. */
int http_tls_handshake(struct http_tls_conn *c);
/* After -EACCES: why (borrowed from c), and *sha256 the refused
 * certificate's fingerprint (NULL when none was sent). */
const char *http_tls_refused(const struct http_tls_conn *c, const uint8_t **sha256);
/* Bytes read, 0 at end of stream, -EAGAIN, or -EPROTO. */
ssize_t http_tls_recv(struct http_tls_conn *c, void *buf, size_t len);
/* Bytes sent, -EAGAIN (repeat with the same len), or -EPROTO. */
ssize_t http_tls_send(struct http_tls_conn *c, const void *buf, size_t len);
/* The SHA-256 of the client's certificate (DER) once it verified against
 * the CA bundle in the handshake; NULL without one. Borrowed from c. */
const uint8_t *http_tls_client_sha256(const struct http_tls_conn *c);
/* Decrypted bytes wait inside the session: read again without polling. */
bool http_tls_pending(struct http_tls_conn *c);
/* After -EAGAIN: EV_READ or EV_WRITE. */
int http_tls_events(struct http_tls_conn *c);
/* End the session (with close_notify when notify) and free it. */
void http_tls_close(struct http_tls_conn *c, bool notify);

#endif
