/* The engine: start-up adoption of what systemd already runs, acceptance of
 * desired-state documents (signature, serial, expiry), reconciling, and the
 * status the API serves. What a rollout's outcome means lives in
 * engine-rollout.c, its steps in rollout.c. */
#include "engine-internal.h"

#include <grp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "accept.h"
#include "api.h"
#include "decide.h"
#include "exit-status.h"
#include "lii-version.h"
#include "log.h"
#include "sha256.h"
#include "unit-name.h"
#include "source.h"

/* ---- the state on disk ---- */

/* While the state folder takes no writes, attempts to write it again come
 * after 1 s, then twice as long each time up to 1 min: each costs one small
 * file. */
#define STORAGE_RETRY_FIRST_USEC USEC_PER_SEC
#define STORAGE_RETRY_MAX_USEC   (60 * USEC_PER_SEC)

static int saved(struct engine *e, int r, bool *unsaved, const char *what)
{
        *unsaved = r < 0;
        if (r >= 0)
                return 0;
        log_error_errno(r, "Failed to write the state of %s in %s: %m", what, e->cfg->state_dir);
        e->metrics.storage_failures++;
        _cleanup_free_ char *error = xasprintf("cannot write the state of %s in %s: %s", what,
                                               e->cfg->state_dir, strerror(-r));
        storage_failed(e->storage, error);
        return r;
}

/* Until the state.json of format 1 is rewritten, it is what a restart
 * reads, services and all: each save writes everything. */
static int save_legacy(struct engine *e)
{
        return saved(e, state_save_all(e->state, e->cfg->state_dir), &e->state->unsaved,
                     "every service");
}

int engine_save_node(struct engine *e)
{
        if (e->state->legacy)
                return save_legacy(e);
        return saved(e, state_save_node(e->state, e->cfg->state_dir), &e->state->unsaved,
                     "the node");
}

int engine_save_service(struct engine *e, struct service_state *ss)
{
        if (e->state->legacy)
                return save_legacy(e);
        return saved(e, state_save_service(ss, e->cfg->state_dir), &ss->unsaved, ss->name);
}

void engine_storage_short(struct engine *e, const char *error, uint64_t need_bytes)
{
        log_error("%s", error);
        e->metrics.storage_failures++;
        if (need_bytes > e->storage_need_bytes)
                e->storage_need_bytes = need_bytes;
        storage_failed(e->storage, error);
}

void engine_fail(struct engine *e)
{
        e->failed = true;
        uv_stop(e->loop);
}

bool engine_failed(const struct engine *e)
{
        return e && e->failed;
}

/* e->services is kept sorted by name: a lookup is a binary search. */
static size_t search_service(const struct engine *e, const char *name, bool *ret_found)
{
        return sorted_by_name_search((void *const *)e->services, e->n_services,
                                     offsetof(struct service, name), name, ret_found);
}

struct service *engine_service(struct engine *e, const char *name)
{
        bool found;
        size_t i = search_service(e, name, &found);
        if (found)
                return e->services[i];
        struct service **v = realloc(e->services, (e->n_services + 1) * sizeof *v);
        if (!v)
                abort();
        e->services = v;
        struct service *svc = xcalloc(1, sizeof *svc);
        svc->engine = e;
        svc->name = xstrdup(name);
        svc->state = LII_STATE_PENDING;
        uv_timer_init(e->loop, &svc->backoff_timer);
        svc->backoff_timer.data = svc;
        memmove(&v[i + 1], &v[i], (e->n_services - i) * sizeof *v);
        v[i] = svc;
        e->n_services++;
        return svc;
}

struct service *engine_find_service(struct engine *e, const char *name)
{
        bool found;
        size_t i = search_service(e, name, &found);
        return found ? e->services[i] : NULL;
}

static void on_service_closed(uv_handle_t *h)
{
        struct service *svc = h->data;
        free(svc->revert_later);
        free(svc->name);
        free(svc);
}

/* The memory goes once libuv has closed the service's timer. */
static void service_free(struct service *svc)
{
        uv_close((uv_handle_t *)&svc->backoff_timer, on_service_closed);
}

static void service_forget(struct engine *e, struct service *svc)
{
        engine_slot_release(svc);
        bool found;
        size_t i = search_service(e, svc->name, &found);
        if (found) {
                memmove(&e->services[i], &e->services[i + 1],
                        (e->n_services - i - 1) * sizeof *e->services);
                e->n_services--;
        }
        svc->forgotten = true;
        service_free(svc);
}

/* ---- restarts ---- */

static void on_backoff(uv_timer_t *t)
{
        struct service *svc = t->data;
        svc->backoff_pending = false;
        engine_reconcile_soon(svc->engine);
}

bool engine_schedule_restart(struct service *svc)
{
        if (svc->restarts >= RESTART_LIMIT)
                return false;
        uint64_t delay = RESTART_DELAY_FIRST_USEC;
        for (unsigned i = 0; i < svc->restarts && delay < RESTART_DELAY_MAX_USEC; i++)
                delay *= 2;
        if (delay > RESTART_DELAY_MAX_USEC)
                delay = RESTART_DELAY_MAX_USEC;
        svc->restarts++;
        svc->backoff_pending = true;
        uv_timer_start(&svc->backoff_timer, on_backoff, delay / USEC_PER_MSEC, 0);
        log_svc(LOG_NOTICE, svc->name, 0,
                "Replacing the dead instance in %llu ms (attempt %u of %u)",
                (unsigned long long)(delay / USEC_PER_MSEC), svc->restarts, RESTART_LIMIT);
        return true;
}

/* A removal or an operator's action replaces whatever restart was waiting. */
void engine_cancel_backoff(struct service *svc)
{
        uv_timer_stop(&svc->backoff_timer);
        svc->backoff_pending = false;
}

/* ---- stopping units ---- */

struct stop {
        struct engine *engine;
        char service[LII_SERVICE_NAME_MAX + 1];
        uint64_t generation;
        char *unit;
        char *socket; /* stopped first, when the instance has one */
        enum stop_kind kind;
        struct stop *prev, *next;
};

static void stop_free(struct engine *e, struct stop *st)
{
        if (st->prev)
                st->prev->next = st->next;
        else
                e->stops = st->next;
        if (st->next)
                st->next->prev = st->prev;
        free(st->unit);
        free(st->socket);
        free(st);
}

static void removal_done(struct engine *e, const char *name, int r, const char *result);

