/* etcd as a desired-state source (etcd://host:port[,host:port…]/PREFIX,
 * etcds:// for TLS), through etcd's v3 JSON gateway on curl multi: one
 * range read of PREFIX/desired/doc and PREFIX/desired/sig, then a watch on
 * them that resumes from the last revision seen after a disconnect (on the
 * next endpoint, with backoff) and reads everything again after a
 * compaction. etcd is only a transport: the bytes go to the same checks as
 * those of any other source. The connection (members, TLS, token) is
 * etcd-client.h's; the pure parts (range and watch responses) are declared
 * here for the unit tests. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd-client.h"
#include "source.h"

/* A watch message carries the document's value in its events: room for
 * it in base64 and for the JSON around it. */
#define ETCD_MAX_MESSAGE (4U * SOURCE_MAX_DOCUMENT)

/* What a range read of the two keys found. */
struct etcd_range {
        int64_t revision; /* the store's revision the read saw */
        bool has_doc, has_sig;
        char *doc, *sig; /* NUL-terminated for convenience; may hold NULs */
        size_t doc_len, sig_len;
};

/* Parses the answer to POST /v3/kv/range. Keys other than doc_key and
 * sig_key are ignored. Values larger than max_doc (doc) or max_sig (sig)
 * are refused with -EFBIG. */
int etcd_range_parse(const char *json, size_t len, const char *doc_key, const char *sig_key,
                     size_t max_doc, size_t max_sig, struct etcd_range *ret, char **ret_error);
void etcd_range_done(struct etcd_range *r);

/* One message of a watch stream. */
struct etcd_watch_msg {
        int64_t revision; /* the header's */
        bool created, canceled;
        int64_t compact_revision; /* > 0: the start revision was compacted */
        size_t n_events;
        int64_t last_mod_revision; /* the newest event's, 0 without events */
        char *error;               /* an error object's message or the cancel reason */
};

/* Parses one message of POST /v3/watch. */
int etcd_watch_parse(json_object *o, struct etcd_watch_msg *ret, char **ret_error);
void etcd_watch_msg_done(struct etcd_watch_msg *m);

struct etcd_source;
typedef void (*etcd_source_cb)(const struct source_result *res, void *userdata);

int etcd_source_new(uv_loop_t *loop, const char *url, const struct source_options *opts,
                    etcd_source_cb cb, void *userdata, struct etcd_source **ret);
int etcd_source_start(struct etcd_source *es);
/* A range read now, from the loop; one more after the one in flight. */
void etcd_source_sync(struct etcd_source *es);
/* Accepts NULL; the callback is not called again. */
struct etcd_source *etcd_source_free(struct etcd_source *es);
