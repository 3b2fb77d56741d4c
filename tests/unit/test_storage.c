/* The storage condition as an operator follows it: one event when writes
 * start failing and one when they succeed again, whatever happens in
 * between; attempts that come further apart, up to a limit; an attempt at
 * once on request; and status' {error, since}. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "storage.h"
#include "util.h"
#include "harness.h"

#define FIRST_MSEC   5
#define MAX_MSEC     20
#define MAX_ATTEMPTS 16

/* What the owner's retry callback does, and what it saw. */
enum plan { PLAN_FAIL, PLAN_SHORT, PLAN_RECOVER };

struct owner {
        uv_loop_t loop;
        struct events *events;
        struct storage *st;
        enum plan plan;
        unsigned attempts;
        /* When each attempt ran, by libuv's clock: timers keep to it, not
         * to the moment a callback happens to run. */
        uint64_t at_msec[MAX_ATTEMPTS];
};

static void on_retry(struct storage *st, void *userdata)
{
        struct owner *o = userdata;
        ck_assert_uint_lt(o->attempts, MAX_ATTEMPTS);
        o->at_msec[o->attempts++] = uv_now(&o->loop);
        if (o->plan == PLAN_FAIL)
                storage_failed(st, "cannot write /x/state.json: No space left on device");
        else if (o->plan == PLAN_SHORT)
                storage_retry_later(st);
        else
                storage_recovered(st);
}

static void owner_init(struct owner *o, uint64_t first_msec)
{
        memset(o, 0, sizeof *o);
        ck_assert_int_eq(uv_loop_init(&o->loop), 0);
        ck_assert_int_eq(events_new(&o->events), 0);
        struct storage_options opts = {
            .first_delay_usec = first_msec * USEC_PER_MSEC,
            .max_delay_usec = MAX_MSEC * USEC_PER_MSEC,
        };
        ck_assert_int_eq(storage_new(&o->loop, o->events, &opts, on_retry, o, &o->st), 0);
}

static void owner_done(struct owner *o)
{
        o->st = storage_free(o->st);
        ck_assert_int_eq(uv_run(&o->loop, UV_RUN_DEFAULT), 0);
        ck_assert_int_eq(uv_loop_close(&o->loop), 0);
        events_free(o->events);
}

/* Runs the loop until there have been n attempts in all, within 5 s. */
static void run_until(struct owner *o, unsigned n)
{
        uint64_t deadline = now_monotonic_usec() + 5 * USEC_PER_SEC;
        while (o->attempts < n && now_monotonic_usec() < deadline)
                uv_run(&o->loop, UV_RUN_ONCE);
        ck_assert_uint_eq(o->attempts, n);
}

struct count {
        const char *type;
        unsigned n;
        const char *last_message;
};

static void count_one(const struct event *e, void *userdata)
{
        struct count *c = userdata;
        if (strcmp(e->type, c->type) == 0) {
                c->n++;
                c->last_message = e->message;
        }
}

static unsigned count(struct owner *o, const char *type)
{
        struct count c = {.type = type};
        events_foreach(o->events, 0, count_one, &c);
        return c.n;
}

