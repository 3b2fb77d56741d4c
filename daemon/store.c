/* The content-addressed artifact store; see store.h. Each job is a short
 * sequence of steps driven from the loop: look in the store (thread pool),
 * fetch the signature and check its key id (curl multi, or the thread pool
 * for file://), fetch the artifact into an anonymous temporary file while
 * hashing it (curl multi on the loop handing the bytes to the sink's worker
 * threads, or the thread pool for file://; see store-sink.h), verify the
 * signature (loop), then unpack, record and rename (thread pool).
 * Work on the thread pool owns copies of everything it needs, so that the
 * store itself may be freed while such work is still running; the keyring
 * and curl are only touched from the loop while the job is alive.
 * Collection renames the trees no longer needed into store/tmp on the
 * loop and removes them on the thread pool. */
#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fts.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "sha256.h"
#include "store-sink.h"
#include "util.h"

#define COPY_BUFFER_SIZE (128 * 1024)
#define B2_HEX_LEN       (2 * MINISIGN_HASH_SIZE)
#define SIG_SUFFIX       ".sig"
#define B2_SUFFIX        ".b2"

struct store {
        uv_loop_t *loop;
        struct curlm *curlm;
        struct http_options http;
        char *ca_file; /* http.ca_file points here */
        uint64_t min_rate;
        const struct minisign_keyring *keys;
        char *sha_dir;          /* <state_dir>/store/sha256, absolute */
        char *tmp_dir;          /* <state_dir>/store/tmp, absolute */
        struct store_job *jobs; /* jobs whose callback is still due */
        unsigned n_removed;     /* trees store_collect() took out, for unique names */
};

/* What a job has queued on the thread pool. */
enum job_work {
        WORK_LOOKUP,     /* is the tree there, and what does its record say */
        WORK_READ_SIG,   /* a file:// signature */
        WORK_FETCH_FILE, /* a file:// artifact into the sink */
        WORK_INSTALL,    /* unpack, record, rename */
};

struct store_job {
        struct store *store; /* NULL once cancelled or orphaned by store_free() */
        struct store_job *prev, *next;
        bool queued; /* on the thread pool: its after-work callback comes */
        bool cancelled;
        bool done; /* the callback is running or has run */
        enum job_work work_kind;
        uv_work_t work;
        struct http_get *get; /* a signature or artifact download on curl multi */
        store_done_cb cb;
        void *userdata;

        char sha256[SHA256_HEX_LEN + 1];
        char *url;
        char *sig_url; /* NULL when signatures are not required */
        uint64_t size;
        enum artifact_type type;
        char *tmp_dir;
        char *sha_dir;
        char *root;

        /* What the thread-pool work reads and writes. The loop thread leaves
         * these alone between uv_queue_work() and the after-work callback. */
        bool exists;    /* the tree is in the store */
        char *sig_text; /* a signature file: the store's record or a fresh one */
        size_t sig_len;
        bool have_b2; /* b2 holds the artifact's BLAKE2b-512 */
        uint8_t b2[MINISIGN_HASH_SIZE];
        struct store_sink *sink; /* the download, once it starts */
        bool record;             /* the install step writes <hex>.sig and <hex>.b2 */
        int r;
        char *error;

        /* Loop only. */
        bool paused;   /* the sink had no room: the download waits for it */
        bool draining; /* the download is complete, the sink is not done yet */
        struct minisign_sig *sig;
        char *key_id;
        char *comment;
};

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
                int r = write_all(out, buf, (size_t)n);
                if (r < 0)
                        return r;
        }
}

/* A "file" artifact is one executable, placed in its root under the name
 * the URL gives it. */
static int place_file(struct store_job *j, int fd, const char *dir, char **ret_error)
{
        _cleanup_free_ char *name = url_file_name(j->url);
        if (!name)
                return fail_with(ret_error, -EINVAL, "artifact %s: the URL names no file", j->url);
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        _cleanup_close_ int out =
            open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0555);
        if (out < 0)
                return fail_with(ret_error, -errno, "artifact %s: cannot create %s: %s", j->url,
                                 path, strerror(errno));
        int r = lseek(fd, 0, SEEK_SET) < 0 ? -errno : copy_fd(fd, out);
        if (r < 0)
                return fail_with(ret_error, r, "artifact %s: cannot write %s: %s", j->url, path,
                                 strerror(-r));
        return 0;
}

int store_new(uv_loop_t *loop, const char *state_dir, const struct store_options *opts,
              struct store **ret)
{
        if (!loop || !state_dir || !opts || !ret)
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

