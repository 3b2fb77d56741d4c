/* The local API as a client sees it: routes, status codes, JSON bodies,
 * the event log and its followers, metrics, peer authorization by uid and
 * groups, and how the socket is created and guarded. The API runs on a
 * libuv loop in a second thread; requests come from libcurl in the test
 * thread, or from a forked child that first drops to another uid and set
 * of groups. Events are emitted on the loop thread, as liid does. */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "api.h"
#include "events.h"
#include "lii-proto.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define READ_GID  ((gid_t)4242)
#define ADMIN_GID ((gid_t)4343)
#define NOBODY    ((uid_t)65534)

static atomic_int n_sync_calls;

#define METRICS_TEXT "# TYPE lii_paused gauge\nlii_paused 0\n"

static json_object *hello_doc(void)
{
        json_object *svc = json_object_new_object();
        json_object_object_add(svc, LII_F_STATE, json_object_new_string("running"));
        return svc;
}

static json_object *op_status(void *userdata, enum status_view view)
{
        json_object *services = json_object_new_object();
        json_object_object_add(services, "hello", hello_doc());
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, LII_F_NODE, json_object_new_string("test-node"));
        json_object_object_add(doc, LII_F_PAUSED, json_object_new_boolean(false));
        json_object_object_add(doc, LII_F_URL, json_object_new_string("file:///x/desired.json"));
        json_object_object_add(doc, LII_F_SERVICES, services);
        if (view == STATUS_VIEW_TABLE)
                json_object_object_add(doc, LII_F_VIEW, json_object_new_string(LII_VIEW_TABLE));
        return doc;
}

static json_object *op_service(void *userdata, const char *name)
{
        return strcmp(name, "hello") == 0 ? hello_doc() : NULL;
}

static json_object *op_rollback(void *userdata, const char *name)
{
        if (strcmp(name, "hello") != 0)
                return NULL;
        return lii_error_new(LII_ERR_CONFLICT, "hello has no previous revision");
}

struct server {
        struct events *events;
        char dir[64];
        char sock[100];
        uv_loop_t loop;
        uv_async_t stop;
        uv_async_t emit;
        unsigned n_emit;  /* how many events on_emit() emits… */
        size_t emit_size; /* …with messages this long (0: short) */
        sem_t emitted;
        pthread_t thread;
        struct api *api;
        /* Written on the loop thread: read it only after server_stop(). */
        struct metrics metrics;
};

static json_object *op_sync(void *userdata)
{
        struct server *s = userdata;
        atomic_fetch_add(&n_sync_calls, 1);
        /* As liid does: an action leaves an event, emitted from inside the
         * request that asked for it. */
        events_emit(s->events, EVENT_OPERATOR, NULL, 0, "sync requested");
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "ok", json_object_new_boolean(true));
        return doc;
}

static char *op_metrics(void *userdata)
{
        return xstrdup(METRICS_TEXT);
}

/* pause, resume and replace are left out on purpose: they answer 501. */
static const struct api_ops ops = {
    .status = op_status,
    .service = op_service,
    .sync = op_sync,
    .rollback = op_rollback,
    .metrics = op_metrics,
};

static void on_stop(uv_async_t *h)
{
        struct server *s = h->data;
        s->api = api_free(s->api);
        uv_close((uv_handle_t *)h, NULL);
        uv_close((uv_handle_t *)&s->emit, NULL);
}

static void on_emit(uv_async_t *h)
{
        struct server *s = h->data;
        for (unsigned i = 0; i < s->n_emit; i++) {
                uint64_t seq = events_last_seq(s->events) + 1;
                if (s->emit_size == 0) {
                        events_emit(s->events, EVENT_INSTANCE_STARTED, "hello", seq, "event %llu",
                                    (unsigned long long)seq);
                } else {
                        events_emit(s->events, EVENT_INSTANCE_STARTED, "hello", seq, "%0*llu",
                                    (int)s->emit_size, (unsigned long long)seq);
                }
        }
        sem_post(&s->emitted);
}

/* Emits n events on the loop thread and returns when they were. */
static void server_emit(struct server *s, unsigned n, size_t message_size)
{
        s->n_emit = n;
        s->emit_size = message_size;
        ck_assert_int_eq(uv_async_send(&s->emit), 0);
        while (sem_wait(&s->emitted) < 0)
                ck_assert_int_eq(errno, EINTR);
}

static void *loop_thread(void *p)
{
        struct server *s = p;
        uv_run(&s->loop, UV_RUN_DEFAULT);
        return NULL;
}

/* A fresh folder per test; the socket goes into a subfolder api_new()
 * has to create. The folder is world-searchable so that the children that
 * drop to nobody can reach the socket. */
