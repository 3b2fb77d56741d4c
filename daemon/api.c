/* The local API: libmicrohttpd serving HTTP/1.1 + JSON on a Unix socket,
 * driven by the libuv loop the way systemd-journal-remote embeds it (MHD's
 * epoll fd watched by a uv_poll_t, MHD_get_timeout() on a uv_timer_t). This
 * file owns the socket (activation or creation), peer authorization on
 * every request and the route table; what the answers say comes from the
 * daemon through struct api_ops. */
#include "api.h"

#include <libgen.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

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
/* Idle connections are closed after this, so slow clients cannot hold one
 * of the API_CONNECTION_LIMIT slots for long. */
#define API_CONNECTION_TIMEOUT_SEC 10u
#define API_CONNECTION_LIMIT       64u
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

struct api {
        uv_poll_t poll;
        uv_timer_t timer;
        unsigned n_handles_open;

        struct MHD_Daemon *mhd;
        const struct api_ops *ops;
        void *userdata;
        gid_t read_gid;
        gid_t admin_gid;
        bool started;

        /* Set only when liid created the socket, so that api_free() removes
         * that socket and nothing else. */
        char *socket_path;
        dev_t socket_dev;
        ino_t socket_ino;
};

struct request;
typedef json_object *(*route_handler_t)(struct api *a, const struct request *req);

struct route {
        const char *method;
        /* The whole path, or with a suffix the prefix before {name}. */
        const char *path;
        /* What follows {name} ("" for none); NULL for a path without a name. */
        const char *suffix;
        enum role role;
        route_handler_t handler;
};

/* Per-request state of a request that waits for its body (POST). */
struct request {
        const struct route *route;
        char name[LII_SERVICE_NAME_MAX + 1];
        size_t body_size;
};

static void mhd_response_destroyp(struct MHD_Response **r)
{
        if (*r)
                MHD_destroy_response(*r);
}

static void json_object_putp(json_object **o)
{
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

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

/* Later endpoints (events, metrics) are new rows. The first row whose path
 * and method match serves a request; the rows that match the path alone
 * make the Allow header of a 405. */
static const struct route routes[] = {
    {"GET", LII_ROUTE_STATUS, NULL, ROLE_READER, handle_status},
    {"GET", LII_ROUTE_SERVICES, "", ROLE_READER, handle_service},
    {"POST", LII_ROUTE_SYNC, NULL, ROLE_ADMIN, handle_sync},
    {"POST", LII_ROUTE_PAUSE, NULL, ROLE_ADMIN, handle_pause},
    {"POST", LII_ROUTE_RESUME, NULL, ROLE_ADMIN, handle_resume},
    {"POST", LII_ROUTE_SERVICES, LII_ROUTE_ROLLBACK_SUFFIX, ROLE_ADMIN, handle_rollback},
    {"POST", LII_ROUTE_SERVICES, LII_ROUTE_REPLACE_SUFFIX, ROLE_ADMIN, handle_replace},
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
        const char *s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
        char *body = xasprintf("%s\n", s);
        size_t len = strlen(body);
        _cleanup_(mhd_response_destroyp) struct MHD_Response *r =
            MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
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

static int peer_role(const struct api *a, int fd, enum role *ret)
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

        if (cred.uid == 0 || gid_matches(a->admin_gid, cred.gid, groups, n))
                *ret = ROLE_ADMIN;
        else if (gid_matches(a->read_gid, cred.gid, groups, n))
                *ret = ROLE_READER;
        else
                *ret = ROLE_NONE;
        return 0;
}

/* First call of a request: authorize, route, check the size, then answer
 * or start collecting the body. */
static enum MHD_Result request_begin(struct api *a, struct MHD_Connection *c, const char *url,
                                     const char *method, void **con_cls)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        enum role role = ROLE_NONE;
        int r = ci ? peer_role(a, ci->connect_fd, &role) : -EBADF;
        if (r < 0)
                log_debug_errno(r, "Could not identify an API peer, refusing it: %m");
        /* Without a role nothing else is revealed, not even which routes exist. */
        if (role == ROLE_NONE)
                return respond_error(c, LII_ERR_FORBIDDEN, "permission denied", NULL);

        const struct route *route = NULL;
        char name[LII_SERVICE_NAME_MAX + 1] = "";
        char allow[64] = "";
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                char n[LII_SERVICE_NAME_MAX + 1] = "";
                if (!route_match_path(&routes[i], url, n))
                        continue;
                if (method_matches(routes[i].method, method) && !route) {
                        route = &routes[i];
                        memcpy(name, n, sizeof name);
                }
                size_t used = strlen(allow);
                snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "",
                         routes[i].method);
                if (strcmp(routes[i].method, MHD_HTTP_METHOD_GET) == 0) {
                        used = strlen(allow);
                        snprintf(allow + used, sizeof allow - used, ", %s", MHD_HTTP_METHOD_HEAD);
                }
        }
        if (!route && allow[0])
                return respond_error(c, LII_ERR_METHOD_NOT_ALLOWED, "method not allowed", allow);
        if (!route)
                return respond_error(c, LII_ERR_NOT_FOUND, "no such endpoint", NULL);
        if (role < route->role)
                return respond_error(c, LII_ERR_FORBIDDEN,
                                     "permission denied: this needs root or the admin group", NULL);

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
        bool is_get = strcmp(route->method, MHD_HTTP_METHOD_GET) == 0;
        /* An answer that comes while the client is still sending makes it
         * fail on write before it reads the answer. So a body somewhat over
         * the limit is read and dropped before the 413, and only a client
         * that waits for "100 Continue" (curl does above 1 MiB) or declares
         * a huge body gets it at once. */
        const char *expect =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if (declared > API_BODY_MAX && (is_get || expect || declared > API_BODY_DRAIN_MAX))
                return respond_error(c, LII_ERR_TOO_LARGE, "request body too large", NULL);

        struct request req = {.route = route};
        memcpy(req.name, name, sizeof req.name);

        /* A GET is answered now; its body, if a client sent one, is ignored
         * and discarded by MHD. */
        if (is_get)
                return respond_handler(a, c, &req);

        struct request *p = xcalloc(1, sizeof *p);
        *p = req;
        *con_cls = p;
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        struct api *a = cls;
        struct request *req = *con_cls;

        if (!req)
                return request_begin(a, c, url, method, con_cls);

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
        if (req->body_size > API_BODY_MAX)
                return respond_error(c, LII_ERR_TOO_LARGE, "request body too large", NULL);
        return respond_handler(a, c, req);
}

