/* The shared connection to etcd's v3 JSON gateway; see etcd-client.h. */
#include "etcd-client.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "lii-version.h"
#include "log.h"
#include "util.h"

/* A watch asks for progress notifications, which etcd sends after 10
 * minutes without events (--experimental-watch-progress-notify-interval):
 * a watch silent for longer than that is on a member that froze, and is
 * given up on. */
#define ETCD_WATCH_SILENCE_SEC 660L

/* ---- JSON of the gateway ---- */

int etcd_json_int64(json_object *o, const char *key, int64_t *ret)
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

bool etcd_json_bool(json_object *o, const char *key)
{
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}

/* A base64 member (absent means empty). */
int etcd_json_bytes(json_object *o, const char *key, size_t max, char **ret, size_t *ret_len)
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

/* grpc-gateway spells it in two ways. */
const char *etcd_json_error(json_object *root)
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

int etcd_watch_head_parse(json_object *o, struct etcd_watch_head *ret, json_object **ret_events,
                          char **ret_error)
{
        struct etcd_watch_head h = {0};
        json_object *result, *header, *v;
        *ret_events = NULL;
        if (!json_object_is_type(o, json_type_object)) {
                *ret_error = xasprintf("a watch message is not a JSON object");
                return -EBADMSG;
        }
        if (!json_object_object_get_ex(o, "result", &result)) {
                /* The stream's end: an error object instead of a result. */
                const char *msg = etcd_json_error(o);
                if (!msg) {
                        *ret_error = xasprintf("a watch message has neither result nor error");
                        return -EBADMSG;
                }
                h.canceled = true;
                h.cancel_reason = xstrdup(msg);
                *ret = h;
                return 0;
        }
        if (!json_object_is_type(result, json_type_object) ||
            (json_object_object_get_ex(result, "header", &header) &&
             etcd_json_int64(header, "revision", &h.revision) < 0) ||
            etcd_json_int64(result, "compact_revision", &h.compact_revision) < 0) {
                *ret_error = xasprintf("a watch message's result is malformed");
                return -EBADMSG;
        }
        h.created = etcd_json_bool(result, "created");
        h.canceled = etcd_json_bool(result, "canceled");
        if (json_object_object_get_ex(result, "cancel_reason", &v) &&
            json_object_is_type(v, json_type_string))
                h.cancel_reason = xstrdup(json_object_get_string(v));
        if (json_object_object_get_ex(result, "events", &v)) {
                if (!json_object_is_type(v, json_type_array)) {
                        free(h.cancel_reason);
                        *ret_error = xasprintf("a watch message's events is not an array");
                        return -EBADMSG;
                }
                *ret_events = v;
        }
        *ret = h;
        return 0;
}

