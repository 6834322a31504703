/*
 * config_value.h - internal to config.c: parsing, checking and printing
 * single configuration values (durations, sizes, booleans, choices,
 * numbers, paths, exec task commands).
 *
 * The public parsers (config_parse_duration_ms, config_parse_size,
 * config_parse_listen) stay declared in config.h. The checking helpers
 * below take a label for their message: on error they return -EINVAL and
 * write "label: why" (no newline) into msg, and leave *out untouched.
 */
#ifndef VALET_CONFIG_VALUE_H
#define VALET_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* 90000 -> "90s", 5400000 -> "90m", 1500 -> "1500ms", 0 -> "0s". Returns buf (borrowed). */
const char *config_fmt_duration(int64_t ms, char *buf, size_t len);
/* The largest binary unit that divides bytes: "1M", "1536k", "1000". Returns buf. */
const char *config_fmt_size(uint64_t bytes, char *buf, size_t len);

/* The index of value in the NULL-terminated names[] (any case), or -1. */
int config_choice(const char *const *names, const char *value);
/* msg = "label: "value" is not one of a, b, c". */
void config_not_one_of(const char *label, const char *value, const char *const *names, char *msg,
		       size_t msglen);

/* Checked parsers: 0, or -EINVAL with a message; min and max are inclusive. */
int config_value_int(const char *label, const char *value, int64_t min, int64_t max, int64_t *out,
		     char *msg, size_t msglen);
int config_value_duration(const char *label, const char *value, int64_t min, int64_t max,
			  int64_t *ms, char *msg, size_t msglen);
int config_value_size(const char *label, const char *value, int64_t min, int64_t max, size_t *out,
		      char *msg, size_t msglen);
int config_value_bool(const char *label, const char *value, bool *out, char *msg, size_t msglen);
/* A seccomp profile name, "exec" or "exec@N" (N: this valetd's version of it). */
int config_value_profile(const char *label, const char *value, enum sbx_profile *out, char *msg,
			 size_t msglen);

/* [server] allowed_hosts: each entry "*", a host name or ".domain" (no
 * scheme, port or path). 0, or -EINVAL with "label: why" in msg. */
int config_check_hosts(const char *label, const char *list, char *msg, size_t msglen);

/* Returns new: dir/rel, or a copy of rel when it is empty or absolute or dir is NULL. */
char *config_join_path(const char *dir, const char *rel);

/*
 * Split a command like a shell, without expansion. *argvp: new,
 * NULL-terminated (free with config_free_argv()). Returns 0, -ENOMEM, or
 * -EINVAL with *why (static) set to the reason.
 */
int config_split_command(const char *s, char ***argvp, const char **why);
/* argv: stolen; NULL is a no-op. */
void config_free_argv(char **argv);
/* A regular file we may execute. */
bool config_is_exec(const char *path);
/* A bare program name looked up in PATH's absolute entries. *out: new. 0, -ENOENT or -ENOMEM. */
int config_path_lookup(const char *name, char **out);

/* A database URL with its password replaced by "***". */
void config_print_secret(const char *url, FILE *out);
/* One argument, quoted so that config_split_command() reads it back the same. */
void config_print_arg(const char *arg, FILE *out);

#endif
