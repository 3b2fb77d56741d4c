/* Small helpers shared by liid and liictl: duration and time formatting,
 * hex, UTF-8 checks, whole-file reads, allocation that aborts on failure;
 * with cleanup.h, the _cleanup_ adapters. Helpers here never log; callers
 * decide what an error means. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleanup.h"

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC  1000000ULL
#define USEC_INFINITY UINT64_MAX

/* Frees a NULL-terminated vector of strings. Accepts NULL, returns NULL. */
char **strv_free(char **v);
static inline void strv_freep(char ***v)
{
        strv_free(*v);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *v);
/* Whether the NULL-terminated v (NULL: empty) holds s. */
bool strv_contains(const char *const *v, const char *s);
/* strcmp() of two elements of an array of char *: the comparison function
 * for qsort() and bsearch() over such an array. */
int strptr_compare(const void *a, const void *b);

/* Arrays of pointers to structs that hold a `char *` name at name_offset,
 * kept sorted by name so that finding one is a binary search. Returns the
 * index of name when *ret_found, else the index where it belongs. */
size_t sorted_by_name_search(void *const *v, size_t n, size_t name_offset, const char *name,
                             bool *ret_found);

/* Parses "250ms", "30s", "5m", "1h" (a bare number is seconds) into
 * microseconds. Returns 0, or -EINVAL for anything else, -ERANGE on overflow. */
int parse_duration(const char *s, uint64_t *ret_usec);

/* Formats microseconds the way parse_duration() reads them ("1.5s", "250ms"). */
void format_duration(uint64_t usec, char *buf, size_t size);

/* Parses "256M", "1G", "4096" (bytes, binary suffixes K M G T). */
int parse_size(const char *s, uint64_t *ret_bytes);

/* Wall clock in microseconds since the epoch. */
uint64_t now_realtime_usec(void);
/* Monotonic clock in microseconds. */
uint64_t now_monotonic_usec(void);

/* RFC 3339 UTC with second precision: "2026-01-02T03:04:05Z". buf >= 21 bytes. */
#define RFC3339_MAX 32
void format_rfc3339(uint64_t usec, char buf[static RFC3339_MAX]);
/* Parses the "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" form. */
int parse_rfc3339(const char *s, uint64_t *ret_usec);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);

/* base64 (RFC 4648, padded). The encoding is NUL-terminated and malloc'ed. */
char *base64_encode(const void *data, size_t len);
/* Decodes s[0..len), which must be the one canonical base64 of some bytes:
 * a multiple of 4 long, no blanks, at most two '=' at the end, and the bits
 * that padding leaves over zero (else several strings would stand for the
 * same bytes). The bytes are malloc'ed, with a NUL after them. On failure
 * returns -EBADMSG and sets *ret_reason to a static text ("length is not a
 * multiple of 4", …) and *ret_at to the offset of a character not in the
 * alphabet, or SIZE_MAX when the fault is not one character. */
int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len,
                  const char **ret_reason, size_t *ret_at);
bool is_hex_string(const char *s, size_t len);
/* The value of the hex digit c, in either case, or -1. */
int unhex(char c);

/* Reads a whole small regular file, NUL-terminated. A larger file than max
 * is -EFBIG and something else than a regular file -EBADFD (a FIFO planted
 * at the path cannot block: it is opened non-blocking and refused), so the
 * cap holds before anything parses the bytes. */
int read_file_capped(const char *path, size_t max, char **ret, size_t *ret_len);
/* Writes all len bytes, across short writes and EINTR. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* fsync() of a folder, so that what was created or renamed in it is on the
 * disk. 0 or -errno. */
int fsync_dir(const char *path);
/* strerror(), plus "not a regular file" for read_file_capped()'s -EBADFD. */
const char *read_file_strerror(int r);

/* Checks that s[0..len) is UTF-8 as RFC 3629 defines it: shortest forms
 * only, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, every
 * sequence whole. json-c's own check lets overlong forms and surrogates
 * through, and D-Bus refuses them later, far from where they came in.
 * Returns 0, or -EILSEQ with *ret_offset at the first byte of the faulty
 * sequence and *ret_reason a static phrase naming the fault ("overlong
 * encoding"); either may be NULL. */
int utf8_check(const char *s, size_t len, size_t *ret_offset, const char **ret_reason);

/* How much of the NUL-terminated UTF-8 text s fits in max bytes without
 * cutting a character in two: strlen(s) when all of it fits, else at most
 * max, stepped back to the start of the character at the cut. */
size_t utf8_cut(const char *s, size_t max);

/* A copy of the NUL-terminated s in which every byte utf8_check() refuses
 * is written as the four characters "\xNN": for text of mixed origin (a
 * message cut short by a fixed buffer, a path from the configuration) that
 * liid stores and serves, and so must keep strict UTF-8. */
char *utf8_escape_invalid(const char *s);

/* A copy of untrusted s (a key or name from a document, a path from an
 * archive) fit to quote in an error message, which ends up in the
 * journal, API answers and terminals: printable ASCII stays as it is but
 * for the backslash and the two quote characters, and every other byte is
 * written "\xNN", so that the copy is one line of plain ASCII that cannot
 * pass for lii's own words. Only the first max bytes of s are taken,
 * followed by "..." when there were more. Unlike utf8_escape_invalid(),
 * for whole messages that may hold such copies, it escapes backslashes. */
char *escape_untrusted(const char *s, size_t max);

/* Checks one JSON string as written between its quotes: its bytes pass
 * utf8_check(), and so does what its escapes stand for: a \uXXXX surrogate
 * must be one half of a pair (json-c silently turns a lone one into U+FFFD),
 * and no character may be NUL, raw or as \u0000, as neither C strings nor
 * D-Bus can carry it. Escapes are taken to be well-formed (the JSON parser
 * judges those). Returns 0, or -EILSEQ with *ret_error (when not NULL) set
 * to a reason such as "not valid UTF-8 (overlong encoding at byte 3)";
 * byte offsets in it count from the first byte after the opening quote,
 * plus base. */
int json_string_check(const char *s, size_t len, size_t base, char **ret_error);

/* Runs json_string_check() on every string of the JSON text buf[0..len);
 * offsets in the error count from the start of buf. Text outside strings is
 * left to the JSON parser. */
int json_text_check_strings(const char *buf, size_t len, char **ret_error);

/* Checks the service name grammar of the brief: [a-z0-9][a-z0-9-]{0,47}. */
bool service_name_is_valid(const char *s);

/* strdup() that aborts on allocation failure: out-of-memory is not a
 * condition lii tries to survive half-way through a transition. */
char *xstrdup(const char *s);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* p, or an abort when it is NULL: for libraries that report running out of
 * memory as NULL (json-c, libcurl), where going on would quietly turn into
 * a different result. */
void *oom_check(void *p);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets *ret_error to the formatted message (when ret_error is not NULL) and
 * returns r, so that a failure with its reason is one statement. */
int fail_with(char **ret_error, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
