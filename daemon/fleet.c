/* The node in etcd: its lease, its status key, the watched view of the
 * fleet, replacement slots and failures; see fleet.h. */
#include "fleet.h"

#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "events.h"
#include "lii-proto.h"
#include "log.h"
#include "util.h"

/* liid's events come in bursts (a rollout is a handful of them): one put
 * after the burst says it all. */
#define FLEET_SETTLE_MSEC      200
#define FLEET_BACKOFF_MIN_MSEC 100
#define FLEET_BACKOFF_MAX_MSEC (30 * 1000)
/* A range of the whole view, and a watch message: room for every key at
 * its largest in base64. */
#define FLEET_MAX_ANSWER  (64U << 20)
#define FLEET_MAX_MESSAGE (16U << 20)
/* Retried puts and deletes (failures, released slots) kept at most. */
#define FLEET_MAX_OPS 256

/* ---- pure parts ---- */

void fleet_batch_done(struct fleet_batch *b)
{
        for (size_t i = 0; i < b->n_events; i++) {
                free(b->events[i].kv.key);
                free(b->events[i].kv.value);
        }
        free(b->events);
        free(b->skipped);
        free(b->cancel_reason);
        *b = (struct fleet_batch){0};
}

static void skip(struct fleet_batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void skip(struct fleet_batch *b, const char *fmt, ...)
{
        _cleanup_free_ char *line = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&line, fmt, ap) < 0)
                abort();
        va_end(ap);
        /* One line per reason is enough to act on; the rest are counted. */
        size_t len = b->skipped ? strlen(b->skipped) : 0;
        if (len > 4096)
                return;
        char *s = xasprintf("%s%s%s", b->skipped ? b->skipped : "", len ? "; " : "", line);
        free(b->skipped);
        b->skipped = s;
}

static size_t value_max(const char *rel)
{
        return strncmp(rel, "nodes/", 6) == 0 ? FLEET_MAX_STATUS : FLEET_MAX_VALUE;
}

/* One kv object of the gateway into ev; 0 to keep it, 1 to skip it (the
 * reason noted in b), or a negative errno for an answer that is broken. */
static int parse_kv(json_object *kv, const char *prefix, bool deleted, struct fleet_batch *b,
                    struct fleet_event *ev)
{
        _cleanup_free_ char *key = NULL;
        size_t key_len;
        size_t plen = strlen(prefix);
        if (!json_object_is_type(kv, json_type_object))
                return -EBADMSG;
        int r = etcd_json_bytes(kv, "key", 4096, &key, &key_len);
        if (r == -EFBIG) {
                skip(b, "a key longer than 4096 bytes");
                return 1;
        }
        if (r < 0)
                return -EBADMSG;
        if (strlen(key) != key_len || key_len <= plen + 1 || strncmp(key, prefix, plen) != 0 ||
            key[plen] != '/')
                return 1; /* not ours: the range covers a little more */
        const char *rel = key + plen + 1;
        if (strncmp(rel, "nodes/", 6) != 0 && strncmp(rel, "sem/", 4) != 0 &&
            strncmp(rel, "fail/", 5) != 0)
                return 1;
        struct fleet_kv out = {0};
        if (etcd_json_int64(kv, "create_revision", &out.create_revision) < 0 ||
            etcd_json_int64(kv, "mod_revision", &out.mod_revision) < 0 ||
            etcd_json_int64(kv, "lease", &out.lease) < 0)
                return -EBADMSG;
        if (!deleted) {
                r = etcd_json_bytes(kv, "value", value_max(rel), &out.value, &out.value_len);
                if (r == -EFBIG) {
                        skip(b, "%s: a value larger than %zu bytes", key, value_max(rel));
                        return 1;
                }
                if (r < 0)
                        return -EBADMSG;
        }
        out.key = xstrdup(rel);
        ev->deleted = deleted;
        ev->kv = out;
        return 0;
}

static int parse_kvs(json_object *arr, const char *prefix, bool events, struct fleet_batch *b,
                     char **ret_error)
{
        if (!arr)
                return 0;
        if (!json_object_is_type(arr, json_type_array)) {
                *ret_error = xasprintf("%s is not an array", events ? "events" : "kvs");
                return -EBADMSG;
        }
        size_t n = json_object_array_length(arr);
        b->events = xcalloc(n ? n : 1, sizeof *b->events);
        for (size_t i = 0; i < n; i++) {
                json_object *item = json_object_array_get_idx(arr, i), *kv = item, *type;
                bool deleted = false;
                if (events) {
                        if (!json_object_is_type(item, json_type_object) ||
                            !json_object_object_get_ex(item, "kv", &kv)) {
                                *ret_error = xasprintf("a watch event has no kv");
                                return -EBADMSG;
                        }
                        /* A PUT is the zero value, left out. */
                        deleted = json_object_object_get_ex(item, "type", &type) &&
                                  json_object_is_type(type, json_type_string) &&
                                  strcmp(json_object_get_string(type), "DELETE") == 0;
                        int64_t rev;
                        if (etcd_json_int64(kv, "mod_revision", &rev) < 0) {
                                *ret_error = xasprintf("a watch event has no kv.mod_revision");
                                return -EBADMSG;
                        }
                        if (rev > b->last_mod_revision)
                                b->last_mod_revision = rev;
                }
                int r = parse_kv(kv, prefix, deleted, b, &b->events[b->n_events]);
                if (r < 0) {
                        *ret_error = xasprintf("a key-value of the answer is malformed");
                        return r;
                }
                if (r == 0)
                        b->n_events++;
        }
        return 0;
}

int fleet_parse_range(const char *json, size_t len, const char *prefix, struct fleet_batch *ret,
                      char **ret_error)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        if (!tok || len > INT_MAX)
                return -ENOMEM;
        _cleanup_json_ json_object *root = json_tokener_parse_ex(tok, json, (int)len);
        if (!root || !json_object_is_type(root, json_type_object)) {
                *ret_error = xasprintf("the range answer is not a JSON object");
                return -EBADMSG;
        }
        const char *msg = etcd_json_error(root);
        if (msg) {
                *ret_error = xasprintf("etcd: %s", msg);
                return -EIO;
        }
        struct fleet_batch b = {0};
        json_object *header = NULL, *kvs = NULL;
        if (!json_object_object_get_ex(root, "header", &header) ||
            etcd_json_int64(header, "revision", &b.revision) < 0 || b.revision <= 0) {
                *ret_error = xasprintf("the range answer has no header.revision");
                return -EBADMSG;
        }
        b.more = etcd_json_bool(root, "more");
        json_object_object_get_ex(root, "kvs", &kvs);
        int r = parse_kvs(kvs, prefix, false, &b, ret_error);
        if (r < 0) {
                fleet_batch_done(&b);
                return r;
        }
        *ret = b;
        return 0;
}

