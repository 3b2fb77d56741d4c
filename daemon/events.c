/* The event ring, its subscribers and the journal line of each event; see
 * events.h. Events are kept whole (struct and strings in one allocation)
 * so that dropping the oldest is one free(). */
#include "events.h"

#include <string.h>

#include "lii-proto.h"
#include "log.h"

struct record {
        struct event e;
        /* type, service and message, each NUL-terminated; e points here. */
        char strings[];
};

struct events_sub {
        struct events *ev;
        struct events_sub *prev, *next;
        void (*cb)(const struct event *e, void *userdata);
        void *userdata;
        /* The last seq when it subscribed: it sees only later events. */
        uint64_t after;
        /* Unsubscribed while events were being handed out; unlinked and
         * freed once that is over, so that the walk stays valid. */
        bool dead;
};

struct events {
        struct record *ring[EVENTS_KEEP];
        size_t first; /* index of the oldest kept event */
        size_t n;
        uint64_t last_seq;

        struct events_sub *subs_head, *subs_tail;
        /* How deep events_emit() is nested (a subscriber may emit). */
        unsigned dispatching;
        /* Events dropped from the ring while a subscriber may still hold
         * them; freed when the outermost dispatch ends. */
        struct record **graveyard;
        size_t n_graveyard;
};

int events_new(struct events **ret)
{
        *ret = xcalloc(1, sizeof **ret);
        return 0;
}

static void sub_unlink(struct events_sub *s)
{
        struct events *ev = s->ev;
        if (s->prev)
                s->prev->next = s->next;
        else
                ev->subs_head = s->next;
        if (s->next)
                s->next->prev = s->prev;
        else
                ev->subs_tail = s->prev;
        free(s);
}

struct events *events_free(struct events *ev)
{
        if (!ev)
                return NULL;
        while (ev->subs_head)
                sub_unlink(ev->subs_head);
        for (size_t i = 0; i < ev->n; i++)
                free(ev->ring[(ev->first + i) % EVENTS_KEEP]);
        for (size_t i = 0; i < ev->n_graveyard; i++)
                free(ev->graveyard[i]);
        free(ev->graveyard);
        free(ev);
        return NULL;
}

static struct record *record_new(uint64_t seq, const char *type, const char *service,
                                 uint64_t generation, const char *message)
{
        size_t tlen = strlen(type);
        size_t slen = service ? strlen(service) : 0;
        /* Cut in whole characters: a truncated message is still valid
         * JSON text. */
        size_t mlen = utf8_cut(message, EVENT_MESSAGE_MAX - 1);

        struct record *r = xcalloc(1, sizeof *r + tlen + 1 + slen + 1 + mlen + 1);
        char *p = r->strings;
        memcpy(p, type, tlen);
        r->e.type = p;
        p += tlen + 1;
        if (service) {
                memcpy(p, service, slen);
                r->e.service = p;
        }
        p += slen + 1;
        memcpy(p, message, mlen);
        r->e.message = p;

        r->e.seq = seq;
        r->e.time_usec = now_realtime_usec();
        r->e.generation = generation;
        return r;
}

static void ring_push(struct events *ev, struct record *r)
{
        if (ev->n == EVENTS_KEEP) {
                struct record *old = ev->ring[ev->first];
                ev->first = (ev->first + 1) % EVENTS_KEEP;
                ev->n--;
                if (ev->dispatching > 0) {
                        /* A subscriber further up the stack may still be
                         * looking at it. */
                        struct record **g =
                            realloc(ev->graveyard, (ev->n_graveyard + 1) * sizeof *g);
                        if (!g)
                                abort();
                        ev->graveyard = g;
                        ev->graveyard[ev->n_graveyard++] = old;
                } else {
                        free(old);
                }
        }
        ev->ring[(ev->first + ev->n) % EVENTS_KEEP] = r;
        ev->n++;
}

