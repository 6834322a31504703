/*
 * hidden.h - the directories no job may see: where valetd's configuration
 * and secrets live (see hidden.c).
 */
#ifndef VALET_HIDDEN_H
#define VALET_HIDDEN_H

#include <stddef.h>

struct config;

/* [sandbox] hide: absolute paths of directories, space-separated, none of
 * them "/", without ".", ".." or empty components (no "//", no trailing
 * "/"). 0, or -EINVAL with a sentence in msg. */
int hidden_check_list(const char *label, const char *list, char *msg, size_t msglen);

/*
 * Whether hiding what must be hidden leaves jobs what they need: neither
 * the configuration's directory nor a [sandbox] hide entry may be a system
 * directory (/etc, /usr, ...) or hold an exec task's program or script. 0,
 * or -EINVAL with a sentence in err.
 */
int hidden_check(const struct config *cfg, char *err, size_t errlen);

/*
 * The list: /etc/valet, /etc/default (systemd's EnvironmentFile, which may
 * hold VALET_DATABASE_URL), the configuration file's directory (and its
 * real directory when the file is a link), [sandbox] hide, and more (the
 * database's socket directories; NULL-terminated, may be NULL). New,
 * NULL-terminated, without duplicates: free with hidden_free(). NULL on
 * ENOMEM.
 */
char **hidden_dirs(const struct config *cfg, char *const *more);
void hidden_free(char **dirs);

#endif
