/*
 * pg_target.c - where the database of a libpq connection string lives
 * (store_pg_targets, see postgres.h), for the sandbox: jobs must reach neither
 * its unix socket nor its host.
 *
 * Theory of operation: libpq itself parses the URL or key=value string
 * (PQconninfoParse), so every form it accepts is understood the same way:
 * host may be a comma-separated list, each a host name, an address or (a
 * leading '/') a socket directory; hostaddr lists addresses. What the
 * string does not give, libpq takes from PGHOST and PGHOSTADDR; without
 * either (or for an empty item of host) it uses its built-in socket
 * directory: Debian's /var/run/postgresql, elsewhere /tmp (jobs have their
 * own /tmp: nothing to hide there). An abstract socket ('@') lives in a
 * network namespace, where jobs are not.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "../supervisor/strv.h"
#include "postgres.h"

/* Each element of a comma-separated list. An empty element is libpq's
 * default socket directory: *empty becomes true. */
static int pgt_split(const char *v, char ***dirs, size_t *nd, char ***hosts, size_t *nh,
		     bool *empty)
{
	int rc = 0;

	if (!v)
		return 0;
	while (*v && rc == 0) {
		size_t len = strcspn(v, ",");

		if (len && v[0] == '/')
			rc = strv_add_unique(dirs, nd, v, len);
		else if (len && v[0] != '@')
			rc = strv_add_unique(hosts, nh, v, len);
		else if (!len)
			*empty = true;
		v += len + (v[len] == ',');
		if (!*v && v[-1] == ',')
			*empty = true; /* "a," */
	}
	return rc;
}

int store_pg_targets(const char *url, char ***dirs_out, char ***hosts_out, char *err,
		     size_t errlen)
{
	static const char *const defaults[] = {"/var/run/postgresql", "/run/postgresql", NULL};
	char **dirs = NULL, **hosts = NULL, *msg = NULL;
	const char *host = NULL, *hostaddr = NULL;
	size_t nd = 0, nh = 0;
	PQconninfoOption *opts;
	bool empty = false;
	int rc = 0;

	opts = PQconninfoParse(url ? url : "", &msg);
	if (!opts) {
		/* libpq's messages end with a newline; a sentence does not. Some
		 * quote a part of the string, which may hold the password: then
		 * it is not repeated. */
		if (msg && (strchr(msg, '@') || strstr(msg, "password")))
			snprintf(err, errlen, "database_url: libpq cannot parse it (its message "
					      "is not repeated: it quotes the string)");
		else
			snprintf(err, errlen, "database_url: %.*s",
				 msg ? (int)strcspn(msg, "\n") : 13, msg ? msg : "out of memory");
		if (msg)
			PQfreemem(msg);
		return -EINVAL;
	}
	/*
	 * As libpq connects: host and hostaddr each from the string when given
	 * there, even empty, else from PGHOST and PGHOSTADDR; an empty item of
	 * host, or no host nor hostaddr at all, is the default socket
	 * directory. (This used to read PGHOST only when the string had
	 * neither, never PGHOSTADDR, and skipped empty items: the database's
	 * address or default socket could stay within the jobs' reach.) The
	 * host names that come with a hostaddr only name it; they are kept
	 * from jobs all the same.
	 */
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!strcmp(o->keyword, "host"))
			host = o->val ? o->val : getenv("PGHOST");
		else if (!strcmp(o->keyword, "hostaddr"))
			hostaddr = o->val ? o->val : getenv("PGHOSTADDR");
	}
	rc = pgt_split(host, &dirs, &nd, &hosts, &nh, &empty);
	if (rc == 0)
		rc = pgt_split(hostaddr, &dirs, &nd, &hosts, &nh, &empty);
	if (rc == 0 && (empty || ((!host || !host[0]) && (!hostaddr || !hostaddr[0]))))
		for (const char *const *d = defaults; *d && rc == 0; d++)
			rc = strv_add_unique(&dirs, &nd, *d, strlen(*d));
	PQconninfoFree(opts); /* host and hostaddr may point into it */
	if (rc < 0) {
		strv_free(dirs);
		strv_free(hosts);
		snprintf(err, errlen, "database_url: %s", strerror(-rc));
		return rc;
	}
	*dirs_out = dirs;
	*hosts_out = hosts;
	return 0;
}
