/*
 * loadgen.c - an HTTP/1.1 load generator for valetd's job API.
 *
 * Theory of operation: C keep-alive connections (raw non-blocking sockets on
 * one epoll loop) share a counter of N job submissions. A connection sends
 * POST /api/jobs, and when the whole answer is in, sends the next one; no
 * pipelining. A 503 (queue full) is counted and the same request is re-sent
 * on that connection after 1 ms. The 202 answers give the job ids.
 *
 * Then one blocking connection waits for the jobs: it polls GET
 * /api/jobs/:id for the last few submitted ids (the queue is FIFO, so they
 * finish last), lists the final jobs once (GET /api/jobs?status=...,
 * paginated, matched by id) and polls any job still missing. Every number
 * but the HTTP submit latency comes from the server's own timestamps:
 *   throughput = jobs / (max completed_at - min created_at)
 *   latency    = completed_at - created_at, p50 and p99
 *   kill       = completed_at - started_at - timeout, for jobs that sleep
 *                10 s under a 50 ms timeout (--kill N)
 * --park N first submits N jobs with run_at an hour ahead, so they sit in
 * the daemon during the measurement; they are not counted.
 *
 * Progress goes to stderr, the report to stdout (text, or one JSON object
 * with --json). Exit status 0 when every job was accepted and reached a
 * final state, 1 otherwise, 2 for bad usage. --selftest checks the RFC 3339
 * and HTTP response parsers.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define LG_RETRY_NS 1000000LL   /* re-send a 503'd request after 1 ms */
#define LG_MAX_ATTEMPTS 5       /* connection failures for one request */
#define LG_PAGE 5000            /* list page size */
#define LG_TAIL_IDS 8           /* last-submitted ids polled first */
#define LG_ID_MAX 40

struct opts {
	const char *host;
	const char *port;
	long jobs;
	int conns;
	const char *body;
	const char *task;
	const char *params;
	double timeout_s;
	long park;
	long kill;
	bool json;
};

/* One answer; body points into the connection buffer or into owned. */
struct http_resp {
	int status;
	size_t total;           /* bytes of the buffer the answer used */
	const char *body;
	size_t body_len;
	char *owned;            /* decoded chunked body; new */
	bool close;
};

struct conn {
	int fd;
	char *out;
	size_t out_len, out_off;
	char *in;
	size_t in_len, in_cap;
	long req;               /* request index in flight, -1 when idle */
	int64_t sent_ns;
	int64_t retry_ns;       /* > 0: re-send req at this monotonic time */
	int attempts;
};

/* One batch of submissions. */
struct phase {
	const char *what;
	long n;
	json_t *tmpl;           /* the job request; task_params {"i":k} when vary */
	bool vary;
	char (*ids)[LG_ID_MAX]; /* new; the job id of request k ("" on error) */
	double *submit_ms;      /* client-side latency of each 202 */
	long nsubmit_ms;
	long next, done, accepted, retries, errors;
	double seconds;
};

enum js { JS_UNKNOWN = 0, JS_WAITING, JS_COMPLETED, JS_FAILED, JS_CANCELLED };

struct jobrec {
	enum js state;
	int64_t created, started, completed; /* ns since the epoch, 0 = absent */
	double timeout_s;
	bool timed_out;
};

static const struct opts *g_opts;
static int64_t g_deadline_ns;
static char g_first_failure[256]; /* the first failure_reason seen, for the report */

/* --- time ---------------------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool digits(const char **s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if ((*s)[i] < '0' || (*s)[i] > '9')
			return false;
		*v = *v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	return true;
}

static bool expect_char(const char **s, const char *set)
{
	if (**s == '\0' || !strchr(set, **s))
		return false;
	(*s)++;
	return true;
}

/*
 * RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)) to ns
 * since the epoch. Fractions beyond 9 digits are truncated. 0 or -EINVAL.
 */
static int rfc3339_parse(const char *s, int64_t *ns)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, dim;
	int64_t frac = 0, scale = 100000000;

	if (!digits(&s, 4, &y) || !expect_char(&s, "-") || !digits(&s, 2, &mo) ||
	    !expect_char(&s, "-") || !digits(&s, 2, &d) || !expect_char(&s, "Tt ") ||
	    !digits(&s, 2, &h) || !expect_char(&s, ":") || !digits(&s, 2, &mi) ||
	    !expect_char(&s, ":") || !digits(&s, 2, &sec))
		return -EINVAL;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (*s - '0') * scale;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else {
		sign = *s == '+' ? 1 : *s == '-' ? -1 : 0;
		if (!sign)
			return -EINVAL;
		s++;
		if (!digits(&s, 2, &oh) || !expect_char(&s, ":") || !digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	dim = mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
	if (d < 1 || d > dim)
		return -EINVAL;
	*ns = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) -
	       sign * (oh * 3600 + om * 60)) * 1000000000LL + frac;
	return 0;
}

