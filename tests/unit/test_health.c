/* Health checks against real loopback sockets: a fresh instance that binds
 * its port a moment after it started is found without waiting a whole
 * interval, while an instance that answers is probed only once per
 * interval. The interval here (60 s) is far longer than the deadline, so a
 * probe that waited for it could never pass in time. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "curlm.h"
#include "harness.h"
#include "health.h"
#include "util.h"

struct server {
        uv_tcp_t listener;
        uv_timer_t bind_later;
        int port;
        const char *answer; /* NULL: accept and hang up (enough for tcp) */
        unsigned requests;
};

struct outcome {
        bool done, ok;
        char reason[512];
};

static void on_closed(uv_handle_t *h)
{
        free(h);
}

static void on_written(uv_write_t *w, int status)
{
        uv_close((uv_handle_t *)w->handle, on_closed);
        free(w);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        static char scratch[4096];
        *buf = uv_buf_init(scratch, sizeof scratch);
}

/* One read is a whole probe request on loopback; answer it and hang up. */
static void on_read(uv_stream_t *c, ssize_t n, const uv_buf_t *buf)
{
        struct server *srv = c->data;
        if (n <= 0) {
                if (n < 0)
                        uv_close((uv_handle_t *)c, on_closed);
                return;
        }
        uv_read_stop(c);
        srv->requests++;
        uv_write_t *w = xcalloc(1, sizeof *w);
        uv_buf_t out = uv_buf_init((char *)srv->answer, strlen(srv->answer));
        uv_write(w, c, &out, 1, on_written);
}

static void on_connection(uv_stream_t *l, int status)
{
        struct server *srv = l->data;
        ck_assert_int_eq(status, 0);
        uv_tcp_t *c = xcalloc(1, sizeof *c);
        uv_tcp_init(l->loop, c);
        c->data = srv;
        ck_assert_int_eq(uv_accept(l, (uv_stream_t *)c), 0);
        if (srv->answer)
                uv_read_start((uv_stream_t *)c, on_alloc, on_read);
        else
                uv_close((uv_handle_t *)c, on_closed);
}

static void start_listening(uv_timer_t *t)
{
        struct server *srv = t->data;
        struct sockaddr_in sa;
        uv_ip4_addr("127.0.0.1", srv->port, &sa);
        uv_tcp_init(t->loop, &srv->listener);
        srv->listener.data = srv;
        ck_assert_int_eq(uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0), 0);
        ck_assert_int_eq(uv_listen((uv_stream_t *)&srv->listener, 16, on_connection), 0);
}

/* The instance binds its port bind_after_ms after the check started. */
static void server_start(uv_loop_t *loop, struct server *srv, uint64_t bind_after_ms)
{
        srv->port = h_free_port();
        uv_timer_init(loop, &srv->bind_later);
        srv->bind_later.data = srv;
        uv_timer_start(&srv->bind_later, start_listening, bind_after_ms, 0);
}

static void on_done(struct health_check *h, bool ok, const char *reason, void *userdata)
{
        struct outcome *o = userdata;
        o->done = true;
        o->ok = ok;
        snprintf(o->reason, sizeof o->reason, "%s", reason ? reason : "");
}

static void close_all(uv_handle_t *h, void *arg)
{
        if (!uv_is_closing(h))
                uv_close(h, (uv_close_cb)arg);
}

static void noop_close(uv_handle_t *h)
{
}

/* Runs one check of kind against the server, with a 60 s interval and the
 * given deadline, until it decides. */
static struct outcome check(enum health_kind kind, struct server *srv, uint64_t bind_after_ms,
                            uint64_t deadline_ms)
{
        uv_loop_t loop;
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        struct curlm *curlm = NULL;
        ck_assert_int_eq(curlm_new(&loop, &curlm), 0);
        server_start(&loop, srv, bind_after_ms);

        char target[64];
        if (kind == HEALTH_HTTP)
                snprintf(target, sizeof target, "http://127.0.0.1:%d/healthz", srv->port);
        else
                snprintf(target, sizeof target, "127.0.0.1:%d", srv->port);
        struct health_spec spec = {.kind = kind,
                                   .interval_usec = 60 * USEC_PER_SEC,
                                   .timeout_usec = USEC_PER_SEC,
                                   .passes = 1};
        struct outcome o = {0};
        struct health_check *h = NULL;
        ck_assert_int_eq(health_check_start(&loop, curlm, &spec, target, NULL,
                                            now_monotonic_usec() + deadline_ms * USEC_PER_MSEC,
                                            on_done, &o, &h),
                         0);
        while (!o.done)
                ck_assert_int_ge(uv_run(&loop, UV_RUN_ONCE), 0);

        curlm_free(curlm);
        uv_walk(&loop, close_all, (void *)noop_close);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        return o;
}

START_TEST(tcp_instance_that_binds_late_is_found)
{
        struct server srv = {0};
        struct outcome o = check(HEALTH_TCP, &srv, 150, 5000);
        ck_assert_msg(o.ok, "the check failed: %s", o.reason);
}
END_TEST

START_TEST(http_instance_that_binds_late_is_found)
{
        struct server srv = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
        struct outcome o = check(HEALTH_HTTP, &srv, 150, 5000);
        ck_assert_msg(o.ok, "the check failed: %s", o.reason);
        ck_assert_uint_eq(srv.requests, 1);
}
END_TEST

START_TEST(listening_instance_is_probed_once_per_interval)
{
        /* It answers 503: that is a verdict, not "not up yet", so the next
         * probe waits for the interval, which is past the deadline. */
        struct server srv = {.answer = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Content-Length: 0\r\n\r\n"};
        struct outcome o = check(HEALTH_HTTP, &srv, 0, 400);
        ck_assert(!o.ok);
        ck_assert_uint_eq(srv.requests, 1);
        ck_assert_msg(strstr(o.reason, "HTTP 503") != NULL, "reason: %s", o.reason);
}
END_TEST

START_TEST(nothing_listening_fails_at_the_deadline_saying_so)
{
        struct server srv = {0};
        struct outcome o = check(HEALTH_TCP, &srv, 60000, 300);
        ck_assert(!o.ok);
        ck_assert_msg(strstr(o.reason, "connection refused") != NULL, "reason: %s", o.reason);
        ck_assert_msg(strstr(o.reason, "deadline passed") != NULL, "reason: %s", o.reason);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("health");
        TCase *tc = tcase_create("probes");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, tcp_instance_that_binds_late_is_found);
        tcase_add_test(tc, http_instance_that_binds_late_is_found);
        tcase_add_test(tc, listening_instance_is_probed_once_per_interval);
        tcase_add_test(tc, nothing_listening_fails_at_the_deadline_saying_so);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
