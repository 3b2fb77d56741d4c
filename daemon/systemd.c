/* The connection to the service manager: sd-bus driven by the libuv loop
 * (the bus fd on a uv_poll_t, sd_bus_get_timeout() on a uv_timer_t), the
 * table of jobs lii waits for (JobRemoved), and the unit watches that turn
 * PropertiesChanged/UnitRemoved signals into unit_cb calls. */
#include "systemd.h"

#include <poll.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "systemd-unit.h"
#include "util.h"

#define SD_DEST             "org.freedesktop.systemd1"
#define SD_PATH             "/org/freedesktop/systemd1"
#define SD_MANAGER          "org.freedesktop.systemd1.Manager"
#define SD_UNIT             "org.freedesktop.systemd1.Unit"
#define SD_SERVICE          "org.freedesktop.systemd1.Service"
#define SD_UNIT_PATH_PREFIX "/org/freedesktop/systemd1/unit"
#define DBUS_PROPERTIES     "org.freedesktop.DBus.Properties"

/* Unit names are at most 255 bytes (UNIT_NAME_MAX in systemd). */
#define UNIT_NAME_MAX 255
/* How many JobRemoved signals that overtook their method reply are kept. */
#define EARLY_REMOVED_MAX 16
/* Messages processed per wake-up, so that a flood of signals cannot keep the
 * rest of the loop (API, probes) from running; the rest follows at once on
 * the next iteration. */
#define PROCESS_BUDGET 64

/* sd-bus maps only the generic D-Bus errors to errno; these are the
 * manager's own, so that callers can tell "exists" from "not found". */
static const sd_bus_error_map systemd_error_map[] = {
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.NoSuchUnit", ENOENT),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.NoUnitForPID", ESRCH),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.UnitExists", EEXIST),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.LoadFailed", EIO),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.JobFailed", EREMOTEIO),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.NoSuchJob", ENOENT),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.NotSubscribed", EINVAL),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.AlreadySubscribed", EINVAL),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.OnlyByDependency", EINVAL),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.TransactionJobsConflicting", EDEADLK),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.TransactionOrderIsCyclic", EDEADLK),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.TransactionIsDestructive", EDEADLK),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.UnitMasked", ERFKILL),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.UnitGenerated", EADDRNOTAVAIL),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.UnitLinked", ELOOP),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.JobTypeNotApplicable", EBADR),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.NoIsolation", EPERM),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.ShuttingDown", ECANCELED),
    SD_BUS_ERROR_MAP("org.freedesktop.systemd1.ScopeNotRunning", EHOSTDOWN),
    SD_BUS_ERROR_MAP_END,
};

struct job {
        struct systemd *m;
        struct job *next;
        char *unit;
        char *path; /* the job object, NULL until the method reply arrived */
        sd_bus_slot *slot;
        bool stop; /* NoSuchUnit means "already stopped" */
        systemd_job_cb cb;
        void *userdata;
        /* Frees userdata when the job goes without calling back (systemd
         * lost); NULL when the caller owns it. */
        void (*userdata_free)(void *userdata);
};

struct early_removed {
        char *path;
        char *result;
};

struct list_req {
        struct systemd *m;
        struct list_req *next;
        sd_bus_slot *slot;
        systemd_list_cb cb;
        void *userdata;
};

/* What lii tracks of a unit; load_state is kept to compute loaded. */
struct unit_state {
        struct unit_status st;
        char load_state[32];
};

struct watch {
        struct systemd *m;
        char *unit;
        char *path;
        sd_bus_slot *match;
        /* The refresh in flight: GetUnit, then GetAll on both interfaces. */
        sd_bus_slot *get_unit;
        sd_bus_slot *get_all_unit;
        sd_bus_slot *get_all_service;
        unsigned pending;
        bool dirty;        /* asked to refresh while one was in flight */
        bool force_report; /* report after the refresh even if nothing changed */
        bool initialized;  /* the first refresh is done; changes are reported */
        struct unit_state state;
        struct unit_status reported;
};

struct systemd {
        uv_loop_t *loop;
        sd_bus *bus;
        uv_poll_t poll;
        uv_timer_t timer;
        int poll_events;
        unsigned open_handles;
        bool bus_client;
        bool is_system;
        bool dead;          /* no more bus traffic: lost, or being freed */
        int deferred_error; /* found outside the loop, acted on from it */
        const char *deferred_reason;
        bool freed; /* systemd_free() was called, no more callbacks */

        systemd_unit_cb unit_cb;
        void *userdata;
        systemd_disconnect_cb disconnect_cb;
        void *disconnect_userdata;

        sd_bus_slot *match_job_removed;
        sd_bus_slot *match_unit_new;
        sd_bus_slot *match_unit_removed;
        sd_bus_slot *subscribe;

        struct job *jobs;
        /* Sorted by unit name: every UnitNew and UnitRemoved signal of the
         * manager (of any unit) looks its unit up here. */
        struct watch **watches;
        size_t n_watches;
        struct list_req *lists;
        struct early_removed early[EARLY_REMOVED_MAX];
        unsigned early_next;
};

static void bus_update(struct systemd *m);

static bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

/* Returns the "path=" value of a unix: D-Bus address, or NULL. The value is
 * copied so that a following ",guid=…" is not part of it. */
