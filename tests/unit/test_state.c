/* The state file: what is written is what is read back, a damaged file is
 * refused rather than forgotten, and a save leaves no temporary behind. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char dir[512], path[600], sdir[600];

static void rm_rf(const char *p)
{
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
        ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
        snprintf(dir, sizeof dir, "%s/test-state.%d", LII_BUILD_DIR, getpid());
        rm_rf(dir);
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/state.json", dir);
        snprintf(sdir, sizeof sdir, "%s/state.d", dir);
}

static void teardown(void)
{
        rm_rf(dir);
}

static void spew(const char *file, const char *text)
{
        FILE *f = fopen(file, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

static ino_t inode_of(const char *file)
{
        struct stat st;
        ck_assert_int_eq(stat(file, &st), 0);
        return st.st_ino;
}

START_TEST(missing_file_is_empty_state)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert_uint_eq(s->n_services, 0);
        ck_assert_str_eq(s->doc_sha256, "");
        state_free(s);
}
END_TEST

START_TEST(round_trip)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        s->serial = 42;
        memcpy(s->doc_sha256, SHA_A, 65);
        s->clock_high_water_usec = 1234567;
        struct service_state *ss = state_get(s, "hello");
        ss->last_generation = 3;
        ss->current = instance_new("hello", 3, "{\"x\":1}", SHA_A, SHA_B, 4000);
        ss->current->started_usec = 99;
        ss->previous = instance_new("hello", 2, "{\"x\":0}", SHA_B, SHA_B, 4001);
        memcpy(ss->refused_spec_sha256, SHA_B, 65);
        rollout_record_set(&ss->last_rollout, 3, LII_RESULT_FAILED, "health check failed", 10, 20);
        ck_assert_int_eq(state_save_all(s, dir), 0);
        state_free(s);

        /* The node's file and one per service; no temporary left behind. */
        char file[700];
        ck_assert_int_eq(access(path, F_OK), 0);
        snprintf(file, sizeof file, "%s/hello.json", sdir);
        ck_assert_int_eq(access(file, F_OK), 0);
        snprintf(file, sizeof file, "%s.tmp", path);
        ck_assert_int_ne(access(file, F_OK), 0);
        snprintf(file, sizeof file, "%s/hello.json.tmp", sdir);
        ck_assert_int_ne(access(file, F_OK), 0);

        ck_assert_int_eq(state_load(dir, &s, &error), 0);
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
        ck_assert_uint_eq(ss->last_rollout.generation, 3);
        ck_assert_int_eq(ss->last_rollout.result, LII_RESULT_FAILED);
        ck_assert_str_eq(ss->last_rollout.reason, "health check failed");
        state_remove(s, "hello");
        ck_assert_ptr_null(state_find(s, "hello"));
        state_free(s);
}
END_TEST

/* Writes text to file, expects the state to be refused with a message that
 * names the file and contains why. */
static void expect_refused(const char *file, const char *text, const char *why)
{
        spew(file, text);
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_msg(state_load(dir, &s, &error) < 0, "accepted: %s", text);
        ck_assert_msg(strncmp(error, file, strlen(file)) == 0, "error: %s", error);
        ck_assert_msg(strstr(error, why) != NULL, "error: %s", error);
        free(error);
        unlink(file);
}

#define NODE_1  "{\"format\":\"lii.state/1\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"},"
#define INVALID "not a valid lii.state/2 state file"