        _cleanup_free_ char *store_dir = xasprintf("%s/" STORE_DIR, abs);
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
        s->curlm = opts->curlm;
        s->http = opts->http;
        s->ca_file = opts->http.ca_file ? xstrdup(opts->http.ca_file) : NULL;
        s->http.ca_file = s->ca_file;
        s->min_rate = opts->min_rate;
        s->keys = opts->keys;
        s->sha_dir = TAKE_PTR(sha_dir);
        s->tmp_dir = TAKE_PTR(tmp_dir);
        *ret = s;
        return 0;
}

static int fetch_file(const char *url, struct store_sink *sink, char **ret_error)
{
        _cleanup_free_ char *path = file_url_path(url);
        if (!path)
                return fail_with(ret_error, -EINVAL, "artifact %s: not a local file URL", url);
        /* O_NONBLOCK keeps a FIFO planted at the path from blocking a pool
         * thread in open(); it is refused right after. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail_with(ret_error, -errno, "artifact %s: %s", url, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail_with(ret_error, -errno, "artifact %s: %s", url, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return fail_with(ret_error, -EINVAL, "artifact %s: not a regular file", url);

        _cleanup_free_ char *buf = xcalloc(COPY_BUFFER_SIZE, 1);
        for (;;) {
                ssize_t n = read(fd, buf, COPY_BUFFER_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail_with(ret_error, -errno, "artifact %s: %s", url,
                                         strerror(errno));
                if (n == 0)
                        return 0;
                int r = store_sink_write(sink, buf, (size_t)n, ret_error);
                if (r < 0)
                        return r;
        }
}

/* Writes a small file in one go under a temporary name in tmp_dir and
 * renames it over path, so that a reader sees the old content or the new,
 * never a part. The caller syncs path's folder. */
/* Replaces path with data. With durable, the file is synced before the
 * rename; without, a syncfs() to come must cover it (the caller's word). */
static int write_file_atomic(const char *tmp_dir, const char *path, const void *data, size_t len,
                             bool durable)
{
        _cleanup_free_ char *tmp = xasprintf("%s/record.XXXXXX", tmp_dir);
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, data, len);
        if (r == 0 && (fchmod(fd, 0444) < 0 || (durable && fsync(fd) < 0) || rename(tmp, path) < 0))
                r = -errno;
        if (r < 0)
                (void)unlink(tmp);
        return r;
}

/* The record of a verified artifact: the signature it was verified with and
 * the BLAKE2b-512 that signature covers. With both, a later use checks the
 * signature against the keyring of that moment without reading the
 * artifact again. */
/* The artifact's record: its BLAKE2b-512 and its signature, beside the
 * tree. durable as for write_file_atomic(). */
static int write_record(struct store_job *j, bool durable, char **ret_error)
{
        char hex[B2_HEX_LEN + 2];
        hex_encode(j->b2, MINISIGN_HASH_SIZE, hex);
        hex[B2_HEX_LEN] = '\n';
        hex[B2_HEX_LEN + 1] = '\0';
        _cleanup_free_ char *b2_path = xasprintf("%s" B2_SUFFIX, j->root);
        _cleanup_free_ char *sig_path = xasprintf("%s" SIG_SUFFIX, j->root);
        int r = write_file_atomic(j->tmp_dir, b2_path, hex, B2_HEX_LEN + 1, durable);
        if (r >= 0)
                r = write_file_atomic(j->tmp_dir, sig_path, j->sig_text, j->sig_len, durable);
        if (r < 0)
                return fail_with(ret_error, r, "artifact %s: cannot record its signature: %s",
                                 j->url, strerror(-r));
        return 0;
}

/* Reads what there is of the record; a part that is missing or damaged
 * counts as absent. */
static void read_record(struct store_job *j)
{
        _cleanup_free_ char *b2_path = xasprintf("%s" B2_SUFFIX, j->root);
        _cleanup_free_ char *sig_path = xasprintf("%s" SIG_SUFFIX, j->root);
        _cleanup_free_ char *hex = NULL;
        size_t len = 0;
        if (read_file_capped(b2_path, B2_HEX_LEN + 1, &hex, &len) < 0 || len != B2_HEX_LEN + 1 ||
            hex[B2_HEX_LEN] != '\n')
                return;
        for (size_t i = 0; i < MINISIGN_HASH_SIZE; i++) {
                int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return;
                j->b2[i] = (uint8_t)(hi << 4 | lo);
        }
        j->have_b2 = true;
        if (read_file_capped(sig_path, MINISIGN_SIG_FILE_MAX, &j->sig_text, &j->sig_len) < 0)
                j->sig_text = NULL;
}

