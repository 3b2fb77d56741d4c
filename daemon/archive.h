/* Safe unpacking of artifact archives with libarchive plus lii's own
 * policy: no absolute or ".." paths, no link that leaves the root, no
 * device, FIFO or socket entries, setuid/setgid bits stripped, owners not
 * restored, caps on entry count and unpacked bytes. Anything else fails the
 * whole artifact. Synchronous: callers run it on the libuv thread pool. */
#pragma once

/* This header shares its name with libarchive's, and the daemon folder is on
 * the include path, so `#include <archive.h>` finds this file first. Passing
 * the include on keeps `#include <archive.h>` meaning "libarchive's API plus
 * lii's" wherever it is written with angle brackets. When this file is
 * reached as "archive.h" from its own folder, compilers search the include
 * path from the start, find this file again and skip it; only lii's part is
 * then seen, and nothing in it needs libarchive (clang says so in a warning
 * that is silenced here for that reason). */
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winclude-next-absolute-path"
#endif
#include_next <archive.h>
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

#include <stdint.h>

struct archive_limits {
        uint64_t max_entries;        /* default 100000 */
        uint64_t max_unpacked_bytes; /* default 4 GiB */
};
#define ARCHIVE_LIMITS_DEFAULT                                                                     \
        {                                                                                          \
                .max_entries = 100000, .max_unpacked_bytes = 4ULL << 30                            \
        }

/* Unpacks the tar archive (any compression libarchive detects) read from fd,
 * starting at offset 0, into dest_dir, which must exist and be empty.
 * On failure returns a negative errno-style code and sets *ret_error to a
 * malloc'ed message naming the entry and the reason
 * ("entry 'a/../../etc/passwd': path leaves the artifact root");
 * dest_dir may then hold a partial tree that the caller removes.
 * Error codes: -EBADMSG for a stream that is not a valid (compressed) tar
 * archive, -EPERM for an entry that lii's policy refuses, -E2BIG when a cap
 * is exceeded, another negative errno when writing to dest_dir fails. */
int archive_extract_fd(int fd, const char *dest_dir, const struct archive_limits *limits,
                       char **ret_error);

#ifdef ARCHIVE_H_INCLUDED
#include <archive_entry.h>

/* _cleanup_ adapters for libarchive's objects, for code that includes
 * libarchive's API through <archive.h>. */
static inline void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}
static inline void archive_write_freep(struct archive **a)
{
        if (*a)
                archive_write_free(*a);
}
static inline void archive_entry_freep(struct archive_entry **e)
{
        if (*e)
                archive_entry_free(*e);
}
#endif
