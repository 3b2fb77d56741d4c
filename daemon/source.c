/* The desired-state source: file:// through inotify and polling, http(s)://
 * through conditional GETs on curl multi; see source.h. */
#include "source.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "source-etcd.h"
#include "util.h"

/* Editors and publishers write a document and its signature in several
 * steps; reacting to the last inotify event of a burst reads the result
 * once instead of every intermediate state. */
#define SOURCE_SETTLE_MSEC 50

/* Failed fetches back off up to this (or the poll interval, if longer), so
 * that a fleet does not hammer a broken server, yet notices its return
 * within minutes. */
#define SOURCE_BACKOFF_MAX_USEC (5 * 60 * USEC_PER_SEC)

enum source_kind {
        SOURCE_FILE,
        SOURCE_HTTP,
        SOURCE_ETCD,
};

struct buffer {
        char *data;
        size_t len, size;
};

struct source {
        uv_loop_t *loop;
        enum source_kind kind;
        char *url;
        uint64_t poll_interval_usec;
        source_cb cb;
        void *userdata;
        uv_timer_t poll_timer;
        /* file: the end of an inotify burst; both: the fetch a sync asks
         * for, run from the loop so that the callback never runs inside
         * source_sync(). */
        uv_timer_t settle_timer;
        unsigned open_handles;
        bool freed;

        /* file:// */
        char *path;     /* the document's file */
        char *sig_path; /* path + ".minisig" */
        char *dir;
        const char *base, *sig_base; /* point into path and sig_path */
        uv_fs_event_t fs_event;

        /* http(s):// */
        struct curlm *curlm;
        struct http_options http;
        char *ca_file; /* what http.ca_file points to */
        char *sig_url;
        struct http_get *get; /* the document's or the signature's GET in flight */
        struct buffer *into;  /* where the body of that GET goes */
        struct buffer doc, sig;
        bool sync_pending;  /* source_sync() came while a fetch was in flight */
        char *etag;         /* of the document delivered last, for If-None-Match */
        char *fetched_etag; /* of the document being fetched */
        unsigned failures;  /* in a row, for the backoff */

        /* etcd(s):// */
        struct etcd_source *etcd;
};

static void buffer_done(struct buffer *b)
{
        free(b->data);
        *b = (struct buffer){0};
}

static int buffer_append(struct buffer *b, const void *data, size_t len)
{
        if (len > b->size - b->len) {
                size_t size = b->size ? b->size : 4096;
                while (size - b->len < len)
                        size *= 2;
                char *p = realloc(b->data, size);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->size = size;
        }
        memcpy(b->data + b->len, data, len);
        b->len += len;
        return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
        struct source *s = h->data;
        if (--s->open_handles == 0) {
                free(s->url);
                free(s->path);
                free(s->sig_path);
                free(s->dir);
                free(s->ca_file);
                free(s->sig_url);
                buffer_done(&s->doc);
                buffer_done(&s->sig);
                free(s->etag);
                free(s->fetched_etag);
                free(s);
        }
}

struct source *source_free(struct source *s)
{
        if (!s)
                return NULL;
        s->freed = true;
        s->etcd = etcd_source_free(s->etcd);
        http_get_cancel(s->get);
        s->get = NULL;
        uv_close((uv_handle_t *)&s->poll_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->settle_timer, on_handle_closed);
        if (s->kind == SOURCE_FILE)
                uv_close((uv_handle_t *)&s->fs_event, on_handle_closed);
        return NULL;
}

/* ±20% jitter keeps a fleet from polling a server in lockstep. */
static uint64_t jittered_msec(uint64_t usec)
{
        uint64_t base = usec / USEC_PER_MSEC;
        uint64_t spread = base / 5;
        return base - spread + (spread ? (uint64_t)random() % (2 * spread + 1) : 0);
}

/* ---- file:// ---- */