int fleet_parse_watch(json_object *o, const char *prefix, struct fleet_batch *ret, char **ret_error)
{
        struct etcd_watch_head h;
        json_object *events;
        int r = etcd_watch_head_parse(o, &h, &events, ret_error);
        if (r < 0)
                return r;
        struct fleet_batch b = {.revision = h.revision,
                                .compact_revision = h.compact_revision,
                                .created = h.created,
                                .canceled = h.canceled,
                                .cancel_reason = h.cancel_reason};
        r = parse_kvs(events, prefix, true, &b, ret_error);
        if (r < 0) {
                fleet_batch_done(&b);
                return r;
        }
        *ret = b;
        return 0;
}

static json_object *parse_answer(const char *json, size_t len, char **ret_error)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        if (!tok || len > INT_MAX)
                abort();
        json_object *root = json_tokener_parse_ex(tok, json ? json : "", (int)len);
        if (!root || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                *ret_error = xasprintf("the answer is not a JSON object");
                return NULL;
        }
        const char *msg = etcd_json_error(root);
        if (msg) {
                *ret_error = xasprintf("etcd: %s", msg);
                json_object_put(root);
                return NULL;
        }
        return root;
}

int fleet_parse_lease(const char *json, size_t len, int64_t *ret_id, int64_t *ret_ttl,
                      char **ret_error)
{
        _cleanup_json_ json_object *root = parse_answer(json, len, ret_error);
        if (!root)
                return *ret_error && strstr(*ret_error, "lease not found") ? -ENOENT : -EBADMSG;
        /* A keepalive answers as a stream: its message is in "result". */
        json_object *o = root, *result, *error;
        if (json_object_object_get_ex(root, "result", &result) &&
            json_object_is_type(result, json_type_object))
                o = result;
        if (json_object_object_get_ex(o, "error", &error) &&
            json_object_is_type(error, json_type_string) && json_object_get_string_len(error) > 0) {
                *ret_error = xasprintf("etcd: %s", json_object_get_string(error));
                return strstr(*ret_error, "lease not found") ? -ENOENT : -EIO;
        }
        int64_t id, ttl;
        if (etcd_json_int64(o, "ID", &id) < 0 || etcd_json_int64(o, "TTL", &ttl) < 0) {
                *ret_error = xasprintf("the lease answer's ID or TTL is not a number");
                return -EBADMSG;
        }
        *ret_id = id;
        *ret_ttl = ttl;
        return 0;
}

int fleet_parse_txn(const char *json, size_t len, bool *ret_succeeded, int64_t *ret_revision,
                    char **ret_error)
{
        _cleanup_json_ json_object *root = parse_answer(json, len, ret_error);
        if (!root)
                return -EBADMSG;
        json_object *header;
        int64_t rev = 0;
        if (!json_object_object_get_ex(root, "header", &header) ||
            etcd_json_int64(header, "revision", &rev) < 0 || rev <= 0) {
                *ret_error = xasprintf("the txn answer has no header.revision");
                return -EBADMSG;
        }
        /* A failed txn has no "succeeded": false is the zero value. */
        *ret_succeeded = etcd_json_bool(root, "succeeded");
        *ret_revision = rev;
        return 0;
}

bool fleet_slot_rank_ok(const int64_t *create_revisions, size_t n, int64_t mine,
                        unsigned max_parallel)
{
        size_t older = 0;
        for (size_t i = 0; i < n; i++)
                if (create_revisions[i] < mine)
                        older++;
        return older < max_parallel;
}

/* ---- the fleet ---- */

/* A put or delete that must reach etcd: a failure record, or the
 * deletion of a released slot. Retried with backoff until it does. */
struct op {
        struct op *next;
        char *path, *body;
        char *what;    /* for the log: "fail/hello/v2/n1" */
        char *service; /* for a release: the slot's service */
};

struct slot {
        struct fleet *f;
        char *service;
        char *rel; /* sem/<service>/<node> */
        unsigned max_parallel;
        struct etcd_call call; /* the create txn, the take-over put or the confirming txn */
        enum { SLOT_CREATE, SLOT_TAKE_OVER, SLOT_CONFIRM } calling;
        int64_t call_lease;      /* the lease of the create or take-over in flight */
        int64_t confirming_rev;  /* the create revision the txn in flight guards */
        uint64_t confirming_gen; /* the view's generation when it was sent */
        bool confirmed;          /* a guarded txn has confirmed the slot ... */
        uint64_t confirmed_gen;  /* ... while the view was this */
        int64_t confirmed_rev;
        uint64_t gen; /* bumped by every change of sem/<service>/ */
        /* The revision of this node's create or take-over, until the watch
         * has brought it into the view: no second request before. */
        int64_t awaiting_rev;
        /* Requests that failed in a row, and when the next may go. */
        unsigned failures;
        uint64_t retry_usec;
        /* Given back while its create or take-over was on the way: the
         * request is not aborted (etcd may have applied it already), and
         * the key is deleted after its answer, never before. */
        bool released;
};

struct fleet {
        uv_loop_t *loop;
        struct etcd_client *client;
        char *node, *prefix;
        uint64_t ttl_usec;
        struct events *events;
        struct events_sub *sub;
        fleet_status_cb status;
        fleet_changed_cb changed;
        fleet_max_failures_cb max_failures;
        void *userdata;

        /* The lease. */
        int64_t lease_id;
        uint64_t renewed_usec; /* monotonic: when the renewing request went out */
        uint64_t lease_sent_usec;
        bool lease_granting;
        bool was_fresh;
        unsigned lease_failures;
        struct etcd_call lease_call;
        uv_timer_t lease_timer, fresh_timer;

        /* The status key. */
        char *status_rel, *status_key_b64;
        struct etcd_call status_call;
        int64_t status_lease; /* the lease of the put in flight */
        unsigned status_failures;
        bool status_dirty;
        uv_timer_t status_timer;

        /* The watched view, sorted by key. */
        struct fleet_kv *kvs;
        size_t n_kvs;
        bool view_full_logged;
        int64_t revision;
        bool compacted;
        unsigned watch_failures;
        struct etcd_call range_call, watch_call;
        uv_timer_t watch_timer;
        char *range_key_b64, *range_end_b64;

        struct slot **slots;
        size_t n_slots;

        uv_timer_t slot_timer; /* the engine asks again after a failed request */

        struct op *ops;
        size_t n_ops;
        unsigned op_failures;
        struct etcd_call op_call;
        uv_timer_t op_timer;

        uv_timer_t changed_timer;
        unsigned open_handles;
        bool started, freed;
};

static uint64_t backoff_msec(unsigned failures, uint64_t max)
{
        uint64_t d = FLEET_BACKOFF_MIN_MSEC;
        for (unsigned i = 1; i < failures && d < max; i++)
                d *= 2;
        return d < max ? d : max;
}

static void on_changed_timer(uv_timer_t *t)
{
        struct fleet *f = t->data;
        if (f->changed)
                f->changed(f->userdata);
}

