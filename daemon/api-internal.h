/* What the files of the local API share; api.h is what the rest of liid
 * sees. The API is four files, by what a maintainer looks for:
 *   api.c         libmicrohttpd on the loop, the routes, authorization of
 *                 each request and the answers
 *   api-socket.c  the listening socket
 *   api-conn.c    accepting connections: who the peer is, how many it may
 *                 hold, by when its request must be in
 *   api-events.c  GET /v1/events, once or followed
 * Everything runs on the loop. */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "api-limit.h"
#include "api-socket.h"
#include "api.h"

/* Refused connections whose socket may wait to be closed; see
 * API_REFUSED_LINGER_MSEC in api-conn.c. */
#define API_REFUSED_LINGER_MAX 64u

enum role {
        ROLE_NONE,
        ROLE_READER,
        ROLE_ADMIN,
};

struct conn;
struct follower;

struct api {
        uv_loop_t *loop;
        /* Freed when the last of these has closed. */
        unsigned n_handles_open;
        struct MHD_Daemon *mhd;
        uv_poll_t poll;   /* MHD's epoll fd */
        uv_timer_t timer; /* MHD's next timeout, or a kick */
        struct api_socket socket;
        const struct api_ops *ops;
        void *userdata;
        struct events *events;
        struct metrics *metrics;
        gid_t read_gid;
        gid_t admin_gid;
        /* MHD runs: its complaints are about clients from now on. */
        bool started;
        /* api_free() has begun: nothing may arm the timers again. */
        bool stopping;
        /* A connection was resumed while MHD_run() ran, so the timer that
         * makes MHD serve it again must not be re-armed for later. */
        bool kicked;

        /* Accepting connections (api-conn.c). */
        uv_poll_t listen;
        uv_timer_t deadline_timer;
        uv_timer_t accept_timer;
        /* accept() fails; logged once until it works again. */
        bool accept_failing;
        /* When a refused connection was last logged (loop time), and how
         * many were not logged since. */
        bool refusal_logged;
        uint64_t refusal_logged_at;
        unsigned refusals_unlogged;
        struct api_limit limit;
        /* The connections whose request is awaited, oldest deadline first. */
        struct conn *waiting, *waiting_tail;
        /* Handed to api_conn_notify() while MHD_add_connection() runs. */
        struct conn *adding;
        /* Refused connections waiting to be closed, oldest first: a ring
         * that starts at lingering_first. */
        struct {
                int fd;
                uint64_t until; /* loop time (ms) */
        } lingering[API_REFUSED_LINGER_MAX];
        unsigned lingering_first, n_lingering;

        /* The streams of GET /v1/events?follow=1 (api-events.c). */
        struct follower *followers;
        unsigned n_followers;
};

/* api.c */

/* Lets MHD do what is due and arms the timer for its next deadline. */
void api_run(struct api *a);
/* Makes MHD run on the next turn of the loop; for code that may run inside
 * one of MHD's own callbacks, where MHD_run() must not be called. */
void api_kick(struct api *a);
/* An error document with the status its code stands for. */
enum MHD_Result api_respond_error(struct MHD_Connection *c, const char *code, const char *message,
                                  const char *allow);
/* A body that is not JSON. Takes body (malloc'ed) in every case. */
enum MHD_Result api_respond_text(struct MHD_Connection *c, unsigned status,
                                 const char *content_type, char *body, size_t len);

/* api-conn.c */

/* Starts taking connections from a->socket. */
int api_conn_start(struct api *a);
/* MHD_OPTION_NOTIFY_CONNECTION: a connection handed over with
 * MHD_add_connection() starts (within that call) or closes. */
void api_conn_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
/* The connection of a request (NULL when MHD does not say). */
struct conn *api_conn_of(struct MHD_Connection *c);
/* What its peer may do; ROLE_NONE for NULL. */
enum role api_conn_role(const struct conn *c);
/* Starts the clock of the connection's next request; accepts NULL. */
void api_conn_wait(struct conn *c);
/* The request is in, or the connection ends; accepts NULL. */
void api_conn_unwait(struct conn *c);
/* Closes the sockets of refused connections still waiting (api_free()). */
void api_conn_end(struct api *a);

/* api-events.c */

/* Answers GET /v1/events: the kept events as NDJSON, or with follow=1 a
 * stream of them (for a HEAD, the plain answer's headers). */
enum MHD_Result api_events_respond(struct api *a, struct MHD_Connection *c, bool head);
/* Ends every stream: their clients see the connection close once MHD
 * stops. The followers stop listening to the event ring at once. */
void api_events_end(struct api *a);
