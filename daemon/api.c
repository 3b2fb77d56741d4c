/* The local API: libmicrohttpd serving HTTP/1.1 + JSON on a Unix socket,
 * driven by the libuv loop the way systemd-journal-remote embeds it (MHD's
 * epoll fd watched by a uv_poll_t, MHD_get_timeout() on a uv_timer_t). This
 * file owns the socket (activation or creation), accepting connections
 * (peer identification, per-uid limits, the deadline of each request),
 * authorization on every request and the route table; what the answers say
 * comes from the daemon through struct api_ops, and from the event ring for
 * the NDJSON of GET /v1/events, whose followers it streams to. */
#include "api.h"

#include <fcntl.h>
#include <libgen.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "api-limit.h"
#include "events.h"
#include "lii-proto.h"
#include "log.h"
#include "metrics.h"

/* No API request carries more than a few bytes of body today; the cap keeps
 * a client from making liid buffer or churn through uploads. */
#define API_BODY_MAX (64 * 1024)
/* A body over API_BODY_MAX but within this is read (and dropped) before the
 * 413, so that simple clients see the answer; see request_begin(). */
#define API_BODY_DRAIN_MAX (1024 * 1024)
/* MHD keeps the request line and headers in this per-connection pool, so it
 * is also the header size limit (MHD answers 431 beyond it). */
#define API_CONNECTION_MEMORY_LIMIT ((size_t)64 * 1024)
/* A whole request (line, headers and body) must arrive within this of the
 * connection's accept, or of the end of the previous answer on a
 * kept-alive connection, however it trickles: MHD's own timeout is reset
 * by every byte, so a client sending one byte a second would hold its
 * connection for ever. A local client sends its request in well under a
 * millisecond. */
#define API_REQUEST_DEADLINE_MSEC 5000u
/* Connections that stop reading an answer are closed after this much
 * idleness. An event follower with nothing to send is suspended, which
 * MHD never times out, so a quiet stream lives on; one whose client stops
 * reading what it is sent is closed like any other. */
#define API_CONNECTION_TIMEOUT_SEC 10u
/* Followers hold a connection each for as long as they like, so they get
 * only half of the slots and the other requests always find one. */
