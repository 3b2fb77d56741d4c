/* One HTTP(S) GET the way every lii download is made, on curl multi: http
 * and https only; TLS verified against the system CAs plus an optional extra
 * bundle; connect, low-speed and whole-GET time limits; a cap on the bytes a
 * peer may send; redirects followed only to the same scheme, host and port; an
 * optional If-None-Match for conditional GETs. Used by the desired-state
 * source and the artifact store. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "curlm.h"

#define HTTP_MAX_REDIRECTS 5

struct http_options {
        const char *ca_file;           /* extra CA bundle, or NULL */
        uint64_t connect_timeout_usec; /* 0: 10 s */
        uint64_t low_speed_time_usec;  /* abort when under 1 byte/s this long; 0: 30 s */
        /* The whole GET, redirects included, so that a peer that trickles
         * (fast enough for the low-speed limit) is still given up on; 0:
         * none. Exceeding it ends the get with -ETIMEDOUT and
         * "<url>: not complete within the time limit of 30s". */
        uint64_t timeout_usec;
};

struct http_get;

struct http_result {
        int r;             /* 0: a 2xx or 304 answer arrived whole; negative otherwise */
        long status;       /* the final HTTP status, 0 when none arrived */
        bool not_modified; /* 304 to an If-None-Match */
        const char *etag;  /* the answer's ETag, or NULL */
        const char *error; /* when r < 0: what went wrong, naming the URL */
        uint64_t bytes;    /* body bytes delivered to on_data */
};

/* Body bytes as they arrive. Return 0 to go on; a negative errno aborts the
 * transfer, and that errno and the message set with http_get_fail() (if
 * any) end up in the result. HTTP_DATA_PAUSE takes none of the bytes and
 * stops reading until http_get_resume(), which offers them again. */
#define HTTP_DATA_PAUSE 1
typedef int (*http_data_cb)(struct http_get *g, const void *data, size_t len, void *userdata);
/* Called once, later, from the loop, unless http_get_start() failed or the
 * get was cancelled. The result's strings are valid only during the call,
 * and the get is freed when it returns: it must not be cancelled there. */
typedef void (*http_done_cb)(struct http_get *g, const struct http_result *res, void *userdata);

/* Starts a GET. A body longer than max_bytes aborts it with -EFBIG and
 * "<url>: larger than N bytes"; a non-2xx status is -EIO with "HTTP 404". */
int http_get_start(struct curlm *curlm, const char *url, const struct http_options *opts,
                   const char *if_none_match, uint64_t max_bytes, http_data_cb on_data,
                   http_done_cb on_done, void *userdata, struct http_get **ret);
/* Sets the message an on_data callback's error is reported with. */
void http_get_fail(struct http_get *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Lets a get that on_data paused go on. The bytes held back may be offered
 * to on_data before this returns (and may be paused again there). When
 * on_data refuses them, or curl fails, returns a negative errno and the get
 * goes no further: cancel it. */
int http_get_resume(struct http_get *g);
/* Aborts a get; its callbacks are not called. Accepts NULL. */
void http_get_cancel(struct http_get *g);
/* Whether a redirect from one URL to another keeps scheme, host and port. */
bool http_redirect_allowed(const char *from, const char *to);
