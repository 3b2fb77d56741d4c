/* Who may use liid's API, tested with real users and groups that this test
 * creates (and removes again): root does everything, read_group reads,
 * admin_group also changes, anyone else is refused, first by the socket's
 * mode and then, should the socket be opened up, by liid itself. The
 * socket's own file is checked too: its mode and group, and that liid does
 * not start on a symlink planted at its path. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define READ_GROUP  "liitest-read"
#define ADMIN_GROUP "liitest-admin"
#define READER      "liitest-reader"
#define ADMIN       "liitest-admin"
#define OUTSIDER    "liitest-outsider"

static struct h_env env;

static const struct h_service v1 = {.name = "hello", .artifact = 1};

/* Runs argv, as user unless that is NULL (then as root), and returns its
 * exit code (128+signal when killed); *ret_out (if not NULL) gets what it
 * wrote to stdout and stderr together. */
static int run_as(const char *user, char **ret_out, const char *const *argv)
{
        const char *full[32];
        size_t n = 0;
        char reuid[32], regid[32];
        if (user) {
                struct passwd *pw = getpwnam(user);
                ck_assert_msg(pw, "user %s does not exist", user);
                snprintf(reuid, sizeof reuid, "--reuid=%u", (unsigned)pw->pw_uid);
                snprintf(regid, sizeof regid, "--regid=%u", (unsigned)pw->pw_gid);
                full[n++] = "setpriv";
                full[n++] = reuid;
                full[n++] = regid;
                full[n++] = "--init-groups";
                full[n++] = "--";
        }
        for (; *argv && n < sizeof full / sizeof full[0] - 1; argv++)
                full[n++] = *argv;
        full[n] = NULL;

        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(pipefd[1], STDOUT_FILENO);
                dup2(pipefd[1], STDERR_FILENO);
                execvp(full[0], (char *const *)full);
                fprintf(stderr, "exec %s: %s\n", full[0], strerror(errno));
                _exit(127);
        }
        close(pipefd[1]);
        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        char buf[4096];
        ssize_t k;
        while ((k = read(pipefd[0], buf, sizeof buf)) > 0)
                fwrite(buf, 1, (size_t)k, mem);
        fclose(mem);
        close(pipefd[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                ck_assert_int_eq(errno, EINTR);
        if (ret_out)
                *ret_out = out;
        else
                free(out);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* liictl with the test's socket, as user; *ret_out gets stdout and stderr.
 * operand (a service) may be NULL. */
static int liictl_as(const char *user, char **ret_out, const char *command, const char *operand)
{
        const char *argv[] = {h_public_liictl(), "-s", env.socket, command, operand, NULL};
        return run_as(user, ret_out, argv);
}

/* liictl's exit code, and that it said why when it was refused. */
static int liictl_denied_check(const char *user, const char *command, const char *operand)
{
        char *out = NULL;
        int rc = liictl_as(user, &out, command, operand);
        if (rc == 4)
                ck_assert_msg(strcasestr(out, "permission denied"), "liictl %s said: %s", command,
                              out);
        free(out);
        return rc;
}

/* One request with curl, as user: returns the HTTP status, 0 when curl
 * could not even connect. *ret_body (if not NULL) gets the answer. */
static long curl_as(const char *user, const char *method, const char *path, char **ret_body)
{
        char url[256];
        snprintf(url, sizeof url, "http://lii%s", path);
        const char *argv[] = {"curl", "--unix-socket",  env.socket, "-s",   "-o", "-",
                              "-w",   "\n%{http_code}", "-X",       method, url,  NULL};
        char *out = NULL;
        run_as(user, &out, argv);
        /* The status is the last line; the body comes before it. */
        char *nl = strrchr(out, '\n');
        ck_assert_msg(nl, "curl printed no status: %s", out);
        long code = strtol(nl + 1, NULL, 10);
        *nl = '\0';
        if (ret_body)
                *ret_body = out;
        else
                free(out);
        return code;
}

static gid_t group_gid(const char *name)
{
        struct group *gr = getgrnam(name);
        ck_assert_msg(gr, "group %s does not exist", name);
        return gr->gr_gid;
}

/* Whether liid (asked as root) holds new rollouts. */
static bool paused(void)
{
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        bool p = json_object_get_boolean(h_json_path(st, "paused"));
        json_object_put(st);
        return p;
}

static bool runs_healthy(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "running") == 0 &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "auth");
        h_set_api_groups(&env, READ_GROUP, ADMIN_GROUP);
        h_start_liid(&env);
}

