/* What engine.c (reconciling, adoption, status, the API's actions) and
 * engine-rollout.c (starting rollouts, applying their outcomes, watch
 * windows and reverts) share. Nothing else includes it: rollout.c and
 * instance.c are leaves that know nothing of the engine. */
#pragma once

#include "canary.h"
#include "config.h"
#include "curlm.h"
#include "decide.h"
#include "desired.h"
#include "etcd-client.h"
#include "fleet.h"
#include "engine.h"
#include "health.h"
#include "instance.h"
#include "events.h"
#include "lii-proto.h"
#include "metrics.h"
#include "minisign.h"
#include "rollout.h"
#include "sha256.h"
#include "state.h"
#include "storage.h"
#include "store.h"
#include "systemd.h"

/* A service as liid runs it now; its persistent half is state_find(name). */
struct service {
        struct engine *engine;
        char *name;
        enum lii_state state;
        bool current_alive; /* systemd reports the current unit active */
        bool healthy;
        uint32_t main_pid;
        uint64_t active_since_usec;
        uint32_t next_main_pid; /* the same two of the instance being rolled out */
        uint64_t next_active_since_usec;
        struct rollout *rollout; /* at most one in flight, and what it is for: */
        enum rollout_kind rollout_kind;
        bool rollout_restart;          /* replaces a dead current instance with its own spec */
        uint64_t rollout_started_usec; /* realtime, for the record */
        char *revert_reason;           /* ROLLOUT_REVERT: why the reverted instance failed */
        char *revert_cause;            /* ... as engine_rollout_revert() was told it */
        bool removing;                 /* absent from the desired state: being stopped */
        unsigned retiring;             /* retired generations whose stop is under way */
        bool forgotten;                /* no longer in engine->services; freed once closed */
        bool adopting;                 /* found at start-up; systemd has not said how it is yet */
        /* A current instance that died is replaced after a delay that
         * doubles with each death in a row, up to RESTART_DELAY_MAX. */
        uv_timer_t backoff_timer;
        bool backoff_pending;
        unsigned restarts;
        bool force;                 /* an operator asked for a fresh instance of the desired spec */
        struct health_check *watch; /* the watch window after a promotion */
        struct instance_env *watch_env;
        /* Why the current instance is to be reverted, when that could not
         * start for want of a writable state folder: it starts once the
         * folder takes writes again. */
        char *revert_later;
        /* The fleet rollout's verdict on this node, while the desired spec
         * has a rollout block (canary.h). */
        struct {
                bool set;
                char id[ROLLOUT_ID_MAX + 1];
                unsigned percent_hundredths, bucket;
                struct canary_verdict verdict;
                bool slot; /* the verdict came with a replacement slot held */
        } canary;
        /* A replacement slot in etcd (fleet mode): asked for since it was
         * last released; held by the rollout in flight, which started
         * generation slot_generation and, once promoted, gives the slot
         * back when slot_retiring (the generation it retires) is stopped. */
        bool slot_wanted, slot_rollout;
        uint64_t slot_generation, slot_retiring;
};

/* Replacing a dead instance: the first after 1 s, doubling up to 5 min;
 * after RESTART_LIMIT failed replacements in a row the spec is refused like
 * a failed rollout. An instance that lived longer than the longest delay
 * starts the count afresh. */
#define RESTART_DELAY_FIRST_USEC USEC_PER_SEC
#define RESTART_DELAY_MAX_USEC   (300 * USEC_PER_SEC)
#define RESTART_LIMIT            10

/* Why liid stops a unit, which decides what happens when it is gone. */
enum stop_kind {
        STOP_RETIRED,  /* the instance a successful rollout replaced */
        STOP_REFUSED,  /* a new instance that failed its rollout */
        STOP_REMOVED,  /* the service left the desired state */
        STOP_LEFTOVER, /* found at start-up, belongs to nothing */
};
struct stop;
struct exec_probe;

struct engine {
        uv_loop_t *loop;
        const struct config *cfg;
        char *node_name;
        struct state *state;
        struct systemd *systemd;
        struct store *store;
        struct curlm *curlm;
        struct source *source;
        struct etcd_client *etcd; /* etcd(s):// sources: the one connection to etcd */
        struct fleet *fleet;      /* etcd(s):// sources: the node in etcd (fleet.h) */
        struct api *api;
        struct events *events;
        struct storage *storage;
        /* A download failed for lack of room: changes wait until the state
         * folder has this much free, as well as taking writes. */
        uint64_t storage_need_bytes;
        /* A document could not be recorded: it is fetched again (not
         * answered by a 304) once the state folder takes writes. */
        bool refetch_document;
        struct metrics metrics;
        struct minisign_keyring *desired_keys;
        struct minisign_keyring *artifact_keys;

