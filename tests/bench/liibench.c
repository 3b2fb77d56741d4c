/* liibench: the small measuring tools the benchmark suite (tests/bench/run)
 * needs and the shell does not do well: timestamps taken as lines or files
 * appear, a health probe that asks as fast as it can, a keep-alive HTTP load
 * generator on a Unix socket, a client that opens a connection for every
 * request on a TCP port and counts what failed, and repeated runs of a
 * command timed without a shell in between. Every timestamp is CLOCK_REALTIME in seconds with six
 * decimals, the format of bash's $EPOCHREALTIME, so that the suite can put
 * its own marks and these on one time line.
 *
 *   liibench stamp                       stdin to stdout, each line prefixed with its arrival time
 *   liibench watch DIR...                one line per file created, moved in or removed in DIRs
 *   liibench probe PORT PATH TIMEOUT_MS  µs until GET PATH on 127.0.0.1:PORT answers 2xx
 *   liibench load SOCKET PATH CONNS SECONDS   keep-alive GETs on a Unix socket
 *   liibench hammer PORT PATH SECONDS [CLIENTS]
 *                                        GET PATH on 127.0.0.1:PORT, a new connection each, as
 *                                        fast as CLIENTS threads (default 1) can, until SIGTERM,
 *                                        SIGINT or SECONDS; prints a line when they have started,
 *                                        then the requests answered and failed, why, latencies
 *                                        and the longest time in which no client got an answer
 *   liibench repeat N CMD [ARG...]       runs CMD N times: wall and CPU µs, page faults
 *   liibench port                        a free TCP port on loopback
 *   liibench post SOCKET PATH            POST PATH on a Unix socket; prints when it was sent
 *   liibench fsync DIR                   ms for one durable small-file replace in DIR
 *   liibench waitlog FILE FROM ERE COUNT SECONDS [FAIL_ERE]
 *                                        waits (inotify, no polling) until COUNT lines after
 *                                        line FROM of FILE match ERE; prints the last of them
 *   liibench peak PID FIELD FILE         the highest value of FIELD (e.g. RssAnon) in
 *                                        /proc/PID/status, sampled every 20 ms, kept in FILE
 *
 * The waiting and sampling tools exist so that the benchmark's own
 * watching costs next to no CPU while it measures: on a small machine,
 * a shell loop of tail and grep competes with what it times.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t now_usec(clockid_t clock)
{
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int usage(void)
{
        fprintf(stderr,
                "usage: liibench stamp | watch DIR... | probe PORT PATH TIMEOUT_MS |\n"
                "       load SOCKET PATH CONNS SECONDS | hammer PORT PATH SECONDS [CLIENTS] |\n"
                "       repeat N CMD [ARG...] | port | post SOCKET PATH | fsync DIR |\n"
                "       waitlog FILE FROM ERE COUNT SECONDS [FAIL_ERE] | peak PID FIELD FILE\n");
        return 2;
}

/* Writes all of buf or fails; the output is a pipe or a file. */
static int write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* The time is taken when read() returns the bytes, before anything else is
 * done with them: a line's stamp is when it reached the pipe's reader. */
static int cmd_stamp(void)
{
        static char in[65536];
        char line[70000];
        size_t have = 0;
        bool at_start = true;
        for (;;) {
                ssize_t n = read(STDIN_FILENO, in, sizeof in);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                uint64_t t = now_usec(CLOCK_REALTIME);
                for (ssize_t i = 0; i < n; i++) {
                        if (at_start) {
                                have = (size_t)snprintf(line, sizeof line, "%llu.%06llu ",
                                                        (unsigned long long)(t / 1000000),
                                                        (unsigned long long)(t % 1000000));
                                at_start = false;
                        }
                        if (have < sizeof line - 1)
                                line[have++] = in[i];
                        if (in[i] == '\n') {
                                if (line[have - 1] != '\n')
                                        line[have++] = '\n';
                                if (write_all(STDOUT_FILENO, line, have) < 0)
                                        return 1;
                                at_start = true;
                        }
                }
        }
        if (!at_start) {
                line[have++] = '\n';
                (void)write_all(STDOUT_FILENO, line, have);
        }
        return 0;
}