#define API_FOLLOWERS_MAX (API_LIMIT_CONNECTIONS / 2)
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
 * socket is closed only after this, or when more than the most that may
 * wait are refused: a client whose socket is closed before it has even
 * sent its request often sees the connection fail (curl says "connection
 * refused") instead of reading why. */
#define API_REFUSED_LINGER_MSEC 1000u
#define API_REFUSED_LINGER_MAX  64u
/* What one call of a follower's content reader may hand to MHD. */
#define API_FOLLOW_BLOCK ((size_t)16 * 1024)
/* NGROUPS_MAX of Linux: a peer cannot be in more groups than that. */
#define API_PEER_GROUPS_MAX 65536

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

enum role {
        ROLE_NONE,
        ROLE_READER,
        ROLE_ADMIN,
};

struct follower;
struct api;

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

struct api {
        uv_loop_t *loop;
        uv_poll_t poll;
        uv_timer_t timer;
        uv_poll_t listen;
        uv_timer_t deadline_timer;
        uv_timer_t accept_timer;
        unsigned n_handles_open;
        int listen_fd;

        struct MHD_Daemon *mhd;
        const struct api_ops *ops;
        void *userdata;
        struct events *events;
        struct metrics *metrics;
        gid_t read_gid;
        gid_t admin_gid;
        bool started;
        /* accept() fails; logged once until it works again. */
        bool accept_failing;
        /* When a refused connection was last logged (loop time), and how
         * many were not logged since. */
        bool refusal_logged;
        uint64_t refusal_logged_at;
        unsigned refusals_unlogged;

        struct api_limit limit;
        /* The connections whose request is awaited, oldest deadline first. */
        struct conn *waiting, *waiting_tail;
        /* Handed to on_connection() while MHD_add_connection() runs. */
        struct conn *adding;
        /* Refused connections waiting to be closed, oldest first: a ring
         * that starts at lingering_first. */
        struct {
                int fd;
                uint64_t until; /* loop time (ms) */
        } lingering[API_REFUSED_LINGER_MAX];
        unsigned lingering_first, n_lingering;
        /* api_free() has begun: nothing may arm the timer again. */
        bool stopping;
        /* A connection was resumed while MHD_run() ran, so the timer that
         * makes MHD serve it again must not be re-armed for later. */
        bool kicked;

        struct follower *followers;
        unsigned n_followers;

        /* Set only when liid created the socket, so that api_free() removes
         * that socket and nothing else. */
        char *socket_path;
        dev_t socket_dev;
        ino_t socket_ino;
};

struct request;
typedef json_object *(*route_handler_t)(struct api *a, const struct request *req);
/* For answers that are not one JSON document: queues its own response. */
typedef enum MHD_Result (*route_responder_t)(struct api *a, struct MHD_Connection *c,
                                             const struct request *req);

struct route {
        const char *method;
        /* The whole path, or with a suffix the prefix before {name}. */
        const char *path;
        /* What follows {name} ("" for none); NULL for a path without a name. */
        const char *suffix;
        enum role role;
        route_handler_t handler;
        route_responder_t responder; /* instead of handler */
};

/* Per-request state, from the first call of a request (headers read) to
 * its answer in the last (body read). libmicrohttpd 0.9.75 treats an
 * answer queued in the first call as queued "early": it stops reading the
 * connection, sends "Connection: close" and closes it after the answer. So
 * everything but a refusal that must not read the body is answered in the
 * last call, and the connection stays open for the client's next request. */
struct request {
        const struct route *route; /* NULL: answer with error_code instead */
        const char *error_code;
        const char *error_message;
        char allow[64]; /* the Allow header of a 405 */
        char name[LII_SERVICE_NAME_MAX + 1];
        size_t body_size;
        bool head;
};

/* A client of GET /v1/events?follow=1. It holds no copy of the events:
 * the ring is the backlog, and the follower only remembers how far it got.
 * While it has sent everything the connection is suspended, so MHD neither
 * calls it nor times it out, and a new event resumes it. A follower so
 * slow that the ring dropped events it had not sent yet is cut off: its
 * client sees the stream break instead of silently missing events. It is
 * owned by its MHD response and freed with it. */
struct follower {
        struct api *api;
        struct follower *prev, *next;
        struct MHD_Connection *conn;
        struct events_sub *sub;
        /* While suspended, MHD does not watch the socket, so this does:
         * a client that goes away frees its slot without waiting for an
         * event. Allocated per suspension, freed in its close callback. */
        uv_poll_t *hangup;
        uint64_t cursor;            /* seq of the last event put into line */
        char *line;                 /* that event's NDJSON line… */
        size_t line_len, line_sent; /* …and how much of it MHD has */
        bool suspended;
        bool counted; /* holds one of the API_FOLLOWERS_MAX slots */
        bool gone;    /* the client hung up */
        bool lagged;  /* fell behind the ring */
        bool ending;  /* liid stops serving */
};

static json_object *handle_status(struct api *a, const struct request *req)
{
        return a->ops->status(a->userdata);
}

/* The name was validated by the router, so it is safe to echo. */
static json_object *no_such_service(const char *name)
{
        _cleanup_free_ char *m = xasprintf("no such service: %s", name);
        return lii_error_new(LII_ERR_NOT_FOUND, m);
}

static json_object *handle_service(struct api *a, const struct request *req)
{
        json_object *doc = a->ops->service(a->userdata, req->name);
        return doc ? doc : no_such_service(req->name);
}

static json_object *not_implemented(void)
{
        return lii_error_new(LII_ERR_NOT_IMPLEMENTED, "this liid does not implement that yet");
}

/* Actions without a name: NULL from the daemon is an internal error. */
static json_object *action(struct api *a, json_object *(*op)(void *userdata))
{
        if (!op)
                return not_implemented();
        json_object *doc = op(a->userdata);
        return doc ? doc : lii_error_new(LII_ERR_INTERNAL, "the action failed");
}

/* Actions on a service: NULL from the daemon means there is no such service. */
static json_object *service_action(struct api *a, const struct request *req,
                                   json_object *(*op)(void *userdata, const char *name))
{
        if (!op)
                return not_implemented();
        json_object *doc = op(a->userdata, req->name);
        return doc ? doc : no_such_service(req->name);
}

static json_object *handle_sync(struct api *a, const struct request *req)
{
        return action(a, a->ops->sync);
}

static json_object *handle_pause(struct api *a, const struct request *req)
{
        return action(a, a->ops->pause);
}

static json_object *handle_resume(struct api *a, const struct request *req)
{
        return action(a, a->ops->resume);
}

static json_object *handle_rollback(struct api *a, const struct request *req)
{
        return service_action(a, req, a->ops->rollback);
}

static json_object *handle_replace(struct api *a, const struct request *req)
{
        return service_action(a, req, a->ops->replace);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, const char *code,
                                     const char *message, const char *allow);
static void api_kick(struct api *a);
static void api_run(struct api *a);

/* A body that is not JSON. Takes body (malloc'ed) in every case. */
static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status,
                                    const char *content_type, char *body, size_t len)
{
        _cleanup_(mhd_response_destroyp) struct MHD_Response *r =
            MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
                free(body);
                return MHD_NO;
        }
        if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
                return MHD_NO;
        return MHD_queue_response(c, status, r);
}

static enum MHD_Result respond_metrics(struct api *a, struct MHD_Connection *c,
                                       const struct request *req)
{
        if (!a->ops->metrics)
                return respond_error(c, LII_ERR_NOT_IMPLEMENTED,
                                     "this liid does not implement that yet", NULL);
        char *text = a->ops->metrics(a->userdata);
        if (!text)
                return respond_error(c, LII_ERR_INTERNAL, "the metrics could not be rendered",
                                     NULL);
        return respond_text(c, MHD_HTTP_OK, LII_CONTENT_TYPE_METRICS, text, strlen(text));
}

