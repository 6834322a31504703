/*
 * notify.h - tell the service manager about our state (systemd's
 * sd_notify protocol: a datagram of KEY=VALUE lines to $NOTIFY_SOCKET).
 * A no-op when NOTIFY_SOCKET is not set.
 */
#ifndef VALET_NOTIFY_H
#define VALET_NOTIFY_H

/* e.g. notify_send("READY=1\nSTATUS=listening"). 0 or -errno. */
int notify_send(const char *state);

#endif
