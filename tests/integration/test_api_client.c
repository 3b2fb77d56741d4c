/* liictl's reading of large answers, against a stand-in for liid: a
 * thread that answers every connection on a Unix socket with one canned
 * HTTP response. These tests give liictl's `status` documents liid would
 * send (hundreds of services, so that the body reaches liictl in many
 * pieces cut at every kind of place) and ones it would not (not JSON, cut
 * short, trailing bytes), and check what a user sees: the table, the exit
 * code, the message. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

struct fake {
        char dir[64];
        char sock[128];
        int fd;
        pthread_t thread;
        char *response;     /* the whole HTTP response, headers and body */
        char request[4096]; /* the last request's line and headers */
};

/* Reads the request's headers (liictl sends no body with a GET), then
 * sends the response and closes. */
static void *fake_serve(void *p)
{
        struct fake *f = p;
        for (;;) {
                int c = accept4(f->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        return NULL; /* the test shut the socket down */
                char req[4096];
                size_t got = 0;
                while (got < sizeof req - 1) {
                        ssize_t k = read(c, req + got, sizeof req - 1 - got);
                        if (k <= 0)
                                break;
                        got += (size_t)k;
                        req[got] = '\0';
                        if (strstr(req, "\r\n\r\n"))
                                break;
                }
                memcpy(f->request, req, got + 1);
                size_t len = strlen(f->response), sent = 0;
                while (sent < len) {
                        ssize_t k = write(c, f->response + sent, len - sent);
                        if (k <= 0)
                                break;
                        sent += (size_t)k;
                }
                close(c);
        }
}

static void fake_start(struct fake *f, long status, const char *body)
{
        *f = (struct fake){0};
        snprintf(f->dir, sizeof f->dir, "/tmp/lii-test-client-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(f->dir));
        snprintf(f->sock, sizeof f->sock, "%s/liid.sock", f->dir);
        f->response = xasprintf("HTTP/1.1 %ld X\r\nContent-Type: application/json\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                status, strlen(body), body);
        f->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(f->fd, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, f->sock, strlen(f->sock));
        ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(f->fd, 8), 0);
        ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_stop(struct fake *f)
{
        /* Wakes the thread from accept() with an error. */
        shutdown(f->fd, SHUT_RDWR);
        ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
        close(f->fd);
        unlink(f->sock);
        rmdir(f->dir);
        free(f->response);
}

struct run {
        int exit;
        char *out;
        char *err;
};

static char *slurp(const char *path)
{
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(read_file_capped(path, 64 << 20, &text, &len), 0);
        return text;
}

/* Runs liictl -s SOCK ARGS… with stdout and stderr in files (not a
 * terminal, as in a script). */
static void liictl(const struct fake *f, const char *args, struct run *ret)
{
        char out[160], err[160];
        snprintf(out, sizeof out, "%s/out", f->dir);
        snprintf(err, sizeof err, "%s/err", f->dir);
        _cleanup_free_ char *cmd = xasprintf("'%s/liictl' -s '%s' %s >'%s' 2>'%s'", LII_BUILD_DIR,
                                             f->sock, args, out, err);
        int status = system(cmd);
        ck_assert(WIFEXITED(status));
        ret->exit = WEXITSTATUS(status);
        ret->out = slurp(out);
        ret->err = slurp(err);
        unlink(out);
        unlink(err);
}

static void run_done(struct run *r)
{
        free(r->out);
        free(r->err);
}

/* The whole status document of n services s001…, listed in reverse
 * order, with "paused" after the services. Every third service is
 * pending, one is held. The members liictl's table does not show (hashes,
 * a nested signature, a null previous) pad each service to about half a
 * KiB, so that the body reaches liictl in many reads. */
static char *status_doc(unsigned n, bool paused)
{
        char *doc = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&doc, &size);
        ck_assert_ptr_nonnull(f);
        fputs("{ \"node\" : \"h1\",\"version\":\"0.1.0\",\n"
              "\"source\":{\"url\":\"file:///x/desired.json\",\"serial\":42,"
              "\"fetched_at\":\"2024-01-01T00:00:00Z\",\"error\":null},\"services\":{",
              f);
        for (unsigned i = n; i >= 1; i--) {
                const char *state = i % 3 == 0 ? "pending" : "running";
                fprintf(f,
                        "%s\"s%03u\" : {\"state\":\"%s\",\"held\":%s,\"restarts\":0,"
                        "\"current\":{\"generation\":%u,\"unit\":\"lii-s%03u@%u.service\","
                        "\"artifact_sha256\":\"%064u\",\"spec_sha256\":\"%064u\","
                        "\"active_since\":\"2024-01-01T00:00:%02uZ\",\"healthy\":%s,"
                        "\"main_pid\":%u,\"signature\":{\"key_id\":\"AB\","
                        "\"trusted_comment\":\"caf\\u00e9 \\\"q\\\"\"}},"
                        "\"previous\":null,\"desired\":{\"artifact_sha256\":\"%064u\"},"
                        "\"last_rollout\":{\"result\":\"succeeded\",\"reason\":null,"
                        "\"duration_ms\":%u}}",
                        i == n ? "" : " ,\n", i, state, i == 7 ? "true" : "false", i, i, i, i, i,
                        i % 60, i % 2 ? "true" : "false", 1000 + i, i, 1500 + i);
        }
        fprintf(f, "}, \"paused\" : %s }\n", paused ? "true" : "false");
        ck_assert_int_eq(fclose(f), 0);
        return doc;
}

/* The same services in the table view (what the table asks for): the
 * columns in another order than liid's, with one liictl does not know,
 * and the rows in reverse order, "paused" after them. */
static char *table_doc(unsigned n, bool paused)
{
        char *doc = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&doc, &size);
        ck_assert_ptr_nonnull(f);
        fputs("{ \"view\":\"table\",\"node\" : \"h1\",\"version\":\"0.1.0\",\n"
              "\"source\":{\"url\":\"file:///x/desired.json\",\"serial\":42,"
              "\"fetched_at\":\"2024-01-01T00:00:00Z\",\"error\":null},"
              "\"columns\":[\"unit\",\"state\",\"future\",\"name\",\"held\",\"generation\","
              "\"healthy\",\"active_since\",\"last_duration_ms\",\"last_result\","
              "\"last_reason\",\"rollout_state\",\"rollout_reason\"],\"rows\":[",
              f);
        for (unsigned i = n; i >= 1; i--) {
                const char *state = i % 3 == 0 ? "pending" : "running";
                fprintf(f,
                        "%s[\"lii-s%03u@%u.service\",\"%s\",{\"x\":[1]},\"s%03u\",%s,%u,%s,"
                        "\"2024-01-01T00:00:%02uZ\",%u,\"succeeded\",null,null,null]",
                        i == n ? "" : " ,\n", i, i, state, i, i == 7 ? "true" : "false", i,
                        i % 2 ? "true" : "false", i % 60, 1500 + i);
        }
        fprintf(f, "], \"paused\" : %s }\n", paused ? "true" : "false");
        ck_assert_int_eq(fclose(f), 0);
        return doc;
}

static bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The table row of service s<i>, or NULL. */
static const char *row_of(const char *out, unsigned i)
{
        char name[16];
        snprintf(name, sizeof name, "\ns%03u ", i);
        const char *p = strstr(out, name);
        return p ? p + 1 : NULL;
}

START_TEST(status_of_many_services_read_as_it_arrives)
{
        const unsigned n = 450;
        _cleanup_free_ char *table = table_doc(n, true);
        ck_assert_uint_gt(strlen(table), 50 * 1024);
        struct fake f;
        fake_start(&f, 200, table);

        struct run r;
        liictl(&f, "status", &r);
        ck_assert_msg(r.exit == 0, "exit %d: %s", r.exit, r.err);
        /* The table asks for the table view only. */
        ck_assert_msg(startswith(f.request, "GET /v1/status?view=table HTTP/1.1\r\n"),
                      "request: %s", f.request);
        ck_assert_ptr_nonnull(strstr(r.out, "Node:     h1\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "Serial:   42\n"));
        /* "paused" came after the rows and still counts. */
        ck_assert_ptr_nonnull(strstr(r.out, "Paused:   yes"));
        /* Every service, once, sorted by name. */
        const char *prev = strstr(r.out, "SERVICE");
        ck_assert_ptr_nonnull(prev);
        for (unsigned i = 1; i <= n; i++) {
                const char *row = row_of(r.out, i);
                ck_assert_msg(row && row > prev, "s%03u missing or out of order", i);
                char unit[32];
                snprintf(unit, sizeof unit, " lii-s%03u@%u.service ", i, i);
                const char *end = strchr(row, '\n');
                ck_assert_ptr_nonnull(end);
                ck_assert_msg(memmem(row, (size_t)(end - row + 1), unit, strlen(unit)),
                              "s%03u: %.*s", i, (int)(end - row), row);
                const char *state = i == 7       ? "running (held)"
                                    : i % 3 == 0 ? "pending (paused)"
                                                 : "running ";
                ck_assert_msg(memmem(row, (size_t)(end - row), state, strlen(state)), "s%03u: %.*s",
                              i, (int)(end - row), row);
                ck_assert_msg(memmem(row, (size_t)(end - row), " succeeded in ", 14), "s%03u: %.*s",
                              i, (int)(end - row), row);
                prev = row;
        }
        ck_assert_ptr_null(row_of(r.out, n + 1));
        run_done(&r);
        fake_stop(&f);

        /* For programs, the whole document, byte for byte. */
        _cleanup_free_ char *doc = status_doc(n, true);
        ck_assert_uint_gt(strlen(doc), 100 * 1024);
        fake_start(&f, 200, doc);
        liictl(&f, "--json status", &r);
        ck_assert_msg(startswith(f.request, "GET /v1/status HTTP/1.1\r\n"), "request: %s",
                      f.request);
        ck_assert_int_eq(r.exit, 0);
        ck_assert_str_eq(r.out, doc);
        run_done(&r);

        fake_stop(&f);
}
END_TEST

START_TEST(status_without_services)
{
        struct fake f;
        fake_start(&f, 200,
                   "{\"node\":\"h1\",\"columns\":[\"name\",\"state\"],\"rows\":[],"
                   "\"paused\":false}");
        struct run r;
        liictl(&f, "status", &r);
        ck_assert_int_eq(r.exit, 0);
        ck_assert_ptr_nonnull(strstr(r.out, "Node:     h1\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "\nNo services.\n"));
        run_done(&r);
        fake_stop(&f);
}
END_TEST

/* An answer that is not one JSON object is refused, whole or in part, and
 * nothing of it is printed. */
START_TEST(status_that_is_not_json)
{
        _cleanup_free_ char *doc = status_doc(100, false);
        _cleanup_free_ char *cut = xstrdup(doc);
        cut[strlen(cut) - 3] = '\0'; /* without its last } */
        _cleanup_free_ char *trailing = xasprintf("%s{}", doc);
        _cleanup_free_ char *no_comma = xstrdup(doc);
        strstr(no_comma, " ,\n")[1] = ' '; /* two services without a comma */
        const char *bodies[] = {
            "<html>oops</html>", "", "[1,2]", "{\"services\":{\"a\":{},}}", cut, trailing, no_comma,
        };
        for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
                for (int json = 0; json <= 1; json++) {
                        struct fake f;
                        fake_start(&f, 200, bodies[i]);
                        struct run r;
                        liictl(&f, json ? "--json status" : "status", &r);
                        ck_assert_msg(r.exit == 1, "body %zu: exit %d", i, r.exit);
                        ck_assert_str_eq(r.out, "");
                        ck_assert_str_eq(r.err, "liictl: liid sent a reply that is not JSON\n");
                        run_done(&r);
                        fake_stop(&f);
                }
        }
}
END_TEST

/* An error answer is read whole and its message shown. */
START_TEST(status_error_is_shown)
{
        struct fake f;
        fake_start(&f, 403,
                   "{\"error\":{\"code\":\"forbidden\",\"message\":\"permission denied\"}}\n");
        struct run r;
        liictl(&f, "status", &r);
        ck_assert_int_eq(r.exit, 4);
        ck_assert_str_eq(r.err, "liictl: permission denied\n");
        run_done(&r);
        fake_stop(&f);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("api_client");
        TCase *tc = tcase_create("status");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, status_of_many_services_read_as_it_arrives);
        tcase_add_test(tc, status_without_services);
        tcase_add_test(tc, status_that_is_not_json);
        tcase_add_test(tc, status_error_is_shown);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
