/*
 * http_origin.h - private to api/: what an Origin or a Host header names,
 * for the server's CORS, cross-origin and Host checks (http_origin.c).
 * Pure functions of their strings, so the unit test calls them as they are.
 */
#ifndef VALET_HTTP_ORIGIN_H
#define VALET_HTTP_ORIGIN_H

#include <stdbool.h>

/*
 * Whether host (a Host header's value: "name", "name:port", "1.2.3.4:port",
 * "[::1]:port") names this machine without a DNS answer an attacker could
 * choose: an IP address, "localhost" or a name under ".localhost" (which
 * browsers resolve to loopback themselves). Any case.
 */
bool http_origin_host_local(const char *host);
/*
 * Whether host's name (its port left out) is in list (NULL-terminated,
 * borrowed): an entry "*" is any name, ".example.com" is example.com and
 * every name under it, any other entry that name only. Any case.
 */
bool http_origin_host_listed(char *const *list, const char *host);
/*
 * Whether origin (an Origin header: "scheme://host[:port]") is http or
 * https on a loopback host: localhost, a name under .localhost,
 * 127.0.0.0/8 or [::1], any port.
 */
bool http_origin_loopback(const char *origin);
/* Whether origin's host[:port] is host (a Host header's value), any case. */
bool http_origin_same_host(const char *origin, const char *host);

/* A list of words split at spaces, tabs and commas: *list is new,
 * NULL-terminated (free with http_origin_list_free()). 0 or -ENOMEM. */
int http_origin_list(const char *spec, char ***list);
/* list: stolen; NULL is a no-op. */
void http_origin_list_free(char **list);

#endif
