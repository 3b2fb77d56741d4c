/* The reconcile decision for one service, as a pure function of what is
 * wanted and what runs, so that every rule can be tested on its own. */
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
        bool removing;             /* a stop for removal is under way */
        bool backoff_pending;      /* a dead instance's replacement waits for its delay */
        bool paused;               /* an operator holds new rollouts and removals */
        bool storage_failing;      /* the state folder takes no writes (storage.h) */
        bool force;                /* an operator asked for a fresh instance (replace) */
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
