/* The content-addressed artifact store under <state_dir>/store:
 *   store/sha256/<hex>/      unpacked once, read-only, shared by every generation
 *   store/sha256/<hex>.sig   the minisign signature it was verified with
 *   store/sha256/<hex>.b2    the BLAKE2b-512 of its bytes (hex), what minisign signs
 *   store/tmp/               downloads and unpacking in progress, trees being removed
 * An artifact (file://, http:// or https://) is verified while its bytes
 * stream in: size, SHA-256 and, when a keyring is given, a minisign
 * signature by one of its keys, fetched and checked for a trusted key id
 * before the artifact itself is downloaded. The verified copy (the same
 * descriptor) is the one unpacked; only a complete, verified tree is renamed
 * into place. An artifact already in the store is handed out again only
 * after its recorded signature has been checked against the current keyring. */
#pragma once

#include <uv.h>

#include "desired.h"
#include "http.h"
#include "minisign.h"
#include "unpack.h"

#define STORE_DIR "store" /* under the state folder */

struct store;
struct store_job;

struct store_options {
        struct curlm *curlm;                 /* for http(s) artifacts */
        struct http_options http;            /* ca_file, timeouts (signatures get these) */
        const struct minisign_keyring *keys; /* artifact_keys; NULL: signatures not required */
        /* An http(s) artifact must arrive whole within http.timeout_usec
         * plus its declared size at this many bytes per second, so that a
         * trickle is given up on while a large artifact on a slow link is
         * not; 0: no time limit beyond the low-speed one. */
        uint64_t min_rate;
};

/* Every string is valid only during the callback. */
struct store_result {
        int r;
        const char *error; /* r < 0: names what and why */
        const char *root;  /* r == 0: the unpacked artifact root */
        const char
            *key_id; /* r == 0: the key that signed it (minisign's 16 hex), NULL when unsigned */
        const char *trusted_comment; /* r == 0: its trusted comment, NULL when unsigned */
        uint64_t bytes_fetched;      /* artifact bytes this job fetched (0: from the store) */
};
/* Errors name the artifact URL and the reason, e.g.
 *   "artifact file:///x/hello.tar.gz: SHA-256 mismatch: expected …, got …"
 *   "artifact https://h/hello.tar.gz: signature does not match the file"
 *   "artifact https://h/hello.tar.gz: signature https://h/hello.tar.gz.minisig: HTTP 404" */
typedef void (*store_done_cb)(const struct store_result *res, void *userdata);

/* Creates the store folders below state_dir if needed and removes leftovers
 * in store/tmp from an earlier run. opts->curlm and opts->keys are borrowed
 * and must outlive the store; opts->curlm may be NULL if no http(s) artifact
 * is ever asked for (such a job then fails). */
int store_new(uv_loop_t *loop, const char *state_dir, const struct store_options *opts,
              struct store **ret);
/* Cancels outstanding jobs without calling their callbacks. Accepts NULL.
 * Downloads on curl multi are aborted at once, so the store must be freed
 * before opts->curlm. Work already running on the thread pool does not
 * touch the store and finishes on its own; the memory of cancelled jobs is
 * released from the loop (the after-work callback), so keep running the
 * loop after store_free() until it has no more active requests, or
 * uv_loop_close() answers UV_EBUSY. */
struct store *store_free(struct store *s);

/* Makes sure spec's artifact is in the store, fetching and verifying it if
 * needed. Calls cb exactly once, later, from the loop — unless this returns
 * an error, in which case cb is never called. Returns -EINVAL for a spec
 * without URL or with a malformed SHA-256; fetch, verification and unpacking
 * errors come through cb.
 *
 * With a keyring, the signature (spec->signature_url, or the artifact URL
 * with ".minisig") is fetched first and must be minisign's prehashed form by
 * a key of the keyring: an unknown key id (-ENOKEY) or a legacy signature
 * (-EPROTONOSUPPORT) refuses the artifact before it is downloaded, and a
 * signature that does not match it (-EBADMSG) refuses it before it is
 * unpacked. An artifact already in the store is handed out after its
 * recorded signature has been checked against the keyring as it is now;
 * when that fails, a fresh signature is fetched and checked against the
 * recorded hash (no download), or, without a usable record, the artifact is
 * fetched and verified again (the tree in place is kept).
 *
 * In the finished tree folders are 0555, files 0555 when the artifact gave
 * them any execute bit and 0444 otherwise. A "file" artifact is placed in
 * its root under the last segment of its URL's path (percent-decoded),
 * mode 0555. */
int store_ensure(struct store *s, const struct service_spec *spec, store_done_cb cb, void *userdata,
                 struct store_job **ret_job);
/* Cancels a job; its callback is not called. Work already running on the
 * thread pool finishes and its result is discarded (a tree it completed
 * still lands in the store). Accepts NULL. A job handle is valid until its
 * callback returns or it is cancelled; cancelling from inside the job's own
 * callback is harmless. ret_job may be NULL. */
void store_job_cancel(struct store_job *job);

/* The time limit of an artifact's download: base_usec (what a document
 * may take, for the round trips) plus size bytes at min_rate bytes per
 * second, or 0 (none) when min_rate is 0. Saturates at UINT64_MAX. */
uint64_t store_artifact_timeout_usec(uint64_t base_usec, uint64_t min_rate, uint64_t size);

/* The absolute root path of an artifact, whether or not it is present.
 * Returns a malloc'ed string. */
char *store_artifact_path(struct store *s, const char *sha256);
bool store_has(struct store *s, const char *sha256);

/* Takes every store entry whose SHA-256 is not in keep (NULL-terminated)
 * out of the store, with its record (<hex>.sig, <hex>.b2), and removes
 * records left without an entry. Entries that an outstanding job is about
 * to hand out are kept too. An entry leaves at once: its tree is renamed
 * into store/tmp here, so that nothing hands it out any more and a job for
 * the same artifact builds a new tree, and it is removed on the thread
 * pool afterwards (what cannot be removed waits in store/tmp, which
 * store_new() empties). Returns how many entries left, or a negative
 * errno. As after store_free(), run the loop until it has no more active
 * requests before closing it. */
int store_collect(struct store *s, char *const *keep);
