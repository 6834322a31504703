/*
 * log_journal.c - log.c's lines as journal entries with fields.
 *
 * Theory of operation. systemd connects a service's stderr to journald
 * and says so in $JOURNAL_STREAM (the stream's device and inode numbers):
 * log_journal_stderr() compares them with fstat(2) of stderr, so a stderr
 * redirected elsewhere (a file, a pipe, a terminal) is never taken for
 * the journal, and wants journald's socket there (libsystemd drops entries
 * silently when it is missing). An entry the journal refuses all the same
 * (journald gone since) is written to stderr by log.c. log_journal_send() then sends each line as
 * one entry over journald's native protocol (sd_journal_sendv(): a datagram to
 * /run/systemd/journal/socket, a memfd for a large one), each key=value
 * of the line a field of its own: the key in upper case, characters other
 * than letters and digits as '_', an 'X' before a leading digit or '_'
 * (journald drops such fields), VALET_ before a name that journald gives
 * a meaning (MESSAGE, PRIORITY, ...). Fields that do not fit in 8 KiB (32
 * at most) stay in MESSAGE only. Values are sent as they are: the native
 * protocol carries any bytes, newlines included. Only the daemon links
 * libsystemd; the spawner and job children never log here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log_journal.h"

#define LOG_FIELDS_MAX 32     /* fields of an entry beyond MESSAGE, PRIORITY, ... */
#define LOG_FIELDS_BYTES 8192 /* their KEY=value text */
#define LOG_MESSAGE_MAX 4112  /* "MESSAGE=" and a line of log.c */
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket" /* sd_journal_sendv()'s */

bool log_journal_stderr(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char end;

	if (!env || sscanf(env, "%ju:%ju%c", &dev, &ino, &end) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	if ((uintmax_t)st.st_dev != dev || (uintmax_t)st.st_ino != ino)
		return false;
	/* sd_journal_sendv() drops an entry without a word when there is no
	 * journal socket: then the lines stay on stderr. */
	return access(LOG_JOURNAL_SOCKET, W_OK) == 0;
}

/* The field name of key: upper case, [A-Z0-9_] only, not journald's own. */
static size_t log_field_name(const char *key, char *out, size_t len)
{
	/* journald's own fields that a program may send, between spaces. */
	static const char own[] =
	    " MESSAGE MESSAGE_ID PRIORITY CODE_FILE CODE_LINE CODE_FUNC ERRNO "
	    "SYSLOG_FACILITY SYSLOG_IDENTIFIER SYSLOG_PID SYSLOG_TIMESTAMP "
	    "SYSLOG_RAW DOCUMENTATION TID INVOCATION_ID UNIT USER_UNIT ";
	char word[72];
	char name[64];
	size_t n = 0;

	for (const char *k = key; *k && n < 60; k++) {
		char c = *k;

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		if (n == 0 && (c == '_' || (c >= '0' && c <= '9')))
			name[n++] = 'X'; /* a field name starts with a letter */
		name[n++] = c;
	}
	name[n] = '\0';
	if (n == 0)
		return 0;
	snprintf(word, sizeof(word), " %s ", name);
	if (strstr(own, word))
		return (size_t)snprintf(out, len, "VALET_%s=", name);
	return (size_t)snprintf(out, len, "%s=", name);
}

int log_journal_send(int priority, const char *text, size_t text_len, va_list ap)
{
	struct iovec iov[LOG_FIELDS_MAX + 3];
	char fields[LOG_FIELDS_BYTES], message[LOG_MESSAGE_MAX], prio[16];
	size_t used = 0, n;
	const char *key, *value;

	n = (size_t)snprintf(message, sizeof(message), "MESSAGE=%.*s", (int)text_len, text);
	iov[0] = (struct iovec){message, n < sizeof(message) ? n : sizeof(message) - 1};
	n = (size_t)snprintf(prio, sizeof(prio), "PRIORITY=%d", priority & 7);
	iov[1] = (struct iovec){prio, n};
	iov[2] = (struct iovec){(void *)"SYSLOG_IDENTIFIER=valetd", 24};
	n = 3;
	while (n < LOG_FIELDS_MAX + 3 && (key = va_arg(ap, const char *))) {
		size_t room = sizeof(fields) - used, klen, vlen;

		value = va_arg(ap, const char *);
		if (!value)
			break;
		klen = log_field_name(key, fields + used, room);
		vlen = strlen(value);
		if (klen == 0 || klen >= room || vlen > room - klen)
			continue; /* no room: the field stays in MESSAGE only */
		memcpy(fields + used + klen, value, vlen);
		iov[n++] = (struct iovec){fields + used, klen + vlen};
		used += klen + vlen;
	}
	return sd_journal_sendv(iov, (int)n);
}
