/* liictl's transport: one HTTP/1.1 request to liid per connection, over
 * its Unix socket, with blocking I/O bounded by poll() and a deadline; the
 * answer framed by http-parser (a Content-Length or a chunked body), capped
 * and parsed once with json-c, or for the event stream cut into lines as
 * it arrives; and the mapping of failures and API errors to liictl's exit
 * codes. A thin client needs no more, and starts without the dozens of
 * shared objects an HTTP library with TLS brings along. */
#include "liictl.h"

#include <http_parser.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lii-version.h"

/* What one read from the socket may bring. liid's status at hundreds of
 * services is hundreds of KiB: large reads keep the system calls few. */
#define READ_CHUNK ((size_t)64 << 10)

/* One request and its answer. */
struct exchange {
        struct client_reply *reply;
        http_parser parser;
        bool headers_done; /* the status line and headers are in */
        bool complete;     /* the answer ended where its framing says */
        bool too_large;
        size_t body_cap; /* what reply->body has room for */
        /* Set for client_stream(): a 2xx body goes to on_line, line by
         * line, with the incomplete last line kept in line. */
        int (*on_line)(char *line, size_t len, void *userdata);
        void *userdata;
        char *line;
        size_t line_len;
        /* What on_line returned when it stopped the transfer. */
        int stop_error;
};

static bool is_2xx(int status)
{
        return status >= 200 && status <= 299;
}

static bool lines_wanted(const struct exchange *x)
{
        return x->on_line && is_2xx(x->reply->status);
}

static bool body_reserve(struct exchange *x, size_t cap)
{
        if (cap <= x->body_cap)
                return true;
        char *b = realloc(x->reply->body, cap);
        if (!b)
                return false;
        x->reply->body = b;
        x->body_cap = cap;
        return true;
}

static int on_headers_complete(http_parser *p)
{
        struct exchange *x = p->data;
        x->reply->status = (int)p->status_code;
        x->headers_done = true;
        if (lines_wanted(x))
                return 0;
        /* Room for the whole body at once when liid said how large it is,
         * so that a large answer is not copied again and again as it
         * grows. A chunked answer has no length. */
        bool sized = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
        if (sized && p->content_length > CLIENT_REPLY_MAX) {
                x->too_large = true;
                return -1;
        }
        if (sized && !body_reserve(x, (size_t)p->content_length + 1))
                return -1;
        return 0;
}

/* Hands every complete line of the data to on_line; keeps the rest. */
static int on_lines(struct exchange *x, const char *p, size_t len)
{
        while (len > 0) {
                const char *nl = memchr(p, '\n', len);
                size_t take = nl ? (size_t)(nl - p) : len;
                if (take > CLIENT_LINE_MAX - x->line_len) {
                        x->too_large = true;
                        return -1;
                }
                if (!x->line) {
                        x->line = malloc(CLIENT_LINE_MAX + 1);
                        if (!x->line)
                                return -1;
                }
                memcpy(x->line + x->line_len, p, take);
                x->line_len += take;
                x->line[x->line_len] = '\0';
                if (!nl)
                        break;
                p += take + 1;
                len -= take + 1;
                size_t line_len = x->line_len;
                x->line_len = 0;
                int r = x->on_line(x->line, line_len, x->userdata);
                if (r < 0) {
                        x->stop_error = r;
                        return -1;
                }
        }
        return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
        struct exchange *x = p->data;
        if (lines_wanted(x))
                return on_lines(x, at, len);
        struct client_reply *r = x->reply;
        if (len > CLIENT_REPLY_MAX - r->size) {
                x->too_large = true;
                return -1;
        }
        if (r->size + len + 1 > x->body_cap) {
                size_t cap = x->body_cap ? x->body_cap * 2 : 16 * 1024;
                if (cap < r->size + len + 1)
                        cap = r->size + len + 1;
                if (!body_reserve(x, cap))
                        return -1;
        }
        memcpy(r->body + r->size, at, len);
        r->size += len;
        r->body[r->size] = '\0';
        return 0;
}

static int on_message_complete(http_parser *p)
{
        struct exchange *x = p->data;
        x->complete = true;
        /* One answer per connection: whatever follows is not read. */
        http_parser_pause(p, 1);
        return 0;
}

static const http_parser_settings parser_settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* poll()'s timeout for what is left until deadline, rounded up so that
 * it never spins on a last partial millisecond. */
static int poll_timeout(uint64_t deadline)
{
        if (deadline == USEC_INFINITY)
                return -1;
        uint64_t now = now_monotonic_usec();
        if (now >= deadline)
                return 0;
        uint64_t ms = (deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC;
        return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Waits until fd is ready for events, or the deadline: -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = events};
                int n = poll(&pfd, 1, poll_timeout(deadline));
                if (n > 0)
                        return 0;
                if (n == 0)
                        return -ETIMEDOUT;
                if (errno != EINTR)
                        return -errno;
        }
}

/* Connects to liid's socket. Takes at most until deadline when liid's
 * listening queue is full (the kernel then says EAGAIN). */
