/* One rollout of one service, steps 1–3 of the brief, as a leaf: fetch and
 * verify the artifact, start the new instance beside the old one, probe it
 * until it passes, and report one outcome to its owner. A rollout records
 * nothing and stops nothing: its owner (the engine) decides what an outcome
 * means (the promotion and the retirement of the old instance, quarantine,
 * backoff, metrics, the next reconcile) and stops a refused instance. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "curlm.h"
#include "desired.h"
#include "events.h"
#include "instance.h"
#include "lii-proto.h"
#include "store.h"
#include "systemd.h"

struct rollout;

enum rollout_result {
        ROLLOUT_PASSED,  /* the new instance passed its checks */
        ROLLOUT_REFUSED, /* the spec failed: its artifact, its start or its checks */
        ROLLOUT_NO_ROOM, /* the download or unpacking ran out of room: no verdict on the spec */
};

struct rollout_outcome {
        enum rollout_result result;
        const char *reason;     /* ROLLOUT_REFUSED, ROLLOUT_NO_ROOM */
        bool started;           /* a unit was started: a refused one is the owner's to stop */
        uint64_t bytes_fetched; /* downloaded for it, 0 when the store had the artifact */
        /* ROLLOUT_PASSED: who signed the artifact, and the instance's
         * environment, which the owner may take (rollout_take_env()). */
        const char *artifact_key_id, *artifact_comment;
};

/* The outcome, reported once. For ROLLOUT_PASSED the owner returns 0 once
 * it has recorded the promotion, or a negative errno when it could not: the
 * rollout then waits, still watching its unit, and reports again on
 * rollout_resume() (or ROLLOUT_REFUSED if the unit ends meanwhile). After
 * any other outcome, or a 0, the rollout has nothing left to do and the
 * owner frees it, within the callback or later. */
typedef int (*rollout_done_cb)(struct rollout *ro, const struct rollout_outcome *o, void *owner);
/* The rollout moved on: LII_STATE_STARTING (its unit is being started) or
 * LII_STATE_CHECKING (the unit is active and is being probed). */
typedef void (*rollout_progress_cb)(struct rollout *ro, enum lii_state state, void *owner);

struct rollout_params {
        uv_loop_t *loop;
        struct curlm *curlm;
        struct store *store;
        struct instance_host *host; /* its systemd must stay for the rollout's life */
        struct events *events;
        const char *service;
        const struct service_spec *spec; /* copied */
        uint64_t generation;
        const char *unit;
        int port;
        rollout_progress_cb progress;
        rollout_done_cb done;
        void *owner;
};

/* Starts fetching. On success the callbacks come from the loop, never from
 * within this call; on failure (a negative errno) none comes. */
int rollout_start(const struct rollout_params *p, struct rollout **ret);
/* Accepts NULL. Cancels what is in flight; no callback comes after this. A
 * started unit is left as it is. */
struct rollout *rollout_free(struct rollout *ro);
/* Unit changes of the rollout's new instance. */
void rollout_on_unit(struct rollout *ro, const struct unit_status *st);
/* Reports ROLLOUT_PASSED again when it is waiting for its owner to record
 * it; does nothing otherwise. */
void rollout_resume(struct rollout *ro);
/* Hands the instance's environment to the caller (after ROLLOUT_PASSED), or
 * NULL when there is none. */
struct instance_env *rollout_take_env(struct rollout *ro);
uint64_t rollout_generation(const struct rollout *ro);
