/* Counting what liid did and writing it out in Prometheus' text exposition
 * format (version 0.0.4); see metrics.h. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "lii-version.h"
#include "util.h"

static const double duration_bounds[METRICS_N_BUCKETS] = METRICS_DURATION_BUCKETS;

void metrics_rollout(struct metrics *m, enum lii_result result, uint64_t duration_usec)
{
        if (result <= LII_RESULT_NONE || result >= _LII_RESULT_MAX)
                return;
        m->rollouts[result]++;

        double seconds = (double)duration_usec / USEC_PER_SEC;
        /* The buckets are stored cumulative, as they are exposed: a rollout
         * counts in every bucket whose bound it does not exceed. */
        for (size_t i = 0; i < METRICS_N_BUCKETS; i++)
                if (seconds <= duration_bounds[i])
                        m->duration_buckets[i]++;
        m->duration_count++;
        m->duration_sum_seconds += seconds;
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *metrics_render(const struct metrics *m, unsigned healthy_instances, unsigned services,
                     int paused, int storage_failing)
{
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        if (!f)
                return NULL;

        header(f, "lii_rollouts_total", "counter",
               "Rollouts finished since liid started, by result.");
        static const enum lii_result results[] = {
            LII_RESULT_SUCCEEDED,
            LII_RESULT_FAILED,
            LII_RESULT_REVERTED,
        };
        for (size_t i = 0; i < ELEMENTSOF(results); i++)
                fprintf(f, "lii_rollouts_total{result=\"%s\"} %llu\n",
                        lii_result_to_string(results[i]),
                        (unsigned long long)m->rollouts[results[i]]);

        header(f, "lii_rollout_duration_seconds", "histogram",
               "How long finished rollouts took, from their start to their result.");
        for (size_t i = 0; i < METRICS_N_BUCKETS; i++)
                fprintf(f, "lii_rollout_duration_seconds_bucket{le=\"%g\"} %llu\n",
                        duration_bounds[i], (unsigned long long)m->duration_buckets[i]);
        fprintf(f, "lii_rollout_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)m->duration_count);
        fprintf(f, "lii_rollout_duration_seconds_sum %.6f\n", m->duration_sum_seconds);
        fprintf(f, "lii_rollout_duration_seconds_count %llu\n",
                (unsigned long long)m->duration_count);

        header(f, "lii_fetches_total", "counter",
               "Fetches of the desired state, by result (unchanged: the source had nothing new).");
        fprintf(f, "lii_fetches_total{result=\"ok\"} %llu\n", (unsigned long long)m->fetches_ok);
        fprintf(f, "lii_fetches_total{result=\"unchanged\"} %llu\n",
                (unsigned long long)m->fetches_unchanged);
        fprintf(f, "lii_fetches_total{result=\"failed\"} %llu\n",
                (unsigned long long)m->fetches_failed);

        header(f, "lii_documents_refused_total", "counter",
               "Desired-state documents refused (signature, serial, expiry or content).");
        fprintf(f, "lii_documents_refused_total %llu\n", (unsigned long long)m->documents_refused);

        header(f, "lii_downloaded_bytes_total", "counter",
               "Bytes downloaded for desired-state documents and artifacts.");
        fprintf(f, "lii_downloaded_bytes_total %llu\n", (unsigned long long)m->bytes_downloaded);

        header(f, "lii_api_connections", "gauge", "Connections to the API open now.");
        fprintf(f, "lii_api_connections %u\n", m->api_connections);

        header(f, "lii_api_connections_refused_total", "counter",
               "API connections closed at once, by reason (uid: that user held its share of "
               "them; full: every connection that user may use was taken).");
        fprintf(f, "lii_api_connections_refused_total{reason=\"uid\"} %llu\n",
                (unsigned long long)m->api_refused_uid);
        fprintf(f, "lii_api_connections_refused_total{reason=\"full\"} %llu\n",
                (unsigned long long)m->api_refused_full);

        header(f, "lii_api_connections_timed_out_total", "counter",
               "API connections closed because a whole request did not arrive in time.");
        fprintf(f, "lii_api_connections_timed_out_total %llu\n",
                (unsigned long long)m->api_timed_out);

        header(f, "lii_healthy_instances", "gauge", "Instances that pass their health check now.");
        fprintf(f, "lii_healthy_instances %u\n", healthy_instances);

        header(f, "lii_services", "gauge", "Services liid manages now.");
        fprintf(f, "lii_services %u\n", services);

        header(f, "lii_paused", "gauge", "1 while an operator holds new rollouts, else 0.");
        fprintf(f, "lii_paused %d\n", paused ? 1 : 0);

        header(f, "lii_storage_failing", "gauge",
               "1 while liid cannot write its state folder (a full disk) and holds every change, "
               "else 0.");
        fprintf(f, "lii_storage_failing %d\n", storage_failing ? 1 : 0);

        header(f, "lii_storage_write_failures_total", "counter",
               "Writes to the state folder that failed: state files, and downloads or unpacking "
               "into the store for lack of room.");
        fprintf(f, "lii_storage_write_failures_total %llu\n",
                (unsigned long long)m->storage_failures);

        header(f, "lii_build_info", "gauge", "The version of liid that runs, as a label.");
        fprintf(f, "lii_build_info{version=\"%s\"} 1\n", LII_VERSION);

        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}
