/* A real 3-member etcd cluster on loopback ports for tests, from the etcd
 * binary of the system (Debian's etcd-server), with its data under the
 * test's folder; documents are written through etcd's JSON gateway. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#define H_ETCD_MEMBERS 3

struct h_etcd {
        char dir[600];
        int client_port[H_ETCD_MEMBERS], peer_port[H_ETCD_MEMBERS];
        pid_t pid[H_ETCD_MEMBERS];
        char initial_cluster[512];
        /* After h_etcd_start_tls(): clients speak HTTPS and must show a
         * certificate signed by ca_file (cert_file and key_file are one). */
        bool tls;
        char ca_file[700], cert_file[700], key_file[700];
        /* etcd's --auth-token-ttl in seconds (0: etcd's 300); set before
         * h_etcd_start(), which keeps it. */
        int auth_token_ttl;
        char root_password[32]; /* after h_etcd_enable_auth() */
};

/* Starts the cluster in dir (created) and returns once every member
 * answers /health. */
void h_etcd_start(struct h_etcd *e, const char *dir);
/* The same with TLS and client certificate authentication on the client
 * port (etcd's --client-cert-auth), with a CA the harness makes. */
void h_etcd_start_tls(struct h_etcd *e, const char *dir);
/* Stops every member that runs (SIGTERM, then waits). Accepts a cluster
 * that never started. */
void h_etcd_stop(struct h_etcd *e);
/* Turns etcd's authentication on, with a root user (the harness writes as
 * it) and user, who may read the keys under prefix. */
void h_etcd_enable_auth(struct h_etcd *e, const char *user, const char *password,
                        const char *prefix);
/* Stops one member; h_etcd_start_member() starts it again on its data. */
void h_etcd_stop_member(struct h_etcd *e, int i);
void h_etcd_start_member(struct h_etcd *e, int i);
/* etcd://127.0.0.1:P1,…/prefix (etcds:// with TLS) with the members in the order first, first+1… */
void h_etcd_url(struct h_etcd *e, int first, const char *prefix, char *buf, size_t size);
/* Puts the two files' bytes as the values of key_a and key_b in one
 * transaction (key_b may be NULL), through a member that runs. Returns the
 * store's revision after it. */
long long h_etcd_put_files(struct h_etcd *e, const char *key_a, const char *file_a,
                           const char *key_b, const char *file_b);
/* The value of key (malloc'ed, NUL-terminated), or NULL when there is no
 * such key; read through a member that runs. */
char *h_etcd_get(struct h_etcd *e, const char *key);
/* Writes the keys under prefix (create and mod revisions, lease) to out,
 * for a failed test's output; best effort, never fails the test. */
void h_etcd_dump(struct h_etcd *e, const char *prefix, FILE *out);
/* Compacts the store's history up to revision rev. */
void h_etcd_compact(struct h_etcd *e, long long rev);
