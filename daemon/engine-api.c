/* The engine's side of the API: the status and metrics it serves, and the
 * operator's actions (sync, pause, resume, rollback, replace), each
 * recorded before it takes effect and answered with a 503 when it cannot
 * be. api.c does the HTTP; this file decides. */
#include <stdarg.h>
#include <string.h>

#include "api.h"
#include "engine-internal.h"
#include "lii-version.h"
#include "log.h"
#include "source.h"

/* ---- status ---- */

static json_object *time_or_null(uint64_t usec)
{
        if (!usec)
                return NULL;
        char buf[RFC3339_MAX];
        format_rfc3339(usec, buf);
        return json_object_new_string(buf);
}

static json_object *string_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

static json_object *signature_json(const struct instance *i)
{
        if (!i->artifact_key_id)
                return NULL;
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_KEY_ID, json_object_new_string(i->artifact_key_id));
        json_object_object_add(o, LII_F_TRUSTED_COMMENT, string_or_null(i->artifact_comment));
        return o;
}

/* services.<name>.rollout (contract): the fleet rollout as this node takes
 * it; NULL without a rollout block. */
static json_object *canary_json(const struct service *svc)
{
        if (!svc->canary.set)
                return NULL;
        unsigned h = svc->canary.percent_hundredths;
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_ID, json_object_new_string(svc->canary.id));
        json_object_object_add(o, LII_F_PERCENT,
                               h % 100 == 0 ? json_object_new_int((int)(h / 100))
                                            : json_object_new_double(h / 100.0));
        json_object_object_add(o, LII_F_BUCKET, json_object_new_int((int)svc->canary.bucket));
        json_object_object_add(
            o, LII_F_STATE,
            json_object_new_string(canary_state_to_string(svc->canary.verdict.state)));
        json_object_object_add(o, LII_F_REASON, json_object_new_string(svc->canary.verdict.reason));
        return o;
}

static uint64_t rollout_duration_ms(const struct rollout_record *rec)
{
        return rec->finished_usec > rec->started_usec
                   ? (rec->finished_usec - rec->started_usec) / USEC_PER_MSEC
                   : 0;
}

static json_object *service_json(struct engine *e, struct service *svc)
{
        struct service_state *ss = state_find(e->state, svc->name);
        const struct service_spec *want = e->desired ? desired_find(e->desired, svc->name) : NULL;
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_STATE,
                               json_object_new_string(lii_state_to_string(svc->state)));

        json_object *cur = NULL;
        if (ss && ss->current) {
                cur = json_object_new_object();
                json_object_object_add(cur, LII_F_GENERATION,
                                       json_object_new_uint64(ss->current->generation));
                json_object_object_add(cur, LII_F_UNIT, json_object_new_string(ss->current->unit));
                json_object_object_add(cur, LII_F_ARTIFACT_SHA256,
                                       json_object_new_string(ss->current->artifact_sha256));
                json_object_object_add(cur, LII_F_SPEC_SHA256,
                                       json_object_new_string(ss->current->spec_sha256));
                json_object_object_add(cur, LII_F_ACTIVE_SINCE,
                                       time_or_null(svc->active_since_usec));
                json_object_object_add(cur, LII_F_HEALTHY,
                                       json_object_new_boolean(svc->current_alive && svc->healthy));
                json_object_object_add(cur, LII_F_MAIN_PID,
                                       svc->main_pid ? json_object_new_int64(svc->main_pid) : NULL);
                json_object_object_add(cur, LII_F_PORT, json_object_new_int(ss->current->port));
                json_object_object_add(cur, LII_F_SIGNATURE, signature_json(ss->current));
        }
        json_object_object_add(o, LII_F_CURRENT, cur);

        json_object *prev = NULL;
        if (ss && ss->previous) {
                prev = json_object_new_object();
                json_object_object_add(prev, LII_F_GENERATION,
                                       json_object_new_uint64(ss->previous->generation));
                json_object_object_add(prev, LII_F_ARTIFACT_SHA256,
                                       json_object_new_string(ss->previous->artifact_sha256));
                json_object_object_add(prev, LII_F_SPEC_SHA256,
                                       json_object_new_string(ss->previous->spec_sha256));
        }
        json_object_object_add(o, LII_F_PREVIOUS, prev);

        json_object *next = NULL;
        if (ss && ss->pending) {
                next = json_object_new_object();
                json_object_object_add(next, LII_F_GENERATION,
                                       json_object_new_uint64(ss->pending->generation));
                json_object_object_add(next, LII_F_UNIT, json_object_new_string(ss->pending->unit));
                json_object_object_add(next, LII_F_SPEC_SHA256,
                                       json_object_new_string(ss->pending->spec_sha256));
                json_object_object_add(next, LII_F_PORT, json_object_new_int(ss->pending->port));
        }
        json_object_object_add(o, LII_F_NEXT, next);

        json_object *des = NULL;
        if (want) {
                des = json_object_new_object();
                json_object_object_add(des, LII_F_ARTIFACT_SHA256,
                                       json_object_new_string(want->artifact_sha256));
                json_object_object_add(des, LII_F_SPEC_SHA256,
                                       json_object_new_string(want->spec_sha256));
        }
        json_object_object_add(o, LII_F_DESIRED, des);
        /* The addresses the service keeps through replacements. */
        if (want && want->listen) {
                json_object *l = json_object_new_array();
                for (char **a = want->listen; *a; a++)
                        json_object_array_add(l, json_object_new_string(*a));
                json_object_object_add(o, LII_F_LISTEN, l);
        }

        json_object *lr = NULL;
        if (ss && ss->last_rollout.result != LII_RESULT_NONE) {
                const struct rollout_record *rec = &ss->last_rollout;
                lr = json_object_new_object();
                json_object_object_add(lr, LII_F_GENERATION,
                                       rec->generation ? json_object_new_uint64(rec->generation)
                                                       : NULL);
                json_object_object_add(lr, LII_F_RESULT,
                                       json_object_new_string(lii_result_to_string(rec->result)));
                json_object_object_add(lr, LII_F_REASON, string_or_null(rec->reason));
                json_object_object_add(lr, LII_F_STARTED_AT, time_or_null(rec->started_usec));
                json_object_object_add(lr, LII_F_FINISHED_AT, time_or_null(rec->finished_usec));
                json_object_object_add(lr, LII_F_DURATION_MS,
                                       json_object_new_uint64(rollout_duration_ms(rec)));
        }
        json_object_object_add(o, LII_F_LAST_ROLLOUT, lr);
        json_object_object_add(o, LII_F_RESTARTS, json_object_new_int64(svc->restarts));
        json_object_object_add(o, LII_F_HELD, json_object_new_boolean(ss && ss->held));
        json_object_object_add(o, LII_F_ROLLOUT, canary_json(svc));
        return o;
}

