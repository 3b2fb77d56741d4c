/* Documents liid must refuse, end to end: signed by a trusted key, yet
 * holding strings that are not strict UTF-8, nested too deep or breaking
 * the schema. What an operator and automation see: the reason in status
 * and events (once, with the JSON path), the applied serial and the
 * running instance untouched, and the next good document applied. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "util.h"

static struct h_env env;

static void setup(void)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "document");
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

static const struct h_service hello_v1 = {.name = "hello", .artifact = 1};
static const struct h_service hello_v2 = {.name = "hello", .artifact = 2};

static bool source_error_is(json_object *status, void *text)
{
        const char *error = h_json_str(status, "source.error");
        return error && strcmp(error, text) == 0;
}

static bool source_error_cleared(json_object *status, void *serial)
{
        return !h_json_path(status, "source.error") &&
               h_json_int(status, "source.serial") == *(long long *)serial;
}

/* The messages of the source.refused events after seq, in order, one per
 * line, and their count. */
static int refusals_after(long long seq, char **ret_messages)
{
        char path[64], *body = NULL;
        snprintf(path, sizeof path, "/v1/events?after=%lld", seq);
        ck_assert_int_eq(h_api_get_text(&env, path, &body), 200);

        char *messages = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&messages, &len);
        int n = 0;
        char *save = NULL;
        for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                json_object *e = json_tokener_parse(line);
                ck_assert_msg(e != NULL, "not JSON: %s", line);
                if (strcmp(h_json_str(e, "type"), "source.refused") == 0) {
                        fprintf(out, "%s\n", h_json_str(e, "message"));
                        n++;
                }
                json_object_put(e);
        }
        fclose(out);
        free(body);
        if (ret_messages)
                *ret_messages = messages;
        else
                free(messages);
        return n;
}

static long long event_seq(void)
{
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        long long seq = h_json_int(st, "event_seq");
        json_object_put(st);
        ck_assert(seq >= 0);
        return seq;
}

/* How many fetches of the source liid has finished (lii_fetches_total). */
static long long fetches(void)
{
        char *text = NULL;
        ck_assert_int_eq(h_api_get_text(&env, "/v1/metrics", &text), 200);
        long long n = 0;
        for (const char *p = strstr(text, "lii_fetches_total{"); p;
             p = strstr(p + 1, "lii_fetches_total{"))
                n += strtoll(strchr(p, '}') + 1, NULL, 10);
        free(text);
        return n;
}

/* Has liid fetch the source again and waits, 10 s at most, until it did. */
static void sync_and_wait(void)
{
        long long before = fetches();
        json_object *o = NULL;
        ck_assert_int_eq(h_api_post(&env, "/v1/sync", &o), 200);
        json_object_put(o);
        for (int i = 0; i < 500 && fetches() == before; i++) {
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        ck_assert_int_gt(fetches(), before);
}

START_TEST(invalid_utf8_changes_nothing)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        long long pid = h_json_int(svc, "current.main_pid");
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        /* Signed documents, each with one string that D-Bus would refuse
         * once the instance starts, or that json-c would quietly read as
         * something else than the bytes say. */
        static const struct {
                const char *env;        /* the service's "env", as JSON text */
                const char *extra_args; /* appended to its "exec" */
                const char *error;
        } bad[] = {
            {"{\"GREETING\":\"hi \xc0\xaf\"}", NULL,
             "services.hello.env.GREETING: not valid UTF-8 (overlong encoding at byte 3)"},
            {"{\"GREETING\":\"\\ud800 alone\"}", NULL,
             "services.hello.env.GREETING: not valid UTF-8 (unpaired surrogate \\ud800 at "
             "byte 0)"},
            {"{\"GREETING\":\"a\\u0000b\"}", NULL,
             "services.hello.env.GREETING: contains a NUL character (\\u0000 at byte 1)"},
            {"{\"GREETING\":\"hi\",\"X\xed\xa0\x80\":\"1\"}", NULL,
             "services.hello.env.X\\xed\\xa0\\x80: object key not valid UTF-8 (encoded "
             "surrogate at byte 1)"},
            {NULL, ",\"\xf4\x90\x80\x80\"",
             "services.hello.exec[3]: not valid UTF-8 (code point above U+10FFFF at byte "
             "0)"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct h_service v2 = hello_v2;
                v2.env = bad[i].env;
                v2.extra_args = bad[i].extra_args;
                h_publish(&env, &v2, 1, 0);
                json_object *st =
                    h_wait_status(&env, source_error_is, (void *)bad[i].error, 10000, bad[i].error);
                ck_assert_int_eq(h_json_int(st, "source.serial"), 1);
                ck_assert_str_eq(h_json_str(st, "services.hello.state"), "running");
                ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
                ck_assert_int_eq(h_json_int(st, "services.hello.current.main_pid"), pid);
                json_object_put(st);
        }
        /* Nothing was started for them. */
        ck_assert(!h_unit_active(&env, "lii-hello@2.service"));
        char *body = NULL;
        ck_assert_int_eq(h_http_get(port, "/version", &body), 200);
        ck_assert_str_eq(body, "v1\n");
        free(body);

        /* A refused document leaves no trace in what survives a restart:
         * the serial on disk is still the applied one. */
        h_kill_liid(&env, SIGKILL);
        h_start_liid(&env);
        svc = h_wait_generation(&env, "hello", 1);
        ck_assert_int_eq(h_json_int(svc, "current.main_pid"), pid);
        json_object_put(svc);

        /* The next good document is applied, with a serial above every
         * refused one, and the reason is gone from status. */
        long long serial = h_publish(&env, &hello_v2, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 2));
        json_object_put(
            h_wait_status(&env, source_error_cleared, &serial, 10000, "the good document"));
}
END_TEST

