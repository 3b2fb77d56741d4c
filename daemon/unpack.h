/* Safe unpacking of artifact archives with libarchive plus lii's own
 * policy: no absolute or ".." paths, no path named by two entries (after
 * normalizing "./", "//" and a trailing "/"), no link that leaves the root,
 * no device, FIFO or socket entries, setuid/setgid bits stripped, owners not
 * restored, caps on entry count and unpacked bytes. Anything else fails the
 * whole artifact. Synchronous: callers run it on the libuv thread pool. */
#pragma once

#include <stdint.h>

struct unpack_limits {
        uint64_t max_entries;        /* default 100000 */
        uint64_t max_unpacked_bytes; /* default 4 GiB */
};
#define UNPACK_LIMITS_DEFAULT                                                                      \
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
int unpack_tar_fd(int fd, const char *dest_dir, const struct unpack_limits *limits,
                  char **ret_error);
