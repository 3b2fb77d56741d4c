/* The health gate and the rest of an instance's life: readiness, probes
 * of every kind, instances that crash, hang or never get ready, the stop
 * timeout, fixed ports and the watch window's automatic revert. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static struct h_env env;

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "lifecycle");
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

static json_object *wait_generation(long long gen)
{
        return h_wait_generation(&env, "hello", gen);
}

static bool refused_with(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        const char *reason = h_json_str(svc, "last_rollout.reason");
        return state && strcmp(state, "failed") == 0 && reason && strstr(reason, userdata);
}

/* The private user manager's notify socket is not writable for dynamic
 * users (on a system manager it is), so instances that send READY=1 run
 * without the strict sandbox here. */
#define NOTIFY_SANDBOX "none"

static int port_v1;

static void deploy_v1(const char *extra_args, const char *health)
{
        struct h_service v1 = {
            .name = "hello", .artifact = 1, .extra_args = extra_args, .health = health};
        h_publish(&env, &v1, 1, 0);
        json_object *svc = wait_generation(1);
        port_v1 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
}

/* Whether the unit still has processes: active, or on its way down. */
static bool unit_active(const char *unit)
{
        const char *args[] = {"is-active", unit, NULL};
        char *out = NULL;
        h_systemctl(&env, &out, args);
        bool up = out && (strncmp(out, "active", 6) == 0 || strncmp(out, "deactivating", 12) == 0 ||
                          strncmp(out, "activating", 10) == 0);
        free(out);
        return up;
}

/* Deploys v1, then a v2 that must be refused for `why`, checking the old
 * instance serves throughout and the refused one is gone. */
static void expect_refused(const struct h_service *v2, const char *why)
{
        deploy_v1(NULL, NULL);
        h_publish(&env, v2, 1, 0);
        json_object *svc = h_wait_service(&env, "hello", refused_with, (void *)why, 30000, why);
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        json_object_put(svc);
        char *body = NULL;
        ck_assert_int_eq(h_http_get(port_v1, "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);
        for (int i = 0; i < 250 && unit_active("lii-hello@2.service"); i++)
                usleep(20000);
        ck_assert(!unit_active("lii-hello@2.service"));
}

static void expect_v2_refused(const char *extra_args, const char *health, const char *ready,
                              const char *why)
{
        struct h_service v2 = {.name = "hello",
                               .artifact = 2,
                               .extra_args = extra_args,
                               .health = health,
                               .ready = ready,
                               .sandbox = ready ? NOTIFY_SANDBOX : NULL};
        expect_refused(&v2, why);
}

/* A v2 that systemd cannot start or that ends at once is refused with what
 * systemd saw, in words, and the same words reach the operator in
 * `liictl status hello` and in the rollout.failed event. */
static void expect_start_refused(const char *exec, const char *extra_args, const char *why)
{
        struct h_service v2 = {
            .name = "hello", .artifact = 2, .exec = exec, .extra_args = extra_args};
        expect_refused(&v2, why);

        char *out = NULL;
        const char *status[] = {"status", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, status), 0);
        ck_assert_msg(strstr(out, why), "liictl status hello does not say \"%s\":\n%s", why, out);
        free(out);
        const char *events[] = {"events", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, events), 0);
        ck_assert_msg(strstr(out, why), "the events do not say \"%s\":\n%s", why, out);
        free(out);
}

START_TEST(missing_executable_says_203_exec)
{
        expect_start_refused("bin/no-such-program", NULL,
                             "203/EXEC: the executable could not be run");
}
END_TEST

START_TEST(exit_at_once_says_the_status)
{
        expect_start_refused(NULL, ",\"--exit-after\",\"0\"", "exited with status 3");
}
END_TEST

START_TEST(crash_by_signal_says_the_signal)
{
        expect_start_refused(NULL, ",\"--crash\"", "killed by SIGSEGV");
}
END_TEST

#define HTTP_CHECK(extra)                                                                          \
        "{\"http\":\"http://127.0.0.1:${PORT}/healthz\",\"interval\":\"100ms\","                   \
        "\"timeout\":\"500ms\",\"deadline\":\"3s\"" extra "}"

START_TEST(crash_after_ready_refused)
{
        expect_v2_refused(",\"--notify\",\"--exit-after\",\"400\"", HTTP_CHECK(",\"passes\":20"),
                          "notify", "exited with status 3");
}
END_TEST

START_TEST(never_ready_refused)
{
        expect_v2_refused("", HTTP_CHECK(""), "notify", "did not start lii-hello@2.service");
}
END_TEST

START_TEST(answers_500_refused)
{
        expect_v2_refused(",\"--healthz-500\"", HTTP_CHECK(""), NULL, "HTTP 500");
}
END_TEST

