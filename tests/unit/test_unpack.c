/* Unpacking policy: a normal artifact unpacks with its files and modes, and
 * every hostile archive is refused with a message that names the entry and
 * the reason, without anything written outside the destination. Hostile
 * archives are built here with libarchive's writer, which writes whatever
 * it is told. */
#include "unpack.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util.h"

struct test_entry {
        const char *path;
        mode_t type; /* AE_IFREG when 0 */
        mode_t perm; /* 0644 (files) or 0755 (folders) when 0 */
        const char *data;
        const char *symlink;
        const char *hardlink;
};

static char *base_dir; /* a fresh folder per test */
static char *dest_dir; /* base_dir/dest, the extraction root */
static char *tar_path; /* base_dir/artifact.tar.gz */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_DP)
                return rmdir(path);
        return unlink(path);
}

static void setup(void)
{
        base_dir = xasprintf("%s/test-archive.XXXXXX", LII_BUILD_DIR);
        ck_assert_ptr_nonnull(mkdtemp(base_dir));
        dest_dir = xasprintf("%s/dest", base_dir);
        ck_assert_int_eq(mkdir(dest_dir, 0755), 0);
        tar_path = xasprintf("%s/artifact.tar.gz", base_dir);
}

static void teardown(void)
{
        nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(base_dir);
        free(dest_dir);
        free(tar_path);
}

