/*
 * spawner.h - the spawner program's side of spawn_proto.h, private to
 * sandbox/: what its setup document says (spawn_setup.c parses it), and the
 * entry points valet_main() calls.
 */
#ifndef VALET_SPAWNER_H
#define VALET_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cg_slot.h"
#include "sandbox.h"
#include "spawn_proto.h"

struct registry;

struct spawner_setup {
	unsigned nslots;
	bool drop_user;
	uid_t uid, uid_base; /* uid_base 0: every slot runs as uid/gid */
	gid_t gid;
	struct sbx_filter filters[SBX_NFILTERS];
	bool namespaces;
	struct sbx_view_opts view; /* view.hide_dirs: hide */
	char **hide;
	struct sbx_keep *keep;
	int nkeep;
	bool net_host;		   /* exec+net jobs: the host's network namespace */
	struct sbx_net_opts net;   /* else: net.helper (NULL: no such task) */
	struct sbx_net_rule *rules; /* net.rules */
	struct cg_slot *cgslots;   /* [nslots]; NULL = no cgroups */
	char *plugin_dir;	   /* "" = none */
};

/*
 * Read the setup document from fd (a memfd, read from its start), check
 * that every fd it names is open, and load the plugins and the exec tasks
 * into reg after the tasks already there. 0, or -errno with a sentence in
 * err (-EPROTO: a document of another protocol version).
 */
int spawn_setup_read(int fd, struct spawner_setup *s, struct registry *reg, char *err,
		     size_t errlen);
void spawn_setup_free(struct spawner_setup *s);
/* Only the tasks of a setup document (valetd -t's, with "version",
 * "plugin_dir" and "exec_tasks"): into reg. 0, or -errno with err. */
int spawn_setup_read_tasks(int fd, struct registry *reg, char *err, size_t errlen);

/* reg's table as spawn_proto.h's JSON (new; NULL on ENOMEM). */
char *spawn_setup_task_table(const struct registry *reg);

/* The spawner: serve the daemon on sock until it goes; never returns. */
void spawner_main(int sock, int setup_fd) __attribute__((noreturn));

#endif
