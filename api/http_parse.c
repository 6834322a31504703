/*
 * http_parse.c - a request as its connection reads it: http-parser's
 * callbacks, and what a request may be.
 *
 * Theory of operation: http_conn.c hands what one read brings to
 * http_parse_execute() at once (the server's scratch buffer holds it only
 * for that), and the callbacks keep what valetd needs on the connection and
 * its request: the target, six headers (Origin, Host, Sec-Fetch-Site,
 * Expect, Authorization, If-None-Match; one sent twice counts as none;
 * trailing blanks are no part of a value) and the body, each against
 * its limit (http_internal.h, [server] max_body; the bodies of all
 * requests together, [server] max_body_memory: srv->body_memory counts their
 * buffers, a body of known length is given its whole buffer at once, and
 * one that does not fit is answered 503 - before it is sent when its
 * Content-Length says so). A callback that finds a
 * limit crossed records the answer (414, 431, 413, 505, 417) and stops the
 * parser; http_parse_error() says what any parse error is answered with (a
 * recorded one, else 431 or 400), and http_conn.c answers it with the JSON
 * error body and closes the connection.
 *
 * http-parser is built without HTTP_PARSER_STRICT, so it takes framing
 * that a proxy in front may read otherwise (request smuggling); what it
 * lets through is refused here, 400: a blank in a header field name
 * ("Transfer-Encoding : chunked" would be chunked), a header line that
 * continues the one before it (obs-fold, RFC 7230 3.2.4), and chunk data
 * not followed by CRLF (the parser takes any two bytes). The callbacks see
 * only the pieces, so the buffer being parsed is kept (c->exec_at), and
 * what lies before a value or after a chunk's data is looked at there, or,
 * at a buffer's start, in what the buffers before it ended with (carried
 * by http_parse_execute()).
 *
 * Once the head is in, the target is split into path and query and matched
 * against the routes (routes_match()). When a body follows, whether the
 * request may send it is decided then (http_auth_head(): with API keys, a
 * client without one is answered before its body is read, and the
 * connection closes after that answer; a body that needs no key is read
 * and not kept), and only then is an "Expect: 100-continue" answered, as
 * the client waits for it before it sends the body (without a body there
 * is nothing to invite). A complete request pauses the parser; what
 * becomes of it is http_conn.c's.
 * Every byte on the socket, the interim 100 too, goes through http_conn.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "http_url.h"

static struct http_conn *conn_of(http_parser *p)
{
	return p->data;
}

/* A callback's refusal: the answer is given once the parser stopped. */
static int conn_refuse(struct http_conn *c, unsigned status, const char *message)
{
	c->fail_status = status;
	snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", message);
	return -1;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Whether a header value that starts at at (in the buffer being parsed)
 * continues a line: only blanks lie between it and a line's end. */
static bool conn_obs_fold(const struct http_conn *c, const char *at)
{
	const char *q = at;

	while (q > c->exec_at && is_blank(q[-1]))
		q--;
	return q > c->exec_at ? q[-1] == '\n' : c->after_eol;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = conn_of(p);

	if (c->req) /* a request before the last one was answered */
		return conn_refuse(c, 400, "malformed request");
	c->req = http_request_new(c->srv, c);
	if (!c->req)
		return conn_refuse(c, 503, "out of memory");
	c->target_len = c->header_bytes = c->field_len = c->expect_len = 0;
	c->nheaders = 0;
	c->in_value = true; /* the first field starts a header */
	c->header = HDR_OTHER;
	c->after_eol = false;
	c->chunk_crlf = false;
	c->drop_body = false;
	c->body_dropped = c->body_length = 0;
	c->complete = false;
	if (c->state == HTTP_CONN_IDLE)
		http_conn_enter(c, HTTP_CONN_READING);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	struct http_request *req = c->req;
	char *url;

	if (len > HTTP_MAX_TARGET - c->target_len)
		return conn_refuse(c, 414, "request target too long (limit 8192 bytes)");
	url = realloc(req->url, c->target_len + len + 1);
	if (!url)
		return conn_refuse(c, 503, "out of memory");
	memcpy(url + c->target_len, at, len);
	c->target_len += len;
	url[c->target_len] = '\0';
	req->url = url;
	return 0;
}

static int header_bytes(struct http_conn *c, size_t len)
{
	c->header_bytes += len;
	if (c->header_bytes > HTTP_MAX_HEADER_BYTES || c->nheaders > HTTP_MAX_HEADERS)
		return conn_refuse(c, 431, "request headers too large (limit 16384 bytes, "
					   "100 lines)");
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);

	if (c->in_value) {
		c->in_value = false;
		c->nheaders++;
		c->field_len = 0;
	}
	/* "Transfer-Encoding : chunked" is no Transfer-Encoding to a proxy
	 * that reads field names as RFC 7230 3.2.4 says (it must refuse). */
	if (memchr(at, ' ', len) || memchr(at, '\t', len))
		return conn_refuse(c, 400, "malformed request: a blank in a header field name");
	for (size_t i = 0; i < len && c->field_len < sizeof(c->field) - 1; i++)
		c->field[c->field_len++] = (char)(at[i] | 0x20);
	c->field[c->field_len] = '\0';
	return header_bytes(c, len);
}