static char *address_path(const char *address)
{
        if (strncmp(address, "unix:", 5) != 0)
                return NULL;
        for (const char *p = address + 5; p && *p; p = strchr(p, ',')) {
                if (*p == ',')
                        p++;
                if (strncmp(p, "path=", 5) == 0)
                        return strndup(p + 5, strcspn(p + 5, ","));
        }
        return NULL;
}

static bool path_ends_with(const char *path, const char *suffix)
{
        size_t n = strlen(path), k = strlen(suffix);
        return n >= k && streq(path + n - k, suffix) && (n == k || path[n - k - 1] == '/');
}

/* The manager's private socket speaks D-Bus peer-to-peer: no bus daemon, no
 * Hello, no sender names. systemctl talks to it the same way. */
static bool address_is_private(const char *address)
{
        _cleanup_free_ char *path = address_path(address);
        return path && path_ends_with(path, "systemd/private");
}

/* For an explicit address the manager kind is judged by where the socket
 * lives: the system manager's private socket and the system bus socket are
 * at fixed places under /run, every user manager's are under its
 * XDG_RUNTIME_DIR. The manager exposes no property that says "I am the
 * system instance" directly, and guessing from units would be fragile. */
static bool address_is_system(const char *address)
{
        static const char *const system_sockets[] = {
            "/run/systemd/private",
            "/var/run/systemd/private",
            "/run/dbus/system_bus_socket",
            "/var/run/dbus/system_bus_socket",
        };
        _cleanup_free_ char *path = address_path(address);
        if (!path)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(system_sockets); i++)
                if (streq(path, system_sockets[i]))
                        return true;
        return false;
}

/* The sender on a bus daemon is checked so that no other client can fake
 * manager signals; on the peer-to-peer socket messages carry no sender and
 * the peer can only be the manager. */
static const char *signal_sender(struct systemd *m)
{
        return m->bus_client ? SD_DEST : NULL;
}

static int bus_error_errno(const sd_bus_error *e)
{
        int r = sd_bus_error_get_errno(e);
        return r > 0 ? -r : -EIO;
}

/* sd-bus answers the calls still pending when the connection breaks with a
 * synthetic NoReply error: that is a lost connection, not a timeout. */
static int reply_errno(struct systemd *m, const sd_bus_error *e)
{
        if (sd_bus_is_open(m->bus) <= 0)
                return -ENOTCONN;
        return bus_error_errno(e);
}

static const char *bus_error_message(const sd_bus_error *e)
{
        if (e->message && e->message[0])
                return e->message;
        return e->name ? e->name : "unknown error";
}

static int job_result_to_errno(const char *result)
{
        static const struct {
                const char *result;
                int error;
        } table[] = {
            {"done", 0},         {"canceled", ECANCELED},     {"timeout", ETIMEDOUT},
            {"failed", EIO},     {"dependency", ENOLINK},     {"skipped", EALREADY},
            {"invalid", EINVAL}, {"unsupported", EOPNOTSUPP}, {"collected", ECANCELED},
            {"once", ESTALE},    {"frozen", EBUSY},
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].result, result))
                        return -table[i].error;
        return -EIO;
}

/* Jobs. */

static void job_unlink(struct job *j)
{
        for (struct job **p = &j->m->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        break;
                }
}

static void job_free(struct job *j)
{
        if (j->userdata_free)
                j->userdata_free(j->userdata);
        sd_bus_slot_unref(j->slot);
        free(j->unit);
        free(j->path);
        free(j);
}

/* Detaches and frees the job before calling back, so that the callback may
 * start new jobs or free the whole struct systemd. */
static void job_finish(struct job *j, int r, const char *result)
{
        struct systemd *m = j->m;
        systemd_job_cb cb = j->cb;
        void *userdata = j->userdata;

        job_unlink(j);
        j->userdata_free = NULL; /* the callback has it now */
        job_free(j);
        if (cb)
                cb(m, r, result, userdata);
}

static void early_clear(struct early_removed *e)
{
        free(e->path);
        free(e->result);
        e->path = e->result = NULL;
}

static void early_remember(struct systemd *m, const char *path, const char *result)
{
        struct early_removed *e = &m->early[m->early_next];
        early_clear(e);
        e->path = xstrdup(path);
        e->result = xstrdup(result);
        m->early_next = (m->early_next + 1) % EARLY_REMOVED_MAX;
}

static int job_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct job *j = userdata;
        struct systemd *m = j->m;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *path;
        int r;

        j->slot = sd_bus_slot_unref(j->slot);
        if (e) {
                if (j->stop && sd_bus_error_has_name(e, "org.freedesktop.systemd1.NoSuchUnit"))
                        job_finish(j, 0, "done");
                else
                        job_finish(j, reply_errno(m, e), bus_error_message(e));
                return 0;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0) {
                job_finish(j, r, "malformed reply from the service manager");
                return 0;
        }
        j->path = xstrdup(path);

        /* The manager queues the reply before it runs the job, so JobRemoved
         * follows the reply in practice; should it ever overtake it, the
         * signal was kept for us. */
        for (size_t i = 0; i < EARLY_REMOVED_MAX; i++) {
                struct early_removed *er = &m->early[i];
                if (er->path && streq(er->path, path)) {
                        _cleanup_free_ char *result = TAKE_PTR(er->result);
                        early_clear(er);
                        job_finish(j, job_result_to_errno(result), result);
                        return 0;
                }
        }
        return 0;
}

