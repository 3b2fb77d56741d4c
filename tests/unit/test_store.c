/* The artifact store as the rollout code uses it: an artifact is fetched
 * (file://, http://, https:// from a real nginx), its size, SHA-256 and
 * minisign signature (made by the real minisign tool) are verified before
 * anything is unpacked, it is unpacked once into a read-only tree at a known
 * path, and served from there afterwards only while a trusted key vouches
 * for it. Every failure leaves neither a store entry nor leftovers behind.
 * Callbacks come from the loop, never from inside the call, and not at all
 * after a cancel. */
#include "store.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <semaphore.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "curlm.h"
#include "nginx.h"
#include "util.h"

#define MINISIGN_TOOL "/usr/bin/minisign"

/* Made once in main(): the keys "a" (trusted by default) and "b", and the
 * keyring folders ring-a, ring-b and ring-ab. The forked tests only read it. */
static char fixtures[] = LII_BUILD_DIR "/test-store-fixtures.XXXXXX";
static char key_id_a[17], key_id_b[17];

static struct h_nginx nginx; /* running for the "http" test case only */
static bool nginx_running;
static char *www; /* nginx's document root */

static char *base_dir;  /* a fresh folder per test */
static char *state_dir; /* base_dir/state */
static char *src_dir;   /* base_dir/src: where file:// URLs point */
static uv_loop_t loop;
static struct curlm *curlm;
static struct minisign_keyring *keys;
static struct store *store;

struct result {
        int calls;
        bool synchronous; /* called while store_ensure() was still running */
        int r;
        char *root;
        char *error;
        char *key_id;
        char *comment;
        /* Run inside the callback, for tests that act at that moment. */
        void (*then)(struct result *res);
        void *data;
};
static bool in_ensure;

static char *strdup_or_null(const char *s)
{
        return s ? xstrdup(s) : NULL;
}

static void on_done(const struct store_result *sr, void *userdata)
{
        struct result *res = userdata;
        res->calls++;
        res->synchronous |= in_ensure;
        res->r = sr->r;
        free(res->root);
        free(res->error);
        free(res->key_id);
        free(res->comment);
        res->root = strdup_or_null(sr->root);
        res->error = strdup_or_null(sr->error);
        res->key_id = strdup_or_null(sr->key_id);
        res->comment = strdup_or_null(sr->trusted_comment);
        if (res->then)
                res->then(res);
}

static void result_done(struct result *res)
{
        free(res->root);
        free(res->error);
        free(res->key_id);
        free(res->comment);
        *res = (struct result){0};
}

static void sh(const char *cmd)
{
        int rc = system(cmd);
        ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* (Re)opens the store over state_dir, trusting the keys in ring (a folder
 * of the fixtures, or NULL for no signatures) and nginx's CA if asked, with
 * the time limits of the store's options (0: none). */
static void reopen_store_timed(const char *ring, bool with_ca, uint64_t timeout_usec,
                               uint64_t min_rate)
{
        store = store_free(store);
        keys = minisign_keyring_free(keys);
        if (ring) {
                _cleanup_free_ char *dir = xasprintf("%s/%s", fixtures, ring);
                _cleanup_free_ char *error = NULL;
                ck_assert_msg(minisign_keyring_load_dir(dir, &keys, &error) == 0, "%s", error);
        }
        struct store_options opts = {
            .curlm = curlm,
            .http = {.ca_file = with_ca && nginx_running ? nginx.ca_file : NULL,
                     .timeout_usec = timeout_usec},
            .keys = keys,
            .min_rate = min_rate,
        };
        ck_assert_int_eq(store_new(&loop, state_dir, &opts, &store), 0);
}

static void reopen_store(const char *ring, bool with_ca)
{
        reopen_store_timed(ring, with_ca, 0, 0);
}

static void setup(void)
{
        base_dir = xasprintf("%s/test-store.XXXXXX", LII_BUILD_DIR);
        ck_assert_ptr_nonnull(mkdtemp(base_dir));
        state_dir = xasprintf("%s/state", base_dir);
        src_dir = xasprintf("%s/src", base_dir);
        ck_assert_int_eq(mkdir(src_dir, 0755), 0);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(curlm_new(&loop, &curlm), 0);
        reopen_store("ring-a", true);
}

static void teardown(void)
{
        /* The store aborts its downloads on curl multi: it goes first. */
        store = store_free(store);
        curlm = curlm_free(curlm);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        keys = minisign_keyring_free(keys);
        /* The store's trees are read-only; give the write bits back first. */
        _cleanup_free_ char *cmd = xasprintf("chmod -R u+w %1$s && rm -rf %1$s", base_dir);
        ck_assert_int_eq(system(cmd), 0);
        free(base_dir);
        free(state_dir);
        free(src_dir);
}

static void sha256_file(const char *path, char hex[static 65], uint64_t *ret_size)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        ck_assert_int_eq(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        char buf[4096];
        size_t n;
        uint64_t size = 0;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
                EVP_DigestUpdate(md, buf, n);
                size += n;
        }
        uint8_t digest[32];
        unsigned len;
        EVP_DigestFinal_ex(md, digest, &len);
        EVP_MD_CTX_free(md);
        hex_encode(digest, 32, hex);
        *ret_size = size;
}

/* Signs path with the real minisign as path.minisig ("-l": the legacy
 * form); comment NULL leaves minisign's default. */
static void sign_as(const char *path, const char *sig_path, const char *key, const char *comment,
                    bool legacy)
{
        _cleanup_free_ char *cmd =
            xasprintf("%s -S -s %s/%s.key -m '%s' -x '%s' %s %s%s%s </dev/null >/dev/null",
                      MINISIGN_TOOL, fixtures, key, path, sig_path, legacy ? "-l" : "",
                      comment ? "-t '" : "", comment ? comment : "", comment ? "'" : "");
        sh(cmd);
}

static void sign(const char *path, const char *key, const char *comment)
{
        _cleanup_free_ char *sig = xasprintf("%s.minisig", path);
        sign_as(path, sig, key, comment, false);
}

/* Packs a small service tree with the real tar tool and signs it with the
 * trusted key; returns its path. */
static char *make_tar_in(const char *dir, const char *name, const char *version)
{
        char *path = xasprintf("%s/%s", dir, name);
        _cleanup_free_ char *cmd =
            xasprintf("set -e; t=%1$s/tree-%2$s; mkdir -p $t/bin $t/share; "
                      "printf '#!/bin/sh\\necho hi\\n' > $t/bin/hello; chmod 0700 $t/bin/hello; "
                      "echo %2$s > $t/VERSION; chmod 0600 $t/VERSION; ln -s ../VERSION $t/share/v; "
                      "tar -C $t -czf %3$s .",
                      src_dir, version, path);
        sh(cmd);
        _cleanup_free_ char *comment = xasprintf("lii test: %s", name);
        sign(path, "a", comment);
        return path;
}

static char *make_tar(const char *name, const char *version)
{
        return make_tar_in(src_dir, name, version);
}

/* A file of n pseudo-random bytes (incompressible, so that no layer of the
 * transfer can shrink it), signed with the trusted key. */
static char *make_blob_in(const char *dir, const char *name, size_t n)
{
        char *path = xasprintf("%s/%s", dir, name);
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                fputc((int)(x & 0xff), f);
        }
        ck_assert_int_eq(fclose(TAKE_PTR(f)), 0);
        sign(path, "a", "lii test: blob");
        return path;
}

/* Fills the artifact part of a spec the way the desired-state parser
 * would: url, its signature at url.minisig, and the hash and size of the
 * file at path. */
static void spec_for_url(struct service_spec *spec, const char *url, const char *path,
                         enum artifact_type type)
{
        *spec = (struct service_spec){.name = "hello", .artifact_type = type};
        spec->artifact_url = xstrdup(url);
        spec->signature_url = xasprintf("%s.minisig", url);
        sha256_file(path, spec->artifact_sha256, &spec->artifact_size);
}

