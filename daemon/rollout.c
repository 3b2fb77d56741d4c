/* One rollout of one service, steps 1–4 of the brief:
 *   fetch and verify the artifact → start generation N+1 beside the old one
 *   → probe until it passes → commit (state file) → retire the old one.
 * A failure at any step stops only the new instance; the old one is never
 * touched, and the refused spec is quarantined until the desired spec
 * changes. Every transition is persisted before its side effect. */
#include <malloc.h>
#include <string.h>

#include "engine-internal.h"
#include "exit-status.h"
#include "instance.h"
#include "journal.h"
#include "log.h"
#include "port.h"

/* PHASE_COMMIT: passed; its promotion waits for a state folder that takes
 * writes. PHASE_EXPLAIN: the new unit ended before it passed; its last
 * output is being read from the journal for the reason. */
enum phase {
        PHASE_FETCH,
        PHASE_START,
        PHASE_CHECK,
        PHASE_COMMIT,
        PHASE_EXPLAIN,
};

struct rollout {
        struct service *svc;
        struct service_spec *spec;
        enum phase phase;
        struct store_job *job;
        struct health_check *health;
        uint64_t started_usec;    /* realtime, for the record */
        uint64_t start_mono_usec; /* when the unit was started: the deadline counts from it */
        char *artifact_root;
        uint64_t generation;
        char *unit;
        bool restart; /* replaces a dead current instance with the same spec */
        enum rollout_kind kind;
        struct unit_status unit_status; /* the last word of systemd on the new unit */
        bool have_unit_status;
        char *revert_reason; /* ROLLOUT_REVERT: why the reverted instance failed */
        char *revert_cause;  /* … as rollout_revert() was told, to tell it again */
        struct instance_env *env; /* set once the artifact is unpacked */
        struct journal_tail *tail; /* PHASE_EXPLAIN */
        char *explained;           /* PHASE_EXPLAIN: the reason without the output */
};

static struct service_state *rollout_state(struct rollout *ro)
{
        return state_get(ro->svc->engine->state, ro->svc->name);
}

uint64_t rollout_generation(const struct rollout *ro)
{
        return ro->generation;
}

static void rollout_free(struct rollout *ro)
{
        if (!ro)
                return;
        if (ro->job)
                store_job_cancel(ro->job);
        health_check_cancel(ro->health);
        journal_tail_cancel(ro->tail);
        free(ro->explained);
        instance_env_free(ro->env);
        service_spec_free(ro->spec);
        free(ro->artifact_root);
        free(ro->revert_reason);
        free(ro->revert_cause);
        free(ro->unit);
        free(ro);
}

/* Ends the rollout's life in the service; the caller has recorded the
 * outcome. The store is swept once the last rollout running has ended,
 * not after each of a batch (a sweep walks every service and the store),
 * and the heap that the batch's downloads and probes used goes back to the
 * system then, so that an idle liid is as small as it can be. */
static void rollout_detach(struct rollout *ro)
{
        struct service *svc = ro->svc;
        struct engine *e = svc->engine;
        svc->rollout = NULL;
        e->running_rollouts--;
        rollout_free(ro);
        if (e->running_rollouts == 0) {
                engine_collect(e);
                malloc_trim(0);
        }
        engine_reconcile_soon(e);
}

void rollout_abandon(struct rollout *ro)
{
        ro->svc->rollout = NULL;
        ro->svc->engine->running_rollouts--;
        rollout_free(ro);
}

/* Ends a rollout that did not promote its instance. A failure is a verdict
 * on the spec, which is quarantined, unless the service's current instance
 * had died and this was its replacement with the same spec: that is tried
 * again after the restart delay, and refused only when the replacements
 * run out. A failure for want of room in the state folder is no verdict:
 * the spec is tried again once the folder takes writes (an operator's
 * rollback is one attempt, and fails either way). */
