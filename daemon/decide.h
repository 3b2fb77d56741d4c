/* The engine's rules as pure functions, so that every rule can be tested on
 * its own: the reconcile decision for one service (what is wanted against
 * what runs), and what a rollout's failure means. */
#pragma once

#include <stdbool.h>

struct decide_input {
        bool have_document;        /* a desired-state document has been accepted */
        const char *want_spec;     /* its spec SHA-256 for the service; NULL when absent */
        const char *current_spec;  /* the promoted instance's spec; NULL when none */
        const char *previous_spec; /* the revision before it; NULL when none */
        bool current_alive;        /* systemd reports it active */
        const char *refused_spec;  /* the quarantined spec; "" or NULL when none */
        bool rollout_in_flight;
        bool removing;        /* a stop for removal is under way */
        bool retiring;        /* the generation before the current one is still stopping */
        bool backoff_pending; /* a dead instance's replacement waits for its delay */
        bool paused;          /* an operator holds new rollouts and removals */
        bool storage_failing; /* the state folder takes no writes (storage.h) */
        bool force;           /* an operator asked for a fresh instance (replace) */
        unsigned running_rollouts, max_parallel;
};

enum decision {
        DECIDE_WAIT,    /* something is under way; look again when it ends */
        DECIDE_NOTHING, /* nothing runs and nothing is wanted */
        DECIDE_RUNNING, /* the current instance runs the wanted spec */
        DECIDE_REFUSED, /* the wanted spec was refused: not retried until it changes */
        DECIDE_QUEUE,   /* a rollout is due but max_parallel are running */
        DECIDE_ROLLOUT, /* start a rollout of the wanted spec */
        DECIDE_RESTORE, /* no document yet and the current instance died: start its spec again */
        DECIDE_REMOVE,  /* the document no longer lists the service: stop it */
        DECIDE_PAUSED,  /* a change is due, but an operator paused rollouts */
        DECIDE_REVERT,  /* the current spec refused, its instance dead: the previous revision */
        DECIDE_STORAGE, /* a change is due, but the state folder takes no writes */
};

enum decision decide(const struct decide_input *in);
const char *decision_to_string(enum decision d);

enum rollout_kind {
        ROLLOUT_DESIRED,  /* towards the desired spec (or a dead instance's own) */
        ROLLOUT_ROLLBACK, /* an operator's rollback to the previous revision */
        ROLLOUT_REVERT,   /* back to the previous revision after a failed watch */
};

struct failure_input {
        enum rollout_kind kind;
        bool spec_at_fault;  /* false when it ran out of room in the state folder */
        bool replacing_dead; /* it replaced a dead current instance with the same spec */
        bool restarts_left;  /* the dead instance's replacements are not used up */
        bool held;           /* an operator's rollback holds the service */
};

struct failure_rules {
        bool verdict;      /* a verdict on the spec (else: tried again once there is room) */
        bool retry_later;  /* replace the dead instance again after the restart delay */
        bool quarantine;   /* refuse this spec until the desired spec changes or replace */
        bool release_hold; /* a failed rollback leaves the service no longer held */
        bool revert_later; /* a revert still due, once the state folder takes writes */
};

/* What a rollout that did not promote its instance means. */
struct failure_rules decide_failure(const struct failure_input *in);
