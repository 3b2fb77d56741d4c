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

/* ---- JSON of the gateway ---- */

void etcd_range_done(struct etcd_range *r)
{
        free(r->doc);
        free(r->sig);
        *r = (struct etcd_range){0};
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
        const char *msg = etcd_json_error(root);
        if (msg) {
                *ret_error = xasprintf("etcd: %s", msg);
                return -EIO;
        }
        json_object *header, *kvs;
        if (!json_object_object_get_ex(root, "header", &header) ||
            etcd_json_int64(header, "revision", &out.revision) < 0 || out.revision <= 0) {
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
                            etcd_json_bytes(kv, "key", 4096, &key, &key_len) < 0)
                                continue; /* another key, longer than ours */
                        bool is_doc = strlen(key) == key_len && strcmp(key, doc_key) == 0;
                        bool is_sig = strlen(key) == key_len && strcmp(key, sig_key) == 0;
                        if (!is_doc && !is_sig)
                                continue;
                        /* etcd answers each key once; two values for one
                         * key would leave open which one is meant. */
                        if (is_doc ? out.has_doc : out.has_sig) {
                                *ret_error = xasprintf("the range answer holds %s twice", key);
                                etcd_range_done(&out);
                                return -EBADMSG;
                        }
                        int r = is_doc
                                    ? etcd_json_bytes(kv, "value", max_doc, &out.doc, &out.doc_len)
                                    : etcd_json_bytes(kv, "value", max_sig, &out.sig, &out.sig_len);
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
        struct etcd_watch_head h;
        json_object *events;
        int r = etcd_watch_head_parse(o, &h, &events, ret_error);
        if (r < 0)
                return r;
        struct etcd_watch_msg m = {.revision = h.revision,
                                   .created = h.created,
                                   .canceled = h.canceled,
                                   .compact_revision = h.compact_revision,
                                   .error = h.cancel_reason};
        m.n_events = events ? json_object_array_length(events) : 0;
        for (size_t i = 0; i < m.n_events; i++) {
                json_object *kv;
                int64_t rev;
                if (!json_object_object_get_ex(json_object_array_get_idx(events, i), "kv", &kv) ||
                    etcd_json_int64(kv, "mod_revision", &rev) < 0) {
                        *ret_error = xasprintf("a watch event has no kv.mod_revision");
                        free(m.error);
                        return -EBADMSG;
                }
                if (rev > m.last_mod_revision)
                        m.last_mod_revision = rev;
        }
        *ret = m;
        return 0;
}

/* ---- the source ---- */

struct etcd_source {
        uv_loop_t *loop;
        struct etcd_client *client;
        char *url;
        char *doc_key, *sig_key;
        char *key_b64, *range_end_b64; /* PREFIX/desired/ and all below it */
        uint64_t poll_interval_usec;
        etcd_source_cb cb;
        void *userdata;

        int64_t revision; /* the newest revision the watch has covered */
        struct etcd_call range, watch;
        bool token_retried;     /* the read in flight came after an invalid token */
        bool range_pending;     /* a sync came while a range was in flight */
        bool watch_after_range; /* (re)start the watch when the range ends */
        bool compacted;         /* the watch was cancelled by a compaction */
        unsigned range_failures, watch_failures;

        uv_timer_t range_timer, watch_timer;
        unsigned open_handles;
        bool freed;
};

static void on_handle_closed(uv_handle_t *h)
{
        struct etcd_source *es = h->data;
        if (--es->open_handles > 0)
                return;
        free(es->url);
        free(es->doc_key);
        free(es->sig_key);
        free(es->key_b64);
        free(es->range_end_b64);
        free(es);
}

struct etcd_source *etcd_source_free(struct etcd_source *es)
{
        if (!es)
                return NULL;
        es->freed = true;
        etcd_call_reset(&es->range);
        etcd_call_reset(&es->watch);
        /* Now, not when the timers have closed: the client's own request
         * must go before the curl multi handle does. */
        es->client = etcd_client_unref(es->client);
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

static void deliver_error(struct etcd_source *es, size_t endpoint, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void deliver_error(struct etcd_source *es, size_t endpoint, int r, const char *fmt, ...)
{
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&reason, fmt, ap) < 0)
                abort();
        va_end(ap);
        const struct etcd_url *u = etcd_client_url(es->client);
        _cleanup_free_ char *msg =
            xasprintf("%s (%s): %s", es->url, u->endpoints[endpoint], reason);
        struct source_result res = {.r = r, .error = msg};
        es->cb(&res, es->userdata);
}

static void range_start(struct etcd_source *es);
static void watch_start(struct etcd_source *es);

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
        if (ok) {
                es->range_failures = 0;
        } else {
                es->range_failures++;
                etcd_call_failed_over(&es->range);
        }
        etcd_call_reset(&es->range);
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