static void rollout_end_failed(struct rollout *ro, const char *reason, bool spec_at_fault)
{
        struct service *svc = ro->svc;
        struct engine *e = svc->engine;
        struct service_state *ss = rollout_state(ro);
        bool started = ro->phase != PHASE_FETCH;
        bool verdict = spec_at_fault || ro->kind == ROLLOUT_ROLLBACK;

        uint64_t now = now_realtime_usec();
        if (verdict)
                events_emit(e->events, EVENT_ROLLOUT_FAILED, svc->name, ro->generation,
                            "generation %llu refused: %s", (unsigned long long)ro->generation,
                            reason);
        else
                events_emit(e->events, EVENT_ROLLOUT_FAILED, svc->name, ro->generation,
                            "generation %llu failed: %s; its spec is tried again once the state "
                            "folder has room",
                            (unsigned long long)ro->generation, reason);
        metrics_rollout(&e->metrics, LII_RESULT_FAILED, now - ro->started_usec);
        /* A hold keeps its own refusal (the spec the operator left). */
        bool retry = verdict && ro->restart && engine_schedule_restart(svc);
        if (verdict && !retry && !ss->held)
                snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256, "%s",
                         ro->spec->spec_sha256);
        /* A rollback that fails leaves the service where it was, no longer
         * held; the revision it tried is what is quarantined now. */
        if (ro->kind == ROLLOUT_ROLLBACK)
                ss->held = false;
        /* A revert is still due; a dead instance would bring it back by
         * itself (decide.c), a live one that failed its watch would not. */
        if (!verdict && ro->kind == ROLLOUT_REVERT) {
                free(svc->revert_later);
                svc->revert_later = TAKE_PTR(ro->revert_cause);
        }
        rollout_record_set(&ss->last_rollout, ro->generation, LII_RESULT_FAILED, reason,
                           ro->started_usec, now);
        if (!started)
                ss->pending = instance_free(ss->pending);
        /* The new instance goes even when this record cannot be written:
         * every record of this rollout names it pending, which a restart
         * stops too. (Only a promotion that could not be written may have
         * reached the file after all, a rename done before a failed sync of
         * the folder; a rollout fails from PHASE_COMMIT only once its
         * instance has exited.) */
        engine_save_service(e, ss);
        svc->state = LII_STATE_FAILED;
        if (started)
                engine_stop_unit(e, svc->name, ro->generation, ro->unit, STOP_REFUSED);
        rollout_detach(ro);
}

static void rollout_fail(struct rollout *ro, const char *reason)
{
        rollout_end_failed(ro, reason, true);
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
        _cleanup_free_ char *msg = xasprintf("failed its watch window: %s", reason);
        rollout_revert(svc, msg);
}

/* The window counts from the promotion; the probes are the same as the
 * rollout's, and so is the target. */
/* Watches the current instance until until_mono_usec; env becomes the
 * service's (the window outlives any rollout). */
static void watch_begin(struct service *svc, struct instance_env *env, uint64_t until_mono_usec)
{
        struct engine *e = svc->engine;
        rollout_unwatch(svc);
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

static void watch_start(struct rollout *ro)
{
        watch_begin(ro->svc, TAKE_PTR(ro->env), now_monotonic_usec() + ro->spec->health.watch_usec);
}

void rollout_rewatch(struct service *svc)
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

void rollout_unwatch(struct service *svc)
{
        health_check_cancel(svc->watch);
        svc->watch = NULL;
        svc->watch_env = instance_env_free(svc->watch_env);
}

void rollout_revert(struct service *svc, const char *reason)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_find(e->state, svc->name);
        rollout_unwatch(svc);
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
        _cleanup_free_ char *why = xasprintf("generation %llu %s",
                                             (unsigned long long)ss->current->generation, reason);
        snprintf(ss->refused_spec_sha256, sizeof ss->refused_spec_sha256, "%s",
                 ss->current->spec_sha256);
        rollout_record_set(&ss->last_rollout, ss->current->generation, LII_RESULT_FAILED, why,
                           now_realtime_usec(), 0);
        int r = engine_save_service(e, ss);
        if (r == 0)
                r = rollout_start(svc, spec, ROLLOUT_REVERT);
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
        if (svc->rollout) {
                svc->rollout->revert_reason = TAKE_PTR(why);
                svc->rollout->revert_cause = xstrdup(reason);
        }
}

