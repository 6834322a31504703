/*
 * registry.h - the spawner's task table: name -> C function or exec
 * program. Filled when the spawner starts (the program's valet_register()
 * calls, its plugins, the exec tasks of its setup document) and sent to
 * the daemon in READY, so both name a task by its index. What the config
 * says of a task besides (its timeout, its attempts) is the daemon's
 * (supervisor/tasks.h).
 */
#ifndef VALET_REGISTRY_H
#define VALET_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "../include/valet.h"
#include "sandbox.h"

enum task_kind { TASK_C = 0, TASK_EXEC = 1 };

struct task {
	char *name;
	enum task_kind kind;
	valet_task_fn fn;     /* TASK_C */
	char **argv;          /* TASK_EXEC: NULL-terminated, argv[0] absolute */
	enum sbx_profile profile; /* seccomp profile: STRICT for TASK_C, EXEC (default)
				   * or EXEC_NET for TASK_EXEC */
};

/* The process-wide table that valet_register() fills. */
struct registry *registry_global(void);

int registry_add_c(struct registry *reg, const char *name, valet_task_fn fn);
/* argv: borrowed, copied; profile: EXEC or EXEC_NET. 0, -EINVAL, -EEXIST. */
int registry_add_exec(struct registry *reg, const char *name, char *const *argv,
		      enum sbx_profile profile);
/* Lookups return NULL / -1 when unknown. */
const struct task *registry_find(const struct registry *reg, const char *name);
int registry_index(const struct registry *reg, const char *name);
const struct task *registry_at(const struct registry *reg, int index);
size_t registry_count(const struct registry *reg);
/* Sorted by name; borrowed until the next add. */
const char *const *registry_names(const struct registry *reg, size_t *count);
void registry_clear(struct registry *reg); /* tests */

/* Load every *.so in dir (sorted), calling valet_plugin_init. 0 or -errno with
 * a message in err. */
int registry_load_plugins(struct registry *reg, const char *dir, char *err, size_t errlen);

#endif
