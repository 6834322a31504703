/*
 * http_auth.c - API keys on the HTTP server: who a request comes from, and
 * whether it may go on.
 *
 * Theory of operation: with [server] auth_keys, every request but a CORS
 * preflight (and GET /api/status while open_status) needs "Authorization:
 * Bearer TOKEN" of a known key (401 with WWW-Authenticate otherwise) whose
 * scopes hold the one its method and path need (403). A request that may
 * go on carries its key's name, whether it is an admin, its owner number
 * (the key's name as job_owner_id(): whose work it sees and makes) and its
 * policy (the core checks a submit against it). A submit also needs a
 * token of the key's rate (429 with Retry-After when there is none): it is
 * looked at here, taken once the body decoded (http_request_take_submit(),
 * from routes.c) and given back when the core refuses the submit
 * (http_request_give_back()), so only accepted work uses the rate.
 *
 * A request with a body is decided as soon as its head is in
 * (http_auth_head(), from http_parse.c): the method, the path, the
 * Authorization header and the client certificate are known there, so a
 * client without a key is answered 401 (403, and 429 when the rate has no
 * token now) before valetd reads a byte of its body or invites it with
 * 100 Continue, and the connection closes after that answer. A request
 * that needs no key (the dashboard's files, the open status) has its body
 * read but not kept; a CORS preflight carries none, so an OPTIONS with a
 * body needs a key like any other request. The complete request is
 * decided again (http_auth_allowed(), from http.c): the keys may have
 * been read again meanwhile, and only then is the key's policy borrowed
 * for the core.
 *
 * The keys file is read at start, again when it changes (an ev_stat on the
 * path, so `valetd key revoke` counts at once) and on SIGHUP; a file that
 * does not read keeps the keys in use. With [server] auth_source =
 * postgres the keys are the database's api_keys table instead: the store
 * hands over its rows as keys file lines whenever they change (within
 * STORE_KEYS_BOUND_S on every node), parsed by the same code; a row that
 * does not parse is left out (refused) rather than holding back every
 * other change; a database that cannot be read keeps the keys in use, and
 * before the first read every request that needs a key is a 503. Each
 * denial is logged once, with the key's name, never the token.
 *
 * Client certificates ([server] tls_client_auth): a request on a
 * connection whose certificate verified against the CA bundle is the key
 * whose cert= names that certificate, with no token needed; a verified
 * certificate that is no key's is a 401 (the CA vouches for the client,
 * not for what it may do here: that takes a key line). Without a
 * certificate (tls_client_auth = optional), the token decides as before.
 * A denial on such a connection is logged with the certificate's
 * fingerprint too, and so is a handshake that a client certificate ended
 * (http_auth_refused_cert(), for the connections).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../supervisor/log.h"
#include "../supervisor/strv.h"
#include "http.h"
#include "http_internal.h"
#include "ui.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The token of "Bearer TOKEN" (the scheme in any case), or NULL. */
static const char *bearer_token(const char *authorization)
{
	const char *p = authorization;

	if (!p || strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return NULL;
	p += 6;
	p += strspn(p, " \t");
	return p[0] ? p : NULL;
}

/* The verified client certificate's fingerprint on req's connection, or NULL. */
static const uint8_t *client_cert(const struct http_request *req)
{
	return req->conn && req->conn->tls ? http_tls_client_sha256(req->conn->tls) : NULL;
}

static void http_denied(struct http_request *req, const char *key, const char *why)
{
	char remote[INET6_ADDRSTRLEN + 16] = "-", cert[8 + 65] = "-";
	const uint8_t *fp = client_cert(req);

	if (req->conn)
		http_format_peer(&req->conn->peer, remote, sizeof(remote));
	if (fp) {
		memcpy(cert, "sha256:", 7);
		auth_cert_hex(fp, cert + 7);
	}
	/* The fingerprint only where there is one: old log readers see old lines. */
	log_warn("request denied", "key", key, "reason", why, "method",
		 req->head ? "HEAD" : req->method, "path", req->url ? req->url : "-", "remote",
		 remote, fp ? "cert" : NULL, cert);
}

void http_auth_refused_cert(const struct http_conn *c)
{
	char remote[INET6_ADDRSTRLEN + 16] = "-", cert[8 + 65] = "-";
	const uint8_t *fp;
	const char *why = http_tls_refused(c->tls, &fp);

	http_format_peer(&c->peer, remote, sizeof(remote));
	if (fp) {
		memcpy(cert, "sha256:", 7);
		auth_cert_hex(fp, cert + 7);
	}
	log_warn("TLS client certificate refused", "reason", why ? why : "-", "remote", remote,
		 "cert", cert);
}

/* Whether req is a submit (POST /api/jobs or /api/pipelines) that k's rate
 * holds to. */
static bool rate_applies(const struct http_request *req, const struct auth_key *k)
{
	return k->submit_rate && !strcmp(req->method, "POST") && req->url &&
	       (!strcmp(req->url, "/api/jobs") || !strcmp(req->url, "/api/pipelines"));
}

/* A submit takes a token of its key's rate (auth_policy.c), or, when
 * take is false (its body is not decoded yet), only needs one to be there;
 * without one it is a 429 that says when to retry. */
static bool http_rate_allows(struct http_request *req, struct auth_key *k, bool take)
{
	char msg[160];
	unsigned wait;

	if (!rate_applies(req, k))
		return true;
	wait = take ? auth_policy_take(k, job_mono_ns()) : auth_policy_wait(k, job_mono_ns());
	if (!wait)
		return true;
	snprintf(msg, sizeof(msg),
		 "the API key \"%s\" may submit %u times a second (policy submit_rate) - try "
		 "again in %u s",
		 k->name, k->submit_rate, wait);
	http_denied(req, k->name, msg);
	req->retry_after = wait;
	http_request_error(req, 429, msg);
	return false;
}

/*
 * Who req is: the key of its verified client certificate, else of its
 * bearer token. NULL when neither makes it a key; then it has been
 * answered 401 and the denial logged.
 */
static const struct auth_key *request_key(struct http_server *srv, struct http_request *req)
{
	const char *token = bearer_token(req->authorization);
	const struct auth_key *key = token ? auth_keys_find(srv->keys, token) : NULL;
	const uint8_t *fp = client_cert(req);
	const struct auth_key *by_cert;

	/* RFC 6750 3.1: a 401's error code says that a token was sent and is
	 * refused; a request that sent none (or used another scheme) gets none. */
	req->bad_token = token && !key;
	if (!fp) {
		if (!key) {
			http_denied(req, "-", token ? "unknown token" : "no token");
			http_request_error(req, 401,
					   token ? "invalid API key"
						 : "an API key is required: "
						   "Authorization: Bearer TOKEN");
		}
		return key;
	}
	by_cert = auth_keys_find_cert(srv->keys, fp);
	if (!by_cert) {
		req->bad_token = token != NULL; /* it does not make the certificate a key */
		http_denied(req, key ? key->name : "-", "a client certificate of no API key");
		http_request_error(
		    req, 401, "the client certificate is no API key's (cert= of a key's line)");
		return NULL;
	}
	/*
	 * A token next to the certificate must be the same key's. One request
	 * is one key: taking either would let whoever holds one key's
	 * certificate and another's token choose whose scopes and work to use
	 * (and log the wrong name), and a mismatch is a stolen token or a
	 * misconfigured client - neither should go on quietly.
	 */
	if (token && key != by_cert) {
		req->bad_token = true;
		http_denied(
		    req, by_cert->name,
		    key ? "the bearer token is another API key's than the client certificate"
			: "unknown token next to a client certificate");
		http_request_error(
		    req, 401, "the bearer token and the client certificate are not of one API key");
		return NULL;
	}
	return by_cert;
}

/*
 * With API keys, a request needs a known token or client certificate with
 * the scope its method and path need (401 without one, 403 without the
 * scope); GET /api/status may stay open for health checks. A submit needs
 * a token of its key's rate to be there.
 */
enum http_auth_verdict http_auth_head(struct http_server *srv, struct http_request *req)
{
	const struct auth_key *key;
	char msg[128], scope[32];
	unsigned need;

	if (!srv->keys_path && !srv->keys_db)
		return HTTP_AUTH_OK;
	/* The dashboard's files hold no data; the page asks for a key. */
	if (!strcmp(req->method, "GET") && ui_path(req->url))
		return HTTP_AUTH_NO_KEY;
	if (srv->cfg->open_status && !strcmp(req->method, "GET") && req->url &&
	    !strcmp(req->url, "/api/status"))
		return HTTP_AUTH_NO_KEY;
	if (!srv->keys) { /* the database's, not read yet: not "unknown" */
		http_denied(req, "-", "API keys not read yet");
		http_request_error(req, 503,
				   "API keys not read yet: storage unavailable - try "
				   "again later");
		return HTTP_AUTH_DENIED;
	}
	if (!(key = request_key(srv, req)))
		return HTTP_AUTH_DENIED;
	need = auth_scope_needed(req->method, req->url ? req->url : "/");
	if (!(key->scopes & (need | AUTH_ADMIN))) {
		auth_scopes_format(need, scope, sizeof(scope));
		snprintf(msg, sizeof(msg), "the API key \"%s\" has no %s scope", key->name, scope);
		http_denied(req, key->name, msg);
		http_request_error(req, 403, msg);
		return HTTP_AUTH_DENIED;
	}
	snprintf(req->key_name, sizeof(req->key_name), "%s", key->name);
	req->key_admin = key->scopes & AUTH_ADMIN;
	req->owner = key->owner;
	req->policy = &key->policy;
	/* Only looked at: the token is taken once the submit decoded
	 * (http_request_take_submit()), and given back if it is refused. */
	return http_rate_allows(req, &srv->keys->keys[key - srv->keys->keys], false)
		   ? HTTP_AUTH_OK
		   : HTTP_AUTH_DENIED;
}

bool http_auth_allowed(struct http_server *srv, struct http_request *req)
{
	return http_auth_head(srv, req) != HTTP_AUTH_DENIED;
}

/* The key in use named as req's (the keys may have been read again since
 * it was decided), or NULL. */
static struct auth_key *request_rate_key(const struct http_request *req)
{
	const struct http_server *srv = req->srv;

	if (!srv || !srv->keys || !req->key_name[0])
		return NULL;
	for (size_t i = 0; i < srv->keys->n; i++)
		if (!strcmp(srv->keys->keys[i].name, req->key_name))
			return &srv->keys->keys[i];
	return NULL;
}

bool http_request_take_submit(struct http_request *req)
{
	struct auth_key *k = request_rate_key(req);

	if (!k || !rate_applies(req, k))
		return true;
	if (!http_rate_allows(req, k, true))
		return false;
	req->rate_taken = true;
	return true;
}

void http_request_give_back(struct http_request *req)
{
	struct auth_key *k;

	if (!req->rate_taken)
		return;
	req->rate_taken = false;
	if ((k = request_rate_key(req)))
		auth_policy_give_back(k);
}

/* keys (taken) in use from now on, each with its policy and owner. */
static int http_use_keys(struct http_server *srv, struct auth_keys *keys, const char *where,
			 char *err, size_t errlen)
{
	int rc = auth_cert_check(keys, err, errlen);

	if (rc < 0) {
		auth_keys_free(keys);
		return rc;
	}
	/* A key's name is the owner of the work it submits (and of nothing
	 * else: a key without an owner number would see everyone's). */
	for (size_t i = 0; i < keys->n; i++) {
		auth_policy_apply(&keys->keys[i], &srv->auth_default);
		keys->keys[i].owner = job_owner_id(keys->keys[i].name);
		if (!keys->keys[i].owner) {
			snprintf(err, errlen, "%s: no room for the owner \"%s\"", where,
				 keys->keys[i].name);
			auth_keys_free(keys);
			return -ENOMEM;
		}
	}
	auth_policy_carry(keys, srv->keys);
	auth_keys_free(srv->keys);
	srv->keys = keys;
	return 0;
}

static int http_load_keys(struct http_server *srv, char *err, size_t errlen)
{
	struct auth_keys *keys;
	int rc = auth_keys_load(srv->keys_path, &keys, err, errlen);

	return rc < 0 ? rc : http_use_keys(srv, keys, srv->keys_path, err, errlen);
}

/* The store's keys (store_keys_fn): new lines, or a read that failed. A
 * failure keeps the keys in use (never an open API), logged once. */
static void http_keys_from_db(void *arg, const char *lines, const char *error)
{
	static const char where[] = "the database's api_keys table";
	struct http_server *srv = arg;
	struct auth_keys *keys;
	char err[512], n[32], bad[32];
	size_t skipped;

	if (!lines) {
		snprintf(n, sizeof(n), "%zu", srv->keys ? srv->keys->n : 0);
		if (!srv->keys_failing)
			log_error("API keys cannot be read from the database: keeping the keys in "
				  "use",
				  "error", error, "keys", n);
		srv->keys_failing = true;
		return;
	}
	srv->keys_failing = false;
	if (auth_keys_parse(lines, where, &skipped, &keys, err, sizeof(err)) < 0 ||
	    http_use_keys(srv, keys, where, err, sizeof(err)) < 0) {
		log_error("API keys not read again: keeping the keys in use", "error", err);
		return;
	}
	if (skipped) {
		snprintf(bad, sizeof(bad), "%zu", skipped);
		log_error("API keys that do not parse left out (those keys are refused)", "keys",
			  bad, "first", err);
	}
	snprintf(n, sizeof(n), "%zu", srv->keys->n);
	log_info("API keys read", "table", "api_keys", "keys", n);
}

void http_auth_reload(struct http_server *srv)
{
	char err[512], n[32];

	if (!srv->keys_path)
		return; /* none, or the database's: read as they change */
	if (http_load_keys(srv, err, sizeof(err)) < 0) {
		log_error("API keys not read again: keeping the keys in use", "error", err);
		return;
	}
	snprintf(n, sizeof(n), "%zu", srv->keys->n);
	log_info("API keys read", "file", srv->keys_path, "keys", n);
}

static void http_keys_changed(struct ev_loop *loop, ev_stat *w, int revents)
{
	http_auth_reload(container_of(w, struct http_server, keys_watch));
}

void http_request_denied(struct http_request *req, const char *why)
{
	http_denied(req, req->key_name[0] ? req->key_name : "-", why);
}

int http_auth_start(struct http_server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;

	if (!config_auth_on(cfg))
		return 0;
	if (auth_policy_defaults(cfg, &srv->auth_default, err, errlen) < 0)
		return -EINVAL;
	if (config_keys_in_db(cfg)) {
		srv->keys_db = true;
		if (core_watch_keys(srv->core, http_keys_from_db, srv) == 0)
			return 0;
		snprintf(err, errlen, "auth_source = postgres: the storage keeps no API keys");
		return -EINVAL;
	}
	srv->keys_path = cfg->auth_keys;
	if (http_load_keys(srv, err, errlen) < 0)
		return -EINVAL;
	/* An edit, or `valetd key revoke` (a rename), takes effect now. */
	ev_stat_init(&srv->keys_watch, http_keys_changed, srv->keys_path, 0.);
	ev_stat_start(srv->loop, &srv->keys_watch);
	return 0;
}

void http_auth_stop(struct http_server *srv)
{
	if (srv->keys_path && ev_is_active(&srv->keys_watch))
		ev_stat_stop(srv->loop, &srv->keys_watch);
	if (srv->keys_db)
		core_watch_keys(srv->core, NULL, NULL);
	auth_keys_free(srv->keys);
	srv->keys = NULL;
	strv_free(srv->auth_default.own_tasks);
	srv->auth_default.own_tasks = NULL;
}
