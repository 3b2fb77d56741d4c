/* HTTP(S) GET on curl multi with lii's policy; see http.h. */
#include "http.h"

#include <limits.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lii-version.h"
#include "util.h"

struct http_get {
        struct curlm *curlm;
        CURL *easy;
        struct curl_slist *headers;
        char *url;
        char *ca_file;
        struct http_options opts;
        char *if_none_match;
        uint64_t max_bytes, bytes;
        uint64_t deadline_usec; /* monotonic, for opts.timeout_usec; 0: none */
        unsigned redirects;
        long status;
        char *etag;
        int data_error;
        char *fail_msg;
        char curl_error[CURL_ERROR_SIZE]; /* curl's own words for a failure */
        http_data_cb on_data;
        http_done_cb on_done;
        void *userdata;
};

static void http_get_free(struct http_get *g)
{
        if (g->easy) {
                curlm_remove(g->curlm, g->easy);
                curl_easy_cleanup(g->easy);
        }
        curl_slist_free_all(g->headers);
        free(g->url);
        free(g->ca_file);
        free(g->if_none_match);
        free(g->etag);
        free(g->fail_msg);
        free(g);
}

void http_get_cancel(struct http_get *g)
{
        if (g)
                http_get_free(g);
}

int http_get_resume(struct http_get *g)
{
        if (!g->easy)
                return -EINVAL;
        CURLcode c = curl_easy_pause(g->easy, CURLPAUSE_CONT);
        /* A refusal during the call leaves the transfer unpaused but with
         * no one to drive it to its end: the caller abandons it. */
        if (g->data_error)
                return g->data_error;
        if (c != CURLE_OK) {
                http_get_fail(g, "%s: %s", g->url, curl_easy_strerror(c));
                return -EIO;
        }
        return 0;
}

void http_get_fail(struct http_get *g, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        free(g->fail_msg);
        if (vasprintf(&g->fail_msg, fmt, ap) < 0)
                abort();
        va_end(ap);
}

static bool url_parts(const char *url, char **scheme, char **host, char **port)
{
        CURLU *u = curl_url();
        bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK;
        curl_url_cleanup(u);
        return ok;
}

bool http_redirect_allowed(const char *from, const char *to)
{
        char *s1 = NULL, *h1 = NULL, *p1 = NULL, *s2 = NULL, *h2 = NULL, *p2 = NULL;
        bool ok = url_parts(from, &s1, &h1, &p1) && url_parts(to, &s2, &h2, &p2) &&
                  strcasecmp(s1, s2) == 0 && strcasecmp(h1, h2) == 0 && strcmp(p1, p2) == 0;
        curl_free(s1);
        curl_free(h1);
        curl_free(p1);
        curl_free(s2);
        curl_free(h2);
        curl_free(p2);
        return ok;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
        struct http_get *g = userdata;
        size_t n = size * nitems;
        /* A new response (after a redirect or a 100) starts with its status
         * line: headers of the one before must not leak into it. */
        if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
                free(g->etag);
                g->etag = NULL;
        } else if (n > 5 && strncasecmp(buf, "etag:", 5) == 0) {
                const char *v = buf + 5;
                size_t len = n - 5;
                while (len && (*v == ' ' || *v == '\t'))
                        v++, len--;
                while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
                        len--;
                if (len > 0 && len <= 256) {
                        free(g->etag);
                        g->etag = strndup(v, len);
                }
        }
        return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct http_get *g = userdata;
        size_t n = size * nmemb;
        long status = 0;
        curl_easy_getinfo(g->easy, CURLINFO_RESPONSE_CODE, &status);
        /* Only a 2xx body is content; error pages and redirect bodies are
         * dropped without counting against the cap. */
        if (status < 200 || status > 299)
                return n;
        if (g->bytes + n > g->max_bytes) {
                g->data_error = -EFBIG;
                http_get_fail(g, "%s: larger than %llu bytes", g->url,
                              (unsigned long long)g->max_bytes);
                return 0;
        }
        int r = g->on_data ? g->on_data(g, ptr, n, g->userdata) : 0;
        /* curl keeps the bytes and offers them again once resumed. */
        if (r == HTTP_DATA_PAUSE)
                return CURL_WRITEFUNC_PAUSE;
        if (r < 0) {
                g->data_error = r;
                return 0;
        }
        g->bytes += n;
        return n;
}

