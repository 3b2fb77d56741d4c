/* End to end: the real liid, liictl and sample service under a private
 * systemd manager. Each test starts from nothing and asserts what an
 * operator would see: which unit runs, what it answers, what status says. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "rollout");
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

/* ---- predicates ---- */

static bool is_state(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, userdata) == 0;
}

static json_object *wait_generation(const char *service, long long gen)
{
        return h_wait_generation(&env, service, gen);
}

static const struct h_service hello_v1 = {.name = "hello", .artifact = 1};
static const struct h_service hello_v2 = {.name = "hello", .artifact = 2};

/* ---- tests ---- */

START_TEST(first_deploy)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);

        ck_assert_str_eq(h_json_str(svc, "current.unit"), "lii-hello@1.service");
        ck_assert_str_eq(h_json_str(svc, "current.spec_sha256"),
                         h_json_str(svc, "desired.spec_sha256"));
        ck_assert_str_eq(h_json_str(svc, "last_rollout.result"), "succeeded");
        ck_assert(h_json_int(svc, "current.main_pid") > 0);
        ck_assert(h_unit_active(&env, "lii-hello@1.service"));
        int port = (int)h_json_int(svc, "current.port");
        h_assert_answers(port, "v1");

        /* The environment of the desired state reaches the instance, with
         * lii's variables expanded. */
        char *body = NULL;
        ck_assert_int_eq(h_http_get(port, "/", &body), 200);
        ck_assert_str_eq(body, "hello from v1: hi from hello\n");
        free(body);

        /* The instance runs in the strict sandbox, as a dynamic user. */
        char *out = NULL;
        const char *show[] = {"show",
                              "-p",
                              "DynamicUser",
                              "-p",
                              "ProtectSystem",
                              "-p",
                              "NoNewPrivileges",
                              "lii-hello@1.service",
                              NULL};
        ck_assert_int_eq(h_systemctl(&env, &out, show), 0);
        ck_assert_ptr_nonnull(strstr(out, "DynamicUser=yes"));
        ck_assert_ptr_nonnull(strstr(out, "ProtectSystem=strict"));
        ck_assert_ptr_nonnull(strstr(out, "NoNewPrivileges=yes"));
        free(out);
        json_object_put(svc);

        /* liictl reads the same through the socket. */
        const char *status[] = {"status", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, status), 0);
        ck_assert_ptr_nonnull(strstr(out, "hello"));
        ck_assert_ptr_nonnull(strstr(out, "running"));
        ck_assert_ptr_nonnull(strstr(out, "lii-hello@1.service"));
        free(out);
        const char *wait[] = {"wait", "--timeout", "5s", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, NULL, wait), 0);

        /* A publisher waits for its own document to be running: liictl
         * follows liid's events until it is. */
        char serial[16];
        snprintf(serial, sizeof serial, "%u", h_publish(&env, &hello_v2, 1, 0));
        const char *wait2[] = {"wait", "--timeout", "30s", "--serial", serial, "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, NULL, wait2), 0);
        json_object *o = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &o), 200);
        ck_assert_int_eq(h_json_int(o, "current.generation"), 2);
        ck_assert_str_eq(h_json_str(o, "state"), "running");
        json_object_put(o);
}
END_TEST

static bool checking_generation_2(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "checking") == 0 && h_json_int(svc, "next.generation") == 2;
}

