/* The connection to etcd that everything of liid which talks to it shares
 * (the etcd(s):// source, the fleet module): the members of the URL, tried
 * in turn when one fails; TLS with an optional CA and client certificate;
 * etcd's user/password token, fetched when first needed and again when etcd
 * says it is invalid; and one POST to the v3 JSON gateway on curl multi,
 * HTTP/1.1 forced, its answer capped (or, for a watch, cut into messages).
 * One client per liid: one token and one choice of member for all its
 * requests. The pure helpers for the gateway's JSON live here too. */
#pragma once

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "curlm.h"
#include "etcd-url.h"

/* ---- the gateway's JSON ---- */

/* A 64-bit number, which the gateway writes as a JSON string; a zero value
 * is left out, so a missing member is 0. -EBADMSG when it is not a number. */
int etcd_json_int64(json_object *o, const char *key, int64_t *ret);
/* A boolean member; missing is false. */
bool etcd_json_bool(json_object *o, const char *key);
/* A base64 member (missing is empty), decoded and NUL-terminated;
 * -EFBIG beyond max bytes, -EINVAL (or another error) when not base64. */
int etcd_json_bytes(json_object *o, const char *key, size_t max, char **ret, size_t *ret_len);
/* The message of an error answer ({"error": …, "message": …}), or NULL. */
const char *etcd_json_error(json_object *root);
/* The parts of one message of POST /v3/watch that every watcher reads. */
struct etcd_watch_head {
        int64_t revision;         /* the header's */
        int64_t compact_revision; /* > 0: the start revision was compacted */
        bool created, canceled;
        char *cancel_reason; /* the cancel reason, or an error answer's message */
};
/* Parses them; *ret_events is the message's events array (borrowed from
 * o), or NULL. An error answer instead of a result is a cancel. */
int etcd_watch_head_parse(json_object *o, struct etcd_watch_head *ret, json_object **ret_events,
                          char **ret_error);
/* Base64 of a NUL-terminated string, for keys in requests. */
char *etcd_key_b64(const char *key);

/* Cuts a watch's byte stream into JSON messages, whatever the reads'
 * boundaries. The callback returns 0 to go on or a negative errno to
 * stop, which etcd_stream_feed() returns. */
struct etcd_stream;
typedef int (*etcd_stream_cb)(json_object *msg, void *userdata);
struct etcd_stream *etcd_stream_new(size_t max_message);
struct etcd_stream *etcd_stream_free(struct etcd_stream *st);
int etcd_stream_feed(struct etcd_stream *st, const char *data, size_t len, etcd_stream_cb cb,
                     void *userdata, char **ret_error);

/* ---- the client ---- */

struct etcd_client_options {
        struct curlm *curlm; /* must outlive the client */
        const char *ca_file;
        const char *cert_file, *key_file;     /* TLS client authentication */
        const char *username, *password_file; /* etcd's user/password authentication */
        uint64_t timeout_usec;                /* one request, whole (not a watch); 0: 30 s */
};

struct etcd_client;

/* Parses url (etcd:// or etcds://) and reads the password file. On failure
 * returns a negative errno and sets *ret_error to the reason (the URL's,
 * or the password file's). */
int etcd_client_new(uv_loop_t *loop, const char *url, const struct etcd_client_options *opts,
                    struct etcd_client **ret, char **ret_error);
/* The client is shared: each user holds a reference. unref accepts NULL
 * and returns NULL; the last one frees it (its own token request with it;
 * the users' calls must be reset before). */
struct etcd_client *etcd_client_ref(struct etcd_client *c);
struct etcd_client *etcd_client_unref(struct etcd_client *c);

const struct etcd_url *etcd_client_url(const struct etcd_client *c);
const char *etcd_client_prefix(const struct etcd_client *c);
/* The source URL as configured, for messages. */
const char *etcd_client_name(const struct etcd_client *c);
/* The member requests go to now. */
const char *etcd_client_endpoint(const struct etcd_client *c);

/* One POST to the gateway, embedded in whoever makes it. */
struct etcd_call;
/* The request ended: result is curl's, status the HTTP status (0 without
 * an answer). For a plain call, body holds the answer (NUL-terminated, may
 * be NULL); c->error/c->error_msg say why liid stopped it, or why the
 * token could not be had. The callback may start the call again or
 * reset it. */
typedef void (*etcd_call_cb)(struct etcd_call *call, CURLcode result, long status, void *userdata);

struct etcd_call {
        struct etcd_client *client;
        CURL *easy;
        struct curl_slist *headers;
        char *path, *url, *body;
        char *resp; /* the answer, or a watch's error page */
        size_t resp_len, resp_max;
        int error;       /* why a write callback stopped the transfer, or the token failed */
        char *error_msg; /* its reason for people */
        size_t endpoint; /* the member this call went to */
        bool waiting;    /* for the client's token */
        unsigned auth_epoch;
        struct etcd_call *next_waiting;
        /* A watch: its messages go to on_message as they arrive (2xx). */
        struct etcd_stream *stream;
        etcd_stream_cb on_message;
        uint64_t timeout_usec;
        etcd_call_cb done;
        void *userdata;
};

/* Starts a POST of body (taken over) to path on the client's member, with
 * the token when etcd wants one (fetched first if need be). max caps the
 * answer; with on_message set the call is a watch: no time limit, its
 * messages (at most max bytes each) go to on_message, and a long silence
 * ends it. timeout_usec 0 is the client's. Returns a negative errno when
 * nothing started; then done is never called. */
int etcd_call_start(struct etcd_client *client, struct etcd_call *call, const char *path,
                    char *body, size_t max, etcd_stream_cb on_message, uint64_t timeout_usec,
                    etcd_call_cb done, void *userdata);
/* Cancels what is in flight (done is not called) and frees the request. */
void etcd_call_reset(struct etcd_call *call);
/* A call failed on its member: the next requests go to the next member
 * (once per failed member, however many calls saw it fail). */
void etcd_call_failed_over(struct etcd_call *call);
/* Forgets the token when error says etcd found it invalid (it expired or
 * died with the member that issued it); returns whether it did, so that the
 * caller asks again at once, with a new one. */
bool etcd_client_token_invalid(struct etcd_client *c, const char *error);
