/*
 * registry.c - the task table (name -> C function or exec program).
 *
 * Theory of operation: tasks are added at startup only - by valet_register()
 * from the user's main() or a plugin's init, and by [task.NAME] config
 * sections - before the spawner process is forked. The spawner and every job
 * child inherit the same table, so the daemon names a task to them by its
 * index. A sorted copy of the names answers GET /api/tasks and the
 * "valid tasks: [...]" message.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

struct registry {
	struct task *tasks;
	size_t count, cap;
	const char **sorted; /* names, sorted */
};

static struct registry global_registry;

struct registry *registry_global(void)
{
	return &global_registry;
}

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int rebuild_sorted(struct registry *reg)
{
	const char **sorted = realloc(reg->sorted, (reg->count + 1) * sizeof(*sorted));

	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < reg->count; i++)
		sorted[i] = reg->tasks[i].name;
	sorted[reg->count] = NULL;
	qsort(sorted, reg->count, sizeof(*sorted), cmp_names);
	reg->sorted = sorted;
	return 0;
}

static struct task *add_slot(struct registry *reg, const char *name, int *rc)
{
	struct task *t;

	*rc = 0;
	if (!name_ok(name)) {
		*rc = -EINVAL;
		return NULL;
	}
	if (registry_find(reg, name)) {
		*rc = -EEXIST;
		return NULL;
	}
	if (reg->count == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 16;
		struct task *tasks = realloc(reg->tasks, cap * sizeof(*tasks));
		if (!tasks) {
			*rc = -ENOMEM;
			return NULL;
		}
		reg->tasks = tasks;
		reg->cap = cap;
	}
	t = &reg->tasks[reg->count];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name) {
		*rc = -ENOMEM;
		return NULL;
	}
	return t;
}

static int commit_slot(struct registry *reg)
{
	reg->count++;
	return rebuild_sorted(reg);
}

int registry_add_c(struct registry *reg, const char *name, valet_task_fn fn)
{
	struct task *t;
	int rc;

	if (!fn)
		return -EINVAL;
	t = add_slot(reg, name, &rc);
	if (!t)
		return rc;
	t->kind = TASK_C;
	t->fn = fn;
	return commit_slot(reg);
}

int registry_add_exec(struct registry *reg, const char *name, char *const *argv,
		      enum sbx_profile profile)
{
	struct task *t;
	size_t n = 0;
	int rc;

	if (!argv || !argv[0] || argv[0][0] != '/' ||
	    (profile != SBX_PROFILE_EXEC && profile != SBX_PROFILE_EXEC_NET))
		return -EINVAL;
	t = add_slot(reg, name, &rc);
	if (!t)
		return rc;
	while (argv[n])
		n++;
	t->argv = calloc(n + 1, sizeof(char *));
	if (!t->argv)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		t->argv[i] = strdup(argv[i]);
		if (!t->argv[i])
			goto fail;
	}
	t->kind = TASK_EXEC;
	t->profile = profile;
	return commit_slot(reg);
fail:
	if (t->argv)
		for (size_t i = 0; i < n; i++)
			free(t->argv[i]);
	free(t->argv);
	free(t->name);
	return -ENOMEM;
}

const struct task *registry_find(const struct registry *reg, const char *name)
{
	int i = registry_index(reg, name);

	return i < 0 ? NULL : &reg->tasks[i];
}

int registry_index(const struct registry *reg, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < reg->count; i++)
		if (strcmp(reg->tasks[i].name, name) == 0)
			return (int)i;
	return -1;
}

const struct task *registry_at(const struct registry *reg, int index)
{
	if (index < 0 || (size_t)index >= reg->count)
		return NULL;
	return &reg->tasks[index];
}

size_t registry_count(const struct registry *reg)
{
	return reg->count;
}

const char *const *registry_names(const struct registry *reg, size_t *count)
{
	static const char *const empty[] = {NULL};

	*count = reg->count;
	return reg->sorted ? reg->sorted : empty;
}

void registry_clear(struct registry *reg)
{
	for (size_t i = 0; i < reg->count; i++) {
		free(reg->tasks[i].name);
		if (reg->tasks[i].argv)
			for (char **a = reg->tasks[i].argv; *a; a++)
				free(*a);
		free(reg->tasks[i].argv);
	}
	free(reg->tasks);
	free(reg->sorted);
	memset(reg, 0, sizeof(*reg));
}

static int so_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

/*
 * Plugins are loaded with RTLD_NOW so that an unresolved symbol fails at
 * startup, not in a job child. valet_register() adds to the global table,
 * so a plugin may only be loaded into the global registry.
 */
int registry_load_plugins(struct registry *reg, const char *dir, char *err, size_t errlen)
{
	struct dirent **names = NULL;
	int n, rc = 0;

	if (reg != &global_registry) {
		snprintf(err, errlen, "plugins load into the global registry only");
		return -EINVAL;
	}
	n = scandir(dir, &names, so_filter, alphasort);
	if (n < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot read tasks directory: %s", dir, strerror(errno));
		return rc;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		void *h;
		int (*init)(void);
		const int *version;

		if (rc < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			snprintf(err, errlen, "%s: cannot load plugin: %s", path, dlerror());
			rc = -ENOEXEC;
			continue;
		}
		version = dlsym(h, "valet_plugin_api_version");
		*(void **)&init = dlsym(h, "valet_plugin_init");
		if (!init || !version) {
			snprintf(err, errlen, "%s: not a valet plugin (no VALET_PLUGIN(...))", path);
			rc = -ENOEXEC;
		} else if (*version != VALET_API_VERSION) {
			snprintf(err, errlen, "%s: plugin API version %d, valetd has %d", path,
				 *version, VALET_API_VERSION);
			rc = -ENOEXEC;
		} else if ((rc = init()) < 0) {
			snprintf(err, errlen, "%s: valet_plugin_init failed: %s", path,
				 strerror(-rc));
		}
		/* Plugins stay loaded for the process's life: tasks point into
		 * them (also after a failed init, which may have registered
		 * some). What registered nothing goes. */
		if (rc == -ENOEXEC)
			dlclose(h);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int valet_register(const char *name, valet_task_fn fn)
{
	return registry_add_c(&global_registry, name, fn);
}