static void changed_soon(struct fleet *f)
{
        if (!f->freed && f->changed)
                uv_timer_start(&f->changed_timer, on_changed_timer, 0, 0);
}

bool fleet_lease_fresh(const struct fleet *f)
{
        return f->lease_id != 0 && now_monotonic_usec() - f->renewed_usec < f->ttl_usec;
}

/* ---- the view ---- */

/* The index of key, or where it would go (*found false). */
static size_t view_search(const struct fleet *f, const char *key, bool *found)
{
        size_t lo = 0, hi = f->n_kvs;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(f->kvs[mid].key, key);
                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

static const struct fleet_kv *view_find(const struct fleet *f, const char *key)
{
        bool found;
        size_t i = view_search(f, key, &found);
        return found ? &f->kvs[i] : NULL;
}

static void kv_done(struct fleet_kv *kv)
{
        free(kv->key);
        free(kv->value);
        *kv = (struct fleet_kv){0};
}

static void view_clear(struct fleet *f)
{
        for (size_t i = 0; i < f->n_kvs; i++)
                kv_done(&f->kvs[i]);
        free(f->kvs);
        f->kvs = NULL;
        f->n_kvs = 0;
}

static struct slot *slot_find(struct fleet *f, const char *service)
{
        for (size_t i = 0; i < f->n_slots; i++)
                if (strcmp(f->slots[i]->service, service) == 0)
                        return f->slots[i];
        return NULL;
}

/* A change of a key: sem/ and fail/ matter to the engine. Returns whether
 * it did. */
static bool note_change(struct fleet *f, const char *key)
{
        if (strncmp(key, "sem/", 4) == 0) {
                const char *service = key + 4, *slash = strchr(service, '/');
                for (size_t i = 0; slash && i < f->n_slots; i++)
                        if (strlen(f->slots[i]->service) == (size_t)(slash - service) &&
                            strncmp(f->slots[i]->service, service, (size_t)(slash - service)) == 0)
                                f->slots[i]->gen++;
                return true;
        }
        return strncmp(key, "fail/", 5) == 0;
}

/* Applies one event (taking its kv); returns whether the engine should
 * hear of it. */
static bool view_apply(struct fleet *f, struct fleet_event *ev)
{
        bool found;
        size_t i = view_search(f, ev->kv.key, &found);
        bool matters = note_change(f, ev->kv.key);
        if (ev->deleted) {
                kv_done(&ev->kv);
                if (!found)
                        return false;
                kv_done(&f->kvs[i]);
                memmove(&f->kvs[i], &f->kvs[i + 1], (f->n_kvs - i - 1) * sizeof *f->kvs);
                f->n_kvs--;
                return matters;
        }
        if (found) {
                kv_done(&f->kvs[i]);
                f->kvs[i] = ev->kv;
                ev->kv = (struct fleet_kv){0};
                return matters;
        }
        if (f->n_kvs >= FLEET_MAX_KEYS) {
                if (!f->view_full_logged)
                        log_warning("The fleet view holds %u keys, its limit: %s/%s and any "
                                    "further new key are left out",
                                    FLEET_MAX_KEYS, f->prefix, ev->kv.key);
                f->view_full_logged = true;
                kv_done(&ev->kv);
                return false;
        }
        struct fleet_kv *p = realloc(f->kvs, (f->n_kvs + 1) * sizeof *p);
        if (!p)
                abort();
        f->kvs = p;
        memmove(&f->kvs[i + 1], &f->kvs[i], (f->n_kvs - i) * sizeof *f->kvs);
        f->kvs[i] = ev->kv;
        ev->kv = (struct fleet_kv){0};
        f->n_kvs++;
        return matters;
}

/* ---- requests with a plain answer ---- */

/* The answer of a finished call, or NULL with *ret_error set. */
static char *call_error(struct etcd_call *c, CURLcode result, long status)
{
        if (c->error)
                return xstrdup(c->error_msg ? c->error_msg : strerror(-c->error));
        if (result != CURLE_OK)
                return xstrdup(curl_easy_strerror(result));
        if (status < 200 || status > 299) {
                _cleanup_json_ json_object *root = c->resp ? json_tokener_parse(c->resp) : NULL;
                const char *msg = root ? etcd_json_error(root) : NULL;
                return xasprintf("HTTP %ld%s%s", status, msg ? ": " : "", msg ? msg : "");
        }
        return NULL;
}

static bool lease_lost_error(const char *error)
{
        return error && strstr(error, "lease not found");
}

static void lease_grant(struct fleet *f);
static void notice_freshness(struct fleet *f);

/* A put under lease was refused because etcd no longer knows it: unless
 * a new one was granted meanwhile, the node needs one. */
static void lease_lost(struct fleet *f, int64_t lease)
{
        if (lease != f->lease_id || lease == 0)
                return;
        log_warning("etcd says the node's lease %llx is gone: granting a new one and writing "
                    "the node's keys again",
                    (unsigned long long)lease);
        f->lease_id = 0;
        notice_freshness(f);
        lease_grant(f);
}

/* ---- the lease ---- */

static void status_put(struct fleet *f);
static void slot_create(struct slot *s);

static void notice_freshness(struct fleet *f)
{
        bool fresh = fleet_lease_fresh(f);
        if (fresh != f->was_fresh) {
                if (fresh)
                        log_info("The node's lease %llx in etcd is fresh: slots may be held",
                                 (unsigned long long)f->lease_id);
                else
                        log_warning("The node's lease %llx in etcd was not renewed within its "
                                    "TTL (%llus, via %s): no rollout step starts until it is",
                                    (unsigned long long)f->lease_id,
                                    (unsigned long long)(f->ttl_usec / USEC_PER_SEC),
                                    etcd_client_endpoint(f->client));
                f->was_fresh = fresh;
                changed_soon(f);
        }
}

static void on_fresh_timer(uv_timer_t *t);

/* Wakes when the lease would run out unrenewed. libuv counts from the time
 * cached at the start of the loop's turn, so the timer may fire a little
 * early; it is then armed again for the rest. */
static void arm_fresh_timer(struct fleet *f)
{
        uint64_t now = now_monotonic_usec(), end = f->renewed_usec + f->ttl_usec;
        uint64_t left = end > now ? end - now : 0;
        uv_timer_start(&f->fresh_timer, on_fresh_timer, left / USEC_PER_MSEC + 1, 0);
}

static void on_fresh_timer(uv_timer_t *t)
{
        struct fleet *f = t->data;
        notice_freshness(f);
        if (fleet_lease_fresh(f))
                arm_fresh_timer(f);
}

static void on_lease_timer(uv_timer_t *t)
{
        lease_grant(t->data);
}

/* The lease was renewed by a request sent at sent_usec. */
static void lease_renewed(struct fleet *f, uint64_t sent_usec)
{
        /* A lease that ran out before this answer came is stale until now,
         * even if its timer had not fired yet. */
        notice_freshness(f);
        f->renewed_usec = sent_usec;
        f->lease_failures = 0;
        arm_fresh_timer(f);
        uv_timer_start(&f->lease_timer, on_lease_timer, f->ttl_usec / 3 / USEC_PER_MSEC, 0);
        notice_freshness(f);
}

static void lease_retry(struct fleet *f, const char *what, const char *why)
{
        f->lease_failures++;
        uint64_t delay = backoff_msec(f->lease_failures, f->ttl_usec / 3 / USEC_PER_MSEC);
        log_warning("etcd %s of the node's lease via %s failed: %s; again in %llums", what,
                    f->lease_call.url ? f->lease_call.url : etcd_client_endpoint(f->client), why,
                    (unsigned long long)delay);
        etcd_call_failed_over(&f->lease_call);
        etcd_call_reset(&f->lease_call);
        uv_timer_start(&f->lease_timer, on_lease_timer, delay, 0);
        notice_freshness(f);
}

static void on_lease_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct fleet *f = userdata;
        bool granting = f->lease_granting;
        const char *what = granting ? "grant" : "keepalive";
        _cleanup_free_ char *error = call_error(c, result, status);
        if (error && etcd_client_token_invalid(f->client, error)) {
                etcd_call_reset(c);
                lease_grant(f);
                return;
        }
        int64_t id = 0, ttl = 0;
        int r = error ? -EIO : fleet_parse_lease(c->resp, c->resp_len, &id, &ttl, &error);
        if (r == -ENOENT || (r == 0 && !granting && ttl <= 0) || lease_lost_error(error)) {
                /* etcd no longer knows the lease: the node's keys went with
                 * it; a new lease and the keys again. */
                log_warning("etcd says the node's lease %llx is gone (via %s): granting a new "
                            "one and writing the node's keys again",
                            (unsigned long long)f->lease_id, c->url);
                f->lease_id = 0;
                etcd_call_reset(c);
                notice_freshness(f);
                lease_grant(f);
                return;
        }
        if (r < 0 || (granting && (id == 0 || ttl <= 0))) {
                lease_retry(f, what, error ? error : "no lease in the answer");
                return;
        }
        etcd_call_reset(c);
        lease_renewed(f, f->lease_sent_usec);
        if (granting) {
                f->lease_id = id;
                log_info("The node %s holds lease %llx in etcd (TTL %llds)", f->node,
                         (unsigned long long)id, (long long)ttl);
                notice_freshness(f);
                /* The node's keys are under this lease now. */
                status_put(f);
                for (size_t i = 0; i < f->n_slots; i++)
                        slot_create(f->slots[i]);
                changed_soon(f);
        }
}