/* The system's CAs stay trusted; an operator's extra bundle is added to
 * them rather than replacing them. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userdata)
{
        struct http_get *g = userdata;
        if (g->ca_file && SSL_CTX_load_verify_locations(ssl_ctx, g->ca_file, NULL) != 1)
                return CURLE_SSL_CACERT_BADFILE;
        return CURLE_OK;
}

static void on_done(CURL *easy, CURLcode result, void *userdata);

static int start(struct http_get *g)
{
        CURL *easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;
        uint64_t connect =
            g->opts.connect_timeout_usec ? g->opts.connect_timeout_usec : 10 * USEC_PER_SEC;
        uint64_t low_speed =
            g->opts.low_speed_time_usec ? g->opts.low_speed_time_usec : 30 * USEC_PER_SEC;
        curl_easy_setopt(easy, CURLOPT_URL, g->url);
        g->curl_error[0] = '\0';
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, g->curl_error);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect / USEC_PER_MSEC));
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                         (long)((low_speed + USEC_PER_SEC - 1) / USEC_PER_SEC));
        if (g->deadline_usec) {
                /* What is left of the whole GET's time, rounded up so that
                 * curl gives up no earlier than the deadline (on_done()
                 * tells the two apart by the clock); curl reads 0 as no
                 * limit, so a deadline already passed gets 1 ms. */
                uint64_t now = now_monotonic_usec();
                uint64_t left = g->deadline_usec > now ? g->deadline_usec - now : 0;
                uint64_t ms = (left + USEC_PER_MSEC - 1) / USEC_PER_MSEC;
                if (ms == 0)
                        ms = 1;
                curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(ms < LONG_MAX ? ms : LONG_MAX));
        }
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, g);
        curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(easy, CURLOPT_HEADERDATA, g);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, g);
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "liid/" LII_VERSION);
        curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, NULL);
        /* A small body (a signature) needs no 16 KiB receive buffer; curl
         * allocates one per transfer. */
        if (g->max_bytes < 16384)
                curl_easy_setopt(easy, CURLOPT_BUFFERSIZE,
                                 (long)(g->max_bytes < 1024 ? 1024 : g->max_bytes + 1));
        if (g->headers)
                curl_easy_setopt(easy, CURLOPT_HTTPHEADER, g->headers);
        int r = curlm_add(g->curlm, easy, on_done, g);
        if (r < 0) {
                curl_easy_cleanup(easy);
                return r;
        }
        g->easy = easy;
        return 0;
}

static void finish(struct http_get *g, int r, const char *error)
{
        struct http_result res = {
            .r = r,
            .status = g->status,
            .not_modified = r == 0 && g->status == 304,
            .etag = g->etag,
            .error = r < 0 ? error : NULL,
            .bytes = g->bytes,
        };
        g->on_done(g, &res, g->userdata);
        http_get_free(g);
}

