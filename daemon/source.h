/* The desired-state source. file:// documents are read when the file (or
 * its .minisig) changes, seen through inotify on the folder (uv_fs_event),
 * and every poll interval (±20% jitter) as a safety net. The document is
 * capped in size before anything parses it. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SOURCE_MAX_DOCUMENT (1U << 20)
#define SOURCE_MAX_SIGNATURE 4096U

struct source;

/* A fetch finished. On success (r == 0) doc holds the document and sig its
 * detached signature, or NULL with sig_error saying why there is none.
 * On failure error names what and why. All pointers are valid only during
 * the call. */
struct source_result {
        int r;
        const char *error;
        const char *doc;
        size_t doc_len;
        const char *sig;
        size_t sig_len;
        const char *sig_error;
};
typedef void (*source_cb)(struct source *s, const struct source_result *res, void *userdata);

int source_new(uv_loop_t *loop, const char *url, uint64_t poll_interval_usec, source_cb cb,
               void *userdata, struct source **ret);
/* Starts watching; the first fetch runs on the next loop iteration. */
int source_start(struct source *s);
/* Fetches now (POST /v1/sync, start-up). */
void source_sync(struct source *s);
/* Accepts NULL. The uv handles close asynchronously. */
struct source *source_free(struct source *s);