static void rfc3339_format(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --- HTTP responses ------------------------------------------------------ */

static bool header_is(const char *line, size_t len, const char *name, const char *token)
{
	size_t nlen = strlen(name);
	char value[256];

	if (len <= nlen || strncasecmp(line, name, nlen) != 0)
		return false;
	if (!token)
		return true;
	len -= nlen;
	if (len >= sizeof(value))
		len = sizeof(value) - 1;
	memcpy(value, line + nlen, len);
	value[len] = '\0';
	return strcasestr(value, token) != NULL;
}

/* Walks a chunked body from pos; 1 complete (body decoded into r), 0 more, -1 bad. */
static int parse_chunked(const char *buf, size_t len, size_t pos, struct http_resp *r)
{
	size_t start = pos, out = 0;
	unsigned long size;
	const char *eol;
	char *end;

	for (int pass = 0; pass < 2; pass++) {
		for (pos = start;;) {
			eol = memmem(buf + pos, len - pos, "\r\n", 2);
			if (!eol)
				return 0;
			size = strtoul(buf + pos, &end, 16);
			if (end == buf + pos)
				return -1;
			pos = (size_t)(eol - buf) + 2;
			if (size == 0)
				break;
			if (len - pos < size + 2)
				return 0;
			if (pass == 1)
				memcpy(r->owned + out, buf + pos, size);
			out += size;
			pos += size + 2;
		}
		if (len - pos >= 2 && memcmp(buf + pos, "\r\n", 2) == 0) {
			r->total = pos + 2;
		} else {
			eol = memmem(buf + pos, len - pos, "\r\n\r\n", 4);
			if (!eol)
				return 0;
			r->total = (size_t)(eol - buf) + 4;
		}
		if (pass == 0) {
			r->owned = malloc(out + 1);
			if (!r->owned)
				return -1;
			r->body_len = out;
			out = 0;
		}
	}
	r->body = r->owned;
	return 1;
}

/*
 * Parses one answer at the start of buf. eof: the peer closed, so a body
 * without a length ends here. 1 complete, 0 incomplete, -1 malformed.
 */
static int http_parse(const char *buf, size_t len, bool eof, struct http_resp *r)
{
	const char *hend = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL, *line, *eol;
	bool chunked = false;
	long long clen = -1;
	size_t head;

	memset(r, 0, sizeof(*r));
	if (!hend)
		return eof ? -1 : 0;
	head = (size_t)(hend - buf) + 4;
	if (head < 16 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -1;
	r->status = atoi(buf + 9);
	for (line = memmem(buf, head, "\r\n", 2) + 2; line < hend; line = eol + 2) {
		eol = memmem(line, (size_t)(hend + 2 - line), "\r\n", 2);
		if (header_is(line, (size_t)(eol - line), "content-length:", NULL))
			clen = strtoll(line + 15, NULL, 10);
		else if (header_is(line, (size_t)(eol - line), "transfer-encoding:", "chunked"))
			chunked = true;
		else if (header_is(line, (size_t)(eol - line), "connection:", "close"))
			r->close = true;
	}
	if (r->status < 200 || r->status == 204 || r->status == 304) {
		r->total = head;
		r->body = buf + head;
		return 1;
	}
	if (chunked)
		return parse_chunked(buf, len, head, r);
	if (clen < 0) {
		if (!eof)
			return 0;
		clen = (long long)(len - head);
		r->close = true;
	}
	if (len - head < (size_t)clen)
		return eof ? -1 : 0;
	r->total = head + (size_t)clen;
	r->body = buf + head;
	r->body_len = (size_t)clen;
	return 1;
}

/* --- connections --------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* A blocking connect; the loop then uses MSG_DONTWAIT. 0 or -errno. */
static int conn_open(struct conn *c)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	struct timeval rcvtimeo = { 60, 0 };
	int one = 1, err;

	err = getaddrinfo(g_opts->host, g_opts->port, &hints, &ai);
	if (err)
		die("cannot resolve host: %s", gai_strerror(err));
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		err = -errno;
		freeaddrinfo(ai);
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return err;
	}
	freeaddrinfo(ai);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Only the blocking wait connection blocks; a hung server must not hang us. */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &rcvtimeo, sizeof(rcvtimeo));
	c->in_len = 0;
	return 0;
}

/* Reads what is there; 1 data, 0 EOF, -EAGAIN, or another -errno. */
static int conn_read(struct conn *c, int flags)
{
	ssize_t got;

	if (c->in_cap - c->in_len < 65536) {
		size_t cap = c->in_cap ? c->in_cap * 2 : 131072;
		char *in = realloc(c->in, cap);

		if (!in)
			die("out of memory");
		c->in = in;
		c->in_cap = cap;
	}
	got = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, flags);
	if (got < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	c->in_len += (size_t)got;
	return got > 0;
}

static void conn_consume(struct conn *c, struct http_resp *r)
{
	memmove(c->in, c->in + r->total, c->in_len - r->total);
	c->in_len -= r->total;
	free(r->owned);
	r->owned = NULL;
}

