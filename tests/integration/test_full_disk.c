/* A full disk under the state folder: liid stays up, keeps every instance,
 * refuses what it cannot record, says so in status, events and metrics,
 * and carries on by itself once there is room again. The state folder is a
 * small tmpfs of the test's own that the test fills with a file. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define STATE_TMPFS_BYTES (16ULL << 20)
#define BIG_PAD_BYTES     (2 << 20) /* makes an artifact that 512 KiB of room cannot hold */
/* While the disk is full, liid's attempts come further and further apart
 * (up to a minute): waits for its recovery allow for that. */
#define RECOVERY_TIMEOUT_MS 90000

static struct h_env env;
static char filler[700];

static void setup(void)
{
        const char *name = tcase_name();
        h_setup_tmpfs_state(&env, name ? name : "full-disk", STATE_TMPFS_BYTES);
        h_start_liid(&env);
        snprintf(filler, sizeof filler, "%s/filler", env.state_dir);
}

static void teardown(void)
{
        h_teardown(&env);
}

/* Fills the state folder's tmpfs but for about leave bytes (a file grows
 * until the disk refuses it, then gives some back). Called again, it fills
 * what is left. */
static void fill(off_t leave)
{
        int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        static const char block[1 << 16];
        bool full = false;
        for (int i = 0; i < 10000 && !full; i++) {
                if (write(fd, block, sizeof block) < 0) {
                        ck_assert_int_eq(errno, ENOSPC);
                        full = true;
                }
        }
        ck_assert_msg(full, "the tmpfs under %s did not fill up", env.state_dir);
        off_t size = lseek(fd, 0, SEEK_END);
        ck_assert_int_eq(ftruncate(fd, size > leave ? size - leave : 0), 0);
        close(fd);
}

static void make_room(void)
{
        ck_assert_int_eq(unlink(filler), 0);
}

/* liid is the same process as before, and it has not exited. */
static void assert_still_up(pid_t pid)
{
        ck_assert_int_eq(env.liid_pid, pid);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
}

/* A stop job may still run; it is done when the manager no longer lists
 * the unit as active. */
static void wait_unit_gone(const char *unit)
{
        for (int i = 0; i < 500 && h_unit_active(&env, unit); i++)
                usleep(20000);
        ck_assert_msg(!h_unit_active(&env, unit), "%s is still active", unit);
}

static char *get_text(const char *path)
{
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "curl -sf --max-time 10 --unix-socket '%s' 'http://lii%s'",
                 env.socket, path);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, mem);
        fclose(mem);
        ck_assert_int_eq(pclose(f), 0);
        return text;
}

/* How many of liid's kept events have this type. */
static int count_events(const char *type)
{
        char *text = get_text("/v1/events");
        int n = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                json_object *o = json_tokener_parse(line);
                ck_assert_ptr_nonnull(o);
                const char *t = h_json_str(o, "type");
                n += t && strcmp(t, type) == 0;
                json_object_put(o);
        }
        free(text);
        return n;
}

/* The value of a metric without labels, -1 when there is none. */
static long long metric(const char *name)
{
        char *text = get_text("/v1/metrics");
        char *save = NULL;
        long long value = -1;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ')
                        value = strtoll(line + strlen(name) + 1, NULL, 10);
        free(text);
        return value;
}

/* Waits, asking every 20 ms for up to timeout_ms, until a metric exceeds
 * value; returns its value then. */
static long long wait_metric_above(const char *name, long long value, int timeout_ms)
{
        for (int waited = 0; waited < timeout_ms; waited += 20) {
                long long now = metric(name);
                if (now > value)
                        return now;
                usleep(20000);
        }
        ck_abort_msg("%s stayed at %lld or below for %d ms", name, value, timeout_ms);
        return -1;
}

/* ---- predicates ---- */

static bool storage_error_mentions(json_object *status, void *text)
{
        const char *error = h_json_str(status, "storage.error");
        return error && strstr(error, text) && h_json_str(status, "storage.since");
}

/* The storage condition is over, and hello runs its desired spec. */
static bool recovered_and_running(json_object *status, void *serial)
{
        json_object *storage = h_json_path(status, "storage");
        json_object *hello = h_json_path(status, "services.hello");
        const char *state = h_json_str(hello, "state");
        const char *cur = h_json_str(hello, "current.spec_sha256");
        const char *want = h_json_str(hello, "desired.spec_sha256");
        return storage && !h_json_path(storage, "error") && state &&
               strcmp(state, "running") == 0 && cur && want && strcmp(cur, want) == 0 &&
               json_object_get_boolean(h_json_path(hello, "current.healthy")) &&
               h_json_int(status, "source.serial") == *(long long *)serial;
}

