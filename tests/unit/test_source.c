/* The desired-state source against a real nginx: a document and its
 * signature arrive byte for byte, an unchanged document costs a 304 and no
 * download, failures name the URL and the reason, redirects stay on the
 * same origin, TLS is verified, failed fetches back off, and file:// still
 * reacts to a publisher's rename. */
#include "source.h"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "harness.h"
#include "nginx.h"
#include "util.h"

#define MAX_CALLS 16

static char *base_dir; /* a fresh folder per test, outside /tmp */
static char *www;      /* nginx's document root */
static struct h_nginx nginx;
static uv_loop_t loop;
static struct curlm *curlm;
static struct source *source;
static uv_timer_t deadline;

/* What the source delivered, call by call. */
struct call {
        int r;
        bool unchanged;
        char *error;
        char *doc, *sig, *sig_error;
        size_t doc_len, sig_len;
        uint64_t at_usec; /* monotonic */
};
static struct call calls[MAX_CALLS];
static int n_calls, wanted_calls;

static char *dup_bytes(const char *p, size_t len)
{
        if (!p)
                return NULL;
        char *c = xcalloc(1, len + 1);
        memcpy(c, p, len);
        return c;
}

static void on_result(struct source *s, const struct source_result *res, void *userdata)
{
        ck_assert_int_lt(n_calls, MAX_CALLS);
        struct call *c = &calls[n_calls++];
        c->at_usec = now_monotonic_usec();
        c->r = res->r;
        c->unchanged = res->unchanged;
        c->error = res->error ? xstrdup(res->error) : NULL;
        c->doc = dup_bytes(res->doc, res->doc_len);
        c->doc_len = res->doc_len;
        c->sig = dup_bytes(res->sig, res->sig_len);
        c->sig_len = res->sig_len;
        c->sig_error = res->sig_error ? xstrdup(res->sig_error) : NULL;
        if (n_calls >= wanted_calls)
                uv_stop(&loop);
}

static void on_deadline(uv_timer_t *t)
{
        uv_stop(&loop);
}

/* Runs the loop until the source has called back n times in all, or fails
 * the test after timeout_ms. */
static void wait_calls(int n, unsigned timeout_ms)
{
        wanted_calls = n;
        uv_timer_start(&deadline, on_deadline, timeout_ms, 0);
        if (n_calls < n)
                uv_run(&loop, UV_RUN_DEFAULT);
        uv_timer_stop(&deadline);
        ck_assert_msg(n_calls >= n, "%d source callbacks within %u ms, expected %d", n_calls,
                      timeout_ms, n);
}

/* Runs the loop for ms, for checks that nothing (more) happens. */
static void run_for(unsigned ms)
{
        wanted_calls = MAX_CALLS + 1;
        uv_timer_start(&deadline, on_deadline, ms, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
}

static void write_file(const char *name, const void *data, size_t len)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", www, name);
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
        /* Publishers replace a document by renaming a new file over it. */
        ck_assert_int_eq(rename(tmp, path), 0);
}

static void write_str(const char *name, const char *s)
{
        write_file(name, s, strlen(s));
}

/* nginx's single worker writes a request's log line before it reads the
 * next request, so once this GET is answered, every earlier one is in the
 * access log. */
static void nginx_log_barrier(void)
{
        ck_assert_int_eq(h_http_get(nginx.http_port, "/barrier", NULL), 404);
}

static void setup(void)
{
        base_dir = xasprintf("%s/test-source.XXXXXX", LII_BUILD_DIR);
        ck_assert_ptr_nonnull(mkdtemp(base_dir));
        /* nginx's worker runs as an unprivileged user when the tests run as
         * root, and must reach the document root. */
        ck_assert_int_eq(chmod(base_dir, 0755), 0);
        www = xasprintf("%s/www", base_dir);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(uv_timer_init(&loop, &deadline), 0);
        ck_assert_int_eq(curlm_new(&loop, &curlm), 0);
        n_calls = 0;
        memset(&nginx, 0, sizeof nginx);
}

static void start_nginx(const char *extra_locations)
{
        _cleanup_free_ char *dir = xasprintf("%s/nginx", base_dir);
        h_nginx_start(&nginx, dir, www, extra_locations);
}

