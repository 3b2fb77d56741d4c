/* GET /v1/events: the events the ring keeps, as NDJSON, or with follow=1
 * a stream that goes on with every new event. A follower holds one of the
 * API's connections for as long as its client likes, so followers get
 * only half of them. */
#include "api-internal.h"

#include <json-c/json.h>
#include <string.h>

#include "events.h"
#include "lii-proto.h"
#include "log.h"
#include "util.h"

/* Followers hold a connection each for as long as they like, so they get
 * only half of the slots and the other requests always find one. */
#define API_FOLLOWERS_MAX (API_LIMIT_CONNECTIONS / 2)
/* What one call of a follower's content reader may hand to MHD. */
#define API_FOLLOW_BLOCK ((size_t)16 * 1024)

/* A client of GET /v1/events?follow=1. It holds no copy of the events:
 * the ring is the backlog, and the follower only remembers how far it got.
 * While it has sent everything the connection is suspended, so MHD neither
 * calls it nor times it out, and a new event resumes it. A follower so
 * slow that the ring dropped events it had not sent yet is cut off: its
 * client sees the stream break instead of silently missing events. It is
 * owned by its MHD response and freed with it. */
struct follower {
        struct api *api;
        struct follower *prev, *next;
        struct MHD_Connection *conn;
        struct events_sub *sub;
        /* While suspended, MHD does not watch the socket, so this does:
         * a client that goes away frees its slot without waiting for an
         * event. Allocated per suspension, freed in its close callback. */
        uv_poll_t *hangup;
        uint64_t cursor;            /* seq of the last event put into line */
        char *line;                 /* that event's NDJSON line… */
        size_t line_len, line_sent; /* …and how much of it MHD has */
        bool suspended;
        bool counted; /* holds one of the API_FOLLOWERS_MAX slots */
        bool gone;    /* the client hung up */
        bool lagged;  /* fell behind the ring */
        bool ending;  /* liid stops serving */
};

/* One NDJSON line: compact JSON and a newline. */
static char *event_line(const struct event *e)
{
        _cleanup_json_ json_object *o = event_to_json(e);
        return xasprintf("%s\n", json_object_to_json_string_ext(
                                     o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void on_hangup_closed(uv_handle_t *h)
{
        free(h);
}

static void follower_unwatch(struct follower *f)
{
        if (!f->hangup)
                return;
        /* uv_close() takes the fd out of libuv's epoll set at once, while
         * MHD still has the socket open. */
        uv_close((uv_handle_t *)f->hangup, on_hangup_closed);
        f->hangup = NULL;
}

/* Hands the connection back to MHD and makes sure MHD runs soon: resuming
 * only queues the connection, and this may be called from inside one of
 * MHD's own callbacks (an action that emits an event), where MHD_run()
 * must not be called. */
static void follower_resume(struct follower *f)
{
        if (!f->suspended)
                return;
        follower_unwatch(f);
        f->suspended = false;
        MHD_resume_connection(f->conn);
        api_kick(f->api);
}

static void follower_uncount(struct follower *f)
{
        if (!f->counted)
                return;
        f->counted = false;
        f->api->n_followers--;
}

/* The slot is given back at once: MHD closes the connection only when it
 * runs next, and a client that reconnects right away must find it free. */
static void on_follower_hangup(uv_poll_t *h, int status, int events)
{
        struct follower *f = h->data;
        f->gone = true;
        follower_uncount(f);
        follower_resume(f);
}

static void follower_watch(struct follower *f)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(f->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
                return;
        uv_poll_t *h = xcalloc(1, sizeof *h);
        int r = uv_poll_init(f->api->loop, h, ci->connect_fd);
        if (r < 0) {
                free(h);
                log_debug_errno(r, "Cannot watch an idle event follower for hangups: %m");
                return;
        }
        h->data = f;
        r = uv_poll_start(h, UV_DISCONNECT, on_follower_hangup);
        if (r < 0) {
                uv_close((uv_handle_t *)h, on_hangup_closed);
                log_debug_errno(r, "Cannot watch an idle event follower for hangups: %m");
                return;
        }
        f->hangup = h;
}

static void on_follower_event(const struct event *e, void *userdata)
{
        follower_resume(userdata);
}

/* Puts the next event into f->line; false when there is none (or the
 * follower fell behind). */
static bool follower_next_line(struct follower *f)
{
        const struct event *e = events_next(f->api->events, f->cursor);
        if (!e)
                return false;
        if (e->seq != f->cursor + 1) {
                f->lagged = true;
                return false;
        }
        free(f->line);
        f->line = event_line(e);
        f->line_len = strlen(f->line);
        f->line_sent = 0;
        f->cursor = e->seq;
        return true;
}

/* MHD's content reader: whole lines as far as they fit, possibly the rest
 * of a line that did not fit last time. With nothing to send the
 * connection is suspended until an event, a hangup or api_free(). */
static ssize_t follower_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct follower *f = cls;
        size_t n = 0;
        while (n < max && !f->gone && !f->ending) {
                if (f->line_sent == f->line_len && !follower_next_line(f))
                        break;
                size_t k = f->line_len - f->line_sent;
                if (k > max - n)
                        k = max - n;
                memcpy(buf + n, f->line + f->line_sent, k);
                f->line_sent += k;
                n += k;
        }
        if (n > 0)
                return (ssize_t)n;
        if (f->lagged) {
                log_debug("Ending an event stream whose client fell more than %d events "
                          "behind.",
                          EVENTS_KEEP);
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (f->gone || f->ending)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        MHD_suspend_connection(f->conn);
        f->suspended = true;
        follower_watch(f);
        return 0;
}

static void follower_free(void *cls)
{
        struct follower *f = cls;
        struct api *a = f->api;
        events_unsubscribe(f->sub);
        follower_unwatch(f);
        if (f->prev)
                f->prev->next = f->next;
        else
                a->followers = f->next;
        if (f->next)
                f->next->prev = f->prev;
        follower_uncount(f);
        free(f->line);
        free(f);
}

static enum MHD_Result respond_follow(struct api *a, struct MHD_Connection *c, uint64_t after)
{
        if (a->n_followers >= API_FOLLOWERS_MAX)
                return api_respond_error(c, LII_ERR_UNAVAILABLE, "too many followers", NULL);

        struct follower *f = xcalloc(1, sizeof *f);
        f->api = a;
        f->conn = c;
        /* Starting at the oldest kept event is not falling behind: the
         * client asked for what there is. */
        const struct event *first = events_next(a->events, after);
        f->cursor = first ? first->seq - 1 : after;
        f->next = a->followers;
        if (a->followers)
                a->followers->prev = f;
        a->followers = f;
        a->n_followers++;
        f->counted = true;
        f->sub = events_subscribe(a->events, on_follower_event, f);

        /* From here the response owns f and frees it with follower_free(). */
        _cleanup_(mhd_response_destroyp) struct MHD_Response *r = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, API_FOLLOW_BLOCK, follower_read, f, follower_free);
        if (!r) {
                follower_free(f);
                return MHD_NO;
        }
        if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, LII_CONTENT_TYPE_NDJSON) !=
            MHD_YES)
                return MHD_NO;
        return MHD_queue_response(c, MHD_HTTP_OK, r);
}

