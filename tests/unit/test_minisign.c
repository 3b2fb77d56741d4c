/* minisign verification against keys and signatures made at test time by
 * the real minisign tool: what it signs must verify, and every kind of
 * tampering must fail with the message a user would be shown. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minisign.h"
#include "util.h"

#define MINISIGN_TOOL "/usr/bin/minisign"
#define DATA_SIZE     200000

/* Created once in main() before the suite runs; the forked test processes
 * only read it (or make subdirectories of their own). */
static char tmpdir[] = LII_BUILD_DIR "/test-minisign-XXXXXX";

static char *tmp_path(const char *name)
{
        return xasprintf("%s/%s", tmpdir, name);
}

/* Runs argv[0] with stdin, stdout and stderr on /dev/null (the keys have no
 * password, so nothing is ever asked) and returns its exit status. */
static int run(const char *const argv[])
{
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void run_or_die(const char *const argv[])
{
        if (run(argv) != 0) {
                fprintf(stderr, "test setup: %s failed\n", argv[0]);
                exit(EXIT_FAILURE);
        }
}

static char *slurp(const char *path, size_t *ret_len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        ck_assert_msg(f, "cannot open %s", path);
        char *buf = NULL;
        size_t size = 0, len = 0;
        for (;;) {
                if (len + 4096 + 1 > size) {
                        size = (len + 4096 + 1) * 2;
                        buf = realloc(buf, size);
                        ck_assert_ptr_nonnull(buf);
                }
                size_t n = fread(buf + len, 1, size - len - 1, f);
                len += n;
                if (n == 0)
                        break;
        }
        ck_assert(!ferror(f));
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return buf;
}

static void spew(const char *path, const char *buf, size_t len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        ck_assert_msg(f, "cannot create %s", path);
        ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
}

static char *tmp_slurp(const char *name, size_t *ret_len)
{
        _cleanup_free_ char *p = tmp_path(name);
        return slurp(p, ret_len);
}

static struct minisign_keyring *load_keys(void)
{
        _cleanup_free_ char *dir = tmp_path("keys");
        _cleanup_free_ char *err = NULL;
        struct minisign_keyring *k = NULL;
        int r = minisign_keyring_load_dir(dir, &k, &err);
        ck_assert_msg(r == 0, "loading keys: %s", err);
        return k;
}

/* Parses sig_text and verifies it against data with the buffer API, giving
 * back the path of the key that verified. Parse errors come back the same
 * way as verification errors. */
static int verify_text(const char *sig_text, size_t sig_len, const char *data, size_t len,
                       unsigned flags, char **ret_key_path, char **ret_error)
{
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = load_keys();
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        const struct minisign_key *key;
        int r;

        r = minisign_sig_parse(sig_text, sig_len, &sig, ret_error);
        if (r < 0)
                return r;
        r = minisign_verify_buffer(k, sig, data, len, flags, &key, ret_error);
        if (r >= 0 && ret_key_path)
                *ret_key_path = xstrdup(key->path);
        return r;
}

static int verify_sig_file(const char *sig_name, unsigned flags, char **ret_error)
{
        size_t sig_len, len;
        _cleanup_free_ char *sig = tmp_slurp(sig_name, &sig_len);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        return verify_text(sig, sig_len, data, len, flags, NULL, ret_error);
}

/* Returns a copy of text with line n (1-based) replaced. */
static char *replace_line(const char *text, int n, const char *replacement)
{
        const char *start = text;
        for (int i = 1; i < n; i++) {
                start = strchr(start, '\n');
                ck_assert_ptr_nonnull(start);
                start++;
        }
        const char *end = strchr(start, '\n');
        if (!end)
                end = start + strlen(start);
        return xasprintf("%.*s%s%s", (int)(start - text), text, replacement, end);
}

static char *get_line(const char *text, int n)
{
        const char *start = text;
        for (int i = 1; i < n; i++) {
                start = strchr(start, '\n');
                ck_assert_ptr_nonnull(start);
                start++;
        }
        const char *end = strchr(start, '\n');
        if (!end)
                end = start + strlen(start);
        return xasprintf("%.*s", (int)(end - start), start);
}

/* Decodes base64 line n of text, lets mutate change the bytes and puts the
 * re-encoded (valid, canonical) base64 back: what an attacker who edits the
 * binary content of a file would produce. */
static char *mutate_blob(const char *text, int n, size_t size, void (*mutate)(uint8_t *blob))
{
        _cleanup_free_ char *b64 = get_line(text, n);
        uint8_t blob[128];
        char out[256];
        ck_assert_int_ge(EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)strlen(b64)),
                         (int)size);
        mutate(blob);
        EVP_EncodeBlock((unsigned char *)out, blob, (int)size);
        return replace_line(text, n, out);
}

START_TEST(test_real_signature_verifies)
{
        size_t sig_len, len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", &sig_len);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *key_path = NULL;

        ck_assert_uint_eq(len, DATA_SIZE);
        int r = verify_text(sig, sig_len, data, len, 0, &key_path, &err);
        ck_assert_msg(r == 0, "%s", err);
        ck_assert_ptr_null(err);
        ck_assert_str_eq(strrchr(key_path, '/'), "/a.pub");
}
END_TEST

START_TEST(test_trusted_comment_and_key_id_exposed)
{
        size_t sig_len;
        _cleanup_free_ char *text = tmp_slurp("data.a.minisig", &sig_len);
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        _cleanup_free_ char *err = NULL;

        ck_assert_int_eq(minisign_sig_parse(text, sig_len, &sig, &err), 0);
        ck_assert(sig->prehashed);
        ck_assert_str_eq(sig->trusted_comment, "lii test: signed by A");

        /* The key id is shown the way minisign shows it in the key file. */
        _cleanup_free_ char *pub = tmp_slurp("keys/a.pub", NULL);
        _cleanup_free_ char *first = get_line(pub, 1);
        _cleanup_free_ char *expected =
            xasprintf("untrusted comment: minisign public key %s", sig->key_id_string);
        ck_assert_str_eq(first, expected);
}
END_TEST

START_TEST(test_streaming_prehash_verifies)
{
        size_t sig_len, len;
        _cleanup_free_ char *text = tmp_slurp("data.a.minisig", &sig_len);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = load_keys();
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        _cleanup_(minisign_hasher_freep) struct minisign_hasher *h = NULL;
        _cleanup_free_ char *err = NULL;
        uint8_t hash[MINISIGN_HASH_SIZE];
        const struct minisign_key *key = NULL;

        ck_assert_int_eq(minisign_sig_parse(text, sig_len, &sig, &err), 0);
        ck_assert_int_eq(minisign_hasher_new(&h), 0);
        /* Odd chunk sizes, as a network read would deliver them. */
        static const size_t chunks[] = {1, 7, 0, 4096, 65536, 3};
        size_t off = 0;
        for (size_t i = 0; off < len; i++) {
                size_t n = i < ELEMENTSOF(chunks) ? chunks[i] : 10007;
                if (n > len - off)
                        n = len - off;
                ck_assert_int_eq(minisign_hasher_update(h, data + off, n), 0);
                off += n;
        }
        ck_assert_int_eq(minisign_hasher_final(h, hash), 0);

        int r = minisign_verify_prehashed(k, sig, hash, 0, &key, &err);
        ck_assert_msg(r == 0, "%s", err);
        ck_assert_str_eq(strrchr(key->path, '/'), "/a.pub");

        hash[17] ^= 1;
        r = minisign_verify_prehashed(k, sig, hash, 0, &key, &err);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
}
END_TEST

START_TEST(test_hasher_is_blake2b512)
{
        size_t len;
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_(minisign_hasher_freep) struct minisign_hasher *h = NULL;
        uint8_t hash[MINISIGN_HASH_SIZE];
        char hex[2 * MINISIGN_HASH_SIZE + 1];
        char expected[2 * MINISIGN_HASH_SIZE + 1] = "";

        ck_assert_int_eq(minisign_hasher_new(&h), 0);
        ck_assert_int_eq(minisign_hasher_update(h, data, len), 0);
        ck_assert_int_eq(minisign_hasher_final(h, hash), 0);
        hex_encode(hash, sizeof(hash), hex);

        /* coreutils' b2sum is BLAKE2b-512 by default: an independent answer. */
        _cleanup_free_ char *cmd = xasprintf("b2sum '%s/data'", tmpdir);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(fscanf(p, "%128s", expected), 1);
        ck_assert_int_eq(pclose(p), 0);
        ck_assert_str_eq(hex, expected);
}
END_TEST