static int cmd_watch(int argc, char **argv)
{
        if (argc < 1)
                return usage();
        int fd = inotify_init1(IN_CLOEXEC);
        if (fd < 0) {
                perror("liibench: inotify_init1");
                return 1;
        }
        const char **names = calloc((size_t)argc + 1, sizeof *names);
        int *wds = calloc((size_t)argc, sizeof *wds);
        for (int i = 0; i < argc; i++) {
                wds[i] = inotify_add_watch(fd, argv[i],
                                           IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE);
                if (wds[i] < 0) {
                        fprintf(stderr, "liibench: watch %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                names[i] = argv[i];
        }
        /* The caller waits for this line before it starts what is watched. */
        printf("watching\n");
        fflush(stdout);
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return 1;
                uint64_t t = now_usec(CLOCK_REALTIME);
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *ev = (struct inotify_event *)p;
                        const char *dir = "?";
                        for (int i = 0; i < argc; i++)
                                if (wds[i] == ev->wd)
                                        dir = names[i];
                        const char *what = ev->mask & IN_CREATE       ? "create"
                                           : ev->mask & IN_MOVED_TO   ? "moved_to"
                                           : ev->mask & IN_MOVED_FROM ? "moved_from"
                                           : ev->mask & IN_DELETE     ? "delete"
                                                                      : "other";
                        printf("%llu.%06llu %s %s/%s\n", (unsigned long long)(t / 1000000),
                               (unsigned long long)(t % 1000000), what, dir,
                               ev->len ? ev->name : "");
                        p += sizeof *ev + ev->len;
                }
                fflush(stdout);
        }
}

/* One GET over a fresh connection; returns the status code, 0 when nothing
 * answered. */
static int http_get_once(int port, const char *path, int timeout_ms)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 0;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int code = 0;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
                char req[512];
                int len =
                    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                char resp[256];
                if (write_all(fd, req, (size_t)len) == 0 && poll(&p, 1, timeout_ms) == 1) {
                        ssize_t n = read(fd, resp, sizeof resp - 1);
                        if (n > 12) {
                                resp[n] = '\0';
                                if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1)
                                        code = 0;
                        }
                }
        }
        close(fd);
        return code;
}

/* Asks as fast as a client reasonably can (every 200 µs) so that what is
 * measured is the application's readiness, not a probe interval. */