static int on_job_removed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
        struct systemd *m = userdata;
        const char *path, *unit, *result;
        uint32_t id;
        int r;

        r = sd_bus_message_read(msg, "uoss", &id, &path, &unit, &result);
        if (r < 0) {
                log_debug_errno(r, "Ignoring malformed JobRemoved signal: %m");
                return 0;
        }
        for (struct job *j = m->jobs; j; j = j->next)
                if (j->path && streq(j->path, path)) {
                        job_finish(j, job_result_to_errno(result), result);
                        return 0;
                }
        /* Only removals that may belong to a call still in flight are kept:
         * on the system bus every job on the host is announced here. */
        for (struct job *j = m->jobs; j; j = j->next)
                if (!j->path && streq(j->unit, unit)) {
                        early_remember(m, path, result);
                        break;
                }
        return 0;
}

/* Sends a message whose reply is a job path and tracks the job. On failure
 * nothing is tracked and cb is never called. */
static int job_call_owning(struct systemd *m, sd_bus_message *msg, const char *unit, bool stop,
                           systemd_job_cb cb, void *userdata, void (*userdata_free)(void *))
{
        struct job *j = xcalloc(1, sizeof *j);
        int r;

        j->m = m;
        j->unit = xstrdup(unit);
        j->stop = stop;
        j->cb = cb;
        j->userdata = userdata;
        r = sd_bus_call_async(m->bus, &j->slot, msg, job_reply, j, 0);
        if (r < 0) {
                job_free(j);
                return r;
        }
        j->userdata_free = userdata_free;
        j->next = m->jobs;
        m->jobs = j;
        bus_update(m);
        return 0;
}

static int job_call(struct systemd *m, sd_bus_message *msg, const char *unit, bool stop,
                    systemd_job_cb cb, void *userdata)
{
        return job_call_owning(m, msg, unit, stop, cb, userdata, NULL);
}

/* Unit state. */

enum {
        P_ACTIVE_STATE,
        P_SUB_STATE,
        P_LOAD_STATE,
        P_ACTIVE_ENTER_TIMESTAMP,
        P_MAIN_PID,
        P_RESULT,
        P_EXEC_MAIN_CODE,
        P_EXEC_MAIN_STATUS,
};

static const struct {
        const char *name;
        const char *signature;
} watched_props[] = {
    [P_ACTIVE_STATE] = {"ActiveState", "s"},
    [P_SUB_STATE] = {"SubState", "s"},
    [P_LOAD_STATE] = {"LoadState", "s"},
    [P_ACTIVE_ENTER_TIMESTAMP] = {"ActiveEnterTimestamp", "t"},
    [P_MAIN_PID] = {"MainPID", "u"},
    [P_RESULT] = {"Result", "s"},
    [P_EXEC_MAIN_CODE] = {"ExecMainCode", "i"},
    [P_EXEC_MAIN_STATUS] = {"ExecMainStatus", "i"},
};

static int prop_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(watched_props); i++)
                if (streq(watched_props[i].name, name))
                        return (int)i;
        return -ENOENT;
}

static void copy_string(char *dst, size_t size, const char *src)
{
        snprintf(dst, size, "%s", src);
}

static int prop_read(struct unit_state *s, int p, sd_bus_message *msg)
{
        const char *str;
        uint32_t u;
        uint64_t t;
        int32_t i;
        int r;

        switch (p) {
        case P_ACTIVE_STATE:
        case P_SUB_STATE:
        case P_LOAD_STATE:
        case P_RESULT:
                r = sd_bus_message_read(msg, "v", "s", &str);
                if (r < 0)
                        return r;
                if (p == P_ACTIVE_STATE)
                        copy_string(s->st.active_state, sizeof s->st.active_state, str);
                else if (p == P_SUB_STATE)
                        copy_string(s->st.sub_state, sizeof s->st.sub_state, str);
                else if (p == P_LOAD_STATE)
                        copy_string(s->load_state, sizeof s->load_state, str);
                else
                        copy_string(s->st.result, sizeof s->st.result, str);
                return 0;
        case P_ACTIVE_ENTER_TIMESTAMP:
                r = sd_bus_message_read(msg, "v", "t", &t);
                if (r >= 0)
                        s->st.active_enter_usec = t;
                return r;
        case P_MAIN_PID:
                r = sd_bus_message_read(msg, "v", "u", &u);
                if (r >= 0)
                        s->st.main_pid = u;
                return r;
        case P_EXEC_MAIN_CODE:
        case P_EXEC_MAIN_STATUS:
                r = sd_bus_message_read(msg, "v", "i", &i);
                if (r < 0)
                        return r;
                if (p == P_EXEC_MAIN_CODE)
                        s->st.exec_main_code = i;
                else
                        s->st.exec_main_status = i;
                return 0;
        }
        return -EINVAL;
}

/* Merges an a{sv} of properties (GetAll reply or PropertiesChanged) into s.
 * Properties lii does not track are skipped; a tracked one with an
 * unexpected type fails the whole message. */
