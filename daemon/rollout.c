/* See rollout.h. The steps:
 *   PHASE_FETCH    the store fetches and verifies the artifact
 *   PHASE_START    systemd starts the new unit (watched before it starts)
 *   PHASE_CHECK    the health check probes it until it passes
 *   PHASE_COMMIT   it passed; the owner could not record that yet
 *   PHASE_EXPLAIN  it ended before passing; its last output is being read
 *                  from the journal for the reason
 *   PHASE_DONE     the outcome is reported; nothing is in flight */
#include "rollout.h"

#include <string.h>

#include "exit-status.h"
#include "journal.h"
#include "storage.h"
#include "util.h"

enum phase { PHASE_FETCH, PHASE_START, PHASE_CHECK, PHASE_COMMIT, PHASE_EXPLAIN, PHASE_DONE };

struct rollout {
        struct rollout_params p; /* service and unit copied below */
        char *service;
        char *unit;
        struct service_spec *spec;
        enum phase phase;
        struct store_job *job;
        struct health_check *health;
        struct journal_tail *tail;
        uint64_t started_usec;    /* realtime: the journal is read from here */
        uint64_t start_mono_usec; /* when the unit was started: the deadline counts from it */
        uint64_t bytes_fetched;
        char *artifact_root;
        char *key_id, *comment;
        struct instance_env *env;       /* set once the artifact is unpacked */
        struct unit_status unit_status; /* the last word of systemd on the new unit */
        bool have_unit_status;
        bool unit_started;
        char *explained; /* PHASE_EXPLAIN: the reason without the output */
};

uint64_t rollout_generation(const struct rollout *ro)
{
        return ro->p.generation;
}

struct instance_env *rollout_take_env(struct rollout *ro)
{
        return TAKE_PTR(ro->env);
}

struct rollout *rollout_free(struct rollout *ro)
{
        if (!ro)
                return NULL;
        if (ro->job)
                store_job_cancel(ro->job);
        health_check_cancel(ro->health);
        journal_tail_cancel(ro->tail);
        instance_env_free(ro->env);
        service_spec_free(ro->spec);
        free(ro->service);
        free(ro->unit);
        free(ro->artifact_root);
        free(ro->key_id);
        free(ro->comment);
        free(ro->explained);
        free(ro);
        return NULL;
}

/* Reports an end other than a pass. The owner may free the rollout in the
 * callback, so nothing touches it afterwards. */
static void report_failure(struct rollout *ro, enum rollout_result result, const char *reason)
{
        ro->phase = PHASE_DONE;
        const struct rollout_outcome o = {
            .result = result,
            .reason = reason,
            .started = ro->unit_started,
            .bytes_fetched = ro->bytes_fetched,
        };
        ro->p.done(ro, &o, ro->p.owner);
}

static void refuse(struct rollout *ro, const char *reason)
{
        report_failure(ro, ROLLOUT_REFUSED, reason);
}

static void report_passed(struct rollout *ro)
{
        const struct rollout_outcome o = {
            .result = ROLLOUT_PASSED,
            .started = true,
            .bytes_fetched = ro->bytes_fetched,
            .artifact_key_id = ro->key_id,
            .artifact_comment = ro->comment,
        };
        /* The owner frees the rollout within the callback when it records
         * the pass, so nothing touches it after a 0. Until the owner has
         * recorded the promotion, the instance is watched on: if it ends,
         * the pass is withdrawn. */
        ro->phase = PHASE_DONE;
        if (ro->p.done(ro, &o, ro->p.owner) < 0) {
                ro->phase = PHASE_COMMIT;
                ro->bytes_fetched = 0; /* counted once */
        }
}

void rollout_resume(struct rollout *ro)
{
        if (ro->phase == PHASE_COMMIT)
                report_passed(ro);
}

static void on_last_words(char *const *lines, void *userdata)
{
        struct rollout *ro = userdata;
        ro->tail = NULL;
        _cleanup_free_ char *quoted = NULL;
        for (size_t i = 0; lines[i]; i++) {
                char *more = xasprintf("%s%s\"%s\"",
                                       quoted ? quoted : "; its last output: ", quoted ? " | " : "",
                                       lines[i]);
                free(quoted);
                quoted = more;
        }
        _cleanup_free_ char *msg = xasprintf("%s%s", ro->explained, quoted ? quoted : "");
        refuse(ro, msg);
}

/* The new unit ended before it passed: the reason says how, and quotes
 * what the instance last wrote where a journal has it. */
static void refuse_quoting(struct rollout *ro, const char *reason)
{
        health_check_cancel(ro->health);
        ro->health = NULL;
        ro->phase = PHASE_EXPLAIN;
        ro->explained = xstrdup(reason);
        if (journal_tail_start(ro->p.loop, ro->unit, ro->started_usec, 3, on_last_words, ro,
                               &ro->tail) < 0)
                refuse(ro, reason);
}

static void on_health_done(struct health_check *h, bool ok, const char *reason, void *userdata)
{
        struct rollout *ro = userdata;
        ro->health = NULL;
        if (ok) {
                report_passed(ro);
                return;
        }
        _cleanup_free_ char *msg = xasprintf("health check failed: %s", reason);
        refuse(ro, msg);
}