static void on_range_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct etcd_source *es = userdata;

        if (c->error) {
                deliver_error(es, c->endpoint, c->error, "%s", c->error_msg);
                range_finish(es, false);
                return;
        }
        if (result != CURLE_OK) {
                deliver_error(es, c->endpoint,
                              result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO, "%s",
                              curl_easy_strerror(result));
                range_finish(es, false);
                return;
        }
        _cleanup_free_ char *error = NULL;
        struct etcd_range rg = {0};
        int r = etcd_range_parse(c->resp ? c->resp : "", c->resp_len, es->doc_key, es->sig_key,
                                 SOURCE_MAX_DOCUMENT, SOURCE_MAX_SIGNATURE, &rg, &error);
        if (r < 0 || status < 200 || status > 299) {
                if (r >= 0)
                        etcd_range_done(&rg);
                /* An expired token is no news: the read is made again at
                 * once with a new one, and only a second refusal tells. */
                if (etcd_client_token_invalid(es->client, error) && !es->token_retried) {
                        es->token_retried = true;
                        etcd_call_reset(&es->range);
                        range_start(es);
                        return;
                }
                deliver_error(es, c->endpoint, r < 0 ? r : -EIO, "HTTP %ld%s%s", status,
                              error ? ": " : "", error ? error : "");
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
        if (es->range.easy || es->range.waiting) {
                es->range_pending = true;
                return;
        }
        /* One read of both keys: the document and the signature of one
         * revision. */
        char *body =
            xasprintf("{\"key\":\"%s\",\"range_end\":\"%s\"}", es->key_b64, es->range_end_b64);
        int r = etcd_call_start(es->client, &es->range, "/v3/kv/range", body, ETCD_MAX_MESSAGE,
                                NULL, 0, on_range_done, es);
        if (r < 0) {
                deliver_error(es, es->range.endpoint, r, "%s", strerror(-r));
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
        const struct etcd_url *u = etcd_client_url(es->client);
        if (es->compacted)
                log_info("The etcd watch on %s ended: %s; the keys are read again",
                         u->endpoints[es->watch.endpoint], why);
        else
                log_info("The etcd watch on %s ended: %s; it resumes after revision %lld",
                         u->endpoints[es->watch.endpoint], why, (long long)es->revision);
        if (!es->compacted)
                etcd_call_failed_over(&es->watch);
        etcd_call_reset(&es->watch);
        if (es->compacted) {
                es->compacted = false;
                es->watch_after_range = true;
                range_start(es);
                return;
        }
        es->watch_failures++;
        uv_timer_start(&es->watch_timer, on_watch_timer, backoff_msec(es->watch_failures), 0);
}

static void on_watch_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct etcd_source *es = userdata;
        etcd_client_token_invalid(es->client, c->error_msg);
        etcd_client_token_invalid(es->client, c->resp);
        _cleanup_free_ char *why = c->error_msg         ? xstrdup(c->error_msg)
                                   : result != CURLE_OK ? xstrdup(curl_easy_strerror(result))
                                                        : xstrdup("the member closed it");
        watch_finish(es, why);
}

static int on_watch_message(json_object *o, void *userdata)
{
        struct etcd_source *es = userdata;
        struct etcd_call *c = &es->watch;
        _cleanup_free_ char *error = NULL;
        struct etcd_watch_msg m = {0};
        int r = etcd_watch_parse(o, &m, &error);
        if (r < 0) {
                free(c->error_msg);
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
        /* A read in flight may have been answered before these events: it
         * reads again once it ends (its end sets the timer, which would
         * drop a settle read planned here). */
        if (m.n_events > 0 && (es->range.easy || es->range.waiting))
                es->range_pending = true;
        else if (m.n_events > 0)
                uv_timer_start(&es->range_timer, on_range_timer, ETCD_SETTLE_MSEC, 0);
        etcd_watch_msg_done(&m);
        return 0;
}

static void watch_start(struct etcd_source *es)
{
        uv_timer_stop(&es->watch_timer);
        if (es->watch.easy || es->watch.waiting)
                return;
        char *body = xasprintf("{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                               "\"start_revision\":\"%lld\",\"progress_notify\":true}}",
                               es->key_b64, es->range_end_b64, (long long)es->revision + 1);
        int r = etcd_call_start(es->client, &es->watch, "/v3/watch", body, ETCD_MAX_MESSAGE,
                                on_watch_message, 0, on_watch_done, es);
        if (r < 0)
                watch_finish(es, strerror(-r));
}

void etcd_source_sync(struct etcd_source *es)
{
        if (es->range.easy || es->range.waiting) {
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
        struct etcd_client *client;
        if (opts->etcd_client) {
                client = etcd_client_ref(opts->etcd_client);
        } else {
                if (!opts->curlm)
                        return -EINVAL;
                struct etcd_client_options copts = {
                    .curlm = opts->curlm,
                    .ca_file = opts->etcd.ca_file,
                    .cert_file = opts->etcd.cert_file,
                    .key_file = opts->etcd.key_file,
                    .username = opts->etcd.username,
                    .password_file = opts->etcd.password_file,
                    .timeout_usec = opts->http.timeout_usec,
                };
                _cleanup_free_ char *error = NULL;
                int r = etcd_client_new(loop, url, &copts, &client, &error);
                if (r < 0)
                        return r;
        }
        const char *prefix = etcd_client_prefix(client);
        struct etcd_source *es = xcalloc(1, sizeof *es);
        es->loop = loop;
        es->client = client;
        es->url = xstrdup(url);
        es->doc_key = xasprintf("%s/desired/doc", prefix);
        es->sig_key = xasprintf("%s/desired/sig", prefix);
        _cleanup_free_ char *key = xasprintf("%s/desired/", prefix);
        _cleanup_free_ char *end = xasprintf("%s/desired0", prefix); /* '0' follows '/' */
        es->key_b64 = etcd_key_b64(key);
        es->range_end_b64 = etcd_key_b64(end);
        es->poll_interval_usec = opts->poll_interval_usec;
        es->cb = cb;
        es->userdata = userdata;
        es->range.client = es->watch.client = client;
        uv_timer_init(loop, &es->range_timer);
        uv_timer_init(loop, &es->watch_timer);
        es->range_timer.data = es->watch_timer.data = es;
        es->open_handles = 2;
        *ret = es;
        return 0;
}
