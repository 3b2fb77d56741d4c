/* file:// desired-state source; see source.h. */
#include "source.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Editors and publishers write a document and its signature in several
 * steps; reacting to the last inotify event of a burst reads the result
 * once instead of every intermediate state. */
#define SOURCE_SETTLE_MSEC 50

struct source {
        uv_loop_t *loop;
        char *url;
        char *path;     /* the document's file */
        char *sig_path; /* path + ".minisig" */
        char *dir;
        const char *base, *sig_base; /* point into path and sig_path */
        uint64_t poll_interval_usec;
        source_cb cb;
        void *userdata;
        uv_timer_t poll_timer;
        uv_timer_t settle_timer;
        uv_fs_event_t fs_event;
        unsigned open_handles;
};

static void on_handle_closed(uv_handle_t *h)
{
        struct source *s = h->data;
        if (--s->open_handles == 0) {
                free(s->url);
                free(s->path);
                free(s->sig_path);
                free(s->dir);
                free(s);
        }
}

struct source *source_free(struct source *s)
{
        if (!s)
                return NULL;
        uv_close((uv_handle_t *)&s->poll_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->settle_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->fs_event, on_handle_closed);
        return NULL;
}

/* Reads at most max bytes; a larger file is an error, so the cap holds
 * before anything parses it. */
static int read_capped(const char *path, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        _cleanup_free_ char *buf = xcalloc(1, max + 2);
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, max + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > max)
                        return -EFBIG;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static void fetch(struct source *s)
{
        struct source_result res = { 0 };
        _cleanup_free_ char *doc = NULL, *sig = NULL, *error = NULL, *sig_error = NULL;
        int r = read_capped(s->path, SOURCE_MAX_DOCUMENT, &doc, &res.doc_len);
        if (r < 0) {
                res.r = r;
                if (r == -EFBIG)
                        error = xasprintf("%s: document larger than %u bytes", s->url,
                                          SOURCE_MAX_DOCUMENT);
                else
                        error = xasprintf("%s: %s", s->url, strerror(-r));
                res.error = error;
                s->cb(s, &res, s->userdata);
                return;
        }
        res.doc = doc;
        r = read_capped(s->sig_path, SOURCE_MAX_SIGNATURE, &sig, &res.sig_len);
        if (r < 0) {
                if (r == -EFBIG)
                        sig_error = xasprintf("%s.minisig: larger than %u bytes", s->url,
                                              SOURCE_MAX_SIGNATURE);
                else
                        sig_error = xasprintf("%s.minisig: %s", s->url, strerror(-r));
                res.sig_error = sig_error;
        } else {
                res.sig = sig;
        }
        s->cb(s, &res, s->userdata);
}

static void on_poll(uv_timer_t *t);

static void arm_poll(struct source *s)
{
        /* ±20% jitter keeps a fleet from polling a server in lockstep. */
        uint64_t base = s->poll_interval_usec / USEC_PER_MSEC;
        uint64_t spread = base / 5;
        uint64_t delay = base - spread + (spread ? (uint64_t)random() % (2 * spread + 1) : 0);
        uv_timer_start(&s->poll_timer, on_poll, delay, 0);
}

static void on_poll(uv_timer_t *t)
{
        struct source *s = t->data;
        arm_poll(s);
        fetch(s);
}

static void on_settled(uv_timer_t *t)
{
        struct source *s = t->data;
        /* A change seen through inotify counts as a poll: the safety net
         * starts over. */
        arm_poll(s);
        fetch(s);
}

static void on_fs_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
        struct source *s = handle->data;
        if (status < 0 || (filename && strcmp(filename, s->base) != 0 &&
                           strcmp(filename, s->sig_base) != 0))
                return;
        uv_timer_start(&s->settle_timer, on_settled, SOURCE_SETTLE_MSEC, 0);
}

void source_sync(struct source *s)
{
        uv_timer_start(&s->settle_timer, on_settled, 0, 0);
}

int source_start(struct source *s)
{
        /* The folder is watched rather than the file, because publishers
         * replace a document by renaming a new file over it. */
        int r = uv_fs_event_start(&s->fs_event, on_fs_event, s->dir, 0);
        if (r < 0)
                return -EIO;
        source_sync(s);
        return 0;
}

int source_new(uv_loop_t *loop, const char *url, uint64_t poll_interval_usec, source_cb cb,
               void *userdata, struct source **ret)
{
        if (strncmp(url, "file://", 7) != 0)
                return -EPROTONOSUPPORT;
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

        struct source *s = xcalloc(1, sizeof *s);
        s->loop = loop;
        s->url = xstrdup(url);
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
        s->poll_interval_usec = poll_interval_usec;
        s->cb = cb;
        s->userdata = userdata;
        uv_timer_init(loop, &s->poll_timer);
        uv_timer_init(loop, &s->settle_timer);
        uv_fs_event_init(loop, &s->fs_event);
        s->poll_timer.data = s->settle_timer.data = s->fs_event.data = s;
        s->open_handles = 3;
        *ret = s;
        return 0;
}
