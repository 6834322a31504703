/*
 * http_origin.c - which browsers' requests the API serves: the Host check
 * against DNS rebinding, the cross-origin protection of writes, and CORS.
 *
 * Theory of operation: any web page the user visits can make the user's
 * browser send requests to valetd, to a loopback valetd too. Three rules,
 * decided from the request's head before any API key is looked at
 * (http_request_ready()), keep such a page out:
 *
 *   - Host ([server] allowed_hosts). A page on attacker.example whose name
 *     the attacker then resolves to 127.0.0.1 (DNS rebinding) is
 *     same-origin with valetd as far as the browser knows, so CORS never
 *     applies; only its Host header, attacker.example, gives it away. So
 *     while the API is open (no keys) on a loopback address, valetd answers
 *     only to a Host that no DNS answer can make: an IP address, localhost
 *     or a name under .localhost (browsers resolve those to loopback
 *     themselves) - Vite's and Jupyter's rule. allowed_hosts adds names (a
 *     reverse proxy that passes its own Host); once set it applies on any
 *     address and with keys too, and "*" turns the check off. A request
 *     without a Host header is no browser's and goes on.
 *   - Cross-origin writes (Go 1.25's net/http.CrossOriginProtection). A
 *     "simple" cross-origin POST (an HTML form, text/plain) is sent without
 *     a preflight, so CORS alone does not stop it; valetd takes any
 *     Content-Type. Every method but GET, HEAD and OPTIONS is refused when
 *     the browser says the request is cross-origin - Sec-Fetch-Site other
 *     than same-origin or none, or, without that header, an Origin whose
 *     host[:port] is not the Host - unless its Origin is an allowed one
 *     (below). A request with neither header is not a browser's (curl,
 *     valet(1), any script) and goes on, whatever its Content-Type.
 *   - CORS ([server] cors_origins): the origins whose pages may read
 *     answers, and write. A list names them and "*" is every origin; empty
 *     (automatic) is, while listening on loopback, the loopback origins -
 *     http and https on localhost, *.localhost, 127.0.0.0/8 or [::1], any
 *     port: a local front end in development works, another site does not
 *     - and elsewhere none. An allowed origin gets Access-Control-Allow-
 *     Origin (itself, with Vary: Origin, but for "*"); its preflight gets
 *     the methods the routes have and the headers clients send
 *     (Authorization, Content-Type, If-None-Match).
 *
 * Each refusal is a 403 with the JSON error body, logged once as a
 * "request denied" line saying why.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "http_origin.h"

#define HTTP_ORIGIN_SEPS " \t,"

/* ---- what a header names ------------------------------------------------ */

/* "", or a port of at most 5 digits (RFC 3986's port may be empty). */
static bool port_ok(const char *p)
{
	size_t n = strspn(p, "0123456789");

	return n <= 5 && p[n] == '\0';
}

/* The name in "name[:port]" ("[v6]" with its brackets): its length in *len,
 * or NULL when what follows the name is no port. */
static const char *host_name(const char *host, size_t *len)
{
	const char *end;

	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return NULL;
		end++;
	} else {
		end = host + strcspn(host, ":");
	}
	if (*end == ':' ? !port_ok(end + 1) : *end != '\0')
		return NULL;
	*len = (size_t)(end - host);
	return *len ? host : NULL;
}

/* Whether name (len bytes) is an IPv4 address or a bracketed IPv6 one;
 * *loopback: whether it is a loopback address. */
static bool name_ip(const char *name, size_t len, bool *loopback)
{
	char buf[INET6_ADDRSTRLEN + 2];
	struct in6_addr a6;
	struct in_addr a4;

	if (len >= sizeof(buf))
		return false;
	if (name[0] == '[') {
		if (len < 3 || name[len - 1] != ']')
			return false;
		memcpy(buf, name + 1, len - 2);
		buf[len - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return false;
		*loopback = IN6_IS_ADDR_LOOPBACK(&a6);
		return true;
	}
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a4) != 1)
		return false;
	*loopback = (ntohl(a4.s_addr) >> 24) == 127;
	return true;
}