static int state_merge(struct unit_state *s, sd_bus_message *msg)
{
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *name, *contents;
                int p;

                r = sd_bus_message_read(msg, "s", &name);
                if (r < 0)
                        return r;
                p = prop_find(name);
                if (p < 0)
                        r = sd_bus_message_skip(msg, "v");
                else {
                        r = sd_bus_message_peek_type(msg, NULL, &contents);
                        if (r < 0)
                                return r;
                        if (!contents || !streq(contents, watched_props[p].signature))
                                return -EBADMSG;
                        r = prop_read(s, p, msg);
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        s->st.loaded = s->load_state[0] && !streq(s->load_state, "not-found");
        return 0;
}

/* What a unit the manager does not know looks like; the last Result and
 * exit status are kept, they tell why it went away. */
static void state_set_gone(struct unit_state *s)
{
        copy_string(s->load_state, sizeof s->load_state, "not-found");
        copy_string(s->st.active_state, sizeof s->st.active_state, "inactive");
        copy_string(s->st.sub_state, sizeof s->st.sub_state, "dead");
        s->st.main_pid = 0;
        s->st.loaded = false;
}

static bool status_equal(const struct unit_status *a, const struct unit_status *b)
{
        return streq(a->active_state, b->active_state) && streq(a->sub_state, b->sub_state) &&
               streq(a->result, b->result) && a->main_pid == b->main_pid &&
               a->active_enter_usec == b->active_enter_usec &&
               a->exec_main_code == b->exec_main_code &&
               a->exec_main_status == b->exec_main_status && a->loaded == b->loaded;
}

/* Watches. */

static size_t watch_search(const struct systemd *m, const char *unit, bool *ret_found)
{
        return sorted_by_name_search((void *const *)m->watches, m->n_watches,
                                     offsetof(struct watch, unit), unit, ret_found);
}

static struct watch *watch_find(struct systemd *m, const char *unit)
{
        bool found;
        size_t i = watch_search(m, unit, &found);
        return found ? m->watches[i] : NULL;
}

static void watch_cancel_refresh(struct watch *w)
{
        w->get_unit = sd_bus_slot_unref(w->get_unit);
        w->get_all_unit = sd_bus_slot_unref(w->get_all_unit);
        w->get_all_service = sd_bus_slot_unref(w->get_all_service);
        w->pending = 0;
}

static void watch_free(struct watch *w)
{
        watch_cancel_refresh(w);
        sd_bus_slot_unref(w->match);
        free(w->unit);
        free(w->path);
        free(w);
}

/* Must be the last thing a caller does with w: unit_cb may unwatch it or
 * free the whole struct systemd. */
static void watch_report(struct watch *w, bool force)
{
        struct systemd *m = w->m;

        if (!w->initialized)
                return;
        if (!force && status_equal(&w->state.st, &w->reported))
                return;
        w->reported = w->state.st;
        if (m->unit_cb)
                m->unit_cb(m, w->unit, &w->reported, m->userdata);
}

static int watch_refresh(struct watch *w);

static void watch_refresh_done(struct watch *w)
{
        bool force;

        if (w->pending > 0)
                return;
        if (w->dirty && watch_refresh(w) >= 0)
                return;
        force = !w->initialized || w->force_report;
        w->initialized = true;
        w->force_report = false;
        watch_report(w, force);
}

static void get_all_reply(struct watch *w, sd_bus_slot **slot, sd_bus_message *reply)
{
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        struct unit_state s = w->state;
        int r;

        *slot = sd_bus_slot_unref(*slot);
        w->pending--;
        if (e)
                /* A unit that is not a service has no Service interface; the
                 * Unit properties still tell its state. */
                log_debug("GetAll on %s failed: %s", w->path, bus_error_message(e));
        else {
                r = state_merge(&s, reply);
                if (r < 0)
                        log_debug_errno(r, "Ignoring malformed properties of %s: %m", w->unit);
                else
                        w->state = s;
        }
        watch_refresh_done(w);
}

static int on_get_all_unit(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct watch *w = userdata;
        get_all_reply(w, &w->get_all_unit, reply);
        return 0;
}

static int on_get_all_service(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct watch *w = userdata;
        get_all_reply(w, &w->get_all_service, reply);
        return 0;
}

static int on_get_unit(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct watch *w = userdata;
        struct systemd *m = w->m;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *path;
        int r;

        w->get_unit = sd_bus_slot_unref(w->get_unit);
        w->pending--;
        if (e) {
                /* NoSuchUnit: the manager has not loaded the unit. Any other
                 * error leaves nothing better to report either. */
                if (!sd_bus_error_has_name(e, "org.freedesktop.systemd1.NoSuchUnit"))
                        log_debug("GetUnit(%s) failed: %s", w->unit, bus_error_message(e));
                state_set_gone(&w->state);
                watch_refresh_done(w);
                return 0;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_call_method_async(m->bus, &w->get_all_unit, SD_DEST, path,
                                             DBUS_PROPERTIES, "GetAll", on_get_all_unit, w, "s",
                                             SD_UNIT);
        if (r >= 0) {
                w->pending++;
                r = sd_bus_call_method_async(m->bus, &w->get_all_service, SD_DEST, path,
                                             DBUS_PROPERTIES, "GetAll", on_get_all_service, w, "s",
                                             SD_SERVICE);
                if (r >= 0)
                        w->pending++;
        }
        if (r < 0)
                log_debug_errno(r, "Failed to query the properties of %s: %m", w->unit);
        watch_refresh_done(w);
        return 0;
}

/* Reads the unit's state anew. GetUnit comes first because touching a
 * unit's object path makes the manager load it: asking for the properties of
 * a unit that is gone would create a "not-found" stub (and a UnitNew signal,
 * which would make lii ask again). */
static int watch_refresh(struct watch *w)
{
        struct systemd *m = w->m;
        int r;

        if (w->pending > 0) {
                w->dirty = true;
                return 0;
        }
        w->dirty = false;
        r = sd_bus_call_method_async(m->bus, &w->get_unit, SD_DEST, SD_PATH, SD_MANAGER, "GetUnit",
                                     on_get_unit, w, "s", w->unit);
        if (r < 0)
                return r;
        w->pending = 1;
        bus_update(m);
        return 0;
}

static int on_properties_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
        struct watch *w = userdata;
        struct unit_state s = w->state;
        bool invalidated = false;
        const char *iface, *name;
        int r;

        r = sd_bus_message_read(msg, "s", &iface);
        if (r < 0 || (!streq(iface, SD_UNIT) && !streq(iface, SD_SERVICE)))
                return 0;
        r = state_merge(&s, msg);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read(msg, "s", &name)) > 0)
                if (prop_find(name) >= 0)
                        invalidated = true;
        if (r < 0) {
                log_debug_errno(r, "Malformed PropertiesChanged for %s, reading anew: %m", w->unit);
                (void)watch_refresh(w);
                return 0;
        }
        w->state = s;
        if (invalidated)
                (void)watch_refresh(w);
        watch_report(w, false);
        return 0;
}