static void on_stopped(struct systemd *m, int r, const char *result, void *userdata)
{
        struct stop *st = userdata;
        struct engine *e = st->engine;
        if (e->systemd)
                systemd_unwatch_unit(e->systemd, st->unit);
        if (r < 0)
                log_svc(LOG_WARNING, st->service, st->generation, "Failed to stop %s: %s", st->unit,
                        result ? result : strerror(-r));
        struct service *svc = engine_find_service(e, st->service);
        if (svc && svc->slot_rollout &&
            ((st->kind == STOP_RETIRED && st->generation == svc->slot_retiring) ||
             (st->kind == STOP_REFUSED && st->generation == svc->slot_generation)))
                engine_slot_release(svc);
        switch (st->kind) {
        case STOP_RETIRED:
                if (r >= 0)
                        events_emit(e->events, EVENT_INSTANCE_STOPPED, st->service, st->generation,
                                    "retired %s", st->unit);
                /* A next generation may have waited for this one to go. */
                if (svc && svc->retiring > 0 && --svc->retiring == 0)
                        engine_reconcile_soon(e);
                break;
        case STOP_REFUSED: {
                /* The refused instance is gone: its pending record can go. */
                struct service_state *ss = state_find(e->state, st->service);
                if (ss && ss->pending && ss->pending->generation == st->generation) {
                        ss->pending = instance_free(ss->pending);
                        engine_save_service(e, ss);
                }
                break;
        }
        case STOP_REMOVED:
                removal_done(e, st->service, r, result);
                break;
        case STOP_LEFTOVER:
                break;
        }
        stop_free(e, st);
}

static void stop_service_unit(struct engine *e, struct stop *st)
{
        int r = e->systemd ? systemd_stop_unit(e->systemd, st->unit, on_stopped, st) : -ENOTCONN;
        if (r < 0)
                on_stopped(e->systemd, r, strerror(-r), st);
}

/* The sockets go first: connections still queued on them move to the
 * other generation's sockets (net.ipv4.tcp_migrate_req), and no new one
 * reaches an instance that is about to stop. Then the instance, with its
 * stop timeout, so that the requests it accepted finish. */
static void on_socket_stopped(struct systemd *m, int r, const char *result, void *userdata)
{
        struct stop *st = userdata;
        if (r == -ENOTCONN)
                return;
        if (r < 0)
                log_svc(LOG_WARNING, st->service, st->generation, "Failed to stop %s: %s",
                        st->socket, result ? result : strerror(-r));
        stop_service_unit(st->engine, st);
}

void engine_stop_unit(struct engine *e, const char *service, uint64_t generation, const char *unit,
                      bool sockets, enum stop_kind kind)
{
        struct stop *st = xcalloc(1, sizeof *st);
        st->engine = e;
        snprintf(st->service, sizeof st->service, "%s", service);
        st->generation = generation;
        st->unit = xstrdup(unit);
        st->kind = kind;
        struct service *svc = kind == STOP_RETIRED ? engine_find_service(e, service) : NULL;
        if (svc)
                svc->retiring++;
        st->next = e->stops;
        if (st->next)
                st->next->prev = st;
        e->stops = st;
        if (!sockets) {
                stop_service_unit(e, st);
                return;
        }
        char name[UNIT_NAME_SIZE];
        st->socket = xstrdup(unit_name_socket(name, service, generation));
        int r = e->systemd ? systemd_stop_unit(e->systemd, st->socket, on_socket_stopped, st)
                           : -ENOTCONN;
        if (r < 0)
                on_stopped(e->systemd, r, strerror(-r), st);
}

bool engine_instance_listens(const struct instance *i)
{
        _cleanup_(service_spec_freep) struct service_spec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        if (!i || !i->spec_json)
                return false;
        /* A record that does not parse cannot have started a socket
         * either: it would not have parsed then. */
        return service_spec_parse("x", i->spec_json, &spec, &error) == 0 && spec->listen;
}

/* ---- services that left the desired state ---- */

static void removal_done(struct engine *e, const char *name, int r, const char *result)
{
        struct service *svc = engine_find_service(e, name);
        struct service_state *ss = state_find(e->state, name);
        if (!svc || !ss)
                return;
        svc->removing = false;
        if (r < 0) {
                /* The next reconcile tries again. */
                svc->state = LII_STATE_FAILED;
                return;
        }
        /* What was current is kept as previous, for the record and for a
         * rollback should the service come back. The unit is gone already,
         * so this is only a record of it: a record that does not reach the
         * disk stays unsaved, and a restart in the meantime finds the
         * service removed with a current instance, which it sorts out the
         * same way. */
        instance_free(ss->previous);
        ss->previous = TAKE_PTR(ss->current);
        engine_save_service(e, ss);
        if (e->desired && desired_find(e->desired, name)) {
                engine_reconcile_soon(e);
                return;
        }
        events_emit(e->events, EVENT_SERVICE_REMOVED, name, 0,
                    "stopped: no longer in the desired state");
        service_forget(e, svc);
        engine_collect(e);
}

/* The removal is on disk before the stop, so that a restart with no
 * document at hand does not bring the service back from its record. */
static void service_remove(struct engine *e, struct service *svc)
{
        struct service_state *ss = state_find(e->state, svc->name);
        if (ss && !ss->removed) {
                ss->removed = true;
                if (engine_save_service(e, ss) < 0) {
                        /* Not recorded, so not stopped. */
                        ss->removed = false;
                        return;
                }
        }
        engine_cancel_backoff(svc);
        engine_rollout_unwatch(svc);
        if (!ss || !ss->current) {
                service_forget(e, svc);
                return;
        }
        svc->removing = true;
        svc->state = LII_STATE_STOPPING;
        svc->current_alive = svc->healthy = false;
        svc->main_pid = 0;
        engine_stop_unit(e, svc->name, ss->current->generation, ss->current->unit,
                         engine_instance_listens(ss->current), STOP_REMOVED);
}

/* ---- the store ---- */

static void keep_add(char **keep, size_t *n, const char *sha)
{
        if (sha && *sha)
                keep[(*n)++] = (char *)sha;
}

/* The artifacts that some revision or the document still needs, sorted and
 * without repeats, go to the store, which removes the rest. */
void engine_collect(struct engine *e)
{
        size_t max = e->desired ? e->desired->n_services : 0;
        for (size_t i = 0; i < e->state->n_services; i++)
                max += 3 + strv_length(e->state->services[i]->artifacts);
        _cleanup_free_ char **keep = xcalloc(max + 1, sizeof *keep);
        size_t n = 0;
        for (size_t i = 0; i < e->state->n_services; i++) {
                const struct service_state *ss = e->state->services[i];
                const struct instance *insts[] = {ss->current, ss->previous, ss->pending};
                for (size_t j = 0; j < ELEMENTSOF(insts); j++)
                        if (insts[j])
                                keep_add(keep, &n, insts[j]->artifact_sha256);
                for (char **a = ss->artifacts; a && *a; a++)
                        keep_add(keep, &n, *a);
        }
        for (size_t i = 0; e->desired && i < e->desired->n_services; i++)
                keep_add(keep, &n, e->desired->services[i].artifact_sha256);
        qsort(keep, n, sizeof *keep, strptr_compare);
        size_t unique = 0;
        for (size_t i = 0; i < n; i++)
                if (unique == 0 || strcmp(keep[unique - 1], keep[i]) != 0)
                        keep[unique++] = keep[i];
        keep[unique] = NULL;
        int r = store_collect(e->store, keep);
        if (r < 0)
                log_warning_errno(r, "Failed to collect old artifacts: %m");
        else if (r > 0)
                log_info("Collected %d artifact%s no revision needs any more", r,
                         r == 1 ? "" : "s");
}

