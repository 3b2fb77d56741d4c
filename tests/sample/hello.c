/* The sample service that lii's tests and demo deploy: a tiny HTTP server.
 *   GET /         "hello from <version>: <GREETING>\n"
 *   GET /healthz  200 "ok\n", or 503 while unhealthy (see the flags)
 *   GET /version  "<version>\n"
 * Flags:
 *   --port N            listen on 127.0.0.1:N (default: $PORT)
 *   --version-name S    what / and /version report (default: "dev")
 *   --healthy-after MS  /healthz answers 503 for the first MS milliseconds
 *   --never-healthy     /healthz always answers 503 (a broken build)
 * It uses SO_REUSEPORT so that two generations may share a fixed port. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void reply(int fd, int code, const char *body)
{
        char buf[1024];
        int n = snprintf(buf, sizeof buf,
                         "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n%s",
                         code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Service Unavailable",
                         strlen(body), body);
        if (n > 0 && write(fd, buf, (size_t)n) < 0)
                perror("write");
}

int main(int argc, char **argv)
{
        const char *port_s = getenv("PORT");
        const char *version = "dev";
        long long healthy_after = 0;
        int never_healthy = 0;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
                        port_s = argv[++i];
                else if (strcmp(argv[i], "--version-name") == 0 && i + 1 < argc)
                        version = argv[++i];
                else if (strcmp(argv[i], "--healthy-after") == 0 && i + 1 < argc)
                        healthy_after = atoll(argv[++i]);
                else if (strcmp(argv[i], "--never-healthy") == 0)
                        never_healthy = 1;
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

        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 64) < 0) {
                perror("hello: bind");
                return 1;
        }
        long long start = now_ms();
        fprintf(stderr, "hello %s listening on 127.0.0.1:%d\n", version, port);
        for (;;) {
                int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("hello: accept");
                        return 1;
                }
                char req[2048];
                ssize_t n = read(c, req, sizeof req - 1);
                req[n > 0 ? n : 0] = '\0';
                char body[512];
                if (strncmp(req, "GET /healthz", 12) == 0) {
                        int ok = !never_healthy && now_ms() - start >= healthy_after;
                        reply(c, ok ? 200 : 503, ok ? "ok\n" : "not yet\n");
                } else if (strncmp(req, "GET /version", 12) == 0) {
                        snprintf(body, sizeof body, "%s\n", version);
                        reply(c, 200, body);
                } else if (strncmp(req, "GET / ", 6) == 0) {
                        snprintf(body, sizeof body, "hello from %s: %s\n", version, greeting);
                        reply(c, 200, body);
                } else {
                        reply(c, 404, "not found\n");
                }
                close(c);
        }
}
