/*
 * tasks.h - the daemon's task table: the tasks its spawner runs, by name
 * and by index, with what the config says of them.
 *
 * The C tasks live in the spawner (its program's own, and its plugins');
 * the daemon learns them from the spawner's READY (or, for valetd -t, from
 * the spawner's task list) and names a task to the spawner by its index in
 * that table. The exec tasks are the config's, in the same table.
 */
#ifndef VALET_TASKS_H
#define VALET_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../sandbox/spawn_proto.h"

struct config;

/* A task, and its defaults: the one home of what [task.NAME] says. The
 * global defaults are the config's, read where they are used (a reload
 * may change some). */
struct task_def {
	char *name;
	bool exec;		  /* an exec task; else a C task */
	enum sbx_profile profile; /* STRICT for C tasks, EXEC or EXEC_NET */
	int64_t timeout_ms;	  /* the task's default timeout; 0 = the global one */
	int max_attempts;	  /* its default runs per job; 0 = the global one */
	/* Its jobs' limits (limits.h); -1 = the global one. */
	int64_t memory_limit_bytes; /* 0 = none */
	int64_t cpu_limit_ms;	    /* 0 = none */
	int64_t max_processes;	    /* 0 = none */
	int64_t max_output_bytes;   /* > 0 */
};

struct tasks;

struct tasks *tasks_new(void); /* NULL on ENOMEM */
void tasks_free(struct tasks *t); /* NULL is a no-op */

/* The spawner's table (spawn_proto.h's JSON), in its order, replacing what
 * was there. 0, or -EINVAL with a sentence in err. */
int tasks_load(struct tasks *t, const char *json, size_t len, char *err, size_t errlen);
/* What the config says of the tasks ([task.NAME]): each one's timeout,
 * max_attempts and limits. 0, or -ENOENT with a sentence in err when a
 * section without a command names no C task. */
int tasks_configure(struct tasks *t, const struct config *cfg, char *err, size_t errlen);

/* Lookups: NULL or -1 when unknown. */
const struct task_def *tasks_find(const struct tasks *t, const char *name);
int tasks_index(const struct tasks *t, const char *name);
const struct task_def *tasks_at(const struct tasks *t, int index);
size_t tasks_count(const struct tasks *t);
/* Sorted by name, NULL-terminated; borrowed until the next tasks_load(). */
const char *const *tasks_names(const struct tasks *t, size_t *count);

#endif
