/* GET /v1/metrics as Prometheus scrapes it: the exact sample lines of the
 * counters and gauges, HELP and TYPE for every family, and a rollout
 * duration histogram whose buckets are cumulative and end in +Inf. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lii-version.h"
#include "metrics.h"
#include "util.h"

static void assert_line(const char *text, const char *line)
{
        size_t len = strlen(line);
        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && p[len] == '\n')
                        return;
        ck_abort_msg("no line '%s' in:\n%s", line, text);
}

/* The value of the sample whose name and labels are exactly series. */
static double sample(const char *text, const char *series)
{
        _cleanup_free_ char *prefix = xasprintf("%s ", series);
        size_t len = strlen(prefix);
        for (const char *p = text; (p = strstr(p, prefix)); p++)
                if (p == text || p[-1] == '\n')
                        return strtod(p + len, NULL);
        ck_abort_msg("no sample '%s' in:\n%s", series, text);
        return -1;
}

START_TEST(counters_and_gauges)
{
        struct metrics m = {0};
        metrics_rollout(&m, LII_RESULT_SUCCEEDED, 800 * USEC_PER_MSEC);
        metrics_rollout(&m, LII_RESULT_SUCCEEDED, 2 * USEC_PER_SEC);
        metrics_rollout(&m, LII_RESULT_FAILED, 61 * USEC_PER_SEC);
        m.fetches_ok = 5;
        m.fetches_unchanged = 40;
        m.fetches_failed = 2;
        m.documents_refused = 1;
        m.bytes_downloaded = 123456789012ULL;
        m.api_refused_uid = 7;
        m.api_refused_full = 3;
        m.api_timed_out = 11;
        m.api_connections = 9;
        m.storage_failures = 6;

        _cleanup_free_ char *text = metrics_render(&m, 3, 4, 1, 0);
        ck_assert_ptr_nonnull(text);
        assert_line(text, "# TYPE lii_rollouts_total counter");
        assert_line(text, "lii_rollouts_total{result=\"succeeded\"} 2");
        assert_line(text, "lii_rollouts_total{result=\"failed\"} 1");
        assert_line(text, "lii_rollouts_total{result=\"reverted\"} 0");
        assert_line(text, "lii_fetches_total{result=\"ok\"} 5");
        assert_line(text, "lii_fetches_total{result=\"unchanged\"} 40");
        assert_line(text, "lii_fetches_total{result=\"failed\"} 2");
        assert_line(text, "lii_documents_refused_total 1");
        assert_line(text, "lii_downloaded_bytes_total 123456789012");
        assert_line(text, "# TYPE lii_api_connections_refused_total counter");
        assert_line(text, "lii_api_connections_refused_total{reason=\"uid\"} 7");
        assert_line(text, "lii_api_connections_refused_total{reason=\"full\"} 3");
        assert_line(text, "lii_api_connections_timed_out_total 11");
        assert_line(text, "# TYPE lii_api_connections gauge");
        assert_line(text, "lii_api_connections 9");
        assert_line(text, "# TYPE lii_healthy_instances gauge");
        assert_line(text, "lii_healthy_instances 3");
        assert_line(text, "lii_services 4");
        assert_line(text, "lii_paused 1");
        assert_line(text, "lii_storage_failing 0");
        assert_line(text, "# TYPE lii_storage_write_failures_total counter");
        assert_line(text, "lii_storage_write_failures_total 6");
        assert_line(text, "lii_build_info{version=\"" LII_VERSION "\"} 1");

        /* Any true value of paused is exposed as 1. */
        _cleanup_free_ char *again = metrics_render(&m, 0, 0, 7, 0);
        assert_line(again, "lii_paused 1");
        _cleanup_free_ char *unpaused = metrics_render(&m, 0, 0, 0, 0);
        assert_line(unpaused, "lii_paused 0");
        _cleanup_free_ char *failing = metrics_render(&m, 0, 0, 0, 1);
        assert_line(failing, "# TYPE lii_storage_failing gauge");
        assert_line(failing, "lii_storage_failing 1");
}
END_TEST

/* Every family has its HELP and TYPE, before its samples, and the text
 * ends with a newline as the format requires. */
