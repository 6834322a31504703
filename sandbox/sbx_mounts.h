/*
 * sbx_mounts.h - the mount table of the jobs' view (sbx_mounts.c). Private
 * to sandbox/; used by the spawner only, never in a job child.
 */
#ifndef VALET_SBX_MOUNTS_H
#define VALET_SBX_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>

struct sbx_mount {
	unsigned major, minor; /* the device */
	char *root;	       /* the mount's root within its file system */
	char *point;	       /* mount point */
	char *fstype;
};

struct sbx_mounts {
	struct sbx_mount *m; /* in mountinfo order: parents before children */
	size_t n;
};

/* Whether path is dir or below it ("/" holds every absolute path). */
bool sbx_path_under(const char *path, const char *dir);

/* Whether fstype is a kernel file system no job may see (proc, sysfs, ...). */
bool sbx_kernel_fs_type(const char *fstype);

/* Parse a mountinfo file from its start (and acknowledge a change that
 * poll() reported on it). 0, or -errno. */
int sbx_mounts_read(int fd, struct sbx_mounts *out);
/* This process's own mount table. */
int sbx_mounts_self(struct sbx_mounts *out);
void sbx_mounts_free(struct sbx_mounts *t);

/*
 * In a new mount namespace: make every mount private (MS_REC | MS_PRIVATE
 * of "/"), so that nothing mounted on either side reaches the other. In a
 * chroot, whose "/" is no mount point, this process first gets a root that
 * is one: a private copy of "/" (sbx_mounts.c says how; the process's root
 * and working directory change). 0, or -errno with *step (borrowed,
 * static) saying what failed; the caller's own name for the step stays
 * when that was making "/" private. Linux 5.2 in a chroot.
 */
int sbx_mounts_private(const char **step);

/* Lazily unmount every mount at or below dir (keep_dir: not the one at dir
 * itself), deepest first. 0 or -errno. */
int sbx_mounts_detach_under(const char *dir, bool keep_dir);

/* Unmount every kernel file system mount (sbx_kernel_fs_type) but those at
 * the mount points in keep_at and at or below those in keep_under (both
 * NULL-terminated). Returns how many, or -errno. */
int sbx_mounts_detach_kernel_fs(const char *const *keep_at, const char *const *keep_under);

/* The host's mount table changed (POLLPRI on host_fd, its mountinfo):
 * unmount from this namespace every mount the host no longer has (same
 * point, device and root), then *host becomes the new table. Returns how
 * many were unmounted, or -errno. */
int sbx_mounts_follow_host(int host_fd, struct sbx_mounts *host);

#endif
