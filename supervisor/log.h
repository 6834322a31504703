/*
 * log.h - structured log lines to stderr, text or JSON.
 *
 * A line is a message plus key=value fields:
 *   log_info("job finished", "job_id", id, "pid", "123", NULL);
 * Text:  2026-11-27T01:02:03.123Z INFO job finished job_id=... pid=123
 * JSON:  {"time":"...","level":"info","msg":"job finished","job_id":"...","pid":"123"}
 * Values are strings; NULL ends the list. When stderr is the journal, each
 * line is a journal entry with the fields JOB_ID=, TASK=, ... (log.c).
 */
#ifndef VALET_LOG_H
#define VALET_LOG_H

#include "config.h"

void log_setup(enum log_format fmt, enum log_level level);
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__, (const char *)NULL)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__, (const char *)NULL)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__, (const char *)NULL)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__, (const char *)NULL)
bool log_enabled(enum log_level level);

#endif
