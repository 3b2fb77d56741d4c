/* Unpacking of artifact archives; see unpack.h. libarchive parses the tar
 * stream and writes the files; before each entry is written, lii's policy
 * decides whether it may be written at all and what it may keep: no owners,
 * no setuid, setgid or sticky bits, no ACLs, extended attributes or file
 * flags. Nothing here changes the working directory: liid is multi-threaded. */
#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "util.h"

#define READ_BLOCK_SIZE (64 * 1024)
/* Archive names in messages are cut to this many bytes (before escaping). */
#define MESSAGE_NAME_MAX 200
/* libarchive's messages, which may quote a path from the archive, too. */
#define MESSAGE_LIBARCHIVE_MAX 400

/* libarchive's own symlink and ".." guards stay on as a second line of
 * defence behind lii's checks. ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot
 * be used: every entry is written as "<dest_dir>/<path>", an absolute path,
 * because changing directory is not an option in a threaded daemon; lii
 * itself refuses absolute paths in the archive before the prefix is added.
 * Owners, ACLs, extended attributes and flags are never restored. */
#define EXTRACT_FLAGS                                                                              \
        (ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_PERM)

struct extract {
        const struct unpack_limits *limits;
        char *dest; /* dest_dir, canonical: absolute and free of symlinks */
        int dest_fd;
        uint64_t n_entries;
        uint64_t declared_bytes; /* sum of the sizes in the headers */
        uint64_t written_bytes;  /* bytes actually handed to the disk writer */
        void *seen;              /* tsearch() tree of struct seen_path, one per entry */
};

/* A path an entry has named, kept as the SHA-256 of its normalized form:
 * names may be 4 KiB long each, and a digest keeps the memory to about 100
 * bytes an entry with the tree's node (10 MiB at the default entry cap). */
struct seen_path {
        uint8_t digest[32];
        uint64_t entry; /* 1-based, as in messages */
};

static int seen_path_compare(const void *a, const void *b)
{
        return memcmp(((const struct seen_path *)a)->digest, ((const struct seen_path *)b)->digest,
                      sizeof(((const struct seen_path *)a)->digest));
}

static void extract_done(struct extract *x)
{
        tdestroy(x->seen, free);
}

/* Remembers that entry x->n_entries names rel (normalized). Sets
 * *ret_first to the number of an earlier entry that named the same path, or
 * to 0. A tree keeps this O(log n) per entry, so the entry cap rather than
 * the square of it bounds the work. */
static int remember_path(struct extract *x, const char *rel, uint64_t *ret_first)
{
        struct seen_path *s = xcalloc(1, sizeof(*s));
        unsigned len = 0;
        if (EVP_Digest(rel, strlen(rel), s->digest, &len, EVP_sha256(), NULL) != 1 ||
            len != sizeof(s->digest)) {
                free(s);
                ERR_clear_error();
                return -EIO;
        }
        s->entry = x->n_entries;
        struct seen_path **found = tsearch(s, &x->seen, seen_path_compare);
        if (!found)
                abort(); /* Like xcalloc(): out of memory is not survived half-way. */
        if (*found != s) {
                free(s);
                *ret_first = (*found)->entry;
                return 0;
        }
        *ret_first = 0;
        return 0;
}

/* Sets *ret_error to "entry '<name>': <reason>" (or just the reason when
 * there is no name) and returns r, so that callers can `return fail(…)`. */
static int fail(char **ret_error, int r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char **ret_error, int r, const char *name, const char *fmt, ...)
{
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&reason, fmt, ap) < 0)
                abort();
        va_end(ap);
        if (name) {
                /* Names come from the archive: escaped and cut short, so
                 * that a message stays one readable line in the journal
                 * and in API answers. */
                _cleanup_free_ char *escaped = escape_untrusted(name, MESSAGE_NAME_MAX);
                *ret_error = xasprintf("entry '%s': %s", escaped, reason);
        } else
                *ret_error = TAKE_PTR(reason);
        return r;
}

/* Builds the canonical relative form of a path from the archive: its
 * components joined by single slashes, without empty and "." components
 * ("" for the root itself). Returns NULL and sets *ret_reason when the path
 * is absolute or has a ".." component; the disk writer refuses ".." anyway,
 * and a path that needs it is not one a build tool produces. */