static void teardown(void)
{
        source = source_free(source);
        curlm = curlm_free(curlm);
        uv_close((uv_handle_t *)&deadline, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        /* Every handle of the source and curl is gone. */
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        h_nginx_stop(&nginx);
        for (int i = 0; i < n_calls; i++) {
                free(calls[i].error);
                free(calls[i].doc);
                free(calls[i].sig);
                free(calls[i].sig_error);
        }
        _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", base_dir);
        ck_assert_int_eq(system(cmd), 0);
        free(base_dir);
        free(www);
}

/* A source with a time limit on each GET (0: none). */
static void new_source_timed(const char *url, const char *ca_file, uint64_t poll_usec,
                             uint64_t timeout_usec)
{
        struct source_options opts = {
            .curlm = curlm,
            .http = {.ca_file = ca_file, .timeout_usec = timeout_usec},
            .poll_interval_usec = poll_usec,
        };
        ck_assert_int_eq(source_new(&loop, url, &opts, on_result, NULL, &source), 0);
}

static void new_source(const char *url, const char *ca_file, uint64_t poll_usec)
{
        new_source_timed(url, ca_file, poll_usec, 0);
}

static char *http_url(const char *path)
{
        return xasprintf("http://127.0.0.1:%d%s", nginx.http_port, path);
}

#define DOC "{\"format\":\"lii.desired/1\",\"serial\":1,\"services\":{}}\n"
#define SIG "untrusted comment: not a real signature\nRWQ\ntrusted comment: x\nAAA\n"

static void assert_delivered(const struct call *c, const char *doc, const char *sig)
{
        ck_assert_msg(c->r == 0, "fetch failed: %s", c->error);
        ck_assert(!c->unchanged);
        ck_assert_uint_eq(c->doc_len, strlen(doc));
        ck_assert_mem_eq(c->doc, doc, c->doc_len);
        ck_assert_ptr_nonnull(c->sig);
        ck_assert_uint_eq(c->sig_len, strlen(sig));
        ck_assert_mem_eq(c->sig, sig, c->sig_len);
        ck_assert_ptr_null(c->sig_error);
}

START_TEST(test_http_fetch)
{
        start_nginx(NULL);
        /* A NUL and bytes that are not UTF-8 must come through unchanged. */
        static const char odd[] = "{\"a\":\"\xff\xfe\"}\0tail";
        write_file("desired.json", odd, sizeof odd - 1);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        /* Never from inside the call. */
        ck_assert_int_eq(n_calls, 0);
        wait_calls(1, 5000);
        ck_assert_int_eq(calls[0].r, 0);
        ck_assert_uint_eq(calls[0].doc_len, sizeof odd - 1);
        ck_assert_mem_eq(calls[0].doc, odd, sizeof odd - 1);
        ck_assert_str_eq(calls[0].sig, SIG);
        ck_assert_ptr_null(calls[0].sig_error);
        ck_assert(!calls[0].unchanged);
}
END_TEST

START_TEST(test_http_unchanged_then_changed)
{
        start_nginx(NULL);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        assert_delivered(&calls[0], DOC, SIG);

        source_sync(source);
        wait_calls(2, 5000);
        ck_assert_int_eq(calls[1].r, 0);
        ck_assert(calls[1].unchanged);
        ck_assert_ptr_null(calls[1].doc);
        ck_assert_ptr_null(calls[1].sig);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 200), 1);
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 304), 1);
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json.minisig", 200), 1);

        /* nginx's ETag is the modification time and the size: a longer
         * document changes it even within the same second. */
        const char *doc2 = "{\"format\":\"lii.desired/1\",\"serial\":2,\"services\":{ }}\n";
        const char *sig2 = "untrusted comment: another signature\n";
        write_str("desired.json", doc2);
        write_str("desired.json.minisig", sig2);
        source_sync(source);
        wait_calls(3, 5000);
        assert_delivered(&calls[2], doc2, sig2);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 200), 2);
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json.minisig", 200), 2);

        /* The new document's ETag is the one asked about now. */
        source_sync(source);
        wait_calls(4, 5000);
        ck_assert(calls[3].unchanged);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 304), 2);
}
END_TEST

