/* The API's connection slots: each uid that is neither root nor in
 * admin_group gets its share, the non-admins together leave the reserve
 * free, root and admin_group may use every slot, and a slot given back is
 * free again for anyone. */
#include <check.h>

#include "api-limit.h"

#define ADMIN    true
#define NONADMIN false

/* Takes n slots for uid and checks that each was admitted. */
static void take_n(struct api_limit *l, uid_t uid, bool admin, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                ck_assert_msg(api_limit_take(l, uid, admin) == API_LIMIT_ADMIT,
                              "connection %u of uid %u was refused", i + 1, (unsigned)uid);
}

START_TEST(each_uid_has_its_share)
{
        struct api_limit l = {0};
        take_n(&l, 1000, NONADMIN, API_LIMIT_PER_UID);
        ck_assert_int_eq(api_limit_take(&l, 1000, NONADMIN), API_LIMIT_UID_FULL);
        /* Another user is not held back by the first one's share. */
        ck_assert_int_eq(api_limit_take(&l, 1001, NONADMIN), API_LIMIT_ADMIT);
        /* One slot given back is one more for that uid, not more. */
        api_limit_release(&l, 1000, NONADMIN);
        ck_assert_int_eq(api_limit_take(&l, 1000, NONADMIN), API_LIMIT_ADMIT);
        ck_assert_int_eq(api_limit_take(&l, 1000, NONADMIN), API_LIMIT_UID_FULL);
        ck_assert_uint_eq(l.total, API_LIMIT_PER_UID + 1);
}
END_TEST

/* Enough users together cannot take the slots kept for the operator. */
START_TEST(reserve_is_for_admins_only)
{
        struct api_limit l = {0};
        uid_t uid = 2000;
        unsigned left = API_LIMIT_SHARED;
        for (; left >= API_LIMIT_PER_UID; left -= API_LIMIT_PER_UID)
                take_n(&l, uid++, NONADMIN, API_LIMIT_PER_UID);
        take_n(&l, uid, NONADMIN, left);
        ck_assert_uint_eq(l.shared, API_LIMIT_SHARED);

        /* The last user with room in its share and a new one both find the
         * pool full. */
        ck_assert_int_eq(api_limit_take(&l, uid, NONADMIN), API_LIMIT_FULL);
        ck_assert_int_eq(api_limit_take(&l, 9999, NONADMIN), API_LIMIT_FULL);
        /* Root and admin_group members (several of them on one uid or
         * not) get the reserve, then the pool is full for them too. */
        take_n(&l, 0, ADMIN, API_LIMIT_RESERVED - 1);
        take_n(&l, 3000, ADMIN, 1);
        ck_assert_int_eq(api_limit_take(&l, 0, ADMIN), API_LIMIT_FULL);
        ck_assert_uint_eq(l.total, API_LIMIT_CONNECTIONS);

        /* A user's slot given back is free again for any user. */
        api_limit_release(&l, 2000, NONADMIN);
        ck_assert_int_eq(api_limit_take(&l, 9999, NONADMIN), API_LIMIT_ADMIT);
}
END_TEST

/* Admins are not held to a share, and what they hold leaves less for the
 * others: the connections in all stay within the limit. */
START_TEST(admins_may_use_every_slot)
{
        struct api_limit l = {0};
        take_n(&l, 0, ADMIN, API_LIMIT_CONNECTIONS - 2);
        take_n(&l, 1000, NONADMIN, 2);
        ck_assert_int_eq(api_limit_take(&l, 1000, NONADMIN), API_LIMIT_FULL);
        ck_assert_int_eq(api_limit_take(&l, 1001, NONADMIN), API_LIMIT_FULL);
        ck_assert_int_eq(api_limit_take(&l, 0, ADMIN), API_LIMIT_FULL);

        api_limit_release(&l, 0, ADMIN);
        ck_assert_int_eq(api_limit_take(&l, 1001, NONADMIN), API_LIMIT_ADMIT);
        ck_assert_uint_eq(l.total, API_LIMIT_CONNECTIONS);
}
END_TEST

/* Many users coming and going, one connection each and then several at
 * once, never run out of bookkeeping room and leave nothing behind. */
START_TEST(users_come_and_go)
{
        struct api_limit l = {0};
        for (uid_t uid = 1; uid <= 10000; uid++) {
                ck_assert_int_eq(api_limit_take(&l, uid, NONADMIN), API_LIMIT_ADMIT);
                /* Keep the previous one open for a while: entries are
                 * removed from the middle as well as from the end. */
                if (uid > 1)
                        api_limit_release(&l, uid - 1, NONADMIN);
        }
        api_limit_release(&l, 10000, NONADMIN);
        ck_assert_uint_eq(l.total, 0);
        ck_assert_uint_eq(l.shared, 0);
        ck_assert_uint_eq(l.n_uids, 0);

        /* Every shared slot to a different user, then all given back in
         * another order. */
        for (uid_t uid = 0; uid < API_LIMIT_SHARED; uid++)
                take_n(&l, 5000 + uid, NONADMIN, 1);
        ck_assert_int_eq(api_limit_take(&l, 4999, NONADMIN), API_LIMIT_FULL);
        for (uid_t uid = 0; uid < API_LIMIT_SHARED; uid += 2)
                api_limit_release(&l, 5000 + uid, NONADMIN);
        for (uid_t uid = 1; uid < API_LIMIT_SHARED; uid += 2)
                api_limit_release(&l, 5000 + uid, NONADMIN);
        ck_assert_uint_eq(l.total, 0);
        ck_assert_uint_eq(l.n_uids, 0);
        take_n(&l, 4999, NONADMIN, API_LIMIT_PER_UID);
}
END_TEST

static Suite *api_limit_suite(void)
{
        Suite *s = suite_create("api-limit");
        TCase *tc = tcase_create("slots");
        tcase_add_test(tc, each_uid_has_its_share);
        tcase_add_test(tc, reserve_is_for_admins_only);
        tcase_add_test(tc, admins_may_use_every_slot);
        tcase_add_test(tc, users_come_and_go);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(api_limit_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