static int connect_socket(const char *path, uint64_t deadline, struct client_reply *r)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len = strlen(path);
        r->connect_failed = true;
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A zero SO_SNDTIMEO would mean no limit at all. */
        int timeout_ms = poll_timeout(deadline);
        if (timeout_ms == 0)
                timeout_ms = 1;
        if (timeout_ms > 0) {
                struct timeval tv = {.tv_sec = timeout_ms / 1000,
                                     .tv_usec = (timeout_ms % 1000) * 1000};
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
                        return -errno;
        }
        if (connect(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + len) < 0)
                return errno == EAGAIN ? -ETIMEDOUT : -errno;
        r->connect_failed = false;
        return TAKE_FD(fd);
}

/* Sends the whole request. liid may answer and close before it has read
 * it (it refuses a connection over its limits that way), so a peer that
 * went away is no error here: its answer is read next. */
static int send_request(int fd, const char *req, size_t len, uint64_t deadline)
{
        while (len > 0) {
                ssize_t n = send(fd, req, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n >= 0) {
                        req += n;
                        len -= (size_t)n;
                        continue;
                }
                if (errno == EPIPE || errno == ECONNRESET)
                        return 0;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                int r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Reads and frames the answer until it is complete. */
static int read_answer(int fd, struct exchange *x, uint64_t deadline)
{
        struct client_reply *r = x->reply;
        _cleanup_free_ char *buf = malloc(READ_CHUNK);
        if (!buf)
                return -ENOMEM;
        while (!x->complete) {
                ssize_t n = recv(fd, buf, READ_CHUNK, MSG_DONTWAIT);
                if (n < 0 && errno == EAGAIN) {
                        int k = wait_fd(fd, POLLIN, deadline);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != ECONNRESET)
                        return -errno;
                /* An end of the connection (0, or reset by a peer that
                 * closed with our request unread) tells the parser that a
                 * body without a length is over. */
                size_t len = n < 0 ? 0 : (size_t)n;
                http_parser_execute(&x->parser, &parser_settings, buf, len);
                if (x->complete)
                        break;
                if (len == 0 && x->headers_done) {
                        snprintf(r->error, sizeof r->error,
                                 "liid closed the connection before its answer ended");
                        return -ECONNRESET;
                }
                if (len == 0) {
                        snprintf(r->error, sizeof r->error,
                                 "liid closed the connection without an answer");
                        return -EIO;
                }
                enum http_errno e = HTTP_PARSER_ERRNO(&x->parser);
                if (e == HPE_OK)
                        continue;
                if (x->stop_error < 0)
                        return x->stop_error;
                if (x->too_large)
                        return -EFBIG;
                if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete)
                        return -ENOMEM;
                snprintf(r->error, sizeof r->error, "liid's answer is not HTTP: %s",
                         http_errno_description(e));
                return -EIO;
        }
        return 0;
}

/* The request both client_request() and client_stream() send; a
 * timeout_usec of USEC_INFINITY sets no limit on the answer, only on
 * connecting and sending. */
static int perform(struct ctl *ctl, const char *method, const char *route, uint64_t timeout_usec,
                   struct exchange *x)
{
        uint64_t start = now_monotonic_usec();
        uint64_t limit = timeout_usec == USEC_INFINITY ? CLIENT_REQUEST_TIMEOUT_USEC : timeout_usec;
        uint64_t deadline = start + (limit > 0 ? limit : USEC_PER_MSEC);

        _cleanup_close_ int fd = connect_socket(ctl->socket_path, deadline, x->reply);
        if (fd < 0)
                return fd;

        /* A POST carries no body; saying so lets liid answer at once. */
        bool post = strcmp(method, "POST") == 0;
        _cleanup_free_ char *req = xasprintf("%s %s HTTP/1.1\r\n"
                                             "Host: lii\r\n"
                                             "User-Agent: liictl/" LII_VERSION "\r\n"
                                             "Accept: */*\r\n"
                                             "%s\r\n",
                                             method, route, post ? "Content-Length: 0\r\n" : "");
        int r = send_request(fd, req, strlen(req), deadline);
        if (r < 0)
                return r;

        http_parser_init(&x->parser, HTTP_RESPONSE);
        x->parser.data = x;
        return read_answer(fd, x, timeout_usec == USEC_INFINITY ? USEC_INFINITY : deadline);
}

/* One JSON value and nothing after it but whitespace. Strict, as liid
 * writes standard JSON: a trailing comma is a broken answer. */
static json_object *parse_json(const char *s, size_t size)
{
        if (size == 0 || size > INT32_MAX)
                return NULL;
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *doc = json_tokener_parse_ex(tok, s, (int)size);
        size_t end = json_tokener_get_parse_end(tok);
        bool ok = doc && json_tokener_get_error(tok) == json_tokener_success &&
                  strspn(s + end, " \t\r\n") == size - end;
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
        struct exchange x = {.reply = &r};
        int err = perform(ctl, method, route, timeout_usec, &x);
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
        struct exchange x = {.reply = &r, .on_line = on_line, .userdata = userdata};
        int err = perform(ctl, "GET", route, timeout_usec, &x);
        /* A last line without its newline is still a line. */
        if (err == 0 && x.line_len > 0 && lines_wanted(&x))
                err = on_line(x.line, x.line_len, userdata);
        free(x.line);
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
        else if (is_2xx(reply->status))
                fprintf(stderr, "liictl: liid sent a reply that is not JSON\n");
        else
                fprintf(stderr, "liictl: liid answered HTTP %d\n", reply->status);
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
