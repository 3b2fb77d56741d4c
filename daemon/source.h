/* The desired-state source. file:// documents are read when the file (or
 * its .minisig) changes, seen through inotify on the folder (uv_fs_event),
 * and every poll interval (±20% jitter) as a safety net. http:// and
 * https:// documents are fetched on curl multi every poll interval (±20%
 * jitter) with If-None-Match, so that an unchanged document costs no
 * download; failed fetches back off exponentially. Either way the document
 * is capped in size before anything parses it, and it is delivered only
 * together with its detached signature (or the reason there is none).
 * etcd(s):// documents are read and watched in etcd (source-etcd.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "curlm.h"
#include "http.h"

struct etcd_client;

#define SOURCE_MAX_DOCUMENT  (1U << 20)
#define SOURCE_MAX_SIGNATURE 4096U

struct source;

/* The [etcd] section, for etcd(s):// sources. */
struct source_etcd_options {
        const char *ca_file;
        const char *cert_file, *key_file;     /* TLS client authentication */
        const char *username, *password_file; /* etcd's user/password authentication */
};

struct source_options {
        struct curlm *curlm;      /* for http(s) and etcd(s) sources */
        struct http_options http; /* ca_file, timeouts */
        struct source_etcd_options etcd;
        /* For etcd(s):// sources: the connection liid shares with its fleet
         * module (the source takes a reference); NULL: the source makes its
         * own from curlm and etcd. */
        struct etcd_client *etcd_client;
        uint64_t poll_interval_usec;
};

/* A fetch finished. On success (r == 0) doc holds the document and sig its
 * detached signature, or NULL with sig_error saying why there is none; or,
 * for http(s) sources, unchanged says the server answered 304 Not Modified
 * for the document delivered last, and doc and sig are NULL. On failure
 * error names the URL and the reason. All pointers are valid only during
 * the call. */
struct source_result {
        int r;
        const char *error;
        bool unchanged;
        const char *doc;
        size_t doc_len;
        const char *sig;
        size_t sig_len;
        const char *sig_error;
};
typedef void (*source_cb)(struct source *s, const struct source_result *res, void *userdata);

/* url is file://, http://, https://, etcd:// or etcds:// (source-etcd.h);
 * opts->curlm must outlive the source when it is not file://. */
int source_new(uv_loop_t *loop, const char *url, const struct source_options *opts, source_cb cb,
               void *userdata, struct source **ret);
/* Starts watching; the first fetch runs on the next loop iteration. */
int source_start(struct source *s);
/* Fetches now (POST /v1/sync, start-up), from the loop rather than inside
 * the call. While an http(s) fetch is in flight, any number of syncs make
 * one more fetch right after it: never two at once. */
void source_sync(struct source *s);
/* As source_sync(), for a consumer that could not take the document
 * delivered last: it is downloaded again, not answered by a 304. */
void source_refetch(struct source *s);
/* Accepts NULL. Cancels a fetch in flight; the callback is not called
 * again. The uv handles close asynchronously. */
struct source *source_free(struct source *s);
