/*
 * http_tls.c - TLS for the HTTP server, with GnuTLS, on non-blocking sockets.
 *
 * Theory of operation: the server holds one set of credentials (the
 * certificate chain and key of [server] tls_cert / tls_key) at a time,
 * reference counted: a SIGHUP that reads new files gives new connections
 * the new set while the sessions made with the old one keep it until they
 * end. Only TLS 1.2 and 1.3 are offered. A session lives on a non-blocking
 * socket: every call may say "again", and then which way the socket must
 * become ready (gnutls_record_get_direction()); a send that says "again"
 * must be repeated with the same length (GnuTLS has taken the record), which
 * the caller keeps. Decrypted bytes can wait inside GnuTLS while the socket
 * has nothing to read: http_tls_pending() tells the caller to read again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>
#include <gnutls/gnutls.h>

#include "http_tls.h"

#define HTTP_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct http_tls_creds {
	unsigned refs;
	gnutls_certificate_credentials_t cred;
};

struct http_tls {
	char *cert, *key; /* borrowed paths */
	gnutls_priority_t priority;
	struct http_tls_creds *creds; /* for new sessions */
};

struct http_tls_conn {
	gnutls_session_t session;
	struct http_tls_creds *creds;
};

static void creds_unref(struct http_tls_creds *c)
{
	if (c && --c->refs == 0) {
		gnutls_certificate_free_credentials(c->cred);
		free(c);
	}
}

static int creds_load(const char *cert, const char *key, struct http_tls_creds **out, char *err,
		      size_t errlen)
{
	struct http_tls_creds *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->refs = 1;
	rc = gnutls_certificate_allocate_credentials(&c->cred);
	if (rc < 0) {
		free(c);
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
		return -ENOMEM;
	}
	rc = gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(err, errlen, "TLS: cannot use %s and %s: %s", cert, key, gnutls_strerror(rc));
		creds_unref(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

int http_tls_new(const char *cert, const char *key, struct http_tls **out, char *err,
		 size_t errlen)
{
	struct http_tls *t = calloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->cert = (char *)cert;
	t->key = (char *)key;
	rc = gnutls_priority_init(&t->priority, HTTP_TLS_PRIORITY, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
		free(t);
		return -EINVAL;
	}
	rc = creds_load(cert, key, &t->creds, err, errlen);
	if (rc < 0) {
		http_tls_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int http_tls_reload(struct http_tls *t, char *err, size_t errlen)
{
	struct http_tls_creds *c;
	int rc = creds_load(t->cert, t->key, &c, err, errlen);

	if (rc < 0)
		return rc;
	creds_unref(t->creds);
	t->creds = c;
	return 0;
}

void http_tls_free(struct http_tls *t)
{
	if (!t)
		return;
	creds_unref(t->creds);
	if (t->priority)
		gnutls_priority_deinit(t->priority);
	free(t);
}

int http_tls_accept(struct http_tls *t, int fd, struct http_tls_conn **out)
{
	struct http_tls_conn *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	if (gnutls_init(&c->session, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
		free(c);
		return -ENOMEM;
	}
	if (gnutls_priority_set(c->session, t->priority) < 0 ||
	    gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, t->creds->cred) < 0) {
		gnutls_deinit(c->session);
		free(c);
		return -EINVAL;
	}
	gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(c->session, fd);
	c->creds = t->creds;
	c->creds->refs++;
	*out = c;
	return 0;
}

/* GnuTLS's "again" and "interrupted" are -EAGAIN; the rest is fatal. */
static int tls_errno(int rc)
{
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	if (rc == GNUTLS_E_PREMATURE_TERMINATION)
		return 0; /* a close without close_notify: end of stream */
	return -EPROTO;
}

int http_tls_handshake(struct http_tls_conn *c)
{
	int rc = gnutls_handshake(c->session);

	if (rc == GNUTLS_E_SUCCESS)
		return 0;
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	/* A warning alert is no reason to give up; anything else is. */
	if (!gnutls_error_is_fatal(rc))
		return -EAGAIN;
	return -EPROTO;
}

ssize_t http_tls_recv(struct http_tls_conn *c, void *buf, size_t len)
{
	ssize_t n = gnutls_record_recv(c->session, buf, len);

	return n >= 0 ? n : tls_errno((int)n);
}

ssize_t http_tls_send(struct http_tls_conn *c, const void *buf, size_t len)
{
	ssize_t n = gnutls_record_send(c->session, buf, len);

	return n >= 0 ? n : tls_errno((int)n);
}

bool http_tls_pending(struct http_tls_conn *c)
{
	return gnutls_record_check_pending(c->session) > 0;
}

int http_tls_events(struct http_tls_conn *c)
{
	return gnutls_record_get_direction(c->session) ? EV_WRITE : EV_READ;
}

void http_tls_close(struct http_tls_conn *c, bool notify)
{
	if (!c)
		return;
	/* close_notify, if the socket takes it now; nobody waits for it. */
	if (notify)
		(void)gnutls_bye(c->session, GNUTLS_SHUT_WR);
	gnutls_deinit(c->session);
	creds_unref(c->creds);
	free(c);
}
