/*
 * ui.h - private to api/: the web dashboard's files (api/ui/), built into
 * valetd, and their answers at /ui/ (ui.c).
 */
#ifndef VALET_UI_H
#define VALET_UI_H

#include <stdbool.h>
#include <stddef.h>

struct http_request;

/* One file of api/ui/, as the Makefile embeds it ($(BUILD)/gen/ui_files.c). */
struct ui_file {
	const char *name; /* "index.html", "app.js": the part after /ui/ */
	const char *type; /* its Content-Type */
	const char *etag; /* a quoted strong ETag: the start of its SHA-256 */
	const unsigned char *data;
	size_t len;
};

/* Every file, ended by an entry whose name is NULL (generated). */
extern const struct ui_file ui_files[];

/* Whether path (as sent, no query) is the dashboard's: /ui or under /ui/. */
bool ui_path(const char *path);
/* Answer a request for a ui_path(): the file, 304, a redirect or 404. */
void ui_serve(struct http_request *req);

#endif