/* Where a header that valetd keeps goes, and its longest value (what goes
 * past it is not kept); NULL for the others. */
static char **conn_kept(struct http_conn *c, size_t *max)
{
	struct http_request *req = c->req;

	switch (c->header) {
	case HDR_ORIGIN:
		*max = HTTP_MAX_ORIGIN;
		return &req->origin;
	case HDR_AUTHORIZATION:
		*max = HTTP_MAX_AUTHORIZATION;
		return &req->authorization;
	case HDR_IF_NONE_MATCH:
		*max = HTTP_MAX_IF_NONE_MATCH;
		return &req->if_none_match;
	case HDR_HOST:
		*max = HTTP_MAX_HOST;
		return &req->host;
	case HDR_SEC_FETCH_SITE:
		*max = HTTP_MAX_SEC_FETCH_SITE;
		return &req->sec_fetch_site;
	default:
		return NULL;
	}
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	size_t have, max = 0;
	char **dst, *v;

	/* A line that continues the one before it (obs-fold): http-parser
	 * appends it to that header's value, a proxy may read it as a header
	 * of its own; RFC 7230 3.2.4 lets a server refuse it. (An empty value
	 * comes as no bytes where the next line starts: nothing to look at.) */
	if (len && conn_obs_fold(c, at))
		return conn_refuse(c, 400, "malformed request: a folded header line (obs-fold)");
	if (!c->in_value) {
		c->in_value = true;
		c->header = !strcmp(c->field, "origin")		 ? HDR_ORIGIN
			    : !strcmp(c->field, "expect")	 ? HDR_EXPECT
			    : !strcmp(c->field, "authorization") ? HDR_AUTHORIZATION
			    : !strcmp(c->field, "if-none-match") ? HDR_IF_NONE_MATCH
			    : !strcmp(c->field, "host")		 ? HDR_HOST
			    : !strcmp(c->field, "sec-fetch-site") ? HDR_SEC_FETCH_SITE
								 : HDR_OTHER;
		/* The same header twice: neither counts. */
		dst = conn_kept(c, &max);
		if (dst && *dst) {
			free(*dst);
			*dst = strdup("");
			c->header = HDR_OTHER;
		}
	}
	dst = conn_kept(c, &max);
	if (dst) {
		have = *dst ? strlen(*dst) : 0;
		if (have + len <= max) {
			v = realloc(*dst, have + len + 1);
			if (!v)
				return conn_refuse(c, 503, "out of memory");
			memcpy(v + have, at, len);
			v[have + len] = '\0';
			*dst = v;
		}
	} else if (c->header == HDR_EXPECT) {
		for (size_t i = 0; i < len && c->expect_len < sizeof(c->expect) - 1; i++)
			c->expect[c->expect_len++] = at[i];
		c->expect[c->expect_len] = '\0';
	}
	return header_bytes(c, len);
}