/* Whether name (len bytes) is localhost or a host name under .localhost. */
static bool name_localhost(const char *name, size_t len)
{
	static const char lh[] = "localhost";
	const size_t n = sizeof(lh) - 1;

	if (len < n || strncasecmp(name + len - n, lh, n) != 0)
		return false;
	if (len == n)
		return true;
	if (name[len - n - 1] != '.' || name[0] == '.')
		return false;
	for (size_t i = 0; i < len - n - 1; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		      (ch == '.' && name[i + 1] != '.')))
			return false;
	}
	return true;
}

bool http_origin_host_local(const char *host)
{
	bool loopback;
	size_t len = 0;
	const char *name = host ? host_name(host, &len) : NULL;

	return name && (name_ip(name, len, &loopback) || name_localhost(name, len));
}

bool http_origin_host_listed(char *const *list, const char *host)
{
	size_t len = 0, elen;
	const char *name = host ? host_name(host, &len) : NULL;

	for (; name && list && *list; list++) {
		const char *e = *list;

		elen = strlen(e);
		if (!strcmp(e, "*"))
			return true;
		if (e[0] == '.' && elen > 1) {
			if ((len == elen - 1 && !strncasecmp(name, e + 1, len)) ||
			    (len > elen && !strncasecmp(name + len - elen, e, elen)))
				return true;
		} else if (len == elen && !strncasecmp(name, e, len)) {
			return true;
		}
	}
	return false;
}

bool http_origin_loopback(const char *origin)
{
	bool loopback = false;
	const char *authority, *name;
	size_t len = 0;

	if (!origin)
		return false;
	if (!strncasecmp(origin, "http://", 7))
		authority = origin + 7;
	else if (!strncasecmp(origin, "https://", 8))
		authority = origin + 8;
	else
		return false;
	name = host_name(authority, &len);
	return name && ((name_ip(name, len, &loopback) && loopback) || name_localhost(name, len));
}

bool http_origin_same_host(const char *origin, const char *host)
{
	const char *authority = origin ? strstr(origin, "://") : NULL;

	return authority && authority != origin && host && authority[3] &&
	       !strcasecmp(authority + 3, host);
}

int http_origin_list(const char *spec, char ***list)
{
	const char *p = spec ? spec : "";
	char **words = calloc(strlen(p) / 2 + 2, sizeof(*words));
	size_t n = 0, len;

	if (!words)
		return -ENOMEM;
	while (*p) {
		p += strspn(p, HTTP_ORIGIN_SEPS);
		len = strcspn(p, HTTP_ORIGIN_SEPS);
		if (!len)
			break;
		words[n] = strndup(p, len);
		if (!words[n++]) {
			http_origin_list_free(words);
			return -ENOMEM;
		}
		p += len;
	}
	*list = words;
	return 0;
}

void http_origin_list_free(char **list)
{
	for (char **w = list; w && *w; w++)
		free(*w);
	free(list);
}

/* ---- the server's rules ------------------------------------------------- */

static bool list_has(char *const *list, const char *word)
{
	for (; list && *list; list++)
		if (!strcmp(*list, word))
			return true;
	return false;
}

int http_origin_setup(struct http_server *srv, bool loopback)
{
	const struct config *cfg = srv->cfg;

	if (http_origin_list(cfg->cors_origins, &srv->cors_origins) < 0 ||
	    http_origin_list(cfg->allowed_hosts, &srv->allowed_hosts) < 0)
		return -ENOMEM;
	if (srv->cors_origins[0])
		srv->cors = list_has(srv->cors_origins, "*") ? HTTP_CORS_ANY : HTTP_CORS_LIST;
	else
		srv->cors = loopback ? HTTP_CORS_LOOPBACK : HTTP_CORS_NONE;
	if (srv->allowed_hosts[0])
		srv->host_check = !list_has(srv->allowed_hosts, "*");
	else
		srv->host_check = loopback && !config_auth_on(cfg);
	return 0;
}

void http_origin_free(struct http_server *srv)
{
	http_origin_list_free(srv->cors_origins);
	http_origin_list_free(srv->allowed_hosts);
	srv->cors_origins = srv->allowed_hosts = NULL;
}

