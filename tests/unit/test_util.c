/* Shared helpers: durations, sizes, times and names as users write them. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

START_TEST(durations)
{
        uint64_t u;
        ck_assert_int_eq(parse_duration("250ms", &u), 0);
        ck_assert_uint_eq(u, 250 * USEC_PER_MSEC);
        ck_assert_int_eq(parse_duration("30s", &u), 0);
        ck_assert_uint_eq(u, 30 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("5m", &u), 0);
        ck_assert_uint_eq(u, 300 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("1h", &u), 0);
        ck_assert_uint_eq(u, 3600 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("7", &u), 0);
        ck_assert_uint_eq(u, 7 * USEC_PER_SEC);
        const char *bad[] = { "", "s", "-1s", "1.5s", "1 s", "1sec", "10d", " 1s", "1s " };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(parse_duration(bad[i], &u) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(parse_duration("99999999999999999999s", &u), -ERANGE);
        ck_assert_int_eq(parse_duration("18446744073709551615h", &u), -ERANGE);

        char buf[32];
        format_duration(1500 * USEC_PER_MSEC, buf, sizeof buf);
        ck_assert_str_eq(buf, "1500ms");
        format_duration(30 * USEC_PER_SEC, buf, sizeof buf);
        ck_assert_str_eq(buf, "30s");
}
END_TEST

START_TEST(sizes)
{
        uint64_t b;
        ck_assert_int_eq(parse_size("256M", &b), 0);
        ck_assert_uint_eq(b, 256ULL << 20);
        ck_assert_int_eq(parse_size("4096", &b), 0);
        ck_assert_uint_eq(b, 4096);
        ck_assert_int_eq(parse_size("1G", &b), 0);
        ck_assert_uint_eq(b, 1ULL << 30);
        ck_assert_int_eq(parse_size("1X", &b), -EINVAL);
        ck_assert_int_eq(parse_size("M", &b), -EINVAL);
        ck_assert_int_eq(parse_size("99999999999T", &b), -ERANGE);
}
END_TEST

START_TEST(rfc3339)
{
        uint64_t u;
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00Z", &u), 0);
        ck_assert_uint_eq(u / USEC_PER_SEC, 1798675200ULL);
        char buf[RFC3339_MAX];
        format_rfc3339(u, buf);
        ck_assert_str_eq(buf, "2026-12-31T00:00:00Z");
        uint64_t v;
        ck_assert_int_eq(parse_rfc3339("2026-12-31T02:00:00.123+02:00", &v), 0);
        ck_assert_uint_eq(v, u);
        ck_assert_int_eq(parse_rfc3339("2026-12-31", &v), -EINVAL);
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00", &v), -EINVAL);
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00Zjunk", &v), -EINVAL);
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00+2:00", &v), -EINVAL);
}
END_TEST

struct named {
        int other;
        char *name;
};

START_TEST(sorted_by_name)
{
        struct named a = { .name = "alpha" }, m = { .name = "mid" }, z = { .name = "zulu" };
        void *v[] = { &a, &m, &z };
        const size_t off = offsetof(struct named, name);
        bool found;

        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "mid", &found), 1);
        ck_assert(found);
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "zulu", &found), 2);
        ck_assert(found);
        /* Where a missing name belongs: before, between, after. */
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "a", &found), 0);
        ck_assert(!found);
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "beta", &found), 1);
        ck_assert(!found);
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "zz", &found), 3);
        ck_assert(!found);
        ck_assert_uint_eq(sorted_by_name_search(v, 0, off, "any", &found), 0);
        ck_assert(!found);
}
END_TEST

START_TEST(service_names)
{
        ck_assert(service_name_is_valid("hello"));
        ck_assert(service_name_is_valid("a"));
        ck_assert(service_name_is_valid("web-2"));
        ck_assert(service_name_is_valid("0abc"));
        char longest[49];
        memset(longest, 'a', 48);
        longest[48] = '\0';
        ck_assert(service_name_is_valid(longest));
        char too_long[50];
        memset(too_long, 'a', 49);
        too_long[49] = '\0';
        ck_assert(!service_name_is_valid(too_long));
        const char *bad[] = { "", "-a", "Hello", "a_b", "a.b", "a/b", "a b", "é" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(!service_name_is_valid(bad[i]), "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(hex)
{
        const uint8_t in[] = { 0x00, 0xab, 0xff };
        char out[7];
        hex_encode(in, 3, out);
        ck_assert_str_eq(out, "00abff");
        ck_assert(is_hex_string("00abff", 6));
        ck_assert(!is_hex_string("00ABFF", 6));
        ck_assert(!is_hex_string("00abf", 6));
        ck_assert(!is_hex_string("00abfg", 6));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("util");
        tcase_add_test(tc, durations);
        tcase_add_test(tc, sizes);
        tcase_add_test(tc, rfc3339);
        tcase_add_test(tc, service_names);
        tcase_add_test(tc, hex);
        tcase_add_test(tc, sorted_by_name);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
