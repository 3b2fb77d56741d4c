/* The node in etcd, for fleet mode (etcd(s):// sources): a lease that
 * liid keeps alive (one keepalive POST every third of its TTL) and that
 * carries the node's keys; PREFIX/nodes/<node>/status, the node's compact
 * status, put a short while after liid's events settle; a watch on
 * PREFIX/nodes/, PREFIX/sem/ and PREFIX/fail/ that keeps a bounded view of
 * every node's status, every replacement slot and every recorded failure
 * (GET /v1/fleet); and, for the engine, replacement slots among
 * max_parallel (PREFIX/sem/<service>/<node>) and failures of a rollout
 * (PREFIX/fail/<service>/<id>/<node>). Nothing here blocks: requests go
 * out on curl multi and the engine hears of changes through its changed
 * callback. The pure parts are declared at the end for the unit tests. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "etcd-client.h"

struct events;
struct fleet;

/* The node's compact status (the contract's nodes/<node>/status): a new
 * object, or NULL when there is none to put now. */
typedef json_object *(*fleet_status_cb)(void *userdata);
/* Called (from the loop, never nested inside a fleet_* call) whenever the
 * lease freshness, a slot state or a failure count may have changed: the
 * engine then reconciles. */
typedef void (*fleet_changed_cb)(void *userdata);
/* The max_failures of service's rollout (0: none, never halted). */
typedef unsigned (*fleet_max_failures_cb)(void *userdata, const char *service);

struct fleet_options {
        struct etcd_client *client; /* the source's connection; the fleet takes a reference */
        const char *node;
        uint64_t lease_ttl_usec; /* 2 s at least */
        /* Every event is followed, after a settle time, by a put of the
         * status; NULL: only after (re)granting the lease. */
        struct events *events;
        fleet_status_cb status;
        fleet_changed_cb changed;           /* may be NULL */
        fleet_max_failures_cb max_failures; /* may be NULL */
        void *userdata;
};

int fleet_new(uv_loop_t *loop, const struct fleet_options *opts, struct fleet **ret);
/* Grants the lease and starts the watch (on the next turn of the loop). */
int fleet_start(struct fleet *f);
/* Accepts NULL; no callback comes after it. The lease is left to expire
 * (a node that stops drops out of the fleet after its TTL). The uv handles
 * close asynchronously: run the loop afterwards. */
struct fleet *fleet_free(struct fleet *f);

/* The lease was renewed (granted or kept alive) within its TTL, by liid's
 * monotonic clock, counted from when the renewing request was sent. */
bool fleet_lease_fresh(const struct fleet *f);

/* Puts the status soon (coalesced with other requests for it). */
void fleet_status_changed(struct fleet *f);

enum fleet_slot { FLEET_SLOT_NONE, FLEET_SLOT_WAITING, FLEET_SLOT_HELD };
/* The node wants a replacement slot of service among max_parallel
 * (idempotent; call on every reconcile). Creates sem/<service>/<node>
 * under the lease (txn: create_revision == 0) if it is not there; returns
 * HELD only when the key is among the max_parallel oldest by create
 * revision in the watched view AND a txn guarded on the node's own key
 * (its create_revision unchanged) has confirmed it since the last change
 * of the view, and the lease is fresh. Never blocks: the state moves on
 * asynchronously and the fleet calls its changed callback. */
enum fleet_slot fleet_slot_want(struct fleet *f, const char *service, unsigned max_parallel);
/* Deletes the node's sem key (after the old generation is stopped, or the
 * new one on failure); retried until etcd confirms it or the lease ends. */
void fleet_slot_release(struct fleet *f, const char *service);
/* fail/<service>/<id>/<node> = reason, without lease; retried until etcd
 * confirms it. */
void fleet_record_failure(struct fleet *f, const char *service, const char *rollout_id,
                          const char *reason);
/* The keys under fail/<service>/<id>/ in the watched view. */
unsigned fleet_failures(const struct fleet *f, const char *service, const char *rollout_id);

/* GET /v1/fleet: {"nodes": {node: status}, "rollouts": {service: {"id",
 * "percent", "halted", "failures": {node: reason}}}, "lease": {"fresh",
 * "ttl_ms"}}. */
json_object *fleet_to_json(const struct fleet *f);

/* ---- pure parts, for the unit tests ---- */

/* Limits on what the watched view keeps: a node's status and the value of
 * a slot or failure key, and the number of keys. */
#define FLEET_MAX_STATUS (256U * 1024)
#define FLEET_MAX_VALUE  1024U
#define FLEET_MAX_KEYS   20000U

/* One key of the view, its name relative to PREFIX/. */
struct fleet_kv {
        char *key;
        char *value;
        size_t value_len;
        int64_t create_revision, mod_revision, lease;
};

/* One key-value of a range answer or a watch event; deleted for a DELETE
 * event. The key is left absolute. */
struct fleet_event {
        bool deleted;
        struct fleet_kv kv;
};

/* Parses a range answer's kvs (or a watch message's events) into events:
 * keys not under prefix/ and values over the limits above are skipped, each
 * with a line in *ret_skipped (malloc'ed, NULL when none). revision is the
 * header's; compact_revision, created and canceled those of a watch
 * message. */
struct fleet_batch {
        int64_t revision, compact_revision;
        bool created, canceled;
        char *cancel_reason;
        struct fleet_event *events;
        size_t n_events;
        char *skipped;
        int64_t last_mod_revision; /* the newest event's */
        bool more;                 /* a range answer that was cut at its limit */
};
int fleet_parse_range(const char *json, size_t len, const char *prefix, struct fleet_batch *ret,
                      char **ret_error);
int fleet_parse_watch(json_object *msg, const char *prefix, struct fleet_batch *ret,
                      char **ret_error);
void fleet_batch_done(struct fleet_batch *b);

/* The answer to /v3/lease/grant or /v3/lease/keepalive: the lease's ID and
 * TTL in seconds (TTL <= 0: etcd does not know the lease any more).
 * -ENOENT when etcd says the lease is not found. */
int fleet_parse_lease(const char *json, size_t len, int64_t *ret_id, int64_t *ret_ttl,
                      char **ret_error);
/* The answer to /v3/kv/txn: whether it succeeded, and the header's revision. */
int fleet_parse_txn(const char *json, size_t len, bool *ret_succeeded, int64_t *ret_revision,
                    char **ret_error);

/* The slot rule: among the create revisions of every sem key of a service
 * (any order), is mine among the max_parallel oldest? Keys with equal
 * revisions cannot exist (one revision creates one key, in one txn). */
bool fleet_slot_rank_ok(const int64_t *create_revisions, size_t n, int64_t mine,
                        unsigned max_parallel);