static void conn_set_request(struct conn *c, const char *method, const char *path,
			     const char *body)
{
	size_t blen = body ? strlen(body) : 0;
	int n;

	free(c->out);
	n = asprintf(&c->out,
		     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, g_opts->host, g_opts->port, blen, body ? body : "");
	if (n < 0)
		die("out of memory");
	c->out_len = (size_t)n;
	c->out_off = 0;
}

/* Writes what the socket takes; 0 (maybe partial) or -errno. */
static int conn_write(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t put = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				   MSG_NOSIGNAL | MSG_DONTWAIT);

		if (put < 0)
			return errno == EWOULDBLOCK ? 0 : -errno;
		c->out_off += (size_t)put;
	}
	return 0;
}

/*
 * A blocking request on c, reconnecting once when a kept-alive connection
 * turns out to be closed. 0 with r filled (release with conn_consume), or -errno.
 */
static int sync_request(struct conn *c, const char *method, const char *path,
			struct http_resp *r)
{
	int err, attempt, p;

	conn_set_request(c, method, path, NULL);
	for (attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0 && (err = conn_open(c)) < 0)
			return err;
		c->out_off = 0;
		c->in_len = 0;
		while ((err = conn_write(c)) == 0 && c->out_off < c->out_len)
			;
		while (err == 0) {
			p = http_parse(c->in, c->in_len, false, r);
			if (p == 1) {
				if (r->close) {
					close(c->fd);
					c->fd = -1;
				}
				return 0;
			}
			if (p < 0)
				return -EPROTO;
			err = conn_read(c, 0);
			if (err == 0 && http_parse(c->in, c->in_len, true, r) == 1)
				return 0;
			err = err == 1 ? 0 : -ECONNRESET;
		}
		close(c->fd);
		c->fd = -1;
	}
	return err;
}

/* --- the submit loop ----------------------------------------------------- */

static void phase_send(struct conn *c, struct phase *ph, int epfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	char *body;

	if (ph->vary)
		json_object_set_new(ph->tmpl, "task_params", json_pack("{s:I}", "i",
								       (json_int_t)c->req));
	body = json_dumps(ph->tmpl, JSON_COMPACT);
	if (!body)
		die("out of memory");
	conn_set_request(c, "POST", "/api/jobs", body);
	free(body);
	c->retry_ns = 0;
	c->sent_ns = mono_ns();
	if (conn_write(c) < 0) /* the peer is gone; EPOLLIN reports it */
		c->out_off = c->out_len;
	if (c->out_off < c->out_len)
		ev.events |= EPOLLOUT;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void phase_next(struct conn *c, struct phase *ph, int epfd)
{
	c->attempts = 0;
	c->req = ph->next < ph->n ? ph->next++ : -1;
	if (c->req >= 0)
		phase_send(c, ph, epfd);
}

static void phase_reconnect(struct conn *c, struct phase *ph, int epfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	int err;

	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	err = conn_open(c);
	if (err < 0)
		die("reconnect failed: %s", strerror(-err));
	epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
	if (c->req < 0)
		return;
	if (++c->attempts > LG_MAX_ATTEMPTS) {
		fprintf(stderr, "loadgen: request %ld: connection lost %d times\n", c->req,
			c->attempts);
		ph->errors++;
		ph->done++;
		phase_next(c, ph, epfd);
		return;
	}
	phase_send(c, ph, epfd);
}

static void phase_answer(struct conn *c, struct phase *ph, struct http_resp *r, int epfd)
{
	if (r->status == 503) {
		ph->retries++;
		c->retry_ns = mono_ns() + LG_RETRY_NS;
		return;
	}
	ph->done++;
	if (r->status == 202) {
		json_t *job = json_loadb(r->body, r->body_len, 0, NULL);
		const char *id = json_string_value(json_object_get(job, "id"));

		ph->submit_ms[ph->nsubmit_ms++] = (double)(mono_ns() - c->sent_ns) / 1e6;
		if (id && strlen(id) < LG_ID_MAX) {
			strcpy(ph->ids[c->req], id);
			ph->accepted++;
		} else {
			ph->errors++;
		}
		json_decref(job);
	} else {
		if (ph->errors++ < 3)
			fprintf(stderr, "loadgen: %s: HTTP %d: %.*s\n", ph->what, r->status,
				(int)(r->body_len > 300 ? 300 : r->body_len), r->body);
	}
	phase_next(c, ph, epfd);
}

/* Handles readable data on c: every complete answer, EOF, errors. */
static void phase_input(struct conn *c, struct phase *ph, int epfd)
{
	struct http_resp r;
	int rd, p;

	rd = conn_read(c, MSG_DONTWAIT);
	if (rd == -EAGAIN)
		return;
	p = http_parse(c->in, c->in_len, rd <= 0, &r);
	if (p == 1) {
		bool reopen = r.close || rd <= 0;

		if (c->req >= 0)
			phase_answer(c, ph, &r, epfd);
		conn_consume(c, &r);
		if (reopen)
			phase_reconnect(c, ph, epfd);
	} else if (p < 0 || rd <= 0) {
		phase_reconnect(c, ph, epfd);
	}
}

static int epoll_timeout_ms(struct conn *conns, int nconns)
{
	int64_t now = mono_ns(), wait = g_deadline_ns - now;

	for (int i = 0; i < nconns; i++)
		if (conns[i].retry_ns && conns[i].retry_ns - now < wait)
			wait = conns[i].retry_ns - now;
	return wait <= 0 ? 0 : (int)((wait + 999999) / 1000000);
}

static void phase_run(struct phase *ph, struct conn *conns, int nconns, int epfd)
{
	struct epoll_event events[64];
	int64_t start = mono_ns(), now;
	int i, n;

	ph->ids = calloc((size_t)ph->n + 1, LG_ID_MAX);
	ph->submit_ms = calloc((size_t)ph->n + 1, sizeof(double));
	if (!ph->ids || !ph->submit_ms)
		die("out of memory");
	for (i = 0; i < nconns; i++)
		phase_next(&conns[i], ph, epfd);
	while (ph->done < ph->n) {
		n = epoll_wait(epfd, events, 64, epoll_timeout_ms(conns, nconns));
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;

			if (events[i].events & EPOLLOUT && conn_write(c) == 0 &&
			    c->out_off == c->out_len) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				phase_input(c, ph, epfd);
		}
		now = mono_ns();
		for (i = 0; i < nconns; i++)
			if (conns[i].retry_ns && conns[i].retry_ns <= now)
				phase_send(&conns[i], ph, epfd);
		if (now > g_deadline_ns)
			die("%s: timed out submitting", ph->what);
	}
	ph->seconds = (double)(mono_ns() - start) / 1e9;
}