static void spec_for(struct service_spec *spec, const char *path, enum artifact_type type)
{
        _cleanup_free_ char *url = xasprintf("file://%s", path);
        spec_for_url(spec, url, path, type);
}

/* The same for a file in nginx's root, over http or https. */
static void spec_for_web(struct service_spec *spec, const char *scheme, const char *name)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", www, name);
        _cleanup_free_ char *url =
            xasprintf("%s://127.0.0.1:%d/%s", scheme,
                      strcmp(scheme, "https") == 0 ? nginx.https_port : nginx.http_port, name);
        spec_for_url(spec, url, path, ARTIFACT_TAR);
}

static void spec_done(struct service_spec *spec)
{
        free(spec->artifact_url);
        free(spec->signature_url);
}

static void ensure(const struct service_spec *spec, struct result *res)
{
        in_ensure = true;
        int r = store_ensure(store, spec, on_done, res, NULL);
        in_ensure = false;
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(res->calls, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res->calls, 1);
        ck_assert(!res->synchronous);
}

static int count_entries(const char *dir)
{
        _cleanup_free_ char *cmd = xasprintf("test -z \"$(ls -A %s)\"", dir);
        return system(cmd) == 0 ? 0 : 1;
}

static char *record_path(const char *sha256, const char *suffix)
{
        _cleanup_free_ char *root = store_artifact_path(store, sha256);
        return xasprintf("%s%s", root, suffix);
}

static void assert_store_clean(const char *sha256)
{
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_msg(count_entries(tmp) == 0, "store/tmp is not empty");
        ck_assert(!store_has(store, sha256));
        _cleanup_free_ char *path = store_artifact_path(store, sha256);
        ck_assert_int_ne(access(path, F_OK), 0);
        _cleanup_free_ char *sig = record_path(sha256, ".sig");
        _cleanup_free_ char *b2 = record_path(sha256, ".b2");
        ck_assert_int_ne(access(sig, F_OK), 0);
        ck_assert_int_ne(access(b2, F_OK), 0);
}

static mode_t mode_of(const char *path)
{
        struct stat st;
        ck_assert_msg(lstat(path, &st) == 0, "%s missing", path);
        return st.st_mode;
}

static ino_t inode_of(const char *path)
{
        struct stat st;
        ck_assert_msg(lstat(path, &st) == 0, "%s missing", path);
        return st.st_ino;
}

static char *slurp(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        ck_assert_msg(f, "cannot open %s", path);
        char *buf = xcalloc(1, 65536);
        size_t n = fread(buf, 1, 65535, f);
        ck_assert(!ferror(f));
        buf[n] = '\0';
        return buf;
}

static int write_bits_found;
static int check_read_only(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)flag;
        (void)ftw;
        if (!S_ISLNK(st->st_mode) && (st->st_mode & 0222)) {
                fprintf(stderr, "writable: %s\n", path);
                write_bits_found++;
        }
        return 0;
}

START_TEST(test_ensure_tar)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_ptr_null(res.error);

        _cleanup_free_ char *real_state = realpath(state_dir, NULL);
        _cleanup_free_ char *expected =
            xasprintf("%s/store/sha256/%s", real_state, spec.artifact_sha256);
        ck_assert_str_eq(res.root, expected);
        _cleanup_free_ char *path = store_artifact_path(store, spec.artifact_sha256);
        ck_assert_str_eq(path, expected);
        ck_assert(store_has(store, spec.artifact_sha256));

        /* Read-only for everyone, readable and traversable by everyone. */
        ck_assert_int_eq(mode_of(res.root) & 07777, 0555);
        _cleanup_free_ char *bin = xasprintf("%s/bin", res.root);
        _cleanup_free_ char *hello = xasprintf("%s/bin/hello", res.root);
        _cleanup_free_ char *version = xasprintf("%s/VERSION", res.root);
        _cleanup_free_ char *link = xasprintf("%s/share/v", res.root);
        ck_assert_int_eq(mode_of(bin) & 07777, 0555);
        ck_assert_int_eq(mode_of(hello) & 07777, 0555);
        ck_assert_int_eq(mode_of(version) & 07777, 0444);
        ck_assert(S_ISLNK(mode_of(link)));
        write_bits_found = 0;
        ck_assert_int_eq(nftw(res.root, check_read_only, 16, FTW_PHYS), 0);
        ck_assert_int_eq(write_bits_found, 0);
        _cleanup_fclose_ FILE *f = fopen(link, "re");
        ck_assert_ptr_nonnull(f);
        char buf[16] = {0};
        ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
        ck_assert_str_eq(buf, "1\n");

        /* The way down to the artifact is open to an instance's user. */
        _cleanup_free_ char *store_dir = xasprintf("%s/store", state_dir);
        _cleanup_free_ char *sha_dir = xasprintf("%s/store/sha256", state_dir);
        ck_assert_int_eq(mode_of(state_dir) & 0011, 0011);
        ck_assert_int_eq(mode_of(store_dir) & 07777, 0755);
        ck_assert_int_eq(mode_of(sha_dir) & 07777, 0755);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);

        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_signed_file_reports_signer)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_str_eq(res.key_id, key_id_a);
        ck_assert_str_eq(res.comment, "lii test: hello-1.tar.gz");

        /* The signature is recorded next to the tree, with the BLAKE2b-512
         * it covers, so that a later use can check it without the file. */
        _cleanup_free_ char *sig_path = xasprintf("%s.minisig", tar);
        _cleanup_free_ char *recorded_path = record_path(spec.artifact_sha256, ".sig");
        _cleanup_free_ char *b2_path = record_path(spec.artifact_sha256, ".b2");
        _cleanup_free_ char *sig = slurp(sig_path);
        _cleanup_free_ char *recorded = slurp(recorded_path);
        _cleanup_free_ char *b2 = slurp(b2_path);
        ck_assert_str_eq(recorded, sig);
        ck_assert_uint_eq(strlen(b2), 129);
        ck_assert_int_eq(b2[128], '\n');
        b2[128] = '\0';
        ck_assert(is_hex_string(b2, 128));

        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_unsigned_when_no_keys)
{
        /* require_signature = no: no signature is fetched at all. */
        reopen_store(NULL, false);
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        ck_assert_int_eq(unlink(sig), 0);
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_ptr_null(res.key_id);
        ck_assert_ptr_null(res.comment);
        _cleanup_free_ char *recorded = record_path(spec.artifact_sha256, ".sig");
        ck_assert_int_ne(access(recorded, F_OK), 0);

        /* Once signatures are required, an artifact that came in unsigned is
         * not handed out on the strength of being in the store. */
        reopen_store("ring-a", false);
        struct result again = {0};
        ensure(&spec, &again);
        ck_assert_int_eq(again.r, -ENOENT);
        _cleanup_free_ char *msg = xasprintf("artifact %s: signature %s: No such file or directory",
                                             spec.artifact_url, spec.signature_url);
        ck_assert_str_eq(again.error, msg);

        result_done(&res);
        result_done(&again);
        spec_done(&spec);
}
END_TEST

START_TEST(test_second_ensure_from_store)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result first = {0}, second = {0};
        ensure(&spec, &first);
        ck_assert_int_eq(first.r, 0);

        /* The source and its signature are gone: only the store can answer,
         * from its record of the signature. */
        ck_assert_int_eq(unlink(tar), 0);
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        ck_assert_int_eq(unlink(sig), 0);
        ensure(&spec, &second);
        ck_assert_msg(second.r == 0, "%s", second.error);
        ck_assert_str_eq(second.root, first.root);
        ck_assert_str_eq(second.key_id, key_id_a);
        ck_assert_str_eq(second.comment, "lii test: hello-1.tar.gz");

        /* So can a new store over the same state folder, as after a restart. */
        reopen_store("ring-a", false);
        struct result third = {0};
        ensure(&spec, &third);
        ck_assert_msg(third.r == 0, "%s", third.error);
        ck_assert_str_eq(third.root, first.root);

        result_done(&first);
        result_done(&second);
        result_done(&third);
        spec_done(&spec);
}
END_TEST

