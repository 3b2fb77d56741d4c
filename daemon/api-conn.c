/* Accepting the API's connections: liid accepts them itself, so that it
 * knows who the peer is before MHD reads a byte (SO_PEERCRED and
 * SO_PEERGROUPS give its role), can refuse a peer that holds its share of
 * the connections already (api-limit.h) with an answer that says so, and
 * can close a connection whose request does not arrive in time, however
 * it trickles. A connection it serves is handed to MHD with its struct
 * conn as MHD's socket context. */
#include "api-internal.h"

#include <json-c/json.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lii-proto.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* A whole request (line, headers and body) must arrive within this of the
 * connection's accept, or of the end of the previous answer on a
 * kept-alive connection, however it trickles: MHD's own timeout is reset
 * by every byte, so a client sending one byte a second would hold its
 * connection for ever. A local client sends its request in well under a
 * millisecond. */
#define API_REQUEST_DEADLINE_MSEC 5000u
/* Connections accepted in one turn of the loop, so that a flood of them
 * does not keep the loop from everything else. */
#define API_ACCEPT_BATCH 64u
/* When accept() fails for want of file descriptors or memory, the listening
 * socket is left alone for this long instead of being retried in a busy
 * loop. */
#define API_ACCEPT_PAUSE_MSEC 100u
/* Connections refused for the limits are logged at most this often. */
#define API_REFUSAL_LOG_MSEC 10000u
/* A refused connection gets its answer and the end of it at once, but its
 * socket is closed only after this, or when more than API_REFUSED_LINGER_MAX
 * are refused: a client whose socket is closed before it has even sent its
 * request often sees the connection fail (curl says "connection refused")
 * instead of reading why. */
#define API_REFUSED_LINGER_MSEC 1000u
/* NGROUPS_MAX of Linux: a peer cannot be in more groups than that. */
#define API_PEER_GROUPS_MAX 65536

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

/* One connection from its accept to its close: who the peer is, the slot
 * it holds, and by when its next request must be in. It is MHD's socket
 * context, freed when MHD reports the connection closed. */
struct conn {
        struct api *api;
        int fd; /* MHD's; only shut down here, at the deadline */
        uid_t uid;
        enum role role;
        /* While a request is awaited: its deadline in loop time (ms), and
         * its place in api->waiting, which is in deadline order because
         * every deadline is the same time after its start. */
        uint64_t deadline;
        struct conn *prev, *next;
        bool waiting;
};

static int peer_groups(int fd, gid_t **ret_groups, size_t *ret_n)
{
        size_t n = 64;
        for (;;) {
                _cleanup_free_ gid_t *groups = xcalloc(n, sizeof(gid_t));
                socklen_t len = (socklen_t)(n * sizeof(gid_t));
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
                        if (len % sizeof(gid_t) != 0)
                                return -EIO;
                        *ret_groups = TAKE_PTR(groups);
                        *ret_n = len / sizeof(gid_t);
                        return 0;
                }
                if (errno != ERANGE)
                        return -errno;
                /* The kernel wrote the size it needs into len. */
                size_t need = len / sizeof(gid_t);
                if (need <= n || need > API_PEER_GROUPS_MAX)
                        return -E2BIG;
                n = need;
        }
}

static bool gid_matches(gid_t want, gid_t gid, const gid_t *groups, size_t n)
{
        if (want == (gid_t)-1)
                return false;
        if (gid == want)
                return true;
        for (size_t i = 0; i < n; i++)
                if (groups[i] == want)
                        return true;
        return false;
}

/* The kernel records the peer's credentials at connect(), so one look at
 * accept() holds for every request of the connection. */
static int peer_identify(const struct api *a, int fd, uid_t *ret_uid, enum role *ret_role)
{
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        if (len != sizeof cred)
                return -EIO;

        _cleanup_free_ gid_t *groups = NULL;
        size_t n = 0;
        int r = peer_groups(fd, &groups, &n);
        if (r < 0)
                return r;

        *ret_uid = cred.uid;
        if (cred.uid == 0 || gid_matches(a->admin_gid, cred.gid, groups, n))
                *ret_role = ROLE_ADMIN;
        else if (gid_matches(a->read_gid, cred.gid, groups, n))
                *ret_role = ROLE_READER;
        else
                *ret_role = ROLE_NONE;
        return 0;
}

