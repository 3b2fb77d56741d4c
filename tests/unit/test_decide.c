/* The reconcile rules of the brief, and what a failed rollout means, one
 * case each. */
#include <check.h>
#include <stdlib.h>

#include "decide.h"

#define A "aaaa"
#define B "bbbb"

static struct decide_input base(void)
{
        return (struct decide_input){.have_document = true, .want_spec = A, .max_parallel = 4};
}

START_TEST(first_deploy_rolls_out)
{
        struct decide_input in = base();
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(same_spec_alive_is_running)
{
        struct decide_input in = base();
        in.current_spec = A;
        in.current_alive = true;
        ck_assert_int_eq(decide(&in), DECIDE_RUNNING);
}
END_TEST

START_TEST(changed_spec_rolls_out)
{
        struct decide_input in = base();
        in.current_spec = B;
        in.current_alive = true;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(dead_current_is_replaced)
{
        struct decide_input in = base();
        in.current_spec = A;
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(refused_spec_is_not_retried)
{
        struct decide_input in = base();
        in.current_spec = B;
        in.current_alive = true;
        in.refused_spec = A;
        ck_assert_int_eq(decide(&in), DECIDE_REFUSED);
        /* ...until the desired spec changes. */
        in.want_spec = "cccc";
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(empty_refusal_matches_nothing)
{
        struct decide_input in = base();
        in.want_spec = "";
        in.refused_spec = "";
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(max_parallel_queues)
{
        struct decide_input in = base();
        in.running_rollouts = 4;
        ck_assert_int_eq(decide(&in), DECIDE_QUEUE);
        in.running_rollouts = 3;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(in_flight_waits)
{
        struct decide_input in = base();
        in.rollout_in_flight = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        in.rollout_in_flight = false;
        in.removing = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
}
END_TEST

/* A service runs at most two generations: a new one waits while the one
 * before the current is still stopping, unless the current one is dead. */
START_TEST(a_next_generation_waits_for_the_retiring_one)
{
        struct decide_input in = base();
        in.current_spec = B;
        in.current_alive = true;
        in.retiring = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        in.force = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        in.force = false;
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
        in.current_alive = true;
        in.retiring = false;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
        /* What runs the wanted spec just runs. */
        in.current_spec = A;
        in.retiring = true;
        ck_assert_int_eq(decide(&in), DECIDE_RUNNING);
}
END_TEST

START_TEST(absent_service_is_removed)
{
        struct decide_input in = base();
        in.want_spec = NULL;
        in.current_spec = A;
        in.current_alive = true;
        ck_assert_int_eq(decide(&in), DECIDE_REMOVE);
}
END_TEST

START_TEST(no_document_keeps_what_runs)
{
        struct decide_input in = {.have_document = false, .max_parallel = 4};
        ck_assert_int_eq(decide(&in), DECIDE_NOTHING);
        in.current_spec = A;
        in.current_alive = true;
        ck_assert_int_eq(decide(&in), DECIDE_RUNNING);
        /* An instance that died while no document is known comes back
         * from its recorded spec, unless that spec was refused. */
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_RESTORE);
        in.refused_spec = A;
        ck_assert_int_eq(decide(&in), DECIDE_REFUSED);
}
END_TEST

START_TEST(dead_instance_waits_for_its_delay)
{
        struct decide_input in = base();
        in.current_spec = A;
        in.current_alive = false;
        in.backoff_pending = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        /* A new spec does not wait for the old one's delay. */
        in.want_spec = B;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
        /* Nor does a removal. */
        in.want_spec = NULL;
        ck_assert_int_eq(decide(&in), DECIDE_REMOVE);
        /* Without a document, the recorded spec comes back after the delay. */
        in.have_document = false;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        in.backoff_pending = false;
        ck_assert_int_eq(decide(&in), DECIDE_RESTORE);
}
END_TEST

START_TEST(pause_holds_changes_not_restarts)
{
        struct decide_input in = base();
        in.paused = true;
        in.current_spec = B;
        in.current_alive = true;
        ck_assert_int_eq(decide(&in), DECIDE_PAUSED);
        in.want_spec = NULL;
        ck_assert_int_eq(decide(&in), DECIDE_PAUSED);
        /* A dead instance still comes back with the spec it ran. */
        in.want_spec = B;
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
        /* An operator's replace goes through a pause. */
        in.current_alive = true;
        in.force = true;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

/* With a state folder that takes no writes nothing starts, not even a
 * dead instance's replacement or an operator's replace: each would begin
 * by writing the state. What needs no change goes on as before. */
START_TEST(storage_failure_holds_everything_that_starts)
{
        struct decide_input in = base();
        in.storage_failing = true;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* a first deploy */
        in.current_spec = B;
        in.current_alive = true;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* a new spec */
        in.running_rollouts = 4;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* queued, it would start later */
        in.running_rollouts = 0;
        in.want_spec = NULL;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* a removal */
        in.want_spec = B;
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* a dead instance */
        in.have_document = false;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* ... before any document */
        in.have_document = true;
        in.refused_spec = B;
        in.previous_spec = A;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* a revert */
        in.refused_spec = NULL;
        in.current_alive = true;
        in.force = true;
        ck_assert_int_eq(decide(&in), DECIDE_STORAGE); /* an operator's replace */
        in.force = false;
        ck_assert_int_eq(decide(&in), DECIDE_RUNNING);
        in.rollout_in_flight = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        in.rollout_in_flight = false;
        in.want_spec = A;
        in.refused_spec = A;
        ck_assert_int_eq(decide(&in), DECIDE_REFUSED);
        /* A pause says why first. */
        in.refused_spec = NULL;
        in.paused = true;
        ck_assert_int_eq(decide(&in), DECIDE_PAUSED);
        /* Once the folder takes writes, the change starts. */
        in.paused = false;
        in.storage_failing = false;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
}
END_TEST

START_TEST(replace_forces_a_rollout)
{
        struct decide_input in = base();
        in.current_spec = A;
        in.current_alive = true;
        in.force = true;
        ck_assert_int_eq(decide(&in), DECIDE_ROLLOUT);
        in.running_rollouts = 4;
        ck_assert_int_eq(decide(&in), DECIDE_QUEUE);
}
END_TEST

START_TEST(dead_instance_comes_back_when_the_wanted_spec_is_refused)
{
        /* v2 was refused while v1 ran; then v1 died: v1 comes back. */
        struct decide_input in = base();
        in.want_spec = B;
        in.refused_spec = B;
        in.current_spec = A;
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_RESTORE);
        in.backoff_pending = true;
        ck_assert_int_eq(decide(&in), DECIDE_WAIT);
        /* Also while paused: keeping a service up is not a change. */
        in.backoff_pending = false;
        in.paused = true;
        ck_assert_int_eq(decide(&in), DECIDE_RESTORE);
        in.want_spec = "cccc";
        in.refused_spec = NULL;
        ck_assert_int_eq(decide(&in), DECIDE_RESTORE);
}
END_TEST

START_TEST(refused_current_falls_back_to_previous)
{
        /* A revert interrupted by a crash, or a spec out of restarts: its
         * instance is dead and its spec refused; the previous revision runs. */
        struct decide_input in = base();
        in.want_spec = B;
        in.current_spec = B;
        in.refused_spec = B;
        in.previous_spec = A;
        in.current_alive = false;
        ck_assert_int_eq(decide(&in), DECIDE_REVERT);
        in.previous_spec = B;
        ck_assert_int_eq(decide(&in), DECIDE_REFUSED);
        in.previous_spec = NULL;
        ck_assert_int_eq(decide(&in), DECIDE_REFUSED);
}
END_TEST

/* ---- what a failed rollout means ---- */

static struct failure_rules fail_with(enum rollout_kind kind, bool at_fault)
{
        const struct failure_input in = {
            .kind = kind, .spec_at_fault = at_fault, .restarts_left = true};
        return decide_failure(&in);
}

START_TEST(a_refused_spec_is_quarantined)
{
        struct failure_rules f = fail_with(ROLLOUT_DESIRED, true);
        ck_assert(f.verdict);
        ck_assert(f.quarantine);
        ck_assert(!f.retry_later);
        ck_assert(!f.release_hold);
        ck_assert(!f.revert_later);
}
END_TEST

START_TEST(a_dead_instance_is_replaced_until_the_replacements_run_out)
{
        struct failure_input in = {.kind = ROLLOUT_DESIRED,
                                   .spec_at_fault = true,
                                   .replacing_dead = true,
                                   .restarts_left = true};
        struct failure_rules f = decide_failure(&in);
        ck_assert(f.retry_later);
        ck_assert(!f.quarantine);
        in.restarts_left = false;
        f = decide_failure(&in);
        ck_assert(!f.retry_later);
        ck_assert(f.quarantine);
}
END_TEST

START_TEST(no_room_is_no_verdict_but_for_a_rollback)
{
        struct failure_rules f = fail_with(ROLLOUT_DESIRED, false);
        ck_assert(!f.verdict);
        ck_assert(!f.quarantine);
        /* A revert that ran out of room is still due. */
        f = fail_with(ROLLOUT_REVERT, false);
        ck_assert(!f.verdict);
        ck_assert(f.revert_later);
        /* An operator's rollback is one attempt: it fails either way, and
         * the service is no longer held. */
        f = fail_with(ROLLOUT_ROLLBACK, false);
        ck_assert(f.verdict);
        ck_assert(f.quarantine);
        ck_assert(f.release_hold);
}
END_TEST

START_TEST(a_hold_keeps_its_own_refusal)
{
        struct failure_input in = {.kind = ROLLOUT_DESIRED, .spec_at_fault = true, .held = true};
        struct failure_rules f = decide_failure(&in);
        ck_assert(f.verdict);
        ck_assert(!f.quarantine);
        ck_assert(!f.release_hold);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("decide");
        TCase *tc = tcase_create("rules");
        tcase_add_test(tc, first_deploy_rolls_out);
        tcase_add_test(tc, same_spec_alive_is_running);
        tcase_add_test(tc, changed_spec_rolls_out);
        tcase_add_test(tc, dead_current_is_replaced);
        tcase_add_test(tc, refused_spec_is_not_retried);
        tcase_add_test(tc, empty_refusal_matches_nothing);
        tcase_add_test(tc, max_parallel_queues);
        tcase_add_test(tc, in_flight_waits);
        tcase_add_test(tc, a_next_generation_waits_for_the_retiring_one);
        tcase_add_test(tc, absent_service_is_removed);
        tcase_add_test(tc, no_document_keeps_what_runs);
        tcase_add_test(tc, dead_instance_waits_for_its_delay);
        tcase_add_test(tc, pause_holds_changes_not_restarts);
        tcase_add_test(tc, replace_forces_a_rollout);
        tcase_add_test(tc, storage_failure_holds_everything_that_starts);
        tcase_add_test(tc, dead_instance_comes_back_when_the_wanted_spec_is_refused);
        tcase_add_test(tc, refused_current_falls_back_to_previous);
        tcase_add_test(tc, a_refused_spec_is_quarantined);
        tcase_add_test(tc, a_dead_instance_is_replaced_until_the_replacements_run_out);
        tcase_add_test(tc, no_room_is_no_verdict_but_for_a_rollback);
        tcase_add_test(tc, a_hold_keeps_its_own_refusal);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
