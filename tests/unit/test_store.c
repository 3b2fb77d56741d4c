/* The artifact store as the rollout code uses it: an artifact is fetched,
 * verified and unpacked once into a read-only tree at a known path, served
 * from there afterwards, and every failure leaves neither a store entry nor
 * leftovers behind. Callbacks come from the loop, never from inside the
 * call, and not at all after a cancel. */
#include "store.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static char *base_dir;  /* a fresh folder per test */
static char *state_dir; /* base_dir/state */
static char *src_dir;   /* base_dir/src: where file:// URLs point */
static uv_loop_t loop;
static struct store *store;

struct result {
        int calls;
        bool synchronous; /* called while store_ensure() was still running */
        int r;
        char *root;
        char *error;
};
static bool in_ensure;

static void on_done(int r, const char *root, const char *error, void *userdata)
{
        struct result *res = userdata;
        res->calls++;
        res->synchronous |= in_ensure;
        res->r = r;
        free(res->root);
        free(res->error);
        res->root = root ? xstrdup(root) : NULL;
        res->error = error ? xstrdup(error) : NULL;
}

static void result_done(struct result *res)
{
        free(res->root);
        free(res->error);
}

static void setup(void)
{
        base_dir = xasprintf("%s/test-store.XXXXXX", LII_BUILD_DIR);
        ck_assert_ptr_nonnull(mkdtemp(base_dir));
        state_dir = xasprintf("%s/state", base_dir);
        src_dir = xasprintf("%s/src", base_dir);
        ck_assert_int_eq(mkdir(src_dir, 0755), 0);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(store_new(&loop, state_dir, &store), 0);
}

