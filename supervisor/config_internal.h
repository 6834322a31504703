/*
 * config_internal.h - what config.c (the table, the file, the dump) and
 * config_task.c (the [task.NAME] sections) share while a file is loaded.
 */
#ifndef VALET_CONFIG_INTERNAL_H
#define VALET_CONFIG_INTERNAL_H

#include <stdio.h>

#include "config.h"

#define CF_MSG 512
#define CF_TASK_NAME_MAX 64
/* The longest line the reader takes (inih's buffer: the line, its newline
 * and a NUL), and so the longest line config_dump() may print: a value
 * that is read is refused when the line that prints it back is longer
 * (a relative path made absolute, quoting, a hidden password). */
#define CF_MAX_LINE 4096
#define CF_MAX_CHARS (CF_MAX_LINE - 2)

#define KIB (1LL << 10)
#define GIB (1LL << 30)
#define TIB (1LL << 40)
#define SEC 1000LL
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)
#define DAYS30 (30 * DAY)

/* The line of each key of one [task.NAME] section (0 = not in the file). */
struct cf_task_lines {
	int section, command, timeout, max_attempts, profile;
	int memory_limit, cpu_limit, max_processes, max_output_size;
};

struct cf_load {
	struct config *cfg;
	const char *path; /* as given, for messages */
	char *dir;	  /* absolute directory of the file */
	FILE *fp;
	char *buf; /* getline() */
	size_t bufcap;
	int lineno;
	char *section; /* current section, NULL before the first */
	int section_line;
	long task;			  /* index of the current [task.NAME] or -1 */
	size_t first_task;		  /* tasks from this file start here */
	struct cf_task_lines *task_lines; /* [i - first_task] */
	int *key_line;			  /* [index in the key table]: line of each key */
	int err; /* the first error, 0 = none yet */
	int err_line;
	char *errbuf;
	size_t errlen;
};

/* Records the first error only; line 0 = no line. */
__attribute__((format(printf, 4, 5))) void cf_fail(struct cf_load *ld, int line, int err,
						   const char *fmt, ...);

/* config_task.c */
/* A "[task.NAME]" line: a new task section. 0 or negative errno (reported). */
int cf_task_section(struct cf_load *ld, const char *name);
/* A key of the current task section. 0 or negative errno (reported). */
int cf_task_key(struct cf_load *ld, const char *name, const char *value);
/* The tasks of this file against the [jobs] maxima. */
void cf_check_tasks(struct cf_load *ld);
/* The [task.NAME] sections, as config_dump() prints them. */
void cf_dump_tasks(const struct config *cfg, FILE *out);

/* config.c: the key table. A key (NULL: no such key), its line in the file
 * being read (0 = not in it), its name; a numeric key's value (sizes,
 * durations in ms, integers), set, and printed as in the file (0 is "none");
 * a tls_client_auth value's name. */
struct cf_key;
const struct cf_key *cf_find_key(const char *section, const char *name);
int cf_key_line(const struct cf_load *ld, const struct cf_key *k);
const char *cf_key_name(const struct cf_key *k);
int64_t cf_num(const struct config *cfg, const struct cf_key *k);
void cf_set_num(struct config *cfg, const struct cf_key *k, int64_t v);
const char *cf_fmt_num(const struct cf_key *k, int64_t v, char *buf, size_t len);
const char *cf_client_auth_name(enum config_client_auth a);

/* config_check.c: the checks of more than one key, once the file is read. */
void cf_check(struct cf_load *ld);

/* config.c: the length of what print(cfg_or_argv, out) writes; 0 on ENOMEM. */
size_t cf_printed_len(void (*print)(const void *what, FILE *out), const void *what);

/* "none" for 0, else config_fmt_size / config_fmt_duration. Returns buf. */
const char *cf_fmt_size_none(uint64_t bytes, char *buf, size_t len);
const char *cf_fmt_duration_none(int64_t ms, char *buf, size_t len);

#endif
