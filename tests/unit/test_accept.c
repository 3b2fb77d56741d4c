/* accept_document(): every rule that decides whether a delivered document
 * may be applied, with keys and signatures made by the real minisign. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accept.h"
#include "util.h"
#include "harness.h"

#define MINISIGN_TOOL "/usr/bin/minisign"
#define URL           "https://example.invalid/desired.json"
#define DAY_USEC      (24ULL * 3600 * USEC_PER_SEC)

static char tmpdir[] = LII_BUILD_DIR "/test-accept-XXXXXX";
static struct minisign_keyring *trusted;

/* Runs the real minisign; false when it fails. */
static bool minisign(const char *const argv[])
{
        pid_t pid = fork();
        if (pid < 0)
                return false;
        if (pid == 0) {
                int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                execv(MINISIGN_TOOL, (char *const *)argv);
                _exit(127);
        }
        int status;
        return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A key pair named name: name.key and keys-name/name.pub. */
static bool make_key(const char *name)
{
        _cleanup_free_ char *dir = xasprintf("%s/keys-%s", tmpdir, name);
        _cleanup_free_ char *pub = xasprintf("%s/%s.pub", dir, name);
        _cleanup_free_ char *sec = xasprintf("%s/%s.key", tmpdir, name);
        const char *argv[] = {"minisign", "-G", "-W", "-f", "-p", pub, "-s", sec, NULL};
        return mkdir(dir, 0700) == 0 && minisign(argv);
}

/* The .minisig of doc by key name, malloc'ed. */
static char *sign(const char *name, const char *doc, size_t *ret_len)
{
        _cleanup_free_ char *file = xasprintf("%s/doc", tmpdir);
        _cleanup_free_ char *sig = xasprintf("%s/doc.minisig", tmpdir);
        _cleanup_free_ char *sec = xasprintf("%s/%s.key", tmpdir, name);
        FILE *f = fopen(file, "we");
        ck_assert_ptr_nonnull(f);
        fputs(doc, f);
        fclose(f);
        const char *argv[] = {"minisign", "-S", "-s", sec, "-m", file, "-t", "test", NULL};
        ck_assert_msg(minisign(argv), "minisign -S failed");
        char *text = NULL;
        _cleanup_free_ char *error = NULL;
        ck_assert_int_eq(read_file_capped(sig, 4096, &text, ret_len), 0);
        return text;
}

static char *document(unsigned serial, const char *expires)
{
        return xasprintf("{\"format\":\"lii.desired/1\",\"serial\":%u,%s%s%s\"services\":{}}",
                         serial, expires ? "\"expires\":\"" : "", expires ? expires : "",
                         expires ? "\"," : "");
}

/* The node's record and the time, for one delivery. */
struct node {
        uint64_t serial;
        const char *sha;
        uint64_t high_water;
        uint64_t now;
};

static int judge(const char *doc, const char *sig, size_t sig_len, const struct node *n,
                 struct accept_result *ret)
{
        struct accept_input in = {
            .doc = doc,
            .doc_len = strlen(doc),
            .sig = sig,
            .sig_len = sig_len,
            .sig_error = sig ? NULL : "HTTP 404",
            .keys = trusted,
            .source_url = URL,
            .applied_serial = n->serial,
            .applied_sha256 = n->sha,
            .clock_high_water_usec = n->high_water,
            .now_usec = n->now,
        };
        return accept_document(&in, ret);
}

static uint64_t at(const char *rfc3339)
{
        uint64_t usec;
        ck_assert_int_eq(parse_rfc3339(rfc3339, &usec), 0);
        return usec;
}

static const struct node fresh = {.sha = "", .now = 1700000000ULL * USEC_PER_SEC};

START_TEST(signed_document_is_accepted_with_its_signer)
{
        _cleanup_free_ char *doc = document(1, NULL);
        size_t len;
        _cleanup_free_ char *sig = sign("good", doc, &len);
        struct accept_result r;
        ck_assert_int_eq(judge(doc, sig, len, &fresh, &r), 0);
        ck_assert_ptr_nonnull(r.desired);
        ck_assert_uint_eq(r.desired->serial, 1);
        ck_assert_ptr_nonnull(r.key_id);
        ck_assert_str_eq(r.trusted_comment, "test");
        ck_assert_uint_eq(r.clock_usec, fresh.now);
        ck_assert_uint_eq(strlen(r.doc_sha256), 64);
        accept_result_done(&r);
}
END_TEST

START_TEST(unknown_key_is_refused)
{
        _cleanup_free_ char *doc = document(1, NULL);
        size_t len;
        _cleanup_free_ char *sig = sign("stranger", doc, &len);
        struct accept_result r;
        ck_assert_int_lt(judge(doc, sig, len, &fresh, &r), 0);
        ck_assert_ptr_null(r.desired);
        ck_assert_msg(strstr(r.error, URL ".minisig: ") && strstr(r.error, "not trusted"), "%s",
                      r.error);
        ck_assert_int_eq(r.refused_serial, -1);
        accept_result_done(&r);
}
END_TEST

START_TEST(bad_or_missing_signature_is_refused)
{
        _cleanup_free_ char *doc = document(1, NULL);
        size_t len;
        _cleanup_free_ char *sig = sign("good", doc, &len);
        /* One byte of the document changed after signing. */
        _cleanup_free_ char *other = document(2, NULL);
        struct accept_result r;
        ck_assert_int_lt(judge(other, sig, len, &fresh, &r), 0);
        ck_assert_msg(strstr(r.error, URL ".minisig: "), "%s", r.error);
        ck_assert_int_eq(r.refused_serial, -1); /* anyone's claim */
        accept_result_done(&r);

        ck_assert_int_eq(judge(doc, NULL, 0, &fresh, &r), -ENOENT);
        ck_assert_str_eq(r.error, "signature: HTTP 404");
        accept_result_done(&r);
}
END_TEST

START_TEST(lower_serial_is_refused)
{
        _cleanup_free_ char *doc = document(4, NULL);
        size_t len;
        _cleanup_free_ char *sig = sign("good", doc, &len);
        struct node n = fresh;
        n.serial = 5;
        n.sha = "0000000000000000000000000000000000000000000000000000000000000000";
        struct accept_result r;
        ck_assert_int_eq(judge(doc, sig, len, &n, &r), -ESTALE);
        ck_assert_str_eq(
            r.error, "document: serial 4 is lower than the applied serial 5 (rollback refused)");
        ck_assert_int_eq(r.refused_serial, 4);
        accept_result_done(&r);

        /* Before any document was applied, any serial goes. */
        ck_assert_int_eq(judge(doc, sig, len, &fresh, &r), 0);
        accept_result_done(&r);
}
END_TEST

START_TEST(equal_serial_needs_equal_bytes)
{
        _cleanup_free_ char *doc = document(5, NULL);
        size_t len;
        _cleanup_free_ char *sig = sign("good", doc, &len);
        struct accept_result r;
        ck_assert_int_eq(judge(doc, sig, len, &fresh, &r), 0);
        char applied[65];
        memcpy(applied, r.doc_sha256, sizeof applied);
        accept_result_done(&r);

        /* The same bytes again (after a restart): accepted. */
        struct node n = fresh;
        n.serial = 5;
        n.sha = applied;
        ck_assert_int_eq(judge(doc, sig, len, &n, &r), 0);
        accept_result_done(&r);

        /* Other bytes under the same serial: equivocation. */
        _cleanup_free_ char *twin = document(5, "2099-01-01T00:00:00Z");
        _cleanup_free_ char *twin_sig = sign("good", twin, &len);
        ck_assert_int_eq(judge(twin, twin_sig, len, &n, &r), -EEXIST);
        ck_assert_str_eq(r.error, "document: serial 5 was already applied with other content "
                                  "(refused)");
        ck_assert_int_eq(r.refused_serial, 5);
        accept_result_done(&r);
}
END_TEST

START_TEST(expiry_against_clock_and_high_water_mark)
{
        _cleanup_free_ char *doc = document(1, "2026-06-01T00:00:00Z");
        size_t len;
        _cleanup_free_ char *sig = sign("good", doc, &len);
        struct accept_result r;

        struct node before = fresh;
        before.now = at("2026-05-31T00:00:00Z");
        ck_assert_int_eq(judge(doc, sig, len, &before, &r), 0);
        accept_result_done(&r);

        /* At the expiry itself it is over. */
        struct node expired = fresh;
        expired.now = at("2026-06-01T00:00:00Z");
        ck_assert_int_eq(judge(doc, sig, len, &expired, &r), -ETIME);
        ck_assert_str_eq(r.error, "document: expired at 2026-06-01T00:00:00Z");
        ck_assert_int_eq(r.refused_serial, 1);
        accept_result_done(&r);

        /* A clock set back does not revive it: the node has seen a later
         * time, and that is what counts and what is to be recorded. */
        struct node set_back = fresh;
        set_back.now = at("2026-05-01T00:00:00Z");
        set_back.high_water = at("2026-06-02T00:00:00Z");
        ck_assert_int_eq(judge(doc, sig, len, &set_back, &r), -ETIME);
        accept_result_done(&r);
        set_back.high_water = at("2026-05-20T00:00:00Z");
        ck_assert_int_eq(judge(doc, sig, len, &set_back, &r), 0);
        ck_assert_uint_eq(r.clock_usec, set_back.high_water);
        accept_result_done(&r);
}
END_TEST

START_TEST(malformed_and_oversized_are_refused_with_their_place)
{
        struct accept_result r;
        size_t len;
        const char *bad = "{\"format\":\"lii.desired/1\",\"serial\":7,\"services\":{\"x\":{}}}";
        _cleanup_free_ char *sig = sign("good", bad, &len);
        ck_assert_int_lt(judge(bad, sig, len, &fresh, &r), 0);
        ck_assert_str_eq(r.error, "services.x.artifact: required");
        ck_assert_int_eq(r.refused_serial, 7); /* signed: its serial is known */
        accept_result_done(&r);

        const char *broken = "{\"format\":";
        _cleanup_free_ char *broken_sig = sign("good", broken, &len);
        ck_assert_int_lt(judge(broken, broken_sig, len, &fresh, &r), 0);
        ck_assert_msg(strncmp(r.error, "document: ", 10) == 0, "%s", r.error);
        ck_assert_int_eq(r.refused_serial, -1);
        accept_result_done(&r);

        size_t n = DESIRED_MAX_BYTES + 1;
        _cleanup_free_ char *big = xcalloc(n + 1, 1);
        memset(big, ' ', n);
        memcpy(big, "{}", 2);
        _cleanup_free_ char *big_sig = sign("good", big, &len);
        ck_assert_int_lt(judge(big, big_sig, len, &fresh, &r), 0);
        ck_assert_ptr_null(r.desired);
        ck_assert_msg(strstr(r.error, "document: "), "%s", r.error);
        accept_result_done(&r);
}
END_TEST

START_TEST(unsigned_only_when_signatures_are_not_required)
{
        _cleanup_free_ char *doc = document(3, NULL);
        struct accept_input in = {
            .doc = doc,
            .doc_len = strlen(doc),
            .sig_error = "HTTP 404",
            .keys = NULL,
            .source_url = URL,
            .applied_sha256 = "",
            .now_usec = fresh.now,
        };
        struct accept_result r;
        ck_assert_int_eq(accept_document(&in, &r), 0);
        ck_assert_ptr_null(r.key_id);
        accept_result_done(&r);
}
END_TEST

int main(void)
{
        _cleanup_free_ char *error = NULL, *dir = NULL;
        if (mkdtemp(tmpdir))
                dir = xasprintf("%s/keys-good", tmpdir);
        if (!dir || !make_key("good") || !make_key("stranger") ||
            minisign_keyring_load_dir(dir, &trusted, &error) < 0) {
                fprintf(stderr, "test setup failed: %s\n", error ? error : "minisign -G");
                return EXIT_FAILURE;
        }

        Suite *s = suite_create("accept");
        TCase *tc = tcase_create("rules");
        tcase_add_test(tc, signed_document_is_accepted_with_its_signer);
        tcase_add_test(tc, unknown_key_is_refused);
        tcase_add_test(tc, bad_or_missing_signature_is_refused);
        tcase_add_test(tc, lower_serial_is_refused);
        tcase_add_test(tc, equal_serial_needs_equal_bytes);
        tcase_add_test(tc, expiry_against_clock_and_high_water_mark);
        tcase_add_test(tc, malformed_and_oversized_are_refused_with_their_place);
        tcase_add_test(tc, unsigned_only_when_signatures_are_not_required);
        suite_add_tcase(s, tc);
        int status = h_run_suite(s);
        minisign_keyring_free(trusted);
        _cleanup_free_ char *rm = xasprintf("rm -rf '%s'", tmpdir);
        if (system(rm) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        return status;
}
