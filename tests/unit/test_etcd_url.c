/* etcd:// and etcds:// URLs, as liid's etcd source and liictl publish read
 * them: hosts, default port, prefix, and what is refused. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "etcd-url.h"
#include "harness.h"

START_TEST(url_hosts_and_prefix)
{
        struct etcd_url u;
        char *error = NULL;
        ck_assert_int_eq(etcd_url_parse("etcd://h:2379/lii/prod", &u, &error), 0);
        ck_assert(!u.tls);
        ck_assert_uint_eq(u.n_endpoints, 1);
        ck_assert_str_eq(u.endpoints[0], "http://h:2379");
        ck_assert_str_eq(u.prefix, "lii/prod");
        etcd_url_done(&u);

        ck_assert_int_eq(etcd_url_parse("etcds://a,10.0.0.2:2479,[::1]:3000/p/", &u, &error), 0);
        ck_assert(u.tls);
        ck_assert_uint_eq(u.n_endpoints, 3);
        ck_assert_str_eq(u.endpoints[0], "https://a:2379");
        ck_assert_str_eq(u.endpoints[1], "https://10.0.0.2:2479");
        ck_assert_str_eq(u.endpoints[2], "https://[::1]:3000");
        ck_assert_str_eq(u.prefix, "p");
        etcd_url_done(&u);
}
END_TEST

START_TEST(url_refused)
{
        static const char *const bad[] = {
            "http://h:2379/p",   "etcd://h:2379",    "etcd://h:2379/", "etcd:///p",
            "etcd://h:0/p",      "etcd://h:99999/p", "etcd://h:x/p",   "etcd://a,,b/p",
            "etcd://a,/p",       "etcd://h/a//b",    "etcd://h/a b",   "etcd://h/p?x",
            "etcd://h_1:2379/p", "etcd://[zz]:1/p",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct etcd_url u;
                char *error = NULL;
                ck_assert_msg(etcd_url_parse(bad[i], &u, &error) == -EINVAL, "%s accepted", bad[i]);
                ck_assert_ptr_nonnull(error);
                free(error);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("etcd_url");
        TCase *tc = tcase_create("etcd_url");
        tcase_add_test(tc, url_hosts_and_prefix);
        tcase_add_test(tc, url_refused);
        suite_add_tcase(s, tc);
        return h_run_suite(s);
}