static void on_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
        free(*con_cls);
        *con_cls = NULL;
}

/* MHD's messages are about misbehaving clients once it runs, so they are
 * debug noise then; while it starts they say why it could not. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        const struct api *a = cls;
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        msg[strcspn(msg, "\n")] = '\0';
        if (a->started)
                log_debug("libmicrohttpd: %s", msg);
        else
                log_warning("libmicrohttpd: %s", msg);
}

static void on_timer(uv_timer_t *t);

/* Lets MHD do what is due and arms the timer for its next deadline. */
static void api_run(struct api *a)
{
        if (MHD_run(a->mhd) != MHD_YES)
                log_debug("libmicrohttpd could not process its connections.");

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
 * -EPERM another user's socket, -EADDRINUSE a live socket. */
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
                return -EPERM;
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
        case -EPERM:
                return "a socket owned by another user is there, refusing to replace it";
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

static void api_release(struct api *a)
{
        socket_remove(a);
        free(a);
}

int api_new(uv_loop_t *loop, const struct api_config *cfg, const struct api_ops *ops,
            void *userdata, struct api **ret)
{
        struct api *a = xcalloc(1, sizeof *a);
        a->ops = ops;
        a->userdata = userdata;
        a->read_gid = cfg->read_gid;
        a->admin_gid = cfg->admin_gid;

        int fd = -1;
        int r = api_listen(a, cfg, &fd);
        if (r < 0) {
                api_release(a);
                return r;
        }

        /* From here MHD owns fd: it closes it on failure too (0.9.75). The
         * logger comes first so that MHD's checks of the options use it. */
        a->mhd =
            MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, a,
                             MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a, MHD_OPTION_LISTEN_SOCKET,
                             fd, MHD_OPTION_CONNECTION_MEMORY_LIMIT, API_CONNECTION_MEMORY_LIMIT,
                             MHD_OPTION_CONNECTION_LIMIT, API_CONNECTION_LIMIT,
                             MHD_OPTION_CONNECTION_TIMEOUT, API_CONNECTION_TIMEOUT_SEC,
                             MHD_OPTION_NOTIFY_COMPLETED, on_request_completed, a, MHD_OPTION_END);
        if (!a->mhd) {
                api_release(a);
                return log_error_errno(EIO, "Cannot start the API server.");
        }
        a->started = true;

        const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        r = info ? uv_poll_init(loop, &a->poll, info->epoll_fd) : UV_EBADF;
        if (r < 0) {
                MHD_stop_daemon(a->mhd);
                api_release(a);
                return log_error_errno(r, "Cannot watch the API server: %m");
        }
        a->poll.data = a;
        uv_timer_init(loop, &a->timer);
        a->timer.data = a;
        a->n_handles_open = 2;

        r = uv_poll_start(&a->poll, UV_READABLE, on_poll);
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

struct api *api_free(struct api *a)
{
        if (!a)
                return NULL;
        /* libuv must stop watching the epoll fd before MHD closes it. */
        uv_close((uv_handle_t *)&a->poll, on_handle_closed);
        uv_close((uv_handle_t *)&a->timer, on_handle_closed);
        MHD_stop_daemon(a->mhd);
        a->mhd = NULL;
        socket_remove(a);
        return NULL;
}