/* ---- reconciling ---- */

void engine_slot_release(struct service *svc)
{
        struct engine *e = svc->engine;
        if (svc->slot_wanted && e->fleet)
                fleet_slot_release(e->fleet, svc->name);
        svc->slot_wanted = svc->slot_rollout = false;
        svc->slot_generation = svc->slot_retiring = 0;
}

void engine_fleet_failed(struct service *svc, const char *spec_sha256, const char *reason)
{
        struct engine *e = svc->engine;
        const struct service_spec *want = e->desired ? desired_find(e->desired, svc->name) : NULL;
        if (!e->fleet || !want || !want->rollout.set || !spec_sha256 ||
            strcmp(want->spec_sha256, spec_sha256) != 0)
                return;
        fleet_record_failure(e->fleet, svc->name, want->rollout.id, reason);
}

/* Remembers the fleet rollout's verdict on the service for its status, and
 * says each change of it (another rollout, percentage or state) as a
 * rollout.held event. */
static void canary_record(struct engine *e, struct service *svc, const struct rollout_policy *p,
                          unsigned bucket, const struct canary_verdict *v)
{
        bool changed = !svc->canary.set || strcmp(svc->canary.id, p->id) != 0 ||
                       svc->canary.percent_hundredths != p->percent_hundredths ||
                       svc->canary.verdict.state != v->state;
        svc->canary.set = true;
        memcpy(svc->canary.id, p->id, sizeof svc->canary.id);
        svc->canary.percent_hundredths = p->percent_hundredths;
        svc->canary.bucket = bucket;
        svc->canary.verdict = *v;
        if (!changed)
                return;
        log_svc(LOG_INFO, svc->name, 0, "Rollout %s: %s: %s", p->id,
                canary_state_to_string(v->state), v->reason);
        events_emit(e->events, EVENT_ROLLOUT_HELD, svc->name, 0, "%s %s: %s", p->id,
                    canary_state_to_string(v->state), v->reason);
}

/* The spec the service is to run now: the desired one, or, while the
 * fleet rollout holds this node back (outside the canary, waiting for a
 * slot, halted), the one it runs. kept holds a parsed copy of the latter. */
static const struct service_spec *canary_gate(struct engine *e, struct service *svc,
                                              const struct service_state *ss,
                                              const struct service_spec *want,
                                              struct service_spec **kept)
{
        if (!want || !want->rollout.set) {
                svc->canary.set = svc->canary.slot = false;
                if (!svc->slot_rollout)
                        engine_slot_release(svc);
                return want;
        }
        const struct rollout_policy *p = &want->rollout;
        const struct instance *cur = ss ? ss->current : NULL;
        struct canary_input in = {
            .bucket = canary_bucket(e->node_name, svc->name, p->id),
            .percent_hundredths = p->percent_hundredths,
            .max_parallel = p->max_parallel,
            .max_failures = p->max_failures,
            .runs_spec = cur != NULL,
            .new_spec = cur && strcmp(cur->spec_sha256, want->spec_sha256) != 0,
            .failed_here = ss && strcmp(ss->refused_spec_sha256, want->spec_sha256) == 0,
        };
        if (e->fleet) {
                in.fleet = true;
                in.lease_fresh = fleet_lease_fresh(e->fleet);
                in.failures = fleet_failures(e->fleet, svc->name, p->id);
        }
        struct canary_verdict v = canary_decide(&in);
        /* A slot is asked for only by a node that nothing else holds back. */
        if (v.state == CANARY_WAITING_FOR_SLOT && in.lease_fresh && p->max_parallel) {
                svc->slot_wanted = true;
                in.slot_held =
                    fleet_slot_want(e->fleet, svc->name, p->max_parallel) == FLEET_SLOT_HELD;
                v = canary_decide(&in);
        }
        canary_record(e, svc, p, in.bucket, &v);
        svc->canary.slot = v.state == CANARY_APPLIED && in.slot_held;
        /* A slot asked for and no longer needed goes back at once, so that
         * it holds back no other node. */
        if (!svc->canary.slot && v.state != CANARY_WAITING_FOR_SLOT && !svc->slot_rollout)
                engine_slot_release(svc);
        if (v.state == CANARY_APPLIED)
                return want;
        _cleanup_free_ char *error = NULL;
        if (service_spec_parse(svc->name, cur->spec_json, kept, &error) < 0) {
                log_svc(LOG_ERR, svc->name, 0, "Recorded spec unusable: %s", error);
                return want;
        }
        return *kept;
}

