/* etcd as the desired-state source: a real 3-member etcd cluster on
 * loopback, the real liid under a private systemd manager, documents signed
 * with the real minisign and written straight into etcd. liid polls only
 * once an hour here, so every change it applies came through the watch. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PREFIX  "lii/test"
#define DOC_KEY PREFIX "/desired/doc"
#define SIG_KEY PREFIX "/desired/sig"

static struct h_env env;
static struct h_etcd etcd;

static const struct h_service v1 = {.name = "hello", .artifact = 1};
static const struct h_service v2 = {.name = "hello", .artifact = 2};
static const struct h_service v3 = {.name = "hello", .artifact = 3};

enum mode { PLAIN, TLS, AUTH, AUTH_WRONG_PASSWORD };

static void setup_with(enum mode mode)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "etcd");
        char dir[700], url[700];
        snprintf(dir, sizeof dir, "%s/etcd", env.dir);
        if (mode == TLS) {
                h_etcd_start_tls(&etcd, dir);
                char extra[2400];
                snprintf(extra, sizeof extra,
                         "[etcd]\nca_file = %s\ncert_file = %s\nkey_file = %s\n", etcd.ca_file,
                         etcd.cert_file, etcd.key_file);
                h_set_config_extra(&env, extra);
        } else if (mode == AUTH || mode == AUTH_WRONG_PASSWORD) {
                /* Tokens expire after a second unused: liid must get a new
                 * one when etcd says its token is invalid. */
                etcd.auth_token_ttl = 1;
                h_etcd_start(&etcd, dir);
                h_etcd_enable_auth(&etcd, "lii", "s3cret", PREFIX);
                char extra[2400], password_file[700];
                snprintf(password_file, sizeof password_file, "%s/etcd-password", env.dir);
                FILE *f = fopen(password_file, "we");
                ck_assert_ptr_nonnull(f);
                fputs(mode == AUTH ? "s3cret\n" : "guessed\n", f);
                fclose(f);
                snprintf(extra, sizeof extra, "[etcd]\nusername = lii\npassword_file = %s\n",
                         password_file);
                h_set_config_extra(&env, extra);
        } else {
                h_etcd_start(&etcd, dir);
        }
        /* liid talks to member 0 first: the failover tests stop it. */
        h_etcd_url(&etcd, 0, PREFIX, url, sizeof url);
        h_set_source(&env, url, "1h");
        snprintf(env.artifact_base, sizeof env.artifact_base, "file://%s", env.www);
        h_start_liid(&env);
}

static void setup(void)
{
        setup_with(PLAIN);
}

static void setup_tls(void)
{
        setup_with(TLS);
}

static void setup_auth(void)
{
        setup_with(AUTH);
}

static void setup_auth_wrong_password(void)
{
        setup_with(AUTH_WRONG_PASSWORD);
}

static void teardown(void)
{
        h_teardown(&env);
        h_etcd_stop(&etcd);
}

/* The document h_publish() wrote (and signed) goes into etcd, document
 * and signature in one transaction, as a publisher writes them. */
static long long put_published(void)
{
        char doc[700], sig[720];
        snprintf(doc, sizeof doc, "%s/desired.json", env.www);
        snprintf(sig, sizeof sig, "%s.minisig", doc);
        return h_etcd_put_files(&etcd, DOC_KEY, doc, SIG_KEY, sig);
}

static long long publish(const struct h_service *svc)
{
        h_publish(&env, svc, 1, 0);
        return put_published();
}

static void deploy_v1(void)
{
        publish(&v1);
        json_object_put(h_wait_generation(&env, "hello", 1));
}

START_TEST(test_applied_and_watched)
{
        deploy_v1();
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        ck_assert_int_eq(h_json_int(st, "source.serial"), 1);
        json_object_put(st);
        /* With an hour between polls, only the watch can bring this. */
        publish(&v2);
        json_object_put(h_wait_generation(&env, "hello", 2));
}
END_TEST

/* etcds:// with the members' CA and a client certificate, which the
 * cluster requires (--client-cert-auth). */
START_TEST(test_tls_with_client_certificate)
{
        deploy_v1();
        publish(&v2);
        json_object_put(h_wait_generation(&env, "hello", 2));
}
END_TEST

/* etcd's user/password authentication, with a token that expires between
 * publishes. */
START_TEST(test_user_and_password)
{
        deploy_v1();
        /* Longer than the token's life (1 s): no event can stand for it. */
        usleep(2500 * 1000);
        publish(&v2);
        json_object_put(h_wait_generation(&env, "hello", 2));
        char cmd[800];
        snprintf(cmd, sizeof cmd, "grep -q 'is invalid: authenticating again' '%s/liid.log'",
                 env.dir);
        ck_assert_msg(system(cmd) == 0, "liid's token never expired: the test proves nothing");
        /* An expired token is renewed without a refusal in between. */
        snprintf(cmd, sizeof cmd, "grep 'source.refused' '%s/liid.log' | grep -q 'auth token'",
                 env.dir);
        ck_assert_msg(system(cmd) != 0, "an expired token was reported as a source error");
}
END_TEST