START_TEST(replacement_waits_for_health)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);
        int old_port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        /* v2 reports unhealthy for its first two seconds: during that time
         * the old instance must keep running and serving. */
        struct h_service v2 = hello_v2;
        v2.extra_args = ",\"--healthy-after\",\"2000\"";
        h_publish(&env, &v2, 1, 0);
        svc = h_wait_service(&env, "hello", checking_generation_2, NULL, 20000,
                             "generation 2 to be checked");
        int new_port = (int)h_json_int(svc, "next.port");
        json_object_put(svc);
        ck_assert(h_unit_active(&env, "lii-hello@1.service"));
        ck_assert(h_unit_active(&env, "lii-hello@2.service"));
        h_assert_answers(old_port, "v1");
        ck_assert_int_ne(new_port, old_port);

        svc = wait_generation("hello", 2);
        ck_assert_int_eq(h_json_int(svc, "previous.generation"), 1);
        ck_assert_int_eq(h_json_int(svc, "current.port"), new_port);
        ck_assert_int_ge(h_json_int(svc, "last_rollout.duration_ms"), 2000);
        json_object_put(svc);
        h_assert_answers(new_port, "v2");
        /* The stop job of the old unit may still run; it is done when the
         * manager no longer lists it as active. */
        const char *is_active[] = {"is-active", "lii-hello@1.service", NULL};
        for (int i = 0; i < 200 && h_systemctl(&env, NULL, is_active) == 0; i++)
                usleep(20000);
        ck_assert(!h_unit_active(&env, "lii-hello@1.service"));
}
END_TEST

static bool current_is_generation(json_object *svc, void *userdata)
{
        return h_json_int(svc, "current.generation") == *(long long *)userdata &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

START_TEST(failing_health_keeps_old)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object_put(wait_generation("hello", 1));
        h_publish(&env, &hello_v2, 1, 0);
        json_object *svc = wait_generation("hello", 2);
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        struct h_service v3 = {.name = "hello",
                               .artifact = 3,
                               .extra_args = ",\"--never-healthy\"",
                               .health = "{\"http\":\"http://127.0.0.1:${PORT}/healthz\","
                                         "\"interval\":\"100ms\",\"deadline\":\"2s\"}"};
        h_publish(&env, &v3, 1, 0);
        svc = h_wait_service(&env, "hello", is_state, "failed", 20000, "v3 to be refused");
        ck_assert_str_eq(h_json_str(svc, "last_rollout.result"), "failed");
        const char *reason = h_json_str(svc, "last_rollout.reason");
        ck_assert_ptr_nonnull(reason);
        ck_assert_ptr_nonnull(strstr(reason, "health check failed"));
        ck_assert_ptr_nonnull(strstr(reason, "HTTP 503"));
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 2);
        ck_assert(json_object_get_boolean(h_json_path(svc, "current.healthy")));
        ck_assert_str_ne(h_json_str(svc, "current.spec_sha256"),
                         h_json_str(svc, "desired.spec_sha256"));
        json_object_put(svc);

        h_assert_answers(port, "v2");
        ck_assert(h_unit_active(&env, "lii-hello@2.service"));
        const char *is_active[] = {"is-active", "lii-hello@3.service", NULL};
        for (int i = 0; i < 200 && h_systemctl(&env, NULL, is_active) == 0; i++)
                usleep(20000);
        ck_assert(!h_unit_active(&env, "lii-hello@3.service"));

        /* liictl explains the refusal and waits in vain: exit 1. */
        char *out = NULL;
        const char *wait[] = {"wait", "--timeout", "5s", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, wait), 1);
        free(out);
        const char *status[] = {"status", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, status), 0);
        ck_assert_ptr_nonnull(strstr(out, "health check failed"));
        free(out);

        /* v2 dies while v3 stays refused: v2 comes back, not nothing. */
        const char *kill[] = {"kill", "--signal=KILL", "lii-hello@2.service", NULL};
        ck_assert_int_eq(h_systemctl(&env, NULL, kill), 0);
        svc = h_wait_service(&env, "hello", current_is_generation, (long long[]){4}, 20000,
                             "v2 to come back after it died");
        ck_assert(json_object_get_boolean(h_json_path(svc, "current.healthy")));
        port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        h_assert_answers(port, "v2");
}
END_TEST

