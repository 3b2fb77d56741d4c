/* The kernel picks a port nobody has bound (bind to port 0); the socket is
 * closed again before the instance starts, so the port is free for it.
 * Until the instance binds it, the kernel may offer the same port again:
 * lii remembers every port it handed out in the state, and skips those,
 * keeping each skipped one bound meanwhile so the kernel offers another.
 * A process outside lii may still take the port first; the instance's
 * health check then fails and the rollout says so, the honest outcome. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "port.h"
#include "state.h"
#include "util.h"

/* Enough for a crowded host: each attempt is a fresh random pick from the
 * kernel's ephemeral range. */
#define PORT_PICK_ATTEMPTS 64

static bool port_given_by_lii(const struct state *st, int port)
{
        for (size_t i = 0; i < st->n_services; i++) {
                const struct service_state *ss = st->services[i];
                if ((ss->current && ss->current->port == port) ||
                    (ss->pending && ss->pending->port == port) ||
                    (ss->previous && ss->previous->port == port))
                        return true;
        }
        return false;
}

/* Binds *fd to a port the kernel chooses and returns that port. */
static int bind_any_port(int *fd)
{
        *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (*fd < 0)
                return -errno;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        if (bind(*fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            getsockname(*fd, (struct sockaddr *)&sa, &len) < 0)
                return -errno;
        return ntohs(sa.sin_port);
}

int port_pick_free(const struct state *st)
{
        int fds[PORT_PICK_ATTEMPTS], n = 0, r = -EADDRINUSE;

        while (n < PORT_PICK_ATTEMPTS) {
                int port = bind_any_port(&fds[n++]);
                if (port == -EADDRINUSE) /* the kernel has nothing left to offer */
                        break;
                if (port < 0 || !port_given_by_lii(st, port)) {
                        r = port;
                        break;
                }
        }
        for (int i = 0; i < n; i++)
                closep(&fds[i]);
        return r;
}
