/* A fleet rollout across five real liid nodes on one machine (each under a
 * private systemd manager of its own, all on one real 3-member etcd; see
 * tests/harness/fleet.h), steered by the document's rollout block: a
 * percentage reaches exactly the nodes whose bucket is inside it, then all
 * of them; max_parallel keeps more than that many nodes from replacing at
 * once (checked from the nodes' own event times); max_failures halts a bad
 * release on every node; a node killed holding a slot frees it when its
 * lease expires. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "sha256.h"
#include "util.h"

#define NODES 5

static struct h_fleet fleet;

static void setup(void)
{
        const char *name = tcase_name();
        h_fleet_setup(&fleet, name ? name : "rollout", NODES);
        snprintf(fleet.fetch_timeout, sizeof fleet.fetch_timeout, "2s");
        /* A dead node's slot frees within seconds, not 15. */
        snprintf(fleet.config_extra, sizeof fleet.config_extra, "[etcd]\nlease_ttl = 3s\n");
        for (size_t i = 0; i < NODES; i++)
                h_fleet_write_config(&fleet, i);
        h_fleet_start_all(&fleet);
}

static void teardown(void)
{
        h_fleet_teardown(&fleet);
}

/* The contract's bucket, worked out here on its own: the first 8 bytes of
 * SHA-256(node NUL service NUL id), big-endian, modulo 10000. */
static unsigned bucket(const char *node, const char *service, const char *id)
{
        char buf[256];
        size_t n = (size_t)snprintf(buf, sizeof buf, "%s%c%s%c%s", node, 0, service, 0, id);
        char hex[SHA256_HEX_LEN + 1];
        ck_assert_int_eq(sha256_hex_of(buf, n, hex), 0);
        hex[16] = '\0';
        return (unsigned)(strtoull(hex, NULL, 16) % 10000);
}

static struct h_service version(int artifact, const char *name, const char *rollout,
                                const char *more)
{
        static char extra[8][256];
        static int k;
        char *e = extra[k++ % 8];
        snprintf(e, sizeof extra[0], ",\"--version-name\",\"%s\"%s", name, more ? more : "");
        return (struct h_service){
            .name = "hello", .artifact = artifact, .extra_args = e, .rollout = rollout};
}

static void publish_everywhere(const struct h_service *svc)
{
        h_fleet_publish(&fleet, svc, 1);
        struct h_fleet_want want = {.service = "hello", .serial = fleet.pub.serial};
        h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 90000, "every node on the release");
}

static void assert_version(size_t i, const char *want)
{
        char *got = h_fleet_instance_version(&fleet, i, "hello");
        char line[32];
        snprintf(line, sizeof line, "%s\n", want);
        ck_assert_msg(got && strcmp(got, line) == 0, "%s's hello answers %s, not %s",
                      fleet.node[i].name, got ? got : "nothing", want);
        free(got);
}

struct rollout_want {
        long long serial;
        const char *state; /* the node's services.hello.rollout.state */
};

static bool rollout_settled(json_object *status, void *userdata)
{
        const struct rollout_want *w = userdata;
        const char *state = h_json_str(status, "services.hello.rollout.state");
        const char *running = h_json_str(status, "services.hello.state");
        return h_json_int(status, "source.serial") >= w->serial && state &&
               strcmp(state, w->state) == 0 && running && strcmp(running, "running") == 0 &&
               json_object_get_boolean(h_json_path(status, "services.hello.current.healthy"));
}

/* 40%: exactly the nodes whose bucket is below 4000 take v2, the others
 * stay on v1 and say why; 100% then takes every node. */
