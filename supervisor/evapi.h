/*
 * evapi.h - libev, loaded at run time.
 *
 * Every job child is forked from the spawner, and pays at fork and again at
 * exit for each memory mapping the spawner has: about 2.3 us per mapping
 * here, five mappings per shared library. The spawner is forked before the
 * event loop exists and never runs it, so valetd is not linked against
 * libev: the loop's users call it through this table, which is filled by
 * dlopen() when the first loop is made - after the spawner has been forked
 * (like api/mhd.h for libmicrohttpd and storage/pq.h for libpq). Include
 * this header instead of <ev.h>.
 */
#ifndef VALET_EVAPI_H
#define VALET_EVAPI_H

#include <stddef.h>

#include <ev.h>

#define EV_FUNCS(X)                                                                          \
	X(ev_break) X(ev_default_loop) X(ev_feed_event) X(ev_io_start) X(ev_io_stop)          \
	X(ev_loop_destroy) X(ev_loop_new) X(ev_periodic_start) X(ev_periodic_stop)           \
	X(ev_prepare_start) X(ev_prepare_stop) X(ev_run) X(ev_signal_start)                  \
	X(ev_signal_stop) X(ev_time) X(ev_timer_again) X(ev_timer_remaining)                 \
	X(ev_timer_start) X(ev_timer_stop)

struct ev_api {
#define EV_FIELD(name) __typeof__(name) *name;
	EV_FUNCS(EV_FIELD)
#undef EV_FIELD
};

extern struct ev_api ev_api;

/* Load libev once (idempotent). 0, or -ENOENT with a message in err. */
int ev_api_load(char *err, size_t errlen);

/* ev_default_loop() and ev_loop_new() that load libev first; NULL (with
 * the reason on stderr) when it cannot be loaded. */
struct ev_loop *ev_api_default_loop(unsigned int flags);
struct ev_loop *ev_api_loop_new(unsigned int flags);

#ifndef VALET_EVAPI_IMPL
/* A macro is not expanded again inside its own expansion, so each of these
 * names the table's field. */
#define ev_break (*ev_api.ev_break)
#define ev_default_loop ev_api_default_loop
#define ev_feed_event (*ev_api.ev_feed_event)
#define ev_io_start (*ev_api.ev_io_start)
#define ev_io_stop (*ev_api.ev_io_stop)
#define ev_loop_destroy (*ev_api.ev_loop_destroy)
#define ev_loop_new ev_api_loop_new
#define ev_periodic_start (*ev_api.ev_periodic_start)
#define ev_periodic_stop (*ev_api.ev_periodic_stop)
#define ev_prepare_start (*ev_api.ev_prepare_start)
#define ev_prepare_stop (*ev_api.ev_prepare_stop)
#define ev_run (*ev_api.ev_run)
#define ev_signal_start (*ev_api.ev_signal_start)
#define ev_signal_stop (*ev_api.ev_signal_stop)
#define ev_time (*ev_api.ev_time)
#define ev_timer_again (*ev_api.ev_timer_again)
#define ev_timer_remaining (*ev_api.ev_timer_remaining)
#define ev_timer_start (*ev_api.ev_timer_start)
#define ev_timer_stop (*ev_api.ev_timer_stop)
#endif

#endif
