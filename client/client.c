/* liictl's transport: one HTTP request to liid over its Unix socket with
 * libcurl, the reply capped and parsed, and the mapping of failures and
 * API errors to liictl's exit codes. */
#include "liictl.h"

#include <string.h>

#include "lii-version.h"

struct sink {
        struct client_reply *reply;
        bool too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
        struct sink *s = userdata;
        struct client_reply *r = s->reply;
        size_t len = size * n;
        if (len > CLIENT_REPLY_MAX - r->size) {
                s->too_large = true;
                return 0; /* makes curl stop with CURLE_WRITE_ERROR */
        }
        char *b = realloc(r->body, r->size + len + 1);
        if (!b)
                return 0;
        memcpy(b + r->size, p, len);
        r->body = b;
        r->size += len;
        r->body[r->size] = '\0';
        return len;
}

/* One JSON value and nothing after it but whitespace. */
static json_object *parse_json(const char *s, size_t size)
{
        if (size == 0 || size > INT32_MAX)
                return NULL;
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return NULL;
        json_object *doc = json_tokener_parse_ex(tok, s, (int)size);
        bool ok = doc && json_tokener_get_error(tok) == json_tokener_success &&
                  strspn(s + json_tokener_get_parse_end(tok), " \t\r\n") ==
                      size - json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(doc);
                return NULL;
        }
        return doc;
}

void client_reply_done(struct client_reply *r)
{
        free(r->body);
        json_object_put(r->doc);
        *r = (struct client_reply){0};
}

int client_request(struct ctl *ctl, const char *method, const char *route, uint64_t timeout_usec,
                   struct client_reply *ret)
{
        if (!ctl->curl) {
                ctl->curl = curl_easy_init();
                if (!ctl->curl)
                        return -ENOMEM;
        }
        CURL *c = ctl->curl;
        /* Settings of an earlier request (a POST body) must not leak into
         * this one; the open connection survives the reset. */
        curl_easy_reset(c);

        struct client_reply r = {0};
        struct sink sink = {.reply = &r};
        _cleanup_free_ char *url = xasprintf("%s%s", LII_API_HOST, route);
        long timeout_ms = (long)(timeout_usec / USEC_PER_MSEC);

        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, ctl->socket_path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(c, CURLOPT_USERAGENT, "liictl/" LII_VERSION);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r.error);
        if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        } else if (strcmp(method, "GET") != 0) {
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        }

        CURLcode cc = curl_easy_perform(c);
        /* The error buffer lives in r, which is copied out below. */
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        int err = 0;
        switch (cc) {
        case CURLE_OK:
                break;
        case CURLE_COULDNT_CONNECT: {
                long os_errno = 0;
                curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
                r.connect_failed = true;
                err = os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
                break;
        }
        case CURLE_OPERATION_TIMEDOUT:
                err = -ETIMEDOUT;
                break;
        case CURLE_WRITE_ERROR:
                err = sink.too_large ? -EFBIG : -ENOMEM;
                break;
        default:
                if (!r.error[0])
                        snprintf(r.error, sizeof r.error, "%s", curl_easy_strerror(cc));
                err = -EIO;
                break;
        }
        if (err < 0) {
                /* Only the failure details are handed back. */
                struct client_reply failed = {.connect_failed = r.connect_failed};
                memcpy(failed.error, r.error, sizeof failed.error);
                client_reply_done(&r);
                *ret = failed;
                return err;
        }

        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        r.doc = parse_json(r.body, r.size);
        *ret = r;
        return 0;
}

static const char *error_message(const struct client_reply *reply)
{
        json_object *err = json_get(reply->doc, LII_F_ERROR, json_type_object);
        return json_get_string(err, LII_F_MESSAGE);
}

int client_fail(const struct ctl *ctl, int r, const struct client_reply *reply)
{
        if (r < 0) {
                const char *reason;
                if (r == -ETIMEDOUT)
                        reason = "no answer in time";
                else if (r == -EFBIG)
                        reason = "the reply is too large";
                else if (r == -EIO && reply->error[0])
                        reason = reply->error;
                else
                        reason = strerror(-r);
                fprintf(stderr, "liictl: cannot reach liid at %s: %s\n", ctl->socket_path, reason);
                /* A socket we may not open is a permission problem, not an
                 * absent daemon. */
                if (reply->connect_failed && (r == -EACCES || r == -EPERM))
                        return LIICTL_EXIT_DENIED;
                return LIICTL_EXIT_UNREACHABLE;
        }

        _cleanup_free_ char *message = NULL;
        const char *m = error_message(reply);
        if (m)
                message = ctl_printable(m);
        if (message)
                fprintf(stderr, "liictl: %s\n", message);
        else if (reply->status >= 200 && reply->status < 300)
                fprintf(stderr, "liictl: liid sent a reply that is not JSON\n");
        else
                fprintf(stderr, "liictl: liid answered HTTP %ld\n", reply->status);
        return reply->status == 403 ? LIICTL_EXIT_DENIED : LIICTL_EXIT_FAILED;
}

char *client_service_route(const char *name, const char *suffix)
{
        if (!service_name_is_valid(name)) {
                _cleanup_free_ char *p = ctl_printable(name);
                fprintf(stderr, "liictl: not a service name: '%s'\n", p);
                return NULL;
        }
        return xasprintf("%s%s%s", LII_ROUTE_SERVICES, name, suffix);
}
