/*
 * log.c - structured log lines on stderr, as text or as JSON.
 *
 * Theory of operation
 *
 * log_msg() builds the whole line in a 4 KiB buffer on the stack and hands
 * it to the kernel with one write(2). A line is never split between two
 * writes, so lines from several processes sharing stderr do not mix (and a
 * pipe's writes up to PIPE_BUF, 4 KiB, are atomic). There is no malloc, no
 * stdio and no jansson here, so any part of valetd may log cheaply.
 *
 * A line always fits: one value takes at most LOG_VALUE_MAX bytes and is
 * cut with "..." beyond; when the line itself is full, the value that did
 * not fit is cut the same way and the fields after it are dropped.
 * LOG_TAIL bytes stay free for the closing quote, brace and newline.
 *
 * Text: "2026-11-27T01:02:03.123Z INFO msg key=value key2="a b"". A value
 * is written bare unless it is empty or contains white space, a quote, '=',
 * a backslash or a control character; then it is quoted with JSON escaping,
 * so the line still splits on spaces. The message is written bare, with
 * control characters escaped so that it stays on one line.
 *
 * JSON: one object per line, RFC 8259 escaping, and any byte that is not
 * part of valid UTF-8 becomes U+FFFD, so every line parses whatever a task
 * printed.
 *
 * Values are strings and NULL ends the list, so a NULL value ends it early;
 * it is shown as null / (null). Not thread-safe (valetd is single-threaded).
 *
 * The journal: when stderr is journald's stream (systemd says so with
 * JOURNAL_STREAM=<dev>:<inode> of the stream it connected; log_setup()
 * compares it with stderr's fstat()), a line goes to the journal as one
 * entry with fields instead (sd_journal_sendv(), journald's native
 * protocol, log_journal.c): MESSAGE= the text form without time and level
 * ("job finished job_id=... task=..."), PRIORITY= the line's syslog level,
 * SYSLOG_IDENTIFIER=valetd, and each key=value as a field of its own, the
 * key in upper case (job_id -> JOB_ID, task -> TASK, status -> STATUS), so
 * that `journalctl JOB_ID=...` finds a job's lines. A key that would be one
 * of journald's own fields (MESSAGE, PRIORITY, ...) gets VALET_ in front.
 * `[log] format` applies to a stderr that is not the journal. When the
 * journal refuses an entry, the line is written to stderr as text.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "log_journal.h"

#define LOG_LINE_MAX 4096
#define LOG_VALUE_MAX 1024
#define LOG_TAIL 8

static enum log_format log_format = LOG_TEXT;
static enum log_level log_level = LOG_INFO;
static bool log_journal; /* stderr is the journal's stream */

void log_setup(enum log_format fmt, enum log_level level)
{
	log_format = fmt == LOG_JSON ? LOG_JSON : LOG_TEXT;
	log_level = level;
	log_journal = log_journal_stderr();
}

bool log_enabled(enum log_level level)
{
	return level >= log_level;
}

/* ---- building a line ------------------------------------------------------ */

struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
	bool cut; /* the line is full: drop the remaining fields */
};

enum log_esc {
	LOG_ESC_BARE,	/* control characters only (messages, keys, bare values) */
	LOG_ESC_QUOTED, /* JSON escaping, bytes >= 0x80 as they are (quoted text values) */
	LOG_ESC_JSON,	/* JSON escaping and UTF-8 checking */
};

/* Room for content; LOG_TAIL bytes at the end are kept for closing. */
static size_t log_room(const struct log_line *l)
{
	size_t limit = LOG_LINE_MAX - LOG_TAIL;

	return l->len < limit ? limit - l->len : 0;
}

/* Closing characters go into the tail; this never overflows the buffer. */
static void log_put(struct log_line *l, const char *s, size_t n)
{
	if (l->len + n <= sizeof(l->buf)) {
		memcpy(l->buf + l->len, s, n);
		l->len += n;
	}
}

/* Content: all of it, or nothing and the line is full. */
static bool log_add(struct log_line *l, const char *s)
{
	size_t n = strlen(s);

	if (l->cut || n > log_room(l)) {
		l->cut = true;
		return false;
	}
	log_put(l, s, n);
	return true;
}

/* The length of the valid UTF-8 sequence at s, or 0. */
static size_t log_utf8_len(const unsigned char *s)
{
	size_t n;

	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		n = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	/* Overlong forms, surrogates and code points above U+10FFFF. */
	if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
	    (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
		return 0;
	return n;
}

/* Escape the character at *sp into out (at least 7 bytes); advance *sp. */
static size_t log_escape_char(const char **sp, char *out, enum log_esc esc)
{
	const unsigned char *s = (const unsigned char *)*sp;
	size_t n;

	*sp += 1;
	switch (*s) {
	case '\n':
		return (size_t)snprintf(out, 7, "\\n");
	case '\r':
		return (size_t)snprintf(out, 7, "\\r");
	case '\t':
		return (size_t)snprintf(out, 7, "\\t");
	case '"':
	case '\\':
		if (esc == LOG_ESC_BARE)
			break;
		out[0] = '\\';
		out[1] = (char)*s;
		return 2;
	}
	if (*s < 0x20 || *s == 0x7f)
		return (size_t)snprintf(out, 7, "\\u%04x", *s);
	if (*s < 0x80 || esc != LOG_ESC_JSON) {
		out[0] = (char)*s;
		return 1;
	}
	n = log_utf8_len(s);
	if (n == 0)
		return (size_t)snprintf(out, 7, "\\ufffd");
	memcpy(out, s, n);
	*sp += n - 1;
	return n;
}

/*
 * Append s escaped, at most max bytes of it; a longer s ends with "...".
 * Only when the line itself is full are the fields after it dropped.
 */
static void log_add_escaped(struct log_line *l, const char *s, enum log_esc esc, size_t max)
{
	size_t room = log_room(l), n;
	bool line_full = room <= max;
	char tmp[8];

	if (l->cut)
		return;
	if (!line_full)
		room = max;
	while (*s) {
		const char *next = s;

		n = log_escape_char(&next, tmp, esc);
		/* Keep room for "..." unless this is the last character. */
		if (n + (*next ? 3 : 0) > room) {
			if (room >= 3)
				log_put(l, "...", 3);
			l->cut = line_full;
			return;
		}
		log_put(l, tmp, n);
		room -= n;
		s = next;
	}
}

static bool log_needs_quotes(const char *v)
{
	if (!*v)
		return true;
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || *v == '"' || *v == '=' || *v == '\\' || *v == 0x7f)
			return true;
	return false;
}