/* A service's row in the table view, from the same places as
 * service_json()'s fields. An array costs json-c and its clients far less
 * than an object with a hash table of its own: this view is for those who
 * ask often or about many services. */
static json_object *service_row_json(struct engine *e, struct service *svc)
{
        struct service_state *ss = state_find(e->state, svc->name);
        const struct instance *cur = ss ? ss->current : NULL;
        const struct rollout_record *rec =
            ss && ss->last_rollout.result != LII_RESULT_NONE ? &ss->last_rollout : NULL;
        bool canary = svc->canary.set;
        json_object *cells[_LII_COLUMN_MAX] = {
            [LII_COLUMN_NAME] = json_object_new_string(svc->name),
            [LII_COLUMN_STATE] = json_object_new_string(lii_state_to_string(svc->state)),
            [LII_COLUMN_HELD] = json_object_new_boolean(ss && ss->held),
            [LII_COLUMN_GENERATION] = cur ? json_object_new_uint64(cur->generation) : NULL,
            [LII_COLUMN_UNIT] = cur ? json_object_new_string(cur->unit) : NULL,
            [LII_COLUMN_HEALTHY] =
                cur ? json_object_new_boolean(svc->current_alive && svc->healthy) : NULL,
            [LII_COLUMN_ACTIVE_SINCE] = cur ? time_or_null(svc->active_since_usec) : NULL,
            [LII_COLUMN_LAST_RESULT] =
                rec ? json_object_new_string(lii_result_to_string(rec->result)) : NULL,
            [LII_COLUMN_LAST_REASON] = rec ? string_or_null(rec->reason) : NULL,
            [LII_COLUMN_LAST_DURATION_MS] =
                rec ? json_object_new_uint64(rollout_duration_ms(rec)) : NULL,
            [LII_COLUMN_ROLLOUT_STATE] =
                canary ? json_object_new_string(canary_state_to_string(svc->canary.verdict.state))
                       : NULL,
            [LII_COLUMN_ROLLOUT_REASON] =
                canary ? json_object_new_string(svc->canary.verdict.reason) : NULL,
        };
        json_object *row = json_object_new_array_ext(_LII_COLUMN_MAX);
        for (size_t i = 0; i < _LII_COLUMN_MAX; i++)
                json_object_array_add(row, cells[i]);
        return row;
}