/* --- waiting for the jobs ------------------------------------------------ */

static enum js parse_job(json_t *job, struct jobrec *rec)
{
	const char *status = json_string_value(json_object_get(job, "status"));
	const char *t;

	rec->state = !status ? JS_UNKNOWN :
		     !strcmp(status, "COMPLETED") ? JS_COMPLETED :
		     !strcmp(status, "FAILED") ? JS_FAILED :
		     !strcmp(status, "CANCELLED") ? JS_CANCELLED : JS_WAITING;
	if ((t = json_string_value(json_object_get(job, "created_at"))))
		rfc3339_parse(t, &rec->created);
	if ((t = json_string_value(json_object_get(job, "started_at"))))
		rfc3339_parse(t, &rec->started);
	if ((t = json_string_value(json_object_get(job, "completed_at"))))
		rfc3339_parse(t, &rec->completed);
	rec->timeout_s = json_number_value(json_object_get(job, "timeout"));
	t = json_string_value(json_object_get(job, "failure_reason"));
	rec->timed_out = json_is_true(json_object_get(json_object_get(job, "outcome"),
						      "timed_out")) ||
			 (t && !strncmp(t, "timed out", 9));
	if (t && rec->state == JS_FAILED && !g_first_failure[0])
		snprintf(g_first_failure, sizeof(g_first_failure), "%s", t);
	return rec->state;
}

/* Polls GET /api/jobs/:id until the job is final; false at the deadline. */
static bool poll_job(struct conn *c, const char *id, struct jobrec *rec)
{
	struct http_resp r;
	char path[128];
	json_t *job;

	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	while (mono_ns() < g_deadline_ns) {
		if (sync_request(c, "GET", path, &r) < 0)
			die("GET %s failed", path);
		job = r.status == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
		conn_consume(c, &r);
		if (job && parse_job(job, rec) >= JS_COMPLETED) {
			json_decref(job);
			return true;
		}
		json_decref(job);
		sleep_ms(5);
	}
	return false;
}

static const char (*g_sort_ids)[LG_ID_MAX];

static int cmp_index(const void *a, const void *b)
{
	return strcmp(g_sort_ids[*(const long *)a], g_sort_ids[*(const long *)b]);
}

static int cmp_key(const void *key, const void *b)
{
	return strcmp(key, g_sort_ids[*(const long *)b]);
}

/* Lists the jobs in one status page by page and files those that are ours. */
static void fetch_list(struct conn *c, const char *status, struct phase *ph, long *order,
		       struct jobrec *recs)
{
	char path[128], first[LG_ID_MAX] = "", prev_first[LG_ID_MAX] = "";
	struct http_resp r;
	size_t i, count;
	long offset = 0;
	json_t *page, *jobs, *job;

