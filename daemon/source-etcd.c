/* etcd as a desired-state source, through etcd's v3 JSON gateway on curl
 * multi; see source-etcd.h. */
#include "source-etcd.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "lii-version.h"
#include "log.h"
#include "util.h"

/* Events of one publish (a document and its signature in two puts) come
 * close together; one read after the burst sees both. */
#define ETCD_SETTLE_MSEC 50
/* A lost member is given up on quickly (the next one is tried at once),
 * a cluster that is down as a whole ever more slowly. */
#define ETCD_BACKOFF_MIN_MSEC 100
#define ETCD_BACKOFF_MAX_MSEC (30 * 1000)
/* A watch asks for progress notifications, which etcd sends after 10
 * minutes without events (--experimental-watch-progress-notify-interval):
 * a watch silent for longer than that is on a member that froze, and is
 * given up on. */
#define ETCD_WATCH_SILENCE_SEC 660L

/* ---- JSON of the gateway ---- */

/* 64-bit numbers come as JSON strings; zero values are left out. */
static int get_int64(json_object *o, const char *key, int64_t *ret)
{
        json_object *v;
        *ret = 0;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (json_object_is_type(v, json_type_int)) {
                *ret = json_object_get_int64(v);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        const char *s = json_object_get_string(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (!*s || *end || errno)
                return -EBADMSG;
        *ret = n;
        return 0;
}

static bool get_bool(json_object *o, const char *key)
{
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}

/* A base64 member (absent means empty). */
static int get_bytes(json_object *o, const char *key, size_t max, char **ret, size_t *ret_len)
{
        json_object *v;
        const char *text = "";
        size_t len = 0;
        if (json_object_object_get_ex(o, key, &v) && v) {
                if (!json_object_is_type(v, json_type_string))
                        return -EBADMSG;
                text = json_object_get_string(v);
                len = (size_t)json_object_get_string_len(v);
        }
        if (len / 4 * 3 > max + 2)
                return -EFBIG;
        const char *why;
        size_t at;
        int r = base64_decode(text, len, (uint8_t **)ret, ret_len, &why, &at);
        if (r < 0)
                return r;
        if (*ret_len > max) {
                free(*ret);
                *ret = NULL;
                return -EFBIG;
        }
        return 0;
}

void etcd_range_done(struct etcd_range *r)
{
        free(r->doc);
        free(r->sig);
        *r = (struct etcd_range){0};
}

/* The message of an error answer, which grpc-gateway spells in two ways. */
static const char *error_message(json_object *root)
{
        json_object *v, *m;
        if (json_object_object_get_ex(root, "message", &v) &&
            json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        if (json_object_object_get_ex(root, "error", &v)) {
                if (json_object_is_type(v, json_type_string))
                        return json_object_get_string(v);
                if (json_object_object_get_ex(v, "message", &m) &&
                    json_object_is_type(m, json_type_string))
                        return json_object_get_string(m);
        }
        return NULL;
}

int etcd_range_parse(const char *json, size_t len, const char *doc_key, const char *sig_key,
                     size_t max_doc, size_t max_sig, struct etcd_range *ret, char **ret_error)
{
        struct etcd_range out = {0};
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        if (!tok || len > INT_MAX)
                return -ENOMEM;
        _cleanup_json_ json_object *root = json_tokener_parse_ex(tok, json, (int)len);
        if (!root || !json_object_is_type(root, json_type_object)) {
                *ret_error = xasprintf("the range answer is not a JSON object");
                return -EBADMSG;
        }
        const char *msg = error_message(root);
        if (msg) {
                *ret_error = xasprintf("etcd: %s", msg);
                return -EIO;
        }
        json_object *header, *kvs;
        if (!json_object_object_get_ex(root, "header", &header) ||
            get_int64(header, "revision", &out.revision) < 0 || out.revision <= 0) {
                *ret_error = xasprintf("the range answer has no header.revision");
                return -EBADMSG;
        }
        if (json_object_object_get_ex(root, "kvs", &kvs)) {
                if (!json_object_is_type(kvs, json_type_array)) {
                        *ret_error = xasprintf("the range answer's kvs is not an array");
                        return -EBADMSG;
                }
                for (size_t i = 0; i < json_object_array_length(kvs); i++) {
                        json_object *kv = json_object_array_get_idx(kvs, i);
                        _cleanup_free_ char *key = NULL;
                        size_t key_len;
                        if (!json_object_is_type(kv, json_type_object) ||
                            get_bytes(kv, "key", 4096, &key, &key_len) < 0)
                                continue; /* another key, longer than ours */
                        bool is_doc = strlen(key) == key_len && strcmp(key, doc_key) == 0;
                        bool is_sig = strlen(key) == key_len && strcmp(key, sig_key) == 0;
                        if (!is_doc && !is_sig)
                                continue;
                        int r = is_doc ? get_bytes(kv, "value", max_doc, &out.doc, &out.doc_len)
                                       : get_bytes(kv, "value", max_sig, &out.sig, &out.sig_len);
                        if (r < 0) {
                                *ret_error =
                                    r == -EFBIG
                                        ? xasprintf("%s: larger than %zu bytes", key,
                                                    is_doc ? max_doc : max_sig)
                                        : xasprintf("%s: the value is not valid base64", key);
                                etcd_range_done(&out);
                                return r;
                        }
                        if (is_doc)
                                out.has_doc = true;
                        else
                                out.has_sig = true;
                }
        }
        *ret = out;
        return 0;
}

void etcd_watch_msg_done(struct etcd_watch_msg *m)
{
        free(m->error);
        *m = (struct etcd_watch_msg){0};
}

int etcd_watch_parse(json_object *o, struct etcd_watch_msg *ret, char **ret_error)
{
        struct etcd_watch_msg m = {0};
        json_object *result, *header, *events, *v;
        if (!json_object_is_type(o, json_type_object)) {
                *ret_error = xasprintf("a watch message is not a JSON object");
                return -EBADMSG;
        }
        if (!json_object_object_get_ex(o, "result", &result)) {
                /* The stream's end: an error object instead of a result. */
                const char *msg = error_message(o);
                if (!msg) {
                        *ret_error = xasprintf("a watch message has neither result nor error");
                        return -EBADMSG;
                }
                m.canceled = true;
                m.error = xstrdup(msg);
                *ret = m;
                return 0;
        }
        if (!json_object_is_type(result, json_type_object) ||
            (json_object_object_get_ex(result, "header", &header) &&
             get_int64(header, "revision", &m.revision) < 0) ||
            get_int64(result, "compact_revision", &m.compact_revision) < 0) {
                *ret_error = xasprintf("a watch message's result is malformed");
                return -EBADMSG;
        }
        m.created = get_bool(result, "created");
        m.canceled = get_bool(result, "canceled");
        if (json_object_object_get_ex(result, "events", &events) &&
            json_object_is_type(events, json_type_array)) {
                m.n_events = json_object_array_length(events);
                for (size_t i = 0; i < m.n_events; i++) {
                        json_object *kv;
                        int64_t rev;
                        if (!json_object_object_get_ex(json_object_array_get_idx(events, i), "kv",
                                                       &kv) ||
                            get_int64(kv, "mod_revision", &rev) < 0) {
                                *ret_error = xasprintf("a watch event has no kv.mod_revision");
                                return -EBADMSG;
                        }
                        if (rev > m.last_mod_revision)
                                m.last_mod_revision = rev;
                }
        }
        if (json_object_object_get_ex(result, "cancel_reason", &v) &&
            json_object_is_type(v, json_type_string))
                m.error = xstrdup(json_object_get_string(v));
        *ret = m;
        return 0;
}

/* ---- the watch's byte stream ---- */

struct etcd_stream {
        json_tokener *tok;
        size_t max_message;
        size_t pending; /* bytes of the message being parsed */
};

struct etcd_stream *etcd_stream_new(size_t max_message)
{
        struct etcd_stream *st = xcalloc(1, sizeof *st);
        st->tok = json_tokener_new();
        if (!st->tok)
                abort();
        st->max_message = max_message;
        return st;
}

struct etcd_stream *etcd_stream_free(struct etcd_stream *st)
{
        if (st) {
                json_tokener_free(st->tok);
                free(st);
        }
        return NULL;
}

int etcd_stream_feed(struct etcd_stream *st, const char *data, size_t len, etcd_stream_cb cb,
                     void *userdata, char **ret_error)
{
        while (len > 0) {
                /* Whitespace between messages is not the start of one. */
                if (st->pending == 0 && (*data == '\n' || *data == '\r' || *data == ' ')) {
                        data++, len--;
                        continue;
                }
                size_t chunk = len < INT_MAX ? len : INT_MAX;
                _cleanup_json_ json_object *o = json_tokener_parse_ex(st->tok, data, (int)chunk);
                enum json_tokener_error e = json_tokener_get_error(st->tok);
                if (e == json_tokener_continue) {
                        st->pending += chunk;
                        if (st->pending > st->max_message) {
                                *ret_error = xasprintf("a watch message larger than %zu bytes",
                                                       st->max_message);
                                return -EFBIG;
                        }
                        data += chunk, len -= chunk;
                        continue;
                }
                if (e != json_tokener_success || !o) {
                        *ret_error = xasprintf("the watch stream is not JSON: %s",
                                               json_tokener_error_desc(e));
                        return -EBADMSG;
                }
                size_t used = json_tokener_get_parse_end(st->tok);
                json_tokener_reset(st->tok);
                st->pending = 0;
                data += used, len -= used;
                int r = cb(o, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- the source ---- */

struct buffer {
        char *data;
        size_t len, max;
};

/* One POST to the gateway. */
struct call {
        struct etcd_source *es;
        CURL *easy;
        struct curl_slist *headers;
        char *url;
        char *body;
        struct buffer resp; /* the range's answer, or a watch's error page */
        int error;          /* why a write callback stopped the transfer */
        char *error_msg;
};

struct etcd_source {
        uv_loop_t *loop;
        struct curlm *curlm;
        char *url;
        struct etcd_url u;
        char *doc_key, *sig_key;
        char *key_b64, *range_end_b64; /* PREFIX/desired/ and all below it */
        char *ca_file, *cert_file, *key_file;
        char *username, *password;
        char *token; /* from /v3/auth/authenticate, until etcd says it is invalid */
        uint64_t poll_interval_usec, timeout_usec;
        etcd_source_cb cb;
        void *userdata;

        size_t endpoint;  /* the member being talked to */
        int64_t revision; /* the newest revision the watch has covered */
        struct call range, watch, auth;
        bool range_after_auth, watch_after_auth;
        bool token_retried;     /* the read in flight came after an invalid token */
        bool range_pending;     /* a sync came while a range was in flight */
        bool watch_after_range; /* (re)start the watch when the range ends */
        bool compacted;         /* the watch was cancelled by a compaction */
        unsigned range_failures, watch_failures;
        struct etcd_stream *stream;

        uv_timer_t range_timer, watch_timer;
        unsigned open_handles;
        bool freed;
};

static void call_reset(struct call *c)
{
        if (c->easy) {
                curlm_remove(c->es->curlm, c->easy);
                curl_easy_cleanup(c->easy);
                c->easy = NULL;
        }
        curl_slist_free_all(c->headers);
        c->headers = NULL;
        free(c->url);
        free(c->body);
        free(c->resp.data);
        free(c->error_msg);
        struct etcd_source *es = c->es;
        *c = (struct call){.es = es};
}

static void on_handle_closed(uv_handle_t *h)
{
        struct etcd_source *es = h->data;
        if (--es->open_handles > 0)
                return;
        etcd_url_done(&es->u);
        free(es->url);
        free(es->doc_key);
        free(es->sig_key);
        free(es->key_b64);
        free(es->range_end_b64);
        free(es->ca_file);
        free(es->cert_file);
        free(es->key_file);
        free(es->username);
        if (es->password)
                explicit_bzero(es->password, strlen(es->password));
        free(es->password);
        free(es->token);
        free(es);
}

struct etcd_source *etcd_source_free(struct etcd_source *es)
{
        if (!es)
                return NULL;
        es->freed = true;
        call_reset(&es->range);
        call_reset(&es->watch);
        call_reset(&es->auth);
        es->stream = etcd_stream_free(es->stream);
        uv_close((uv_handle_t *)&es->range_timer, on_handle_closed);
        uv_close((uv_handle_t *)&es->watch_timer, on_handle_closed);
        return NULL;
}

static uint64_t backoff_msec(unsigned failures)
{
        uint64_t d = ETCD_BACKOFF_MIN_MSEC;
        for (unsigned i = 1; i < failures && d < ETCD_BACKOFF_MAX_MSEC; i++)
                d *= 2;
        return d < ETCD_BACKOFF_MAX_MSEC ? d : ETCD_BACKOFF_MAX_MSEC;
}

static uint64_t jittered_msec(uint64_t usec)
{
        uint64_t base = usec / USEC_PER_MSEC;
        uint64_t spread = base / 5;
        return base - spread + (spread ? (uint64_t)random() % (2 * spread + 1) : 0);
}

static void next_endpoint(struct etcd_source *es)
{
        es->endpoint = (es->endpoint + 1) % es->u.n_endpoints;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata);

static int call_start(struct etcd_source *es, struct call *c, const char *path, char *body,
                      size_t max, bool watch, curlm_done_cb done)
{
        call_reset(c);
        c->url = xasprintf("%s%s", es->u.endpoints[es->endpoint], path);
        c->body = body;
        c->resp.max = max;
        CURL *easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        /* A member that lost its leader answers a watch with an error
         * instead of keeping it open without events. */
        if (watch)
                c->headers = curl_slist_append(c->headers, "Grpc-Metadata-Hasleader: true");
        if (es->token && c != &es->auth) {
                _cleanup_free_ char *h = xasprintf("Authorization: %s", es->token);
                c->headers = curl_slist_append(c->headers, h);
        }
        curl_easy_setopt(easy, CURLOPT_URL, c->url);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        /* etcd serves gRPC and the gateway on one port and tells them apart
         * by the protocol: HTTP/2 without TLS would be taken for gRPC. */
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        /* A watch lasts as long as the member does; a range is one small
         * answer. */
        if (!watch && es->timeout_usec)
                curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                                 (long)(es->timeout_usec / USEC_PER_MSEC));
        if (watch) {
                curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
                curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, ETCD_WATCH_SILENCE_SEC);
        }
        if (es->u.tls) {
                curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
                curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
                if (es->ca_file)
                        curl_easy_setopt(easy, CURLOPT_CAINFO, es->ca_file);
                if (es->cert_file)
                        curl_easy_setopt(easy, CURLOPT_SSLCERT, es->cert_file);
                if (es->key_file)
                        curl_easy_setopt(easy, CURLOPT_SSLKEY, es->key_file);
        }
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "liid/" LII_VERSION);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, c);
        int r = curlm_add(es->curlm, easy, done, c);
        if (r < 0) {
                curl_easy_cleanup(easy);
                return r;
        }
        c->easy = easy;
        return 0;
}

static void deliver_error(struct etcd_source *es, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void deliver_error(struct etcd_source *es, int r, const char *fmt, ...)
{
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&reason, fmt, ap) < 0)
                abort();
        va_end(ap);
        _cleanup_free_ char *msg =
            xasprintf("%s (%s): %s", es->url, es->u.endpoints[es->endpoint], reason);
        struct source_result res = {.r = r, .error = msg};
        es->cb(&res, es->userdata);
}

static void range_start(struct etcd_source *es);
static void watch_start(struct etcd_source *es);

/* A token expires (etcd's --auth-token-ttl) or dies with the member that
 * issued it; the next request authenticates again. */
static bool forget_token_if_invalid(struct etcd_source *es, const char *error)
{
        if (!es->token || !error || !strstr(error, "invalid auth token"))
                return false;
        log_info("etcd says the auth token of %s is invalid: authenticating again", es->username);
        free(es->token);
        es->token = NULL;
        return true;
}

static void range_finish(struct etcd_source *es, bool ok);

/* A finished request's HTTP status; its handle goes. */
static long call_end(struct call *c, CURL *easy)
{
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);
        c->easy = NULL;
        return status;
}