/* The table view's columns and rows; services are kept sorted by name. */
static void add_table(json_object *o, struct engine *e)
{
        json_object *columns = json_object_new_array_ext(_LII_COLUMN_MAX);
        for (size_t i = 0; i < _LII_COLUMN_MAX; i++)
                json_object_array_add(columns, json_object_new_string(lii_column_names[i]));
        json_object_object_add(o, LII_F_COLUMNS, columns);
        json_object *rows = json_object_new_array_ext((int)e->n_services);
        for (size_t i = 0; i < e->n_services; i++)
                json_object_array_add(rows, service_row_json(e, e->services[i]));
        json_object_object_add(o, LII_F_ROWS, rows);
}

static json_object *api_status(void *userdata, enum status_view view)
{
        struct engine *e = userdata;
        json_object *o = json_object_new_object();
        if (view == STATUS_VIEW_TABLE)
                json_object_object_add(o, LII_F_VIEW, json_object_new_string(LII_VIEW_TABLE));
        json_object_object_add(o, LII_F_NODE, json_object_new_string(e->node_name));
        json_object_object_add(o, LII_F_VERSION, json_object_new_string(LII_VERSION));
        json_object_object_add(o, LII_F_PAUSED, json_object_new_boolean(e->state->paused));
        /* Lets a client follow /v1/events?after=<this> and miss nothing
         * that happens after this status. */
        json_object_object_add(o, LII_F_EVENT_SEQ,
                               json_object_new_uint64(events_last_seq(e->events)));

        json_object *src = json_object_new_object();
        json_object_object_add(src, LII_F_URL, json_object_new_string(e->cfg->source_url));
        json_object_object_add(src, LII_F_SERIAL,
                               e->state->doc_sha256[0] ? json_object_new_uint64(e->state->serial)
                                                       : NULL);
        json_object_object_add(src, LII_F_FETCHED_AT, time_or_null(e->fetched_at_usec));
        json_object_object_add(src, LII_F_ERROR, string_or_null(e->source_error));
        json_object_object_add(src, LII_F_REFUSED_SERIAL,
                               e->refused_serial >= 0 ? json_object_new_int64(e->refused_serial)
                                                      : NULL);
        json_object_object_add(src, LII_F_KEY_ID, string_or_null(e->desired_key_id));
        json_object_object_add(src, LII_F_TRUSTED_COMMENT, string_or_null(e->desired_comment));
        json_object_object_add(o, LII_F_SOURCE, src);
        json_object_object_add(o, LII_F_STORAGE, storage_to_json(e->storage));

        if (view == STATUS_VIEW_TABLE) {
                add_table(o, e);
                return o;
        }
        json_object *svcs = json_object_new_object();
        for (size_t i = 0; i < e->n_services; i++) {
                struct service *svc = e->services[i];
                /* Names are unique: json-c need not look each one up. */
                json_object_object_add_ex(svcs, svc->name, service_json(e, svc),
                                          JSON_C_OBJECT_ADD_KEY_IS_NEW);
        }
        json_object_object_add(o, LII_F_SERVICES, svcs);
        return o;
}

static json_object *api_service(void *userdata, const char *name)
{
        struct engine *e = userdata;
        struct service *svc = engine_find_service(e, name);
        return svc ? service_json(e, svc) : NULL;
}

static json_object *message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_object *message(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *text = NULL;
        if (vasprintf(&text, fmt, ap) < 0)
                abort();
        va_end(ap);
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_MESSAGE, json_object_new_string(text));
        return o;
}

static json_object *api_sync(void *userdata)
{
        struct engine *e = userdata;
        source_sync(e->source);
        /* An operator who has just made room need not wait for the next
         * attempt. */
        storage_retry_now(e->storage);
        events_emit(e->events, EVENT_OPERATOR, NULL, 0, "sync");
        return message("fetching the desired state from %s now", e->cfg->source_url);
}

/* The answer to an operator whose action could not be recorded, and so
 * was not carried out. */
static json_object *unrecorded(int r)
{
        _cleanup_free_ char *msg = xasprintf("cannot record this in the state folder (%s); "
                                             "nothing was changed",
                                             strerror(-r));
        return lii_error_new(LII_ERR_UNAVAILABLE, msg);
}