const char *http_cors_allow(const struct http_server *srv, const char *origin)
{
	if (!origin || !origin[0])
		return NULL;
	switch (srv->cors) {
	case HTTP_CORS_ANY:
		return "*";
	case HTTP_CORS_LOOPBACK:
		return http_origin_loopback(origin) ? origin : NULL;
	case HTTP_CORS_LIST:
		return list_has(srv->cors_origins, origin) ? origin : NULL;
	default:
		return NULL;
	}
}

size_t http_cors_headers(const struct http_server *srv, const struct http_request *req, char *buf,
			 size_t len)
{
	const char *allow = http_cors_allow(srv, req->origin);
	/* The answer depends on the Origin unless every origin gets the same. */
	const char *vary = srv->cors == HTTP_CORS_LIST || srv->cors == HTTP_CORS_LOOPBACK
			       ? "Vary: Origin\r\n"
			       : "";
	int n;

	/* The methods the routes have; the request headers a client sets
	 * (Origin and Content-Length are the browser's own). */
	if (allow && req->preflight)
		n = snprintf(
		    buf, len,
		    "Access-Control-Allow-Origin: %s\r\n"
		    "Access-Control-Allow-Methods: GET,HEAD,POST,PATCH,DELETE\r\n"
		    "Access-Control-Allow-Headers: Authorization,Content-Type,If-None-Match\r\n"
		    "Access-Control-Max-Age: 43200\r\n%s",
		    allow, vary);
	else if (allow)
		n = snprintf(buf, len, "Access-Control-Allow-Origin: %s\r\n%s", allow, vary);
	else
		n = snprintf(buf, len, "%s", vary);
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

/* Refuse req with 403 and why, logged once. */
static bool refuse(struct http_request *req, const char *why)
{
	http_request_denied(req, why);
	http_request_error(req, 403, why);
	return false;
}

/* Whether req's Host may be answered (see the top of the file). */
static bool host_allowed(const struct http_server *srv, const struct http_request *req)
{
	return !srv->host_check || !req->host || http_origin_host_local(req->host) ||
	       http_origin_host_listed(srv->allowed_hosts, req->host);
}

/* Whether req writes from another origin, as its browser says
 * (CrossOriginProtection.Check()). */
static bool cross_origin_write(const struct http_request *req)
{
	const char *site = req->sec_fetch_site;

	/* HEAD is routed as GET. */
	if (!strcmp(req->method, "GET") || !strcmp(req->method, "OPTIONS"))
		return false;
	if (site && site[0])
		return strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0;
	/* No Sec-Fetch-Site (a browser before 2023): the Origin tells. */
	return req->origin && req->origin[0] && !http_origin_same_host(req->origin, req->host);
}

bool http_origin_allowed(struct http_server *srv, struct http_request *req)
{
	char why[400];

	if (!host_allowed(srv, req)) {
		if (srv->allowed_hosts[0])
			snprintf(why, sizeof(why),
				 "host \"%.200s\" is not allowed: not in [server] allowed_hosts "
				 "(IP addresses, localhost and *.localhost always are)",
				 req->host);
		else
			snprintf(why, sizeof(why),
				 "host \"%.200s\" is not allowed: an open API on a loopback "
				 "address answers only to IP addresses, localhost and *.localhost "
				 "(DNS rebinding); name it in [server] allowed_hosts",
				 req->host);
		return refuse(req, why);
	}
	if (cross_origin_write(req) && !http_cors_allow(srv, req->origin)) {
		if (req->origin && req->origin[0])
			snprintf(why, sizeof(why),
				 "cross-origin %s from \"%.200s\" refused: the origin is not "
				 "allowed ([server] cors_origins)",
				 req->method, req->origin);
		else
			snprintf(why, sizeof(why),
				 "cross-origin %s refused (Sec-Fetch-Site: %.40s) without an "
				 "allowed Origin ([server] cors_origins)",
				 req->method, req->sec_fetch_site);
		return refuse(req, why);
	}
	return true;
}