START_TEST(percentage_reaches_exactly_the_bucketed_nodes)
{
        struct h_service v1 = version(1, "v1", NULL, NULL);
        publish_everywhere(&v1);

        /* An id that puts two or three of the five inside 40%, so that
         * both kinds of node are seen. */
        char id[32];
        bool inside[NODES];
        unsigned n_inside = 0;
        for (int k = 0; k < 100; k++) {
                snprintf(id, sizeof id, "hello-v2-%d", k);
                n_inside = 0;
                for (size_t i = 0; i < NODES; i++)
                        n_inside += inside[i] = bucket(fleet.node[i].name, "hello", id) < 4000;
                if (n_inside == 2 || n_inside == 3)
                        break;
        }
        ck_assert(n_inside == 2 || n_inside == 3);
        char block[96];
        snprintf(block, sizeof block, "{\"id\":\"%s\",\"percent\":40}", id);
        struct h_service v2 = version(2, "v2", block, NULL);
        h_fleet_publish(&fleet, &v2, 1);
        for (size_t i = 0; i < NODES; i++) {
                struct rollout_want w = {.serial = fleet.pub.serial,
                                         .state = inside[i] ? "applied" : "outside-canary"};
                struct h_fleet_want run = {.service = "hello", .serial = fleet.pub.serial};
                json_object *st = h_fleet_wait(&fleet, i, rollout_settled, &w, 60000, w.state);
                if (inside[i]) {
                        json_object_put(st);
                        json_object_put(
                            h_fleet_wait(&fleet, i, h_fleet_runs_serial, &run, 60000, "v2"));
                        assert_version(i, "v2");
                } else {
                        ck_assert_str_eq(h_json_str(st, "services.hello.rollout.reason"),
                                         "outside canary 40%");
                        ck_assert_int_eq(h_json_int(st, "services.hello.rollout.bucket"),
                                         bucket(fleet.node[i].name, "hello", id));
                        ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
                        json_object_put(st);
                        assert_version(i, "v1");
                }
        }
        /* The fleet view, through any node, shows each node's verdict once
         * every node's status put (a moment after its events) reached it:
         * no event of node 0 says when, so it is looked at for up to 20 s. */
        char want_states[NODES][32];
        for (size_t i = 0; i < NODES; i++)
                snprintf(want_states[i], sizeof want_states[i], "%s",
                         inside[i] ? "applied" : "outside-canary");
        char last[160] = "";
        bool seen = false;
        for (int k = 0; k < 200 && !seen; k++) {
                json_object *view = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, 0, "/v1/fleet", &view), 200);
                seen = true;
                for (size_t i = 0; i < NODES && seen; i++) {
                        char path[96];
                        snprintf(path, sizeof path, "nodes.%s.services.hello.rollout.state",
                                 fleet.node[i].name);
                        const char *state = h_json_str(view, path);
                        if (!state || strcmp(state, want_states[i]) != 0) {
                                snprintf(last, sizeof last, "%s: %s", path,
                                         state ? state : "missing");
                                seen = false;
                        }
                }
                json_object_put(view);
                if (!seen)
                        usleep(100 * 1000);
        }
        ck_assert_msg(seen, "the fleet view never showed every node's verdict; last %s", last);

        snprintf(block, sizeof block, "{\"id\":\"%s\",\"percent\":100}", id);
        struct h_service v2_all = version(2, "v2", block, NULL);
        publish_everywhere(&v2_all);
        for (size_t i = 0; i < NODES; i++)
                assert_version(i, "v2");
}
END_TEST

/* From node i's events: when generation gen of hello started, and when
 * the generation before it was retired; 0 for what has not happened. */
static void read_window(size_t i, long long gen, long long *start, long long *end)
{
        char *text = NULL;
        ck_assert_int_eq(h_api_get_text(&fleet.node[i].env, "/v1/events", &text), 200);
        *start = *end = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                json_object *e = json_tokener_parse(line);
                const char *type = h_json_str(e, "type");
                const char *svc = h_json_str(e, "service");
                if (type && svc && strcmp(svc, "hello") == 0) {
                        if (strcmp(type, "instance.started") == 0 &&
                            h_json_int(e, "generation") == gen)
                                *start = h_json_int(e, "time_usec");
                        if (strcmp(type, "instance.stopped") == 0 &&
                            h_json_int(e, "generation") == gen - 1)
                                *end = h_json_int(e, "time_usec");
                }
                json_object_put(e);
        }
        free(text);
}