/* For the tests that start liid themselves. */
static void setup_no_liid(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "auth");
        h_set_api_groups(&env, READ_GROUP, ADMIN_GROUP);
}

/* A read_group that does not exist, and no admin_group. */
static void setup_unknown_group(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "auth");
        h_set_api_groups(&env, "liitest-nosuch", NULL);
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

static const char *const admin_posts[] = {
    "/v1/pause",
    "/v1/resume",
    "/v1/sync",
    "/v1/services/hello/rollback",
    "/v1/services/hello/replace",
};

START_TEST(root_does_everything)
{
        char *out = NULL;
        ck_assert_int_eq(liictl_as(NULL, &out, "status", NULL), 0);
        free(out);
        ck_assert_int_eq(curl_as(NULL, "GET", "/v1/status", NULL), 200);
        ck_assert_int_eq(curl_as(NULL, "POST", "/v1/pause", NULL), 200);
        ck_assert(paused());
        ck_assert_int_eq(curl_as(NULL, "POST", "/v1/resume", NULL), 200);
        ck_assert(!paused());
        ck_assert_int_eq(curl_as(NULL, "POST", "/v1/sync", NULL), 200);
        ck_assert_int_eq(liictl_as(NULL, NULL, "pause", NULL), 0);
        ck_assert(paused());
        ck_assert_int_eq(liictl_as(NULL, NULL, "resume", NULL), 0);
        ck_assert(!paused());
}
END_TEST

START_TEST(reader_reads_only)
{
        h_publish(&env, &v1, 1, 0);
        json_object_put(h_wait_service(&env, "hello", runs_healthy, NULL, 30000, "hello to run"));

        char *out = NULL;
        ck_assert_int_eq(liictl_as(READER, &out, "status", NULL), 0);
        ck_assert_msg(strstr(out, "hello"), "the reader's status does not show hello: %s", out);
        free(out);
        ck_assert_int_eq(curl_as(READER, "GET", "/v1/status", NULL), 200);
        ck_assert_int_eq(curl_as(READER, "GET", "/v1/services/hello", NULL), 200);

        for (size_t i = 0; i < sizeof admin_posts / sizeof admin_posts[0]; i++) {
                char *body = NULL;
                long code = curl_as(READER, "POST", admin_posts[i], &body);
                ck_assert_msg(code == 403, "POST %s as a reader: %ld %s", admin_posts[i], code,
                              body);
                json_object *doc = json_tokener_parse(body);
                ck_assert_str_eq(h_json_str(doc, "error.code"), "forbidden");
                json_object_put(doc);
                free(body);
        }
        ck_assert_int_eq(liictl_denied_check(READER, "pause", NULL), 4);
        ck_assert_int_eq(liictl_denied_check(READER, "rollback", "hello"), 4);
        ck_assert_int_eq(liictl_denied_check(READER, "replace", "hello"), 4);
        /* The refusals changed nothing. */
        ck_assert(!paused());
        json_object *svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        json_object_put(svc);
}
END_TEST

