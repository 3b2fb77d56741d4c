/* fleet.c: the gateway's lease, txn, range and watch answers and the slot
 * rule as pure functions; then replacement slots and failures between two
 * nodes (two fleet objects, each with its own connection) against a real
 * 3-member etcd cluster, driven by the loop as liid drives them. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "curlm.h"
#include "fleet.h"
#include "harness.h"
#include "lii-proto.h"
#include "util.h"

#define HEADER "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"40\"}"

START_TEST(lease_answers)
{
        int64_t id, ttl;
        char *error = NULL;
        const char *grant = "{" HEADER ",\"ID\":\"7587869330381423370\",\"TTL\":\"15\"}";
        ck_assert_int_eq(fleet_parse_lease(grant, strlen(grant), &id, &ttl, &error), 0);
        ck_assert_int_eq(id, 7587869330381423370LL);
        ck_assert_int_eq(ttl, 15);
        /* A keepalive answers as a stream message. */
        const char *alive = "{\"result\":{" HEADER ",\"ID\":\"12\",\"TTL\":\"14\"}}";
        ck_assert_int_eq(fleet_parse_lease(alive, strlen(alive), &id, &ttl, &error), 0);
        ck_assert_int_eq(id, 12);
        ck_assert_int_eq(ttl, 14);
        /* A lease etcd does not know: TTL is zero, left out. */
        const char *gone = "{\"result\":{" HEADER ",\"ID\":\"12\"}}";
        ck_assert_int_eq(fleet_parse_lease(gone, strlen(gone), &id, &ttl, &error), 0);
        ck_assert_int_eq(ttl, 0);
        const char *not_found = "{\"error\":\"etcdserver: requested lease not found\",\"code\":5,"
                                "\"message\":\"etcdserver: requested lease not found\"}";
        ck_assert_int_eq(fleet_parse_lease(not_found, strlen(not_found), &id, &ttl, &error),
                         -ENOENT);
        ck_assert_ptr_nonnull(strstr(error, "lease not found"));
        free(error);
        error = NULL;
        const char *bad = "{\"ID\":\"x\"}";
        ck_assert_int_eq(fleet_parse_lease(bad, strlen(bad), &id, &ttl, &error), -EBADMSG);
        free(error);
}
END_TEST

START_TEST(txn_answers)
{
        bool ok;
        int64_t rev;
        char *error = NULL;
        const char *yes = "{" HEADER ",\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}";
        ck_assert_int_eq(fleet_parse_txn(yes, strlen(yes), &ok, &rev, &error), 0);
        ck_assert(ok);
        ck_assert_int_eq(rev, 40);
        /* A failed txn has no "succeeded". */
        const char *no = "{" HEADER "}";
        ck_assert_int_eq(fleet_parse_txn(no, strlen(no), &ok, &rev, &error), 0);
        ck_assert(!ok);
        const char *err = "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}";
        ck_assert_int_eq(fleet_parse_txn(err, strlen(err), &ok, &rev, &error), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(error, "lease not found"));
        free(error);
}
END_TEST

/* base64 of "lii/f/nodes/n1/status", "lii/f/sem/hello/n1", "lii/f/fail/hello/v2/n1",
 * "lii/f/other" and "lii/g/sem/x/y". */
#define K_STATUS "bGlpL2Yvbm9kZXMvbjEvc3RhdHVz"
#define K_SEM    "bGlpL2Yvc2VtL2hlbGxvL24x"
#define K_FAIL   "bGlpL2YvZmFpbC9oZWxsby92Mi9uMQ=="
#define K_OTHER  "bGlpL2Yvb3RoZXI="
#define K_G      "bGlpL2cvc2VtL3gveQ=="

