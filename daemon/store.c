/* The content-addressed artifact store; see store.h. The loop thread only
 * books jobs and calls back. Fetching, hashing, unpacking and syncing run on
 * the libuv thread pool, in work that owns copies of everything it needs, so
 * that the store itself may be freed while such work is still running. */
#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fts.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

#define COPY_BUFFER_SIZE (128 * 1024)
#define SHA256_HEX_LEN   64

struct store {
        uv_loop_t *loop;
        char *sha_dir;          /* <state_dir>/store/sha256, absolute */
        char *tmp_dir;          /* <state_dir>/store/tmp, absolute */
        struct store_job *jobs; /* jobs whose callback is still due */
};

struct store_job {
        struct store *store; /* NULL once cancelled or orphaned by store_free() */
        struct store_job *prev, *next;
        bool queued; /* on the thread pool, as opposed to waiting on the timer */
        bool cancelled;
        bool done; /* the callback is running or has run */
        uv_timer_t timer;
        uv_work_t work;
        store_done_cb cb;
        void *userdata;

        /* What the thread-pool work reads and writes. The loop thread leaves
         * these alone between uv_queue_work() and the after-work callback. */
        char sha256[SHA256_HEX_LEN + 1];
        char *url;
        uint64_t size;
        enum artifact_type type;
        char *tmp_dir;
        char *sha_dir;
        char *root;
        int r;
        char *error;
};

static void evp_md_ctx_freep(EVP_MD_CTX **c)
{
        EVP_MD_CTX_free(*c);
}

static int fail(char **ret_error, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char **ret_error, int r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                abort();
        va_end(ap);
        return r;
}

/* Removes a tree, including one the store made read-only: folders get their
 * owner bits back before their entries are unlinked, which an unprivileged
 * owner needs. Does not cross into other file systems. */
static int rm_rf(const char *path)
{
        char *const roots[] = {(char *)path, NULL};
        FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
        if (!fts)
                return -errno;
        int r = 0;
        FTSENT *f;
        errno = 0;
        while ((f = fts_read(fts))) {
                int q = 0;
                switch (f->fts_info) {
                case FTS_D:
                        if (chmod(f->fts_accpath, 0700) < 0)
                                q = -errno;
                        break;
                case FTS_DP:
                        if (rmdir(f->fts_accpath) < 0)
                                q = -errno;
                        break;
                case FTS_DNR:
                case FTS_ERR:
                case FTS_NS:
                        q = -f->fts_errno;
                        break;
                case FTS_DC:
                        break;
                default:
                        if (unlink(f->fts_accpath) < 0)
                                q = -errno;
                        break;
                }
                if (q < 0 && r == 0)
                        r = q;
                errno = 0;
        }
        if (errno != 0 && r == 0)
                r = -errno;
        fts_close(fts);
        return r;
}

/* Holds a partial tree under store/tmp that goes away unless ownership is
 * taken with TAKE_PTR(). */
static void rm_rf_freep(char **path)
{
        if (*path) {
                (void)rm_rf(*path);
                free(*path);
        }
}

/* Gives the tree its final modes: folders 0555, files 0555 when they had
 * any execute bit and 0444 otherwise. Nobody may write, everybody may read:
 * instances run as a DynamicUser that owns none of these files, and the
 * content is public by construction (anyone with the URL can fetch it). */
