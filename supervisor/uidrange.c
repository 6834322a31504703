/*
 * uidrange.c - finding and reserving a block of free ids (see uidrange.h).
 *
 * Theory of operation: what the host uses besides the user database is
 * read once per search into struct uidrange_host - the spans of
 * /etc/subuid and /etc/subgid, and every id of every process (the Uid: and
 * Gid: lines of /proc/PID/status, sorted, so that a lookup is a binary
 * search). A block is then checked id by id, lowest first: the cheap
 * checks (spans, processes) over the whole block, then getpwuid() and
 * getgrgid() up to the first id the cheap checks found taken, so that a
 * block that holds a process is skipped without asking NSS (which may be
 * a network service) about every id. The id reported is the lowest taken
 * one, and for that id a user or group comes before a span or a process.
 *
 * Candidate blocks start at first and follow each other at the block size
 * rounded up to a power of two: daemons with the same number of slots get
 * blocks that line up instead of overlapping by a few ids.
 *
 * Nothing is reserved by the checks: the caller takes the locks of a free
 * block (uidrange_lock) and goes on to the next candidate when another
 * valetd was faster. Processes are read per thread group (/proc/PID), not
 * per thread: a thread with credentials of its own is not seen.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "uidrange.h"

/* The largest id: (uid_t)-1 is "no change" to setresuid(), not an id. */
#define UR_ID_MAX 0xFFFFFFFEULL

/* ---- /etc/subuid, /etc/subgid -------------------------------------------- */

/* "name:start:count", or -EINVAL. */
static int ur_subid_line(char *line, struct uidrange_span *s)
{
	char *name = line, *colon, *end;
	unsigned long long start, count;

	line[strcspn(line, "\r\n")] = '\0';
	while (isspace((unsigned char)*name))
		name++;
	if (!*name || *name == '#')
		return -EINVAL;
	colon = strchr(name, ':');
	if (!colon || colon == name)
		return -EINVAL;
	*colon = '\0';
	if (!isdigit((unsigned char)colon[1]))
		return -EINVAL;
	errno = 0;
	start = strtoull(colon + 1, &end, 10);
	if (errno || *end != ':' || !isdigit((unsigned char)end[1]))
		return -EINVAL;
	count = strtoull(end + 1, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (errno || *end || count == 0)
		return -EINVAL;
	s->start = start;
	s->count = count;
	snprintf(s->owner, sizeof(s->owner), "%s", name);
	return 0;
}

int uidrange_subid_parse(FILE *f, struct uidrange_span **spans, size_t *n)
{
	struct uidrange_span *v = NULL, *nv, s;
	size_t len = 0, cap = 0;
	char *line = NULL;

	while (getline(&line, &cap, f) >= 0) {
		if (ur_subid_line(line, &s) < 0)
			continue;
		nv = realloc(v, (len + 1) * sizeof(*v));
		if (!nv)
			goto fail;
		v = nv;
		v[len++] = s;
	}
	free(line);
	*spans = v;
	*n = len;
	return 0;
fail:
	free(line);
	free(v);
	return -ENOMEM;
}

static int ur_subid_read(const char *path, struct uidrange_span **spans, size_t *n)
{
	FILE *f = fopen(path, "re");
	int rc;

	*spans = NULL;
	*n = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	rc = uidrange_subid_parse(f, spans, n);
	fclose(f);
	return rc;
}

/* The span of spans[n] that holds id, or NULL. */
static const struct uidrange_span *ur_span_of(const struct uidrange_span *spans, size_t n,
					      uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (id >= spans[i].start && id - spans[i].start < spans[i].count)
			return &spans[i];
	return NULL;
}

/* ---- processes ------------------------------------------------------------ */

/* Four ids after "\nKey:", or -EINVAL. */
static int ur_status_line(const char *status, const char *key, uint32_t ids[4])
{
	size_t klen = strlen(key);
	const char *p = status;
	char *end;

	while (strncmp(p, key, klen)) {
		p = strchr(p, '\n');
		if (!p)
			return -EINVAL;
		p++;
	}
	p += klen;
	for (int i = 0; i < 4; i++) {
		unsigned long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v > UINT32_MAX)
			return -EINVAL;
		ids[i] = (uint32_t)v;
		p = end;
	}
	return 0;
}

