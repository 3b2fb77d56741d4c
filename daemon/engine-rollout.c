/* The engine's side of rollouts (rollout.c does the steps): what starts one
 * (the generation and the pending record, written first), what each
 * outcome means (the promotion, written before the old instance is
 * retired; quarantine; restart backoff; metrics; the next reconcile), and
 * the watch window after a promotion, with its revert. */
#include <malloc.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"
#include "port.h"

static void forget_rollout(struct service *svc)
{
        svc->rollout = rollout_free(svc->rollout);
        svc->rollout_restart = false;
        free(svc->revert_reason);
        free(svc->revert_cause);
        svc->revert_reason = svc->revert_cause = NULL;
        svc->engine->running_rollouts--;
}

void engine_rollout_abandon(struct service *svc)
{
        if (svc->rollout)
                forget_rollout(svc);
        /* What the slot was held for is sorted out anew (the slot itself
         * stays asked for, and the next reconcile decides). */
        svc->slot_rollout = false;
}

/* Ends the rollout's life in the service once its outcome is recorded. The
 * store is swept once the last rollout running has ended, not after each
 * of a batch (a sweep walks every service and the store), and the heap
 * that the batch's downloads and probes used goes back to the system then,
 * so that an idle liid is as small as it can be. */
static void rollout_ended(struct service *svc)
{
        struct engine *e = svc->engine;
        forget_rollout(svc);
        if (e->running_rollouts == 0) {
                engine_collect(e);
                malloc_trim(0);
        }
        engine_reconcile_soon(e);
}

/* A rollout that did not promote its instance: decide_failure() says what
 * it means. */
static void rollout_failed(struct service *svc, uint64_t generation, const char *reason,
                           bool spec_at_fault, bool started)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_get(e->state, svc->name);
        enum rollout_kind kind = svc->rollout_kind;
        const struct failure_input in = {
            .kind = kind,
            .spec_at_fault = spec_at_fault,
            .replacing_dead = svc->rollout_restart,
            .restarts_left = svc->restarts < RESTART_LIMIT,
            .held = ss->held,
        };
        const struct failure_rules f = decide_failure(&in);

        uint64_t now = now_realtime_usec();
        if (f.verdict)
                events_emit(e->events, EVENT_ROLLOUT_FAILED, svc->name, generation,
                            "generation %llu refused: %s", (unsigned long long)generation, reason);
        else
                events_emit(e->events, EVENT_ROLLOUT_FAILED, svc->name, generation,
                            "generation %llu failed: %s; its spec is tried again once the state "
                            "folder has room",
                            (unsigned long long)generation, reason);
        metrics_rollout(&e->metrics, LII_RESULT_FAILED, now - svc->rollout_started_usec);
        if (f.retry_later)
                engine_schedule_restart(svc);
        if (f.quarantine && ss->pending)
                snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256, "%s",
                         ss->pending->spec_sha256);
        if (f.release_hold)
                ss->held = false;
        if (f.revert_later) {
                free(svc->revert_later);
                svc->revert_later = TAKE_PTR(svc->revert_cause);
        }
        rollout_record_set(&ss->last_rollout, generation, LII_RESULT_FAILED, reason,
                           svc->rollout_started_usec, now);
        _cleanup_free_ char *unit = ss->pending ? xstrdup(ss->pending->unit) : NULL;
        _cleanup_free_ char *failed_spec = ss->pending ? xstrdup(ss->pending->spec_sha256) : NULL;
        bool sockets = engine_instance_listens(ss->pending);
        if (!started)
                ss->pending = instance_free(ss->pending);
        /* The new instance goes even when this record cannot be written:
         * every record of this rollout names it pending, which a restart
         * stops too. (Only a promotion that could not be written may have
         * reached the file after all, a rename done before a failed sync of
         * the folder; a rollout fails while it waits for that only once its
         * instance has exited.) */
        engine_save_service(e, ss);
        svc->state = LII_STATE_FAILED;
        /* A fleet rollout counts the nodes where its spec failed. */
        if (f.verdict && kind == ROLLOUT_DESIRED && !svc->rollout_restart)
                engine_fleet_failed(svc, failed_spec, reason);
        if (started && unit)
                engine_stop_unit(e, svc->name, generation, unit, sockets, STOP_REFUSED);
        else if (svc->slot_rollout)
                engine_slot_release(svc);
        rollout_ended(svc);
}