START_TEST(range_answer)
{
        char *big = malloc(2 * FLEET_MAX_VALUE + 1);
        memset(big, 'Q', 2 * FLEET_MAX_VALUE);
        big[2 * FLEET_MAX_VALUE] = '\0';
        char *json = NULL;
        ck_assert_int_ge(
            asprintf(&json,
                     "{" HEADER ",\"kvs\":["
                     "{\"key\":\"" K_STATUS "\",\"create_revision\":\"3\",\"mod_revision\":\"9\","
                     "\"lease\":\"77\",\"value\":\"e30=\"},"
                     "{\"key\":\"" K_SEM "\",\"create_revision\":\"5\",\"mod_revision\":\"5\","
                     "\"lease\":\"77\",\"value\":\"bjE=\"},"
                     "{\"key\":\"" K_FAIL "\",\"create_revision\":\"6\",\"value\":\"%s\"},"
                     "{\"key\":\"" K_OTHER "\",\"value\":\"eA==\"},"
                     "{\"key\":\"" K_G "\",\"value\":\"eA==\"}],\"more\":true,\"count\":\"9\"}",
                     big),
            0);
        struct fleet_batch b;
        char *error = NULL;
        ck_assert_int_eq(fleet_parse_range(json, strlen(json), "lii/f", &b, &error), 0);
        ck_assert_int_eq(b.revision, 40);
        ck_assert(b.more);
        ck_assert_uint_eq(b.n_events, 2);
        ck_assert_str_eq(b.events[0].kv.key, "nodes/n1/status");
        ck_assert_str_eq(b.events[0].kv.value, "{}");
        ck_assert_int_eq(b.events[0].kv.lease, 77);
        ck_assert_str_eq(b.events[1].kv.key, "sem/hello/n1");
        ck_assert_int_eq(b.events[1].kv.create_revision, 5);
        /* The oversized failure is left out, and the reason names it. */
        ck_assert_ptr_nonnull(b.skipped);
        ck_assert_ptr_nonnull(strstr(b.skipped, "lii/f/fail/hello/v2/n1: a value larger than"));
        fleet_batch_done(&b);
        free(json);
        free(big);

        const char *e = "{\"error\":\"etcdserver: user name is empty\",\"code\":3}";
        ck_assert_int_eq(fleet_parse_range(e, strlen(e), "lii/f", &b, &error), -EIO);
        ck_assert_str_eq(error, "etcd: etcdserver: user name is empty");
        free(error);
}
END_TEST

START_TEST(watch_messages)
{
        const char *text = "{\"result\":{" HEADER ",\"events\":["
                           "{\"kv\":{\"key\":\"" K_SEM "\",\"create_revision\":\"41\","
                           "\"mod_revision\":\"41\",\"lease\":\"9\",\"value\":\"bjE=\"}},"
                           "{\"type\":\"DELETE\",\"kv\":{\"key\":\"" K_STATUS "\","
                           "\"mod_revision\":\"42\"}}]}}";
        json_object *o = json_tokener_parse(text);
        struct fleet_batch b;
        char *error = NULL;
        ck_assert_int_eq(fleet_parse_watch(o, "lii/f", &b, &error), 0);
        ck_assert_uint_eq(b.n_events, 2);
        ck_assert(!b.events[0].deleted);
        ck_assert_int_eq(b.events[0].kv.create_revision, 41);
        ck_assert(b.events[1].deleted);
        ck_assert_str_eq(b.events[1].kv.key, "nodes/n1/status");
        ck_assert_int_eq(b.last_mod_revision, 42);
        fleet_batch_done(&b);
        json_object_put(o);

        o = json_tokener_parse("{\"result\":{" HEADER ",\"canceled\":true,"
                               "\"compact_revision\":\"30\"}}");
        ck_assert_int_eq(fleet_parse_watch(o, "lii/f", &b, &error), 0);
        ck_assert(b.canceled);
        ck_assert_int_eq(b.compact_revision, 30);
        fleet_batch_done(&b);
        json_object_put(o);
}
END_TEST