struct conn *api_conn_of(struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

static void on_deadline(uv_timer_t *t);

/* Arms the timer for the first deadline of either queue, if any. */
static void deadline_timer_arm(struct api *a)
{
        if (a->stopping)
                return;
        uint64_t due = UINT64_MAX;
        if (a->waiting)
                due = a->waiting->deadline;
        if (a->n_lingering > 0 && a->lingering[a->lingering_first].until < due)
                due = a->lingering[a->lingering_first].until;
        if (due == UINT64_MAX) {
                uv_timer_stop(&a->deadline_timer);
                return;
        }
        uint64_t now = uv_now(a->loop);
        uv_timer_start(&a->deadline_timer, on_deadline, due > now ? due - now : 0, 0);
}

static void linger_close_oldest(struct api *a)
{
        close(a->lingering[a->lingering_first].fd);
        a->lingering_first = (a->lingering_first + 1) % API_REFUSED_LINGER_MAX;
        a->n_lingering--;
}

void api_conn_wait(struct conn *c)
{
        if (!c || c->waiting)
                return;
        struct api *a = c->api;
        c->deadline = uv_now(a->loop) + API_REQUEST_DEADLINE_MSEC;
        c->waiting = true;
        c->next = NULL;
        c->prev = a->waiting_tail;
        if (a->waiting_tail)
                a->waiting_tail->next = c;
        else
                a->waiting = c;
        a->waiting_tail = c;
        if (a->waiting == c)
                deadline_timer_arm(a);
}

/* The request is in (or the connection ends). The timer may still be set
 * for this deadline: it then finds nothing due and re-arms itself. */
void api_conn_unwait(struct conn *c)
{
        if (!c || !c->waiting)
                return;
        struct api *a = c->api;
        if (c->prev)
                c->prev->next = c->next;
        else
                a->waiting = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                a->waiting_tail = c->prev;
        c->prev = c->next = NULL;
        c->waiting = false;
}

/* Closes the refused connections whose client had its time to read the
 * answer, and the connections whose request did not arrive in time. MHD
 * owns the latter and has no call to close one, but it closes a connection
 * whose socket reads as ended: shutdown() makes the socket report that at
 * once (an epoll event on MHD's set, which wakes api_run()), whether the
 * client is still trickling or has gone quiet. */
static void on_deadline(uv_timer_t *t)
{
        struct api *a = t->data;
        uint64_t now = uv_now(a->loop);
        while (a->n_lingering > 0 && a->lingering[a->lingering_first].until <= now)
                linger_close_oldest(a);

        unsigned n = 0;
        while (a->waiting && a->waiting->deadline <= now) {
                struct conn *c = a->waiting;
                api_conn_unwait(c);
                if (shutdown(c->fd, SHUT_RDWR) < 0)
                        log_debug_errno(-errno, "Cannot shut down a timed-out API connection: %m");
                a->metrics->api_timed_out++;
                n++;
        }
        if (n > 0)
                log_debug("Closing %u API connection(s) that sent no whole request within %u ms.",
                          n, API_REQUEST_DEADLINE_MSEC);
        deadline_timer_arm(a);
}

static void conn_free(struct conn *c)
{
        if (!c)
                return;
        struct api *a = c->api;
        api_conn_unwait(c);
        api_limit_release(&a->limit, c->uid, c->role == ROLE_ADMIN);
        a->metrics->api_connections = a->limit.total;
        free(c);
}

void api_conn_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
        struct api *a = cls;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                struct conn *c = TAKE_PTR(a->adding);
                *socket_context = c;
                api_conn_wait(c);
                return;
        }
        conn_free(*socket_context);
        *socket_context = NULL;
}

/* Answers a connection that MHD never gets, so that the client sees why at
 * once instead of waiting in the backlog, and ends it. The answer is far
 * smaller than a fresh socket's buffer; should it not fit, the client only
 * sees the connection end. The socket is closed only later (see
 * API_REFUSED_LINGER_MSEC). Takes fd. */
static void conn_refuse(struct api *a, int fd, const char *message)
{
        _cleanup_json_ json_object *doc = lii_error_new(LII_ERR_UNAVAILABLE, message);
        const char *body = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_free_ char *answer = xasprintf(
            "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
            MHD_HTTP_SERVICE_UNAVAILABLE, MHD_get_reason_phrase_for(MHD_HTTP_SERVICE_UNAVAILABLE),
            strlen(body) + 1, body);
        (void)send(fd, answer, strlen(answer), MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);

        /* When they are many, the oldest has had the most time. */
        if (a->n_lingering == API_REFUSED_LINGER_MAX)
                linger_close_oldest(a);
        unsigned i = (a->lingering_first + a->n_lingering) % API_REFUSED_LINGER_MAX;
        a->lingering[i].fd = fd;
        a->lingering[i].until = uv_now(a->loop) + API_REFUSED_LINGER_MSEC;
        a->n_lingering++;
        deadline_timer_arm(a);
}