static void reconcile_service(struct engine *e, struct service *svc)
{
        struct service_state *ss = state_find(e->state, svc->name);
        const struct service_spec *want = e->desired ? desired_find(e->desired, svc->name) : NULL;
        if (want && ss && ss->removed) {
                /* Back in the desired state after a removal. */
                ss->removed = false;
                if (engine_save_service(e, ss) < 0) {
                        ss->removed = true;
                        return;
                }
        }
        /* After an operator rollback the service stays where it was rolled
         * back to, for as long as the document still asks for the spec it
         * left; a new desired spec ends the hold. */
        _cleanup_(service_spec_freep) struct service_spec *held = NULL;
        if (want && ss && ss->held) {
                _cleanup_free_ char *error = NULL;
                if (strcmp(want->spec_sha256, ss->refused_spec_sha256) == 0 && ss->current &&
                    service_spec_parse(svc->name, ss->current->spec_json, &held, &error) == 0) {
                        want = held;
                } else {
                        ss->held = false;
                        if (engine_save_service(e, ss) < 0) {
                                ss->held = true;
                                return;
                        }
                }
        }
        _cleanup_(service_spec_freep) struct service_spec *held_back = NULL;
        if (!held)
                want = canary_gate(e, svc, ss, want, &held_back);
        else
                svc->canary.set = false;
        struct decide_input in = {
            .have_document = e->desired != NULL,
            .want_spec = want ? want->spec_sha256 : NULL,
            .current_spec = ss && ss->current ? ss->current->spec_sha256 : NULL,
            .previous_spec = ss && ss->previous ? ss->previous->spec_sha256 : NULL,
            .current_alive = svc->current_alive,
            .refused_spec = ss ? ss->refused_spec_sha256 : NULL,
            .rollout_in_flight = svc->rollout != NULL,
            .removing = svc->removing,
            .retiring = svc->retiring > 0,
            .backoff_pending = svc->backoff_pending,
            .paused = e->state->paused,
            .storage_failing = storage_failing(e->storage),
            .force = svc->force,
            .running_rollouts = e->running_rollouts,
            .max_parallel = e->cfg->max_parallel,
        };
        enum decision d = decide(&in);
        log_svc(LOG_DEBUG, svc->name, 0, "Reconcile: %s", decision_to_string(d));

        switch (d) {
        case DECIDE_WAIT:
        case DECIDE_NOTHING:
                return;
        case DECIDE_RUNNING:
                svc->state = LII_STATE_RUNNING;
                return;
        case DECIDE_REFUSED:
                svc->state = LII_STATE_FAILED;
                return;
        case DECIDE_QUEUE:
        case DECIDE_PAUSED:
                svc->state = LII_STATE_PENDING;
                return;
        case DECIDE_STORAGE:
                svc->state =
                    ss && ss->current && !svc->current_alive ? LII_STATE_FAILED : LII_STATE_PENDING;
                return;
        case DECIDE_REMOVE:
                service_remove(e, svc);
                return;
        case DECIDE_ROLLOUT: {
                /* An operator's replace that could not start (its state not
                 * written) stands, and starts once it can. */
                bool force = svc->force;
                svc->force = false;
                if (engine_rollout_start(svc, want, ROLLOUT_DESIRED) < 0) {
                        svc->force = force;
                        return;
                }
                /* The slot stays held until the rollout's outcome is done
                 * with: the old generation stopped, or the new one. */
                if (svc->canary.slot && svc->rollout && ss && ss->pending) {
                        svc->slot_rollout = true;
                        svc->slot_generation = ss->pending->generation;
                }
                return;
        }
        case DECIDE_REVERT:
                engine_rollout_revert(svc, "cannot be kept running and its spec is refused");
                return;
        case DECIDE_RESTORE: {
                _cleanup_(service_spec_freep) struct service_spec *kept = NULL;
                _cleanup_free_ char *error = NULL;
                if (service_spec_parse(svc->name, ss->current->spec_json, &kept, &error) < 0) {
                        log_svc(LOG_ERR, svc->name, 0, "Recorded spec unusable: %s", error);
                        return;
                }
                engine_rollout_start(svc, kept, ROLLOUT_DESIRED);
                return;
        }
        }
}

/* STATUS= for `systemctl status liid`: the gist of liictl status. */
static void notify_status(struct engine *e)
{
        unsigned running = 0;
        for (size_t i = 0; i < e->n_services; i++)
                running += e->services[i]->state == LII_STATE_RUNNING;
        bool storage = storage_failing(e->storage);
        sd_notifyf(0, "STATUS=%s%s%u of %zu services running, desired serial %llu%s%s",
                   e->state->paused ? "paused; " : "",
                   storage ? "state folder not writable, changes held; " : "", running,
                   e->n_services, (unsigned long long)e->state->serial,
                   e->source_error ? "; source: " : "", e->source_error ? e->source_error : "");
}

/* Calls fn for every service. fn may forget services, so a copy of the
 * list is walked, past those forgotten meanwhile: a forgotten service's
 * memory goes only in its timer's close callback, which libuv never runs
 * before this callback of the loop has returned. The walk is run for every
 * rollout that ends, so it looks nothing up. */
static void for_each_service(struct engine *e, void (*fn)(struct engine *e, struct service *svc))
{
        size_t n = e->n_services;
        if (n == 0)
                return; /* and e->services may be NULL, which memcpy() must not get */
        _cleanup_free_ struct service **list = xcalloc(n, sizeof *list);
        memcpy(list, e->services, n * sizeof *list);
        for (size_t i = 0; i < n; i++)
                if (!list[i]->forgotten)
                        fn(e, list[i]);
}

/* Gives every service of the document a struct service. Both lists are
 * sorted by name, so that one walk along both finds the missing ones. */
static void add_desired_services(struct engine *e)
{
        size_t j = 0;
        for (size_t i = 0; i < e->desired->n_services; i++) {
                const char *name = e->desired->services[i].name;
                while (j < e->n_services && strcmp(e->services[j]->name, name) < 0)
                        j++;
                /* A new one goes in at j. */
                if (j == e->n_services || strcmp(e->services[j]->name, name) != 0)
                        engine_service(e, name);
                j++;
        }
}

static void reconcile(struct engine *e)
{
        if (!e->adopted || e->stopping || e->failed)
                return;
        if (e->desired)
                add_desired_services(e);
        for_each_service(e, reconcile_service);
        notify_status(e);
}

static void on_reconcile_timer(uv_timer_t *t)
{
        struct engine *e = t->data;
        e->reconcile_due = false;
        reconcile(e);
}

/* Whatever asks for a reconcile (a rollout that ended, an API action, a
 * new document, a timer) is never re-entered by it: the flag coalesces the
 * requests of one turn of the loop, and the zero timer runs one reconcile
 * on the next turn, from the loop alone. */
void engine_reconcile_soon(struct engine *e)
{
        if (e->reconcile_due || e->stopping || !e->has_timers)
                return;
        e->reconcile_due = true;
        uv_timer_start(&e->reconcile_timer, on_reconcile_timer, 0, 0);
}

/* ---- systemd events ---- */

static void finish_adoption(struct engine *e);

