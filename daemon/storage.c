/* The state folder's condition and the timer that retries it; see
 * storage.h. */
#include "storage.h"

#include <errno.h>
#include <stdlib.h>

#include "lii-proto.h"
#include "util.h"

struct storage {
        struct events *events;
        storage_retry_cb cb;
        void *userdata;
        uint64_t first_delay_usec, max_delay_usec;
        uv_timer_t timer;
        char *error;             /* the latest failure; NULL while writes succeed */
        uint64_t since_usec;     /* realtime: when the failures began */
        uint64_t delay_usec;     /* before the next attempt */
        uint64_t recovered_usec; /* monotonic: when the last condition ended; 0: never */
};

int storage_new(uv_loop_t *loop, struct events *events, const struct storage_options *opts,
                storage_retry_cb cb, void *userdata, struct storage **ret)
{
        struct storage *st = xcalloc(1, sizeof *st);
        st->events = events;
        st->cb = cb;
        st->userdata = userdata;
        st->first_delay_usec = opts->first_delay_usec;
        st->max_delay_usec = opts->max_delay_usec;
        st->delay_usec = st->first_delay_usec;
        uv_timer_init(loop, &st->timer);
        st->timer.data = st;
        *ret = st;
        return 0;
}

static void on_closed(uv_handle_t *h)
{
        struct storage *st = h->data;
        free(st->error);
        free(st);
}

struct storage *storage_free(struct storage *st)
{
        if (st)
                uv_close((uv_handle_t *)&st->timer, on_closed);
        return NULL;
}

static void on_timer(uv_timer_t *t)
{
        struct storage *st = t->data;
        st->delay_usec =
            st->delay_usec > st->max_delay_usec / 2 ? st->max_delay_usec : st->delay_usec * 2;
        st->cb(st, st->userdata);
}

static void arm(struct storage *st)
{
        if (!uv_is_active((uv_handle_t *)&st->timer))
                uv_timer_start(&st->timer, on_timer, st->delay_usec / USEC_PER_MSEC, 0);
}

void storage_failed(struct storage *st, const char *error)
{
        if (!st->error) {
                /* A condition that comes back soon after it ended goes on
                 * with the delay it had reached, so that a disk with room
                 * for the small state files but not for a download is not
                 * tried every second. */
                if (!st->recovered_usec ||
                    now_monotonic_usec() - st->recovered_usec > st->max_delay_usec)
                        st->delay_usec = st->first_delay_usec;
                st->since_usec = now_realtime_usec();
                events_emit(st->events, EVENT_STORAGE_FAILING, NULL, 0,
                            "%s; changes wait until the state folder takes writes again", error);
        }
        free(st->error);
        st->error = xstrdup(error);
        arm(st);
}

void storage_retry_later(struct storage *st)
{
        if (st->error)
                arm(st);
}

void storage_recovered(struct storage *st)
{
        if (!st->error)
                return;
        char took[32];
        format_duration(now_realtime_usec() - st->since_usec, took, sizeof took);
        events_emit(st->events, EVENT_STORAGE_RECOVERED, NULL, 0,
                    "the state folder takes writes again, after %s; changes go on", took);
        free(st->error);
        st->error = NULL;
        st->since_usec = 0;
        st->recovered_usec = now_monotonic_usec();
        uv_timer_stop(&st->timer);
}

void storage_retry_now(struct storage *st)
{
        if (st->error)
                uv_timer_start(&st->timer, on_timer, 0, 0);
}

bool storage_failing(const struct storage *st)
{
        return st->error != NULL;
}

json_object *storage_to_json(const struct storage *st)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_ERROR,
                               st->error ? json_object_new_string(st->error) : NULL);
        json_object *since = NULL;
        if (st->error) {
                char buf[RFC3339_MAX];
                format_rfc3339(st->since_usec, buf);
                since = json_object_new_string(buf);
        }
        json_object_object_add(o, LII_F_SINCE, since);
        return o;
}

bool storage_is_full_error(int r)
{
        return r == -ENOSPC || r == -EDQUOT || r == -EROFS;
}
