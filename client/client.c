/* liictl's transport: one HTTP request to liid over its Unix socket with
 * libcurl, the reply capped and parsed (or, as it arrives, cut into lines
 * for the event stream or into the members of one large member for the
 * status), and the mapping of failures and API errors to liictl's exit
 * codes. */
#include "liictl.h"

#include <limits.h>
#include <string.h>

#include "lii-version.h"

/* The incremental reader of client_request_items(). json-c parses every
 * key and every value; this only walks the punctuation between them
 * ({ : , }) two levels deep, so that the members of one large member (the
 * services of a status document) can be handed on and freed one by one
 * instead of all living at once in one tree, whose allocations are most
 * of what liictl costs at many services. */
enum split_state {
        SPLIT_OPEN,       /* before the document's { */
        SPLIT_KEY_OR_END, /* after a {: a key or } */
        SPLIT_KEY,        /* after a ,: a key */
        SPLIT_COLON,      /* after a key */
        SPLIT_VALUE,      /* after a : */
        SPLIT_NEXT,       /* after a value: , or } */
        SPLIT_DONE,       /* after the document's }: only whitespace */
};

struct split {
        const char *key; /* the member whose object is split */
        int (*on_item)(const char *key, json_object *value, void *userdata);
        void *userdata;
        json_tokener *tok;
        bool in_token;  /* tok has begun a key or a value */
        unsigned depth; /* 1 in the document, 2 in the split member */
        enum split_state state;
        char *member;     /* the key of the value being read */
        json_object *doc; /* the document so far, without the split member */
        int error;        /* -EBADMSG: not a JSON object; or what on_item returned */
};

struct sink {
        struct client_reply *reply;
        bool too_large;
        size_t body_cap; /* what reply->body has room for */
        size_t received; /* all bytes of the body, kept or not */
        /* Set for client_stream(): a 2xx body goes to on_line, line by
         * line, with the incomplete last line kept in line. */
        CURL *curl;
        int (*on_line)(char *line, size_t len, void *userdata);
        void *userdata;
        char *line;
        size_t line_len;
        /* Set for client_request_items(): a 2xx body goes to split, and
         * is kept in reply->body only with keep_body. */
        struct split *split;
        bool keep_body;
        /* What on_line or on_item returned when it stopped the transfer. */
        int stop_error;
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
                        s->stop_error = r;
                        return 0;
                }
        }
        return len;
}

/* A key or value that json-c has finished. */
static int split_token(struct split *sp, json_object *o)
{
        if (sp->state != SPLIT_VALUE) {
                bool is_key = json_object_is_type(o, json_type_string);
                if (is_key)
                        sp->member = xstrdup(json_object_get_string(o));
                json_object_put(o);
                if (!is_key)
                        return -EBADMSG;
                sp->state = SPLIT_COLON;
                return 0;
        }
        int r = 0;
        if (sp->depth == 1) {
                /* Takes o. */
                if (json_object_object_add(sp->doc, sp->member, o) < 0)
                        return -ENOMEM;
        } else {
                if (sp->on_item)
                        r = sp->on_item(sp->member, o, sp->userdata);
                json_object_put(o);
        }
        free(sp->member);
        sp->member = NULL;
        sp->state = SPLIT_NEXT;
        return r;
}

static void split_close(struct split *sp)
{
        sp->depth--;
        sp->state = sp->depth == 0 ? SPLIT_DONE : SPLIT_NEXT;
}

/* One character of punctuation (not whitespace); false if it has no
 * place there. Sets in_token when a key or value begins with it. */
static bool split_punct(struct split *sp, char ch)
{
        switch (sp->state) {
        case SPLIT_OPEN:
                if (ch != '{')
                        return false;
                sp->depth = 1;
                sp->state = SPLIT_KEY_OR_END;
                return true;
        case SPLIT_KEY_OR_END:
        case SPLIT_KEY:
                /* An empty object closes at once; after a comma a key must
                 * follow. */
                if (ch == '}' && sp->state == SPLIT_KEY_OR_END) {
                        split_close(sp);
                        return true;
                }
                if (ch != '"')
                        return false;
                sp->in_token = true;
                return true;
        case SPLIT_COLON:
                if (ch != ':')
                        return false;
                sp->state = SPLIT_VALUE;
                return true;
        case SPLIT_VALUE:
                if (sp->depth == 1 && ch == '{' && strcmp(sp->member, sp->key) == 0) {
                        free(sp->member);
                        sp->member = NULL;
                        sp->depth = 2;
                        sp->state = SPLIT_KEY_OR_END;
                        return true;
                }
                sp->in_token = true;
                return true;
        case SPLIT_NEXT:
                if (ch == ',') {
                        sp->state = SPLIT_KEY;
                        return true;
                }
                if (ch != '}')
                        return false;
                split_close(sp);
                return true;
        case SPLIT_DONE:
        default:
                return false;
        }
}

