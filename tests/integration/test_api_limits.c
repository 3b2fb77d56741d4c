/* liid's API under slow and greedy clients, the way an unprivileged member
 * of read_group could treat it: hundreds of connections that trickle their
 * request a byte at a time, and users that open as many connections as
 * they can. liid must cut a request off at its deadline however it
 * trickles, give each user only its share of the connections, keep the
 * last ones for root and admin_group, and meanwhile answer root's liictl
 * status and plain GETs at once. The clients are processes with uids of
 * their own; those need no account, since the kernel records whatever uid
 * and groups a process has when it connects. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define READ_GROUP  "liitest-limread"
#define ADMIN_GROUP "liitest-limadm"

/* Users without accounts: readers, and one in admin_group too. */
#define READER_A ((uid_t)61001)
#define READER_B ((uid_t)61002)
#define READER_C ((uid_t)61003)
#define READER_D ((uid_t)61004)
#define READER_E ((uid_t)61005)
#define READER_F ((uid_t)61006)
#define ADMIN_G  ((uid_t)61007)

/* What README.md and liid(8) promise. */
#define DEADLINE_MS 5000
#define PER_UID     16
#define CONNECTIONS 64
#define RESERVED    8
#define SHARED      (CONNECTIONS - RESERVED)

/* The slow clients: how many, how often each sends its next byte, and
 * for how long (one deadline and room for liid to cut them off). */
#define SLOW_CONNECTIONS 200
#define SLOW_TICK_MS     250
#define SLOW_RUN_MS      (DEADLINE_MS + 2500)
/* Root's requests meanwhile: at most this many, paced by this; and some
 * before, to know how long liictl takes to start and print here. */
#define TRIES_MAX      80
#define TRIES_MIN      20
#define TRY_PAUSE_MS   100
#define BASELINE_TRIES 10
/* The bound for liid's answers to root, on the median of the
 * tries (a loaded machine may hold up one now and then): for a GET, and
 * for what the slow clients add to liictl status (whose own start takes
 * tens of milliseconds in a sanitizer build). And what no single one may
 * take. */
#define ANSWER_MS     100
#define GET_MAX_MS    1000
#define LIICTL_MAX_MS 2000

static struct h_env env;
static gid_t read_gid, admin_gid;

static long elapsed_ms(uint64_t since_usec)
{
        return (long)((now_monotonic_usec() - since_usec) / USEC_PER_MSEC);
}

static struct sockaddr_un socket_address(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ck_assert_uint_lt(strlen(env.socket), sizeof sa.sun_path);
        memcpy(sa.sun_path, env.socket, strlen(env.socket));
        return sa;
}

/* Becomes uid with read_group (and admin_group when admin) as its groups;
 * for forked children, which exit on failure. */
static void become(uid_t uid, bool admin)
{
        const gid_t groups[] = {read_gid, admin_gid};
        if (setgroups(admin ? 2 : 1, groups) < 0 || setresgid(read_gid, read_gid, read_gid) < 0 ||
            setresuid(uid, uid, uid) < 0)
                _exit(10);
        /* Changing credentials cleared it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void send_fd(int sock, int fd)
{
        char byte = 0;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u = {0};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
        if (sendmsg(sock, &msg, MSG_NOSIGNAL) != 1)
                _exit(12);
}

static int recv_fd(int sock)
{
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        ck_assert_int_eq(recvmsg(sock, &msg, MSG_CMSG_CLOEXEC), 1);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->cmsg_type, SCM_RIGHTS);
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        return fd;
}

/* Opens n connections to liid as uid, one after the other, and hands them
 * to the test: a child connects as uid and passes the sockets back, so
 * that liid sees uid as their peer. */
static void connect_as(uid_t uid, bool admin, int *fds, size_t n)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                become(uid, admin);
                struct sockaddr_un sa = socket_address();
                for (size_t i = 0; i < n; i++) {
                        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                                _exit(11);
                        send_fd(sv[1], fd);
                        close(fd);
                }
                _exit(0);
        }
        close(sv[1]);
        for (size_t i = 0; i < n; i++)
                fds[i] = recv_fd(sv[0]);
        close(sv[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "connecting as uid %u failed: status %d", (unsigned)uid, status);
}