START_TEST(hang_refused)
{
        expect_v2_refused(",\"--hang\"", HTTP_CHECK(""), NULL, "Timeout");
}
END_TEST

START_TEST(exec_check_failing_refused)
{
        expect_v2_refused("",
                          "{\"exec\":[\"/bin/false\"],\"interval\":\"100ms\","
                          "\"deadline\":\"3s\"}",
                          NULL, "exec check");
}
END_TEST

START_TEST(notify_exec_and_tcp_checks_pass)
{
        /* READY=1 from the instance, an exec check run as its own unit in
         * the instance's sandbox, then a TCP check. */
        struct h_service v1 = {.name = "hello",
                               .artifact = 1,
                               .extra_args = ",\"--notify\"",
                               .ready = "notify",
                               .sandbox = NOTIFY_SANDBOX,
                               .health = "{\"exec\":[\"/usr/bin/curl\",\"-sf\","
                                         "\"http://127.0.0.1:${PORT}/healthz\"],"
                                         "\"interval\":\"200ms\",\"timeout\":\"2s\","
                                         "\"deadline\":\"10s\"}"};
        h_publish(&env, &v1, 1, 0);
        json_object_put(wait_generation(1));
        const char *show[] = {"show", "-p", "Type", "lii-hello@1.service", NULL};
        char *out = NULL;
        ck_assert_int_eq(h_systemctl(&env, &out, show), 0);
        ck_assert_str_eq(out, "Type=notify\n");
        free(out);
        struct h_service v2 = {.name = "hello",
                               .artifact = 2,
                               .health = "{\"tcp\":\"127.0.0.1:${PORT}\",\"interval\":\"100ms\"}"};
        h_publish(&env, &v2, 1, 0);
        json_object_put(wait_generation(2));
}
END_TEST

START_TEST(sigterm_ignored_is_killed_after_stop_timeout)
{
        deploy_v1(",\"--ignore-sigterm\"", NULL);
        struct h_service v2 = {.name = "hello", .artifact = 2};
        h_publish(&env, &v2, 1, 0);
        json_object_put(wait_generation(2));
        /* The harness gives every instance stop_timeout 5s. */
        for (int i = 0; i < 500 && unit_active("lii-hello@1.service"); i++)
                usleep(20000);
        ck_assert(!unit_active("lii-hello@1.service"));
        char *body = NULL;
        ck_assert_int_eq(h_http_get(port_v1, "/version", &body), 0);
        free(body);
}
END_TEST

START_TEST(fixed_port_shared_by_generations)
{
        /* Both generations bind the same port with SO_REUSEPORT; the new
         * one serves before the old one goes. */
        struct h_service v1 = {.name = "hello", .artifact = 1, .port = 18431};
        h_publish(&env, &v1, 1, 0);
        json_object *svc = wait_generation(1);
        ck_assert_int_eq(h_json_int(svc, "current.port"), 18431);
        json_object_put(svc);
        struct h_service v2 = {.name = "hello", .artifact = 2, .port = 18431};
        h_publish(&env, &v2, 1, 0);
        json_object_put(wait_generation(2));
        for (int i = 0; i < 250 && unit_active("lii-hello@1.service"); i++)
                usleep(20000);
        char *body = NULL;
        ck_assert_int_eq(h_http_get(18431, "/version", &body), 200);
        ck_assert_str_eq(body, "v2\n");
        free(body);
}
END_TEST