static json_object *set_paused(struct engine *e, bool paused)
{
        if (e->state->paused != paused) {
                e->state->paused = paused;
                int r = engine_save_node(e);
                if (r < 0) {
                        e->state->paused = !paused;
                        return unrecorded(r);
                }
                events_emit(e->events, EVENT_OPERATOR, NULL, 0, "%s", paused ? "pause" : "resume");
        }
        if (!paused)
                engine_reconcile_soon(e);
        return message(paused ? "paused: no new rollouts start; running ones finish"
                              : "resumed: rollouts start again");
}

static json_object *api_pause(void *userdata)
{
        return set_paused(userdata, true);
}

static json_object *api_resume(void *userdata)
{
        return set_paused(userdata, false);
}

/* Finds the service an operator action is about. Returns NULL with
 * *ret_svc set when the action can start now, else the error to answer. */
static json_object *operable(struct engine *e, const char *name, struct service **ret_svc)
{
        struct service *svc = engine_find_service(e, name);
        *ret_svc = NULL;
        if (!svc || !state_find(e->state, name))
                return lii_error_new(LII_ERR_NOT_FOUND, "no such service");
        if (!e->adopted)
                return lii_error_new(LII_ERR_CONFLICT,
                                     "liid is (re)connecting to systemd; try again in a moment");
        if (svc->rollout)
                return lii_error_new(LII_ERR_CONFLICT, "a rollout of this service is under way");
        if (svc->removing)
                return lii_error_new(LII_ERR_CONFLICT, "this service is being removed");
        *ret_svc = svc;
        return NULL;
}

/* Sets the quarantined spec and the hold of a service and records them;
 * when that cannot be written, puts both back and answers 503. */
static json_object *record_hold(struct engine *e, struct service_state *ss, const char *refused,
                                bool held)
{
        char old_refused[sizeof ss->refused_spec_sha256];
        memcpy(old_refused, ss->refused_spec_sha256, sizeof old_refused);
        bool old_held = ss->held;
        snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256, "%s", refused);
        ss->held = held;
        int r = engine_save_service(e, ss);
        if (r < 0) {
                memcpy(ss->refused_spec_sha256, old_refused, sizeof old_refused);
                ss->held = old_held;
                return unrecorded(r);
        }
        return NULL;
}

static json_object *api_rollback(void *userdata, const char *name)
{
        struct engine *e = userdata;
        struct service *svc;
        json_object *err = operable(e, name, &svc);
        if (err)
                return err;
        struct service_state *ss = state_find(e->state, name);
        if (!ss->previous)
                return lii_error_new(LII_ERR_CONFLICT, "no previous revision to roll back to");
        _cleanup_(service_spec_freep) struct service_spec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        if (service_spec_parse(name, ss->previous->spec_json, &spec, &error) < 0)
                return lii_error_new(LII_ERR_INTERNAL, error);
        /* The spec being left is quarantined like a failed one, and the
         * service held where it goes, until the desired spec changes or an
         * operator asks for replace. */
        char refused[sizeof ss->refused_spec_sha256];
        memcpy(refused, ss->refused_spec_sha256, sizeof refused);
        uint64_t to = ss->previous->generation;
        uint64_t generation = ss->last_generation + 1;
        err = record_hold(e, ss, ss->current ? ss->current->spec_sha256 : refused, true);
        if (err)
                return err;
        engine_cancel_backoff(svc);
        events_emit(e->events, EVENT_OPERATOR, name, 0, "rollback to the spec of generation %llu",
                    (unsigned long long)to);
        int r = engine_rollout_start(svc, spec, ROLLOUT_ROLLBACK);
        if (r < 0) {
                ss->held = false;
                snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256, "%s", refused);
                engine_save_service(e, ss);
                if (storage_failing(e->storage))
                        return unrecorded(r);
                return lii_error_new(LII_ERR_INTERNAL, "the rollback could not start; see the log");
        }
        json_object *o =
            message("rolling %s back to the spec of generation %llu", name, (unsigned long long)to);
        json_object_object_add(o, LII_F_GENERATION, json_object_new_uint64(generation));
        return o;
}

