/*
 * config_task.c - the [task.NAME] sections of the configuration file.
 *
 * Theory of operation. A [task.NAME] section declares an exec task (a
 * command), or, without a command, holds defaults for a C task of that
 * name (main.c checks the name once plugins are loaded). Its keys: command,
 * timeout, max_attempts, and the defaults of its jobs' limits, written like
 * the global keys they stand for: memory_limit and cpu_limit ([sandbox]),
 * max_processes ([sandbox]) and max_output_size ([jobs]). A job that sets
 * no limit of its own gets the task's, else the global one.
 *
 * The command is split like a shell splits words, without any expansion,
 * and its program is made absolute at load time, so what -t checks is what
 * will run. Relative paths are relative to the file's directory (see
 * config.c). Once the whole file is read, cf_check_tasks() holds each task's
 * timeout and limits against the [jobs] maxima ("none", 0, counts as more
 * than any maximum but none).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "config_internal.h"
#include "config_value.h"

/* The limit keys of a task section. */
enum cf_tlim_kind { TL_SIZE, TL_DURATION, TL_INT };

static const struct cf_tlim {
	const char *name;
	enum cf_tlim_kind kind;
	int64_t min, max;
	size_t field; /* int64_t in struct config_exec_task; -1 = not set */
	size_t line;  /* int in struct cf_task_lines */
	const char *max_name;
} cf_tlims[] = {
    {"memory_limit", TL_SIZE, 0, TIB, offsetof(struct config_exec_task, memory_limit_bytes),
     offsetof(struct cf_task_lines, memory_limit), "max_memory_limit"},
    {"cpu_limit", TL_DURATION, 0, DAYS30, offsetof(struct config_exec_task, cpu_limit_ms),
     offsetof(struct cf_task_lines, cpu_limit), "max_cpu_limit"},
    {"max_processes", TL_INT, 0, 1000000, offsetof(struct config_exec_task, max_processes),
     offsetof(struct cf_task_lines, max_processes), "max_process_limit"},
    {"max_output_size", TL_SIZE, KIB, GIB, offsetof(struct config_exec_task, max_output_bytes),
     offsetof(struct cf_task_lines, max_output_size), "max_output_limit"},
};
#define CF_NTLIMS (sizeof(cf_tlims) / sizeof(cf_tlims[0]))

static int64_t *tlim_field(struct config_exec_task *t, const struct cf_tlim *l)
{
	return (int64_t *)((char *)t + l->field);
}

static int *tlim_line(struct cf_task_lines *tl, const struct cf_tlim *l)
{
	return (int *)((char *)tl + l->line);
}

/* The [jobs] maximum of limit i; 0 = none. */
static int64_t tlim_max(const struct config *cfg, size_t i)
{
	switch (i) {
	case 0:
		return (int64_t)cfg->max_memory_limit;
	case 1:
		return cfg->max_cpu_limit_ms;
	case 2:
		return cfg->max_process_limit;
	default:
		return (int64_t)cfg->max_output_limit;
	}
}

