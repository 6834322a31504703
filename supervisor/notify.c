/*
 * notify.c - valetd and its service manager: the sd_notify protocol
 * (libsystemd's sd_notify(), one datagram to $NOTIFY_SOCKET).
 *
 * Theory of operation. valetd sends READY=1 once the HTTP API listens
 * (Type=notify), RELOADING=1 and READY=1 around a SIGHUP reload,
 * STOPPING=1 at shutdown (main.c). notify_watch adds what a supervisor
 * needs to tell a hung daemon from a busy one: one ev_timer on the event
 * loop that fires every min(1 s, watchdog / 2). Each tick sends
 * WATCHDOG=1 when half the watchdog interval has passed since the last
 * ping - the pings come from the loop itself, so a loop that stops
 * turning (a blocking call, an endless callback, a stopped process) stops
 * them and systemd restarts the service (WatchdogSec= in the unit); so
 * does a daemon that can no longer run any job (its spawner died: the
 * status callback says so, and the pings stop) - and
 * STATUS=<line> when the line changed and a second has passed since the
 * last one, so `systemctl status valetd` says "running 3 jobs, 120
 * queued" at a cost of at most one datagram a second. Both go in one
 * datagram. The watchdog interval is systemd's: $WATCHDOG_USEC, for this
 * process when $WATCHDOG_PID says so (sd_watchdog_enabled()). Times are
 * ev_time(), not the loop's cached ev_now(): a turn of the loop that took
 * long must not let two STATUS= lines out less than a second apart.
 * sd_notify() sends on a blocking socket, so a manager whose queue is full
 * would hold the loop until it reads; systemd reads its socket at once.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "notify.h"

#define NOTIFY_STATUS_MAX 256
#define NOTIFY_STATUS_EVERY 1.0 /* seconds between two STATUS= at most */

struct notify_watch {
	struct ev_loop *loop;
	ev_timer timer;
	notify_status_fn status;
	void *arg;
	double ping_every; /* seconds; 0: no watchdog */
	ev_tstamp last_ping, last_status;
	char sent[NOTIFY_STATUS_MAX]; /* the last STATUS= line */
};

int notify_send(const char *state)
{
	int rc = sd_notify(0, state);

	return rc < 0 ? rc : 0;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct notify_watch *w = t->data;
	char line[NOTIFY_STATUS_MAX], msg[NOTIFY_STATUS_MAX + 32];
	ev_tstamp now = ev_time(); /* not ev_now(): the loop's may be late by a busy turn */
	size_t len = 0;
	bool alive;

	(void)revents;
	line[0] = '\0';
	alive = w->status(w->arg, line, sizeof(line));
	/* 10 ms early is on time: the timer fires at this rate. */
	if (alive && w->ping_every > 0 && now - w->last_ping >= w->ping_every - 0.01) {
		len += (size_t)snprintf(msg, sizeof(msg), "WATCHDOG=1\n");
		w->last_ping = now;
	}
	if (strcmp(line, w->sent) != 0 && now - w->last_status >= NOTIFY_STATUS_EVERY - 0.01) {
		snprintf(msg + len, sizeof(msg) - len, "STATUS=%s\n", line);
		len = strlen(msg);
		memcpy(w->sent, line, sizeof(w->sent));
		w->last_status = now;
	}
	if (len > 0)
		notify_send(msg);
}

struct notify_watch *notify_watch_new(struct ev_loop *loop, notify_status_fn status, void *arg)
{
	const char *sock = getenv("NOTIFY_SOCKET");
	struct notify_watch *w;
	uint64_t usec = 0;
	double every = NOTIFY_STATUS_EVERY;

	if (!sock || !sock[0] || !(w = calloc(1, sizeof(*w))))
		return NULL;
	w->loop = loop;
	w->status = status;
	w->arg = arg;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		w->ping_every = (double)usec / 2e6;
		if (w->ping_every < 0.01)
			w->ping_every = 0.01;
		if (w->ping_every < every)
			every = w->ping_every;
	}
	w->last_ping = w->last_status = ev_time() - 2 * NOTIFY_STATUS_EVERY;
	ev_timer_init(&w->timer, on_tick, 0., every);
	w->timer.data = w;
	ev_timer_start(loop, &w->timer);
	ev_unref(loop);
	return w;
}

void notify_watch_free(struct notify_watch *w)
{
	if (!w)
		return;
	ev_ref(w->loop);
	ev_timer_stop(w->loop, &w->timer);
	free(w);
}