static int on_unit_new_or_removed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error)
{
        struct systemd *m = userdata;
        const char *unit, *path;
        struct watch *w;
        int r;

        r = sd_bus_message_read(msg, "so", &unit, &path);
        if (r < 0)
                return 0;
        w = watch_find(m, unit);
        if (!w)
                return 0;
        if (streq(sd_bus_message_get_member(msg), "UnitRemoved")) {
                state_set_gone(&w->state);
                watch_report(w, false);
        } else
                /* UnitNew comes instead of the first PropertiesChanged: the
                 * state it stands for has to be read. */
                (void)watch_refresh(w);
        return 0;
}

/* The bus in the loop. */

static void bus_dead(struct systemd *m, int r, const char *reason)
{
        if (m->dead)
                return;
        m->dead = true;
        uv_poll_stop(&m->poll);
        uv_timer_stop(&m->timer);
        m->poll_events = 0;
        for (size_t i = 0; i < m->n_watches; i++)
                watch_cancel_refresh(m->watches[i]);
        while (m->lists) {
                struct list_req *l = m->lists;
                m->lists = l->next;
                systemd_list_cb cb = l->cb;
                void *userdata = l->userdata;
                sd_bus_slot_unref(l->slot);
                free(l);
                cb(m, -ENOTCONN, NULL, userdata);
                if (m->freed)
                        return;
        }
        while (m->jobs) {
                job_finish(m->jobs, -ENOTCONN, reason);
                if (m->freed)
                        return;
        }
        if (m->disconnect_cb)
                m->disconnect_cb(m, r, reason, m->disconnect_userdata);
}

static void on_poll(uv_poll_t *handle, int status, int events);
static void on_timer(uv_timer_t *handle);

/* bus_update() runs inside API calls, where calling back would break the
 * promise that callbacks never run synchronously; a failure found there is
 * acted on from the loop instead. */
static void bus_fail_later(struct systemd *m, int r, const char *reason)
{
        if (m->deferred_error == 0) {
                m->deferred_error = r < 0 ? r : -EIO;
                m->deferred_reason = reason;
        }
        uv_timer_start(&m->timer, on_timer, 0, 0);
}

/* Arms the poll handle and the timer for what sd-bus waits for now. Called
 * after every message lii queues, so that writes are flushed from the loop. */