START_TEST(slot_rule)
{
        const int64_t revs[] = {12, 7, 30, 9};
        ck_assert(fleet_slot_rank_ok(revs, 4, 7, 1));
        ck_assert(!fleet_slot_rank_ok(revs, 4, 9, 1));
        ck_assert(fleet_slot_rank_ok(revs, 4, 9, 2));
        ck_assert(!fleet_slot_rank_ok(revs, 4, 30, 3));
        ck_assert(fleet_slot_rank_ok(revs, 4, 30, 4));
        ck_assert(fleet_slot_rank_ok(revs, 0, 30, 1));
}
END_TEST

/* ---- against a real etcd ---- */

#define PREFIX  "lii/slots"
#define TTL_SEC 2

static char dir[256];
static struct h_etcd etcd;
static uv_loop_t loop;
static struct curlm *curlm;

struct node {
        const char *name;
        struct etcd_client *client;
        struct fleet *fleet;
        unsigned changed;
        unsigned max_failures;
};
static struct node na = {.name = "a"}, nb = {.name = "b"};

static json_object *node_status(void *userdata)
{
        struct node *n = userdata;
        json_object *o = json_tokener_parse("{\"serial\":3,\"services\":{\"hello\":{\"state\":"
                                            "\"running\",\"rollout\":{\"id\":\"hello-v2\","
                                            "\"percent\":10}}}}");
        json_object_object_add(o, LII_F_NODE, json_object_new_string(n->name));
        return o;
}

static void node_changed(void *userdata)
{
        ((struct node *)userdata)->changed++;
}

static unsigned node_max_failures(void *userdata, const char *service)
{
        return ((struct node *)userdata)->max_failures;
}

static void node_start(struct node *n)
{
        char url[700];
        h_etcd_url(&etcd, 0, PREFIX, url, sizeof url);
        struct etcd_client_options copts = {.curlm = curlm};
        char *error = NULL;
        ck_assert_int_eq(etcd_client_new(&loop, url, &copts, &n->client, &error), 0);
        struct fleet_options fopts = {
            .client = n->client,
            .node = n->name,
            .lease_ttl_usec = TTL_SEC * USEC_PER_SEC,
            .status = node_status,
            .changed = node_changed,
            .max_failures = node_max_failures,
            .userdata = n,
        };
        ck_assert_int_eq(fleet_new(&loop, &fopts, &n->fleet), 0);
        ck_assert_int_eq(fleet_start(n->fleet), 0);
}

/* The node dies: no release, no revocation; its lease runs out. */
static void node_kill(struct node *n)
{
        n->fleet = fleet_free(n->fleet);
        n->client = etcd_client_unref(n->client);
}

static void on_tick(uv_timer_t *t)
{
}

/* Turns the loop until pred holds (timeout_ms at most); returns whether it
 * did. The tick lets pred be asked at least every 20 ms. */
static bool run_until(bool (*pred)(void *), void *userdata, int timeout_ms)
{
        uv_timer_t tick;
        uv_timer_init(&loop, &tick);
        uv_timer_start(&tick, on_tick, 20, 20);
        uint64_t deadline = now_monotonic_usec() + (uint64_t)timeout_ms * USEC_PER_MSEC;
        bool ok;
        while (!(ok = pred(userdata)) && now_monotonic_usec() < deadline)
                uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&tick, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        return ok;
}

static bool both_fresh(void *unused)
{
        return fleet_lease_fresh(na.fleet) && fleet_lease_fresh(nb.fleet);
}

