/* Events: what liid did and why, kept in a bounded ring (the last
 * EVENTS_KEEP) for GET /v1/events, handed to followers as they happen
 * (GET /v1/events?follow=1 streams them as NDJSON), and logged to the
 * journal with LII_EVENT, LII_SERVICE and LII_GENERATION fields. */
#pragma once

#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>

#define EVENTS_KEEP       1024
#define EVENT_MESSAGE_MAX 1024

struct event {
        uint64_t seq;        /* 1, 2, 3 … within one run of liid */
        uint64_t time_usec;  /* realtime */
        const char *type;    /* "rollout.started", "rollout.succeeded", … (see below) */
        const char *service; /* NULL for node-wide events */
        uint64_t generation; /* 0 when none */
        const char *message; /* one human sentence */
};

/* Event types (contract of /v1/events; add, never rename). */
#define EVENT_SOURCE_ACCEPTED   "source.accepted"
#define EVENT_SOURCE_REFUSED    "source.refused"
#define EVENT_ROLLOUT_STARTED   "rollout.started"
#define EVENT_ROLLOUT_SUCCEEDED "rollout.succeeded"
#define EVENT_ROLLOUT_FAILED    "rollout.failed"
#define EVENT_ROLLOUT_REVERTED  "rollout.reverted"
#define EVENT_INSTANCE_STARTED  "instance.started"
#define EVENT_INSTANCE_HEALTHY  "instance.healthy"
#define EVENT_INSTANCE_EXITED   "instance.exited"
#define EVENT_INSTANCE_STOPPED  "instance.stopped"
#define EVENT_SERVICE_REMOVED   "service.removed"
#define EVENT_OPERATOR          "operator" /* pause, resume, sync, rollback, replace */
#define EVENT_DAEMON            "daemon"   /* started, stopping, systemd lost/regained */
#define EVENT_STORAGE_FAILING   "storage.failing"   /* the state folder stopped taking writes */
#define EVENT_STORAGE_RECOVERED "storage.recovered" /* … and takes them again */

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