static void on_unit(struct systemd *m, const char *unit, const struct unit_status *st,
                    void *userdata)
{
        struct engine *e = userdata;
        char name[LII_SERVICE_NAME_MAX + 1];
        uint64_t gen;
        if (!unit_name_parse(unit, name, &gen))
                return;
        struct service *svc = engine_find_service(e, name);
        struct service_state *ss = state_find(e->state, name);
        if (!svc || !ss)
                return;
        if (svc->rollout && rollout_generation(svc->rollout) == gen) {
                svc->next_main_pid = st->main_pid;
                svc->next_active_since_usec = st->active_enter_usec;
                rollout_on_unit(svc->rollout, st);
                return;
        }
        if (!ss->current || ss->current->generation != gen)
                return;
        bool alive = st->loaded && (strcmp(st->active_state, "active") == 0 ||
                                    strcmp(st->active_state, "reloading") == 0);
        svc->main_pid = alive ? st->main_pid : 0;
        svc->active_since_usec = st->active_enter_usec;
        if (svc->adopting) {
                /* The first word on a unit found at start-up: only now is it
                 * known whether the current instance still runs. */
                svc->adopting = false;
                svc->current_alive = svc->healthy = alive;
                if (!alive)
                        log_svc(LOG_WARNING, name, gen, "Current instance %s is not running (%s)",
                                unit, st->active_state);
                if (--e->n_adopting == 0)
                        finish_adoption(e);
                return;
        }
        if (alive) {
                svc->current_alive = true;
                return;
        }
        /* See rollout_on_unit(): a unit announced removed is not a dead one. */
        if (!svc->current_alive || !st->loaded)
                return;
        svc->current_alive = false;
        svc->healthy = false;
        _cleanup_free_ char *how = exit_status_describe(st);
        events_emit(e->events, EVENT_INSTANCE_EXITED, name, gen, "%s is no longer running: %s",
                    unit, how);
        /* An instance that had run longer than the longest delay died of
         * something new: its replacements count from the start. */
        if (svc->active_since_usec &&
            now_realtime_usec() - svc->active_since_usec > RESTART_DELAY_MAX_USEC)
                svc->restarts = 0;
        if (svc->watch) {
                _cleanup_free_ char *why = xasprintf("ended during its watch window: %s", how);
                engine_rollout_revert(svc, why);
                return;
        }
        if (!svc->rollout) {
                svc->state = LII_STATE_FAILED;
                if (!engine_schedule_restart(svc)) {
                        /* Out of restarts: the spec is refused like a failed
                         * rollout (which brings back the previous revision,
                         * if there is one). A hold keeps its own refusal. */
                        _cleanup_free_ char *why =
                            xasprintf("gave up after %u replacements of dead instances in a row",
                                      RESTART_LIMIT);
                        events_emit(e->events, EVENT_ROLLOUT_FAILED, name, gen, "%s", why);
                        if (!ss->held)
                                snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256,
                                         "%s", ss->current->spec_sha256);
                        uint64_t now = now_realtime_usec();
                        rollout_record_set(&ss->last_rollout, gen, LII_RESULT_FAILED, why, now,
                                           now);
                        if (engine_save_service(e, ss) < 0)
                                return;
                        engine_reconcile_soon(e);
                }
        }
}

static void on_units_listed(struct systemd *m, int r, char *const *names, void *userdata);
static void on_systemd_lost(struct systemd *m, int r, const char *reason, void *userdata);

#define RECONNECT_DELAY_FIRST_USEC (100 * USEC_PER_MSEC)
#define RECONNECT_DELAY_MAX_USEC   (5 * USEC_PER_SEC)

/* Connects to systemd and sorts out what it runs, as at start-up. */
static int connect_systemd(struct engine *e)
{
        int r = systemd_new(e->loop, e->cfg->bus, on_unit, e, &e->systemd);
        if (r < 0)
                return r;
        systemd_set_disconnect_cb(e->systemd, on_systemd_lost, e);
        r = systemd_list_units(e->systemd, UNIT_NAME_PREFIX, on_units_listed, e);
        if (r < 0)
                e->systemd = systemd_free(e->systemd);
        e->host.systemd = e->systemd;
        return r;
}

static void on_reconnect(uv_timer_t *t)
{
        struct engine *e = t->data;
        int r = connect_systemd(e);
        if (r >= 0) {
                events_emit(e->events, EVENT_DAEMON, NULL, 0,
                            "connected to systemd again; adopting what it runs");
                return;
        }
        e->reconnect_delay_usec = e->reconnect_delay_usec * 2 > RECONNECT_DELAY_MAX_USEC
                                      ? RECONNECT_DELAY_MAX_USEC
                                      : e->reconnect_delay_usec * 2;
        log_debug_errno(r, "Cannot reach systemd yet (%m); trying again in %llu ms",
                        (unsigned long long)(e->reconnect_delay_usec / USEC_PER_MSEC));
        uv_timer_start(&e->reconnect_timer, on_reconnect, e->reconnect_delay_usec / USEC_PER_MSEC,
                       0);
}

/* systemd went away (daemon-reexec, a restart of the manager). Instances
 * belong to systemd and keep running; what liid was doing is abandoned as
 * if liid had been restarted, and the reconnection adopts and reconciles,
 * which stops what rollouts left half-way and starts them again. */
static void on_systemd_lost(struct systemd *m, int r, const char *reason, void *userdata)
{
        struct engine *e = userdata;
        events_emit(e->events, EVENT_DAEMON, NULL, 0,
                    "lost the connection to systemd: %s; reconnecting",
                    reason ? reason : strerror(-r));
        e->adopted = false;
        e->n_adopting = 0;
        for (size_t i = 0; i < e->n_services; i++) {
                struct service *svc = e->services[i];
                engine_rollout_abandon(svc);
                engine_rollout_unwatch(svc);
                svc->adopting = false;
                svc->removing = false;
                /* Nothing is known of the instances until adoption asks
                 * again: one may die while liid is not listening. */
                svc->current_alive = svc->healthy = false;
                svc->main_pid = 0;
        }
        e->systemd = e->host.systemd = systemd_free(e->systemd);
        while (e->stops)
                stop_free(e, e->stops);
        instance_probes_free(&e->host);
        e->reconnect_delay_usec = RECONNECT_DELAY_FIRST_USEC;
        uv_timer_start(&e->reconnect_timer, on_reconnect,
                       RECONNECT_DELAY_FIRST_USEC / USEC_PER_MSEC, 0);
}

/* A socket unit found at start-up: the current instance's stays with it; one
 * whose instance is also left over goes first with it (on_units_listed());
 * one alone (its instance gone, a crash between the two stops) goes now. */
static void leftover_socket(struct engine *e, char *const *names, const char *socket,
                            const char *service, uint64_t gen)
{
        const struct service_state *ss = state_find(e->state, service);
        if (ss && !ss->removed && ss->current && ss->current->generation == gen)
                return;
        char unit[UNIT_NAME_SIZE];
        if (strv_contains((const char *const *)names, unit_name_instance(unit, service, gen)))
                return;
        log_svc(LOG_NOTICE, service, gen, "Stopping %s: left over from before a restart", socket);
        engine_stop_unit(e, service, gen, socket, false, STOP_LEFTOVER);
}

/* Start-up: every lii unit systemd knows is either the current instance of
 * its service (adopted, not restarted) or something a crash left behind (a
 * rollout in flight, a retired instance not yet stopped), which is stopped,
 * its socket unit first. */
