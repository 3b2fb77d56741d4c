/* The pure parts of the etcd source: base64 and the JSON of
 * the gateway's range and watch answers, including a watch stream cut at
 * every possible place. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "source-etcd.h"
#include "harness.h"

/* What etcd 3.4's gateway answers (keys lii/t/desired/doc and .../sig). */
#define DOC_KEY "lii/t/desired/doc"
#define SIG_KEY "lii/t/desired/sig"
#define HEADER  "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"9\"}"

START_TEST(range_answer)
{
        const char *json = "{" HEADER ",\"kvs\":["
                           "{\"key\":\"bGlpL3QvZGVzaXJlZC9kb2M=\",\"create_revision\":\"2\","
                           "\"mod_revision\":\"8\",\"version\":\"3\",\"value\":\"e30K\"},"
                           "{\"key\":\"bGlpL3QvZGVzaXJlZC9vdGhlcg==\",\"value\":\"eA==\"},"
                           "{\"key\":\"bGlpL3QvZGVzaXJlZC9zaWc=\",\"mod_revision\":\"8\"}],"
                           "\"count\":\"3\"}";
        struct etcd_range r;
        char *error = NULL;
        ck_assert_int_eq(
            etcd_range_parse(json, strlen(json), DOC_KEY, SIG_KEY, 100, 100, &r, &error), 0);
        ck_assert_int_eq(r.revision, 9);
        ck_assert(r.has_doc);
        ck_assert_uint_eq(r.doc_len, 3);
        ck_assert(memcmp(r.doc, "{}\n", 3) == 0);
        /* A value that is empty is left out of the answer. */
        ck_assert(r.has_sig);
        ck_assert_uint_eq(r.sig_len, 0);
        etcd_range_done(&r);

        /* No key at all: no kvs. */
        const char *empty = "{" HEADER "}";
        ck_assert_int_eq(
            etcd_range_parse(empty, strlen(empty), DOC_KEY, SIG_KEY, 100, 100, &r, &error), 0);
        ck_assert(!r.has_doc && !r.has_sig);
        etcd_range_done(&r);

        /* Larger than allowed. */
        ck_assert_int_eq(etcd_range_parse(json, strlen(json), DOC_KEY, SIG_KEY, 2, 100, &r, &error),
                         -EFBIG);
        ck_assert_str_eq(error, DOC_KEY ": larger than 2 bytes");
        free(error);
        error = NULL;

        /* An error answer carries its message. */
        const char *err = "{\"error\":\"etcdserver: no leader\",\"code\":14,"
                          "\"message\":\"etcdserver: no leader\"}";
        ck_assert_int_eq(etcd_range_parse(err, strlen(err), DOC_KEY, SIG_KEY, 100, 100, &r, &error),
                         -EIO);
        ck_assert_str_eq(error, "etcd: etcdserver: no leader");
        free(error);
        error = NULL;

        const char *no_rev = "{\"kvs\":[]}";
        ck_assert_int_eq(
            etcd_range_parse(no_rev, strlen(no_rev), DOC_KEY, SIG_KEY, 100, 100, &r, &error),
            -EBADMSG);
        free(error);
}
END_TEST

/* A real stream: created, a PUT (no "type"), a DELETE, a compaction. */
static const char stream[] =
    "{\"result\":{" HEADER ",\"created\":true}}\n"
    "{\"result\":{" HEADER ",\"events\":[{\"kv\":{\"key\":\"bGlpL3QvZGVzaXJlZC9kb2M=\","
    "\"create_revision\":\"2\",\"mod_revision\":\"7\",\"version\":\"2\",\"value\":\"e30K\"}}]}}\n"
    "{\"result\":{" HEADER ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
    "\"bGlpL3QvZGVzaXJlZC9zaWc=\",\"mod_revision\":\"9\"}}]}}\n"
    "{\"result\":{\"header\":{\"cluster_id\":\"1\"},\"canceled\":true,"
    "\"compact_revision\":\"12\"}}\n";

struct seen {
        int n;
        struct etcd_watch_msg m[4];
};

