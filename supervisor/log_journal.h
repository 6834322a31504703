/*
 * log_journal.h - log lines as journal entries with fields (log.c's sink
 * when stderr is journald's stream). Apart from log.c because libsystemd's
 * header brings <syslog.h>, whose LOG_INFO, LOG_DEBUG, ... are the names
 * of config.h's log levels.
 */
#ifndef VALET_LOG_JOURNAL_H
#define VALET_LOG_JOURNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Whether stderr is the stream $JOURNAL_STREAM names (dev:inode). */
bool log_journal_stderr(void);

/*
 * One entry: MESSAGE= text (text_len bytes), PRIORITY= priority (syslog's
 * 0-7), SYSLOG_IDENTIFIER=valetd, and a field per key/value pair of ap
 * (const char * pairs, NULL-terminated; a NULL value ends them). 0, or
 * -errno when the journal did not take it.
 */
int log_journal_send(int priority, const char *text, size_t text_len, va_list ap);

#endif