START_TEST(test_https)
{
        start_nginx(NULL);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = xasprintf("https://127.0.0.1:%d/desired.json", nginx.https_port);
        new_source(url, nginx.ca_file, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        assert_delivered(&calls[0], DOC, SIG);
}
END_TEST

START_TEST(test_https_unknown_ca)
{
        start_nginx(NULL);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = xasprintf("https://127.0.0.1:%d/desired.json", nginx.https_port);
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_lt(calls[0].r, 0);
        ck_assert_ptr_nonnull(strstr(calls[0].error, url));
        ck_assert_msg(strstr(calls[0].error, "certificate"), "error: %s", calls[0].error);
        ck_assert_ptr_null(calls[0].doc);
}
END_TEST

START_TEST(test_http_404)
{
        start_nginx(NULL);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_lt(calls[0].r, 0);
        _cleanup_free_ char *want = xasprintf("%s: HTTP 404", url);
        ck_assert_str_eq(calls[0].error, want);
        ck_assert_ptr_null(calls[0].doc);
}
END_TEST

START_TEST(test_http_500)
{
        start_nginx("location = /broken.json { return 500; }");
        _cleanup_free_ char *url = http_url("/broken.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_lt(calls[0].r, 0);
        _cleanup_free_ char *want = xasprintf("%s: HTTP 500", url);
        ck_assert_str_eq(calls[0].error, want);
}
END_TEST

START_TEST(test_connection_refused)
{
        /* A port that was just free and that nothing listens on. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd);
        _cleanup_free_ char *url =
            xasprintf("http://127.0.0.1:%d/desired.json", ntohs(sa.sin_port));
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_lt(calls[0].r, 0);
        ck_assert_ptr_nonnull(strstr(calls[0].error, url));
}
END_TEST

START_TEST(test_http_size_cap)
{
        start_nginx(NULL);
        _cleanup_free_ char *big = xcalloc(1, SOURCE_MAX_DOCUMENT + 1);
        memset(big, ' ', SOURCE_MAX_DOCUMENT + 1);
        write_file("big.json", big, SOURCE_MAX_DOCUMENT + 1);
        write_str("big.json.minisig", SIG);
        _cleanup_free_ char *url = http_url("/big.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_eq(calls[0].r, -EFBIG);
        _cleanup_free_ char *want = xasprintf("%s: document larger than 1048576 bytes", url);
        ck_assert_str_eq(calls[0].error, want);
        ck_assert_ptr_null(calls[0].doc);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/big.json.minisig", 200), 0);

        /* Exactly at the cap is fine. */
        write_file("big.json", big, SOURCE_MAX_DOCUMENT);
        source_sync(source);
        wait_calls(2, 5000);
        ck_assert_int_eq(calls[1].r, 0);
        ck_assert_uint_eq(calls[1].doc_len, SOURCE_MAX_DOCUMENT);
        ck_assert_mem_eq(calls[1].doc, big, SOURCE_MAX_DOCUMENT);
}
END_TEST

/* While the file .trickle is in the document root, nginx sends the
 * document (or the signature) at 1 byte per second: fast enough for curl's
 * low-speed limit, far too slow for a newer document to wait for. */
#define TRICKLE_DOC                                                                                \
        "location = /desired.json { if (-f $document_root/.trickle) { set $limit_rate 1; } }"
#define TRICKLE_SIG "location = /desired.json.minisig { limit_rate 1; }"

START_TEST(test_http_trickle_given_up)
{
        start_nginx(TRICKLE_DOC);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        write_str(".trickle", "");
        _cleanup_free_ char *url = http_url("/desired.json");
        /* Polling at 200 ms: the first failure waits that long, not 5 min. */
        new_source_timed(url, NULL, 200 * USEC_PER_MSEC, 500 * USEC_PER_MSEC);
        uint64_t start = now_monotonic_usec();
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 10000);
        ck_assert_int_eq(calls[0].r, -ETIMEDOUT);
        _cleanup_free_ char *want =
            xasprintf("%s: not complete within the time limit of 500ms", url);
        ck_assert_str_eq(calls[0].error, want);
        ck_assert_ptr_null(calls[0].doc);
        /* The limit is the whole GET's, not earlier (1 ms for curl's clock,
         * which may run a hair apart from ours); the upper bound leaves
         * room for a busy machine. */
        double took_ms = (double)(calls[0].at_usec - start) / USEC_PER_MSEC;
        ck_assert_msg(took_ms >= 499 && took_ms < 5000, "given up after %.1f ms", took_ms);

        /* Served normally again, the document arrives at the next attempt. */
        _cleanup_free_ char *trickle = xasprintf("%s/.trickle", www);
        ck_assert_int_eq(unlink(trickle), 0);
        wait_calls(2, 10000);
        assert_delivered(&calls[1], DOC, SIG);
}
END_TEST

START_TEST(test_http_signature_trickle_is_a_failure)
{
        start_nginx(TRICKLE_SIG);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source_timed(url, NULL, 60 * USEC_PER_SEC, 300 * USEC_PER_MSEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 10000);
        /* Not "no signature" (which the consumer would take as an answer
         * about this document) but a fetch that failed and is tried again. */
        ck_assert_int_eq(calls[0].r, -ETIMEDOUT);
        _cleanup_free_ char *want =
            xasprintf("%s.minisig: not complete within the time limit of 300ms", url);
        ck_assert_str_eq(calls[0].error, want);
        ck_assert_ptr_null(calls[0].doc);
        ck_assert_ptr_null(calls[0].sig_error);
}
END_TEST

START_TEST(test_http_missing_signature)
{
        start_nginx(NULL);
        write_str("desired.json", DOC);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_eq(calls[0].r, 0);
        ck_assert_str_eq(calls[0].doc, DOC);
        ck_assert_ptr_null(calls[0].sig);
        _cleanup_free_ char *want = xasprintf("%s.minisig: HTTP 404", url);
        ck_assert_str_eq(calls[0].sig_error, want);

        /* A signature published later for the same document is picked up:
         * a document delivered without one is not asked about with
         * If-None-Match. */
        write_str("desired.json.minisig", SIG);
        source_sync(source);
        wait_calls(2, 5000);
        assert_delivered(&calls[1], DOC, SIG);
}
END_TEST

START_TEST(test_http_redirects)
{
        start_nginx(
            "location = /moved.json { return 302 http://localhost:$server_port/desired.json; }\n"
            "location = /here.json { return 302 http://127.0.0.1:$server_port/desired.json; }");
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);

        _cleanup_free_ char *moved = http_url("/moved.json");
        new_source(moved, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        ck_assert_int_eq(calls[0].r, -EPERM);
        ck_assert_ptr_nonnull(strstr(calls[0].error, moved));
        ck_assert_msg(strstr(calls[0].error, "refused"), "error: %s", calls[0].error);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 200), 0);
        source = source_free(source);

        _cleanup_free_ char *here = http_url("/here.json");
        new_source(here, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(2, 5000);
        ck_assert_int_eq(calls[1].r, 0);
        ck_assert_str_eq(calls[1].doc, DOC);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 200), 1);
}
END_TEST