/* One NDJSON line: compact JSON and a newline. */
static char *event_line(const struct event *e)
{
        _cleanup_json_ json_object *o = event_to_json(e);
        return xasprintf("%s\n", json_object_to_json_string_ext(
                                     o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void on_hangup_closed(uv_handle_t *h)
{
        free(h);
}

static void follower_unwatch(struct follower *f)
{
        if (!f->hangup)
                return;
        /* uv_close() takes the fd out of libuv's epoll set at once, while
         * MHD still has the socket open. */
        uv_close((uv_handle_t *)f->hangup, on_hangup_closed);
        f->hangup = NULL;
}

/* Hands the connection back to MHD and makes sure MHD runs soon: resuming
 * only queues the connection, and this may be called from inside one of
 * MHD's own callbacks (an action that emits an event), where MHD_run()
 * must not be called. */
static void follower_resume(struct follower *f)
{
        if (!f->suspended)
                return;
        follower_unwatch(f);
        f->suspended = false;
        MHD_resume_connection(f->conn);
        api_kick(f->api);
}

static void follower_uncount(struct follower *f)
{
        if (!f->counted)
                return;
        f->counted = false;
        f->api->n_followers--;
}

/* The slot is given back at once: MHD closes the connection only when it
 * runs next, and a client that reconnects right away must find it free. */
static void on_follower_hangup(uv_poll_t *h, int status, int events)
{
        struct follower *f = h->data;
        f->gone = true;
        follower_uncount(f);
        follower_resume(f);
}

static void follower_watch(struct follower *f)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(f->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
                return;
        uv_poll_t *h = xcalloc(1, sizeof *h);
        int r = uv_poll_init(f->api->loop, h, ci->connect_fd);
        if (r < 0) {
                free(h);
                log_debug_errno(r, "Cannot watch an idle event follower for hangups: %m");
                return;
        }
        h->data = f;
        r = uv_poll_start(h, UV_DISCONNECT, on_follower_hangup);
        if (r < 0) {
                uv_close((uv_handle_t *)h, on_hangup_closed);
                log_debug_errno(r, "Cannot watch an idle event follower for hangups: %m");
                return;
        }
        f->hangup = h;
}

static void on_follower_event(const struct event *e, void *userdata)
{
        follower_resume(userdata);
}

/* Puts the next event into f->line; false when there is none (or the
 * follower fell behind). */
static bool follower_next_line(struct follower *f)
{
        const struct event *e = events_next(f->api->events, f->cursor);
        if (!e)
                return false;
        if (e->seq != f->cursor + 1) {
                f->lagged = true;
                return false;
        }
        free(f->line);
        f->line = event_line(e);
        f->line_len = strlen(f->line);
        f->line_sent = 0;
        f->cursor = e->seq;
        return true;
}

/* MHD's content reader: whole lines as far as they fit, possibly the rest
 * of a line that did not fit last time. With nothing to send the
 * connection is suspended until an event, a hangup or api_free(). */
static ssize_t follower_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct follower *f = cls;
        size_t n = 0;
        while (n < max && !f->gone && !f->ending) {
                if (f->line_sent == f->line_len && !follower_next_line(f))
                        break;
                size_t k = f->line_len - f->line_sent;
                if (k > max - n)
                        k = max - n;
                memcpy(buf + n, f->line + f->line_sent, k);
                f->line_sent += k;
                n += k;
        }
        if (n > 0)
                return (ssize_t)n;
        if (f->lagged) {
                log_debug("Ending an event stream whose client fell more than %d events "
                          "behind.",
                          EVENTS_KEEP);
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (f->gone || f->ending)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        MHD_suspend_connection(f->conn);
        f->suspended = true;
        follower_watch(f);
        return 0;
}

static void follower_free(void *cls)
{
        struct follower *f = cls;
        struct api *a = f->api;
        events_unsubscribe(f->sub);
        follower_unwatch(f);
        if (f->prev)
                f->prev->next = f->next;
        else
                a->followers = f->next;
        if (f->next)
                f->next->prev = f->prev;
        follower_uncount(f);
        free(f->line);
        free(f);
}

static enum MHD_Result respond_follow(struct api *a, struct MHD_Connection *c, uint64_t after)
{
        if (a->n_followers >= API_FOLLOWERS_MAX)
                return respond_error(c, LII_ERR_UNAVAILABLE, "too many followers", NULL);

        struct follower *f = xcalloc(1, sizeof *f);
        f->api = a;
        f->conn = c;
        /* Starting at the oldest kept event is not falling behind: the
         * client asked for what there is. */
        const struct event *first = events_next(a->events, after);
        f->cursor = first ? first->seq - 1 : after;
        f->next = a->followers;
        if (a->followers)
                a->followers->prev = f;
        a->followers = f;
        a->n_followers++;
        f->counted = true;
        f->sub = events_subscribe(a->events, on_follower_event, f);

        /* From here the response owns f and frees it with follower_free(). */
        _cleanup_(mhd_response_destroyp) struct MHD_Response *r = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, API_FOLLOW_BLOCK, follower_read, f, follower_free);
        if (!r) {
                follower_free(f);
                return MHD_NO;
        }
        if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, LII_CONTENT_TYPE_NDJSON) !=
            MHD_YES)
                return MHD_NO;
        return MHD_queue_response(c, MHD_HTTP_OK, r);
}