/* Grants a lease when there is none, or keeps the one there is alive. */
static void lease_grant(struct fleet *f)
{
        if (f->freed || f->lease_call.easy || f->lease_call.waiting)
                return;
        uv_timer_stop(&f->lease_timer);
        char *body;
        f->lease_granting = f->lease_id == 0;
        if (f->lease_granting)
                body = xasprintf(
                    "{\"TTL\":\"%llu\"}",
                    (unsigned long long)((f->ttl_usec + USEC_PER_SEC - 1) / USEC_PER_SEC));
        else
                body = xasprintf("{\"ID\":\"%lld\"}", (long long)f->lease_id);
        f->lease_sent_usec = now_monotonic_usec();
        /* An answer later than a third of the TTL is of little use: the
         * next one is due. */
        uint64_t timeout = f->ttl_usec / 3 > USEC_PER_SEC ? f->ttl_usec / 3 : USEC_PER_SEC;
        int r = etcd_call_start(f->client, &f->lease_call,
                                f->lease_granting ? "/v3/lease/grant" : "/v3/lease/keepalive", body,
                                65536, NULL, timeout, on_lease_done, f);
        if (r < 0)
                lease_retry(f, f->lease_granting ? "grant" : "keepalive", strerror(-r));
}

/* ---- the status key ---- */

static void on_status_timer(uv_timer_t *t)
{
        status_put(t->data);
}

static void on_status_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct fleet *f = userdata;
        _cleanup_free_ char *error = call_error(c, result, status);
        if (error) {
                /* A put refused for good (a user without write permission)
                 * is asked ever less often. */
                f->status_failures++;
                uint64_t delay = backoff_msec(f->status_failures, FLEET_BACKOFF_MAX_MSEC);
                log_warning("Failed to put %s/%s via %s: %s; again in %llums", f->prefix,
                            f->status_rel, c->url, error, (unsigned long long)delay);
                if (etcd_client_token_invalid(f->client, error))
                        f->status_dirty = true;
                else if (lease_lost_error(error)) {
                        etcd_call_reset(c);
                        f->status_dirty = true;
                        lease_lost(f, f->status_lease);
                        return;
                } else {
                        etcd_call_failed_over(c);
                        f->status_dirty = true;
                }
                etcd_call_reset(c);
                uv_timer_start(&f->status_timer, on_status_timer, delay, 0);
                return;
        }
        etcd_call_reset(c);
        f->status_failures = 0;
        if (f->status_dirty) {
                f->status_dirty = false;
                uv_timer_start(&f->status_timer, on_status_timer, FLEET_SETTLE_MSEC, 0);
        }
}

static void status_put(struct fleet *f)
{
        if (f->freed || !f->status)
                return;
        if (f->status_call.easy || f->status_call.waiting || f->lease_id == 0) {
                /* After the put in flight, or once the lease is there. */
                f->status_dirty = true;
                return;
        }
        uv_timer_stop(&f->status_timer);
        f->status_dirty = false;
        _cleanup_json_ json_object *doc = f->status(f->userdata);
        if (!doc)
                return;
        const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
        size_t len = strlen(text);
        if (len > FLEET_MAX_STATUS) {
                log_warning("The node's status is %zu bytes, more than the %u a node may put in "
                            "%s/%s: not put",
                            len, FLEET_MAX_STATUS, f->prefix, f->status_rel);
                return;
        }
        _cleanup_free_ char *value = base64_encode(text, len);
        char *body = xasprintf("{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%lld\"}",
                               f->status_key_b64, value, (long long)f->lease_id);
        f->status_lease = f->lease_id;
        int r = etcd_call_start(f->client, &f->status_call, "/v3/kv/put", body, 65536, NULL, 0,
                                on_status_done, f);
        if (r < 0) {
                log_warning("Failed to put %s/%s: %s", f->prefix, f->status_rel, strerror(-r));
                uv_timer_start(&f->status_timer, on_status_timer, 1000, 0);
        }
}

void fleet_status_changed(struct fleet *f)
{
        if (!f->freed && !uv_is_active((uv_handle_t *)&f->status_timer))
                uv_timer_start(&f->status_timer, on_status_timer, FLEET_SETTLE_MSEC, 0);
}

static void on_event(const struct event *e, void *userdata)
{
        fleet_status_changed(userdata);
}

/* ---- the watch ---- */