static const char *tlim_fmt(const struct cf_tlim *l, int64_t v, char *buf, size_t len)
{
	if (l->kind == TL_SIZE)
		return cf_fmt_size_none((uint64_t)v, buf, len);
	if (l->kind == TL_DURATION)
		return cf_fmt_duration_none(v, buf, len);
	if (v == 0)
		return "none";
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

static int tlim_parse(const struct cf_tlim *l, const char *label, const char *value, int64_t *out,
		      char *msg, size_t msglen)
{
	size_t bytes;
	int rc;

	if (l->kind == TL_INT)
		return config_value_int(label, value, l->min, l->max, out, msg, msglen);
	if (l->kind == TL_DURATION)
		return config_value_duration(label, value, l->min, l->max, out, msg, msglen);
	rc = config_value_size(label, value, l->min, l->max, &bytes, msg, msglen);
	if (rc == 0)
		*out = (int64_t)bytes;
	return rc;
}

/* "command = ARG ...", without the newline; argv as in struct config_exec_task. */
static void cf_print_command(const void *what, FILE *out)
{
	char *const *argv = what;

	fputs("command =", out);
	for (char *const *a = argv; *a; a++) {
		fputc(' ', out);
		config_print_arg(*a, out);
	}
}

static int cf_task_command(struct cf_load *ld, struct config_exec_task *t, const char *value)
{
	size_t len;

	const char *why = NULL;
	char **argv = NULL, *prog = NULL;
	int rc = config_split_command(value, &argv, &why);

	if (rc == -EINVAL) {
		cf_fail(ld, ld->lineno, rc, "task.%s: command: %s", t->name, why);
		return rc;
	}
	if (rc < 0)
		goto nomem;
	if (!argv[0]) {
		cf_fail(ld, ld->lineno, -EINVAL, "task.%s: command is empty", t->name);
		rc = -EINVAL;
		goto fail;
	}
	if (strchr(argv[0], '/')) {
		if (!(prog = config_join_path(ld->dir, argv[0])))
			goto nomem;
	} else if ((rc = config_path_lookup(argv[0], &prog)) == -ENOENT) {
		rc = -EINVAL;
		cf_fail(ld, ld->lineno, rc, "task.%s: command \"%s\": not found in PATH", t->name,
			argv[0]);
		goto fail;
	} else if (rc < 0) {
		goto nomem;
	}
	if (!config_is_exec(prog)) {
		cf_fail(ld, ld->lineno, -EINVAL, "task.%s: command \"%s\": not an executable file",
			t->name, prog);
		rc = -EINVAL;
		goto fail;
	}
	free(argv[0]);
	argv[0] = prog;
	prog = NULL;
	/* "python3 ../demo/x.py": explicit ./ and ../ arguments are paths too. */
	for (char **a = argv + 1; *a; a++) {
		char *abs;

		if (strncmp(*a, "./", 2) && strncmp(*a, "../", 3))
			continue;
		if (!(abs = config_join_path(ld->dir, *a)))
			goto nomem;
		free(*a);
		*a = abs;
	}
	/* What valetd -t -v prints must read back (see CF_MAX_LINE): paths
	 * made absolute and quoting make it longer than what was read. */
	len = cf_printed_len(cf_print_command, argv);
	if (len == 0)
		goto nomem;
	if (len > CF_MAX_CHARS) {
		cf_fail(ld, ld->lineno, -EINVAL,
			"task.%s: command is too long once its paths are made absolute (valetd -t "
			"-v would print %zu characters, at most %d)",
			t->name, len, CF_MAX_CHARS);
		rc = -EINVAL;
		goto fail;
	}
	config_free_argv(t->argv);
	t->argv = argv;
	return 0;
nomem:
	rc = -ENOMEM;
	cf_fail(ld, ld->lineno, rc, "out of memory");
fail:
	free(prog);
	config_free_argv(argv);
	return rc;
}

int cf_task_key(struct cf_load *ld, const char *name, const char *value)
{
	struct config_exec_task *t = &ld->cfg->exec_tasks[ld->task];
	struct cf_task_lines *tl = &ld->task_lines[(size_t)ld->task - ld->first_task];
	char label[CF_TASK_NAME_MAX + 32], msg[CF_MSG];
	const struct cf_tlim *lim = NULL;
	int *seen, rc;

	for (size_t i = 0; i < CF_NTLIMS && !lim; i++)
		if (!strcmp(name, cf_tlims[i].name))
			lim = &cf_tlims[i];
	if (lim) {
		seen = tlim_line(tl, lim);
	} else if (!strcmp(name, "command")) {
		seen = &tl->command;
	} else if (!strcmp(name, "timeout")) {
		seen = &tl->timeout;
	} else if (!strcmp(name, "max_attempts")) {
		seen = &tl->max_attempts;
	} else if (!strcmp(name, "profile")) {
		seen = &tl->profile;
	} else {
		cf_fail(ld, ld->lineno, -EINVAL, "unknown key \"%s\" in [%s]", name, ld->section);
		return -EINVAL;
	}
	if (*seen) {
		cf_fail(ld, ld->lineno, -EINVAL, "duplicate key \"%s\" in [%s] (first on line %d)",
			name, ld->section, *seen);
		return -EINVAL;
	}
	*seen = ld->lineno;
	if (seen == &tl->command)
		return cf_task_command(ld, t, value);
	snprintf(label, sizeof(label), "task.%s: %s", t->name, name);
	if (lim) {
		rc = tlim_parse(lim, label, value, tlim_field(t, lim), msg, sizeof(msg));
	} else if (seen == &tl->profile) {
		/* Whether it suits the kind of task is known at the end (cf_check_tasks). */
		rc = config_value_profile(label, value, &t->profile, msg, sizeof(msg));
	} else if (seen == &tl->max_attempts) {
		int64_t n;
		rc = config_value_int(label, value, 1, 100, &n, msg, sizeof(msg));
		if (rc == 0)
			t->max_attempts = (int)n;
	} else {
		rc = config_value_duration(label, value, 0, DAYS30, &t->timeout_ms, msg,
					   sizeof(msg));
	}
	if (rc < 0)
		cf_fail(ld, ld->lineno, rc, "%s", msg);
	return rc;
}

int cf_task_section(struct cf_load *ld, const char *name)
{
	struct config *cfg = ld->cfg;
	size_t len = strlen(name), n = cfg->nexec_tasks;
	struct config_exec_task *tasks;
	struct cf_task_lines *lines;

	if (len < 1 || len > CF_TASK_NAME_MAX ||
	    name[strspn(name,
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")]) {
		cf_fail(ld, ld->lineno, -EINVAL,
			"invalid task name \"%s\" (use 1 to 64 of A-Z a-z 0-9 _ . -)", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cfg->exec_tasks[i].name, name))
			continue;
		if (i >= ld->first_task)
			cf_fail(ld, ld->lineno, -EINVAL,
				"duplicate section [task.%s] (first on line %d)", name,
				ld->task_lines[i - ld->first_task].section);
		else
			cf_fail(ld, ld->lineno, -EINVAL, "duplicate section [task.%s]", name);
		return -EINVAL;
	}
	tasks = realloc(cfg->exec_tasks, (n + 1) * sizeof(*tasks));
	if (tasks)
		cfg->exec_tasks = tasks;
	lines = realloc(ld->task_lines, (n + 1 - ld->first_task) * sizeof(*lines));
	if (lines)
		ld->task_lines = lines;
	if (!tasks || !lines || !(tasks[n].name = strdup(name))) {
		cf_fail(ld, ld->lineno, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	tasks[n].argv = NULL;
	tasks[n].timeout_ms = 0;
	tasks[n].max_attempts = 0;
	tasks[n].profile = SBX_PROFILE_STRICT;
	tasks[n].memory_limit_bytes = -1;
	tasks[n].cpu_limit_ms = -1;
	tasks[n].max_processes = -1;
	tasks[n].max_output_bytes = -1;
	lines[n - ld->first_task] = (struct cf_task_lines){.section = ld->lineno};
	cfg->nexec_tasks = n + 1;
	ld->task = (long)n;
	return 0;
}


void cf_check_tasks(struct cf_load *ld)
{
	struct config *cfg = ld->cfg;
	char a[32], b[32];

	for (size_t i = ld->first_task; i < cfg->nexec_tasks; i++) {
		struct config_exec_task *t = &cfg->exec_tasks[i];
		struct cf_task_lines *tl = &ld->task_lines[i - ld->first_task];

		if (!tl->profile) /* not set: the kind of task decides */
			t->profile = t->argv ? SBX_PROFILE_EXEC : SBX_PROFILE_STRICT;
		if (!t->argv && t->profile != SBX_PROFILE_STRICT) {
			cf_fail(ld, tl->profile, -EINVAL, "C tasks run under the strict profile");
			return;
		}
		if (t->argv && t->profile == SBX_PROFILE_STRICT) {
			cf_fail(ld, tl->profile, -EINVAL,
				"task.%s: exec tasks run under the exec or exec+net profile", t->name);
			return;
		}
		if (t->timeout_ms > cfg->max_timeout_ms) {
			cf_fail(ld, tl->timeout, -EINVAL,
				"task.%s: timeout (%s) is more than max_timeout (%s)", t->name,
				config_fmt_duration(t->timeout_ms, a, sizeof(a)),
				config_fmt_duration(cfg->max_timeout_ms, b, sizeof(b)));
			return;
		}
		for (size_t k = 0; k < CF_NTLIMS; k++) {
			const struct cf_tlim *l = &cf_tlims[k];
			int64_t v = *tlim_field(t, l), max = tlim_max(cfg, k);

			if (v < 0 || max == 0 || (v != 0 && v <= max))
				continue;
			cf_fail(ld, *tlim_line(tl, l), -EINVAL, "task.%s: %s (%s) is more than %s (%s)",
				t->name, l->name, tlim_fmt(l, v, a, sizeof(a)), l->max_name,
				tlim_fmt(l, max, b, sizeof(b)));
			return;
		}
	}
}

void cf_dump_tasks(const struct config *cfg, FILE *out)
{
	char buf[32];

	for (size_t i = 0; i < cfg->nexec_tasks; i++) {
		struct config_exec_task *t = &cfg->exec_tasks[i];

		fprintf(out, "\n[task.%s]\n", t->name);
		if (t->argv) {
			cf_print_command(t->argv, out);
			fputc('\n', out);
		}
		if (t->timeout_ms)
			fprintf(out, "timeout = %s\n",
				config_fmt_duration(t->timeout_ms, buf, sizeof(buf)));
		if (t->max_attempts)
			fprintf(out, "max_attempts = %d\n", t->max_attempts);
		fprintf(out, "profile = %s\n", policy_profile_name(t->profile));
		for (size_t k = 0; k < CF_NTLIMS; k++) {
			int64_t v = *tlim_field(t, &cf_tlims[k]);
			const char *s = tlim_fmt(&cf_tlims[k], v, buf, sizeof(buf));

			if (v >= 0)
				fprintf(out, "%s = %s\n", cf_tlims[k].name, v == 0 ? "0" : s);
		}
	}
}
