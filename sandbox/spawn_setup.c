/*
 * spawn_setup.c - the spawner's setup document (see spawn_proto.h): what
 * the daemon decided at startup, read once by the spawner it exec'd.
 *
 * Theory of operation: the daemon writes the document (JSON) into a memfd
 * and leaves open, across execve, every fd the document names: the
 * seccomp programs (memfds of struct sock_filter), and the files of the
 * slots' cgroups. This file turns the document into struct spawner_setup,
 * checks that each named fd is open (a wrong number must not become some
 * other fd's job), reads the programs into memory, and fills the task
 * table: the C tasks the program registered before valet_main(), its
 * plugins, then the exec tasks. spawn_setup_task_table() writes that table
 * back for the daemon, which names tasks by their index in it.
 *
 * Runs in the spawner at startup, single-threaded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "registry.h"
#include "spawner.h"

/* An fd the document names: open, or -1 ("none"). */
static int setup_fd(json_t *v, bool *ok)
{
	json_int_t fd = json_integer_value(v);

	if (!json_is_integer(v) || fd < -1 || fd > 1 << 20 || (fd >= 0 && fcntl((int)fd, F_GETFD) < 0))
		*ok = false;
	return (int)fd;
}

/*
 * A program, read into pages of its own and nowhere else: a C task's child
 * unmaps them once its filter is loaded, so that the task cannot read the
 * strict program's trap data (sbx_child.c, supervisor/filter.c).
 */
static int setup_filter(int fd, struct sbx_filter *f)
{
	struct stat st;
	ssize_t got;
	void *m;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return -EINVAL;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	f->insns = m;
	f->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	f->mapped = true;
	got = pread(fd, f->insns, (size_t)st.st_size, 0);
	close(fd);
	if (got != st.st_size)
		return -EIO;
	return mprotect(m, (size_t)st.st_size, PROT_READ) < 0 ? -errno : 0;
}

static int setup_filters(json_t *filters, struct spawner_setup *s, char *err, size_t errlen)
{
	bool ok = true;

	if (json_array_size(filters) != SBX_NFILTERS) {
		snprintf(err, errlen, "setup: \"filters\" must name %d programs", SBX_NFILTERS);
		return -EINVAL;
	}
	for (int i = 0; i < SBX_NFILTERS; i++) {
		int fd = setup_fd(json_array_get(filters, (size_t)i), &ok), rc;

		if (!ok || fd < 0 || (rc = setup_filter(fd, &s->filters[i])) < 0) {
			snprintf(err, errlen, "setup: seccomp program %d is not readable", i);
			return -EINVAL;
		}
	}
	return 0;
}

static int setup_slot(json_t *j, struct cg_slot *c)
{
	int *fds[] = {&c->mem_max, &c->memsw, &c->pids_max, &c->oom, &c->kill, &c->procs, &c->peak};
	const char *keys[] = {"mem_max", "memsw", "pids_max", "oom", "kill", "procs", "peak"};
	json_t *join = json_object_get(j, "join"), *ns = json_object_get(j, "join_ns"), *fd;
	bool ok = json_is_array(join) && json_array_size(join) <= 3;
	size_t i;

	json_array_foreach(join, i, fd)
		c->join[c->njoin++] = setup_fd(fd, &ok);
	c->njoin_ns = (int)json_integer_value(ns);
	if (!json_is_integer(ns) || c->njoin_ns < 0 || c->njoin_ns > c->njoin)
		ok = false;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		*fds[i] = setup_fd(json_object_get(j, keys[i]), &ok);
	/* Optional: what a job left charged is not looked at without them. */
	c->usage = (fd = json_object_get(j, "usage")) ? setup_fd(fd, &ok) : -1;
	c->stat = (fd = json_object_get(j, "stat")) ? setup_fd(fd, &ok) : -1;
	c->v1 = json_is_true(json_object_get(j, "v1"));
	/* Not written yet: the first job writes its limits. */
	c->memory = c->pids = UINT64_MAX;
	c->oom_seen = cg_slot_oom_count(c);
	return ok ? 0 : -1;
}