static char *normalize_path(const char *path, size_t *ret_depth, const char **ret_reason)
{
        if (path[0] == '/') {
                *ret_reason = "absolute path";
                return NULL;
        }
        char *out = xcalloc(strlen(path) + 1, 1);
        size_t depth = 0, len = 0;
        long level = 0;
        const char *reason = NULL;
        for (const char *p = path; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.') {
                        if (--level < 0) {
                                reason = "path leaves the artifact root";
                                break;
                        }
                        if (!reason)
                                reason = "path has a '..' component";
                } else if (n > 0 && !(n == 1 && p[0] == '.')) {
                        level++;
                        if (len > 0)
                                out[len++] = '/';
                        memcpy(out + len, p, n);
                        len += n;
                        depth++;
                }
                p += n;
                p += strspn(p, "/");
        }
        if (reason) {
                free(out);
                *ret_reason = reason;
                return NULL;
        }
        *ret_depth = depth;
        return out;
}

/* A symlink at depth d (its directory is d-1 levels below the root) may
 * point up at most d-1 levels. Only leading ".." components are accepted:
 * in "x/.." the kernel goes up from wherever x leads, which is not the
 * lexical parent when x is itself a symlink (with "x -> ." the target
 * "x/../y" names a file next to the root, not inside it). Together with the
 * disk writer never writing through a symlink, every link then resolves
 * inside the root. */
static const char *symlink_target_problem(const char *target, size_t entry_depth)
{
        if (target[0] == '\0')
                return "empty symlink target";
        if (target[0] == '/')
                return "symlink target leaves the artifact root";
        if (strlen(target) >= PATH_MAX)
                return "symlink target too long";
        long level = (long)entry_depth - 1;
        bool named = false, inner_dotdot = false;
        for (const char *p = target; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.') {
                        if (--level < 0)
                                return "symlink target leaves the artifact root";
                        if (named)
                                inner_dotdot = true;
                } else if (n > 0 && !(n == 1 && p[0] == '.')) {
                        level++;
                        named = true;
                }
                p += n;
                p += strspn(p, "/");
        }
        if (inner_dotdot)
                return "symlink target has '..' after a name";
        return NULL;
}

/* lstat() of a path below dir_fd that refuses to follow any symlink on the
 * way, so that the answer is about the file inside the tree. rel is
 * normalized: not empty, no "." or ".." components. */