static void file_fetch(struct source *s)
{
        struct source_result res = {0};
        _cleanup_free_ char *doc = NULL, *sig = NULL, *error = NULL, *sig_error = NULL;
        int r = read_file_capped(s->path, SOURCE_MAX_DOCUMENT, &doc, &res.doc_len);
        if (r < 0) {
                res.r = r;
                if (r == -EFBIG)
                        error = xasprintf("%s: document larger than %u bytes", s->url,
                                          SOURCE_MAX_DOCUMENT);
                else
                        error = xasprintf("%s: %s", s->url, read_file_strerror(r));
                res.error = error;
                s->cb(s, &res, s->userdata);
                return;
        }
        res.doc = doc;
        r = read_file_capped(s->sig_path, SOURCE_MAX_SIGNATURE, &sig, &res.sig_len);
        if (r < 0) {
                if (r == -EFBIG)
                        sig_error = xasprintf("%s.minisig: larger than %u bytes", s->url,
                                              SOURCE_MAX_SIGNATURE);
                else
                        sig_error = xasprintf("%s.minisig: %s", s->url, read_file_strerror(r));
                res.sig_error = sig_error;
        } else {
                res.sig = sig;
        }
        s->cb(s, &res, s->userdata);
}

static void on_file_poll(uv_timer_t *t);

static void file_arm_poll(struct source *s)
{
        uv_timer_start(&s->poll_timer, on_file_poll, jittered_msec(s->poll_interval_usec), 0);
}

static void on_file_poll(uv_timer_t *t)
{
        struct source *s = t->data;
        file_arm_poll(s);
        file_fetch(s);
}

static void on_file_settled(uv_timer_t *t)
{
        struct source *s = t->data;
        /* A change seen through inotify counts as a poll: the safety net
         * starts over. */
        file_arm_poll(s);
        file_fetch(s);
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
        struct source *s = handle->data;
        if (status < 0 ||
            (filename && strcmp(filename, s->base) != 0 && strcmp(filename, s->sig_base) != 0))
                return;
        uv_timer_start(&s->settle_timer, on_file_settled, SOURCE_SETTLE_MSEC, 0);
}

/* ---- http(s):// ---- */

static void http_fetch(struct source *s);

static void on_http_timer(uv_timer_t *t)
{
        http_fetch(t->data);
}

/* The delay before the next attempt: the poll interval after a success,
 * and after n failures in a row the poll interval × 2^(n-1), capped. */
static uint64_t http_next_usec(const struct source *s)
{
        uint64_t cap = s->poll_interval_usec > SOURCE_BACKOFF_MAX_USEC ? s->poll_interval_usec
                                                                       : SOURCE_BACKOFF_MAX_USEC;
        uint64_t delay = s->poll_interval_usec;
        for (unsigned i = 1; i < s->failures && delay < cap; i++)
                delay = delay > cap / 2 ? cap : delay * 2;
        return delay < cap ? delay : cap;
}

/* Ends a fetch: delivers its result and plans the next one. */
static void http_finish(struct source *s, const struct source_result *res)
{
        if (res->r < 0) {
                s->failures++;
                /* A 304 must stand for the bytes delivered just before it;
                 * after a failure the consumer's last word was the error,
                 * so the next success downloads the document again. */
                free(s->etag);
                s->etag = NULL;
        } else {
                s->failures = 0;
        }
        s->cb(s, res, s->userdata);
        if (s->freed)
                return;
        buffer_done(&s->doc);
        buffer_done(&s->sig);
        free(s->fetched_etag);
        s->fetched_etag = NULL;
        if (s->sync_pending) {
                /* The sync may have been asked for because of a change the
                 * fetch that just ended started too early to see. */
                s->sync_pending = false;
                uv_timer_start(&s->settle_timer, on_http_timer, 0, 0);
                return;
        }
        uv_timer_start(&s->poll_timer, on_http_timer, jittered_msec(http_next_usec(s)), 0);
}

