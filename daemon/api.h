/* The local API: HTTP/1.1 + JSON on a Unix socket, served by libmicrohttpd
 * driven from the libuv loop (its epoll fd polled, its timeout on a timer).
 * Peers are identified with SO_PEERCRED/SO_PEERGROUPS when liid accepts
 * them: uid 0 or admin_gid may do everything, read_gid may GET, anyone else
 * gets 403; a failed lookup is 403 (fail closed). Each uid may hold only
 * its share of the connections, the last ones are kept for uid 0 and
 * admin_gid (api-limit.h), and a request that does not arrive whole within
 * 5 s closes its connection. */
#pragma once

#include <json-c/json.h>
#include <sys/types.h>
#include <uv.h>

struct api;
struct events;
struct metrics;

/* What the API asks of the daemon. Each returns a new reference the API
 * puts; NULL from service() means no such service (404).
 *
 * The actions below status() and service() are optional: a NULL member
 * answers 501 not_implemented. An action returns either a document sent
 * with 200, or an error document from lii_error_new() whose code picks the
 * HTTP status (not_found 404, conflict 409, bad_request 400, internal 500…).
 * NULL from rollback() or replace() means no such service (404); NULL from
 * the others is an internal error (500). Every callback runs on the loop
 * and must not block: a long action is started, not awaited. */
/* What GET /v1/status?view= asks for. */
enum status_view {
        STATUS_VIEW_FULL,
        STATUS_VIEW_TABLE,
};

struct api_ops {
        json_object *(*status)(void *userdata, enum status_view view);
        json_object *(*service)(void *userdata, const char *name);
        json_object *(*sync)(void *userdata);
        json_object *(*pause)(void *userdata);
        json_object *(*resume)(void *userdata);
        json_object *(*rollback)(void *userdata, const char *name);
        json_object *(*replace)(void *userdata, const char *name);
        /* GET /v1/metrics: Prometheus' text format, malloc'ed (the API
         * frees it); NULL is an internal error (500). */
        char *(*metrics)(void *userdata);
        /* GET /v1/fleet: the fleet as the node sees it in etcd, or an error
         * document (not_implemented without an etcd source). */
        json_object *(*fleet)(void *userdata);
};

struct api_config {
        const char *socket_path;
        gid_t read_gid;  /* (gid_t)-1: none */
        gid_t admin_gid; /* (gid_t)-1: none */
        /* Served by GET /v1/events (NULL: 501). Must outlive the api:
         * api_free() ends the followers and drops their subscriptions. */
        struct events *events;
        /* Where the API counts the connections it refused or timed out, and
         * keeps the number open. Must outlive the api. */
        struct metrics *metrics;
};

/* Takes the socket passed by systemd (sd_listen_fds) when there is one,
 * otherwise creates socket_path (and its parent folder, 0755, when that is
 * missing): refuses a symlink, a non-socket file, a socket another process
 * still listens on, or one owned by another user there; replaces a stale
 * socket; mode 0660, group read_gid. The parent folder must be writable
 * only by liid's user, as /run/lii is: the path is checked, then bound.
 * Logs the reason of a failure itself, so callers only pass the error on.
 * cfg is copied; ops and userdata must outlive the api. */
int api_new(uv_loop_t *loop, const struct api_config *cfg, const struct api_ops *ops,
            void *userdata, struct api **ret);
/* Stops serving and closes the socket, ending the streams of GET
 * /v1/events?follow=1 (their clients see the connection close). The path
 * is removed only when liid created it and it is still the socket liid
 * bound. Accepts NULL, returns NULL. The libuv handles are closed here but their memory is released
 * in their close callbacks: the owner must keep running the loop (uv_run until it returns 0) after
 * api_free() for that to happen. */
struct api *api_free(struct api *a);