static void ndjson_add(const struct event *e, void *userdata)
{
        _cleanup_free_ char *line = event_line(e);
        fputs(line, userdata);
}

/* "follow" alone, =1 or =true follows; =0 or =false does not. */
static int parse_follow(struct MHD_Connection *c, bool *ret)
{
        const char *v = NULL;
        size_t len = 0;
        if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, LII_QUERY_FOLLOW,
                                          strlen(LII_QUERY_FOLLOW), &v, &len) != MHD_YES) {
                *ret = false;
                return 0;
        }
        if (!v || strcmp(v, "") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
                *ret = true;
        else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int parse_after(struct MHD_Connection *c, uint64_t *ret)
{
        const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, LII_QUERY_AFTER);
        if (!v) {
                *ret = 0;
                return 0;
        }
        if (strspn(v, "0123456789") != strlen(v) || !*v || strlen(v) > 20)
                return -EINVAL;
        errno = 0;
        unsigned long long n = strtoull(v, NULL, 10);
        if (errno != 0)
                return -EINVAL;
        *ret = n;
        return 0;
}

enum MHD_Result api_events_respond(struct api *a, struct MHD_Connection *c, bool head)
{
        if (!a->events)
                return api_respond_error(c, LII_ERR_NOT_IMPLEMENTED,
                                         "this liid does not implement that yet", NULL);
        uint64_t after;
        if (parse_after(c, &after) < 0)
                return api_respond_error(c, LII_ERR_BAD_REQUEST,
                                         LII_QUERY_AFTER ": not an event sequence number", NULL);
        bool follow;
        if (parse_follow(c, &follow) < 0)
                return api_respond_error(c, LII_ERR_BAD_REQUEST,
                                         LII_QUERY_FOLLOW ": neither 1, true, 0 nor false", NULL);
        /* A HEAD gets the headers of the plain answer, not a stream. */
        if (follow && !head)
                return respond_follow(a, c, after);

        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        if (!f)
                return api_respond_error(c, LII_ERR_INTERNAL, "out of memory", NULL);
        events_foreach(a->events, after, ndjson_add, f);
        if (fclose(f) != 0) {
                free(text);
                return api_respond_error(c, LII_ERR_INTERNAL, "out of memory", NULL);
        }
        return api_respond_text(c, MHD_HTTP_OK, LII_CONTENT_TYPE_NDJSON, text, size);
}

void api_events_end(struct api *a)
{
        for (struct follower *f = a->followers; f; f = f->next) {
                f->ending = true;
                events_unsubscribe(f->sub);
                f->sub = NULL;
                follower_resume(f);
        }
}