static bool download_failed_for_room(json_object *status, void *unused)
{
        json_object *hello = h_json_path(status, "services.hello");
        const char *state = h_json_str(hello, "state");
        const char *result = h_json_str(hello, "last_rollout.result");
        const char *reason = h_json_str(hello, "last_rollout.reason");
        return storage_error_mentions(status, "No space left on device") && state &&
               strcmp(state, "pending") == 0 && result && strcmp(result, "failed") == 0 && reason &&
               strstr(reason, "No space left on device");
}

/* After a restart on a full disk: generation 1 adopted and running, and
 * the full disk reported. */
static bool full_and_adopted(json_object *status, void *unused)
{
        const char *state = h_json_str(status, "services.hello.state");
        return storage_error_mentions(status, "No space left on device") &&
               h_json_int(status, "services.hello.current.generation") == 1 && state &&
               strcmp(state, "pending") == 0 &&
               json_object_get_boolean(h_json_path(status, "services.hello.current.healthy"));
}

static bool checking_generation_2(json_object *svc, void *unused)
{
        const char *state = h_json_str(svc, "state");
        return state && strcmp(state, "checking") == 0 && h_json_int(svc, "next.generation") == 2;
}

/* ---- tests ---- */

/* Publishes, as hello-big.tar.gz, the v2 sample with 2 MiB of random bytes
 * beside it, which neither compress nor fit in 512 KiB. */
static void publish_big_artifact(void)
{
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "set -e; cd '%s'; rm -rf big; mkdir big; cp -r '%s/sample/v2/.' big/; "
                 "head -c %d /dev/urandom > big/pad; "
                 "tar -C big -czf '%s/hello-big.tar.gz' bin VERSION pad",
                 env.dir, LII_BUILD_DIR, BIG_PAD_BYTES, env.www);
        ck_assert_int_eq(system(cmd), 0);
        char path[800];
        snprintf(path, sizeof path, "%s/hello-big.tar.gz", env.www);
        h_sign_artifact(&env, path);
}

START_TEST(rollout_and_document_wait_for_room)
{
        pid_t pid = env.liid_pid;
        struct h_service v1 = {.name = "hello", .artifact = 1};
        h_publish(&env, &v1, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        int port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        publish_big_artifact();

        /* Room for the state files, not for the download: the document is
         * accepted, and its rollout fails without its spec being refused. */
        fill(512 << 10);
        struct h_service big = {
            .name = "hello", .artifact = 2, .artifact_file = "hello-big.tar.gz"};
        h_publish(&env, &big, 1, 0);
        json_object *status = h_wait_status(&env, download_failed_for_room, NULL, 30000,
                                            "the download to fail for lack of room");
        ck_assert_int_eq(h_json_int(status, "source.serial"), 2);
        ck_assert_int_eq(h_json_int(status, "services.hello.current.generation"), 1);
        ck_assert(json_object_get_boolean(h_json_path(status, "services.hello.current.healthy")));
        json_object_put(status);
        assert_still_up(pid);
        h_assert_answers(port, "v1");
        ck_assert(h_unit_active(&env, "lii-hello@1.service"));
        ck_assert_int_eq(count_events("storage.failing"), 1);
        ck_assert_int_eq(count_events("rollout.failed"), 1);
        ck_assert_int_eq(metric("lii_storage_failing"), 1);
        /* The download alone: the failed download's room is free again
         * when its failure is recorded. */
        long long failures = metric("lii_storage_write_failures_total");
        ck_assert_int_eq(failures, 1);
        char *out = NULL;
        const char *st[] = {"status", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, st), 0);
        ck_assert_ptr_nonnull(strstr(out, "Storage error: "));
        ck_assert_ptr_nonnull(strstr(out, "No space left on device"));
        free(out);

        /* No room at all: a new document cannot be recorded, so it is not
         * accepted; the applied serial stays. */
        fill(0);
        long long serial = h_publish(&env, &big, 1, 0);
        status = h_wait_status(&env, h_source_error_mentions, "serial 3 not accepted", 30000,
                               "serial 3 to be refused for lack of room");
        ck_assert_int_eq(h_json_int(status, "source.serial"), 2);
        ck_assert_ptr_nonnull(
            strstr(h_json_str(status, "source.error"), "No space left on device"));
        ck_assert_int_eq(h_json_int(status, "services.hello.current.generation"), 1);
        json_object_put(status);
        /* An operator's pause cannot be recorded either: refused, and
         * nothing changed. */
        json_object *answer = NULL;
        ck_assert_int_eq(h_api_post(&env, "/v1/pause", &answer), 503);
        ck_assert_ptr_nonnull(strstr(h_json_str(answer, "error.message"), "No space left"));
        json_object_put(answer);
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &answer), 200);
        ck_assert(!json_object_get_boolean(h_json_path(answer, "paused")));
        json_object_put(answer);
        /* liid's own attempts fail too, and it goes on trying. */
        long long before = metric("lii_storage_write_failures_total");
        failures = wait_metric_above("lii_storage_write_failures_total", before, 30000);
        assert_still_up(pid);
        h_assert_answers(port, "v1");
        ck_assert_int_eq(count_events("storage.failing"), 1);

        /* Room again: liid finds out by itself, takes the document and
         * rolls it out. Generation 2 was the attempt that failed. */
        make_room();
        status = h_wait_status(&env, recovered_and_running, &serial, RECOVERY_TIMEOUT_MS,
                               "liid to recover and run serial 3");
        ck_assert_int_eq(h_json_int(status, "services.hello.current.generation"), 3);
        ck_assert_ptr_null(h_json_path(status, "source.error"));
        int new_port = (int)h_json_int(status, "services.hello.current.port");
        json_object_put(status);
        h_assert_answers(new_port, "v2");
        assert_still_up(pid);
        ck_assert_int_eq(count_events("storage.failing"), 1);
        ck_assert_int_eq(count_events("storage.recovered"), 1);
        ck_assert_int_eq(metric("lii_storage_failing"), 0);
        wait_unit_gone("lii-hello@1.service");
}
END_TEST

