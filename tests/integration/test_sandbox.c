/* What an instance sees of the host: its own artifact, read-only, at
 * /run/lii/artifact, wherever the store is (here under folders of mode
 * 0700, as under /root), and nothing of liid's: not another service's
 * artifact, not the state files, not the keys, the configuration or the
 * published document. The services run without the strict sandbox, as
 * root inside, so that only the mount namespace can keep them out; one
 * strict service shows that a dynamic user runs from such a store too. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "util.h"

static struct h_env env;

static void setup(void)
{
        h_setup(&env, "sandbox");
        char locked[700], state[800];
        snprintf(locked, sizeof locked, "%s/locked", env.dir);
        ck_assert_int_eq(mkdir(locked, 0700), 0);
        snprintf(state, sizeof state, "%s/state", locked);
        h_set_state_dir(&env, state);
        ck_assert_int_eq(chmod(env.dir, 0700), 0);
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

/* Whether the instance on port can read path; fails the test on anything
 * but a clear yes or no. */
static bool can_read(int port, const char *path)
{
        _cleanup_free_ char *url = xasprintf("/look%s", path);
        char *body = NULL;
        long code = h_http_get(port, url, &body);
        ck_assert_msg(code == 200 || code == 404, "GET %s: HTTP %ld", url, code);
        free(body);
        return code == 200;
}

START_TEST(instance_sees_its_artifact_and_nothing_of_liid)
{
        struct h_service svcs[] = {
            {.name = "hello", .artifact = 1, .sandbox = "none"},
            {.name = "other", .artifact = 2, .sandbox = "none"},
            {.name = "strict", .artifact = 3},
        };
        h_publish(&env, svcs, 3, 0);
        json_object *hello = h_wait_generation(&env, "hello", 1);
        json_object *other = h_wait_generation(&env, "other", 1);
        json_object *strict = h_wait_generation(&env, "strict", 1);
        int port = (int)h_json_int(hello, "current.port");
        int strict_port = (int)h_json_int(strict, "current.port");

        /* Both run from the artifact at its fixed place. */
        int ports[] = {port, strict_port};
        for (size_t i = 0; i < 2; i++) {
                char *where = NULL;
                ck_assert_int_eq(h_http_get(ports[i], "/where", &where), 200);
                ck_assert_str_eq(where, "/run/lii/artifact\n/run/lii/artifact\n");
                free(where);
                ck_assert(can_read(ports[i], "/run/lii/artifact/bin/hello"));
        }

        char paths[8][1400];
        snprintf(paths[0], sizeof paths[0], "%s/store/sha256/%s", env.state_dir,
                 h_json_str(other, "current.artifact_sha256"));
        snprintf(paths[1], sizeof paths[1], "%s/store/sha256/%s", env.state_dir,
                 h_json_str(hello, "current.artifact_sha256"));
        snprintf(paths[2], sizeof paths[2], "%s/store", env.state_dir);
        snprintf(paths[3], sizeof paths[3], "%s/state.json", env.state_dir);
        snprintf(paths[4], sizeof paths[4], "%s/state.d/hello.json", env.state_dir);
        snprintf(paths[5], sizeof paths[5], "%s/keys/desired.d/desired.pub", env.dir);
        snprintf(paths[6], sizeof paths[6], "%s", env.config);
        snprintf(paths[7], sizeof paths[7], "%s/desired.json", env.www);
        for (size_t i = 0; i < 8; i++) {
                /* Each path is there on the host: liid, as root, reads it. */
                struct stat st;
                ck_assert_msg(stat(paths[i], &st) == 0, "%s is missing on the host", paths[i]);
                ck_assert_msg(!can_read(port, paths[i]), "the instance can read %s", paths[i]);
                ck_assert_msg(!can_read(strict_port, paths[i]), "the strict instance can read %s",
                              paths[i]);
        }
        json_object_put(hello);
        json_object_put(other);
        json_object_put(strict);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("sandbox");
        TCase *tc = tcase_create("view");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, instance_sees_its_artifact_and_nothing_of_liid);
        suite_add_tcase(s, tc);
        return h_main(s);
}
