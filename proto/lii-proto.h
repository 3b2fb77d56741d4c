/* The wire format between liid and its clients (liictl, curl, scripts):
 * routes, JSON field names, error codes and the API version. It lives
 * here once, and both sides use it.
 *
 * Bump LII_API_VERSION (and the /v1 prefix with it) only for an
 * incompatible change; adding a field is compatible and needs no bump. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#define LII_API_VERSION 1
#define LII_API_PREFIX  "/v1"

/* The host part of URLs sent over the Unix socket is ignored by liid;
 * clients use this one so that logs read naturally. */
#define LII_API_HOST "http://lii"

#define LII_ROUTE_STATUS   LII_API_PREFIX "/status"
#define LII_ROUTE_SERVICES LII_API_PREFIX "/services/" /* + {name} */
#define LII_ROUTE_EVENTS   LII_API_PREFIX "/events"
#define LII_ROUTE_SYNC     LII_API_PREFIX "/sync"
#define LII_ROUTE_PAUSE    LII_API_PREFIX "/pause"
#define LII_ROUTE_RESUME   LII_API_PREFIX "/resume"
#define LII_ROUTE_METRICS  LII_API_PREFIX "/metrics"
#define LII_ROUTE_FLEET    LII_API_PREFIX "/fleet"
/* Appended to LII_ROUTE_SERVICES "{name}" for the per-service actions. */
#define LII_ROUTE_ROLLBACK_SUFFIX "/rollback"
#define LII_ROUTE_REPLACE_SUFFIX  "/replace"

/* Query parameters of GET /v1/events: only events with a greater seq;
 * keep the answer open and stream new events as they happen. */
#define LII_QUERY_AFTER  "after"
#define LII_QUERY_FOLLOW "follow"
/* Query parameter of GET /v1/status: "full" (the default) or "table":
 * the node and source as in full, and the services as a table of what
 * `liictl status` shows: LII_F_COLUMNS names the columns (those of
 * enum lii_column, in an order clients must not assume) and
 * LII_F_ROWS holds one array of cells per service, sorted by name. */
#define LII_QUERY_VIEW "view"
#define LII_VIEW_FULL  "full"
#define LII_VIEW_TABLE "table"
/* Content types of the answers that are not JSON. */
#define LII_CONTENT_TYPE_NDJSON  "application/x-ndjson"
#define LII_CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

#define LII_DEFAULT_SOCKET "/run/lii/liid.sock"
#define LII_SOCKET_ENV     "LIID_SOCKET"

/* Status document field names (contract; see the design brief). */
#define LII_F_NODE            "node"
#define LII_F_VERSION         "version"
#define LII_F_PAUSED          "paused"
#define LII_F_SOURCE          "source"
#define LII_F_URL             "url"
#define LII_F_SERIAL          "serial"
#define LII_F_FETCHED_AT      "fetched_at"
#define LII_F_ERROR           "error"
#define LII_F_SERVICES        "services"
#define LII_F_STATE           "state"
#define LII_F_CURRENT         "current"
#define LII_F_PREVIOUS        "previous"
#define LII_F_DESIRED         "desired"
#define LII_F_GENERATION      "generation"
#define LII_F_UNIT            "unit"
#define LII_F_ARTIFACT_SHA256 "artifact_sha256"
#define LII_F_SPEC_SHA256     "spec_sha256"
#define LII_F_ACTIVE_SINCE    "active_since"
#define LII_F_HEALTHY         "healthy"
#define LII_F_MAIN_PID        "main_pid"
#define LII_F_PORT            "port"
#define LII_F_LAST_ROLLOUT    "last_rollout"
#define LII_F_RESULT          "result"
#define LII_F_REASON          "reason"
#define LII_F_STARTED_AT      "started_at"
#define LII_F_FINISHED_AT     "finished_at"
#define LII_F_DURATION_MS     "duration_ms"
#define LII_F_CODE            "code"
#define LII_F_MESSAGE         "message"
#define LII_F_NEXT            "next" /* the instance being rolled out */
#define LII_F_REFUSED_SERIAL                                                                       \
        "refused_serial"                        /* the serial of the document source.error refused \
                                                 */
#define LII_F_KEY_ID          "key_id"          /* minisign key that signed the document */
#define LII_F_TRUSTED_COMMENT "trusted_comment" /* its trusted comment */
#define LII_F_SIGNATURE       "signature"       /* {key_id, trusted_comment} of an artifact */
#define LII_F_RESTARTS        "restarts"        /* dead instances replaced in a row */
#define LII_F_HELD            "held"            /* an operator rollback holds the service */
#define LII_F_LISTEN          "listen"          /* the desired spec's listen addresses */
#define LII_F_EVENT_SEQ       "event_seq"       /* the newest event's seq when status was made */
#define LII_F_VIEW            "view"            /* LII_VIEW_TABLE in a table */
/* A service's fleet rollout (the document's rollout block) as this node
 * takes it: {"id", "percent", "bucket", "state", "reason"} (contract). */
#define LII_F_ROLLOUT "rollout"
#define LII_F_ID      "id"
#define LII_F_PERCENT "percent"
#define LII_F_BUCKET  "bucket"

/* The table view: its columns (enum lii_column below) and rows. A cell
 * is null where there is nothing to show: generation, unit, healthy and
 * active_since are the current instance's; last_result, last_reason and
 * last_duration_ms the last rollout's (null before the first one);
 * rollout_state and rollout_reason a fleet rollout's (null without a
 * rollout block). */
#define LII_F_COLUMNS "columns"
#define LII_F_ROWS    "rows"