static int setup_cgroups(json_t *cg, struct spawner_setup *s, char *err, size_t errlen)
{
	json_t *slot;
	size_t i;

	if (json_is_null(cg) || !cg)
		return 0;
	if (json_array_size(cg) != s->nslots) {
		snprintf(err, errlen, "setup: \"cgroups\" must have one entry per slot");
		return -EINVAL;
	}
	s->cgslots = calloc(s->nslots, sizeof(*s->cgslots));
	if (!s->cgslots) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(cg, i, slot)
		if (setup_slot(slot, &s->cgslots[i]) < 0) {
			snprintf(err, errlen, "setup: slot %zu's cgroup fds are not open", i);
			return -EINVAL;
		}
	return 0;
}

/* A NULL-terminated copy of a JSON array of strings; NULL on error. */
static char **setup_strv(json_t *a)
{
	char **v = calloc(json_array_size(a) + 1, sizeof(*v));
	json_t *item;
	size_t i;

	if (!v || !json_is_array(a)) {
		free(v);
		return NULL;
	}
	json_array_foreach(a, i, item) {
		if (!json_is_string(item) || !(v[i] = strdup(json_string_value(item)))) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void setup_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static int setup_view(json_t *root, struct spawner_setup *s, char *err, size_t errlen)
{
	json_t *view = json_object_get(root, "view"), *keep = json_object_get(root, "keep"), *k;
	size_t i;

	s->hide = setup_strv(json_object_get(view, "hide"));
	s->keep = calloc(json_array_size(keep) + 1, sizeof(*s->keep));
	if (!s->hide || !s->keep || json_array_size(keep) > SBX_KEEP_MAX) {
		snprintf(err, errlen, "setup: \"view\" or \"keep\" is not valid");
		return -EINVAL;
	}
	s->view.hide_dirs = (const char *const *)s->hide;
	s->view.empty_netns = true;
	s->view.job_network = json_is_true(json_object_get(view, "job_network"));
	json_array_foreach(keep, i, k) {
		const char *path = json_string_value(json_object_get(k, "path"));

		if (!path || !(s->keep[i].path = strdup(path))) {
			snprintf(err, errlen, "setup: \"keep\" is not valid");
			return -EINVAL;
		}
		s->keep[i].is_file = json_is_true(json_object_get(k, "file"));
		s->nkeep++;
	}
	return 0;
}

static int setup_net(json_t *net, struct spawner_setup *s, char *err, size_t errlen)
{
	json_t *rules = json_object_get(net, "rules"), *r;
	const char *helper = json_string_value(json_object_get(net, "helper"));
	size_t i;

	s->net_host = json_is_true(json_object_get(net, "host"));
	s->net.gid = (gid_t)json_integer_value(json_object_get(net, "gid"));
	if (!helper)
		return 0;
	s->net.helper = strdup(helper);
	s->rules = calloc(json_array_size(rules) + 1, sizeof(*s->rules));
	if (!s->net.helper || !s->rules) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(rules, i, r) {
		struct in_addr a;
		const char *addr = json_string_value(json_array_get(r, 0));
		json_int_t prefix = json_integer_value(json_array_get(r, 1));

		if (!addr || inet_pton(AF_INET, addr, &a) != 1 || prefix < 0 || prefix > 32) {
			snprintf(err, errlen, "setup: network rule %zu is not valid", i);
			return -EINVAL;
		}
		s->rules[i] = (struct sbx_net_rule){.addr = a.s_addr,
						    .prefix = (uint8_t)prefix,
						    .allow = json_is_true(json_array_get(r, 2))};
	}
	s->net.rules = s->rules;
	s->net.nrules = (int)json_array_size(rules);
	return 0;
}

static int setup_exec_tasks(json_t *tasks, struct registry *reg, char *err, size_t errlen)
{
	json_t *t;
	size_t i;

	json_array_foreach(tasks, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_int_t profile = json_integer_value(json_object_get(t, "profile"));
		char **argv = setup_strv(json_object_get(t, "argv"));
		int rc = argv ? registry_add_exec(reg, name, argv, (enum sbx_profile)profile)
			      : -EINVAL;

		setup_strv_free(argv);
		if (rc < 0) {
			snprintf(err, errlen, "task %s: %s", name ? name : "?",
				 rc == -EEXIST ? "a task with this name is already registered"
					       : strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static json_t *setup_load(int fd, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	FILE *f;

	if (lseek(fd, 0, SEEK_SET) < 0 || !(f = fdopen(fd, "r"))) {
		snprintf(err, errlen, "setup: cannot read the document: %s", strerror(errno));
		return NULL;
	}
	root = json_loadf(f, 0, &jerr);
	fclose(f);
	if (!json_is_object(root)) {
		snprintf(err, errlen, "setup: not a JSON object: %s", jerr.text);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* The document, if it is of our protocol's version; NULL with err. */
static json_t *setup_open(int fd, int *rc, char *err, size_t errlen)
{
	json_t *root = setup_load(fd, err, errlen);
	json_int_t version;

	*rc = -EINVAL;
	if (!root)
		return NULL;
	version = json_integer_value(json_object_get(root, "version"));
	if (version != SPAWN_PROTO_VERSION) {
		snprintf(err, errlen,
			 "valetd speaks spawner protocol %lld and this spawner %d: build the "
			 "program against the libvalet of the valetd it runs",
			 (long long)version, SPAWN_PROTO_VERSION);
		json_decref(root);
		*rc = -EPROTO;
		return NULL;
	}
	*rc = 0;
	return root;
}

/* The plugins of "plugin_dir", then the exec tasks, after reg's own.
 * -EINVAL when one does not load (the config's doing), or -ENOMEM. */
static int setup_tasks(json_t *root, struct registry *reg, char *err, size_t errlen)
{
	const char *dir = json_string_value(json_object_get(root, "plugin_dir"));
	int rc = 0;

	if (dir && dir[0])
		rc = registry_load_plugins(reg, dir, err, errlen);
	if (rc == 0)
		rc = setup_exec_tasks(json_object_get(root, "exec_tasks"), reg, err, errlen);
	return rc < 0 && rc != -ENOMEM ? -EINVAL : rc;
}

int spawn_setup_read_tasks(int fd, struct registry *reg, char *err, size_t errlen)
{
	int rc;
	json_t *root = setup_open(fd, &rc, err, errlen);

	if (root)
		rc = setup_tasks(root, reg, err, errlen);
	json_decref(root);
	return rc;
}

int spawn_setup_read(int fd, struct spawner_setup *s, struct registry *reg, char *err,
		     size_t errlen)
{
	json_t *root, *user;
	int rc;

	memset(s, 0, sizeof(*s));
	if (!(root = setup_open(fd, &rc, err, errlen)))
		return rc;
	rc = -EINVAL;
	user = json_object_get(root, "user");
	s->nslots = (unsigned)json_integer_value(json_object_get(root, "slots"));
	s->drop_user = json_is_true(json_object_get(user, "drop"));
	s->uid = (uid_t)json_integer_value(json_object_get(user, "uid"));
	s->gid = (gid_t)json_integer_value(json_object_get(user, "gid"));
	s->uid_base = (uid_t)json_integer_value(json_object_get(user, "uid_base"));
	s->namespaces = json_is_true(json_object_get(root, "namespaces"));
	if (s->nslots == 0 || s->nslots > 4096) {
		snprintf(err, errlen, "setup: \"slots\" must be 1 to 4096");
		goto out;
	}
	if ((rc = setup_filters(json_object_get(root, "filters"), s, err, errlen)) < 0 ||
	    (rc = setup_cgroups(json_object_get(root, "cgroups"), s, err, errlen)) < 0 ||
	    (rc = setup_view(root, s, err, errlen)) < 0 ||
	    (rc = setup_net(json_object_get(root, "net"), s, err, errlen)) < 0)
		goto out;
	rc = setup_tasks(root, reg, err, errlen);
out:
	json_decref(root);
	return rc;
}

void spawn_setup_free(struct spawner_setup *s)
{
	for (int i = 0; i < SBX_NFILTERS; i++)
		sbx_filter_release(&s->filters[i]);
	setup_strv_free(s->hide);
	for (int i = 0; i < s->nkeep; i++)
		free((char *)s->keep[i].path);
	free(s->keep);
	free((char *)s->net.helper);
	free(s->rules);
	free(s->cgslots);
	memset(s, 0, sizeof(*s));
}

char *spawn_setup_task_table(const struct registry *reg)
{
	json_t *table = json_array();
	char *text;

	for (size_t i = 0; table && i < registry_count(reg); i++) {
		const struct task *t = registry_at(reg, (int)i);

		json_array_append_new(table, json_pack("{s:s, s:b, s:i}", "name", t->name, "exec",
						       t->kind == TASK_EXEC, "profile",
						       (int)t->profile));
	}
	text = table ? json_dumps(table, JSON_COMPACT) : NULL;
	json_decref(table);
	return text;
}
