/* etcd://host:port[,host:port…]/PREFIX and etcds:// (TLS): the address of
 * a fleet's keys in etcd, as liid's etcd source and `liictl publish` read
 * it. Pure: no I/O, no libcurl. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_DEFAULT_PORT  "2379"

struct etcd_url {
        bool tls;
        char **endpoints; /* "http://host:port" or "https://host:port" */
        size_t n_endpoints;
        char *prefix; /* "lii/prod": no leading or trailing slash */
};

/* Parses etcd://host[:port][,host[:port]…]/PREFIX (port 2379 when none).
 * On failure returns -EINVAL and sets *ret_error to the reason. */
int etcd_url_parse(const char *url, struct etcd_url *ret, char **ret_error);
/* Frees the members; accepts a zeroed etcd_url. */
void etcd_url_done(struct etcd_url *u);