/* The same once both happened: the old unit's stop ends after the node
 * already runs the new one (bounded: 10 s). */
static void replacement_window(size_t i, long long gen, long long *start, long long *end)
{
        for (int k = 0; k < 100; k++) {
                read_window(i, gen, start, end);
                if (*start && *end)
                        break;
                usleep(100 * 1000);
        }
        ck_assert_msg(*start && *end && *start <= *end, "%s: no replacement window for gen %lld",
                      fleet.node[i].name, gen);
}

/* max_parallel 1: no two nodes are ever between "new instance started"
 * and "old one retired" at once. */
START_TEST(max_parallel_one_replaces_one_node_at_a_time)
{
        struct h_service v1 = version(1, "v1", NULL, NULL);
        publish_everywhere(&v1);
        /* Checks that take a while widen each window. */
        struct h_service v2 = version(2, "v2", "{\"id\":\"hello-v2\",\"max_parallel\":1}",
                                      ",\"--healthy-after\",\"400\"");
        publish_everywhere(&v2);
        long long start[NODES], end[NODES];
        for (size_t i = 0; i < NODES; i++)
                replacement_window(i, 2, &start[i], &end[i]);
        for (size_t i = 0; i < NODES; i++)
                for (size_t j = i + 1; j < NODES; j++)
                        ck_assert_msg(end[i] < start[j] || end[j] < start[i],
                                      "%s (%lld–%lld µs) and %s (%lld–%lld µs) replaced at once",
                                      fleet.node[i].name, start[i], end[i], fleet.node[j].name,
                                      start[j], end[j]);
}
END_TEST

static bool failed_v2(json_object *status, void *unused)
{
        const char *result = h_json_str(status, "services.hello.last_rollout.result");
        return result && strcmp(result, "failed") == 0;
}

static bool failed_or_halted(json_object *status, void *unused)
{
        struct rollout_want w = {.serial = 0, .state = "halted"};
        return failed_v2(status, NULL) || rollout_settled(status, &w);
}

/* A release whose instances never get healthy stops after max_failures
 * nodes failed it; the others keep v1 and say it is halted. */
START_TEST(a_bad_release_halts_after_max_failures)
{
        struct h_service v1 = version(1, "v1", NULL, NULL);
        publish_everywhere(&v1);
        struct h_service bad =
            version(2, "v2", "{\"id\":\"bad-v2\",\"max_parallel\":1,\"max_failures\":2}",
                    ",\"--never-healthy\"");
        bad.health = "{\"http\":\"http://127.0.0.1:${PORT}/healthz\",\"interval\":\"100ms\","
                     "\"timeout\":\"1s\",\"passes\":1,\"deadline\":\"2s\"}";
        h_fleet_publish(&fleet, &bad, 1);
        /* Every node ends either having failed it or halted. */
        unsigned failed = 0, halted = 0;
        for (size_t i = 0; i < NODES; i++) {
                json_object *st =
                    h_fleet_wait(&fleet, i, failed_or_halted, NULL, 90000, "failed or halted");
                bool has_failed = failed_v2(st, NULL);
                failed += has_failed;
                halted += !has_failed;
                if (!has_failed)
                        ck_assert_str_eq(h_json_str(st, "services.hello.rollout.reason"),
                                         "halted: 2 nodes failed (max_failures 2)");
                json_object_put(st);
                assert_version(i, "v1");
        }
        ck_assert_msg(failed == 2 && halted == NODES - 2, "%u failed, %u halted", failed, halted);
        /* The fleet view says so too, once the nodes' puts reached it. */
        bool halted_view = false;
        int n_failures = -1;
        for (int k = 0; k < 200 && !halted_view; k++) {
                json_object *view = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, 0, "/v1/fleet", &view), 200);
                halted_view = json_object_get_boolean(h_json_path(view, "rollouts.hello.halted"));
                json_object *f = h_json_path(view, "rollouts.hello.failures");
                n_failures = f ? json_object_object_length(f) : -1;
                json_object_put(view);
                if (!halted_view)
                        usleep(100 * 1000);
        }
        ck_assert_msg(halted_view, "the fleet view never said halted");
        ck_assert_int_eq(n_failures, 2);
}
END_TEST

