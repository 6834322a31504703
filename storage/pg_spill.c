/*
 * pg_spill.c - the PostgreSQL store's unsent writes, kept across a restart.
 *
 * Theory of operation
 *
 * A job that ends while the database is down has its final state and
 * result only in this process: if valetd stops (or dies) before the
 * database is back, the job would be failed at the node's next start as
 * "restarted while the job was running", its result lost. So such changes
 * are kept in the state directory ([storage] state_dir, else systemd's
 * $STATE_DIRECTORY): the calls that carry them, each as its statement's
 * name and text and its parameters, in this run's file,
 * pg-unsent-<schema>-<node>-<time>.json, written under a temporary name,
 * flushed, renamed over the last version. Kept: every change of the batch
 * in flight (it may not have committed) and every change not sent
 * (pg_write_unsent()). Not kept: creates and deletes - nobody was told
 * they happened (a submit's 202 comes after its commit) and their clients
 * are answered with an error.
 *   - While the database takes no writes: every change marked (pg_save.c)
 *     starts keep_w if it is not running; every PG_KEEP_TICK_S it looks
 *     whether anything waits, and once no write batch has committed for
 *     PG_KEEP_AFTER_NS (or since the watch began) it writes the file again
 *     if anything changed since. A healthy node pays a timer tick, no
 *     file. Once nothing waits any more (all committed), the file goes.
 *     So a valetd killed meanwhile loses at most about the last 1.25 s.
 *   - At shutdown valetd waits PG_CLOSE_WAIT_S for its last writes; when
 *     that is over with writes not known to be committed, pg_spill_save()
 *     writes the file a last time. When all was written, it goes.
 *
 * At the next start of the node (same schema and node id), before it
 * registers - which fails whatever the node held, as restarted -,
 * pg_spill_replay() sends the calls of every such file in one transaction,
 * the oldest file first, and removes the files once it committed. Sending
 * them again is safe whatever happened meanwhile: each write of a node's
 * run of a job is fenced by its claim and attempt (pg_sql.c), so if
 * another node took the work over when the lease ran out they change
 * nothing, and each sets absolute values, so one that did commit before
 * the shutdown is harmless to repeat. A call goes only if this build has a
 * write statement of that name with the same text (an upgrade in between
 * may change them), and only from a regular file of valetd's own user that
 * no one else may write; a file with any other call, one that cannot be
 * read, or a transaction PostgreSQL refuses for good is set aside (renamed
 * *.refused) and logged, and the node registers without it: what it held
 * is lost, as it would have been without it. A transaction refused for now
 * or cut off is sent again, before the registration, at the next attempt.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../supervisor/log.h"
#include "../supervisor/strv.h"
#include "pg_internal.h"
#include "pg_sql.h"
#include "pgbatch.h"

#define PG_SPILL_FORMAT "valet-pg-unsent/1"
#define PG_KEEP_TICK_S 0.25	     /* while changes wait: look this often ... */
#define PG_KEEP_AFTER_NS 1000000000LL /* ... and keep them once no write committed for this long */

int pg_spill_check(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	int e = stat(dir, &st) < 0		 ? errno
		: !S_ISDIR(st.st_mode)		 ? ENOTDIR
		: access(dir, W_OK | X_OK) < 0 ? errno
					       : 0;

	if (e)
		snprintf(err, errlen, "[storage] state_dir %s: %s", dir, strerror(e));
	return -e;
}

/* The start of this node's file names: pg-unsent-<schema>-<node>-, the
 * node id with anything but [A-Za-z0-9._-] as '_'. The file says the
 * node exactly: another node's that matches (a-b's for a) is left alone. */
static void file_prefix(const struct pg_store *ps, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "pg-unsent-%s-", ps->schema);

	for (const char *p = ps->node; *p && n + 2 < size; p++) {
		char c = *p;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		buf[n++] = plain ? c : '_';
	}
	if (n + 1 < size)
		buf[n++] = '-';
	buf[n < size ? n : size - 1] = '\0';
}

/* b's calls as the file's "calls": [{statement, sql, params}]. */
static json_t *calls_json(const struct pg_store *ps, const struct pg_batch *b)
{
	json_t *calls = json_array();

	for (size_t i = 0; calls && i < b->ncalls; i++) {
		const struct pg_call *c = &b->calls[i];
		json_t *params = json_array(), *call;
		for (size_t k = 0; params && k < c->nparams; k++) {
			size_t off = b->params[c->first + k];
			json_t *v = off == PG_BATCH_NULL ? json_null() : json_string(b->arena + off);
			if (json_array_append_new(params, v) < 0) {
				json_decref(params);
				params = NULL;
			}
		}
		call = params ? json_pack("{s:s, s:s, s:o}", "statement", ps->stmts[c->stmt].name,
					  "sql", ps->stmts[c->stmt].sql, "params", params)
			      : NULL;
		if (json_array_append_new(calls, call) < 0) {
			json_decref(calls);
			return NULL;
		}
	}
	return calls;
}

