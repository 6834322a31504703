/*
 * hostile_exec_see.c - the cases of hostile_exec (see hostile_exec.c) that
 * look around: what the task can see and reach of the host, of the daemon
 * and of other jobs (processes, network, names, files, IPC, cgroups), and
 * who it runs as.
 *
 * Theory of operation: each case makes its attempts and prints one JSON
 * object of what the kernel answered, errno values by name. Files it
 * creates carry task_params.tag in their names, so that the test finds them
 * on the host if they leak out of the job's private /tmp.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "hostile_exec.h"

int hx_tcp_connect(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		printf("{\"socket\":\"%s\"}\n", hx_errname(errno));
		return 0;
	}
	a.sin_port = htons((uint16_t)hx_param_long("port", 1));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	printf("{\"socket\":\"ok\",\"connect\":\"%s\"}\n",
	       hx_res(connect(fd, (struct sockaddr *)&a, sizeof(a))));
	return 0;
}

int hx_abstract_unix(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char name[80];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t len;

	if (fd < 0) {
		printf("{\"socket\":\"%s\"}\n", hx_errname(errno));
		return 0;
	}
	if (!hx_param("name", name, sizeof(name)))
		strcpy(name, "valet-hostile");
	memcpy(a.sun_path + 1, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	printf("{\"socket\":\"ok\",\"connect\":\"%s\"}\n",
	       hx_res(connect(fd, (struct sockaddr *)&a, len)));
	return 0;
}

int hx_net_view(void)
{
	char line[512], hexport[16];
	FILE *f;
	int n = 0;
	bool sees = false;
	const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};

	printf("{\"ifaces\":[");
	f = fopen("/proc/net/dev", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *p = line;

		if (!colon)
			continue;
		*colon = '\0';
		while (*p == ' ')
			p++;
		printf("%s\"%s\"", n++ ? "," : "", p);
	}
	if (f)
		fclose(f);
	snprintf(hexport, sizeof(hexport), ":%04lX ", hx_param_long("port", 0));
	for (int i = 0; i < 2; i++) {
		f = fopen(files[i], "r");
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, hexport))
				sees = true;
		if (f)
			fclose(f);
	}
	printf("],\"sees_port\":%s}\n", sees ? "true" : "false");
	return 0;
}

int hx_proc_view(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	printf("{\"pid\":%d,\"procs\":[", (int)getpid());
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (n < 40)
			printf("%s%s", n ? "," : "", e->d_name);
		n++;
	}
	if (d)
		closedir(d);
	printf("],\"count\":%d}\n", n);
	return 0;
}

int hx_uts(void)
{
	struct utsname u;

	uname(&u);
	printf("{\"nodename\":\"%s\"}\n", u.nodename);
	return 0;
}

/* The value of "Key:" in /proc/self/status, tabs as single spaces. */
static void hx_status_field(const char *key, char *out, size_t len)
{
	char line[512];
	size_t klen = strlen(key), n = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) != 0 || line[klen] != ':')
			continue;
		for (char *p = line + klen + 1; *p && *p != '\n' && n + 1 < len; p++) {
			char c = *p == '\t' ? ' ' : *p;

			if (c != ' ' || (n > 0 && out[n - 1] != ' '))
				out[n++] = c;
		}
		break;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	if (f)
		fclose(f);
}

int hx_ids(void)
{
	static const char *const keys[] = {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
					   "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "SigBlk",
					   "SigIgn"};
	struct rlimit core;
	char v[256];
	int tty = open("/dev/tty", O_RDWR);

	printf("{");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		hx_status_field(keys[i], v, sizeof(v));
		printf("\"%s\":\"%s\",", keys[i], v);
	}
	getrlimit(RLIMIT_CORE, &core);
	printf("\"core\":[%lld,%lld],\"tty\":\"%s\"}\n", (long long)core.rlim_cur,
	       (long long)core.rlim_max, tty < 0 ? hx_errname(errno) : "ok");
	return 0;
}

int hx_whoami(void)
{
	printf("{\"ruid\":%d,\"euid\":%d}\n", (int)getuid(), (int)geteuid());
	return 0;
}

int hx_setuid(void)
{
	char exe[PATH_MAX], suid[PATH_MAX + 8];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0) {
		fprintf(stderr, "readlink /proc/self/exe: %s\n", hx_errname(errno));
		return 4;
	}
	exe[n] = '\0';
	snprintf(suid, sizeof(suid), "%s_suid", exe);
	fflush(stdout);
	execl(suid, "hostile_exec", "whoami", (char *)NULL);
	printf("{\"exec\":\"%s\"}\n", hx_errname(errno));
	return 0;
}