static void on_started(struct systemd *m, int r, const char *result, void *userdata)
{
        struct rollout *ro = userdata;
        /* Losing systemd says nothing about the spec: the owner hears of it
         * from systemd.c right after this and abandons the rollout. */
        if (r == -ENOTCONN)
                return;
        if (r < 0) {
                /* systemd reports the unit's end before the job's, so the
                 * reason can say how the process ended, not only "failed". */
                /* A socket that could not listen: the unit never ran. */
                _cleanup_free_ char *how =
                    r == -EADDRINUSE       ? xstrdup(result ? result : strerror(-r))
                    : ro->have_unit_status ? exit_status_describe(&ro->unit_status)
                                           : xasprintf("job %s", result ? result : strerror(-r));
                _cleanup_free_ char *msg = xasprintf("systemd did not start %s: %s", ro->unit, how);
                refuse_quoting(ro, msg);
                return;
        }
        ro->phase = PHASE_CHECK;
        ro->p.progress(ro, LII_STATE_CHECKING, ro->p.owner);
        events_emit(ro->p.events, EVENT_INSTANCE_STARTED, ro->service, ro->p.generation,
                    "%s is active; checking its health", ro->unit);
        _cleanup_free_ char *target = instance_env_health_target(ro->env);
        r = health_check_start(ro->p.loop, ro->p.curlm, &ro->spec->health, target, &ro->env->exec,
                               ro->start_mono_usec + ro->spec->health.deadline_usec, on_health_done,
                               ro, &ro->health);
        if (r < 0) {
                _cleanup_free_ char *msg =
                    xasprintf("cannot run the health check: %s", strerror(-r));
                refuse(ro, msg);
        }
}

void rollout_on_unit(struct rollout *ro, const struct unit_status *st)
{
        if (st->loaded) {
                ro->unit_status = *st;
                ro->have_unit_status = true;
        }
        if (ro->phase != PHASE_CHECK && ro->phase != PHASE_COMMIT)
                return;
        /* Only a unit that is there and down counts: systemd announces units
         * removed while it reloads or re-executes, and an instance that
         * really exits is reported inactive or failed before it is
         * collected. */
        if (!st->loaded ||
            (strcmp(st->active_state, "failed") != 0 && strcmp(st->active_state, "inactive") != 0))
                return;
        const char *when = ro->phase == PHASE_COMMIT ? "before its promotion could be recorded"
                                                     : "before passing its checks";
        _cleanup_free_ char *how = exit_status_describe(st);
        _cleanup_free_ char *msg = xasprintf("%s ended %s: %s", ro->unit, when, how);
        refuse_quoting(ro, msg);
}

static int start_unit(struct rollout *ro)
{
        ro->env = instance_env_new(ro->p.host, ro->service, ro->p.generation, ro->p.port,
                                   ro->artifact_root, ro->spec);
        if (!ro->env)
                return -EINVAL;
        if (!ro->p.host->systemd)
                return -ENOTCONN;
        int r = systemd_watch_unit(ro->p.host->systemd, ro->unit);
        if (r < 0)
                return r;
        ro->start_mono_usec = now_monotonic_usec();
        r = instance_env_start(ro->env, ro->unit, on_started, ro);
        ro->unit_started = r >= 0;
        return r;
}

static void on_fetched(const struct store_result *res, void *userdata)
{
        struct rollout *ro = userdata;
        ro->job = NULL;
        ro->bytes_fetched = res->r < 0 ? 0 : res->bytes_fetched;
        if (res->r < 0) {
                const char *reason = res->error ? res->error : "artifact could not be fetched";
                report_failure(
                    ro, storage_is_full_error(res->r) ? ROLLOUT_NO_ROOM : ROLLOUT_REFUSED, reason);
                return;
        }
        ro->artifact_root = xstrdup(res->root);
        ro->key_id = res->key_id ? xstrdup(res->key_id) : NULL;
        ro->comment = res->trusted_comment ? xstrdup(res->trusted_comment) : NULL;
        ro->phase = PHASE_START;
        ro->p.progress(ro, LII_STATE_STARTING, ro->p.owner);
        int r = start_unit(ro);
        if (r < 0) {
                _cleanup_free_ char *msg =
                    xasprintf("cannot ask systemd to start %s: %s", ro->unit, strerror(-r));
                refuse(ro, msg);
        }
}

int rollout_start(const struct rollout_params *p, struct rollout **ret)
{
        _cleanup_free_ char *error = NULL;
        struct rollout *ro = xcalloc(1, sizeof *ro);
        ro->p = *p;
        ro->service = xstrdup(p->service);
        ro->unit = xstrdup(p->unit);
        /* Only the copies are used from here on. */
        ro->p.service = ro->p.unit = NULL;
        ro->p.spec = NULL;
        ro->phase = PHASE_FETCH;
        ro->started_usec = now_realtime_usec();
        int r = service_spec_parse(p->service, p->spec->spec_json, &ro->spec, &error);
        if (r >= 0)
                r = store_ensure(p->store, ro->spec, on_fetched, ro, &ro->job);
        if (r < 0) {
                rollout_free(ro);
                return r;
        }
        *ret = ro;
        return 0;
}
