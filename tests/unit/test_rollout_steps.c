/* The rollout's step machine (rollout.c) with test doubles for what it
 * drives: the store, systemd, the health check and the journal are replaced
 * at link time by the functions below, which record what was asked and let
 * each test answer when it likes. The integration tests run the same steps
 * against a real systemd; these pin the order of the steps and the one
 * outcome each path reports. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "health.h"
#include "instance.h"
#include "journal.h"
#include "rollout.h"
#include "store.h"
#include "systemd.h"
#include "util.h"
#include "harness.h"

/* ---- the doubles ---- */

struct store_job {
        int unused;
};
struct health_check {
        int unused;
};
struct journal_tail {
        int unused;
};

static struct {
        store_done_cb fetched;
        void *fetch_ud;
        struct store_job job;
        bool job_cancelled;
        systemd_job_cb started;
        void *start_ud;
        bool watched;
        health_done_cb checked;
        void *check_ud;
        struct health_check check;
        bool check_cancelled;
        journal_tail_cb told;
        void *tell_ud;
        struct journal_tail tail;
        int start_error; /* what instance_env_start() returns */
} d;

int store_ensure(struct store *s, const struct service_spec *spec, store_done_cb cb, void *userdata,
                 struct store_job **ret_job)
{
        d.fetched = cb;
        d.fetch_ud = userdata;
        *ret_job = &d.job;
        return 0;
}

void store_job_cancel(struct store_job *job)
{
        d.job_cancelled = true;
}

struct instance_env *instance_env_new(struct instance_host *h, const char *service,
                                      uint64_t generation, int port, const char *root,
                                      const struct service_spec *spec)
{
        struct instance_env *ie = xcalloc(1, sizeof *ie);
        ie->host = h;
        ie->generation = generation;
        return ie;
}

struct instance_env *instance_env_free(struct instance_env *ie)
{
        free(ie);
        return NULL;
}

int instance_env_start(struct instance_env *ie, const char *unit, systemd_job_cb cb, void *userdata)
{
        d.started = cb;
        d.start_ud = userdata;
        return d.start_error;
}

char *instance_env_health_target(const struct instance_env *ie)
{
        return xstrdup("http://127.0.0.1:1/healthz");
}

int systemd_watch_unit(struct systemd *m, const char *unit)
{
        d.watched = true;
        return 0;
}

int health_check_start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                       const char *target, const struct health_exec *exec,
                       uint64_t deadline_mono_usec, health_done_cb cb, void *userdata,
                       struct health_check **ret)
{
        d.checked = cb;
        d.check_ud = userdata;
        *ret = &d.check;
        return 0;
}

void health_check_cancel(struct health_check *h)
{
        if (h)
                d.check_cancelled = true;
}

int journal_tail_start(uv_loop_t *loop, const char *unit, uint64_t since_usec, unsigned max_lines,
                       journal_tail_cb cb, void *userdata, struct journal_tail **ret)
{
        d.told = cb;
        d.tell_ud = userdata;
        *ret = &d.tail;
        return 0;
}

void journal_tail_cancel(struct journal_tail *t)
{
}

/* ---- the owner ---- */

static struct {
        enum lii_state progress[4];
        size_t n_progress;
        enum rollout_result results[4];
        char *reasons[4];
        bool started[4];
        size_t n_done;
        int answer_pass; /* what the owner answers to a pass */
        struct rollout *ro;
} owner;

static void on_progress(struct rollout *ro, enum lii_state state, void *o)
{
        ck_assert_uint_lt(owner.n_progress, 4);
        owner.progress[owner.n_progress++] = state;
}

static int on_done(struct rollout *ro, const struct rollout_outcome *o, void *unused)
{
        ck_assert_uint_lt(owner.n_done, 4);
        owner.results[owner.n_done] = o->result;
        owner.reasons[owner.n_done] = o->reason ? xstrdup(o->reason) : NULL;
        owner.started[owner.n_done] = o->started;
        owner.n_done++;
        int r = o->result == ROLLOUT_PASSED ? owner.answer_pass : 0;
        /* As the engine does: done with it, it frees it at once. */
        if (r == 0)
                owner.ro = rollout_free(owner.ro);
        return r;
}