static void range_start(struct fleet *f);
static void watch_start(struct fleet *f);

static void on_watch_timer(uv_timer_t *t)
{
        struct fleet *f = t->data;
        if (f->revision == 0 || f->compacted)
                range_start(f);
        else
                watch_start(f);
}

static void watch_retry(struct fleet *f, struct etcd_call *c, const char *what, const char *why)
{
        f->watch_failures++;
        uint64_t delay = backoff_msec(f->watch_failures, FLEET_BACKOFF_MAX_MSEC);
        log_info("The fleet %s of %s/ via %s ended: %s; again in %llums", what, f->prefix,
                 c->url ? c->url : etcd_client_endpoint(f->client), why, (unsigned long long)delay);
        etcd_call_failed_over(c);
        etcd_call_reset(c);
        uv_timer_start(&f->watch_timer, on_watch_timer, delay, 0);
}

static void log_skipped(struct fleet *f, struct fleet_batch *b)
{
        if (b->skipped)
                log_warning("Keys of the fleet under %s/ left out of the view: %s", f->prefix,
                            b->skipped);
}

static void on_range_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct fleet *f = userdata;
        _cleanup_free_ char *error = call_error(c, result, status);
        if (error && etcd_client_token_invalid(f->client, error)) {
                etcd_call_reset(c);
                range_start(f);
                return;
        }
        struct fleet_batch b = {0};
        if (!error && fleet_parse_range(c->resp, c->resp_len, f->prefix, &b, &error) < 0) {
                watch_retry(f, c, "read", error);
                return;
        }
        if (error) {
                watch_retry(f, c, "read", error);
                return;
        }
        etcd_call_reset(c);
        log_skipped(f, &b);
        if (b.more)
                log_warning("The fleet under %s/ has more than %u keys: the view holds the first",
                            f->prefix, FLEET_MAX_KEYS);
        view_clear(f);
        f->view_full_logged = false;
        for (size_t i = 0; i < f->n_slots; i++)
                f->slots[i]->gen++;
        for (size_t i = 0; i < b.n_events; i++)
                view_apply(f, &b.events[i]);
        f->revision = b.revision;
        f->compacted = false;
        fleet_batch_done(&b);
        changed_soon(f);
        watch_start(f);
}

static void range_start(struct fleet *f)
{
        if (f->freed || f->range_call.easy || f->range_call.waiting)
                return;
        uv_timer_stop(&f->watch_timer);
        char *body = xasprintf("{\"key\":\"%s\",\"range_end\":\"%s\",\"limit\":\"%u\"}",
                               f->range_key_b64, f->range_end_b64, FLEET_MAX_KEYS);
        int r = etcd_call_start(f->client, &f->range_call, "/v3/kv/range", body, FLEET_MAX_ANSWER,
                                NULL, 0, on_range_done, f);
        if (r < 0)
                watch_retry(f, &f->range_call, "read", strerror(-r));
}

static int on_watch_message(json_object *o, void *userdata)
{
        struct fleet *f = userdata;
        struct etcd_call *c = &f->watch_call;
        _cleanup_free_ char *error = NULL;
        struct fleet_batch b = {0};
        int r = fleet_parse_watch(o, f->prefix, &b, &error);
        if (r < 0) {
                free(c->error_msg);
                c->error_msg = TAKE_PTR(error);
                return r;
        }
        if (b.canceled) {
                free(c->error_msg);
                if (b.compact_revision > 0) {
                        f->compacted = true;
                        c->error_msg = xasprintf("the history up to revision %lld was compacted",
                                                 (long long)b.compact_revision);
                } else {
                        c->error_msg =
                            xstrdup(b.cancel_reason ? b.cancel_reason : "cancelled by etcd");
                }
                fleet_batch_done(&b);
                return -ECANCELED;
        }
        if (b.created)
                f->watch_failures = 0;
        log_skipped(f, &b);
        bool matters = false;
        for (size_t i = 0; i < b.n_events; i++)
                matters |= view_apply(f, &b.events[i]);
        if (b.last_mod_revision > f->revision)
                f->revision = b.last_mod_revision;
        fleet_batch_done(&b);
        if (matters)
                changed_soon(f);
        return 0;
}

static void on_watch_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct fleet *f = userdata;
        etcd_client_token_invalid(f->client, c->error_msg);
        etcd_client_token_invalid(f->client, c->resp);
        _cleanup_free_ char *why = call_error(c, result, status);
        if (!why)
                why = xstrdup("the member closed it");
        if (f->compacted) {
                log_info("The fleet watch of %s/ via %s ended: %s; the keys are read again",
                         f->prefix, c->url, why);
                etcd_call_reset(c);
                range_start(f);
                return;
        }
        watch_retry(f, c, "watch", why);
}

static void watch_start(struct fleet *f)
{
        if (f->freed || f->watch_call.easy || f->watch_call.waiting)
                return;
        char *body = xasprintf("{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                               "\"start_revision\":\"%lld\",\"progress_notify\":true}}",
                               f->range_key_b64, f->range_end_b64, (long long)f->revision + 1);
        int r = etcd_call_start(f->client, &f->watch_call, "/v3/watch", body, FLEET_MAX_MESSAGE,
                                on_watch_message, 0, on_watch_done, f);
        if (r < 0)
                watch_retry(f, &f->watch_call, "watch", strerror(-r));
}

/* ---- retried puts and deletes ---- */

static void op_next(struct fleet *f);

static void on_op_timer(uv_timer_t *t)
{
        op_next(t->data);
}

static void op_free(struct op *op)
{
        free(op->path);
        free(op->body);
        free(op->what);
        free(op->service);
        free(op);
}

static void on_op_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct fleet *f = userdata;
        _cleanup_free_ char *error = call_error(c, result, status);
        struct op *op = f->ops;
        if (error) {
                f->op_failures++;
                uint64_t delay = backoff_msec(f->op_failures, FLEET_BACKOFF_MAX_MSEC);
                log_warning("Failed to write %s/%s via %s: %s; again in %llums", f->prefix,
                            op->what, c->url, error, (unsigned long long)delay);
                if (!etcd_client_token_invalid(f->client, error))
                        etcd_call_failed_over(c);
                etcd_call_reset(c);
                uv_timer_start(&f->op_timer, on_op_timer, delay, 0);
                return;
        }
        etcd_call_reset(c);
        f->op_failures = 0;
        f->ops = op->next;
        f->n_ops--;
        /* A node that wants the slot again was kept waiting for this. */
        if (op->service)
                changed_soon(f);
        op_free(op);
        op_next(f);
}

static void op_next(struct fleet *f)
{
        if (f->freed || !f->ops || f->op_call.easy || f->op_call.waiting ||
            uv_is_active((uv_handle_t *)&f->op_timer))
                return;
        struct op *op = f->ops;
        int r = etcd_call_start(f->client, &f->op_call, op->path, xstrdup(op->body), 65536, NULL, 0,
                                on_op_done, f);
        if (r < 0)
                uv_timer_start(&f->op_timer, on_op_timer, 1000, 0);
}

