/*
 * hidden.c - the directories no job may see (see hidden.h).
 *
 * Theory of operation: valetd's secrets are files - its configuration (a
 * database password, later API keys), the environment file systemd hands
 * it, the database's unix socket - and jobs must not read or reach them.
 * The spawner lays an empty directory over each *directory* that holds them
 * (sandbox/sbx_view.c): a mount over a file is detached when an editor
 * replaces the file by rename, a mount over its directory is not. That
 * directory then must not be one jobs need, nor hold an exec task's
 * program: hidden_check() refuses such a configuration at startup, with the
 * reason.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hidden.h"
#include "strv.h"

/* Directories every job needs (programs, libraries, /etc itself). */
static const char *const hidden_needed[] = {
    "/",     "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/usr",  "/etc", "/var",  "/dev", "/proc",  NULL,
};

static bool hidden_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return path[0] == '/';
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

int hidden_check_list(const char *label, const char *list, char *msg, size_t msglen)
{
	const char *p = list;

	while (*p) {
		size_t len;
		bool bad;

		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if (!len)
			break;
		bad = p[0] != '/' || len == 1 || len >= PATH_MAX;
		/* No empty components either: hidden_check() compares the
		 * entries with "/", "/usr", ... as strings, and "/usr/" or "//"
		 * went through it to hide /usr or / from every job. */
		for (size_t i = 0; !bad && i < len; i++)
			bad = p[i] == '/' &&
			      (p[i + 1] == '/' || i + 1 == len ||
			       (p[i + 1] == '.' &&
				(p[i + 2] == '/' || i + 2 == len ||
				 (p[i + 2] == '.' && (p[i + 3] == '/' || i + 3 == len)))));
		if (bad) {
			snprintf(msg, msglen,
				 "%s: \"%.*s\" is not an absolute directory path (no . or .. "
				 "components, no // or trailing /, not /)",
				 label, (int)(len > 200 ? 200 : len), p);
			return -EINVAL;
		}
		p += len;
	}
	return 0;
}

/* The directory of path, absolute and real (NULL on error). */
static char *hidden_dir_of(const char *path)
{
	char *copy = strdup(path), *slash, *real;

	if (!copy)
		return NULL;
	slash = strrchr(copy, '/');
	if (!slash)
		strcpy(copy, ".");
	else if (slash == copy)
		slash[1] = '\0';
	else
		*slash = '\0';
	real = realpath(copy, NULL);
	free(copy);
	return real;
}

/* The configuration's directories: the given path's, and the real file's. */
static int hidden_config_dirs(const struct config *cfg, char *out[2])
{
	char *real;

	out[0] = out[1] = NULL;
	if (!cfg->path)
		return 0;
	out[0] = hidden_dir_of(cfg->path);
	real = realpath(cfg->path, NULL);
	if (real) {
		out[1] = hidden_dir_of(real);
		free(real);
	}
	if (out[1] && out[0] && !strcmp(out[0], out[1])) {
		free(out[1]);
		out[1] = NULL;
	}
	return out[0] ? 0 : -errno;
}

/* Why dir may not be hidden ("" = it may), into why. */
static void hidden_why_not(const struct config *cfg, const char *dir, char *why, size_t len)
{
	why[0] = '\0';
	for (const char *const *n = hidden_needed; *n; n++)
		if (!strcmp(dir, *n)) {
			snprintf(why, len, "every job needs %s", dir);
			return;
		}
	for (size_t i = 0; i < cfg->nexec_tasks; i++)
		for (char **a = cfg->exec_tasks[i].argv; a && *a; a++) {
			/* What the job would open: the real file ("dir/../x" is not
			 * in dir; a link into dir is). */
			char *real = (*a)[0] == '/' ? realpath(*a, NULL) : NULL;
			bool in = real ? hidden_under(real, dir) : (*a)[0] == '/' && hidden_under(*a, dir);

			free(real);
			if (in) {
				snprintf(why, len, "it holds %s, which task %s runs", *a,
					 cfg->exec_tasks[i].name);
				return;
			}
		}
}

int hidden_check(const struct config *cfg, char *err, size_t errlen)
{
	char *dirs[2], why[PATH_MAX + 128];
	char **all = NULL;
	int rc = hidden_config_dirs(cfg, dirs);

	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot resolve its directory: %s", cfg->path,
			 strerror(-rc));
		return rc;
	}
	for (int i = 0; i < 2 && dirs[i]; i++) {
		hidden_why_not(cfg, dirs[i], why, sizeof(why));
		if (why[0]) {
			snprintf(err, errlen,
				 "%s: jobs must not see this file, so its directory %s is hidden "
				 "from them, but %s: keep the configuration in a directory of its "
				 "own, such as /etc/valet/",
				 cfg->path, dirs[i], why);
			rc = -EINVAL;
			goto out;
		}
	}
	all = hidden_dirs(cfg, NULL);
	for (char **d = all; d && *d && rc == 0; d++) {
		hidden_why_not(cfg, *d, why, sizeof(why));
		if (why[0] && strcmp(*d, "/etc/default") && strcmp(*d, "/etc/valet")) {
			snprintf(err, errlen, "[sandbox] hide: %s cannot be hidden from jobs: %s",
				 *d, why);
			rc = -EINVAL;
		}
	}
out:
	hidden_free(all);
	free(dirs[0]);
	free(dirs[1]);
	return rc;
}

char **hidden_dirs(const struct config *cfg, char *const *more)
{
	static const char *const always[] = {"/etc/valet", "/etc/default", NULL};
	char **list = NULL, *cdirs[2] = {NULL, NULL};
	size_t n = 0;
	int rc = 0;

	for (const char *const *a = always; *a && rc == 0; a++)
		rc = strv_add_unique(&list, &n, *a, strlen(*a));
	if (rc == 0)
		(void)hidden_config_dirs(cfg, cdirs); /* checked by hidden_check() */
	for (int i = 0; i < 2 && rc == 0; i++)
		if (cdirs[i])
			rc = strv_add_unique(&list, &n, cdirs[i], strlen(cdirs[i]));
	for (const char *p = cfg->hide ? cfg->hide : ""; *p && rc == 0;) {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if (len)
			rc = strv_add_unique(&list, &n, p, len);
		p += len;
	}
	for (; more && *more && rc == 0; more++)
		rc = strv_add_unique(&list, &n, *more, strlen(*more));
	free(cdirs[0]);
	free(cdirs[1]);
	if (rc < 0) {
		hidden_free(list);
		return NULL;
	}
	return list;
}

void hidden_free(char **dirs)
{
	strv_free(dirs);
}