static struct events *events;
static struct systemd *fake_systemd = (struct systemd *)&owner; /* never dereferenced */
static struct instance_host host;
static struct service_spec *spec;

static void setup(void)
{
        memset(&d, 0, sizeof d);
        memset(&owner, 0, sizeof owner);
        ck_assert_int_eq(events_new(&events), 0);
        host.systemd = fake_systemd;
        _cleanup_free_ char *error = NULL;
        const char *json = "{\"artifact\":{\"url\":\"https://h/a.tar.gz\",\"sha256\":"
                           "\"0000000000000000000000000000000000000000000000000000000000000000\","
                           "\"size\":1},\"exec\":[\"bin/a\"]}";
        ck_assert_msg(service_spec_parse("hello", json, &spec, &error) == 0, "%s", error);
        const struct rollout_params p = {
            .store = (struct store *)&d,
            .host = &host,
            .events = events,
            .service = "hello",
            .spec = spec,
            .generation = 4,
            .unit = "lii-hello@4.service",
            .port = 4000,
            .progress = on_progress,
            .done = on_done,
        };
        ck_assert_int_eq(rollout_start(&p, &owner.ro), 0);
        ck_assert_ptr_nonnull(d.fetched);
        ck_assert_uint_eq(owner.n_done, 0);
}

static void teardown(void)
{
        owner.ro = rollout_free(owner.ro);
        for (size_t i = 0; i < owner.n_done; i++)
                free(owner.reasons[i]);
        service_spec_free(spec);
        events = events_free(events);
}

static void fetch(int r, const char *error)
{
        const struct store_result res = {
            .r = r, .error = error, .root = "/store/x", .key_id = "ABC", .bytes_fetched = 10};
        d.fetched(&res, d.fetch_ud);
}

static void start(int r, const char *result)
{
        ck_assert(d.watched);
        d.started(NULL, r, result, d.start_ud);
}

static void check(bool ok, const char *reason)
{
        d.checked(&d.check, ok, reason, d.check_ud);
}

static void unit_ends(int code, int status)
{
        struct unit_status st = {
            .loaded = true, .exec_main_code = code, .exec_main_status = status};
        strcpy(st.active_state, "failed");
        strcpy(st.result, code == CLD_EXITED ? "exit-code" : "signal");
        rollout_on_unit(owner.ro, &st);
}

static void journal_says(const char *line)
{
        char *lines[] = {(char *)line, NULL};
        d.told(lines, d.tell_ud);
}

START_TEST(passes_in_order_and_reports_once)
{
        fetch(0, NULL);
        ck_assert_uint_eq(owner.n_progress, 1);
        ck_assert_int_eq(owner.progress[0], LII_STATE_STARTING);
        start(0, "done");
        ck_assert_uint_eq(owner.n_progress, 2);
        ck_assert_int_eq(owner.progress[1], LII_STATE_CHECKING);
        ck_assert_ptr_nonnull(d.checked);
        ck_assert_uint_eq(owner.n_done, 0);
        check(true, NULL);
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_int_eq(owner.results[0], ROLLOUT_PASSED);
        ck_assert(owner.started[0]);
        ck_assert_ptr_null(owner.ro);
}
END_TEST

START_TEST(a_bad_artifact_is_refused_before_anything_starts)
{
        fetch(-EBADMSG, "artifact https://h/a.tar.gz: SHA-256 mismatch");
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_int_eq(owner.results[0], ROLLOUT_REFUSED);
        ck_assert(!owner.started[0]);
        ck_assert_str_eq(owner.reasons[0], "artifact https://h/a.tar.gz: SHA-256 mismatch");
        ck_assert_ptr_null(d.started);
}
END_TEST

START_TEST(no_room_is_no_verdict)
{
        fetch(-ENOSPC, "artifact https://h/a.tar.gz: cannot write the download");
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_int_eq(owner.results[0], ROLLOUT_NO_ROOM);
        ck_assert(!owner.started[0]);
}
END_TEST