static void bus_update(struct systemd *m)
{
        uint64_t timeout;
        int events, uv_events, r;

        if (m->dead || m->deferred_error)
                return;
        events = sd_bus_get_events(m->bus);
        if (events < 0) {
                bus_fail_later(m, events, "Connection to the service manager closed");
                return;
        }
        uv_events = ((events & POLLIN) ? UV_READABLE : 0) | ((events & POLLOUT) ? UV_WRITABLE : 0);
        if (uv_events != m->poll_events) {
                r = uv_events ? uv_poll_start(&m->poll, uv_events, on_poll)
                              : uv_poll_stop(&m->poll);
                if (r < 0) {
                        bus_fail_later(m, r, "Failed to poll the service manager connection");
                        return;
                }
                m->poll_events = uv_events;
        }

        r = sd_bus_get_timeout(m->bus, &timeout);
        if (r < 0) {
                bus_fail_later(m, r, "Connection to the service manager closed");
                return;
        }
        if (timeout == UINT64_MAX)
                uv_timer_stop(&m->timer);
        else {
                uint64_t now = now_monotonic_usec();
                uint64_t delay_ms =
                    timeout > now ? (timeout - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC : 0;
                uv_timer_start(&m->timer, on_timer, delay_ms, 0);
        }
}

static void bus_process(struct systemd *m)
{
        if (m->deferred_error && !m->dead) {
                bus_dead(m, m->deferred_error, m->deferred_reason);
                return;
        }
        for (unsigned i = 0; i < PROCESS_BUDGET; i++) {
                int r;

                /* A callback may have freed us or found the bus dead. */
                if (m->dead)
                        return;
                r = sd_bus_process(m->bus, NULL);
                if (r < 0) {
                        bus_dead(m, r, "Connection to the service manager lost");
                        return;
                }
                if (r == 0)
                        break;
        }
        bus_update(m);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
        bus_process(handle->data);
}

static void on_timer(uv_timer_t *handle)
{
        bus_process(handle->data);
}

static int on_subscribe(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct systemd *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        m->subscribe = sd_bus_slot_unref(m->subscribe);
        if (e)
                /* Without the subscription the manager sends no signals, and
                 * no job would ever be seen to finish. */
                bus_dead(m, bus_error_errno(e), bus_error_message(e));
        return 0;
}

static void on_handle_closed(uv_handle_t *handle)
{
        struct systemd *m = handle->data;
        if (--m->open_handles == 0)
                free(m);
}

static int bus_open(const char *bus, bool *ret_bus_client, bool *ret_is_system, sd_bus **ret)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *b = NULL;
        bool bus_client = true, is_system = false;
        int r;

        if (streq(bus, "system")) {
                r = sd_bus_open_system(&b);
                is_system = true;
        } else if (streq(bus, "user"))
                r = sd_bus_open_user(&b);
        else {
                r = sd_bus_new(&b);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(b, bus);
                if (r < 0)
                        return r;
                bus_client = !address_is_private(bus);
                is_system = address_is_system(bus);
                r = sd_bus_set_bus_client(b, bus_client);
                if (r < 0)
                        return r;
                (void)sd_bus_set_description(b, "lii-systemd");
                r = sd_bus_start(b);
        }
        if (r < 0)
                return r;
        *ret_bus_client = bus_client;
        *ret_is_system = is_system;
        *ret = TAKE_PTR(b);
        return 0;
}

int systemd_new(uv_loop_t *loop, const char *bus, systemd_unit_cb unit_cb, void *userdata,
                struct systemd **ret)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *b = NULL;
        bool bus_client, is_system;
        struct systemd *m;
        int fd, r;

        if (!loop || !bus || !ret)
                return -EINVAL;
        r = sd_bus_error_add_map(systemd_error_map);
        if (r < 0)
                return r;
        r = bus_open(bus, &bus_client, &is_system, &b);
        if (r < 0)
                return r;
        fd = sd_bus_get_fd(b);
        if (fd < 0)
                return fd;

        m = xcalloc(1, sizeof *m);
        m->loop = loop;
        m->bus_client = bus_client;
        m->is_system = is_system;
        m->unit_cb = unit_cb;
        m->userdata = userdata;
        r = uv_poll_init(loop, &m->poll, fd);
        if (r < 0) {
                free(m);
                return r;
        }
        m->poll.data = m;
        m->timer.data = m;
        (void)uv_timer_init(loop, &m->timer);
        m->open_handles = 2;
        m->bus = TAKE_PTR(b);

        /* The matches are added before Subscribe and before any job is
         * started: the bus daemon handles one connection's messages in
         * order, so no signal lii waits for can slip through. */
        r = sd_bus_match_signal_async(m->bus, &m->match_job_removed, signal_sender(m), SD_PATH,
                                      SD_MANAGER, "JobRemoved", on_job_removed, NULL, m);
        if (r >= 0)
                r = sd_bus_match_signal_async(m->bus, &m->match_unit_new, signal_sender(m), SD_PATH,
                                              SD_MANAGER, "UnitNew", on_unit_new_or_removed, NULL,
                                              m);
        if (r >= 0)
                r = sd_bus_match_signal_async(m->bus, &m->match_unit_removed, signal_sender(m),
                                              SD_PATH, SD_MANAGER, "UnitRemoved",
                                              on_unit_new_or_removed, NULL, m);
        if (r >= 0)
                r = sd_bus_call_method_async(m->bus, &m->subscribe, SD_DEST, SD_PATH, SD_MANAGER,
                                             "Subscribe", on_subscribe, m, NULL);
        if (r < 0) {
                systemd_free(m);
                return r;
        }
        bus_update(m);
        if (m->deferred_error) {
                r = m->deferred_error;
                systemd_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

struct systemd *systemd_free(struct systemd *m)
{
        if (!m)
                return NULL;
        m->dead = true;
        m->freed = true;
        while (m->jobs) {
                struct job *j = m->jobs;
                m->jobs = j->next;
                job_free(j);
        }
        for (size_t i = 0; i < m->n_watches; i++)
                watch_free(m->watches[i]);
        free(m->watches);
        m->watches = NULL;
        m->n_watches = 0;
        while (m->lists) {
                struct list_req *l = m->lists;
                m->lists = l->next;
                sd_bus_slot_unref(l->slot);
                free(l);
        }
        for (size_t i = 0; i < EARLY_REMOVED_MAX; i++)
                early_clear(&m->early[i]);
        m->match_job_removed = sd_bus_slot_unref(m->match_job_removed);
        m->match_unit_new = sd_bus_slot_unref(m->match_unit_new);
        m->match_unit_removed = sd_bus_slot_unref(m->match_unit_removed);
        m->subscribe = sd_bus_slot_unref(m->subscribe);

        /* The handles stop watching the fd before sd-bus closes it. */
        uv_close((uv_handle_t *)&m->poll, on_handle_closed);
        uv_close((uv_handle_t *)&m->timer, on_handle_closed);
        m->bus = sd_bus_flush_close_unref(m->bus);
        return NULL;
}

void systemd_set_disconnect_cb(struct systemd *m, systemd_disconnect_cb cb, void *userdata)
{
        m->disconnect_cb = cb;
        m->disconnect_userdata = userdata;
}

bool systemd_is_system(struct systemd *m)
{
        return m->is_system;
}

/* Transient units. */

static bool unit_name_is_plausible(const char *name)
{
        return name && name[0] && strlen(name) <= UNIT_NAME_MAX;
}

int systemd_start_transient(struct systemd *m, const struct transient_unit *u, systemd_job_cb cb,
                            void *userdata)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        if (!u || !unit_name_is_plausible(u->name) || !u->argv || !u->argv[0] ||
            u->argv[0][0] != '/')
                return -EINVAL;
        if (m->dead)
                return -ENOTCONN;

        r = sd_bus_message_new_method_call(m->bus, &msg, SD_DEST, SD_PATH, SD_MANAGER,
                                           "StartTransientUnit");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "ss", u->name, "fail");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "(sv)");
        if (r < 0)
                return r;
        r = systemd_unit_append_properties(msg, u, m->is_system);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        /* No auxiliary units. */
        r = sd_bus_message_append(msg, "a(sa(sv))", 0);
        if (r < 0)
                return r;
        return job_call(m, msg, u->name, false, cb, userdata);
}

