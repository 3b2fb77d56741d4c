/* systemd through sd-bus, driven by the libuv loop (the bus fd polled with
 * sd_bus_get_events(), sd_bus_get_timeout() on a timer): transient units,
 * stop, unit listing for adoption, and unit state from D-Bus signals
 * (JobRemoved, PropertiesChanged) instead of polling. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "systemd-unit.h"

struct systemd;

struct unit_status {
        char active_state[16]; /* "active", "activating", "failed", "inactive", … */
        char sub_state[32];
        char result[32];            /* Service Result: "success", "exit-code", … */
        uint32_t main_pid;          /* 0 when none */
        uint64_t active_enter_usec; /* realtime, 0 when never */
        int exec_main_code;         /* CLD_EXITED, CLD_KILLED… from ExecMainCode */
        int exec_main_status;       /* exit status or signal */
        bool loaded;                /* false when systemd does not know the unit (gone) */
};

/* Called whenever a watched unit's state changes (and once after watching
 * starts, with the current state). */
typedef void (*systemd_unit_cb)(struct systemd *m, const char *unit, const struct unit_status *st,
                                void *userdata);
/* A job finished: r = 0 when systemd's job result is "done", otherwise
 * negative with result the job result string ("failed", "timeout", …) or
 * the D-Bus error message. */
typedef void (*systemd_job_cb)(struct systemd *m, int r, const char *result, void *userdata);
/* The units whose name starts with a prefix: names is NULL-terminated
 * and valid only during the call. */
typedef void (*systemd_list_cb)(struct systemd *m, int r, char *const *names, void *userdata);

/* bus: "system", "user" or a D-Bus address ("unix:path=/run/…/private").
 * A "unix:path=…/systemd/private" address is the manager's private peer-to-peer
 * socket and is used without a bus daemon. */
int systemd_new(uv_loop_t *loop, const char *bus, systemd_unit_cb unit_cb, void *userdata,
                struct systemd **ret);
/* Accepts NULL. No callbacks are called after this. */
struct systemd *systemd_free(struct systemd *m);

/* StartTransientUnit with mode "fail"; cb fires when the job is removed. */
int systemd_start_transient(struct systemd *m, const struct transient_unit *u, systemd_job_cb cb,
                            void *userdata);
/* StopUnit with mode "replace"; cb fires when the job is removed (also when
 * the unit was not loaded: then r = 0). cb may be NULL. */
/* Starts a socket unit with u as its auxiliary service, then u: the
 * instance receives the socket's listening sockets (LISTEN_FDS). cb reports
 * u's start job; a socket that could not listen is -EADDRINUSE with a
 * result that names the socket unit and says why. */
int systemd_start_transient_with_socket(struct systemd *m, const struct transient_socket *sock,
                                        const struct transient_unit *u, systemd_job_cb cb,
                                        void *userdata);
int systemd_stop_unit(struct systemd *m, const char *unit, systemd_job_cb cb, void *userdata);
/* ListUnitsByPatterns for "prefix*" (all states). */
int systemd_list_units(struct systemd *m, const char *prefix, systemd_list_cb cb, void *userdata);
/* Starts and stops delivery of unit_cb for one unit. */
int systemd_watch_unit(struct systemd *m, const char *unit);
void systemd_unwatch_unit(struct systemd *m, const char *unit);
/* Whether the manager is the system manager (full sandboxing applies)
 * or a user manager (some mount-namespace options are unavailable). */
bool systemd_is_system(struct systemd *m);

/* Called once when the connection to the manager is lost or unusable.
 * Every pending job callback has been called with -ENOTCONN before, and no
 * other callback follows; the owner decides what to do (the engine frees
 * this connection and opens a new one, which adopts what systemd runs).
 * reason is a message for the log. */
typedef void (*systemd_disconnect_cb)(struct systemd *m, int r, const char *reason, void *userdata);
void systemd_set_disconnect_cb(struct systemd *m, systemd_disconnect_cb cb, void *userdata);

/* Notes on the functions above:
 * - systemd_free() closes libuv handles; their memory is released in the
 *   close callbacks, so the loop must run once more afterwards (uv_run()
 *   before uv_loop_close()).
 * - Transient units are created with CollectMode=inactive-or-failed: a
 *   failed instance is garbage-collected right away instead of lingering
 *   until reset-failed. Its final state (Result, ExecMainStatus) still
 *   reaches unit_cb, because systemd flushes the pending PropertiesChanged
 *   signal before UnitRemoved; to see it, watch a unit before starting it.
 * - timeout_stop_usec 0 keeps the manager's default stop timeout.
 * - Watching never loads a unit into the manager: the state of a unit that is
 *   not loaded is reported as loaded = false, "inactive"/"dead". */