START_TEST(a_failed_start_says_what_systemd_saw_and_quotes_the_output)
{
        fetch(0, NULL);
        /* systemd reports the unit's end before the job's. */
        struct unit_status st = {
            .loaded = true, .exec_main_code = CLD_EXITED, .exec_main_status = 203};
        strcpy(st.active_state, "failed");
        strcpy(st.result, "exit-code");
        rollout_on_unit(owner.ro, &st);
        ck_assert_uint_eq(owner.n_done, 0);
        start(-EIO, "failed");
        ck_assert_uint_eq(owner.n_done, 0); /* reading the journal */
        journal_says("exec: no such file");
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_int_eq(owner.results[0], ROLLOUT_REFUSED);
        ck_assert(owner.started[0]);
        ck_assert_str_eq(owner.reasons[0],
                         "systemd did not start lii-hello@4.service: 203/EXEC: the executable "
                         "could not be run (result: exit-code); its last output: "
                         "\"exec: no such file\"");
}
END_TEST

START_TEST(failing_checks_are_refused)
{
        fetch(0, NULL);
        start(0, "done");
        check(false, "GET http://127.0.0.1:1/healthz: HTTP 503");
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_int_eq(owner.results[0], ROLLOUT_REFUSED);
        ck_assert(owner.started[0]);
        ck_assert_str_eq(owner.reasons[0],
                         "health check failed: GET http://127.0.0.1:1/healthz: HTTP 503");
}
END_TEST

START_TEST(an_instance_that_dies_while_checked_is_refused)
{
        fetch(0, NULL);
        start(0, "done");
        unit_ends(CLD_KILLED, SIGSEGV);
        ck_assert(d.check_cancelled);
        journal_says("segfault");
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_int_eq(owner.results[0], ROLLOUT_REFUSED);
        ck_assert_str_eq(owner.reasons[0],
                         "lii-hello@4.service ended before passing its checks: killed by "
                         "SIGSEGV (result: signal); its last output: \"segfault\"");
}
END_TEST

START_TEST(a_pass_the_owner_cannot_record_waits_and_is_offered_again)
{
        owner.answer_pass = -ENOSPC;
        fetch(0, NULL);
        start(0, "done");
        check(true, NULL);
        ck_assert_uint_eq(owner.n_done, 1);
        ck_assert_ptr_nonnull(owner.ro);
        owner.answer_pass = 0;
        rollout_resume(owner.ro);
        ck_assert_uint_eq(owner.n_done, 2);
        ck_assert_int_eq(owner.results[1], ROLLOUT_PASSED);
        ck_assert_ptr_null(owner.ro);
}
END_TEST

START_TEST(an_instance_that_dies_before_its_pass_is_recorded_is_refused)
{
        owner.answer_pass = -ENOSPC;
        fetch(0, NULL);
        start(0, "done");
        check(true, NULL);
        unit_ends(CLD_EXITED, 3);
        journal_says("bye");
        ck_assert_uint_eq(owner.n_done, 2);
        ck_assert_int_eq(owner.results[1], ROLLOUT_REFUSED);
        ck_assert_str_eq(owner.reasons[1],
                         "lii-hello@4.service ended before its promotion could be recorded: "
                         "exited with status 3 (result: exit-code); its last output: \"bye\"");
}
END_TEST

START_TEST(losing_systemd_reports_nothing)
{
        fetch(0, NULL);
        start(-ENOTCONN, NULL);
        ck_assert_uint_eq(owner.n_done, 0);
}
END_TEST

START_TEST(freeing_cancels_what_is_in_flight)
{
        owner.ro = rollout_free(owner.ro);
        ck_assert(d.job_cancelled);
        ck_assert_uint_eq(owner.n_done, 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("rollout-steps");
        TCase *tc = tcase_create("steps");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, passes_in_order_and_reports_once);
        tcase_add_test(tc, a_bad_artifact_is_refused_before_anything_starts);
        tcase_add_test(tc, no_room_is_no_verdict);
        tcase_add_test(tc, a_failed_start_says_what_systemd_saw_and_quotes_the_output);
        tcase_add_test(tc, failing_checks_are_refused);
        tcase_add_test(tc, an_instance_that_dies_while_checked_is_refused);
        tcase_add_test(tc, a_pass_the_owner_cannot_record_waits_and_is_offered_again);
        tcase_add_test(tc, an_instance_that_dies_before_its_pass_is_recorded_is_refused);
        tcase_add_test(tc, losing_systemd_reports_nothing);
        tcase_add_test(tc, freeing_cancels_what_is_in_flight);
        suite_add_tcase(s, tc);
        return h_run_suite(s);
}
