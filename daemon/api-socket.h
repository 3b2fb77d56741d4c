/* The API's listening socket; see api-socket.c. */
#pragma once

#include <sys/types.h>

struct api_socket {
        int fd; /* listening, non-blocking */
        /* Set only when liid created the socket, so that
         * api_socket_remove() removes that socket and nothing else. */
        char *path;
        dev_t dev;
        ino_t ino;
};

/* Takes the socket passed by systemd (sd_listen_fds) when there is one,
 * otherwise creates path as api_new() describes. Logs the reason of a
 * failure itself. ret is set only on success. */
int api_socket_open(const char *path, gid_t read_gid, struct api_socket *ret);
/* Removes the socket at s->path only if it is still the one liid bound, so
 * that a liid started meanwhile keeps its own, and forgets the path. Does
 * not close s->fd. */
void api_socket_remove(struct api_socket *s);