START_TEST(test_empty_file_signature_verifies)
{
        size_t sig_len;
        _cleanup_free_ char *sig = tmp_slurp("empty.minisig", &sig_len);
        _cleanup_free_ char *legacy = tmp_slurp("empty.legacy.minisig", &sig_len);
        _cleanup_free_ char *err = NULL;

        int r = verify_text(sig, strlen(sig), "", 0, 0, NULL, &err);
        ck_assert_msg(r == 0, "%s", err);
        r = verify_text(legacy, strlen(legacy), "", 0, MINISIGN_ALLOW_LEGACY, NULL, &err);
        ck_assert_msg(r == 0, "%s", err);
        r = verify_text(sig, strlen(sig), "x", 1, 0, NULL, &err);
        ck_assert_int_eq(r, -EBADMSG);
}
END_TEST

START_TEST(test_tampered_file_is_refused)
{
        size_t sig_len, len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", &sig_len);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;

        /* One flipped bit anywhere, even in the last byte, must be caught. */
        static const size_t at[] = {0, DATA_SIZE / 2, DATA_SIZE - 1};
        for (size_t i = 0; i < ELEMENTSOF(at); i++) {
                data[at[i]] ^= 0x01;
                int r = verify_text(sig, sig_len, data, len, 0, NULL, &err);
                ck_assert_int_eq(r, -EBADMSG);
                ck_assert_str_eq(err, "signature does not match the file");
                free(err);
                err = NULL;
                data[at[i]] ^= 0x01;
        }
        /* A truncated or extended file too. */
        ck_assert_int_eq(verify_text(sig, sig_len, data, len - 1, 0, NULL, &err), -EBADMSG);
        free(err);
        err = NULL;
        _cleanup_free_ char *longer = malloc(len + 1);
        memcpy(longer, data, len);
        longer[len] = '\n';
        ck_assert_int_eq(verify_text(sig, sig_len, longer, len + 1, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
}
END_TEST

START_TEST(test_tampered_trusted_comment_is_refused)
{
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;

        static const char *const forged[] = {
            "trusted comment: lii test: signed by B",
            "trusted comment: lii test: signed by A ",
            "trusted comment: ",
            "trusted comment:  lii test: signed by A",
        };
        for (size_t i = 0; i < ELEMENTSOF(forged); i++) {
                _cleanup_free_ char *t = replace_line(sig, 3, forged[i]);
                int r = verify_text(t, strlen(t), data, len, 0, NULL, &err);
                ck_assert_int_eq(r, -EBADMSG);
                ck_assert_str_eq(err, "trusted comment does not match its signature");
                free(err);
                err = NULL;
        }
}
END_TEST

START_TEST(test_comment_of_another_signature_is_refused)
{
        /* The global signature binds the comment to one file signature: a
         * comment and global signature lifted from the signature of another
         * file by the same key must not be accepted. (Ed25519 is
         * deterministic, so another signature of the same file would carry
         * the very same signature bytes.) */
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *other = tmp_slurp("empty.minisig", NULL);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *l3 = get_line(other, 3);
        _cleanup_free_ char *l4 = get_line(other, 4);
        _cleanup_free_ char *t1 = replace_line(sig, 3, l3);
        _cleanup_free_ char *t2 = replace_line(t1, 4, l4);

        ck_assert_int_eq(verify_text(t2, strlen(t2), data, len, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "trusted comment does not match its signature");
}
END_TEST

static void flip_sig_byte(uint8_t *blob)
{
        blob[2 + 8 + 5] ^= 0x40;
}
static void flip_last_sig_byte(uint8_t *blob)
{
        blob[2 + 8 + 63] ^= 0x01;
}
static void flip_global_sig_byte(uint8_t *blob)
{
        blob[30] ^= 0x80;
}
static void alter_key_id(uint8_t *blob)
{
        blob[2] ^= 0xff;
}
static void set_alg_legacy(uint8_t *blob)
{
        blob[1] = 'd';
}
static void set_alg_unknown(uint8_t *blob)
{
        blob[0] = 'X';
        blob[1] = 'Y';
}

START_TEST(test_tampered_signature_bytes_are_refused)
{
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;

        _cleanup_free_ char *t1 = mutate_blob(sig, 2, 74, flip_sig_byte);
        ck_assert_int_eq(verify_text(t1, strlen(t1), data, len, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
        free(err);
        err = NULL;

        _cleanup_free_ char *t2 = mutate_blob(sig, 2, 74, flip_last_sig_byte);
        ck_assert_int_eq(verify_text(t2, strlen(t2), data, len, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
        free(err);
        err = NULL;

        _cleanup_free_ char *t3 = mutate_blob(sig, 4, 64, flip_global_sig_byte);
        ck_assert_int_eq(verify_text(t3, strlen(t3), data, len, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "trusted comment does not match its signature");
}
END_TEST

START_TEST(test_prehashed_signature_relabelled_legacy_is_refused)
{
        /* Turning "ED" into "Ed" must not make the hash verify as a message. */
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *t = mutate_blob(sig, 2, 74, set_alg_legacy);

        ck_assert_int_eq(verify_text(t, strlen(t), data, len, 0, NULL, &err), -EPROTONOSUPPORT);
        free(err);
        err = NULL;
        ck_assert_int_eq(verify_text(t, strlen(t), data, len, MINISIGN_ALLOW_LEGACY, NULL, &err),
                         -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
}
END_TEST

START_TEST(test_unknown_key_id_is_refused)
{
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;
        _cleanup_(minisign_sig_freep) struct minisign_sig *parsed = NULL;

        _cleanup_free_ char *t = mutate_blob(sig, 2, 74, alter_key_id);
        ck_assert_int_eq(minisign_sig_parse(t, strlen(t), &parsed, &err), 0);
        ck_assert_int_eq(verify_text(t, strlen(t), data, len, 0, NULL, &err), -ENOKEY);
        _cleanup_free_ char *expected =
            xasprintf("signature key id %s is not trusted", parsed->key_id_string);
        ck_assert_str_eq(err, expected);
}
END_TEST

START_TEST(test_signature_by_other_key_is_refused)
{
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *pub = tmp_slurp("c.pub", NULL);

        ck_assert_int_eq(verify_sig_file("data.c.minisig", 0, &err), -ENOKEY);
        ck_assert_ptr_nonnull(strstr(err, "is not trusted"));
        /* The id named is the one minisign printed for key C. */
        const char *id = strstr(err, "key id ") + strlen("key id ");
        int id_len = (int)strcspn(id, " ");
        _cleanup_free_ char *needle = xasprintf("public key %.*s\n", id_len, id);
        ck_assert_ptr_nonnull(strstr(pub, needle));
}
END_TEST

START_TEST(test_two_keys_in_keyring)
{
        size_t len;
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *sig_a = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *sig_b = tmp_slurp("data.b.minisig", NULL);
        _cleanup_free_ char *err = NULL;
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = load_keys();
        _cleanup_free_ char *path_a = NULL;
        _cleanup_free_ char *path_b = NULL;

        /* The secret key and notes in the directory are not *.pub files. */
        ck_assert_uint_eq(k->n, 2);
        ck_assert_int_eq(verify_text(sig_a, strlen(sig_a), data, len, 0, &path_a, &err), 0);
        ck_assert_str_eq(strrchr(path_a, '/'), "/a.pub");
        ck_assert_int_eq(verify_text(sig_b, strlen(sig_b), data, len, 0, &path_b, &err), 0);
        ck_assert_str_eq(strrchr(path_b, '/'), "/b.pub");

        /* A's signature with B's key id is neither unknown nor valid. */
        _cleanup_(minisign_sig_freep) struct minisign_sig *a = NULL;
        _cleanup_(minisign_sig_freep) struct minisign_sig *b = NULL;
        ck_assert_int_eq(minisign_sig_parse(sig_a, strlen(sig_a), &a, &err), 0);
        ck_assert_int_eq(minisign_sig_parse(sig_b, strlen(sig_b), &b, &err), 0);
        memcpy(a->key_id, b->key_id, sizeof(a->key_id));
        ck_assert_int_eq(minisign_verify_buffer(k, a, data, len, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
}
END_TEST

START_TEST(test_legacy_refused_by_default)
{
        size_t len;
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *text = tmp_slurp("data.legacy.minisig", &len);
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = load_keys();
        uint8_t hash[MINISIGN_HASH_SIZE] = {0};

        ck_assert_int_eq(verify_sig_file("data.legacy.minisig", 0, &err), -EPROTONOSUPPORT);
        ck_assert_str_eq(err, "legacy (non-prehashed) signatures are refused");
        free(err);
        err = NULL;

        ck_assert_int_eq(minisign_sig_parse(text, len, &sig, &err), 0);
        ck_assert(!sig->prehashed);
        ck_assert_int_eq(minisign_verify_prehashed(k, sig, hash, 0, NULL, &err), -EPROTONOSUPPORT);
        ck_assert_str_eq(err, "legacy (non-prehashed) signatures are refused");
        free(err);
        err = NULL;
        ck_assert_int_eq(minisign_verify_prehashed(k, sig, hash, MINISIGN_ALLOW_LEGACY, NULL, &err),
                         -EOPNOTSUPP);
}
END_TEST

START_TEST(test_legacy_accepted_when_allowed)
{
        size_t sig_len, len;
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ char *sig = tmp_slurp("data.legacy.minisig", &sig_len);
        _cleanup_free_ char *data = tmp_slurp("data", &len);

        int r = verify_text(sig, sig_len, data, len, MINISIGN_ALLOW_LEGACY, NULL, &err);
        ck_assert_msg(r == 0, "%s", err);

        data[100] ^= 0x20;
        r = verify_text(sig, sig_len, data, len, MINISIGN_ALLOW_LEGACY, NULL, &err);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_str_eq(err, "signature does not match the file");
}
END_TEST

static void assert_malformed(const char *text, size_t len, const char *expected)
{
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        _cleanup_free_ char *err = NULL;
        int r = minisign_sig_parse(text, len, &sig, &err);
        ck_assert_msg(r == -EBADMSG, "accepted: %s", text);
        ck_assert_ptr_null(sig);
        ck_assert_str_eq(err, expected);
}

START_TEST(test_truncated_and_malformed_signature_files)
{
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", &len);
        const char *l3 = sig;
        for (int i = 0; i < 2; i++)
                l3 = strchr(l3, '\n') + 1;
        const char *l4 = strchr(l3, '\n') + 1;

        assert_malformed(sig, 0, "file is empty");
        assert_malformed(sig, (size_t)(l3 - sig), "file ends after line 2, expected 4 lines");
        assert_malformed(sig, (size_t)(l4 - sig), "file ends after line 3, expected 4 lines");
        /* Cut inside the base64 of line 2 and of line 4. */
        assert_malformed(sig, (size_t)(l3 - sig) - 10, "file ends after line 2, expected 4 lines");
        assert_malformed(sig, len - 2, "line 4: invalid base64: length 87 is not a multiple of 4");
        assert_malformed(sig, len - 5, "line 4: decodes to 63 bytes, expected 64");

        _cleanup_free_ char *extra = xasprintf("%s\n", sig);
        assert_malformed(extra, strlen(extra), "unexpected data after line 4");
        _cleanup_free_ char *extra2 = xasprintf("%sgarbage", sig);
        assert_malformed(extra2, strlen(extra2), "unexpected data after line 4");

        _cleanup_free_ char *no_untrusted = replace_line(sig, 1, "untrusted comment:x");
        assert_malformed(no_untrusted, strlen(no_untrusted),
                         "line 1: does not start with \"untrusted comment: \"");
        _cleanup_free_ char *no_trusted = replace_line(sig, 3, "Trusted comment: lii");
        assert_malformed(no_trusted, strlen(no_trusted),
                         "line 3: does not start with \"trusted comment: \"");
        _cleanup_free_ char *empty_sig = replace_line(sig, 2, "");
        assert_malformed(empty_sig, strlen(empty_sig), "line 2: empty, expected base64");

        /* The public key is not a signature. */
        _cleanup_free_ char *pub = tmp_slurp("keys/a.pub", NULL);
        _cleanup_free_ char *publine = get_line(pub, 2);
        _cleanup_free_ char *with_key = replace_line(sig, 2, publine);
        assert_malformed(with_key, strlen(with_key), "line 2: decodes to 42 bytes, expected 74");

        _cleanup_free_ char *alg = mutate_blob(sig, 2, 74, set_alg_unknown);
        assert_malformed(alg, strlen(alg), "line 2: unknown signature algorithm \"XY\"");

        _cleanup_free_ char *nul = xasprintf("%s", sig);
        nul[3] = '\0';
        assert_malformed(nul, len, "line 1: contains a NUL byte");
        _cleanup_free_ char *cr = replace_line(sig, 3, "trusted comment: a\rb");
        assert_malformed(cr, strlen(cr), "line 3: contains a carriage return");

        _cleanup_free_ char *big = malloc(MINISIGN_SIG_FILE_MAX + 1);
        memset(big, 'a', MINISIGN_SIG_FILE_MAX + 1);
        assert_malformed(big, MINISIGN_SIG_FILE_MAX + 1, "larger than 4096 bytes");
}
END_TEST

START_TEST(test_line_endings)
{
        size_t sig_len, len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", &sig_len);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;

        /* Without the final newline. */
        ck_assert_int_eq(verify_text(sig, sig_len - 1, data, len, 0, NULL, &err), 0);

        /* CRLF throughout, as minisign writes on Windows: same signature. */
        _cleanup_free_ char *crlf = malloc(2 * sig_len + 1);
        size_t n = 0;
        for (size_t i = 0; i < sig_len; i++) {
                if (sig[i] == '\n')
                        crlf[n++] = '\r';
                crlf[n++] = sig[i];
        }
        int r = verify_text(crlf, n, data, len, 0, NULL, &err);
        ck_assert_msg(r == 0, "%s", err);
        /* ...but the CR is not part of the trusted comment. */
        _cleanup_(minisign_sig_freep) struct minisign_sig *parsed = NULL;
        ck_assert_int_eq(minisign_sig_parse(crlf, n, &parsed, &err), 0);
        ck_assert_str_eq(parsed->trusted_comment, "lii test: signed by A");
        /* A CR without its LF at the very end is not a line ending. */
        ck_assert_int_eq(verify_text(crlf, n - 1, data, len, 0, NULL, &err), -EBADMSG);
        ck_assert_str_eq(err, "line 4: contains a carriage return");
}
END_TEST

static void assert_bad_base64_line(const char *sig, int lineno, const char *line,
                                   const char *expected)
{
        _cleanup_free_ char *t = replace_line(sig, lineno, line);
        assert_malformed(t, strlen(t), expected);
}

/* Returns the base64 character whose value is v. */
static char b64char(int v)
{
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        return alphabet[v];
}

START_TEST(test_non_strict_base64_is_refused)
{
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *l2 = get_line(sig, 2);
        _cleanup_free_ char *l4 = get_line(sig, 4);
        ck_assert_uint_eq(strlen(l2), 100);
        ck_assert_uint_eq(strlen(l4), 88);
        ck_assert_str_eq(l4 + 86, "==");

        _cleanup_free_ char *no_pad = xasprintf("%.86s", l4);
        assert_bad_base64_line(sig, 4, no_pad,
                               "line 4: invalid base64: length 86 is not a multiple of 4");
        _cleanup_free_ char *more_pad = xasprintf("%.85s===", l4);
        assert_bad_base64_line(sig, 4, more_pad, "line 4: invalid base64: too much padding");
        _cleanup_free_ char *pad4 = xasprintf("%s====", l4);
        assert_bad_base64_line(sig, 4, pad4, "line 4: invalid base64: too much padding");

        _cleanup_free_ char *junk = xasprintf("%s", l2);
        junk[9] = '*';
        assert_bad_base64_line(
            sig, 2, junk, "line 2: invalid base64: character 10 is not in the base64 alphabet");
        _cleanup_free_ char *space = xasprintf("%s", l2);
        space[50] = ' ';
        assert_bad_base64_line(
            sig, 2, space, "line 2: invalid base64: character 51 is not in the base64 alphabet");
        _cleanup_free_ char *inner_pad = xasprintf("%s", l2);
        inner_pad[20] = '=';
        assert_bad_base64_line(
            sig, 2, inner_pad,
            "line 2: invalid base64: character 21 is not in the base64 alphabet");
        _cleanup_free_ char *urlsafe = xasprintf("%s", l2);
        urlsafe[30] = '-';
        assert_bad_base64_line(
            sig, 2, urlsafe, "line 2: invalid base64: character 31 is not in the base64 alphabet");
        _cleanup_free_ char *trailing = xasprintf("%s ", l4);
        assert_bad_base64_line(sig, 4, trailing,
                               "line 4: invalid base64: length 89 is not a multiple of 4");
        _cleanup_free_ char *leading = xasprintf("    %s", l4);
        assert_bad_base64_line(sig, 4, leading,
                               "line 4: invalid base64: character 1 is not in the base64 alphabet");

        /* "xy==" carries 12 bits for 8: the 4 left over must be zero, or two
         * different strings would be the same signature. */
        _cleanup_free_ char *noncanon = xasprintf("%s", l4);
        const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        int v = (int)(strchr(alphabet, noncanon[85]) - alphabet);
        ck_assert_int_eq(v & 0x0f, 0);
        noncanon[85] = b64char(v | 0x01);
        assert_bad_base64_line(sig, 4, noncanon,
                               "line 4: invalid base64: non-canonical encoding (unused bits are "
                               "not zero)");
        /* Same for the single '=' of line 2: 2 bits left over. */
        _cleanup_free_ char *noncanon2 = xasprintf("%s", l2);
        ck_assert_int_eq(noncanon2[99], '=');
        v = (int)(strchr(alphabet, noncanon2[98]) - alphabet);
        noncanon2[98] = b64char(v | 0x02);
        assert_bad_base64_line(sig, 2, noncanon2,
                               "line 2: invalid base64: non-canonical encoding (unused bits are "
                               "not zero)");
}
END_TEST

START_TEST(test_trusted_comment_text_rules)
{
        _cleanup_free_ char *err = NULL;

        /* UTF-8 and the tabs of minisign's own comments are fine... */
        int r = verify_sig_file("data.utf8.minisig", 0, &err);
        ck_assert_msg(r == 0, "%s", err);
        _cleanup_free_ char *text = tmp_slurp("data.utf8.minisig", NULL);
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        ck_assert_int_eq(minisign_sig_parse(text, strlen(text), &sig, &err), 0);
        ck_assert_str_eq(sig->trusted_comment, "d\xc3\xa9ploiement \xe2\x9c\x93\tok");

        /* ...but an escape sequence, even signed by a trusted key, is not
         * something to pass on to a terminal. */
        ck_assert_int_eq(verify_sig_file("data.esc.minisig", 0, &err), -EBADMSG);
        ck_assert_str_eq(err, "line 3: trusted comment contains a control character");
        free(err);
        err = NULL;

        _cleanup_free_ char *base = tmp_slurp("data.a.minisig", NULL);
        static const char *const bad_utf8[] = {
            "trusted comment: \xc3",             /* truncated */
            "trusted comment: \xc0\xaf",         /* overlong '/' */
            "trusted comment: \xed\xa0\x80",     /* surrogate */
            "trusted comment: \xf4\x90\x80\x80", /* above U+10FFFF */
            "trusted comment: \xff",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_utf8); i++) {
                _cleanup_free_ char *t = replace_line(base, 3, bad_utf8[i]);
                assert_malformed(t, strlen(t), "line 3: trusted comment is not valid UTF-8");
        }
        _cleanup_free_ char *c1 = replace_line(base, 3,
                                               "trusted comment: \xc2\x9b"
                                               "31m");
        assert_malformed(c1, strlen(c1), "line 3: trusted comment contains a control character");
}
END_TEST

static void assert_key_refused(const char *text, const char *expected)
{
        struct minisign_key key;
        _cleanup_free_ char *err = NULL;
        ck_assert_int_eq(minisign_key_parse(text, strlen(text), &key, &err), -EBADMSG);
        ck_assert_str_eq(err, expected);
}

static void set_key_alg(uint8_t *blob)
{
        blob[1] = 'D';
}

START_TEST(test_key_id_has_no_zero_padding)
{
        /* 0x0C31C13B7CD5328A, stored little-endian as in the key file:
         * minisign writes "C31C13B7CD5328A", and lii must name it the same. */
        const uint8_t id[MINISIGN_KEY_ID_SIZE] = {0x8A, 0x32, 0xD5, 0x7C, 0x3B, 0xC1, 0x31, 0x0C};
        char s[MINISIGN_KEY_ID_STRING_MAX];

        minisign_key_id_to_string(id, s);
        ck_assert_str_eq(s, "C31C13B7CD5328A");

        const uint8_t max[MINISIGN_KEY_ID_SIZE] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        minisign_key_id_to_string(max, s);
        ck_assert_str_eq(s, "FFFFFFFFFFFFFFFF");
}
END_TEST

START_TEST(test_key_parse)
{
        _cleanup_free_ char *pub = tmp_slurp("keys/a.pub", NULL);
        _cleanup_free_ char *l1 = get_line(pub, 1);
        _cleanup_free_ char *l2 = get_line(pub, 2);
        struct minisign_key key;
        _cleanup_free_ char *err = NULL;

        ck_assert_int_eq(minisign_key_parse(pub, strlen(pub), &key, &err), 0);
        ck_assert_ptr_null(key.path);
        ck_assert_str_eq(l1 + strlen("untrusted comment: minisign public key "), key.key_id_string);
        ck_assert_uint_eq(strlen(l2), 56);

        _cleanup_free_ char *no_nl = xasprintf("%s\n%s", l1, l2);
        ck_assert_int_eq(minisign_key_parse(no_nl, strlen(no_nl), &key, &err), 0);
        _cleanup_free_ char *crlf = xasprintf("%s\r\n%s\r\n", l1, l2);
        ck_assert_int_eq(minisign_key_parse(crlf, strlen(crlf), &key, &err), 0);

        _cleanup_free_ char *bare = xasprintf("%s\n", l2);
        assert_key_refused(bare, "file ends after line 1, expected 2 lines");
        _cleanup_free_ char *wrong = xasprintf("comment: x\n%s\n", l2);
        assert_key_refused(wrong, "line 1: does not start with \"untrusted comment: \"");
        _cleanup_free_ char *trailing = xasprintf("%s\n%s \n", l1, l2);
        assert_key_refused(trailing, "line 2: invalid base64: length 57 is not a multiple of 4");
        _cleanup_free_ char *padded = xasprintf("%s\n%s====\n", l1, l2);
        assert_key_refused(padded, "line 2: invalid base64: too much padding");
        _cleanup_free_ char *short_key = xasprintf("%s\n%.52s\n", l1, l2);
        assert_key_refused(short_key, "line 2: decodes to 39 bytes, expected 42");
        _cleanup_free_ char *extra = xasprintf("%s\n%s\n\n", l1, l2);
        assert_key_refused(extra, "unexpected data after line 2");
        _cleanup_free_ char *alg = mutate_blob(pub, 2, 42, set_key_alg);
        assert_key_refused(alg, "line 2: unknown key algorithm \"ED\"");
}
END_TEST

static char *make_dir(const char *name)
{
        char *dir = xasprintf("%s/%s-%d", tmpdir, name, (int)getpid());
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        return dir;
}

static void copy_into(const char *dir, const char *src_name, const char *dst_name)
{
        size_t len;
        _cleanup_free_ char *buf = tmp_slurp(src_name, &len);
        _cleanup_free_ char *dst = xasprintf("%s/%s", dir, dst_name);
        spew(dst, buf, len);
}

START_TEST(test_keyring_bad_file_is_named)
{
        _cleanup_free_ char *dir = make_dir("badkeys");
        _cleanup_free_ char *err = NULL;
        struct minisign_keyring *k = NULL;

        copy_into(dir, "keys/a.pub", "a.pub");
        _cleanup_free_ char *bad = xasprintf("%s/z-broken.pub", dir);
        spew(bad, "untrusted comment: x\nnot*base64\n",
             strlen("untrusted comment: x\nnot*base64\n"));

        ck_assert_int_eq(minisign_keyring_load_dir(dir, &k, &err), -EBADMSG);
        ck_assert_ptr_null(k);
        _cleanup_free_ char *expected =
            xasprintf("%s: line 2: invalid base64: length 10 is not a multiple of 4", bad);
        ck_assert_str_eq(err, expected);
}
END_TEST

START_TEST(test_keyring_missing_and_empty_dir)
{
        _cleanup_free_ char *missing = tmp_path("no-such-dir");
        _cleanup_free_ char *err = NULL;
        struct minisign_keyring *k = NULL;

        ck_assert_int_eq(minisign_keyring_load_dir(missing, &k, &err), -ENOENT);
        ck_assert_ptr_null(k);
        _cleanup_free_ char *expected = xasprintf("%s: No such file or directory", missing);
        ck_assert_str_eq(err, expected);
        free(err);
        err = NULL;

        _cleanup_free_ char *dir = make_dir("emptykeys");
        ck_assert_int_eq(minisign_keyring_load_dir(dir, &k, &err), 0);
        ck_assert_ptr_nonnull(k);
        ck_assert_uint_eq(k->n, 0);

        size_t len;
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *text = tmp_slurp("data.a.minisig", NULL);
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        ck_assert_int_eq(minisign_sig_parse(text, strlen(text), &sig, &err), 0);
        ck_assert_int_eq(minisign_verify_buffer(k, sig, data, len, 0, NULL, &err), -ENOKEY);
        minisign_keyring_free(k);

        /* A file where the directory should be. */
        _cleanup_free_ char *file = tmp_path("data");
        free(err);
        err = NULL;
        ck_assert_int_eq(minisign_keyring_load_dir(file, &k, &err), -ENOTDIR);
}
END_TEST

static void change_pk(uint8_t *blob)
{
        blob[2 + 8 + 3] ^= 0x01;
}

START_TEST(test_keyring_duplicates_and_odd_entries)
{
        _cleanup_free_ char *err = NULL;
        struct minisign_keyring *k = NULL;

        /* The same key twice is harmless. */
        _cleanup_free_ char *dup = make_dir("dupkeys");
        copy_into(dup, "keys/a.pub", "a.pub");
        copy_into(dup, "keys/a.pub", "copy-of-a.pub");
        ck_assert_int_eq(minisign_keyring_load_dir(dup, &k, &err), 0);
        ck_assert_uint_eq(k->n, 1);
        ck_assert_str_eq(strrchr(k->keys[0].path, '/'), "/a.pub");
        k = minisign_keyring_free(k);

        /* One key id for two keys is ambiguous. */
        _cleanup_free_ char *pub = tmp_slurp("keys/a.pub", NULL);
        _cleanup_free_ char *forged = mutate_blob(pub, 2, 42, change_pk);
        _cleanup_free_ char *forged_path = xasprintf("%s/b-forged.pub", dup);
        spew(forged_path, forged, strlen(forged));
        ck_assert_int_eq(minisign_keyring_load_dir(dup, &k, &err), -EEXIST);
        ck_assert_ptr_nonnull(strstr(err, "b-forged.pub: key id "));
        ck_assert_ptr_nonnull(strstr(err, "is also used by a different key in "));

        /* Directories and oversized files named *.pub are errors, hidden
         * files are skipped. */
        _cleanup_free_ char *odd = make_dir("oddkeys");
        copy_into(odd, "keys/a.pub", ".hidden.pub");
        copy_into(odd, "keys/b.pub", "b.pub");
        free(err);
        err = NULL;
        ck_assert_int_eq(minisign_keyring_load_dir(odd, &k, &err), 0);
        ck_assert_uint_eq(k->n, 1);
        k = minisign_keyring_free(k);

        _cleanup_free_ char *subdir = xasprintf("%s/c.pub", odd);
        ck_assert_int_eq(mkdir(subdir, 0755), 0);
        ck_assert_int_eq(minisign_keyring_load_dir(odd, &k, &err), -EBADMSG);
        _cleanup_free_ char *expected = xasprintf("%s: not a regular file", subdir);
        ck_assert_str_eq(err, expected);
        free(err);
        err = NULL;
        ck_assert_int_eq(rmdir(subdir), 0);

        _cleanup_free_ char *huge_path = xasprintf("%s/d.pub", odd);
        _cleanup_free_ char *huge = malloc(MINISIGN_KEY_FILE_MAX + 1);
        memset(huge, 'x', MINISIGN_KEY_FILE_MAX + 1);
        spew(huge_path, huge, MINISIGN_KEY_FILE_MAX + 1);
        ck_assert_int_eq(minisign_keyring_load_dir(odd, &k, &err), -EBADMSG);
        _cleanup_free_ char *expected2 = xasprintf("%s: larger than 4096 bytes", huge_path);
        ck_assert_str_eq(err, expected2);
}
END_TEST

/* Weak keys and malleable signatures. The small-order points are derived
 * here with OpenSSL's big numbers, independently of the table in
 * minisign.c, and OpenSSL's own Ed25519 verifier serves as the witness that
 * each forgery below is one it accepts: what lii refuses on top of it is
 * what libsodium, and so minisign, refuses. */

#define ENC_SIZE 32 /* an encoded point or scalar */

/* A key id whose string form is easy to expect in messages. */
static const uint8_t forged_key_id[MINISIGN_KEY_ID_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
#define FORGED_KEY_ID "807060504030201"

static void bn_to_enc(const BIGNUM *n, uint8_t out[ENC_SIZE])
{
        ck_assert_int_eq(BN_bn2lebinpad(n, out, ENC_SIZE), ENC_SIZE);
}

/* Every 32-byte string that names a point of order dividing 8, as y with
 * the sign of x in bit 255. Such y are 0 (order 4), 1 (the identity), p - 1
 * (order 2) and the two roots of d y^4 + 2 y^2 - 1 = 0 that exist mod p
 * (order 8: doubling gives y = 0, so x^2 = -y^2 on the curve). A y of 255
 * bits at or above p reduces to y - p; only p and p + 1 stay below 2^255
 * and reduce to one of these, so with both signs there are 14 strings. */
static size_t small_order_encodings(uint8_t out[14][ENC_SIZE])
{
        BN_CTX *ctx = BN_CTX_new();
        BIGNUM *p = BN_new(), *d = BN_new(), *t = BN_new(), *y2 = BN_new(), *y = BN_new();
        BIGNUM *ys[7];
        size_t n = 0;

        ck_assert_ptr_nonnull(ctx);
        ck_assert(BN_set_word(p, 1) && BN_lshift(p, p, 255) && BN_sub_word(p, 19));
        /* d = -121665 / 121666 */
        ck_assert(BN_set_word(t, 121666) && BN_mod_inverse(d, t, p, ctx));
        ck_assert(BN_mul_word(d, 121665) && BN_mod_sub(d, p, d, p, ctx));
        for (int i = 0; i < 7; i++)
                ys[i] = BN_new();
        BN_zero(ys[0]);
        BN_one(ys[1]);
        ck_assert(BN_sub(ys[2], p, ys[1]));
        ck_assert(BN_copy(ys[3], p) && BN_copy(ys[4], p) && BN_add_word(ys[4], 1));
        /* y^2 = (-1 +- sqrt(1 + d)) / d; only one sign gives a square. */
        BIGNUM *one_plus_d = BN_new(), *inv_d = BN_new();
        ck_assert(BN_copy(one_plus_d, d) && BN_add_word(one_plus_d, 1));
        ck_assert_ptr_nonnull(BN_mod_sqrt(t, one_plus_d, p, ctx));
        ck_assert_ptr_nonnull(BN_mod_inverse(inv_d, d, p, ctx));
        int roots = 0;
        for (int sign = 0; sign < 2; sign++) {
                BIGNUM *s = BN_dup(t);
                if (sign)
                        ck_assert(BN_mod_sub(s, p, t, p, ctx));
                ck_assert(BN_mod_sub(y2, s, BN_value_one(), p, ctx));
                ck_assert(BN_mod_mul(y2, y2, inv_d, p, ctx));
                BN_free(s);
                ERR_set_mark();
                if (BN_mod_sqrt(y, y2, p, ctx)) {
                        ck_assert(BN_copy(ys[5], y) && BN_sub(ys[6], p, y));
                        roots++;
                }
                ERR_pop_to_mark();
        }
        ck_assert_int_eq(roots, 1);

        for (int i = 0; i < 7; i++) {
                bn_to_enc(ys[i], out[n]);
                memcpy(out[n + 1], out[n], ENC_SIZE);
                out[n + 1][31] |= 0x80;
                n += 2;
                BN_free(ys[i]);
        }
        BN_free(one_plus_d);
        BN_free(inv_d);
        BN_free(p);
        BN_free(d);
        BN_free(t);
        BN_free(y2);
        BN_free(y);
        BN_CTX_free(ctx);
        return n;
}

/* OpenSSL's plain Ed25519 verdict, without lii's checks. */
static bool openssl_accepts(const uint8_t pk[ENC_SIZE], const uint8_t sig[MINISIGN_SIG_SIZE],
                            const void *msg, size_t len)
{
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, ENC_SIZE);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ck_assert(pkey && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1);
        int r = EVP_DigestVerify(ctx, sig, MINISIGN_SIG_SIZE, msg, len);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return r == 1;
}

/* What minisign's global signature covers. */
static size_t global_message(const uint8_t sig[MINISIGN_SIG_SIZE], const char *comment,
                             uint8_t *out, size_t size)
{
        size_t n = strlen(comment);
        ck_assert_uint_le(MINISIGN_SIG_SIZE + n, size);
        memcpy(out, sig, MINISIGN_SIG_SIZE);
        memcpy(out + MINISIGN_SIG_SIZE, comment, n);
        return MINISIGN_SIG_SIZE + n;
}

/* The text of a .pub file for pk. */
static char *key_text(const uint8_t pk[ENC_SIZE])
{
        uint8_t blob[2 + MINISIGN_KEY_ID_SIZE + ENC_SIZE] = {'E', 'd'};
        char b64[64];
        memcpy(blob + 2, forged_key_id, MINISIGN_KEY_ID_SIZE);
        memcpy(blob + 2 + MINISIGN_KEY_ID_SIZE, pk, ENC_SIZE);
        EVP_EncodeBlock((unsigned char *)b64, blob, sizeof(blob));
        return xasprintf("untrusted comment: minisign public key " FORGED_KEY_ID "\n%s\n", b64);
}

/* Verifies a signature assembled field by field against a one-key keyring
 * that was filled without minisign_key_parse(), so that the check at
 * verification is tested on its own. */
static int verify_forged(const uint8_t pk[ENC_SIZE], const uint8_t sig[MINISIGN_SIG_SIZE],
                         const char *comment, const uint8_t global_sig[MINISIGN_SIG_SIZE],
                         const uint8_t hash[MINISIGN_HASH_SIZE], char **ret_error)
{
        struct minisign_key key = {.path = NULL};
        memcpy(key.key_id, forged_key_id, MINISIGN_KEY_ID_SIZE);
        memcpy(key.pk, pk, ENC_SIZE);
        minisign_key_id_to_string(key.key_id, key.key_id_string);
        struct minisign_keyring ring = {.keys = &key, .n = 1};

        _cleanup_free_ char *c = xstrdup(comment);
        struct minisign_sig s = {.prehashed = true, .trusted_comment = c};
        memcpy(s.key_id, forged_key_id, MINISIGN_KEY_ID_SIZE);
        memcpy(s.key_id_string, key.key_id_string, sizeof(s.key_id_string));
        memcpy(s.sig, sig, MINISIGN_SIG_SIZE);
        memcpy(s.global_sig, global_sig, MINISIGN_SIG_SIZE);

        free(*ret_error);
        *ret_error = NULL;
        const struct minisign_key *by = NULL;
        return minisign_verify_prehashed(&ring, &s, hash, 0, &by, ret_error);
}

START_TEST(test_identity_key_degenerate_signature_is_refused)
{
        /* The identity as the key, R = identity and S = 0: [S]B = R + [h]A
         * holds for every h, so this one signature "signs" every file and
         * every comment. */
        uint8_t pk[ENC_SIZE] = {1};
        uint8_t sig[MINISIGN_SIG_SIZE] = {1};
        uint8_t hash[MINISIGN_HASH_SIZE], msg[256];
        _cleanup_free_ char *err = NULL;

        for (int i = 0; i < 2; i++) {
                memset(hash, 'a' + i, sizeof(hash));
                ck_assert(openssl_accepts(pk, sig, hash, sizeof(hash)));
                size_t n = global_message(sig, i ? "serial 99" : "anything", msg, sizeof(msg));
                ck_assert(openssl_accepts(pk, sig, msg, n));
                ck_assert_int_eq(
                    verify_forged(pk, sig, i ? "serial 99" : "anything", sig, hash, &err),
                    -EKEYREJECTED);
                ck_assert_str_eq(err, "public key " FORGED_KEY_ID " is a weak key (small order)");
        }

        /* The legacy form and the buffer API share the check. */
        struct minisign_key key = {.path = NULL};
        memcpy(key.key_id, forged_key_id, MINISIGN_KEY_ID_SIZE);
        memcpy(key.pk, pk, ENC_SIZE);
        struct minisign_keyring ring = {.keys = &key, .n = 1};
        struct minisign_sig s = {.prehashed = false, .trusted_comment = (char[]){"x"}};
        memcpy(s.key_id, forged_key_id, MINISIGN_KEY_ID_SIZE);
        memcpy(s.sig, sig, MINISIGN_SIG_SIZE);
        memcpy(s.global_sig, sig, MINISIGN_SIG_SIZE);
        free(err);
        err = NULL;
        ck_assert_int_eq(
            minisign_verify_buffer(&ring, &s, "file", 4, MINISIGN_ALLOW_LEGACY, NULL, &err),
            -EKEYREJECTED);
        ck_assert_ptr_nonnull(strstr(err, "is a weak key (small order)"));

        /* Such a key never gets into a keyring in the first place. */
        _cleanup_free_ char *text = key_text(pk);
        struct minisign_key parsed;
        free(err);
        err = NULL;
        ck_assert_int_eq(minisign_key_parse(text, strlen(text), &parsed, &err), -EKEYREJECTED);
        ck_assert_str_eq(err, "public key " FORGED_KEY_ID " is a weak key (small order)");

        /* Nor into a key folder: loading fails and names the file. */
        _cleanup_free_ char *dir = make_dir("weakkeys");
        copy_into(dir, "keys/a.pub", "a.pub");
        _cleanup_free_ char *weak = xasprintf("%s/weak.pub", dir);
        spew(weak, text, strlen(text));
        struct minisign_keyring *k = NULL;
        free(err);
        err = NULL;
        ck_assert_int_eq(minisign_keyring_load_dir(dir, &k, &err), -EKEYREJECTED);
        ck_assert_ptr_null(k);
        _cleanup_free_ char *expected =
            xasprintf("%s: public key " FORGED_KEY_ID " is a weak key (small order)", weak);
        ck_assert_str_eq(err, expected);
}
END_TEST

START_TEST(test_every_small_order_key_is_refused)
{
        uint8_t enc[14][ENC_SIZE];
        size_t n = small_order_encodings(enc);
        size_t forged = 0;
        _cleanup_free_ char *err = NULL;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *text = key_text(enc[i]);
                struct minisign_key parsed;
                free(err);
                err = NULL;
                ck_assert_int_eq(minisign_key_parse(text, strlen(text), &parsed, &err),
                                 -EKEYREJECTED);
                ck_assert_str_eq(err, "public key " FORGED_KEY_ID " is a weak key (small order)");

                /* R = identity and S = 0 hold under a key A of order q
                 * exactly when q divides h: a few file hashes and comments
                 * find such an h, as a forger would. Where OpenSSL takes
                 * the point at all, it then accepts both signatures. */
                uint8_t sig[MINISIGN_SIG_SIZE] = {1};
                uint8_t hash[MINISIGN_HASH_SIZE] = {0}, msg[256];
                char comment[32] = "";
                bool file_ok = false, comment_ok = false;
                for (uint32_t t = 0; t < 256 && !file_ok; t++) {
                        memcpy(hash, &t, sizeof(t));
                        file_ok = openssl_accepts(enc[i], sig, hash, sizeof(hash));
                }
                for (uint32_t t = 0; t < 256 && file_ok && !comment_ok; t++) {
                        snprintf(comment, sizeof(comment), "forged %u", t);
                        size_t len = global_message(sig, comment, msg, sizeof(msg));
                        comment_ok = openssl_accepts(enc[i], sig, msg, len);
                }
                if (file_ok && comment_ok)
                        forged++;
                ck_assert_int_eq(verify_forged(enc[i], sig, comment, sig, hash, &err),
                                 -EKEYREJECTED);
                ck_assert_str_eq(err, "public key " FORGED_KEY_ID " is a weak key (small order)");
        }
        /* The forgeries were real: OpenSSL 3.0 takes all 14 strings, and
         * any version must at least take the eight canonical ones. */
        ck_assert_uint_ge(forged, 8);
}
END_TEST

START_TEST(test_non_canonical_key_is_refused)
{
        /* y = 2^255 - 1 is not below p; it is not of small order, but one
         * key must have one encoding, as libsodium requires. */
        uint8_t pk[ENC_SIZE];
        memset(pk, 0xff, sizeof(pk));
        pk[31] = 0x7f;
        _cleanup_free_ char *text = key_text(pk);
        struct minisign_key parsed;
        _cleanup_free_ char *err = NULL;
        ck_assert_int_eq(minisign_key_parse(text, strlen(text), &parsed, &err), -EKEYREJECTED);
        ck_assert_str_eq(err, "public key " FORGED_KEY_ID " is not canonically encoded");

        uint8_t sig[MINISIGN_SIG_SIZE] = {0}, hash[MINISIGN_HASH_SIZE] = {0};
        ck_assert_int_eq(verify_forged(pk, sig, "c", sig, hash, &err), -EKEYREJECTED);
        ck_assert_str_eq(err, "public key " FORGED_KEY_ID " is not canonically encoded");

        /* p - 2, the largest y that is neither of small order nor
         * non-canonical, parses. */
        pk[0] = 0xeb;
        free(text);
        text = key_text(pk);
        ck_assert_int_eq(minisign_key_parse(text, strlen(text), &parsed, &err), 0);
}
END_TEST

/* L, the order of the base point, little-endian; filled by group_order(). */
static uint8_t order_l[ENC_SIZE];

static BIGNUM *group_order(void)
{
        BIGNUM *l = NULL;
        /* 2^252 + 27742317777372353535851937790883648493 */
        ck_assert(BN_dec2bn(&l, "72370055773322622139731865630429942408571163593799076060019509382"
                                "85454250989"));
        bn_to_enc(l, order_l);
        return l;
}

/* An Ed25519 key made here, whose secret scalar is known, so that
 * signatures OpenSSL would never produce can be made with it. */
struct signer {
        EVP_PKEY *pkey;
        uint8_t pk[ENC_SIZE];
        BIGNUM *a; /* the secret scalar */
};

static void sha512(const void *a, size_t a_len, const void *b, size_t b_len, const void *c,
                   size_t c_len, uint8_t out[64])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ck_assert(ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1);
        ck_assert(EVP_DigestUpdate(ctx, a, a_len) == 1 && EVP_DigestUpdate(ctx, b, b_len) == 1);
        ck_assert(EVP_DigestUpdate(ctx, c, c_len) == 1);
        ck_assert(EVP_DigestFinal_ex(ctx, out, NULL) == 1);
        EVP_MD_CTX_free(ctx);
}

static void signer_init(struct signer *s)
{
        EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        s->pkey = NULL;
        ck_assert(kctx && EVP_PKEY_keygen_init(kctx) == 1 && EVP_PKEY_keygen(kctx, &s->pkey) == 1);
        EVP_PKEY_CTX_free(kctx);
        uint8_t seed[ENC_SIZE], h[64];
        size_t n = sizeof(seed);
        ck_assert(EVP_PKEY_get_raw_private_key(s->pkey, seed, &n) == 1 && n == sizeof(seed));
        n = sizeof(s->pk);
        ck_assert(EVP_PKEY_get_raw_public_key(s->pkey, s->pk, &n) == 1 && n == sizeof(s->pk));
        /* RFC 8032 5.1.5: the scalar is the clamped first half of the
         * seed's SHA-512. */
        sha512(seed, sizeof(seed), "", 0, "", 0, h);
        h[0] &= 248;
        h[31] &= 127;
        h[31] |= 64;
        s->a = BN_lebin2bn(h, ENC_SIZE, NULL);
        ck_assert_ptr_nonnull(s->a);
}

static void signer_done(struct signer *s)
{
        EVP_PKEY_free(s->pkey);
        BN_free(s->a);
}

static void sign_honestly(struct signer *s, const void *msg, size_t len,
                          uint8_t sig[MINISIGN_SIG_SIZE])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t n = MINISIGN_SIG_SIZE;
        ck_assert(ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->pkey) == 1);
        ck_assert(EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == MINISIGN_SIG_SIZE);
        EVP_MD_CTX_free(ctx);
}

/* A signature with R = identity: S = h * a (mod L) satisfies
 * [S]B = R + [h]A for h = SHA-512(R || A || msg). It is what a signer with
 * a nonce of zero would produce; verifiers without a small-order check
 * accept it, libsodium does not. */
static void sign_with_identity_r(struct signer *s, const void *msg, size_t len,
                                 uint8_t sig[MINISIGN_SIG_SIZE])
{
        uint8_t h[64];
        memset(sig, 0, MINISIGN_SIG_SIZE);
        sig[0] = 1;
        sha512(sig, ENC_SIZE, s->pk, ENC_SIZE, msg, len, h);
        BN_CTX *ctx = BN_CTX_new();
        BIGNUM *l = group_order(), *hn = BN_lebin2bn(h, sizeof(h), NULL), *sn = BN_new();
        ck_assert(ctx && hn && sn && BN_mod_mul(sn, hn, s->a, l, ctx) == 1);
        bn_to_enc(sn, sig + ENC_SIZE);
        BN_free(sn);
        BN_free(hn);
        BN_free(l);
        BN_CTX_free(ctx);
}

START_TEST(test_small_order_r_is_refused)
{
        struct signer s;
        signer_init(&s);
        uint8_t hash[MINISIGN_HASH_SIZE], msg[256];
        uint8_t sig[MINISIGN_SIG_SIZE], global[MINISIGN_SIG_SIZE];
        const char *comment = "serial 7";
        _cleanup_free_ char *err = NULL;
        memset(hash, 0x5a, sizeof(hash));

        /* Honest signatures by this key verify: the harness is sound. */
        sign_honestly(&s, hash, sizeof(hash), sig);
        size_t n = global_message(sig, comment, msg, sizeof(msg));
        sign_honestly(&s, msg, n, global);
        ck_assert_int_eq(verify_forged(s.pk, sig, comment, global, hash, &err), 0);

        /* R = identity in the file signature. */
        sign_with_identity_r(&s, hash, sizeof(hash), sig);
        ck_assert(openssl_accepts(s.pk, sig, hash, sizeof(hash)));
        n = global_message(sig, comment, msg, sizeof(msg));
        sign_honestly(&s, msg, n, global);
        ck_assert_int_eq(verify_forged(s.pk, sig, comment, global, hash, &err), -EBADMSG);
        ck_assert_str_eq(err, "signature: R is a point of small order");

        /* R = identity in the global signature. */
        sign_honestly(&s, hash, sizeof(hash), sig);
        n = global_message(sig, comment, msg, sizeof(msg));
        sign_with_identity_r(&s, msg, n, global);
        ck_assert(openssl_accepts(s.pk, global, msg, n));
        ck_assert_int_eq(verify_forged(s.pk, sig, comment, global, hash, &err), -EBADMSG);
        ck_assert_str_eq(err, "trusted comment signature: R is a point of small order");

        /* Every encoding of every small-order point, in either place. */
        uint8_t enc[14][ENC_SIZE];
        size_t n_enc = small_order_encodings(enc);
        uint8_t good_global[MINISIGN_SIG_SIZE];
        sign_honestly(&s, msg, n, good_global);
        for (size_t i = 0; i < n_enc; i++) {
                uint8_t bad[MINISIGN_SIG_SIZE] = {0};
                memcpy(bad, enc[i], ENC_SIZE);
                ck_assert_int_eq(verify_forged(s.pk, bad, comment, good_global, hash, &err),
                                 -EBADMSG);
                ck_assert_str_eq(err, "signature: R is a point of small order");
                ck_assert_int_eq(verify_forged(s.pk, sig, comment, bad, hash, &err), -EBADMSG);
                ck_assert_str_eq(err, "trusted comment signature: R is a point of small order");
        }
        signer_done(&s);
}
END_TEST

/* Mutators for mutate_blob(): the file signature's S is at byte
 * 2 + 8 + 32 of line 2, the global signature's at byte 32 of line 4. */
#define FILE_S   (2 + MINISIGN_KEY_ID_SIZE + ENC_SIZE)
#define GLOBAL_S ENC_SIZE

static void add_order(uint8_t *s)
{
        unsigned carry = 0;
        for (size_t i = 0; i < ENC_SIZE; i++) {
                carry += (unsigned)s[i] + order_l[i];
                s[i] = (uint8_t)carry;
                carry >>= 8;
        }
        ck_assert_uint_eq(carry, 0);
}
static void file_s_plus_l(uint8_t *blob)
{
        add_order(blob + FILE_S);
}
static void global_s_plus_l(uint8_t *blob)
{
        add_order(blob + GLOBAL_S);
}
static void file_s_is_l(uint8_t *blob)
{
        memcpy(blob + FILE_S, order_l, ENC_SIZE);
}
static void file_s_is_l_plus_1(uint8_t *blob)
{
        memcpy(blob + FILE_S, order_l, ENC_SIZE);
        blob[FILE_S] += 1;
}
static void file_s_is_l_minus_1(uint8_t *blob)
{
        memcpy(blob + FILE_S, order_l, ENC_SIZE);
        blob[FILE_S] -= 1;
}
static void file_s_high_bits(uint8_t *blob)
{
        blob[FILE_S + 31] |= 0xe0;
}
static void global_s_all_ones(uint8_t *blob)
{
        memset(blob + GLOBAL_S, 0xff, ENC_SIZE);
}

START_TEST(test_non_canonical_s_is_refused)
{
        size_t len;
        _cleanup_free_ char *sig = tmp_slurp("data.a.minisig", NULL);
        _cleanup_free_ char *data = tmp_slurp("data", &len);
        _cleanup_free_ char *err = NULL;
        BN_free(group_order());

        /* The real signature holds: only the changes below break it. */
        ck_assert_int_eq(verify_text(sig, strlen(sig), data, len, 0, NULL, &err), 0);

        static const struct {
                int line;
                size_t size;
                void (*mutate)(uint8_t *blob);
                const char *expected;
        } cases[] = {
            /* S + L is the same scalar mod L: the same signature in a
             * second spelling. */
            {2, 74, file_s_plus_l, "signature: S is not canonical (not below the group order)"},
            {4, 64, global_s_plus_l,
             "trusted comment signature: S is not canonical (not below the group order)"},
            {2, 74, file_s_is_l, "signature: S is not canonical (not below the group order)"},
            {2, 74, file_s_is_l_plus_1,
             "signature: S is not canonical (not below the group order)"},
            {2, 74, file_s_high_bits, "signature: S is not canonical (not below the group order)"},
            {4, 64, global_s_all_ones,
             "trusted comment signature: S is not canonical (not below the group order)"},
            /* L - 1 is canonical: it is judged, and found wrong. */
            {2, 74, file_s_is_l_minus_1, "signature does not match the file"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *t =
                    mutate_blob(sig, cases[i].line, cases[i].size, cases[i].mutate);
                free(err);
                err = NULL;
                ck_assert_int_eq(verify_text(t, strlen(t), data, len, 0, NULL, &err), -EBADMSG);
                ck_assert_str_eq(err, cases[i].expected);
        }
}
END_TEST

static Suite *minisign_suite(void)
{
        Suite *s = suite_create("minisign");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_real_signature_verifies);
        tcase_add_test(tc, test_trusted_comment_and_key_id_exposed);
        tcase_add_test(tc, test_key_id_has_no_zero_padding);
        tcase_add_test(tc, test_streaming_prehash_verifies);
        tcase_add_test(tc, test_hasher_is_blake2b512);
        tcase_add_test(tc, test_empty_file_signature_verifies);
        tcase_add_test(tc, test_tampered_file_is_refused);
        tcase_add_test(tc, test_tampered_trusted_comment_is_refused);
        tcase_add_test(tc, test_comment_of_another_signature_is_refused);
        tcase_add_test(tc, test_tampered_signature_bytes_are_refused);
        tcase_add_test(tc, test_prehashed_signature_relabelled_legacy_is_refused);
        tcase_add_test(tc, test_unknown_key_id_is_refused);
        tcase_add_test(tc, test_signature_by_other_key_is_refused);
        tcase_add_test(tc, test_two_keys_in_keyring);
        tcase_add_test(tc, test_legacy_refused_by_default);
        tcase_add_test(tc, test_legacy_accepted_when_allowed);
        tcase_add_test(tc, test_truncated_and_malformed_signature_files);
        tcase_add_test(tc, test_line_endings);
        tcase_add_test(tc, test_non_strict_base64_is_refused);
        tcase_add_test(tc, test_trusted_comment_text_rules);
        tcase_add_test(tc, test_key_parse);
        tcase_add_test(tc, test_keyring_bad_file_is_named);
        tcase_add_test(tc, test_keyring_missing_and_empty_dir);
        tcase_add_test(tc, test_keyring_duplicates_and_odd_entries);
        suite_add_tcase(s, tc);

        TCase *weak = tcase_create("weak");
        tcase_add_test(weak, test_identity_key_degenerate_signature_is_refused);
        tcase_add_test(weak, test_every_small_order_key_is_refused);
        tcase_add_test(weak, test_non_canonical_key_is_refused);
        tcase_add_test(weak, test_small_order_r_is_refused);
        tcase_add_test(weak, test_non_canonical_s_is_refused);
        suite_add_tcase(s, weak);
        return s;
}

static void keygen(const char *name)
{
        _cleanup_free_ char *pub = xasprintf("%s/%s.pub", tmpdir, name);
        _cleanup_free_ char *sec = xasprintf("%s/%s.key", tmpdir, name);
        run_or_die((const char *const[]){MINISIGN_TOOL, "-G", "-W", "-p", pub, "-s", sec, NULL});
}

static void sign(const char *key, const char *file, const char *sig, const char *legacy,
                 const char *comment)
{
        _cleanup_free_ char *sec = xasprintf("%s/%s.key", tmpdir, key);
        _cleanup_free_ char *m = xasprintf("%s/%s", tmpdir, file);
        _cleanup_free_ char *x = xasprintf("%s/%s", tmpdir, sig);
        const char *argv[16] = {MINISIGN_TOOL, "-S", "-s", sec, "-m", m, "-x", x};
        size_t n = 8;
        if (legacy)
                argv[n++] = legacy;
        if (comment) {
                argv[n++] = "-t";
                argv[n++] = comment;
        }
        argv[n] = NULL;
        run_or_die(argv);
}

/* Everything the tests use comes from the real minisign, made fresh. */
static void make_fixtures(void)
{
        if (!mkdtemp(tmpdir)) {
                perror(tmpdir);
                exit(EXIT_FAILURE);
        }
        keygen("a");
        keygen("b");
        keygen("c");

        _cleanup_free_ char *keys = tmp_path("keys");
        if (mkdir(keys, 0755) < 0) {
                perror(keys);
                exit(EXIT_FAILURE);
        }
        /* Only *.pub files count: the secret key and notes lying around in
         * the directory must be ignored. */
        static const char *const copies[][2] = {
            {"a.pub", "keys/a.pub"},
            {"b.pub", "keys/b.pub"},
            {"a.key", "keys/a.key"},
            {"a.pub", "keys/a.pub.orig"},
        };
        for (size_t i = 0; i < ELEMENTSOF(copies); i++) {
                _cleanup_free_ char *src = tmp_path(copies[i][0]);
                _cleanup_free_ char *dst = tmp_path(copies[i][1]);
                run_or_die((const char *const[]){"/bin/cp", src, dst, NULL});
        }

        /* Pseudo-random so that no structure could make tampering invisible. */
        _cleanup_free_ char *data = malloc(DATA_SIZE);
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < DATA_SIZE; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                data[i] = (char)x;
        }
        _cleanup_free_ char *data_path = tmp_path("data");
        _cleanup_free_ char *empty_path = tmp_path("empty");
        FILE *f = fopen(data_path, "we");
        if (!f || fwrite(data, 1, DATA_SIZE, f) != DATA_SIZE || fclose(f) != 0) {
                perror(data_path);
                exit(EXIT_FAILURE);
        }
        f = fopen(empty_path, "we");
        if (!f || fclose(f) != 0) {
                perror(empty_path);
                exit(EXIT_FAILURE);
        }

        sign("a", "data", "data.a.minisig", NULL, "lii test: signed by A");
        sign("b", "data", "data.b.minisig", NULL, "lii test: signed by B");
        sign("c", "data", "data.c.minisig", NULL, "lii test: signed by C");
        sign("a", "data", "data.legacy.minisig", "-l", "lii test: legacy");
        sign("a", "data", "data.utf8.minisig", NULL, "d\xc3\xa9ploiement \xe2\x9c\x93\tok");
        sign("a", "data", "data.esc.minisig", NULL, "look \x1b[31mred");
        sign("a", "empty", "empty.minisig", NULL, NULL);
        sign("a", "empty", "empty.legacy.minisig", "-l", NULL);
}

int main(void)
{
        make_fixtures();

        SRunner *sr = srunner_create(minisign_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);

        if (failed == 0)
                run((const char *const[]){"/bin/rm", "-rf", tmpdir, NULL});
        else
                fprintf(stderr, "keeping %s for inspection\n", tmpdir);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
