/* "port": "auto": the port handed to a new instance is one nothing has
 * bound and lii has not given to another instance. Each test runs in a
 * network namespace of its own whose ephemeral range holds two ports, so
 * the kernel's choice is narrow enough to be checked exactly. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port.h"
#include "state.h"
#include "util.h"

#define LOW  40000
#define HIGH 40001

#define SHA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* Check forks each test, so the namespace ends with it. */
static void setup(void)
{
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (run as root)",
                      strerror(errno));

        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {.ifr_name = "lo"};
        ck_assert_int_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
        ifr.ifr_flags |= IFF_UP;
        ck_assert_int_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);

        _cleanup_close_ int fd =
            open("/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        char range[32];
        int n = snprintf(range, sizeof range, "%d %d\n", LOW, HIGH);
        ck_assert_int_eq(write(fd, range, (size_t)n), n);
}

static struct instance *inst(const char *name, int port)
{
        return instance_new(name, 1, "{}", SHA, SHA, port);
}

static struct state *empty_state(void)
{
        struct state *st = NULL;
        _cleanup_free_ char *err = NULL;
        ck_assert_int_eq(state_load("/nonexistent/lii-test-state", &st, &err), 0);
        return st;
}

START_TEST(free_port_from_the_kernel_range)
{
        struct state *st = empty_state();
        int port = port_pick_free(st);
        ck_assert_int_ge(port, LOW);
        ck_assert_int_le(port, HIGH);
        state_free(st);
}
END_TEST

START_TEST(port_of_a_pending_instance_is_skipped)
{
        /* Whichever port the kernel prefers, the one lii gave away is not
         * handed out again while its instance has not bound it yet. */
        for (int given = LOW; given <= HIGH; given++) {
                struct state *st = empty_state();
                state_get(st, "a")->pending = inst("a", given);
                int port = port_pick_free(st);
                ck_assert_int_eq(port, given == LOW ? HIGH : LOW);
                state_free(st);
        }
}
END_TEST

START_TEST(ports_of_current_and_previous_are_skipped)
{
        struct state *st = empty_state();
        state_get(st, "a")->current = inst("a", LOW);
        state_get(st, "b")->previous = inst("b", HIGH);
        ck_assert_int_eq(port_pick_free(st), -EADDRINUSE);
        state_free(st);
}
END_TEST

START_TEST(port_bound_elsewhere_is_not_offered)
{
        /* Another process holds one port, lii's pending instance the other. */
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(HIGH),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);

        struct state *st = empty_state();
        ck_assert_int_eq(port_pick_free(st), LOW);
        state_get(st, "a")->pending = inst("a", LOW);
        ck_assert_int_eq(port_pick_free(st), -EADDRINUSE);
        state_free(st);
}
END_TEST

static Suite *port_suite(void)
{
        Suite *s = suite_create("port");
        TCase *tc = tcase_create("auto");
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, free_port_from_the_kernel_range);
        tcase_add_test(tc, port_of_a_pending_instance_is_skipped);
        tcase_add_test(tc, ports_of_current_and_previous_are_skipped);
        tcase_add_test(tc, port_bound_elsewhere_is_not_offered);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(port_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