/* Time from one callback to the next, in ms. */
static double gap_ms(int i)
{
        return (double)(calls[i].at_usec - calls[i - 1].at_usec) / USEC_PER_MSEC;
}

START_TEST(test_http_backoff)
{
        start_nginx(NULL);
        _cleanup_free_ char *url = http_url("/desired.json");
        /* Polling at 200 ms ± 20%, failures wait 200 ms, then 400 ms, then
         * 800 ms (each ± 20%). Only lower bounds are checked: a busy machine
         * may be late, but a timer is never early. The few ms of slack are
         * for the loop time the timers count from. */
        new_source(url, NULL, 200 * USEC_PER_MSEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(3, 10000);
        for (int i = 0; i < 3; i++)
                ck_assert_int_lt(calls[i].r, 0);
        ck_assert_msg(gap_ms(1) >= 160 - 5, "second attempt after %.0f ms", gap_ms(1));
        ck_assert_msg(gap_ms(2) >= 320 - 5, "third attempt after %.0f ms", gap_ms(2));

        /* A sync does not wait for the backoff, and a success resets it:
         * the next poll comes after about 200 ms, not 640 ms or more. */
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        source_sync(source);
        wait_calls(4, 5000);
        assert_delivered(&calls[3], DOC, SIG);
        ck_assert_msg(gap_ms(3) < 640, "sync after %.0f ms", gap_ms(3));
        wait_calls(5, 5000);
        ck_assert(calls[4].unchanged);
        ck_assert_msg(gap_ms(4) >= 160 - 5 && gap_ms(4) < 640, "poll after %.0f ms", gap_ms(4));
}
END_TEST

START_TEST(test_http_sync_coalesces)
{
        start_nginx(NULL);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        source_sync(source);
        /* One loop iteration starts the GET; the syncs that follow come
         * while it is in flight and make exactly one more fetch. */
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(n_calls, 0);
        source_sync(source);
        source_sync(source);
        source_sync(source);
        wait_calls(2, 5000);
        assert_delivered(&calls[0], DOC, SIG);
        ck_assert(calls[1].unchanged);
        run_for(300);
        ck_assert_int_eq(n_calls, 2);
        nginx_log_barrier();
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 200), 1);
        ck_assert_int_eq(h_nginx_count(&nginx, "/desired.json", 304), 1);
}
END_TEST

