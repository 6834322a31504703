/*
 * http_url.h - private to api/: a request target's path and query, and
 * query parameters decoded.
 */
#ifndef VALET_HTTP_URL_H
#define VALET_HTTP_URL_H

#include <stddef.h>

/*
 * Split a request target (origin form "/p?q" or absolute form
 * "http://h/p?q") into its path and its query, both as sent (not decoded;
 * the query without '?', the fragment dropped). *path and *query are new;
 * *query is NULL when there is none. 0, -EINVAL or -ENOMEM.
 */
int http_url_split(const char *target, size_t len, char **path, char **query);
/*
 * The first parameter named key in query (borrowed; NULL is none), decoded:
 * *value is new. 0, -ENOENT when absent, or -ENOMEM.
 */
int http_url_query_get(const char *query, const char *key, char **value);

#endif
