/* The local API: libmicrohttpd serving HTTP/1.1 + JSON on a Unix socket,
 * driven by the libuv loop the way systemd-journal-remote embeds it (MHD's
 * epoll fd watched by a uv_poll_t, MHD_get_timeout() on a uv_timer_t). This
 * file owns MHD, the route table, the authorization of every request and
 * the answers; what they say comes from the daemon through struct api_ops.
 * The socket, accepting connections and GET /v1/events have their own
 * files (api-internal.h). */
#include "api.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <string.h>

#include "api-internal.h"
#include "lii-proto.h"
#include "log.h"

/* No API request carries more than a few bytes of body today; the cap keeps
 * a client from making liid buffer or churn through uploads. */
#define API_BODY_MAX (64 * 1024)
/* A body over API_BODY_MAX but within this is read (and dropped) before the
 * 413, so that simple clients see the answer; see request_begin(). */
#define API_BODY_DRAIN_MAX (1024 * 1024)
/* MHD keeps the request line and headers in this per-connection pool, so it
 * is also the header size limit (MHD answers 431 beyond it). */
#define API_CONNECTION_MEMORY_LIMIT ((size_t)64 * 1024)
/* Connections that stop reading an answer are closed after this much
 * idleness. An event follower with nothing to send is suspended, which
 * MHD never times out, so a quiet stream lives on; one whose client stops
 * reading what it is sent is closed like any other. */
#define API_CONNECTION_TIMEOUT_SEC 10u

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

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, json_object *doc,
                               const char *allow);

static enum MHD_Result respond_status(struct api *a, struct MHD_Connection *c,
                                      const struct request *req)
{
        const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, LII_QUERY_VIEW);
        enum status_view view;
        if (!v || strcmp(v, LII_VIEW_FULL) == 0)
                view = STATUS_VIEW_FULL;
        else if (strcmp(v, LII_VIEW_TABLE) == 0)
                view = STATUS_VIEW_TABLE;
        else
                return api_respond_error(
                    c, LII_ERR_BAD_REQUEST,
                    LII_QUERY_VIEW ": neither " LII_VIEW_FULL " nor " LII_VIEW_TABLE, NULL);
        _cleanup_json_ json_object *doc = a->ops->status(a->userdata, view);
        if (!doc)
                return api_respond_error(c, LII_ERR_INTERNAL, "no answer from liid", NULL);
        return respond(c, MHD_HTTP_OK, doc, NULL);
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

static json_object *handle_fleet(struct api *a, const struct request *req)
{
        return action(a, a->ops->fleet);
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

enum MHD_Result api_respond_text(struct MHD_Connection *c, unsigned status,
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
                return api_respond_error(c, LII_ERR_NOT_IMPLEMENTED,
                                         "this liid does not implement that yet", NULL);
        char *text = a->ops->metrics(a->userdata);
        if (!text)
                return api_respond_error(c, LII_ERR_INTERNAL, "the metrics could not be rendered",
                                         NULL);
        return api_respond_text(c, MHD_HTTP_OK, LII_CONTENT_TYPE_METRICS, text, strlen(text));
}

static enum MHD_Result respond_events(struct api *a, struct MHD_Connection *c,
                                      const struct request *req)
{
        return api_events_respond(a, c, req->head);
}

/* The first row whose path and method match serves a request; the rows
 * that match the path alone make the Allow header of a 405. */
static const struct route routes[] = {
    {"GET", LII_ROUTE_STATUS, NULL, ROLE_READER, .responder = respond_status},
    {"GET", LII_ROUTE_SERVICES, "", ROLE_READER, .handler = handle_service},
    {"GET", LII_ROUTE_EVENTS, NULL, ROLE_READER, .responder = respond_events},
    {"GET", LII_ROUTE_METRICS, NULL, ROLE_READER, .responder = respond_metrics},
    {"GET", LII_ROUTE_FLEET, NULL, ROLE_READER, .handler = handle_fleet},
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

enum MHD_Result api_respond_error(struct MHD_Connection *c, const char *code, const char *message,
                                  const char *allow)
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
                return api_respond_error(c, LII_ERR_INTERNAL, "no answer from liid", NULL);
        return respond(c, status_for_doc(doc), doc, NULL);
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
        enum role role = api_conn_role(api_conn_of(c));
        /* Without a role nothing else is revealed, not even which routes
         * exist, and the connection is not kept for another try. */
        if (role == ROLE_NONE)
                return api_respond_error(c, LII_ERR_FORBIDDEN, "permission denied", NULL);

        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = 0;
        if (cl) {
                char *end;
                errno = 0;
                declared = strtoull(cl, &end, 10);
                if (errno != 0 || end == cl || *end != '\0')
                        return api_respond_error(c, LII_ERR_BAD_REQUEST, "bad Content-Length",
                                                 NULL);
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
                return api_respond_error(c, LII_ERR_TOO_LARGE, "request body too large", NULL);

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
                        api_conn_unwait(api_conn_of(c));
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
        api_conn_unwait(api_conn_of(c));
        if (req->body_size > API_BODY_MAX)
                return api_respond_error(c, LII_ERR_TOO_LARGE, "request body too large", NULL);
        if (!req->route)
                return api_respond_error(c, req->error_code, req->error_message,
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
                api_conn_wait(api_conn_of(c));
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

void api_run(struct api *a)
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
void api_kick(struct api *a)
{
        if (a->stopping)
                return;
        a->kicked = true;
        uv_timer_start(&a->timer, on_timer, 0, 0);
}

/* Frees an api that has no libuv handle yet. */
static void api_release(struct api *a)
{
        if (a->socket.fd >= 0)
                close(a->socket.fd);
        api_socket_remove(&a->socket);
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
        a->socket.fd = -1;

        int r = api_socket_open(cfg->socket_path, cfg->read_gid, &a->socket);
        if (r < 0) {
                api_release(a);
                return r;
        }

        /* liid accepts the connections itself (api-conn.c) and
         * hands them to MHD, whose own limit is only a backstop. The logger
         * comes first so that MHD's checks of the options use it. */
        a->mhd = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
            0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, API_CONNECTION_MEMORY_LIMIT,
            MHD_OPTION_CONNECTION_LIMIT, API_LIMIT_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
            API_CONNECTION_TIMEOUT_SEC, MHD_OPTION_NOTIFY_COMPLETED, on_request_completed, a,
            MHD_OPTION_NOTIFY_CONNECTION, api_conn_notify, a, MHD_OPTION_END);
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
                r = uv_poll_init(loop, &a->listen, a->socket.fd);
        }
        if (r >= 0) {
                a->listen.data = a;
                a->n_handles_open++;
                r = uv_poll_start(&a->poll, UV_READABLE, on_poll);
        }
        if (r >= 0)
                r = api_conn_start(a);
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
        api_events_end(a);
        /* libuv must stop watching the epoll fd and the listening socket
         * before they are closed. */
        handle_close((uv_handle_t *)&a->listen);
        handle_close((uv_handle_t *)&a->poll);
        handle_close((uv_handle_t *)&a->timer);
        handle_close((uv_handle_t *)&a->deadline_timer);
        handle_close((uv_handle_t *)&a->accept_timer);
        close(a->socket.fd);
        a->socket.fd = -1;
        api_conn_end(a);
        MHD_stop_daemon(a->mhd);
        a->mhd = NULL;
        api_socket_remove(&a->socket);
        return NULL;
}