char *etcd_key_b64(const char *key)
{
        return base64_encode(key, strlen(key));
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

/* ---- the client ---- */

struct etcd_client {
        unsigned refs;
        uv_loop_t *loop;
        struct curlm *curlm;
        char *name;
        struct etcd_url u;
        char *ca_file, *cert_file, *key_file;
        char *username, *password;
        char *token; /* from /v3/auth/authenticate, until etcd says it is invalid */
        uint64_t timeout_usec;
        size_t endpoint; /* the member being talked to */
        struct etcd_call auth;
        /* Calls that wait for a token; each was queued during one token
         * request (its epoch), whose outcome is theirs. */
        struct etcd_call *waiting;
        unsigned auth_epoch;
};

int etcd_client_new(uv_loop_t *loop, const char *url, const struct etcd_client_options *opts,
                    struct etcd_client **ret, char **ret_error)
{
        if (!opts->curlm)
                return -EINVAL;
        _cleanup_free_ char *password = NULL;
        if (opts->username) {
                size_t len;
                if (!opts->password_file) {
                        *ret_error = xasprintf("etcd.username needs etcd.password_file");
                        return -EINVAL;
                }
                int r = read_file_capped(opts->password_file, 4096, &password, &len);
                if (r < 0) {
                        *ret_error = xasprintf("%s: %s", opts->password_file, strerror(-r));
                        return r;
                }
                /* The file's last line break is not part of the password. */
                while (len > 0 && (password[len - 1] == '\n' || password[len - 1] == '\r'))
                        password[--len] = '\0';
                if (strlen(password) != len) {
                        *ret_error =
                            xasprintf("%s: the password holds a NUL byte", opts->password_file);
                        return -EINVAL;
                }
        }
        struct etcd_url u;
        int r = etcd_url_parse(url, &u, ret_error);
        if (r < 0)
                return r;
        struct etcd_client *c = xcalloc(1, sizeof *c);
        c->refs = 1;
        c->loop = loop;
        c->curlm = opts->curlm;
        c->name = xstrdup(url);
        c->u = u;
        c->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
        c->cert_file = opts->cert_file ? xstrdup(opts->cert_file) : NULL;
        c->key_file = opts->key_file ? xstrdup(opts->key_file) : NULL;
        c->username = opts->username ? xstrdup(opts->username) : NULL;
        c->password = TAKE_PTR(password);
        c->timeout_usec = opts->timeout_usec ? opts->timeout_usec : 30 * USEC_PER_SEC;
        c->auth.client = c;
        /* Members are tried in the order listed: a fleet that should spread
         * its connections lists them in another order on each host. */
        c->endpoint = 0;
        *ret = c;
        return 0;
}

struct etcd_client *etcd_client_ref(struct etcd_client *c)
{
        c->refs++;
        return c;
}

struct etcd_client *etcd_client_unref(struct etcd_client *c)
{
        if (!c || --c->refs > 0)
                return NULL;
        etcd_call_reset(&c->auth);
        etcd_url_done(&c->u);
        free(c->name);
        free(c->ca_file);
        free(c->cert_file);
        free(c->key_file);
        free(c->username);
        if (c->password)
                explicit_bzero(c->password, strlen(c->password));
        free(c->password);
        free(c->token);
        free(c);
        return NULL;
}

const struct etcd_url *etcd_client_url(const struct etcd_client *c)
{
        return &c->u;
}

const char *etcd_client_prefix(const struct etcd_client *c)
{
        return c->u.prefix;
}

const char *etcd_client_name(const struct etcd_client *c)
{
        return c->name;
}

const char *etcd_client_endpoint(const struct etcd_client *c)
{
        return c->u.endpoints[c->endpoint];
}

void etcd_call_failed_over(struct etcd_call *call)
{
        struct etcd_client *c = call->client;
        if (c && c->endpoint == call->endpoint)
                c->endpoint = (c->endpoint + 1) % c->u.n_endpoints;
}

bool etcd_client_token_invalid(struct etcd_client *c, const char *error)
{
        if (!c->token || !error || !strstr(error, "invalid auth token"))
                return false;
        log_info("etcd says the auth token of %s is invalid: authenticating again", c->username);
        free(c->token);
        c->token = NULL;
        return true;
}

static void unqueue(struct etcd_call *call)
{
        if (!call->waiting)
                return;
        for (struct etcd_call **p = &call->client->waiting; *p; p = &(*p)->next_waiting)
                if (*p == call) {
                        *p = call->next_waiting;
                        break;
                }
        call->waiting = false;
        call->next_waiting = NULL;
}

void etcd_call_reset(struct etcd_call *call)
{
        if (call->easy) {
                curlm_remove(call->client->curlm, call->easy);
                curl_easy_cleanup(call->easy);
        }
        if (call->client)
                unqueue(call);
        curl_slist_free_all(call->headers);
        free(call->path);
        free(call->url);
        free(call->body);
        free(call->resp);
        free(call->error_msg);
        etcd_stream_free(call->stream);
        struct etcd_client *client = call->client;
        *call = (struct etcd_call){.client = client};
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct etcd_call *call = userdata;
        size_t n = size * nmemb;
        long status = 0;
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (call->stream && status >= 200 && status <= 299) {
                char *error = NULL;
                int r = etcd_stream_feed(call->stream, ptr, n, call->on_message, call->userdata,
                                         &error);
                if (r < 0) {
                        call->error = r;
                        if (error) {
                                free(call->error_msg);
                                call->error_msg = error;
                        }
                        return 0;
                }
                return n;
        }
        if (n > call->resp_max - call->resp_len) {
                call->error = -EFBIG;
                free(call->error_msg);
                call->error_msg = xasprintf("an answer larger than %zu bytes", call->resp_max);
                return 0;
        }
        char *p = realloc(call->resp, call->resp_len + n + 1);
        if (!p)
                return 0;
        memcpy(p + call->resp_len, ptr, n);
        call->resp = p;
        call->resp_len += n;
        p[call->resp_len] = '\0';
        return n;
}

static void on_call_done(CURL *easy, CURLcode result, void *userdata)
{
        struct etcd_call *call = userdata;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);
        call->easy = NULL;
        call->done(call, result, status, call->userdata);
}