static void on_auth_done(CURL *easy, CURLcode result, void *userdata)
{
        struct call *c = userdata;
        struct etcd_source *es = c->es;
        long status = call_end(c, easy);

        _cleanup_json_ json_object *root = NULL;
        json_object *token = NULL;
        if (result == CURLE_OK && !c->error && c->resp.data)
                root = json_tokener_parse(c->resp.data);
        const char *error = root ? error_message(root) : NULL;
        if (root && !error && status == 200 && json_object_object_get_ex(root, "token", &token) &&
            json_object_is_type(token, json_type_string) && json_object_get_string_len(token) > 0 &&
            !strpbrk(json_object_get_string(token), "\r\n")) {
                free(es->token);
                es->token = xstrdup(json_object_get_string(token));
                call_reset(c);
                if (es->watch_after_auth) {
                        es->watch_after_auth = false;
                        watch_start(es);
                }
                if (es->range_after_auth) {
                        es->range_after_auth = false;
                        range_start(es);
                }
                return;
        }
        deliver_error(es, -EACCES, "authentication as %s failed: %s", es->username,
                      error                ? error
                      : c->error_msg       ? c->error_msg
                      : result != CURLE_OK ? curl_easy_strerror(result)
                                           : "no token in the answer");
        call_reset(c);
        /* Tried again with the next read, after its backoff. */
        es->range_after_auth = false;
        range_finish(es, false);
}

