/* liictl verify against signatures made by the real minisign tool: what a
 * publisher runs before shipping, and what it must refuse. */
#include <check.h>
#include <openssl/evp.h>
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
        int rc =
            sh("cd '%s' && '%s/liictl' verify %s 2>'%s' >/dev/null", dir, LII_BUILD_DIR, args, out);
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
        ck_assert_int_eq(
            sh("mkdir -p '%s/keys' && cp '%s/a.pub' '%s/b.pub' '%s/keys/'", dir, dir, dir, dir), 0);
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
        ck_assert_int_eq(
            sh("cd '%s' && minisign -S -l -s a.key -m release.tar.gz -x legacy.minisig "
               "-t old >/dev/null",
               dir),
            0);
        ck_assert_int_eq(verify("--key a.pub release.tar.gz legacy.minisig", err, sizeof err), 1);
        ck_assert_ptr_nonnull(strstr(err, "legacy"));
}
END_TEST

static void write_text(const char *name, const char *text)
{
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(fputs(text, f), 0);
        ck_assert_int_eq(fclose(f), 0);
}

START_TEST(weak_key_refused)
{
        /* The identity point as the key, and R = identity, S = 0 as both
         * signatures: OpenSSL alone accepts this for any file and comment,
         * minisign does not, and neither may lii. */
        const uint8_t key[42] = {'E', 'd', 1, 2, 3, 4, 5, 6, 7, 8, 1};
        const uint8_t sig[74] = {'E', 'D', 1, 2, 3, 4, 5, 6, 7, 8, 1};
        const uint8_t global[64] = {1};
        char b64_key[64], b64_sig[128], b64_global[128], text[512], err[4096];
        EVP_EncodeBlock((unsigned char *)b64_key, key, sizeof key);
        EVP_EncodeBlock((unsigned char *)b64_sig, sig, sizeof sig);
        EVP_EncodeBlock((unsigned char *)b64_global, global, sizeof global);
        snprintf(text, sizeof text, "untrusted comment: minisign public key 807060504030201\n%s\n",
                 b64_key);
        write_text("weak.pub", text);
        snprintf(text, sizeof text,
                 "untrusted comment: forged\n%s\ntrusted comment: release 666\n%s\n", b64_sig,
                 b64_global);
        write_text("forged.minisig", text);

        ck_assert_int_eq(verify("--key weak.pub release.tar.gz forged.minisig", err, sizeof err),
                         1);
        ck_assert_msg(strstr(err, "liictl: release.tar.gz: key: weak.pub: public key "
                                  "807060504030201 is a weak key (small order)"),
                      "%s", err);
        /* The real minisign refuses it as well. */
        ck_assert_int_ne(
            sh("cd '%s' && minisign -V -p weak.pub -m release.tar.gz -x forged.minisig "
               ">/dev/null 2>&1",
               dir),
            0);
        /* In a key folder, next to a good key, it spoils the folder, as it
         * stops liid from starting. */
        ck_assert_int_eq(
            sh("mkdir -p '%s/keys' && cp '%s/a.pub' '%s/weak.pub' '%s/keys/'", dir, dir, dir, dir),
            0);
        ck_assert_int_eq(verify("--key keys release.tar.gz", err, sizeof err), 1);
        ck_assert_msg(strstr(err, "keys/weak.pub: public key 807060504030201 is a weak key"), "%s",
                      err);
        /* Scripts that read --json see the refusal too. */
        ck_assert_int_eq(sh("cd '%s' && '%s/liictl' --json verify --key weak.pub release.tar.gz "
                            "forged.minisig 2>/dev/null | grep -q '\"verified\":false'",
                            dir, LII_BUILD_DIR),
                         0);
}
END_TEST

START_TEST(liid_refuses_weak_key)
{
        /* The same key in liid's folder: liid refuses to start, naming the
         * file, before it trusts anything. */
        const uint8_t key[42] = {'E', 'd', 1, 2, 3, 4, 5, 6, 7, 8, 1};
        char b64_key[64], text[4096];
        EVP_EncodeBlock((unsigned char *)b64_key, key, sizeof key);
        snprintf(text, sizeof text, "untrusted comment: weak\n%s\n", b64_key);
        ck_assert_int_eq(sh("mkdir -p '%s/keys' '%s/state'", dir, dir), 0);
        write_text("keys/weak.pub", text);
        snprintf(text, sizeof text,
                 "[source]\nurl = file://%1$s/desired.json\n"
                 "[trust]\ndesired_keys = %1$s/keys\nartifact_keys = %1$s/keys\n"
                 "[paths]\nstate_dir = %1$s/state\nsocket = %1$s/liid.sock\n",
                 dir);
        write_text("liid.conf", text);
        ck_assert_int_eq(sh("cd '%s' && timeout 20 '%s/liid' -c liid.conf --bus user 2>stderr", dir,
                            LII_BUILD_DIR),
                         1);
        ck_assert_int_eq(sh("grep -q 'keys/weak.pub: public key 807060504030201 is a weak key "
                            "(small order)' '%s/stderr'",
                            dir),
                         0);
}
END_TEST

START_TEST(malleated_signature_refused)
{
        /* S + L is the same scalar mod L: a second spelling of the real
         * signature, which minisign refuses as non-canonical. */
        static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a,       0x63,
                                          0x12, 0x58, 0xd6, 0x9c, 0xf7,       0xa2,
                                          0xde, 0xf9, 0xde, 0x14, [31] = 0x10};
        char path[700], lines[4][256], err[4096];
        snprintf(path, sizeof path, "%s/release.tar.gz.minisig", dir);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        for (int i = 0; i < 4; i++)
                ck_assert_ptr_nonnull(fgets(lines[i], sizeof lines[i], f));
        fclose(f);
        lines[1][strcspn(lines[1], "\n")] = '\0';
        uint8_t blob[80];
        ck_assert_int_eq(EVP_DecodeBlock(blob, (unsigned char *)lines[1], (int)strlen(lines[1])),
                         75); /* 74 bytes and one of padding */
        unsigned carry = 0;
        for (int i = 0; i < 32; i++) {
                carry += (unsigned)blob[42 + i] + order[i];
                blob[42 + i] = (uint8_t)carry;
                carry >>= 8;
        }
        char b64[128], text[1024];
        EVP_EncodeBlock((unsigned char *)b64, blob, 74);
        snprintf(text, sizeof text, "%s%s\n%s%s", lines[0], b64, lines[2], lines[3]);
        write_text("malleated.minisig", text);

        ck_assert_int_eq(verify("--key a.pub release.tar.gz malleated.minisig", err, sizeof err),
                         1);
        ck_assert_msg(strstr(err, "signature: S is not canonical"), "%s", err);
        ck_assert_int_ne(
            sh("cd '%s' && minisign -V -p a.pub -m release.tar.gz -x malleated.minisig "
               ">/dev/null 2>&1",
               dir),
            0);
        /* The original still holds. */
        ck_assert_int_eq(verify("--key a.pub release.tar.gz", err, sizeof err), 0);
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
        tcase_add_test(tc, weak_key_refused);
        tcase_add_test(tc, liid_refuses_weak_key);
        tcase_add_test(tc, malleated_signature_refused);
        tcase_add_test(tc, usage_errors);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