/* Write doc to dir/name through a temporary name, flushed: 0 or -errno. */
static int write_file(const char *dir, const char *name, json_t *doc)
{
	char path[4096], tmp[4200];
	int fd, dfd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (json_dumpfd(doc, fd, JSON_COMPACT) < 0 || write(fd, "\n", 1) != 1)
		rc = errno ? -errno : -EIO;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* This run's file name (made once): pg-unsent-<schema>-<node>-<time>.json. */
static const char *spill_name(struct pg_store *ps)
{
	struct timespec ts;
	char prefix[512];

	if (!ps->spill_name[0]) {
		clock_gettime(CLOCK_REALTIME, &ts);
		file_prefix(ps, prefix, sizeof(prefix));
		snprintf(ps->spill_name, sizeof(ps->spill_name), "%s%020lld.json", prefix,
			 (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	}
	return ps->spill_name;
}

/* Nothing of this run's file is unwritten any more: remove it. */
static void spill_forget(struct pg_store *ps)
{
	char path[4096];

	if (!ps->spill_kept)
		return;
	ps->spill_kept = ps->spill_said = false;
	snprintf(path, sizeof(path), "%s/%s", ps->state_dir, ps->spill_name);
	unlink(path);
	log_info("PostgreSQL took the changes kept while it did not; removed their file", "node",
		 ps->node, "file", ps->spill_name);
}

/* The calls of every change not known to be committed, as a new batch;
 * *changes is their number. NULL with *changes 0 (nothing) or -ENOMEM. */
static struct pg_batch *unsent(struct pg_store *ps, int *changes)
{
	struct pg_batch *b = pg_batch_new(true, NULL, NULL);

	*changes = b ? pg_write_unsent(ps, b) : -ENOMEM;
	if (*changes > 0 && pg_batch_ncalls(b))
		return b;
	pg_batch_free(b);
	if (*changes > 0)
		*changes = 0;
	return NULL;
}

/* Write every change not known to be committed to this run's file:
 * 0 (*changes of them; none: no file), or -errno. */
static int spill_write(struct pg_store *ps, int *changes)
{
	struct pg_batch *b = unsent(ps, changes);
	json_t *doc = NULL, *calls;
	int rc;

	if (!b) {
		if (*changes == 0)
			spill_forget(ps);
		return *changes;
	}
	calls = calls_json(ps, b);
	if (calls)
		doc = json_pack("{s:s, s:s, s:s, s:s, s:o}", "format", PG_SPILL_FORMAT, "schema",
				ps->schema, "node", ps->node, "valetd", VALET_VERSION, "calls", calls);
	rc = doc ? write_file(ps->state_dir, spill_name(ps), doc) : -ENOMEM;
	json_decref(doc);
	pg_batch_free(b);
	if (rc == 0)
		ps->spill_kept = true;
	return rc;
}

int pg_spill_save(struct pg_store *ps)
{
	char n[24], err[64];
	int changes = 0, rc;

	ev_timer_stop(ps->loop, &ps->keep_w);
	if (!ps->state_dir) {
		pg_batch_free(unsent(ps, &changes));
		snprintf(n, sizeof(n), "%d", changes);
		if (changes > 0)
			log_error("PostgreSQL did not take the last changes before shutdown, and "
				  "there is no state directory to keep them in ([storage] state_dir): "
				  "jobs still marked running are failed when this node starts again",
				  "node", ps->node, "changes", n);
		return changes > 0 ? -ENOENT : 0;
	}
	rc = spill_write(ps, &changes);
	snprintf(n, sizeof(n), "%d", changes);
	snprintf(err, sizeof(err), "%s", strerror(rc < 0 ? -rc : 0));
	if (rc < 0)
		log_error("PostgreSQL did not take the last changes before shutdown, and they could "
			  "not be kept: jobs still marked running are failed when this node starts "
			  "again",
			  "node", ps->node, "changes", n, "dir", ps->state_dir, "error", err);
	else if (changes > 0)
		log_warn("PostgreSQL did not take the last changes before shutdown; kept them, to "
			 "be written when this node starts again",
			 "node", ps->node, "changes", n, "file", ps->spill_name);
	else
		log_warn("PostgreSQL did not answer before shutdown: this node is marked "
			 "stopped, and its claims given back, when it starts again or its "
			 "lease runs out", "node", ps->node);
	return rc;
}

/* ---- kept while the database does not take them ---------------------------------------- */

void pg_spill_watch(struct pg_store *ps)
{
	ps->mark_gen++;
	if (ps->state_dir && !ev_is_active(&ps->keep_w)) {
		ps->write_ok_ns = job_mono_ns(); /* the changes from now on are timed */
		ev_timer_again(ps->loop, &ps->keep_w);
	}
}

void pg_spill_settled(struct pg_store *ps)
{
	ps->write_ok_ns = job_mono_ns();
}

static void on_keep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_store *ps = w->data;
	char n[24], err[64];
	int changes, rc;

	if (!pg_write_pending(ps) && !ps->flight) {
		ev_timer_stop(loop, w);
		spill_forget(ps);
		return;
	}
	if (job_mono_ns() - ps->write_ok_ns < PG_KEEP_AFTER_NS ||
	    (ps->spill_kept && ps->spill_gen == ps->mark_gen))
		return;
	ps->spill_gen = ps->mark_gen;
	rc = spill_write(ps, &changes);
	if (rc < 0 && !ps->spill_failed) {
		snprintf(err, sizeof(err), "%s", strerror(-rc));
		log_error("PostgreSQL is not taking writes, and the changes it has not taken could "
			  "not be kept in the state directory", "node", ps->node, "dir",
			  ps->state_dir, "error", err);
	}
	ps->spill_failed = rc < 0;
	if (rc < 0 || changes <= 0)
		return;
	snprintf(n, sizeof(n), "%d", changes);
	log_msg(ps->spill_said ? LOG_DEBUG : LOG_WARN,
		"PostgreSQL is not taking writes; keeping the changes it has not taken in the "
		"state directory until it does, for the next start should valetd stop first",
		"node", ps->node, "changes", n, "file", ps->spill_name, (const char *)NULL);
	ps->spill_said = true;
}

void pg_spill_init(struct pg_store *ps)
{
	ev_timer_init(&ps->keep_w, on_keep, 0., PG_KEEP_TICK_S);
	ps->keep_w.data = ps;
}

void pg_spill_stop(struct pg_store *ps)
{
	ev_timer_stop(ps->loop, &ps->keep_w);
}

void pg_spill_closed(struct pg_store *ps)
{
	ev_timer_stop(ps->loop, &ps->keep_w);
	if (ps->state_dir)
		spill_forget(ps);
}

/* ---- replay ------------------------------------------------------------------------------- */

struct pg_replay {
	struct pg_store *ps;
	char **files; /* the files whose calls the batch holds */
	size_t nfiles;
};

/* A write statement of this build with that name and text, or -1. */
static int stmt_of(const struct pg_store *ps, const char *name, const char *sql, size_t nparams)
{
	for (int i = 0; i < PGS_CLAIM; i++)
		if (!strcmp(ps->stmts[i].name, name))
			return !strcmp(ps->stmts[i].sql, sql) &&
					       (size_t)ps->stmts[i].nparams == nparams
				       ? i
				       : -1;
	return -1;
}

/* The calls of file path into b: 0, -EINVAL with the reason in why (the
 * file is not one to send), -ENOMEM, or -ESRCH (another node's). */
static int add_file(struct pg_store *ps, struct pg_batch *b, const char *path, char *why,
		    size_t size)
{
	json_error_t jerr;
	json_t *doc = NULL, *calls, *call;
	const char *format = NULL, *schema = NULL, *node = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	size_t i;
	int rc = 0;

	/* Only what this user wrote, as pg_spill_save() does: a file others
	 * could have written is not sent. */
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022)) {
		snprintf(why, size, "%s", fd < 0 ? strerror(errno)
					 : "not a regular file of this user, writable by no one else");
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	doc = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!doc) {
		snprintf(why, size, "%s (line %d)", jerr.text, jerr.line);
		return -EINVAL;
	}
	if (json_unpack(doc, "{s:s, s:s, s:s, s:o}", "format", &format, "schema", &schema, "node",
			&node, "calls", &calls) < 0 ||
	    strcmp(format, PG_SPILL_FORMAT) != 0 || !json_is_array(calls)) {
		snprintf(why, size, "not a file of unsent changes (%s)", PG_SPILL_FORMAT);
		rc = -EINVAL;
		goto out;
	}
	if (strcmp(schema, ps->schema) != 0 || strcmp(node, ps->node) != 0) {
		rc = -ESRCH;
		goto out;
	}
	json_array_foreach(calls, i, call) {
		const char *name = NULL, *sql = NULL;
		json_t *params = NULL, *v;
		size_t k;
		int stmt;
		if (json_unpack(call, "{s:s, s:s, s:o}", "statement", &name, "sql", &sql, "params",
				&params) < 0 ||
		    !json_is_array(params) ||
		    (stmt = stmt_of(ps, name, sql, json_array_size(params))) < 0) {
			snprintf(why, size, "call %zu: not a write statement of this valetd (%s)", i,
				 name ? name : "malformed");
			rc = -EINVAL;
			goto out;
		}
		rc = pg_batch_call(b, (size_t)stmt);
		json_array_foreach(params, k, v) {
			if (!json_is_string(v) && !json_is_null(v)) {
				snprintf(why, size, "call %zu: a parameter that is no text", i);
				rc = -EINVAL;
				goto out;
			}
			rc |= json_is_null(v) ? pg_batch_null(b) : pg_batch_text(b, json_string_value(v));
		}
		if (rc) {
			rc = -ENOMEM;
			goto out;
		}
	}
out:
	json_decref(doc);
	return rc;
}

