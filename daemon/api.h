/* The local API: HTTP/1.1 + JSON on a Unix socket, served by libmicrohttpd
 * driven from the libuv loop (its epoll fd polled, its timeout on a timer).
 * Peers are identified with SO_PEERCRED/SO_PEERGROUPS: uid 0 or admin_gid may
 * do everything, read_gid may GET, anyone else gets 403; a failed lookup is
 * 403 (fail closed). */
#pragma once

#include <json-c/json.h>
#include <sys/types.h>
#include <uv.h>

struct api;

/* What the API asks of the daemon. Each returns a new reference the API
 * puts; NULL from service() means no such service (404). */
struct api_ops {
        json_object *(*status)(void *userdata);
        json_object *(*service)(void *userdata, const char *name);
};

struct api_config {
        const char *socket_path;
        gid_t read_gid;  /* (gid_t)-1: none */
        gid_t admin_gid; /* (gid_t)-1: none */
};

/* Takes the socket passed by systemd (sd_listen_fds) when there is one,
 * otherwise creates socket_path: refuses a symlink or a non-socket file
 * there, replaces a stale socket, mode 0660, group read_gid. */
int api_new(uv_loop_t *loop, const struct api_config *cfg, const struct api_ops *ops,
            void *userdata, struct api **ret);
/* Stops serving and closes the socket; the path is removed only when liid
 * created it. Accepts NULL. */
struct api *api_free(struct api *a);
