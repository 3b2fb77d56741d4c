/* Signed desired state and signed artifacts over HTTP(S), from a real nginx,
 * deployed by the real liid under a private systemd manager. Every refusal
 * must leave the running instance alone and say why in status. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

/* Switches: while .fail500 is in the published folder, the document
 * answers 500 Internal Server Error; while .trickle is, it comes at 1 byte
 * per second (fast enough for curl's low-speed limit, which therefore
 * never ends it). slow-2.tar.gz always trickles. */
#define NGINX_EXTRA                                                                                \
        "location = /desired.json { if (-f $document_root/.fail500) { return 500; }\n"             \
        "  if (-f $document_root/.trickle) { set $limit_rate 1; } }\n"                             \
        "location = /slow-2.tar.gz { limit_rate 1; }\n"

static void setup_with(bool https, const char *fetch_timeout)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "http");
        h_serve_over_http(&env, https, "300ms", NGINX_EXTRA);
        if (fetch_timeout)
                h_set_fetch_timeout(&env, fetch_timeout);
        h_start_liid(&env);
}

static void setup_https(void)
{
        setup_with(true, NULL);
}

static void setup_http(void)
{
        setup_with(false, NULL);
}

/* A short time limit keeps the trickle tests short; a local fetch that
 * goes at full speed takes milliseconds. */
#define SHORT_FETCH_TIMEOUT "2s"

static void setup_http_short_limit(void)
{
        setup_with(false, SHORT_FETCH_TIMEOUT);
}

static void teardown(void)
{
        h_teardown(&env);
}

static json_object *wait_generation(long long gen)
{
        return h_wait_generation(&env, "hello", gen);
}

static bool rollout_failed_with(json_object *svc, void *userdata)
{
        const char *state = h_json_str(svc, "state");
        const char *reason = h_json_str(svc, "last_rollout.reason");
        return state && strcmp(state, "failed") == 0 && reason && strstr(reason, userdata);
}

static const struct h_service v1 = {.name = "hello", .artifact = 1};
static const struct h_service v2 = {.name = "hello", .artifact = 2};

static int port_v1;

/* Deploys v1 and remembers its port: the instance every refusal must leave
 * running. */
static void deploy_v1(void)
{
        h_publish(&env, &v1, 1, 0);
        json_object *svc = wait_generation(1);
        port_v1 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
}

static void assert_v1_untouched(void)
{
        char *body = NULL;
        ck_assert_int_eq(h_http_get(port_v1, "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);
        json_object *o = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &o), 200);
        ck_assert_int_eq(h_json_int(o, "current.generation"), 1);
        ck_assert(json_object_get_boolean(h_json_path(o, "current.healthy")));
        json_object_put(o);
}

static void expect_document_refused(const char *why)
{
        json_object_put(h_wait_status(&env, h_source_error_mentions, (void *)why, 15000, why));
        assert_v1_untouched();
}

static void expect_rollout_refused(const char *why)
{
        json_object_put(
            h_wait_service(&env, "hello", rollout_failed_with, (void *)why, 20000, why));
        assert_v1_untouched();
}

static void publish_raw_file(const char *name, const char *content, size_t len)
{
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", env.www, name);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(content, 1, len, f), len);
        fclose(f);
}

/* ---- the happy paths ---- */

START_TEST(https_deploy_and_replace)
{
        deploy_v1();
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        ck_assert_ptr_nonnull(strstr(h_json_str(st, "source.url"), "https://localhost:"));
        ck_assert_ptr_nonnull(h_json_str(st, "source.key_id"));
        ck_assert_ptr_nonnull(h_json_str(st, "services.hello.current.signature.key_id"));
        ck_assert_str_eq(h_json_str(st, "services.hello.current.signature.trusted_comment"),
                         "lii test");
        json_object_put(st);

        h_publish(&env, &v2, 1, 0);
        json_object *svc = wait_generation(2);
        ck_assert_int_eq(h_json_int(svc, "previous.generation"), 1);
        json_object_put(svc);
}
END_TEST

static bool saw_304(json_object *status, void *userdata)
{
        return h_nginx_count(&env.nginx, "/desired.json", 304) >= 2;
}

START_TEST(unchanged_document_costs_a_304)
{
        deploy_v1();
        json_object_put(h_wait_status(&env, saw_304, NULL, 10000, "two conditional GETs"));
        /* The document and its signature were downloaded once. */
        ck_assert_int_eq(h_nginx_count(&env.nginx, "/desired.json", 200), 1);
        ck_assert_int_eq(h_nginx_count(&env.nginx, "/desired.json.minisig", 200), 1);
        assert_v1_untouched();
}
END_TEST

