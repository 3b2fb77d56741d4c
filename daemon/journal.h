/* The last lines a unit wrote, read from the journal on the thread pool
 * (reading journal files is disk I/O), so that a refused rollout can quote
 * what the instance said before it died. Where there is no journal (a
 * private user manager without journald, as in the tests) the answer is
 * simply no lines. The lines are the instance's words, untrusted: each is
 * cut to JOURNAL_LINE_MAX bytes and control characters are replaced. */
#pragma once

#include <stdint.h>
#include <uv.h>

#define JOURNAL_LINE_MAX  160
#define JOURNAL_LINES_MAX 5

/* lines: NULL-terminated, oldest first, possibly empty; valid during the
 * call only. */
typedef void (*journal_tail_cb)(char *const *lines, void *userdata);

struct journal_tail;

/* Reads up to max_lines of what unit wrote since since_usec (realtime).
 * On success the callback comes exactly once, unless cancelled; on
 * failure (a negative errno) it never comes. */
int journal_tail_start(uv_loop_t *loop, const char *unit, uint64_t since_usec, unsigned max_lines,
                       journal_tail_cb cb, void *userdata, struct journal_tail **ret);
/* Accepts NULL. The callback is not called after this. */
void journal_tail_cancel(struct journal_tail *t);