static void ndjson_add(const struct event *e, void *userdata)
{
        _cleanup_free_ char *line = event_line(e);
        fputs(line, userdata);
}

/* "follow" alone, =1 or =true follows; =0 or =false does not. */
static int parse_follow(struct MHD_Connection *c, bool *ret)
{
        const char *v = NULL;
        size_t len = 0;
        if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, LII_QUERY_FOLLOW,
                                          strlen(LII_QUERY_FOLLOW), &v, &len) != MHD_YES) {
                *ret = false;
                return 0;
        }
        if (!v || strcmp(v, "") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
                *ret = true;
        else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int parse_after(struct MHD_Connection *c, uint64_t *ret)
{
        const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, LII_QUERY_AFTER);
        if (!v) {
                *ret = 0;
                return 0;
        }
        if (strspn(v, "0123456789") != strlen(v) || !*v || strlen(v) > 20)
                return -EINVAL;
        errno = 0;
        unsigned long long n = strtoull(v, NULL, 10);
        if (errno != 0)
                return -EINVAL;
        *ret = n;
        return 0;
}

static enum MHD_Result respond_events(struct api *a, struct MHD_Connection *c,
                                      const struct request *req)
{
        if (!a->events)
                return respond_error(c, LII_ERR_NOT_IMPLEMENTED,
                                     "this liid does not implement that yet", NULL);
        uint64_t after;
        if (parse_after(c, &after) < 0)
                return respond_error(c, LII_ERR_BAD_REQUEST,
                                     LII_QUERY_AFTER ": not an event sequence number", NULL);
        bool follow;
        if (parse_follow(c, &follow) < 0)
                return respond_error(c, LII_ERR_BAD_REQUEST,
                                     LII_QUERY_FOLLOW ": neither 1, true, 0 nor false", NULL);
        /* A HEAD gets the headers of the plain answer, not a stream. */
        if (follow && !req->head)
                return respond_follow(a, c, after);

        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        if (!f)
                return respond_error(c, LII_ERR_INTERNAL, "out of memory", NULL);
        events_foreach(a->events, after, ndjson_add, f);
        if (fclose(f) != 0) {
                free(text);
                return respond_error(c, LII_ERR_INTERNAL, "out of memory", NULL);
        }
        return respond_text(c, MHD_HTTP_OK, LII_CONTENT_TYPE_NDJSON, text, size);
}

/* The first row whose path and method match serves a request; the rows
 * that match the path alone make the Allow header of a 405. */
static const struct route routes[] = {
    {"GET", LII_ROUTE_STATUS, NULL, ROLE_READER, .handler = handle_status},
    {"GET", LII_ROUTE_SERVICES, "", ROLE_READER, .handler = handle_service},
    {"GET", LII_ROUTE_EVENTS, NULL, ROLE_READER, .responder = respond_events},
    {"GET", LII_ROUTE_METRICS, NULL, ROLE_READER, .responder = respond_metrics},
    {"POST", LII_ROUTE_SYNC, NULL, ROLE_ADMIN, .handler = handle_sync},
    {"POST", LII_ROUTE_PAUSE, NULL, ROLE_ADMIN, .handler = handle_pause},
    {"POST", LII_ROUTE_RESUME, NULL, ROLE_ADMIN, .handler = handle_resume},
    {"POST", LII_ROUTE_SERVICES, LII_ROUTE_ROLLBACK_SUFFIX, ROLE_ADMIN, .handler = handle_rollback},
    {"POST", LII_ROUTE_SERVICES, LII_ROUTE_REPLACE_SUFFIX, ROLE_ADMIN, .handler = handle_replace},
};

/* Matches url against the route's path, ignoring the method. A {name} that
 * is not a valid service name does not match, so it ends as a 404. */
static bool route_match_path(const struct route *r, const char *url,
                             char ret_name[static LII_SERVICE_NAME_MAX + 1])
{
        if (!r->suffix)
                return strcmp(url, r->path) == 0;

        size_t plen = strlen(r->path);
        if (strncmp(url, r->path, plen) != 0)
                return false;
        const char *name = url + plen;
        size_t nlen = strcspn(name, "/");
        if (nlen == 0 || nlen > LII_SERVICE_NAME_MAX || strcmp(name + nlen, r->suffix) != 0)
                return false;

        char buf[LII_SERVICE_NAME_MAX + 1];
        memcpy(buf, name, nlen);
        buf[nlen] = '\0';
        if (!service_name_is_valid(buf))
                return false;
        memcpy(ret_name, buf, nlen + 1);
        return true;
}