START_TEST(parser_errors_read_once)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 1));
        long long mark = event_seq();

        /* A fault of the text as a whole names the document, once. */
        h_publish_raw(&env, "{\"format\":\"lii.desired/1\",\"serial\":2,\"services\":"
                            "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}}");
        json_object_put(h_wait_status(&env, source_error_is,
                                      "document: nested deeper than 8 levels", 10000,
                                      "the nested document to be refused"));

        /* A fault inside names its JSON path, alone. */
        struct h_service bad = hello_v2;
        bad.sha256 = "not-a-hash";
        h_publish(&env, &bad, 1, 0);
        json_object_put(h_wait_status(&env, source_error_is,
                                      "services.hello.artifact.sha256: not 64 hex digits", 10000,
                                      "the invalid document to be refused"));

        /* And so do the events. */
        char *messages = NULL;
        ck_assert_int_eq(refusals_after(mark, &messages), 2);
        ck_assert_str_eq(messages, "document: nested deeper than 8 levels\n"
                                   "services.hello.artifact.sha256: not 64 hex digits\n");
        free(messages);
}
END_TEST

START_TEST(one_event_per_refused_document)
{
        h_publish(&env, &hello_v1, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 1));
        long long mark = event_seq();

        /* Two documents, refused for the same reason: automation following
         * the events hears of each. */
        const char *why = "services.hello.env.GREETING: not valid UTF-8 (encoded surrogate at "
                          "byte 0)";
        struct h_service bad = hello_v2;
        bad.env = "{\"GREETING\":\"\xed\xa0\x80\"}";
        h_publish(&env, &bad, 1, 0);
        json_object_put(h_wait_status(&env, source_error_is, (void *)why, 10000, why));
        ck_assert_int_eq(refusals_after(mark, NULL), 1);

        h_publish(&env, &bad, 1, 0);
        for (int i = 0; i < 500 && refusals_after(mark, NULL) < 2; i++) {
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        char *messages = NULL;
        ck_assert_int_eq(refusals_after(mark, &messages), 2);
        char want[512];
        snprintf(want, sizeof want, "%s\n%s\n", why, why);
        ck_assert_str_eq(messages, want);
        free(messages);

        /* The same refused bytes fetched again are no news. */
        for (int i = 0; i < 3; i++)
                sync_and_wait();
        ck_assert_int_eq(refusals_after(mark, NULL), 2);
        json_object *st = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        ck_assert_str_eq(h_json_str(st, "source.error"), why);
        ck_assert_int_eq(h_json_int(st, "source.serial"), 1);
        json_object_put(st);

        /* A good document clears the reason; a bad one after it is news
         * again. */
        long long serial = h_publish(&env, &hello_v2, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 2));
        json_object_put(
            h_wait_status(&env, source_error_cleared, &serial, 10000, "the good document"));
        h_publish(&env, &bad, 1, 0);
        json_object_put(h_wait_status(&env, source_error_is, (void *)why, 10000, why));
        ck_assert_int_eq(refusals_after(mark, NULL), 3);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("document");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"utf8", invalid_utf8_changes_nothing},
            {"once", parser_errors_read_once},
            {"events", one_event_per_refused_document},
        };
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
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
