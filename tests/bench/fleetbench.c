/* The fleet scenario's measuring program (tests/bench/fleet.sh): a fleet of
 * real liid nodes on one machine from the test harness (tests/harness/fleet.h),
 * timed from the etcd transaction that publishes a document until every node
 * runs it, and etcd's requests while the fleet is idle. Nothing here is a
 * test; it runs as one Check case because the harness reports its failures
 * through Check.
 *
 * Environment: LII_BENCH_FLEET_OUT (the file that gets "KEY<TAB>VALUE"
 * lines, appended), LII_BENCH_FLEET_NODES (5), LII_BENCH_FLEET_REPEATS (5),
 * LII_BENCH_FLEET_IDLE (seconds of idle to count over, 60). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"

static struct h_fleet fleet;

static long env_long(const char *name, long def, long min, long max)
{
        const char *s = getenv(name);
        if (!s || !*s)
                return def;
        char *end;
        long v = strtol(s, &end, 10);
        ck_assert_msg(*end == '\0' && v >= min && v <= max, "%s=%s: want %ld to %ld", name, s, min,
                      max);
        return v;
}

static double now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void record(const char *key, double value)
{
        const char *out = getenv("LII_BENCH_FLEET_OUT");
        if (!out || !*out) {
                printf("%s\t%.3f\n", key, value);
                fflush(stdout);
                return;
        }
        FILE *f = fopen(out, "ae");
        ck_assert_msg(f != NULL, "%s: %m", out);
        fprintf(f, "%s\t%.3f\n", key, value);
        fclose(f);
}

/* Requests etcd's members served so far, by gRPC method: the sums of
 * grpc_server_started_total over the members (the JSON gateway hands every
 * request to the member's gRPC side, so each gateway request counts once; a
 * watch or a keepalive, streams in gRPC, count once each time one starts). */
#define MAX_METHODS 128
struct requests {
        size_t n;
        char method[MAX_METHODS][48];
        long long count[MAX_METHODS];
        long long total;
};

static void count(struct requests *r, const char *method, size_t len, long long n)
{
        size_t i = 0;
        while (i < r->n && (strlen(r->method[i]) != len || strncmp(r->method[i], method, len)))
                i++;
        if (i == r->n) {
                ck_assert_msg(r->n < MAX_METHODS && len < sizeof r->method[0],
                              "too many gRPC methods in etcd's metrics");
                memcpy(r->method[i], method, len);
                r->method[i][len] = '\0';
                r->n++;
        }
        r->count[i] += n;
        r->total += n;
}

static void etcd_requests(struct requests *r)
{
        memset(r, 0, sizeof *r);
        for (int m = 0; m < H_ETCD_MEMBERS; m++) {
                char *body = NULL;
                long code = h_http_get(fleet.etcd.client_port[m], "/metrics", &body);
                ck_assert_msg(code == 200, "etcd member %d: /metrics answered %ld", m, code);
                char *save = NULL;
                for (char *line = strtok_r(body, "\n", &save); line;
                     line = strtok_r(NULL, "\n", &save)) {
                        if (strncmp(line, "grpc_server_started_total{", 26) != 0)
                                continue;
                        const char *v = strrchr(line, ' ');
                        const char *method = strstr(line, "grpc_method=\"");
                        if (!v || !method)
                                continue;
                        method += strlen("grpc_method=\"");
                        const char *end = strchr(method, '"');
                        if (end)
                                count(r, method, (size_t)(end - method), atoll(v + 1));
                }
                free(body);
        }
}

static long long count_of(const struct requests *r, const char *method)
{
        for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->method[i], method) == 0)
                        return r->count[i];
        return 0;
}

static bool accepted(json_object *status, void *serial)
{
        return h_json_int(status, "source.serial") >= *(long long *)serial;
}

START_TEST(fleet_publish)
{
        size_t nodes = (size_t)env_long("LII_BENCH_FLEET_NODES", 5, 1, H_FLEET_MAX);
        long repeats = env_long("LII_BENCH_FLEET_REPEATS", 5, 1, 100);
        long idle = env_long("LII_BENCH_FLEET_IDLE", 60, 1, 3600);
        double t0 = now_ms();
        h_fleet_setup(&fleet, "bench", nodes);
        h_fleet_start_all(&fleet);
        record("fleet.nodes", (double)nodes);
        record("fleet.setup", now_ms() - t0);

        /* The first document starts every node's first instance; each
         * repeat after it replaces them all, with another spec each time. */
        struct requests at_start, before, after;
        etcd_requests(&at_start);
        for (long r = 0; r <= repeats; r++) {
                char args[64];
                snprintf(args, sizeof args, ",\"--version-name\",\"r%ld\"", r);
                struct h_service svc = {
                    .name = "hello", .artifact = (int)(r % 3) + 1, .extra_args = args};
                h_publish(&fleet.pub, &svc, 1, 0);
                char doc[700], sig[720];
                snprintf(doc, sizeof doc, "%s/desired.json", fleet.pub.www);
                snprintf(sig, sizeof sig, "%s.minisig", doc);
                long long serial = fleet.pub.serial;
                double start = now_ms();
                h_fleet_put(&fleet, doc, sig);
                double put = now_ms();
                h_fleet_wait_all(&fleet, accepted, &serial, 60000, "the document accepted");
                double seen = now_ms();
                struct h_fleet_want want = {.service = "hello", .serial = serial};
                h_fleet_wait_all(&fleet, h_fleet_runs_serial, &want, 120000,
                                 "hello to run the new spec");
                double done = now_ms();
                const char *kind = r == 0 ? "fleet.first" : "fleet.replace";
                char key[64];
                snprintf(key, sizeof key, "%s.txn", kind);
                record(key, put - start);
                snprintf(key, sizeof key, "%s.accepted", kind);
                record(key, seen - start);
                snprintf(key, sizeof key, "%s.all_running", kind);
                record(key, done - start);
        }

        /* What a publish costs etcd per node, the publisher's own
         * transaction taken out (and the fleet's lease keepalives in the
         * meantime left in). */
        etcd_requests(&before);
        record("fleet.publish.requests_per_node",
               (double)(before.total - at_start.total - (repeats + 1)) / (double)nodes /
                   (double)(repeats + 1));

        /* Idle: every node settled, nothing published. */
        double i0 = now_ms();
        sleep((unsigned)idle);
        etcd_requests(&after);
        double seconds = (now_ms() - i0) / 1000.0;
        record("fleet.idle.seconds", seconds);
        record("fleet.idle.requests", (double)(after.total - before.total));
        record("fleet.idle.per_node_minute",
               (double)(after.total - before.total) / (double)nodes * 60.0 / seconds);
        for (size_t i = 0; i < after.n; i++) {
                long long d = after.count[i] - count_of(&before, after.method[i]);
                if (d <= 0)
                        continue;
                char key[96];
                snprintf(key, sizeof key, "fleet.idle.method.%s", after.method[i]);
                record(key, (double)d / (double)nodes * 60.0 / seconds);
        }
        h_fleet_teardown(&fleet);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fleetbench");
        TCase *tc = tcase_create("fleet");
        tcase_set_timeout(tc, 3600);
        tcase_add_test(tc, fleet_publish);
        suite_add_tcase(s, tc);
        return h_main(s);
}