START_TEST(admin_changes)
{
        char *out = NULL;
        ck_assert_int_eq(liictl_as(ADMIN, &out, "status", NULL), 0);
        free(out);
        ck_assert_int_eq(curl_as(ADMIN, "GET", "/v1/status", NULL), 200);

        ck_assert_int_eq(curl_as(ADMIN, "POST", "/v1/pause", NULL), 200);
        ck_assert(paused());
        ck_assert_int_eq(curl_as(ADMIN, "POST", "/v1/resume", NULL), 200);
        ck_assert(!paused());
        ck_assert_int_eq(curl_as(ADMIN, "POST", "/v1/sync", NULL), 200);
        /* Past authorization, so the answer is about the service. */
        ck_assert_int_eq(curl_as(ADMIN, "POST", "/v1/services/hello/rollback", NULL), 404);

        ck_assert_int_eq(liictl_as(ADMIN, NULL, "pause", NULL), 0);
        ck_assert(paused());
        ck_assert_int_eq(liictl_as(ADMIN, NULL, "resume", NULL), 0);
        ck_assert(!paused());
        /* Refused for the missing service (1), not for the user (4). */
        ck_assert_int_eq(liictl_denied_check(ADMIN, "rollback", "hello"), 1);
}
END_TEST

START_TEST(outsider_refused)
{
        /* The socket's mode keeps the outsider from connecting at all. */
        ck_assert_int_eq(liictl_denied_check(OUTSIDER, "status", NULL), 4);
        ck_assert_int_eq(liictl_denied_check(OUTSIDER, "pause", NULL), 4);
        ck_assert_int_eq(curl_as(OUTSIDER, "GET", "/v1/status", NULL), 0);

        /* With the socket opened to everyone, liid itself still refuses,
         * every route alike, and reveals nothing (not even a 404). */
        ck_assert_int_eq(chmod(env.socket, 0666), 0);
        ck_assert_int_eq(liictl_denied_check(OUTSIDER, "status", NULL), 4);
        ck_assert_int_eq(liictl_denied_check(OUTSIDER, "pause", NULL), 4);
        char *body = NULL;
        ck_assert_int_eq(curl_as(OUTSIDER, "GET", "/v1/status", &body), 403);
        json_object *doc = json_tokener_parse(body);
        ck_assert_str_eq(h_json_str(doc, "error.code"), "forbidden");
        ck_assert_ptr_null(h_json_path(doc, "node"));
        json_object_put(doc);
        free(body);
        ck_assert_int_eq(curl_as(OUTSIDER, "GET", "/v1/services/hello", NULL), 403);
        ck_assert_int_eq(curl_as(OUTSIDER, "GET", "/v1/no-such-endpoint", NULL), 403);
        for (size_t i = 0; i < sizeof admin_posts / sizeof admin_posts[0]; i++)
                ck_assert_int_eq(curl_as(OUTSIDER, "POST", admin_posts[i], NULL), 403);
        ck_assert(!paused());
}
END_TEST

/* A read_group that does not exist grants nobody anything: liid fails
 * closed, and root alone may use the API. */
START_TEST(unknown_group_fails_closed)
{
        ck_assert_int_eq(chmod(env.socket, 0666), 0);
        ck_assert_int_eq(curl_as(READER, "GET", "/v1/status", NULL), 403);
        ck_assert_int_eq(curl_as(ADMIN, "POST", "/v1/pause", NULL), 403);
        ck_assert(!paused());
        ck_assert_int_eq(curl_as(NULL, "POST", "/v1/pause", NULL), 200);
        ck_assert(paused());
}
END_TEST