static void op_queue(struct fleet *f, const char *path, char *body, char *what, const char *service)
{
        if (f->n_ops >= FLEET_MAX_OPS) {
                log_warning("More than %d writes to etcd wait: %s/%s is not written", FLEET_MAX_OPS,
                            f->prefix, what);
                free(body);
                free(what);
                return;
        }
        struct op *op = xcalloc(1, sizeof *op);
        op->path = xstrdup(path);
        op->body = body;
        op->what = what;
        op->service = service ? xstrdup(service) : NULL;
        struct op **p = &f->ops;
        while (*p)
                p = &(*p)->next;
        *p = op;
        f->n_ops++;
        op_next(f);
}

/* Whether the deletion of service's sem key is on the way to etcd: the
 * key in the view is then not to be used, nor a new one created beside
 * the deletion (which etcd might apply after it). */
static bool release_in_flight(const struct fleet *f, const char *service)
{
        const struct op *op = f->ops;
        return op && op->service && (f->op_call.easy || f->op_call.waiting) &&
               strcmp(op->service, service) == 0;
}

/* A release of service that has not gone out yet is dropped: the node
 * wants the slot again. */
static void op_cancel_release(struct fleet *f, const char *service)
{
        for (struct op **p = &f->ops; *p;) {
                struct op *op = *p;
                bool in_flight = op == f->ops && (f->op_call.easy || f->op_call.waiting);
                if (!in_flight && op->service && strcmp(op->service, service) == 0) {
                        *p = op->next;
                        f->n_ops--;
                        op_free(op);
                        continue;
                }
                p = &op->next;
        }
}

/* ---- slots ---- */

static void on_slot_timer(uv_timer_t *t)
{
        changed_soon(t->data);
}

static char *key_b64(const struct fleet *f, const char *rel)
{
        _cleanup_free_ char *key = xasprintf("%s/%s", f->prefix, rel);
        return etcd_key_b64(key);
}

static void slot_free(struct slot *s)
{
        etcd_call_reset(&s->call);
        free(s->service);
        free(s->rel);
        free(s);
}

/* Forgets a slot the node no longer wants. */
static void slot_drop(struct slot *s)
{
        struct fleet *f = s->f;
        for (size_t i = 0; i < f->n_slots; i++)
                if (f->slots[i] == s) {
                        f->slots[i] = f->slots[--f->n_slots];
                        break;
                }
        slot_free(s);
}

/* Deletes the node's sem key of service, retried until etcd confirms it. */
static void slot_delete_key(struct fleet *f, const char *service)
{
        _cleanup_free_ char *rel = xasprintf("sem/%s/%s", service, f->node);
        _cleanup_free_ char *k = key_b64(f, rel);
        op_queue(f, "/v3/kv/deleterange", xasprintf("{\"key\":\"%s\"}", k), xstrdup(rel), service);
}

static void on_slot_done(struct etcd_call *c, CURLcode result, long status, void *userdata)
{
        struct slot *s = userdata;
        struct fleet *f = s->f;
        if (s->released) {
                /* Whatever etcd answered, the key may be there now. */
                _cleanup_free_ char *service = xstrdup(s->service);
                slot_drop(s);
                slot_delete_key(f, service);
                return;
        }
        bool confirming = s->calling == SLOT_CONFIRM;
        bool taking_over = s->calling == SLOT_TAKE_OVER;
        _cleanup_free_ char *error = call_error(c, result, status);
        bool ok = false;
        int64_t rev;
        if (!error)
                fleet_parse_txn(c->resp, c->resp_len, &ok, &rev, &error);
        if (error) {
                /* The engine asks again after a backoff, not at once: a
                 * refusal for good (no write permission) must not spin. */
                s->failures++;
                uint64_t delay = backoff_msec(s->failures, FLEET_BACKOFF_MAX_MSEC);
                s->retry_usec = now_monotonic_usec() + delay * USEC_PER_MSEC;
                log_warning("etcd %s of %s/%s via %s failed: %s; again in %llums",
                            confirming ? "txn confirming" : "txn creating", f->prefix, s->rel,
                            c->url, error, (unsigned long long)delay);
                if (!etcd_client_token_invalid(f->client, error))
                        etcd_call_failed_over(c);
                if (lease_lost_error(error))
                        lease_lost(f, s->call_lease);
                etcd_call_reset(c);
                uv_timer_start(&f->slot_timer, on_slot_timer, delay, 0);
                return;
        }
        s->failures = 0;
        etcd_call_reset(c);
        if (confirming) {
                /* A refusal says the view is behind: it is not asked again
                 * before the view changes. */
                s->confirmed = ok;
                s->confirmed_gen = s->confirming_gen;
                s->confirmed_rev = s->confirming_rev;
        } else if (ok || taking_over) {
                /* No second request before the watch has brought the key. */
                s->awaiting_rev = rev;
        } else {
                /* The key is there already. When it is under another lease
                 * (this node's before liid restarted), it is taken over:
                 * a put keeps its create revision, so its place in line. */
                const struct fleet_kv *kv = view_find(f, s->rel);
                if (!kv || kv->lease != f->lease_id) {
                        _cleanup_free_ char *k = key_b64(f, s->rel);
                        _cleanup_free_ char *v = base64_encode(f->node, strlen(f->node));
                        char *body =
                            xasprintf("{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%lld\"}", k, v,
                                      (long long)f->lease_id);
                        s->calling = SLOT_TAKE_OVER;
                        s->call_lease = f->lease_id;
                        if (etcd_call_start(f->client, &s->call, "/v3/kv/put", body, 65536, NULL, 0,
                                            on_slot_done, s) == 0)
                                return;
                }
        }
        /* The engine asks again after every answer, whatever it said: the
         * watch may have brought the key before it, while this request
         * kept the slot from being confirmed, and then nothing else would
         * make the engine ask. */
        changed_soon(f);
}

/* Whether the slot's backoff after a failed request is over. If not, the
 * engine is asked again when it is: the timer that ended it may have
 * fired a moment early (libuv counts from the loop's cached time), and
 * nothing else would make the engine ask. */
static bool slot_backoff_over(struct slot *s)
{
        struct fleet *f = s->f;
        uint64_t now = now_monotonic_usec();
        if (now >= s->retry_usec)
                return true;
        uint64_t left = (s->retry_usec - now) / USEC_PER_MSEC + 1;
        if (!uv_is_active((uv_handle_t *)&f->slot_timer) ||
            uv_timer_get_due_in(&f->slot_timer) > left)
                uv_timer_start(&f->slot_timer, on_slot_timer, left, 0);
        return false;
}