START_TEST(test_http_free_in_flight)
{
        start_nginx(NULL);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = http_url("/desired.json");
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
        source = source_free(source);
        run_for(300);
        ck_assert_int_eq(n_calls, 0);
}
END_TEST

START_TEST(test_bad_urls)
{
        struct source_options opts = {.curlm = curlm, .poll_interval_usec = USEC_PER_SEC};
        struct source *s = NULL;
        ck_assert_int_eq(source_new(&loop, "ftp://example.org/d.json", &opts, on_result, NULL, &s),
                         -EPROTONOSUPPORT);
        ck_assert_int_eq(source_new(&loop, "http://", &opts, on_result, NULL, &s), -EINVAL);
        opts.curlm = NULL;
        ck_assert_int_eq(source_new(&loop, "http://127.0.0.1/d.json", &opts, on_result, NULL, &s),
                         -EINVAL);
        ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_file_rename)
{
        ck_assert_int_eq(mkdir(www, 0755), 0);
        write_str("desired.json", DOC);
        write_str("desired.json.minisig", SIG);
        _cleanup_free_ char *url = xasprintf("file://%s/desired.json", www);
        new_source(url, NULL, 60 * USEC_PER_SEC);
        ck_assert_int_eq(source_start(source), 0);
        wait_calls(1, 5000);
        assert_delivered(&calls[0], DOC, SIG);

        /* Only inotify can bring this one in time: the poll is a minute
         * away. */
        const char *doc2 = "{\"serial\":2}\n";
        write_str("desired.json", doc2);
        wait_calls(2, 2000);
        assert_delivered(&calls[1], doc2, SIG);
}
END_TEST

static Suite *source_suite(void)
{
        Suite *s = suite_create("source");
        TCase *tc = tcase_create("source");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_http_fetch);
        tcase_add_test(tc, test_http_unchanged_then_changed);
        tcase_add_test(tc, test_https);
        tcase_add_test(tc, test_https_unknown_ca);
        tcase_add_test(tc, test_http_404);
        tcase_add_test(tc, test_http_500);
        tcase_add_test(tc, test_connection_refused);
        tcase_add_test(tc, test_http_size_cap);
        tcase_add_test(tc, test_http_trickle_given_up);
        tcase_add_test(tc, test_http_signature_trickle_is_a_failure);
        tcase_add_test(tc, test_http_missing_signature);
        tcase_add_test(tc, test_http_redirects);
        tcase_add_test(tc, test_http_backoff);
        tcase_add_test(tc, test_http_sync_coalesces);
        tcase_add_test(tc, test_http_free_in_flight);
        tcase_add_test(tc, test_bad_urls);
        tcase_add_test(tc, test_file_rename);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(source_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