START_TEST(test_wrong_password)
{
        publish(&v1);
        json_object *st =
            h_wait_status(&env, h_source_error_mentions, "authentication as lii failed", 10000,
                          "the refused authentication");
        ck_assert_ptr_null(h_json_path(st, "services.hello"));
        json_object_put(st);
}
END_TEST

START_TEST(test_forged_document_refused)
{
        deploy_v1();
        /* Anyone who can write to etcd can put a document there; without a
         * trusted key's signature it is refused like from any source. */
        char cmd[2400];
        snprintf(cmd, sizeof cmd,
                 "set -e; cd '%s'; minisign -G -W -f -p forger.pub -s forger.key >/dev/null; "
                 "sed 's/\"serial\":1,/\"serial\":7,/; s/hello-1/hello-2/' www/desired.json "
                 "> forged.json; minisign -S -s forger.key -m forged.json -t forged >/dev/null",
                 env.dir);
        ck_assert_int_eq(system(cmd), 0);
        char doc[700], sig[720];
        snprintf(doc, sizeof doc, "%s/forged.json", env.dir);
        snprintf(sig, sizeof sig, "%s.minisig", doc);
        h_etcd_put_files(&etcd, DOC_KEY, doc, SIG_KEY, sig);
        json_object *st = h_wait_status(&env, h_source_error_mentions, "is not trusted", 10000,
                                        "the forged document's refusal");
        ck_assert_int_eq(h_json_int(st, "source.serial"), 1);
        ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
        json_object_put(st);
}
END_TEST

START_TEST(test_relative_artifact_url_refused)
{
        env.artifact_base[0] = '\0';
        publish(&v1);
        json_object_put(h_wait_status(&env, h_source_error_mentions,
                                      "services.hello.artifact.url: must be absolute in a "
                                      "document from etcd",
                                      10000, "the relative artifact URL's refusal"));
}
END_TEST

START_TEST(test_watch_survives_a_lost_member)
{
        deploy_v1();
        /* liid watches through member 0; with it gone, the watch resumes
         * on member 1 from the last revision it saw. */
        h_etcd_stop_member(&etcd, 0);
        publish(&v2);
        json_object_put(h_wait_generation(&env, "hello", 2));
        /* Back again, the member serves the cluster's newest state. */
        h_etcd_start_member(&etcd, 0);
        h_etcd_stop_member(&etcd, 1);
        publish(&v3);
        json_object_put(h_wait_generation(&env, "hello", 3));
}
END_TEST

START_TEST(test_compaction_while_disconnected)
{
        deploy_v1();
        /* liid is frozen while its member goes away and the history it
         * would resume from is compacted: the watch cannot resume, and
         * only reading the keys again brings the newest document. */
        kill(env.liid_pid, SIGSTOP);
        h_etcd_stop_member(&etcd, 0);
        publish(&v2);
        long long rev = publish(&v3);
        h_etcd_compact(&etcd, rev);
        kill(env.liid_pid, SIGCONT);
        /* v2 was never seen: v3 is the next generation. */
        json_object *st = h_wait_generation(&env, "hello", 2);
        char *body = NULL;
        ck_assert_int_eq(h_http_get((int)h_json_int(st, "current.port"), "/version", &body), 200);
        ck_assert_str_eq(body, "v3\n");
        free(body);
        json_object_put(st);
        char log[700], cmd[800];
        snprintf(log, sizeof log, "%s/liid.log", env.dir);
        snprintf(cmd, sizeof cmd, "grep -q 'compacted; the keys are read again' '%s'", log);
        ck_assert_msg(system(cmd) == 0, "liid's log does not mention the compaction");
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("etcd");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void);
        } cases[] = {
            {"applied_and_watched", test_applied_and_watched, setup},
            {"tls", test_tls_with_client_certificate, setup_tls},
            {"auth", test_user_and_password, setup_auth},
            {"auth_refused", test_wrong_password, setup_auth_wrong_password},
            {"forged", test_forged_document_refused, setup},
            {"relative_url", test_relative_artifact_url_refused, setup},
            {"lost_member", test_watch_survives_a_lost_member, setup},
            {"compaction", test_compaction_while_disconnected, setup},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                TCase *tc = tcase_create(cases[i].name);
                tcase_add_checked_fixture(tc, cases[i].setup, teardown);
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