static bool checking(json_object *status, void *unused)
{
        const char *state = h_json_str(status, "services.hello.state");
        return state && strcmp(state, "checking") == 0;
}

/* The node that holds the only slot is killed mid-rollout: its slot frees
 * when its lease expires, and another node takes it. */
START_TEST(a_killed_holder_frees_its_slot_with_its_lease)
{
        struct h_service v1 = version(1, "v1", NULL, NULL);
        publish_everywhere(&v1);
        struct h_service v2 = version(2, "v2", "{\"id\":\"slow-v2\",\"max_parallel\":1}",
                                      ",\"--healthy-after\",\"60000\"");
        v2.health = "{\"http\":\"http://127.0.0.1:${PORT}/healthz\",\"interval\":\"100ms\","
                    "\"timeout\":\"1s\",\"passes\":1,\"deadline\":\"120s\"}";
        h_fleet_publish(&fleet, &v2, 1);
        /* Who got the slot: the one node checking its new instance. */
        size_t holder = NODES;
        for (int k = 0; k < 300 && holder == NODES; k++) {
                for (size_t i = 0; i < NODES && holder == NODES; i++) {
                        json_object *st = NULL;
                        h_fleet_get(&fleet, i, "/v1/status", &st);
                        if (st && checking(st, NULL))
                                holder = i;
                        json_object_put(st);
                }
                if (holder == NODES)
                        usleep(100 * 1000);
        }
        ck_assert_msg(holder < NODES, "no node started v2");
        h_fleet_signal(&fleet, holder, SIGKILL);
        time_t killed = time(NULL);
        /* Another node starts v2 once the dead node's lease (3 s) expired. */
        size_t next = NODES;
        for (int k = 0; k < 200 && next == NODES; k++) {
                for (size_t i = 0; i < NODES && next == NODES; i++) {
                        if (i == holder)
                                continue;
                        json_object *st = NULL;
                        h_fleet_get(&fleet, i, "/v1/status", &st);
                        if (st && checking(st, NULL))
                                next = i;
                        json_object_put(st);
                }
                if (next == NODES)
                        usleep(100 * 1000);
        }
        ck_assert_msg(next < NODES, "no other node got the slot after the holder died");
        ck_assert_msg(time(NULL) - killed <= 15, "the slot took %ld s to free",
                      (long)(time(NULL) - killed));
}
END_TEST

/* Node i's hello is being replaced: a new instance started, not yet
 * promoted. */
static bool replacing(json_object *status, void *unused)
{
        return h_json_path(status, "services.hello.next") != NULL;
}

static size_t count_replacing(void)
{
        size_t n = 0;
        for (size_t i = 0; i < NODES; i++) {
                json_object *st = NULL;
                if (h_fleet_get(&fleet, i, "/v1/status", &st) == 200 && replacing(st, NULL))
                        n++;
                json_object_put(st);
        }
        return n;
}

/* Two of three members stopped mid-rollout: no node starts a replacement
 * without a fresh lease, every instance keeps serving, and the rollout
 * goes on once the members are back. */