/* Step 4: the new instance passed. The state file says so before the old
 * instance is stopped, so a crash in between leaves the new one current and
 * the old one an orphan that start-up stops. */
static void rollout_commit(struct rollout *ro)
{
        struct service *svc = ro->svc;
        struct engine *e = svc->engine;
        struct service_state *ss = rollout_state(ro);
        uint64_t now = now_realtime_usec();
        /* The record as it is, put back if the promotion cannot be written. */
        _cleanup_(state_service_freep) struct service_state *before = state_service_copy(ss);

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
        if (ro->kind == ROLLOUT_DESIRED)
                ss->refused_spec_sha256[0] = '\0';
        if (ro->kind == ROLLOUT_REVERT)
                rollout_record_set(&ss->last_rollout, ro->generation, LII_RESULT_REVERTED,
                                   ro->revert_reason, ro->started_usec, now);
        else
                rollout_record_set(&ss->last_rollout, ro->generation, LII_RESULT_SUCCEEDED, NULL,
                                   ro->started_usec, now);
        /* A watch window needs something different to revert to. */
        bool watching = ro->kind != ROLLOUT_REVERT && ro->spec->health.watch_usec > 0 &&
                        ss->previous &&
                        strcmp(ss->previous->spec_sha256, ss->current->spec_sha256) != 0;
        ss->watch_until_usec = watching ? now + ro->spec->health.watch_usec : 0;
        /* Nothing may be retired on the strength of a state that did not
         * reach the disk. The record goes back to naming the old instance
         * current and the new one pending, and both run on until the
         * promotion can be written (rollout_resume()). A restart meanwhile
         * keeps whichever the file names current and stops the other, so
         * the service keeps a healthy instance either way. */
        if (engine_save_service(e, ss) < 0) {
                state_service_swap(ss, before);
                ro->phase = PHASE_COMMIT;
                log_svc(LOG_WARNING, svc->name, ro->generation,
                        "Generation %llu passed its checks; its promotion waits until the state "
                        "folder takes writes",
                        (unsigned long long)ro->generation);
                return;
        }
        svc->state = LII_STATE_RUNNING;
        svc->current_alive = true;
        svc->healthy = true;
        svc->main_pid = svc->next_main_pid;
        svc->active_since_usec = svc->next_active_since_usec;
        if (!ro->restart)
                svc->restarts = 0;
        enum lii_result result =
                ro->kind == ROLLOUT_REVERT ? LII_RESULT_REVERTED : LII_RESULT_SUCCEEDED;
        metrics_rollout(&e->metrics, result, now - ro->started_usec);
        events_emit(e->events,
                    result == LII_RESULT_REVERTED ? EVENT_ROLLOUT_REVERTED : EVENT_ROLLOUT_SUCCEEDED,
                    svc->name, ro->generation,
                    "generation %llu passed its checks and is now current (%llu ms)%s%s",
                    (unsigned long long)ro->generation,
                    (unsigned long long)((now - ro->started_usec) / USEC_PER_MSEC),
                    ro->revert_reason ? "; reverted because " : "",
                    ro->revert_reason ? ro->revert_reason : "");

        if (retired)
                engine_stop_unit(e, svc->name, retired->generation, retired->unit, STOP_RETIRED);
        if (watching)
                watch_start(ro);
        rollout_detach(ro);
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
        rollout_fail(ro, msg);
}

/* The new unit ended before it passed: the reason says how, and quotes
 * what the instance last wrote where a journal has it. */