static void on_watch_done(struct health_check *h, bool ok, const char *reason, void *userdata)
{
        struct service *svc = userdata;
        svc->watch = NULL;
        svc->watch_env = instance_env_free(svc->watch_env);
        if (ok) {
                events_emit(svc->engine->events, EVENT_INSTANCE_HEALTHY, svc->name, 0,
                            "passed its watch window");
                return;
        }
        /* No longer healthy, whether or not the revert can replace it:
         * status and metrics must not go on saying so. */
        svc->healthy = false;
        _cleanup_free_ char *msg = xasprintf("failed its watch window: %s", reason);
        engine_rollout_revert(svc, msg);
}

/* Watches the current instance until until_mono_usec with the rollout's
 * probes and target; env becomes the service's (the window outlives the
 * rollout). */
static void watch_begin(struct service *svc, struct instance_env *env, uint64_t until_mono_usec)
{
        struct engine *e = svc->engine;
        engine_rollout_unwatch(svc);
        svc->watch_env = env;
        _cleanup_free_ char *target = instance_env_health_target(env);
        int r = health_watch_start(e->loop, e->curlm, &env->spec->health, target, &env->exec,
                                   until_mono_usec, on_watch_done, svc, &svc->watch);
        if (r < 0) {
                log_svc(LOG_WARNING, svc->name, env->generation, "Cannot watch the instance: %s",
                        strerror(-r));
                svc->watch_env = instance_env_free(svc->watch_env);
        }
}

void engine_rollout_rewatch(struct service *svc)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_find(e->state, svc->name);
        uint64_t now = now_realtime_usec();
        if (!ss || !ss->current || !svc->current_alive || ss->watch_until_usec <= now)
                return;
        _cleanup_(service_spec_freep) struct service_spec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        if (service_spec_parse(svc->name, ss->current->spec_json, &spec, &error) < 0)
                return;
        _cleanup_free_ char *root = store_artifact_path(e->store, ss->current->artifact_sha256);
        struct instance_env *env = instance_env_new(&e->host, svc->name, ss->current->generation,
                                                    ss->current->port, root, spec);
        if (!env)
                return;
        log_svc(LOG_INFO, svc->name, ss->current->generation,
                "Watching on for the %llu ms left of the watch window",
                (unsigned long long)((ss->watch_until_usec - now) / USEC_PER_MSEC));
        watch_begin(svc, env, now_monotonic_usec() + (ss->watch_until_usec - now));
}

/* A revert and an operator's rollback both record the spec they leave as
 * refused (a rollback also its hold, a revert a failed record not yet
 * finished) before their new instance starts. A current instance that
 * still runs that spec after a restart means the step was cut short; it is
 * started again rather than left half-done: a revert's verdict stands even
 * once the watch window is over, and a held service is not held at the
 * very spec the operator left. */
