/* A fleet rollout's rules as pure functions: which nodes are in a canary
 * (a bucket per node, service and rollout id) and whether this node may
 * take a new spec now, or is held back and why. The engine feeds them what
 * it knows (the document's rollout block, what runs, the fleet's slots and
 * failures) and acts on the verdict; see the design brief's "Fleet mode on
 * etcd". */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define CANARY_BUCKETS 10000u

/* The first 8 bytes of SHA-256(node NUL service NUL id) as a big-endian
 * integer, mod CANARY_BUCKETS. The same on every node and in every
 * version: it decides who is in a canary of a given percentage. */
unsigned canary_bucket(const char *node, const char *service, const char *id);

enum canary_state {
        CANARY_APPLIED,          /* the node takes (or has) the new spec */
        CANARY_OUTSIDE,          /* its bucket is beyond the percentage */
        CANARY_WAITING_FOR_SLOT, /* max_parallel other nodes are replacing it */
        CANARY_HALTED,           /* max_failures nodes failed this rollout */
};

/* "applied", "outside-canary", "waiting-for-slot", "halted" (contract). */
const char *canary_state_to_string(enum canary_state s);

struct canary_input {
        unsigned bucket;             /* canary_bucket() of this node */
        unsigned percent_hundredths; /* the rollout's percentage × 100 */
        unsigned max_parallel;       /* 0: no limit */
        unsigned max_failures;       /* 0: no limit */
        bool runs_spec;              /* the node runs the service at all */
        bool new_spec;               /* what it runs is not the desired spec */
        bool failed_here;            /* the desired spec failed on this node (quarantined) */
        bool fleet;                  /* the source is etcd: slots and failures are known */
        unsigned failures;           /* nodes that failed this rollout (fleet only) */
        bool slot_held;              /* this node holds a replacement slot (fleet only) */
        bool lease_fresh;            /* the node's lease was renewed within its TTL */
};

struct canary_verdict {
        enum canary_state state;
        /* Why, short enough for a table cell: "outside canary 10%",
         * "waiting for a slot", "halted: 3 nodes failed (max_failures 3)". */
        char reason[128];
};

struct canary_verdict canary_decide(const struct canary_input *in);