/* Reaches the moment a new instance passes its checks with a disk too full
 * to record its promotion: v2 answers unhealthy for its first 2 s, and the
 * disk is filled while it is checked. */
static void promotion_without_room(void)
{
        struct h_service v1 = {.name = "hello", .artifact = 1};
        h_publish(&env, &v1, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 1));
        struct h_service v2 = {
            .name = "hello", .artifact = 2, .extra_args = ",\"--healthy-after\",\"2000\""};
        h_publish(&env, &v2, 1, 0);
        json_object_put(h_wait_service(&env, "hello", checking_generation_2, NULL, 20000,
                                       "generation 2 to be checked"));
        fill(0);
        json_object_put(h_wait_status(&env, storage_error_mentions, "state of hello", 20000,
                                      "the promotion to fail for lack of room"));
}

START_TEST(promotion_waits_for_room)
{
        pid_t pid = env.liid_pid;
        promotion_without_room();

        /* Not recorded, so not done: generation 1 stays current and keeps
         * serving, and generation 2, which passed, runs beside it. */
        json_object *svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 1);
        ck_assert_int_eq(h_json_int(svc, "next.generation"), 2);
        int old_port = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        ck_assert(h_unit_active(&env, "lii-hello@1.service"));
        ck_assert(h_unit_active(&env, "lii-hello@2.service"));
        h_assert_answers(old_port, "v1");
        assert_still_up(pid);

        /* With room, the promotion is written and the old one retired,
         * without checking generation 2 again. */
        make_room();
        long long serial = 2;
        json_object *status = h_wait_status(&env, recovered_and_running, &serial,
                                            RECOVERY_TIMEOUT_MS, "the promotion of generation 2");
        ck_assert_int_eq(h_json_int(status, "services.hello.current.generation"), 2);
        ck_assert_int_eq(h_json_int(status, "services.hello.previous.generation"), 1);
        ck_assert_str_eq(h_json_str(status, "services.hello.last_rollout.result"), "succeeded");
        json_object_put(status);
        wait_unit_gone("lii-hello@1.service");
        ck_assert_int_eq(count_events("instance.started"), 2);
        ck_assert_int_eq(count_events("storage.recovered"), 1);
        assert_still_up(pid);
}
END_TEST

/* The restart loop of a full disk: a liid restarted then must come up, keep
 * what runs and wait for room like the one before it. */
START_TEST(restart_with_full_disk)
{
        promotion_without_room();
        h_kill_liid(&env, SIGKILL);
        h_start_liid(&env);
        pid_t pid = env.liid_pid;

        /* Start-up stops the unpromoted generation 2 and cannot record it. */
        json_object *status = h_wait_status(&env, full_and_adopted, NULL, 20000,
                                            "the restarted liid to adopt and report the full disk");
        int port = (int)h_json_int(status, "services.hello.current.port");
        json_object_put(status);
        wait_unit_gone("lii-hello@2.service");
        h_assert_answers(port, "v1");
        assert_still_up(pid);

        make_room();
        long long serial = 2;
        status = h_wait_status(&env, recovered_and_running, &serial, RECOVERY_TIMEOUT_MS,
                               "liid to recover and roll v2 out again");
        ck_assert_int_eq(h_json_int(status, "services.hello.current.generation"), 3);
        json_object_put(status);
        wait_unit_gone("lii-hello@1.service");
        assert_still_up(pid);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("full-disk");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"rollout-document", rollout_and_document_wait_for_room},
            {"promotion", promotion_waits_for_room},
            {"restart", restart_with_full_disk},
        };
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 240);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
