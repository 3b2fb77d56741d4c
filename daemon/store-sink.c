/* The artifact sink; see store-sink.h. The pipeline is a ring of
 * SINK_SLOTS buffers of SINK_SLOT_SIZE bytes, numbered by an ever growing
 * sequence. The loop fills the slot numbered `published` and publishes it
 * when it is full (or at the end); each worker takes published slots in
 * order, and a slot is free again once every worker has passed it. The
 * lock guards the sequence numbers and flags, never the hashing or the
 * write, so the loop holds it only for a moment. */
#include "store-sink.h"

#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

/* 2 MiB per download in flight, however large the artifact: enough for the
 * workers to run on while curl refills, and far more than the 16 KiB curl
 * hands over at a time. Buffers are allocated on first use and never
 * zeroed, so a small artifact takes little. */
#define SINK_SLOTS     8
#define SINK_SLOT_SIZE (256 * 1024)
/* An artifact this small is hashed and written on the loop as it arrives
 * (a few hundred microseconds in all): two threads per download would cost
 * more than they save, and 64 small rollouts at once would start 128. */
#define SINK_INLINE_MAX SINK_SLOT_SIZE

enum sink_worker_kind {
        WORKER_FILE, /* SHA-256, then write() */
        WORKER_B2,   /* BLAKE2b-512 */
        WORKER_KINDS,
};

struct sink_worker {
        struct store_sink *sink;
        enum sink_worker_kind kind;
        uv_thread_t thread;
        bool running;  /* created and not joined yet; loop only */
        uint64_t next; /* the next slot to take; under lock */
        bool done;     /* saw the end after the last slot; under lock */
};

struct store_sink {
        char *url;
        int fd;
        EVP_MD_CTX *sha256;
        struct minisign_hasher *b2; /* NULL when no signature is checked */
        uint64_t declared;
        uint64_t received; /* bytes taken; the caller's thread only */

