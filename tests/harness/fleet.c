/* The test fleet; see fleet.h. */
#include "fleet.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

static void sh(const char *cmd)
{
        int rc = system(cmd);
        if (rc != 0)
                h_fail_now("command failed (%d): %s", rc, cmd);
}

/* ---- the managers ---- */

/* Forks node i's manager into a cgroup of its own (the unit cgroups of two
 * managers in one cgroup would be the same folders, and stopping a unit in
 * one would kill its namesake in the other); private-manager.sh gives it a
 * mount namespace of its own. */
static pid_t manager_fork(struct h_fleet_node *node, const char *notify)
{
        pid_t pid = fork();
        if (pid < 0)
                h_fail_now("fork: %s", strerror(errno));
        if (pid == 0) {
                /* A failed test ends without teardown; the manager, and
                 * with it every unit it runs, must go too. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                setsid();
                h_cgroup_enter(node->cgroup);
                char config_home[700], log[700];
                snprintf(config_home, sizeof config_home, "%s/config", node->env.dir);
                snprintf(log, sizeof log, "%s/manager.log", node->env.dir);
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                setenv("NOTIFY_SOCKET", notify, 1);
                execl(LII_SOURCE_DIR "/tests/private-manager.sh", "private-manager.sh",
                      node->env.runtime, config_home, "--log-target=console", "--log-level=warning",
                      (char *)NULL);
                _exit(127);
        }
        return pid;
}

/* Starts every manager at once and waits for all: on 2 cores a manager
 * takes a good part of a second to come up. */
static void managers_start(struct h_fleet *f)
{
        int fds[H_FLEET_MAX];
        for (size_t i = 0; i < f->n; i++) {
                char notify[700];
                snprintf(notify, sizeof notify, "%s/manager.notify", f->node[i].env.dir);
                fds[i] = h_notify_open(notify);
                f->node[i].env.manager_pid = manager_fork(&f->node[i], notify);
        }
        uint64_t deadline = now_monotonic_usec() + 30 * USEC_PER_SEC;
        for (size_t i = 0; i < f->n; i++) {
                char what[64];
                snprintf(what, sizeof what, "the systemd manager of %s", f->node[i].name);
                h_notify_wait_ready(fds[i], f->node[i].env.manager_pid, what, deadline);
                close(fds[i]);
        }
}

static void manager_stop(struct h_fleet_node *node)
{
        if (node->env.manager_pid <= 0)
                return;
        /* The manager stops every unit it runs as it exits. */
        kill(node->env.manager_pid, SIGTERM);
        int status;
        while (waitpid(node->env.manager_pid, &status, 0) < 0 && errno == EINTR)
                ;
        node->env.manager_pid = 0;
}

/* After its manager exited, a node's cgroup holds no process; removing it
 * fails only when something of it survived. */
static bool cgroup_gone(const char *name)
{
        h_cgroup_remove(name);
        if (access("/sys/fs/cgroup/cgroup.procs", F_OK) != 0)
                return true; /* v1 or hybrid: best effort, as for single tests */
        char dir[600];
        snprintf(dir, sizeof dir, "/sys/fs/cgroup/%s", name);
        return access(dir, F_OK) != 0;
}

/* ---- set-up ---- */

void h_fleet_write_config(struct h_fleet *f, size_t i)
{
        struct h_fleet_node *node = &f->node[i];
        char url[700];
        h_etcd_url(&f->etcd, node->etcd_first, f->prefix, url, sizeof url);
        snprintf(node->env.source_url, sizeof node->env.source_url, "%s", url);
        FILE *c = fopen(node->env.config, "we");
        if (!c)
                h_fail_now("%s: %s", node->env.config, strerror(errno));
        fprintf(c,
                "; written by the lii test harness (fleet)\n"
                "[source]\nurl = %s\npoll_interval = %s\n",
                url, f->poll_interval);
        if (f->fetch_timeout[0])
                fprintf(c, "fetch_timeout = %s\n", f->fetch_timeout);
        fprintf(c,
                "[trust]\ndesired_keys = %s/keys/desired.d\nartifact_keys = %s/keys/artifact.d\n"
                "[node]\nname = %s\n"
                "[paths]\nstate_dir = %s\nsocket = %s\n"
                "[rollout]\nkeep_revisions = 1\n"
                "[systemd]\nbus = %s\n"
                "[api]\nread_group =\n"
                "[log]\nlevel = debug\n%s",
                f->dir, f->dir, node->name, node->env.state_dir, node->env.socket, node->env.bus,
                f->config_extra);
        fclose(c);
}

static void node_prepare(struct h_fleet *f, size_t i)
{
        struct h_fleet_node *node = &f->node[i];
        struct h_env *env = &node->env;
        /* Each name is made in a local buffer first: node and env live in
         * f, and GCC cannot tell that the fields written and read do not
         * overlap (-Werror=restrict). */
        char name[sizeof node->name], dir[sizeof env->dir], runtime[sizeof env->runtime];
        snprintf(name, sizeof name, "n%zu", i + 1);
        memcpy(node->name, name, sizeof name);
        snprintf(node->cgroup, sizeof node->cgroup, "lii-fleet-%d-%s", (int)getpid(), name);
        /* Spread the nodes over the members, as a real fleet's would be. */
        node->etcd_first = (int)(i % H_ETCD_MEMBERS);
        snprintf(dir, sizeof dir, "%s/%s", f->dir, name);
        memcpy(env->dir, dir, sizeof dir);
        snprintf(runtime, sizeof runtime, "%s/runtime", dir);
        memcpy(env->runtime, runtime, sizeof runtime);
        snprintf(env->state_dir, sizeof env->state_dir, "%s/state", dir);
        snprintf(env->config, sizeof env->config, "%s/liid.conf", dir);
        _Static_assert(sizeof env->www == sizeof f->pub.www, "www");
        memcpy(env->www, f->pub.www, sizeof env->www);
        /* Unix socket paths are short; the build tree may be deep. */
        snprintf(env->socket, sizeof env->socket, "/run/lii-fleet.%d.%s.sock", (int)getpid(), name);
        snprintf(env->bus, sizeof env->bus, "unix:path=%s/systemd/private", runtime);
        if (mkdir(env->dir, 0755) < 0 || mkdir(env->runtime, 0700) < 0)
                h_fail_now("mkdir %s: %s", env->dir, strerror(errno));
        unlink(env->socket);
}

/* A test that fails ends its process without teardown: its managers, liids
 * and etcd members go with it (PR_SET_PDEATHSIG) and its folder stays for a
 * look, but its sockets stay in /run. The next fleet removes those of
 * processes that are gone. */
static void remove_stale_sockets(void)
{
        glob_t g;
        if (glob("/run/lii-fleet.*.sock", 0, NULL, &g) != 0)
                return;
        for (size_t i = 0; i < g.gl_pathc; i++) {
                int pid = atoi(g.gl_pathv[i] + strlen("/run/lii-fleet."));
                if (pid > 0 && kill(pid, 0) < 0 && errno == ESRCH)
                        unlink(g.gl_pathv[i]);
        }
        globfree(&g);
}

void h_fleet_setup(struct h_fleet *f, const char *name, size_t n)
{
        remove_stale_sockets();
        if (n == 0 || n > H_FLEET_MAX)
                h_fail_now("a fleet has 1 to %d nodes, not %zu", H_FLEET_MAX, n);
        memset(f, 0, sizeof *f);
        f->n = n;
        snprintf(f->prefix, sizeof f->prefix, "lii/fleet");
        snprintf(f->poll_interval, sizeof f->poll_interval, "1h");
        /* Instances run with PrivateTmp=yes, and dynamic users must be
         * able to walk down to each node's store: outside /tmp, 0755. */
        snprintf(f->dir, sizeof f->dir, "%s/itest/fleet-%s.%d", LII_BUILD_DIR, name, getpid());
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "set -e; rm -rf '%s'; mkdir -p -m 0755 '%s/www' '%s/keys/desired.d' "
                 "'%s/keys/artifact.d'; chmod 0755 '%s/itest'; chmod 0700 '%s/keys'; cd '%s/keys'; "
                 "minisign -G -W -f -p desired.d/desired.pub -s desired.key >/dev/null; "
                 "minisign -G -W -f -p artifact.d/artifact.pub -s artifact.key >/dev/null; "
                 "chmod 0755 desired.d artifact.d; "
                 "for v in 1 2 3; do cp '%s/sample/hello-'$v.tar.gz ../www/; done",
                 f->dir, f->dir, f->dir, f->dir, LII_BUILD_DIR, f->dir, f->dir, LII_BUILD_DIR);
        sh(cmd);

        struct h_env *pub = &f->pub;
        snprintf(pub->dir, sizeof pub->dir, "%s", f->dir);
        snprintf(pub->www, sizeof pub->www, "%s/www", f->dir);
        snprintf(pub->artifact_base, sizeof pub->artifact_base, "file://%s", pub->www);
        for (int v = 1; v <= 3; v++) {
                char art[700];
                snprintf(art, sizeof art, "%s/hello-%d.tar.gz", pub->www, v);
                h_sign_artifact(pub, art);
        }

        char etcd_dir[600];
        snprintf(etcd_dir, sizeof etcd_dir, "%s/etcd", f->dir);
        h_etcd_start(&f->etcd, etcd_dir);
        for (size_t i = 0; i < n; i++)
                node_prepare(f, i);
        managers_start(f);
        for (size_t i = 0; i < n; i++)
                h_fleet_write_config(f, i);
}

void h_fleet_teardown(struct h_fleet *f)
{
        char left[1024] = "";
        size_t off = 0;
        for (size_t i = 0; i < f->n; i++) {
                struct h_fleet_node *node = &f->node[i];
                if (node->env.liid_pid > 0) {
                        if (node->frozen)
                                kill(node->env.liid_pid, SIGCONT);
                        node->frozen = false;
                        kill(node->env.liid_pid, SIGTERM);
                }
        }
        for (size_t i = 0; i < f->n; i++) {
                struct h_fleet_node *node = &f->node[i];
                if (node->env.liid_pid > 0) {
                        int status;
                        while (waitpid(node->env.liid_pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        node->env.liid_pid = 0;
                }
                /* One after another: each manager's exit stops its units,
                 * which is CPU a 2-core machine has little of. */
                manager_stop(node);
                if (node->cgroup[0] && !cgroup_gone(node->cgroup))
                        off += (size_t)snprintf(left + off, sizeof left - off, " %s", node->cgroup);
                if (node->env.socket[0])
                        unlink(node->env.socket);
        }
        for (int m = 0; m < H_ETCD_MEMBERS; m++)
                if (f->etcd.pid[m] > 0 && f->etcd_frozen[m])
                        kill(f->etcd.pid[m], SIGCONT);
        h_etcd_stop(&f->etcd);
        if (f->dir[0] && !getenv("LII_KEEP_TEST_DIR")) {
                char cmd[700];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
                (void)!system(cmd);
        }
        f->n = 0;
        if (left[0])
                h_fail_now("cgroups still hold processes after their managers exited:%s", left);
}

/* ---- liid ---- */

void h_fleet_start(struct h_fleet *f, size_t i)
{
        h_start_liid(&f->node[i].env);
        f->node[i].frozen = false;
}

void h_fleet_start_all(struct h_fleet *f)
{
        for (size_t i = 0; i < f->n; i++)
                h_fleet_start(f, i);
}

void h_fleet_signal(struct h_fleet *f, size_t i, int sig)
{
        struct h_fleet_node *node = &f->node[i];
        if (node->env.liid_pid <= 0)
                h_fail_now("%s: liid does not run", node->name);
        switch (sig) {
        case SIGSTOP:
                kill(node->env.liid_pid, SIGSTOP);
                node->frozen = true;
                return;
        case SIGCONT:
                kill(node->env.liid_pid, SIGCONT);
                node->frozen = false;
                return;
        default:
                if (node->frozen)
                        kill(node->env.liid_pid, SIGCONT);
                node->frozen = false;
                h_kill_liid(&node->env, sig);
        }
}

void h_fleet_etcd_freeze(struct h_fleet *f, int member, bool freeze)
{
        if (member < 0 || member >= H_ETCD_MEMBERS || f->etcd.pid[member] <= 0)
                h_fail_now("etcd member %d does not run", member);
        kill(f->etcd.pid[member], freeze ? SIGSTOP : SIGCONT);
        f->etcd_frozen[member] = freeze;
}

long h_fleet_get(struct h_fleet *f, size_t i, const char *path, json_object **ret)
{
        return h_api_get(&f->node[i].env, path, ret);
}

/* ---- publishing ---- */

static void keys(struct h_fleet *f, char doc[static 128], char sig[static 128])
{
        snprintf(doc, 128, "%s/desired/doc", f->prefix);
        snprintf(sig, 128, "%s/desired/sig", f->prefix);
}

long long h_fleet_put(struct h_fleet *f, const char *doc_file, const char *sig_file)
{
        char doc_key[128], sig_key[128];
        keys(f, doc_key, sig_key);
        return h_etcd_put_files(&f->etcd, doc_key, doc_file, sig_key, sig_file);
}

static long long put_published(struct h_fleet *f)
{
        char doc[700], sig[720];
        snprintf(doc, sizeof doc, "%s/desired.json", f->pub.www);
        snprintf(sig, sizeof sig, "%s.minisig", doc);
        return h_fleet_put(f, doc, sig);
}

long long h_fleet_publish(struct h_fleet *f, const struct h_service *svcs, size_t n)
{
        h_publish(&f->pub, svcs, n, 0);
        return put_published(f);
}

long long h_fleet_publish_raw(struct h_fleet *f, const char *doc)
{
        h_publish_raw(&f->pub, doc);
        return put_published(f);
}

/* ---- waiting ---- */

/* A follower of a node's events: a plain connection to its API socket with
 * GET /v1/events?follow=1 sent. What arrives is only a wake-up; the status
 * is what is checked. -1 when the node does not answer. */
static int follow_open(const struct h_fleet_node *node)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -1;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len = strlen(node->env.socket);
        if (len >= sizeof sa.sun_path) {
                close(fd);
                return -1;
        }
        memcpy(sa.sun_path, node->env.socket, len + 1);
        static const char req[] = "GET /v1/events?follow=1 HTTP/1.1\r\nHost: lii\r\n\r\n";
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Reads what is there; false when the stream ended. */
static bool follow_drain(int fd)
{
        char buf[8192];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n > 0)
                        continue;
                return n < 0 && (errno == EAGAIN || errno == EINTR);
        }
}

/* The last lines of a node's liid log that fit in size, for a failure's
 * message: what the node did last is usually why it did not get there. */
static void log_tail(const struct h_fleet_node *node, char *buf, size_t size)
{
        char path[700];
        snprintf(path, sizeof path, "%s/liid.log", node->env.dir);
        buf[0] = '\0';
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        if (fseek(f, -(long)(size - 1), SEEK_END) < 0)
                rewind(f);
        size_t n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* From the first whole line on. */
        char *nl = n == size - 1 ? strchr(buf, '\n') : NULL;
        if (nl)
                memmove(buf, nl + 1, strlen(nl + 1) + 1);
}

/* Waits until pred holds on every node of which[] (n entries). Each
 * status is asked for again when the node's follower wakes, and every
 * second regardless (a change may come without an event, e.g. the health
 * of a running instance). */
static json_object *wait_nodes(struct h_fleet *f, const size_t *which, size_t n, h_pred pred,
                               void *userdata, int timeout_ms, const char *what)
{
        uint64_t deadline = now_monotonic_usec() + (uint64_t)timeout_ms * USEC_PER_MSEC;
        int fds[H_FLEET_MAX];
        bool done[H_FLEET_MAX] = {false}, look[H_FLEET_MAX];
        json_object *last[H_FLEET_MAX] = {NULL};
        json_object *result = NULL;
        /* Subscribe first, then look: nothing falls in between. */
        for (size_t k = 0; k < n; k++) {
                fds[k] = follow_open(&f->node[which[k]]);
                look[k] = true;
        }
        for (;;) {
                size_t remaining = 0;
                for (size_t k = 0; k < n; k++) {
                        if (done[k] || !look[k]) {
                                remaining += !done[k];
                                continue;
                        }
                        look[k] = false;
                        if (fds[k] < 0)
                                fds[k] = follow_open(&f->node[which[k]]);
                        json_object *st = NULL;
                        long code = h_fleet_get(f, which[k], "/v1/status", &st);
                        if (code == 200 && st && pred(st, userdata)) {
                                done[k] = true;
                                if (n == 1)
                                        result = st;
                                else
                                        json_object_put(st);
                                continue;
                        }
                        remaining++;
                        if (st) {
                                json_object_put(last[k]);
                                last[k] = st;
                        }
                }
                uint64_t now = now_monotonic_usec();
                if (remaining == 0 || now >= deadline)
                        break;
                struct pollfd pfd[H_FLEET_MAX];
                for (size_t k = 0; k < n; k++)
                        pfd[k] = (struct pollfd){.fd = done[k] ? -1 : fds[k], .events = POLLIN};
                uint64_t wait_ms = (deadline - now) / USEC_PER_MSEC + 1;
                int r = poll(pfd, n, (int)(wait_ms < 1000 ? wait_ms : 1000));
                if (r < 0 && errno != EINTR)
                        h_fail_now("poll: %s", strerror(errno));
                for (size_t k = 0; k < n; k++) {
                        if (r == 0)
                                look[k] = true;
                        else if (pfd[k].fd >= 0 && pfd[k].revents) {
                                look[k] = true;
                                if (!follow_drain(fds[k])) {
                                        close(fds[k]);
                                        fds[k] = -1;
                                }
                        }
                }
        }
        /* Check's messages are short: the details go to stderr (which
         * ctest --output-on-failure shows), the names into the message. */
        char late[128] = "";
        size_t off = 0;
        for (size_t k = 0; k < n; k++) {
                if (fds[k] >= 0)
                        close(fds[k]);
                if (!done[k]) {
                        const struct h_fleet_node *node = &f->node[which[k]];
                        char tail[1500];
                        log_tail(node, tail, sizeof tail);
                        fprintf(stderr,
                                "%s: waited for %s; last status: %s\n%s: the end of its log:\n%s\n",
                                node->name, what,
                                last[k] ? json_object_to_json_string(last[k]) : "(none)",
                                node->name, tail);
                        if (off < sizeof late)
                                off += (size_t)snprintf(late + off, sizeof late - off, " %s",
                                                        node->name);
                }
                json_object_put(last[k]);
        }
        if (late[0]) {
                /* A fleet stuck is seldom one node's doing: the others'
                 * logs and the keys in etcd say who holds what. */
                for (size_t i = 0; i < f->n; i++) {
                        bool waited = false;
                        for (size_t k = 0; k < n; k++)
                                waited |= which[k] == i && !done[k];
                        if (waited)
                                continue;
                        char tail[1000];
                        log_tail(&f->node[i], tail, sizeof tail);
                        fprintf(stderr, "%s: the end of its log:\n%s\n", f->node[i].name, tail);
                }
                char keys[80];
                snprintf(keys, sizeof keys, "%s/", f->prefix);
                h_etcd_dump(&f->etcd, keys, stderr);
                h_fail_now("timed out after %d ms waiting for %s on%s (their status and log are on "
                           "stderr)",
                           timeout_ms, what, late);
        }
        return result;
}

json_object *h_fleet_wait(struct h_fleet *f, size_t i, h_pred pred, void *userdata, int timeout_ms,
                          const char *what)
{
        return wait_nodes(f, &i, 1, pred, userdata, timeout_ms, what);
}

void h_fleet_wait_all(struct h_fleet *f, h_pred pred, void *userdata, int timeout_ms,
                      const char *what)
{
        size_t which[H_FLEET_MAX];
        for (size_t i = 0; i < f->n; i++)
                which[i] = i;
        json_object_put(wait_nodes(f, which, f->n, pred, userdata, timeout_ms, what));
}

static json_object *service_of(json_object *status, const char *service)
{
        json_object *services = h_json_path(status, "services");
        json_object *svc = NULL;
        if (!services || !json_object_object_get_ex(services, service, &svc))
                return NULL;
        return svc;
}

static bool settled(json_object *svc)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "running") == 0 &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