/* Gets a token first when etcd wants one; returns whether that is under
 * way, in which case what asked is started again once it is there. */
static bool need_auth(struct etcd_source *es, bool *after)
{
        if (!es->username || es->token)
                return false;
        *after = true;
        if (es->auth.easy)
                return true;
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(es->username));
        json_object_object_add(o, "password", json_object_new_string(es->password));
        char *body = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        int r =
            call_start(es, &es->auth, "/v3/auth/authenticate", body, 65536, false, on_auth_done);
        if (r < 0) {
                deliver_error(es, r, "authentication: %s", strerror(-r));
                call_reset(&es->auth);
                *after = false;
                return false;
        }
        return true;
}

static void on_range_timer(uv_timer_t *t)
{
        range_start(t->data);
}

static void on_watch_timer(uv_timer_t *t)
{
        watch_start(t->data);
}

/* Plans the next read: at once after a sync, else the safety-net poll
 * after a success and a backoff (on the next member) after a failure. */
static void range_finish(struct etcd_source *es, bool ok)
{
        if (es->freed)
                return;
        call_reset(&es->range);
        if (ok) {
                es->range_failures = 0;
        } else {
                es->range_failures++;
                next_endpoint(es);
        }
        if (ok && es->watch_after_range) {
                es->watch_after_range = false;
                uv_timer_start(&es->watch_timer, on_watch_timer, 0, 0);
        }
        if (es->range_pending) {
                es->range_pending = false;
                uv_timer_start(&es->range_timer, on_range_timer, 0, 0);
                return;
        }
        uint64_t next =
            ok ? jittered_msec(es->poll_interval_usec) : backoff_msec(es->range_failures);
        uv_timer_start(&es->range_timer, on_range_timer, next, 0);
}

