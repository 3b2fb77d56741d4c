/* The event ring as GET /v1/events and its followers see it: the newest
 * EVENTS_KEEP events in order, copies that outlive the caller's strings,
 * subscribers that may come and go from inside their own callbacks, the
 * JSON of one event, and the journal line each event leaves. */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "lii-proto.h"
#include "log.h"

struct seen {
        uint64_t seqs[2 * EVENTS_KEEP];
        size_t n;
};

static void record_seq(const struct event *e, void *userdata)
{
        struct seen *s = userdata;
        ck_assert_uint_lt(s->n, ELEMENTSOF(s->seqs));
        s->seqs[s->n++] = e->seq;
}

static struct events *events_with(unsigned n)
{
        struct events *ev;
        ck_assert_int_eq(events_new(&ev), 0);
        for (unsigned i = 1; i <= n; i++)
                events_emit(ev, EVENT_DAEMON, NULL, 0, "event %u", i);
        return ev;
}

START_TEST(ring_keeps_the_newest_in_order)
{
        struct events *ev = events_with(EVENTS_KEEP + 10);
        ck_assert_uint_eq(events_last_seq(ev), EVENTS_KEEP + 10);

        struct seen s = {0};
        events_foreach(ev, 0, record_seq, &s);
        ck_assert_uint_eq(s.n, EVENTS_KEEP);
        for (size_t i = 0; i < s.n; i++)
                ck_assert_uint_eq(s.seqs[i], 11 + i);

        /* The oldest kept event still says what it said. */
        const struct event *e = events_next(ev, 0);
        ck_assert_uint_eq(e->seq, 11);
        ck_assert_str_eq(e->message, "event 11");
        /* A reader that had only seen event 3 learns that it missed some. */
        ck_assert_uint_ne(events_next(ev, 3)->seq, 4);
        ck_assert_uint_eq(events_next(ev, 20)->seq, 21);
        ck_assert_ptr_null(events_next(ev, EVENTS_KEEP + 10));

        s.n = 0;
        events_foreach(ev, EVENTS_KEEP + 7, record_seq, &s);
        ck_assert_uint_eq(s.n, 3);
        ck_assert_uint_eq(s.seqs[0], EVENTS_KEEP + 8);
        ck_assert_uint_eq(s.seqs[2], EVENTS_KEEP + 10);

        s.n = 0;
        events_foreach(ev, EVENTS_KEEP + 10, record_seq, &s);
        events_foreach(ev, UINT64_MAX, record_seq, &s);
        ck_assert_uint_eq(s.n, 0);
        events_free(ev);
}
END_TEST

START_TEST(empty_ring)
{
        struct events *ev = events_with(0);
        struct seen s = {0};
        events_foreach(ev, 0, record_seq, &s);
        ck_assert_uint_eq(s.n, 0);
        ck_assert_ptr_null(events_next(ev, 0));
        ck_assert_uint_eq(events_last_seq(ev), 0);
        ck_assert_ptr_null(events_free(ev));
        ck_assert_ptr_null(events_free(NULL));
}
END_TEST

START_TEST(strings_are_copied_and_bounded)
{
        struct events *ev = events_with(0);
        char type[] = "rollout.started";
        char service[] = "hello";
        events_emit(ev, type, service, 7, "%s", "starting generation 7");
        memset(type, 'x', strlen(type));
        memset(service, 'x', strlen(service));

        const struct event *e = events_next(ev, 0);
        ck_assert_str_eq(e->type, "rollout.started");
        ck_assert_str_eq(e->service, "hello");
        ck_assert_uint_eq(e->generation, 7);
        ck_assert_str_eq(e->message, "starting generation 7");
        uint64_t now = now_realtime_usec();
        ck_assert_uint_le(e->time_usec, now);
        ck_assert_uint_gt(e->time_usec, now - 60 * USEC_PER_SEC);

        events_emit(ev, EVENT_DAEMON, NULL, 0, "node-wide");
        e = events_next(ev, 1);
        ck_assert_ptr_null(e->service);
        ck_assert_uint_eq(e->generation, 0);

        /* A long message is cut to the bound… */
        char *long_msg = xcalloc(5 * EVENT_MESSAGE_MAX, 1);
        memset(long_msg, 'a', 5 * EVENT_MESSAGE_MAX - 1);
        events_emit(ev, EVENT_DAEMON, NULL, 0, "%s", long_msg);
        ck_assert_uint_eq(strlen(events_next(ev, 2)->message), EVENT_MESSAGE_MAX - 1);

        /* …but never inside a UTF-8 sequence, which would make the JSON
         * of the event invalid text: "é" straddles the bound here. */
        memset(long_msg, 'a', EVENT_MESSAGE_MAX - 2);
        strcpy(long_msg + EVENT_MESSAGE_MAX - 2, "\xc3\xa9 and more");
        events_emit(ev, EVENT_DAEMON, NULL, 0, "%s", long_msg);
        const char *m = events_next(ev, 3)->message;
        ck_assert_uint_eq(strlen(m), EVENT_MESSAGE_MAX - 2);
        ck_assert_int_eq(m[strlen(m) - 1], 'a');

        /* A message with bytes that are not UTF-8 (a path, something cut
         * short before it got here) is kept, with those bytes escaped. */
        events_emit(ev, EVENT_DAEMON, NULL, 0, "caf\xc3\xa9 %s, %s", "\xc0\xaf", "cut \xe2\x82");
        ck_assert_str_eq(events_next(ev, 4)->message, "caf\xc3\xa9 \\xc0\\xaf, cut \\xe2\\x82");
        free(long_msg);
        events_free(ev);
}
END_TEST

