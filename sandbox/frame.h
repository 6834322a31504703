/*
 * frame.h - the framed messages a job child writes on its frame channel
 * (fd 3). A frame is a fixed header followed by len payload bytes.
 * The supervisor reads them non-blockingly and caps len; it never trusts
 * what a frame says about how the child ended.
 */
#ifndef VALET_FRAME_H
#define VALET_FRAME_H

#include <stdint.h>
#include <stddef.h>

enum frame_type {
	FRAME_START = 1,       /* job `index` of the run starts; no payload */
	FRAME_RESULT = 2,      /* job `index` finished; payload: {"result":..,"error":".."} */
	FRAME_SETUP_ERROR = 3, /* payload: struct sbx_error */
	FRAME_SYSCALL = 4,     /* payload: struct frame_syscall */
};

/*
 * What the SIGSYS reporter (sbx_child.c) read in the siginfo of a seccomp
 * trap. trap_data is the filter's SECCOMP_RET_DATA, which only the kernel
 * writes there and which the task cannot read (supervisor/filter.c): the
 * supervisor names nr only when trap_data is what the daemon compiled in.
 */
struct frame_syscall {
	int32_t nr;        /* si_syscall: the call that was blocked */
	int32_t trap_data; /* si_errno: the filter's SECCOMP_RET_DATA */
};

struct frame_header {
	uint32_t len;   /* payload bytes */
	uint16_t type;  /* enum frame_type */
	uint16_t index; /* job index within the run */
};

#define FRAME_MAX_HEADER sizeof(struct frame_header)

/* Write one frame, all or nothing from the writer's view (loops on EINTR and
 * partial writes). Async-signal-safe. 0 or -errno. */
int frame_write(int fd, uint16_t type, uint16_t index, const void *payload, size_t len);

#endif
