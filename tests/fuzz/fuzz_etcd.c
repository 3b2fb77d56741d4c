/* What an etcd member (or whoever answers in its place) sends an
 * etcd:// source: the input's first line is a source URL for
 * etcd_url_parse(); the rest is an answer to a range read for
 * etcd_range_parse() and the byte stream of a watch for etcd_stream_feed(),
 * each message of which goes to etcd_watch_parse(); the fleet module's
 * readers of the same answers (fleet_parse_range(), fleet_parse_watch(),
 * fleet_parse_lease(), fleet_parse_txn()) read them too.
 *
 * Promises checked: errors come with a message; a parsed URL has 1 to
 * ETCD_MAX_ENDPOINTS endpoints and a prefix without a leading or trailing
 * '/'; values that a range read returns are within the caps it was given;
 * and the watch stream is cut into the same messages, with the same
 * outcome, whether it arrives in one read or in reads of a few bytes (when it
 * is made of objects, as etcd writes it; see fuzz_stream()). */
#include <string.h>

#include "fleet.h"
#include "fuzz.h"
#include "source-etcd.h"
#include "util.h"

#define DOC_KEY      "lii/prod/desired/doc"
#define SIG_KEY      "lii/prod/desired/sig"
#define MAX_RECORDED 64
#define FLEET_PREFIX "lii/prod"

static void fuzz_url(const char *line, size_t len)
{
        _cleanup_free_ char *url = strndup(line, len);
        fuzz_check(url, "strndup");
        struct etcd_url u;
        _cleanup_free_ char *error = NULL;
        int r = etcd_url_parse(url, &u, &error);
        fuzz_note("etcd_url_parse: %s", r < 0 ? error : "parsed");
        if (r < 0) {
                fuzz_check(error && *error, "no error message");
                return;
        }
        fuzz_check(!error, "success with an error");
        fuzz_check(u.n_endpoints >= 1 && u.n_endpoints <= ETCD_MAX_ENDPOINTS, "%zu endpoints",
                   u.n_endpoints);
        size_t plen = strlen(u.prefix);
        fuzz_check(plen > 0 && u.prefix[0] != '/' && u.prefix[plen - 1] != '/', "prefix %s",
                   u.prefix);
        for (size_t i = 0; i < u.n_endpoints; i++)
                fuzz_check(strncmp(u.endpoints[i], u.tls ? "https://" : "http://", u.tls ? 8 : 7) ==
                               0,
                           "endpoint %s", u.endpoints[i]);
        etcd_url_done(&u);
}

static void fuzz_range(const char *text, size_t len, size_t max_doc, size_t max_sig)
{
        struct etcd_range rg;
        _cleanup_free_ char *error = NULL;
        int r = etcd_range_parse(text, len, DOC_KEY, SIG_KEY, max_doc, max_sig, &rg, &error);
        fuzz_note("etcd_range_parse (caps %zu, %zu): %s", max_doc, max_sig,
                  r < 0 ? (error ? error : "no memory") : "parsed");
        if (r < 0) {
                fuzz_check(r == -ENOMEM || (error && *error), "no error message");
                return;
        }
        fuzz_check(!error, "success with an error");
        fuzz_check(rg.revision > 0, "revision %lld", (long long)rg.revision);
        fuzz_check(!rg.has_doc || rg.doc_len <= max_doc, "doc of %zu bytes", rg.doc_len);
        fuzz_check(!rg.has_sig || rg.sig_len <= max_sig, "sig of %zu bytes", rg.sig_len);
        etcd_range_done(&rg);
}

/* What a stream delivered: each message as etcd_watch_parse() read it. */
struct record {
        size_t n;
        struct {
                int r;
                struct etcd_watch_msg m;
        } msgs[MAX_RECORDED];
};

static int on_message(json_object *o, void *userdata)
{
        struct record *rec = userdata;
        struct etcd_watch_msg m;
        _cleanup_free_ char *error = NULL;
        int r = etcd_watch_parse(o, &m, &error);
        fuzz_note("  etcd_watch_parse: %s", r < 0 ? error : "parsed");
        if (r < 0)
                fuzz_check(error && *error, "no error message");

        struct fleet_batch b = {0};
        _cleanup_free_ char *fleet_error = NULL;
        if (fleet_parse_watch(o, FLEET_PREFIX, &b, &fleet_error) < 0)
                fuzz_check(fleet_error && *fleet_error, "no error message");
        else
                fleet_batch_done(&b);

        if (rec->n < MAX_RECORDED) {
                rec->msgs[rec->n].r = r;
                if (r == 0)
                        rec->msgs[rec->n].m = m;
        } else if (r == 0)
                etcd_watch_msg_done(&m);
        rec->n++;
        return 0;
}

static void record_done(struct record *rec)
{
        for (size_t i = 0; i < rec->n && i < MAX_RECORDED; i++)
                if (rec->msgs[i].r == 0)
                        etcd_watch_msg_done(&rec->msgs[i].m);
}

