/* A fleet of five real liid nodes on one machine, each under a private
 * systemd manager of its own, all watching one real 3-member etcd cluster
 * (tests/harness/fleet.h). Documents are signed with the real minisign and
 * written into etcd in one transaction, as a publisher writes them. liid
 * polls only once an hour here: every change a node applies came through
 * its watch (or a sync asked for). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet.h"
#include "util.h"

#define NODES 5

static struct h_fleet fleet;

static const struct h_service v1 = {.name = "hello", .artifact = 1};
static const struct h_service v2 = {.name = "hello", .artifact = 2};
static const struct h_service v3 = {.name = "hello", .artifact = 3};
/* The sample has three builds; later versions are the first two again,
 * saying another version name (the last --version-name wins). */
static const struct h_service v4 = {
    .name = "hello", .artifact = 1, .extra_args = ",\"--version-name\",\"v4\""};
static const struct h_service v5 = {
    .name = "hello", .artifact = 2, .extra_args = ",\"--version-name\",\"v5\""};

static void setup(void)
{
        const char *name = tcase_name();
        h_fleet_setup(&fleet, name ? name : "test", NODES);
        /* A read that etcd cannot answer (a member frozen, or without
         * quorum) is given up on after 2 s rather than liid's 30. */
        snprintf(fleet.fetch_timeout, sizeof fleet.fetch_timeout, "2s");
        for (size_t i = 0; i < NODES; i++)
                h_fleet_write_config(&fleet, i);
        h_fleet_start_all(&fleet);
}

static void teardown(void)
{
        h_fleet_teardown(&fleet);
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

/* Publishes svc and waits until every node runs it (at most 60 s: five
 * rollouts side by side on two cores). */
static void publish_everywhere(const struct h_service *svc, const char *version)
{
        h_fleet_publish(&fleet, svc, 1);
        struct h_fleet_want want = {.service = "hello", .serial = fleet.pub.serial};
        char what[64];
        snprintf(what, sizeof what, "hello to run serial %lld (%s)", want.serial, version);
        h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 60000, what);
        for (size_t i = 0; i < NODES; i++)
                assert_version(i, version);
}

/* Every node's current unit of hello, as status says. */
static void current_units(char units[NODES][128], long long gens[NODES])
{
        for (size_t i = 0; i < NODES; i++) {
                json_object *st = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, i, "/v1/status", &st), 200);
                const char *unit = h_json_str(st, "services.hello.current.unit");
                ck_assert_ptr_nonnull(unit);
                snprintf(units[i], 128, "%s", unit);
                gens[i] = h_json_int(st, "services.hello.current.generation");
                json_object_put(st);
        }
}

static bool unit_active(size_t i, const char *unit)
{
        return h_unit_active(&fleet.node[i].env, unit);
}

/* The old unit's stop job may still run when status says the new one runs;
 * it is done when the node's manager no longer lists it as active. */
static void assert_retired(size_t i, const char *unit)
{
        for (int k = 0; k < 200 && unit_active(i, unit); k++)
                usleep(20 * 1000);
        ck_assert_msg(!unit_active(i, unit), "%s: %s still runs", fleet.node[i].name, unit);
}

/* Nothing was replaced: each node runs the unit it ran before, healthy,
 * serving. */
static void assert_unchanged(char units[NODES][128], long long gens[NODES], const char *version)
{
        char now[NODES][128];
        long long now_gens[NODES];
        current_units(now, now_gens);
        for (size_t i = 0; i < NODES; i++) {
                ck_assert_msg(strcmp(now[i], units[i]) == 0 && now_gens[i] == gens[i],
                              "%s replaced %s with %s", fleet.node[i].name, units[i], now[i]);
                ck_assert_msg(unit_active(i, units[i]), "%s: %s is not active", fleet.node[i].name,
                              units[i]);
                assert_version(i, version);
        }
}

static bool source_error_set(json_object *status, void *unused)
{
        (void)unused;
        return h_json_str(status, "source.error") != NULL;
}

static bool log_mentions(size_t i, const char *text)
{
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "grep -qF '%s' '%s/liid.log'", text, fleet.node[i].env.dir);
        return system(cmd) == 0;
}

/* Writes a document into etcd that no trusted key signed, and waits until
 * every node refused it, saying why. */
static void put_forged(const char *prepare, const char *why)
{
        char cmd[3000];
        snprintf(cmd, sizeof cmd, "set -e; cd '%s'; %s", fleet.dir, prepare);
        ck_assert_int_eq(system(cmd), 0);
        char doc[700], sig[720];
        snprintf(doc, sizeof doc, "%s/forged.json", fleet.dir);
        snprintf(sig, sizeof sig, "%s.minisig", doc);
        h_fleet_put(&fleet, doc, sig);
        char what[128];
        snprintf(what, sizeof what, "the refusal: source.error mentions \"%s\"", why);
        h_fleet_wait_all(&fleet, h_source_error_mentions, (void *)why, 20000, what);
}