START_TEST(sigkill_adopts_running_unit)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);
        long long pid = h_json_int(svc, "current.main_pid");
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        h_kill_liid(&env, SIGKILL);
        h_assert_answers(port, "v1");
        h_start_liid(&env);
        svc = wait_generation("hello", 1);
        /* Adopted, not restarted: the same process, still generation 1. */
        ck_assert_int_eq(h_json_int(svc, "current.main_pid"), pid);
        json_object_put(svc);

        char *out = NULL;
        const char *list[] = {"list-units",     "--no-legend", "--plain",
                              "--state=active", "lii-*",       NULL};
        ck_assert_int_eq(h_systemctl(&env, &out, list), 0);
        ck_assert_ptr_nonnull(strstr(out, "lii-hello@1.service"));
        ck_assert_ptr_null(strstr(out, "lii-hello@2.service"));
        free(out);
}
END_TEST

START_TEST(sigkill_during_rollout_keeps_old)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        struct h_service v2 = hello_v2;
        v2.extra_args = ",\"--healthy-after\",\"60000\"";
        h_publish(&env, &v2, 1, 0);
        json_object_put(h_wait_service(&env, "hello", checking_generation_2, NULL, 20000,
                                       "generation 2 to be checked"));
        h_kill_liid(&env, SIGKILL);

        /* On restart the half-done rollout is aborted (its unit stopped)
         * and a fresh one starts; the old instance serves throughout. */
        h_start_liid(&env);
        h_assert_answers(port, "v1");
        svc = h_wait_service(&env, "hello", is_state, "checking", 20000, "a new rollout");
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        ck_assert_int_eq(h_json_int(svc, "next.generation"), 3);
        json_object_put(svc);
        const char *is_active[] = {"is-active", "lii-hello@2.service", NULL};
        for (int i = 0; i < 200 && h_systemctl(&env, NULL, is_active) == 0; i++)
                usleep(20000);
        ck_assert(!h_unit_active(&env, "lii-hello@2.service"));
        ck_assert(h_unit_active(&env, "lii-hello@1.service"));
}
END_TEST

START_TEST(invalid_document_changes_nothing)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        struct h_service bad = hello_v2;
        bad.sha256 = "not-a-hash";
        h_publish(&env, &bad, 1, 0);
        json_object *st =
            h_wait_status(&env, h_source_error_mentions, "services.hello.artifact.sha256", 10000,
                          "the invalid document to be refused");
        ck_assert_int_eq(h_json_int(st, "source.serial"), 1);
        ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
        ck_assert_str_eq(h_json_str(st, "services.hello.state"), "running");
        json_object_put(st);
        h_assert_answers(port, "v1");

        /* A document without its signature is refused too, even one that
         * would stop everything. */
        char path[700], tmp[720];
        snprintf(path, sizeof path, "%s/desired.json.minisig", env.www);
        ck_assert_int_eq(unlink(path), 0);
        snprintf(path, sizeof path, "%s/desired.json", env.www);
        snprintf(tmp, sizeof tmp, "%s/.unsigned", env.www);
        FILE *f = fopen(tmp, "w");
        ck_assert_ptr_nonnull(f);
        fputs("{\"format\":\"lii.desired/1\",\"serial\":99,\"services\":{}}\n", f);
        fclose(f);
        ck_assert_int_eq(rename(tmp, path), 0);
        st = h_wait_status(&env, h_source_error_mentions, "signature", 10000,
                           "the unsigned document to be refused");
        ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
        json_object_put(st);
        h_assert_answers(port, "v1");
}
END_TEST

static bool gone(json_object *status, void *userdata)
{
        return h_json_path(status, userdata) == NULL;
}

