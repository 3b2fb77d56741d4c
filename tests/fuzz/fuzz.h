/* What the fuzz targets share. Each fuzz_<target>.c defines
 * LLVMFuzzerTestOneInput() over lii's real code; built with clang and
 * -fsanitize=fuzzer (LII_FUZZ=ON) it is a libFuzzer target, built with
 * replay.c it replays a committed corpus as a unit test. A target
 * aborts through fuzz_check() when the code breaks a promise that no input
 * may break, so that libFuzzer reports it like a crash. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_check(cond, ...)                                                                      \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "%s:%d: broken: %s: ", __FILE__, __LINE__, #cond);         \
                        fprintf(stderr, __VA_ARGS__);                                              \
                        fputc('\n', stderr);                                                       \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

/* A folder of this process for the targets that need files: made on first
 * use under $LII_FUZZ_TMPDIR, else the first writable of /dev/shm, /run
 * and /tmp, and removed at exit. */
const char *fuzz_scratch_dir(void);
/* Removes name below dir_fd and everything in it, whatever the modes an
 * archive left there. A missing name is no error. Aborts on failure: a
 * target that cannot clean up would carry state into the next input. */
void fuzz_remove_tree(int dir_fd, const char *name);
/* An anonymous file holding exactly data[0..size), rewound; the same fd
 * each call. */
int fuzz_memfd(const uint8_t *data, size_t size);
/* Says what the code made of an input (its error, or that it was taken)
 * when $LII_FUZZ_VERBOSE is set, for whoever writes a corpus entry. */
void fuzz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether an error message is fit for the journal and an API answer: not
 * empty, strict UTF-8, no control characters. */
int fuzz_message_is_clean(const char *msg);