static int lstat_beneath(int dir_fd, const char *rel, struct stat *ret)
{
        _cleanup_free_ char *copy = xstrdup(rel);
        _cleanup_close_ int fd = -1;
        char *save = NULL;
        char *name = strtok_r(copy, "/", &save);
        for (char *next; (next = strtok_r(NULL, "/", &save)); name = next) {
                int nfd = openat(fd >= 0 ? fd : dir_fd, name,
                                 O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0)
                        return -errno;
                closep(&fd);
                fd = nfd;
        }
        if (fstatat(fd >= 0 ? fd : dir_fd, name, ret, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

/* Applies lii's policy to one header and rewrites it for the disk writer
 * (path prefixed with the destination, permissions cleaned). Sets *ret_skip
 * for entries that describe the root folder itself, which already exists. */
static int check_entry(struct extract *x, struct archive_entry *e, bool *ret_skip, char **ret_error)
{
        const char *path = archive_entry_pathname(e);
        if (!path)
                return fail(ret_error, -EPERM, NULL,
                            "entry #%" PRIu64 ": name not readable in this locale",
                            x->n_entries + 1);
        if (++x->n_entries > x->limits->max_entries)
                return fail(ret_error, -E2BIG, path, "more than %" PRIu64 " entries",
                            x->limits->max_entries);

        const char *reason = NULL;
        size_t depth = 0;
        _cleanup_free_ char *rel = normalize_path(path, &depth, &reason);
        if (!rel)
                return fail(ret_error, -EPERM, path, "%s", reason);
        if (strlen(x->dest) + 1 + strlen(rel) >= PATH_MAX)
                return fail(ret_error, -EPERM, path, "path too long");

        /* Two entries for one path, after normalizing, make the archive
         * ambiguous like a JSON object with a duplicate key: which type,
         * mode or content the path ends up with depends on the extractor's
         * order and overwrite rules, not on what was signed. A directory
         * listed twice is refused too (its mode is just as ambiguous), and
         * so is the root: tar never writes either for a tree, only for a
         * path named twice on its command line or appended with -r. */
        uint64_t first = 0;
        int r = remember_path(x, rel, &first);
        if (r < 0)
                return fail(ret_error, r, path, "cannot hash the path");
        if (first > 0)
                return fail(ret_error, -EPERM, path,
                            "the path appears twice (entries %" PRIu64 " and %" PRIu64 ")", first,
                            x->n_entries);

        const char *hardlink = archive_entry_hardlink(e);
        const char *symlink = archive_entry_symlink(e);
        mode_t type = archive_entry_filetype(e);
        _cleanup_free_ char *link_rel = NULL;

        /* The disk writer decides by the link names, hardlink first, so the
         * checks do too: a regular file that carries a symlink name is
         * written as a symlink. */
        if (hardlink) {
                size_t link_depth;
                link_rel = normalize_path(hardlink, &link_depth, &reason);
                if (!link_rel || link_rel[0] == '\0')
                        return fail(ret_error, -EPERM, path,
                                    "hardlink target leaves the artifact root");
                if (strlen(x->dest) + 1 + strlen(link_rel) >= PATH_MAX)
                        return fail(ret_error, -EPERM, path, "hardlink target too long");
                /* A hard link to a symlink would copy that symlink to another
                 * depth, where its relative target could point outside. */
                struct stat st;
                r = lstat_beneath(x->dest_fd, link_rel, &st);
                if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP)
                        return fail(ret_error, -EPERM, path,
                                    "hardlink target is not an earlier regular file");
                if (r < 0)
                        return fail(ret_error, r, path, "cannot inspect hardlink target: %s",
                                    strerror(-r));
                if (!S_ISREG(st.st_mode))
                        return fail(ret_error, -EPERM, path,
                                    "hardlink target is not an earlier regular file");
        } else if (symlink || type == AE_IFLNK) {
                if (!symlink)
                        return fail(ret_error, -EPERM, path, "empty symlink target");
                reason = symlink_target_problem(symlink, depth);
                if (reason)
                        return fail(ret_error, -EPERM, path, "%s", reason);
        } else if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK)
                return fail(ret_error, -EPERM, path,
                            "device, FIFO or socket entries are not allowed");
        else if (type != AE_IFREG && type != AE_IFDIR)
                return fail(ret_error, -EPERM, path, "unsupported entry type");

        if (rel[0] == '\0') {
                if (type == AE_IFDIR && !hardlink && !symlink) {
                        *ret_skip = true;
                        return 0;
                }
                return fail(ret_error, -EPERM, path, "names the artifact root");
        }

        if (archive_entry_size_is_set(e)) {
                int64_t size = archive_entry_size(e);
                if (size < 0 || (uint64_t)size > x->limits->max_unpacked_bytes - x->declared_bytes)
                        return fail(ret_error, -E2BIG, path,
                                    "unpacked size exceeds %" PRIu64 " bytes",
                                    x->limits->max_unpacked_bytes);
                x->declared_bytes += (uint64_t)size;
        }

        _cleanup_free_ char *full = xasprintf("%s/%s", x->dest, rel);
        archive_entry_copy_pathname(e, full);
        if (link_rel) {
                _cleanup_free_ char *full_link = xasprintf("%s/%s", x->dest, link_rel);
                archive_entry_copy_hardlink(e, full_link);
        }
        /* Only the permission bits survive: setuid, setgid and sticky bits
         * have no business in an artifact, and the store makes the tree
         * read-only afterwards anyway. */
        archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
        archive_entry_acl_clear(e);
        archive_entry_xattr_clear(e);
        archive_entry_set_fflags(e, 0, 0);
        *ret_skip = false;
        return 0;
}

/* What libarchive says went wrong. Its disk writer's messages quote the
 * path it was given, "<dest_dir>/<path from the archive>", so they are
 * escaped and cut short like names. Malloc'ed. */
static char *archive_message(struct archive *a)
{
        const char *m = archive_error_string(a);
        return escape_untrusted(m ? m : "unknown error", MESSAGE_LIBARCHIVE_MAX);
}

static int write_error(struct archive *out)
{
        int e = archive_errno(out);
        return e > 0 ? -e : -EIO;
}

/* libarchive's message for a write that failed ("Write failed") does not
 * say why; its errno does, and a full disk must read as one. */
static int fail_write(char **ret_error, struct archive *out, const char *name, const char *what)
{
        int r = write_error(out);
        _cleanup_free_ char *msg = archive_error_string(out) ? archive_message(out) : NULL;
        const char *why = strerror(-r);
        if (msg && strstr(msg, why))
                return fail(ret_error, r, name, "%s%s", what, msg);
        return fail(ret_error, r, name, "%s%s: %s", what, msg ? msg : "cannot write", why);
}

static int copy_data(struct extract *x, struct archive *in, struct archive *out, const char *name,
                     char **ret_error)
{
        for (;;) {
                const void *buf;
                size_t size;
                la_int64_t offset;
                int r = archive_read_data_block(in, &buf, &size, &offset);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r < ARCHIVE_OK) {
                        _cleanup_free_ char *m = archive_message(in);
                        return fail(ret_error, -EBADMSG, NULL, "not a valid tar archive: %s", m);
                }
                /* Counted as written, not only as declared, so that no
                 * header trick (sparse maps, pax sizes) can write more. */
                if (size > x->limits->max_unpacked_bytes - x->written_bytes)
                        return fail(ret_error, -E2BIG, name,
                                    "unpacked size exceeds %" PRIu64 " bytes",
                                    x->limits->max_unpacked_bytes);
                x->written_bytes += size;
                la_ssize_t w = archive_write_data_block(out, buf, size, offset);
                if (w < ARCHIVE_OK)
                        return fail_write(ret_error, out, name, "");
        }
}