static void log_text_field(struct log_line *l, const char *key, const char *value)
{
	if (!log_add(l, " "))
		return;
	log_add_escaped(l, key, LOG_ESC_BARE, LOG_VALUE_MAX);
	if (!log_add(l, "="))
		return;
	if (!value) {
		log_add(l, "(null)");
	} else if (log_needs_quotes(value)) {
		if (!log_add(l, "\""))
			return;
		log_add_escaped(l, value, LOG_ESC_QUOTED, LOG_VALUE_MAX);
		log_put(l, "\"", 1);
	} else {
		log_add_escaped(l, value, LOG_ESC_BARE, LOG_VALUE_MAX);
	}
}

static void log_json_field(struct log_line *l, const char *key, const char *value)
{
	if (!log_add(l, ",\""))
		return;
	log_add_escaped(l, key, LOG_ESC_JSON, LOG_VALUE_MAX);
	if (l->cut) {
		/* A cut key still needs a value for the object to parse. */
		log_put(l, "\":null", 6);
		return;
	}
	if (!value) {
		if (!log_add(l, "\":null"))
			log_put(l, "\":null", 6);
		return;
	}
	if (!log_add(l, "\":\"")) {
		log_put(l, "\":null", 6);
		return;
	}
	log_add_escaped(l, value, LOG_ESC_JSON, LOG_VALUE_MAX);
	log_put(l, "\"", 1);
}

static void log_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void log_write(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Put "TIME LEVEL " before what l holds (cutting its end if need be). */
static void log_prefix(struct log_line *l, const char *now, const char *level)
{
	char head[128];
	size_t n = (size_t)snprintf(head, sizeof(head), "%s %s ", now, level);

	if (n >= sizeof(head))
		n = sizeof(head) - 1;
	if (l->len + n + 1 > sizeof(l->buf))
		l->len = sizeof(l->buf) - n - 1;
	memmove(l->buf + n, l->buf, l->len);
	memcpy(l->buf, head, n);
	l->len += n;
}

void log_msg(enum log_level level, const char *msg, ...)
{
	static const char *const text_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	static const char *const json_names[] = {"debug", "info", "warn", "error"};
	static const int syslog_prio[] = {7, 6, 4, 3}; /* LOG_DEBUG, _INFO, _WARNING, _ERR */
	int saved_errno = errno;
	struct log_line l;
	char now[96]; /* fits any int the compiler can imagine in struct tm */
	const char *key, *value;
	va_list ap;
	int rc;

	if (!log_enabled(level))
		return;
	if (level < LOG_DEBUG || level > LOG_ERROR)
		level = LOG_ERROR;
	l.len = 0;
	l.cut = false;
	log_timestamp(now, sizeof(now));
	if (log_journal) {
		/* The text form without time and level; the journal has both. */
		log_add_escaped(&l, msg ? msg : "", LOG_ESC_BARE, LOG_VALUE_MAX);
	} else if (log_format == LOG_JSON) {
		log_add(&l, "{\"time\":\"");
		log_add(&l, now);
		log_add(&l, "\",\"level\":\"");
		log_add(&l, json_names[level]);
		log_add(&l, "\",\"msg\":\"");
		log_add_escaped(&l, msg ? msg : "", LOG_ESC_JSON, LOG_VALUE_MAX);
		log_put(&l, "\"", 1);
	} else {
		log_add(&l, now);
		log_add(&l, " ");
		log_add(&l, text_names[level]);
		log_add(&l, " ");
		log_add_escaped(&l, msg ? msg : "", LOG_ESC_BARE, LOG_VALUE_MAX);
	}
	va_start(ap, msg);
	while (!l.cut && (key = va_arg(ap, const char *))) {
		value = va_arg(ap, const char *);
		if (log_format == LOG_JSON && !log_journal)
			log_json_field(&l, key, value);
		else
			log_text_field(&l, key, value);
		if (!value)
			break;
	}
	va_end(ap);
	if (log_journal) {
		va_start(ap, msg);
		rc = log_journal_send(syslog_prio[level], l.buf, l.len, ap);
		va_end(ap);
		if (rc >= 0) {
			errno = saved_errno;
			return;
		}
		/* The journal refused it: the text line on stderr after all. */
		log_prefix(&l, now, text_names[level]);
	}
	if (log_format == LOG_JSON && !log_journal)
		log_put(&l, "}", 1);
	log_put(&l, "\n", 1);
	log_write(l.buf, l.len);
	errno = saved_errno;
}