static void assert_fails(struct service_spec *spec, int expected_r, const char *expected_error)
{
        struct result res = {0};
        ensure(spec, &res);
        ck_assert_msg(res.r == expected_r, "r = %d (%s), expected %d", res.r, res.error,
                      expected_r);
        ck_assert_ptr_null(res.root);
        ck_assert_ptr_nonnull(res.error);
        ck_assert_str_eq(res.error, expected_error);
        assert_store_clean(spec->artifact_sha256);
        result_done(&res);
}

START_TEST(test_larger_than_declared)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        spec.artifact_size -= 1;
        _cleanup_free_ char *msg = xasprintf("artifact %s: larger than the declared size %" PRIu64,
                                             spec.artifact_url, spec.artifact_size);
        assert_fails(&spec, -EFBIG, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_smaller_than_declared)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        uint64_t actual = spec.artifact_size;
        spec.artifact_size += 10;
        _cleanup_free_ char *msg = xasprintf("artifact %s: %" PRIu64 " bytes, declared %" PRIu64,
                                             spec.artifact_url, actual, spec.artifact_size);
        assert_fails(&spec, -EBADMSG, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_sha256_mismatch)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        char actual[65];
        memcpy(actual, spec.artifact_sha256, sizeof(actual));
        memset(spec.artifact_sha256, 'a', 64);
        _cleanup_free_ char *msg = xasprintf("artifact %s: SHA-256 mismatch: expected %s, got %s",
                                             spec.artifact_url, spec.artifact_sha256, actual);
        assert_fails(&spec, -EBADMSG, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_missing_file)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        /* The signature is there, the artifact is not. */
        free(spec.artifact_url);
        spec.artifact_url = xasprintf("file://%s/nope.tar.gz", src_dir);
        _cleanup_free_ char *msg =
            xasprintf("artifact %s: No such file or directory", spec.artifact_url);
        assert_fails(&spec, -ENOENT, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_missing_signature_file)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        ck_assert_int_eq(unlink(sig), 0);
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        _cleanup_free_ char *msg = xasprintf("artifact %s: signature %s: No such file or directory",
                                             spec.artifact_url, spec.signature_url);
        assert_fails(&spec, -ENOENT, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_garbage_signature_file)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        _cleanup_fclose_ FILE *f = fopen(sig, "we");
        ck_assert_ptr_nonnull(f);
        fputs("not a signature\n", f);
        ck_assert_int_eq(fclose(TAKE_PTR(f)), 0);
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_int_eq(res.r, -EBADMSG);
        _cleanup_free_ char *prefix =
            xasprintf("artifact %s: signature %s: ", spec.artifact_url, spec.signature_url);
        ck_assert_msg(strncmp(res.error, prefix, strlen(prefix)) == 0, "%s", res.error);
        assert_store_clean(spec.artifact_sha256);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_unsupported_scheme)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        free(spec.artifact_url);
        spec.artifact_url = xstrdup("gopher://artifacts.invalid/hello-1.tar.gz");
        assert_fails(&spec, -EPROTONOSUPPORT,
                     "artifact gopher://artifacts.invalid/hello-1.tar.gz: scheme not supported");
        spec_done(&spec);
}
END_TEST

START_TEST(test_hostile_archive)
{
        /* GNU tar keeps a leading "../" with --absolute-names. Properly
         * signed and hashed: the unpacking policy alone refuses it. */
        _cleanup_free_ char *tar = xasprintf("%s/evil.tar", src_dir);
        _cleanup_free_ char *cmd = xasprintf("set -e; mkdir -p %1$s/a/b; echo x > %1$s/a/evil; "
                                             "cd %1$s/a/b && tar --absolute-names -cf %2$s ../evil",
                                             src_dir, tar);
        sh(cmd);
        sign(tar, "a", "lii test: evil");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        _cleanup_free_ char *msg = xasprintf(
            "artifact %s: entry '../evil': path leaves the artifact root", spec.artifact_url);
        assert_fails(&spec, -EPERM, msg);
        _cleanup_free_ char *evil = xasprintf("%s/store/evil", state_dir);
        ck_assert_int_ne(access(evil, F_OK), 0);
        spec_done(&spec);
}
END_TEST

START_TEST(test_type_file)
{
        _cleanup_free_ char *path = xasprintf("%s/my tool", src_dir);
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs("#!/bin/sh\necho tool\n", f);
        ck_assert_int_eq(fclose(TAKE_PTR(f)), 0);
        ck_assert_int_eq(chmod(path, 0600), 0);
        sign(path, "a", "lii test: tool");

        struct service_spec spec;
        spec_for(&spec, path, ARTIFACT_FILE);
        free(spec.artifact_url);
        free(spec.signature_url);
        spec.artifact_url = xasprintf("file://%s/my%%20tool", src_dir);
        spec.signature_url = xasprintf("file://%s/my%%20tool.minisig", src_dir);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);

        _cleanup_free_ char *placed = xasprintf("%s/my tool", res.root);
        ck_assert_int_eq(mode_of(placed) & 07777, 0555);
        ck_assert_int_eq(mode_of(res.root) & 07777, 0555);
        _cleanup_fclose_ FILE *g = fopen(placed, "re");
        ck_assert_ptr_nonnull(g);
        char buf[64] = {0};
        ck_assert_uint_eq(fread(buf, 1, sizeof(buf) - 1, g), strlen("#!/bin/sh\necho tool\n"));
        ck_assert_str_eq(buf, "#!/bin/sh\necho tool\n");
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_collect)
{
        _cleanup_free_ char *tar1 = make_tar("hello-1.tar.gz", "1");
        _cleanup_free_ char *tar2 = make_tar("hello-2.tar.gz", "2");
        _cleanup_free_ char *tar3 = make_tar("hello-3.tar.gz", "3");
        struct service_spec s1, s2, s3;
        spec_for(&s1, tar1, ARTIFACT_TAR);
        spec_for(&s2, tar2, ARTIFACT_TAR);
        spec_for(&s3, tar3, ARTIFACT_TAR);
        struct result r1 = {0}, r2 = {0}, r3 = {0};
        ensure(&s1, &r1);
        ensure(&s2, &r2);
        ensure(&s3, &r3);
        ck_assert_int_eq(r1.r, 0);
        ck_assert_int_eq(r2.r, 0);
        ck_assert_int_eq(r3.r, 0);
        /* Something that is not a store entry is left alone. */
        _cleanup_free_ char *stray = xasprintf("%s/store/sha256/README", state_dir);
        _cleanup_fclose_ FILE *f = fopen(stray, "we");
        ck_assert_ptr_nonnull(f);
        /* A record whose tree is gone, as after a crash halfway through an
         * earlier collection, goes. */
        _cleanup_free_ char *cmd = xasprintf("chmod u+w %1$s && rm -rf %1$s", r3.root);
        sh(cmd);

        _cleanup_free_ char *sig1 = record_path(s1.artifact_sha256, ".sig");
        _cleanup_free_ char *b21 = record_path(s1.artifact_sha256, ".b2");
        _cleanup_free_ char *sig2 = record_path(s2.artifact_sha256, ".sig");
        _cleanup_free_ char *b22 = record_path(s2.artifact_sha256, ".b2");
        _cleanup_free_ char *sig3 = record_path(s3.artifact_sha256, ".sig");
        _cleanup_free_ char *b23 = record_path(s3.artifact_sha256, ".b2");
        ck_assert_int_eq(access(sig3, F_OK), 0);

        /* Records are not entries: one entry goes, with its record. */
        char *keep[] = {s1.artifact_sha256, NULL};
        ck_assert_int_eq(store_collect(store, keep), 1);
        ck_assert(store_has(store, s1.artifact_sha256));
        ck_assert_int_eq(access(sig1, F_OK), 0);
        ck_assert_int_eq(access(b21, F_OK), 0);
        ck_assert(!store_has(store, s2.artifact_sha256));
        ck_assert_int_ne(access(r2.root, F_OK), 0);
        ck_assert_int_ne(access(sig2, F_OK), 0);
        ck_assert_int_ne(access(b22, F_OK), 0);
        ck_assert_int_ne(access(sig3, F_OK), 0);
        ck_assert_int_ne(access(b23, F_OK), 0);
        ck_assert_int_eq(access(stray, F_OK), 0);

        ck_assert_int_eq(store_collect(store, keep), 0);
        ck_assert_int_eq(store_collect(store, NULL), 1);
        ck_assert(!store_has(store, s1.artifact_sha256));
        ck_assert_int_ne(access(sig1, F_OK), 0);
        ck_assert_int_ne(access(b21, F_OK), 0);
        ck_assert_int_eq(access(stray, F_OK), 0);

        result_done(&r1);
        result_done(&r2);
        result_done(&r3);
        spec_done(&s1);
        spec_done(&s2);
        spec_done(&s3);
}
END_TEST

