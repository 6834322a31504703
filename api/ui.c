/*
 * ui.c - the web dashboard: the files of api/ui/ at /ui/.
 *
 * Theory of operation: the dashboard is a static page (HTML, CSS, plain
 * JavaScript) that works over the HTTP JSON API from the browser, as any
 * client does; valetd only hands out its files. The Makefile embeds them
 * ($(BUILD)/gen/ui_files.c: bytes, Content-Type, an ETag from their
 * SHA-256), so the daemon reads no file at run time and the page is always
 * the one built with it.
 *
 * The files hold no data, so they are served without an API key (the page
 * asks for one when the API answers 401). Each answer says how a browser
 * may use it: a Content-Security-Policy that allows scripts, styles, images
 * and requests from this origin only - no inline script, no eval, no other
 * host, no frame around it, no form submission (the token form is handled
 * by the script, so a token never ends up in a URL) -, nosniff, and
 * no-cache with the ETag, so a browser asks again each time and gets a 304
 * while the file is the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "ui.h"

#define UI_PREFIX "/ui"

/* What every answer with a file carries besides its type and ETag. */
#define UI_POLICY                                                                                  \
	"Cache-Control: no-cache\r\n"                                                              \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "       \
	"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "                \
	"frame-ancestors 'none'\r\n"                                                               \
	"X-Content-Type-Options: nosniff\r\n"                                                      \
	"X-Frame-Options: DENY\r\n"                                                                \
	"Referrer-Policy: no-referrer\r\n"                                                         \
	"Cross-Origin-Opener-Policy: same-origin\r\n"                                              \
	"Cross-Origin-Resource-Policy: same-origin\r\n"

bool ui_path(const char *path)
{
	size_t n = strlen(UI_PREFIX);

	return path && !strncmp(path, UI_PREFIX, n) && (path[n] == '\0' || path[n] == '/');
}

static const struct ui_file *ui_find(const char *name)
{
	const struct ui_file *f;

	if (!name[0])
		name = "index.html";
	for (f = ui_files; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/* Whether an If-None-Match value names etag (or is "*"): RFC 9110 13.1.2,
 * weak comparison. */
static bool ui_etag_matches(const char *if_none_match, const char *etag)
{
	const char *p = if_none_match;
	size_t len = strlen(etag);

	while (p && *p) {
		p += strspn(p, " \t,");
		if (*p == '*')
			return true;
		if (!strncmp(p, "W/", 2))
			p += 2;
		if (!strncmp(p, etag, len) && (p[len] == '\0' || strchr(" \t,", p[len])))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

static void ui_answer_file(struct http_request *req, const struct ui_file *f)
{
	bool same = ui_etag_matches(req->if_none_match, f->etag);
	char *body = NULL;

	if (asprintf(&req->resp_headers, "%s%s%sETag: %s\r\n" UI_POLICY,
		     same ? "" : "Content-Type: ", same ? "" : f->type, same ? "" : "\r\n",
		     f->etag) < 0) {
		req->resp_headers = NULL;
		goto fail;
	}
	if (same) {
		http_request_answer(req, 304, NULL, 0);
		return;
	}
	body = malloc(f->len ? f->len : 1);
	if (!body)
		goto fail;
	memcpy(body, f->data, f->len);
	http_request_answer(req, 200, body, f->len);
	return;
fail:
	free(req->resp_headers);
	req->resp_headers = NULL;
	http_request_error(req, 500, "out of memory");
}

void ui_serve(struct http_request *req)
{
	const char *rest = req->url + strlen(UI_PREFIX);
	const struct ui_file *f;

	if (strcmp(req->method, "GET") != 0) {
		http_request_error(req, 404, "not found");
		return;
	}
	if (!rest[0]) {
		/* /ui: the page's relative links need the slash. */
		req->resp_headers = strdup("Location: /ui/\r\n");
		if (!req->resp_headers) {
			http_request_error(req, 500, "out of memory");
			return;
		}
		http_request_answer(req, 308, NULL, 0);
		return;
	}
	f = ui_find(rest + 1);
	if (!f) {
		http_request_error(req, 404, "not found");
		return;
	}
	ui_answer_file(req, f);
}
