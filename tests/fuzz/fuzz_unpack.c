/* Artifact archives: unpack_tar_fd(), libarchive under lii's archive
 * policy, unpacking into a fresh folder of a tmpfs, which is removed after
 * each input. The caps are small (256 entries, 1 MiB) so that each input
 * takes little time. Each input is unpacked twice:
 *   - as it is, an archive in any compression libarchive detects;
 *   - read as lines that each describe an entry, "TMODE PATH[\tLINK]"
 *     (T: f file, d folder, l symlink, h hard link, p FIFO, c character
 *     device; MODE in octal; a file holds its own line), written into a
 *     pax archive with libarchive. libarchive is not instrumented, so
 *     mutations of raw archives mostly break a header checksum; these
 *     archives are well formed, and the fuzzer spends its time on the
 *     policy: names, links, types and modes.
 *
 * Promises checked: an error is a clean one-line message; whatever the
 * archive, nothing appears or changes outside the destination (a file
 * beside it must keep its content and its single link); after a success
 * the tree holds only folders, regular files and symlinks, without setuid,
 * setgid or sticky bits, and no symlink resolves outside the tree. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "fuzz.h"
#include "unpack.h"
#include "util.h"

#define DEST     "dest"
#define BESIDE   "beside"
#define CONTENTS "lii fuzz: a file beside the destination\n"

static int scratch_fd = -1;

static void setup(void)
{
        scratch_fd = open(fuzz_scratch_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fuzz_check(scratch_fd >= 0, "open scratch: %s", strerror(errno));
        int fd = openat(scratch_fd, BESIDE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        fuzz_check(fd >= 0 && write_all(fd, CONTENTS, strlen(CONTENTS)) == 0, "write %s", BESIDE);
        close(fd);
}

static void check_outside(void)
{
        DIR *d = fdopendir(fcntl(scratch_fd, F_DUPFD_CLOEXEC, 0));
        fuzz_check(d, "fdopendir");
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d)))
                fuzz_check(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                               strcmp(de->d_name, DEST) == 0 || strcmp(de->d_name, BESIDE) == 0,
                           "%s appeared beside the destination", de->d_name);
        closedir(d);

        struct stat st;
        fuzz_check(fstatat(scratch_fd, BESIDE, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                       S_ISREG(st.st_mode) && st.st_nlink == 1 &&
                       st.st_size == (off_t)strlen(CONTENTS),
                   "the file beside the destination changed");
        char buf[sizeof CONTENTS];
        int fd = openat(scratch_fd, BESIDE, O_RDONLY | O_CLOEXEC);
        fuzz_check(fd >= 0 && read(fd, buf, sizeof buf) == (ssize_t)strlen(CONTENTS) &&
                       memcmp(buf, CONTENTS, strlen(CONTENTS)) == 0,
                   "the file beside the destination changed");
        close(fd);
}

/* Walks the folder dir_fd, rel being its path below the root. */
static void check_tree(int root_fd, int dir_fd, const char *rel, unsigned depth)
{
        fuzz_check(depth < 4096, "too deep");
        DIR *d = fdopendir(dir_fd);
        fuzz_check(d, "fdopendir");
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                _cleanup_free_ char *path =
                    rel[0] ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
                struct stat st;
                fuzz_check(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0, "stat %s",
                           path);
                fuzz_check(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISLNK(st.st_mode),
                           "%s has type %o", path, st.st_mode & S_IFMT);
                fuzz_check((st.st_mode & 07000) == 0, "%s has mode %o", path, st.st_mode & 07777);
                if (S_ISLNK(st.st_mode)) {
                        struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                                               .resolve = RESOLVE_BENEATH};
                        long fd = syscall(SYS_openat2, root_fd, path, &how, sizeof how);
                        fuzz_check(fd >= 0 || errno != EXDEV, "symlink %s leads outside", path);
                        if (fd >= 0)
                                close((int)fd);
                } else if (S_ISDIR(st.st_mode)) {
                        if ((st.st_mode & 0500) != 0500)
                                fuzz_check(fchmodat(dirfd(d), de->d_name, 0700, 0) == 0, "chmod");
                        int fd = openat(dirfd(d), de->d_name,
                                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        fuzz_check(fd >= 0, "open %s", path);
                        check_tree(root_fd, fd, path, depth + 1);
                }
        }
        closedir(d);
}