        /* The pipeline, once started. The worker that owns a hash is the
         * only thread touching it until it has been joined. */
        bool started;
        uv_async_t async;
        store_sink_cb cb;
        void *userdata;
        uv_mutex_t lock;
        uv_cond_t more; /* a slot was published, or the end came, or stop */
        struct sink_worker workers[WORKER_KINDS];
        size_t n_workers;
        /* Written by the loop before a slot is published, read by the
         * workers only after; the lock orders the two. */
        char *slots[SINK_SLOTS];
        size_t lens[SINK_SLOTS];
        size_t fill; /* bytes in the slot being filled; loop only */
        /* Under lock. */
        uint64_t published;
        bool closed;
        bool stop;
        size_t want; /* free slots a refused push needs; 0: nobody waits */
        int r;
        char *error;
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

int store_sink_new(const char *url, const char *tmp_dir, uint64_t declared, bool blake2b,
                   struct store_sink **ret)
{
        struct store_sink *s = xcalloc(1, sizeof(*s));
        s->url = xstrdup(url);
        s->fd = -1;
        s->declared = declared;
        int r = 0;
        s->sha256 = EVP_MD_CTX_new();
        if (!s->sha256 || EVP_DigestInit_ex(s->sha256, EVP_sha256(), NULL) != 1)
                r = -ENOMEM;
        if (r == 0 && blake2b)
                r = minisign_hasher_new(&s->b2);
        if (r == 0) {
                s->fd = open_tmpfile(tmp_dir);
                r = s->fd < 0 ? s->fd : 0;
        }
        if (r < 0) {
                store_sink_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static void sink_release(struct store_sink *s)
{
        EVP_MD_CTX_free(s->sha256);
        minisign_hasher_free(s->b2);
        if (s->fd >= 0)
                close(s->fd);
        for (size_t i = 0; i < SINK_SLOTS; i++)
                free(s->slots[i]);
        free(s->url);
        free(s->error);
}

static void on_close(uv_handle_t *h)
{
        free(container_of((uv_async_t *)h, struct store_sink, async));
}

static void join_workers(struct store_sink *s)
{
        for (size_t i = 0; i < s->n_workers; i++)
                if (s->workers[i].running) {
                        uv_thread_join(&s->workers[i].thread);
                        s->workers[i].running = false;
                }
}

struct store_sink *store_sink_free(struct store_sink *s)
{
        if (!s)
                return NULL;
        if (!s->started) {
                sink_release(s);
                free(s);
                return NULL;
        }
        /* A worker notices between two buffers; the wait is for at most
         * the one it is hashing or writing now. */
        uv_mutex_lock(&s->lock);
        s->stop = true;
        uv_cond_broadcast(&s->more);
        uv_mutex_unlock(&s->lock);
        join_workers(s);
        uv_cond_destroy(&s->more);
        uv_mutex_destroy(&s->lock);
        sink_release(s);
        /* Nothing sends to the handle any more; no callback comes after
         * uv_close(), and the memory goes in on_close(). */
        uv_close((uv_handle_t *)&s->async, on_close);
        return NULL;
}

/* The SHA-256 goes with the write: together they cost about what the
 * BLAKE2b costs alone, which keeps the two workers even. */
static int process_file(struct store_sink *s, const char *buf, size_t n, char **ret_error)
{
        if (EVP_DigestUpdate(s->sha256, buf, n) != 1)
                return fail_with(ret_error, -EIO, "artifact %s: hashing failed", s->url);
        int r = write_all(s->fd, buf, n);
        if (r < 0)
                return fail_with(ret_error, r, "artifact %s: cannot write the download: %s", s->url,
                                 strerror(-r));
        return 0;
}

static int process_b2(struct store_sink *s, const char *buf, size_t n, char **ret_error)
{
        if (minisign_hasher_update(s->b2, buf, n) < 0)
                return fail_with(ret_error, -EIO, "artifact %s: hashing failed", s->url);
        return 0;
}

static int process(struct store_sink *s, enum sink_worker_kind kind, const char *buf, size_t n,
                   char **ret_error)
{
        return kind == WORKER_FILE ? process_file(s, buf, n, ret_error)
                                   : process_b2(s, buf, n, ret_error);
}

/* Under lock: the slots no worker has yet to read. The one the loop is
 * filling counts as free. */
static size_t free_slots_locked(const struct store_sink *s)
{
        uint64_t oldest = s->published;
        for (size_t i = 0; i < s->n_workers; i++)
                if (s->workers[i].next < oldest)
                        oldest = s->workers[i].next;
        return SINK_SLOTS - (size_t)(s->published - oldest);
}

/* The free slots n more bytes need, counting what the slot being filled
 * already holds. Loop only. */
static size_t slots_needed(const struct store_sink *s, size_t n)
{
        return (s->fill + n + SINK_SLOT_SIZE - 1) / SINK_SLOT_SIZE;
}

/* Under lock: whether a waiting push should be told to try again. Not at
 * the first free slot but once half the ring is free, so that a transfer
 * is paused and resumed a few times per ring, not once per slot. */
static bool room_for_waiter_locked(const struct store_sink *s)
{
        size_t n = free_slots_locked(s);
        return s->want > 0 && n >= s->want && n >= SINK_SLOTS / 2;
}

static void worker_main(void *arg)
{
        struct sink_worker *w = arg;
        struct store_sink *s = w->sink;
        uv_mutex_lock(&s->lock);
        for (;;) {
                while (!s->stop && !s->closed && w->next == s->published)
                        uv_cond_wait(&s->more, &s->lock);
                if (s->stop)
                        break;
                if (w->next == s->published) {
                        /* Closed, and everything before the end is done. */
                        w->done = true;
                        uv_async_send(&s->async);
                        break;
                }
                size_t i = (size_t)(w->next % SINK_SLOTS);
                const char *buf = s->slots[i];
                size_t n = s->lens[i];
                uv_mutex_unlock(&s->lock);

                _cleanup_free_ char *error = NULL;
                int r = process(s, w->kind, buf, n, &error);

                uv_mutex_lock(&s->lock);
                if (r < 0) {
                        /* The first failure is the one reported; the other
                         * worker stops too, since the download is lost. */
                        if (s->r == 0) {
                                s->r = r;
                                s->error = TAKE_PTR(error);
                        }
                        s->stop = true;
                        uv_cond_broadcast(&s->more);
                        uv_async_send(&s->async);
                        break;
                }
                w->next++;
                if (room_for_waiter_locked(s)) {
                        s->want = 0;
                        uv_async_send(&s->async);
                }
        }
        uv_mutex_unlock(&s->lock);
}

static void on_async(uv_async_t *h)
{
        struct store_sink *s = container_of(h, struct store_sink, async);
        /* The callback may free the sink: nothing of it is used after. */
        s->cb(s, s->userdata);
}

int store_sink_start(struct store_sink *s, uv_loop_t *loop, store_sink_cb cb, void *userdata)
{
        if (s->started || !cb)
                return -EINVAL;
        int r = uv_mutex_init(&s->lock);
        if (r < 0)
                return r;
        r = uv_cond_init(&s->more);
        if (r < 0) {
                uv_mutex_destroy(&s->lock);
                return r;
        }
        r = uv_async_init(loop, &s->async, on_async);
        if (r < 0) {
                uv_cond_destroy(&s->more);
                uv_mutex_destroy(&s->lock);
                return r;
        }
        /* From here on store_sink_free() takes the started path, which
         * copes with workers that never ran. */
        s->started = true;
        s->cb = cb;
        s->userdata = userdata;
        s->n_workers = s->declared <= SINK_INLINE_MAX ? 0 : s->b2 ? 2 : 1;
        for (size_t i = 0; i < s->n_workers; i++) {
                struct sink_worker *w = &s->workers[i];
                *w = (struct sink_worker){.sink = s, .kind = i == 0 ? WORKER_FILE : WORKER_B2};
                r = uv_thread_create(&w->thread, worker_main, w);
                if (r < 0)
                        return r;
                w->running = true;
        }
        return 0;
}

static int too_big(struct store_sink *s, char **ret_error)
{
        return fail_with(ret_error, -EFBIG, "artifact %s: larger than the declared size %" PRIu64,
                         s->url, s->declared);
}

static void publish(struct store_sink *s)
{
        uv_mutex_lock(&s->lock);
        s->lens[s->published % SINK_SLOTS] = s->fill;
        s->published++;
        s->fill = 0;
        uv_cond_broadcast(&s->more);
        uv_mutex_unlock(&s->lock);
}

/* Hashes and writes n bytes in the caller's thread; the size is checked. */
static int process_here(struct store_sink *s, const void *buf, size_t n, char **ret_error)
{
        int r = process_file(s, buf, n, ret_error);
        if (r >= 0 && s->b2)
                r = process_b2(s, buf, n, ret_error);
        if (r < 0)
                return r;
        s->received += n;
        return 0;
}

int store_sink_push(struct store_sink *s, const void *buf, size_t n, char **ret_error)
{
        /* Nothing beyond the declared size reaches the file or the hashes;
         * the fetcher stops at the first byte too many. */
        if (n > s->declared - s->received)
                return too_big(s, ret_error);
        /* Small: hashed and written here, at once. */
        if (s->n_workers == 0)
                return process_here(s, buf, n, ret_error);
        /* Bytes that need more than the ring minus a partly filled slot
         * could never be taken. curl hands over 16 KiB at a time. */
        if (n > (SINK_SLOTS - 1) * SINK_SLOT_SIZE)
                return fail_with(ret_error, -EMSGSIZE,
                                 "artifact %s: %zu bytes at once are too many", s->url, n);

        uv_mutex_lock(&s->lock);
        size_t needed = slots_needed(s, n);
        bool fits = s->r == 0 && !s->stop && free_slots_locked(s) >= needed;
        /* The workers look at want under the same lock as they free
         * slots: the wake-up cannot be missed. */
        if (!fits && s->r == 0 && !s->stop)
                s->want = needed;
        uv_mutex_unlock(&s->lock);
        /* After a failure the bytes are held back too: the callback that
         * reports it is on its way, and the transfer is abandoned then. */
        if (!fits)
                return STORE_SINK_FULL;

        /* Only slots from `published` on are written here, and no worker
         * reads those until they are published. */
        s->received += n;
        for (const char *p = buf; n > 0;) {
                size_t i = (size_t)(s->published % SINK_SLOTS);
                /* Not zeroed: only the pages the bytes land on are
                 * touched, so 64 small downloads at once stay small. */
                if (!s->slots[i] && !(s->slots[i] = malloc(SINK_SLOT_SIZE)))
                        abort();
                size_t k = SINK_SLOT_SIZE - s->fill;
                if (k > n)
                        k = n;
                memcpy(s->slots[i] + s->fill, p, k);
                s->fill += k;
                p += k;
                n -= k;
                if (s->fill == SINK_SLOT_SIZE)
                        publish(s);
        }
        return 0;
}

void store_sink_close(struct store_sink *s)
{
        if (s->fill > 0)
                publish(s);
        uv_mutex_lock(&s->lock);
        s->closed = true;
        uv_cond_broadcast(&s->more);
        uv_mutex_unlock(&s->lock);
        /* Without workers everything is done already; the callback still
         * comes from the loop, as the header promises. */
        if (s->n_workers == 0)
                uv_async_send(&s->async);
}

int store_sink_status(struct store_sink *s, char **ret_error)
{
        uv_mutex_lock(&s->lock);
        int r = 0;
        if (s->r < 0) {
                r = s->r;
                *ret_error = xstrdup(s->error);
        } else if (s->closed) {
                r = 1;
                for (size_t i = 0; i < s->n_workers; i++)
                        if (!s->workers[i].done)
                                r = 0;
        }
        uv_mutex_unlock(&s->lock);
        return r;
}

int store_sink_write(struct store_sink *s, const void *buf, size_t n, char **ret_error)
{
        if (s->started)
                return -EINVAL;
        if (n > s->declared - s->received)
                return too_big(s, ret_error);
        return process_here(s, buf, n, ret_error);
}

int store_sink_finish(struct store_sink *s, const char *expected,
                      uint8_t ret_b2[MINISIGN_HASH_SIZE], char **ret_error)
{
        if (s->started) {
                /* The workers have left their loops: this only reaps them,
                 * and hands their hashes to this thread. The buffers are
                 * not needed any more, whatever comes next. */
                join_workers(s);
                for (size_t i = 0; i < SINK_SLOTS; i++) {
                        free(s->slots[i]);
                        s->slots[i] = NULL;
                }
        }
        if (s->received != s->declared)
                return fail_with(ret_error, -EBADMSG,
                                 "artifact %s: %" PRIu64 " bytes, declared %" PRIu64, s->url,
                                 s->received, s->declared);
        uint8_t digest[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_DigestFinal_ex(s->sha256, digest, &len) != 1 || len != SHA256_HEX_LEN / 2)
                return fail_with(ret_error, -EIO, "artifact %s: hashing failed", s->url);
        char hex[SHA256_HEX_LEN + 1];
        hex_encode(digest, len, hex);
        if (strcmp(hex, expected) != 0)
                return fail_with(ret_error, -EBADMSG,
                                 "artifact %s: SHA-256 mismatch: expected %s, got %s", s->url,
                                 expected, hex);
        if (s->b2 && minisign_hasher_final(s->b2, ret_b2) < 0)
                return fail_with(ret_error, -EIO, "artifact %s: hashing failed", s->url);
        return 0;
}

int store_sink_fd(const struct store_sink *s)
{
        return s->fd;
}

uint64_t store_sink_received(const struct store_sink *s)
{
        return s->received;
}
