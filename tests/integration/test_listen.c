/* A service that lists addresses keeps them through every replacement:
 * each generation gets a socket unit of its own (lii-hello@N.socket, the
 * listed addresses then a private probe port, SO_REUSEPORT), the instance
 * serves what it inherits, and the old generation's socket stops before
 * its service. What a user notices: a client hammering the address sees
 * no failed request across 20 replacements and a revert, an address
 * another program holds fails the rollout with the reason and leaves the
 * old generation serving, and no socket unit is left behind, even after
 * liid is killed. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static struct h_env env;
static char saved_migrate[16];

/* Queued connections of a closing listener move to another one of its
 * SO_REUSEPORT group instead of being reset: the package sets this; the
 * test sets it for its run and puts the old value back. */
static void set_migrate(const char *value)
{
        FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "w");
        ck_assert_ptr_nonnull(f);
        fputs(value, f);
        ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "listen");
        FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(saved_migrate, sizeof saved_migrate, f));
        fclose(f);
        set_migrate("1");
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
        set_migrate(saved_migrate);
}

/* One request on a new connection: the body of GET path, or NULL with
 * what went wrong in why. */
static char *request(int port, const char *path, char *why, size_t why_size)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        char req[256], buf[2048];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        size_t got = 0;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                snprintf(why, why_size, "connect: %s", strerror(errno));
                close(fd);
                return NULL;
        }
        if (write(fd, req, (size_t)n) != n) {
                snprintf(why, why_size, "write: %s", strerror(errno));
                close(fd);
                return NULL;
        }
        for (;;) {
                ssize_t k = read(fd, buf + got, sizeof buf - 1 - got);
                if (k < 0) {
                        snprintf(why, why_size, "read: %s", strerror(errno));
                        close(fd);
                        return NULL;
                }
                if (k == 0 || (got += (size_t)k) == sizeof buf - 1)
                        break;
        }
        close(fd);
        buf[got] = '\0';
        const char *body = strstr(buf, "\r\n\r\n");
        if (strncmp(buf, "HTTP/1.0 200 ", 13) != 0 || !body) {
                snprintf(why, why_size, "answer: %.60s", buf);
                return NULL;
        }
        return xstrdup(body + 4);
}

/* One GET on a kept-alive connection (*fd, opened when -1): the body, or
 * NULL with why. A connection the server closed between two requests
 * (a generation stopping) is reopened and the request sent again once, as
 * HTTP clients do for an idempotent request; only a failure after that,
 * or an answer cut short, counts. */
static char *request_kept_alive(int port, int *fd, char *why, size_t why_size)
{
        static const char req[] = "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        for (int attempt = 0; attempt < 2; attempt++) {
                bool reused = *fd >= 0;
                if (*fd < 0) {
                        *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        struct sockaddr_in sa = {.sin_family = AF_INET,
                                                 .sin_port = htons((uint16_t)port),
                                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                        struct timeval tv = {.tv_sec = 5};
                        setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                        if (connect(*fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                                snprintf(why, why_size, "keep-alive connect: %s", strerror(errno));
                                close(*fd);
                                *fd = -1;
                                return NULL;
                        }
                }
                char buf[2048];
                size_t got = 0;
                ssize_t k = write(*fd, req, sizeof req - 1);
                const char *end = NULL;
                while (k > 0 && !end) {
                        k = read(*fd, buf + got, sizeof buf - 1 - got);
                        if (k > 0) {
                                got += (size_t)k;
                                buf[got] = '\0';
                                end = strstr(buf, "\r\n\r\n");
                        }
                }
                if (!end) {
                        int err = errno;
                        close(*fd);
                        *fd = -1;
                        if (reused && got == 0)
                                continue; /* closed between requests: again */
                        snprintf(why, why_size, "keep-alive: %s after %zu bytes",
                                 k == 0 ? "closed" : strerror(err), got);
                        return NULL;
                }
                const char *cl = strcasestr(buf, "\r\nContent-Length: ");
                size_t len = cl ? strtoul(cl + 18, NULL, 10) : 0;
                size_t have = got - (size_t)(end + 4 - buf);
                while (have < len && got < sizeof buf - 1) {
                        k = read(*fd, buf + got, sizeof buf - 1 - got);
                        if (k <= 0)
                                break;
                        got += (size_t)k;
                        have += (size_t)k;
                }
                buf[got] = '\0';
                if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 || have < len) {
                        snprintf(why, why_size, "keep-alive answer: %.60s", buf);
                        close(*fd);
                        *fd = -1;
                        return NULL;
                }
                if (strcasestr(buf, "\r\nConnection: close")) {
                        close(*fd);
                        *fd = -1;
                }
                return xstrdup(end + 4);
        }
        snprintf(why, why_size, "keep-alive: closed twice in a row");
        return NULL;
}