static void write_archive(const struct test_entry *entries, size_t n)
{
        _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        ck_assert_int_eq(archive_write_open_filename(a, tar_path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                const struct test_entry *t = &entries[i];
                _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
                mode_t type = t->type ? t->type : AE_IFREG;
                archive_entry_set_pathname(e, t->path);
                archive_entry_set_filetype(e, type);
                archive_entry_set_perm(e, t->perm ? t->perm : type == AE_IFDIR ? 0755 : 0644);
                if (type == AE_IFCHR || type == AE_IFBLK)
                        archive_entry_set_rdev(e, makedev(1, 3));
                if (t->symlink)
                        archive_entry_set_symlink(e, t->symlink);
                if (t->hardlink)
                        archive_entry_set_hardlink(e, t->hardlink);
                size_t size = t->data ? strlen(t->data) : 0;
                archive_entry_set_size(e, (la_int64_t)size);
                ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
                if (size > 0)
                        ck_assert_int_eq(archive_write_data(a, t->data, size), (la_ssize_t)size);
        }
        ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
}

/* Runs the extraction on tar_path; returns its result and the message. */
static int extract(const struct unpack_limits *limits, char **ret_error)
{
        _cleanup_close_ int fd = open(tar_path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        /* A descriptor that is not at offset 0 must be rewound. */
        ck_assert_int_eq(lseek(fd, 7, SEEK_SET), 7);
        *ret_error = NULL;
        return unpack_tar_fd(fd, dest_dir, limits, ret_error);
}

static void assert_refused(const struct test_entry *entries, size_t n,
                           const struct unpack_limits *limits, int expected_r,
                           const char *expected_error)
{
        write_archive(entries, n);
        _cleanup_free_ char *error = NULL;
        int r = extract(limits, &error);
        ck_assert_int_eq(r, expected_r);
        ck_assert_ptr_nonnull(error);
        ck_assert_str_eq(error, expected_error);
}

/* Nothing may appear next to the destination, whatever the archive said. */
static void assert_nothing_outside(void)
{
        _cleanup_free_ char *evil = xasprintf("%s/evil", base_dir);
        struct stat st;
        ck_assert_int_ne(lstat(evil, &st), 0);
}

static mode_t mode_of(const char *rel)
{
        _cleanup_free_ char *p = xasprintf("%s/%s", dest_dir, rel);
        struct stat st;
        ck_assert_msg(lstat(p, &st) == 0, "%s missing", rel);
        return st.st_mode;
}

static char *read_text(const char *rel)
{
        _cleanup_free_ char *p = xasprintf("%s/%s", dest_dir, rel);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        ck_assert_ptr_nonnull(f);
        char *buf = xcalloc(256, 1);
        size_t n = fread(buf, 1, 255, f);
        buf[n] = '\0';
        return buf;
}

START_TEST(test_normal_tar_gz)
{
        /* Packed by the real tar tool, the way release pipelines do it. */
        _cleanup_free_ char *src = xasprintf("%s/src", base_dir);
        _cleanup_free_ char *cmd = xasprintf(
            "set -e; mkdir -p %1$s/bin %1$s/share/doc; printf 'v1\\n' > %1$s/VERSION; "
            "printf '#!/bin/sh\\necho hi\\n' > %1$s/bin/hello; chmod 0755 %1$s/bin/hello; "
            "chmod 0640 %1$s/VERSION; ln -s ../VERSION %1$s/share/version; "
            "ln -s bin/hello %1$s/run; ln %1$s/bin/hello %1$s/bin/hello2; "
            "tar --owner=4242 --group=4242 --numeric-owner -C %1$s -czf %2$s .",
            src, tar_path);
        ck_assert_int_eq(system(cmd), 0);

        _cleanup_close_ int fd = open(tar_path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        _cleanup_free_ char *error = NULL;
        /* NULL limits mean the defaults. */
        int r = unpack_tar_fd(fd, dest_dir, NULL, &error);
        ck_assert_msg(r == 0, "extraction failed: %s", error);

        _cleanup_free_ char *version = read_text("VERSION");
        ck_assert_str_eq(version, "v1\n");
        _cleanup_free_ char *script = read_text("bin/hello");
        ck_assert_str_eq(script, "#!/bin/sh\necho hi\n");
        ck_assert_int_eq(mode_of("VERSION") & 07777, 0640);
        ck_assert_int_eq(mode_of("bin/hello") & 07777, 0755);
        ck_assert(S_ISDIR(mode_of("share/doc")));
        ck_assert(S_ISLNK(mode_of("share/version")));
        ck_assert(S_ISLNK(mode_of("run")));
        _cleanup_free_ char *via_link = read_text("share/version");
        ck_assert_str_eq(via_link, "v1\n");

        /* The hard link is a second name for the same file. */
        _cleanup_free_ char *a = xasprintf("%s/bin/hello", dest_dir);
        _cleanup_free_ char *b = xasprintf("%s/bin/hello2", dest_dir);
        struct stat sa, sb;
        ck_assert_int_eq(stat(a, &sa), 0);
        ck_assert_int_eq(stat(b, &sb), 0);
        ck_assert_int_eq(sa.st_ino, sb.st_ino);
        /* Owners from the archive are not restored. */
        ck_assert_int_eq(sa.st_uid, getuid());
}
END_TEST

START_TEST(test_plain_and_xz)
{
        /* Compression is detected, and none at all is fine too. */
        const char *flags[] = {"-cf", "-cJf", "--zstd -cf"};
        for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
                _cleanup_free_ char *cmd =
                    xasprintf("set -e; rm -rf %1$s/src %2$s/*; mkdir -p %1$s/src; echo x > "
                              "%1$s/src/f; tar -C %1$s/src %3$s %4$s f",
                              base_dir, dest_dir, flags[i], tar_path);
                ck_assert_int_eq(system(cmd), 0);
                _cleanup_free_ char *error = NULL;
                int r = extract(NULL, &error);
                ck_assert_msg(r == 0, "%s: %s", flags[i], error);
                _cleanup_free_ char *f = read_text("f");
                ck_assert_str_eq(f, "x\n");
        }
}
END_TEST

START_TEST(test_dotdot_path)
{
        const struct test_entry e[] = {{.path = "../evil", .data = "x"}};
        assert_refused(e, 1, NULL, -EPERM, "entry '../evil': path leaves the artifact root");
        assert_nothing_outside();
}
END_TEST

START_TEST(test_dotdot_deep_path)
{
        const struct test_entry e[] = {
            {.path = "a/b", .data = "fine"},
            {.path = "a/../../evil", .data = "x"},
        };
        assert_refused(e, 2, NULL, -EPERM, "entry 'a/../../evil': path leaves the artifact root");
        assert_nothing_outside();
}
END_TEST

START_TEST(test_inner_dotdot_path)
{
        const struct test_entry e[] = {{.path = "a/../b", .data = "x"}};
        assert_refused(e, 1, NULL, -EPERM, "entry 'a/../b': path has a '..' component");
}
END_TEST

START_TEST(test_absolute_path)
{
        _cleanup_free_ char *target = xasprintf("%s/evil", base_dir);
        const struct test_entry e[] = {{.path = target, .data = "x"}};
        _cleanup_free_ char *msg = xasprintf("entry '%s': absolute path", target);
        assert_refused(e, 1, NULL, -EPERM, msg);
        assert_nothing_outside();
}
END_TEST

START_TEST(test_symlink_absolute_target)
{
        const struct test_entry e[] = {
            {.path = "passwd", .type = AE_IFLNK, .symlink = "/etc/passwd"},
        };
        assert_refused(e, 1, NULL, -EPERM,
                       "entry 'passwd': symlink target leaves the artifact root");
        ck_assert_int_eq(access(dest_dir, F_OK), 0);
        _cleanup_free_ char *p = xasprintf("%s/passwd", dest_dir);
        struct stat st;
        ck_assert_int_ne(lstat(p, &st), 0);
}
END_TEST

START_TEST(test_symlink_dotdot_target)
{
        const struct test_entry e[] = {
            {.path = "a/up", .type = AE_IFLNK, .symlink = "../../evil"},
        };
        assert_refused(e, 1, NULL, -EPERM, "entry 'a/up': symlink target leaves the artifact root");
}
END_TEST

START_TEST(test_symlink_through_symlink_target)
{
        /* "self -> ." is harmless on its own, but "self/.." is the folder
         * above the root, although it reads like the root. */
        const struct test_entry e[] = {
            {.path = "self", .type = AE_IFLNK, .symlink = "."},
            {.path = "up", .type = AE_IFLNK, .symlink = "self/../evil"},
        };
        assert_refused(e, 2, NULL, -EPERM, "entry 'up': symlink target has '..' after a name");
}
END_TEST

START_TEST(test_write_through_symlink)
{
        /* A link that stays inside is fine, but nothing is written through
         * it: that is how a later, cleverer link could redirect writes. */
        const struct test_entry e[] = {
            {.path = "real", .type = AE_IFDIR},
            {.path = "alias", .type = AE_IFLNK, .symlink = "real"},
            {.path = "alias/f", .data = "x"},
        };
        write_archive(e, ELEMENTSOF(e));
        _cleanup_free_ char *error = NULL;
        int r = extract(NULL, &error);
        ck_assert_int_lt(r, 0);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strncmp(error, "entry 'alias/f': ", 17) == 0 && strstr(error, "symlink"),
                      "unexpected message: %s", error);
        ck_assert_int_eq(access(dest_dir, F_OK), 0);
        _cleanup_free_ char *p = xasprintf("%s/real/f", dest_dir);
        ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_symlinks_inside_accepted)
{
        const struct test_entry e[] = {
            {.path = "c", .data = "content"},
            {.path = "a/b/l", .type = AE_IFLNK, .symlink = "../../c"},
            {.path = "a/here", .type = AE_IFLNK, .symlink = "./b/l"},
            {.path = "a/root", .type = AE_IFLNK, .symlink = ".."},
        };
        write_archive(e, ELEMENTSOF(e));
        _cleanup_free_ char *error = NULL;
        int r = extract(NULL, &error);
        ck_assert_msg(r == 0, "%s", error);
        _cleanup_free_ char *c = read_text("a/here");
        ck_assert_str_eq(c, "content");
}
END_TEST

START_TEST(test_hardlink_dotdot)
{
        const struct test_entry e[] = {
            {.path = "h", .hardlink = "../evil"},
        };
        assert_refused(e, 1, NULL, -EPERM, "entry 'h': hardlink target leaves the artifact root");
}
END_TEST

START_TEST(test_hardlink_absolute)
{
        const struct test_entry e[] = {
            {.path = "h", .hardlink = "/etc/passwd"},
        };
        assert_refused(e, 1, NULL, -EPERM, "entry 'h': hardlink target leaves the artifact root");
        _cleanup_free_ char *p = xasprintf("%s/h", dest_dir);
        ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_hardlink_to_symlink)
{
        /* Copying a symlink to a shallower place changes where it points. */
        const struct test_entry e[] = {
            {.path = "a/b/l", .type = AE_IFLNK, .symlink = "../../x"},
            {.path = "h", .hardlink = "a/b/l"},
        };
        assert_refused(e, 2, NULL, -EPERM,
                       "entry 'h': hardlink target is not an earlier regular file");
}
END_TEST

START_TEST(test_device_and_fifo)
{
        const mode_t types[] = {AE_IFCHR, AE_IFBLK, AE_IFIFO};
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                const struct test_entry e[] = {{.path = "dev", .type = types[i]}};
                assert_refused(e, 1, NULL, -EPERM,
                               "entry 'dev': device, FIFO or socket entries are not allowed");
                _cleanup_free_ char *p = xasprintf("%s/dev", dest_dir);
                struct stat st;
                ck_assert_int_ne(lstat(p, &st), 0);
        }
}
END_TEST