/* Rename path to path.refused, saying why. */
static void set_aside(const char *path, const char *why)
{
	char to[4200];

	snprintf(to, sizeof(to), "%s.refused", path);
	if (rename(path, to) < 0)
		unlink(path);
	log_error("kept PostgreSQL changes from before a restart set aside, not written: jobs "
		  "they finished are failed as restarted",
		  "file", to, "error", why);
}

static void replay_free(struct pg_replay *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nfiles; i++)
		free(r->files[i]);
	free(r->files);
	free(r);
}

static void replayed(struct pg_batch *b, int err, const char *msg, void *arg)
{
	struct pg_replay *r = arg;
	struct pg_store *ps = r->ps;
	char n[24];

	ps->registering = false;
	snprintf(n, sizeof(n), "%zu", pg_batch_ncalls(b));
	if (!err) {
		for (size_t i = 0; i < r->nfiles; i++)
			unlink(r->files[i]);
		log_info("wrote the PostgreSQL changes the last run kept", "node",
			 ps->node, "statements", n);
		ps->spill_done = true;
	} else if (err == -EIO && !pg_sqlstate_transient(pg_batch_sqlstate(b))) {
		for (size_t i = 0; i < r->nfiles; i++)
			set_aside(r->files[i], msg ? msg : "refused");
		ps->spill_done = true;
	} else if (err != -ECANCELED) {
		log_warn("could not write the PostgreSQL changes the last run kept yet; "
			 "retrying before this node registers",
			 "node", ps->node, "error", msg ? msg : "");
	}
	pg_batch_free(b);
	replay_free(r);
	if (ps->spill_done)
		pgq_register(ps);
	else if (err != -ECANCELED && err != -EPIPE)
		pgq_register_later(ps);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

bool pg_spill_replay(struct pg_store *ps)
{
	struct dirent **names = NULL;
	struct pg_replay *r = NULL;
	struct pg_batch *b = NULL, *scratch;
	char prefix[512], path[4096], why[256];
	bool sent = false;
	int n = -1;

	if (ps->spill_done || !ps->state_dir)
		return false;
	n = scandir(ps->state_dir, &names, NULL, by_name);
	r = calloc(1, sizeof(*r));
	b = pg_batch_new(true, replayed, r);
	if (n < 0 || !r || !b || !(r->files = calloc((size_t)n + 1, sizeof(char *))))
		goto done;
	r->ps = ps;
	file_prefix(ps, prefix, sizeof(prefix));
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		size_t len = strlen(name);
		int rc;
		if (strncmp(name, prefix, strlen(prefix)) != 0 || len < 5 ||
		    strcmp(name + len - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", ps->state_dir, name);
		/* A file goes in whole or not at all: tried on a scratch batch first. */
		scratch = pg_batch_new(true, NULL, NULL);
		rc = scratch ? add_file(ps, scratch, path, why, sizeof(why)) : -ENOMEM;
		pg_batch_free(scratch);
		if (rc == 0)
			rc = add_file(ps, b, path, why, sizeof(why));
		if (rc == -EINVAL)
			set_aside(path, why);
		else if (rc == -ENOMEM || (rc == 0 && !(r->files[r->nfiles++] = strdup(path))))
			goto done; /* registers without them; they stay for the next start */
	}
	if (r->nfiles && pgconn_submit(ps->writer, b) == 0) {
		ps->registering = true;
		sent = true;
	}
done:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!sent) {
		ps->spill_done = true;
		pg_batch_free(b);
		replay_free(r);
	}
	return sent;
}