static int on_message(json_object *o, void *userdata)
{
        struct seen *s = userdata;
        char *error = NULL;
        ck_assert_int_lt(s->n, 4);
        ck_assert_int_eq(etcd_watch_parse(o, &s->m[s->n], &error), 0);
        s->n++;
        return 0;
}

static void check_seen(struct seen *s)
{
        ck_assert_int_eq(s->n, 4);
        ck_assert(s->m[0].created);
        ck_assert_uint_eq(s->m[0].n_events, 0);
        ck_assert_uint_eq(s->m[1].n_events, 1);
        ck_assert_int_eq(s->m[1].last_mod_revision, 7);
        ck_assert_int_eq(s->m[2].last_mod_revision, 9);
        ck_assert(!s->m[2].canceled);
        ck_assert(s->m[3].canceled);
        ck_assert_int_eq(s->m[3].compact_revision, 12);
        for (int i = 0; i < s->n; i++)
                etcd_watch_msg_done(&s->m[i]);
}

START_TEST(watch_stream_whole)
{
        struct etcd_stream *st = etcd_stream_new(4096);
        struct seen s = {0};
        char *error = NULL;
        ck_assert_int_eq(etcd_stream_feed(st, stream, strlen(stream), on_message, &s, &error), 0);
        check_seen(&s);
        etcd_stream_free(st);
}
END_TEST

/* The same stream in two reads, cut at every byte, and in one-byte reads. */
START_TEST(watch_stream_split)
{
        size_t len = strlen(stream);
        for (size_t cut = 0; cut <= len; cut++) {
                struct etcd_stream *st = etcd_stream_new(4096);
                struct seen s = {0};
                char *error = NULL;
                ck_assert_int_eq(etcd_stream_feed(st, stream, cut, on_message, &s, &error), 0);
                ck_assert_int_eq(
                    etcd_stream_feed(st, stream + cut, len - cut, on_message, &s, &error), 0);
                check_seen(&s);
                etcd_stream_free(st);
        }
        struct etcd_stream *st = etcd_stream_new(4096);
        struct seen s = {0};
        char *error = NULL;
        for (size_t i = 0; i < len; i++)
                ck_assert_int_eq(etcd_stream_feed(st, stream + i, 1, on_message, &s, &error), 0);
        check_seen(&s);
        etcd_stream_free(st);
}
END_TEST

START_TEST(watch_stream_refused)
{
        struct seen s = {0};
        char *error = NULL;
        struct etcd_stream *st = etcd_stream_new(64);
        /* A message that never ends is cut off at the limit. */
        char big[200];
        memset(big, ' ', sizeof big);
        memcpy(big, "{\"result\":\"", 11);
        ck_assert_int_eq(etcd_stream_feed(st, big, sizeof big, on_message, &s, &error), -EFBIG);
        free(error);
        error = NULL;
        etcd_stream_free(st);

        st = etcd_stream_new(4096);
        ck_assert_int_eq(etcd_stream_feed(st, "{]", 2, on_message, &s, &error), -EBADMSG);
        free(error);
        etcd_stream_free(st);
        ck_assert_int_eq(s.n, 0);

        /* An error object ends the stream: it reads as a cancel. */
        json_object *o = json_tokener_parse(
            "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
            "leader\",\"http_status\":\"Service Unavailable\"}}");
        struct etcd_watch_msg m;
        ck_assert_int_eq(etcd_watch_parse(o, &m, &error), 0);
        ck_assert(m.canceled);
        ck_assert_int_eq(m.compact_revision, 0);
        ck_assert_str_eq(m.error, "etcdserver: no leader");
        etcd_watch_msg_done(&m);
        json_object_put(o);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("source_etcd");
        TCase *tc = tcase_create("source_etcd");
        tcase_add_test(tc, range_answer);
        tcase_add_test(tc, watch_stream_whole);
        tcase_add_test(tc, watch_stream_split);
        tcase_add_test(tc, watch_stream_refused);
        suite_add_tcase(s, tc);
        return h_run_suite(s);
}
