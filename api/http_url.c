/*
 * http_url.c - a request target taken apart: its path and query, and query
 * parameters percent-decoded.
 *
 * Theory of operation: routing works on the path exactly as it was sent.
 * Nothing is percent-decoded before routing, so "/api/jobs%2F<id>" is one
 * segment that matches no route (a proxy that filters by path sees what
 * valetd routes on), and an id never contains an escaped character. Only
 * query parameter names and values are decoded ('+' is a space there, as
 * in HTML forms), one at a time when a handler asks for one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "../supervisor/job.h"
#include "http_url.h"

int http_url_split(const char *target, size_t len, char **path, char **query)
{
	struct http_parser_url u;
	const char *p;
	size_t plen;

	*path = *query = NULL;
	http_parser_url_init(&u);
	if (len == 0 || http_parser_parse_url(target, len, 0, &u) != 0)
		return -EINVAL;
	if (u.field_set & (1 << UF_PATH)) {
		p = target + u.field_data[UF_PATH].off;
		plen = u.field_data[UF_PATH].len;
	} else {
		p = "/"; /* "http://host" alone */
		plen = 1;
	}
	*path = strndup(p, plen);
	if (!*path)
		return -ENOMEM;
	if (u.field_set & (1 << UF_QUERY)) {
		*query = strndup(target + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
		if (!*query) {
			free(*path);
			*path = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

/* Decode s[0..len) into out (room for len + 1); a bad escape, and %00 (the
 * value is a C string), stay as they are. */
static size_t decode(const char *s, size_t len, char *out)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < len && (hi = job_hex_value(s[i + 1])) >= 0 &&
			   (lo = job_hex_value(s[i + 2])) >= 0 && (hi | lo) != 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return o;
}

int http_url_query_get(const char *query, const char *key, char **value)
{
	const char *p = query, *amp, *eq;
	size_t plen, klen, vlen;
	char *name;

	*value = NULL;
	if (!query)
		return -ENOENT;
	while (*p) {
		amp = strchr(p, '&');
		plen = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', plen);
		klen = eq ? (size_t)(eq - p) : plen;
		name = malloc(klen + 1);
		if (!name)
			return -ENOMEM;
		decode(p, klen, name);
		if (!strcmp(name, key)) {
			free(name);
			vlen = eq ? plen - klen - 1 : 0;
			*value = malloc(vlen + 1);
			if (!*value)
				return -ENOMEM;
			decode(eq ? eq + 1 : p + plen, vlen, *value);
			return 0;
		}
		free(name);
		if (!amp)
			break;
		p = amp + 1;
	}
	return -ENOENT;
}
