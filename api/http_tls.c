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
 *
 * Client certificates ([server] tls_client_ca, tls_client_auth): the CA
 * bundle is part of the credentials, so a SIGHUP reads it with the
 * certificate and a session keeps the bundle it was verified against. A
 * session asks for a client certificate (require: insists on one; GnuTLS
 * ends a handshake without it) and the credentials' verify function,
 * which GnuTLS calls inside the handshake, checks the chain against the
 * bundle (signature, validity dates, key usage for a TLS client): a
 * certificate that does not verify ends the handshake in either mode -
 * one that was sent is never quietly ignored. Only a certificate that
 * verified leaves its SHA-256 fingerprint (of the DER leaf, what
 * `openssl x509 -fingerprint -sha256` prints) on the session, for the API
 * keys to map. With client certificates on, sessions are not resumed (no
 * tickets): every connection's certificate is verified afresh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "http_tls.h"

#define HTTP_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct http_tls_creds {
	unsigned refs;
	gnutls_certificate_credentials_t cred;
};

struct http_tls {
	char *cert, *key;    /* borrowed paths */
	char *client_ca;     /* borrowed path, or NULL: no client certificates */
	bool client_require; /* a handshake without one fails */
	gnutls_priority_t priority;
	struct http_tls_creds *creds; /* for new sessions */
};

struct http_tls_conn {
	gnutls_session_t session;
	struct http_tls_creds *creds;
	bool client_require;
	bool client_verified; /* a client certificate verified: client_sha256 */
	uint8_t client_sha256[32];
	char refused[200]; /* why its client certificate ended the handshake */
};

static void creds_unref(struct http_tls_creds *c)
{
	if (c && --c->refs == 0) {
		gnutls_certificate_free_credentials(c->cred);
		free(c);
	}
}

/*
 * Inside the handshake, once the client's Certificate message is in: 0 lets
 * it go on, anything else ends it (GNUTLS_E_CERTIFICATE_ERROR). No
 * certificate is for the mode to judge; one that was sent must verify.
 */
static int verify_client(gnutls_session_t session)
{
	struct http_tls_conn *c = gnutls_session_get_ptr(session);
	gnutls_typed_vdata_st purpose = {
	    .type = GNUTLS_DT_KEY_PURPOSE_OID,
	    .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	const gnutls_datum_t *chain;
	gnutls_datum_t text = {NULL, 0};
	unsigned n = 0, status = 0;
	uint8_t fp[32];

	chain = gnutls_certificate_get_peers(session, &n);
	if (!chain || n == 0) {
		if (c->client_require)
			snprintf(c->refused, sizeof(c->refused), "no client certificate");
		return c->client_require ? -1 : 0;
	}
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, chain[0].data, chain[0].size, fp) < 0)
		return -1;
	if (gnutls_certificate_verify_peers(session, &purpose, 1, &status) < 0 || status != 0) {
		if (status && gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
									   &text, 0) == 0)
			snprintf(c->refused, sizeof(c->refused), "%s", (char *)text.data);
		else
			snprintf(c->refused, sizeof(c->refused), "the certificate does not verify");
		gnutls_free(text.data);
		for (size_t i = strlen(c->refused); i > 0 && c->refused[i - 1] == ' '; i--)
			c->refused[i - 1] = '\0';
		/* Which certificate it was: the log names it. */
		memcpy(c->client_sha256, fp, sizeof(fp));
		return -1;
	}
	memcpy(c->client_sha256, fp, sizeof(fp));
	c->client_verified = true;
	return 0;
}

/* The client CA bundle into c; 0, or -EINVAL with a message. */
static int creds_client_ca(struct http_tls_creds *c, const char *ca, char *err, size_t errlen)
{
	int rc = gnutls_certificate_set_x509_trust_file(c->cred, ca, GNUTLS_X509_FMT_PEM);

	if (rc <= 0) {
		snprintf(err, errlen, "TLS: cannot use %s as the client CA bundle: %s", ca,
			 rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
		return -EINVAL;
	}
	gnutls_certificate_set_verify_function(c->cred, verify_client);
	return 0;
}

static int creds_load(const char *cert, const char *key, const char *ca,
		      struct http_tls_creds **out, char *err, size_t errlen)
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
	if (ca && creds_client_ca(c, ca, err, errlen) < 0) {
		creds_unref(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

int http_tls_new(const char *cert, const char *key, const char *client_ca, bool client_require,
		 struct http_tls **out, char *err, size_t errlen)
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
	t->client_ca = client_ca && client_ca[0] ? (char *)client_ca : NULL;
	t->client_require = client_require;
	rc = gnutls_priority_init(&t->priority, HTTP_TLS_PRIORITY, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
		free(t);
		return -EINVAL;
	}
	rc = creds_load(cert, key, t->client_ca, &t->creds, err, errlen);
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
	int rc = creds_load(t->cert, t->key, t->client_ca, &c, err, errlen);

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
	unsigned flags = GNUTLS_SERVER | GNUTLS_NONBLOCK | (t->client_ca ? GNUTLS_NO_TICKETS : 0);

	*out = NULL;
	if (!c)
		return -ENOMEM;
	if (gnutls_init(&c->session, flags) < 0) {
		free(c);
		return -ENOMEM;
	}
	if (gnutls_priority_set(c->session, t->priority) < 0 ||
	    gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, t->creds->cred) < 0) {
		gnutls_deinit(c->session);
		free(c);
		return -EINVAL;
	}
	c->client_require = t->client_require;
	gnutls_session_set_ptr(c->session, c);
	if (!t->client_ca)
		gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_IGNORE);
	else if (t->client_require)
		gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_REQUIRE);
	else
		gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_REQUEST);
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
	if (!c->refused[0] &&
	    (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED))
		snprintf(c->refused, sizeof(c->refused), "no client certificate");
	return c->refused[0] ? -EACCES : -EPROTO;
}

const char *http_tls_refused(const struct http_tls_conn *c, const uint8_t **sha256)
{
	bool named = c->refused[0] && strcmp(c->refused, "no client certificate") != 0;

	*sha256 = named ? c->client_sha256 : NULL;
	return c->refused[0] ? c->refused : NULL;
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

const uint8_t *http_tls_client_sha256(const struct http_tls_conn *c)
{
	return c && c->client_verified ? c->client_sha256 : NULL;
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