static void work_lookup(struct store_job *j)
{
        struct stat st;
        j->exists = lstat(j->root, &st) == 0 && S_ISDIR(st.st_mode);
        if (j->exists && j->sig_url)
                read_record(j);
}

static int work_read_sig(struct store_job *j, char **ret_error)
{
        _cleanup_free_ char *path = file_url_path(j->sig_url);
        if (!path)
                return fail_with(ret_error, -EINVAL,
                                 "artifact %s: signature %s: not a local file URL", j->url,
                                 j->sig_url);
        int r = read_file_capped(path, MINISIGN_SIG_FILE_MAX, &j->sig_text, &j->sig_len);
        if (r == -EFBIG)
                return fail_with(ret_error, r, "artifact %s: signature %s: larger than %d bytes",
                                 j->url, j->sig_url, MINISIGN_SIG_FILE_MAX);
        if (r < 0)
                return fail_with(ret_error, r, "artifact %s: signature %s: %s", j->url, j->sig_url,
                                 read_file_strerror(r));
        return 0;
}

static int work_fetch_file(struct store_job *j, char **ret_error)
{
        int r = fetch_file(j->url, j->sink, ret_error);
        if (r < 0)
                return r;
        r = store_sink_finish(j->sink, j->sha256, j->b2, ret_error);
        if (r < 0)
                return r;
        j->have_b2 = j->sig_url != NULL;
        return 0;
}

/* Unpacks the verified file (the same descriptor the hashes were computed
 * over) into a private folder under store/tmp, makes it read-only and
 * durable, records the signature, and only then renames the tree into
 * place. A tree that is already there is left alone: it came from the same
 * verified bytes, and only its record is written. */
static int work_install(struct store_job *j, char **ret_error)
{
        struct stat st;
        int r;

        if (j->sink && !(lstat(j->root, &st) == 0 && S_ISDIR(st.st_mode))) {
                _cleanup_(rm_rf_freep) char *dir = xasprintf("%s/%s.XXXXXX", j->tmp_dir, j->sha256);
                if (!mkdtemp(dir)) {
                        r = -errno;
                        free(TAKE_PTR(dir));
                        return fail_with(ret_error, r,
                                         "artifact %s: cannot create a folder in %s: %s", j->url,
                                         j->tmp_dir, strerror(-r));
                }
                if (j->type == ARTIFACT_TAR) {
                        _cleanup_free_ char *error = NULL;
                        struct unpack_limits limits = UNPACK_LIMITS_DEFAULT;
                        r = unpack_tar_fd(store_sink_fd(j->sink), dir, &limits, &error);
                        if (r < 0)
                                return fail_with(ret_error, r, "artifact %s: %s", j->url, error);
                } else {
                        r = place_file(j, store_sink_fd(j->sink), dir, ret_error);
                        if (r < 0)
                                return r;
                }

                r = make_read_only(dir);
                if (r < 0)
                        return fail_with(ret_error, r,
                                         "artifact %s: cannot make the tree read-only: %s", j->url,
                                         strerror(-r));
                /* The record goes first: a tree in place without one would
                 * have to be fetched again to be trusted. The syncfs()
                 * below puts it on the disk with the tree; should a crash
                 * come first, a record without its tree is collected, and
                 * a damaged one only means a fresh signature check. */
                if (j->record) {
                        r = write_record(j, false, ret_error);
                        if (r < 0)
                                return r;
                }
                /* One syncfs() of the store's file system instead of an
                 * fsync() per file: artifacts can hold many thousands of
                 * small files, and only the fact that the whole tree is on
                 * disk before the rename matters. */
                _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0 || syncfs(dfd) < 0)
                        return fail_with(ret_error, -errno,
                                         "artifact %s: cannot sync the store: %s", j->url,
                                         strerror(errno));

                if (rename(dir, j->root) < 0) {
                        /* A concurrent job for the same artifact won: its
                         * tree has the same verified content, ours is
                         * discarded. */
                        if (errno != EEXIST && errno != ENOTEMPTY)
                                return fail_with(ret_error, -errno,
                                                 "artifact %s: cannot move it into the store: %s",
                                                 j->url, strerror(errno));
                } else {
                        free(TAKE_PTR(dir));
                        /* Should this fail or not reach the disk, the entry
                         * is still whole and readable by everyone, only not
                         * read-only for liid itself: it is not synced. */
                        if (chmod(j->root, 0555) < 0)
                                return fail_with(ret_error, -errno,
                                                 "artifact %s: cannot make %s read-only: %s",
                                                 j->url, j->root, strerror(errno));
                }
        } else if (j->record) {
                r = write_record(j, true, ret_error);
                if (r < 0)
                        return r;
        }
        /* The renames (records, tree) reach the disk with the folder. */
        r = fsync_dir(j->sha_dir);
        if (r < 0)
                return fail_with(ret_error, r, "artifact %s: cannot sync the store: %s", j->url,
                                 strerror(-r));
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
        /* The get first: it must not hand the sink more bytes. */
        http_get_cancel(j->get);
        store_sink_free(j->sink);
        minisign_sig_free(j->sig);
        free(j->url);
        free(j->sig_url);
        free(j->tmp_dir);
        free(j->sha_dir);
        free(j->root);
        free(j->sig_text);
        free(j->error);
        free(j->key_id);
        free(j->comment);
        free(j);
}