static void http_fail(struct source *s, int r, const char *error)
{
        struct source_result res = {.r = r, .error = error};
        http_finish(s, &res);
}

static int on_http_data(struct http_get *g, const void *data, size_t len, void *userdata)
{
        struct source *s = userdata;
        /* http.c enforces the cap before handing bytes over. */
        return buffer_append(s->into, data, len);
}

/* Whether a failed signature GET means that the server has no signature
 * for us, which the consumer should hear about as such, rather than that
 * it could not be asked, which is worth another attempt. */
static bool signature_missing(const struct http_result *hr)
{
        return hr->r == -EFBIG || (hr->status >= 400 && hr->status <= 499);
}

static void on_sig_done(struct http_get *g, const struct http_result *hr, void *userdata)
{
        struct source *s = userdata;
        s->get = NULL;
        if (hr->r < 0 && !signature_missing(hr)) {
                http_fail(s, hr->r, hr->error);
                return;
        }
        struct source_result res = {
            .doc = s->doc.data ? s->doc.data : "",
            .doc_len = s->doc.len,
        };
        free(s->etag);
        s->etag = NULL;
        if (hr->r < 0) {
                /* The ETag is not kept: while the document stays the same,
                 * its signature may be published later. */
                res.sig_error = hr->error;
        } else {
                res.sig = s->sig.data ? s->sig.data : "";
                res.sig_len = s->sig.len;
                s->etag = TAKE_PTR(s->fetched_etag);
        }
        http_finish(s, &res);
}

static void on_doc_done(struct http_get *g, const struct http_result *hr, void *userdata)
{
        struct source *s = userdata;
        s->get = NULL;
        if (hr->r == -EFBIG) {
                _cleanup_free_ char *msg =
                    xasprintf("%s: document larger than %u bytes", s->url, SOURCE_MAX_DOCUMENT);
                http_fail(s, hr->r, msg);
                return;
        }
        if (hr->r < 0) {
                http_fail(s, hr->r, hr->error);
                return;
        }
        if (hr->not_modified) {
                struct source_result res = {.unchanged = true};
                http_finish(s, &res);
                return;
        }
        /* Only a document delivered together with its signature is worth
         * an If-None-Match next time; see on_sig_done(). */
        s->fetched_etag = hr->etag ? xstrdup(hr->etag) : NULL;
        s->into = &s->sig;
        int r = http_get_start(s->curlm, s->sig_url, &s->http, NULL, SOURCE_MAX_SIGNATURE,
                               on_http_data, on_sig_done, s, &s->get);
        if (r < 0) {
                _cleanup_free_ char *msg = xasprintf("%s: %s", s->sig_url, strerror(-r));
                http_fail(s, r, msg);
        }
}

static void http_fetch(struct source *s)
{
        uv_timer_stop(&s->poll_timer);
        uv_timer_stop(&s->settle_timer);
        if (s->get) {
                s->sync_pending = true;
                return;
        }
        buffer_done(&s->doc);
        buffer_done(&s->sig);
        s->into = &s->doc;
        int r = http_get_start(s->curlm, s->url, &s->http, s->etag, SOURCE_MAX_DOCUMENT,
                               on_http_data, on_doc_done, s, &s->get);
        if (r < 0) {
                _cleanup_free_ char *msg = xasprintf("%s: %s", s->url, strerror(-r));
                http_fail(s, r, msg);
        }
}

/* ---- both ---- */

void source_sync(struct source *s)
{
        if (s->kind == SOURCE_ETCD) {
                etcd_source_sync(s->etcd);
                return;
        }
        if (s->kind == SOURCE_FILE) {
                uv_timer_start(&s->settle_timer, on_file_settled, 0, 0);
                return;
        }
        if (s->get) {
                s->sync_pending = true;
                return;
        }
        uv_timer_start(&s->settle_timer, on_http_timer, 0, 0);
}

