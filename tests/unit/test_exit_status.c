/* How a unit's end is put in words for a refused rollout's reason. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "exit-status.h"
#include "util.h"
#include "harness.h"

static char *describe(int code, int status, const char *result, const char *active)
{
        struct unit_status st = {
            .exec_main_code = code, .exec_main_status = status, .loaded = true};
        snprintf(st.result, sizeof st.result, "%s", result);
        snprintf(st.active_state, sizeof st.active_state, "%s", active);
        return exit_status_describe(&st);
}

static void expect(char *got, const char *want)
{
        ck_assert_str_eq(got, want);
        free(got);
}

START_TEST(systemd_exit_codes_are_named_and_explained)
{
        expect(describe(CLD_EXITED, 203, "exit-code", "failed"),
               "203/EXEC: the executable could not be run (result: exit-code)");
        expect(describe(CLD_EXITED, 200, "exit-code", "failed"),
               "200/CHDIR: the working directory could not be entered (result: exit-code)");
        expect(describe(CLD_EXITED, 226, "exit-code", "failed"),
               "226/NAMESPACE: the file system namespace could not be set up (result: exit-code)");
        expect(describe(CLD_EXITED, 217, "exit-code", "failed"),
               "217/USER: the user could not be set (or the dynamic user allocated) "
               "(result: exit-code)");
}
END_TEST

START_TEST(application_exit_status_and_signals)
{
        expect(describe(CLD_EXITED, 3, "exit-code", "failed"),
               "exited with status 3 (result: exit-code)");
        /* 199 and 250 are not systemd's: they belong to the application. */
        expect(describe(CLD_EXITED, 199, "exit-code", "failed"),
               "exited with status 199 (result: exit-code)");
        expect(describe(CLD_EXITED, 250, "exit-code", "failed"),
               "exited with status 250 (result: exit-code)");
        expect(describe(CLD_EXITED, 0, "success", "inactive"), "exited with status 0");
        expect(describe(CLD_KILLED, SIGSEGV, "signal", "failed"),
               "killed by SIGSEGV (result: signal)");
        expect(describe(CLD_DUMPED, SIGABRT, "core-dump", "failed"),
               "killed by SIGABRT (core dumped) (result: core-dump)");
        expect(describe(CLD_KILLED, SIGKILL, "oom-kill", "failed"),
               "killed by SIGKILL (result: oom-kill)");
        expect(describe(CLD_KILLED, 200, "signal", "failed"),
               "killed by signal 200 (result: signal)");
}
END_TEST

START_TEST(results_without_a_process)
{
        expect(describe(0, 0, "timeout", "failed"),
               "did not start or stop in time (result: timeout)");
        expect(describe(0, 0, "resources", "failed"),
               "systemd could not set up its resources (result: resources)");
        expect(describe(0, 0, "protocol", "failed"),
               "broke the service protocol (for a notify service: no READY=1) "
               "(result: protocol)");
        expect(describe(0, 0, "something-new", "failed"), "is failed (result: something-new)");
        expect(describe(0, 0, "", ""), "is gone");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("exit-status");
        TCase *tc = tcase_create("describe");
        tcase_add_test(tc, systemd_exit_codes_are_named_and_explained);
        tcase_add_test(tc, application_exit_status_and_signals);
        tcase_add_test(tc, results_without_a_process);
        suite_add_tcase(s, tc);
        return h_run_suite(s);
}
