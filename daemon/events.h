/* Events: what liid did and why, kept in a bounded ring (the last
 * EVENTS_KEEP) for GET /v1/events, handed to followers as they happen
 * (GET /v1/events?follow=1 streams them as NDJSON), and logged to the
 * journal with LII_EVENT, LII_SERVICE and LII_GENERATION fields. */
#pragma once

#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>

#include "lii-proto.h"

#define EVENTS_KEEP       1024
#define EVENT_MESSAGE_MAX 1024

struct event {
        uint64_t seq;        /* 1, 2, 3 … within one run of liid */
        uint64_t time_usec;  /* realtime */
        const char *type;    /* EVENT_* of lii-proto.h */
        const char *service; /* NULL for node-wide events */
        uint64_t generation; /* 0 when none */
        const char *message; /* one human sentence */
};

struct events;
struct events_sub;

int events_new(struct events **ret);
/* Drops subscribers without calling them. Accepts NULL. */
struct events *events_free(struct events *ev);

/* Records an event, logs it and hands it to every subscriber, in order. */
void events_emit(struct events *ev, const char *type, const char *service, uint64_t generation,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Calls cb for each kept event with seq > after, oldest first. */
void events_foreach(struct events *ev, uint64_t after,
                    void (*cb)(const struct event *e, void *userdata), void *userdata);

/* The oldest kept event with seq > after, or NULL when there is none. Kept
 * events have consecutive seqs, so a result whose seq is not after + 1
 * means that the events in between were dropped from the ring: a reader
 * that walks the ring with this (a follower of GET /v1/events) fell behind.
 * The event is valid until the next events_emit(). */
const struct event *events_next(const struct events *ev, uint64_t after);
/* The seq of the newest event, 0 before the first. */
uint64_t events_last_seq(const struct events *ev);

/* Subscribers see every event emitted after they subscribed; the event is
 * valid only during the call. A subscriber may unsubscribe itself (or
 * others) from inside its callback. */
struct events_sub *events_subscribe(struct events *ev,
                                    void (*cb)(const struct event *e, void *userdata),
                                    void *userdata);
void events_unsubscribe(struct events_sub *sub);

/* {"seq":…,"time":"RFC 3339","type":…,"service":…|null,"generation":…|null,"message":…} */
json_object *event_to_json(const struct event *e);
