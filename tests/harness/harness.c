/* The integration-test harness; see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#define MINISIGN "minisign"

void h_fail_now(const char *fmt, ...)
{
        char buf[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        ck_abort_msg("%s", buf);
        abort();
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        if (!f)
                h_fail_now("cannot write %s: %s", path, strerror(errno));
        fputs(text, f);
        fclose(f);
}

/* Runs argv with extra environment entries; captures stdout when ret_out is
 * given, and sends stderr to the file err_path (truncated) when that is
 * given. Returns the exit code (128+signal when killed). */
static int run_to(char *const *argv, char *const *extra_env, char **ret_out, const char *err_path)
{
        int pipefd[2] = {-1, -1};
        if (ret_out && pipe2(pipefd, O_CLOEXEC) < 0)
                h_fail_now("pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
                h_fail_now("fork: %s", strerror(errno));
        if (pid == 0) {
                if (ret_out)
                        dup2(pipefd[1], STDOUT_FILENO);
                if (err_path) {
                        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                                _exit(127);
                }
                for (char *const *e = extra_env; e && *e; e++)
                        putenv(*e);
                execvp(argv[0], argv);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        char *out = NULL;
        size_t len = 0;
        if (ret_out) {
                close(pipefd[1]);
                FILE *mem = open_memstream(&out, &len);
                char buf[4096];
                ssize_t n;
                while ((n = read(pipefd[0], buf, sizeof buf)) > 0)
                        fwrite(buf, 1, (size_t)n, mem);
                fclose(mem);
                close(pipefd[0]);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        h_fail_now("waitpid: %s", strerror(errno));
        if (ret_out)
                *ret_out = out;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run(char *const *argv, char *const *extra_env, char **ret_out)
{
        return run_to(argv, extra_env, ret_out, NULL);
}

static void run_ok(char *const *argv)
{
        int rc = run(argv, NULL, NULL);
        if (rc != 0)
                h_fail_now("%s exited with %d", argv[0], rc);
}

/* A datagram socket that receives sd_notify() messages: the harness learns
 * that the manager and liid are ready from them, instead of guessing with
 * sleeps. */
int h_notify_open(const char *path)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof sa.sun_path)
                h_fail_now("%s: too long for a Unix socket's path", path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                h_fail_now("notify socket %s: %s", path, strerror(errno));
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
        return fd;
}

void h_notify_wait_ready(int fd, pid_t pid, const char *what, uint64_t deadline_usec)
{
        for (;;) {
                uint64_t now = now_monotonic_usec();
                if (now >= deadline_usec)
                        h_fail_now("%s did not report READY=1 in time", what);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, (int)((deadline_usec - now) / 1000) + 1);
                if (r < 0 && errno != EINTR)
                        h_fail_now("poll: %s", strerror(errno));
                int status;
                if (waitpid(pid, &status, WNOHANG) == pid)
                        h_fail_now("%s exited (status %d) before it was ready", what, status);
                if (r <= 0)
                        continue;
                char buf[4096];
                ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                if (strstr(buf, "READY=1"))
                        return;
        }
}

static void make_key(const char *dir, const char *name)
{
        char pub[700], sec[700];
        snprintf(pub, sizeof pub, "%s/%s.pub", dir, name);
        snprintf(sec, sizeof sec, "%s/../%s.key", dir, name);
        char *argv[] = {MINISIGN, "-G", "-W", "-f", "-p", pub, "-s", sec, NULL};
        char *out = NULL;
        int rc = run(argv, NULL, &out);
        free(out);
        if (rc != 0)
                h_fail_now("minisign -G failed (%d)", rc);
}

static void sign(struct h_env *env, const char *key, const char *file);
static void write_config(struct h_env *env);

void h_sign_artifact(struct h_env *env, const char *path)
{
        sign(env, "artifact", path);
}

void h_serve_over_http(struct h_env *env, bool https, const char *poll_interval,
                       const char *extra_locations)
{
        char dir[700];
        snprintf(dir, sizeof dir, "%s/nginx", env->dir);
        h_nginx_start(&env->nginx, dir, env->www, extra_locations);
        if (https)
                snprintf(env->source_url, sizeof env->source_url,
                         "https://localhost:%d/desired.json", env->nginx.https_port);
        else
                snprintf(env->source_url, sizeof env->source_url,
                         "http://127.0.0.1:%d/desired.json", env->nginx.http_port);
        snprintf(env->poll_interval, sizeof env->poll_interval, "%s", poll_interval);
        snprintf(env->ca_file, sizeof env->ca_file, "%s", https ? env->nginx.ca_file : "");
        write_config(env);
}

static void sign(struct h_env *env, const char *key, const char *file)
{
        char sec[700];
        snprintf(sec, sizeof sec, "%s/keys/%s.key", env->dir, key);
        char *argv[] = {MINISIGN, "-S", "-s", sec, "-m", (char *)file, "-t", "lii test", NULL};
        char *out = NULL;
        int rc = run(argv, NULL, &out);
        free(out);
        if (rc != 0)
                h_fail_now("minisign -S %s failed (%d)", file, rc);
}

/* liid's configuration, from what env says. */
static void write_config(struct h_env *env)
{
        char conf[8192];
        snprintf(conf, sizeof conf,
                 "; written by the lii test harness\n"
                 "[source]\nurl = %s\npoll_interval = %s\nca_file = %s\n%s%s%s"
                 "[trust]\ndesired_keys = %s/keys/desired.d\nartifact_keys = %s/keys/artifact.d\n"
                 "[node]\nname = itest\n"
                 "[paths]\nstate_dir = %s\nsocket = %s\n"
                 "[rollout]\nkeep_revisions = 1\nmax_parallel = %u\n"
                 "[systemd]\nbus = %s\n"
                 "[api]\nread_group = %s\nadmin_group = %s\n"
                 "[log]\nlevel = debug\n%s",
                 env->source_url, env->poll_interval, env->ca_file,
                 env->fetch_timeout[0] ? "fetch_timeout = " : "", env->fetch_timeout,
                 env->fetch_timeout[0] ? "\n" : "", env->dir, env->dir, env->state_dir, env->socket,
                 env->max_parallel, env->bus, env->read_group, env->admin_group, env->config_extra);
        write_file(env->config, conf);
}

void h_set_api_groups(struct h_env *env, const char *read_group, const char *admin_group)
{
        snprintf(env->read_group, sizeof env->read_group, "%s", read_group ? read_group : "");
        snprintf(env->admin_group, sizeof env->admin_group, "%s", admin_group ? admin_group : "");
        write_config(env);
}

void h_set_state_dir(struct h_env *env, const char *dir)
{
        snprintf(env->state_dir, sizeof env->state_dir, "%s", dir);
        write_config(env);
}

void h_set_max_parallel(struct h_env *env, unsigned n)
{
        env->max_parallel = n;
        write_config(env);
}

void h_set_config_extra(struct h_env *env, const char *text)
{
        snprintf(env->config_extra, sizeof env->config_extra, "%s", text);
        write_config(env);
}

void h_set_source(struct h_env *env, const char *url, const char *poll_interval)
{
        snprintf(env->source_url, sizeof env->source_url, "%s", url);
        snprintf(env->poll_interval, sizeof env->poll_interval, "%s", poll_interval);
        write_config(env);
}

void h_set_fetch_timeout(struct h_env *env, const char *timeout)
{
        snprintf(env->fetch_timeout, sizeof env->fetch_timeout, "%s", timeout);
        write_config(env);
}

/* The folders, keys, configuration and artifacts of a test. */
static void prepare(struct h_env *env, const char *name)
{
        memset(env, 0, sizeof *env);
        /* Instances run with PrivateTmp=yes, so nothing they use may live in
         * /tmp; and a DynamicUser must be able to walk down to the store. */
        snprintf(env->dir, sizeof env->dir, "%s/itest/%s.%d", LII_BUILD_DIR, name, getpid());
        char *rm[] = {"rm", "-rf", env->dir, NULL};
        run_ok(rm);
        char *mk[] = {"mkdir", "-p", "-m", "0755", env->dir, NULL};
        run_ok(mk);
        chmod(LII_BUILD_DIR "/itest", 0755);
        snprintf(env->runtime, sizeof env->runtime, "%s/runtime", env->dir);
        snprintf(env->www, sizeof env->www, "%s/www", env->dir);
        snprintf(env->state_dir, sizeof env->state_dir, "%s/state", env->dir);
        snprintf(env->config, sizeof env->config, "%s/liid.conf", env->dir);
        /* Unix socket paths are short; the build tree may be deep. */
        snprintf(env->socket, sizeof env->socket, "/run/lii-itest.%d.sock", getpid());
        snprintf(env->bus, sizeof env->bus, "unix:path=%s/systemd/private", env->runtime);
        mkdir(env->runtime, 0700);
        mkdir(env->www, 0755);
        char keys[600];
        snprintf(keys, sizeof keys, "%s/keys", env->dir);
        mkdir(keys, 0700);
        char desired_d[700], artifact_d[700];
        snprintf(desired_d, sizeof desired_d, "%s/desired.d", keys);
        snprintf(artifact_d, sizeof artifact_d, "%s/artifact.d", keys);
        mkdir(desired_d, 0755);
        mkdir(artifact_d, 0755);
        make_key(desired_d, "desired");
        make_key(artifact_d, "artifact");

        snprintf(env->source_url, sizeof env->source_url, "file://%s/desired.json", env->www);
        snprintf(env->poll_interval, sizeof env->poll_interval, "30s");
        env->max_parallel = 4;
        write_config(env);

        /* The artifacts, published beside the document and signed. */
        for (int v = 1; v <= 3; v++) {
                char src[700], dst[700];
                snprintf(src, sizeof src, "%s/sample/hello-%d.tar.gz", LII_BUILD_DIR, v);
                snprintf(dst, sizeof dst, "%s/hello-%d.tar.gz", env->www, v);
                char *cp[] = {"cp", src, dst, NULL};
                run_ok(cp);
                sign(env, "artifact", dst);
        }
}

/* The private manager, as the design brief describes it. */
static void start_manager(struct h_env *env)
{
        char notify[700];
        snprintf(notify, sizeof notify, "%s/manager.notify", env->dir);
        int nfd = h_notify_open(notify);
        pid_t pid = fork();
        if (pid < 0)
                h_fail_now("fork: %s", strerror(errno));
        if (pid == 0) {
                /* A failed test ends its process without teardown; the
                 * manager (which then stops its units) must go with it. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                setsid();
                char cgroup[64];
                snprintf(cgroup, sizeof cgroup, "lii-itest-%d", (int)getppid());
                h_cgroup_enter(cgroup);
                char config_home[600];
                snprintf(config_home, sizeof config_home, "%s/config", env->dir);
                setenv("NOTIFY_SOCKET", notify, 1);
                execl(LII_SOURCE_DIR "/tests/private-manager.sh", "private-manager.sh",
                      env->runtime, config_home, "--log-target=console", "--log-level=warning",
                      (char *)NULL);
                _exit(127);
        }
        env->manager_pid = pid;
        h_notify_wait_ready(nfd, pid, "the private systemd manager",
                            now_monotonic_usec() + 15 * USEC_PER_SEC);
        close(nfd);
}

void h_setup(struct h_env *env, const char *name)
{
        prepare(env, name);
        start_manager(env);
}

void h_setup_tmpfs_state(struct h_env *env, const char *name, unsigned long long size)
{
        prepare(env, name);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                h_fail_now("a mount namespace of its own: %s", strerror(errno));
        /* Not noexec: the instances run from the store below it. The
         * manager must be started after this, so that its own namespace is
         * a copy with the tmpfs in it. */
        char opts[64];
        snprintf(opts, sizeof opts, "size=%llu,mode=0755", size);
        mkdir(env->state_dir, 0755);
        if (mount("tmpfs", env->state_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                h_fail_now("mount tmpfs on %s: %s", env->state_dir, strerror(errno));
        env->state_tmpfs = true;
        start_manager(env);
}

void h_start_liid(struct h_env *env)
{
        char notify[700];
        snprintf(notify, sizeof notify, "%s/liid.notify", env->dir);
        int nfd = h_notify_open(notify);
        char log[700];
        snprintf(log, sizeof log, "%s/liid.log", env->dir);
        pid_t pid = fork();
        if (pid < 0)
                h_fail_now("fork: %s", strerror(errno));
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                dup2(fd, STDERR_FILENO);
                setenv("NOTIFY_SOCKET", notify, 1);
                unsetenv("JOURNAL_STREAM");
                execl(LII_BUILD_DIR "/liid", "liid", "-c", env->config, (char *)NULL);
                _exit(127);
        }
        env->liid_pid = pid;
        h_notify_wait_ready(nfd, pid, "liid", now_monotonic_usec() + 15 * USEC_PER_SEC);
        close(nfd);
}

void h_kill_liid(struct h_env *env, int sig)
{
        if (env->liid_pid <= 0)
                return;
        kill(env->liid_pid, sig);
        int status;
        waitpid(env->liid_pid, &status, 0);
        env->liid_pid = 0;
        if (sig == SIGTERM && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
                h_fail_now("liid did not exit cleanly on SIGTERM (status %d)", status);
}

static void remove_public_bin(void);

void h_teardown(struct h_env *env)
{
        h_kill_liid(env, SIGTERM);
        if (env->manager_pid > 0) {
                /* The manager stops every unit it runs as it exits. */
                kill(env->manager_pid, SIGTERM);
                int status;
                waitpid(env->manager_pid, &status, 0);
                env->manager_pid = 0;
                char cgroup[64];
                snprintf(cgroup, sizeof cgroup, "lii-itest-%d", (int)getpid());
                h_cgroup_remove(cgroup);
        }
        h_nginx_stop(&env->nginx);
        unlink(env->socket);
        remove_public_bin();
        if (env->state_tmpfs && umount2(env->state_dir, MNT_DETACH) < 0)
                fprintf(stderr, "umount %s: %s\n", env->state_dir, strerror(errno));
        if (!getenv("LII_KEEP_TEST_DIR")) {
                char *rm[] = {"rm", "-rf", env->dir, NULL};
                run(rm, NULL, NULL);
        }
}

static void sha256_file(const char *path, char out[65], long long *ret_size)
{
        FILE *f = fopen(path, "re");
        if (!f)
                h_fail_now("%s: %s", path, strerror(errno));
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        char buf[65536];
        size_t n;
        long long size = 0;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
                EVP_DigestUpdate(ctx, buf, n);
                size += (long long)n;
        }
        fclose(f);
        uint8_t md[32];
        EVP_DigestFinal_ex(ctx, md, NULL);
        EVP_MD_CTX_free(ctx);
        hex_encode(md, 32, out);
        *ret_size = size;
}

void h_publish_raw(struct h_env *env, const char *doc)
{
        char path[700], tmp[720];
        snprintf(path, sizeof path, "%s/desired.json", env->www);
        snprintf(tmp, sizeof tmp, "%s/.desired.json.new", env->www);
        write_file(tmp, doc);
        /* Sign first, then move both into place: liid sees a document and
         * signature that belong together. */
        sign(env, "desired", tmp);
        char sig_tmp[740], sig[720];
        snprintf(sig_tmp, sizeof sig_tmp, "%s.minisig", tmp);
        snprintf(sig, sizeof sig, "%s.minisig", path);
        /* nginx's ETag is the file's mtime in seconds and its size: two
         * documents of one size written within a second would look the
         * same to a conditional GET. Each publication gets its own mtime,
         * as files published a while apart have. */
        static unsigned publications;
        struct timespec times[2] = {
            {.tv_sec = 1700000000 + (time_t)++publications},
            {.tv_sec = 1700000000 + (time_t)publications},
        };
        if (utimensat(AT_FDCWD, tmp, times, 0) < 0)
                h_fail_now("utimensat %s: %s", tmp, strerror(errno));
        if (rename(sig_tmp, sig) < 0 || rename(tmp, path) < 0)
                h_fail_now("publish: %s", strerror(errno));
}

unsigned h_publish(struct h_env *env, const struct h_service *svcs, size_t n, unsigned serial)
{
        env->serial = serial ? serial : env->serial + 1;
        char *doc = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&doc, &len);
        fprintf(f, "{\"format\":\"lii.desired/1\",\"serial\":%u,\"services\":{", env->serial);
        for (size_t i = 0; i < n; i++) {
                char file[256], art[1024], sha[65];
                long long size;
                if (svcs[i].artifact_file)
                        snprintf(file, sizeof file, "%s", svcs[i].artifact_file);
                else
                        snprintf(file, sizeof file, "hello-%d.tar.gz", svcs[i].artifact);
                snprintf(art, sizeof art, "%s/%s", env->www, file);
                sha256_file(art, sha, &size);
                char url[1024];
                snprintf(url, sizeof url, "%s%s%s", env->artifact_base,
                         env->artifact_base[0] ? "/" : "", file);
                if (svcs[i].size)
                        size = svcs[i].size;
                fprintf(f,
                        "%s\"%s\":{\"artifact\":{\"url\":\"%s\",\"sha256\":\"%s\","
                        "\"size\":%lld},"
                        "\"exec\":[\"%s\",\"--version-name\",\"v%d\"%s],"
                        "\"env\":%s,"
                        "\"health\":%s,\"stop_timeout\":\"5s\"",
                        i ? "," : "", svcs[i].name, url, svcs[i].sha256 ? svcs[i].sha256 : sha,
                        size, svcs[i].exec ? svcs[i].exec : "bin/hello", svcs[i].artifact,
                        svcs[i].extra_args ? svcs[i].extra_args : "",
                        svcs[i].env ? svcs[i].env : "{\"GREETING\":\"hi from ${LII_SERVICE}\"}",
                        svcs[i].health ? svcs[i].health
                                       : "{\"http\":\"http://127.0.0.1:${PORT}/healthz\","
                                         "\"interval\":\"100ms\",\"timeout\":\"1s\",\"passes\":2,"
                                         "\"deadline\":\"10s\"}");
                if (svcs[i].ready)
                        fprintf(f, ",\"ready\":\"%s\"", svcs[i].ready);
                if (svcs[i].port)
                        fprintf(f, ",\"port\":%d", svcs[i].port);
                if (svcs[i].sandbox)
                        fprintf(f, ",\"sandbox\":\"%s\"", svcs[i].sandbox);
                if (svcs[i].rollout)
                        fprintf(f, ",\"rollout\":%s", svcs[i].rollout);
                if (svcs[i].listen)
                        fprintf(f, ",\"listen\":%s", svcs[i].listen);
                fputc('}', f);
        }
        fprintf(f, "}}\n");
        fclose(f);
        h_publish_raw(env, doc);
        free(doc);
        return env->serial;
}

struct buffer {
        char *data;
        size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct buffer *b = userdata;
        size_t n = size * nmemb;
        char *nd = realloc(b->data, b->len + n + 1);
        if (!nd)
                return 0;
        memcpy(nd + b->len, ptr, n);
        b->data = nd;
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static long http_request(const char *unix_socket, const char *method, const char *url,
                         char **ret_body)
{
        CURL *c = curl_easy_init();
        struct buffer b = {0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(c, CURLOPT_POST, 1L);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
        if (unix_socket)
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_socket);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        long code = 0;
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        if (ret_body)
                *ret_body = b.data ? b.data : strdup("");
        else
                free(b.data);
        return code;
}

static long api_request(struct h_env *env, const char *method, const char *path, json_object **ret)
{
        char url[512];
        snprintf(url, sizeof url, "http://lii%s", path);
        char *body = NULL;
        long code = http_request(env->socket, method, url, &body);
        *ret = code ? json_tokener_parse(body) : NULL;
        free(body);
        return code;
}

long h_api_get(struct h_env *env, const char *path, json_object **ret)
{
        return api_request(env, "GET", path, ret);
}

long h_api_get_text(struct h_env *env, const char *path, char **ret)
{
        char url[512];
        snprintf(url, sizeof url, "http://lii%s", path);
        return http_request(env->socket, "GET", url, ret);
}

long long h_metric(struct h_env *env, const char *series)
{
        char *text = NULL;
        long code = h_api_get_text(env, "/v1/metrics", &text);
        ck_assert_msg(code == 200, "GET /v1/metrics: HTTP %ld", code);
        _cleanup_free_ char *needle = xasprintf("\n%s ", series);
        const char *at = strstr(text, needle);
        long long v = at ? strtoll(at + strlen(needle), NULL, 10) : -1;
        free(text);
        return v;
}

long h_api_post(struct h_env *env, const char *path, json_object **ret)
{
        return api_request(env, "POST", path, ret);
}

static char public_bin[64];

static void remove_public_bin(void)
{
        char *rm[] = {"rm", "-rf", public_bin, NULL};
        if (public_bin[0])
                run(rm, NULL, NULL);
}

const char *h_public_liictl(void)
{
        static char path[128];
        if (public_bin[0])
                return path;
        snprintf(public_bin, sizeof public_bin, "/run/lii-itest-bin.%d", getpid());
        snprintf(path, sizeof path, "%s/liictl", public_bin);
        char *mk[] = {"mkdir", "-p", "-m", "0755", public_bin, NULL};
        run_ok(mk);
        char *cp[] = {"cp", LII_BUILD_DIR "/liictl", path, NULL};
        run_ok(cp);
        chmod(path, 0755);
        atexit(remove_public_bin);
        return path;
}

bool h_unit_active(struct h_env *env, const char *unit)
{
        const char *args[] = {"is-active", "--quiet", unit, NULL};
        return h_systemctl(env, NULL, args) == 0;
}

void h_assert_answers(int port, const char *version)
{
        char *body = NULL;
        ck_assert_int_eq(h_http_get(port, "/version", &body), 200);
        char want[32];
        snprintf(want, sizeof want, "%s\n", version);
        ck_assert_str_eq(body, want);
        free(body);
}

long h_http_get(int port, const char *path, char **ret_body)
{
        char url[512];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
        return http_request(NULL, "GET", url, ret_body);
}

int h_liictl_err(struct h_env *env, char **ret_out, char **ret_err, const char *const *args)
{
        char *argv[32] = {LII_BUILD_DIR "/liictl", "-s", env->socket};
        size_t n = 3;
        for (; args && *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = (char *)*args;
        argv[n] = NULL;
        char err_path[700];
        snprintf(err_path, sizeof err_path, "%s/liictl.stderr", env->dir);
        char *out = NULL;
        int rc = run_to(argv, NULL, &out, ret_err ? err_path : NULL);
        if (ret_out)
                *ret_out = out;
        else
                free(out);
        if (ret_err) {
                FILE *f = fopen(err_path, "re");
                if (!f)
                        h_fail_now("%s: %s", err_path, strerror(errno));
                char *text = NULL;
                size_t len = 0;
                if (getdelim(&text, &len, '\0', f) < 0) {
                        free(text);
                        text = strdup("");
                }
                fclose(f);
                *ret_err = text;
        }
        return rc;
}

int h_liictl(struct h_env *env, char **ret_out, const char *const *args)
{
        return h_liictl_err(env, ret_out, NULL, args);
}

int h_systemctl(struct h_env *env, char **ret_out, const char *const *args)
{
        char *argv[32] = {"systemctl", "--user", "--no-pager"};
        size_t n = 3;
        for (; args && *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = (char *)*args;
        argv[n] = NULL;
        char xdg[700];
        snprintf(xdg, sizeof xdg, "XDG_RUNTIME_DIR=%s", env->runtime);
        char *extra[] = {xdg, NULL};
        char *out = NULL;
        int rc = run(argv, extra, &out);
        if (ret_out)
                *ret_out = out;
        else
                free(out);
        return rc;
}

/* liid has no event stream yet, so waiting means asking again; 20 ms apart
 * keeps the wait short without loading the daemon. */
static json_object *wait_for(struct h_env *env, const char *path, h_pred pred, void *userdata,
                             int timeout_ms, const char *what)
{
        uint64_t deadline = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;
        json_object *last = NULL;
        for (;;) {
                json_object *o = NULL;
                long code = h_api_get(env, path, &o);
                if (code == 200 && o && pred(o, userdata)) {
                        json_object_put(last);
                        return o;
                }
                if (o) {
                        json_object_put(last);
                        last = o;
                }
                if (now_monotonic_usec() >= deadline)
                        h_fail_now("timed out after %d ms waiting for %s; last answer: %s",
                                   timeout_ms, what,
                                   last ? json_object_to_json_string(last) : "(none)");
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

json_object *h_wait_service(struct h_env *env, const char *service, h_pred pred, void *userdata,
                            int timeout_ms, const char *what)
{
        char path[256];
        snprintf(path, sizeof path, "/v1/services/%s", service);
        return wait_for(env, path, pred, userdata, timeout_ms, what);
}

json_object *h_wait_status(struct h_env *env, h_pred pred, void *userdata, int timeout_ms,
                           const char *what)
{
        return wait_for(env, "/v1/status", pred, userdata, timeout_ms, what);
}

json_object *h_json_path(json_object *o, const char *path)
{
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        char *save = NULL;
        for (char *part = strtok_r(buf, ".", &save); part && o; part = strtok_r(NULL, ".", &save))
                if (!json_object_object_get_ex(o, part, &o))
                        return NULL;
        return o;
}

const char *h_json_str(json_object *o, const char *path)
{
        json_object *v = h_json_path(o, path);
        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

long long h_json_int(json_object *o, const char *path)
{
        json_object *v = h_json_path(o, path);
        return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

bool h_runs_generation(json_object *svc, void *gen)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "running") == 0 &&
               h_json_int(svc, "current.generation") == *(long long *)gen &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

bool h_source_error_mentions(json_object *status, void *text)
{
        const char *error = h_json_str(status, "source.error");
        return error && strstr(error, text);
}

json_object *h_wait_generation(struct h_env *env, const char *service, long long gen)
{
        char what[128];
        snprintf(what, sizeof what, "%s to run generation %lld", service, gen);
        return h_wait_service(env, service, h_runs_generation, &gen, 30000, what);
}

int h_run_quiet(const char *const *argv)
{
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int h_groups_ensure(const char *const *names, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const char *add[] = {"groupadd", "-f", names[i], NULL};
                if (h_run_quiet(add) != 0)
                        return -1;
        }
        return 0;
}

void h_groups_remove(const char *const *names, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const char *del[] = {"groupdel", names[i], NULL};
                if (getgrnam(names[i]) && h_run_quiet(del) != 0)
                        fprintf(stderr, "could not remove the test group %s\n", names[i]);
        }
}

int h_run_suite(Suite *s)
{
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int h_main(Suite *s)
{
        if (geteuid() != 0) {
                fprintf(stderr,
                        "integration tests need root (they run a private systemd manager)\n");
                return 77;
        }
        return h_run_suite(s);
}

/* A loopback port nothing has bound right now. */
int h_free_port(void)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd);
        return ntohs(sa.sin_port);
}