START_TEST(one_event_each_way)
{
        struct owner o;
        owner_init(&o, FIRST_MSEC);
        ck_assert(!storage_failing(o.st));
        json_object *j = storage_to_json(o.st);
        ck_assert_ptr_null(json_object_object_get(j, "error"));
        ck_assert_ptr_null(json_object_object_get(j, "since"));
        json_object_put(j);

        storage_failed(o.st, "cannot write the state of hello: No space left on device");
        storage_failed(o.st, "artifact x: cannot write the download: No space left on device");
        ck_assert(storage_failing(o.st));
        ck_assert_uint_eq(count(&o, EVENT_STORAGE_FAILING), 1);
        /* Status shows the latest reason and when it all began. */
        j = storage_to_json(o.st);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(j, "error")),
                         "artifact x: cannot write the download: No space left on device");
        uint64_t since;
        ck_assert_int_eq(
            parse_rfc3339(json_object_get_string(json_object_object_get(j, "since")), &since), 0);
        ck_assert_uint_le(since, now_realtime_usec());
        json_object_put(j);

        /* Attempts that fail, or find too little room, change nothing an
         * operator follows. */
        run_until(&o, 2);
        o.plan = PLAN_SHORT;
        run_until(&o, 4);
        ck_assert_uint_eq(count(&o, EVENT_STORAGE_FAILING), 1);
        ck_assert_uint_eq(count(&o, EVENT_STORAGE_RECOVERED), 0);
        ck_assert(storage_failing(o.st));

        o.plan = PLAN_RECOVER;
        run_until(&o, 5);
        ck_assert(!storage_failing(o.st));
        ck_assert_uint_eq(count(&o, EVENT_STORAGE_RECOVERED), 1);
        j = storage_to_json(o.st);
        ck_assert_ptr_null(json_object_object_get(j, "error"));
        json_object_put(j);
        /* Recovered, nothing is tried any more. */
        ck_assert_int_eq(uv_run(&o.loop, UV_RUN_NOWAIT), 0);
        ck_assert_uint_eq(o.attempts, 5);
        storage_recovered(o.st);
        ck_assert_uint_eq(count(&o, EVENT_STORAGE_RECOVERED), 1);
        owner_done(&o);
}
END_TEST

START_TEST(attempts_come_further_apart_up_to_a_limit)
{
        struct owner o;
        owner_init(&o, FIRST_MSEC);
        uint64_t start = uv_now(&o.loop);
        storage_failed(o.st, "no room");
        run_until(&o, 10);
        /* 5, 10, 20, then 20 ms each (a timer may be late, never early). */
        static const uint64_t least_msec[] = {5, 10, 20, 20, 20, 20, 20, 20, 20, 20};
        uint64_t prev = start;
        for (unsigned i = 0; i < 10; i++) {
                ck_assert_uint_ge(o.at_msec[i] - prev, least_msec[i]);
                prev = o.at_msec[i];
        }
        /* Without the limit, the last would have come 2.56 s after the one
         * before. */
        ck_assert_uint_lt(o.at_msec[9] - o.at_msec[8], 1000);

        /* A condition that comes back at once goes on with the delay it
         * had reached, not the first one. */
        o.plan = PLAN_RECOVER;
        run_until(&o, 11);
        o.plan = PLAN_FAIL;
        uint64_t again = uv_now(&o.loop);
        storage_failed(o.st, "no room again");
        ck_assert_uint_eq(count(&o, EVENT_STORAGE_FAILING), 2);
        run_until(&o, 12);
        ck_assert_uint_ge(o.at_msec[11] - again, MAX_MSEC);
        owner_done(&o);
}
END_TEST

START_TEST(retry_now_does_not_wait)
{
        struct owner o;
        owner_init(&o, 60 * 1000);
        /* Without a failure there is nothing to try. */
        storage_retry_now(o.st);
        ck_assert_int_eq(uv_run(&o.loop, UV_RUN_NOWAIT), 0);
        ck_assert_uint_eq(o.attempts, 0);

        storage_failed(o.st, "no room");
        storage_retry_now(o.st);
        o.plan = PLAN_RECOVER;
        run_until(&o, 1);
        ck_assert(!storage_failing(o.st));
        owner_done(&o);
}
END_TEST

/* Freed with an attempt due: the callback never comes (the sanitizer build
 * checks that the memory goes with the timer). */
START_TEST(free_cancels_the_attempt)
{
        struct owner o;
        owner_init(&o, FIRST_MSEC);
        storage_failed(o.st, "no room");
        owner_done(&o);
        ck_assert_uint_eq(o.attempts, 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("storage");
        TCase *tc = tcase_create("storage");
        tcase_add_test(tc, one_event_each_way);
        tcase_add_test(tc, attempts_come_further_apart_up_to_a_limit);
        tcase_add_test(tc, retry_now_does_not_wait);
        tcase_add_test(tc, free_cancels_the_attempt);
        suite_add_tcase(s, tc);
        return h_run_suite(s);
}
