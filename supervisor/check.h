/*
 * check.h - `valetd -t` and `valetd --check` (check.c).
 */
#ifndef VALET_CHECK_H
#define VALET_CHECK_H

#include "config.h"

/* valetd -t: the C tasks the spawner program has (with its plugins), and
 * what the config says of them. 0, or -EINVAL with the reason on stderr. */
int check_tasks(const struct config *cfg, const char *spawner);

/* valetd --check, on stdout. 0, or -EPERM when valetd would not start. */
int check_print(const struct config *cfg, const char *spawner);

#endif