static void on_units_listed(struct systemd *m, int r, char *const *names, void *userdata)
{
        struct engine *e = userdata;
        if (r < 0) {
                log_error_errno(r, "Failed to list lii units: %m");
                engine_fail(e);
                return;
        }
        for (char *const *u = names; u && *u; u++) {
                char name[LII_SERVICE_NAME_MAX + 1];
                uint64_t gen;
                if (unit_name_parse_socket(*u, name, &gen)) {
                        leftover_socket(e, names, *u, name, gen);
                        continue;
                }
                if (!unit_name_parse(*u, name, &gen))
                        continue;
                struct service_state *ss = state_find(e->state, name);
                if (ss && !ss->removed && ss->current && ss->current->generation == gen) {
                        struct service *svc = engine_service(e, name);
                        if (systemd_watch_unit(e->systemd, *u) < 0) {
                                log_svc(LOG_ERR, name, gen, "Cannot watch %s", *u);
                                continue;
                        }
                        svc->adopting = true;
                        e->n_adopting++;
                        log_svc(LOG_INFO, name, gen, "Adopting %s", *u);
                        continue;
                }
                char socket[UNIT_NAME_SIZE];
                bool sockets =
                    strv_contains((const char *const *)names, unit_name_socket(socket, name, gen));
                log_svc(LOG_NOTICE, name, gen, "Stopping %s%s%s: left over from before a restart",
                        sockets ? socket : "", sockets ? " and " : "", *u);
                engine_stop_unit(e, name, gen, *u, sockets, STOP_LEFTOVER);
        }
        for (size_t i = 0; i < e->state->n_services; i++) {
                struct service_state *ss = e->state->services[i];
                bool dirty = false;
                if (ss->pending) {
                        ss->pending = instance_free(ss->pending);
                        dirty = true;
                }
                /* A removal that a crash interrupted: its unit was stopped
                 * above as a leftover. */
                if (ss->removed && ss->current) {
                        instance_free(ss->previous);
                        ss->previous = TAKE_PTR(ss->current);
                        dirty = true;
                }
                /* Only a record of the stops above: liid goes on even when
                 * it cannot be written (the next start-up would find and
                 * stop the same leftovers). */
                if (dirty)
                        engine_save_service(e, ss);
                if (ss->removed)
                        continue;
                struct service *svc = engine_service(e, ss->name);
                if (ss->current && !svc->adopting)
                        svc->state = LII_STATE_FAILED;
        }
        if (e->n_adopting == 0)
                finish_adoption(e);
}

/* Nothing is decided before every adopted unit's state is known, so that a
 * running instance is never mistaken for a dead one and started twice. */
static void finish_adoption(struct engine *e)
{
        for (size_t i = 0; i < e->n_services; i++) {
                struct service *svc = e->services[i];
                struct service_state *ss = state_find(e->state, svc->name);
                if (ss && ss->current)
                        svc->state = svc->current_alive ? LII_STATE_RUNNING : LII_STATE_FAILED;
                engine_rollout_rewatch(svc);
                engine_rollout_finish_cut_short(svc);
        }
        e->adopted = true;
        events_emit(e->events, EVENT_DAEMON, NULL, 0, "adopted what systemd runs (%zu services)",
                    e->n_services);
        engine_reconcile_soon(e);
}

/* ---- the source ---- */

/* Records why the source's latest delivery was refused; NULL clears it.
 * refused_id names the refused document (delivery_id()), NULL when there
 * was none, as for a failed fetch. A source.refused event is raised when the
 * reason changes and for every other refused document even with the same
 * reason, so that automation following /v1/events hears of each one; the
 * same refused bytes fetched again raise none, as they are no news. */
static void set_source_error(struct engine *e, const char *error, const char *refused_id)
{
        _cleanup_free_ char *text = error ? utf8_escape_invalid(error) : NULL;
        const char *id = refused_id ? refused_id : "";

        if (text && (!e->source_error || strcmp(text, e->source_error) != 0 ||
                     strcmp(id, e->source_refused_id) != 0))
                events_emit(e->events, EVENT_SOURCE_REFUSED, NULL, 0, "%s", text);
        snprintf(e->source_refused_id, sizeof e->source_refused_id, "%s", text ? id : "");
        free(e->source_error);
        e->source_error = TAKE_PTR(text);
        e->refused_serial = -1;
}

/* serial is -1 when the document's serial is not known or not trusted. */
static void refuse_document(struct engine *e, const char *id, int64_t serial, const char *error)
{
        e->metrics.documents_refused++;
        set_source_error(e, error, id);
        e->refused_serial = serial;
}

/* The lease's freshness, a slot or a failure count may have changed. */
static void on_fleet_changed(void *userdata)
{
        engine_reconcile_soon(userdata);
}

/* The time at which a document was found expired is a time liid has seen:
 * it becomes the high-water mark and is recorded, so that a clock set back
 * afterwards (or a restart with it) does not revive that document. A write
 * that fails leaves the mark raised here, and the node is written again
 * once the state folder takes writes. */
static void clock_seen(struct engine *e, uint64_t now)
{
        if (now <= e->state->clock_high_water_usec)
                return;
        e->state->clock_high_water_usec = now;
        (void)engine_save_node(e);
}