static json_object *api_replace(void *userdata, const char *name)
{
        struct engine *e = userdata;
        struct service *svc;
        json_object *err = operable(e, name, &svc);
        if (err)
                return err;
        struct service_state *ss = state_find(e->state, name);
        if (!e->desired || !desired_find(e->desired, name))
                return lii_error_new(LII_ERR_CONFLICT, "this service is not in the desired state");
        /* A fresh start: quarantine, hold and restart count are cleared. */
        err = record_hold(e, ss, "", false);
        if (err)
                return err;
        svc->restarts = 0;
        engine_cancel_backoff(svc);
        svc->force = true;
        /* The fresh instance may have to wait for a rollout slot
         * (max_parallel), but no generation below this one can be it. */
        uint64_t generation = ss->last_generation + 1;
        events_emit(e->events, EVENT_OPERATOR, name, 0, "replace");
        engine_reconcile_soon(e);
        json_object *o = message("starting a fresh instance of %s's desired spec", name);
        json_object_object_add(o, LII_F_GENERATION, json_object_new_uint64(generation));
        return o;
}

static char *api_metrics(void *userdata)
{
        struct engine *e = userdata;
        unsigned healthy = 0;
        for (size_t i = 0; i < e->n_services; i++)
                healthy += e->services[i]->current_alive && e->services[i]->healthy;
        return metrics_render(&e->metrics, healthy, (unsigned)e->n_services, e->state->paused,
                              storage_failing(e->storage));
}

/* ---- fleet mode ---- */

/* The contract's nodes/<node>/status: what another node or an operator
 * needs to see of each service, a tenth of the full status. */
json_object *engine_fleet_status(void *userdata)
{
        struct engine *e = userdata;
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_NODE, json_object_new_string(e->node_name));
        json_object_object_add(o, LII_F_VERSION, json_object_new_string(LII_VERSION));
        json_object_object_add(o, LII_F_SERIAL,
                               e->state->doc_sha256[0] ? json_object_new_uint64(e->state->serial)
                                                       : NULL);
        json_object_object_add(o, LII_F_UPDATED_AT, time_or_null(now_realtime_usec()));
        json_object *svcs = json_object_new_object();
        for (size_t i = 0; i < e->n_services; i++) {
                struct service *svc = e->services[i];
                struct service_state *ss = state_find(e->state, svc->name);
                const struct instance *cur = ss ? ss->current : NULL;
                json_object *so = json_object_new_object();
                json_object_object_add(so, LII_F_STATE,
                                       json_object_new_string(lii_state_to_string(svc->state)));
                json_object_object_add(so, LII_F_GENERATION,
                                       cur ? json_object_new_uint64(cur->generation) : NULL);
                json_object_object_add(so, LII_F_ARTIFACT_SHA256,
                                       cur ? json_object_new_string(cur->artifact_sha256) : NULL);
                json_object_object_add(so, LII_F_SPEC_SHA256,
                                       cur ? json_object_new_string(cur->spec_sha256) : NULL);
                json_object_object_add(
                    so, LII_F_HEALTHY,
                    json_object_new_boolean(cur && svc->current_alive && svc->healthy));
                json_object_object_add(so, LII_F_ROLLOUT, canary_json(svc));
                json_object *lr = NULL;
                if (ss && ss->last_rollout.result != LII_RESULT_NONE) {
                        const struct rollout_record *rec = &ss->last_rollout;
                        lr = json_object_new_object();
                        json_object_object_add(
                            lr, LII_F_RESULT,
                            json_object_new_string(lii_result_to_string(rec->result)));
                        json_object_object_add(lr, LII_F_REASON, string_or_null(rec->reason));
                        json_object_object_add(lr, LII_F_FINISHED_AT,
                                               time_or_null(rec->finished_usec));
                }
                json_object_object_add(so, LII_F_LAST_ROLLOUT, lr);
                json_object_object_add_ex(svcs, svc->name, so, JSON_C_OBJECT_ADD_KEY_IS_NEW);
        }
        json_object_object_add(o, LII_F_SERVICES, svcs);
        return o;
}

unsigned engine_fleet_max_failures(void *userdata, const char *service)
{
        struct engine *e = userdata;
        const struct service_spec *want = e->desired ? desired_find(e->desired, service) : NULL;
        return want && want->rollout.set ? want->rollout.max_failures : 0;
}

static json_object *api_fleet(void *userdata)
{
        struct engine *e = userdata;
        if (!e->fleet)
                return lii_error_new(LII_ERR_NOT_IMPLEMENTED,
                                     "fleet mode needs an etcd:// source; this node's source is "
                                     "not one");
        return fleet_to_json(e->fleet);
}

const struct api_ops engine_api_ops = {
    .status = api_status,
    .service = api_service,
    .sync = api_sync,
    .pause = api_pause,
    .resume = api_resume,
    .rollback = api_rollback,
    .replace = api_replace,
    .metrics = api_metrics,
    .fleet = api_fleet,
};
