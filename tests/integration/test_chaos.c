/* Crash safety: rollouts with liid killed (SIGKILL) at random moments, and
 * after every recovery the invariants a user relies on: exactly one
 * promoted, healthy instance per service, serving what the document asks
 * for; no orphan lii unit; a state file liid can read (it refuses to start
 * otherwise). The seed is printed so that a failure can be replayed with
 * LII_CHAOS_SEED=<seed>. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define ROUNDS 50

static struct h_env env;

static void setup(void)
{
        h_setup(&env, "chaos");
        h_start_liid(&env);
}

static void teardown(void)
{
        h_teardown(&env);
}

struct want {
        long long serial;
        const char *spec; /* filled from the first status that shows it */
};

static bool converged(json_object *status, void *userdata)
{
        struct want *w = userdata;
        const char *state = h_json_str(status, "services.hello.state");
        const char *cur = h_json_str(status, "services.hello.current.spec_sha256");
        const char *des = h_json_str(status, "services.hello.desired.spec_sha256");
        return h_json_int(status, "source.serial") == w->serial && state &&
               strcmp(state, "running") == 0 && cur && des && strcmp(cur, des) == 0 &&
               json_object_get_boolean(h_json_path(status, "services.hello.current.healthy"));
}

/* The active lii units, as systemctl lists them. */
static int active_units(char *out, size_t size)
{
        const char *args[] = {"list-units", "--no-legend",
                              "--plain",    "--state=active,activating,deactivating",
                              "lii-*",      NULL};
        char *text = NULL;
        h_systemctl(&env, &text, args);
        int n = 0;
        out[0] = '\0';
        for (char *line = strtok(text ? text : (char[]){""}, "\n"); line;
             line = strtok(NULL, "\n")) {
                char unit[128];
                if (sscanf(line, "%127s", unit) == 1 && strncmp(unit, "lii-", 4) == 0) {
                        n++;
                        strncat(out, unit, size - strlen(out) - 2);
                        strncat(out, " ", size - strlen(out) - 1);
                }
        }
        free(text);
        return n;
}

START_TEST(killed_at_random_moments)
{
        unsigned seed = getenv("LII_CHAOS_SEED")
                            ? (unsigned)strtoul(getenv("LII_CHAOS_SEED"), NULL, 10)
                            : (unsigned)time(NULL);
        fprintf(stderr, "chaos seed: %u (replay with LII_CHAOS_SEED=%u)\n", seed, seed);
        srandom(seed);

        for (int round = 1; round <= ROUNDS; round++) {
                int version = 1 + round % 2;
                char extra[64];
                /* Instances that take a little while to get healthy widen the
                 * window in which a kill lands mid-rollout. */
                snprintf(extra, sizeof extra, ",\"--healthy-after\",\"%ld\"", random() % 300);
                struct h_service svc = {.name = "hello", .artifact = version, .extra_args = extra};
                struct want w = {.serial = h_publish(&env, &svc, 1, 0)};

                /* Kill at a random moment of the rollout (or after it). */
                struct timespec ts = {0, (random() % 700) * 1000000L};
                nanosleep(&ts, NULL);
                h_kill_liid(&env, SIGKILL);
                h_start_liid(&env);

                char what[96];
                snprintf(what, sizeof what, "round %d (seed %u) to converge", round, seed);
                json_object *st = h_wait_status(&env, converged, &w, 30000, what);
                const char *unit = h_json_str(st, "services.hello.current.unit");
                int port = (int)h_json_int(st, "services.hello.current.port");

                /* Exactly one instance: stops of leftovers are asynchronous,
                 * so give them their (bounded) moment. */
                char units[1024];
                int n = active_units(units, sizeof units);
                for (int i = 0; i < 250 && n != 1; i++) {
                        usleep(20000);
                        n = active_units(units, sizeof units);
                }
                ck_assert_msg(n == 1, "round %d (seed %u): lii units running: %s", round, seed,
                              units);
                ck_assert_msg(strstr(units, unit), "round %d (seed %u): %s is current, running: %s",
                              round, seed, unit, units);
                char *body = NULL;
                char expect[8];
                snprintf(expect, sizeof expect, "v%d\n", version);
                ck_assert_int_eq(h_http_get(port, "/version", &body), 200);
                ck_assert_msg(strcmp(body, expect) == 0, "round %d (seed %u): serves %s", round,
                              seed, body);
                free(body);
                json_object_put(st);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("chaos");
        TCase *tc = tcase_create("chaos");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 900);
        tcase_add_test(tc, killed_at_random_moments);
        suite_add_tcase(s, tc);
        return h_main(s);
}
