/*
 * fuzz_config.c - libFuzzer harness of the configuration file parser
 * (supervisor/config.c, config_task.c, config_value.c, on inih).
 *
 * The input is the file: it is written to a memfd and config_load() reads
 * it through /proc/self/fd/N, exactly as it reads /etc/valet/valetd.conf
 * (its directory, for relative paths, is then /proc/<pid>/fd). Checks:
 *  - config_load() returns 0 or a negative errno, and on error the message
 *    is "path:line: why" or "path: why";
 *  - a config that loads is usable as valetd uses it at startup: its
 *    listen address parses, its [network] lists compile (netpolicy_rules),
 *    every exec task's program is absolute;
 *  - config_dump() is read back unchanged: the dump loads without error
 *    and dumps to the same text (config.c promises "what config_dump()
 *    prints, the parsers read back unchanged"; valetd -t -v prints it).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../supervisor/config.h"
#include "../../supervisor/netpolicy.h"
#include "fuzz.h"

/* A memfd and its /proc path; made once, truncated for each input. */
struct fuzz_file {
	int fd;
	char path[64];
};

static void file_open(struct fuzz_file *f, const char *name)
{
	if (f->path[0])
		return;
	f->fd = memfd_create(name, MFD_CLOEXEC);
	FUZZ_CHECK(f->fd >= 0);
	snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

static void file_set(struct fuzz_file *f, const void *data, size_t size)
{
	FUZZ_CHECK(ftruncate(f->fd, 0) == 0);
	FUZZ_CHECK(pwrite(f->fd, data, size, 0) == (ssize_t)size);
}

/* config_dump() into a new string; the first line (which names the file) is left out. */
static char *dump(const struct config *cfg)
{
	char *text = NULL, *body;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	FUZZ_CHECK(out != NULL);
	config_dump(cfg, out);
	FUZZ_CHECK(fclose(out) == 0);
	body = strchr(text, '\n');
	FUZZ_CHECK(body != NULL);
	memmove(text, body + 1, strlen(body + 1) + 1);
	return text;
}

static void check_usable(const struct config *cfg)
{
	struct sbx_net_rule *rules = NULL;
	char host[256], msg[512];
	int port, n = 0;

	FUZZ_CHECK(config_parse_listen(cfg->listen, host, sizeof(host), &port) == 0);
	FUZZ_CHECK(netpolicy_rules(cfg->net_allow, cfg->net_deny, &rules, &n, msg, sizeof(msg)) ==
		   0);
	free(rules);
	for (size_t i = 0; i < cfg->nexec_tasks; i++)
		FUZZ_CHECK(!cfg->exec_tasks[i].argv || cfg->exec_tasks[i].argv[0][0] == '/');
}

/* The dump of a loaded config loads again, to the same dump. */
static void check_round_trip(const struct config *cfg)
{
	static struct fuzz_file again;
	struct config *cfg2;
	char err[1024], *text, *text2;
	int rc;

	file_open(&again, "valet-fuzz-dump.conf");
	text = dump(cfg);
	file_set(&again, text, strlen(text));
	cfg2 = config_new();
	FUZZ_CHECK(cfg2 != NULL);
	rc = config_load(cfg2, again.path, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "the dump does not load: %s\n--- dump:\n%s---\n", err, text);
	FUZZ_CHECK(rc == 0);
	text2 = dump(cfg2);
	if (strcmp(text, text2))
		fprintf(stderr, "--- dump:\n%s--- dump of the dump:\n%s---\n", text, text2);
	FUZZ_CHECK(strcmp(text, text2) == 0);
	free(text);
	free(text2);
	config_free(cfg2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_file file;
	struct config *cfg;
	char err[1024];
	int rc;

	file_open(&file, "valet-fuzz.conf");
	file_set(&file, data, size);
	cfg = config_new();
	FUZZ_CHECK(cfg != NULL);
	err[0] = '\0';
	rc = config_load(cfg, file.path, err, sizeof(err));
	FUZZ_CHECK(rc <= 0);
	if (rc < 0) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(!strncmp(err, file.path, strlen(file.path)) &&
			   err[strlen(file.path)] == ':');
	} else {
		check_usable(cfg);
		check_round_trip(cfg);
	}
	config_free(cfg);
	return 0;
}