static void on_source(struct source *s, const struct source_result *res, void *userdata)
{
        struct engine *e = userdata;
        if (res->r < 0) {
                e->metrics.fetches_failed++;
                set_source_error(e, res->error, NULL);
                return;
        }
        uint64_t now = now_realtime_usec();
        if (res->unchanged)
                e->metrics.fetches_unchanged++;
        else
                e->metrics.fetches_ok++;
        if (res->unchanged) {
                /* A 304 stands for the bytes delivered last (the source
                 * forgets its ETag after a failed fetch), so their verdict
                 * stands: applied ones count as fetched again, and a refusal
                 * stays on record instead of being cleared by a server that
                 * has nothing new to say. */
                if (!e->source_error)
                        e->fetched_at_usec = now;
                return;
        }
        char sha[SHA256_HEX_LEN + 1];
        sha256_hex_of(res->doc, res->doc_len, sha);
        if (e->desired && strcmp(sha, e->state->doc_sha256) == 0) {
                /* The applied document again. It keeps being enforced, but
                 * once it has expired its publisher must hear about it. */
                uint64_t clock =
                    now > e->state->clock_high_water_usec ? now : e->state->clock_high_water_usec;
                e->fetched_at_usec = now;
                if (e->desired->expires_usec && e->desired->expires_usec <= clock) {
                        clock_seen(e, now);
                        char when[RFC3339_MAX];
                        format_rfc3339(e->desired->expires_usec, when);
                        _cleanup_free_ char *msg =
                            xasprintf("document: expired at %s; still running what it said, "
                                      "waiting for a newer one",
                                      when);
                        set_source_error(e, msg, NULL);
                        return;
                }
                set_source_error(e, NULL, NULL);
                return;
        }

        struct state *st = e->state;
        const struct accept_input in = {
            .doc = res->doc,
            .doc_len = res->doc_len,
            .sig = res->sig,
            .sig_len = res->sig_len,
            .sig_error = res->sig_error,
            .keys = e->cfg->require_signature ? e->desired_keys : NULL,
            .source_url = e->cfg->source_url,
            .applied_serial = st->serial,
            .applied_sha256 = st->doc_sha256,
            .clock_high_water_usec = st->clock_high_water_usec,
            .now_usec = now,
        };
        _cleanup_(accept_result_done) struct accept_result acc;
        int r = accept_document(&in, &acc);
        if (r < 0) {
                if (r == -ETIME)
                        clock_seen(e, now);
                refuse_document(e, acc.delivery_id, acc.refused_serial, acc.error);
                return;
        }
        if (!in.keys)
                log_warning("Accepting an unsigned desired state: require_signature = no");
        uint64_t clock = acc.clock_usec;
        struct desired *d = acc.desired;

        /* Accepting the document is recording its serial: a serial that
         * cannot be written is not accepted, and the document is fetched
         * again once the state folder takes writes. The document applied
         * before a restart needs no new record to be taken again (only the
         * newest time seen moves, and that is written later). */
        bool applied = st->doc_sha256[0] && strcmp(sha, st->doc_sha256) == 0;
        uint64_t old_serial = st->serial, old_clock = st->clock_high_water_usec;
        char old_sha[sizeof st->doc_sha256];
        memcpy(old_sha, st->doc_sha256, sizeof old_sha);
        st->serial = d->serial;
        snprintf(st->doc_sha256, sizeof st->doc_sha256, "%s", sha);
        st->clock_high_water_usec = clock;
        r = engine_save_node(e);
        if (r < 0 && !applied) {
                st->serial = old_serial;
                memcpy(st->doc_sha256, old_sha, sizeof old_sha);
                st->clock_high_water_usec = old_clock;
                e->refetch_document = true;
                _cleanup_free_ char *msg =
                    xasprintf("document: serial %llu not accepted: cannot record it in the state "
                              "folder (%s); it is fetched again once the folder takes writes",
                              (unsigned long long)d->serial, strerror(-r));
                set_source_error(e, msg, NULL);
                return;
        }
        free(e->desired_key_id);
        free(e->desired_comment);
        e->desired_key_id = TAKE_PTR(acc.key_id);
        e->desired_comment = TAKE_PTR(acc.trusted_comment);
        desired_free(e->desired);
        e->desired = TAKE_PTR(acc.desired);
        e->fetched_at_usec = now;
        set_source_error(e, NULL, NULL);
        events_emit(e->events, EVENT_SOURCE_ACCEPTED, NULL, 0,
                    "accepted desired state serial %llu (%zu services)%s%s",
                    (unsigned long long)e->desired->serial, e->desired->n_services,
                    e->desired_key_id ? ", signed by key " : "",
                    e->desired_key_id ? e->desired_key_id : "");
        engine_reconcile_soon(e);
}

/* ---- the state folder's condition ---- */

/* What liid, as the user it runs as, may still write in dir; UINT64_MAX
 * when that cannot be told (then an attempt tells). */
static uint64_t free_bytes(const char *dir)
{
        struct statvfs sv;
        if (statvfs(dir, &sv) < 0)
                return UINT64_MAX;
        /* root may use the blocks a file system keeps in reserve. */
        return (uint64_t)(geteuid() == 0 ? sv.f_bfree : sv.f_bavail) * sv.f_frsize;
}

/* Rewrites, whole, every state file whose last save failed, and then
 * state.json, which also tells whether the folder takes writes again when
 * nothing else is unsaved. */
static int save_unsaved(struct engine *e)
{
        for (size_t i = 0; i < e->state->n_services; i++) {
                struct service_state *ss = e->state->services[i];
                if (ss->unsaved) {
                        int r = engine_save_service(e, ss);
                        if (r < 0)
                                return r;
                }
        }
        return engine_save_node(e);
}

/* What waited for the state folder, other than new rollouts (the
 * reconcile after this starts those). */
static void resume_service(struct engine *e, struct service *svc)
{
        if (!e->adopted)
                return;
        if (svc->rollout) {
                rollout_resume(svc->rollout);
                return;
        }
        _cleanup_free_ char *reason = TAKE_PTR(svc->revert_later);
        if (reason)
                engine_rollout_revert(svc, reason);
}

/* storage.c's attempt, with backoff, while the state folder fails. */
static void on_storage_retry(struct storage *st, void *userdata)
{
        struct engine *e = userdata;
        if (save_unsaved(e) < 0)
                return; /* saved() told storage.c, which tries again later */
        uint64_t avail = free_bytes(e->cfg->state_dir);
        if (avail < e->storage_need_bytes) {
                log_info("The state folder %s has %llu bytes free, a download needs %llu; "
                         "trying again later",
                         e->cfg->state_dir, (unsigned long long)avail,
                         (unsigned long long)e->storage_need_bytes);
                storage_retry_later(st);
                return;
        }
        e->storage_need_bytes = 0;
        storage_recovered(st);
        for_each_service(e, resume_service);
        if (e->refetch_document) {
                e->refetch_document = false;
                source_refetch(e->source);
        }
        engine_reconcile_soon(e);
}

/* ---- life cycle ---- */

static int lookup_gid(const char *group, gid_t *ret)
{
        *ret = (gid_t)-1;
        if (!group)
                return 0;
        struct group *gr = getgrnam(group);
        if (!gr)
                return -ESRCH;
        *ret = gr->gr_gid;
        return 0;
}

static int load_keys(const char *dir, const char *what, struct minisign_keyring **ret)
{
        _cleanup_free_ char *error = NULL;
        int r = minisign_keyring_load_dir(dir, ret, &error);
        if (r < 0)
                return log_error_errno(r, "Failed to load the %s keys: %s", what, error);
        if ((*ret)->n == 0)
                log_warning("No %s keys in %s: nothing signed can be accepted", what, dir);
        return 0;
}

