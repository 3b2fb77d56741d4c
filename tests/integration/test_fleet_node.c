/* The node in etcd (fleet mode): a real 3-member etcd cluster on loopback
 * and the real liid under a private systemd manager, with an etcd source.
 * The node's status key appears with the contract's fields, GET /v1/fleet
 * and `liictl fleet` show it, it goes with the lease when liid is killed,
 * and a cluster without quorum makes the lease stale until it is back. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PREFIX     "lii/fleet"
#define DOC_KEY    PREFIX "/desired/doc"
#define SIG_KEY    PREFIX "/desired/sig"
#define NODE       "itest" /* the harness's [node] name */
#define STATUS_KEY PREFIX "/nodes/" NODE "/status"
#define TTL_SEC    3

static struct h_env env;
static struct h_etcd etcd;

static const struct h_service v1 = {.name = "hello", .artifact = 1};

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "fleet");
        char dir[700], url[700], extra[128];
        snprintf(dir, sizeof dir, "%s/etcd", env.dir);
        h_etcd_start(&etcd, dir);
        snprintf(extra, sizeof extra, "[etcd]\nlease_ttl = %ds\n", TTL_SEC);
        h_set_config_extra(&env, extra);
        /* liid talks to member 0 first. */
        h_etcd_url(&etcd, 0, PREFIX, url, sizeof url);
        h_set_source(&env, url, "1h");
        snprintf(env.artifact_base, sizeof env.artifact_base, "file://%s", env.www);
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
        for (int i = 0; i < H_ETCD_MEMBERS; i++)
                if (etcd.pid[i] > 0)
                        kill(etcd.pid[i], SIGCONT);
        h_etcd_stop(&etcd);
}

/* A node whose source is a file. */
static void setup_file(void)
{
        h_setup(&env, "fleet_file");
        h_start_liid(&env);
}

static void teardown_file(void)
{
        h_teardown(&env);
}

static void deploy_v1(void)
{
        h_publish(&env, &v1, 1, 0);
        char doc[700], sig[720];
        snprintf(doc, sizeof doc, "%s/desired.json", env.www);
        snprintf(sig, sizeof sig, "%s.minisig", doc);
        h_etcd_put_files(&etcd, DOC_KEY, doc, SIG_KEY, sig);
        json_object_put(h_wait_generation(&env, "hello", 1));
}

/* The node's status in etcd once it says hello runs generation gen
 * (10 s at most); nothing tells a reader of etcd when it is put. */
static json_object *wait_status_key(long long gen)
{
        long long deadline = now_ms() + 10000;
        for (;;) {
                char *v = h_etcd_get(&etcd, STATUS_KEY);
                json_object *o = v ? json_tokener_parse(v) : NULL;
                free(v);
                if (o && h_json_int(o, "services.hello.generation") == gen &&
                    h_json_path(o, "services.hello.healthy") &&
                    json_object_get_boolean(h_json_path(o, "services.hello.healthy")))
                        return o;
                json_object_put(o);
                ck_assert_msg(now_ms() < deadline, "%s never said generation %lld", STATUS_KEY,
                              gen);
                usleep(100 * 1000);
        }
}

/* GET /v1/fleet until its lease.fresh is want (timeout_ms at most). */
static json_object *wait_fresh(bool want, int timeout_ms)
{
        long long deadline = now_ms() + timeout_ms;
        for (;;) {
                json_object *doc = NULL;
                ck_assert_int_eq(h_api_get(&env, "/v1/fleet", &doc), 200);
                json_object *fresh = h_json_path(doc, "lease.fresh");
                ck_assert_ptr_nonnull(fresh);
                if (json_object_get_boolean(fresh) == want)
                        return doc;
                json_object_put(doc);
                ck_assert_msg(now_ms() < deadline, "the lease never became %s within %d ms",
                              want ? "fresh" : "stale", timeout_ms);
                usleep(100 * 1000);
        }
}