/* Try to write text into file; "ok" or the errno name. */
static const char *hx_write_file(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return hx_errname(errno);
	n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? hx_errname(errno) : "ok";
}

int hx_cgroup_escape(void)
{
	char line[512], pid[32], path[1024], base[256];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int n = 0;

	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	printf("{\"attempts\":{");
	while (f && fgets(line, sizeof(line), f)) {
		char *ctrl = strchr(line, ':'), *cg, *nl;

		if (!ctrl)
			continue;
		ctrl++;
		cg = strchr(ctrl, ':');
		if (!cg)
			continue;
		*cg++ = '\0';
		nl = strchr(cg, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(ctrl, "name=", 5) == 0)
			ctrl += 5;
		if (ctrl[0])
			snprintf(base, sizeof(base), "/sys/fs/cgroup/%s", ctrl);
		else if (access("/sys/fs/cgroup/unified", F_OK) == 0)
			snprintf(base, sizeof(base), "/sys/fs/cgroup/unified");
		else
			snprintf(base, sizeof(base), "/sys/fs/cgroup");
		/* Into the root of the hierarchy, and into the parent of ours. */
		snprintf(path, sizeof(path), "%s/cgroup.procs", base);
		printf("%s\"%s\":\"%s\"", n++ ? "," : "", path, hx_write_file(path, pid));
		if (strcmp(cg, "/") != 0) {
			snprintf(path, sizeof(path), "%s%s/../cgroup.procs", base, cg);
			printf(",\"%s\":\"%s\"", path, hx_write_file(path, pid));
		}
		/* Raise our own limits. */
		static const char *const lims[][2] = {{"memory.max", "max\n"},
						      {"memory.limit_in_bytes", "-1\n"},
						      {"pids.max", "max\n"}};
		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s%s/%s", base, cg, lims[i][0]);
			if (access(path, F_OK) == 0)
				printf(",\"%s\":\"%s\"", path, hx_write_file(path, lims[i][1]));
		}
	}
	if (f)
		fclose(f);
	printf("}}\n");
	return 0;
}

int hx_kill_pid(void)
{
	long r = kill((pid_t)hx_param_long("pid", 0), SIGKILL);

	printf("{\"ret\":%ld,\"errno\":\"%s\"}\n", r, r < 0 ? hx_errname(errno) : "none");
	return 0;
}

int hx_kill_all(void)
{
	long r;

	/* Without a PID namespace (pid 1 or 2 means one of its own) or a uid
	 * of its own, kill(-1) would reach other jobs on this machine, other
	 * test runs' included: refuse. */
	if (getpid() > 2 && getuid() == 65534) {
		printf("{\"skipped\":\"shared uid 65534 and no PID namespace\"}\n");
		return 0;
	}
	r = kill(-1, SIGKILL);
	printf("{\"ret\":%ld,\"errno\":\"%s\"}\n", r, r < 0 ? hx_errname(errno) : "none");
	return 0;
}