/* Ends a job: calls its callback once and frees it. Only from the loop,
 * with nothing of the job outstanding. */
static void job_finish(struct store_job *j, int r, const char *error)
{
        job_unlink(j);
        j->done = true;
        struct store_result res = {.r = r,
                                   .bytes_fetched = j->sink ? store_sink_received(j->sink) : 0};
        if (r < 0) {
                res.error = error ? error : strerror(-r);
                /* A failed download gives its room back (it is an unnamed
                 * file) before the owner hears of it: on a full disk the
                 * owner's next step is to record the failure there. */
                http_get_cancel(j->get);
                j->get = NULL;
                j->sink = store_sink_free(j->sink);
        } else {
                res.root = j->root;
                res.key_id = j->key_id;
                res.trusted_comment = j->comment;
        }
        j->cb(&res, j->userdata);
        job_free(j);
}

static void job_fail(struct store_job *j, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_fail(struct store_job *j, int r, const char *fmt, ...)
{
        _cleanup_free_ char *error = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&error, fmt, ap) < 0)
                abort();
        va_end(ap);
        job_finish(j, r, error);
}

static void job_work(uv_work_t *req);
static void job_after_work(uv_work_t *req, int status);

static int job_queue(struct store_job *j, enum job_work kind)
{
        j->work_kind = kind;
        j->r = 0;
        free(j->error);
        j->error = NULL;
        int r = uv_queue_work(j->store->loop, &j->work, job_work, job_after_work);
        if (r < 0)
                return r;
        j->queued = true;
        return 0;
}

static void job_queue_or_fail(struct store_job *j, enum job_work kind)
{
        int r = job_queue(j, kind);
        if (r < 0)
                job_fail(j, r, "artifact %s: cannot queue work: %s", j->url, uv_strerror(r));
}

static bool has_prefix(const char *url, const char *prefix)
{
        return strncasecmp(url, prefix, strlen(prefix)) == 0;
}

static bool is_http(const char *url)
{
        return has_prefix(url, "http://") || has_prefix(url, "https://");
}

static bool scheme_supported(const char *url)
{
        return has_prefix(url, "file://") || is_http(url);
}

/* The message of a failed get, prefixed. Its error names the URL the get
 * was at, which is the one asked for unless a redirect was followed; the
 * one asked for is named either way. */
static char *http_error(const char *prefix, const char *url, const struct http_result *res)
{
        const char *e = res->error ? res->error : strerror(-res->r);
        size_t n = strlen(url);
        if (strncmp(e, url, n) == 0 && e[n] == ':')
                return xasprintf("%s%s", prefix, e);
        return xasprintf("%s%s: %s", prefix, url, e);
}

/* Checks the parsed signature against the keyring and the artifact's
 * BLAKE2b-512, and remembers who signed. */
static int job_verify(struct store_job *j, char **ret_error)
{
        const struct minisign_key *key = NULL;
        _cleanup_free_ char *error = NULL;
        int r = minisign_verify_prehashed(j->store->keys, j->sig, j->b2, 0, &key, &error);
        if (r < 0)
                return fail_with(ret_error, r, "artifact %s: %s", j->url, error);
        free(j->key_id);
        free(j->comment);
        j->key_id = xstrdup(key->key_id_string);
        j->comment = xstrdup(j->sig->trusted_comment);
        return 0;
}

static int on_artifact_data(struct http_get *g, const void *data, size_t len, void *userdata)
{
        struct store_job *j = userdata;
        /* Only a copy into the sink's ring is made here, on the loop: its
         * workers take the size, SHA-256 and BLAKE2b-512 and write the
         * file while the transfer goes on, and nothing is read twice. */
        _cleanup_free_ char *error = NULL;
        int r = store_sink_push(j->sink, data, len, &error);
        if (r == STORE_SINK_FULL) {
                j->paused = true;
                return HTTP_DATA_PAUSE;
        }
        if (r < 0) {
                free(j->error);
                j->error = TAKE_PTR(error);
        }
        return r;
}