static void close_all(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

/* Everything liid sends until it closes the connection, waiting timeout_ms
 * at most. */
static char *read_answer(int fd, int timeout_ms)
{
        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        uint64_t start = now_monotonic_usec();
        for (;;) {
                long left = timeout_ms - elapsed_ms(start);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ck_assert_msg(left > 0 && poll(&p, 1, (int)left) > 0,
                              "liid did not close the connection within %d ms", timeout_ms);
                char buf[4096];
                ssize_t k = read(fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                /* A reset after the answer ends it as well as EOF does. */
                if (k <= 0)
                        break;
                fwrite(buf, 1, (size_t)k, mem);
        }
        fclose(mem);
        return out;
}

struct answer {
        long status;
        char *body;
        json_object *doc;
};

static void answer_done(struct answer *a)
{
        free(a->body);
        json_object_put(a->doc);
        *a = (struct answer){0};
}

static void answer_parse(char *raw, struct answer *ret)
{
        *ret = (struct answer){.body = raw};
        ck_assert_msg(sscanf(raw, "HTTP/1.1 %ld", &ret->status) == 1, "not an HTTP answer: '%s'",
                      raw);
        char *body = strstr(raw, "\r\n\r\n");
        if (body && body[4] == '{')
                ret->doc = json_tokener_parse(body + 4);
}

/* Sends a GET on a connection and reads the answer. */
static void get_on(int fd, const char *path, struct answer *ret)
{
        char req[256];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: lii\r\nConnection: close\r\n\r\n", path);
        ck_assert_int_eq(write(fd, req, (size_t)n), n);
        answer_parse(read_answer(fd, 5000), ret);
}

/* Runs liictl as uid (in read_group); returns its exit code and what it
 * wrote to stderr. */
static int liictl_as(uid_t uid, const char *command, char **ret_err)
{
        const char *liictl = h_public_liictl();
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(pipefd[1], STDERR_FILENO);
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, STDOUT_FILENO);
                become(uid, false);
                execl(liictl, "liictl", "-s", env.socket, command, (char *)NULL);
                _exit(127);
        }
        close(pipefd[1]);
        char *err = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&err, &len);
        char buf[1024];
        ssize_t k;
        while ((k = read(pipefd[0], buf, sizeof buf)) > 0)
                fwrite(buf, 1, (size_t)k, mem);
        fclose(mem);
        close(pipefd[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        *ret_err = err;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static long get_as(uid_t uid, bool admin, const char *path, struct answer *ret)
{
        int fd;
        connect_as(uid, admin, &fd, 1);
        get_on(fd, path, ret);
        close(fd);
        return ret->status;
}

/* A GET as root (the test runs as root). */
static long get_as_root(const char *path, struct answer *ret)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = socket_address();
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        get_on(fd, path, ret);
        close(fd);
        return ret->status;
}

/* A connection as root that has had one answer and is kept open, as
 * HTTP/1.1 clients keep theirs. */
static int kept_alive_connection(void)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = socket_address();
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char req[] = "GET /v1/status HTTP/1.1\r\nHost: lii\r\n\r\n";
        ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        /* The head, then as much body as it announces. */
        char buf[65536];
        size_t len = 0;
        char *end = NULL;
        long body = -1;
        uint64_t start = now_monotonic_usec();
        while (body < 0 || len < (size_t)(end + 4 - buf) + (size_t)body) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ck_assert_msg(elapsed_ms(start) < 5000 && poll(&p, 1, 5000) > 0,
                              "no whole answer on the kept-alive connection");
                ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
                ck_assert_int_gt(k, 0);
                len += (size_t)k;
                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
                const char *cl = strcasestr(buf, "\r\nContent-Length: ");
                if (end && cl && cl < end)
                        body = strtol(cl + strlen("\r\nContent-Length: "), NULL, 10);
        }
        ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
        ck_assert_ptr_null(strcasestr(buf, "Connection: close"));
        return fd;
}