	do {
		snprintf(path, sizeof(path), "/api/jobs?status=%s&limit=%d&offset=%ld", status,
			 LG_PAGE, offset);
		if (sync_request(c, "GET", path, &r) < 0)
			die("GET %s failed", path);
		page = r.status == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
		conn_consume(c, &r);
		jobs = json_object_get(page, "jobs");
		count = json_array_size(jobs);
		json_array_foreach(jobs, i, job) {
			const char *id = json_string_value(json_object_get(job, "id"));
			long *hit = id ? bsearch(id, order, (size_t)ph->n, sizeof(long),
						 cmp_key) : NULL;

			if (i == 0 && id)
				snprintf(first, sizeof(first), "%s", id);
			if (hit)
				parse_job(job, &recs[*hit]);
		}
		json_decref(page);
		offset += (long)count;
		/* A server that ignores limit or offset would repeat itself: stop. */
		if (count > LG_PAGE || (count && !strcmp(first, prev_first)))
			break;
		memcpy(prev_first, first, sizeof(first));
	} while (count > 0);
}

/* Waits until every accepted job of ph is final; returns how many are. */
static long wait_final(struct conn *c, struct phase *ph, struct jobrec *recs)
{
	static const char *const finals[] = { "completed", "failed", "cancelled" };
	long *order = malloc(((size_t)ph->n + 1) * sizeof(long)), k, tail = 0, nfinal = 0;

	if (!order)
		die("out of memory");
	for (k = ph->n - 1; k >= 0 && tail < LG_TAIL_IDS; k--) {
		if (ph->ids[k][0] && !poll_job(c, ph->ids[k], &recs[k]))
			goto out;
		tail += ph->ids[k][0] != '\0';
	}
	for (k = 0; k < ph->n; k++)
		order[k] = k;
	g_sort_ids = (const char (*)[LG_ID_MAX])ph->ids;
	qsort(order, (size_t)ph->n, sizeof(long), cmp_index);
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
		fetch_list(c, finals[i], ph, order, recs);
	for (k = 0; k < ph->n; k++) {
		if (ph->ids[k][0] && recs[k].state < JS_COMPLETED && !poll_job(c, ph->ids[k], &recs[k]))
			break;
	}
out:
	for (k = 0; k < ph->n; k++)
		nfinal += recs[k].state >= JS_COMPLETED;
	free(order);
	return nfinal;
}

/* --- statistics and report ----------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of v[0..n) (sorted in place); NAN when empty. */
static double percentile(double *v, long n, double q)
{
	long rank;

	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	rank = (long)ceil(q * (double)n);
	return v[rank < 1 ? 0 : rank - 1];
}

static json_t *num(double v)
{
	return isfinite(v) ? json_real(round(v * 1000) / 1000) : json_null();
}

/* Adds the client-side figures of a submit phase to out. */
static void report_submit(struct phase *ph, json_t *out)
{
	json_object_set_new(out, "jobs", json_integer(ph->n));
	json_object_set_new(out, "accepted", json_integer(ph->accepted));
	json_object_set_new(out, "submit_errors", json_integer(ph->errors));
	json_object_set_new(out, "retries_503", json_integer(ph->retries));
	json_object_set_new(out, "submit_seconds", num(ph->seconds));
	json_object_set_new(out, "submit_rate", num((double)ph->done / ph->seconds));
	json_object_set_new(out, "submit_latency_ms",
			    json_pack("{s:o,s:o}", "p50",
				      num(percentile(ph->submit_ms, ph->nsubmit_ms, 0.50)), "p99",
				      num(percentile(ph->submit_ms, ph->nsubmit_ms, 0.99))));
}

/* Adds the throughput/latency (or, kill, the kill latency) figures to out. */
static bool report_phase(struct phase *ph, struct jobrec *recs, long nfinal, bool kill,
			 json_t *out)
{
	double *lat = calloc((size_t)ph->n + 1, sizeof(double)), span = NAN, p50, p99;
	int64_t first = INT64_MAX, last = INT64_MIN;
	long k, nlat = 0, ntimed_out = 0, count[JS_CANCELLED + 1] = { 0 };

	if (!lat)
		die("out of memory");
	for (k = 0; k < ph->n; k++) {
		struct jobrec *r = &recs[k];

		count[r->state]++;
		if (r->state < JS_COMPLETED || !r->created || !r->completed)
			continue;
		first = r->created < first ? r->created : first;
		last = r->completed > last ? r->completed : last;
		if (!kill)
			lat[nlat++] = (double)(r->completed - r->created) / 1e6;
		else if (r->state == JS_FAILED && r->timed_out && r->started && ++ntimed_out)
			lat[nlat++] = (double)(r->completed - r->started) / 1e6 -
				      (r->timeout_s > 0 ? r->timeout_s : 0.05) * 1000;
	}
	if (last > first)
		span = (double)(last - first) / 1e9;
	report_submit(ph, out);
	json_object_set_new(out, "completed", json_integer(count[JS_COMPLETED]));
	json_object_set_new(out, "failed", json_integer(count[JS_FAILED]));
	json_object_set_new(out, "cancelled", json_integer(count[JS_CANCELLED]));
	json_object_set_new(out, "unfinished", json_integer(ph->accepted - nfinal));
	json_object_set_new(out, "span_seconds", num(span));
	json_object_set_new(out, "throughput", num((double)nfinal / span));
	if (kill)
		json_object_set_new(out, "timed_out", json_integer(ntimed_out));
	p50 = percentile(lat, nlat, 0.50); /* sorts lat */
	p99 = percentile(lat, nlat, 0.99);
	json_object_set_new(out, kill ? "kill_ms" : "latency_ms",
			    json_pack("{s:o,s:o,s:o}", "p50", num(p50), "p99", num(p99), "max",
				      num(nlat ? lat[nlat - 1] : NAN)));
	free(lat);
	return ph->errors == 0 && nfinal == ph->accepted && ph->accepted == ph->n;
}