START_TEST(services_found_by_name_in_any_order)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        const char *names[] = {"web", "api", "zeta", "cache", "b"};
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
        /* The node's file. */
        expect_refused(path, "", "not JSON");
        expect_refused(path, "{", "not JSON");
        expect_refused(path, "[]", "not JSON");
        expect_refused(path,
                       "{\"format\":\"lii.state/9\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"}}",
                       INVALID);
        expect_refused(
            path, "{\"format\":\"lii.state/2\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"}} x",
            "not JSON");
        expect_refused(path, "{\"format\":\"lii.state/2\",\"source\":{\"doc_sha256\":\"\"}}",
                       INVALID);
        /* Format 1, with every service inside. */
        expect_refused(path, NODE_1 "\"services\":{}} trailing", "not JSON");
        expect_refused(path, NODE_1 "\"services\":{\"Bad Name\":{\"last_generation\":1}}}",
                       INVALID);
        expect_refused(path,
                       NODE_1
                       "\"services\":{\"a\":{\"last_generation\":1,\"refused_spec_sha256\":\"\","
                       "\"current\":{\"generation\":1,\"spec\":\"{}\",\"spec_sha256\":\"x\","
                       "\"artifact_sha256\":\"x\",\"port\":1}}}}",
                       INVALID);

        /* A service's file. */
        mkdir(sdir, 0700);
        char file[700];
        snprintf(file, sizeof file, "%s/a.json", sdir);
        expect_refused(file, "{", "not JSON");
        expect_refused(file, "{\"last_generation\":1,\"refused_spec_sha256\":\"\"}", INVALID);
        expect_refused(
            file,
            "{\"format\":\"lii.state/2\",\"last_generation\":1,\"refused_spec_sha256\":\"\","
            "\"current\":{\"generation\":2,\"spec\":\"{}\",\"spec_sha256\":\"" SHA_A "\","
            "\"artifact_sha256\":\"" SHA_A "\",\"port\":1}}",
            INVALID);
        /* Something else in the folder is not silently skipped. */
        snprintf(file, sizeof file, "%s/Bad Name.json", sdir);
        expect_refused(file, "{}", "not a service's state file");
        snprintf(file, sizeof file, "%s/notes.txt", sdir);
        expect_refused(file, "{}", "not a service's state file");
}
END_TEST

/* Saves a state whose hello service has a last rollout with this reason
 * and returns the text of hello's file. */
static char *saved_with_reason(const char *reason)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        struct service_state *ss = state_get(s, "hello");
        ss->last_generation = 1;
        rollout_record_set(&ss->last_rollout, 1, LII_RESULT_FAILED, reason, 10, 20);
        ck_assert_int_eq(state_save_all(s, dir), 0);
        state_free(s);

        char file[700], *text = NULL;
        size_t len;
        snprintf(file, sizeof file, "%s/hello.json", sdir);
        ck_assert_int_eq(read_file_capped(file, 65536, &text, &len), 0);
        return text;
}

START_TEST(strings_are_strict_utf8)
{
        /* What liid writes reads back, whatever characters it holds. */
        const char *fine = "caf\xc3\xa9 \xef\xbb\xbf \xf4\x8f\xbf\xbf \xf0\x9f\x98\x80 \x01";
        free(saved_with_reason(fine));
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert_str_eq(state_find(s, "hello")->last_rollout.reason, fine);
        state_free(s);

        /* A reason cut short inside a character is stored escaped, so that
         * liid never writes what it would refuse to read. */
        free(saved_with_reason("GET http://127.0.0.1/caf\xc3"));
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert_str_eq(state_find(s, "hello")->last_rollout.reason,
                         "GET http://127.0.0.1/caf\\xc3");
        state_free(s);

        /* A file with a string that is not strict UTF-8, or holds a NUL, is
         * damaged: refused with where and why, in the node's file as in a
         * service's. */
        static const struct {
                const char *bytes;
                const char *why;
        } bad[] = {
            {"\xc0\xaf", "not valid UTF-8 (overlong encoding at byte "},
            {"\xed\xa0\x80", "not valid UTF-8 (encoded surrogate at byte "},
            {"\xf4\x90\x80\x80", "not valid UTF-8 (code point above U+10FFFF at byte "},
            {"\xe2\x82", "not valid UTF-8 (truncated sequence at byte "},
            {"\\ud800", "not valid UTF-8 (unpaired surrogate \\ud800 at byte "},
            {"\\u0000", "contains a NUL character (\\u0000 at byte "},
        };
        char file[700];
        snprintf(file, sizeof file, "%s/hello.json", sdir);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = saved_with_reason("MARK");
                char *mark = strstr(text, "MARK");
                ck_assert_ptr_nonnull(mark);
                _cleanup_free_ char *damaged =
                    xasprintf("%.*s%s%s", (int)(mark - text), text, bad[i].bytes, mark + 4);
                expect_refused(file, damaged, bad[i].why);
        }

        unlink(file);
        expect_refused(path,
                       "{\"format\":\"lii.state/2\",\"source\":{\"serial\":1,\"doc_sha256\":\"\"},"
                       "\"x\":\"\xed\xbf\xbf\"}",
                       "not valid UTF-8 (encoded surrogate at byte 67)");
}
END_TEST