/* Whether a body follows the head: chunked, or a Content-Length above 0. */
static bool conn_has_body(const http_parser *p)
{
	return (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
}

/* A header value without its trailing blanks (OWS, RFC 7230 3.2: no part
 * of the value; http-parser drops only the leading ones). */
static void trim_ows(char *v, size_t *len)
{
	size_t n = v ? (len ? *len : strlen(v)) : 0;

	while (n && is_blank(v[n - 1]))
		v[--n] = '\0';
	if (len)
		*len = n;
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	struct http_request *req = c->req;
	struct http_server *srv = c->srv;
	char *path, *query;
	char msg[128];
	int rc;

	trim_ows(req->origin, NULL);
	trim_ows(req->authorization, NULL);
	trim_ows(req->if_none_match, NULL);
	trim_ows(req->host, NULL);
	trim_ows(req->sec_fetch_site, NULL);
	trim_ows(c->expect, &c->expect_len);

	if (p->http_major != 1)
		return conn_refuse(c, 505, "HTTP version not supported: use HTTP/1.1");
	if (!req->url || (rc = http_url_split(req->url, c->target_len, &path, &query)) == -EINVAL)
		return conn_refuse(c, 400, "malformed request target");
	if (rc < 0)
		return conn_refuse(c, 503, "out of memory");
	free(req->url);
	req->url = path;
	req->query = query;
	routes_match(req);
	if (p->method == HTTP_HEAD) {
		req->head = true;
		snprintf(req->method, sizeof(req->method), "GET");
	} else {
		snprintf(req->method, sizeof(req->method), "%s",
			 http_method_str((enum http_method)p->method));
	}
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > srv->cfg->max_body_bytes) {
		snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
			 srv->cfg->max_body_bytes);
		return conn_refuse(c, 413, msg);
	}
	if (c->expect_len && strcasecmp(c->expect, "100-continue") != 0)
		return conn_refuse(c, 417, "unsupported Expect header");
	if (!conn_has_body(p))
		return 0; /* decided once complete, the connection kept */
	/* Who may send a body is decided before it is read: a refusal is
	 * answered now, and the connection closes after it. */
	switch (http_auth_head(srv, req)) {
	case HTTP_AUTH_DENIED:
		return conn_refuse(c, req->status, "refused before its body");
	case HTTP_AUTH_NO_KEY:
		c->drop_body = true;
		break;
	case HTTP_AUTH_OK:
		break;
	}
	/* A body that will not fit beside the others held now: refused before
	 * it is sent (a chunked one, when it grows too large). */
	if (p->flags & F_CONTENTLENGTH)
		c->body_length = (size_t)p->content_length;
	if (!c->drop_body && c->body_length + 1 > srv->cfg->max_body_memory - srv->body_memory)
		return conn_refuse(c, 503, HTTP_BODIES_FULL);
	/* The client waits for this before it sends the body. */
	if (c->expect_len && p->http_minor >= 1 &&
	    http_conn_send_interim(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
		return conn_refuse(c, 503, "cannot send 100 Continue");
	return 0;
}

static int on_chunk_header(http_parser *p)
{
	struct http_conn *c = conn_of(p);

	c->chunk_left = p->content_length; /* 0: the last chunk, no data */
	c->chunk_crlf = false;
	return 0;
}

/* A piece of a chunk's data: where the last piece ends, its CRLF follows. */
static void conn_chunk_data(struct http_conn *c, const char *at, size_t len)
{
	c->chunk_left -= len < c->chunk_left ? len : c->chunk_left;
	if (c->chunk_left)
		return;
	c->chunk_crlf = true;
	c->chunk_end = at + len;
	c->chunk_tail_n = 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	struct http_request *req = c->req;
	struct http_server *srv = c->srv;
	size_t max = srv->cfg->max_body_bytes, cap;
	char msg[128], *b;

	if (p->flags & F_CHUNKED)
		conn_chunk_data(c, at, len);
	if (len > max - (c->drop_body ? c->body_dropped : req->body_len)) {
		snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)", max);
		return conn_refuse(c, 413, msg);
	}
	if (c->drop_body) {
		c->body_dropped += len;
		return 0;
	}
	if (req->body_len + len + 1 > req->body_cap) {
		/* The whole body at once when its length is known (it was checked
		 * against max_body); else doubling, up to max_body's room. */
		cap = req->body_cap ? req->body_cap : 1024;
		while (cap < req->body_len + len + 1)
			cap *= 2;
		if (c->body_length >= req->body_len + len)
			cap = c->body_length + 1;
		else if (cap > max + 1)
			cap = max + 1;
		if (cap - req->body_cap > srv->cfg->max_body_memory - srv->body_memory)
			return conn_refuse(c, 503, HTTP_BODIES_FULL);
		b = realloc(req->body, cap);
		if (!b)
			return conn_refuse(c, 503, "out of memory");
		srv->body_memory += cap - req->body_cap;
		req->body = b;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, at, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
	return 0;
}

/* The parser took the two bytes after a chunk's data (whatever they were):
 * they must be CRLF. They are at c->chunk_end in this buffer, or some in
 * c->chunk_tail and the rest at this buffer's start. */
static int on_chunk_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	char crlf[2];
	unsigned k;

	if (!c->chunk_crlf)
		return 0; /* the last chunk */
	c->chunk_crlf = false;
	if (c->chunk_end) {
		memcpy(crlf, c->chunk_end, 2);
	} else {
		memcpy(crlf, c->chunk_tail, c->chunk_tail_n);
		for (k = c->chunk_tail_n; k < 2; k++)
			crlf[k] = c->exec_at[k - c->chunk_tail_n];
	}
	if (crlf[0] != '\r' || crlf[1] != '\n')
		return conn_refuse(c, 400, "malformed request: chunk data not followed by CRLF");
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);

	c->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings conn_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
	.on_chunk_header = on_chunk_header,
	.on_chunk_complete = on_chunk_complete,
};

