/* The state file: what is written is what is read back, a damaged file is
 * refused rather than forgotten, and a save leaves no temporary behind. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char dir[512], path[600];

static void setup(void)
{
        snprintf(dir, sizeof dir, "%s/test-state.%d", LII_BUILD_DIR, getpid());
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/state.json", dir);
        unlink(path);
}

static void teardown(void)
{
        unlink(path);
        rmdir(dir);
}

START_TEST(missing_file_is_empty_state)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(path, &s, &error), 0);
        ck_assert_uint_eq(s->n_services, 0);
        ck_assert_str_eq(s->doc_sha256, "");
        state_free(s);
}
END_TEST

START_TEST(round_trip)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(path, &s, &error), 0);
        s->serial = 42;
        memcpy(s->doc_sha256, SHA_A, 65);
        s->clock_high_water_usec = 1234567;
        struct service_state *ss = state_get(s, "hello");
        ss->last_generation = 3;
        ss->current = instance_new("hello", 3, "{\"x\":1}", SHA_A, SHA_B, 4000);
        ss->current->started_usec = 99;
        ss->previous = instance_new("hello", 2, "{\"x\":0}", SHA_B, SHA_B, 4001);
        memcpy(ss->refused_spec_sha256, SHA_B, 65);
        rollout_record_set(&ss->last_rollout, LII_RESULT_FAILED, "health check failed", 10, 20);
        ck_assert_int_eq(state_save(s, path), 0);
        state_free(s);

        char tmp[700];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        ck_assert_int_ne(access(tmp, F_OK), 0);

        ck_assert_int_eq(state_load(path, &s, &error), 0);
        ck_assert_uint_eq(s->serial, 42);
        ck_assert_str_eq(s->doc_sha256, SHA_A);
        ck_assert_uint_eq(s->clock_high_water_usec, 1234567);
        ss = state_find(s, "hello");
        ck_assert_ptr_nonnull(ss);
        ck_assert_uint_eq(ss->last_generation, 3);
        ck_assert_str_eq(ss->current->unit, "lii-hello@3.service");
        ck_assert_str_eq(ss->current->spec_json, "{\"x\":1}");
        ck_assert_str_eq(ss->current->artifact_sha256, SHA_B);
        ck_assert_int_eq(ss->current->port, 4000);
        ck_assert_uint_eq(ss->current->started_usec, 99);
        ck_assert_uint_eq(ss->previous->generation, 2);
        ck_assert_ptr_null(ss->pending);
        ck_assert_str_eq(ss->refused_spec_sha256, SHA_B);
        ck_assert_int_eq(ss->last_rollout.result, LII_RESULT_FAILED);
        ck_assert_str_eq(ss->last_rollout.reason, "health check failed");
        state_remove(s, "hello");
        ck_assert_ptr_null(state_find(s, "hello"));
        state_free(s);
}
END_TEST

static void expect_refused(const char *text)
{
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_msg(state_load(path, &s, &error) < 0, "accepted: %s", text);
        ck_assert_ptr_nonnull(strstr(error, "not a valid lii.state/1 state file"));
        free(error);
}

START_TEST(services_found_by_name_in_any_order)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(path, &s, &error), 0);
        const char *names[] = { "web", "api", "zeta", "cache", "b" };
        for (size_t i = 0; i < 5; i++)
                state_get(s, names[i])->last_generation = i + 1;
        ck_assert_uint_eq(s->n_services, 5);
        for (size_t i = 0; i < 5; i++) {
                ck_assert_ptr_eq(state_get(s, names[i]), state_find(s, names[i]));
                ck_assert_uint_eq(state_find(s, names[i])->last_generation, i + 1);
        }
        ck_assert_ptr_null(state_find(s, "nope"));
        state_remove(s, "cache");
        state_remove(s, "nope");
        ck_assert_uint_eq(s->n_services, 4);
        ck_assert_ptr_null(state_find(s, "cache"));
        ck_assert_uint_eq(state_find(s, "zeta")->last_generation, 3);
        state_free(s);
}
END_TEST

START_TEST(damaged_files_are_refused)
{
        expect_refused("");
        expect_refused("{");
        expect_refused("{\"format\":\"lii.state/2\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"},"
                       "\"services\":{}}");
        expect_refused("{\"format\":\"lii.state/1\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"},"
                       "\"services\":{}} trailing");
        expect_refused("{\"format\":\"lii.state/1\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"},"
                       "\"services\":{\"Bad Name\":{\"last_generation\":1}}}");
        expect_refused("{\"format\":\"lii.state/1\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"},"
                       "\"services\":{\"a\":{\"last_generation\":1,\"refused_spec_sha256\":\"\","
                       "\"current\":{\"generation\":1,\"spec\":\"{}\",\"spec_sha256\":\"x\","
                       "\"artifact_sha256\":\"x\",\"port\":1}}}}");
}
END_TEST

START_TEST(artifact_history)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(path, &s, &error), 0);
        struct service_state *ss = state_get(s, "hello");
        state_remember_artifact(ss, SHA_A, 2);
        state_remember_artifact(ss, SHA_B, 2);
        state_remember_artifact(ss, SHA_A, 2); /* again: moves to the front, no duplicate */
        ck_assert_uint_eq(strv_length(ss->artifacts), 2);
        ck_assert_str_eq(ss->artifacts[0], SHA_A);
        ck_assert_str_eq(ss->artifacts[1], SHA_B);
        char c[65];
        memset(c, 'c', 64);
        c[64] = '\0';
        state_remember_artifact(ss, c, 2); /* the oldest falls out */
        ck_assert_str_eq(ss->artifacts[0], c);
        ck_assert_str_eq(ss->artifacts[1], SHA_A);
        ck_assert_ptr_null(ss->artifacts[2]);
        ck_assert_int_eq(state_save(s, path), 0);
        state_free(s);
        ck_assert_int_eq(state_load(path, &s, &error), 0);
        ss = state_find(s, "hello");
        ck_assert_uint_eq(strv_length(ss->artifacts), 2);
        ck_assert_str_eq(ss->artifacts[1], SHA_A);
        state_free(s);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("state");
        TCase *tc = tcase_create("state");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, missing_file_is_empty_state);
        tcase_add_test(tc, round_trip);
        tcase_add_test(tc, services_found_by_name_in_any_order);
        tcase_add_test(tc, damaged_files_are_refused);
        tcase_add_test(tc, artifact_history);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
