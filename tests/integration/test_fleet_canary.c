/* A fleet rollout's percentage on one node, with a plain file source: the
 * node's bucket (node "itest", service "hello", rollout "hello-v2" puts it
 * in bucket 4790) keeps it on v1 below 47.91% and takes v2 from there on;
 * a service the node does not run yet is taken at once; the rollout block
 * alone never replaces an instance. What a user sees: the units that run,
 * status, the table, `liictl wait`, the events. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "canary");
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

static bool rollout_state_is(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "rollout.state");
        return state && strcmp(state, userdata) == 0;
}

static json_object *wait_rollout_state(const char *service, const char *state)
{
        return h_wait_service(&env, service, rollout_state_is, (void *)state, 30000, state);
}

static char *liictl(int *ret_exit, const char *a0, const char *a1, const char *a2, const char *a3)
{
        const char *args[] = {a0, a1, a2, a3, NULL};
        char *out = NULL;
        *ret_exit = h_liictl(&env, &out, args);
        return out;
}

static bool serial_is(json_object *status, void *userdata)
{
        return h_json_int(status, "source.serial") == *(long long *)userdata;
}

START_TEST(percentage_holds_the_node_back_until_its_bucket)
{
        const struct h_service v1 = {.name = "hello", .artifact = 1};
        h_publish(&env, &v1, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 1));

        /* 47%: bucket 4790 is outside. v1 keeps running, status says why. */
        const struct h_service v2_47 = {
            .name = "hello", .artifact = 2, .rollout = "{\"id\":\"hello-v2\",\"percent\":47}"};
        h_publish(&env, &v2_47, 1, 0);
        json_object *svc = wait_rollout_state("hello", "outside-canary");
        ck_assert_str_eq(h_json_str(svc, "rollout.id"), "hello-v2");
        ck_assert_int_eq(h_json_int(svc, "rollout.percent"), 47);
        ck_assert_int_eq(h_json_int(svc, "rollout.bucket"), 4790);
        ck_assert_str_eq(h_json_str(svc, "rollout.reason"), "outside canary 47%");
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        ck_assert_str_eq(h_json_str(svc, "state"), "running");
        ck_assert_ptr_null(h_json_path(svc, "next"));
        json_object_put(svc);

        int code;
        char *out = liictl(&code, "status", NULL, NULL, NULL);
        ck_assert_int_eq(code, 0);
        ck_assert_msg(strstr(out, "running (outside canary 47%)"), "%s", out);
        free(out);
        /* Held back is settled: wait does not wait for v2 here. */
        out = liictl(&code, "wait", "--timeout", "10s", "hello");
        ck_assert_msg(code == 0, "wait: exit %d: %s", code, out);
        free(out);
        out = liictl(&code, "events", NULL, NULL, NULL);
        ck_assert_msg(strstr(out, "rollout.held") && strstr(out, "outside canary 47%"), "%s", out);
        free(out);

        /* 47.91%: bucket 4790 is in; v2 replaces v1. */
        const struct h_service v2_in = {
            .name = "hello", .artifact = 2, .rollout = "{\"id\":\"hello-v2\",\"percent\":47.91}"};
        h_publish(&env, &v2_in, 1, 0);
        svc = h_wait_generation(&env, "hello", 2);
        json_object_put(svc);
        svc = wait_rollout_state("hello", "applied");
        ck_assert_str_eq(h_json_str(svc, "rollout.reason"), "runs the desired spec");
        json_object_put(svc);

        /* The rollout block alone never replaces: at 100% and with another
         * id the same spec stays on generation 2. */
        const struct h_service v2_all = {
            .name = "hello", .artifact = 2, .rollout = "{\"id\":\"hello-v2b\",\"percent\":100}"};
        long long serial = h_publish(&env, &v2_all, 1, 0);
        json_object *status = h_wait_status(&env, serial_is, &serial, 30000, "serial accepted");
        ck_assert_int_eq(h_json_int(status, "services.hello.current.generation"), 2);
        json_object_put(status);
        svc = wait_rollout_state("hello", "applied");
        ck_assert_str_eq(h_json_str(svc, "rollout.id"), "hello-v2b");
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 2);
        json_object_put(svc);
}
END_TEST

/* A node that runs nothing of a service has nothing to keep: even at 0%
 * it takes the spec; the next spec at 0% is then held back. */
START_TEST(a_new_service_is_taken_at_once)
{
        const struct h_service v1 = {
            .name = "hello", .artifact = 1, .rollout = "{\"id\":\"hello-v1\",\"percent\":0}"};
        h_publish(&env, &v1, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        json_object_put(svc);
        svc = wait_rollout_state("hello", "applied");
        json_object_put(svc);

        const struct h_service v2 = {
            .name = "hello", .artifact = 2, .rollout = "{\"id\":\"hello-v2\",\"percent\":0}"};
        h_publish(&env, &v2, 1, 0);
        svc = wait_rollout_state("hello", "outside-canary");
        ck_assert_str_eq(h_json_str(svc, "rollout.reason"), "outside canary 0%");
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        json_object_put(svc);
        char *body = NULL;
        json_object *o = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &o), 200);
        ck_assert_int_eq(h_http_get((int)h_json_int(o, "current.port"), "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);
        json_object_put(o);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("canary");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"percentage", percentage_holds_the_node_back_until_its_bucket},
            {"new-service", a_new_service_is_taken_at_once},
        };
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