static void rollout_fail_quoting(struct rollout *ro, const char *reason)
{
        health_check_cancel(ro->health);
        ro->health = NULL;
        ro->phase = PHASE_EXPLAIN;
        ro->explained = xstrdup(reason);
        uv_loop_t *loop = ro->svc->engine->loop;
        if (journal_tail_start(loop, ro->unit, ro->started_usec, 3, on_last_words, ro, &ro->tail) <
            0)
                rollout_fail(ro, reason);
}

static void on_health_done(struct health_check *h, bool ok, const char *reason, void *userdata)
{
        struct rollout *ro = userdata;
        ro->health = NULL;
        if (ok) {
                rollout_commit(ro);
                return;
        }
        _cleanup_free_ char *msg = xasprintf("health check failed: %s", reason);
        rollout_fail(ro, msg);
}

static void on_started(struct systemd *m, int r, const char *result, void *userdata)
{
        struct rollout *ro = userdata;
        struct service *svc = ro->svc;
        struct engine *e = svc->engine;
        /* Losing systemd says nothing about the spec: liid exits, and the
         * next start stops the half-started unit and tries again. */
        if (r == -ENOTCONN || e->failed) {
                rollout_abandon(ro);
                return;
        }
        if (r < 0) {
                /* systemd reports the unit's end before the job's, so the
                 * reason can say how the process ended, not only "failed". */
                _cleanup_free_ char *how =
                    ro->have_unit_status ? exit_status_describe(&ro->unit_status)
                                         : xasprintf("job %s", result ? result : strerror(-r));
                _cleanup_free_ char *msg = xasprintf("systemd did not start %s: %s", ro->unit, how);
                rollout_fail_quoting(ro, msg);
                return;
        }
        ro->phase = PHASE_CHECK;
        if (ro->kind != ROLLOUT_REVERT)
                svc->state = LII_STATE_CHECKING;
        events_emit(e->events, EVENT_INSTANCE_STARTED, svc->name, ro->generation,
                    "%s is active; checking its health", ro->unit);
        _cleanup_free_ char *target = instance_env_health_target(ro->env);
        r = health_check_start(e->loop, e->curlm, &ro->spec->health, target, &ro->env->exec,
                               ro->start_mono_usec + ro->spec->health.deadline_usec,
                               on_health_done, ro, &ro->health);
        if (r < 0) {
                _cleanup_free_ char *msg =
                        xasprintf("cannot run the health check: %s", strerror(-r));
                rollout_fail(ro, msg);
        }
}

void rollout_resume(struct rollout *ro)
{
        if (ro->phase == PHASE_COMMIT)
                rollout_commit(ro);
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
        if (!st->loaded || (strcmp(st->active_state, "failed") != 0 &&
                            strcmp(st->active_state, "inactive") != 0))
                return;
        const char *when = ro->phase == PHASE_COMMIT ? "before its promotion could be recorded"
                                                     : "before passing its checks";
        _cleanup_free_ char *how = exit_status_describe(st);
        _cleanup_free_ char *msg = xasprintf("%s ended %s: %s", ro->unit, when, how);
        rollout_fail_quoting(ro, msg);
}

static int start_unit(struct rollout *ro)
{
        struct engine *e = ro->svc->engine;
        struct service_state *ss = rollout_state(ro);
        ro->env = instance_env_new(&e->host, ro->svc->name, ro->generation, ss->pending->port,
                                   ro->artifact_root, ro->spec);
        if (!ro->env)
                return -EINVAL;
        int r = systemd_watch_unit(e->systemd, ro->unit);
        if (r < 0)
                return r;
        ro->start_mono_usec = now_monotonic_usec();
        ss->pending->started_usec = now_realtime_usec();
        return instance_env_start(ro->env, ro->unit, on_started, ro);
}