static int cmd_probe(int argc, char **argv)
{
        if (argc != 3)
                return usage();
        int port = atoi(argv[0]);
        const char *path = argv[1];
        uint64_t timeout = (uint64_t)atoll(argv[2]) * 1000;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        for (unsigned attempts = 1;; attempts++) {
                int code = http_get_once(port, path, 1000);
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (code >= 200 && code < 300) {
                        printf("%llu %u\n", (unsigned long long)(now - start), attempts);
                        return 0;
                }
                if (now - start > timeout) {
                        fprintf(stderr, "liibench: no 2xx from port %d within %s ms\n", port,
                                argv[2]);
                        return 1;
                }
                struct timespec ts = {0, 200 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* ---- load ---- */

struct load_conn {
        const char *socket_path;
        const char *path;
        uint64_t deadline; /* monotonic */
        uint64_t requests, errors, bytes, reconnects;
        uint32_t *lat; /* latencies in µs, the first lat_cap of them */
        size_t lat_n, lat_cap;
};

static int unix_connect(const char *path)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

/* Reads one response with a Content-Length body. Returns its size, -1 on
 * error; *ret_close says the server will close the connection. */
static long read_response(int fd, char *buf, size_t size, bool *ret_close)
{
        size_t have = 0;
        char *end = NULL;
        while (!end) {
                if (have == size - 1)
                        return -1;
                ssize_t n = read(fd, buf + have, size - 1 - have);
                if (n <= 0)
                        return -1;
                have += (size_t)n;
                buf[have] = '\0';
                end = strstr(buf, "\r\n\r\n");
        }
        int code = 0;
        if (sscanf(buf, "HTTP/%*d.%*d %d", &code) != 1 || code != 200)
                return -1;
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (!cl)
                return -1;
        long body = atol(cl + strlen("\r\ncontent-length:"));
        *ret_close = strcasestr(buf, "\r\nconnection: close") != NULL;
        size_t header = (size_t)(end + 4 - buf);
        size_t got = have - header;
        while (got < (size_t)body) {
                ssize_t n = read(fd, buf, size - 1);
                if (n <= 0)
                        return -1;
                got += (size_t)n;
        }
        return got == (size_t)body ? body : -1;
}

static void *load_thread(void *userdata)
{
        struct load_conn *c = userdata;
        size_t size = 4u << 20;
        char *buf = malloc(size);
        char req[512];
        int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: lii\r\n\r\n", c->path);
        int fd = -1;
        while (now_usec(CLOCK_MONOTONIC) < c->deadline) {
                if (fd < 0) {
                        fd = unix_connect(c->socket_path);
                        if (fd < 0) {
                                c->errors++;
                                continue;
                        }
                        c->reconnects++;
                }
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);
                bool close_after = false;
                long body = -1;
                if (write_all(fd, req, (size_t)len) == 0)
                        body = read_response(fd, buf, size, &close_after);
                uint64_t t1 = now_usec(CLOCK_MONOTONIC);
                if (body < 0) {
                        c->errors++;
                        close(fd);
                        fd = -1;
                        continue;
                }
                c->requests++;
                c->bytes += (uint64_t)body;
                if (c->lat_n < c->lat_cap)
                        c->lat[c->lat_n++] = (uint32_t)(t1 - t0);
                if (close_after) {
                        close(fd);
                        fd = -1;
                }
        }
        if (fd >= 0)
                close(fd);
        free(buf);
        return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

static int cmd_load(int argc, char **argv)
{
        if (argc != 4)
                return usage();
        int conns = atoi(argv[2]);
        double seconds = atof(argv[3]);
        if (conns < 1 || conns > 64 || seconds <= 0)
                return usage();
        struct load_conn *c = calloc((size_t)conns, sizeof *c);
        pthread_t *threads = calloc((size_t)conns, sizeof *threads);
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        uint64_t deadline = start + (uint64_t)(seconds * 1e6);
        for (int i = 0; i < conns; i++) {
                c[i] = (struct load_conn){.socket_path = argv[0],
                                          .path = argv[1],
                                          .deadline = deadline,
                                          .lat_cap = 1u << 20};
                c[i].lat = malloc(c[i].lat_cap * sizeof *c[i].lat);
                pthread_create(&threads[i], NULL, load_thread, &c[i]);
        }
        uint64_t requests = 0, errors = 0, bytes = 0, reconnects = 0;
        size_t n_lat = 0;
        for (int i = 0; i < conns; i++) {
                pthread_join(threads[i], NULL);
                requests += c[i].requests;
                errors += c[i].errors;
                bytes += c[i].bytes;
                reconnects += c[i].reconnects;
                n_lat += c[i].lat_n;
        }
        double elapsed = (double)(now_usec(CLOCK_MONOTONIC) - start) / 1e6;
        uint32_t *all = malloc((n_lat + 1) * sizeof *all);
        size_t k = 0;
        for (int i = 0; i < conns; i++) {
                memcpy(all + k, c[i].lat, c[i].lat_n * sizeof *all);
                k += c[i].lat_n;
        }
        qsort(all, n_lat, sizeof *all, cmp_u32);
        printf("requests=%llu rps=%.0f p50_us=%u p99_us=%u errors=%llu connections=%llu "
               "bytes_per_response=%llu\n",
               (unsigned long long)requests, (double)requests / elapsed, n_lat ? all[n_lat / 2] : 0,
               n_lat ? all[n_lat * 99 / 100] : 0, (unsigned long long)errors,
               (unsigned long long)reconnects,
               (unsigned long long)(requests ? bytes / requests : 0));
        return requests > 0 ? 0 : 1;
}

/* ---- hammer ---- */

/* What one request came to. A refused connection is what a client sees
 * while nothing listens on the address; a reset, a connection the server
 * accepted into a queue and then dropped. */
enum outcome { OUT_OK, OUT_REFUSED, OUT_RESET, OUT_TIMEOUT, OUT_OTHER, OUT_MAX };

static const char *const outcome_names[OUT_MAX] = {"ok", "refused", "reset", "timeout", "other"};

struct hammer {
        int port;
        const char *path;
        atomic_bool stop;
        _Atomic uint64_t last_ok;     /* monotonic µs of the latest answer, any client */
        _Atomic uint64_t longest_gap; /* µs without an answer, any client */
        pthread_mutex_t lock;         /* for what follows */
        uint64_t longest_gap_end;     /* realtime µs of the answer that ended it */
        uint64_t first_failure_at;    /* realtime µs, 0 while there is none */
        char first_failure[160];
};

struct hammer_client {
        struct hammer *h;
        pthread_t thread;
        uint64_t counts[OUT_MAX];
        uint32_t *lat; /* µs per answered request, the first lat_cap of them */
        size_t lat_n, lat_cap;
};

static enum outcome outcome_of(int err)
{
        switch (err) {
        case ECONNREFUSED:
                return OUT_REFUSED;
        case ECONNRESET:
        case EPIPE:
                return OUT_RESET;
        case EAGAIN:
        case EINPROGRESS: /* connect() past SO_SNDTIMEO */
                return OUT_TIMEOUT;
        default:
                return OUT_OTHER;
        }
}

/* One GET over a new connection, HTTP/1.0 so that the server closes it
 * after the answer. Only a 200 with the whole body counts as answered. */
static enum outcome hammer_get(const struct hammer *h, char *why, size_t why_size)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                snprintf(why, why_size, "socket: %s", strerror(errno));
                return OUT_OTHER;
        }
        /* Bounds every step: a connection that nobody accepts or answers
         * fails after 5 s instead of holding the client. */
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)h->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        char req[512], buf[4096];
        int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", h->path);
        const char *step = "connect";
        int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        if (r == 0) {
                step = "write";
                r = write_all(fd, req, (size_t)len);
                if (r < 0)
                        errno = -r;
        }
        size_t got = 0;
        if (r == 0) {
                step = "read";
                for (;;) {
                        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                r = -1;
                                break;
                        }
                        if (n == 0)
                                break;
                        got += (size_t)n;
                        if (got == sizeof buf - 1) {
                                close(fd);
                                snprintf(why, why_size, "an answer of more than %zu bytes",
                                         sizeof buf - 1);
                                return OUT_OTHER;
                        }
                }
        }
        if (r < 0) {
                int err = errno;
                close(fd);
                snprintf(why, why_size, "%s: %s", step, strerror(err));
                return outcome_of(err);
        }
        close(fd);
        buf[got] = '\0';
        int code = 0;
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (sscanf(buf, "HTTP/%*d.%*d %d", &code) != 1 || code != 200 || !end || !cl ||
            strtoul(cl + strlen("\r\ncontent-length:"), NULL, 10) !=
                got - (size_t)(end + 4 - buf)) {
                snprintf(why, why_size, "answer: %.*s", (int)strcspn(buf, "\r\n"),
                         got ? buf : "(none, the connection was closed)");
                return OUT_OTHER;
        }
        return OUT_OK;
}

