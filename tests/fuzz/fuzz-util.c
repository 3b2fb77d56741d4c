/* The helpers of fuzz.h. */
#include "fuzz.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char *scratch;

static void scratch_remove(void)
{
        if (!scratch)
                return;
        char *slash = strrchr(scratch, '/');
        *slash = '\0';
        int fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                fuzz_remove_tree(fd, slash + 1);
                close(fd);
        }
        free(scratch);
        scratch = NULL;
}

const char *fuzz_scratch_dir(void)
{
        if (scratch)
                return scratch;
        const char *base = getenv("LII_FUZZ_TMPDIR");
        /* A tmpfs: /dev/shm is one wherever Linux runs, /run mostly. */
        static const char *const bases[] = {"/dev/shm", "/run", "/tmp"};
        for (size_t i = 0; (!base || !*base) && i < ELEMENTSOF(bases); i++)
                if (access(bases[i], W_OK) == 0)
                        base = bases[i];
        char *path = xasprintf("%s/lii-fuzz-XXXXXX", base);
        fuzz_check(mkdtemp(path), "cannot make a folder in %s: %s", base, strerror(errno));
        scratch = path;
        atexit(scratch_remove);
        return scratch;
}

static void remove_children(int fd)
{
        DIR *d = fdopendir(fd);
        fuzz_check(d, "fdopendir: %s", strerror(errno));
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        fuzz_remove_tree(dirfd(d), de->d_name);
        closedir(d);
}

void fuzz_remove_tree(int dir_fd, const char *name)
{
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                fuzz_check(errno == ENOENT, "stat %s: %s", name, strerror(errno));
                return;
        }
        if (S_ISDIR(st.st_mode)) {
                /* An archive may leave folders without the x or w bit. */
                if ((st.st_mode & 0700) != 0700)
                        fuzz_check(fchmodat(dir_fd, name, 0700, 0) == 0, "chmod %s: %s", name,
                                   strerror(errno));
                int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                fuzz_check(fd >= 0, "open %s: %s", name, strerror(errno));
                remove_children(fd);
        }
        fuzz_check(unlinkat(dir_fd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0,
                   "remove %s: %s", name, strerror(errno));
}

int fuzz_memfd(const uint8_t *data, size_t size)
{
        static int fd = -1;
        if (fd < 0) {
                fd = memfd_create("lii-fuzz", MFD_CLOEXEC);
                fuzz_check(fd >= 0, "memfd_create: %s", strerror(errno));
        }
        /* Whoever read the last input left the offset anywhere. */
        fuzz_check(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0, "truncate: %s",
                   strerror(errno));
        fuzz_check(write_all(fd, data, size) == 0, "write: %s", strerror(errno));
        fuzz_check(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
        return fd;
}

int fuzz_message_is_clean(const char *msg)
{
        if (!msg || !*msg || utf8_check(msg, strlen(msg), NULL, NULL) < 0)
                return 0;
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return 0;
        return 1;
}

void fuzz_note(const char *fmt, ...)
{
        static int verbose = -1;
        if (verbose < 0)
                verbose = getenv("LII_FUZZ_VERBOSE") != NULL;
        if (!verbose)
                return;
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}