static void teardown(void)
{
        store = store_free(store);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
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

/* Packs a small service tree with the real tar tool; returns its path. */
static char *make_tar(const char *name, const char *version)
{
        char *path = xasprintf("%s/%s", src_dir, name);
        _cleanup_free_ char *cmd =
            xasprintf("set -e; t=%1$s/tree-%2$s; mkdir -p $t/bin $t/share; "
                      "printf '#!/bin/sh\\necho hi\\n' > $t/bin/hello; chmod 0700 $t/bin/hello; "
                      "echo %2$s > $t/VERSION; chmod 0600 $t/VERSION; ln -s ../VERSION $t/share/v; "
                      "tar -C $t -czf %3$s .",
                      src_dir, version, path);
        ck_assert_int_eq(system(cmd), 0);
        return path;
}

/* Fills the artifact part of a spec the way the desired-state parser
 * would, for the file at path. */
static void spec_for(struct service_spec *spec, const char *path, enum artifact_type type)
{
        *spec = (struct service_spec){.name = "hello", .artifact_type = type};
        spec->artifact_url = xasprintf("file://%s", path);
        sha256_file(path, spec->artifact_sha256, &spec->artifact_size);
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

static void assert_store_clean(const char *sha256)
{
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_msg(count_entries(tmp) == 0, "store/tmp is not empty");
        ck_assert(!store_has(store, sha256));
        _cleanup_free_ char *path = store_artifact_path(store, sha256);
        ck_assert_int_ne(access(path, F_OK), 0);
}

static mode_t mode_of(const char *path)
{
        struct stat st;
        ck_assert_msg(lstat(path, &st) == 0, "%s missing", path);
        return st.st_mode;
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
        free(spec.artifact_url);
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

        /* The source is gone: only the store can answer. */
        ck_assert_int_eq(unlink(tar), 0);
        ensure(&spec, &second);
        ck_assert_msg(second.r == 0, "%s", second.error);
        ck_assert_str_eq(second.root, first.root);

        /* So can a new store over the same state folder, as after a restart. */
        store = store_free(store);
        ck_assert_int_eq(store_new(&loop, state_dir, &store), 0);
        struct result third = {0};
        ensure(&spec, &third);
        ck_assert_int_eq(third.r, 0);
        ck_assert_str_eq(third.root, first.root);

        result_done(&first);
        result_done(&second);
        result_done(&third);
        free(spec.artifact_url);
}
END_TEST

static void assert_fails(struct service_spec *spec, int expected_r, const char *expected_error)
{
        struct result res = {0};
        ensure(spec, &res);
        ck_assert_int_eq(res.r, expected_r);
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
        free(spec.artifact_url);
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
        free(spec.artifact_url);
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
        free(spec.artifact_url);
}
END_TEST

START_TEST(test_missing_file)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        free(spec.artifact_url);
        spec.artifact_url = xasprintf("file://%s/nope.tar.gz", src_dir);
        _cleanup_free_ char *msg =
            xasprintf("artifact %s: No such file or directory", spec.artifact_url);
        assert_fails(&spec, -ENOENT, msg);
        free(spec.artifact_url);
}
END_TEST

START_TEST(test_unsupported_scheme)
{
        _cleanup_free_ char *tar = make_tar("hello-1.tar.gz", "1");
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        free(spec.artifact_url);
        spec.artifact_url = xstrdup("gopher://artifacts.invalid/hello-1.tar.gz");
        assert_fails(
            &spec, -EPROTONOSUPPORT,
            "artifact gopher://artifacts.invalid/hello-1.tar.gz: scheme not supported yet");
        free(spec.artifact_url);
}
END_TEST

START_TEST(test_hostile_archive)
{
        /* GNU tar keeps a leading "../" with --absolute-names. */
        _cleanup_free_ char *tar = xasprintf("%s/evil.tar", src_dir);
        _cleanup_free_ char *cmd = xasprintf("set -e; mkdir -p %1$s/a/b; echo x > %1$s/a/evil; "
                                             "cd %1$s/a/b && tar --absolute-names -cf %2$s ../evil",
                                             src_dir, tar);
        ck_assert_int_eq(system(cmd), 0);
        struct service_spec spec;
        spec_for(&spec, tar, ARTIFACT_TAR);
        _cleanup_free_ char *msg = xasprintf(
            "artifact %s: entry '../evil': path leaves the artifact root", spec.artifact_url);
        assert_fails(&spec, -EPERM, msg);
        free(spec.artifact_url);
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

        struct service_spec spec;
        spec_for(&spec, path, ARTIFACT_FILE);
        free(spec.artifact_url);
        spec.artifact_url = xasprintf("file://%s/my%%20tool", src_dir);
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
        free(spec.artifact_url);
}
END_TEST

START_TEST(test_collect)
{
        _cleanup_free_ char *tar1 = make_tar("hello-1.tar.gz", "1");
        _cleanup_free_ char *tar2 = make_tar("hello-2.tar.gz", "2");
        struct service_spec s1, s2;
        spec_for(&s1, tar1, ARTIFACT_TAR);
        spec_for(&s2, tar2, ARTIFACT_TAR);
        struct result r1 = {0}, r2 = {0};
        ensure(&s1, &r1);
        ensure(&s2, &r2);
        ck_assert_int_eq(r1.r, 0);
        ck_assert_int_eq(r2.r, 0);
        /* Something that is not a store entry is left alone. */
        _cleanup_free_ char *stray = xasprintf("%s/store/sha256/README", state_dir);
        _cleanup_fclose_ FILE *f = fopen(stray, "we");
        ck_assert_ptr_nonnull(f);

        char *keep[] = {s1.artifact_sha256, NULL};
        ck_assert_int_eq(store_collect(store, keep), 1);
        ck_assert(store_has(store, s1.artifact_sha256));
        ck_assert(!store_has(store, s2.artifact_sha256));
        ck_assert_int_ne(access(r2.root, F_OK), 0);
        ck_assert_int_eq(access(stray, F_OK), 0);

        ck_assert_int_eq(store_collect(store, keep), 0);
        ck_assert_int_eq(store_collect(store, NULL), 1);
        ck_assert(!store_has(store, s1.artifact_sha256));
        ck_assert_int_eq(access(stray, F_OK), 0);

        result_done(&r1);
        result_done(&r2);
        free(s1.artifact_url);
        free(s2.artifact_url);
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
        free(spec.artifact_url);
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
        free(spec.artifact_url);
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
        ck_assert_int_eq(a.r, 0);
        ck_assert_int_eq(b.r, 0);
        ck_assert_str_eq(a.root, b.root);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
        result_done(&a);
        result_done(&b);
        free(spec.artifact_url);
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
        ck_assert_int_eq(system(cmd), 0);
        store = store_free(store);
        ck_assert_int_eq(store_new(&loop, state_dir, &store), 0);
        _cleanup_free_ char *tmp = xasprintf("%s/store/tmp", state_dir);
        ck_assert_int_eq(count_entries(tmp), 0);
}
END_TEST

static Suite *store_suite(void)
{
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("store");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_ensure_tar);
        tcase_add_test(tc, test_second_ensure_from_store);
        tcase_add_test(tc, test_larger_than_declared);
        tcase_add_test(tc, test_smaller_than_declared);
        tcase_add_test(tc, test_sha256_mismatch);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_unsupported_scheme);
        tcase_add_test(tc, test_hostile_archive);
        tcase_add_test(tc, test_type_file);
        tcase_add_test(tc, test_collect);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_free_with_jobs);
        tcase_add_test(tc, test_parallel_same_artifact);
        tcase_add_test(tc, test_invalid_spec);
        tcase_add_test(tc, test_new_empties_tmp);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(store_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