void source_refetch(struct source *s)
{
        free(s->etag);
        s->etag = NULL;
        source_sync(s);
}

int source_start(struct source *s)
{
        if (s->kind == SOURCE_ETCD)
                return etcd_source_start(s->etcd);
        if (s->kind == SOURCE_FILE) {
                /* The folder is watched rather than the file, because
                 * publishers replace a document by renaming a new file over
                 * it. */
                int r = uv_fs_event_start(&s->fs_event, on_fs_event, s->dir, 0);
                if (r < 0)
                        return -EIO;
        }
        source_sync(s);
        return 0;
}

static int file_init(struct source *s, const char *url)
{
        CURLU *u = curl_url();
        char *path = NULL;
        if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK || !path ||
            path[0] != '/' || path[1] == '\0') {
                curl_free(path);
                curl_url_cleanup(u);
                return -EINVAL;
        }
        curl_url_cleanup(u);

        s->path = xstrdup(path);
        curl_free(path);
        s->sig_path = xasprintf("%s.minisig", s->path);
        s->dir = xstrdup(s->path);
        char *slash = strrchr(s->dir, '/');
        *slash = '\0';
        s->base = strrchr(s->path, '/') + 1;
        s->sig_base = strrchr(s->sig_path, '/') + 1;
        if (!*s->dir) {
                free(s->dir);
                s->dir = xstrdup("/");
        }
        return 0;
}

static int http_init(struct source *s, const char *url, const struct source_options *opts)
{
        if (!opts->curlm)
                return -EINVAL;
        /* Refused here rather than at the first fetch, so that a typo in
         * the configuration stops liid at start-up. */
        CURLU *u = curl_url();
        char *host = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host;
        curl_free(host);
        curl_url_cleanup(u);
        if (!ok)
                return -EINVAL;

        s->curlm = opts->curlm;
        s->http = opts->http;
        s->ca_file = opts->http.ca_file ? xstrdup(opts->http.ca_file) : NULL;
        s->http.ca_file = s->ca_file;
        /* The design's rule: the signature is at <url>.minisig. */
        s->sig_url = xasprintf("%s.minisig", url);
        return 0;
}

static void on_etcd_result(const struct source_result *res, void *userdata)
{
        struct source *s = userdata;
        s->cb(s, res, s->userdata);
}

int source_new(uv_loop_t *loop, const char *url, const struct source_options *opts, source_cb cb,
               void *userdata, struct source **ret)
{
        enum source_kind kind;
        if (strncmp(url, "file://", 7) == 0)
                kind = SOURCE_FILE;
        else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)
                kind = SOURCE_HTTP;
        else if (strncmp(url, "etcd://", 7) == 0 || strncmp(url, "etcds://", 8) == 0)
                kind = SOURCE_ETCD;
        else
                return -EPROTONOSUPPORT;

        struct source *s = xcalloc(1, sizeof *s);
        int r;
        if (kind == SOURCE_FILE)
                r = file_init(s, url);
        else if (kind == SOURCE_HTTP)
                r = http_init(s, url, opts);
        else
                r = etcd_source_new(loop, url, opts, on_etcd_result, s, &s->etcd);
        if (r < 0) {
                free(s->path);
                free(s->sig_path);
                free(s->dir);
                free(s->ca_file);
                free(s->sig_url);
                free(s);
                return r;
        }
        s->loop = loop;
        s->kind = kind;
        s->url = xstrdup(url);
        s->poll_interval_usec = opts->poll_interval_usec;
        s->cb = cb;
        s->userdata = userdata;
        uv_timer_init(loop, &s->poll_timer);
        uv_timer_init(loop, &s->settle_timer);
        s->poll_timer.data = s->settle_timer.data = s;
        s->open_handles = 2;
        if (kind == SOURCE_FILE) {
                uv_fs_event_init(loop, &s->fs_event);
                s->fs_event.data = s;
                s->open_handles++;
        }
        *ret = s;
        return 0;
}