int engine_new(uv_loop_t *loop, const struct config *cfg, struct engine **ret)
{
        struct engine *e = xcalloc(1, sizeof *e);
        e->loop = loop;
        e->cfg = cfg;
        e->host.cfg = cfg;
        e->refused_serial = -1;
        int r;
        _cleanup_free_ char *error = NULL;

        if (cfg->node_name)
                e->node_name = xstrdup(cfg->node_name);
        else {
                char host[256] = "";
                gethostname(host, sizeof host - 1);
                e->node_name = xstrdup(host);
        }

        if (cfg->require_signature) {
                if (load_keys(cfg->desired_keys, "desired-state", &e->desired_keys) < 0)
                        goto fail;
                if (load_keys(cfg->artifact_keys, "artifact", &e->artifact_keys) < 0)
                        goto fail;
        } else {
                log_warning("require_signature = no: desired state is accepted unsigned; "
                            "this is for experiments only");
        }

        /* The state folder holds the store, which instances running as
         * dynamic users must be able to traverse. */
        if (mkdir(cfg->state_dir, 0755) < 0 && errno != EEXIST) {
                log_error_errno(errno, "Failed to create %s: %m", cfg->state_dir);
                goto fail;
        }
        r = state_load(cfg->state_dir, &e->state, &error);
        if (r < 0) {
                log_error("Failed to load the state: %s", error);
                goto fail;
        }
        r = events_new(&e->events);
        if (r < 0) {
                log_error_errno(r, "Failed to set up events: %m");
                goto fail;
        }
        struct storage_options sto = {
            .first_delay_usec = STORAGE_RETRY_FIRST_USEC,
            .max_delay_usec = STORAGE_RETRY_MAX_USEC,
        };
        r = storage_new(loop, e->events, &sto, on_storage_retry, e, &e->storage);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the storage retries: %m");
                goto fail;
        }
        if (e->state->legacy) {
                /* A folder that takes no writes now does not stop liid: it
                 * goes on with every save rewriting everything. */
                log_info("Writing the state in %s in the format %s", cfg->state_dir, STATE_FORMAT);
                save_legacy(e);
        }
        r = curlm_new(loop, &e->curlm);
        if (r < 0) {
                log_error_errno(r, "Failed to set up curl: %m");
                goto fail;
        }
        struct store_options stopts = {
            .curlm = e->curlm,
            .http = {.ca_file = cfg->ca_file, .timeout_usec = cfg->fetch_timeout_usec},
            .keys = e->artifact_keys,
            .min_rate = cfg->artifact_min_rate,
        };
        r = store_new(loop, cfg->state_dir, &stopts, &e->store);
        if (r < 0) {
                log_error_errno(r, "Failed to open the store in %s: %m", cfg->state_dir);
                goto fail;
        }
        uv_timer_init(loop, &e->reconnect_timer);
        e->reconnect_timer.data = e;
        uv_timer_init(loop, &e->reconcile_timer);
        e->reconcile_timer.data = e;
        e->has_timers = true;

        struct api_config acfg = {
            .socket_path = cfg->socket_path,
            .events = e->events,
            .metrics = &e->metrics,
        };
        if (lookup_gid(cfg->read_group, &acfg.read_gid) < 0)
                log_warning("Group '%s' (read_group) does not exist: only root may read",
                            cfg->read_group);
        if (lookup_gid(cfg->admin_group, &acfg.admin_gid) < 0)
                log_warning("Group '%s' (admin_group) does not exist", cfg->admin_group);
        r = api_new(loop, &acfg, &engine_api_ops, e, &e->api);
        if (r < 0) {
                log_error_errno(r, "Failed to serve the API on %s: %m", cfg->socket_path);
                goto fail;
        }

        if (strncmp(cfg->source_url, "etcd://", 7) == 0 ||
            strncmp(cfg->source_url, "etcds://", 8) == 0) {
                struct etcd_client_options eopts = {
                    .curlm = e->curlm,
                    .ca_file = cfg->etcd_ca_file,
                    .cert_file = cfg->etcd_cert_file,
                    .key_file = cfg->etcd_key_file,
                    .username = cfg->etcd_username,
                    .password_file = cfg->etcd_password_file,
                    .timeout_usec = cfg->fetch_timeout_usec,
                };
                r = etcd_client_new(loop, cfg->source_url, &eopts, &e->etcd, &error);
                if (r < 0) {
                        log_error("Failed to set up the source %s: %s", cfg->source_url, error);
                        goto fail;
                }
        }
        struct source_options sopts = {
            .curlm = e->curlm,
            .etcd_client = e->etcd,
            .http = {.ca_file = cfg->ca_file, .timeout_usec = cfg->fetch_timeout_usec},
            .etcd = {.ca_file = cfg->etcd_ca_file,
                     .cert_file = cfg->etcd_cert_file,
                     .key_file = cfg->etcd_key_file,
                     .username = cfg->etcd_username,
                     .password_file = cfg->etcd_password_file},
            .poll_interval_usec = cfg->poll_interval_usec,
        };
        r = source_new(loop, cfg->source_url, &sopts, on_source, e, &e->source);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the source %s: %m", cfg->source_url);
                goto fail;
        }
        if (e->etcd) {
                struct fleet_options fopts = {
                    .client = e->etcd,
                    .node = e->node_name,
                    .lease_ttl_usec = cfg->etcd_lease_ttl_usec,
                    .events = e->events,
                    .status = engine_fleet_status,
                    .changed = on_fleet_changed,
                    .max_failures = engine_fleet_max_failures,
                    .userdata = e,
                };
                r = fleet_new(loop, &fopts, &e->fleet);
                if (r < 0) {
                        log_error("The node name '%s' cannot name keys in etcd: it is empty or "
                                  "holds a '/'",
                                  e->node_name);
                        goto fail;
                }
        }
        r = connect_systemd(e);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to systemd (bus %s): %m", cfg->bus);
                goto fail;
        }
        r = source_start(e->source);
        if (r < 0) {
                log_error_errno(r, "Failed to watch the source %s: %m", cfg->source_url);
                goto fail;
        }
        if (e->fleet)
                fleet_start(e->fleet);
        *ret = e;
        return 0;
fail:
        engine_free(e);
        return -EINVAL;
}

/* The engine's memory goes once both of its timers are closed. */
static void on_engine_closed(uv_handle_t *h)
{
        struct engine *e = h->data;
        if (++e->closed_timers == 2)
                free(e);
}

struct engine *engine_free(struct engine *e)
{
        if (!e)
                return NULL;
        e->stopping = true;
        for (size_t i = 0; i < e->n_services; i++) {
                engine_rollout_abandon(e->services[i]);
                engine_rollout_unwatch(e->services[i]);
                service_free(e->services[i]);
        }
        free(e->services);
        source_free(e->source);
        e->fleet = fleet_free(e->fleet);
        e->etcd = etcd_client_unref(e->etcd);
        api_free(e->api);
        /* No callback comes after this, so the stops in flight are dropped
         * here; what they were for is on disk, and start-up finishes it. */
        e->host.systemd = systemd_free(e->systemd);
        while (e->stops)
                stop_free(e, e->stops);
        instance_probes_free(&e->host);
        /* The store aborts its downloads on curl multi: it goes first. */
        store_free(e->store);
        curlm_free(e->curlm);
        /* Every transition was saved when it happened; saving again here
         * could only write what a failed save left unsaved. */
        state_free(e->state);
        desired_free(e->desired);
        minisign_keyring_free(e->desired_keys);
        minisign_keyring_free(e->artifact_keys);
        free(e->node_name);
        free(e->source_error);
        free(e->desired_key_id);
        free(e->desired_comment);
        storage_free(e->storage);
        events_free(e->events);
        if (e->has_timers) {
                e->has_timers = false;
                uv_close((uv_handle_t *)&e->reconnect_timer, on_engine_closed);
                uv_close((uv_handle_t *)&e->reconcile_timer, on_engine_closed);
        } else {
                free(e);
        }
        return NULL;
}