START_TEST(removed_service_is_stopped_and_can_return)
{
        const struct h_service both[] = {{.name = "hello", .artifact = 1},
                                         {.name = "web", .artifact = 2}};
        h_publish(&env, both, 2, 0);
        json_object_put(wait_generation("web", 1));
        json_object *svc = wait_generation("hello", 1);
        long long hello_pid = h_json_int(svc, "current.main_pid");
        json_object_put(svc);

        h_publish(&env, &both[0], 1, 0);
        json_object_put(h_wait_status(&env, gone, "services.web", 20000, "web to be removed"));
        ck_assert(!h_unit_active(&env, "lii-web@1.service"));
        json_object *o = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/web", &o), 404);
        json_object_put(o);
        /* The other service is not touched. */
        svc = wait_generation("hello", 1);
        ck_assert_int_eq(h_json_int(svc, "current.main_pid"), hello_pid);
        json_object_put(svc);

        /* Back again: generations go on counting, they never repeat. */
        h_publish(&env, both, 2, 0);
        svc = wait_generation("web", 2);
        ck_assert_int_eq(h_json_int(svc, "previous.generation"), 1);
        json_object_put(svc);
}
END_TEST

/* A service that the next document adds between the others, by name, is
 * deployed, and the others are not touched. */
START_TEST(service_added_between_others)
{
        const struct h_service three[] = {{.name = "alpha", .artifact = 1},
                                          {.name = "beta", .artifact = 1},
                                          {.name = "gamma", .artifact = 1}};
        const struct h_service outer[] = {three[0], three[2]};
        h_publish(&env, outer, 2, 0);
        long long pids[2];
        for (size_t i = 0; i < 2; i++) {
                json_object *svc = wait_generation(outer[i].name, 1);
                pids[i] = h_json_int(svc, "current.main_pid");
                json_object_put(svc);
        }

        h_publish(&env, three, 3, 0);
        json_object_put(wait_generation("beta", 1));
        for (size_t i = 0; i < 2; i++) {
                json_object *svc = wait_generation(outer[i].name, 1);
                ck_assert_int_eq(h_json_int(svc, "current.main_pid"), pids[i]);
                json_object_put(svc);
        }
}
END_TEST

static bool restarted(json_object *svc, void *userdata)
{
        return h_runs_generation(svc, userdata) && h_json_int(svc, "restarts") == 1;
}

START_TEST(dead_instance_is_replaced)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object_put(wait_generation("hello", 1));
        const char *kill[] = {"kill", "--signal=KILL", "lii-hello@1.service", NULL};
        ck_assert_int_eq(h_systemctl(&env, NULL, kill), 0);

        long long gen = 2;
        json_object *svc = h_wait_service(&env, "hello", restarted, &gen, 20000,
                                          "a replacement of the killed instance");
        ck_assert_str_eq(h_json_str(svc, "last_rollout.result"), "succeeded");
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        h_assert_answers(port, "v1");
}
END_TEST

/* The store entries (folders) in state/store/sha256, as one sorted string. */
static void store_entries(char *out, size_t size)
{
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cd '%s/store/sha256' && find . -mindepth 1 -maxdepth 1 -type d "
                 "-printf '%%f\n' | sort | tr '\n' ' '",
                 env.state_dir);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        size_t n = fread(out, 1, size - 1, p);
        out[n] = '\0';
        pclose(p);
}

START_TEST(store_keeps_only_what_revisions_need)
{
        /* The harness runs liid with keep_revisions = 1: the current
         * revision, plus the previous one that rollback needs. */
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);
        char art1[65];
        snprintf(art1, sizeof art1, "%s", h_json_str(svc, "current.artifact_sha256"));
        json_object_put(svc);
        h_publish(&env, &hello_v2, 1, 0);
        json_object_put(wait_generation("hello", 2));
        char entries[1024];
        store_entries(entries, sizeof entries);
        ck_assert_ptr_nonnull(strstr(entries, art1));

        const struct h_service v3 = {.name = "hello", .artifact = 3};
        h_publish(&env, &v3, 1, 0);
        svc = wait_generation("hello", 3);
        char want[200];
        const char *a2 = h_json_str(svc, "previous.artifact_sha256");
        const char *a3 = h_json_str(svc, "current.artifact_sha256");
        snprintf(want, sizeof want, "%s %s ", strcmp(a2, a3) < 0 ? a2 : a3,
                 strcmp(a2, a3) < 0 ? a3 : a2);
        json_object_put(svc);
        store_entries(entries, sizeof entries);
        ck_assert_str_eq(entries, want);
}
END_TEST