static void after_fetch(struct store_job *j)
{
        if (j->sig_url) {
                _cleanup_free_ char *error = NULL;
                int r = job_verify(j, &error);
                if (r < 0) {
                        job_finish(j, r, error);
                        return;
                }
                j->record = true;
        }
        job_queue_or_fail(j, WORK_INSTALL);
}

/* Ends a job whose download failed with r. */
static void artifact_get_failed(struct store_job *j, int r, const struct http_result *res)
{
        if (j->error) {
                /* The sink refused the bytes and said why. */
                job_finish(j, r, j->error);
                return;
        }
        if (r == -EFBIG) {
                /* Whether the sink or the get's own cap (one byte over the
                 * declared size) noticed first, the reason is the same. */
                job_fail(j, -EFBIG, "artifact %s: larger than the declared size %" PRIu64, j->url,
                         j->size);
                return;
        }
        if (!res) {
                job_fail(j, r, "artifact %s: the download cannot go on: %s", j->url, strerror(-r));
                return;
        }
        _cleanup_free_ char *error = http_error("artifact ", j->url, res);
        job_finish(j, r, error);
}

static void on_artifact_done(struct http_get *g, const struct http_result *res, void *userdata)
{
        struct store_job *j = userdata;
        j->get = NULL;
        if (res->r < 0) {
                artifact_get_failed(j, res->r, res);
                return;
        }
        /* Every byte is in the sink; the verdict waits for its workers,
         * which report through on_sink_event(). */
        j->draining = true;
        store_sink_close(j->sink);
}

static void on_sink_event(struct store_sink *sink, void *userdata)
{
        struct store_job *j = userdata;
        _cleanup_free_ char *error = NULL;
        int r = store_sink_status(sink, &error);
        if (r < 0) {
                /* Writing or hashing failed: the rest of the download is
                 * of no use. */
                http_get_cancel(TAKE_PTR(j->get));
                job_finish(j, r, error);
                return;
        }
        if (j->get && j->paused) {
                /* Cleared first: the bytes held back are offered again
                 * from inside the resume, and may fill the ring again. */
                j->paused = false;
                r = http_get_resume(j->get);
                if (r < 0) {
                        http_get_cancel(TAKE_PTR(j->get));
                        artifact_get_failed(j, r, NULL);
                }
                return;
        }
        if (!j->draining || r == 0)
                return;
        j->draining = false;
        r = store_sink_finish(sink, j->sha256, j->b2, &error);
        if (r < 0) {
                job_finish(j, r, error);
                return;
        }
        j->have_b2 = j->sig_url != NULL;
        after_fetch(j);
}

static void start_fetch(struct store_job *j)
{
        struct store *s = j->store;
        j->sink = store_sink_free(j->sink);
        int r = store_sink_new(j->url, j->tmp_dir, j->size, j->sig_url != NULL, &j->sink);
        if (r < 0) {
                job_fail(j, r, "artifact %s: cannot set up the download in %s: %s", j->url,
                         j->tmp_dir, strerror(-r));
                return;
        }
        if (!is_http(j->url)) {
                /* Already off the loop: the pool thread hashes and writes
                 * as it reads. */
                job_queue_or_fail(j, WORK_FETCH_FILE);
                return;
        }
        if (!s->curlm) {
                job_fail(j, -EPROTONOSUPPORT, "artifact %s: no HTTP client is set up", j->url);
                return;
        }
        r = store_sink_start(j->sink, s->loop, on_sink_event, j);
        if (r < 0) {
                job_fail(j, r, "artifact %s: cannot start hashing the download: %s", j->url,
                         strerror(-r));
                return;
        }
        free(j->error);
        j->error = NULL;
        /* One byte over the declared size is enough to know it is too big. */
        uint64_t max = j->size < UINT64_MAX ? j->size + 1 : UINT64_MAX;
        struct http_options opts = s->http;
        opts.timeout_usec = store_artifact_timeout_usec(s->http.timeout_usec, s->min_rate, j->size);
        r = http_get_start(s->curlm, j->url, &opts, NULL, max, on_artifact_data, on_artifact_done,
                           j, &j->get);
        if (r < 0)
                job_fail(j, r, "artifact %s: cannot start the download: %s", j->url, strerror(-r));
}

/* The signature has arrived: refuse what no trusted key signed before a
 * single byte of the artifact is fetched. */