/* Records a time without answers that ended now, when it is the longest
 * so far; the lock is taken only then. */
static void hammer_gap(struct hammer *h, uint64_t gap)
{
        if (gap <= atomic_load(&h->longest_gap))
                return;
        pthread_mutex_lock(&h->lock);
        if (gap > atomic_load(&h->longest_gap)) {
                atomic_store(&h->longest_gap, gap);
                h->longest_gap_end = now_usec(CLOCK_REALTIME);
        }
        pthread_mutex_unlock(&h->lock);
}

static void *hammer_thread(void *userdata)
{
        struct hammer_client *c = userdata;
        struct hammer *h = c->h;
        while (!atomic_load(&h->stop)) {
                char why[128];
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);
                enum outcome o = hammer_get(h, why, sizeof why);
                uint64_t t1 = now_usec(CLOCK_MONOTONIC);
                c->counts[o]++;
                if (o == OUT_OK) {
                        if (c->lat_n < c->lat_cap)
                                c->lat[c->lat_n++] = (uint32_t)(t1 - t0);
                        uint64_t prev = atomic_load(&h->last_ok);
                        while (prev < t1 && !atomic_compare_exchange_weak(&h->last_ok, &prev, t1))
                                ;
                        if (prev < t1)
                                hammer_gap(h, t1 - prev);
                        continue;
                }
                pthread_mutex_lock(&h->lock);
                if (!h->first_failure_at) {
                        h->first_failure_at = now_usec(CLOCK_REALTIME);
                        snprintf(h->first_failure, sizeof h->first_failure, "%s (%s)", why,
                                 outcome_names[o]);
                }
                pthread_mutex_unlock(&h->lock);
        }
        return NULL;
}

/* The clients run until SECONDS pass or SIGTERM or SIGINT arrives; the
 * request each has in hand then finishes and counts. Prints one line of
 * key=value pairs, first_failure (free text) last. */
