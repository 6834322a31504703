/*
 * strv.h - NULL-terminated arrays of strings ("string vectors"), as the
 * hidden directories, the database's socket directories and addresses, and
 * a task's argv are kept.
 */
#ifndef VALET_STRV_H
#define VALET_STRV_H

#include <stddef.h>

/* Append the first len bytes of s to *v (which holds *n strings; NULL and 0
 * for an empty one) unless it holds them already. 0 or -ENOMEM. */
int strv_add_unique(char ***v, size_t *n, const char *s, size_t len);

/* Free each string and the array; NULL is a no-op. */
void strv_free(char **v);

#endif