START_TEST(test_setuid_stripped)
{
        const struct test_entry e[] = {
            {.path = "d", .type = AE_IFDIR, .perm = 03775},
            {.path = "d/su", .perm = 04755, .data = "x"},
            {.path = "sg", .perm = 02711, .data = "x"},
        };
        write_archive(e, ELEMENTSOF(e));
        _cleanup_free_ char *error = NULL;
        int r = extract(NULL, &error);
        ck_assert_msg(r == 0, "%s", error);
        ck_assert_int_eq(mode_of("d/su") & 07777, 0755);
        ck_assert_int_eq(mode_of("sg") & 07777, 0711);
        ck_assert_int_eq(mode_of("d") & 07777, 0775);
}
END_TEST

START_TEST(test_entry_cap)
{
        const struct test_entry e[] = {
            {.path = "1", .data = "x"},
            {.path = "2", .data = "x"},
            {.path = "3", .data = "x"},
            {.path = "4", .data = "x"},
        };
        struct unpack_limits limits = {.max_entries = 3, .max_unpacked_bytes = 1 << 20};
        assert_refused(e, ELEMENTSOF(e), &limits, -E2BIG, "entry '4': more than 3 entries");
        /* Exactly at the cap is fine. */
        write_archive(e, 3);
        _cleanup_free_ char *error = NULL;
        ck_assert_int_eq(extract(&limits, &error), 0);
}
END_TEST