static void after_sig(struct store_job *j)
{
        _cleanup_free_ char *error = NULL;
        minisign_sig_free(j->sig);
        j->sig = NULL;
        int r = minisign_sig_parse(j->sig_text, j->sig_len, &j->sig, &error);
        if (r < 0) {
                job_fail(j, r, "artifact %s: signature %s: %s", j->url, j->sig_url, error);
                return;
        }
        /* The same wording and order as minisign_verify_prehashed(), which
         * makes the final check once the artifact's hash is known. */
        if (!j->sig->prehashed) {
                job_fail(j, -EPROTONOSUPPORT,
                         "artifact %s: legacy (non-prehashed) signatures are refused", j->url);
                return;
        }
        if (!minisign_keyring_find(j->store->keys, j->sig->key_id)) {
                job_fail(j, -ENOKEY, "artifact %s: signature key id %s is not trusted", j->url,
                         j->sig->key_id_string);
                return;
        }
        if (j->exists && j->have_b2) {
                /* The tree is there and its hash is known: a fresh signature
                 * (say, by a key that replaced one no longer trusted) is
                 * checked against it, and recorded, without a download. */
                r = job_verify(j, &error);
                if (r >= 0) {
                        j->record = true;
                        job_queue_or_fail(j, WORK_INSTALL);
                        return;
                }
                /* A signature that does not match the recorded hash is
                 * judged against the artifact itself, in case the record
                 * is what is wrong. */
                if (r != -EBADMSG) {
                        job_finish(j, r, error);
                        return;
                }
                j->have_b2 = false;
        }
        start_fetch(j);
}

static int on_sig_data(struct http_get *g, const void *data, size_t len, void *userdata)
{
        struct store_job *j = userdata;
        /* The get's cap keeps this within MINISIGN_SIG_FILE_MAX; checked
         * regardless. The buffer grows with what arrives (a signature is a
         * few hundred bytes), so 64 downloads at once stay small. */
        if (len > MINISIGN_SIG_FILE_MAX - j->sig_len)
                return -EFBIG;
        char *text = realloc(j->sig_text, j->sig_len + len + 1);
        if (!text)
                return -ENOMEM;
        j->sig_text = text;
        memcpy(j->sig_text + j->sig_len, data, len);
        j->sig_len += len;
        j->sig_text[j->sig_len] = '\0';
        return 0;
}

static void on_sig_done(struct http_get *g, const struct http_result *res, void *userdata)
{
        struct store_job *j = userdata;
        j->get = NULL;
        if (res->r < 0) {
                _cleanup_free_ char *prefix = xasprintf("artifact %s: signature ", j->url);
                _cleanup_free_ char *error = http_error(prefix, j->sig_url, res);
                job_finish(j, res->r, error);
                return;
        }
        after_sig(j);
}

static void start_sig(struct store_job *j)
{
        struct store *s = j->store;
        free(j->sig_text);
        j->sig_text = NULL;
        j->sig_len = 0;
        if (has_prefix(j->sig_url, "file://")) {
                job_queue_or_fail(j, WORK_READ_SIG);
                return;
        }
        if (!is_http(j->sig_url)) {
                job_fail(j, -EPROTONOSUPPORT, "artifact %s: signature %s: scheme not supported",
                         j->url, j->sig_url);
                return;
        }
        if (!s->curlm) {
                job_fail(j, -EPROTONOSUPPORT, "artifact %s: signature %s: no HTTP client is set up",
                         j->url, j->sig_url);
                return;
        }
        j->sig_text = xcalloc(1, 1);
        int r = http_get_start(s->curlm, j->sig_url, &s->http, NULL, MINISIGN_SIG_FILE_MAX,
                               on_sig_data, on_sig_done, j, &j->get);
        if (r < 0)
                job_fail(j, r, "artifact %s: signature %s: cannot start the download: %s", j->url,
                         j->sig_url, strerror(-r));
}

/* Whether the store's record of the artifact still holds: a signature by a
 * key trusted now over the recorded hash. */
static bool record_holds(struct store_job *j)
{
        if (!j->sig_text || !j->have_b2)
                return false;
        _cleanup_free_ char *error = NULL;
        if (minisign_sig_parse(j->sig_text, j->sig_len, &j->sig, &error) < 0)
                return false;
        return job_verify(j, &error) == 0;
}

