/* Artifact archives: unpack_tar_fd(), libarchive under lii's archive
 * policy, unpacking the input (any compression libarchive detects) into a
 * fresh folder of a tmpfs, which is removed after each input. The caps are
 * small (256 entries, 1 MiB) so that each input takes little time.
 *
 * Promises checked: an error is a clean one-line message; whatever the
 * archive, nothing appears or changes outside the destination (a file
 * beside it must keep its content and its single link); after a success
 * the tree holds only folders, regular files and symlinks, without setuid,
 * setgid or sticky bits, and no symlink resolves outside the tree. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const struct unpack_limits limits = {.max_entries = 256,
                                                    .max_unpacked_bytes = 1 << 20};
        if (scratch_fd < 0)
                setup();
        int fd = fuzz_memfd(data, size);
        fuzz_check(mkdirat(scratch_fd, DEST, 0700) == 0, "mkdir: %s", strerror(errno));
        _cleanup_free_ char *dest = xasprintf("%s/" DEST, fuzz_scratch_dir());

        _cleanup_free_ char *error = NULL;
        int r = unpack_tar_fd(fd, dest, &limits, &error);
        fuzz_note("unpack_tar_fd: %s", r < 0 ? error : "unpacked");
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
        return 0;
}