void engine_rollout_finish_cut_short(struct service *svc)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_find(e->state, svc->name);
        if (!ss || ss->removed || !ss->current || !ss->previous || !svc->current_alive ||
            svc->rollout)
                return;
        const char *left = ss->refused_spec_sha256;
        if (strcmp(ss->current->spec_sha256, left) != 0 ||
            strcmp(ss->previous->spec_sha256, left) == 0)
                return;
        uint64_t gen = ss->current->generation;
        if (!ss->held) {
                const struct rollout_record *rec = &ss->last_rollout;
                if (rec->result != LII_RESULT_FAILED || rec->finished_usec != 0 ||
                    rec->generation != gen)
                        return;
                /* The reason as recorded, without the generation that
                 * engine_rollout_revert() puts before it again. */
                _cleanup_free_ char *prefix =
                    xasprintf("generation %llu ", (unsigned long long)gen);
                const char *reason = rec->reason && !strncmp(rec->reason, prefix, strlen(prefix))
                                         ? rec->reason + strlen(prefix)
                                         : "was being reverted when liid stopped";
                _cleanup_free_ char *why = xstrdup(reason);
                engine_rollout_revert(svc, why);
                return;
        }
        _cleanup_(service_spec_freep) struct service_spec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        if (service_spec_parse(svc->name, ss->previous->spec_json, &spec, &error) < 0) {
                log_svc(LOG_ERR, svc->name, gen, "Cannot finish the rollback: %s", error);
                return;
        }
        log_svc(LOG_NOTICE, svc->name, gen,
                "Finishing the rollback to the spec of generation %llu that a restart cut short",
                (unsigned long long)ss->previous->generation);
        int r = engine_rollout_start(svc, spec, ROLLOUT_ROLLBACK);
        if (r < 0)
                log_svc(LOG_WARNING, svc->name, gen, "Cannot finish the rollback: %s",
                        strerror(-r));
}

void engine_rollout_unwatch(struct service *svc)
{
        health_check_cancel(svc->watch);
        svc->watch = NULL;
        svc->watch_env = instance_env_free(svc->watch_env);
}

void engine_rollout_revert(struct service *svc, const char *reason)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_find(e->state, svc->name);
        engine_rollout_unwatch(svc);
        if (!ss || !ss->current || svc->rollout)
                return;
        log_svc(LOG_WARNING, svc->name, ss->current->generation, "Generation %llu %s; reverting",
                (unsigned long long)ss->current->generation, reason);
        _cleanup_(service_spec_freep) struct service_spec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        if (!ss->previous ||
            service_spec_parse(svc->name, ss->previous->spec_json, &spec, &error) < 0) {
                log_svc(LOG_ERR, svc->name, 0, "Nothing to revert to%s%s", error ? ": " : "",
                        error ? error : "");
                return;
        }
        _cleanup_free_ char *why =
            xasprintf("generation %llu %s", (unsigned long long)ss->current->generation, reason);
        engine_fleet_failed(svc, ss->current->spec_sha256, why);
        snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256, "%s",
                 ss->current->spec_sha256);
        rollout_record_set(&ss->last_rollout, ss->current->generation, LII_RESULT_FAILED, why,
                           now_realtime_usec(), 0);
        int r = engine_save_service(e, ss);
        if (r == 0)
                r = engine_rollout_start(svc, spec, ROLLOUT_REVERT);
        if (r < 0) {
                /* A revert that cannot be recorded cannot start; it starts
                 * once the state folder takes writes (the refusal above,
                 * kept in memory, is written then). */
                if (storage_failing(e->storage)) {
                        free(svc->revert_later);
                        svc->revert_later = xstrdup(reason);
                }
                return;
        }
        /* (A rollout that could not even begin has already failed.) */
        if (svc->rollout) {
                svc->revert_reason = TAKE_PTR(why);
                svc->revert_cause = xstrdup(reason);
        }
}

/* Step 4: the new instance passed. The state file says so before the old
 * instance is stopped, so a crash in between leaves the new one current and
 * the old one an orphan that start-up stops. Returns < 0 when the promotion
 * could not be written: then nothing changed, and both instances run on
 * until it can be (rollout_resume()). */