/* The value of one sample of GET /v1/metrics. */
static unsigned long long metric(const char *series)
{
        struct answer a;
        ck_assert_int_eq(get_as_root("/v1/metrics", &a), 200);
        _cleanup_free_ char *prefix = xasprintf("\n%s ", series);
        const char *p = strstr(a.body, prefix);
        ck_assert_msg(p, "no sample %s in the metrics: %s", series, a.body);
        unsigned long long v = strtoull(p + strlen(prefix), NULL, 10);
        answer_done(&a);
        return v;
}

/* The answer liid gives a connection it refuses for the limits: a 503
 * with the contract's error document, whose message says which limit. */
static void assert_refused(int fd, const char *why)
{
        struct answer a;
        answer_parse(read_answer(fd, 2000), &a);
        ck_assert_msg(a.status == 503, "expected a 503, got: %s", a.body);
        ck_assert_ptr_nonnull(a.doc);
        ck_assert_str_eq(h_json_str(a.doc, "error.code"), "unavailable");
        const char *m = h_json_str(a.doc, "error.message");
        ck_assert_msg(m && strstr(m, why), "the refusal says '%s', not '%s'", m, why);
        answer_done(&a);
}

/* Held by liid: no answer and not closed. */
static void assert_held(const int *fds, size_t n, const char *whose)
{
        for (size_t i = 0; i < n; i++) {
                struct pollfd p = {.fd = fds[i], .events = POLLIN};
                ck_assert_msg(poll(&p, 1, 0) == 0, "%s connection %zu was answered or closed",
                              whose, i + 1);
        }
}

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "api_limits");
        h_set_api_groups(&env, READ_GROUP, ADMIN_GROUP);
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

/* One user may hold its share of the connections and no more, while other
 * users still get in; users together cannot take the last slots, which
 * root and admin_group still get; and slots come back when connections
 * close. The held connections stay quiet, so everything here must happen
 * within one request deadline, which the test checks at the end. */
START_TEST(each_user_gets_its_share_and_root_always_gets_in)
{
        uint64_t start = now_monotonic_usec();
        int a[PER_UID + 1];
        connect_as(READER_A, false, a, ELEMENTSOF(a));
        assert_refused(a[PER_UID], "from this user");
        /* liid accepts in order: the answer to the last one means it has
         * taken the others, and holds them. */
        assert_held(a, PER_UID, "reader A's");
        struct answer ans;
        ck_assert_int_eq(get_as(READER_B, false, "/v1/status", &ans), 200);
        ck_assert_str_eq(h_json_str(ans.doc, "node"), "itest");
        answer_done(&ans);

        /* Two more full shares and part of one: the shared slots are
         * gone. */
        int c[PER_UID], d[PER_UID], e[SHARED - 3 * PER_UID + 1];
        connect_as(READER_C, false, c, ELEMENTSOF(c));
        connect_as(READER_D, false, d, ELEMENTSOF(d));
        connect_as(READER_E, false, e, ELEMENTSOF(e));
        assert_refused(e[ELEMENTSOF(e) - 1], "only for root and admin_group");
        assert_held(c, ELEMENTSOF(c), "reader C's");
        assert_held(d, ELEMENTSOF(d), "reader D's");
        assert_held(e, ELEMENTSOF(e) - 1, "reader E's");
        int f;
        connect_as(READER_F, false, &f, 1);
        assert_refused(f, "only for root and admin_group");
        close(f);
        /* liictl says why, rather than that liid is unreachable. */
        char *err = NULL;
        ck_assert_int_eq(liictl_as(READER_F, "status", &err), 1);
        ck_assert_msg(strstr(err, "too many connections"), "liictl said: %s", err);
        free(err);

        /* The operator still gets in, with liictl and with plain GETs, as
         * root and as a member of admin_group. */
        char *out = NULL;
        const char *status[] = {"status", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, status), 0);
        free(out);
        ck_assert_int_eq(get_as_root("/v1/status", &ans), 200);
        answer_done(&ans);
        ck_assert_int_eq(get_as(ADMIN_G, true, "/v1/status", &ans), 200);
        answer_done(&ans);
        ck_assert_uint_ge(metric("lii_api_connections_refused_total{reason=\"uid\"}"), 1);
        ck_assert_uint_ge(metric("lii_api_connections_refused_total{reason=\"full\"}"), 2);
        /* The quiet connections, and the metrics request itself. */
        ck_assert_uint_ge(metric("lii_api_connections"), SHARED + 1);
        long took = elapsed_ms(start);
        ck_assert_msg(took < DEADLINE_MS - 500,
                      "the checks took %ld ms, so the held connections may have timed out "
                      "meanwhile",
                      took);

        close_all(a, PER_UID);
        close(a[PER_UID]);
        close_all(c, ELEMENTSOF(c));
        close_all(d, ELEMENTSOF(d));
        close_all(e, ELEMENTSOF(e));
        /* liid handles the hangups before it answers this, so their slots
         * are free for the user who was refused. */
        ck_assert_int_eq(get_as_root("/v1/status", &ans), 200);
        answer_done(&ans);
        ck_assert_int_eq(get_as(READER_F, false, "/v1/status", &ans), 200);
        answer_done(&ans);
}
END_TEST