/* libarchive can fall back to running an external decompressor; a forked
 * helper fed with untrusted input is not wanted in liid, so every filter
 * must be built in (registration answers ARCHIVE_WARN otherwise). */
static int support_filters(struct archive *in, char **ret_error)
{
        static const struct {
                const char *name;
                int (*add)(struct archive *);
        } filters[] = {
            {"gzip", archive_read_support_filter_gzip},
            {"bzip2", archive_read_support_filter_bzip2},
            {"xz", archive_read_support_filter_xz},
            {"lzma", archive_read_support_filter_lzma},
            {"zstd", archive_read_support_filter_zstd},
            {"lz4", archive_read_support_filter_lz4},
        };
        for (size_t i = 0; i < ELEMENTSOF(filters); i++)
                if (filters[i].add(in) != ARCHIVE_OK)
                        return fail(ret_error, -EOPNOTSUPP, NULL,
                                    "libarchive has no built-in %s support", filters[i].name);
        if (archive_read_support_format_tar(in) != ARCHIVE_OK)
                return fail(ret_error, -EOPNOTSUPP, NULL, "libarchive has no tar support");
        return 0;
}

int unpack_tar_fd(int fd, const char *dest_dir, const struct unpack_limits *limits,
                  char **ret_error)
{
        static const struct unpack_limits default_limits = UNPACK_LIMITS_DEFAULT;
        _cleanup_(extract_done) struct extract x = {.limits = limits ? limits : &default_limits,
                                                    .dest_fd = -1};
        _cleanup_(archive_read_freep) struct archive *in = NULL;
        _cleanup_(archive_write_freep) struct archive *out = NULL;
        int r;

        /* The disk writer walks every component of the absolute names it is
         * given and refuses to pass a symlink, so it needs the real path. */
        _cleanup_free_ char *dest = realpath(dest_dir, NULL);
        if (!dest)
                return fail(ret_error, -errno, NULL, "cannot resolve %s: %s", dest_dir,
                            strerror(errno));
        _cleanup_close_ int dest_fd = open(dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dest_fd < 0)
                return fail(ret_error, -errno, NULL, "cannot open %s: %s", dest, strerror(errno));
        x.dest = dest;
        x.dest_fd = dest_fd;

        if (lseek(fd, 0, SEEK_SET) < 0)
                return fail(ret_error, -errno, NULL, "cannot rewind the archive: %s",
                            strerror(errno));

        in = archive_read_new();
        out = archive_write_disk_new();
        if (!in || !out)
                return fail(ret_error, -ENOMEM, NULL, "out of memory");
        r = support_filters(in, ret_error);
        if (r < 0)
                return r;
        if (archive_read_open_fd(in, fd, READ_BLOCK_SIZE) != ARCHIVE_OK) {
                _cleanup_free_ char *m = archive_message(in);
                return fail(ret_error, -EBADMSG, NULL, "not a valid tar archive: %s", m);
        }
        if (archive_write_disk_set_options(out, EXTRACT_FLAGS) != ARCHIVE_OK) {
                _cleanup_free_ char *m = archive_message(out);
                return fail(ret_error, -EINVAL, NULL, "%s", m);
        }

        for (;;) {
                struct archive_entry *e;
                r = archive_read_next_header(in, &e);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        _cleanup_free_ char *m = archive_message(in);
                        return fail(ret_error, -EBADMSG, NULL, "not a valid tar archive: %s", m);
                }

                bool skip = false;
                r = check_entry(&x, e, &skip, ret_error);
                if (r < 0)
                        return r;
                if (skip)
                        continue;

                /* The rewritten name is "<dest>/<path>"; messages show the
                 * part that came from the archive. */
                const char *name = archive_entry_pathname(e) + strlen(x.dest) + 1;
                if (archive_write_header(out, e) < ARCHIVE_WARN)
                        return fail_write(ret_error, out, name, "");
                r = copy_data(&x, in, out, name, ret_error);
                if (r < 0)
                        return r;
                if (archive_write_finish_entry(out) < ARCHIVE_WARN)
                        return fail_write(ret_error, out, name, "");
        }

        /* Closing applies the deferred folder permissions. */
        if (archive_write_close(out) < ARCHIVE_WARN)
                return fail_write(ret_error, out, NULL, "cannot finish unpacking: ");
        return 0;
}