static int make_read_only(const char *path)
{
        char *const roots[] = {(char *)path, NULL};
        FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
        if (!fts)
                return -errno;
        int r = 0;
        FTSENT *f;
        errno = 0;
        while (r == 0 && (f = fts_read(fts))) {
                switch (f->fts_info) {
                case FTS_D:
                        /* An archive may list a folder as unreadable; its
                         * entries must still be reachable for this walk. */
                        if ((f->fts_statp->st_mode & 0700) != 0700 &&
                            chmod(f->fts_accpath, 0700) < 0)
                                r = -errno;
                        break;
                case FTS_DP:
                        /* The root keeps its owner write bit until it has
                         * been renamed into place: moving a folder to
                         * another parent rewrites its ".." entry, which
                         * needs write access to it (unless one is root). */
                        if (chmod(f->fts_accpath, f->fts_level == FTS_ROOTLEVEL ? 0755 : 0555) < 0)
                                r = -errno;
                        break;
                case FTS_F:
                        if (chmod(f->fts_accpath, f->fts_statp->st_mode & 0111 ? 0555 : 0444) < 0)
                                r = -errno;
                        break;
                case FTS_SL:
                case FTS_SLNONE:
                        break;
                case FTS_DNR:
                case FTS_ERR:
                case FTS_NS:
                        r = -f->fts_errno;
                        break;
                default:
                        /* Unpacking writes no other kind of file. */
                        r = -EBADF;
                        break;
                }
                errno = 0;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        fts_close(fts);
        return r;
}

static int fsync_path(const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

/* Creates path as a real folder with exactly mode, or checks and fixes the
 * mode of an existing one; a symlink in its place is refused, since the
 * store later chmods and removes below it. */
static int ensure_dir(const char *path, mode_t mode)
{
        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return -errno;
        struct stat st;
        if (lstat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
                return -errno;
        return 0;
}

static int empty_dir(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                _cleanup_free_ char *p = xasprintf("%s/%s", path, de->d_name);
                int q = rm_rf(p);
                if (q < 0 && q != -ENOENT && r == 0)
                        r = q;
        }
        closedir(d);
        return r;
}

int store_new(uv_loop_t *loop, const char *state_dir, struct store **ret)
{
        if (!loop || !state_dir || !ret)
                return -EINVAL;
        if (mkdir(state_dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_free_ char *abs = realpath(state_dir, NULL);
        if (!abs)
                return -errno;
        /* Instances run as a DynamicUser and must reach the store below the
         * state folder, so it must be traversable by everyone (not readable:
         * listing it is nobody else's business). */
        struct stat st;
        if (stat(abs, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if ((st.st_mode & 0011) != 0011 && chmod(abs, (st.st_mode & 07777) | 0011) < 0)
                return -errno;

        _cleanup_free_ char *store_dir = xasprintf("%s/store", abs);
        _cleanup_free_ char *sha_dir = xasprintf("%s/sha256", store_dir);
        _cleanup_free_ char *tmp_dir = xasprintf("%s/tmp", store_dir);
        int r = ensure_dir(store_dir, 0755);
        if (r < 0)
                return r;
        r = ensure_dir(sha_dir, 0755);
        if (r < 0)
                return r;
        /* Work in progress is nobody else's business either. */
        r = ensure_dir(tmp_dir, 0700);
        if (r < 0)
                return r;
        r = empty_dir(tmp_dir);
        if (r < 0)
                return r;

        struct store *s = xcalloc(1, sizeof(*s));
        s->loop = loop;
        s->sha_dir = TAKE_PTR(sha_dir);
        s->tmp_dir = TAKE_PTR(tmp_dir);
        *ret = s;
        return 0;
}

static void job_unlink(struct store_job *j)
{
        struct store *s = j->store;
        if (!s)
                return;
        if (j->prev)
                j->prev->next = j->next;
        else
                s->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        j->prev = j->next = NULL;
        j->store = NULL;
}

static void job_free(struct store_job *j)
{
        free(j->url);
        free(j->tmp_dir);
        free(j->sha_dir);
        free(j->root);
        free(j->error);
        free(j);
}

static void on_timer_closed(uv_handle_t *h)
{
        job_free(container_of((uv_timer_t *)h, struct store_job, timer));
}

static void on_timer(uv_timer_t *t)
{
        struct store_job *j = container_of(t, struct store_job, timer);
        job_unlink(j);
        j->done = true;
        j->cb(0, j->root, NULL, j->userdata);
        uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}

/* Where the bytes of an artifact go while they arrive: the temporary file
 * and the running hash. Every fetcher writes through it, so the declared
 * size is enforced and the hash covers exactly what lands in the file,
 * wherever the bytes come from. */
struct sink {
        const char *url;
        int fd;
        EVP_MD_CTX *md;
        uint64_t received;
        uint64_t declared;
};

static int sink_write(struct sink *s, const void *buf, size_t n, char **ret_error)
{
        if (n > s->declared - s->received)
                return fail(ret_error, -EFBIG,
                            "artifact %s: larger than the declared size %" PRIu64, s->url,
                            s->declared);
        if (EVP_DigestUpdate(s->md, buf, n) != 1)
                return fail(ret_error, -EIO, "artifact %s: hashing failed", s->url);
        for (const char *p = buf; n > 0;) {
                ssize_t w = write(s->fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return fail(ret_error, -errno, "artifact %s: cannot write the download: %s",
                                    s->url, strerror(errno));
                p += w;
                n -= (size_t)w;
                s->received += (uint64_t)w;
        }
        return 0;
}

static int sink_finish(struct sink *s, const char *expected, char **ret_error)
{
        if (s->received != s->declared)
                return fail(ret_error, -EBADMSG,
                            "artifact %s: %" PRIu64 " bytes, declared %" PRIu64, s->url,
                            s->received, s->declared);
        uint8_t digest[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_DigestFinal_ex(s->md, digest, &len) != 1 || len != SHA256_HEX_LEN / 2)
                return fail(ret_error, -EIO, "artifact %s: hashing failed", s->url);
        char hex[SHA256_HEX_LEN + 1];
        hex_encode(digest, len, hex);
        if (strcmp(hex, expected) != 0)
                return fail(ret_error, -EBADMSG,
                            "artifact %s: SHA-256 mismatch: expected %s, got %s", s->url, expected,
                            hex);
        return 0;
}

static int unhex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes %XX escapes of a URL's path part; NUL bytes are refused. */
static char *url_unescape(const char *s, size_t n)
{
        char *out = xcalloc(n + 1, 1), *p = out;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
                        char c = (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
                        if (c == '\0') {
                                free(out);
                                return NULL;
                        }
                        *p++ = c;
                        i += 2;
                } else
                        *p++ = s[i];
        }
        return out;
}

/* The local path of a file:// URL: "file:///p" or "file://localhost/p". */
static char *file_url_path(const char *url)
{
        const char *p = url + strlen("file://");
        if (strncasecmp(p, "localhost/", strlen("localhost/")) == 0)
                p += strlen("localhost");
        if (*p != '/')
                return NULL;
        return url_unescape(p, strcspn(p, "?#"));
}

/* The name a "file" artifact gets inside its root: the last segment of the
 * URL's path, decoded. */
static char *url_file_name(const char *url)
{
        const char *rest = strstr(url, "://");
        rest = rest ? rest + 3 : url;
        size_t n = strcspn(rest, "?#");
        const char *slash = memrchr(rest, '/', n);
        if (!slash)
                return NULL;
        char *name = url_unescape(slash + 1, n - (size_t)(slash + 1 - rest));
        if (!name || name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
            strcmp(name, "..") == 0 || strlen(name) > NAME_MAX) {
                free(name);
                return NULL;
        }
        return name;
}

static int fetch_file(const char *url, struct sink *sink, char **ret_error)
{
        _cleanup_free_ char *path = file_url_path(url);
        if (!path)
                return fail(ret_error, -EINVAL, "artifact %s: not a local file URL", url);
        /* O_NONBLOCK keeps a FIFO planted at the path from blocking a pool
         * thread in open(); it is refused right after. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail(ret_error, -errno, "artifact %s: %s", url, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail(ret_error, -errno, "artifact %s: %s", url, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return fail(ret_error, -EINVAL, "artifact %s: not a regular file", url);

        _cleanup_free_ char *buf = xcalloc(COPY_BUFFER_SIZE, 1);
        for (;;) {
                ssize_t n = read(fd, buf, COPY_BUFFER_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail(ret_error, -errno, "artifact %s: %s", url, strerror(errno));
                if (n == 0)
                        return 0;
                int r = sink_write(sink, buf, (size_t)n, ret_error);
                if (r < 0)
                        return r;
        }
}

/* Fetchers by URL scheme. Each streams the artifact's bytes into the sink;
 * verification and unpacking do not depend on where the bytes came from. */
static const struct fetcher {
        const char *prefix;
        int (*fetch)(const char *url, struct sink *sink, char **ret_error);
} fetchers[] = {
    {"file://", fetch_file},
};

static int open_tmpfile(const char *dir)
{
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
                return fd < 0 ? -errno : fd;
        /* File systems without O_TMPFILE: a named file, unlinked at once. */
        _cleanup_free_ char *path = xasprintf("%s/download.XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        (void)unlink(path);
        return fd;
}

static int copy_fd(int in, int out)
{
        _cleanup_free_ char *buf = xcalloc(COPY_BUFFER_SIZE, 1);
        for (;;) {
                ssize_t n = read(in, buf, COPY_BUFFER_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                for (const char *p = buf; n > 0;) {
                        ssize_t w = write(out, p, (size_t)n);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        p += w;
                        n -= w;
                }
        }
}

/* A "file" artifact is one executable, placed in its root under the name
 * the URL gives it. */
static int place_file(struct store_job *j, int fd, const char *dir, char **ret_error)
{
        _cleanup_free_ char *name = url_file_name(j->url);
        if (!name)
                return fail(ret_error, -EINVAL, "artifact %s: the URL names no file", j->url);
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        _cleanup_close_ int out =
            open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0555);
        if (out < 0)
                return fail(ret_error, -errno, "artifact %s: cannot create %s: %s", j->url, path,
                            strerror(errno));
        int r = lseek(fd, 0, SEEK_SET) < 0 ? -errno : copy_fd(fd, out);
        if (r < 0)
                return fail(ret_error, r, "artifact %s: cannot write %s: %s", j->url, path,
                            strerror(-r));
        return 0;
}

/* Runs on the thread pool: fetch and verify into an anonymous temporary
 * file, unpack that same file into a private folder under store/tmp, make
 * it read-only and durable, and only then rename it into place. */
static int job_run(struct store_job *j, char **ret_error)
{
        struct stat st;
        int r;

        /* Another job may have completed the same artifact meanwhile. */
        if (lstat(j->root, &st) == 0 && S_ISDIR(st.st_mode))
                return 0;

        const struct fetcher *fetcher = NULL;
        for (size_t i = 0; i < ELEMENTSOF(fetchers) && !fetcher; i++)
                if (strncasecmp(j->url, fetchers[i].prefix, strlen(fetchers[i].prefix)) == 0)
                        fetcher = &fetchers[i];
        if (!fetcher)
                return fail(ret_error, -EPROTONOSUPPORT, "artifact %s: scheme not supported yet",
                            j->url);

        _cleanup_close_ int fd = open_tmpfile(j->tmp_dir);
        if (fd < 0)
                return fail(ret_error, fd, "artifact %s: cannot create a file in %s: %s", j->url,
                            j->tmp_dir, strerror(-fd));
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return fail(ret_error, -ENOMEM, "artifact %s: cannot set up SHA-256", j->url);
        struct sink sink = {.url = j->url, .fd = fd, .md = md, .declared = j->size};
        r = fetcher->fetch(j->url, &sink, ret_error);
        if (r < 0)
                return r;
        r = sink_finish(&sink, j->sha256, ret_error);
        if (r < 0)
                return r;

        _cleanup_(rm_rf_freep) char *dir = xasprintf("%s/%s.XXXXXX", j->tmp_dir, j->sha256);
        if (!mkdtemp(dir)) {
                r = -errno;
                free(TAKE_PTR(dir));
                return fail(ret_error, r, "artifact %s: cannot create a folder in %s: %s", j->url,
                            j->tmp_dir, strerror(-r));
        }
        if (j->type == ARTIFACT_TAR) {
                _cleanup_free_ char *error = NULL;
                struct unpack_limits limits = UNPACK_LIMITS_DEFAULT;
                r = unpack_tar_fd(fd, dir, &limits, &error);
                if (r < 0)
                        return fail(ret_error, r, "artifact %s: %s", j->url, error);
        } else {
                r = place_file(j, fd, dir, ret_error);
                if (r < 0)
                        return r;
        }

        r = make_read_only(dir);
        if (r < 0)
                return fail(ret_error, r, "artifact %s: cannot make the tree read-only: %s", j->url,
                            strerror(-r));
        /* One syncfs() of the store's file system instead of an fsync() per
         * file: artifacts can hold many thousands of small files, and only
         * the fact that the whole tree is on disk before the rename matters. */
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || syncfs(dfd) < 0)
                return fail(ret_error, -errno, "artifact %s: cannot sync the store: %s", j->url,
                            strerror(errno));

        if (rename(dir, j->root) < 0) {
                /* A concurrent job for the same artifact won: its tree has
                 * the same verified content, ours is discarded. */
                if (errno == EEXIST || errno == ENOTEMPTY)
                        return 0;
                return fail(ret_error, -errno, "artifact %s: cannot move it into the store: %s",
                            j->url, strerror(errno));
        }
        free(TAKE_PTR(dir));
        /* Should this fail or not reach the disk, the entry is still whole
         * and readable by everyone, only not read-only for liid itself. */
        if (chmod(j->root, 0555) < 0)
                return fail(ret_error, -errno, "artifact %s: cannot make %s read-only: %s", j->url,
                            j->root, strerror(errno));
        r = fsync_path(j->root);
        if (r >= 0)
                r = fsync_path(j->sha_dir);
        if (r < 0)
                return fail(ret_error, r, "artifact %s: cannot sync the store: %s", j->url,
                            strerror(-r));
        return 0;
}

static void job_work(uv_work_t *req)
{
        struct store_job *j = container_of(req, struct store_job, work);
        j->r = job_run(j, &j->error);
}

static void job_after_work(uv_work_t *req, int status)
{
        struct store_job *j = container_of(req, struct store_job, work);
        if (!j->cancelled) {
                job_unlink(j);
                j->done = true;
                if (j->r < 0 && !j->error)
                        j->error = xasprintf("artifact %s: %s", j->url, strerror(-j->r));
                if (j->r < 0)
                        j->cb(j->r, NULL, j->error, j->userdata);
                else
                        j->cb(0, j->root, NULL, j->userdata);
        }
        job_free(j);
}

char *store_artifact_path(struct store *s, const char *sha256)
{
        return xasprintf("%s/%s", s->sha_dir, sha256);
}

bool store_has(struct store *s, const char *sha256)
{
        if (!is_hex_string(sha256, SHA256_HEX_LEN))
                return false;
        _cleanup_free_ char *path = store_artifact_path(s, sha256);
        struct stat st;
        return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int store_ensure(struct store *s, const struct service_spec *spec, store_done_cb cb, void *userdata,
                 struct store_job **ret_job)
{
        if (!s || !spec || !cb || !spec->artifact_url ||
            !is_hex_string(spec->artifact_sha256, SHA256_HEX_LEN))
                return -EINVAL;

        struct store_job *j = xcalloc(1, sizeof(*j));
        j->cb = cb;
        j->userdata = userdata;
        memcpy(j->sha256, spec->artifact_sha256, sizeof(j->sha256));
        j->root = store_artifact_path(s, j->sha256);

        if (store_has(s, j->sha256)) {
                /* Already there: answer from the loop's next iteration, never
                 * from inside this call. */
                (void)uv_timer_init(s->loop, &j->timer);
                (void)uv_timer_start(&j->timer, on_timer, 0, 0);
        } else {
                j->url = xstrdup(spec->artifact_url);
                j->size = spec->artifact_size;
                j->type = spec->artifact_type;
                j->tmp_dir = xstrdup(s->tmp_dir);
                j->sha_dir = xstrdup(s->sha_dir);
                int r = uv_queue_work(s->loop, &j->work, job_work, job_after_work);
                if (r < 0) {
                        job_free(j);
                        return r;
                }
                j->queued = true;
        }

        j->store = s;
        j->next = s->jobs;
        if (s->jobs)
                s->jobs->prev = j;
        s->jobs = j;
        if (ret_job)
                *ret_job = j;
        return 0;
}

void store_job_cancel(struct store_job *j)
{
        if (!j || j->cancelled || j->done)
                return;
        j->cancelled = true;
        job_unlink(j);
        if (j->queued)
                /* Fails with UV_EBUSY when the work already runs; either way
                 * the after-work callback comes and frees the job. */
                (void)uv_cancel((uv_req_t *)&j->work);
        else {
                uv_timer_stop(&j->timer);
                uv_close((uv_handle_t *)&j->timer, on_timer_closed);
        }
}

struct store *store_free(struct store *s)
{
        if (!s)
                return NULL;
        while (s->jobs)
                store_job_cancel(s->jobs);
        free(s->sha_dir);
        free(s->tmp_dir);
        free(s);
        return NULL;
}

static bool job_pending_for(struct store *s, const char *sha256)
{
        for (struct store_job *j = s->jobs; j; j = j->next)
                if (strcmp(j->sha256, sha256) == 0)
                        return true;
        return false;
}

static bool strv_contains(char *const *v, const char *s)
{
        for (; v && *v; v++)
                if (strcmp(*v, s) == 0)
                        return true;
        return false;
}

int store_collect(struct store *s, char *const *keep)
{
        DIR *d = opendir(s->sha_dir);
        if (!d)
                return -errno;
        int removed = 0, r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                /* Only entries the store made are its to remove; an artifact
                 * that a job is about to hand out is kept for this round. */
                if (!is_hex_string(de->d_name, SHA256_HEX_LEN) || strv_contains(keep, de->d_name) ||
                    job_pending_for(s, de->d_name))
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", s->sha_dir, de->d_name);
                int q = rm_rf(path);
                if (q < 0 && q != -ENOENT) {
                        if (r == 0)
                                r = q;
                        continue;
                }
                removed++;
        }
        closedir(d);
        return r < 0 ? r : removed;
}