START_TEST(test_status_key_api_and_liictl)
{
        deploy_v1();
        json_object *st = wait_status_key(1);
        ck_assert_str_eq(h_json_str(st, "node"), NODE);
        ck_assert_ptr_nonnull(h_json_str(st, "version"));
        ck_assert_int_eq(h_json_int(st, "serial"), 1);
        ck_assert_ptr_nonnull(h_json_str(st, "updated_at"));
        ck_assert_str_eq(h_json_str(st, "services.hello.state"), "running");
        ck_assert_uint_eq(strlen(h_json_str(st, "services.hello.artifact_sha256")), 64);
        ck_assert_uint_eq(strlen(h_json_str(st, "services.hello.spec_sha256")), 64);
        ck_assert_str_eq(h_json_str(st, "services.hello.last_rollout.result"), "succeeded");
        json_object *svc = h_json_path(st, "services.hello");
        ck_assert(json_object_object_get_ex(svc, "rollout", NULL));
        json_object_put(st);
        /* Idle, liid only keeps its lease alive: the status is not put
         * again (each put has a new updated_at) once the rollout's last
         * events are written. Nothing can announce an absence: each try
         * waits over several keepalives. */
        bool idle = false;
        for (int tries = 0; tries < 3 && !idle; tries++) {
                st = wait_status_key(1);
                char *before = strdup(h_json_str(st, "updated_at"));
                json_object_put(st);
                usleep(2 * TTL_SEC * 1000 * 1000 / 3 + 1000 * 1000);
                st = wait_status_key(1);
                idle = strcmp(h_json_str(st, "updated_at"), before) == 0;
                free(before);
                json_object_put(st);
        }
        ck_assert_msg(idle, "liid kept putting its status while nothing happened");

        /* What etcd holds, liid's API shows. */
        json_object *doc = wait_fresh(true, 10000);
        ck_assert_int_eq(h_json_int(doc, "nodes." NODE ".services.hello.generation"), 1);
        ck_assert_str_eq(h_json_str(doc, "node"), NODE);
        ck_assert_ptr_nonnull(h_json_path(doc, "rollouts"));
        json_object_put(doc);

        char *out = NULL;
        ck_assert_int_eq(h_liictl(&env, &out, (const char *const[]){"fleet", NULL}), 0);
        ck_assert_msg(strstr(out, "NODE") && strstr(out, "ROLLOUT") && strstr(out, "UPDATED"),
                      "no table header: %s", out);
        ck_assert_msg(strstr(out, NODE) && strstr(out, "hello") && strstr(out, "running"),
                      "the node's row is missing: %s", out);
        free(out);
        out = NULL;
        ck_assert_int_eq(h_liictl(&env, &out, (const char *const[]){"--json", "fleet", NULL}), 0);
        json_object *j = json_tokener_parse(out);
        ck_assert_msg(j && h_json_int(j, "nodes." NODE ".services.hello.generation") == 1,
                      "liictl --json fleet: %s", out);
        json_object_put(j);
        free(out);

        /* A node that dies drops out of the fleet with its lease. */
        h_kill_liid(&env, SIGKILL);
        long long killed = now_ms();
        for (;;) {
                char *v = h_etcd_get(&etcd, STATUS_KEY);
                if (!v)
                        break;
                free(v);
                /* Expired leases are revoked by etcd's leader every 500 ms. */
                ck_assert_msg(now_ms() - killed < TTL_SEC * 1000 + 1500,
                              "%s outlived the lease's TTL (%ds)", STATUS_KEY, TTL_SEC);
                usleep(100 * 1000);
        }
}
END_TEST

START_TEST(test_lease_stale_without_quorum)
{
        deploy_v1();
        json_object_put(wait_fresh(true, 10000));
        /* Members 1 and 2 freeze: member 0 alone has no quorum, and no
         * member renews the lease. */
        kill(etcd.pid[1], SIGSTOP);
        kill(etcd.pid[2], SIGSTOP);
        json_object_put(wait_fresh(false, TTL_SEC * 1000 + 3000));
        /* The service keeps running through the partition. */
        json_object *svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        ck_assert_str_eq(h_json_str(svc, "state"), "running");
        json_object_put(svc);
        char *out = NULL;
        ck_assert_int_eq(h_liictl(&env, &out, (const char *const[]){"fleet", NULL}), 0);
        ck_assert_msg(strstr(out, "not fresh"), "liictl fleet does not say so: %s", out);
        free(out);

        kill(etcd.pid[1], SIGCONT);
        kill(etcd.pid[2], SIGCONT);
        json_object_put(wait_fresh(true, 20000));
        /* With a new lease or the old one, the node is back in etcd. */
        json_object_put(wait_status_key(1));
}
END_TEST