static void after_lookup(struct store_job *j)
{
        if (j->exists && (!j->sig_url || record_holds(j))) {
                job_finish(j, 0, NULL);
                return;
        }
        if (!scheme_supported(j->url)) {
                job_fail(j, -EPROTONOSUPPORT, "artifact %s: scheme not supported", j->url);
                return;
        }
        /* Not there, or there without a record that a key trusted now
         * vouches for: a fresh signature decides. With the recorded hash
         * (a key that is no longer trusted) no download is needed; without
         * it (no record yet, or a damaged one) the artifact is fetched and
         * verified again, and the tree in place is kept, since instances
         * may be running from it. */
        if (j->sig_url)
                start_sig(j);
        else
                start_fetch(j);
}

static void job_work(uv_work_t *req)
{
        struct store_job *j = container_of(req, struct store_job, work);
        switch (j->work_kind) {
        case WORK_LOOKUP:
                work_lookup(j);
                break;
        case WORK_READ_SIG:
                j->r = work_read_sig(j, &j->error);
                break;
        case WORK_FETCH_FILE:
                j->r = work_fetch_file(j, &j->error);
                break;
        case WORK_INSTALL:
                j->r = work_install(j, &j->error);
                break;
        }
}

static void job_after_work(uv_work_t *req, int status)
{
        struct store_job *j = container_of(req, struct store_job, work);
        j->queued = false;
        if (j->cancelled) {
                job_free(j);
                return;
        }
        if (status < 0) {
                job_fail(j, status, "artifact %s: %s", j->url, uv_strerror(status));
                return;
        }
        if (j->r < 0) {
                job_finish(j, j->r, j->error);
                return;
        }
        switch (j->work_kind) {
        case WORK_LOOKUP:
                after_lookup(j);
                break;
        case WORK_READ_SIG:
                after_sig(j);
                break;
        case WORK_FETCH_FILE:
                after_fetch(j);
                break;
        case WORK_INSTALL:
                job_finish(j, 0, NULL);
                break;
        }
}

uint64_t store_artifact_timeout_usec(uint64_t base_usec, uint64_t min_rate, uint64_t size)
{
        if (min_rate == 0)
                return 0;
        unsigned __int128 t = (unsigned __int128)size * USEC_PER_SEC / min_rate + base_usec;
        return t < UINT64_MAX ? (uint64_t)t : UINT64_MAX;
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
        j->store = s;
        j->cb = cb;
        j->userdata = userdata;
        memcpy(j->sha256, spec->artifact_sha256, sizeof(j->sha256));
        j->url = xstrdup(spec->artifact_url);
        if (s->keys)
                j->sig_url = spec->signature_url ? xstrdup(spec->signature_url)
                                                 : xasprintf("%s.minisig", spec->artifact_url);
        j->size = spec->artifact_size;
        j->type = spec->artifact_type;
        j->tmp_dir = xstrdup(s->tmp_dir);
        j->sha_dir = xstrdup(s->sha_dir);
        j->root = store_artifact_path(s, j->sha256);

        /* Even the answer for an artifact already in the store comes from
         * the thread pool: its record is read from disk, and the callback
         * must never run from inside this call. */
        int r = job_queue(j, WORK_LOOKUP);
        if (r < 0) {
                j->store = NULL;
                job_free(j);
                return r;
        }

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
                 * the after-work callback comes and frees the job, and the
                 * temporary file goes with it. */
                (void)uv_cancel((uv_req_t *)&j->work);
        else
                /* A download in progress: aborted here, and its anonymous
                 * file is gone with the descriptor. */
                job_free(j);
}

struct store *store_free(struct store *s)
{
        if (!s)
                return NULL;
        while (s->jobs)
                store_job_cancel(s->jobs);
        free(s->ca_file);
        free(s->sha_dir);
        free(s->tmp_dir);
        free(s);
        return NULL;
}

/* The artifact a record file belongs to: "<hex>.sig" or "<hex>.b2". */
static bool record_name(const char *name, char ret_sha256[static SHA256_HEX_LEN + 1])
{
        if (strlen(name) <= SHA256_HEX_LEN || (strcmp(name + SHA256_HEX_LEN, SIG_SUFFIX) != 0 &&
                                               strcmp(name + SHA256_HEX_LEN, B2_SUFFIX) != 0))
                return false;
        memcpy(ret_sha256, name, SHA256_HEX_LEN);
        ret_sha256[SHA256_HEX_LEN] = '\0';
        return is_hex_string(ret_sha256, SHA256_HEX_LEN);
}

static int unlink_record(const char *root)
{
        static const char *const suffixes[] = {SIG_SUFFIX, B2_SUFFIX};
        int r = 0;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *path = xasprintf("%s%s", root, suffixes[i]);
                if (unlink(path) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
        }
        return r;
}

/* The trees one store_collect() took out of the store, under store/tmp,
 * for the thread pool to remove. It owns copies of everything, so that it
 * may outlive the store. */