START_TEST(test_size_cap)
{
        const struct test_entry e[] = {
            {.path = "a", .data = "123456"},
            {.path = "b", .data = "12345"},
        };
        struct unpack_limits limits = {.max_entries = 10, .max_unpacked_bytes = 10};
        assert_refused(e, ELEMENTSOF(e), &limits, -E2BIG,
                       "entry 'b': unpacked size exceeds 10 bytes");
        /* 11 bytes in one file as well. */
        const struct test_entry big[] = {{.path = "big", .data = "12345678901"}};
        assert_refused(big, 1, &limits, -E2BIG, "entry 'big': unpacked size exceeds 10 bytes");
}
END_TEST

START_TEST(test_garbage)
{
        _cleanup_close_ int fd = open(tar_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        char junk[4096];
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (char)(i * 7 + 3);
        ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
        _cleanup_free_ char *error = NULL;
        int r = extract(NULL, &error);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strncmp(error, "not a valid tar archive: ", 25) == 0, "%s", error);
}
END_TEST

START_TEST(test_truncated)
{
        const struct test_entry e[] = {{.path = "a", .data = "some content here"}};
        write_archive(e, 1);
        ck_assert_int_eq(truncate(tar_path, 30), 0);
        _cleanup_free_ char *error = NULL;
        int r = extract(NULL, &error);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_msg(strncmp(error, "not a valid tar archive: ", 25) == 0, "%s", error);
}
END_TEST