/* A client that asks without pause, a new connection for each request,
 * until told to stop (or, as a bound, 300000 requests or 300 s). */
struct client {
        int port;
        bool keep_alive; /* one connection for many requests */
        pthread_t thread;
        atomic_bool stop;
        unsigned ok, failed;
        char first_failure[256];
        unsigned by_version[4]; /* answers of v1, v2, v3 */
};

static void *client_run(void *p)
{
        struct client *c = p;
        time_t until = time(NULL) + 300;
        int fd = -1;
        for (unsigned i = 0; i < 300000 && !atomic_load(&c->stop) && time(NULL) < until; i++) {
                char why[256];
                char *body = c->keep_alive ? request_kept_alive(c->port, &fd, why, sizeof why)
                                           : request(c->port, "/version", why, sizeof why);
                if (!body) {
                        if (c->failed++ == 0)
                                snprintf(c->first_failure, sizeof c->first_failure, "%s", why);
                        continue;
                }
                c->ok++;
                if (body[0] == 'v' && body[1] >= '1' && body[1] <= '3')
                        c->by_version[body[1] - '0']++;
                free(body);
        }
        if (fd >= 0)
                close(fd);
        return NULL;
}

static struct h_service version(int artifact, const char *listen, const char *extra)
{
        return (struct h_service){.name = "hello",
                                  .artifact = artifact,
                                  .listen = listen,
                                  .extra_args = extra,
                                  .health = "{\"http\":\"http://127.0.0.1:${PORT}/healthz\","
                                            "\"interval\":\"50ms\",\"timeout\":\"1s\","
                                            "\"passes\":1,\"deadline\":\"10s\"}"};
}

static int compare_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lii units the private manager has loaded, one name per line, sorted
 * by name (systemctl sorts by type first). */
static char *lii_units(void)
{
        const char *args[] = {"list-units", "--all", "--plain", "--no-legend", "lii-*", NULL};
        char *out = NULL;
        h_systemctl(&env, &out, args);
        char *lines[64];
        size_t n = 0, size = 1;
        for (char *line = strtok(out, "\n"); line && n < ELEMENTSOF(lines);
             line = strtok(NULL, "\n")) {
                line += strspn(line, " ");
                line[strcspn(line, " ")] = '\0';
                lines[n++] = line;
                size += strlen(line) + 1;
        }
        qsort(lines, n, sizeof *lines, compare_names);
        char *names = xcalloc(1, size);
        for (size_t i = 0; i < n; i++) {
                strcat(names, lines[i]);
                strcat(names, "\n");
        }
        free(out);
        return names;
}

/* The event's seq when hello's generation gen had an event of type, or 0. */
static long long event_seq(json_object **events, size_t n, const char *type, long long gen)
{
        for (size_t i = 0; i < n; i++) {
                const char *t = h_json_str(events[i], "type");
                const char *svc = h_json_str(events[i], "service");
                if (t && svc && strcmp(t, type) == 0 && strcmp(svc, "hello") == 0 &&
                    h_json_int(events[i], "generation") == gen)
                        return h_json_int(events[i], "seq");
        }
        return 0;
}

/* hello never ran three generations: generation g started only once
 * generation g - 2 was retired (from the first to the last of them). */
static void assert_two_generations_at_most(long long first, long long last)
{
        char *text = NULL;
        ck_assert_int_eq(h_api_get_text(&env, "/v1/events", &text), 200);
        json_object *events[1100];
        size_t n = 0;
        for (char *line = strtok(text, "\n"); line && n < 1100; line = strtok(NULL, "\n"))
                events[n++] = json_tokener_parse(line);
        free(text);
        for (long long g = first; g <= last; g++) {
                long long started = event_seq(events, n, "rollout.started", g);
                long long retired = event_seq(events, n, "instance.stopped", g - 2);
                ck_assert_msg(started && retired && retired < started,
                              "generation %lld started (event %lld) before generation %lld was "
                              "retired (event %lld)",
                              g, started, g - 2, retired);
        }
        for (size_t i = 0; i < n; i++)
                json_object_put(events[i]);
}