int uidrange_status_ids(const char *status, uint32_t uids[4], uint32_t gids[4])
{
	if (ur_status_line(status, "Uid:", uids) < 0 || ur_status_line(status, "Gid:", gids) < 0)
		return -EINVAL;
	return 0;
}

static int ur_proc_cmp(const void *a, const void *b)
{
	const struct uidrange_proc_id *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	if (x->gid != y->gid)
		return x->gid ? 1 : -1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* Append the distinct ids of one process. */
static int ur_proc_add(struct uidrange_host *h, size_t *cap, pid_t pid, const uint32_t ids[4],
		       bool gid)
{
	for (int i = 0; i < 4; i++) {
		bool seen = false;

		for (int j = 0; j < i; j++)
			seen |= ids[j] == ids[i];
		if (seen)
			continue;
		if (h->nprocs == *cap) {
			size_t ncap = *cap ? 2 * *cap : 256;
			struct uidrange_proc_id *np = realloc(h->procs, ncap * sizeof(*np));

			if (!np)
				return -ENOMEM;
			h->procs = np;
			*cap = ncap;
		}
		h->procs[h->nprocs++] = (struct uidrange_proc_id){ids[i], gid, pid};
	}
	return 0;
}

static int ur_proc_read(struct uidrange_host *h)
{
	uint32_t uids[4], gids[4];
	char path[sizeof(h->proc) + 300], buf[2048];
	struct dirent *de;
	size_t cap = 0;
	int fd, rc = 0;
	ssize_t got;
	pid_t pid;
	DIR *d;

	d = opendir(h->proc);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", h->proc, de->d_name);
		/* Gone since readdir(): it holds nothing any more. */
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		/* Uid: and Gid: are among the first ten lines. */
		got = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (got <= 0)
			continue;
		buf[got] = '\0';
		if (uidrange_status_ids(buf, uids, gids) < 0)
			continue;
		pid = (pid_t)atoi(de->d_name);
		if ((rc = ur_proc_add(h, &cap, pid, uids, false)) < 0 ||
		    (rc = ur_proc_add(h, &cap, pid, gids, true)) < 0)
			break;
	}
	closedir(d);
	if (rc == 0 && h->nprocs)
		qsort(h->procs, h->nprocs, sizeof(*h->procs), ur_proc_cmp);
	return rc;
}

/* The first process that has id (a uid before a gid), or NULL. */
static const struct uidrange_proc_id *ur_proc_of(const struct uidrange_host *h, uint32_t id)
{
	size_t lo = 0, hi = h->nprocs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->procs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < h->nprocs && h->procs[lo].id == id ? &h->procs[lo] : NULL;
}

int uidrange_host_read(struct uidrange_host *h, const char *subuid, const char *subgid,
		       const char *proc)
{
	int rc;

	memset(h, 0, sizeof(*h));
	snprintf(h->proc, sizeof(h->proc), "%s", proc ? proc : "/proc");
	if ((rc = ur_subid_read(subuid ? subuid : "/etc/subuid", &h->sub[0], &h->nsub[0])) < 0 ||
	    (rc = ur_subid_read(subgid ? subgid : "/etc/subgid", &h->sub[1], &h->nsub[1])) < 0 ||
	    (rc = ur_proc_read(h)) < 0)
		goto fail;
	return 0;
fail:
	uidrange_host_free(h);
	return rc;
}

void uidrange_host_free(struct uidrange_host *h)
{
	free(h->sub[0]);
	free(h->sub[1]);
	free(h->procs);
	memset(h, 0, sizeof(*h));
}

/* ---- checking a block ----------------------------------------------------- */

uint32_t uidrange_step(unsigned n)
{
	uint32_t step = 1;

	if (n == 0)
		return 0;
	while (step < n)
		step <<= 1;
	return step;
}

