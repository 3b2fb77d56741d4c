/* liictl's transport: one HTTP request to liid over its Unix socket with
 * libcurl, the reply capped and parsed (or, for the event stream, cut into
 * lines as it arrives), and the mapping of failures and API errors to
 * liictl's exit codes. */
#include "liictl.h"

#include <string.h>

#include "lii-version.h"

struct sink {
        struct client_reply *reply;
        bool too_large;
        /* Set for client_stream(): a 2xx body goes to on_line, line by
         * line, with the incomplete last line kept in line. */
        CURL *curl;
        int (*on_line)(char *line, size_t len, void *userdata);
        void *userdata;
        char *line;
        size_t line_len;
        int line_error; /* what on_line returned when it stopped the transfer */
};

static bool append(char **buf, size_t *size, const char *p, size_t len)
{
        char *b = realloc(*buf, *size + len + 1);
        if (!b)
                return false;
        memcpy(b + *size, p, len);
        *size += len;
        b[*size] = '\0';
        *buf = b;
        return true;
}

/* Hands every complete line of the data to on_line; keeps the rest. */
static size_t on_lines(struct sink *s, char *p, size_t len)
{
        size_t done = 0;
        while (done < len) {
                char *nl = memchr(p + done, '\n', len - done);
                size_t take = nl ? (size_t)(nl - (p + done)) : len - done;
                if (take > CLIENT_LINE_MAX - s->line_len) {
                        s->too_large = true;
                        return 0;
                }
                if (!append(&s->line, &s->line_len, p + done, take))
                        return 0;
                done += take;
                if (!nl)
                        break;
                done++; /* the newline */
                int r = s->on_line(s->line, s->line_len, s->userdata);
                s->line_len = 0;
                s->line[0] = '\0';
                if (r < 0) {
                        s->line_error = r;
                        return 0;
                }
        }
        return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
        struct sink *s = userdata;
        struct client_reply *r = s->reply;
        size_t len = size * n;
        if (s->on_line) {
                long status = 0;
                curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
                if (status >= 200 && status <= 299)
                        return on_lines(s, p, len);
        }
        if (len > CLIENT_REPLY_MAX - r->size) {
                s->too_large = true;
                return 0; /* makes curl stop with CURLE_WRITE_ERROR */
        }
        return append(&r->body, &r->size, p, len) ? len : 0;
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

/* The request both client_request() and client_stream() send; a
 * timeout_usec of USEC_INFINITY sets no limit on the whole transfer, only
 * on connecting. */
static int perform(struct ctl *ctl, const char *method, const char *route, uint64_t timeout_usec,
                   struct sink *sink)
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
        sink->curl = c;

        struct client_reply *r = sink->reply;
        _cleanup_free_ char *url = xasprintf("%s%s", LII_API_HOST, route);

        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, ctl->socket_path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(c, CURLOPT_USERAGENT, "liictl/" LII_VERSION);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (timeout_usec == USEC_INFINITY) {
                curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                                 (long)(CLIENT_REQUEST_TIMEOUT_USEC / USEC_PER_MSEC));
        } else {
                long timeout_ms = (long)(timeout_usec / USEC_PER_MSEC);
                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->error);
        if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        } else if (strcmp(method, "GET") != 0) {
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        }

        CURLcode cc = curl_easy_perform(c);
        /* The error buffer lives in r, which the caller may copy. */
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        switch (cc) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT: {
                long os_errno = 0;
                curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
                r->connect_failed = true;
                return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
        }
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_WRITE_ERROR:
                if (sink->line_error < 0)
                        return sink->line_error;
                return sink->too_large ? -EFBIG : -ENOMEM;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
                /* The answer had begun; liid went away in the middle. */
                if (r->status != 0) {
                        if (!r->error[0])
                                snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
                        return -ECONNRESET;
                }
                break;
        default:
                break;
        }
        if (!r->error[0])
                snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
        return -EIO;
}

/* Only the failure details are handed back. */
static void reply_failed(struct client_reply *r, struct client_reply *ret)
{
        struct client_reply failed = {.connect_failed = r->connect_failed, .status = r->status};
        memcpy(failed.error, r->error, sizeof failed.error);
        client_reply_done(r);
        *ret = failed;
}

int client_request(struct ctl *ctl, const char *method, const char *route, uint64_t timeout_usec,
                   struct client_reply *ret)
{
        struct client_reply r = {0};
        struct sink sink = {.reply = &r};
        int err = perform(ctl, method, route, timeout_usec, &sink);
        if (err == -ECONNRESET)
                err = -EIO;
        if (err < 0) {
                reply_failed(&r, ret);
                return err;
        }
        r.doc = parse_json(r.body, r.size);
        *ret = r;
        return 0;
}

int client_stream(struct ctl *ctl, const char *route, uint64_t timeout_usec,
                  int (*on_line)(char *line, size_t len, void *userdata), void *userdata,
                  struct client_reply *ret)
{
        struct client_reply r = {0};
        struct sink sink = {.reply = &r, .on_line = on_line, .userdata = userdata};
        int err = perform(ctl, "GET", route, timeout_usec, &sink);
        /* A last line without its newline is still a line. */
        if (err == 0 && sink.line_len > 0 && r.status >= 200 && r.status <= 299)
                err = on_line(sink.line, sink.line_len, userdata);
        free(sink.line);
        if (err < 0) {
                reply_failed(&r, ret);
                return err;
        }
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