/* Waits (bounded) until the lii units are exactly want: retirements run
 * after the promotion that asks for them. */
static void wait_units(const char *want)
{
        char *have = NULL;
        for (int i = 0; i < 100; i++) {
                free(have);
                have = lii_units();
                if (strcmp(have, want) == 0)
                        break;
                usleep(100 * 1000);
        }
        ck_assert_msg(strcmp(have, want) == 0, "units:\n%s\nwant:\n%s", have, want);
        free(have);
}

static bool reverted(json_object *svc, void *userdata)
{
        const char *result = h_json_str(svc, "last_rollout.result");
        return result && strcmp(result, "reverted") == 0 &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

START_TEST(no_request_fails_across_replacements_and_a_revert)
{
        int port = h_free_port();
        char addresses[64];
        snprintf(addresses, sizeof addresses, "[\"127.0.0.1:%d\"]", port);
        struct h_service v1 = version(1, addresses, ",\"--version-name\",\"v1\"");
        h_publish(&env, &v1, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        /* ${PORT} is the probe port, not the listed one. */
        ck_assert_int_ne(h_json_int(svc, "current.port"), port);
        json_object_put(svc);
        char why[256];
        char *body = request(port, "/version", why, sizeof why);
        ck_assert_msg(body && strcmp(body, "v1\n") == 0, "%s", body ? body : why);
        free(body);
        wait_units("lii-hello@1.service\nlii-hello@1.socket\n");
        /* liictl status SERVICE lists the addresses. */
        char *out = NULL;
        const char *show[] = {"status", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, show), 0);
        char line[80];
        snprintf(line, sizeof line, "\nlisten: [\"127.0.0.1:%d\"]\n", port);
        ck_assert_msg(strstr(out, line), "%s", out);
        free(out);

        struct client c = {.port = port}, k = {.port = port, .keep_alive = true};
        ck_assert_int_eq(pthread_create(&c.thread, NULL, client_run, &c), 0);
        ck_assert_int_eq(pthread_create(&k.thread, NULL, client_run, &k), 0);
        long long gen = 1;
        for (int i = 0; i < 20; i++) {
                json_object *o = NULL;
                ck_assert_int_eq(h_api_post(&env, "/v1/services/hello/replace", &o), 200);
                json_object_put(o);
                json_object_put(h_wait_generation(&env, "hello", ++gen));
        }
        /* v2 passes its checks, then fails in its watch window: v1 comes
         * back in a fresh generation, all while the client asks on. */
        struct h_service v2 = version(2, addresses,
                                      ",\"--version-name\",\"v2\",\"--unhealthy-after\","
                                      "\"1000\"");
        v2.health = "{\"http\":\"http://127.0.0.1:${PORT}/healthz\",\"interval\":\"50ms\","
                    "\"timeout\":\"1s\",\"passes\":1,\"deadline\":\"10s\",\"watch\":\"20s\"}";
        h_publish(&env, &v2, 1, 0);
        svc = h_wait_service(&env, "hello", reverted, NULL, 30000, "the revert");
        gen = h_json_int(svc, "current.generation");
        json_object_put(svc);
        atomic_store(&c.stop, true);
        atomic_store(&k.stop, true);
        ck_assert_int_eq(pthread_join(c.thread, NULL), 0);
        ck_assert_int_eq(pthread_join(k.thread, NULL), 0);
        fprintf(stderr, "listen: kept alive: %u requests answered (v1 %u, v2 %u), %u failed\n",
                k.ok, k.by_version[1], k.by_version[2], k.failed);
        ck_assert_msg(k.failed == 0, "%u of %u kept-alive requests failed, the first: %s", k.failed,
                      k.ok + k.failed, k.first_failure);
        ck_assert_msg(k.ok > 200, "only %u kept-alive requests answered", k.ok);

        fprintf(stderr, "listen: %u requests answered (v1 %u, v2 %u, v3 %u), %u failed\n", c.ok,
                c.by_version[1], c.by_version[2], c.by_version[3], c.failed);
        ck_assert_msg(c.failed == 0, "%u of %u requests failed, the first: %s", c.failed,
                      c.ok + c.failed, c.first_failure);
        ck_assert_msg(c.ok > 200, "only %u requests answered", c.ok);
        ck_assert_msg(c.by_version[1] > 0 && c.by_version[2] > 0, "v1 %u, v2 %u answers",
                      c.by_version[1], c.by_version[2]);
        char want[128];
        snprintf(want, sizeof want, "lii-hello@%lld.service\nlii-hello@%lld.socket\n", gen, gen);
        wait_units(want);
        /* The replacements and v2's rollout; the revert is not held back. */
        assert_two_generations_at_most(3, 22);
}
END_TEST

static bool failed(json_object *svc, void *userdata)
{
        const char *result = h_json_str(svc, "last_rollout.result");
        return result && strcmp(result, "failed") == 0 &&
               h_json_int(svc, "last_rollout.generation") == 2;
}

/* An address that another program holds (without SO_REUSEPORT) cannot be
 * shared: the rollout fails naming the socket unit, and the generation
 * that runs keeps serving. */
START_TEST(an_address_in_use_fails_the_rollout_and_keeps_the_old)
{
        int port = h_free_port();
        char addresses[64];
        snprintf(addresses, sizeof addresses, "[\"127.0.0.1:%d\"]", port);
        struct h_service v1 = version(1, addresses, ",\"--version-name\",\"v1\"");
        h_publish(&env, &v1, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 1));

        int busy = h_free_port();
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)busy),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 4), 0);
        char both[96];
        snprintf(both, sizeof both, "[\"127.0.0.1:%d\",\"127.0.0.1:%d\"]", port, busy);
        struct h_service v2 = version(2, both, ",\"--version-name\",\"v2\"");
        h_publish(&env, &v2, 1, 0);
        json_object *svc = h_wait_service(&env, "hello", failed, NULL, 30000, "the failure");
        const char *reason = h_json_str(svc, "last_rollout.reason");
        ck_assert_msg(strstr(reason, "lii-hello@2.socket did not start"), "%s", reason);
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        json_object_put(svc);
        char why[256];
        char *body = request(port, "/version", why, sizeof why);
        ck_assert_msg(body && strcmp(body, "v1\n") == 0, "%s", body ? body : why);
        free(body);
        /* Nothing of generation 2 stays. */
        wait_units("lii-hello@1.service\nlii-hello@1.socket\n");
        close(fd);
}
END_TEST

