/*
 * auth_cert.c - client certificates of API keys: the cert= field of a
 * key's line, and `valetd key create --cert FILE`.
 *
 * Theory of operation: with [server] tls_client_auth, the TLS layer
 * (http_tls.c) verifies a client's certificate against the CA bundle in
 * the handshake and leaves the SHA-256 fingerprint of the certificate
 * (its DER bytes) on the connection. A key whose line says
 * cert=sha256:HEX[,sha256:HEX...] is the key of a request made with one of
 * those certificates. The fingerprint names one certificate exactly: a
 * subject or SAN match would let a CA (or anyone it delegates to) mint a
 * second certificate with the same name, and a reissued certificate
 * would silently stay the key. A key may name up to AUTH_CERTS_MAX
 * certificates, so that a renewed one can be added before the old one
 * expires; two keys naming one certificate is an error of the file.
 *
 * A fingerprint is no secret (the certificate is sent in the clear before
 * TLS 1.3), so finding a key by it needs no constant-time comparison: what
 * proves the client holds the certificate's private key is the handshake.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "../supervisor/job.h"
#include "../supervisor/strv.h"
#include "auth.h"

#define CERT_PREFIX "sha256:"

/* sha256:HEX (64 hex digits, either case, with or without the colons
 * `openssl x509 -fingerprint` puts between bytes) of len bytes at text. */