/* Counts the refusal and says why to the client, and to the log at most
 * every API_REFUSAL_LOG_MSEC: a client that retries at once is refused
 * thousands of times a second. Takes fd. */
static void conn_refuse_over_limit(struct api *a, int fd, uid_t uid, enum api_limit_verdict v)
{
        _cleanup_free_ char *m = NULL;
        if (v == API_LIMIT_UID_FULL) {
                a->metrics->api_refused_uid++;
                m = xasprintf("too many connections from this user (at most %u at once)",
                              API_LIMIT_PER_UID);
        } else {
                a->metrics->api_refused_full++;
                m = xasprintf("too many connections (at most %u, the last %u only for root and "
                              "admin_group)",
                              API_LIMIT_CONNECTIONS, API_LIMIT_RESERVED);
        }

        uint64_t now = uv_now(a->loop);
        if (a->refusal_logged && now - a->refusal_logged_at < API_REFUSAL_LOG_MSEC) {
                a->refusals_unlogged++;
        } else {
                if (a->refusals_unlogged > 0)
                        log_notice("Refused an API connection of uid %u: %s (and %u more since "
                                   "the last such message).",
                                   (unsigned)uid, m, a->refusals_unlogged);
                else
                        log_notice("Refused an API connection of uid %u: %s.", (unsigned)uid, m);
                a->refusal_logged = true;
                a->refusal_logged_at = now;
                a->refusals_unlogged = 0;
        }
        conn_refuse(a, fd, m);
}

/* Serves an accepted connection, or refuses it when its peer has no slot
 * left. Takes fd in every case. */
static void conn_accept(struct api *a, int fd, const struct sockaddr *sa, socklen_t sa_len)
{
        /* Unidentified peers share one uid that nobody has; their requests
         * are refused for want of a role. */
        uid_t uid = (uid_t)-1;
        enum role role = ROLE_NONE;
        int r = peer_identify(a, fd, &uid, &role);
        if (r < 0)
                log_debug_errno(r, "Could not identify an API peer, refusing its requests: %m");

        enum api_limit_verdict v = api_limit_take(&a->limit, uid, role == ROLE_ADMIN);
        if (v != API_LIMIT_ADMIT) {
                conn_refuse_over_limit(a, fd, uid, v);
                return;
        }
        a->metrics->api_connections = a->limit.total;

        struct conn *c = xcalloc(1, sizeof *c);
        *c = (struct conn){.api = a, .fd = fd, .uid = uid, .role = role};
        a->adding = c;
        /* MHD closes fd if it fails. Once it has started the connection,
         * api_conn_notify() owns c and frees it when the connection closes
         * (at once if MHD fails after that); before, c is still ours. */
        if (MHD_add_connection(a->mhd, fd, sa, sa_len) != MHD_YES)
                log_debug_errno(-errno, "libmicrohttpd did not take an API connection: %m");
        if (a->adding)
                conn_free(TAKE_PTR(a->adding));
}

static void on_accept_timer(uv_timer_t *t);

/* Stops watching the listening socket for a while, so that a shortage of
 * file descriptors does not turn into a busy loop. */
static void accept_pause(struct api *a, int error)
{
        if (!a->accept_failing)
                log_warning_errno(error,
                                  "Cannot accept API connections, trying again every %u ms: %m",
                                  API_ACCEPT_PAUSE_MSEC);
        a->accept_failing = true;
        uv_poll_stop(&a->listen);
        uv_timer_start(&a->accept_timer, on_accept_timer, API_ACCEPT_PAUSE_MSEC, 0);
}

static void on_listen(uv_poll_t *p, int status, int events)
{
        struct api *a = p->data;
        for (unsigned i = 0; i < API_ACCEPT_BATCH; i++) {
                struct sockaddr_un sa;
                socklen_t len = sizeof sa;
                int fd = accept4(a->socket.fd, (struct sockaddr *)&sa, &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                accept_pause(a, -errno);
                        break;
                }
                a->accept_failing = false;
                conn_accept(a, fd, (struct sockaddr *)&sa, len);
        }
        /* MHD's timeouts now include the new connections. */
        api_run(a);
}

static void on_accept_timer(uv_timer_t *t)
{
        struct api *a = t->data;
        int r = uv_poll_start(&a->listen, UV_READABLE, on_listen);
        if (r < 0)
                accept_pause(a, r);
}

int api_conn_start(struct api *a)
{
        return uv_poll_start(&a->listen, UV_READABLE, on_listen);
}

enum role api_conn_role(const struct conn *c)
{
        return c ? c->role : ROLE_NONE;
}

void api_conn_end(struct api *a)
{
        while (a->n_lingering > 0)
                linger_close_oldest(a);
}