/* Sends a call whose token, if etcd wants one, is there. */
static int send_call(struct etcd_call *call)
{
        struct etcd_client *c = call->client;
        call->endpoint = c->endpoint;
        free(call->url);
        call->url = xasprintf("%s%s", c->u.endpoints[c->endpoint], call->path);
        CURL *easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;
        curl_slist_free_all(call->headers);
        call->headers = curl_slist_append(NULL, "Content-Type: application/json");
        /* A member that lost its leader answers a watch with an error
         * instead of keeping it open without events. */
        if (call->stream)
                call->headers = curl_slist_append(call->headers, "Grpc-Metadata-Hasleader: true");
        if (c->token && call != &c->auth) {
                _cleanup_free_ char *h = xasprintf("Authorization: %s", c->token);
                call->headers = curl_slist_append(call->headers, h);
        }
        curl_easy_setopt(easy, CURLOPT_URL, call->url);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        /* etcd serves gRPC and the gateway on one port and tells them apart
         * by the protocol: HTTP/2 without TLS would be taken for gRPC. */
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        /* A watch lasts as long as the member does; anything else is one
         * small answer. */
        if (!call->stream) {
                uint64_t t = call->timeout_usec ? call->timeout_usec : c->timeout_usec;
                curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(t / USEC_PER_MSEC));
                if (t < 10 * USEC_PER_SEC)
                        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                                         (long)(t / USEC_PER_MSEC));
        } else {
                curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
                curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, ETCD_WATCH_SILENCE_SEC);
        }
        if (c->u.tls) {
                curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
                curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
                if (c->ca_file)
                        curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file);
                if (c->cert_file)
                        curl_easy_setopt(easy, CURLOPT_SSLCERT, c->cert_file);
                if (c->key_file)
                        curl_easy_setopt(easy, CURLOPT_SSLKEY, c->key_file);
        }
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "liid/" LII_VERSION);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
        int r = curlm_add(c->curlm, easy, on_call_done, call);
        if (r < 0) {
                curl_easy_cleanup(easy);
                return r;
        }
        call->easy = easy;
        return 0;
}

/* The next waiting call whose token request has ended, or NULL. */
static struct etcd_call *next_waiting(struct etcd_client *c, unsigned epoch)
{
        for (struct etcd_call *call = c->waiting; call; call = call->next_waiting)
                if (call->auth_epoch == epoch)
                        return call;
        return NULL;
}

static void on_auth_done(struct etcd_call *call, CURLcode result, long status, void *userdata)
{
        struct etcd_client *c = userdata;
        unsigned epoch = c->auth_epoch++;
        _cleanup_json_ json_object *root = NULL;
        json_object *token = NULL;
        if (result == CURLE_OK && !call->error && call->resp)
                root = json_tokener_parse(call->resp);
        const char *error = root ? etcd_json_error(root) : NULL;
        _cleanup_free_ char *why = NULL;
        if (root && !error && status == 200 && json_object_object_get_ex(root, "token", &token) &&
            json_object_is_type(token, json_type_string) && json_object_get_string_len(token) > 0 &&
            !strpbrk(json_object_get_string(token), "\r\n")) {
                free(c->token);
                c->token = xstrdup(json_object_get_string(token));
        } else {
                why = xasprintf("authentication as %s failed: %s", c->username,
                                error                ? error
                                : call->error_msg    ? call->error_msg
                                : result != CURLE_OK ? curl_easy_strerror(result)
                                                     : "no token in the answer");
                /* The next attempt asks the next member. */
                etcd_call_failed_over(call);
        }
        etcd_call_reset(call);
        /* Each waiting call is taken off the list before its callback,
         * which may start, reset or queue calls. */
        struct etcd_call *w;
        while ((w = next_waiting(c, epoch))) {
                unqueue(w);
                int r = why ? -EACCES : send_call(w);
                if (r < 0) {
                        w->error = r;
                        free(w->error_msg);
                        w->error_msg = why ? xstrdup(why) : xasprintf("%s", strerror(-r));
                        w->done(w, CURLE_OK, 0, w->userdata);
                }
        }
}

int etcd_call_start(struct etcd_client *client, struct etcd_call *call, const char *path,
                    char *body, size_t max, etcd_stream_cb on_message, uint64_t timeout_usec,
                    etcd_call_cb done, void *userdata)
{
        call->client = client;
        etcd_call_reset(call);
        call->path = xstrdup(path);
        call->body = body;
        call->resp_max = max;
        call->timeout_usec = timeout_usec;
        call->done = done;
        call->userdata = userdata;
        if (on_message) {
                call->stream = etcd_stream_new(max);
                call->on_message = on_message;
        }
        if (!client->username || client->token || call == &client->auth) {
                int r = send_call(call);
                if (r < 0)
                        etcd_call_reset(call);
                return r;
        }
        /* etcd wants a token first: the call waits for it. */
        call->waiting = true;
        call->endpoint = client->endpoint;
        call->auth_epoch = client->auth_epoch;
        call->next_waiting = client->waiting;
        client->waiting = call;
        if (client->auth.easy)
                return 0;
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(client->username));
        json_object_object_add(o, "password", json_object_new_string(client->password));
        char *auth_body = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        int r = etcd_call_start(client, &client->auth, "/v3/auth/authenticate", auth_body, 65536,
                                NULL, 0, on_auth_done, client);
        if (r < 0) {
                /* Only this call can be waiting: a token request was not
                 * under way. */
                etcd_call_reset(call);
                return r;
        }
        return 0;
}