static void setup_etcd(void)
{
        snprintf(dir, sizeof dir, "/tmp/lii-test-fleet-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        char edir[300];
        snprintf(edir, sizeof edir, "%s/etcd", dir);
        h_etcd_start(&etcd, edir);
        uv_loop_init(&loop);
        ck_assert_int_eq(curlm_new(&loop, &curlm), 0);
        na = (struct node){.name = "a"};
        nb = (struct node){.name = "b"};
        node_start(&na);
        node_start(&nb);
        ck_assert_msg(run_until(both_fresh, NULL, 10000), "the leases were never granted");
}

static void teardown_etcd(void)
{
        node_kill(&na);
        node_kill(&nb);
        curlm = curlm_free(curlm);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        for (int i = 0; i < H_ETCD_MEMBERS; i++)
                if (etcd.pid[i] > 0)
                        kill(etcd.pid[i], SIGCONT);
        h_etcd_stop(&etcd);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

struct wants {
        enum fleet_slot a, b;
        bool ask_a, ask_b;
        bool both_held; /* ever */
        bool a_lost;    /* a's slot, once held, was not while a still wanted it */
        /* As the engine does, a node asks once when it starts wanting the
         * slot, then only when its fleet says something changed. */
        bool asked_a, asked_b;
        unsigned seen_a, seen_b; /* the node's changed count when it asked */
};

static enum fleet_slot ask_node(struct node *n, bool want, bool *asked, unsigned *seen,
                                enum fleet_slot last)
{
        if (!want) {
                *asked = false;
                return FLEET_SLOT_NONE;
        }
        if (*asked && *seen == n->changed)
                return last;
        *asked = true;
        *seen = n->changed;
        return fleet_slot_want(n->fleet, "hello", 1);
}

/* What the engines of both nodes ask on each turn of the loop. */
static void ask(struct wants *w)
{
        enum fleet_slot a = ask_node(&na, w->ask_a, &w->asked_a, &w->seen_a, w->a);
        if (w->ask_a && w->a == FLEET_SLOT_HELD && a != FLEET_SLOT_HELD)
                w->a_lost = true;
        w->a = a;
        w->b = ask_node(&nb, w->ask_b, &w->asked_b, &w->seen_b, w->b);
        if (w->a == FLEET_SLOT_HELD && w->b == FLEET_SLOT_HELD)
                w->both_held = true;
}

static bool one_held(void *userdata)
{
        struct wants *w = userdata;
        ask(w);
        return w->a == FLEET_SLOT_HELD || w->b == FLEET_SLOT_HELD;
}

static bool a_held(void *userdata)
{
        struct wants *w = userdata;
        ask(w);
        return w->a == FLEET_SLOT_HELD;
}

static bool b_held(void *userdata)
{
        struct wants *w = userdata;
        ask(w);
        return w->b == FLEET_SLOT_HELD;
}

static bool never(void *userdata)
{
        ask(userdata);
        return false;
}

START_TEST(slots_one_at_a_time)
{
        struct wants w = {.ask_a = true, .ask_b = true};
        ck_assert_msg(run_until(one_held, &w, 10000), "no node ever held the slot");
        /* However long both ask, max_parallel 1 means one holder. */
        run_until(never, &w, 1000);
        ck_assert(!w.both_held);
        ck_assert(w.a == FLEET_SLOT_HELD || w.b == FLEET_SLOT_HELD);
        ck_assert(w.a != w.b);
        struct node *holder = w.a == FLEET_SLOT_HELD ? &na : &nb;
        bool (*other_held)(void *) = holder == &na ? b_held : a_held;

        /* Released, the slot goes to the other node. */
        fleet_slot_release(holder->fleet, "hello");
        if (holder == &na)
                w.ask_a = false;
        else
                w.ask_b = false;
        ck_assert_msg(run_until(other_held, &w, 10000), "the released slot was not handed on");
        ck_assert(!w.both_held);
}
END_TEST

START_TEST(slot_of_a_killed_holder)
{
        struct wants w = {.ask_a = true};
        ck_assert_msg(run_until(a_held, &w, 10000), "a never held the slot");
        w.ask_b = true;
        run_until(never, &w, 500);
        ck_assert_int_eq(w.b, FLEET_SLOT_WAITING);
        /* a dies holding it: b gets it once a's lease has run out. */
        w.ask_a = false;
        node_kill(&na);
        uint64_t killed = now_monotonic_usec();
        ck_assert_msg(run_until(b_held, &w, (TTL_SEC + 3) * 1000),
                      "the slot of a killed holder never came free");
        ck_assert_uint_ge(now_monotonic_usec() - killed, USEC_PER_SEC / 2);
}
END_TEST

/* Turns the loop for ms, without waiting in it. */
static void spin_ms(unsigned ms)
{
        uint64_t until = now_monotonic_usec() + (uint64_t)ms * USEC_PER_MSEC;
        while (now_monotonic_usec() < until)
                uv_run(&loop, UV_RUN_NOWAIT);
}

static bool a_key_gone(void *unused)
{
        char *v = h_etcd_get(&etcd, PREFIX "/sem/hello/a");
        free(v);
        return v == NULL;
}

/* The node's own key may come through the watch before etcd's answer to
 * the request that created it, or after: either way the node is told when
 * the slot is its own. Each round asks anew from no key at all. */
START_TEST(a_node_that_asks_only_when_told_gets_its_slot)
{
        struct wants w = {0};
        for (int round = 0; round < 25; round++) {
                w.ask_a = true;
                ck_assert_msg(run_until(a_held, &w, 10000),
                              "round %d: a was never told that the slot is its own", round);
                fleet_slot_release(na.fleet, "hello");
                w.ask_a = false;
                ck_assert_msg(run_until(a_key_gone, NULL, 10000),
                              "round %d: a's released slot stayed in etcd", round);
        }
}
END_TEST

/* A node that gives a slot back while its request for it is still on the
 * way to etcd leaves no key behind: b, next in line, gets the slot. */
START_TEST(a_slot_given_back_at_once_leaves_no_key)
{
        struct wants w = {.ask_b = true};
        for (int round = 0; round < 25; round++) {
                ck_assert_int_eq(fleet_slot_want(na.fleet, "hello", 1), FLEET_SLOT_WAITING);
                /* 0 to 4 ms: before the request went out, while etcd
                 * works on it, or after its answer. */
                spin_ms((unsigned)round % 5);
                fleet_slot_release(na.fleet, "hello");
                ck_assert_msg(run_until(b_held, &w, 10000), "round %d: b never held the slot",
                              round);
                ck_assert_msg(run_until(a_key_gone, NULL, 10000),
                              "round %d: a's key stayed in etcd", round);
                fleet_slot_release(nb.fleet, "hello");
                w.ask_b = false;
                ask(&w);
                w.ask_b = true;
        }
}
END_TEST

/* A slot given back and wanted again at once, even while its deletion is
 * on the way, is held again only with a key in etcd that stays. */
START_TEST(a_slot_wanted_again_while_given_back)
{
        struct wants w = {.ask_a = true};
        for (int round = 0; round < 12; round++) {
                ck_assert_msg(run_until(a_held, &w, 10000), "round %d: a never held the slot",
                              round);
                fleet_slot_release(na.fleet, "hello");
                w.ask_a = false;
                ask(&w);
                spin_ms((unsigned)round % 5);
                w.ask_a = true;
                w.a_lost = false;
                ck_assert_msg(run_until(a_held, &w, 10000), "round %d: a never held the slot again",
                              round);
                run_until(never, &w, 200);
                ck_assert_msg(!w.a_lost, "round %d: a held a slot it then lost", round);
                ck_assert_msg(!a_key_gone(NULL), "round %d: a holds a slot without a key", round);
        }
}
END_TEST

static bool a_stale(void *userdata)
{
        ask(userdata);
        return !fleet_lease_fresh(na.fleet);
}

START_TEST(no_slot_without_a_fresh_lease)
{
        struct wants w = {.ask_a = true};
        ck_assert_msg(run_until(a_held, &w, 10000), "a never held the slot");
        /* Members 1 and 2 freeze: member 0 has no quorum. */
        kill(etcd.pid[1], SIGSTOP);
        kill(etcd.pid[2], SIGSTOP);
        ck_assert_msg(run_until(a_stale, &w, (TTL_SEC + 3) * 1000), "the lease stayed fresh");
        ck_assert_int_ne(fleet_slot_want(na.fleet, "hello", 1), FLEET_SLOT_HELD);
        unsigned changed = na.changed;
        ck_assert_uint_gt(changed, 0);
        kill(etcd.pid[1], SIGCONT);
        kill(etcd.pid[2], SIGCONT);
        ck_assert_msg(run_until(a_held, &w, 20000), "a never held the slot again");
        ck_assert_uint_gt(na.changed, changed);
}
END_TEST

static bool b_sees_failure(void *unused)
{
        return fleet_failures(nb.fleet, "hello", "hello-v2") == 1;
}

/* Both statuses (b's own comes through the watch too) and a's failure. */
static bool b_sees_both_statuses(void *unused)
{
        json_object *doc = fleet_to_json(nb.fleet);
        bool ok = h_json_path(doc, "nodes.a.services.hello") != NULL &&
                  h_json_path(doc, "nodes.b.services.hello") != NULL &&
                  h_json_path(doc, "rollouts.hello.failures.a") != NULL;
        json_object_put(doc);
        return ok;
}

START_TEST(failures_and_the_fleet_document)
{
        fleet_record_failure(na.fleet, "hello", "hello-v2", "health check failed: HTTP 500");
        ck_assert_msg(run_until(b_sees_failure, NULL, 10000), "b never saw a's failure");
        ck_assert_uint_eq(fleet_failures(nb.fleet, "hello", "hello-v1"), 0);
        ck_assert_msg(run_until(b_sees_both_statuses, NULL, 10000), "b never saw both statuses");
        nb.max_failures = 1;
        json_object *doc = fleet_to_json(nb.fleet);
        ck_assert_str_eq(h_json_str(doc, "rollouts.hello.id"), "hello-v2");
        ck_assert_int_eq(h_json_int(doc, "rollouts.hello.percent"), 10);
        ck_assert_str_eq(h_json_str(doc, "rollouts.hello.failures.a"),
                         "health check failed: HTTP 500");
        ck_assert(json_object_get_boolean(h_json_path(doc, "rollouts.hello.halted")));
        ck_assert_str_eq(h_json_str(doc, "nodes.b.node"), "b");
        json_object_put(doc);
        nb.max_failures = 2;
        doc = fleet_to_json(nb.fleet);
        ck_assert(!json_object_get_boolean(h_json_path(doc, "rollouts.hello.halted")));
        json_object_put(doc);
        /* The failure is not under the lease: it outlives its node. */
        char key[128];
        snprintf(key, sizeof key, "%s/fail/hello/hello-v2/a", PREFIX);
        node_kill(&na);
        char *v = h_etcd_get(&etcd, key);
        ck_assert_ptr_nonnull(v);
        free(v);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("fleet_etcd");
        TCase *tc = tcase_create("pure");
        tcase_add_test(tc, lease_answers);
        tcase_add_test(tc, txn_answers);
        tcase_add_test(tc, range_answer);
        tcase_add_test(tc, watch_messages);
        tcase_add_test(tc, slot_rule);
        suite_add_tcase(s, tc);
        if (system("command -v etcd >/dev/null 2>&1") != 0)
                return s; /* the etcd cases need Debian's etcd-server */
        const struct {
                const char *name;
                const TTest *test;
        } cases[] = {
            {"slots", slots_one_at_a_time},
            {"told", a_node_that_asks_only_when_told_gets_its_slot},
            {"given_back", a_slot_given_back_at_once_leaves_no_key},
            {"wanted_again", a_slot_wanted_again_while_given_back},
            {"killed_holder", slot_of_a_killed_holder},
            {"partition", no_slot_without_a_fresh_lease},
            {"failures", failures_and_the_fleet_document},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                tc = tcase_create(cases[i].name);
                tcase_add_checked_fixture(tc, setup_etcd, teardown_etcd);
                tcase_set_timeout(tc, 90);
                tcase_add_test(tc, cases[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_run_suite(suite());
}
