/* What an operator does through the API: pause and resume, rollback and
 * replace, sync. Each is checked where a user would look: the units that
 * run, what they answer, and status. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "operator");
        h_start_liid(&env);
}

/* An HTTP source polled once an hour: only a sync makes liid look. */
static void setup_slow_source(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "operator");
        h_serve_over_http(&env, false, "1h", NULL);
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

static const struct h_service v1 = {.name = "hello", .artifact = 1};
static const struct h_service v2 = {.name = "hello", .artifact = 2};

static long post(const char *path, json_object **ret)
{
        json_object *o = NULL;
        long code = h_api_post(&env, path, &o);
        if (ret)
                *ret = o;
        else
                json_object_put(o);
        return code;
}

static bool serial_is(json_object *status, void *userdata)
{
        return h_json_int(status, "source.serial") == *(long long *)userdata;
}

START_TEST(pause_holds_new_rollouts)
{
        h_publish(&env, &v1, 1, 0);
        json_object_put(wait_generation(1));
        ck_assert_int_eq(post("/v1/pause", NULL), 200);

        long long serial = h_publish(&env, &v2, 1, 0);
        json_object *st = h_wait_status(&env, serial_is, &serial, 10000, "serial 2 to be accepted");
        ck_assert(json_object_get_boolean(h_json_path(st, "paused")));
        ck_assert_str_eq(h_json_str(st, "services.hello.state"), "pending");
        ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
        json_object_put(st);

        /* Paused survives a restart of liid. */
        h_kill_liid(&env, SIGTERM);
        h_start_liid(&env);
        st = h_wait_status(&env, serial_is, &serial, 10000, "serial 2 after the restart");
        ck_assert(json_object_get_boolean(h_json_path(st, "paused")));
        json_object_put(st);
        const char *args[] = {"is-active", "--quiet", "lii-hello@2.service", NULL};
        ck_assert_int_ne(h_systemctl(&env, NULL, args), 0);

        ck_assert_int_eq(post("/v1/resume", NULL), 200);
        json_object_put(wait_generation(2));
}
END_TEST

static bool held_at(json_object *svc, void *userdata)
{
        return h_runs_generation(svc, userdata) &&
               json_object_get_boolean(h_json_path(svc, "held"));
}

