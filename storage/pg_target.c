/*
 * pg_target.c - where the database of a libpq connection string lives
 * (store_pg_targets, see store.h), for the sandbox: jobs must reach neither
 * its unix socket nor its host.
 *
 * Theory of operation: libpq itself parses the URL or key=value string
 * (PQconninfoParse), so every form it accepts is understood the same way:
 * host may be a comma-separated list, each a host name, an address or (a
 * leading '/') a socket directory; hostaddr lists addresses. Without any,
 * libpq uses PGHOST, then its built-in socket directory: Debian's
 * /var/run/postgresql, elsewhere /tmp (jobs have their own /tmp: nothing to
 * hide there). An
 * abstract socket ('@') lives in a network namespace, where jobs are not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pq.h"
#include "store.h"

static int pgt_add(char ***list, size_t *n, const char *s, size_t len)
{
	char **l;

	for (size_t i = 0; i < *n; i++)
		if (strlen((*list)[i]) == len && !strncmp((*list)[i], s, len))
			return 0;
	l = realloc(*list, (*n + 2) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	*list = l;
	if (!(l[*n] = strndup(s, len)))
		return -ENOMEM;
	l[++*n] = NULL;
	return 0;
}

/* Each element of a comma-separated list. */
static int pgt_split(const char *v, char ***dirs, size_t *nd, char ***hosts, size_t *nh)
{
	int rc = 0;

	while (v && *v && rc == 0) {
		size_t len = strcspn(v, ",");

		if (len && v[0] == '/')
			rc = pgt_add(dirs, nd, v, len);
		else if (len && v[0] != '@')
			rc = pgt_add(hosts, nh, v, len);
		v += len + (v[len] == ',');
	}
	return rc;
}

static void pgt_free(char **l)
{
	for (char **p = l; p && *p; p++)
		free(*p);
	free(l);
}

int store_pg_targets(const char *url, char ***dirs_out, char ***hosts_out, char *err,
		     size_t errlen)
{
	static const char *const defaults[] = {"/var/run/postgresql", "/run/postgresql", NULL};
	char **dirs = NULL, **hosts = NULL, *msg = NULL;
	size_t nd = 0, nh = 0;
	PQconninfoOption *opts;
	bool any = false;
	int rc = 0;

	if (pq_load(err, errlen) < 0)
		return -ENOENT;
	opts = PQconninfoParse(url ? url : "", &msg);
	if (!opts) {
		snprintf(err, errlen, "database_url: %s", msg ? msg : "out of memory");
		if (msg)
			PQfreemem(msg);
		return -EINVAL;
	}
	for (PQconninfoOption *o = opts; o->keyword && rc == 0; o++) {
		if (!o->val || !o->val[0])
			continue;
		if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr")) {
			rc = pgt_split(o->val, &dirs, &nd, &hosts, &nh);
			any = true;
		}
	}
	PQconninfoFree(opts);
	if (rc == 0 && !any && getenv("PGHOST") && getenv("PGHOST")[0])
		rc = pgt_split(getenv("PGHOST"), &dirs, &nd, &hosts, &nh);
	else if (rc == 0 && !any)
		for (const char *const *d = defaults; *d && rc == 0; d++)
			rc = pgt_add(&dirs, &nd, *d, strlen(*d));
	if (rc < 0) {
		pgt_free(dirs);
		pgt_free(hosts);
		snprintf(err, errlen, "database_url: %s", strerror(-rc));
		return rc;
	}
	*dirs_out = dirs;
	*hosts_out = hosts;
	return 0;
}