/* GET /v1/fleet until pred holds of it (10 s at most). */
static json_object *wait_fleet(bool (*pred)(json_object *doc), const char *what)
{
        long long deadline = now_ms() + 10000;
        for (;;) {
                json_object *doc = NULL;
                ck_assert_int_eq(h_api_get(&env, "/v1/fleet", &doc), 200);
                if (pred(doc))
                        return doc;
                json_object_put(doc);
                ck_assert_msg(now_ms() < deadline, "GET /v1/fleet never showed %s", what);
                usleep(100 * 1000);
        }
}

static bool shows_rollout(json_object *doc)
{
        const char *id = h_json_str(doc, "rollouts.hello.id");
        return id && strcmp(id, "hello-v1") == 0;
}

static bool shows_halted(json_object *doc)
{
        json_object *h = h_json_path(doc, "rollouts.hello.halted");
        return h && json_object_get_boolean(h);
}

START_TEST(test_rollouts_and_failures)
{
        const struct h_service v1r = {
            .name = "hello",
            .artifact = 1,
            .rollout = "{\"id\":\"hello-v1\",\"percent\":100,\"max_failures\":1}"};
        h_publish(&env, &v1r, 1, 0);
        char doc[700], sig[720];
        snprintf(doc, sizeof doc, "%s/desired.json", env.www);
        snprintf(sig, sizeof sig, "%s.minisig", doc);
        h_etcd_put_files(&etcd, DOC_KEY, doc, SIG_KEY, sig);
        json_object_put(h_wait_generation(&env, "hello", 1));
        /* The node says which rollout it took, in etcd and in the API. */
        json_object *st = wait_status_key(1);
        ck_assert_str_eq(h_json_str(st, "services.hello.rollout.id"), "hello-v1");
        ck_assert_str_eq(h_json_str(st, "services.hello.rollout.state"), "applied");
        json_object_put(st);
        json_object *fl = wait_fleet(shows_rollout, "the rollout hello-v1");
        ck_assert_int_eq(h_json_int(fl, "rollouts.hello.percent"), 100);
        ck_assert(!json_object_get_boolean(h_json_path(fl, "rollouts.hello.halted")));
        json_object_put(fl);

        /* Another node failed it: with max_failures 1 the rollout is halted. */
        char reason[700];
        snprintf(reason, sizeof reason, "%s/reason", env.dir);
        FILE *f = fopen(reason, "we");
        ck_assert_ptr_nonnull(f);
        fputs("health check failed: HTTP 500", f);
        fclose(f);
        h_etcd_put_files(&etcd, PREFIX "/fail/hello/hello-v1/h2", reason, NULL, NULL);
        fl = wait_fleet(shows_halted, "the rollout halted");
        ck_assert_str_eq(h_json_str(fl, "rollouts.hello.failures.h2"),
                         "health check failed: HTTP 500");
        json_object_put(fl);
        char *out = NULL;
        ck_assert_int_eq(h_liictl(&env, &out, (const char *const[]){"fleet", NULL}), 0);
        ck_assert_msg(strstr(out, "rollout hello-v1 of hello: 100%, halted, 1 failure: h2 "
                                  "(health check failed: HTTP 500)"),
                      "liictl fleet: %s", out);
        ck_assert_msg(strstr(out, "applied"), "the ROLLOUT column: %s", out);
        free(out);
}
END_TEST

START_TEST(test_fleet_needs_etcd)
{
        json_object *doc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/fleet", &doc), 501);
        ck_assert_msg(
            strstr(h_json_str(doc, "error.message"), "fleet mode needs an etcd:// source"), "%s",
            json_object_to_json_string(doc));
        json_object_put(doc);
        char *err = NULL;
        ck_assert_int_eq(h_liictl_err(&env, NULL, &err, (const char *const[]){"fleet", NULL}), 1);
        ck_assert_msg(strstr(err, "etcd://"), "liictl fleet: %s", err);
        free(err);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("fleet_node");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void), (*teardown)(void);
        } cases[] = {
            {"status_key", test_status_key_api_and_liictl, setup, teardown},
            {"lease_stale", test_lease_stale_without_quorum, setup, teardown},
            {"rollouts", test_rollouts_and_failures, setup, teardown},
            {"needs_etcd", test_fleet_needs_etcd, setup_file, teardown_file},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                TCase *tc = tcase_create(cases[i].name);
                tcase_add_checked_fixture(tc, cases[i].setup, cases[i].teardown);
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, cases[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