static void on_range_done(CURL *easy, CURLcode result, void *userdata)
{
        struct call *c = userdata;
        struct etcd_source *es = c->es;
        long status = call_end(c, easy);

        if (c->error) {
                deliver_error(es, c->error, "%s", c->error_msg);
                range_finish(es, false);
                return;
        }
        if (result != CURLE_OK) {
                deliver_error(es, result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO, "%s",
                              curl_easy_strerror(result));
                range_finish(es, false);
                return;
        }
        _cleanup_free_ char *error = NULL;
        struct etcd_range rg = {0};
        int r =
            etcd_range_parse(c->resp.data ? c->resp.data : "", c->resp.len, es->doc_key,
                             es->sig_key, SOURCE_MAX_DOCUMENT, SOURCE_MAX_SIGNATURE, &rg, &error);
        if (r < 0 || status < 200 || status > 299) {
                if (r >= 0)
                        etcd_range_done(&rg);
                /* An expired token is no news: the read is made again at
                 * once with a new one, and only a second refusal tells. */
                if (forget_token_if_invalid(es, error) && !es->token_retried) {
                        es->token_retried = true;
                        call_reset(&es->range);
                        range_start(es);
                        return;
                }
                deliver_error(es, r < 0 ? r : -EIO, "HTTP %ld%s%s", status, error ? ": " : "",
                              error ? error : "");
                range_finish(es, false);
                return;
        }
        es->token_retried = false;
        if (rg.revision > es->revision)
                es->revision = rg.revision;

        _cleanup_free_ char *sig_error = NULL, *doc_error = NULL;
        struct source_result res = {0};
        if (!rg.has_doc) {
                res.r = -ENOENT;
                res.error = doc_error = xasprintf("%s: no key %s", es->url, es->doc_key);
        } else {
                res.doc = rg.doc;
                res.doc_len = rg.doc_len;
                if (rg.has_sig) {
                        res.sig = rg.sig;
                        res.sig_len = rg.sig_len;
                } else {
                        res.sig_error = sig_error = xasprintf("no key %s", es->sig_key);
                }
        }
        es->cb(&res, es->userdata);
        etcd_range_done(&rg);
        range_finish(es, true);
}