START_TEST(interrupted_save_is_ignored)
{
        /* A crash between writing the temporary file and renaming it: the
         * saved state is the one before. */
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        state_get(s, "web")->last_generation = 4;
        ck_assert_int_eq(state_save_all(s, dir), 0);
        state_free(s);
        char tmp[700];
        snprintf(tmp, sizeof tmp, "%s/web.json.tmp", sdir);
        spew(tmp, "{\"format\":\"lii.state/2\",\"last_gen");
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert_uint_eq(state_find(s, "web")->last_generation, 4);
        state_free(s);
}
END_TEST

START_TEST(one_service_saved_alone)
{
        /* A transition of one service rewrites its file and no other. */
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        s->serial = 7;
        state_get(s, "api")->last_generation = 1;
        state_get(s, "web")->last_generation = 1;
        ck_assert_int_eq(state_save_all(s, dir), 0);
        char api[700], web[700];
        snprintf(api, sizeof api, "%s/api.json", sdir);
        snprintf(web, sizeof web, "%s/web.json", sdir);
        ino_t api_ino = inode_of(api), web_ino = inode_of(web), node_ino = inode_of(path);

        struct service_state *ss = state_find(s, "web");
        ss->last_generation = 2;
        ss->pending = instance_new("web", 2, "{}", SHA_A, SHA_B, 4100);
        ck_assert_int_eq(state_save_service(ss, dir), 0);
        ck_assert(inode_of(web) != web_ino);
        ck_assert(inode_of(api) == api_ino);
        ck_assert(inode_of(path) == node_ino);
        state_free(s);

        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert_uint_eq(s->serial, 7);
        ck_assert_uint_eq(state_find(s, "web")->pending->port, 4100);
        ck_assert_uint_eq(state_find(s, "api")->last_generation, 1);
        state_free(s);
}
END_TEST

START_TEST(format_1_is_read_and_rewritten)
{
        spew(path, NODE_1
             "\"paused\":true,\"services\":{\"hello\":{\"last_generation\":2,"
             "\"refused_spec_sha256\":\"\",\"current\":{\"generation\":2,\"spec\":\"{}\","
             "\"spec_sha256\":\"" SHA_A "\",\"artifact_sha256\":\"" SHA_B "\",\"port\":4000}}}}");
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert(s->legacy);
        ck_assert(s->paused);
        ck_assert_uint_eq(state_find(s, "hello")->current->port, 4000);
        ck_assert_int_eq(state_save_all(s, dir), 0);
        ck_assert(!s->legacy);
        state_free(s);

        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ck_assert(!s->legacy);
        ck_assert(s->paused);
        ck_assert_uint_eq(s->serial, 1);
        ck_assert_str_eq(state_find(s, "hello")->current->artifact_sha256, SHA_B);
        state_free(s);
}
END_TEST

START_TEST(artifact_history)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
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
        ck_assert_int_eq(state_save_service(ss, dir), 0);
        state_free(s);
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        ss = state_find(s, "hello");
        ck_assert_uint_eq(strv_length(ss->artifacts), 2);
        ck_assert_str_eq(ss->artifacts[1], SHA_A);
        state_free(s);
}
END_TEST

static bool exists(const char *file)
{
        return access(file, F_OK) == 0;
}

/* Writes beyond limit bytes fail with EFBIG, as a full disk fails them with
 * ENOSPC (the signal that would come with it is ignored). */