static int cmd_hammer(int argc, char **argv)
{
        if (argc != 3 && argc != 4)
                return usage();
        int port = atoi(argv[0]);
        double seconds = atof(argv[2]);
        int clients = argc == 4 ? atoi(argv[3]) : 1;
        if (port < 1 || port > 65535 || argv[1][0] != '/' || strlen(argv[1]) > 256 ||
            !(seconds > 0 && seconds <= 3600) || clients < 1 || clients > 64)
                return usage();
        /* Only the main thread takes the signals, in sigtimedwait(). */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        struct hammer h = {.port = port, .path = argv[1], .lock = PTHREAD_MUTEX_INITIALIZER};
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        uint64_t deadline = start + (uint64_t)(seconds * 1e6);
        atomic_store(&h.last_ok, start);
        struct hammer_client *c = calloc((size_t)clients, sizeof *c);
        if (!c)
                return 1;
        for (int i = 0; i < clients; i++) {
                c[i].h = &h;
                c[i].lat_cap = 1u << 20;
                c[i].lat = malloc(c[i].lat_cap * sizeof *c[i].lat);
                if (!c[i].lat || pthread_create(&c[i].thread, NULL, hammer_thread, &c[i]) != 0) {
                        fprintf(stderr, "liibench: cannot start client %d\n", i);
                        return 1;
                }
        }
        /* The caller may wait for this line before it starts what the
         * load is to see. */
        printf("hammering 127.0.0.1:%d with %d clients\n", port, clients);
        fflush(stdout);
        for (;;) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= deadline)
                        break;
                struct timespec ts = {.tv_sec = (time_t)((deadline - now) / 1000000),
                                      .tv_nsec = (long)((deadline - now) % 1000000) * 1000};
                if (sigtimedwait(&set, NULL, &ts) >= 0 || errno == EAGAIN)
                        break;
        }
        atomic_store(&h.stop, true);
        uint64_t stopped = now_usec(CLOCK_MONOTONIC);
        uint64_t counts[OUT_MAX] = {0};
        size_t n_lat = 0;
        for (int i = 0; i < clients; i++) {
                pthread_join(c[i].thread, NULL);
                for (int o = 0; o < OUT_MAX; o++)
                        counts[o] += c[i].counts[o];
                n_lat += c[i].lat_n;
        }
        /* A wait that was still going on when the clients were stopped. */
        if (atomic_load(&h.last_ok) < stopped)
                hammer_gap(&h, stopped - atomic_load(&h.last_ok));
        uint32_t *all = malloc((n_lat + 1) * sizeof *all);
        if (!all)
                return 1;
        size_t k = 0;
        for (int i = 0; i < clients; i++) {
                memcpy(all + k, c[i].lat, c[i].lat_n * sizeof *all);
                k += c[i].lat_n;
                free(c[i].lat);
        }
        qsort(all, n_lat, sizeof *all, cmp_u32);
        uint64_t requests = 0;
        for (int o = 0; o < OUT_MAX; o++)
                requests += counts[o];
        double elapsed = (double)(stopped - start) / 1e6;
        printf("requests=%llu ok=%llu failed=%llu refused=%llu reset=%llu timeout=%llu other=%llu "
               "rps=%.0f p50_us=%u p99_us=%u max_us=%u longest_gap_ms=%.1f "
               "longest_gap_end=%llu.%06llu seconds=%.2f first_failure_at=%llu.%06llu "
               "first_failure=%s\n",
               (unsigned long long)requests, (unsigned long long)counts[OUT_OK],
               (unsigned long long)(requests - counts[OUT_OK]),
               (unsigned long long)counts[OUT_REFUSED], (unsigned long long)counts[OUT_RESET],
               (unsigned long long)counts[OUT_TIMEOUT], (unsigned long long)counts[OUT_OTHER],
               (double)requests / elapsed, n_lat ? all[n_lat / 2] : 0,
               n_lat ? all[n_lat * 99 / 100] : 0, n_lat ? all[n_lat - 1] : 0,
               (double)atomic_load(&h.longest_gap) / 1000,
               (unsigned long long)(h.longest_gap_end / 1000000),
               (unsigned long long)(h.longest_gap_end % 1000000), elapsed,
               (unsigned long long)(h.first_failure_at / 1000000),
               (unsigned long long)(h.first_failure_at % 1000000),
               h.first_failure_at ? h.first_failure : "none");
        free(all);
        free(c);
        return counts[OUT_OK] > 0 ? 0 : 1;
}