static bool runs_spec_of_v2(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        const char *cur = h_json_str(svc, "current.spec_sha256");
        const char *des = h_json_str(svc, "desired.spec_sha256");
        return state && strcmp(state, "running") == 0 && cur && des && strcmp(cur, des) == 0 &&
               h_json_int(svc, "current.generation") >= 2;
}

START_TEST(systemd_reexec_during_rollout)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = wait_generation("hello", 1);
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        struct h_service v2 = hello_v2;
        v2.extra_args = ",\"--healthy-after\",\"1500\"";
        h_publish(&env, &v2, 1, 0);
        json_object_put(h_wait_service(&env, "hello", checking_generation_2, NULL, 20000,
                                       "generation 2 to be checked"));
        /* The manager re-executes itself: every client loses its connection. */
        const char *reexec[] = {"daemon-reexec", NULL};
        ck_assert_int_eq(h_systemctl(&env, NULL, reexec), 0);
        h_assert_answers(port, "v1");

        /* liid reconnects, adopts v1, and finishes the change to v2. */
        svc = h_wait_service(&env, "hello", runs_spec_of_v2, NULL, 30000,
                             "v2 to run after the re-exec");
        int new_port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        h_assert_answers(new_port, "v2");
        ck_assert_int_ne(env.liid_pid, 0);
        ck_assert_int_eq(kill(env.liid_pid, 0), 0);
}
END_TEST

static void setup_one_at_a_time(void)
{
        h_setup(&env, "max_parallel");
        h_set_max_parallel(&env, 1);
        h_start_liid(&env);
}

START_TEST(max_parallel_is_respected)
{
        const char *slow = ",\"--healthy-after\",\"500\"";
        const struct h_service three[] = {{.name = "a", .artifact = 1, .extra_args = slow},
                                          {.name = "b", .artifact = 1, .extra_args = slow},
                                          {.name = "c", .artifact = 1, .extra_args = slow}};
        h_publish(&env, three, 3, 0);
        bool saw_queue = false;
        for (int i = 0; i < 1500; i++) {
                json_object *st = NULL;
                ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
                int in_flight = 0, running = 0;
                json_object *svcs = h_json_path(st, "services");
                json_object_object_foreach(svcs, name, svc)
                {
                        (void)name;
                        const char *state = h_json_str(svc, "state");
                        in_flight += h_json_path(svc, "next") != NULL;
                        running += state && strcmp(state, "running") == 0;
                        saw_queue |= state && strcmp(state, "pending") == 0;
                }
                json_object_put(st);
                ck_assert_int_le(in_flight, 1);
                if (running == 3)
                        break;
                usleep(10000);
        }
        ck_assert(saw_queue);
        for (const char *n = "abc"; *n; n++) {
                char name[2] = {*n, 0};
                json_object_put(wait_generation(name, 1));
        }
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("rollout");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"first_deploy", first_deploy},
            {"replacement", replacement_waits_for_health},
            {"failing_health", failing_health_keeps_old},
            {"sigkill_adopt", sigkill_adopts_running_unit},
            {"sigkill_rollout", sigkill_during_rollout_keeps_old},
            {"invalid_doc", invalid_document_changes_nothing},
            {"removal", removed_service_is_stopped_and_can_return},
            {"added_between", service_added_between_others},
            {"replace_dead", dead_instance_is_replaced},
            {"store_gc", store_keeps_only_what_revisions_need},
            {"reexec", systemd_reexec_during_rollout},
            {"max_parallel", max_parallel_is_respected},
        };
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(
                    tc, tests[i].test == max_parallel_is_respected ? setup_one_at_a_time : setup,
                    teardown);
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