START_TEST(test_publish_replace_and_forgeries)
{
        publish_everywhere(&v1, "v1");
        char units[NODES][128];
        long long gens[NODES];
        current_units(units, gens);

        /* v2 replaces v1 on every node, and every old unit is retired. */
        publish_everywhere(&v2, "v2");
        for (size_t i = 0; i < NODES; i++)
                assert_retired(i, units[i]);
        current_units(units, gens);

        /* Anyone who can write to etcd can put a document there: etcd is no
         * trust root. A document signed by a key no node trusts ... */
        put_forged("minisign -G -W -f -p forger.pub -s forger.key >/dev/null; "
                   "sed 's/\"serial\":2,/\"serial\":7,/; s/--version-name\",\"v2/"
                   "--version-name\",\"forged/' www/desired.json > forged.json; "
                   "minisign -S -s forger.key -m forged.json -t forged >/dev/null",
                   "is not trusted");
        /* ... and the published document changed under its real signature. */
        put_forged("sed 's/\"serial\":2,/\"serial\":8,/; s/--version-name\",\"v2/"
                   "--version-name\",\"forged/' www/desired.json > forged.json; "
                   "cp www/desired.json.minisig forged.json.minisig",
                   "signature does not match");
        for (size_t i = 0; i < NODES; i++) {
                json_object *st = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, i, "/v1/status", &st), 200);
                ck_assert_int_eq(h_json_int(st, "source.serial"), 2);
                json_object_put(st);
        }
        assert_unchanged(units, gens, "v2");

        /* A node without its liid (n4's stopped, n5's killed) keeps serving
         * what it ran, and catches up once liid is back. */
        int port[NODES];
        for (size_t i = 0; i < NODES; i++) {
                json_object *st = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, i, "/v1/services/hello", &st), 200);
                port[i] = (int)h_json_int(st, "current.port");
                json_object_put(st);
        }
        h_fleet_signal(&fleet, 3, SIGTERM);
        h_fleet_signal(&fleet, 4, SIGKILL);
        h_fleet_publish(&fleet, &v3, 1);
        struct h_fleet_want want = {.service = "hello", .serial = fleet.pub.serial};
        for (size_t i = 0; i < 3; i++)
                json_object_put(
                    h_fleet_wait(&fleet, i, h_fleet_runs_serial, &want, 60000, "hello to run v3"));
        for (size_t i = 3; i < NODES; i++) {
                char *body = NULL;
                ck_assert_int_eq(h_http_get(port[i], "/version", &body), 200);
                ck_assert_str_eq(body, "v2\n");
                free(body);
                h_fleet_start(&fleet, i);
        }
        h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 60000, "hello to run v3");
        for (size_t i = 0; i < NODES; i++)
                assert_version(i, "v3");
}
END_TEST

START_TEST(test_compaction_and_partition)
{
        publish_everywhere(&v1, "v1");

        /* n3 (which watches through member 2) is frozen while its member
         * goes away and the history it would resume from is compacted: only
         * reading the keys again can bring it the newest document. (With
         * its member still there, the watch's connection would survive the
         * freeze and hand it the buffered events: no compaction in sight.) */
        const size_t frozen = 2;
        ck_assert_int_eq(fleet.node[frozen].etcd_first, 2);
        h_fleet_signal(&fleet, frozen, SIGSTOP);
        h_etcd_stop_member(&fleet.etcd, 2);
        h_fleet_publish(&fleet, &v3, 1);
        long long rev = h_fleet_publish(&fleet, &v4, 1);
        h_etcd_compact(&fleet.etcd, rev);
        h_fleet_signal(&fleet, frozen, SIGCONT);
        struct h_fleet_want want = {.service = "hello", .serial = fleet.pub.serial};
        h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 60000, "hello to run v4");
        for (size_t i = 0; i < NODES; i++)
                assert_version(i, "v4");
        /* n3 never saw v3: v4 is the generation after v1 there. */
        json_object *st = NULL;
        ck_assert_int_eq(h_fleet_get(&fleet, frozen, "/v1/services/hello", &st), 200);
        ck_assert_int_eq(h_json_int(st, "current.generation"), 2);
        json_object_put(st);
        ck_assert_msg(log_mentions(frozen, "compacted; the keys are read again"),
                      "n3's log does not mention the compaction: the test proved nothing");
        h_etcd_start_member(&fleet.etcd, 2);

        /* Two of three members frozen: etcd has no quorum, and a node that
         * asks (a sync) gets no answer. Every service keeps serving and
         * nothing is replaced. */
        char units[NODES][128];
        long long gens[NODES];
        current_units(units, gens);
        h_fleet_etcd_freeze(&fleet, 0, true);
        h_fleet_etcd_freeze(&fleet, 1, true);
        for (size_t i = 0; i < NODES; i++) {
                json_object *o = NULL;
                ck_assert_int_eq(h_api_post(&fleet.node[i].env, "/v1/sync", &o), 200);
                json_object_put(o);
        }
        h_fleet_wait_all(&fleet, source_error_set, NULL, 30000,
                         "the sync's failure without quorum (source.error)");
        for (size_t i = 0; i < NODES; i++) {
                json_object *st2 = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, i, "/v1/services/hello", &st2), 200);
                char *body = NULL;
                ck_assert_int_eq(
                    h_http_get((int)h_json_int(st2, "current.port"), "/healthz", &body), 200);
                free(body);
                json_object_put(st2);
        }
        assert_unchanged(units, gens, "v4");

        /* Quorum back: the next publish reaches every node. */
        h_fleet_etcd_freeze(&fleet, 0, false);
        h_fleet_etcd_freeze(&fleet, 1, false);
        publish_everywhere(&v5, "v5");
}
END_TEST