/* posix_spawn (vfork underneath) keeps the cost of starting the command as
 * small as a caller can make it, so the times are the command's. Prints,
 * per run, the wall time and the CPU time in µs and the page faults. */
static int cmd_repeat(int argc, char **argv)
{
        if (argc < 2)
                return usage();
        int n = atoi(argv[0]);
        if (n < 1)
                return usage();
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        for (int i = 0; i < n; i++) {
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);
                pid_t pid;
                int r = posix_spawnp(&pid, argv[1], &fa, NULL, argv + 1, environ);
                if (r != 0) {
                        fprintf(stderr, "liibench: %s: %s\n", argv[1], strerror(r));
                        return 1;
                }
                int status;
                struct rusage ru;
                while (wait4(pid, &status, 0, &ru) < 0)
                        if (errno != EINTR)
                                return 1;
                uint64_t t1 = now_usec(CLOCK_MONOTONIC);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "liibench: %s failed (status %d)\n", argv[1], status);
                        return 1;
                }
                uint64_t cpu = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
                               (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
                printf("%llu %llu %ld\n", (unsigned long long)(t1 - t0), (unsigned long long)cpu,
                       ru.ru_minflt + ru.ru_majflt);
        }
        return 0;
}

/* The kernel picks a free port; another process may take it before it is
 * used, which on a quiet benchmark machine does not happen. */
static int cmd_port(int argc, char **argv)
{
        if (argc != 0)
                return usage();
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                perror("liibench: port");
                return 1;
        }
        printf("%d\n", ntohs(sa.sin_port));
        close(fd);
        return 0;
}

/* The moment a request leaves is the start of what it asks for; a client
 * process of its own (curl, liictl) would add its start-up to it. */
static int cmd_post(int argc, char **argv)
{
        if (argc != 2)
                return usage();
        char req[512];
        int len = snprintf(req, sizeof req,
                           "POST %s HTTP/1.1\r\nHost: lii\r\nContent-Length: 0\r\n"
                           "Connection: close\r\n\r\n",
                           argv[1]);
        int fd = unix_connect(argv[0]);
        if (fd < 0) {
                fprintf(stderr, "liibench: connect %s: %s\n", argv[0], strerror(errno));
                return 1;
        }
        uint64_t t = now_usec(CLOCK_REALTIME);
        char resp[4096];
        ssize_t n = -1;
        if (write_all(fd, req, (size_t)len) == 0)
                n = read(fd, resp, sizeof resp - 1);
        close(fd);
        int code = 0;
        if (n > 0) {
                resp[n] = '\0';
                if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1)
                        code = 0;
        }
        if (code < 200 || code > 299) {
                fprintf(stderr, "liibench: POST %s answered %d\n", argv[1], code);
                return 1;
        }
        printf("%llu.%06llu\n", (unsigned long long)(t / 1000000),
               (unsigned long long)(t % 1000000));
        return 0;
}

/* What liid's state file costs to replace durably: write 4 KiB to a new
 * file, fsync it, rename it over the old one, fsync the folder. */
