/*
 * frame.c - writing one frame on the frame channel (fd 3 in a job child).
 *
 * Theory of operation: a frame is a struct frame_header followed by len
 * payload bytes, sent with a single writev() so that on a pipe a frame of
 * at most PIPE_BUF bytes lands atomically. Larger frames (results) may be
 * written in pieces; we keep going until everything is out, retrying on
 * EINTR and waiting with poll() when the descriptor is non-blocking and the
 * pipe is full. The reader (the supervisor) caps len and never trusts a
 * frame; this side only has to make sure it never writes half a header and
 * then gives up silently.
 *
 * Runs in a forked child, possibly in a signal handler (the SIGSYS
 * reporter) and under the strict seccomp profile, so it uses only writev,
 * poll and errno: no malloc, no stdio. errno is preserved.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"

/* Wait until fd is writable again (non-blocking pipe that is full). */
static int frame_wait_writable(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};

	for (;;) {
		int n = poll(&pfd, 1, -1);

		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

int frame_write(int fd, uint16_t type, uint16_t index, const void *payload, size_t len)
{
	struct frame_header hdr = {.len = (uint32_t)len, .type = type, .index = index};
	struct iovec iov[2];
	struct iovec *cur = iov;
	int iovcnt = 2;
	int saved_errno = errno;
	int rc = 0;

	if (len > UINT32_MAX || (len > 0 && payload == NULL))
		return -EINVAL;
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)payload;
	iov[1].iov_len = len;
	if (len == 0)
		iovcnt = 1;

	while (iovcnt > 0) {
		ssize_t n = writev(fd, cur, iovcnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rc = frame_wait_writable(fd);
				if (rc < 0)
					break;
				continue;
			}
			rc = -errno;
			break;
		}
		if (n == 0) {
			/* writev never returns 0 for a non-empty buffer; do not spin. */
			rc = -EIO;
			break;
		}
		/* Partial write: skip what went out and go on with the rest. */
		while (iovcnt > 0 && (size_t)n >= cur->iov_len) {
			n -= (ssize_t)cur->iov_len;
			cur++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			cur->iov_base = (char *)cur->iov_base + n;
			cur->iov_len -= (size_t)n;
		}
	}
	errno = saved_errno;
	return rc;
}