/* The subid spans and the processes. */
static bool ur_taken_cheap(const struct uidrange_host *h, uint32_t id, struct uidrange_taken *t)
{
	const struct uidrange_span *s;
	const struct uidrange_proc_id *p;
	char comm[32] = "", path[sizeof(h->proc) + 32];
	FILE *f;

	for (int k = 0; k < 2; k++) {
		if ((s = ur_span_of(h->sub[k], h->nsub[k], id))) {
			t->why = k ? UIDRANGE_SUBGID : UIDRANGE_SUBUID;
			snprintf(t->who, sizeof(t->who), "%s:%llu:%llu", s->owner,
				 (unsigned long long)s->start, (unsigned long long)s->count);
			return true;
		}
	}
	if (!(p = ur_proc_of(h, id)))
		return false;
	t->why = p->gid ? UIDRANGE_PROC_GID : UIDRANGE_PROC_UID;
	snprintf(path, sizeof(path), "%s/%d/comm", h->proc, (int)p->pid);
	if ((f = fopen(path, "re"))) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(t->who, sizeof(t->who), "%d (%s)", (int)p->pid, comm[0] ? comm : "gone");
	return true;
}

/* The user database (NSS). */
static bool ur_taken_nss(uint32_t id, struct uidrange_taken *t)
{
	struct passwd *pw;
	struct group *gr;

	if ((pw = getpwuid((uid_t)id))) {
		t->why = UIDRANGE_USER;
		snprintf(t->who, sizeof(t->who), "%s", pw->pw_name);
		return true;
	}
	if ((gr = getgrgid((gid_t)id))) {
		t->why = UIDRANGE_GROUP;
		snprintf(t->who, sizeof(t->who), "%s", gr->gr_name);
		return true;
	}
	return false;
}

int uidrange_check(const struct uidrange_host *h, uint32_t base, unsigned n,
		   struct uidrange_taken *t)
{
	struct uidrange_taken cheap = {.why = UIDRANGE_FREE};
	uint64_t end = (uint64_t)base + n, stop = end;

	memset(t, 0, sizeof(*t));
	if (n == 0 || end - 1 > UR_ID_MAX)
		return -EINVAL;
	for (uint64_t id = base; id < end; id++)
		if (ur_taken_cheap(h, (uint32_t)id, &cheap)) {
			cheap.id = (uint32_t)id;
			stop = id + 1;
			break;
		}
	for (uint64_t id = base; id < stop; id++)
		if (ur_taken_nss((uint32_t)id, t)) {
			t->id = (uint32_t)id;
			return -EBUSY;
		}
	if (cheap.why == UIDRANGE_FREE)
		return 0;
	*t = cheap;
	return -EBUSY;
}

int uidrange_find(const struct uidrange_host *h, uint32_t first, uint32_t last, unsigned n,
		  uint32_t *bases, unsigned max)
{
	uint64_t step = uidrange_step(n);
	struct uidrange_taken t;
	unsigned found = 0;

	if (n == 0 || last > UR_ID_MAX)
		return -EINVAL;
	for (uint64_t b = first; b + n - 1 <= last && found < max; b += step)
		if (uidrange_check(h, (uint32_t)b, n, &t) == 0)
			bases[found++] = (uint32_t)b;
	return (int)found;
}

/* ---- locks ------------------------------------------------------------------ */

void uidrange_unlock(struct uidrange *r)
{
	for (unsigned i = 0; r->fds && i < r->n; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	free(r->fds);
	memset(r, 0, sizeof(*r));
}

int uidrange_lock(struct uidrange *r, uint32_t base, unsigned n, uint32_t *held)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen;
	int rc, len, fd;

	if (n == 0 || (uint64_t)base + n - 1 > UR_ID_MAX)
		return -EINVAL;
	r->base = base;
	r->n = n;
	r->fds = malloc(n * sizeof(*r->fds));
	if (!r->fds) {
		memset(r, 0, sizeof(*r));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++)
		r->fds[i] = -1;
	for (unsigned i = 0; i < n; i++) {
		/* Abstract: sun_path[0] is '\0', the name is not NUL-terminated. */
		len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "valetd-id-%u", base + i);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			goto fail;
		}
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
		if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
			rc = -errno;
			close(fd);
			if (rc == -EADDRINUSE && held)
				*held = base + i;
			goto fail;
		}
		r->fds[i] = fd;
	}
	return 0;
fail:
	uidrange_unlock(r);
	return rc;
}

int uidrange_lock_first(struct uidrange *r, const uint32_t *bases, unsigned nbases, unsigned n)
{
	int rc = -EADDRINUSE;

	for (unsigned i = 0; i < nbases && rc == -EADDRINUSE; i++)
		if ((rc = uidrange_lock(r, bases[i], n, NULL)) == 0)
			return (int)i;
	return rc;
}