static int rollout_passed(struct service *svc, const struct rollout_outcome *o)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_get(e->state, svc->name);
        uint64_t generation = rollout_generation(svc->rollout);
        enum rollout_kind kind = svc->rollout_kind;
        uint64_t now = now_realtime_usec();
        /* The record as it is, put back if the promotion cannot be written. */
        _cleanup_(state_service_freep) struct service_state *before = state_service_copy(ss);

        /* Who signed what runs is part of the instance's record. */
        free(ss->pending->artifact_key_id);
        free(ss->pending->artifact_comment);
        ss->pending->artifact_key_id = o->artifact_key_id ? xstrdup(o->artifact_key_id) : NULL;
        ss->pending->artifact_comment = o->artifact_comment ? xstrdup(o->artifact_comment) : NULL;
        /* The spec's watch window; a spec that liid wrote parses. */
        _cleanup_(service_spec_freep) struct service_spec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        uint64_t watch_usec = 0;
        if (service_spec_parse(svc->name, ss->pending->spec_json, &spec, &error) == 0)
                watch_usec = spec->health.watch_usec;

        /* With no current instance (a first deploy, or a service that came
         * back after a removal) the previous one stays what it was. */
        struct instance *retired = ss->current;
        _cleanup_(instance_freep) struct instance *same_spec = NULL;
        if (retired && strcmp(retired->spec_sha256, ss->pending->spec_sha256) == 0) {
                /* A replacement of the same spec: the revision before stays
                 * the previous one, for rollback and revert. */
                same_spec = retired;
        } else if (retired) {
                instance_free(ss->previous);
                ss->previous = retired;
        }
        ss->current = ss->pending;
        ss->pending = NULL;
        state_remember_artifact(ss, ss->current->artifact_sha256, e->cfg->keep_revisions);
        /* A rollback keeps the spec it left quarantined: that is the hold;
         * a revert keeps the spec that failed its watch quarantined. */
        if (kind == ROLLOUT_DESIRED)
                ss->refused_spec_sha256[0] = '\0';
        if (kind == ROLLOUT_REVERT)
                rollout_record_set(&ss->last_rollout, generation, LII_RESULT_REVERTED,
                                   svc->revert_reason, svc->rollout_started_usec, now);
        else
                rollout_record_set(&ss->last_rollout, generation, LII_RESULT_SUCCEEDED, NULL,
                                   svc->rollout_started_usec, now);
        /* A watch window needs something different to revert to. */
        bool watching = kind != ROLLOUT_REVERT && watch_usec > 0 && ss->previous &&
                        strcmp(ss->previous->spec_sha256, ss->current->spec_sha256) != 0;
        ss->watch_until_usec = watching ? now + watch_usec : 0;
        /* Nothing may be retired on the strength of a state that did not
         * reach the disk. The record goes back to naming the old instance
         * current and the new one pending, and both run on until the
         * promotion can be written. A restart meanwhile keeps whichever the
         * file names current and stops the other, so the service keeps a
         * healthy instance either way. */
        int r = engine_save_service(e, ss);
        if (r < 0) {
                state_service_swap(ss, before);
                log_svc(LOG_WARNING, svc->name, generation,
                        "Generation %llu passed its checks; its promotion waits until the state "
                        "folder takes writes",
                        (unsigned long long)generation);
                return r;
        }
        svc->state = LII_STATE_RUNNING;
        svc->current_alive = true;
        svc->healthy = true;
        svc->main_pid = svc->next_main_pid;
        svc->active_since_usec = svc->next_active_since_usec;
        if (!svc->rollout_restart)
                svc->restarts = 0;
        enum lii_result result =
            kind == ROLLOUT_REVERT ? LII_RESULT_REVERTED : LII_RESULT_SUCCEEDED;
        metrics_rollout(&e->metrics, result, now - svc->rollout_started_usec);
        events_emit(e->events,
                    result == LII_RESULT_REVERTED ? EVENT_ROLLOUT_REVERTED
                                                  : EVENT_ROLLOUT_SUCCEEDED,
                    svc->name, generation,
                    "generation %llu passed its checks and is now current (%llu ms)%s%s",
                    (unsigned long long)generation,
                    (unsigned long long)((now - svc->rollout_started_usec) / USEC_PER_MSEC),
                    svc->revert_reason ? "; reverted because " : "",
                    svc->revert_reason ? svc->revert_reason : "");

        if (retired && svc->slot_rollout)
                svc->slot_retiring = retired->generation;
        else if (svc->slot_rollout)
                engine_slot_release(svc);
        if (retired)
                engine_stop_unit(e, svc->name, retired->generation, retired->unit,
                                 engine_instance_listens(retired), STOP_RETIRED);
        if (watching)
                watch_begin(svc, rollout_take_env(svc->rollout), now_monotonic_usec() + watch_usec);
        rollout_ended(svc);
        return 0;
}

