/* The sample service that lii's tests and demo deploy: a tiny HTTP server.
 *   GET /         "hello from <version>: <GREETING>\n"
 *   GET /healthz  200 "ok\n", or 503 while unhealthy (see the flags)
 *   GET /version  "<version>\n"
 *   GET /where    its working directory and $LII_ARTIFACT_DIR, a line each
 *   GET /look/P   200 "readable\n" when the instance can read a byte of the
 *                 file /P or an entry of the folder /P, 404 with why not
 * Flags:
 *   --port N            listen on 127.0.0.1:N (default: $PORT)
 *   --version-name S    what / and /version report (default: "dev")
 *   --healthy-after MS  /healthz answers 503 for the first MS milliseconds
 *   --never-healthy     /healthz always answers 503 (a broken build)
 *   --unhealthy-after MS  /healthz answers 503 from MS milliseconds on
 *   --healthz-500       /healthz answers 500
 *   --hang              /healthz never answers (the connection stays open)
 *   --exit-after MS     exit with status 3 after MS milliseconds
 *   --notify            send READY=1 to $NOTIFY_SOCKET (after --healthy-after)
 *   --ignore-sigterm    ignore SIGTERM (the stop timeout must end it)
 *   --crash             die of SIGSEGV once listening
 * It uses SO_REUSEPORT so that two generations may share a fixed port.
 * Started by socket activation (LISTEN_PID and LISTEN_FDS, as lii does for
 * a service that lists addresses), it serves every socket it receives
 * instead; the last is the probe socket on $PORT. On SIGTERM it hands its
 * addresses over (see handover_begin()), stops accepting (closing its
 * listening sockets hands their queued connections to another
 * generation's sockets where net.ipv4.tcp_migrate_req is on), answers the
 * request in hand and exits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* READY=1 the way sd_notify() sends it, without linking libsystemd, so
 * that the sample stays a plain binary. */
static void notify_ready(void)
{
        const char *path = getenv("NOTIFY_SOCKET");
        if (!path || (path[0] != '/' && path[0] != '@'))
                return;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = '\0';
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
        if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, len) < 0)
                perror("hello: notify");
        close(fd);
}

/* Whether the instance can read something at path: a byte of a file or
 * an entry of a folder. What InaccessiblePaths= puts in place is an empty
 * node of mode 0, which root may open, so "empty" counts as not readable. */
static const char *look(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return strerror(errno);
        DIR *d = fdopendir(fd);
        if (d) {
                struct dirent *de;
                int entries = 0;
                while ((de = readdir(d)))
                        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
                closedir(d);
                return entries ? NULL : "empty";
        }
        char c;
        ssize_t n = read(fd, &c, 1);
        int err = errno;
        close(fd);
        return n > 0 ? NULL : n == 0 ? "empty" : strerror(err);
}

static void on_alarm(int sig)
{
        _exit(3);
}

static volatile sig_atomic_t stopping;

static void on_sigterm(int sig)
{
        stopping = 1;
}

#define MAX_LISTEN 32

/* The sockets systemd passed (sd_listen_fds(3) without libsystemd): fds 3
 * on, when LISTEN_PID is this process. Returns how many. */
static int inherited_sockets(int fds[static MAX_LISTEN])
{
        const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
        if (!pid || !n || atol(pid) != (long)getpid())
                return 0;
        int count = atoi(n);
        if (count <= 0 || count > MAX_LISTEN)
                return 0;
        for (int i = 0; i < count; i++) {
                fds[i] = 3 + i;
                fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        }
        return count;
}

/* How long a stopping instance goes on serving once it has steered new
 * connections away: handshakes already aimed at it land in its queue. */
#define HANDOVER_MS 20

/* The kernel has one race that tcp_migrate_req leaves open: a handshake
 * that completes on one CPU while the listener closes on another is reset.
 * So before it closes, the instance steers new connections of each of its
 * reuseport groups to the other socket in it: a classic BPF program picks
 * the group's socket by its index, which follows the order the sockets
 * joined in. lii starts a generation's sockets only once the one before
 * the current is gone, so a retired generation's socket is the first of
 * at most two, and index 1 is its successor's; alone in its group, the
 * index is out of range and the kernel picks as it always does. */