START_TEST(rollback_then_replace)
{
        h_publish(&env, &v1, 1, 0);
        json_object *svc = wait_generation(1);
        char spec1[65];
        snprintf(spec1, sizeof spec1, "%s", h_json_str(svc, "current.spec_sha256"));
        json_object_put(svc);
        h_publish(&env, &v2, 1, 0);
        svc = wait_generation(2);
        char spec2[65];
        snprintf(spec2, sizeof spec2, "%s", h_json_str(svc, "current.spec_sha256"));
        json_object_put(svc);

        json_object *answer = NULL;
        ck_assert_int_eq(post("/v1/services/hello/rollback", &answer), 200);
        ck_assert_ptr_nonnull(strstr(h_json_str(answer, "message"), "generation 1"));
        json_object_put(answer);
        long long gen = 3;
        svc = h_wait_service(&env, "hello", held_at, &gen, 30000, "the rollback to run");
        /* A fresh instance of the previous spec, held there although the
         * document still asks for v2. */
        ck_assert_str_eq(h_json_str(svc, "current.spec_sha256"), spec1);
        ck_assert_str_eq(h_json_str(svc, "desired.spec_sha256"), spec2);
        char *body = NULL;
        ck_assert_int_eq(h_http_get((int)h_json_int(svc, "current.port"), "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);
        json_object_put(svc);

        /* A rollback's quarantine ends with replace: v2 comes back, fresh. */
        ck_assert_int_eq(post("/v1/services/hello/replace", NULL), 200);
        svc = wait_generation(4);
        ck_assert_str_eq(h_json_str(svc, "current.spec_sha256"), spec2);
        ck_assert(!json_object_get_boolean(h_json_path(svc, "held")));
        json_object_put(svc);

        /* Replace also restarts a service that runs its desired spec. */
        ck_assert_int_eq(post("/v1/services/hello/replace", NULL), 200);
        json_object_put(wait_generation(5));
}
END_TEST

/* liictl rollback --wait returns once the rollback has finished: what
 * status says right after it is the outcome, not a rollout on its way. */
START_TEST(rollback_wait_succeeds)
{
        h_publish(&env, &v1, 1, 0);
        json_object_put(wait_generation(1));
        h_publish(&env, &v2, 1, 0);
        json_object_put(wait_generation(2));

        char *out = NULL;
        const char *rollback[] = {"rollback", "--wait", "--timeout", "60s", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, rollback), 0);
        ck_assert_ptr_nonnull(strstr(out, "rolling hello back to the spec of generation 1"));
        free(out);

        json_object *svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        ck_assert_str_eq(h_json_str(svc, "state"), "running");
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 3);
        ck_assert(json_object_get_boolean(h_json_path(svc, "current.healthy")));
        ck_assert(json_object_get_boolean(h_json_path(svc, "held")));
        ck_assert_str_eq(h_json_str(svc, "last_rollout.result"), "succeeded");
        ck_assert_int_eq(h_json_int(svc, "last_rollout.generation"), 3);
        char *body = NULL;
        ck_assert_int_eq(h_http_get((int)h_json_int(svc, "current.port"), "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);
        json_object_put(svc);
}
END_TEST

static bool is_failed(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "failed") == 0;
}

/* liictl replace --wait of a spec that fails its health check: exit 1 with
 * the reason, once the fresh instance (not the earlier one) has failed. */
START_TEST(replace_wait_fails)
{
        h_publish(&env, &v1, 1, 0);
        json_object_put(wait_generation(1));
        const struct h_service broken = {
            .name = "hello",
            .artifact = 2,
            .extra_args = ",\"--never-healthy\"",
            .health = "{\"http\":\"http://127.0.0.1:${PORT}/healthz\","
                      "\"interval\":\"100ms\",\"deadline\":\"2s\"}",
        };
        h_publish(&env, &broken, 1, 0);
        json_object_put(h_wait_service(&env, "hello", is_failed, NULL, 20000, "v2 to be refused"));

        char *out = NULL, *err = NULL;
        const char *replace[] = {"replace", "--wait", "--timeout", "60s", "hello", NULL};
        ck_assert_int_eq(h_liictl_err(&env, &out, &err, replace), 1);
        ck_assert_ptr_nonnull(strstr(out, "starting a fresh instance of hello's desired spec"));
        ck_assert_msg(strstr(err, "hello: generation 3 failed: health check failed"), "%s", err);
        free(out);
        free(err);

        json_object *svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        ck_assert_str_eq(h_json_str(svc, "state"), "failed");
        ck_assert_int_eq(h_json_int(svc, "last_rollout.generation"), 3);
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        json_object_put(svc);

        /* A timeout that passes before the outcome: exit 5. */
        const char *quick[] = {"replace", "--wait", "--timeout", "100ms", "hello", NULL};
        ck_assert_int_eq(h_liictl_err(&env, NULL, &err, quick), 5);
        ck_assert_msg(strstr(err, "timed out after 100ms waiting for hello generation 4"), "%s",
                      err);
        free(err);
}
END_TEST

START_TEST(refusals)
{
        json_object *answer = NULL;
        ck_assert_int_eq(post("/v1/services/nope/rollback", &answer), 404);
        ck_assert_str_eq(h_json_str(answer, "error.code"), "not_found");
        json_object_put(answer);
        h_publish(&env, &v1, 1, 0);
        json_object_put(wait_generation(1));
        ck_assert_int_eq(post("/v1/services/hello/rollback", &answer), 409);
        ck_assert_ptr_nonnull(strstr(h_json_str(answer, "error.message"), "no previous revision"));
        json_object_put(answer);
        ck_assert_int_eq(post("/v1/services/Bad_Name/replace", NULL), 404);
}
END_TEST

START_TEST(sync_fetches_now)
{
        h_publish(&env, &v1, 1, 0);
        /* Start-up fetched nothing yet (the document came after), and the
         * next poll is an hour away: sync is the only way in. */
        ck_assert_int_eq(post("/v1/sync", NULL), 200);
        json_object_put(wait_generation(1));
        h_publish(&env, &v2, 1, 0);
        ck_assert_int_eq(post("/v1/sync", NULL), 200);
        json_object_put(wait_generation(2));
}
END_TEST

/* Starts liictl with these arguments (a shell word list); read its stdout
 * and stderr, both, from the stream and end it with liictl_end(). */
static FILE *liictl_start(const char *args)
{
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s/liictl' -s '%s' %s 2>&1", LII_BUILD_DIR, env.socket, args);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        return f;
}

/* Reads the rest of liictl's output into *ret_out and returns its exit
 * status. */
static int liictl_end(FILE *f, char **ret_out)
{
        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, mem);
        fclose(mem);
        int status = pclose(f);
        *ret_out = out;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int liictl_run(const char *args, char **ret_out)
{
        return liictl_end(liictl_start(args), ret_out);
}

static bool refused_serial_is(json_object *status, void *userdata)
{
        return h_json_int(status, "source.refused_serial") == *(long long *)userdata;
}

/* A publisher waits for its own document with --serial: plain wait only
 * sees the document liid has, the old one until liid reads the new one. */
START_TEST(wait_for_a_published_serial)
{
        h_publish(&env, &v1, 1, 0);
        ck_assert_int_eq(post("/v1/sync", NULL), 200);
        char *out = NULL;
        ck_assert_int_eq(liictl_run("wait --timeout 30s --serial 1 hello", &out), 0);
        free(out);
        json_object *o = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &o), 200);
        ck_assert_int_eq(h_json_int(o, "current.generation"), 1);
        json_object_put(o);

        /* Serial 2 is published, and liid has not looked yet (it polls
         * once an hour): plain wait is content with generation 1, wait
         * --serial 2 is not. */
        h_publish(&env, &v2, 1, 0);
        ck_assert_int_eq(liictl_run("wait --timeout 0 hello", &out), 0);
        free(out);
        ck_assert_int_eq(liictl_run("wait --timeout 0 --serial 2 hello", &out), 5);
        ck_assert_msg(strstr(out, "not there yet: desired-state serial 2 (liid has 1)"), "%s", out);
        free(out);

        /* Started before liid reads serial 2, wait returns once generation
         * 2 runs it. */
        FILE *waiting = liictl_start("wait --timeout 60s --serial 2 hello");
        ck_assert_int_eq(post("/v1/sync", NULL), 200);
        ck_assert_int_eq(liictl_end(waiting, &out), 0);
        free(out);
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &o), 200);
        ck_assert_int_eq(h_json_int(o, "current.generation"), 2);
        ck_assert_str_eq(h_json_str(o, "state"), "running");
        json_object_put(o);

        /* A signed document that liid refuses fails the wait for its
         * serial at once, with the reason. */
        h_publish_raw(&env, "{\"format\":\"lii.desired/1\",\"serial\":3,"
                            "\"services\":{\"hello\":{}}}");
        waiting = liictl_start("wait --timeout 60s --serial 3 hello");
        ck_assert_int_eq(post("/v1/sync", NULL), 200);
        ck_assert_int_eq(liictl_end(waiting, &out), 1);
        ck_assert_msg(
            strstr(out, "desired-state serial 3 was refused: services.hello.artifact: required"),
            "%s", out);
        free(out);
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &o), 200);
        ck_assert_int_eq(h_json_int(o, "source.refused_serial"), 3);
        ck_assert_int_eq(h_json_int(o, "source.serial"), 2);
        json_object_put(o);

        /* The publisher's likeliest slip: new content under the serial
         * already applied. Until liid has read it, status cannot tell it
         * from the applied document, so the wait starts once it has. */
        h_publish(&env, &v1, 1, 2);
        ck_assert_int_eq(post("/v1/sync", NULL), 200);
        long long serial = 2;
        json_object_put(
            h_wait_status(&env, refused_serial_is, &serial, 10000, "serial 2 to be refused"));
        ck_assert_int_eq(liictl_run("wait --timeout 60s --serial 2 hello", &out), 1);
        ck_assert_msg(strstr(out, "desired-state serial 2 was refused: document: serial 2 was "
                                  "already applied with other content"),
                      "%s", out);
        free(out);
}
END_TEST

