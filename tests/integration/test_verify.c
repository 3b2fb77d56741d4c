/* liictl verify against signatures made by the real minisign tool: what a
 * publisher runs before shipping, and what it must refuse. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[512];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        int status = system(cmd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Runs liictl verify with the given arguments in dir; returns its exit code
 * and its stderr in err. */
static int verify(const char *args, char *err, size_t err_size)
{
        char out[700];
        snprintf(out, sizeof out, "%s/stderr", dir);
        int rc = sh("cd '%s' && '%s/liictl' verify %s 2>'%s' >/dev/null", dir, LII_BUILD_DIR, args,
                    out);
        FILE *f = fopen(out, "r");
        size_t n = f ? fread(err, 1, err_size - 1, f) : 0;
        err[n] = '\0';
        if (f)
                fclose(f);
        return rc;
}

static void setup(void)
{
        snprintf(dir, sizeof dir, "%s/itest/verify.%d", LII_BUILD_DIR, getpid());
        ck_assert_int_eq(sh("rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
        ck_assert_int_eq(sh("cd '%s' && minisign -G -W -p a.pub -s a.key >/dev/null && "
                            "minisign -G -W -p b.pub -s b.key >/dev/null && "
                            "head -c 100000 /dev/urandom > release.tar.gz && "
                            "minisign -S -s a.key -m release.tar.gz -t 'release 7' >/dev/null",
                            dir),
                         0);
}

static void teardown(void)
{
        sh("rm -rf '%s'", dir);
}

START_TEST(good_signature)
{
        char err[4096];
        ck_assert_int_eq(verify("--key a.pub release.tar.gz", err, sizeof err), 0);
        /* A folder of keys works as liid's key folders do. */
        ck_assert_int_eq(sh("mkdir -p '%s/keys' && cp '%s/a.pub' '%s/b.pub' '%s/keys/'", dir, dir,
                            dir, dir),
                         0);
        ck_assert_int_eq(verify("--key keys release.tar.gz", err, sizeof err), 0);
        ck_assert_int_eq(sh("cd '%s' && '%s/liictl' verify --key a.pub release.tar.gz | "
                            "grep -q 'trusted comment: release 7'",
                            dir, LII_BUILD_DIR),
                         0);
}
END_TEST

START_TEST(tampered_file)
{
        char err[4096];
        ck_assert_int_eq(sh("printf x >> '%s/release.tar.gz'", dir), 0);
        ck_assert_int_eq(verify("--key a.pub release.tar.gz", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "signature does not match the file"));
}
END_TEST

START_TEST(tampered_comment)
{
        char err[4096];
        ck_assert_int_eq(sh("sed -i 's/release 7/release 8/' '%s/release.tar.gz.minisig'", dir), 0);
        ck_assert_int_eq(verify("--key a.pub release.tar.gz", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "trusted comment does not match its signature"));
}
END_TEST

START_TEST(wrong_key)
{
        char err[4096];
        ck_assert_int_eq(verify("--key b.pub release.tar.gz", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "is not trusted"));
}
END_TEST

START_TEST(missing_and_truncated_signature)
{
        char err[4096];
        ck_assert_int_eq(sh("head -n 2 '%s/release.tar.gz.minisig' > '%s/short.minisig'", dir, dir),
                         0);
        ck_assert_int_eq(verify("--key a.pub release.tar.gz short.minisig", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "signature short.minisig:"));
        ck_assert_int_eq(sh("rm '%s/release.tar.gz.minisig'", dir), 0);
        ck_assert_int_eq(verify("--key a.pub release.tar.gz", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
}
END_TEST

START_TEST(legacy_signature_refused)
{
        char err[4096];
        ck_assert_int_eq(sh("cd '%s' && minisign -S -l -s a.key -m release.tar.gz -x legacy.minisig "
                            "-t old >/dev/null",
                            dir),
                         0);
        ck_assert_int_eq(verify("--key a.pub release.tar.gz legacy.minisig", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "legacy"));
}
END_TEST

START_TEST(usage_errors)
{
        char err[4096];
        ck_assert_int_eq(verify("release.tar.gz", err, sizeof err), 2);
        ck_assert_ptr_nonnull(strstr(err, "--key is required"));
        ck_assert_int_eq(verify("--key nope.pub release.tar.gz", err, sizeof err), 2);
        ck_assert_ptr_nonnull(strstr(err, "nope.pub"));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("verify");
        TCase *tc = tcase_create("verify");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, good_signature);
        tcase_add_test(tc, tampered_file);
        tcase_add_test(tc, tampered_comment);
        tcase_add_test(tc, wrong_key);
        tcase_add_test(tc, missing_and_truncated_signature);
        tcase_add_test(tc, legacy_signature_refused);
        tcase_add_test(tc, usage_errors);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