static void limit_file_size(rlim_t limit)
{
        struct rlimit rl;
        ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
        rl.rlim_cur = limit;
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* A save that cannot be written whole fails, leaves the file it was to
 * replace as it was, and leaves no temporary file; once writes work again,
 * the same save succeeds. */
START_TEST(failed_save_leaves_the_old_file)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        s->serial = 1;
        memcpy(s->doc_sha256, SHA_A, 65);
        struct service_state *ss = state_get(s, "hello");
        ss->last_generation = 1;
        ss->current = instance_new("hello", 1, "{\"x\":1}", SHA_A, SHA_B, 4000);
        ck_assert_int_eq(state_save_all(s, dir), 0);
        char service_file[700], node_tmp[720], service_tmp[720];
        snprintf(service_file, sizeof service_file, "%s/hello.json", sdir);
        snprintf(node_tmp, sizeof node_tmp, "%s.tmp", path);
        snprintf(service_tmp, sizeof service_tmp, "%s.tmp", service_file);
        ino_t node_ino = inode_of(path), service_ino = inode_of(service_file);

        signal(SIGXFSZ, SIG_IGN);
        limit_file_size(64);
        s->serial = 2;
        ss->last_generation = 2;
        ss->pending = instance_new("hello", 2, "{\"x\":2}", SHA_B, SHA_B, 4001);
        ck_assert_int_eq(state_save_node(s, dir), -EFBIG);
        ck_assert_int_eq(state_save_service(ss, dir), -EFBIG);
        ck_assert_int_eq(state_save_all(s, dir), -EFBIG);
        limit_file_size(RLIM_INFINITY);

        ck_assert(!exists(node_tmp));
        ck_assert(!exists(service_tmp));
        ck_assert_uint_eq(inode_of(path), node_ino);
        ck_assert_uint_eq(inode_of(service_file), service_ino);
        struct state *old = NULL;
        ck_assert_int_eq(state_load(dir, &old, &error), 0);
        ck_assert_uint_eq(old->serial, 1);
        ck_assert_uint_eq(state_find(old, "hello")->last_generation, 1);
        ck_assert_ptr_null(state_find(old, "hello")->pending);
        state_free(old);

        /* Rewritten whole, not patched: a new file takes the old one's place. */
        ck_assert_int_eq(state_save_all(s, dir), 0);
        ck_assert_uint_ne(inode_of(service_file), service_ino);
        ck_assert_int_eq(state_load(dir, &old, &error), 0);
        ck_assert_uint_eq(old->serial, 2);
        ck_assert_uint_eq(state_find(old, "hello")->pending->generation, 2);
        state_free(old);
        state_free(s);
}
END_TEST

/* A transition is undone by swapping back a copy taken before it: the copy
 * shares nothing with the record (the sanitizer build checks the frees). */
START_TEST(copy_and_swap_undo_a_transition)
{
        struct state *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(state_load(dir, &s, &error), 0);
        struct service_state *ss = state_get(s, "hello");
        ss->last_generation = 3;
        ss->current = instance_new("hello", 2, "{\"x\":2}", SHA_A, SHA_A, 4000);
        ss->current->artifact_key_id = xstrdup("0123456789ABCDEF");
        ss->current->artifact_comment = xstrdup("release 2");
        ss->previous = instance_new("hello", 1, "{\"x\":1}", SHA_B, SHA_B, 4001);
        ss->pending = instance_new("hello", 3, "{\"x\":3}", SHA_B, SHA_A, 4002);
        state_remember_artifact(ss, SHA_A, 3);
        rollout_record_set(&ss->last_rollout, 2, LII_RESULT_SUCCEEDED, "before", 1, 2);

        struct service_state *before = state_service_copy(ss);
        /* A promotion, as rollout.c makes it. */
        instance_free(ss->previous);
        ss->previous = TAKE_PTR(ss->current);
        ss->current = TAKE_PTR(ss->pending);
        state_remember_artifact(ss, SHA_B, 3);
        rollout_record_set(&ss->last_rollout, 3, LII_RESULT_SUCCEEDED, "after", 3, 4);
        ck_assert_uint_eq(before->current->generation, 2);
        ck_assert_str_eq(before->last_rollout.reason, "before");

        state_service_swap(ss, before);
        state_service_free(before);
        ck_assert_uint_eq(ss->current->generation, 2);
        ck_assert_str_eq(ss->current->unit, "lii-hello@2.service");
        ck_assert_str_eq(ss->current->artifact_comment, "release 2");
        ck_assert_uint_eq(ss->previous->generation, 1);
        ck_assert_uint_eq(ss->pending->generation, 3);
        ck_assert_uint_eq(strv_length(ss->artifacts), 1);
        ck_assert_str_eq(ss->artifacts[0], SHA_A);
        ck_assert_str_eq(ss->last_rollout.reason, "before");
        ck_assert_int_eq(state_save_service(ss, dir), 0);
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
        tcase_add_test(tc, strings_are_strict_utf8);
        tcase_add_test(tc, interrupted_save_is_ignored);
        tcase_add_test(tc, one_service_saved_alone);
        tcase_add_test(tc, format_1_is_read_and_rewritten);
        tcase_add_test(tc, artifact_history);
        tcase_add_test(tc, failed_save_leaves_the_old_file);
        tcase_add_test(tc, copy_and_swap_undo_a_transition);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