static bool reverted(json_object *svc, void *userdata)
{
        const char *result = h_json_str(svc, "last_rollout.result");
        return result && strcmp(result, "reverted") == 0 &&
               h_json_int(svc, "current.generation") == 3 &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

/* The table view of GET /v1/status says what the whole document says,
 * cell by cell, for every service, one row each in the order of names. */
static void assert_table_matches_status(void)
{
        static const char *const fields[][2] = {
            {"state", "state"},
            {"held", "held"},
            {"generation", "current.generation"},
            {"unit", "current.unit"},
            {"healthy", "current.healthy"},
            {"active_since", "current.active_since"},
            {"last_result", "last_rollout.result"},
            {"last_reason", "last_rollout.reason"},
            {"last_duration_ms", "last_rollout.duration_ms"},
            {"rollout_state", "rollout.state"},
            {"rollout_reason", "rollout.reason"},
        };
        json_object *full = NULL, *table = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &full), 200);
        ck_assert_int_eq(h_api_get(&env, "/v1/status?view=table", &table), 200);
        ck_assert_str_eq(h_json_str(table, "view"), "table");
        ck_assert(json_object_equal(h_json_path(table, "source"), h_json_path(full, "source")));
        ck_assert_ptr_null(h_json_path(table, "services"));

        /* Where each column is. */
        json_object *columns = h_json_path(table, "columns");
        size_t n_columns = json_object_array_length(columns);
        ck_assert_uint_eq(n_columns, ELEMENTSOF(fields) + 1);
        int name_at = -1, at[ELEMENTSOF(fields)];
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                at[i] = -1;
        for (size_t c = 0; c < n_columns; c++) {
                const char *column = json_object_get_string(json_object_array_get_idx(columns, c));
                if (strcmp(column, "name") == 0)
                        name_at = (int)c;
                for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                        if (strcmp(column, fields[i][0]) == 0)
                                at[i] = (int)c;
        }
        ck_assert_int_ge(name_at, 0);
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                ck_assert_msg(at[i] >= 0, "no column %s", fields[i][0]);

        json_object *services = h_json_path(full, "services");
        json_object *rows = h_json_path(table, "rows");
        size_t n = json_object_array_length(rows);
        ck_assert_uint_eq(n, (size_t)json_object_object_length(services));
        const char *previous = "";
        for (size_t r = 0; r < n; r++) {
                json_object *row = json_object_array_get_idx(rows, r);
                ck_assert_uint_eq(json_object_array_length(row), n_columns);
                const char *name = json_object_get_string(json_object_array_get_idx(row, name_at));
                ck_assert_int_lt(strcmp(previous, name), 0);
                previous = name;
                json_object *svc = NULL;
                ck_assert(json_object_object_get_ex(services, name, &svc));
                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        json_object *cell = json_object_array_get_idx(row, at[i]);
                        ck_assert_msg(json_object_equal(cell, h_json_path(svc, fields[i][1])),
                                      "%s: %s is %s, %s is %s", name, fields[i][0],
                                      json_object_to_json_string(cell), fields[i][1],
                                      json_object_to_json_string(h_json_path(svc, fields[i][1])));
                }
        }
        json_object_put(full);
        json_object_put(table);
}

START_TEST(watch_window_reverts)
{
        deploy_v1(NULL, NULL);
        json_object *o = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &o), 200);
        char spec1[65];
        snprintf(spec1, sizeof spec1, "%s", h_json_str(o, "current.spec_sha256"));
        json_object_put(o);

        /* v2 passes its checks, is promoted, then turns unhealthy within
         * its watch window: a fresh instance of v1 replaces it. */
        struct h_service v2 = {.name = "hello",
                               .artifact = 2,
                               .extra_args = ",\"--unhealthy-after\",\"1500\"",
                               .health = HTTP_CHECK(",\"passes\":2,\"watch\":\"20s\"")};
        h_publish(&env, &v2, 1, 0);
        json_object_put(wait_generation(2));
        json_object *svc = h_wait_service(&env, "hello", reverted, NULL, 30000, "the revert");
        ck_assert_str_eq(h_json_str(svc, "current.spec_sha256"), spec1);
        ck_assert_ptr_nonnull(strstr(h_json_str(svc, "last_rollout.reason"), "watch window"));
        /* v2's spec is quarantined: not retried. */
        ck_assert_str_eq(h_json_str(svc, "state"), "failed");
        char *body = NULL;
        ck_assert_int_eq(h_http_get((int)h_json_int(svc, "current.port"), "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);
        json_object_put(svc);
        assert_table_matches_status();
}
END_TEST

START_TEST(watch_window_survives_a_restart)
{
        deploy_v1(NULL, NULL);
        struct h_service v2 = {.name = "hello",
                               .artifact = 2,
                               .extra_args = ",\"--unhealthy-after\",\"2500\"",
                               .health = HTTP_CHECK(",\"passes\":2,\"watch\":\"30s\"")};
        h_publish(&env, &v2, 1, 0);
        json_object_put(wait_generation(2));
        /* liid dies within the window; the one that starts watches on. */
        h_kill_liid(&env, SIGKILL);
        h_start_liid(&env);
        json_object *svc = h_wait_service(&env, "hello", reverted, NULL, 30000, "the revert");
        ck_assert_ptr_nonnull(strstr(h_json_str(svc, "last_rollout.reason"), "watch window"));
        json_object_put(svc);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("lifecycle");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"missing_executable", missing_executable_says_203_exec},
            {"exit_at_once", exit_at_once_says_the_status},
            {"crash_by_signal", crash_by_signal_says_the_signal},
            {"crash_after_ready", crash_after_ready_refused},
            {"never_ready", never_ready_refused},
            {"answers_500", answers_500_refused},
            {"hang", hang_refused},
            {"exec_failing", exec_check_failing_refused},
            {"checks_pass", notify_exec_and_tcp_checks_pass},
            {"stop_timeout", sigterm_ignored_is_killed_after_stop_timeout},
            {"fixed_port", fixed_port_shared_by_generations},
            {"watch_revert", watch_window_reverts},
            {"watch_restart", watch_window_survives_a_restart},
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
