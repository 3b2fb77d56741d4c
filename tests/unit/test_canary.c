/* A fleet rollout's rules: the bucket every node computes the same way,
 * and whether a node takes a new spec or is held back, and why. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary.h"

/* Worked out independently: python3 -c 'import hashlib; d = hashlib.sha256(
 * b"n1\0hello\0hello-v2").digest(); print(int.from_bytes(d[:8], "big") % 10000)' */
START_TEST(bucket_is_the_contract_hash)
{
        ck_assert_uint_eq(canary_bucket("n1", "hello", "hello-v2"), 225);
        ck_assert_uint_eq(canary_bucket("h1", "web", "web-2026-12"), 6680);
        /* The separators count: "n1"+"hello" is not "n1h"+"ello". */
        ck_assert_uint_ne(canary_bucket("n1", "hello", "x"), canary_bucket("n1h", "ello", "x"));
}
END_TEST

/* Over many nodes, a percentage takes about that share, and raising it
 * only adds nodes: who was in stays in. */
START_TEST(percentages_take_their_share_and_only_grow)
{
        const unsigned nodes = 2000;
        unsigned in10 = 0, in50 = 0;
        for (unsigned i = 0; i < nodes; i++) {
                char node[16];
                snprintf(node, sizeof node, "node-%u", i);
                unsigned b = canary_bucket(node, "hello", "hello-v2");
                ck_assert_uint_lt(b, CANARY_BUCKETS);
                struct canary_input in = {.bucket = b, .runs_spec = true, .new_spec = true};
                in.percent_hundredths = 1000;
                bool at10 = canary_decide(&in).state == CANARY_APPLIED;
                in.percent_hundredths = 5000;
                bool at50 = canary_decide(&in).state == CANARY_APPLIED;
                ck_assert_msg(!at10 || at50, "%s is in at 10%% but not at 50%%", node);
                in10 += at10;
                in50 += at50;
        }
        ck_assert_msg(in10 > 140 && in10 < 260, "10%% took %u of %u", in10, nodes);
        ck_assert_msg(in50 > 900 && in50 < 1100, "50%% took %u of %u", in50, nodes);
}
END_TEST

START_TEST(outside_the_canary_says_its_percentage)
{
        struct canary_input in = {
            .bucket = 4711, .percent_hundredths = 1000, .runs_spec = true, .new_spec = true};
        struct canary_verdict v = canary_decide(&in);
        ck_assert_int_eq(v.state, CANARY_OUTSIDE);
        ck_assert_str_eq(v.reason, "outside canary 10%");
        ck_assert_str_eq(canary_state_to_string(v.state), "outside-canary");

        in.percent_hundredths = 50; /* 0.5% */
        ck_assert_str_eq(canary_decide(&in).reason, "outside canary 0.5%");
        in.percent_hundredths = 1225;
        ck_assert_str_eq(canary_decide(&in).reason, "outside canary 12.25%");
        /* 0% holds back every node that runs something, 100% none. */
        in.bucket = 0;
        in.percent_hundredths = 0;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_OUTSIDE);
        in.bucket = CANARY_BUCKETS - 1;
        in.percent_hundredths = 10000;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_APPLIED);
}
END_TEST

/* A node that runs nothing of the service takes the spec whatever its
 * bucket; one that runs the desired spec has nothing to hold back. */
START_TEST(nothing_to_keep_is_never_held)
{
        struct canary_input in = {.bucket = 9999,
                                  .percent_hundredths = 100,
                                  .runs_spec = false,
                                  .new_spec = true,
                                  .fleet = true,
                                  .max_parallel = 1,
                                  .max_failures = 1,
                                  .failures = 5};
        ck_assert_int_eq(canary_decide(&in).state, CANARY_APPLIED);
        in.runs_spec = true;
        in.new_spec = false;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_APPLIED);
        ck_assert_str_eq(canary_decide(&in).reason, "runs the desired spec");
}
END_TEST

/* A node where the spec failed waits for nothing and asks for no slot,
 * whatever its bucket or the fleet's state. */
START_TEST(failed_here_holds_nothing)
{
        struct canary_input in = {.bucket = 10,
                                  .percent_hundredths = 10000,
                                  .runs_spec = true,
                                  .new_spec = true,
                                  .failed_here = true,
                                  .fleet = true,
                                  .max_parallel = 1,
                                  .lease_fresh = true};
        struct canary_verdict v = canary_decide(&in);
        ck_assert_int_eq(v.state, CANARY_APPLIED);
        ck_assert_str_eq(v.reason, "failed on this node");
}
END_TEST

START_TEST(slots_failures_and_the_lease_in_a_fleet)
{
        struct canary_input in = {.bucket = 10,
                                  .percent_hundredths = 10000,
                                  .runs_spec = true,
                                  .new_spec = true,
                                  .fleet = true,
                                  .max_parallel = 2,
                                  .max_failures = 3,
                                  .lease_fresh = true};
        struct canary_verdict v = canary_decide(&in);
        ck_assert_int_eq(v.state, CANARY_WAITING_FOR_SLOT);
        ck_assert_str_eq(v.reason, "waiting for a slot");
        in.slot_held = true;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_APPLIED);

        /* No step without a fresh lease, slot or not. */
        in.lease_fresh = false;
        v = canary_decide(&in);
        ck_assert_int_eq(v.state, CANARY_WAITING_FOR_SLOT);
        ck_assert_str_eq(v.reason, "waiting for etcd (no fresh lease)");
        in.max_parallel = 0;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_WAITING_FOR_SLOT);
        in.lease_fresh = true;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_APPLIED);

        /* Halted once max_failures nodes failed, before anything else. */
        in.failures = 2;
        ck_assert_int_eq(canary_decide(&in).state, CANARY_APPLIED);
        in.failures = 3;
        in.lease_fresh = false;
        v = canary_decide(&in);
        ck_assert_int_eq(v.state, CANARY_HALTED);
        ck_assert_str_eq(v.reason, "halted: 3 nodes failed (max_failures 3)");
        ck_assert_str_eq(canary_state_to_string(v.state), "halted");
}
END_TEST

/* Without etcd there are no slots or failure records: the percentage
 * still holds, the rest is said to be not enforced. */
START_TEST(without_a_fleet_only_the_percentage_counts)
{
        struct canary_input in = {.bucket = 10,
                                  .percent_hundredths = 5000,
                                  .runs_spec = true,
                                  .new_spec = true,
                                  .max_parallel = 1,
                                  .max_failures = 1,
                                  .failures = 9};
        struct canary_verdict v = canary_decide(&in);
        ck_assert_int_eq(v.state, CANARY_APPLIED);
        ck_assert_ptr_nonnull(strstr(v.reason, "need an etcd source: not enforced"));
        in.max_parallel = in.max_failures = 0;
        ck_assert_str_eq(canary_decide(&in).reason, "in canary 50%");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("canary");
        TCase *tc = tcase_create("rules");
        tcase_add_test(tc, bucket_is_the_contract_hash);
        tcase_add_test(tc, percentages_take_their_share_and_only_grow);
        tcase_add_test(tc, outside_the_canary_says_its_percentage);
        tcase_add_test(tc, nothing_to_keep_is_never_held);
        tcase_add_test(tc, slots_failures_and_the_lease_in_a_fleet);
        tcase_add_test(tc, failed_here_holds_nothing);
        tcase_add_test(tc, without_a_fleet_only_the_percentage_counts);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
