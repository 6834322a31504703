/*
 * tasks.c - the daemon's task table (see tasks.h).
 *
 * Theory of operation: an array in the spawner's index order, filled once
 * at startup from the JSON table the spawner sends, then given the
 * defaults of the [task.NAME] sections; a sorted copy of the names answers
 * GET /api/tasks and the "valid tasks: [...]" message. Lookups by name are
 * a linear scan: tables hold tens of tasks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "tasks.h"

struct tasks {
	struct task_def *defs;
	size_t count;
	const char **sorted;
};

struct tasks *tasks_new(void)
{
	return calloc(1, sizeof(struct tasks));
}

static void tasks_clear(struct tasks *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->defs[i].name);
	free(t->defs);
	free(t->sorted);
	t->defs = NULL;
	t->sorted = NULL;
	t->count = 0;
}

void tasks_free(struct tasks *t)
{
	if (!t)
		return;
	tasks_clear(t);
	free(t);
}

static int tasks_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int tasks_load(struct tasks *t, const char *json, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, 0, &jerr), *item;
	size_t i, n;

	tasks_clear(t);
	if (!json_is_array(root)) {
		snprintf(err, errlen, "the spawner's task table is not a JSON array: %s", jerr.text);
		json_decref(root);
		return -EINVAL;
	}
	n = json_array_size(root);
	t->defs = calloc(n + 1, sizeof(*t->defs));
	t->sorted = calloc(n + 1, sizeof(*t->sorted));
	if (!t->defs || !t->sorted) {
		json_decref(root);
		tasks_clear(t);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(root, i, item) {
		const char *name = NULL;
		int exec = 0, profile = 0;

		if (json_unpack(item, "{s:s, s:b, s:i}", "name", &name, "exec", &exec, "profile",
				&profile) < 0 ||
		    profile < 0 || profile >= SBX_PROFILE_COUNT ||
		    !(t->defs[i].name = strdup(name))) {
			snprintf(err, errlen, "the spawner's task table: entry %zu is not valid", i);
			json_decref(root);
			tasks_clear(t);
			return -EINVAL;
		}
		t->defs[i].exec = exec;
		t->defs[i].profile = (enum sbx_profile)profile;
		t->defs[i].memory_limit_bytes = t->defs[i].cpu_limit_ms = -1;
		t->defs[i].max_processes = t->defs[i].max_output_bytes = -1;
		t->sorted[i] = t->defs[i].name;
		t->count++;
	}
	json_decref(root);
	qsort(t->sorted, t->count, sizeof(*t->sorted), tasks_cmp);
	return 0;
}

int tasks_configure(struct tasks *t, const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nexec_tasks; i++) {
		const struct config_exec_task *c = &cfg->exec_tasks[i];
		struct task_def *d = (struct task_def *)tasks_find(t, c->name);

		if (!d) {
			snprintf(err, errlen, "%s: [task.%s] has no command, and no plugin registers a "
					      "task \"%s\"",
				 cfg->path ? cfg->path : "valetd", c->name, c->name);
			return -ENOENT;
		}
		if (c->timeout_ms)
			d->timeout_ms = c->timeout_ms;
		if (c->max_attempts)
			d->max_attempts = c->max_attempts;
		d->memory_limit_bytes = c->memory_limit_bytes;
		d->cpu_limit_ms = c->cpu_limit_ms;
		d->max_processes = c->max_processes;
		d->max_output_bytes = c->max_output_bytes > 0 ? c->max_output_bytes : -1;
	}
	return 0;
}

const struct task_def *tasks_find(const struct tasks *t, const char *name)
{
	int i = tasks_index(t, name);

	return i < 0 ? NULL : &t->defs[i];
}

int tasks_index(const struct tasks *t, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->defs[i].name, name) == 0)
			return (int)i;
	return -1;
}

const struct task_def *tasks_at(const struct tasks *t, int index)
{
	if (index < 0 || (size_t)index >= t->count)
		return NULL;
	return &t->defs[index];
}

size_t tasks_count(const struct tasks *t)
{
	return t->count;
}

const char *const *tasks_names(const struct tasks *t, size_t *count)
{
	static const char *const empty[] = {NULL};

	*count = t->count;
	return t->sorted ? t->sorted : empty;
}