START_TEST(every_family_is_described)
{
        struct metrics m = {0};
        _cleanup_free_ char *text = metrics_render(&m, 0, 0, 0, 0);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(text[strlen(text) - 1], '\n');

        static const char *const families[] = {
            "lii_rollouts_total",
            "lii_rollout_duration_seconds",
            "lii_fetches_total",
            "lii_documents_refused_total",
            "lii_downloaded_bytes_total",
            "lii_api_connections",
            "lii_api_connections_refused_total",
            "lii_api_connections_timed_out_total",
            "lii_healthy_instances",
            "lii_services",
            "lii_paused",
            "lii_storage_failing",
            "lii_storage_write_failures_total",
            "lii_build_info",
        };
        for (size_t i = 0; i < ELEMENTSOF(families); i++) {
                _cleanup_free_ char *help = xasprintf("# HELP %s ", families[i]);
                _cleanup_free_ char *type = xasprintf("# TYPE %s ", families[i]);
                const char *h = strstr(text, help), *t = strstr(text, type);
                ck_assert_msg(h && t && h < t, "%s is not described", families[i]);
                /* Its first sample comes after both. */
                _cleanup_free_ char *name = xasprintf("\n%s", families[i]);
                const char *s = strstr(t, name);
                ck_assert_msg(s, "%s has no sample", families[i]);
        }
        /* Nothing but comments and samples: no blank lines. */
        ck_assert_ptr_null(strstr(text, "\n\n"));
}
END_TEST

START_TEST(histogram_is_cumulative)
{
        struct metrics m = {0};
        /* 0.05 s, 0.3 s, 0.3 s, 4 s, 100 s and 1000 s (beyond every bound). */
        const uint64_t durations_ms[] = {50, 300, 300, 4000, 100000, 1000000};
        double sum = 0;
        for (size_t i = 0; i < ELEMENTSOF(durations_ms); i++) {
                metrics_rollout(&m, LII_RESULT_SUCCEEDED, durations_ms[i] * USEC_PER_MSEC);
                sum += durations_ms[i] / 1000.0;
        }
        /* A rollout without a result is no rollout. */
        metrics_rollout(&m, LII_RESULT_NONE, USEC_PER_SEC);

        _cleanup_free_ char *text = metrics_render(&m, 0, 0, 0, 0);
        assert_line(text, "# TYPE lii_rollout_duration_seconds histogram");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"0.1\"} 1");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"0.25\"} 1");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"0.5\"} 3");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"2.5\"} 3");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"5\"} 4");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"120\"} 5");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"300\"} 5");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"+Inf\"} 6");
        assert_line(text, "lii_rollout_duration_seconds_count 6");
        ck_assert_double_eq_tol(sample(text, "lii_rollout_duration_seconds_sum"), sum, 1e-6);

        /* Each bucket holds at least what the one before it holds, in the
         * order of their bounds. */
        const double bounds[] = METRICS_DURATION_BUCKETS;
        double prev = 0;
        for (size_t i = 0; i < METRICS_N_BUCKETS; i++) {
                _cleanup_free_ char *series =
                    xasprintf("lii_rollout_duration_seconds_bucket{le=\"%g\"}", bounds[i]);
                double v = sample(text, series);
                ck_assert_double_ge(v, prev);
                prev = v;
        }
        ck_assert_double_le(prev, sample(text, "lii_rollout_duration_seconds_bucket{le=\"+Inf\"}"));
        ck_assert_double_eq(sample(text, "lii_rollout_duration_seconds_bucket{le=\"+Inf\"}"),
                            sample(text, "lii_rollout_duration_seconds_count"));
}
END_TEST

/* A rollout exactly at a bound counts in that bucket ("le"). */
START_TEST(bucket_bounds_are_inclusive)
{
        struct metrics m = {0};
        metrics_rollout(&m, LII_RESULT_REVERTED, USEC_PER_SEC);
        _cleanup_free_ char *text = metrics_render(&m, 0, 0, 0, 0);
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"0.5\"} 0");
        assert_line(text, "lii_rollout_duration_seconds_bucket{le=\"1\"} 1");
        assert_line(text, "lii_rollouts_total{result=\"reverted\"} 1");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("metrics");
        TCase *tc = tcase_create("render");
        tcase_add_test(tc, counters_and_gauges);
        tcase_add_test(tc, every_family_is_described);
        suite_add_tcase(s, tc);
        TCase *hist = tcase_create("histogram");
        tcase_add_test(hist, histogram_is_cumulative);
        tcase_add_test(hist, bucket_bounds_are_inclusive);
        suite_add_tcase(s, hist);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