size_t http_parse_execute(struct http_conn *c, const char *data, size_t len)
{
	const char *q, *from;
	size_t n;

	if (!len) /* end of stream: no bytes, and no callback that reads any */
		return http_parser_execute(&c->parser, &conn_settings, data, len);
	c->exec_at = data;
	c->chunk_end = NULL;
	n = http_parser_execute(&c->parser, &conn_settings, data, len);
	/* What the next buffer's checks need of this one, which is gone then:
	 * whether it ended a line and blanks, and the bytes after a chunk's
	 * data that still wait for the rest of their CRLF. */
	for (q = data + n; q > data && is_blank(q[-1]); q--)
		;
	if (q > data)
		c->after_eol = q[-1] == '\n';
	if (c->chunk_crlf) {
		from = c->chunk_end ? c->chunk_end : data;
		while (from < data + n && c->chunk_tail_n < 2)
			c->chunk_tail[c->chunk_tail_n++] = *from++;
	}
	c->chunk_end = NULL;
	c->exec_at = NULL;
	return n;
}

unsigned http_parse_error(const struct http_conn *c, enum http_errno err, char *msg, size_t cap)
{
	if (c->fail_status) {
		snprintf(msg, cap, "%s", c->fail_msg);
		return c->fail_status;
	}
	switch (err) {
	case HPE_HEADER_OVERFLOW:
		snprintf(msg, cap, "request headers too large (limit 16384 bytes, 100 lines)");
		return 431;
	case HPE_INVALID_CONTENT_LENGTH:
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		snprintf(msg, cap, "invalid Content-Length");
		return 400;
	case HPE_INVALID_EOF_STATE:
		snprintf(msg, cap, "incomplete request: the client closed its side");
		return 400;
	default:
		snprintf(msg, cap, "malformed request: %s", http_errno_description(err));
		return 400;
	}
}