        struct desired *desired; /* the last accepted document; NULL before one */
        char *source_error;      /* why the last fetch was refused; NULL when fine */
        char source_refused_id[SHA256_HEX_LEN + 1]; /* the refused document behind it, or "" */
        /* The serial of the refused document source_error is about, so that
         * a publisher waiting for its own serial hears that it was refused;
         * -1 when the error is not about a document whose serial is known
         * (a failed fetch, or a signature that does not verify: then the
         * serial is anyone's claim). */
        int64_t refused_serial;
        uint64_t fetched_at_usec;
        char *desired_key_id, *desired_comment; /* who signed the accepted document */

        struct service **services;
        size_t n_services;
        unsigned running_rollouts;
        bool adopted; /* the units found at start-up have been sorted out */
        unsigned n_adopting;
        bool stopping;
        bool failed;                /* a fatal error stopped the loop */
        struct stop *stops;         /* stop jobs in flight, freed with the engine */
        struct instance_host host;  /* systemd (a copy of the pointer above) for instances */
        uv_timer_t reconnect_timer; /* after losing systemd */
        uv_timer_t reconcile_timer; /* engine_reconcile_soon() */
        bool reconcile_due;
        bool has_timers; /* initialised: the engine is freed when both close */
        unsigned closed_timers;
        uint64_t reconnect_delay_usec;
};

/* The service of that name, made when missing. */
struct service *engine_service(struct engine *e, const char *name);
/* The service of that name, or NULL. */
struct service *engine_find_service(struct engine *e, const char *name);
/* Drops a pending restart of a dead instance. */
void engine_cancel_backoff(struct service *svc);
/* Persist the node's part of the state, or one service's. A failure is
 * logged, counted and raises the storage condition (storage.c), which
 * holds every change until the state folder takes writes again; the file
 * is marked unsaved, to be rewritten whole then. The caller does not carry
 * out the transition it was recording: it undoes it in memory, or keeps it
 * there when it is only a record of what already happened. */
int engine_save_node(struct engine *e);
int engine_save_service(struct engine *e, struct service_state *ss);
/* A download or an unpacking into the store failed for lack of room:
 * raises the storage condition, and changes wait until the folder has
 * need_bytes free. */
void engine_storage_short(struct engine *e, const char *error, uint64_t need_bytes);
void engine_fail(struct engine *e);
/* Stops a unit and acts on the outcome as kind says; with sockets, its
 * socket unit first (an instance of a service that lists addresses). */
void engine_stop_unit(struct engine *e, const char *service, uint64_t generation, const char *unit,
                      bool sockets, enum stop_kind kind);
/* Whether the instance runs a spec that lists addresses, so that it has a
 * socket unit to stop before it. */
bool engine_instance_listens(const struct instance *i);
/* Schedules a reconcile of svc after its restart backoff. Returns false
 * when the restart limit (svc->restarts reaching RESTART_LIMIT) is reached. */
bool engine_schedule_restart(struct service *svc);
/* Removes from the store every artifact that no service references: not
 * its current, previous or pending instance, not its desired spec, and not
 * among its keep_revisions latest promoted revisions. */
void engine_collect(struct engine *e);
/* Looks at every service and starts what has to change, on the next turn
 * of the loop: never from inside the caller. */
void engine_reconcile_soon(struct engine *e);

/* engine-rollout.c. Starts a rollout of spec: takes the next generation
 * and records the new instance as pending before anything happens. A
 * negative errno when nothing could start (then nothing was recorded). */
int engine_rollout_start(struct service *svc, const struct service_spec *spec,
                         enum rollout_kind kind);
/* Step 5: a promoted instance that fails its watch window is replaced by a
 * fresh instance of the previous spec; its own spec is quarantined. */
void engine_rollout_revert(struct service *svc, const char *reason);
/* After a restart or a reconnect: watches on for what is left of the
 * current instance's watch window, if any. */
void engine_rollout_rewatch(struct service *svc);
/* After a restart or a reconnect: starts again a revert or an operator's
 * rollback that it cut short, which the record shows (see there). */
void engine_rollout_finish_cut_short(struct service *svc);
/* Ends a watch window early (a new rollout, a removal, shutdown). */
void engine_rollout_unwatch(struct service *svc);
/* Abandons the service's rollout (liid shuts down or lost systemd): the new
 * instance is left to the next adoption, which stops it (it is recorded as
 * pending). */
void engine_rollout_abandon(struct service *svc);

/* engine-api.c: what the API asks of the engine. */
extern const struct api_ops engine_api_ops;
/* Gives the service's replacement slot back to the fleet (fleet mode),
 * when it asked for one. */
void engine_slot_release(struct service *svc);
/* Tells the fleet that this node failed the service's rollout (its
 * rollout block's id), when the spec that failed is the desired one. */
void engine_fleet_failed(struct service *svc, const char *spec_sha256, const char *reason);
/* The node's compact status for etcd (fleet mode): a fleet_status_cb. */
json_object *engine_fleet_status(void *userdata);
/* The desired max_failures of a service's rollout, 0 for none: a
 * fleet_max_failures_cb (GET /v1/fleet's "halted"). */
unsigned engine_fleet_max_failures(void *userdata, const char *service);