/* Holds every thread of libuv's pool, so that a test can tell work done
 * on the loop from work queued for the pool. */
struct pool_hold {
        uv_work_t *work;
        unsigned n;
        sem_t started, release;
};

static void hold_work(uv_work_t *w)
{
        struct pool_hold *h = w->data;
        sem_post(&h->started);
        sem_wait(&h->release);
}

static void hold_after_work(uv_work_t *w, int status)
{
}

static void pool_hold(struct pool_hold *h)
{
        /* The pool's size as libuv reads it: UV_THREADPOOL_SIZE, else 4. */
        const char *size = getenv("UV_THREADPOOL_SIZE");
        h->n = size ? (unsigned)atoi(size) : 4;
        h->n = h->n < 1 ? 1 : h->n > 1024 ? 1024 : h->n;
        h->work = xcalloc(h->n, sizeof(*h->work));
        ck_assert_int_eq(sem_init(&h->started, 0, 0), 0);
        ck_assert_int_eq(sem_init(&h->release, 0, 0), 0);
        for (unsigned i = 0; i < h->n; i++) {
                h->work[i].data = h;
                ck_assert_int_eq(uv_queue_work(&loop, &h->work[i], hold_work, hold_after_work), 0);
        }
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        for (unsigned i = 0; i < h->n; i++)
                ck_assert_msg(sem_timedwait(&h->started, &deadline) == 0,
                              "the pool's threads did not all start");
}

static void pool_release(struct pool_hold *h)
{
        for (unsigned i = 0; i < h->n; i++)
                sem_post(&h->release);
}

static void pool_hold_done(struct pool_hold *h)
{
        sem_destroy(&h->started);
        sem_destroy(&h->release);
        free(h->work);
}

/* Collection takes a tree out of the store at once and removes it on the
 * thread pool, not on the loop: an artifact asked for again while its old
 * tree waits for removal is fetched anew into a whole tree of its own,
 * never handed out half removed, and nothing is left in store/tmp once
 * the pool has done its work. */
START_TEST(test_collect_then_ensure_again)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result first = {0};
        ensure(&spec, &first);
        ck_assert_msg(first.r == 0, "%s", first.error);
        _cleanup_free_ char *sig = record_path(spec.artifact_sha256, ".sig");
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);

        struct pool_hold hold;
        pool_hold(&hold);
        ck_assert_int_eq(store_collect(store, NULL), 1);
        /* The entry and its record are gone from the store at once… */
        ck_assert(!store_has(store, spec.artifact_sha256));
        ck_assert_int_ne(access(first.root, F_OK), 0);
        ck_assert_int_ne(access(sig, F_OK), 0);
        /* …while the tree waits in store/tmp for a thread of the pool. */
        _cleanup_free_ char *cmd = xasprintf("test -f %s/removed-*/bin/hello", tmp);
        ck_assert_msg(system(cmd) == 0, "the tree was removed on the loop");

        /* Asked for again while the removal is due: the lookup queues
         * behind it, and both may run at once. */
        struct result again = {0};
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &again, NULL), 0);
        pool_release(&hold);
        uv_run(&loop, UV_RUN_DEFAULT);
        pool_hold_done(&hold);
        ck_assert_int_eq(again.calls, 1);
        ck_assert_msg(again.r == 0, "%s", again.error);
        ck_assert_str_eq(again.root, first.root);
        ck_assert_int_eq(mode_of(again.root) & 07777, 0555);
        _cleanup_free_ char *hello = xasprintf("%s/bin/hello", again.root);
        _cleanup_free_ char *text = slurp(hello);
        ck_assert_str_eq(text, "#!/bin/sh\necho hi\n");
        _cleanup_free_ char *version = xasprintf("%s/VERSION", again.root);
        _cleanup_free_ char *v = slurp(version);
        ck_assert_str_eq(v, "1\n");
        ck_assert_int_eq(access(sig, F_OK), 0);
        ck_assert_msg(count_entries(tmp) == 0, "store/tmp is not empty");

        result_done(&first);
        result_done(&again);
        spec_done(&spec);
}
END_TEST

/* A removal still running when the store is freed finishes on its own. */
START_TEST(test_collect_then_free)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);

        ck_assert_int_eq(store_collect(store, NULL), 1);
        store = store_free(store);
        uv_run(&loop, UV_RUN_DEFAULT);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_msg(count_entries(tmp) == 0, "store/tmp is not empty");
        ck_assert_int_ne(access(res.root, F_OK), 0);

        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_cancel)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);

        /* Cancelled while fetching: no callback. */
        struct result res = {0};
        struct store_job *job = NULL;
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &res, &job), 0);
        ck_assert_ptr_nonnull(job);
        store_job_cancel(job);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res.calls, 0);

        /* Cancelled while the answer from the store is due: no callback. */
        struct result warm = {0};
        ensure(&spec, &warm);
        ck_assert_int_eq(warm.r, 0);
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &res, &job), 0);
        store_job_cancel(job);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res.calls, 0);

        result_done(&warm);
        spec_done(&spec);
}
END_TEST

START_TEST(test_free_with_jobs)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result res = {0};
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(store_ensure(store, &spec, on_done, &res, NULL), 0);
        store = store_free(store);
        /* The loop lets the orphaned work finish; teardown closes it. */
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res.calls, 0);
        spec_done(&spec);
}
END_TEST

START_TEST(test_parallel_same_artifact)
{
        /* Two jobs for one artifact: both succeed with the same root. */
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        struct result a = {0}, b = {0};
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &a, NULL), 0);
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &b, NULL), 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(a.calls, 1);
        ck_assert_int_eq(b.calls, 1);
        ck_assert_msg(a.r == 0, "%s", a.error);
        ck_assert_msg(b.r == 0, "%s", b.error);
        ck_assert_str_eq(a.root, b.root);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
        result_done(&a);
        result_done(&b);
        spec_done(&spec);
}
END_TEST

START_TEST(test_invalid_spec)
{
        struct service_spec spec = {.name = "hello", .artifact_url = "file:///x"};
        memcpy(spec.artifact_sha256, "xyz", 4);
        struct result res = {0};
        struct store_job *job = NULL;
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &res, &job), -EINVAL);
        ck_assert_ptr_null(job);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res.calls, 0);
}
END_TEST

START_TEST(test_new_empties_tmp)
{
        _cleanup_free_ char *cmd =
            xasprintf("set -e; cd %s/store/tmp; mkdir -p left/over; touch left/over/f "
                      "stray; chmod 0555 left/over left",
                      state_dir);
        sh(cmd);
        reopen_store("ring-a", false);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
}
END_TEST

/* The "http" case: the same over a real nginx. */