static void server_dir(struct server *s)
{
        snprintf(s->dir, sizeof s->dir, "/tmp/lii-test-api-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(s->dir));
        ck_assert_int_eq(chmod(s->dir, 0755), 0);
        snprintf(s->sock, sizeof s->sock, "%s/run/liid.sock", s->dir);
}

static int server_try_start(struct server *s)
{
        ck_assert_int_eq(events_new(&s->events), 0);
        const struct api_config cfg = {
            .socket_path = s->sock,
            .read_gid = READ_GID,
            .admin_gid = ADMIN_GID,
            .events = s->events,
            .metrics = &s->metrics,
        };
        s->metrics = (struct metrics){0};
        ck_assert_int_eq(uv_loop_init(&s->loop), 0);
        int r = api_new(&s->loop, &cfg, &ops, s, &s->api);
        if (r < 0) {
                /* Nothing may be left on the loop after a failure. */
                ck_assert_int_eq(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
                ck_assert_int_eq(uv_loop_close(&s->loop), 0);
                s->events = events_free(s->events);
                return r;
        }
        ck_assert_int_eq(uv_async_init(&s->loop, &s->stop, on_stop), 0);
        s->stop.data = s;
        ck_assert_int_eq(uv_async_init(&s->loop, &s->emit, on_emit), 0);
        s->emit.data = s;
        ck_assert_int_eq(sem_init(&s->emitted, 0, 0), 0);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, loop_thread, s), 0);
        return 0;
}

static void server_start(struct server *s)
{
        server_dir(s);
        ck_assert_int_eq(server_try_start(s), 0);
}

/* Stops the API from its own loop and checks that it left no handle
 * behind: uv_loop_close() fails while one is still open. */
static void server_stop(struct server *s)
{
        ck_assert_int_eq(uv_async_send(&s->stop), 0);
        ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
        ck_assert_int_eq(uv_loop_close(&s->loop), 0);
        /* The api is gone, so nothing holds a subscription any more. */
        s->events = events_free(s->events);
        sem_destroy(&s->emitted);
}

static void server_cleanup(struct server *s)
{
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        ck_assert_int_eq(system(cmd), 0);
}

static struct sockaddr_un sockaddr_for(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
        memcpy(sa.sun_path, path, strlen(path));
        return sa;
}

struct reply {
        long status;
        char content_type[128];
        char allow[128];
        bool connection_close; /* the answer said "Connection: close" */
        char *body;
        size_t size;
        json_object *doc;
};

static void reply_done(struct reply *r)
{
        free(r->body);
        json_object_put(r->doc);
        *r = (struct reply){0};
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
        struct reply *r = userdata;
        r->body = realloc(r->body, r->size + size * n + 1);
        ck_assert_ptr_nonnull(r->body);
        memcpy(r->body + r->size, p, size * n);
        r->size += size * n;
        r->body[r->size] = '\0';
        return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
        struct reply *r = userdata;
        size_t len = size * n;
        char line[128];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        line[strcspn(line, "\r\n")] = '\0';
        if (strncasecmp(line, "Allow: ", 7) == 0)
                snprintf(r->allow, sizeof r->allow, "%s", line + 7);
        if (strcasecmp(line, "Connection: close") == 0)
                r->connection_close = true;
        return len;
}

/* Collects the body until it holds a line, then stops the transfer. */
static size_t on_first_line(char *p, size_t size, size_t n, void *userdata)
{
        struct reply *r = userdata;
        on_body(p, size, n, r);
        return strchr(r->body, '\n') ? 0 : size * n;
}

static void parse_body(struct reply *r)
{
        if (r->body)
                r->doc = json_tokener_parse(r->body);
}

/* One request with libcurl over the socket on the handle c, which keeps
 * its connection for the next request when the server lets it. */
static void http_on(CURL *c, const struct server *s, const char *method, const char *path,
                    size_t body_size, struct reply *r)
{
        *r = (struct reply){0};
        curl_easy_reset(c);
        char url[256];
        snprintf(url, sizeof url, "%s%s", LII_API_HOST, path);
        char *body = NULL;
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s->sock);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
        if (strcmp(method, "POST") == 0) {
                body = xcalloc(body_size + 1, 1);
                memset(body, 'x', body_size);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_size);
        } else if (strcmp(method, "HEAD") == 0) {
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (strcmp(method, "GET") != 0) {
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        }
        CURLcode cc = curl_easy_perform(c);
        ck_assert_msg(cc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(cc));
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        const char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(r->content_type, sizeof r->content_type, "%s", ct ? ct : "");
        free(body);
        parse_body(r);
}

/* One request on a connection of its own, as liictl and curl users do. */
static void http(const struct server *s, const char *method, const char *path, size_t body_size,
                 struct reply *r)
{
        CURL *c = curl_easy_init();
        ck_assert_ptr_nonnull(c);
        http_on(c, s, method, path, body_size, r);
        curl_easy_cleanup(c);
}

static const char *error_code(const struct reply *r)
{
        json_object *err, *code;
        if (!r->doc || !json_object_object_get_ex(r->doc, LII_F_ERROR, &err) ||
            !json_object_object_get_ex(err, LII_F_CODE, &code))
                return "(no error code)";
        return json_object_get_string(code);
}

static void assert_error(const struct server *s, const char *method, const char *path, long status,
                         const char *code)
{
        struct reply r;
        http(s, method, path, 0, &r);
        ck_assert_msg(r.status == status, "%s %s: HTTP %ld, expected %ld", method, path, r.status,
                      status);
        ck_assert_str_eq(r.content_type, "application/json");
        ck_assert_str_eq(error_code(&r), code);
        reply_done(&r);
}