/* ---- documents refused ---- */

START_TEST(lower_serial_refused)
{
        h_publish(&env, &v1, 1, 5);
        json_object *svc = wait_generation(1);
        port_v1 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        h_publish(&env, &v2, 1, 4);
        expect_document_refused("serial 4 is lower than the applied serial 5");
}
END_TEST

START_TEST(equal_serial_other_bytes_refused)
{
        deploy_v1();
        h_publish(&env, &v2, 1, env.serial);
        expect_document_refused("serial 1 was already applied with other content");
}
END_TEST

START_TEST(expired_document_refused)
{
        deploy_v1();
        char doc[512];
        snprintf(doc, sizeof doc,
                 "{\"format\":\"lii.desired/1\",\"serial\":%u,\"expires\":\"2020-01-01T00:00:00Z\","
                 "\"services\":{}}\n",
                 ++env.serial);
        h_publish_raw(&env, doc);
        expect_document_refused("expired at 2020-01-01T00:00:00Z");
}
END_TEST

START_TEST(oversize_document_refused)
{
        deploy_v1();
        size_t len = (1 << 20) + 1;
        char *doc = malloc(len + 1);
        memset(doc, ' ', len);
        memcpy(doc, "{\"format\":\"lii.desired/1\",\"serial\":99,\"services\":{}}", 52);
        doc[len] = '\0';
        h_publish_raw(&env, doc);
        free(doc);
        expect_document_refused("larger than 1048576 bytes");
}
END_TEST

START_TEST(missing_document_404)
{
        deploy_v1();
        char path[1024];
        snprintf(path, sizeof path, "%s/desired.json", env.www);
        ck_assert_int_eq(unlink(path), 0);
        expect_document_refused("HTTP 404");
}
END_TEST

START_TEST(server_error_500)
{
        deploy_v1();
        publish_raw_file(".fail500", "", 0);
        expect_document_refused("HTTP 500");
}
END_TEST

START_TEST(unsigned_document_refused)
{
        deploy_v1();
        /* A document that would stop everything, without its signature. */
        char sig[1024], doc[256];
        snprintf(sig, sizeof sig, "%s/desired.json.minisig", env.www);
        ck_assert_int_eq(unlink(sig), 0);
        snprintf(doc, sizeof doc, "{\"format\":\"lii.desired/1\",\"serial\":%u,\"services\":{}}\n",
                 env.serial + 10);
        publish_raw_file("desired.json", doc, strlen(doc));
        expect_document_refused("minisig: HTTP 404");
}
END_TEST

/* Whether /v1/events holds an event of the type whose message mentions
 * the text. */
static bool event_mentions(const char *type, const char *text)
{
        char *body = NULL;
        ck_assert_int_eq(h_api_get_text(&env, "/v1/events", &body), 200);
        bool found = false;
        char *save = NULL;
        for (char *line = strtok_r(body, "\n", &save); line && !found;
             line = strtok_r(NULL, "\n", &save)) {
                json_object *o = json_tokener_parse(line);
                const char *t = h_json_str(o, "type"), *m = h_json_str(o, "message");
                found = t && m && strcmp(t, type) == 0 && strstr(m, text);
                json_object_put(o);
        }
        free(body);
        return found;
}

static bool serial_is(json_object *status, void *userdata)
{
        return h_json_int(status, "source.serial") == *(long long *)userdata &&
               !h_json_path(status, "source.error");
}

START_TEST(trickling_document_given_up)
{
        deploy_v1();
        long long failed_before = h_metric(&env, "lii_fetches_total{result=\"failed\"}");
        ck_assert_int_ge(failed_before, 0);

        /* A newer document that comes at 1 byte per second: without a time
         * limit liid would read it for ten minutes and see nothing else. */
        publish_raw_file(".trickle", "", 0);
        long long serial = h_publish(&env, &v2, 1, 0);
        const char *why =
            "/desired.json: not complete within the time limit of " SHORT_FETCH_TIMEOUT;
        expect_document_refused(why);
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        ck_assert_int_eq(h_json_int(st, "source.serial"), serial - 1);
        json_object_put(st);
        ck_assert(event_mentions("source.refused", why));
        ck_assert_int_gt(h_metric(&env, "lii_fetches_total{result=\"failed\"}"), failed_before);

        /* Served normally again, it is applied at the next attempt. */
        char trickle[1024];
        snprintf(trickle, sizeof trickle, "%s/.trickle", env.www);
        ck_assert_int_eq(unlink(trickle), 0);
        json_object_put(h_wait_status(&env, serial_is, &serial, 30000, "the newer document"));
        json_object_put(wait_generation(2));
}
END_TEST

