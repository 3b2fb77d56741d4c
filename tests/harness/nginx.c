/* The test nginx; see nginx.h. */
#include "harness.h"
#include "nginx.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void sh(const char *cmd)
{
        int rc = system(cmd);
        ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

static void make_certificates(struct h_nginx *n)
{
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "set -e; cd '%s'; "
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-keyout ca.key -out ca.pem -days 2 -subj /CN=lii-test-ca 2>/dev/null; "
                 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null; "
                 "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext; "
                 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out server.pem -days 2 -extfile san.ext 2>/dev/null",
                 n->dir);
        sh(cmd);
        snprintf(n->ca_file, sizeof n->ca_file, "%s/ca.pem", n->dir);
}

/* nginx writes its pid file only once its sockets listen, so the file's
 * appearance (seen through inotify) is the readiness signal. */
static void wait_for_pid_file(struct h_nginx *n, const char *pid_file)
{
        int fd = inotify_init1(IN_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_ge(inotify_add_watch(fd, n->dir, IN_CREATE | IN_MOVED_TO), 0);
        for (int waited = 0; access(pid_file, F_OK) != 0; waited += 100) {
                int status;
                if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
                        n->pid = 0;
                        ck_abort_msg("nginx exited (status %d); see %s/error.log", status, n->dir);
                }
                ck_assert_msg(waited < 10000, "nginx did not start within 10 s");
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 100) > 0) {
                        char buf[4096];
                        if (read(fd, buf, sizeof buf) < 0 && errno != EINTR)
                                break;
                }
        }
        close(fd);
}

/* Runs nginx with the configuration in n->dir and returns once it listens. */
static void launch(struct h_nginx *n)
{
        char conf_path[700], pid_file[700];
        snprintf(conf_path, sizeof conf_path, "%s/nginx.conf", n->dir);
        snprintf(pid_file, sizeof pid_file, "%s/nginx.pid", n->dir);
        /* The pid file's appearance is the readiness signal: one left by
         * an nginx stopped before must not count. */
        unlink(pid_file);
        n->pid = fork();
        ck_assert_int_ge(n->pid, 0);
        if (n->pid == 0) {
                /* nginx must not outlive a test that fails before teardown. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                execlp("nginx", "nginx", "-c", conf_path, "-p", n->dir, "-e", "stderr", "-g",
                       "daemon off;", (char *)NULL);
                _exit(127);
        }
        wait_for_pid_file(n, pid_file);
}

void h_nginx_start(struct h_nginx *n, const char *dir, const char *root,
                   const char *extra_locations)
{
        memset(n, 0, sizeof *n);
        snprintf(n->dir, sizeof n->dir, "%s", dir);
        snprintf(n->root, sizeof n->root, "%s", root);
        mkdir(n->dir, 0755);
        mkdir(n->root, 0755);
        make_certificates(n);
        n->http_port = h_free_port();
        n->https_port = h_free_port();
        snprintf(n->access_log, sizeof n->access_log, "%s/access.log", n->dir);

        char conf_path[700], pid_file[700];
        snprintf(conf_path, sizeof conf_path, "%s/nginx.conf", n->dir);
        snprintf(pid_file, sizeof pid_file, "%s/nginx.pid", n->dir);
        FILE *f = fopen(conf_path, "w");
        ck_assert_ptr_nonnull(f);
        const char *extra = extra_locations ? extra_locations : "";
        /* The workers run as root: the test's folder may lie under one
         * that only root can search (a clone in /root), and a worker as
         * nobody would answer 403 there. Loopback only, for tests. */
        fprintf(f,
                "user root;\n"
                "worker_processes 1;\n"
                "pid %s;\n"
                "error_log %s/error.log warn;\n"
                "events { worker_connections 64; }\n"
                "http {\n"
                "  access_log %s;\n"
                "  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
                "  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi;\n"
                "  scgi_temp_path %s/scgi;\n"
                "  default_type application/octet-stream;\n"
                "  server { listen 127.0.0.1:%d; root %s; %s }\n"
                "  server { listen 127.0.0.1:%d ssl; root %s;\n"
                "    ssl_certificate %s/server.pem; ssl_certificate_key %s/server.key; %s }\n"
                "}\n",
                pid_file, n->dir, n->access_log, n->dir, n->dir, n->dir, n->dir, n->dir,
                n->http_port, n->root, extra, n->https_port, n->root, n->dir, n->dir, extra);
        fclose(f);
        launch(n);
}

void h_nginx_restart(struct h_nginx *n)
{
        h_nginx_stop(n);
        launch(n);
}

void h_nginx_stop(struct h_nginx *n)
{
        if (n->pid > 0) {
                kill(n->pid, SIGTERM);
                int status;
                waitpid(n->pid, &status, 0);
                n->pid = 0;
        }
}

int h_nginx_count(struct h_nginx *n, const char *path, int status)
{
        FILE *f = fopen(n->access_log, "r");
        if (!f)
                return 0;
        char line[4096], needle[1024];
        snprintf(needle, sizeof needle, " %s HTTP/1.1\" %d ", path, status);
        int count = 0;
        while (fgets(line, sizeof line, f))
                if (strstr(line, needle))
                        count++;
        fclose(f);
        return count;
}