/* Puts a signed artifact into nginx's root. */
static char *publish_tar(const char *name, const char *version)
{
        return make_tar_in(www, name, version);
}

static int served(const char *name)
{
        _cleanup_free_ char *path = xasprintf("/%s", name);
        return h_nginx_count(&nginx, path, 200);
}

START_TEST(test_http_ok)
{
        _cleanup_free_ char *tar = publish_tar("h-ok.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-ok.tar.gz");
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_str_eq(res.key_id, key_id_a);
        ck_assert_str_eq(res.comment, "lii test: h-ok.tar.gz");
        _cleanup_free_ char *version = xasprintf("%s/VERSION", res.root);
        _cleanup_free_ char *v = slurp(version);
        ck_assert_str_eq(v, "1\n");
        ck_assert_int_eq(served("h-ok.tar.gz"), 1);
        ck_assert_int_eq(served("h-ok.tar.gz.minisig"), 1);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_https_ok_with_ca)
{
        _cleanup_free_ char *tar = publish_tar("s-ok.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "https", "s-ok.tar.gz");
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_str_eq(res.key_id, key_id_a);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_https_refused_without_ca)
{
        reopen_store("ring-a", false);
        _cleanup_free_ char *tar = publish_tar("s-noca.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "https", "s-noca.tar.gz");
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_int_eq(res.r, -EIO);
        _cleanup_free_ char *prefix =
            xasprintf("artifact %s: signature %s: ", spec.artifact_url, spec.signature_url);
        ck_assert_msg(strncmp(res.error, prefix, strlen(prefix)) == 0, "%s", res.error);
        ck_assert_msg(strstr(res.error, "certificate"), "%s", res.error);
        assert_store_clean(spec.artifact_sha256);
        ck_assert_int_eq(served("s-noca.tar.gz"), 0);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_404)
{
        _cleanup_free_ char *tar = publish_tar("h-404.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-404.tar.gz");
        ck_assert_int_eq(unlink(tar), 0);
        _cleanup_free_ char *msg = xasprintf("artifact %s: HTTP 404", spec.artifact_url);
        assert_fails(&spec, -ENOENT, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_500)
{
        /* nginx answers 500 for /fail.tar.gz; its signature is a real one. */
        _cleanup_free_ char *tar = publish_tar("fail.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "fail.tar.gz");
        _cleanup_free_ char *msg = xasprintf("artifact %s: HTTP 500", spec.artifact_url);
        assert_fails(&spec, -EIO, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_truncated)
{
        _cleanup_free_ char *tar = publish_tar("h-short.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-short.tar.gz");
        ck_assert_int_eq(truncate(tar, (off_t)spec.artifact_size - 7), 0);
        _cleanup_free_ char *msg =
            xasprintf("artifact %s: %" PRIu64 " bytes, declared %" PRIu64, spec.artifact_url,
                      spec.artifact_size - 7, spec.artifact_size);
        assert_fails(&spec, -EBADMSG, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_larger_stops_early)
{
        /* nginx sends /big.tar.gz at 256 KiB/s: all 4 MiB would take 16 s,
         * far beyond what this test waits for. */
        _cleanup_free_ char *blob = make_blob_in(www, "big.tar.gz", 4 << 20);
        struct service_spec spec;
        spec_for_web(&spec, "http", "big.tar.gz");
        spec.artifact_size = 1000;
        uint64_t start = uv_hrtime();
        _cleanup_free_ char *msg =
            xasprintf("artifact %s: larger than the declared size 1000", spec.artifact_url);
        assert_fails(&spec, -EFBIG, msg);
        ck_assert_uint_lt(uv_hrtime() - start, 8 * 1000000000ULL);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_trickle_given_up)
{
        /* nginx sends /trickle.tar.gz at 1 byte per second, which curl's
         * low-speed limit lets go on for ever; its signature comes at full
         * speed. */
        _cleanup_free_ char *tar = publish_tar("trickle.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "trickle.tar.gz");
        reopen_store_timed("ring-a", false, 400 * USEC_PER_MSEC, 1 << 20);
        uint64_t limit =
            store_artifact_timeout_usec(400 * USEC_PER_MSEC, 1 << 20, spec.artifact_size);
        char text[32];
        format_duration(limit, text, sizeof text);
        _cleanup_free_ char *msg = xasprintf(
            "artifact %s: not complete within the time limit of %s", spec.artifact_url, text);
        uint64_t start = now_monotonic_usec();
        assert_fails(&spec, -ETIMEDOUT, msg);
        uint64_t took = now_monotonic_usec() - start;
        /* Not earlier (1 ms for curl's clock), and not much later. */
        ck_assert_msg(took + USEC_PER_MSEC >= limit && took < limit + 5 * USEC_PER_SEC,
                      "given up after %" PRIu64 " us, the limit is %" PRIu64, took, limit);
        ck_assert_int_eq(served("trickle.tar.gz.minisig"), 1);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_slow_within_its_size_limit)
{
        /* 192 KiB at nginx's 64 KiB/s take about 2 s, far over the base of
         * 300 ms; at a minimum rate of 32 KiB/s they may take 6.3 s. */
        _cleanup_free_ char *blob = make_blob_in(www, "slow.tar.gz", 192 << 10);
        struct service_spec spec;
        spec_for_web(&spec, "http", "slow.tar.gz");
        spec.artifact_type = ARTIFACT_FILE;
        reopen_store_timed("ring-a", false, 300 * USEC_PER_MSEC, 32 << 10);
        uint64_t start = now_monotonic_usec();
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_uint_gt(now_monotonic_usec() - start, USEC_PER_SEC);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_artifact_timeout)
{
        /* The defaults: 30 s, and 16 s per MiB. */
        ck_assert_uint_eq(store_artifact_timeout_usec(30 * USEC_PER_SEC, 64 << 10, 1 << 20),
                          46 * USEC_PER_SEC);
        ck_assert_uint_eq(store_artifact_timeout_usec(0, 1 << 20, 512 << 10), USEC_PER_SEC / 2);
        ck_assert_uint_eq(store_artifact_timeout_usec(USEC_PER_SEC, 3, 1), USEC_PER_SEC + 333333);
        /* No rate, no limit. */
        ck_assert_uint_eq(store_artifact_timeout_usec(30 * USEC_PER_SEC, 0, 1 << 20), 0);
        /* The largest size a document may declare, at 1 byte per second. */
        ck_assert_uint_eq(store_artifact_timeout_usec(30 * USEC_PER_SEC, 1, INT64_MAX), UINT64_MAX);
}
END_TEST

START_TEST(test_http_tampered)
{
        /* The document's hash matches the bytes served, but the signature
         * was made over the original. */
        _cleanup_free_ char *tar = publish_tar("h-tampered.tar.gz", "1");
        _cleanup_free_ char *cmd = xasprintf("printf 'x' >> %s", tar);
        sh(cmd);
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-tampered.tar.gz");
        _cleanup_free_ char *msg =
            xasprintf("artifact %s: signature does not match the file", spec.artifact_url);
        assert_fails(&spec, -EBADMSG, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_untrusted_key_not_downloaded)
{
        _cleanup_free_ char *tar = publish_tar("h-untrusted.tar.gz", "1");
        sign(tar, "b", "lii test: signed by B");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-untrusted.tar.gz");
        _cleanup_free_ char *msg = xasprintf("artifact %s: signature key id %s is not trusted",
                                             spec.artifact_url, key_id_b);
        assert_fails(&spec, -ENOKEY, msg);
        ck_assert_int_eq(served("h-untrusted.tar.gz.minisig"), 1);
        ck_assert_int_eq(served("h-untrusted.tar.gz"), 0);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_missing_signature)
{
        _cleanup_free_ char *tar = publish_tar("h-nosig.tar.gz", "1");
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        ck_assert_int_eq(unlink(sig), 0);
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-nosig.tar.gz");
        _cleanup_free_ char *msg =
            xasprintf("artifact %s: signature %s: HTTP 404", spec.artifact_url, spec.signature_url);
        assert_fails(&spec, -ENOENT, msg);
        ck_assert_int_eq(served("h-nosig.tar.gz"), 0);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_legacy_signature_refused)
{
        _cleanup_free_ char *tar = publish_tar("h-legacy.tar.gz", "1");
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        sign_as(tar, sig, "a", "lii test: legacy", true);
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-legacy.tar.gz");
        _cleanup_free_ char *msg = xasprintf(
            "artifact %s: legacy (non-prehashed) signatures are refused", spec.artifact_url);
        assert_fails(&spec, -EPROTONOSUPPORT, msg);
        ck_assert_int_eq(served("h-legacy.tar.gz"), 0);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_hostile_archive)
{
        _cleanup_free_ char *tar = xasprintf("%s/h-evil.tar", www);
        _cleanup_free_ char *cmd = xasprintf("set -e; mkdir -p %1$s/a/b; echo x > %1$s/a/evil; "
                                             "cd %1$s/a/b && tar --absolute-names -cf %2$s ../evil",
                                             src_dir, tar);
        sh(cmd);
        sign(tar, "a", "lii test: evil");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-evil.tar");
        _cleanup_free_ char *msg = xasprintf(
            "artifact %s: entry '../evil': path leaves the artifact root", spec.artifact_url);
        assert_fails(&spec, -EPERM, msg);
        spec_done(&spec);
}
END_TEST

START_TEST(test_reuse_reverifies)
{
        _cleanup_free_ char *tar = publish_tar("h-reuse.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-reuse.tar.gz");
        struct result first = {0};
        ensure(&spec, &first);
        ck_assert_msg(first.r == 0, "%s", first.error);
        ino_t ino = inode_of(first.root);

        /* Key A is no longer trusted: what it signed is not handed out
         * again, though the tree stays (instances may run from it). */
        reopen_store("ring-b", true);
        struct result refused = {0};
        ensure(&spec, &refused);
        ck_assert_int_eq(refused.r, -ENOKEY);
        _cleanup_free_ char *msg = xasprintf("artifact %s: signature key id %s is not trusted",
                                             spec.artifact_url, key_id_a);
        ck_assert_str_eq(refused.error, msg);
        ck_assert(store_has(store, spec.artifact_sha256));

        /* Signed again by the key that replaced it: accepted on the
         * recorded hash, without downloading the artifact again. */
        sign(tar, "b", "lii test: re-signed by B");
        struct result resigned = {0};
        ensure(&spec, &resigned);
        ck_assert_msg(resigned.r == 0, "%s", resigned.error);
        ck_assert_str_eq(resigned.key_id, key_id_b);
        ck_assert_str_eq(resigned.comment, "lii test: re-signed by B");
        ck_assert_int_eq(served("h-reuse.tar.gz"), 1);
        ck_assert_int_eq(inode_of(resigned.root), ino);

        /* And that signature is now the record: with the server gone
         * quiet, the store answers alone. */
        ck_assert_int_eq(unlink(tar), 0);
        _cleanup_free_ char *sig = xasprintf("%s.minisig", tar);
        ck_assert_int_eq(unlink(sig), 0);
        struct result offline = {0};
        ensure(&spec, &offline);
        ck_assert_msg(offline.r == 0, "%s", offline.error);
        ck_assert_str_eq(offline.key_id, key_id_b);

        result_done(&first);
        result_done(&refused);
        result_done(&resigned);
        result_done(&offline);
        spec_done(&spec);
}
END_TEST

START_TEST(test_reuse_without_record_verifies_again)
{
        _cleanup_free_ char *tar = publish_tar("h-norecord.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-norecord.tar.gz");
        struct result first = {0};
        ensure(&spec, &first);
        ck_assert_msg(first.r == 0, "%s", first.error);
        ino_t ino = inode_of(first.root);
        _cleanup_free_ char *sig = record_path(spec.artifact_sha256, ".sig");
        _cleanup_free_ char *b2 = record_path(spec.artifact_sha256, ".b2");
        _cleanup_free_ char *good_b2 = slurp(b2);

        /* No record (a store from before records, say): the artifact is
         * fetched and verified again, the tree in place is kept. */
        ck_assert_int_eq(unlink(sig), 0);
        ck_assert_int_eq(unlink(b2), 0);
        struct result second = {0};
        ensure(&spec, &second);
        ck_assert_msg(second.r == 0, "%s", second.error);
        ck_assert_str_eq(second.key_id, key_id_a);
        ck_assert_int_eq(served("h-norecord.tar.gz"), 2);
        ck_assert_int_eq(inode_of(second.root), ino);
        _cleanup_free_ char *restored = slurp(b2);
        ck_assert_str_eq(restored, good_b2);
        ck_assert_int_eq(access(sig, F_OK), 0);

        /* A damaged one is no record either. */
        ck_assert_int_eq(chmod(b2, 0644), 0);
        _cleanup_fclose_ FILE *f = fopen(b2, "we");
        ck_assert_ptr_nonnull(f);
        fputs("not hex\n", f);
        ck_assert_int_eq(fclose(TAKE_PTR(f)), 0);
        struct result third = {0};
        ensure(&spec, &third);
        ck_assert_msg(third.r == 0, "%s", third.error);
        ck_assert_int_eq(served("h-norecord.tar.gz"), 3);
        _cleanup_free_ char *repaired = slurp(b2);
        ck_assert_str_eq(repaired, good_b2);

        /* A wrong hash in it: the signature does not match the record, so
         * the artifact itself decides, and the record is put right. */
        good_b2[0] = good_b2[0] == '0' ? '1' : '0';
        ck_assert_int_eq(chmod(b2, 0644), 0);
        f = fopen(b2, "we");
        ck_assert_ptr_nonnull(f);
        fputs(good_b2, f);
        ck_assert_int_eq(fclose(TAKE_PTR(f)), 0);
        struct result fourth = {0};
        ensure(&spec, &fourth);
        ck_assert_msg(fourth.r == 0, "%s", fourth.error);
        ck_assert_int_eq(served("h-norecord.tar.gz"), 4);
        _cleanup_free_ char *fixed = slurp(b2);
        ck_assert_str_eq(fixed, restored);

        result_done(&first);
        result_done(&second);
        result_done(&third);
        result_done(&fourth);
        spec_done(&spec);
}
END_TEST

START_TEST(test_redirect_to_other_host_refused)
{
        /* /moved.tar.gz redirects to localhost, the request went to
         * 127.0.0.1: another host. */
        _cleanup_free_ char *tar = publish_tar("h-target.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-target.tar.gz");
        free(spec.artifact_url);
        spec.artifact_url = xasprintf("http://127.0.0.1:%d/moved.tar.gz", nginx.http_port);
        _cleanup_free_ char *msg = xasprintf(
            "artifact %s: redirect to http://localhost:%d/h-target.tar.gz refused (another "
            "scheme, host or port)",
            spec.artifact_url, nginx.http_port);
        assert_fails(&spec, -EPERM, msg);
        ck_assert_int_eq(served("h-target.tar.gz"), 0);
        spec_done(&spec);
}
END_TEST

START_TEST(test_redirect_same_host_followed)
{
        _cleanup_free_ char *tar = publish_tar("h-target.tar.gz", "1");
        struct service_spec spec;
        spec_for_web(&spec, "http", "h-target.tar.gz");
        free(spec.artifact_url);
        spec.artifact_url = xasprintf("http://127.0.0.1:%d/same.tar.gz", nginx.http_port);
        struct result res = {0};
        ensure(&spec, &res);
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_int_eq(served("h-target.tar.gz"), 1);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

/* Runs in the fast job's callback: the slow one is still downloading. */
static void cancel_other(struct result *res)
{
        struct result *slow = res->data;
        ck_assert_int_eq(slow->calls, 0);
        store_job_cancel(slow->data);
}

START_TEST(test_parallel_downloads_and_cancel)
{
        /* /slow.tar.gz comes at 64 KiB/s (16 s for 1 MiB); a second artifact
         * asked for later is not held up behind it, and cancelling the slow
         * one mid-transfer leaves nothing behind. */
        _cleanup_free_ char *slow_path = make_blob_in(www, "slow.tar.gz", 1 << 20);
        _cleanup_free_ char *fast_path = publish_tar("h-fast.tar.gz", "1");
        struct service_spec slow_spec, fast_spec;
        spec_for_web(&slow_spec, "http", "slow.tar.gz");
        spec_for_web(&fast_spec, "http", "h-fast.tar.gz");
        struct result slow = {0}, fast = {0};
        struct store_job *slow_job = NULL;
        ck_assert_int_eq(store_ensure(store, &slow_spec, on_done, &slow, &slow_job), 0);
        slow.data = slow_job;
        fast.then = cancel_other;
        fast.data = &slow;
        ck_assert_int_eq(store_ensure(store, &fast_spec, on_done, &fast, NULL), 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(fast.calls, 1);
        ck_assert_msg(fast.r == 0, "%s", fast.error);
        ck_assert_int_eq(slow.calls, 0);
        assert_store_clean(slow_spec.artifact_sha256);
        result_done(&slow);
        result_done(&fast);
        spec_done(&slow_spec);
        spec_done(&fast_spec);
}
END_TEST

/* Runs in the fast job's callback: frees the store under the slow one. */
static void free_store(struct result *res)
{
        (void)res;
        store = store_free(store);
}

START_TEST(test_free_during_download)
{
        _cleanup_free_ char *slow_path = make_blob_in(www, "slow.tar.gz", 1 << 20);
        _cleanup_free_ char *fast_path = publish_tar("h-fast2.tar.gz", "1");
        struct service_spec slow_spec, fast_spec;
        spec_for_web(&slow_spec, "http", "slow.tar.gz");
        spec_for_web(&fast_spec, "http", "h-fast2.tar.gz");
        struct result slow = {0}, fast = {0};
        ck_assert_int_eq(store_ensure(store, &slow_spec, on_done, &slow, NULL), 0);
        fast.then = free_store;
        ck_assert_int_eq(store_ensure(store, &fast_spec, on_done, &fast, NULL), 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(fast.calls, 1);
        ck_assert_int_eq(slow.calls, 0);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
        result_done(&slow);
        result_done(&fast);
        spec_done(&slow_spec);
        spec_done(&fast_spec);
}
END_TEST

/* A signed, uncompressed tar in nginx's root holding one file of n
 * pseudo-random bytes, "blob"; returns the tar's path and the blob's
 * SHA-256 in ret_blob_sha256. */
static char *publish_large_tar(const char *name, size_t n, char ret_blob_sha256[static 65])
{
        _cleanup_free_ char *dir = xasprintf("%s/large-%s", src_dir, name);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        _cleanup_free_ char *blob = make_blob_in(dir, "blob", n);
        _cleanup_free_ char *sig = xasprintf("%s.minisig", blob);
        ck_assert_int_eq(unlink(sig), 0);
        uint64_t size;
        sha256_file(blob, ret_blob_sha256, &size);
        char *tar = xasprintf("%s/%s", www, name);
        _cleanup_free_ char *cmd = xasprintf("tar -C %s -cf %s blob", dir, tar);
        sh(cmd);
        sign(tar, "a", "lii test: large");
        return tar;
}

static uint64_t thread_cpu_nsec(void)
{
        struct timespec ts;
        ck_assert_int_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The CPU time this thread needs for the two hashes the store takes of an
 * artifact, SHA-256 and minisign's BLAKE2b-512 prehash. */
static uint64_t hash_cpu_nsec(const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        _cleanup_free_ char *buf = xcalloc(1, 1 << 20);
        EVP_MD_CTX *sha = EVP_MD_CTX_new();
        ck_assert_int_eq(EVP_DigestInit_ex(sha, EVP_sha256(), NULL), 1);
        struct minisign_hasher *b2 = NULL;
        ck_assert_int_eq(minisign_hasher_new(&b2), 0);
        uint64_t start = thread_cpu_nsec();
        ssize_t n;
        while ((n = read(fd, buf, 1 << 20)) > 0) {
                EVP_DigestUpdate(sha, buf, (size_t)n);
                ck_assert_int_eq(minisign_hasher_update(b2, buf, (size_t)n), 0);
        }
        uint8_t digest[EVP_MAX_MD_SIZE], b2_digest[MINISIGN_HASH_SIZE];
        unsigned len;
        EVP_DigestFinal_ex(sha, digest, &len);
        ck_assert_int_eq(minisign_hasher_final(b2, b2_digest), 0);
        uint64_t spent = thread_cpu_nsec() - start;
        EVP_MD_CTX_free(sha);
        minisign_hasher_free(b2);
        return spent;
}

START_TEST(test_http_large_verified_off_the_loop)
{
        /* 48 MiB at loopback speed arrive faster than they can be hashed:
         * the download waits for the hashing now and then, and still every
         * byte lands, verified, in the tree. */
        char blob_sha256[65];
        _cleanup_free_ char *tar = publish_large_tar("large.tar", 48 << 20, blob_sha256);
        struct service_spec spec;
        spec_for_web(&spec, "http", "large.tar");
        struct result res = {0};
        uint64_t start = thread_cpu_nsec();
        ensure(&spec, &res);
        uint64_t loop_cpu = thread_cpu_nsec() - start;
        ck_assert_msg(res.r == 0, "%s", res.error);
        ck_assert_str_eq(res.key_id, key_id_a);
        _cleanup_free_ char *blob = xasprintf("%s/blob", res.root);
        char got[65];
        uint64_t size;
        sha256_file(blob, got, &size);
        ck_assert_uint_eq(size, 48 << 20);
        ck_assert_str_eq(got, blob_sha256);
        ck_assert_int_eq(served("large.tar"), 1);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);

        /* The hashing is not the loop's: the thread that runs it spent
         * less on the whole job than twice what the hashes alone cost.
         * Hashing on the loop cost it 3.5 times that; the bound leaves room
         * for a sanitizer's checks of the copies the loop still makes. */
        uint64_t hashes = hash_cpu_nsec(tar);
        ck_assert_msg(loop_cpu < 2 * hashes,
                      "the loop spent %" PRIu64 " ms, the hashes take %" PRIu64 " ms",
                      loop_cpu / 1000000, hashes / 1000000);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

START_TEST(test_http_large_larger_than_declared)
{
        /* A large artifact at full speed that is bigger than its entry
         * says: cut off at the declared size, refused, nothing left. */
        char blob_sha256[65];
        _cleanup_free_ char *tar = publish_large_tar("large-big.tar", 16 << 20, blob_sha256);
        struct service_spec spec;
        spec_for_web(&spec, "http", "large-big.tar");
        spec.artifact_size = (5 << 20) + 123;
        _cleanup_free_ char *msg = xasprintf("artifact %s: larger than the declared size %" PRIu64,
                                             spec.artifact_url, spec.artifact_size);
        assert_fails(&spec, -EFBIG, msg);
        spec_done(&spec);
}
END_TEST

/* The size of the download in progress: the descriptor of liid's own that
 * points into store/tmp (an anonymous file there shows as "(deleted)").
 * -1 when there is none. */
static off_t download_size(void)
{
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp/", state_dir);
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        off_t size = -1;
        struct dirent *de;
        while ((de = readdir(d))) {
                char target[PATH_MAX];
                _cleanup_free_ char *link = xasprintf("/proc/self/fd/%s", de->d_name);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = '\0';
                struct stat st;
                if (strncmp(target, tmp, strlen(tmp)) == 0 && stat(link, &st) == 0)
                        size = st.st_size;
        }
        closedir(d);
        return size;
}

static void nop_work(uv_work_t *req)
{
        (void)req;
}

/* The threads of this process, counted once libuv's thread pool is up. */
static size_t thread_count(void)
{
        static bool warm;
        if (!warm) {
                uv_work_t req;
                ck_assert_int_eq(uv_queue_work(&loop, &req, nop_work, NULL), 0);
                ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
                warm = true;
        }

        DIR *d = opendir("/proc/self/task");
        ck_assert_ptr_nonnull(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* Runs the loop until the download has written at least 3 MiB (more than
 * the sink's ring holds, so the workers are at it), checking after every
 * turn of the loop. */
static void on_check_written(uv_check_t *h)
{
        if (download_size() >= 3 << 20)
                uv_stop(h->loop);
}

static void run_until_written(void)
{
        /* Closed here, released by the next run of the loop. */
        static uv_check_t check;
        ck_assert_int_eq(uv_check_init(&loop, &check), 0);
        ck_assert_int_eq(uv_check_start(&check, on_check_written), 0);
        ck_assert_int_ne(uv_run(&loop, UV_RUN_DEFAULT), 0);
        uv_close((uv_handle_t *)&check, NULL);
        ck_assert_int_ge(download_size(), 3 << 20);
}

START_TEST(test_http_large_abandoned_midway)
{
        /* /stall.tar sends its first 8 MiB at full speed and then crawls:
         * the job is abandoned with its download half done and its workers
         * running, and leaves no file, descriptor or thread behind. */
        char blob_sha256[65];
        _cleanup_free_ char *tar = publish_large_tar("stall.tar", 32 << 20, blob_sha256);
        struct service_spec spec;
        spec_for_web(&spec, "http", "stall.tar");
        size_t threads = thread_count();
        struct result res = {0};
        struct store_job *job = NULL;
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &res, &job), 0);
        run_until_written();
        ck_assert_uint_gt(thread_count(), threads);
        store_job_cancel(job);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res.calls, 0);
        ck_assert_int_eq(download_size(), -1);
        ck_assert_uint_eq(thread_count(), threads);
        assert_store_clean(spec.artifact_sha256);

        /* The same when liid stops: the store goes with the download. */
        ck_assert_int_eq(store_ensure(store, &spec, on_done, &res, NULL), 0);
        run_until_written();
        store = store_free(store);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(res.calls, 0);
        ck_assert_int_eq(download_size(), -1);
        ck_assert_uint_eq(thread_count(), threads);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
        result_done(&res);
        spec_done(&spec);
}
END_TEST

static void nginx_setup(void)
{
        _cleanup_free_ char *dir = xasprintf("%s/nginx", fixtures);
        www = xasprintf("%s/www", fixtures);
        h_nginx_start(&nginx, dir, www,
                      "location = /fail.tar.gz { return 500; }\n"
                      "location = /moved.tar.gz { return 302 "
                      "$scheme://localhost:$server_port/h-target.tar.gz; }\n"
                      "location = /same.tar.gz { return 302 "
                      "$scheme://127.0.0.1:$server_port/h-target.tar.gz; }\n"
                      "location = /big.tar.gz { limit_rate 256k; }\n"
                      "location = /slow.tar.gz { limit_rate 64k; }\n"
                      "location = /trickle.tar.gz { limit_rate 1; }\n"
                      "location = /stall.tar { limit_rate_after 8m; limit_rate 1k; }\n");
        nginx_running = true;
}

static void nginx_teardown(void)
{
        h_nginx_stop(&nginx);
        nginx_running = false;
        free(www);
        www = NULL;
}

static Suite *store_suite(void)
{
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("store");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_ensure_tar);
        tcase_add_test(tc, test_signed_file_reports_signer);
        tcase_add_test(tc, test_unsigned_when_no_keys);
        tcase_add_test(tc, test_second_ensure_from_store);
        tcase_add_test(tc, test_larger_than_declared);
        tcase_add_test(tc, test_smaller_than_declared);
        tcase_add_test(tc, test_sha256_mismatch);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_missing_signature_file);
        tcase_add_test(tc, test_garbage_signature_file);
        tcase_add_test(tc, test_unsupported_scheme);
        tcase_add_test(tc, test_hostile_archive);
        tcase_add_test(tc, test_type_file);
        tcase_add_test(tc, test_collect);
        tcase_add_test(tc, test_collect_then_ensure_again);
        tcase_add_test(tc, test_collect_then_free);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_free_with_jobs);
        tcase_add_test(tc, test_parallel_same_artifact);
        tcase_add_test(tc, test_invalid_spec);
        tcase_add_test(tc, test_new_empties_tmp);
        tcase_add_test(tc, test_artifact_timeout);
        suite_add_tcase(s, tc);

        TCase *web = tcase_create("http");
        tcase_add_unchecked_fixture(web, nginx_setup, nginx_teardown);
        tcase_add_checked_fixture(web, setup, teardown);
        tcase_set_timeout(web, 60);
        tcase_add_test(web, test_http_ok);
        tcase_add_test(web, test_https_ok_with_ca);
        tcase_add_test(web, test_https_refused_without_ca);
        tcase_add_test(web, test_http_404);
        tcase_add_test(web, test_http_500);
        tcase_add_test(web, test_http_truncated);
        tcase_add_test(web, test_http_larger_stops_early);
        tcase_add_test(web, test_http_trickle_given_up);
        tcase_add_test(web, test_http_slow_within_its_size_limit);
        tcase_add_test(web, test_http_tampered);
        tcase_add_test(web, test_http_untrusted_key_not_downloaded);
        tcase_add_test(web, test_http_missing_signature);
        tcase_add_test(web, test_http_legacy_signature_refused);
        tcase_add_test(web, test_http_hostile_archive);
        tcase_add_test(web, test_reuse_reverifies);
        tcase_add_test(web, test_reuse_without_record_verifies_again);
        tcase_add_test(web, test_redirect_to_other_host_refused);
        tcase_add_test(web, test_redirect_same_host_followed);
        tcase_add_test(web, test_parallel_downloads_and_cancel);
        tcase_add_test(web, test_free_during_download);
        tcase_add_test(web, test_http_large_verified_off_the_loop);
        tcase_add_test(web, test_http_large_larger_than_declared);
        tcase_add_test(web, test_http_large_abandoned_midway);
        suite_add_tcase(s, web);
        return s;
}

/* The key id as minisign prints it in the first line of the .pub file. */
static void read_key_id(const char *name, char out[static 17])
{
        _cleanup_free_ char *path = xasprintf("%s/%s.pub", fixtures, name);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char line[256];
        if (!f || !fgets(line, sizeof(line), f) ||
            sscanf(line, "untrusted comment: minisign public key %16s", out) != 1) {
                fprintf(stderr, "cannot read the key id of %s\n", path);
                exit(EXIT_FAILURE);
        }
}

/* Keys come from the real minisign, made fresh for each run. */
static void make_fixtures(void)
{
        /* nginx's workers, an unprivileged user when the tests run as root,
         * must reach the document root below it. */
        if (!mkdtemp(fixtures) || chmod(fixtures, 0755) < 0) {
                perror(fixtures);
                exit(EXIT_FAILURE);
        }
        _cleanup_free_ char *cmd = xasprintf(
            "set -e; cd %s; for k in a b; do %s -G -W -p $k.pub -s $k.key >/dev/null </dev/null; "
            "done; mkdir ring-a ring-b; cp a.pub ring-a/; cp b.pub ring-b/",
            fixtures, MINISIGN_TOOL);
        if (system(cmd) != 0) {
                fprintf(stderr, "test setup: making keys failed\n");
                exit(EXIT_FAILURE);
        }
        read_key_id("a", key_id_a);
        read_key_id("b", key_id_b);
}

int main(void)
{
        make_fixtures();
        SRunner *sr = srunner_create(store_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        _cleanup_free_ char *cmd = xasprintf("rm -rf %s", fixtures);
        if (failed == 0 && system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", fixtures);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