/* Fleet mode (contract; see the design brief): a node's compact status in
 * etcd (node, version, serial, updated_at, services with state,
 * generation, artifact_sha256, spec_sha256, healthy, rollout,
 * last_rollout) and GET /v1/fleet ({"nodes": {node: that status},
 * "rollouts": {service: {id, percent, halted, failures: {node: reason}}},
 * and this node's "node" and "lease": {fresh, ttl_ms}). */
#define LII_F_UPDATED_AT "updated_at"
#define LII_F_NODES      "nodes"
#define LII_F_ROLLOUTS   "rollouts"
#define LII_F_HALTED     "halted"
#define LII_F_FAILURES   "failures"
#define LII_F_LEASE      "lease"
#define LII_F_FRESH      "fresh"
#define LII_F_TTL_MS     "ttl_ms"

/* Whether liid can write its state folder: {"error", "since"}. */
#define LII_F_STORAGE "storage"
#define LII_F_SINCE   "since"

/* Event fields of GET /v1/events (one JSON object per line); generation
 * and message are the LII_F_* above. */
#define LII_F_SEQ       "seq"
#define LII_F_TIME      "time"
#define LII_F_TIME_USEC "time_usec" /* the same, in µs since the epoch, to order close events */
#define LII_F_TYPE      "type"
#define LII_F_SERVICE   "service"

/* Event types: the "type" of every event of GET /v1/events (contract: add,
 * never rename). */
#define EVENT_SOURCE_ACCEPTED   "source.accepted"
#define EVENT_SOURCE_REFUSED    "source.refused"
#define EVENT_ROLLOUT_STARTED   "rollout.started"
#define EVENT_ROLLOUT_SUCCEEDED "rollout.succeeded"
#define EVENT_ROLLOUT_FAILED    "rollout.failed"
#define EVENT_ROLLOUT_REVERTED  "rollout.reverted"
#define EVENT_ROLLOUT_HELD      "rollout.held" /* a fleet rollout's verdict on this node changed */
#define EVENT_INSTANCE_STARTED  "instance.started"
#define EVENT_INSTANCE_HEALTHY  "instance.healthy"
#define EVENT_INSTANCE_EXITED   "instance.exited"
#define EVENT_INSTANCE_STOPPED  "instance.stopped"
#define EVENT_SERVICE_REMOVED   "service.removed"
#define EVENT_OPERATOR          "operator"          /* pause, resume, sync, rollback, replace */
#define EVENT_DAEMON            "daemon"            /* started, stopping, systemd lost/regained */
#define EVENT_STORAGE_FAILING   "storage.failing"   /* the state folder stopped taking writes */
#define EVENT_STORAGE_RECOVERED "storage.recovered" /* … and takes them again */

/* The longest name service_name_is_valid() accepts. */
#define LII_SERVICE_NAME_MAX 48

/* Service states, in the order a rollout passes through them. */
enum lii_state {
        LII_STATE_PENDING,
        LII_STATE_FETCHING,
        LII_STATE_STARTING,
        LII_STATE_CHECKING,
        LII_STATE_RUNNING,
        LII_STATE_FAILED,
        LII_STATE_REVERTING,
        LII_STATE_STOPPING,
        LII_STATE_STOPPED,
        _LII_STATE_MAX,
};
const char *lii_state_to_string(enum lii_state s);
int lii_state_from_string(const char *s); /* -EINVAL when unknown */

enum lii_result {
        LII_RESULT_NONE,
        LII_RESULT_SUCCEEDED,
        LII_RESULT_FAILED,
        LII_RESULT_REVERTED,
        _LII_RESULT_MAX,
};
const char *lii_result_to_string(enum lii_result r); /* NULL for NONE */

/* The columns of the table view (LII_VIEW_TABLE). liid sends them in this
 * order; a client finds each by its name, so that liid may add columns
 * anywhere. */
enum lii_column {
        LII_COLUMN_NAME,
        LII_COLUMN_STATE,
        LII_COLUMN_HELD,
        LII_COLUMN_GENERATION,
        LII_COLUMN_UNIT,
        LII_COLUMN_HEALTHY,
        LII_COLUMN_ACTIVE_SINCE,
        LII_COLUMN_LAST_RESULT,
        LII_COLUMN_LAST_REASON,
        LII_COLUMN_LAST_DURATION_MS,
        LII_COLUMN_ROLLOUT_STATE,
        LII_COLUMN_ROLLOUT_REASON,
        _LII_COLUMN_MAX,
};
extern const char *const lii_column_names[_LII_COLUMN_MAX];

/* Error codes of {"error":{"code":…,"message":…}} and their HTTP status. */
#define LII_ERR_NOT_FOUND          "not_found"          /* 404 */
#define LII_ERR_METHOD_NOT_ALLOWED "method_not_allowed" /* 405 */
#define LII_ERR_FORBIDDEN          "forbidden"          /* 403 */
#define LII_ERR_BAD_REQUEST        "bad_request"        /* 400 */
#define LII_ERR_TOO_LARGE          "request_too_large"  /* 413 */
#define LII_ERR_CONFLICT           "conflict"           /* 409 */
#define LII_ERR_INTERNAL           "internal"           /* 500 */
#define LII_ERR_NOT_IMPLEMENTED    "not_implemented"    /* 501 */
#define LII_ERR_UNAVAILABLE        "unavailable"        /* 503 */

/* Builds the error document. Never returns NULL. */
json_object *lii_error_new(const char *code, const char *message);

/* liictl exit codes (contract). */
enum {
        LIICTL_EXIT_OK = 0,
        LIICTL_EXIT_FAILED = 1,
        LIICTL_EXIT_USAGE = 2,
        LIICTL_EXIT_UNREACHABLE = 3,
        LIICTL_EXIT_DENIED = 4,
        LIICTL_EXIT_TIMEOUT = 5,
};