bool h_fleet_runs_generation(json_object *status, void *want)
{
        const struct h_fleet_want *w = want;
        json_object *svc = service_of(status, w->service);
        return svc && settled(svc) && h_json_int(svc, "current.generation") == w->generation;
}

bool h_fleet_runs_serial(json_object *status, void *want)
{
        const struct h_fleet_want *w = want;
        json_object *svc = service_of(status, w->service);
        if (!svc || !settled(svc) || h_json_int(status, "source.serial") < w->serial)
                return false;
        const char *have = h_json_str(svc, "current.spec_sha256");
        const char *desired = h_json_str(svc, "desired.spec_sha256");
        return have && desired && strcmp(have, desired) == 0;
}

char *h_fleet_instance_version(struct h_fleet *f, size_t i, const char *service)
{
        char path[256];
        snprintf(path, sizeof path, "/v1/services/%s", service);
        json_object *svc = NULL;
        long code = h_fleet_get(f, i, path, &svc);
        long long port = code == 200 ? h_json_int(svc, "current.port") : -1;
        json_object_put(svc);
        if (port <= 0)
                return NULL;
        char *body = NULL;
        if (h_http_get((int)port, "/version", &body) != 200) {
                free(body);
                return NULL;
        }
        return body;
}

unsigned h_fleet_bucket(const char *node, const char *service, const char *id)
{
        char *msg = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&msg, &len);
        if (!f)
                h_fail_now("open_memstream: %s", strerror(errno));
        fprintf(f, "%s%c%s%c%s", node, '\0', service, '\0', id);
        fclose(f);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        if (!EVP_Digest(msg, len, md, &md_len, EVP_sha256(), NULL) || md_len < 8)
                h_fail_now("SHA-256 failed");
        free(msg);
        uint64_t v = 0;
        for (int k = 0; k < 8; k++)
                v = v << 8 | md[k];
        return (unsigned)(v % 10000);
}
