/* A real nginx on loopback for tests: plain HTTP and HTTPS with a CA and
 * server certificate the harness makes with openssl (the system trust store
 * is not touched). */
#pragma once

#include <sys/types.h>

struct h_nginx {
        char dir[512];     /* config, logs, certificates */
        char root[600];    /* document root */
        char ca_file[600]; /* the CA that signed the server certificate */
        char access_log[600];
        int http_port, https_port;
        pid_t pid;
};

/* Starts nginx serving root (created if missing) from dir. extra_locations
 * is pasted into both server blocks (NULL for none), for tests that need
 * e.g. `location = /fail { return 500; }`. Returns once nginx listens. */
void h_nginx_start(struct h_nginx *n, const char *dir, const char *root,
                   const char *extra_locations);
void h_nginx_stop(struct h_nginx *n);
/* Stops nginx and starts it again with the same configuration, ports and
 * certificate files (which a test may have replaced meanwhile). */
void h_nginx_restart(struct h_nginx *n);
/* How many requests for path were answered with status code so far. */
int h_nginx_count(struct h_nginx *n, const char *path, int status);
