/*
 * spawn.c - starting the spawner and speaking to it from the daemon (see
 * spawn.h and sandbox/spawn_proto.h).
 *
 * Theory of operation: fork() cost grows with the parent's memory and its
 * mappings, so job children are not forked from the daemon (which links
 * libpq, libmicrohttpd, libev and may hold 100,000 queued jobs) but from a
 * small program the daemon execs once at startup. spawn_start() writes
 * the setup document (JSON) into a memfd, the seccomp programs into memfds
 * of their own, and forks; the child leaves open exactly the fds the
 * document names (closing every other one) and execs the spawner program
 * with an environment of its own (no secret of the daemon's goes along:
 * not the database URL, not the environment the unit loaded). Then the
 * daemon waits for READY and the task table. The daemon keeps nothing of
 * the child's fds but its end of the socket; the cgroup fds it opened stay
 * with the caller (isolation), which closes them once the spawner has
 * them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "../sandbox/cg_slot.h"
#include "config.h"
#include "spawn.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#ifndef VALET_SPAWNER_PATH
#define VALET_SPAWNER_PATH "/usr/lib/valet/valet-spawner"
#endif

/* What the spawner inherits: at most this many fds. */
#define SPAWN_KEEP_FDS 4096

struct spawn_fds {
	int fd[SPAWN_KEEP_FDS];
	int n;
};

static int spawn_keep(struct spawn_fds *k, int fd)
{
	if (fd >= 0 && k->n < SPAWN_KEEP_FDS)
		k->fd[k->n++] = fd;
	return fd;
}