/* What the slow clients saw, reported by their process at the end. */
struct slow_report {
        unsigned connects;
        unsigned refused;      /* answered with a 503 at once… */
        unsigned refused_json; /* …with the contract's error document */
        unsigned cut;          /* closed by liid without an answer */
        unsigned other;        /* anything else */
        long cut_min_ms, cut_max_ms;
        int error;         /* errno of a failure of the slow clients themselves */
        char refusal[512]; /* the first refusal, as it came */
};

struct slow_conn {
        int fd;
        uint64_t since;
        size_t sent;
        char got[512];
        size_t got_len;
};

/* The request head the slow clients send, one byte per tick; after it a
 * header value that never ends. */
static const char slow_head[] = "GET /v1/status HTTP/1.1\r\nHost: lii\r\nX-Slow: ";

static void slow_send_byte(struct slow_conn *c)
{
        char byte = c->sent < strlen(slow_head) ? slow_head[c->sent] : 'a';
        /* A connection liid closed fails here (EPIPE) and shows up as
         * readable, where its end is told apart. */
        if (send(c->fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                c->sent++;
}

/* liid ended the connection: by refusing it at once or by cutting it off
 * without an answer. */
static void slow_finish(struct slow_conn *c, struct slow_report *r)
{
        long lived = elapsed_ms(c->since);
        if (c->got_len == 0) {
                r->cut++;
                if (r->cut == 1 || lived < r->cut_min_ms)
                        r->cut_min_ms = lived;
                if (lived > r->cut_max_ms)
                        r->cut_max_ms = lived;
        } else if (strncmp(c->got, "HTTP/1.1 503 ", 13) == 0) {
                if (r->refused++ == 0)
                        memcpy(r->refusal, c->got, c->got_len);
                if (strstr(c->got, "{\"error\":{\"code\":\"unavailable\",\"message\":"))
                        r->refused_json++;
        } else {
                r->other++;
        }
        close(c->fd);
        c->fd = -1;
}

static void slow_read(struct slow_conn *c, struct slow_report *r)
{
        for (;;) {
                char buf[512];
                ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (k > 0) {
                        size_t room = sizeof c->got - 1 - c->got_len;
                        size_t n = (size_t)k < room ? (size_t)k : room;
                        memcpy(c->got + c->got_len, buf, n);
                        c->got_len += n;
                        c->got[c->got_len] = '\0';
                        continue;
                }
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                slow_finish(c, r);
                return;
        }
}

/* The slow clients, as uid: SLOW_CONNECTIONS connections, each sending its
 * next byte every tick, and each that liid ends opened again at the next
 * tick, for SLOW_RUN_MS. */
static void slow_clients(uid_t uid, int report_fd)
{
        become(uid, false);
        static struct slow_conn conns[SLOW_CONNECTIONS];
        struct slow_report r = {0};
        struct sockaddr_un sa = socket_address();
        for (size_t i = 0; i < SLOW_CONNECTIONS; i++)
                conns[i].fd = -1;

        uint64_t start = now_monotonic_usec();
        long next_tick = 0;
        while (elapsed_ms(start) < SLOW_RUN_MS && r.error == 0) {
                if (elapsed_ms(start) >= next_tick) {
                        next_tick += SLOW_TICK_MS;
                        for (size_t i = 0; i < SLOW_CONNECTIONS; i++) {
                                struct slow_conn *c = &conns[i];
                                if (c->fd >= 0) {
                                        slow_send_byte(c);
                                        continue;
                                }
                                *c = (struct slow_conn){.since = now_monotonic_usec()};
                                c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                                if (c->fd < 0 ||
                                    connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                                        r.error = errno;
                                        break;
                                }
                                r.connects++;
                                slow_send_byte(c);
                        }
                }
                struct pollfd p[SLOW_CONNECTIONS];
                size_t n = 0;
                for (size_t i = 0; i < SLOW_CONNECTIONS; i++)
                        p[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
                long wait = next_tick - elapsed_ms(start);
                if (poll(p, n, wait > 0 ? (int)wait : 0) < 0 && errno != EINTR) {
                        r.error = errno;
                        break;
                }
                for (size_t i = 0; i < SLOW_CONNECTIONS; i++)
                        if (conns[i].fd >= 0 && p[i].revents)
                                slow_read(&conns[i], &r);
        }
        if (write(report_fd, &r, sizeof r) != sizeof r)
                _exit(13);
        _exit(0);
}

/* One liictl status and one GET as root, each timed. */
static void root_try(long *ret_liictl_ms, long *ret_get_ms)
{
        const char *status[] = {"status", NULL};
        uint64_t t = now_monotonic_usec();
        ck_assert_int_eq(h_liictl(&env, NULL, status), 0);
        *ret_liictl_ms = elapsed_ms(t);
        ck_assert_msg(*ret_liictl_ms < LIICTL_MAX_MS, "liictl status as root took %ld ms",
                      *ret_liictl_ms);
        t = now_monotonic_usec();
        json_object *doc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &doc), 200);
        *ret_get_ms = elapsed_ms(t);
        json_object_put(doc);
        ck_assert_msg(*ret_get_ms < GET_MAX_MS, "a GET as root took %ld ms", *ret_get_ms);
}

static int compare_long(const void *a, const void *b)
{
        long x = *(const long *)a, y = *(const long *)b;
        return (x > y) - (x < y);
}

static long median(long *v, size_t n)
{
        qsort(v, n, sizeof *v, compare_long);
        return v[n / 2];
}

/* The case: a reader's slow clients, far more than the API's
 * connections; all the while root's liictl status and plain GETs answer at
 * once, and every slow request is cut off at the deadline. */
START_TEST(slow_clients_do_not_starve_the_api)
{
        long liictl_ms[TRIES_MAX], get_ms[TRIES_MAX];
        for (size_t i = 0; i < BASELINE_TRIES; i++)
                root_try(&liictl_ms[i], &get_ms[i]);
        long liictl_baseline = median(liictl_ms, BASELINE_TRIES);

        /* The deadline holds for a kept-alive connection's next request
         * too, which would otherwise give a slow client all the time it
         * wants after one quick request. */
        int idle = kept_alive_connection();

        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                slow_clients(READER_A, pipefd[1]);
        }
        close(pipefd[1]);

        /* Root's requests until the slow clients are done (their report
         * comes), paced so that they spread over the whole time. */
        size_t tries = 0;
        struct pollfd done = {.fd = pipefd[0], .events = POLLIN};
        while (tries < TRIES_MAX && poll(&done, 1, TRY_PAUSE_MS) == 0) {
                root_try(&liictl_ms[tries], &get_ms[tries]);
                tries++;
        }
        ck_assert_int_ge(poll(&done, 1, SLOW_RUN_MS + 10000), 1);
        struct slow_report r;
        ck_assert_int_eq(read(pipefd[0], &r, sizeof r), (ssize_t)sizeof r);
        close(pipefd[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the slow clients failed: %d",
                      status);
        ck_assert_msg(r.error == 0, "the slow clients failed: %s", strerror(r.error));

        ck_assert_msg(tries >= TRIES_MIN, "only %zu of root's requests fit in %d ms", tries,
                      SLOW_RUN_MS);
        long liictl_median = median(liictl_ms, tries), get_median = median(get_ms, tries);
        ck_assert_msg(liictl_median < liictl_baseline + ANSWER_MS && get_median < ANSWER_MS,
                      "root waited too long: liictl status %ld ms (%ld ms without the slow "
                      "clients), GET %ld ms (medians of %zu)",
                      liictl_median, liictl_baseline, get_median, tries);

        /* Beyond each user's share, connections were refused at once, as
         * the contract's errors are. */
        ck_assert_uint_ge(r.connects, SLOW_CONNECTIONS);
        ck_assert_uint_ge(r.refused, SLOW_CONNECTIONS - PER_UID);
        ck_assert_msg(r.refused_json == r.refused, "a refusal without the error document: %s",
                      r.refusal);
        /* The held ones were cut off at the deadline, counted from their
         * accept, although they kept sending. */
        ck_assert_uint_ge(r.cut, PER_UID);
        ck_assert_msg(r.cut_min_ms >= DEADLINE_MS - 500 && r.cut_max_ms <= DEADLINE_MS + 1500,
                      "slow requests were cut off after %ld to %ld ms, not at %d ms", r.cut_min_ms,
                      r.cut_max_ms, DEADLINE_MS);
        ck_assert_uint_eq(r.other, 0);

        /* The slow clients' run outlasts the deadline, and ends before
         * the 10 s after which an idle connection would go anyway. */
        char byte;
        ck_assert_msg(recv(idle, &byte, 1, MSG_DONTWAIT) == 0,
                      "the kept-alive connection is still open");
        close(idle);

        ck_assert_uint_ge(metric("lii_api_connections_refused_total{reason=\"uid\"}"), r.refused);
        ck_assert_uint_ge(metric("lii_api_connections_timed_out_total"), r.cut + 1);
        /* All slow connections are closed: at most the metrics request
         * and the previous one, whose hangup liid may not have seen. */
        ck_assert_uint_le(metric("lii_api_connections"), 2);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("api_limits");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"share", each_user_gets_its_share_and_root_always_gets_in},
            {"slow", slow_clients_do_not_starve_the_api},
        };
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

static const char *const groups[] = {READ_GROUP, ADMIN_GROUP};

static void groups_remove(void)
{
        h_groups_remove(groups, ELEMENTSOF(groups));
}

static int groups_create(void)
{
        if (h_groups_ensure(groups, ELEMENTSOF(groups)) < 0)
                return -1;
        struct group *gr = getgrnam(READ_GROUP);
        if (!gr)
                return -1;
        read_gid = gr->gr_gid;
        gr = getgrnam(ADMIN_GROUP);
        if (!gr)
                return -1;
        admin_gid = gr->gr_gid;
        return 0;
}

int main(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "integration tests need root (they run a private systemd manager "
                                "and create groups)\n");
                return 77;
        }
        if (groups_create() < 0) {
                fprintf(stderr, "test_api_limits: cannot create the test groups\n");
                groups_remove();
                return EXIT_FAILURE;
        }
        int rc = h_main(suite());
        groups_remove();
        return rc;
}
