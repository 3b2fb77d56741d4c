/* The names of lii's units as systemd and the journal show them: an
 * instance's name gives back its service and generation, and nothing else
 * passes for one, so that adoption at start-up neither takes a stranger's
 * unit nor misreads a health check for an instance. */
#include "unit-name.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "harness.h"

START_TEST(instance_names)
{
        char buf[UNIT_NAME_SIZE];
        ck_assert_str_eq(unit_name_instance(buf, "hello", 3), "lii-hello@3.service");
        ck_assert_str_eq(unit_name_check(buf, "hello", 3, 2), "lii-hello@3-check-2.service");

        char service[LII_SERVICE_NAME_MAX + 1];
        uint64_t generation = 0;
        ck_assert(unit_name_parse("lii-hello@3.service", service, &generation));
        ck_assert_str_eq(service, "hello");
        ck_assert_uint_eq(generation, 3);

        /* An instance's sockets: a name of their own, never an instance's. */
        ck_assert_str_eq(unit_name_socket(buf, "hello", 3), "lii-hello@3.socket");
        ck_assert(unit_name_parse_socket("lii-hello@3.socket", service, &generation));
        ck_assert_str_eq(service, "hello");
        ck_assert_uint_eq(generation, 3);
        ck_assert(!unit_name_parse("lii-hello@3.socket", service, &generation));
        ck_assert(!unit_name_parse_socket("lii-hello@3.service", service, &generation));
        ck_assert(!unit_name_parse_socket("lii-hello@03.socket", service, &generation));
}
END_TEST

/* The longest service name and the largest numbers fit, and read back. */
START_TEST(longest_names)
{
        char longest[LII_SERVICE_NAME_MAX + 1];
        memset(longest, 'a', LII_SERVICE_NAME_MAX);
        longest[LII_SERVICE_NAME_MAX] = '\0';
        char buf[UNIT_NAME_SIZE];
        _cleanup_free_ char *want =
            xasprintf("lii-%s@18446744073709551615-check-4294967295.service", longest);
        ck_assert_str_eq(unit_name_check(buf, longest, UINT64_MAX, UINT32_MAX), want);

        char service[LII_SERVICE_NAME_MAX + 1];
        uint64_t generation = 0;
        ck_assert(
            unit_name_parse(unit_name_instance(buf, longest, UINT64_MAX), service, &generation));
        ck_assert_str_eq(service, longest);
        ck_assert_uint_eq(generation, UINT64_MAX);
}
END_TEST

/* Each is a name unit_name_instance() never writes. */
static const char *const not_instances[] = {
    "hello@3.service",     /* not lii's */
    "lii-@3.service",      /* no service */
    "lii-hello.service",   /* no generation */
    "lii-hello@.service",  /* empty generation */
    "lii-hello@0.service", /* generations start at 1 */
    "lii-hello@03.service",
    "lii-hello@+3.service",
    "lii-hello@-3.service",
    "lii-hello@ 3.service",
    "lii-hello@3",
    "lii-hello@3.service.bak",
    "lii-hello@3-check-1.service",            /* a health check */
    "lii-hello@18446744073709551616.service", /* above UINT64_MAX */
    "lii-Hello@3.service",                    /* not a valid service name */
    "lii--hello@3.service",
    "lii-hello world@3.service",
    "lii-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@3.service", /* 49 */
    "",
};

START_TEST(not_instance_names)
{
        char service[LII_SERVICE_NAME_MAX + 1] = "untouched";
        uint64_t generation = 7;
        const char *unit = not_instances[_i];
        ck_assert_msg(!unit_name_parse(unit, service, &generation), "took %s", unit);
        ck_assert_str_eq(service, "untouched");
        ck_assert_uint_eq(generation, 7);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("unit_name");
        TCase *tc = tcase_create("unit_name");
        tcase_add_test(tc, instance_names);
        tcase_add_test(tc, longest_names);
        tcase_add_loop_test(tc, not_instance_names, 0, ELEMENTSOF(not_instances));
        suite_add_tcase(s, tc);
        return h_run_suite(s);
}