/* A socket unit with its service, started in two jobs: the socket (which
 * creates the service as its auxiliary unit), then the service. */
struct socket_start {
        char *socket, *service;
        systemd_job_cb cb;
        void *userdata;
};

static void socket_start_free(void *p)
{
        struct socket_start *ss = p;
        free(ss->socket);
        free(ss->service);
        free(ss);
}

static void on_socket_service_started(struct systemd *m, int r, const char *result, void *userdata)
{
        struct socket_start *ss = userdata;
        systemd_job_cb cb = ss->cb;
        void *cb_userdata = ss->userdata;
        socket_start_free(ss);
        cb(m, r, result, cb_userdata);
}

static void on_socket_started(struct systemd *m, int r, const char *result, void *userdata)
{
        struct socket_start *ss = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        _cleanup_free_ char *why = NULL;
        if (r == -ENOTCONN) {
                socket_start_free(ss);
                return;
        }
        if (r < 0) {
                why = xasprintf("%s did not start (%s): an address is in use by something else "
                                "or not on this host",
                                ss->socket, result ? result : strerror(-r));
                r = -EADDRINUSE;
                goto fail;
        }
        r = sd_bus_message_new_method_call(m->bus, &msg, SD_DEST, SD_PATH, SD_MANAGER, "StartUnit");
        if (r >= 0)
                r = sd_bus_message_append(msg, "ss", ss->service, "fail");
        if (r >= 0)
                r = job_call_owning(m, msg, ss->service, false, on_socket_service_started, ss,
                                    socket_start_free);
        if (r >= 0)
                return;
        why = xasprintf("cannot start %s: %s", ss->service, strerror(-r));
fail:;
        systemd_job_cb cb = ss->cb;
        void *cb_userdata = ss->userdata;
        socket_start_free(ss);
        cb(m, r, why, cb_userdata);
}

int systemd_start_transient_with_socket(struct systemd *m, const struct transient_socket *sock,
                                        const struct transient_unit *u, systemd_job_cb cb,
                                        void *userdata)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        if (!sock || !unit_name_is_plausible(sock->name) || !sock->listen || !sock->listen[0] ||
            !u || !unit_name_is_plausible(u->name) || !u->argv || !u->argv[0] ||
            u->argv[0][0] != '/')
                return -EINVAL;
        if (m->dead)
                return -ENOTCONN;

        r = sd_bus_message_new_method_call(m->bus, &msg, SD_DEST, SD_PATH, SD_MANAGER,
                                           "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(msg, "ss", sock->name, "fail");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(sv)");
        if (r >= 0)
                r = systemd_unit_append_socket_properties(msg, sock);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        /* The service, created with the socket and started by liid next. */
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(sa(sv))");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'r', "sa(sv)");
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", u->name);
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(sv)");
        if (r >= 0)
                r = systemd_unit_append_properties(msg, u, m->is_system);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        struct socket_start *ss = xcalloc(1, sizeof *ss);
        *ss = (struct socket_start){.socket = xstrdup(sock->name),
                                    .service = xstrdup(u->name),
                                    .cb = cb,
                                    .userdata = userdata};
        r = job_call_owning(m, msg, sock->name, false, on_socket_started, ss, socket_start_free);
        if (r < 0)
                socket_start_free(ss);
        return r;
}