/* HEAD is answered like GET; MHD leaves the body out. */
static bool method_matches(const char *route_method, const char *method)
{
        if (strcmp(route_method, method) == 0)
                return true;
        return strcmp(route_method, MHD_HTTP_METHOD_GET) == 0 &&
               strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static unsigned status_for_code(const char *code)
{
        static const struct {
                const char *code;
                unsigned status;
        } table[] = {
            {LII_ERR_NOT_FOUND, MHD_HTTP_NOT_FOUND},
            {LII_ERR_METHOD_NOT_ALLOWED, MHD_HTTP_METHOD_NOT_ALLOWED},
            {LII_ERR_FORBIDDEN, MHD_HTTP_FORBIDDEN},
            {LII_ERR_BAD_REQUEST, MHD_HTTP_BAD_REQUEST},
            {LII_ERR_TOO_LARGE, MHD_HTTP_CONTENT_TOO_LARGE},
            {LII_ERR_CONFLICT, MHD_HTTP_CONFLICT},
            {LII_ERR_INTERNAL, MHD_HTTP_INTERNAL_SERVER_ERROR},
            {LII_ERR_NOT_IMPLEMENTED, MHD_HTTP_NOT_IMPLEMENTED},
            {LII_ERR_UNAVAILABLE, MHD_HTTP_SERVICE_UNAVAILABLE},
        };
        for (size_t i = 0; code && i < ELEMENTSOF(table); i++)
                if (strcmp(table[i].code, code) == 0)
                        return table[i].status;
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* An error document (as lii_error_new() builds it) carries its status in
 * its code; anything else is a success. */
static unsigned status_for_doc(json_object *doc)
{
        json_object *err, *code;
        if (!json_object_is_type(doc, json_type_object) ||
            !json_object_object_get_ex(doc, LII_F_ERROR, &err) ||
            !json_object_is_type(err, json_type_object))
                return MHD_HTTP_OK;
        if (!json_object_object_get_ex(err, LII_F_CODE, &code))
                return MHD_HTTP_INTERNAL_SERVER_ERROR;
        return status_for_code(json_object_get_string(code));
}

/* Compact JSON plus a newline, so that curl output ends cleanly. */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, json_object *doc,
                               const char *allow)
{
        size_t len = 0;
        const char *s = json_object_to_json_string_length(
            doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        /* One copy of known length: the status of many services is
         * hundreds of KiB, which a formatted copy would measure and grow
         * its way to. */
        char *body = malloc(len + 1);
        if (!body)
                return MHD_NO;
        memcpy(body, s, len);
        body[len] = '\n';
        _cleanup_(mhd_response_destroyp) struct MHD_Response *r =
            MHD_create_response_from_buffer(len + 1, body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
                free(body);
                return MHD_NO;
        }
        if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES)
                return MHD_NO;
        if (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES)
                return MHD_NO;
        return MHD_queue_response(c, status, r);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, const char *code,
                                     const char *message, const char *allow)
{
        _cleanup_json_ json_object *doc = lii_error_new(code, message);
        return respond(c, status_for_code(code), doc, allow);
}

static enum MHD_Result respond_handler(struct api *a, struct MHD_Connection *c,
                                       const struct request *req)
{
        if (req->route->responder)
                return req->route->responder(a, c, req);
        _cleanup_json_ json_object *doc = req->route->handler(a, req);
        if (!doc)
                return respond_error(c, LII_ERR_INTERNAL, "no answer from liid", NULL);
        return respond(c, status_for_doc(doc), doc, NULL);
}

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

static struct conn *conn_of(struct MHD_Connection *c)
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

/* Starts the clock of the connection's next request. */
static void conn_wait(struct conn *c)
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
static void conn_unwait(struct conn *c)
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
                conn_unwait(c);
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
        conn_unwait(c);
        api_limit_release(&a->limit, c->uid, c->role == ROLE_ADMIN);
        a->metrics->api_connections = a->limit.total;
        free(c);
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection handed over with
 * MHD_add_connection() starts (within that call) or closes. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        struct api *a = cls;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                struct conn *c = TAKE_PTR(a->adding);
                *socket_context = c;
                conn_wait(c);
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
         * on_connection() owns c and frees it when the connection closes
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
                int fd = accept4(a->listen_fd, (struct sockaddr *)&sa, &len,
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

/* Finds the route of a request, or says in req why there is none. */
static void request_route(struct request *req, enum role role, const char *url, const char *method)
{
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                char n[LII_SERVICE_NAME_MAX + 1] = "";
                if (!route_match_path(&routes[i], url, n))
                        continue;
                if (method_matches(routes[i].method, method) && !req->route) {
                        req->route = &routes[i];
                        memcpy(req->name, n, sizeof req->name);
                }
                size_t used = strlen(req->allow);
                snprintf(req->allow + used, sizeof req->allow - used, "%s%s", used ? ", " : "",
                         routes[i].method);
                if (strcmp(routes[i].method, MHD_HTTP_METHOD_GET) == 0) {
                        used = strlen(req->allow);
                        snprintf(req->allow + used, sizeof req->allow - used, ", %s",
                                 MHD_HTTP_METHOD_HEAD);
                }
        }
        /* Only a 405 sends the Allow header. */
        if (!req->route && req->allow[0]) {
                req->error_code = LII_ERR_METHOD_NOT_ALLOWED;
                req->error_message = "method not allowed";
                return;
        }
        req->allow[0] = '\0';
        if (!req->route) {
                req->error_code = LII_ERR_NOT_FOUND;
                req->error_message = "no such endpoint";
        } else if (role < req->route->role) {
                req->route = NULL;
                req->error_code = LII_ERR_FORBIDDEN;
                req->error_message = "permission denied: this needs root or the admin group";
        }
}

/* First call of a request: authorize, route and check the declared size.
 * Refusals that must not read the body are answered now (and close the
 * connection); everything else waits for the last call. */
static enum MHD_Result request_begin(struct api *a, struct MHD_Connection *c, const char *url,
                                     const char *method, void **con_cls)
{
        const struct conn *conn = conn_of(c);
        enum role role = conn ? conn->role : ROLE_NONE;
        /* Without a role nothing else is revealed, not even which routes
         * exist, and the connection is not kept for another try. */
        if (role == ROLE_NONE)
                return respond_error(c, LII_ERR_FORBIDDEN, "permission denied", NULL);

        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = 0;
        if (cl) {
                char *end;
                errno = 0;
                declared = strtoull(cl, &end, 10);
                if (errno != 0 || end == cl || *end != '\0')
                        return respond_error(c, LII_ERR_BAD_REQUEST, "bad Content-Length", NULL);
        }
        bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
        bool is_get = head || strcmp(method, MHD_HTTP_METHOD_GET) == 0;
        /* An answer that comes while the client is still sending makes it
         * fail on write before it reads the answer. So a body somewhat over
         * the limit is read and dropped before the 413, and only a client
         * that waits for "100 Continue" (curl does above 1 MiB), sends a
         * GET with a large body or declares a huge one gets it at once. */
        const char *expect =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if (declared > API_BODY_MAX && (is_get || expect || declared > API_BODY_DRAIN_MAX))
                return respond_error(c, LII_ERR_TOO_LARGE, "request body too large", NULL);

        struct request *req = xcalloc(1, sizeof *req);
        req->head = head;
        request_route(req, role, url, method);
        *con_cls = req;
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        struct api *a = cls;
        struct request *req = *con_cls;

        if (!req) {
                enum MHD_Result r = request_begin(a, c, url, method, con_cls);
                /* Answered already: MHD reads no more of this connection. */
                if (!*con_cls)
                        conn_unwait(conn_of(c));
                return r;
        }

        if (*upload_data_size > 0) {
                /* Bodies are not used by any route yet, so they are only
                 * counted. A chunked body has no Content-Length to check up
                 * front; past what is worth draining the connection is
                 * dropped. */
                req->body_size += *upload_data_size;
                *upload_data_size = 0;
                if (req->body_size > API_BODY_DRAIN_MAX) {
                        log_debug("Dropping an API connection that sent more than %d bytes.",
                                  API_BODY_DRAIN_MAX);
                        return MHD_NO;
                }
                return MHD_YES;
        }
        /* The whole request is in. */
        conn_unwait(conn_of(c));
        if (req->body_size > API_BODY_MAX)
                return respond_error(c, LII_ERR_TOO_LARGE, "request body too large", NULL);
        if (!req->route)
                return respond_error(c, req->error_code, req->error_message,
                                     req->allow[0] ? req->allow : NULL);
        return respond_handler(a, c, req);
}

static void on_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
        free(*con_cls);
        *con_cls = NULL;
        /* The answer is out and the connection stays open: the clock of
         * the next request starts. Any other end closes the connection. */
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                conn_wait(conn_of(c));
}