START_TEST(no_step_starts_without_quorum)
{
        struct h_service v1 = version(1, "v1", NULL, NULL);
        publish_everywhere(&v1);
        struct h_service v2 = version(2, "v2", "{\"id\":\"hello-v2\",\"max_parallel\":1}",
                                      ",\"--healthy-after\",\"1500\"");
        h_fleet_publish(&fleet, &v2, 1);
        long long serial = fleet.pub.serial;
        /* Wait until one node is replacing, then take the quorum away. */
        size_t first = NODES;
        for (int k = 0; k < 300 && first == NODES; k++) {
                for (size_t i = 0; i < NODES && first == NODES; i++) {
                        json_object *st = NULL;
                        if (h_fleet_get(&fleet, i, "/v1/status", &st) == 200 && replacing(st, NULL))
                                first = i;
                        json_object_put(st);
                }
                if (first == NODES)
                        usleep(50 * 1000);
        }
        ck_assert_msg(first < NODES, "no node started v2");
        h_fleet_etcd_freeze(&fleet, 1, true);
        h_fleet_etcd_freeze(&fleet, 2, true);
        /* For three lease TTLs (3 s each), at most the node that had its
         * slot goes on; no other starts, and every node serves. */
        for (int k = 0; k < 90; k++) {
                size_t n = count_replacing();
                ck_assert_msg(n <= 1, "%zu nodes replacing without quorum", n);
                usleep(100 * 1000);
        }
        for (size_t i = 0; i < NODES; i++) {
                char *got = h_fleet_instance_version(&fleet, i, "hello");
                ck_assert_msg(got, "%s's hello does not answer without quorum", fleet.node[i].name);
                free(got);
        }
        unsigned on_v2 = 0;
        for (size_t i = 0; i < NODES; i++) {
                struct h_fleet_want want = {.service = "hello", .serial = serial};
                json_object *st = NULL;
                h_fleet_get(&fleet, i, "/v1/status", &st);
                on_v2 += st && h_fleet_runs_serial(st, &want);
                json_object_put(st);
        }
        ck_assert_msg(on_v2 <= 1, "%u nodes took v2 without quorum", on_v2);
        h_fleet_etcd_freeze(&fleet, 1, false);
        h_fleet_etcd_freeze(&fleet, 2, false);
        struct h_fleet_want want = {.service = "hello", .serial = serial};
        h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 120000, "v2 everywhere after quorum");
}
END_TEST

static bool source_error_set(json_object *status, void *unused)
{
        return h_json_str(status, "source.error") != NULL;
}

/* A liid started while no etcd member answers runs what it last applied,
 * from its state on disk, and catches up once etcd is back. */
START_TEST(a_node_started_without_etcd_runs_its_last_state)
{
        struct h_service v1 = version(1, "v1", NULL, NULL);
        publish_everywhere(&v1);
        h_fleet_signal(&fleet, 0, SIGTERM);
        for (int m = 0; m < H_ETCD_MEMBERS; m++)
                h_fleet_etcd_freeze(&fleet, m, true);
        h_fleet_start(&fleet, 0);
        json_object *st = h_fleet_wait(&fleet, 0, source_error_set, NULL, 30000, "a source error");
        ck_assert_int_eq(h_json_int(st, "services.hello.current.generation"), 1);
        ck_assert_str_eq(h_json_str(st, "services.hello.state"), "running");
        json_object_put(st);
        assert_version(0, "v1");
        for (int m = 0; m < H_ETCD_MEMBERS; m++)
                h_fleet_etcd_freeze(&fleet, m, false);
        struct h_service v2 = version(2, "v2", NULL, NULL);
        publish_everywhere(&v2);
        assert_version(0, "v2");
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("fleet_rollout");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"percent", percentage_reaches_exactly_the_bucketed_nodes},
            {"max-parallel", max_parallel_one_replaces_one_node_at_a_time},
            {"max-failures", a_bad_release_halts_after_max_failures},
            {"dead-holder", a_killed_holder_frees_its_slot_with_its_lease},
            {"quorum", no_step_starts_without_quorum},
            {"etcd-down-start", a_node_started_without_etcd_runs_its_last_state},
        };
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 400);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