/* ---- artifacts refused ---- */

START_TEST(truncated_download_refused)
{
        deploy_v1();
        struct h_service v = v2;
        char path[1024];
        snprintf(path, sizeof path, "%s/hello-2.tar.gz", env.www);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        v.size = st.st_size + 100;
        h_publish(&env, &v, 1, 0);
        expect_rollout_refused("declared");
}
END_TEST

START_TEST(oversize_artifact_refused)
{
        deploy_v1();
        struct h_service v = v2;
        v.size = 1000;
        h_publish(&env, &v, 1, 0);
        expect_rollout_refused("larger than the declared size 1000");
}
END_TEST

START_TEST(tampered_artifact_refused)
{
        deploy_v1();
        /* Bytes added after signing; the document carries the hash of the
         * tampered file, as an attacker who controls both would write it. */
        char path[1024];
        snprintf(path, sizeof path, "%s/hello-3.tar.gz", env.www);
        FILE *f = fopen(path, "a");
        ck_assert_ptr_nonnull(f);
        fputs("tampered", f);
        fclose(f);
        struct h_service v = {.name = "hello", .artifact = 3};
        h_publish(&env, &v, 1, 0);
        expect_rollout_refused("signature does not match the file");
}
END_TEST

START_TEST(wrong_hash_refused)
{
        deploy_v1();
        struct h_service v = v2;
        v.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        h_publish(&env, &v, 1, 0);
        expect_rollout_refused("SHA-256 mismatch");
}
END_TEST

START_TEST(hostile_archive_refused)
{
        deploy_v1();
        /* A well-signed, well-hashed archive that tries to write outside
         * its root: the unpacking policy refuses it whole. */
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "set -e; cd '%s'; mkdir -p evil/a; echo x > evil/a/f; "
                 "tar -C evil -czf evil.tar.gz --transform 's,^a/f,a/../../escape,' a/f",
                 env.dir);
        ck_assert_int_eq(system(cmd), 0);
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/evil.tar.gz", env.dir);
        snprintf(dst, sizeof dst, "%s/evil.tar.gz", env.www);
        ck_assert_int_eq(rename(src, dst), 0);
        h_sign_artifact(&env, dst);
        struct h_service v = {.name = "hello", .artifact = 1, .artifact_file = "evil.tar.gz"};
        h_publish(&env, &v, 1, 0);
        expect_rollout_refused("path leaves the artifact root");
}
END_TEST

START_TEST(trickling_artifact_refused)
{
        deploy_v1();
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/hello-2.tar.gz", env.www);
        snprintf(dst, sizeof dst, "%s/slow-2.tar.gz", env.www);
        ck_assert_int_eq(link(src, dst), 0);
        h_sign_artifact(&env, dst);
        struct h_service v = {.name = "hello", .artifact = 2, .artifact_file = "slow-2.tar.gz"};
        h_publish(&env, &v, 1, 0);
        /* 2 s plus 12 KiB at the default 64 KiB/s. */
        expect_rollout_refused("slow-2.tar.gz: not complete within the time limit of 2.");
}
END_TEST

START_TEST(plain_http_deploy)
{
        deploy_v1();
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        ck_assert_ptr_nonnull(strstr(h_json_str(st, "source.url"), "http://127.0.0.1:"));
        json_object_put(st);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("http");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void);
        } tests[] = {
            {"https_deploy", https_deploy_and_replace, setup_https},
            {"plain_http", plain_http_deploy, setup_http},
            {"etag_304", unchanged_document_costs_a_304, setup_https},
            {"lower_serial", lower_serial_refused, setup_http},
            {"equal_serial", equal_serial_other_bytes_refused, setup_http},
            {"expired", expired_document_refused, setup_http},
            {"oversize_doc", oversize_document_refused, setup_http},
            {"doc_404", missing_document_404, setup_http},
            {"doc_500", server_error_500, setup_http},
            {"unsigned_doc", unsigned_document_refused, setup_http},
            {"truncated", truncated_download_refused, setup_http},
            {"oversize_artifact", oversize_artifact_refused, setup_http},
            {"tampered", tampered_artifact_refused, setup_https},
            {"wrong_hash", wrong_hash_refused, setup_http},
            {"hostile_archive", hostile_archive_refused, setup_http},
            {"trickling_doc", trickling_document_given_up, setup_http_short_limit},
            {"trickling_artifact", trickling_artifact_refused, setup_http_short_limit},
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