static int parse_fingerprint(const char *text, size_t len, uint8_t out[32])
{
	size_t plen = strlen(CERT_PREFIX), n = 0;

	if (len < plen || strncasecmp(text, CERT_PREFIX, plen) != 0)
		return -EINVAL;
	for (size_t i = plen; i < len; i++) {
		int hi, lo;

		if (text[i] == ':' && n > 0 && i + 1 < len)
			continue;
		if (n == 32 || i + 1 >= len)
			return -EINVAL;
		hi = job_hex_value(text[i]);
		lo = job_hex_value(text[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[n++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return n == 32 ? 0 : -EINVAL;
}

int auth_cert_field(struct auth_key *k, const char *value)
{
	const char *p = value;

	if (k->ncerts || !*p)
		return -EINVAL; /* cert= once per line, and not empty */
	while (*p) {
		size_t len = strcspn(p, ",");

		if (k->ncerts == AUTH_CERTS_MAX ||
		    parse_fingerprint(p, len, k->certs[k->ncerts]) < 0)
			goto fail;
		for (unsigned i = 0; i < k->ncerts; i++)
			if (!memcmp(k->certs[i], k->certs[k->ncerts], 32))
				goto fail;
		k->ncerts++;
		p += len;
		if (*p == ',' && !*++p)
			goto fail;
	}
	return 0;
fail:
	k->ncerts = 0;
	return -EINVAL;
}

void auth_cert_hex(const uint8_t fp[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", fp[i]);
}

void auth_cert_format(const struct auth_key *k, char *buf, size_t len)
{
	size_t used = strlen(buf);
	char hex[65];

	for (unsigned i = 0; i < k->ncerts; i++) {
		auth_cert_hex(k->certs[i], hex);
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s%s",
					 i ? "," : (used ? " cert=" : "cert="), CERT_PREFIX, hex);
	}
	if (used >= len && len)
		buf[len - 1] = '\0';
}

const struct auth_key *auth_keys_find_cert(const struct auth_keys *keys, const uint8_t fp[32])
{
	if (!keys || !fp)
		return NULL;
	for (size_t i = 0; i < keys->n; i++)
		for (unsigned j = 0; j < keys->keys[i].ncerts; j++)
			if (!memcmp(keys->keys[i].certs[j], fp, 32))
				return &keys->keys[i];
	return NULL;
}

int auth_cert_check(const struct auth_keys *keys, char *err, size_t errlen)
{
	char hex[65];

	for (size_t i = 0; i < keys->n; i++)
		for (unsigned j = 0; j < keys->keys[i].ncerts; j++) {
			const struct auth_key *first =
			    auth_keys_find_cert(keys, keys->keys[i].certs[j]);

			if (first == &keys->keys[i])
				continue;
			auth_cert_hex(keys->keys[i].certs[j], hex);
			snprintf(
			    err, errlen,
			    "the client certificate sha256:%s is the keys \"%s\" and \"%s\": one "
			    "certificate, one key",
			    hex, first->name, keys->keys[i].name);
			return -EINVAL;
		}
	return 0;
}

/* The fingerprint of a PEM file's first certificate, which must be a
 * client's (a CA's would never be presented as one). 0, or 2 (said). */
static int file_fingerprint(const char *path, uint8_t fp[32])
{
	gnutls_datum_t pem = {NULL, 0}, der = {NULL, 0};
	gnutls_x509_crt_t crt = NULL;
	unsigned critical = 0;
	int rc = 2, ca;

	if (gnutls_load_file(path, &pem) < 0) {
		fprintf(stderr, "valetd key create: --cert %s: cannot read it\n", path);
		return 2;
	}
	if (gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0) {
		fprintf(stderr, "valetd key create: --cert %s: not a PEM certificate\n", path);
		goto out;
	}
	ca = gnutls_x509_crt_get_basic_constraints(crt, &critical, NULL, NULL);
	if (ca > 0) {
		fprintf(stderr,
			"valetd key create: --cert %s: a CA certificate; give the client's own "
			"(the CA goes into [server] tls_client_ca)\n",
			path);
		goto out;
	}
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, fp) < 0) {
		fprintf(stderr, "valetd key create: --cert %s: cannot hash it\n", path);
		goto out;
	}
	rc = 0;
out:
	gnutls_free(der.data);
	gnutls_free(pem.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return rc;
}

/* The cert= word of a policy string into k (none: k has no certificates). */
static int policy_certs(const char *policy, struct auth_key *k)
{
	const char *word = strstr(policy, " cert=");
	char value[AUTH_CERTS_MAX * 80];
	size_t n;

	memset(k, 0, sizeof(*k));
	if (!word)
		return 0;
	word += 6;
	n = strcspn(word, " ");
	if (n >= sizeof(value))
		return -EINVAL;
	snprintf(value, sizeof(value), "%.*s", (int)n, word);
	return auth_cert_field(k, value);
}

int auth_cert_option(const char *arg, char *policy, size_t len)
{
	char *word = strstr(policy, " cert="), add[8 + sizeof(CERT_PREFIX) + 64];
	size_t used = strlen(policy), at, alen;
	struct auth_key k;
	uint8_t fp[32];
	char hex[65];

	if (!strncasecmp(arg, CERT_PREFIX, strlen(CERT_PREFIX))) {
		if (parse_fingerprint(arg, strlen(arg), fp) < 0) {
			fprintf(stderr, "valetd key create: --cert %s: sha256: and 64 hex digits\n",
				arg);
			return 2;
		}
	} else if (file_fingerprint(arg, fp)) {
		return 2;
	}
	auth_cert_hex(fp, hex);
	/* A second --cert joins the first's word: cert= is one field. */
	alen =
	    (size_t)snprintf(add, sizeof(add), "%s%s%s", word ? "," : " cert=", CERT_PREFIX, hex);
	at = word ? (size_t)(word - policy) + 1 + strcspn(word + 1, " ") : used;
	if (used + alen + 1 > len) {
		fprintf(stderr, "valetd key create: too many options\n");
		return 2;
	}
	memmove(policy + at + alen, policy + at, used - at + 1);
	memcpy(policy + at, add, alen);
	if (policy_certs(policy, &k) < 0) {
		fprintf(stderr,
			"valetd key create: --cert %s: the same certificate twice, or more "
			"than %d\n",
			arg, AUTH_CERTS_MAX);
		return 2;
	}
	return 0;
}

int auth_cert_taken(const struct auth_keys *keys, const char *policy)
{
	struct auth_key k;
	char hex[65];
	int rc = 0;

	if (policy_certs(policy, &k) < 0 || !k.ncerts)
		return 0;
	for (unsigned i = 0; i < k.ncerts && !rc; i++) {
		const struct auth_key *have = auth_keys_find_cert(keys, k.certs[i]);

		if (!have)
			continue;
		auth_cert_hex(k.certs[i], hex);
		fprintf(stderr,
			"valetd key create: the client certificate sha256:%s is the key \"%s\" "
			"already: one certificate, one key\n",
			hex, have->name);
		rc = 1;
	}
	return rc;
}