static void range_start(struct etcd_source *es)
{
        uv_timer_stop(&es->range_timer);
        if (es->range.easy) {
                es->range_pending = true;
                return;
        }
        if (need_auth(es, &es->range_after_auth))
                return;
        /* One read of both keys: the document and the signature of one
         * revision. */
        char *body =
            xasprintf("{\"key\":\"%s\",\"range_end\":\"%s\"}", es->key_b64, es->range_end_b64);
        int r = call_start(es, &es->range, "/v3/kv/range", body, ETCD_MAX_MESSAGE, false,
                           on_range_done);
        if (r < 0) {
                deliver_error(es, r, "%s", strerror(-r));
                range_finish(es, false);
        }
}

/* Ends the watch: after a compaction the keys are read again and the
 * watch starts from what that read saw; otherwise it resumes from the
 * last revision seen, on the next member, after a backoff. */
static void watch_finish(struct etcd_source *es, const char *why)
{
        if (es->freed)
                return;
        if (es->compacted)
                log_info("The etcd watch on %s ended: %s; the keys are read again",
                         es->u.endpoints[es->endpoint], why);
        else
                log_info("The etcd watch on %s ended: %s; it resumes after revision %lld",
                         es->u.endpoints[es->endpoint], why, (long long)es->revision);
        call_reset(&es->watch);
        es->stream = etcd_stream_free(es->stream);
        if (es->compacted) {
                es->compacted = false;
                es->watch_after_range = true;
                range_start(es);
                return;
        }
        es->watch_failures++;
        next_endpoint(es);
        uv_timer_start(&es->watch_timer, on_watch_timer, backoff_msec(es->watch_failures), 0);
}