struct removal {
        uv_work_t work;
        char **paths;
        size_t n_paths;
};

static void removal_work(uv_work_t *req)
{
        struct removal *rm = container_of(req, struct removal, work);
        /* What cannot be removed now stays in store/tmp, which store_new()
         * empties when liid starts again. */
        for (size_t i = 0; i < rm->n_paths; i++)
                (void)rm_rf(rm->paths[i]);
}

static void removal_after_work(uv_work_t *req, int status)
{
        struct removal *rm = container_of(req, struct removal, work);
        strv_free(rm->paths);
        free(rm);
}

/* Takes the tree at path out of the store: renamed under store/tmp at once,
 * so that no lookup finds it any more and a fetch of the same artifact
 * builds a new tree beside it, and removed later, off the loop. Returns
 * the new path, or NULL with errno set. */
static char *tree_take_out(struct store *s, const char *path, const char *sha256)
{
        /* Moving a folder to another parent rewrites its ".." entry, which
         * needs write access to it (unless one is root); the tree's root is
         * 0555. A name still taken by an earlier liid's removal is skipped. */
        if (chmod(path, 0755) < 0)
                return NULL;
        for (unsigned tries = 0; tries < 16; tries++) {
                char *dest = xasprintf("%s/removed-%u-%s", s->tmp_dir, s->n_removed++, sha256);
                if (rename(path, dest) == 0)
                        return dest;
                int saved = errno;
                free(dest);
                if (saved != EEXIST && saved != ENOTEMPTY) {
                        (void)chmod(path, 0555);
                        errno = saved;
                        return NULL;
                }
        }
        (void)chmod(path, 0555);
        errno = EEXIST;
        return NULL;
}

int store_collect(struct store *s, char *const *keep)
{
        /* What stays, sorted once so that each entry of the store costs a
         * binary search, not a walk of the list: keep, and every artifact
         * a job is about to hand out, which is kept for this round. Repeats
         * do no harm to the search. */
        size_t n = strv_length(keep);
        for (struct store_job *j = s->jobs; j; j = j->next)
                n++;
        _cleanup_free_ const char **stay = xcalloc(n, sizeof(*stay));
        size_t n_stay = 0;
        for (char *const *k = keep; k && *k; k++)
                stay[n_stay++] = *k;
        for (struct store_job *j = s->jobs; j; j = j->next)
                stay[n_stay++] = j->sha256;
        qsort(stay, n_stay, sizeof(*stay), strptr_compare);

        _cleanup_(closedirp) DIR *d = opendir(s->sha_dir);
        if (!d)
                return -errno;
        struct removal *rm = xcalloc(1, sizeof(*rm));
        size_t paths_max = 0;
        int removed = 0, r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char sha256[SHA256_HEX_LEN + 1];
                bool entry = is_hex_string(de->d_name, SHA256_HEX_LEN);
                /* Only entries the store made, and their records, are its
                 * to remove. */
                if (entry)
                        memcpy(sha256, de->d_name, sizeof(sha256));
                else if (!record_name(de->d_name, sha256))
                        continue;
                const char *key = sha256;
                if (bsearch(&key, stay, n_stay, sizeof(*stay), strptr_compare))
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", s->sha_dir, sha256);
                int q;
                if (entry) {
                        char *moved = tree_take_out(s, path, sha256);
                        q = moved ? 0 : -errno;
                        if (moved) {
                                if (rm->n_paths + 1 >= paths_max) {
                                        paths_max = paths_max ? 2 * paths_max : 8;
                                        rm->paths = oom_check(
                                            reallocarray(rm->paths, paths_max, sizeof(char *)));
                                }
                                rm->paths[rm->n_paths++] = moved;
                                rm->paths[rm->n_paths] = NULL;
                        }
                        if (q >= 0 || q == -ENOENT) {
                                removed++;
                                q = unlink_record(path);
                        }
                } else {
                        /* A record whose tree is gone (removed by an earlier
                         * round that failed halfway, or never renamed into
                         * place); one whose tree is still there goes with it. */
                        struct stat st;
                        q = lstat(path, &st) == 0 ? 0 : unlink_record(path);
                }
                if (q < 0 && q != -ENOENT && r == 0)
                        r = q;
        }

        if (rm->n_paths == 0) {
                free(rm);
        } else {
                int q = uv_queue_work(s->loop, &rm->work, removal_work, removal_after_work);
                if (q < 0) {
                        /* The trees wait in store/tmp for the next start. */
                        removal_after_work(&rm->work, q);
                        if (r == 0)
                                r = q;
                }
        }
        return r < 0 ? r : removed;
}