/* Settled on the newest document: runs its spec, or is held back on what
 * it runs by the rollout's percentage. */
static bool settled_or_held(json_object *status, void *want)
{
        struct h_fleet_want *w = want;
        if (h_fleet_runs_serial(status, want))
                return true;
        const char *state = h_json_str(status, "services.hello.rollout.state");
        return h_json_int(status, "source.serial") >= w->serial && state &&
               strcmp(state, "outside-canary") == 0 &&
               json_object_get_boolean(h_json_path(status, "services.hello.current.healthy"));
}

START_TEST(test_canary_picks_its_buckets)
{
        publish_everywhere(&v1, "v1");
        /* A percentage that takes exactly the two nodes of the lowest
         * buckets (with two decimals, any two distinct buckets can be
         * told apart). */
        unsigned bucket[NODES], sorted[NODES];
        for (size_t i = 0; i < NODES; i++) {
                bucket[i] = h_fleet_bucket(fleet.node[i].name, "hello", "hello-v2");
                sorted[i] = bucket[i];
                for (size_t k = i; k > 0 && sorted[k - 1] > sorted[k]; k--) {
                        unsigned t = sorted[k];
                        sorted[k] = sorted[k - 1];
                        sorted[k - 1] = t;
                }
        }
        ck_assert_uint_lt(sorted[1], sorted[2]);
        unsigned hundredths = sorted[1] + 1;
        char rollout[128];
        snprintf(rollout, sizeof rollout, "{\"id\":\"hello-v2\",\"percent\":%u.%02u}",
                 hundredths / 100, hundredths % 100);
        struct h_service canary = v2;
        canary.rollout = rollout;
        h_fleet_publish(&fleet, &canary, 1);
        struct h_fleet_want want = {.service = "hello", .serial = fleet.pub.serial};
        h_fleet_wait_all(&fleet, settled_or_held, &want, 60000,
                         "hello to run v2 or be held back by the canary");
        size_t inside = 0;
        for (size_t i = 0; i < NODES; i++) {
                bool in = bucket[i] < hundredths;
                inside += in;
                json_object *st = NULL;
                ck_assert_int_eq(h_fleet_get(&fleet, i, "/v1/services/hello", &st), 200);
                ck_assert_msg(h_json_int(st, "rollout.bucket") == bucket[i],
                              "%s: liid says bucket %lld, the contract %u", fleet.node[i].name,
                              h_json_int(st, "rollout.bucket"), bucket[i]);
                ck_assert_str_eq(h_json_str(st, "rollout.state"),
                                 in ? "applied" : "outside-canary");
                json_object_put(st);
                assert_version(i, in ? "v2" : "v1");
        }
        ck_assert_uint_eq(inside, 2);

        /* The same rollout at 100%: the rest follow. */
        canary.rollout = "{\"id\":\"hello-v2\",\"percent\":100}";
        h_fleet_publish(&fleet, &canary, 1);
        want.serial = fleet.pub.serial;
        h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 60000, "hello to run v2 at 100%");
        for (size_t i = 0; i < NODES; i++)
                assert_version(i, "v2");
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("fleet");
        const struct {
                const char *name;
                const TTest *test;
        } cases[] = {
            {"publish", test_publish_replace_and_forgeries},
            {"disconnected", test_compaction_and_partition},
            {"canary", test_canary_picks_its_buckets},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                TCase *tc = tcase_create(cases[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 240);
                tcase_add_test(tc, cases[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