START_TEST(subscribers_see_later_events_in_order)
{
        struct events *ev = events_with(3);
        struct seen a = {0}, b = {0};
        struct events_sub *sa = events_subscribe(ev, record_seq, &a);
        struct events_sub *sb = events_subscribe(ev, record_seq, &b);

        events_emit(ev, EVENT_DAEMON, NULL, 0, "four");
        events_emit(ev, EVENT_DAEMON, NULL, 0, "five");
        ck_assert_uint_eq(a.n, 2);
        ck_assert_uint_eq(a.seqs[0], 4);
        ck_assert_uint_eq(a.seqs[1], 5);
        ck_assert_uint_eq(b.n, 2);

        events_unsubscribe(sb);
        events_emit(ev, EVENT_DAEMON, NULL, 0, "six");
        ck_assert_uint_eq(a.n, 3);
        ck_assert_uint_eq(b.n, 2);
        events_unsubscribe(sa);
        events_unsubscribe(NULL);
        events_emit(ev, EVENT_DAEMON, NULL, 0, "seven");
        ck_assert_uint_eq(a.n, 3);
        events_free(ev);
}
END_TEST

/* A subscriber that acts on the ring from inside its callback. */
struct actor {
        struct events *ev;
        struct events_sub *self;
        struct events_sub *victim; /* unsubscribed on the first event */
        struct events_sub *added;  /* subscribed on the first event */
        struct seen *added_seen;
        bool emit_once;
        unsigned calls;
};

static void act(const struct event *e, void *userdata)
{
        struct actor *a = userdata;
        a->calls++;
        if (a->calls > 1)
                return;
        if (a->victim) {
                events_unsubscribe(a->victim);
                a->victim = NULL;
        }
        if (a->added_seen)
                a->added = events_subscribe(a->ev, record_seq, a->added_seen);
        if (a->emit_once)
                events_emit(a->ev, EVENT_DAEMON, NULL, 0, "emitted by a subscriber");
        if (a->self) {
                events_unsubscribe(a->self);
                a->self = NULL;
        }
}

START_TEST(unsubscribe_from_inside_a_callback)
{
        struct events *ev = events_with(0);

        /* Unsubscribing itself: called once, then never again. */
        struct actor self = {.ev = ev};
        self.self = events_subscribe(ev, act, &self);
        /* Unsubscribing a later subscriber: that one misses the event. */
        struct seen victim_seen = {0};
        struct actor killer = {.ev = ev};
        events_subscribe(ev, act, &killer);
        killer.victim = events_subscribe(ev, record_seq, &victim_seen);

        events_emit(ev, EVENT_DAEMON, NULL, 0, "one");
        events_emit(ev, EVENT_DAEMON, NULL, 0, "two");
        ck_assert_uint_eq(self.calls, 1);
        ck_assert_uint_eq(killer.calls, 2);
        ck_assert_uint_eq(victim_seen.n, 0);
        events_free(ev);
}
END_TEST

START_TEST(subscribe_and_emit_from_inside_a_callback)
{
        struct events *ev = events_with(0);
        struct seen added = {0}, all = {0};
        struct actor a = {.ev = ev, .added_seen = &added, .emit_once = true};
        events_subscribe(ev, act, &a);
        events_subscribe(ev, record_seq, &all);

        events_emit(ev, EVENT_DAEMON, NULL, 0, "one");
        /* The nested event reached every subscriber, the one added first
         * included; the event that was being handed out when it was
         * added did not reach it. */
        ck_assert_uint_eq(all.n, 2);
        ck_assert_uint_eq(added.n, 1);
        ck_assert_uint_eq(added.seqs[0], 2);

        events_emit(ev, EVENT_DAEMON, NULL, 0, "three");
        ck_assert_uint_eq(added.n, 2);
        ck_assert_uint_eq(added.seqs[1], 3);

        /* The ring holds them in seq order whatever the nesting. */
        struct seen ring = {0};
        events_foreach(ev, 0, record_seq, &ring);
        ck_assert_uint_eq(ring.n, 3);
        for (size_t i = 0; i < ring.n; i++)
                ck_assert_uint_eq(ring.seqs[i], i + 1);
        /* Freeing with subscribers left calls none of them. */
        unsigned calls = a.calls;
        events_free(ev);
        ck_assert_uint_eq(a.calls, calls);
}
END_TEST