START_TEST(socket_mode_and_group)
{
        struct stat st;
        ck_assert_int_eq(lstat(env.socket, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0660);
        ck_assert_uint_eq(st.st_uid, 0);
        ck_assert_uint_eq(st.st_gid, group_gid(READ_GROUP));
}
END_TEST

/* Starts liid expecting it to give up: returns its exit code and its log. */
static int liid_fails(char **ret_log)
{
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(pipefd[1], STDERR_FILENO);
                unsetenv("NOTIFY_SOCKET");
                unsetenv("JOURNAL_STREAM");
                execl(LII_BUILD_DIR "/liid", "liid", "-c", env.config, (char *)NULL);
                _exit(127);
        }
        close(pipefd[1]);
        char *log = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&log, &len);
        /* liid's stderr closes when it exits; one that keeps running has
         * not refused. */
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long left = 15000 - ((now.tv_sec - start.tv_sec) * 1000 +
                                     (now.tv_nsec - start.tv_nsec) / 1000000);
                struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
                if (left <= 0 || poll(&p, 1, (int)left) == 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        fclose(mem);
                        ck_abort_msg("liid still runs after 15 s; its log: %s", log);
                }
                char buf[4096];
                ssize_t k = read(pipefd[0], buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                fwrite(buf, 1, (size_t)k, mem);
        }
        fclose(mem);
        close(pipefd[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                ck_assert_int_eq(errno, EINTR);
        *ret_log = log;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(symlink_refused)
{
        /* Whatever the link points at must come out untouched: liid runs
         * as root and would otherwise chmod or chown it. */
        char victim[700];
        snprintf(victim, sizeof victim, "%s/victim", env.dir);
        FILE *f = fopen(victim, "we");
        ck_assert_ptr_nonnull(f);
        fputs("not a socket\n", f);
        fclose(f);
        ck_assert_int_eq(chmod(victim, 0600), 0);
        ck_assert_int_eq(symlink(victim, env.socket), 0);

        char *log = NULL;
        int rc = liid_fails(&log);
        ck_assert_msg(rc != 0, "liid exited with 0 on a symlink; its log: %s", log);
        ck_assert_msg(strstr(log, env.socket) && strstr(log, "symbolic link"),
                      "liid's error does not name the socket and the symlink: %s", log);
        free(log);

        struct stat st;
        ck_assert_int_eq(lstat(env.socket, &st), 0);
        ck_assert(S_ISLNK(st.st_mode));
        ck_assert_int_eq(stat(victim, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq(st.st_gid, 0);
        ck_assert_int_eq(st.st_size, (off_t)strlen("not a socket\n"));
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("auth");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void);
        } tests[] = {
            {"root", root_does_everything, setup},
            {"reader", reader_reads_only, setup},
            {"admin", admin_changes, setup},
            {"outsider", outsider_refused, setup},
            {"unknown_group", unknown_group_fails_closed, setup_unknown_group},
            {"socket", socket_mode_and_group, setup},
            {"symlink", symlink_refused, setup_no_liid},
        };
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, tests[i].setup, teardown);
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

/* A user without a home or login shell in exactly these supplementary
 * groups ("" for none), whether or not an earlier run left it behind. */
static int user_ensure(const char *name, const char *groups)
{
        if (getpwnam(name)) {
                const char *mod[] = {"usermod", "-G", groups, name, NULL};
                return h_run_quiet(mod);
        }
        const char *add[] = {"useradd", "-M", "-N", "-s", "/usr/sbin/nologin",
                             name,      NULL, NULL, NULL};
        /* useradd takes no empty -G. */
        if (*groups) {
                add[6] = "-G";
                add[7] = groups;
        }
        return h_run_quiet(add);
}

static const char *const users[] = {READER, ADMIN, OUTSIDER};
static const char *const groups[] = {READ_GROUP, ADMIN_GROUP};

static void accounts_remove(void)
{
        for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
                const char *del[] = {"userdel", users[i], NULL};
                if (getpwnam(users[i]) && h_run_quiet(del) != 0)
                        fprintf(stderr, "test_auth: could not remove user %s\n", users[i]);
        }
        h_groups_remove(groups, sizeof groups / sizeof groups[0]);
}

static int accounts_create(void)
{
        if (h_groups_ensure(groups, sizeof groups / sizeof groups[0]) < 0)
                return -1;
        /* The socket is root:read_group 0660, so an admin who is to reach
         * it at all is in read_group too. */
        if (user_ensure(READER, READ_GROUP) != 0 ||
            user_ensure(ADMIN, READ_GROUP "," ADMIN_GROUP) != 0 || user_ensure(OUTSIDER, "") != 0)
                return -1;
        return 0;
}

int main(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "integration tests need root (they run a private systemd manager "
                                "and create users)\n");
                return 77;
        }
        if (accounts_create() < 0) {
                fprintf(stderr, "test_auth: cannot create the test users and groups\n");
                accounts_remove();
                return EXIT_FAILURE;
        }
        int rc = h_run_suite(suite());
        accounts_remove();
        return rc;
}
