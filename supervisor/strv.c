/*
 * strv.c - NULL-terminated arrays of strings (see strv.h). The array grows
 * by one slot per string, which is fine for the handful these hold.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

int strv_add_unique(char ***v, size_t *n, const char *s, size_t len)
{
	char **grown;

	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i]) == len && !strncmp((*v)[i], s, len))
			return 0;
	grown = realloc(*v, (*n + 2) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	*v = grown;
	if (!(grown[*n] = strndup(s, len)))
		return -ENOMEM;
	grown[++*n] = NULL;
	return 0;
}

void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}