static void handover_begin(const int *fds, int nfds)
{
        struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 1)};
        struct sock_fprog prog = {.len = 1, .filter = code};
        for (int i = 0; i < nfds; i++)
                setsockopt(fds[i], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

/* The program stays with the group when its socket closes: a starting
 * generation takes it off, so that it does not get every connection
 * before it has passed its checks, and the kernel spreads them again. */
static void handover_end(const int *fds, int nfds)
{
        int zero = 0;
        for (int i = 0; i < nfds; i++)
                setsockopt(fds[i], SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof zero);
}

/* HTTP/1.0 and closed after the answer, or HTTP/1.1 kept alive. */
static void reply(int fd, int code, const char *body, int keep)
{
        char buf[1024];
        int n = snprintf(buf, sizeof buf,
                         "HTTP/1.%d %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "Connection: %s\r\n\r\n%s",
                         keep, code,
                         code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 500 ? "Internal Server Error"
                                       : "Service Unavailable",
                         strlen(body), keep ? "keep-alive" : "close", body);
        if (n > 0 && write(fd, buf, (size_t)n) < 0)
                perror("write");
}

#define MAX_CLIENTS 64

/* What the flags ask of /healthz. */
static long long healthy_after, unhealthy_after = -1;
static int never_healthy, healthz_500, hang;
/* A --hang connection stays open and unanswered for good. */
static int hung_fds[MAX_CLIENTS], nhung;

static int hung(int c)
{
        for (int i = 0; i < nhung; i++)
                if (hung_fds[i] == c)
                        return 1;
        return 0;
}

/* Reads one request from c and answers it. Returns whether the connection
 * stays open for another (HTTP/1.1 without "Connection: close"). */
static int serve(int c, const char *version, const char *greeting, long long start)
{
        char req[2048];
        ssize_t n = read(c, req, sizeof req - 1);
        if (n <= 0)
                return 0;
        req[n] = '\0';
        int keep = strstr(req, " HTTP/1.1\r\n") && !strcasestr(req, "\r\nConnection: close");
        char body[512];
        if (strncmp(req, "GET /healthz", 12) == 0) {
                long long age = now_ms() - start;
                int ok = !never_healthy && age >= healthy_after &&
                         (unhealthy_after < 0 || age < unhealthy_after);
                if (hang) {
                        /* The connection is left open, unanswered. */
                        if (nhung < MAX_CLIENTS)
                                hung_fds[nhung++] = c;
                        return 0;
                }
                if (healthz_500)
                        reply(c, 500, "broken\n", keep);
                else
                        reply(c, ok ? 200 : 503, ok ? "ok\n" : "not yet\n", keep);
        } else if (strncmp(req, "GET /version", 12) == 0) {
                snprintf(body, sizeof body, "%s\n", version);
                reply(c, 200, body, keep);
        } else if (strncmp(req, "GET /where ", 11) == 0) {
                char cwd[256];
                const char *dir = getenv("LII_ARTIFACT_DIR");
                snprintf(body, sizeof body, "%s\n%s\n",
                         getcwd(cwd, sizeof cwd) ? cwd : strerror(errno), dir ? dir : "");
                reply(c, 200, body, keep);
        } else if (strncmp(req, "GET /look/", 10) == 0) {
                char path[1024];
                snprintf(path, sizeof path, "/%.*s", (int)strcspn(req + 10, " \r\n"), req + 10);
                const char *err = look(path);
                snprintf(body, sizeof body, "%s\n", err ? err : "readable");
                reply(c, err ? 404 : 200, body, keep);
        } else if (strncmp(req, "GET / ", 6) == 0) {
                snprintf(body, sizeof body, "hello from %s: %s\n", version, greeting);
                reply(c, 200, body, keep);
        } else {
                reply(c, 404, "not found\n", keep);
        }
        return keep;
}

int main(int argc, char **argv)
{
        const char *port_s = getenv("PORT");
        const char *version = "dev";
        long long exit_after = -1;
        int notify = 0, crash = 0;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
                        port_s = argv[++i];
                else if (strcmp(argv[i], "--version-name") == 0 && i + 1 < argc)
                        version = argv[++i];
                else if (strcmp(argv[i], "--healthy-after") == 0 && i + 1 < argc)
                        healthy_after = atoll(argv[++i]);
                else if (strcmp(argv[i], "--never-healthy") == 0)
                        never_healthy = 1;
                else if (strcmp(argv[i], "--unhealthy-after") == 0 && i + 1 < argc)
                        unhealthy_after = atoll(argv[++i]);
                else if (strcmp(argv[i], "--exit-after") == 0 && i + 1 < argc)
                        exit_after = atoll(argv[++i]);
                else if (strcmp(argv[i], "--healthz-500") == 0)
                        healthz_500 = 1;
                else if (strcmp(argv[i], "--hang") == 0)
                        hang = 1;
                else if (strcmp(argv[i], "--notify") == 0)
                        notify = 1;
                else if (strcmp(argv[i], "--ignore-sigterm") == 0)
                        signal(SIGTERM, SIG_IGN);
                else if (strcmp(argv[i], "--crash") == 0)
                        crash = 1;
                else {
                        fprintf(stderr, "hello: unknown argument '%s'\n", argv[i]);
                        return 2;
                }
        }
        int port = port_s ? atoi(port_s) : 0;
        if (port <= 0 || port > 65535) {
                fprintf(stderr, "hello: no valid port (--port or $PORT)\n");
                return 2;
        }
        const char *greeting = getenv("GREETING") ? getenv("GREETING") : "hi";
        signal(SIGPIPE, SIG_IGN);

        int fds[MAX_LISTEN];
        int nfds = inherited_sockets(fds);
        if (nfds == 0) {
                int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int one = 1;
                setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
                struct sockaddr_in sa = {.sin_family = AF_INET,
                                         .sin_port = htons((uint16_t)port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 64) < 0) {
                        perror("hello: bind");
                        return 1;
                }
                fds[nfds++] = s;
        }
        struct sigaction old;
        sigaction(SIGTERM, NULL, &old);
        if (old.sa_handler != SIG_IGN) { /* --ignore-sigterm */
                struct sigaction term = {.sa_handler = on_sigterm, .sa_flags = SA_RESTART};
                sigaction(SIGTERM, &term, NULL);
        }
        handover_end(fds, nfds);
        long long start = now_ms();
        if (nfds > 1 || getenv("LISTEN_FDS"))
                fprintf(stderr, "hello %s serving %d sockets from systemd (probe port %d)\n",
                        version, nfds, port);
        else
                fprintf(stderr, "hello %s listening on 127.0.0.1:%d\n", version, port);
        if (crash) {
                fprintf(stderr, "hello: crashing as asked\n");
                /* The default action, even where a sanitizer catches SEGV. */
                signal(SIGSEGV, SIG_DFL);
                raise(SIGSEGV);
        }
        if (exit_after >= 0) {
                signal(SIGALRM, on_alarm);
                struct itimerval it = {.it_value = {.tv_sec = exit_after / 1000,
                                                    .tv_usec = (exit_after % 1000) * 1000}};
                if (exit_after == 0)
                        _exit(3);
                setitimer(ITIMER_REAL, &it, NULL);
        }
        int notified = 0;
        int clients[MAX_CLIENTS];
        int nclients = 0;
        long long stop_at = -1;
        for (;;) {
                if (notify && !notified) {
                        long long wait = healthy_after - (now_ms() - start);
                        if (wait > 0) {
                                struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
                                nanosleep(&ts, NULL);
                        }
                        notify_ready();
                        notified = 1;
                }
                if (stopping && stop_at < 0) {
                        handover_begin(fds, nfds);
                        stop_at = now_ms() + HANDOVER_MS;
                }
                if (stopping && now_ms() >= stop_at) {
                        /* Every client is between requests here: a kept-alive
                         * connection closes now, and its client opens a new
                         * one to the next generation. */
                        for (int i = 0; i < nfds; i++)
                                close(fds[i]);
                        for (int i = 0; i < nclients; i++)
                                close(clients[i]);
                        fprintf(stderr, "hello %s: stopping\n", version);
                        return 0;
                }
                struct pollfd pfd[MAX_LISTEN + MAX_CLIENTS];
                if (nfds < 1 || nfds > MAX_LISTEN || nclients < 0 || nclients > MAX_CLIENTS)
                        return 1;
                for (int i = 0; i < nfds; i++)
                        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                for (int i = 0; i < nclients; i++)
                        pfd[nfds + i] = (struct pollfd){.fd = clients[i], .events = POLLIN};
                long long left = stop_at < 0 ? -1 : stop_at - now_ms();
                int timeout = stop_at < 0 ? -1 : left > 0 ? (int)left + 1 : 0;
                if (poll(pfd, (nfds_t)(nfds + nclients), timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("hello: poll");
                        return 1;
                }
                /* Requests on kept-alive connections first, then new ones. */
                for (int i = nclients - 1; i >= 0; i--) {
                        if (!(pfd[nfds + i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        int c = clients[i];
                        if (!serve(c, version, greeting, start)) {
                                if (!hung(c))
                                        close(c);
                                clients[i] = clients[--nclients];
                        }
                }
                for (int i = 0; i < nfds; i++) {
                        if (!(pfd[i].revents & POLLIN))
                                continue;
                        int c = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        if (c < 0) {
                                if (errno == EINTR || errno == EAGAIN)
                                        continue;
                                perror("hello: accept");
                                return 1;
                        }
                        /* Blocking for the request itself, which is small. */
                        fcntl(c, F_SETFL, 0);
                        if (serve(c, version, greeting, start) && nclients < MAX_CLIENTS)
                                clients[nclients++] = c;
                        else if (!hung(c))
                                close(c);
                }
        }
}