/* Reads the next piece of the body; sets sp->error when the body cannot
 * be a JSON object, or on_item wants no more. */
static void split_feed(struct split *sp, const char *p, size_t len)
{
        size_t i = 0;
        while (i < len && sp->error == 0) {
                if (!sp->in_token) {
                        char ch = p[i];
                        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
                                i++;
                                continue;
                        }
                        if (!split_punct(sp, ch)) {
                                sp->error = -EBADMSG;
                                return;
                        }
                        /* A key or value starts with this character. */
                        if (!sp->in_token)
                                i++;
                        continue;
                }
                int n = len - i > INT_MAX ? INT_MAX : (int)(len - i);
                json_object *o = json_tokener_parse_ex(sp->tok, p + i, n);
                enum json_tokener_error e = json_tokener_get_error(sp->tok);
                if (e == json_tokener_continue) {
                        i += (size_t)n;
                        continue;
                }
                size_t used = json_tokener_get_parse_end(sp->tok);
                if (e != json_tokener_success || used == 0) {
                        json_object_put(o);
                        sp->error = -EBADMSG;
                        return;
                }
                i += used;
                json_tokener_reset(sp->tok);
                sp->in_token = false;
                sp->error = split_token(sp, o);
        }
}

/* Room for the whole body at once when liid said how large it is, so that
 * a large answer is not copied again and again as it grows. */
static bool body_reserve(struct sink *s, size_t more)
{
        struct client_reply *r = s->reply;
        if (r->size + more < s->body_cap)
                return true;
        size_t cap = s->body_cap ? s->body_cap * 2 : 16 * 1024;
        curl_off_t declared = -1;
        if (!r->body &&
            curl_easy_getinfo(s->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &declared) == CURLE_OK &&
            declared > 0 && (uint64_t)declared <= CLIENT_REPLY_MAX)
                cap = (size_t)declared + 1;
        if (cap < r->size + more + 1)
                cap = r->size + more + 1;
        char *b = realloc(r->body, cap);
        if (!b)
                return false;
        r->body = b;
        s->body_cap = cap;
        return true;
}

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
        struct sink *s = userdata;
        struct client_reply *r = s->reply;
        size_t len = size * n;
        bool is_2xx = false;
        if (s->on_line || s->split) {
                long status = 0;
                curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
                is_2xx = status >= 200 && status <= 299;
        }
        if (s->on_line && is_2xx)
                return on_lines(s, p, len);
        if (len > CLIENT_REPLY_MAX - s->received) {
                s->too_large = true;
                return 0; /* makes curl stop with CURLE_WRITE_ERROR */
        }
        s->received += len;
        if (s->split && is_2xx) {
                split_feed(s->split, p, len);
                /* Once on_item says stop, there is no point in reading on;
                 * a body that is not JSON is still read to its end, as
                 * client_request() does, so that it is told apart from a
                 * broken connection. */
                if (s->split->error < 0 && s->split->error != -EBADMSG) {
                        s->stop_error = s->split->error;
                        return 0;
                }
                if (!s->keep_body)
                        return len;
        }
        if (!body_reserve(s, len))
                return 0;
        memcpy(r->body + r->size, p, len);
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
                if (sink->stop_error < 0)
                        return sink->stop_error;
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

int client_request_items(struct ctl *ctl, const char *route, const char *key, bool keep_body,
                         int (*on_item)(const char *key, json_object *value, void *userdata),
                         void *userdata, struct client_reply *ret)
{
        struct client_reply r = {0};
        struct split sp = {.key = key, .on_item = on_item, .userdata = userdata};
        sp.tok = json_tokener_new();
        sp.doc = json_object_new_object();
        struct sink sink = {.reply = &r, .split = &sp, .keep_body = keep_body};
        int err = sp.tok && sp.doc ? perform(ctl, "GET", route, CLIENT_REQUEST_TIMEOUT_USEC, &sink)
                                   : -ENOMEM;
        if (err == -ECONNRESET)
                err = -EIO;
        if (err == 0 && r.status >= 200 && r.status <= 299) {
                if (sp.state == SPLIT_DONE && sp.error == 0)
                        r.doc = TAKE_PTR(sp.doc);
        } else if (err == 0) {
                r.doc = parse_json(r.body, r.size);
        }
        json_tokener_free(sp.tok);
        json_object_put(sp.doc);
        free(sp.member);
        if (err < 0) {
                reply_failed(&r, ret);
                return err;
        }
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