static void on_fetched(const struct store_result *res, void *userdata)
{
        struct rollout *ro = userdata;
        ro->job = NULL;
        if (res->r < 0) {
                const char *reason = res->error ? res->error : "artifact could not be fetched";
                if (engine_storage_full(res->r)) {
                        engine_storage_short(ro->svc->engine, reason, ro->spec->artifact_size);
                        rollout_end_failed(ro, reason, false);
                        return;
                }
                rollout_fail(ro, reason);
                return;
        }
        ro->artifact_root = xstrdup(res->root);
        ro->svc->engine->metrics.bytes_downloaded += res->bytes_fetched;
        /* Who signed what runs is part of the instance's record. */
        struct service_state *ss = rollout_state(ro);
        ss->pending->artifact_key_id = res->key_id ? xstrdup(res->key_id) : NULL;
        ss->pending->artifact_comment = res->trusted_comment ? xstrdup(res->trusted_comment) : NULL;
        ro->phase = PHASE_START;
        if (ro->kind != ROLLOUT_REVERT)
                ro->svc->state = LII_STATE_STARTING;
        int r = start_unit(ro);
        if (r < 0) {
                _cleanup_free_ char *msg =
                        xasprintf("cannot ask systemd to start %s: %s", ro->unit, strerror(-r));
                rollout_fail(ro, msg);
        }
}

int rollout_start(struct service *svc, const struct service_spec *spec, enum rollout_kind kind)
{
        struct engine *e = svc->engine;
        struct service_state *ss = state_get(e->state, svc->name);
        _cleanup_free_ char *error = NULL;

        struct rollout *ro = xcalloc(1, sizeof *ro);
        ro->svc = svc;
        ro->phase = PHASE_FETCH;
        ro->started_usec = now_realtime_usec();
        int r = service_spec_parse(spec->name, spec->spec_json, &ro->spec, &error);
        if (r < 0) {
                log_svc(LOG_ERR, svc->name, 0, "Cannot copy the spec: %s", error);
                free(ro);
                return r;
        }
        int port = spec->port;
        if (port == 0) {
                port = port_pick_free(e->state);
                if (port < 0) {
                        log_svc(LOG_ERR, svc->name, 0, "Cannot find a free port: %s",
                                strerror(-port));
                        rollout_free(ro);
                        return port;
                }
        }

        /* The generation is taken and the new instance recorded before
         * anything happens, so that after a crash the instance is known. */
        ro->generation = ++ss->last_generation;
        instance_free(ss->pending);
        ss->pending = instance_new(svc->name, ro->generation, spec->spec_json, spec->spec_sha256,
                                   spec->artifact_sha256, port);
        ro->unit = xstrdup(ss->pending->unit);
        r = engine_save_service(e, ss);
        if (r < 0) {
                ss->pending = instance_free(ss->pending);
                rollout_free(ro);
                return r;
        }

        ro->kind = kind;
        ro->restart = kind == ROLLOUT_DESIRED && ss->current && !svc->current_alive &&
                      strcmp(ss->current->spec_sha256, spec->spec_sha256) == 0;
        svc->rollout = ro;
        svc->state = kind == ROLLOUT_REVERT ? LII_STATE_REVERTING : LII_STATE_FETCHING;
        rollout_unwatch(svc);
        svc->next_main_pid = 0;
        svc->next_active_since_usec = 0;
        e->running_rollouts++;
        events_emit(e->events, EVENT_ROLLOUT_STARTED, svc->name, ro->generation,
                    "%s generation %llu (spec %.12s, artifact %.12s)",
                    kind == ROLLOUT_ROLLBACK ? "rolling back with"
                    : kind == ROLLOUT_REVERT ? "reverting with"
                    : ro->restart           ? "replacing the dead instance with"
                                            : "rolling out",
                    (unsigned long long)ro->generation, spec->spec_sha256, spec->artifact_sha256);
        r = store_ensure(e->store, ro->spec, on_fetched, ro, &ro->job);
        if (r < 0) {
                _cleanup_free_ char *msg = xasprintf("cannot fetch the artifact: %s", strerror(-r));
                rollout_fail(ro, msg);
        }
        return 0;
}