static void on_watch_done(CURL *easy, CURLcode result, void *userdata)
{
        struct call *c = userdata;
        struct etcd_source *es = c->es;
        curl_easy_cleanup(easy);
        c->easy = NULL;
        forget_token_if_invalid(es, c->error_msg);
        forget_token_if_invalid(es, c->resp.data);
        _cleanup_free_ char *why = c->error_msg         ? xstrdup(c->error_msg)
                                   : result != CURLE_OK ? xstrdup(curl_easy_strerror(result))
                                                        : xstrdup("the member closed it");
        watch_finish(es, why);
}

static int on_watch_message(json_object *o, void *userdata)
{
        struct call *c = userdata;
        struct etcd_source *es = c->es;
        _cleanup_free_ char *error = NULL;
        struct etcd_watch_msg m = {0};
        int r = etcd_watch_parse(o, &m, &error);
        if (r < 0) {
                c->error_msg = TAKE_PTR(error);
                return r;
        }
        if (m.canceled) {
                free(c->error_msg);
                if (m.compact_revision > 0) {
                        es->compacted = true;
                        c->error_msg = xasprintf("the history up to revision %lld was compacted",
                                                 (long long)m.compact_revision);
                } else {
                        c->error_msg = m.error ? xstrdup(m.error) : xstrdup("cancelled");
                }
                etcd_watch_msg_done(&m);
                return -ECANCELED;
        }
        if (m.created)
                es->watch_failures = 0;
        /* Not the header's revision: the one of the message that says the
         * watch was created is the store's, and events older than it may
         * still be on their way. */
        if (m.last_mod_revision > es->revision)
                es->revision = m.last_mod_revision;
        if (m.n_events > 0)
                uv_timer_start(&es->range_timer, on_range_timer, ETCD_SETTLE_MSEC, 0);
        etcd_watch_msg_done(&m);
        return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct call *c = userdata;
        size_t n = size * nmemb;
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (c == &c->es->watch && status >= 200 && status <= 299) {
                char *error = NULL;
                int r = etcd_stream_feed(c->es->stream, ptr, n, on_watch_message, c, &error);
                if (r < 0) {
                        c->error = r;
                        if (error) {
                                free(c->error_msg);
                                c->error_msg = error;
                        }
                        return 0;
                }
                return n;
        }
        if (n > c->resp.max - c->resp.len) {
                c->error = -EFBIG;
                free(c->error_msg);
                c->error_msg = xasprintf("an answer larger than %zu bytes", c->resp.max);
                return 0;
        }
        char *p = realloc(c->resp.data, c->resp.len + n + 1);
        if (!p)
                return 0;
        memcpy(p + c->resp.len, ptr, n);
        c->resp.data = p;
        c->resp.len += n;
        p[c->resp.len] = '\0';
        return n;
}