/* libmicrohttpd 0.9.75 cannot be told that a connection handed to it with
 * MHD_add_connection() is not TCP, so before each answer it tries
 * TCP_NODELAY and TCP_CORK on the Unix socket, and says that it failed
 * and that the client may see a delay. A Unix socket has no such delay. */
static bool mhd_message_is_about_tcp(const char *msg)
{
        static const char *const prefixes[] = {"Setting TCP_", "Failed to push the data"};
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

/* MHD's messages are about misbehaving clients once it runs, so they are
 * debug noise then; while it starts they say why it could not. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        const struct api *a = cls;
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        msg[strcspn(msg, "\n")] = '\0';
        if (!a->started)
                log_warning("libmicrohttpd: %s", msg);
        else if (!mhd_message_is_about_tcp(msg))
                log_debug("libmicrohttpd: %s", msg);
}

static void on_timer(uv_timer_t *t);

/* Lets MHD do what is due and arms the timer for its next deadline. */
static void api_run(struct api *a)
{
        a->kicked = false;
        if (MHD_run(a->mhd) != MHD_YES)
                log_debug("libmicrohttpd could not process its connections.");
        if (a->kicked)
                return;

        MHD_UNSIGNED_LONG_LONG ms;
        if (MHD_get_timeout(a->mhd, &ms) == MHD_YES)
                uv_timer_start(&a->timer, on_timer, (uint64_t)ms, 0);
        else
                uv_timer_stop(&a->timer);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
        api_run(p->data);
}

static void on_timer(uv_timer_t *t)
{
        api_run(t->data);
}

/* Makes MHD run on the next turn of the loop. MHD_resume_connection() only
 * marks the connection: in this external epoll mode nothing makes MHD's
 * epoll fd readable for it (libmicrohttpd 0.9.75 leaves a resumed follower
 * waiting until some other connection stirs), so the timer does. */
static void api_kick(struct api *a)
{
        if (a->stopping)
                return;
        a->kicked = true;
        uv_timer_start(&a->timer, on_timer, 0, 0);
}

static int socket_from_systemd(int *ret_fd)
{
        int n = sd_listen_fds(1);
        if (n <= 0)
                return n;
        if (n != 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
                return -EBADFD;
        *ret_fd = SD_LISTEN_FDS_START;
        return 1;
}

/* Whether a process still accepts connections on the socket at sa. */
static int socket_is_live(const struct sockaddr_un *sa)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
                return 1;
        /* A full backlog still means someone listens. */
        if (errno == EAGAIN || errno == EINPROGRESS)
                return 1;
        if (errno == ECONNREFUSED || errno == ENOENT)
                return 0;
        return -errno;
}

/* Decides whether the path may be bound: free, or a stale socket of ours.
 * The errors name the reason: -ELOOP a symlink, -EEXIST not a socket,
 * -EOWNERDEAD another user's socket (an errno nothing else here returns, so
 * that the message can say what it means), -EADDRINUSE a live socket. */
static int socket_path_prepare(const struct sockaddr_un *sa)
{
        struct stat st;
        if (lstat(sa->sun_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        if (st.st_uid != geteuid())
                return -EOWNERDEAD;
        int r = socket_is_live(sa);
        if (r < 0)
                return r;
        if (r > 0)
                return -EADDRINUSE;
        if (unlink(sa->sun_path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int parent_dir_ensure(const char *path)
{
        _cleanup_free_ char *copy = xstrdup(path);
        const char *dir = dirname(copy);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int socket_create(const char *path, gid_t gid, int *ret_fd, struct stat *ret_st)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len = strlen(path);
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        int r = parent_dir_ensure(path);
        if (r < 0)
                return r;
        r = socket_path_prepare(&sa);
        if (r < 0)
                return r;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;

        /* fchmod() on a socket does not reach its file, so the mode comes
         * from the umask at bind(): 0600 at first, so that nobody but us can
         * connect before the group is set, then widened to 0660. The umask
         * is process-wide, but making a concurrent file more private for an
         * instant is harmless. */
        mode_t old = umask(0177);
        r = bind(fd, (const struct sockaddr *)&sa, sizeof sa);
        int saved = errno;
        umask(old);
        if (r < 0)
                return -saved;

        struct stat st;
        if (lstat(path, &st) < 0 || (gid != (gid_t)-1 && lchown(path, (uid_t)-1, gid) < 0) ||
            chmod(path, 0660) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                unlink(path);
                return r;
        }
        *ret_st = st;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static const char *socket_error_reason(int r)
{
        switch (r) {
        case -ELOOP:
                return "it is a symbolic link, refusing to replace it";
        case -EEXIST:
                return "a file that is not a socket is there, refusing to replace it";
        case -EOWNERDEAD:
                return "a socket owned by another user is there, refusing to replace it";
        case -EPERM:
                /* bind() and chmod() of our own socket do not fail so: it is
                 * the chown to read_group, which needs CAP_CHOWN. */
                return "cannot give it to read_group (liid needs CAP_CHOWN for that)";
        case -EADDRINUSE:
                return "another process is listening on it";
        default:
                return NULL;
        }
}

static int api_listen(struct api *a, const struct api_config *cfg, int *ret_fd)
{
        int fd = -1;
        int r = socket_from_systemd(&fd);
        if (r > 0) {
                log_info("Serving the API on the socket passed by systemd.");
                /* accept() must not block the loop when the backlog is
                 * empty; the socket liid creates is non-blocking already. */
                int flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        return log_error_errno(errno,
                                               "Cannot use the socket passed by systemd: %m");
                *ret_fd = fd;
                return 0;
        }
        if (r < 0)
                log_warning_errno(r, "Ignoring the sockets passed by systemd, expected one Unix "
                                     "stream socket: %m");

        if (!cfg->socket_path)
                return log_error_errno(EINVAL, "No API socket path configured.");

        struct stat st = {};
        r = socket_create(cfg->socket_path, cfg->read_gid, &fd, &st);
        if (r < 0) {
                const char *reason = socket_error_reason(r);
                if (reason)
                        return log_error_errno(r, "Cannot create the API socket %s: %s.",
                                               cfg->socket_path, reason);
                return log_error_errno(r, "Cannot create the API socket %s: %m", cfg->socket_path);
        }

        a->socket_path = xstrdup(cfg->socket_path);
        a->socket_dev = st.st_dev;
        a->socket_ino = st.st_ino;
        *ret_fd = fd;
        return 0;
}

/* Removes the socket only if it is still the one we bound, so that a liid
 * started meanwhile keeps its own. */
static void socket_remove(struct api *a)
{
        struct stat st;
        if (!a->socket_path)
                return;
        if (lstat(a->socket_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == a->socket_dev &&
            st.st_ino == a->socket_ino)
                unlink(a->socket_path);
        free(a->socket_path);
        a->socket_path = NULL;
}

/* Frees an api that has no libuv handle yet. */
static void api_release(struct api *a)
{
        if (a->listen_fd >= 0)
                close(a->listen_fd);
        socket_remove(a);
        free(a);
}

int api_new(uv_loop_t *loop, const struct api_config *cfg, const struct api_ops *ops,
            void *userdata, struct api **ret)
{
        struct api *a = xcalloc(1, sizeof *a);
        a->loop = loop;
        a->ops = ops;
        a->userdata = userdata;
        a->events = cfg->events;
        a->metrics = cfg->metrics;
        a->read_gid = cfg->read_gid;
        a->admin_gid = cfg->admin_gid;
        a->listen_fd = -1;

        int r = api_listen(a, cfg, &a->listen_fd);
        if (r < 0) {
                api_release(a);
                return r;
        }

        /* liid accepts the connections itself (see conn_accept()) and
         * hands them to MHD, whose own limit is only a backstop. The logger
         * comes first so that MHD's checks of the options use it. */
        a->mhd = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
            0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, API_CONNECTION_MEMORY_LIMIT,
            MHD_OPTION_CONNECTION_LIMIT, API_LIMIT_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
            API_CONNECTION_TIMEOUT_SEC, MHD_OPTION_NOTIFY_COMPLETED, on_request_completed, a,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, a, MHD_OPTION_END);
        if (!a->mhd) {
                api_release(a);
                return log_error_errno(EIO, "Cannot start the API server.");
        }
        a->started = true;

        uv_timer_t *timers[] = {&a->timer, &a->deadline_timer, &a->accept_timer};
        for (size_t i = 0; i < ELEMENTSOF(timers); i++) {
                uv_timer_init(loop, timers[i]);
                timers[i]->data = a;
                a->n_handles_open++;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        r = info ? uv_poll_init(loop, &a->poll, info->epoll_fd) : UV_EBADF;
        if (r >= 0) {
                a->poll.data = a;
                a->n_handles_open++;
                r = uv_poll_init(loop, &a->listen, a->listen_fd);
        }
        if (r >= 0) {
                a->listen.data = a;
                a->n_handles_open++;
                r = uv_poll_start(&a->poll, UV_READABLE, on_poll);
        }
        if (r >= 0)
                r = uv_poll_start(&a->listen, UV_READABLE, on_listen);
        if (r < 0) {
                log_error_errno(r, "Cannot watch the API server: %m");
                api_free(a);
                return r;
        }
        api_run(a);

        *ret = a;
        return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
        struct api *a = h->data;
        if (--a->n_handles_open == 0)
                free(a);
}

/* api_new() may have failed before it set up every handle; those it did
 * not are still zero, which is no handle type. */
static void handle_close(uv_handle_t *h)
{
        if (uv_handle_get_type(h) != UV_UNKNOWN_HANDLE)
                uv_close(h, on_handle_closed);
}

struct api *api_free(struct api *a)
{
        if (!a)
                return NULL;
        /* MHD must not stop with suspended connections, and the followers
         * must not be called by an events object that may go first. The
         * connections close with the daemon, which frees the followers. */
        a->stopping = true;
        for (struct follower *f = a->followers; f; f = f->next) {
                f->ending = true;
                events_unsubscribe(f->sub);
                f->sub = NULL;
                follower_resume(f);
        }
        /* libuv must stop watching the epoll fd and the listening socket
         * before they are closed. */
        handle_close((uv_handle_t *)&a->listen);
        handle_close((uv_handle_t *)&a->poll);
        handle_close((uv_handle_t *)&a->timer);
        handle_close((uv_handle_t *)&a->deadline_timer);
        handle_close((uv_handle_t *)&a->accept_timer);
        close(a->listen_fd);
        a->listen_fd = -1;
        while (a->n_lingering > 0)
                linger_close_oldest(a);
        MHD_stop_daemon(a->mhd);
        a->mhd = NULL;
        socket_remove(a);
        return NULL;
}