/* Reads NDJSON lines from a stream until one has the type and generation
 * asked for; returns whether it came. */
static bool stream_has(FILE *f, const char *type, long long gen)
{
        char line[4096];
        while (fgets(line, sizeof line, f)) {
                json_object *o = json_tokener_parse(line);
                bool hit = o && h_json_str(o, "type") && strcmp(h_json_str(o, "type"), type) == 0 &&
                           h_json_int(o, "generation") == gen;
                json_object_put(o);
                if (hit)
                        return true;
        }
        return false;
}

START_TEST(events_and_metrics)
{
        h_publish(&env, &v1, 1, 0);
        json_object_put(wait_generation(1));

        /* The recent events, as NDJSON. */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "curl -sf --unix-socket '%s' http://lii/v1/events", env.socket);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert(stream_has(f, "rollout.succeeded", 1));
        pclose(f);

        /* A follower sees the next rollout as it happens. --max-time bounds
         * the test should the event never come. */
        snprintf(cmd, sizeof cmd,
                 "curl -sfN --max-time 60 --unix-socket '%s' 'http://lii/v1/events?follow=1'",
                 env.socket);
        f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        h_publish(&env, &v2, 1, 0);
        ck_assert(stream_has(f, "rollout.started", 2));
        ck_assert(stream_has(f, "rollout.succeeded", 2));
        pclose(f);

        char *out = NULL;
        const char *ev[] = {"events", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, ev), 0);
        ck_assert_ptr_nonnull(strstr(out, "rollout.succeeded"));
        free(out);

        snprintf(cmd, sizeof cmd, "curl -sf --unix-socket '%s' http://lii/v1/metrics", env.socket);
        f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        char text[65536];
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        pclose(f);
        ck_assert_ptr_nonnull(strstr(text, "lii_rollouts_total{result=\"succeeded\"} 2\n"));
        ck_assert_ptr_nonnull(strstr(text, "lii_healthy_instances 1\n"));
        ck_assert_ptr_nonnull(strstr(text, "lii_rollout_duration_seconds_count 2\n"));
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("operator");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void);
        } tests[] = {
            {"pause", pause_holds_new_rollouts, setup},
            {"rollback", rollback_then_replace, setup},
            {"rollback_wait", rollback_wait_succeeds, setup},
            {"replace_wait", replace_wait_fails, setup},
            {"refusals", refusals, setup},
            {"sync", sync_fetches_now, setup_slow_source},
            {"wait-serial", wait_for_a_published_serial, setup_slow_source},
            {"events", events_and_metrics, setup},
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

int main(void)
{
        return h_main(suite());
}