/* A figure of the report as text, "n/a" when missing; buf: 32 bytes. */
static const char *fig(json_t *obj, const char *key, const char *sub, char *buf)
{
	json_t *v = json_object_get(obj, key);

	if (sub)
		v = json_object_get(v, sub);
	if (json_is_integer(v))
		snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, 32, "%.2f", json_real_value(v));
	else
		return "n/a";
	return buf;
}

static void print_text(json_t *report)
{
	char f[8][32];
	const char *name, *lat;
	json_t *ph;

	json_object_foreach(report, name, ph) {
		if (!json_is_object(ph))
			continue;
		printf("%s: %s jobs accepted in %s s (%s/s), %s errors, %s 503 retries; "
		       "HTTP submit latency p50 %s ms, p99 %s ms\n", name,
		       fig(ph, "accepted", NULL, f[0]), fig(ph, "submit_seconds", NULL, f[1]),
		       fig(ph, "submit_rate", NULL, f[2]), fig(ph, "submit_errors", NULL, f[3]),
		       fig(ph, "retries_503", NULL, f[4]), fig(ph, "submit_latency_ms", "p50", f[5]),
		       fig(ph, "submit_latency_ms", "p99", f[6]));
		if (!json_object_get(ph, "completed"))
			continue;
		printf("%s: %s completed, %s failed, %s unfinished; %s jobs/s over %s s "
		       "(server clock)\n", name, fig(ph, "completed", NULL, f[0]),
		       fig(ph, "failed", NULL, f[1]), fig(ph, "unfinished", NULL, f[2]),
		       fig(ph, "throughput", NULL, f[3]), fig(ph, "span_seconds", NULL, f[4]));
		if (json_object_get(ph, "first_failure"))
			printf("%s: first failure: %s\n", name,
			       json_string_value(json_object_get(ph, "first_failure")));
		lat = json_object_get(ph, "kill_ms") ? "kill_ms" : "latency_ms";
		printf("%s: %s p50 %s ms, p99 %s ms, max %s ms\n", name,
		       strcmp(lat, "kill_ms") ? "submit-to-complete latency" :
		       "kill latency (completed - started - timeout)",
		       fig(ph, lat, "p50", f[0]), fig(ph, lat, "p99", f[1]), fig(ph, lat, "max", f[2]));
	}
}

/* --- self test ----------------------------------------------------------- */

