/* Where the bytes of an artifact go while they arrive: an anonymous
 * temporary file below the store's tmp folder, the running SHA-256 and,
 * when a signature is checked, the BLAKE2b-512 that minisign signs, all over
 * exactly the bytes that land in the file, and no more than the declared
 * size. Two ways to feed it:
 *   - store_sink_write() hashes and writes in the caller's thread; for a
 *     caller that is already off the loop (the file:// fetch on the pool);
 *   - store_sink_push(), from the loop, only copies the bytes into a small
 *     ring of reused buffers and returns; worker threads hash and write
 *     them (SHA-256 and the file on one, BLAKE2b on another), so that the
 *     loop never waits for either and the two hashes run side by side.
 *     When the ring is full the caller is told to pause and is called back
 *     once there is room again. An artifact of at most 256 KiB is hashed
 *     and written in store_sink_push() itself: threads would cost it more
 *     than they save. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "minisign.h"

struct store_sink;

/* store_sink_push() has no room for the bytes: none were taken. */
#define STORE_SINK_FULL 1

/* From the loop, when a started sink has news: room again after a
 * STORE_SINK_FULL, everything processed after store_sink_close(), or a
 * failure. Ask store_sink_status() which. It may be called more often than
 * that; store_sink_free() may be called from inside it. */
typedef void (*store_sink_cb)(struct store_sink *s, void *userdata);

/* Opens the temporary file in tmp_dir and sets up the hashes. url names the
 * artifact in error messages. Returns -ENOMEM, -EOPNOTSUPP (no BLAKE2b) or
 * what opening the file failed with. */
int store_sink_new(const char *url, const char *tmp_dir, uint64_t declared, bool blake2b,
                   struct store_sink **ret);
/* Stops the workers (waiting for at most the buffer each is working on),
 * closes the file, which removes it, and frees the sink. From the loop of
 * a started sink; its memory goes in a close callback, so the loop must run
 * afterwards. Accepts NULL, returns NULL. */
struct store_sink *store_sink_free(struct store_sink *s);

/* Starts the worker threads for store_sink_push(). From the loop. */
int store_sink_start(struct store_sink *s, uv_loop_t *loop, store_sink_cb cb, void *userdata);
/* From the loop, on a started sink: takes all n bytes (0), none of them
 * (STORE_SINK_FULL: try again after the callback), or refuses them with
 * -EFBIG when they go beyond the declared size, setting *ret_error. */
int store_sink_push(struct store_sink *s, const void *buf, size_t n, char **ret_error);
/* No more bytes will come; the callback follows once the workers are done
 * with what they have. */
void store_sink_close(struct store_sink *s);
/* A negative errno when a worker failed (with *ret_error saying what and
 * why), 1 when everything pushed before store_sink_close() has been hashed
 * and written, 0 while work is left. */
int store_sink_status(struct store_sink *s, char **ret_error);

/* Hashes and writes n bytes in the caller's thread, on a sink that is not
 * started. -EFBIG beyond the declared size. */
int store_sink_write(struct store_sink *s, const void *buf, size_t n, char **ret_error);

/* Once every byte is in (store_sink_status() said 1, or the last
 * store_sink_write() returned): checks the size against the declared one
 * and the SHA-256 against expected (64 lowercase hex digits), and hands out
 * the BLAKE2b-512 when the sink computes it. Call at most once. */
int store_sink_finish(struct store_sink *s, const char *expected,
                      uint8_t ret_b2[MINISIGN_HASH_SIZE], char **ret_error);

/* The temporary file, positioned after its last byte. */
int store_sink_fd(const struct store_sink *s);
/* The bytes taken so far. */
uint64_t store_sink_received(const struct store_sink *s);