/* A subscriber that emits so many events that the one it was handed is
 * dropped from the ring while it still looks at it. */
static void flood(const struct event *e, void *userdata)
{
        struct events *ev = userdata;
        if (e->seq != 1)
                return;
        for (unsigned i = 0; i < EVENTS_KEEP + 1; i++)
                events_emit(ev, EVENT_DAEMON, NULL, 0, "flood %u", i);
        ck_assert_str_eq(e->message, "first");
}

START_TEST(event_outlives_the_ring_during_its_callback)
{
        struct events *ev = events_with(0);
        events_subscribe(ev, flood, ev);
        events_emit(ev, EVENT_DAEMON, NULL, 0, "first");
        ck_assert_uint_eq(events_next(ev, 0)->seq, 3);
        events_free(ev);
}
END_TEST

START_TEST(json_shape)
{
        struct events *ev = events_with(0);
        events_emit(ev, EVENT_ROLLOUT_FAILED, "hello", 4, "health check failed: \"quoted\"");
        events_emit(ev, EVENT_OPERATOR, NULL, 0, "paused");

        json_object *o = event_to_json(events_next(ev, 0));
        ck_assert_int_eq(json_object_object_length(o), 7);
        json_object *v;
        ck_assert(json_object_object_get_ex(o, LII_F_SEQ, &v));
        ck_assert(json_object_is_type(v, json_type_int));
        ck_assert_int_eq(json_object_get_int64(v), 1);
        ck_assert(json_object_object_get_ex(o, LII_F_TIME, &v));
        uint64_t t;
        ck_assert_int_eq(parse_rfc3339(json_object_get_string(v), &t), 0);
        ck_assert_uint_eq(t / USEC_PER_SEC, events_next(ev, 0)->time_usec / USEC_PER_SEC);
        ck_assert(json_object_object_get_ex(o, LII_F_TIME_USEC, &v));
        ck_assert(json_object_is_type(v, json_type_int));
        ck_assert_uint_eq(json_object_get_uint64(v), events_next(ev, 0)->time_usec);
        ck_assert(json_object_object_get_ex(o, LII_F_TYPE, &v));
        ck_assert_str_eq(json_object_get_string(v), "rollout.failed");
        ck_assert(json_object_object_get_ex(o, LII_F_SERVICE, &v));
        ck_assert_str_eq(json_object_get_string(v), "hello");
        ck_assert(json_object_object_get_ex(o, LII_F_GENERATION, &v));
        ck_assert(json_object_is_type(v, json_type_int));
        ck_assert_int_eq(json_object_get_int64(v), 4);
        ck_assert(json_object_object_get_ex(o, LII_F_MESSAGE, &v));
        ck_assert_str_eq(json_object_get_string(v), "health check failed: \"quoted\"");
        json_object_put(o);

        /* Node-wide events carry explicit nulls, not missing members. */
        o = event_to_json(events_next(ev, 1));
        ck_assert(json_object_object_get_ex(o, LII_F_SERVICE, &v));
        ck_assert_ptr_null(v);
        ck_assert(json_object_object_get_ex(o, LII_F_GENERATION, &v));
        ck_assert_ptr_null(v);
        json_object_put(o);
        events_free(ev);
}
END_TEST

/* Each event is also a journal (or stderr) line with its type. */
START_TEST(events_are_logged)
{
        char path[] = "/tmp/lii-test-events-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        int saved = dup(STDERR_FILENO);
        ck_assert_int_ge(saved, 0);
        ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        log_max_level = LOG_INFO;

        struct events *ev = events_with(0);
        events_emit(ev, EVENT_ROLLOUT_STARTED, "hello", 3, "starting generation %d", 3);
        events_free(ev);

        fflush(stderr);
        ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        char buf[4096] = "";
        ck_assert_int_ge(pread(fd, buf, sizeof buf - 1, 0), 0);
        close(fd);
        close(saved);
        log_max_level = LOG_WARNING;
        ck_assert_msg(strstr(buf, "rollout.started: starting generation 3"), "logged: %s", buf);
}
END_TEST

int main(void)
{
        /* Thousands of events would flood the test output otherwise. */
        log_max_level = LOG_WARNING;
        Suite *s = suite_create("events");
        TCase *ring = tcase_create("ring");
        tcase_add_test(ring, ring_keeps_the_newest_in_order);
        tcase_add_test(ring, empty_ring);
        tcase_add_test(ring, strings_are_copied_and_bounded);
        tcase_add_test(ring, json_shape);
        tcase_add_test(ring, events_are_logged);
        suite_add_tcase(s, ring);
        TCase *subs = tcase_create("subscribers");
        tcase_add_test(subs, subscribers_see_later_events_in_order);
        tcase_add_test(subs, unsubscribe_from_inside_a_callback);
        tcase_add_test(subs, subscribe_and_emit_from_inside_a_callback);
        tcase_add_test(subs, event_outlives_the_ring_during_its_callback);
        suite_add_tcase(s, subs);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