static int selftest(void)
{
	static const struct {
		const char *text;
		int64_t ns; /* -1: must be rejected */
	} times[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-11-27T01:02:03Z", 1795741323LL * 1000000000 },
		{ "2026-11-27T01:02:03.123456Z", 1795741323LL * 1000000000 + 123456000 },
		{ "2026-11-27t01:02:03.5z", 1795741323LL * 1000000000 + 500000000 },
		{ "2026-11-27T02:32:03.5+01:30", 1795741323LL * 1000000000 + 500000000 },
		{ "2026-11-26T20:02:03-05:00", 1795741323LL * 1000000000 },
		{ "2026-11-27T01:02:03.1234567891234Z", 1795741323LL * 1000000000 + 123456789 },
		{ "2000-02-29T00:00:00Z", 951782400LL * 1000000000 },
		{ "2100-03-01T00:00:00Z", 4107542400LL * 1000000000 },
		{ "1969-12-31T23:59:59.75Z", -250000000 },
		{ "2001-02-29T00:00:00Z", -1 },
		{ "2100-02-29T00:00:00Z", -1 },
		{ "2026-11-27T01:02:03", -1 },
		{ "2026-11-27T01:02:03.Z", -1 },
		{ "2026-13-01T00:00:00Z", -1 },
		{ "2026-11-27T24:00:00Z", -1 },
		{ "2026-11-27T01:02:03+0100", -1 },
		{ "2026-11-27T01:02:03Zjunk", -1 },
		{ "", -1 },
	};
	static const struct {
		const char *raw;
		bool eof;
		int want, status;
		const char *body;
		size_t total; /* 0: the whole raw text */
	} answers[] = {
		{ "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}", false, 1, 202, "{}", 0 },
		{ "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{", false, 0, 0, NULL, 0 },
		{ "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{", true, -1, 0, NULL, 0 },
		{ "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxHTTP/1.1 204 No", false, 1, 200,
		  "x", 39 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg"
		  "\r\n0\r\n\r\n", false, 1, 200, "abcdefg", 0 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n", false,
		  0, 0, NULL, 0 },
		{ "HTTP/1.1 204 No Content\r\n\r\n", false, 1, 204, "", 0 },
		{ "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy", true, 1, 503,
		  "busy", 0 },
		{ "HTTP/1.1 200 OK\r\n\r\npartial", false, 0, 0, NULL, 0 },
		{ "garbage\r\n\r\n", false, -1, 0, NULL, 0 },
	};
	struct http_resp r;
	char buf[64];
	int64_t ns, now;
	int failed = 0, got;
	size_t i;

	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		ns = 0;
		got = rfc3339_parse(times[i].text, &ns);
		if (times[i].ns == -1 ? got != -EINVAL : (got != 0 || ns != times[i].ns)) {
			fprintf(stderr, "selftest: rfc3339_parse(\"%s\") = %d, %lld\n",
				times[i].text, got, (long long)ns);
			failed++;
		}
	}
	now = clock_ns(CLOCK_REALTIME) / 1000000000;
	rfc3339_format((time_t)now + 3600, buf, sizeof(buf));
	if (rfc3339_parse(buf, &ns) || ns != (now + 3600) * 1000000000) {
		fprintf(stderr, "selftest: format/parse round trip failed for %s\n", buf);
		failed++;
	}
	for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		const char *raw = answers[i].raw;

		got = http_parse(raw, strlen(raw), answers[i].eof, &r);
		if (got != answers[i].want ||
		    (got == 1 && (r.status != answers[i].status ||
				  r.body_len != strlen(answers[i].body) ||
				  memcmp(r.body, answers[i].body, r.body_len) != 0 ||
				  r.total != (answers[i].total ? answers[i].total : strlen(raw))))) {
			fprintf(stderr, "selftest: http_parse case %zu: got %d status %d\n", i, got,
				r.status);
			failed++;
		}
		free(r.owned);
	}
	fprintf(stderr, "selftest: %s\n", failed ? "FAILED" : "ok");
	return failed ? 1 : 0;
}

/* --- main ---------------------------------------------------------------- */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: loadgen [options]\n"
		"  --host HOST      server address (127.0.0.1)\n"
		"  --port PORT      server port (8080)\n"
		"  --jobs N         jobs to submit and time (10000; 0 with --kill)\n"
		"  --conns C        keep-alive connections (8)\n"
		"  --task NAME      task_name (dummytask)\n"
		"  --params JSON    task_params for every job (default {\"i\": k})\n"
		"  --body JSON      the whole job request for every job\n"
		"  --park N         first park N jobs with run_at an hour ahead (not timed)\n"
		"  --kill N         time the kill of N sleep jobs (10 s) under a 50 ms timeout\n"
		"  --timeout SEC    give up after SEC seconds in all (300)\n"
		"  --json           print the report as one JSON object\n"
		"  --selftest       check the RFC 3339 and HTTP parsers and exit\n");
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "loadgen: %s: expected an integer in [%ld, %ld], got \"%s\"\n",
			opt, min, max, s);
		exit(2);
	}
	return v;
}

static json_t *parse_object(const char *opt, const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

	if (!json_is_object(v)) {
		fprintf(stderr, "loadgen: %s: not a JSON object: %s\n", opt,
			v ? "wrong type" : err.text);
		exit(2);
	}
	return v;
}