/* Read up to 64 KiB of path: "ok" and the byte count, or the errno. */
static void hx_peek(const char *key, const char *path, bool comma)
{
	char buf[4096];
	long total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	printf("%s\"%s\":", comma ? "," : "", key);
	if (fd < 0) {
		printf("\"%s\"", hx_errname(errno));
		return;
	}
	while (total < 65536 && (n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	printf("%ld", total);
	close(fd);
}

int hx_proc_peek(void)
{
	static const char *const files[] = {"environ", "cmdline", "maps", "mem", "status"};
	long pid = hx_param_long("pid", (long)getppid());
	char path[64];

	printf("{");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%ld/%s", pid, files[i]);
		hx_peek(files[i], path, i > 0);
	}
	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	printf(",\"fd\":");
	hx_print_dir(path);
	printf("}\n");
	return 0;
}

int hx_read_file(void)
{
	char path[PATH_MAX];

	if (!hx_param("path", path, sizeof(path)))
		strcpy(path, "/etc/shadow");
	printf("{");
	hx_peek("read", path, false);
	printf("}\n");
	return 0;
}

int hx_pg_socket(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char path[sizeof(a.sun_path)];
	int fd;

	printf("{\"run\":");
	hx_print_dir("/run/postgresql");
	printf(",\"var_run\":");
	hx_print_dir("/var/run/postgresql");
	if (hx_param("path", path, sizeof(path)) && path[0]) {
		strcpy(a.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		printf(",\"connect\":\"%s\"",
		       fd < 0 ? hx_errname(errno)
			      : hx_res(connect(fd, (struct sockaddr *)&a, sizeof(a))));
	}
	printf("}\n");
	return 0;
}

int hx_write_outside(void)
{
	char tag[64], self[PATH_MAX], path[PATH_MAX + 80];
	/* Directories anyone may search (so that a refusal is the mount's
	 * EROFS, not a path lookup's EACCES). */
	const char *dirs[] = {"/", "/etc", "/usr", "/usr/local", "/var", "/var/tmp", "/opt",
			      "/home", "/run", NULL};
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int k = 0;

	if (!hx_param("tag", tag, sizeof(tag)))
		strcpy(tag, "x");
	/* The directory of this program (the build tree) too. */
	self[n > 0 ? n : 0] = '\0';
	if (strrchr(self, '/'))
		*strrchr(self, '/') = '\0';
	printf("{");
	for (int i = 0; dirs[i] || self[0]; i++) {
		const char *dir = dirs[i] ? dirs[i] : self;
		struct stat st;

		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
			snprintf(path, sizeof(path), "%s/valet-hostile-%s-w", strcmp(dir, "/") ? dir : "",
				 tag);
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			printf("%s\"%s\":\"%s\"", k++ ? "," : "", dir, fd < 0 ? hx_errname(errno) : "ok");
			if (fd >= 0)
				close(fd);
		}
		if (!dirs[i])
			break;
	}
	printf("}\n");
	return 0;
}

int hx_tmp_leave(void)
{
	char tag[64], canary[PATH_MAX], p[PATH_MAX + 64], sub[PATH_MAX + 80];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd, n = 0;

	if (!hx_param("tag", tag, sizeof(tag)))
		strcpy(tag, "x");
	if (!hx_param("canary", canary, sizeof(canary)))
		strcpy(canary, "/nonexistent");
	printf("{");
#define HX_STEP(name, expr) printf("%s\"%s\":\"%s\"", n++ ? "," : "", name, hx_res(expr))
	snprintf(p, sizeof(p), "/tmp/valet-hostile-%s-file", tag);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	HX_STEP("file", fd < 0 ? -1 : write(fd, "left behind\n", 12));
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof(p), "/tmp/.valet-hostile-%s-hidden", tag);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	HX_STEP("hidden", fd);
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof(p), "/tmp/valet-hostile-%s-dir", tag);
	mkdir(p, 0777);
	snprintf(sub, sizeof(sub), "%s/sub", p);
	mkdir(sub, 0777);
	snprintf(sub, sizeof(sub), "%s/sub/file", p);
	fd = open(sub, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	HX_STEP("dir", fd);
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof(p), "/tmp/valet-hostile-%s-passwd", tag);
	HX_STEP("passwd_link", symlink("/etc/passwd", p));
	snprintf(p, sizeof(p), "/tmp/valet-hostile-%s-canary", tag);
	HX_STEP("canary_link", symlink(canary, p));
	snprintf(p, sizeof(p), "/tmp/valet-hostile-%s-fifo", tag);
	HX_STEP("fifo", mkfifo(p, 0666));
	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/valet-hostile-%s-sock", tag);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	HX_STEP("socket", fd < 0 ? -1 : bind(fd, (struct sockaddr *)&a, sizeof(a)));
	snprintf(p, sizeof(p), "valet-hostile-%s-cwd", tag);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	HX_STEP("cwd", fd);
#undef HX_STEP
	printf("}\n");
	return 0;
}

int hx_devshm_leave(void)
{
	char tag[64], p[128];
	int fd;

	if (!hx_param("tag", tag, sizeof(tag)))
		strcpy(tag, "x");
	snprintf(p, sizeof(p), "/dev/shm/valet-hostile-%s-shm", tag);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	printf("{\"open\":\"%s\"}\n", hx_res(fd));
	return 0;
}

int hx_ipc(bool create)
{
	key_t key = (key_t)hx_param_long("key", 0x7661);
	int flags = create ? IPC_CREAT | 0666 : 0;

	printf("{\"shm\":\"%s\",", hx_res(shmget(key, 4096, flags)));
	printf("\"msg\":\"%s\",", hx_res(msgget(key, flags)));
	printf("\"sem\":\"%s\"}\n", hx_res(semget(key, 1, flags)));
	return 0;
}

int hx_ls_tmp(void)
{
	printf("{\"tmp\":");
	hx_print_dir("/tmp");
	printf("}\n");
	return 0;
}