/* Creates the node's sem key under the lease, unless it is there. */
static void slot_create(struct slot *s)
{
        struct fleet *f = s->f;
        if (f->lease_id == 0 || s->call.easy || s->call.waiting || s->awaiting_rev > f->revision ||
            release_in_flight(f, s->service) || !slot_backoff_over(s))
                return;
        const struct fleet_kv *kv = view_find(f, s->rel);
        if (kv && kv->lease == f->lease_id)
                return;
        _cleanup_free_ char *k = key_b64(f, s->rel);
        _cleanup_free_ char *v = base64_encode(f->node, strlen(f->node));
        char *body = xasprintf("{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\","
                               "\"create_revision\":\"0\"}],"
                               "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\","
                               "\"lease\":\"%lld\"}}]}",
                               k, k, v, (long long)f->lease_id);
        s->calling = SLOT_CREATE;
        s->call_lease = f->lease_id;
        if (etcd_call_start(f->client, &s->call, "/v3/kv/txn", body, 65536, NULL, 0, on_slot_done,
                            s) < 0)
                log_warning("Failed to ask etcd for %s/%s", f->prefix, s->rel);
}

static void slot_confirm(struct slot *s, int64_t create_revision)
{
        struct fleet *f = s->f;
        if (s->call.easy || s->call.waiting || !slot_backoff_over(s))
                return;
        /* Refused for this very view: it must change first. */
        if (!s->confirmed && s->confirmed_rev == create_revision && s->confirmed_gen == s->gen)
                return;
        _cleanup_free_ char *k = key_b64(f, s->rel);
        char *body = xasprintf("{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\","
                               "\"create_revision\":\"%lld\"}]}",
                               k, (long long)create_revision);
        s->calling = SLOT_CONFIRM;
        s->confirming_rev = create_revision;
        s->confirming_gen = s->gen;
        if (etcd_call_start(f->client, &s->call, "/v3/kv/txn", body, 65536, NULL, 0, on_slot_done,
                            s) < 0) {
                log_warning("Failed to ask etcd to confirm %s/%s", f->prefix, s->rel);
        }
}

enum fleet_slot fleet_slot_want(struct fleet *f, const char *service, unsigned max_parallel)
{
        struct slot *s = slot_find(f, service);
        if (!s) {
                s = xcalloc(1, sizeof *s);
                s->f = f;
                s->service = xstrdup(service);
                s->rel = xasprintf("sem/%s/%s", service, f->node);
                s->call.client = f->client;
                struct slot **p = realloc(f->slots, (f->n_slots + 1) * sizeof *p);
                if (!p)
                        abort();
                f->slots = p;
                f->slots[f->n_slots++] = s;
                op_cancel_release(f, service);
        }
        /* Wanted again before its request was answered: it stands. */
        s->released = false;
        if (release_in_flight(f, service)) {
                s->confirmed = false;
                return FLEET_SLOT_WAITING;
        }
        s->max_parallel = max_parallel ? max_parallel : 1;
        const struct fleet_kv *kv = view_find(f, s->rel);
        if (!kv || kv->lease != f->lease_id || f->lease_id == 0) {
                s->confirmed = false;
                slot_create(s);
                return FLEET_SLOT_WAITING;
        }
        /* The create revisions of the service's keys in the view. */
        _cleanup_free_ char *prefix = xasprintf("sem/%s/", service);
        size_t plen = strlen(prefix);
        bool found;
        size_t first = view_search(f, prefix, &found), n = 0;
        while (first + n < f->n_kvs && strncmp(f->kvs[first + n].key, prefix, plen) == 0)
                n++;
        _cleanup_free_ int64_t *revs = xcalloc(n ? n : 1, sizeof *revs);
        for (size_t i = 0; i < n; i++)
                revs[i] = f->kvs[first + i].create_revision;
        if (!fleet_slot_rank_ok(revs, n, kv->create_revision, s->max_parallel)) {
                s->confirmed = false;
                return FLEET_SLOT_WAITING;
        }
        if (!fleet_lease_fresh(f)) {
                /* Noticed now, not only when the timer fires: a node refused
                 * here is told when the lease is fresh again. */
                notice_freshness(f);
                return FLEET_SLOT_WAITING;
        }
        if (s->confirmed && s->confirmed_gen == s->gen && s->confirmed_rev == kv->create_revision)
                return FLEET_SLOT_HELD;
        slot_confirm(s, kv->create_revision);
        return FLEET_SLOT_WAITING;
}

void fleet_slot_release(struct fleet *f, const char *service)
{
        struct slot *s = slot_find(f, service);
        if (s && (s->call.easy || s->call.waiting) && s->calling != SLOT_CONFIRM) {
                s->released = true;
                return;
        }
        if (s)
                slot_drop(s);
        slot_delete_key(f, service);
}

void fleet_record_failure(struct fleet *f, const char *service, const char *rollout_id,
                          const char *reason)
{
        _cleanup_free_ char *rel = xasprintf("fail/%s/%s/%s", service, rollout_id, f->node);
        _cleanup_free_ char *k = key_b64(f, rel);
        /* What the view keeps of a value, in whole characters. */
        _cleanup_free_ char *v = base64_encode(reason, utf8_cut(reason, FLEET_MAX_VALUE));
        op_queue(f, "/v3/kv/put", xasprintf("{\"key\":\"%s\",\"value\":\"%s\"}", k, v),
                 xstrdup(rel), NULL);
}

unsigned fleet_failures(const struct fleet *f, const char *service, const char *rollout_id)
{
        _cleanup_free_ char *prefix = xasprintf("fail/%s/%s/", service, rollout_id);
        size_t plen = strlen(prefix);
        bool found;
        unsigned n = 0;
        for (size_t i = view_search(f, prefix, &found);
             i < f->n_kvs && strncmp(f->kvs[i].key, prefix, plen) == 0; i++)
                n++;
        return n;
}

/* ---- GET /v1/fleet ---- */

static json_object *value_json(const struct fleet_kv *kv)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        json_object *o = kv->value && kv->value_len <= INT_MAX
                             ? json_tokener_parse_ex(tok, kv->value, (int)kv->value_len)
                             : NULL;
        if (o && json_object_is_type(o, json_type_object))
                return o;
        json_object_put(o);
        o = json_object_new_object();
        json_object_object_add(o, LII_F_ERROR,
                               json_object_new_string("the status in etcd is not a JSON object"));
        return o;
}

