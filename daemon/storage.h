/* Whether liid can write its state folder. liid goes on when it cannot (a
 * full disk, a quota, a file system gone read-only): the first failed
 * write raises the condition (one event, GET /v1/status, /v1/metrics), a
 * timer calls the owner back to try again after a delay that doubles with
 * each attempt, and the first attempt that succeeds ends the condition (one
 * event). What an attempt writes, and what waits for it, is the owner's
 * business (engine.c). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "events.h"

struct storage;
typedef void (*storage_retry_cb)(struct storage *st, void *userdata);

struct storage_options {
        uint64_t first_delay_usec, max_delay_usec;
};

/* events is borrowed and must outlive the storage. */
int storage_new(uv_loop_t *loop, struct events *events, const struct storage_options *opts,
                storage_retry_cb cb, void *userdata, struct storage **ret);
/* Accepts NULL. cb is not called again; the memory goes once libuv has
 * closed the timer. */
struct storage *storage_free(struct storage *st);

/* A write failed; error says what and why. Raises the condition, or keeps
 * it with error as its latest reason, and makes sure an attempt is due. */
void storage_failed(struct storage *st, const char *error);
/* An attempt found the folder still short of room without a write failing:
 * the condition stays as it is and the next attempt is due after the next
 * delay. */
void storage_retry_later(struct storage *st);
/* An attempt wrote what it had to: ends the condition. */
void storage_recovered(struct storage *st);
/* Makes the next attempt run at once (an operator's sync). */
void storage_retry_now(struct storage *st);

bool storage_failing(const struct storage *st);
/* Whether a write failed for want of room, or of a writable file system
 * (ENOSPC, EDQUOT, EROFS), rather than for something about what was
 * written. */
bool storage_is_full_error(int r);
/* {"error": "…" | null, "since": "RFC 3339" | null} */
json_object *storage_to_json(const struct storage *st);
