/* Counters for GET /v1/metrics, rendered in Prometheus' text format.
 * Plain counters in memory, reset when liid restarts (as Prometheus
 * expects of counters). */
#pragma once

#include <stdint.h>

#include "lii-proto.h"

/* Rollout duration histogram buckets, in seconds. */
#define METRICS_DURATION_BUCKETS                                                                   \
        {                                                                                          \
                0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300                                    \
        }
#define METRICS_N_BUCKETS 11

struct metrics {
        uint64_t rollouts[_LII_RESULT_MAX];           /* by result (succeeded, failed, reverted) */
        uint64_t duration_buckets[METRICS_N_BUCKETS]; /* cumulative counts, le bucket */
        uint64_t duration_count;
        double duration_sum_seconds;
        uint64_t fetches_ok, fetches_unchanged, fetches_failed, documents_refused;
        uint64_t bytes_downloaded;
        /* Kept by the API (see api-limit.h): connections it turned away,
         * for their uid's share or for the whole pool, connections closed
         * for not sending a whole request in time, and those open now. */
        uint64_t api_refused_uid, api_refused_full, api_timed_out;
        unsigned api_connections;
        /* Writes that failed in the state folder: state files, and
         * downloads or unpacking into the store for lack of room. */
        uint64_t storage_failures;
};

void metrics_rollout(struct metrics *m, enum lii_result result, uint64_t duration_usec);

/* Renders every metric; healthy, instances, paused and storage_failing are
 * gauges the caller knows at the time of the request. Returns a malloc'ed
 * string, NULL when memory ran out. */
char *metrics_render(const struct metrics *m, unsigned healthy_instances, unsigned services,
                     int paused, int storage_failing);
