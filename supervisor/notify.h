/*
 * notify.h - tell the service manager about our state (systemd's sd_notify
 * protocol, through libsystemd): readiness, reloads, the watchdog and a
 * status line. A no-op when NOTIFY_SOCKET is not set.
 */
#ifndef VALET_NOTIFY_H
#define VALET_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

/* e.g. notify_send("READY=1\nSTATUS=listening"). 0 or -errno. */
int notify_send(const char *state);

/* Writes the current status line ("running 3 jobs, 120 queued") into buf;
 * false when the daemon can no longer do its work (no job can run): then
 * no WATCHDOG=1 goes out, and systemd restarts the service. */
typedef bool (*notify_status_fn)(void *arg, char *buf, size_t len);

struct notify_watch;

/*
 * Start pinging the watchdog (WATCHDOG=1 at half of $WATCHDOG_USEC, when
 * it is set for this process) and sending STATUS= from status(arg) when it
 * changed, at most once a second - both from a timer on loop, so a stuck
 * loop stops the pings. NULL when there is no NOTIFY_SOCKET (nothing to
 * do) or no memory. The timer does not keep the loop alive.
 */
struct notify_watch *notify_watch_new(struct ev_loop *loop, notify_status_fn status, void *arg);
void notify_watch_free(struct notify_watch *w);

#endif
