/* liid's persistent state: which instance of each service is current,
 * which was previous, which new one is in flight, what was refused, and the
 * source's anti-rollback facts. Written atomically (temp file, fsync,
 * rename, fsync of the folder) before every side effect, so that a liid
 * killed at any instant can finish or abort what it was doing.
 *
 * On disk, in the state folder: state.json holds the node's part (source
 * facts, pause) and state.d/<service>.json each service's part, so that a
 * transition of one service rewrites one small file, whatever the number
 * of services. ("state.d" is no valid service name, so it cannot meet a
 * service's StateDirectory in the same folder.) */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "lii-proto.h"
#include "sha256.h"

#define STATE_FORMAT        "lii.state/2"
#define STATE_FORMAT_1      "lii.state/1" /* everything in state.json; read, then rewritten */
#define STATE_NODE_FILE     "state.json"
#define STATE_SERVICES_DIR  "state.d"
#define STATE_MAX_BYTES     (64U << 20)
#define STATE_MAX_ARTIFACTS 100 /* keep_revisions' upper bound */

struct instance {
        uint64_t generation;
        char *unit;      /* "lii-<service>@<generation>.service" (unit-name.h) */
        char *spec_json; /* the canonical spec this instance runs */
        char spec_sha256[SHA256_HEX_LEN + 1];
        char artifact_sha256[SHA256_HEX_LEN + 1];
        int port;
        uint64_t started_usec;  /* realtime; when liid started it */
        char *artifact_key_id;  /* the key that signed the artifact; NULL when unsigned */
        char *artifact_comment; /* that signature's trusted comment */
};

struct rollout_record {
        uint64_t generation; /* the instance the rollout was about; 0: not recorded */
        enum lii_result result;
        char *reason;
        uint64_t started_usec, finished_usec; /* realtime */
};

struct service_state {
        char *name;
        uint64_t last_generation; /* generations never repeat */
        struct instance *current; /* promoted */
        struct instance *previous;
        struct instance *pending;                     /* started or about to be; not promoted */
        char refused_spec_sha256[SHA256_HEX_LEN + 1]; /* quarantined spec, "" when none */
        /* Gone from the desired state: its instance is to be stopped and
         * never brought back from the record. The entry itself stays, so
         * that generations keep counting if the service returns. */
        bool removed;
        /* The artifacts of the latest promoted revisions, newest first, at
         * most keep_revisions: the store keeps these and collects the rest. */
        char **artifacts;
        struct rollout_record last_rollout;
        /* An operator rollback holds the service at its current spec while
         * the desired spec is still the one it left (refused_spec_sha256). */
        bool held;
        /* The current instance's watch window ends then (realtime; 0: none),
         * so that a restarted liid watches on for what is left of it. */
        uint64_t watch_until_usec;
        /* Not in the file: its last save failed, so the file may hold an
         * older record, or a newer one not known to be durable. It is
         * rewritten whole once the state folder takes writes again. */
        bool unsaved;
};

struct state {
        uint64_t serial;                     /* last applied desired-state serial */
        char doc_sha256[SHA256_HEX_LEN + 1]; /* SHA-256 of that document, "" when none */
        uint64_t clock_high_water_usec;      /* newest time liid has seen */
        bool paused;                         /* an operator holds new rollouts */
        size_t n_services;
        struct service_state **services; /* sorted by name */
        bool legacy;  /* read from format 1: state_save_all() before anything else */
        bool unsaved; /* not in the file: as in struct service_state, for state.json */
};

/* Loads the state from the state folder dir; no files give an empty
 * state. A file that cannot be parsed is an error that names it (liid must
 * not forget what it runs). */
int state_load(const char *dir, struct state **ret, char **ret_error);
/* Each writes its file atomically. Any failure, fsync included, is an error. */
int state_save_node(const struct state *s, const char *dir);
int state_save_service(const struct service_state *ss, const char *dir);
/* Every service's file, then the node's. */
int state_save_all(struct state *s, const char *dir);

struct state *state_free(struct state *s);
/* A deep copy of one service's record, and the exchange of two records'
 * content (a transition is undone by swapping a copy taken before it back
 * in). */
struct service_state *state_service_copy(const struct service_state *ss);
void state_service_swap(struct service_state *a, struct service_state *b);
struct service_state *state_service_free(struct service_state *ss);
static inline void state_service_freep(struct service_state **ss)
{
        state_service_free(*ss);
}
struct service_state *state_find(const struct state *s, const char *name);
/* Returns the existing entry or adds an empty one. */
struct service_state *state_get(struct state *s, const char *name);
void state_remove(struct state *s, const char *name);

struct instance *instance_new(const char *service, uint64_t generation, const char *spec_json,
                              const char *spec_sha256, const char *artifact_sha256, int port);
struct instance *instance_free(struct instance *i);
static inline void instance_freep(struct instance **i)
{
        instance_free(*i);
}
/* Puts sha256 first in the service's artifact history, at most keep long. */
void state_remember_artifact(struct service_state *ss, const char *sha256, unsigned keep);
void rollout_record_set(struct rollout_record *r, uint64_t generation, enum lii_result result,
                        const char *reason, uint64_t started_usec, uint64_t finished_usec);