static void dispatch_done(struct events *ev)
{
        if (--ev->dispatching > 0)
                return;
        struct events_sub *s = ev->subs_head;
        while (s) {
                struct events_sub *next = s->next;
                if (s->dead)
                        sub_unlink(s);
                s = next;
        }
        for (size_t i = 0; i < ev->n_graveyard; i++)
                free(ev->graveyard[i]);
        free(ev->graveyard);
        ev->graveyard = NULL;
        ev->n_graveyard = 0;
}

void events_emit(struct events *ev, const char *type, const char *service, uint64_t generation,
                 const char *fmt, ...)
{
        char message[EVENT_MESSAGE_MAX * 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        /* Events are served as JSON and NDJSON: strict UTF-8 only, whatever
         * went into the message. */
        _cleanup_free_ char *text = utf8_escape_invalid(message);

        struct record *r = record_new(++ev->last_seq, type, service, generation, text);
        ring_push(ev, r);
        /* In the journal with LII_EVENT=<type>, LII_SERVICE and
         * LII_GENERATION, so that journalctl can select events. */
        log_event(r->e.type, r->e.service, generation, r->e.message);

        /* Subscribers added meanwhile are appended and skip this event by
         * their seq; removed ones are only marked until the walk ends. */
        ev->dispatching++;
        for (struct events_sub *s = ev->subs_head; s; s = s->next)
                if (!s->dead && r->e.seq > s->after)
                        s->cb(&r->e, s->userdata);
        dispatch_done(ev);
}

void events_foreach(struct events *ev, uint64_t after,
                    void (*cb)(const struct event *e, void *userdata), void *userdata)
{
        for (const struct event *e = events_next(ev, after); e; e = events_next(ev, e->seq))
                cb(e, userdata);
}

const struct event *events_next(const struct events *ev, uint64_t after)
{
        if (ev->n == 0 || after >= ev->last_seq)
                return NULL;
        /* Kept events have consecutive numbers, so the index follows from
         * the seq. */
        uint64_t oldest = ev->last_seq - ev->n + 1;
        uint64_t skip = after < oldest ? 0 : after - oldest + 1;
        return &ev->ring[(ev->first + skip) % EVENTS_KEEP]->e;
}

uint64_t events_last_seq(const struct events *ev)
{
        return ev->last_seq;
}

struct events_sub *events_subscribe(struct events *ev,
                                    void (*cb)(const struct event *e, void *userdata),
                                    void *userdata)
{
        struct events_sub *s = xcalloc(1, sizeof *s);
        s->ev = ev;
        s->cb = cb;
        s->userdata = userdata;
        s->after = ev->last_seq;
        s->prev = ev->subs_tail;
        if (ev->subs_tail)
                ev->subs_tail->next = s;
        else
                ev->subs_head = s;
        ev->subs_tail = s;
        return s;
}

void events_unsubscribe(struct events_sub *sub)
{
        if (!sub)
                return;
        if (sub->ev->dispatching > 0)
                sub->dead = true;
        else
                sub_unlink(sub);
}

json_object *event_to_json(const struct event *e)
{
        char time[RFC3339_MAX];
        format_rfc3339(e->time_usec, time);
        json_object *o = json_object_new_object();
        json_object_object_add(o, LII_F_SEQ, json_object_new_uint64(e->seq));
        json_object_object_add(o, LII_F_TIME, json_object_new_string(time));
        json_object_object_add(o, LII_F_TIME_USEC, json_object_new_uint64(e->time_usec));
        json_object_object_add(o, LII_F_TYPE, json_object_new_string(e->type));
        json_object_object_add(o, LII_F_SERVICE,
                               e->service ? json_object_new_string(e->service) : NULL);
        json_object_object_add(o, LII_F_GENERATION,
                               e->generation ? json_object_new_uint64(e->generation) : NULL);
        json_object_object_add(o, LII_F_MESSAGE, json_object_new_string(e->message));
        return o;
}