static void watch_start(struct etcd_source *es)
{
        uv_timer_stop(&es->watch_timer);
        if (es->watch.easy || need_auth(es, &es->watch_after_auth))
                return;
        es->stream = etcd_stream_free(es->stream);
        es->stream = etcd_stream_new(ETCD_MAX_MESSAGE);
        char *body = xasprintf("{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                               "\"start_revision\":\"%lld\",\"progress_notify\":true}}",
                               es->key_b64, es->range_end_b64, (long long)es->revision + 1);
        int r = call_start(es, &es->watch, "/v3/watch", body, 4096, true, on_watch_done);
        if (r < 0)
                watch_finish(es, strerror(-r));
}

void etcd_source_sync(struct etcd_source *es)
{
        if (es->range.easy) {
                es->range_pending = true;
                return;
        }
        uv_timer_start(&es->range_timer, on_range_timer, 0, 0);
}

int etcd_source_start(struct etcd_source *es)
{
        /* The watch starts from what the first successful read saw. */
        es->watch_after_range = true;
        etcd_source_sync(es);
        return 0;
}

int etcd_source_new(uv_loop_t *loop, const char *url, const struct source_options *opts,
                    etcd_source_cb cb, void *userdata, struct etcd_source **ret)
{
        if (!opts->curlm)
                return -EINVAL;
        _cleanup_free_ char *password = NULL;
        if (opts->etcd.username) {
                size_t len;
                if (!opts->etcd.password_file)
                        return -EINVAL;
                int r = read_file_capped(opts->etcd.password_file, 4096, &password, &len);
                if (r < 0)
                        return r;
                /* The file's last line break is not part of the password. */
                while (len > 0 && (password[len - 1] == '\n' || password[len - 1] == '\r'))
                        password[--len] = '\0';
                if (strlen(password) != len)
                        return -EINVAL;
        }
        struct etcd_url u;
        _cleanup_free_ char *error = NULL;
        int r = etcd_url_parse(url, &u, &error);
        if (r < 0)
                return r;
        struct etcd_source *es = xcalloc(1, sizeof *es);
        es->loop = loop;
        es->curlm = opts->curlm;
        es->url = xstrdup(url);
        es->u = u;
        es->doc_key = xasprintf("%s/desired/doc", u.prefix);
        es->sig_key = xasprintf("%s/desired/sig", u.prefix);
        _cleanup_free_ char *key = xasprintf("%s/desired/", u.prefix);
        _cleanup_free_ char *end = xasprintf("%s/desired0", u.prefix); /* '0' follows '/' */
        es->key_b64 = base64_encode(key, strlen(key));
        es->range_end_b64 = base64_encode(end, strlen(end));
        es->ca_file = opts->etcd.ca_file ? xstrdup(opts->etcd.ca_file) : NULL;
        es->cert_file = opts->etcd.cert_file ? xstrdup(opts->etcd.cert_file) : NULL;
        es->key_file = opts->etcd.key_file ? xstrdup(opts->etcd.key_file) : NULL;
        es->username = opts->etcd.username ? xstrdup(opts->etcd.username) : NULL;
        es->password = TAKE_PTR(password);
        es->poll_interval_usec = opts->poll_interval_usec;
        es->timeout_usec = opts->http.timeout_usec ? opts->http.timeout_usec : 30 * USEC_PER_SEC;
        es->cb = cb;
        es->userdata = userdata;
        es->range.es = es->watch.es = es->auth.es = es;
        /* Members are tried in the order listed: a fleet that should spread
         * its watches lists them in another order on each host. */
        es->endpoint = 0;
        uv_timer_init(loop, &es->range_timer);
        uv_timer_init(loop, &es->watch_timer);
        es->range_timer.data = es->watch_timer.data = es;
        es->open_handles = 2;
        *ret = es;
        return 0;
}