static bool checking_generation_2(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "checking") == 0 && h_json_int(svc, "next.generation") == 2;
}

/* liid killed while generation 2 is being checked: the liid that starts
 * next adopts generation 1 with its sockets, stops generation 2's socket
 * and service, and rolls v2 out again; nothing else is left. */
START_TEST(sigkill_mid_rollout_leaves_no_socket_behind)
{
        int port = h_free_port();
        char addresses[64];
        snprintf(addresses, sizeof addresses, "[\"127.0.0.1:%d\"]", port);
        struct h_service v1 = version(1, addresses, ",\"--version-name\",\"v1\"");
        h_publish(&env, &v1, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 1));
        struct h_service v2 =
            version(2, addresses, ",\"--version-name\",\"v2\",\"--healthy-after\",\"3000\"");
        h_publish(&env, &v2, 1, 0);
        json_object_put(
            h_wait_service(&env, "hello", checking_generation_2, NULL, 30000, "checking gen 2"));
        wait_units("lii-hello@1.service\nlii-hello@1.socket\nlii-hello@2.service\n"
                   "lii-hello@2.socket\n");
        h_kill_liid(&env, SIGKILL);
        h_start_liid(&env);
        json_object *svc = h_wait_generation(&env, "hello", 3);
        json_object_put(svc);
        /* Generation 1 is retired after 3 is promoted: until its socket
         * is gone, a connection may still reach v1. */
        wait_units("lii-hello@3.service\nlii-hello@3.socket\n");
        char why[256];
        char *body = request(port, "/version", why, sizeof why);
        ck_assert_msg(body && strcmp(body, "v2\n") == 0, "%s", body ? body : why);
        free(body);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("listen");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"handover", no_request_fails_across_replacements_and_a_revert},
            {"in-use", an_address_in_use_fails_the_rollout_and_keeps_the_old},
            {"sigkill", sigkill_mid_rollout_leaves_no_socket_behind},
        };
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 300);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