static int cmd_fsync(int argc, char **argv)
{
        if (argc != 1)
                return usage();
        char tmp[PATH_MAX], path[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/.liibench.tmp", argv[0]);
        snprintf(path, sizeof path, "%s/.liibench", argv[0]);
        static char data[4096];
        memset(data, 'x', sizeof data);
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int dfd = open(argv[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || dfd < 0 || write_all(fd, data, sizeof data) < 0 || fsync(fd) < 0 ||
            rename(tmp, path) < 0 || fsync(dfd) < 0) {
                perror("liibench: fsync");
                return 1;
        }
        uint64_t t1 = now_usec(CLOCK_MONOTONIC);
        close(fd);
        close(dfd);
        unlink(path);
        printf("%.3f\n", (double)(t1 - t0) / 1000);
        return 0;
}

/* Reads FILE from its line FROM on as it grows, woken by inotify. */
static int cmd_waitlog(int argc, char **argv)
{
        if (argc != 5 && argc != 6)
                return usage();
        const char *path = argv[0];
        long from = atol(argv[1]);
        long count = atol(argv[3]);
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + (uint64_t)(atof(argv[4]) * 1e6);
        regex_t re, fail;
        if (regcomp(&re, argv[2], REG_EXTENDED | REG_NOSUB) != 0 ||
            (argc == 6 && regcomp(&fail, argv[5], REG_EXTENDED | REG_NOSUB) != 0)) {
                fprintf(stderr, "liibench: bad regular expression\n");
                return 2;
        }
        int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        FILE *f = fopen(path, "re");
        if (in < 0 || !f || inotify_add_watch(in, path, IN_MODIFY) < 0) {
                fprintf(stderr, "liibench: %s: %s\n", path, strerror(errno));
                return 1;
        }
        char *line = NULL, *last = NULL;
        size_t cap = 0;
        long lineno = 0, matched = 0;
        for (;;) {
                ssize_t n;
                while ((n = getline(&line, &cap, f)) > 0) {
                        if (line[n - 1] != '\n') {
                                /* A line still being written: read it again whole. */
                                fseek(f, -(long)n, SEEK_CUR);
                                break;
                        }
                        if (++lineno <= from)
                                continue;
                        if (argc == 6 && regexec(&fail, line, 0, NULL, 0) == 0) {
                                fprintf(stderr, "liibench: %s: %s", path, line);
                                return 3;
                        }
                        if (regexec(&re, line, 0, NULL, 0) == 0) {
                                free(last);
                                last = strdup(line);
                                if (++matched >= count) {
                                        fputs(last, stdout);
                                        return 0;
                                }
                        }
                }
                clearerr(f);
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= deadline) {
                        fprintf(stderr, "liibench: %ld of %ld lines matching /%s/ in %s\n", matched,
                                count, argv[2], path);
                        return 1;
                }
                /* inotify wakes us; the timeout only bounds a missed wake-up. */
                uint64_t wait_ms = (deadline - now) / 1000 + 1;
                struct pollfd p = {.fd = in, .events = POLLIN};
                (void)poll(&p, 1, wait_ms < 1000 ? (int)wait_ms : 1000);
                char buf[4096];
                while (read(in, buf, sizeof buf) > 0)
                        ;
        }
}

static volatile sig_atomic_t peak_stop;

static void on_peak_signal(int sig)
{
        peak_stop = 1;
}

/* Samples one field of /proc/PID/status; the file holds the highest value
 * so far at every moment, so that the caller may read it at any time. */
static int cmd_peak(int argc, char **argv)
{
        if (argc != 3)
                return usage();
        char path[64], key[64];
        snprintf(path, sizeof path, "/proc/%s/status", argv[0]);
        snprintf(key, sizeof key, "%s:", argv[1]);
        signal(SIGTERM, on_peak_signal);
        signal(SIGINT, on_peak_signal);
        long max = -1;
        while (!peak_stop) {
                FILE *f = fopen(path, "re");
                if (!f)
                        break;
                char line[256];
                long v = -1;
                while (fgets(line, sizeof line, f))
                        if (strncmp(line, key, strlen(key)) == 0)
                                v = atol(line + strlen(key));
                fclose(f);
                if (v > max) {
                        max = v;
                        FILE *o = fopen(argv[2], "we");
                        if (o) {
                                fprintf(o, "%ld\n", max);
                                fclose(o);
                        }
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        return max >= 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return usage();
        signal(SIGPIPE, SIG_IGN);
        const char *cmd = argv[1];
        if (strcmp(cmd, "stamp") == 0)
                return cmd_stamp();
        if (strcmp(cmd, "watch") == 0)
                return cmd_watch(argc - 2, argv + 2);
        if (strcmp(cmd, "probe") == 0)
                return cmd_probe(argc - 2, argv + 2);
        if (strcmp(cmd, "load") == 0)
                return cmd_load(argc - 2, argv + 2);
        if (strcmp(cmd, "hammer") == 0)
                return cmd_hammer(argc - 2, argv + 2);
        if (strcmp(cmd, "repeat") == 0)
                return cmd_repeat(argc - 2, argv + 2);
        if (strcmp(cmd, "port") == 0)
                return cmd_port(argc - 2, argv + 2);
        if (strcmp(cmd, "post") == 0)
                return cmd_post(argc - 2, argv + 2);
        if (strcmp(cmd, "fsync") == 0)
                return cmd_fsync(argc - 2, argv + 2);
        if (strcmp(cmd, "waitlog") == 0)
                return cmd_waitlog(argc - 2, argv + 2);
        if (strcmp(cmd, "peak") == 0)
                return cmd_peak(argc - 2, argv + 2);
        return usage();
}