static int on_rollout_done(struct rollout *ro, const struct rollout_outcome *o, void *owner)
{
        struct service *svc = owner;
        svc->engine->metrics.bytes_downloaded += o->bytes_fetched;
        switch (o->result) {
        case ROLLOUT_PASSED:
                return rollout_passed(svc, o);
        case ROLLOUT_NO_ROOM:
                if (svc->engine->desired) {
                        const struct service_spec *want =
                            desired_find(svc->engine->desired, svc->name);
                        engine_storage_short(svc->engine, o->reason,
                                             want ? want->artifact_size : 0);
                } else {
                        engine_storage_short(svc->engine, o->reason, 0);
                }
                rollout_failed(svc, rollout_generation(ro), o->reason, false, o->started);
                return 0;
        case ROLLOUT_REFUSED:
                rollout_failed(svc, rollout_generation(ro), o->reason, true, o->started);
                return 0;
        }
        return 0;
}

static void on_rollout_progress(struct rollout *ro, enum lii_state state, void *owner)
{
        struct service *svc = owner;
        struct service_state *ss = state_get(svc->engine->state, svc->name);
        if (state == LII_STATE_STARTING && ss->pending)
                ss->pending->started_usec = now_realtime_usec();
        if (svc->rollout_kind != ROLLOUT_REVERT)
                svc->state = state;
}

int engine_rollout_start(struct service *svc, const struct service_spec *spec,
                         enum rollout_kind kind)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_get(e->state, svc->name);
        int port = spec->port;
        if (port == 0) {
                port = port_pick_free(e->state);
                if (port < 0) {
                        log_svc(LOG_ERR, svc->name, 0, "Cannot find a free port: %s",
                                strerror(-port));
                        return port;
                }
        }

        /* The generation is taken and the new instance recorded before
         * anything happens, so that after a crash the instance is known. */
        uint64_t generation = ++ss->last_generation;
        instance_free(ss->pending);
        ss->pending = instance_new(svc->name, generation, spec->spec_json, spec->spec_sha256,
                                   spec->artifact_sha256, port);
        int r = engine_save_service(e, ss);
        if (r < 0) {
                ss->pending = instance_free(ss->pending);
                return r;
        }

        bool restart = kind == ROLLOUT_DESIRED && ss->current && !svc->current_alive &&
                       strcmp(ss->current->spec_sha256, spec->spec_sha256) == 0;
        const struct rollout_params p = {
            .loop = e->loop,
            .curlm = e->curlm,
            .store = e->store,
            .host = &e->host,
            .events = e->events,
            .service = svc->name,
            .spec = spec,
            .generation = generation,
            .unit = ss->pending->unit,
            .port = port,
            .progress = on_rollout_progress,
            .done = on_rollout_done,
            .owner = svc,
        };
        engine_rollout_unwatch(svc);
        svc->rollout_kind = kind;
        svc->rollout_restart = restart;
        svc->rollout_started_usec = now_realtime_usec();
        svc->state = kind == ROLLOUT_REVERT ? LII_STATE_REVERTING : LII_STATE_FETCHING;
        svc->next_main_pid = 0;
        svc->next_active_since_usec = 0;
        e->running_rollouts++;
        events_emit(e->events, EVENT_ROLLOUT_STARTED, svc->name, generation,
                    "%s generation %llu (spec %.12s, artifact %.12s)",
                    kind == ROLLOUT_ROLLBACK ? "rolling back with"
                    : kind == ROLLOUT_REVERT ? "reverting with"
                    : restart                ? "replacing the dead instance with"
                                             : "rolling out",
                    (unsigned long long)generation, spec->spec_sha256, spec->artifact_sha256);
        r = rollout_start(&p, &svc->rollout);
        if (r < 0) {
                /* A rollout that could not even begin fails like any other,
                 * with the pending instance it recorded. */
                svc->rollout = NULL;
                _cleanup_free_ char *msg = xasprintf("cannot fetch the artifact: %s", strerror(-r));
                rollout_failed(svc, generation, msg, true, false);
        }
        return 0;
}
