/* A fleet on one machine for tests: N real liid nodes, each with a private
 * systemd user manager of its own (its own mount namespace and its own
 * cgroup, which the manager takes as its root), its own state folder, API
 * socket and node name (n1, n2 …), all watching one real 3-member etcd
 * cluster for a document signed with the real minisign.
 *
 * Each node is an h_env, so that the single-node helpers of harness.h work
 * on it as they are: h_api_get(&f->node[i].env, …), h_liictl(…),
 * h_systemctl(…), h_wait_service(…). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "etcd.h"
#include "harness.h"

#define H_FLEET_MAX 8

struct h_fleet_node {
        struct h_env env;
        char name[16];   /* n1, n2 … : [node] name */
        char cgroup[96]; /* the manager's cgroup, under each hierarchy's root */
        int etcd_first;  /* the member the node tries first */
        bool frozen;     /* liid is SIGSTOPped */
};

struct h_fleet {
        char dir[400]; /* everything of the fleet, outside /tmp */
        size_t n;
        struct h_fleet_node node[H_FLEET_MAX];
        struct h_etcd etcd;
        bool etcd_frozen[H_ETCD_MEMBERS];
        /* The publisher: its folder holds the keys and the published folder
         * (www) with the signed sample artifacts; h_publish(&f->pub, …) writes
         * and signs a document there. Artifact URLs are absolute (file://). */
        struct h_env pub;
        char prefix[64]; /* the etcd key prefix, e.g. "lii/fleet" */
        /* [source] of every node; set before the first h_fleet_start*(). */
        char poll_interval[32];
        char fetch_timeout[32];
        char config_extra[1024]; /* appended to every node's liid.conf */
};

/* Makes the folder, keys and signed artifacts, starts the etcd cluster and
 * n managers (side by side), and writes each node's configuration. liid
 * runs nowhere yet. */
void h_fleet_setup(struct h_fleet *f, const char *name, size_t n);
/* Stops every liid (a frozen one is thawed first) and every manager (which
 * stops every unit it runs), removes the cgroups (and fails the test when
 * one is left, i.e. a unit outlived its manager), stops etcd and removes
 * the folder (kept with LII_KEEP_TEST_DIR=1). Accepts a half set-up
 * fleet. */
void h_fleet_teardown(struct h_fleet *f);

/* Writes node i's liid.conf again (after a change to f's settings). */
void h_fleet_write_config(struct h_fleet *f, size_t i);
/* Starts liid on node i and returns once it told READY=1. */
void h_fleet_start(struct h_fleet *f, size_t i);
void h_fleet_start_all(struct h_fleet *f);
/* Sends sig to node i's liid. SIGTERM (which must end it cleanly) and
 * SIGKILL wait for it to end; SIGSTOP and SIGCONT freeze and thaw it. */
void h_fleet_signal(struct h_fleet *f, size_t i, int sig);
/* SIGSTOP (freeze) or SIGCONT an etcd member. */
void h_fleet_etcd_freeze(struct h_fleet *f, int member, bool freeze);

/* GET on node i's API: the HTTP status, and the JSON in *ret. */
long h_fleet_get(struct h_fleet *f, size_t i, const char *path, json_object **ret);

/* Signs and publishes svcs (the next serial, see h_publish()) into etcd,
 * document and signature in one transaction, as a publisher writes them.
 * Returns etcd's revision after that transaction. */
long long h_fleet_publish(struct h_fleet *f, const struct h_service *svcs, size_t n);
/* The same with the document's bytes as given. */
long long h_fleet_publish_raw(struct h_fleet *f, const char *doc);
/* Puts two files as the document and signature keys, as they are (a
 * forgery, a document that was not signed). Returns the revision. */
long long h_fleet_put(struct h_fleet *f, const char *doc_file, const char *sig_file);

/* Waits until pred(node i's whole status) holds, for up to timeout_ms, and
 * returns that status (caller puts it), or fails the test naming the node
 * and what it waited for, with its last answer. Woken by liid's events
 * (GET /v1/events?follow=1), with a look at the status at least every
 * second in case a change comes without an event. */
json_object *h_fleet_wait(struct h_fleet *f, size_t i, h_pred pred, void *userdata, int timeout_ms,
                          const char *what);
/* The same until it holds on every node (frozen ones included). */
void h_fleet_wait_all(struct h_fleet *f, h_pred pred, void *userdata, int timeout_ms,
                      const char *what);

/* Predicates on a node's status. */
struct h_fleet_want {
        const char *service;
        long long generation; /* h_fleet_runs_generation */
        long long serial;     /* h_fleet_runs_serial */
};
/* The service runs generation want->generation, healthy. */
bool h_fleet_runs_generation(json_object *status, void *want);
/* The node accepted serial want->serial (or a later one) and the service
 * runs that document's spec for it, healthy: settled on it. */
bool h_fleet_runs_serial(json_object *status, void *want);

/* A node's canary bucket for a service's rollout id, computed here from
 * the contract (design.md, "Fleet mode on etcd") and not by liid's code:
 * the first 8 bytes of SHA-256(node NUL service NUL id) as a big-endian
 * integer, mod 10000. The node takes the new spec when bucket < percent ×
 * 100. */
unsigned h_fleet_bucket(const char *node, const char *service, const char *id);

/* What node i's instance of service answers on /version, e.g. "v2\n"
 * (caller frees), or NULL when it does not answer 200. */
char *h_fleet_instance_version(struct h_fleet *f, size_t i, const char *service);