int systemd_stop_unit(struct systemd *m, const char *unit, systemd_job_cb cb, void *userdata)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        if (!unit_name_is_plausible(unit))
                return -EINVAL;
        if (m->dead)
                return -ENOTCONN;
        r = sd_bus_message_new_method_call(m->bus, &msg, SD_DEST, SD_PATH, SD_MANAGER, "StopUnit");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "ss", unit, "replace");
        if (r < 0)
                return r;
        return job_call(m, msg, unit, true, cb, userdata);
}

/* Listing. */

static int list_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct list_req *l = userdata;
        struct systemd *m = l->m;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0, allocated = 0;
        systemd_list_cb cb = l->cb;
        void *cb_userdata = l->userdata;
        int r;

        for (struct list_req **p = &m->lists; *p; p = &(*p)->next)
                if (*p == l) {
                        *p = l->next;
                        break;
                }
        sd_bus_slot_unref(l->slot);
        free(l);

        if (e) {
                cb(m, reply_errno(m, e), NULL, cb_userdata);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        while (r >= 0) {
                const char *id, *desc, *load, *active, *sub, *following, *path, *job_type,
                    *job_path;
                uint32_t job_id;

                r = sd_bus_message_read(reply, "(ssssssouso)", &id, &desc, &load, &active, &sub,
                                        &following, &path, &job_id, &job_type, &job_path);
                if (r <= 0)
                        break;
                if (n + 2 > allocated) {
                        size_t want = allocated ? allocated * 2 : 16;
                        char **v = reallocarray(names, want, sizeof *v);
                        if (!v) {
                                r = -ENOMEM;
                                break;
                        }
                        names = v;
                        allocated = want;
                }
                names[n++] = xstrdup(id);
                names[n] = NULL;
        }
        if (r < 0) {
                cb(m, r, NULL, cb_userdata);
                return 0;
        }
        if (!names) {
                names = xcalloc(1, sizeof *names);
        }
        cb(m, 0, names, cb_userdata);
        return 0;
}

/* Escapes the glob characters fnmatch() would interpret, so that the
 * prefix matches literally. */
static char *pattern_from_prefix(const char *prefix)
{
        size_t n = strlen(prefix);
        char *p = xcalloc(2 * n + 2, 1), *q = p;

        for (const char *s = prefix; *s; s++) {
                if (strchr("\\*?[", *s))
                        *q++ = '\\';
                *q++ = *s;
        }
        *q = '*';
        return p;
}

int systemd_list_units(struct systemd *m, const char *prefix, systemd_list_cb cb, void *userdata)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        _cleanup_free_ char *pattern = NULL;
        struct list_req *l;
        int r;

        if (!prefix || !cb || strlen(prefix) > UNIT_NAME_MAX)
                return -EINVAL;
        if (m->dead)
                return -ENOTCONN;
        pattern = pattern_from_prefix(prefix);
        r = sd_bus_message_new_method_call(m->bus, &msg, SD_DEST, SD_PATH, SD_MANAGER,
                                           "ListUnitsByPatterns");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "as", 0);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "as", 1, pattern);
        if (r < 0)
                return r;

        l = xcalloc(1, sizeof *l);
        l->m = m;
        l->cb = cb;
        l->userdata = userdata;
        r = sd_bus_call_async(m->bus, &l->slot, msg, list_reply, l, 0);
        if (r < 0) {
                free(l);
                return r;
        }
        l->next = m->lists;
        m->lists = l;
        bus_update(m);
        return 0;
}

/* Watching. */

int systemd_watch_unit(struct systemd *m, const char *unit)
{
        _cleanup_free_ char *path = NULL;
        struct watch *w;
        int r;

        if (!unit_name_is_plausible(unit))
                return -EINVAL;
        if (m->dead)
                return -ENOTCONN;

        /* Watching twice reports the current state again, as promised for
         * the start of a watch. */
        bool found;
        size_t i = watch_search(m, unit, &found);
        if (found) {
                w = m->watches[i];
                w->force_report = true;
                return watch_refresh(w);
        }

        r = sd_bus_path_encode(SD_UNIT_PATH_PREFIX, unit, &path);
        if (r < 0)
                return r;
        w = xcalloc(1, sizeof *w);
        w->m = m;
        w->unit = xstrdup(unit);
        w->path = TAKE_PTR(path);
        state_set_gone(&w->state);

        /* The match goes first: the state read afterwards is at least as new
         * as the first change signal the match can deliver. */
        r = sd_bus_match_signal_async(m->bus, &w->match, signal_sender(m), w->path, DBUS_PROPERTIES,
                                      "PropertiesChanged", on_properties_changed, NULL, w);
        if (r >= 0)
                r = watch_refresh(w);
        if (r < 0) {
                watch_free(w);
                return r;
        }
        struct watch **v = realloc(m->watches, (m->n_watches + 1) * sizeof *v);
        if (!v)
                abort();
        m->watches = v;
        memmove(&v[i + 1], &v[i], (m->n_watches - i) * sizeof *v);
        v[i] = w;
        m->n_watches++;
        bus_update(m);
        return 0;
}

void systemd_unwatch_unit(struct systemd *m, const char *unit)
{
        bool found;
        size_t i = watch_search(m, unit, &found);
        if (!found)
                return;
        struct watch *w = m->watches[i];
        memmove(&m->watches[i], &m->watches[i + 1], (m->n_watches - i - 1) * sizeof *m->watches);
        m->n_watches--;
        watch_free(w);
}