json_object *fleet_to_json(const struct fleet *f)
{
        json_object *doc = json_object_new_object();
        json_object *nodes = json_object_new_object();
        json_object *rollouts = json_object_new_object();
        /* Per service, the rollout of the node with the newest serial. */
        json_object *serials = json_object_new_object();
        for (size_t i = 0; i < f->n_kvs; i++) {
                const struct fleet_kv *kv = &f->kvs[i];
                if (strncmp(kv->key, "nodes/", 6) != 0)
                        continue;
                const char *node = kv->key + 6;
                size_t nlen = strlen(node);
                if (nlen <= 7 || strcmp(node + nlen - 7, "/status") != 0)
                        continue;
                _cleanup_free_ char *name = strndup(node, nlen - 7);
                json_object *st = value_json(kv);
                json_object_object_add(nodes, name, st);
                json_object *svcs, *serial_o;
                int64_t serial = json_object_object_get_ex(st, LII_F_SERIAL, &serial_o)
                                     ? json_object_get_int64(serial_o)
                                     : 0;
                if (!json_object_object_get_ex(st, LII_F_SERVICES, &svcs) ||
                    !json_object_is_type(svcs, json_type_object))
                        continue;
                json_object_object_foreach(svcs, svc, so)
                {
                        json_object *ro, *id, *pct, *seen;
                        if (!json_object_is_type(so, json_type_object) ||
                            !json_object_object_get_ex(so, LII_F_ROLLOUT, &ro) ||
                            !json_object_is_type(ro, json_type_object) ||
                            !json_object_object_get_ex(ro, LII_F_ID, &id) ||
                            !json_object_is_type(id, json_type_string))
                                continue;
                        if (json_object_object_get_ex(serials, svc, &seen) &&
                            json_object_get_int64(seen) >= serial)
                                continue;
                        json_object_object_add(serials, svc, json_object_new_int64(serial));
                        json_object *r = json_object_new_object();
                        json_object_object_add(r, LII_F_ID, json_object_get(id));
                        json_object_object_add(r, LII_F_PERCENT,
                                               json_object_object_get_ex(ro, LII_F_PERCENT, &pct)
                                                   ? json_object_get(pct)
                                                   : NULL);
                        json_object_object_add(rollouts, svc, r);
                }
        }
        json_object_put(serials);
        json_object_object_foreach(rollouts, svc, r)
        {
                const char *id = json_object_get_string(json_object_object_get(r, LII_F_ID));
                _cleanup_free_ char *prefix = xasprintf("fail/%s/%s/", svc, id);
                size_t plen = strlen(prefix);
                bool found;
                json_object *failures = json_object_new_object();
                unsigned n = 0;
                for (size_t i = view_search(f, prefix, &found);
                     i < f->n_kvs && strncmp(f->kvs[i].key, prefix, plen) == 0; i++, n++)
                        json_object_object_add(
                            failures, f->kvs[i].key + plen,
                            json_object_new_string_len(f->kvs[i].value ? f->kvs[i].value : "",
                                                       (int)f->kvs[i].value_len));
                unsigned max = f->max_failures ? f->max_failures(f->userdata, svc) : 0;
                json_object_object_add(r, LII_F_HALTED,
                                       json_object_new_boolean(max > 0 && n >= max));
                json_object_object_add(r, LII_F_FAILURES, failures);
        }
        json_object_object_add(doc, LII_F_NODES, nodes);
        json_object_object_add(doc, LII_F_ROLLOUTS, rollouts);
        json_object *lease = json_object_new_object();
        json_object_object_add(lease, LII_F_FRESH, json_object_new_boolean(fleet_lease_fresh(f)));
        json_object_object_add(lease, LII_F_TTL_MS,
                               json_object_new_uint64(f->ttl_usec / USEC_PER_MSEC));
        json_object_object_add(doc, LII_F_LEASE, lease);
        json_object_object_add(doc, LII_F_NODE, json_object_new_string(f->node));
        return doc;
}

/* ---- life ---- */

int fleet_new(uv_loop_t *loop, const struct fleet_options *opts, struct fleet **ret)
{
        if (!opts->client || !opts->node || !*opts->node || opts->lease_ttl_usec < 2 * USEC_PER_SEC)
                return -EINVAL;
        if (strchr(opts->node, '/'))
                return -EINVAL;
        struct fleet *f = xcalloc(1, sizeof *f);
        f->loop = loop;
        f->client = etcd_client_ref(opts->client);
        f->node = xstrdup(opts->node);
        f->prefix = xstrdup(etcd_client_prefix(opts->client));
        f->ttl_usec = opts->lease_ttl_usec;
        f->events = opts->events;
        f->status = opts->status;
        f->changed = opts->changed;
        f->max_failures = opts->max_failures;
        f->userdata = opts->userdata;
        f->status_rel = xasprintf("nodes/%s/status", f->node);
        f->status_key_b64 = key_b64(f, f->status_rel);
        /* nodes/, sem/ and fail/ with one watch: everything from
         * PREFIX/fail/ to PREFIX/sem/ and below ('0' follows '/'); other
         * keys in between are ignored. */
        f->range_key_b64 = key_b64(f, "fail/");
        f->range_end_b64 = key_b64(f, "sem0");
        f->lease_call.client = f->status_call.client = f->range_call.client = f->watch_call.client =
            f->op_call.client = f->client;
        uv_timer_t *timers[] = {&f->lease_timer, &f->fresh_timer, &f->status_timer,
                                &f->watch_timer, &f->op_timer,    &f->changed_timer,
                                &f->slot_timer};
        for (size_t i = 0; i < ELEMENTSOF(timers); i++) {
                uv_timer_init(loop, timers[i]);
                timers[i]->data = f;
                f->open_handles++;
        }
        *ret = f;
        return 0;
}

int fleet_start(struct fleet *f)
{
        f->started = true;
        if (f->events)
                f->sub = events_subscribe(f->events, on_event, f);
        uv_timer_start(&f->lease_timer, on_lease_timer, 0, 0);
        uv_timer_start(&f->watch_timer, on_watch_timer, 0, 0);
        return 0;
}

static void on_closed(uv_handle_t *h)
{
        struct fleet *f = h->data;
        if (--f->open_handles > 0)
                return;
        free(f->node);
        free(f->prefix);
        free(f->status_rel);
        free(f->status_key_b64);
        free(f->range_key_b64);
        free(f->range_end_b64);
        free(f);
}

struct fleet *fleet_free(struct fleet *f)
{
        if (!f)
                return NULL;
        f->freed = true;
        if (f->sub)
                events_unsubscribe(f->sub);
        etcd_call_reset(&f->lease_call);
        etcd_call_reset(&f->status_call);
        etcd_call_reset(&f->range_call);
        etcd_call_reset(&f->watch_call);
        etcd_call_reset(&f->op_call);
        for (size_t i = 0; i < f->n_slots; i++)
                slot_free(f->slots[i]);
        free(f->slots);
        while (f->ops) {
                struct op *op = f->ops;
                f->ops = op->next;
                op_free(op);
        }
        view_clear(f);
        /* Now, not when the timers have closed: the client's own request
         * must go before the curl multi handle does. */
        f->client = etcd_client_unref(f->client);
        uv_timer_t *timers[] = {&f->lease_timer, &f->fresh_timer, &f->status_timer,
                                &f->watch_timer, &f->op_timer,    &f->changed_timer,
                                &f->slot_timer};
        for (size_t i = 0; i < ELEMENTSOF(timers); i++)
                uv_close((uv_handle_t *)timers[i], on_closed);
        return NULL;
}