START_TEST(test_control_characters_escaped)
{
        const struct test_entry e[] = {{.path = "../x\n\033[2J", .data = "x"}};
        assert_refused(e, 1, NULL, -EPERM,
                       "entry '../x\\x0a\\x1b[2J': path leaves the artifact root");
}
END_TEST

/* Two entries for one path: what was signed would not say which of them
 * the artifact holds. */
START_TEST(test_same_path_twice)
{
        static const struct {
                struct test_entry e[3];
                size_t n;
                const char *expected;
        } cases[] = {
            /* The case that was found: a file, a hard link to it, then a
             * regular file under the link's name. */
            {{{.path = "f", .data = "signed"},
              {.path = "h", .hardlink = "f"},
              {.path = "h", .data = "other"}},
             3,
             "entry 'h': the path appears twice (entries 2 and 3)"},
            {{{.path = "f", .data = "one"}, {.path = "f", .data = "two"}},
             2,
             "entry 'f': the path appears twice (entries 1 and 2)"},
            {{{.path = "a", .data = "one"},
              {.path = "b", .data = "two"},
              {.path = "a", .hardlink = "b"}},
             3,
             "entry 'a': the path appears twice (entries 1 and 3)"},
            {{{.path = "d", .type = AE_IFDIR}, {.path = "d", .data = "x"}},
             2,
             "entry 'd': the path appears twice (entries 1 and 2)"},
            {{{.path = "d", .data = "x"}, {.path = "d/", .type = AE_IFDIR}},
             2,
             "entry 'd/': the path appears twice (entries 1 and 2)"},
            {{{.path = "l", .type = AE_IFLNK, .symlink = "f"}, {.path = "l", .data = "x"}},
             2,
             "entry 'l': the path appears twice (entries 1 and 2)"},
            /* Spellings that name the same path. */
            {{{.path = "./a", .data = "one"}, {.path = "a", .data = "two"}},
             2,
             "entry 'a': the path appears twice (entries 1 and 2)"},
            {{{.path = "a/b", .data = "one"}, {.path = "a//b", .data = "two"}},
             2,
             "entry 'a//b': the path appears twice (entries 1 and 2)"},
            {{{.path = "a/b", .data = "one"}, {.path = "./a/./b", .data = "two"}},
             2,
             "entry './a/./b': the path appears twice (entries 1 and 2)"},
            /* A folder listed twice is as ambiguous in its mode. */
            {{{.path = "dir/", .type = AE_IFDIR}, {.path = "dir/", .type = AE_IFDIR}},
             2,
             "entry 'dir/': the path appears twice (entries 1 and 2)"},
            {{{.path = "dir", .type = AE_IFDIR, .perm = 0700},
              {.path = "dir/x", .data = "x"},
              {.path = "./dir/", .type = AE_IFDIR, .perm = 0755}},
             3,
             "entry './dir/': the path appears twice (entries 1 and 3)"},
            /* The root too, although it is never written ("." reads back
             * as "./": tar marks folders with a slash). */
            {{{.path = ".", .type = AE_IFDIR}, {.path = "./", .type = AE_IFDIR}},
             2,
             "entry './': the path appears twice (entries 1 and 2)"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_refused(cases[i].e, cases[i].n, NULL, -EPERM, cases[i].expected);
                _cleanup_free_ char *cmd = xasprintf("rm -rf %s/*", dest_dir);
                ck_assert_int_eq(system(cmd), 0);
        }
}
END_TEST

START_TEST(test_same_path_twice_nothing_replaced)
{
        /* The refusal comes before the second entry is written: the file
         * the hard link shares keeps its content. */
        const struct test_entry e[] = {
            {.path = "f", .data = "signed"},
            {.path = "h", .hardlink = "f"},
            {.path = "h", .data = "other"},
        };
        assert_refused(e, ELEMENTSOF(e), NULL, -EPERM,
                       "entry 'h': the path appears twice (entries 2 and 3)");
        _cleanup_free_ char *f = read_text("f");
        ck_assert_str_eq(f, "signed");
        _cleanup_free_ char *h = read_text("h");
        ck_assert_str_eq(h, "signed");
}
END_TEST

START_TEST(test_same_path_twice_from_tar)
{
        /* GNU tar repeats a path only when it is named twice on its command
         * line (or appended); what it writes for a tree never does, which
         * test_normal_tar_gz shows with folders, links and hard links. */
        _cleanup_free_ char *cmd = xasprintf("set -e; mkdir -p %1$s/src/d; echo x > %1$s/src/d/f; "
                                             "tar -C %1$s/src -czf %2$s d d/f",
                                             base_dir, tar_path);
        ck_assert_int_eq(system(cmd), 0);
        _cleanup_free_ char *error = NULL;
        ck_assert_int_eq(extract(NULL, &error), -EPERM);
        ck_assert_str_eq(error, "entry 'd/f': the path appears twice (entries 2 and 3)");
}
END_TEST

START_TEST(test_same_path_twice_among_many)
{
        /* Each entry is checked against all earlier ones without going
         * through them: a repeat of the very first path is still found
         * after a thousand others, all written. */
        enum { N = 1000 };
        _cleanup_free_ struct test_entry *e = xcalloc(N + 1, sizeof(*e));
        _cleanup_free_ char *names = xcalloc(N, 16);
        for (size_t i = 0; i < N; i++) {
                snprintf(names + 16 * i, 16, "%c/%zu", (int)('a' + i % 26), i);
                e[i].path = names + 16 * i;
        }
        e[N] = (struct test_entry){.path = "a//0", .data = "again"};
        _cleanup_free_ char *expected =
            xasprintf("entry 'a//0': the path appears twice (entries 1 and %d)", N + 1);
        assert_refused(e, N + 1, NULL, -EPERM, expected);
        _cleanup_free_ char *last = xasprintf("%c/%d", (int)('a' + (N - 1) % 26), N - 1);
        ck_assert(S_ISREG(mode_of(last)));
}
END_TEST

static Suite *archive_suite(void)
{
        Suite *s = suite_create("unpack");
        TCase *tc = tcase_create("extract");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_normal_tar_gz);
        tcase_add_test(tc, test_plain_and_xz);
        tcase_add_test(tc, test_dotdot_path);
        tcase_add_test(tc, test_dotdot_deep_path);
        tcase_add_test(tc, test_inner_dotdot_path);
        tcase_add_test(tc, test_absolute_path);
        tcase_add_test(tc, test_symlink_absolute_target);
        tcase_add_test(tc, test_symlink_dotdot_target);
        tcase_add_test(tc, test_symlink_through_symlink_target);
        tcase_add_test(tc, test_write_through_symlink);
        tcase_add_test(tc, test_symlinks_inside_accepted);
        tcase_add_test(tc, test_hardlink_dotdot);
        tcase_add_test(tc, test_hardlink_absolute);
        tcase_add_test(tc, test_hardlink_to_symlink);
        tcase_add_test(tc, test_device_and_fifo);
        tcase_add_test(tc, test_setuid_stripped);
        tcase_add_test(tc, test_entry_cap);
        tcase_add_test(tc, test_size_cap);
        tcase_add_test(tc, test_garbage);
        tcase_add_test(tc, test_truncated);
        tcase_add_test(tc, test_control_characters_escaped);
        tcase_add_test(tc, test_same_path_twice);
        tcase_add_test(tc, test_same_path_twice_nothing_replaced);
        tcase_add_test(tc, test_same_path_twice_from_tar);
        tcase_add_test(tc, test_same_path_twice_among_many);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(archive_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