static void stream_freep(struct etcd_stream **st)
{
        etcd_stream_free(*st);
}

/* Feeds text in reads of 1 to 8 bytes (sizes from a fixed sequence), or
 * in one read when chunked is false. */
static int feed(const char *text, size_t len, bool chunked, struct record *rec)
{
        _cleanup_(stream_freep) struct etcd_stream *st = etcd_stream_new(ETCD_MAX_MESSAGE);
        _cleanup_free_ char *error = NULL;
        uint32_t x = 2463534242u;
        size_t pos = 0;
        int r = 0;
        while (r == 0 && pos < len) {
                size_t n = len - pos;
                if (chunked) {
                        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                        n = n < 1 + x % 8 ? n : 1 + x % 8;
                }
                r = etcd_stream_feed(st, text + pos, n, on_message, rec, &error);
                pos += n;
        }
        fuzz_note("etcd_stream_feed (%s): %s", chunked ? "small reads" : "one read",
                  r < 0 ? error : "all read");
        if (r < 0)
                fuzz_check(error && *error, "no error message");
        return r;
}

static bool same_msg(const struct etcd_watch_msg *a, const struct etcd_watch_msg *b)
{
        return a->revision == b->revision && a->created == b->created &&
               a->canceled == b->canceled && a->compact_revision == b->compact_revision &&
               a->n_events == b->n_events && a->last_mod_revision == b->last_mod_revision &&
               !a->error == !b->error && (!a->error || strcmp(a->error, b->error) == 0);
}

/* Whether text is what etcd writes: JSON objects with whitespace between
 * them, and no '/' outside strings (json-c takes comments). */
static bool objects_only(const char *text, size_t len)
{
        bool in_string = false;
        size_t depth = 0;
        for (size_t i = 0; i < len; i++) {
                char c = text[i];
                if (in_string) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_string = false;
                } else if (c == '"')
                        in_string = true;
                else if (c == '/')
                        return false;
                else if (c == '{' || c == '[')
                        depth++;
                else if ((c == '}' || c == ']') && depth > 0)
                        depth--;
                else if (depth == 0 && !strchr(" \t\r\n", c))
                        return false;
        }
        return true;
}

static void fuzz_stream(const char *text, size_t len)
{
        struct record whole = {0}, chunked = {0};
        int rw = feed(text, len, false, &whole);
        int rc = feed(text, len, true, &chunked);
        size_t n = whole.n < chunked.n ? whole.n : chunked.n;
        /* Outside a stream of objects, json-c's own reading depends on
         * where a read ends: it reads on through a comment after a
         * message, and a number cut by a read ends at other characters
         * ("4-" is 4 in one read, and nothing in two). Only the messages
         * both saw must then be the same. */
        if (objects_only(text, len)) {
                fuzz_check(rw == rc, "one read: %d, small reads: %d", rw, rc);
                fuzz_check(whole.n == chunked.n, "one read: %zu messages, small reads: %zu",
                           whole.n, chunked.n);
        }
        for (size_t i = 0; i < n && i < MAX_RECORDED; i++) {
                fuzz_check(whole.msgs[i].r == chunked.msgs[i].r, "message %zu: %d vs %d", i,
                           whole.msgs[i].r, chunked.msgs[i].r);
                if (whole.msgs[i].r == 0)
                        fuzz_check(same_msg(&whole.msgs[i].m, &chunked.msgs[i].m),
                                   "message %zu differs", i);
        }
        record_done(&whole);
        record_done(&chunked);
}

/* The fleet module's answers: a range over its keys, a lease, a txn. */
static void fuzz_fleet(const char *text, size_t len)
{
        struct fleet_batch b = {0};
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL;
        int r = fleet_parse_range(text, len, FLEET_PREFIX, &b, &e1);
        fuzz_note("fleet_parse_range: %s", r < 0 ? e1 : "parsed");
        if (r < 0)
                fuzz_check(e1 && *e1, "no error message");
        else
                fleet_batch_done(&b);
        int64_t id, ttl;
        if (fleet_parse_lease(text, len, &id, &ttl, &e2) < 0)
                fuzz_check(e2 && *e2, "no error message");
        bool ok;
        int64_t rev;
        if (fleet_parse_txn(text, len, &ok, &rev, &e3) < 0)
                fuzz_check(e3 && *e3, "no error message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data;
        const char *nl = memchr(text, '\n', size);
        size_t line = nl ? (size_t)(nl - text) : size;
        fuzz_url(text, line);
        if (!nl)
                return 0;
        const char *rest = nl + 1;
        size_t len = size - line - 1;
        fuzz_range(rest, len, SOURCE_MAX_DOCUMENT, SOURCE_MAX_SIGNATURE);
        fuzz_range(rest, len, 16, 16);
        fuzz_fleet(rest, len);
        fuzz_stream(rest, len);
        return 0;
}