START_TEST(status_returns_the_daemon_document)
{
        struct server s;
        server_start(&s);

        struct reply r;
        http(&s, "GET", LII_ROUTE_STATUS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.content_type, "application/json");
        /* Compact, with a newline so that curl output ends on its own line;
         * slashes are not escaped. */
        ck_assert_uint_gt(r.size, 2);
        ck_assert_int_eq(r.body[r.size - 1], '\n');
        ck_assert_ptr_null(strchr(r.body, ' '));
        ck_assert_ptr_nonnull(strstr(r.body, "file:///x/desired.json"));
        json_object *want = op_status(NULL, STATUS_VIEW_FULL);
        ck_assert_msg(json_object_equal(r.doc, want), "got %s", r.body);
        json_object_put(want);
        reply_done(&r);

        http(&s, "HEAD", LII_ROUTE_STATUS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.size, 0);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

/* ?view= picks the daemon's view; anything but full or table is a 400
 * that names the parameter. */
START_TEST(status_view_is_passed_on)
{
        struct server s;
        server_start(&s);
        static const struct {
                const char *path;
                enum status_view view;
        } cases[] = {
            {LII_ROUTE_STATUS "?view=full", STATUS_VIEW_FULL},
            {LII_ROUTE_STATUS "?view=table", STATUS_VIEW_TABLE},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct reply r;
                http(&s, "GET", cases[i].path, 0, &r);
                ck_assert_int_eq(r.status, 200);
                json_object *want = op_status(NULL, cases[i].view);
                ck_assert_msg(json_object_equal(r.doc, want), "%s: got %s", cases[i].path, r.body);
                json_object_put(want);
                reply_done(&r);
        }
        struct reply r;
        http(&s, "GET", LII_ROUTE_STATUS "?view=everything", 0, &r);
        ck_assert_int_eq(r.status, 400);
        ck_assert_str_eq(error_code(&r), LII_ERR_BAD_REQUEST);
        ck_assert_ptr_nonnull(strstr(r.body, "view: neither full nor table"));
        reply_done(&r);
        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(service_by_name)
{
        struct server s;
        server_start(&s);

        struct reply r;
        http(&s, "GET", LII_ROUTE_SERVICES "hello", 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.content_type, "application/json");
        json_object *want = hello_doc();
        ck_assert_msg(json_object_equal(r.doc, want), "got %s", r.body);
        json_object_put(want);
        reply_done(&r);

        assert_error(&s, "GET", LII_ROUTE_SERVICES "nosuch", 404, LII_ERR_NOT_FOUND);
        /* Names outside the grammar never reach the daemon. */
        assert_error(&s, "GET", LII_ROUTE_SERVICES "Hello", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", LII_ROUTE_SERVICES "-hello", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", LII_ROUTE_SERVICES "", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", LII_ROUTE_SERVICES "..", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET",
                     LII_ROUTE_SERVICES "a123456789012345678901234567890123456789012345678", 404,
                     LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", LII_ROUTE_SERVICES "hello/", 404, LII_ERR_NOT_FOUND);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(unknown_paths_and_methods)
{
        struct server s;
        server_start(&s);

        assert_error(&s, "GET", "/", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", "/v2/status", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", LII_ROUTE_STATUS "/", 404, LII_ERR_NOT_FOUND);
        assert_error(&s, "GET", LII_ROUTE_STATUS "x", 404, LII_ERR_NOT_FOUND);
        /* The query string is not part of the route. */
        struct reply r;
        http(&s, "GET", LII_ROUTE_STATUS "?pretty=1", 0, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        http(&s, "POST", LII_ROUTE_STATUS, 0, &r);
        ck_assert_int_eq(r.status, 405);
        ck_assert_str_eq(error_code(&r), LII_ERR_METHOD_NOT_ALLOWED);
        ck_assert_str_eq(r.allow, "GET, HEAD");
        reply_done(&r);

        http(&s, "DELETE", LII_ROUTE_SERVICES "hello", 0, &r);
        ck_assert_int_eq(r.status, 405);
        ck_assert_str_eq(r.allow, "GET, HEAD");
        reply_done(&r);

        http(&s, "GET", LII_ROUTE_SYNC, 0, &r);
        ck_assert_int_eq(r.status, 405);
        ck_assert_str_eq(r.allow, "POST");
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(actions_as_root)
{
        ck_assert_msg(geteuid() == 0, "the API tests run as root");
        struct server s;
        server_start(&s);
        atomic_store(&n_sync_calls, 0);

        struct reply r;
        http(&s, "POST", LII_ROUTE_SYNC, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_int_eq(atomic_load(&n_sync_calls), 1);
        reply_done(&r);

        /* The daemon's error document picks the status. */
        assert_error(&s, "POST", LII_ROUTE_SERVICES "hello" LII_ROUTE_ROLLBACK_SUFFIX, 409,
                     LII_ERR_CONFLICT);
        assert_error(&s, "POST", LII_ROUTE_SERVICES "nosuch" LII_ROUTE_ROLLBACK_SUFFIX, 404,
                     LII_ERR_NOT_FOUND);
        /* Actions the daemon did not wire up say so. */
        assert_error(&s, "POST", LII_ROUTE_PAUSE, 501, LII_ERR_NOT_IMPLEMENTED);
        assert_error(&s, "POST", LII_ROUTE_SERVICES "hello" LII_ROUTE_REPLACE_SUFFIX, 501,
                     LII_ERR_NOT_IMPLEMENTED);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(oversized_body_is_refused)
{
        struct server s;
        server_start(&s);
        atomic_store(&n_sync_calls, 0);

        struct reply r;
        http(&s, "POST", LII_ROUTE_SYNC, 100 * 1024, &r);
        ck_assert_int_eq(r.status, 413);
        ck_assert_str_eq(error_code(&r), LII_ERR_TOO_LARGE);
        reply_done(&r);

        /* curl waits for "100 Continue" before a body this large, so the
         * answer comes before the body. */
        http(&s, "POST", LII_ROUTE_SYNC, 2 * 1024 * 1024, &r);
        ck_assert_int_eq(r.status, 413);
        ck_assert_str_eq(error_code(&r), LII_ERR_TOO_LARGE);
        reply_done(&r);

        ck_assert_int_eq(atomic_load(&n_sync_calls), 0);

        /* A body within the limit is fine. */
        http(&s, "POST", LII_ROUTE_SYNC, 1000, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_int_eq(atomic_load(&n_sync_calls), 1);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

/* A slow client that never finishes its headers must not hold up others. */
START_TEST(stalled_client_does_not_block_others)
{
        struct server s;
        server_start(&s);

        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = sockaddr_for(s.sock);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char partial[] = "GET /v1/status HTTP/1.1\r\nHost: lii\r\n";
        ck_assert_int_eq(write(fd, partial, strlen(partial)), (ssize_t)strlen(partial));

        struct reply r;
        http(&s, "GET", LII_ROUTE_STATUS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        close(fd);
        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

/* Automation and load generators send many requests on one connection:
 * every ordinary answer, errors included, leaves it open for the next. */
START_TEST(connection_is_kept_between_requests)
{
        struct server s;
        server_start(&s);
        server_emit(&s, 2, 0);

        static const struct {
                const char *method;
                const char *path;
                size_t body_size;
                long status;
        } requests[] = {
            {"GET", LII_ROUTE_STATUS, 0, 200},    {"GET", LII_ROUTE_SERVICES "hello", 0, 200},
            {"HEAD", LII_ROUTE_STATUS, 0, 200},   {"GET", LII_ROUTE_SERVICES "nosuch", 0, 404},
            {"DELETE", LII_ROUTE_STATUS, 0, 405}, {"POST", LII_ROUTE_SYNC, 10, 200},
            {"GET", LII_ROUTE_EVENTS, 0, 200},    {"GET", LII_ROUTE_METRICS, 0, 200},
            {"GET", LII_ROUTE_STATUS, 0, 200},
        };
        CURL *c = curl_easy_init();
        ck_assert_ptr_nonnull(c);
        for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
                struct reply r;
                http_on(c, &s, requests[i].method, requests[i].path, requests[i].body_size, &r);
                ck_assert_msg(r.status == requests[i].status, "%s %s: HTTP %ld", requests[i].method,
                              requests[i].path, r.status);
                ck_assert_msg(!r.connection_close, "%s %s: the answer closes the connection",
                              requests[i].method, requests[i].path);
                /* How many connections curl had to open for this request. */
                long opened = -1;
                curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &opened);
                ck_assert_msg(opened == (i == 0 ? 1 : 0), "%s %s: %ld new connections",
                              requests[i].method, requests[i].path, opened);
                reply_done(&r);
        }

        /* The event stream still works, on a connection that served
         * others before. */
        struct reply r = {0};
        char url[256];
        snprintf(url, sizeof url, "%s%s?%s=1", LII_API_HOST, LII_ROUTE_EVENTS, LII_QUERY_FOLLOW);
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s.sock);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_first_line);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        /* on_first_line stops the transfer once the backlog's first event
         * is in. */
        ck_assert_int_eq(curl_easy_perform(c), CURLE_WRITE_ERROR);
        long opened = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &opened);
        ck_assert_int_eq(opened, 0);
        ck_assert_ptr_nonnull(r.body);
        ck_assert_ptr_nonnull(strstr(r.body, "\"event 1\""));
        reply_done(&r);
        curl_easy_cleanup(c);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

struct peer {
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;
};

/* Sends one request from a child that has become uid nobody with the given
 * groups before it connects, since the kernel records the credentials at
 * connect(). The test made the socket world-writable first so that the
 * kernel lets nobody connect and the decision is the API's alone. */
static void http_as(const struct server *s, const struct peer *p, const char *method,
                    const char *path, struct reply *r)
{
        *r = (struct reply){0};
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                if (setgroups(p->n_groups, p->groups) < 0 || setgid(p->gid) < 0 ||
                    setuid(NOBODY) < 0)
                        _exit(10);
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = sockaddr_for(s->sock);
                if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                        _exit(11);
                char req[512];
                int n = snprintf(req, sizeof req,
                                 "%s %s HTTP/1.1\r\nHost: lii\r\nConnection: close\r\n"
                                 "Content-Length: 0\r\n\r\n",
                                 method, path);
                if (write(fd, req, (size_t)n) != n)
                        _exit(12);
                char buf[4096];
                ssize_t k;
                while ((k = read(fd, buf, sizeof buf)) > 0)
                        if (write(pipefd[1], buf, (size_t)k) != k)
                                _exit(13);
                _exit(k < 0 ? 14 : 0);
        }
        close(pipefd[1]);
        char buf[4096];
        ssize_t k;
        while ((k = read(pipefd[0], buf, sizeof buf)) > 0)
                on_body(buf, 1, (size_t)k, r);
        close(pipefd[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: %d", status);
        ck_assert_ptr_nonnull(r->body);
        ck_assert_int_eq(sscanf(r->body, "HTTP/1.1 %ld", &r->status), 1);
        char *body = strstr(r->body, "\r\n\r\n");
        if (body && body[4])
                r->doc = json_tokener_parse(body + 4);
}

static void server_start_open(struct server *s)
{
        ck_assert_msg(geteuid() == 0, "the peer tests change uid and need root");
        server_start(s);
        ck_assert_int_eq(chmod(s->sock, 0666), 0);
        char run[128];
        snprintf(run, sizeof run, "%s/run", s->dir);
        ck_assert_int_eq(chmod(run, 0755), 0);
}

START_TEST(stranger_is_forbidden)
{
        struct server s;
        server_start_open(&s);
        atomic_store(&n_sync_calls, 0);

        const struct peer nobody = {.gid = 65534};
        struct reply r;
        http_as(&s, &nobody, "GET", LII_ROUTE_STATUS, &r);
        ck_assert_int_eq(r.status, 403);
        ck_assert_str_eq(error_code(&r), LII_ERR_FORBIDDEN);
        reply_done(&r);

        /* Routing happens after authorization: a stranger learns nothing. */
        http_as(&s, &nobody, "GET", "/nonexistent", &r);
        ck_assert_int_eq(r.status, 403);
        reply_done(&r);

        http_as(&s, &nobody, "POST", LII_ROUTE_SYNC, &r);
        ck_assert_int_eq(r.status, 403);
        ck_assert_int_eq(atomic_load(&n_sync_calls), 0);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(read_group_may_read_only)
{
        struct server s;
        server_start_open(&s);
        atomic_store(&n_sync_calls, 0);

        /* The read group as the primary group… */
        const struct peer primary = {.gid = READ_GID};
        struct reply r;
        http_as(&s, &primary, "GET", LII_ROUTE_STATUS, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_nonnull(r.doc);
        reply_done(&r);

        http_as(&s, &primary, "GET", LII_ROUTE_SERVICES "hello", &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        /* Readers may watch what happens, too. */
        http_as(&s, &primary, "GET", LII_ROUTE_EVENTS, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        http_as(&s, &primary, "GET", LII_ROUTE_METRICS, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        http_as(&s, &primary, "POST", LII_ROUTE_SYNC, &r);
        ck_assert_int_eq(r.status, 403);
        ck_assert_str_eq(error_code(&r), LII_ERR_FORBIDDEN);
        ck_assert_int_eq(atomic_load(&n_sync_calls), 0);
        reply_done(&r);

        /* …and as a supplementary one, which only SO_PEERGROUPS shows. */
        const gid_t groups[] = {100, READ_GID};
        const struct peer supplementary = {.gid = 65534, .groups = groups, .n_groups = 2};
        http_as(&s, &supplementary, "GET", LII_ROUTE_STATUS, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(admin_group_may_act)
{
        struct server s;
        server_start_open(&s);
        atomic_store(&n_sync_calls, 0);

        const gid_t groups[] = {ADMIN_GID};
        const struct peer admin = {.gid = 65534, .groups = groups, .n_groups = 1};
        struct reply r;
        http_as(&s, &admin, "POST", LII_ROUTE_SYNC, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_int_eq(atomic_load(&n_sync_calls), 1);
        reply_done(&r);

        http_as(&s, &admin, "GET", LII_ROUTE_STATUS, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(socket_mode_and_group)
{
        struct server s;
        server_start(&s);

        struct stat st;
        ck_assert_int_eq(lstat(s.sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0660);
        ck_assert_uint_eq(st.st_uid, geteuid());
        ck_assert_uint_eq(st.st_gid, READ_GID);

        char run[128];
        snprintf(run, sizeof run, "%s/run", s.dir);
        ck_assert_int_eq(lstat(run, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));

        /* liid removes the socket it created when it stops. */
        server_stop(&s);
        ck_assert_int_eq(lstat(s.sock, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        server_cleanup(&s);
}
END_TEST

START_TEST(symlink_is_refused)
{
        struct server s;
        server_dir(&s);
        char run[128], target[128];
        snprintf(run, sizeof run, "%s/run", s.dir);
        snprintf(target, sizeof target, "%s/target", s.dir);
        ck_assert_int_eq(mkdir(run, 0755), 0);
        int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(symlink(target, s.sock), 0);

        ck_assert_int_eq(server_try_start(&s), -ELOOP);

        struct stat st;
        ck_assert_int_eq(lstat(s.sock, &st), 0);
        ck_assert(S_ISLNK(st.st_mode));
        ck_assert_int_eq(lstat(target, &st), 0);
        ck_assert(S_ISREG(st.st_mode));

        /* A dangling symlink is no better. */
        ck_assert_int_eq(unlink(target), 0);
        ck_assert_int_lt(server_try_start(&s), 0);
        ck_assert_int_eq(lstat(target, &st), -1);
        server_cleanup(&s);
}
END_TEST

START_TEST(regular_file_is_refused)
{
        struct server s;
        server_dir(&s);
        char run[128];
        snprintf(run, sizeof run, "%s/run", s.dir);
        ck_assert_int_eq(mkdir(run, 0755), 0);
        int fd = open(s.sock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "keep", 4), 4);
        close(fd);

        ck_assert_int_lt(server_try_start(&s), 0);

        struct stat st;
        ck_assert_int_eq(lstat(s.sock, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(st.st_size, 4);
        server_cleanup(&s);
}
END_TEST

static int bind_at(const char *path, bool do_listen)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_un sa = sockaddr_for(path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        if (do_listen)
                ck_assert_int_eq(listen(fd, 4), 0);
        return fd;
}

START_TEST(stale_socket_is_replaced)
{
        struct server s;
        server_dir(&s);
        char run[128];
        snprintf(run, sizeof run, "%s/run", s.dir);
        ck_assert_int_eq(mkdir(run, 0755), 0);
        /* What a crashed liid leaves behind: a socket nobody listens on. */
        close(bind_at(s.sock, true));
        struct stat old;
        ck_assert_int_eq(lstat(s.sock, &old), 0);

        ck_assert_int_eq(server_try_start(&s), 0);
        struct stat st;
        ck_assert_int_eq(lstat(s.sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0660);

        struct reply r;
        http(&s, "GET", LII_ROUTE_STATUS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(live_socket_is_not_stolen)
{
        struct server s;
        server_dir(&s);
        char run[128];
        snprintf(run, sizeof run, "%s/run", s.dir);
        ck_assert_int_eq(mkdir(run, 0755), 0);
        int other = bind_at(s.sock, true);

        ck_assert_int_eq(server_try_start(&s), -EADDRINUSE);

        struct stat st;
        ck_assert_int_eq(lstat(s.sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        close(other);
        server_cleanup(&s);
}
END_TEST

/* When a new liid has already replaced the socket, the old one leaves it. */
START_TEST(free_keeps_a_successors_socket)
{
        struct server s;
        server_start(&s);

        ck_assert_int_eq(unlink(s.sock), 0);
        int successor = bind_at(s.sock, true);

        server_stop(&s);
        struct stat st;
        ck_assert_int_eq(lstat(s.sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        close(successor);
        server_cleanup(&s);
}
END_TEST

/* ---- events and metrics ---- */

/* A transfer driven with curl's multi interface, so that the test can
 * hold streams open while it does other requests. */
struct stream {
        CURL *c;
        char *body;
        size_t size;
        bool done;
        CURLcode result;
};

static size_t on_stream_body(char *p, size_t size, size_t n, void *userdata)
{
        struct stream *st = userdata;
        st->body = realloc(st->body, st->size + size * n + 1);
        ck_assert_ptr_nonnull(st->body);
        memcpy(st->body + st->size, p, size * n);
        st->size += size * n;
        st->body[st->size] = '\0';
        return size * n;
}

static void stream_open(CURLM *m, const struct server *s, const char *path, struct stream *st)
{
        *st = (struct stream){.c = curl_easy_init()};
        ck_assert_ptr_nonnull(st->c);
        char url[256];
        snprintf(url, sizeof url, "%s%s", LII_API_HOST, path);
        curl_easy_setopt(st->c, CURLOPT_UNIX_SOCKET_PATH, s->sock);
        curl_easy_setopt(st->c, CURLOPT_URL, url);
        curl_easy_setopt(st->c, CURLOPT_WRITEFUNCTION, on_stream_body);
        curl_easy_setopt(st->c, CURLOPT_WRITEDATA, st);
        curl_easy_setopt(st->c, CURLOPT_PRIVATE, st);
        ck_assert_int_eq(curl_multi_add_handle(m, st->c), CURLM_OK);
}

static void multi_drive(CURLM *m)
{
        int running, left;
        ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                struct stream *st = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&st);
                st->done = true;
                st->result = msg->data.result;
        }
}

static size_t count_lines(const struct stream *st)
{
        size_t n = 0;
        for (size_t i = 0; i < st->size; i++)
                n += st->body[i] == '\n';
        return n;
}

/* Drives the transfers until st has n lines or has ended; curl_multi_poll()
 * returns as soon as one of them has something. */
static void stream_wait_lines(CURLM *m, struct stream *st, size_t n)
{
        uint64_t deadline = now_monotonic_usec() + 10 * USEC_PER_SEC;
        for (;;) {
                multi_drive(m);
                if (count_lines(st) >= n || st->done)
                        return;
                ck_assert_msg(now_monotonic_usec() < deadline, "only %zu of %zu lines: %.200s",
                              count_lines(st), n, st->body ? st->body : "");
                ck_assert_int_eq(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
        }
}

static void stream_wait_done(CURLM *m, struct stream *st)
{
        stream_wait_lines(m, st, SIZE_MAX);
        ck_assert(st->done);
}

static long stream_status(const struct stream *st)
{
        long status = 0;
        curl_easy_getinfo(st->c, CURLINFO_RESPONSE_CODE, &status);
        return status;
}

static void stream_close(CURLM *m, struct stream *st)
{
        curl_multi_remove_handle(m, st->c);
        curl_easy_cleanup(st->c);
        free(st->body);
        *st = (struct stream){0};
}

/* The n-th line (from 0) of an NDJSON body, parsed. */
static json_object *ndjson_line(const char *body, size_t n)
{
        const char *p = body;
        for (size_t i = 0; i < n; i++) {
                p = strchr(p, '\n');
                ck_assert_ptr_nonnull(p);
                p++;
        }
        size_t len = strcspn(p, "\n");
        ck_assert_int_eq(p[len], '\n');
        char *line = strndup(p, len);
        json_object *o = json_tokener_parse(line);
        ck_assert_msg(json_object_is_type(o, json_type_object), "not an object: %s", line);
        free(line);
        return o;
}

static int64_t line_seq(const char *body, size_t n)
{
        json_object *o = ndjson_line(body, n), *seq;
        ck_assert(json_object_object_get_ex(o, LII_F_SEQ, &seq));
        int64_t v = json_object_get_int64(seq);
        json_object_put(o);
        return v;
}

static size_t body_lines(const struct reply *r)
{
        size_t n = 0;
        for (size_t i = 0; i < r->size; i++)
                n += r->body[i] == '\n';
        return n;
}

START_TEST(events_as_ndjson)
{
        struct server s;
        server_start(&s);
        server_emit(&s, 3, 0);

        struct reply r;
        http(&s, "GET", LII_ROUTE_EVENTS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.content_type, LII_CONTENT_TYPE_NDJSON);
        ck_assert_uint_eq(body_lines(&r), 3);
        ck_assert_int_eq(r.body[r.size - 1], '\n');
        for (size_t i = 0; i < 3; i++) {
                ck_assert_int_eq(line_seq(r.body, i), (int64_t)i + 1);
                json_object *o = ndjson_line(r.body, i), *v;
                ck_assert(json_object_object_get_ex(o, LII_F_TYPE, &v));
                ck_assert_str_eq(json_object_get_string(v), EVENT_INSTANCE_STARTED);
                ck_assert(json_object_object_get_ex(o, LII_F_SERVICE, &v));
                ck_assert_str_eq(json_object_get_string(v), "hello");
                ck_assert(json_object_object_get_ex(o, LII_F_MESSAGE, &v));
                char want[32];
                snprintf(want, sizeof want, "event %zu", i + 1);
                ck_assert_str_eq(json_object_get_string(v), want);
                json_object_put(o);
        }
        reply_done(&r);

        http(&s, "GET", LII_ROUTE_EVENTS "?after=1", 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(body_lines(&r), 2);
        ck_assert_int_eq(line_seq(r.body, 0), 2);
        ck_assert_int_eq(line_seq(r.body, 1), 3);
        reply_done(&r);

        /* Nothing newer: an empty answer, not an error. */
        http(&s, "GET", LII_ROUTE_EVENTS "?after=3", 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.size, 0);
        reply_done(&r);

        /* Explicitly not following is the plain answer. */
        http(&s, "GET", LII_ROUTE_EVENTS "?follow=0&after=2", 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(body_lines(&r), 1);
        reply_done(&r);

        assert_error(&s, "GET", LII_ROUTE_EVENTS "?after=x", 400, LII_ERR_BAD_REQUEST);
        assert_error(&s, "GET", LII_ROUTE_EVENTS "?after=-1", 400, LII_ERR_BAD_REQUEST);
        assert_error(&s, "GET", LII_ROUTE_EVENTS "?after=99999999999999999999999", 400,
                     LII_ERR_BAD_REQUEST);
        assert_error(&s, "GET", LII_ROUTE_EVENTS "?follow=maybe", 400, LII_ERR_BAD_REQUEST);
        assert_error(&s, "POST", LII_ROUTE_EVENTS, 405, LII_ERR_METHOD_NOT_ALLOWED);

        /* HEAD follows nothing: headers of the plain answer, at once. */
        http(&s, "HEAD", LII_ROUTE_EVENTS "?follow=1", 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.size, 0);
        reply_done(&r);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(follow_streams_new_events)
{
        struct server s;
        server_start(&s);
        server_emit(&s, 1, 0);

        CURLM *m = curl_multi_init();
        struct stream all, later;
        stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1", &all);
        /* The kept event comes first, then the stream waits. */
        stream_wait_lines(m, &all, 1);
        ck_assert(!all.done);
        ck_assert_int_eq(stream_status(&all), 200);
        char *ct = NULL;
        curl_easy_getinfo(all.c, CURLINFO_CONTENT_TYPE, &ct);
        ck_assert_str_eq(ct, LII_CONTENT_TYPE_NDJSON);
        ck_assert_int_eq(line_seq(all.body, 0), 1);

        /* An event from the loop, as the engine emits them… */
        server_emit(&s, 1, 0);
        stream_wait_lines(m, &all, 2);
        ck_assert(!all.done);
        ck_assert_int_eq(line_seq(all.body, 1), 2);

        /* …and one emitted from inside another request's handler, while
         * MHD is running: the follower must still be woken. */
        stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1&after=2", &later);
        struct reply r;
        http(&s, "POST", LII_ROUTE_SYNC, 0, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);
        stream_wait_lines(m, &all, 3);
        stream_wait_lines(m, &later, 1);
        json_object *o = ndjson_line(all.body, 2), *v;
        ck_assert(json_object_object_get_ex(o, LII_F_TYPE, &v));
        ck_assert_str_eq(json_object_get_string(v), EVENT_OPERATOR);
        json_object_put(o);
        /* after= applies to a stream too: only the sync event. */
        ck_assert_int_eq(line_seq(later.body, 0), 3);
        ck_assert_uint_eq(count_lines(&later), 1);

        /* Stopping the API ends the streams instead of waiting for them. */
        server_stop(&s);
        stream_wait_done(m, &all);
        stream_wait_done(m, &later);
        ck_assert_uint_eq(count_lines(&all), 3);
        stream_close(m, &all);
        stream_close(m, &later);
        curl_multi_cleanup(m);
        server_cleanup(&s);
}
END_TEST

#define FOLLOWERS_MAX 32

START_TEST(followers_are_limited)
{
        struct server s;
        server_start(&s);
        server_emit(&s, 1, 0);

        CURLM *m = curl_multi_init();
        struct stream st[FOLLOWERS_MAX + 1];
        for (size_t i = 0; i < FOLLOWERS_MAX; i++) {
                stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1", &st[i]);
                stream_wait_lines(m, &st[i], 1);
                ck_assert(!st[i].done);
        }
        stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1", &st[FOLLOWERS_MAX]);
        stream_wait_done(m, &st[FOLLOWERS_MAX]);
        ck_assert_int_eq(stream_status(&st[FOLLOWERS_MAX]), 503);
        json_object *doc = json_tokener_parse(st[FOLLOWERS_MAX].body), *err, *v;
        ck_assert(json_object_object_get_ex(doc, LII_F_ERROR, &err));
        ck_assert(json_object_object_get_ex(err, LII_F_CODE, &v));
        ck_assert_str_eq(json_object_get_string(v), LII_ERR_UNAVAILABLE);
        ck_assert(json_object_object_get_ex(err, LII_F_MESSAGE, &v));
        ck_assert_str_eq(json_object_get_string(v), "too many followers");
        json_object_put(doc);
        stream_close(m, &st[FOLLOWERS_MAX]);

        /* Other requests still get through. */
        struct reply r;
        http(&s, "GET", LII_ROUTE_EVENTS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        reply_done(&r);

        /* Idle followers that hang up give their slots back without an
         * event to notice it: liid watches their sockets. The status
         * round trip lets liid see the hangups before the next follower. */
        for (size_t i = 0; i < FOLLOWERS_MAX; i++)
                stream_close(m, &st[i]);
        http(&s, "GET", LII_ROUTE_STATUS, 0, &r);
        reply_done(&r);
        stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1", &st[0]);
        stream_wait_lines(m, &st[0], 1);
        ck_assert_int_eq(stream_status(&st[0]), 200);
        ck_assert(!st[0].done);
        stream_close(m, &st[0]);

        curl_multi_cleanup(m);
        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

/* A follower that falls so far behind that the ring dropped events it has
 * not received is cut off, rather than quietly skipping them or making
 * liid buffer for it. */
START_TEST(lagging_follower_is_cut_off)
{
        struct server s;
        server_start(&s);
        server_emit(&s, 1, 0);

        CURLM *m = curl_multi_init();
        struct stream st;
        stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1", &st);
        stream_wait_lines(m, &st, 1);

        /* More than the ring keeps, in one turn of liid's loop. */
        server_emit(&s, EVENTS_KEEP + 1, 200);
        stream_wait_done(m, &st);
        ck_assert_int_ne(st.result, CURLE_OK);
        ck_assert_uint_eq(count_lines(&st), 1);
        stream_close(m, &st);

        /* A fresh follower starts at the oldest kept event. */
        stream_open(m, &s, LII_ROUTE_EVENTS "?follow=1", &st);
        stream_wait_lines(m, &st, EVENTS_KEEP);
        ck_assert_int_eq(line_seq(st.body, 0), 3);
        ck_assert_int_eq(line_seq(st.body, EVENTS_KEEP - 1), EVENTS_KEEP + 2);
        stream_close(m, &st);

        curl_multi_cleanup(m);
        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

START_TEST(metrics_as_prometheus_text)
{
        struct server s;
        server_start(&s);

        struct reply r;
        http(&s, "GET", LII_ROUTE_METRICS, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
        ck_assert_str_eq(r.body, METRICS_TEXT);
        reply_done(&r);
        assert_error(&s, "POST", LII_ROUTE_METRICS, 405, LII_ERR_METHOD_NOT_ALLOWED);

        server_stop(&s);
        server_cleanup(&s);
}
END_TEST

static Suite *api_suite(void)
{
        Suite *s = suite_create("api");
        TCase *tc = tcase_create("api");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, status_returns_the_daemon_document);
        tcase_add_test(tc, status_view_is_passed_on);
        tcase_add_test(tc, service_by_name);
        tcase_add_test(tc, unknown_paths_and_methods);
        tcase_add_test(tc, actions_as_root);
        tcase_add_test(tc, oversized_body_is_refused);
        tcase_add_test(tc, stalled_client_does_not_block_others);
        tcase_add_test(tc, connection_is_kept_between_requests);
        tcase_add_test(tc, stranger_is_forbidden);
        tcase_add_test(tc, read_group_may_read_only);
        tcase_add_test(tc, admin_group_may_act);
        tcase_add_test(tc, socket_mode_and_group);
        tcase_add_test(tc, symlink_is_refused);
        tcase_add_test(tc, regular_file_is_refused);
        tcase_add_test(tc, stale_socket_is_replaced);
        tcase_add_test(tc, live_socket_is_not_stolen);
        tcase_add_test(tc, free_keeps_a_successors_socket);
        suite_add_tcase(s, tc);
        TCase *events = tcase_create("events");
        tcase_set_timeout(events, 30);
        tcase_add_test(events, events_as_ndjson);
        tcase_add_test(events, follow_streams_new_events);
        tcase_add_test(events, followers_are_limited);
        tcase_add_test(events, lagging_follower_is_cut_off);
        tcase_add_test(events, metrics_as_prometheus_text);
        suite_add_tcase(s, events);
        return s;
}

int main(void)
{
        /* The lagging follower test emits a thousand events. */
        log_max_level = LOG_WARNING;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        SRunner *sr = srunner_create(api_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        curl_global_cleanup();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
