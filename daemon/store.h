/* The content-addressed artifact store under <state_dir>/store:
 *   store/sha256/<hex>/   unpacked once, read-only, shared by every generation
 *   store/tmp/            downloads and unpacking in progress
 * An artifact is verified (size, SHA-256) while its bytes stream in, and the
 * verified copy (the same descriptor) is the one unpacked; only a complete,
 * verified tree is renamed into place. */
#pragma once

#include <uv.h>

#include "unpack.h"
#include "desired.h"

struct store;
struct store_job;

/* r < 0 on failure, with error a message naming what and why
 * ("artifact file:///x/hello.tar.gz: SHA-256 mismatch: expected …, got …").
 * On success root is the absolute path of the unpacked artifact root.
 * Both strings are valid only during the call. */
typedef void (*store_done_cb)(int r, const char *root, const char *error, void *userdata);

/* Creates the store folders below state_dir if needed and removes leftovers
 * in store/tmp from an earlier run. */
int store_new(uv_loop_t *loop, const char *state_dir, struct store **ret);
/* Cancels outstanding jobs without calling their callbacks. Accepts NULL.
 * Work already running on the thread pool does not touch the store and
 * finishes on its own; the memory of cancelled jobs is released from the
 * loop (the after-work and close callbacks), so keep running the loop after
 * store_free() until it has no more active handles and requests, or
 * uv_loop_close() answers UV_EBUSY. */
struct store *store_free(struct store *s);

/* Makes sure spec's artifact is in the store, fetching and verifying it if
 * needed. Calls cb exactly once, later, from the loop — unless this returns
 * an error, in which case cb is never called. Returns -EINVAL for a spec
 * without URL or with a malformed SHA-256; fetch, verification and unpacking
 * errors come through cb. In the finished tree folders are 0555, files 0555
 * when the artifact gave them any execute bit and 0444 otherwise. A "file"
 * artifact is placed in its root under the last segment of its URL's path
 * (percent-decoded), mode 0555. */
int store_ensure(struct store *s, const struct service_spec *spec, store_done_cb cb, void *userdata,
                 struct store_job **ret_job);
/* Cancels a job; its callback is not called. Work already running on the
 * thread pool finishes and its result is discarded (a tree it completed
 * still lands in the store). Accepts NULL. A job handle is valid until its
 * callback returns or it is cancelled; cancelling from inside the job's own
 * callback is harmless. ret_job may be NULL. */
void store_job_cancel(struct store_job *job);

/* The absolute root path of an artifact, whether or not it is present.
 * Returns a malloc'ed string. */
char *store_artifact_path(struct store *s, const char *sha256);
bool store_has(struct store *s, const char *sha256);

/* Removes every store entry whose SHA-256 is not in keep (NULL-terminated).
 * Entries that an outstanding job is about to hand out are kept too.
 * Synchronous. Returns how many were removed, or a negative errno. */
int store_collect(struct store *s, char *const *keep);
