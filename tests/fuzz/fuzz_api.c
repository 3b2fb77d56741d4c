/* API requests: the input is the bytes a client sends on the API socket
 * (request line, headers, body, or several pipelined requests), served
 * by the real API: libmicrohttpd on a libuv loop, api-conn.c accepting
 * the connection and naming its peer, api.c's router and answers,
 * api-events.c for GET /v1/events, with the daemon's side (struct api_ops)
 * answering small fixed documents.
 *
 * How: one api serves for the whole run, on a Unix socket in the scratch
 * folder, and its loop runs in this thread. Each input gets a connection
 * of its own: the bytes are sent, the write side is shut down, the loop
 * runs until the answer is read to its end or nothing is left to happen,
 * and then the client closes. This is slower than calling the router
 * alone (a few thousand inputs a second instead of hundreds of thousands),
 * but it goes through what a client reaches: libmicrohttpd's parsing of
 * the method, the path with its query and the headers, the body limits and
 * the role checks, and the router only sees what libmicrohttpd passes on.
 * The peer is this process: root, or in the admin group, so every route
 * is open to it.
 *
 * Promises checked: once the client is gone and the loop has nothing left
 * to do, the api holds no connection and awaits no request (a connection
 * that outlived its client would hold one of the 64 slots for good), and
 * nothing crashes or leaks. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "api-internal.h"
#include "events.h"
#include "fuzz.h"
#include "lii-proto.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* Turns of the loop for one input, at most: every input ends far sooner. */
#define MAX_TURNS 10000

static uv_loop_t loop;
static struct events *events;
static struct metrics metrics;
static struct api *api;
static struct sockaddr_un address;

static json_object *service_doc(void)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_STATE, json_object_new_string("running"));
        return o;
}

static json_object *op_status(void *userdata, enum status_view view)
{
        json_object *services = json_object_new_object();
        json_object_object_add(services, "hello", service_doc());
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, LII_F_NODE, json_object_new_string("fuzz"));
        json_object_object_add(doc, LII_F_SERVICES, services);
        if (view == STATUS_VIEW_TABLE)
                json_object_object_add(doc, LII_F_VIEW, json_object_new_string(LII_VIEW_TABLE));
        return doc;
}

static json_object *op_service(void *userdata, const char *name)
{
        return strcmp(name, "hello") == 0 ? service_doc() : NULL;
}

static json_object *op_ok(void *userdata)
{
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "ok", json_object_new_boolean(true));
        return doc;
}

static json_object *op_rollback(void *userdata, const char *name)
{
        if (strcmp(name, "hello") != 0)
                return NULL;
        return lii_error_new(LII_ERR_CONFLICT, "hello has no previous revision");
}

static char *op_metrics(void *userdata)
{
        return xstrdup("# TYPE lii_paused gauge\nlii_paused 0\n");
}

/* replace is left out: it answers 501. */
static const struct api_ops ops = {
    .status = op_status,
    .service = op_service,
    .sync = op_ok,
    .pause = op_ok,
    .resume = op_ok,
    .rollback = op_rollback,
    .metrics = op_metrics,
};

static void setup(void)
{
        log_max_level = -1;
        fuzz_check(uv_loop_init(&loop) == 0, "uv_loop_init");
        fuzz_check(events_new(&events) == 0, "events_new");
        events_emit(events, EVENT_DAEMON, NULL, 0, "started");
        events_emit(events, EVENT_INSTANCE_STARTED, "hello", 1, "hello started");
        events_emit(events, EVENT_INSTANCE_HEALTHY, "hello", 1, "hello is healthy");

        _cleanup_free_ char *path = xasprintf("%s/api.sock", fuzz_scratch_dir());
        address.sun_family = AF_UNIX;
        fuzz_check(strlen(path) < sizeof address.sun_path, "socket path too long");
        strcpy(address.sun_path, path);
        const struct api_config cfg = {
            .socket_path = path,
            .read_gid = getegid(),
            .admin_gid = getegid(),
            .events = events,
            .metrics = &metrics,
        };
        fuzz_check(api_new(&loop, &cfg, &ops, NULL, &api) == 0, "api_new");
}

/* Whether the loop has nothing to do now: no timer due, nothing
 * closing, no file descriptor ready. */
static bool loop_idle(void)
{
        if (uv_backend_timeout(&loop) == 0)
                return false;
        struct pollfd p = {.fd = uv_backend_fd(&loop), .events = POLLIN};
        return poll(&p, 1, 0) == 0;
}

/* Sends data, reads the answer, runs the loop: returns when the answer
 * has ended or nothing more happens. The start of the answer goes to
 * head (for fuzz_note()). */
static void exchange(int fd, const uint8_t *data, size_t size, char head[static 128])
{
        size_t off = 0, got = 0;
        bool shut = false;
        for (unsigned turn = 0; turn < MAX_TURNS; turn++) {
                bool progress = false;
                if (off < size) {
                        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n > 0)
                                off += (size_t)n, progress = true;
                        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                                off = size; /* the server has closed */
                }
                if (off == size && !shut) {
                        shutdown(fd, SHUT_WR);
                        shut = progress = true;
                }
                for (;;) {
                        char buf[16384];
                        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                        if (n > 0) {
                                if (got < 127) {
                                        size_t k = (size_t)n < 127 - got ? (size_t)n : 127 - got;
                                        memcpy(head + got, buf, k);
                                        got += k;
                                        head[got] = '\0';
                                }
                                progress = true;
                                continue;
                        }
                        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                                return; /* the answer has ended */
                        break;
                }
                if (!progress && loop_idle())
                        return;
                uv_run(&loop, UV_RUN_NOWAIT);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!api)
                setup();
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        fuzz_check(fd >= 0, "socket: %s", strerror(errno));
        fuzz_check(connect(fd, (struct sockaddr *)&address, sizeof address) == 0, "connect: %s",
                   strerror(errno));
        char head[128] = "";
        exchange(fd, data, size, head);
        close(fd);
        head[strcspn(head, "\r\n")] = '\0';
        fuzz_note("answer: %s", head[0] ? head : "(none)");

        for (unsigned turn = 0; turn < MAX_TURNS && !loop_idle(); turn++)
                uv_run(&loop, UV_RUN_NOWAIT);
        fuzz_check(api->limit.total == 0, "%u connection(s) outlived their client",
                   api->limit.total);
        fuzz_check(!api->waiting, "a request is still awaited from a closed connection");
        return 0;
}