/* A memfd holding len bytes of data; -errno. */
static int spawn_memfd(const char *name, const void *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static json_t *spawn_slot_json(const struct cg_slot *c, struct spawn_fds *k)
{
	json_t *join = json_array();

	for (int i = 0; i < c->njoin; i++)
		json_array_append_new(join, json_integer(spawn_keep(k, c->join[i])));
	return json_pack("{s:o, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "join",
			 join, "join_ns", c->njoin_ns, "mem_max", spawn_keep(k, c->mem_max),
			 "memsw", spawn_keep(k, c->memsw), "pids_max", spawn_keep(k, c->pids_max),
			 "oom", spawn_keep(k, c->oom), "kill", spawn_keep(k, c->kill), "procs",
			 spawn_keep(k, c->procs), "peak", spawn_keep(k, c->peak), "usage",
			 spawn_keep(k, c->usage), "stat", spawn_keep(k, c->stat), "v1", c->v1);
}

static json_t *spawn_strv_json(char *const *v)
{
	json_t *a = json_array();

	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static json_t *spawn_net_json(const struct spawn_setup *s)
{
	json_t *rules = json_array();

	for (int i = 0; i < s->nrules; i++) {
		char a[INET_ADDRSTRLEN];
		struct in_addr in = {.s_addr = s->rules[i].addr};

		inet_ntop(AF_INET, &in, a, sizeof(a));
		json_array_append_new(rules, json_pack("[s, i, b]", a, s->rules[i].prefix,
						       s->rules[i].allow));
	}
	return json_pack("{s:b, s:s?, s:I, s:o}", "host", s->net_host, "helper", s->net_helper,
			 "gid", (json_int_t)s->net_gid, "rules", rules);
}

static json_t *spawn_tasks_json(const struct spawn_setup *s)
{
	json_t *tasks = json_array();

	for (size_t i = 0; i < s->nexec; i++) {
		const struct config_exec_task *t = &s->exec_tasks[i];

		if (t->argv)
			json_array_append_new(tasks, json_pack("{s:s, s:o, s:i}", "name", t->name,
							       "argv", spawn_strv_json(t->argv),
							       "profile", (int)t->profile));
	}
	return tasks;
}

/* The setup document; the filter memfds are made here (kept in k). */
static json_t *spawn_document(const struct spawn_setup *s, struct spawn_fds *k)
{
	json_t *filters = json_array(), *keep = json_array(), *cg = json_null();

	for (int i = 0; i < SBX_NFILTERS; i++) {
		int fd = spawn_memfd("valet-seccomp", s->filters[i].insns,
				     s->filters[i].len * sizeof(struct sock_filter));

		if (fd < 0) {
			json_decref(filters);
			json_decref(keep);
			return NULL;
		}
		json_array_append_new(filters, json_integer(spawn_keep(k, fd)));
	}
	for (int i = 0; i < s->nkeep; i++)
		json_array_append_new(keep, json_pack("{s:s, s:b}", "path", s->keep[i].path, "file",
						      s->keep[i].is_file));
	if (s->cgslots) {
		cg = json_array();
		for (unsigned i = 0; i < s->nslots; i++)
			json_array_append_new(cg, spawn_slot_json(&s->cgslots[i], k));
	}
	return json_pack("{s:i, s:i, s:{s:b, s:I, s:I, s:I}, s:o, s:b, s:{s:o, s:b}, s:o, s:o, "
			 "s:o, s:s, s:o}",
			 "version", SPAWN_PROTO_VERSION, "slots", (int)s->nslots, "user", "drop", s->drop_user, "uid",
			 (json_int_t)s->uid, "gid", (json_int_t)s->gid, "uid_base",
			 (json_int_t)s->uid_base, "filters", filters, "namespaces", s->namespaces,
			 "view", "hide", spawn_strv_json(s->hide), "job_network", s->job_network,
			 "keep", keep, "net", spawn_net_json(s), "cgroups", cg, "plugin_dir",
			 s->plugin_dir ? s->plugin_dir : "", "exec_tasks", spawn_tasks_json(s));
}

static int spawn_cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * The environment of a spawner: what it needs, nothing of the daemon's
 * (the unit's EnvironmentFile may hold VALET_DATABASE_URL). The sanitizers'
 * options go along, for `make asan`.
 */
static void spawn_env(char **env, size_t n)
{
	static const char *const pass[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
	static char path[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	size_t i = 0;

	env[i++] = path;
	for (const char *const *p = pass; *p && i + 1 < n; p++) {
		size_t len = strlen(*p);

		for (char **e = environ; e && *e; e++)
			if (!strncmp(*e, *p, len) && (*e)[len] == '=') {
				env[i++] = *e;
				break;
			}
	}
	env[i] = NULL;
}

/* In the child: only the kept fds stay open (and lose CLOEXEC); exec. */
static void __attribute__((noreturn))
spawn_child(const char *program, struct spawn_fds *k, int sock, int doc)
{
	char sockarg[16], docarg[16], *env[8];
	char *argv[] = {(char *)program, SPAWN_ARG, sockarg, docarg, NULL};
	unsigned next = 3;

	qsort(k->fd, (size_t)k->n, sizeof(int), spawn_cmp_int);
	for (int i = 0; i < k->n; i++) {
		if ((unsigned)k->fd[i] > next)
			syscall(SYS_close_range, next, (unsigned)k->fd[i] - 1, 0U);
		fcntl(k->fd[i], F_SETFD, 0);
		next = (unsigned)k->fd[i] + 1;
	}
	syscall(SYS_close_range, next, ~0U, 0U);
	snprintf(sockarg, sizeof(sockarg), "%d", sock);
	snprintf(docarg, sizeof(docarg), "%d", doc);
	spawn_env(env, sizeof(env) / sizeof(env[0]));
	execve(program, argv, env);
	dprintf(2, "valetd: cannot run the spawner %s: %s\n", program, strerror(errno));
	_exit(127);
}

/* READY, then the table or the reason; -errno with err (and *sandbox). */
static int spawn_ready(int fd, pid_t pid, const char *program, char **table, bool *sandbox,
		       char *err, size_t errlen)
{
	size_t cap = sizeof(struct spawn_evt) + SPAWN_READY_MAX;
	char *buf = malloc(cap + 1);
	struct spawn_evt evt;
	ssize_t n;
	int status;

	if (!buf)
		return -ENOMEM;
	while ((n = recv(fd, buf, cap, 0)) < 0 && errno == EINTR)
		;
	if (n < (ssize_t)sizeof(evt)) {
		free(buf);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		snprintf(err, errlen, "the spawner %s ended before it was ready (%s %d)", program,
			 WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		return -EIO;
	}
	memcpy(&evt, buf, sizeof(evt));
	buf[n] = '\0';
	if (evt.type != SPAWN_EVT_READY || evt.spawn_err) {
		if (sandbox)
			*sandbox = evt.type == SPAWN_EVT_READY && (evt.flags & SPAWN_EVT_F_SANDBOX);
		snprintf(err, errlen, "%s", evt.type == SPAWN_EVT_READY && n > (ssize_t)sizeof(evt)
						? buf + sizeof(evt)
						: "the spawner did not start");
		free(buf);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return evt.spawn_err ? -evt.spawn_err : -EIO;
	}
	*table = strdup(buf + sizeof(evt));
	free(buf);
	return *table ? 0 : -ENOMEM;
}

int spawn_start(const struct spawn_setup *s, pid_t *pid_out, int *fd_out, char **table,
		bool *sandbox, char *err, size_t errlen)
{
	struct spawn_fds *k = calloc(1, sizeof(*k));
	int sv[2] = {-1, -1}, doc = -1, size = 4 << 20, rc;
	json_t *root = NULL;
	char *text = NULL;
	pid_t pid;

	err[0] = '\0';
	if (sandbox)
		*sandbox = false;
	if (!k || !(root = spawn_document(s, k)) || !(text = json_dumps(root, JSON_COMPACT))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((doc = spawn_memfd("valet-setup", text, strlen(text))) < 0) {
		rc = doc;
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		goto out;
	}
	/* Room for every in-flight request, so the daemon rarely sees EAGAIN. */
	for (int i = 0; i < 2; i++)
		if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	spawn_keep(k, sv[1]);
	spawn_keep(k, doc);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0)
		spawn_child(s->program, k, sv[1], doc);
	close(sv[1]);
	sv[1] = -1;
	rc = spawn_ready(sv[0], pid, s->program, table, sandbox, err, errlen);
	if (rc == 0 && fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
		rc = -errno;
	if (rc == 0) {
		*pid_out = pid;
		*fd_out = sv[0];
		sv[0] = -1;
	}
out:
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "cannot start the spawner %s: %s", s->program, strerror(-rc));
	/* The filter memfds (the first SBX_NFILTERS kept) and the
	 * document were made here; the cgroup fds are the caller's. */
	for (int i = 0; k && i < SBX_NFILTERS && i < k->n; i++)
		close(k->fd[i]);
	if (doc >= 0)
		close(doc);
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	free(text);
	json_decref(root);
	free(k);
	return rc;
}

int spawn_policy(int fd, char *const *hide, char *const *deny, uint64_t id, bool wait)
{
	char buf[sizeof(struct spawn_req) + SPAWN_INLINE_MAX];
	struct spawn_req req = {.type = SPAWN_REQ_POLICY, .run_id = id};
	struct spawn_evt evt;
	size_t len = 0;

	for (int pass = 0; pass < 2; pass++)
		for (char *const *e = pass ? deny : hide; e && *e; e++) {
			size_t n = strlen(*e);

			if (sizeof(req) + len + n + 2 > sizeof(buf))
				return -E2BIG;
			buf[sizeof(req) + len] = pass ? 'd' : 'h';
			memcpy(buf + sizeof(req) + len + 1, *e, n + 1);
			len += n + 2;
		}
	req.input_len = (uint32_t)len;
	memcpy(buf, &req, sizeof(req));
	if (send(fd, buf, sizeof(req) + len, MSG_NOSIGNAL) < 0)
		return -errno;
	while (wait) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		int rc = poll(&p, 1, 30000);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		n = recv(fd, &evt, sizeof(evt), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -EPIPE;
		if (n == (ssize_t)sizeof(evt) && evt.type == SPAWN_EVT_POLICY && evt.run_id == id)
			return -evt.spawn_err;
	}
	return 0;
}

/* valetd -t's document: the tasks' part of the setup document. */
static int spawn_tasks_doc(const struct spawn_setup *s)
{
	json_t *root = json_pack("{s:i, s:s, s:o}", "version", SPAWN_PROTO_VERSION, "plugin_dir",
				 s->plugin_dir ? s->plugin_dir : "", "exec_tasks",
				 spawn_tasks_json(s));
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	int fd = text ? spawn_memfd("valet-setup", text, strlen(text)) : -ENOMEM;

	free(text);
	json_decref(root);
	return fd;
}

int spawn_list_tasks(const struct spawn_setup *s, char **table, char *err, size_t errlen)
{
	const char *program = s->program;
	char *argv[] = {(char *)program, SPAWN_ARG_LIST, "3", NULL};
	char *buf = NULL, *env[8];
	size_t len = 0, cap = 0;
	int out[2], status, doc = spawn_tasks_doc(s);
	pid_t pid;

	if (doc < 0)
		return doc;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(doc);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		close(doc);
		return -errno;
	}
	if (pid == 0) {
		/* The document on fd 3, without CLOEXEC (dup2 onto itself keeps it). */
		dup2(out[1], 1);
		if (doc == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(doc, 3);
		spawn_env(env, sizeof(env) / sizeof(env[0]));
		execve(program, argv, env);
		dprintf(2, "valetd: cannot run the spawner %s: %s\n", program, strerror(errno));
		_exit(127);
	}
	close(doc);
	close(out[1]);
	for (;;) {
		ssize_t n;

		if (len + 4096 + 1 > cap) {
			char *grown = realloc(buf, cap = 2 * cap + 8192);
			if (!grown)
				break;
			buf = grown;
		}
		n = read(out[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!buf || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(buf);
		snprintf(err, errlen, "the spawner %s could not list its tasks", program);
		return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? -EINVAL : -EIO;
	}
	buf[len] = '\0';
	*table = buf;
	return 0;
}

char *spawn_program(const char *path)
{
	char self[PATH_MAX], *slash;

	if (path && path[0])
		return strdup(path);
	/* A build tree: valet-spawner beside valetd. */
	if (realpath("/proc/self/exe", self) && (slash = strrchr(self, '/')) &&
	    (size_t)(slash - self) + sizeof("/valet-spawner") <= sizeof(self)) {
		strcpy(slash, "/valet-spawner");
		if (access(self, X_OK) == 0)
			return strdup(self);
	}
	return strdup(VALET_SPAWNER_PATH);
}