/* The job request for the timed jobs (name "b") and the parked ones. */
static json_t *job_template(const struct opts *o, const char *name, bool *vary)
{
	json_t *t;

	*vary = false;
	if (o->body)
		return parse_object("--body", o->body);
	t = json_pack("{s:s,s:s}", "name", name, "task_name", o->task);
	if (o->params)
		json_object_set_new(t, "task_params", parse_object("--params", o->params));
	else
		*vary = true;
	return t;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' }, { "port", required_argument, NULL, 'p' },
		{ "jobs", required_argument, NULL, 'n' }, { "conns", required_argument, NULL, 'c' },
		{ "body", required_argument, NULL, 'b' }, { "task", required_argument, NULL, 't' },
		{ "params", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "park", required_argument, NULL, 'k' }, { "kill", required_argument, NULL, 'K' },
		{ "json", no_argument, NULL, 'j' }, { "selftest", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool jobs_set = false;
	char *end;
	int ch;

	*o = (struct opts){ .host = "127.0.0.1", .port = "8080", .jobs = 10000, .conns = 8,
			    .task = "dummytask", .timeout_s = 300 };
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': o->host = optarg; break;
		case 'p': parse_long("--port", optarg, 1, 65535); o->port = optarg; break;
		case 'n': o->jobs = parse_long("--jobs", optarg, 0, 100000000); jobs_set = true; break;
		case 'c': o->conns = (int)parse_long("--conns", optarg, 1, 4096); break;
		case 'b': o->body = optarg; break;
		case 't': o->task = optarg; break;
		case 'P': o->params = optarg; break;
		case 'k': o->park = parse_long("--park", optarg, 0, 100000000); break;
		case 'K': o->kill = parse_long("--kill", optarg, 0, 100000000); break;
		case 'j': o->json = true; break;
		case 'S': exit(selftest());
		case 'h': usage(stdout); exit(0);
		case 'T':
			o->timeout_s = strtod(optarg, &end);
			if (*end || !(o->timeout_s > 0)) {
				fprintf(stderr, "loadgen: --timeout: expected seconds > 0\n");
				exit(2);
			}
			break;
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (o->kill && !jobs_set)
		o->jobs = 0;
}

static void phase_free(struct phase *ph)
{
	json_decref(ph->tmpl);
	free(ph->ids);
	free(ph->submit_ms);
}

/* Submits ph, then (unless parking) waits and reports it under key. */
static bool run_phase(struct phase *ph, struct conn *conns, int nconns, int epfd,
		      struct conn *waiter, bool kill, const char *key, json_t *report)
{
	json_t *out = json_object();
	struct jobrec *recs;
	long nfinal;
	bool ok;

	fprintf(stderr, "loadgen: %s: submitting %ld jobs over %d connections\n", ph->what,
		ph->n, nconns);
	phase_run(ph, conns, nconns, epfd);
	fprintf(stderr, "loadgen: %s: %ld accepted in %.2f s (%ld 503 retries, %ld errors)\n",
		ph->what, ph->accepted, ph->seconds, ph->retries, ph->errors);
	if (!strcmp(key, "park")) {
		report_submit(ph, out);
		json_object_set_new(report, key, out);
		return ph->errors == 0;
	}
	recs = calloc((size_t)ph->n + 1, sizeof(*recs));
	if (!recs)
		die("out of memory");
	nfinal = wait_final(waiter, ph, recs);
	if (nfinal < ph->accepted)
		fprintf(stderr, "loadgen: %s: %ld of %ld jobs not final before the timeout\n",
			ph->what, ph->accepted - nfinal, ph->accepted);
	ok = report_phase(ph, recs, nfinal, kill, out);
	if (g_first_failure[0])
		json_object_set_new(out, "first_failure", json_string(g_first_failure));
	g_first_failure[0] = '\0';
	json_object_set_new(report, key, out);
	free(recs);
	return ok;
}

int main(int argc, char **argv)
{
	struct conn *conns, waiter = { .fd = -1, .req = -1 };
	json_t *report;
	struct opts o;
	char run_at[64];
	bool ok = true;
	int epfd, i;

	parse_opts(argc, argv, &o);
	g_opts = &o;
	signal(SIGPIPE, SIG_IGN);
	g_deadline_ns = mono_ns() + (int64_t)(o.timeout_s * 1e9);

	conns = calloc((size_t)o.conns, sizeof(*conns));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || epfd < 0)
		die("setup failed");
	for (i = 0; i < o.conns; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };
		int err = conn_open(&conns[i]);

		if (err < 0)
			die("cannot connect: %s", strerror(-err));
		conns[i].req = -1;
		epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	report = json_pack("{s:i}", "conns", o.conns);

	if (o.park > 0) {
		struct phase ph = { .what = "park", .n = o.park };

		ph.tmpl = job_template(&o, "park", &ph.vary);
		rfc3339_format(time(NULL) + 3600, run_at, sizeof(run_at));
		json_object_set_new(ph.tmpl, "run_at", json_string(run_at));
		ok &= run_phase(&ph, conns, o.conns, epfd, &waiter, false, "park", report);
		phase_free(&ph);
	}
	if (o.jobs > 0) {
		struct phase ph = { .what = "run", .n = o.jobs };

		ph.tmpl = job_template(&o, "b", &ph.vary);
		ok &= run_phase(&ph, conns, o.conns, epfd, &waiter, false, "run", report);
		phase_free(&ph);
	}
	if (o.kill > 0) {
		struct phase ph = { .what = "kill", .n = o.kill };

		ph.tmpl = json_pack("{s:s,s:s,s:{s:i},s:f}", "name", "kill", "task_name", "sleep",
				    "task_params", "seconds", 10, "timeout", 0.05);
		ok &= run_phase(&ph, conns, o.conns, epfd, &waiter, true, "kill", report);
		phase_free(&ph);
	}
	json_object_set_new(report, "ok", json_boolean(ok));

	if (o.json) {
		json_dumpf(report, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
		putchar('\n');
	} else {
		print_text(report);
	}
	for (i = 0; i < o.conns; i++) {
		close(conns[i].fd);
		free(conns[i].in);
		free(conns[i].out);
	}
	if (waiter.fd >= 0)
		close(waiter.fd);
	free(waiter.in);
	free(waiter.out);
	free(conns);
	close(epfd);
	json_decref(report);
	return ok ? 0 : 1;
}