static void unpack_once(const uint8_t *data, size_t size, const char *what)
{
        static const struct unpack_limits limits = {.max_entries = 256,
                                                    .max_unpacked_bytes = 1 << 20};
        int fd = fuzz_memfd(data, size);
        fuzz_check(mkdirat(scratch_fd, DEST, 0700) == 0, "mkdir: %s", strerror(errno));
        _cleanup_free_ char *dest = xasprintf("%s/" DEST, fuzz_scratch_dir());

        _cleanup_free_ char *error = NULL;
        int r = unpack_tar_fd(fd, dest, &limits, &error);
        fuzz_note("unpack_tar_fd (%s): %s", what, r < 0 ? error : "unpacked");
        if (r < 0)
                fuzz_check(fuzz_message_is_clean(error), "unclean error: %s",
                           error ? error : "(none)");
        else
                fuzz_check(!error, "success with an error: %s", error);
        check_outside();
        if (r == 0) {
                int root = openat(scratch_fd, DEST, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                fuzz_check(root >= 0, "open dest");
                int walk = fcntl(root, F_DUPFD_CLOEXEC, 0);
                check_tree(root, walk, "", 0);
                close(root);
        }
        fuzz_remove_tree(scratch_fd, DEST);
}

/* Adds the entry that line describes; false when it describes none. */
static bool add_entry(struct archive *a, const char *line, size_t len)
{
        static const struct {
                char letter;
                mode_t type;
        } types[] = {{'f', AE_IFREG}, {'d', AE_IFDIR}, {'l', AE_IFLNK},
                     {'h', AE_IFREG}, {'p', AE_IFIFO}, {'c', AE_IFCHR}};
        if (len < 3 || memchr(line, '\0', len))
                return false;
        _cleanup_free_ char *copy = strndup(line, len);
        fuzz_check(copy, "strndup");
        char *space = strchr(copy, ' ');
        if (!space)
                return false;
        *space = '\0';
        char *end;
        unsigned long mode = strtoul(copy + 1, &end, 8);
        if (*end || mode > 07777)
                return false;
        char *path = space + 1, *link = strchr(path, '\t');
        if (link)
                *link++ = '\0';
        mode_t type = 0;
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (types[i].letter == copy[0])
                        type = types[i].type;
        if (!type || !*path)
                return false;

        _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
        fuzz_check(e, "archive_entry_new");
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, (mode_t)mode);
        archive_entry_set_mtime(e, 0, 0);
        bool data = copy[0] == 'f';
        if (copy[0] == 'l')
                archive_entry_set_symlink(e, link ? link : "");
        if (copy[0] == 'h')
                archive_entry_set_hardlink(e, link ? link : "");
        archive_entry_set_size(e, data ? (la_int64_t)len : 0);
        if (archive_write_header(a, e) < ARCHIVE_WARN)
                return false;
        if (data)
                archive_write_data(a, line, len);
        return true;
}

/* The input read as entry lines, written as a pax archive into buf. */
static size_t write_archive(const uint8_t *data, size_t size, uint8_t *buf, size_t max)
{
        _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
        fuzz_check(a, "archive_write_new");
        size_t used = 0;
        fuzz_check(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
                       archive_write_set_bytes_per_block(a, 512) == ARCHIVE_OK &&
                       archive_write_open_memory(a, buf, max, &used) == ARCHIVE_OK,
                   "%s", archive_error_string(a));
        size_t n = 0;
        const char *p = (const char *)data, *end = p + size;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = (size_t)((nl ? nl : end) - p);
                if (add_entry(a, p, len))
                        n++;
                p += len + 1;
        }
        if (archive_write_close(a) != ARCHIVE_OK || n == 0)
                return 0;
        return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* At most 256 entries of one 512-byte header, a pax header and
         * 4 KiB lines each fit; a larger archive is not written. */
        static uint8_t archive[4 << 20];
        if (scratch_fd < 0)
                setup();
        unpack_once(data, size, "as is");
        size_t n = write_archive(data, size, archive, sizeof archive);
        if (n > 0)
                unpack_once(archive, n, "entry lines");
        return 0;
}