static void on_done(CURL *easy, CURLcode result, void *userdata)
{
        struct http_get *g = userdata;
        _cleanup_free_ char *msg = NULL;
        g->easy = NULL;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &g->status);

        if (g->data_error) {
                curl_easy_cleanup(easy);
                msg = g->fail_msg ? xstrdup(g->fail_msg)
                                  : xasprintf("%s: %s", g->url, strerror(-g->data_error));
                finish(g, g->data_error, msg);
                return;
        }
        if (result != CURLE_OK) {
                /* curl says "Timeout was reached" for the connect and
                 * low-speed limits too; the whole GET's limit is the one an
                 * operator can change, so it is named. curl may keep time
                 * with CLOCK_MONOTONIC_RAW, which runs up to 0.05% apart
                 * from ours: a hair of slack. */
                uint64_t slack = g->opts.timeout_usec / 1000 + USEC_PER_MSEC;
                if (result == CURLE_OPERATION_TIMEDOUT && g->deadline_usec &&
                    now_monotonic_usec() + slack >= g->deadline_usec) {
                        char limit[32];
                        format_duration(g->opts.timeout_usec, limit, sizeof limit);
                        msg = xasprintf("%s: not complete within the time limit of %s", g->url,
                                        limit);
                } else if (g->curl_error[0]) {
                        /* The detail says why ("SSL certificate problem:
                         * certificate has expired"), where the code's text
                         * only says that the peer was not OK. */
                        _cleanup_free_ char *detail =
                            escape_untrusted(g->curl_error, sizeof g->curl_error);
                        msg = xasprintf("%s: %s", g->url, detail);
                } else {
                        msg = xasprintf("%s: %s", g->url, curl_easy_strerror(result));
                }
                curl_easy_cleanup(easy);
                finish(g, result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO, msg);
                return;
        }
        if (g->status >= 300 && g->status < 400 && g->status != 304) {
                char *location = NULL;
                curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location);
                _cleanup_free_ char *to = location ? xstrdup(location) : NULL;
                curl_easy_cleanup(easy);
                if (!to) {
                        msg = xasprintf("%s: HTTP %ld without a Location", g->url, g->status);
                        finish(g, -EIO, msg);
                        return;
                }
                if (!http_redirect_allowed(g->url, to)) {
                        msg = xasprintf("%s: redirect to %s refused (another scheme, host or port)",
                                        g->url, to);
                        finish(g, -EPERM, msg);
                        return;
                }
                if (++g->redirects > HTTP_MAX_REDIRECTS) {
                        msg = xasprintf("%s: more than %d redirects", g->url, HTTP_MAX_REDIRECTS);
                        finish(g, -ELOOP, msg);
                        return;
                }
                free(g->url);
                g->url = TAKE_PTR(to);
                int r = start(g);
                if (r < 0) {
                        msg = xasprintf("%s: %s", g->url, strerror(-r));
                        finish(g, r, msg);
                }
                return;
        }
        curl_easy_cleanup(easy);
        if (g->status == 304 && g->if_none_match) {
                finish(g, 0, NULL);
                return;
        }
        if (g->status < 200 || g->status > 299) {
                msg = xasprintf("%s: HTTP %ld", g->url, g->status);
                finish(g, g->status == 404 ? -ENOENT : -EIO, msg);
                return;
        }
        finish(g, 0, NULL);
}

int http_get_start(struct curlm *curlm, const char *url, const struct http_options *opts,
                   const char *if_none_match, uint64_t max_bytes, http_data_cb on_data,
                   http_done_cb done, void *userdata, struct http_get **ret)
{
        struct http_get *g = xcalloc(1, sizeof *g);
        g->curlm = curlm;
        g->url = xstrdup(url);
        if (opts) {
                g->opts = *opts;
                g->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
        }
        g->opts.ca_file = NULL;
        if (g->opts.timeout_usec) {
                uint64_t now = now_monotonic_usec();
                g->deadline_usec = g->opts.timeout_usec < UINT64_MAX - now
                                       ? now + g->opts.timeout_usec
                                       : UINT64_MAX;
        }
        g->max_bytes = max_bytes;
        g->on_data = on_data;
        g->on_done = done;
        g->userdata = userdata;
        if (if_none_match) {
                g->if_none_match = xstrdup(if_none_match);
                _cleanup_free_ char *h = xasprintf("If-None-Match: %s", if_none_match);
                g->headers = curl_slist_append(NULL, h);
        }
        int r = start(g);
        if (r < 0) {
                http_get_free(g);
                return r;
        }
        if (ret)
                *ret = g;
        return 0;
}
